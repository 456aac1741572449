//! Window scaling, timestamps/PAWS, SACK, loss recovery, fast path, and goodput under
//! loss (RFC 7323, RFC 2018, RFC 6675, RFC 6582, Mathis et al.).

mod common;
use common::*;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use ustack_tcp::wire::TcpFlags;
use ustack_tcp::{CcAlgorithm, SockId, SockOpt, TcpConfig};

#[test]
fn window_scale_negotiated_both_ways() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let syn = n.log.iter().find(|x| x.is(TcpFlags::SYN)).unwrap().clone();
    let synack = n
        .log
        .iter()
        .find(|x| x.is(TcpFlags::SYN | TcpFlags::ACK))
        .unwrap()
        .clone();
    assert_eq!(syn.opts.wscale, Some(7));
    assert_eq!(synack.opts.wscale, Some(7));
    assert_eq!(n.a.info(c).unwrap().wscale, Some((7, 7)));
    assert_eq!(n.b.info(s).unwrap().wscale, Some((7, 7)));
    // A window bigger than 64 KiB is used once buffers grow.
    let data = pattern(8 << 20, 1);
    n.delay = Duration::from_millis(20);
    let got = n.transfer(c, s, &data, Duration::from_secs(120));
    assert!(got == data);
    assert!(
        n.a.info(c).unwrap().snd_wnd > 65535,
        "{}",
        n.a.info(c).unwrap().snd_wnd
    );

    // The peer without window scaling: neither side scales.
    let cfg = TcpConfig {
        window_scaling: false,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cfg);
    let (c, s) = n.connect_pair(80);
    let synack = n
        .log
        .iter()
        .find(|x| x.is(TcpFlags::SYN | TcpFlags::ACK))
        .unwrap()
        .clone();
    assert_eq!(synack.opts.wscale, None);
    assert_eq!(n.a.info(c).unwrap().wscale, None);
    assert_eq!(n.b.info(s).unwrap().wscale, None);
    let data = pattern(1 << 20, 2);
    let got = n.transfer(c, s, &data, Duration::from_secs(60));
    assert!(got == data);
}

#[test]
fn paws_drops_old_duplicate() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let first: Rc<Cell<Option<usize>>> = Rc::new(Cell::new(None));
    let f2 = first.clone();
    // Keep a copy of the first data segment and replay it later.
    n.a_send(c, b"first");
    n.settle();
    let old = n
        .log
        .iter()
        .rev()
        .find(|x| x.dir == Dir::AtoB && x.len == 5)
        .unwrap()
        .clone();
    let _ = f2;
    n.run_for(Duration::from_millis(500));
    n.a_send(c, b"second");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"firstsecond");
    let r = old.repr();
    let before = n.b.stats().paws_estab;
    n.inject_noreply(Dir::AtoB, old.src, old.dst, &r, b"first");
    assert_eq!(n.b.stats().paws_estab, before + 1);
    assert!(n.recv_all(Dir::BtoA, s).is_empty());
    first.set(Some(1));
    // New data whose TSval is one tick behind the last one seen is reordering within a
    // tick of the sender's clock (Linux TCP_PAWS_WINDOW): accepted.
    let last = n
        .log
        .iter()
        .rev()
        .find(|x| x.dir == Dir::AtoB && x.len == 6)
        .unwrap()
        .clone();
    let (val, ecr) = last.opts.timestamp.unwrap();
    let mut r = last.repr();
    r.seq = ustack_tcp::SeqNum(last.seq.wrapping_add(6));
    r.options.timestamp = Some((val.wrapping_sub(1), ecr));
    n.inject(Dir::AtoB, last.src, last.dst, &r, b"third");
    assert_eq!(n.b.stats().paws_estab, before + 1);
    assert_eq!(n.recv_all(Dir::BtoA, s), b"third");
}

/// Linux `tcp_disordered_ack`: a pure duplicate ACK overtaken by a newer one (its TSval
/// behind `ts_recent`, but within an RTO) is processed rather than dropped by PAWS, so
/// its SACK information counts; an ACK far older is still dropped. Segments PAWS rejects
/// are answered with at most one ACK per 500 ms (Linux `tcp_oow_rate_limited`).
#[test]
fn paws_passes_reordered_duplicate_acks_and_rate_limits_its_answers() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a_send(c, b"data");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"data");
    n.run_for(Duration::from_millis(300));
    // More data 300 ms later: B's ts_recent moves past the first segment's TSval.
    n.a_send(c, b"more");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"more");
    // B's last pure ACK to A, replayed with an older TSval.
    let ack = n
        .log
        .iter()
        .rev()
        .find(|x| x.dir == Dir::BtoA && x.len == 0 && x.flags == TcpFlags::ACK)
        .unwrap()
        .clone();
    let (val, ecr) = ack.opts.timestamp.unwrap();
    let replay = |tsval: u32| {
        let mut r = ack.repr();
        r.options.timestamp = Some((tsval, ecr));
        r
    };
    let before = n.a.stats().paws_estab;
    // 5 ms behind: reordering, processed.
    let r = replay(val.wrapping_sub(5));
    n.inject_noreply(Dir::BtoA, ack.src, ack.dst, &r, b"");
    assert_eq!(n.a.stats().paws_estab, before);
    // 100 s behind: an old duplicate, rejected.
    let r = replay(val.wrapping_sub(100_000));
    n.inject_noreply(Dir::BtoA, ack.src, ack.dst, &r, b"");
    assert_eq!(n.a.stats().paws_estab, before + 1);
    // Old data replayed five times within 500 ms: five rejections, one ACK.
    let old = n
        .log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.len == 4)
        .unwrap()
        .clone();
    let r = old.repr();
    let b_before = n.b.stats().paws_estab;
    let mut acks = 0;
    for _ in 0..5 {
        acks += n
            .inject_noreply(Dir::AtoB, old.src, old.dst, &r, b"data")
            .len();
    }
    assert_eq!(n.b.stats().paws_estab, b_before + 5);
    assert_eq!(acks, 1);
    n.run_for(Duration::from_millis(600));
    let again = n.inject_noreply(Dir::AtoB, old.src, old.dst, &r, b"data");
    assert_eq!(again.len(), 1);
    assert!(n.recv_all(Dir::BtoA, s).is_empty());
}

