use super::*;

/// A response to `query` (the question copied) with `flags` and answer records
/// `(owner bytes, type, rdata)`; owners and rdata are raw wire bytes (to test
/// compression).
fn response(query: &[u8], flags: u16, answers: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
    let with_ttl: Vec<_> = answers.iter().map(|(o, t, r)| (*o, *t, 300, *r)).collect();
    response_ttl(query, flags, &with_ttl)
}

/// [`response`] with a TTL per record.
fn response_ttl(query: &[u8], flags: u16, answers: &[(&[u8], u16, u32, &[u8])]) -> Vec<u8> {
    let mut m = query.to_vec();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (owner, rtype, ttl, rdata) in answers {
        m.extend_from_slice(owner);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    build_query(id, name, &mut q).unwrap();
    q
}

/// A pointer to the question's name (offset 12).
const TO_QNAME: &[u8] = &[0xc0, 12];

#[test]
fn query_layout() {
    let q = query(0xbeef, "Www.Example.test.");
    assert_eq!(
        q,
        [
            &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x03Www\x07Example\x04test\x00",
            &[0, 1, 0, 1],
        ]
        .concat()
    );
}

#[test]
fn edns_query_layout() {
    let mut q = Vec::new();
    build_query_edns(7, "a.test", Some(EDNS_UDP_SIZE), &mut q).unwrap();
    assert_eq!(
        q,
        [
            // One additional record...
            &[0, 7, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1][..],
            b"\x01a\x04test\x00",
            &[0, 1, 0, 1],
            // ...the OPT: root owner, type 41, 1232 bytes, version 0, no flags, no data.
            &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0],
        ]
        .concat()
    );
    // An answer to it (its OPT not echoed, or echoed after the answers) parses as usual.
    let mut r = q[..q.len() - 11].to_vec();
    r[2..4].copy_from_slice(&0x8180u16.to_be_bytes());
    r[6..8].copy_from_slice(&[0, 1]);
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    r.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let got = parse_response(&r, 7, "a.test").unwrap();
    assert_eq!(got.addrs, [Ipv4Addr::new(10, 0, 0, 1)]);
}

#[test]
fn bad_names_are_refused() {
    let long_label = "a".repeat(64);
    let long_name = ["a".repeat(63).as_str(); 4].join(".") + ".b";
    for n in [
        "",
        ".",
        "a..b",
        ".a",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        assert_eq!(
            build_query(1, n, &mut Vec::new()),
            Err(DnsError::BadName),
            "{n:?}"
        );
    }
    assert!(build_query(1, &"a".repeat(63), &mut Vec::new()).is_ok());
}

#[test]
fn a_records_of_the_name_and_its_cname_chain() {
    let q = query(7, "www.example.test");
    // www -> web.example.test (spelled out) -> A 10.0.0.5, 10.0.0.6; plus an A record of
    // an unrelated name, which is not taken.
    let web = b"\x03web\x07example\x04test\x00";
    let m = response(
        &q,
        0x8180,
        &[
            (TO_QNAME, TYPE_CNAME, web),
            (web, TYPE_A, &[10, 0, 0, 5]),
            (b"\x05other\x00", TYPE_A, &[6, 6, 6, 6]),
            (web, TYPE_A, &[10, 0, 0, 6]),
        ],
    );
    let r = parse_response(&m, 7, "WWW.example.test.").unwrap();
    assert_eq!(r.rcode, 0);
    assert!(!r.truncated);
    assert_eq!(
        r.addrs,
        [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)]
    );
    assert_eq!(r.ttl, 300);
}

#[test]
fn the_ttl_is_the_smallest_of_the_records_used() {
    let q = query(7, "www.example.test");
    let web = b"\x03web\x07example\x04test\x00";
    let m = response_ttl(
        &q,
        0x8180,
        &[
            (TO_QNAME, TYPE_CNAME, 120, web),
            (web, TYPE_A, 600, &[10, 0, 0, 5]),
            (b"\x05other\x00", TYPE_A, 5, &[6, 6, 6, 6]),
        ],
    );
    assert_eq!(parse_response(&m, 7, "www.example.test").unwrap().ttl, 120);
    // A TTL with the top bit set counts as zero (RFC 2181 8).
    let m = response_ttl(
        &q,
        0x8180,
        &[(TO_QNAME, TYPE_A, 0x8000_0000, &[1, 2, 3, 4])],
    );
    assert_eq!(parse_response(&m, 7, "www.example.test").unwrap().ttl, 0);
    // No address, no TTL.
    let m = response_ttl(&q, 0x8183, &[]);
    assert_eq!(parse_response(&m, 7, "www.example.test").unwrap().ttl, 0);
}

