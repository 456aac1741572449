//! TCP header and options: parse and emit (RFC 9293 section 3.1, RFC 7323, RFC 2018).
//!
//! Parsing validates every length before use and never panics; emitting prepends the
//! header into the headroom of a [`PacketBuf`] that already holds the payload.

use std::net::Ipv4Addr;
use std::ops::Range;

use ustack_ipv4::checksum;
use ustack_netdev::PacketBuf;

use crate::seq::SeqNum;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// Fixed header length without options.
pub const HEADER_LEN: usize = 20;

/// The ECN field of the IP header's TOS byte (its two low bits) and its codepoints
/// (RFC 3168 section 5): ECN-Capable Transport (0) and Congestion Experienced.
pub(crate) const ECN_MASK: u8 = 0b11;
pub(crate) const ECN_ECT0: u8 = 0b10;
pub(crate) const ECN_CE: u8 = 0b11;

/// TCP control flags (the byte at offset 13).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// All bits of `f` are set.
    #[inline]
    pub fn contains(self, f: TcpFlags) -> bool {
        self.0 & f.0 == f.0
    }
    /// FIN set.
    #[inline]
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// SYN set.
    #[inline]
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// ECN-Echo (RFC 3168).
    #[inline]
    pub fn ece(self) -> bool {
        self.contains(Self::ECE)
    }
    /// Congestion Window Reduced (RFC 3168).
    #[inline]
    pub fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
    /// RST set.
    #[inline]
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// ACK set.
    #[inline]
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// PSH set.
    #[inline]
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl std::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Self::SYN, "S"),
            (Self::FIN, "F"),
            (Self::RST, "R"),
            (Self::PSH, "P"),
            (Self::ACK, "."),
            (Self::URG, "U"),
            (Self::ECE, "E"),
            (Self::CWR, "W"),
        ];
        let mut s = String::new();
        for (fl, n) in names {
            if self.contains(fl) {
                s.push_str(n);
            }
        }
        write!(f, "[{s}]")
    }
}

/// Maximum SACK blocks carried by one segment.
pub const MAX_SACK_BLOCKS: usize = 4;

/// The options TCP understands; unknown options are skipped on parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3, RFC 7323 section 2).
    pub wscale: Option<u8>,
    /// SACK permitted (kind 4, RFC 2018).
    pub sack_permitted: bool,
    /// SACK blocks (kind 5): `[left, right)` pairs.
    pub sack: [(SeqNum, SeqNum); MAX_SACK_BLOCKS],
    /// Number of valid entries in `sack`.
    pub sack_count: u8,
    /// Timestamps (kind 8): (TSval, TSecr), RFC 7323 section 3.
    pub timestamp: Option<(u32, u32)>,
}

impl TcpOptions {
    /// The SACK blocks present.
    pub fn sack_blocks(&self) -> &[(SeqNum, SeqNum)] {
        let n = (self.sack_count as usize).min(MAX_SACK_BLOCKS);
        self.sack.get(..n).unwrap_or(&[])
    }

    /// Appends a SACK block (ignored past [`MAX_SACK_BLOCKS`]).
    pub fn push_sack(&mut self, block: (SeqNum, SeqNum)) {
        if let Some(slot) = self.sack.get_mut(self.sack_count as usize) {
            *slot = block;
            self.sack_count += 1;
        }
    }

