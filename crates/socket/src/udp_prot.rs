//! `udp_prot`: the UDP row of the protocol table (Linux: `net/ipv4/udp.c` `udp_prot`).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::{Context, Poll};
use std::time::Instant;

use ustack_ipv4::IPPROTO_UDP;
use ustack_udp::{RecvMsg, SockId, UdpError};

use crate::core::NetCore;
use crate::errno::{errno, not_supported, udp_err, ENODEV};
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
    poll_recv_msg(core, sk, buf, flags, cx).map_ok(|m| (m.len, m.from, m.to))
}

/// [`poll_recv_from_to`] with the device the datagram arrived on too (Linux `recvmsg`
/// with `IP_PKTINFO`).
pub fn poll_recv_msg(
    core: &mut NetCore,
    sk: SockRef,
    buf: &mut [u8],
    flags: MsgFlags,
    cx: &mut Context<'_>,
) -> Poll<io::Result<RecvMsg>> {
    let id = id_of(sk)?;
    // An ICMP error queued for a connected socket is reported by the next call
    // (Linux: sk->sk_err, ECONNREFUSED after port unreachable).
    if let Some(e) = core.udp.take_error(id) {
        return Poll::Ready(Err(udp_err(e)));
    }
    let r = if flags.peek {
        core.udp.peek_msg(id, buf)
    } else {
        core.udp.recv_msg(id, buf)
    };
    match r {
        Ok(got) => Poll::Ready(Ok(got)),
        Err(UdpError::WouldBlock) => wait_or_would_block(core, sk, WaitKind::Read, flags, cx),
        Err(e) => Poll::Ready(Err(udp_err(e))),
    }
}

/// Linux `udp_sendmsg` / `ip4_datagram_connect`: a broadcast destination needs
/// `SO_BROADCAST` (`EACCES` otherwise). True when `dst` is a broadcast address.
fn check_broadcast(core: &NetCore, id: SockId, dst: Ipv4Addr) -> io::Result<bool> {
    if !core.ip.is_broadcast(dst) {
        return Ok(false);
    }
    if !core.udp.broadcast(id).map_err(udp_err)? {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "sending to a broadcast address needs SO_BROADCAST (set_broadcast)",
        ));
    }
    Ok(true)
}

/// The device of a membership request (Linux `ip_mc_find_dev`): the one with address
/// `interface`, or for 0.0.0.0 the one the route to `group` leaves through. `ENODEV`
/// (in `raw_os_error()`) when there is none, as in Linux.
fn membership_dev(
    core: &NetCore,
    now: Instant,
    group: Ipv4Addr,
    interface: Ipv4Addr,
) -> io::Result<ustack_netdev::DevId> {
    let dev = if interface.is_unspecified() {
        core.route(now, group, None).ok().map(|r| r.dev)
    } else {
        core.ip.dev_of_addr(interface)
    };
    dev.ok_or_else(|| errno(ENODEV))
}

/// `IP_ADD_MEMBERSHIP` (Linux `ip_mc_join_group`): the socket records the membership,
/// the device joins the group (and reports it on the first join).
fn join(
    core: &mut NetCore,
    now: Instant,
    id: SockId,
    group: Ipv4Addr,
    interface: Ipv4Addr,
) -> io::Result<()> {
    if !group.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{group} is not a multicast group"),
        ));
    }
    let dev = membership_dev(core, now, group, interface)?;
    core.udp.add_membership(id, group, dev).map_err(udp_err)?;
    core.ip.join_group(now, dev, group);
    Ok(())
}

/// `IP_DROP_MEMBERSHIP` (Linux `ip_mc_leave_group`).
fn leave(
    core: &mut NetCore,
    now: Instant,
    id: SockId,
    group: Ipv4Addr,
    interface: Ipv4Addr,
) -> io::Result<()> {
    let dev = if interface.is_unspecified() {
        None
    } else {
        Some(membership_dev(core, now, group, interface)?)
    };
    let dev = core
        .udp
        .drop_membership(id, group, dev)
        .map_err(|e| match e {
            UdpError::AddrNotAvailable => io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("the socket has not joined {group} there"),
            ),
            e => udp_err(e),
        })?;
    core.ip.leave_group(now, dev, group);
    Ok(())
}

