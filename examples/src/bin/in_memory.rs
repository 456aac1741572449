//! Two ustack stacks joined by an in-memory link in one process: a server stack runs the
//! benchmark sink (read to EOF, reply with the byte count), a client stack sends it a
//! stream of the `i % 251` pattern, and both print what happened. Needs no privileges.
//!
//! ```sh
//! cargo run --release -p ustack-examples --bin in_memory -- --size-mib 256 --loss 1
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream};
use ustack::Stack;
use ustack_examples::{
    fill_pattern, human_bytes, human_rate, init_tracing, print_counters, stack_counters, FaultArgs,
};
use ustack_netdev::mem::{MemLink, MemLinkConfig};

/// Two ustack stacks on an in-memory link: a bulk transfer and the counters.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// MiB the client sends.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Concurrent connections (the size is split between them).
    #[arg(long, default_value_t = 1)]
    connections: u32,
    /// Link MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Faults on the client's end of the link (both directions through it).
    #[command(flatten)]
    faults: FaultArgs,
}

const SERVER: &str = "10.0.0.1";
const PORT: u16 = 5001;

async fn sink(l: TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(e) => {
                        tracing::warn!("server: read failed: {e}");
                        return;
                    }
                }
            }
            let _ = s.write_all(&total.to_be_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

async fn send(stack: Stack, bytes: u64) -> std::io::Result<u64> {
    let mut s = TcpStream::connect_with(&stack, (SERVER, PORT)).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], off);
        s.write_all(&buf[..n]).await?;
        off += n as u64;
    }
    s.shutdown().await?;
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).await?;
    Ok(u64::from_be_bytes(reply))
}

#[tokio::main]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let cfg = MemLinkConfig {
        mtu: cli.mtu,
        ..MemLinkConfig::default()
    };
    let (a, b) = MemLink::pair(cfg);
    let server = Stack::builder()
        .device(a)
        .addr(format!("{SERVER}/24").parse()?)
        .build()
        .await?;
    let mut cb = Stack::builder().device(b).addr("10.0.0.2/24".parse()?);
    if let Some(f) = cli.faults.config() {
        println!("faults on the client link: {f:?}");
        cb = cb.fault(f);
    }
    let client = cb.build().await?;

    let rtt = client.ping(SERVER.parse()?, Duration::from_secs(2)).await?;
    println!("ping {SERVER} from 10.0.0.2: rtt {rtt:?}");

    let listener = TcpListener::bind_with(&server, ("0.0.0.0", PORT)).await?;
    let srv = tokio::spawn(sink(listener));

    let total = cli.size_mib * 1024 * 1024;
    let conns = cli.connections.max(1) as u64;
    println!(
        "sending {} over {conns} connection(s), MTU {} ...",
        human_bytes(total),
        cli.mtu
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let share = total / conns + if i < total % conns { 1 } else { 0 };
        tasks.push(tokio::spawn(send(client.clone(), share)));
    }
    let mut acked = 0u64;
    for t in tasks {
        acked += t.await??;
    }
    let elapsed = start.elapsed();
    srv.abort();
    println!(
        "transfer: {} sent, server counted {}, {:.3} s, {}",
        human_bytes(total),
        human_bytes(acked),
        elapsed.as_secs_f64(),
        human_rate(acked, elapsed)
    );
    print_counters(
        "client stack counters (non-zero):",
        &stack_counters(&client, true),
    );
    print_counters(
        "server stack counters (non-zero):",
        &stack_counters(&server, true),
    );
    client.shutdown().await;
    server.shutdown().await;
    if acked != total {
        return Err(format!("server counted {acked} bytes, expected {total}").into());
    }
    Ok(())
}