#[test]
fn compressed_owner_and_rcode_and_truncation() {
    let q = query(9, "a.test");
    let m = response(&q, 0x8380, &[(TO_QNAME, TYPE_A, &[192, 0, 2, 1])]);
    let r = parse_response(&m, 9, "a.test").unwrap();
    assert!(r.truncated);
    assert_eq!(r.addrs, [Ipv4Addr::new(192, 0, 2, 1)]);
    let nx = response(&q, 0x8183, &[]);
    let r = parse_response(&nx, 9, "a.test").unwrap();
    assert_eq!((r.rcode, r.addrs.len()), (RCODE_NXDOMAIN, 0));
}

#[test]
fn a_truncated_message_cut_inside_a_record_keeps_what_precedes_the_cut() {
    let q = query(9, "a.test");
    let full = response(
        &q,
        0x8380,
        &[
            (TO_QNAME, TYPE_A, &[192, 0, 2, 1]),
            (TO_QNAME, TYPE_A, &[192, 0, 2, 2]),
        ],
    );
    // Cut in the second record's data, and in its header.
    for cut in [full.len() - 2, full.len() - 9] {
        let r = parse_response(&full[..cut], 9, "a.test").unwrap();
        assert!(r.truncated);
        assert_eq!(r.addrs, [Ipv4Addr::new(192, 0, 2, 1)], "cut at {cut}");
    }
    // Without TC the same cut is malformed.
    let mut whole = full.clone();
    whole[2..4].copy_from_slice(&0x8180u16.to_be_bytes());
    assert_eq!(
        parse_response(&whole[..full.len() - 2], 9, "a.test"),
        Err(DnsError::Malformed)
    );
    // Cut before the first record: truncated, nothing in it.
    let r = parse_response(&full[..q.len() + 3], 9, "a.test").unwrap();
    assert!(r.truncated && r.addrs.is_empty());
}

#[test]
fn responses_to_other_queries_are_not_taken() {
    let q = query(9, "a.test");
    let m = response(&q, 0x8180, &[(TO_QNAME, TYPE_A, &[192, 0, 2, 1])]);
    assert_eq!(parse_response(&m, 10, "a.test"), Err(DnsError::NotOurs));
    assert_eq!(parse_response(&m, 9, "b.test"), Err(DnsError::NotOurs));
    // Not a response (QR clear): our own query echoed back.
    assert_eq!(parse_response(&q, 9, "a.test"), Err(DnsError::NotOurs));
}

#[test]
fn hostile_messages_are_errors() {
    let q = query(9, "a.test");
    let ok = response(&q, 0x8180, &[(TO_QNAME, TYPE_A, &[192, 0, 2, 1])]);
    // Every truncation of a valid response.
    for n in 0..ok.len() {
        assert!(parse_response(&ok[..n], 9, "a.test").is_err(), "cut at {n}");
    }
    // An answer count beyond the records present.
    let mut more = ok.clone();
    more[7] = 9;
    assert_eq!(parse_response(&more, 9, "a.test"), Err(DnsError::Malformed));
    // rdlength past the end.
    let mut long = ok.clone();
    let at = long.len() - 6;
    long[at..at + 2].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(parse_response(&long, 9, "a.test"), Err(DnsError::Malformed));
    // A pointer loop in an answer's owner: bounded, an error.
    let looped = response(&q, 0x8180, &[(&[0xc0, 24], TYPE_A, &[1, 2, 3, 4])]);
    assert_eq!(
        parse_response(&looped, 9, "a.test"),
        Err(DnsError::NameTooLong)
    );
    // A CNAME loop: a -> a; no address, no hang.
    let cloop = response(&q, 0x8180, &[(TO_QNAME, TYPE_CNAME, TO_QNAME)]);
    assert_eq!(
        parse_response(&cloop, 9, "a.test").unwrap().addrs,
        Vec::<Ipv4Addr>::new()
    );
}

