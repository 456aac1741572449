//! The same application code run against `tokio::net` (kernel loopback) and `ustack::net`
//! (one stack, talking to itself through local delivery): the observable results must be
//! equal. Only the `use` line differs, through the `app!` macro.

use std::time::Duration;

macro_rules! app {
    ($($net:ident)::+) => {
        use std::io::ErrorKind;
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use $($net)::+::{TcpListener, TcpStream, UdpSocket};

        fn fnv(h: &mut u64, data: &[u8]) {
            for b in data {
                *h ^= u64::from(*b);
                *h = h.wrapping_mul(0x100_0000_01b3);
            }
        }

        async fn listener(host: &str) -> (TcpListener, String) {
            let l = TcpListener::bind(format!("{host}:0")).await.unwrap();
            let port = l.local_addr().unwrap().port();
            (l, format!("{host}:{port}"))
        }

        fn spawn_echo(l: TcpListener) {
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
        }

        pub async fn run(host: &str, conns: usize, mib: usize) -> Vec<String> {
            let mut out = Vec::new();

            // Echo.
            let (l, addr) = listener(host).await;
            spawn_echo(l);
            let mut c = TcpStream::connect(addr.as_str()).await.unwrap();
            c.write_all(b"echo me").await.unwrap();
            let mut b = [0u8; 7];
            c.read_exact(&mut b).await.unwrap();
            out.push(format!("echo {}", String::from_utf8_lossy(&b)));

            // Half-close: the server answers after our FIN, then closes.
            let (l, addr) = listener(host).await;
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).await.unwrap();
                s.write_all(format!("got {} bytes", req.len()).as_bytes()).await.unwrap();
            });
            let mut c = TcpStream::connect(addr.as_str()).await.unwrap();
            c.write_all(b"0123456789").await.unwrap();
            c.shutdown().await.unwrap();
            let mut resp = String::new();
            c.read_to_string(&mut resp).await.unwrap();
            out.push(format!("half-close {resp} then {}", c.read(&mut [0u8; 1]).await.unwrap()));

            // Bulk transfer with a hash at both ends.
            let (l, addr) = listener(host).await;
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                let mut buf = vec![0u8; 64 * 1024];
                let mut n_total = 0usize;
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    fnv(&mut h, &buf[..n]);
                    n_total += n;
                }
                (n_total, h)
            });
            let mut c = TcpStream::connect(addr.as_str()).await.unwrap();
            let chunk: Vec<u8> = (0..1 << 20).map(|i: usize| (i % 253) as u8).collect();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for _ in 0..mib {
                fnv(&mut h, &chunk);
                c.write_all(&chunk).await.unwrap();
            }
            c.shutdown().await.unwrap();
            let (n, sh) = server.await.unwrap();
            out.push(format!("transfer {n} bytes, hash match {}", sh == h));

            // Many concurrent connections.
            let (l, addr) = listener(host).await;
            spawn_echo(l);
            let mut tasks = Vec::new();
            for i in 0..conns {
                let addr = addr.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = TcpStream::connect(addr.as_str()).await.unwrap();
                    let msg = i.to_string();
                    c.write_all(msg.as_bytes()).await.unwrap();
                    let mut b = vec![0u8; msg.len()];
                    c.read_exact(&mut b).await.unwrap();
                    b == msg.as_bytes()
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            out.push(format!("concurrent {ok}/{conns}"));

            // Refused: nobody listens on a port that was just freed.
            let (l, addr) = listener(host).await;
            drop(l);
            tokio::time::sleep(Duration::from_millis(10)).await;
            // Errors carry the kernel's errno and message ("... (os error 111)").
            let e = TcpStream::connect(addr.as_str()).await.map(|_| ()).unwrap_err();
            out.push(format!("refused {:?} {:?} {e}", e.kind(), e.raw_os_error()));

            // Address in use.
            let (_l, addr) = listener(host).await;
            let e = TcpListener::bind(addr.as_str()).await.map(|_| ()).unwrap_err();
            out.push(format!("in use {:?} {:?} {e}", e.kind(), e.raw_os_error()));

            // Reset: the server aborts with SO_LINGER 0.
            let (l, addr) = listener(host).await;
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                s.set_zero_linger().unwrap();
                let _ = go_rx.await;
                drop(s);
            });
            let mut c = TcpStream::connect(addr.as_str()).await.unwrap();
            go_tx.send(()).unwrap();
            let r = c.read(&mut [0u8; 8]).await;
            out.push(format!("reset {:?}", r.map_err(|e| (e.kind(), e.raw_os_error(), e.to_string()))));
            let r = c.write_all(b"after reset").await;
            out.push(format!("write after reset is error {}", r.is_err()));

            // UDP echo.
            let srv = UdpSocket::bind(format!("{host}:0")).await.unwrap();
            let srv_addr = srv.local_addr().unwrap();
            let cli = UdpSocket::bind(format!("{host}:0")).await.unwrap();
            cli.send_to(b"datagram", srv_addr).await.unwrap();
            let mut b = [0u8; 64];
            let (n, from) = srv.recv_from(&mut b).await.unwrap();
            srv.send_to(&b[..n], from).await.unwrap();
            let (n, _) = cli.recv_from(&mut b).await.unwrap();
            out.push(format!("udp {}", String::from_utf8_lossy(&b[..n])));
            let _ = ErrorKind::Other;
            out
        }
    };
}

mod on_tokio {
    app!(tokio::net);
}

mod on_ustack {
    app!(ustack::net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_app_same_results_on_tokio_and_ustack() {
    const CONNS: usize = 1000;
    const MIB: usize = 32;
    let kernel = on_tokio::run("127.0.0.1", CONNS, MIB).await;

    let (a, _b) = ustack::netdev::mem::MemLink::pair(Default::default());
    let stack = ustack::Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    stack.set_default();
    let ours = tokio::time::timeout(
        Duration::from_secs(120),
        on_ustack::run("10.0.0.1", CONNS, MIB),
    )
    .await
    .unwrap();
    ustack::Stack::clear_default();

    assert_eq!(kernel, ours);
    assert_eq!(ours[3], format!("concurrent {CONNS}/{CONNS}"));
}
