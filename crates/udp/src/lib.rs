#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
//! UDP for ustack, sans-IO (Linux: `net/ipv4/udp.c`, `udp_prot`).
//!
//! [`UdpLayer`] holds every UDP socket of a stack. Datagrams arrive through
//! [`UdpLayer::input`] (registered as the IPv4 protocol handler for protocol 17) and ICMP
//! errors through [`UdpLayer::err_input`]; sending returns a [`UdpDatagramOut`] for the
//! IPv4 layer. No I/O, no clock, no tokio.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::Instant;
//! use ustack_ipv4::{DeliverResult, IpRxMeta, IPPROTO_UDP};
//! use ustack_netdev::DevId;
//! use ustack_udp::{UdpConfig, UdpLayer};
//!
//! let mut udp = UdpLayer::new(UdpConfig::default(), [7; 16]);
//! let server = udp.socket();
//! udp.bind(server, "10.0.0.2:53".parse().unwrap()).unwrap();
//! let client = udp.socket();
//! let client_ip = Ipv4Addr::new(10, 0, 0, 1);
//! let out = udp.send_to(client, client_ip, "10.0.0.2:53".parse().unwrap(), b"query").unwrap();
//!
//! // Loop the datagram back as if IP had received it.
//! let meta = IpRxMeta { src: out.src, dst: out.dst, protocol: IPPROTO_UDP, ttl: 64, tos: 0, dev: DevId(0), multi: false };
//! assert_eq!(udp.input(Instant::now(), &meta, out.pkt), DeliverResult::Consumed);
//! let mut buf = [0u8; 64];
//! let (n, from) = udp.recv_from(server, &mut buf).unwrap();
//! assert_eq!(&buf[..n], b"query");
//! assert_eq!(from, SocketAddrV4::new(client_ip, udp.local_addr(client).unwrap().port()));
//! ```
//!
//! # Supported
//! - Bind to an address or the wildcard, ephemeral ports (RFC 6056 randomized start),
//!   `AddrInUse` conflicts like Linux without `SO_REUSEADDR`.
//! - O(1) demux: a hash probe for the exact (address, port), then one for the wildcard;
//!   connected sockets only receive from their peer.
//! - Checksums generated and verified (0 = none on receive; a computed 0 is sent as
//!   0xffff, RFC 768); bad ones counted in `InCsumErrors`.
//! - Bounded receive queues in bytes (`SO_RCVBUF`, default 212992 like Linux); drops
//!   counted in `RcvbufErrors`.
//! - ICMP port unreachable to a connected socket becomes `ConnectionRefused` on its
//!   next receive (RFC 1122 4.1.3.3).
//! - Truncation of long datagrams on receive, `MSG_PEEK`, `IP_TTL`.
//!
//! # Not supported
//! - `SO_REUSEADDR` / `SO_REUSEPORT` sharing, multicast groups, broadcast fan-out to
//!   several sockets, `IP_RECVERR` error queues, UDP-Lite, GSO/GRO, corking.

mod error;
mod layer;
mod stats;
pub mod wire;

pub use error::UdpError;
pub use layer::{
    RecvMsg, UdpDatagramOut, UdpLayer, DATAGRAM_OVERHEAD, MAX_MEMBERSHIPS, MIN_RECV_BUF,
};
pub use stats::UdpStats;
pub use wire::{UdpHeader, UdpParseError};

/// A UDP socket handle: an index plus a generation, so a closed socket's id never
/// reaches a new socket (Linux: the `struct sock *` of a UDP socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId {
    idx: u32,
    gen: u32,
}

impl SockId {
    /// The id as one number (for logs and maps).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.idx)
    }

    /// The inverse of [`SockId::to_u64`].
    pub fn from_u64(v: u64) -> SockId {
        SockId {
            idx: v as u32,
            gen: (v >> 32) as u32,
        }
    }
}

/// UDP settings (Linux sysctls `net.core.rmem_default`, `net.ipv4.ip_local_port_range`,
/// `net.ipv4.ip_default_ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Receive buffer per socket in bytes (Linux `rmem_default` = 212992).
    pub recv_buf: usize,
    /// Largest receive buffer `SO_RCVBUF` may set (Linux `rmem_max`, 212992 there;
    /// 8 MiB here, what QUIC-style receivers ask for; lower it to bound memory).
    pub recv_buf_max: usize,
    /// Ephemeral port range, inclusive (Linux `ip_local_port_range` = 32768 60999).
    pub ephemeral: (u16, u16),
    /// TTL reported by `ttl()` for a socket without `IP_TTL` set (Linux
    /// `ip_default_ttl` = 64); such sockets send with the IP layer's default.
    pub default_ttl: u8,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            recv_buf: 212_992,
            recv_buf_max: 8 << 20,
            ephemeral: (32768, 60999),
            default_ttl: 64,
        }
    }
}
