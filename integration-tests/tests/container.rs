//! Issue 6: the containerized demo. Builds the `FROM scratch` image from the repository's
//! `Containerfile` with the static `http_server`, runs it with podman (runc) inside a
//! namespace holding a TUN device, drives it with curl, then removes the image and the
//! namespace. Skipped (with the reason) when podman is absent, except under CI.

use std::process::Command;
use std::time::Duration;

use ustack_integration_tests::{
    examples_dir, pattern_sha256, require_root, require_tool, run, stack_cidr, workspace_root,
    Proc, TunNet, STACK_IP,
};

/// Removes the test's image (and a leftover container of that name) on drop.
struct ImageGuard {
    image: String,
    container: String,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["--runtime", "runc", "rm", "-f", &self.container])
            .output();
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

#[test]
fn containerized_http_server_serves_curl() {
    require_root!();
    require_tool!("podman");
    require_tool!("curl");
    let bins = examples_dir();
    let ctx = std::env::temp_dir().join(format!("ustack-ctx-{}", std::process::id()));
    std::fs::create_dir_all(&ctx).unwrap();
    for b in ["http_server", "echo_server"] {
        std::fs::copy(bins.join(b), ctx.join(b)).unwrap();
    }
    let tag = format!("{}", std::process::id());
    let guard = ImageGuard {
        image: format!("localhost/ustack-test:{tag}"),
        container: format!("ustack-test-{tag}"),
    };
    let containerfile = workspace_root().join("Containerfile");
    let built = run(Command::new("podman")
        .arg("build")
        .arg("-f")
        .arg(&containerfile)
        .args(["-t", &guard.image])
        .arg(&ctx));
    let _ = std::fs::remove_dir_all(&ctx);
    built.expect("podman build");

    let net = TunNet::new("podman");
    let netns = format!("ns:{}", net.ns.path().display());
    let addr = stack_cidr();
    let mut cmd = Command::new("podman");
    cmd.args([
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--name",
        &guard.container,
    ])
    .args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ])
    .args([
        "--device",
        "/dev/net/tun",
        "--cap-add",
        "NET_ADMIN",
        "--network",
        &netns,
    ])
    .arg(&guard.image)
    .args(["--tun", &net.tun, "--addr", &addr, "--port", "80"]);
    let server = Proc::spawn("podman run", cmd);
    server.wait_for("ready", Duration::from_secs(60));

    let page = net
        .ns
        .sh(&format!("curl -sS --fail --max-time 10 http://{STACK_IP}/"));
    assert!(page.contains("ustack"), "GET / from the container: {page}");
    let n = 8 * 1024 * 1024u64;
    let got = net.ns.sh(&format!(
        "set -o pipefail; curl -sS --fail --max-time 60 http://{STACK_IP}/bytes/{n} | sha256sum | cut -d' ' -f1"
    ));
    assert_eq!(got.trim(), pattern_sha256(n), "download from the container");

    let (_, log) = server.terminate(Duration::from_secs(15));
    println!("{log}");
    drop(guard);
    drop(net);
}
