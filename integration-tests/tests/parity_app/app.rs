//! The application side of issue 5's parity test (`integration-tests/tests/parity.rs`).
//!
//! One application suite, generic over a small [`Net`] trait, runs unchanged against
//! `tokio::net` (kernel sockets) and `ustack::net` (a ustack stack). Each suite has a
//! server role and a client role, each on its own `Net`, so the same code covers:
//!
//! - `kernel`: both roles on `tokio::net`, over the loopback of the namespace this process
//!   was started in (parity.rs starts it in a fresh one with `tcp_syn_retries=1` and a
//!   dummy device that swallows everything sent to [`KERNEL_SILENT`]);
//! - `memlink`: two ustack stacks joined by an in-memory `MemLink` pair, server on one,
//!   client on the other;
//! - `tun DEV`: one ustack stack on TUN device `DEV` (created by parity.rs in a namespace,
//!   kernel side 10.88.0.1/24, stack 10.88.0.2/24) and the kernel as its peer, twice: ustack
//!   serves and the kernel is the client, then the kernel serves and ustack is the client.
//!
//! Each suite prints `SUITE <label>`, one `RESULT <observation>` line per check and
//! `END <label>`. The observations contain nothing that differs between correct runs
//! (no ports, addresses or times), so parity.rs compares them as they are. Timings go to
//! stderr.
//!
//! The checks: echo; half-close (the client shuts down its write half, the server sees EOF
//! and still answers); 100 MiB client to server with SHA-256 at both ends; 1,000
//! connections open at the same time, each echoing; and the error kinds for a closed port
//! (`ConnectionRefused`), a peer that aborts (`SO_LINGER` 0) or closes with unread data
//! (`ConnectionReset`, then `BrokenPipe` on write), a SYN nobody answers (`TimedOut`), a
//! port already bound (`AddrInUse`) and an address that is not local (`AddrNotAvailable`).
//! Every check has its own time limit; a check that runs out reports that instead of its
//! result, and the suites go on.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Barrier};
use tokio::task::JoinHandle;

/// Where the kernel-only suite's timed-out connect goes (routed to a dummy device).
const KERNEL_SILENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The kernel's address on the TUN device.
const TUN_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// The stack's address on the TUN device.
const TUN_STACK_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
/// On the TUN subnet but nobody's: neither the kernel nor the stack answers.
const TUN_SILENT: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 77);
/// An address no test host has, for `AddrNotAvailable`.
const FOREIGN: Ipv4Addr = Ipv4Addr::new(10, 123, 45, 67);

/// Connections held open at the same time.
const CONNS: usize = 1000;
/// Size of the bulk transfer.
const BULK: u64 = 100 << 20;

/// What the application needs from a socket API: exactly the calls it makes.
trait Net: Clone + Send + Sync + 'static {
    type Listener: Send + Sync + 'static;
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn accept(l: &Self::Listener) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn local_addr(l: &Self::Listener) -> io::Result<SocketAddr>;
    fn set_zero_linger(s: &Self::Stream) -> io::Result<()>;
}

/// `tokio::net`: kernel sockets in this process's network namespace.
#[derive(Clone)]
struct Kernel;

/// `tokio::net` with `TCP_SYNCNT = 1` on each connecting socket: an unanswered connect
/// gives up after one SYN retransmission (about 3 s). Used only for the timed-out check, so
/// the other checks run with the kernel's default SYN retries.
#[derive(Clone)]
struct KernelSynCnt1;

impl Net for KernelSynCnt1 {
    type Listener = tokio::net::TcpListener;
    type Stream = tokio::net::TcpStream;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        Kernel.bind(addr)
    }
    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        use std::os::fd::AsRawFd;
        let sock = tokio::net::TcpSocket::new_v4()?;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to a live c_int of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_SYNCNT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        sock.connect(addr).await
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Kernel::accept(l).await
    }
    fn local_addr(l: &Self::Listener) -> io::Result<SocketAddr> {
        Kernel::local_addr(l)
    }
    fn set_zero_linger(s: &Self::Stream) -> io::Result<()> {
        Kernel::set_zero_linger(s)
    }
}

