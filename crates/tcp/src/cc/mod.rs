//! Pluggable congestion control (Linux: `struct tcp_congestion_ops`,
//! `net/ipv4/tcp_cong.c`). The engine owns the loss-recovery state machine and calls the
//! algorithm at the same points Linux does: `init` at connection setup, `cong_avoid` for
//! each ACK that advances `snd_una` outside recovery, `ssthresh` when entering Recovery
//! or Loss, `set_state` on every CA-state change, `undo_cwnd` when a reduction proves
//! spurious, `on_rtt_sample` for each RTT measurement (Linux `pkts_acked`).
//!
//! Windows are counted in segments, like Linux `snd_cwnd`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub mod cubic;
pub mod hystart;
pub mod reno;

#[cfg(test)]
mod tests;

pub use cubic::Cubic;
pub use reno::Reno;

/// "No ssthresh yet" (Linux `TCP_INFINITE_SSTHRESH`).
pub const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

/// The congestion-control variables an algorithm reads and writes (the `snd_cwnd*`
/// fields of Linux `struct tcp_sock`). The engine keeps `mss`, `in_flight` and
/// `app_limited` current; algorithms change `cwnd` and `cwnd_cnt` in `cong_avoid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcState {
    /// Congestion window in segments (Linux `snd_cwnd`).
    pub cwnd: u32,
    /// Slow-start threshold in segments (Linux `snd_ssthresh`); [`INFINITE_SSTHRESH`]
    /// until the first congestion event.
    pub ssthresh: u32,
    /// ACKed segments counted towards the next additive increase (Linux `snd_cwnd_cnt`).
    pub cwnd_cnt: u32,
    /// cwnd when the current window reduction began (Linux `prior_cwnd`, set by
    /// `tcp_init_cwnd_reduction`); 0 when the engine does not track it. Undo never goes
    /// below it.
    pub prior_cwnd: u32,
    /// Upper bound for cwnd (Linux `snd_cwnd_clamp`).
    pub cwnd_clamp: u32,
    /// Sender MSS in bytes (Linux `mss_cache`).
    pub mss: u32,
    /// Segments in flight (Linux `tcp_packets_in_flight`); 0 = unknown (cwnd is used).
    pub in_flight: u32,
    /// The sender is not using its window (Linux `!tcp_is_cwnd_limited`); growth pauses.
    pub app_limited: bool,
    /// SND.UNA and SND.NXT as of the ACK being processed (raw sequence numbers), for
    /// algorithms that count rounds (HyStart++).
    pub snd_una: u32,
    pub snd_nxt: u32,
    /// The pacing rate in bytes per second as Linux computes it (`sk_pacing_rate`: twice
    /// cwnd per SRTT in slow start), whether or not new data is paced; 0 before an RTT
    /// sample.
    pub pacing_rate: u64,
    /// New data is paced at that rate (`TcpConfig::pacing` or `SO_MAX_PACING_RATE`).
    pub paced: bool,
}

impl CcState {
    /// Initial state: `initial_cwnd` segments (RFC 6928: 10; Linux `TCP_INIT_CWND`),
    /// infinite ssthresh. Linux: `tcp_init_sock` / `tcp_init_transfer`.
    pub fn new(mss: u32, initial_cwnd: u32) -> Self {
        CcState {
            cwnd: initial_cwnd.max(1),
            ssthresh: INFINITE_SSTHRESH,
            cwnd_cnt: 0,
            prior_cwnd: 0,
            cwnd_clamp: u32::MAX,
            mss,
            in_flight: 0,
            app_limited: false,
            snd_una: 0,
            snd_nxt: 0,
            pacing_rate: 0,
            paced: false,
        }
    }

    /// cwnd < ssthresh (Linux `tcp_in_slow_start`; RFC 5681 section 3.1).
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// Slow start: cwnd grows by the ACKed segments up to ssthresh (RFC 5681 section
    /// 3.1; RFC 3465 with L = the whole ACK, as Linux). Returns the ACKed segments left
    /// over for congestion avoidance. Linux: `tcp_slow_start`.
    pub fn slow_start(&mut self, acked: u32) -> u32 {
        let cwnd = self.cwnd.saturating_add(acked).min(self.ssthresh);
        let used = cwnd.saturating_sub(self.cwnd);
        self.cwnd = cwnd.min(self.cwnd_clamp);
        acked.saturating_sub(used)
    }

