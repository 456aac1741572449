//! TUN tests. The device test needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN): it runs on its
//! own thread that first moves into a fresh network namespace (`unshare(CLONE_NEWNET)`),
//! so the host's interfaces and routes are never touched; the namespace goes away when
//! the thread exits. Without privileges it is skipped, except under `CI=true`, where it
//! fails.

use super::*;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;

#[test]
fn netmask_from_prefix() {
    assert_eq!(netmask(0), Some(Ipv4Addr::UNSPECIFIED));
    assert_eq!(netmask(24), Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(netmask(32), Some(Ipv4Addr::BROADCAST));
    assert_eq!(netmask(33), None);
}

#[test]
fn bad_options_are_errors() {
    let long = TunOptions {
        name: "a-name-longer-than-15".into(),
        ..Default::default()
    };
    assert_eq!(
        TunDevice::open(long).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mtu = TunOptions {
        name: "x".into(),
        mtu: Some(10),
        ..Default::default()
    };
    assert_eq!(
        TunDevice::open(mtu).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let prefix = TunOptions {
        name: "x".into(),
        host_addr: Some((Ipv4Addr::new(10, 0, 0, 1), 40)),
        ..Default::default()
    };
    assert_eq!(
        TunDevice::open(prefix).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn open_outside_runtime_is_an_error() {
    for offload in [false, true] {
        let r = TunDevice::open(TunOptions {
            name: "ustk-nort".into(),
            offload,
            ..Default::default()
        });
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Other);
    }
}

#[test]
fn bad_options_are_errors_with_offload() {
    let prefix = TunOptions {
        name: "x".into(),
        host_addr: Some((Ipv4Addr::new(10, 0, 0, 1), 40)),
        offload: true,
        ..Default::default()
    };
    assert_eq!(
        TunDevice::open(prefix).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mtu = TunOptions {
        name: "x".into(),
        mtu: Some(70_000),
        offload: true,
        ..Default::default()
    };
    assert_eq!(
        TunDevice::open(mtu).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// Internet checksum of an IPv4 header.
fn ip_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in hdr.chunks(2) {
        let word = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet without UDP checksum.
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let c = ip_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// Receives up to 64 packets into `got`; false when none came within `wait`.
async fn recv_within(
    dev: &mut TunDevice,
    got: &mut Vec<PacketBuf>,
    wait: Duration,
) -> Result<bool, String> {
    match tokio::time::timeout(wait, std::future::poll_fn(|cx| dev.poll_recv(cx, got, 64))).await {
        Err(_) => Ok(false),
        Ok(r) => r.map(|_| true).map_err(|e| e.to_string()),
    }
}

/// An IPv4 ICMP echo request with sequence number `seq` and 56 bytes of payload.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 8 + 56];
    let total = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = ip_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = 8;
    p[24..26].copy_from_slice(&0x7573u16.to_be_bytes());
    p[26..28].copy_from_slice(&seq.to_be_bytes());
    let c = ip_checksum(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    p
}

/// 2,000 echo requests to the kernel, in one transmit, one transmit each, or 100 per
/// transmit with a receive of 16 packets after each (which leaves the rest queued); the
/// kernel answers each inside the write, into the TUN's
/// queue (500 packets): every reply arrives, in order, because the device reads that
/// queue while it writes a long run of packets. (Not with a receiving thread:
/// there the thread reads, as fast as it gets a CPU, and the transmit only takes what it
/// has read.)
async fn burst_replies_all_arrive(
    dev: &mut TunDevice,
    host: Ipv4Addr,
    peer: Ipv4Addr,
    per_call: usize,
    small_poll_between: bool,
) -> Result<(), String> {
    const BURST: u16 = 2000;
    let all: Vec<PacketBuf> = (0..BURST)
        .map(|i| PacketBuf::from_vec(echo_request(peer, host, i)))
        .collect();
    let mut seqs = Vec::new();
    let mut got = Vec::new();
    let take = |got: &mut Vec<PacketBuf>, seqs: &mut Vec<u16>| -> Result<(), String> {
        for p in got.drain(..) {
            let d = p.data();
            if d.get(9) == Some(&1) && d.get(20) == Some(&0) {
                let s = d.get(26..28).ok_or("short echo reply")?;
                seqs.push(u16::from_be_bytes([s[0], s[1]]));
            }
        }
        Ok(())
    };
    for chunk in all.chunks(per_call) {
        dev.transmit(&mut chunk.to_vec());
        if small_poll_between {
            // A receive that stops at its budget (16) with more queued.
            let r = std::future::poll_fn(|cx| Poll::Ready(dev.poll_recv(cx, &mut got, 16))).await;
            if let Poll::Ready(Err(e)) = r {
                return Err(e.to_string());
            }
            take(&mut got, &mut seqs)?;
        }
    }
    while seqs.len() < usize::from(BURST) {
        if !recv_within(dev, &mut got, Duration::from_millis(500)).await? {
            break;
        }
        take(&mut got, &mut seqs)?;
    }
    assert_eq!(
        seqs.len(),
        usize::from(BURST),
        "echo replies to {BURST} requests sent {per_call} per transmit, small receives \
         between: {small_poll_between} (the kernel dropped the rest; rx_missed {})",
        dev.stats().rx_missed
    );
    assert!(
        seqs.iter().copied().eq(0..BURST),
        "echo replies out of order"
    );
    Ok(())
}

/// 1,200 datagrams from the kernel while the device does not read: its queue (500
/// packets) holds what it can and the kernel drops the rest, which `rx_missed` reports
/// (read from the kernel's counters of the interface); what was queued still arrives.
async fn missed_counts_the_kernels_drops(
    dev: &mut TunDevice,
    sock: &UdpSocket,
    peer: Ipv4Addr,
) -> Result<(), String> {
    const SENT: usize = 1200;
    let before = dev.stats().rx_missed;
    for _ in 0..SENT {
        sock.send_to(b"unread", SocketAddrV4::new(peer, 9997))
            .map_err(|e| e.to_string())?;
    }
    let missed = dev.stats().rx_missed - before;
    let mut got = Vec::new();
    let mut arrived = 0;
    while recv_within(dev, &mut got, Duration::from_millis(300)).await? {
        arrived += got
            .drain(..)
            .filter(|p| p.data().get(22..24) == Some(&9997u16.to_be_bytes()[..]))
            .count();
    }
    assert!(
        (600..=SENT as u64).contains(&missed),
        "rx_missed {missed} for {SENT} unread datagrams"
    );
    assert_eq!(
        arrived as u64 + missed,
        SENT as u64,
        "{arrived} arrived, {missed} missed"
    );
    Ok(())
}

enum Outcome {
    Passed,
    Skipped(String),
}

/// How the device under test is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Offload,
    RxThread,
}

/// Runs on a dedicated thread inside a private network namespace.
fn netns_body(mode: Mode) -> Result<Outcome, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(Outcome::Skipped("not root".into()));
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Ok(Outcome::Skipped("/dev/net/tun is missing".into()));
    }
    // SAFETY: unshare only changes the namespaces of the calling thread; CLONE_NEWNET is
    // permitted in a multi-threaded process. This thread is ours and ends with the test.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Ok(Outcome::Skipped(format!(
            "unshare(CLONE_NEWNET) failed: {e}"
        )));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), device_roundtrip(mode))
            .await
            .map_err(|_| "timed out".to_string())?
    })?;
    Ok(Outcome::Passed)
}

