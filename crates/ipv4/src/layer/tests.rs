use super::*;
use crate::arp;
use crate::IPPROTO_UDP;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const DEV: DevId = DevId(0);

fn layer() -> Ipv4Layer {
    let mut l = Ipv4Layer::new(Ipv4Config::default());
    l.add_interface(DEV, "tun0", "10.0.0.2/24".parse().unwrap(), 1500);
    l
}

fn udp_meta(dst: &str) -> OutMeta {
    meta(dst, IPPROTO_UDP, false)
}

fn meta(dst: &str, protocol: u8, dont_frag: bool) -> OutMeta {
    OutMeta {
        src: None,
        dst: ip(dst),
        protocol,
        ttl: None,
        tos: 0,
        dont_frag,
        oif: None,
        mc_loop: false,
        confirm_neigh: false,
    }
}

/// A static route to `dst` via `gateway` on `dev`.
fn static_route(dst: &str, gateway: &str, dev: DevId) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        gateway: Some(ip(gateway)),
        dev,
        metric: 0,
        src: None,
        kind: RouteKind::Static,
    }
}

fn payload(n: usize) -> PacketBuf {
    let mut p = PacketBuf::with_payload_capacity(n);
    p.extend_from_slice(&(0..n).map(|i| i as u8).collect::<Vec<_>>());
    p
}

fn take(l: &mut Ipv4Layer) -> Vec<IpTx> {
    let mut v = Vec::new();
    l.take_tx(&mut v);
    v
}

#[test]
fn route_output_network_unreachable() {
    let t = Instant::now();
    let empty = Ipv4Layer::new(Ipv4Config::default());
    assert_eq!(
        empty.route_output(ip("8.8.8.8"), t),
        Err(OutputError::NetworkUnreachable)
    );
    let mut l = layer();
    assert_eq!(
        l.route_output(ip("8.8.8.8"), t),
        Err(OutputError::NetworkUnreachable)
    );
    assert_eq!(
        l.output(t, &udp_meta("8.8.8.8"), payload(10)),
        Err(OutputError::NetworkUnreachable)
    );
    assert_eq!(l.stats().out_no_routes, 1);
    assert_eq!(
        OutputError::NetworkUnreachable.kind(),
        io::ErrorKind::NetworkUnreachable
    );
}

#[test]
fn route_output_connected_and_gateway() {
    let t = Instant::now();
    let mut l = layer();
    let r = l.route_output(ip("10.0.0.9"), t).unwrap();
    assert_eq!(
        r,
        OutRoute {
            dev: DEV,
            src: ip("10.0.0.2"),
            next_hop: ip("10.0.0.9"),
            mtu: 1500,
            tso_max: 0,
        }
    );
    l.fib_mut()
        .add(static_route("0.0.0.0/0", "10.0.0.1", DEV))
        .unwrap();
    let r = l.route_output(ip("8.8.8.8"), t).unwrap();
    assert_eq!(r.next_hop, ip("10.0.0.1"));
    assert_eq!(r.src, ip("10.0.0.2"));
    assert!(l
        .fib()
        .to_string()
        .contains("default via 10.0.0.1 dev tun0"));
}

