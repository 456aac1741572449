//! UDP over two stacks on an in-memory link.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{pair, A, B};
use ustack::net::UdpSocket;

#[tokio::test]
async fn udp_echo() {
    let (s1, s2) = pair().await;
    let server = Arc::new(UdpSocket::bind_with(&s2, "0.0.0.0:7").await.unwrap());
    let srv = server.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            srv.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let client = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    let local = client.local_addr().unwrap();
    assert_ne!(local.port(), 0);
    for msg in [&b"one"[..], &b"two two"[..], &[7u8; 1400][..]] {
        client.send_to(msg, "10.0.0.2:7").await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], msg);
        assert_eq!(from, "10.0.0.2:7".parse::<SocketAddr>().unwrap());
    }
    task.await.unwrap();
    assert!(s2.stats().udp.in_datagrams >= 3);
}

#[tokio::test]
async fn udp_connect_send_recv_peek() {
    let (s1, s2) = pair().await;
    let a = UdpSocket::bind_with(&s1, "10.0.0.1:4000").await.unwrap();
    let b = UdpSocket::bind_with(&s2, "10.0.0.2:4001").await.unwrap();
    a.connect("10.0.0.2:4001").await.unwrap();
    assert_eq!(
        a.peer_addr().unwrap(),
        "10.0.0.2:4001".parse::<SocketAddr>().unwrap()
    );
    b.connect("10.0.0.1:4000").await.unwrap();
    assert_eq!(
        b.try_recv(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    a.send(b"hello").await.unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = b.peek_from(&mut buf).await.unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"hello"[..], "10.0.0.1:4000".parse().unwrap())
    );
    b.readable().await.unwrap();
    let n = b.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    b.send(b"back").await.unwrap();
    let n = a.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"back");
    a.writable().await.unwrap();
    a.set_ttl(9).unwrap();
    assert_eq!(a.ttl().unwrap(), 9);
}

#[tokio::test]
async fn udp_truncates_long_datagrams() {
    let (s1, s2) = pair().await;
    let a = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    let b = UdpSocket::bind_with(&s2, "0.0.0.0:9000").await.unwrap();
    a.send_to(&[1u8; 100], "10.0.0.2:9000").await.unwrap();
    a.send_to(&[2u8; 3], "10.0.0.2:9000").await.unwrap();
    let mut small = [0u8; 10];
    let (n, _) = b.recv_from(&mut small).await.unwrap();
    assert_eq!(n, 10);
    let (n, _) = b.recv_from(&mut small).await.unwrap();
    assert_eq!(&small[..n], &[2u8; 3]);
}

#[tokio::test]
async fn udp_addr_in_use() {
    let (s1, _s2) = pair().await;
    let _a = UdpSocket::bind_with(&s1, "0.0.0.0:5353").await.unwrap();
    let err = UdpSocket::bind_with(&s1, "0.0.0.0:5353").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[tokio::test]
async fn udp_port_unreachable_is_connection_refused() {
    let (s1, _s2) = pair().await;
    let a = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    a.connect("10.0.0.2:9").await.unwrap();
    a.send(b"anyone?").await.unwrap();
    let mut buf = [0u8; 8];
    let err = tokio::time::timeout(Duration::from_secs(2), a.recv(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn udp_unrouted_send_fails() {
    let (s1, _s2) = pair().await;
    let a = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    let err = a.send_to(b"x", "192.168.77.1:53").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
    let err = a.send(b"x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
}

/// A transparent socket (tun2socks for UDP) receives datagrams to foreign destinations,
/// learns where each was going, and answers in that destination's name; datagrams to the
/// stack's own address still reach the socket bound there; there is one per stack, and an
/// ordinary socket may not send from a foreign source.
#[tokio::test]
async fn transparent_socket_receives_foreign_destinations_and_answers_as_them() {
    let (s1, s2) = pair().await;
    // Everything for 198.51.100.0/24 goes over the link to the stack with the proxy.
    s1.add_route("198.51.100.0/24".parse().unwrap(), Some(B))
        .unwrap();
    let proxy = UdpSocket::bind_any_with(&s2).await.unwrap();
    let err = UdpSocket::bind_any_with(&s2).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let local = UdpSocket::bind_with(&s2, (B, 7)).await.unwrap();
    let client = UdpSocket::bind_with(&s1, (A, 4000)).await.unwrap();
    let wanted = SocketAddr::from(([198, 51, 100, 7], 53));
    client.send_to(b"query", wanted).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from, to) = proxy.recv_from_to(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"query");
    assert_eq!(from, SocketAddr::from((A, 4000)));
    assert_eq!(to, wanted);
    proxy.send_from_to(b"answer", to, from).await.unwrap();
    let (n, src) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], src), (&b"answer"[..], wanted));
    // The stack's own address is not intercepted.
    client.send_to(b"local", (B, 7)).await.unwrap();
    let (n, from, to) = local.recv_from_to(&mut buf).await.unwrap();
    assert_eq!(
        (&buf[..n], from, to),
        (
            &b"local"[..],
            SocketAddr::from((A, 4000)),
            SocketAddr::from((B, 7))
        )
    );
    assert_eq!(
        proxy.try_recv_from(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    // Only the transparent socket may use a foreign source.
    let err = local
        .send_from_to(b"x", wanted, SocketAddr::from((A, 4000)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // Once it is closed, another may take its place, and foreign datagrams that arrive
    // meanwhile are not delivered to anyone.
    drop(proxy);
    client.send_to(b"lost", wanted).await.unwrap();
    let again = UdpSocket::bind_any_with(&s2).await.unwrap();
    client.send_to(b"again", wanted).await.unwrap();
    let (n, _, to) = again.recv_from_to(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], to), (&b"again"[..], wanted));
}

#[tokio::test]
async fn broadcast_needs_so_broadcast() {
    let (s1, s2) = pair().await;
    let rx = UdpSocket::bind_with(&s2, "0.0.0.0:6767").await.unwrap();
    let tx = UdpSocket::bind_with(&s1, "10.0.0.1:0").await.unwrap();
    assert!(!tx.broadcast().unwrap());
    // Linux: EACCES, for the limited and the subnet's directed broadcast address alike,
    // and for connect too.
    for dst in ["255.255.255.255:6767", "10.0.0.255:6767"] {
        let e = tx.send_to(b"hi", dst).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{dst}: {e}");
    }
    let e = tx.connect("255.255.255.255:6767").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // Unicast is not affected.
    tx.send_to(b"uni", "10.0.0.2:6767").await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = rx.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"uni");

    tx.set_broadcast(true).unwrap();
    assert!(tx.broadcast().unwrap());
    for (dst, msg) in [
        ("255.255.255.255:6767", b"all"),
        ("10.0.0.255:6767", b"net"),
    ] {
        tx.send_to(msg, dst).await.unwrap();
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), rx.recv_from(&mut buf))
            .await
            .expect("broadcast not received")
            .unwrap();
        assert_eq!(&buf[..n], msg);
        assert_eq!(from, tx.local_addr().unwrap());
    }
}

