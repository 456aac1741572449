//! RACK: time-based loss detection (RFC 8985 section 6; Linux `tcp_recovery.c`).
//!
//! Every transmission in flight is logged with its time. When the peer acknowledges or
//! SACKs a segment, RACK remembers the most recently *sent* segment known delivered
//! (`xmit`, `end`) and its round-trip time. Any segment sent before that one and still
//! neither acknowledged nor SACKed is lost once one RTT plus a reordering window has
//! passed since it was sent; until then a timer waits for the rest of that time. With
//! SACK it is the connection's loss detection (besides the tail loss probe and the RTO),
//! as in Linux: it tells data held back on the way from data lost, which a count of
//! segments SACKed above a hole cannot, finds a loss followed by few segments, and finds
//! lost retransmissions whatever was sent after them, without waiting for the RTO.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ctx::{Shared, TimerKind};
use crate::seq::SeqNum;
use crate::tcb::{unsacked_from, CaState, RtxKind, Tcb};

/// Transmissions logged per connection at most; past this a transmission joins the last
/// record (taking its time), which can only make RACK wait longer for those bytes.
const MAX_RECORDS: usize = 8192;

/// A drained log larger than this is freed.
const KEEP_RECORDS: usize = 64;

/// Recoveries after which a widened reordering window goes back to its base (RFC 8985
/// `RACK.reo_wnd_persist`).
const REO_WND_PERSIST: u32 = 16;

/// The reordering window's multiplier stays below this (in quarters of the minimum RTT;
/// the window never exceeds SRTT anyway).
const REO_WND_MULT_MAX: u32 = 16;

/// One transmission of `[previous record's end, end)` (the first record starts at
/// [`Rack::base`]), with its time and its place in the order of transmissions (times of
/// segments sent together can be equal; the order cannot).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentRec {
    pub(crate) end: SeqNum,
    pub(crate) at: Instant,
    pub(crate) order: u32,
    pub(crate) retrans: bool,
}

/// RACK's per-connection state (RFC 8985 section 6.1 names in the comments).
#[derive(Debug)]
pub(crate) struct Rack {
    /// Transmissions not yet cumulatively acknowledged, in sequence order.
    log: VecDeque<SentRec>,
    /// Where the first record starts.
    base: SeqNum,
    /// Transmissions counted so far (the next record's `order`).
    sent: u32,
    /// The most recently sent segment known delivered (`RACK.xmit_ts`, with its order
    /// standing in for `RACK.end_seq`).
    xmit: Option<(Instant, u32)>,
    /// Its round-trip time (`RACK.rtt`).
    rtt: Duration,
    /// The smallest RTT measured from the log's times (`RACK.min_RTT`), transmissions
    /// sent once only: to the microsecond, where timestamp echoes count milliseconds.
    min_rtt: Option<Duration>,
    /// Reordering has been seen on the path (`RACK.reord`).
    pub(crate) reord: bool,
    /// Reordering window multiplier (`RACK.reo_wnd_mult`), raised by D-SACKs at most once
    /// per round trip (`RACK.dsack_round`), reset after [`REO_WND_PERSIST`] recoveries.
    reo_mult: u32,
    dsack_round: Option<SeqNum>,
    reo_persist: u32,
}

impl Rack {
    pub(crate) fn new(iss: SeqNum) -> Self {
        Rack {
            log: VecDeque::new(),
            base: iss,
            sent: 0,
            xmit: None,
            rtt: Duration::ZERO,
            min_rtt: None,
            reord: false,
            reo_mult: 1,
            dsack_round: None,
            reo_persist: 0,
        }
    }
}

/// Transmission `a` went out after transmission `b` (RFC 8985 `RACK_sent_after`, by
/// order of transmission).
fn sent_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Rack {
    fn next_order(&mut self) -> u32 {
        self.sent = self.sent.wrapping_add(1);
        self.sent
    }
}

/// Logs new data (or the FIN) `[seq, end)` sent at `now`.
pub(crate) fn on_send(tcb: &mut Tcb, seq: SeqNum, end: SeqNum, now: Instant) {
    let r = &mut tcb.rack;
    let expected = r.log.back().map_or(r.base, |x| x.end);
    if r.log.is_empty() || seq != expected {
        // Nothing in flight (or a gap the log cannot describe): start afresh here.
        r.log.clear();
        r.base = seq;
    }
    let order = r.next_order();
    if r.log.len() >= MAX_RECORDS {
        if let Some(last) = r.log.back_mut() {
            last.end = end;
            last.at = now;
            last.order = order;
            return;
        }
    }
    r.log.push_back(SentRec {
        end,
        at: now,
        order,
        retrans: false,
    });
}

