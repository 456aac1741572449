//! One hierarchical hashed timing wheel for every timer of the stack.
//!
//! Linux: `kernel/time/timer.c` (the timer wheel behind `sk_reset_timer` / `mod_timer`,
//! which TCP uses for `icsk_retransmit_timer`, `icsk_delack_timer` and `sk_timer`).
//! Like Linux we keep one wheel for all sockets instead of one sleeping future each.
//!
//! Shape: 6 levels of 64 slots; level `l` slots are `64^l` ms wide, so level 0 covers the
//! next 64 ms at 1 ms resolution and the six levels together span 2^36 ms (over two
//! years). A timer lives in exactly one slot, chosen from the highest bit in which its
//! deadline tick differs from the wheel's current tick; when the wheel reaches a
//! higher-level slot, its timers cascade into finer levels. Each key records its slot and
//! its index in the slot, so `schedule`/`cancel` are O(1) (swap-remove, no scan), and
//! `expire` costs O(expired + cascaded + occupied slots visited), independent of how far
//! the clock jumped. A per-level occupancy bitmap finds the next non-empty slot with one
//! `trailing_zeros`.
//!
//! Deadlines keep their exact `Instant`: a key fires in the first `expire(now)` with
//! `deadline <= now` (never early), and `next_deadline` returns the exact earliest deadline
//! (memoized globally and per slot, so polling it after every `expire` costs O(levels), not
//! O(timers in the first occupied slot)).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};
use ustack_ipv4::hash::FastHashMap;

/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Slots with at most this many timers are scanned for their minimum instead of heaped.
const SCAN_MAX: usize = 64;
/// Number of levels.
const LEVELS: usize = 6;
/// Ticks (ms) the whole wheel spans; farther deadlines are parked at the far edge and
/// re-placed as the wheel turns.
const SPAN: u64 = 1 << (SLOT_BITS * LEVELS as u32);

/// How far before its first deadline a wheel that has not seen the present puts its origin.
const ORIGIN_MARGIN_SECS: u64 = 24 * 3600;

/// Where one key lives.
#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: Instant,
    level: u8,
    slot: u8,
    pos: u32,
    /// Unique per placement: a slot heap item is live iff its `seq` is the key's current one.
    seq: u64,
}

/// One item of a slot's lazy min-heap, ordered by (deadline, seq), earliest on top.
struct HeapItem<K> {
    deadline: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for HeapItem<K> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.seq == other.seq
    }
}
impl<K> Eq for HeapItem<K> {}
impl<K> PartialOrd for HeapItem<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for HeapItem<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A hierarchical hashed timing wheel keyed by `K` (Linux: the kernel timer wheel behind
/// `mod_timer` / `del_timer`). 1 ms granularity, O(1) `schedule` and `cancel`.
///
/// Sans-IO: the wheel never reads a clock; its time origin is the first `Instant` it sees.
pub struct TimerWheel<K> {
    origin: Option<Instant>,
    /// The wheel's current tick (ms since `origin`): every slot before it is processed.
    elapsed: u64,
    entries: FastHashMap<K, Entry>,
    /// `LEVELS * SLOTS` slots; each holds (key, deadline) so scans need no hash lookups.
    slots: Vec<Vec<(K, Instant)>>,
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// Memoized `next_deadline` answer: `None` = unknown, `Some(x)` = the answer `x`.
    next_cache: Cell<Option<Option<Instant>>>,
    /// Per slot, the memoized earliest deadline it holds (`None` = unknown or empty).
    /// Kept on push (min), dropped only when that earliest entry leaves the slot, so a
    /// slot holding many timers (e.g. every TIME_WAIT socket) is rescanned only when its
    /// own minimum is cancelled, not on every `expire`.
    slot_min: Vec<Cell<Option<Instant>>>,
    /// Per slot, a min-heap of its placements with lazy deletion (cancelled or moved keys
    /// are popped when they reach the top), so recomputing a slot's minimum after its
    /// earliest timer left (e.g. TIME_WAIT sockets recycled oldest first) costs
    /// O(log n) amortized instead of a scan of the slot.
    /// Built on demand, only for slots holding more than `SCAN_MAX` timers whose minimum
    /// was needed; small slots are just scanned.
    heaps: Vec<RefCell<Option<BinaryHeap<HeapItem<K>>>>>,
    next_seq: u64,
    /// Slot scans done by `next_deadline` (tests check they stay rare).
    #[cfg(test)]
    scans: Cell<u64>,
}

impl<K: Copy + Eq + Hash> Default for TimerWheel<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for TimerWheel<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("timers", &self.entries.len())
            .field("elapsed_ms", &self.elapsed)
            .finish()
    }
}

