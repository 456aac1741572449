//! The ustack side of the in-memory comparison: two ustack stacks (10.0.0.1 client,
//! 10.0.0.2 server) on a `MemLink` pair, both driven by one current-thread tokio runtime
//! (the same single thread the smoltcp pair gets). Same MTU and socket buffer sizes as the
//! smoltcp run; ustack always computes and verifies checksums.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{spawn_local, LocalSet};
use ustack::net::{TcpListener, TcpStream};
use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;
use ustack::TcpConfig;

use crate::proto;
use crate::util::{current_thread_rt, emit, gbps, latency_fields, round3};

/// TCP settings with fixed socket buffers of `buf` bytes (no autotuning beyond it), the
/// same size the smoltcp sockets get.
pub fn tcp_config(buf: Option<usize>) -> TcpConfig {
    let mut c = TcpConfig::default();
    if let Some(buf) = buf {
        c.rmem = (4096, buf, buf);
        c.wmem = (4096, buf, buf);
    }
    c
}

/// A stack on `dev` with address `cidr` (e.g. "10.0.0.1/24").
pub async fn stack_on(
    dev: ustack::netdev::mem::MemDevice,
    cidr: &str,
    cfg: TcpConfig,
) -> io::Result<Stack> {
    Stack::builder()
        .device(dev)
        .addr(
            cidr.parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?,
        )
        .tcp_config(cfg)
        .build()
        .await
}

/// Two stacks joined by a MemLink pair.
pub async fn pair(mtu: usize, buf: Option<usize>) -> io::Result<(Stack, Stack)> {
    let (a, b) = MemLink::pair(MemLinkConfig {
        mtu,
        queue_len: 4096,
        ..Default::default()
    });
    let c = stack_on(a, "10.0.0.1/24", tcp_config(buf)).await?;
    let s = stack_on(b, "10.0.0.2/24", tcp_config(buf)).await?;
    Ok((c, s))
}

fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

/// Packets transmitted by all devices of `s`.
pub fn tx_packets(s: &Stack) -> u64 {
    s.stats().devices.iter().map(|d| d.stats.tx_packets).sum()
}

/// `bytes` one way, client -> server, timed from connect to the server's byte count.
/// With `in_place`, both ends use `write_with` / `read_with` (nothing is written into
/// or read out of the send and receive queues, as in the smoltcp loop).
pub fn bulk(bytes: u64, mtu: usize, buf: usize, max_secs: f64, in_place: bool) -> io::Result<()> {
    current_thread_rt().block_on(LocalSet::new().run_until(async move {
        let (c, s) = pair(mtu, Some(buf)).await?;
        let l = TcpListener::bind_with(&s, server_addr(proto::SINK)).await?;
        let srv = spawn_local(async move {
            let (st, _) = l.accept().await?;
            if in_place {
                sink_in_place(st).await
            } else {
                proto::sink(st).await
            }
        });
        let chunk = vec![0xa5u8; 256 * 1024];
        let t0 = Instant::now();
        let mut st = TcpStream::connect_with(&c, server_addr(proto::SINK)).await?;
        let mut sent = 0u64;
        let mut timed_out = false;
        while sent < bytes {
            if in_place {
                let left = (bytes - sent).min(usize::MAX as u64) as usize;
                sent += st.write_with(|space| space.len().min(left)).await? as u64;
            } else {
                let n = (bytes - sent).min(chunk.len() as u64) as usize;
                st.write_all(&chunk[..n]).await?;
                sent += n as u64;
            }
            if t0.elapsed().as_secs_f64() > max_secs {
                timed_out = true;
                break;
            }
        }
        st.shutdown().await?;
        let mut cnt = [0u8; 8];
        let counted = tokio::time::timeout(Duration::from_secs(30), st.read_exact(&mut cnt)).await;
        let secs = t0.elapsed().as_secs_f64();
        let recvd = if matches!(counted, Ok(Ok(_))) { u64::from_be_bytes(cnt) } else { 0 };
        let _ = srv.await;
        let wire = tx_packets(&c) + tx_packets(&s);
        emit(
            &format!("mem_bulk_{mtu}"),
            if in_place { "ustack_in_place" } else { "ustack" },
            json!({ "bytes": recvd, "secs": round3(secs), "gbit_s": gbps(recvd, secs), "mtu": mtu, "buf": buf,
                    "wire_packets": wire, "timed_out": timed_out }),
        );
        c.shutdown().await;
        s.shutdown().await;
        Ok(())
    }))
}

/// The sink of [`proto::sink`] reading in place: counts to EOF, replies with the count.
pub async fn sink_in_place(mut st: TcpStream) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = st.read_with(|data| data.len()).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    st.write_all(&total.to_be_bytes()).await?;
    st.shutdown().await?;
    Ok(total)
}