/// Logs the retransmission of `[seq, end)` at `now`: the records it covers take its time
/// (split where it starts or ends inside one).
pub(crate) fn on_retransmit(tcb: &mut Tcb, seq: SeqNum, end: SeqNum, now: Instant) {
    let r = &mut tcb.rack;
    let Some(last) = r.log.back() else {
        return;
    };
    if end.gt(last.end) || seq.lt(r.base) {
        return;
    }
    let order = r.next_order();
    let mut i = r.log.partition_point(|x| x.end.le(seq));
    let start_of = |log: &VecDeque<SentRec>, base: SeqNum, i: usize| {
        i.checked_sub(1)
            .and_then(|p| log.get(p))
            .map_or(base, |x| x.end)
    };
    // Split the first record at `seq`.
    if let Some(&rec) = r.log.get(i) {
        if start_of(&r.log, r.base, i).lt(seq) && r.log.len() < MAX_RECORDS {
            r.log.insert(i, SentRec { end: seq, ..rec });
            i += 1;
        }
    }
    while let Some(&rec) = r.log.get(i) {
        if rec.end.gt(end) {
            // Split the last record at `end`: its tail keeps its own time.
            if start_of(&r.log, r.base, i).lt(end) && r.log.len() < MAX_RECORDS {
                r.log.insert(
                    i,
                    SentRec {
                        end,
                        at: now,
                        order,
                        retrans: true,
                    },
                );
            }
            break;
        }
        if let Some(rec) = r.log.get_mut(i) {
            rec.at = now;
            rec.order = order;
            rec.retrans = true;
        }
        i += 1;
    }
}

/// RFC 8985 step 2 (`RACK_update`) for a delivered transmission.
fn advance(r: &mut Rack, rec: SentRec, now: Instant) {
    let rtt = now.saturating_duration_since(rec.at);
    if rec.retrans {
        // A retransmission acknowledged sooner than the path's minimum RTT was the
        // original arriving: its time says nothing.
        if r.min_rtt.is_some_and(|m| rtt < m) {
            return;
        }
    } else {
        r.min_rtt = Some(r.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }
    if r.xmit.is_none_or(|(_, o)| sent_after(rec.order, o)) {
        r.xmit = Some((rec.at, rec.order));
        r.rtt = rtt;
    }
}

/// The cumulative ACK moved SND.UNA to `una`: drops the acknowledged records, each
/// delivered.
pub(crate) fn on_cum_ack(tcb: &mut Tcb, una: SeqNum, now: Instant) {
    let r = &mut tcb.rack;
    while let Some(&rec) = r.log.front() {
        if rec.end.gt(una) {
            break;
        }
        r.log.pop_front();
        r.base = rec.end;
        advance(r, rec, now);
    }
    if r.log.is_empty() && r.log.capacity() > KEEP_RECORDS {
        // Drained after a burst: give the memory back (idle connections hold little).
        r.log = VecDeque::new();
    }
}

/// `[l, r)` was newly SACKed, inside the SACK block `[bl, br)`: the records wholly in the
/// block that overlap it were delivered.
pub(crate) fn on_sacked(
    tcb: &mut Tcb,
    (l, r): (SeqNum, SeqNum),
    (bl, br): (SeqNum, SeqNum),
    now: Instant,
) {
    let rk = &mut tcb.rack;
    let mut i = rk.log.partition_point(|x| x.end.le(l));
    while let Some(&rec) = rk.log.get(i) {
        let start = i
            .checked_sub(1)
            .and_then(|p| rk.log.get(p))
            .map_or(rk.base, |x| x.end);
        if start.ge(r) {
            break;
        }
        if start.ge(bl) && rec.end.le(br) {
            advance(rk, rec, now);
        }
        i += 1;
    }
}

/// A D-SACK arrived: a retransmission was spurious, so reordering is likely; widen the
/// reordering window once per round trip (RFC 8985 step 4).
pub(crate) fn on_dsack(tcb: &mut Tcb) {
    let r = &mut tcb.rack;
    r.reord = true;
    if r.dsack_round.is_none_or(|end| tcb.snd_una.ge(end)) {
        r.dsack_round = Some(tcb.snd_nxt);
        r.reo_mult = (r.reo_mult + 1).min(REO_WND_MULT_MAX);
        r.reo_persist = REO_WND_PERSIST;
    }
}

/// A recovery ended: after [`REO_WND_PERSIST`] of them without a D-SACK the reordering
/// window returns to its base.
pub(crate) fn on_recovery_end(tcb: &mut Tcb) {
    let r = &mut tcb.rack;
    if r.reo_persist > 0 {
        r.reo_persist -= 1;
        if r.reo_persist == 0 {
            r.reo_mult = 1;
        }
    }
}

/// The reordering window (RFC 8985 `RACK_update_reo_wnd`): none while no reordering has
/// been seen and the connection is recovering or the SACK threshold is met (losses are
/// then the likely cause); otherwise a quarter of the minimum RTT per multiplier step,
/// at most SRTT.
fn reo_wnd(tcb: &Tcb) -> Duration {
    if !tcb.rack.reord
        && (matches!(tcb.ca, CaState::Recovery | CaState::Loss)
            || tcb.sacked_bytes >= tcb.reordering.saturating_mul(tcb.mss.max(1)))
    {
        return Duration::ZERO;
    }
    let Some(min_rtt) = tcb.rack.min_rtt else {
        return Duration::ZERO;
    };
    let w = min_rtt / 4 * tcb.rack.reo_mult;
    tcb.rtt.srtt().map_or(w, |s| w.min(s))
}

/// What [`detect`] found.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Data never resent is lost up to here.
    pub(crate) lost_end: Option<SeqNum>,
    /// Resent ranges (or ranges below the retransmission cursor) found lost.
    pub(crate) resent: Vec<(SeqNum, SeqNum)>,
    /// When the next segment's time runs out, if one is still waiting.
    pub(crate) wait: Option<Duration>,
}

