//! A socket created by family, type and protocol numbers (Linux: `socket(2)`), going
//! through the socket layer's registries like `__sock_create` -> `inet_create`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use ustack_socket::{AddressFamily, SockOpt, SockOptName, SockType};

use crate::net::handle::SockHandle;
use crate::net::ToSocketAddrs;
use crate::stack::Stack;

/// A socket made with [`Stack::socket`]: shows which ops tables serve it and can be bound.
/// Errors from creation carry Linux errnos (`EAFNOSUPPORT`, `ESOCKTNOSUPPORT`,
/// `EPROTONOSUPPORT`) in `raw_os_error()`.
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use ustack::netdev::mem::{MemLink, MemLinkConfig};
/// use ustack::socket::{AddressFamily, SockType};
/// let (a, _b) = MemLink::pair(MemLinkConfig::default());
/// let stack = ustack::Stack::builder().device(a).addr("10.0.0.1/24".parse().unwrap()).build().await?;
/// let s = stack.socket(AddressFamily::INET, SockType::Dgram, 0)?;
/// assert_eq!((s.ops_name(), s.proto_name()), ("inet_dgram_ops", "UDP"));
/// let e = stack.socket(AddressFamily::INET6, SockType::Stream, 0).unwrap_err();
/// assert_eq!(e.raw_os_error(), Some(97)); // EAFNOSUPPORT
/// # Ok(()) }
/// ```
pub struct Socket {
    inner: SockHandle,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Socket {
    pub(crate) fn create(
        stack: &Stack,
        family: AddressFamily,
        ty: SockType,
        protocol: i32,
    ) -> io::Result<Socket> {
        let sock = stack.op(|core, _| core.sock_create(family, ty, protocol))?;
        Ok(Socket {
            inner: SockHandle {
                stack: stack.clone(),
                sock,
            },
        })
    }

    /// The socket-level ops table (Linux `sock->ops->name` analogue: "inet_stream_ops").
    pub fn ops_name(&self) -> &'static str {
        self.inner.sock.ops.name()
    }

    /// The protocol ("TCP", "UDP"; Linux `sk->sk_prot->name`).
    pub fn proto_name(&self) -> &'static str {
        self.inner.sock.sk.prot.name()
    }

    /// The socket type.
    pub fn sock_type(&self) -> SockType {
        self.inner.sock.ops.sock_type()
    }

    /// Binds a local address (Linux: `bind(2)`).
    pub fn bind<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.inner.bind(addr.to_socket_addr_v4()?)
    }

    /// The local address (Linux: `getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }

    /// Binds the socket to a device (`SO_BINDTODEVICE`; see
    /// [`TcpSocket::bind_device`](crate::net::TcpSocket::bind_device)). Set before
    /// [`bind`](Self::bind), it lets sockets bound to different devices share an address
    /// and port.
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.inner.bind_device(interface)
    }

    /// The name of the device the socket is bound to, if any.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.device()
    }

    /// Sets `SO_REUSEADDR` (as `socket2`'s `set_reuse_address`), before
    /// [`bind`](Self::bind). Datagram sockets that all set it may bind the same address
    /// and port: unicast datagrams go to the one bound last, multicast and broadcast
    /// datagrams to each (the usual way for several programs to listen to one multicast
    /// port). For stream sockets it is [`TcpSocket::set_reuseaddr`](crate::net::TcpSocket::set_reuseaddr).
    pub fn set_reuse_address(&self, on: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::ReuseAddr(on))
    }

    /// The `SO_REUSEADDR` value.
    pub fn reuse_address(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::ReuseAddr)
    }

    /// Sets `SO_RCVBUF` (as `socket2`'s `set_recv_buffer_size`): how many bytes of
    /// received data the socket may hold. For datagram sockets each queued datagram is
    /// charged its buffer storage plus 256 bytes, and the value is clamped to
    /// [`UdpConfig::recv_buf_max`](crate::UdpConfig::recv_buf_max) (8 MiB; at least
    /// 2,304 bytes); stream sockets clamp it to `TcpConfig::rmem`. (`SO_SNDBUF` is there for
    /// stream sockets, [`TcpSocket::set_send_buffer_size`](crate::net::TcpSocket::set_send_buffer_size);
    /// ustack queues no datagrams, so datagram sockets have none.)
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::RecvBuf(size))
    }

    /// The `SO_RCVBUF` value.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.inner.size(SockOptName::RecvBuf)
    }

    /// Sets `SO_REUSEPORT` (as `socket2`'s `set_reuse_port`), before [`bind`](Self::bind).
    /// Sockets that all set it may bind the same address and port; unicast datagrams (or,
    /// for listeners, connections) are spread over them by a hash of the sender's address
    /// and port, multicast and broadcast datagrams go to each.
    pub fn set_reuse_port(&self, on: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::ReusePort(on))
    }

    /// The `SO_REUSEPORT` value.
    pub fn reuse_port(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::ReusePort)
    }

    pub(crate) fn into_handle(self) -> SockHandle {
        self.inner
    }
}

impl Stack {
    /// Creates a socket by numbers, like `socket(2)`: the family registry and the inet
    /// (type, protocol) switch pick its ops tables. Protocol 0 takes the type's default.
    /// The typed constructors (`TcpListener::bind_with`, ...) go through the same path.
    pub fn socket(&self, family: AddressFamily, ty: SockType, protocol: i32) -> io::Result<Socket> {
        Socket::create(self, family, ty, protocol)
    }
}
