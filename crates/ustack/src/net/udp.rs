//! `UdpSocket` (Linux: a `SOCK_DGRAM` socket), like `tokio::net::UdpSocket`.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::task::{Context, Poll};

use bytes::BufMut;
use tokio::io::{Interest, ReadBuf, Ready};
use ustack_socket::errno::udp_err;
use ustack_socket::{
    poll_recv_from_to, poll_recv_msg, MsgFlags, SockOpt, SockOptName, SockRef, SockType,
};

use crate::net::handle::{recv_wait, unexpected, SockHandle};
use crate::net::{dontwait, ToSocketAddrs};
use crate::stack::Stack;

/// A datagram received with [`UdpSocket::recv_msg`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpRecvMsg {
    /// Bytes copied into the buffer (a longer datagram is truncated, the rest dropped).
    pub len: usize,
    /// The sender.
    pub from: SocketAddr,
    /// The address it was sent to: one of the stack's, a broadcast address or a multicast
    /// group (for a transparent socket, the foreign destination).
    pub to: SocketAddr,
    /// The device it arrived on (`IP_PKTINFO`'s `ipi_ifindex`). A datagram the stack sent
    /// to one of its own addresses is delivered locally and counts as arriving on the
    /// stack's first device (ustack has no `lo`, which Linux would report).
    pub device_id: crate::DevId,
    /// That device's name; `None` if it was detached since.
    pub device: Option<String>,
}

/// A UDP socket (like `tokio::net::UdpSocket`). All methods take `&self`, so one socket can
/// be shared through an `Arc` between a sending and a receiving task.
///
/// After an ICMP port unreachable for a connected socket, the next receive fails with
/// `ConnectionRefused` (Linux behaviour).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let sock = ustack::net::UdpSocket::bind("0.0.0.0:8080").await?;
/// let mut buf = [0; 1024];
/// loop {
///     let (len, addr) = sock.recv_from(&mut buf).await?;
///     sock.send_to(&buf[..len], addr).await?;
/// }
/// # }
/// ```
pub struct UdpSocket {
    inner: SockHandle,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.inner.getname(false).ok())
            .field("peer", &self.inner.getname(true).ok())
            .finish()
    }
}

fn v4(addr: SocketAddrV4) -> SocketAddr {
    SocketAddr::V4(addr)
}