#[test]
fn sack_blocks_after_a_hole() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[1]);
    n.log_take();
    let data = pattern(5 * mss as usize, 3);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(3));
    let syn_isn = n.first_data_seq(Dir::AtoB);
    let dupacks: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.opts.sack_count > 0)
        .cloned()
        .collect();
    assert!(!dupacks.is_empty());
    let first = &dupacks[0];
    assert_eq!(first.ack, syn_isn.wrapping_add(mss));
    let (l, r) = first.opts.sack_blocks()[0];
    assert_eq!(l.0, syn_isn.wrapping_add(2 * mss));
    assert_eq!(r.0, syn_isn.wrapping_add(3 * mss));
    let last = dupacks.last().unwrap();
    let (l, r) = last.opts.sack_blocks()[0];
    assert_eq!(
        (l.0, r.0),
        (syn_isn.wrapping_add(2 * mss), syn_isn.wrapping_add(5 * mss))
    );
    n.settle();
    n.run_for(Duration::from_secs(1));
    assert!(n.recv_all(Dir::BtoA, s) == data);
}

/// RFC 2018 section 4: with more out-of-order blocks than an ACK can carry, the first
/// block holds the segment that just arrived and the others repeat the most recently
/// reported blocks, so every block is reported in several ACKs and one lost ACK does not
/// hide it from the sender. Four holes in the initial window (segments 1, 3, 5 and 7
/// lost): when segment 9 arrives, the blocks are those of 8-9, 6 and 4 (not 8-9, 2, 4).
#[test]
fn sack_blocks_repeat_the_most_recent_blocks() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[1, 3, 5, 7]);
    n.log_take();
    let data = pattern(10 * mss as usize, 7);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(3));
    let isn = n.first_data_seq(Dir::AtoB);
    let at = |k: u32| isn.wrapping_add(k * mss);
    let acks: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.opts.sack_count > 0)
        .cloned()
        .collect();
    let blocks = |seg: &Seg| -> Vec<(u32, u32)> {
        seg.opts
            .sack_blocks()
            .iter()
            .map(|&(l, r)| (l.0, r.0))
            .collect()
    };
    // The ACK for segment 9, the last of the flight: three blocks with timestamps.
    let last = acks
        .iter()
        .find(|a| a.ack == at(1) && blocks(a).first().is_some_and(|b| b.1 == at(10)))
        .expect("the ACK for segment 9");
    assert_eq!(
        blocks(last),
        vec![(at(8), at(10)), (at(6), at(7)), (at(4), at(5))],
        "{last:?}"
    );
    // Each block was reported in more than one ACK.
    for k in [2u32, 4, 6] {
        let times = acks
            .iter()
            .filter(|a| blocks(a).contains(&(at(k), at(k + 1))))
            .count();
        assert!(times >= 2, "segment {k}'s block in {times} ACKs: {acks:?}");
    }
    n.settle();
    n.run_for(Duration::from_secs(1));
    assert!(n.recv_all(Dir::BtoA, s) == data);
}

/// RFC 2883 section 4.2: a duplicate of data held out of order (above a hole) is reported
/// with a D-SACK block for the duplicate first, then the SACK block that contains it.
#[test]
fn a_duplicate_above_a_hole_is_reported_by_dsack() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    // Segment 1 is lost once; segment 3 arrives twice.
    let mut lost = false;
    let mut duped = false;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len > 0 && seg.seq_rel_is(mss) && !lost {
            lost = true;
            return Action::Drop;
        }
        if seg.len > 0 && seg.seq_rel_is(3 * mss) && !duped {
            duped = true;
            return Action::Duplicate;
        }
        Action::Pass
    });
    n.log_take();
    let data = pattern(5 * mss as usize, 4);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(3));
    let isn1 = n.first_data_seq(Dir::AtoB);
    let at = |k: u32| isn1.wrapping_add(k * mss);
    let dsack = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.opts.sack_count >= 2)
        .find(|x| {
            let b = x.opts.sack_blocks();
            (b[0].0 .0, b[0].1 .0) == (at(3), at(4))
        })
        .expect("an ACK with a D-SACK block for the duplicate")
        .clone();
    assert_eq!(dsack.ack, at(1), "{dsack:?}");
    let b = dsack.opts.sack_blocks();
    // The block holding the duplicate: from segment 2 to whatever has arrived since.
    assert!(
        b[1].0 .0 == at(2) && (b[1].1 .0 == at(4) || b[1].1 .0 == at(5)),
        "{dsack:?}"
    );
    assert_eq!(n.b.stats().tcp_dsack_ofo_sent, 1);
    n.settle();
    n.run_for(Duration::from_secs(1));
    assert!(n.recv_all(Dir::BtoA, s) == data);
}

