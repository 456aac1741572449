//! Issues 3 and 4 with the Linux kernel as the peer, over TUN in a namespace:
//! - a kernel client connects to a ustack listener, and ustack connects to a kernel
//!   listener; data flows both ways; both sides close cleanly (no RST on the wire or in
//!   the kernel's counters; `ss` shows the expected end state);
//! - the handshakes in both directions carry window scaling, SACK-permitted and
//!   timestamps (checked in the pcap the stack writes).

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use ustack_integration_tests::pcap::{self, flags, Segment};
use ustack_integration_tests::{
    example_bin, kv, read_pattern, require_root, stack_cidr, write_pattern, Proc, TunNet, HOST_IP,
    STACK_IP,
};

const N: u64 = 2 * 1024 * 1024;

fn pcap_path(net: &TunNet) -> PathBuf {
    std::env::temp_dir().join(format!("{}.pcap", net.ns.name()))
}

/// The kernel's counters that would show a reset or an abort: all must be zero.
fn assert_no_kernel_resets(net: &TunNet) {
    let c = net.ns.nstat();
    let bad: Vec<_> = [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpAttemptFails",
        "TcpExtTCPAbortOnData",
        "TcpExtTCPAbortOnClose",
        "TcpExtTCPAbortOnTimeout",
        "TcpExtTCPAbortOnLinger",
    ]
    .iter()
    .filter_map(|k| c.get(*k).filter(|v| **v > 0).map(|v| format!("{k}={v}")))
    .collect();
    assert!(
        bad.is_empty(),
        "kernel counters show resets/aborts: {bad:?}"
    );
    assert!(
        c.get("TcpActiveOpens").copied().unwrap_or(0)
            + c.get("TcpPassiveOpens").copied().unwrap_or(0)
            >= 1
    );
}

/// Checks the handshake's SYN (sent by `client`) and SYN-ACK (by the other side) both
/// carry window scale, SACK-permitted and timestamps; no RST anywhere; FIN both ways.
fn check_capture(segs: &[Segment], client: &str, server_port: u16) {
    let client: std::net::Ipv4Addr = client.parse().unwrap();
    let conn: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.dport == server_port || s.sport == server_port)
        .collect();
    assert!(
        !conn.is_empty(),
        "no segments of port {server_port} captured"
    );
    let syn = conn
        .iter()
        .find(|s| s.is_syn() && s.src == client)
        .expect("SYN in capture");
    let synack = conn
        .iter()
        .find(|s| s.is_synack() && s.dst == client)
        .expect("SYN-ACK in capture");
    for (what, s) in [("SYN", syn), ("SYN-ACK", synack)] {
        println!(
            "{what} {}:{} -> {}:{}: mss {:?} wscale {:?} sack_permitted {} timestamps {}",
            s.src, s.sport, s.dst, s.dport, s.mss, s.wscale, s.sack_permitted, s.timestamps
        );
        assert!(s.wscale.is_some(), "{what} lacks window scale: {s:?}");
        assert!(s.sack_permitted, "{what} lacks SACK-permitted: {s:?}");
        assert!(s.timestamps, "{what} lacks timestamps: {s:?}");
        assert!(s.mss.is_some(), "{what} lacks MSS: {s:?}");
    }
    // After the handshake both sides keep sending timestamps (RFC 7323 section 3.2).
    assert!(
        conn.iter()
            .filter(|s| !s.has(flags::SYN))
            .all(|s| s.timestamps),
        "a segment without timestamps"
    );
    let rsts: Vec<_> = conn.iter().filter(|s| s.has(flags::RST)).collect();
    assert!(rsts.is_empty(), "RST on the wire: {rsts:?}");
    assert!(
        conn.iter().any(|s| s.has(flags::FIN) && s.src == client),
        "no FIN from the client"
    );
    assert!(
        conn.iter().any(|s| s.has(flags::FIN) && s.dst == client),
        "no FIN from the server"
    );
}

