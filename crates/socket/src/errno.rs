//! Linux errno values used by the socket layer and the conversions of protocol errors
//! into `std::io::Error`.

use std::io;

/// `ENODEV`: no such device (e.g. a membership on an interface the stack lacks).
pub const ENODEV: i32 = 19;
/// `EINVAL`: invalid argument (e.g. a socket type number out of range).
pub use ustack_ipv4::errno::EINVAL;
/// `EOPNOTSUPP`: the operation is not supported by this socket type.
pub const EOPNOTSUPP: i32 = 95;
/// `EPROTONOSUPPORT`: the family/type has no such protocol.
pub const EPROTONOSUPPORT: i32 = 93;
/// `ESOCKTNOSUPPORT`: the family has no such socket type.
pub const ESOCKTNOSUPPORT: i32 = 94;
/// `EAFNOSUPPORT`: address family not supported.
pub const EAFNOSUPPORT: i32 = 97;

/// An `io::Error` carrying a raw Linux errno (so `raw_os_error()` gives it back).
pub fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// `EOPNOTSUPP` as an `io::Error`: the default of every optional ops-table entry
/// (Linux: `sock_no_accept`, `sock_no_listen`, ...).
pub fn not_supported() -> io::Error {
    errno(EOPNOTSUPP)
}

/// Converts a TCP engine error into the `io::Error` a Linux socket call would return.
pub fn tcp_err(e: ustack_tcp::TcpError) -> io::Error {
    io::Error::from(e)
}

/// Converts a UDP engine error into an `io::Error`.
pub fn udp_err(e: ustack_udp::UdpError) -> io::Error {
    io::Error::from(e)
}

/// Converts an IPv4 output (routing) error into an `io::Error` (Linux: `ip_route_output`
/// failing with `ENETUNREACH`, `EHOSTUNREACH`, `EMSGSIZE`, `EADDRNOTAVAIL`).
pub fn ip_err(e: ustack_ipv4::OutputError) -> io::Error {
    io::Error::from(e)
}
