//! Fault injection for any device, like a seeded `netem` (Linux: `net/sched/sch_netem.c`).
//!
//! [`FaultInjector`] wraps a [`NetDevice`] and applies the same faults to both directions
//! (what the stack transmits and what the inner device receives):
//!
//! 1. **loss**: the packet is dropped;
//! 2. **corruption**: one random byte gets random bits flipped;
//! 3. **duplication**: the packet is sent twice;
//! 4. **reordering**: the packet is held back and released right after the next one
//!    (or after [`REORDER_HOLD`] when no other packet follows), or, with
//!    [`FaultConfig::reorder_delay`], held that much longer than the others (everything
//!    sent meanwhile overtakes it);
//! 5. **rate limit**: a token bucket on bytes shapes the flow (packets wait for tokens);
//! 6. **delay with jitter**: each packet waits `delay ± jitter` (uniform). Jitter reorders
//!    packets, as netem does.
//!
//! Held packets sit in a queue per direction, ordered by release time and bounded by
//! [`FAULT_QUEUE_LIMIT`] (beyond it packets are dropped and counted). Time comes from
//! `tokio::time`, so tests under `tokio::time::pause()` are exact. The random choices come
//! from an own splitmix64 generator seeded by [`FaultConfig::seed`]: the same seed and the
//! same traffic give the same faults.
//!
//! The wrapper does not pass on the inner device's transmit offload
//! ([`NetDevice::tso_max`] stays at its default, no offload): the stack then sends
//! MTU-sized segments, so each fault hits one wire packet, as netem on a link would, rather
//! than a 64 KiB super-segment standing for dozens of them.
//!
//! The driver must keep polling [`NetDevice::poll_recv`] when woken: that is where delayed
//! transmit packets are released to the inner device. A `tokio::time::Sleep` inside the
//! wrapper wakes the driver when the next held packet is due.
//!
//! ```
//! use std::time::Duration;
//! use ustack_netdev::fault::{FaultConfig, FaultInjector};
//! use ustack_netdev::loopback::Loopback;
//!
//! let cfg = FaultConfig {
//!     loss: 0.01,
//!     delay: Duration::from_millis(20),
//!     jitter: Duration::from_millis(5),
//!     rate_bps: Some(10_000_000),
//!     seed: 42,
//!     ..Default::default()
//! };
//! let dev = FaultInjector::new(Loopback::new(1500), cfg);
//! assert_eq!(dev.fault_stats().dropped, 0);
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::rng::SplitMix64;
use crate::{DeviceStats, NetDevice, PacketBuf};

/// Packets each direction may hold (delayed, shaped, waiting to be received) before new
/// ones are dropped. netem's default `limit` is 1000; ours is larger so that a delayed
/// high-rate flow is not cut by the queue alone.
pub const FAULT_QUEUE_LIMIT: usize = 10_000;

/// Longest time a packet picked for reordering waits for a successor to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(10);

/// Faults to inject. `Default` injects none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability (0..=1) that a packet is dropped.
    pub loss: f64,
    /// Probability that a packet is duplicated.
    pub duplicate: f64,
    /// Probability that a packet is held back and released after the next one.
    pub reorder: f64,
    /// When not zero: a packet picked by `reorder` is instead held this much longer than
    /// the others (after rate limit, delay and jitter), so that whatever is sent meanwhile
    /// overtakes it.
    pub reorder_delay: Duration,
    /// Probability that one byte of a packet is corrupted.
    pub corrupt: f64,
    /// Base delay of every packet.
    pub delay: Duration,
    /// Uniform jitter around `delay` (`delay - jitter ..= delay + jitter`, at least 0).
    pub jitter: Duration,
    /// Rate limit in bits per second (token bucket on bytes); `None` = unlimited.
    /// `Some(0)` drops everything.
    pub rate_bps: Option<u64>,
    /// Seed of the pseudo-random generator.
    pub seed: u64,
}

/// What the injector did, summed over both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets dropped: by `loss`, by a zero rate, or because the hold queue was full.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Packets that were overtaken by their successor.
    pub reordered: u64,
    /// Packets with a corrupted byte.
    pub corrupted: u64,
    /// Packets held back in time (delay, jitter or rate limit).
    pub delayed: u64,
}

/// Counters and pending configuration shared with [`FaultHandle`]s.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    delayed: AtomicU64,
    /// Set when `pending` holds a configuration to apply.
    dirty: AtomicBool,
    pending: Mutex<Option<FaultConfig>>,
}

