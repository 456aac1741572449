use super::*;
use std::time::Duration;

#[test]
fn echo_roundtrip_exact_bytes() {
    let m = IcmpRepr::EchoRequest {
        ident: 0x1234,
        seq: 1,
        data: b"abcd",
    };
    let mut b = vec![0u8; m.buffer_len()];
    m.emit(&mut b);
    // 0800 0000 1234 0001 6162 6364: sum = 0xdefb -> checksum 0x2104.
    assert_eq!(
        b,
        [8, 0, 0x21, 0x04, 0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd']
    );
    assert_eq!(IcmpRepr::parse(&b), Ok(m));
}

#[test]
fn parse_errors() {
    assert_eq!(IcmpRepr::parse(&[8, 0, 0]), Err(IcmpParseError::Truncated));
    let mut b = vec![0u8; 8];
    IcmpRepr::EchoReply {
        ident: 1,
        seq: 2,
        data: &[],
    }
    .emit(&mut b);
    b[7] ^= 1;
    assert_eq!(IcmpRepr::parse(&b), Err(IcmpParseError::BadChecksum));
}

fn quote() -> Vec<u8> {
    let r = crate::wire::Ipv4Repr {
        src: Ipv4Addr::new(10, 0, 0, 2),
        dst: Ipv4Addr::new(10, 0, 0, 9),
        protocol: 6,
        ttl: 64,
        tos: 0,
        ident: 5,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: 1480,
    };
    let mut q = vec![0u8; 28];
    r.emit(&mut q);
    q[20..28].copy_from_slice(&[0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1]);
    q
}

#[test]
fn frag_needed_roundtrip_and_error_parse() {
    let q = quote();
    let m = IcmpRepr::Error {
        kind: IcmpErrorKind::FragmentationNeeded { mtu: 1400 },
        quote: &q,
    };
    let mut b = vec![0u8; m.buffer_len()];
    m.emit(&mut b);
    assert_eq!(&b[..2], &[3, 4]);
    assert_eq!(&b[4..8], &[0, 0, 0x05, 0x78]);
    let IcmpRepr::Error { kind, quote: qq } = IcmpRepr::parse(&b).unwrap() else {
        panic!("not an error");
    };
    assert_eq!(kind, IcmpErrorKind::FragmentationNeeded { mtu: 1400 });
    let e = IcmpError::parse(kind, Ipv4Addr::new(10, 0, 0, 1), qq).unwrap();
    assert_eq!(e.orig_src, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(e.orig_dst, Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(e.orig_protocol, 6);
    assert_eq!(e.quoted, vec![0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1]);
    // A quote with fewer than 8 transport bytes is refused.
    assert!(IcmpError::parse(kind, Ipv4Addr::LOCALHOST, &q[..27]).is_none());
    assert!(IcmpError::parse(kind, Ipv4Addr::LOCALHOST, &q[..10]).is_none());
    let mut bad = q.clone();
    bad[0] = 0x65;
    assert!(IcmpError::parse(kind, Ipv4Addr::LOCALHOST, &bad).is_none());
}

#[test]
fn kinds_map_both_ways() {
    for k in [
        IcmpErrorKind::NetUnreachable,
        IcmpErrorKind::HostUnreachable,
        IcmpErrorKind::ProtocolUnreachable,
        IcmpErrorKind::PortUnreachable,
        IcmpErrorKind::FragmentationNeeded { mtu: 576 },
        IcmpErrorKind::SourceRouteFailed,
        IcmpErrorKind::AdminProhibited,
        IcmpErrorKind::TimeExceeded,
        IcmpErrorKind::ParameterProblem,
        IcmpErrorKind::Other { typ: 3, code: 15 },
    ] {
        let (t, c, r) = k.type_code();
        assert_eq!(IcmpErrorKind::from_type_code(t, c, r), Some(k));
    }
    assert_eq!(
        IcmpErrorKind::from_type_code(11, 1, [0; 4]),
        Some(IcmpErrorKind::TimeExceeded)
    );
    assert_eq!(IcmpErrorKind::from_type_code(5, 0, [0; 4]), None);
    assert_eq!(
        IcmpErrorKind::PortUnreachable.io_kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(
        IcmpErrorKind::NetUnreachable.io_kind(),
        io::ErrorKind::NetworkUnreachable
    );
    assert_eq!(
        IcmpErrorKind::HostUnreachable.io_kind(),
        io::ErrorKind::HostUnreachable
    );
    assert!(IcmpErrorKind::PortUnreachable.is_hard());
    assert!(!IcmpErrorKind::HostUnreachable.is_hard());
    assert!(!IcmpErrorKind::FragmentationNeeded { mtu: 1 }.is_hard());
}

#[test]
fn error_types() {
    assert!(!is_error_type(ICMP_ECHO));
    assert!(!is_error_type(ICMP_ECHO_REPLY));
    assert!(is_error_type(ICMP_DEST_UNREACH));
    assert!(is_error_type(ICMP_TIME_EXCEEDED));
    assert!(is_error_type(200));
}

#[test]
fn rate_limiter_token_bucket() {
    let t0 = Instant::now();
    let mut r = RateLimiter::new(10, 3);
    assert!(r.allow(t0));
    assert!(r.allow(t0));
    assert!(r.allow(t0));
    assert!(!r.allow(t0));
    // 10/s: one token per 100 ms.
    assert!(!r.allow(t0 + Duration::from_millis(99)));
    assert!(r.allow(t0 + Duration::from_millis(100)));
    assert!(!r.allow(t0 + Duration::from_millis(150)));
    // A long pause refills only up to the burst.
    let t1 = t0 + Duration::from_secs(3600);
    assert!(r.allow(t1) && r.allow(t1) && r.allow(t1));
    assert!(!r.allow(t1));
    // Rate 0: unlimited.
    let mut u = RateLimiter::new(0, 0);
    assert!((0..1000).all(|_| u.allow(t0)));
}
