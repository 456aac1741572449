//! Segment processing for a connection (Linux: `tcp_rcv_state_process`,
//! `tcp_rcv_established` with header prediction, `tcp_rcv_synsent_state_process`,
//! `tcp_data_queue`, `tcp_ofo_queue`, `tcp_fin`, `__tcp_ack_snd_check`).
//!
//! RFC 9293 section 3.10.7.3 (SYN-SENT) and 3.10.7.4 (other states), RFC 5961 checks,
//! RFC 7323 PAWS.

use std::time::{Duration, Instant};

use crate::conn::{
    apply_syn_options, check_write_space, enter_time_wait, set_state, sndbuf_expand, tcp_done,
    tcp_reset,
};
use crate::ctx::{Shared, TimerKind};
use crate::output::{cancel_rtx, send_ack, send_raw, send_syn, write_xmit, TcpSegmentOut};
use crate::recovery::tcp_ack;
use crate::seq::SeqNum;
use crate::state::TcpState;
use crate::tcb::{CaState, Tcb};
use crate::wire::{TcpFlags, TcpRepr};

/// What the stack must do with the socket after a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing special.
    Keep,
    /// The connection reached CLOSED: unhash it (and free it if orphaned).
    Closed,
    /// A SYN that may reuse this TIME_WAIT pair (RFC 6191 / Linux `TCP_TW_SYN`): kill the
    /// TIME_WAIT socket and give the SYN to the listener.
    TwSyn,
    /// The segment's checksum is wrong: it was discarded without any effect.
    BadChecksum,
}

/// True when a segment whose pseudo-header and TCP header sum to `hdr_sum` and whose
/// payload is `payload` has a correct checksum (or no check is owed: `None`).
pub(crate) fn checksum_ok(hdr_sum: Option<u64>, payload: &[u8]) -> bool {
    match hdr_sum {
        None => true,
        Some(acc) => {
            ustack_ipv4::checksum::fold(ustack_ipv4::checksum::sum(payload, acc)) == 0xffff
        }
    }
}

/// What header prediction did with a segment.
enum Fast {
    /// Processed completely.
    Done,
    /// Not a fast-path segment: the slow path takes it (checksum not yet verified).
    Slow,
    /// Checksum wrong: discarded, nothing changed.
    BadChecksum,
}

/// PAWS (RFC 7323 section 5) drops a segment whose TSval is more than this many ticks
/// behind `ts_recent` (Linux `TCP_PAWS_WINDOW`).
const PAWS_WINDOW: i32 = 1;
/// PAWS is not applied against a `ts_recent` older than 24 days (RFC 7323 section 5.5).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// Entry for a segment matched to a full connection (Linux `tcp_v4_do_rcv`).
///
/// `hdr_sum` is `Some(sum of the pseudo-header and the TCP header)` when the checksum is
/// still to be verified: header prediction verifies it while copying the payload into
/// the receive buffer, every other path before it looks at the segment. `ce`: the IP
/// header carried the Congestion Experienced mark.
#[allow(clippy::too_many_arguments)]
pub(crate) fn segment_arrives(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    hdr_sum: Option<u64>,
    ce: bool,
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    // A segment marked Congestion Experienced takes the slow path (so does one with ECE
    // or CWR: header prediction wants the flags to be ACK alone).
    if tcb.state == TcpState::Established && !ce {
        match fast_path(tcb, sh, now, seg, payload, hdr_sum, out) {
            Fast::Done => {
                tcb.segs_in += 1;
                tcb.sync_mem(sh);
                return Verdict::Keep;
            }
            Fast::BadChecksum => return Verdict::BadChecksum,
            Fast::Slow => {}
        }
    }
    if !checksum_ok(hdr_sum, payload) {
        return Verdict::BadChecksum;
    }
    if tcb.ecn_ok {
        ecn_rcv(tcb, sh, seg, payload.len(), ce);
    }
    tcb.segs_in += 1;
    let v = match tcb.state {
        TcpState::SynSent => synsent(tcb, sh, now, seg, payload, out),
        TcpState::TimeWait => timewait(tcb, sh, now, seg, payload, out),
        TcpState::Closed | TcpState::Listen => Verdict::Keep,
        _ => rcv_state_process(tcb, sh, now, seg, payload, out),
    };
    tcb.sync_mem(sh);
    v
}

