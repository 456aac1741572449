use super::*;

const DEV: DevId = DevId(0);
const OTHER: DevId = DevId(1);
const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const G2: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A query message: v1/v2 (8 bytes) when `v3` is `None`, else a v3 query with `sources`.
fn query(code: u8, group: Ipv4Addr, v3: Option<u16>) -> Vec<u8> {
    let mut m = vec![TYPE_QUERY, code, 0, 0];
    m.extend_from_slice(&group.octets());
    if let Some(n) = v3 {
        m.extend_from_slice(&[2, 125]);
        m.extend_from_slice(&n.to_be_bytes());
        for i in 0..n {
            m.extend_from_slice(&[10, 0, 0, i as u8]);
        }
    }
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn take(g: &mut Igmp) -> Vec<IgmpOut> {
    let mut v = Vec::new();
    g.take_out(&mut v);
    v
}

/// The records of a v3 report (type, group, sources), after checking its layout and
/// checksum.
fn records_with_sources(m: &IgmpOut) -> Vec<(u8, Ipv4Addr, Vec<Ipv4Addr>)> {
    assert_eq!(m.dst, V3_REPORTS);
    assert_eq!(m.msg[0], TYPE_V3_REPORT);
    assert_eq!(checksum::checksum(&m.msg), 0, "checksum");
    let n = usize::from(u16::from_be_bytes([m.msg[6], m.msg[7]]));
    let mut at = V3_HEADER;
    let mut out = Vec::new();
    for _ in 0..n {
        let r = &m.msg[at..];
        assert_eq!(r[1], 0, "no aux data");
        let ns = usize::from(u16::from_be_bytes([r[2], r[3]]));
        let sources = (0..ns).map(|i| addr_at(r, 8 + 4 * i)).collect();
        out.push((r[0], addr_at(r, 4), sources));
        at += V3_RECORD + 4 * ns;
    }
    assert_eq!(at, m.msg.len(), "records fill the message");
    out
}

/// The records of a v3 report without sources (type, group).
fn records(m: &IgmpOut) -> Vec<(u8, Ipv4Addr)> {
    records_with_sources(m)
        .into_iter()
        .map(|(t, g, s)| {
            assert!(s.is_empty(), "no sources");
            (t, g)
        })
        .collect()
}

/// Runs the timers from `from` for `span` in 10 ms steps, collecting what is sent
/// with the instant it was sent.
fn run(g: &mut Igmp, from: Instant, span: Duration) -> Vec<(Duration, IgmpOut)> {
    let mut got = Vec::new();
    let mut t = from;
    while t <= from + span {
        if g.next_deadline().is_some_and(|d| d <= t) {
            g.on_timeout(t, |_| 1500 - 24);
            got.extend(take(g).into_iter().map(|m| (t - from, m)));
        }
        t += Duration::from_millis(10);
    }
    got
}

/// An `Igmp` (seeded with `seed`) whose devices joined `groups` and sent their reports;
/// returns it with an instant 10 s after the joins, when nothing is due.
fn settled(seed: u64, groups: &[(DevId, Ipv4Addr)]) -> (Igmp, Instant) {
    let mut g = Igmp::new(seed);
    let t0 = Instant::now();
    for &(dev, group) in groups {
        g.join(t0, dev, group);
    }
    let _ = run(&mut g, t0, Duration::from_secs(2));
    let _ = take(&mut g);
    assert_eq!(g.next_deadline(), None);
    (g, t0 + Duration::from_secs(10))
}

#[test]
fn a_join_is_reported_at_once_and_once_more_within_a_second() {
    let mut g = Igmp::new(7);
    let t0 = Instant::now();
    assert!(!g.is_member(DEV, G1));
    assert!(g.is_member(DEV, ALL_HOSTS), "224.0.0.1 is always received");
    assert!(g.join(t0, DEV, G1));
    assert!(g.is_member(DEV, G1));
    assert!(!g.is_member(OTHER, G1), "memberships are per device");
    let now = take(&mut g);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].dev, DEV);
    assert_eq!(records(&now[0]), vec![(CHANGE_TO_EXCLUDE, G1)]);
    let later = run(&mut g, t0, Duration::from_secs(5));
    assert_eq!(later.len(), 1, "robustness 2: one repetition");
    assert!(later[0].0 <= V3_UNSOLICITED_INTERVAL);
    assert_eq!(records(&later[0].1), vec![(CHANGE_TO_EXCLUDE, G1)]);
    assert_eq!(g.next_deadline(), None);
    assert_eq!(g.stats().out_reports, 2);
}

