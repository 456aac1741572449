use super::*;

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

/// A server reply: fixed part, cookie, then `opts` (already encoded) and END.
fn reply(xid: u32, yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; FIXED_LEN];
    b[0] = BOOTREPLY;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[16..20].copy_from_slice(&yiaddr);
    b[28..34].copy_from_slice(&MAC.0);
    b.extend_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(opts);
    b.push(opt::END);
    b
}

/// The options of an emitted message, as (code, value) pairs in order.
fn options_of(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    walk(&b[FIXED_LEN + 4..], &mut |c, v| out.push((c, v.to_vec()))).unwrap();
    out
}

#[test]
fn a_discover_is_laid_out_as_rfc_2131_says() {
    let m = Request {
        msg_type: MsgType::Discover,
        xid: 0x1234_5678,
        secs: 3,
        broadcast: true,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: MAC,
        requested_ip: None,
        server_id: None,
        host_name: Some("box"),
        client_id: None,
    }
    .emit();
    assert_eq!(m.len(), MIN_LEN);
    assert_eq!(&m[..4], &[BOOTREQUEST, 1, 6, 0]);
    assert_eq!(&m[4..8], &[0x12, 0x34, 0x56, 0x78]);
    assert_eq!(&m[8..12], &[0, 3, 0x80, 0]);
    assert_eq!(&m[28..34], &MAC.0);
    assert_eq!(&m[FIXED_LEN..FIXED_LEN + 4], &MAGIC_COOKIE);
    let o = options_of(&m);
    assert_eq!(o[0], (opt::MESSAGE_TYPE, vec![1]));
    assert_eq!(o[1], (opt::CLIENT_ID, vec![1, 2, 0, 0, 0, 0, 7]));
    assert!(o.contains(&(opt::HOST_NAME, b"box".to_vec())));
    let asked = &o
        .iter()
        .find(|(c, _)| *c == opt::PARAM_REQUEST)
        .expect("a parameter request list")
        .1;
    let at = |code| asked.iter().position(|&c| c == code);
    // RFC 3442: classless routes are asked for, and before the router option.
    assert!(at(opt::CLASSLESS_ROUTES).unwrap() < at(opt::ROUTER).unwrap());
    assert!(at(opt::MTU).is_some());
    // A request in SELECTING names the offer and its server; a release has our address.
    let m = Request {
        msg_type: MsgType::Release,
        xid: 1,
        secs: 0,
        broadcast: false,
        ciaddr: Ipv4Addr::new(10, 0, 0, 9),
        chaddr: MAC,
        requested_ip: None,
        server_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        host_name: None,
        client_id: Some(b"\x00id"),
    }
    .emit();
    assert_eq!(&m[10..16], &[0, 0, 10, 0, 0, 9]);
    let o = options_of(&m);
    assert_eq!(o[0], (opt::MESSAGE_TYPE, vec![7]));
    assert_eq!(o[1], (opt::CLIENT_ID, b"\x00id".to_vec()));
    assert_eq!(o[2], (opt::SERVER_ID, vec![10, 0, 0, 1]));
    assert!(!o.iter().any(|(c, _)| *c == opt::PARAM_REQUEST));
}