impl UdpSocket {
    /// Binds a socket on the default stack (see [`Stack::set_default`]); port 0 picks an
    /// ephemeral port.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let sock = ustack::net::UdpSocket::bind("0.0.0.0:0").await?;
    /// println!("bound to {}", sock.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        Self::bind_with(&Stack::try_default()?, addr).await
    }

    /// Binds a socket on `stack`.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let sock = ustack::net::UdpSocket::bind_with(&stack, "0.0.0.0:0").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind_with<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        let addr = addr.to_socket_addr_v4()?;
        let inner = SockHandle::create(stack, SockType::Dgram)?;
        inner.bind(addr)?;
        Ok(UdpSocket { inner })
    }

    /// Takes over a datagram socket made with [`Stack::socket`] (like tokio's
    /// `UdpSocket::from_std` after socket2): for what has to be set before `bind`, such as
    /// the device, so that sockets bound to different devices share a port. An unbound
    /// socket gets an ephemeral port when it first sends. `InvalidInput` for a stream
    /// socket.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use ustack::netdev::mem::{MemLink, MemLinkConfig};
    /// use ustack::socket::{AddressFamily, SockType};
    /// let link = |a: &str, b: &str| MemLinkConfig { names: (a.into(), b.into()), ..Default::default() };
    /// let (wan, _w) = MemLink::pair(link("wan0", "peer0"));
    /// let (lan, _l) = MemLink::pair(link("lan0", "peer1"));
    /// let stack = ustack::Stack::builder()
    ///     .device(wan).addr("10.1.0.2/24".parse().unwrap())
    ///     .device(lan).addr("10.2.0.2/24".parse().unwrap())
    ///     .build().await?;
    /// let mut socks = Vec::new();
    /// for dev in [&b"wan0"[..], b"lan0"] {
    ///     let s = stack.socket(AddressFamily::INET, SockType::Dgram, 0)?;
    ///     s.bind_device(Some(dev))?;
    ///     s.bind("0.0.0.0:53")?; // the same port on each device
    ///     socks.push(ustack::net::UdpSocket::from_socket(s)?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_socket(socket: crate::net::Socket) -> io::Result<UdpSocket> {
        if socket.sock_type() != SockType::Dgram {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UdpSocket::from_socket needs a datagram socket",
            ));
        }
        Ok(UdpSocket {
            inner: socket.into_handle(),
        })
    }

    /// A transparent socket on the default stack: see [`bind_any_with`](Self::bind_any_with).
    pub async fn bind_any() -> io::Result<UdpSocket> {
        Self::bind_any_with(&Stack::try_default()?).await
    }

    /// A transparent socket on `stack` (tun2socks for UDP; Linux: `IP_TRANSPARENT` with a
    /// TPROXY rule and `IP_RECVORIGDSTADDR`): it receives every datagram that arrives on a
    /// device for an address that is not the stack's, whatever the port, and
    /// [`recv_from_to`](Self::recv_from_to) tells where each was going;
    /// [`send_from_to`](Self::send_from_to) answers in the name of that destination.
    /// Datagrams to the stack's own addresses still go to the sockets bound there. One per
    /// stack at a time (`AddrInUse` while another is open).
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let sock = ustack::net::UdpSocket::bind_any_with(&stack).await?;
    /// let mut buf = [0u8; 2048];
    /// let (n, client, wanted) = sock.recv_from_to(&mut buf).await?;
    /// // ... forward &buf[..n] to `wanted`, then answer as `wanted`:
    /// sock.send_from_to(b"reply", wanted, client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind_any_with(stack: &Stack) -> io::Result<UdpSocket> {
        let inner = SockHandle::create(stack, SockType::Dgram)?;
        let SockRef::Udp(id) = inner.sock.sk.id else {
            return Err(io::Error::other("not a UDP socket"));
        };
        stack.with_core(|core, _| core.udp.set_transparent(id).map_err(udp_err))?;
        Ok(UdpSocket { inner })
    }

    /// Receives a datagram, returning its length, its sender and the address it was sent
    /// to: for a transparent socket ([`bind_any_with`](Self::bind_any_with)) the foreign
    /// destination the sender wanted, otherwise the local address it arrived at, or the
    /// multicast group or broadcast address it was sent to (like `IP_PKTINFO`'s
    /// destination).
    pub async fn recv_from_to(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_recv_from_to(cx, buf)).await
    }

    /// Polls to receive a datagram (see [`recv_from_to`](Self::recv_from_to)).
    pub fn poll_recv_from_to(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr, SocketAddr)>> {
        let s = self.inner.sock;
        self.inner
            .stack
            .poll_op_or_wait(
                cx,
                |core, cx| recv_wait(core, &s, MsgFlags::NONE, cx),
                |core, _, cx| poll_recv_from_to(core, s.sk.id, buf, MsgFlags::NONE, cx),
            )
            .map_ok(|(n, from, to)| (n, v4(from), v4(to)))
    }

    /// Receives a datagram with everything known about it (Linux: `recvmsg` with
    /// `IP_PKTINFO` and `IP_RECVORIGDSTADDR`): its length, sender, the address it was
    /// sent to (as [`recv_from_to`](Self::recv_from_to)) and the device it arrived on.
    /// For a server on several devices, the device says which link a broadcast or a
    /// multicast datagram came from, and so where to answer.
    ///
    /// ```no_run
    /// # async fn demo(sock: ustack::net::UdpSocket) -> std::io::Result<()> {
    /// let mut buf = [0u8; 1500];
    /// let m = sock.recv_msg(&mut buf).await?;
    /// println!("{} bytes from {} to {} on {:?}", m.len, m.from, m.to, m.device);
    /// # Ok(()) }
    /// ```
    pub async fn recv_msg(&self, buf: &mut [u8]) -> io::Result<UdpRecvMsg> {
        std::future::poll_fn(|cx| self.poll_recv_msg(cx, buf)).await
    }

    /// Polls to receive a datagram (see [`recv_msg`](Self::recv_msg)).
    pub fn poll_recv_msg(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<UdpRecvMsg>> {
        let s = self.inner.sock;
        self.inner
            .stack
            .poll_op_or_wait(
                cx,
                |core, cx| recv_wait(core, &s, MsgFlags::NONE, cx),
                |core, _, cx| {
                    // The device's name is read under the same lock as the datagram.
                    poll_recv_msg(core, s.sk.id, buf, MsgFlags::NONE, cx)
                        .map_ok(|m| (core.dev_name(m.dev).map(str::to_string), m))
                },
            )
            .map_ok(|(device, m)| UdpRecvMsg {
                len: m.len,
                from: v4(m.from),
                to: v4(m.to),
                device_id: m.dev,
                device,
            })
    }

    /// Sends a datagram from `from` (any address: typically the foreign destination a
    /// client wrote to) to `to`. Only a transparent socket may
    /// ([`bind_any_with`](Self::bind_any_with)); others get `InvalidInput`, as Linux
    /// refuses a foreign source address without `IP_TRANSPARENT`.
    pub async fn send_from_to(
        &self,
        buf: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> io::Result<usize> {
        let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPv6 is not supported",
            ));
        };
        let SockRef::Udp(id) = self.inner.sock.sk.id else {
            return Err(io::Error::other("not a UDP socket"));
        };
        self.inner.stack.with_core(|core, now| {
            let d = core.udp.send_from(id, from, to, buf).map_err(udp_err)?;
            core.output_udp(now, d)?;
            Ok(buf.len())
        })
    }

    /// Sets the default destination and filters received datagrams to that peer.
    ///
    /// ```no_run
    /// # async fn demo(sock: ustack::net::UdpSocket) -> std::io::Result<()> {
    /// sock.connect("10.0.0.1:53").await?;
    /// sock.send(b"query").await?;
    /// let mut buf = [0u8; 512];
    /// let n = sock.recv(&mut buf).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        // A host name is resolved through the stack's DNS resolver (its first address).
        let addr = crate::net::addr::resolve_first(&self.inner.stack, &addr).await?;
        std::future::poll_fn(|cx| self.inner.poll_connect(cx, addr)).await
    }

    /// Dissolves the association made by [`connect`](Self::connect) (Linux:
    /// `connect(AF_UNSPEC)`). A ustack extra.
    pub fn disconnect(&self) -> io::Result<()> {
        self.inner.disconnect()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(v4)
    }

    /// The connected peer's address (`NotConnected` if none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(true).map(v4)
    }

    /// The stack this socket lives in.
    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls to send to the connected peer.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.inner
            .poll_send(cx, &[IoSlice::new(buf)], None, MsgFlags::NONE)
    }

    /// Sends to the connected peer without waiting.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        dontwait(
            self.inner
                .poll_send(&mut cx, &[IoSlice::new(buf)], None, MsgFlags::DONTWAIT),
        )
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx, buf, MsgFlags::NONE))
            .await
            .map(|(n, _)| n)
    }

    /// Polls to receive from the connected peer into `buf`.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_recv_from(cx, buf).map_ok(|_| ())
    }

    /// Receives without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_recv_from(buf).map(|(n, _)| n)
    }

    /// Sends a datagram to `target` (a host name is resolved with the stack's DNS
    /// resolver and its first address used, like tokio).
    ///
    /// ```no_run
    /// # async fn demo(sock: ustack::net::UdpSocket) -> std::io::Result<()> {
    /// sock.send_to(b"hello", "10.0.0.1:9000").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        // A host name goes to its first address, like tokio (one lookup per call; the
        // resolver's cache keeps repeated ones cheap).
        let target = crate::net::addr::resolve_first(&self.inner.stack, &target).await?;
        std::future::poll_fn(|cx| {
            self.inner
                .poll_send(cx, &[IoSlice::new(buf)], Some(target), MsgFlags::NONE)
        })
        .await
    }

    /// Polls to send a datagram to `target`.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let target = match target {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ustack supports IPv4 only",
                )))
            }
        };
        self.inner
            .poll_send(cx, &[IoSlice::new(buf)], Some(target), MsgFlags::NONE)
    }

    /// Sends to `target` without waiting.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        dontwait(self.poll_send_to(&mut cx, buf, target))
    }

    /// Receives a datagram and its sender. A datagram longer than `buf` is truncated (the
    /// rest is discarded), like Linux.
    ///
    /// ```no_run
    /// # async fn demo(sock: ustack::net::UdpSocket) -> std::io::Result<()> {
    /// let mut buf = [0u8; 1500];
    /// let (n, from) = sock.recv_from(&mut buf).await?;
    /// # Ok(()) }
    /// ```
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx, buf, MsgFlags::NONE))
            .await
            .map(from_pair)
    }

    /// Polls to receive a datagram into `buf`, returning the sender.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_flags(cx, buf, MsgFlags::NONE)
    }

    fn poll_recv_flags(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        flags: MsgFlags,
    ) -> Poll<io::Result<SocketAddr>> {
        let dst = buf.initialize_unfilled();
        match self.inner.poll_recv(cx, dst, flags) {
            Poll::Ready(Ok(pair)) => {
                let (n, from) = from_pair(pair);
                buf.advance(n);
                Poll::Ready(Ok(from))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Receives without waiting.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        dontwait(self.inner.poll_recv(&mut cx, buf, MsgFlags::DONTWAIT)).map(from_pair)
    }

    /// Receives a datagram without removing it from the queue.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx, buf, MsgFlags::PEEK))
            .await
            .map(from_pair)
    }

    /// Polls to peek a datagram.
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_flags(cx, buf, MsgFlags::PEEK)
    }

    /// Peeks without waiting.
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let flags = MsgFlags {
            peek: true,
            dontwait: true,
        };
        dontwait(self.inner.poll_recv(&mut cx, buf, flags)).map(from_pair)
    }

    /// The sender of the next datagram, without taking it off the queue (tokio's
    /// `peek_sender`).
    pub async fn peek_sender(&self) -> io::Result<SocketAddr> {
        std::future::poll_fn(|cx| self.poll_peek_sender(cx)).await
    }

    /// Polls for the sender of the next datagram, leaving it queued.
    pub fn poll_peek_sender(&self, cx: &mut Context<'_>) -> Poll<io::Result<SocketAddr>> {
        self.inner
            .poll_recv(cx, &mut [], MsgFlags::PEEK)
            .map_ok(|pair| from_pair(pair).1)
    }

    /// The sender of the next datagram without waiting (`WouldBlock` when none is queued).
    pub fn try_peek_sender(&self) -> io::Result<SocketAddr> {
        self.try_peek_from(&mut []).map(|(_, from)| from)
    }

    /// Receives a datagram into `buf` (tokio's `recv_buf_from`), appending at most
    /// `buf.remaining_mut()` bytes (a longer datagram is truncated, the rest discarded, as
    /// with [`recv_from`](Self::recv_from)). Returns the bytes appended and the sender.
    ///
    /// ```no_run
    /// # async fn demo(sock: ustack::net::UdpSocket) -> std::io::Result<()> {
    /// let mut buf = Vec::with_capacity(1500);
    /// let (n, from) = sock.recv_buf_from(&mut buf).await?;
    /// assert_eq!(buf.len(), n);
    /// # Ok(()) }
    /// ```
    pub async fn recv_buf_from<B: BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| {
            with_scratch(buf, |scratch| {
                self.inner
                    .poll_recv(cx, scratch, MsgFlags::NONE)
                    .map_ok(from_pair)
            })
        })
        .await
    }

    /// [`recv_buf_from`](Self::recv_buf_from) without waiting.
    pub fn try_recv_buf_from<B: BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        dontwait(with_scratch(buf, |scratch| {
            self.inner
                .poll_recv(&mut cx, scratch, MsgFlags::DONTWAIT)
                .map_ok(from_pair)
        }))
    }

    /// Receives a datagram from the connected peer into `buf` (tokio's `recv_buf`).
    pub async fn recv_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.recv_buf_from(buf).await.map(|(n, _)| n)
    }

    /// [`recv_buf`](Self::recv_buf) without waiting.
    pub fn try_recv_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.try_recv_buf_from(buf).map(|(n, _)| n)
    }

    /// Sets `SO_BROADCAST`. Without it, sending to or connecting to a broadcast address
    /// (255.255.255.255 or the directed broadcast address of one of the stack's subnets)
    /// fails with `PermissionDenied` (`EACCES`), as in Linux.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::Broadcast(on))
    }

    /// The `SO_BROADCAST` value.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::Broadcast)
    }

    /// Joins multicast group `multiaddr` on the interface with address `interface`
    /// (`IP_ADD_MEMBERSHIP`, like tokio's `join_multicast_v4`); `0.0.0.0` picks the
    /// interface the route to the group leaves through. The device then receives the
    /// group's datagrams and announces the membership with IGMP reports (v3, or v2/v1
    /// when an older querier is heard). Datagrams to the group reach every socket bound
    /// to their port on `0.0.0.0` or on the group address, as in Linux (where
    /// `IP_MULTICAST_ALL` is on by default). The membership ends with
    /// [`leave_multicast_v4`](Self::leave_multicast_v4) or when the socket is dropped.
    ///
    /// Errors: `InvalidInput` for an address that is not multicast, `ENODEV` (19 in
    /// `raw_os_error()`) when no interface has `interface` (or no route leads to the
    /// group), `AddrInUse` when this socket already joined it there, `OutOfMemory`
    /// beyond 20 groups per socket (Linux `ENOBUFS`).
    ///
    /// ```
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// use std::net::Ipv4Addr;
    /// let sock = ustack::net::UdpSocket::bind_with(&stack, "0.0.0.0:5353").await?;
    /// sock.join_multicast_v4(Ipv4Addr::new(224, 0, 0, 251), Ipv4Addr::new(10, 0, 0, 1))?;
    /// let mut buf = [0u8; 1500];
    /// let (n, from) = sock.recv_from(&mut buf).await?;
    /// # Ok(()) }
    /// ```
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::AddMembership {
            group: multiaddr,
            interface,
        })
    }

    /// Leaves a group joined with [`join_multicast_v4`](Self::join_multicast_v4)
    /// (`IP_DROP_MEMBERSHIP`); `interface` `0.0.0.0` leaves the socket's first membership
    /// of the group. The last socket to leave makes the device stop receiving the group
    /// and report that it left. `AddrNotAvailable` when the socket had not joined it.
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::DropMembership {
            group: multiaddr,
            interface,
        })
    }

    /// Sets `IP_MULTICAST_LOOP`: whether the multicasts this socket sends are also
    /// delivered to this stack's own sockets when it has joined the group (default on).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::MulticastLoop(on))
    }

    /// The `IP_MULTICAST_LOOP` value.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::MulticastLoop)
    }

    /// Sets `IP_MULTICAST_ALL` (as `socket2`'s `set_multicast_all_v4`): on (the default,
    /// as in Linux), the socket receives the datagrams of every group the stack joined
    /// that come to its port; off, only those of the groups this socket joined, on the
    /// interface it joined them on.
    pub fn set_multicast_all_v4(&self, on: bool) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::MulticastAll(on))
    }

    /// The `IP_MULTICAST_ALL` value.
    pub fn multicast_all_v4(&self) -> io::Result<bool> {
        self.inner.flag(SockOptName::MulticastAll)
    }

    /// Sets `IP_MULTICAST_TTL`, the TTL of the datagrams this socket sends to multicast
    /// groups (default 1: they stay on the link). Values above 255 are `InvalidInput`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "multicast TTL above 255"))?;
        self.inner.setsockopt(SockOpt::MulticastTtl(ttl))
    }

    /// The `IP_MULTICAST_TTL` value.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        match self.inner.getsockopt(SockOptName::MulticastTtl)? {
            SockOpt::MulticastTtl(t) => Ok(u32::from(t)),
            o => Err(unexpected(o)),
        }
    }

    /// Sets `IP_MULTICAST_IF` (as `socket2`'s `set_multicast_if_v4`): multicasts leave
    /// through the interface with address `interface`, from that address (unless the
    /// socket is bound to one, or bound to a device, which wins). `0.0.0.0` lets the
    /// route decide again. `AddrNotAvailable` for an address that is not the stack's.
    pub fn set_multicast_if_v4(&self, interface: Ipv4Addr) -> io::Result<()> {
        self.inner.setsockopt(SockOpt::MulticastIf(Some(interface)))
    }

    /// The `IP_MULTICAST_IF` address (`0.0.0.0` when unset).
    pub fn multicast_if_v4(&self) -> io::Result<Ipv4Addr> {
        match self.inner.getsockopt(SockOptName::MulticastIf)? {
            SockOpt::MulticastIf(a) => Ok(a.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            o => Err(unexpected(o)),
        }
    }

    /// Waits for any of the requested readiness.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// Waits until a datagram (or an error) is queued.
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Waits until the socket can send (always at once for UDP).
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls receive readiness.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Interest::READABLE).map_ok(|_| ())
    }

    /// Polls send readiness.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Interest::WRITABLE).map_ok(|_| ())
    }

    /// Binds the socket to a device of its stack (`SO_BINDTODEVICE`, like tokio's
    /// `UdpSocket::bind_device`): `interface` is the device's name; `None` or an empty
    /// name unbinds. Bound, the socket receives only datagrams that arrived on that device
    /// and sends only through it (through its routes, or straight onto its link when none
    /// leads to the destination, as Linux does). An unknown name fails with `ENODEV` (19)
    /// in `raw_os_error()`, a name several of the stack's devices share with
    /// `InvalidInput`. A `UdpSocket` is bound when it is made, so for sockets on different
    /// devices sharing one port set the device first, on a [`Stack::socket`], and take it
    /// over with [`from_socket`](Self::from_socket).
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.inner.bind_device(interface)
    }

    /// The name of the device the socket is bound to ([`bind_device`](Self::bind_device)),
    /// if any.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.device()
    }

    /// Takes the socket's pending error (`SO_ERROR`): on a connected socket, an ICMP
    /// error (port, host or network unreachable) about a datagram it sent, which the next
    /// receive would otherwise return. Taken, it is not reported again.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Sets `IP_TOS`, the type-of-service byte (DSCP and ECN bits) of the datagrams sent.
    /// Values above 255 are `InvalidInput`.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        self.inner.set_tos(tos)
    }

    /// The `IP_TOS` value.
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.inner.tos()
    }
}

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;