#[test]
fn route_output_through_a_bound_device() {
    let t = Instant::now();
    let lan = DevId(1);
    let bare = DevId(2);
    let mut l = layer();
    l.add_interface(lan, "lan0", "10.2.0.2/24".parse().unwrap(), 9000);
    l.fib_mut()
        .add(static_route("0.0.0.0/0", "10.0.0.1", DEV))
        .unwrap();
    l.fib_mut()
        .add(static_route("172.16.0.0/12", "10.2.0.1", lan))
        .unwrap();
    // Unbound: the longest prefix, the /12 through lan0.
    let r = l.route_output_dev(ip("172.16.1.1"), None, t).unwrap();
    assert_eq!(r.dev, lan);
    // Bound to tun0: its routes only (the /12 goes through lan0, so the default).
    let r = l.route_output_dev(ip("172.16.1.1"), Some(DEV), t).unwrap();
    assert_eq!((r.dev, r.next_hop), (DEV, ip("10.0.0.1")));
    // Bound to lan0: the longest prefix among lan0's routes, then its link.
    let r = l.route_output_dev(ip("172.16.1.1"), Some(lan), t).unwrap();
    assert_eq!(
        (r.dev, r.next_hop, r.src, r.mtu),
        (lan, ip("10.2.0.1"), ip("10.2.0.2"), 9000)
    );
    let r = l.route_output_dev(ip("8.8.8.8"), Some(lan), t).unwrap();
    assert_eq!(
        r,
        OutRoute {
            dev: lan,
            src: ip("10.2.0.2"),
            next_hop: ip("8.8.8.8"),
            mtu: 9000,
            tso_max: 0,
        },
        "no route through lan0: on its link"
    );
    // The memo is per device: the unbound lookup of the same address is unchanged.
    assert_eq!(l.route_output_dev(ip("8.8.8.8"), None, t).unwrap().dev, DEV);
    assert_eq!(
        l.route_output_dev(ip("8.8.8.8"), Some(lan), t).unwrap().dev,
        lan
    );
    // Our own addresses stay local, whatever the device.
    let r = l.route_output_dev(ip("10.0.0.2"), Some(lan), t).unwrap();
    assert_eq!(r.mtu, LOCAL_MTU);
    // A device without an address has no source to send from.
    assert_eq!(
        l.route_output_dev(ip("8.8.8.8"), Some(bare), t),
        Err(OutputError::NetworkUnreachable)
    );
    // Output follows the bound device.
    let mut m = udp_meta("8.8.8.8");
    m.oif = Some(lan);
    l.output(t, &m, PacketBuf::from_slice(b"x")).unwrap();
    let mut tx = Vec::new();
    l.take_tx(&mut tx);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dev, lan);
    assert_eq!(
        Ipv4Repr::parse(tx[0].pkt.data()).unwrap().src,
        ip("10.2.0.2")
    );
}

#[test]
fn output_builds_header_in_headroom() {
    let t = Instant::now();
    let mut l = layer();
    let p = payload(100);
    let before = p.data().as_ptr() as usize;
    l.output(t, &udp_meta("10.0.0.9"), p).unwrap();
    let tx = take(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dev, DEV);
    let pkt = &tx[0].pkt;
    // The payload did not move: the header went in front of it.
    assert_eq!(pkt.data().as_ptr() as usize + 20, before);
    let r = Ipv4Repr::parse(pkt.data()).unwrap();
    assert_eq!(r.src, ip("10.0.0.2"));
    assert_eq!(r.dst, ip("10.0.0.9"));
    assert_eq!(r.ttl, 64);
    assert_eq!(r.protocol, IPPROTO_UDP);
    assert_eq!(r.payload_len, 100);
    assert_eq!(l.stats().out_requests, 1);
    // Identification changes per datagram.
    l.output(t, &udp_meta("10.0.0.9"), payload(1)).unwrap();
    let r2 = Ipv4Repr::parse(take(&mut l)[0].pkt.data()).unwrap();
    assert_ne!(r.ident, r2.ident);
}

#[test]
fn output_to_own_address_goes_to_local() {
    let t = Instant::now();
    let mut l = layer();
    l.output(t, &udp_meta("10.0.0.2"), payload(3000)).unwrap();
    assert!(take(&mut l).is_empty());
    let mut local = Vec::new();
    l.take_local(&mut local);
    assert_eq!(local.len(), 1);
    let r = Ipv4Repr::parse(local[0].data()).unwrap();
    assert_eq!((r.src, r.dst), (ip("10.0.0.2"), ip("10.0.0.2")));
    // Not fragmented: the local path has a 64 KiB MTU.
    assert_eq!(r.payload_len, 3000);
    assert!(!r.is_fragment());
}

