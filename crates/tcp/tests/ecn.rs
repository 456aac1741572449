//! Explicit Congestion Notification (RFC 3168): negotiation, ECN-capable data, the
//! receiver's echo and the sender's once-per-window reduction.

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::wire::TcpFlags;
use ustack_tcp::{EcnMode, SockId, TcpConfig};

fn cfg(ecn: EcnMode) -> TcpConfig {
    TcpConfig {
        ecn,
        ..TcpConfig::default()
    }
}

/// The handshake of a pair whose client (A) and server (B) use these modes: whether each
/// end negotiated ECN, and the flags of the SYN and SYN-ACK.
/// A->B data segments `segs` (counted in segments of `mss` from the first data byte)
/// arrive marked Congestion Experienced.
fn mark_ce(n: &mut Net, mss: u32, segs: std::ops::Range<u32>) {
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len > 0 && segs.clone().any(|k| seg.seq_rel_is(k * mss)) {
            return Action::MarkCe;
        }
        Action::Pass
    });
}

fn handshake(a: EcnMode, b: EcnMode) -> (bool, bool, TcpFlags, TcpFlags) {
    let mut n = Net::with_configs(cfg(a), cfg(b));
    let (c, s) = n.connect_pair(80);
    let syn = n
        .log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.flags.syn())
        .expect("SYN")
        .flags;
    let synack = n.last_synack_flags();
    (
        n.a.info(c).unwrap().ecn,
        n.b.info(s).unwrap().ecn,
        syn,
        synack,
    )
}

#[test]
fn ecn_is_used_only_when_one_end_asks_and_the_other_accepts() {
    let (ea, eb, syn, synack) = handshake(EcnMode::Request, EcnMode::Accept);
    assert!(ea && eb);
    assert!(syn.ece() && syn.cwr(), "{syn:?}");
    assert!(synack.ece() && !synack.cwr(), "{synack:?}");
    let (ea, eb, _, _) = handshake(EcnMode::Request, EcnMode::Request);
    assert!(ea && eb);
    // The default: accepted, not asked for.
    let (ea, eb, syn, synack) = handshake(EcnMode::Accept, EcnMode::Accept);
    assert!(!ea && !eb);
    assert!(!syn.ece() && !syn.cwr() && !synack.ece());
    let (ea, eb, syn, synack) = handshake(EcnMode::Request, EcnMode::Off);
    assert!(!ea && !eb);
    assert!(syn.ece() && !synack.ece(), "{synack:?}");
}

/// A SYN asking for ECN that goes unanswered is resent without asking (a middlebox may
/// drop such SYNs); the connection then goes without ECN.
#[test]
fn a_resent_syn_does_not_ask_for_ecn() {
    let mut n = Net::with_configs(cfg(EcnMode::Request), cfg(EcnMode::Accept));
    let mut first = true;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.flags.syn() && first {
            first = false;
            return Action::Drop;
        }
        Action::Pass
    });
    let (c, s) = n.connect_pair(80);
    let syns: Vec<_> = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.flags.syn())
        .map(|x| x.flags)
        .collect();
    assert_eq!(syns.len(), 2, "{syns:?}");
    assert!(syns[0].ece() && syns[0].cwr());
    assert!(!syns[1].ece() && !syns[1].cwr());
    assert!(!n.a.info(c).unwrap().ecn && !n.b.info(s).unwrap().ecn);
}

/// New data goes out ECN-capable (ECT(0)); bare ACKs and retransmissions do not
/// (RFC 3168 sections 6.1.4 and 6.1.5).
#[test]
fn new_data_is_ecn_capable_and_acks_and_retransmissions_are_not() {
    let mut n = Net::with_configs(cfg(EcnMode::Request), cfg(EcnMode::Accept));
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    drop_first_tx(&mut n, mss, &[2]);
    n.log_take();
    let data = pattern(8 * mss as usize, 31);
    assert!(n.transfer(c, s, &data, Duration::from_secs(10)) == data);
    let log = n.log_take();
    let lost_seq = log
        .iter()
        .find(|x| x.dir == Dir::AtoB && x.seq_rel_is(2 * mss))
        .unwrap()
        .seq;
    let data_segs: Vec<_> = log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0)
        .collect();
    let copies: Vec<_> = data_segs.iter().filter(|x| x.seq == lost_seq).collect();
    assert_eq!(copies.len(), 2);
    // The retransmission is not ECN-capable; every first transmission is.
    assert_eq!(copies[1].tos & 0b11, 0, "{:?}", copies[1]);
    let firsts: Vec<_> = data_segs
        .iter()
        .filter(|x| !std::ptr::eq(**x, *copies[1]))
        .collect();
    assert!(firsts.iter().all(|x| x.tos & 0b11 == 0b10), "{firsts:?}");
    let acks: Vec<_> = log
        .iter()
        .filter(|x| x.dir == Dir::BtoA && x.len == 0)
        .collect();
    assert!(!acks.is_empty());
    assert!(acks.iter().all(|x| x.tos & 0b11 == 0));
    assert_eq!(n.a.stats().retrans_segs, 1);
}

