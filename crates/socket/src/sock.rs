//! Socket handles and the small value types passed through the ops tables
//! (Linux: `struct socket`, `struct sock`, `SOCK_*`, `AF_*`, `MSG_*`, `EPOLL*`).

use std::fmt;

use crate::ops::ProtoOps;
use crate::proto::Proto;

/// An address family number (Linux: `AF_*`, the first argument of `socket(2)`).
///
/// ```
/// use ustack_socket::AddressFamily;
/// assert_eq!(AddressFamily::INET.0, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressFamily(pub u16);

impl AddressFamily {
    /// `AF_UNSPEC` (0).
    pub const UNSPEC: AddressFamily = AddressFamily(0);
    /// `AF_UNIX` (1): not provided by ustack.
    pub const UNIX: AddressFamily = AddressFamily(1);
    /// `AF_INET` (2): IPv4, the only family ustack registers.
    pub const INET: AddressFamily = AddressFamily(2);
    /// `AF_INET6` (10): not provided by ustack.
    pub const INET6: AddressFamily = AddressFamily(10);
    /// `AF_MAX` in Linux 6.x: families at or above it are rejected outright.
    pub const MAX: u16 = 46;
}

/// A socket type (Linux: `enum sock_type`, the second argument of `socket(2)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SockType {
    /// `SOCK_STREAM` (1): reliable byte stream (TCP).
    Stream,
    /// `SOCK_DGRAM` (2): datagrams (UDP).
    Dgram,
    /// `SOCK_RAW` (3): raw IP; not provided by ustack.
    Raw,
    /// `SOCK_SEQPACKET` (5): not provided by ustack's inet family.
    SeqPacket,
}

impl SockType {
    /// The Linux number of this type.
    pub fn raw(self) -> i32 {
        match self {
            SockType::Stream => 1,
            SockType::Dgram => 2,
            SockType::Raw => 3,
            SockType::SeqPacket => 5,
        }
    }
}

/// Which direction(s) to shut down (Linux: `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`.
    Read,
    /// `SHUT_WR`: for TCP, send FIN once queued data is out.
    Write,
    /// `SHUT_RDWR`.
    Both,
}

/// Flags of `recvmsg`/`sendmsg` (Linux: `MSG_PEEK`, `MSG_DONTWAIT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgFlags {
    /// `MSG_PEEK`: return data without consuming it.
    pub peek: bool,
    /// `MSG_DONTWAIT`: never register a waker; return `WouldBlock` instead of `Pending`.
    pub dontwait: bool,
}

impl MsgFlags {
    /// No flags: a blocking (in our terms: `Pending` + waker) call.
    pub const NONE: MsgFlags = MsgFlags {
        peek: false,
        dontwait: false,
    };
    /// `MSG_PEEK`.
    pub const PEEK: MsgFlags = MsgFlags {
        peek: true,
        dontwait: false,
    };
    /// `MSG_DONTWAIT`.
    pub const DONTWAIT: MsgFlags = MsgFlags {
        peek: false,
        dontwait: true,
    };
}

/// A readiness mask (Linux: the `EPOLL*` bits returned by `tcp_poll` / `udp_poll`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PollMask(pub u32);

impl PollMask {
    /// Nothing ready.
    pub const EMPTY: PollMask = PollMask(0);
    /// `EPOLLIN`: data (or a connection to accept, or EOF) to read.
    pub const IN: PollMask = PollMask(0x001);
    /// `EPOLLOUT`: room to write.
    pub const OUT: PollMask = PollMask(0x004);
    /// `EPOLLERR`: a pending error.
    pub const ERR: PollMask = PollMask(0x008);
    /// `EPOLLHUP`: both directions closed.
    pub const HUP: PollMask = PollMask(0x010);
    /// `EPOLLRDHUP`: the peer closed its write side (FIN received).
    pub const RDHUP: PollMask = PollMask(0x2000);

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: PollMask) -> bool {
        self.0 & other.0 == other.0
    }
    /// True when any bit of `other` is set in `self`.
    pub fn intersects(self, other: PollMask) -> bool {
        self.0 & other.0 != 0
    }
    /// True when no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for PollMask {
    type Output = PollMask;
    fn bitor(self, rhs: PollMask) -> PollMask {
        PollMask(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for PollMask {
    fn bitor_assign(&mut self, rhs: PollMask) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for PollMask {
    type Output = PollMask;
    fn bitand(self, rhs: PollMask) -> PollMask {
        PollMask(self.0 & rhs.0)
    }
}

impl fmt::Debug for PollMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (PollMask::IN, "IN"),
            (PollMask::OUT, "OUT"),
            (PollMask::ERR, "ERR"),
            (PollMask::HUP, "HUP"),
            (PollMask::RDHUP, "RDHUP"),
        ];
        let mut first = true;
        write!(f, "PollMask(")?;
        for (bit, name) in names {
            if self.contains(bit) {
                if !first {
                    write!(f, "|")?;
                }
                write!(f, "{name}")?;
                first = false;
            }
        }
        write!(f, ")")
    }
}

/// Socket option values and names: the TCP engine's (they also cover `IP_TTL` for UDP).
pub use ustack_tcp::{KeepaliveCfg as KeepaliveConfig, SockOpt, SockOptName};

/// Which protocol engine a socket lives in, and its id there (Linux: the `struct sock`
/// pointer; here an index into the protocol's own table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockRef {
    /// A socket of the TCP engine.
    Tcp(ustack_tcp::SockId),
    /// A socket of the UDP engine.
    Udp(ustack_udp::SockId),
}

/// The protocol half of a socket (Linux: `struct sock`, with `sk->sk_prot`).
#[derive(Clone, Copy)]
pub struct Sock {
    /// The protocol operations (Linux: `sk->sk_prot`, e.g. `tcp_prot`).
    pub prot: &'static dyn Proto,
    /// The socket inside the protocol engine.
    pub id: SockRef,
}

impl fmt::Debug for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sock")
            .field("prot", &self.prot.name())
            .field("id", &self.id)
            .finish()
    }
}

/// A socket as the application sees it (Linux: `struct socket`, with `sock->ops` and
/// `sock->sk`). It is a cheap `Copy` handle; all state lives in the [`NetCore`](crate::NetCore).
#[derive(Clone, Copy)]
pub struct Socket {
    /// The socket-level operations (Linux: `sock->ops`, e.g. `inet_stream_ops`).
    pub ops: &'static dyn ProtoOps,
    /// The protocol socket (Linux: `sock->sk`).
    pub sk: Sock,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("ops", &self.ops.name())
            .field("sk", &self.sk)
            .finish()
    }
}
