//! In-memory bulk throughput between two ustack stacks on a `MemLink` pair (MTU 1500),
//! both driven by one current-thread tokio runtime, plus 1-byte ping-pong latency and
//! connection setup rate.
//!
//! ```text
//! cargo run --release -p ustack --example bulk_mem -- [bytes] [mtu] [pingpong_secs] [conns]
//! ```
//!
//! Defaults: 1 GiB, MTU 1500, no ping-pong, no connection-rate run. `cpu_secs` is the
//! time the (single) runtime thread spent on a CPU, so `gbit_per_cpu_s` stays comparable
//! on a machine shared with other work. Environment: `BULK_BUF=<bytes>` fixes both socket
//! buffers; `BULK_STATS=1` prints the non-zero counters of both stacks; `BULK_GAPS=1`
//! prints every write stall over 2 ms with the sender's `TcpInfo`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{spawn_local, LocalSet};
use ustack::net::{TcpListener, TcpStream};
use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;

/// Default TCP settings; `BULK_BUF=<bytes>` fixes both socket buffers at that size (as
/// the benchmark harness does for its smoltcp comparison).
fn tcp_config() -> ustack::TcpConfig {
    let mut c = ustack::TcpConfig::default();
    if let Some(buf) = std::env::var("BULK_BUF").ok().and_then(|v| v.parse().ok()) {
        c.rmem = (4096, buf, buf);
        c.wmem = (4096, buf, buf);
    }
    c
}

async fn pair(mtu: usize) -> (Stack, Stack) {
    let (a, b) = MemLink::pair(MemLinkConfig {
        mtu,
        ..Default::default()
    });
    let c = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .tcp_config(tcp_config())
        .build()
        .await
        .unwrap();
    let s = Stack::builder()
        .device(b)
        .addr("10.0.0.2/24".parse().unwrap())
        .tcp_config(tcp_config())
        .build()
        .await
        .unwrap();
    (c, s)
}

/// Nanoseconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`), so the
/// figure can be read apart from time spent waiting for a CPU on a busy machine.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn srv(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

async fn bulk(bytes: u64, mtu: usize) {
    let (c, s) = pair(mtu).await;
    let l = TcpListener::bind_with(&s, srv(5001)).await.unwrap();
    let server = spawn_local(async move {
        let (mut st, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = st.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        if std::env::var_os("BULK_STATS").is_some() {
            if let Ok(i) = st.info() {
                println!(
                    "  server: rcv_space={} rcv_wnd={} rtt={:?}",
                    i.rcv_space, i.rcv_wnd, i.rtt
                );
            }
        }
        st.write_all(&total.to_be_bytes()).await.unwrap();
        st.shutdown().await.unwrap();
        total
    });
    let chunk = vec![0xa5u8; 256 * 1024];
    let t0 = Instant::now();
    let cpu0 = cpu_ns();
    let mut st = TcpStream::connect_with(&c, srv(5001)).await.unwrap();
    let mut sent = 0u64;
    let gaps = std::env::var_os("BULK_GAPS").is_some();
    let mut last = Instant::now();
    while sent < bytes {
        let n = (bytes - sent).min(chunk.len() as u64) as usize;
        st.write_all(&chunk[..n]).await.unwrap();
        sent += n as u64;
        if gaps {
            let g = last.elapsed();
            if g > Duration::from_millis(2) {
                println!("  gap {:?} at {} MiB: {:?}", g, sent >> 20, st.info());
            }
            last = Instant::now();
        }
    }
    st.shutdown().await.unwrap();
    let mut cnt = [0u8; 8];
    st.read_exact(&mut cnt).await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => f64::NAN,
    };
    let recvd = u64::from_be_bytes(cnt);
    assert_eq!(recvd, bytes);
    server.await.unwrap();
    let (cs, ss) = (c.stats(), s.stats());
    let tx: u64 = cs
        .devices
        .iter()
        .chain(ss.devices.iter())
        .map(|d| d.stats.tx_packets)
        .sum();
    let drops: u64 = cs
        .devices
        .iter()
        .chain(ss.devices.iter())
        .map(|d| d.stats.tx_dropped)
        .sum();
    let hp = ss.tcp.tcp_hp_hits + cs.tcp.tcp_hp_acks;
    let segs_in = ss.tcp.in_segs + cs.tcp.in_segs;
    println!(
        "bulk mtu={mtu} bytes={recvd} secs={secs:.3} gbit_s={:.2} MiB_s={:.0} \
         cpu_secs={cpu_secs:.3} gbit_per_cpu_s={:.2}",
        recvd as f64 * 8.0 / secs / 1e9,
        recvd as f64 / secs / (1 << 20) as f64,
        recvd as f64 * 8.0 / cpu_secs / 1e9,
    );
    println!(
        "  packets={tx} drops={drops} data_segs_out={} acks_out={} retrans={} \
         fastpath: rx hp_hits={} tx hp_acks={} pure_acks={} share={:.1}% delayed_acks={} \
         driver polls c={} s={}",
        cs.tcp.out_segs,
        ss.tcp.out_segs,
        cs.tcp.retrans_segs + ss.tcp.retrans_segs,
        ss.tcp.tcp_hp_hits,
        cs.tcp.tcp_hp_acks,
        cs.tcp.tcp_pure_acks + ss.tcp.tcp_pure_acks,
        100.0 * hp as f64 / segs_in.max(1) as f64,
        ss.tcp.delayed_acks + cs.tcp.delayed_acks,
        cs.driver.polls,
        ss.driver.polls,
    );
    if std::env::var_os("BULK_STATS").is_some() {
        for (name, st) in [("client", &cs), ("server", &ss)] {
            let dbg = format!("{:?} {:?} {:?}", st.tcp, st.ip, st.driver);
            let nz: Vec<&str> = dbg
                .split([',', '{', '}'])
                .map(str::trim)
                .filter(|f| f.contains(": ") && !f.ends_with(": 0") && !f.ends_with(": None"))
                .collect();
            println!("  {name}: {}", nz.join(", "));
        }
    }
    c.shutdown().await;
    s.shutdown().await;
}

