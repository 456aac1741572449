//! `ustack-bench`: every ustack benchmark and its baselines in one binary. `scripts/bench.sh`
//! runs them all and calls `report`; see `docs/benchmarks.md`.
//!
//! Benchmarks never assert on time and are not tests; every run is bounded in time.

mod alloc;
mod kernel;
#[cfg(feature = "with-ustack")]
mod mem;
mod proto;
mod relay;
mod report;
#[cfg(feature = "with-ustack")]
mod scale;
mod smol;
mod tunraw;
#[cfg(feature = "with-ustack")]
mod userve;
mod util;

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(about = "ustack benchmarks and baselines (results as `RESULT {json}` lines)")]
struct Cli {
    /// TCP_CONGESTION for kernel sockets (kserve, client), e.g. cubic.
    #[arg(long, global = true)]
    cc: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which stack an in-memory benchmark runs on.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Which {
    Ustack,
    Smoltcp,
}

/// `userve`'s options.
#[derive(clap::Args, Debug)]
pub struct UserveArgs {
    #[arg(long)]
    pub tun: String,
    /// Stack address with prefix, e.g. 10.77.0.2/24.
    #[arg(long)]
    pub addr: String,
    /// Default route via this address (the kernel side of the TUN, when it forwards).
    #[arg(long)]
    pub gateway: Option<std::net::Ipv4Addr>,
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
    #[arg(long, default_value_t = 120.0)]
    pub lifetime: f64,
    /// Append cwnd/RTT samples of source-port connections here (JSON lines).
    #[arg(long)]
    pub info_log: Option<PathBuf>,
    /// Open the TUN with IFF_VNET_HDR and TUN_F_CSUM|TUN_F_TSO4 (the kernel hands over
    /// TCP super-segments of up to 64 KiB; `TunOptions::offload`).
    #[arg(long)]
    pub offload: bool,
    /// Pace new data (`TcpConfig::pacing`).
    #[arg(long)]
    pub pacing: bool,
    /// Read the TUN on a thread of its own (`TunOptions::rx_thread`).
    #[arg(long)]
    pub rx_thread: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// In memory: `--bytes` one way between two stacks on one thread.
    MemBulk {
        #[arg(long, value_enum)]
        stack: Which,
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value_t = 1500)]
        mtu: usize,
        /// Socket send and receive buffer size (both stacks).
        #[arg(long, default_value_t = 1 << 20)]
        buf: usize,
        /// Give up after this many seconds (the figure is then flagged timed_out).
        #[arg(long, default_value_t = 120.0)]
        max_secs: f64,
        /// ustack only: send with `TcpStream::write_with` and receive with `read_with`
        /// (in place, no copy to or from an application buffer), as the smoltcp side uses
        /// its `send(|buf| ..)` / `recv(|buf| ..)`. Reported as stack `ustack_in_place`.
        #[arg(long)]
        in_place: bool,
    },
    /// In memory: 1-byte request/response, TCP_NODELAY.
    MemPingpong {
        #[arg(long, value_enum)]
        stack: Which,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 1500)]
        mtu: usize,
        /// ustack only: drive both ends from one task (as the smoltcp loop drives both
        /// interfaces), without the two task switches per round trip. Reported as stack
        /// `ustack_one_task`.
        #[arg(long)]
        one_task: bool,
    },
    /// In memory: connect, exchange one byte, close; `--conc` at a time.
    MemConnrate {
        #[arg(long, value_enum)]
        stack: Which,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 50)]
        conc: usize,
        #[arg(long, default_value_t = 1500)]
        mtu: usize,
        #[arg(long, default_value_t = 64 * 1024)]
        buf: usize,
    },
    /// In memory: N idle established connections; memory and per-packet cost.
    Scale {
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,100000")]
        counts: Vec<usize>,
        /// Duration of the ping-pong probe per count.
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
        #[arg(long, default_value_t = 60.0)]
        max_secs: f64,
    },
    /// The four-port server on ustack over an existing TUN device.
    Userve(UserveArgs),
    /// The four-port server on kernel sockets.
    Kserve {
        #[arg(long)]
        ip: String,
        #[arg(long, default_value_t = 120.0)]
        lifetime: f64,
        #[arg(long)]
        info_log: Option<PathBuf>,
        /// Runtime worker threads: 1 (the default) is a current-thread runtime, more
        /// use tokio's multi-thread runtime.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Kernel-socket client for the TUN/veth/loss figures.
    Client {
        #[arg(value_enum)]
        mode: kernel::ClientMode,
        /// Server IP.
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 50)]
        conc: usize,
        /// Result name (e.g. tun_bulk_in).
        #[arg(long)]
        name: String,
        /// Result stack label (e.g. ustack, kernel_veth).
        #[arg(long)]
        stack: String,
        /// PID of the server: `send` then also reports the server's CPU use over the run
        /// (from `/proc/<pid>/stat`), beside its own.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Server port instead of the mode's own (e.g. 5005, `userve`'s in-place sink, for
        /// `send`).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Raw TUN read ceiling: read(2) and discard.
    Tunread {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// Kernel UDP load (sendmmsg) towards `--dst`.
    Udpblast {
        #[arg(long)]
        dst: SocketAddrV4,
        #[arg(long, default_value_t = 1472)]
        len: usize,
        #[arg(long, default_value_t = 4.0)]
        secs: f64,
        /// Offered packets per second (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        pps: u64,
        /// Hand the kernel 44 datagrams per send (UDP_SEGMENT); it splits them before the
        /// device, so the generator pays one system call and one socket pass per 44 packets.
        #[arg(long)]
        gso: bool,
    },
    /// Impairment relay between two TUN devices in two namespaces.
    Relay {
        #[arg(long)]
        netns_a: String,
        #[arg(long)]
        dev_a: String,
        #[arg(long)]
        netns_b: String,
        #[arg(long)]
        dev_b: String,
        #[arg(long, default_value_t = 0.01)]
        loss: f64,
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
        /// Probability that a packet is held back `--reorder-ms` longer than the others
        /// (so that packets sent after it overtake it), each direction.
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        #[arg(long, default_value_t = 10)]
        reorder_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 60.0)]
        secs: f64,
    },
    /// Table, JSON and SVG charts from collected RESULT lines.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        samples: Option<PathBuf>,
        #[arg(long, default_value = "bench/results/latest.json")]
        json: PathBuf,
        #[arg(long, default_value = "docs")]
        svg_dir: PathBuf,
        /// Free-form JSON object stored as `meta` (date, machine, command).
        #[arg(long, default_value = "{}")]
        meta: String,
    },
}

