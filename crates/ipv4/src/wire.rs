//! The IPv4 header (RFC 791 section 3.1): validation on parse, building on emit.
//!
//! Linux: `ip_rcv_core` (validation) and `ip_build_and_send_pkt` / `__ip_queue_xmit`
//! (building).

use crate::checksum;
use std::fmt;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 datagram (total length is a 16-bit field).
pub const MAX_DATAGRAM: usize = 65535;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Why a received IPv4 header was rejected. Linux counts all of them in `InHdrErrors`
/// except [`HeaderError::Truncated`] (`InTruncatedPkts`) and
/// [`HeaderError::BadAddress`] (a martian, counted in `InAddrErrors` by ustack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The buffer is shorter than 20 bytes, than the header length, or than the
    /// total length field says.
    Truncated,
    /// The version field is not 4.
    BadVersion,
    /// IHL is below 5 (20 bytes).
    BadHeaderLength,
    /// The total length is smaller than the header length.
    BadTotalLength,
    /// The header checksum does not verify.
    BadChecksum,
    /// Fragment fields are inconsistent: offset + payload beyond 65535, a non-final
    /// fragment whose payload is empty or not a multiple of 8 bytes.
    BadFragment,
    /// The source is multicast or limited broadcast, or the destination is 0.0.0.0
    /// (Linux: martian source / destination in `ip_route_input_slow`).
    BadAddress,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            HeaderError::Truncated => "truncated IPv4 packet",
            HeaderError::BadVersion => "IP version is not 4",
            HeaderError::BadHeaderLength => "IPv4 header length below 20",
            HeaderError::BadTotalLength => "IPv4 total length below header length",
            HeaderError::BadChecksum => "bad IPv4 header checksum",
            HeaderError::BadFragment => "inconsistent IPv4 fragment fields",
            HeaderError::BadAddress => "martian IPv4 address",
        };
        f.write_str(s)
    }
}

impl std::error::Error for HeaderError {}

/// A parsed IPv4 header (high-level representation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number of the payload (`IPPROTO_*`).
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Type of service / DSCP+ECN byte.
    pub tos: u8,
    /// Identification (used for reassembly).
    pub ident: u16,
    /// Don't Fragment flag.
    pub dont_frag: bool,
    /// More Fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes (the wire field times 8).
    pub frag_offset: u16,
    /// Header length in bytes including options (20..=60). [`Ipv4Repr::emit`] always
    /// writes a 20-byte header and ignores this field.
    pub header_len: usize,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        None => Ipv4Addr::UNSPECIFIED,
    }
}

impl Ipv4Repr {
    /// Parses and fully validates the header at the start of `packet` (RFC 791 3.1,
    /// RFC 1122 3.2.1). `packet` may be longer than the total length (link padding):
    /// the caller trims it to `header_len + payload_len`, as Linux `ip_rcv_core` does.
    /// Options are skipped, not interpreted.
    ///
    /// Linux: `ip_rcv_core`.
    #[inline]
    pub fn parse(packet: &[u8]) -> Result<Ipv4Repr, HeaderError> {
        let Some(h) = packet.get(..HEADER_LEN) else {
            return Err(HeaderError::Truncated);
        };
        if h[0] >> 4 != 4 {
            return Err(HeaderError::BadVersion);
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(HeaderError::BadHeaderLength);
        }
        let Some(full_hdr) = packet.get(..header_len) else {
            return Err(HeaderError::Truncated);
        };
        let total_len = usize::from(be16(h, 2));
        if total_len < header_len {
            return Err(HeaderError::BadTotalLength);
        }
        if total_len > packet.len() {
            return Err(HeaderError::Truncated);
        }
        if checksum::checksum(full_hdr) != 0 {
            return Err(HeaderError::BadChecksum);
        }
        let payload_len = total_len - header_len;
        let frag = be16(h, 6);
        // The reserved flag bit (RFC 791 "must be zero") is ignored, as Linux does.
        let dont_frag = frag & FLAG_DF != 0;
        let more_frags = frag & FLAG_MF != 0;
        let off = usize::from(frag & OFFSET_MASK) * 8;
        if off + payload_len > MAX_DATAGRAM {
            return Err(HeaderError::BadFragment);
        }
        // RFC 791: every fragment but the last carries a multiple of 8 bytes, never zero.
        if more_frags && (payload_len == 0 || payload_len % 8 != 0) {
            return Err(HeaderError::BadFragment);
        }
        let src = addr_at(h, 12);
        let dst = addr_at(h, 16);
        if src.is_multicast() || src.is_broadcast() || dst.is_unspecified() {
            return Err(HeaderError::BadAddress);
        }
        Ok(Ipv4Repr {
            src,
            dst,
            protocol: h[9],
            ttl: h[8],
            tos: h[1],
            ident: be16(h, 4),
            dont_frag,
            more_frags,
            frag_offset: off as u16,
            header_len,
            payload_len,
        })
    }

