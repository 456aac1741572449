//! Handshake, data transfer and close: RFC 9293 section 3.5/3.6 transitions with exact
//! segments.

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::wire::TcpFlags;
use ustack_tcp::{TcpError, TcpState};

const S: TcpFlags = TcpFlags::SYN;
const A: TcpFlags = TcpFlags::ACK;
const F: TcpFlags = TcpFlags::FIN;
const R: TcpFlags = TcpFlags::RST;

fn sa_(f: TcpFlags, g: TcpFlags) -> TcpFlags {
    f | g
}

#[test]
fn three_way_handshake_exact_segments() {
    let mut n = Net::new();
    let l = n.listen_b(80, 8);
    let c = n.connect_a(80);
    assert_eq!(n.a.state(c), Some(TcpState::SynSent));
    assert!(n.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Some(TcpState::Established)));
    n.settle();
    let log = n.log_take();
    assert_eq!(log.len(), 3, "{log:#?}");
    let (syn, synack, ack) = (&log[0], &log[1], &log[2]);
    assert!(syn.is(S) && syn.dir == Dir::AtoB && syn.len == 0);
    assert_eq!(syn.opts.mss, Some(1460));
    assert!(syn.opts.sack_permitted && syn.opts.wscale.is_some() && syn.opts.timestamp.is_some());
    assert!(synack.is(sa_(S, A)));
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert!(ack.is(A));
    assert_eq!(ack.seq, syn.seq.wrapping_add(1));
    assert_eq!(ack.ack, synack.seq.wrapping_add(1));
    let s = n.b.accept(l).unwrap().unwrap();
    assert_eq!(n.b.state(s), Some(TcpState::Established));
    assert_eq!(n.b.peer_addr(s), n.a.local_addr(c));
    let st = n.b.stats();
    assert_eq!(st.passive_opens, 1);
    assert_eq!(n.a.stats().active_opens, 1);
    assert_eq!(st.curr_estab, 1);
}

#[test]
fn data_both_ways_and_active_close() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    assert_eq!(n.a_send(c, b"hello"), 5);
    assert_eq!(n.b_send(s, b"world!"), 6);
    n.run_for(Duration::from_millis(500));
    assert_eq!(n.recv_all(Dir::BtoA, s), b"hello");
    assert_eq!(n.recv_all(Dir::AtoB, c), b"world!");
    n.log_take();
    // Active close by A: FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT; B: CLOSE_WAIT -> LAST_ACK -> CLOSED.
    n.shutdown(Dir::AtoB, c);
    assert_eq!(n.a.state(c), Some(TcpState::FinWait1));
    n.settle();
    // B acknowledges the FIN on its delayed-ACK timer (Linux's ping-pong mode after a
    // FIN), not at once: A waits in FIN_WAIT_1 until then.
    assert_eq!(n.b.state(s), Some(TcpState::CloseWait));
    assert_eq!(n.a.state(c), Some(TcpState::FinWait1));
    n.run_for(Duration::from_millis(250));
    assert_eq!(n.a.state(c), Some(TcpState::FinWait2));
    let mut buf = [0u8; 10];
    let mut out = Vec::new();
    assert_eq!(n.b.recv(n.now, s, &mut buf, &mut out), Ok(0));
    // Half-close: B can still send.
    assert_eq!(n.b_send(s, b"late"), 4);
    n.run_for(Duration::from_millis(300));
    assert_eq!(n.recv_all(Dir::AtoB, c), b"late");
    n.close(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::TimeWait));
    let log = n.log_take();
    let fins: Vec<_> = log.iter().filter(|s| s.has(F)).collect();
    assert_eq!(fins.len(), 2, "{log:#?}");
    // TIME_WAIT lasts 2*MSL (60 s by default).
    n.run_for(Duration::from_secs(59));
    assert_eq!(n.a.state(c), Some(TcpState::TimeWait));
    n.run_for(Duration::from_secs(2));
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    assert_eq!(n.a.connection_count(), 0);
    assert_eq!(n.b.connection_count(), 0);
    assert_eq!(n.b.socket_count(), 1, "only the listener remains");
}