#[test]
fn an_ack_parses_with_every_option_used() {
    let mut opts = vec![opt::MESSAGE_TYPE, 1, 5, opt::PAD, opt::PAD];
    opts.extend_from_slice(&[opt::SERVER_ID, 4, 10, 0, 0, 1]);
    opts.extend_from_slice(&[opt::LEASE_TIME, 4, 0, 0, 0x0e, 0x10]);
    opts.extend_from_slice(&[opt::RENEWAL_TIME, 4, 0, 0, 0x07, 0x08]);
    opts.extend_from_slice(&[opt::REBINDING_TIME, 4, 0, 0, 0x0c, 0x4e]);
    opts.extend_from_slice(&[opt::SUBNET_MASK, 4, 255, 255, 255, 0]);
    opts.extend_from_slice(&[opt::ROUTER, 8, 10, 0, 0, 1, 10, 0, 0, 254]);
    opts.extend_from_slice(&[opt::DNS, 4, 10, 0, 0, 53]);
    opts.extend_from_slice(&[opt::DOMAIN_NAME, 9]);
    opts.extend_from_slice(b"lan.test\0");
    opts.extend_from_slice(&[opt::MTU, 2, 0x05, 0xdc]);
    opts.extend_from_slice(&[200, 3, 1, 2, 3]); // unknown: skipped
    let r = Reply::parse(&reply(7, [10, 0, 0, 9], &opts)).unwrap();
    assert_eq!(r.xid, 7);
    assert_eq!(r.chaddr, MAC.0);
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(r.msg_type, Some(MsgType::Ack));
    assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(
        (r.lease_secs, r.t1_secs, r.t2_secs),
        (Some(3600), Some(1800), Some(3150))
    );
    assert_eq!(r.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(
        r.routers,
        [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 254)]
    );
    assert_eq!(r.dns, [Ipv4Addr::new(10, 0, 0, 53)]);
    assert_eq!(r.domain.as_deref(), Some("lan.test"));
    assert_eq!(r.mtu, Some(1500));
}

fn a(x: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(x)
}

#[test]
fn classless_routes_decode_as_rfc_3442_encodes_them() {
    // RFC 3442 section 3's examples: 0/0, 10/8, 10.17/16, 10.27.129/24, 10.229.0.128/25,
    // 10.198.122.47/32, then a route on the link (router 0.0.0.0).
    let v = [
        0, 10, 0, 0, 1, //
        8, 10, 10, 0, 0, 2, //
        16, 10, 17, 10, 0, 0, 3, //
        24, 10, 27, 129, 10, 0, 0, 4, //
        25, 10, 229, 0, 128, 10, 0, 0, 5, //
        32, 10, 198, 122, 47, 10, 0, 0, 6, //
        20, 192, 168, 15, 0, 0, 0, 0, // bits past /20 cleared: 192.168.0.0/20
    ];
    let r = classless_routes(&v).unwrap();
    assert_eq!(
        r,
        [
            (a([0, 0, 0, 0]), 0, a([10, 0, 0, 1])),
            (a([10, 0, 0, 0]), 8, a([10, 0, 0, 2])),
            (a([10, 17, 0, 0]), 16, a([10, 0, 0, 3])),
            (a([10, 27, 129, 0]), 24, a([10, 0, 0, 4])),
            (a([10, 229, 0, 128]), 25, a([10, 0, 0, 5])),
            (a([10, 198, 122, 47]), 32, a([10, 0, 0, 6])),
            (a([192, 168, 0, 0]), 20, a([0, 0, 0, 0])),
        ]
    );
    // Malformed: the whole option is ignored.
    assert_eq!(classless_routes(&[]), None);
    assert_eq!(classless_routes(&[33, 1, 2, 3, 4, 5, 10, 0, 0, 1]), None);
    assert_eq!(classless_routes(&[24, 10, 0, 0, 10, 0, 0]), None);
    assert_eq!(classless_routes(&[0, 10, 0, 0, 1, 8]), None);
    // Every prefix cut short anywhere is refused, never read past.
    for cut in 0..v.len() {
        let r = classless_routes(&v[..cut]);
        assert!(
            r.is_none() || [5, 11, 18, 26, 35, 44].contains(&cut),
            "{cut}"
        );
    }
}

#[test]
fn classless_routes_in_a_reply_may_come_in_pieces() {
    // A value split over two instances of option 121 (RFC 3396), the split inside a route.
    let mut opts = vec![opt::MESSAGE_TYPE, 1, 5];
    opts.extend_from_slice(&[opt::ROUTER, 4, 10, 0, 0, 1]);
    opts.extend_from_slice(&[opt::CLASSLESS_ROUTES, 3, 16, 172, 16]);
    opts.extend_from_slice(&[opt::DNS, 4, 10, 0, 0, 53]);
    opts.extend_from_slice(&[opt::CLASSLESS_ROUTES, 9, 10, 0, 0, 2, 0, 10, 0, 0, 3]);
    let r = Reply::parse(&reply(1, [10, 0, 0, 9], &opts)).unwrap();
    assert_eq!(
        r.classless_routes,
        Some(vec![
            (a([172, 16, 0, 0]), 16, a([10, 0, 0, 2])),
            (a([0, 0, 0, 0]), 0, a([10, 0, 0, 3])),
        ])
    );
    assert_eq!(r.routers, [a([10, 0, 0, 1])]);
    // A malformed value: ignored, the reply still parses.
    let opts = [opt::MESSAGE_TYPE, 1, 5, opt::CLASSLESS_ROUTES, 2, 40, 1];
    let r = Reply::parse(&reply(1, [10, 0, 0, 9], &opts)).unwrap();
    assert_eq!(r.classless_routes, None);
}

