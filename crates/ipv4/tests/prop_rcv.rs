//! Property tests of IPv4 input (`ip_rcv`) and reassembly (RFC 791 3.2, RFC 815):
//! arbitrary packets never panic and only ever make the layer send well-formed, rate
//! limited ICMP; fragments in any order, with duplicates, reassemble to the original
//! datagram exactly once; the reassembly memory stays under its limit whatever arrives.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ustack_ipv4::frag::{fragment, ReasmOutcome, Reassembler};
use ustack_ipv4::{
    checksum, ip_rcv, DeliverResult, IcmpError, InetProtos, IpContext, IpRxMeta, IpTx, Ipv4Cidr,
    Ipv4Config, Ipv4Layer, Ipv4Repr, NetProtocol,
};
use ustack_netdev::{DevId, PacketBuf};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const UDP_ISH: u8 = 17;

struct Cx {
    ip: Ipv4Layer,
    protos: InetProtos<Cx>,
    got: Vec<(IpRxMeta, Vec<u8>)>,
    errs: Vec<IcmpError>,
}

impl IpContext for Cx {
    fn ip(&mut self) -> &mut Ipv4Layer {
        &mut self.ip
    }
    fn protos(&self) -> &InetProtos<Self> {
        &self.protos
    }
}

fn handler(cx: &mut Cx, _now: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
    cx.got.push((*meta, pkt.data().to_vec()));
    // Pretend nothing listens on odd-length datagrams: exercises port unreachable.
    if pkt.len() % 2 == 1 {
        DeliverResult::PortUnreachable
    } else {
        DeliverResult::Consumed
    }
}

fn err_handler(cx: &mut Cx, _now: Instant, err: &IcmpError) {
    cx.errs.push(err.clone());
}

fn cx(cfg: Ipv4Config) -> Cx {
    let mut ip = Ipv4Layer::new(cfg);
    ip.add_interface(DevId(1), "t0", Ipv4Cidr::new(US, 24).unwrap(), 1500);
    let mut protos = InetProtos::new();
    let p = NetProtocol {
        handler,
        err_handler,
    };
    protos.add(UDP_ISH, p).unwrap();
    protos.add(6, p).unwrap();
    Cx {
        ip,
        protos,
        got: Vec::new(),
        errs: Vec::new(),
    }
}

fn header(protocol: u8, ident: u16, payload_len: usize) -> Ipv4Repr {
    Ipv4Repr {
        src: PEER,
        dst: US,
        protocol,
        ttl: 64,
        tos: 0,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len,
    }
}

