//! Address arguments: like `tokio::net::ToSocketAddrs`, but only numeric IPv4 is
//! accepted (ustack has no resolver: a host name is an `InvalidInput` error).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

mod sealed {
    pub trait Sealed {}
}

/// Things that name one IPv4 socket address: `SocketAddr`, `SocketAddrV4`, `(Ipv4Addr, u16)`,
/// `(IpAddr, u16)`, `"10.0.0.2:80"`, `("10.0.0.2", 80)`, `String`. No DNS: host names and
/// IPv6 give an `InvalidInput` error.
///
/// ```
/// use ustack::net::ToSocketAddrs;
/// assert!("10.0.0.2:80".to_socket_addr_v4().is_ok());
/// assert!("example.com:80".to_socket_addr_v4().is_err());
/// ```
pub trait ToSocketAddrs: sealed::Sealed {
    /// The address, or `InvalidInput`.
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4>;
}

fn v6_error() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "ustack supports IPv4 only")
}

fn parse_str(s: &str) -> io::Result<SocketAddrV4> {
    match s.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => Ok(a),
        Ok(SocketAddr::V6(_)) => Err(v6_error()),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid socket address {s:?}: ustack accepts numeric IPv4 \"a.b.c.d:port\" only (no DNS)"),
        )),
    }
}

impl sealed::Sealed for SocketAddr {}
impl ToSocketAddrs for SocketAddr {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        match self {
            SocketAddr::V4(a) => Ok(*a),
            SocketAddr::V6(_) => Err(v6_error()),
        }
    }
}

impl sealed::Sealed for SocketAddrV4 {}
impl ToSocketAddrs for SocketAddrV4 {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        Ok(*self)
    }
}

impl sealed::Sealed for (Ipv4Addr, u16) {}
impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        Ok(SocketAddrV4::new(self.0, self.1))
    }
}

impl sealed::Sealed for (IpAddr, u16) {}
impl ToSocketAddrs for (IpAddr, u16) {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        SocketAddr::new(self.0, self.1).to_socket_addr_v4()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        let ip: Ipv4Addr = self.0.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid IPv4 address {:?}: ustack does not resolve host names",
                    self.0
                ),
            )
        })?;
        Ok(SocketAddrV4::new(ip, self.1))
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        (self.0.as_str(), self.1).to_socket_addr_v4()
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        parse_str(self)
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        parse_str(self)
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        (**self).to_socket_addr_v4()
    }
}