#[test]
fn df_and_too_big_is_message_too_long() {
    let t = Instant::now();
    let mut l = layer();
    let mut m = udp_meta("10.0.0.9");
    m.dont_frag = true;
    assert_eq!(
        l.output(t, &m, payload(1481)),
        Err(OutputError::MessageTooLong)
    );
    assert_eq!(l.stats().frag_fails, 1);
    assert!(take(&mut l).is_empty());
    // Exactly the MTU fits.
    l.output(t, &m, payload(1480)).unwrap();
    assert_eq!(take(&mut l)[0].pkt.len(), 1500);
    // Over 64 KiB is refused whatever DF says.
    assert_eq!(
        l.output(t, &udp_meta("10.0.0.9"), payload(65516)),
        Err(OutputError::MessageTooLong)
    );
}

#[test]
fn too_big_without_df_is_fragmented() {
    let t = Instant::now();
    let mut l = layer();
    l.output(t, &udp_meta("10.0.0.9"), payload(4000)).unwrap();
    let tx = take(&mut l);
    assert_eq!(tx.len(), 3);
    assert!(tx.iter().all(|x| x.pkt.len() <= 1500));
    let s = l.stats();
    assert_eq!((s.frag_oks, s.frag_creates), (1, 3));
}

#[test]
fn pmtu_update_lowers_route_mtu_and_expires() {
    let t = Instant::now();
    let mut l = layer();
    let dst = ip("10.0.0.9");
    assert_eq!(l.path_mtu(dst, t), None);
    l.update_pmtu(dst, 1400, t);
    assert_eq!(l.path_mtu(dst, t), Some(1400));
    assert_eq!(l.route_output(dst, t).unwrap().mtu, 1400);
    // Raising is ignored (RFC 1191), clamping to min_pmtu applies.
    l.update_pmtu(dst, 1450, t);
    assert_eq!(l.route_output(dst, t).unwrap().mtu, 1400);
    l.update_pmtu(dst, 100, t);
    assert_eq!(l.route_output(dst, t).unwrap().mtu, 552);
    // DF datagrams now fail above the path MTU.
    let mut m = udp_meta("10.0.0.9");
    m.dont_frag = true;
    assert_eq!(
        l.output(t, &m, payload(600)),
        Err(OutputError::MessageTooLong)
    );
    // Expiry after 600 s.
    let later = t + Duration::from_secs(601);
    assert_eq!(l.path_mtu(dst, later), None);
    assert_eq!(l.route_output(dst, later).unwrap().mtu, 1500);
    l.on_timeout(later);
    // A path MTU above the device MTU does not raise the route MTU.
    l.update_pmtu(dst, 9000, later);
    assert_eq!(l.route_output(dst, later).unwrap().mtu, 1500);
}

#[test]
fn echo_request_and_reply_queue() {
    let t = Instant::now();
    let mut l = layer();
    l.send_echo_request(t, ip("10.0.0.9"), 7, 1, b"ping")
        .unwrap();
    let tx = take(&mut l);
    let p = tx[0].pkt.data();
    assert_eq!(&p[20..22], &[8, 0]);
    assert_eq!(&p[24..28], &[0, 7, 0, 1]);
    assert_eq!(&p[28..], b"ping");
    assert_eq!(l.icmp_stats().out_echos, 1);
    assert_eq!(l.icmp_stats().out_msgs, 1);
    assert_eq!(
        l.send_echo_request(t, ip("9.9.9.9"), 7, 2, b""),
        Err(OutputError::NetworkUnreachable)
    );
    for i in 0..100 {
        l.push_echo_reply(EchoReply {
            from: ip("10.0.0.9"),
            ident: 7,
            seq: i,
            payload_len: 0,
        });
    }
    let mut v = Vec::new();
    l.take_echo_replies(&mut v);
    assert_eq!(v.len(), ECHO_REPLY_QUEUE);
    assert_eq!(v[0].seq, 0);
}