fn fix_csum(p: &mut [u8]) {
    let hl = p.first().map_or(0, |v| usize::from(v & 0x0f) * 4).max(20);
    if p.len() < hl {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = checksum::checksum(&p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// A packet for the soup: raw bytes, or a valid header of a random protocol in front of
/// random bytes (ICMP with its checksum fixed half the time).
fn packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        (
            prop_oneof![Just(1u8), Just(6u8), Just(17u8), any::<u8>()],
            any::<u16>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..120),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(proto, ident, frag, body, fix_icmp, bcast)| {
                let mut r = header(proto, ident, body.len());
                if bcast {
                    r.dst = Ipv4Addr::new(10, 0, 0, 255);
                }
                r.more_frags = frag & 0x8000 != 0 && !body.is_empty();
                r.frag_offset = (frag & 0x1ff) * 8;
                let mut p = vec![0u8; 20 + body.len()];
                r.emit(&mut p);
                p[20..].copy_from_slice(&body);
                if proto == 1 && fix_icmp && body.len() >= 4 {
                    p[22] = 0;
                    p[23] = 0;
                    let c = checksum::checksum(&p[20..]);
                    p[22..24].copy_from_slice(&c.to_be_bytes());
                }
                // A fragment that breaks the 8-byte rule is still a test input.
                fix_csum(&mut p);
                p
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ip_rcv_survives_a_packet_soup(
        pkts in proptest::collection::vec((packet(), 0u64..50), 1..64),
    ) {
        let mut c = cx(Ipv4Config::default());
        let base = Instant::now();
        let mut t = Duration::ZERO;
        let mut tx: Vec<IpTx> = Vec::new();
        for (p, dt) in pkts {
            t += Duration::from_millis(dt);
            ip_rcv(&mut c, base + t, DevId(1), PacketBuf::from_vec(p));
            if c.ip.poll_timeout().is_some_and(|d| d <= base + t) {
                c.ip.on_timeout(base + t);
            }
            c.ip.take_tx(&mut tx);
        }
        // Expire everything: reassembly queues must all go.
        let end = base + t + Duration::from_secs(120);
        c.ip.on_timeout(end);
        c.ip.take_tx(&mut tx);
        prop_assert!(c.ip.poll_timeout().is_none_or(|d| d > end), "a timer stays due after on_timeout");
        // Whatever we sent is a well-formed datagram from our address (ICMP here).
        let cfg = Ipv4Config::default();
        prop_assert!(tx.len() as u64 <= u64::from(cfg.icmp_burst) + 1 + t.as_secs() * u64::from(cfg.icmp_rate_per_sec));
        for out in &tx {
            let r = Ipv4Repr::parse(out.pkt.data());
            prop_assert!(r.is_ok(), "we emitted a bad header: {:?}", r);
            let r = r.unwrap();
            prop_assert_eq!(r.src, US);
            prop_assert_eq!(r.protocol, 1);
            prop_assert!(out.pkt.len() <= 576);
        }
        for (meta, _) in &c.got {
            prop_assert!(meta.protocol == 6 || meta.protocol == UDP_ISH);
        }
    }

    #[test]
    fn fragments_reassemble_exactly_once(
        len in 1usize..6000,
        mtu in 68usize..1500,
        ident in any::<u16>(),
        order_seed in any::<u64>(),
        dup_mask in any::<u64>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let mut frags = Vec::new();
        fragment(&header(UDP_ISH, ident, len), &payload, mtu, &mut frags).unwrap();
        let mut pieces: Vec<Vec<u8>> = frags.iter().map(|f| f.data().to_vec()).collect();
        // Duplicate some, then shuffle (Fisher-Yates with a splitmix sequence).
        let n = pieces.len();
        for i in 0..n.min(64) {
            if dup_mask & (1 << i) != 0 {
                pieces.push(pieces[i].clone());
            }
        }
        let mut s = order_seed;
        for i in (1..pieces.len()).rev() {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (s ^ (s >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            pieces.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let mut c = cx(Ipv4Config::default());
        let now = Instant::now();
        for p in pieces {
            ip_rcv(&mut c, now, DevId(1), PacketBuf::from_vec(p));
        }
        // Exactly once, unless every fragment came twice (then a second full set may
        // legitimately reassemble again, or an unfragmented datagram is simply repeated).
        let all_dup = (0..n).all(|i| i < 64 && dup_mask & (1 << i) != 0);
        prop_assert!(!c.got.is_empty(), "never delivered ({} fragments)", n);
        prop_assert!(c.got.len() == 1 || (all_dup && c.got.len() == 2), "delivered {} times ({} fragments)", c.got.len(), n);
        for (_, d) in &c.got {
            prop_assert_eq!(d, &payload);
        }
    }

    #[test]
    fn a_missing_fragment_delivers_nothing_and_expires(
        len in 100usize..4000,
        mtu in 68usize..600,
        drop_idx in any::<usize>(),
    ) {
        let payload = vec![0x5a; len];
        let mut frags = Vec::new();
        fragment(&header(UDP_ISH, 77, len), &payload, mtu, &mut frags).unwrap();
        prop_assume!(frags.len() > 1);
        let drop_idx = drop_idx % frags.len();
        let mut c = cx(Ipv4Config::default());
        let now = Instant::now();
        for (i, f) in frags.into_iter().enumerate() {
            if i != drop_idx {
                ip_rcv(&mut c, now, DevId(1), f);
            }
        }
        prop_assert!(c.got.is_empty());
        let deadline = c.ip.poll_timeout();
        prop_assert!(deadline.is_some(), "an incomplete datagram must arm the reassembly timer");
        c.ip.on_timeout(now + Duration::from_secs(31));
        prop_assert!(c.ip.poll_timeout().is_none());
        prop_assert_eq!(c.ip.stats().reasm_timeout, 1);
    }

    #[test]
    fn reassembly_memory_is_bounded(
        frags in proptest::collection::vec((any::<u16>(), 0u16..8192, 1usize..1480, any::<bool>()), 1..200),
        limit in 4096usize..65536,
    ) {
        let mut r = Reassembler::new(Duration::from_secs(30), limit);
        let now = Instant::now();
        for (ident, off, len, mf) in frags {
            let len = if mf { (len / 8).max(1) * 8 } else { len };
            let mut h = header(UDP_ISH, ident % 64, len);
            h.frag_offset = off * 8;
            h.more_frags = mf;
            if usize::from(h.frag_offset) + len > 65535 {
                continue;
            }
            let mut p = vec![0u8; 20 + len];
            h.emit(&mut p);
            if let ReasmOutcome::Complete(d) = r.add(now, &h, &p) {
                prop_assert!(d.len() <= 65535 + 60);
            }
            prop_assert!(r.mem_usage() <= limit, "reassembly holds {} bytes over limit {}", r.mem_usage(), limit);
        }
        r.expire(now + Duration::from_secs(31), |_| {});
        prop_assert!(r.is_empty());
        prop_assert_eq!(r.mem_usage(), 0);
    }
}

/// The memory bound of reassembly must hold for the bookkeeping too: a far last fragment
/// allocates the buffer, then tiny fragments below it each add a 16-byte range entry that
/// `Reassembler::add` used to charge after its room check, without evicting anything
/// (about 350 such fragments took a 70 000-byte reassembler over its limit). The entry is
/// now part of the room check: the datagram is dropped (MemoryLimit) instead.
#[test]
fn reassembly_limit_counts_piece_overhead() {
    let limit = 70_000;
    let mut r = Reassembler::new(Duration::from_secs(30), limit);
    let now = Instant::now();
    let mut last = header(UDP_ISH, 1, 8);
    last.frag_offset = 64_000;
    let mut p = vec![0u8; 28];
    last.emit(&mut p);
    assert!(matches!(r.add(now, &last, &p), ReasmOutcome::Pending));
    for i in 0..500u16 {
        let mut h = header(UDP_ISH, 1, 8);
        h.frag_offset = i * 16;
        h.more_frags = true;
        let mut p = vec![0u8; 28];
        h.emit(&mut p);
        let _ = r.add(now, &h, &p);
        assert!(
            r.mem_usage() <= limit,
            "after {} tiny fragments: {} bytes > limit {}",
            i + 1,
            r.mem_usage(),
            limit
        );
    }
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
