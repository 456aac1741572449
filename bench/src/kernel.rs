//! Kernel-socket parts: the benchmark server on kernel TCP (`kserve`, the kernel-to-kernel
//! baseline over veth and through the loss relay) and the client that drives every TUN and
//! veth figure (`client send|recv|pingpong|connrate`). Both run on tokio current-thread.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proto;
use crate::util::{current_thread_rt, emit, gbps, latency_fields, round3, runtime};

/// The kernel's TCP_INFO of `s`.
fn tcp_info(s: &impl AsRawFd) -> Option<libc::tcp_info> {
    // SAFETY: getsockopt writes at most `len` bytes into a zeroed, properly sized struct.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        );
        (rc == 0).then_some(info)
    }
}

/// `(cwnd in segments, smoothed RTT in µs, mss)` from the kernel's TCP_INFO.
pub fn kernel_tcp_info(s: &impl AsRawFd) -> Option<(u32, u32, u32)> {
    tcp_info(s).map(|i| (i.tcpi_snd_cwnd, i.tcpi_rtt, i.tcpi_snd_mss))
}

/// Retransmissions, RTO, reordering and the final window of a kernel sender (TCP_INFO).
fn kernel_sender_info(s: &impl AsRawFd) -> Option<serde_json::Value> {
    let i = tcp_info(s)?;
    Some(
        json!({ "total_retrans": i.tcpi_total_retrans, "rto_ms": i.tcpi_rto / 1000,
                 "srtt_us": i.tcpi_rtt, "cwnd": i.tcpi_snd_cwnd, "ssthresh": i.tcpi_snd_ssthresh,
                 "reordering": i.tcpi_reordering, "ca_state": i.tcpi_ca_state }),
    )
}

/// Congestion control to set on every kernel socket (`--cc`), if any.
pub static CC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets TCP_CONGESTION on `s` to `--cc` (needs CAP_NET_ADMIN for algorithms outside
/// `tcp_allowed_congestion_control`; a netns cannot change its default to those).
pub fn apply_cc(s: &impl AsRawFd) -> io::Result<()> {
    let Some(name) = CC.get() else { return Ok(()) };
    // SAFETY: passes a byte buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr() as *const libc::c_void,
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The congestion control in use on `s` (TCP_CONGESTION).
pub fn current_cc(s: &impl AsRawFd) -> String {
    let mut buf = [0u8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return String::new();
    }
    String::from_utf8_lossy(&buf[..len as usize])
        .trim_end_matches('\0')
        .to_string()
}

/// Appends cwnd/RTT samples as JSON lines `{"stack","t_ms","cwnd","rtt_us","mss"}`.
pub fn write_samples(path: &Option<PathBuf>, stack: &str, samples: &[(f64, u32, u32, u32)]) {
    let Some(path) = path else { return };
    let mut out = String::new();
    for (t, cwnd, rtt, mss) in samples {
        out.push_str(&format!(
            "{}\n",
            json!({ "stack": stack, "t_ms": round3(*t), "cwnd": cwnd, "rtt_us": rtt, "mss": mss })
        ));
    }
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(out.as_bytes());
    }
}

/// The four-port server on kernel sockets, for `lifetime` seconds: on a current-thread
/// runtime, or tokio's multi-thread runtime with `threads` workers when more than one.
pub fn kserve(
    ip: String,
    lifetime: f64,
    info_log: Option<PathBuf>,
    threads: usize,
) -> io::Result<()> {
    runtime(threads).block_on(async move {
        let mut ls = Vec::new();
        for port in [proto::SINK, proto::ECHO, proto::CLOSE, proto::SOURCE] {
            ls.push((port, TcpListener::bind(format!("{ip}:{port}")).await?));
        }
        println!("READY kserve {ip}");
        let info_log = Arc::new(info_log);
        for (port, l) in ls {
            let info_log = info_log.clone();
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    if let Err(e) = apply_cc(&s) {
                        eprintln!("TCP_CONGESTION: {e}");
                    }
                    let _ = s.set_nodelay(port == proto::ECHO);
                    let info_log = info_log.clone();
                    tokio::spawn(async move {
                        match port {
                            proto::SINK => {
                                let _ = proto::sink(s).await;
                            }
                            proto::ECHO => {
                                let _ = proto::echo(s).await;
                            }
                            proto::CLOSE => proto::close_one(s).await,
                            _ => {
                                let mut samples = Vec::new();
                                proto::source(
                                    &s,
                                    Duration::from_secs(600),
                                    Duration::from_millis(50),
                                    |s, t| {
                                        if let Some((c, r, m)) = kernel_tcp_info(s) {
                                            samples.push((t.as_secs_f64() * 1e3, c, r, m));
                                        }
                                    },
                                )
                                .await;
                                write_samples(&info_log, "kernel", &samples);
                            }
                        }
                    });
                }
            });
        }
        tokio::time::sleep(Duration::from_secs_f64(lifetime)).await;
        Ok(())
    })
}

/// Which client test to run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ClientMode {
    /// Bulk client -> server (port 5001), Gbit/s from the server's byte count.
    Send,
    /// Bulk server -> client (port 5004), Gbit/s counted by the client.
    Recv,
    /// 1-byte ping-pong on port 5002 (TCP_NODELAY), RTT percentiles.
    Pingpong,
    /// Connect, send 1 byte, wait for the server's close (port 5003), at a concurrency.
    Connrate,
}

