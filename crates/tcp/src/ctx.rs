//! Stack-wide state shared by every connection: configuration, counters, the one timer
//! wheel, the readiness event list, and the keyed generators (ISN, ports, cookies).

use std::time::{Duration, Instant};

use crate::config::TcpConfig;
use crate::isn::IsnGenerator;
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
    /// Rotating counter for RFC 6056 algorithm 3 (the per-destination table collapsed
    /// to one entry).
    pub(crate) port_counter: u32,
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

    pub(crate) fn clear_timer(&mut self, id: SockId, kind: TimerKind) {
        self.timers.cancel(&(id, kind));
    }

    pub(crate) fn clear_all_timers(&mut self, id: SockId) {
        for k in [TimerKind::Rtx, TimerKind::DelAck, TimerKind::Keepalive] {
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
    }
}
