//! The Internet checksum (RFC 1071) with incremental update (RFC 1624).
//!
//! The sum is accumulated 32 bits at a time into a 64-bit accumulator, so carries never
//! overflow for any packet size the stack handles, and folded once at the end.

use std::net::Ipv4Addr;

/// Adds `data` to a running one's-complement sum `acc` (not yet folded).
/// An odd trailing byte is padded with a zero byte, as RFC 1071 prescribes.
///
/// The bulk of the data is summed as little-endian 32-bit words into eight independent
/// 64-bit accumulators (32 bytes per iteration, vectorized; AVX2 when available); the
/// one's-complement sum is byte-order independent (RFC 1071 section
/// 2(B)), so the folded result is byte-swapped back to network order at the end.
#[inline]
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let split = data.len() & !31;
    let (bulk, rest) = data.split_at(split);
    let mut acc = acc;
    if !bulk.is_empty() {
        acc += fold(wide_le_sum(bulk)).swap_bytes() as u64;
    }
    let mut words = rest.chunks_exact(4);
    for c in &mut words {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u32::from_be_bytes(tail) as u64
}

/// The unfolded sum of `data` (a multiple of 32 bytes) as little-endian 32-bit words,
/// with AVX2 when the CPU has it (twice the width of the SSE2 baseline).
#[inline]
fn wide_le_sum(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2::le_sum(data, None) };
        }
    }
    wide_le_sum_generic(data)
}

/// Eight independent 64-bit accumulators of 32-bit words, 32 bytes per iteration (the
/// compiler vectorizes this loop). No overflow below 2^32 iterations.
#[inline(always)]
fn wide_le_sum_generic(data: &[u8]) -> u64 {
    let mut a = [0u64; 8];
    for b in data.chunks_exact(32) {
        for (i, w) in b.chunks_exact(4).enumerate() {
            a[i] += u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
        }
    }
    a.iter().map(|&x| (x & 0xffff_ffff) + (x >> 32)).sum()
}

/// Hand-written AVX2 kernels. Each 32-bit lane of a vector is split into its two
/// little-endian 16-bit halves, which are added into 32-bit accumulators (a mask, a shift
/// and two adds per 32 bytes: no cross-lane shuffles, so it runs at about the load rate).
/// The sum of little-endian 16-bit words folds to the same one's-complement value as
/// the sum of little-endian 32-bit words.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_loadu_si256, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_srli_epi32, _mm256_storeu_si256,
    };

    /// 32-byte blocks per inner run: each accumulator lane gains at most 2 * 0xffff per
    /// block, so 2^15 blocks stay far below 2^32.
    const RUN: usize = 1 << 15;

    /// Sum of the eight 32-bit lanes of `v`, widened.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lanes(v: __m256i) -> u64 {
        let mut l = [0u32; 8];
        // SAFETY: `l` is 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), v) };
        l.iter().map(|&x| x as u64).sum()
    }

    /// The unfolded little-endian sum of `src` (its length a multiple of 32). With
    /// `dst` (the same length), `src` is also copied into it in the same pass.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn le_sum(src: &[u8], mut dst: Option<&mut [u8]>) -> u64 {
        let blocks = src.len() / 32;
        if let Some(d) = dst.as_deref() {
            assert!(d.len() >= blocks * 32, "copy destination too short");
        }
        let mask = _mm256_set1_epi32(0xffff);
        let mut total = 0u64;
        let mut done = 0usize;
        while done < blocks {
            let run = (blocks - done).min(RUN);
            let mut lo0 = _mm256_setzero_si256();
            let mut hi0 = _mm256_setzero_si256();
            let mut lo1 = _mm256_setzero_si256();
            let mut hi1 = _mm256_setzero_si256();
            let mut i = done;
            let end = done + run;
            let s = src.as_ptr();
            let d = dst.as_deref_mut().map(|d| d.as_mut_ptr());
            while i + 2 <= end {
                // SAFETY: blocks i and i+1 lie inside `src` (and `dst`, checked above).
                unsafe {
                    let a = _mm256_loadu_si256(s.add(i * 32).cast());
                    let b = _mm256_loadu_si256(s.add(i * 32 + 32).cast());
                    if let Some(d) = d {
                        _mm256_storeu_si256(d.add(i * 32).cast(), a);
                        _mm256_storeu_si256(d.add(i * 32 + 32).cast(), b);
                    }
                    lo0 = _mm256_add_epi32(lo0, _mm256_and_si256(a, mask));
                    hi0 = _mm256_add_epi32(hi0, _mm256_srli_epi32(a, 16));
                    lo1 = _mm256_add_epi32(lo1, _mm256_and_si256(b, mask));
                    hi1 = _mm256_add_epi32(hi1, _mm256_srli_epi32(b, 16));
                }
                i += 2;
            }
            if i < end {
                // SAFETY: block i lies inside `src` (and `dst`).
                unsafe {
                    let a = _mm256_loadu_si256(s.add(i * 32).cast());
                    if let Some(d) = d {
                        _mm256_storeu_si256(d.add(i * 32).cast(), a);
                    }
                    lo0 = _mm256_add_epi32(lo0, _mm256_and_si256(a, mask));
                    hi0 = _mm256_add_epi32(hi0, _mm256_srli_epi32(a, 16));
                }
            }
            // SAFETY: AVX2 is enabled for this function.
            // Each lane of the four accumulators is below 2^31, so pairwise sums fit.
            total +=
                unsafe { lanes(_mm256_add_epi32(lo0, lo1)) + lanes(_mm256_add_epi32(hi0, hi1)) };
            done = end;
        }
        total
    }
}

