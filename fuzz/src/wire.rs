//! Parser targets: IPv4, TCP, UDP and ICMP headers on arbitrary bytes.
//!
//! Random bytes almost never carry a valid checksum, so each target uses the first input
//! byte as a mode: with bit 0 set the checksum is recomputed before parsing, so the
//! fuzzer reaches the checks behind it.

use std::net::{Ipv4Addr, SocketAddrV4};

use ustack_ipv4::checksum;
use ustack_ipv4::icmp::{IcmpError, IcmpRepr};
use ustack_ipv4::{IpRxMeta, Ipv4Repr, IPPROTO_TCP, IPPROTO_UDP};
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::wire::{TcpOptions, TcpRepr};
use ustack_udp::{UdpConfig, UdpHeader, UdpLayer};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn split_mode(data: &[u8]) -> (u8, Vec<u8>) {
    let (m, rest) = crate::mode_byte(data);
    (m, rest.to_vec())
}

/// Fixes the IPv4 header checksum of `p` in place (when the header is there).
pub fn fix_ipv4_checksum(p: &mut [u8]) {
    let Some(&v) = p.first() else { return };
    let hl = usize::from(v & 0x0f) * 4;
    if p.len() < hl.max(20) {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = checksum::checksum(&p[..hl.max(20)]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// `Ipv4Repr::parse`: no panic; invariants of an accepted header; emit/parse round trip.
pub fn ipv4_parse(data: &[u8]) {
    let (mode, mut p) = split_mode(data);
    if mode & 1 == 1 {
        fix_ipv4_checksum(&mut p);
    }
    let Ok(r) = Ipv4Repr::parse(&p) else { return };
    assert!(
        (20..=60).contains(&r.header_len),
        "header_len {}",
        r.header_len
    );
    assert!(
        r.header_len + r.payload_len <= p.len(),
        "lengths beyond the buffer"
    );
    assert!(usize::from(r.frag_offset) + r.payload_len <= 65535);
    assert_eq!(r.frag_offset % 8, 0);
    // Round trip: a 20-byte header with the same payload parses to the same repr.
    let payload = &p[r.header_len..r.header_len + r.payload_len];
    let mut q = vec![0u8; 20 + payload.len()];
    r.emit(&mut q);
    q[20..].copy_from_slice(payload);
    let r2 = Ipv4Repr::parse(&q).expect("an emitted header must parse");
    assert_eq!(
        r2,
        Ipv4Repr {
            header_len: 20,
            ..r
        }
    );
    assert_eq!(r2.emitted_len(), q.len());
}

/// `IcmpRepr::parse` / `IcmpError::parse`: no panic; emit/parse round trip.
pub fn icmp_parse(data: &[u8]) {
    let (mode, mut p) = split_mode(data);
    if mode & 1 == 1 && p.len() >= 4 {
        p[2] = 0;
        p[3] = 0;
        let c = checksum::checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let Ok(r) = IcmpRepr::parse(&p) else { return };
    if let IcmpRepr::Error { kind, quote } = r {
        if let Some(e) = IcmpError::parse(kind, SRC, quote) {
            assert!(e.quoted.len() >= 8);
            assert!(e.quoted.len() <= quote.len());
        }
    }
    let mut q = vec![0u8; r.buffer_len()];
    r.emit(&mut q);
    assert_eq!(checksum::checksum(&q), 0, "emitted ICMP checksum");
    let r2 = IcmpRepr::parse(&q).expect("an emitted ICMP message must parse");
    assert_eq!(r2, r, "ICMP emit/parse round trip");
}

/// `TcpRepr::parse` (+ `TcpOptions::parse`): no panic; emit/parse round trip.
pub fn tcp_parse(data: &[u8]) {
    let (mode, mut p) = split_mode(data);
    if mode & 1 == 1 && p.len() >= 18 {
        p[16] = 0;
        p[17] = 0;
        let c = checksum::transport_checksum(SRC, DST, IPPROTO_TCP, &p);
        p[16..18].copy_from_slice(&c.to_be_bytes());
    }
    // The options parser alone, on everything after the mode byte.
    if let Ok(o) = TcpOptions::parse(&p) {
        assert!(o.sack_blocks().len() <= 4);
    }
    let verify = mode & 1 == 1;
    let Ok((r, range)) = TcpRepr::parse(&p, SRC, DST, verify) else {
        return;
    };
    assert!(r.header_len >= 20 && r.header_len <= 60 && r.header_len % 4 == 0);
    assert_eq!(range.start, r.header_len);
    assert!(range.end <= p.len() && range.start <= range.end);
    let payload = &p[range];
    // Round trip. The options are re-encoded in Linux's canonical order, so compare the
    // parsed reprs, not the bytes. A header whose re-encoded options would not fit in 40
    // bytes cannot be emitted as is: `TcpRepr::emit` leaves that to its callers (the
    // engine never puts more than 3 SACK blocks next to timestamps).
    if r.options.encoded_len() > 40 {
        return;
    }
    let mut pkt = PacketBuf::with_payload_capacity(payload.len());
    pkt.extend_from_slice(payload);
    r.emit(&mut pkt, SRC, DST);
    let (r2, range2) =
        TcpRepr::parse(pkt.data(), SRC, DST, true).expect("an emitted segment must parse");
    assert_eq!(&pkt.data()[range2], payload);
    let mut expect = r;
    expect.header_len = r.emit_len();
    assert_eq!(r2, expect, "TCP emit/parse round trip");
}

/// `UdpHeader::parse` and `UdpLayer::input` on arbitrary bytes: no panic; an accepted
/// datagram reaches the socket byte-exact (link padding removed); the receive queue stays
/// within its buffer; header emit/parse round trips.
pub fn udp_parse(data: &[u8]) {
    let (mode, mut p) = split_mode(data);
    if mode & 1 == 1 && p.len() >= 8 {
        p[6] = 0;
        p[7] = 0;
        let mut c = checksum::transport_checksum(SRC, DST, IPPROTO_UDP, &p);
        if c == 0 {
            c = 0xffff;
        }
        p[6..8].copy_from_slice(&c.to_be_bytes());
    }
    // Aim at the bound socket half of the time.
    if mode & 2 == 2 && p.len() >= 4 {
        p[2..4].copy_from_slice(&53u16.to_be_bytes());
    }
    let parsed = UdpHeader::parse(&p, SRC, DST, true);
    if let Ok(h) = parsed {
        assert!(usize::from(h.length) >= 8 && usize::from(h.length) <= p.len());
        let mut q = [0u8; 8];
        h.emit(&mut q);
        assert_eq!(&q[..], &p[..8], "UDP header emit/parse round trip");
    }
    let mut udp = UdpLayer::new(
        UdpConfig {
            recv_buf: 4096,
            ..UdpConfig::default()
        },
        [7; 16],
    );
    let id = udp.socket();
    udp.bind(id, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53))
        .expect("bind :53");
    let meta = IpRxMeta {
        src: SRC,
        dst: DST,
        protocol: IPPROTO_UDP,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: false,
    };
    let now = std::time::Instant::now();
    // The same datagram several times: the queue must stop at its buffer size.
    for _ in 0..4 {
        let _ = udp.input(now, &meta, PacketBuf::from_slice(&p));
        if let Some((_, bytes)) = udp.queued(id) {
            assert!(
                bytes <= 4096 + p.len() + ustack_udp::DATAGRAM_OVERHEAD,
                "UDP queue holds {bytes} bytes"
            );
        }
    }
    let mut buf = vec![0u8; 70_000];
    let mut got = 0;
    while let Ok((n, from)) = udp.recv_from(id, &mut buf) {
        got += 1;
        let h = parsed.expect("delivered a datagram the parser rejects");
        assert_eq!(h.dst_port, 53);
        assert_eq!(from, SocketAddrV4::new(SRC, h.src_port));
        assert_eq!(
            &buf[..n],
            &p[8..usize::from(h.length)],
            "UDP payload delivered differs"
        );
    }
    if let Ok(h) = parsed {
        if h.dst_port == 53 {
            assert!(
                got >= 1,
                "a valid datagram to a bound port was not delivered"
            );
        }
    }
}
