//! Stack lifecycle: shutdown, drop, the default stack.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{pair, B};
use ustack::net::{TcpListener, UdpSocket};
use ustack::Stack;

#[tokio::test]
async fn shutdown_stops_the_driver_and_frees_the_stack() {
    let (s1, s2) = pair().await;
    s1.ping(B, Duration::from_secs(1)).await.unwrap();
    assert!(s1.is_running());
    let weak = s1.downgrade();
    s1.shutdown().await;
    assert!(!s1.is_running());
    // Socket calls now fail plainly.
    let err = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    drop(s1);
    assert!(
        weak.upgrade().is_none(),
        "no handle may survive shutdown + drop"
    );
    drop(s2);
}

#[tokio::test]
async fn dropping_the_last_handle_ends_the_driver_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (s1, s2) = pair().await;
    assert_eq!(metrics.num_alive_tasks(), before + 2);
    let w1 = s1.downgrade();
    drop(s1);
    drop(s2);
    assert!(w1.upgrade().is_none());
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "driver tasks leaked");
}

/// The default stack is process-wide, so everything touching it lives in one test.
#[tokio::test]
async fn default_stack_path_and_its_error() {
    Stack::clear_default();
    let err = TcpListener::bind("0.0.0.0:80").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("no default ustack Stack"), "{err}");
    let err = UdpSocket::bind("0.0.0.0:0").await.unwrap_err();
    assert!(err.to_string().contains("set_default"), "{err}");

    let (s1, s2) = pair().await;
    s1.set_default();
    let a = UdpSocket::bind("10.0.0.1:5000").await.unwrap();
    let b = UdpSocket::bind_with(&s2, "10.0.0.2:5001").await.unwrap();
    a.send_to(b"hi", "10.0.0.2:5001").await.unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert_eq!(from, "10.0.0.1:5000".parse().unwrap());
    Stack::clear_default();
}

#[tokio::test]
async fn address_arguments_are_numeric_ipv4_only() {
    let (s1, _s2) = pair().await;
    let err = UdpSocket::bind_with(&s1, "localhost:80").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = UdpSocket::bind_with(&s1, "[::1]:80").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // Binding an address the stack does not own.
    let err = UdpSocket::bind_with(&s1, "10.9.9.9:80").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
}

#[tokio::test]
async fn sock_create_errors_for_unsupported_family_type_protocol() {
    use ustack::socket::{errno, AddressFamily, SockType};
    let (s1, _s2) = pair().await;
    let tcp = s1.socket(AddressFamily::INET, SockType::Stream, 0).unwrap();
    assert_eq!(
        (tcp.ops_name(), tcp.proto_name()),
        ("inet_stream_ops", "TCP")
    );
    tcp.bind("10.0.0.1:0").unwrap();
    assert_ne!(tcp.local_addr().unwrap().port(), 0);
    let udp = s1.socket(AddressFamily::INET, SockType::Dgram, 17).unwrap();
    assert_eq!(udp.sock_type(), SockType::Dgram);
    let raw = |r: std::io::Result<ustack::net::Socket>| r.unwrap_err().raw_os_error();
    assert_eq!(
        raw(s1.socket(AddressFamily::INET6, SockType::Stream, 0)),
        Some(errno::EAFNOSUPPORT)
    );
    assert_eq!(
        raw(s1.socket(AddressFamily::UNIX, SockType::Stream, 0)),
        Some(errno::EAFNOSUPPORT)
    );
    assert_eq!(
        raw(s1.socket(AddressFamily::INET, SockType::Raw, 0)),
        Some(errno::ESOCKTNOSUPPORT)
    );
    assert_eq!(
        raw(s1.socket(AddressFamily::INET, SockType::Stream, 17)),
        Some(errno::EPROTONOSUPPORT)
    );
    assert_eq!(
        raw(s1.socket(AddressFamily::INET, SockType::Dgram, 6)),
        Some(errno::EPROTONOSUPPORT)
    );
}

#[tokio::test]
async fn idle_stack_does_not_spin() {
    let (s1, _s2) = pair().await;
    s1.ping(B, Duration::from_secs(1)).await.unwrap();
    let before = s1.stats().driver;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = s1.stats().driver;
    assert!(
        after.polls - before.polls <= 2,
        "driver polled {} times while idle",
        after.polls - before.polls
    );
    assert_eq!(after.next_deadline_in, None, "an idle stack arms no timer");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Stack>();
    check::<ustack::net::TcpStream>();
    check::<ustack::net::TcpListener>();
    check::<UdpSocket>();
    check::<ustack::net::tcp::OwnedReadHalf>();
    check::<ustack::net::tcp::OwnedWriteHalf>();
    check::<ustack::net::tcp::ReadHalf<'static>>();
    check::<ustack::StackStats>();
}