#[test]
fn two_losses_in_one_window_recovered_without_rto_sack() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[2, 6]);
    let data = pattern(30 * mss as usize, 4);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let i = n.a.info(c).unwrap();
    let st = n.a.stats();
    assert_eq!(i.rto_events, 0, "{i:?}");
    assert_eq!(st.tcp_sack_recovery, 1);
    assert_eq!(st.retrans_segs, 2);
}

#[test]
fn newreno_partial_ack_recovery_without_sack() {
    let cfg = TcpConfig {
        sack: false,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(cfg.clone(), cfg);
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    assert!(!n.a.info(c).unwrap().sack);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[2, 6]);
    let data = pattern(30 * mss as usize, 5);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let i = n.a.info(c).unwrap();
    let st = n.a.stats();
    assert_eq!(i.rto_events, 0, "{i:?}");
    assert_eq!(st.tcp_reno_recovery, 1);
    assert_eq!(
        st.retrans_segs, 2,
        "partial ACK retransmits the second hole"
    );
}

#[test]
fn fast_path_counts_in_order_data() {
    let mut n = Net::new();
    // A paced link: segments arrive one by one and the reader keeps up.
    n.rate = Some(100_000_000);
    let (c, s) = n.connect_pair(80);
    let data = pattern(1 << 20, 6);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let st = n.b.stats();
    eprintln!(
        "hp hits {} hp acks(A) {} pure acks(A) {}",
        st.tcp_hp_hits,
        n.a.stats().tcp_hp_acks,
        n.a.stats().tcp_pure_acks
    );
    assert!(st.tcp_hp_hits > 500, "{}", st.tcp_hp_hits);
    assert!(n.a.stats().tcp_hp_acks > 100, "{}", n.a.stats().tcp_hp_acks);
}

/// A 32 MiB transfer over a 100 ms RTT path losing 1 % of the data segments at random:
/// goodput, the Mathis et al. estimate for it, and the sender's info and counters.
fn mathis_run(
    alg: CcAlgorithm,
    seed: u64,
) -> (f64, f64, ustack_tcp::TcpInfo, ustack_tcp::TcpStats) {
    let mut n = Net::new();
    n.keep_log = false;
    n.rng = Rng::new(seed);
    n.delay = Duration::from_millis(50);
    let (c, s) = n.connect_pair(80);
    n.a.set_option(c, SockOpt::Congestion(alg)).unwrap();
    let p = 0.01;
    n.faults[0].loss = p;
    let size = 32usize << 20;
    let data = pattern(size, seed);
    let t0 = n.now;
    let got = n.transfer(c, s, &data, Duration::from_secs(3600));
    assert!(got == data);
    let secs = (n.now - t0).as_secs_f64();
    let goodput = size as f64 / secs;
    let mss = n.a.info(c).unwrap().snd_mss as f64;
    let mathis = mss / 0.1 * 1.22 / p.sqrt();
    (goodput, mathis, n.a.info(c).unwrap(), n.a.stats())
}

#[test]
fn goodput_under_1pct_loss_at_100ms_rtt() {
    for alg in [CcAlgorithm::Cubic, CcAlgorithm::Reno] {
        let (g, m, i, st) = mathis_run(alg, 11);
        let (rtos, recs) = (i.rto_events, i.recoveries);
        eprintln!(
            "{alg:?}: goodput {:.0} B/s, Mathis {:.0} B/s ({:.2}x), RTO events {rtos}, fast recoveries {recs}, lost retransmissions {}",
            g,
            m,
            g / m,
            st.tcp_lost_retransmit
        );
        assert!(g >= 0.5 * m, "{alg:?} goodput {g} < half of Mathis {m}");
        assert!(rtos < recs, "{alg:?} RTOs {rtos} >= recoveries {recs}");
        // No timeout fires while the segment it would resend is still on its way: a head
        // resent late in a recovery restarts the timer.
        assert_eq!(st.tcp_spurious_rtos, 0, "{alg:?} {st:?}");
        // The path only drops: every retransmission repairs a loss, none is reported
        // twice received (D-SACK) and no window reduction is undone.
        assert_eq!(st.tcp_dsack_recv, 0, "{alg:?} {st:?}");
        assert_eq!(
            (st.tcp_full_undo, st.tcp_loss_undo),
            (0, 0),
            "{alg:?} {st:?}"
        );
    }
}

/// A large flight through a 100 Mbit/s, 20 ms RTT path with segment `lost` dropped once:
/// the transfer, the lost segment's sequence number, and when its third duplicate ACK
/// reached the sender.
fn one_loss_in_a_large_flight(cfg: TcpConfig, lost: u32) -> (Net, SockId, u32, std::time::Instant) {
    let mut n = Net::with_configs(cfg.clone(), cfg);
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[lost]);
    let data = pattern(2000 * mss as usize, 9);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let lost_seq = n
        .log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.seq_rel_is(lost * mss))
        .unwrap()
        .seq;
    let third_dupack = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.ack == lost_seq && x.len == 0)
        .nth(2)
        .expect("three duplicate ACKs")
        .at
        + n.delay;
    (n, c, lost_seq, third_dupack)
}

/// The sender's data segments (time, seq) in `[from, to)`.
fn sends_between(
    n: &Net,
    from: std::time::Instant,
    to: std::time::Instant,
) -> Vec<(std::time::Instant, u32)> {
    n.log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0 && x.at >= from && x.at < to)
        .map(|x| (x.at, x.seq))
        .collect()
}

