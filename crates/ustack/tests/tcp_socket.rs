//! `TcpSocket`: options and a local address before `connect` or `listen`.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::{echo_server, pair, pair_custom, A, B};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::TcpSocket;

#[tokio::test]
async fn bound_socket_connects_from_its_port_with_its_options() {
    let (s1, s2) = pair().await;
    let srv = TcpSocket::new_v4_with(&s2).unwrap();
    srv.bind(SocketAddr::from((B, 7))).unwrap();
    let listener = srv.listen(16).unwrap();
    assert_eq!(listener.local_addr().unwrap(), SocketAddr::from((B, 7)));

    let sock = TcpSocket::new_v4_with(&s1).unwrap();
    assert_eq!(
        sock.local_addr().unwrap(),
        SocketAddr::from(([0, 0, 0, 0], 0))
    );
    sock.set_nodelay(true).unwrap();
    sock.set_send_buffer_size(32 * 1024).unwrap();
    sock.set_recv_buffer_size(48 * 1024).unwrap();
    sock.set_linger(Some(Duration::from_secs(3))).unwrap();
    sock.bind(SocketAddr::from((A, 40_000))).unwrap();
    assert_eq!(sock.local_addr().unwrap(), SocketAddr::from((A, 40_000)));
    assert_eq!(sock.send_buffer_size().unwrap(), 32 * 1024);
    assert_eq!(sock.recv_buffer_size().unwrap(), 48 * 1024);

    let accept = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        peer
    });
    let mut stream = sock.connect(SocketAddr::from((B, 7))).await.unwrap();
    assert_eq!(stream.local_addr().unwrap(), SocketAddr::from((A, 40_000)));
    assert!(stream.nodelay().unwrap());
    assert_eq!(stream.send_buffer_size().unwrap(), 32 * 1024);
    assert_eq!(stream.recv_buffer_size().unwrap(), 48 * 1024);
    assert_eq!(stream.linger().unwrap(), Some(Duration::from_secs(3)));
    stream.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    assert_eq!(accept.await.unwrap(), SocketAddr::from((A, 40_000)));
}

#[tokio::test]
async fn accepted_connections_inherit_the_listening_sockets_options() {
    let (s1, s2) = pair().await;
    let srv = TcpSocket::new_v4_with(&s2).unwrap();
    srv.set_nodelay(true).unwrap();
    srv.set_recv_buffer_size(16 * 1024).unwrap();
    srv.set_keepalive(true).unwrap();
    srv.set_max_pacing_rate(Some(5_000_000)).unwrap();
    // Unbound: listen picks an ephemeral port.
    let listener = srv.listen(4).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_ne!(port, 0);
    let client = tokio::spawn(async move {
        let s = TcpSocket::new_v4_with(&s1).unwrap();
        s.connect(SocketAddr::from((B, port))).await.unwrap()
    });
    let (child, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip(), A);
    assert!(child.nodelay().unwrap());
    assert_eq!(child.recv_buffer_size().unwrap(), 16 * 1024);
    assert_eq!(child.max_pacing_rate().unwrap(), Some(5_000_000));
    let ka = child.keepalive().unwrap().expect("keepalive inherited");
    let cfg = s2.tcp_config();
    assert_eq!(
        (ka.idle, ka.interval, ka.count),
        (
            cfg.keepalive_time,
            cfg.keepalive_intvl,
            cfg.keepalive_probes
        )
    );
    let c = client.await.unwrap();
    assert!(!c.nodelay().unwrap());
    assert_eq!(c.keepalive().unwrap(), None);
    assert_eq!(c.max_pacing_rate().unwrap(), None);
}