/// A datagram header + 8 bytes, as quoted in ICMP errors.
fn quote_of(src: &str, dst: &str, protocol: u8, first8: [u8; 8], off: u16) -> Vec<u8> {
    let r = Ipv4Repr {
        src: ip(src),
        dst: ip(dst),
        protocol,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: off,
        header_len: 20,
        payload_len: 8,
    };
    let mut q = vec![0u8; 28];
    r.emit(&mut q);
    q[20..].copy_from_slice(&first8);
    q
}

#[test]
fn icmp_error_suppression_rules() {
    let t = Instant::now();
    let mut l = layer();
    let k = IcmpErrorKind::PortUnreachable;
    // About an ICMP error: no.
    l.icmp_send_error(
        t,
        &quote_of("10.0.0.9", "10.0.0.2", 1, [3, 3, 0, 0, 0, 0, 0, 0], 0),
        k,
    );
    // Non-first fragment: no.
    l.icmp_send_error(t, &quote_of("10.0.0.9", "10.0.0.2", 17, [0; 8], 8), k);
    // To a broadcast: no.
    l.icmp_send_error(t, &quote_of("10.0.0.9", "10.0.0.255", 17, [0; 8], 0), k);
    l.icmp_send_error(
        t,
        &quote_of("10.0.0.9", "255.255.255.255", 17, [0; 8], 0),
        k,
    );
    // From a non-unicast source: no.
    l.icmp_send_error(t, &quote_of("0.0.0.0", "10.0.0.2", 17, [0; 8], 0), k);
    // Garbage quote: no.
    l.icmp_send_error(t, &[0x45, 0, 0], k);
    assert!(take(&mut l).is_empty());
    // About an echo request: yes.
    l.icmp_send_error(
        t,
        &quote_of("10.0.0.9", "10.0.0.2", 1, [8, 0, 0, 0, 0, 0, 0, 0], 0),
        k,
    );
    assert_eq!(take(&mut l).len(), 1);
    assert_eq!(l.icmp_stats().out_dest_unreachs, 1);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let t = Instant::now();
    let mut l = Ipv4Layer::new(Ipv4Config {
        icmp_rate_per_sec: 1,
        icmp_burst: 2,
        ..Ipv4Config::default()
    });
    l.add_interface(DEV, "tun0", "10.0.0.2/24".parse().unwrap(), 1500);
    let q = quote_of("10.0.0.9", "10.0.0.2", 17, [0; 8], 0);
    for _ in 0..5 {
        l.icmp_send_error(t, &q, IcmpErrorKind::PortUnreachable);
    }
    assert_eq!(take(&mut l).len(), 2);
    assert_eq!(l.icmp_stats().out_rate_limited, 3);
    // Fragmentation needed is exempt (Linux: PMTU discovery must not be limited).
    l.icmp_send_error(t, &q, IcmpErrorKind::FragmentationNeeded { mtu: 1400 });
    assert_eq!(take(&mut l).len(), 1);
    l.icmp_send_error(
        t + Duration::from_secs(1),
        &q,
        IcmpErrorKind::PortUnreachable,
    );
    assert_eq!(take(&mut l).len(), 1);
}