impl Lost {
    pub(crate) fn any(&self) -> bool {
        self.lost_end.is_some() || !self.resent.is_empty()
    }
}

/// RFC 8985 step 5 (`RACK_detect_loss`): every transmission sent before the most recently
/// sent delivered one, neither acknowledged, SACKed nor already marked lost, is lost once
/// RACK.rtt + reo_wnd has passed since it was sent.
pub(crate) fn detect(tcb: &Tcb, now: Instant) -> Lost {
    let mut res = Lost::default();
    let r = &tcb.rack;
    let Some((_, rx)) = r.xmit else {
        return res;
    };
    if tcb.sacked.is_empty() {
        // Without SACK blocks every record still logged was sent after everything the
        // cumulative ACK covers: nothing to find.
        return res;
    }
    let wait = r.rtt + reo_wnd(tcb);
    let cursor = tcb.rtx_next.max(tcb.snd_una);
    let (mut j, mut k) = (0, 0);
    let mut start = r.base;
    for rec in &r.log {
        let (s, e) = (start, rec.end);
        start = e;
        if e.le(tcb.snd_una) {
            continue;
        }
        if !sent_after(rx, rec.order) {
            // Sent at or after the RACK segment. Past the cursor, records never resent
            // were sent in sequence order: all later ones were sent later still.
            if !rec.retrans && s.ge(cursor) {
                break;
            }
            continue;
        }
        if unsacked_from(&tcb.sacked, &mut j, s.max(tcb.snd_una), e) == 0 {
            continue;
        }
        let below_cursor = rec.retrans || s.lt(cursor);
        if !below_cursor && e.le(tcb.lost_end) {
            continue;
        }
        if below_cursor {
            // Already found lost and waiting to be resent? (Both lists are sorted.)
            while tcb.rtx_lost.get(k).is_some_and(|&(_, r)| r.le(s)) {
                k += 1;
            }
            if tcb.rtx_lost.get(k).is_some_and(|&(l, _)| l.lt(e)) {
                continue;
            }
        }
        let deadline = rec.at + wait;
        if deadline <= now {
            if below_cursor {
                res.resent.push((s.max(tcb.snd_una), e));
            } else {
                res.lost_end = Some(e);
            }
        } else {
            let left = deadline - now;
            res.wait = Some(res.wait.map_or(left, |w| w.max(left)));
        }
    }
    res
}