async fn pingpong(secs: f64, mtu: usize) {
    let (c, s) = pair(mtu).await;
    let l = TcpListener::bind_with(&s, srv(5002)).await.unwrap();
    spawn_local(async move {
        let (mut st, _) = l.accept().await.unwrap();
        st.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        while let Ok(1) = st.read(&mut b).await {
            if st.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut st = TcpStream::connect_with(&c, srv(5002)).await.unwrap();
    st.set_nodelay(true).unwrap();
    let mut lat = Vec::new();
    let t0 = Instant::now();
    let mut b = [1u8; 1];
    let mut i = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        st.write_all(&b).await.unwrap();
        st.read_exact(&mut b).await.unwrap();
        if i >= 1000 {
            lat.push(t.elapsed().as_nanos() as u64);
        }
        i += 1;
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "pingpong n={} p50={:.2}us p99={:.2}us",
        lat.len(),
        p(0.5),
        p(0.99)
    );
    drop(st);
    c.shutdown().await;
    s.shutdown().await;
}

async fn conn_rate(n: u64, mtu: usize) {
    let (c, s) = pair(mtu).await;
    let l = TcpListener::bind_with(&s, srv(5003)).await.unwrap();
    spawn_local(async move {
        while let Ok((mut st, _)) = l.accept().await {
            spawn_local(async move {
                let mut b = [0u8; 1];
                if let Ok(1) = st.read(&mut b).await {
                    let _ = st.write_all(&b).await;
                }
                let _ = st.shutdown().await;
            });
        }
    });
    let t0 = Instant::now();
    for _ in 0..n {
        let mut st = TcpStream::connect_with(&c, srv(5003)).await.unwrap();
        st.write_all(&[7]).await.unwrap();
        let mut b = [0u8; 1];
        st.read_exact(&mut b).await.unwrap();
        st.shutdown().await.unwrap();
        drop(st);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("conn_rate n={n} per_s={:.0}", n as f64 / secs);
    tokio::time::sleep(Duration::from_millis(1)).await;
    c.shutdown().await;
    s.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1 << 30);
    let mtu: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1500);
    let pp_secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let conns: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(LocalSet::new().run_until(async move {
        if bytes > 0 {
            bulk(bytes, mtu).await;
        }
        if pp_secs > 0.0 {
            pingpong(pp_secs, mtu).await;
        }
        if conns > 0 {
            conn_rate(conns, mtu).await;
        }
    }));
}
