//! Segment output (Linux: `tcp_write_xmit`, `tcp_transmit_skb`, `tcp_send_ack`,
//! `tcp_v4_send_reset`, `tcp_send_synack`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ustack_netdev::{DevId, PacketBuf};

use crate::ctx::{Shared, TimerKind};
use crate::recovery::first_unsacked;
use crate::seq::SeqNum;
use crate::state::TcpState;
use crate::tcb::{CaState, IpOpts, RtxKind, Tcb};
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, ECN_ECT0, ECN_MASK};

/// A TCP segment ready for IP output: header + payload, with headroom for the IP header.
#[derive(Debug, Clone)]
pub struct TcpSegmentOut {
    /// Source address (our local address).
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TTL override (`IP_TTL`), `None` = the IP layer's default.
    pub ttl: Option<u8>,
    /// Type of service byte.
    pub tos: u8,
    /// The device to send through (`SO_BINDTODEVICE`); `None`: the routing table chooses.
    pub oif: Option<DevId>,
    /// The peer has acknowledged something since the connection's last segment: its
    /// next hop is reachable (for [`ustack_ipv4::OutMeta::confirm_neigh`]).
    pub confirm_neigh: bool,
    /// The TCP segment.
    pub pkt: PacketBuf,
}

/// Builds and queues a segment without payload (an ACK, RST, SYN-ACK) from explicit
/// fields (Linux: `tcp_v4_send_ack` / `tcp_v4_send_reset` for sockets without a full TCB).
pub(crate) fn send_raw(
    sh: &mut Shared,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    repr: &TcpRepr,
    ip: IpOpts,
    out: &mut Vec<TcpSegmentOut>,
) {
    let mut pkt = PacketBuf::with_payload_capacity(0);
    repr.emit(&mut pkt, *local.ip(), *remote.ip());
    sh.stats.out_segs += 1;
    if repr.flags.rst() {
        sh.stats.out_rsts += 1;
    }
    out.push(TcpSegmentOut {
        src: *local.ip(),
        dst: *remote.ip(),
        ttl: ip.ttl,
        tos: ip.tos,
        oif: ip.oif,
        confirm_neigh: false,
        pkt,
    });
}

