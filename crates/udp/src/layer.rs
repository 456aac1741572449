//! The UDP engine: sockets, port tables, demux, receive queues, ICMP errors.
//! Linux: `net/ipv4/udp.c` (`udp_table`, `udp_lib_get_port`, `__udp4_lib_lookup`,
//! `udp_queue_rcv_skb`, `__udp4_lib_err`, `udp_recvmsg`, `udp_sendmsg`).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use ustack_ipv4::{DeliverResult, IcmpError, IcmpErrorKind, IpRxMeta, IPPROTO_UDP};
use ustack_netdev::rng::SplitMix64;
use ustack_netdev::{DevId, PacketBuf, DEFAULT_HEADROOM};

use crate::wire::{prepend_header, UdpHeader, UdpParseError, HEADER_LEN, MAX_PAYLOAD};
use crate::{SockId, UdpConfig, UdpError, UdpStats};

#[cfg(test)]
mod tests;

/// Bytes charged to the receive buffer per queued datagram on top of the storage its
/// packet holds ([`PacketBuf::truesize`]), for the queue entry and allocator overhead
/// (Linux charges `skb->truesize`, which includes the `sk_buff`).
pub const DATAGRAM_OVERHEAD: usize = 256;

/// Smallest receive buffer a socket can be given (Linux `SOCK_MIN_RCVBUF`).
pub const MIN_RECV_BUF: usize = 2304;

/// Most groups one socket may join (Linux `igmp_max_memberships`, 20).
pub const MAX_MEMBERSHIPS: usize = 20;

/// A datagram ready to hand to IPv4 output (Linux: the skb `udp_send_skb` passes to
/// `ip_send_skb`): UDP header and payload, checksum filled, headroom left for IP.
#[derive(Debug)]
pub struct UdpDatagramOut {
    /// Source address for the IP header.
    pub src: Ipv4Addr,
    /// Destination address for the IP header.
    pub dst: Ipv4Addr,
    /// The socket's TTL (`IP_TTL`); `None` = the IP layer's default.
    pub ttl: Option<u8>,
    /// The socket's type-of-service byte (`IP_TOS`).
    pub tos: u8,
    /// The device the socket is bound to (`SO_BINDTODEVICE`), or for a multicast
    /// destination its `IP_MULTICAST_IF` device: send through it only.
    pub oif: Option<DevId>,
    /// Deliver a copy to this host too: set for a multicast destination when the socket
    /// has `IP_MULTICAST_LOOP` (the IP layer copies it only if the host is a member);
    /// the caller sets it for a broadcast destination, which it recognises.
    pub mc_loop: bool,
    /// UDP header + payload.
    pub pkt: PacketBuf,
}

/// A datagram taken from a socket's queue: what `recvmsg` reports with `IP_PKTINFO` and
/// `IP_RECVORIGDSTADDR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMsg {
    /// Bytes copied into the caller's buffer (a longer datagram is truncated).
    pub len: usize,
    /// The sender.
    pub from: SocketAddrV4,
    /// The address it was sent to: ours, a broadcast address or a multicast group (for a
    /// transparent socket, the foreign destination).
    pub to: SocketAddrV4,
    /// The device it arrived on (`ipi_ifindex`).
    pub dev: DevId,
}

/// One queued datagram (Linux: an skb on `sk_receive_queue`).
struct RxDatagram {
    from: SocketAddrV4,
    /// The destination the datagram was sent to (Linux `IP_ORIGDSTADDR`).
    to: SocketAddrV4,
    /// The device it arrived on (Linux `skb->skb_iif`, reported by `IP_PKTINFO`).
    dev: DevId,
    payload: PacketBuf,
    /// What it was charged to the receive buffer.
    charge: usize,
}

impl RxDatagram {
    /// Copies the payload into `buf`, truncated to its length; returns the bytes copied.
    fn copy_to(&self, buf: &mut [u8]) -> usize {
        let n = self.payload.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.payload.data().get(..n)) {
            dst.copy_from_slice(src);
        }
        n
    }
}

/// One UDP socket (Linux: `struct udp_sock` / `inet_sock`).
struct UdpSock {
    /// Bound address (Linux `inet_rcv_saddr` + `inet_num`); `None` = unbound.
    local: Option<SocketAddrV4>,
    /// Connected peer (Linux `inet_daddr` + `inet_dport`, state `TCP_ESTABLISHED`).
    peer: Option<SocketAddrV4>,
    /// The address was bound explicitly (Linux `SOCK_BINDADDR_LOCK`).
    addr_locked: bool,
    /// The port was bound explicitly (Linux `SOCK_BINDPORT_LOCK`).
    port_locked: bool,
    rxq: VecDeque<RxDatagram>,
    /// Bytes charged to the receive buffer (Linux `sk_rmem_alloc`).
    rx_bytes: usize,
    /// Receive buffer limit (Linux `sk_rcvbuf`).
    rcvbuf: usize,
    /// Pending asynchronous error (Linux `sk_err`).
    error: Option<UdpError>,
    /// `IP_TTL`; `None` = default.
    ttl: Option<u8>,
    /// `IP_TOS`.
    tos: u8,
    /// `SO_BINDTODEVICE`: receives only what arrived on this device, sends through it.
    bound_dev: Option<DevId>,
    /// `SO_BROADCAST`: may send to (and connect to) a broadcast address.
    broadcast: bool,
    /// `SO_REUSEADDR`: may share its address and port with other sockets that set it.
    reuseaddr: bool,
    /// `SO_REUSEPORT`: likewise; unicast datagrams are spread over such a group by a
    /// hash of the sender's address and port.
    reuseport: bool,
    /// `IP_MULTICAST_TTL` (default 1: the local link).
    mc_ttl: u8,
    /// `IP_MULTICAST_LOOP` (default on).
    mc_loop: bool,
    /// `IP_MULTICAST_ALL` (default on): receives every group the host joined, not only
    /// its own.
    mc_all: bool,
    /// `IP_MULTICAST_IF`: the address (and its device) multicasts leave from.
    mc_if: Option<(Ipv4Addr, DevId)>,
    /// Groups joined (`IP_ADD_MEMBERSHIP`), with the device of each.
    memberships: Vec<(Ipv4Addr, DevId)>,
    /// Receives datagrams to foreign destinations and may send from any source
    /// (Linux `IP_TRANSPARENT` with a TPROXY rule); see [`UdpLayer::set_transparent`].
    transparent: bool,
    /// Already in the event list.
    event_pending: bool,
}

