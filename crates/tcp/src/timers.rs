//! Timer handlers (Linux: `tcp_retransmit_timer`, `tcp_probe_timer`,
//! `tcp_delack_timer_handler`, `tcp_keepalive_timer`, `tcp_time_wait` expiry,
//! `reqsk_timer_handler`). All timers live in one wheel keyed by (socket, kind), so
//! `poll_timeout` is a single lookup.

use std::time::Instant;

use crate::conn::tcp_done;
use crate::ctx::TimerKind;
use crate::error::TcpError;
use crate::output::{retransmit_at, send_syn, transmit, write_xmit, TcpSegmentOut};
use crate::recovery::enter_loss;
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::tcb::{CaState, RtxKind, Tcb};
use crate::wire::TcpFlags;

impl TcpLayer {
    /// The earliest instant at which [`TcpLayer::on_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sh.timers.next_deadline()
    }

    /// Runs every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<TcpSegmentOut>) {
        self.sh.tick(now);
        let mut due = Vec::new();
        self.sh.timers.expire(now, &mut due);
        for (id, kind) in due {
            match self.socks.get(id) {
                Some(Sock::Req(_)) => self.req_timer(now, id, out),
                Some(Sock::Conn(_)) => self.conn_timer(now, id, kind, out),
                // TIME_WAIT's end (its only timer).
                Some(Sock::Tw(_)) if kind == TimerKind::Keepalive => {
                    self.keepalive_timer(now, id, out)
                }
                _ => {}
            }
        }
    }

    fn conn_timer(
        &mut self,
        now: Instant,
        id: SockId,
        kind: TimerKind,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        match kind {
            TimerKind::Rtx => {
                let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
                    return;
                };
                // Disarmed since it was set (the wheel entry is left in place), or
                // restarted for later: nothing now, or wait for the real deadline.
                if !tcb.rtx_armed {
                    return;
                }
                if now < tcb.rtx_deadline {
                    self.sh.set_timer(id, TimerKind::Rtx, tcb.rtx_deadline);
                    return;
                }
                // It fires now; each handler re-arms what it still needs.
                tcb.rtx_armed = false;
                match tcb.rtx_kind {
                    RtxKind::Probe => self.probe_timer(now, id, out),
                    RtxKind::Tlp => self.loss_probe_timer(now, id, out),
                    RtxKind::Reo => self.reo_timer(now, id, out),
                    RtxKind::Retrans => self.retransmit_timer(now, id, out),
                }
            }
            TimerKind::DelAck => {
                if let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) {
                    if !tcb.delack_armed {
                        return;
                    }
                    if now < tcb.delack_deadline {
                        self.sh
                            .set_timer(id, TimerKind::DelAck, tcb.delack_deadline);
                        return;
                    }
                    tcb.delack_armed = false;
                    if tcb.ack_pending && tcb.state != TcpState::Closed {
                        self.sh.stats.delayed_acks += 1;
                        // Linux: a delayed ACK that fired suggests an interactive flow;
                        // leave pingpong-free quick-ack mode alone and just ACK.
                        crate::output::send_ack(tcb, &mut self.sh, now, out);
                    }
                }
            }
            TimerKind::Keepalive => self.keepalive_timer(now, id, out),
            TimerKind::Pace => {
                // Held new data may leave now (what is still early re-arms the timer).
                if let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) {
                    write_xmit(tcb, &mut self.sh, now, out);
                }
            }
        }
    }

    /// The tail loss probe timer (Linux `tcp_send_loss_probe` from `tcp_write_timer`):
    /// probe if the conditions still hold, otherwise fall back to the RTO.
    fn loss_probe_timer(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        if nothing_in_flight(tcb) {
            return;
        }
        let sh = &mut self.sh;
        if tcb.ca != CaState::Open || tcb.tlp_high_seq.is_some() {
            crate::output::rearm_rtx(tcb, sh, now);
            return;
        }
        crate::output::send_loss_probe(tcb, sh, now, out);
    }

    /// RACK's reordering timer (Linux `tcp_rack_reo_timeout`): the segments RACK was
    /// waiting on are looked at again; those whose time ran out are lost (fast recovery
    /// starts if it had not) and go out; the RTO is armed again behind them.
    fn reo_timer(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        if nothing_in_flight(tcb) {
            return;
        }
        let sh = &mut self.sh;
        crate::recovery::rack_detect(tcb, sh, now);
        write_xmit(tcb, sh, now, out);
        if !tcb.rtx_armed {
            crate::output::rearm_rtx(tcb, sh, now);
        }
        tcb.sync_mem(sh);
    }

    /// Linux `tcp_retransmit_timer` (RFC 6298 section 5: back off, retransmit the
    /// earliest unacknowledged segment; give up after `retries2` / `syn_retries`).
    fn retransmit_timer(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        if nothing_in_flight(tcb) {
            return;
        }
        let sh = &mut self.sh;
        let syn_phase = matches!(tcb.state, TcpState::SynSent | TcpState::SynReceived);
        let max = if syn_phase {
            sh.cfg.syn_retries
        } else if tcb.orphan {
            sh.cfg.orphan_retries.max(1)
        } else {
            sh.cfg.retries2
        };
        if tcb.snd_wnd == 0 && !tcb.orphan && !syn_phase {
            // Linux: the receiver shrank its window; our retransmissions are window
            // probes and do not count against retries2 while the peer keeps answering.
            if now.saturating_duration_since(tcb.last_rcv) > sh.cfg.rto_max {
                sh.stats.tcp_abort_on_timeout += 1;
                tcp_done(tcb, sh, Some(TcpError::TimedOut));
                self.conn_closed(id);
                return;
            }
            tcb.rtt.backoff();
            enter_loss(tcb, sh, now);
            let (una, mss) = (tcb.snd_una, crate::output::mss_now(tcb));
            let span = retransmit_at(tcb, sh, now, una, mss, out);
            tcb.rtx_next = una + span;
            crate::output::rearm_rtx(tcb, sh, now);
            return;
        }
        if tcb.retransmits >= max {
            if !syn_phase {
                sh.stats.tcp_abort_on_timeout += 1;
            }
            let err = tcb.soft_error.unwrap_or(TcpError::TimedOut);
            let err = if syn_phase { err } else { TcpError::TimedOut };
            tcp_done(tcb, sh, Some(err));
            self.conn_closed(id);
            return;
        }
        tcb.retransmits += 1;
        tcb.rtt.backoff();
        if syn_phase {
            sh.stats.tcp_timeouts += 1;
            send_syn(tcb, sh, now, true, out);
        } else {
            enter_loss(tcb, sh, now);
            let mss = crate::output::mss_now(tcb);
            let una = tcb.snd_una;
            let span = retransmit_at(tcb, sh, now, una, mss, out);
            tcb.rtx_next = una + span;
            write_xmit(tcb, sh, now, out);
        }
        crate::output::rearm_rtx(tcb, sh, now);
        tcb.sync_mem(sh);
    }

    /// Linux `tcp_probe_timer` + `tcp_send_probe0`: zero-window probe (RFC 9293 3.8.6.1).
    fn probe_timer(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        let sh = &mut self.sh;
        let unsent = tcb.write_seq().gt(tcb.snd_nxt) || (tcb.shut_wr && !tcb.fin_sent());
        if tcb.snd_una != tcb.snd_nxt || !unsent || tcb.state == TcpState::Closed {
            return;
        }
        if tcb.snd_wnd > 0 {
            // Linux tcp_write_wakeup: the window opened a little; send what fits even if
            // sender SWS avoidance held it back.
            write_xmit(tcb, sh, now, out);
            if tcb.snd_una == tcb.snd_nxt {
                let seq = tcb.snd_nxt;
                let unsent = tcb.write_seq().since(seq);
                let room = (tcb.snd_una + tcb.snd_wnd).since(seq);
                let len = unsent.min(room).min(crate::output::mss_now(tcb));
                if len > 0 {
                    transmit(
                        tcb,
                        sh,
                        now,
                        seq,
                        len,
                        TcpFlags::ACK | TcpFlags::PSH,
                        false,
                        out,
                    );
                    tcb.snd_nxt = seq + len;
                    crate::output::arm_rtx(tcb, sh, now);
                    return;
                }
            }
            if !tcb.rtx_armed {
                crate::output::arm_probe(tcb, sh, now);
            }
            return;
        }
        let max = if tcb.orphan {
            sh.cfg.orphan_retries.max(1)
        } else {
            sh.cfg.retries2
        };
        if tcb.probes_out >= max {
            sh.stats.tcp_abort_on_timeout += 1;
            tcp_done(tcb, sh, Some(TcpError::TimedOut));
            self.conn_closed(id);
            return;
        }
        // Linux tcp_xmit_probe_skb: an old sequence number makes the peer ACK with its window.
        let seq = SeqNum(tcb.snd_una.0.wrapping_sub(1));
        transmit(tcb, sh, now, seq, 0, TcpFlags::ACK, false, out);
        sh.stats.tcp_win_probe += 1;
        tcb.probes_out += 1;
        let shift = tcb.probes_out.min(16);
        let when = (tcb.rtt.rto() * (1u32 << shift)).min(sh.cfg.rto_max);
        tcb.rtx_kind = RtxKind::Probe;
        tcb.rtx_armed = true;
        tcb.rtx_deadline = now + when;
        sh.set_timer(id, TimerKind::Rtx, tcb.rtx_deadline);
    }

    /// Linux `tcp_keepalive_timer`, which also ends TIME_WAIT and orphaned FIN_WAIT_2.
    fn keepalive_timer(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        if let Some(Sock::Tw(_)) = self.socks.get(id) {
            self.sh.stats.tw += 1;
            self.free(id);
            return;
        }
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        let sh = &mut self.sh;
        match tcb.state {
            TcpState::TimeWait => {
                sh.stats.tw += 1;
                tcp_done(tcb, sh, None);
                self.conn_closed(id);
                return;
            }
            TcpState::FinWait2 if tcb.orphan => {
                tcp_done(tcb, sh, None);
                self.conn_closed(id);
                return;
            }
            TcpState::Established
            | TcpState::CloseWait
            | TcpState::FinWait1
            | TcpState::FinWait2 => {}
            _ => return,
        }
        let Some(ka) = tcb.opts.keepalive else {
            return;
        };
        if tcb.snd_una != tcb.snd_nxt || tcb.write_seq().gt(tcb.snd_nxt) {
            // Data in flight: the retransmission timer watches the peer.
            sh.set_timer(id, TimerKind::Keepalive, now + ka.idle);
            return;
        }
        let idle = now.saturating_duration_since(tcb.last_rcv);
        if idle >= ka.idle {
            if tcb.ka_probes >= ka.count {
                sh.stats.tcp_abort_on_timeout += 1;
                crate::input::send_rst(sh, tcb, tcb.snd_nxt, out);
                tcp_done(tcb, sh, Some(TcpError::TimedOut));
                self.conn_closed(id);
                return;
            }
            let seq = SeqNum(tcb.snd_una.0.wrapping_sub(1));
            transmit(tcb, sh, now, seq, 0, TcpFlags::ACK, false, out);
            sh.stats.tcp_keep_alive += 1;
            tcb.ka_probes += 1;
            sh.set_timer(id, TimerKind::Keepalive, now + ka.interval);
        } else {
            sh.set_timer(id, TimerKind::Keepalive, tcb.last_rcv + ka.idle);
        }
    }
}

/// Nothing for a retransmission-slot timer (RTO, tail loss probe, RACK's reordering timer)
/// to act on: everything sent is acknowledged, or the connection is closed or in TIME_WAIT.
fn nothing_in_flight(tcb: &Tcb) -> bool {
    tcb.snd_una == tcb.snd_nxt || matches!(tcb.state, TcpState::Closed | TcpState::TimeWait)
}