async fn device_roundtrip(mode: Mode) -> Result<(), String> {
    let offload = mode == Mode::Offload;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let (x, y) = ((nanos >> 8) as u8 % 200 + 20, nanos as u8);
    let host = Ipv4Addr::new(10, x, y, 1);
    let peer = Ipv4Addr::new(10, x, y, 2);
    // A persistent TUN made beforehand (like `ip tuntap add ustkN mode tun`): open must
    // attach to it by name.
    let name = format!("ustk{}", nanos % 100_000);
    let pre = TunBuilder::new()
        .name(&name)
        .persist()
        .build()
        .map_err(|e| format!("persistent TUN: {e}"))?;
    drop(pre);
    let mut dev = TunDevice::open(TunOptions {
        name: name.clone(),
        mtu: Some(1400),
        host_addr: Some((host, 24)),
        up: true,
        offload,
        tap: None,
        rx_thread: mode == Mode::RxThread,
    })
    .map_err(|e| format!("open: {e}"))?;
    assert_eq!(dev.name(), name);
    assert_eq!(dev.mtu(), 1400);
    assert!(dev.is_up());
    assert_eq!(dev.offload(), offload);

    // Kernel -> device: a datagram routed into the TUN subnet.
    let sock = UdpSocket::bind(SocketAddrV4::new(host, 0)).map_err(|e| e.to_string())?;
    let local = match sock.local_addr().map_err(|e| e.to_string())? {
        std::net::SocketAddr::V4(a) => a,
        other => return Err(format!("unexpected address {other}")),
    };
    sock.send_to(b"hello tun", SocketAddrV4::new(peer, 9999))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let udp = loop {
        std::future::poll_fn(|cx| dev.poll_recv(cx, &mut got, 16))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(p) = got.iter().find(|p| p.data().get(9) == Some(&17)) {
            break p.clone();
        }
        got.clear();
    };
    let d = udp.data();
    assert_eq!(d[0], 0x45);
    assert_eq!(&d[16..20], &peer.octets());
    assert!(d.ends_with(b"hello tun"));
    assert!(dev.stats().rx_packets >= 1);

    // Device -> kernel: a datagram from the peer to our socket.
    let from = SocketAddrV4::new(peer, 4444);
    let pkt = PacketBuf::from_vec(udp_packet(from, local, b"reply"));
    dev.transmit(&mut vec![pkt]);
    assert_eq!(dev.stats().tx_packets, 1);
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let (n, src) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
    assert_eq!(&buf[..n], b"reply");
    assert_eq!(src, std::net::SocketAddr::V4(from));
    if mode != Mode::RxThread {
        burst_replies_all_arrive(&mut dev, host, peer, 2000, false).await?;
        burst_replies_all_arrive(&mut dev, host, peer, 1, false).await?;
        burst_replies_all_arrive(&mut dev, host, peer, 100, true).await?;
        missed_counts_the_kernels_drops(&mut dev, &sock, peer).await?;
    }
    if !offload {
        // A packet longer than the device MTU (the interface's MTU raised behind the
        // device's back): the kernel cuts it to the read buffer, the device drops it whole
        // and counts it, and the next packet arrives intact.
        vnet::IfCtl::new(&name)
            .and_then(|c| c.set_mtu(3000))
            .map_err(|e| format!("set mtu: {e}"))?;
        let dropped = dev.stats().rx_dropped;
        sock.send_to(&[7u8; 2000], SocketAddrV4::new(peer, 9999))
            .map_err(|e| e.to_string())?;
        sock.send_to(b"after", SocketAddrV4::new(peer, 9999))
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        loop {
            std::future::poll_fn(|cx| dev.poll_recv(cx, &mut got, 16))
                .await
                .map_err(|e| e.to_string())?;
            assert!(
                got.iter().all(|p| p.len() <= 1400),
                "an oversized packet was handed on"
            );
            if got
                .iter()
                .any(|p| p.data().get(9) == Some(&17) && p.data().ends_with(b"after"))
            {
                break;
            }
            got.clear();
        }
        assert!(dev.stats().rx_dropped > dropped);
    }
    if offload {
        let o = dev.offload_stats();
        assert_eq!(o.rx_bad_hdr, 0);
        assert!(o.rx_max_len >= 37);
    } else {
        assert_eq!(dev.offload_stats(), TunOffloadStats::default());
    }
    if mode == Mode::RxThread {
        rx_thread_queue_and_drop(dev, &sock, peer, &name).await?;
    }
    Ok(())
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// With a receiving thread: while the stack does not poll, the thread fills exactly its
/// fixed number of buffers and stops reading; polling then hands on every queued packet
/// in the order sent. Dropping the device ends the thread and releases the descriptor, so
/// the persistent TUN can be attached to again at once.
async fn rx_thread_queue_and_drop(
    mut dev: TunDevice,
    sock: &UdpSocket,
    peer: Ipv4Addr,
    name: &str,
) -> Result<(), String> {
    let thread = format!("ustack-rx-{name}");
    // comm is cut to 15 bytes.
    let thread: String = thread.chars().take(15).collect();
    assert!(thread_names().contains(&thread), "no {thread} thread");
    // Every descriptor of a TUN in this process (the thread's, the device's) is
    // close-on-exec: a child started meanwhile must not keep the device open.
    let mut tun_fds = 0;
    for fd in std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "/dev/net/tun") {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .ok_or("no flags in fdinfo")?;
            assert_ne!(
                flags & libc::O_CLOEXEC as u32,
                0,
                "a TUN descriptor without O_CLOEXEC"
            );
            tun_fds += 1;
        }
    }
    assert!(tun_fds >= 2, "{tun_fds} TUN descriptors");
    // The interface's MTU was raised above; 1000-byte datagrams fit the device's 1400.
    const SENT: u32 = 1500;
    for i in 0..SENT {
        let mut d = [0u8; 1000];
        d[..4].copy_from_slice(&i.to_be_bytes());
        sock.send_to(&d, SocketAddrV4::new(peer, 9998))
            .map_err(|e| e.to_string())?;
    }
    // Wait until the thread has read all it can (its queue stops growing).
    let mut queued = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let q = dev.rx_thread.as_ref().map_or(0, RxThread::queued);
        if q == queued && q > 0 {
            break;
        }
        queued = q;
    }
    assert_eq!(
        queued,
        rxthread::BUFFERS,
        "the thread must fill its buffers and no more"
    );
    // Everything queued (and whatever the kernel kept meanwhile) arrives, in order.
    let mut seen: Vec<u32> = Vec::new();
    let mut got = Vec::new();
    loop {
        if !recv_within(&mut dev, &mut got, Duration::from_millis(300)).await? {
            break;
        }
        for p in got.drain(..) {
            let d = p.data();
            if d.get(9) == Some(&17) && d.get(22..24) == Some(&9998u16.to_be_bytes()[..]) {
                let i = d.get(28..32).ok_or("short datagram")?;
                seen.push(u32::from_be_bytes([i[0], i[1], i[2], i[3]]));
            }
        }
    }
    assert!(
        seen.len() >= rxthread::BUFFERS,
        "only {} of {SENT} datagrams arrived",
        seen.len()
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "datagrams out of order or repeated"
    );
    assert_eq!(seen.first(), Some(&0));
    drop(dev);
    assert!(!thread_names().contains(&thread), "{thread} still runs");
    let again = TunDevice::open(TunOptions {
        name: name.to_string(),
        rx_thread: true,
        ..Default::default()
    })
    .map_err(|e| format!("attaching again after the drop: {e}"))?;
    assert_eq!(again.name(), name);
    Ok(())
}

