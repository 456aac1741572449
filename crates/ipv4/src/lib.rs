#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
//! IPv4 for ustack, sans-IO (Linux: `ip_rcv`, `fib_lookup`, `inet_protos`, `ip_defrag`,
//! `icmp`).
//!
//! No I/O, no tokio, no clock: time is a [`std::time::Instant`] passed in by the caller.
//! Packets come in through [`ip_rcv`]; packets to send are collected with
//! [`Ipv4Layer::take_tx`] (for devices) and [`Ipv4Layer::take_local`] (to our own
//! addresses, to be fed back into [`ip_rcv`]). Every malformed input is an error value or
//! a counted drop, never a panic.
//!
//! ```
//! use std::time::Instant;
//! use ustack_ipv4::{icmp::IcmpRepr, ip_rcv, InetProtos, IpContext, Ipv4Config, Ipv4Layer};
//! use ustack_ipv4::Ipv4Repr;
//! use ustack_netdev::{DevId, PacketBuf};
//!
//! // The context owns the IP layer and the protocol table (here: no transports).
//! struct Cx { ip: Ipv4Layer, protos: InetProtos<Cx> }
//! impl IpContext for Cx {
//!     fn ip(&mut self) -> &mut Ipv4Layer { &mut self.ip }
//!     fn protos(&self) -> &InetProtos<Self> { &self.protos }
//! }
//!
//! let now = Instant::now();
//! let mut cx = Cx { ip: Ipv4Layer::new(Ipv4Config::default()), protos: InetProtos::new() };
//! cx.ip.add_interface(DevId(0), "tun0", "10.0.0.2/24".parse().unwrap(), 1500);
//!
//! // An echo request from 10.0.0.1 ...
//! let echo = IcmpRepr::EchoRequest { ident: 1, seq: 1, data: b"hi" };
//! let mut pkt = PacketBuf::with_payload_capacity(echo.buffer_len());
//! echo.emit(pkt.put(echo.buffer_len()));
//! let hdr = Ipv4Repr { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(),
//!     protocol: 1, ttl: 64, tos: 0, ident: 7, dont_frag: false, more_frags: false,
//!     frag_offset: 0, header_len: 20, payload_len: pkt.len() };
//! hdr.emit(pkt.push(20));
//! ip_rcv(&mut cx, now, DevId(0), pkt);
//!
//! // ... is answered with an echo reply, ready for the device.
//! let mut tx = Vec::new();
//! cx.ip.take_tx(&mut tx);
//! assert_eq!(tx.len(), 1);
//! assert_eq!(tx[0].pkt.data()[20], 0); // ICMP type 0: echo reply
//! assert_eq!(cx.ip.icmp_stats().out_echo_reps, 1);
//! ```
//!
//! # Supported
//! - Header parsing with full validation ([`Ipv4Repr::parse`]: version, IHL, total length
//!   vs buffer (link padding is trimmed), checksum, fragment fields, martian addresses)
//!   and building ([`Ipv4Repr::emit`]); the Internet checksum with incremental update
//!   ([`checksum`]).
//! - A longest-prefix-match routing table ([`Fib`]): local, connected, static and default
//!   routes with metrics; lookup cost bounded by 33 hash probes.
//! - Local delivery through a protocol table of handler / error handler pairs
//!   ([`InetProtos`], Linux `struct net_protocol`); weak host model (a datagram to any
//!   of our addresses is accepted on any device); limited and subnet broadcast.
//! - Output with route lookup, TTL, identification, DF, fragmentation to the path MTU.
//! - Reassembly ([`frag`]) with a 30 s timeout, a global memory bound and an overlap
//!   policy (exact duplicates ignored, any other overlap drops the datagram).
//! - ICMP: echo reply, echo request sending (ping), destination unreachable (protocol,
//!   port) and time exceeded (reassembly) sending with a token-bucket rate limit; received
//!   errors are handed to the quoted protocol's error handler; "fragmentation needed"
//!   updates a path MTU cache (RFC 1191) with expiry.
//! - Counters named like `/proc/net/snmp` ([`IpStats`], [`IcmpStats`]).
//!
//! # Not supported
//! - Forwarding: a datagram not addressed to us is dropped and counted in `InAddrErrors`;
//!   we never act as a router (no TTL decrement, no ICMP time exceeded in transit).
//! - IP options: skipped on input (the header length is honoured), never emitted and not
//!   interpreted (no source routing, record route, timestamps).
//! - Multicast and IGMP; ICMP redirects, timestamps and address mask (ignored);
//!   ARP and link layers (devices carry raw IPv4, like TUN).

pub mod addr;
pub mod arp;
pub mod checksum;
pub mod errno;
pub mod fib;
pub mod frag;
pub mod hash;
pub mod icmp;
pub mod igmp;
mod input;
mod layer;
mod pmtu;
pub mod proto;
mod stats;
pub mod wire;

pub use addr::{CidrError, Ipv4Cidr};
pub use arp::{AddrConflict, ArpStats, NeighConfig, NeighInfo, NeighState};
pub use errno::kernel_error;
pub use fib::{Fib, FibError, Route, RouteKind};
pub use icmp::{EchoReply, IcmpError, IcmpErrorKind};
pub use igmp::{IgmpStats, IPPROTO_IGMP};
pub use input::ip_rcv;
pub use layer::{
    IpRxMeta, IpTx, Ipv4Config, Ipv4Layer, OutMeta, OutRoute, OutputError, ECHO_REPLY_QUEUE,
};
pub use proto::{DeliverResult, InetProtos, IpContext, NetProtocol, ProtoExists};
pub use stats::{IcmpStats, IpStats};
pub use wire::{HeaderError, Ipv4Repr};

/// Protocol number of ICMP (RFC 792).
pub const IPPROTO_ICMP: u8 = 1;
/// Protocol number of TCP (RFC 9293).
pub const IPPROTO_TCP: u8 = 6;
/// Protocol number of UDP (RFC 768).
pub const IPPROTO_UDP: u8 = 17;