impl Net for Kernel {
    type Listener = tokio::net::TcpListener;
    type Stream = tokio::net::TcpStream;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        tokio::net::TcpListener::bind(addr)
    }
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        tokio::net::TcpStream::connect(addr)
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        l.accept().await.map(|(s, _)| s)
    }
    fn local_addr(l: &Self::Listener) -> io::Result<SocketAddr> {
        l.local_addr()
    }
    fn set_zero_linger(s: &Self::Stream) -> io::Result<()> {
        s.set_zero_linger()
    }
}

/// `ustack::net` on an explicit stack.
#[derive(Clone)]
struct Ustack(ustack::Stack);

impl Net for Ustack {
    type Listener = ustack::net::TcpListener;
    type Stream = ustack::net::TcpStream;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        let stack = self.0.clone();
        async move { ustack::net::TcpListener::bind_with(&stack, addr).await }
    }
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let stack = self.0.clone();
        async move { ustack::net::TcpStream::connect_with(&stack, addr).await }
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        l.accept().await.map(|(s, _)| s)
    }
    fn local_addr(l: &Self::Listener) -> io::Result<SocketAddr> {
        l.local_addr()
    }
    fn set_zero_linger(s: &Self::Stream) -> io::Result<()> {
        s.set_zero_linger()
    }
}