struct Slot {
    gen: u32,
    sock: Option<UdpSock>,
}

/// All UDP sockets of a stack and their port tables (Linux: `udp_table` + `udp_prot`).
/// Sans-IO: datagrams come in through [`UdpLayer::input`], go out as
/// [`UdpDatagramOut`] values.
pub struct UdpLayer {
    cfg: UdpConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Sockets bound to a specific address (Linux `hslot2`, keyed by address and port).
    /// More than one only when they are bound to different devices.
    exact: HashMap<SocketAddrV4, Vec<SockId>>,
    /// Sockets bound to 0.0.0.0, by port (likewise).
    wild: HashMap<u16, Vec<SockId>>,
    /// The sockets using each port, whatever their address (Linux `hslot`).
    port_users: HashMap<u16, Vec<SockId>>,
    /// The transparent socket, if any ([`UdpLayer::set_transparent`]).
    transparent: Option<SockId>,
    events: Vec<SockId>,
    stats: UdpStats,
    /// Secret-seeded generator for ephemeral port search.
    rng: SplitMix64,
    /// Key of the hash that picks a member of a `SO_REUSEPORT` group.
    reuseport_key: u64,
    count: usize,
    /// The sockets a broadcast or multicast datagram goes to (kept for its capacity, so
    /// that a flood of them does not allocate per datagram).
    multi_targets: Vec<SockId>,
}

impl std::fmt::Debug for UdpLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpLayer")
            .field("sockets", &self.count)
            .field("stats", &self.stats)
            .finish()
    }
}

fn sock_ref(slots: &[Slot], id: SockId) -> Option<&UdpSock> {
    slots
        .get(id.idx as usize)
        .filter(|s| s.gen == id.gen)
        .and_then(|s| s.sock.as_ref())
}

fn sock_mut(slots: &mut [Slot], id: SockId) -> Option<&mut UdpSock> {
    slots
        .get_mut(id.idx as usize)
        .filter(|s| s.gen == id.gen)
        .and_then(|s| s.sock.as_mut())
}

fn mark_event(events: &mut Vec<SockId>, sock: &mut UdpSock, id: SockId) {
    if !sock.event_pending {
        sock.event_pending = true;
        events.push(id);
    }
}

