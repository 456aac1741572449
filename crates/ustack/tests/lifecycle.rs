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
