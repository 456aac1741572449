//! A counting global allocator: live bytes and allocation count, read by the scale
//! benchmark to measure memory per idle connection. It counts only after [`enable`]
//! (the scale benchmark calls it first), so the other benchmarks pay no shared atomic
//! counter on every allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};

/// Wraps the system allocator and counts live bytes once enabled.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

#[cfg_attr(not(feature = "with-ustack"), allow(dead_code))]
/// Starts counting. Live bytes are read as differences between two points after this
/// call (memory freed in between that was allocated before it is subtracted, as it would
/// be with counting always on).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

#[cfg_attr(not(feature = "with-ustack"), allow(dead_code))]
/// Bytes currently allocated through the global allocator.
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64
}

#[cfg_attr(not(feature = "with-ustack"), allow(dead_code))]
/// Number of allocations (and reallocations) so far.
pub fn alloc_count() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}
