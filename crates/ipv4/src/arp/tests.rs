use super::*;

const DEV: DevId = DevId(1);
const OUR: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const NB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn table(cfg: NeighConfig) -> NeighTable {
    let mut t = NeighTable::new(cfg);
    t.set_mac(DEV, OUR);
    t
}

fn datagram(tag: u8) -> PacketBuf {
    let mut p = PacketBuf::with_payload_capacity(20);
    p.put(20).fill(tag);
    p
}

/// The frames in `out`: (destination, EtherType, body).
fn frames(out: &mut Vec<IpTx>) -> Vec<(MacAddr, u16, Vec<u8>)> {
    out.drain(..)
        .map(|t| {
            let d = t.pkt.data();
            assert_eq!(&d[6..12], &OUR.0, "source address");
            (
                mac_at(d, 0),
                u16::from_be_bytes([d[12], d[13]]),
                d[ETH_HLEN..].to_vec(),
            )
        })
        .collect()
}

/// A reply from `from` (Ethernet and IPv4 address) to us, sent to our Ethernet address,
/// taken by `t` on `dev` at `now`.
fn reply_in(
    t: &mut NeighTable,
    now: Instant,
    dev: DevId,
    from: (MacAddr, Ipv4Addr),
    out: &mut Vec<IpTx>,
) {
    t.input(
        now,
        dev,
        &reply_from(from.0, from.1),
        false,
        false,
        true,
        out,
    );
}

/// A request from `mac` at `spa` for `tpa` (a probe when `spa` is 0.0.0.0, an
/// announcement or a claim when `spa == tpa`).
fn request_from(mac: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        op: ARPOP_REQUEST,
        sha: mac,
        spa,
        tha: MacAddr::ZERO,
        tpa,
    }
}

fn reply_from(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        op: ARPOP_REPLY,
        sha: mac,
        spa: ip,
        tha: OUR,
        tpa: ME,
    }
}

#[test]
fn messages_parse_and_round_trip() {
    let m = request_from(PEER, NB, ME);
    let mut b = [0u8; ARP_LEN];
    m.emit(&mut b);
    assert_eq!(&b[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
    assert_eq!(ArpPacket::parse(&b), Some(m));
    // Short, another hardware or protocol, another opcode (RARP 3): not ours.
    assert_eq!(ArpPacket::parse(&b[..27]), None);
    for (at, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16), (7, 3)] {
        let mut bad = b;
        bad[at] = v;
        assert_eq!(ArpPacket::parse(&bad), None, "byte {at}");
    }
}

#[test]
fn a_datagram_waits_for_the_reply_and_then_leaves() {
    let now = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    t.output(now, DEV, NB, ME, datagram(1), &mut out);
    t.output(now, DEV, NB, ME, datagram(2), &mut out);
    // One broadcast request, from our address, for the neighbour; nothing else yet.
    let f = frames(&mut out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0, f[0].1), (MacAddr::BROADCAST, ETH_P_ARP));
    assert_eq!(
        f[0].2.len(),
        ETH_ZLEN - ETH_HLEN,
        "padded to the minimum frame"
    );
    let req = ArpPacket::parse(&f[0].2).unwrap();
    assert_eq!(
        (req.op, req.sha, req.spa, req.tpa),
        (ARPOP_REQUEST, OUR, ME, NB)
    );
    assert_eq!(t.neighbours()[0].state, NeighState::Incomplete);
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(1)));
    // The reply releases both datagrams, in order, to the neighbour.
    reply_in(&mut t, now, DEV, (PEER, NB), &mut out);
    let f = frames(&mut out);
    assert_eq!(f.len(), 2);
    for (i, (dst, ty, body)) in f.iter().enumerate() {
        assert_eq!((*dst, *ty, body[0]), (PEER, ETH_P_IP, i as u8 + 1));
    }
    let n = t.neighbours();
    assert_eq!((n[0].state, n[0].mac), (NeighState::Reachable, Some(PEER)));
    // Now straight out.
    t.output(now, DEV, NB, ME, datagram(3), &mut out);
    assert_eq!(frames(&mut out)[0].0, PEER);
    assert_eq!(t.neighbours().len(), 1);
    assert_eq!(t.stats().requests_out, 1);
}

