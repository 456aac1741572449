//! Retransmission, timeouts, flow control, Nagle, delayed ACK, keepalive, acceptability.

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{KeepaliveCfg, SeqNum, SockOpt, TcpError, TcpState};

/// The payload lengths of A's data segments so far, in order.
fn sent_lens(n: &Net) -> Vec<usize> {
    n.log
        .iter()
        .filter(|s| s.dir == Dir::AtoB && s.len > 0)
        .map(|s| s.len)
        .collect()
}

#[test]
fn retransmission_backoff_then_timed_out() {
    let mut n = Net::new();
    let (c, _s) = n.connect_pair(80);
    n.log_take();
    n.set_rule(Dir::AtoB, |_, _| Action::Drop);
    n.a_send(c, b"lost forever");
    let ok = n.run_until(Duration::from_secs(3600), |n| {
        n.a.state(c) == Some(TcpState::Closed)
    });
    assert!(ok);
    let log = n.log_take();
    let tx: Vec<_> = log
        .iter()
        .filter(|s| s.dir == Dir::AtoB && s.len == 12)
        .collect();
    // The original, one tail loss probe (it goes out when the RTO would have: one
    // segment in flight, RFC 8985 section 7.2), then retries2 = 15 retransmissions by
    // timeout, as Linux does.
    assert_eq!(tx.len(), 17, "{}", tx.len());
    let gaps: Vec<Duration> = tx.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(
        gaps[0], gaps[1],
        "probe after one RTO, first timeout one RTO later"
    );
    for w in gaps[1..].windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(b >= a, "backoff never shrinks: {gaps:?}");
        if b < Duration::from_secs(100) {
            let r = b.as_secs_f64() / a.as_secs_f64();
            assert!((1.9..=2.1).contains(&r), "doubling: {gaps:?}");
        }
    }
    assert!(gaps[0] >= Duration::from_millis(200));
    assert!(*gaps.last().unwrap() <= Duration::from_millis(120_100));
    let mut out = Vec::new();
    let mut buf = [0u8; 8];
    assert_eq!(
        n.a.recv(n.now, c, &mut buf, &mut out),
        Err(TcpError::TimedOut)
    );
    let st = n.a.stats();
    assert_eq!(st.tcp_abort_on_timeout, 1);
    assert_eq!(st.retrans_segs, 16);
    assert_eq!(st.tcp_timeouts, 15);
    assert_eq!(st.tcp_loss_probes, 1);
}

#[test]
fn syn_retries_then_timed_out() {
    let mut n = Net::new();
    let _l = n.listen_b(80, 8);
    n.set_rule(Dir::AtoB, |_, _| Action::Drop);
    let c = n.connect_a(80);
    let t0 = n.now;
    assert!(n.run_until(Duration::from_secs(600), |n| n.a.state(c)
        == Some(TcpState::Closed)));
    let syns = n.log.iter().filter(|s| s.has(TcpFlags::SYN)).count();
    assert_eq!(syns, 7, "1 + syn_retries 6");
    let took = n.now - t0;
    // 1+2+4+8+16+32+64 = 127 s.
    assert!(
        took >= Duration::from_secs(126) && took <= Duration::from_secs(128),
        "{took:?}"
    );
    assert_eq!(n.a.take_error(c), Some(TcpError::TimedOut));
    assert_eq!(n.a.stats().attempt_fails, 1);
}

#[test]
fn out_of_order_segments_reassembled_with_sack() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let mut dropped = false;
    n.set_rule(Dir::AtoB, move |seg, _| {
        // Drop the first transmission of the second data segment.
        if seg.len > 0 && seg.seq_rel_is(1448) && !dropped {
            dropped = true;
            Action::Drop
        } else {
            Action::Pass
        }
    });
    let data = pattern(10 * 1448, 5);
    let got = n.transfer(c, s, &data, Duration::from_secs(10));
    assert!(got == data, "{} of {}", got.len(), data.len());
    assert!(n.b.stats().tcp_ofo_queue > 0);
    let sacks = n
        .log
        .iter()
        .filter(|s| s.dir == Dir::BtoA && s.opts.sack_count > 0)
        .count();
    assert!(sacks > 0, "dupacks carry SACK blocks");
}

