//! Shared helpers for the ustack integration tests.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;

/// Two stacks joined by an in-memory link: 10.0.0.1/24 and 10.0.0.2/24.
pub async fn pair() -> (Stack, Stack) {
    pair_with(MemLinkConfig::default()).await
}

pub async fn pair_with(cfg: MemLinkConfig) -> (Stack, Stack) {
    let (a, b) = MemLink::pair(cfg);
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
    (s1, s2)
}

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
