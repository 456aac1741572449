//! The ustack socket layer (Linux: `net/socket.c`, `net/ipv4/af_inet.c`): the glue between
//! the sans-IO protocol engines and the tokio facade.
//!
//! - [`NetCore`] owns the IPv4, TCP and UDP layers, registers TCP and UDP in IP's protocol
//!   table (like `inet_init`) and keeps per-socket wait queues of stored `Waker`s.
//! - [`Proto`] (Linux `struct proto`) and [`ProtoOps`] (Linux `struct proto_ops`) are the
//!   ops tables, used as `&'static dyn` trait objects; their blocking-in-Linux operations are
//!   `poll_*` methods taking a `Context`.
//! - [`Registry`] holds the family registry (`net_families`) and the inet switch (`inetsw`);
//!   [`NetCore::sock_create`] looks up both like `__sock_create` -> `inet_create`.
//! - [`table`] shows the whole table of which type implements which trait for which protocol.
//!
//! No tokio and no clock here: the caller passes `now` in.
//!
//! ```
//! use ustack_socket::{AddressFamily, NetCore, NetCoreConfig, SockType};
//! let mut core = NetCore::new(NetCoreConfig::default());
//! let udp = core.sock_create(AddressFamily::INET, SockType::Dgram, 0).unwrap();
//! assert_eq!(udp.sk.prot.name(), "UDP");
//! let err = core.sock_create(AddressFamily::INET6, SockType::Stream, 0).unwrap_err();
//! assert_eq!(err.raw_os_error(), Some(ustack_socket::errno::EAFNOSUPPORT));
//! ```

#![warn(missing_docs)]

mod core;
pub mod errno;
mod family;
pub mod inet;
mod inet_ops;
mod ops;
mod proto;
mod sock;
pub mod table;
mod tcp_prot;
mod udp_prot;
mod wait;

pub use crate::core::{NetCore, NetCoreConfig};
pub use family::{InetFamily, InetProtosw, NetProtoFamily, Registry};
pub use inet_ops::{InetDgramOps, InetStreamOps};
pub use ops::{inet_poll, inet_release, inet_stream_connect, ProtoOps};
pub use proto::{wait_or_would_block, Proto, RecvResult};
pub use sock::{
    AddressFamily, KeepaliveConfig, MsgFlags, PollMask, Shutdown, Sock, SockOpt, SockOptName,
    SockRef, SockType, Socket,
};
pub use tcp_prot::TcpProt;
pub use udp_prot::{poll_recv_from_to, poll_recv_msg, UdpProt};
pub use wait::{WaitKind, WaitQueue, WaitQueues, MAX_WAITERS};

#[cfg(test)]
mod tests;
