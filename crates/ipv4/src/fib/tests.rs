use super::*;

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn route(dst: &str, gw: Option<&str>, dev: u16, metric: u32) -> Route {
    Route {
        dst: cidr(dst),
        gateway: gw.map(ip),
        dev: DevId(dev),
        metric,
        src: None,
        kind: RouteKind::Static,
    }
}

#[test]
fn empty_table_has_no_route() {
    let f = Fib::new();
    assert!(f.lookup(ip("1.2.3.4")).is_none());
    assert!(f.is_empty());
}

#[test]
fn default_route_matches_everything() {
    let mut f = Fib::new();
    f.add(route("0.0.0.0/0", Some("10.0.0.1"), 1, 0)).unwrap();
    for a in ["1.1.1.1", "255.255.255.254", "0.0.0.1", "10.0.0.9"] {
        assert_eq!(f.lookup(ip(a)).unwrap().gateway, Some(ip("10.0.0.1")));
    }
}

#[test]
fn longest_prefix_wins() {
    let mut f = Fib::new();
    f.add(route("0.0.0.0/0", Some("192.168.0.1"), 0, 0))
        .unwrap();
    f.add(route("10.0.0.0/8", Some("192.168.0.8"), 0, 0))
        .unwrap();
    f.add(route("10.1.0.0/16", Some("192.168.0.16"), 0, 0))
        .unwrap();
    f.add(route("10.1.2.0/24", Some("192.168.0.24"), 0, 0))
        .unwrap();
    f.add(route("10.1.2.3/32", Some("192.168.0.32"), 0, 0))
        .unwrap();
    let gw = |a: &str| f.lookup(ip(a)).unwrap().gateway.unwrap();
    assert_eq!(gw("10.1.2.3"), ip("192.168.0.32"));
    assert_eq!(gw("10.1.2.4"), ip("192.168.0.24"));
    assert_eq!(gw("10.1.3.4"), ip("192.168.0.16"));
    assert_eq!(gw("10.2.3.4"), ip("192.168.0.8"));
    assert_eq!(gw("11.2.3.4"), ip("192.168.0.1"));
}

#[test]
fn host_route_only_matches_itself() {
    let mut f = Fib::new();
    f.add(route("172.16.5.5/32", None, 3, 0)).unwrap();
    assert_eq!(f.lookup(ip("172.16.5.5")).unwrap().dev, DevId(3));
    assert!(f.lookup(ip("172.16.5.4")).is_none());
    assert!(f.lookup(ip("172.16.5.6")).is_none());
}

#[test]
fn host_bits_are_cleared_on_add() {
    let mut f = Fib::new();
    f.add(route("10.9.8.7/16", None, 0, 0)).unwrap();
    assert_eq!(f.routes()[0].dst, cidr("10.9.0.0/16"));
    assert!(f.lookup(ip("10.9.200.1")).is_some());
}

#[test]
fn lower_metric_wins_and_duplicates_rejected() {
    let mut f = Fib::new();
    f.add(route("0.0.0.0/0", Some("10.0.0.1"), 1, 200)).unwrap();
    f.add(route("0.0.0.0/0", Some("10.0.0.2"), 2, 100)).unwrap();
    assert_eq!(
        f.lookup(ip("8.8.8.8")).unwrap().gateway,
        Some(ip("10.0.0.2"))
    );
    assert_eq!(
        f.add(route("0.0.0.0/0", Some("10.0.0.3"), 1, 100)),
        Err(FibError::Exists)
    );
    // Removing the preferred one falls back to the other.
    let r = f.remove(cidr("0.0.0.0/0"), Some(ip("10.0.0.2"))).unwrap();
    assert_eq!(r.metric, 100);
    assert_eq!(
        f.lookup(ip("8.8.8.8")).unwrap().gateway,
        Some(ip("10.0.0.1"))
    );
}

#[test]
fn remove_restores_shorter_match() {
    let mut f = Fib::new();
    f.add(route("10.0.0.0/8", None, 1, 0)).unwrap();
    f.add(route("10.1.0.0/16", None, 2, 0)).unwrap();
    assert_eq!(f.lookup(ip("10.1.1.1")).unwrap().dev, DevId(2));
    assert_eq!(
        f.remove(cidr("10.1.0.0/16"), Some(ip("1.1.1.1"))),
        Err(FibError::NotFound)
    );
    f.remove(cidr("10.1.0.0/16"), None).unwrap();
    assert_eq!(f.lookup(ip("10.1.1.1")).unwrap().dev, DevId(1));
    assert_eq!(f.remove(cidr("10.1.0.0/16"), None), Err(FibError::NotFound));
    f.remove(cidr("10.0.0.0/8"), None).unwrap();
    assert!(f.lookup(ip("10.1.1.1")).is_none());
    assert!(f.is_empty());
    assert_eq!(f.lens_in_use, 0);
}