/// Copies `src` into `dst` (which must be exactly as long) and returns `sum(src, acc)`,
/// reading the data once (Linux: `csum_partial_copy_nocheck`). Transmit uses it to
/// checksum the payload while copying it from the send buffer into the packet.
///
/// # Panics
/// If the lengths differ.
#[inline]
pub fn copy_sum(src: &[u8], dst: &mut [u8], acc: u64) -> u64 {
    assert_eq!(src.len(), dst.len(), "copy_sum: lengths differ");
    let split = src.len() & !31;
    let (bulk, rest) = src.split_at(split);
    let (dbulk, drest) = dst.split_at_mut(split);
    let mut acc = acc;
    if !bulk.is_empty() {
        #[cfg(target_arch = "x86_64")]
        let wide = if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { avx2::le_sum(bulk, Some(dbulk)) }
        } else {
            dbulk.copy_from_slice(bulk);
            wide_le_sum_generic(dbulk)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let wide = {
            dbulk.copy_from_slice(bulk);
            wide_le_sum_generic(dbulk)
        };
        acc += fold(wide).swap_bytes() as u64;
    }
    drest.copy_from_slice(rest);
    sum(rest, acc)
}

/// Adds the sum `part` of a block that started at an odd byte offset of the data being
/// checksummed: its 16-bit words were paired the other way round (RFC 1071 section
/// 2(B): byte swapping), so it is folded and byte-swapped first.
#[inline]
pub fn add_at_odd_offset(acc: u64, part: u64) -> u64 {
    acc + fold(part).swap_bytes() as u64
}

/// Folds a running sum to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the one's complement of the folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The sum of the TCP/UDP pseudo-header (RFC 9293 section 3.1, RFC 768).
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    u32::from(src) as u64 + u32::from(dst) as u64 + protocol as u64 + len as u64
}

/// Checksum of a transport segment including its pseudo-header.
/// Verifying a received segment: the result is 0 when its checksum field is correct.
#[inline]
pub fn transport_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = segment.len().min(u16::MAX as usize) as u16;
    !fold(sum(segment, pseudo_header_sum(src, dst, protocol, len)))
}

