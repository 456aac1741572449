//! Shared helpers for the ustack integration tests.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream};
use ustack::netdev::mem::{MemLink, MemLinkConfig, MemLinkHandle};
use ustack::{Stack, StackBuilder};

/// Two stacks joined by an in-memory link: 10.0.0.1/24 and 10.0.0.2/24.
pub async fn pair() -> (Stack, Stack) {
    pair_with(MemLinkConfig::default()).await
}

pub async fn pair_with(cfg: MemLinkConfig) -> (Stack, Stack) {
    let (s1, s2, _) = pair_with_link(cfg).await;
    (s1, s2)
}

/// Like [`pair_with`], plus a handle to take the link down and up.
pub async fn pair_with_link(cfg: MemLinkConfig) -> (Stack, Stack, MemLinkHandle) {
    pair_custom(cfg, |b| b, |b| b).await
}

/// Like [`pair_with_link`], each stack's builder first passed through its closure (to
/// add a fault injector, a pcap capture, ...; they apply to the link's end).
pub async fn pair_custom(
    cfg: MemLinkConfig,
    a_opts: impl FnOnce(StackBuilder) -> StackBuilder,
    b_opts: impl FnOnce(StackBuilder) -> StackBuilder,
) -> (Stack, Stack, MemLinkHandle) {
    let (a, b) = MemLink::pair(cfg);
    let link = a.handle();
    let s1 = a_opts(
        Stack::builder()
            .device(a)
            .addr("10.0.0.1/24".parse().unwrap())
            .secret([1; 16]),
    )
    .build()
    .await
    .unwrap();
    let s2 = b_opts(
        Stack::builder()
            .device(b)
            .addr("10.0.0.2/24".parse().unwrap())
            .secret([2; 16]),
    )
    .build()
    .await
    .unwrap();
    (s1, s2, link)
}

/// Echoes every connection accepted on `listener` until it fails (a task per connection);
/// a connection closes after the peer's EOF.
pub async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move { echo_conn(&mut s).await });
    }
}

/// Echoes one connection until the peer's EOF or an error.
pub async fn echo_conn(s: &mut TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Sends `len` bytes of a pattern keyed by `key` through an echo connection while
/// reading the echo, then shuts down writing; asserts that exactly the bytes sent came
/// back (`what` names the connection in the message).
pub async fn echo_roundtrip(st: TcpStream, len: usize, key: u64, what: &str) {
    let (mut r, mut w) = st.into_split();
    let data: Vec<u8> = (0..len).map(|j| (j as u64 * 31 + key) as u8).collect();
    let expect = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::with_capacity(len);
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == expect, "{what}: echoed bytes differ");
}

/// Polls `cond` every 5 ms for up to 1 s; true once it holds.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
