use super::*;
use crate::checksum;
use crate::layer::{IpTx, Ipv4Config, Ipv4Layer};
use crate::proto::{InetProtos, NetProtocol};
use crate::{IPPROTO_TCP, IPPROTO_UDP};
use std::net::Ipv4Addr;
use std::time::Duration;

const DEV: DevId = DevId(0);

/// A tiny context: the IP layer, a protocol table with a UDP-like handler that says
/// "port unreachable" for port 9 and records everything else, and a TCP err_handler
/// that records the errors it gets.
struct TestCx {
    ip: Ipv4Layer,
    protos: InetProtos<TestCx>,
    delivered: Vec<(IpRxMeta, Vec<u8>)>,
    errors: Vec<IcmpError>,
    /// `PacketBuf::csum_unnecessary` of each TCP delivery.
    csum_flags: Vec<bool>,
}

impl IpContext for TestCx {
    fn ip(&mut self) -> &mut Ipv4Layer {
        &mut self.ip
    }
    fn protos(&self) -> &InetProtos<Self> {
        &self.protos
    }
}

fn udp_handler(cx: &mut TestCx, _: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
    if pkt.data().get(2..4) == Some(&[0, 9]) {
        return DeliverResult::PortUnreachable;
    }
    cx.delivered.push((*meta, pkt.into_vec()));
    DeliverResult::Consumed
}

fn tcp_handler(cx: &mut TestCx, _: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
    cx.csum_flags.push(pkt.csum_unnecessary());
    cx.delivered.push((*meta, pkt.into_vec()));
    DeliverResult::Consumed
}

fn record_err(cx: &mut TestCx, _: Instant, e: &IcmpError) {
    cx.errors.push(e.clone());
}

fn cx() -> TestCx {
    let mut ip = Ipv4Layer::new(Ipv4Config::default());
    ip.add_interface(DEV, "tun0", "10.0.0.2/24".parse().unwrap(), 1500);
    let mut protos = InetProtos::new();
    protos
        .add(
            IPPROTO_UDP,
            NetProtocol {
                handler: udp_handler,
                err_handler: record_err,
            },
        )
        .unwrap();
    protos
        .add(
            IPPROTO_TCP,
            NetProtocol {
                handler: tcp_handler,
                err_handler: record_err,
            },
        )
        .unwrap();
    TestCx {
        ip,
        protos,
        delivered: Vec::new(),
        errors: Vec::new(),
        csum_flags: Vec::new(),
    }
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Builds a datagram from `src` to `dst` carrying `payload`.
fn dgram(src: &str, dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let r = Ipv4Repr {
        src: ip4(src),
        dst: ip4(dst),
        protocol,
        ttl: 64,
        tos: 0,
        ident: 0x0101,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: payload.len(),
    };
    let mut p = vec![0u8; 20];
    r.emit(&mut p);
    p.extend_from_slice(payload);
    p
}

fn icmp(msg: IcmpRepr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; msg.buffer_len()];
    msg.emit(&mut b);
    b
}

fn rcv(c: &mut TestCx, t: Instant, bytes: &[u8]) {
    ip_rcv(c, t, DEV, PacketBuf::from_slice(bytes));
}

fn sent(c: &mut TestCx) -> Vec<IpTx> {
    let mut v = Vec::new();
    c.ip.take_tx(&mut v);
    v
}

#[test]
fn echo_request_gets_exact_reply() {
    let t = Instant::now();
    let mut c = cx();
    let req = icmp(IcmpRepr::EchoRequest {
        ident: 0x1234,
        seq: 1,
        data: b"abcd",
    });
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.2", 1, &req));
    let tx = sent(&mut c);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dev, DEV);
    #[rustfmt::skip]
    let expected: [u8; 32] = [
        // IPv4: v4 ihl5, tos 0, len 32, id 1, no flags, ttl 64, ICMP, checksum
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x66, 0xd2,
        10, 0, 0, 2, // src: the address the request was sent to
        10, 0, 0, 9, // dst: the requester
        // ICMP echo reply: type 0 code 0, checksum, ident, seq, data
        0x00, 0x00, 0x29, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];
    assert_eq!(tx[0].pkt.data(), &expected);
    let s = c.ip.icmp_stats();
    assert_eq!(
        (s.in_msgs, s.in_echos, s.out_msgs, s.out_echo_reps),
        (1, 1, 1, 1)
    );
    assert_eq!(c.ip.stats().in_delivers, 1);
}

#[test]
fn echo_to_broadcast_is_ignored() {
    let t = Instant::now();
    let mut c = cx();
    let req = icmp(IcmpRepr::EchoRequest {
        ident: 1,
        seq: 1,
        data: b"",
    });
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.255", 1, &req));
    rcv(&mut c, t, &dgram("10.0.0.9", "255.255.255.255", 1, &req));
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.ip.icmp_stats().in_echos, 2);
}

