//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Linux: `tcp_rtt_estimator`, `tcp_set_rto`, `__tcp_set_rto`, `inet_csk_rto_backoff`.
//! Linux keeps `srtt_us` scaled by 8 and `mdev_us` scaled by 4 in integers; we keep plain
//! microseconds and apply the RFC 6298 section 2 formulas directly, with Linux's bounds
//! (`TCP_RTO_MIN` 200 ms, `TCP_RTO_MAX` 120 s, `TCP_TIMEOUT_INIT` 1 s) supplied by the
//! caller.
//!
//! Karn's algorithm (RFC 6298 section 3): the caller must not feed samples taken from
//! retransmitted segments, except those measured with timestamps (RFC 7323 section 4),
//! which are unambiguous. After a timeout the backed-off RTO is kept until an ACK for
//! new data arrives (RFC 6298 section 5.7 / Linux clearing `icsk_backoff` in `tcp_ack`);
//! the caller then calls [`RttEstimator::reset_backoff`].

use std::time::Duration;

/// RFC 6298 section 2: clock granularity G. Our clock is exact (the caller's `Instant`),
/// but timers fire with 1 ms granularity, so 1 ms is the honest G.
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 section 2.3 K = 4.
const K: u64 = 4;

/// The largest backoff shift (Linux caps `icsk_backoff` via `TCP_RTO_MAX`; the shift cap
/// only keeps the arithmetic in range).
const MAX_BACKOFF_SHIFT: u32 = 31;

