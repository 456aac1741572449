//! User-call semantics: bind conflicts, events, readiness, transparent listeners, orphans.

mod common;
use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use ustack_netdev::DevId;
use ustack_tcp::wire::TcpFlags;
use ustack_tcp::{SockId, SockOpt, SockOptName, TcpError, TcpState};

#[test]
fn bind_conflicts_and_reuseaddr() {
    let mut n = Net::new();
    let a = n.b.socket();
    n.b.bind(a, sa(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    let b = n.b.socket();
    assert_eq!(n.b.bind(b, sa(B_IP, 80)), Err(TcpError::AddrInUse));
    assert_eq!(n.b.bind(b, sa(B_IP, 81)), Ok(()));
    assert_eq!(
        n.b.bind(b, sa(B_IP, 82)),
        Err(TcpError::InvalidInput),
        "already bound"
    );
    // Ephemeral bind.
    let e = n.b.socket();
    n.b.bind(e, sa(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let p = n.b.local_addr(e).unwrap().port();
    assert!((32768..=60999).contains(&p));
    // A port held only by a TIME_WAIT connection: free with SO_REUSEADDR.
    n.b.close(n.now, a, &mut Vec::new());
    let l = n.listen_b(90, 8);
    let c = n.connect_a(90);
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    n.close(Dir::BtoA, s);
    n.settle();
    n.close(Dir::AtoB, c);
    n.settle();
    n.close(Dir::BtoA, l);
    assert_eq!(n.b.connection_count(), 1, "server TIME_WAIT");
    let x = n.b.socket();
    assert_eq!(
        n.b.bind(x, sa(Ipv4Addr::UNSPECIFIED, 90)),
        Err(TcpError::AddrInUse)
    );
    n.b.set_option(x, SockOpt::ReuseAddr(true)).unwrap();
    assert_eq!(n.b.bind(x, sa(Ipv4Addr::UNSPECIFIED, 90)), Ok(()));
    assert_eq!(
        n.b.get_option(x, SockOptName::ReuseAddr),
        Ok(SockOpt::ReuseAddr(true))
    );
    n.b.listen(x, 8).unwrap();
    // Two listeners on one address: AddrInUse.
    let y = n.b.socket();
    n.b.set_option(y, SockOpt::ReuseAddr(true)).unwrap();
    assert_eq!(
        n.b.bind(y, sa(Ipv4Addr::UNSPECIFIED, 90)),
        Err(TcpError::AddrInUse)
    );
}

/// `SO_REUSEPORT` (Linux semantics): sockets that all set it share an address and port,
/// also while listening; one without it is refused, even with `SO_REUSEADDR`. Incoming
/// connections are spread over the listeners by the peer's port, each one to exactly one
/// listener, and once a listener closes the others take every new connection.
#[test]
fn reuseport_listeners_share_a_port_and_its_connections() {
    let mut n = Net::new();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let l = n.b.socket();
        n.b.set_option(l, SockOpt::ReusePort(true)).unwrap();
        assert_eq!(
            n.b.get_option(l, SockOptName::ReusePort),
            Ok(SockOpt::ReusePort(true))
        );
        n.b.bind(l, sa(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
        n.b.listen(l, 128).unwrap();
        listeners.push(l);
    }
    let plain = n.b.socket();
    n.b.set_option(plain, SockOpt::ReuseAddr(true)).unwrap();
    assert_eq!(
        n.b.bind(plain, sa(Ipv4Addr::UNSPECIFIED, 80)),
        Err(TcpError::AddrInUse)
    );
    // A listener without the flag, then one with it: the second is refused.
    let first = n.b.socket();
    n.b.bind(first, sa(B_IP, 81)).unwrap();
    n.b.listen(first, 8).unwrap();
    let second = n.b.socket();
    n.b.set_option(second, SockOpt::ReusePort(true)).unwrap();
    assert_eq!(n.b.bind(second, sa(B_IP, 81)), Err(TcpError::AddrInUse));

    let accept_all = |n: &mut Net, ls: &[SockId]| -> Vec<usize> {
        ls.iter()
            .map(|&l| {
                let mut k = 0;
                while let Ok(Some(_)) = n.b.accept(l) {
                    k += 1;
                }
                k
            })
            .collect()
    };
    let clients: Vec<_> = (0..60).map(|_| n.connect_a(80)).collect();
    n.settle();
    assert!(clients
        .iter()
        .all(|&c| n.a.state(c) == Some(TcpState::Established)));
    let per = accept_all(&mut n, &listeners);
    assert_eq!(per.iter().sum::<usize>(), 60, "{per:?}");
    assert!(
        per.iter().all(|&k| k >= 5),
        "spread over all three: {per:?}"
    );
    // One listener goes away: the other two take all new connections.
    n.close(Dir::BtoA, listeners[1]);
    let clients: Vec<_> = (0..30).map(|_| n.connect_a(80)).collect();
    n.settle();
    assert!(clients
        .iter()
        .all(|&c| n.a.state(c) == Some(TcpState::Established)));
    let rest = [listeners[0], listeners[2]];
    let per = accept_all(&mut n, &rest);
    assert_eq!(per.iter().sum::<usize>(), 30, "{per:?}");
    assert!(per.iter().all(|&k| k > 0), "{per:?}");
}

/// `SO_BINDTODEVICE` on listeners (segments here arrive on device 0): listeners bound
/// to different devices share a port, each taking its device's connections; moving one
/// onto a device that already has a listener of the address is refused and changes
/// nothing; the listening table follows an accepted move.
#[test]
fn listeners_bound_to_devices_share_a_port_and_follow_a_rebind() {
    let mut n = Net::new();
    let on = |d: u16| SockOpt::BindDevice(Some(DevId(d)));
    let listen_on = |n: &mut Net, d: u16| {
        let l = n.b.socket();
        n.b.set_option(l, on(d)).unwrap();
        n.b.bind(l, sa(Ipv4Addr::UNSPECIFIED, 80))?;
        n.b.listen(l, 8)?;
        Ok::<_, TcpError>(l)
    };
    let l0 = listen_on(&mut n, 0).unwrap();
    let l1 = listen_on(&mut n, 1).unwrap();
    assert_eq!(listen_on(&mut n, 1), Err(TcpError::AddrInUse));
    let c = n.connect_a(80);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    assert!(n.b.accept(l0).unwrap().is_some());
    assert_eq!(n.b.accept(l1), Ok(None));

    // l1 onto device 0, where l0 listens: refused, l1 stays on device 1.
    assert_eq!(n.b.set_option(l1, on(0)), Err(TcpError::AddrInUse));
    assert_eq!(
        n.b.get_option(l1, SockOptName::BindDevice),
        Ok(SockOpt::BindDevice(Some(DevId(1))))
    );
    // l0 away to device 2: device 0's connections are refused now.
    n.b.set_option(l0, on(2)).unwrap();
    let c = n.connect_a(80);
    n.settle();
    assert_ne!(n.a.state(c), Some(TcpState::Established));
    // Unbound, l1 would overlap l0's claim on every device: refused.
    assert_eq!(
        n.b.set_option(l1, SockOpt::BindDevice(None)),
        Err(TcpError::AddrInUse)
    );
    // l1 onto device 0: it takes device 0's connections.
    n.b.set_option(l1, on(0)).unwrap();
    let c = n.connect_a(80);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    assert!(n.b.accept(l1).unwrap().is_some());
    assert_eq!(n.b.accept(l0), Ok(None));
}

/// A connection bound to a device takes only segments that arrived on it (here every
/// segment arrives on device 0): bound to device 0 data flows; rebound to device 1, the
/// peer's next segment finds no connection and is answered with RST.
#[test]
fn a_connection_bound_to_another_device_does_not_take_its_segments() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.b.set_option(s, SockOpt::BindDevice(Some(DevId(0))))
        .unwrap();
    n.a_send(c, b"first");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"first");
    n.b.set_option(s, SockOpt::BindDevice(Some(DevId(1))))
        .unwrap();
    n.a_send(c, b"second");
    n.settle();
    assert_ne!(n.a.state(c), Some(TcpState::Established), "reset by B");
    assert_eq!(
        n.recv_all(Dir::BtoA, s),
        b"",
        "nothing delivered on the bound socket"
    );
}

#[test]
fn events_and_readiness_follow_the_connection() {
    let mut n = Net::new();
    let l = n.listen_b(80, 8);
    let c = n.connect_a(80);
    let r = n.a.poll_state(c);
    assert!(!r.connected && !r.writable && !r.readable);
    n.settle();
    let mut ev = Vec::new();
    n.a.drain_events(&mut ev);
    assert!(ev.contains(&c), "connected");
    n.b.drain_events(&mut ev);
    assert!(ev.contains(&l), "acceptable");
    assert!(n.b.poll_state(l).acceptable);
    let s = n.b.accept(l).unwrap().unwrap();
    assert!(!n.b.poll_state(l).acceptable);
    let r = n.a.poll_state(c);
    assert!(r.connected && r.writable && !r.readable);
    ev.clear();
    n.b.drain_events(&mut ev);
    n.a_send(c, b"data");
    n.settle();
    ev.clear();
    n.b.drain_events(&mut ev);
    assert_eq!(ev, vec![s]);
    assert!(n.b.poll_state(s).readable);
    let mut buf = [0u8; 2];
    assert_eq!(n.b.peek(s, &mut buf), Ok(2));
    assert_eq!(&buf, b"da");
    assert_eq!(n.recv_all(Dir::BtoA, s), b"data");
    let mut out = Vec::new();
    assert_eq!(
        n.b.recv(n.now, s, &mut buf, &mut out),
        Err(TcpError::WouldBlock)
    );
    // Fill the send buffer: WouldBlock, then a write-space event as the peer reads.
    n.b.set_option(s, SockOpt::SendBuf(8192)).unwrap();
    n.a.set_option(c, SockOpt::RecvBuf(4096)).unwrap();
    let big = pattern(100_000, 1);
    let mut sent = 0;
    loop {
        let mut out = Vec::new();
        match n.b.send(n.now, s, &big[sent..], &mut out) {
            Ok(k) => sent += k,
            Err(e) => {
                assert_eq!(e, TcpError::WouldBlock);
                break;
            }
        }
        n.send(Dir::BtoA, out);
    }
    n.b.drain_events(&mut Vec::new());
    assert!(!n.b.poll_state(s).writable);
    let mut woke = false;
    for _ in 0..100 {
        n.recv_all(Dir::AtoB, c);
        n.run_for(Duration::from_millis(5));
        let mut ev = Vec::new();
        n.b.drain_events(&mut ev);
        if ev.contains(&s) && n.b.poll_state(s).writable {
            woke = true;
            break;
        }
    }
    assert!(woke, "write space event");
    // EOF.
    n.shutdown(Dir::AtoB, c);
    n.settle();
    n.recv_all(Dir::BtoA, s);
    let r = n.b.poll_state(s);
    assert!(r.read_closed && r.readable);
    assert_eq!(n.b.recv(n.now, s, &mut buf, &mut out), Ok(0));
    assert_eq!(
        n.a.send(n.now, c, b"x", &mut out),
        Err(TcpError::BrokenPipe)
    );
    // Stale ids.
    n.close(Dir::AtoB, c);
    assert_eq!(
        n.a.recv(n.now, c, &mut buf, &mut out),
        Err(TcpError::NotConnected)
    );
    assert!(n.a.poll_state(c).read_closed);
}

#[test]
fn transparent_listener_takes_any_address_and_port() {
    let mut n = Net::new();
    let l = n.b.socket();
    n.b.listen_any(l, 16).unwrap();
    let targets = [
        sa(Ipv4Addr::new(93, 184, 216, 34), 443),
        sa(Ipv4Addr::new(1, 1, 1, 1), 53),
    ];
    let mut cs = Vec::new();
    for t in targets {
        let c = n.a.socket();
        let mut out = Vec::new();
        n.a.connect(n.now, c, A_IP, t, MTU, &mut out).unwrap();
        n.send(Dir::AtoB, out);
        cs.push(c);
    }
    n.settle();
    for (c, t) in cs.iter().zip(targets) {
        assert_eq!(n.a.state(*c), Some(TcpState::Established));
        let s = n.b.accept(l).unwrap().unwrap();
        assert_eq!(n.b.local_addr(s), Some(t), "the original destination");
        assert_eq!(n.b.peer_addr(s), n.a.local_addr(*c));
    }
    // An ordinary listener on a port wins over the transparent one.
    let l2 = n.listen_b(8080, 4);
    let _c = n.a.socket();
    let c = n.connect_a(8080);
    n.settle();
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    assert!(n.b.accept(l2).unwrap().is_some());
}

#[test]
fn orphan_fin_wait_2_times_out_and_fin_is_retransmitted() {
    let mut n = Net::new();
    let (c, _s) = n.connect_pair(80);
    // The first FIN is lost and must be retransmitted.
    let mut dropped = false;
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.has(TcpFlags::FIN) && !dropped {
            dropped = true;
            Action::Drop
        } else {
            Action::Pass
        }
    });
    n.close(Dir::AtoB, c);
    n.run_for(Duration::from_secs(2));
    let fins = n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB && x.has(TcpFlags::FIN))
        .count();
    assert_eq!(fins, 2);
    assert_eq!(n.a.connection_count(), 1, "orphan in FIN_WAIT_2");
    assert_eq!(n.a.socket_count(), 1);
    // The peer never closes: the orphan goes after tcp_fin_timeout (60 s).
    n.run_for(Duration::from_secs(61));
    assert_eq!(n.a.connection_count(), 0);
    assert_eq!(n.a.socket_count(), 0);
}

