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

/// A receiver that SACKs every other byte of the flight cannot grow the sender's SACK
/// scoreboard (walked on every ACK) past its bound: blocks beyond it are discarded, and
/// the stream still arrives intact once the path works (the sender resends what the
/// scoreboard could not hold).
#[test]
fn sack_blocks_of_single_bytes_do_not_grow_the_scoreboard_without_bound() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.run_for(Duration::from_millis(300));
    let (asa, bsa) = (n.a.local_addr(c).unwrap(), n.b.local_addr(s).unwrap());
    // B receives nothing: A's first flight (the initial window) stays outstanding.
    n.set_rule(Dir::AtoB, |_, _| Action::Drop);
    let data = pattern(10 * 1460, 33);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(1));
    let first = n
        .log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.len > 0)
        .expect("data sent")
        .clone();
    let una = first.seq;
    let flight: u32 = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0)
        .map(|x| x.len as u32)
        .sum();
    let b_last = n.last(Dir::BtoA);
    let mut blocks = 0u64;
    let mut off = 2u32;
    // Blocks of one byte, one byte apart, three per ACK (with the timestamp option):
    // about 7,000 disjoint ranges.
    while off + 6 < flight {
        let mut r = TcpRepr::new(
            bsa.port(),
            asa.port(),
            SeqNum(first.ack),
            SeqNum(una),
            TcpFlags::ACK,
        );
        r.window = b_last.window;
        r.options.timestamp = b_last.opts.timestamp;
        for k in 0..3 {
            let l = una.wrapping_add(off + 2 * k);
            r.options.push_sack((SeqNum(l), SeqNum(l.wrapping_add(1))));
        }
        off += 6;
        blocks += 3;
        n.inject_noreply(Dir::BtoA, bsa, asa, &r, &[]);
    }
    let st = n.a.stats();
    assert!(blocks > 6000, "{blocks}");
    // Everything past the bound (1,024 ranges) was discarded.
    assert!(
        st.tcp_sack_discard >= blocks - 1024,
        "{blocks} blocks: {st:?}"
    );
    assert!(
        st.tcp_sack_discard <= blocks - 1000,
        "{blocks} blocks: {st:?}"
    );
    n.clear_rules();
    let mut got = Vec::new();
    let end = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < end {
        got.extend(n.recv_all(Dir::BtoA, s));
        if !n.step(end) {
            break;
        }
    }
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
}