/// RFC 6675 step 4.3: the fast retransmission leaves with the third duplicate ACK, even
/// though the pipe (far above the halved window) would not admit a segment yet. Without
/// SACK (NewReno) too.
#[test]
fn fast_retransmit_leaves_on_the_third_dupack_with_a_full_pipe() {
    for sack in [true, false] {
        let cfg = TcpConfig {
            sack,
            ..TcpConfig::default()
        };
        let (n, c, lost_seq, third) = one_loss_in_a_large_flight(cfg, 400);
        let retx = n
            .log
            .iter()
            .filter(|x| x.dir == Dir::AtoB && x.seq == lost_seq && x.len > 0)
            .nth(1)
            .expect("a retransmission")
            .at;
        assert!(
            retx >= third && retx - third < Duration::from_millis(1),
            "sack {sack}: retransmitted {:?} after the third duplicate ACK",
            retx.saturating_duration_since(third)
        );
        let i = n.a.info(c).unwrap();
        assert_eq!((i.rto_events, i.recoveries), (0, 1), "sack {sack}: {i:?}");
        assert_eq!(n.a.stats().retrans_segs, 1, "sack {sack}");
    }
}

/// Proportional Rate Reduction (RFC 6937): through the first part of Recovery (while the
/// pipe is above ssthresh) the sender goes on sending, about ssthresh / prior cwnd (CUBIC:
/// 0.7) segments per segment delivered, one or two at a time: no pause until the pipe
/// drains below the halved window, and no burst.
#[test]
fn recovery_sends_in_proportion_to_what_is_delivered() {
    let (n, _c, lost_seq, third) = one_loss_in_a_large_flight(TcpConfig::default(), 400);
    // The 12 ms after entering Recovery: the retransmission reaches the receiver 10 ms
    // later, so every ACK arriving meanwhile reports one more segment delivered.
    let end = third + Duration::from_millis(12);
    let sends: Vec<_> = sends_between(&n, third, end)
        .into_iter()
        .filter(|&(_, seq)| seq != lost_seq)
        .collect();
    let acks = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.at + n.delay > third && x.at + n.delay < end)
        .count();
    assert!(acks >= 50, "only {acks} ACKs in the window");
    let ratio = sends.len() as f64 / acks as f64;
    assert!(
        (0.55..=0.85).contains(&ratio),
        "{} new segments for {acks} ACKs ({ratio:.2})",
        sends.len()
    );
    let mut per_instant = std::collections::BTreeMap::new();
    for (at, _) in &sends {
        *per_instant.entry(*at).or_insert(0u32) += 1;
    }
    let burst = per_instant.values().copied().max().unwrap_or(0);
    assert!(burst <= 2, "{burst} segments sent for one ACK");
}

/// 16 MiB through a 100 Mbit/s, 20 ms RTT path with a deep queue (nothing is dropped),
/// socket buffers of 8 MiB:
/// the largest smoothed RTT seen by the sender, and its ssthresh at the end.
fn slow_start_into_a_deep_queue(hystart: bool, pacing: bool) -> (Duration, u32, u32) {
    // Buffers large from the start, so the windows never limit the flight.
    let cfg = TcpConfig {
        hystart,
        pacing,
        rmem: (4096, 8 << 20, 8 << 20),
        wmem: (4096, 8 << 20, 8 << 20),
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(cfg.clone(), cfg);
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    n.keep_log = false;
    let (c, s) = n.connect_pair(80);
    let data = pattern(16 << 20, 11);
    let mut max_rtt = Duration::ZERO;
    let got = n.transfer_observed(c, s, &data, Duration::from_secs(60), |n| {
        max_rtt = max_rtt.max(n.a.info(c).unwrap().rtt);
    });
    assert!(got == data);
    let i = n.a.info(c).unwrap();
    (max_rtt, i.snd_ssthresh, i.total_retrans)
}

/// HyStart (RFC 9406 with Linux CUBIC's ACK-train test): CUBIC leaves slow start when the
/// window fills the path (the ACKs of one flight arrive back to back for more than half
/// the minimum RTT), without a loss and before a queue builds; without it slow start goes
/// on until the transfer ends (or, on a real path, until the queue overflows). Here the
/// smoothed RTT peaks at about 34 ms (a base of 20) with HyStart, 62 ms paced (the train
/// must last a whole minimum RTT, since pacing itself spreads a flight over half of one),
/// and near 700 ms without. The RFC's delay test alone, which compares round minima,
/// let it reach about 175 ms (270 ms paced).
#[test]
fn hystart_ends_slow_start_before_the_queue_grows_long() {
    let (rtt_on, ssthresh_on, retrans_on) = slow_start_into_a_deep_queue(true, false);
    let (rtt_paced, ssthresh_paced, retrans_paced) = slow_start_into_a_deep_queue(true, true);
    let (rtt_off, ssthresh_off, _) = slow_start_into_a_deep_queue(false, false);
    assert_eq!((retrans_on, retrans_paced), (0, 0));
    // The path holds 173 segments (100 Mbit/s for 20 ms).
    assert!(
        ssthresh_on < 400 && ssthresh_paced < 800,
        "slow start ended near the path's size: ssthresh {ssthresh_on}, paced {ssthresh_paced}"
    );
    assert!(
        ssthresh_off > 1_000_000,
        "no exit without HyStart++: {ssthresh_off}"
    );
    assert!(
        rtt_on < Duration::from_millis(50)
            && rtt_paced < Duration::from_millis(100)
            && rtt_off > rtt_on * 10,
        "largest smoothed RTT: {rtt_on:?} with HyStart, {rtt_paced:?} paced, {rtt_off:?} without"
    );
}

/// One flight of 10 segments over a 20 ms RTT path with the first transmissions of the
/// segments in `lost` dropped: how long until B has it all, and A's counters.
fn tail_loss(lost: &[u32]) -> (Duration, ustack_tcp::TcpStats, ustack_tcp::TcpInfo) {
    let (took, st, i, _) = tail_loss_then(lost, 0);
    (took, st, i)
}

/// [`tail_loss`], then `more` segments of new data: also the sender's statistics and
/// connection after them.
#[allow(clippy::type_complexity)]
fn tail_loss_then(
    lost: &[u32],
    more: usize,
) -> (
    Duration,
    ustack_tcp::TcpStats,
    ustack_tcp::TcpInfo,
    (ustack_tcp::TcpStats, ustack_tcp::TcpInfo),
) {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, lost);
    let data = pattern(10 * mss as usize, 12);
    let t0 = n.now;
    let got = n.transfer(c, s, &data, Duration::from_secs(10));
    assert!(got == data);
    let took = n.now - t0;
    // Let the last ACKs reach the sender.
    n.run_for(Duration::from_millis(50));
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    if more > 0 {
        let data = pattern(more * mss as usize, 15);
        let got = n.transfer(c, s, &data, Duration::from_secs(10));
        assert!(got == data);
        n.run_for(Duration::from_millis(50));
    }
    (took, st, i, (n.a.stats(), n.a.info(c).unwrap()))
}

