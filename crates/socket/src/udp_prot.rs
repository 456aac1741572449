//! `udp_prot`: the UDP row of the protocol table (Linux: `net/ipv4/udp.c` `udp_prot`).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::{Context, Poll};
use std::time::Instant;

use ustack_ipv4::IPPROTO_UDP;
use ustack_udp::{SockId, UdpError};

use crate::core::NetCore;
use crate::errno::{not_supported, udp_err};
use crate::proto::{wait_or_would_block, Proto, RecvResult};
use crate::sock::{MsgFlags, PollMask, Shutdown, SockOpt, SockOptName, SockRef};
use crate::wait::WaitKind;

/// The UDP protocol operations (Linux: `udp_prot`).
#[derive(Debug, Default)]
pub struct UdpProt;

/// `recvmsg` on a UDP socket with the destination as well (Linux `udp_recvmsg` with
/// `IP_RECVORIGDSTADDR`): the bytes copied, the sender, and where the datagram was sent
/// (for a transparent socket, the foreign destination). A pending ICMP error is reported
/// first; with nothing queued the waker is registered (or `WouldBlock` for `dontwait`).
pub fn poll_recv_from_to(
    core: &mut NetCore,
    sk: SockRef,
    buf: &mut [u8],
    flags: MsgFlags,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(usize, SocketAddrV4, SocketAddrV4)>> {
    let id = id_of(sk)?;
    // An ICMP error queued for a connected socket is reported by the next call
    // (Linux: sk->sk_err, ECONNREFUSED after port unreachable).
    if let Some(e) = core.udp.take_error(id) {
        return Poll::Ready(Err(udp_err(e)));
    }
    let r = if flags.peek {
        core.udp.peek_from_to(id, buf)
    } else {
        core.udp.recv_from_to(id, buf)
    };
    match r {
        Ok(got) => Poll::Ready(Ok(got)),
        Err(UdpError::WouldBlock) => wait_or_would_block(core, sk, WaitKind::Read, flags, cx),
        Err(e) => Poll::Ready(Err(udp_err(e))),
    }
}

/// Linux `udp_sendmsg` / `ip4_datagram_connect`: a broadcast destination needs
/// `SO_BROADCAST` (`EACCES` otherwise).
fn check_broadcast(core: &NetCore, id: SockId, dst: Ipv4Addr) -> io::Result<()> {
    if core.ip.is_broadcast(dst) && !core.udp.broadcast(id).map_err(udp_err)? {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "sending to a broadcast address needs SO_BROADCAST (set_broadcast)",
        ));
    }
    Ok(())
}

fn id_of(sk: SockRef) -> io::Result<SockId> {
    match sk {
        SockRef::Udp(id) => Ok(id),
        SockRef::Tcp(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a UDP socket",
        )),
    }
}

/// Largest UDP payload over IPv4 (65535 - 20 - 8), Linux: `EMSGSIZE` above it.
const MAX_UDP_PAYLOAD: usize = 65507;

