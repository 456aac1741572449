//! Unit tests of the socket layer: registries, socket creation errors, the ops table.

use std::time::Instant;

use ustack_ipv4::Ipv4Cidr;
use ustack_netdev::DevId;

use crate::errno::{EAFNOSUPPORT, EOPNOTSUPP, EPROTONOSUPPORT, ESOCKTNOSUPPORT};
use crate::{table, AddressFamily, NetCore, NetCoreConfig, PollMask, SockRef, SockType};

fn core() -> NetCore {
    let mut c = NetCore::new(NetCoreConfig::default());
    let cidr: Ipv4Cidr = "10.0.0.1/24".parse().unwrap_or_else(|_| unreachable!());
    c.add_interface(DevId(0), "test0", cidr, 1500);
    c
}

fn errno_of(r: std::io::Result<crate::Socket>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn sock_create_picks_the_table_row() {
    let mut c = core();
    let s = c
        .sock_create(AddressFamily::INET, SockType::Stream, 0)
        .unwrap();
    assert_eq!(s.ops.name(), "inet_stream_ops");
    assert_eq!(s.sk.prot.name(), "TCP");
    assert!(matches!(s.sk.id, SockRef::Tcp(_)));
    let s = c
        .sock_create(AddressFamily::INET, SockType::Stream, 6)
        .unwrap();
    assert_eq!(s.sk.prot.protocol(), 6);
    let s = c
        .sock_create(AddressFamily::INET, SockType::Dgram, 17)
        .unwrap();
    assert_eq!(s.ops.name(), "inet_dgram_ops");
    assert!(matches!(s.sk.id, SockRef::Udp(_)));
}

#[test]
fn sock_create_errors_match_linux() {
    let mut c = core();
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET6, SockType::Stream, 0)),
        Some(EAFNOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::UNIX, SockType::Dgram, 0)),
        Some(EAFNOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily(999), SockType::Dgram, 0)),
        Some(EAFNOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET, SockType::Raw, 0)),
        Some(ESOCKTNOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET, SockType::SeqPacket, 0)),
        Some(ESOCKTNOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET, SockType::Stream, 17)),
        Some(EPROTONOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET, SockType::Dgram, 6)),
        Some(EPROTONOSUPPORT)
    );
    assert_eq!(
        errno_of(c.sock_create(AddressFamily::INET, SockType::Stream, 1000)),
        Some(EPROTONOSUPPORT)
    );
}

#[test]
fn dgram_ops_have_no_listen_or_accept() {
    let mut c = core();
    let s = c
        .sock_create(AddressFamily::INET, SockType::Dgram, 0)
        .unwrap();
    let e = s.ops.listen(&mut c, &s, 16).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EOPNOTSUPP));
    s.ops.release(&mut c, Instant::now(), &s);
}

#[test]
fn table_lists_both_protocols() {
    assert_eq!(table::INETSW.len(), 2);
    assert_eq!(table::INETSW[0].prot.name(), "TCP");
    assert_eq!(table::INETSW[1].ops.name(), "inet_dgram_ops");
    let r = crate::Registry::linux_default();
    assert_eq!(r.families(), vec![AddressFamily::INET]);
    assert_eq!(r.inetsw().len(), 2);
}

#[test]
fn registry_register_and_unregister() {
    let mut r = crate::Registry::linux_default();
    assert!(
        r.sock_register(&table::INET_FAMILY).is_err(),
        "AF_INET is taken"
    );
    r.sock_unregister(AddressFamily::INET);
    assert_eq!(
        r.family(AddressFamily::INET)
            .err()
            .and_then(|e| e.raw_os_error()),
        Some(EAFNOSUPPORT)
    );
    r.sock_register(&table::INET_FAMILY).unwrap();
    assert!(r.family(AddressFamily::INET).is_ok());
}

#[test]
fn poll_mask_debug_and_bits() {
    let m = PollMask::IN | PollMask::RDHUP;
    assert!(m.contains(PollMask::IN));
    assert!(!m.contains(PollMask::OUT));
    assert_eq!(format!("{m:?}"), "PollMask(IN|RDHUP)");
    assert!(PollMask::EMPTY.is_empty());
}