#[tokio::test]
async fn recv_buf_and_peek_sender() {
    let (s1, s2) = pair().await;
    let rx = UdpSocket::bind_with(&s2, "0.0.0.0:6868").await.unwrap();
    let tx = UdpSocket::bind_with(&s1, "10.0.0.1:0").await.unwrap();
    assert_eq!(
        rx.try_peek_sender().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let mut v: Vec<u8> = Vec::new();
    assert_eq!(
        rx.try_recv_buf_from(&mut v).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let big = vec![9u8; 3000];
    tx.send_to(&big, "10.0.0.2:6868").await.unwrap();
    tx.send_to(b"second", "10.0.0.2:6868").await.unwrap();
    // The sender, twice: peeking leaves the datagram queued.
    assert_eq!(rx.peek_sender().await.unwrap(), tx.local_addr().unwrap());
    assert_eq!(rx.try_peek_sender().unwrap(), tx.local_addr().unwrap());
    // A Vec takes the whole datagram, appended after what it holds.
    v.extend_from_slice(b"head");
    let (n, from) = rx.recv_buf_from(&mut v).await.unwrap();
    assert_eq!((n, from), (3000, tx.local_addr().unwrap()));
    assert_eq!(&v[..4], b"head");
    assert_eq!(&v[4..], &big[..]);
    // A bounded buffer truncates, like recv_from.
    let mut small = bytes::BufMut::limit(bytes::BytesMut::new(), 3);
    let (n, _) = rx.recv_buf_from(&mut small).await.unwrap();
    assert_eq!(n, 3);
    assert_eq!(&small.get_ref()[..], b"sec");
    // Connected: recv_buf / try_recv_buf.
    tx.connect("10.0.0.2:6868").await.unwrap();
    rx.connect(tx.local_addr().unwrap()).await.unwrap();
    tx.send(b"c1").await.unwrap();
    let mut c = Vec::new();
    assert_eq!(rx.recv_buf(&mut c).await.unwrap(), 2);
    tx.send(b"c2").await.unwrap();
    rx.readable().await.unwrap();
    assert_eq!(rx.try_recv_buf(&mut c).unwrap(), 2);
    assert_eq!(c, b"c1c2");
}

#[tokio::test]
async fn the_receive_buffer_size_bounds_the_queue() {
    use ustack::socket::{AddressFamily, SockType};
    let (s1, s2) = pair().await;
    let sock = |size: usize| {
        let s = s2.socket(AddressFamily::INET, SockType::Dgram, 0).unwrap();
        s.set_recv_buffer_size(size).unwrap();
        let got = s.recv_buffer_size().unwrap();
        s.bind("0.0.0.0:0").unwrap();
        (UdpSocket::from_socket(s).unwrap(), got)
    };
    // Clamped like Linux's rmem_max, and to the minimum.
    assert_eq!(sock(1 << 30).1, ustack::UdpConfig::default().recv_buf_max);
    assert_eq!(sock(10).1, 2304);
    let (small, _) = sock(8 * 1024);
    let (large, _) = sock(4 << 20);
    let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    // 200 datagrams of 1,000 bytes to each, unread until all are sent.
    for _ in 0..200 {
        for r in [&small, &large] {
            let to = SocketAddr::new(B.into(), r.local_addr().unwrap().port());
            tx.send_to(&[7u8; 1000], to).await.unwrap();
        }
    }
    let count = |s: &UdpSocket| {
        let mut n = 0;
        while s.try_recv_from(&mut [0u8; 1500]).is_ok() {
            n += 1;
        }
        n
    };
    let large_n = {
        // Everything sent has arrived once the large socket holds all 200.
        let mut n = 0;
        for _ in 0..200 {
            n += count(&large);
            if n == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    };
    assert_eq!(large_n, 200, "a 4 MiB buffer holds the burst");
    let small_n = count(&small);
    assert!(
        (1..20).contains(&small_n),
        "an 8 KiB buffer holds a few datagrams: {small_n}"
    );
    assert!(s2.stats().udp.rcvbuf_errors >= 180);
}
