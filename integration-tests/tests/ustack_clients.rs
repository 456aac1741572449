//! ustack clients against kernel servers: the hyper-based `http_client` against
//! `python3 -m http.server`, and `tcp_client` sending to a kernel sink directly, through a
//! Linux router with a smaller MTU (path MTU discovery), to a receiver that stops reading
//! for a while (zero window), to a peer that aborts (RST), and idling with keepalive
//! against a live peer and a vanished one.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use ustack_integration_tests::{
    example_bin, kv, read_pattern, require_root, require_tool, stack_cidr, NetNs, Proc, TunNet,
    HOST_IP,
};

fn stack_client(net: &TunNet, bin: &str, args: &[&str]) -> Proc {
    let addr = stack_cidr();
    let mut cmd = net.ns.cmd(example_bin(bin));
    cmd.args(["--tun", &net.tun, "--addr", &addr]).args(args);
    Proc::spawn(bin, cmd)
}

#[test]
fn http_client_against_python_http_server() {
    require_root!();
    require_tool!("python3");
    let net = TunNet::new("pyhttp");
    let dir = std::env::temp_dir().join(format!("{}-www", net.ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("blob.bin"), &body).unwrap();
    let want = ustack_integration_tests::sha256(&body);
    let dir_s = dir.display().to_string();
    let py = net.ns.spawn(
        "python3 http.server",
        "python3",
        &[
            "-m",
            "http.server",
            "8000",
            "--bind",
            HOST_IP,
            "--directory",
            &dir_s,
        ],
    );
    // Wait until it listens.
    let mut listening = false;
    for _ in 0..100 {
        if net.ns.sh("ss -ltnH").contains(":8000") {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        listening,
        "python3 http.server did not start:\n{}",
        py.output()
    );

    let client = stack_client(
        &net,
        "http_client",
        &[
            "--fail",
            "--timeout",
            "60",
            &format!("http://{HOST_IP}:8000/blob.bin"),
        ],
    );
    let (ok, out) = client.wait(Duration::from_secs(90));
    println!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "http_client failed");
    assert!(out.contains("200 OK"), "status line missing");
    assert!(
        out.to_ascii_lowercase().contains("content-length: 3000000"),
        "headers missing"
    );
    assert!(
        out.contains(&format!("sha256: {want}")),
        "body hash differs (want {want})"
    );
    drop(py);
}

/// Sends `n` bytes of the pattern from ustack's `tcp_client` (on `net`'s TUN, plus
/// `extra` arguments) to `connect`, where a kernel sink in `sink_ns` accepts on the listener
/// `listen` makes, pauses `pause` before reading, reads the pattern to EOF and replies
/// with the count. Checks that every byte arrived intact; returns the client's output, the
/// `key=value`s of its summary line and exit line, and the time the sink took from its
/// first read to EOF.
fn send_to_kernel_sink(
    net: &TunNet,
    sink_ns: &NetNs,
    listen: impl FnOnce() -> io::Result<TcpListener> + Send + 'static,
    pause: Duration,
    connect: &str,
    n: u64,
    extra: &[&str],
) -> (HashMap<String, String>, HashMap<String, String>, Duration) {
    let sink = sink_ns.thread(move || -> Result<(u64, bool, Duration), String> {
        let l = listen().map_err(|e| e.to_string())?;
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        std::thread::sleep(pause);
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let (total, ok) = read_pattern(&mut s).map_err(|e| e.to_string())?;
        s.write_all(&total.to_be_bytes())
            .map_err(|e| e.to_string())?;
        Ok((total, ok, t.elapsed()))
    });
    std::thread::sleep(Duration::from_millis(200));
    let n_arg = n.to_string();
    let mut args = vec!["--connect", connect, "--send", &n_arg, "--timeout", "90"];
    args.extend_from_slice(extra);
    let client = stack_client(net, "tcp_client", &args);
    let (ok, out) = client.wait(Duration::from_secs(120));
    println!("{out}");
    assert!(ok, "tcp_client failed");
    let (total, pattern_ok, reading) = sink.join().expect("sink thread").expect("sink");
    assert_eq!(total, n, "kernel sink byte count");
    assert!(pattern_ok, "kernel sink saw corrupted data");
    let line = |key: &str| {
        kv(out
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no line with {key}")))
    };
    let summary = line("sent=");
    assert_eq!(summary["sent"], n.to_string());
    assert_eq!(summary["received"], "8");
    (summary, line("icmp_in_dest_unreachs="), reading)
}

#[test]
fn bulk_transfer_to_kernel_sink() {
    require_root!();
    let net = TunNet::new("sink");
    send_to_kernel_sink(
        &net,
        &net.ns,
        || TcpListener::bind((HOST_IP, 9001)),
        Duration::ZERO,
        &format!("{HOST_IP}:9001"),
        32 * 1024 * 1024,
        &[],
    );
}

/// Path MTU discovery (RFC 1191) against a Linux router. The TUN's namespace forwards to a
/// second namespace over a veth pair whose router end has MTU 1280 while the far end keeps
/// 1500, so the kernel sink there offers MSS 1460 and only the router knows better. ustack's
/// full-size segments carry DF; the router drops them and answers "fragmentation needed";
/// ustack lowers its MSS, resends, and the 8 MiB arrive intact.
#[test]
fn path_mtu_discovery_through_a_kernel_router() {
    require_root!();
    let net = TunNet::new("pmtu");
    let far = NetNs::new("pmtufar");
    net.ns.sh(&format!(
        "sysctl -qw net.ipv4.ip_forward=1 && \
         ip link add vr type veth peer name vs netns {far} && \
         ip link set vr mtu 1280 && ip addr add 10.77.0.1/24 dev vr && ip link set vr up",
        far = far.name()
    ));
    far.sh("ip addr add 10.77.0.2/24 dev vs && ip link set vs up && \
         ip route add default via 10.77.0.1");
    let (summary, exit, _) = send_to_kernel_sink(
        &net,
        &far,
        || TcpListener::bind(("10.77.0.2", 9001)),
        Duration::ZERO,
        "10.77.0.2:9001",
        8 * 1024 * 1024,
        &["--gateway", HOST_IP],
    );
    let mss: u32 = summary["snd_mss"].parse().unwrap();
    assert!(mss <= 1240, "MSS {mss} not lowered to the path MTU 1280");
    let unreach: u64 = exit["icmp_in_dest_unreachs"].parse().unwrap();
    assert!(unreach >= 1, "no ICMP fragmentation-needed reached ustack");
    // The router sent them: ustack's packets were too big for the 1280 link.
    let router = net.ns.nstat();
    assert!(
        router.get("IcmpOutDestUnreachs").copied().unwrap_or(0) >= 1,
        "{router:?}"
    );
}

/// A kernel receiver that stops reading: its window closes, ustack keeps the connection
/// alive with zero-window probes (RFC 9293 3.8.6.1), and when the application reads
/// again the window update restarts the transfer; everything arrives intact, well within
/// the time a stalled sender would take to give up.
#[test]
fn zero_window_from_a_kernel_receiver_then_resume() {
    require_root!();
    let net = TunNet::new("zwin");
    // Read nothing for 3 s: the 64 KiB receive buffer fills and the window closes.
    let (_, _, reading) = send_to_kernel_sink(
        &net,
        &net.ns,
        listener_with_small_rcvbuf,
        Duration::from_secs(3),
        &format!("{HOST_IP}:9002"),
        4 * 1024 * 1024,
        &[],
    );
    assert!(
        reading < Duration::from_secs(20),
        "resumed transfer took {reading:?}"
    );
    // The kernel saw its window close (it advertised zero) and open again.
    let st = net.ns.nstat();
    for key in ["TcpExtTCPToZeroWindowAdv", "TcpExtTCPFromZeroWindowAdv"] {
        assert!(st.get(key).copied().unwrap_or(0) >= 1, "{key}: {st:?}");
    }
}

/// A listener on HOST_IP:9002 whose accepted sockets have a 64 KiB receive buffer (set
/// before listen, so the window scale and buffer are small from the handshake on).
fn listener_with_small_rcvbuf() -> io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2)/setsockopt(2)/bind(2)/listen(2) calls on a new descriptor
    // owned by the returned listener; the sockaddr is fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let l = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let size: libc::c_int = 64 * 1024;
        for (opt, v) in [(libc::SO_REUSEADDR, &one), (libc::SO_RCVBUF, &size)] {
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        let host: std::net::Ipv4Addr = HOST_IP.parse().expect("HOST_IP");
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 9002u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(host).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
            || libc::listen(fd, 8) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(l)
    }
}

