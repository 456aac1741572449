//! The UDP header (RFC 768) with the IPv4 pseudo-header checksum.
//! Linux: `struct udphdr`, `udp4_csum_init` / `__udp_lib_checksum_complete` on receive,
//! `udp_send_skb` -> `udp4_hwcsum`/`csum_tcpudp_magic` on transmit.

use std::net::{Ipv4Addr, SocketAddrV4};

use ustack_ipv4::checksum::transport_checksum;
use ustack_ipv4::IPPROTO_UDP;
use ustack_netdev::PacketBuf;

/// Size of the UDP header (RFC 768).
pub const HEADER_LEN: usize = 8;

/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
/// Linux answers `EMSGSIZE` above it.
pub const MAX_PAYLOAD: usize = 65507;

/// Why a datagram was rejected (all counted in `InErrors`; a checksum failure also in
/// `InCsumErrors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpParseError {
    /// Fewer than 8 bytes.
    Truncated,
    /// The length field is below 8 or beyond the bytes received (Linux `udp_rcv`
    /// "short packet").
    BadLength,
    /// The checksum does not verify (RFC 768; RFC 1122 4.1.3.4: silently discard).
    BadChecksum,
}

/// A parsed UDP header (Linux `struct udphdr`), in host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of header plus payload (RFC 768 "Length").
    pub length: u16,
    /// Checksum field as carried; 0 means "not computed" (RFC 768).
    pub checksum: u16,
}

impl UdpHeader {
    /// Parses and validates the header of `dgram` (the IP payload) received from `src`
    /// to `dst`: length in range, and the checksum when `verify_csum` and the field is
    /// non-zero (RFC 768: zero means the sender computed none). Bytes after `length`
    /// (link padding) are the caller's to ignore. Linux: `__udp4_lib_rcv` checks.
    pub fn parse(
        dgram: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_csum: bool,
    ) -> Result<UdpHeader, UdpParseError> {
        let h = dgram.get(..HEADER_LEN).ok_or(UdpParseError::Truncated)?;
        let be = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let hdr = UdpHeader {
            src_port: be(0),
            dst_port: be(2),
            length: be(4),
            checksum: be(6),
        };
        let len = usize::from(hdr.length);
        if len < HEADER_LEN || len > dgram.len() {
            return Err(UdpParseError::BadLength);
        }
        if verify_csum && hdr.checksum != 0 {
            let covered = dgram.get(..len).ok_or(UdpParseError::BadLength)?;
            if transport_checksum(src, dst, IPPROTO_UDP, covered) != 0 {
                return Err(UdpParseError::BadChecksum);
            }
        }
        Ok(hdr)
    }

    /// Payload length (`length - 8`).
    pub fn payload_len(&self) -> usize {
        usize::from(self.length).saturating_sub(HEADER_LEN)
    }

    /// Writes the 8 header bytes as they are (checksum field included) into `buf`,
    /// which must be at least 8 bytes; shorter buffers are left untouched.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(h) = buf.get_mut(..HEADER_LEN) else {
            return;
        };
        h[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        h[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        h[4..6].copy_from_slice(&self.length.to_be_bytes());
        h[6..8].copy_from_slice(&self.checksum.to_be_bytes());
    }
}

