//! `TcpStream` (Linux: a connected `SOCK_STREAM` socket).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};
use ustack_socket::{KeepaliveConfig, MsgFlags, Shutdown, SockOpt, SockOptName, SockRef, SockType};
use ustack_tcp::{CcAlgorithm, TcpInfo};

use crate::net::handle::{unexpected, SockHandle};
use crate::net::tcp::split::{self, ReadHalf, WriteHalf};
use crate::net::tcp::split_owned::{self, OwnedReadHalf, OwnedWriteHalf};
use crate::net::{dontwait, ToSocketAddrs};
use crate::stack::Stack;

/// A TCP connection (like `tokio::net::TcpStream`): `AsyncRead` + `AsyncWrite`, split
/// halves, readiness, and socket options.
///
/// Dropping the stream closes it like Linux `close(2)`: gracefully (FIN, finished in the
/// background) unless unread data is pending or `set_linger(Some(Duration::ZERO))` was
/// set, in which case an RST is sent.
///
/// ```no_run
/// use tokio::io::AsyncWriteExt;
/// # async fn demo() -> std::io::Result<()> {
/// let mut stream = ustack::net::TcpStream::connect("10.0.0.1:8080").await?;
/// stream.write_all(b"hello world!").await?;
/// # Ok(()) }
/// ```
pub struct TcpStream {
    pub(crate) inner: Arc<SockHandle>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.inner.getname(false).ok())
            .field("peer", &self.inner.getname(true).ok())
            .finish()
    }
}

impl TcpStream {
    pub(crate) fn from_handle(inner: Arc<SockHandle>) -> Self {
        TcpStream { inner }
    }

