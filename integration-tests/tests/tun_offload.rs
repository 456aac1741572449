//! TUN with vnet_hdr offloads (`TunOptions::offload`): a kernel TCP client in a namespace
//! sends 64 MiB to a ustack server attached to a persistent TUN (`ip tuntap add`) opened
//! with `IFF_VNET_HDR` and `TUN_F_CSUM | TUN_F_TSO4`. The bytes must arrive intact, no
//! checksum may be rejected, and the device must have received packets larger than its
//! 1500-byte MTU: the kernel's TCP super-segments. The other direction: ustack sends
//! 64 MiB to a kernel reader as its own super-segments with partial checksums (TSO), and
//! the kernel must read every byte in order, also when the kernel drops 5 % of them
//! (iptables, whole super-segments at a time). A last test checks that a reader without
//! offloads still works on a persistent TUN whose offload reader died without resetting
//! them. The receiving thread (`TunOptions::rx_thread`): the kernel's bulk transfer read
//! by a thread of the device's own arrives intact, also when the kernel drops some of it,
//! and the thread ends with the stack.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::TcpListener;
use ustack::netdev::DeviceStats;
use ustack::{Stack, TunOptions};
use ustack_integration_tests::{
    block_on_in, fill_pattern, pattern_byte, require_root, require_tool, stack_cidr, TunNet,
    STACK_IP,
};

const BYTES: u64 = 64 << 20;
/// Bytes sent over the device without offloads (one packet per read: slower).
const PLAIN_BYTES: u64 = 16 << 20;
const PORT: u16 = 5001;

/// How the stack's device reads the TUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// One packet per read(2), in the stack's task.
    Plain,
    /// `TunOptions::offload`.
    Offload,
    /// `TunOptions::rx_thread`.
    Thread,
}

/// Threads of this process whose name starts with `ustack-rx-` (receiving threads).
fn rx_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|c| c.starts_with("ustack-rx-"))
                .count()
        })
        .unwrap_or(0)
}

/// What the ustack side saw.
#[derive(Debug)]
struct Seen {
    received: u64,
    corrupt_at: Option<u64>,
    rx_packets: u64,
    rx_bytes: u64,
    tcp_csum_errors: u64,
    tcp_in_errs: u64,
    /// Receiving threads while the connection was open, and after the stack shut down.
    rx_threads_during: usize,
    rx_threads_after: usize,
}

/// A kernel TCP connection to the ustack server (5 s to connect, 30 s per read or write).
fn connect_kernel() -> Result<std::net::TcpStream, String> {
    let to: SocketAddr = format!("{STACK_IP}:{PORT}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// The kernel client: connect, send `BYTES` of the pattern, half-close, read the
/// server's 8-byte count.
fn kernel_client(bytes: u64) -> Result<u64, String> {
    let mut s = connect_kernel()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], off);
        s.write_all(&buf[..n])
            .map_err(|e| format!("write at {off}: {e}"))?;
        off += n as u64;
    }
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)
        .map_err(|e| format!("reading the count: {e}"))?;
    Ok(u64::from_be_bytes(count))
}

/// A stack on the persistent TUN `tun`, read as `reader` says, listening on `PORT`.
async fn listen_on(tun: String, reader: Reader) -> Result<(Stack, TcpListener), String> {
    let stack = Stack::builder()
        .tun_with(TunOptions {
            name: tun,
            mtu: None,
            host_addr: None,
            up: true,
            offload: reader == Reader::Offload,
            tap: None,
            rx_thread: reader == Reader::Thread,
        })
        .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
        .build()
        .await
        .map_err(|e| format!("stack: {e}"))?;
    let l = TcpListener::bind_with(&stack, SocketAddr::from(([0, 0, 0, 0], PORT)))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    Ok((stack, l))
}

async fn serve(tun: String, reader: Reader, bytes: u64) -> Result<Seen, String> {
    let (stack, l) = listen_on(tun, reader).await?;
    // Started from this thread, the client's thread is in the same namespace.
    let client = std::thread::spawn(move || kernel_client(bytes));
    let (mut s, _) = l.accept().await.map_err(|e| format!("accept: {e}"))?;
    let rx_threads_during = rx_threads();
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0u64;
    let mut corrupt_at = None;
    loop {
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        if corrupt_at.is_none() {
            corrupt_at = buf[..n]
                .iter()
                .enumerate()
                .find(|&(i, &b)| b != pattern_byte(received + i as u64))
                .map(|(i, _)| received + i as u64);
        }
        received += n as u64;
    }
    s.write_all(&received.to_be_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let sent = tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "client thread panicked".to_string())??;
    if sent != received {
        return Err(format!("client got count {sent}, server read {received}"));
    }
    let st = stack.stats();
    let dev = st.devices.first().ok_or("no device")?;
    let seen = Seen {
        received,
        corrupt_at,
        rx_packets: dev.stats.rx_packets,
        rx_bytes: dev.stats.rx_bytes,
        tcp_csum_errors: st.tcp.in_csum_errors,
        tcp_in_errs: st.tcp.in_errs,
        rx_threads_during,
        rx_threads_after: 0,
    };
    stack.shutdown().await;
    Ok(Seen {
        rx_threads_after: rx_threads(),
        ..seen
    })
}

