//! ustack's UDP multicast against the Linux kernel over a TUN device: the kernel sends to a
//! group ustack joined (and to one it did not), ustack sends to a group the kernel joined
//! (with TTL 1), and the IGMPv3 reports ustack sends when it joins and leaves a group
//! reach the kernel's side of the TUN device in the form RFC 3376 and RFC 2113 ask for.
//!
//! The kernel side runs on threads inside the test's namespace; the two sides coordinate
//! through channels, and every wait is bounded.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ustack::net::UdpSocket;
use ustack::Stack;
use ustack_integration_tests::packet::PacketSocket;
use ustack_integration_tests::{block_on_in, require_root, stack_cidr, TunNet, HOST_IP, STACK_IP};

const IGMP_ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

fn host_ip() -> Ipv4Addr {
    HOST_IP.parse().expect("HOST_IP")
}

fn stack_ip() -> Ipv4Addr {
    STACK_IP.parse().expect("STACK_IP")
}

async fn stack_on(tun: String) -> Result<Stack, String> {
    Stack::builder()
        .tun(&tun)
        .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
        .build()
        .await
        .map_err(|e| format!("stack: {e}"))
}

/// `setsockopt(IPPROTO_IP, opt, value)` on a kernel socket.
fn setsockopt<T>(s: &StdUdpSocket, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a live value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            opt,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits (without blocking the runtime that drives the stack) up to `timeout` for a
/// message on `rx`.
async fn recv_within<T>(rx: &Receiver<T>, timeout: Duration) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err("the kernel side is gone".into()),
            Err(TryRecvError::Empty) if Instant::now() >= deadline => {
                return Err(format!("nothing from the kernel side within {timeout:?}"))
            }
            Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Kernel -> ustack: datagrams to a joined group arrive with the kernel as sender and the
/// group as destination; those to a group ustack did not join, or sent after it left, do
/// not.
#[test]
fn kernel_multicasts_reach_a_joined_socket_only() {
    require_root!();
    let net = TunNet::new("mcin");
    const PORT: u16 = 9300;
    let joined = Ipv4Addr::new(239, 20, 0, 1);
    let other = Ipv4Addr::new(239, 20, 0, 2);
    // ustack -> kernel: "joined", then "left".
    let (to_kernel, from_stack) = mpsc::channel::<&'static str>();
    let kernel = net.ns.thread(move || -> Result<u16, String> {
        let s = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        let ifaddr = libc::in_addr {
            s_addr: u32::from(host_ip()).to_be(),
        };
        setsockopt(&s, libc::IP_MULTICAST_IF, &ifaddr)
            .map_err(|e| format!("IP_MULTICAST_IF: {e}"))?;
        let port = s.local_addr().map_err(|e| e.to_string())?.port();
        let send = |what: &[u8], to: Ipv4Addr| {
            s.send_to(what, (to, PORT))
                .map(|_| ())
                .map_err(|e| format!("send to {to}: {e}"))
        };
        let wait = |what: &str| match from_stack.recv_timeout(Duration::from_secs(20)) {
            Ok(m) if m == what => Ok(()),
            Ok(m) => Err(format!("expected {what:?} from the ustack side, got {m:?}")),
            Err(RecvTimeoutError::Timeout) => Err(format!("no {what:?} from the ustack side")),
            Err(RecvTimeoutError::Disconnected) => Err("the ustack side is gone".into()),
        };
        wait("joined")?;
        // The TUN device keeps the order: the unjoined group's datagram is ahead of m0.
        send(b"not for you", other)?;
        for i in 0..3 {
            send(format!("m{i}").as_bytes(), joined)?;
        }
        wait("left")?;
        // After the leave: the group's datagram, then a unicast marker behind it.
        send(b"too late", joined)?;
        send(b"marker", stack_ip())?;
        Ok(port)
    });
    let res = block_on_in(&net, move |tun| async move {
        let stack = stack_on(tun).await?;
        let sock = UdpSocket::bind_with(&stack, SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))
            .await
            .map_err(|e| e.to_string())?;
        sock.join_multicast_v4(joined, stack_ip())
            .map_err(|e| format!("join: {e}"))?;
        let groups = stack.multicast_groups();
        let _ = to_kernel.send("joined");
        let mut buf = [0u8; 1500];
        let mut got = Vec::new();
        for _ in 0..3 {
            let (n, from, to) =
                tokio::time::timeout(Duration::from_secs(5), sock.recv_from_to(&mut buf))
                    .await
                    .map_err(|_| format!("only {} datagrams arrived: {got:?}", got.len()))?
                    .map_err(|e| e.to_string())?;
            got.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from, to));
        }
        let in_mcast = stack.stats().ip.in_mcast_pkts;
        sock.leave_multicast_v4(joined, stack_ip())
            .map_err(|e| format!("leave: {e}"))?;
        let groups_after_leave = stack.multicast_groups();
        let _ = to_kernel.send("left");
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .map_err(|_| "no marker after the leave".to_string())?
            .map_err(|e| e.to_string())?;
        let after_leave = (String::from_utf8_lossy(&buf[..n]).into_owned(), from);
        let stats = stack.stats();
        stack.shutdown().await;
        Ok((
            groups,
            got,
            in_mcast,
            groups_after_leave,
            after_leave,
            stats.ip.in_mcast_pkts,
            stats.igmp,
        ))
    });
    let kernel_port = kernel.join().expect("kernel thread");
    let (groups, got, in_mcast, groups_after_leave, after_leave, in_mcast_end, igmp) =
        res.expect("ustack side");
    let kernel_port = kernel_port.expect("kernel side");
    let sender = SocketAddr::from((host_ip(), kernel_port));
    assert_eq!(
        groups,
        vec![("ust0".to_string(), joined, 1)],
        "multicast_groups() after the join"
    );
    let want: Vec<_> = (0..3)
        .map(|i| (format!("m{i}"), sender, SocketAddr::from((joined, PORT))))
        .collect();
    assert_eq!(
        got, want,
        "datagrams received (the one to {other} must not be)"
    );
    assert_eq!(
        in_mcast, 3,
        "InMcastPkts after the three datagrams to {joined}"
    );
    assert!(
        groups_after_leave.is_empty(),
        "multicast_groups() after the leave: {groups_after_leave:?}"
    );
    assert_eq!(
        after_leave,
        ("marker".to_string(), sender),
        "after the leave, the group's datagram must not arrive (only the unicast marker)"
    );
    assert_eq!(in_mcast_end, 3, "InMcastPkts at the end");
    assert!(
        igmp.out_reports >= 2,
        "IGMP reports sent (join and leave): {igmp:?}"
    );
}

