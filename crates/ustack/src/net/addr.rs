//! Address arguments: like `tokio::net::ToSocketAddrs`, IPv4 only. Numeric addresses
//! everywhere; host names where tokio resolves them for a peer (`TcpStream::connect`,
//! `UdpSocket::connect` and `send_to`, [`lookup_host`](crate::net::lookup_host)), through
//! the stack's own DNS resolver ([`crate::dns`]). Binding takes numeric addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

mod sealed {
    pub trait Sealed {}
}

/// Things that name an IPv4 socket address: `SocketAddr`, `SocketAddrV4`, `(Ipv4Addr, u16)`,
/// `(IpAddr, u16)`, `"10.0.0.2:80"`, `("10.0.0.2", 80)`, `String`; and, for the calls that
/// resolve (`TcpStream::connect`, `UdpSocket::connect`/`send_to`, `lookup_host`), host names such as
/// `"example.com:80"` or `("example.com", 80)`. IPv6 is an `InvalidInput` error, and so is
/// a host name anywhere else.
///
/// ```
/// use ustack::net::ToSocketAddrs;
/// assert!("10.0.0.2:80".to_socket_addr_v4().is_ok());
/// assert!("example.com:80".to_socket_addr_v4().is_err());
/// ```
pub trait ToSocketAddrs: sealed::Sealed {
    /// The address, or `InvalidInput`.
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4>;

    /// A host name and port, for the calls that resolve names (`TcpStream::connect`,
    /// `UdpSocket::connect`/`send_to`, `lookup_host`): `"example.com:80"` or
    /// `("example.com", 80)`.
    #[doc(hidden)]
    fn host_port(&self) -> Option<(&str, u16)> {
        None
    }
}

/// `"host:port"` split at the last colon, when the port is a number.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    Some((h, p.parse().ok()?))
}

/// The addresses `addr` names through `stack`: itself when numeric, else its host name
/// resolved with the stack's DNS configuration ([`crate::dns::resolve`]), each with the
/// port. A numeric error stands when there is no host name to resolve.
pub(crate) async fn resolve_addrs<A: ToSocketAddrs + ?Sized>(
    stack: &crate::Stack,
    addr: &A,
) -> io::Result<Vec<SocketAddrV4>> {
    let err = match addr.to_socket_addr_v4() {
        Ok(a) => return Ok(vec![a]),
        Err(e) => e,
    };
    match addr.host_port() {
        Some((host, port)) if host.parse::<IpAddr>().is_err() => {
            let ips = crate::dns::resolve(stack, host).await?;
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddrV4::new(ip, port))
                .collect())
        }
        _ => Err(err),
    }
}

/// The one address `addr` names: itself when numeric (no allocation, as on every
/// `send_to`), else the first address of its host name ([`resolve_addrs`]).
pub(crate) async fn resolve_first<A: ToSocketAddrs + ?Sized>(
    stack: &crate::Stack,
    addr: &A,
) -> io::Result<SocketAddrV4> {
    if let Ok(a) = addr.to_socket_addr_v4() {
        return Ok(a);
    }
    resolve_addrs(stack, addr)
        .await?
        .first()
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))
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
            format!("invalid socket address {s:?}: numeric IPv4 \"a.b.c.d:port\" expected (host names are resolved only by connect and lookup_host)"),
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
                    "invalid IPv4 address {:?}: host names are resolved only by connect and lookup_host",
                    self.0
                ),
            )
        })?;
        Ok(SocketAddrV4::new(ip, self.1))
    }

    fn host_port(&self) -> Option<(&str, u16)> {
        Some(*self)
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        (self.0.as_str(), self.1).to_socket_addr_v4()
    }

    fn host_port(&self) -> Option<(&str, u16)> {
        Some((self.0.as_str(), self.1))
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        parse_str(self)
    }

    fn host_port(&self) -> Option<(&str, u16)> {
        split_host_port(self)
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        parse_str(self)
    }

    fn host_port(&self) -> Option<(&str, u16)> {
        split_host_port(self)
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addr_v4(&self) -> io::Result<SocketAddrV4> {
        (**self).to_socket_addr_v4()
    }

    fn host_port(&self) -> Option<(&str, u16)> {
        (**self).host_port()
    }
}
