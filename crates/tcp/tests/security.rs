//! RFC 5961 challenge ACKs and blind injection (RFC 5961 sections 3-5 and 7).

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{SeqNum, TcpConfig, TcpState};

/// Returns (A's snd_nxt, A's rcv_nxt, A addr, B addr) from the last segments.
fn seqs(n: &mut Net) -> (u32, u32) {
    let a = n.last(Dir::AtoB);
    (a.seq.wrapping_add(a.len as u32), a.ack)
}

#[test]
fn in_window_rst_gets_challenge_ack_exact_rst_resets() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a_send(c, b"ping");
    n.b_send(s, b"pong");
    n.settle();
    n.run_for(Duration::from_millis(300));
    let (a_nxt, a_rcv) = seqs(&mut n);
    let (asa, bsa) = (n.a.local_addr(c).unwrap(), n.b.local_addr(s).unwrap());
    // RST in the window but not at rcv_nxt: challenge ACK, connection untouched.
    let r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv.wrapping_add(100)),
        SeqNum(0),
        TcpFlags::RST,
    );
    let replies = n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is(TcpFlags::ACK));
    assert_eq!((replies[0].seq, replies[0].ack), (a_nxt, a_rcv));
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    assert_eq!(n.a.stats().tcp_challenge_ack, 1);
    // RST outside the window: silently dropped.
    let r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv.wrapping_add(1 << 30)),
        SeqNum(0),
        TcpFlags::RST,
    );
    assert!(n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]).is_empty());
    // SYN on a synchronized connection: challenge ACK.
    let r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(12345),
        SeqNum(0),
        TcpFlags::SYN,
    );
    let replies = n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is(TcpFlags::ACK));
    assert_eq!(n.a.stats().tcp_syn_challenge, 1);
    // Data in window with an ACK far in the past: challenge ACK, data dropped.
    let mut r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv),
        SeqNum(a_nxt.wrapping_sub(1 << 30)),
        TcpFlags::ACK,
    );
    r.window = 100;
    let replies = n.inject_noreply(Dir::BtoA, bsa, asa, &r, b"evil");
    assert_eq!(replies.len(), 1);
    // Data outside the window: dup ACK, dropped.
    let mut r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv.wrapping_add(1 << 29)),
        SeqNum(a_nxt),
        TcpFlags::ACK,
    );
    r.window = 100;
    n.inject_noreply(Dir::BtoA, bsa, asa, &r, b"evil");
    let mut buf = [0u8; 64];
    let mut out = Vec::new();
    assert_eq!(n.a.recv(n.now, c, &mut buf, &mut out), Ok(4));
    assert_eq!(&buf[..4], b"pong");
    assert!(
        n.a.recv(n.now, c, &mut buf, &mut out).is_err(),
        "no injected data"
    );
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    // The connection still works.
    n.a_send(c, b"still ok");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"pingstill ok");
    // An RST exactly at rcv_nxt resets.
    let (_, a_rcv) = seqs(&mut n);
    let r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv),
        SeqNum(0),
        TcpFlags::RST,
    );
    n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]);
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
}

#[test]
fn challenge_acks_are_rate_limited() {
    let cfg = TcpConfig {
        challenge_ack_limit: 2,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(cfg, TcpConfig::default());
    let (c, s) = n.connect_pair(80);
    let (_, a_rcv) = seqs(&mut n);
    let (asa, bsa) = (n.a.local_addr(c).unwrap(), n.b.local_addr(s).unwrap());
    let mut sent = 0;
    for i in 0..5 {
        let r = TcpRepr::new(
            bsa.port(),
            asa.port(),
            SeqNum(a_rcv.wrapping_add(10 + i)),
            SeqNum(0),
            TcpFlags::RST,
        );
        sent += n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]).len();
    }
    assert_eq!(sent, 2);
    assert_eq!(n.a.stats().tcp_challenge_ack, 2);
    n.run_for(Duration::from_millis(1100));
    let r = TcpRepr::new(
        bsa.port(),
        asa.port(),
        SeqNum(a_rcv.wrapping_add(10)),
        SeqNum(0),
        TcpFlags::RST,
    );
    assert_eq!(
        n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]).len(),
        1,
        "budget refills each second"
    );
}

#[test]
fn blind_injection_with_random_sequence_numbers_is_ignored() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let data = pattern(200_000, 77);
    let (asa, bsa) = (n.a.local_addr(c).unwrap(), n.b.local_addr(s).unwrap());
    let mut rng = Rng::new(99);
    let mut sent = 0;
    let mut got = Vec::new();
    let limit = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < limit {
        if sent < data.len() {
            sent += n.a_send(c, &data[sent..]);
        }
        // An off-path attacker guesses: RST, SYN and data with random numbers, to B.
        for k in 0..3 {
            let seq = SeqNum(rng.next_u64() as u32);
            let ack = SeqNum(rng.next_u64() as u32);
            let (flags, payload): (TcpFlags, &[u8]) = match k {
                0 => (TcpFlags::RST, &[]),
                1 => (TcpFlags::SYN, &[]),
                _ => (TcpFlags::ACK | TcpFlags::PSH, b"INJECTED"),
            };
            let mut r = TcpRepr::new(asa.port(), bsa.port(), seq, ack, flags);
            r.window = 1000;
            n.inject_noreply(Dir::AtoB, asa, bsa, &r, payload);
        }
        got.extend(n.recv_all(Dir::BtoA, s));
        n.step(limit);
    }
    got.extend(n.recv_all(Dir::BtoA, s));
    assert!(
        got == data,
        "stream intact: {} of {}",
        got.len(),
        data.len()
    );
    assert_eq!(n.b.state(s), Some(TcpState::Established));
    assert_eq!(n.a.state(c), Some(TcpState::Established));
}