#[test]
fn only_the_first_join_and_the_last_leave_are_reported() {
    let mut g = Igmp::new(1);
    let t0 = Instant::now();
    assert!(g.join(t0, DEV, G1));
    assert!(!g.join(t0, DEV, G1));
    assert_eq!(take(&mut g).len(), 1);
    assert_eq!(g.memberships().collect::<Vec<_>>(), vec![(DEV, G1, 2)]);
    let _ = run(&mut g, t0, Duration::from_secs(2));
    let t1 = t0 + Duration::from_secs(3);
    assert!(g.leave(t1, DEV, G1));
    assert!(take(&mut g).is_empty(), "a user remains");
    assert!(g.is_member(DEV, G1));
    assert!(g.leave(t1, DEV, G1));
    assert!(!g.is_member(DEV, G1), "reception stops at the last leave");
    let now = take(&mut g);
    assert_eq!(records(&now[0]), vec![(CHANGE_TO_INCLUDE, G1)]);
    let later = run(&mut g, t1, Duration::from_secs(5));
    assert_eq!(later.len(), 1);
    assert_eq!(records(&later[0].1), vec![(CHANGE_TO_INCLUDE, G1)]);
    assert!(!g.leave(t1, DEV, G1), "not a member any more");
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn a_rejoin_cancels_the_pending_leave() {
    let mut g = Igmp::new(3);
    let t0 = Instant::now();
    g.join(t0, DEV, G1);
    let _ = run(&mut g, t0, Duration::from_secs(2));
    let _ = take(&mut g);
    let t1 = t0 + Duration::from_secs(3);
    g.leave(t1, DEV, G1);
    assert_eq!(records(&take(&mut g)[0]), vec![(CHANGE_TO_INCLUDE, G1)]);
    g.join(t1, DEV, G1);
    assert_eq!(records(&take(&mut g)[0]), vec![(CHANGE_TO_EXCLUDE, G1)]);
    let later = run(&mut g, t1, Duration::from_secs(5));
    assert!(later
        .iter()
        .all(|(_, m)| records(m) == vec![(CHANGE_TO_EXCLUDE, G1)]));
}

#[test]
fn a_general_query_is_answered_with_every_group_in_one_report() {
    let (mut g, t1) = settled(11, &[(DEV, G1), (DEV, G2), (OTHER, ip("239.5.5.5"))]);
    // Max response code 20: 2 s.
    g.input(t1, DEV, &query(20, Ipv4Addr::UNSPECIFIED, Some(0)))
        .unwrap();
    assert_eq!(g.stats().in_queries, 1);
    let got = run(&mut g, t1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert!(got[0].0 <= Duration::from_secs(2));
    assert_eq!(got[0].1.dev, DEV);
    let mut r = records(&got[0].1);
    r.sort();
    assert_eq!(r, vec![(MODE_IS_EXCLUDE, G1), (MODE_IS_EXCLUDE, G2)]);
}

#[test]
fn a_group_specific_query_is_answered_for_that_group_only() {
    let (mut g, t1) = settled(12, &[(DEV, G1), (DEV, G2)]);
    g.input(t1, DEV, &query(10, G2, Some(0))).unwrap();
    let got = run(&mut g, t1, Duration::from_secs(3));
    assert_eq!(got.len(), 1);
    assert!(got[0].0 <= Duration::from_secs(1));
    assert_eq!(records(&got[0].1), vec![(MODE_IS_EXCLUDE, G2)]);
    // A query for a group not joined is not answered.
    g.input(t1, DEV, &query(10, ip("239.7.7.7"), Some(0)))
        .unwrap();
    assert!(run(&mut g, t1 + Duration::from_secs(3), Duration::from_secs(3)).is_empty());
}

#[test]
fn large_answers_are_split_to_fit_the_link() {
    let groups: Vec<_> = (0..300u16)
        .map(|i| (DEV, Ipv4Addr::new(239, 0, (i >> 8) as u8, i as u8)))
        .collect();
    let (mut g, t1) = settled(13, &groups);
    g.input(t1, DEV, &query(10, Ipv4Addr::UNSPECIFIED, Some(0)))
        .unwrap();
    let got = run(&mut g, t1, Duration::from_secs(2));
    assert_eq!(
        got.len(),
        2,
        "300 records do not fit one 1,500-byte datagram"
    );
    let mut n = 0;
    for (_, m) in &got {
        assert!(m.msg.len() <= 1500 - 24);
        n += records(m).len();
    }
    assert_eq!(n, 300);
}

#[test]
fn queries_only_move_an_answer_earlier() {
    let (mut g, t1) = settled(14, &[(DEV, G1)]);
    g.input(t1, DEV, &query(10, G1, Some(0))).unwrap();
    let first = g.next_deadline().unwrap();
    for i in 0..1000 {
        // Long maximum response times (code 0xff: 3,174.4 s) cannot postpone it.
        g.input(
            t1 + Duration::from_millis(i % 50),
            DEV,
            &query(0xff, G1, Some(0)),
        )
        .unwrap();
        assert!(g.next_deadline().unwrap() <= first);
    }
}

#[test]
fn a_v2_query_switches_to_v2_reports_leaves_and_suppression() {
    let (mut g, t1) = settled(21, &[(DEV, G1), (DEV, G2)]);
    g.input(t1, DEV, &query(30, Ipv4Addr::UNSPECIFIED, None))
        .unwrap();
    assert_eq!(g.version(DEV, t1), 2);
    assert_eq!(g.version(OTHER, t1), 3, "per device");
    // Another member answers for G2 first: ours is suppressed.
    g.input(t1, DEV, &v2_message(TYPE_V2_REPORT, G2)).unwrap();
    assert_eq!(g.stats().in_reports, 1);
    let got = run(&mut g, t1, Duration::from_secs(4));
    assert_eq!(got.len(), 1, "only G1 is reported");
    assert!(got[0].0 <= Duration::from_secs(3));
    let m = &got[0].1;
    assert_eq!((m.dst, m.msg.clone()), (G1, v2_message(TYPE_V2_REPORT, G1)));
    // We reported G1 last: its leave is sent; G2's is left to its reporter.
    let t2 = t1 + Duration::from_secs(5);
    g.leave(t2, DEV, G1);
    g.leave(t2, DEV, G2);
    let out = take(&mut g);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].dst, out[0].msg.clone()),
        (ALL_ROUTERS, v2_message(TYPE_V2_LEAVE, G1))
    );
    assert_eq!(g.stats().out_leaves, 1);
    assert!(run(&mut g, t2, Duration::from_secs(20)).is_empty());
    // Back to v3 once no v2 querier was heard for the timeout.
    assert_eq!(g.version(DEV, t1 + OLDER_QUERIER_TIMEOUT), 3);
}

