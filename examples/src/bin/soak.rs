//! Soak and flood helpers (issue 7).
//!
//! `soak` (the default command) holds many connections between two ustack stacks joined
//! by an in-memory link with fault injection, for a set time: every connection sends
//! random-sized chunks of pseudo-random bytes to an echo server, checks what comes back,
//! and now and then closes and reconnects. It prints the socket count, connection count,
//! pending timers, socket-buffer memory and process RSS at the start, periodically and at
//! the end, and exits non-zero when a byte came back wrong, a connection failed, or after
//! every connection closed sockets, timers or buffer memory were left over, or the RSS
//! grew beyond `--max-rss-growth-mib`. Needs no privileges.
//!
//! ```sh
//! cargo run --release -p ustack-examples --bin soak -- --duration 600 --connections 1000 \
//!     --loss 0.5 --reorder 1 --duplicate 0.5 --delay 2 --corrupt 0.1
//! ```
//!
//! `soak tun-echo --tun ust0 --addr 10.88.0.2/24 ...` instead runs one stack on a TUN
//! device with an echo server on port 5002 and a bounded TCP memory budget
//! (`--mem-limit`), printing a `stats key=value ...` line every `--stats-ms` (the flood
//! test in `integration-tests/tests/flood.rs` reads them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use ustack::net::{TcpListener, TcpStream};
use ustack::{FaultConfig, Stack, TcpConfig, TunOptions};
use ustack_examples::{init_tracing, shutdown_signal, StackArgs};
use ustack_netdev::mem::{MemLink, MemLinkConfig};
use ustack_netdev::rng::SplitMix64;

/// Soak test: many connections, random traffic and faults between two in-memory stacks;
/// fails on corrupted data, failed connections, or leaked sockets, timers or memory.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    soak: SoakArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One stack on a TUN device: echo on port 5002 under a TCP memory budget, with a
    /// `stats key=value ...` line every --stats-ms (for the flood test).
    TunEcho(TunEchoArgs),
}

/// The in-memory soak.
#[derive(Args, Debug)]
struct SoakArgs {
    /// How long to run the traffic, in seconds (600 = the 10-minute soak).
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Connections held open at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Largest chunk a connection sends at a time (bytes; sizes are random up to it).
    #[arg(long, default_value_t = 8192)]
    max_chunk: usize,
    /// Largest pause between two chunks of one connection, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_think_ms: u64,
    /// Probability (percent) that a connection closes and reconnects after a chunk.
    #[arg(long, default_value_t = 2.0)]
    reconnect: f64,
    /// Packet loss on the link, percent (each direction).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Reordering, percent.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Duplication, percent.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Corruption (a flipped bit, caught by checksums), percent.
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// One-way delay, milliseconds.
    #[arg(long, default_value_t = 0)]
    delay: u64,
    /// Seed for the traffic and the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    report_secs: u64,
    /// Seconds to wait after the last close for sockets and timers to drain.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// Largest allowed RSS growth from the start of traffic to the end, in MiB.
    #[arg(long, default_value_t = 64)]
    max_rss_growth_mib: u64,
    /// Run the link in Ethernet mode (ARP resolves each side; the faults hit ARP too).
    #[arg(long)]
    ethernet: bool,
}

/// The TUN echo server for the flood test.
#[derive(Args, Debug)]
struct TunEchoArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Echo port.
    #[arg(long, default_value_t = 5002)]
    port: u16,
    /// TCP socket-buffer memory budget (`TcpConfig::mem_limit`), bytes.
    #[arg(long, default_value_t = 16 << 20)]
    mem_limit: usize,
    /// SYN queue bound (`TcpConfig::max_syn_backlog`); SYN cookies engage beyond it.
    #[arg(long, default_value_t = 128)]
    max_syn_backlog: usize,
    /// Milliseconds between stats lines.
    #[arg(long, default_value_t = 500)]
    stats_ms: u64,
}

/// Resident set size and its peak (kB), from /proc/self/status.
fn rss_kb() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The figures the soak compares between start and end.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    sockets: u64,
    conns: usize,
    timers: u64,
    mem: u64,
}

fn figures(s: &Stack) -> Figures {
    let t = s.stats().tcp;
    Figures {
        sockets: t.sockets,
        conns: s.tcp_connection_count(),
        timers: t.timers_pending,
        mem: t.memory_used,
    }
}