#[test]
fn confirmation_keeps_a_resolved_entry_reachable_without_probes() {
    let t0 = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    let mut failed = Vec::new();
    // Nothing to confirm before an address is known: unknown and incomplete entries
    // stay as they are.
    t.confirm(t0, DEV, NB);
    assert!(t.neighbours().is_empty());
    t.output(t0, DEV, NB, ME, datagram(0), &mut out);
    t.confirm(t0, DEV, NB);
    assert_eq!(t.neighbours()[0].state, NeighState::Incomplete);
    reply_in(&mut t, t0, DEV, (PEER, NB), &mut out);
    out.clear();
    // Confirmed every 20 s (less than reachable_time) while in use: never probed.
    for i in 1..=10u64 {
        let now = t0 + Duration::from_secs(20 * i);
        t.confirm(now, DEV, NB);
        t.output(now, DEV, NB, ME, datagram(1), &mut out);
        if t.poll_timeout().is_some_and(|d| d <= now) {
            t.on_timeout(now, &mut out, &mut failed);
        }
        assert_eq!(t.neighbours_at(now)[0].state, NeighState::Reachable);
    }
    assert!(frames(&mut out).iter().all(|f| f.1 == ETH_P_IP));
    assert_eq!(t.stats().requests_out, 1);
    // Unconfirmed for 40 s: the next use delays, and a confirmation within
    // delay_first_probe makes the entry reachable with no probe and no timer left.
    let now = t0 + Duration::from_secs(240);
    t.output(now, DEV, NB, ME, datagram(2), &mut out);
    assert_eq!(t.neighbours()[0].state, NeighState::Delay);
    t.confirm(now + Duration::from_secs(1), DEV, NB);
    assert_eq!(t.neighbours()[0].state, NeighState::Reachable);
    let later = now + Duration::from_secs(6);
    if t.poll_timeout().is_some_and(|d| d <= later) {
        t.on_timeout(later, &mut out, &mut failed);
    }
    assert_eq!(t.poll_timeout(), None);
    // While probing, a confirmation ends the probes too.
    let now = t0 + Duration::from_secs(300);
    t.output(now, DEV, NB, ME, datagram(3), &mut out);
    t.on_timeout(now + Duration::from_secs(5), &mut out, &mut failed);
    assert_eq!(t.neighbours()[0].state, NeighState::Probe);
    assert_eq!(t.stats().requests_out, 2);
    t.confirm(now + Duration::from_secs(5), DEV, NB);
    for s in 6..=9 {
        t.on_timeout(now + Duration::from_secs(s), &mut out, &mut failed);
    }
    assert_eq!(t.neighbours()[0].state, NeighState::Reachable);
    assert_eq!((t.stats().requests_out, t.stats().resolve_failed), (2, 0));
    assert!(failed.is_empty());
    // A permanent entry is not changed by it.
    assert!(t.add_permanent(DEV, Ipv4Addr::new(10, 0, 0, 3), PEER, &mut out));
    t.confirm(now, DEV, Ipv4Addr::new(10, 0, 0, 3));
    let n = t.neighbours();
    let p = n
        .iter()
        .find(|n| n.addr == Ipv4Addr::new(10, 0, 0, 3))
        .unwrap();
    assert_eq!(p.state, NeighState::Permanent);
}

