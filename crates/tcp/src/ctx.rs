//! Stack-wide state shared by every connection: configuration, counters, the one timer
//! wheel, the readiness event list, and the keyed generators (ISN, ports, cookies).

use std::time::{Duration, Instant};

use crate::config::TcpConfig;
use crate::isn::IsnGenerator;
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::stats::TcpStats;
use crate::syncookie::SynCookies;
use crate::timer::TimerWheel;

/// The per-socket timers (Linux: `icsk_retransmit_timer`, `icsk_delack_timer`, `sk_timer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// Retransmission, SYN / SYN-ACK retransmission and zero-window probes.
    Rtx,
    /// Delayed ACK.
    DelAck,
    /// Keepalive, FIN_WAIT_2 timeout and TIME_WAIT expiry.
    Keepalive,
    /// Pacing: new data held back until its departure time.
    Pace,
}

/// The key of one timer in the wheel.
pub(crate) type TimerKey = (SockId, TimerKind);

/// Everything a connection needs from the stack while it processes a segment or a call.
pub(crate) struct Shared {
    pub(crate) cfg: TcpConfig,
    pub(crate) stats: TcpStats,
    pub(crate) timers: TimerWheel<TimerKey>,
    pub(crate) events: Vec<SockId>,
    pub(crate) epoch: Option<Instant>,
    pub(crate) isn: IsnGenerator,
    pub(crate) cookies: SynCookies,
    /// RFC 5961 section 7 challenge ACK budget: (window start, count sent in window).
    pub(crate) challenge: (Option<Instant>, u32),
    pub(crate) orphans: usize,
    pub(crate) tw_count: usize,
    /// Bytes held in socket buffers stack-wide (send + receive + out-of-order).
    pub(crate) mem_used: usize,
    /// Highest `mem_used` seen.
    pub(crate) mem_peak: usize,
    /// Linux `tcp_memory_pressure`: set above `mem_pressure`, cleared below `mem_low`.
    pub(crate) mem_pressure: bool,
    /// When the current pressure episode began (for `TCPMemoryPressuresChrono`).
    pub(crate) pressure_since: Option<Instant>,
    /// The latest time the layer was given (input, timers, user calls).
    pub(crate) last_now: Option<Instant>,
    /// Rotating counter for RFC 6056 algorithm 3 (the per-destination table collapsed
    /// to one entry).
    pub(crate) port_counter: u32,
    /// ACKs owed "now" are held until the end of the input batch
    /// ([`crate::TcpLayer::flush_acks`]) instead of going out after every second
    /// segment (see [`crate::TcpLayer::set_ack_batching`]).
    pub(crate) ack_batching: bool,
    /// Connections owing an immediate ACK at the end of the current batch.
    pub(crate) ack_owed: Vec<SockId>,
    /// Scratch for the newly SACKed parts of one SACK block (`recovery::process_sack`),
    /// kept so that ACKs with SACK blocks do not allocate.
    pub(crate) sack_newly: Vec<(SeqNum, SeqNum)>,
}

impl Shared {
    /// Time since the stack first saw a clock value (the ISN / timestamp clock origin).
    pub(crate) fn since_epoch(&mut self, now: Instant) -> Duration {
        let e = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(e)
    }

    /// Our timestamp clock in milliseconds (RFC 7323 section 5.4: 1 ms..1 s per tick).
    pub(crate) fn ts_now(&mut self, now: Instant) -> u32 {
        self.since_epoch(now).as_millis() as u32
    }

    /// Records that `id`'s readiness changed; `flag` dedups while not yet drained.
    pub(crate) fn wake(&mut self, id: SockId, flag: &mut bool) {
        if !*flag {
            *flag = true;
            self.events.push(id);
        }
    }

    pub(crate) fn set_timer(&mut self, id: SockId, kind: TimerKind, at: Instant) {
        self.timers.schedule((id, kind), at);
    }