    /// Encoded length in bytes, padded to a multiple of 4.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamp.is_some() {
            n += 12; // NOP NOP TS, or SACKPERM TS
        } else if self.sack_permitted {
            n += 4; // NOP NOP SACKPERM
        }
        if self.wscale.is_some() {
            n += 4; // NOP WS
        }
        let blocks = self.sack_blocks().len();
        if blocks > 0 {
            n += 4 + 8 * blocks; // NOP NOP SACK
        }
        n
    }

    /// Writes the options (Linux order: MSS, SACKPERM+TS, WS, SACK) into `buf`, which
    /// must be exactly [`TcpOptions::encoded_len`] bytes.
    fn write(&self, buf: &mut [u8]) {
        let mut w = Writer { buf, pos: 0 };
        if let Some(mss) = self.mss {
            w.put(&[2, 4]);
            w.put(&mss.to_be_bytes());
        }
        match (self.timestamp, self.sack_permitted) {
            (Some((val, ecr)), sp) => {
                if sp {
                    w.put(&[4, 2]);
                } else {
                    w.put(&[1, 1]);
                }
                w.put(&[8, 10]);
                w.put(&val.to_be_bytes());
                w.put(&ecr.to_be_bytes());
            }
            (None, true) => w.put(&[1, 1, 4, 2]),
            (None, false) => {}
        }
        if let Some(ws) = self.wscale {
            w.put(&[1, 3, 3, ws]);
        }
        let blocks = self.sack_blocks();
        if !blocks.is_empty() {
            w.put(&[1, 1, 5, (2 + 8 * blocks.len()) as u8]);
            for (l, r) in blocks {
                w.put(&l.0.to_be_bytes());
                w.put(&r.0.to_be_bytes());
            }
        }
    }

    /// The layout of nearly every segment of a connection with timestamps (RFC 7323
    /// appendix A: NOP, NOP, TS and nothing else): its (TSval, TSecr), decoded without
    /// walking the option list. `None` for any other option bytes.
    #[inline]
    fn timestamp_only(data: &[u8]) -> Option<(u32, u32)> {
        match <&[u8; 12]>::try_from(data) {
            Ok(&[1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3]) => Some((
                u32::from_be_bytes([v0, v1, v2, v3]),
                u32::from_be_bytes([e0, e1, e2, e3]),
            )),
            _ => None,
        }
    }

    /// Parses the option bytes of a header. Malformed lengths are errors.
    #[inline]
    pub fn parse(mut data: &[u8]) -> Result<TcpOptions, TcpParseError> {
        let mut o = TcpOptions::default();
        if let Some(ts) = Self::timestamp_only(data) {
            o.timestamp = Some(ts);
            return Ok(o);
        }
        while let Some((&kind, rest)) = data.split_first() {
            match kind {
                0 => break,
                1 => {
                    data = rest;
                    continue;
                }
                _ => {}
            }
            let len = *rest.first().ok_or(TcpParseError::BadOption)? as usize;
            if len < 2 || len > data.len() {
                return Err(TcpParseError::BadOption);
            }
            let body = data.get(2..len).ok_or(TcpParseError::BadOption)?;
            match (kind, len) {
                (2, 4) => {
                    o.mss = Some(u16::from_be_bytes(
                        be_bytes(body, 0).ok_or(TcpParseError::BadOption)?,
                    ))
                }
                (3, 3) => o.wscale = Some(*body.first().ok_or(TcpParseError::BadOption)?),
                (4, 2) => o.sack_permitted = true,
                (5, l) if l >= 10 && (l - 2) % 8 == 0 => {
                    for c in body.chunks_exact(8) {
                        if let (Some(l), Some(r)) = (be_bytes(c, 0), be_bytes(c, 4)) {
                            let (l, r) = (u32::from_be_bytes(l), u32::from_be_bytes(r));
                            o.push_sack((SeqNum(l), SeqNum(r)));
                        }
                    }
                }
                (8, 10) => {
                    let v = be_bytes(body, 0).ok_or(TcpParseError::BadOption)?;
                    let e = be_bytes(body, 4).ok_or(TcpParseError::BadOption)?;
                    o.timestamp = Some((u32::from_be_bytes(v), u32::from_be_bytes(e)));
                }
                (2 | 3 | 4 | 5 | 8, _) => return Err(TcpParseError::BadOption),
                _ => {} // unknown option: skipped
            }
            data = data.get(len..).unwrap_or(&[]);
        }
        Ok(o)
    }
}

/// `N` bytes of `s` starting at `at`, as an array (for `from_be_bytes`); `None` when
/// `s` is too short. Fixed-size arrays let the parsers index without panicking.
pub(crate) fn be_bytes<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
    s.get(at..at.checked_add(N)?)?.try_into().ok()
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }
}

/// Why a segment was rejected by [`TcpRepr::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpParseError {
    /// Shorter than the header says.
    Truncated,
    /// Data offset below 5 words or beyond the segment.
    BadHeaderLength,
    /// An option with an impossible length.
    BadOption,
    /// Checksum mismatch.
    BadChecksum,
    /// A port is zero.
    BadPort,
}