thread_local! {
    /// Where [`UdpSocket::recv_buf_from`] receives before appending to the caller's
    /// `BufMut` (whose spare capacity may be uninitialised): grown to the largest request
    /// and kept, so a stream of receives does not allocate.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `recv` on a scratch buffer of `buf.remaining_mut()` bytes (at most one datagram's
/// worth) and appends what it received to `buf`.
fn with_scratch<B: BufMut>(
    buf: &mut B,
    recv: impl FnOnce(&mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>>,
) -> Poll<io::Result<(usize, SocketAddr)>> {
    let want = buf.remaining_mut().min(MAX_DATAGRAM);
    SCRATCH.with(|s| {
        // A nested call (not possible from these methods) would find it borrowed: use a
        // buffer of its own then.
        let mut own;
        let mut guard = s.try_borrow_mut();
        let scratch: &mut Vec<u8> = match guard.as_deref_mut() {
            Ok(v) => v,
            Err(_) => {
                own = Vec::new();
                &mut own
            }
        };
        if scratch.len() < want {
            scratch.resize(want, 0);
        }
        let dst = scratch.get_mut(..want).unwrap_or_default();
        let r = recv(dst);
        if let Poll::Ready(Ok((n, _))) = &r {
            buf.put_slice(dst.get(..*n).unwrap_or_default());
        }
        r
    })
}

fn from_pair((n, from): (usize, Option<SocketAddrV4>)) -> (usize, SocketAddr) {
    (
        n,
        from.map(SocketAddr::V4)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
    )
}
