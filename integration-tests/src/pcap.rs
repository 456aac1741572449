//! Reads the classic pcap files the stack writes with `--pcap` (link type 101, raw IPv4)
//! and decodes the TCP segments in them: enough to check handshake options and flags.

use std::net::Ipv4Addr;
use std::path::Path;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion Window Reduced.
    pub const CWR: u8 = 0x80;
}

/// One TCP segment from a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// TCP source port.
    pub sport: u16,
    /// TCP destination port.
    pub dport: u16,
    /// Flag byte.
    pub flags: u8,
    /// Payload length.
    pub payload_len: usize,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale option (shift count).
    pub wscale: Option<u8>,
    /// SACK-permitted option present.
    pub sack_permitted: bool,
    /// Timestamps option present.
    pub timestamps: bool,
    /// SACK blocks present (count).
    pub sack_blocks: usize,
    /// The IPv4 header's type-of-service byte (its low two bits are the ECN field).
    pub tos: u8,
}

impl Segment {
    /// True when every bit of `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }

    /// A SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.has(flags::SYN) && !self.has(flags::ACK)
    }

    /// A SYN-ACK.
    pub fn is_synack(&self) -> bool {
        self.has(flags::SYN | flags::ACK)
    }
}

/// Reads every IPv4/TCP segment of a pcap file (other packets are skipped).
pub fn read_tcp(path: &Path) -> Result<Vec<Segment>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_tcp(&data)
}

/// Parses the bytes of a pcap file (either byte order, micro- or nanosecond stamps).
pub fn parse_tcp(data: &[u8]) -> Result<Vec<Segment>, String> {
    let hdr = data.get(..24).ok_or("pcap: short global header")?;
    let magic = [hdr[0], hdr[1], hdr[2], hdr[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("pcap: bad magic {magic:02x?}")),
    };
    let u32_at = |b: &[u8], i: usize| -> u32 {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u32_at(hdr, 20);
    // 101 = LINKTYPE_RAW, 228 = LINKTYPE_IPV4.
    if linktype != 101 && linktype != 228 {
        return Err(format!(
            "pcap: link type {linktype}, expected raw IPv4 (101)"
        ));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32_at(data, off + 8) as usize;
        let start = off + 16;
        let Some(pkt) = data.get(start..start + caplen) else {
            break;
        };
        if let Some(s) = parse_packet(pkt) {
            out.push(s);
        }
        off = start + caplen;
    }
    Ok(out)
}

fn parse_packet(p: &[u8]) -> Option<Segment> {
    if p.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || *p.get(9)? != 6 || p.len() < ihl + 20 {
        return None;
    }
    // Fragments other than the first carry no TCP header.
    let frag = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    if frag != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let t = p.get(ihl..total)?;
    let doff = usize::from(t.get(12)? >> 4) * 4;
    if doff < 20 || t.len() < doff {
        return None;
    }
    let mut seg = Segment {
        src,
        dst,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        flags: t[13],
        payload_len: t.len() - doff,
        mss: None,
        wscale: None,
        sack_permitted: false,
        timestamps: false,
        sack_blocks: 0,
        tos: p[1],
    };
    let mut opts = &t[20..doff];
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let len = usize::from(*opts.get(1)?);
        if len < 2 || len > opts.len() {
            break;
        }
        let body = &opts[2..len];
        match (kind, body.len()) {
            (2, 2) => seg.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => seg.wscale = Some(body[0]),
            (4, 0) => seg.sack_permitted = true,
            (5, n) => seg.sack_blocks = n / 8,
            (8, 8) => seg.timestamps = true,
            _ => {}
        }
        opts = &opts[len..];
    }
    Some(seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap (little-endian, raw IPv4) holding one SYN with MSS, SACK-permitted,
    /// timestamps and window scale, as Linux sends it.
    fn sample() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&101u32.to_le_bytes());
        let opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut tcp = vec![
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(&opts);
        let total = (ip.len() + tcp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&tcp);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        f.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn parses_linux_syn_options() {
        let segs = parse_tcp(&sample()).unwrap();
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert!(s.is_syn());
        assert_eq!((s.sport, s.dport), (40000, 80));
        assert_eq!(s.mss, Some(1460));
        assert_eq!(s.wscale, Some(7));
        assert!(s.sack_permitted && s.timestamps);
        assert_eq!(s.payload_len, 0);
    }

    #[test]
    fn truncated_file_is_not_a_panic() {
        let f = sample();
        for n in 0..f.len() {
            let _ = parse_tcp(&f[..n]);
        }
    }
}