/// A router marks data segments Congestion Experienced during one window. The receiver
/// echoes ECE on its ACKs until the sender's CWR; the sender reduces its window once for
/// the whole window, retransmits nothing, and says CWR on its next new data. The stream
/// arrives intact. Paced too: the segment carrying CWR then leaves later, and the ACK that
/// covers exactly what was sent before the reduction still echoes ECE (B has not seen the
/// CWR yet), which must not reduce the window a second time.
#[test]
fn congestion_marks_reduce_the_window_once_per_window_without_retransmission() {
    marks_in_one_window(false);
    marks_in_one_window(true);
}

fn marks_in_one_window(pacing: bool) {
    let a = TcpConfig {
        pacing,
        ..cfg(EcnMode::Request)
    };
    let mut n = Net::with_configs(a, cfg(EcnMode::Accept));
    n.delay = Duration::from_millis(10);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    // Data segments 40..44 (one window, sent together) are marked.
    mark_ce(&mut n, mss, 40..44);
    let data = pattern(400 * mss as usize, 32);
    let mut cwnd_before_mark = 0;
    let got = n.transfer_observed(c, s, &data, Duration::from_secs(30), |n| {
        if n.b.stats().tcp_ecn_ce_rcvd == 0 {
            cwnd_before_mark = n.a.info(c).unwrap().snd_cwnd;
        }
    });
    assert!(got == data);
    let (sa, sb) = (n.a.stats(), n.b.stats());
    assert_eq!(sb.tcp_ecn_ce_rcvd, 4, "{sb:?}");
    assert_eq!(sa.tcp_ecn_reductions, 1, "{sa:?}");
    assert_eq!(sa.retrans_segs, 0, "{sa:?}");
    assert_eq!((sa.tcp_sack_recovery, sa.tcp_timeouts), (0, 0), "{sa:?}");
    let i = n.a.info(c).unwrap();
    assert!(
        i.snd_ssthresh < cwnd_before_mark,
        "{i:?} cwnd {cwnd_before_mark}"
    );
    // ECE from B: from the ACK of the first marked segment until A's CWR reached B.
    let log = &n.log;
    let first_ece = log
        .iter()
        .position(|x| x.dir == Dir::BtoA && x.flags.ece() && !x.flags.syn())
        .expect("an ECN-Echo");
    let cwr = log
        .iter()
        .position(|x| x.dir == Dir::AtoB && x.flags.cwr() && x.len > 0)
        .expect("CWR on new data");
    assert!(cwr > first_ece);
    assert_eq!(
        log.iter()
            .filter(|x| x.dir == Dir::AtoB && x.flags.cwr() && !x.flags.syn())
            .count(),
        1
    );
    let cwr_at = log[cwr].at + n.delay;

    // Every ACK B sent between the mark and A's CWR arriving echoes; none after.
    for x in log.iter().skip(first_ece).filter(|x| x.dir == Dir::BtoA) {
        if x.at < cwr_at {
            assert!(x.flags.ece(), "{x:?}");
        } else if x.at > cwr_at {
            assert!(!x.flags.ece(), "{x:?}");
        }
    }
}

/// Fills B's SYN queue of listener `l` with spoofed SYNs, so that the next SYN is answered
/// with a cookie; then connects A to it and returns both ends.
fn connect_through_a_cookie(n: &mut Net, l: SockId) -> (SockId, SockId) {
    n.syn_flood_b(80, 50);
    assert!(n.b.stats().syncookies_sent > 0);
    let (c, s) = n.connect_to_listener(l, 80, 1500);
    assert_eq!(n.b.stats().syncookies_recv, 1);
    (c, s)
}

/// Under a SYN flood the listener answers with SYN cookies and keeps no state; the ECN
/// agreement rides in the cookie's timestamp (as the window scale and SACK do), so the
/// connection still uses ECN: CE marks are echoed and answered with one reduction.
#[test]
fn ecn_survives_a_syn_cookie_handshake() {
    let mut n = Net::with_configs(cfg(EcnMode::Request), cfg(EcnMode::Accept));
    let l = n.listen_b(80, 4);
    let (c, s) = connect_through_a_cookie(&mut n, l);
    let synack = n.last_synack_flags();
    assert!(synack.ece() && !synack.cwr(), "{synack:?}");
    assert!(n.a.info(c).unwrap().ecn);
    assert!(n.b.info(s).unwrap().ecn);

    let mss = n.a.info(c).unwrap().snd_mss;
    mark_ce(&mut n, mss, 20..21);
    let data = pattern(100 * mss as usize, 33);
    assert!(n.transfer(c, s, &data, Duration::from_secs(30)) == data);
    assert_eq!(n.b.stats().tcp_ecn_ce_rcvd, 1);
    assert_eq!(n.a.stats().tcp_ecn_reductions, 1);
}