#[test]
fn idle_connection_holds_no_buffers() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let data = pattern(500_000, 8);
    let got = n.transfer(c, s, &data, Duration::from_secs(30));
    assert!(got == data);
    n.run_for(Duration::from_secs(1));
    assert_eq!(n.a.memory_used(), 0);
    assert_eq!(n.b.memory_used(), 0);
    let _ = SocketAddrV4::new(A_IP, 1);
}

#[test]
fn tw_reuse_lets_a_client_reuse_its_time_wait_pair() {
    let cfg = ustack_tcp::TcpConfig {
        tw_reuse: true,
        ..ustack_tcp::TcpConfig::default()
    };
    let mut n = Net::with_configs(cfg, ustack_tcp::TcpConfig::default());
    let l = n.listen_b(80, 8);
    let connect_from = |n: &mut Net, port: u16| {
        let c = n.a.socket();
        n.a.set_option(c, SockOpt::ReuseAddr(true)).unwrap();
        n.a.bind(c, sa(A_IP, port)).unwrap();
        let mut out = Vec::new();
        let r = n.a.connect(n.now, c, A_IP, sa(B_IP, 80), MTU, &mut out);
        n.send(Dir::AtoB, out);
        (c, r)
    };
    let (c, r) = connect_from(&mut n, 7000);
    r.unwrap();
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    // The client closes first and holds TIME_WAIT.
    n.close(Dir::AtoB, c);
    n.settle();
    n.close(Dir::BtoA, s);
    n.settle();
    assert_eq!(n.a.connection_count(), 1);
    // Too early (timestamps younger than 1 s): refused.
    let (_c2, r) = connect_from(&mut n, 7000);
    assert_eq!(r, Err(TcpError::AddrInUse));
    n.run_for(Duration::from_secs(2));
    let (c3, r) = connect_from(&mut n, 7000);
    r.unwrap();
    n.settle();
    assert_eq!(n.a.state(c3), Some(TcpState::Established));
    assert_eq!(n.a.stats().tcp_tw_recycled, 1);
}