/// RST for a segment that matched no connection (RFC 9293 section 3.10.7.1): if the
/// segment had ACK, `seq = SEG.ACK`; else `seq = 0, ack = SEG.SEQ + SEG.LEN` with ACK.
/// Never answers an RST. Linux: `tcp_v4_send_reset`.
pub(crate) fn send_reset_reply(
    sh: &mut Shared,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seg: &TcpRepr,
    payload_len: usize,
    out: &mut Vec<TcpSegmentOut>,
) {
    if seg.flags.rst() {
        return;
    }
    let repr = if seg.flags.ack() {
        TcpRepr::new(
            local.port(),
            remote.port(),
            seg.ack,
            SeqNum(0),
            TcpFlags::RST,
        )
    } else {
        let len = payload_len as u32 + seg.flags.syn() as u32 + seg.flags.fin() as u32;
        TcpRepr::new(
            local.port(),
            remote.port(),
            SeqNum(0),
            seg.seq + len,
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    send_raw(sh, local, remote, &repr, IpOpts::default(), out);
}

/// Options carried on a non-SYN segment: timestamps and SACK blocks (D-SACK first,
/// then the most recently changed out-of-order blocks, RFC 2018 section 4, RFC 2883).
///
/// Fills `o` (fresh, empty) in place: returning the options by value made the compiler
/// copy them with wide loads right after narrow stores, a store-forwarding stall on
/// every segment.
#[inline]
fn segment_options(tcb: &Tcb, sh: &mut Shared, now: Instant, o: &mut TcpOptions) {
    if tcb.ts_ok {
        o.timestamp = Some((sh.ts_now(now).wrapping_add(tcb.ts_offset), tcb.ts_recent));
    }
    // Nothing out of order and no D-SACK (the bulk case): no SACK blocks to gather.
    if tcb.sack_ok && (tcb.dsack.is_some() || !tcb.ooo.is_empty()) {
        let max_blocks = if tcb.ts_ok { 3 } else { 4 };
        if let Some(d) = tcb.dsack {
            o.push_sack(d);
        }
        // The most recently changed blocks first, then the rest in sequence order.
        let recent = tcb
            .recent_ooo
            .iter()
            .filter_map(|seq| tcb.ooo_block_containing(seq));
        for b in recent.chain(tcb.ooo_blocks()) {
            if (o.sack_count as usize) >= max_blocks {
                break;
            }
            if !o.sack_blocks().contains(&b) {
                o.push_sack(b);
            }
        }
    }
}

/// Header bytes beyond 20 that the next data segment will carry (Linux `tcp_current_mss`).
pub(crate) fn sack_option_len(tcb: &Tcb) -> u32 {
    if !tcb.sack_ok || (tcb.ooo.is_empty() && tcb.dsack.is_none()) {
        return 0;
    }
    let blocks = tcb.ooo_blocks().count() + tcb.dsack.is_some() as usize;
    let max_blocks = if tcb.ts_ok { 3 } else { 4 };
    4 + 8 * blocks.min(max_blocks) as u32
}

/// Linux `tcp_transmit_skb`: builds the segment `[seq, seq+len)` (+ flags) from the send
/// buffer, with the current ACK, window and options, and queues it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transmit(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seq: SeqNum,
    len: u32,
    mut flags: TcpFlags,
    retrans: bool,
    out: &mut Vec<TcpSegmentOut>,
) {
    // The segment is laid out first and filled in place: built at the end, its small
    // fields were stored just before `out.push` copied the struct with wide loads (a
    // store-forwarding stall per segment).
    let mut seg = TcpSegmentOut {
        src: *tcb.local.ip(),
        dst: *tcb.remote.ip(),
        ttl: tcb.opts.ip.ttl,
        tos: tcb.opts.ip.tos,
        oif: tcb.opts.ip.oif,
        confirm_neigh: std::mem::take(&mut tcb.dst_confirm),
        pkt: PacketBuf::with_payload_capacity(len as usize),
    };
    let pkt = &mut seg.pkt;
    let mut payload_sum = None;
    // The device completes the checksum (and cuts a super-segment): only data segments
    // use it, so SYNs, FINs without data, ACKs and RSTs stay whole.
    let offload = tcb.tso_max > 0 && len > 0;
    if len > 0 {
        let off = seq.since(tcb.buf_seq()) as usize;
        // Both copies fill every byte: no need to zero the space first. copy_snd_sum
        // sums the payload for the checksum while copying it.
        let dst = pkt.put_for_overwrite(len as usize);
        if offload {
            tcb.copy_snd(off, dst);
        } else {
            payload_sum = Some(tcb.copy_snd_sum(off, dst));
        }
    }
    let syn = flags.syn();
    if tcb.state != TcpState::SynSent || !syn {
        flags |= TcpFlags::ACK;
    }
    if tcb.ecn_ok && !syn {
        if tcb.ecn_demand_cwr {
            flags |= TcpFlags::ECE;
        }
        // New data is ECN-capable; retransmissions and bare ACKs are not (RFC 3168
        // 6.1.4-6.1.5), and the first new data after a reduction says CWR.
        if len > 0 && !retrans {
            seg.tos = (seg.tos & !ECN_MASK) | ECN_ECT0;
            if tcb.ecn_queue_cwr {
                flags |= TcpFlags::CWR;
                tcb.ecn_queue_cwr = false;
            }
        }
    }
    let span = len + u32::from(flags.fin());
    if span > 0 && !syn && tcb.sack_ok {
        if retrans {
            crate::rack::on_retransmit(tcb, seq, seq + span, now);
        } else {
            crate::rack::on_send(tcb, seq, seq + span, now);
        }
    }
    let mut repr = TcpRepr::new(tcb.local.port(), tcb.remote.port(), seq, tcb.rcv_nxt, flags);
    if syn {
        repr.options = syn_options(tcb, sh, now);
        repr.window = tcb.rcv_space().min(65535) as u16;
        tcb.rcv_wnd = repr.window as u32;
        tcb.rcv_wup = tcb.rcv_nxt;
    } else {
        segment_options(tcb, sh, now, &mut repr.options);
        repr.window = tcb.select_window(sh.under_pressure());
    }
    if !flags.ack() {
        repr.ack = SeqNum(0);
    }
    repr.header_len = repr.emit_len();
    let segs = if offload {
        repr.emit_partial(pkt, *tcb.local.ip(), *tcb.remote.ip());
        let mss = mss_now(tcb);
        if len > mss {
            pkt.set_gso_size(mss.min(u32::from(u16::MAX)) as u16);
        }
        len.div_ceil(mss) as u64
    } else {
        match payload_sum {
            Some(ps) => repr.emit_with_payload_sum(pkt, *tcb.local.ip(), *tcb.remote.ip(), ps),
            None => repr.emit(pkt, *tcb.local.ip(), *tcb.remote.ip()),
        }
        1
    };
    if retrans {
        sh.stats.retrans_segs += segs;
        tcb.total_retrans += segs as u32;
        tcb.bytes_retrans += len as u64;
        if tcb.retrans_stamp.is_none() {
            tcb.retrans_stamp = Some(now);
        }
    } else {
        sh.stats.out_segs += segs;
        tcb.bytes_sent += len as u64;
    }
    if flags.rst() {
        sh.stats.out_rsts += 1;
    }
    tcb.segs_out += segs;
    if len > 0 && (tcb.ca == CaState::Recovery || tcb.cwr_until.is_some()) {
        tcb.prr_out = tcb.prr_out.saturating_add(segs as u32);
    }
    if flags.ack() {
        // This segment carries the ACK: the delayed ACK is no longer owed.
        tcb.ack_pending = false;
        tcb.rcv_segs_unacked = 0;
        tcb.dsack = None;
        // The delayed-ACK timer's wheel entry stays (lazily, see `clear_rtx`).
        tcb.delack_armed = false;
    }
    out.push(seg);
}

/// Options on our SYN or SYN-ACK (simultaneous open): MSS, WS, SACK-permitted, TS.
fn syn_options(tcb: &Tcb, sh: &mut Shared, now: Instant) -> TcpOptions {
    let mut o = TcpOptions {
        mss: Some(tcb.advmss),
        ..TcpOptions::default()
    };
    let active = tcb.state == TcpState::SynSent;
    if sh.cfg.window_scaling && (active || tcb.ws_ok) {
        o.wscale = Some(tcb.rcv_wscale);
    }
    if sh.cfg.sack && (active || tcb.sack_ok) {
        o.sack_permitted = true;
    }
    if sh.cfg.timestamps && (active || tcb.ts_ok) {
        o.timestamp = Some((sh.ts_now(now).wrapping_add(tcb.ts_offset), tcb.ts_recent));
    }
    o
}

/// Sends our SYN (SYN_SENT) or SYN-ACK (SYN_RECEIVED after simultaneous open).
pub(crate) fn send_syn(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    retrans: bool,
    out: &mut Vec<TcpSegmentOut>,
) {
    let mut flags = if tcb.state == TcpState::SynSent {
        TcpFlags::SYN
    } else {
        TcpFlags::SYN | TcpFlags::ACK
    };
    // An ECN-setup SYN (RFC 3168 6.1.1); a retransmitted SYN goes without, in case a
    // middlebox drops SYNs that ask for ECN (Linux `tcp_ecn_clear_syn`).
    if tcb.state == TcpState::SynSent && sh.cfg.ecn == crate::EcnMode::Request && !retrans {
        flags |= TcpFlags::ECE | TcpFlags::CWR;
    }
    transmit(tcb, sh, now, tcb.iss, 0, flags, retrans, out);
    if tcb.snd_nxt == tcb.iss {
        tcb.snd_nxt = tcb.iss + 1;
    }
    arm_rtx(tcb, sh, now);
}

/// Linux `tcp_send_ack`: a pure ACK at `snd_nxt`.
pub(crate) fn send_ack(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
    let seq = tcb.snd_nxt;
    transmit(tcb, sh, now, seq, 0, TcpFlags::ACK, false, out);
}

/// Linux `tcp_send_active_reset`: RST at `snd_nxt` (with ACK when synchronized).
pub(crate) fn send_active_rst(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    out: &mut Vec<TcpSegmentOut>,
) {
    let seq = tcb.snd_nxt;
    let flags = TcpFlags::RST;
    transmit(tcb, sh, now, seq, 0, flags, false, out);
}

/// Arms the retransmission timer at `now + RTO` if it is not armed (Linux
/// `inet_csk_reset_xmit_timer` with `ICSK_TIME_RETRANS`).
pub(crate) fn arm_rtx(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    // An armed tail loss probe stays: `write_xmit` reschedules it after sending, and
    // when it fires without cause it falls back to the RTO.
    if !tcb.rtx_armed || tcb.rtx_kind == RtxKind::Probe {
        rearm_rtx(tcb, sh, now);
    }
}

/// Arms the retransmission timer after retransmitting at `seq`: a resend of the first
/// unacknowledged segment restarts it (Linux `tcp_xmit_retransmit_queue`), so a head
/// resent late in a recovery (the window held it back) gets a whole RTO to be
/// acknowledged instead of what was left of one started by the last advancing ACK.
fn arm_rtx_for(tcb: &mut Tcb, sh: &mut Shared, now: Instant, seq: SeqNum) {
    if seq == tcb.snd_una {
        rearm_rtx(tcb, sh, now);
    } else {
        arm_rtx(tcb, sh, now);
    }
}

/// Restarts the retransmission timer at `now + RTO` (Linux `tcp_rearm_rto`).
pub(crate) fn rearm_rtx(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    tcb.rtx_kind = RtxKind::Retrans;
    tcb.rtx_armed = true;
    tcb.rtx_deadline = now + tcb.rtt.rto();
    sh.set_timer_lazy(tcb.id, TimerKind::Rtx, tcb.rtx_deadline);
}

/// Stops the retransmission / probe timer when everything sent is acknowledged (the data
/// path). The timer-wheel entry stays (lazily): if it fires, the handler sees the timer
/// disarmed and does nothing; re-arming it before then costs nothing.
pub(crate) fn clear_rtx(tcb: &mut Tcb, _sh: &mut Shared) {
    tcb.rtx_armed = false;
}

/// Stops the retransmission / probe timer and removes its timer-wheel entry: for state
/// changes after which the timer is not soon re-armed (handshake done, FIN acknowledged,
/// TIME-WAIT), so idle connections hold no stale entries.
pub(crate) fn cancel_rtx(tcb: &mut Tcb, sh: &mut Shared) {
    tcb.rtx_armed = false;
    sh.clear_timer(tcb.id, TimerKind::Rtx);
}

/// Arms the zero-window probe timer (Linux `tcp_check_probe_timer`).
pub(crate) fn arm_probe(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    if tcb.rtx_armed {
        return;
    }
    tcb.rtx_kind = RtxKind::Probe;
    tcb.rtx_armed = true;
    tcb.rtx_deadline = now + tcb.rtt.rto();
    sh.set_timer_lazy(tcb.id, TimerKind::Rtx, tcb.rtx_deadline);
}

/// The peer's worst-case delayed ACK, added to the PTO when one segment is in flight
/// (RFC 8985 `WCDelAckT`).
const TLP_WC_DELACK: Duration = Duration::from_millis(200);
/// Smallest PTO (Linux floors it at 10 ms too): on very short paths a few microseconds of
/// scheduling delay must not look like a tail loss.
const TLP_MIN_PTO: Duration = Duration::from_millis(10);

/// Arms a tail loss probe (RFC 8985 section 7.2; Linux `tcp_schedule_loss_probe`): with
/// data in flight, SACK on, nothing suspicious yet (Open) and no probe out, the
/// retransmission timer fires a probe after PTO = 2 SRTT (plus the peer's worst-case
/// delayed ACK when one segment is in flight), or at the RTO's time if that comes first:
/// the probe then takes the RTO's place (no Loss state, no collapse of cwnd to one).
pub(crate) fn schedule_tlp(tcb: &mut Tcb, sh: &mut Shared, now: Instant) {
    if !tcb.sack_ok
        || tcb.ca != CaState::Open
        || tcb.tlp_high_seq.is_some()
        || tcb.snd_una == tcb.snd_nxt
        || !tcb.rtx_armed
        || tcb.rtx_kind == RtxKind::Probe
        || !sends_data(tcb.state)
    {
        return;
    }
    let Some(srtt) = tcb.rtt.srtt() else {
        return;
    };
    let mut pto = srtt * 2;
    if tcb.snd_nxt.since(tcb.snd_una) <= tcb.mss {
        pto += TLP_WC_DELACK;
    }
    let rto_at = match tcb.rtx_kind {
        RtxKind::Retrans => tcb.rtx_deadline,
        _ => now + tcb.rtt.rto(),
    };
    let at = (now + pto.max(TLP_MIN_PTO)).min(rto_at);
    tcb.rtx_kind = RtxKind::Tlp;
    tcb.rtx_deadline = at;
    sh.set_timer_lazy(tcb.id, TimerKind::Rtx, at);
}

/// Sends the tail loss probe (RFC 8985 section 7.3; Linux `tcp_send_loss_probe`): one
/// segment of new data when some waits and the peer's window admits it (whatever the
/// congestion window says), otherwise the most recently sent segment again, so that its
/// acknowledgment (with SACK) reveals a lost tail, which then goes to fast recovery instead
/// of waiting for the RTO. The RTO is armed behind it.
pub(crate) fn send_loss_probe(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    out: &mut Vec<TcpSegmentOut>,
) {
    let write_seq = tcb.write_seq();
    if write_seq.gt(tcb.snd_nxt) {
        let len = write_seq.since(tcb.snd_nxt).min(mss_now(tcb));
        if (tcb.snd_nxt + len).le(tcb.snd_una + tcb.snd_wnd) {
            send_new(tcb, sh, now, len, out);
            rearm_rtx(tcb, sh, now);
            tcb.tlp_high_seq = Some(tcb.snd_nxt);
            tcb.tlp_retrans = false;
            sh.stats.tcp_loss_probes += 1;
            return;
        }
    }
    let data_end = write_seq.min(tcb.snd_nxt);
    let back = mss_now(tcb).min(data_end.since(tcb.snd_una));
    let seq = SeqNum(data_end.0.wrapping_sub(back));
    let span = retransmit_at(tcb, sh, now, seq, back.max(1), out);
    rearm_rtx(tcb, sh, now);
    if span > 0 {
        tcb.tlp_high_seq = Some(tcb.snd_nxt);
        tcb.tlp_retrans = true;
        sh.stats.tcp_loss_probes += 1;
    }
}

/// Retransmits one segment starting at `seq` (at most `max_len` payload bytes, stopping
/// at the next SACKed block); returns the sequence space covered. Linux
/// `tcp_retransmit_skb`.
pub(crate) fn retransmit_at(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    seq: SeqNum,
    max_len: u32,
    out: &mut Vec<TcpSegmentOut>,
) -> u32 {
    if seq == tcb.iss && tcb.snd_una == tcb.iss {
        send_syn(tcb, sh, now, true, out);
        return 1;
    }
    let write_seq = tcb.write_seq();
    let mut end = write_seq.min(tcb.snd_nxt);
    for &(l, _) in &tcb.sacked {
        if l.gt(seq) && l.lt(end) {
            end = l;
            break;
        }
    }
    let len = if end.gt(seq) {
        end.since(seq).min(max_len)
    } else {
        0
    };
    let mut flags = TcpFlags::ACK;
    let mut span = len;
    if tcb.fin_sent() && seq + len == write_seq {
        flags |= TcpFlags::FIN;
        span += 1;
    }
    if span == 0 {
        return 0;
    }
    if len > 0 && seq + len == write_seq {
        flags |= TcpFlags::PSH;
    }
    transmit(tcb, sh, now, seq, len, flags, true, out);
    span
}

/// The MSS for the next data segment, net of SACK option space.
pub(crate) fn mss_now(tcb: &Tcb) -> u32 {
    tcb.mss.saturating_sub(sack_option_len(tcb)).max(1)
}

/// Payload bytes of the largest super-segment for `tcb`'s device: its limit less the
/// IPv4 header and the largest TCP header, and at most 64 segments (Linux caps TSO at
/// `gso_max_segs`, and a smaller burst keeps the ACK clock ticking).
fn tso_payload_max(tcb: &Tcb) -> u32 {
    let by_dev = tcb.tso_max.saturating_sub(20 + 60).min(u32::MAX as usize) as u32;
    by_dev.min(64 * mss_now(tcb))
}

/// States in which data (new or retransmitted) and the FIN may still go out.
fn sends_data(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::Established
            | TcpState::CloseWait
            | TcpState::FinWait1
            | TcpState::Closing
            | TcpState::LastAck
    )
}

