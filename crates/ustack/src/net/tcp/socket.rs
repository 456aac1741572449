//! `TcpSocket` (Linux: a `SOCK_STREAM` socket before `connect(2)` or `listen(2)`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ustack_socket::{KeepaliveConfig, SockOpt, SockOptName, SockType};

use crate::net::handle::{unexpected, SockHandle};
use crate::net::{TcpListener, TcpStream, ToSocketAddrs};
use crate::stack::Stack;

/// A TCP socket that is not yet connected or listening (like `tokio::net::TcpSocket`):
/// set options and a local address first, then turn it into a [`TcpStream`] with
/// [`connect`](Self::connect) or a [`TcpListener`] with [`listen`](Self::listen).
/// Options set here carry over to the stream, and a listener's options to every
/// connection it accepts.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let socket = ustack::net::TcpSocket::new_v4()?;
/// socket.set_reuseaddr(true)?;
/// socket.set_recv_buffer_size(256 * 1024)?;
/// socket.bind("10.0.0.2:4000".parse().unwrap())?;
/// let stream = socket.connect("10.0.0.1:80".parse().unwrap()).await?;
/// assert_eq!(stream.local_addr()?.port(), 4000);
/// # Ok(()) }
/// ```
pub struct TcpSocket {
    inner: SockHandle,
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("local", &self.inner.getname(false).ok())
            .finish()
    }
}

impl TcpSocket {
    /// A new IPv4 TCP socket on the default stack (see [`Stack::set_default`]).
    pub fn new_v4() -> io::Result<TcpSocket> {
        Self::new_v4_with(&Stack::try_default()?)
    }

