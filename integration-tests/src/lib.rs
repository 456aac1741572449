//! Test harness for ustack's kernel-peer tests: network namespaces, TUN devices, the
//! example programs as the ustack side, real kernel clients and servers as the other.
//!
//! - [`NetNs`]: a network namespace with a unique name, deleted on drop (also when the test
//!   panics); commands and threads run inside it.
//! - [`TunNet`]: a namespace with a persistent TUN device whose kernel side has
//!   [`HOST_IP`]; a ustack example attaches to it with [`TunNet::stack`].
//! - [`Proc`]: a child process we started, stdout/stderr collected, killed by PID on drop.
//! - [`example_bin`]: the example binaries, built once per test process as static release
//!   binaries (the same build the demo and the container use).
//! - [`pcap`]: a reader for the captures the stack writes with `--pcap`.
//! - [`packet::PacketSocket`]: raw IPv4 packets into a TUN device, and captures of it.
//!
//! Every test calls [`require_root!`] first: without root it prints
//! `skipped: needs root (network namespaces)` and returns; under `CI=true` it fails.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod packet;
pub mod pcap;

/// The kernel side's address on every test TUN device.
pub const HOST_IP: &str = "10.88.0.1";
/// The ustack side's address on every test TUN device.
pub const STACK_IP: &str = "10.88.0.2";
/// The prefix length of the test subnet.
pub const PREFIX: u8 = 24;

/// The ustack side's address with its prefix (`10.88.0.2/24`), as the examples' `--addr`
/// and `StackBuilder::addr` take it.
pub fn stack_cidr() -> String {
    format!("{STACK_IP}/{PREFIX}")
}

/// True when running as root. Otherwise prints why the test is skipped and returns
/// false, or panics when `CI=true` (CI must run these tests).
pub fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("needs root (network namespaces), and CI=true: refusing to skip");
    }
    println!("skipped: needs root (network namespaces)");
    false
}

/// Returns from the test early (printing why) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::have_root() {
            return;
        }
    };
}

/// True when `prog` is on the PATH.
pub fn have_tool(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns from the test early when a tool is missing (fails under `CI=true`).
#[macro_export]
macro_rules! require_tool {
    ($prog:expr) => {
        if !$crate::have_tool($prog) {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{} is not installed (see .ci/packages.txt)", $prog);
            }
            println!("skipped: {} is not installed", $prog);
            return;
        }
    };
}

/// Runs a command, returning its output; an error when it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// Runs `bash -c script` (in the root namespace), panicking with its output on failure.
pub fn sh(script: &str) -> String {
    let out = run(Command::new("bash").arg("-c").arg(script)).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace made for one test, deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `ust-TAG-PID-N` with its loopback up. First removes namespaces of this
    /// naming scheme left by test processes that no longer exist (killed before their
    /// guards could run).
    pub fn new(tag: &str) -> NetNs {
        sweep_stale_namespaces();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let name = format!("ust-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name])).unwrap_or_else(|e| panic!("{e}"));
        let ns = NetNs { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that runs `prog` inside the namespace (`ip netns exec NAME prog`).
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// Runs `bash -c script` inside the namespace; panics with its output on failure.
    pub fn sh(&self, script: &str) -> String {
        let out = run(self.cmd("bash").arg("-c").arg(script))
            .unwrap_or_else(|e| panic!("in {}: {e}", self.name));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`sh`](Self::sh), but returns the output whatever the exit status.
    pub fn sh_any(&self, script: &str) -> Output {
        self.cmd("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash: {e}"))
    }

    /// Starts a process inside the namespace (see [`Proc`]).
    pub fn spawn(&self, name: &str, prog: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Proc {
        let mut c = self.cmd(prog);
        c.args(args);
        Proc::spawn(name, c)
    }

    /// Runs `f` on a new thread that has entered the namespace (setns(2)), so the kernel
    /// sockets it opens live there. Returns the thread's handle.
    pub fn thread<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file =
            File::open(self.path()).unwrap_or_else(|e| panic!("open {:?}: {e}", self.path()));
        std::thread::spawn(move || {
            // SAFETY: setns on a valid namespace fd; CLONE_NEWNET moves only this thread
            // (network namespaces are per thread), which then runs `f` and ends.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns failed: {}", io::Error::last_os_error());
            drop(file);
            f()
        })
    }

    /// Runs `f` inside the namespace and waits for it.
    pub fn within<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.thread(f).join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Kernel counters of the namespace (`nstat -asz`: /proc/net/snmp and netstat).
    pub fn nstat(&self) -> HashMap<String, u64> {
        let out = self.sh("nstat -asz 2>/dev/null || true");
        out.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let k = it.next()?;
                let v = it.next()?.parse().ok()?;
                Some((k.to_string(), v))
            })
            .collect()
    }
}