/// Runs `serve` inside the namespace.
fn serve_in(net: &TunNet, reader: Reader, bytes: u64) -> Result<Seen, String> {
    block_on_in(net, move |tun| serve(tun, reader, bytes))
}

#[test]
fn kernel_bulk_into_offload_tun_arrives_as_super_segments() {
    require_root!();
    let net = TunNet::new("offload");
    let seen = serve_in(&net, Reader::Offload, BYTES);
    let seen = seen.unwrap_or_else(|e| panic!("offload transfer failed: {e}"));
    println!("{seen:?}");
    assert_eq!(seen.received, BYTES);
    assert_eq!(seen.corrupt_at, None, "stream corrupted");
    assert_eq!(seen.tcp_csum_errors, 0);
    assert_eq!(seen.tcp_in_errs, 0);
    // 64 MiB at a 1460-byte MSS would be ~46,000 packets; super-segments make far fewer,
    // and their average size is above the MTU.
    assert!(seen.rx_packets > 0);
    let avg = seen.rx_bytes / seen.rx_packets;
    assert!(
        avg > 1500,
        "no super-segments: {} bytes in {} packets",
        seen.rx_bytes,
        seen.rx_packets
    );
}

/// A TUN read by a thread of its own: the kernel's 64 MiB arrive intact, one MTU-sized
/// packet per read, through the device's thread, which ends with the stack. Then, with
/// the kernel dropping 2 % of the segments it sends into the TUN, a second stack on the
/// same TUN: the thread's queue keeps their order, ustack's SACKs get them resent and
/// every byte arrives. (One test, so that no other receiving thread runs meanwhile.)
#[test]
fn kernel_bulk_into_a_tun_read_by_its_own_thread() {
    require_root!();
    let net = TunNet::new("rxthr");
    let seen = serve_in(&net, Reader::Thread, BYTES)
        .unwrap_or_else(|e| panic!("transfer through the receiving thread failed: {e}"));
    println!("{seen:?}");
    assert_eq!(seen.received, BYTES);
    assert_eq!(seen.corrupt_at, None, "stream corrupted");
    assert_eq!(seen.tcp_csum_errors, 0);
    assert_eq!(seen.tcp_in_errs, 0);
    assert!(seen.rx_bytes / seen.rx_packets.max(1) <= 1500);
    assert!(seen.rx_packets >= BYTES / 1500);
    assert_eq!(seen.rx_threads_during, 1, "no receiving thread");
    assert_eq!(
        seen.rx_threads_after, 0,
        "the receiving thread outlived the stack"
    );

    require_tool!("iptables");
    net.ns.sh(&format!(
        "iptables -A OUTPUT -o {} -p tcp --dport {PORT} -m statistic --mode random --probability 0.02 -j DROP",
        net.tun
    ));
    let seen = serve_in(&net, Reader::Thread, PLAIN_BYTES)
        .unwrap_or_else(|e| panic!("lossy transfer through the receiving thread failed: {e}"));
    let dropped = net
        .ns
        .sh("iptables -L OUTPUT -v -x -n | awk 'NR>2 {s+=$1} END {print s+0}'");
    println!("{seen:?}, dropped {dropped}");
    assert!(
        dropped.trim().parse::<u64>().unwrap_or(0) > 0,
        "the rule dropped nothing"
    );
    assert_eq!(seen.received, PLAIN_BYTES);
    assert_eq!(seen.corrupt_at, None, "stream corrupted");
    assert_eq!(seen.rx_threads_after, 0);
}