#[test]
fn zero_window_and_persist_probes() {
    let mut n = Net::new();
    let l = n.listen_b(80, 8);
    n.b.set_option(l, SockOpt::RecvBuf(8192)).unwrap();
    let c = n.connect_a(80);
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    let data = pattern(50_000, 9);
    let mut sent = n.a_send(c, &data);
    n.run_for(Duration::from_secs(1));
    // B never reads: the window closes.
    let zero = n.log.iter().any(|x| x.dir == Dir::BtoA && x.window == 0);
    if !zero {
        for x in n.log.iter().filter(|x| x.dir == Dir::BtoA) {
            eprintln!(
                "{:?} ack={} win={} {:?}",
                x.flags, x.ack, x.window, x.opts.wscale
            );
        }
    }
    assert!(zero, "B advertised a zero window");
    n.run_for(Duration::from_secs(20));
    let probes = n.a.stats().tcp_win_probe;
    assert!(probes >= 3, "probes {probes}");
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    // Now read everything; the window reopens and the rest flows.
    let mut got = Vec::new();
    let limit = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < limit {
        if sent < data.len() {
            sent += n.a_send(c, &data[sent..]);
        }
        got.extend(n.recv_all(Dir::BtoA, s));
        n.step(limit);
    }
    assert!(got == data, "{} of {}", got.len(), data.len());
}

#[test]
fn nagle_holds_small_segments_until_acked() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(50);
    let (c, _s) = n.connect_pair(80);
    n.log_take();
    n.a_send(c, b"a");
    n.a_send(c, b"b");
    n.a_send(c, b"c");
    let sent = sent_lens(&n);
    assert_eq!(sent, vec![1], "Nagle: one small segment in flight");
    n.settle();
    n.run_for(Duration::from_millis(300));
    let sent = sent_lens(&n);
    assert_eq!(sent, vec![1, 2]);
    // TCP_NODELAY: each write goes out at once.
    n.a.set_option(c, SockOpt::NoDelay(true)).unwrap();
    n.log_take();
    n.a_send(c, b"x");
    n.a_send(c, b"y");
    n.a_send(c, b"z");
    let sent = sent_lens(&n);
    assert_eq!(sent, vec![1, 1, 1]);
}

/// Nagle as Linux applies it (Minshall's variant): a partial segment waits only while an
/// earlier partial segment is unacknowledged. A write of one and a half segments leaves
/// whole (its tail not held behind the full segment's ACK, which a peer may delay); a
/// small write right after it waits for that tail's ACK.
#[test]
fn nagle_holds_a_tail_only_behind_a_small_segment() {
    let mut n = Net::new();
    n.delay = Duration::from_millis(50);
    let (c, _s) = n.connect_pair(80);
    n.log_take();
    let mss = n.a.info(c).unwrap().snd_mss as usize;
    let data = vec![3u8; mss + mss / 2];
    assert_eq!(n.a_send(c, &data), data.len());
    n.a_send(c, b"x");
    let sent = sent_lens(&n);
    assert_eq!(
        sent,
        vec![mss, mss / 2],
        "the tail goes, the small write waits"
    );
    n.settle();
    n.run_for(Duration::from_millis(300));
    let sent = sent_lens(&n);
    assert_eq!(sent, vec![mss, mss / 2, 1]);
}

/// A vectored send is one write (Linux `tcp_sendmsg` over an iovec): a header and a small
/// body leave in one segment, not the header alone with the body held by Nagle until a
/// delayed ACK releases it (what an HTTP server writing head and body with one
/// `write_vectored` relies on). A buffer larger than the send space is taken in part.
#[test]
fn vectored_send_is_one_write_for_nagle() {
    use std::io::IoSlice;
    use ustack_tcp::SendSrc;
    let mut n = Net::new();
    n.delay = Duration::from_millis(50);
    let (c, s) = n.connect_pair(80);
    n.log_take();
    let head = [b'h'; 124];
    let body = [b'b'; 10];
    let bufs = [IoSlice::new(&head), IoSlice::new(&[]), IoSlice::new(&body)];
    let sent = n.a_send_from(c, SendSrc::Vectored(&bufs)).unwrap();
    assert_eq!(sent, 134);
    assert_eq!(sent_lens(&n), vec![134], "head and body in one segment");
    n.settle();
    let mut want = head.to_vec();
    want.extend_from_slice(&body);
    assert_eq!(n.recv_all(Dir::BtoA, s), want);

    // More than the send buffer holds: the buffers are taken in order up to the space.
    let cap = n.a.info(c).unwrap().snd_buf as usize;
    let big = vec![7u8; cap];
    let bufs = [IoSlice::new(&head), IoSlice::new(&big), IoSlice::new(&body)];
    let sent = n.a_send_from(c, SendSrc::Vectored(&bufs)).unwrap();
    assert!(
        sent > head.len() && sent < head.len() + big.len(),
        "{sent} of {cap}"
    );
}

