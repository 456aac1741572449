//! Issue 6: real kernel clients (curl, nc, socat) against ustack servers on a TUN device
//! in a namespace.

use std::time::Duration;

use ustack_integration_tests::{pattern_sha256, require_root, require_tool, TunNet, STACK_IP};

fn sha_of_file(net: &TunNet, path: &str) -> String {
    net.ns
        .sh(&format!("sha256sum {path} | cut -d' ' -f1"))
        .trim()
        .to_string()
}

#[test]
fn curl_pages_download_and_echo() {
    require_root!();
    require_tool!("curl");
    let net = TunNet::new("curl");
    let server = net.stack("http_server", &["--port", "80"]);
    let base = format!("http://{STACK_IP}");

    let page = net.ns.sh(&format!("curl -sS --fail --max-time 10 {base}/"));
    assert!(page.contains("ustack"), "GET / returned: {page}");

    let stats = net
        .ns
        .sh(&format!("curl -sS --fail --max-time 10 {base}/stats"));
    assert!(
        stats.starts_with('{') && stats.contains("\"tcp\"") && stats.contains("\"requests\""),
        "GET /stats: {stats}"
    );

    let missing = net.ns.sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {base}/nope"
    ));
    assert_eq!(missing.trim(), "404");

    // 50 MiB, hashed as it arrives and compared with the pattern computed here.
    let n: u64 = 50 * 1024 * 1024;
    let start = std::time::Instant::now();
    let got = net.ns.sh(&format!(
        "set -o pipefail; curl -sS --fail --max-time 120 {base}/bytes/{n} | sha256sum | cut -d' ' -f1"
    ));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "50 MiB download: {secs:.2} s, {:.1} Mbit/s",
        n as f64 * 8.0 / secs / 1e6
    );
    assert_eq!(got.trim(), pattern_sha256(n), "50 MiB download hash");

    // POST /echo with 1 MiB of random bytes.
    let file = format!("/tmp/{}.post", net.ns.name());
    net.ns.sh(&format!("head -c 1048576 /dev/urandom > {file}"));
    let want = sha_of_file(&net, &file);
    let got = net.ns.sh(&format!(
        "set -o pipefail; curl -sS --fail --max-time 30 --data-binary @{file} {base}/echo | sha256sum | cut -d' ' -f1; rm -f {file}"
    ));
    assert_eq!(got.trim(), want, "POST /echo body");

    let (ok, log) = server.terminate(Duration::from_secs(8));
    assert!(ok, "http_server did not exit cleanly:\n{log}");
}

#[test]
fn nc_and_socat_echo_discard_and_closed_port() {
    require_root!();
    require_tool!("nc");
    require_tool!("socat");
    let net = TunNet::new("echo");
    let server = net.stack("echo_server", &["--join", "239.1.2.3"]);

    let out = net.ns.sh(&format!(
        "printf 'hello ustack\\n' | nc -N -w 5 {STACK_IP} 7"
    ));
    assert_eq!(out, "hello ustack\n");

    // 4 MiB of random bytes through TCP echo.
    let file = format!("/tmp/{}.echo", net.ns.name());
    net.ns.sh(&format!("head -c 4194304 /dev/urandom > {file}"));
    let want = net.ns.sh(&format!("sha256sum < {file} | cut -d' ' -f1"));
    let got = net.ns.sh(&format!(
        "set -o pipefail; timeout 30 nc -N {STACK_IP} 7 < {file} | sha256sum | cut -d' ' -f1; rm -f {file}"
    ));
    assert_eq!(got, want, "4 MiB through TCP echo");

    // Discard: accepts and swallows, replies nothing.
    let out = net.ns.sh(&format!(
        "head -c 1048576 /dev/zero | timeout 20 nc -N {STACK_IP} 9 | wc -c"
    ));
    assert_eq!(out.trim(), "0");

    // UDP echo.
    let out = net.ns.sh(&format!(
        "printf 'datagram' | socat -t 3 - UDP4:{STACK_IP}:7"
    ));
    assert_eq!(out, "datagram");

    // UDP echo through the multicast group the server joined: the answer comes back by
    // unicast from the stack's address.
    net.ns
        .sh(&format!("ip route add 239.0.0.0/8 dev {}", net.tun));
    let out = net.ns.sh(
        "printf 'to the group' | timeout 5 socat -t 3 - UDP4-DATAGRAM:239.1.2.3:7,ip-multicast-if=10.88.0.1",
    );
    assert_eq!(out, "to the group");

    // A closed UDP port: ICMP port unreachable, which the kernel reports as ECONNREFUSED
    // to a connected UDP socket (socat exits non-zero).
    let udp_closed = net.ns.sh_any(&format!(
        "printf 'x' | timeout 5 socat -t 2 - UDP4:{STACK_IP}:1234; echo rc=$?"
    ));
    let text = String::from_utf8_lossy(&udp_closed.stdout).into_owned()
        + &String::from_utf8_lossy(&udp_closed.stderr);
    assert!(
        text.contains("Connection refused"),
        "closed UDP port: {text}"
    );

    // Any other port: refused (RST), at once.
    let refused = net
        .ns
        .sh_any(&format!("timeout 5 nc -z -w 3 {STACK_IP} 1234"));
    assert!(!refused.status.success(), "port 1234 should be closed");

    let (ok, log) = server.terminate(Duration::from_secs(5));
    assert!(ok, "echo_server did not exit cleanly:\n{log}");
}