/// Attaches to `tun` the way a reader with offloads does (`IFF_VNET_HDR`,
/// `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4)`) and closes the descriptor without resetting
/// them, like a process that was killed.
fn attach_with_offloads_and_die(tun: &str) -> Result<(), String> {
    // SAFETY: plain open(2); the descriptor is closed below.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(tun.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
    let hdr_len: libc::c_int = 10;
    // SAFETY: TUNSETIFF takes a struct ifreq, TUNSETVNETHDRSZ an int pointer, TUNSETOFFLOAD
    // the flags by value; fd is ours and closed right after.
    let rc = unsafe {
        let a = libc::ioctl(fd, libc::TUNSETIFF as _, &mut req as *mut libc::ifreq);
        let b = libc::ioctl(
            fd,
            libc::TUNSETVNETHDRSZ as _,
            &hdr_len as *const libc::c_int,
        );
        let c = libc::ioctl(
            fd,
            libc::TUNSETOFFLOAD as _,
            libc::c_ulong::from(libc::TUN_F_CSUM | libc::TUN_F_TSO4),
        );
        libc::close(fd);
        a.min(b).min(c)
    };
    if rc < 0 {
        return Err(format!("ioctl: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[test]
fn plain_reader_works_after_an_offload_reader_died() {
    require_root!();
    let net = TunNet::new("offdied");
    let tun = net.tun.clone();
    net.ns
        .within(move || attach_with_offloads_and_die(&tun))
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = serve_in(&net, Reader::Plain, PLAIN_BYTES)
        .unwrap_or_else(|e| panic!("plain transfer failed: {e}"));
    println!("{seen:?}");
    assert_eq!(seen.received, PLAIN_BYTES);
    assert_eq!(seen.corrupt_at, None, "stream corrupted");
    assert_eq!(seen.tcp_csum_errors, 0);
    // Every packet the plain reader got fits the MTU: the kernel segmented again.
    assert!(seen.rx_bytes / seen.rx_packets.max(1) <= 1500);
}

/// The kernel client of the other direction: connect, read to EOF checking the pattern,
/// return how much arrived (or where it first differed).
fn kernel_reader() -> Result<u64, String> {
    let mut s = connect_kernel()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("read at {got}: {e}"))?;
        if n == 0 {
            return Ok(got);
        }
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern_byte(got + i as u64)) {
            return Err(format!("stream corrupted at byte {}", got + i as u64));
        }
        got += n as u64;
    }
}

/// ustack sends `bytes` of the pattern to a kernel reader over the offload TUN of `net`;
/// returns what the reader got, the device counters and the retransmitted segments.
fn send_to_kernel(net: &TunNet, bytes: u64) -> Result<(u64, DeviceStats, u64), String> {
    block_on_in(net, move |tun| send(tun, bytes))
}

async fn send(tun: String, bytes: u64) -> Result<(u64, DeviceStats, u64), String> {
    let (stack, l) = listen_on(tun, Reader::Offload).await?;
    let client = std::thread::spawn(kernel_reader);
    let (mut s, _) = l.accept().await.map_err(|e| format!("accept: {e}"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], off);
        s.write_all(&buf[..n])
            .await
            .map_err(|e| format!("write at {off}: {e}"))?;
        off += n as u64;
    }
    s.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let got = tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "client thread panicked".to_string())??;
    let st = stack.stats();
    let dev = st.devices.first().ok_or("no device")?.stats;
    stack.shutdown().await;
    Ok((got, dev, st.tcp.retrans_segs))
}

/// ustack -> kernel over the offload TUN: what ustack writes leaves as TCP super-segments
/// with partial checksums (TSO), one write(2) each, and the kernel reads every byte in
/// order.
#[test]
fn ustack_bulk_to_kernel_leaves_as_super_segments() {
    require_root!();
    let net = TunNet::new("tso");
    let (got, dev, retrans) =
        send_to_kernel(&net, BYTES).unwrap_or_else(|e| panic!("transfer failed: {e}"));
    println!("received {got}, device {dev:?}, retransmitted segments {retrans}");
    assert_eq!(got, BYTES);
    assert_eq!(dev.tx_errors, 0);
    // 64 MiB at a 1448-byte MSS would be ~46,000 packets: super-segments make far fewer.
    assert!(
        dev.tx_bytes / dev.tx_packets.max(1) > 4 * 1500,
        "no super-segments: {} bytes in {} packets",
        dev.tx_bytes,
        dev.tx_packets
    );
}

/// The same with the kernel dropping 5 % of what arrives from ustack (iptables
/// `statistic`, before the kernel cuts anything: a whole super-segment is lost at once):
/// ustack recovers with MSS-sized retransmissions and every byte still arrives in order.
#[test]
fn lost_super_segments_are_recovered() {
    require_root!();
    require_tool!("iptables");
    let net = TunNet::new("tsoloss");
    net.ns.sh(&format!(
        "iptables -A INPUT -i {} -p tcp --sport {PORT} -m statistic --mode random --probability 0.05 -j DROP",
        net.tun
    ));
    let (got, dev, retrans) =
        send_to_kernel(&net, PLAIN_BYTES).unwrap_or_else(|e| panic!("transfer failed: {e}"));
    let dropped = net
        .ns
        .sh("iptables -L INPUT -v -x -n | awk 'NR>2 {s+=$1} END {print s+0}'");
    println!("received {got}, device {dev:?}, retransmitted segments {retrans}, dropped {dropped}");
    assert_eq!(got, PLAIN_BYTES);
    assert!(
        dropped.trim().parse::<u64>().unwrap_or(0) > 0,
        "the rule dropped nothing"
    );
    assert!(retrans > 0, "nothing was retransmitted");
    assert!(
        dev.tx_bytes / dev.tx_packets.max(1) > 1500,
        "no super-segments"
    );
}
