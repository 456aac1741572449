//! Property tests of the IPv4 and ICMP wire formats: parsing never panics on arbitrary
//! bytes, valid headers round trip, and the header checksum catches every single-bit
//! error (RFC 791 3.1, RFC 1071).

use std::net::Ipv4Addr;

use proptest::prelude::*;
use ustack_ipv4::checksum;
use ustack_ipv4::icmp::{IcmpErrorKind, IcmpRepr};
use ustack_ipv4::{HeaderError, Ipv4Repr};

/// Recomputes the header checksum in place so that parsing gets past it.
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

fn unicast_src() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("not multicast or broadcast", |a| {
            !a.is_multicast() && !a.is_broadcast()
        })
}

fn nonzero_dst() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..).prop_map(Ipv4Addr::from)
}

prop_compose! {
    /// A header that `Ipv4Repr::parse` must accept (20-byte header, consistent fragment fields).
    fn valid_repr()(
        src in unicast_src(),
        dst in nonzero_dst(),
        protocol in any::<u8>(),
        ttl in any::<u8>(),
        tos in any::<u8>(),
        ident in any::<u16>(),
        dont_frag in any::<bool>(),
        more_frags in any::<bool>(),
        off_units in 0u16..64,
        payload_units in 0usize..64,
        tail in 0usize..8,
    ) -> Ipv4Repr {
        // Non-final fragments carry a non-zero multiple of 8 bytes (RFC 791).
        let payload_len = if more_frags { (payload_units + 1) * 8 } else { payload_units * 8 + tail };
        Ipv4Repr {
            src, dst, protocol, ttl, tos, ident, dont_frag, more_frags,
            frag_offset: off_units * 8,
            header_len: 20,
            payload_len,
        }
    }
}

fn emit(r: &Ipv4Repr) -> Vec<u8> {
    let mut p = vec![0u8; r.emitted_len()];
    r.emit(&mut p);
    for (i, b) in p.iter_mut().enumerate().skip(20) {
        *b = i as u8;
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..128), fix in any::<bool>()) {
        if fix {
            fix_csum(&mut bytes);
        }
        if let Ok(r) = Ipv4Repr::parse(&bytes) {
            prop_assert!((20..=60).contains(&r.header_len));
            prop_assert!(r.header_len + r.payload_len <= bytes.len());
        }
    }

    #[test]
    fn parse_never_panics_on_mostly_valid_headers(
        r in valid_repr(),
        pos in 0usize..20,
        val in any::<u8>(),
        cut in 0usize..100,
    ) {
        // A valid header with one byte set to anything and the checksum fixed: every
        // field reaches its own check.
        let mut p = emit(&r);
        p[pos] = val;
        fix_csum(&mut p);
        p.truncate(cut.max(1).min(p.len()));
        let _ = Ipv4Repr::parse(&p);
    }

    #[test]
    fn valid_repr_round_trips(r in valid_repr(), padding in 0usize..16) {
        let mut p = emit(&r);
        p.extend(std::iter::repeat_n(0xaa, padding));
        prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
    }

    #[test]
    fn single_bit_errors_in_the_header_are_caught(r in valid_repr(), bit in 0usize..160) {
        let mut p = emit(&r);
        p[bit / 8] ^= 1 << (bit % 8);
        // Either the checksum or an earlier check rejects it: never a silently different header.
        let res = Ipv4Repr::parse(&p);
        prop_assert!(res.is_err(), "bit {} flipped yet parsed as {:?}", bit, res);
    }

    #[test]
    fn truncation_is_an_error(r in valid_repr(), keep in 0usize..1000) {
        let p = emit(&r);
        let keep = keep % p.len();
        let res = Ipv4Repr::parse(&p[..keep]);
        prop_assert_eq!(res, Err(HeaderError::Truncated));
    }

    #[test]
    fn icmp_parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..96), fix in any::<bool>()) {
        if fix && bytes.len() >= 4 {
            bytes[2] = 0;
            bytes[3] = 0;
            let c = checksum::checksum(&bytes);
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
        }
        if let Ok(r) = IcmpRepr::parse(&bytes) {
            // Emit what was parsed and parse it again: the same message.
            let mut q = vec![0u8; r.buffer_len()];
            r.emit(&mut q);
            prop_assert_eq!(IcmpRepr::parse(&q), Ok(r));
        }
    }

    #[test]
    fn icmp_echo_round_trips(ident in any::<u16>(), seq in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64), reply in any::<bool>()) {
        let r = if reply {
            IcmpRepr::EchoReply { ident, seq, data: &data }
        } else {
            IcmpRepr::EchoRequest { ident, seq, data: &data }
        };
        let mut q = vec![0u8; r.buffer_len()];
        r.emit(&mut q);
        prop_assert_eq!(IcmpRepr::parse(&q), Ok(r));
    }

    #[test]
    fn icmp_error_kinds_round_trip(typ in prop_oneof![Just(3u8), Just(11u8), Just(12u8)], code in any::<u8>(), rest in any::<[u8; 4]>()) {
        // from_type_code -> type_code -> from_type_code is stable (the grouping is a
        // projection: codes of one group emit as its first code).
        if let Some(k) = IcmpErrorKind::from_type_code(typ, code, rest) {
            let (t, c, r) = k.type_code();
            prop_assert_eq!(IcmpErrorKind::from_type_code(t, c, r), Some(k));
        }
    }
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
