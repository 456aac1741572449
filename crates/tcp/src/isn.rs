//! Keyed hashing for unpredictable numbers: initial sequence numbers (RFC 6528),
//! ephemeral port offsets (RFC 6056 algorithm 3) and timestamp offsets (RFC 7323
//! section 5.4). Linux: `net/core/secure_seq.c` (`secure_tcp_seq`,
//! `secure_ipv4_port_ephemeral`, `secure_tcp_ts_off`) and `lib/siphash.c`.
//!
//! SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) is
//! written here from the paper; tests check the paper's vectors.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

fn le_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

/// SipHash-2-4 of `msg` under the 128-bit `key` (paper section 2). Linux: `siphash()`.
pub fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = le_u64(&key[..8]);
    let k1 = le_u64(&key[8..]);
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let m = le_u64(c);
        v[3] ^= m;
        sipround(&mut v);
        sipround(&mut v);
        v[0] ^= m;
    }
    // Last word: remaining bytes, length mod 256 in the top byte.
    let m = le_u64(chunks.remainder()) | ((msg.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    sipround(&mut v);
    sipround(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Domain-separation tags so that the values derived from one secret are independent.
const TAG_ISN: u8 = b'I';
const TAG_PORT: u8 = b'P';
const TAG_TS: u8 = b'T';

/// Keyed generator of ISNs, port offsets and timestamp offsets (Linux: the
/// `net_secret` / `ts_secret` keys of `secure_seq.c`).
#[derive(Clone)]
pub struct IsnGenerator {
    secret: [u8; 16],
}

impl std::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("IsnGenerator { .. }")
    }
}

fn tuple_msg(tag: u8, local: SocketAddrV4, remote: SocketAddrV4) -> [u8; 13] {
    let mut m = [0u8; 13];
    m[0] = tag;
    m[1..5].copy_from_slice(&local.ip().octets());
    m[5..7].copy_from_slice(&local.port().to_be_bytes());
    m[7..11].copy_from_slice(&remote.ip().octets());
    m[11..13].copy_from_slice(&remote.port().to_be_bytes());
    m
}

impl IsnGenerator {
    /// A generator keyed by `secret` (keep it secret; 16 random bytes per stack).
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { secret }
    }

    /// RFC 6528 section 3: ISN = M + F(localip, localport, remoteip, remoteport,
    /// secretkey), with M a 4 µs clock (`elapsed` since the stack started) and F
    /// SipHash-2-4. Linux: `secure_tcp_seq` (which uses a 64 ns clock).
    pub fn isn(&self, elapsed: Duration, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let m = (elapsed.as_micros() / 4) as u32; // wraps like a 32-bit counter
        let f = siphash24(&self.secret, &tuple_msg(TAG_ISN, local, remote)) as u32;
        m.wrapping_add(f)
    }

    /// RFC 6056 section 3.3.3 (algorithm 3): offset = F(local_IP, remote_IP,
    /// remote_port, secret_key). Linux: `secure_ipv4_port_ephemeral`. Combine with
    /// [`ephemeral_port`].
    pub fn port_offset(&self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> u32 {
        let mut m = [0u8; 11];
        m[0] = TAG_PORT;
        m[1..5].copy_from_slice(&local_ip.octets());
        m[5..9].copy_from_slice(&remote.ip().octets());
        m[9..11].copy_from_slice(&remote.port().to_be_bytes());
        siphash24(&self.secret, &m) as u32
    }

    /// A per-address-pair offset for our TCP timestamp clock (RFC 7323 section 5.4,
    /// RFC 7323 appendix: randomize per connection). Linux: `secure_tcp_ts_off`.
    pub fn ts_offset(&self, local_ip: Ipv4Addr, remote_ip: Ipv4Addr) -> u32 {
        let mut m = [0u8; 9];
        m[0] = TAG_TS;
        m[1..5].copy_from_slice(&local_ip.octets());
        m[5..9].copy_from_slice(&remote_ip.octets());
        siphash24(&self.secret, &m) as u32
    }
}

/// The `attempt`-th candidate port of RFC 6056 algorithm 3:
/// `min + (next_ephemeral + attempt + offset) % (max - min + 1)`. The caller tries
/// attempts 0, 1, ... up to the range size and advances its `next_ephemeral` counter by
/// the attempts used. Returns `min` for an empty range (`max < min`).
/// Linux: the loop of `__inet_hash_connect`.
pub fn ephemeral_port(offset: u32, next_ephemeral: u32, attempt: u32, min: u16, max: u16) -> u16 {
    if max < min {
        return min;
    }
    let n = u32::from(max - min) + 1;
    let idx = next_ephemeral.wrapping_add(attempt).wrapping_add(offset) % n;
    min.saturating_add(idx as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 16] {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        k
    }

    #[test]
    fn siphash_paper_vectors() {
        let msg: Vec<u8> = (0u8..64).collect();
        let k = key();
        // Appendix A of the paper: 15-byte message 00..0e.
        assert_eq!(siphash24(&k, &msg[..15]), 0xa129_ca61_49be_45e5);
        // Reference implementation's vectors.h, lengths 0, 1, 2, 3, 4 and 8.
        assert_eq!(siphash24(&k, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&k, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&k, &msg[..2]), 0x0d6c_8009_d9a9_4f5a);
        assert_eq!(siphash24(&k, &msg[..3]), 0x8567_6696_d7fb_7e2d);
        assert_eq!(siphash24(&k, &msg[..4]), 0xcf27_94e0_2771_87b7);
        assert_eq!(siphash24(&k, &msg[..8]), 0x93f5_f579_9a93_2462);
    }

    fn sa(a: [u8; 4], p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), p)
    }

    #[test]
    fn isn_depends_on_tuple_time_and_key() {
        let g = IsnGenerator::new(key());
        let l = sa([10, 0, 0, 1], 80);
        let r = sa([10, 0, 0, 2], 40000);
        let t = Duration::from_secs(5);
        let a = g.isn(t, l, r);
        assert_eq!(a, g.isn(t, l, r));
        assert_ne!(a, g.isn(t, l, sa([10, 0, 0, 2], 40001)));
        assert_ne!(a, g.isn(t, l, sa([10, 0, 0, 3], 40000)));
        assert_ne!(a, g.isn(t, r, l));
        // M advances one per 4 µs.
        assert_eq!(
            g.isn(t + Duration::from_micros(400), l, r),
            a.wrapping_add(100)
        );
        assert_eq!(g.isn(t + Duration::from_micros(3), l, r), a);
        // Another key, another ISN.
        let mut k2 = key();
        k2[0] ^= 1;
        assert_ne!(a, IsnGenerator::new(k2).isn(t, l, r));
        // The debug output does not leak the key.
        assert_eq!(format!("{g:?}"), "IsnGenerator { .. }");
    }

    #[test]
    fn port_offset_and_candidates() {
        let g = IsnGenerator::new(key());
        let lip = Ipv4Addr::new(10, 0, 0, 1);
        let r = sa([93, 184, 216, 34], 443);
        let o = g.port_offset(lip, r);
        assert_eq!(o, g.port_offset(lip, r));
        assert_ne!(o, g.port_offset(lip, sa([93, 184, 216, 34], 80)));
        assert_ne!(o, g.port_offset(Ipv4Addr::new(10, 0, 0, 9), r));
        // Candidates walk the whole range once.
        let (min, max) = (32768u16, 60999u16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..u32::from(max - min) + 1 {
            let p = ephemeral_port(o, 7, i, min, max);
            assert!((min..=max).contains(&p));
            assert!(seen.insert(p));
        }
        assert_eq!(ephemeral_port(o, 0, 0, 5, 5), 5);
        assert_eq!(ephemeral_port(o, 0, 0, 6, 5), 6);
        assert_ne!(g.ts_offset(lip, *r.ip()), g.ts_offset(*r.ip(), lip));
    }
}
