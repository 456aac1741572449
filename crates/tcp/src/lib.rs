//! The ustack TCP engine, sans-IO (Linux: `net/ipv4/tcp*.c`).
//!
//! [`TcpLayer`] takes received segments ([`TcpLayer::input`]), ICMP errors
//! ([`TcpLayer::err_input`]), the time ([`TcpLayer::on_timeout`]) and user calls, and
//! returns segments to send ([`TcpSegmentOut`]) plus the next deadline
//! ([`TcpLayer::poll_timeout`]). No I/O, no threads, no clock of its own.
//!
//! # Supported
//! - All eleven RFC 9293 states and transitions (simultaneous open and close, half-close,
//!   TIME_WAIT 2*MSL with reuse by a newer SYN), acceptability and trimming, RST rules.
//! - Linux-style demux (`inet_hashinfo`), RFC 6056 ephemeral ports, RFC 6528 ISNs,
//!   request socks in a bounded SYN queue, an accept queue bounded by the backlog, SYN
//!   cookies (RFC 4987) when the SYN queue overflows, a transparent "any" listener.
//! - Window scaling, timestamps and PAWS (RFC 7323), SACK and D-SACK (RFC 2018, 2883),
//!   SACK-based recovery (RFC 6675), NewReno (RFC 6582), RTO (RFC 6298), undo of
//!   spurious retransmissions, Reno and CUBIC behind [`cc::CongestionOps`].
//! - Nagle, delayed ACK, SWS avoidance, zero-window probes, keepalive, RFC 5961 challenge
//!   ACKs, PMTU discovery with RFC 5927 checks, header prediction with Linux counters.
//!
//! - ECN (RFC 3168) when negotiated ([`EcnMode`]), RACK-TLP loss detection (RFC 8985),
//!   Proportional Rate Reduction (RFC 6937).
//!
//! # Not supported
//! Urgent data, TCP Fast Open, MD5/AO signatures, pacing. See `docs/tcp.md` for the design
//! and the Linux function each part mirrors.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cc;
pub mod isn;
pub mod rtt;
pub mod syncookie;
pub mod timer;

pub mod config;
pub mod error;
pub mod info;
pub mod seq;
pub mod state;
pub mod stats;
pub mod wire;

mod api;
mod conn;
mod ctx;
mod hash;
mod input;
mod listen;
mod output;
mod poll;
mod rack;
mod rcv;
mod recovery;
mod ring;
mod sock;
mod stack;
mod tcb;
mod timers;
mod tw;

pub use api::{RecvDst, SendSrc, IN_PLACE_CHUNK};
pub use cc::CcAlgorithm;
pub use config::{EcnMode, KeepaliveCfg, SockOpt, SockOptName, TcpConfig, QUICKACK_SEGS};
pub use error::TcpError;
pub use info::{TcpInfo, TcpSocketEntry};
pub use output::TcpSegmentOut;
pub use seq::SeqNum;
pub use sock::SockId;
pub use stack::TcpLayer;
pub use state::{Readiness, TcpState};
pub use stats::TcpStats;
