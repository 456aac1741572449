//! HyStart++ (RFC 9406): leaves the initial slow start when the round-trip time starts to
//! grow (a queue is building at the bottleneck), before the overshoot that ends a plain
//! slow start with a burst of losses. Linux CUBIC has the same idea as "HyStart"
//! (`hystart_delay_min` and friends in `tcp_cubic.c`).
//!
//! Rounds are counted in sequence space: a round ends when an ACK covers what was sent
//! when it began (RFC 9406 section 4.2, `windowEnd`). In each round the minimum of the
//! first RTT samples is compared with the previous round's; a rise of at least
//! `clamp(lastRoundMinRTT / 8, 4 ms, 16 ms)` ends slow start and starts Conservative Slow
//! Start (CSS), which grows cwnd at a quarter of the slow-start rate for up to five rounds:
//! if the RTT falls back below the baseline the rise was noise and slow start resumes;
//! after five rounds ssthresh is set to cwnd and congestion avoidance begins.
//!
//! Beside the RFC's delay test, an ACK-train test (Linux CUBIC's `HYSTART_ACK_TRAIN`) ends
//! slow start, standard or conservative, at once (ssthresh = cwnd): when the ACKs of one
//! flight keep arriving close together (at most [`ACK_DELTA`] apart) for longer than half
//! the minimum RTT (a whole one when the sender paces, since pacing itself spreads a
//! flight over half an RTT), the bottleneck was busy for that long, so the window already
//! about fills the path and the next doubling would only build a queue. Round minima see that queue late: while
//! slow start's flights still cross the bottleneck as separate trains the queue empties
//! between them, and the minimum of a round stays at the base RTT until cwnd is several
//! times the path's capacity.
//!
//! Only the initial slow start uses it (RFC 9406 section 4.3: after a congestion event or
//! an RTO, slow start is the standard one). Unlike the RFC's non-paced setting, growth per
//! ACK is not capped at `L = 8` segments: receivers that acknowledge large batches at once
//! (GRO, ACK batching) would slow every slow start down; Linux does not cap either.

use std::time::{Duration, Instant};

use super::CcState;
use crate::seq::SeqNum;

/// RFC 9406 section 4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;

/// ACKs at most this far apart belong to one train (Linux `hystart_ack_delta_us`).
pub const ACK_DELTA: Duration = Duration::from_millis(2);
/// Below this cwnd (segments) the ACK-train test does not run (Linux
/// `hystart_low_window`).
const TRAIN_LOW_WINDOW: u32 = 16;
/// The most a train's threshold allows for ACKs held back by the receiver or the device
/// (Linux `hystart_ack_delay`: four 64 KiB bursts at the pacing rate, at most 1 ms).
const TRAIN_ACK_DELAY_MAX: Duration = Duration::from_millis(1);

/// Where the slow start of a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start, watching the RTT.
    SlowStart,
    /// Conservative slow start since the RTT rose to `baseline`; `rounds` completed.
    Css { baseline: Duration, rounds: u32 },
    /// HyStart++ is over (it ended slow start, or a congestion event did).
    Done,
}

/// The HyStart++ state of one connection.
#[derive(Clone, Debug)]
pub struct HyStart {
    phase: Phase,
    /// `windowEnd`: the round ends when SND.UNA reaches it (None: no round started).
    window_end: Option<u32>,
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    samples: u32,
    /// Acked segments not yet turned into CSS growth.
    css_acc: u32,
    /// The smallest RTT sample so far (Linux `delay_min`).
    delay_min: Option<Duration>,
    /// When the current flight's ACK train began and its last ACK so far (None once a gap
    /// broke it).
    train: Option<(Instant, Instant)>,
    /// A flight for the ACK-train test begins with the first ACK above this (SND.NXT when
    /// the last one began; Linux `end_seq`). The RFC's rounds begin with the ACK that
    /// covers all data sent before the last round began, which is the *last* ACK of a
    /// flight at best and drifts into the flights as they grow.
    train_end: Option<u32>,
}

impl Default for HyStart {
    fn default() -> Self {
        HyStart::new()
    }
}