    /// A new IPv4 TCP socket on `stack`.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use ustack::netdev::mem::{MemLink, MemLinkConfig};
    /// let (a, _b) = MemLink::pair(MemLinkConfig::default());
    /// let stack = ustack::Stack::builder().device(a).addr("10.0.0.1/24".parse().unwrap()).build().await?;
    /// let socket = ustack::net::TcpSocket::new_v4_with(&stack)?;
    /// socket.set_nodelay(true)?;
    /// let listener = socket.listen(128)?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn new_v4_with(stack: &Stack) -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            inner: SockHandle::create(stack, SockType::Stream)?,
        })
    }

    /// ustack has no IPv6: always fails with `EAFNOSUPPORT` (97) in `raw_os_error()`,
    /// like `Stack::socket` for `AF_INET6`.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Err(io::Error::from_raw_os_error(97))
    }

    /// Binds a local address (Linux `bind(2)`). Port 0 picks an ephemeral port. Fails with
    /// `AddrInUse` when the port is taken, unless `SO_REUSEADDR` allows sharing it.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.inner.bind(addr.to_socket_addr_v4()?)
    }

    /// Opens a connection from this socket (from its bound address, if any).
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let addr = addr.to_socket_addr_v4()?;
        // Dropping this future mid-handshake drops the handle, which releases the socket.
        let inner = self.inner;
        std::future::poll_fn(|cx| inner.poll_connect(cx, addr)).await?;
        Ok(TcpStream::from_handle(Arc::new(inner)))
    }

    /// Listens with room for `backlog` connections waiting in [`TcpListener::accept`]
    /// (an unbound socket gets an ephemeral port).
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        self.inner.listen(backlog)?;
        Ok(TcpListener::from_handle(self.inner))
    }

    /// The local address (`0.0.0.0:0` before `bind`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }

    /// Binds the socket to a device of its stack (`SO_BINDTODEVICE`, like tokio's
    /// `TcpSocket::bind_device`): `interface` is the device's name (`tun0`, or what
    /// [`NetDevice::name`](crate::netdev::NetDevice::name) gives); `None` or an empty name
    /// unbinds. Bound, the socket sends only through that device (through its routes, or,
    /// when none leads to the destination, straight onto its link, as Linux does) and takes
    /// only segments that arrived on it; a listener's connections inherit the binding, and
    /// among listeners of one address one bound to the arrival device wins. An unknown
    /// name fails with `ENODEV` (19) in `raw_os_error()`, a name several of the stack's
    /// devices share with `InvalidInput`.
    ///
    /// Set before [`bind`](Self::bind), sockets bound to different devices may share an
    /// address and port (as in Linux): each device's listener takes that device's
    /// connections. A socket not bound to a device still takes the whole address.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use ustack::netdev::mem::{MemLink, MemLinkConfig};
    /// let link = |a: &str, b: &str| MemLinkConfig { names: (a.into(), b.into()), ..Default::default() };
    /// let (a, _a_peer) = MemLink::pair(link("wan0", "peer0"));
    /// let (b, _b_peer) = MemLink::pair(link("lan0", "peer1"));
    /// let stack = ustack::Stack::builder()
    ///     .device(a).addr("10.1.0.2/24".parse().unwrap())
    ///     .device(b).addr("10.2.0.2/24".parse().unwrap())
    ///     .build().await?;
    /// let socket = ustack::net::TcpSocket::new_v4_with(&stack)?;
    /// socket.bind_device(Some(b"lan0"))?;
    /// assert_eq!(socket.device()?, Some(b"lan0".to_vec()));
    /// assert_eq!(socket.bind_device(Some(b"nonesuch")).unwrap_err().raw_os_error(), Some(19));
    /// # Ok(()) }
    /// ```
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.inner.bind_device(interface)
    }

    /// The name of the device the socket is bound to ([`bind_device`](Self::bind_device)),
    /// if any.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.device()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Sets `SO_REUSEADDR`: bind a port still held by connections (e.g. in TIME-WAIT), or
    /// share it with other sockets that set it too (but not with a listener).
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::ReuseAddr(reuseaddr))
    }

    /// The `SO_REUSEADDR` value.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::ReuseAddr)
    }

    /// Sets `SO_REUSEPORT`: sockets that all set it may bind the same address and port
    /// (set it before `bind`). Several listeners on one port share its incoming
    /// connections, each connection going to one of them by a hash of the peer's address
    /// and port (Linux semantics; e.g. one listener per task or runtime).
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::ReusePort(reuseport))
    }

    /// The `SO_REUSEPORT` value.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::ReusePort)
    }

    /// Sets `SO_KEEPALIVE` with the stack's keepalive timing (`TcpConfig::keepalive_*`,
    /// Linux defaults: 7200 s idle, 75 s between probes, 9 probes). For other timing use
    /// [`TcpStream::set_keepalive`] after connecting.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        let cfg = keepalive.then(|| {
            let c = self.inner.stack.tcp_config();
            KeepaliveConfig {
                idle: c.keepalive_time,
                interval: c.keepalive_intvl,
                count: c.keepalive_probes,
            }
        });
        self.inner.setsockopt(SockOpt::KeepAlive(cfg))
    }

    /// True when keepalive is on.
    pub fn keepalive(&self) -> io::Result<bool> {
        match self.inner.getsockopt(SockOptName::KeepAlive)? {
            SockOpt::KeepAlive(k) => Ok(k.is_some()),
            o => Err(unexpected(o)),
        }
    }

    /// Sets the send buffer size (Linux `SO_SNDBUF`, clamped to `tcp_wmem`); the buffer
    /// then no longer grows by itself.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::SendBuf(size as usize))
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        match self.inner.getsockopt(SockOptName::SendBuf)? {
            SockOpt::SendBuf(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
            o => Err(unexpected(o)),
        }
    }

    /// Sets the receive buffer size (Linux `SO_RCVBUF`, clamped to `tcp_rmem`); the buffer
    /// then no longer grows by itself. Set before `connect`/`listen`, it also sizes the
    /// window scale offered in the handshake.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::RecvBuf(size as usize))
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        match self.inner.getsockopt(SockOptName::RecvBuf)? {
            SockOpt::RecvBuf(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
            o => Err(unexpected(o)),
        }
    }

    /// Sets `SO_LINGER` (see [`TcpStream::set_linger`]).
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::Linger(dur))
    }

    /// The `SO_LINGER` value.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        match self.inner.getsockopt(SockOptName::Linger)? {
            SockOpt::Linger(d) => Ok(d),
            o => Err(unexpected(o)),
        }
    }

    /// Sets `TCP_NODELAY` (true disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::NoDelay(nodelay))
    }

    /// The `TCP_NODELAY` value.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::NoDelay)
    }

    /// Sets `IP_TOS`, the type-of-service byte of every segment the socket sends, its SYN
    /// included; a listener passes it on to the connections it accepts. The two ECN bits
    /// belong to the connection's ECN state (as Linux keeps them for TCP; see
    /// [`EcnMode`](crate::EcnMode)). Values above 255 are `InvalidInput`.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        self.inner.set_tos(tos)
    }

    /// The `IP_TOS` value.
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.inner.tos()
    }

    /// Sets `SO_MAX_PACING_RATE` in bytes per second: `Some(rate)` paces the socket's new
    /// data at no more than `rate` whatever [`TcpConfig::pacing`](crate::TcpConfig::pacing)
    /// says (`u64::MAX`: paced at the congestion window's rate, no cap); `None` leaves
    /// pacing to the stack, without a cap. A listener passes it on to the connections it
    /// accepts. `Some(0)` is `InvalidInput`.
    pub fn set_max_pacing_rate(&self, rate: Option<u64>) -> io::Result<()> {
        self.inner.set_max_pacing_rate(rate)
    }

    /// The `SO_MAX_PACING_RATE` value (`None`: not set).
    pub fn max_pacing_rate(&self) -> io::Result<Option<u64>> {
        self.inner.max_pacing_rate()
    }

    /// The stack this socket lives on.
    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }
}