#[test]
fn no_answer_fails_after_three_requests_and_hands_the_datagrams_back() {
    let now = Instant::now();
    let mut t = table(NeighConfig {
        queue_len: 2,
        ..Default::default()
    });
    let mut out = Vec::new();
    for i in 0..3 {
        t.output(now, DEV, NB, ME, datagram(i), &mut out);
    }
    // The queue holds two: the oldest went.
    assert_eq!(t.stats().unres_discards, 1);
    let mut failed = Vec::new();
    for s in 1..=3 {
        let at = now + Duration::from_secs(s);
        assert_eq!(t.poll_timeout(), Some(at));
        t.on_timeout(at, &mut out, &mut failed);
    }
    assert_eq!(t.stats().requests_out, 3);
    assert_eq!(frames(&mut out).len(), 3);
    assert_eq!(
        failed.iter().map(|p| p.data()[0]).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(t.neighbours()[0].state, NeighState::Failed);
    assert_eq!(t.poll_timeout(), None);
    let s = t.stats();
    assert_eq!((s.resolve_failed, s.unres_discards), (1, 3));
}

#[test]
fn requests_for_us_are_answered_and_teach_the_sender() {
    let now = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    let req = request_from(PEER, NB, ME);
    t.input(now, DEV, &req, true, false, false, &mut out);
    let f = frames(&mut out);
    assert_eq!((f[0].0, f[0].1), (PEER, ETH_P_ARP));
    let rep = ArpPacket::parse(&f[0].2).unwrap();
    assert_eq!(
        rep,
        ArpPacket {
            op: ARPOP_REPLY,
            sha: OUR,
            spa: ME,
            tha: PEER,
            tpa: NB
        }
    );
    let n = t.neighbours();
    assert_eq!((n[0].state, n[0].mac), (NeighState::Stale, Some(PEER)));
    // Used while stale: sent at once, probed by unicast after 5 s, confirmed by the
    // answer.
    t.output(now, DEV, NB, ME, datagram(0), &mut out);
    assert_eq!(frames(&mut out)[0].0, PEER);
    assert_eq!(t.neighbours()[0].state, NeighState::Delay);
    let mut failed = Vec::new();
    let later = now + Duration::from_secs(5);
    t.on_timeout(later, &mut out, &mut failed);
    let f = frames(&mut out);
    assert_eq!((f[0].0, ArpPacket::parse(&f[0].2).unwrap().tpa), (PEER, NB));
    assert_eq!(t.neighbours()[0].state, NeighState::Probe);
    reply_in(&mut t, later, DEV, (PEER, NB), &mut out);
    assert_eq!(t.neighbours()[0].state, NeighState::Reachable);
    // A request for someone else's address is not answered, and a probe (sender
    // 0.0.0.0, RFC 5227) is answered but teaches nothing.
    let other = ArpPacket {
        tpa: Ipv4Addr::new(10, 0, 0, 3),
        ..req
    };
    t.input(now, DEV, &other, false, false, false, &mut out);
    assert!(out.is_empty());
    let probe = ArpPacket {
        sha: MacAddr([2, 0, 0, 0, 0, 9]),
        spa: Ipv4Addr::UNSPECIFIED,
        ..req
    };
    t.input(now, DEV, &probe, true, false, false, &mut out);
    assert_eq!(frames(&mut out).len(), 1);
    assert_eq!(t.neighbours().len(), 1);
    assert_eq!(t.stats().replies_out, 2);
}

#[test]
fn unsolicited_and_impossible_messages_create_nothing() {
    let now = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    // Unsolicited replies and gratuitous ARP for unknown addresses: ignored.
    for i in 0..100u8 {
        let ip = Ipv4Addr::new(10, 0, 1, i);
        reply_in(&mut t, now, DEV, (PEER, ip), &mut out);
        let g = request_from(PEER, ip, ip);
        t.input(now, DEV, &g, false, false, false, &mut out);
    }
    assert!(t.neighbours().is_empty() && out.is_empty());
    // Group or zero sender addresses, our own address as sender: counted, ignored.
    let req = request_from(PEER, NB, ME);
    for bad in [
        ArpPacket {
            sha: MacAddr::BROADCAST,
            ..req
        },
        ArpPacket {
            sha: MacAddr::ZERO,
            ..req
        },
        ArpPacket { sha: OUR, ..req },
        ArpPacket {
            spa: Ipv4Addr::new(224, 0, 0, 1),
            ..req
        },
        ArpPacket {
            spa: Ipv4Addr::BROADCAST,
            ..req
        },
    ] {
        t.input(now, DEV, &bad, true, false, false, &mut out);
    }
    assert_eq!(t.stats().rx_bad, 5);
    assert!(t.neighbours().is_empty() && out.is_empty());
    // A device without an Ethernet address takes nothing.
    t.input(now, DevId(7), &req, true, false, false, &mut out);
    assert!(out.is_empty());
    // Gratuitous ARP moves an existing entry to the new address (stale).
    t.input(now, DEV, &req, true, false, false, &mut out);
    out.clear();
    let moved = MacAddr([2, 0, 0, 0, 0, 7]);
    let g = request_from(moved, NB, NB);
    t.input(now, DEV, &g, false, false, false, &mut out);
    let n = t.neighbours();
    assert_eq!((n[0].state, n[0].mac), (NeighState::Stale, Some(moved)));
}

#[test]
fn the_table_is_bounded() {
    let now = Instant::now();
    let mut t = table(NeighConfig {
        max_entries: 4,
        ..Default::default()
    });
    let mut out = Vec::new();
    // Four unresolved entries fill it; a fifth destination is refused.
    for i in 0..5u8 {
        t.output(
            now,
            DEV,
            Ipv4Addr::new(10, 0, 0, 10 + i),
            ME,
            datagram(i),
            &mut out,
        );
    }
    assert_eq!(t.neighbours().len(), 4);
    assert_eq!(t.stats().table_full, 1);
    // Resolved entries make room, the least recently used first.
    for i in 0..4u8 {
        let ip = Ipv4Addr::new(10, 0, 0, 10 + i);
        let mac = MacAddr([2, 0, 0, 0, 1, i]);
        reply_in(
            &mut t,
            now + Duration::from_secs(u64::from(i)),
            DEV,
            (mac, ip),
            &mut out,
        );
        t.output(
            now + Duration::from_secs(u64::from(i)),
            DEV,
            ip,
            ME,
            datagram(i),
            &mut out,
        );
    }
    t.output(
        now + Duration::from_secs(9),
        DEV,
        Ipv4Addr::new(10, 0, 0, 50),
        ME,
        datagram(9),
        &mut out,
    );
    let addrs: Vec<Ipv4Addr> = t.neighbours().iter().map(|n| n.addr).collect();
    assert_eq!(addrs.len(), 4);
    assert!(!addrs.contains(&Ipv4Addr::new(10, 0, 0, 10)), "{addrs:?}");
    assert!(addrs.contains(&Ipv4Addr::new(10, 0, 0, 50)), "{addrs:?}");
    // Full: a request for us is answered, but its sender is not learnt (no eviction).
    out.clear();
    let req = request_from(PEER, Ipv4Addr::new(10, 0, 0, 60), ME);
    t.input(now, DEV, &req, true, false, false, &mut out);
    assert_eq!(frames(&mut out).len(), 1);
    let after: Vec<Ipv4Addr> = t.neighbours().iter().map(|n| n.addr).collect();
    assert_eq!(after, addrs);
    // The global queue bound holds whatever the per-entry limit.
    let mut t = table(NeighConfig {
        queue_len: usize::MAX,
        ..Default::default()
    });
    for i in 0..(MAX_QUEUED + 10) {
        t.output(now, DEV, NB, ME, datagram(i as u8), &mut out);
    }
    assert_eq!(t.queued, MAX_QUEUED);
    assert_eq!(t.stats().unres_discards, 10);
}

#[test]
fn permanent_entries_are_used_as_set() {
    let now = Instant::now();
    let mut t = table(NeighConfig {
        max_entries: 2,
        ..Default::default()
    });
    let mut out = Vec::new();
    // A datagram waiting for resolution leaves once the entry is set by hand.
    t.output(now, DEV, NB, ME, datagram(1), &mut out);
    out.clear();
    assert!(t.add_permanent(DEV, NB, PEER, &mut out));
    let f = frames(&mut out);
    assert_eq!((f.len(), f[0].0, f[0].1), (1, PEER, ETH_P_IP));
    // Used at once, never probed, ARP does not move it.
    let later = now + Duration::from_secs(3600);
    t.output(later, DEV, NB, ME, datagram(2), &mut out);
    assert_eq!(frames(&mut out)[0].0, PEER);
    let other = MacAddr([2, 0, 0, 0, 0, 7]);
    reply_in(&mut t, later, DEV, (other, NB), &mut out);
    let n = t.neighbours();
    assert_eq!((n[0].state, n[0].mac), (NeighState::Permanent, Some(PEER)));
    // The request timer of the resolution it replaced finds nothing to do.
    let mut failed = Vec::new();
    t.on_timeout(later, &mut out, &mut failed);
    assert!(out.is_empty() && failed.is_empty());
    assert_eq!(t.poll_timeout(), None);
    // Never evicted: with the table full of it and an unresolved entry, a third
    // destination is refused.
    let third = Ipv4Addr::new(10, 0, 0, 9);
    t.output(
        later,
        DEV,
        Ipv4Addr::new(10, 0, 0, 8),
        ME,
        datagram(3),
        &mut out,
    );
    t.output(later, DEV, third, ME, datagram(4), &mut out);
    assert_eq!(t.stats().table_full, 1);
    // Group addresses and devices without Ethernet are refused; removal works.
    assert!(!t.add_permanent(DEV, third, MacAddr::BROADCAST, &mut out));
    assert!(!t.add_permanent(DevId(9), third, PEER, &mut out));
    assert!(t.remove(DEV, NB));
    assert!(!t.remove(DEV, NB));
    assert_eq!(t.neighbours().len(), 1);
}

#[test]
fn a_removed_device_takes_its_entries_and_queues_with_it() {
    let now = Instant::now();
    let dev2 = DevId(2);
    let mut t = table(NeighConfig::default());
    t.set_mac(dev2, MacAddr([2, 0, 0, 0, 0, 9]));
    let mut out = Vec::new();
    for i in 0..3 {
        t.output(now, DEV, NB, ME, datagram(i), &mut out);
        t.output(now, dev2, NB, ME, datagram(i), &mut out);
    }
    assert_eq!(t.queued, 6);
    t.remove_dev(dev2);
    assert_eq!(t.queued, 3);
    assert_eq!(t.mac_of(dev2), None);
    let n = t.neighbours();
    assert_eq!((n.len(), n[0].dev), (1, DEV));
    // The remaining device's entry still resolves and releases its queue.
    out.clear();
    reply_in(&mut t, now, DEV, (PEER, NB), &mut out);
    assert_eq!(frames(&mut out).len(), 3);
    assert_eq!(t.queued, 0);
    t.remove_dev(DEV);
    assert!(!t.any());
    assert!(t.neighbours().is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn an_announcement_is_a_broadcast_request_for_our_own_address() {
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    t.announce(DEV, ME, &mut out);
    t.announce(DevId(9), ME, &mut out); // not an Ethernet device: nothing
    let f = frames(&mut out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0, f[0].1), (MacAddr::BROADCAST, ETH_P_ARP));
    let m = ArpPacket::parse(&f[0].2).unwrap();
    assert_eq!((m.op, m.sha, m.spa, m.tpa), (ARPOP_REQUEST, OUR, ME, ME));
    assert_eq!(m.tha, MacAddr::ZERO);
    // It creates no entry here, and another table takes it as an update only.
    assert!(t.neighbours().is_empty());
    let now = Instant::now();
    let mut peer = NeighTable::new(NeighConfig::default());
    peer.set_mac(DEV, PEER);
    peer.input(now, DEV, &m, false, false, false, &mut out);
    assert!(
        peer.neighbours().is_empty(),
        "gratuitous ARP created an entry"
    );
    peer.output(now, DEV, ME, NB, datagram(1), &mut out);
    assert_eq!(peer.neighbours()[0].state, NeighState::Incomplete);
    out.clear();
    peer.input(now, DEV, &m, false, false, false, &mut out);
    let n = peer.neighbours();
    assert_eq!((n[0].mac, n[0].state), (Some(OUR), NeighState::Stale));
    // The datagram waiting for the answer left with it.
    assert_eq!(out.len(), 1);
}

#[test]
fn a_probe_comes_from_zero_and_notices_a_user_of_the_address() {
    let now = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    let want = Ipv4Addr::new(10, 0, 0, 9);
    assert!(t.probe(DEV, want, &mut out));
    assert!(!t.probe(DevId(7), want, &mut out), "not an Ethernet device");
    let f = frames(&mut out);
    assert_eq!((f.len(), f[0].0), (1, MacAddr::BROADCAST));
    let m = ArpPacket::parse(&f[0].2).unwrap();
    assert_eq!(
        (m.op, m.spa, m.tpa),
        (ARPOP_REQUEST, Ipv4Addr::UNSPECIFIED, want)
    );
    // Unrelated traffic is no conflict.
    reply_in(&mut t, now, DEV, (PEER, NB), &mut out);
    assert!(!t.probe_end(DEV, want));
    // A reply from the address (to our probe: target 0.0.0.0) is.
    t.probe(DEV, want, &mut out);
    let answer = ArpPacket {
        op: ARPOP_REPLY,
        sha: PEER,
        spa: want,
        tha: OUR,
        tpa: Ipv4Addr::UNSPECIFIED,
    };
    t.input(now, DEV, &answer, false, false, true, &mut out);
    assert!(t.probe_end(DEV, want));
    assert!(!t.probe_end(DEV, want), "ended twice");
    // So is another host probing for it at the same time.
    t.probe(DEV, want, &mut out);
    let rival = request_from(PEER, Ipv4Addr::UNSPECIFIED, want);
    t.input(now, DEV, &rival, false, false, false, &mut out);
    assert!(t.probe_end(DEV, want));
    // The number of probes at once is bounded.
    for i in 0..MAX_PROBING {
        assert!(t.probe(DEV, Ipv4Addr::new(10, 1, 0, i as u8), &mut out));
    }
    assert!(!t.probe(DEV, Ipv4Addr::new(10, 2, 0, 1), &mut out));
    t.remove_dev(DEV);
    assert!(!t.probe_end(DEV, Ipv4Addr::new(10, 1, 0, 1)));
}

/// A waker that counts its wake-ups.
fn counting_waker() -> (Waker, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (Waker::from(std::sync::Arc::new(Count(n.clone()))), n)
}

/// RFC 5227 2.4: an ARP message from another host with our address as its sender is a
/// conflict. The first is answered with an announcement of our own; another within
/// DEFEND_INTERVAL is not (the address is to be given up: `poll_lost` reports it and a
/// waiting task is woken); after the interval the address is defended again. The
/// conflicting message teaches the table nothing and is not answered.
#[test]
fn a_conflict_is_defended_once_per_interval_then_reported_lost() {
    let t0 = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    let other = MacAddr([2, 0, 0, 0, 0, 7]);
    let claim = request_from(other, ME, ME);
    let (waker, woken) = counting_waker();
    assert_eq!(t.poll_lost(DEV, ME, 0, &waker), None);
    t.input(t0, DEV, &claim, true, true, false, &mut out);
    // Defended: a broadcast announcement of ME from our Ethernet address, nothing else.
    let f = frames(&mut out);
    assert_eq!(f.len(), 1, "one announcement, no reply to the claimant");
    assert_eq!(f[0].0, MacAddr::BROADCAST);
    let m = ArpPacket::parse(&f[0].2).unwrap();
    assert_eq!((m.op, m.sha, m.spa, m.tpa), (ARPOP_REQUEST, OUR, ME, ME));
    assert!(t.neighbours().is_empty(), "learned from a conflict");
    let c: Vec<_> = t.conflicts().copied().collect();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].seq, c[0].dev, c[0].addr, c[0].mac, c[0].defended),
        (1, DEV, ME, other, true)
    );
    // A defended conflict does not end the address, but wakes the waiters to look.
    let mut wake = Vec::new();
    t.take_wakers(&mut wake);
    assert_eq!(wake.len(), 1);
    wake.drain(..).for_each(Waker::wake);
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(t.poll_lost(DEV, ME, 0, &waker), None);
    // The claimant insists within 10 s (a reply this time): not defended, reported.
    let insist = ArpPacket {
        op: ARPOP_REPLY,
        ..claim
    };
    let t1 = t0 + Duration::from_secs(9);
    t.input(t1, DEV, &insist, true, true, true, &mut out);
    assert!(out.is_empty(), "defended twice within the interval");
    let lost = t.poll_lost(DEV, ME, 0, &waker).expect("reported");
    assert_eq!((lost.seq, lost.defended, lost.at), (2, false, t1));
    assert_eq!(t.poll_lost(DEV, ME, 2, &waker), None, "only after `after`");
    assert_eq!(t.poll_lost(DevId(2), ME, 0, &waker), None, "another device");
    t.take_wakers(&mut wake);
    assert_eq!(wake.len(), 1, "the waiter hears of the conflict");
    // Ten seconds after the defence, the next claim is defended again.
    t.input(
        t0 + DEFEND_INTERVAL,
        DEV,
        &claim,
        true,
        true,
        false,
        &mut out,
    );
    assert_eq!(frames(&mut out).len(), 1);
    let s = t.stats();
    assert_eq!((s.conflicts, s.defences, t.conflict_seq()), (3, 2, 3));
}

