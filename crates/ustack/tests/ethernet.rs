//! Two stacks on an in-memory Ethernet link: ARP resolves next hops, frames carry TCP and
//! UDP, broadcasts and multicasts use group addresses, an absent neighbour fails a
//! connect with "host unreachable".

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{echo_server, pair_custom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack::netdev::mem::MemLinkConfig;
use ustack::{NeighState, Stack};

fn ether() -> MemLinkConfig {
    MemLinkConfig {
        ethernet: true,
        ..Default::default()
    }
}

async fn stacks() -> (Stack, Stack) {
    let (a, b, _) = pair_custom(ether(), |b| b, |b| b).await;
    (a, b)
}

#[tokio::test]
async fn tcp_and_udp_over_ethernet_resolve_with_arp() {
    let (server, client) = stacks().await;
    let l = TcpListener::bind_with(&server, "10.0.0.1:7").await.unwrap();
    tokio::spawn(echo_server(l));
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect_with(&client, "10.0.0.1:7"),
    )
    .await
    .expect("connect hung")
    .unwrap();
    // 1 MiB both ways: frames of the full MTU (1,514 bytes) pass the link.
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let (back, ()) = tokio::join!(
        async {
            let mut back = vec![0u8; data.len()];
            r.read_exact(&mut back).await.unwrap();
            back
        },
        async { w.write_all(&data).await.unwrap() }
    );
    assert!(back == data, "echo differs");
    // One request each way at most: the client asked, the server learnt the client
    // from that request and never had to ask.
    let (cs, ss) = (client.stats().arp, server.stats().arp);
    assert_eq!((cs.requests_out, cs.replies_in), (1, 1), "{cs:?}");
    assert_eq!(
        (ss.requests_in, ss.replies_out, ss.requests_out),
        (1, 1, 0),
        "{ss:?}"
    );
    let n = client.neighbours();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].addr, "10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap());
    assert_eq!(n[0].state, NeighState::Reachable);
    assert!(n[0].mac.is_some());
    // The server's entry for the client came from the request (stale); the client's
    // ACKs of the echoed data confirmed it, so the server never asked (requests_out 0).
    let n = server.neighbours();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].state, NeighState::Reachable, "{n:?}");
    // No frame went astray.
    assert_eq!(cs.rx_other_host + ss.rx_other_host, 0);
    assert_eq!(cs.unres_discards + ss.unres_discards, 0);

    // UDP: a unicast, and a broadcast to the subnet (ff:ff:ff:ff:ff:ff, no ARP).
    let u = UdpSocket::bind_with(&server, "0.0.0.0:9").await.unwrap();
    let c = UdpSocket::bind_with(&client, "10.0.0.2:0").await.unwrap();
    c.set_broadcast(true).unwrap();
    c.send_to(b"unicast", "10.0.0.1:9").await.unwrap();
    c.send_to(b"broadcast", "10.0.0.255:9").await.unwrap();
    let mut buf = [0u8; 32];
    for want in [&b"unicast"[..], b"broadcast"] {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
            .await
            .expect("datagram lost")
            .unwrap();
        assert_eq!(&buf[..n], want);
        assert_eq!(from.to_string().split(':').next(), Some("10.0.0.2"));
    }
    // A multicast to a joined group (01:00:5e:..., no ARP).
    let g = UdpSocket::bind_with(&server, "0.0.0.0:5353").await.unwrap();
    g.join_multicast_v4("239.1.2.3".parse().unwrap(), "10.0.0.1".parse().unwrap())
        .unwrap();
    c.set_multicast_if_v4("10.0.0.2".parse().unwrap()).unwrap();
    c.send_to(b"group", "239.1.2.3:5353").await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), g.recv_from(&mut buf))
        .await
        .expect("multicast lost")
        .unwrap();
    assert_eq!(&buf[..n], b"group");
    assert_eq!(client.stats().arp.requests_out, 1);
}

