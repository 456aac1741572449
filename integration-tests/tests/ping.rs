//! Issue 2: the kernel's `ping` reaches a ustack stack on a TUN device in a namespace.

use std::time::Duration;

use ustack_integration_tests::{require_root, require_tool, TunNet, STACK_IP};

#[test]
fn kernel_ping_gets_three_replies() {
    require_root!();
    require_tool!("ping");
    let net = TunNet::new("ping");
    let stack = net.stack("echo_server", &[]);
    let out = net.ns.sh_any(&format!("ping -c 3 -i 0.2 -W 2 {STACK_IP}"));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "ping failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 received"), "expected 3 replies: {text}");
    let (ok, log) = stack.terminate(Duration::from_secs(5));
    assert!(ok, "echo_server did not exit cleanly on SIGTERM:\n{log}");
}