/// RFC 8985 section 7: the last segment of a flight is lost. With one segment left in
/// flight the probe waits for the peer's possible delayed ACK, so it goes out when the RTO
/// would have; but as a probe: its ACK covers everything, and no RTO collapses cwnd to one
/// segment. That ACK reaches exactly the probe's end, which a late ACK of the original
/// would too: only an ACK beyond it without a D-SACK (RFC 8985 7.4.2, Linux
/// `tcp_process_tlp_ack`), here of the next data, shows the loss, and cwnd is then
/// reduced once (to ssthresh).
#[test]
fn a_lost_last_segment_is_repaired_by_a_loss_probe_without_an_rto() {
    let (took, st, _, (after, i)) = tail_loss_then(&[9], 4);
    assert!(took < Duration::from_millis(300), "took {took:?}");
    assert_eq!(
        (
            st.tcp_loss_probes,
            st.tcp_loss_probe_recovery,
            st.tcp_timeouts
        ),
        (1, 0, 0)
    );
    assert_eq!(st.retrans_segs, 1);
    assert_eq!(
        (
            after.tcp_loss_probes,
            after.tcp_loss_probe_recovery,
            after.tcp_timeouts
        ),
        (1, 1, 0)
    );
    assert_eq!(after.retrans_segs, 1);
    assert!(i.snd_ssthresh < 1000, "cwnd reduced once: {i:?}");
    assert!(i.snd_cwnd >= i.snd_ssthresh, "{i:?}");
}

/// The last two segments are lost: with two in flight the probe goes two round trips
/// after the last ACK (well before the 200 ms RTO), is SACKed above the other hole, and
/// fast recovery resends that one.
#[test]
fn a_lost_tail_of_two_is_repaired_two_round_trips_later() {
    let (took, st, _) = tail_loss(&[8, 9]);
    assert!(took < Duration::from_millis(150), "took {took:?}");
    assert_eq!(
        (st.tcp_loss_probes, st.tcp_sack_recovery, st.tcp_timeouts),
        (1, 1, 0)
    );
    assert_eq!(st.retrans_segs, 2);
}

/// The last three segments are lost: the probe (the last one again) is SACKed above the
/// hole, which marks the rest lost and starts fast recovery; still no RTO.
#[test]
fn a_probe_sacked_above_lost_segments_starts_fast_recovery() {
    let (took, st, _) = tail_loss(&[7, 8, 9]);
    assert!(took < Duration::from_millis(150), "took {took:?}");
    assert_eq!(
        (st.tcp_loss_probes, st.tcp_sack_recovery, st.tcp_timeouts),
        (1, 1, 0)
    );
    assert_eq!(st.retrans_segs, 3);
}

/// Nothing was lost, only the ACKs were slow: the probe's duplicate comes back as a
/// D-SACK, and cwnd is left alone. B's plain ACKs of the flight come `ack_delay` late
/// (its D-SACK, an ACK with a SACK block, does not): 100 ms, so the D-SACK comes first;
/// 30 ms, so the late ACK covering the whole flight comes between the probe and its
/// D-SACK (as when a peer's delayed ACK or its next request crosses the probe). An ACK
/// up to the probe's end alone proves nothing either way (Linux `tcp_process_tlp_ack`
/// waits for more than that, or a D-SACK, or a duplicate ACK).
fn probe_whose_original_arrived(ack_delay: Duration) {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    n.set_rule(Dir::BtoA, move |seg, _| {
        if seg.len == 0 && seg.opts.sack_count == 0 {
            Action::Delay(ack_delay)
        } else {
            Action::Pass
        }
    });
    let data = pattern(10 * mss as usize, 13);
    let got = n.transfer(c, s, &data, Duration::from_secs(10));
    assert!(got == data);
    n.run_for(Duration::from_millis(300));
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert_eq!(st.tcp_loss_probes, 1, "{ack_delay:?}");
    assert!(st.tcp_dsack_recv >= 1, "{ack_delay:?}");
    assert_eq!(
        (st.tcp_loss_probe_recovery, st.tcp_timeouts),
        (0, 0),
        "{ack_delay:?}"
    );
    assert!(
        i.snd_ssthresh > 1_000_000,
        "no reduction ({ack_delay:?}): {i:?}"
    );
}