proptest::proptest! {
    /// Random messages: an error or a response, never a panic.
    #[test]
    fn random_bytes_never_panic(msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96), at in 0usize..100) {
        let _ = parse_response(&msg, 9, "a.test");
        let _ = read_name(&msg, at);
    }

    /// A valid response with a few bytes changed: likewise, and a response that still
    /// parses never holds more addresses than records.
    #[test]
    fn corrupted_responses_never_panic(edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..5)) {
        let q = query(9, "a.test");
        let mut m = response(&q, 0x8180, &[(TO_QNAME, TYPE_A, &[192, 0, 2, 1]), (TO_QNAME, TYPE_A, &[192, 0, 2, 2])]);
        for (at, b) in edits {
            let len = m.len();
            m[at % len] = b;
        }
        if let Ok(r) = parse_response(&m, 9, "a.test") {
            proptest::prop_assert!(r.addrs.len() <= 2);
        }
    }
}

/// A negative response to `query` (`flags`) whose authority section holds `authority`
/// records `(owner, type, ttl, rdata)`.
fn negative(query: &[u8], flags: u16, authority: &[(&[u8], u16, u32, &[u8])]) -> Vec<u8> {
    let mut m = response_ttl(query, flags, authority);
    // The records went into the answer count; they are authority records.
    let n = m[6..8].to_vec();
    m[6..8].copy_from_slice(&[0, 0]);
    m[8..10].copy_from_slice(&n);
    m
}

/// SOA RDATA: MNAME and RNAME (root, one byte each), serial, refresh, retry, expire and
/// `minimum`.
fn soa(minimum: u32) -> Vec<u8> {
    let mut r = vec![0, 0];
    for v in [1u32, 7200, 3600, 1_209_600, minimum] {
        r.extend_from_slice(&v.to_be_bytes());
    }
    r
}

#[test]
fn negative_answers_last_as_their_soa_says() {
    let q = query(9, "gone.example.test");
    let zone: &[u8] = b"\x07example\x04test\x00";
    // RFC 2308 5: the smaller of the SOA's TTL and its MINIMUM.
    let m = negative(&q, 0x8183, &[(zone, TYPE_SOA, 900, &soa(300))]);
    let r = parse_response(&m, 9, "gone.example.test").unwrap();
    assert_eq!((r.rcode, r.negative_ttl), (RCODE_NXDOMAIN, Some(300)));
    let m = negative(&q, 0x8180, &[(zone, TYPE_SOA, 30, &soa(300))]);
    let r = parse_response(&m, 9, "gone.example.test").unwrap();
    assert_eq!((r.rcode, r.addrs.len(), r.negative_ttl), (0, 0, Some(30)));
    // An NS record before the SOA is skipped.
    let m = negative(
        &q,
        0x8183,
        &[
            (zone, 2, 60, b"\x02ns\xc0\x0c"),
            (zone, TYPE_SOA, 60, &soa(45)),
        ],
    );
    let r = parse_response(&m, 9, "gone.example.test").unwrap();
    assert_eq!(r.negative_ttl, Some(45));
    // No SOA, a truncated SOA, or an authority section cut short: not cacheable, and the
    // answer itself still stands.
    for m in [
        negative(&q, 0x8183, &[]),
        negative(&q, 0x8183, &[(zone, TYPE_SOA, 60, &[0, 0, 1, 2, 3])]),
        {
            let mut m = negative(&q, 0x8183, &[(zone, TYPE_SOA, 60, &soa(45))]);
            m.truncate(m.len() - 3);
            m
        },
    ] {
        let r = parse_response(&m, 9, "gone.example.test").unwrap();
        assert_eq!((r.rcode, r.negative_ttl), (RCODE_NXDOMAIN, None));
    }
    // An answer with addresses has no negative lifetime, whatever its authority says.
    let mut m = response(&q, 0x8180, &[(TO_QNAME, TYPE_A, &[10, 0, 0, 1])]);
    m[8..10].copy_from_slice(&[0, 1]);
    m.extend_from_slice(zone);
    m.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60, 0, 22]);
    m.extend_from_slice(&soa(45));
    let r = parse_response(&m, 9, "gone.example.test").unwrap();
    assert_eq!((r.addrs.len(), r.negative_ttl), (1, None));
}
