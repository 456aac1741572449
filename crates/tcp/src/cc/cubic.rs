//! CUBIC congestion control, RFC 9438 (Linux: `net/ipv4/tcp_cubic.c`, the default).
//!
//! Window in segments, time in seconds, f64 arithmetic:
//! - W_cubic(t) = C * (t - K)^3 + W_max (RFC 9438 section 4.2, figure 1), with
//!   K = cbrt((W_max - cwnd_epoch) / C) (figure 2), t counted from the start of the
//!   congestion-avoidance epoch;
//! - each ACK grows cwnd by (target - cwnd) / cwnd per ACKed segment, where target is
//!   W_cubic(t + RTT) clamped to [cwnd, 1.5 * cwnd] (section 4.2); like Linux
//!   (`bictcp_update`, `delay_min`) RTT is the minimum RTT seen;
//! - Reno-friendly region: W_est += alpha_cubic * acked / cwnd with
//!   alpha_cubic = 3 (1 - beta) / (1 + beta), switching to 1 once W_est >= cwnd_prior;
//!   when W_cubic(t) < W_est, cwnd = W_est (section 4.3);
//! - on congestion: ssthresh = cwnd * beta_cubic (section 4.6), with fast convergence
//!   (section 4.7); after an RTO the next epoch starts with K = 0 and W_max = cwnd
//!   (section 4.8); a spurious congestion event is undone by restoring the saved state
//!   (section 4.9).
//!
//! The initial slow start ends by HyStart++ (RFC 9406, [`super::hystart`]) when the RTT
//! shows a queue building, or by Linux CUBIC's ACK-train test when the ACKs of one flight
//! show the window filling the path (RFC 9438 section 4.10 leaves the slow-start
//! algorithm open); [`Cubic::set_hystart`] turns both off.

use std::time::{Duration, Instant};

use super::hystart::{HyStart, Phase};
use super::{CaState, CcAlgorithm, CcState, CongestionOps};

/// RFC 9438 section 5: C = 0.4.
pub const C: f64 = 0.4;
/// RFC 9438 section 4.6: beta_cubic = 0.7.
pub const BETA: f64 = 0.7;
/// RFC 9438 section 4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic).
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The state an undo (RFC 9438 section 4.9) restores.
#[derive(Clone, Copy, Debug)]
struct Saved {
    w_max: f64,
    origin: f64,
    k: f64,
    epoch_start: Option<Instant>,
    cwnd_epoch: u32,
    w_est: f64,
    cwnd_prior: u32,
}

/// CUBIC (RFC 9438). Linux: `struct bictcp` + `cubictcp` ops.
#[derive(Clone, Debug)]
pub struct Cubic {
    /// RFC W_max: cwnd just before the last reduction (Linux `last_max_cwnd`).
    w_max: f64,
    /// The plateau the current epoch's curve aims at (Linux `bic_origin_point`).
    origin: f64,
    /// RFC K, seconds (Linux `bic_K`).
    k: f64,
    /// Start of the current congestion-avoidance epoch (Linux `epoch_start`).
    epoch_start: Option<Instant>,
    /// RFC cwnd_epoch: cwnd at the start of the epoch.
    cwnd_epoch: u32,
    /// RFC W_est, the Reno-friendly estimate.
    w_est: f64,
    /// RFC cwnd_prior: cwnd at the last congestion event.
    cwnd_prior: u32,
    /// Minimum RTT seen (Linux `delay_min`).
    min_rtt: Option<Duration>,
    /// Fractional cwnd growth not yet applied.
    acc: f64,
    /// The next epoch follows an RTO (section 4.8).
    after_timeout: bool,
    /// RFC 9438 section 4.7 fast convergence (Linux `fast_convergence` = 1).
    fast_convergence: bool,
    /// cwnd at the last congestion event, for undo (Linux `loss_cwnd`).
    loss_cwnd: u32,
    /// The congestion-avoidance state as last told by the engine.
    ca: CaState,
    saved: Option<Saved>,
    /// Slow-start exit by HyStart++.
    hystart: HyStartSlot,
}