#[test]
fn reassembly_timeout_sends_time_exceeded() {
    let t = Instant::now();
    let mut l = layer();
    let r = Ipv4Repr {
        src: ip("10.0.0.9"),
        dst: ip("10.0.0.2"),
        protocol: 17,
        ttl: 64,
        tos: 0,
        ident: 42,
        dont_frag: false,
        more_frags: true,
        frag_offset: 0,
        header_len: 20,
        payload_len: 16,
    };
    let mut p = vec![0u8; 36];
    r.emit(&mut p);
    assert!(l.defrag(t, &r, &p).is_none());
    assert_eq!(l.poll_timeout(), Some(t + Duration::from_secs(30)));
    l.on_timeout(t + Duration::from_secs(29));
    assert!(take(&mut l).is_empty());
    l.on_timeout(t + Duration::from_secs(30));
    let tx = take(&mut l);
    assert_eq!(tx.len(), 1);
    let d = tx[0].pkt.data();
    assert_eq!(&d[20..22], &[11, 1]);
    assert_eq!(&d[16..20], &[10, 0, 0, 9]);
    let s = l.stats();
    assert_eq!((s.reasm_reqds, s.reasm_timeout, s.reasm_fails), (1, 1, 1));
    assert_eq!(l.icmp_stats().out_time_excds, 1);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn remembered_route_follows_table_and_mtu_changes() {
    let t = Instant::now();
    let mut l = layer();
    l.add_interface(DevId(1), "tun1", "10.1.0.2/24".parse().unwrap(), 9000);
    let far = ip("8.8.8.8");
    assert_eq!(l.route_output(far, t), Err(OutputError::NetworkUnreachable));
    l.fib_mut()
        .add(static_route("8.8.8.0/24", "10.0.0.1", DEV))
        .unwrap();
    // Looked up twice: the second answer comes from the remembered route.
    for _ in 0..2 {
        let r = l.route_output(far, t).unwrap();
        assert_eq!((r.dev, r.next_hop, r.mtu), (DEV, ip("10.0.0.1"), 1500));
    }
    l.set_mtu(DEV, 1400);
    assert_eq!(l.route_output(far, t).unwrap().mtu, 1400);
    l.update_pmtu(far, 1200, t);
    assert_eq!(l.route_output(far, t).unwrap().mtu, 1200);
    // A more specific route through the other device takes over at once.
    l.fib_mut()
        .add(static_route("8.8.8.8/32", "10.1.0.1", DevId(1)))
        .unwrap();
    let r = l.route_output(far, t).unwrap();
    assert_eq!(
        (r.dev, r.src, r.next_hop, r.mtu),
        (DevId(1), ip("10.1.0.2"), ip("10.1.0.1"), 1200)
    );
    l.fib_mut()
        .remove("8.8.8.0/24".parse().unwrap(), Some(ip("10.0.0.1")))
        .unwrap();
    l.fib_mut()
        .remove("8.8.8.8/32".parse().unwrap(), Some(ip("10.1.0.1")))
        .unwrap();
    assert_eq!(l.route_output(far, t), Err(OutputError::NetworkUnreachable));
    // Our own address: the loopback MTU, whatever the path MTU cache holds.
    let own = ip("10.0.0.2");
    for _ in 0..2 {
        let r = l.route_output(own, t).unwrap();
        assert_eq!((r.src, r.mtu), (own, LOCAL_MTU));
    }
}

/// Packets left for the device to finish (a TCP super-segment, a partial checksum) go
/// only to a device that takes them, a super-segment only up to the device's limit, and
/// never to a local destination; everything else is unchanged by the device's offload.
#[test]
fn offload_packets_only_for_devices_that_take_them() {
    let t = Instant::now();
    let mut l = layer();
    let tcp = |dst: &str| meta(dst, 6, true);
    let gso = |n: usize| {
        let mut p = payload(n);
        p.set_gso_size(1448);
        p.set_csum_partial(true);
        p
    };
    let partial = |n: usize| {
        let mut p = payload(n);
        p.set_csum_partial(true);
        p
    };
    // No offload on the device: refused, never fragmented or sent half-finished.
    assert_eq!(
        l.output(t, &tcp("10.0.0.9"), gso(30_000)),
        Err(OutputError::MessageTooLong)
    );
    assert_eq!(
        l.output(t, &tcp("10.0.0.9"), partial(100)),
        Err(OutputError::MessageTooLong)
    );
    assert!(take(&mut l).is_empty());
    assert_eq!(l.route_output(ip("10.0.0.9"), t).unwrap().tso_max, 0);

    l.set_tso_max(DEV, 65535);
    assert_eq!(l.route_output(ip("10.0.0.9"), t).unwrap().tso_max, 65535);
    l.output(t, &tcp("10.0.0.9"), gso(30_000)).unwrap();
    l.output(t, &tcp("10.0.0.9"), partial(100)).unwrap();
    let tx = take(&mut l);
    assert_eq!(tx.len(), 2, "one super-segment, not fragments");
    assert_eq!(tx[0].pkt.len(), 30_020);
    assert_eq!(tx[0].pkt.gso_size(), 1448);
    let r = Ipv4Repr::parse(tx[0].pkt.data()).unwrap();
    assert_eq!(r.payload_len, 30_000);
    assert!(tx[1].pkt.csum_partial());
    // Beyond the device's limit, or a partial checksum on a packet above the MTU.
    assert_eq!(
        l.output(t, &tcp("10.0.0.9"), gso(65_516)),
        Err(OutputError::MessageTooLong)
    );
    assert_eq!(
        l.output(t, &tcp("10.0.0.9"), partial(1_481)),
        Err(OutputError::MessageTooLong)
    );
    // Our own address: the local path has no device to finish the packet.
    assert_eq!(l.route_output(ip("10.0.0.2"), t).unwrap().tso_max, 0);
    assert_eq!(
        l.output(t, &tcp("10.0.0.2"), gso(3_000)),
        Err(OutputError::MessageTooLong)
    );
    // Ordinary packets are unaffected.
    l.output(t, &udp_meta("10.0.0.9"), payload(1_000)).unwrap();
    assert_eq!(take(&mut l).len(), 1);
}

#[test]
fn own_multicasts_and_broadcasts_loop_back_as_linux_does() {
    let t = Instant::now();
    let mut l = layer();
    let looped = |l: &mut Ipv4Layer| {
        let mut v = Vec::new();
        l.take_looped(&mut v);
        v
    };
    let mc = |ttl: Option<u8>, mc_loop: bool| OutMeta {
        ttl,
        mc_loop,
        confirm_neigh: false,
        oif: Some(DEV),
        ..udp_meta("239.1.1.1")
    };
    // Not a member: sent, not looped.
    l.output(t, &mc(Some(1), true), payload(10)).unwrap();
    assert_eq!(take(&mut l).len(), 1);
    assert!(looped(&mut l).is_empty());
    // A member: sent and looped, the copy tagged with the device it left through.
    assert!(l.join_group(t, DEV, ip("239.1.1.1")));
    let report = take(&mut l);
    assert_eq!(report.len(), 1, "the join's report");
    l.output(t, &mc(Some(1), true), payload(10)).unwrap();
    let sent = take(&mut l);
    let back = looped(&mut l);
    assert_eq!((sent.len(), back.len()), (1, 1));
    assert_eq!(back[0], sent[0]);
    // IP_MULTICAST_LOOP off: not looped.
    l.output(t, &mc(Some(1), false), payload(10)).unwrap();
    assert_eq!((take(&mut l).len(), looped(&mut l).len()), (1, 0));
    // TTL 0: looped only, never on the wire.
    l.output(t, &mc(Some(0), true), payload(10)).unwrap();
    assert_eq!((take(&mut l).len(), looped(&mut l).len()), (0, 1));
    // Broadcasts loop back whenever the transport asks (it does for every broadcast).
    let bc = OutMeta {
        mc_loop: true,
        confirm_neigh: false,
        ..udp_meta("10.0.0.255")
    };
    l.output(t, &bc, payload(3000)).unwrap();
    let sent = take(&mut l);
    assert_eq!(sent.len(), 3, "fragmented");
    assert_eq!(looped(&mut l), sent, "every fragment is looped");
    let s = l.stats();
    assert_eq!((s.out_mcast_pkts, s.out_bcast_pkts), (5, 1));
}

#[test]
fn igmp_datagrams_carry_router_alert_and_ttl_1() {
    let t = Instant::now();
    let mut l = layer();
    l.join_group(t, DEV, ip("239.2.2.2"));
    let sent = take(&mut l);
    assert_eq!(sent.len(), 1);
    let p = sent[0].pkt.data();
    let r = Ipv4Repr::parse(p).unwrap();
    assert_eq!(r.header_len, 24);
    assert_eq!((r.ttl, r.protocol, r.tos), (1, IPPROTO_IGMP, 0xc0));
    assert_eq!((r.src, r.dst), (ip("10.0.0.2"), ip("224.0.0.22")));
    assert!(r.dont_frag);
    assert_eq!(&p[20..24], &[0x94, 0x04, 0, 0]);
    assert_eq!(crate::checksum::checksum(&p[24..]), 0);
    assert!(l.is_mc_member(DEV, ip("239.2.2.2")));
    assert_eq!(l.mc_memberships(), vec![(DEV, ip("239.2.2.2"), 1)]);
    // The repetition is driven by the layer's timer.
    let d = l.poll_timeout().expect("a repetition is due");
    assert!(d <= t + Duration::from_secs(1));
    l.on_timeout(d);
    assert_eq!(take(&mut l).len(), 1);
    assert!(l.leave_group(t, DEV, ip("239.2.2.2")));
    assert!(!l.is_mc_member(DEV, ip("239.2.2.2")));
    assert!(!l.leave_group(t, DEV, ip("239.2.2.2")));
    assert_eq!(l.igmp_version(DEV, t), 3);
}

#[test]
fn removing_an_address_keeps_what_other_addresses_need() {
    let t = Instant::now();
    let other = DevId(1);
    let mut l = layer();
    l.add_interface(DEV, "tun0", "10.0.0.3/24".parse().unwrap(), 1500);
    // The same address on a second device (its own subnet).
    l.add_interface(other, "tun1", "10.0.0.2/32".parse().unwrap(), 1500);
    assert!(!l.remove_interface(DEV, "10.0.0.2/16".parse().unwrap()));
    assert!(l.remove_interface(DEV, "10.0.0.2/24".parse().unwrap()));
    assert!(!l.remove_interface(DEV, "10.0.0.2/24".parse().unwrap()));
    // Still ours through tun1, and the subnet is still reachable, from 10.0.0.3.
    assert!(l.is_local(ip("10.0.0.2")));
    let r = l.route_output(ip("10.0.0.9"), t).unwrap();
    assert_eq!((r.dev, r.src), (DEV, ip("10.0.0.3")));
    assert!(l.remove_interface(other, "10.0.0.2/32".parse().unwrap()));
    assert!(!l.is_local(ip("10.0.0.2")));
    assert!(l
        .fib()
        .routes()
        .iter()
        .all(|r| r.dst != "10.0.0.2/32".parse().unwrap()));
    assert!(l.remove_interface(DEV, "10.0.0.3/24".parse().unwrap()));
    assert_eq!(l.fib().routes(), vec![]);
    assert_eq!(
        l.route_output(ip("10.0.0.9"), t),
        Err(OutputError::NetworkUnreachable)
    );
}

#[test]
fn ethernet_devices_frame_resolve_and_filter() {
    let now = Instant::now();
    let mut l = layer();
    l.fib_mut()
        .add(static_route("0.0.0.0/0", "10.0.0.1", DEV))
        .unwrap();
    let our = MacAddr([2, 0, 0, 0, 0, 2]);
    let gw = MacAddr([2, 0, 0, 0, 0, 1]);
    l.set_ethernet(DEV, our);
    assert!(l.has_ethernet());
    // Off-link: the gateway is resolved, the datagram waits.
    l.output(now, &udp_meta("192.0.2.9"), payload(8)).unwrap();
    let out = take(&mut l);
    assert_eq!(out.len(), 1);
    let req = arp::ArpPacket::parse(&out[0].pkt.data()[ETH_HLEN..]).unwrap();
    assert_eq!((req.spa, req.tpa), (ip("10.0.0.2"), ip("10.0.0.1")));
    // The gateway's reply, through link_input: the datagram leaves in a frame to it.
    let reply = arp::ArpPacket {
        op: arp::ARPOP_REPLY,
        sha: gw,
        spa: ip("10.0.0.1"),
        tha: our,
        tpa: ip("10.0.0.2"),
    };
    let mut f = PacketBuf::with_payload_capacity(64);
    reply.emit(f.put(arp::ARP_LEN));
    arp::push_ether(&mut f, our, gw, ETH_P_ARP);
    assert!(l.link_input(now, DEV, f).is_none());
    let out = take(&mut l);
    assert_eq!(out.len(), 1);
    let d = out[0].pkt.data();
    assert_eq!(
        (&d[0..6], &d[6..12], &d[12..14]),
        (&gw.0[..], &our.0[..], &[8u8, 0][..])
    );
    let repr = Ipv4Repr::parse(&d[ETH_HLEN..]).unwrap();
    assert_eq!(repr.dst, ip("192.0.2.9"));
    // The subnet's broadcast: to ff:ff:ff:ff:ff:ff without asking; a multicast (routed
    // by the default route, through the gateway) to its group's address.
    l.output(now, &udp_meta("10.0.0.255"), payload(8)).unwrap();
    l.output(now, &udp_meta("224.0.0.251"), payload(8)).unwrap();
    let out = take(&mut l);
    assert_eq!(out.len(), 2);
    assert_eq!(&out[0].pkt.data()[..6], &MacAddr::BROADCAST.0);
    assert_eq!(&out[1].pkt.data()[..6], &[1, 0, 0x5e, 0, 0, 0xfb]);
    // Received: IPv4 to us comes back without its header; to another address, or of
    // another EtherType, it is dropped and counted.
    let ipv4 = |dst: MacAddr, ty: u16| {
        let mut p = PacketBuf::with_payload_capacity(40);
        p.put(20).copy_from_slice(&[0x45; 20]);
        arp::push_ether(&mut p, dst, gw, ty);
        p
    };
    let got = l.link_input(now, DEV, ipv4(our, ETH_P_IP)).unwrap();
    assert_eq!(got.data(), &[0x45; 20]);
    assert!(l
        .link_input(now, DEV, ipv4(MacAddr::BROADCAST, ETH_P_IP))
        .is_some());
    assert!(l
        .link_input(now, DEV, ipv4(MacAddr([2, 9, 9, 9, 9, 9]), ETH_P_IP))
        .is_none());
    assert!(l.link_input(now, DEV, ipv4(our, 0x86dd)).is_none());
    let mut runt = PacketBuf::with_payload_capacity(8);
    runt.put(8);
    assert!(l.link_input(now, DEV, runt).is_none());
    let s = l.arp_stats();
    assert_eq!((s.rx_other_host, s.rx_unknown_type), (1, 1));
    // A device without Ethernet passes packets through untouched.
    let raw = PacketBuf::from_slice(&[0x45; 20]);
    assert_eq!(l.link_input(now, DevId(5), raw.clone()), Some(raw));
}

#[test]
fn output_errors_carry_the_kernel_errno() {
    for (e, raw) in [
        (OutputError::NetworkUnreachable, Some(101)),
        (OutputError::HostUnreachable, Some(113)),
        (OutputError::AddrNotAvailable, Some(99)),
        (OutputError::MessageTooLong, None),
    ] {
        let io = io::Error::from(e);
        assert_eq!((io.kind(), io.raw_os_error()), (e.kind(), raw), "{e:?}");
    }
}
