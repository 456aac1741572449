//! ACK processing and loss recovery (Linux: `tcp_ack`, `tcp_sacktag_write_queue`,
//! `tcp_fastretrans_alert`, `tcp_enter_recovery`, `tcp_enter_loss`, `tcp_try_undo_*`).
//!
//! RFC 5681 fast retransmit / fast recovery, RFC 6582 NewReno partial ACKs without SACK,
//! RFC 6675 scoreboard-based recovery with SACK, RFC 2883 D-SACK, Eifel-style undo with
//! timestamps (RFC 3522).

use std::time::{Duration, Instant};

use crate::ctx::Shared;
use crate::output::{clear_rtx, rearm_rtx, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::tcb::{CaState, Tcb};
use crate::wire::TcpRepr;

/// Initial fast-retransmit threshold in segments (RFC 5681 DupThresh; Linux
/// `tcp_reordering`).
pub(crate) const REORDERING_INIT: u32 = 3;
/// The largest reordering degree learnt (Linux `tcp_max_reordering`).
const REORDERING_MAX: u32 = 300;

/// What an ACK did, for the caller's state machine.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckOutcome {
    /// Bytes of sequence space newly acknowledged.
    pub(crate) acked: u32,
    /// The ACK was a duplicate (RFC 5681 definition).
    pub(crate) dup: bool,
}

// --- congestion control hooks (Linux `tcp_congestion_ops` call sites)

fn cc_ssthresh(tcb: &mut Tcb) -> u32 {
    let mss = tcb.mss.max(1);
    tcb.ccs.in_flight = tcb.snd_nxt.since(tcb.snd_una).div_ceil(mss);
    tcb.ccs.prior_cwnd = tcb.ccs.cwnd;
    tcb.cc.ssthresh(&tcb.ccs).max(2)
}

/// Linux `tcp_cong_avoid`; `prior_in_flight` decides `tcp_is_cwnd_limited`.
fn cc_cong_avoid(tcb: &mut Tcb, sh: &Shared, acked_segs: u32, prior_in_flight: u32, now: Instant) {
    let mss = tcb.mss.max(1);
    tcb.ccs.mss = mss;
    tcb.ccs.in_flight = prior_in_flight.div_ceil(mss);
    let cwnd_limited = if tcb.ccs.in_slow_start() {
        prior_in_flight.saturating_mul(2) >= tcb.cwnd_bytes()
    } else {
        prior_in_flight + mss >= tcb.cwnd_bytes()
    };
    tcb.ccs.app_limited = !cwnd_limited;
    tcb.ccs.snd_una = tcb.snd_una.0;
    tcb.ccs.snd_nxt = tcb.snd_nxt.0;
    tcb.ccs.paced = crate::output::paced_conn(tcb, sh);
    if tcb.ccs.in_slow_start() {
        // For HyStart's ACK-train test only (the pacing code computes its own).
        tcb.ccs.pacing_rate = crate::output::pacing_rate(tcb).unwrap_or(0);
    }
    tcb.cc.cong_avoid(&mut tcb.ccs, acked_segs, now);
}

fn cc_set_state(tcb: &mut Tcb, st: CaState) {
    tcb.ca = st;
    let s = match st {
        CaState::Open => crate::cc::CaState::Open,
        CaState::Disorder => crate::cc::CaState::Disorder,
        CaState::Recovery => crate::cc::CaState::Recovery,
        CaState::Loss => crate::cc::CaState::Loss,
    };
    tcb.cc.set_state(&mut tcb.ccs, s);
}

/// Linux `tcp_ack_update_window` (RFC 9293 3.10.7.4 step 5, SND.WL1/WL2 rule).
/// Returns true when the window changed. Called before `snd_una` moves.
///
/// An ACK that advances `snd_una` always carries the window (Linux
/// `tcp_may_update_window`): the window counts from the segment's ACK, and the send
/// limit is `snd_una + snd_wnd`, so moving `snd_una` while keeping a window measured from
/// an older ACK would stretch the limit past the receiver's right edge. A retransmission
/// from the peer (an old SEG.SEQ, so the WL1 rule alone rejects it) with a fresh ACK did
/// exactly that, and the data sent past the edge was dropped by a receiver whose buffer
/// had filled.
pub(crate) fn update_window(tcb: &mut Tcb, seg: &TcpRepr) -> bool {
    if seg.ack.gt(tcb.snd_una)
        || tcb.snd_wl1.lt(seg.seq)
        || (tcb.snd_wl1 == seg.seq && tcb.snd_wl2.le(seg.ack))
    {
        let wnd = (seg.window as u32) << tcb.snd_wscale;
        let changed = wnd != tcb.snd_wnd;
        tcb.snd_wnd = wnd;
        tcb.snd_wl1 = seg.seq;
        tcb.snd_wl2 = seg.ack;
        tcb.max_sndwnd = tcb.max_sndwnd.max(wnd);
        changed
    } else {
        false
    }
}