#[test]
fn tun_device_in_private_netns() {
    run_in_netns(Mode::Plain);
}

/// The same round trip with `IFF_VNET_HDR` and offloads: the header is stripped on
/// receive and prepended on transmit.
#[test]
fn tun_device_with_offload_in_private_netns() {
    run_in_netns(Mode::Offload);
}

/// The same round trip read by a thread of its own, then its bounded queue, order and
/// ending.
#[test]
fn tun_device_with_rx_thread_in_private_netns() {
    run_in_netns(Mode::RxThread);
}

fn run_in_netns(mode: Mode) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let outcome = std::thread::spawn(move || netns_body(mode))
        .join()
        .expect("netns thread panicked");
    match outcome {
        Ok(Outcome::Passed) => {}
        Ok(Outcome::Skipped(why)) if !ci => {
            eprintln!("skipping TUN device test: {why}");
        }
        Ok(Outcome::Skipped(why)) => panic!("TUN device test cannot run under CI=true: {why}"),
        Err(e) => panic!("TUN device test failed: {e}"),
    }
}

#[test]
fn offload_on_a_tap_is_refused_before_anything_is_opened() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let e = TunDevice::open(TunOptions {
        name: "ustk-taponly".into(),
        offload: true,
        tap: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("TAP"), "{e}");
    let e = TunDevice::open(TunOptions {
        name: "ustk-rxoff".into(),
        offload: true,
        rx_thread: true,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("receiving thread"), "{e}");
}
