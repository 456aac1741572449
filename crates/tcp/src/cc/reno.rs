//! Reno / NewReno congestion avoidance (RFC 5681 section 3.1; Linux: `tcp_reno_*` in
//! `net/ipv4/tcp_cong.c`, the `tcp_reno` ops). Loss-recovery mechanics (fast retransmit,
//! NewReno partial ACKs, RFC 6582) live in the engine; this module only decides the window.

use std::time::Instant;

use super::{CaState, CcAlgorithm, CcState, CongestionOps};

/// Reno: slow start below ssthresh, then one segment per window of ACKed segments;
/// halve on loss. Linux: `struct tcp_congestion_ops tcp_reno`.
#[derive(Clone, Debug, Default)]
pub struct Reno {
    /// cwnd when the last reduction started, for undo (Linux `tp->prior_cwnd`).
    loss_cwnd: u32,
}

impl Reno {
    /// A fresh Reno instance.
    pub fn new() -> Self {
        Reno::default()
    }
}

impl CongestionOps for Reno {
    fn name(&self) -> &'static str {
        "reno"
    }

    fn algorithm(&self) -> CcAlgorithm {
        CcAlgorithm::Reno
    }

    fn init(&mut self, _s: &mut CcState) {
        self.loss_cwnd = 0;
    }

    /// RFC 5681 section 3.1 equation (4): `ssthresh = max(FlightSize / 2, 2 * SMSS)`,
    /// in segments. Linux `tcp_reno_ssthresh` uses cwnd; we use the flight size when the
    /// engine provides it (`in_flight > 0`), else cwnd.
    fn ssthresh(&mut self, s: &CcState) -> u32 {
        self.loss_cwnd = s.cwnd;
        let flight = if s.in_flight > 0 { s.in_flight } else { s.cwnd };
        (flight / 2).max(2)
    }

    /// RFC 5681 section 3.1: slow start (cwnd += acked, at most to ssthresh), then
    /// congestion avoidance (cwnd += 1 per cwnd ACKed segments). Linux `tcp_reno_cong_avoid`.
    fn cong_avoid(&mut self, s: &mut CcState, acked: u32, _now: Instant) {
        if s.app_limited {
            // Linux `tcp_is_cwnd_limited`: do not grow a window the sender does not use.
            return;
        }
        let mut acked = acked;
        if s.in_slow_start() {
            acked = s.slow_start(acked);
            if acked == 0 {
                return;
            }
        }
        let w = s.cwnd;
        s.cong_avoid_ai(w, acked);
    }

    fn set_state(&mut self, _s: &mut CcState, _new: CaState) {}

    /// Linux `tcp_reno_undo_cwnd`: `max(cwnd, prior_cwnd)`.
    fn undo_cwnd(&mut self, s: &CcState) -> u32 {
        s.cwnd.max(self.loss_cwnd).max(s.prior_cwnd)
    }
}
