//! `tcp_prot`: the TCP row of the protocol table (Linux: `net/ipv4/tcp_ipv4.c` `tcp_prot`).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::{Context, Poll};
use std::time::Instant;

use ustack_ipv4::IPPROTO_TCP;
use ustack_netdev::DevId;
use ustack_tcp::{RecvDst, SendSrc, SockId, TcpError, TcpState};

use crate::core::NetCore;
use crate::errno::tcp_err;
use crate::proto::{wait_or_would_block, Proto, RecvResult};
use crate::sock::{MsgFlags, PollMask, Shutdown, SockOpt, SockOptName, SockRef};
use crate::wait::WaitKind;

/// The TCP protocol operations (Linux: `tcp_prot`).
#[derive(Debug, Default)]
pub struct TcpProt;

fn id_of(sk: SockRef) -> io::Result<SockId> {
    match sk {
        SockRef::Tcp(id) => Ok(id),
        SockRef::Udp(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP socket",
        )),
    }
}

/// The pending error of a TCP socket, consumed (Linux: `sock_error`).
fn pending_error(core: &mut NetCore, id: SockId) -> Option<TcpError> {
    core.tcp.take_error(id)
}

/// The device the socket is bound to (`SO_BINDTODEVICE`), if any.
fn bound_dev(core: &NetCore, id: SockId) -> Option<DevId> {
    match core.tcp.get_option(id, SockOptName::BindDevice) {
        Ok(SockOpt::BindDevice(d)) => d,
        _ => None,
    }
}

/// Linux `sk_stream_wait_connect`: a send during the handshake waits for it.
fn handshaking(core: &NetCore, id: SockId) -> bool {
    matches!(
        core.tcp.state(id),
        Some(TcpState::SynSent) | Some(TcpState::SynReceived)
    )
}

/// Linux `tcp_recvmsg` without `MSG_PEEK`: data (copied or in place), `Ok(0)` at end of
/// stream, or wait.
fn recv(
    core: &mut NetCore,
    now: Instant,
    sk: SockRef,
    dst: RecvDst<'_>,
    flags: MsgFlags,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let id = id_of(sk)?;
    match core.tcp.recv_into(now, id, dst, &mut core.tcp_out) {
        Ok(n) => Poll::Ready(Ok(n)),
        Err(TcpError::WouldBlock) => wait_or_would_block(core, sk, WaitKind::Read, flags, cx),
        Err(e) => Poll::Ready(Err(tcp_err(e))),
    }
}