/// The receiver's half of ECN (RFC 3168 section 6.1.3; Linux `tcp_ecn_accept_cwr`,
/// `tcp_ecn_check_ce`): CWR from the sender ends the echo; a data segment marked
/// Congestion Experienced starts it (every segment we send carries ECE until CWR comes)
/// and is acknowledged at once.
fn ecn_rcv(tcb: &mut Tcb, sh: &mut Shared, seg: &TcpRepr, len: usize, ce: bool) {
    // Only a segment starting in the receive window speaks for the path now.
    let wnd_end = tcb.rcv_nxt + tcb.rcv_wnd_now().max(1);
    if !seg.seq.in_range(tcb.rcv_nxt, wnd_end) {
        return;
    }
    if seg.flags.cwr() {
        tcb.ecn_demand_cwr = false;
    }
    if ce && len > 0 {
        sh.stats.tcp_ecn_ce_rcvd += 1;
        if !tcb.ecn_demand_cwr {
            tcb.ecn_demand_cwr = true;
            tcb.quickack = tcb.quickack.max(1);
        }
    }
}

/// Linux `tcp_rcv_synsent_state_process` (RFC 9293 3.10.7.3).
fn synsent(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    let f = seg.flags;
    if f.ack() && (seg.ack.le(tcb.iss) || seg.ack.gt(tcb.snd_nxt)) {
        if !f.rst() {
            send_rst(sh, tcb, seg.ack, out);
        }
        return Verdict::Keep;
    }
    if f.rst() {
        if f.ack() {
            tcp_reset(tcb, sh);
            return Verdict::Closed;
        }
        return Verdict::Keep;
    }
    if !f.syn() {
        return Verdict::Keep;
    }
    // RFC 3168 6.1.1: a SYN-ACK with ECE and without CWR accepts the ECN our SYN asked for.
    tcb.ecn_ok = f.ack() && f.ece() && !f.cwr() && sh.cfg.ecn == crate::EcnMode::Request;
    tcb.irs = seg.seq;
    tcb.rcv_nxt = seg.seq + 1;
    tcb.rcv_wup = tcb.rcv_nxt;
    apply_syn_options(tcb, sh, now, seg);
    tcb.last_rcv = now;
    if f.ack() {
        // SYN-ACK: ESTABLISHED.
        tcb.snd_una = seg.ack;
        tcb.snd_wnd = seg.window as u32; // never scaled in a SYN (RFC 7323 2.2)
        tcb.max_sndwnd = tcb.snd_wnd;
        tcb.snd_wl1 = seg.seq;
        tcb.snd_wl2 = seg.ack;
        if tcb.retrans_stamp.is_none() {
            if let Some((_, t)) = tcb.rtt_seq.take() {
                tcb.rtt.sample(now.saturating_duration_since(t));
            }
        }
        tcb.rtt_seq = None;
        tcb.retrans_stamp = None;
        tcb.retransmits = 0;
        tcb.rtt.reset_backoff();
        cancel_rtx(tcb, sh);
        set_state(tcb, sh, TcpState::Established);
        on_established(tcb, sh, now);
        // Linux sends the ACK at once (no TFO / defer-accept on the active side).
        send_ack(tcb, sh, now, out);
        if !payload.is_empty() || f.fin() {
            // Data on a SYN-ACK: process as in ESTABLISHED.
            let mut s2 = *seg;
            s2.seq = seg.seq + 1;
            s2.flags = TcpFlags(seg.flags.0 & !TcpFlags::SYN.0);
            return rcv_state_process(tcb, sh, now, &s2, payload, out);
        }
        write_xmit(tcb, sh, now, out);
        Verdict::Keep
    } else {
        // Simultaneous open: SYN_RECEIVED, answer with SYN-ACK (RFC 9293 3.5 figure 7).
        tcb.snd_wnd = seg.window as u32;
        tcb.snd_wl1 = seg.seq;
        tcb.snd_wl2 = tcb.iss;
        set_state(tcb, sh, TcpState::SynReceived);
        send_syn(tcb, sh, now, false, out);
        Verdict::Keep
    }
}

/// Common work when a connection becomes ESTABLISHED (Linux `tcp_init_transfer`).
pub(crate) fn on_established(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    tcb.quickack = 8;
    tcb.rcvq_time = now;
    sndbuf_expand(tcb, sh);
    if let Some(ka) = tcb.opts.keepalive {
        sh.set_timer(tcb.id, TimerKind::Keepalive, now + ka.idle);
    }
    sh.wake(tcb.id, &mut tcb.evt);
}

/// Linux `tcp_timewait_state_process` (RFC 9293 3.10.7.4 in TIME-WAIT; RFC 6191).
fn timewait(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    // The application still holds this connection, so it keeps its whole TCB; the
    // segment is handled exactly as for a compact TIME-WAIT socket.
    let v = crate::tw::tw_input(
        &crate::tw::TwSock::of(tcb),
        tcb.id,
        sh,
        now,
        seg,
        payload.len(),
        out,
    );
    if v == Verdict::Closed {
        tcp_done(tcb, sh, None);
    }
    v
}