fn level_for(elapsed: u64, when: u64) -> usize {
    // Highest differing bit decides the level; the slot mask keeps level 0 for equal ticks.
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize
}

impl<K: Copy + Eq + Hash> TimerWheel<K> {
    /// An empty wheel (Linux: `init_timers`).
    pub fn new() -> Self {
        TimerWheel {
            origin: None,
            elapsed: 0,
            entries: FastHashMap::default(),
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            next_cache: Cell::new(Some(None)),
            slot_min: (0..LEVELS * SLOTS).map(|_| Cell::new(None)).collect(),
            heaps: (0..LEVELS * SLOTS).map(|_| RefCell::new(None)).collect(),
            next_seq: 0,
            #[cfg(test)]
            scans: Cell::new(0),
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `key` has a pending timer (Linux: `timer_pending`).
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// The deadline of `key`'s pending timer.
    pub fn deadline(&self, key: &K) -> Option<Instant> {
        self.entries.get(key).map(|e| e.deadline)
    }

    /// Arms `key` to fire at `deadline`, replacing any pending timer of that key; a
    /// deadline in the past fires at the next `expire`. O(1). Linux: `mod_timer`.
    pub fn schedule(&mut self, key: K, deadline: Instant) {
        let old = self.remove_entry(&key);
        let when = self.tick_of(deadline);
        self.place(key, deadline, when);
        if let Some(Some(c)) = self.next_cache.get() {
            if deadline <= c {
                self.next_cache.set(Some(Some(deadline)));
            } else if old.is_some_and(|o| o <= c) {
                self.next_cache.set(None);
            }
        } else if let Some(None) = self.next_cache.get() {
            self.next_cache.set(Some(Some(deadline)));
        }
    }

    /// Disarms `key`; returns true if it was pending. O(1). Linux: `del_timer`.
    pub fn cancel(&mut self, key: &K) -> bool {
        match self.remove_entry(key) {
            Some(old) => {
                if let Some(Some(c)) = self.next_cache.get() {
                    if old <= c {
                        self.next_cache.set(None);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Removes every timer.
    pub fn clear(&mut self) {
        self.entries.clear();
        for s in &mut self.slots {
            s.clear();
        }
        self.occupied = [0; LEVELS];
        for m in &self.slot_min {
            m.set(None);
        }
        for h in &self.heaps {
            *h.borrow_mut() = None;
        }
        self.next_cache.set(Some(None));
    }

    /// The earliest pending deadline, exactly (the true minimum, neither earlier nor
    /// later). Amortized O(levels): the answer is memoized until a timer expires or the
    /// earliest one is cancelled/moved later; recomputing finds the first non-empty slot
    /// with the occupancy bitmaps and takes that slot's memoized minimum, scanning the
    /// slot's entries only when its own minimum has left it. Linux:
    /// `get_next_timer_interrupt`.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(v) = self.next_cache.get() {
            return v;
        }
        let v = self.next_expiration().and_then(|(level, slot, _)| {
            let idx = level * SLOTS + slot;
            let memo = self.slot_min.get(idx)?;
            if let Some(m) = memo.get() {
                return Some(m);
            }
            #[cfg(test)]
            self.scans.set(self.scans.get() + 1);
            let vec = self.slots.get(idx)?;
            if vec.len() <= SCAN_MAX {
                let m = vec.iter().map(|&(_, d)| d).min();
                memo.set(m);
                return m;
            }
            let mut cell = self.heaps.get(idx)?.borrow_mut();
            let heap = cell.get_or_insert_with(|| {
                vec.iter()
                    .filter_map(|&(key, deadline)| {
                        let seq = self.entries.get(&key)?.seq;
                        Some(HeapItem { deadline, seq, key })
                    })
                    .collect()
            });
            while let Some(top) = heap.peek() {
                if self.entries.get(&top.key).is_some_and(|e| e.seq == top.seq) {
                    break;
                }
                heap.pop();
            }
            let m = heap.peek().map(|top| top.deadline);
            memo.set(m);
            m
        });
        self.next_cache.set(Some(v));
        v
    }

    /// Appends to `out` every key whose deadline is `<= now`, each once, in deadline
    /// order at 1 ms resolution, and removes them. Linux: `run_timers` / `__run_timers`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<K>) {
        let fired_before = out.len();
        let origin = *self.origin.get_or_insert(now);
        let now_tick = ms_since(origin, now);
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            let idx = level * SLOTS + slot;
            let Some(vec) = self.slots.get_mut(idx) else {
                break;
            };
            let mut items = std::mem::take(vec);
            if let Some(o) = self.occupied.get_mut(level) {
                *o &= !(1u64 << slot);
            }
            if let Some(m) = self.slot_min.get(idx) {
                m.set(None);
            }
            if let Some(h) = self.heaps.get(idx) {
                *h.borrow_mut() = None;
            }
            for &(key, deadline) in &items {
                if level == 0 && deadline <= now {
                    self.entries.remove(&key);
                    out.push(key);
                } else {
                    // Cascade to a finer level, or keep a not-yet-due key of this tick.
                    let when = self.tick_of(deadline);
                    self.place(key, deadline, when);
                }
            }
            // Give the allocation back to the slot when nothing was re-placed into it.
            items.clear();
            if let Some(vec) = self.slots.get_mut(idx) {
                if vec.is_empty() {
                    *vec = items;
                }
            }
            if level == 0 && start == now_tick {
                // What is left in this tick is due later within the same millisecond.
                break;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
        // Cascading moves timers but keeps the set; only firing can remove the minimum.
        if out.len() != fired_before {
            self.next_cache.set(None);
        }
    }

    /// The tick of `deadline`, within the span the wheel can hold from `elapsed`.
    fn tick_of(&mut self, deadline: Instant) -> u64 {
        // A deadline is in the future, so the present lies before it: when the first
        // thing the wheel sees is a deadline, put the origin well before it (deadlines
        // before the origin still work, just lumped into the current tick's slot).
        let origin = *self.origin.get_or_insert_with(|| {
            [ORIGIN_MARGIN_SECS, 3600, 60, 1]
                .iter()
                .find_map(|&s| deadline.checked_sub(Duration::from_secs(s)))
                .unwrap_or(deadline)
        });
        ms_since(origin, deadline).clamp(self.elapsed, self.elapsed + SPAN - 1)
    }

    fn place(&mut self, key: K, deadline: Instant, when: u64) {
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let Some(vec) = self.slots.get_mut(level * SLOTS + slot) else {
            return;
        };
        let pos = u32::try_from(vec.len()).unwrap_or(u32::MAX);
        let was_empty = vec.is_empty();
        vec.push((key, deadline));
        let live = vec.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(h) = self.heaps.get(level * SLOTS + slot) {
            if let Some(heap) = h.borrow_mut().as_mut() {
                if heap.len() >= 2 * live + 32 {
                    // Mostly stale: drop the dead items so memory stays O(live timers).
                    let entries = &self.entries;
                    heap.retain(|it| entries.get(&it.key).is_some_and(|e| e.seq == it.seq));
                }
                heap.push(HeapItem { deadline, seq, key });
            }
        }
        if let Some(m) = self.slot_min.get(level * SLOTS + slot) {
            match m.get() {
                Some(cur) if deadline < cur => m.set(Some(deadline)),
                None if was_empty => m.set(Some(deadline)),
                _ => {}
            }
        }
        if let Some(o) = self.occupied.get_mut(level) {
            *o |= 1u64 << slot;
        }
        self.entries.insert(
            key,
            Entry {
                deadline,
                level: level as u8,
                slot: slot as u8,
                pos,
                seq,
            },
        );
    }

    /// Unlinks `key` from its slot; returns its deadline if it was pending.
    fn remove_entry(&mut self, key: &K) -> Option<Instant> {
        let e = self.entries.remove(key)?;
        let level = e.level as usize;
        let slot = e.slot as usize;
        let pos = e.pos as usize;
        if let Some(vec) = self.slots.get_mut(level * SLOTS + slot) {
            if pos < vec.len() {
                vec.swap_remove(pos);
                if let Some(&(moved, _)) = vec.get(pos) {
                    if let Some(m) = self.entries.get_mut(&moved) {
                        m.pos = e.pos;
                    }
                }
            }
            if vec.is_empty() {
                if let Some(o) = self.occupied.get_mut(level) {
                    *o &= !(1u64 << slot);
                }
            }
            if let Some(m) = self.slot_min.get(level * SLOTS + slot) {
                if vec.is_empty() || m.get().is_some_and(|cur| e.deadline <= cur) {
                    m.set(None);
                }
            }
        }
        Some(e.deadline)
    }

    /// The next non-empty slot: (level, slot, first tick it covers). Lower levels always
    /// hold earlier timers than higher ones.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for (level, &occ) in self.occupied.iter().enumerate() {
            if occ == 0 {
                continue;
            }
            let shift = SLOT_BITS as usize * level;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = (self.elapsed >> shift) & (SLOTS as u64 - 1);
            let zeros = u64::from(occ.rotate_right(now_slot as u32).trailing_zeros());
            let slot = (zeros + now_slot) % SLOTS as u64;
            let level_start = self.elapsed & !(level_range - 1);
            let mut start = level_start + slot * slot_range;
            if start < self.elapsed && (level > 0 || slot != now_slot) {
                start += level_range;
            }
            return Some((level, slot as usize, start));
        }
        None
    }
}

fn ms_since(origin: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin).as_millis()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn fires_in_order_and_once() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        w.schedule(3u32, t0 + ms(30));
        w.schedule(1, t0 + ms(10));
        w.schedule(2, t0 + ms(20));
        assert_eq!(w.len(), 3);
        assert_eq!(w.next_deadline(), Some(t0 + ms(10)));
        let mut out = Vec::new();
        w.expire(t0 + ms(9), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + ms(25), &mut out);
        assert_eq!(out, vec![1, 2]);
        assert_eq!(w.next_deadline(), Some(t0 + ms(30)));
        out.clear();
        w.expire(t0 + ms(25), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + ms(1000), &mut out);
        assert_eq!(out, vec![3]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn sub_millisecond_deadlines_are_exact() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        w.schedule(1u8, t0);
        let d = t0 + Duration::from_micros(10_700);
        w.schedule(2u8, d);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_micros(10_500), &mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(w.next_deadline(), Some(d));
        out.clear();
        w.expire(d, &mut out);
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn cancel_and_reschedule() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        for k in 0..10u32 {
            w.schedule(k, t0 + ms(100 + u64::from(k)));
        }
        assert!(w.cancel(&0));
        assert!(!w.cancel(&0));
        assert_eq!(w.next_deadline(), Some(t0 + ms(101)));
        // Reschedule later and earlier.
        w.schedule(1, t0 + ms(5000));
        assert_eq!(w.next_deadline(), Some(t0 + ms(102)));
        w.schedule(9, t0 + ms(50));
        assert_eq!(w.next_deadline(), Some(t0 + ms(50)));
        assert_eq!(w.deadline(&9), Some(t0 + ms(50)));
        assert_eq!(w.len(), 9);
        let mut out = Vec::new();
        w.expire(t0 + ms(200), &mut out);
        assert_eq!(out, vec![9, 2, 3, 4, 5, 6, 7, 8]);
        assert!(w.contains(&1));
        out.clear();
        w.expire(t0 + ms(4999), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + ms(5000), &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn past_deadline_fires_next_expire() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut out = Vec::new();
        w.expire(t0 + ms(500), &mut out);
        w.schedule(7u16, t0 + ms(100));
        assert_eq!(w.next_deadline(), Some(t0 + ms(100)));
        w.expire(t0 + ms(500), &mut out);
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn far_deadlines() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let two_h = ms(2 * 3600 * 1000);
        let year = ms(365 * 24 * 3600 * 1000);
        w.schedule(1u8, t0 + two_h);
        w.schedule(2u8, t0 + year);
        w.schedule(3u8, t0 + ms(1));
        let mut out = Vec::new();
        w.expire(t0 + ms(1), &mut out);
        assert_eq!(out, vec![3]);
        assert_eq!(w.next_deadline(), Some(t0 + two_h));
        out.clear();
        w.expire(t0 + two_h - ms(1), &mut out);
        assert!(out.is_empty());
        assert_eq!(w.next_deadline(), Some(t0 + two_h));
        w.expire(t0 + two_h, &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        w.expire(t0 + year - ms(1), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + year, &mut out);
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn hundred_thousand_keys() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 100_000u64;
        let span = 2 * 3600 * 1000 * 1000u64; // 2 h in µs
        let mut deadlines = Vec::with_capacity(n as usize);
        for k in 0..n {
            let d = t0 + Duration::from_micros(1000 + rnd() % span);
            w.schedule(k, d);
            deadlines.push(d);
        }
        // Cancel every 10th key, reschedule every 7th.
        for k in (0..n).step_by(10) {
            assert!(w.cancel(&k));
        }
        for k in (3..n).step_by(7) {
            let d = t0 + Duration::from_micros(1000 + rnd() % span);
            w.schedule(k, d);
            deadlines[k as usize] = d;
        }
        let live = |k: u64| !k.is_multiple_of(10) || (k >= 3 && (k - 3).is_multiple_of(7));
        let expected = (0..n).filter(|&k| live(k)).count();
        assert_eq!(w.len(), expected);
        let brute_min = (0..n)
            .filter(|&k| live(k))
            .map(|k| deadlines[k as usize])
            .min();
        assert_eq!(w.next_deadline(), brute_min);
        // Walk time in uneven steps; every key fires once, never early, at most one step late.
        let mut fired = vec![false; n as usize];
        let mut now = t0;
        let mut out = Vec::new();
        let mut count = 0;
        while !w.is_empty() {
            let step = Duration::from_micros(rnd() % 5_000_000);
            let prev = now;
            now += step;
            out.clear();
            w.expire(now, &mut out);
            for &k in &out {
                assert!(live(k));
                assert!(!fired[k as usize]);
                fired[k as usize] = true;
                let d = deadlines[k as usize];
                assert!(d <= now && d > prev, "key {k} fired out of its step");
                count += 1;
            }
            if let Some(nd) = w.next_deadline() {
                assert!(nd > now);
            }
        }
        assert_eq!(count, expected);
    }

    #[test]
    fn next_deadline_matches_brute_force() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut x: u64 = 12345;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut live: HashMap<u32, Instant> = HashMap::new();
        let mut now = t0;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let k = (rnd() % 500) as u32;
            match rnd() % 4 {
                0 => {
                    w.cancel(&k);
                    live.remove(&k);
                }
                1 => {
                    now += Duration::from_micros(rnd() % 300_000);
                    out.clear();
                    w.expire(now, &mut out);
                    for k in &out {
                        let d = live.remove(k);
                        assert!(d.is_some_and(|d| d <= now));
                    }
                    assert!(live.values().all(|&d| d > now));
                }
                _ => {
                    let d = now + Duration::from_micros(rnd() % 100_000_000);
                    w.schedule(k, d);
                    live.insert(k, d);
                }
            }
            assert_eq!(w.next_deadline(), live.values().copied().min());
            assert_eq!(w.len(), live.len());
        }
    }

    /// Many long timers (TIME_WAIT-like) sharing coarse slots plus a stream of short ones
    /// that fire: `next_deadline` stays exact and does not rescan the big slots each time.
    #[test]
    fn many_timers_next_deadline_is_cheap_and_exact() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let n = 50_000u32;
        for k in 0..n {
            // 60 s TIME_WAIT timers spread over 2 s.
            w.schedule(
                k,
                t0 + ms(60_000) + Duration::from_micros(u64::from(k) * 40),
            );
        }
        let long_min = t0 + ms(60_000);
        assert_eq!(w.next_deadline(), Some(long_min));
        let scans0 = w.scans.get();
        let mut out = Vec::new();
        let mut now = t0;
        for i in 0..5_000u32 {
            let short = n + i;
            w.schedule(short, now + ms(1));
            assert_eq!(w.next_deadline(), Some(now + ms(1)));
            // Cancel a long timer that is not the minimum, reschedule another.
            w.cancel(&(n - 1 - i));
            w.schedule(n - 1 - i, long_min + ms(5_000 + u64::from(i)));
            now += ms(2);
            out.clear();
            w.expire(now, &mut out);
            assert_eq!(out, vec![short]);
            assert_eq!(w.next_deadline(), Some(long_min));
        }
        assert!(
            w.scans.get() - scans0 <= 2,
            "next_deadline rescanned {} times",
            w.scans.get() - scans0
        );
        // Cancelling the minimum forces one rescan and gives the next one exactly.
        assert!(w.cancel(&0));
        assert_eq!(
            w.next_deadline(),
            Some(long_min + Duration::from_micros(40))
        );
        // Everything still fires exactly once.
        out.clear();
        w.expire(now + ms(3_600_000), &mut out);
        assert_eq!(out.len(), n as usize - 1);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }
}