/// Segments one `write_xmit` call may emit.
const MAX_BURST: u32 = 4096;

/// Linux `tcp_write_xmit`: sends what the send buffer, the peer's window, the congestion
/// window, Nagle (RFC 896) and sender SWS avoidance (RFC 1122 4.2.3.4) allow; during
/// Recovery / Loss lost segments go first (RFC 6675 NextSeg).
pub(crate) fn write_xmit(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    out: &mut Vec<TcpSegmentOut>,
) {
    if !sends_data(tcb.state) {
        return;
    }
    let mss = mss_now(tcb);
    // Bounds the work of one call; the congestion and peer windows are the real limits.
    let mut budget = MAX_BURST;
    let mut sent_new = false;
    while budget > 0 {
        budget -= 1;
        // 1. Lost segments first.
        if matches!(tcb.ca, CaState::Recovery | CaState::Loss) && tcb.lost_pending() > 0 {
            if tcb.in_flight() + mss > tcb.cwnd_bytes() {
                break;
            }
            if let Some(&(l, r)) = tcb.rtx_lost.first() {
                // A retransmission found lost goes again first.
                tcb.rtx_lost.remove(0);
                let seq = first_unsacked(tcb, l.max(tcb.snd_una));
                if seq.ge(r) {
                    continue;
                }
                let span = retransmit_at(tcb, sh, now, seq, mss.min(r.since(seq)), out);
                if span == 0 {
                    continue;
                }
                if tcb.ca == CaState::Recovery {
                    sh.stats.tcp_fast_retrans += 1;
                }
                if (seq + span).lt(r) {
                    // A smaller MSS than the first retransmission's: the rest stays lost.
                    tcb.rtx_lost.insert(0, (seq + span, r));
                }
                arm_rtx_for(tcb, sh, now, seq);
                continue;
            }
            let seq = first_unsacked(tcb, tcb.rtx_next.max(tcb.snd_una));
            if seq.ge(tcb.lost_end) || seq.ge(tcb.snd_nxt) {
                // Never back: below the cursor everything was sent again already.
                tcb.rtx_next = tcb.rtx_next.max(tcb.lost_end);
                continue;
            }
            let max = mss.min(tcb.lost_end.since(seq).max(1));
            let span = retransmit_at(tcb, sh, now, seq, max, out);
            if span == 0 {
                tcb.rtx_next = tcb.rtx_next.max(tcb.lost_end);
                continue;
            }
            if tcb.ca == CaState::Recovery {
                sh.stats.tcp_fast_retrans += 1;
            }
            tcb.rtx_next = seq + span;
            arm_rtx_for(tcb, sh, now, seq);
            continue;
        }
        // 2. New data (and the FIN).
        if !tcb.state.can_send() && (!tcb.shut_wr || tcb.fin_sent()) {
            break;
        }
        let seq = tcb.snd_nxt;
        let write_seq = tcb.write_seq();
        let unsent = if write_seq.gt(seq) {
            write_seq.since(seq)
        } else {
            0
        };
        let fin_pending = tcb.shut_wr && seq == write_seq;
        if unsent == 0 && !fin_pending {
            break;
        }
        let wnd_end = tcb.snd_una + tcb.snd_wnd;
        let wnd_room = if wnd_end.gt(seq) {
            wnd_end.since(seq)
        } else {
            0
        };
        let in_flight = tcb.in_flight();
        let mut len = unsent.min(mss).min(wnd_room);
        if tcb.tso_max > 0 && len == mss {
            // TSO (Linux `tcp_tso_segs` / `tcp_mss_split_point`): one super-segment of
            // whole MSS-sized segments, within the device's limit, the peer's window and
            // the congestion window; the tail may end in a short segment.
            let room = tcb.cwnd_bytes().saturating_sub(in_flight);
            let max = (tso_payload_max(tcb) / mss).max(1) * mss;
            let goal = unsent.min(wnd_room).min(max).min(room.max(mss));
            len = if goal == unsent {
                goal
            } else {
                (goal / mss).max(1) * mss
            };
        }
        if unsent > 0 && len == 0 {
            // Window closed: probe it when nothing is outstanding (RFC 9293 3.8.6.1).
            if tcb.snd_una == tcb.snd_nxt {
                arm_probe(tcb, sh, now);
            }
            break;
        }
        if len > 0 && in_flight + len > tcb.cwnd_bytes() && in_flight > 0 {
            break;
        }
        if len < mss && len < unsent {
            // Window-limited tiny segment: sender SWS avoidance.
            if len < tcb.max_sndwnd / 2 {
                if tcb.snd_una == tcb.snd_nxt {
                    arm_probe(tcb, sh, now);
                }
                break;
            }
        }
        if len > 0
            && len < mss
            && len == unsent
            && !tcb.opts.nodelay
            && small_unacked(tcb)
            && !tcb.shut_wr
        {
            // Nagle (Minshall's variant, as Linux): hold a partial segment while an
            // earlier partial segment is unacknowledged. The tail of a write larger than
            // one MSS leaves with the full segments before it, instead of waiting for the
            // peer's (possibly delayed) ACK of them.
            break;
        }
        let pace = paced_conn(tcb, sh);
        if len > 0 && pace {
            if let Some(at) = pacing_hold(tcb, now) {
                sh.set_timer_lazy(tcb.id, TimerKind::Pace, at);
                break;
            }
        }
        sent_new = true;
        if len % mss != 0 {
            // Linux `tcp_minshall_update`: a segment (or a super-segment's tail) below
            // the MSS.
            tcb.snd_sml = seq + len;
        }
        if send_new(tcb, sh, now, len, out) {
            break;
        }
        if pace {
            paced(tcb, now, len);
        }
    }
    // Linux `tcp_write_xmit`: new data moves the probe timeout (ACKs move it in `tcp_ack`).
    if sent_new {
        schedule_tlp(tcb, sh, now);
    }
}

