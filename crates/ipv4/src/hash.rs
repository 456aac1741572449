//! A fast keyed hasher for the stack's lookup tables (Linux: `jhash` with a random
//! `inet_ehash_secret`).
//!
//! `std`'s default SipHash-1-3 costs tens of nanoseconds per lookup, which shows up on
//! every packet (socket demux, route lookup, timers). This hasher mixes 8 bytes per
//! multiply (the FxHash construction) starting from a per-table random seed, and ends
//! with a folded 128-bit multiply so that every output bit depends on every input bit.
//! Like the kernel's jhash it is not a cryptographic PRF; the random seed keeps bucket
//! positions unpredictable to a peer that cannot observe timing.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` using [`FastState`].
pub type FastHashMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` using [`FastState`].
pub type FastHashSet<K> = HashSet<K, FastState>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Builds [`FastHasher`]s seeded with a random value chosen when the table is created.
#[derive(Clone, Debug)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        FastState {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

/// The hasher made by [`FastState`].
#[derive(Clone, Debug)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.h = (self.h.rotate_left(26) ^ x).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            self.add(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        let r = c.remainder();
        if !r.is_empty() {
            let mut t = [0u8; 8];
            t[..r.len()].copy_from_slice(r);
            self.add(u64::from_le_bytes(t) ^ ((r.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let m = (self.h as u128).wrapping_mul(K as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_works_and_spreads() {
        let mut m: FastHashMap<(u32, u16), u32> = FastHashMap::default();
        for i in 0..10_000u32 {
            m.insert((i, (i % 7) as u16), i);
        }
        for i in 0..10_000u32 {
            assert_eq!(m.get(&(i, (i % 7) as u16)), Some(&i));
        }
        // Distinct inputs give distinct hashes in practice; low and high bits both vary.
        let s = FastState::default();
        let hs: HashSet<u64> = (0..1000u32).map(|i| s.hash_one(i) & 0xff).collect();
        assert!(hs.len() > 200);
        let hs: HashSet<u64> = (0..1000u32).map(|i| s.hash_one(i) >> 56).collect();
        assert!(hs.len() > 200);
    }
}