#[test]
fn a_probe_whose_original_arrived_changes_nothing() {
    probe_whose_original_arrived(Duration::from_millis(100));
}

#[test]
fn a_probe_whose_original_arrived_changes_nothing_when_the_ack_crosses_it() {
    probe_whose_original_arrived(Duration::from_millis(30));
}

/// RFC 8985 section 7.3: when data waits unsent (the congestion window held it back) and
/// the peer's window admits it, the probe is a new segment rather than a copy of the last
/// one. Here the whole first flight of 10 is lost: the probe (segment 10, new data) reaches
/// B, whose SACK of it starts fast recovery for the ten before it; no RTO, and the probe
/// itself is not a retransmission.
#[test]
fn a_probe_sends_new_data_when_some_waits() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &(0..10).collect::<Vec<_>>());
    let data = pattern(20 * mss as usize, 14);
    let t0 = n.now;
    let got = n.transfer(c, s, &data, Duration::from_secs(10));
    assert!(got == data);
    n.run_for(Duration::from_millis(50));
    let st = n.a.stats();
    assert_eq!((st.tcp_loss_probes, st.tcp_timeouts), (1, 0), "{st:?}");
    assert_eq!(st.tcp_sack_recovery, 1, "{st:?}");
    // The first data segment after the lost flight is the probe: new data at offset 10 MSS,
    // sent about two round trips after the flight.
    let sends: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0)
        .collect();
    assert!(sends[..10]
        .iter()
        .enumerate()
        .all(|(k, x)| x.seq_rel_is(k as u32 * mss)));
    let probe = sends[10];
    assert!(probe.seq_rel_is(10 * mss), "probe: {probe:?}");
    let waited = probe.at - sends[9].at;
    assert!(
        waited >= Duration::from_millis(30) && waited < Duration::from_millis(200),
        "probe after {waited:?}"
    );
    // Only the ten lost segments were sent twice.
    assert_eq!(st.retrans_segs, 10, "{st:?}");
    assert!(n.now - t0 < Duration::from_millis(300));
}

/// One data segment in 50 from A to B arrives 1 ms late: at 100 Mbit/s, after the next
/// eight.
fn delay_one_data_segment_in_50(n: &mut Net) {
    let mut k = 0u32;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len == 0 {
            return Action::Pass;
        }
        k += 1;
        if k.is_multiple_of(50) {
            Action::Delay(Duration::from_millis(1))
        } else {
            Action::Pass
        }
    });
}

/// A path that delays one data segment in 50 by 1 ms (about eight later segments overtake
/// it) but loses nothing. The first reordering may cost a spurious fast retransmission;
/// from then on the threshold has grown past the reordering (Linux `tp->reordering`) and
/// the sender retransmits nothing more.
#[test]
fn reordering_raises_the_fast_retransmit_threshold() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    let (c, s) = n.connect_pair(80);
    delay_one_data_segment_in_50(&mut n);
    let data = pattern(4 << 20, 15);
    let got = n.transfer(c, s, &data, Duration::from_secs(60));
    assert!(got == data);
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert!(st.tcp_sack_reorder >= 10, "{st:?}");
    assert!(i.reordering >= 6, "{i:?}");
    assert!(st.retrans_segs <= 3, "retransmissions: {st:?}");
    assert_eq!(st.tcp_lost_retransmit, 0, "{st:?}");
    assert_eq!(st.tcp_timeouts, 0);
}

/// A fast retransmission that is lost too is found lost once the peer SACKs data sent
/// after it (Linux `TCPLostRetransmit`) and is sent a third time within the recovery,
/// instead of waiting for the retransmission timeout (which would restart from a
/// one-segment window).
#[test]
fn a_lost_fast_retransmission_is_resent_without_an_rto() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    // Segment 20 is lost twice: its first transmission and its fast retransmission.
    drop_tx(&mut n, &[(20 * mss, 2)]);
    let data = pattern(600 * mss as usize, 21);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert_eq!(st.tcp_lost_retransmit, 1, "{st:?}");
    assert_eq!((i.rto_events, st.tcp_timeouts), (0, 0), "{i:?} {st:?}");
    assert_eq!(st.tcp_sack_recovery, 1, "{st:?}");
    assert_eq!(st.retrans_segs, 2, "{st:?}");
    let lost_seq = n
        .log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.seq_rel_is(20 * mss))
        .unwrap()
        .seq;
    let sends: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0 && x.seq == lost_seq)
        .map(|x| x.at)
        .collect();
    assert_eq!(sends.len(), 3, "{sends:?}");
    // The third copy follows the second by about a round trip (20 ms), far below the
    // retransmission timeout (at least 200 ms).
    let gap = sends[2] - sends[1];
    assert!(gap < Duration::from_millis(100), "{gap:?}");
}

