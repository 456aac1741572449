//! The per-socket-type operations table (Linux: `struct proto_ops`; instances
//! `inet_stream_ops`, `inet_dgram_ops`).
//!
//! This is the layer the facade calls (Linux: the `sys_*` system calls call `sock->ops->*`).
//! The generic inet functions here (`inet_bind`, `inet_release`, ...) dispatch to the
//! socket's [`Proto`](crate::Proto).

use std::io::{self, IoSlice};
use std::net::SocketAddrV4;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::core::NetCore;
use crate::errno::not_supported;
use crate::proto::RecvResult;
use crate::sock::{
    AddressFamily, MsgFlags, PollMask, Shutdown, SockOpt, SockOptName, SockType, Socket,
};
use crate::wait::WaitKind;

/// Socket-level operations (Linux: `struct proto_ops`).
pub trait ProtoOps: Send + Sync + 'static {
    /// The table's Linux name ("inet_stream_ops").
    fn name(&self) -> &'static str;

    /// The address family (Linux: `proto_ops.family`).
    fn family(&self) -> AddressFamily;

    /// The socket type served.
    fn sock_type(&self) -> SockType;

    /// Closes the socket (Linux: `inet_release`). The handle must not be used afterwards.
    fn release(&self, core: &mut NetCore, now: Instant, sock: &Socket) {
        inet_release(core, now, sock);
    }

    /// Binds a local address (Linux: `inet_bind`).
    fn bind(&self, core: &mut NetCore, sock: &Socket, addr: SocketAddrV4) -> io::Result<()> {
        sock.sk.prot.bind(core, sock.sk.id, addr)
    }

    /// Connects, waiting for the handshake where the protocol has one (Linux:
    /// `inet_stream_connect`, `inet_dgram_connect`). Poll again after a wake; the first
    /// call starts the connect.
    fn poll_connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        addr: SocketAddrV4,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>>;

    /// Dissolves a datagram association (Linux: `connect(AF_UNSPEC)`).
    fn disconnect(&self, core: &mut NetCore, now: Instant, sock: &Socket) -> io::Result<()> {
        sock.sk.prot.disconnect(core, now, sock.sk.id)
    }

    /// Starts listening (Linux: `inet_listen`). Default: `EOPNOTSUPP` (`sock_no_listen`).
    fn listen(&self, _core: &mut NetCore, _sock: &Socket, _backlog: u32) -> io::Result<()> {
        Err(not_supported())
    }

    /// Listens for connections to any destination arriving on the devices (transparent
    /// proxy). Default: `EOPNOTSUPP`.
    fn listen_any(&self, _core: &mut NetCore, _sock: &Socket, _backlog: u32) -> io::Result<()> {
        Err(not_supported())
    }

    /// Accepts a connection (Linux: `inet_accept`). Default: `EOPNOTSUPP` (`sock_no_accept`).
    fn poll_accept(
        &self,
        _core: &mut NetCore,
        _now: Instant,
        _sock: &Socket,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<Socket>> {
        Poll::Ready(Err(not_supported()))
    }

    /// The local or peer address (Linux: `inet_getname`).
    fn getname(&self, core: &mut NetCore, sock: &Socket, peer: bool) -> io::Result<SocketAddrV4> {
        sock.sk.prot.getname(core, sock.sk.id, peer)
    }

    /// Readiness (Linux: `tcp_poll` / `udp_poll` via `sock->ops->poll`). For every bit of
    /// `interest` that is not ready, the task's waker is put on the matching wait list.
    fn poll(
        &self,
        core: &mut NetCore,
        sock: &Socket,
        interest: PollMask,
        cx: &mut Context<'_>,
    ) -> PollMask {
        inet_poll(core, sock, interest, cx)
    }

    /// Shuts down a direction (Linux: `inet_shutdown`).
    fn shutdown(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        how: Shutdown,
    ) -> io::Result<()> {
        sock.sk.prot.shutdown(core, now, sock.sk.id, how)
    }

    /// Sets an option (Linux: `sock_common_setsockopt`).
    fn setsockopt(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        opt: SockOpt,
    ) -> io::Result<()> {
        sock.sk.prot.setsockopt(core, now, sock.sk.id, opt)
    }

    /// Reads an option (Linux: `sock_common_getsockopt`).
    fn getsockopt(
        &self,
        core: &mut NetCore,
        sock: &Socket,
        name: SockOptName,
    ) -> io::Result<SockOpt> {
        sock.sk.prot.getsockopt(core, sock.sk.id, name)
    }

    /// Takes the pending error (Linux: `getsockopt(SO_ERROR)` -> `sock_error`).
    fn take_error(&self, core: &mut NetCore, sock: &Socket) -> Option<io::Error> {
        sock.sk.prot.take_error(core, sock.sk.id)
    }

    /// Sends (Linux: `inet_sendmsg` -> `sk->sk_prot->sendmsg`).
    #[allow(clippy::too_many_arguments)]
    fn poll_sendmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        bufs: &[IoSlice<'_>],
        dst: Option<SocketAddrV4>,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        sock.sk
            .prot
            .poll_sendmsg(core, now, sock.sk.id, bufs, dst, flags, cx)
    }

    /// Receives (Linux: `inet_recvmsg` -> `sk->sk_prot->recvmsg`).
    fn poll_recvmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        buf: &mut [u8],
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<RecvResult> {
        sock.sk
            .prot
            .poll_recvmsg(core, now, sock.sk.id, buf, flags, cx)
    }

    /// Whether a receive on `sock` with `flags` would find nothing and wait (see
    /// [`Proto::recv_would_wait`](crate::proto::Proto::recv_would_wait)); the caller can
    /// then wait ([`wait_or_would_block`](crate::proto::wait_or_would_block)) without the
    /// full [`poll_recvmsg`](Self::poll_recvmsg) call, its clock read and the tail of a
    /// stack call. `MSG_PEEK` always takes the full call.
    fn recv_would_wait(&self, core: &NetCore, sock: &Socket, flags: MsgFlags) -> bool {
        !flags.peek && sock.sk.prot.recv_would_wait(core, sock.sk.id)
    }

    /// Receives in place (no Linux call: the closure sees the receive queue itself).
    fn poll_recv_in_place(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        f: &mut dyn FnMut(&[u8]) -> usize,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        sock.sk
            .prot
            .poll_recv_in_place(core, now, sock.sk.id, f, flags, cx)
    }

    /// Sends in place (no Linux call: the closure writes into the send queue itself).
    fn poll_send_in_place(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        f: &mut dyn FnMut(&mut [u8]) -> usize,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        sock.sk
            .prot
            .poll_send_in_place(core, now, sock.sk.id, f, flags, cx)
    }
}