#[test]
fn delayed_ack_every_second_segment_and_timer() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a.set_option(c, SockOpt::NoDelay(true)).unwrap();
    // Leave quick-ack mode: a few exchanges.
    for _ in 0..20 {
        n.a_send(c, b"warmup");
        n.run_for(Duration::from_millis(300));
        n.recv_all(Dir::BtoA, s);
    }
    n.log_take();
    // One small segment: the ACK waits for the delayed-ACK timer (40 ms min).
    let t0 = n.now;
    n.a_send(c, b"q");
    n.run_for(Duration::from_millis(300));
    let acks: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.len == 0)
        .collect();
    assert_eq!(acks.len(), 1);
    let d = acks[0].at - t0;
    assert!(
        d >= Duration::from_millis(40) && d <= Duration::from_millis(210),
        "{d:?}"
    );
    assert!(n.b.stats().delayed_acks >= 1);
    n.recv_all(Dir::BtoA, s);
    // Full segments: one ACK per two.
    n.log_take();
    let mss = n.a.info(c).unwrap().snd_mss as usize;
    let data = pattern(mss * 10, 3);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(1));
    n.settle();
    let acks = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.len == 0)
        .count();
    let segs = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0)
        .count();
    assert_eq!(segs, 10);
    assert_eq!(acks, 5, "{:#?}", n.log);
}

#[test]
fn keepalive_probes_then_timeout() {
    let mut n = Net::new();
    let (c, _s) = n.connect_pair(80);
    let ka = KeepaliveCfg {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    };
    n.a.set_option(c, SockOpt::KeepAlive(Some(ka))).unwrap();
    n.log_take();
    n.run_for(Duration::from_secs(11));
    let probes = n.log.iter().filter(|x| x.dir == Dir::AtoB).count();
    assert_eq!(probes, 1, "{:#?}", n.log);
    assert!(
        n.log.iter().any(|x| x.dir == Dir::BtoA),
        "the peer answered"
    );
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    // The peer goes silent.
    n.set_rule(Dir::BtoA, |_, _| Action::Drop);
    n.run_for(Duration::from_secs(30));
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    assert_eq!(n.a.take_error(c), Some(TcpError::TimedOut));
    assert!(n.a.stats().tcp_keep_alive >= 4);
}

#[test]
fn acceptability_and_trimming() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a_send(c, b"0123456789");
    n.settle();
    let last = n
        .log
        .iter()
        .rev()
        .find(|x| x.dir == Dir::AtoB && x.len > 0)
        .unwrap()
        .clone();
    let (src, dst) = (last.src, last.dst);
    let next = last.seq.wrapping_add(10);
    let ack = last.ack;
    // Overlapping retransmission: 5 old bytes + 5 new ones; only the new ones count.
    let mut r = TcpRepr::new(
        src.port(),
        dst.port(),
        SeqNum(next.wrapping_sub(5)),
        SeqNum(ack),
        TcpFlags::ACK,
    );
    r.window = 1000;
    n.inject(Dir::AtoB, src, dst, &r, b"56789abcde");
    assert_eq!(n.recv_all(Dir::BtoA, s), b"0123456789abcde");
    // Entirely old: answered with an ACK, nothing delivered.
    let r = TcpRepr::new(
        src.port(),
        dst.port(),
        SeqNum(next.wrapping_sub(5)),
        SeqNum(ack),
        TcpFlags::ACK,
    );
    let replies = n.inject(Dir::AtoB, src, dst, &r, b"xxxxx");
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is(TcpFlags::ACK));
    assert_eq!(replies[0].ack, next.wrapping_add(5));
    // Beyond the window: dropped with an ACK.
    let far = SeqNum(next.wrapping_add(10_000_000));
    let r = TcpRepr::new(src.port(), dst.port(), far, SeqNum(ack), TcpFlags::ACK);
    let replies = n.inject(Dir::AtoB, src, dst, &r, b"far");
    assert_eq!(replies.len(), 1);
    assert!(n.recv_all(Dir::BtoA, s).is_empty());
}

