//! Shared pieces of the ustack example programs: the command-line flags every example
//! takes (device, address, faults, capture), building a [`Stack`] from them, logging with
//! `RUST_LOG`, shutdown on SIGINT/SIGTERM, and the `i % 251` test pattern.
//!
//! Each example is a binary in `src/bin/`; run one with `--help` to see its flags.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use ustack::Stack;
use ustack_ipv4::Ipv4Cidr;
use ustack_netdev::fault::FaultConfig;
use ustack_netdev::tun::TunOptions;

/// The flags every example takes to set up its stack on a TUN device.
#[derive(Args, Debug, Clone)]
pub struct StackArgs {
    /// TUN device to attach to (created when it does not exist; needs CAP_NET_ADMIN).
    #[arg(long, default_value = "tun0")]
    pub tun: String,
    /// The stack's own address with its prefix.
    #[arg(long, default_value = "10.0.0.2/24")]
    pub addr: Ipv4Cidr,
    /// Default gateway (optional).
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// DNS server for host names (port 53; may be repeated). Resolution goes through the
    /// stack itself.
    #[arg(long)]
    pub dns: Vec<Ipv4Addr>,
    /// Hosts file for fixed names, answered without DNS (e.g. /etc/hosts).
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// resolv.conf file for DNS servers, search domains and options (e.g.
    /// /etc/resolv.conf; its servers must be reachable through the stack's network).
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<PathBuf>,
    /// Device MTU.
    #[arg(long)]
    pub mtu: Option<usize>,
    /// Write every packet the stack sends and receives to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// When the TUN device is created here: the kernel side's address (link is brought up).
    #[arg(long)]
    pub host_addr: Option<Ipv4Cidr>,
    /// TUN offload: the kernel hands over TCP super-segments of up to 64 KiB with partial
    /// checksums (IFF_VNET_HDR, TUN_F_CSUM | TUN_F_TSO4), and ustack sends its own (TSO).
    #[arg(long)]
    pub offload: bool,
    /// Read the TUN/TAP device on a thread of its own (TunOptions::rx_thread): more
    /// receive throughput where a second CPU is free, a little more latency. Not with
    /// --offload.
    #[arg(long, conflicts_with = "offload")]
    pub rx_thread: bool,
    /// The device is a TAP (Ethernet frames; created as one when it does not exist):
    /// ustack answers and sends ARP on it.
    #[arg(long)]
    pub tap: bool,
    /// ustack's Ethernet address on a --tap device (default: 02:00 and the four bytes of
    /// --addr; with --dhcp, locally administered and derived from the host name and the
    /// device name, so that the same host keeps its lease and two hosts do not collide).
    #[arg(long, value_name = "MAC", requires = "tap")]
    pub mac: Option<ustack::MacAddr>,
    /// Take the address, default gateway and DNS servers from a DHCP server on the --tap
    /// device instead of --addr and --gateway (the lease is kept while the program runs).
    #[arg(long, requires = "tap")]
    pub dhcp: bool,
    /// With --dhcp: keep the lease in this file and, after a restart, ask for the same
    /// address again at once (INIT-REBOOT) while the lease lasts.
    #[arg(long, value_name = "FILE", requires = "dhcp")]
    pub dhcp_lease_file: Option<std::path::PathBuf>,
    /// ECN (RFC 3168): `accept` uses it when the peer asks (the default, as Linux's
    /// `tcp_ecn = 2`), `request` also asks for it on connections this stack opens, `off`
    /// never uses it.
    #[arg(long, value_enum, default_value_t = Ecn::Accept)]
    pub ecn: Ecn,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// `--ecn` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ecn {
    /// Never.
    Off,
    /// When the peer asks.
    Accept,
    /// Ask, and accept.
    Request,
}

impl From<Ecn> for ustack::EcnMode {
    fn from(e: Ecn) -> Self {
        match e {
            Ecn::Off => ustack::EcnMode::Off,
            Ecn::Accept => ustack::EcnMode::Accept,
            Ecn::Request => ustack::EcnMode::Request,
        }
    }
}

