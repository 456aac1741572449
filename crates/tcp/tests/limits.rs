//! Resource limits (issue 7): every bounded table and buffer sheds load with a counter,
//! and the stack recovers when the pressure ends. Deterministic: virtual clock, scripted
//! pipe (`tests/common`).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{SeqNum, SockId, SockOpt, TcpConfig, TcpError, TcpState};

/// Sends as much of `data` as A accepts on each connection, and steps the pipe, for `d`
/// of virtual time. Returns the bytes A took per connection.
fn pump(n: &mut Net, conns: &[SockId], data: &[u8], sent: &mut [usize], d: Duration) {
    let end = n.now + d;
    while n.now < end {
        for (i, &c) in conns.iter().enumerate() {
            if sent[i] < data.len() {
                sent[i] += n.a_send(c, &data[sent[i]..]);
            }
        }
        if !n.step(end) {
            break;
        }
    }
}

/// Reads everything B has on `s` (without waiting for EOF).
fn drain(n: &mut Net, s: SockId, into: &mut Vec<u8>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut out = Vec::new();
        let now = n.now;
        let r = n.b.recv(now, s, &mut buf, &mut out);
        n.send(Dir::BtoA, out);
        match r {
            Ok(k) if k > 0 => into.extend_from_slice(&buf[..k]),
            _ => break,
        }
    }
}

/// `tcp_mem`: above `mem_pressure` the stack enters pressure (buffers stop growing,
/// windows are clamped), above `mem_limit` new data and new connections are refused;
/// below `mem_low` pressure ends and everything flows again, byte-identical.
#[test]
fn global_memory_pressure_sheds_and_recovers() {
    let cb = TcpConfig {
        mem_limit: 256 << 10,
        mem_pressure: 160 << 10,
        mem_low: 64 << 10,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cb);
    n.keep_log = true;
    let l = n.listen_b(80, 64);
    let mut conns = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..4 {
        let c = n.connect_a(80);
        assert!(n.run_until(Duration::from_secs(5), |n| n.a.state(c)
            == Some(TcpState::Established)));
        n.settle();
        servers.push(n.b.accept(l).unwrap().expect("accepted"));
        conns.push(c);
    }
    let data = pattern(400_000, 7);
    let mut sent = vec![0usize; 4];
    // B does not read: its receive buffers fill past the pressure and the hard limit.
    pump(&mut n, &conns, &data, &mut sent, Duration::from_secs(5));
    let st = n.b.stats();
    assert_eq!(st.tcp_memory_pressures, 1, "entered pressure once: {st:?}");
    assert_eq!(st.memory_pressure, 1);
    assert!(n.b.under_memory_pressure());
    assert!(
        st.tcp_rcvq_drop > 0,
        "data beyond the hard limit dropped: {st:?}"
    );
    // Bounded: the hard limit plus each socket's rmem.0 minimum plus one segment.
    let bound = (256 << 10) + 4 * (4096 + 1460);
    assert!(
        st.memory_used_peak as usize <= bound,
        "peak {} > {bound}",
        st.memory_used_peak
    );
    // Above the hard limit a new connection is refused (its SYN is dropped).
    assert!(
        n.b.memory_used() + 4096 > 256 << 10,
        "{}",
        n.b.memory_used()
    );
    let drops = st.listen_drops;
    let late = n.connect_a(80);
    n.run_for(Duration::from_millis(500));
    assert_eq!(n.a.state(late), Some(TcpState::SynSent));
    assert!(n.b.stats().listen_drops > drops);

    // The application reads one connection: memory stays above `mem_low`, so pressure
    // holds and that connection's reopened window is clamped to 4 MSS.
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); 4];
    let s0_port = n.b.local_addr(servers[0]).unwrap().port();
    let c0_port = n.a.local_addr(conns[0]).unwrap().port();
    let ws = n.b.info(servers[0]).unwrap().wscale.map_or(0, |w| w.1);
    let edge = |s: &Seg| s.ack.wrapping_add((s.window as u32) << ws);
    let is_s0 = |s: &Seg| s.dir == Dir::BtoA && s.src.port() == s0_port && s.dst.port() == c0_port;
    let promised = n
        .log
        .iter()
        .rev()
        .find(|s| is_s0(s))
        .map(edge)
        .expect("an ACK");
    n.log_take();
    drain(&mut n, servers[0], &mut got[0]);
    n.run_for(Duration::from_millis(50));
    assert!(n.b.under_memory_pressure());
    let mut updates = 0;
    for s in n.log.iter().filter(|s| is_s0(s)) {
        let clamp = s.ack.wrapping_add(4 * 1460 + (1 << ws));
        let bound = if clamp.wrapping_sub(promised) as i32 > 0 {
            clamp
        } else {
            promised
        };
        assert!(
            (edge(s).wrapping_sub(bound) as i32) <= 0,
            "window clamped to 4 MSS under pressure: edge {} > {bound}",
            edge(s)
        );
        updates += 1;
    }
    assert!(updates > 0, "B announced its window after the read");

    // Pressure ends once everything is read; windows reopen, the refused client gets in,
    // and every byte arrives intact.
    let end = n.now + Duration::from_secs(120);
    while n.now < end && got.iter().map(Vec::len).sum::<usize>() < 4 * data.len() {
        for (i, &s) in servers.iter().enumerate() {
            let mut g = std::mem::take(&mut got[i]);
            drain(&mut n, s, &mut g);
            got[i] = g;
        }
        for (i, &c) in conns.iter().enumerate() {
            if sent[i] < data.len() {
                sent[i] += n.a_send(c, &data[sent[i]..]);
            }
        }
        if !n.step(end) {
            break;
        }
    }
    for g in &got {
        assert_eq!(g.len(), data.len());
        assert_eq!(hash(g), hash(&data), "byte-identical after shedding");
    }
    let st = n.b.stats();
    assert_eq!(st.memory_pressure, 0, "pressure ended: {st:?}");
    assert!(!n.b.under_memory_pressure());
    assert!(st.tcp_memory_pressures_chrono > 0);
    assert!(n.run_until(Duration::from_secs(10), |n| n.a.state(late)
        == Some(TcpState::Established)));
    assert_eq!(n.b.memory_used(), 0, "idle connections hold no buffers");
}