#[test]
fn conn_route_mtu_only_for_live_connections() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let local_b = n.b.local_addr(s).unwrap();
    let remote_b = n.b.peer_addr(s).unwrap();
    assert_eq!(n.b.conn_route_mtu(local_b, remote_b), Some(MTU));
    // No connection, or the listener's own address: the caller must route.
    assert_eq!(n.b.conn_route_mtu(local_b, sa(A_IP, 1)), None);
    // The side that closes first ends in TIME_WAIT, where a new SYN may recycle the
    // pair and needs a real route MTU.
    n.close(Dir::AtoB, c);
    n.settle();
    n.close(Dir::BtoA, s);
    n.settle();
    let local_a = sa(A_IP, remote_b.port());
    assert_eq!(n.a.connection_count(), 1);
    assert_eq!(n.a.conn_route_mtu(local_a, sa(B_IP, 80)), None);
}

/// `IP_TOS` marks every segment of a socket: a client's SYN and data, a listener's
/// SYN-ACK, and the connections it accepts (which inherit the listener's value); each
/// side's segments carry its own value. A changed value applies from the next segment on.
#[test]
fn type_of_service_marks_every_segment_of_the_socket() {
    let mut n = Net::new();
    let l = n.b.socket();
    n.b.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80))
        .unwrap();
    n.b.set_option(l, SockOpt::Tos(0x28)).unwrap();
    n.b.listen(l, 16).unwrap();
    let c = n.a.socket();
    // The ECN bits are not the application's to set on a TCP socket.
    n.a.set_option(c, SockOpt::Tos(0xbb)).unwrap();
    assert_eq!(n.a.get_option(c, SockOptName::Tos), Ok(SockOpt::Tos(0xb8)));
    let mut out = Vec::new();
    let now = n.now;
    n.a.connect(now, c, A_IP, SocketAddrV4::new(B_IP, 80), MTU, &mut out)
        .unwrap();
    n.send(Dir::AtoB, out);
    assert!(n.run_until(Duration::from_secs(10), |n| n.a.state(c)
        == Some(TcpState::Established)));
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    assert_eq!(n.b.get_option(s, SockOptName::Tos), Ok(SockOpt::Tos(0x28)));
    n.a_send(c, b"request");
    n.settle();
    n.b_send(s, b"response");
    n.settle();
    let log = n.log_take();
    assert!(log
        .iter()
        .any(|x| x.dir == Dir::BtoA && x.has(TcpFlags::SYN)));
    assert!(log.iter().any(|x| x.dir == Dir::AtoB && x.len > 0));
    assert!(log.iter().any(|x| x.dir == Dir::BtoA && x.len > 0));
    for x in &log {
        let want = if x.dir == Dir::AtoB { 0xb8 } else { 0x28 };
        assert_eq!(x.tos, want, "{x:?}");
    }
    n.a.set_option(c, SockOpt::Tos(0)).unwrap();
    n.a_send(c, b"again");
    n.settle();
    let log = n.log_take();
    assert!(log
        .iter()
        .filter(|x| x.dir == Dir::AtoB)
        .all(|x| x.tos == 0));
}