/// Disjoint ranges the SACK scoreboard holds at most. A block that would add one more is
/// ignored (the data it reports is resent if need be): the scoreboard is walked on every
/// ACK, and a peer SACKing every other byte would otherwise grow it with the window.
pub(crate) const MAX_SACK_RANGES: usize = 1024;

/// Inserts `[l, r)` into the SACK scoreboard in place (the ranges it overlaps or touches
/// merge with it); returns the bytes newly covered, or `None` when the block would take
/// the scoreboard past [`MAX_SACK_RANGES`] (nothing changes). The parts of the block not
/// covered before are appended to `newly`.
fn sack_insert(
    tcb: &mut Tcb,
    l: SeqNum,
    r: SeqNum,
    newly: &mut Vec<(SeqNum, SeqNum)>,
) -> Option<u32> {
    // Ranges `i..j` overlap or touch the block; those before and after stay.
    let i = tcb.sacked.partition_point(|&(_, b)| b.lt(l));
    let j = tcb.sacked.partition_point(|&(a, _)| a.le(r));
    let merging = tcb.sacked.get(i..j).unwrap_or_default();
    if tcb.sacked.len() - merging.len() + 1 > MAX_SACK_RANGES {
        return None;
    }
    let (mut lo, mut hi) = (l, r);
    let mut cur = l;
    let mut covered = 0;
    for &(a, b) in merging {
        if a.gt(cur) && cur.lt(r) {
            newly.push((cur, a.min(r)));
        }
        cur = cur.max(b);
        covered += b.since(a);
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if cur.lt(r) {
        newly.push((cur, r));
    }
    tcb.sacked.splice(i..j, [(lo, hi)]);
    let added = hi.since(lo).saturating_sub(covered);
    tcb.sacked_bytes += added;
    Some(added)
}

/// Drops scoreboard entries below `snd_una`.
fn sack_trim(tcb: &mut Tcb) {
    let una = tcb.snd_una;
    tcb.sacked.retain(|(_, r)| r.gt(una));
    if let Some(first) = tcb.sacked.first_mut() {
        if first.0.lt(una) {
            first.0 = una;
        }
    }
    tcb.sacked_bytes = tcb.sacked.iter().map(|(a, b)| b.since(*a)).sum();
}

/// Linux `tcp_sacktag_write_queue`: validates the SACK blocks, counts D-SACK (RFC 2883
/// section 4), and updates the scoreboard. Returns the newly SACKed bytes and whether the
/// segment carried a D-SACK.
fn process_sack(tcb: &mut Tcb, sh: &mut Shared, seg: &TcpRepr, now: Instant) -> SackOutcome {
    let mut res = SackOutcome::default();
    if !tcb.sack_ok {
        return res;
    }
    let blocks = seg.options.sack_blocks();
    // The newly covered parts of one block (the stack's scratch, reused).
    let mut newly = std::mem::take(&mut sh.sack_newly);
    for (i, &(l, r)) in blocks.iter().enumerate() {
        if r.le(l) {
            sh.stats.tcp_sack_discard += 1;
            continue;
        }
        let dsack = i == 0
            && (l.lt(seg.ack) || blocks.get(1).is_some_and(|&(l2, r2)| l.ge(l2) && r.le(r2)));
        if dsack {
            sh.stats.tcp_dsack_recv += 1;
            res.dsack = true;
            crate::rack::on_dsack(tcb);
            continue;
        }
        if l.lt(tcb.snd_una) || r.gt(tcb.snd_nxt) {
            sh.stats.tcp_sack_discard += 1;
            continue;
        }
        let low = first_unsacked(tcb, l);
        newly.clear();
        let Some(added) = sack_insert(tcb, l, r, &mut newly) else {
            sh.stats.tcp_sack_discard += 1;
            continue;
        };
        for &part in &newly {
            crate::rack::on_sacked(tcb, part, (l, r), now);
        }
        if added > 0 && low.lt(r) {
            res.lowest_new = Some(res.lowest_new.map_or(low, |x| x.min(low)));
        }
        res.new += added;
    }
    newly.clear();
    sh.sack_newly = newly;
    res
}

/// What the SACK blocks of one ACK changed.
#[derive(Default)]
struct SackOutcome {
    /// Bytes newly SACKed.
    new: u32,
    /// A D-SACK block came with it.
    dsack: bool,
    /// The lowest sequence number newly SACKed.
    lowest_new: Option<SeqNum>,
}

/// The first sequence number at or above `seq` that the scoreboard does not cover.
pub(crate) fn first_unsacked(tcb: &Tcb, seq: SeqNum) -> SeqNum {
    let mut s = seq;
    for &(a, b) in &tcb.sacked {
        if a.le(s) && s.lt(b) {
            s = b;
        }
    }
    s
}

/// Data that was never retransmitted arrived `metric` bytes below the highest SACKed
/// byte: the path reorders at least that far, so RACK keeps its reordering window from
/// now on, and without SACK fast retransmit waits for that many duplicate ACKs (Linux
/// `tcp_check_sack_reordering`; RFC 6675 allows DupThresh to adapt).
fn note_reordering(tcb: &mut Tcb, sh: &mut Shared, metric: u32) {
    sh.stats.tcp_sack_reorder += 1;
    tcb.rack.reord = true;
    let mss = tcb.mss.max(1);
    if metric > tcb.reordering.saturating_mul(mss) {
        tcb.reordering = metric.div_ceil(mss).min(REORDERING_MAX);
    }
}

/// The sender's half of ECN (RFC 3168 section 6.1.2; Linux `tcp_enter_cwr`): an ECN-Echo
/// means a router queue marked one of our segments instead of dropping it. The window is
/// reduced as for a loss (ssthresh from the congestion control; cwnd follows the pipe
/// down to it by PRR until what was sent before the reduction is acknowledged), at most once
/// per window of data (until an ACK covers something sent after the reduction: one that
/// acknowledges exactly up to it was sent before our CWR reached the receiver, which
/// echoes ECE until then; Linux holds `TCP_CA_CWR` the same way), nothing is
/// retransmitted, and the next new data carries CWR. During Recovery or Loss the
/// window is being reduced already.
fn ecn_echo(tcb: &mut Tcb, sh: &mut Shared, ack: SeqNum) {
    if matches!(tcb.ca, CaState::Recovery | CaState::Loss)
        || tcb.ecn_cwr_high.is_some_and(|h| ack.le(h))
    {
        return;
    }
    let ss = cc_ssthresh(tcb);
    tcb.ccs.ssthresh = ss;
    // cwnd follows the pipe down to ssthresh over the next round trip (PRR, run for this
    // ACK by `tcp_ack`), as Linux's CWR state does, instead of halving at once and then
    // sending nothing until half the flight has drained.
    tcb.prr_delivered = 0;
    tcb.prr_out = 0;
    tcb.cwr_until = Some(tcb.snd_nxt);
    ecn_reduced(tcb);
    sh.stats.tcp_ecn_reductions += 1;
}

/// RTT sample from the timestamp echo or Karn timing (RFC 6298 section 3, RFC 7323 4).
fn rtt_sample(tcb: &mut Tcb, sh: &mut Shared, now: Instant, seg: &TcpRepr) {
    let mut sample = None;
    if tcb.ts_ok {
        if let Some((_, ecr)) = seg.options.timestamp {
            if ecr != 0 {
                let nowts = sh.ts_now(now).wrapping_add(tcb.ts_offset);
                let d = nowts.wrapping_sub(ecr);
                if (d as i32) >= 0 {
                    sample = Some(Duration::from_millis(d as u64).max(Duration::from_micros(100)));
                }
            }
        }
    } else if let Some((end, t)) = tcb.rtt_seq {
        if seg.ack.ge(end) {
            tcb.rtt_seq = None;
            if tcb.retrans_stamp.is_none() {
                sample = Some(now.saturating_duration_since(t));
            }
        }
    }
    if let Some(s) = sample {
        tcb.rtt.sample(s);
        tcb.cc.on_rtt_sample(&mut tcb.ccs, s, now);
    }
}

/// Send buffers up to this capacity are freed when they drain; larger ones are kept
/// (outside memory pressure) for the next write.
const SND_BUF_KEEP: usize = 64 * 1024;

/// Linux `tcp_ack` for synchronized states. The caller has checked that
/// `snd_una <= SEG.ACK <= snd_nxt`.
pub(crate) fn tcp_ack(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload_len: usize,
    out: &mut Vec<TcpSegmentOut>,
) -> AckOutcome {
    let mut res = AckOutcome::default();
    let prior_in_flight = tcb.in_flight();
    let prior_una = tcb.snd_una;
    let prior_sacked = tcb.sacked_bytes + tcb.reno_sacked;
    let wnd_changed = update_window(tcb, seg);
    if tcb.ecn_ok && seg.flags.ece() {
        ecn_echo(tcb, sh, seg.ack);
    }
    // Reordering can only be told from loss while nothing has been sent twice.
    let prior_fack = tcb.sacked.last().map(|&(_, r)| r);
    let clean = matches!(tcb.ca, CaState::Open | CaState::Disorder)
        && tcb.retrans_stamp.is_none()
        && !(tcb.tlp_high_seq.is_some() && tcb.tlp_retrans);
    let sack = process_sack(tcb, sh, seg, now);
    let (new_sacked, got_dsack) = (sack.new, sack.dsack);
    if let (true, Some(fack)) = (clean, prior_fack) {
        // Below the highest SACKed byte, newly SACKed data or newly acknowledged data
        // (the bytes at SND.UNA are never SACKed) arrived after data sent later.
        let mut low = sack.lowest_new.filter(|l| l.lt(fack));
        if seg.ack.gt(prior_una) && prior_una.lt(fack) {
            low = Some(prior_una);
        }
        if let Some(low) = low {
            note_reordering(tcb, sh, fack.since(low));
        }
    }
    let acked = seg.ack.since(tcb.snd_una);
    tcb.probes_out = 0;
    // Progress, or a pure duplicate: the peer got our segments, so its next hop is
    // reachable (Linux `tcp_ack`: `FLAG_FORWARD_PROGRESS` or not `FLAG_NOT_DUP` ->
    // `sk_dst_confirm`).
    if acked > 0 || new_sacked > 0 || (payload_len == 0 && !wnd_changed) {
        tcb.dst_confirm = true;
    }

    if acked > 0 && seg.ack.gt(tcb.snd_una) {
        res.acked = acked;
        // Remove acknowledged data from the send buffer (SYN and FIN are not in it).
        let buf_start = tcb.buf_seq();
        let data_end = seg.ack.min(tcb.write_seq());
        if data_end.gt(buf_start) {
            let n = (data_end.since(buf_start) as usize).min(tcb.snd_buf.len());
            tcb.snd_buf.consume(n);
            tcb.snd_buf_seq += n as u32;
            if tcb.snd_buf.is_empty()
                && tcb.snd_buf.capacity() > crate::tcb::SMALL_BUF_KEEP
                && (tcb.snd_buf.capacity() <= SND_BUF_KEEP || sh.under_pressure())
            {
                // Everything sent is acknowledged: give the memory back (idle
                // connections hold little). A large ring buffer (a bulk sender's) is
                // kept: freeing and regrowing it whenever the pipe drains costs
                // reallocation copies and fresh page faults on every refill; so is a tiny
                // one (request/response traffic), which would otherwise be allocated and
                // freed for every message.
                tcb.snd_buf = crate::ring::ByteRing::new();
            }
            tcb.bytes_acked += n as u64;
        }
        tcb.snd_una = seg.ack;
        if tcb.sack_ok {
            crate::rack::on_cum_ack(tcb, seg.ack, now);
        }
        if tcb.rtx_next.lt(tcb.snd_una) {
            tcb.rtx_next = tcb.snd_una;
        }
        sack_trim(tcb);
        rtt_sample(tcb, sh, now, seg);
        tcb.retransmits = 0;
        tcb.rtt.reset_backoff();
        // How far below the highest SACKed byte the hole was that this ACK closed.
        let hole_depth = prior_fack
            .filter(|f| f.gt(prior_una))
            .map(|f| f.since(prior_una));
        try_undo(tcb, sh, seg, hole_depth);
        let acked_segs = acked.div_ceil(tcb.mss.max(1));
        match tcb.ca {
            CaState::Recovery => {
                if tcb.snd_una.ge(tcb.high_seq) {
                    // Full ACK: leave recovery (RFC 6582 step 3; Linux tcp_end_cwnd_reduction).
                    tcb.ccs.cwnd = tcb
                        .ccs
                        .ssthresh
                        .max(2)
                        .min(tcb.ccs.cwnd.max(tcb.ccs.ssthresh));
                    // Data above the recovery point already found lost is a loss of a
                    // later round: a new recovery starts at once, keeping the marks (and
                    // not resending what was resent; Linux `tcp_time_to_recover`: "the
                    // loss is proven" while `lost_out` is not zero).
                    let lost_end = tcb.lost_end;
                    let lost_again =
                        tcb.sack_ok && (lost_end.gt(tcb.snd_una) || !tcb.rtx_lost.is_empty());
                    let rtx_lost = std::mem::take(&mut tcb.rtx_lost);
                    exit_recovery(tcb);
                    if lost_again {
                        enter_recovery(tcb, sh, now);
                        tcb.lost_end = lost_end.max(tcb.snd_una);
                        tcb.rtx_lost = rtx_lost;
                    }
                } else if !tcb.sack_ok {
                    // NewReno partial ACK: retransmit the next hole (RFC 6582 step 4).
                    let segs = acked_segs;
                    let remove = segs.saturating_sub(1).saturating_mul(tcb.mss);
                    tcb.reno_sacked = tcb.reno_sacked.saturating_sub(remove);
                    tcb.rtx_next = tcb.snd_una;
                    tcb.lost_end = tcb.lost_end.max(tcb.snd_una + tcb.mss);
                }
            }
            CaState::Loss => {
                if tcb.snd_una.ge(tcb.high_seq) {
                    exit_recovery(tcb);
                }
                cc_cong_avoid(tcb, sh, acked_segs, prior_in_flight, now);
            }
            CaState::Open | CaState::Disorder => {
                tcb.dupacks = 0;
                tcb.reno_sacked = 0;
                if tcb.sacked.is_empty() && tcb.ca == CaState::Disorder {
                    cc_set_state(tcb, CaState::Open);
                }
                if tcb.ca == CaState::Open && !tcb.retrans_out() {
                    tcb.retrans_stamp = None;
                }
                match tcb.cwr_until {
                    // The ECE's reduction is complete (Linux `tcp_end_cwnd_reduction`).
                    Some(high) if tcb.snd_una.ge(high) => {
                        tcb.ccs.cwnd = tcb.ccs.ssthresh.max(2);
                        tcb.cwr_until = None;
                    }
                    // Still reducing: no growth (Linux `tcp_may_raise_cwnd`).
                    Some(_) => {}
                    None => cc_cong_avoid(tcb, sh, acked_segs, prior_in_flight, now),
                }
            }
        }
        if tcb.snd_una == tcb.snd_nxt {
            clear_rtx(tcb, sh);
        } else {
            rearm_rtx(tcb, sh, now);
            crate::output::schedule_tlp(tcb, sh, now);
        }
    } else if seg.ack == tcb.snd_una && tcb.snd_una != tcb.snd_nxt {
        let pure = payload_len == 0 && !seg.flags.syn() && !seg.flags.fin() && !wnd_changed;
        if pure || new_sacked > 0 {
            res.dup = true;
            tcb.dupacks = tcb.dupacks.saturating_add(1);
            match tcb.ca {
                CaState::Recovery => {
                    if !tcb.sack_ok {
                        // Linux tcp_add_reno_sack: each dupack means a segment left.
                        let flight = tcb.snd_nxt.since(tcb.snd_una);
                        tcb.reno_sacked =
                            (tcb.reno_sacked + tcb.mss).min(flight.saturating_sub(tcb.mss));
                    }
                }
                CaState::Loss => {}
                CaState::Open | CaState::Disorder => {
                    if tcb.ca == CaState::Open {
                        cc_set_state(tcb, CaState::Disorder);
                    }
                    // With SACK, RACK alone finds losses outside a tail loss probe
                    // (below, after this match; Linux with `tcp_recovery` RACK): a count
                    // of segments SACKed above a hole cannot tell a segment held back a
                    // few milliseconds from a lost one, so counting would start needless
                    // recoveries wherever the path reorders. Without SACK the duplicate
                    // ACKs are all there is (RFC 5681 DupThresh, the learnt reordering).
                    let count_trigger = !tcb.sack_ok && tcb.dupacks >= tcb.reordering;
                    // A tail loss probe was SACKed above a hole: what lies below it was
                    // sent at least a PTO (two round trips) before the probe and is not
                    // acknowledged, so it is lost (the conclusion RACK draws, RFC 8985
                    // section 7.4; Linux reaches it through RACK).
                    let tlp_trigger = tcb.tlp_high_seq.is_some() && new_sacked > 0;
                    if count_trigger || tlp_trigger {
                        enter_recovery(tcb, sh, now);
                    }
                }
            }
        }
    }
    if tcb.sack_ok && !tcb.sacked.is_empty() {
        rack_detect(tcb, sh, now);
    }
    // Linux: not `FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DATA_SACKED`.
    let pure_dup = tcb.snd_una == prior_una
        && new_sacked == 0
        && payload_len == 0
        && !seg.flags.syn()
        && !seg.flags.fin()
        && !wnd_changed;
    tlp_ack(tcb, sh, seg, got_dsack, pure_dup);
    if tcb.ca == CaState::Recovery || tcb.cwr_until.is_some() {
        // Bytes that left the network with this ACK: newly acknowledged plus newly
        // SACKed (or counted as SACKed by the NewReno emulation), less what was SACKed
        // before and is acknowledged now (Linux `newly_acked_sacked`).
        let sacked = tcb.sacked_bytes + tcb.reno_sacked;
        let delivered = (u64::from(tcb.snd_una.since(prior_una)) + u64::from(sacked))
            .saturating_sub(u64::from(prior_sacked));
        prr_reduce(tcb, delivered.min(u64::from(u32::MAX)) as u32);
    }
    let _ = out;
    res
}

/// RACK loss detection (RFC 8985 section 6.2 step 5) after an ACK or when its timer
/// fires: what it finds lost is marked (fast recovery starts if it had not), and the timer
/// waits for the segments whose time has not run out yet.
pub(crate) fn rack_detect(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    let lost = crate::rack::detect(tcb, now);
    if lost.any() {
        if matches!(tcb.ca, CaState::Open | CaState::Disorder) {
            enter_recovery(tcb, sh, now);
        }
        crate::rack::mark(tcb, sh, &lost);
    }
    if let Some(wait) = lost.wait {
        crate::rack::arm_reo_timer(tcb, sh, now, wait);
    }
}

/// The end of a tail-loss-probe episode (RFC 8985 section 7.4; Linux
/// `tcp_process_tlp_ack`). Nothing before an ACK reaches the probe's end. A probe of new
/// data, or a retransmission answered by a D-SACK (the original arrived) or by a pure
/// duplicate ACK, ends it with no loss. An ACK beyond the probe's end without either
/// means the probe repaired a loss, so cwnd is reduced once (ssthresh from the congestion
/// control, cwnd = ssthresh). An ACK that reaches exactly the probe's end proves nothing
/// (the original's own late ACK looks the same as the probe's): the episode waits for
/// what follows. Recovery or an RTO takes over the episode (they reduce cwnd themselves).
fn tlp_ack(tcb: &mut Tcb, sh: &mut Shared, seg: &TcpRepr, got_dsack: bool, pure_dup: bool) {
    let Some(end) = tcb.tlp_high_seq else {
        return;
    };
    if matches!(tcb.ca, CaState::Recovery | CaState::Loss) {
        tcb.tlp_high_seq = None;
        return;
    }
    if seg.ack.lt(end) {
        return;
    }
    if !tcb.tlp_retrans || got_dsack {
        tcb.tlp_high_seq = None;
    } else if seg.ack.gt(end) {
        let ss = cc_ssthresh(tcb);
        tcb.ccs.ssthresh = ss;
        tcb.ccs.cwnd = ss;
        sh.stats.tcp_loss_probe_recovery += 1;
        tcb.tlp_high_seq = None;
    } else if pure_dup {
        tcb.tlp_high_seq = None;
    }
}

/// Proportional Rate Reduction (RFC 6937, with the slow-start reduction bound; Linux
/// `tcp_cwnd_reduction`): during Recovery each ACK lets out about `ssthresh / prior_cwnd`
/// segments per segment it reports delivered while the pipe is above ssthresh, and grows
/// the pipe back towards ssthresh (no faster than slow start) once it is below. The first
/// ACK of Recovery always lets the fast retransmission out (RFC 6675 step 4.3), however
/// full the pipe is (even when it reported nothing new delivered). `delivered` is in
/// bytes; a later ACK that delivered nothing changes nothing.
fn prr_reduce(tcb: &mut Tcb, delivered: u32) {
    if delivered == 0 && tcb.prr_delivered > 0 {
        return;
    }
    let mss = tcb.mss.max(1);
    let delivered = delivered.div_ceil(mss);
    tcb.prr_delivered = tcb.prr_delivered.saturating_add(delivered);
    let pipe = tcb.in_flight().div_ceil(mss);
    let ssthresh = tcb.ccs.ssthresh;
    let sndcnt = if pipe > ssthresh {
        let prior = u64::from(tcb.ccs.prior_cwnd.max(1));
        let allowed = (u64::from(ssthresh) * u64::from(tcb.prr_delivered)).div_ceil(prior);
        allowed.saturating_sub(u64::from(tcb.prr_out)) as u32
    } else {
        let limit = tcb
            .prr_delivered
            .saturating_sub(tcb.prr_out)
            .max(delivered)
            .saturating_add(1);
        (ssthresh - pipe).min(limit)
    };
    let sndcnt = if tcb.prr_out == 0 {
        sndcnt.max(1)
    } else {
        sndcnt
    };
    tcb.ccs.cwnd = pipe.saturating_add(sndcnt).max(1);
}

fn exit_recovery(tcb: &mut Tcb) {
    tcb.rtx_lost.clear();
    crate::rack::on_recovery_end(tcb);
    tcb.dupacks = 0;
    tcb.reno_sacked = 0;
    tcb.undo = None;
    tcb.lost_end = tcb.snd_una;
    // Holes found lost beyond the recovery point may have been retransmitted already:
    // those retransmissions are still on their way and a following recovery must not
    // send them again (Linux keeps each segment's retransmitted mark across episodes).
    tcb.rtx_next = tcb.rtx_next.max(tcb.snd_una);
    if !tcb.retrans_out() {
        tcb.retrans_stamp = None;
    }
    cc_set_state(tcb, CaState::Open);
}

/// Linux `tcp_enter_recovery` + fast retransmit (RFC 5681 3.2 steps 2-3, RFC 6675 5).
pub(crate) fn enter_recovery(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    if tcb.sack_ok {
        sh.stats.tcp_sack_recovery += 1;
    } else {
        sh.stats.tcp_reno_recovery += 1;
    }
    tcb.recoveries += 1;
    // The first retransmission of the episode dates it for undo (Eifel): one of an
    // earlier episode still on its way counts, since an ACK for it echoes its timestamp,
    // which is older than anything sent now (Linux keeps `retrans_stamp` while any
    // retransmission is out).
    let first_rtx = match tcb.retrans_stamp {
        Some(t) if tcb.retrans_out() => t,
        _ => now,
    };
    let ts = sh.ts_now(first_rtx).wrapping_add(tcb.ts_offset);
    tcb.undo = Some((tcb.ccs.cwnd, tcb.ccs.ssthresh, ts));
    // cwnd follows the pipe from here (`prr_reduce`, run for this ACK by `tcp_ack`). A
    // reduction for an ECE still under way goes on: one reduction per window (Linux
    // `tcp_enter_recovery` outside `tcp_in_cwnd_reduction` only).
    if tcb.cwr_until.take().is_none() {
        let ss = cc_ssthresh(tcb);
        tcb.ccs.ssthresh = ss;
        tcb.prr_delivered = 0;
        tcb.prr_out = 0;
    }
    tcb.tlp_high_seq = None;
    if tcb.rtx_armed && tcb.rtx_kind == crate::tcb::RtxKind::Tlp {
        // Recovery retransmits now; the timer behind it is the RTO again.
        rearm_rtx(tcb, sh, now);
    }
    tcb.high_seq = tcb.snd_nxt;
    // Not below what an earlier episode retransmitted and is still on its way.
    tcb.rtx_next = tcb.rtx_next.max(tcb.snd_una);
    tcb.rtx_lost.clear();
    tcb.lost_end = tcb.snd_una + tcb.mss;
    ecn_reduced(tcb);
    if !tcb.sack_ok {
        let flight = tcb.snd_nxt.since(tcb.snd_una);
        tcb.reno_sacked = tcb
            .dupacks
            .saturating_mul(tcb.mss)
            .min(flight.saturating_sub(tcb.mss));
    }
    cc_set_state(tcb, CaState::Recovery);
}

/// Any window reduction answers the peer's ECN-Echo: the next new data says CWR, and no
/// ECE reduces the window again for data already sent (Linux `tcp_init_cwnd_reduction`
/// queues CWR).
fn ecn_reduced(tcb: &mut Tcb) {
    if tcb.ecn_ok {
        tcb.ecn_queue_cwr = true;
        tcb.ecn_cwr_high = Some(tcb.snd_nxt);
    }
}

/// Linux `tcp_enter_loss`: after an RTO every outstanding segment not SACKed is lost;
/// cwnd restarts at one segment (RFC 5681 section 3.1, RFC 6298 5.5).
pub(crate) fn enter_loss(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    sh.stats.tcp_timeouts += 1;
    // The timeout came while enough was SACKed that the usual threshold would have
    // started fast recovery: the learnt reordering held it back, so forget it (Linux
    // `tcp_enter_loss`).
    if matches!(tcb.ca, CaState::Open | CaState::Disorder)
        && tcb.sacked_bytes >= REORDERING_INIT.saturating_mul(tcb.mss)
    {
        tcb.reordering = tcb.reordering.min(REORDERING_INIT);
    }
    tcb.rto_events += 1;
    if tcb.undo.is_none() || tcb.ca != CaState::Loss {
        let ts = sh.ts_now(now).wrapping_add(tcb.ts_offset);
        let (cw, ss) = match (tcb.ca, tcb.undo) {
            (CaState::Recovery, Some((c, s, _))) => (c, s),
            _ => (tcb.ccs.cwnd, tcb.ccs.ssthresh),
        };
        tcb.undo = Some((cw, ss, ts));
    }
    // Not again for a window already being reduced (Linux `tcp_enter_loss` from CWR).
    let reducing = tcb.cwr_until.take().is_some();
    if tcb.ca != CaState::Loss && !reducing {
        let ss = cc_ssthresh(tcb);
        tcb.ccs.ssthresh = ss;
    }
    tcb.ccs.cwnd = 1;
    ecn_reduced(tcb);
    tcb.tlp_high_seq = None;
    tcb.high_seq = tcb.snd_nxt;
    tcb.rtx_next = tcb.snd_una;
    tcb.lost_end = tcb.snd_nxt;
    tcb.rtx_lost.clear();
    tcb.dupacks = 0;
    tcb.reno_sacked = 0;
    // RFC 2018 section 8: after a retransmission timeout the SACK marks are forgotten,
    // since the receiver may have reneged (pruned its out-of-order queue under memory
    // pressure); SACKed data is resent unless new SACK blocks cover it again.
    tcb.sacked.clear();
    tcb.sacked_bytes = 0;
    tcb.rtt_seq = None;
    cc_set_state(tcb, CaState::Loss);
}

/// Linux `tcp_try_undo_recovery` / `tcp_try_undo_loss` with timestamps (Eifel, RFC 3522):
/// an ACK of new data echoing a timestamp older than our first retransmission proves the
/// original arrived, so the window reduction is undone.
fn try_undo(tcb: &mut Tcb, sh: &mut Shared, seg: &TcpRepr, hole_depth: Option<u32>) {
    if !tcb.ts_ok || !matches!(tcb.ca, CaState::Recovery | CaState::Loss) {
        return;
    }
    let (Some((cwnd, ssthresh, ts_retrans)), Some((_, ecr))) = (tcb.undo, seg.options.timestamp)
    else {
        return;
    };
    if ecr == 0 || (ecr.wrapping_sub(ts_retrans) as i32) >= 0 {
        return;
    }
    let undone = tcb.cc.undo_cwnd(&tcb.ccs);
    tcb.ccs.cwnd = tcb.ccs.cwnd.max(undone).max(cwnd);
    tcb.ccs.ssthresh = tcb.ccs.ssthresh.max(ssthresh);
    if tcb.ca == CaState::Loss {
        sh.stats.tcp_loss_undo += 1;
        sh.stats.tcp_spurious_rtos += 1;
    } else {
        sh.stats.tcp_full_undo += 1;
        // The hole was filled by the original, not the fast retransmission: the
        // segments SACKed above it had overtaken it (Linux `tcp_try_undo_partial`).
        if let Some(depth) = hole_depth {
            note_reordering(tcb, sh, depth);
        }
    }
    exit_recovery(tcb);
}