/// Linux `tcp_minshall_check`: a sub-MSS segment of new data sent earlier is still
/// unacknowledged.
fn small_unacked(tcb: &Tcb) -> bool {
    tcb.snd_sml.gt(tcb.snd_una) && tcb.snd_sml.le(tcb.snd_nxt)
}

/// How far ahead of its departure time new data may leave, at least: the timer wheel's
/// resolution, so that held data waits at most about this long past its time.
const PACING_AHEAD_MIN: Duration = Duration::from_millis(1);

/// Segments that may always leave together ahead of time: a flow that was idle sends its
/// first window at once, as Linux's fq qdisc gives a flow an initial quantum of ten
/// packets; pacing spreads what an ACK batch releases beyond that.
const PACING_QUANTUM_SEGS: u64 = 10;

/// New data of this connection is paced: the stack paces (`TcpConfig::pacing`) or the
/// socket has a maximum pacing rate (`SO_MAX_PACING_RATE`, which turns it on as in Linux).
pub(crate) fn paced_conn(tcb: &Tcb, sh: &Shared) -> bool {
    sh.cfg.pacing || tcb.opts.max_pacing_rate.is_some()
}

/// The pacing rate in bytes per second (Linux `tcp_update_pacing_rate`): the congestion
/// window (or what is in flight, if more) per smoothed RTT, times two in slow start
/// (cwnd below half of ssthresh) and 1.2 after; `None` (no pacing) before the first RTT
/// sample; never above the socket's `SO_MAX_PACING_RATE`, which alone sets the rate until
/// that sample.
pub(crate) fn pacing_rate(tcb: &Tcb) -> Option<u64> {
    let cap = tcb.opts.max_pacing_rate.map(std::num::NonZeroU64::get);
    let Some(srtt) = tcb.rtt.srtt() else {
        return cap.filter(|&c| c < u64::MAX);
    };
    let srtt = srtt.as_nanos().max(1);
    let bytes = u128::from(tcb.cwnd_bytes().max(tcb.in_flight()));
    let pct: u128 = if tcb.ccs.cwnd < tcb.ccs.ssthresh / 2 {
        200
    } else {
        120
    };
    let rate = (bytes * pct * 10_000_000 / srtt).min(u128::from(u64::MAX)) as u64;
    Some(rate.min(cap.unwrap_or(u64::MAX)).max(1))
}

