//! The ustack TCP engine, sans-IO (Linux: `net/ipv4/tcp*.c`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cc;
pub mod isn;
pub mod rtt;
pub mod syncookie;
pub mod timer;
