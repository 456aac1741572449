//! Issue 5, "Done when": one application suite runs against `tokio::net` (kernel loopback)
//! and against ustack (an in-memory link, and a TUN device in a namespace), with the same
//! observable results: echo, half-close, a 100 MiB transfer, 1,000 concurrent connections,
//! and the error kinds for refused, reset, timed out and address in use.
//!
//! The application is `parity_app/app.rs`: its checks are generic over a small `Net`
//! trait implemented for `tokio::net` and for `ustack::net`, and each check has a server
//! and a client role, each on its own `Net`. It is a separate little package (its own
//! workspace, built here with `cargo build --release --locked`), because this crate does
//! not depend on `ustack`. It runs four times:
//!
//! 1. `kernel`: both roles on `tokio::net` over the loopback of a fresh namespace;
//! 2. `memlink`: two ustack stacks on an in-memory `MemLink` pair (no root needed);
//! 3. `tun`, in a namespace with a TUN device (kernel 10.88.0.1, stack 10.88.0.2):
//!    ustack serves and the kernel is the client, then the kernel serves and ustack is
//!    the client.
//!
//! Every run must print exactly [`expected`], the kernel's behaviour. For the timed-out
//! check the connecting side gives up after one SYN retransmission (about 3 s): a kernel
//! socket with `TCP_SYNCNT = 1`, or a dedicated ustack stack with `TcpConfig::syn_retries = 1`
//! on an in-memory link nobody answers; every other check runs with default SYN retries.
//! The kernel-only namespace routes the unanswered address to a TUN device nobody reads.
//!
//! The binary's own limits bound each check (a check that runs out reports so, and the
//! run goes on); each run is also killed after [`RUN_LIMIT`] per suite. Namespaces are
//! deleted when their guards drop, also when an assertion fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ustack_integration_tests::{
    pattern_sha256, require_root, workspace_root, NetNs, Proc, TunNet, STATIC_TARGET,
};

/// The most a run may take per suite it holds (the sum of the app's check limits is
/// 390 s; a healthy suite takes about 10 s).
const RUN_LIMIT: Duration = Duration::from_secs(420);

/// What every suite must observe, in order: what the kernel does on both ends.
fn expected() -> Vec<String> {
    let sha = pattern_sha256(100 << 20);
    [
        r#"echo: "hello, parity", then 0 bytes after our FIN"#.to_string(),
        r#"half-close: reply "server saw EOF after 10 bytes" + 100001 more bytes, then EOF (0 bytes); server Ok"#.to_string(),
        format!("transfer 100 MiB: server received 104857600 bytes, sha256 {sha}, equal to the sender's: true"),
        "1000 concurrent: 1000/1000 echoed and closed cleanly, all open at once on the server: yes, errors {}".to_string(),
        "refused: Err(ConnectionRefused)".to_string(),
        "reset (linger 0): read Err(ConnectionReset), then write Err(BrokenPipe); server Ok".to_string(),
        "reset (unread data): read Err(ConnectionReset), then write Err(BrokenPipe); server Ok".to_string(),
        "timed out: Err(TimedOut), after about 3 s: yes".to_string(),
        "address in use: second bind Err(AddrInUse); bind to a foreign address Err(AddrNotAvailable)".to_string(),
    ]
    .into()
}

/// The `parity_app` binary, built once per test process: a static release build with the
/// same settings as the harness's example binaries (see `examples_dir`), so the two can
/// share a target directory. `USTACK_PARITY_APP` names a prebuilt binary instead.
fn app_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("USTACK_PARITY_APP") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let manifest = root.join("integration-tests/tests/parity_app/Cargo.toml");
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let start = Instant::now();
        eprintln!("building parity_app (static, release) ...");
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(&manifest)
            .args(["--target", STATIC_TARGET])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_PROFILE_RELEASE_LTO", "off")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(status.success(), "building parity_app failed");
        eprintln!("parity_app built in {:.1} s", start.elapsed().as_secs_f64());
        target_dir
            .join(STATIC_TARGET)
            .join("release")
            .join("parity_app")
    })
    .clone()
}

/// Waits for a run of the app and returns its suites: label -> observations. Panics (with
/// the run's output) when it fails, is killed at its limit, or does not finish.
fn suites(p: Proc, n_suites: u32) -> BTreeMap<String, Vec<String>> {
    let name = format!("parity_app (pid {})", p.pid());
    let (ok, out) = p.wait(RUN_LIMIT * n_suites);
    eprintln!("---- {name} ----\n{out}---- end of {name} ----");
    assert!(ok && out.contains("\nDONE"), "{name} failed:\n{out}");
    let mut all = BTreeMap::new();
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in out.lines() {
        if let Some(label) = line.strip_prefix("SUITE ") {
            cur = Some((label.to_string(), Vec::new()));
        } else if let Some(obs) = line.strip_prefix("RESULT ") {
            let (_, v) = cur.as_mut().expect("RESULT outside a suite");
            v.push(obs.to_string());
        } else if let Some(label) = line.strip_prefix("END ") {
            let (l, v) = cur.take().expect("END outside a suite");
            assert_eq!(l, label);
            all.insert(l, v);
        }
    }
    assert_eq!(all.len(), n_suites as usize, "{name}: suites {all:#?}");
    all
}

/// Asserts every suite observed exactly [`expected`]; on failure shows each difference.
fn assert_same(all: &BTreeMap<String, Vec<String>>) {
    let want = expected();
    let mut diffs = Vec::new();
    for (label, got) in all {
        for i in 0..want.len().max(got.len()) {
            let (w, g) = (want.get(i), got.get(i));
            if w != g {
                diffs.push(format!("[{label}]\n  kernel: {w:?}\n  got:    {g:?}"));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "observable results differ:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn same_app_same_results_on_kernel_loopback_memlink_and_tun() {
    let bin = app_bin();
    let mut all = BTreeMap::new();

    // (2) Two ustack stacks on a MemLink pair: no kernel networking, no root needed.
    let p = Proc::spawn("parity_app memlink", {
        let mut c = Command::new(&bin);
        c.arg("memlink");
        c
    });
    all.extend(suites(p, 1));
    assert_same(&all);

    require_root!();

    // (1) tokio::net on both ends, over the loopback of a fresh namespace. The timed-out
    // check's address (10.77.0.2) is routed to a TUN device nobody reads: SYNs vanish.
    let ns = NetNs::new("parkernel");
    ns.sh("ip tuntap add dev sil0 mode tun && \
         ip addr add 10.77.0.1/24 dev sil0 && ip link set sil0 up");
    let p = ns.spawn("parity_app kernel", &bin, &["kernel"]);
    all.extend(suites(p, 1));
    drop(ns);

    // (3) ustack on a TUN device in a namespace, the kernel (tokio::net, same namespace)
    // as its peer in both roles.
    let net = TunNet::new("partun");
    let p = net.ns.spawn("parity_app tun", &bin, &["tun", &net.tun]);
    all.extend(suites(p, 2));
    drop(net);

    for (label, obs) in &all {
        println!("[{label}]");
        for o in obs {
            println!("  {o}");
        }
    }
    assert_eq!(all.len(), 4, "suites: {:?}", all.keys().collect::<Vec<_>>());
    assert_same(&all);
}