/// Where HyStart++ stands for this connection. Its state is allocated at the first ACK of
/// data in slow start and freed when it is over, so idle connections and connections past
/// their first slow start do not carry it.
#[derive(Clone, Debug)]
enum HyStartSlot {
    /// Turned off.
    Off,
    /// On; no data acknowledged yet.
    Ready,
    Running(Box<HyStart>),
    /// The initial slow start is over.
    Over,
}

impl Default for Cubic {
    fn default() -> Self {
        Cubic::new()
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Cubic {
    /// A fresh CUBIC instance with fast convergence on (Linux defaults).
    pub fn new() -> Self {
        Cubic {
            w_max: 0.0,
            origin: 0.0,
            k: 0.0,
            epoch_start: None,
            cwnd_epoch: 0,
            w_est: 0.0,
            cwnd_prior: 0,
            min_rtt: None,
            acc: 0.0,
            after_timeout: false,
            fast_convergence: true,
            loss_cwnd: 0,
            ca: CaState::Open,
            saved: None,
            hystart: HyStartSlot::Ready,
        }
    }

    /// Turns HyStart++ (RFC 9406) on (the default, like Linux `hystart=1`) or off (slow
    /// start then runs until the first loss or ssthresh).
    pub fn set_hystart(&mut self, on: bool) {
        self.hystart = if on {
            HyStartSlot::Ready
        } else {
            HyStartSlot::Off
        };
    }

    /// The HyStart++ phase (None when it is off).
    pub fn hystart_phase(&self) -> Option<Phase> {
        match &self.hystart {
            HyStartSlot::Off => None,
            HyStartSlot::Ready => Some(Phase::SlowStart),
            HyStartSlot::Running(h) => Some(h.phase()),
            HyStartSlot::Over => Some(Phase::Done),
        }
    }

    /// Ends HyStart++ for this connection (a congestion event, an RTO).
    fn end_hystart(&mut self) {
        if matches!(self.hystart, HyStartSlot::Ready | HyStartSlot::Running(_)) {
            self.hystart = HyStartSlot::Over;
        }
    }

    /// Turns fast convergence (RFC 9438 section 4.7) on or off.
    pub fn set_fast_convergence(&mut self, on: bool) {
        self.fast_convergence = on;
    }

    /// RFC W_max in segments.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// RFC K in seconds for the current epoch (0 before one starts).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// RFC W_est in segments (the Reno-friendly estimate).
    pub fn w_est(&self) -> f64 {
        self.w_est
    }

    /// RFC 9438 figure 1 for the current epoch: W_cubic(t) = C (t - K)^3 + W_max.
    pub fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.origin
    }

    fn start_epoch(&mut self, s: &CcState, now: Instant) {
        self.epoch_start = Some(now);
        self.acc = 0.0;
        self.cwnd_epoch = s.cwnd;
        let cwnd = f64::from(s.cwnd);
        if self.after_timeout {
            // Section 4.8: K = 0, W_max = cwnd at the start of this CA stage.
            self.after_timeout = false;
            self.w_max = cwnd;
            self.k = 0.0;
            self.origin = cwnd;
        } else if cwnd < self.w_max {
            // Figure 2.
            self.k = ((self.w_max - cwnd) / C).cbrt();
            self.origin = self.w_max;
        } else {
            // Above the last plateau (or no congestion yet): probe from here (Linux).
            self.k = 0.0;
            self.origin = cwnd;
        }
        // Section 4.3: W_est starts at cwnd_epoch.
        self.w_est = cwnd;
    }
}

impl CongestionOps for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn algorithm(&self) -> CcAlgorithm {
        CcAlgorithm::Cubic
    }

    /// Linux `bictcp_init`.
    fn init(&mut self, _s: &mut CcState) {
        let fc = self.fast_convergence;
        let min_rtt = self.min_rtt;
        let hystart = !matches!(self.hystart, HyStartSlot::Off);
        *self = Cubic::new();
        self.fast_convergence = fc;
        self.min_rtt = min_rtt;
        self.set_hystart(hystart);
    }