#[cfg(not(feature = "with-ustack"))]
fn no_ustack() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "built without the `with-ustack` feature",
    ))
}

fn run(cli: Cli) -> std::io::Result<()> {
    match cli.cmd {
        Cmd::MemBulk {
            stack,
            bytes,
            mtu,
            buf,
            max_secs,
            in_place,
        } => match stack {
            Which::Smoltcp => {
                smol::bulk(bytes, mtu, buf, max_secs);
                Ok(())
            }
            #[cfg(feature = "with-ustack")]
            Which::Ustack => mem::bulk(bytes, mtu, buf, max_secs, in_place),
            #[cfg(not(feature = "with-ustack"))]
            Which::Ustack => {
                let _ = in_place;
                no_ustack()
            }
        },
        Cmd::MemPingpong {
            stack,
            secs,
            mtu,
            one_task,
        } => match stack {
            Which::Smoltcp => {
                smol::pingpong(secs, mtu);
                Ok(())
            }
            #[cfg(feature = "with-ustack")]
            Which::Ustack if one_task => mem::pingpong_one_task(secs, mtu),
            #[cfg(feature = "with-ustack")]
            Which::Ustack => mem::pingpong(secs, mtu),
            #[cfg(not(feature = "with-ustack"))]
            Which::Ustack => {
                let _ = one_task;
                no_ustack()
            }
        },
        Cmd::MemConnrate {
            stack,
            secs,
            conc,
            mtu,
            buf,
        } => match stack {
            Which::Smoltcp => {
                smol::connrate(secs, conc, mtu, buf);
                Ok(())
            }
            #[cfg(feature = "with-ustack")]
            Which::Ustack => mem::connrate(secs, conc, mtu, buf),
            #[cfg(not(feature = "with-ustack"))]
            Which::Ustack => no_ustack(),
        },
        #[cfg(feature = "with-ustack")]
        Cmd::Scale {
            counts,
            secs,
            max_secs,
        } => {
            alloc::enable();
            scale::scale(&counts, secs, max_secs)
        }
        #[cfg(feature = "with-ustack")]
        Cmd::Userve(args) => userve::userve(args),
        #[cfg(not(feature = "with-ustack"))]
        Cmd::Scale { .. } | Cmd::Userve(_) => no_ustack(),
        Cmd::Kserve {
            ip,
            lifetime,
            info_log,
            threads,
        } => kernel::kserve(ip, lifetime, info_log, threads),
        Cmd::Client {
            mode,
            to,
            secs,
            conc,
            name,
            stack,
            server_pid,
            port,
        } => kernel::client(mode, to, port, secs, conc, name, stack, server_pid),
        Cmd::Tunread { dev, secs } => tunraw::tunread(&dev, secs),
        Cmd::Udpblast {
            dst,
            len,
            secs,
            pps,
            gso,
        } => tunraw::udpblast(dst, len, secs, pps, gso),
        Cmd::Relay {
            netns_a,
            dev_a,
            netns_b,
            dev_b,
            loss,
            delay_ms,
            reorder,
            reorder_ms,
            seed,
            secs,
        } => relay::relay(relay::RelayOpts {
            a: (netns_a, dev_a),
            b: (netns_b, dev_b),
            loss,
            delay: Duration::from_millis(delay_ms),
            reorder,
            reorder_delay: Duration::from_millis(reorder_ms),
            seed,
            secs,
        }),
        Cmd::Report {
            results,
            samples,
            json,
            svg_dir,
            meta,
        } => {
            let meta = serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null);
            report::report(&results, samples.as_deref(), &json, &svg_dir, meta)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(cc) = cli.cc.clone() {
        let _ = kernel::CC.set(cc);
    }
    if let Err(e) = run(cli) {
        eprintln!("ustack-bench: {e}");
        std::process::exit(1);
    }
}