#[test]
fn rst_to_closed_port_exact() {
    let mut n = Net::new();
    // SYN to a closed port: RST|ACK with seq 0, ack = seq + 1.
    let mut syn = ustack_tcp::wire::TcpRepr::new(
        1234,
        81,
        ustack_tcp::SeqNum(1000),
        ustack_tcp::SeqNum(0),
        S,
    );
    syn.window = 1000;
    let r = n.inject(Dir::AtoB, sa(A_IP, 1234), sa(B_IP, 81), &syn, &[]);
    assert_eq!(r.len(), 1);
    assert!(r[0].is(sa_(R, A)));
    assert_eq!((r[0].seq, r[0].ack), (0, 1001));
    // Data with ACK: RST with seq = SEG.ACK, no ACK.
    let mut d = ustack_tcp::wire::TcpRepr::new(
        1234,
        81,
        ustack_tcp::SeqNum(5000),
        ustack_tcp::SeqNum(777),
        A,
    );
    d.window = 1000;
    let r = n.inject(Dir::AtoB, sa(A_IP, 1234), sa(B_IP, 81), &d, b"abc");
    assert_eq!(r.len(), 1);
    assert!(r[0].is(R));
    assert_eq!(r[0].seq, 777);
    // Data+FIN without ACK: ack = seq + len + 1.
    let d = ustack_tcp::wire::TcpRepr::new(
        1234,
        81,
        ustack_tcp::SeqNum(5000),
        ustack_tcp::SeqNum(0),
        F,
    );
    let r = n.inject(Dir::AtoB, sa(A_IP, 1234), sa(B_IP, 81), &d, b"abc");
    assert!(r[0].is(sa_(R, A)));
    assert_eq!(r[0].ack, 5004);
    // An RST never gets an RST.
    let d = ustack_tcp::wire::TcpRepr::new(
        1234,
        81,
        ustack_tcp::SeqNum(5000),
        ustack_tcp::SeqNum(0),
        R,
    );
    assert!(n
        .inject(Dir::AtoB, sa(A_IP, 1234), sa(B_IP, 81), &d, &[])
        .is_empty());
    assert_eq!(n.b.stats().out_rsts, 3);
}

#[test]
fn connect_refused_by_rst() {
    let mut n = Net::new();
    let c = n.connect_a(9);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    assert_eq!(
        n.a.recv(n.now, c, &mut buf, &mut out),
        Err(TcpError::ConnectionRefused)
    );
    assert_eq!(n.a.stats().attempt_fails, 1);
}

fn bind_connect(n: &mut Net, d: Dir, lport: u16, rport: u16) -> ustack_tcp::SockId {
    let (lip, rip) = match d {
        Dir::AtoB => (A_IP, B_IP),
        Dir::BtoA => (B_IP, A_IP),
    };
    let now = n.now;
    let l = n.layer(d);
    let id = l.socket();
    l.bind(id, sa(lip, lport)).unwrap();
    let mut out = Vec::new();
    l.connect(now, id, lip, sa(rip, rport), MTU, &mut out)
        .unwrap();
    n.send(d, out);
    id
}

#[test]
fn simultaneous_open() {
    let mut n = Net::new();
    let a = bind_connect(&mut n, Dir::AtoB, 1000, 2000);
    let b = bind_connect(&mut n, Dir::BtoA, 2000, 1000);
    n.run_for(Duration::from_millis(1));
    assert_eq!(n.a.state(a), Some(TcpState::SynReceived));
    assert_eq!(n.b.state(b), Some(TcpState::SynReceived));
    n.settle();
    assert_eq!(n.a.state(a), Some(TcpState::Established));
    assert_eq!(n.b.state(b), Some(TcpState::Established));
    let log = n.log_take();
    // SYN, SYN, SYN-ACK, SYN-ACK (RFC 9293 figure 7).
    assert_eq!(log.iter().filter(|s| s.is(S)).count(), 2);
    assert_eq!(log.iter().filter(|s| s.is(sa_(S, A))).count(), 2);
    assert_eq!(n.a_send(a, b"x"), 1);
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, b), b"x");
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let now = n.now;
    let mut oa = Vec::new();
    let mut ob = Vec::new();
    n.a.shutdown_write(now, c, &mut oa).unwrap();
    n.b.shutdown_write(now, s, &mut ob).unwrap();
    n.send(Dir::AtoB, oa);
    n.send(Dir::BtoA, ob);
    n.run_for(Duration::from_millis(1));
    assert_eq!(n.a.state(c), Some(TcpState::Closing));
    assert_eq!(n.b.state(s), Some(TcpState::Closing));
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::TimeWait));
    assert_eq!(n.b.state(s), Some(TcpState::TimeWait));
    n.run_for(Duration::from_secs(61));
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    assert_eq!(n.b.state(s), Some(TcpState::Closed));
}

#[test]
fn passive_close_last_ack() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.shutdown(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::CloseWait));
    n.shutdown(Dir::AtoB, c);
    assert_eq!(n.a.state(c), Some(TcpState::LastAck));
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    assert_eq!(n.b.state(s), Some(TcpState::TimeWait));
}