    /// RFC 9438 sections 4.6 and 4.7. Linux `cubictcp_recalc_ssthresh`.
    fn ssthresh(&mut self, s: &CcState) -> u32 {
        self.end_hystart();
        if matches!(self.ca, CaState::Open | CaState::Disorder) || self.saved.is_none() {
            self.saved = Some(Saved {
                w_max: self.w_max,
                origin: self.origin,
                k: self.k,
                epoch_start: self.epoch_start,
                cwnd_epoch: self.cwnd_epoch,
                w_est: self.w_est,
                cwnd_prior: self.cwnd_prior,
            });
            self.loss_cwnd = s.cwnd;
        }
        let cwnd = f64::from(s.cwnd);
        self.w_max = if self.fast_convergence && cwnd < self.w_max {
            // Section 4.7: release bandwidth to newer flows.
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = s.cwnd;
        self.epoch_start = None;
        ((cwnd * BETA) as u32).max(2)
    }

    /// RFC 9438 section 4.2-4.5 (Linux `cubictcp_cong_avoid` + `bictcp_update`).
    fn cong_avoid(&mut self, s: &mut CcState, acked: u32, now: Instant) {
        if s.app_limited {
            return;
        }
        let mut acked = acked;
        if s.in_slow_start() {
            if matches!(self.hystart, HyStartSlot::Ready) {
                self.hystart = HyStartSlot::Running(Box::default());
            }
            acked = match &mut self.hystart {
                HyStartSlot::Running(h) => {
                    let left = h.slow_start(s, acked, now);
                    if h.phase() == Phase::Done {
                        self.hystart = HyStartSlot::Over;
                    }
                    left
                }
                _ => s.slow_start(acked),
            };
            if acked == 0 {
                return;
            }
        }
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                self.start_epoch(s, now);
                now
            }
        };
        let cwnd = f64::from(s.cwnd.max(1));
        let t = secs(now.saturating_duration_since(epoch));
        let rtt = self.min_rtt.map_or(0.0, secs);
        // Section 4.2: target = W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
        let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
        // Section 4.3: Reno-friendly estimate.
        let alpha = if self.w_est >= f64::from(self.cwnd_prior) {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * f64::from(acked) / cwnd;
        if self.w_cubic(t) < self.w_est {
            // Reno-friendly region: cwnd = W_est.
            let w = self.w_est.floor();
            if w > cwnd {
                s.cwnd = (w.min(f64::from(s.cwnd_clamp))) as u32;
                self.acc = 0.0;
            }
            return;
        }
        // Sections 4.4 / 4.5: (target - cwnd) / cwnd per ACKed segment.
        self.acc += f64::from(acked) * (target - cwnd) / cwnd;
        if self.acc >= 1.0 {
            let inc = self.acc.floor();
            self.acc -= inc;
            s.cwnd = s.cwnd.saturating_add(inc as u32).min(s.cwnd_clamp);
        }
    }

    /// Linux `bictcp_acked`: track the minimum RTT (`delay_min`).
    fn on_rtt_sample(&mut self, s: &mut CcState, rtt: Duration, _now: Instant) {
        if rtt.is_zero() {
            return;
        }
        if let HyStartSlot::Running(h) = &mut self.hystart {
            h.on_rtt_sample(s, rtt);
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// Linux `cubictcp_state`; RFC 9438 section 4.8 on entering Loss (RTO).
    fn set_state(&mut self, _s: &mut CcState, new: CaState) {
        if new == CaState::Loss && self.ca != CaState::Loss {
            self.end_hystart();
            self.after_timeout = true;
            self.epoch_start = None;
        }
        self.ca = new;
    }

    /// RFC 9438 section 4.9: restore W_max, K, the epoch and W_est saved at the
    /// (spurious) congestion event; the window goes back to what it was.
    fn undo_cwnd(&mut self, s: &CcState) -> u32 {
        if let Some(sv) = self.saved.take() {
            self.w_max = sv.w_max;
            self.origin = sv.origin;
            self.k = sv.k;
            self.epoch_start = sv.epoch_start;
            self.cwnd_epoch = sv.cwnd_epoch;
            self.w_est = sv.w_est;
            self.cwnd_prior = sv.cwnd_prior;
            self.after_timeout = false;
        }
        s.cwnd.max(self.loss_cwnd).max(s.prior_cwnd)
    }

    /// Linux `cubictcp_cwnd_event(CA_EVENT_TX_START)`: an idle period does not count as
    /// epoch time, so the curve does not leap after the application was quiet.
    fn on_tx_start(&mut self, idle: Duration) {
        if let Some(e) = self.epoch_start {
            self.epoch_start = e.checked_add(idle).or(Some(e));
        }
    }
}