/// Header prediction (Linux `tcp_rcv_established` fast path): an in-order segment with
/// only ACK (and PSH), the expected window, no SACK, nothing out of order. Returns
/// `Slow` to fall back to the slow path. With `hdr_sum` the checksum is still owed: a
/// data segment is verified right after its payload is copied into the receive buffer
/// (the copy is undone if it is wrong), before anything else changes.
fn fast_path(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    hdr_sum: Option<u64>,
    out: &mut Vec<TcpSegmentOut>,
) -> Fast {
    let f = seg.flags.0 & !TcpFlags::PSH.0;
    if f != TcpFlags::ACK.0
        || seg.seq != tcb.rcv_nxt
        || seg.ack.lt(tcb.snd_una)
        || seg.ack.gt(tcb.snd_nxt)
        || ((seg.window as u32) << tcb.snd_wscale) != tcb.snd_wnd
        || seg.options.sack_count != 0
        || !tcb.ooo.is_empty()
        || tcb.ca != CaState::Open
        || tcb.shut_rd
        || tcb.orphan
    {
        return Fast::Slow;
    }
    if tcb.ts_ok {
        match seg.options.timestamp {
            Some((val, _)) if (val.wrapping_sub(tcb.ts_recent) as i32) >= 0 => {}
            _ => return Fast::Slow,
        }
    }
    let len = payload.len();
    if len == 0 {
        if seg.ack == tcb.snd_una && tcb.snd_una != tcb.snd_nxt {
            return Fast::Slow; // a possible dupack: slow path counts it
        }
        if !checksum_ok(hdr_sum, payload) {
            return Fast::BadChecksum;
        }
        store_ts_recent(tcb, seg, now);
        tcb.last_rcv = now;
        tcb.ka_probes = 0;
        sh.stats.tcp_hp_acks += 1;
        tcp_ack(tcb, sh, now, seg, 0, out);
        after_ack(tcb, sh, now, out);
        return Fast::Done;
    }
    if len as u32 > tcb.rcv_wnd_now()
        || tcb.rcv_buf.len() + len > tcb.rcvbuf_cap
        || !sh.rmem_schedule(tcb.rcv_buf.len(), len)
    {
        return Fast::Slow;
    }
    // Copy the payload into the receive queue, verifying its checksum in the same pass;
    // a damaged segment is taken back out and has no other effect.
    let before = tcb.rcv_buf.len();
    match hdr_sum {
        Some(acc) => {
            let total = acc + tcb.rcv_buf.extend_sum(payload);
            if ustack_ipv4::checksum::fold(total) != 0xffff {
                tcb.rcv_buf.truncate(before);
                return Fast::BadChecksum;
            }
        }
        None => tcb.rcv_buf.extend(payload),
    }
    store_ts_recent(tcb, seg, now);
    tcb.last_rcv = now;
    tcb.ka_probes = 0;
    sh.stats.tcp_hp_hits += 1;
    if seg.ack.gt(tcb.snd_una) {
        tcp_ack(tcb, sh, now, seg, len, out);
    }
    tcb.rcv_nxt += len as u32;
    tcb.bytes_received += len as u64;
    tcb.ack_pending = true;
    sh.wake(tcb.id, &mut tcb.evt);
    after_ack(tcb, sh, now, out);
    ack_snd_check(tcb, sh, now, out);
    Fast::Done
}

fn after_ack(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
    sndbuf_expand(tcb, sh);
    write_xmit(tcb, sh, now, out);
    check_write_space(tcb, sh);
}

/// RFC 7323 section 4.3: remember the peer's TSval when the segment covers the left
/// window edge (Linux `tcp_store_ts_recent` with `tcp_replace_ts_recent`).
fn store_ts_recent(tcb: &mut Tcb, seg: &TcpRepr, now: Instant) {
    if let (true, Some((val, _))) = (tcb.ts_ok, seg.options.timestamp) {
        if seg.seq.le(tcb.rcv_wup) && (val.wrapping_sub(tcb.ts_recent) as i32) >= 0 {
            tcb.ts_recent = val;
            tcb.ts_recent_stamp = Some(now);
        }
    }
}

/// Linux `tcp_disordered_ack`: a pure duplicate ACK that PAWS would reject only because
/// ACKs were reordered on the way (its TSval within an RTO of `ts_recent`), which
/// changes neither the acknowledged data nor the window. It is processed: its SACK and
/// D-SACK blocks are what loss detection under reordering needs.
fn disordered_ack(tcb: &Tcb, seg: &TcpRepr, payload: &[u8], tsval: u32) -> bool {
    let f = seg.flags;
    let pure = f.ack() && !f.syn() && !f.fin() && payload.is_empty() && seg.seq == tcb.rcv_nxt;
    let wnd = (seg.window as u32) << tcb.snd_wscale;
    // Linux `tcp_may_update_window`, not `recovery::update_window`'s WL2 rule: under the
    // latter an equal ACK always "updates", so no duplicate ACK would ever be exempt.
    let updates_window = seg.ack.gt(tcb.snd_una)
        || tcb.snd_wl1.lt(seg.seq)
        || (tcb.snd_wl1 == seg.seq && wnd > tcb.snd_wnd);
    let rto_ms = u32::try_from(tcb.rtt.rto().as_millis()).unwrap_or(u32::MAX);
    pure && seg.ack == tcb.snd_una
        && !updates_window
        && (tcb.ts_recent.wrapping_sub(tsval) as i32) <= rto_ms as i32
}