/// Two cores wired back to back by hand: what the facade's driver does, without tokio.
struct Wire {
    a: NetCore,
    b: NetCore,
    now: Instant,
}

impl Wire {
    fn new() -> Wire {
        let mut a = NetCore::new(NetCoreConfig {
            secret: [1; 16],
            ..NetCoreConfig::default()
        });
        let mut b = NetCore::new(NetCoreConfig {
            secret: [2; 16],
            ..NetCoreConfig::default()
        });
        a.add_interface(
            DevId(0),
            "a0",
            "10.0.0.1/24".parse().unwrap_or_else(|_| unreachable!()),
            1500,
        );
        b.add_interface(
            DevId(0),
            "b0",
            "10.0.0.2/24".parse().unwrap_or_else(|_| unreachable!()),
            1500,
        );
        Wire {
            a,
            b,
            now: Instant::now(),
        }
    }

    /// Moves packets both ways until the link is quiet.
    fn run(&mut self) {
        for _ in 0..100 {
            let (mut ta, mut tb) = (Vec::new(), Vec::new());
            self.a.flush(self.now);
            self.b.flush(self.now);
            self.a.take_tx(&mut ta);
            self.b.take_tx(&mut tb);
            if ta.is_empty() && tb.is_empty() {
                return;
            }
            for t in ta {
                self.b.receive(self.now, DevId(0), t.pkt);
            }
            for t in tb {
                self.a.receive(self.now, DevId(0), t.pkt);
            }
        }
    }
}

fn noop_cx() -> std::task::Context<'static> {
    std::task::Context::from_waker(std::task::Waker::noop())
}

#[test]
fn sans_io_tcp_through_the_ops_tables() {
    use std::task::Poll;
    let mut w = Wire::new();
    let mut cx = noop_cx();
    let now = w.now;
    let l =
        w.b.sock_create(AddressFamily::INET, SockType::Stream, 0)
            .unwrap();
    l.ops
        .bind(&mut w.b, &l, "0.0.0.0:80".parse().unwrap())
        .unwrap();
    l.ops.listen(&mut w.b, &l, 16).unwrap();
    assert!(l.ops.poll_accept(&mut w.b, now, &l, &mut cx).is_pending());

    let c =
        w.a.sock_create(AddressFamily::INET, SockType::Stream, 0)
            .unwrap();
    let dst = "10.0.0.2:80".parse().unwrap();
    assert!(c
        .ops
        .poll_connect(&mut w.a, now, &c, dst, &mut cx)
        .is_pending());
    w.run();
    assert!(matches!(
        c.ops.poll_connect(&mut w.a, now, &c, dst, &mut cx),
        Poll::Ready(Ok(()))
    ));
    let Poll::Ready(Ok(s)) = l.ops.poll_accept(&mut w.b, now, &l, &mut cx) else {
        panic!("no connection to accept")
    };
    assert_eq!(
        s.ops.getname(&mut w.b, &s, true).unwrap().ip(),
        &std::net::Ipv4Addr::new(10, 0, 0, 1)
    );

    let data = [
        std::io::IoSlice::new(b"hello "),
        std::io::IoSlice::new(b"sans-io"),
    ];
    let sent = c.ops.poll_sendmsg(
        &mut w.a,
        now,
        &c,
        &data,
        None,
        crate::MsgFlags::NONE,
        &mut cx,
    );
    assert!(matches!(sent, Poll::Ready(Ok(13))));
    w.run();
    assert!(s
        .ops
        .poll(&mut w.b, &s, PollMask::IN, &mut cx)
        .contains(PollMask::IN));
    let mut buf = [0u8; 32];
    let Poll::Ready(Ok((n, _))) =
        s.ops
            .poll_recvmsg(&mut w.b, now, &s, &mut buf, crate::MsgFlags::NONE, &mut cx)
    else {
        panic!("no data")
    };
    assert_eq!(&buf[..n], b"hello sans-io");
    let r = s.ops.poll_recvmsg(
        &mut w.b,
        now,
        &s,
        &mut buf,
        crate::MsgFlags::DONTWAIT,
        &mut cx,
    );
    assert!(matches!(r, Poll::Ready(Err(ref e)) if e.kind() == std::io::ErrorKind::WouldBlock));

    // Graceful close from the client: the server reads EOF.
    c.ops.release(&mut w.a, now, &c);
    w.run();
    let r = s
        .ops
        .poll_recvmsg(&mut w.b, now, &s, &mut buf, crate::MsgFlags::NONE, &mut cx);
    assert!(matches!(r, Poll::Ready(Ok((0, _)))));
    s.ops.release(&mut w.b, now, &s);
    l.ops.release(&mut w.b, now, &l);
    w.run();
}