impl UdpLayer {
    /// A UDP layer with `cfg`; `secret` seeds the ephemeral port randomization
    /// (RFC 6056 section 3.3.1, algorithm 1 with a keyed generator). Linux: `udp_init`.
    pub fn new(cfg: UdpConfig, secret: [u8; 16]) -> Self {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&secret[..8]);
        b.copy_from_slice(&secret[8..]);
        let seed =
            u64::from_le_bytes(a) ^ u64::from_le_bytes(b).rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
        UdpLayer {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            exact: HashMap::new(),
            wild: HashMap::new(),
            port_users: HashMap::new(),
            events: Vec::new(),
            stats: UdpStats::default(),
            rng: SplitMix64::new(seed),
            reuseport_key: SplitMix64::new(seed ^ 0x5851_f42d_4c95_7f2d).next_u64(),
            multi_targets: Vec::new(),
            count: 0,
            transparent: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &UdpConfig {
        &self.cfg
    }

    /// Creates an unbound socket (Linux: `udp_init_sock` via `inet_create`).
    pub fn socket(&mut self) -> SockId {
        let sock = UdpSock {
            local: None,
            peer: None,
            addr_locked: false,
            port_locked: false,
            rxq: VecDeque::new(),
            rx_bytes: 0,
            rcvbuf: self.cfg.recv_buf.max(MIN_RECV_BUF),
            error: None,
            ttl: None,
            tos: 0,
            bound_dev: None,
            broadcast: false,
            reuseaddr: false,
            reuseport: false,
            mc_ttl: 1,
            mc_loop: true,
            mc_all: true,
            mc_if: None,
            memberships: Vec::new(),
            transparent: false,
            event_pending: false,
        };
        self.count += 1;
        if let Some(idx) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(idx as usize) {
                slot.sock = Some(sock);
                return SockId { idx, gen: slot.gen };
            }
        }
        let idx = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            gen: 1,
            sock: Some(sock),
        });
        SockId { idx, gen: 1 }
    }

    /// Number of open sockets.
    pub fn socket_count(&self) -> usize {
        self.count
    }

    /// Would binding `addr` with bound device `dev` and reuse flags `reuse` (`SO_REUSEADDR`,
    /// `SO_REUSEPORT`) clash with a socket already bound (Linux `udp_lib_lport_inuse`)? A
    /// wildcard bind takes the whole port; a specific one clashes with the same address or
    /// the wildcard; sockets bound to two different devices never clash, nor two that
    /// both set `SO_REUSEADDR`, or both `SO_REUSEPORT`. (An ephemeral port search passes
    /// no reuse flags: it looks for a port nobody uses.)
    fn in_use(&self, addr: SocketAddrV4, dev: Option<DevId>, reuse: (bool, bool)) -> bool {
        let Some(users) = self.port_users.get(&addr.port()) else {
            return false;
        };
        users.iter().any(|id| {
            sock_ref(&self.slots, *id).is_some_and(|s| {
                let ip = s.local.map_or(Ipv4Addr::UNSPECIFIED, |l| *l.ip());
                let overlaps =
                    ip == *addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified();
                let other_dev = matches!((dev, s.bound_dev), (Some(a), Some(b)) if a != b);
                let shared = (reuse.0 && s.reuseaddr) || (reuse.1 && s.reuseport);
                overlaps && !other_dev && !shared
            })
        })
    }

    /// RFC 6056 algorithm 1: start at a random point of the ephemeral range and walk it
    /// once. Linux: `udp_lib_get_port` with `snum == 0`.
    fn pick_port(&mut self, ip: Ipv4Addr, dev: Option<DevId>) -> Result<u16, UdpError> {
        let (lo, hi) = self.cfg.ephemeral;
        if hi < lo || lo == 0 {
            return Err(UdpError::AddrInUse);
        }
        let n = u64::from(hi - lo) + 1;
        let start = self.rng.below(n);
        for i in 0..n {
            let port = lo + ((start + i) % n) as u16;
            if !self.in_use(SocketAddrV4::new(ip, port), dev, (false, false)) {
                return Ok(port);
            }
        }
        Err(UdpError::AddrInUse)
    }

    fn hash(&mut self, id: SockId, addr: SocketAddrV4) {
        if addr.ip().is_unspecified() {
            self.wild.entry(addr.port()).or_default().push(id);
        } else {
            self.exact.entry(addr).or_default().push(id);
        }
        self.port_users.entry(addr.port()).or_default().push(id);
    }

    fn unhash(&mut self, id: SockId, addr: SocketAddrV4) {
        fn remove<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Vec<SockId>>, k: K, id: SockId) {
            if let std::collections::hash_map::Entry::Occupied(mut e) = m.entry(k) {
                e.get_mut().retain(|o| *o != id);
                if e.get().is_empty() {
                    e.remove();
                }
            }
        }
        if addr.ip().is_unspecified() {
            remove(&mut self.wild, addr.port(), id);
        } else {
            remove(&mut self.exact, addr, id);
        }
        remove(&mut self.port_users, addr.port(), id);
    }

    /// Binds `id` to `addr`; port 0 picks an ephemeral port. Errors: `AddrInUse`,
    /// `InvalidInput` (stale id or already bound). Whether `addr` is one of the stack's
    /// addresses is the caller's check (`AddrNotAvailable`). Linux: `inet_bind` ->
    /// `udp_v4_get_port`.
    pub fn bind(&mut self, id: SockId, addr: SocketAddrV4) -> Result<(), UdpError> {
        let sock = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        if sock.local.is_some() {
            return Err(UdpError::InvalidInput);
        }
        let dev = sock.bound_dev;
        let reuse = (sock.reuseaddr, sock.reuseport);
        let port = if addr.port() == 0 {
            self.pick_port(*addr.ip(), dev)?
        } else if self.in_use(addr, dev, reuse) {
            return Err(UdpError::AddrInUse);
        } else {
            addr.port()
        };
        let bound = SocketAddrV4::new(*addr.ip(), port);
        self.hash(id, bound);
        if let Some(s) = sock_mut(&mut self.slots, id) {
            s.local = Some(bound);
            s.addr_locked = !addr.ip().is_unspecified();
            s.port_locked = addr.port() != 0;
        }
        Ok(())
    }

    /// Binds an unbound socket to an ephemeral port on `ip` (Linux `inet_autobind`).
    fn autobind(&mut self, id: SockId, ip: Ipv4Addr) -> Result<SocketAddrV4, UdpError> {
        let dev = sock_ref(&self.slots, id).and_then(|s| s.bound_dev);
        let port = self.pick_port(ip, dev)?;
        let bound = SocketAddrV4::new(ip, port);
        self.hash(id, bound);
        if let Some(s) = sock_mut(&mut self.slots, id) {
            s.local = Some(bound);
        }
        Ok(bound)
    }

    /// Connects `id` to `remote`: only datagrams from `remote` are received afterwards,
    /// and `remote` is the default destination. `local_ip` (the route's source) becomes
    /// the local address if none was bound; an unbound socket gets an ephemeral port.
    /// Linux: `ip4_datagram_connect`.
    pub fn connect(
        &mut self,
        id: SockId,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<(), UdpError> {
        let sock = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(UdpError::InvalidInput);
        }
        match sock.local {
            None => {
                self.autobind(id, local_ip)?;
            }
            Some(l) if l.ip().is_unspecified() && !local_ip.is_unspecified() => {
                // Linux: inet_rcv_saddr takes the route source, then rehash.
                let new = SocketAddrV4::new(local_ip, l.port());
                self.unhash(id, l);
                self.hash(id, new);
                if let Some(s) = sock_mut(&mut self.slots, id) {
                    s.local = Some(new);
                }
            }
            Some(_) => {}
        }
        if let Some(s) = sock_mut(&mut self.slots, id) {
            s.peer = Some(remote);
        }
        Ok(())
    }

    /// Dissolves the association (connect with `AF_UNSPEC`): any source is accepted
    /// again; an address or port not bound explicitly is released. Linux:
    /// `__udp_disconnect`.
    pub fn disconnect(&mut self, id: SockId) {
        let Some(sock) = sock_mut(&mut self.slots, id) else {
            return;
        };
        sock.peer = None;
        let (Some(local), addr_locked, port_locked) =
            (sock.local, sock.addr_locked, sock.port_locked)
        else {
            return;
        };
        if !port_locked {
            self.unhash(id, local);
            if let Some(s) = sock_mut(&mut self.slots, id) {
                s.local = None;
            }
        } else if !addr_locked && !local.ip().is_unspecified() {
            let wild = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port());
            self.unhash(id, local);
            self.hash(id, wild);
            if let Some(s) = sock_mut(&mut self.slots, id) {
                s.local = Some(wild);
            }
        }
    }

    /// Closes `id`: unbinds it and drops its queue; the id becomes stale.
    /// Linux: `udp_lib_close` -> `udp_destroy_sock` / `udp_lib_unhash`.
    pub fn close(&mut self, id: SockId) {
        let Some(local) = sock_ref(&self.slots, id).map(|s| s.local) else {
            return;
        };
        if let Some(l) = local {
            self.unhash(id, l);
        }
        if self.transparent == Some(id) {
            self.transparent = None;
        }
        if let Some(slot) = self.slots.get_mut(id.idx as usize) {
            slot.sock = None;
            slot.gen = slot.gen.wrapping_add(1).max(1);
            self.free.push(id.idx);
            self.count = self.count.saturating_sub(1);
        }
    }

    /// The bound address, `None` when unbound or stale.
    pub fn local_addr(&self, id: SockId) -> Option<SocketAddrV4> {
        sock_ref(&self.slots, id).and_then(|s| s.local)
    }

    /// The connected peer, `None` when not connected or stale.
    pub fn peer_addr(&self, id: SockId) -> Option<SocketAddrV4> {
        sock_ref(&self.slots, id).and_then(|s| s.peer)
    }

    /// Sets `IP_TTL` (1..=255; 0 is `InvalidInput`). Linux: `do_ip_setsockopt(IP_TTL)`.
    pub fn set_ttl(&mut self, id: SockId, ttl: u8) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        if ttl == 0 {
            return Err(UdpError::InvalidInput);
        }
        s.ttl = Some(ttl);
        Ok(())
    }

    /// `IP_TTL`: the socket's TTL, or the configured default.
    pub fn ttl(&self, id: SockId) -> Result<u8, UdpError> {
        let s = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        Ok(s.ttl.unwrap_or(self.cfg.default_ttl))
    }

    /// Sets `IP_TOS`, the type-of-service byte of the datagrams the socket sends.
    pub fn set_tos(&mut self, id: SockId, tos: u8) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.tos = tos;
        Ok(())
    }

    /// `IP_TOS`.
    pub fn tos(&self, id: SockId) -> Result<u8, UdpError> {
        let s = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        Ok(s.tos)
    }

    /// Binds the socket to device `dev` (`SO_BINDTODEVICE`; `None` unbinds): it then
    /// receives only datagrams that arrived on `dev`, and its datagrams are routed through
    /// `dev` only ([`UdpDatagramOut::oif`]). Linux: `sock_bindtoindex`.
    pub fn set_bound_dev(&mut self, id: SockId, dev: Option<DevId>) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.bound_dev = dev;
        Ok(())
    }

    /// The device the socket is bound to (`SO_BINDTODEVICE`), if any.
    pub fn bound_dev(&self, id: SockId) -> Result<Option<DevId>, UdpError> {
        let s = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        Ok(s.bound_dev)
    }

    /// Sets `SO_BROADCAST`: without it, sending to or connecting to a broadcast address is
    /// refused with `PermissionDenied` (`EACCES`, Linux: the route's `RTCF_BROADCAST`
    /// check in `udp_sendmsg` and `ip4_datagram_connect`); the socket layer, which knows
    /// the broadcast addresses, makes the check.
    pub fn set_broadcast(&mut self, id: SockId, on: bool) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.broadcast = on;
        Ok(())
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self, id: SockId) -> Result<bool, UdpError> {
        let s = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        Ok(s.broadcast)
    }

    /// Sets `SO_REUSEADDR`: sockets that all set it may bind the same address and port
    /// (set it before [`bind`](Self::bind)). A unicast datagram goes to the one bound
    /// last; multicast and broadcast datagrams to each of them. Linux: `sk_reuse`.
    pub fn set_reuseaddr(&mut self, id: SockId, on: bool) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.reuseaddr = on;
        Ok(())
    }

    /// `SO_REUSEADDR`.
    pub fn reuseaddr(&self, id: SockId) -> Result<bool, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.reuseaddr)
            .ok_or(UdpError::InvalidInput)
    }

    /// Sets `SO_REUSEPORT`: sockets that all set it may bind the same address and port,
    /// and unicast datagrams are spread over them by a keyed hash of the sender's address
    /// and port (each sender always reaching the same socket while the group is
    /// unchanged); multicast and broadcast datagrams go to each. Linux: `sk_reuseport`.
    pub fn set_reuseport(&mut self, id: SockId, on: bool) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.reuseport = on;
        Ok(())
    }

    /// `SO_REUSEPORT`.
    pub fn reuseport(&self, id: SockId) -> Result<bool, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.reuseport)
            .ok_or(UdpError::InvalidInput)
    }

    /// Sets `IP_MULTICAST_TTL`, the TTL of datagrams to multicast groups (default 1,
    /// the local link; 0 keeps them on this host).
    pub fn set_multicast_ttl(&mut self, id: SockId, ttl: u8) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.mc_ttl = ttl;
        Ok(())
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl(&self, id: SockId) -> Result<u8, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.mc_ttl)
            .ok_or(UdpError::InvalidInput)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own sockets also receive the
    /// multicasts the socket sends (default on).
    pub fn set_multicast_loop(&mut self, id: SockId, on: bool) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.mc_loop = on;
        Ok(())
    }

    /// `IP_MULTICAST_LOOP`.
    pub fn multicast_loop(&self, id: SockId) -> Result<bool, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.mc_loop)
            .ok_or(UdpError::InvalidInput)
    }

    /// Sets `IP_MULTICAST_ALL`: on (the default, as in Linux), the socket receives the
    /// datagrams of every group the host joined that come to its port; off, only those of
    /// the groups it joined itself, on the device they arrive on.
    pub fn set_multicast_all(&mut self, id: SockId, on: bool) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.mc_all = on;
        Ok(())
    }

    /// `IP_MULTICAST_ALL`.
    pub fn multicast_all(&self, id: SockId) -> Result<bool, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.mc_all)
            .ok_or(UdpError::InvalidInput)
    }

    /// Sets `IP_MULTICAST_IF`: the address multicasts are sent from and its device
    /// (`None`: the route decides). A device bound with `SO_BINDTODEVICE` still wins, as
    /// in Linux. The caller maps the address to its device.
    pub fn set_multicast_if(
        &mut self,
        id: SockId,
        iface: Option<(Ipv4Addr, DevId)>,
    ) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.mc_if = iface;
        Ok(())
    }

    /// `IP_MULTICAST_IF`: the address (and its device), if set.
    pub fn multicast_if(&self, id: SockId) -> Result<Option<(Ipv4Addr, DevId)>, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.mc_if)
            .ok_or(UdpError::InvalidInput)
    }

    /// Records that the socket joined `group` on `dev` (`IP_ADD_MEMBERSHIP`; the caller
    /// joins the device to the group in the IP layer). `AddrInUse` when it already has,
    /// `NoBufs` beyond [`MAX_MEMBERSHIPS`], `InvalidInput` for a non-multicast group.
    pub fn add_membership(
        &mut self,
        id: SockId,
        group: Ipv4Addr,
        dev: DevId,
    ) -> Result<(), UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        if !group.is_multicast() {
            return Err(UdpError::InvalidInput);
        }
        if s.memberships.contains(&(group, dev)) {
            return Err(UdpError::AddrInUse);
        }
        if s.memberships.len() >= MAX_MEMBERSHIPS {
            return Err(UdpError::NoBufs);
        }
        s.memberships.push((group, dev));
        Ok(())
    }

    /// Forgets the socket's membership of `group` on `dev` (`None`: its first membership
    /// of `group` on any device; Linux `ip_mc_leave_group` with no interface), returning
    /// the device for the caller to leave in the IP layer. `AddrNotAvailable` when it had
    /// not joined.
    pub fn drop_membership(
        &mut self,
        id: SockId,
        group: Ipv4Addr,
        dev: Option<DevId>,
    ) -> Result<DevId, UdpError> {
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        let i = s
            .memberships
            .iter()
            .position(|&(g, d)| g == group && dev.is_none_or(|x| x == d))
            .ok_or(UdpError::AddrNotAvailable)?;
        Ok(s.memberships.remove(i).1)
    }

    /// The groups the socket joined, with their devices.
    pub fn memberships(&self, id: SockId) -> Vec<(Ipv4Addr, DevId)> {
        sock_ref(&self.slots, id).map_or_else(Vec::new, |s| s.memberships.clone())
    }

    /// Sets the receive buffer limit in bytes (`SO_RCVBUF`): at least [`MIN_RECV_BUF`],
    /// at most [`UdpConfig::recv_buf_max`] (Linux clamps to `rmem_max` the same way).
    pub fn set_recv_buf(&mut self, id: SockId, bytes: usize) -> Result<(), UdpError> {
        let max = self.cfg.recv_buf_max.max(MIN_RECV_BUF);
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.rcvbuf = bytes.clamp(MIN_RECV_BUF, max);
        Ok(())
    }

    /// The receive buffer limit in bytes (`SO_RCVBUF`).
    pub fn recv_buf(&self, id: SockId) -> Result<usize, UdpError> {
        sock_ref(&self.slots, id)
            .map(|s| s.rcvbuf)
            .ok_or(UdpError::InvalidInput)
    }

    /// Datagrams and charged bytes waiting in the receive queue (Linux `SIOCINQ`-like).
    pub fn queued(&self, id: SockId) -> Option<(usize, usize)> {
        sock_ref(&self.slots, id).map(|s| (s.rxq.len(), s.rx_bytes))
    }

    /// Builds a datagram from `id` to `dst` with source address `src_ip` (chosen by the
    /// caller from the binding or the route). An unbound socket is bound to an
    /// ephemeral port first. Errors: `MessageTooLong` (> 65507 bytes), `InvalidInput`
    /// (port 0, stale id), `AddrInUse` (no ephemeral port). Linux: `udp_sendmsg`.
    pub fn send_to(
        &mut self,
        id: SockId,
        src_ip: Ipv4Addr,
        dst: SocketAddrV4,
        data: &[u8],
    ) -> Result<UdpDatagramOut, UdpError> {
        let sock = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        if data.len() > MAX_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        if dst.port() == 0 {
            return Err(UdpError::InvalidInput);
        }
        // Linux udp_sendmsg: a multicast takes the multicast TTL, and the
        // IP_MULTICAST_IF device unless the socket is bound to one.
        let ip = if dst.ip().is_multicast() {
            let oif = sock.bound_dev.or(sock.mc_if.map(|(_, d)| d));
            (Some(sock.mc_ttl), sock.tos, oif)
        } else {
            (sock.ttl, sock.tos, sock.bound_dev)
        };
        let mc_loop = dst.ip().is_multicast() && sock.mc_loop;
        let local = match sock.local {
            Some(l) => l,
            None => self.autobind(id, Ipv4Addr::UNSPECIFIED)?,
        };
        let mut d = self.datagram(SocketAddrV4::new(src_ip, local.port()), dst, ip, data);
        d.mc_loop = mc_loop;
        Ok(d)
    }

    /// Builds the datagram `src` -> `dst` carrying `data` (Linux `udp_send_skb`), with the
    /// socket's TTL, TOS and bound device.
    fn datagram(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        (ttl, tos, oif): (Option<u8>, u8, Option<DevId>),
        data: &[u8],
    ) -> UdpDatagramOut {
        let mut pkt = PacketBuf::with_headroom(DEFAULT_HEADROOM, data.len());
        pkt.extend_from_slice(data);
        prepend_header(&mut pkt, src, dst);
        self.stats.out_datagrams += 1;
        UdpDatagramOut {
            src: *src.ip(),
            dst: *dst.ip(),
            ttl,
            tos,
            oif,
            mc_loop: false,
            pkt,
        }
    }

    /// Makes `id` the transparent socket (Linux: `IP_TRANSPARENT` plus a TPROXY rule that
    /// sends every UDP datagram to a foreign address to it): it receives datagrams to
    /// destinations that are not this host's, whatever their port, and may send with any
    /// source address ([`send_from`](Self::send_from)), which is how a tun2socks-style
    /// proxy answers in the name of the destination. It needs no bound port. There is one
    /// per layer: `AddrInUse` while another is open.
    pub fn set_transparent(&mut self, id: SockId) -> Result<(), UdpError> {
        // `close` clears `transparent`, so a set value is always an open socket.
        if self.transparent.is_some_and(|t| t != id) {
            return Err(UdpError::AddrInUse);
        }
        let s = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        s.transparent = true;
        self.transparent = Some(id);
        Ok(())
    }

    /// True while a transparent socket is open (the host then hands datagrams to foreign
    /// addresses to [`input_foreign`](Self::input_foreign)).
    #[inline]
    pub fn has_transparent(&self) -> bool {
        self.transparent.is_some()
    }

    /// Builds a datagram from `src` (any address, typically the foreign destination a
    /// client wrote to) to `dst`, for a transparent socket only (`InvalidInput` otherwise,
    /// as Linux refuses a foreign source without `IP_TRANSPARENT`).
    pub fn send_from(
        &mut self,
        id: SockId,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        data: &[u8],
    ) -> Result<UdpDatagramOut, UdpError> {
        let sock = sock_ref(&self.slots, id).ok_or(UdpError::InvalidInput)?;
        if !sock.transparent || src.port() == 0 || dst.port() == 0 {
            return Err(UdpError::InvalidInput);
        }
        if data.len() > MAX_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        let ip = (sock.ttl, sock.tos, sock.bound_dev);
        Ok(self.datagram(src, dst, ip, data))
    }

    /// Sends to the connected peer (`send` on a connected socket); `NotConnected` if none.
    pub fn send(
        &mut self,
        id: SockId,
        src_ip: Ipv4Addr,
        data: &[u8],
    ) -> Result<UdpDatagramOut, UdpError> {
        let peer = sock_ref(&self.slots, id)
            .ok_or(UdpError::InvalidInput)?
            .peer
            .ok_or(UdpError::NotConnected)?;
        self.send_to(id, src_ip, peer, data)
    }

    /// Takes the next datagram into `buf`; a longer datagram is truncated and the rest
    /// discarded, as Linux does without `MSG_TRUNC`. Returns the bytes copied and the
    /// sender. `WouldBlock` when the queue is empty (a pending ICMP error is returned
    /// instead, once). Linux: `udp_recvmsg`.
    pub fn recv_from(
        &mut self,
        id: SockId,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        self.recv_msg(id, buf).map(|m| (m.len, m.from))
    }

    /// Like [`recv_from`](Self::recv_from), also returning the address the datagram was
    /// sent to (Linux `IP_RECVORIGDSTADDR`): for a transparent socket, the foreign
    /// destination the sender wanted.
    pub fn recv_from_to(
        &mut self,
        id: SockId,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4, SocketAddrV4), UdpError> {
        self.recv_msg(id, buf).map(|m| (m.len, m.from, m.to))
    }

    /// Like [`recv_from_to`](Self::recv_from_to), also returning the device the datagram
    /// arrived on (Linux `IP_PKTINFO`).
    pub fn recv_msg(&mut self, id: SockId, buf: &mut [u8]) -> Result<RecvMsg, UdpError> {
        let sock = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        let Some(d) = sock.rxq.pop_front() else {
            return Err(sock.error.take().unwrap_or(UdpError::WouldBlock));
        };
        sock.rx_bytes = sock.rx_bytes.saturating_sub(d.charge);
        let len = d.copy_to(buf);
        self.stats.in_datagrams += 1;
        Ok(RecvMsg {
            len,
            from: d.from,
            to: d.to,
            dev: d.dev,
        })
    }

    /// Like [`recv_from`](Self::recv_from) but leaves the datagram queued (`MSG_PEEK`).
    pub fn peek_from(
        &mut self,
        id: SockId,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        self.peek_msg(id, buf).map(|m| (m.len, m.from))
    }

    /// Like [`recv_from_to`](Self::recv_from_to) but leaves the datagram queued.
    pub fn peek_from_to(
        &mut self,
        id: SockId,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4, SocketAddrV4), UdpError> {
        self.peek_msg(id, buf).map(|m| (m.len, m.from, m.to))
    }

    /// Like [`recv_msg`](Self::recv_msg) but leaves the datagram queued.
    pub fn peek_msg(&mut self, id: SockId, buf: &mut [u8]) -> Result<RecvMsg, UdpError> {
        let sock = sock_mut(&mut self.slots, id).ok_or(UdpError::InvalidInput)?;
        let Some(d) = sock.rxq.front() else {
            return Err(sock.error.take().unwrap_or(UdpError::WouldBlock));
        };
        Ok(RecvMsg {
            len: d.copy_to(buf),
            from: d.from,
            to: d.to,
            dev: d.dev,
        })
    }

    /// True when a receive call would not block: a datagram or an error is waiting
    /// (Linux `udp_poll` `EPOLLIN` / `EPOLLERR`).
    pub fn readable(&self, id: SockId) -> bool {
        sock_ref(&self.slots, id).is_some_and(|s| !s.rxq.is_empty() || s.error.is_some())
    }

    /// Whether a receive on `id` would return `WouldBlock`: a socket with no datagram
    /// and no error waiting. Reads and changes nothing (the facade parks a reader on it
    /// without making the receive call).
    pub fn recv_would_block(&self, id: SockId) -> bool {
        sock_ref(&self.slots, id).is_some_and(|s| s.rxq.is_empty() && s.error.is_none())
    }

    /// Takes the pending asynchronous error (`SO_ERROR`; Linux `sock_error`).
    pub fn take_error(&mut self, id: SockId) -> Option<UdpError> {
        sock_mut(&mut self.slots, id).and_then(|s| s.error.take())
    }

    /// Moves the ids of sockets whose readiness changed since the last call into `out`
    /// (each once), for the caller to wake (Linux `sk_data_ready` / `sk_error_report`).
    pub fn drain_events(&mut self, out: &mut Vec<SockId>) {
        for id in self.events.drain(..) {
            if let Some(s) = sock_mut(&mut self.slots, id) {
                s.event_pending = false;
                out.push(id);
            }
        }
    }

    /// A snapshot of the counters (`/proc/net/snmp` `Udp:`).
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// How well socket `s` matches a datagram from `src` that arrived on `dev` (Linux
    /// `compute_score`): `None` when it cannot take it (connected to another peer, bound
    /// to another device); a connected or device-bound match scores above an open one.
    fn score(s: &UdpSock, src: SocketAddrV4, dev: Option<DevId>) -> Option<u8> {
        let mut score = 1;
        match s.peer {
            Some(p) if p != src => return None,
            Some(_) => score += 4,
            None => {}
        }
        match (s.bound_dev, dev) {
            (None, _) => {}
            (Some(d), Some(x)) if d != x => return None,
            (Some(_), _) => score += 4,
        }
        Some(score)
    }

    /// Among the sockets of one port-table key, the one for a unicast datagram from
    /// `src` arriving on `dev`: the best score; among equals the one bound last (Linux
    /// adds new sockets at the head of the slot), or, when that one is in a
    /// `SO_REUSEPORT` group, the group member a keyed hash of `src` picks.
    fn best(&self, ids: &[SockId], src: SocketAddrV4, dev: Option<DevId>) -> Option<SockId> {
        if let [id] = ids {
            let s = sock_ref(&self.slots, *id)?;
            return Self::score(s, src, dev).map(|_| *id);
        }
        let mut top: Option<(u8, SockId, bool)> = None;
        let mut group = 0u64;
        for id in ids.iter().rev() {
            let Some(s) = sock_ref(&self.slots, *id) else {
                continue;
            };
            let Some(sc) = Self::score(s, src, dev) else {
                continue;
            };
            match top {
                Some((t, _, _)) if sc < t => {}
                Some((t, _, _)) if sc == t => group += u64::from(s.reuseport),
                _ => {
                    top = Some((sc, *id, s.reuseport));
                    group = u64::from(s.reuseport);
                }
            }
        }
        let (score, newest, reuseport) = top?;
        if !reuseport || group < 2 {
            return Some(newest);
        }
        // Keyed so that senders cannot aim at one member; stable per sender.
        let h =
            (u64::from(u32::from(*src.ip())) << 16 | u64::from(src.port())) ^ self.reuseport_key;
        let mut pick = SplitMix64::new(h).next_u64() % group;
        for id in ids.iter().rev() {
            let Some(s) = sock_ref(&self.slots, *id) else {
                continue;
            };
            if s.reuseport && Self::score(s, src, dev) == Some(score) {
                if pick == 0 {
                    return Some(*id);
                }
                pick -= 1;
            }
        }
        Some(newest)
    }

    /// Finds the socket for a datagram from `src` to `dst:dport` that arrived on `dev`
    /// (Linux `__udp4_lib_lookup`): the socket bound to exactly that address first, then
    /// the wildcard one; a connected socket only matches its peer, a socket bound to a
    /// device only what arrived on it (`dev` `None`: any device, for the datagrams an
    /// ICMP error quotes). O(1) for a port with one socket: two hash probes.
    fn lookup(
        &self,
        dst: Ipv4Addr,
        dport: u16,
        src: SocketAddrV4,
        dev: Option<DevId>,
    ) -> Option<SockId> {
        self.exact
            .get(&SocketAddrV4::new(dst, dport))
            .and_then(|ids| self.best(ids, src, dev))
            .or_else(|| {
                self.wild
                    .get(&dport)
                    .and_then(|ids| self.best(ids, src, dev))
            })
    }

    /// Receives one datagram (the IP payload) for `meta.dst`: validates length and
    /// checksum (0 = none, RFC 768), finds the socket and queues the payload within the
    /// socket's receive buffer. Returns `PortUnreachable` when no socket wants a unicast
    /// datagram, so that IP answers with ICMP (RFC 1122 4.1.3.1). Linux: `udp_rcv` ->
    /// `__udp4_lib_rcv` -> `udp_queue_rcv_skb`.
    ///
    /// A datagram to a multicast group or a broadcast address (`meta.multi`) goes to
    /// every socket bound to the port on the wildcard address or on `meta.dst` that
    /// accepts the sender and the arrival device, a copy each (Linux
    /// `__udp4_lib_mcast_deliver`; with `IP_MULTICAST_ALL` on, as by default in Linux, a
    /// socket need not have joined the group itself: the host has), and is never
    /// answered with ICMP.
    pub fn input(&mut self, _now: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
        if meta.multi {
            return self.deliver_multi(meta, pkt);
        }
        self.deliver(meta, pkt, None)
    }

    fn deliver_multi(&mut self, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
        let Some(hdr) = self.check(meta, &pkt) else {
            return DeliverResult::Consumed;
        };
        let from = SocketAddrV4::new(meta.src, hdr.src_port);
        let to = SocketAddrV4::new(meta.dst, hdr.dst_port);
        let mut targets = std::mem::take(&mut self.multi_targets);
        targets.clear();
        let exact = self.exact.get(&to);
        let group = meta.dst.is_multicast().then_some((meta.dst, meta.dev));
        for id in exact
            .into_iter()
            .chain(self.wild.get(&hdr.dst_port))
            .flatten()
        {
            if let Some(s) = sock_ref(&self.slots, *id) {
                // Linux ip_mc_sf_allow: without IP_MULTICAST_ALL, only its own groups.
                let wanted = s.mc_all || group.is_none_or(|g| s.memberships.contains(&g));
                if wanted && Self::score(s, from, Some(meta.dev)).is_some() {
                    targets.push(*id);
                }
            }
        }
        match targets.split_last() {
            None => self.stats.ignored_multi += 1,
            Some((last, rest)) => {
                for id in rest {
                    self.enqueue(*id, from, to, meta.dev, hdr.length, pkt.clone());
                }
                self.enqueue(*last, from, to, meta.dev, hdr.length, pkt);
            }
        }
        self.multi_targets = targets;
        DeliverResult::Consumed
    }

    /// Receives one datagram (the IP payload) to a foreign destination, which the host
    /// hands over only while a transparent socket is open: it is queued there, with its
    /// destination, whatever its port (Linux: the TPROXY target). Validated as in
    /// [`input`](Self::input); dropped when no transparent socket is open.
    pub fn input_foreign(
        &mut self,
        _now: Instant,
        meta: &IpRxMeta,
        pkt: PacketBuf,
    ) -> DeliverResult {
        match self.transparent {
            Some(id) => self.deliver(meta, pkt, Some(id)),
            None => {
                self.stats.in_errors += 1;
                DeliverResult::Consumed
            }
        }
    }

    /// Validates a datagram and queues it on `target`, or on the socket the port tables
    /// give when `target` is `None`.
    fn deliver(
        &mut self,
        meta: &IpRxMeta,
        pkt: PacketBuf,
        target: Option<SockId>,
    ) -> DeliverResult {
        let Some(hdr) = self.check(meta, &pkt) else {
            return DeliverResult::Consumed;
        };
        let from = SocketAddrV4::new(meta.src, hdr.src_port);
        let to = SocketAddrV4::new(meta.dst, hdr.dst_port);
        let Some(id) = target.or_else(|| self.lookup(meta.dst, hdr.dst_port, from, Some(meta.dev)))
        else {
            self.stats.no_ports += 1;
            return DeliverResult::PortUnreachable;
        };
        self.enqueue(id, from, to, meta.dev, hdr.length, pkt);
        DeliverResult::Consumed
    }

    /// Validates length and checksum, counting a failure; the header when valid.
    fn check(&mut self, meta: &IpRxMeta, pkt: &PacketBuf) -> Option<UdpHeader> {
        // A device that vouches for the checksum (TUN offload: kernel-made) skips the check.
        let verify = !pkt.csum_unnecessary();
        match UdpHeader::parse(pkt.data(), meta.src, meta.dst, verify) {
            Ok(h) => Some(h),
            Err(e) => {
                if e == UdpParseError::BadChecksum {
                    self.stats.in_csum_errors += 1;
                }
                self.stats.in_errors += 1;
                None
            }
        }
    }

    /// Queues a validated datagram of UDP length `len` on socket `id`, within its
    /// receive buffer.
    fn enqueue(
        &mut self,
        id: SockId,
        from: SocketAddrV4,
        to: SocketAddrV4,
        dev: DevId,
        len: u16,
        mut pkt: PacketBuf,
    ) {
        pkt.trim(usize::from(len));
        if pkt.pull(HEADER_LEN).is_none() {
            self.stats.in_errors += 1;
            return;
        }
        let Some(sock) = sock_mut(&mut self.slots, id) else {
            return;
        };
        // The whole storage the packet holds is charged, not only its payload: a small
        // datagram in a large read buffer must not let the queue hold many times its
        // limit in memory.
        let charge = pkt.truesize() + DATAGRAM_OVERHEAD;
        // Linux __udp_enqueue_schedule_skb: drop when the buffer is full (one datagram
        // is always accepted into an empty queue, so big datagrams still get through).
        if !sock.rxq.is_empty() && sock.rx_bytes + charge > sock.rcvbuf {
            self.stats.rcvbuf_errors += 1;
            self.stats.in_errors += 1;
            return;
        }
        sock.rx_bytes += charge;
        sock.rxq.push_back(RxDatagram {
            from,
            to,
            dev,
            payload: pkt,
            charge,
        });
        mark_event(&mut self.events, sock, id);
    }

    /// An ICMP error quoting one of our datagrams (Linux `__udp4_lib_err`): a hard error
    /// (port / protocol unreachable, administratively prohibited) becomes the pending
    /// error of the connected socket that sent it, reported by its next receive
    /// (RFC 1122 4.1.3.3); unconnected sockets and soft errors are ignored, as Linux
    /// does without `IP_RECVERR`.
    pub fn err_input(&mut self, err: &IcmpError) {
        if err.orig_protocol != IPPROTO_UDP || !err.kind.is_hard() {
            return;
        }
        let Some(q) = err.quoted.get(..4) else {
            return;
        };
        let sport = u16::from_be_bytes([q[0], q[1]]);
        let dport = u16::from_be_bytes([q[2], q[3]]);
        let remote = SocketAddrV4::new(err.orig_dst, dport);
        let Some(id) = self.lookup(err.orig_src, sport, remote, None) else {
            return;
        };
        let e = match err.kind {
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable => {
                UdpError::ConnectionRefused
            }
            IcmpErrorKind::NetUnreachable => UdpError::NetworkUnreachable,
            _ => UdpError::HostUnreachable,
        };
        let Some(sock) = sock_mut(&mut self.slots, id) else {
            return;
        };
        if sock.peer != Some(remote) {
            return;
        }
        sock.error = Some(e);
        mark_event(&mut self.events, sock, id);
    }
}