/// Per-connection out-of-order limit: beyond `ooo_queue_limit` out-of-order segments
/// are dropped (`TCPOFODrop`) and resent later; the stream still arrives intact.
#[test]
fn ofo_queue_limit_drops_and_stream_recovers() {
    let cb = TcpConfig {
        ooo_queue_limit: 8 << 10,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cb);
    let (c, s) = n.connect_pair(80);
    // Lose the first data segment once: everything behind it is out of order at B.
    n.set_rule(Dir::AtoB, |seg, _| {
        if seg.len > 0 && seg.seq_rel_is(0) {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    let data = pattern(60_000, 3);
    n.a_send(c, &data);
    n.run_for(Duration::from_millis(20));
    let st = n.b.stats();
    assert!(st.tcp_ofo_queue > 0, "{st:?}");
    assert!(st.tcp_ofo_drop > 0, "queue limit reached: {st:?}");
    assert!(n.b.memory_used() <= 8 << 10, "{}", n.b.memory_used());
    n.clear_rules();
    let mut got = Vec::new();
    let end = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < end {
        drain(&mut n, s, &mut got);
        if !n.step(end) {
            break;
        }
    }
    assert_eq!(hash(&got), hash(&data));
}

/// Under memory pressure a connection's out-of-order queue is pruned (`PruneCalled`,
/// `OfoPruned`); the sender forgets its SACKs at the RTO (RFC 2018 section 8) and resends,
/// so the stream still arrives byte-identical.
#[test]
fn pressure_prunes_ofo_queue_and_sender_recovers_from_reneging() {
    let cb = TcpConfig {
        mem_limit: 1 << 20,
        mem_pressure: 100 << 10,
        mem_low: 40 << 10,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cb);
    let l = n.listen_b(80, 16);
    let mut pair = || {
        let c = n.connect_a(80);
        assert!(n.run_until(Duration::from_secs(5), |n| n.a.state(c)
            == Some(TcpState::Established)));
        n.settle();
        (c, n.b.accept(l).unwrap().expect("accepted"))
    };
    let (c1, s1) = pair();
    let (c2, s2) = pair();
    // The first data segment of c1 is lost until the stack is under pressure: its
    // out-of-order data waits at B, and a retransmission timeout's resend arrives under
    // pressure.
    let c1_port = n.a.local_addr(c1).unwrap().port();
    let lose = std::rc::Rc::new(std::cell::Cell::new(true));
    let losing = lose.clone();
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.src.port() == c1_port && seg.len > 0 && seg.seq_rel_is(0) && losing.get() {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    let d1 = pattern(60_000, 11);
    n.a_send(c1, &d1);
    n.run_for(Duration::from_millis(20));
    assert!(n.b.memory_used() > 40 << 10, "ooo queue held");
    assert!(!n.b.under_memory_pressure());
    // Another connection's unread data pushes the stack into pressure.
    let d2 = pattern(100_000, 12);
    let mut sent = vec![0usize];
    pump(&mut n, &[c2], &d2, &mut sent, Duration::from_millis(300));
    assert!(n.b.stats().tcp_memory_pressures >= 1);
    lose.set(false);
    // c1's retransmission arrives under pressure: the out-of-order queue is pruned.
    let mut g1 = Vec::new();
    let end = n.now + Duration::from_secs(30);
    while g1.len() < d1.len() && n.now < end {
        drain(&mut n, s1, &mut g1);
        if !n.step(end) {
            break;
        }
    }
    let st = n.b.stats();
    assert!(st.prune_called > 0, "{st:?}");
    assert!(st.ofo_pruned > 0, "{st:?}");
    assert_eq!(hash(&g1), hash(&d1), "reneged data resent intact");
    // Reading c2 ends the pressure.
    let mut g2 = Vec::new();
    let end = n.now + Duration::from_secs(30);
    while g2.len() < d2.len() && n.now < end {
        drain(&mut n, s2, &mut g2);
        if sent[0] < d2.len() {
            sent[0] += n.a_send(c2, &d2[sent[0]..]);
        }
        if !n.step(end) {
            break;
        }
    }
    assert_eq!(hash(&g2), hash(&d2));
    assert!(!n.b.under_memory_pressure());
}

/// `tcp_max_orphans`: closing beyond the limit aborts with RST (`TCPAbortOnMemory`);
/// once orphans finish, closes are graceful again.
#[test]
fn orphan_limit_aborts_with_rst_and_recovers() {
    let ca = TcpConfig {
        max_orphans: 2,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(ca, TcpConfig::default());
    let mut pairs = Vec::new();
    for i in 0..4 {
        pairs.push(n.connect_pair(80 + i));
    }
    for &(c, _) in pairs.iter().take(3) {
        n.close(Dir::AtoB, c);
        n.settle();
    }
    let st = n.a.stats();
    assert_eq!(st.orphans, 2, "{st:?}");
    assert_eq!(st.tcp_abort_on_memory, 1);
    // The third peer saw the RST.
    let (_, s3) = pairs[2];
    let mut buf = [0u8; 8];
    let mut out = Vec::new();
    assert_eq!(
        n.b.recv(n.now, s3, &mut buf, &mut out),
        Err(TcpError::ConnectionReset)
    );
    // The orphans sit in FIN_WAIT_2 until fin_timeout (60 s), then go away.
    n.run_for(Duration::from_secs(61));
    assert_eq!(n.a.stats().orphans, 0);
    let (c4, s4) = pairs[3];
    n.close(Dir::AtoB, c4);
    n.settle();
    let st = n.a.stats();
    assert_eq!(st.tcp_abort_on_memory, 1, "graceful close again");
    assert_eq!(st.orphans, 1);
    assert_eq!(n.recv_all(Dir::BtoA, s4), b"");
}

/// Connections that reached TIME_WAIT no longer count as orphans (Linux
/// `tcp_orphan_count`): a server that closes first keeps closing gracefully however many
/// TIME_WAIT sockets it holds (`max_tw_buckets` bounds those).
#[test]
fn time_wait_does_not_count_against_the_orphan_limit() {
    let ca = TcpConfig {
        max_orphans: 2,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(ca, TcpConfig::default());
    for i in 0..6 {
        let (c, s) = n.connect_pair(80 + i);
        // A closes first; B answers with its own FIN: A ends in TIME_WAIT.
        n.close(Dir::AtoB, c);
        n.settle();
        n.close(Dir::BtoA, s);
        n.settle();
    }
    let st = n.a.stats();
    assert_eq!(st.time_wait, 6, "{st:?}");
    assert_eq!(st.orphans, 0, "{st:?}");
    assert_eq!(st.tcp_abort_on_memory, 0, "every close was graceful");
    assert_eq!(st.tcp_tw_compact, 6);
    n.run_for(Duration::from_secs(61));
    let st = n.a.stats();
    assert_eq!((st.time_wait, st.orphans, st.sockets), (0, 0, 0), "{st:?}");
}

/// `tcp_max_tw_buckets`: beyond it the connection skips TIME_WAIT
/// (`TCPTimeWaitOverflow`); when entries expire TIME_WAIT is used again.
#[test]
fn time_wait_limit_overflows_and_recovers() {
    let ca = TcpConfig {
        max_tw_buckets: 2,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(ca, TcpConfig::default());
    let mut pairs = Vec::new();
    for i in 0..4 {
        pairs.push(n.connect_pair(90 + i));
    }
    for &(c, s) in pairs.iter().take(3) {
        n.shutdown(Dir::AtoB, c);
        n.settle();
        n.close(Dir::BtoA, s);
        n.settle();
    }
    let st = n.a.stats();
    assert_eq!(st.time_wait, 2, "{st:?}");
    assert_eq!(st.tcp_time_wait_overflow, 1);
    assert_eq!(n.a.state(pairs[2].0), Some(TcpState::Closed));
    n.run_for(Duration::from_secs(61));
    let st = n.a.stats();
    assert_eq!(st.time_wait, 0);
    assert_eq!(st.tw, 2);
    let (c, s) = pairs[3];
    n.shutdown(Dir::AtoB, c);
    n.settle();
    n.close(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::TimeWait));
    assert_eq!(n.a.stats().tcp_time_wait_overflow, 1);
}

/// `tcp_max_syn_backlog` without cookies: SYNs beyond the SYN queue are dropped
/// (`TCPReqQFullDrop`, `ListenDrops`); with cookies they are answered with a cookie
/// (`SyncookiesSent`). Request socks expire after the SYN-ACK retries and the listener
/// takes connections again.
#[test]
fn syn_backlog_limit_drops_or_cookies_and_recovers() {
    let cb = TcpConfig {
        syncookies: false,
        max_syn_backlog: 4,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cb);
    let l = n.listen_b(80, 64);
    for i in 0..10 {
        n.spoofed_syn_b(i, 80);
    }
    let st = n.b.stats();
    assert_eq!(st.passive_opens, 4);
    assert_eq!(st.tcp_req_q_full_drop, 6);
    assert_eq!(st.listen_drops, 6);
    assert_eq!(st.syncookies_sent, 0);
    assert_eq!(n.b.connection_count(), 4);
    // A legitimate client is dropped too while the queue is full.
    let c = n.connect_a(80);
    n.run_for(Duration::from_millis(100));
    assert_eq!(n.a.state(c), Some(TcpState::SynSent));
    // The request socks give up after synack_retries (1+2+4+8+16+32 s).
    n.run_for(Duration::from_secs(64));
    assert!(n.b.connection_count() <= 1, "{}", n.b.connection_count());
    assert!(n.run_until(Duration::from_secs(70), |n| n.a.state(c)
        == Some(TcpState::Established)));
    n.settle();
    assert!(n.b.accept(l).unwrap().is_some());

    // The same flood with cookies on: answered statelessly.
    let cb = TcpConfig {
        max_syn_backlog: 4,
        ..TcpConfig::default()
    };
    let mut n = Net::with_configs(TcpConfig::default(), cb);
    n.listen_b(80, 64);
    for i in 0..10 {
        n.spoofed_syn_b(i, 80);
    }
    let st = n.b.stats();
    assert_eq!(st.passive_opens, 4);
    assert_eq!(st.syncookies_sent, 6);
    assert_eq!(st.tcp_req_q_full_drop, 0);
    assert_eq!(n.b.connection_count(), 4);
}

/// Per-socket buffer limits: `SO_RCVBUF` bounds what a receiver holds (data beyond the
/// closed window is dropped, `TCPZeroWindowDrop`), `SO_SNDBUF` bounds what `send` takes.
#[test]
fn per_socket_buffer_limits() {
    let mut n = Net::new();
    let l = n.b.socket();
    n.b.bind(l, sa(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    n.b.set_option(l, SockOpt::RecvBuf(8192)).unwrap();
    n.b.listen(l, 8).unwrap();
    let c = n.connect_a(80);
    assert!(n.run_until(Duration::from_secs(5), |n| n.a.state(c)
        == Some(TcpState::Established)));
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    n.a.set_option(c, SockOpt::SendBuf(4096)).unwrap();
    let data = pattern(100_000, 5);
    let took = n.a_send(c, &data);
    assert!(took <= 4096, "send buffer bound: {took}");
    let mut sent = vec![took];
    pump(&mut n, &[c], &data, &mut sent, Duration::from_secs(2));
    assert!(n.b.memory_used() <= 8192 + 1460, "{}", n.b.memory_used());
    assert!(n.a.stats().tcp_win_probe > 0 || n.b.info(s).unwrap().rcv_space == 0);
    // A sender ignoring the closed window: its data is dropped and counted.
    let last = n.last(Dir::BtoA);
    let mut r = TcpRepr::new(
        last.dst.port(),
        80,
        SeqNum(last.ack),
        SeqNum(last.seq),
        TcpFlags::ACK,
    );
    r.window = 65535;
    let before = n.b.stats().tcp_zero_window_drop;
    n.inject(Dir::AtoB, last.dst, last.src, &r, &[0x55; 1000]);
    assert!(n.b.stats().tcp_zero_window_drop > before);
    assert!(n.b.memory_used() <= 8192 + 1460);
    // Reading frees the buffer and the rest of the stream follows.
    let mut got = Vec::new();
    let end = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < end {
        drain(&mut n, s, &mut got);
        if sent[0] < data.len() {
            sent[0] += n.a_send(c, &data[sent[0]..]);
        }
        if !n.step(end) {
            break;
        }
    }
    assert_eq!(hash(&got), hash(&data));
}