impl HyStart {
    /// Before the first round.
    pub fn new() -> Self {
        HyStart {
            phase: Phase::SlowStart,
            window_end: None,
            last_round_min_rtt: None,
            current_round_min_rtt: None,
            samples: 0,
            css_acc: 0,
            delay_min: None,
            train: None,
            train_end: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// An RTT sample (RFC 9406: `currentRoundMinRTT`, `rttSampleCount`).
    pub fn on_rtt_sample(&mut self, s: &CcState, rtt: Duration) {
        if self.phase == Phase::Done || !s.in_slow_start() || rtt.is_zero() {
            return;
        }
        self.current_round_min_rtt = Some(self.current_round_min_rtt.map_or(rtt, |m| m.min(rtt)));
        self.samples = self.samples.saturating_add(1);
        self.delay_min = Some(self.delay_min.map_or(rtt, |m| m.min(rtt)));
    }

    /// Slow-start growth for an ACK of `acked` segments (the caller checked
    /// `in_slow_start`) arriving at `now`. Returns the segments left over for congestion
    /// avoidance, like [`CcState::slow_start`].
    pub fn slow_start(&mut self, s: &mut CcState, acked: u32, now: Instant) -> u32 {
        if self.phase == Phase::Done {
            return s.slow_start(acked);
        }
        if self
            .window_end
            .is_none_or(|end| SeqNum(s.snd_una).ge(SeqNum(end)))
        {
            self.new_round(s);
            if self.phase == Phase::Done {
                // CSS ran its rounds: congestion avoidance from here (ssthresh = cwnd).
                return acked;
            }
        }
        if self
            .train_end
            .is_none_or(|end| SeqNum(s.snd_una).gt(SeqNum(end)))
        {
            // The first ACK of data sent since the last train began: a new flight.
            self.train_end = Some(s.snd_nxt);
            self.train = Some((now, now));
        } else if self.ack_train_full(s, now) {
            s.ssthresh = s.cwnd.max(2);
            self.phase = Phase::Done;
            return acked;
        }
        let left = match self.phase {
            Phase::Css { .. } => {
                self.css_acc = self.css_acc.saturating_add(acked);
                let inc = self.css_acc / CSS_GROWTH_DIVISOR;
                self.css_acc -= inc * CSS_GROWTH_DIVISOR;
                s.cwnd = s.cwnd.saturating_add(inc).min(s.cwnd_clamp);
                0
            }
            _ => s.slow_start(acked),
        };
        self.check_rtt();
        left
    }

    /// The ACK-train test for an ACK at `now` within a flight (Linux `hystart_update` with
    /// `HYSTART_ACK_TRAIN`): true once the flight's train has lasted longer than half the
    /// minimum RTT (the whole of it when paced) plus the allowance for delayed ACKs.
    fn ack_train_full(&mut self, s: &CcState, now: Instant) -> bool {
        if self.phase == Phase::Done || s.cwnd < TRAIN_LOW_WINDOW {
            return false;
        }
        let (Some((start, last)), Some(delay_min)) = (self.train, self.delay_min) else {
            return false;
        };
        if now.saturating_duration_since(last) > ACK_DELTA {
            self.train = None;
            return false;
        }
        self.train = Some((start, now));
        let ack_delay = if s.pacing_rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(4 * 65_536 * 1_000_000_000 / s.pacing_rate.max(1))
                .min(TRAIN_ACK_DELAY_MAX)
        };
        let mut threshold = delay_min + ack_delay;
        if !s.paced {
            threshold /= 2;
        }
        now.saturating_duration_since(start) > threshold
    }

    /// RFC 9406 section 4.2: at the start of each round, the last round's minimum
    /// becomes the reference; in CSS, a completed round counts towards `CSS_ROUNDS`.
    fn new_round(&mut self, s: &mut CcState) {
        if let Phase::Css { baseline, rounds } = self.phase {
            let rounds = rounds + 1;
            if rounds >= CSS_ROUNDS {
                s.ssthresh = s.cwnd.max(2);
                self.phase = Phase::Done;
                return;
            }
            self.phase = Phase::Css { baseline, rounds };
        }
        self.last_round_min_rtt = self.current_round_min_rtt.take();
        self.samples = 0;
        self.window_end = Some(s.snd_nxt);
    }

    /// Enters CSS when this round's RTT rose enough over the last round's; leaves it when
    /// the RTT fell back below the baseline.
    fn check_rtt(&mut self) {
        if self.samples < N_RTT_SAMPLE {
            return;
        }
        let Some(current) = self.current_round_min_rtt else {
            return;
        };
        match self.phase {
            Phase::SlowStart => {
                let Some(last) = self.last_round_min_rtt else {
                    return;
                };
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + thresh {
                    self.phase = Phase::Css {
                        baseline: current,
                        rounds: 0,
                    };
                    self.css_acc = 0;
                }
            }
            Phase::Css { baseline, .. } => {
                if current < baseline {
                    // The rise was not a queue: back to slow start.
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }
}