    /// Additive increase: cwnd += 1 per `w` ACKed segments (RFC 5681 section 3.1,
    /// equation 3 in segment counting). Linux: `tcp_cong_avoid_ai`.
    pub fn cong_avoid_ai(&mut self, w: u32, acked: u32) {
        let w = w.max(1);
        if self.cwnd_cnt >= w {
            self.cwnd_cnt = 0;
            self.cwnd = self.cwnd.saturating_add(1);
        }
        self.cwnd_cnt = self.cwnd_cnt.saturating_add(acked);
        if self.cwnd_cnt >= w {
            let delta = self.cwnd_cnt / w;
            self.cwnd_cnt -= delta * w;
            self.cwnd = self.cwnd.saturating_add(delta);
        }
        self.cwnd = self.cwnd.min(self.cwnd_clamp);
    }
}

/// Congestion-avoidance state of the sender (Linux `enum tcp_ca_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CaState {
    /// Nothing suspicious (Linux `TCP_CA_Open`).
    #[default]
    Open,
    /// Duplicate ACKs or SACKs seen, no loss decided yet (Linux `TCP_CA_Disorder`).
    Disorder,
    /// cwnd reduced for a local or ECN congestion signal (Linux `TCP_CA_CWR`).
    Cwr,
    /// Fast recovery (Linux `TCP_CA_Recovery`; RFC 5681 section 3.2, RFC 6675).
    Recovery,
    /// After a retransmission timeout (Linux `TCP_CA_Loss`).
    Loss,
}

/// A congestion-control algorithm (Linux `struct tcp_congestion_ops`).
pub trait CongestionOps: fmt::Debug {
    /// Algorithm name as Linux prints it (`TCP_CONGESTION`): "reno", "cubic".
    fn name(&self) -> &'static str;

    /// Which algorithm this is.
    fn algorithm(&self) -> CcAlgorithm;

    /// Connection setup (Linux `.init`).
    fn init(&mut self, s: &mut CcState);

    /// New ssthresh after a congestion event, in segments (Linux `.ssthresh`). May record
    /// state for a later undo.
    fn ssthresh(&mut self, s: &CcState) -> u32;

    /// An ACK advanced `snd_una` by `acked` segments outside recovery: grow cwnd
    /// (slow start below ssthresh, the algorithm's growth above). Linux `.cong_avoid`.
    fn cong_avoid(&mut self, s: &mut CcState, acked: u32, now: Instant);

    /// An RTT measurement (Linux `.pkts_acked` with `rtt_us`). Default: ignored.
    fn on_rtt_sample(&mut self, s: &mut CcState, rtt: Duration, now: Instant) {
        let _ = (s, rtt, now);
    }

    /// The CA state changed (Linux `.set_state`).
    fn set_state(&mut self, s: &mut CcState, new: CaState);

    /// The last reduction was spurious: the cwnd to return to (Linux `.undo_cwnd`).
    fn undo_cwnd(&mut self, s: &CcState) -> u32;

    /// Sending resumes after `idle` without data in flight (Linux `.cwnd_event` with
    /// `CA_EVENT_TX_START`). Default: ignored.
    fn on_tx_start(&mut self, idle: Duration) {
        let _ = idle;
    }
}

/// The algorithms ustack provides (Linux `tcp_available_congestion_control`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CcAlgorithm {
    /// RFC 5681 Reno (Linux `reno`).
    Reno,
    /// RFC 9438 CUBIC (Linux `cubic`, the default).
    #[default]
    Cubic,
}

impl CcAlgorithm {
    /// The Linux name: "reno" or "cubic".
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::Reno => "reno",
            CcAlgorithm::Cubic => "cubic",
        }
    }
}

impl fmt::Display for CcAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown congestion-control name (Linux answers `ENOENT` to `TCP_CONGESTION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCcAlgorithm(pub String);

impl fmt::Display for UnknownCcAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown congestion control algorithm {:?} (have: reno cubic)",
            self.0
        )
    }
}

impl std::error::Error for UnknownCcAlgorithm {}

impl FromStr for CcAlgorithm {
    type Err = UnknownCcAlgorithm;

    /// Parses "reno" or "cubic" (ASCII case-insensitive). Linux: `tcp_ca_find`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("reno") {
            Ok(CcAlgorithm::Reno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(CcAlgorithm::Cubic)
        } else {
            Err(UnknownCcAlgorithm(s.to_string()))
        }
    }
}

/// A fresh instance of `alg` (Linux `tcp_assign_congestion_control`).
pub fn new_cc(alg: CcAlgorithm) -> Box<dyn CongestionOps + Send> {
    new_cc_with(alg, true)
}

/// [`new_cc`] with HyStart++ on or off (CUBIC; Reno has none).
pub fn new_cc_with(alg: CcAlgorithm, hystart: bool) -> Box<dyn CongestionOps + Send> {
    match alg {
        CcAlgorithm::Reno => Box::new(Reno::new()),
        CcAlgorithm::Cubic => {
            let mut c = Cubic::new();
            c.set_hystart(hystart);
            Box::new(c)
        }
    }
}
