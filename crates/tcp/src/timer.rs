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
//! higher-level slot, its timers cascade into finer levels. A per-level occupancy bitmap
//! finds the next non-empty slot with one `trailing_zeros`.
//!
//! Storage: every armed timer is a node in a slab (recycled through a free list). A key
//! finds its node through a dense `Vec` when [`WheelKey::dense_index`] gives a small
//! integer (socket slot index times timer kind for the stack's keys), otherwise through a
//! hash map, so arming, re-arming and cancelling cost no hashing for the stack. A node
//! remembers its slot and its position there, so removal is O(1): the item becomes a
//! tombstone, and a slot list is compacted once tombstones outnumber its live items.
//!
//! Deadlines keep their exact `Instant`: a key fires in the first `expire(now)` with
//! `deadline <= now` (never early), and `next_deadline` returns the exact earliest
//! deadline. A slot keeps its items in two lists: a run in nondecreasing deadline order
//! and the out-of-order rest. Long timers are armed as `now + constant` with a clock that
//! only moves forward (every TIME_WAIT socket arms `now + 60 s`, and they are recycled
//! oldest first), so they form the run and its minimum is simply its first live item;
//! the rest (a few short timers that share the slot, e.g. while no `expire` has moved
//! the wheel's clock) keeps a memoized minimum, recomputed by a scan when small and with
//! a lazy min-heap when large.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};
use ustack_ipv4::hash::FastHashMap;

use crate::ctx::TimerKind;
use crate::sock::SockId;

/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Out-of-order slots with at most this many live timers are scanned for their minimum
/// instead of heaped.
const SCAN_MAX: usize = 64;
/// Number of levels.
const LEVELS: usize = 6;
/// Ticks (ms) the whole wheel spans; farther deadlines are parked at the far edge and
/// re-placed as the wheel turns.
const SPAN: u64 = 1 << (SLOT_BITS * LEVELS as u32);
/// Keys whose dense index is at least this use the hash map (bounds the dense table).
const DENSE_MAX: usize = 1 << 22;
/// "No node" in the dense index and in tombstoned slot items.
const NIL: u32 = u32::MAX;

/// How far before its first deadline a wheel that has not seen the present puts its origin.
const ORIGIN_MARGIN_SECS: u64 = 24 * 3600;

/// A timer key. Keys that map to small distinct integers should return them from
/// `dense_index` so the wheel indexes them in a `Vec` instead of a hash map; two keys may
/// share an index (e.g. a socket slot reused under a new generation), the wheel then
/// falls back to hashing for the newcomer.
pub trait WheelKey: Copy + Eq + Hash {
    /// A small integer identifying the key, or `None` to always hash it.
    fn dense_index(&self) -> Option<usize> {
        None
    }
}

macro_rules! dense_int_key {
    ($($t:ty),*) => {$(
        impl WheelKey for $t {
            fn dense_index(&self) -> Option<usize> {
                usize::try_from(*self).ok()
            }
        }
    )*};
}
dense_int_key!(u8, u16, u32, u64, usize);

impl WheelKey for (SockId, TimerKind) {
    fn dense_index(&self) -> Option<usize> {
        let kind = match self.1 {
            TimerKind::Rtx => 0,
            TimerKind::DelAck => 1,
            TimerKind::Keepalive => 2,
            TimerKind::Pace => 3,
        };
        usize::try_from(self.0.index())
            .ok()
            .and_then(|i| i.checked_mul(4))
            .and_then(|i| i.checked_add(kind))
    }
}

/// One armed timer.
#[derive(Clone, Copy, Debug)]
struct Node<K> {
    key: K,
    deadline: Instant,
    /// `level * SLOTS + slot`.
    slot: u16,
    /// Index of this node's item in its slot's run, or in its unsorted rest with `REST`
    /// set.
    pos: u32,
}

/// One slot entry: a copy of the deadline (so scans need no node lookups) and the node,
/// or `NIL` once removed.
#[derive(Clone, Copy, Debug)]
struct Item {
    deadline: Instant,
    node: u32,
}