#[test]
fn time_wait_reused_by_newer_syn() {
    let mut n = Net::new();
    let l = n.listen_b(80, 8);
    let c = bind_connect(&mut n, Dir::AtoB, 5555, 80);
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    assert_eq!(n.a_send(c, b"data"), 4);
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"data");
    // The server closes first, so the server holds TIME_WAIT.
    n.close(Dir::BtoA, s);
    n.settle();
    n.close(Dir::AtoB, c);
    n.settle();
    assert_eq!(n.b.connection_count(), 1, "TIME_WAIT on the server");
    n.run_for(Duration::from_secs(1));
    let c2 = bind_connect(&mut n, Dir::AtoB, 5555, 80);
    n.settle();
    assert_eq!(n.a.state(c2), Some(TcpState::Established));
    assert_eq!(n.b.stats().tcp_tw_recycled, 1);
    assert!(n.b.accept(l).unwrap().is_some());
}

#[test]
fn rst_in_established_and_close_wait() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let now = n.now;
    let mut out = Vec::new();
    n.b.abort(now, s, &mut out);
    n.send(Dir::BtoA, out);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    assert_eq!(n.a.take_error(c), Some(TcpError::ConnectionReset));
    assert_eq!(n.a.stats().estab_resets, 1);
    assert_eq!(n.a.stats().curr_estab, 0);

    let (c, s) = n.connect_pair(81);
    n.shutdown(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::CloseWait));
    let mut out = Vec::new();
    n.b.abort(n.now, s, &mut out);
    n.send(Dir::BtoA, out);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
}

/// The peer's FIN is acknowledged on the delayed-ACK timer (Linux enters ping-pong mode on
/// a FIN): an application that closes at once sends that ACK on its own FIN, a close of
/// three segments instead of four; one that does not close gets its ACK sent by the
/// timer, between `delack_min` and `delack_max` after the FIN.
#[test]
fn fin_is_acknowledged_on_the_closing_fin_or_the_delayed_ack_timer() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.log_take();
    n.shutdown(Dir::AtoB, c);
    n.settle();
    assert_eq!(n.b.state(s), Some(TcpState::CloseWait));
    n.close(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::TimeWait));
    assert_eq!(n.b.state(s), None);
    let log = n.log_take();
    assert_eq!(log.len(), 3, "{log:#?}");
    let (fin_a, fin_b, ack) = (&log[0], &log[1], &log[2]);
    assert!(fin_a.dir == Dir::AtoB && fin_a.is(sa_(F, A)), "{log:#?}");
    assert!(fin_b.dir == Dir::BtoA && fin_b.is(sa_(F, A)), "{log:#?}");
    assert_eq!(fin_b.ack, fin_a.seq.wrapping_add(1));
    assert!(ack.dir == Dir::AtoB && ack.is(A));
    assert_eq!(ack.ack, fin_b.seq.wrapping_add(1));

    // B does not close: its ACK of the FIN comes from the timer.
    let (c, s) = n.connect_pair(81);
    n.log_take();
    n.shutdown(Dir::AtoB, c);
    n.run_for(Duration::from_millis(300));
    assert_eq!(n.a.state(c), Some(TcpState::FinWait2));
    assert_eq!(n.b.state(s), Some(TcpState::CloseWait));
    let log = n.log_take();
    assert_eq!(log.len(), 2, "{log:#?}");
    let (fin, ack) = (&log[0], &log[1]);
    assert!(fin.dir == Dir::AtoB && fin.has(F));
    assert!(ack.dir == Dir::BtoA && ack.is(A) && ack.ack == fin.seq.wrapping_add(1));
    let waited = ack.at - fin.at;
    assert!(
        waited >= Duration::from_millis(40) && waited <= Duration::from_millis(200),
        "{waited:?}"
    );
}

