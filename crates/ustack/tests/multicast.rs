//! UDP multicast (group memberships, IGMP, `IP_MULTICAST_*`) and shared ports
//! (`SO_REUSEADDR`, `SO_REUSEPORT`) on in-memory links: between two stacks, and between
//! a stack and a raw device the test reads and writes itself (to see the IGMP messages
//! and the TTLs on the wire, and to play a v2 querier).

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{pair, A, B};
use ustack::net::UdpSocket;
use ustack::netdev::mem::{MemDevice, MemLink, MemLinkConfig};
use ustack::netdev::{NetDevice, PacketBuf};
use ustack::socket::{AddressFamily, SockType};
use ustack::Stack;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);

/// A datagram socket on `stack` with `SO_REUSEADDR` (and `SO_REUSEPORT` when `port_too`),
/// bound to `addr`.
fn shared(stack: &Stack, addr: &str, port_too: bool) -> UdpSocket {
    let s = stack
        .socket(AddressFamily::INET, SockType::Dgram, 0)
        .unwrap();
    s.set_reuse_address(true).unwrap();
    assert!(s.reuse_address().unwrap());
    if port_too {
        s.set_reuse_port(true).unwrap();
    }
    s.bind(addr).unwrap();
    UdpSocket::from_socket(s).unwrap()
}