/// Transparent mode (tun2socks-style): with a route sending 10.89.0.0/24 into the TUN,
/// kernel clients reach "any" address there; `echo_server --transparent` accepts the TCP
/// connections and receives the UDP datagrams for those foreign destinations and answers
/// in their name (the kernel's connected sockets accept only replies from the address
/// they sent to, so an echo proves the source address). The stack's own address works as
/// before.
#[test]
fn transparent_tcp_and_udp_answer_for_foreign_destinations() {
    require_root!();
    require_tool!("nc");
    require_tool!("socat");
    let net = TunNet::new("tproxy");
    net.ns
        .sh(&format!("ip route add 10.89.0.0/24 dev {}", net.tun));
    let server = net.stack("echo_server", &["--transparent"]);

    let out = net
        .ns
        .sh("printf 'datagram for .9' | socat -t 3 - UDP4:10.89.0.9:53");
    assert_eq!(out, "datagram for .9");
    let out = net
        .ns
        .sh("printf 'another port' | socat -t 3 - UDP4:10.89.0.200:5353");
    assert_eq!(out, "another port");
    let out = net
        .ns
        .sh("printf 'stream to .9\\n' | nc -N -w 5 10.89.0.9 80");
    assert_eq!(out, "stream to .9\n");
    // The stack's own address: its ordinary sockets, as before.
    let out = net.ns.sh(&format!(
        "printf 'own address' | socat -t 3 - UDP4:{STACK_IP}:7"
    ));
    assert_eq!(out, "own address");

    let (ok, log) = server.terminate(Duration::from_secs(5));
    assert!(ok, "echo_server did not exit cleanly:\n{log}");
}

/// `--offload` on the examples: the kernel hands http_server 64 KiB TCP super-segments
/// and http_server answers with its own (TSO); a 16 MiB upload is echoed back intact, and
/// the device carried packets larger than the MTU both ways.
#[test]
fn curl_upload_to_offload_tun() {
    require_root!();
    require_tool!("curl");
    let net = TunNet::new("curlgso");
    let server = net.stack("http_server", &["--port", "80", "--offload"]);
    let base = format!("http://{STACK_IP}");
    let file = format!("/tmp/{}.post", net.ns.name());
    net.ns
        .sh(&format!("head -c 16777216 /dev/urandom > {file}"));
    let want = sha_of_file(&net, &file);
    let got = net.ns.sh(&format!(
        "set -o pipefail; curl -sS --fail --max-time 60 --data-binary @{file} {base}/echo | sha256sum | cut -d' ' -f1; rm -f {file}"
    ));
    assert_eq!(got.trim(), want, "POST /echo body through the offload TUN");
    let stats = net
        .ns
        .sh(&format!("curl -sS --fail --max-time 10 {base}/stats"));
    // The device counters come first in the JSON (before the driver's own rx_packets).
    let pkts = first_number_after(&stats, "\"rx_packets\":");
    let bytes = first_number_after(&stats, "\"rx_bytes\":");
    assert!(
        pkts > 0 && bytes / pkts > 1500,
        "no super-segments arrived: {pkts} packets, {bytes} bytes; stats: {stats}"
    );
    let tx_pkts = first_number_after(&stats, "\"tx_packets\":");
    let tx_bytes = first_number_after(&stats, "\"tx_bytes\":");
    assert!(
        tx_pkts > 0 && tx_bytes / tx_pkts > 1500,
        "no super-segments sent: {tx_pkts} packets, {tx_bytes} bytes; stats: {stats}"
    );
    let (ok, log) = server.terminate(Duration::from_secs(8));
    assert!(ok, "http_server did not exit cleanly:\n{log}");
}

/// The number right after the first `key` in `text` (0 when missing).
fn first_number_after(text: &str, key: &str) -> u64 {
    text.find(key)
        .map(|i| &text[i + key.len()..])
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}