/// Computes and stores the checksum of a complete datagram (header + payload) in place.
/// A computed 0 is sent as 0xffff, since 0 means "no checksum" (RFC 768).
/// Linux: `udp4_hwcsum` / `csum_tcpudp_magic` + `CSUM_MANGLED_0`.
pub fn fill_checksum(dgram: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    if dgram.len() < HEADER_LEN {
        return;
    }
    dgram[6] = 0;
    dgram[7] = 0;
    let c = match transport_checksum(src, dst, IPPROTO_UDP, dgram) {
        0 => 0xffff,
        c => c,
    };
    dgram[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Prepends a UDP header for `src` -> `dst` in front of the payload already in `pkt`
/// (into its headroom, without moving the payload) and fills the checksum.
/// The payload must be at most [`MAX_PAYLOAD`] bytes (longer lengths are truncated in
/// the length field; callers check first). Linux: `udp_send_skb`.
pub fn prepend_header(pkt: &mut PacketBuf, src: SocketAddrV4, dst: SocketAddrV4) {
    let length = u16::try_from(pkt.len() + HEADER_LEN).unwrap_or(u16::MAX);
    let hdr = UdpHeader {
        src_port: src.port(),
        dst_port: dst.port(),
        length,
        checksum: 0,
    };
    hdr.emit(pkt.push(HEADER_LEN));
    fill_checksum(pkt.data_mut(), *src.ip(), *dst.ip());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn parse_known_bytes() {
        // 10.0.0.1:1234 -> 10.0.0.2:53, payload "hi"; checksum computed by hand:
        // pseudo 0a00+0001+0a00+0002+0011+000a = 0x141e; header 04d2+0035+000a = 0x0511;
        // "hi" = 0x6869; sum = 0x141e + 0x0511 + 0x6869 = 0x8198 -> checksum 0x7e67.
        let bytes = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x7e, 0x67, b'h', b'i'];
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let h = UdpHeader::parse(&bytes, src, dst, true).unwrap();
        assert_eq!(
            h,
            UdpHeader {
                src_port: 1234,
                dst_port: 53,
                length: 10,
                checksum: 0x7e67
            }
        );
        assert_eq!(h.payload_len(), 2);
        let mut out = [0u8; 8];
        h.emit(&mut out);
        assert_eq!(out, bytes[..8]);
    }

    #[test]
    fn roundtrip_with_checksum() {
        let src = a("192.168.1.10:40000");
        let dst = a("192.168.1.20:9999");
        let mut pkt = PacketBuf::with_payload_capacity(5);
        pkt.extend_from_slice(b"hello");
        prepend_header(&mut pkt, src, dst);
        assert_eq!(pkt.len(), 13);
        let h = UdpHeader::parse(pkt.data(), *src.ip(), *dst.ip(), true).unwrap();
        assert_eq!((h.src_port, h.dst_port, h.length), (40000, 9999, 13));
        assert_ne!(h.checksum, 0);
        // Any flipped bit is caught.
        let mut bad = pkt.data().to_vec();
        bad[10] ^= 0x40;
        assert_eq!(
            UdpHeader::parse(&bad, *src.ip(), *dst.ip(), true),
            Err(UdpParseError::BadChecksum)
        );
        // Wrong pseudo-header (other destination) too.
        assert_eq!(
            UdpHeader::parse(pkt.data(), *src.ip(), Ipv4Addr::new(192, 168, 1, 21), true),
            Err(UdpParseError::BadChecksum)
        );
        assert!(UdpHeader::parse(&bad, *src.ip(), *dst.ip(), false).is_ok());
    }

    #[test]
    fn zero_checksum_means_none_and_zero_is_sent_as_ffff() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut d = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        assert!(UdpHeader::parse(&d, src, dst, true).is_ok());
        // Find a payload whose checksum computes to 0: adjust two bytes so the sum is
        // 0xffff (one's complement -0), then the field must carry 0xffff.
        // Sum without payload: 0x141e + 0x0511 = 0x192f; payload word w must make
        // 0x192f + w = 0xffff -> w = 0xe6d0.
        d[8] = 0xe6;
        d[9] = 0xd0;
        fill_checksum(&mut d, src, dst);
        assert_eq!(&d[6..8], &[0xff, 0xff]);
        assert!(UdpHeader::parse(&d, src, dst, true).is_ok());
    }

    #[test]
    fn length_errors() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            UdpHeader::parse(&[0; 7], src, dst, true),
            Err(UdpParseError::Truncated)
        );
        let mut d = [0u8; 12];
        d[5] = 7;
        assert_eq!(
            UdpHeader::parse(&d, src, dst, false),
            Err(UdpParseError::BadLength)
        );
        d[5] = 13;
        assert_eq!(
            UdpHeader::parse(&d, src, dst, false),
            Err(UdpParseError::BadLength)
        );
        // Shorter than the buffer is fine (link padding).
        d[5] = 8;
        assert_eq!(
            UdpHeader::parse(&d, src, dst, true).unwrap().payload_len(),
            0
        );
    }
}