/// RFC 6298 round-trip estimator (Linux: the `srtt_us`, `mdev_us`/`rttvar_us` and
/// `icsk_rto` fields of `struct tcp_sock` / `inet_connection_sock`).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// Smoothed RTT in µs; `None` until the first sample (RFC 6298 section 2.1).
    srtt_us: Option<u64>,
    /// RTT variation in µs.
    rttvar_us: u64,
    /// Smallest RTT seen in µs (Linux `tcp_min_rtt`, `tcpi_min_rtt`); `None` before a sample.
    min_rtt_us: Option<u64>,
    /// The most recent sample in µs (Linux `tcpi_rcv_rtt`-like diagnostics).
    latest_us: Option<u64>,
    /// RTO before backoff in µs (Linux `icsk_rto` without `icsk_backoff`).
    base_rto_us: u64,
    /// Lower RTO bound in µs (Linux `TCP_RTO_MIN`, sysctl-like `tcp_rto_min_us`).
    min_rto_us: u64,
    /// Upper RTO bound in µs (Linux `TCP_RTO_MAX`).
    max_rto_us: u64,
    /// Number of consecutive backoffs (Linux `icsk_backoff`).
    backoff: u32,
    /// Number of samples taken.
    samples: u64,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    /// A fresh estimator: RTO = `initial_rto` until the first sample (RFC 6298 section 2.1;
    /// Linux `TCP_TIMEOUT_INIT` = 1 s), bounded to `[min_rto, max_rto]` afterwards
    /// (Linux `TCP_RTO_MIN` = 200 ms, `TCP_RTO_MAX` = 120 s). Linux: `tcp_init_sock`.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        let min_rto_us = us(min_rto);
        let max_rto_us = us(max_rto).max(min_rto_us);
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            min_rtt_us: None,
            latest_us: None,
            base_rto_us: us(initial_rto).min(max_rto_us),
            min_rto_us,
            max_rto_us,
            backoff: 0,
            samples: 0,
        }
    }

    /// Feeds one RTT measurement R (RFC 6298 sections 2.2 and 2.3) and recomputes the
    /// RTO; the backoff is left alone (the caller resets it on an ACK of new data).
    /// Linux: `tcp_rtt_estimator` + `tcp_set_rto`.
    pub fn sample(&mut self, rtt: Duration) {
        let r = us(rtt);
        self.samples += 1;
        self.latest_us = Some(r);
        self.min_rtt_us = Some(self.min_rtt_us.map_or(r, |m| m.min(r)));
        match self.srtt_us {
            None => {
                // 2.2: SRTT <- R, RTTVAR <- R/2.
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                // 2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4;
                //      SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8.
                // RTTVAR is updated with the old SRTT, as the RFC requires.
                let err = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + err) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        // 2.2/2.3: RTO <- SRTT + max(G, K * RTTVAR); 2.4/2.5: bounded.
        let srtt = self.srtt_us.unwrap_or(r);
        let var = (K * self.rttvar_us).max(us(CLOCK_GRANULARITY));
        self.base_rto_us = srtt
            .saturating_add(var)
            .clamp(self.min_rto_us, self.max_rto_us);
    }

    /// The current retransmission timeout including exponential backoff, at most the
    /// maximum (RFC 6298 section 5.5 and 2.5). Linux: `inet_csk_rto_backoff`.
    pub fn rto(&self) -> Duration {
        let shift = self.backoff.min(MAX_BACKOFF_SHIFT);
        let v = self.base_rto_us.saturating_mul(1u64 << shift);
        Duration::from_micros(v.min(self.max_rto_us))
    }

    /// The RTO without backoff (Linux `icsk_rto`).
    pub fn base_rto(&self) -> Duration {
        Duration::from_micros(self.base_rto_us)
    }

    /// Doubles the RTO after a retransmission timeout (RFC 6298 section 5.5, "back off
    /// the timer"). Linux: `icsk_backoff++` in `tcp_retransmit_timer`.
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Clears the backoff once an ACK acknowledges new data (RFC 6298 section 5.7 note;
    /// Linux: `icsk_backoff = 0` in `tcp_ack` / `tcp_ack_update_rtt`).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// The number of consecutive backoffs (Linux `icsk_backoff`, `tcpi_backoff`).
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// True once at least one RTT sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.srtt_us.is_some()
    }

    /// The number of RTT samples taken so far.
    pub fn sample_count(&self) -> u64 {
        self.samples
    }

    /// Smoothed RTT (RFC 6298 SRTT), `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// RTT variation (RFC 6298 RTTVAR); zero before the first sample.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us)
    }

    /// The smallest RTT sample seen (Linux `tcp_min_rtt`), `None` before the first sample.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt_us.map(Duration::from_micros)
    }

    /// The most recent RTT sample, `None` before the first sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest_us.map(Duration::from_micros)
    }

    /// SRTT in µs for `TCP_INFO` (Linux `tcpi_rtt`), 0 before the first sample.
    pub fn srtt_us(&self) -> u32 {
        sat_u32(self.srtt_us.unwrap_or(0))
    }

    /// RTTVAR in µs for `TCP_INFO` (Linux `tcpi_rttvar`).
    pub fn rttvar_us(&self) -> u32 {
        sat_u32(self.rttvar_us)
    }

    /// The current (backed-off) RTO in µs for `TCP_INFO` (Linux `tcpi_rto`).
    pub fn rto_us(&self) -> u32 {
        sat_u32(us(self.rto()))
    }

    /// Minimum RTT in µs for `TCP_INFO` (Linux `tcpi_min_rtt`), `u32::MAX` before a sample
    /// (as Linux reports `~0U`).
    pub fn min_rtt_us(&self) -> u32 {
        self.min_rtt_us.map_or(u32::MAX, sat_u32)
    }
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn linux() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(120_000))
    }

    #[test]
    fn initial_rto_before_sample() {
        let r = linux();
        assert_eq!(r.rto(), ms(1000));
        assert!(!r.has_sample());
        assert_eq!(r.srtt(), None);
        assert_eq!(r.min_rtt_us(), u32::MAX);
    }

    #[test]
    fn first_sample_rule() {
        // RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR) = 3R.
        let mut r = RttEstimator::new(ms(1000), ms(1), ms(120_000));
        r.sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), ms(50));
        assert_eq!(r.rto(), ms(300));
        assert_eq!(r.srtt_us(), 100_000);
        assert_eq!(r.rttvar_us(), 50_000);
        assert_eq!(r.rto_us(), 300_000);
    }

    #[test]
    fn subsequent_samples() {
        let mut r = RttEstimator::new(ms(1000), ms(1), ms(120_000));
        r.sample(ms(100));
        // R' = 200: RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms;
        // SRTT = 7/8*100 + 1/8*200 = 112.5 ms; RTO = 112.5 + 250 = 362.5 ms.
        r.sample(ms(200));
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto(), Duration::from_micros(362_500));
        assert_eq!(r.min_rtt(), Some(ms(100)));
        assert_eq!(r.latest(), Some(ms(200)));
        assert_eq!(r.sample_count(), 2);
    }

    #[test]
    fn converges_and_respects_min() {
        let mut r = linux();
        for _ in 0..200 {
            r.sample(ms(10));
        }
        assert_eq!(r.srtt(), Some(ms(10)));
        // RTTVAR decays to ~0, so RTO = SRTT + G, clamped to the 200 ms minimum.
        assert_eq!(r.rto(), ms(200));
    }

    #[test]
    fn granularity_floor() {
        let mut r = RttEstimator::new(ms(1000), Duration::ZERO, ms(120_000));
        for _ in 0..200 {
            r.sample(ms(10));
        }
        assert_eq!(r.rto(), ms(11));
    }

    #[test]
    fn max_bound() {
        let mut r = linux();
        r.sample(Duration::from_secs(100));
        assert_eq!(r.rto(), ms(120_000));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut r = linux();
        r.sample(ms(100)); // RTO 300 ms
        assert_eq!(r.rto(), ms(300));
        r.backoff();
        assert_eq!(r.rto(), ms(600));
        r.backoff();
        assert_eq!(r.rto(), ms(1200));
        assert_eq!(r.backoff_count(), 2);
        for _ in 0..100 {
            r.backoff();
        }
        assert_eq!(r.rto(), ms(120_000));
        r.reset_backoff();
        assert_eq!(r.rto(), ms(300));
        assert_eq!(r.base_rto(), ms(300));
    }

    #[test]
    fn backoff_before_any_sample() {
        let mut r = linux();
        r.backoff();
        assert_eq!(r.rto(), ms(2000));
    }
}