/// Least time between two ACKs that answer out-of-window or PAWS-rejected segments on one
/// connection (Linux `tcp_invalid_ratelimit`, 500 ms): a burst of reordered or replayed
/// segments is answered once, not segment by segment.
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// Sends a duplicate ACK for a rejected segment unless one went out within
/// [`OOW_ACK_INTERVAL`] (Linux `tcp_oow_rate_limited`).
fn oow_ack(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
    if tcb
        .last_oow_ack
        .is_some_and(|t| now.saturating_duration_since(t) < OOW_ACK_INTERVAL)
    {
        return;
    }
    tcb.last_oow_ack = Some(now);
    send_ack(tcb, sh, now, out);
}

fn challenge_ack(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
    if sh.challenge_allowed(now) {
        send_ack(tcb, sh, now, out);
    }
}

/// Linux `tcp_rcv_state_process` / the slow path of `tcp_rcv_established`.
pub(crate) fn rcv_state_process(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    let f = seg.flags;
    // PAWS (RFC 7323 section 5.3).
    if tcb.ts_ok && !f.rst() {
        if let Some((val, _)) = seg.options.timestamp {
            let fresh = tcb
                .ts_recent_stamp
                .is_some_and(|t| now.saturating_duration_since(t) < PAWS_IDLE);
            // Linux `TCP_PAWS_WINDOW`: a TSval one tick behind is reordering within the
            // same clock tick of the peer, not an old duplicate.
            if (tcb.ts_recent.wrapping_sub(val) as i32) > PAWS_WINDOW
                && fresh
                && !disordered_ack(tcb, seg, payload, val)
            {
                sh.stats.paws_estab += 1;
                oow_ack(tcb, sh, now, out);
                return Verdict::Keep;
            }
        }
    }
    // Acceptability (RFC 9293 3.10.7.4 first check).
    let seg_len = payload.len() as u32 + f.syn() as u32 + f.fin() as u32;
    let wnd = tcb
        .rcv_wnd_now()
        .max(if tcb.state == TcpState::SynReceived {
            1
        } else {
            0
        });
    let acceptable = if seg_len == 0 {
        if wnd == 0 {
            seg.seq == tcb.rcv_nxt
        } else {
            seg.seq.in_range(tcb.rcv_nxt, tcb.rcv_nxt + wnd)
        }
    } else if wnd == 0 {
        // Zero window: only the ACK/RST/URG information counts (RFC 9293 3.10.7.4).
        seg.seq == tcb.rcv_nxt
    } else {
        let end = seg.seq + (seg_len - 1);
        seg.seq.in_range(tcb.rcv_nxt, tcb.rcv_nxt + wnd)
            || end.in_range(tcb.rcv_nxt, tcb.rcv_nxt + wnd)
    };
    if !acceptable {
        if f.syn() && !f.rst() && tcb.state != TcpState::SynReceived {
            // RFC 5961 4.2: a SYN gets a challenge ACK whatever its sequence number.
            sh.stats.tcp_syn_challenge += 1;
            challenge_ack(tcb, sh, now, out);
            return Verdict::Keep;
        }
        if !f.rst() {
            let end = seg.seq + seg_len;
            if seg_len > 0 && end.le(tcb.rcv_nxt) && tcb.sack_ok {
                tcb.dsack = Some((seg.seq, end));
                sh.stats.tcp_dsack_old_sent += 1;
            }
            send_ack(tcb, sh, now, out);
        }
        return Verdict::Keep;
    }
    // RST (RFC 9293 second check, RFC 5961 section 3.2).
    if f.rst() {
        if seg.seq == tcb.rcv_nxt {
            if tcb.state == TcpState::SynReceived && tcb.listener.is_some() {
                tcp_done(tcb, sh, Some(crate::error::TcpError::ConnectionReset));
            } else {
                tcp_reset(tcb, sh);
            }
            return Verdict::Closed;
        }
        challenge_ack(tcb, sh, now, out);
        return Verdict::Keep;
    }
    store_ts_recent(tcb, seg, now);
    tcb.last_rcv = now;
    tcb.ka_probes = 0;
    // SYN in a synchronized state (RFC 5961 section 4.2: challenge ACK).
    if f.syn() {
        if tcb.state == TcpState::SynReceived && seg.seq + 1 == tcb.rcv_nxt {
            // Retransmitted SYN during simultaneous open: repeat our SYN-ACK.
            send_syn(tcb, sh, now, true, out);
            return Verdict::Keep;
        }
        sh.stats.tcp_syn_challenge += 1;
        challenge_ack(tcb, sh, now, out);
        return Verdict::Keep;
    }
    if !f.ack() {
        return Verdict::Keep;
    }
    // ACK (fifth check), RFC 5961 section 5.2 acceptable range.
    if tcb.state == TcpState::SynReceived {
        if seg.ack.gt(tcb.snd_una) && seg.ack.le(tcb.snd_nxt) {
            tcb.snd_wnd = (seg.window as u32) << tcb.snd_wscale;
            tcb.max_sndwnd = tcb.snd_wnd;
            tcb.snd_wl1 = seg.seq;
            tcb.snd_wl2 = seg.ack;
            tcb.snd_una = seg.ack;
            cancel_rtx(tcb, sh);
            tcb.retransmits = 0;
            tcb.rtt.reset_backoff();
            tcb.retrans_stamp = None;
            set_state(tcb, sh, TcpState::Established);
            on_established(tcb, sh, now);
        } else {
            send_rst(sh, tcb, seg.ack, out);
            return Verdict::Keep;
        }
    }
    if seg.ack.gt(tcb.snd_nxt) {
        // Acks something not yet sent: send an ACK and drop (RFC 9293; RFC 5961 5.2).
        challenge_ack(tcb, sh, now, out);
        return Verdict::Keep;
    }
    let min_ack = SeqNum(tcb.snd_una.0.wrapping_sub(tcb.max_sndwnd.max(1)));
    if seg.ack.lt(min_ack) {
        challenge_ack(tcb, sh, now, out);
        return Verdict::Keep;
    }
    if seg.ack.ge(tcb.snd_una) {
        if payload.is_empty() && !f.fin() && seg.ack == tcb.snd_una {
            sh.stats.tcp_pure_acks += 1;
        }
        tcp_ack(tcb, sh, now, seg, payload.len(), out);
    }
    match tcb.state {
        TcpState::FinWait1 if tcb.fin_acked() => {
            set_state(tcb, sh, TcpState::FinWait2);
            cancel_rtx(tcb, sh);
            if tcb.orphan {
                sh.set_timer(tcb.id, TimerKind::Keepalive, now + sh.cfg.fin_timeout);
            }
        }
        TcpState::Closing if tcb.fin_acked() => {
            if !enter_time_wait(tcb, sh, now) {
                return Verdict::Closed;
            }
            return Verdict::Keep;
        }
        TcpState::LastAck if tcb.fin_acked() => {
            tcp_done(tcb, sh, None);
            return Verdict::Closed;
        }
        _ => {}
    }
    // Data (seventh check) and FIN (eighth check).
    let mut verdict = Verdict::Keep;
    if matches!(
        tcb.state,
        TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::SynReceived
    ) {
        let end = seg.seq + payload.len() as u32;
        if tcb.orphan && !payload.is_empty() && end.gt(tcb.rcv_nxt) {
            // Data after close: the application will never read it (Linux TCPAbortOnData).
            sh.stats.tcp_abort_on_data += 1;
            send_rst(sh, tcb, tcb.snd_nxt, out);
            tcp_done(tcb, sh, Some(crate::error::TcpError::ConnectionAborted));
            return Verdict::Closed;
        }
        verdict = data_queue(tcb, sh, now, seg, payload, out);
    }
    if verdict == Verdict::Keep && tcb.state != TcpState::Closed {
        after_ack(tcb, sh, now, out);
        ack_snd_check(tcb, sh, now, out);
    }
    verdict
}