    /// Opens a connection on the default stack (see [`Stack::set_default`]).
    ///
    /// Errors like Linux `connect(2)`: `ConnectionRefused` (RST), `TimedOut` (no answer
    /// after the SYN retries), `NetworkUnreachable` (no route), `HostUnreachable` (ICMP).
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stream = ustack::net::TcpStream::connect("10.0.0.1:80").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        Self::connect_with(&Stack::try_default()?, addr).await
    }

    /// Opens a connection on `stack`.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let stream = ustack::net::TcpStream::connect_with(&stack, "10.0.0.1:80").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        // A numeric address is tried as it is, with no list to build.
        if let Ok(a) = addr.to_socket_addr_v4() {
            return Self::connect_v4(stack, a).await;
        }
        // A host name is resolved through the stack's DNS resolver; its addresses are
        // tried in turn, like tokio's connect.
        let addrs = crate::net::addr::resolve_addrs(stack, &addr).await?;
        let mut last = None;
        for addr in addrs {
            match Self::connect_v4(stack, addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        }))
    }

    /// One connection attempt to `addr`.
    async fn connect_v4(stack: &Stack, addr: SocketAddrV4) -> io::Result<TcpStream> {
        // If this future is dropped mid-handshake, the handle's Drop releases the socket.
        let inner = SockHandle::create(stack, SockType::Stream)?;
        std::future::poll_fn(|cx| inner.poll_connect(cx, addr)).await?;
        Ok(TcpStream {
            inner: Arc::new(inner),
        })
    }

    /// The local address. For a stream accepted by a transparent listener
    /// ([`TcpListener::bind_any_with`](crate::net::TcpListener::bind_any_with)) this is the
    /// destination the client connected to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }

    /// The remote address.
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// println!("connected to {}", stream.peer_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(true).map(SocketAddr::V4)
    }

    /// The stack this stream lives in.
    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }

    /// Receives data without removing it from the queue (Linux: `MSG_PEEK`).
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// let mut b = [0u8; 16];
    /// let n = stream.peek(&mut b).await?;
    /// # Ok(()) }
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx, buf, MsgFlags::PEEK))
            .await
            .map(|(n, _)| n)
    }

    /// Polls for peeked data into `buf`, returning the number of bytes.
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        poll_peek(&self.inner, cx, buf)
    }

    /// Waits for any of the requested readiness (like tokio's `ready`).
    ///
    /// ```no_run
    /// use tokio::io::Interest;
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// let ready = stream.ready(Interest::READABLE | Interest::WRITABLE).await?;
    /// if ready.is_readable() { /* try_read */ }
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// Waits until the stream is readable (data, EOF or an error).
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// stream.readable().await?;
    /// let mut buf = [0u8; 1024];
    /// let n = stream.try_read(&mut buf)?;
    /// # Ok(()) }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Waits until the stream is writable.
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// stream.writable().await?;
    /// let n = stream.try_write(b"hello")?;
    /// # Ok(()) }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls read readiness.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Interest::READABLE).map_ok(|_| ())
    }

    /// Polls write readiness.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Interest::WRITABLE).map_ok(|_| ())
    }

    /// Reads without waiting: `WouldBlock` when nothing is queued, `Ok(0)` at EOF.
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// stream.readable().await?;
    /// let mut buf = [0u8; 4096];
    /// match stream.try_read(&mut buf) {
    ///     Ok(n) => println!("{n} bytes"),
    ///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        try_read(&self.inner, buf)
    }

    /// Reads in place, without copying into a buffer of yours: waits until data is
    /// queued, then calls `f` once with the oldest queued bytes and removes as many as `f`
    /// returns (capped at what it was shown). `f` sees one contiguous part of the receive
    /// queue: all of it, unless it wraps around the end of its storage (read again for the
    /// rest). Returns the bytes consumed; `Ok(0)` at end of stream (`f` not called).
    ///
    /// `f` runs while the stack is locked: it must be quick and must not use any ustack
    /// socket or stack (that panics). Not in `tokio::net` (smoltcp has the same idea in
    /// `recv(|buf| ..)`).
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// // Count the bytes up to the first newline, leaving the rest queued.
    /// let mut line = Vec::new();
    /// let n = stream
    ///     .read_with(|data| match data.iter().position(|&b| b == b'\n') {
    ///         Some(i) => { line.extend_from_slice(&data[..=i]); i + 1 }
    ///         None => { line.extend_from_slice(data); data.len() }
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_with<F: FnOnce(&[u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        std::future::poll_fn(|cx| self.inner.poll_recv_in_place(cx, &mut f, MsgFlags::NONE)).await
    }

    /// The poll form of [`read_with`](Self::read_with): `Pending` (waker registered) when
    /// nothing is queued.
    pub fn poll_read_with<F: FnOnce(&[u8]) -> usize>(
        &self,
        cx: &mut Context<'_>,
        f: F,
    ) -> Poll<io::Result<usize>> {
        self.inner
            .poll_recv_in_place(cx, &mut Some(f), MsgFlags::NONE)
    }

    /// [`read_with`](Self::read_with) without waiting: `WouldBlock` when nothing is queued.
    pub fn try_read_with<F: FnOnce(&[u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        try_in_place(|cx| {
            self.inner
                .poll_recv_in_place(cx, &mut f, MsgFlags::DONTWAIT)
        })
    }

    /// Writes in place, without copying from a buffer of yours: waits until the send
    /// buffer has room, then calls `f` once with contiguous free space in it (at most
    /// 64 KiB, less where the queue's storage wraps; its old contents unspecified) and
    /// sends the first bytes `f` says it wrote (capped at what it was given). Returns the
    /// bytes queued; `Ok(0)` when `f` wrote none.
    ///
    /// `f` runs while the stack is locked: it must be quick and must not use any ustack
    /// socket or stack (that panics). Not in `tokio::net` (smoltcp has the same idea in
    /// `send(|buf| ..)`).
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// // Fill whatever room there is with a repeating pattern.
    /// let n = stream
    ///     .write_with(|space| {
    ///         for (i, b) in space.iter_mut().enumerate() {
    ///             *b = (i % 251) as u8;
    ///         }
    ///         space.len()
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_with<F: FnOnce(&mut [u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        std::future::poll_fn(|cx| self.inner.poll_send_in_place(cx, &mut f, MsgFlags::NONE)).await
    }

    /// The poll form of [`write_with`](Self::write_with): `Pending` (waker registered) when
    /// the send buffer is full.
    pub fn poll_write_with<F: FnOnce(&mut [u8]) -> usize>(
        &self,
        cx: &mut Context<'_>,
        f: F,
    ) -> Poll<io::Result<usize>> {
        self.inner
            .poll_send_in_place(cx, &mut Some(f), MsgFlags::NONE)
    }

    /// [`write_with`](Self::write_with) without waiting: `WouldBlock` when the send buffer
    /// is full.
    pub fn try_write_with<F: FnOnce(&mut [u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        try_in_place(|cx| {
            self.inner
                .poll_send_in_place(cx, &mut f, MsgFlags::DONTWAIT)
        })
    }

    /// Like [`try_read`](Self::try_read), filling the buffers in order.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for b in bufs.iter_mut().filter(|b| !b.is_empty()) {
            match try_read(&self.inner, b) {
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    /// Like [`try_read`](Self::try_read), appending to a `BufMut` (at most
    /// `buf.remaining_mut()` bytes, copied straight from the receive queue).
    pub fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        if !buf.has_remaining_mut() {
            return Ok(0);
        }
        self.try_read_with(|data| {
            let n = data.len().min(buf.remaining_mut());
            buf.put_slice(data.get(..n).unwrap_or_default());
            n
        })
    }

    /// Writes without waiting: `WouldBlock` when the send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        try_write_vectored(&self.inner, &[IoSlice::new(buf)])
    }

    /// Like [`try_write`](Self::try_write) with several buffers.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        try_write_vectored(&self.inner, bufs)
    }

    /// Takes the connection's pending error (`SO_ERROR`), like tokio's
    /// `TcpStream::take_error`: a reset or timeout that ended the connection, or a soft
    /// ICMP error (host or network unreachable) seen while it retried. Taken, it is not
    /// reported again: a read after a reset then returns end of stream instead of
    /// `ConnectionReset`, as in Linux.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when true).
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// stream.set_nodelay(true)?;
    /// assert!(stream.nodelay()?);
    /// # Ok(()) }
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::NoDelay(nodelay))
    }

    /// The `TCP_NODELAY` value.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::NoDelay)
    }

    /// Sets `TCP_QUICKACK`, as tokio does on Linux: true acknowledges at once what waits
    /// for a delayed ACK and acknowledges the next 16 segments that want an ACK at once
    /// (quick-ACK mode); false ends quick-ACK mode, so ACKs wait as usual. Like Linux's,
    /// the mode does not last: an application that wants every ACK at once sets it again
    /// after each read.
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// stream.set_quickack(true)?;
    /// # Ok(()) }
    /// ```
    pub fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::QuickAck(quickack))
    }

    /// The `TCP_QUICKACK` value: whether the connection is in quick-ACK mode (every
    /// connection starts in it).
    pub fn quickack(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::QuickAck)
    }

    /// Sets `IP_TTL` for outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Sets `IP_TOS`, the type-of-service byte of the segments sent from now on (the two
    /// ECN bits stay clear, see [`TcpSocket::set_tos_v4`](crate::net::TcpSocket::set_tos_v4)).
    /// Values above 255 are `InvalidInput`.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        self.inner.set_tos(tos)
    }

    /// The `IP_TOS` value.
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.inner.tos()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes drop abort the connection with RST.
    /// Unlike tokio's (deprecated) `set_linger`, a non-zero linger never blocks a thread:
    /// the close always finishes in the background.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::Linger(dur))
    }

    /// Sets `SO_LINGER` to zero: dropping the stream then aborts the connection with RST
    /// (same as tokio's `set_zero_linger`).
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The `SO_LINGER` value.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        match self.inner.getsockopt(SockOptName::Linger)? {
            SockOpt::Linger(d) => Ok(d),
            o => Err(unexpected(o)),
        }
    }

    /// Turns keepalive on with the given timing, or off (ustack extra; Linux:
    /// `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// use std::time::Duration;
    /// stream.set_keepalive(Some(ustack::KeepaliveConfig {
    ///     idle: Duration::from_secs(60), interval: Duration::from_secs(10), count: 5,
    /// }))?;
    /// # Ok(()) }
    /// ```
    pub fn set_keepalive(&self, cfg: Option<KeepaliveConfig>) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::KeepAlive(cfg))
    }

    /// The keepalive setting.
    pub fn keepalive(&self) -> io::Result<Option<KeepaliveConfig>> {
        match self.inner.getsockopt(SockOptName::KeepAlive)? {
            SockOpt::KeepAlive(k) => Ok(k),
            o => Err(unexpected(o)),
        }
    }

    /// Sets the receive buffer size (Linux: `SO_RCVBUF`, clamped to `tcp_rmem`).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::RecvBuf(size))
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.inner.size(SockOptName::RecvBuf)
    }

    /// Sets the send buffer size (Linux: `SO_SNDBUF`, clamped to `tcp_wmem`).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::SendBuf(size))
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.inner.size(SockOptName::SendBuf)
    }

    /// Sets `SO_MAX_PACING_RATE` in bytes per second for the data sent from now on: see
    /// [`TcpSocket::set_max_pacing_rate`](crate::net::TcpSocket::set_max_pacing_rate).
    /// `TcpInfo::pacing_rate` shows the rate in use.
    pub fn set_max_pacing_rate(&self, rate: Option<u64>) -> io::Result<()> {
        self.inner.set_max_pacing_rate(rate)
    }

    /// The `SO_MAX_PACING_RATE` value (`None`: not set).
    pub fn max_pacing_rate(&self) -> io::Result<Option<u64>> {
        self.inner.max_pacing_rate()
    }

    /// Chooses the congestion control algorithm (Linux: `TCP_CONGESTION`).
    pub fn set_congestion(&self, alg: CcAlgorithm) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::Congestion(alg))
    }

    /// The congestion control algorithm.
    pub fn congestion(&self) -> io::Result<CcAlgorithm> {
        match self.inner.getsockopt(SockOptName::Congestion)? {
            SockOpt::Congestion(a) => Ok(a),
            o => Err(unexpected(o)),
        }
    }

    /// A `TCP_INFO`-like snapshot: state, RTT, cwnd, retransmissions, ...
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// let info = stream.info()?;
    /// println!("{info:?}");
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> io::Result<TcpInfo> {
        tcp_info(&self.inner)
    }

    /// Splits into borrowed read and write halves (no allocation, not `'static`).
    ///
    /// ```no_run
    /// # async fn demo(mut stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// let (mut rd, mut wr) = stream.split();
    /// tokio::io::copy(&mut rd, &mut wr).await?;
    /// # Ok(()) }
    /// ```
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Splits into owned halves that can move to different tasks; [`OwnedReadHalf::reunite`]
    /// puts them back together. Dropping the write half shuts down the write direction.
    ///
    /// ```no_run
    /// # async fn demo(stream: ustack::net::TcpStream) -> std::io::Result<()> {
    /// let (mut rd, mut wr) = stream.into_split();
    /// tokio::spawn(async move { tokio::io::copy(&mut rd, &mut tokio::io::sink()).await });
    /// tokio::io::AsyncWriteExt::write_all(&mut wr, b"hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned::split_owned(self)
    }
}