#[test]
fn sans_io_udp_and_wakers() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut w = Wire::new();
    let now = w.now;
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    let rx =
        w.b.sock_create(AddressFamily::INET, SockType::Dgram, 0)
            .unwrap();
    rx.ops
        .bind(&mut w.b, &rx, "0.0.0.0:53".parse().unwrap())
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(rx
        .ops
        .poll_recvmsg(&mut w.b, now, &rx, &mut buf, crate::MsgFlags::NONE, &mut cx)
        .is_pending());

    let tx =
        w.a.sock_create(AddressFamily::INET, SockType::Dgram, 0)
            .unwrap();
    let msg = [std::io::IoSlice::new(b"query")];
    let dst = Some("10.0.0.2:53".parse().unwrap());
    let r = tx.ops.poll_sendmsg(
        &mut w.a,
        now,
        &tx,
        &msg,
        dst,
        crate::MsgFlags::NONE,
        &mut cx,
    );
    assert!(matches!(r, Poll::Ready(Ok(5))));
    w.run();
    let mut wakers = Vec::new();
    w.b.take_wakers(&mut wakers);
    assert_eq!(
        wakers.len(),
        1,
        "the blocked reader is woken (sk_data_ready)"
    );
    wakers.into_iter().for_each(Waker::wake);
    assert_eq!(count.0.load(Ordering::Relaxed), 1);
    let Poll::Ready(Ok((n, from))) =
        rx.ops
            .poll_recvmsg(&mut w.b, now, &rx, &mut buf, crate::MsgFlags::NONE, &mut cx)
    else {
        panic!("no datagram")
    };
    assert_eq!(&buf[..n], b"query");
    assert_eq!(
        from.map(|a| *a.ip()),
        Some(std::net::Ipv4Addr::new(10, 0, 0, 1))
    );
}

/// A connection from `w.a` (10.0.0.1) to a new listener on `w.b` (10.0.0.2:`port`),
/// established.
fn tcp_pair(w: &mut Wire, port: u16) -> (ustack_tcp::SockId, ustack_tcp::SockId) {
    use std::net::{Ipv4Addr, SocketAddrV4};
    let now = w.now;
    let l = w.b.tcp.socket();
    w.b.tcp
        .bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .unwrap();
    w.b.tcp.listen(l, 4).unwrap();
    let c = w.a.tcp.socket();
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    let mtu = w.a.route_mtu(now, dst, None);
    w.a.tcp
        .connect(
            now,
            c,
            Ipv4Addr::new(10, 0, 0, 1),
            SocketAddrV4::new(dst, port),
            mtu,
            &mut w.a.tcp_out,
        )
        .unwrap();
    w.run();
    let s = w.b.tcp.accept(l).unwrap().unwrap();
    (c, s)
}

/// An ICMP "fragmentation needed" (next-hop MTU `mtu`) from a router to 10.0.0.1,
/// quoting the first 28 bytes of `quoted` (an IP packet 10.0.0.1 sent).
fn frag_needed(quoted: &[u8], mtu: u16) -> ustack_netdev::PacketBuf {
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&quoted[..28]);
    let csum = ustack_ipv4::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    let r = ustack_ipv4::Ipv4Repr {
        src: std::net::Ipv4Addr::new(10, 0, 0, 254),
        dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
        protocol: 1,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: icmp.len(),
    };
    let mut p = vec![0u8; 20 + icmp.len()];
    r.emit(&mut p);
    p[20..].copy_from_slice(&icmp);
    ustack_netdev::PacketBuf::from_vec(p)
}

