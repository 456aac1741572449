//! The Internet checksum (RFC 1071) with incremental update (RFC 1624).
//!
//! The sum is accumulated 32 bits at a time into a 64-bit accumulator, so carries never
//! overflow for any packet size the stack handles, and folded once at the end.

use std::net::Ipv4Addr;

/// Adds `data` to a running one's-complement sum `acc` (not yet folded).
/// An odd trailing byte is padded with a zero byte, as RFC 1071 prescribes.
#[inline]
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut acc = acc;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u32::from_be_bytes(tail) as u64
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