/// Linux `tcp_data_queue` + `tcp_ofo_queue` + `tcp_fin`: in-order data to the receive
/// queue, out-of-order data to the bounded reassembly queue (trimmed to the window,
/// RFC 9293 3.10.7.4), then the FIN if it is next.
fn data_queue(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload: &[u8],
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    let mut seq = seg.seq;
    let mut data = payload;
    let mut fin = seg.flags.fin();
    if data.is_empty() && !fin {
        return Verdict::Keep;
    }
    // Trim the part before rcv_nxt (already received).
    if seq.lt(tcb.rcv_nxt) {
        let dup = tcb.rcv_nxt.since(seq) as usize;
        if dup > 0 && tcb.sack_ok {
            let dup_end = seq + (dup.min(data.len()) as u32);
            if dup_end.gt(seq) {
                tcb.dsack = Some((seq, dup_end));
                sh.stats.tcp_dsack_old_sent += 1;
            }
        }
        if dup >= data.len() {
            data = &[];
            if fin && (seq + payload.len() as u32).lt(tcb.rcv_nxt) {
                fin = false;
            }
        } else {
            data = data.get(dup..).unwrap_or(&[]);
        }
        seq = tcb.rcv_nxt;
        tcb.ack_pending = true;
        tcb.quickack = tcb.quickack.max(1);
    }
    // Trim what lies beyond the window; a trimmed segment loses its FIN.
    let wnd = tcb.rcv_wnd_now().max(tcb.rcv_space());
    let room = (tcb.rcv_nxt + wnd).since(seq) as usize;
    if data.len() > room {
        if room == 0 {
            sh.stats.tcp_zero_window_drop += 1;
        }
        data = data.get(..room).unwrap_or(&[]);
        fin = false;
        // Linux out_of_window: ACK at once so the sender learns the window.
        tcb.ack_pending = true;
        tcb.quickack = tcb.quickack.max(1);
    }
    // Linux `tcp_try_rmem_schedule` -> `tcp_prune_queue`: under memory pressure the
    // out-of-order queue is cut down to its pressure allowance before new data is taken.
    if sh.under_pressure() && tcb.ooo_bytes > ofo_pressure_limit(tcb, sh) {
        prune_ofo(tcb, sh, ofo_pressure_limit(tcb, sh));
    }
    if seq == tcb.rcv_nxt {
        if !data.is_empty() {
            // Data inside the window we already promised may overfill the buffer by a
            // quarter (Linux keeps that slack by advertising less than sk_rcvbuf,
            // tcp_adv_win_scale): dropping it would cost the sender a retransmission
            // and often an RTO. A buffer shrunk below its promise still pushes back.
            let slack = if data.len() <= tcb.rcv_wnd_now() as usize {
                tcb.rcvbuf_cap / 4
            } else {
                0
            };
            if tcb.rcv_buf.len() + data.len() > tcb.rcvbuf_cap + slack + tcb.mss as usize
                || !sh.rmem_schedule(tcb.rcv_buf.len() + tcb.ooo_bytes, data.len())
            {
                sh.stats.tcp_rcvq_drop += 1;
                tcb.ack_pending = true;
                tcb.quickack = tcb.quickack.max(1);
                return Verdict::Keep;
            }
            tcb.rcv_buf.extend(data);
            tcb.rcv_nxt += data.len() as u32;
            tcb.bytes_received += data.len() as u64;
            tcb.ack_pending = true;
            sh.wake(tcb.id, &mut tcb.evt);
        }
        if !tcb.ooo.is_empty() {
            ofo_drain(tcb, sh);
            tcb.quickack = tcb.quickack.max(1);
        }
        if fin || tcb.ooo_fin == Some(tcb.rcv_nxt) {
            return tcp_fin(tcb, sh, now, out);
        }
    } else {
        // Out of order (seq > rcv_nxt).
        tcb.ack_pending = true;
        tcb.quickack = tcb.quickack.max(1);
        if fin {
            tcb.ooo_fin = Some(seq + data.len() as u32);
        }
        if !data.is_empty() {
            ofo_insert(tcb, sh, seq, data);
        }
    }
    Verdict::Keep
}