/// Receives one datagram on `s` with its TTL (`IP_RECVTTL` must be on).
fn recv_with_ttl(
    s: &StdUdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddrV4, Option<u8>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut from: libc::sockaddr_in = unsafe { mem::zeroed() };
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; the pointers are filled in below.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    // SAFETY: every pointer in msg refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ttl = None;
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled, within
    // msg_controllen; the IP_TTL payload is an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TTL {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let from = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
        u16::from_be(from.sin_port),
    );
    Ok((n as usize, from, ttl))
}

/// ustack -> kernel: a datagram ustack sends to a group the kernel joined arrives from
/// ustack's address with TTL 1 (the multicast default).
#[test]
fn ustack_multicasts_reach_a_kernel_member_with_ttl_1() {
    require_root!();
    let net = TunNet::new("mcout");
    const PORT: u16 = 9301;
    let group = Ipv4Addr::new(239, 20, 0, 3);
    // kernel -> ustack: "ready" once joined, "got" once the datagram arrived.
    let (to_stack, from_kernel) = mpsc::channel::<&'static str>();
    let kernel = net.ns.thread(
        move || -> Result<(Vec<u8>, SocketAddrV4, Option<u8>), String> {
            let s = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).map_err(|e| e.to_string())?;
            s.join_multicast_v4(&group, &host_ip())
                .map_err(|e| format!("IP_ADD_MEMBERSHIP: {e}"))?;
            setsockopt(&s, libc::IP_RECVTTL, &1 as &libc::c_int)
                .map_err(|e| format!("IP_RECVTTL: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let _ = to_stack.send("ready");
            let mut buf = [0u8; 1500];
            let (n, from, ttl) = recv_with_ttl(&s, &mut buf).map_err(|e| format!("recv: {e}"))?;
            let _ = to_stack.send("got");
            Ok((buf[..n].to_vec(), from, ttl))
        },
    );
    let res = block_on_in(&net, move |tun| async move {
        let stack = stack_on(tun).await?;
        let sock = UdpSocket::bind_with(&stack, "0.0.0.0:0")
            .await
            .map_err(|e| e.to_string())?;
        let defaults = (
            sock.multicast_ttl_v4().map_err(|e| e.to_string())?,
            sock.multicast_if_v4().map_err(|e| e.to_string())?,
        );
        // Without IP_MULTICAST_IF this stack has no route to the group (no default route):
        // informational only.
        let without_if = sock.send_to(b"no route?", (group, PORT)).await;
        println!("send to {group} without IP_MULTICAST_IF: {without_if:?}");
        sock.set_multicast_if_v4(stack_ip())
            .map_err(|e| format!("IP_MULTICAST_IF: {e}"))?;
        let multicast_if = sock.multicast_if_v4().map_err(|e| e.to_string())?;
        match recv_within(&from_kernel, Duration::from_secs(10)).await? {
            "ready" => {}
            m => return Err(format!("unexpected {m:?} from the kernel side")),
        }
        // Resend every 100 ms until the kernel has it (bounded): the first copy could in
        // principle race the kernel's join.
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            sock.send_to(b"hello group", (group, PORT))
                .await
                .map_err(|e| format!("send to {group}: {e}"))?;
            sent += 1;
            if let Ok(m) = recv_within(&from_kernel, Duration::from_millis(100)).await {
                if m == "got" {
                    break;
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("the kernel did not get any of {sent} datagrams"));
            }
        }
        let stats = stack.stats();
        stack.shutdown().await;
        println!(
            "{sent} datagram(s) sent until the kernel had one; {:?}",
            stats.igmp
        );
        Ok((defaults, multicast_if, sent, stats.ip.out_mcast_pkts))
    });
    let kernel_got = kernel.join().expect("kernel thread");
    let (defaults, multicast_if, sent, out_mcast) = res.expect("ustack side");
    let (payload, from, ttl) = kernel_got.expect("kernel side");
    assert_eq!(
        defaults,
        (1, Ipv4Addr::UNSPECIFIED),
        "default IP_MULTICAST_TTL and IP_MULTICAST_IF"
    );
    assert_eq!(multicast_if, stack_ip(), "IP_MULTICAST_IF after setting it");
    assert_eq!(payload, b"hello group", "payload the kernel received");
    assert_eq!(*from.ip(), stack_ip(), "sender the kernel saw");
    assert_eq!(ttl, Some(1), "TTL the kernel saw (IP_RECVTTL)");
    assert!(
        out_mcast >= sent,
        "OutMcastPkts {out_mcast} < {sent} datagrams sent to the group"
    );
}