/// A parsed TCP header (the smoltcp-style high-level representation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: SeqNum,
    /// Control flags.
    pub flags: TcpFlags,
    /// Window field as on the wire (not yet scaled).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Header length including options.
    pub header_len: usize,
}

impl TcpRepr {
    /// A header with the given ports, sequence numbers and flags, no options.
    pub fn new(src_port: u16, dst_port: u16, seq: SeqNum, ack: SeqNum, flags: TcpFlags) -> Self {
        TcpRepr {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
            header_len: HEADER_LEN,
        }
    }

    /// Parses a segment; returns the header and the payload's byte range inside `seg`.
    /// With `verify_csum`, the checksum over the pseudo-header `src`/`dst` must be valid.
    #[inline]
    pub fn parse(
        seg: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_csum: bool,
    ) -> Result<(TcpRepr, Range<usize>), TcpParseError> {
        let h: [u8; HEADER_LEN] = be_bytes(seg, 0).ok_or(TcpParseError::Truncated)?;
        let header_len = ((h[12] >> 4) as usize) * 4;
        if header_len < HEADER_LEN {
            return Err(TcpParseError::BadHeaderLength);
        }
        let opts = seg
            .get(HEADER_LEN..header_len)
            .ok_or(TcpParseError::BadHeaderLength)?;
        if verify_csum && checksum::transport_checksum(src, dst, IPPROTO_TCP, seg) != 0 {
            return Err(TcpParseError::BadChecksum);
        }
        let src_port = u16::from_be_bytes([h[0], h[1]]);
        let dst_port = u16::from_be_bytes([h[2], h[3]]);
        if src_port == 0 || dst_port == 0 {
            return Err(TcpParseError::BadPort);
        }
        let options = match TcpOptions::timestamp_only(opts) {
            Some(ts) => TcpOptions {
                timestamp: Some(ts),
                ..TcpOptions::default()
            },
            None => TcpOptions::parse(opts)?,
        };
        Ok((
            TcpRepr {
                src_port,
                dst_port,
                seq: SeqNum(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
                ack: SeqNum(u32::from_be_bytes([h[8], h[9], h[10], h[11]])),
                flags: TcpFlags(h[13]),
                window: u16::from_be_bytes([h[14], h[15]]),
                urgent: u16::from_be_bytes([h[18], h[19]]),
                options,
                header_len,
            },
            header_len..seg.len(),
        ))
    }

    /// Header length this repr will emit (20 + options).
    pub fn emit_len(&self) -> usize {
        HEADER_LEN + self.options.encoded_len()
    }

    /// Prepends the header in front of the payload already in `pkt` and fills the
    /// checksum over the pseudo-header (Linux: `tcp_transmit_skb` + `tcp_v4_send_check`).
    pub fn emit(&self, pkt: &mut PacketBuf, src: Ipv4Addr, dst: Ipv4Addr) {
        self.emit_inner(pkt, src, dst, None);
    }

    /// Like [`TcpRepr::emit`] for a payload whose one's-complement sum is already known
    /// (`payload_sum`, unfolded, as [`checksum::sum`] or [`checksum::copy_sum`] of the
    /// payload bytes in `pkt` return it): only the header is summed, the payload is not
    /// read again.
    pub fn emit_with_payload_sum(
        &self,
        pkt: &mut PacketBuf,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_sum: u64,
    ) {
        self.emit_inner(pkt, src, dst, Some(payload_sum));
    }

    /// Like [`TcpRepr::emit`] for a device that completes TCP checksums (checksum
    /// offload, TSO): the checksum field gets only the folded pseudo-header sum over the
    /// segment's length (Linux `__tcp_v4_send_check` for `CHECKSUM_PARTIAL`), the payload
    /// is not read, and the buffer is marked [`PacketBuf::csum_partial`].
    pub fn emit_partial(&self, pkt: &mut PacketBuf, src: Ipv4Addr, dst: Ipv4Addr) {
        self.write_header(pkt);
        let len = pkt.len().min(u16::MAX as usize) as u16;
        let c = checksum::fold(checksum::pseudo_header_sum(src, dst, IPPROTO_TCP, len));
        if let Some(f) = pkt.data_mut().get_mut(16..18) {
            f.copy_from_slice(&c.to_be_bytes());
        }
        pkt.set_csum_partial(true);
    }

    /// The one's-complement sum of the header this repr emits (checksum field zero),
    /// computed from the field values, when its options are none or timestamps only
    /// (every data segment and ACK of a bulk transfer). Summing from the values instead
    /// of re-reading the bytes just written avoids wide loads right after narrow stores
    /// (a store-forwarding stall per segment). `None` for other options.
    #[inline]
    fn header_sum(&self, hlen: usize) -> Option<u64> {
        let o = &self.options;
        if o.mss.is_some() || o.wscale.is_some() || o.sack_permitted || o.sack_count != 0 {
            return None;
        }
        let w32 = |v: u32| u64::from(v >> 16) + u64::from(v & 0xffff);
        let opts = match o.timestamp {
            // NOP, NOP, kind 8, length 10, TSval, TSecr.
            Some((val, ecr)) => 0x0101 + 0x080a + w32(val) + w32(ecr),
            None => 0,
        };
        let off_flags = (((hlen / 4) as u64) << 12) | u64::from(self.flags.0);
        Some(
            u64::from(self.src_port)
                + u64::from(self.dst_port)
                + w32(self.seq.0)
                + w32(self.ack.0)
                + off_flags
                + u64::from(self.window)
                + u64::from(self.urgent)
                + opts,
        )
    }

    fn emit_inner(
        &self,
        pkt: &mut PacketBuf,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_sum: Option<u64>,
    ) {
        let hlen = self.write_header(pkt);
        // The header is a whole number of 32-bit words, so the payload's words pair up
        // the same way inside the segment as on their own.
        let len = pkt.len().min(u16::MAX as usize) as u16;
        let mut acc = checksum::pseudo_header_sum(src, dst, IPPROTO_TCP, len);
        acc += match payload_sum {
            Some(ps) => ps,
            None => checksum::sum(pkt.data().get(hlen..).unwrap_or(&[]), 0),
        };
        acc += match self.header_sum(hlen) {
            Some(h) => h,
            // Options other than timestamps (SYNs, SACK blocks): read the header back.
            None => checksum::sum(pkt.data().get(..hlen).unwrap_or(&[]), 0),
        };
        let c = !checksum::fold(acc);
        if let Some(f) = pkt.data_mut().get_mut(16..18) {
            f.copy_from_slice(&c.to_be_bytes());
        }
    }

    /// Prepends the header (checksum field zero) and returns its length.
    fn write_header(&self, pkt: &mut PacketBuf) -> usize {
        let hlen = self.emit_len();
        let mut f = [0u8; HEADER_LEN];
        f[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        f[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        f[4..8].copy_from_slice(&self.seq.0.to_be_bytes());
        f[8..12].copy_from_slice(&self.ack.0.to_be_bytes());
        f[12] = ((hlen / 4) as u8) << 4;
        f[13] = self.flags.0;
        f[14..16].copy_from_slice(&self.window.to_be_bytes());
        f[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        let h = pkt.push(hlen);
        if let Some(d) = h.get_mut(..HEADER_LEN) {
            d.copy_from_slice(&f);
        }
        if let Some(o) = h.get_mut(HEADER_LEN..hlen) {
            self.options.write(o);
        }
        hlen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn roundtrip_with_all_options() {
        let mut r = TcpRepr::new(
            1234,
            80,
            SeqNum(7),
            SeqNum(9),
            TcpFlags::SYN | TcpFlags::ACK,
        );
        r.window = 65535;
        r.options.mss = Some(1460);
        r.options.wscale = Some(7);
        r.options.sack_permitted = true;
        r.options.timestamp = Some((1, 2));
        r.options.push_sack((SeqNum(100), SeqNum(200)));
        r.header_len = r.emit_len();
        let mut p = PacketBuf::with_payload_capacity(4);
        p.extend_from_slice(b"data");
        r.emit(&mut p, A, B);
        let (q, range) = TcpRepr::parse(p.data(), A, B, true).unwrap();
        assert_eq!(q, r);
        assert_eq!(&p.data()[range], b"data");
        // Corrupt -> checksum error.
        let mut bytes = p.data().to_vec();
        bytes[25] ^= 1;
        assert_eq!(
            TcpRepr::parse(&bytes, A, B, true).unwrap_err(),
            TcpParseError::BadChecksum
        );
    }

    #[test]
    fn emit_with_payload_sum_matches_emit() {
        let payload = ustack_netdev::rng::SplitMix64::new(0x0123_4567_89ab_cdef).bytes(3000);
        for (i, len) in [0usize, 1, 2, 3, 31, 32, 33, 536, 1447, 1448, 1460, 3000]
            .into_iter()
            .enumerate()
        {
            let k = i as u32;
            let mut r = TcpRepr::new(
                40000 + k as u16 * 1999,
                5001,
                SeqNum(0xfff0_0000 ^ k.wrapping_mul(0x9e37_79b9)),
                SeqNum(456 ^ k.wrapping_mul(0x85eb_ca6b)),
                TcpFlags(TcpFlags::ACK.0 | (k as u8 & 0x0f)),
            );
            r.window = 1024 ^ (k as u16).wrapping_mul(7919);
            r.urgent = k as u16;
            if i % 3 != 2 {
                r.options.timestamp = Some((7 ^ k.wrapping_mul(0xdead_beef), 8 ^ k << 20));
            }
            if len % 2 == 1 {
                r.options.push_sack((SeqNum(1), SeqNum(2)));
            }
            r.header_len = r.emit_len();
            let mut plain = PacketBuf::with_payload_capacity(len);
            plain.extend_from_slice(&payload[..len]);
            r.emit(&mut plain, A, B);
            let mut fused = PacketBuf::with_payload_capacity(len);
            let ps = checksum::copy_sum(&payload[..len], fused.put_for_overwrite(len), 0);
            r.emit_with_payload_sum(&mut fused, A, B, ps);
            assert_eq!(plain.data(), fused.data(), "len {len}");
            assert!(TcpRepr::parse(fused.data(), A, B, true).is_ok());
        }
    }

    #[test]
    fn timestamp_only_layout_parses_like_the_general_walk() {
        let ts = [1, 1, 8, 10, 0, 0, 1, 2, 0xfe, 0xdc, 0xba, 0x98];
        let o = TcpOptions::parse(&ts).unwrap();
        assert_eq!(o.timestamp, Some((0x0102, 0xfedc_ba98)));
        assert_eq!(o.sack_count, 0);
        assert_eq!(o.mss, None);
        // The same option after other layouts goes through the general walk.
        let mut with_sack = ts.to_vec();
        with_sack.extend_from_slice(&[1, 1, 5, 10, 0, 0, 0, 5, 0, 0, 0, 9]);
        let o = TcpOptions::parse(&with_sack).unwrap();
        assert_eq!(o.timestamp, Some((0x0102, 0xfedc_ba98)));
        assert_eq!(o.sack_blocks(), &[(SeqNum(5), SeqNum(9))]);
        let mut padded = vec![1, 8, 10];
        padded.extend_from_slice(&ts[4..]);
        padded.push(0);
        assert_eq!(
            TcpOptions::parse(&padded).unwrap().timestamp,
            Some((0x0102, 0xfedc_ba98))
        );
        // A wrong length byte in the fixed layout is still an error.
        let mut bad = ts;
        bad[3] = 9;
        assert!(TcpOptions::parse(&bad).is_err());
    }

    #[test]
    fn malformed_options_rejected_unknown_skipped() {
        assert_eq!(TcpOptions::parse(&[2, 3, 0]), Err(TcpParseError::BadOption));
        assert_eq!(TcpOptions::parse(&[2]), Err(TcpParseError::BadOption));
        assert_eq!(TcpOptions::parse(&[30, 1]), Err(TcpParseError::BadOption));
        assert_eq!(
            TcpOptions::parse(&[30, 9, 0]),
            Err(TcpParseError::BadOption)
        );
        let o = TcpOptions::parse(&[30, 4, 0, 0, 1, 3, 3, 5, 0, 0xff]).unwrap();
        assert_eq!(o.wscale, Some(5));
        assert!(TcpRepr::parse(&[0; 10], A, B, false).is_err());
        let mut h = [0u8; 20];
        h[1] = 1;
        h[3] = 1;
        h[12] = 0x60; // claims 24 bytes
        assert_eq!(
            TcpRepr::parse(&h, A, B, false).unwrap_err(),
            TcpParseError::BadHeaderLength
        );
    }
}
