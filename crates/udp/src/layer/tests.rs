use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use ustack_ipv4::{DeliverResult, IcmpError, IcmpErrorKind, IpRxMeta, IPPROTO_UDP};
use ustack_netdev::{DevId, PacketBuf};

use super::*;
use crate::wire::prepend_header;

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn layer() -> UdpLayer {
    UdpLayer::new(UdpConfig::default(), *b"udp secret 16 by")
}

fn meta(src: Ipv4Addr, dst: Ipv4Addr) -> IpRxMeta {
    IpRxMeta {
        src,
        dst,
        protocol: IPPROTO_UDP,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: dst.is_multicast() || dst.is_broadcast() || dst.octets()[3] == 255,
    }
}

fn datagram(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> PacketBuf {
    let mut pkt = PacketBuf::with_payload_capacity(payload.len());
    pkt.extend_from_slice(payload);
    prepend_header(&mut pkt, src, dst);
    pkt
}

fn deliver(
    u: &mut UdpLayer,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> DeliverResult {
    let pkt = datagram(src, dst, payload);
    u.input(Instant::now(), &meta(*src.ip(), *dst.ip()), pkt)
}

fn recv(u: &mut UdpLayer, id: SockId) -> Result<(Vec<u8>, SocketAddrV4), UdpError> {
    let mut buf = [0u8; 2048];
    u.recv_from(id, &mut buf)
        .map(|(n, a)| (buf[..n].to_vec(), a))
}

#[test]
fn send_builds_a_valid_datagram_and_autobinds() {
    let mut u = layer();
    let s = u.socket();
    assert_eq!(u.local_addr(s), None);
    let out = u
        .send_to(s, ip("10.0.0.1"), sa("10.0.0.2:53"), b"query")
        .unwrap();
    let local = u.local_addr(s).unwrap();
    assert!(local.ip().is_unspecified());
    assert!((32768..=60999).contains(&local.port()));
    assert_eq!(
        (out.src, out.dst, out.ttl),
        (ip("10.0.0.1"), ip("10.0.0.2"), None)
    );
    let h = UdpHeader::parse(out.pkt.data(), out.src, out.dst, true).unwrap();
    assert_eq!(
        (h.src_port, h.dst_port, h.payload_len()),
        (local.port(), 53, 5)
    );
    assert_eq!(&out.pkt.data()[8..], b"query");
    assert!(out.pkt.headroom() >= 60);
    assert_eq!(u.stats().out_datagrams, 1);
    u.set_ttl(s, 9).unwrap();
    let out = u
        .send_to(s, ip("10.0.0.1"), sa("10.0.0.2:53"), b"")
        .unwrap();
    assert_eq!(out.ttl, Some(9));
}

#[test]
fn send_limits() {
    let mut u = layer();
    let s = u.socket();
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert_eq!(
        u.send_to(s, ip("10.0.0.1"), sa("10.0.0.2:9"), &big)
            .unwrap_err(),
        UdpError::MessageTooLong
    );
    assert!(u
        .send_to(s, ip("10.0.0.1"), sa("10.0.0.2:9"), &big[1..])
        .is_ok());
    assert_eq!(
        u.send_to(s, ip("10.0.0.1"), sa("10.0.0.2:0"), b"x")
            .unwrap_err(),
        UdpError::InvalidInput
    );
    assert_eq!(
        u.send(s, ip("10.0.0.1"), b"x").unwrap_err(),
        UdpError::NotConnected
    );
    assert_eq!(
        std::io::Error::from(UdpError::MessageTooLong).kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn bind_conflicts() {
    let mut u = layer();
    let a = u.socket();
    let b = u.socket();
    let c = u.socket();
    u.bind(a, sa("10.0.0.2:53")).unwrap();
    assert_eq!(u.bind(b, sa("10.0.0.2:53")), Err(UdpError::AddrInUse));
    assert_eq!(u.bind(b, sa("0.0.0.0:53")), Err(UdpError::AddrInUse));
    u.bind(b, sa("10.0.0.3:53")).unwrap();
    u.bind(c, sa("0.0.0.0:54")).unwrap();
    let d = u.socket();
    assert_eq!(u.bind(d, sa("10.0.0.2:54")), Err(UdpError::AddrInUse));
    // Binding twice is EINVAL.
    assert_eq!(u.bind(a, sa("10.0.0.2:55")), Err(UdpError::InvalidInput));
    // Closing frees the port; the old id is stale.
    u.close(c);
    u.bind(d, sa("10.0.0.2:54")).unwrap();
    assert_eq!(u.bind(c, sa("10.0.0.2:56")), Err(UdpError::InvalidInput));
    assert_eq!(u.local_addr(c), None);
    assert_eq!(
        std::io::Error::from(UdpError::AddrInUse).kind(),
        std::io::ErrorKind::AddrInUse
    );
    assert_eq!(u.socket_count(), 3);
}

#[test]
fn ephemeral_ports_are_distinct_and_bounded() {
    let cfg = UdpConfig {
        ephemeral: (40000, 40003),
        ..UdpConfig::default()
    };
    let mut u = UdpLayer::new(cfg, [1; 16]);
    let mut ports = Vec::new();
    for _ in 0..4 {
        let s = u.socket();
        u.bind(s, sa("0.0.0.0:0")).unwrap();
        ports.push(u.local_addr(s).unwrap().port());
    }
    ports.sort();
    assert_eq!(ports, vec![40000, 40001, 40002, 40003]);
    let s = u.socket();
    assert_eq!(u.bind(s, sa("0.0.0.0:0")), Err(UdpError::AddrInUse));
    // The start point depends on the secret.
    let first = |secret: [u8; 16]| {
        let mut u = UdpLayer::new(UdpConfig::default(), secret);
        let s = u.socket();
        u.bind(s, sa("0.0.0.0:0")).unwrap();
        u.local_addr(s).unwrap().port()
    };
    let firsts: std::collections::HashSet<u16> = (0..8u8).map(|i| first([i; 16])).collect();
    assert!(firsts.len() > 4);
}

#[test]
fn demux_exact_before_wildcard() {
    let mut u = layer();
    let w = u.socket();
    u.bind(w, sa("0.0.0.0:7000")).unwrap();
    // Connecting moves the wildcard binding to the route's source address ...
    u.connect(w, ip("10.0.0.2"), sa("10.0.0.9:1")).unwrap();
    assert_eq!(u.local_addr(w), Some(sa("10.0.0.2:7000")));
    let e = u.socket();
    u.bind(e, sa("10.0.0.3:7000")).unwrap();
    // ... and disconnecting moves it back: now wildcard and exact share port 7000.
    u.disconnect(w);
    assert_eq!(u.local_addr(w), Some(sa("0.0.0.0:7000")));
    assert_eq!(u.peer_addr(w), None);
    let peer = sa("10.0.0.1:5555");
    assert_eq!(
        deliver(&mut u, peer, sa("10.0.0.3:7000"), b"to e"),
        DeliverResult::Consumed
    );
    assert_eq!(
        deliver(&mut u, peer, sa("10.0.0.2:7000"), b"to w"),
        DeliverResult::Consumed
    );
    assert_eq!(recv(&mut u, e).unwrap(), (b"to e".to_vec(), peer));
    assert_eq!(recv(&mut u, w).unwrap(), (b"to w".to_vec(), peer));
    assert_eq!(recv(&mut u, w), Err(UdpError::WouldBlock));
    assert_eq!(u.stats().in_datagrams, 2);
}

#[test]
fn no_socket_is_port_unreachable() {
    let mut u = layer();
    let peer = sa("10.0.0.1:5555");
    assert_eq!(
        deliver(&mut u, peer, sa("10.0.0.2:9"), b"?"),
        DeliverResult::PortUnreachable
    );
    assert_eq!(u.stats().no_ports, 1);
    // Broadcasts never trigger ICMP (RFC 1122 4.1.3.1).
    assert_eq!(
        deliver(&mut u, peer, sa("255.255.255.255:9"), b"?"),
        DeliverResult::Consumed
    );
    assert_eq!(u.stats().ignored_multi, 1);
    // A wildcard socket takes broadcasts to its port.
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:67")).unwrap();
    assert_eq!(
        deliver(&mut u, peer, sa("255.255.255.255:67"), b"dhcp"),
        DeliverResult::Consumed
    );
    assert_eq!(recv(&mut u, s).unwrap().0, b"dhcp");
}

#[test]
fn bad_checksum_and_length_dropped_and_counted() {
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:53")).unwrap();
    let src = sa("10.0.0.1:1000");
    let dst = sa("10.0.0.2:53");
    let mut pkt = datagram(src, dst, b"payload");
    pkt.data_mut()[9] ^= 1;
    assert_eq!(
        u.input(Instant::now(), &meta(*src.ip(), *dst.ip()), pkt),
        DeliverResult::Consumed
    );
    assert_eq!(u.stats().in_csum_errors, 1);
    assert_eq!(u.stats().in_errors, 1);
    assert!(!u.readable(s));
    // Length field beyond the data.
    let mut pkt = datagram(src, dst, b"payload");
    pkt.data_mut()[5] = 200;
    u.input(Instant::now(), &meta(*src.ip(), *dst.ip()), pkt);
    // Too short for a header.
    u.input(
        Instant::now(),
        &meta(*src.ip(), *dst.ip()),
        PacketBuf::from_slice(&[0, 1, 2]),
    );
    assert_eq!(u.stats().in_errors, 3);
    // Checksum 0 = none: accepted; trailing link padding is cut off.
    let mut raw = datagram(src, dst, b"abc").into_vec();
    raw[6] = 0;
    raw[7] = 0;
    raw.extend_from_slice(&[0xee; 5]);
    u.input(
        Instant::now(),
        &meta(*src.ip(), *dst.ip()),
        PacketBuf::from_vec(raw),
    );
    assert_eq!(recv(&mut u, s).unwrap(), (b"abc".to_vec(), src));
}

#[test]
fn receive_queue_is_bounded() {
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:9000")).unwrap();
    u.set_recv_buf(s, 0).unwrap();
    assert_eq!(u.recv_buf(s), Ok(MIN_RECV_BUF));
    // A datagram is charged the storage its packet holds, plus the per-datagram overhead.
    let per =
        datagram(sa("10.0.0.1:1"), sa("10.0.0.2:9000"), &[5; 100]).truesize() + DATAGRAM_OVERHEAD;
    assert!(per >= 100 + DATAGRAM_OVERHEAD);
    let fit = MIN_RECV_BUF / per;
    let src = sa("10.0.0.1:1");
    for _ in 0..fit + 3 {
        deliver(&mut u, src, sa("10.0.0.2:9000"), &[5; 100]);
    }
    assert_eq!(u.queued(s), Some((fit, fit * per)));
    assert_eq!(u.stats().rcvbuf_errors, 3);
    assert_eq!(u.stats().in_errors, 3);
    recv(&mut u, s).unwrap();
    deliver(&mut u, src, sa("10.0.0.2:9000"), &[5; 100]);
    assert_eq!(u.queued(s), Some((fit, fit * per)));
    // One datagram always fits into an empty queue, however large.
    let t = u.socket();
    u.bind(t, sa("0.0.0.0:9001")).unwrap();
    u.set_recv_buf(t, 0).unwrap();
    deliver(&mut u, src, sa("10.0.0.2:9001"), &[1; 5000]);
    let mut big = vec![0u8; 8000];
    assert_eq!(u.recv_from(t, &mut big).unwrap().0, 5000);
}

#[test]
fn connected_socket_filters_by_peer() {
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("10.0.0.2:4000")).unwrap();
    u.connect(s, ip("10.0.0.2"), sa("10.0.0.1:5000")).unwrap();
    assert_eq!(u.peer_addr(s), Some(sa("10.0.0.1:5000")));
    let to = sa("10.0.0.2:4000");
    assert_eq!(
        deliver(&mut u, sa("10.0.0.1:5001"), to, b"other port"),
        DeliverResult::PortUnreachable
    );
    assert_eq!(
        deliver(&mut u, sa("10.0.0.7:5000"), to, b"other host"),
        DeliverResult::PortUnreachable
    );
    assert_eq!(
        deliver(&mut u, sa("10.0.0.1:5000"), to, b"peer"),
        DeliverResult::Consumed
    );
    assert_eq!(recv(&mut u, s).unwrap().0, b"peer");
    let out = u.send(s, ip("10.0.0.2"), b"hi").unwrap();
    assert_eq!(out.dst, ip("10.0.0.1"));
    // An explicitly bound port survives disconnect; an autobound one does not.
    u.disconnect(s);
    assert_eq!(u.local_addr(s), Some(sa("10.0.0.2:4000")));
    let t = u.socket();
    u.connect(t, ip("10.0.0.2"), sa("10.0.0.1:5000")).unwrap();
    let l = u.local_addr(t).unwrap();
    assert_eq!(*l.ip(), ip("10.0.0.2"));
    u.disconnect(t);
    assert_eq!(u.local_addr(t), None);
    assert_eq!(
        u.connect(t, ip("10.0.0.2"), sa("10.0.0.1:0")),
        Err(UdpError::InvalidInput)
    );
}

fn port_unreachable(ours: SocketAddrV4, peer: SocketAddrV4, kind: IcmpErrorKind) -> IcmpError {
    let mut quoted = Vec::new();
    quoted.extend_from_slice(&ours.port().to_be_bytes());
    quoted.extend_from_slice(&peer.port().to_be_bytes());
    quoted.extend_from_slice(&[0, 8, 0, 0]);
    IcmpError {
        kind,
        reporter: *peer.ip(),
        orig_src: *ours.ip(),
        orig_dst: *peer.ip(),
        orig_protocol: IPPROTO_UDP,
        quoted,
    }
}

#[test]
fn icmp_port_unreachable_refuses_connected_socket() {
    let mut u = layer();
    let s = u.socket();
    u.connect(s, ip("10.0.0.1"), sa("10.0.0.2:9")).unwrap();
    let ours = SocketAddrV4::new(ip("10.0.0.1"), u.local_addr(s).unwrap().port());
    let mut ev = Vec::new();
    u.drain_events(&mut ev);
    assert!(ev.is_empty());
    // A soft error (host unreachable) is ignored, a wrong peer port too.
    u.err_input(&port_unreachable(
        ours,
        sa("10.0.0.2:9"),
        IcmpErrorKind::HostUnreachable,
    ));
    u.err_input(&port_unreachable(
        ours,
        sa("10.0.0.2:10"),
        IcmpErrorKind::PortUnreachable,
    ));
    assert!(!u.readable(s));
    u.err_input(&port_unreachable(
        ours,
        sa("10.0.0.2:9"),
        IcmpErrorKind::PortUnreachable,
    ));
    assert!(u.readable(s));
    u.drain_events(&mut ev);
    assert_eq!(ev, vec![s]);
    assert_eq!(recv(&mut u, s), Err(UdpError::ConnectionRefused));
    assert_eq!(recv(&mut u, s), Err(UdpError::WouldBlock));
    assert_eq!(
        std::io::Error::from(UdpError::ConnectionRefused).kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    // take_error also reports it, once.
    u.err_input(&port_unreachable(
        ours,
        sa("10.0.0.2:9"),
        IcmpErrorKind::PortUnreachable,
    ));
    assert_eq!(u.take_error(s), Some(UdpError::ConnectionRefused));
    assert_eq!(u.take_error(s), None);
    // Unconnected sockets are not told (Linux without IP_RECVERR).
    let t = u.socket();
    u.bind(t, sa("0.0.0.0:6000")).unwrap();
    u.err_input(&port_unreachable(
        sa("10.0.0.1:6000"),
        sa("10.0.0.2:9"),
        IcmpErrorKind::PortUnreachable,
    ));
    assert_eq!(u.take_error(t), None);
}

#[test]
fn truncation_and_peek() {
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:9000")).unwrap();
    let src = sa("10.0.0.1:1");
    deliver(&mut u, src, sa("10.0.0.2:9000"), &[1; 100]);
    deliver(&mut u, src, sa("10.0.0.2:9000"), &[2; 3]);
    let mut small = [0u8; 10];
    assert_eq!(u.peek_from(s, &mut small), Ok((10, src)));
    assert_eq!(u.peek_from(s, &mut small), Ok((10, src)));
    assert_eq!(u.stats().in_datagrams, 0);
    assert_eq!(u.recv_from(s, &mut small), Ok((10, src)));
    assert_eq!(small, [1; 10]);
    // The rest of the long datagram is gone.
    assert_eq!(u.recv_from(s, &mut small), Ok((3, src)));
    assert_eq!(&small[..3], &[2; 3]);
    assert_eq!(u.queued(s), Some((0, 0)));
    assert_eq!(u.recv_from(s, &mut small), Err(UdpError::WouldBlock));
}

#[test]
fn events_once_per_drain_and_ttl() {
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:9000")).unwrap();
    for _ in 0..3 {
        deliver(&mut u, sa("10.0.0.1:1"), sa("10.0.0.2:9000"), b"x");
    }
    let mut ev = Vec::new();
    u.drain_events(&mut ev);
    assert_eq!(ev, vec![s]);
    ev.clear();
    u.drain_events(&mut ev);
    assert!(ev.is_empty());
    assert_eq!(u.ttl(s), Ok(64));
    assert_eq!(u.set_ttl(s, 0), Err(UdpError::InvalidInput));
    u.set_ttl(s, 9).unwrap();
    assert_eq!(u.ttl(s), Ok(9));
    // A closed socket's events are not reported; its id is stale everywhere.
    deliver(&mut u, sa("10.0.0.1:1"), sa("10.0.0.2:9000"), b"x");
    u.close(s);
    u.drain_events(&mut ev);
    assert!(ev.is_empty());
    assert_eq!(u.ttl(s), Err(UdpError::InvalidInput));
    assert!(!u.readable(s));
    let n = u.socket();
    assert_ne!(n, s);
    assert_eq!(SockId::from_u64(n.to_u64()), n);
}

#[test]
fn checksum_not_verified_when_the_device_vouches_for_it() {
    // A TUN with offloads hands over kernel-made datagrams whose checksum field holds only
    // the pseudo-header sum (partial): such a buffer is flagged and must be accepted.
    let mut u = layer();
    let s = u.socket();
    u.bind(s, sa("0.0.0.0:53")).unwrap();
    let src = sa("10.0.0.1:1000");
    let dst = sa("10.0.0.2:53");
    let mut pkt = datagram(src, dst, b"partial");
    pkt.data_mut()[6] ^= 0x5a;
    pkt.set_csum_unnecessary(true);
    assert_eq!(
        u.input(Instant::now(), &meta(*src.ip(), *dst.ip()), pkt),
        DeliverResult::Consumed
    );
    assert_eq!(recv(&mut u, s).unwrap().0, b"partial");
    assert_eq!(u.stats().in_csum_errors, 0);
    // The same bytes without the flag are dropped.
    let mut pkt = datagram(src, dst, b"partial");
    pkt.data_mut()[6] ^= 0x5a;
    u.input(Instant::now(), &meta(*src.ip(), *dst.ip()), pkt);
    assert_eq!(u.stats().in_csum_errors, 1);
    assert!(!u.readable(s));
}

/// A socket with the given reuse flags bound to `addr`.
fn shared(
    u: &mut UdpLayer,
    addr: &str,
    reuseaddr: bool,
    reuseport: bool,
) -> Result<SockId, UdpError> {
    let s = u.socket();
    u.set_reuseaddr(s, reuseaddr).unwrap();
    u.set_reuseport(s, reuseport).unwrap();
    u.bind(s, sa(addr)).map(|()| s)
}

#[test]
fn a_port_is_shared_only_when_every_socket_allows_it() {
    let mut u = layer();
    let a = shared(&mut u, "0.0.0.0:53", true, false).unwrap();
    assert_eq!(
        shared(&mut u, "0.0.0.0:53", false, false),
        Err(UdpError::AddrInUse)
    );
    assert_eq!(
        shared(&mut u, "10.0.0.2:53", false, true),
        Err(UdpError::AddrInUse)
    );
    let b = shared(&mut u, "10.0.0.2:53", true, false).unwrap();
    let c = shared(&mut u, "0.0.0.0:53", true, false).unwrap();
    assert!(u.reuseaddr(a).unwrap() && !u.reuseport(a).unwrap());
    // Unicast: the exact address first, then among the wildcard ones the last bound.
    deliver(&mut u, sa("10.0.0.1:9"), sa("10.0.0.2:53"), b"exact");
    deliver(&mut u, sa("10.0.0.1:9"), sa("10.0.0.3:53"), b"wild");
    assert_eq!(recv(&mut u, b).unwrap().0, b"exact");
    assert_eq!(recv(&mut u, c).unwrap().0, b"wild");
    assert_eq!(recv(&mut u, a), Err(UdpError::WouldBlock));
    // A connected socket wins for its peer.
    u.connect(a, ip("10.0.0.3"), sa("10.0.0.1:9")).unwrap();
    deliver(&mut u, sa("10.0.0.1:9"), sa("10.0.0.3:53"), b"peer");
    assert_eq!(recv(&mut u, a).unwrap().0, b"peer");
    // SO_REUSEPORT groups need the flag on every member.
    let p = shared(&mut u, "0.0.0.0:54", false, true).unwrap();
    assert_eq!(
        shared(&mut u, "0.0.0.0:54", true, false),
        Err(UdpError::AddrInUse)
    );
    shared(&mut u, "0.0.0.0:54", false, true).unwrap();
    assert!(u.reuseport(p).unwrap());
    // Ephemeral ports are never shared.
    let e = u.socket();
    u.bind(e, sa("0.0.0.0:0")).unwrap();
    assert!(![53, 54].contains(&u.local_addr(e).unwrap().port()));
}

#[test]
fn a_reuseport_group_keeps_each_sender_on_one_member() {
    let mut u = layer();
    let group: Vec<SockId> = (0..4)
        .map(|_| shared(&mut u, "0.0.0.0:5000", false, true).unwrap())
        .collect();
    let mut used = std::collections::HashSet::new();
    for port in 1000..1064u16 {
        let from = SocketAddrV4::new(ip("10.0.0.1"), port);
        let mut member = None;
        for _ in 0..3 {
            deliver(&mut u, from, sa("10.0.0.2:5000"), b"x");
            let got: Vec<SockId> = group
                .iter()
                .copied()
                .filter(|s| recv(&mut u, *s).is_ok())
                .collect();
            assert_eq!(got.len(), 1, "one member per datagram");
            assert_eq!(*member.get_or_insert(got[0]), got[0], "stable per sender");
        }
        used.insert(member.unwrap());
    }
    assert_eq!(used.len(), 4, "64 senders reach every member");
}

#[test]
fn multicast_and_broadcast_reach_every_matching_socket() {
    let mut u = layer();
    let wild = shared(&mut u, "0.0.0.0:5353", true, false).unwrap();
    let group = shared(&mut u, "224.0.0.251:5353", true, false).unwrap();
    let unicast = shared(&mut u, "10.0.0.2:5353", true, false).unwrap();
    let other_dev = shared(&mut u, "0.0.0.0:5353", true, false).unwrap();
    u.set_bound_dev(other_dev, Some(DevId(7))).unwrap();
    let src = sa("10.0.0.1:5353");
    assert_eq!(
        deliver(&mut u, src, sa("224.0.0.251:5353"), b"mdns"),
        DeliverResult::Consumed
    );
    assert_eq!(recv(&mut u, wild).unwrap(), (b"mdns".to_vec(), src));
    assert_eq!(recv(&mut u, group).unwrap().0, b"mdns");
    assert_eq!(
        recv(&mut u, unicast),
        Err(UdpError::WouldBlock),
        "bound to another address"
    );
    assert_eq!(
        recv(&mut u, other_dev),
        Err(UdpError::WouldBlock),
        "bound to another device"
    );
    deliver(&mut u, src, sa("255.255.255.255:5353"), b"all");
    assert_eq!(recv(&mut u, wild).unwrap().0, b"all");
    assert_eq!(recv(&mut u, group), Err(UdpError::WouldBlock));
    // A subnet's broadcast: the caller knows it is one.
    let pkt = datagram(src, sa("10.0.0.255:5353"), b"subnet");
    u.input(Instant::now(), &meta(ip("10.0.0.1"), ip("10.0.0.255")), pkt);
    assert_eq!(recv(&mut u, wild).unwrap().0, b"subnet");
    // Nobody on the port: counted, no ICMP; a bad checksum is counted once, not per socket.
    let before = u.stats();
    assert_eq!(
        deliver(&mut u, src, sa("239.1.1.1:9999"), b"x"),
        DeliverResult::Consumed
    );
    let mut bad = datagram(src, sa("224.0.0.251:5353"), b"bad");
    let last = bad.len() - 1;
    bad.data_mut()[last] ^= 0xff;
    u.input(
        Instant::now(),
        &meta(ip("10.0.0.1"), ip("224.0.0.251")),
        bad,
    );
    let after = u.stats();
    assert_eq!(after.ignored_multi, before.ignored_multi + 1);
    assert_eq!(after.in_csum_errors, before.in_csum_errors + 1);
    assert_eq!(recv(&mut u, wild), Err(UdpError::WouldBlock));
}

#[test]
fn memberships_and_multicast_options() {
    let mut u = layer();
    let s = u.socket();
    let g = ip("239.1.2.3");
    assert_eq!(
        u.add_membership(s, ip("10.0.0.1"), DevId(0)),
        Err(UdpError::InvalidInput)
    );
    u.add_membership(s, g, DevId(0)).unwrap();
    assert_eq!(u.add_membership(s, g, DevId(0)), Err(UdpError::AddrInUse));
    u.add_membership(s, g, DevId(1)).unwrap();
    for i in 2..MAX_MEMBERSHIPS as u8 {
        u.add_membership(s, Ipv4Addr::new(239, 9, 9, i), DevId(0))
            .unwrap();
    }
    assert_eq!(
        u.add_membership(s, ip("239.9.9.250"), DevId(0)),
        Err(UdpError::NoBufs)
    );
    // No device given: the first membership of the group.
    assert_eq!(u.drop_membership(s, g, None), Ok(DevId(0)));
    assert_eq!(
        u.drop_membership(s, g, Some(DevId(0))),
        Err(UdpError::AddrNotAvailable)
    );
    assert_eq!(u.drop_membership(s, g, Some(DevId(1))), Ok(DevId(1)));
    assert_eq!(u.memberships(s).len(), MAX_MEMBERSHIPS - 2);
    // Multicasts take the multicast TTL, the IP_MULTICAST_IF device and loop by default;
    // unicasts the socket's TTL and no device.
    assert_eq!((u.multicast_ttl(s), u.multicast_loop(s)), (Ok(1), Ok(true)));
    u.set_multicast_if(s, Some((ip("10.0.0.2"), DevId(3))))
        .unwrap();
    let d = u
        .send_to(s, ip("10.0.0.2"), sa("239.1.2.3:9"), b"m")
        .unwrap();
    assert_eq!((d.ttl, d.oif, d.mc_loop), (Some(1), Some(DevId(3)), true));
    u.set_multicast_ttl(s, 0).unwrap();
    u.set_multicast_loop(s, false).unwrap();
    let d = u
        .send_to(s, ip("10.0.0.2"), sa("239.1.2.3:9"), b"m")
        .unwrap();
    assert_eq!((d.ttl, d.mc_loop), (Some(0), false));
    let d = u
        .send_to(s, ip("10.0.0.2"), sa("10.0.0.1:9"), b"u")
        .unwrap();
    assert_eq!((d.ttl, d.oif, d.mc_loop), (None, None, false));
    // A device bound with SO_BINDTODEVICE wins over IP_MULTICAST_IF.
    u.set_bound_dev(s, Some(DevId(5))).unwrap();
    let d = u
        .send_to(s, ip("10.0.0.2"), sa("239.1.2.3:9"), b"m")
        .unwrap();
    assert_eq!(d.oif, Some(DevId(5)));
}

/// `recv_would_block` (a reader is parked on it without the receive call) is true exactly
/// when a receive would answer `WouldBlock`: nothing queued and no error pending. A
/// queued datagram or an ICMP error makes it false, as does a socket that is gone (the
/// receive call then reports that).
#[test]
fn recv_would_block_matches_recv() {
    let mut u = layer();
    let s = u.socket();
    u.connect(s, ip("10.0.0.1"), sa("10.0.0.2:9")).unwrap();
    let ours = SocketAddrV4::new(ip("10.0.0.1"), u.local_addr(s).unwrap().port());
    assert!(u.recv_would_block(s));
    assert_eq!(recv(&mut u, s), Err(UdpError::WouldBlock));
    deliver(&mut u, sa("10.0.0.2:9"), ours, b"one");
    assert!(!u.recv_would_block(s), "a datagram queued");
    assert_eq!(recv(&mut u, s).unwrap().0, b"one");
    assert!(u.recv_would_block(s), "read out");
    u.err_input(&port_unreachable(
        ours,
        sa("10.0.0.2:9"),
        IcmpErrorKind::PortUnreachable,
    ));
    assert!(!u.recv_would_block(s), "an error pending");
    assert_eq!(recv(&mut u, s), Err(UdpError::ConnectionRefused));
    assert!(u.recv_would_block(s), "error reported");
    u.close(s);
    assert!(!u.recv_would_block(s), "closed socket");
}