/// Keepalive against a live Linux peer: ustack probes an idle connection every second
/// after one idle second; the kernel answers each probe, so the connection survives five
/// idle seconds and then closes normally.
#[test]
fn keepalive_probes_answered_by_a_live_kernel_peer() {
    require_root!();
    let net = TunNet::new("kalive");
    let (_, exit, _) = send_to_kernel_sink(
        &net,
        &net.ns,
        || TcpListener::bind((HOST_IP, 9003)),
        Duration::ZERO,
        &format!("{HOST_IP}:9003"),
        0,
        &["--keepalive", "1", "--idle", "5"],
    );
    let probes: u64 = exit["keepalive_probes"].parse().unwrap();
    assert!(probes >= 2, "{probes} keepalive probes in 5 idle seconds");
}

/// Keepalive against a peer that went away: once the connection is up, the kernel side's
/// firewall drops everything ustack sends, so no probe is answered; after one idle second
/// and three unanswered probes a second apart the connection fails with a timeout instead
/// of hanging for the 30 idle seconds asked for.
#[test]
fn keepalive_detects_a_vanished_kernel_peer() {
    require_root!();
    require_tool!("iptables");
    let net = TunNet::new("kadead");
    let (release, held) = std::sync::mpsc::channel::<()>();
    let holder = net.ns.thread(move || -> Result<(), String> {
        let l = TcpListener::bind((HOST_IP, 9004)).map_err(|e| e.to_string())?;
        let (_s, _) = l.accept().map_err(|e| e.to_string())?;
        // Hold the connection (never close it) until the test is done.
        let _ = held.recv_timeout(Duration::from_secs(60));
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let client = stack_client(
        &net,
        "tcp_client",
        &[
            "--connect",
            &format!("{HOST_IP}:9004"),
            "--keepalive",
            "1",
            "--idle",
            "30",
            "--timeout",
            "60",
        ],
    );
    client.wait_for("connected", Duration::from_secs(10));
    net.ns
        .sh("iptables -I INPUT -i ust0 -p tcp --dport 9004 -j DROP");
    let t = Instant::now();
    let (ok, out) = client.wait(Duration::from_secs(40));
    let took = t.elapsed();
    println!("{out}");
    let _ = release.send(());
    holder.join().expect("holder thread").expect("holder");
    assert!(!ok, "tcp_client should fail on a dead peer");
    assert!(took < Duration::from_secs(15), "gave up after {took:?}");
    assert!(
        out.contains("Error: Connection timed out (os error 110)"),
        "no ETIMEDOUT error in the output"
    );
    let exit = kv(out
        .lines()
        .find(|l| l.contains("keepalive_probes="))
        .expect("exit line"));
    let probes: u64 = exit["keepalive_probes"].parse().unwrap();
    assert!(probes >= 3, "{probes} keepalive probes");
}

/// A Linux peer that aborts (`SO_LINGER` 0, then close: an RST) in the middle of a transfer:
/// ustack's client fails at once with `ConnectionReset` instead of sending on or hanging.
#[test]
fn kernel_peer_abort_resets_the_transfer() {
    require_root!();
    let net = TunNet::new("abort");
    let aborter = net.ns.thread(move || -> Result<u64, String> {
        let l = TcpListener::bind((HOST_IP, 9005)).map_err(|e| e.to_string())?;
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < 1024 * 1024 {
            let n = io::Read::read(&mut s, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: SO_LINGER reads one `struct linger` from the pointer; the descriptor is
        // the open stream's.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        drop(s);
        Ok(got)
    });
    std::thread::sleep(Duration::from_millis(200));
    let client = stack_client(
        &net,
        "tcp_client",
        &[
            "--connect",
            &format!("{HOST_IP}:9005"),
            "--send",
            &(256u64 * 1024 * 1024).to_string(),
            "--timeout",
            "60",
        ],
    );
    let t = Instant::now();
    let (ok, out) = client.wait(Duration::from_secs(70));
    let took = t.elapsed();
    println!("{out}");
    let got = aborter.join().expect("aborter thread").expect("aborter");
    assert!(
        got >= 1024 * 1024,
        "the kernel read {got} bytes before aborting"
    );
    assert!(!ok, "tcp_client should fail on a reset");
    assert!(
        out.contains("Error: Connection reset by peer (os error 104)"),
        "no ECONNRESET error in the output"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // The kernel sent the reset (TcpExtTCPAbortOnLinger or an RST out).
    let st = net.ns.nstat();
    assert!(st.get("TcpOutRsts").copied().unwrap_or(0) >= 1, "{st:?}");
}
