//! The three-port benchmark protocol on a ustack stack over a TUN device:
//! - 5001 sink: read to EOF, then reply with the byte count as a big-endian u64 and close;
//! - 5002 echo: write back everything read, close after EOF;
//! - 5003 close: read one byte, then close.

use clap::Parser;
use ustack::net::{TcpListener, TcpStream};
use ustack_examples::{init_tracing, shutdown_signal, StackArgs};

/// Benchmark servers (sink 5001, echo 5002, close 5003) on ustack.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// First of the three ports (sink); echo is +1, close +2.
    #[arg(long, default_value_t = 5001)]
    base_port: u16,
    /// Runtime worker threads. 1 (the default) runs the stack's driver and every
    /// connection on one current-thread runtime: the stack has one lock, so a single
    /// thread avoids lock hand-offs and cross-CPU wake-ups between the driver and the
    /// connection tasks. More threads use tokio's multi-thread runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Sink,
    Echo,
    Close,
}

/// The protocol itself, shared with the benchmark harness's kernel server.
#[allow(dead_code)]
#[path = "../../../bench/src/proto.rs"]
mod proto;

async fn handle(s: TcpStream, mode: Mode) -> std::io::Result<u64> {
    match mode {
        Mode::Sink => proto::sink(s).await,
        Mode::Echo => proto::echo(s).await.map(|()| 0),
        Mode::Close => {
            proto::close_one(s).await;
            Ok(0)
        }
    }
}

async fn serve(l: TcpListener, mode: Mode) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                tokio::spawn(async move {
                    match handle(s, mode).await {
                        Ok(n) => tracing::debug!(%peer, ?mode, bytes = n, "done"),
                        Err(e) => tracing::info!(%peer, ?mode, "connection error: {e}"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(?mode, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let rt = match cli.threads {
        0 => return Err("--threads must be at least 1".into()),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    Ok(rt.block_on(run(cli))?)
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let stack = cli.stack.build().await?;
    let p = cli.base_port;
    let sink = TcpListener::bind(("0.0.0.0", p)).await?;
    let echo = TcpListener::bind(("0.0.0.0", p + 1)).await?;
    let close = TcpListener::bind(("0.0.0.0", p + 2)).await?;
    println!(
        "bench_server: ready on {}: sink {}, echo {}, close {}",
        cli.stack.own_addr(&stack),
        p,
        p + 1,
        p + 2
    );
    // The accept loops are tasks, not part of `block_on`'s future: on a multi-thread
    // runtime that future runs on the calling thread, outside the workers, and every
    // accept would wake that thread from its own park.
    let loops = [
        tokio::spawn(serve(sink, Mode::Sink)),
        tokio::spawn(serve(echo, Mode::Echo)),
        tokio::spawn(serve(close, Mode::Close)),
    ];
    shutdown_signal().await;
    for l in loops {
        l.abort();
    }
    stack.shutdown().await;
    println!("bench_server: stopped");
    Ok(())
}