fn report(label: &str, server: &Stack, client: &Stack, extra: &str) {
    let (a, b) = (figures(server), figures(client));
    let (rss, hwm) = rss_kb();
    println!(
        "{label}: server sockets={} conns={} timers={} memory_used={} | client sockets={} \
         conns={} timers={} memory_used={} | rss_kb={rss} peak_rss_kb={hwm} {extra}",
        a.sockets, a.conns, a.timers, a.mem, b.sockets, b.conns, b.timers, b.mem
    );
}

#[derive(Default)]
struct Totals {
    bytes: AtomicU64,
    exchanges: AtomicU64,
    connects: AtomicU64,
    errors: AtomicU64,
    mismatches: AtomicU64,
}

const SERVER_IP: &str = "10.0.0.1";
const ECHO_PORT: u16 = 7;

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown().await;
}

async fn serve(l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                tokio::spawn(echo(s));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// One client slot: connect, exchange random chunks until `end`, sometimes reconnect.
async fn client_slot(
    stack: Stack,
    args: Arc<SoakArgs>,
    mut rng: SplitMix64,
    end: Instant,
    tot: Arc<Totals>,
) {
    let mut tx = vec![0u8; args.max_chunk.max(1)];
    let mut rx = vec![0u8; args.max_chunk.max(1)];
    'outer: while Instant::now() < end {
        let mut s = match tokio::time::timeout(
            Duration::from_secs(30),
            TcpStream::connect_with(&stack, (SERVER_IP, ECHO_PORT)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            other => {
                eprintln!("soak: connect failed: {other:?}");
                tot.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tot.connects.fetch_add(1, Ordering::Relaxed);
        while Instant::now() < end {
            let n = 1 + rng.below(args.max_chunk as u64) as usize;
            rng.fill(&mut tx[..n]);
            let io = async {
                s.write_all(&tx[..n]).await?;
                s.read_exact(&mut rx[..n]).await?;
                Ok::<(), std::io::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(60), io).await {
                Ok(Ok(())) => {}
                other => {
                    eprintln!("soak: exchange failed: {other:?}");
                    tot.errors.fetch_add(1, Ordering::Relaxed);
                    continue 'outer;
                }
            }
            if tx[..n] != rx[..n] {
                tot.mismatches.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak: echoed bytes differ");
            }
            tot.bytes.fetch_add(n as u64, Ordering::Relaxed);
            tot.exchanges.fetch_add(1, Ordering::Relaxed);
            if rng.chance(args.reconnect / 100.0) {
                break;
            }
            let think = rng.below(args.max_think_ms + 1);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        // Orderly close: FIN, then wait for the server's FIN.
        let _ = s.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut rx)).await;
    }
}

async fn soak(args: SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let args = Arc::new(args);
    let (a, b) = MemLink::pair(MemLinkConfig {
        queue_len: 8192,
        ethernet: args.ethernet,
        ..MemLinkConfig::default()
    });
    // Short TIME_WAIT and FIN_WAIT_2 so that the end-of-run leak check need not wait
    // 60 s for closed connections to go away.
    let tcp = TcpConfig {
        time_wait: Duration::from_secs(2),
        fin_timeout: Duration::from_secs(5),
        ..TcpConfig::default()
    };
    let server = Stack::builder()
        .device(a)
        .addr(format!("{SERVER_IP}/16").parse()?)
        .tcp_config(tcp.clone())
        .build()
        .await?;
    let pct = |p: f64| (p / 100.0).clamp(0.0, 1.0);
    let faults = FaultConfig {
        loss: pct(args.loss),
        reorder: pct(args.reorder),
        duplicate: pct(args.duplicate),
        corrupt: pct(args.corrupt),
        delay: Duration::from_millis(args.delay),
        seed: args.seed,
        ..FaultConfig::default()
    };
    let client = Stack::builder()
        .device(b)
        .addr("10.0.0.2/16".parse()?)
        .fault(faults)
        .tcp_config(tcp)
        .build()
        .await?;
    let listener = TcpListener::bind_with(&server, ("0.0.0.0", ECHO_PORT)).await?;
    let srv = tokio::spawn(serve(listener));
    println!(
        "soak: {} connections for {} s, chunks up to {} B, faults: loss {}% reorder {}% \
         duplicate {}% corrupt {}% delay {} ms",
        args.connections,
        args.duration,
        args.max_chunk,
        args.loss,
        args.reorder,
        args.duplicate,
        args.corrupt,
        args.delay
    );
    report("start (idle)", &server, &client, "");
    let base = figures(&server);
    let base_client = figures(&client);

    let tot = Arc::new(Totals::default());
    let end = Instant::now() + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    let mut seeder = SplitMix64::new(args.seed ^ 0x5eed);
    for _ in 0..args.connections {
        let rng = SplitMix64::new(seeder.next_u64());
        tasks.push(tokio::spawn(client_slot(
            client.clone(),
            args.clone(),
            rng,
            end,
            tot.clone(),
        )));
    }
    // The start figures: once every slot is connected (or after 30 s).
    let ramp = Instant::now() + Duration::from_secs(30);
    while tot.connects.load(Ordering::Relaxed) < args.connections as u64 && Instant::now() < ramp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_start, _) = rss_kb();
    report(
        "start (all connected)",
        &server,
        &client,
        &format!("connects={}", tot.connects.load(Ordering::Relaxed)),
    );
    let mut next = Instant::now() + Duration::from_secs(args.report_secs.max(1));
    while Instant::now() < end {
        tokio::time::sleep_until(next.min(end)).await;
        next += Duration::from_secs(args.report_secs.max(1));
        report(
            "progress",
            &server,
            &client,
            &format!(
                "exchanges={} bytes={} connects={} errors={} mismatches={}",
                tot.exchanges.load(Ordering::Relaxed),
                tot.bytes.load(Ordering::Relaxed),
                tot.connects.load(Ordering::Relaxed),
                tot.errors.load(Ordering::Relaxed),
                tot.mismatches.load(Ordering::Relaxed)
            ),
        );
    }
    for t in tasks {
        let _ = t.await;
    }
    // Every client closed: wait for TIME_WAIT / FIN_WAIT_2 and the server side to drain.
    let drain_end = Instant::now() + Duration::from_secs(args.drain_secs);
    let settled = |s: &Figures, b: &Figures| {
        s.sockets <= b.sockets && s.conns <= b.conns && s.timers <= b.timers && s.mem == 0
    };
    while Instant::now() < drain_end
        && !(settled(&figures(&server), &base) && settled(&figures(&client), &base_client))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss_end, _) = rss_kb();
    let summary = format!(
        "exchanges={} bytes={} connects={} errors={} mismatches={} rss_growth_kb={}",
        tot.exchanges.load(Ordering::Relaxed),
        tot.bytes.load(Ordering::Relaxed),
        tot.connects.load(Ordering::Relaxed),
        tot.errors.load(Ordering::Relaxed),
        tot.mismatches.load(Ordering::Relaxed),
        rss_end as i64 - rss_start as i64
    );
    report("end (all closed)", &server, &client, &summary);
    let (fs, fc) = (figures(&server), figures(&client));
    srv.abort();
    let st = client.stats();
    println!(
        "client tcp: retrans_segs={} tcp_timeouts={} in_csum_errors={} | client device: {:?}",
        st.tcp.retrans_segs,
        st.tcp.tcp_timeouts,
        server.stats().tcp.in_csum_errors + st.tcp.in_csum_errors,
        st.devices.first().map(|d| d.stats)
    );
    // Socket calls that found a stack's lock held by another worker and waited for its
    // release (`DriverStats::lock_waits`; zero on one thread).
    println!(
        "lock waits: server {} client {}",
        server.stats().driver.lock_waits,
        st.driver.lock_waits
    );
    if args.ethernet {
        println!(
            "arp: client {:?} | server {:?} | neighbours: client {:?} server {:?}",
            st.arp,
            server.stats().arp,
            client.neighbours(),
            server.neighbours()
        );
    }
    client.shutdown().await;
    server.shutdown().await;

    let mut problems = Vec::new();
    if tot.mismatches.load(Ordering::Relaxed) > 0 {
        problems.push("echoed bytes differed".to_string());
    }
    if tot.errors.load(Ordering::Relaxed) > 0 {
        problems.push(format!(
            "{} connection errors",
            tot.errors.load(Ordering::Relaxed)
        ));
    }
    if tot.exchanges.load(Ordering::Relaxed) == 0 {
        problems.push("no traffic".to_string());
    }
    for (name, f, b) in [("server", fs, base), ("client", fc, base_client)] {
        if !settled(&f, &b) {
            problems.push(format!(
                "{name} leaked: sockets {} (start {}), conns {} (start {}), timers {} \
                 (start {}), memory_used {}",
                f.sockets, b.sockets, f.conns, b.conns, f.timers, b.timers, f.mem
            ));
        }
    }
    let growth_kb = rss_end.saturating_sub(rss_start);
    if growth_kb > args.max_rss_growth_mib * 1024 {
        problems.push(format!(
            "RSS grew {growth_kb} kB (> {} MiB)",
            args.max_rss_growth_mib
        ));
    }
    if problems.is_empty() {
        println!("soak: PASS");
        Ok(())
    } else {
        println!("soak: FAIL: {}", problems.join("; "));
        Err(problems.join("; ").into())
    }
}