/// Linux: `inet_release` -> `sk->sk_prot->close`; waiters left on the socket are woken by
/// the caller (they will find the socket gone).
pub fn inet_release(core: &mut NetCore, now: Instant, sock: &Socket) {
    sock.sk.prot.close(core, now, sock.sk.id);
    let mut orphans = Vec::new();
    core.wait.remove(sock.sk.id, &mut orphans);
    // Wakers of a released socket belong to futures of the dropped handle; waking them
    // is harmless and avoids leaking a task that still waits.
    for w in orphans {
        w.wake();
    }
}

/// Linux: `tcp_poll`/`udp_poll` with `sock_poll_wait`: computes the mask and registers the
/// waker for the interesting bits that are not ready.
pub fn inet_poll(
    core: &mut NetCore,
    sock: &Socket,
    interest: PollMask,
    cx: &mut Context<'_>,
) -> PollMask {
    let mask = sock.sk.prot.poll_mask(core, sock.sk.id);
    let want_in = interest.contains(PollMask::IN);
    let want_out = interest.contains(PollMask::OUT);
    if want_in && !mask.intersects(PollMask::IN | PollMask::ERR | PollMask::HUP) {
        core.wait.register(sock.sk.id, WaitKind::Read, cx.waker());
    }
    if want_out && !mask.intersects(PollMask::OUT | PollMask::ERR | PollMask::HUP) {
        sock.sk.prot.note_write_waiter(core, sock.sk.id);
        core.wait.register(sock.sk.id, WaitKind::Write, cx.waker());
    }
    mask
}

/// Linux: `inet_stream_connect` / `__inet_stream_connect`: the first call starts the
/// connect (`SS_CONNECTING`), later calls wait for its outcome (`inet_wait_for_connect`).
pub fn inet_stream_connect(
    core: &mut NetCore,
    now: Instant,
    sock: &Socket,
    addr: SocketAddrV4,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let prot = sock.sk.prot;
    let id = sock.sk.id;
    if !core.wait.entry(id).connecting {
        prot.connect(core, now, id, addr)?;
        core.wait.entry(id).connecting = true;
    }
    match prot.connect_result(core, id) {
        None => {
            core.wait.register(id, WaitKind::Write, cx.waker());
            Poll::Pending
        }
        Some(r) => {
            core.wait.entry(id).connecting = false;
            Poll::Ready(r)
        }
    }
}
