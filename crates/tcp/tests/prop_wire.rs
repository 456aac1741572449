//! Property tests of the TCP header and options wire format (RFC 9293 3.1, RFC 7323,
//! RFC 2018): parsing never panics on arbitrary bytes, what parses round trips through
//! emit, and the checksum rejects corrupted segments.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use ustack_ipv4::checksum;
use ustack_netdev::PacketBuf;
use ustack_tcp::seq::SeqNum;
use ustack_tcp::wire::{TcpFlags, TcpOptions, TcpRepr, MAX_SACK_BLOCKS};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

prop_compose! {
    /// Options whose encoding fits the 40 bytes a header can carry.
    fn options()(
        mss in proptest::option::of(any::<u16>()),
        wscale in proptest::option::of(0u8..=14),
        sack_permitted in any::<bool>(),
        timestamp in proptest::option::of(any::<(u32, u32)>()),
        blocks in proptest::collection::vec(any::<(u32, u32)>(), 0..=MAX_SACK_BLOCKS),
    ) -> TcpOptions {
        let mut o = TcpOptions { mss, wscale, sack_permitted, timestamp, ..TcpOptions::default() };
        for (l, r) in blocks {
            if o.encoded_len() + if o.sack_count == 0 { 12 } else { 8 } > 40 {
                break;
            }
            o.push_sack((SeqNum(l), SeqNum(r)));
        }
        o
    }
}

prop_compose! {
    fn repr()(
        src_port in 1u16..,
        dst_port in 1u16..,
        seq in any::<u32>(),
        ack in any::<u32>(),
        flags in any::<u8>(),
        window in any::<u16>(),
        urgent in any::<u16>(),
        options in options(),
    ) -> TcpRepr {
        let mut r = TcpRepr::new(src_port, dst_port, SeqNum(seq), SeqNum(ack), TcpFlags(flags));
        r.window = window;
        r.urgent = urgent;
        r.options = options;
        r.header_len = r.emit_len();
        r
    }
}

fn emit(r: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let mut p = PacketBuf::with_payload_capacity(payload.len());
    p.extend_from_slice(payload);
    r.emit(&mut p, A, B);
    p.data().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn options_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(o) = TcpOptions::parse(&bytes) {
            prop_assert!(o.sack_blocks().len() <= MAX_SACK_BLOCKS);
        }
    }

    #[test]
    fn header_parse_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..96),
        fix in any::<bool>(),
    ) {
        if fix && bytes.len() >= 18 {
            bytes[16] = 0;
            bytes[17] = 0;
            let c = checksum::transport_checksum(A, B, 6, &bytes);
            bytes[16..18].copy_from_slice(&c.to_be_bytes());
        }
        if let Ok((r, range)) = TcpRepr::parse(&bytes, A, B, fix) {
            prop_assert!(r.header_len >= 20 && r.header_len <= 60);
            prop_assert_eq!(range.start, r.header_len);
            prop_assert!(range.end == bytes.len());
        }
    }

    #[test]
    fn parsed_options_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        // Whatever the option parser accepts re-encodes (canonical order) and parses back
        // to the same options, provided the canonical encoding fits in 40 bytes.
        if let Ok(o) = TcpOptions::parse(&bytes) {
            if o.encoded_len() <= 40 {
                let mut r = TcpRepr::new(1, 2, SeqNum(3), SeqNum(4), TcpFlags::ACK);
                r.options = o;
                let seg = emit(&r, &[]);
                let (q, _) = TcpRepr::parse(&seg, A, B, true).unwrap();
                prop_assert_eq!(q.options, o);
            }
        }
    }

    #[test]
    fn repr_round_trips(r in repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let seg = emit(&r, &payload);
        prop_assert_eq!(seg.len(), r.emit_len() + payload.len());
        let (q, range) = TcpRepr::parse(&seg, A, B, true).unwrap();
        prop_assert_eq!(q, r);
        prop_assert_eq!(&seg[range], &payload[..]);
    }

    #[test]
    fn corruption_is_caught_by_the_checksum(
        r in repr(),
        payload in proptest::collection::vec(any::<u8>(), 1..64),
        pos in any::<usize>(),
        bit in 0u8..8,
    ) {
        let mut seg = emit(&r, &payload);
        let pos = pos % seg.len();
        seg[pos] ^= 1 << bit;
        // A single-bit error never parses with a valid checksum.
        let res = TcpRepr::parse(&seg, A, B, true);
        prop_assert!(res.is_err(), "bit flip at {} accepted: {:?}", pos, res);
    }

    #[test]
    fn wrong_pseudo_header_is_caught(r in repr(), payload in proptest::collection::vec(any::<u8>(), 0..16)) {
        let seg = emit(&r, &payload);
        let other = Ipv4Addr::new(10, 0, 0, 3);
        prop_assert!(TcpRepr::parse(&seg, other, B, true).is_err());
    }
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