/// Inserts into the out-of-order queue, merging overlaps (Linux `tcp_data_queue_ofo`).
fn ofo_insert(tcb: &mut Tcb, sh: &mut Shared, seq: SeqNum, data: &[u8]) {
    let mut limit = sh.cfg.ooo_queue_limit.min(tcb.rcvbuf_cap);
    if sh.under_pressure() {
        limit = limit.min(ofo_pressure_limit(tcb, sh));
    }
    if tcb.ooo_bytes + data.len() > limit
        || !sh.rmem_schedule(tcb.rcv_buf.len() + tcb.ooo_bytes, data.len())
    {
        sh.stats.tcp_ofo_drop += 1;
        return;
    }
    sh.stats.tcp_ofo_queue += 1;
    let end = seq + data.len() as u32;
    // Collect the union of the new segment and every overlapping/adjacent entry.
    let mut new_start = seq;
    let mut new_end = end;
    let mut first = None;
    let mut last = 0usize;
    let mut dup = None;
    for (i, (s, d)) in tcb.ooo.iter().enumerate() {
        let e = *s + d.len() as u32;
        if e.lt(seq) {
            continue;
        }
        if s.gt(end) {
            break;
        }
        // The first part of the segment already held out of order: reported as a D-SACK
        // block (RFC 2883 section 4.2; Linux `tcp_dsack_set` from `tcp_data_queue_ofo`).
        let (l, r) = (seq.max(*s), end.min(e));
        if dup.is_none() && r.gt(l) {
            dup = Some((l, r));
        }
        if first.is_none() {
            first = Some(i);
        }
        last = i;
        new_start = new_start.min(*s);
        new_end = new_end.max(e);
    }
    if let Some(d) = dup.filter(|_| tcb.sack_ok) {
        tcb.dsack = Some(d);
        sh.stats.tcp_dsack_ofo_sent += 1;
    }
    // The common case while a hole is outstanding: the segment extends the tail of the
    // one entry it touches. Append in place instead of rebuilding the entry (which would
    // copy the whole queue once per segment).
    if let Some(i) = first.filter(|&i| i == last) {
        if let Some((s, d)) = tcb.ooo.get_mut(i) {
            if !seq.lt(*s) {
                let e = *s + d.len() as u32;
                if end.gt(e) {
                    let skip = e.since(seq) as usize;
                    let add = data.get(skip..).unwrap_or(&[]);
                    d.extend_from_slice(add);
                    tcb.ooo_bytes += add.len();
                }
                sh.stats.tcp_ofo_merge += 1;
                note_ooo(tcb, seq);
                return;
            }
        }
    }
    match first {
        None => {
            let pos = tcb
                .ooo
                .iter()
                .position(|(s, _)| s.gt(seq))
                .unwrap_or(tcb.ooo.len());
            tcb.ooo.insert(pos, (seq, data.to_vec()));
            tcb.ooo_bytes += data.len();
        }
        Some(i) => {
            sh.stats.tcp_ofo_merge += 1;
            let total = new_end.since(new_start) as usize;
            let mut buf = vec![0u8; total];
            let removed: Vec<(SeqNum, Vec<u8>)> = tcb.ooo.drain(i..=last).collect();
            for (s, d) in &removed {
                let off = s.since(new_start) as usize;
                if let Some(dst) = buf.get_mut(off..off + d.len()) {
                    dst.copy_from_slice(d);
                }
                tcb.ooo_bytes = tcb.ooo_bytes.saturating_sub(d.len());
            }
            let off = seq.since(new_start) as usize;
            if let Some(dst) = buf.get_mut(off..off + data.len()) {
                dst.copy_from_slice(data);
            }
            tcb.ooo_bytes += buf.len();
            tcb.ooo.insert(i, (new_start, buf));
        }
    }
    note_ooo(tcb, seq);
}

