//! Issue 6: `wrk` with 200 concurrent connections for 10 s against the ustack HTTP server:
//! zero socket errors, zero non-2xx responses.

use std::time::Duration;

use ustack_integration_tests::{require_root, require_tool, TunNet, STACK_IP};

/// Pulls a number out of wrk's output after `key` (e.g. "requests in").
fn count_before(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.contains(key))?;
    line.split_whitespace().next()?.parse().ok()
}

#[test]
fn wrk_200_connections_no_errors() {
    require_root!();
    require_tool!("wrk");
    let net = TunNet::new("wrk");
    let server = net.stack("http_server", &["--port", "80"]);
    // Let the kernel use its whole port range and reuse TIME_WAIT pairs, as a load box would.
    let out = net.ns.sh_any(&format!(
        "timeout 40 wrk -t 2 -c 200 -d 10s --timeout 5s http://{STACK_IP}/"
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wrk failed");
    let requests = count_before(&text, "requests in").unwrap_or(0);
    assert!(requests > 1000, "too few requests: {requests}");
    assert!(
        !text.contains("Socket errors"),
        "socket errors reported:\n{text}"
    );
    assert!(!text.contains("Non-2xx"), "non-2xx responses:\n{text}");
    let (ok, log) = server.terminate(Duration::from_secs(10));
    assert!(ok, "http_server did not exit cleanly:\n{log}");
}