/// RACK (RFC 8985 section 6): with nothing new to send, two holes are retransmitted
/// together and the first retransmission is lost again. No data was sent after it, so
/// only time tells: the second retransmission, sent after it, is SACKed a round trip
/// later, and the first, unacknowledged by then, is lost and goes a third time at once,
/// not at the retransmission timeout.
#[test]
fn rack_finds_a_lost_retransmission_by_time() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    // The initial window, all of it: segments 2 and 5 lost, and 2 lost again once.
    drop_tx(&mut n, &[(2 * mss, 2), (5 * mss, 1)]);
    let data = pattern(10 * mss as usize, 22);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert_eq!((i.rto_events, st.tcp_timeouts), (0, 0), "{i:?} {st:?}");
    assert_eq!(st.tcp_lost_retransmit, 1, "{st:?}");
    assert_eq!(st.retrans_segs, 3, "{st:?}");
    let isn = n.first_data_seq(Dir::AtoB);
    let sends: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0 && x.seq == isn.wrapping_add(2 * mss))
        .map(|x| x.at)
        .collect();
    assert_eq!(sends.len(), 3, "{sends:?}");
    // A round trip (20 ms) after the second copy, well before an RTO (200 ms or more).
    let gap = sends[2] - sends[1];
    assert!(gap <= Duration::from_millis(30), "{gap:?}");
}

/// RACK's reordering timer: once the path has been seen to reorder, the SACK threshold
/// grows and a loss followed by fewer segments than that (the rest of a short message)
/// no longer starts fast retransmit, and no tail loss probe runs with SACK blocks in. RACK
/// waits a round trip plus a quarter of the minimum RTT after the lost segment was sent,
/// then resends it: no retransmission timeout.
#[test]
fn rack_repairs_a_loss_the_learnt_threshold_would_not_see() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    // One data segment in 50 arrives after the next eight: reordering is learnt.
    delay_one_data_segment_in_50(&mut n);
    let first = pattern(1 << 20, 23);
    assert!(n.transfer(c, s, &first, Duration::from_secs(60)) == first);
    let learnt = n.a.info(c).unwrap().reordering;
    assert!(learnt >= 6, "{learnt}");
    let before = n.a.stats();
    // A six-segment message whose second segment is lost: four segments follow it.
    drop_tx(&mut n, &[(first.len() as u32 + mss, 1)]);
    n.log_take();
    let msg = pattern(6 * mss as usize, 24);
    let t0 = n.now;
    assert!(n.transfer(c, s, &msg, Duration::from_secs(30)) == msg);
    let took = n.now - t0;
    let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert_eq!(st.tcp_timeouts, before.tcp_timeouts, "{st:?}");
    assert_eq!(st.retrans_segs, before.retrans_segs + 1, "{st:?}");
    assert_eq!(st.tcp_sack_recovery, before.tcp_sack_recovery + 1, "{st:?}");
    // Two round trips and the reordering window, far below an RTO (200 ms or more).
    assert!(took < Duration::from_millis(100), "{took:?} {i:?}");
}

/// Losses on a path that neither reorders nor duplicates: every retransmission repairs a
/// real loss, so the receiver never reports a duplicate (D-SACK) and no window reduction
/// is undone. Holes are found one after another while new data goes out, and the
/// recovery that repaired the first ones ends while a later hole's retransmission is
/// still on its way: the next recovery must not send that segment again.
#[test]
fn spread_losses_are_each_retransmitted_once() {
    for stride in [23u32, 29, 31, 37, 41, 43, 47, 53] {
        let mut n = Net::new();
        n.delay = Duration::from_millis(10);
        n.rate = Some(12_500_000);
        let (c, s) = n.connect_pair(80);
        let mss = n.a.info(c).unwrap().snd_mss;
        let which: Vec<u32> = (1..40).map(|k| k * stride).filter(|&k| k < 1500).collect();
        drop_first_tx(&mut n, mss, &which);
        let data = pattern(1600 * mss as usize, 30 + stride as u64);
        let got = n.transfer(c, s, &data, Duration::from_secs(60));
        assert!(got == data);
        let (st, i) = (n.a.stats(), n.a.info(c).unwrap());
        assert_eq!(
            (i.rto_events, st.tcp_timeouts),
            (0, 0),
            "stride {stride}: {st:?}"
        );
        assert_eq!(st.tcp_dsack_recv, 0, "stride {stride}: {st:?}");
        assert_eq!(st.tcp_full_undo, 0, "stride {stride}: {st:?}");
        assert_eq!(
            st.retrans_segs,
            which.len() as u64,
            "stride {stride}: {st:?}"
        );
    }
}

/// A recovery that begins while a retransmission of the one before is still on its way
/// (the first recovery ended, a hole above its recovery point was already resent) dates
/// itself by that retransmission: the ACK for it echoes a timestamp older than the new
/// recovery, which is not proof that an original arrived, so nothing is undone. Three
/// real losses: three retransmissions, two window reductions kept.
#[test]
fn a_retransmission_from_the_previous_recovery_does_not_undo_the_next() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(10);
    n.rate = Some(12_500_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[30, 43, 74]);
    let data = pattern(400 * mss as usize, 3);
    let got = n.transfer(c, s, &data, Duration::from_secs(60));
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(st.tcp_sack_recovery, 2, "{st:?}");
    assert_eq!(st.retrans_segs, 3, "{st:?}");
    assert_eq!((st.tcp_full_undo, st.tcp_dsack_recv), (0, 0), "{st:?}");
}