/// The block that `seq` went into is reported first from now on.
fn note_ooo(tcb: &mut Tcb, seq: SeqNum) {
    if let Some(b) = tcb.ooo_block_containing(seq) {
        tcb.recent_ooo.note(seq, b);
    }
}

/// What one connection may keep out of order while the stack is under memory pressure:
/// the `rmem.0` minimum, at least 4 MSS (Linux prunes to what `sk_rmem_schedule` allows).
fn ofo_pressure_limit(tcb: &Tcb, sh: &Shared) -> usize {
    sh.cfg.rmem.0.max(4 * tcb.advmss as usize)
}

/// Linux `tcp_prune_ofo_queue`: drops out-of-order data from the highest sequence down
/// until at most `limit` bytes remain (`PruneCalled`, `OfoPruned`). The peer resends it:
/// after its RTO it forgets our SACKs (RFC 2018 section 8), so reneging is safe.
fn prune_ofo(tcb: &mut Tcb, sh: &mut Shared, limit: usize) {
    sh.stats.prune_called += 1;
    while tcb.ooo_bytes > limit {
        let Some((_, d)) = tcb.ooo.pop() else {
            break;
        };
        tcb.ooo_bytes = tcb.ooo_bytes.saturating_sub(d.len());
        sh.stats.ofo_pruned += 1;
        // The FIN (if any) sat past the pruned data; the peer will send it again.
        tcb.ooo_fin = None;
    }
    if tcb.ooo.is_empty() {
        tcb.ooo_bytes = 0;
        tcb.recent_ooo.clear();
        tcb.ooo = Vec::new();
    }
    tcb.sync_mem(sh);
}

/// Moves now-in-order data from the out-of-order queue (Linux `tcp_ofo_queue`).
fn ofo_drain(tcb: &mut Tcb, sh: &mut Shared) {
    while let Some((s, _)) = tcb.ooo.first() {
        let s = *s;
        if s.gt(tcb.rcv_nxt) {
            break;
        }
        let (s, d) = tcb.ooo.remove(0);
        tcb.ooo_bytes = tcb.ooo_bytes.saturating_sub(d.len());
        let skip = tcb.rcv_nxt.since(s) as usize;
        if let Some(rest) = d.get(skip..) {
            tcb.rcv_buf.extend(rest);
            tcb.rcv_nxt += rest.len() as u32;
            tcb.bytes_received += rest.len() as u64;
        }
        sh.wake(tcb.id, &mut tcb.evt);
    }
    if tcb.ooo.is_empty() {
        tcb.recent_ooo.clear();
        tcb.ooo = Vec::new();
    }
}