/// Fault injection through the stack's fault-injecting device wrapper (each direction).
#[derive(Args, Debug, Clone, Default)]
pub struct FaultArgs {
    /// Percentage of packets dropped in each direction (e.g. 2 = 2%).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Percentage of packets reordered.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Milliseconds a reordered packet is held back (then everything sent meanwhile
    /// overtakes it); 0: it is released right after the next packet.
    #[arg(long, default_value_t = 0)]
    pub reorder_ms: u64,
    /// Percentage of packets duplicated.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// Delay added to every packet, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay: u64,
    /// Uniform jitter around `--delay`, in milliseconds (packets overtake each other).
    #[arg(long, default_value_t = 0)]
    pub jitter: u64,
    /// Seed of the fault injector's random generator (same seed, same faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl FaultArgs {
    /// The fault configuration, or `None` when no fault was asked for.
    pub fn config(&self) -> Option<FaultConfig> {
        let pct = |p: f64| (p / 100.0).clamp(0.0, 1.0);
        if self.loss <= 0.0
            && self.reorder <= 0.0
            && self.duplicate <= 0.0
            && self.delay == 0
            && self.jitter == 0
        {
            return None;
        }
        Some(FaultConfig {
            loss: pct(self.loss),
            reorder: pct(self.reorder),
            reorder_delay: Duration::from_millis(self.reorder_ms),
            duplicate: pct(self.duplicate),
            delay: Duration::from_millis(self.delay),
            jitter: Duration::from_millis(self.jitter),
            seed: self.seed,
            ..FaultConfig::default()
        })
    }
}

impl StackArgs {
    /// The device options: `--tun`, `--mtu`, `--host-addr`, `--offload`, `--rx-thread`,
    /// `--tap`, `--mac`.
    pub fn tun_options(&self) -> TunOptions {
        TunOptions {
            name: self.tun.clone(),
            mtu: self.mtu,
            host_addr: self.host_addr.map(|c| (c.addr(), c.prefix_len())),
            up: true,
            offload: self.offload,
            tap: self
                .tap
                .then(|| self.mac.unwrap_or_else(|| self.default_mac())),
            rx_thread: self.rx_thread,
        }
    }

    /// The `--mac` default (see its help).
    fn default_mac(&self) -> ustack::MacAddr {
        if self.dhcp {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            // FNV-1a: the same host and device give the same address on every run and
            // with every toolchain.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in host.trim().bytes().chain([0]).chain(self.tun.bytes()) {
                h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            let b = h.to_be_bytes();
            // Locally administered, unicast.
            return ustack::MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]);
        }
        let a = self.addr.addr().octets();
        ustack::MacAddr([0x02, 0x00, a[0], a[1], a[2], a[3]])
    }

    /// The address the stack answers on: the DHCP lease's with `--dhcp`, else `--addr`.
    pub fn own_addr(&self, stack: &Stack) -> Ipv4Addr {
        match stack.addresses().first() {
            Some((_, a)) if self.dhcp => a.addr(),
            _ => self.addr.addr(),
        }
    }

    /// Builds the stack: the TUN device (with faults and capture when asked), the address
    /// and the default route. Installs it as the process-wide default stack.
    pub async fn build(&self) -> std::io::Result<Stack> {
        let opts = self.tun_options();
        let tcp = ustack::TcpConfig {
            ecn: self.ecn.into(),
            ..ustack::TcpConfig::default()
        };
        let mut b = Stack::builder().tun_with(opts).tcp_config(tcp);
        if !self.dhcp {
            b = b.addr(self.addr);
        }
        if let Some(mtu) = self.mtu {
            b = b.mtu(mtu);
        }
        // Faults first, capture outside them: the pcap shows what the stack itself sent
        // and received.
        if let Some(cfg) = self.faults.config() {
            b = b.fault(cfg);
        }
        if let Some(p) = &self.pcap {
            b = b.pcap(p.clone());
        }
        if let Some(gw) = self.gateway {
            b = b.gateway(gw);
        }
        for server in &self.dns {
            b = b.dns(*server);
        }
        if let Some(h) = &self.hosts {
            b = b.hosts_file(h);
        }
        if let Some(r) = &self.resolv_conf {
            b = b.resolv_conf(r);
        }
        let stack = b.build().await?;
        if self.dhcp {
            let client = stack
                .dhcp(
                    &self.tun,
                    ustack::dhcp::DhcpConfig {
                        lease_file: self.dhcp_lease_file.clone(),
                        ..Default::default()
                    },
                )
                .await?;
            if let Some(l) = client.lease() {
                tracing::info!(
                    "dhcp lease {} from {} (routers {:?}, dns {:?}, {:?})",
                    l.addr,
                    l.server,
                    l.routers,
                    l.dns,
                    l.lease_time
                );
            }
            // Kept (and renewed) for the rest of the process.
            let _ = DHCP_CLIENT.set(client);
        }
        stack.set_default();
        Ok(stack)
    }
}

/// The DHCP client of `--dhcp`, held for the life of the process.
static DHCP_CLIENT: std::sync::OnceLock<ustack::dhcp::DhcpClient> = std::sync::OnceLock::new();

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG`
/// (default: `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

/// The modulus of the test pattern: byte `i` of a pattern stream is `i % 251` (a prime,
/// so the pattern does not line up with packet or buffer sizes).
pub const PATTERN_MOD: usize = 251;