/// A flood of conflicting messages costs bounded memory and at most one announcement
/// per address per interval; the log keeps the last CONFLICT_LOG.
#[test]
fn a_flood_of_conflicts_is_bounded() {
    let t0 = Instant::now();
    let mut t = table(NeighConfig::default());
    let mut out = Vec::new();
    for i in 0..10_000u32 {
        let claim = ArpPacket {
            op: ARPOP_REPLY,
            sha: MacAddr([2, 0, 0, 1, (i >> 8) as u8, i as u8]),
            spa: ME,
            tha: OUR,
            tpa: ME,
        };
        let now = t0 + Duration::from_millis(u64::from(i));
        t.input(now, DEV, &claim, true, true, true, &mut out);
    }
    // Claims for 10 s less a millisecond, one every millisecond: one defence.
    assert_eq!(frames(&mut out).len(), 1);
    assert_eq!(t.stats().defences, 1);
    assert_eq!(t.conflicts().count(), CONFLICT_LOG);
    assert_eq!(t.conflicts().last().map(|c| c.seq), Some(10_000));
    assert!(t.defended.len() <= 1);
    // Many waiters: bounded, the oldest woken early.
    for _ in 0..MAX_CONFLICT_WAITERS + 10 {
        let (w, _) = counting_waker();
        let _ = t.poll_lost(DEV, Ipv4Addr::new(10, 9, 9, 9), 0, &w);
    }
    assert!(t.conflict_wakers.len() <= MAX_CONFLICT_WAITERS);
}