/// Linux `tcp_fin` (RFC 9293 3.10.7.4 eighth check).
fn tcp_fin(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) -> Verdict {
    tcb.rcv_nxt += 1;
    tcb.fin_rcvd = true;
    tcb.ooo_fin = None;
    tcb.ooo = Vec::new();
    tcb.ooo_bytes = 0;
    sh.wake(tcb.id, &mut tcb.evt);
    match tcb.state {
        TcpState::SynReceived | TcpState::Established => {
            set_state(tcb, sh, TcpState::CloseWait);
            // Linux enters ping-pong mode here (`inet_csk_enter_pingpong_mode`), which
            // ends quick-ack mode: the ACK of the FIN waits for the delayed-ACK timer, so
            // an application that closes at once acknowledges it on its own FIN (a
            // three-segment close). Data still more than a segment unacknowledged is
            // acknowledged at once, as anywhere else.
            tcb.quickack = 0;
            tcb.ack_pending = true;
            return Verdict::Keep;
        }
        TcpState::FinWait1 => {
            if tcb.fin_acked() {
                send_ack(tcb, sh, now, out);
                if !enter_time_wait(tcb, sh, now) {
                    return Verdict::Closed;
                }
                return Verdict::Keep;
            }
            set_state(tcb, sh, TcpState::Closing);
        }
        TcpState::FinWait2 => {
            send_ack(tcb, sh, now, out);
            if !enter_time_wait(tcb, sh, now) {
                return Verdict::Closed;
            }
            return Verdict::Keep;
        }
        _ => {}
    }
    // A simultaneous close (FIN_WAIT_1 -> CLOSING; Linux `tcp_send_ack`): ACK at once. (A
    // retransmitted FIN never gets here: it lies below `rcv_nxt` and is acknowledged at
    // once as a duplicate.)
    tcb.ack_pending = true;
    tcb.quickack = tcb.quickack.max(1);
    Verdict::Keep
}

/// Linux `__tcp_ack_snd_check`: ACK now (quick-ack mode, more than one full segment
/// unacknowledged, out-of-order data, D-SACK) or arm the delayed-ACK timer.
pub(crate) fn ack_snd_check(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    out: &mut Vec<TcpSegmentOut>,
) {
    if !tcb.ack_pending {
        return;
    }
    let unacked = tcb.rcv_nxt.since(tcb.rcv_wup);
    let urgent = tcb.quickack > 0 || !tcb.ooo.is_empty() || tcb.dsack.is_some();
    if urgent || unacked > tcb.mss {
        if !urgent && sh.ack_batching {
            // More than one full segment unacknowledged, nothing else special: one ACK
            // at the end of the batch covers every segment of it (Linux gets the same
            // from GRO merging a burst before `tcp_rcv_established`).
            defer_ack(tcb, sh, now);
            return;
        }
        if tcb.quickack > 0 {
            tcb.quickack -= 1;
        }
        send_ack(tcb, sh, now, out);
    } else {
        arm_delack(tcb, sh, now);
    }
}

/// Arms the delayed-ACK timer unless it is armed (Linux `inet_csk_reset_xmit_timer`
/// with `ICSK_TIME_DACK`).
fn arm_delack(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    if !tcb.delack_armed {
        tcb.delack_armed = true;
        let ato = tcb.ato.clamp(sh.cfg.delack_min, sh.cfg.delack_max);
        tcb.delack_deadline = now + ato;
        sh.set_timer_lazy(tcb.id, TimerKind::DelAck, tcb.delack_deadline);
    }
}

/// Owes an immediate ACK, sent by [`flush_owed_ack`] at the end of the batch. The
/// delayed-ACK timer stays armed as a backstop for a caller that never flushes.
fn defer_ack(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    if !tcb.ack_owed {
        tcb.ack_owed = true;
        sh.ack_owed.push(tcb.id);
    }
    arm_delack(tcb, sh, now);
}

/// Sends the ACK a connection owes from the batch that just ended, unless a segment
/// sent since then (data, window update) carried it already.
pub(crate) fn flush_owed_ack(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    out: &mut Vec<TcpSegmentOut>,
) {
    if !tcb.ack_owed {
        return;
    }
    tcb.ack_owed = false;
    if tcb.ack_pending
        && !matches!(
            tcb.state,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::TimeWait
        )
    {
        send_ack(tcb, sh, now, out);
    }
}

/// Sends a bare RST from this connection with sequence number `seq` (RFC 9293 section
/// 3.10.7: `<SEQ=SEG.ACK><CTL=RST>` for an unacceptable ACK, or `snd_nxt` when aborting).
pub(crate) fn send_rst(sh: &mut Shared, tcb: &Tcb, seq: SeqNum, out: &mut Vec<TcpSegmentOut>) {
    let r = TcpRepr::new(
        tcb.local.port(),
        tcb.remote.port(),
        seq,
        SeqNum(0),
        TcpFlags::RST,
    );
    send_raw(sh, tcb.local, tcb.remote, &r, tcb.opts.ip, out);
}
