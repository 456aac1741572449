//! Property tests of UDP (RFC 768, RFC 1122 4.1.3): header parsing never panics,
//! datagrams built by `prepend_header` parse back, a corrupted datagram is rejected or
//! delivers exactly the original payload, and a socket's receive queue stays within its
//! buffer whatever arrives.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use proptest::prelude::*;
use ustack_ipv4::{checksum, DeliverResult, IpRxMeta, IPPROTO_UDP};
use ustack_netdev::{DevId, PacketBuf};
use ustack_udp::wire::{prepend_header, HEADER_LEN};
use ustack_udp::{UdpConfig, UdpError, UdpHeader, UdpLayer, UdpParseError};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn meta() -> IpRxMeta {
    IpRxMeta {
        src: A,
        dst: B,
        protocol: IPPROTO_UDP,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: false,
    }
}

fn datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = PacketBuf::with_payload_capacity(payload.len());
    p.extend_from_slice(payload);
    prepend_header(
        &mut p,
        SocketAddrV4::new(A, sport),
        SocketAddrV4::new(B, dport),
    );
    p.data().to_vec()
}

fn layer(recv_buf: usize) -> (UdpLayer, ustack_udp::SockId) {
    let mut udp = UdpLayer::new(
        UdpConfig {
            recv_buf,
            ..UdpConfig::default()
        },
        [3; 16],
    );
    let id = udp.socket();
    udp.bind(id, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53))
        .unwrap();
    (udp, id)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..64), fix in any::<bool>()) {
        if fix && bytes.len() >= 8 {
            bytes[6] = 0;
            bytes[7] = 0;
            let c = checksum::transport_checksum(A, B, IPPROTO_UDP, &bytes);
            bytes[6..8].copy_from_slice(&c.to_be_bytes());
        }
        if let Ok(h) = UdpHeader::parse(&bytes, A, B, true) {
            prop_assert!(usize::from(h.length) >= HEADER_LEN);
            prop_assert!(usize::from(h.length) <= bytes.len());
            prop_assert_eq!(h.payload_len() + HEADER_LEN, usize::from(h.length));
        }
    }

    #[test]
    fn built_datagrams_round_trip(sport in 1u16.., dport in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..256), pad in 0usize..8) {
        let mut d = datagram(sport, dport, &payload);
        d.extend(std::iter::repeat_n(0, pad));
        let h = UdpHeader::parse(&d, A, B, true).unwrap();
        prop_assert_eq!((h.src_port, h.dst_port), (sport, dport));
        prop_assert_eq!(h.payload_len(), payload.len());
        prop_assert_ne!(h.checksum, 0, "a computed checksum of 0 is sent as 0xffff");
        let mut q = [0u8; 8];
        h.emit(&mut q);
        prop_assert_eq!(&q[..], &d[..8]);
    }

    #[test]
    fn corruption_is_rejected_or_harmless(
        payload in proptest::collection::vec(any::<u8>(), 1..200),
        pos in any::<usize>(),
        x in 1u8..,
    ) {
        let mut d = datagram(5353, 53, &payload);
        let pos = pos % d.len();
        d[pos] ^= x;
        let (mut udp, id) = layer(1 << 20);
        let _ = udp.input(Instant::now(), &meta(), PacketBuf::from_vec(d));
        let mut buf = vec![0u8; 512];
        match udp.recv_from(id, &mut buf) {
            // Only a change of the checksum field itself (to "none", or the one's
            // complement alias) can pass, and then the payload is intact.
            Ok((n, _)) => {
                prop_assert!(pos == 6 || pos == 7, "corruption at byte {} accepted", pos);
                prop_assert_eq!(&buf[..n], &payload[..]);
            }
            Err(e) => prop_assert_eq!(e, UdpError::WouldBlock),
        }
    }

    #[test]
    fn receive_queue_is_bounded(
        sizes in proptest::collection::vec(0usize..3000, 1..120),
        recv_buf in 2048usize..32768,
        reads in proptest::collection::vec(any::<bool>(), 120),
        bufsize in 1usize..4000,
    ) {
        let (mut udp, id) = layer(recv_buf);
        let rb = udp.recv_buf(id).unwrap();
        let now = Instant::now();
        let mut sent: std::collections::VecDeque<Vec<u8>> = Default::default();
        let mut buf = vec![0u8; bufsize];
        for (i, n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..*n).map(|k| (k + i) as u8).collect();
            let r = udp.input(now, &meta(), PacketBuf::from_vec(datagram(1000 + i as u16, 53, &payload)));
            prop_assert_eq!(r, DeliverResult::Consumed);
            sent.push_back(payload);
            let (count, bytes) = udp.queued(id).unwrap();
            // One datagram is always accepted into an empty queue (Linux), else the
            // queue stays within the buffer.
            prop_assert!(count <= 1 || bytes <= rb, "{} datagrams, {} bytes > rcvbuf {}", count, bytes, rb);
            if reads[i % reads.len()] {
                if let Ok((got, from)) = udp.recv_from(id, &mut buf) {
                    // Whatever is read is one of the datagrams sent, in order, truncated to
                    // the buffer (datagrams that did not fit were dropped, never mixed).
                    let port = from.port() - 1000;
                    let orig = &sizes[usize::from(port)];
                    let expect: Vec<u8> = (0..*orig).map(|k| (k + usize::from(port)) as u8).collect();
                    prop_assert_eq!(got, expect.len().min(bufsize));
                    prop_assert_eq!(&buf[..got], &expect[..got]);
                }
            }
        }
        prop_assert!(udp.stats().in_csum_errors == 0);
    }

    #[test]
    fn short_length_fields_are_rejected(payload in proptest::collection::vec(any::<u8>(), 0..64), len in 0u16..8) {
        let mut d = datagram(5353, 53, &payload);
        d[4..6].copy_from_slice(&len.to_be_bytes());
        prop_assert_eq!(UdpHeader::parse(&d, A, B, false), Err(UdpParseError::BadLength));
    }
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