#[test]
fn echo_reply_is_queued() {
    let t = Instant::now();
    let mut c = cx();
    let rep = icmp(IcmpRepr::EchoReply {
        ident: 5,
        seq: 6,
        data: b"xyz",
    });
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.2", 1, &rep));
    let mut v = Vec::new();
    c.ip.take_echo_replies(&mut v);
    assert_eq!(
        v,
        vec![EchoReply {
            from: ip4("10.0.0.9"),
            ident: 5,
            seq: 6,
            payload_len: 3
        }]
    );
}

#[test]
fn bad_icmp_checksum_counted() {
    let t = Instant::now();
    let mut c = cx();
    let mut req = icmp(IcmpRepr::EchoRequest {
        ident: 1,
        seq: 1,
        data: b"abc",
    });
    req[8] ^= 0xff;
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.2", 1, &req));
    assert!(sent(&mut c).is_empty());
    let s = c.ip.icmp_stats();
    assert_eq!((s.in_errors, s.in_csum_errors), (1, 1));
}

#[test]
fn delivery_to_handler_with_padding_trimmed() {
    let t = Instant::now();
    let mut c = cx();
    let mut d = dgram(
        "10.0.0.9",
        "10.0.0.2",
        IPPROTO_UDP,
        &[0, 1, 0, 2, 0, 8, 0, 0],
    );
    d.extend_from_slice(&[0xee; 10]); // link padding
    rcv(&mut c, t, &d);
    assert_eq!(c.delivered.len(), 1);
    let (meta, bytes) = &c.delivered[0];
    assert_eq!(bytes, &vec![0, 1, 0, 2, 0, 8, 0, 0]);
    assert_eq!(
        *meta,
        IpRxMeta {
            src: ip4("10.0.0.9"),
            dst: ip4("10.0.0.2"),
            protocol: IPPROTO_UDP,
            ttl: 64,
            tos: 0,
            dev: DEV,
            multi: false,
        }
    );
    let s = c.ip.stats();
    assert_eq!((s.in_receives, s.in_delivers), (1, 1));
}

#[test]
fn protocol_unreachable() {
    let t = Instant::now();
    let mut c = cx();
    let d = dgram("10.0.0.9", "10.0.0.2", 99, b"0123456789abcdef");
    rcv(&mut c, t, &d);
    assert_eq!(c.ip.stats().in_unknown_protos, 1);
    assert_eq!(c.ip.stats().in_delivers, 0);
    let tx = sent(&mut c);
    assert_eq!(tx.len(), 1);
    let p = tx[0].pkt.data();
    let r = Ipv4Repr::parse(p).unwrap();
    assert_eq!(
        (r.src, r.dst, r.protocol),
        (ip4("10.0.0.2"), ip4("10.0.0.9"), 1)
    );
    assert_eq!(&p[20..22], &[3, 2]);
    // Quote: original header + first 8 bytes.
    assert_eq!(&p[28..], &d[..28]);
    assert_eq!(checksum::checksum(&p[20..]), 0);
    // Not for a broadcast.
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.255", 99, b"x"));
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.ip.stats().in_unknown_protos, 2);
}

#[test]
fn port_unreachable_quotes_original() {
    let t = Instant::now();
    let mut c = cx();
    let udp = [0x30, 0x39, 0x00, 0x09, 0x00, 0x0c, 0xab, 0xcd, 1, 2, 3, 4];
    let d = dgram("10.0.0.9", "10.0.0.2", IPPROTO_UDP, &udp);
    rcv(&mut c, t, &d);
    assert!(c.delivered.is_empty());
    let tx = sent(&mut c);
    assert_eq!(tx.len(), 1);
    let p = tx[0].pkt.data();
    assert_eq!(&p[20..22], &[3, 3]);
    assert_eq!(p[1], 0xc0); // TOS internetwork control
    assert_eq!(p.len(), 20 + 8 + 28);
    assert_eq!(&p[28..], &d[..28]);
    let s = c.ip.icmp_stats();
    assert_eq!((s.out_msgs, s.out_dest_unreachs), (1, 1));
}

