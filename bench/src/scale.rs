//! Scale: N established, idle connections into one in-memory server stack, for N in
//! 10 / 1,000 / 10,000 / 100,000. Client ports: one client stack (its own address and
//! MemLink to its own server device) per 20,000 connections, so the 4-tuples never run out.
//!
//! Reported per N:
//! - memory per idle established connection, from the counting global allocator: live bytes
//!   after all connections are established and settled, minus live bytes before the first
//!   connect, divided by 2N (both ends live in this process; each is one established socket
//!   of its stack; the application's `TcpStream` handles are included);
//! - per-packet cost on one extra connection while the N others sit idle: 1-byte ping-pong
//!   (wall time / packets moved by both stacks) and a 32 MiB bulk transfer (same measure);
//!   the ping-pong also relative to a reference pair of fresh stacks measured in
//!   alternating windows (`pingpong_vs_reference`), which cancels the machine's drift
//!   between counts.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{spawn_local, LocalSet};
use ustack::net::{TcpListener, TcpStream};
use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;

use crate::alloc::{alloc_count, live_bytes};
use crate::mem::{pingpong_loop, tcp_config, tx_packets};
use crate::proto;
use crate::util::{current_thread_rt, emit, round3};

const PER_CLIENT: usize = 20_000;

/// Runs the scale benchmark for every count in `counts`; `secs` bounds each cost probe.
pub fn scale(counts: &[usize], secs: f64, max_secs: f64) -> io::Result<()> {
    for &n in counts {
        current_thread_rt().block_on(LocalSet::new().run_until(one(n, secs, max_secs)))?;
    }
    Ok(())
}

fn parse_cidr(s: &str) -> io::Result<ustack::Ipv4Cidr> {
    s.parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))
}

