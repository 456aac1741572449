//! The whole ops table in one place: which type implements which trait for which
//! protocol (Linux: `inetsw_array[]` in `af_inet.c`, `tcp_prot`, `udp_prot`,
//! `inet_stream_ops`, `inet_dgram_ops`, `inet_family_ops`).
//!
//! | family    | type          | protocol     | `ProtoOps` (struct proto_ops)     | `Proto` (struct proto) | IP demux (`NetProtocol`)       |
//! |-----------|---------------|--------------|-----------------------------------|------------------------|--------------------------------|
//! | `AF_INET` | `SOCK_STREAM` | TCP (6)      | [`InetStreamOps`] (`INET_STREAM_OPS`) | [`TcpProt`] (`TCP_PROT`) | `tcp_v4_rcv` / `tcp_v4_err`   |
//! | `AF_INET` | `SOCK_DGRAM`  | UDP (17)     | [`InetDgramOps`] (`INET_DGRAM_OPS`)   | [`UdpProt`] (`UDP_PROT`) | `udp_rcv` / `udp_err`         |
//! | `AF_INET` | `SOCK_RAW`    | —            | not provided: `ESOCKTNOSUPPORT`       |                          |                               |
//! | `AF_INET6`, `AF_UNIX`, ... | | —      | not provided: `EAFNOSUPPORT`          |                          |                               |
//!
//! Families: [`NET_FAMILIES`] holds [`InetFamily`] (`AF_INET`) only. IP-level demux
//! (`inet_protos[]`) is registered in [`crate::inet::inet_add_protocols`]; ICMP (1) is
//! handled inside the ipv4 crate.

use ustack_ipv4::{IPPROTO_TCP, IPPROTO_UDP};

use crate::family::{InetFamily, InetProtosw, NetProtoFamily};
pub use crate::inet_ops::{InetDgramOps, InetStreamOps};
use crate::sock::SockType;
pub use crate::tcp_prot::TcpProt;
pub use crate::udp_prot::UdpProt;

/// Linux: `tcp_prot`.
pub static TCP_PROT: TcpProt = TcpProt;
/// Linux: `udp_prot`.
pub static UDP_PROT: UdpProt = UdpProt;
/// Linux: `inet_stream_ops`.
pub static INET_STREAM_OPS: InetStreamOps = InetStreamOps;
/// Linux: `inet_dgram_ops`.
pub static INET_DGRAM_OPS: InetDgramOps = InetDgramOps;
/// Linux: `inet_family_ops`.
pub static INET_FAMILY: InetFamily = InetFamily;

/// The families registered at boot (Linux: `sock_register` calls).
pub static NET_FAMILIES: [&dyn NetProtoFamily; 1] = [&INET_FAMILY];

/// The inet switch registered at boot (Linux: `inetsw_array`).
pub static INETSW: [InetProtosw; 2] = [
    InetProtosw {
        ty: SockType::Stream,
        protocol: IPPROTO_TCP,
        prot: &TCP_PROT,
        ops: &INET_STREAM_OPS,
    },
    InetProtosw {
        ty: SockType::Dgram,
        protocol: IPPROTO_UDP,
        prot: &UDP_PROT,
        ops: &INET_DGRAM_OPS,
    },
];