fn stats_line(stack: &Stack) -> String {
    let st = stack.stats();
    let t = &st.tcp;
    let (rss, hwm) = rss_kb();
    let dev = st.devices.first().map(|d| d.stats).unwrap_or_default();
    format!(
        "stats sockets={} conns={} memory_used={} memory_used_peak={} memory_pressure={} \
         tcp_memory_pressures={} syncookies_sent={} syncookies_recv={} syncookies_failed={} \
         passive_opens={} listen_drops={} listen_overflows={} tcp_req_q_full_drop={} \
         tcp_rcvq_drop={} tcp_ofo_drop={} prune_called={} in_segs={} in_errs={} \
         in_csum_errors={} ip_in_receives={} ip_in_hdr_errors={} ip_in_addr_errors={} \
         ip_in_unknown_protos={} ip_in_discards={} dev_rx_packets={} dev_rx_dropped={} \
         dev_rx_missed={} rss_kb={rss} peak_rss_kb={hwm}",
        t.sockets,
        stack.tcp_connection_count(),
        t.memory_used,
        t.memory_used_peak,
        t.memory_pressure,
        t.tcp_memory_pressures,
        t.syncookies_sent,
        t.syncookies_recv,
        t.syncookies_failed,
        t.passive_opens,
        t.listen_drops,
        t.listen_overflows,
        t.tcp_req_q_full_drop,
        t.tcp_rcvq_drop,
        t.tcp_ofo_drop,
        t.prune_called,
        t.in_segs,
        t.in_errs,
        t.in_csum_errors,
        st.ip.in_receives,
        st.ip.in_hdr_errors,
        st.ip.in_addr_errors,
        st.ip.in_unknown_protos,
        st.ip.in_discards,
        dev.rx_packets,
        dev.rx_dropped,
        dev.rx_missed,
    )
}