/// The next datagram on `s` within 2 s, or `None`.
async fn recv_within(s: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(wait, s.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        Ok(Err(e)) => panic!("recv_from: {e}"),
        Err(_) => None,
    }
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_joined_group_reaches_every_socket_on_its_port() {
    let (s1, s2) = pair().await;
    // Two programs on one port of s2; only the first joins (Linux delivers to both:
    // IP_MULTICAST_ALL is on by default).
    let r1 = shared(&s2, "0.0.0.0:5000", false);
    let r2 = shared(&s2, "0.0.0.0:5000", false);
    r1.join_multicast_v4(GROUP, B).unwrap();
    assert_eq!(
        s2.multicast_groups(),
        vec![("veth1".to_string(), GROUP, 1)],
        "device, group, sockets"
    );
    let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    // No default route: the group is routed through IP_MULTICAST_IF's interface.
    let e = tx.send_to(b"x", (GROUP, 5000)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
    tx.set_multicast_if_v4(A).unwrap();
    assert_eq!(tx.multicast_if_v4().unwrap(), A);
    let from: SocketAddr = (A, tx.local_addr().unwrap().port()).into();
    tx.send_to(b"to the group", (GROUP, 5000)).await.unwrap();
    for r in [&r1, &r2] {
        assert_eq!(
            recv_within(r, LONG).await,
            Some((b"to the group".to_vec(), from))
        );
    }
    // IP_MULTICAST_ALL off: only the groups the socket joined itself.
    assert!(r2.multicast_all_v4().unwrap());
    r2.set_multicast_all_v4(false).unwrap();
    tx.send_to(b"members only", (GROUP, 5000)).await.unwrap();
    assert_eq!(recv_within(&r1, LONG).await.unwrap().0, b"members only");
    assert_eq!(recv_within(&r2, SHORT).await, None);
    r2.join_multicast_v4(GROUP, B).unwrap();
    tx.send_to(b"joined", (GROUP, 5000)).await.unwrap();
    for r in [&r1, &r2] {
        assert_eq!(recv_within(r, LONG).await.unwrap().0, b"joined");
    }
    r2.leave_multicast_v4(GROUP, B).unwrap();
    // A group nobody joined is not received, and draws no ICMP error.
    tx.send_to(b"elsewhere", (Ipv4Addr::new(239, 1, 2, 4), 5000))
        .await
        .unwrap();
    assert_eq!(recv_within(&r1, SHORT).await, None);
    assert_eq!(s2.stats().icmp.out_dest_unreachs, 0);
    // Unicast to the shared port goes to one socket: the one bound last.
    tx.send_to(b"unicast", (B, 5000)).await.unwrap();
    assert_eq!(
        recv_within(&r2, LONG).await,
        Some((b"unicast".to_vec(), from))
    );
    assert_eq!(recv_within(&r1, SHORT).await, None);
    // After the leave the group is not received any more.
    r1.leave_multicast_v4(GROUP, B).unwrap();
    assert!(s2.multicast_groups().is_empty());
    tx.send_to(b"too late", (GROUP, 5000)).await.unwrap();
    assert_eq!(recv_within(&r2, SHORT).await, None);
    let st = s2.stats();
    assert!(st.ip.in_mcast_pkts >= 1, "{:?}", st.ip);
    assert!(st.igmp.out_reports >= 2, "join and leave: {:?}", st.igmp);
}

#[tokio::test]
async fn membership_errors_are_clear() {
    let (s1, _s2) = pair().await;
    let s = UdpSocket::bind_with(&s1, "0.0.0.0:5001").await.unwrap();
    let e = s.join_multicast_v4(B, A).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "not a group: {e}");
    let e = s
        .join_multicast_v4(GROUP, Ipv4Addr::new(10, 9, 9, 9))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "no such interface: {e}");
    // No route to the group and no interface named: Linux's ENODEV too.
    let e = s
        .join_multicast_v4(GROUP, Ipv4Addr::UNSPECIFIED)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    s.join_multicast_v4(GROUP, A).unwrap();
    let e = s.join_multicast_v4(GROUP, A).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "twice: {e}");
    let e = s
        .leave_multicast_v4(Ipv4Addr::new(239, 0, 0, 9), A)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "not joined: {e}");
    for i in 1..20 {
        s.join_multicast_v4(Ipv4Addr::new(239, 5, 0, i), A).unwrap();
    }
    let e = s
        .join_multicast_v4(Ipv4Addr::new(239, 5, 0, 20), A)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "21st group: {e}");
    assert_eq!(s1.multicast_groups().len(), 20);
    // 0.0.0.0 leaves the socket's membership of the group wherever it is.
    s.leave_multicast_v4(GROUP, Ipv4Addr::UNSPECIFIED).unwrap();
    assert_eq!(s1.multicast_groups().len(), 19);
    // Dropping the socket leaves the rest.
    drop(s);
    assert!(common::eventually(|| s1.multicast_groups().is_empty()).await);
    // Options and their checks.
    let s = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    assert_eq!(s.multicast_ttl_v4().unwrap(), 1);
    assert!(s.multicast_loop_v4().unwrap());
    assert_eq!(s.multicast_if_v4().unwrap(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        s.set_multicast_ttl_v4(256).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        s.set_multicast_if_v4(Ipv4Addr::new(10, 9, 9, 9))
            .unwrap_err()
            .kind(),
        ErrorKind::AddrNotAvailable
    );
    // TCP has no multicast: a connect to a group is refused at once, with a route to it
    // or without (Linux: ENETUNREACH either way).
    let e = ustack::net::TcpStream::connect_with(&s1, (GROUP, 80))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
    s1.add_route("224.0.0.0/4".parse().unwrap(), None).unwrap();
    let e = ustack::net::TcpStream::connect_with(&s1, (GROUP, 80))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
    // With a route to the group, 0.0.0.0 joins on the device it leads to.
    s.join_multicast_v4(GROUP, Ipv4Addr::UNSPECIFIED).unwrap();
    assert_eq!(s1.multicast_groups(), vec![("veth0".to_string(), GROUP, 1)]);
    // Without SO_REUSEADDR on both, a second bind of a port is refused.
    let one = UdpSocket::bind_with(&s1, "0.0.0.0:5002").await.unwrap();
    let e = UdpSocket::bind_with(&s1, "0.0.0.0:5002").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    drop(one);
    let _shared = shared(&s1, "0.0.0.0:5002", false);
    let e = UdpSocket::bind_with(&s1, "0.0.0.0:5002").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "only one side set it");
}

