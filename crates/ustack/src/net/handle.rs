//! The facade's socket handle: a [`Socket`] of the socket layer plus the [`Stack`] it lives
//! in. Every operation locks the stack and calls through the socket's `ProtoOps` table.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, SocketAddrV4};
use std::task::{Context, Poll};

use tokio::io::{Interest, Ready};
use ustack_socket::{
    wait_or_would_block, AddressFamily, MsgFlags, RecvResult, Shutdown, SockOpt, SockOptName,
    SockType, Socket, WaitKind,
};

use crate::net::{interest_mask, mask_to_ready};
use crate::stack::{InPlaceClosure, Stack};

pub(crate) struct SockHandle {
    pub(crate) stack: Stack,
    pub(crate) sock: Socket,
}

impl std::fmt::Debug for SockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("ops", &self.sock.ops.name())
            .field("id", &self.sock.sk.id)
            .field("local", &self.getname(false).ok())
            .field("peer", &self.getname(true).ok())
            .finish()
    }
}

/// A receive's short way out: when the socket has nothing to return
/// (`ProtoOps::recv_would_wait`), the wait a full receive would end in (`Pending` with
/// the waker registered, or `WouldBlock` with `dontwait`); `None` when the full receive
/// call must run.
pub(crate) fn recv_wait<T>(
    core: &mut ustack_socket::NetCore,
    s: &Socket,
    flags: MsgFlags,
    cx: &mut Context<'_>,
) -> Option<Poll<io::Result<T>>> {
    s.ops
        .recv_would_wait(core, s, flags)
        .then(|| wait_or_would_block(core, s.sk.id, WaitKind::Read, flags, cx))
}

impl SockHandle {
    /// Linux: `socket(AF_INET, ty, 0)`.
    pub(crate) fn create(stack: &Stack, ty: SockType) -> io::Result<SockHandle> {
        let sock = stack.op(|core, _| core.sock_create(AddressFamily::INET, ty, 0))?;
        Ok(SockHandle {
            stack: stack.clone(),
            sock,
        })
    }

    pub(crate) fn bind(&self, addr: SocketAddrV4) -> io::Result<()> {
        let s = self.sock;
        self.stack.op(|core, _| s.ops.bind(core, &s, addr))
    }

    pub(crate) fn listen(&self, backlog: u32) -> io::Result<()> {
        let s = self.sock;
        self.stack.op(|core, _| s.ops.listen(core, &s, backlog))
    }

    pub(crate) fn listen_any(&self, backlog: u32) -> io::Result<()> {
        let s = self.sock;
        self.stack.op(|core, _| s.ops.listen_any(core, &s, backlog))
    }

    pub(crate) fn poll_connect(
        &self,
        cx: &mut Context<'_>,
        addr: SocketAddrV4,
    ) -> Poll<io::Result<()>> {
        let s = self.sock;
        self.stack.poll_op(cx, |core, now, cx| {
            s.ops.poll_connect(core, now, &s, addr, cx)
        })
    }

