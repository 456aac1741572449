//! Issue 6 under faults: the 50 MiB download arrives byte-identical (1) through a real
//! bottleneck, `tbf` at 100 Mbit/s on the TUN device and, through an ingress redirect, on
//! an `ifb` device for the other direction (congestion drops both ways; this kernel has no
//! netem), and (2) through the stack's own fault injector (`--loss 2 --reorder 5
//! --delay 10`).

use std::time::{Duration, Instant};

use ustack_integration_tests::{pattern_sha256, require_root, require_tool, TunNet, STACK_IP};

const N: u64 = 50 * 1024 * 1024;

fn download(net: &TunNet, timeout_s: u64) -> String {
    let start = Instant::now();
    let got = net.ns.sh(&format!(
        "set -o pipefail; curl -sS --fail --max-time {timeout_s} http://{STACK_IP}/bytes/{N} | sha256sum | cut -d' ' -f1"
    ));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "50 MiB download: {secs:.2} s, {:.1} Mbit/s",
        N as f64 * 8.0 / secs / 1e6
    );
    got.trim().to_string()
}

#[test]
fn download_through_tbf_bottleneck_both_ways() {
    require_root!();
    require_tool!("tc");
    require_tool!("curl");
    let net = TunNet::new("tbf");
    let tun = &net.tun;
    // Kernel -> stack (ACKs, requests): tbf on the TUN's egress. Stack -> kernel (the
    // data): the TUN's ingress is redirected to ifb0, whose egress has the same tbf.
    net.ns.sh(&format!(
        "ip link add ifb0 type ifb && ip link set ifb0 up && \
         tc qdisc add dev {tun} root tbf rate 100mbit burst 32kbit latency 20ms && \
         tc qdisc add dev {tun} handle ffff: ingress && \
         tc filter add dev {tun} parent ffff: protocol ip u32 match u32 0 0 action mirred egress redirect dev ifb0 && \
         tc qdisc add dev ifb0 root tbf rate 100mbit burst 32kbit latency 20ms"
    ));
    let server = net.stack("http_server", &["--port", "80"]);
    let got = download(&net, 120);
    let qd = net.ns.sh(&format!(
        "tc -s qdisc show dev ifb0; tc -s qdisc show dev {tun}"
    ));
    println!("{qd}");
    let stats = net
        .ns
        .sh(&format!("curl -sS --max-time 10 http://{STACK_IP}/stats"));
    println!("stack counters: {stats}");
    assert_eq!(
        got,
        pattern_sha256(N),
        "download through the bottleneck differs"
    );
    // The data really went through the ifb bottleneck.
    let sent: u64 = qd
        .lines()
        .find(|l| l.trim_start().starts_with("Sent"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(sent >= N, "ifb0 forwarded only {sent} bytes");
    let (ok, log) = server.terminate(Duration::from_secs(8));
    assert!(ok, "http_server did not exit cleanly:\n{log}");
}

#[test]
fn download_with_stack_loss_reorder_delay() {
    require_root!();
    require_tool!("curl");
    let net = TunNet::new("lossy");
    let server = net.stack(
        "http_server",
        &[
            "--port",
            "80",
            "--loss",
            "2",
            "--reorder",
            "5",
            "--delay",
            "10",
            "--seed",
            "42",
        ],
    );
    let got = download(&net, 240);
    let stats = net.ns.sh(&format!(
        "curl -sS --max-time 20 --retry 3 http://{STACK_IP}/stats"
    ));
    println!("stack counters: {stats}");
    assert_eq!(
        got,
        pattern_sha256(N),
        "download under loss/reorder/delay differs"
    );
    let (ok, log) = server.terminate(Duration::from_secs(8));
    assert!(ok, "http_server did not exit cleanly:\n{log}");
}