    /// Total length of the datagram as emitted (20-byte header + payload).
    pub fn emitted_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// True when this header describes a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// Writes a 20-byte header (no options) into `hdr[..20]` and computes its checksum.
    /// The total length field is `20 + payload_len` (saturated at 65535). `hdr` must be at
    /// least 20 bytes long; a shorter slice is left untouched (never a panic).
    ///
    /// Linux: the header building in `__ip_queue_xmit` / `ip_fragment`.
    pub fn emit(&self, hdr: &mut [u8]) {
        let Some(h) = hdr.get_mut(..HEADER_LEN) else {
            return;
        };
        let total = self.emitted_len().min(MAX_DATAGRAM) as u16;
        let mut frag = (self.frag_offset / 8) & OFFSET_MASK;
        if self.dont_frag {
            frag |= FLAG_DF;
        }
        if self.more_frags {
            frag |= FLAG_MF;
        }
        let src = u32::from(self.src);
        let dst = u32::from(self.dst);
        // The checksum is summed from the field values, not read back from the bytes
        // just stored (wide loads right after narrow stores stall store forwarding).
        // TTL and protocol are added separately: combined into one 16-bit value, the
        // compiler loads both bytes at once, which stalls the same way when the caller
        // just stored them one by one.
        let words = [
            0x4500 | u16::from(self.tos),
            total,
            self.ident,
            frag,
            (src >> 16) as u16,
            src as u16,
            (dst >> 16) as u16,
            dst as u16,
        ];
        let acc: u64 = words.iter().map(|&w| u64::from(w)).sum::<u64>()
            + u64::from(self.ttl) * 256
            + u64::from(self.protocol);
        let c = !checksum::fold(acc);
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 6,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            header_len: 20,
            payload_len: 8,
        }
    }

    fn packet() -> Vec<u8> {
        let mut p = vec![0u8; 28];
        sample().emit(&mut p);
        p
    }

    fn fix_csum(p: &mut [u8]) {
        let hl = usize::from(p[0] & 0x0f) * 4;
        p[10] = 0;
        p[11] = 0;
        let c = checksum::checksum(&p[..hl.min(p.len())]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn roundtrip_exact_bytes() {
        let p = packet();
        assert_eq!(
            &p[..20],
            &[0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 6, 0x14, 0xa6, 10, 0, 0, 1, 10, 0, 0, 2]
        );
        assert_eq!(checksum::checksum(&p[..20]), 0);
        assert_eq!(Ipv4Repr::parse(&p), Ok(sample()));
    }

    #[test]
    fn padding_is_allowed() {
        let mut p = packet();
        p.extend_from_slice(&[0; 18]);
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 8);
    }

    #[test]
    fn options_are_skipped() {
        let mut p = vec![0u8; 24 + 4];
        p[0] = 0x46;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[1, 1, 1, 1]);
        p[16..20].copy_from_slice(&[2, 2, 2, 2]);
        p[20] = 1; // NOP
        fix_csum(&mut p);
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.header_len, 24);
        assert_eq!(r.payload_len, 4);
    }

    #[test]
    fn err_truncated() {
        assert_eq!(Ipv4Repr::parse(&[0x45; 19]), Err(HeaderError::Truncated));
        assert_eq!(Ipv4Repr::parse(&[]), Err(HeaderError::Truncated));
        // Total length says 28, buffer has 27.
        let p = packet();
        assert_eq!(Ipv4Repr::parse(&p[..27]), Err(HeaderError::Truncated));
        // IHL says 24 bytes but buffer has 20.
        let mut q = packet();
        q.truncate(20);
        q[0] = 0x46;
        assert_eq!(Ipv4Repr::parse(&q), Err(HeaderError::Truncated));
    }

    #[test]
    fn err_bad_version() {
        let mut p = packet();
        p[0] = 0x65;
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadVersion));
    }

    #[test]
    fn err_bad_header_length() {
        let mut p = packet();
        p[0] = 0x44;
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadHeaderLength));
        p[0] = 0x40;
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadHeaderLength));
    }

    #[test]
    fn err_bad_total_length() {
        let mut p = packet();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        fix_csum(&mut p);
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadTotalLength));
    }

    #[test]
    fn err_bad_checksum() {
        let mut p = packet();
        p[11] ^= 1;
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadChecksum));
        // A one-bit flip anywhere in the header is caught.
        let mut q = packet();
        q[15] ^= 0x80;
        assert_eq!(Ipv4Repr::parse(&q), Err(HeaderError::BadChecksum));
    }

    #[test]
    fn err_bad_fragment() {
        // MF with a payload that is not a multiple of 8.
        let mut r = sample();
        r.dont_frag = false;
        r.more_frags = true;
        r.payload_len = 7;
        let mut p = vec![0u8; 27];
        r.emit(&mut p);
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadFragment));
        // offset + length beyond 65535.
        let mut r = sample();
        r.dont_frag = false;
        r.frag_offset = 65528;
        r.payload_len = 16;
        let mut p = vec![0u8; 36];
        r.emit(&mut p);
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadFragment));
        // MF with an empty payload.
        let mut r = sample();
        r.more_frags = true;
        r.payload_len = 0;
        let mut p = vec![0u8; 20];
        r.emit(&mut p);
        assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadFragment));
    }

    #[test]
    fn err_bad_address() {
        for (src, dst) in [
            (Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)),
            (Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 0, 0, 2)),
            (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::UNSPECIFIED),
        ] {
            let mut r = sample();
            r.src = src;
            r.dst = dst;
            let mut p = vec![0u8; 28];
            r.emit(&mut p);
            assert_eq!(Ipv4Repr::parse(&p), Err(HeaderError::BadAddress));
        }
    }

    #[test]
    fn fragment_fields() {
        let mut r = sample();
        r.dont_frag = false;
        r.more_frags = true;
        r.frag_offset = 1480;
        r.payload_len = 16;
        let mut p = vec![0u8; 36];
        r.emit(&mut p);
        let q = Ipv4Repr::parse(&p).unwrap();
        assert!(q.more_frags && !q.dont_frag);
        assert_eq!(q.frag_offset, 1480);
        assert!(q.is_fragment());
    }

    #[test]
    fn emitted_checksum_verifies_for_varied_fields() {
        let mut rng = ustack_netdev::rng::SplitMix64::new(0x1234_5678_9abc_def1);
        let mut next = || rng.next_u64();
        for _ in 0..2000 {
            let r = next();
            let mut repr = sample();
            repr.src = Ipv4Addr::from((r as u32) | 1);
            repr.dst = Ipv4Addr::from(((r >> 32) as u32) | 1);
            repr.tos = (r >> 8) as u8;
            repr.ttl = (r >> 16) as u8;
            repr.protocol = (r >> 24) as u8;
            repr.ident = (r >> 40) as u16;
            repr.dont_frag = r & 1 == 0;
            repr.more_frags = r & 2 == 0;
            repr.frag_offset = ((r >> 48) as u16 & 0x1fff) * 8;
            repr.payload_len = 8 * (1 + (r >> 58) as usize);
            let mut p = vec![0u8; 20 + repr.payload_len];
            repr.emit(&mut p);
            assert_eq!(checksum::checksum(&p[..20]), 0, "{repr:?}");
            if let Ok(back) = Ipv4Repr::parse(&p) {
                assert_eq!(back.ident, repr.ident);
                assert_eq!(back.tos, repr.tos);
                assert_eq!(back.frag_offset, repr.frag_offset);
            }
        }
    }

    #[test]
    fn emit_into_short_buffer_does_nothing() {
        let mut b = [7u8; 10];
        sample().emit(&mut b);
        assert_eq!(b, [7u8; 10]);
    }
}