#[tokio::test(start_paused = true)]
async fn an_absent_neighbour_fails_a_connect_with_host_unreachable() {
    let (_server, client) = stacks().await;
    let t0 = tokio::time::Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        TcpStream::connect_with(&client, "10.0.0.99:80"),
    )
    .await
    .expect("connect hung")
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostUnreachable, "{e}");
    // Three requests a second apart, as Linux (mcast_solicit 3, retrans_time 1 s).
    let took = t0.elapsed();
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(4)).contains(&took),
        "{took:?}"
    );
    let a = client.stats().arp;
    // The SYN retransmitted in the same instant may have started a new round.
    assert!((3..=4).contains(&a.requests_out), "{a:?}");
    assert_eq!(a.resolve_failed, 1, "{a:?}");
    // Once every round is over, the entry stays failed until something is sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let n = client.neighbours();
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].state, n[0].mac), (NeighState::Failed, None));
    let before = client.stats().arp.requests_out;
    // A later datagram tries again.
    let u = UdpSocket::bind_with(&client, "0.0.0.0:0").await.unwrap();
    u.send_to(b"x", "10.0.0.99:9").await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(client.stats().arp.requests_out, before + 1);
    assert_eq!(client.neighbours()[0].state, NeighState::Incomplete);
}

#[tokio::test(start_paused = true)]
async fn an_idle_neighbour_is_probed_again_before_it_is_trusted() {
    let (server, client) = stacks().await;
    let s = UdpSocket::bind_with(&server, "10.0.0.1:9").await.unwrap();
    let c = UdpSocket::bind_with(&client, "10.0.0.2:0").await.unwrap();
    let mut buf = [0u8; 8];
    c.send_to(b"1", "10.0.0.1:9").await.unwrap();
    s.recv_from(&mut buf).await.unwrap();
    assert_eq!(client.neighbours()[0].state, NeighState::Reachable);
    // 40 s later (reachable_time 30 s) the entry shows as stale; the next datagram
    // still leaves at once, and the entry is confirmed by a unicast request 5 s later
    // (delay_first_probe).
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(client.neighbours()[0].state, NeighState::Stale);
    c.send_to(b"2", "10.0.0.1:9").await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(100), s.recv_from(&mut buf)).await;
    assert!(got.is_ok(), "datagram held back while the entry aged");
    assert_eq!(client.neighbours()[0].state, NeighState::Delay);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(client.neighbours()[0].state, NeighState::Reachable);
    let a = client.stats().arp;
    assert_eq!((a.requests_out, a.replies_in), (2, 2), "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn tcp_acks_confirm_a_busy_neighbour_without_probes() {
    let (server, client) = stacks().await;
    let l = TcpListener::bind_with(&server, "10.0.0.1:7").await.unwrap();
    let sink = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        loop {
            match s.read(&mut buf).await.unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    });
    let mut c = TcpStream::connect_with(&client, "10.0.0.1:7")
        .await
        .unwrap();
    // 100 s of a sender writing once a second: well past reachable_time (30 s) plus
    // delay_first_probe (5 s), after which an unconfirmed entry would be probed.
    for i in 0..100u32 {
        c.write_all(&i.to_be_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c.shutdown().await.unwrap();
    assert_eq!(sink.await.unwrap(), 400);
    // The sender's entry was kept reachable by the receiver's ACKs: one broadcast
    // request at the start and no unicast probe since.
    let a = client.stats().arp;
    assert_eq!(a.requests_out, 1, "{a:?}");
    assert_eq!(client.neighbours()[0].state, NeighState::Reachable);
    // The receiver sends only ACKs and gets no acknowledgement of anything, so nothing
    // confirms its entry: it is probed (unicast) about once per 35 s, as in Linux.
    let b = server.stats().arp;
    assert!((2..=4).contains(&b.requests_out), "{b:?}");
    assert_eq!(b.resolve_failed, 0, "{b:?}");
}

#[tokio::test]
async fn permanent_neighbours_need_no_arp() {
    let (a, b) = ustack::netdev::mem::MemLink::pair(ether());
    let ustack::netdev::Link::Ethernet(mac_b) = ustack::netdev::NetDevice::link(&b) else {
        panic!("not an Ethernet link");
    };
    let sa = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let sb = Stack::builder()
        .device(b)
        .addr("10.0.0.2/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let ip_b: std::net::Ipv4Addr = "10.0.0.2".parse().unwrap();
    sa.add_neighbour("veth0", ip_b, mac_b).unwrap();
    let r = UdpSocket::bind_with(&sb, "10.0.0.2:9").await.unwrap();
    let s = UdpSocket::bind_with(&sa, "10.0.0.1:0").await.unwrap();
    s.send_to(b"static", "10.0.0.2:9").await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), r.recv_from(&mut buf))
        .await
        .expect("datagram lost")
        .unwrap();
    assert_eq!(&buf[..n], b"static");
    assert_eq!(sa.stats().arp.requests_out, 0);
    assert_eq!(sa.neighbours()[0].state, NeighState::Permanent);
    // A wrong address set by hand is used as set: the peer drops the frames.
    let wrong = ustack::MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
    sa.add_neighbour("veth0", ip_b, wrong).unwrap();
    s.send_to(b"lost", "10.0.0.2:9").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sb.stats().arp.rx_other_host, 1);
    // Removed: ARP resolves it again.
    sa.remove_neighbour("veth0", ip_b).unwrap();
    s.send_to(b"again", "10.0.0.2:9").await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), r.recv_from(&mut buf))
        .await
        .expect("datagram lost")
        .unwrap();
    assert_eq!(&buf[..n], b"again");
    assert_eq!(sa.stats().arp.requests_out, 1);
    // Errors.
    let e = sa.add_neighbour("nope", ip_b, mac_b).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    let e = sa
        .add_neighbour("veth0", ip_b, ustack::MacAddr::BROADCAST)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = sa
        .remove_neighbour("veth0", "10.0.0.77".parse().unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// RFC 5227 2.4 between two hosts configured with the same static address: each defends
/// it once with an announcement, hears the other's defence as a conflict it does not
/// answer (it defended within 10 s), keeps its address, and the exchange stops there (no
/// announcement storm). Each side logs the conflicts with the other's Ethernet address.
#[tokio::test(start_paused = true)]
async fn two_hosts_with_one_static_address_defend_it_once_each() {
    let (a, b) = stacks().await;
    let (dev_a, dev_b) = (a.addresses()[0].0.clone(), b.addresses()[0].0.clone());
    let shared = std::net::Ipv4Addr::new(10, 0, 0, 1);
    b.add_address(&dev_b, "10.0.0.1/24".parse().unwrap())
        .unwrap();
    b.announce_address(&dev_b, shared).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    for (s, dev) in [(&a, &dev_a), (&b, &dev_b)] {
        let arp = s.stats().arp;
        assert_eq!(arp.defences, 1, "{dev}: {arp:?}");
        let c = s.address_conflicts();
        assert!(!c.is_empty() && c.len() <= 2, "{dev}: {c:?}");
        assert!(c.iter().all(|c| c.addr == shared && &c.dev == dev));
        assert!(c[0].defended);
        assert!(s.addresses().iter().any(|(_, x)| x.addr() == shared));
    }
    // The two Ethernet addresses: each side saw the other's.
    let (ca, cb) = (a.address_conflicts(), b.address_conflicts());
    assert_ne!(ca[0].mac, cb[0].mac);
    // No storm: b's announcement, a's defence, b's defence, nothing more.
    let sent = a.stats().arp.requests_out + b.stats().arp.requests_out;
    assert_eq!(sent, 3, "ARP requests sent in 60 s");
}
