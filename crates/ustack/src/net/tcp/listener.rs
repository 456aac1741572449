//! `TcpListener` (Linux: `socket` + `bind` + `listen` + `accept`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use ustack_socket::SockType;

use crate::net::handle::SockHandle;
use crate::net::{TcpStream, ToSocketAddrs};
use crate::stack::Stack;

/// The listen backlog used by `bind` (tokio uses 1024 too).
const BACKLOG: u32 = 1024;

/// A TCP socket server, listening for connections (like `tokio::net::TcpListener`).
///
/// ```no_run
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use ustack::net::TcpListener;
///
/// # async fn demo() -> std::io::Result<()> {
/// let listener = TcpListener::bind("0.0.0.0:8080").await?;
/// loop {
///     let (mut socket, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut buf = [0; 1024];
///         while let Ok(n) = socket.read(&mut buf).await {
///             if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # }
/// ```
pub struct TcpListener {
    inner: SockHandle,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.inner.getname(false).ok())
            .finish()
    }
}

impl TcpListener {
    pub(crate) fn from_handle(inner: SockHandle) -> Self {
        TcpListener { inner }
    }

    /// Binds a listener on the default stack (see [`Stack::set_default`]). Port 0 picks an
    /// ephemeral port; `0.0.0.0` listens on every address of the stack.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let listener = ustack::net::TcpListener::bind("0.0.0.0:80").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        Self::bind_with(&Stack::try_default()?, addr).await
    }

    /// Binds a listener on `stack`.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let listener = ustack::net::TcpListener::bind_with(&stack, "10.0.0.2:80").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind_with<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        let addr = addr.to_socket_addr_v4()?;
        let inner = SockHandle::create(stack, SockType::Stream)?;
        inner.bind(addr)?;
        inner.listen(BACKLOG)?;
        Ok(TcpListener { inner })
    }

    /// A transparent listener on the default stack: accepts connections to *any*
    /// destination address and port that arrive on the stack's devices (the tun2socks /
    /// transparent-proxy case). Each accepted stream's `local_addr()` is the destination
    /// the client asked for.
    pub async fn bind_any() -> io::Result<TcpListener> {
        Self::bind_any_with(&Stack::try_default()?).await
    }

    /// A transparent listener on `stack` (see [`bind_any`](Self::bind_any)).
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let listener = ustack::net::TcpListener::bind_any_with(&stack).await?;
    /// let (stream, client) = listener.accept().await?;
    /// println!("{client} wanted {}", stream.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub async fn bind_any_with(stack: &Stack) -> io::Result<TcpListener> {
        let inner = SockHandle::create(stack, SockType::Stream)?;
        inner.listen_any(BACKLOG)?;
        Ok(TcpListener { inner })
    }

    /// Accepts a new connection, returning the stream and the peer's address.
    ///
    /// ```no_run
    /// # async fn demo(listener: ustack::net::TcpListener) -> std::io::Result<()> {
    /// let (stream, peer) = listener.accept().await?;
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls to accept a new connection. Only the most recent task is guaranteed a wakeup
    /// (like tokio).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.inner
            .poll_accept(cx)
            .map_ok(|(h, peer)| (TcpStream::from_handle(Arc::new(h)), peer))
    }

    /// The local address (`0.0.0.0:0` for a transparent listener).
    ///
    /// ```no_run
    /// # fn demo(listener: ustack::net::TcpListener) -> std::io::Result<()> {
    /// println!("listening on {}", listener.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }

    /// Sets the TTL of packets sent by accepted sockets (Linux: `IP_TTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// The stack this listener lives in.
    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }
}
