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
            return unsafe { wide_le_sum_avx2(data) };
        }
    }
    wide_le_sum_generic(data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn wide_le_sum_avx2(data: &[u8]) -> u64 {
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
        let mut x = 0x1234_5678_9abc_def0u64;
        let data: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in (0..200).chain([1459, 1460, 1480, 2999, 3000]) {
            for acc in [0u64, 0xffff, 0x1_2345_6789] {
                let d = &data[..len];
                assert_eq!(fold(sum(d, acc)), fold(reference_sum(d, acc)), "len {len}");
            }
        }
        let ones = vec![0xffu8; 1500];
        assert_eq!(fold(sum(&ones, 0)), fold(reference_sum(&ones, 0)));
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
