//! TCP echo (port 7), TCP discard (port 9) and UDP echo (port 7) on a ustack stack over a
//! TUN device. ICMP echo is answered by the stack itself; every other port is closed.
//!
//! With `--join GROUP` (repeatable) the UDP echo also joins multicast groups: a datagram
//! sent to `GROUP:7` is answered (by unicast, from the stack's address) like one sent to
//! the stack's address.
//!
//! With `--transparent` it also echoes, tun2socks-style, every TCP connection and UDP
//! datagram routed into the TUN for any other address, answering in that address's name
//! (`TcpListener::bind_any`, `UdpSocket::bind_any`).
//!
//! ```sh
//! sudo ip tuntap add dev tun0 mode tun && sudo ip addr add 10.0.0.1/24 dev tun0 && sudo ip link set tun0 up
//! sudo echo_server --tun tun0 --addr 10.0.0.2/24
//! # elsewhere: ping 10.0.0.2; nc 10.0.0.2 7; nc -u 10.0.0.2 7
//! # with --join 239.1.2.3 and `ip route add 239.0.0.0/8 dev tun0`: nc -u 239.1.2.3 7
//! # with --transparent and `ip route add 10.9.0.0/16 dev tun0`: nc -u 10.9.1.2 53
//! ```

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack_examples::{init_tracing, shutdown_signal, StackArgs};

/// Echo (TCP and UDP port 7) and discard (TCP port 9) servers on ustack.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// Also echo TCP and UDP to any foreign destination routed into the TUN, answering as
    /// that destination.
    #[arg(long)]
    transparent: bool,
    /// Join this multicast group for the UDP echo (may be repeated).
    #[arg(long, value_name = "GROUP")]
    join: Vec<std::net::Ipv4Addr>,
}

async fn echo(mut s: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            s.shutdown().await?;
            return Ok(total);
        }
        s.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

async fn discard(mut s: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            s.shutdown().await?;
            return Ok(total);
        }
        total += n as u64;
    }
}

async fn serve_tcp(l: TcpListener, name: &'static str, echo_mode: bool) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                tokio::spawn(async move {
                    let r = if echo_mode {
                        echo(s).await
                    } else {
                        discard(s).await
                    };
                    match r {
                        Ok(n) => tracing::info!(%peer, bytes = n, "{name}: connection done"),
                        Err(e) => tracing::info!(%peer, "{name}: connection error: {e}"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("{name}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_udp(sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Err(e) = sock.send_to(&buf[..n], peer).await {
                    tracing::info!(%peer, "udp echo: send failed: {e}");
                }
            }
            Err(e) => {
                tracing::info!("udp echo: recv failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Echoes datagrams to any foreign destination, answering from that destination.
async fn serve_udp_transparent(sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from_to(&mut buf).await {
            Ok((n, peer, wanted)) => {
                if let Err(e) = sock.send_from_to(&buf[..n], wanted, peer).await {
                    tracing::info!(%peer, %wanted, "transparent udp echo: send failed: {e}");
                }
            }
            Err(e) => {
                tracing::info!("transparent udp echo: recv failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The transparent services (pending forever when `--transparent` is off).
async fn serve_transparent(socks: Option<(TcpListener, UdpSocket)>) {
    let Some((tcp, udp)) = socks else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = serve_tcp(tcp, "transparent tcp echo", true) => {}
        _ = serve_udp_transparent(udp) => {}
    }
}

// One thread: every connection goes through one stack, which has one lock; a
// multi-thread runtime only adds lock hand-offs and cross-thread wake-ups (README,
// "Benchmarks").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let stack = cli.stack.build().await?;
    let echo_l = TcpListener::bind("0.0.0.0:7").await?;
    let discard_l = TcpListener::bind("0.0.0.0:9").await?;
    let udp = UdpSocket::bind("0.0.0.0:7").await?;
    for group in &cli.join {
        udp.join_multicast_v4(*group, cli.stack.addr.addr())
            .map_err(|e| format!("joining {group}: {e}"))?;
    }
    let transparent = if cli.transparent {
        Some((TcpListener::bind_any().await?, UdpSocket::bind_any().await?))
    } else {
        None
    };
    println!(
        "echo_server: ready on {} (dev {}): tcp echo 7, tcp discard 9, udp echo 7{}{}",
        cli.stack.own_addr(&stack),
        cli.stack.tun,
        if cli.join.is_empty() {
            String::new()
        } else {
            let groups: Vec<String> = cli.join.iter().map(|g| g.to_string()).collect();
            format!(" (also to groups {})", groups.join(", "))
        },
        if cli.transparent {
            ", transparent tcp and udp echo for foreign destinations"
        } else {
            ""
        }
    );
    tokio::select! {
        _ = serve_tcp(echo_l, "tcp echo", true) => {}
        _ = serve_tcp(discard_l, "tcp discard", false) => {}
        _ = serve_udp(udp) => {}
        _ = serve_transparent(transparent) => {}
        _ = shutdown_signal() => {}
    }
    stack.shutdown().await;
    println!("echo_server: stopped");
    Ok(())
}