#[tokio::test]
async fn own_multicasts_loop_back_unless_turned_off() {
    let (s1, s2) = pair().await;
    let local = UdpSocket::bind_with(&s1, "0.0.0.0:5100").await.unwrap();
    local.join_multicast_v4(GROUP, A).unwrap();
    let remote = UdpSocket::bind_with(&s2, "0.0.0.0:5100").await.unwrap();
    remote.join_multicast_v4(GROUP, B).unwrap();
    let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    tx.set_multicast_if_v4(A).unwrap();
    tx.send_to(b"loop", (GROUP, 5100)).await.unwrap();
    assert_eq!(recv_within(&local, LONG).await.unwrap().0, b"loop");
    assert_eq!(recv_within(&remote, LONG).await.unwrap().0, b"loop");
    tx.set_multicast_loop_v4(false).unwrap();
    assert!(!tx.multicast_loop_v4().unwrap());
    tx.send_to(b"no loop", (GROUP, 5100)).await.unwrap();
    assert_eq!(recv_within(&remote, LONG).await.unwrap().0, b"no loop");
    assert_eq!(recv_within(&local, SHORT).await, None);
}

#[tokio::test]
async fn reuseport_spreads_senders_and_broadcasts_reach_all() {
    let (s1, s2) = pair().await;
    let group: Vec<UdpSocket> = (0..4).map(|_| shared(&s2, "0.0.0.0:5200", true)).collect();
    // Sixteen senders: each always reaches the same member, and more than one member
    // is used.
    let mut hit = vec![0usize; group.len()];
    for _ in 0..16 {
        let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
        let mut first = None;
        for _ in 0..3 {
            tx.send_to(b"x", (B, 5200)).await.unwrap();
            let mut got = None;
            for _ in 0..100 {
                got = group
                    .iter()
                    .position(|s| s.try_recv_from(&mut [0u8; 8]).is_ok());
                if got.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = got.expect("delivered to one member");
            assert_eq!(
                *first.get_or_insert(got),
                got,
                "a sender stays on its member"
            );
        }
        hit[first.unwrap()] += 1;
    }
    assert!(
        hit.iter().filter(|&&n| n > 0).count() >= 2,
        "spread over the group: {hit:?}"
    );
    // A broadcast reaches every member, and (as in Linux) loops back to the sender's
    // own host.
    let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    tx.set_broadcast(true).unwrap();
    let own = UdpSocket::bind_with(&s1, "0.0.0.0:5200").await.unwrap();
    tx.send_to(b"all", "10.0.0.255:5200").await.unwrap();
    for s in group.iter().chain([&own]) {
        assert_eq!(recv_within(s, LONG).await.unwrap().0, b"all");
    }
}

// ---- against a raw device ----------------------------------------------------------

/// A stack on one end of an in-memory link (10.0.0.1/24); the test holds the other end.
async fn host_and_wire() -> (Stack, MemDevice) {
    let (a, wire) = MemLink::pair(MemLinkConfig::default());
    let stack = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .secret([5; 16])
        .build()
        .await
        .unwrap();
    (stack, wire)
}

/// The next IPv4 packet from the stack with protocol `proto`, within `wait`.
async fn next_packet(wire: &mut MemDevice, proto: u8, wait: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut got = Vec::new();
        let recv = std::future::poll_fn(|cx| wire.poll_recv(cx, &mut got, 64));
        match tokio::time::timeout_at(deadline, recv).await {
            Err(_) => return None,
            Ok(r) => {
                r.unwrap();
            }
        }
        if let Some(p) = got.iter().find(|p| p.data().get(9) == Some(&proto)) {
            return Some(p.data().to_vec());
        }
    }
}