/// A retransmission from the peer (an old SEG.SEQ, which the WL1/WL2 rule alone would
/// ignore) that acknowledges new data also carries the window: the window counts from that
/// ACK, so the send limit (`snd_una + snd_wnd`) stays at the peer's right edge instead of
/// moving past it with the new ACK. Data sent past the edge is dropped by a receiver
/// whose buffer is full, and two stacks echoing to each other stalled on that.
#[test]
fn window_is_taken_from_a_peer_retransmission_that_acks_new_data() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    // B's first data segment is lost; the second arrives out of order and moves A's WL1
    // past the first one's sequence number.
    let mut seen = 0;
    n.set_rule(Dir::BtoA, move |seg, _| {
        if seg.len > 0 {
            seen += 1;
            if seen == 1 {
                return Action::Drop;
            }
        }
        Action::Pass
    });
    n.log_take();
    n.b.set_option(s, SockOpt::NoDelay(true)).unwrap();
    n.b_send(s, &[1u8; 1000]);
    n.b_send(s, &[2u8; 1000]);
    n.settle();
    n.clear_rules();
    let log = n.log_take();
    let mut from_b = log.iter().filter(|x| x.dir == Dir::BtoA && x.len > 0);
    let lost = from_b.next().unwrap().clone();
    let opts = from_b.next().unwrap().opts;
    assert!(n.recv_all(Dir::AtoB, c).is_empty());
    // A's data is lost on the way: it stays unacknowledged.
    n.set_rule(Dir::AtoB, |_, _| Action::Drop);
    n.a_send(c, &[7u8; 4000]);
    let first = n
        .log_take()
        .into_iter()
        .find(|x| x.dir == Dir::AtoB && x.len > 0)
        .unwrap();
    let info = n.a.info(c).unwrap();
    let shift = info.wscale.map_or(0, |w| w.0);
    let wide = info.snd_wnd;
    let acked = info.bytes_acked;
    // B's buffer filled meanwhile: its retransmission of the lost segment acknowledges
    // 1000 of A's bytes and offers a window of 8 << shift bytes from there.
    let mut r = TcpRepr::new(
        lost.src.port(),
        lost.dst.port(),
        SeqNum(lost.seq),
        SeqNum(first.seq.wrapping_add(1000)),
        TcpFlags::ACK,
    );
    r.window = 8;
    r.options = opts;
    n.inject(Dir::BtoA, lost.src, lost.dst, &r, &[1u8; 1000]);
    let got = n.recv_all(Dir::AtoB, c);
    assert_eq!(got.len(), 2000);
    assert!(got[..1000].iter().all(|&b| b == 1) && got[1000..].iter().all(|&b| b == 2));
    let info = n.a.info(c).unwrap();
    assert_eq!(info.bytes_acked, acked + 1000);
    assert!(wide > 8 << shift);
    assert_eq!(
        info.snd_wnd,
        8 << shift,
        "the window of the ACK that moved snd_una"
    );
}

/// A damaged in-order data segment, the case header prediction takes (it verifies the
/// checksum right after copying the payload into the receive buffer), is discarded
/// without effect: nothing becomes readable and the copy is undone; the retransmission
/// then delivers the data intact and in order.
#[test]
fn damaged_in_order_segment_is_discarded_without_effect() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    // Steady state first, so the damaged segment meets the fast path.
    let warm = pattern(4000, 1);
    assert_eq!(n.transfer(c, s, &warm, Duration::from_secs(5)), warm);
    n.settle();
    let before = n.b.stats();
    let mut damaged = false;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len > 0 && !damaged {
            damaged = true;
            Action::Corrupt
        } else {
            Action::Pass
        }
    });
    let data = pattern(1000, 2);
    assert_eq!(n.a_send(c, &data), data.len());
    // Well inside the retransmission timeout: only the damaged copy has arrived.
    n.run_for(Duration::from_millis(20));
    let mid = n.b.stats();
    assert_eq!(mid.in_csum_errors, before.in_csum_errors + 1);
    assert!(
        n.recv_all(Dir::BtoA, s).is_empty(),
        "damaged data became readable"
    );
    n.run_for(Duration::from_secs(3));
    assert_eq!(n.recv_all(Dir::BtoA, s), data);
    let after = n.b.stats();
    assert_eq!(after.in_csum_errors, before.in_csum_errors + 1);
    assert!(after.tcp_hp_hits > before.tcp_hp_hits);
}

/// The retransmission timer restarted by a later send fires one RTO after that send, not
/// after the first: restarting only records the new deadline (the timer wheel keeps the
/// earlier entry, and the handler re-arms when it finds the deadline not reached).
#[test]
fn restarted_retransmission_timer_fires_one_rto_after_the_last_send() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a_send(c, b"first");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"first");
    let rto = n.a.info(c).unwrap().rto;
    // 100 ms later, a send whose segments are all lost.
    n.run_for(Duration::from_millis(100));
    n.set_rule(Dir::AtoB, |seg, _| {
        if seg.len > 0 {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    n.log_take();
    n.a_send(c, b"second");
    n.run_for(rto * 3);
    let log = n.log_take();
    let sends: Vec<_> = log
        .iter()
        .filter(|g| g.dir == Dir::AtoB && g.len > 0)
        .collect();
    assert!(sends.len() >= 2, "no retransmission: {sends:?}");
    let gap = sends[1].at - sends[0].at;
    assert!(
        gap >= rto && gap < rto + Duration::from_millis(50),
        "retransmitted {gap:?} after the send, RTO {rto:?}"
    );
}