/// A buffer of the pattern long enough to slice any chunk of up to `max_chunk` bytes
/// starting at any offset: `pattern_chunk(&buf, offset, len)` is zero-copy.
pub fn pattern_buffer(max_chunk: usize) -> Bytes {
    let len = max_chunk + PATTERN_MOD;
    Bytes::from(
        (0..len)
            .map(|i| (i % PATTERN_MOD) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// The `len` bytes of the pattern starting at stream offset `offset`, sliced from a buffer
/// made by [`pattern_buffer`] (`len` must not exceed its `max_chunk`).
pub fn pattern_chunk(buf: &Bytes, offset: u64, len: usize) -> Bytes {
    let start = (offset % PATTERN_MOD as u64) as usize;
    buf.slice(start..start + len)
}

/// Fills `out` with the pattern starting at stream offset `offset`.
pub fn fill_pattern(out: &mut [u8], offset: u64) {
    let mut v = (offset % PATTERN_MOD as u64) as usize;
    for b in out {
        *b = v as u8;
        v += 1;
        if v == PATTERN_MOD {
            v = 0;
        }
    }
}

/// Flattens a JSON value into `("a.b.c", value)` pairs (numbers, strings, bools), in
/// document order; used to print and render the stack's counters.
pub fn flatten_json(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    // Devices are a list of {name, stats}: name them by their name.
                    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_string);
                    let key = match name {
                        Some(n) => format!("{prefix}.{n}"),
                        None => format!("{prefix}.{i}"),
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::String(s) => {
                if !prefix.ends_with(".name") {
                    out.push((prefix.to_string(), s.clone()))
                }
            }
            serde_json::Value::Null => {}
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// The stack's counters as flattened `(name, value)` pairs, dropping zeros when
/// `nonzero_only`.
pub fn stack_counters(stack: &Stack, nonzero_only: bool) -> Vec<(String, String)> {
    let json = stack.stats().to_json();
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(v) => flatten_json(&v)
            .into_iter()
            .filter(|(_, val)| !nonzero_only || (val != "0" && val != "false"))
            .collect(),
        Err(_) => vec![("stats".to_string(), json)],
    }
}

/// Prints counters as aligned `name value` lines, several per row.
pub fn print_counters(title: &str, counters: &[(String, String)]) {
    println!("{title}");
    let width = counters
        .iter()
        .map(|(k, v)| k.len() + v.len() + 1)
        .max()
        .unwrap_or(0);
    let per_row = (100 / (width + 3)).max(1);
    for row in counters.chunks(per_row) {
        let line: Vec<String> = row
            .iter()
            .map(|(k, v)| format!("{k}{}{v}", " ".repeat(width - k.len() - v.len())))
            .collect();
        println!("  {}", line.join("   "));
    }
}

/// Human-readable byte count ("12.5 MiB").
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Human-readable rate in bits per second ("941.2 Mbit/s").
pub fn human_rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let bits = bytes as f64 * 8.0 / secs;
    if bits >= 1e9 {
        format!("{:.2} Gbit/s", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1} Mbit/s", bits / 1e6)
    } else {
        format!("{:.1} kbit/s", bits / 1e3)
    }
}

/// The error a `main` of these examples returns: like `Box<dyn Error>`, but shown with its
/// message when the program exits (`Error: TUN name must be at most 15 bytes, ...`)
/// instead of the debug form (`Error: Custom { kind: InvalidInput, error: "..." }`).
pub struct Failure(Box<dyn std::error::Error>);

impl<E: Into<Box<dyn std::error::Error>>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.into())
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program that fails says why in words: the message, not the debug form.
    #[test]
    fn failures_show_their_message() {
        let e: Failure = std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "TUN name must be at most 15 bytes",
        )
        .into();
        assert_eq!(format!("{e:?}"), "TUN name must be at most 15 bytes");
        let e: Failure = "--threads must be at least 1".into();
        assert_eq!(format!("{e:?}"), "--threads must be at least 1");
    }

    #[test]
    fn pattern_chunks_agree_with_fill() {
        let buf = pattern_buffer(1000);
        for off in [0u64, 1, 250, 251, 252, 100_000] {
            let mut want = vec![0u8; 1000];
            fill_pattern(&mut want, off);
            assert_eq!(&pattern_chunk(&buf, off, 1000)[..], &want[..]);
            assert_eq!(want[0] as u64, off % 251);
        }
    }

    #[test]
    fn flatten_names_devices() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"devices":[{"name":"tun0","stats":{"rx":1}}],"tcp":{"a":2,"b":true}}"#,
        )
        .unwrap();
        let f = flatten_json(&v);
        assert_eq!(
            f,
            vec![
                ("devices.tun0.stats.rx".to_string(), "1".to_string()),
                ("tcp.a".to_string(), "2".to_string()),
                ("tcp.b".to_string(), "true".to_string())
            ]
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50.0 MiB");
        assert_eq!(
            human_rate(125_000_000, Duration::from_secs(1)),
            "1.00 Gbit/s"
        );
    }
}