impl Shared {
    fn stats(&self) -> FaultStats {
        FaultStats {
            dropped: self.dropped.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            reordered: self.reordered.load(Relaxed),
            corrupted: self.corrupted.load(Relaxed),
            delayed: self.delayed.load(Relaxed),
        }
    }
}

/// A cloneable handle on a [`FaultInjector`]: reads its counters and swaps its
/// configuration while the injector itself is owned by a stack's driver.
#[derive(Clone, Debug)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// What the injector did so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.shared.stats()
    }

    /// Replaces the configuration; the injector applies it at its next transmit or
    /// receive poll (see [`FaultInjector::set_config`]).
    pub fn set_config(&self, cfg: FaultConfig) {
        *self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cfg);
        self.shared.dirty.store(true, Release);
    }
}

/// A probability made safe: NaN becomes 0, the rest is clamped to 0..=1.
fn prob(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// `t + d`, saturating at `t` plus one day when the sum does not fit.
fn add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(t)
}

/// Token bucket on bytes (Linux: `sch_tbf`), letting tokens go negative so that a packet
/// without tokens gets a departure time instead of being dropped.
#[derive(Debug)]
struct TokenBucket {
    bytes_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(rate_bps: u64, mtu: usize) -> Self {
        let bytes_per_sec = rate_bps as f64 / 8.0;
        // Ten milliseconds of traffic, but never less than one full packet.
        let burst = (bytes_per_sec / 100.0).max(mtu.max(1500) as f64);
        TokenBucket {
            bytes_per_sec,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// When a packet of `len` bytes offered at `now` may leave.
    fn departure(&mut self, now: Instant, len: usize) -> Instant {
        let last = self.last.unwrap_or(now);
        if now > last {
            let refill = now.duration_since(last).as_secs_f64() * self.bytes_per_sec;
            self.tokens = (self.tokens + refill).min(self.burst);
            self.last = Some(now);
        } else {
            self.last = Some(last);
        }
        self.tokens -= len as f64;
        if self.tokens >= 0.0 {
            return now;
        }
        let wait = Duration::try_from_secs_f64(-self.tokens / self.bytes_per_sec)
            .unwrap_or(Duration::from_secs(86_400));
        add(now, wait)
    }
}

/// A packet held until `at`; `seq` keeps packets with equal times in arrival order.
#[derive(Debug)]
struct Held {
    at: Instant,
    seq: u64,
    pkt: PacketBuf,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Fault state of one direction.
#[derive(Debug, Default)]
struct Direction {
    /// Packets waiting for their release time (min-heap).
    held: BinaryHeap<Reverse<Held>>,
    /// A packet picked for reordering and the time it gives up waiting for a successor.
    reorder_slot: Option<(PacketBuf, Instant)>,
    /// Packets ready to go now, in order.
    ready: VecDeque<PacketBuf>,
    bucket: Option<TokenBucket>,
}

impl Direction {
    fn len(&self) -> usize {
        self.held.len() + self.ready.len() + usize::from(self.reorder_slot.is_some())
    }

    /// The earliest time something held here becomes due.
    fn next_deadline(&self) -> Option<Instant> {
        let heap = self.held.peek().map(|Reverse(h)| h.at);
        let slot = self.reorder_slot.as_ref().map(|(_, t)| *t);
        match (heap, slot) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which way a packet travels through the wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Tx,
    Rx,
}

/// A device wrapper that injects faults in both directions. Itself a [`NetDevice`].
///
/// # Panics
/// When packets are held back (delay, jitter, rate limit, reordering), `poll_recv` arms a
/// `tokio::time::Sleep`, which panics outside a tokio runtime with the timer enabled
/// (`#[tokio::main]` and `#[tokio::test]` enable it). Without held packets no timer is
/// created.
pub struct FaultInjector<D: NetDevice> {
    inner: D,
    cfg: FaultConfig,
    rng: SplitMix64,
    tx: Direction,
    rx: Direction,
    seq: u64,
    shared: Arc<Shared>,
    /// Fires at the next deadline; created on first need (it needs the tokio timer).
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline `sleep` is armed for.
    armed: Option<Instant>,
    /// The driver's waker, woken by `transmit` when it holds a packet with a deadline
    /// earlier than the armed one, so that `poll_recv` arms the timer.
    waker: Option<Waker>,
    scratch: Vec<PacketBuf>,
}

impl<D: NetDevice> std::fmt::Debug for FaultInjector<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("dev", &self.inner.name())
            .field("cfg", &self.cfg)
            .field("stats", &self.fault_stats())
            .finish()
    }
}

impl<D: NetDevice> FaultInjector<D> {
    /// Wraps `inner`. Probabilities outside 0..=1 are clamped (NaN counts as 0).
    pub fn new(inner: D, cfg: FaultConfig) -> Self {
        let mut f = FaultInjector {
            inner,
            cfg: FaultConfig::default(),
            rng: SplitMix64::new(cfg.seed),
            tx: Direction::default(),
            rx: Direction::default(),
            seq: 0,
            shared: Arc::default(),
            sleep: None,
            armed: None,
            waker: None,
            scratch: Vec::new(),
        };
        f.set_config(cfg);
        f
    }

    /// Replaces the fault configuration (e.g. to heal a partition: `loss: 1.0` -> `0.0`).
    /// Packets already held keep their release times. The generator is not reseeded.
    pub fn set_config(&mut self, cfg: FaultConfig) {
        let mtu = self.inner.mtu();
        let bucket = || {
            cfg.rate_bps
                .filter(|&r| r > 0)
                .map(|r| TokenBucket::new(r, mtu))
        };
        self.tx.bucket = bucket();
        self.rx.bucket = bucket();
        self.cfg = FaultConfig {
            loss: prob(cfg.loss),
            duplicate: prob(cfg.duplicate),
            reorder: prob(cfg.reorder),
            corrupt: prob(cfg.corrupt),
            ..cfg
        };
    }

    /// The configuration in use (probabilities clamped).
    pub fn config(&self) -> &FaultConfig {
        &self.cfg
    }

    /// What the injector did so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.shared.stats()
    }

    /// A handle to read the fault counters and change the configuration after the
    /// injector moved into a stack (e.g. `Box<dyn NetDevice>`).
    pub fn handle(&self) -> FaultHandle {
        FaultHandle {
            shared: self.shared.clone(),
        }
    }

    /// Applies a configuration set through a [`FaultHandle`], if any.
    fn apply_pending(&mut self) {
        if self.shared.dirty.load(Acquire) {
            self.shared.dirty.store(false, Release);
            let cfg = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(cfg) = cfg {
                self.set_config(cfg);
            }
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutable.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    fn dir(&mut self, d: Dir) -> &mut Direction {
        match d {
            Dir::Tx => &mut self.tx,
            Dir::Rx => &mut self.rx,
        }
    }

    /// Runs one packet through loss, corruption, duplication and reordering.
    fn process(&mut self, d: Dir, now: Instant, mut pkt: PacketBuf) {
        if self.rng.chance(self.cfg.loss) {
            self.shared.dropped.fetch_add(1, Relaxed);
            return;
        }
        if !pkt.is_empty() && self.rng.chance(self.cfg.corrupt) {
            let idx = self.rng.below(pkt.len() as u64) as usize;
            let mask = 1 + self.rng.below(255) as u8;
            if let Some(b) = pkt.data_mut().get_mut(idx) {
                *b ^= mask;
            }
            self.shared.corrupted.fetch_add(1, Relaxed);
        }
        if self.rng.chance(self.cfg.duplicate) {
            self.shared.duplicated.fetch_add(1, Relaxed);
            self.reorder_stage(d, now, pkt.clone());
        }
        self.reorder_stage(d, now, pkt);
    }

    fn reorder_stage(&mut self, d: Dir, now: Instant, pkt: PacketBuf) {
        if let Some((held, _)) = self.dir(d).reorder_slot.take() {
            // This packet overtakes the one held back.
            self.shared.reordered.fetch_add(1, Relaxed);
            self.timing_stage(d, now, pkt);
            self.timing_stage(d, now, held);
        } else if self.rng.chance(self.cfg.reorder) {
            if self.cfg.reorder_delay.is_zero() {
                self.dir(d).reorder_slot = Some((pkt, add(now, REORDER_HOLD)));
            } else {
                self.shared.reordered.fetch_add(1, Relaxed);
                self.timing_stage_late(d, now, pkt, self.cfg.reorder_delay);
            }
        } else {
            self.timing_stage(d, now, pkt);
        }
    }

    /// Rate limit, then delay and jitter: the packet is either ready now or held.
    fn timing_stage(&mut self, d: Dir, now: Instant, pkt: PacketBuf) {
        self.timing_stage_late(d, now, pkt, Duration::ZERO);
    }

    /// [`Self::timing_stage`] with `extra` added to the packet's release time.
    fn timing_stage_late(&mut self, d: Dir, now: Instant, pkt: PacketBuf, extra: Duration) {
        if self.cfg.rate_bps == Some(0) || self.dir(d).len() >= FAULT_QUEUE_LIMIT {
            self.shared.dropped.fetch_add(1, Relaxed);
            return;
        }
        let mut at = match self.dir(d).bucket.as_mut() {
            Some(b) => b.departure(now, pkt.len()),
            None => now,
        };
        let mut delay = self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            let j = u64::try_from(self.cfg.jitter.as_nanos()).unwrap_or(u64::MAX / 4);
            let j = j.min(u64::MAX / 4);
            let offset = self.rng.below(2 * j + 1);
            // delay - jitter + offset, at least zero.
            delay = delay
                .saturating_add(Duration::from_nanos(offset))
                .saturating_sub(self.cfg.jitter);
        }
        at = add(at, delay.saturating_add(extra));
        if at > now {
            self.shared.delayed.fetch_add(1, Relaxed);
            self.seq += 1;
            let seq = self.seq;
            self.dir(d).held.push(Reverse(Held { at, seq, pkt }));
        } else {
            self.dir(d).ready.push_back(pkt);
        }
    }

    /// Moves everything due at `now` into the ready queues.
    fn release(&mut self, now: Instant) {
        for d in [Dir::Tx, Dir::Rx] {
            if let Some((_, t)) = &self.dir(d).reorder_slot {
                if *t <= now {
                    // Nobody came to overtake it: it goes on, not reordered.
                    if let Some((pkt, _)) = self.dir(d).reorder_slot.take() {
                        self.timing_stage(d, now, pkt);
                    }
                }
            }
            let dir = self.dir(d);
            while dir.held.peek().is_some_and(|Reverse(h)| h.at <= now) {
                if let Some(Reverse(h)) = dir.held.pop() {
                    dir.ready.push_back(h.pkt);
                }
            }
        }
    }

    /// Hands the ready transmit packets to the inner device.
    fn flush_tx(&mut self) {
        if self.tx.ready.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.scratch);
        batch.extend(self.tx.ready.drain(..));
        self.inner.transmit(&mut batch);
        batch.clear();
        self.scratch = batch;
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.tx.next_deadline(), self.rx.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Arms the timer for the next deadline and polls it. True when it already fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.next_deadline() else {
            return false;
        };
        let sleep = match &mut self.sleep {
            Some(s) => {
                if self.armed != Some(deadline) {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = Some(deadline);
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl<D: NetDevice> NetDevice for FaultInjector<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn link(&self) -> crate::Link {
        self.inner.link()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    /// Releases due transmit packets, receives from the inner device through the fault
    /// pipeline, hands up to `budget` due packets to `out` and arms the timer.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let budget = budget.max(1);
        self.apply_pending();
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
        let mut inner_err = None;
        for _round in 0..4 {
            let now = Instant::now();
            self.release(now);
            self.flush_tx();
            // Pull from the inner device until enough is ready or it has nothing more.
            let mut pulls = 0;
            while self.rx.ready.len() < budget && inner_err.is_none() && pulls < 4 {
                pulls += 1;
                let mut batch = std::mem::take(&mut self.scratch);
                let want = budget - self.rx.ready.len();
                let res = self.inner.poll_recv(cx, &mut batch, want);
                for pkt in batch.drain(..) {
                    self.process(Dir::Rx, now, pkt);
                }
                self.scratch = batch;
                match res {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => inner_err = Some(e),
                    Poll::Pending => break,
                }
            }
            // Packets picked for reordering/transmit by the pull above may be due now.
            self.flush_tx();
            let n = budget.min(self.rx.ready.len());
            out.extend(self.rx.ready.drain(..n));
            let fired = self.poll_timer(cx);
            if n > 0 {
                if fired || !self.rx.ready.is_empty() {
                    cx.waker().wake_by_ref();
                }
                return Poll::Ready(Ok(n));
            }
            if let Some(e) = inner_err {
                return Poll::Ready(Err(e));
            }
            if pulls >= 4 && !fired {
                // The inner device kept delivering but every packet was dropped or held:
                // yield, and come back.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !fired {
                return Poll::Pending;
            }
            // The timer fired between our clock read and now: go round again.
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Runs each packet through the fault pipeline; what is due now goes to the inner
    /// device at once, the rest is released later by `poll_recv`.
    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        self.apply_pending();
        let now = Instant::now();
        self.release(now);
        for pkt in pkts.drain(..) {
            self.process(Dir::Tx, now, pkt);
        }
        self.flush_tx();
        let earlier = match (self.next_deadline(), self.armed) {
            (Some(next), Some(armed)) => next < armed || armed <= now,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            // Let the driver poll us so that the timer is armed for the new deadline.
            if let Some(w) = &self.waker {
                w.wake_by_ref();
            }
        }
    }

    /// The inner device's counters (what the faults did is in [`FaultInjector::fault_stats`]).
    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests;