/// The source address a socket's binding gives its datagrams: its bound unicast address,
/// or 0.0.0.0 (the route chooses) when unbound or bound to 0.0.0.0, a multicast group or
/// a broadcast address (Linux `inet_bind` leaves `inet_saddr` 0 for those).
fn source_of(core: &NetCore, id: SockId) -> Ipv4Addr {
    match core.udp.local_addr(id).map(|a| *a.ip()) {
        Some(ip) if !ip.is_multicast() && !core.ip.is_broadcast(ip) => ip,
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// An option value read from the UDP engine, as the socket layer returns it.
fn got<T>(r: Result<T, UdpError>, opt: impl FnOnce(T) -> SockOpt) -> io::Result<SockOpt> {
    r.map(opt).map_err(udp_err)
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
        // Linux inet_bind: a local, multicast or broadcast address (a socket bound to a
        // group receives only that group's datagrams on the port).
        let ip = *addr.ip();
        if !ip.is_unspecified()
            && !ip.is_multicast()
            && !core.ip.is_local(ip)
            && !core.ip.is_broadcast(ip)
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{ip} is not an address of this stack"),
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
        let bound = source_of(core, id);
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

    fn recv_would_wait(&self, core: &NetCore, sk: SockRef) -> bool {
        id_of(sk).is_ok_and(|id| core.udp.recv_would_block(id))
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
        let broadcast = check_broadcast(core, id, *dst.ip())?;
        let mut oif = core.udp.bound_dev(id).map_err(udp_err)?;
        // Linux udp_sendmsg: a multicast leaves through the socket's device, else its
        // IP_MULTICAST_IF device, from the IP_MULTICAST_IF address unless it is bound
        // to one.
        let mc_if = if dst.ip().is_multicast() {
            core.udp.multicast_if(id).map_err(udp_err)?
        } else {
            None
        };
        if let Some((_, d)) = mc_if {
            oif = oif.or(Some(d));
        }
        let route = core.route(now, *dst.ip(), oif)?;
        let bound = source_of(core, id);
        let src = match (bound.is_unspecified(), mc_if) {
            (false, _) => bound,
            (true, Some((a, _))) => a,
            (true, None) => route.src,
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
        let mut dgram = dgram;
        // Linux ip_mc_output loops every broadcast back to this host.
        dgram.mc_loop |= broadcast;
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

    fn close(&self, core: &mut NetCore, now: Instant, sk: SockRef) {
        if let Ok(id) = id_of(sk) {
            // Linux ip_mc_drop_socket: a closed socket leaves its groups.
            for (group, dev) in core.udp.memberships(id) {
                core.ip.leave_group(now, dev, group);
            }
            core.udp.close(id);
        }
    }

    fn setsockopt(
        &self,
        core: &mut NetCore,
        now: Instant,
        sk: SockRef,
        opt: SockOpt,
    ) -> io::Result<()> {
        let id = id_of(sk)?;
        match opt {
            SockOpt::Ttl(t) => core.udp.set_ttl(id, t).map_err(udp_err),
            SockOpt::Tos(t) => core.udp.set_tos(id, t).map_err(udp_err),
            SockOpt::BindDevice(d) => core.udp.set_bound_dev(id, d).map_err(udp_err),
            SockOpt::Broadcast(b) => core.udp.set_broadcast(id, b).map_err(udp_err),
            SockOpt::RecvBuf(n) => core.udp.set_recv_buf(id, n).map_err(udp_err),
            SockOpt::ReuseAddr(b) => core.udp.set_reuseaddr(id, b).map_err(udp_err),
            SockOpt::ReusePort(b) => core.udp.set_reuseport(id, b).map_err(udp_err),
            SockOpt::MulticastTtl(t) => core.udp.set_multicast_ttl(id, t).map_err(udp_err),
            SockOpt::MulticastLoop(b) => core.udp.set_multicast_loop(id, b).map_err(udp_err),
            SockOpt::MulticastAll(b) => core.udp.set_multicast_all(id, b).map_err(udp_err),
            SockOpt::MulticastIf(a) => {
                let iface = match a.filter(|a| !a.is_unspecified()) {
                    None => None,
                    // Linux IP_MULTICAST_IF: EADDRNOTAVAIL for an address not ours.
                    Some(a) => Some((
                        a,
                        core.ip.dev_of_addr(a).ok_or_else(|| {
                            io::Error::new(
                                io::ErrorKind::AddrNotAvailable,
                                format!("{a} is not an address of this stack"),
                            )
                        })?,
                    )),
                };
                core.udp.set_multicast_if(id, iface).map_err(udp_err)
            }
            SockOpt::AddMembership { group, interface } => join(core, now, id, group, interface),
            SockOpt::DropMembership { group, interface } => leave(core, now, id, group, interface),
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
        let u = &core.udp;
        match name {
            SockOptName::Ttl => got(u.ttl(id), SockOpt::Ttl),
            SockOptName::Tos => got(u.tos(id), SockOpt::Tos),
            SockOptName::BindDevice => got(u.bound_dev(id), SockOpt::BindDevice),
            SockOptName::Broadcast => got(u.broadcast(id), SockOpt::Broadcast),
            SockOptName::RecvBuf => got(u.recv_buf(id), SockOpt::RecvBuf),
            SockOptName::ReuseAddr => got(u.reuseaddr(id), SockOpt::ReuseAddr),
            SockOptName::ReusePort => got(u.reuseport(id), SockOpt::ReusePort),
            SockOptName::MulticastTtl => got(u.multicast_ttl(id), SockOpt::MulticastTtl),
            SockOptName::MulticastLoop => got(u.multicast_loop(id), SockOpt::MulticastLoop),
            SockOptName::MulticastAll => got(u.multicast_all(id), SockOpt::MulticastAll),
            SockOptName::MulticastIf => got(u.multicast_if(id), |i| {
                SockOpt::MulticastIf(i.map(|(a, _)| a))
            }),
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