#[test]
fn kernel_client_to_ustack_listener() {
    require_root!();
    let net = TunNet::new("kcli");
    let cap = pcap_path(&net);
    let cap_s = cap.display().to_string();
    let server = net.stack("echo_server", &["--pcap", &cap_s]);

    // Kernel client: send N bytes while reading the echo, half-close, read to EOF, close.
    let result = net
        .ns
        .within(move || -> std::io::Result<(u64, bool, String)> {
            let mut s = TcpStream::connect_timeout(
                &format!("{STACK_IP}:7").parse().unwrap(),
                Duration::from_secs(5),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            let local = s.local_addr()?.to_string();
            let mut w = s.try_clone()?;
            let writer = std::thread::spawn(move || -> std::io::Result<()> {
                write_pattern(&mut w, N)?;
                w.shutdown(Shutdown::Write)
            });
            let (n, ok) = read_pattern(&mut s)?;
            writer.join().expect("writer thread")?;
            drop(s);
            Ok((n, ok, local))
        });
    let (n, ok, local) = result.expect("kernel client");
    assert_eq!(n, N, "echoed bytes");
    assert!(ok, "echoed data corrupted");

    std::thread::sleep(Duration::from_millis(500));
    // The kernel closed first (its FIN went out before the server's): TIME-WAIT is its.
    let ss = net.ns.sh("ss -tanH");
    println!("ss -tan in the namespace:\n{ss}");
    let mine: Vec<&str> = ss.lines().filter(|l| l.contains(&local)).collect();
    assert!(
        mine.iter().all(|l| l.starts_with("TIME-WAIT")),
        "kernel socket not in TIME-WAIT: {mine:?}"
    );
    assert!(
        !mine.is_empty(),
        "kernel socket {local} gone (expected TIME-WAIT)"
    );
    assert_no_kernel_resets(&net);

    let (clean, log) = server.terminate(Duration::from_secs(5));
    assert!(clean, "echo_server did not exit cleanly:\n{log}");
    let segs = pcap::read_tcp(&cap).expect("read pcap");
    let _ = std::fs::remove_file(&cap);
    check_capture(&segs, HOST_IP, 7);
}

#[test]
fn ustack_client_to_kernel_listener() {
    require_root!();
    let net = TunNet::new("ksrv");
    let cap = pcap_path(&net);
    let cap_s = cap.display().to_string();

    // Kernel server: read to EOF, then send N bytes and close.
    let server = net.ns.thread(move || -> std::io::Result<(u64, bool)> {
        let l = TcpListener::bind((HOST_IP, 9002))?;
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let (n, ok) = read_pattern(&mut s)?;
        write_pattern(&mut s, N)?;
        drop(s);
        Ok((n, ok))
    });
    std::thread::sleep(Duration::from_millis(200));
    let addr = stack_cidr();
    let mut cmd = net.ns.cmd(example_bin("tcp_client"));
    cmd.args([
        "--tun",
        &net.tun,
        "--addr",
        &addr,
        "--pcap",
        &cap_s,
        "--linger-ms",
        "1000",
    ]);
    cmd.args([
        "--connect",
        &format!("{HOST_IP}:9002"),
        "--send",
        &N.to_string(),
        "--timeout",
        "30",
    ]);
    let (ok, out) = Proc::spawn("tcp_client", cmd).wait(Duration::from_secs(60));
    println!("{out}");
    assert!(ok, "tcp_client failed");
    let (got, intact) = server
        .join()
        .expect("server thread")
        .expect("kernel server");
    assert_eq!(got, N, "kernel received");
    assert!(intact, "kernel received corrupted data");
    let line = out
        .lines()
        .find(|l| l.contains("sent="))
        .expect("summary line");
    let m = kv(line);
    assert_eq!(m["received"], N.to_string());
    assert_eq!(m["pattern_ok"], "true");
    // ustack closed first, so its end of the connection is the one in TIME_WAIT.
    assert!(
        out.contains("connections tracked at exit=1"),
        "ustack should hold the connection in TIME_WAIT"
    );

    // ustack closed first: the kernel went CLOSE-WAIT -> LAST-ACK -> closed, nothing left.
    let ss = net.ns.sh("ss -tanH");
    println!("ss -tan in the namespace:\n{ss}");
    assert!(
        !ss.lines()
            .any(|l| l.contains(":9002") && !l.starts_with("LISTEN")),
        "kernel socket left: {ss}"
    );
    assert_no_kernel_resets(&net);

    let segs = pcap::read_tcp(&cap).expect("read pcap");
    let _ = std::fs::remove_file(&cap);
    check_capture(&segs, STACK_IP, 9002);
}