    pub(crate) fn disconnect(&self) -> io::Result<()> {
        let s = self.sock;
        self.stack.op(|core, now| s.ops.disconnect(core, now, &s))
    }

    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(SockHandle, SocketAddr)>> {
        let s = self.sock;
        self.stack
            .poll_op(cx, |core, now, cx| {
                s.ops.poll_accept(core, now, &s, cx).map_ok(|child| {
                    let peer = child.ops.getname(core, &child, true);
                    (child, peer)
                })
            })
            .map_ok(|(child, peer)| {
                let h = SockHandle {
                    stack: self.stack.clone(),
                    sock: child,
                };
                // A child whose peer already vanished still gets accepted (Linux does too);
                // its reads then report the error.
                let peer = peer
                    .map(SocketAddr::V4)
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                (h, peer)
            })
    }

    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        flags: MsgFlags,
    ) -> Poll<RecvResult> {
        let s = self.sock;
        self.stack.poll_op_or_wait(
            cx,
            |core, cx| recv_wait(core, &s, flags, cx),
            |core, now, cx| s.ops.poll_recvmsg(core, now, &s, buf, flags, cx),
        )
    }

    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        dst: Option<SocketAddrV4>,
        flags: MsgFlags,
    ) -> Poll<io::Result<usize>> {
        let s = self.sock;
        self.stack.poll_op(cx, |core, now, cx| {
            s.ops.poll_sendmsg(core, now, &s, bufs, dst, flags, cx)
        })
    }

    /// Receives in place (TCP): `f` (taken from `f`, so called at most once over all polls)
    /// is shown queued bytes and returns how many it consumed; `Ok(0)` at end of stream.
    /// `f` runs with the stack locked.
    pub(crate) fn poll_recv_in_place<F: FnOnce(&[u8]) -> usize>(
        &self,
        cx: &mut Context<'_>,
        f: &mut Option<F>,
        flags: MsgFlags,
    ) -> Poll<io::Result<usize>> {
        let s = self.sock;
        let mut once = |d: &[u8]| {
            let _mark = InPlaceClosure::enter();
            f.take().map_or(0, |f| f(d))
        };
        self.stack.poll_op_or_wait(
            cx,
            |core, cx| recv_wait(core, &s, flags, cx),
            |core, now, cx| {
                s.ops
                    .poll_recv_in_place(core, now, &s, &mut once, flags, cx)
            },
        )
    }

    /// Sends in place (TCP): `f` (taken from `f`, so called at most once over all polls)
    /// writes into free send-buffer space and returns how many bytes it wrote. `f` runs
    /// with the stack locked.
    pub(crate) fn poll_send_in_place<F: FnOnce(&mut [u8]) -> usize>(
        &self,
        cx: &mut Context<'_>,
        f: &mut Option<F>,
        flags: MsgFlags,
    ) -> Poll<io::Result<usize>> {
        let s = self.sock;
        let mut once = |d: &mut [u8]| {
            let _mark = InPlaceClosure::enter();
            f.take().map_or(0, |f| f(d))
        };
        self.stack.poll_op(cx, |core, now, cx| {
            s.ops
                .poll_send_in_place(core, now, &s, &mut once, flags, cx)
        })
    }

    /// Readiness for `interest`; registers the waker when nothing asked for is ready.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<Ready>> {
        let s = self.sock;
        let mask = self.stack.poll_op(cx, |core, _, cx| {
            Poll::Ready(Ok(s.ops.poll(core, &s, interest_mask(interest), cx)))
        });
        match mask {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(mask)) => {
                let r = mask_to_ready(mask, interest);
                if r.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(r))
                }
            }
        }
    }

    pub(crate) async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        std::future::poll_fn(|cx| self.poll_ready(cx, interest)).await
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let s = self.sock;
        self.stack
            .op(|core, now| s.ops.shutdown(core, now, &s, how))
    }

    pub(crate) fn getname(&self, peer: bool) -> io::Result<SocketAddrV4> {
        let s = self.sock;
        self.stack
            .with_core(|core, _| s.ops.getname(core, &s, peer))
    }

    pub(crate) fn setsockopt(&self, opt: SockOpt) -> io::Result<()> {
        let s = self.sock;
        self.stack
            .op(|core, now| s.ops.setsockopt(core, now, &s, opt))
    }

    pub(crate) fn getsockopt(&self, name: SockOptName) -> io::Result<SockOpt> {
        let s = self.sock;
        self.stack
            .with_core(|core, _| s.ops.getsockopt(core, &s, name))
    }

    /// Linux `SO_BINDTODEVICE`: binds the socket to the stack's device named `iface` (the
    /// name [`ustack_netdev::NetDevice::name`] gives; trailing NULs ignored); `None` or an
    /// empty name unbinds. An unknown name is `ENODEV` (19), as in Linux; a name that
    /// several devices share is `InvalidInput`.
    pub(crate) fn bind_device(&self, iface: Option<&[u8]>) -> io::Result<()> {
        let name = iface.map(|n| {
            let end = n.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            n.get(..end).unwrap_or_default()
        });
        let dev = match name {
            None | Some([]) => None,
            Some(n) => Some(self.stack.dev_id(n)?),
        };
        self.setsockopt(SockOpt::BindDevice(dev))
    }

    /// The name of the device the socket is bound to (`SO_BINDTODEVICE`), if any.
    pub(crate) fn device(&self) -> io::Result<Option<Vec<u8>>> {
        match self.getsockopt(SockOptName::BindDevice)? {
            SockOpt::BindDevice(d) => Ok(d
                .and_then(|d| self.stack.dev_name(d))
                .map(String::into_bytes)),
            o => Err(unexpected(o)),
        }
    }

    /// Linux `getsockopt(SO_ERROR)`: the pending error, taken.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        let s = self.sock;
        Ok(self.stack.with_core(|core, _| s.ops.take_error(core, &s)))
    }

    pub(crate) fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "TTL must be in 1..=255"))?;
        self.setsockopt(SockOpt::Ttl(ttl))
    }

    pub(crate) fn ttl(&self) -> io::Result<u32> {
        match self.getsockopt(SockOptName::Ttl)? {
            SockOpt::Ttl(t) => Ok(u32::from(t)),
            other => Err(unexpected(other)),
        }
    }

    /// A yes/no option (`SO_REUSEADDR`, `TCP_NODELAY`, `IP_MULTICAST_LOOP`, ...).
    pub(crate) fn flag(&self, name: SockOptName) -> io::Result<bool> {
        match self.getsockopt(name)? {
            SockOpt::NoDelay(b)
            | SockOpt::QuickAck(b)
            | SockOpt::ReuseAddr(b)
            | SockOpt::ReusePort(b)
            | SockOpt::Broadcast(b)
            | SockOpt::MulticastLoop(b)
            | SockOpt::MulticastAll(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// A size option (`SO_RCVBUF`, `SO_SNDBUF`).
    pub(crate) fn size(&self, name: SockOptName) -> io::Result<usize> {
        match self.getsockopt(name)? {
            SockOpt::RecvBuf(n) | SockOpt::SendBuf(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) fn set_tos(&self, tos: u32) -> io::Result<()> {
        let tos = u8::try_from(tos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TOS must be in 0..=255"))?;
        self.setsockopt(SockOpt::Tos(tos))
    }

    pub(crate) fn tos(&self) -> io::Result<u32> {
        match self.getsockopt(SockOptName::Tos)? {
            SockOpt::Tos(t) => Ok(u32::from(t)),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) fn set_max_pacing_rate(&self, rate: Option<u64>) -> io::Result<()> {
        if rate == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a pacing rate must be above 0 bytes per second",
            ));
        }
        self.setsockopt(SockOpt::MaxPacingRate(rate))
    }

    pub(crate) fn max_pacing_rate(&self) -> io::Result<Option<u64>> {
        match self.getsockopt(SockOptName::MaxPacingRate)? {
            SockOpt::MaxPacingRate(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

pub(crate) fn unexpected(opt: SockOpt) -> io::Error {
    io::Error::other(format!("unexpected option value {opt:?}"))
}

impl Drop for SockHandle {
    /// Linux: `sock_close` -> `inet_release`: graceful close (or RST when unread data or
    /// `SO_LINGER` 0), finished in the background by the engine.
    fn drop(&mut self) {
        let s = self.sock;
        self.stack
            .with_core(|core, now| s.ops.release(core, now, &s));
    }
}
