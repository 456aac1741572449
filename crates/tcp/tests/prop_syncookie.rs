//! SYN cookies under a flood (RFC 4987 section 3.6, Linux `cookie_v4_init_sequence` /
//! `cookie_v4_check`): once the SYN queue is full, a legitimate client still connects,
//! its connection carries the largest MSS of the cookie table not above the MSS it
//! announced, data flows in segments of at most that size, the listener never holds more
//! request sockets than its queue allows, and a forged third ACK is not accepted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ustack_ipv4::IpRxMeta;
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::seq::SeqNum;
use ustack_tcp::syncookie::MSS_TABLE;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{TcpConfig, TcpLayer, TcpSegmentOut, TcpState};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
const MTU: usize = 1500;

fn meta(src: Ipv4Addr) -> IpRxMeta {
    IpRxMeta {
        src,
        dst: SERVER,
        protocol: 6,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: false,
    }
}

fn segment(src: Ipv4Addr, r: &TcpRepr, payload: &[u8]) -> PacketBuf {
    let mut p = PacketBuf::with_payload_capacity(payload.len());
    p.extend_from_slice(payload);
    r.emit(&mut p, src, SERVER);
    PacketBuf::from_slice(p.data())
}

fn syn(port: u16, isn: u32, mss: Option<u16>) -> TcpRepr {
    let mut r = TcpRepr::new(port, PORT, SeqNum(isn), SeqNum(0), TcpFlags::SYN);
    r.window = 65535;
    r.options.mss = mss;
    r.header_len = r.emit_len();
    r
}

/// The SYN-ACK among `out` addressed to `port`.
fn synack_for(out: &[TcpSegmentOut], client: Ipv4Addr, port: u16) -> Option<TcpRepr> {
    out.iter().find_map(|s| {
        let (r, _) = TcpRepr::parse(s.pkt.data(), SERVER, client, true).ok()?;
        (r.dst_port == port && r.flags.syn() && r.flags.ack()).then_some(r)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cookie_connection_carries_the_announced_mss(
        flood in 1usize..200,
        backlog in 1u32..16,
        max_syn in 1usize..16,
        mss in prop_oneof![Just(None), (536u16..=1460).prop_map(Some), (100u16..536).prop_map(Some)],
        secret in any::<[u8; 16]>(),
        client_isn in any::<u32>(),
        payload_len in 1usize..20_000,
    ) {
        let cfg = TcpConfig { max_syn_backlog: max_syn, ..TcpConfig::default() };
        let mut tcp = TcpLayer::new(cfg, secret);
        let now = Instant::now();
        let l = tcp.socket();
        tcp.bind(l, SocketAddrV4::new(SERVER, PORT)).unwrap();
        tcp.listen(l, backlog).unwrap();
        // The flood: spoofed SYNs from many addresses and ports, never completed.
        let mut out = Vec::new();
        for i in 0..flood {
            let src = Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1);
            tcp.input(now, &meta(src), segment(src, &syn(1024 + i as u16, i as u32, Some(1460)), &[]), MTU, &mut out);
            out.clear();
            let conns = tcp.connection_count();
            prop_assert!(conns <= max_syn.min(backlog as usize).max(1) + 1,
                "{} request socks with a SYN queue of {}", conns, max_syn.min(backlog as usize));
        }
        // The legitimate client.
        let client = Ipv4Addr::new(10, 0, 0, 1);
        let cport = 50_000;
        tcp.input(now, &meta(client), segment(client, &syn(cport, client_isn, mss), &[]), MTU, &mut out);
        let sa = synack_for(&out, client, cport);
        prop_assert!(sa.is_some(), "no SYN-ACK for the client after {} SYNs", flood);
        let sa = sa.unwrap();
        prop_assert_eq!(sa.ack, SeqNum(client_isn.wrapping_add(1)));
        out.clear();
        let cookies_before = tcp.stats().syncookies_recv;
        // A forged third ACK (a cookie with its counter and MSS bits changed) is refused
        // before the real one arrives. (Cookie + 1 or + 2 may decode to another valid MSS
        // index, as in Linux: only a peer that saw the SYN-ACK knows the cookie anyway.)
        let forged = SeqNum((sa.seq.0.wrapping_add(1)) ^ 0x5a5a_0000);
        let mut bad = TcpRepr::new(cport, PORT, SeqNum(client_isn.wrapping_add(1)), forged, TcpFlags::ACK);
        bad.window = 65535;
        tcp.input(now, &meta(client), segment(client, &bad, &[]), MTU, &mut out);
        out.clear();
        prop_assert!(tcp.accept(l).unwrap().is_none(), "a forged ACK created a connection");
        // The real third ACK.
        let mut ack = TcpRepr::new(cport, PORT, SeqNum(client_isn.wrapping_add(1)), sa.seq + 1, TcpFlags::ACK);
        ack.window = 65535;
        let later = now + Duration::from_millis(10);
        tcp.input(later, &meta(client), segment(client, &ack, &[]), MTU, &mut out);
        let child = tcp.accept(l).unwrap();
        prop_assert!(child.is_some(), "the client's handshake did not complete");
        let child = child.unwrap();
        prop_assert_eq!(tcp.state(child), Some(TcpState::Established));
        let info = tcp.info(child).unwrap();
        let announced = mss.unwrap_or(536); // RFC 9293 3.7.1: 536 when absent
        let via_cookie = tcp.stats().syncookies_recv > cookies_before;
        let queue = max_syn.min(backlog as usize).max(1);
        prop_assert!(via_cookie || flood < queue, "SYN queue of {} full after {} SYNs, yet no cookie", queue, flood);
        if via_cookie {
            // The cookie encodes the largest table MSS not above the announced one.
            let expect = MSS_TABLE.iter().rev().find(|&&m| m <= announced).copied().unwrap_or(MSS_TABLE[0]);
            prop_assert_eq!(info.snd_mss, u32::from(expect), "announced {}", announced);
        } else {
            prop_assert!(info.snd_mss <= u32::from(announced.max(536)));
        }
        // Data from the server comes in segments of at most that MSS.
        out.clear();
        let n = tcp.send(later, child, &vec![7u8; payload_len], &mut out).unwrap();
        prop_assert!(n > 0);
        for s in &out {
            let (r, range) = TcpRepr::parse(s.pkt.data(), SERVER, client, true).unwrap();
            prop_assert!(range.len() as u32 <= info.snd_mss, "{} bytes > MSS {}", range.len(), info.snd_mss);
            prop_assert!(!r.flags.syn());
        }
    }
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