#[test]
fn rst_in_fin_wait_and_last_ack_and_syn_received() {
    let mut n = Net::new();
    // FIN_WAIT_2.
    let (c, s) = n.connect_pair(80);
    n.shutdown(Dir::AtoB, c);
    // B's ACK of the FIN comes on its delayed-ACK timer.
    n.run_for(Duration::from_millis(250));
    assert_eq!(n.a.state(c), Some(TcpState::FinWait2));
    let mut out = Vec::new();
    n.b.abort(n.now, s, &mut out);
    n.send(Dir::BtoA, out);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    // LAST_ACK: the peer's RST ends it (no error reported).
    let (c, s) = n.connect_pair(82);
    n.shutdown(Dir::BtoA, s);
    n.settle();
    n.set_rule(Dir::AtoB, |seg, _| {
        if seg.has(F) {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    n.shutdown(Dir::AtoB, c);
    assert_eq!(n.a.state(c), Some(TcpState::LastAck));
    n.clear_rules();
    let mut out = Vec::new();
    n.b.abort(n.now, s, &mut out);
    n.send(Dir::BtoA, out);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
    // SYN_RECEIVED on the server: a request sock dies on RST, listener stays.
    let l = n.listen_b(83, 8);
    n.set_rule(Dir::AtoB, |seg, _| {
        if seg.is(A) && seg.len == 0 {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    let c = n.connect_a(83);
    n.run_for(Duration::from_millis(5));
    assert_eq!(n.b.connection_count(), 1);
    n.clear_rules();
    let mut out = Vec::new();
    n.a.abort(n.now, c, &mut out);
    n.send(Dir::AtoB, out);
    n.settle();
    assert_eq!(n.b.connection_count(), 0);
    assert_eq!(n.b.accept(l).unwrap(), None);
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.a_send(c, b"unread");
    n.settle();
    n.log_take();
    n.close(Dir::BtoA, s);
    n.settle();
    let log = n.log_take();
    assert!(log[0].has(R), "{log:?}");
    assert_eq!(n.b.stats().tcp_abort_on_close, 1);
    assert_eq!(n.a.state(c), Some(TcpState::Closed));
}

#[test]
fn orphan_finishes_in_background() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let data = pattern(100_000, 1);
    // A writes as much as the send buffer takes, then closes at once; the orphan
    // keeps sending, then FINs.
    let sent = n.a_send(c, &data);
    assert!(sent > 10_000);
    n.close(Dir::AtoB, c);
    let mut got = Vec::new();
    n.run_until(Duration::from_secs(30), |n| {
        got.extend(n.recv_all(Dir::BtoA, s));
        n.b.poll_state(s).read_closed
    });
    assert!(n.a.state(c).is_none(), "the user id is gone after close");
    assert!(n.b.poll_state(s).read_closed);
    assert_eq!(got, &data[..sent]);
}

/// The side that closes first and whose application has dropped the socket keeps only a
/// compact TIME_WAIT socket, which still does TIME_WAIT's job: it acknowledges the peer's
/// retransmitted FIN, ignores an out-of-window RST, and is gone after 2*MSL.
#[test]
fn orphaned_time_wait_is_compact_and_still_answers() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    assert_eq!(n.a_send(c, b"bye"), 3);
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"bye");
    let sockets_before = n.a.socket_count();
    n.close(Dir::AtoB, c);
    n.settle();
    n.close(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.stats().tcp_tw_compact, 1);
    assert_eq!(n.a.stats().orphans, 0, "TIME_WAIT is not an orphan");
    assert_eq!(n.a.connection_count(), 1, "A holds TIME_WAIT");
    assert_eq!(n.a.socket_count(), sockets_before);
    assert_eq!(n.b.connection_count(), 0);
    let fin = n.last(Dir::BtoA);
    assert!(fin.has(F));
    let last_ack = n.last(Dir::AtoB);
    assert!(last_ack.is(A) && last_ack.ack == fin.seq.wrapping_add(1));

    // B's FIN again, as if A's ACK were lost: A acknowledges it again, unchanged. (The
    // reply is not delivered: B has closed and would answer it with an RST, which ends
    // TIME_WAIT as RFC 1337 describes and Linux does by default.)
    n.run_for(Duration::from_secs(5));
    let mut again = ustack_tcp::wire::TcpRepr::new(
        fin.src.port(),
        fin.dst.port(),
        ustack_tcp::SeqNum(fin.seq),
        ustack_tcp::SeqNum(fin.ack),
        fin.flags,
    );
    again.options.timestamp = fin.opts.timestamp;
    again.window = fin.window;
    let replies = n.inject_noreply(Dir::BtoA, fin.src, fin.dst, &again, &[]);
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let r = &replies[0];
    assert!(r.is(A));
    assert_eq!((r.src, r.dst), (last_ack.src, last_ack.dst));
    assert_eq!((r.seq, r.ack), (last_ack.seq, last_ack.ack));
    assert_eq!(r.window, last_ack.window);
    assert_eq!(
        r.opts.timestamp.map(|t| t.1),
        fin.opts.timestamp.map(|t| t.0),
        "echoes the peer's timestamp"
    );

    // An RST outside the window changes nothing (RFC 5961 / RFC 1337).
    let mut rst = again;
    rst.flags = R;
    rst.seq = ustack_tcp::SeqNum(fin.seq.wrapping_add(100_000));
    rst.options.timestamp = None;
    assert!(n
        .inject_noreply(Dir::BtoA, fin.src, fin.dst, &rst, &[])
        .is_empty());
    assert_eq!(n.a.connection_count(), 1);

    // The retransmitted FIN restarted 2*MSL (60 s): still there after 59 s, gone after 61.
    n.run_for(Duration::from_secs(59));
    assert_eq!(n.a.connection_count(), 1);
    n.run_for(Duration::from_secs(2));
    assert_eq!(n.a.connection_count(), 0);
    assert_eq!(n.a.stats().tw, 1);
    assert_eq!(n.a.socket_count(), sockets_before - 1);
}