/// Time for `bytes` at `rate` bytes per second.
fn pacing_time(bytes: u64, rate: u64) -> Duration {
    Duration::from_nanos((bytes.saturating_mul(1_000_000_000) / rate).min(1 << 40))
}

/// New data must wait: the time from which it may go, if later than `now` (its departure
/// time less what may leave ahead: [`PACING_QUANTUM_SEGS`] segments, at least
/// [`PACING_AHEAD_MIN`]).
fn pacing_hold(tcb: &Tcb, now: Instant) -> Option<Instant> {
    let due = tcb.pace_at?;
    let rate = pacing_rate(tcb)?;
    let ahead = pacing_time(PACING_QUANTUM_SEGS * u64::from(tcb.mss), rate).max(PACING_AHEAD_MIN);
    let at = due.checked_sub(ahead)?;
    (at > now).then_some(at)
}

/// `len` bytes of new data left at `now`: the next may leave `len / rate` later (no
/// credit builds up while the connection sends nothing).
fn paced(tcb: &mut Tcb, now: Instant, len: u32) {
    let Some(rate) = pacing_rate(tcb) else {
        return;
    };
    let from = tcb.pace_at.map_or(now, |t| t.max(now));
    tcb.pace_at = Some(from + pacing_time(u64::from(len), rate));
}

/// Sends the next `len` unsent bytes at `snd_nxt` (with the FIN when they end the stream
/// after a shutdown, PSH when they empty the send queue), advances `snd_nxt` and keeps the
/// retransmission timer armed; returns whether the FIN went out.
fn send_new(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    len: u32,
    out: &mut Vec<TcpSegmentOut>,
) -> bool {
    let seq = tcb.snd_nxt;
    let is_tail = seq + len == tcb.write_seq();
    let mut flags = TcpFlags::ACK;
    let mut span = len;
    if tcb.shut_wr && is_tail {
        flags |= TcpFlags::FIN;
        span += 1;
    }
    if len > 0 && is_tail {
        flags |= TcpFlags::PSH;
    }
    transmit(tcb, sh, now, seq, len, flags, false, out);
    tcb.snd_nxt = seq + span;
    if tcb.rtt_seq.is_none() && !tcb.ts_ok && tcb.retrans_stamp.is_none() {
        tcb.rtt_seq = Some((tcb.snd_nxt, now));
    }
    if tcb.rtx_kind == RtxKind::Probe {
        tcb.rtx_armed = false;
    }
    arm_rtx(tcb, sh, now);
    flags.fin()
}