pub(crate) fn tcp_info(h: &SockHandle) -> io::Result<TcpInfo> {
    let SockRef::Tcp(id) = h.sock.sk.id else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP socket",
        ));
    };
    h.stack
        .with_core(|core, _| core.tcp.info(id))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket is closed"))
}

/// Most bytes of a caller's uninitialized read buffer zeroed per read call. Callers like
/// hyper hand over large uninitialized buffers on every call; zeroing all of it each time
/// would cost more than the copy. Initialized space is always used in full.
const READ_INIT_CHUNK: usize = 64 * 1024;

/// The part of `buf`'s unfilled space to read into: all of it that is initialized, and
/// at least `READ_INIT_CHUNK` bytes (zeroed now) when that is less.
fn read_space<'a>(buf: &'a mut ReadBuf<'_>) -> &'a mut [u8] {
    let initialized = buf.initialized().len() - buf.filled().len();
    let want = buf.remaining().min(initialized.max(READ_INIT_CHUNK));
    buf.initialize_unfilled_to(want)
}

pub(crate) fn poll_read(
    h: &SockHandle,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    if buf.remaining() == 0 {
        return Poll::Ready(Ok(()));
    }
    let dst = read_space(buf);
    match h.poll_recv(cx, dst, MsgFlags::NONE) {
        Poll::Ready(Ok((n, _))) => {
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

pub(crate) fn poll_peek(
    h: &SockHandle,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<usize>> {
    let dst = read_space(buf);
    match h.poll_recv(cx, dst, MsgFlags::PEEK) {
        Poll::Ready(Ok((n, _))) => {
            buf.advance(n);
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

pub(crate) fn poll_write(
    h: &SockHandle,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    h.poll_send(cx, bufs, None, MsgFlags::NONE)
}

pub(crate) fn try_read(h: &SockHandle, buf: &mut [u8]) -> io::Result<usize> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    dontwait(h.poll_recv(&mut cx, buf, MsgFlags::DONTWAIT)).map(|(n, _)| n)
}

pub(crate) fn try_write_vectored(h: &SockHandle, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    dontwait(h.poll_send(&mut cx, bufs, None, MsgFlags::DONTWAIT))
}

/// Runs a `MSG_DONTWAIT` in-place call (it never registers the waker).
pub(crate) fn try_in_place(
    call: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<usize>>,
) -> io::Result<usize> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    dontwait(call(&mut cx))
}

/// Linux `shutdown(SHUT_WR)` as tokio does it: a second call succeeds; on a connection
/// that is gone (reset) it fails with `NotConnected`.
pub(crate) fn poll_shutdown(h: &SockHandle) -> Poll<io::Result<()>> {
    Poll::Ready(h.shutdown(Shutdown::Write))
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.inner, cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.inner, cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.inner, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data is handed to the engine (and sent as the window allows) on write.
        Poll::Ready(Ok(()))
    }

    /// Sends FIN (Linux: `shutdown(SHUT_WR)`).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.inner)
    }
}
