//! The per-protocol operations table (Linux: `struct proto`; instances `tcp_prot`,
//! `udp_prot`).
//!
//! The operations Linux may block in (`accept`, `recvmsg`, `sendmsg`) are `poll_*` methods:
//! instead of sleeping on the socket's wait queue they store the task's `Waker` in
//! [`NetCore::wait`] and return `Pending` (unless [`MsgFlags::dontwait`] is set, which
//! returns `WouldBlock` like `MSG_DONTWAIT`).

use std::io::{self, IoSlice};
use std::net::SocketAddrV4;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::core::NetCore;
use crate::errno::not_supported;
use crate::sock::{MsgFlags, PollMask, Shutdown, SockOpt, SockOptName, SockRef};
use crate::wait::WaitKind;

/// What `poll_recvmsg` returns: the byte count and, for datagram sockets, the sender.
pub type RecvResult = io::Result<(usize, Option<SocketAddrV4>)>;

/// Protocol operations (Linux: `struct proto`). Methods get the locked [`NetCore`], the
/// current time where timers may start, and the socket's id in the protocol engine.
pub trait Proto: Send + Sync + 'static {
    /// The protocol's name as in `/proc/net/protocols` ("TCP", "UDP").
    fn name(&self) -> &'static str;

    /// The IP protocol number (6, 17).
    fn protocol(&self) -> u8;

    /// Allocates the protocol socket (Linux: `sk_alloc` + `sk->sk_prot->init`).
    fn init(&self, core: &mut NetCore) -> io::Result<SockRef>;

    /// Binds a local address; port 0 picks an ephemeral port (Linux: `inet_bind` ->
    /// `sk->sk_prot->get_port`).
    fn bind(&self, core: &mut NetCore, sk: SockRef, addr: SocketAddrV4) -> io::Result<()>;

    /// Starts listening (Linux: `inet_csk_listen_start`). Default: `EOPNOTSUPP`.
    fn listen(&self, _core: &mut NetCore, _sk: SockRef, _backlog: u32) -> io::Result<()> {
        Err(not_supported())
    }

    /// Starts listening for connections to any address and port arriving on the devices
    /// (Linux: `IP_TRANSPARENT` + a TPROXY rule). Default: `EOPNOTSUPP`.
    fn listen_any(&self, _core: &mut NetCore, _sk: SockRef, _backlog: u32) -> io::Result<()> {
        Err(not_supported())
    }

    /// Starts a connection without waiting (Linux: `tcp_v4_connect`, `ip4_datagram_connect`).
    fn connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        addr: SocketAddrV4,
    ) -> io::Result<()>;

    /// The outcome of a started connect: `None` while in progress (Linux: what
    /// `inet_wait_for_connect` waits for).
    fn connect_result(&self, core: &mut NetCore, sk: SockRef) -> Option<io::Result<()>>;

    /// Dissolves an association (Linux: `sk->sk_prot->disconnect`, `connect(AF_UNSPEC)`).
    fn disconnect(&self, _core: &mut NetCore, _now: Instant, _sk: SockRef) -> io::Result<()> {
        Err(not_supported())
    }

    /// Takes a connection from the accept queue (Linux: `inet_csk_accept`).
    fn poll_accept(
        &self,
        _core: &mut NetCore,
        _now: Instant,
        _sk: SockRef,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<SockRef>> {
        Poll::Ready(Err(not_supported()))
    }

    /// Receives data (Linux: `tcp_recvmsg`, `udp_recvmsg`).
    fn poll_recvmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        buf: &mut [u8],
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<RecvResult>;

    /// Sends data (Linux: `tcp_sendmsg`, `udp_sendmsg`). `dst` is the `sendto` address.
    #[allow(clippy::too_many_arguments)]
    fn poll_sendmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        bufs: &[IoSlice<'_>],
        dst: Option<SocketAddrV4>,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>>;

    /// Receives in place: `f` is shown the queued bytes and returns how many it consumed
    /// (see [`ustack_tcp::RecvDst::InPlace`]); `Ok(0)` at end of stream. Stream protocols
    /// only; the default fails with `EOPNOTSUPP`.
    fn poll_recv_in_place(
        &self,
        _core: &mut NetCore,
        _now: Instant,
        _sk: SockRef,
        _f: &mut dyn FnMut(&[u8]) -> usize,
        _flags: MsgFlags,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(not_supported()))
    }

    /// Sends in place: `f` writes into free send-buffer space and returns how many bytes
    /// it wrote (see [`ustack_tcp::SendSrc::InPlace`]). Stream protocols only; the default
    /// fails with `EOPNOTSUPP`.
    fn poll_send_in_place(
        &self,
        _core: &mut NetCore,
        _now: Instant,
        _sk: SockRef,
        _f: &mut dyn FnMut(&mut [u8]) -> usize,
        _flags: MsgFlags,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(not_supported()))
    }

    /// Whether a receive on `sk` would find nothing to return and wait: nothing queued,
    /// no pending error, no end of stream. Must read and change nothing. The default,
    /// `false`, always makes the full [`poll_recvmsg`](Self::poll_recvmsg) call.
    fn recv_would_wait(&self, _core: &NetCore, _sk: SockRef) -> bool {
        false
    }

    /// Current readiness (Linux: `tcp_poll`, `udp_poll` without the wait-queue part).
    fn poll_mask(&self, core: &mut NetCore, sk: SockRef) -> PollMask;

    /// A task is about to wait for write space on `sk` because the last
    /// [`poll_mask`](Self::poll_mask) showed none: the protocol must signal when space
    /// frees up (Linux: `tcp_poll` sets `SOCK_NOSPACE`, which `sk_stream_write_space`
    /// checks). Protocols whose writability never waits on the peer need nothing here.
    fn note_write_waiter(&self, _core: &mut NetCore, _sk: SockRef) {}

    /// Shuts down one or both directions (Linux: `tcp_shutdown`).
    fn shutdown(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        how: Shutdown,
    ) -> io::Result<()>;

    /// Releases the socket (Linux: `tcp_close`, `udp_lib_close`): graceful for TCP unless
    /// unread data or `SO_LINGER` 0 demand RST.
    fn close(&self, core: &mut NetCore, now: Instant, sk: SockRef);

    /// Aborts the socket (Linux: `tcp_abort`): RST for TCP.
    fn abort(&self, core: &mut NetCore, now: Instant, sk: SockRef) {
        self.close(core, now, sk);
    }

    /// Sets an option (Linux: `sk->sk_prot->setsockopt`). `now` is for the options that
    /// send something (a group membership's IGMP report).
    fn setsockopt(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        opt: SockOpt,
    ) -> io::Result<()>;

    /// Reads an option (Linux: `sk->sk_prot->getsockopt`).
    fn getsockopt(&self, core: &mut NetCore, sk: SockRef, name: SockOptName)
        -> io::Result<SockOpt>;

    /// The local (`peer == false`) or remote address (Linux: `inet_getname`).
    fn getname(&self, core: &mut NetCore, sk: SockRef, peer: bool) -> io::Result<SocketAddrV4>;

    /// Takes the pending error (Linux `SO_ERROR` through `sock_error`): an error reported
    /// here is not reported again by the next call that would have returned it.
    fn take_error(&self, _core: &mut NetCore, _sk: SockRef) -> Option<io::Error> {
        None
    }
}

/// The common "would block" tail of a `poll_*` operation: with `MSG_DONTWAIT` return
/// `WouldBlock`, otherwise sleep on the socket's wait queue (Linux: `sk_wait_event`).
pub fn wait_or_would_block<T>(
    core: &mut NetCore,
    sk: SockRef,
    kind: WaitKind,
    flags: MsgFlags,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if flags.dontwait {
        Poll::Ready(Err(io::ErrorKind::WouldBlock.into()))
    } else {
        core.wait.register(sk, kind, cx.waker());
        Poll::Pending
    }
}
