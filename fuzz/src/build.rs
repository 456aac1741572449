//! Packet builders for the structure-aware parts of the targets and for the seed corpora:
//! valid IPv4 / TCP / UDP / ICMP packets with correct checksums.

use std::net::Ipv4Addr;

use ustack_ipv4::checksum;
use ustack_ipv4::{Ipv4Repr, IPPROTO_ICMP, IPPROTO_UDP};
use ustack_netdev::PacketBuf;
use ustack_tcp::wire::TcpRepr;

/// A 20-byte IPv4 header (valid checksum) followed by `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ident: u16, payload: &[u8]) -> Vec<u8> {
    let r = Ipv4Repr {
        src,
        dst,
        protocol,
        ttl: 64,
        tos: 0,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: payload.len(),
    };
    let mut p = vec![0u8; 20 + payload.len()];
    r.emit(&mut p);
    p[20..].copy_from_slice(payload);
    p
}

/// A TCP segment (header from `repr`, checksum over the pseudo-header) carrying `payload`.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let mut pkt = PacketBuf::with_payload_capacity(payload.len());
    pkt.extend_from_slice(payload);
    repr.emit(&mut pkt, src, dst);
    pkt.data().to_vec()
}

/// A TCP segment whose options are the raw bytes `opts` (padded with EOL to a multiple of
/// 4, at most 40 bytes), so the fuzzer controls them exactly. Checksum valid.
pub fn tcp_raw_opts(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    repr: &TcpRepr,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let opts = &opts[..opts.len().min(40)];
    let olen = opts.len().div_ceil(4) * 4;
    let hlen = 20 + olen;
    let mut s = vec![0u8; hlen + payload.len()];
    s[0..2].copy_from_slice(&repr.src_port.to_be_bytes());
    s[2..4].copy_from_slice(&repr.dst_port.to_be_bytes());
    s[4..8].copy_from_slice(&repr.seq.0.to_be_bytes());
    s[8..12].copy_from_slice(&repr.ack.0.to_be_bytes());
    s[12] = ((hlen / 4) as u8) << 4;
    s[13] = repr.flags.0;
    s[14..16].copy_from_slice(&repr.window.to_be_bytes());
    s[18..20].copy_from_slice(&repr.urgent.to_be_bytes());
    s[20..20 + opts.len()].copy_from_slice(opts);
    s[hlen..].copy_from_slice(payload);
    let c = checksum::transport_checksum(src, dst, 6, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A UDP datagram (RFC 768). With `csum`, the checksum is computed (0 becomes 0xffff);
/// without, it is 0 (none).
pub fn udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    csum: bool,
) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&sport.to_be_bytes());
    d[2..4].copy_from_slice(&dport.to_be_bytes());
    d[4..6].copy_from_slice(&(len.min(65535) as u16).to_be_bytes());
    d[8..].copy_from_slice(payload);
    if csum {
        let mut c = checksum::transport_checksum(src, dst, IPPROTO_UDP, &d);
        if c == 0 {
            c = 0xffff;
        }
        d[6..8].copy_from_slice(&c.to_be_bytes());
    }
    d
}

/// An ICMP message: type, code, the 4 rest-of-header bytes and a body, checksum valid.
pub fn icmp(typ: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + body.len()];
    m[0] = typ;
    m[1] = code;
    m[4..8].copy_from_slice(&rest);
    m[8..].copy_from_slice(body);
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMP error from `reporter` to `dst` quoting `quoted_ip` (an IP header + at least 8
/// bytes of the datagram that caused it), wrapped in its IPv4 header.
pub fn icmp_error_packet(
    reporter: Ipv4Addr,
    dst: Ipv4Addr,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    quoted_ip: &[u8],
) -> Vec<u8> {
    ipv4(
        reporter,
        dst,
        IPPROTO_ICMP,
        0x4242,
        &icmp(typ, code, rest, quoted_ip),
    )
}