/// Marks what [`detect`] found lost: data never resent up to `lost_end`, resent ranges
/// into the lost-retransmission list (counted as `TCPLostRetransmit`).
pub(crate) fn mark(tcb: &mut Tcb, sh: &mut Shared, lost: &Lost) {
    if let Some(e) = lost.lost_end {
        if e.gt(tcb.lost_end) {
            tcb.lost_end = e;
        }
    }
    if lost.resent.is_empty() {
        return;
    }
    tcb.rtx_lost.extend_from_slice(&lost.resent);
    tcb.rtx_lost.sort_unstable_by(|a, b| a.0.seq_cmp(b.0));
    sh.stats.tcp_lost_retransmit += lost.resent.len() as u64;
}

/// Arms the reordering timer (Linux `ICSK_TIME_REO_TIMEOUT`) to run [`detect`] again
/// after `wait`, unless the retransmission timeout comes first.
pub(crate) fn arm_reo_timer(tcb: &mut Tcb, sh: &mut Shared, now: Instant, wait: Duration) {
    let at = now + wait;
    if tcb.rtx_armed && tcb.rtx_kind == RtxKind::Retrans && tcb.rtx_deadline <= at {
        return;
    }
    tcb.rtx_kind = RtxKind::Reo;
    tcb.rtx_armed = true;
    tcb.rtx_deadline = at;
    sh.set_timer_lazy(tcb.id, TimerKind::Rtx, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcb() -> Tcb {
        Tcb::for_test(SeqNum(1000))
    }

    /// RFC 8985 step 4: each round trip with a D-SACK widens the reordering window by a
    /// quarter of the minimum RTT (once per round, however many D-SACKs it brings), up to
    /// SRTT; sixteen recoveries without one bring it back to its base.
    #[test]
    fn dsack_rounds_widen_the_reordering_window_and_recoveries_narrow_it() {
        let ms = Duration::from_millis;
        let mut t = tcb();
        t.rack.min_rtt = Some(ms(40));
        t.snd_una = SeqNum(1000);
        t.snd_nxt = SeqNum(9000);
        assert_eq!(reo_wnd(&t), ms(10), "base: min_rtt / 4");

        on_dsack(&mut t);
        assert!(t.rack.reord);
        assert_eq!(reo_wnd(&t), ms(20));
        // More D-SACKs in the same round trip (snd_una has not passed 9000) change nothing.
        on_dsack(&mut t);
        t.snd_una = SeqNum(8000);
        on_dsack(&mut t);
        assert_eq!(reo_wnd(&t), ms(20));
        // The next round.
        t.snd_una = SeqNum(9000);
        t.snd_nxt = SeqNum(20_000);
        on_dsack(&mut t);
        assert_eq!(reo_wnd(&t), ms(30));

        // Never beyond SRTT.
        t.rtt.sample(ms(25));
        assert_eq!(reo_wnd(&t), ms(25));

        // Reordering seen: the window stays open while recovering.
        t.ca = CaState::Recovery;
        assert_eq!(reo_wnd(&t), ms(25));
        t.ca = CaState::Open;

        for i in 0..REO_WND_PERSIST {
            assert_eq!(t.rack.reo_mult, 3, "still widened after {i} recoveries");
            on_recovery_end(&mut t);
        }
        assert_eq!(
            reo_wnd(&t),
            ms(10),
            "back to the base after the persist count"
        );

        // Bounded multiplier: many rounds of D-SACKs.
        let mut t = tcb();
        t.rack.min_rtt = Some(ms(40));
        for round in 0..40u32 {
            t.snd_una = SeqNum(1000 + round * 1000);
            t.snd_nxt = SeqNum(2000 + round * 1000);
            on_dsack(&mut t);
        }
        assert_eq!(t.rack.reo_mult, REO_WND_MULT_MAX);
        assert_eq!(reo_wnd(&t), ms(160));
    }

    /// Without reordering seen, no window while recovering or once the SACK threshold is
    /// met: losses are then the likely cause.
    #[test]
    fn no_reordering_window_in_recovery_before_reordering_is_seen() {
        let mut t = tcb();
        t.rack.min_rtt = Some(Duration::from_millis(40));
        t.ca = CaState::Recovery;
        assert_eq!(reo_wnd(&t), Duration::ZERO);
        t.ca = CaState::Open;
        t.sacked_bytes = t.reordering * t.mss;
        assert_eq!(reo_wnd(&t), Duration::ZERO);
        t.sacked_bytes = 0;
        assert_eq!(reo_wnd(&t), Duration::from_millis(10));
    }
}