#[test]
fn remove_dev_drops_its_routes() {
    let mut f = Fib::new();
    f.add(route("10.0.0.0/8", None, 1, 0)).unwrap();
    f.add(route("10.1.0.0/16", None, 2, 0)).unwrap();
    f.add(route("0.0.0.0/0", None, 2, 0)).unwrap();
    f.remove_dev(DevId(2));
    assert_eq!(f.len(), 1);
    assert_eq!(f.lookup(ip("10.1.1.1")).unwrap().dev, DevId(1));
    assert!(f.lookup(ip("11.1.1.1")).is_none());
}

#[test]
fn ten_thousand_routes() {
    let mut f = Fib::new();
    f.add(route("0.0.0.0/0", None, 0, 0)).unwrap();
    for i in 0..10_000u32 {
        // 10.x.y.0/24 for 10_000 distinct networks, plus some /20s.
        let net = Ipv4Addr::from(0x0a00_0000 | (i << 8));
        f.add(Route {
            dst: Ipv4Cidr::new(net, 24).unwrap(),
            gateway: None,
            dev: DevId((i % 1000) as u16 + 1),
            metric: 0,
            src: None,
            kind: RouteKind::Static,
        })
        .unwrap();
    }
    assert_eq!(f.len(), 10_001);
    for i in (0..10_000u32).step_by(7) {
        let a = Ipv4Addr::from(0x0a00_0000 | (i << 8) | 77);
        assert_eq!(f.lookup(a).unwrap().dev, DevId((i % 1000) as u16 + 1));
    }
    // Outside every /24 -> default.
    assert_eq!(f.lookup(ip("10.200.0.1")).unwrap().dev, DevId(0));
    assert_eq!(f.lookup(ip("99.0.0.1")).unwrap().dev, DevId(0));
}

#[test]
fn display_like_ip_route() {
    let mut f = Fib::new();
    f.set_dev_name(DevId(0), "tun0");
    f.add(Route {
        dst: cidr("10.0.0.2/32"),
        gateway: None,
        dev: DevId(0),
        metric: 0,
        src: Some(ip("10.0.0.2")),
        kind: RouteKind::Local,
    })
    .unwrap();
    f.add(Route {
        dst: cidr("10.0.0.0/24"),
        gateway: None,
        dev: DevId(0),
        metric: 0,
        src: Some(ip("10.0.0.2")),
        kind: RouteKind::Connected,
    })
    .unwrap();
    f.add(route("0.0.0.0/0", Some("10.0.0.1"), 0, 100)).unwrap();
    f.add(route("192.168.0.0/16", Some("10.0.0.3"), 5, 0))
        .unwrap();
    assert_eq!(
        f.to_string(),
        "default via 10.0.0.1 dev tun0 metric 100\n\
         10.0.0.0/24 dev tun0 proto kernel scope link src 10.0.0.2\n\
         192.168.0.0/16 via 10.0.0.3 dev dev5\n\
         local 10.0.0.2 dev tun0 proto kernel scope host src 10.0.0.2\n"
    );
}

#[test]
fn repeated_lookups_follow_every_table_change() {
    // The lookup memo must never outlive a change that alters the answer.
    let mut f = Fib::new();
    f.add(route("10.0.0.0/8", None, 1, 0)).unwrap();
    let a = ip("10.1.2.3");
    for _ in 0..3 {
        assert_eq!(f.lookup(a).unwrap().dev, DevId(1));
    }
    // A longer prefix added later wins at once.
    f.add(route("10.1.0.0/16", None, 2, 0)).unwrap();
    assert_eq!(f.lookup(a).unwrap().dev, DevId(2));
    assert_eq!(f.lookup(a).unwrap().dev, DevId(2));
    // A lower metric for the memoized prefix wins at once.
    assert_eq!(
        f.add(route("10.1.0.0/16", None, 3, 0)),
        Err(FibError::Exists)
    );
    f.add(route("10.1.0.0/16", Some("10.1.0.1"), 4, 1)).unwrap();
    assert_eq!(f.lookup(a).unwrap().dev, DevId(2));
    f.remove(cidr("10.1.0.0/16"), None).unwrap();
    assert_eq!(f.lookup(a).unwrap().dev, DevId(4));
    f.remove(cidr("10.1.0.0/16"), None).unwrap();
    assert_eq!(f.lookup(a).unwrap().dev, DevId(1));
    // Addresses sharing a memo slot do not see each other's answers.
    let b = ip("192.168.0.3");
    f.add(route("192.168.0.0/24", None, 5, 0)).unwrap();
    for _ in 0..2 {
        assert_eq!(f.lookup(a).unwrap().dev, DevId(1));
        assert_eq!(f.lookup(b).unwrap().dev, DevId(5));
    }
    f.remove_dev(DevId(1));
    assert!(f.lookup(a).is_none());
    assert_eq!(f.lookup(b).unwrap().dev, DevId(5));
}
