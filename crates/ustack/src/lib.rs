//! ustack: a user-space TCP/IPv4 stack for tokio, shaped like Linux.
//!
//! A [`Stack`] owns network devices (a TUN device, an in-memory link, ...), addresses and
//! routes; a tokio task drives it. [`net`] has `TcpListener`, `TcpStream` and `UdpSocket`
//! with the names, signatures and behaviour of `tokio::net`, so moving a server onto
//! ustack is a two-line change:
//!
//! ```no_run
//! // use tokio::net::TcpListener;                       // before
//! use ustack::net::TcpListener;                          // after (1/2)
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! ustack::Stack::builder().tun("tun0").addr("10.0.0.2/24".parse()?).gateway("10.0.0.1".parse()?)
//!     .build().await?.set_default();                    // after (2/2)
//!
//! let listener = TcpListener::bind("0.0.0.0:8080").await?;
//! loop {
//!     let (socket, peer) = listener.accept().await?;
//!     // ... same code as with tokio::net
//! }
//! # }
//! ```
//!
//! Programs with several stacks use the explicit forms (`TcpListener::bind_with(&stack, ..)`,
//! `TcpStream::connect_with(&stack, ..)`, `UdpSocket::bind_with(&stack, ..)`).
//!
//! Layers (each mirrors Linux; see `docs/architecture.md`): `ustack-netdev` (devices),
//! `ustack-ipv4`, `ustack-tcp`, `ustack-udp` (sans-IO protocol engines), `ustack-socket`
//! (`struct proto` / `struct proto_ops` tables, wait queues) and this crate (the tokio
//! driver and the socket API).
//!
//! Cargo features: `axum` implements `axum::serve::Listener` for [`net::TcpListener`].

#![warn(missing_docs)]

mod builder;
pub mod dhcp;
pub mod dns;
mod driver;
pub mod net;
mod stack;
mod stats;

#[cfg(feature = "axum")]
mod axum_listener;

pub use builder::StackBuilder;
pub use stack::{AddressConflict, Neighbour};
pub use stack::{Stack, WeakStack};
pub use stats::{DeviceSnapshot, DriverStats, StackStats};

pub use ustack_ipv4::{
    ArpStats, IcmpStats, IpStats, Ipv4Cidr, Ipv4Config, NeighConfig, NeighState, Route, RouteKind,
};
pub use ustack_netdev::fault::FaultConfig;
pub use ustack_netdev::tun::TunOptions;
pub use ustack_netdev::{DevId, DeviceStats, MacAddr};
pub use ustack_socket::KeepaliveConfig;
pub use ustack_tcp::{
    CcAlgorithm, EcnMode, TcpConfig, TcpInfo, TcpSocketEntry, TcpState, TcpStats,
};
pub use ustack_udp::{UdpConfig, UdpStats};

/// The device layer (re-export of `ustack-netdev`): `MemLink`, `TunDevice`, `FaultInjector`,
/// `PcapCapture`, the `NetDevice` trait.
pub mod netdev {
    pub use ustack_netdev::*;
}

/// The socket layer (re-export of `ustack-socket`): `Proto`/`ProtoOps` tables, registries,
/// `sock_create`.
pub mod socket {
    pub use ustack_socket::*;
}