    /// Arms `kind` for `id` at `at` unless it is already armed for `at` or earlier. The
    /// caller keeps the real deadline; a timer that fires before it is re-armed by its
    /// handler (Linux: `tcp_write_timer_handler` and `tcp_delack_timer_handler` check
    /// `icsk_timeout` and re-arm when the timer fired early). Restarting a timer on every
    /// segment then costs no timer-wheel work.
    pub(crate) fn set_timer_lazy(&mut self, id: SockId, kind: TimerKind, at: Instant) {
        if self
            .timers
            .deadline(&(id, kind))
            .is_some_and(|cur| cur <= at)
        {
            return;
        }
        self.timers.schedule((id, kind), at);
    }

    pub(crate) fn clear_timer(&mut self, id: SockId, kind: TimerKind) {
        self.timers.cancel(&(id, kind));
    }

    pub(crate) fn clear_all_timers(&mut self, id: SockId) {
        for k in [
            TimerKind::Rtx,
            TimerKind::DelAck,
            TimerKind::Keepalive,
            TimerKind::Pace,
        ] {
            self.clear_timer(id, k);
        }
    }

    /// RFC 5961 section 7: at most `challenge_ack_limit` challenge ACKs per second.
    pub(crate) fn challenge_allowed(&mut self, now: Instant) -> bool {
        let (start, count) = &mut self.challenge;
        match start {
            Some(s) if now.saturating_duration_since(*s) < Duration::from_secs(1) => {}
            _ => {
                *start = Some(now);
                *count = 0;
            }
        }
        if *count >= self.cfg.challenge_ack_limit {
            return false;
        }
        *count += 1;
        self.stats.tcp_challenge_ack += 1;
        true
    }

    pub(crate) fn mem_uncharge(&mut self, delta: usize) {
        self.mem_used = self.mem_used.saturating_sub(delta);
        self.mem_update();
    }

    pub(crate) fn mem_charge(&mut self, delta: usize) {
        self.mem_used = self.mem_used.saturating_add(delta);
        self.mem_update();
    }

    /// Remembers the latest time seen (memory state changes happen in places that have
    /// no clock of their own).
    pub(crate) fn tick(&mut self, now: Instant) {
        self.last_now = Some(now);
    }

    /// Linux `sk_enter_memory_pressure` / `sk_leave_memory_pressure` with `tcp_mem`'s
    /// hysteresis: pressure starts above `mem_pressure` and ends below `mem_low`.
    pub(crate) fn mem_update(&mut self) {
        self.mem_peak = self.mem_peak.max(self.mem_used);
        if !self.mem_pressure && self.mem_used > self.cfg.mem_pressure_bytes() {
            self.mem_pressure = true;
            self.pressure_since = self.last_now;
            self.stats.tcp_memory_pressures += 1;
        } else if self.mem_pressure && self.mem_used < self.cfg.mem_low_bytes() {
            self.mem_pressure = false;
            if let (Some(s), Some(n)) = (self.pressure_since.take(), self.last_now) {
                let ms = n.saturating_duration_since(s).as_millis();
                self.stats.tcp_memory_pressures_chrono = self
                    .stats
                    .tcp_memory_pressures_chrono
                    .saturating_add(u64::try_from(ms).unwrap_or(u64::MAX));
            }
        }
    }

    /// True when socket memory is at `mem_limit` (Linux: over `tcp_mem[2]`): not even a
    /// new socket's `rmem.0` minimum fits below the limit.
    pub(crate) fn mem_over_limit(&self) -> bool {
        self.mem_used.saturating_add(self.cfg.rmem.0) > self.cfg.mem_limit
    }

    /// True while under memory pressure (Linux `tcp_under_memory_pressure`).
    pub(crate) fn under_pressure(&self) -> bool {
        self.mem_pressure
    }

    /// Linux `__sk_mem_raise_allocated` for receive memory: may a socket holding `held`
    /// bytes take `extra` more? Above `mem_limit` only up to the `rmem.0` minimum.
    pub(crate) fn rmem_schedule(&self, held: usize, extra: usize) -> bool {
        self.mem_used.saturating_add(extra) <= self.cfg.mem_limit
            || held.saturating_add(extra) <= self.cfg.rmem.0
    }

    /// The send-side twin of [`Shared::rmem_schedule`] (`wmem.0` minimum).
    pub(crate) fn wmem_schedule(&self, held: usize, extra: usize) -> bool {
        self.mem_used.saturating_add(extra) <= self.cfg.mem_limit
            || held.saturating_add(extra) <= self.cfg.wmem.0
    }
}