/// Deletes `ust-*-PID-N` namespaces whose creating process is gone and that hold no
/// process. Only names of this harness's scheme are touched.
fn sweep_stale_namespaces() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.split('-').collect();
            let ["ust", _, pid, n] = parts[..] else {
                continue;
            };
            let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u32>()) else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let pids = Command::new("ip").args(["netns", "pids", &name]).output();
            if pids.is_ok_and(|o| o.status.success() && o.stdout.is_empty()) {
                eprintln!("removing stale namespace {name} (its test process {pid} is gone)");
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    });
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A namespace with a persistent TUN device `ust0`: kernel side [`HOST_IP`]/24, link up.
/// The ustack side (an example binary) attaches to it with address [`STACK_IP`]/24.
#[derive(Debug)]
pub struct TunNet {
    /// The namespace (dropped last).
    pub ns: NetNs,
    /// The TUN device's name inside the namespace.
    pub tun: String,
}

impl TunNet {
    /// Creates the namespace and the TUN device (MTU 1500).
    pub fn new(tag: &str) -> TunNet {
        Self::with_mtu(tag, 1500)
    }

    /// Creates the namespace and the TUN device with the given MTU.
    pub fn with_mtu(tag: &str, mtu: u32) -> TunNet {
        let ns = NetNs::new(tag);
        let tun = "ust0".to_string();
        ns.sh(&format!(
            "ip tuntap add dev {tun} mode tun && ip link set {tun} mtu {mtu} && \
             ip addr add {HOST_IP}/{PREFIX} dev {tun} && ip link set {tun} up"
        ));
        TunNet { ns, tun }
    }

    /// Starts example `bin` on the TUN device with the stack's address, plus `args`, and
    /// waits until it prints its `ready` line.
    pub fn stack(&self, bin: &str, args: &[&str]) -> Proc {
        let stack_addr = stack_cidr();
        let mut all = vec!["--tun", &self.tun, "--addr", &stack_addr];
        all.extend_from_slice(args);
        let p = self.ns.spawn(bin, example_bin(bin), &all);
        p.wait_for("ready", Duration::from_secs(20));
        p
    }
}

/// Runs `f(tun)` inside the namespace of `net` on a current-thread tokio runtime (where a
/// ustack `Stack` can attach to the TUN device), with a 90 s limit.
pub fn block_on_in<T, F, Fut>(net: &TunNet, f: F) -> Result<T, String>
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
    T: Send + 'static,
{
    let tun = net.tun.clone();
    net.ns.within(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(90), f(tun))
                .await
                .map_err(|_| "timed out".to_string())?
        })
    })
}

#[derive(Debug, Default)]
struct Captured {
    text: String,
    closed: usize,
}