#[tokio::test]
async fn reuseaddr_decides_whether_a_bound_port_is_shared() {
    let (s1, _s2) = pair().await;
    let at = SocketAddr::from((A, 5000));

    let first = TcpSocket::new_v4_with(&s1).unwrap();
    first.bind(at).unwrap();
    let second = TcpSocket::new_v4_with(&s1).unwrap();
    let e = second.bind(at).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);

    // Both sides set SO_REUSEADDR: the port is shared.
    let a = TcpSocket::new_v4_with(&s1).unwrap();
    a.set_reuseaddr(true).unwrap();
    assert!(a.reuseaddr().unwrap());
    a.bind(SocketAddr::from((A, 5001))).unwrap();
    let b = TcpSocket::new_v4_with(&s1).unwrap();
    b.set_reuseaddr(true).unwrap();
    b.bind(SocketAddr::from((A, 5001))).unwrap();

    // ...but never with a listener, even when both set it.
    let l = TcpSocket::new_v4_with(&s1).unwrap();
    l.set_reuseaddr(true).unwrap();
    l.bind(SocketAddr::from((A, 5002))).unwrap();
    let _listener = l.listen(8).unwrap();
    let c = TcpSocket::new_v4_with(&s1).unwrap();
    c.set_reuseaddr(true).unwrap();
    assert_eq!(
        c.bind(SocketAddr::from((A, 5002))).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );

    // Dropping an unconnected socket frees its port.
    drop(first);
    second.bind(at).unwrap();
}

/// Two listeners with `SO_REUSEPORT` on one port, each served by its own task: every
/// client is answered, by one of them, and both get some of the connections.
#[tokio::test]
async fn reuseport_listeners_each_serve_part_of_the_connections() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let (s1, s2) = pair().await;
    let at = SocketAddr::from((B, 8080));
    let mut tasks = Vec::new();
    let served: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    for who in 0u8..2 {
        let sock = TcpSocket::new_v4_with(&s2).unwrap();
        sock.set_reuseport(true).unwrap();
        assert!(sock.reuseport().unwrap());
        sock.bind(at).unwrap();
        let listener = sock.listen(64).unwrap();
        let served = served.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok((mut st, _)) = listener.accept().await {
                served[usize::from(who)].fetch_add(1, Ordering::SeqCst);
                st.write_all(&[who]).await.unwrap();
            }
        }));
    }
    // Without the flag the port is taken.
    let other = TcpSocket::new_v4_with(&s2).unwrap();
    assert_eq!(other.bind(at).unwrap_err().kind(), ErrorKind::AddrInUse);

    let mut answers = [0u32; 2];
    for _ in 0..40 {
        let mut st = ustack::net::TcpStream::connect_with(&s1, at).await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), st.read_exact(&mut b))
            .await
            .expect("answered")
            .unwrap();
        answers[usize::from(b[0])] += 1;
    }
    for t in tasks {
        t.abort();
    }
    let per = [
        served[0].load(Ordering::SeqCst),
        served[1].load(Ordering::SeqCst),
    ];
    assert_eq!(per, answers);
    assert_eq!(per.iter().sum::<u32>(), 40);
    assert!(per.iter().all(|&n| n > 0), "both listeners served: {per:?}");
}