/// Without timestamps a cookie cannot carry the agreement, so the SYN-ACK does not offer
/// ECN and neither end uses it.
#[test]
fn no_ecn_through_a_cookie_without_timestamps() {
    let no_ts = |ecn| TcpConfig {
        timestamps: false,
        ..cfg(ecn)
    };
    let mut n = Net::with_configs(no_ts(EcnMode::Request), no_ts(EcnMode::Accept));
    let l = n.listen_b(80, 4);
    let (c, s) = connect_through_a_cookie(&mut n, l);
    let synack = n.last_synack_flags();
    assert!(!synack.ece(), "{synack:?}");
    assert!(!n.a.info(c).unwrap().ecn);
    assert!(!n.b.info(s).unwrap().ecn);
}

/// The reduction for an ECN-Echo follows the pipe down (PRR, Linux's CWR state): across
/// a 10 Mbit/s bottleneck A keeps sending about one segment for every two acknowledged
/// while the window comes down, where halving cwnd at once left it silent until half the
/// flight had drained (31 ms without a transmission here).
#[test]
fn an_ecn_reduction_keeps_the_ack_clock_running() {
    let mut n = Net::with_configs(cfg(EcnMode::Request), cfg(EcnMode::Accept));
    n.delay = Duration::from_millis(10);
    n.rate = Some(1_250_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    mark_ce(&mut n, mss, 100..101);
    let data = pattern(400 * mss as usize, 33);
    let mut states = Vec::new();
    let got = n.transfer_observed(c, s, &data, Duration::from_secs(30), |n| {
        let i = n.a.info(c).unwrap();
        if states.last() != Some(&i.ca_state) {
            states.push(i.ca_state);
        }
    });
    assert!(got == data);
    let sa = n.a.stats();
    assert_eq!((sa.tcp_ecn_reductions, sa.retrans_segs), (1, 0), "{sa:?}");
    let log = &n.log;
    let ece_at = log
        .iter()
        .find(|x| x.dir == Dir::BtoA && x.flags.ece() && !x.flags.syn())
        .expect("an ECN-Echo")
        .at
        + n.delay;
    let srtt = n.a.info(c).unwrap().rtt;
    let sends: Vec<_> = log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.len > 0 && x.at >= ece_at && x.at <= ece_at + srtt)
        .map(|x| x.at)
        .collect();
    let gap = sends
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(sends.first().map(|&t| t - ece_at))
        .max()
        .unwrap();
    // A segment crosses the bottleneck in 1.2 ms; two ACKed segments release one.
    assert!(
        gap <= Duration::from_millis(4),
        "largest gap {gap:?} in {sends:?}"
    );
    assert!(states.contains(&"cwr"), "{states:?}");
}

/// A loss in the window an ECN-Echo is already reducing: the fast recovery it starts
/// continues that reduction instead of making a second one (one reduction per window,
/// Linux `tcp_enter_recovery` while in CWR), so ssthresh stays where the ECE put it.
#[test]
fn a_loss_during_an_ecn_reduction_does_not_reduce_again() {
    let mut n = Net::with_configs(cfg(EcnMode::Request), cfg(EcnMode::Accept));
    n.delay = Duration::from_millis(10);
    n.rate = Some(1_250_000);
    let (c, s) = n.connect_pair(80);
    let mss = n.a.info(c).unwrap().snd_mss;
    let mut dropped = false;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len > 0 && seg.seq_rel_is(100 * mss) {
            return Action::MarkCe;
        }
        if seg.len > 0 && seg.seq_rel_is(104 * mss) && !dropped {
            dropped = true;
            return Action::Drop;
        }
        Action::Pass
    });
    let data = pattern(400 * mss as usize, 34);
    let mut first_ssthresh = None;
    let got = n.transfer_observed(c, s, &data, Duration::from_secs(30), |n| {
        let i = n.a.info(c).unwrap();
        if first_ssthresh.is_none() && i.snd_ssthresh < 1_000_000 {
            first_ssthresh = Some(i.snd_ssthresh);
        }
    });
    assert!(got == data);
    let (sa, i) = (n.a.stats(), n.a.info(c).unwrap());
    assert_eq!(
        (sa.tcp_ecn_reductions, sa.tcp_sack_recovery, sa.retrans_segs),
        (1, 1, 1),
        "{sa:?}"
    );
    assert_eq!(Some(i.snd_ssthresh), first_ssthresh, "{i:?}");
}