#[test]
fn err_handler_gets_quoted_tcp_header() {
    let t = Instant::now();
    let mut c = cx();
    // We (10.0.0.2:40000) sent a TCP segment to 10.0.0.9:80; the host says port unreachable.
    let tcp8 = [0x9c, 0x40, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef];
    let orig = dgram("10.0.0.2", "10.0.0.9", IPPROTO_TCP, &tcp8);
    let err = icmp(IcmpRepr::Error {
        kind: IcmpErrorKind::PortUnreachable,
        quote: &orig,
    });
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.2", 1, &err));
    assert_eq!(
        c.errors,
        vec![IcmpError {
            kind: IcmpErrorKind::PortUnreachable,
            reporter: ip4("10.0.0.9"),
            orig_src: ip4("10.0.0.2"),
            orig_dst: ip4("10.0.0.9"),
            orig_protocol: IPPROTO_TCP,
            quoted: tcp8.to_vec(),
        }]
    );
    assert_eq!(c.ip.icmp_stats().in_dest_unreachs, 1);
    // Never an ICMP error about an ICMP error.
    assert!(sent(&mut c).is_empty());
    // A quote too short to hold 8 transport bytes is an InErrors.
    let short = icmp(IcmpRepr::Error {
        kind: IcmpErrorKind::HostUnreachable,
        quote: &orig[..24],
    });
    rcv(&mut c, t, &dgram("10.0.0.9", "10.0.0.2", 1, &short));
    assert_eq!(c.errors.len(), 1);
    assert_eq!(c.ip.icmp_stats().in_errors, 1);
}

#[test]
fn frag_needed_is_clamped_but_left_to_the_transport() {
    let t = Instant::now();
    let mut c = cx();
    c.ip.fib_mut()
        .add(crate::Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(ip4("10.0.0.1")),
            dev: DEV,
            metric: 0,
            src: None,
            kind: crate::RouteKind::Static,
        })
        .unwrap();
    let mut orig = dgram("10.0.0.2", "8.8.8.8", IPPROTO_TCP, &[0; 8]);
    orig[2..4].copy_from_slice(&1500u16.to_be_bytes()); // quoted total length
    let err = icmp(IcmpRepr::Error {
        kind: IcmpErrorKind::FragmentationNeeded { mtu: 1400 },
        quote: &orig,
    });
    rcv(&mut c, t, &dgram("10.0.0.1", "10.0.0.2", 1, &err));
    assert_eq!(
        c.errors[0].kind,
        IcmpErrorKind::FragmentationNeeded { mtu: 1400 }
    );
    // IP does not apply it: only the transport may, once it has validated the quoted
    // segment (RFC 5927; a forged error must not lower the PMTU of the whole host).
    assert_eq!(c.ip.path_mtu(ip4("8.8.8.8"), t), None);
    assert_eq!(c.ip.route_output(ip4("8.8.8.8"), t).unwrap().mtu, 1500);
    // What a transport does after validation.
    c.ip.update_pmtu(ip4("8.8.8.8"), 1400, t);
    assert_eq!(c.ip.route_output(ip4("8.8.8.8"), t).unwrap().mtu, 1400);
    // MTU 0 from an old router: RFC 1191 plateau below the quoted length 1500 = 1492,
    // which does not raise the 1400 already learned.
    let err0 = icmp(IcmpRepr::Error {
        kind: IcmpErrorKind::FragmentationNeeded { mtu: 0 },
        quote: &orig,
    });
    rcv(&mut c, t, &dgram("10.0.0.1", "10.0.0.2", 1, &err0));
    assert_eq!(
        c.errors[1].kind,
        IcmpErrorKind::FragmentationNeeded { mtu: 1492 }
    );
    assert_eq!(c.ip.path_mtu(ip4("8.8.8.8"), t), Some(1400));
    // Below min_pmtu (552) it is raised to it.
    let err_small = icmp(IcmpRepr::Error {
        kind: IcmpErrorKind::FragmentationNeeded { mtu: 100 },
        quote: &orig,
    });
    rcv(&mut c, t, &dgram("10.0.0.1", "10.0.0.2", 1, &err_small));
    assert_eq!(
        c.errors[2].kind,
        IcmpErrorKind::FragmentationNeeded { mtu: 552 }
    );
    assert_eq!(c.ip.path_mtu(ip4("8.8.8.8"), t), Some(1400));
}

#[test]
fn not_ours_is_dropped_and_counted() {
    let t = Instant::now();
    let mut c = cx();
    rcv(
        &mut c,
        t,
        &dgram("10.0.0.9", "10.0.0.3", IPPROTO_UDP, &[0; 8]),
    );
    rcv(
        &mut c,
        t,
        &dgram("10.0.0.9", "8.8.8.8", IPPROTO_UDP, &[0; 8]),
    );
    assert!(c.delivered.is_empty());
    assert!(sent(&mut c).is_empty());
    let s = c.ip.stats();
    assert_eq!((s.in_receives, s.in_addr_errors, s.in_delivers), (2, 2, 0));
}