/// An IGMPv3 membership report (RFC 3376 4.2) as captured: the IP header's TTL and
/// options, and the group records (record type, group, source count).
#[derive(Debug, Clone)]
struct Igmp {
    dst: Ipv4Addr,
    tos: u8,
    ttl: u8,
    ip_options: Vec<u8>,
    ip_csum_ok: bool,
    igmp_type: u8,
    igmp_csum_ok: bool,
    records: Vec<(u8, Ipv4Addr, u16)>,
}

fn csum_ok(data: &[u8]) -> bool {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Decodes an IPv4 packet from `src` carrying IGMP (protocol 2); None for anything else.
fn parse_igmp(p: &[u8], src: Ipv4Addr) -> Option<Igmp> {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 2 {
        return None;
    }
    if Ipv4Addr::new(p[12], p[13], p[14], p[15]) != src {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if ihl < 20 || total < ihl + 8 {
        return None;
    }
    let m = &p[ihl..total];
    let mut records = Vec::new();
    if m[0] == 0x22 {
        let count = usize::from(u16::from_be_bytes([m[6], m[7]]));
        let mut off = 8;
        for _ in 0..count {
            let Some(r) = m.get(off..off + 8) else { break };
            let nsrc = u16::from_be_bytes([r[2], r[3]]);
            records.push((r[0], Ipv4Addr::new(r[4], r[5], r[6], r[7]), nsrc));
            off += 8 + 4 * usize::from(nsrc) + 4 * usize::from(r[1]);
        }
    }
    Some(Igmp {
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        tos: p[1],
        ttl: p[8],
        ip_options: p[20..ihl].to_vec(),
        ip_csum_ok: csum_ok(&p[..ihl]),
        igmp_type: m[0],
        igmp_csum_ok: csum_ok(m),
        records,
    })
}

/// Captures the IPv4 packets on `dev` (AF_PACKET, this thread's namespace) and sends the
/// IGMP ones from `src` on `tx`, until `stop` is set or `limit` has passed. Sends `None`
/// once the capture is open.
fn capture_igmp(
    dev: &str,
    src: Ipv4Addr,
    tx: mpsc::Sender<Option<Igmp>>,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> Result<(), String> {
    let sock = PacketSocket::capture(dev, Duration::from_millis(100)).map_err(|e| e.to_string())?;
    let _ = tx.send(None);
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Some(n) = sock.recv(&mut buf).map_err(|e| format!("recv: {e}"))? else {
            continue;
        };
        if let Some(m) = parse_igmp(&buf[..n], src) {
            if tx.send(Some(m)).is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Waits up to `timeout` for a captured report with a record of type `rtype` for `group`.
async fn report_with(
    rx: &Receiver<Option<Igmp>>,
    rtype: u8,
    group: Ipv4Addr,
    seen: &mut Vec<Igmp>,
    timeout: Duration,
) -> Result<Igmp, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv_within(rx, left).await {
            Ok(Some(m)) => {
                seen.push(m.clone());
                if m.records.iter().any(|r| r.0 == rtype && r.1 == group) {
                    return Ok(m);
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "no report with record type {rtype} for {group}: {e}; captured: {seen:?}"
                ))
            }
        }
    }
}

/// Joining and leaving a group make ustack send IGMPv3 reports that the kernel's side of
/// the TUN device sees: to 224.0.0.22, TTL 1, with the Router Alert option, valid
/// checksums, CHANGE_TO_EXCLUDE {} for the join and CHANGE_TO_INCLUDE {} for the leave.
#[test]
fn igmp_reports_reach_the_kernel_side() {
    require_root!();
    let net = TunNet::new("mcigmp");
    let group = Ipv4Addr::new(239, 20, 0, 5);
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let dev = net.tun.clone();
    let capture = net
        .ns
        .thread(move || capture_igmp(&dev, stack_ip(), tx, stop2, Duration::from_secs(30)));
    let res = block_on_in(&net, move |tun| async move {
        let stack = stack_on(tun).await?;
        match recv_within(&rx, Duration::from_secs(10)).await? {
            None => {}
            Some(m) => return Err(format!("IGMP before the join: {m:?}")),
        }
        let sock = UdpSocket::bind_with(&stack, "0.0.0.0:9302")
            .await
            .map_err(|e| e.to_string())?;
        sock.join_multicast_v4(group, stack_ip())
            .map_err(|e| format!("join: {e}"))?;
        let mut seen = Vec::new();
        // Record type 4: CHANGE_TO_EXCLUDE_MODE; 3: CHANGE_TO_INCLUDE_MODE.
        let join = report_with(&rx, 4, group, &mut seen, Duration::from_secs(2)).await?;
        sock.leave_multicast_v4(group, stack_ip())
            .map_err(|e| format!("leave: {e}"))?;
        let leave = report_with(&rx, 3, group, &mut seen, Duration::from_secs(2)).await?;
        let igmp = stack.stats().igmp;
        stack.shutdown().await;
        Ok((join, leave, seen, igmp))
    });
    stop.store(true, Ordering::Relaxed);
    capture
        .join()
        .expect("capture thread")
        .expect("capture on the kernel side");
    let (join, leave, seen, igmp) = res.expect("ustack side");
    for (what, m) in [("join", &join), ("leave", &leave)] {
        assert_eq!(
            m.dst, IGMP_ALL_V3_ROUTERS,
            "{what} report destination: {m:?}"
        );
        assert_eq!(m.ttl, 1, "{what} report TTL: {m:?}");
        assert_eq!(
            m.ip_options,
            vec![0x94, 0x04, 0, 0],
            "{what} report IP options (Router Alert, IHL 6): {m:?}"
        );
        assert!(m.ip_csum_ok, "{what} report IP header checksum: {m:?}");
        assert_eq!(
            m.igmp_type, 0x22,
            "{what} report IGMP type (v3 report): {m:?}"
        );
        assert!(m.igmp_csum_ok, "{what} report IGMP checksum: {m:?}");
        assert_eq!(
            m.records.iter().filter(|r| r.1 == group).count(),
            1,
            "{what} report: one record for {group}: {m:?}"
        );
        assert!(
            m.records.iter().all(|r| r.2 == 0),
            "{what} report: no sources: {m:?}"
        );
    }
    assert!(
        seen.iter().all(|m| m.dst == IGMP_ALL_V3_ROUTERS),
        "every captured IGMP message from ustack goes to 224.0.0.22: {seen:?}"
    );
    assert!(
        igmp.out_reports >= 2,
        "IGMP out_reports after a join and a leave: {igmp:?}"
    );
    println!(
        "join report TOS {:#04x}; captured {} IGMP messages from ustack; {igmp:?}",
        join.tos,
        seen.len()
    );
}
