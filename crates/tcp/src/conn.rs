//! Connection life-cycle helpers shared by input, timers and user calls (Linux:
//! `tcp_set_state`, `tcp_done`, `tcp_reset`, `tcp_time_wait`, `tcp_finish_connect`).

use std::time::Instant;

use crate::ctx::{Shared, TimerKind};
use crate::error::TcpError;
use crate::output::cancel_rtx;
use crate::state::TcpState;
use crate::tcb::Tcb;
use crate::wire::TcpRepr;

/// Linux `tcp_set_state`: moves to `new`, keeping the CurrEstab gauge right.
pub(crate) fn set_state(tcb: &mut Tcb, sh: &mut Shared, new: TcpState) {
    let old = tcb.state;
    if old == new {
        return;
    }
    if old.counts_established() && !new.counts_established() {
        sh.stats.curr_estab = sh.stats.curr_estab.saturating_sub(1);
    } else if !old.counts_established() && new.counts_established() {
        sh.stats.curr_estab += 1;
    }
    if old == TcpState::TimeWait {
        sh.tw_count = sh.tw_count.saturating_sub(1);
    }
    if new == TcpState::TimeWait {
        sh.tw_count += 1;
    }
    tracing::trace!(?old, ?new, local = %tcb.local, remote = %tcb.remote, "tcp state");
    tcb.state = new;
    sh.wake(tcb.id, &mut tcb.evt);
}

/// Linux `tcp_done`: the connection is over (CLOSED); timers stop; `err` becomes the
/// pending socket error. The caller unhashes (and frees orphans).
pub(crate) fn tcp_done(tcb: &mut Tcb, sh: &mut Shared, err: Option<TcpError>) {
    if matches!(tcb.state, TcpState::SynSent | TcpState::SynReceived) {
        sh.stats.attempt_fails += 1;
    }
    set_state(tcb, sh, TcpState::Closed);
    if err.is_some() {
        tcb.error = err;
    }
    sh.clear_all_timers(tcb.id);
    tcb.rtx_armed = false;
    tcb.delack_armed = false;
    // Unsent data can never go now.
    tcb.snd_buf = Default::default();
    tcb.ooo = Vec::new();
    tcb.ooo_bytes = 0;
    tcb.sync_mem(sh);
    sh.wake(tcb.id, &mut tcb.evt);
}

/// Linux `tcp_reset`: an acceptable RST arrived (RFC 9293 3.10.7.4 second check).
pub(crate) fn tcp_reset(tcb: &mut Tcb, sh: &mut Shared) {
    let err = match tcb.state {
        TcpState::SynSent | TcpState::SynReceived => TcpError::ConnectionRefused,
        TcpState::CloseWait => TcpError::BrokenPipe,
        TcpState::Closing | TcpState::LastAck | TcpState::TimeWait => {
            tcp_done(tcb, sh, None);
            return;
        }
        _ => TcpError::ConnectionReset,
    };
    if matches!(tcb.state, TcpState::Established | TcpState::CloseWait) {
        sh.stats.estab_resets += 1;
    }
    // Data already received stays readable; a reset peer sends no more.
    tcp_done(tcb, sh, Some(err));
}

/// Linux `tcp_time_wait`: enter TIME_WAIT for 2*MSL, dropping buffers (a light socket).
/// Returns false when the TIME_WAIT table is full and the connection was closed instead.
pub(crate) fn enter_time_wait(tcb: &mut Tcb, sh: &mut Shared, now: Instant) -> bool {
    cancel_rtx(tcb, sh);
    if tcb.delack_armed {
        tcb.delack_armed = false;
        sh.clear_timer(tcb.id, TimerKind::DelAck);
    }
    if sh.tw_count >= sh.cfg.max_tw_buckets {
        sh.stats.tcp_time_wait_overflow += 1;
        tcp_done(tcb, sh, None);
        return false;
    }
    set_state(tcb, sh, TcpState::TimeWait);
    tcb.snd_buf = Default::default();
    tcb.ooo = Vec::new();
    tcb.ooo_bytes = 0;
    if tcb.orphan {
        tcb.rcv_buf = Default::default();
    }
    tcb.sacked = Vec::new();
    tcb.sacked_bytes = 0;
    tcb.sync_mem(sh);
    sh.set_timer(tcb.id, TimerKind::Keepalive, now + sh.cfg.time_wait);
    true
}

/// Negotiates options from the peer's SYN or SYN-ACK (RFC 7323 sections 2.2, 3.2;
/// RFC 2018 section 2; MSS RFC 9293 3.7.1). `offered` says what our side offered.
pub(crate) fn apply_syn_options(tcb: &mut Tcb, sh: &mut Shared, now: Instant, seg: &TcpRepr) {
    let o = &seg.options;
    tcb.peer_mss = o.mss.unwrap_or(crate::tcb::DEFAULT_MSS).max(64);
    if sh.cfg.window_scaling {
        if let Some(ws) = o.wscale {
            tcb.ws_ok = true;
            tcb.snd_wscale = ws.min(14);
        }
    }
    if !tcb.ws_ok {
        tcb.snd_wscale = 0;
        tcb.rcv_wscale = 0;
    }
    tcb.sack_ok = sh.cfg.sack && o.sack_permitted;
    if sh.cfg.timestamps {
        if let Some((val, _)) = o.timestamp {
            tcb.ts_ok = true;
            tcb.ts_recent = val;
            tcb.ts_recent_stamp = Some(now);
        }
    }
    set_mss(tcb);
}

/// Recomputes the sending MSS from the peer's MSS, the route MTU and option overhead
/// (Linux `tcp_sync_mss`).
pub(crate) fn set_mss(tcb: &mut Tcb) {
    let path = tcb.route_mtu.saturating_sub(40).max(48) as u32;
    let mut mss = (tcb.peer_mss as u32).min(path);
    if tcb.ts_ok {
        mss = mss.saturating_sub(12);
    }
    tcb.mss = mss.max(36);
    tcb.ccs.mss = tcb.mss;
}

/// Wakes writers when at least a third of the send buffer is free (Linux
/// `sk_stream_write_space` / `tcp_check_space`).
pub(crate) fn check_write_space(tcb: &mut Tcb, sh: &mut Shared) {
    if tcb.write_blocked && tcb.snd_buf.len() <= tcb.sndbuf_cap * 2 / 3 {
        tcb.write_blocked = false;
        sh.wake(tcb.id, &mut tcb.evt);
    }
}

/// Grows the send buffer with the congestion window (Linux `tcp_sndbuf_expand`).
pub(crate) fn sndbuf_expand(tcb: &mut Tcb, sh: &Shared) {
    // Linux `tcp_should_expand_sndbuf`: no growth under memory pressure.
    if tcb.opts.sndbuf_locked || sh.under_pressure() {
        return;
    }
    let want = (tcb.ccs.cwnd.max(tcb.snd_wnd / tcb.mss.max(1)) as usize)
        .saturating_mul(tcb.mss as usize)
        .saturating_mul(2);
    if want > tcb.sndbuf_cap {
        tcb.sndbuf_cap = want.min(sh.cfg.wmem.2);
    }
}