impl Proto for TcpProt {
    fn name(&self) -> &'static str {
        "TCP"
    }

    fn protocol(&self) -> u8 {
        IPPROTO_TCP
    }

    fn init(&self, core: &mut NetCore) -> io::Result<SockRef> {
        Ok(SockRef::Tcp(core.tcp.socket()))
    }

    fn bind(&self, core: &mut NetCore, sk: SockRef, addr: SocketAddrV4) -> io::Result<()> {
        let id = id_of(sk)?;
        if !addr.ip().is_unspecified() && !core.ip.is_local(*addr.ip()) {
            // Linux inet_bind: EADDRNOTAVAIL unless ip_nonlocal_bind/IP_TRANSPARENT.
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{} is not an address of this stack", addr.ip()),
            ));
        }
        core.tcp.bind(id, addr).map_err(tcp_err)
    }

    fn listen(&self, core: &mut NetCore, sk: SockRef, backlog: u32) -> io::Result<()> {
        core.tcp.listen(id_of(sk)?, backlog).map_err(tcp_err)
    }

    fn listen_any(&self, core: &mut NetCore, sk: SockRef, backlog: u32) -> io::Result<()> {
        core.tcp.listen_any(id_of(sk)?, backlog).map_err(tcp_err)?;
        core.set_tproxy_tcp(Some(sk));
        Ok(())
    }

    fn connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        addr: SocketAddrV4,
    ) -> io::Result<()> {
        let id = id_of(sk)?;
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unspecified address",
            ));
        }
        // Linux ip_route_connect: no route fails the connect at once (ENETUNREACH).
        let route = core.route(now, *addr.ip(), bound_dev(core, id))?;
        let bound = core
            .tcp
            .local_addr(id)
            .map(|a| *a.ip())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let local_ip = if bound.is_unspecified() {
            route.src
        } else {
            bound
        };
        core.tcp
            .connect(now, id, local_ip, addr, route.mtu, &mut core.tcp_out)
            .map_err(tcp_err)?;
        // Transmit offload where the route's device finishes segments (Linux
        // `sk_setup_caps` in `tcp_v4_connect`).
        core.tcp.set_offload(id, route.tso_max);
        Ok(())
    }

    fn connect_result(&self, core: &mut NetCore, sk: SockRef) -> Option<io::Result<()>> {
        let id = match id_of(sk) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        match core.tcp.state(id) {
            Some(TcpState::SynSent) | Some(TcpState::SynReceived) => None,
            Some(TcpState::Listen) => Some(Err(tcp_err(TcpError::InvalidState))),
            Some(TcpState::Closed) | None => {
                let err = pending_error(core, id)
                    .or(core.tcp.poll_state(id).error)
                    .unwrap_or(TcpError::ConnectionRefused);
                Some(Err(tcp_err(err)))
            }
            Some(_) => Some(Ok(())),
        }
    }

    fn poll_accept(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<SockRef>> {
        let id = id_of(sk)?;
        match core.tcp.accept(id) {
            Ok(Some(child)) => {
                // Transmit offload where the route back to the peer's device finishes
                // segments (Linux `sk_setup_caps` in `tcp_v4_syn_recv_sock`).
                if let Some(peer) = core.tcp.peer_addr(child) {
                    let tso = core
                        .route(now, *peer.ip(), bound_dev(core, child))
                        .map_or(0, |r| r.tso_max);
                    core.tcp.set_offload(child, tso);
                }
                Poll::Ready(Ok(SockRef::Tcp(child)))
            }
            Ok(None) => wait_or_would_block(core, sk, WaitKind::Read, MsgFlags::NONE, cx),
            Err(e) => Poll::Ready(Err(tcp_err(e))),
        }
    }

    fn poll_recvmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        buf: &mut [u8],
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<RecvResult> {
        let id = id_of(sk)?;
        if buf.is_empty() {
            return Poll::Ready(Ok((0, None)));
        }
        if flags.peek {
            return match core.tcp.peek(id, buf) {
                Ok(n) if n > 0 => Poll::Ready(Ok((n, None))),
                Ok(_) | Err(TcpError::WouldBlock) => {
                    let r = core.tcp.poll_state(id);
                    if let Some(e) = r.error {
                        let _ = pending_error(core, id);
                        Poll::Ready(Err(tcp_err(e)))
                    } else if r.read_closed {
                        Poll::Ready(Ok((0, None)))
                    } else {
                        wait_or_would_block(core, sk, WaitKind::Read, flags, cx)
                    }
                }
                Err(e) => Poll::Ready(Err(tcp_err(e))),
            };
        }
        recv(core, now, sk, RecvDst::Copy(buf), flags, cx).map_ok(|n| (n, None))
    }

    fn poll_recv_in_place(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        f: &mut dyn FnMut(&[u8]) -> usize,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        recv(core, now, sk, RecvDst::InPlace(f), flags, cx)
    }

    fn poll_send_in_place(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        f: &mut dyn FnMut(&mut [u8]) -> usize,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let id = id_of(sk)?;
        if handshaking(core, id) {
            return wait_or_would_block(core, sk, WaitKind::Write, flags, cx);
        }
        match core
            .tcp
            .send_from(now, id, SendSrc::InPlace(f), &mut core.tcp_out)
        {
            Ok(n) => Poll::Ready(Ok(n)),
            // Linux sk_stream_wait_memory.
            Err(TcpError::WouldBlock) => wait_or_would_block(core, sk, WaitKind::Write, flags, cx),
            Err(e) => Poll::Ready(Err(tcp_err(e))),
        }
    }

    fn poll_sendmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        bufs: &[IoSlice<'_>],
        _dst: Option<SocketAddrV4>,
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let id = id_of(sk)?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if handshaking(core, id) {
            return wait_or_would_block(core, sk, WaitKind::Write, flags, cx);
        }
        // All buffers in one send (Linux `tcp_sendmsg` walks the iovec and pushes once at
        // the end): sending after each buffer would let Nagle's algorithm hold a small
        // second buffer (an HTTP body after its header) until the first is acknowledged,
        // a delayed ACK later.
        let src = if let [one] = bufs {
            SendSrc::Copy(one)
        } else {
            SendSrc::Vectored(bufs)
        };
        match core.tcp.send_from(now, id, src, &mut core.tcp_out) {
            Ok(n) if n > 0 => Poll::Ready(Ok(n)),
            // Linux sk_stream_wait_memory.
            Ok(_) | Err(TcpError::WouldBlock) => {
                wait_or_would_block(core, sk, WaitKind::Write, flags, cx)
            }
            Err(e) => Poll::Ready(Err(tcp_err(e))),
        }
    }

    fn recv_would_wait(&self, core: &NetCore, sk: SockRef) -> bool {
        id_of(sk).is_ok_and(|id| core.tcp.recv_would_block(id))
    }

    fn poll_mask(&self, core: &mut NetCore, sk: SockRef) -> PollMask {
        let Ok(id) = id_of(sk) else {
            return PollMask::ERR;
        };
        let r = core.tcp.poll_state(id);
        let mut m = PollMask::EMPTY;
        if r.readable || r.acceptable || r.read_closed {
            m |= PollMask::IN;
        }
        if r.read_closed {
            m |= PollMask::RDHUP;
        }
        if r.writable {
            m |= PollMask::OUT;
        }
        if r.error.is_some() {
            m |= PollMask::ERR | PollMask::IN | PollMask::OUT;
        }
        if r.read_closed && r.write_closed {
            m |= PollMask::HUP;
        }
        m
    }

    fn note_write_waiter(&self, core: &mut NetCore, sk: SockRef) {
        if let Ok(id) = id_of(sk) {
            core.tcp.note_write_waiter(id);
        }
    }

    fn shutdown(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        how: Shutdown,
    ) -> io::Result<()> {
        let id = id_of(sk)?;
        match how {
            // Linux tcp_shutdown ignores SHUT_RD at the protocol level.
            Shutdown::Read => Ok(()),
            Shutdown::Write | Shutdown::Both => core
                .tcp
                .shutdown_write(now, id, &mut core.tcp_out)
                .map_err(tcp_err),
        }
    }

    fn close(&self, core: &mut NetCore, now: Instant, sk: SockRef) {
        if core.tproxy_tcp() == Some(sk) {
            core.set_tproxy_tcp(None);
        }
        if let Ok(id) = id_of(sk) {
            core.tcp.close(now, id, &mut core.tcp_out);
        }
    }

    fn abort(&self, core: &mut NetCore, now: Instant, sk: SockRef) {
        if core.tproxy_tcp() == Some(sk) {
            core.set_tproxy_tcp(None);
        }
        if let Ok(id) = id_of(sk) {
            core.tcp.abort(now, id, &mut core.tcp_out);
        }
    }

    fn setsockopt(
        &self,
        core: &mut NetCore,
        _now: Instant,
        sk: SockRef,
        opt: SockOpt,
    ) -> io::Result<()> {
        core.tcp.set_option(id_of(sk)?, opt).map_err(tcp_err)
    }

    fn getsockopt(
        &self,
        core: &mut NetCore,
        sk: SockRef,
        name: SockOptName,
    ) -> io::Result<SockOpt> {
        core.tcp.get_option(id_of(sk)?, name).map_err(tcp_err)
    }

    fn getname(&self, core: &mut NetCore, sk: SockRef, peer: bool) -> io::Result<SocketAddrV4> {
        let id = id_of(sk)?;
        let a = if peer {
            core.tcp.peer_addr(id)
        } else {
            core.tcp.local_addr(id)
        };
        a.ok_or_else(|| tcp_err(TcpError::NotConnected))
    }

    fn take_error(&self, core: &mut NetCore, sk: SockRef) -> Option<io::Error> {
        pending_error(core, id_of(sk).ok()?).map(tcp_err)
    }
}
