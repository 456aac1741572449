//! UDP errors and their `io::Error` kinds (the errnos Linux `udp_prot` returns).

use std::fmt;
use std::io;

/// An error of a UDP socket call (Linux: the negative errno of `udp_*` functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UdpError {
    /// The address and port are taken (`EADDRINUSE`), or no ephemeral port is free.
    AddrInUse,
    /// The address cannot be used (`EADDRNOTAVAIL`).
    AddrNotAvailable,
    /// Nothing to receive now (`EAGAIN`).
    WouldBlock,
    /// The peer answered with ICMP port or protocol unreachable (`ECONNREFUSED`,
    /// RFC 1122 4.1.3.3).
    ConnectionRefused,
    /// An ICMP host unreachable or administratively prohibited arrived (`EHOSTUNREACH`).
    HostUnreachable,
    /// An ICMP network unreachable arrived (`ENETUNREACH`).
    NetworkUnreachable,
    /// A bad argument or a stale socket id (`EINVAL`, `EBADF`).
    InvalidInput,
    /// No destination given and the socket is not connected (`EDESTADDRREQ`/`ENOTCONN`).
    NotConnected,
    /// The datagram exceeds 65507 bytes (`EMSGSIZE`).
    MessageTooLong,
    /// Linux `ENOBUFS`: a socket joined [`crate::MAX_MEMBERSHIPS`] groups already.
    NoBufs,
}

impl UdpError {
    /// The `io::ErrorKind` a Linux socket error maps to (`EMSGSIZE` has no kind of its
    /// own in std and becomes `InvalidInput`).
    pub fn kind(self) -> io::ErrorKind {
        match self {
            UdpError::AddrInUse => io::ErrorKind::AddrInUse,
            UdpError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            UdpError::WouldBlock => io::ErrorKind::WouldBlock,
            UdpError::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            UdpError::HostUnreachable => io::ErrorKind::HostUnreachable,
            UdpError::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
            UdpError::InvalidInput | UdpError::MessageTooLong => io::ErrorKind::InvalidInput,
            UdpError::NotConnected => io::ErrorKind::NotConnected,
            UdpError::NoBufs => io::ErrorKind::OutOfMemory,
        }
    }
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpError::AddrInUse => "address in use",
            UdpError::AddrNotAvailable => "address not available",
            UdpError::WouldBlock => "operation would block",
            UdpError::ConnectionRefused => "connection refused",
            UdpError::HostUnreachable => "host unreachable",
            UdpError::NetworkUnreachable => "network unreachable",
            UdpError::InvalidInput => "invalid argument",
            UdpError::NotConnected => "socket is not connected",
            UdpError::MessageTooLong => "message too long",
            UdpError::NoBufs => "no buffer space available (too many group memberships)",
        })
    }
}

impl std::error::Error for UdpError {}

impl UdpError {
    /// The Linux errno a socket call returns for it.
    pub fn errno(self) -> i32 {
        use ustack_ipv4::errno::*;
        match self {
            UdpError::AddrInUse => EADDRINUSE,
            UdpError::AddrNotAvailable => EADDRNOTAVAIL,
            UdpError::WouldBlock => EAGAIN,
            UdpError::ConnectionRefused => ECONNREFUSED,
            UdpError::HostUnreachable => EHOSTUNREACH,
            UdpError::NetworkUnreachable => ENETUNREACH,
            UdpError::InvalidInput => EINVAL,
            UdpError::NotConnected => ENOTCONN,
            UdpError::MessageTooLong => EMSGSIZE,
            UdpError::NoBufs => ENOBUFS,
        }
    }
}

/// The error a kernel socket would give, through [`ustack_ipv4::kernel_error`]: the
/// errno and tokio's message where std agrees on the kind; `EMSGSIZE` and `ENOBUFS`
/// keep their kinds.
impl From<UdpError> for io::Error {
    fn from(e: UdpError) -> io::Error {
        ustack_ipv4::kernel_error(e.errno(), e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_kernel_errno_where_std_agrees_on_the_kind() {
        use UdpError::*;
        for e in [
            AddrInUse,
            AddrNotAvailable,
            WouldBlock,
            ConnectionRefused,
            HostUnreachable,
            NetworkUnreachable,
            InvalidInput,
            NotConnected,
            MessageTooLong,
            NoBufs,
        ] {
            let io = io::Error::from(e);
            assert_eq!(io.kind(), e.kind(), "{e:?}");
            let want = (!matches!(e, MessageTooLong | NoBufs)).then_some(e.errno());
            assert_eq!(io.raw_os_error(), want, "{e:?}");
        }
    }
}