/// Runs one client test against `to` (an IP) and prints a RESULT line named `name`/`stack`.
#[allow(clippy::too_many_arguments)]
pub fn client(
    mode: ClientMode,
    to: String,
    port: Option<u16>,
    secs: f64,
    conc: usize,
    name: String,
    stack: String,
    server_pid: Option<u32>,
) -> io::Result<()> {
    current_thread_rt().block_on(async move {
        let ip: std::net::IpAddr = to
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let at = |own: u16| SocketAddr::new(ip, port.unwrap_or(own));
        match mode {
            ClientMode::Send => send(at(proto::SINK), secs, &name, &stack, server_pid).await,
            ClientMode::Recv => recv(at(proto::SOURCE), secs, &name, &stack).await,
            ClientMode::Pingpong => pingpong(at(proto::ECHO), secs, &name, &stack).await,
            ClientMode::Connrate => connrate(at(proto::CLOSE), secs, conc, &name, &stack).await,
        }
    })
}

async fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    apply_cc(&sock)?;
    match tokio::time::timeout(Duration::from_secs(3), sock.connect(to)).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// CPU time (user + system, all threads) this process has used, in seconds.
fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) process `pid` has used, in seconds (`/proc/<pid>/stat`).
fn pid_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start with the state
    // (field 3); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

async fn send(
    to: SocketAddr,
    secs: f64,
    name: &str,
    stack: &str,
    server_pid: Option<u32>,
) -> io::Result<()> {
    let mut s = connect(to).await?;
    let buf = vec![0xa5u8; 256 * 1024];
    let t0 = Instant::now();
    let (own0, srv0) = (own_cpu_secs(), server_pid.and_then(pid_cpu_secs));
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        match tokio::time::timeout(Duration::from_secs(5), s.write(&buf)).await {
            Ok(Ok(n)) => sent += n as u64,
            _ => break,
        }
    }
    // Share of one CPU each side used while the client was writing.
    let busy = t0.elapsed().as_secs_f64();
    let client_cpu = round3((own_cpu_secs() - own0) / busy);
    let server_cpu = server_pid
        .and_then(pid_cpu_secs)
        .zip(srv0)
        .map(|(b, a)| round3((b - a) / busy));
    s.shutdown().await?;
    let mut c = [0u8; 8];
    let counted = match tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut c)).await {
        Ok(Ok(_)) => Some(u64::from_be_bytes(c)),
        _ => None,
    };
    let el = t0.elapsed().as_secs_f64();
    let bytes = counted.unwrap_or(0);
    let mut f = json!({ "dir": "client_to_server", "cc": current_cc(&s), "bytes": bytes, "sent": sent, "secs": round3(el),
                "gbit_s": gbps(bytes, el), "mbit_s": round3(bytes as f64 * 8.0 / el / 1e6), "server_count_ok": counted == Some(sent),
                "client_cpu": client_cpu, "server_cpu": server_cpu });
    // The kernel sender's own view of the transfer (what the receiver's ACKs let it do).
    if let Some(i) = kernel_sender_info(&s) {
        f["sender"] = i;
    }
    emit(name, stack, f);
    Ok(())
}

async fn recv(to: SocketAddr, secs: f64, name: &str, stack: &str) -> io::Result<()> {
    let mut s = connect(to).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let t0 = Instant::now();
    let mut got = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n as u64,
            _ => break,
        }
    }
    let el = t0.elapsed().as_secs_f64();
    emit(
        name,
        stack,
        json!({ "dir": "server_to_client", "cc": current_cc(&s), "bytes": got, "secs": round3(el), "gbit_s": gbps(got, el), "mbit_s": round3(got as f64 * 8.0 / el / 1e6) }),
    );
    Ok(())
}

async fn pingpong(to: SocketAddr, secs: f64, name: &str, stack: &str) -> io::Result<()> {
    let mut s = connect(to).await?;
    s.set_nodelay(true)?;
    let mut lat = Vec::with_capacity(1 << 20);
    let t0 = Instant::now();
    let mut b = [1u8; 1];
    let mut i = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        s.write_all(&b).await?;
        match tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        i += 1;
        if i > 1000 {
            lat.push(t.elapsed().as_nanos() as u64);
        }
    }
    emit(name, stack, latency_fields(lat));
    Ok(())
}

async fn connrate(
    to: SocketAddr,
    secs: f64,
    conc: usize,
    name: &str,
    stack: &str,
) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    let results = local
        .run_until(async move {
            let mut tasks = Vec::new();
            for _ in 0..conc {
                tasks.push(tokio::task::spawn_local(async move {
                    let (mut ok, mut timeouts, mut errors) = (0u64, 0u64, 0u64);
                    while Instant::now() < deadline {
                        match one_cycle(to).await {
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
                if let Ok((a, b, c)) = t.await {
                    sum = (sum.0 + a, sum.1 + b, sum.2 + c);
                }
            }
            sum
        })
        .await;
    let el = t0.elapsed().as_secs_f64();
    emit(
        name,
        stack,
        json!({ "conns": results.0, "conn_per_s": round3(results.0 as f64 / el), "secs": round3(el),
                "conc": conc, "timeouts": results.1, "errors": results.2 }),
    );
    Ok(())
}

async fn one_cycle(to: SocketAddr) -> io::Result<()> {
    let mut s = connect(to).await?;
    s.write_all(&[1u8]).await?;
    let mut b = [0u8; 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut b)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
}