#[test]
fn overloaded_fields_carry_options_too() {
    let mut b = reply(9, [10, 0, 0, 9], &[opt::OVERLOAD, 1, 3]);
    // `file` (offset 108) has the message type, `sname` (offset 44) the server id.
    b[108..111].copy_from_slice(&[opt::MESSAGE_TYPE, 1, 2]);
    b[111] = opt::END;
    b[44..50].copy_from_slice(&[opt::SERVER_ID, 4, 10, 0, 0, 2]);
    b[50] = opt::END;
    let r = Reply::parse(&b).unwrap();
    assert_eq!(r.msg_type, Some(MsgType::Offer));
    assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
}

#[test]
fn hostile_messages_are_errors() {
    let good = reply(1, [10, 0, 0, 9], &[opt::MESSAGE_TYPE, 1, 2]);
    assert!(Reply::parse(&good).is_ok());
    for n in 0..FIXED_LEN + 4 {
        assert_eq!(
            Reply::parse(&good[..n]),
            Err(ParseError::Truncated),
            "{n} bytes"
        );
    }
    // A request, another hardware type, a wrong cookie.
    for (at, v) in [(0, BOOTREQUEST), (1, 6), (2, 16), (FIXED_LEN, 0)] {
        let mut b = good.clone();
        b[at] = v;
        assert_eq!(Reply::parse(&b), Err(ParseError::NotDhcpReply), "byte {at}");
    }
    // An option whose length runs past the end, one cut before its length.
    let mut b = reply(1, [0; 4], &[opt::MESSAGE_TYPE, 1, 2]);
    b.pop();
    b.extend_from_slice(&[opt::DNS, 200, 1, 2]);
    assert_eq!(Reply::parse(&b), Err(ParseError::BadOption));
    b.truncate(b.len() - 3);
    assert_eq!(Reply::parse(&b), Err(ParseError::BadOption));
    // No message type, or an unknown one; malformed values are ignored.
    assert_eq!(
        Reply::parse(&reply(1, [0; 4], &[opt::SERVER_ID, 3, 1, 2, 3])),
        Err(ParseError::NoMessageType)
    );
    assert_eq!(
        Reply::parse(&reply(1, [0; 4], &[opt::MESSAGE_TYPE, 1, 99])),
        Err(ParseError::NoMessageType)
    );
    let r = Reply::parse(&reply(
        1,
        [0; 4],
        &[
            opt::MESSAGE_TYPE,
            1,
            2,
            opt::SERVER_ID,
            3,
            1,
            2,
            3,
            opt::LEASE_TIME,
            0,
        ],
    ))
    .unwrap();
    assert_eq!((r.server_id, r.lease_secs), (None, None));
    // Every prefix and every single-byte change of a full reply: an answer, never a panic.
    let mut opts = vec![opt::MESSAGE_TYPE, 1, 5, opt::OVERLOAD, 1, 3];
    opts.extend_from_slice(&[opt::ROUTER, 4, 10, 0, 0, 1, opt::DOMAIN_NAME, 2, b'a', b'b']);
    let full = reply(1, [10, 0, 0, 9], &opts);
    for n in 0..=full.len() {
        let _ = Reply::parse(&full[..n]);
    }
    for i in 0..full.len() {
        for v in [0u8, 1, 2, 3, 52, 53, 255] {
            let mut b = full.clone();
            b[i] = v;
            let _ = Reply::parse(&b);
        }
    }
}