#[test]
fn header_errors_are_counted() {
    let t = Instant::now();
    let mut c = cx();
    let good = dgram("10.0.0.9", "10.0.0.2", IPPROTO_UDP, &[0; 8]);
    let mut bad_csum = good.clone();
    bad_csum[10] ^= 1;
    rcv(&mut c, t, &bad_csum);
    let mut bad_ver = good.clone();
    bad_ver[0] = 0x55;
    rcv(&mut c, t, &bad_ver);
    rcv(&mut c, t, &good[..25]);
    rcv(
        &mut c,
        t,
        &dgram("224.0.0.1", "10.0.0.2", IPPROTO_UDP, &[0; 8]),
    );
    let s = c.ip.stats();
    assert_eq!(s.in_receives, 4);
    assert_eq!(s.in_hdr_errors, 2);
    assert_eq!(s.in_csum_errors, 1);
    assert_eq!(s.in_truncated_pkts, 1);
    assert_eq!(s.in_addr_errors, 1);
    assert!(c.delivered.is_empty());
}

#[test]
fn fragments_are_reassembled_before_delivery() {
    let t = Instant::now();
    let mut c = cx();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let whole = Ipv4Repr {
        src: ip4("10.0.0.9"),
        dst: ip4("10.0.0.2"),
        protocol: IPPROTO_TCP,
        ttl: 64,
        tos: 0,
        ident: 9,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: payload.len(),
    };
    let mut frags = Vec::new();
    crate::frag::fragment(&whole, &payload, 1000, &mut frags).unwrap();
    assert_eq!(frags.len(), 4);
    for f in frags.into_iter().rev() {
        ip_rcv(&mut c, t, DEV, f);
    }
    assert_eq!(c.delivered.len(), 1);
    assert_eq!(c.delivered[0].1, payload);
    let s = c.ip.stats();
    assert_eq!((s.reasm_reqds, s.reasm_oks, s.in_delivers), (4, 1, 1));
    assert_eq!(c.ip.poll_timeout(), None);
}

#[test]
fn local_output_loops_back_through_ip_rcv() {
    let t = Instant::now();
    let mut c = cx();
    c.ip.send_echo_request(t, ip4("10.0.0.2"), 3, 4, b"self")
        .unwrap();
    let mut local = Vec::new();
    c.ip.take_local(&mut local);
    assert_eq!(local.len(), 1);
    for p in local.drain(..) {
        ip_rcv(&mut c, t, DEV, p);
    }
    // The echo request produced a reply to ourselves, again on the local queue.
    c.ip.take_local(&mut local);
    assert_eq!(local.len(), 1);
    for p in local.drain(..) {
        ip_rcv(&mut c, t, DEV, p);
    }
    let mut replies = Vec::new();
    c.ip.take_echo_replies(&mut replies);
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0].ident, replies[0].seq), (3, 4));
    assert!(sent(&mut c).is_empty());
}

#[test]
fn garbage_never_panics() {
    let t = Instant::now();
    let mut c = cx();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let good = dgram(
        "10.0.0.9",
        "10.0.0.2",
        1,
        &icmp(IcmpRepr::EchoRequest {
            ident: 1,
            seq: 1,
            data: &[0; 40],
        }),
    );
    for i in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut p = if i % 2 == 0 {
            good.clone()
        } else {
            vec![0x45; (seed % 90) as usize]
        };
        let n = p.len().max(1);
        for k in 0..3 {
            let idx = ((seed >> (k * 16)) as usize) % n;
            if let Some(b) = p.get_mut(idx) {
                *b ^= (seed >> (k * 8 + 3)) as u8;
            }
        }
        rcv(&mut c, t + Duration::from_millis(i), &p);
    }
    c.ip.on_timeout(t + Duration::from_secs(3600));
    let _ = sent(&mut c);
}

#[test]
fn datagram_larger_than_the_mtu_is_delivered_with_its_checksum_flag() {
    // A TUN with offloads hands over TCP super-segments of up to 65535 bytes on a
    // 1500-byte-MTU device; the device's "checksum unnecessary" flag reaches the transport.
    let t = Instant::now();
    let mut c = cx();
    let payload = vec![0xabu8; 65535 - 20];
    let bytes = dgram("10.0.0.1", "10.0.0.2", IPPROTO_TCP, &payload);
    let mut pkt = PacketBuf::from_slice(&bytes);
    pkt.set_csum_unnecessary(true);
    ip_rcv(&mut c, t, DEV, pkt);
    assert_eq!(c.delivered.len(), 1);
    assert_eq!(c.delivered[0].1.len(), payload.len());
    assert_eq!(c.csum_flags, vec![true]);
    // Without the flag it stays clear.
    rcv(
        &mut c,
        t,
        &dgram("10.0.0.1", "10.0.0.2", IPPROTO_TCP, &payload[..3000]),
    );
    assert_eq!(c.csum_flags, vec![true, false]);
    assert_eq!(c.ip.stats().in_hdr_errors, 0);
}