/// `recv_would_block` (the facade parks a reader on it without making the receive call)
/// says true exactly when `recv` would answer `WouldBlock`: an established connection
/// with nothing queued. Data queued, the peer's FIN, a reset and sockets that are not
/// connections all make it false, so a reader is never parked on a socket that has
/// something to return.
#[test]
fn recv_would_block_matches_recv() {
    fn agrees(n: &mut Net, d: Dir, id: SockId) -> bool {
        let would = n.layer(d).recv_would_block(id);
        let now = n.now;
        let mut buf = [0u8; 16];
        let r = n.layer(d).recv(now, id, &mut buf, &mut Vec::new());
        let blocked = r == Err(TcpError::WouldBlock);
        assert_eq!(would, blocked, "recv_would_block {would}, recv {r:?}");
        would
    }
    let mut n = Net::new();
    let l = n.listen_b(80, 8);
    assert!(!n.b.recv_would_block(l), "a listener");
    let plain = n.b.socket();
    assert!(!n.b.recv_would_block(plain), "a socket never connected");
    let c = n.connect_a(80);
    n.settle();
    let s = n.b.accept(l).unwrap().unwrap();
    assert!(agrees(&mut n, Dir::BtoA, s), "established, nothing queued");
    n.a_send(c, b"hello");
    n.settle();
    assert!(!n.b.recv_would_block(s), "data queued");
    assert!(!agrees(&mut n, Dir::BtoA, s), "data queued: recv reads it");
    assert!(agrees(&mut n, Dir::BtoA, s), "read out: blocks again");
    n.shutdown(Dir::AtoB, c);
    n.settle();
    assert!(
        !agrees(&mut n, Dir::BtoA, s),
        "the peer's FIN: end of stream"
    );
    // A reset: the error is reported by the next receive, not waited for.
    let c2 = n.connect_a(80);
    n.settle();
    let s2 = n.b.accept(l).unwrap().unwrap();
    assert!(agrees(&mut n, Dir::BtoA, s2));
    let now = n.now;
    let mut out = Vec::new();
    n.a.abort(now, c2, &mut out);
    n.send(Dir::AtoB, out);
    n.settle();
    assert!(!n.b.recv_would_block(s2), "reset: the error is pending");
    assert!(
        !agrees(&mut n, Dir::BtoA, s2),
        "reset: recv returns the error"
    );
    n.close(Dir::BtoA, s2);
    assert!(!n.b.recv_would_block(s2), "a closed socket");
}
