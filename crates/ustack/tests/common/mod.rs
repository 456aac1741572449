//! Shared helpers for the ustack integration tests.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::TcpListener;
use ustack::netdev::mem::{MemLink, MemLinkConfig, MemLinkHandle};
use ustack::Stack;

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
    let (a, b) = MemLink::pair(cfg);
    let link = a.handle();
    let s1 = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .secret([1; 16])
        .build()
        .await
        .unwrap();
    let s2 = Stack::builder()
        .device(b)
        .addr("10.0.0.2/24".parse().unwrap())
        .secret([2; 16])
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
        tokio::spawn(async move {
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
        });
    }
}

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