#[test]
fn a_v1_query_switches_to_v1_reports_without_leaves() {
    let mut g = Igmp::new(31);
    let t0 = Instant::now();
    g.join(t0, DEV, G1);
    let _ = take(&mut g);
    // Switching cancels the pending v3 repetition.
    g.input(t0, DEV, &query(0, Ipv4Addr::UNSPECIFIED, None))
        .unwrap();
    assert_eq!(g.version(DEV, t0), 1);
    let got = run(&mut g, t0, Duration::from_secs(11));
    assert_eq!(got.len(), 1);
    assert!(got[0].0 <= V1_MAX_RESPONSE);
    assert_eq!(got[0].1.msg, v2_message(TYPE_V1_REPORT, G1));
    let t1 = t0 + Duration::from_secs(20);
    g.join(t1, DEV, G2);
    assert_eq!(take(&mut g)[0].msg, v2_message(TYPE_V1_REPORT, G2));
    g.leave(t1, DEV, G1);
    assert!(take(&mut g).is_empty(), "v1 has no leave message");
}

#[test]
fn malformed_messages_are_rejected_without_effect() {
    let (mut g, t1) = settled(41, &[(DEV, G1)]);
    let mut bad_sum = query(10, G1, Some(0));
    bad_sum[2] ^= 1;
    assert_eq!(g.input(t1, DEV, &bad_sum), Err(IgmpParseError::BadChecksum));
    assert_eq!(
        g.input(t1, DEV, &[0x11, 1, 2]),
        Err(IgmpParseError::Truncated)
    );
    let mut odd = query(10, G1, None);
    odd.push(0);
    assert_eq!(g.input(t1, DEV, &odd), Err(IgmpParseError::Truncated));
    // A v3 query claiming more sources than it holds.
    let mut short = query(10, G1, Some(3));
    short.truncate(short.len() - 4);
    let c = {
        short[2] = 0;
        short[3] = 0;
        checksum::checksum(&short)
    };
    short[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(g.input(t1, DEV, &short), Err(IgmpParseError::Truncated));
    assert_eq!(g.stats().in_errors, 4);
    assert_eq!(g.next_deadline(), None, "nothing was scheduled");
    assert_eq!(g.version(DEV, t1), 3);
    // Unknown types and v3 reports of other hosts are ignored.
    assert_eq!(g.input(t1, DEV, &v3_report(&[Record::new(2, G1)])), Ok(()));
    assert_eq!(g.input(t1, DEV, &v2_message(0x42, G1)), Ok(()));
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn max_response_codes_decode_as_rfc_3376_says() {
    assert_eq!(decode_resp_code(100), 100);
    // 0x80: mant 0, exp 0 -> 16 << 3 = 128 tenths.
    assert_eq!(decode_resp_code(0x80), 128);
    // 0xff: mant 15, exp 7 -> 31 << 10 = 31,744 tenths.
    assert_eq!(decode_resp_code(0xff), 31_744);
    match IgmpMsg::parse(&query(0x80, G1, Some(0))).unwrap() {
        IgmpMsg::Query {
            version,
            max_resp,
            group,
            sources,
        } => {
            assert_eq!((version, group, sources), (3, G1, Some(vec![])));
            assert_eq!(max_resp, Duration::from_millis(12_800));
        }
        m => panic!("{m:?}"),
    }
    // A zero code still leaves hosts 100 ms to spread their answers.
    match IgmpMsg::parse(&query(0, G1, Some(0))).unwrap() {
        IgmpMsg::Query { max_resp, .. } => assert_eq!(max_resp, Duration::from_millis(100)),
        m => panic!("{m:?}"),
    }
}

#[test]
fn source_specific_queries_are_answered_with_the_sources_asked() {
    let (mut g, t1) = settled(15, &[(DEV, G1), (DEV, G2)]);
    let src = |i: u8| Ipv4Addr::new(10, 0, 0, i);
    // Two group-and-source-specific queries before the answer: the union, IS_IN.
    g.input(t1, DEV, &query(10, G1, Some(2))).unwrap();
    g.input(t1, DEV, &query(10, G1, Some(3))).unwrap();
    let got = run(&mut g, t1, Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    let mut r = records_with_sources(&got[0].1);
    r[0].2.sort();
    assert_eq!(r, vec![(MODE_IS_INCLUDE, G1, vec![src(0), src(1), src(2)])]);
    // A group-specific query while one is pending: the whole group, IS_EX {}.
    let t2 = t1 + Duration::from_secs(5);
    g.input(t2, DEV, &query(10, G2, Some(2))).unwrap();
    g.input(t2, DEV, &query(10, G2, Some(0))).unwrap();
    g.input(t2, DEV, &query(10, G2, Some(1))).unwrap();
    let got = run(&mut g, t2, Duration::from_secs(2));
    assert_eq!(records(&got[0].1), vec![(MODE_IS_EXCLUDE, G2)]);
    // More sources than kept: answered for the whole group too.
    let t3 = t2 + Duration::from_secs(5);
    let many = MAX_QUERY_SOURCES as u16 + 1;
    g.input(t3, DEV, &query(10, G1, Some(many))).unwrap();
    let got = run(&mut g, t3, Duration::from_secs(2));
    assert_eq!(records(&got[0].1), vec![(MODE_IS_EXCLUDE, G1)]);
    // With a general answer due as well, the group's record claims every source.
    let t4 = t3 + Duration::from_secs(5);
    g.input(t4, DEV, &query(10, G1, Some(2))).unwrap();
    g.input(t4, DEV, &query(10, Ipv4Addr::UNSPECIFIED, Some(0)))
        .unwrap();
    let got = run(&mut g, t4, Duration::from_secs(2));
    let all: Vec<_> = got
        .iter()
        .flat_map(|(_, m)| records_with_sources(m))
        .collect();
    assert!(all.contains(&(MODE_IS_EXCLUDE, G1, vec![])), "{all:?}");
}

#[test]
fn answers_with_sources_are_split_by_their_size() {
    let groups: Vec<_> = (0..40u8)
        .map(|i| (DEV, Ipv4Addr::new(239, 3, 0, i)))
        .collect();
    let (mut g, t1) = settled(16, &groups);
    for &(_, group) in &groups {
        g.input(t1, DEV, &query(10, group, Some(10))).unwrap();
    }
    // The room of a 576-byte datagram: 40 records of 8 + 40 bytes do not fit one.
    let mut t = t1;
    let mut msgs = Vec::new();
    while t <= t1 + Duration::from_secs(2) {
        if g.next_deadline().is_some_and(|d| d <= t) {
            g.on_timeout(t, |_| 576 - 24);
            msgs.extend(take(&mut g));
        }
        t += Duration::from_millis(10);
    }
    let mut n = 0;
    for m in &msgs {
        assert!(m.msg.len() <= 576 - 24, "{} bytes", m.msg.len());
        for (typ, _, sources) in records_with_sources(m) {
            assert_eq!((typ, sources.len()), (MODE_IS_INCLUDE, 10));
            n += 1;
        }
    }
    assert_eq!(n, 40);
}

/// Found by the `rx_path` fuzz target (`fuzz/regressions/rx_path/igmp-general-answer-after-last-leave`):
/// a general query answered late (long maximum response time) kept its timer armed after
/// the device's last group was left, with nothing left to report.
#[test]
fn leaving_the_last_group_cancels_a_pending_general_answer() {
    let (mut g, t1) = settled(17, &[(DEV, G1)]);
    g.input(t1, DEV, &query(0xff, Ipv4Addr::UNSPECIFIED, Some(0)))
        .unwrap();
    assert!(g.next_deadline().is_some());
    g.leave(t1, DEV, G1);
    let _ = run(&mut g, t1, Duration::from_secs(3));
    assert_eq!(
        g.next_deadline(),
        None,
        "no timer left once the leaves are sent"
    );
}