#[tokio::test]
async fn shutdown_wakes_blocked_calls_with_an_error() {
    let (s1, _s2) = pair().await;
    let listener = TcpListener::bind_with(&s1, "0.0.0.0:80").await.unwrap();
    let udp = UdpSocket::bind_with(&s1, "0.0.0.0:9").await.unwrap();
    let accepting = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    let receiving = tokio::spawn(async move { udp.recv_from(&mut [0u8; 8]).await.map(|_| ()) });
    tokio::task::yield_now().await;
    s1.shutdown().await;
    let e = tokio::time::timeout(Duration::from_secs(1), accepting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    let e = tokio::time::timeout(Duration::from_secs(1), receiving)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("shut down"), "{e}");
}

/// Opens `n` established connections from `s1` to `s2`; returns both ends.
async fn establish(
    s1: &Stack,
    s2: &Stack,
    n: usize,
) -> (Vec<ustack::net::TcpStream>, Vec<ustack::net::TcpStream>) {
    let listener = TcpListener::bind_with(s2, "0.0.0.0:7000").await.unwrap();
    let accepting = tokio::spawn(async move {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(listener.accept().await.unwrap().0);
        }
        v
    });
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(
            ustack::net::TcpStream::connect_with(s1, (B, 7000))
                .await
                .unwrap(),
        );
    }
    (clients, accepting.await.unwrap())
}

async fn shutdown_with_many_connections(drop_first: bool) {
    let (s1, s2) = pair().await;
    let (clients, servers) = establish(&s1, &s2, 2_000).await;
    if drop_first {
        drop(clients);
        drop(servers);
        tokio::time::timeout(Duration::from_secs(10), async {
            s1.shutdown().await;
            s2.shutdown().await;
        })
        .await
        .expect("shutdown hung");
    } else {
        tokio::time::timeout(Duration::from_secs(10), async {
            s1.shutdown().await;
            s2.shutdown().await;
        })
        .await
        .expect("shutdown hung");
        assert!(!s1.is_running() && !s2.is_running());
        tokio::time::timeout(Duration::from_secs(10), async move {
            drop(clients);
            drop(servers);
        })
        .await
        .expect("drop after shutdown hung");
    }
}

#[tokio::test]
async fn shutdown_is_prompt_with_many_live_connections() {
    shutdown_with_many_connections(false).await;
}

#[tokio::test]
async fn shutdown_is_prompt_with_many_dropped_connections() {
    shutdown_with_many_connections(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_with_many_connections_multi_thread() {
    shutdown_with_many_connections(false).await;
}

/// Like the scale benchmark: one current-thread runtime, a `LocalSet`, an accept loop that
/// keeps running, many established connections, then shutdown of both stacks.
#[test]
fn shutdown_is_prompt_on_a_local_set_with_accept_loops() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use tokio::task::{spawn_local, LocalSet};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(LocalSet::new().run_until(async {
        let (s1, s2) = common::pair_with(ustack::netdev::mem::MemLinkConfig {
            mtu: 1500,
            queue_len: 4096,
            ..Default::default()
        })
        .await;
        let listener = TcpListener::bind_with(&s2, "0.0.0.0:7001").await.unwrap();
        let accepted = Rc::new(RefCell::new(Vec::new()));
        let acc = accepted.clone();
        spawn_local(async move {
            while let Ok((s, _)) = listener.accept().await {
                acc.borrow_mut().push(s);
            }
        });
        let n = 4_000;
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut hs = Vec::new();
        for _ in 0..64 {
            let (s1, got) = (s1.clone(), got.clone());
            hs.push(spawn_local(async move {
                for _ in 0..n / 64 {
                    let c = ustack::net::TcpStream::connect_with(&s1, (B, 7001))
                        .await
                        .unwrap();
                    got.borrow_mut().push(c);
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), async {
            s2.shutdown().await;
            s1.shutdown().await;
        })
        .await
        .expect("shutdown hung");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "shutdown took {:?}",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), async {
            got.borrow_mut().clear();
            accepted.borrow_mut().clear();
        })
        .await
        .expect("drop after shutdown hung");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "drops took {:?}",
            t.elapsed()
        );
    }));
}
