//! A small netcat-like TCP client on ustack, used by the integration tests and handy for
//! poking at kernel servers: connects, sends N bytes of the `i % 251` pattern, optionally
//! stays idle (`--idle`, with `--keepalive` probing), half-closes (FIN), reads until the
//! peer closes, and prints one summary line
//! (`sent=.. received=.. sha256=.. pattern_ok=.. snd_mss=.. total_retrans=..`).
//!
//! ```sh
//! sudo tcp_client --tun tun0 --addr 10.0.0.2/24 --connect 10.0.0.1:9000 --send 10485760
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::TcpStream;
use ustack_examples::{fill_pattern, human_rate, init_tracing, StackArgs, PATTERN_MOD};

/// Connect, send a pattern, half-close, read to EOF, report.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// Server to connect to: A.B.C.D:PORT, or HOST:PORT resolved with the `--dns` servers.
    #[arg(long)]
    connect: String,
    /// Bytes of the pattern to send before half-closing.
    #[arg(long, default_value_t = 0)]
    send: u64,
    /// Milliseconds to keep the stack running after the connection is closed (lets the
    /// last ACKs out and shows the end state).
    #[arg(long, default_value_t = 500)]
    linger_ms: u64,
    /// Seconds to wait for the whole exchange.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Keepalive: probe after this many idle seconds, then every second; three
    /// unanswered probes end the connection with `TimedOut` (0: off).
    #[arg(long, default_value_t = 0)]
    keepalive: u64,
    /// Seconds to stay idle after sending, before the half-close.
    #[arg(long, default_value_t = 0)]
    idle: u64,
}

async fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut s = TcpStream::connect(cli.connect.as_str()).await?;
    if cli.keepalive > 0 {
        s.set_keepalive(Some(ustack::KeepaliveConfig {
            idle: Duration::from_secs(cli.keepalive),
            interval: Duration::from_secs(1),
            count: 3,
        }))?;
    }
    println!(
        "tcp_client: connected local={} peer={}",
        s.local_addr()?,
        s.peer_addr()?
    );
    let (mut rd, mut wr) = s.split();
    let send = cli.send;
    let idle = Duration::from_secs(cli.idle);
    let writer = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        while off < send {
            let n = (send - off).min(buf.len() as u64) as usize;
            fill_pattern(&mut buf[..n], off);
            wr.write_all(&buf[..n]).await?;
            off += n as u64;
        }
        tokio::time::sleep(idle).await;
        wr.shutdown().await?;
        Ok::<u64, std::io::Error>(off)
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut pattern_ok = true;
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                if *b as u64 != (total + i as u64) % PATTERN_MOD as u64 {
                    pattern_ok = false;
                    break;
                }
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok::<_, std::io::Error>((total, digest, pattern_ok))
    };
    let (sent, (received, digest, pattern_ok)) = tokio::try_join!(writer, reader)?;
    let elapsed = start.elapsed();
    let info = s.info()?;
    drop(s);
    println!(
        "tcp_client: sent={sent} received={received} sha256={digest} pattern_ok={pattern_ok} elapsed={:.3}s rate={} snd_mss={} total_retrans={}",
        elapsed.as_secs_f64(),
        human_rate(sent + received, elapsed),
        info.snd_mss,
        info.total_retrans
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let stack = cli.stack.build().await?;
    let r = tokio::time::timeout(Duration::from_secs(cli.timeout), run(&cli)).await;
    tokio::time::sleep(Duration::from_millis(cli.linger_ms)).await;
    let st = stack.stats();
    println!(
        "tcp_client: connections tracked at exit={} icmp_in_dest_unreachs={} keepalive_probes={}",
        stack.tcp_connection_count(),
        st.icmp.in_dest_unreachs,
        st.tcp.tcp_keep_alive
    );
    stack.shutdown().await;
    match r {
        Ok(r) => Ok(r?),
        Err(_) => Err(format!("timed out after {} s", cli.timeout).into()),
    }
}