fn sum16(b: &[u8]) -> u16 {
    let mut acc: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 datagram from 10.0.0.9 to `dst` carrying `payload` with protocol `proto`
/// and TTL 1.
fn datagram(dst: Ipv4Addr, proto: u8, payload: &[u8]) -> PacketBuf {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 1, proto, 0, 0, 10, 0, 0, 9];
    h.extend_from_slice(&dst.octets());
    let total = (20 + payload.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let c = sum16(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    let mut p = PacketBuf::with_payload_capacity(h.len());
    p.extend_from_slice(&h);
    p
}

/// An IGMP message of type `typ` with max response code `code` about `group`.
fn igmp(typ: u8, code: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&group.octets());
    let c = sum16(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

#[tokio::test]
async fn igmp_on_the_wire_follows_rfc_3376_and_an_older_querier() {
    let (stack, mut wire) = host_and_wire().await;
    let sock = UdpSocket::bind_with(&stack, "0.0.0.0:5300").await.unwrap();
    sock.join_multicast_v4(GROUP, A).unwrap();
    // The join: an IGMPv3 report to 224.0.0.22, TTL 1, Router Alert, TOS 0xc0.
    let p = next_packet(&mut wire, 2, LONG).await.expect("a report");
    assert_eq!(p[0], 0x46, "header with one option word");
    assert_eq!((p[1], p[8]), (0xc0, 1), "TOS and TTL");
    assert_eq!(&p[20..24], &[0x94, 0x04, 0, 0], "Router Alert");
    assert_eq!(sum16(&p[..24]), 0, "header checksum");
    assert_eq!(&p[12..16], &A.octets());
    assert_eq!(&p[16..20], &[224, 0, 0, 22]);
    let m = &p[24..];
    assert_eq!(sum16(m), 0, "IGMP checksum");
    assert_eq!(
        (m[0], &m[6..8]),
        (0x22, &[0u8, 1][..]),
        "v3 report, one record"
    );
    assert_eq!(
        &m[8..16],
        &[4, 0, 0, 0, 239, 1, 2, 3],
        "TO_EX {{}} for the group"
    );
    // And its repetition within a second.
    let again = next_packet(&mut wire, 2, Duration::from_millis(1500))
        .await
        .expect("repeated");
    assert_eq!(&again[24 + 8..24 + 16], &[4, 0, 0, 0, 239, 1, 2, 3]);

    // A v2 querier: a general query (max response 1 s) switches the device to v2.
    wire.transmit(&mut vec![datagram(
        Ipv4Addr::new(224, 0, 0, 1),
        2,
        &igmp(0x11, 10, Ipv4Addr::UNSPECIFIED),
    )]);
    let p = next_packet(&mut wire, 2, Duration::from_millis(2500))
        .await
        .expect("an answer");
    assert_eq!(&p[16..20], &GROUP.octets(), "a v2 report goes to the group");
    assert_eq!(&p[24..], &igmp(0x16, 0, GROUP)[..]);
    assert_eq!(stack.stats().igmp.in_queries, 1);

    // Datagrams to the group arrive; to another group they do not.
    let udp = |dport: u16| {
        let mut u = vec![0x30, 0x39, (dport >> 8) as u8, dport as u8, 0, 13, 0, 0];
        u.extend_from_slice(b"hello");
        u
    };
    wire.transmit(&mut vec![
        datagram(Ipv4Addr::new(239, 9, 9, 9), 17, &udp(5300)),
        datagram(GROUP, 17, &udp(5300)),
    ]);
    let (data, from) = recv_within(&sock, LONG)
        .await
        .expect("the group's datagram");
    assert_eq!(data, b"hello");
    assert_eq!(from, "10.0.0.9:12345".parse::<SocketAddr>().unwrap());
    assert_eq!(recv_within(&sock, SHORT).await, None);

    // Multicasts leave with TTL 1, or the socket's IP_MULTICAST_TTL.
    sock.set_multicast_if_v4(A).unwrap();
    sock.send_to(b"a", (GROUP, 6000)).await.unwrap();
    let p = next_packet(&mut wire, 17, LONG)
        .await
        .expect("multicast out");
    assert_eq!((p[8], &p[16..20]), (1, &GROUP.octets()[..]));
    sock.set_multicast_ttl_v4(7).unwrap();
    sock.send_to(b"b", (GROUP, 6000)).await.unwrap();
    let p = next_packet(&mut wire, 17, LONG)
        .await
        .expect("multicast out");
    assert_eq!(p[8], 7);

    // In v2 mode, the leave is a v2 leave to 224.0.0.2.
    sock.leave_multicast_v4(GROUP, A).unwrap();
    let p = next_packet(&mut wire, 2, LONG).await.expect("a leave");
    assert_eq!(&p[16..20], &[224, 0, 0, 2]);
    assert_eq!(&p[24..], &igmp(0x17, 0, GROUP)[..]);
    // A hostile message (bad checksum) is counted and ignored.
    let mut bad = igmp(0x11, 10, Ipv4Addr::UNSPECIFIED);
    bad[2] ^= 0xff;
    wire.transmit(&mut vec![datagram(Ipv4Addr::new(224, 0, 0, 1), 2, &bad)]);
    assert!(common::eventually(|| stack.stats().igmp.in_errors == 1).await);
}

#[tokio::test]
async fn a_socket_bound_to_a_group_takes_only_that_group() {
    let (s1, s2) = pair().await;
    // Bound to the group's address (as Linux allows): the group's datagrams only.
    let only = shared(&s2, "239.1.2.3:5400", false);
    only.join_multicast_v4(GROUP, B).unwrap();
    let other = UdpSocket::bind_with(&s2, "0.0.0.0:0").await.unwrap();
    other
        .join_multicast_v4(Ipv4Addr::new(239, 1, 2, 4), B)
        .unwrap();
    let tx = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    tx.set_multicast_if_v4(A).unwrap();
    tx.send_to(b"other group", (Ipv4Addr::new(239, 1, 2, 4), 5400))
        .await
        .unwrap();
    tx.send_to(b"unicast", (B, 5400)).await.unwrap();
    tx.send_to(b"the group", (GROUP, 5400)).await.unwrap();
    let (data, from) = recv_within(&only, LONG).await.unwrap();
    assert_eq!(data, b"the group", "the others were not delivered to it");
    // Its replies leave from the stack's address, not from the group.
    only.send_to(b"reply", from).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, back) = tokio::time::timeout(LONG, tx.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"reply");
    assert_eq!(back, SocketAddr::from((B, 5400)));
    // Binding a foreign unicast address is still refused.
    let e = UdpSocket::bind_with(&s2, "10.9.9.9:0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
}

/// A TCP SYN from 10.0.0.9:40000 to `dst`:80, checksum valid.
fn syn_to(dst: Ipv4Addr) -> PacketBuf {
    let mut t = vec![
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
    ];
    t.extend_from_slice(&[0, 0, 0, 0]);
    let mut pseudo = vec![10, 0, 0, 9];
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, t.len() as u8]);
    pseudo.extend_from_slice(&t);
    let c = sum16(&pseudo);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    datagram(dst, 6, &t)
}

#[tokio::test]
async fn tcp_ignores_segments_to_broadcast_and_multicast_addresses() {
    let (stack, mut wire) = host_and_wire().await;
    let _l = ustack::net::TcpListener::bind_with(&stack, "0.0.0.0:80")
        .await
        .unwrap();
    // RFC 1122 4.2.3.10: no answer at all (no SYN-ACK, no RST), also for the subnet's
    // broadcast address, which only IP knows to be one.
    for dst in ["10.0.0.255", "255.255.255.255", "224.0.0.1"] {
        wire.transmit(&mut vec![syn_to(dst.parse().unwrap())]);
        assert_eq!(
            next_packet(&mut wire, 6, SHORT).await,
            None,
            "answered a SYN to {dst}"
        );
    }
    // The same SYN to the stack's address is answered (the test sees replies).
    wire.transmit(&mut vec![syn_to(A)]);
    let p = next_packet(&mut wire, 6, LONG).await.expect("a SYN-ACK");
    assert_eq!(p[20 + 13] & 0x12, 0x12, "SYN-ACK");
}