/// A path that holds back three data packets in a hundred by 10 ms (a tenth of the
/// 100 ms RTT) and loses none. Counting the segments SACKed above a held-back one cannot
/// tell it from a loss (at 200 Mbit/s about 170 overtake it, and the holes add up);
/// RACK's time-based window can, once the first spurious retransmission has shown that
/// the path reorders (RFC 8985; Linux starts recovery only on RACK's word when SACK is
/// on). So some 600 held-back segments cost at most a couple of retransmissions and
/// recoveries (counting, as before, cost seven).
#[test]
fn reordering_without_loss_starts_no_recoveries() {
    for seed in [1u64, 2, 3] {
        let mut n = Net::new();
        n.keep_log = false;
        n.delay = Duration::from_millis(50);
        n.rate = Some(25_000_000);
        n.rng = Rng::new(seed);
        let (c, s) = n.connect_pair(80);
        n.faults[0] = Faults {
            reorder: 0.03,
            reorder_delay: Duration::from_millis(10),
            ..Faults::default()
        };
        let mss = n.a.info(c).unwrap().snd_mss;
        let data = pattern(20000 * mss as usize, 50 + seed);
        let got = n.transfer(c, s, &data, Duration::from_secs(60));
        assert!(got == data);
        let st = n.a.stats();
        assert!(st.tcp_sack_reorder >= 100, "seed {seed}: {st:?}");
        assert!(st.retrans_segs <= 2, "seed {seed}: {st:?}");
        assert!(st.tcp_sack_recovery <= 2, "seed {seed}: {st:?}");
        assert_eq!(st.tcp_timeouts, 0, "seed {seed}: {st:?}");
    }
}

/// The largest number of A->B data segments that left at one instant (after the initial
/// window), for 1 MiB in slow start over a 20 ms RTT path without a rate limit, where a
/// window of ACKs arrives together and any burst the sender makes shows as segments sent
/// at one instant; and the sender's info at the end.
fn largest_burst_in_slow_start(pacing: bool) -> (usize, ustack_tcp::TcpInfo) {
    let cfg = TcpConfig {
        pacing,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(cfg.clone(), cfg);
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let data = pattern(1 << 20, 12);
    let got = n.transfer(c, s, &data, Duration::from_secs(60));
    assert!(got == data);
    let mut per_instant: BTreeMap<std::time::Instant, usize> = BTreeMap::new();
    // The initial window goes out at once either way (no RTT sample yet): skip it.
    for x in n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0)
        .skip(10)
    {
        *per_instant.entry(x.at).or_default() += 1;
    }
    let largest = per_instant.values().copied().max().unwrap_or(0);
    (largest, n.a.info(c).unwrap())
}

/// Pacing (`TcpConfig::pacing`, Linux internal pacing): on, what a window of ACKs
/// releases leaves spread over time, at most ten segments or 1 ms of the pacing rate
/// ahead of its time (plus what the 1 ms timer tick lets through), the rate being twice
/// cwnd / SRTT in slow start; off, the sender answers a window of ACKs with a burst of
/// two windows. The pacing rate shows in `TcpInfo`.
#[test]
fn pacing_spreads_what_the_acks_release() {
    let (burst_off, info_off) = largest_burst_in_slow_start(false);
    let (burst_on, info) = largest_burst_in_slow_start(true);
    assert_eq!(info_off.pacing_rate, 0);
    let (cwnd, mss) = (f64::from(info.snd_cwnd), f64::from(info.snd_mss));
    let expect = 2.0 * cwnd * mss / info.rtt.as_secs_f64();
    let rate = info.pacing_rate as f64;
    assert!(
        (rate / expect - 1.0).abs() < 0.05,
        "pacing rate {rate} B/s, expected {expect} ({info:?})"
    );
    // The largest rate of the transfer is its last; 1 ms of it, or ten segments, twice.
    let bound = 2.0 * (rate * 0.001 / mss).max(10.0);
    assert!(
        (burst_on as f64) <= bound,
        "paced bursts of {burst_on} segments, bound {bound}"
    );
    assert!(
        burst_off >= 4 * burst_on,
        "unpaced bursts of {burst_off}, paced {burst_on}"
    );
}

/// `SO_MAX_PACING_RATE` on one socket of a stack that does not pace: that socket's data
/// leaves at no more than the rate (2 MiB at 1 MB/s over a path that would carry it in a
/// fraction of a second takes about two seconds), `TcpInfo::pacing_rate` reports the
/// cap, and unsetting it restores the unpaced burst. Zero is refused.
#[test]
fn max_pacing_rate_caps_one_socket() {
    let transfer = |cap: Option<u64>| {
        let mut n = Net::new();
        n.keep_log = false;
        n.delay = Duration::from_millis(5);
        let (c, s) = n.connect_pair(80);
        n.a.set_option(c, SockOpt::MaxPacingRate(cap)).unwrap();
        let opt =
            n.a.get_option(c, ustack_tcp::SockOptName::MaxPacingRate)
                .unwrap();
        assert_eq!(opt, SockOpt::MaxPacingRate(cap));
        let data = pattern(2 << 20, 60);
        let t0 = n.now;
        assert!(n.transfer(c, s, &data, Duration::from_secs(60)) == data);
        (n.now - t0, n.a.info(c).unwrap())
    };
    let (free, info) = transfer(None);
    assert_eq!(info.pacing_rate, 0);
    assert!(free < Duration::from_millis(300), "{free:?}");
    let (capped, info) = transfer(Some(1_000_000));
    assert_eq!(info.pacing_rate, 1_000_000, "{info:?}");
    // 2,097,152 bytes at 1 MB/s, less the ten segments that may leave ahead.
    assert!(
        capped >= Duration::from_millis(2_050) && capped <= Duration::from_millis(2_300),
        "{capped:?}"
    );

    let mut n = Net::new();
    let (c, _) = n.connect_pair(80);
    assert_eq!(
        n.a.set_option(c, SockOpt::MaxPacingRate(Some(0))),
        Err(ustack_tcp::TcpError::InvalidInput)
    );
}
