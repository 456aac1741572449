//! Issue 5 over TUN in a namespace: the same client application (tokio, kernel sockets)
//! runs against the benchmark protocol served by the kernel (`tokio::net`) and by ustack
//! (`bench_server` on a TUN device), and must observe the same results: echo, half-close,
//! a 100 MiB transfer, 1,000 concurrent connections, and the error kind for a closed port.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ustack_integration_tests::{require_root, TunNet, HOST_IP, STACK_IP};

const BASE: u16 = 5001;
const CONNS: usize = 1000;
const MIB: u64 = 100;

/// The client application: the same code against either server.
async fn client_suite(ip: Ipv4Addr) -> Vec<String> {
    let at = move |p: u16| SocketAddr::from((ip, p));
    let mut out = Vec::new();

    let mut c = TcpStream::connect(at(BASE + 1))
        .await
        .expect("connect echo");
    c.write_all(b"echo me").await.unwrap();
    let mut b = [0u8; 7];
    c.read_exact(&mut b).await.unwrap();
    out.push(format!("echo {}", String::from_utf8_lossy(&b)));
    drop(c);

    // Half-close: the sink answers after our FIN with the count, then closes.
    let mut c = TcpStream::connect(at(BASE)).await.expect("connect sink");
    c.write_all(b"0123456789").await.unwrap();
    c.shutdown().await.unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    out.push(format!("half-close reply {reply:?}"));

    // Bulk.
    let mut c = TcpStream::connect(at(BASE)).await.expect("connect sink");
    let chunk = vec![0x5au8; 256 * 1024];
    let n = MIB * 1024 * 1024;
    let mut sent = 0u64;
    while sent < n {
        c.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    c.shutdown().await.unwrap();
    let mut r = [0u8; 8];
    c.read_exact(&mut r).await.unwrap();
    out.push(format!("bulk {} of {sent}", u64::from_be_bytes(r)));

    // Close after one byte: EOF follows.
    let mut c = TcpStream::connect(at(BASE + 2))
        .await
        .expect("connect close");
    c.write_all(b"x").await.unwrap();
    let n = c.read(&mut [0u8; 16]).await.unwrap_or(usize::MAX);
    out.push(format!("close then read {n}"));

    // Many concurrent connections to echo.
    let mut tasks = Vec::new();
    for i in 0..CONNS {
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(at(BASE + 1)).await?;
            let msg = format!("connection {i:04}");
            c.write_all(msg.as_bytes()).await?;
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).await?;
            Ok::<bool, std::io::Error>(back == msg.as_bytes())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(true)) = t.await {
            ok += 1;
        }
    }
    out.push(format!("concurrent {ok}/{CONNS}"));

    // A closed port.
    let e = TcpStream::connect(at(5999)).await.err().map(|e| e.kind());
    out.push(format!("closed port {e:?}"));
    out
}

/// The kernel's version of bench_server (sink, echo, close), on tokio::net.
async fn kernel_bench_server(ip: Ipv4Addr) {
    for (i, port) in [BASE, BASE + 1, BASE + 2].into_iter().enumerate() {
        let l = TcpListener::bind((ip, port)).await.expect("bind");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 256 * 1024];
                    match i {
                        0 => {
                            let mut total = 0u64;
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                total += n as u64;
                            }
                            let _ = s.write_all(&total.to_be_bytes()).await;
                        }
                        1 => {
                            let (mut r, mut w) = s.split();
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        }
                        _ => {
                            let _ = s.read(&mut buf[..1]).await;
                        }
                    }
                });
            }
        });
    }
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < 8192 {
            lim.rlim_cur = lim.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run_in(net: &TunNet, server_ip: Ipv4Addr, kernel_server: bool) -> Vec<String> {
    net.ns.within(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if kernel_server {
                kernel_bench_server(server_ip).await;
            }
            tokio::time::timeout(Duration::from_secs(120), client_suite(server_ip))
                .await
                .expect("client suite timed out")
        })
    })
}

#[test]
fn same_client_same_results_kernel_vs_ustack_over_tun() {
    require_root!();
    raise_fd_limit();
    let net = TunNet::new("parity");
    let kernel = run_in(&net, HOST_IP.parse().unwrap(), true);
    let server = net.stack("bench_server", &[]);
    let ustack = run_in(&net, STACK_IP.parse().unwrap(), false);
    println!("kernel: {kernel:#?}\nustack: {ustack:#?}");
    assert_eq!(kernel, ustack, "kernel and ustack servers differ");
    assert_eq!(kernel[0], "echo echo me");
    assert!(kernel
        .iter()
        .any(|l| l == &format!("concurrent {CONNS}/{CONNS}")));
    let (ok, log) = server.terminate(Duration::from_secs(10));
    assert!(ok, "bench_server did not exit cleanly:\n{log}");
}