/// 1-byte ping-pong (TCP_NODELAY on both ends) for `secs` seconds.
pub fn pingpong(secs: f64, mtu: usize) -> io::Result<()> {
    current_thread_rt().block_on(LocalSet::new().run_until(async move {
        let (c, s) = pair(mtu, Some(64 * 1024)).await?;
        let l = TcpListener::bind_with(&s, server_addr(proto::ECHO)).await?;
        spawn_local(async move {
            if let Ok((st, _)) = l.accept().await {
                let _ = st.set_nodelay(true);
                let _ = proto::echo(st).await;
            }
        });
        // The client is a task of the LocalSet too, like the server: a wake-up between two
        // of its tasks is a queue push, while waking the future given to `block_on` from
        // a task makes the runtime unpark its driver (an eventfd write and an epoll_wait
        // per round trip).
        let (cc, sc) = (c.clone(), s.clone());
        let client = spawn_local(async move {
            let mut st = TcpStream::connect_with(&cc, server_addr(proto::ECHO)).await?;
            st.set_nodelay(true)?;
            let wire0 = tx_packets(&cc) + tx_packets(&sc);
            let lat = pingpong_loop(&mut st, secs, 0).await?;
            let wire = tx_packets(&cc) + tx_packets(&sc) - wire0;
            io::Result::Ok((lat, wire))
        });
        let (mut lat, wire) = client.await.map_err(io::Error::other)??;
        let rts = lat.len();
        lat.drain(..rts.min(1000));
        let mut f = latency_fields(lat);
        f["mtu"] = json!(mtu);
        f["packets_per_rt"] = json!(round3(wire as f64 / rts.max(1) as f64));
        emit("mem_pingpong", "ustack", f);
        Ok(())
    }))
}

/// 1-byte ping-pong with both ends driven by one task, in turn (client write, server read,
/// server write, client read), as the smoltcp loop polls both interfaces itself: the
/// stack's own cost per round trip, without the two tokio task switches.
pub fn pingpong_one_task(secs: f64, mtu: usize) -> io::Result<()> {
    current_thread_rt().block_on(async move {
        let (c, s) = pair(mtu, Some(64 * 1024)).await?;
        let l = TcpListener::bind_with(&s, server_addr(proto::ECHO)).await?;
        let (cl, sv) = tokio::join!(
            TcpStream::connect_with(&c, server_addr(proto::ECHO)),
            l.accept()
        );
        let (mut cl, (mut sv, _)) = (cl?, sv?);
        cl.set_nodelay(true)?;
        sv.set_nodelay(true)?;
        let mut lat = Vec::with_capacity(1 << 20);
        let t0 = Instant::now();
        let (mut b, mut e) = ([1u8; 1], [0u8; 1]);
        let mut i = 0u64;
        let wire0 = tx_packets(&c) + tx_packets(&s);
        while t0.elapsed().as_secs_f64() < secs {
            let t = Instant::now();
            cl.write_all(&b).await?;
            sv.read_exact(&mut e).await?;
            sv.write_all(&e).await?;
            cl.read_exact(&mut b).await?;
            i += 1;
            if i > 1000 {
                lat.push(t.elapsed().as_nanos() as u64);
            }
        }
        let wire = tx_packets(&c) + tx_packets(&s) - wire0;
        let mut f = latency_fields(lat);
        f["mtu"] = json!(mtu);
        f["packets_per_rt"] = json!(round3(wire as f64 / i.max(1) as f64));
        emit("mem_pingpong", "ustack_one_task", f);
        c.shutdown().await;
        s.shutdown().await;
        Ok(())
    })
}

/// Round trips of one byte on `st` for `secs`; the first `warmup` are not recorded.
pub async fn pingpong_loop(st: &mut TcpStream, secs: f64, warmup: u64) -> io::Result<Vec<u64>> {
    let mut lat = Vec::with_capacity(1 << 20);
    let t0 = Instant::now();
    let mut b = [1u8; 1];
    let mut i = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        st.write_all(&b).await?;
        st.read_exact(&mut b).await?;
        i += 1;
        if i > warmup {
            lat.push(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(lat)
}

/// Connection setup rate: `conc` client tasks loop connect -> 1 byte -> server closes ->
/// client reads EOF and closes, for `secs` seconds.
pub fn connrate(secs: f64, conc: usize, mtu: usize, buf: usize) -> io::Result<()> {
    current_thread_rt().block_on(LocalSet::new().run_until(async move {
        let (c, s) = pair(mtu, Some(buf)).await?;
        let l = TcpListener::bind_with(&s, server_addr(proto::CLOSE)).await?;
        spawn_local(async move {
            while let Ok((st, _)) = l.accept().await {
                spawn_local(proto::close_one(st));
            }
        });
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let c = c.clone();
            tasks.push(spawn_local(async move {
                let (mut ok, mut timeouts, mut errors) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    match cycle(&c, server_addr(proto::CLOSE)).await {
                        Ok(()) => ok += 1,
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => timeouts += 1,
                        Err(_) => errors += 1,
                    }
                }
                (ok, timeouts, errors)
            }));
        }
        let mut sum = (0u64, 0u64, 0u64);
        for t in tasks {
            if let Ok((a, b, e)) = t.await {
                sum = (sum.0 + a, sum.1 + b, sum.2 + e);
            }
        }
        let el = t0.elapsed().as_secs_f64();
        let wire = tx_packets(&c) + tx_packets(&s);
        emit(
            "mem_connrate",
            "ustack",
            json!({ "conns": sum.0, "secs": round3(el), "conn_per_s": round3(sum.0 as f64 / el), "conc": conc,
                    "errors": sum.2, "timeouts": sum.1, "wire_packets": wire }),
        );
        Ok(())
    }))
}

async fn cycle(stack: &Stack, to: SocketAddr) -> io::Result<()> {
    let mut st = match tokio::time::timeout(
        Duration::from_secs(3),
        TcpStream::connect_with(stack, to),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
    };
    st.write_all(&[1u8]).await?;
    let mut b = [0u8; 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), st.read(&mut b)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
}