/// One item of a slot's lazy min-heap over its unsorted items, ordered by
/// (deadline, pos), earliest on top. An item is stale once the unsorted item at `pos` is
/// a tombstone; positions are stable until that list is compacted or emptied, which
/// drops the heap.
#[derive(PartialEq, Eq)]
struct HeapItem {
    deadline: Instant,
    pos: u32,
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.deadline, other.pos).cmp(&(self.deadline, self.pos))
    }
}

/// Set in a node's `pos` when its item is in the slot's unsorted list.
const REST: u32 = 1 << 31;

/// One wheel slot: a run of items in nondecreasing deadline order (everything that
/// arrived no earlier than the run's last item) and an unsorted remainder. Long timers
/// armed as `now + constant` all join the run, so even a slot shared with short timers
/// (e.g. while the wheel's clock is stale) finds its minimum at the run's head plus the
/// minimum of the few out-of-order items.
struct Slot {
    run: Vec<Item>,
    run_live: u32,
    /// Index of the run's first live item (meaningful when `run_live > 0`).
    head: u32,
    rest: Vec<Item>,
    rest_live: u32,
    /// Memoized minimum of `rest` (`None` = unknown or empty).
    rest_min: Cell<Option<Instant>>,
    /// Lazy min-heap over `rest`, built on demand when it is large.
    heap: RefCell<Option<BinaryHeap<HeapItem>>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            run: Vec::new(),
            run_live: 0,
            head: 0,
            rest: Vec::new(),
            rest_live: 0,
            rest_min: Cell::new(None),
            heap: RefCell::new(None),
        }
    }

    fn is_empty(&self) -> bool {
        self.run_live == 0 && self.rest_live == 0
    }

    fn clear_run(&mut self) {
        self.run.clear();
        self.run_live = 0;
        self.head = 0;
    }

    fn clear_rest(&mut self) {
        self.rest.clear();
        self.rest_live = 0;
        self.rest_min.set(None);
        *self.heap.get_mut() = None;
    }

    /// Appends an item and returns its position (with `REST` when unsorted).
    fn push(&mut self, deadline: Instant, node: u32) -> u32 {
        if self.run_live == 0 {
            self.clear_run();
        }
        let in_order = self.run.last().is_none_or(|l| deadline >= l.deadline);
        if in_order {
            let pos = u32::try_from(self.run.len()).unwrap_or(NIL);
            self.run.push(Item { deadline, node });
            self.run_live += 1;
            return pos;
        }
        if self.rest_live == 0 {
            self.clear_rest();
            self.rest_min.set(Some(deadline));
        } else if self.rest_min.get().is_some_and(|m| deadline < m) {
            self.rest_min.set(Some(deadline));
        }
        let pos = u32::try_from(self.rest.len()).unwrap_or(NIL);
        if let Some(heap) = self.heap.get_mut().as_mut() {
            heap.push(HeapItem { deadline, pos });
        }
        self.rest.push(Item { deadline, node });
        self.rest_live += 1;
        pos | REST
    }

    /// Tombstones the item at `pos` if it belongs to `node`; returns true when the list
    /// it was in should be compacted.
    fn remove(&mut self, pos: u32, node: u32) -> Option<bool> {
        if pos & REST != 0 {
            let p = pos & !REST;
            let it = self.rest.get_mut(p as usize).filter(|it| it.node == node)?;
            it.node = NIL;
            let deadline = it.deadline;
            self.rest_live -= 1;
            if self.rest_live == 0 {
                self.clear_rest();
                return Some(false);
            }
            if self.rest_min.get().is_some_and(|m| deadline <= m) {
                self.rest_min.set(None);
            }
            Some(self.rest.len() >= 32 && self.rest.len() > 2 * self.rest_live as usize)
        } else {
            let it = self
                .run
                .get_mut(pos as usize)
                .filter(|it| it.node == node)?;
            it.node = NIL;
            self.run_live -= 1;
            if self.run_live == 0 {
                self.clear_run();
                return Some(false);
            }
            if pos == self.head {
                let skip = self
                    .run
                    .iter()
                    .skip(pos as usize + 1)
                    .position(|it| it.node != NIL)
                    .unwrap_or(0);
                self.head = pos + 1 + skip as u32;
            }
            Some(self.run.len() >= 32 && self.run.len() > 2 * self.run_live as usize)
        }
    }

    /// The earliest deadline held (exact), or `None` when empty.
    fn earliest(&self, scans: &Cell<u64>) -> Option<Instant> {
        let run_min = if self.run_live > 0 {
            self.run.get(self.head as usize).map(|it| it.deadline)
        } else {
            None
        };
        let rest_min = if self.rest_live > 0 {
            self.rest_earliest(scans)
        } else {
            None
        };
        match (run_min, rest_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn rest_earliest(&self, scans: &Cell<u64>) -> Option<Instant> {
        if let Some(m) = self.rest_min.get() {
            return Some(m);
        }
        scans.set(scans.get() + 1);
        let m = if (self.rest_live as usize) <= SCAN_MAX {
            self.rest
                .iter()
                .filter(|it| it.node != NIL)
                .map(|it| it.deadline)
                .min()
        } else {
            let mut cell = self.heap.borrow_mut();
            let heap = cell.get_or_insert_with(|| {
                self.rest
                    .iter()
                    .zip(0u32..)
                    .filter(|(it, _)| it.node != NIL)
                    .map(|(it, pos)| HeapItem {
                        deadline: it.deadline,
                        pos,
                    })
                    .collect()
            });
            while let Some(top) = heap.peek() {
                if self
                    .rest
                    .get(top.pos as usize)
                    .is_some_and(|it| it.node != NIL)
                {
                    break;
                }
                heap.pop();
            }
            heap.peek().map(|top| top.deadline)
        };
        self.rest_min.set(m);
        m
    }
}

/// Drops the tombstones of one slot list, keeping the items' order, and tells the nodes
/// their new positions (`flag` is `REST` for the unsorted list).
fn compact_list<K>(items: &mut Vec<Item>, nodes: &mut [Node<K>], flag: u32) {
    items.retain(|it| it.node != NIL);
    for (it, pos) in items.iter().zip(0u32..) {
        if let Some(node) = nodes.get_mut(it.node as usize) {
            node.pos = pos | flag;
        }
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
    /// Armed timers; free entries are listed in `free`.
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    /// Number of armed timers.
    count: usize,
    /// Node of each key with a small dense index (`NIL` = none there).
    dense: Vec<u32>,
    /// Node of every other armed key (no dense index, or its dense entry was taken).
    overflow: FastHashMap<K, u32>,
    /// `LEVELS * SLOTS` slots.
    slots: Vec<Slot>,
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// Memoized `next_deadline` answer: `None` = unknown, `Some(x)` = the answer `x`.
    next_cache: Cell<Option<Option<Instant>>>,
    /// Minimum recomputations of unsorted slots (tests check they stay rare).
    scans: Cell<u64>,
}

impl<K: WheelKey> Default for TimerWheel<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for TimerWheel<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("timers", &self.count)
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

impl<K: WheelKey> TimerWheel<K> {
    /// An empty wheel (Linux: `init_timers`).
    pub fn new() -> Self {
        TimerWheel {
            origin: None,
            elapsed: 0,
            nodes: Vec::new(),
            free: Vec::new(),
            count: 0,
            dense: Vec::new(),
            overflow: FastHashMap::default(),
            slots: (0..LEVELS * SLOTS).map(|_| Slot::new()).collect(),
            occupied: [0; LEVELS],
            next_cache: Cell::new(Some(None)),
            scans: Cell::new(0),
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when `key` has a pending timer (Linux: `timer_pending`).
    pub fn contains(&self, key: &K) -> bool {
        self.lookup(key).is_some()
    }

    /// The deadline of `key`'s pending timer.
    pub fn deadline(&self, key: &K) -> Option<Instant> {
        let n = self.lookup(key)?;
        self.nodes.get(n as usize).map(|node| node.deadline)
    }

    /// Arms `key` to fire at `deadline`, replacing any pending timer of that key; a
    /// deadline in the past fires at the next `expire`. O(1). Linux: `mod_timer`.
    pub fn schedule(&mut self, key: K, deadline: Instant) {
        let (n, old) = match self.lookup(&key) {
            Some(n) => {
                let Some(old) = self.nodes.get(n as usize).map(|node| node.deadline) else {
                    return;
                };
                if old == deadline {
                    return;
                }
                self.unlink(n);
                (n, Some(old))
            }
            None => {
                let Some(n) = self.alloc(key, deadline) else {
                    return;
                };
                self.index_insert(key, n);
                (n, None)
            }
        };
        let when = self.tick_of(deadline);
        self.place(n, deadline, when);
        match self.next_cache.get() {
            Some(Some(c)) => {
                if deadline <= c {
                    self.next_cache.set(Some(Some(deadline)));
                } else if old.is_some_and(|o| o <= c) {
                    self.next_cache.set(None);
                }
            }
            Some(None) => self.next_cache.set(Some(Some(deadline))),
            None => {}
        }
    }

    /// Disarms `key`; returns true if it was pending. O(1). Linux: `del_timer`.
    pub fn cancel(&mut self, key: &K) -> bool {
        let Some(n) = self.lookup(key) else {
            return false;
        };
        let Some(old) = self.nodes.get(n as usize).map(|node| node.deadline) else {
            return false;
        };
        self.unlink(n);
        self.index_remove(key, n);
        self.release(n);
        if let Some(Some(c)) = self.next_cache.get() {
            if old <= c {
                self.next_cache.set(None);
            }
        }
        true
    }

    /// Removes every timer.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.free.clear();
        self.count = 0;
        self.dense.clear();
        self.overflow.clear();
        for s in &mut self.slots {
            s.clear_run();
            s.clear_rest();
        }
        self.occupied = [0; LEVELS];
        self.next_cache.set(Some(None));
    }

    /// The earliest pending deadline, exactly (the true minimum, neither earlier nor
    /// later). Memoized until a timer expires or the earliest one is cancelled or moved
    /// later; recomputing finds the first non-empty slot with the occupancy bitmaps and
    /// takes that slot's minimum (O(1) for slots filled in deadline order). Linux:
    /// `get_next_timer_interrupt`.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(v) = self.next_cache.get() {
            return v;
        }
        let v = self.next_expiration().and_then(|(level, slot, _)| {
            self.slots.get(level * SLOTS + slot)?.earliest(&self.scans)
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
            let Some(s) = self.slots.get_mut(idx) else {
                break;
            };
            let mut run = std::mem::take(&mut s.run);
            let mut rest = std::mem::take(&mut s.rest);
            s.clear_run();
            s.clear_rest();
            if let Some(o) = self.occupied.get_mut(level) {
                *o &= !(1u64 << slot);
            }
            for &it in run.iter().chain(rest.iter()) {
                if it.node == NIL {
                    continue;
                }
                if level == 0 && it.deadline <= now {
                    if let Some(key) = self.nodes.get(it.node as usize).map(|node| node.key) {
                        self.index_remove(&key, it.node);
                        self.release(it.node);
                        out.push(key);
                    }
                } else {
                    // Cascade to a finer level, or keep a not-yet-due key of this tick.
                    let when = self.tick_of(it.deadline);
                    self.place(it.node, it.deadline, when);
                }
            }
            // Give the allocations back to the slot when nothing was re-placed into them.
            run.clear();
            rest.clear();
            if let Some(s) = self.slots.get_mut(idx) {
                if s.run.is_empty() {
                    s.run = run;
                }
                if s.rest.is_empty() {
                    s.rest = rest;
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

    /// The node armed for `key`.
    fn lookup(&self, key: &K) -> Option<u32> {
        if let Some(&n) = key.dense_index().and_then(|d| self.dense.get(d)) {
            if n != NIL
                && self
                    .nodes
                    .get(n as usize)
                    .is_some_and(|node| node.key == *key)
            {
                return Some(n);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(key).copied()
    }

    fn index_insert(&mut self, key: K, n: u32) {
        if let Some(d) = key.dense_index().filter(|&d| d < DENSE_MAX) {
            if d >= self.dense.len() {
                let len = (d + 1).max(self.dense.len() * 2).min(DENSE_MAX);
                self.dense.resize(len, NIL);
            }
            if let Some(e) = self.dense.get_mut(d) {
                if *e == NIL {
                    *e = n;
                    return;
                }
            }
        }
        self.overflow.insert(key, n);
    }

    fn index_remove(&mut self, key: &K, n: u32) {
        if let Some(e) = key.dense_index().and_then(|d| self.dense.get_mut(d)) {
            if *e == n {
                *e = NIL;
                return;
            }
        }
        self.overflow.remove(key);
    }

    /// A fresh node for `key` (not yet in a slot nor indexed).
    fn alloc(&mut self, key: K, deadline: Instant) -> Option<u32> {
        let node = Node {
            key,
            deadline,
            slot: 0,
            pos: NIL,
        };
        if let Some(n) = self.free.pop() {
            if let Some(slot) = self.nodes.get_mut(n as usize) {
                *slot = node;
                self.count += 1;
                return Some(n);
            }
        }
        let n = u32::try_from(self.nodes.len()).ok().filter(|&n| n != NIL)?;
        self.nodes.push(node);
        self.count += 1;
        Some(n)
    }

    fn release(&mut self, n: u32) {
        self.count -= 1;
        self.free.push(n);
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

    /// Puts node `n` (not in any slot) into the slot for tick `when`.
    fn place(&mut self, n: u32, deadline: Instant, when: u64) {
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let idx = level * SLOTS + slot;
        let Some(s) = self.slots.get_mut(idx) else {
            return;
        };
        let pos = s.push(deadline, n);
        if let Some(o) = self.occupied.get_mut(level) {
            *o |= 1u64 << slot;
        }
        if let Some(node) = self.nodes.get_mut(n as usize) {
            node.deadline = deadline;
            node.slot = idx as u16;
            node.pos = pos;
        }
    }

    /// Takes node `n` out of its slot (the node itself stays allocated and indexed).
    fn unlink(&mut self, n: u32) {
        let Some(&Node { slot, pos, .. }) = self.nodes.get(n as usize) else {
            return;
        };
        let idx = slot as usize;
        let Some(s) = self.slots.get_mut(idx) else {
            return;
        };
        let Some(compact) = s.remove(pos, n) else {
            return;
        };
        if s.is_empty() {
            if let Some(o) = self.occupied.get_mut(idx / SLOTS) {
                *o &= !(1u64 << (idx % SLOTS));
            }
        } else if compact {
            if pos & REST != 0 {
                compact_list(&mut s.rest, &mut self.nodes, REST);
                *s.heap.get_mut() = None;
            } else {
                compact_list(&mut s.run, &mut self.nodes, 0);
                s.head = 0;
            }
        }
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
        let mut rng = ustack_netdev::rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        let mut rnd = move || rng.next_u64();
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
        let mut rng = ustack_netdev::rng::SplitMix64::new(12345);
        let mut rnd = move || rng.next_u64();
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

    /// A key whose dense indices collide (keys `k` and `k + 4` share one), to exercise
    /// the hash-map fallback next to the dense table.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    struct Colliding(u32);

    impl WheelKey for Colliding {
        fn dense_index(&self) -> Option<usize> {
            Some((self.0 % 4) as usize)
        }
    }

    /// A key without a dense index (hash map only).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    struct Hashed(u32);

    impl WheelKey for Hashed {}

    #[test]
    fn rearm_earlier_later_and_same() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut out = Vec::new();
        w.expire(t0, &mut out);
        w.schedule(1u32, t0 + ms(500));
        w.schedule(2u32, t0 + ms(700));
        // Later: the old deadline no longer fires.
        w.schedule(1, t0 + ms(900));
        assert_eq!(w.deadline(&1), Some(t0 + ms(900)));
        assert_eq!(w.next_deadline(), Some(t0 + ms(700)));
        w.expire(t0 + ms(600), &mut out);
        assert!(out.is_empty());
        // Same deadline again: a no-op.
        w.schedule(1, t0 + ms(900));
        assert_eq!(w.len(), 2);
        // Earlier than everything.
        w.schedule(2, t0 + ms(650));
        assert_eq!(w.next_deadline(), Some(t0 + ms(650)));
        w.expire(t0 + ms(650), &mut out);
        assert_eq!(out, vec![2]);
        out.clear();
        w.expire(t0 + ms(899), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + ms(900), &mut out);
        assert_eq!(out, vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn clear_removes_everything() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        for k in 0..1000u32 {
            w.schedule(k, t0 + ms(u64::from(k) * 37));
        }
        w.clear();
        assert!(w.is_empty());
        assert!(!w.contains(&3));
        assert_eq!(w.next_deadline(), None);
        let mut out = Vec::new();
        w.expire(t0 + ms(100_000), &mut out);
        assert!(out.is_empty());
        w.schedule(3, t0 + ms(1));
        w.expire(t0 + ms(100_000), &mut out);
        assert_eq!(out, vec![3]);
    }

    /// TIME_WAIT-like timers armed in order plus churning short timers in a wheel whose
    /// clock never moves (no `expire`): recycling the oldest long timer and cancelling
    /// short ones keeps `next_deadline` exact without any slot rescans.
    #[test]
    fn time_wait_recycling_stays_exact_without_rescans() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let tw = ms(60_000);
        let mut now = t0;
        let n = 30_000u32;
        let mut oldest = 0u32;
        let mut tw_deadlines = std::collections::VecDeque::new();
        for i in 0..100_000u32 {
            now += Duration::from_micros(20);
            // A short timer armed and cancelled (SYN RTO / delayed ACK style).
            let short = 1_000_000 + (i % 50);
            w.schedule(short, now + ms(200));
            assert_eq!(w.next_deadline(), Some(now + ms(200)));
            assert!(w.cancel(&short));
            // Recycle the oldest TIME_WAIT timer once the table is full.
            if tw_deadlines.len() == n as usize {
                assert!(w.cancel(&oldest));
                tw_deadlines.pop_front();
                oldest += 1;
            }
            w.schedule(i, now + tw);
            tw_deadlines.push_back(now + tw);
            assert_eq!(w.next_deadline(), tw_deadlines.front().copied());
        }
        assert_eq!(w.scans.get(), 0, "the in-order run needs no rescans");
        assert_eq!(w.len(), n as usize);
    }

    /// Out-of-order timers sharing a big slot still give the exact minimum.
    #[test]
    fn out_of_order_slot_is_exact() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut out = Vec::new();
        w.expire(t0, &mut out);
        let base = t0 + ms(60_000);
        let mut live: HashMap<u32, Instant> = HashMap::new();
        // Descending deadlines: everything after the first lands out of order.
        for k in 0..2_000u32 {
            let d = base + ms(2_000) - Duration::from_micros(u64::from(k) * 900);
            w.schedule(k, d);
            live.insert(k, d);
        }
        // Cancel the current minimum repeatedly.
        for _ in 0..500 {
            let (&k, _) = live.iter().min_by_key(|(_, d)| **d).expect("non-empty");
            assert_eq!(w.next_deadline(), live.get(&k).copied());
            assert!(w.cancel(&k));
            live.remove(&k);
        }
        assert_eq!(w.next_deadline(), live.values().copied().min());
        w.expire(base + ms(3_000), &mut out);
        assert_eq!(out.len(), live.len());
        for k in &out {
            assert!(live.contains_key(k));
        }
    }

    #[test]
    fn colliding_and_hashed_keys() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut out = Vec::new();
        w.expire(t0, &mut out);
        for k in 0..16u32 {
            w.schedule(Colliding(k), t0 + ms(10 + u64::from(k)));
        }
        assert_eq!(w.len(), 16);
        for k in 0..16u32 {
            assert_eq!(w.deadline(&Colliding(k)), Some(t0 + ms(10 + u64::from(k))));
        }
        // Free the dense entries, then re-arm keys that sat in the fallback map.
        for k in 0..4u32 {
            assert!(w.cancel(&Colliding(k)));
        }
        assert!(!w.contains(&Colliding(0)));
        w.schedule(Colliding(4), t0 + ms(5));
        w.schedule(Colliding(20), t0 + ms(6));
        assert_eq!(w.deadline(&Colliding(4)), Some(t0 + ms(5)));
        assert_eq!(w.len(), 13);
        w.expire(t0 + ms(100), &mut out);
        let mut got: Vec<u32> = out.iter().map(|c| c.0).collect();
        got.sort_unstable();
        let mut want: Vec<u32> = (4..16).chain([20]).collect();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(w.is_empty());

        let mut h = TimerWheel::new();
        h.schedule(Hashed(7), t0 + ms(3));
        h.schedule(Hashed(8), t0 + ms(2));
        assert!(h.cancel(&Hashed(8)));
        let mut out = Vec::new();
        h.expire(t0 + ms(3), &mut out);
        assert_eq!(out, vec![Hashed(7)]);
    }

    #[test]
    fn socket_keys_with_reused_slots() {
        let t0 = Instant::now();
        let mut w: TimerWheel<(SockId, TimerKind)> = TimerWheel::new();
        let old = SockId::from_u64((1 << 32) | 5);
        let new = SockId::from_u64((2 << 32) | 5);
        w.schedule((old, TimerKind::Keepalive), t0 + ms(60_000));
        w.schedule((new, TimerKind::Keepalive), t0 + ms(30));
        w.schedule((new, TimerKind::Rtx), t0 + ms(20));
        w.schedule((old, TimerKind::DelAck), t0 + ms(10));
        assert_eq!(w.len(), 4);
        assert_eq!(
            w.deadline(&(old, TimerKind::Keepalive)),
            Some(t0 + ms(60_000))
        );
        assert!(w.cancel(&(old, TimerKind::Keepalive)));
        assert_eq!(w.deadline(&(new, TimerKind::Keepalive)), Some(t0 + ms(30)));
        let mut out = Vec::new();
        w.expire(t0 + ms(60_000), &mut out);
        assert_eq!(
            out,
            vec![
                (old, TimerKind::DelAck),
                (new, TimerKind::Rtx),
                (new, TimerKind::Keepalive)
            ]
        );
    }

    /// One step of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Schedule(u32, u64),
        Cancel(u32),
        Advance(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..40u32, 0..300_000u64).prop_map(|(k, d)| Op::Schedule(k, d)),
            2 => (0..40u32, 0..130_000_000u64).prop_map(|(k, d)| Op::Schedule(k, d)),
            1 => (0..40u32, 0..5_000_000_000u64).prop_map(|(k, d)| Op::Schedule(k, d)),
            2 => (0..40u32).prop_map(Op::Cancel),
            3 => (0..400_000u64).prop_map(Op::Advance),
            1 => (0..90_000_000u64).prop_map(Op::Advance),
        ]
    }

    /// Runs `ops` (deadlines and steps in µs) against a plain map of deadlines.
    fn check_against_model<K: WheelKey + fmt::Debug>(
        ops: &[Op],
        key: impl Fn(u32) -> K,
        expire_first: bool,
    ) {
        let t0 = Instant::now();
        let mut w = TimerWheel::new();
        let mut model: HashMap<K, Instant> = HashMap::new();
        let mut now = t0;
        let mut out = Vec::new();
        if expire_first {
            w.expire(now, &mut out);
        }
        for op in ops {
            match *op {
                Op::Schedule(k, d) => {
                    let d = now + Duration::from_micros(d);
                    w.schedule(key(k), d);
                    model.insert(key(k), d);
                }
                Op::Cancel(k) => {
                    assert_eq!(w.cancel(&key(k)), model.remove(&key(k)).is_some());
                }
                Op::Advance(step) => {
                    now += Duration::from_micros(step);
                    out.clear();
                    w.expire(now, &mut out);
                    for k in &out {
                        let d = model.remove(k).expect("fired a pending key once");
                        assert!(d <= now, "fired early");
                    }
                    assert!(model.values().all(|&d| d > now), "a due key did not fire");
                }
            }
            assert_eq!(w.len(), model.len());
            assert_eq!(w.next_deadline(), model.values().copied().min());
            for (k, d) in &model {
                assert_eq!(w.deadline(k), Some(*d));
            }
        }
        // Waking at each returned deadline fires that timer right there.
        while let Some(d) = w.next_deadline() {
            out.clear();
            w.expire(d, &mut out);
            assert!(!out.is_empty(), "nothing fired at the returned deadline");
            for k in &out {
                let kd = model.remove(k).expect("pending");
                assert!(kd <= d);
            }
        }
        assert!(model.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..300), first in proptest::bool::ANY) {
            check_against_model(&ops, |k| k, first);
        }

        #[test]
        fn matches_model_colliding(ops in proptest::collection::vec(op(), 1..300), first in proptest::bool::ANY) {
            check_against_model(&ops, Colliding, first);
        }
    }
}
