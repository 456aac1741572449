//! TCP errors and their `io::ErrorKind` (Linux: the errno a socket call returns).

use std::fmt;
use std::io;

/// Errors from user calls and pending socket errors (Linux: `sk->sk_err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// RST in answer to our SYN, or ICMP port/protocol unreachable during connect (ECONNREFUSED).
    ConnectionRefused,
    /// RST on a synchronized connection (ECONNRESET).
    ConnectionReset,
    /// Aborted locally (ECONNABORTED).
    ConnectionAborted,
    /// Retransmissions or keepalive probes exhausted (ETIMEDOUT).
    TimedOut,
    /// The port is taken (EADDRINUSE).
    AddrInUse,
    /// No ephemeral port left, or a bad local address (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// Not connected, or a stale socket id (ENOTCONN).
    NotConnected,
    /// Writing after shutdown or reset (EPIPE).
    BrokenPipe,
    /// Invalid argument (EINVAL).
    InvalidInput,
    /// Nothing to read / no room to write now (EAGAIN).
    WouldBlock,
    /// ICMP host unreachable during connect (EHOSTUNREACH).
    HostUnreachable,
    /// ICMP network unreachable during connect (ENETUNREACH).
    NetworkUnreachable,
    /// connect on a connected socket (EISCONN).
    AlreadyConnected,
    /// The call does not fit the socket's state (EINVAL / EALREADY).
    InvalidState,
}

impl TcpError {
    /// The matching `io::ErrorKind`.
    pub fn kind(self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            TcpError::ConnectionRefused => K::ConnectionRefused,
            TcpError::ConnectionReset => K::ConnectionReset,
            TcpError::ConnectionAborted => K::ConnectionAborted,
            TcpError::TimedOut => K::TimedOut,
            TcpError::AddrInUse => K::AddrInUse,
            TcpError::AddrNotAvailable => K::AddrNotAvailable,
            TcpError::NotConnected => K::NotConnected,
            TcpError::BrokenPipe => K::BrokenPipe,
            TcpError::InvalidInput => K::InvalidInput,
            TcpError::WouldBlock => K::WouldBlock,
            TcpError::HostUnreachable => K::HostUnreachable,
            TcpError::NetworkUnreachable => K::NetworkUnreachable,
            TcpError::AlreadyConnected => K::AlreadyExists,
            TcpError::InvalidState => K::InvalidInput,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TcpError::ConnectionRefused => "connection refused",
            TcpError::ConnectionReset => "connection reset by peer",
            TcpError::ConnectionAborted => "connection aborted",
            TcpError::TimedOut => "connection timed out",
            TcpError::AddrInUse => "address in use",
            TcpError::AddrNotAvailable => "address not available",
            TcpError::NotConnected => "not connected",
            TcpError::BrokenPipe => "broken pipe",
            TcpError::InvalidInput => "invalid argument",
            TcpError::WouldBlock => "operation would block",
            TcpError::HostUnreachable => "host unreachable",
            TcpError::NetworkUnreachable => "network unreachable",
            TcpError::AlreadyConnected => "already connected",
            TcpError::InvalidState => "invalid state for this call",
        };
        f.write_str(s)
    }
}

impl std::error::Error for TcpError {}

impl TcpError {
    /// The Linux errno a socket call returns for it.
    pub fn errno(self) -> i32 {
        use ustack_ipv4::errno::*;
        match self {
            TcpError::ConnectionRefused => ECONNREFUSED,
            TcpError::ConnectionReset => ECONNRESET,
            TcpError::ConnectionAborted => ECONNABORTED,
            TcpError::TimedOut => ETIMEDOUT,
            TcpError::AddrInUse => EADDRINUSE,
            TcpError::AddrNotAvailable => EADDRNOTAVAIL,
            TcpError::NotConnected => ENOTCONN,
            TcpError::BrokenPipe => EPIPE,
            TcpError::InvalidInput | TcpError::InvalidState => EINVAL,
            TcpError::WouldBlock => EAGAIN,
            TcpError::HostUnreachable => EHOSTUNREACH,
            TcpError::NetworkUnreachable => ENETUNREACH,
            TcpError::AlreadyConnected => EISCONN,
        }
    }
}

/// The error a kernel socket would give, through [`ustack_ipv4::kernel_error`]: the
/// errno and tokio's message where std agrees on the kind; `EISCONN` keeps the kind
/// `AlreadyExists`.
impl From<TcpError> for io::Error {
    fn from(e: TcpError) -> io::Error {
        ustack_ipv4::kernel_error(e.errno(), e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_kernel_errno_where_std_agrees_on_the_kind() {
        use TcpError::*;
        for e in [
            ConnectionRefused,
            ConnectionReset,
            ConnectionAborted,
            TimedOut,
            AddrInUse,
            AddrNotAvailable,
            NotConnected,
            BrokenPipe,
            InvalidInput,
            WouldBlock,
            HostUnreachable,
            NetworkUnreachable,
            AlreadyConnected,
            InvalidState,
        ] {
            let io = io::Error::from(e);
            assert_eq!(io.kind(), e.kind(), "{e:?}");
            let want = (e != AlreadyConnected).then_some(e.errno());
            assert_eq!(io.raw_os_error(), want, "{e:?}");
        }
        assert_eq!(
            io::Error::from(ConnectionRefused).to_string(),
            "Connection refused (os error 111)"
        );
        assert_eq!(
            io::Error::from(AlreadyConnected).to_string(),
            "already connected"
        );
    }
}