/// Moves packets both ways until quiet, asserting every packet `a` sends fits `limit`;
/// returns the bytes `s` on `b` received.
fn run_checked(w: &mut Wire, s: ustack_tcp::SockId, limit: usize) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..1000 {
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        w.a.flush(w.now);
        w.b.flush(w.now);
        w.a.take_tx(&mut ta);
        w.b.take_tx(&mut tb);
        if ta.is_empty() && tb.is_empty() {
            break;
        }
        for t in ta {
            assert!(t.pkt.len() <= limit, "{} > {limit}", t.pkt.len());
            w.b.receive(w.now, DevId(0), t.pkt);
        }
        for t in tb {
            w.a.receive(w.now, DevId(0), t.pkt);
        }
        let mut buf = [0u8; 65536];
        let mut out = Vec::new();
        while let Ok(n @ 1..) = w.b.tcp.recv(w.now, s, &mut buf, &mut out) {
            got.extend_from_slice(&buf[..n]);
        }
        w.b.tcp_out.append(&mut out);
    }
    got
}

/// RFC 5927: IP hands "fragmentation needed" to TCP without touching its PMTU cache; only
/// an error quoting a sequence number in flight updates it (Linux `tcp_v4_err` ->
/// `tcp_v4_mtu_reduced` -> `inet_csk_update_pmtu`), and the connection resends smaller.
#[test]
fn frag_needed_updates_pmtu_only_when_tcp_accepts_it() {
    let mut w = Wire::new();
    let (c, s) = tcp_pair(&mut w, 80);
    let (c2, _s2) = tcp_pair(&mut w, 81);
    let peer = std::net::Ipv4Addr::new(10, 0, 0, 2);
    let now = w.now;
    let data = vec![0x5a; 6000];
    assert_eq!(w.a.tcp.send(now, c, &data, &mut w.a.tcp_out).unwrap(), 6000);
    w.a.flush(now);
    let mut tx = Vec::new();
    w.a.take_tx(&mut tx);
    let first = tx[0].pkt.data().to_vec();
    assert!(first.len() > 1000);
    // Forged: the quoted sequence number is not in flight.
    let mut forged = first.clone();
    forged[24] ^= 0x80;
    w.a.receive(now, DevId(0), frag_needed(&forged, 600));
    assert_eq!(w.a.ip.path_mtu(peer, now), None);
    assert_eq!(w.a.tcp.stats().out_of_window_icmps, 1);
    assert_eq!(w.a.tcp.info(c).unwrap().snd_mss, 1448);
    assert_eq!(w.a.tcp.info(c2).unwrap().snd_mss, 1448);
    // Genuine: the router dropped our first segment.
    w.a.receive(now, DevId(0), frag_needed(&first, 1000));
    assert_eq!(w.a.ip.path_mtu(peer, now), Some(1000));
    assert_eq!(w.a.tcp.info(c).unwrap().snd_mss, 1000 - 40 - 12);
    // The path is shared: the other connection to that host re-syncs too.
    assert_eq!(w.a.tcp.info(c2).unwrap().snd_mss, 1000 - 40 - 12);
    // Everything in flight is resent at the smaller size.
    let got = run_checked(&mut w, s, 1000);
    assert_eq!(got, data);
    assert_eq!(w.a.ip.stats().frag_fails, 0);
}

/// The path MTU can drop under a connection from any source (another connection's
/// validated ICMP, a route change): IP then refuses its full-sized DF segments, and the
/// connection must shrink its MSS and resend (Linux `tcp_current_mss` re-reads `dst_mtu`)
/// instead of stalling.
#[test]
fn pmtu_drop_under_a_connection_shrinks_its_mss() {
    let mut w = Wire::new();
    let (c, s) = tcp_pair(&mut w, 80);
    let peer = std::net::Ipv4Addr::new(10, 0, 0, 2);
    let now = w.now;
    w.a.ip.update_pmtu(peer, 1000, now);
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..50 {
        if sent < data.len() {
            if let Ok(n) = w.a.tcp.send(now, c, &data[sent..], &mut w.a.tcp_out) {
                sent += n;
            }
        }
        got.extend(run_checked(&mut w, s, 1000));
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data, "no timer ran: resent at once");
    assert_eq!(w.a.tcp.info(c).unwrap().snd_mss, 1000 - 40 - 12);
    assert!(w.a.ip.stats().frag_fails > 0);
    assert_eq!(w.a.tcp.stats().tcp_timeouts, 0);
}