#[tokio::test]
async fn bad_use_gives_clear_errors() {
    let (s1, s2) = pair().await;
    assert_eq!(TcpSocket::new_v6().unwrap_err().raw_os_error(), Some(97));

    let s = TcpSocket::new_v4_with(&s1).unwrap();
    let v6: SocketAddr = "[::1]:80".parse().unwrap();
    assert!(s.bind(v6).is_err());
    s.bind(SocketAddr::from((A, 0))).unwrap();
    assert_ne!(s.local_addr().unwrap().port(), 0);
    // A second bind of the same socket is refused (Linux: EINVAL).
    assert_eq!(
        s.bind(SocketAddr::from((A, 0))).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(!s.keepalive().unwrap());
    s.set_keepalive(true).unwrap();
    assert!(s.keepalive().unwrap());
    s.set_keepalive(false).unwrap();
    assert!(!s.keepalive().unwrap());

    // Nothing listens on port 9: the peer's RST refuses the connection.
    let e = s.connect(SocketAddr::from((B, 9))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);

    // No route to 10.99.0.1 on this stack (no gateway): nothing is sent.
    let t = TcpSocket::new_v4_with(&s1).unwrap();
    let e = t
        .connect(SocketAddr::from(([10, 99, 0, 1], 80)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);

    // The default-stack constructor says how to get a stack when none is set.
    if ustack::Stack::try_default().is_err() {
        assert_eq!(TcpSocket::new_v4().unwrap_err().kind(), ErrorKind::NotFound);
    }

    // A TcpSocket-made listener serves like any other.
    let l = TcpSocket::new_v4_with(&s2).unwrap();
    l.bind(SocketAddr::from(([0, 0, 0, 0], 7))).unwrap();
    tokio::spawn(echo_server(l.listen(8).unwrap()));
    let mut c = ustack::net::TcpStream::connect_with(&s1, (B, 7))
        .await
        .unwrap();
    c.write_all(b"ok").await.unwrap();
    let mut b2 = [0u8; 2];
    c.read_exact(&mut b2).await.unwrap();
    assert_eq!(&b2, b"ok");
}

/// The IPv4 packets in a classic pcap file with `LINKTYPE_RAW` records.
fn pcap_packets(path: &std::path::Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let len = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        out.push(data[off..off + len].to_vec());
        off += len;
    }
    out
}

/// `IP_TOS` set on a `TcpSocket` (client) and on a listening socket (server), and on a
/// `UdpSocket`, is the type-of-service byte of the IPv4 packets they send, as captured on
/// the wire.
#[tokio::test]
async fn type_of_service_reaches_the_ip_header() {
    use ustack::net::UdpSocket;
    use ustack::netdev::mem::MemLinkConfig;
    let dir = std::env::temp_dir().join(format!("ustack-tos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.pcap");
    let (s1, s2, _) = pair_custom(MemLinkConfig::default(), |b| b.pcap(&path), |b| b).await;
    let srv = TcpSocket::new_v4_with(&s2).unwrap();
    srv.set_tos_v4(0x28).unwrap();
    srv.bind(SocketAddr::from((B, 7))).unwrap();
    let listener = srv.listen(16).unwrap();
    tokio::spawn(echo_server(listener));
    let sock = TcpSocket::new_v4_with(&s1).unwrap();
    assert_eq!(sock.tos_v4().unwrap(), 0);
    sock.set_tos_v4(0xb8).unwrap();
    assert_eq!(sock.tos_v4().unwrap(), 0xb8);
    assert_eq!(
        sock.set_tos_v4(256).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut stream = sock.connect(SocketAddr::from((B, 7))).await.unwrap();
    assert_eq!(stream.tos_v4().unwrap(), 0xb8);
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();

    let u1 = UdpSocket::bind_with(&s1, "10.0.0.1:5000").await.unwrap();
    let u2 = UdpSocket::bind_with(&s2, "10.0.0.2:5000").await.unwrap();
    u1.set_tos_v4(0x10).unwrap();
    assert_eq!(u1.tos_v4().unwrap(), 0x10);
    u1.send_to(b"dgram", "10.0.0.2:5000").await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = u2.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"dgram");
    drop(stream);
    s1.shutdown().await;

    let pkts = pcap_packets(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let (mut tcp_out, mut tcp_in, mut udp_out) = (0, 0, 0);
    for p in &pkts {
        let from_a = p[12..16] == [10, 0, 0, 1];
        match (p[9], from_a) {
            (6, true) => {
                assert_eq!(p[1], 0xb8);
                tcp_out += 1;
            }
            (6, false) => {
                assert_eq!(p[1], 0x28);
                tcp_in += 1;
            }
            (17, true) => {
                assert_eq!(p[1], 0x10);
                udp_out += 1;
            }
            _ => {}
        }
    }
    assert!(
        tcp_out >= 3 && tcp_in >= 2 && udp_out == 1,
        "{tcp_out} {tcp_in} {udp_out}"
    );
}