/// A child process started by a test. Its stdout and stderr are collected (and echoed to
/// the test's output on drop); on drop it gets SIGTERM, then SIGKILL after 3 s, by PID.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    out: Arc<(Mutex<Captured>, Condvar)>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout/stderr.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of
        // ours; it makes the kernel send SIGTERM to the child if this test process dies
        // (e.g. killed by a timeout) before the guard's Drop could stop it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let out = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for s in streams {
            let out = out.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*out;
                    let mut c = m.lock().unwrap_or_else(|e| e.into_inner());
                    c.text.push_str(&line);
                    c.text.push('\n');
                    cv.notify_all();
                }
                let (m, cv) = &*out;
                m.lock().unwrap_or_else(|e| e.into_inner()).closed += 1;
                cv.notify_all();
            }));
        }
        Proc {
            name: name.to_string(),
            child: Some(child),
            out,
            readers,
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Everything the process printed so far (stdout and stderr interleaved by line).
    pub fn output(&self) -> String {
        self.out
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .text
            .clone()
    }

    /// Waits until the output contains `needle`; panics (with the output) on timeout or
    /// when the process exits first.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut c = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if c.text.contains(needle) {
                return c.text.clone();
            }
            let now = Instant::now();
            if c.closed == 2 || now >= deadline {
                let why = if c.closed == 2 { "exited" } else { "timed out" };
                panic!(
                    "{}: {why} before printing {needle:?}; output:\n{}",
                    self.name, c.text
                );
            }
            c = cv
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for the process to exit (killing it after `timeout`), returning its exit
    /// status success and its whole output.
    pub fn wait(mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        let mut ok = false;
        if let Some(child) = self.child.as_mut() {
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        ok = st.success();
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        eprintln!("{}: still running after {timeout:?}; killing it", self.name);
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.child = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (ok, self.output())
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; true when it exited 0.
    pub fn terminate(self, timeout: Duration) -> (bool, String) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the PID of a child we started and have not reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        self.wait(timeout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(None) = c.try_wait() {
                // SAFETY: kill(2) on the PID of a child we started and have not reaped.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
            }
            let _ = c.wait();
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
            let text = self.output();
            if !text.is_empty() {
                eprintln!(
                    "---- output of {} ----\n{text}---- end of {} ----",
                    self.name, self.name
                );
            }
        }
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The Rust target triple the static binaries are built for.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The directory holding the static release example binaries, building them once per
/// test process (`cargo build --release -p ustack-examples --target x86_64-unknown-linux-gnu`
/// with `-C target-feature=+crt-static`, without LTO: the build `scripts/demo.sh` makes too,
/// so the two share it).
/// `USTACK_EXAMPLES_DIR` points at prebuilt binaries instead.
pub fn examples_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(d) = std::env::var("USTACK_EXAMPLES_DIR") {
            return PathBuf::from(d);
        }
        let root = workspace_root();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let start = Instant::now();
        eprintln!("building the example binaries (static, release) ...");
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "ustack-examples",
                "--bins",
                "--target",
                STATIC_TARGET,
            ])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            // No LTO and no debug info: the link of each binary is what takes the time on a
            // small machine, and these builds test behaviour, not speed.
            .env("CARGO_PROFILE_RELEASE_LTO", "off")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(status.success(), "building the examples failed");
        eprintln!("examples built in {:.1} s", start.elapsed().as_secs_f64());
        target_dir.join(STATIC_TARGET).join("release")
    })
    .clone()
}

/// The path of example binary `name` (built on first use, see [`examples_dir`]).
pub fn example_bin(name: &str) -> PathBuf {
    let p = examples_dir().join(name);
    assert!(p.exists(), "{} does not exist", p.display());
    p
}

/// Byte `i` of the test pattern.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// Fills `buf` with the pattern starting at stream offset `off`.
pub fn fill_pattern(buf: &mut [u8], off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(off + i as u64);
    }
}

/// Writes the first `n` bytes of the pattern to `w`.
pub fn write_pattern(w: &mut impl io::Write, n: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < n {
        let k = (n - off).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..k], off);
        w.write_all(&buf[..k])?;
        off += k as u64;
    }
    Ok(())
}

/// Reads `r` to EOF; returns the byte count and whether every byte matched the pattern.
pub fn read_pattern(r: &mut impl Read) -> io::Result<(u64, bool)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut ok = true;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok((total, ok));
        }
        ok &= buf[..k]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(total + i as u64));
        total += k as u64;
    }
}

/// SHA-256 (hex) of the first `n` bytes of the pattern, computed locally.
pub fn pattern_sha256(n: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 251 * 256];
    fill_pattern(&mut buf, 0);
    let mut left = n;
    while left > 0 {
        // The buffer is a whole number of periods, so every chunk starts at phase 0.
        let k = left.min(buf.len() as u64) as usize;
        h.update(&buf[..k]);
        left -= k as u64;
    }
    hex(&h.finalize())
}

/// SHA-256 (hex) of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses `key=value` pairs out of a line such as tcp_client's summary.
pub fn kv(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_hash_matches_direct() {
        for n in [0u64, 1, 250, 251, 252, 100_000] {
            let mut v = vec![0u8; n as usize];
            fill_pattern(&mut v, 0);
            assert_eq!(pattern_sha256(n), sha256(&v), "n={n}");
        }
    }

    #[test]
    fn kv_parses() {
        let m = kv("tcp_client: sent=5 received=7 sha256=ab");
        assert_eq!(m["sent"], "5");
        assert_eq!(m["sha256"], "ab");
    }
}