async fn tun_echo(a: TunEchoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let sa = &a.stack;
    let opts = TunOptions {
        offload: false,
        ..sa.tun_options()
    };
    let tcp = TcpConfig {
        mem_limit: a.mem_limit,
        max_syn_backlog: a.max_syn_backlog,
        ..TcpConfig::default()
    };
    let mut b = Stack::builder()
        .tun_with(opts)
        .addr(sa.addr)
        .tcp_config(tcp);
    if let Some(mtu) = sa.mtu {
        b = b.mtu(mtu);
    }
    if let Some(gw) = sa.gateway {
        b = b.gateway(gw);
    }
    let stack = b.build().await?;
    let l = TcpListener::bind_with(&stack, ("0.0.0.0", a.port)).await?;
    println!(
        "soak tun-echo: ready on {}:{} mem_limit={} max_syn_backlog={}",
        sa.addr.addr(),
        a.port,
        a.mem_limit,
        a.max_syn_backlog
    );
    let srv = tokio::spawn(serve(l));
    let st = stack.clone();
    let every = Duration::from_millis(a.stats_ms.max(10));
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            println!("{}", stats_line(&st));
        }
    });
    shutdown_signal().await;
    ticker.abort();
    srv.abort();
    println!("{}", stats_line(&stack));
    stack.shutdown().await;
    println!("soak tun-echo: stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::TunEcho(a)) => tun_echo(a).await?,
        None => soak(cli.soak).await?,
    }
    Ok(())
}