impl Proto for UdpProt {
    fn name(&self) -> &'static str {
        "UDP"
    }

    fn protocol(&self) -> u8 {
        IPPROTO_UDP
    }

    fn init(&self, core: &mut NetCore) -> io::Result<SockRef> {
        Ok(SockRef::Udp(core.udp.socket()))
    }

    fn bind(&self, core: &mut NetCore, sk: SockRef, addr: SocketAddrV4) -> io::Result<()> {
        let id = id_of(sk)?;
        if !addr.ip().is_unspecified() && !core.ip.is_local(*addr.ip()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{} is not an address of this stack", addr.ip()),
            ));
        }
        core.udp.bind(id, addr).map_err(udp_err)
    }

    fn connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        addr: SocketAddrV4,
    ) -> io::Result<()> {
        let id = id_of(sk)?;
        check_broadcast(core, id, *addr.ip())?;
        // Linux ip4_datagram_connect: route now to pick the source address.
        let oif = core.udp.bound_dev(id).map_err(udp_err)?;
        let route = core.route(now, *addr.ip(), oif)?;
        let bound = core
            .udp
            .local_addr(id)
            .map(|a| *a.ip())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let local_ip = if bound.is_unspecified() {
            route.src
        } else {
            bound
        };
        core.udp.connect(id, local_ip, addr).map_err(udp_err)
    }

    fn connect_result(&self, _core: &mut NetCore, _sk: SockRef) -> Option<io::Result<()>> {
        Some(Ok(()))
    }

    fn disconnect(&self, core: &mut NetCore, _now: Instant, sk: SockRef) -> io::Result<()> {
        core.udp.disconnect(id_of(sk)?);
        Ok(())
    }

    fn poll_recvmsg(
        &self,
        core: &mut NetCore,
        _now: Instant,
        sk: SockRef,
        buf: &mut [u8],
        flags: MsgFlags,
        cx: &mut Context<'_>,
    ) -> Poll<RecvResult> {
        poll_recv_from_to(core, sk, buf, flags, cx).map_ok(|(n, from, _)| (n, Some(from)))
    }

    fn poll_sendmsg(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        bufs: &[IoSlice<'_>],
        dst: Option<SocketAddrV4>,
        _flags: MsgFlags,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let id = id_of(sk)?;
        let Some(dst) = dst.or_else(|| core.udp.peer_addr(id)) else {
            // Linux: EDESTADDRREQ; tokio users see NotConnected.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "UDP socket is not connected",
            )));
        };
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len > MAX_UDP_PAYLOAD {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            )));
        }
        check_broadcast(core, id, *dst.ip())?;
        let oif = core.udp.bound_dev(id).map_err(udp_err)?;
        let route = core.route(now, *dst.ip(), oif)?;
        let bound = core
            .udp
            .local_addr(id)
            .map(|a| *a.ip())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let src = if bound.is_unspecified() {
            route.src
        } else {
            bound
        };
        let dgram = if bufs.len() == 1 {
            core.udp.send_to(id, src, dst, &bufs[0])
        } else {
            let mut data = Vec::with_capacity(len);
            for b in bufs {
                data.extend_from_slice(b);
            }
            core.udp.send_to(id, src, dst, &data)
        }
        .map_err(udp_err)?;
        core.output_udp(now, dgram)?;
        // UDP never waits for buffer space: a full device queue drops (Linux: qdisc drop).
        Poll::Ready(Ok(len))
    }

    fn poll_mask(&self, core: &mut NetCore, sk: SockRef) -> PollMask {
        let Ok(id) = id_of(sk) else {
            return PollMask::ERR;
        };
        let mut m = PollMask::OUT;
        if core.udp.readable(id) {
            m |= PollMask::IN;
        }
        m
    }

    fn shutdown(
        &self,
        _core: &mut NetCore,
        _now: Instant,
        _sk: SockRef,
        _how: Shutdown,
    ) -> io::Result<()> {
        Err(not_supported())
    }

    fn close(&self, core: &mut NetCore, _now: Instant, sk: SockRef) {
        if let Ok(id) = id_of(sk) {
            core.udp.close(id);
        }
    }

    fn setsockopt(&self, core: &mut NetCore, sk: SockRef, opt: SockOpt) -> io::Result<()> {
        let id = id_of(sk)?;
        match opt {
            SockOpt::Ttl(t) => core.udp.set_ttl(id, t).map_err(udp_err),
            SockOpt::Tos(t) => core.udp.set_tos(id, t).map_err(udp_err),
            SockOpt::BindDevice(d) => core.udp.set_bound_dev(id, d).map_err(udp_err),
            SockOpt::Broadcast(b) => core.udp.set_broadcast(id, b).map_err(udp_err),
            _ => Err(not_supported()),
        }
    }

    fn getsockopt(
        &self,
        core: &mut NetCore,
        sk: SockRef,
        name: SockOptName,
    ) -> io::Result<SockOpt> {
        let id = id_of(sk)?;
        match name {
            SockOptName::Ttl => core.udp.ttl(id).map(SockOpt::Ttl).map_err(udp_err),
            SockOptName::Tos => core.udp.tos(id).map(SockOpt::Tos).map_err(udp_err),
            SockOptName::BindDevice => core
                .udp
                .bound_dev(id)
                .map(SockOpt::BindDevice)
                .map_err(udp_err),
            SockOptName::Broadcast => core
                .udp
                .broadcast(id)
                .map(SockOpt::Broadcast)
                .map_err(udp_err),
            _ => Err(not_supported()),
        }
    }

    fn getname(&self, core: &mut NetCore, sk: SockRef, peer: bool) -> io::Result<SocketAddrV4> {
        let id = id_of(sk)?;
        let a = if peer {
            core.udp.peer_addr(id)
        } else {
            core.udp.local_addr(id)
        };
        a.ok_or_else(|| {
            if peer {
                io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected")
            } else {
                io::Error::new(io::ErrorKind::InvalidInput, "UDP socket is not bound")
            }
        })
    }

    fn take_error(&self, core: &mut NetCore, sk: SockRef) -> Option<io::Error> {
        core.udp.take_error(id_of(sk).ok()?).map(udp_err)
    }
}