async fn one(n: usize, secs: f64, max_secs: f64) -> io::Result<()> {
    let k = n.div_ceil(PER_CLIENT).max(1);
    let mut server_b = Stack::builder();
    let mut clients = Vec::new();
    for i in 0..k {
        let (a, b) = MemLink::pair(MemLinkConfig {
            mtu: 1500,
            queue_len: 4096,
            ..Default::default()
        });
        server_b = server_b
            .device(b)
            .addr(parse_cidr(&format!("10.1.{i}.2/24"))?);
        let c = Stack::builder()
            .device(a)
            .addr(parse_cidr(&format!("10.1.{i}.1/24"))?)
            .tcp_config(tcp_config(None))
            .build()
            .await?;
        clients.push(c);
    }
    let server = server_b.tcp_config(tcp_config(None)).build().await?;
    // One listener per client stack (port 6000+i) plus the probe's echo listener.
    let accepted: Rc<RefCell<Vec<TcpStream>>> = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let mut listeners = Vec::new();
    for i in 0..k {
        let l = TcpListener::bind_with(
            &server,
            SocketAddr::from(([10, 1, i as u8, 2], 6000 + i as u16)),
        )
        .await?;
        listeners.push(l);
    }
    let probe_l =
        TcpListener::bind_with(&server, SocketAddr::from(([10, 1, 0, 2], proto::ECHO))).await?;
    let mut client_streams: Vec<TcpStream> = Vec::with_capacity(n);
    let t_setup = Instant::now();
    let before = live_bytes();
    let allocs_before = alloc_count();
    for l in listeners {
        let acc = accepted.clone();
        spawn_local(async move {
            while let Ok((s, _)) = l.accept().await {
                acc.borrow_mut().push(s);
            }
        });
    }
    // Connect, at most 128 in flight per client stack.
    let mut failed = 0usize;
    for (i, c) in clients.iter().enumerate() {
        let want = (n - i * PER_CLIENT).min(PER_CLIENT);
        let to = SocketAddr::from(([10, 1, i as u8, 2], 6000 + i as u16));
        let got: Rc<RefCell<Vec<TcpStream>>> = Rc::new(RefCell::new(Vec::with_capacity(want)));
        let workers = want.min(128);
        let mut hs = Vec::new();
        for w in 0..workers {
            let (c, got) = (c.clone(), got.clone());
            let mine = want / workers + usize::from(w < want % workers);
            hs.push(spawn_local(async move {
                let mut fails = 0usize;
                for _ in 0..mine {
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        TcpStream::connect_with(&c, to),
                    )
                    .await
                    {
                        Ok(Ok(s)) => got.borrow_mut().push(s),
                        _ => fails += 1,
                    }
                }
                fails
            }));
        }
        for h in hs {
            failed += h.await.unwrap_or(0);
        }
        client_streams.append(&mut got.borrow_mut());
        if t_setup.elapsed().as_secs_f64() > max_secs {
            break;
        }
    }
    let connect_secs = t_setup.elapsed().as_secs_f64();
    eprintln!(
        "scale {n}: {} connected, {failed} failed, {:.2}s",
        client_streams.len(),
        t_setup.elapsed().as_secs_f64()
    );
    // Wait for the server to accept them all, then let delayed ACKs and timers settle.
    let t0 = Instant::now();
    while accepted.borrow().len() < client_streams.len() && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup_secs = t_setup.elapsed().as_secs_f64();
    let after = live_bytes();
    let established = client_streams.len().min(accepted.borrow().len());
    let per_socket = (after - before) as f64 / (2 * established.max(1)) as f64;
    let allocs_per_conn = (alloc_count() - allocs_before) as f64 / established.max(1) as f64;

    eprintln!(
        "scale {n}: {} accepted, live bytes delta {}",
        accepted.borrow().len(),
        after - before
    );
    // Probe connection: ping-pong and bulk on one more connection.
    spawn_local(async move {
        while let Ok((st, _)) = probe_l.accept().await {
            let _ = st.set_nodelay(true);
            spawn_local(async move {
                let _ = proto::echo(st).await;
            });
        }
    });
    let c0 = clients[0].clone();
    let mut st =
        TcpStream::connect_with(&c0, SocketAddr::from(([10, 1, 0, 2], proto::ECHO))).await?;
    st.set_nodelay(true)?;
    let _ = pingpong_loop(&mut st, 0.2, 0).await?;
    // The reference: the same ping-pong between two fresh stacks holding nothing else, in
    // windows alternating with the loaded ones. The guest's speed drifts over the minutes
    // between the counts; the ratio loaded / reference of each window does not.
    let (ref_c, ref_s) = crate::mem::pair(1500, Some(64 * 1024)).await?;
    let ref_l =
        TcpListener::bind_with(&ref_s, SocketAddr::from(([10, 0, 0, 2], proto::ECHO))).await?;
    spawn_local(async move {
        if let Ok((st, _)) = ref_l.accept().await {
            let _ = st.set_nodelay(true);
            let _ = proto::echo(st).await;
        }
    });
    let mut ref_st =
        TcpStream::connect_with(&ref_c, SocketAddr::from(([10, 0, 0, 2], proto::ECHO))).await?;
    ref_st.set_nodelay(true)?;
    let _ = pingpong_loop(&mut ref_st, 0.2, 0).await?;
    // Five windows of each; medians damp scheduler noise.
    let mut windows = Vec::new();
    let mut lat = Vec::new();
    for _ in 0..5 {
        let (loaded, pk, l) = pingpong_window(&mut st, &server, &c0, secs / 5.0).await?;
        let (reference, _, _) = pingpong_window(&mut ref_st, &ref_s, &ref_c, secs / 5.0).await?;
        windows.push((
            loaded,
            loaded * pk as f64 / l.len().max(1) as f64,
            pk,
            reference,
            loaded / reference.max(1e-9),
        ));
        lat.extend(l);
    }
    let pp_packets: u64 = windows.iter().map(|w| w.2).sum();
    let median = |f: fn(&(f64, f64, u64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = windows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pp_ns_per_packet = median(|w| w.0);
    let rt_ns = median(|w| w.1);
    let ref_ns_per_packet = median(|w| w.3);
    let pp_vs_reference = median(|w| w.4);
    drop(ref_st);
    ref_c.shutdown().await;
    ref_s.shutdown().await;
    // Bulk on the same connection: write 32 MiB while reading the echo back.
    let total: usize = 32 << 20;
    let (mut rd, mut wr) = st.into_split();
    let p1 = tx_packets(&server) + tx_packets(&c0);
    let t = Instant::now();
    let writer = spawn_local(async move {
        let chunk = vec![7u8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let m = left.min(chunk.len());
            if wr.write_all(&chunk[..m]).await.is_err() {
                break;
            }
            left -= m;
        }
        wr
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    while got < total && t.elapsed().as_secs_f64() < max_secs {
        match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await {
            Ok(Ok(m)) if m > 0 => got += m,
            _ => break,
        }
    }
    let bulk_el = t.elapsed().as_secs_f64();
    let _ = writer.await;
    let bulk_packets = tx_packets(&server) + tx_packets(&c0) - p1;
    let bulk_ns_per_packet = bulk_el * 1e9 / bulk_packets.max(1) as f64;

    emit(
        &format!("scale_{n}"),
        "ustack",
        json!({
            "connections": n, "established": established, "connect_failures": failed,
            "client_stacks": k, "setup_secs": round3(setup_secs),
            "conn_per_s_setup": round3(established as f64 / connect_secs),
            "tcp_connection_count_server": server.tcp_connection_count(),
            "live_bytes_delta": after - before, "bytes_per_socket": round3(per_socket),
            "bytes_per_connection_both_ends": round3(per_socket * 2.0),
            "allocs_per_connection": round3(allocs_per_conn),
            "pingpong_round_trips": lat.len(), "pingpong_ns_per_rt": round3(rt_ns),
            "pingpong_ns_per_packet": round3(pp_ns_per_packet), "pingpong_packets": pp_packets,
            "reference_ns_per_packet": round3(ref_ns_per_packet),
            "pingpong_vs_reference": round3(pp_vs_reference),
            "bulk_bytes": got, "bulk_ns_per_packet": round3(bulk_ns_per_packet), "bulk_packets": bulk_packets,
        }),
    );
    // Dropping the runtime ends the stacks' drivers; no orderly close of N connections.
    Ok(())
}

/// One ping-pong window of `secs` on `st` between `a` and `b`: (wall ns per packet moved by
/// both stacks, packets, round-trip latencies).
async fn pingpong_window(
    st: &mut TcpStream,
    a: &Stack,
    b: &Stack,
    secs: f64,
) -> io::Result<(f64, u64, Vec<u64>)> {
    let p0 = tx_packets(a) + tx_packets(b);
    let t = Instant::now();
    let l = pingpong_loop(st, secs, 0).await?;
    let el = t.elapsed().as_secs_f64();
    let pk = tx_packets(a) + tx_packets(b) - p0;
    Ok((el * 1e9 / pk.max(1) as f64, pk, l))
}