/// Incremental update of a checksum `old_check` when one 16-bit word of the covered data
/// changes from `old` to `new` (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline]
pub fn update_u16(old_check: u16, old: u16, new: u16) -> u16 {
    let acc = (!old_check) as u64 + (!old) as u64 + new as u64;
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain RFC 1071 loop: big-endian 16-bit words.
    fn reference_sum(data: &[u8], mut acc: u64) -> u64 {
        let mut c = data.chunks_exact(2);
        for w in &mut c {
            acc += u16::from_be_bytes([w[0], w[1]]) as u64;
        }
        if let [b] = c.remainder() {
            acc += (*b as u64) << 8;
        }
        acc
    }

    #[test]
    fn wide_sum_matches_reference() {
        let data = random_bytes(3000, 0x1234_5678_9abc_def0);
        for len in (0..200).chain([1459, 1460, 1480, 2999, 3000]) {
            for acc in [0u64, 0xffff, 0x1_2345_6789] {
                let d = &data[..len];
                assert_eq!(fold(sum(d, acc)), fold(reference_sum(d, acc)), "len {len}");
            }
        }
        let ones = vec![0xffu8; 1500];
        assert_eq!(fold(sum(&ones, 0)), fold(reference_sum(&ones, 0)));
    }

    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        ustack_netdev::rng::SplitMix64::new(seed).bytes(n)
    }

    #[test]
    fn copy_sum_copies_and_matches_reference() {
        let data = random_bytes(70_000, 0x9e37_79b9_7f4a_7c15);
        let mut dst = vec![0u8; 70_000];
        // Every length up to a few blocks, typical segment sizes, and misaligned
        // source / destination starts.
        let lens = (0..260).chain([1459, 1460, 1448, 8948, 65_495, 69_990]);
        for len in lens {
            for (so, dof) in [(0, 0), (1, 0), (0, 3), (5, 7)] {
                let src = &data[so..so + len];
                let d = &mut dst[dof..dof + len];
                d.fill(0x5a);
                for acc in [0u64, 0xffff, 0x1_2345_6789] {
                    let got = copy_sum(src, d, acc);
                    assert_eq!(fold(got), fold(reference_sum(src, acc)), "len {len}");
                    assert_eq!(d, src, "len {len}");
                }
            }
        }
    }

    #[test]
    fn wide_sums_do_not_overflow_on_large_inputs() {
        // More than one inner run of the vector kernel (2^15 blocks = 1 MiB), all ones
        // (the largest lane increments).
        let ones = vec![0xffu8; (3 << 20) + 96];
        assert_eq!(fold(sum(&ones, 0)), fold(reference_sum(&ones, 0)));
        let mut dst = vec![0u8; ones.len()];
        assert_eq!(
            fold(copy_sum(&ones, &mut dst, 7)),
            fold(reference_sum(&ones, 7))
        );
        assert_eq!(dst, ones);
        let data = random_bytes((2 << 20) + 33, 77);
        assert_eq!(fold(sum(&data, 1)), fold(reference_sum(&data, 1)));
    }

    #[test]
    fn split_sums_combine_at_odd_offsets() {
        let data = random_bytes(3001, 5);
        for cut in [0usize, 1, 2, 31, 32, 33, 1459, 1460, 2999, 3000, 3001] {
            let (a, b) = data.split_at(cut);
            let head = sum(a, 0x1234);
            let total = if cut % 2 == 0 {
                sum(b, head)
            } else {
                add_at_odd_offset(head, sum(b, 0))
            };
            assert_eq!(fold(total), fold(reference_sum(&data, 0x1234)), "cut {cut}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0xab]), !0xab00);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
    }

    #[test]
    fn carry_folding() {
        // 0xffff + 0xffff = 0x1fffe -> folds to 0xffff.
        assert_eq!(fold(sum(&[0xff, 0xff, 0xff, 0xff], 0)), 0xffff);
        // Many words that carry repeatedly.
        let data = vec![0xffu8; 100_001];
        let naive = {
            let mut s: u32 = 0;
            for c in data.chunks(2) {
                let w = if c.len() == 2 {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    (c[0] as u16) << 8
                };
                s += w as u32;
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        assert_eq!(fold(sum(&data, 0)), naive);
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
    }

    #[test]
    fn verify_gives_zero() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&hdr);
        assert_eq!(c, 0xb861);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        // Decrement TTL (word at offset 8: ttl<<8 | proto).
        let old = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let new = u16::from_be_bytes([hdr[8], hdr[9]]);
        let inc = update_u16(0xb861, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&hdr));
    }
}