/// Byte `i` of the transfer pattern (the harness's pattern: `i % 251`).
fn fill_pattern(buf: &mut [u8], off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((off + i as u64) % 251) as u8;
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn kind<T>(r: &io::Result<T>) -> String {
    match r {
        Ok(_) => "Ok".to_string(),
        Err(e) => format!("Err({:?})", e.kind()),
    }
}

/// Aborts the tasks (servers that would otherwise accept forever) when a check ends,
/// however it ends.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    fn spawn(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(f));
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A server on `net` (bound to `ip`, port chosen by the stack) that echoes every
/// connection until EOF. Returns its address.
async fn echo_server<S: Net>(net: &S, ip: Ipv4Addr, tasks: &mut Tasks) -> io::Result<SocketAddr> {
    let l = net.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    tasks.spawn(async move {
        while let Ok(s) = S::accept(&l).await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(s);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// Runs one check under a time limit; its observation, or why there is none.
async fn check<F>(name: &str, limit: Duration, f: F) -> String
where
    F: Future<Output = io::Result<String>>,
{
    let start = Instant::now();
    let line = match tokio::time::timeout(limit, f).await {
        Ok(Ok(obs)) => format!("{name}: {obs}"),
        Ok(Err(e)) => format!("{name}: failed: {e} ({:?})", e.kind()),
        Err(_) => format!("{name}: no result within {} s", limit.as_secs()),
    };
    eprintln!("  {name}: {:.2} s", start.elapsed().as_secs_f64());
    println!("RESULT {line}");
    line
}

async fn echo<S: Net, C: Net>(server: &S, ip: Ipv4Addr, client: &C) -> io::Result<String> {
    let mut tasks = Tasks::default();
    let addr = echo_server(server, ip, &mut tasks).await?;
    let mut c = client.connect(addr).await?;
    c.write_all(b"hello, parity").await?;
    let mut back = [0u8; 13];
    c.read_exact(&mut back).await?;
    c.shutdown().await?;
    let eof = c.read(&mut [0u8; 1]).await?;
    Ok(format!(
        "{:?}, then {eof} bytes after our FIN",
        String::from_utf8_lossy(&back)
    ))
}

async fn half_close<S: Net, C: Net>(server: &S, ip: Ipv4Addr, client: &C) -> io::Result<String> {
    let mut tasks = Tasks::default();
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    let (tx, rx) = oneshot::channel();
    tasks.spawn(async move {
        let r = async {
            let mut s = S::accept(&l).await?;
            let mut req = Vec::new();
            s.read_to_end(&mut req).await?;
            // The client's write half is closed; ours still works.
            let reply = format!("server saw EOF after {} bytes\n", req.len());
            s.write_all(reply.as_bytes()).await?;
            s.write_all(&vec![b'.'; 100_000]).await?;
            s.shutdown().await?;
            Ok::<_, io::Error>(())
        }
        .await;
        let _ = tx.send(kind(&r));
    });
    let mut c = client.connect(addr).await?;
    c.write_all(b"0123456789").await?;
    c.shutdown().await?;
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await?;
    let again = c.read(&mut [0u8; 1]).await?;
    let server_result = rx.await.unwrap_or_else(|_| "lost".into());
    let line = resp.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(format!(
        "reply {:?} + {} more bytes, then EOF ({again} bytes); server {server_result}",
        String::from_utf8_lossy(line),
        resp.len() - line.len()
    ))
}

async fn transfer<S: Net, C: Net>(server: &S, ip: Ipv4Addr, client: &C) -> io::Result<String> {
    let mut tasks = Tasks::default();
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    tasks.spawn(async move {
        let r = async {
            let mut s = S::accept(&l).await?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0u64;
            loop {
                let k = s.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                n += k as u64;
            }
            let line = format!("{n} {}", hex(&h.finalize()));
            s.write_all(line.as_bytes()).await?;
            s.shutdown().await
        }
        .await;
        if let Err(e) = r {
            eprintln!("transfer server: {e}");
        }
    });
    let start = Instant::now();
    let mut c = client.connect(addr).await?;
    let mut h = Sha256::new();
    // 251 * 1024 bytes: a whole number of pattern periods, so every chunk is the same.
    let mut chunk = vec![0u8; 251 * 1024];
    fill_pattern(&mut chunk, 0);
    let mut sent = 0u64;
    while sent < BULK {
        let k = (BULK - sent).min(chunk.len() as u64) as usize;
        c.write_all(&chunk[..k]).await?;
        h.update(&chunk[..k]);
        sent += k as u64;
    }
    c.shutdown().await?;
    let mut reply = String::new();
    c.read_to_string(&mut reply).await?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "  transfer: {:.0} MiB/s",
        BULK as f64 / (1 << 20) as f64 / secs
    );
    let ours = hex(&h.finalize());
    let (n, theirs) = reply.split_once(' ').unwrap_or(("?", "?"));
    Ok(format!(
        "server received {n} bytes, sha256 {theirs}, equal to the sender's: {}",
        theirs == ours
    ))
}

async fn concurrent<S: Net, C: Net>(server: &S, ip: Ipv4Addr, client: &C) -> io::Result<String> {
    let mut tasks = Tasks::default();
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (o, p) = (open.clone(), peak.clone());
    tasks.spawn(async move {
        while let Ok(s) = S::accept(&l).await {
            let (o, p) = (o.clone(), p.clone());
            tokio::spawn(async move {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let (mut r, mut w) = tokio::io::split(s);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    // Every client connects and echoes, then waits for all the others before closing, so
    // all CONNS connections are open at once.
    let barrier = Arc::new(Barrier::new(CONNS));
    let mut clients = Vec::new();
    for i in 0..CONNS {
        let (client, barrier) = (client.clone(), barrier.clone());
        clients.push(tokio::spawn(async move {
            let r = async {
                let mut c = client.connect(addr).await?;
                let msg = format!("connection {i:04}");
                c.write_all(msg.as_bytes()).await?;
                let mut back = vec![0u8; msg.len()];
                c.read_exact(&mut back).await?;
                Ok::<_, io::Error>((back == msg.as_bytes(), c))
            }
            .await;
            barrier.wait().await;
            let (ok, mut c) = r?;
            c.shutdown().await?;
            let eof = c.read(&mut [0u8; 1]).await?;
            Ok::<_, io::Error>(ok && eof == 0)
        }));
    }
    let mut ok = 0;
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for t in clients {
        match t.await {
            Ok(Ok(true)) => ok += 1,
            Ok(Ok(false)) => *errors.entry("wrong echo".into()).or_default() += 1,
            Ok(Err(e)) => *errors.entry(format!("{:?}", e.kind())).or_default() += 1,
            Err(e) => *errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let peak = peak.load(Ordering::SeqCst);
    let all_at_once = if peak == CONNS { "yes" } else { "no" };
    Ok(format!(
        "{ok}/{CONNS} echoed and closed cleanly, all open at once on the server: \
         {all_at_once}, errors {errors:?}"
    ))
}

async fn refused<S: Net, C: Net>(server: &S, ip: Ipv4Addr, client: &C) -> io::Result<String> {
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    drop(l);
    Ok(kind(&client.connect(addr).await))
}

/// The server aborts the connection: with `SO_LINGER` 0, or by closing while data it
/// has not read is queued (`unread`). The client then reads, and writes.
async fn reset<S: Net, C: Net>(
    server: &S,
    ip: Ipv4Addr,
    client: &C,
    unread: bool,
) -> io::Result<String> {
    let mut tasks = Tasks::default();
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<String>();
    tasks.spawn(async move {
        let r = async {
            let mut s = S::accept(&l).await?;
            if unread {
                // The client sends 2 bytes in one segment; read 1, close with 1 unread.
                s.read_exact(&mut [0u8; 1]).await?;
            } else {
                S::set_zero_linger(&s)?;
                let _ = go_rx.await;
            }
            drop(s);
            Ok::<_, io::Error>(())
        }
        .await;
        let _ = done_tx.send(kind(&r));
    });
    let mut c = client.connect(addr).await?;
    if unread {
        c.write_all(b"ab").await?;
    } else {
        let _ = go_tx.send(());
    }
    let read = c.read(&mut [0u8; 8]).await;
    let write = c.write_all(b"after the reset").await;
    let server_result = done_rx.await.unwrap_or_else(|_| "lost".into());
    Ok(format!(
        "read {}, then write {}; server {server_result}",
        kind(&read),
        kind(&write)
    ))
}

async fn timed_out<C: Net>(client: &C, silent: Ipv4Addr) -> io::Result<String> {
    let start = Instant::now();
    let r = client.connect((silent, 9).into()).await;
    let secs = start.elapsed().as_secs_f64();
    eprintln!("  timed out: connect gave up after {secs:.1} s");
    // SYN, one retransmission 1 s later, give up 2 s after that: about 3 s.
    let about_3s = if (2.0..6.0).contains(&secs) {
        "yes"
    } else {
        "no"
    };
    Ok(format!("{}, after about 3 s: {about_3s}", kind(&r)))
}

async fn addr_in_use<S: Net>(server: &S, ip: Ipv4Addr) -> io::Result<String> {
    let l = server.bind((ip, 0).into()).await?;
    let addr = S::local_addr(&l)?;
    let again = server.bind(addr).await;
    let foreign = server.bind((FOREIGN, 0).into()).await;
    drop(l);
    Ok(format!(
        "second bind {}; bind to a foreign address {}",
        kind(&again),
        kind(&foreign)
    ))
}

/// The application: every check, the server role on `server` at `ip`, the client role on
/// `client`; the timed-out check connects with `slow.0` (a client configured to give up
/// after one SYN retransmission) to `slow.1`, an address that never answers.
async fn suite<S: Net, C: Net, T: Net>(
    label: &str,
    server: S,
    ip: Ipv4Addr,
    client: C,
    slow: (T, Ipv4Addr),
) -> Vec<String> {
    let s = Duration::from_secs;
    println!("SUITE {label}");
    eprintln!("suite {label}:");
    let (srv, cli) = (&server, &client);
    let out = vec![
        check("echo", s(20), echo(srv, ip, cli)).await,
        check("half-close", s(20), half_close(srv, ip, cli)).await,
        check("transfer 100 MiB", s(150), transfer(srv, ip, cli)).await,
        check("1000 concurrent", s(90), concurrent(srv, ip, cli)).await,
        check("refused", s(20), refused(srv, ip, cli)).await,
        check("reset (linger 0)", s(20), reset(srv, ip, cli, false)).await,
        check("reset (unread data)", s(20), reset(srv, ip, cli, true)).await,
        check("timed out", s(30), timed_out(&slow.0, slow.1)).await,
        check("address in use", s(20), addr_in_use(srv, ip)).await,
    ];
    println!("END {label}");
    out
}

/// A stack whose unanswered connects give up in about 3 s, like a kernel socket with
/// `TCP_SYNCNT = 1` (SYN, one retransmission after 1 s, then 2 s more), on an in-memory
/// link whose other end (returned, kept alive) nobody reads: [`BLACKHOLE_SILENT`] never
/// answers. The suites' own stacks keep the default SYN retries.
async fn blackhole_stack() -> io::Result<(Ustack, ustack::netdev::mem::MemDevice)> {
    use ustack::netdev::mem::{MemLink, MemLinkConfig};
    let (a, b) = MemLink::pair(MemLinkConfig::default());
    let stack = ustack::Stack::builder()
        .device(a)
        .addr("10.0.9.1/24".parse().map_err(io::Error::other)?)
        .tcp_config(ustack::TcpConfig {
            syn_retries: 1,
            ..Default::default()
        })
        .build()
        .await?;
    Ok((Ustack(stack), b))
}

/// The unanswered address on the black-hole stack's link.
const BLACKHOLE_SILENT: Ipv4Addr = Ipv4Addr::new(10, 0, 9, 99);

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < 16384 {
            lim.rlim_cur = lim.rlim_max.min(16384);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn run(args: &[String]) -> io::Result<()> {
    match args.first().map(String::as_str) {
        Some("kernel") => {
            let lo = Ipv4Addr::LOCALHOST;
            suite("kernel", Kernel, lo, Kernel, (KernelSynCnt1, KERNEL_SILENT)).await;
        }
        Some("memlink") => {
            use ustack::netdev::mem::{MemLink, MemLinkConfig};
            let (a, b) = MemLink::pair(MemLinkConfig::default());
            let server = ustack::Stack::builder()
                .device(a)
                .addr("10.0.0.1/24".parse().map_err(io::Error::other)?)
                .build()
                .await?;
            let client = ustack::Stack::builder()
                .device(b)
                .addr("10.0.0.2/24".parse().map_err(io::Error::other)?)
                .build()
                .await?;
            let ip = Ipv4Addr::new(10, 0, 0, 1);
            let (s, c) = (Ustack(server.clone()), Ustack(client.clone()));
            let (slow, _hole) = blackhole_stack().await?;
            suite("memlink", s, ip, c, (slow.clone(), BLACKHOLE_SILENT)).await;
            slow.0.shutdown().await;
            client.shutdown().await;
            server.shutdown().await;
        }
        Some("tun") => {
            let dev = args.get(1).map_or("ust0", String::as_str);
            let stack = ustack::Stack::builder()
                .tun(dev)
                .addr(
                    format!("{TUN_STACK_IP}/24")
                        .parse()
                        .map_err(io::Error::other)?,
                )
                .build()
                .await?;
            let us = Ustack(stack.clone());
            suite(
                "tun: ustack serves",
                us.clone(),
                TUN_STACK_IP,
                Kernel,
                (KernelSynCnt1, TUN_SILENT),
            )
            .await;
            let (slow, _hole) = blackhole_stack().await?;
            suite(
                "tun: kernel serves",
                Kernel,
                TUN_HOST_IP,
                us,
                (slow.clone(), BLACKHOLE_SILENT),
            )
            .await;
            slow.0.shutdown().await;
            stack.shutdown().await;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "usage: parity_app kernel | memlink | tun DEV",
            ))
        }
    }
    Ok(())
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(&args)) {
        eprintln!("parity_app: {e}");
        std::process::exit(1);
    }
    println!("DONE");
    // Servers of checks that ran out of time may still hold tasks; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(1));
}
