//! The IPv4 layer state: interfaces, routing, output, reassembly, PMTU, ICMP sending,
//! counters (Linux: `struct netns_ipv4` + `ip_queue_xmit`, `ip_route_output_key`,
//! `ip_fragment`, `icmp_send`, `ip_rt_update_pmtu`).
//!
//! Input lives in [`crate::input`] (`ip_rcv`), which needs the protocol table as well.

use crate::addr::Ipv4Cidr;
use crate::arp::{self, ArpPacket, ArpStats, NeighConfig, NeighInfo, NeighTable};
use crate::errno;
use crate::fib::{Fib, Route, RouteKind};
use crate::frag::{fragment, ReasmOutcome, Reassembler};
use crate::icmp::{
    is_error_type, EchoReply, IcmpErrorKind, IcmpRepr, QuotedHeader, RateLimiter,
    ICMP_DEST_UNREACH, ICMP_PARAMETER_PROB, ICMP_TIME_EXCEEDED,
};
use crate::igmp::{Igmp, IgmpStats, IPPROTO_IGMP};
use crate::pmtu::{plateau_below, PmtuCache};
use crate::stats::{IcmpStats, IpStats};
use crate::wire::{Ipv4Repr, HEADER_LEN, MAX_DATAGRAM};
use crate::IPPROTO_ICMP;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use ustack_netdev::ether::{ETH_HLEN, ETH_P_ARP, ETH_P_IP};
use ustack_netdev::{DevId, MacAddr, PacketBuf};

/// Echo replies kept for [`Ipv4Layer::take_echo_replies`]; newer ones are dropped when full.
pub const ECHO_REPLY_QUEUE: usize = 64;
/// MTU used for datagrams to our own addresses (Linux: loopback MTU 65536).
pub const LOCAL_MTU: usize = MAX_DATAGRAM;
/// Largest ICMP error datagram (RFC 1812 4.3.2.3: at most 576 bytes).
const ICMP_ERROR_MAX: usize = 576;
/// TOS of ICMP errors we send (Linux: `IPTOS_PREC_INTERNETCONTROL`).
const TOS_INTERNETCONTROL: u8 = 0xc0;

/// Tunables (Linux: `net.ipv4.*` sysctls). `Default` gives the Linux defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    /// TTL of datagrams we originate (`ip_default_ttl`, 64).
    pub default_ttl: u8,
    /// Reassembly queue lifetime (`ipfrag_time`, 30 s).
    pub reasm_timeout: Duration,
    /// Memory bound for all reassembly queues (`ipfrag_high_thresh`, 4 MiB).
    pub reasm_mem_limit: usize,
    /// ICMP errors per second (`icmp_msgs_per_sec`, 1000); 0 = unlimited.
    pub icmp_rate_per_sec: u32,
    /// ICMP error burst (`icmp_msgs_burst`, 50).
    pub icmp_burst: u32,
    /// Lifetime of a learned path MTU (`ip_rt_mtu_expires`, 600 s).
    pub pmtu_expiry: Duration,
    /// Lowest path MTU accepted from ICMP (`ip_rt_min_pmtu`, 552).
    pub min_pmtu: usize,
    /// ARP and the neighbour table, for Ethernet devices.
    pub neigh: NeighConfig,
}

impl Default for Ipv4Config {
    fn default() -> Self {
        Ipv4Config {
            default_ttl: 64,
            reasm_timeout: Duration::from_secs(30),
            reasm_mem_limit: 4 << 20,
            icmp_rate_per_sec: 1000,
            icmp_burst: 50,
            pmtu_expiry: Duration::from_secs(600),
            min_pmtu: 552,
            neigh: NeighConfig::default(),
        }
    }
}

/// The result of an output route lookup (Linux: `struct rtable` from `ip_route_output_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutRoute {
    /// Output device.
    pub dev: DevId,
    /// Source address to use (route `src`, else the device's address).
    pub src: Ipv4Addr,
    /// Next hop: the gateway, or the destination itself when on-link.
    pub next_hop: Ipv4Addr,
    /// Largest datagram to send: min(device MTU, path MTU).
    pub mtu: usize,
    /// Largest TCP super-segment the device takes (`NetDevice::tso_max`); 0 when it
    /// takes none (and no partial checksums), always 0 for local destinations.
    pub tso_max: usize,
}

/// A datagram ready for a device (Linux: the `skb` handed to `dev_queue_xmit`); for an
/// Ethernet device, the whole frame (an IPv4 datagram or an ARP message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpTx {
    /// Device to send it on.
    pub dev: DevId,
    /// The whole IPv4 datagram.
    pub pkt: PacketBuf,
}

/// What a transport handler learns about a received datagram's IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRxMeta {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address (ours, or a broadcast address).
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// TTL as received.
    pub ttl: u8,
    /// TOS byte as received.
    pub tos: u8,
    /// Device it arrived on.
    pub dev: DevId,
    /// Sent to a broadcast address (255.255.255.255 or a subnet's) or a multicast group
    /// (Linux `RTCF_BROADCAST | RTCF_MULTICAST`): it may reach several sockets, TCP
    /// ignores it, and it never draws an ICMP error.
    pub multi: bool,
}

/// What a transport asks for when sending (Linux: the `flowi4` + `inet_sock` fields used
/// by `ip_queue_xmit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutMeta {
    /// Source address; `None` = chosen by the route. Any address is accepted, also one
    /// that is not ours (transparent proxying, like `IP_TRANSPARENT`).
    pub src: Option<Ipv4Addr>,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// TTL; `None` = [`Ipv4Config::default_ttl`].
    pub ttl: Option<u8>,
    /// TOS byte.
    pub tos: u8,
    /// Set DF: refuse to fragment (PMTU discovery, RFC 1191).
    pub dont_frag: bool,
    /// Send through this device only (a socket bound to it, `SO_BINDTODEVICE`; Linux
    /// `flowi4_oif`): see [`Ipv4Layer::route_output_dev`]. `None`: the routing table
    /// chooses.
    pub oif: Option<DevId>,
    /// Also deliver a copy to this host (Linux `ip_mc_output`'s loopback): for a
    /// multicast destination when the output device has joined the group
    /// (`IP_MULTICAST_LOOP`), for a broadcast destination always. The transport sets it
    /// only for such destinations; see [`Ipv4Layer::take_looped`].
    pub mc_loop: bool,
    /// The transport has proof that the destination's next hop receives what this host
    /// sends (TCP: an ACK that acknowledged new data, or a duplicate ACK), so its
    /// neighbour entry is confirmed reachable without ARP probes (Linux
    /// `skb->dst_pending_confirm` -> `neigh_confirm`). Matters only on Ethernet devices.
    pub confirm_neigh: bool,
}

/// Why a datagram could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputError {
    /// No route to the destination network (`ENETUNREACH`).
    NetworkUnreachable,
    /// The host cannot be reached (`EHOSTUNREACH`).
    HostUnreachable,
    /// Bigger than the MTU with DF set, or than 65535 bytes (`EMSGSIZE`).
    MessageTooLong,
    /// No usable source address (`EADDRNOTAVAIL`).
    AddrNotAvailable,
}

impl OutputError {
    /// The matching `io::ErrorKind` (`MessageTooLong` -> `InvalidInput`, as EMSGSIZE has
    /// no kind of its own).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            OutputError::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
            OutputError::HostUnreachable => io::ErrorKind::HostUnreachable,
            OutputError::MessageTooLong => io::ErrorKind::InvalidInput,
            OutputError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputError::NetworkUnreachable => "network unreachable",
            OutputError::HostUnreachable => "host unreachable",
            OutputError::MessageTooLong => "message too long",
            OutputError::AddrNotAvailable => "address not available",
        })
    }
}

impl std::error::Error for OutputError {}

impl OutputError {
    /// The Linux errno of a failed route lookup or output.
    pub fn errno(&self) -> i32 {
        match self {
            OutputError::NetworkUnreachable => errno::ENETUNREACH,
            OutputError::HostUnreachable => errno::EHOSTUNREACH,
            OutputError::MessageTooLong => errno::EMSGSIZE,
            OutputError::AddrNotAvailable => errno::EADDRNOTAVAIL,
        }
    }
}

/// Through [`kernel_error`](crate::errno::kernel_error): `EMSGSIZE` keeps the kind
/// `InvalidInput`.
impl From<OutputError> for io::Error {
    fn from(e: OutputError) -> io::Error {
        crate::errno::kernel_error(e.errno(), e.kind(), e)
    }
}

/// The last output route looked up (the bulk path sends every segment of a connection to
/// the same destination). It holds what depends only on the routing table and the
/// interfaces, so it is dropped whenever either may change; the path MTU, which expires
/// with time, is applied on every lookup.
#[derive(Clone, Copy, Debug)]
struct RouteMemo {
    dst: Ipv4Addr,
    /// The device the lookup was restricted to.
    oif: Option<DevId>,
    /// The route with the device MTU (not yet lowered by a path MTU).
    route: OutRoute,
    /// `dst` is one of our addresses.
    local: bool,
}

/// The MTU of a limited broadcast through a device that has no address yet (RFC 791:
/// every host accepts datagrams of 576 bytes).
pub(crate) const MIN_UNCONFIGURED_MTU: usize = 576;

#[derive(Clone, Debug)]
struct Interface {
    dev: DevId,
    addr: Ipv4Cidr,
    mtu: usize,
    tso_max: usize,
}

/// The IPv4 layer (sans-IO). See the crate documentation for what it supports.
#[derive(Debug)]
pub struct Ipv4Layer {
    cfg: Ipv4Config,
    ifaces: Vec<Interface>,
    fib: Fib,
    route_memo: Cell<Option<RouteMemo>>,
    ident: u16,
    reasm: Reassembler,
    tx: Vec<IpTx>,
    local: Vec<PacketBuf>,
    pmtu: PmtuCache,
    echo_replies: VecDeque<EchoReply>,
    icmp_limiter: RateLimiter,
    /// Group memberships and the IGMP host protocol.
    pub(crate) igmp: Igmp,
    /// Copies of multicast and broadcast datagrams we sent, for ourselves.
    looped: Vec<IpTx>,
    /// Some device carries Ethernet (checked on every datagram; the table is boxed to keep
    /// this struct's hot fields together).
    ether: bool,
    /// ARP and the neighbour table of the Ethernet devices.
    neigh: Box<NeighTable>,
    /// Datagrams on their way to the neighbour table (kept for its capacity).
    l2_scratch: Vec<IpTx>,
    pub(crate) stats: IpStats,
    pub(crate) icmp_stats: IcmpStats,
}

impl Ipv4Layer {
    /// A layer with no interfaces and an empty routing table.
    pub fn new(cfg: Ipv4Config) -> Self {
        Ipv4Layer {
            reasm: Reassembler::new(cfg.reasm_timeout, cfg.reasm_mem_limit),
            icmp_limiter: RateLimiter::new(cfg.icmp_rate_per_sec, cfg.icmp_burst),
            ether: false,
            neigh: Box::new(NeighTable::new(cfg.neigh.clone())),
            cfg,
            ifaces: Vec::new(),
            fib: Fib::new(),
            route_memo: Cell::new(None),
            ident: 0,
            tx: Vec::new(),
            local: Vec::new(),
            pmtu: PmtuCache::default(),
            echo_replies: VecDeque::new(),
            igmp: Igmp::default(),
            looped: Vec::new(),
            l2_scratch: Vec::new(),
            stats: IpStats::default(),
            icmp_stats: IcmpStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Ipv4Config {
        &self.cfg
    }

    /// Records that device `dev` takes TCP super-segments of up to `tso_max` bytes and
    /// completes partial checksums (`NetDevice::tso_max`; 0: neither). Routes through it
    /// report it in [`OutRoute::tso_max`], and [`Ipv4Layer::output`] passes such packets
    /// to it (and refuses them for any other device).
    pub fn set_tso_max(&mut self, dev: DevId, tso_max: usize) {
        self.route_memo.set(None);
        for i in self.ifaces.iter_mut().filter(|i| i.dev == dev) {
            i.tso_max = tso_max;
        }
    }

    /// Adds address `addr` on device `dev` (named `name`, with `mtu`), with its local
    /// `/32` route and its connected subnet route (Linux: `inet_insert_ifa` ->
    /// `fib_add_ifaddr`). Several addresses per device are allowed.
    pub fn add_interface(&mut self, dev: DevId, name: &str, addr: Ipv4Cidr, mtu: usize) {
        self.route_memo.set(None);
        self.fib.set_dev_name(dev, name);
        // A device's offload applies to every address on it.
        let tso_max = self
            .ifaces
            .iter()
            .find(|i| i.dev == dev)
            .map_or(0, |i| i.tso_max);
        self.ifaces.push(Interface {
            dev,
            addr,
            mtu,
            tso_max,
        });
        self.add_local_route(dev, addr.addr());
        if addr.prefix_len() < 32 {
            self.add_connected_route(dev, addr);
        }
    }

    fn add_local_route(&mut self, dev: DevId, a: Ipv4Addr) {
        let Ok(dst) = Ipv4Cidr::new(a, 32) else {
            return;
        };
        let local = Route {
            dst,
            gateway: None,
            dev,
            metric: 0,
            src: Some(a),
            kind: RouteKind::Local,
        };
        if let Err(e) = self.fib.add(local) {
            tracing::debug!(addr = %a, error = %e, "local route not added");
        }
    }

    fn add_connected_route(&mut self, dev: DevId, addr: Ipv4Cidr) {
        let connected = Route {
            dst: addr.network(),
            gateway: None,
            dev,
            metric: 0,
            src: Some(addr.addr()),
            kind: RouteKind::Connected,
        };
        if let Err(e) = self.fib.add(connected) {
            tracing::debug!(%addr, error = %e, "connected route not added");
        }
    }

    /// Removes address `addr` (with its prefix length) from device `dev`, with its local
    /// route and, unless another address of the device is in the same subnet (which then
    /// becomes the route's source), its connected route (Linux: `inet_del_ifa` ->
    /// `fib_del_ifaddr`). Sockets bound to it stay, as in Linux, and no longer receive.
    /// False when `dev` does not have `addr`.
    pub fn remove_interface(&mut self, dev: DevId, addr: Ipv4Cidr) -> bool {
        let Some(i) = self
            .ifaces
            .iter()
            .position(|x| x.dev == dev && x.addr == addr)
        else {
            return false;
        };
        self.ifaces.remove(i);
        self.route_memo.set(None);
        let a = addr.addr();
        if let Ok(host) = Ipv4Cidr::new(a, 32) {
            if self
                .fib
                .remove_matching(host, |r| r.kind == RouteKind::Local && r.dev == dev)
                .is_ok()
            {
                // The same address on another device keeps it local.
                if let Some(other) = self.ifaces.iter().find(|x| x.addr.addr() == a) {
                    let d = other.dev;
                    self.add_local_route(d, a);
                }
            }
        }
        if addr.prefix_len() < 32 {
            let net = addr.network();
            let removed = self.fib.remove_matching(net, |r| {
                r.kind == RouteKind::Connected && r.dev == dev && r.src == Some(a)
            });
            if removed.is_ok() {
                if let Some(other) = self
                    .ifaces
                    .iter()
                    .find(|x| x.dev == dev && x.addr.network() == net)
                {
                    let o = other.addr;
                    self.add_connected_route(dev, o);
                }
            }
        }
        true
    }

    /// Forgets device `dev` (Linux `unregister_netdevice`: `inetdev_destroy`,
    /// `fib_disable_ip`, `neigh_ifdown`, `ip_mc_destroy_dev`): its addresses with their
    /// local and connected routes (an address another device also has stays local),
    /// every route through it, its neighbour entries with the datagrams they held, its
    /// multicast memberships, and whatever was queued for it.
    pub fn remove_device(&mut self, dev: DevId) {
        let addrs: Vec<Ipv4Cidr> = self
            .ifaces
            .iter()
            .filter(|i| i.dev == dev)
            .map(|i| i.addr)
            .collect();
        for a in addrs {
            self.remove_interface(dev, a);
        }
        self.fib.remove_dev(dev);
        self.route_memo.set(None);
        self.igmp.remove_dev(dev);
        self.neigh.remove_dev(dev);
        self.ether = self.neigh.any();
        self.tx.retain(|t| t.dev != dev);
        self.looped.retain(|t| t.dev != dev);
    }

    /// The MTU of device `dev`'s addresses, if it has one.
    pub fn dev_mtu(&self, dev: DevId) -> Option<usize> {
        self.ifaces.iter().find(|i| i.dev == dev).map(|i| i.mtu)
    }

    /// Changes the MTU of every address on `dev` (e.g. the device reported a new MTU).
    pub fn set_mtu(&mut self, dev: DevId, mtu: usize) {
        self.route_memo.set(None);
        for i in self.ifaces.iter_mut().filter(|i| i.dev == dev) {
            i.mtu = mtu;
        }
    }

    /// The addresses configured on `dev`.
    pub fn addresses(&self, dev: DevId) -> Vec<Ipv4Cidr> {
        self.ifaces
            .iter()
            .filter(|i| i.dev == dev)
            .map(|i| i.addr)
            .collect()
    }

    /// The routing table.
    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    /// The routing table, to add or remove routes.
    pub fn fib_mut(&mut self) -> &mut Fib {
        // The caller may change any route.
        self.route_memo.set(None);
        &mut self.fib
    }

    /// True when `a` is one of our addresses.
    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        self.ifaces.iter().any(|i| i.addr.addr() == a)
    }

    /// True for 255.255.255.255 and the directed broadcast address of a connected subnet.
    pub fn is_broadcast(&self, a: Ipv4Addr) -> bool {
        a.is_broadcast() || self.ifaces.iter().any(|i| i.addr.broadcast() == Some(a))
    }

    /// Output route lookup (Linux: `ip_route_output_key`), through `oif` only when given.
    /// The second value is true when the destination is one of our addresses.
    fn route(
        &self,
        dst: Ipv4Addr,
        oif: Option<DevId>,
        now: Instant,
    ) -> Result<(OutRoute, bool), OutputError> {
        if dst.is_unspecified() {
            return Err(OutputError::AddrNotAvailable);
        }
        if dst.is_broadcast() {
            let r = match (
                self.ifaces.iter().find(|i| oif.is_none_or(|d| d == i.dev)),
                oif,
            ) {
                (Some(i), _) => OutRoute {
                    dev: i.dev,
                    src: i.addr.addr(),
                    next_hop: dst,
                    mtu: i.mtu,
                    tso_max: 0,
                },
                // A device without an address, named by the socket (a DHCP client's
                // first messages; Linux `ipconfig`): from 0.0.0.0, at most the 576 bytes
                // every IPv4 host takes (the layer knows a device's MTU from its
                // addresses only).
                (None, Some(dev)) => OutRoute {
                    dev,
                    src: Ipv4Addr::UNSPECIFIED,
                    next_hop: dst,
                    mtu: MIN_UNCONFIGURED_MTU,
                    tso_max: 0,
                },
                (None, None) => return Err(OutputError::NetworkUnreachable),
            };
            return Ok((r, false));
        }
        let memo = match self.route_memo.get() {
            Some(m) if m.dst == dst && m.oif == oif => m,
            _ => {
                let m = self.route_uncached(dst, oif)?;
                self.route_memo.set(Some(m));
                m
            }
        };
        let mut out = memo.route;
        if !memo.local {
            if let Some(p) = self.pmtu.get(dst, now) {
                out.mtu = p.min(out.mtu);
            }
        }
        Ok((out, memo.local))
    }

    /// The routing table and interface part of [`Ipv4Layer::route`] for a unicast `dst`.
    fn route_uncached(&self, dst: Ipv4Addr, oif: Option<DevId>) -> Result<RouteMemo, OutputError> {
        let found = match oif {
            // One of our own addresses stays local whatever the socket is bound to.
            Some(d) if !self.is_local(dst) => self.fib.lookup_dev(dst, d),
            _ => self.fib.lookup(dst),
        };
        let Some(r) = found else {
            // Bound to a device without a route through it: the destination is taken to
            // be on that device's link (Linux `ip_route_output_key_hash_rcu`: "routing
            // tables are wrong, assume that the destination is on link").
            let d = oif.ok_or(OutputError::NetworkUnreachable)?;
            let iface = self
                .ifaces
                .iter()
                .find(|i| i.dev == d)
                .ok_or(OutputError::NetworkUnreachable)?;
            let route = OutRoute {
                dev: d,
                src: iface.addr.addr(),
                next_hop: dst,
                mtu: iface.mtu,
                tso_max: iface.tso_max,
            };
            return Ok(RouteMemo {
                dst,
                oif,
                route,
                local: false,
            });
        };
        if r.kind == RouteKind::Local {
            let route = OutRoute {
                dev: r.dev,
                src: dst,
                next_hop: dst,
                mtu: LOCAL_MTU,
                tso_max: 0,
            };
            return Ok(RouteMemo {
                dst,
                oif,
                route,
                local: true,
            });
        }
        let iface = self
            .ifaces
            .iter()
            .find(|i| i.dev == r.dev)
            .ok_or(OutputError::NetworkUnreachable)?;
        let route = OutRoute {
            dev: r.dev,
            src: r.src.unwrap_or(iface.addr.addr()),
            next_hop: r.gateway.unwrap_or(dst),
            mtu: iface.mtu,
            tso_max: iface.tso_max,
        };
        Ok(RouteMemo {
            dst,
            oif,
            route,
            local: false,
        })
    }

    /// Output route lookup (Linux: `ip_route_output_key`): device, source address, next
    /// hop and MTU (min of device MTU and a learned path MTU) towards `dst`.
    /// No route gives `NetworkUnreachable`; 0.0.0.0 gives `AddrNotAvailable`.
    pub fn route_output(&self, dst: Ipv4Addr, now: Instant) -> Result<OutRoute, OutputError> {
        self.route(dst, None, now).map(|(r, _)| r)
    }

    /// [`route_output`](Self::route_output) through device `oif` only, when given (a
    /// socket bound to a device, `SO_BINDTODEVICE`; Linux `flowi4_oif`): the longest
    /// prefix among the routes through `oif`, else the destination is taken to be on
    /// `oif`'s link (as Linux does), with the device's address as the source. Our own
    /// addresses stay local. `NetworkUnreachable` when `oif` has no address, except for
    /// 255.255.255.255, which leaves `oif` from 0.0.0.0 (at most
    /// 576 bytes: DHCP before the device has an address).
    pub fn route_output_dev(
        &self,
        dst: Ipv4Addr,
        oif: Option<DevId>,
        now: Instant,
    ) -> Result<OutRoute, OutputError> {
        self.route(dst, oif, now).map(|(r, _)| r)
    }

    fn next_ident(&mut self) -> u16 {
        // One counter for all destinations (Linux hashes per destination; RFC 6864
        // only requires uniqueness within the reassembly lifetime per src/dst/protocol).
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Sends a datagram (Linux: `ip_queue_xmit` -> `ip_output` -> `ip_fragment`).
    ///
    /// Routes it, prepends the 20-byte header into the buffer's headroom (the payload is
    /// not copied), and queues it for [`Ipv4Layer::take_tx`]. A datagram larger than
    /// the route MTU is fragmented (RFC 791) unless DF is set, in which case it fails with
    /// `MessageTooLong` (RFC 1191 PMTU discovery is then up to the transport). A datagram
    /// to one of our own addresses is queued for [`Ipv4Layer::take_local`] instead.
    pub fn output(
        &mut self,
        now: Instant,
        meta: &OutMeta,
        payload: PacketBuf,
    ) -> Result<(), OutputError> {
        self.stats.out_requests += 1;
        let (route, local) = match self.route(meta.dst, meta.oif, now) {
            Ok(r) => r,
            Err(e) => {
                self.stats.out_no_routes += 1;
                return Err(e);
            }
        };
        if HEADER_LEN + payload.len() > MAX_DATAGRAM {
            self.stats.out_discards += 1;
            return Err(OutputError::MessageTooLong);
        }
        if meta.dst.is_multicast() {
            self.stats.out_mcast_pkts += 1;
        }
        let repr = Ipv4Repr {
            src: meta.src.unwrap_or(route.src),
            dst: meta.dst,
            protocol: meta.protocol,
            ttl: meta.ttl.unwrap_or(self.cfg.default_ttl),
            tos: meta.tos,
            ident: self.next_ident(),
            dont_frag: meta.dont_frag,
            more_frags: false,
            frag_offset: 0,
            header_len: HEADER_LEN,
            payload_len: payload.len(),
        };
        // Left for the device to finish (TSO, checksum offload): only a device that takes
        // such packets gets them, whole, and a super-segment only up to its limit; never a
        // local destination (its route's tso_max is 0).
        let offloaded = payload.gso_size() > 0 || payload.csum_partial();
        if offloaded {
            let limit = if payload.gso_size() > 0 {
                route.tso_max
            } else if route.tso_max > 0 {
                route.mtu
            } else {
                0
            };
            if HEADER_LEN + payload.len() > limit {
                self.stats.out_discards += 1;
                return Err(OutputError::MessageTooLong);
            }
        }
        // The buffer is queued first and its header written in the queue: moving it right
        // after `push` changed its head would reload that field while the store is still
        // in flight (a store-forwarding stall on every datagram).
        if local {
            self.local.push(payload);
            if let Some(p) = self.local.last_mut() {
                repr.emit(p.push(HEADER_LEN));
            }
            return Ok(());
        }
        let start = self.tx.len();
        if offloaded || HEADER_LEN + payload.len() <= route.mtu {
            self.tx.push(IpTx {
                dev: route.dev,
                pkt: payload,
            });
            if let Some(t) = self.tx.last_mut() {
                repr.emit(t.pkt.push(HEADER_LEN));
            }
            self.output_queued(now, start, meta, repr.src, &route);
            return Ok(());
        }
        if meta.dont_frag {
            self.stats.frag_fails += 1;
            return Err(OutputError::MessageTooLong);
        }
        let mut frags = Vec::new();
        match fragment(&repr, payload.data(), route.mtu, &mut frags) {
            Ok(n) => {
                self.stats.frag_oks += 1;
                self.stats.frag_creates += n as u64;
                let dev = route.dev;
                self.tx
                    .extend(frags.into_iter().map(|pkt| IpTx { dev, pkt }));
                self.output_queued(now, start, meta, repr.src, &route);
                Ok(())
            }
            Err(_) => {
                self.stats.frag_fails += 1;
                Err(OutputError::MessageTooLong)
            }
        }
    }

    /// The tail of [`output`](Self::output) for the datagram (or its fragments) just
    /// queued from `start` on, from `src`: a copy for this host when asked
    /// (`mc_loop`), TTL 0 multicasts kept here only (Linux `ip_mc_output`), and Ethernet
    /// framing through the neighbour table.
    #[inline]
    fn output_queued(
        &mut self,
        now: Instant,
        start: usize,
        meta: &OutMeta,
        src: Ipv4Addr,
        route: &OutRoute,
    ) {
        let n = self.tx.len() - start;
        if meta.mc_loop {
            self.loop_back(meta.dst, route.dev, n);
        }
        if meta.ttl == Some(0) && meta.dst.is_multicast() {
            // Linux ip_mc_output: TTL 0 stays on this host (looped back only).
            self.tx.truncate(start);
        }
        if self.ether {
            let confirm = meta.confirm_neigh;
            self.neigh_output(now, start, src, meta.dst, route.next_hop, confirm);
        }
    }

    /// Moves every datagram waiting for a device into `out`.
    pub fn take_tx(&mut self, out: &mut Vec<IpTx>) {
        out.append(&mut self.tx);
    }

    /// Makes `dev` an Ethernet device with our address `mac` on it: datagrams through it
    /// leave in frames to the next hop's address, found with ARP, and
    /// [`link_input`](Self::link_input) takes its frames apart.
    pub fn set_ethernet(&mut self, dev: DevId, mac: MacAddr) {
        self.neigh.set_mac(dev, mac);
        self.ether = true;
    }

    /// True when some device carries Ethernet frames (then received packets go through
    /// [`link_input`](Self::link_input) first).
    pub fn has_ethernet(&self) -> bool {
        self.ether
    }

    /// The neighbour table, as `ip neigh` shows it.
    pub fn neighbours(&self) -> Vec<NeighInfo> {
        self.neigh.neighbours()
    }

    /// The neighbour table as it stands at `now` (see [`NeighTable::neighbours_at`]).
    pub fn neighbours_at(&self, now: Instant) -> Vec<NeighInfo> {
        self.neigh.neighbours_at(now)
    }

    /// True when device `dev` carries Ethernet.
    pub fn has_ethernet_dev(&self, dev: DevId) -> bool {
        self.ether && self.neigh.mac_of(dev).is_some()
    }

    /// Announces our address `addr` on Ethernet device `dev` (see
    /// [`NeighTable::announce`]); nothing on other devices.
    pub fn arp_announce(&mut self, dev: DevId, addr: Ipv4Addr) {
        if self.ether {
            self.neigh.announce(dev, addr, &mut self.tx);
        }
    }

    /// Probes for `addr` on Ethernet device `dev` (see [`NeighTable::probe`]).
    pub fn arp_probe(&mut self, dev: DevId, addr: Ipv4Addr) -> bool {
        self.ether && self.neigh.probe(dev, addr, &mut self.tx)
    }

    /// Ends a probe: true when another host uses the address (see
    /// [`NeighTable::probe_end`]).
    pub fn arp_probe_end(&mut self, dev: DevId, addr: Ipv4Addr) -> bool {
        self.neigh.probe_end(dev, addr)
    }

    /// The address conflicts remembered (see [`NeighTable::conflicts`]).
    pub fn arp_conflicts(&self) -> Vec<crate::arp::AddrConflict> {
        self.neigh.conflicts().copied().collect()
    }

    /// See [`NeighTable::poll_lost`].
    pub fn arp_poll_lost(
        &mut self,
        dev: DevId,
        addr: Ipv4Addr,
        after: u64,
        waker: &std::task::Waker,
    ) -> Option<crate::arp::AddrConflict> {
        self.neigh.poll_lost(dev, addr, after, waker)
    }

    /// See [`NeighTable::conflict_seq`].
    pub fn arp_conflict_seq(&self) -> u64 {
        self.neigh.conflict_seq()
    }

    /// Wakers of tasks waiting for an address conflict, when one came (see
    /// [`NeighTable::take_wakers`]).
    #[inline]
    pub fn take_arp_wakers(&mut self, out: &mut Vec<std::task::Waker>) {
        if self.ether {
            self.neigh.take_wakers(out);
        }
    }

    /// Sets a permanent neighbour entry (see [`NeighTable::add_permanent`]).
    pub fn add_neighbour(&mut self, dev: DevId, addr: Ipv4Addr, mac: MacAddr) -> bool {
        self.neigh.add_permanent(dev, addr, mac, &mut self.tx)
    }

    /// Removes a neighbour entry (see [`NeighTable::remove`]).
    pub fn remove_neighbour(&mut self, dev: DevId, addr: Ipv4Addr) -> bool {
        self.neigh.remove(dev, addr)
    }

    /// ARP counters.
    pub fn arp_stats(&self) -> ArpStats {
        self.neigh.stats()
    }

    /// The link layer of a received packet (Linux `eth_type_trans` and the protocol
    /// handlers of `__netif_receive_skb`): on an Ethernet device, a frame for another
    /// Ethernet address is dropped, ARP is processed here, and an IPv4 datagram is
    /// returned without its header for [`crate::ip_rcv`]; on other devices the packet
    /// is returned as it is.
    #[inline(never)]
    pub fn link_input(
        &mut self,
        now: Instant,
        dev: DevId,
        mut pkt: PacketBuf,
    ) -> Option<PacketBuf> {
        let Some(our) = self.neigh.mac_of(dev) else {
            return Some(pkt);
        };
        let h = pkt.data().get(..ETH_HLEN)?;
        let dst = MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]]);
        let ethertype = u16::from_be_bytes([h[12], h[13]]);
        if dst != our && !dst.is_multicast() {
            self.neigh.count_other_host();
            return None;
        }
        match ethertype {
            ETH_P_IP => {
                pkt.pull(ETH_HLEN)?;
                Some(pkt)
            }
            ETH_P_ARP => {
                match pkt.data().get(ETH_HLEN..).and_then(ArpPacket::parse) {
                    Some(msg) => {
                        let mine = |a: Ipv4Addr| {
                            self.ifaces
                                .iter()
                                .any(|i| i.dev == dev && i.addr.addr() == a)
                        };
                        let (ours, from_ours) = (mine(msg.tpa), mine(msg.spa));
                        self.neigh
                            .input(now, dev, &msg, ours, from_ours, dst == our, &mut self.tx);
                    }
                    None => self.neigh.count_bad(),
                }
                None
            }
            _ => {
                self.neigh.count_unknown_type();
                None
            }
        }
    }

    /// Hands the datagrams queued from `start` on (one datagram or its fragments, from
    /// `src` to `dst` through `next_hop`) to the neighbour table when their device carries
    /// Ethernet (Linux `ip_finish_output2` -> `neigh_output`): a multicast or broadcast
    /// destination goes to its group address even when routed through a gateway (Linux
    /// `rt_nexthop`), others to `next_hop`, resolved. Requests leave from `src` when it is
    /// the device's address, else from the device's first address (Linux `arp_solicit`).
    /// `confirm`: the transport knows `next_hop` receives our frames
    /// ([`OutMeta::confirm_neigh`]).
    #[inline(never)]
    fn neigh_output(
        &mut self,
        now: Instant,
        start: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        next_hop: Ipv4Addr,
        confirm: bool,
    ) {
        if start >= self.tx.len() {
            return;
        }
        let group = if dst.is_multicast() {
            Some(MacAddr::ipv4_multicast(dst))
        } else if self.is_broadcast(dst) || self.is_broadcast(next_hop) {
            Some(MacAddr::BROADCAST)
        } else {
            None
        };
        let mut pending = std::mem::take(&mut self.l2_scratch);
        pending.extend(self.tx.drain(start..));
        for t in pending.drain(..) {
            let Some(our) = self.neigh.mac_of(t.dev) else {
                self.tx.push(t);
                continue;
            };
            if let Some(g) = group {
                let mut pkt = t.pkt;
                arp::push_ether(&mut pkt, g, our, ETH_P_IP);
                self.tx.push(IpTx { dev: t.dev, pkt });
                continue;
            }
            let mut on_dev = self.ifaces.iter().filter(|i| i.dev == t.dev);
            let solicit_src = if on_dev.clone().any(|i| i.addr.addr() == src) {
                src
            } else {
                on_dev
                    .next()
                    .map_or(Ipv4Addr::UNSPECIFIED, |i| i.addr.addr())
            };
            if confirm {
                self.neigh.confirm(now, t.dev, next_hop);
            }
            self.neigh
                .output(now, t.dev, next_hop, solicit_src, t.pkt, &mut self.tx);
        }
        self.l2_scratch = pending;
    }

    /// Copies the last `n` queued packets (one datagram, or its fragments) to `dst`
    /// through `dev` for this host as well: a multicast group `dev` has joined, or a
    /// broadcast (Linux `ip_mc_output` -> `dev_loopback_xmit`).
    fn loop_back(&mut self, dst: Ipv4Addr, dev: DevId, n: usize) {
        if dst.is_multicast() {
            if !self.igmp.is_member(dev, dst) {
                return;
            }
        } else {
            self.stats.out_bcast_pkts += 1;
        }
        let start = self.tx.len().saturating_sub(n);
        if let Some(sent) = self.tx.get(start..) {
            self.looped.extend(sent.iter().cloned());
        }
    }

    /// Moves the copies of multicast and broadcast datagrams this host sent to itself
    /// into `out`, each with the device it left through; the driver feeds them back
    /// through [`crate::ip_rcv`] as arriving on that device (Linux: the loopback copy of
    /// `ip_mc_output`).
    pub fn take_looped(&mut self, out: &mut Vec<IpTx>) {
        out.append(&mut self.looped);
    }

    /// Seeds the generator of IGMP report delays (from the stack's secret).
    pub fn seed(&mut self, seed: u64) {
        self.igmp.reseed(seed);
    }

    /// Joins `group` on device `dev` for one more socket (Linux `ip_mc_inc_group`): the
    /// device then accepts datagrams to it, and the first join announces it with IGMP
    /// reports. True for the first join on that device.
    pub fn join_group(&mut self, now: Instant, dev: DevId, group: Ipv4Addr) -> bool {
        let first = self.igmp.join(now, dev, group);
        self.send_igmp(now);
        first
    }

    /// Leaves `group` on `dev` for one socket (Linux `ip_mc_dec_group`); the last leave
    /// stops reception and announces it. False when `dev` was not a member.
    pub fn leave_group(&mut self, now: Instant, dev: DevId, group: Ipv4Addr) -> bool {
        let was = self.igmp.leave(now, dev, group);
        self.send_igmp(now);
        was
    }

    /// True when device `dev` accepts datagrams to multicast `group` (224.0.0.1 or a
    /// joined group).
    pub fn is_mc_member(&self, dev: DevId, group: Ipv4Addr) -> bool {
        self.igmp.is_member(dev, group)
    }

    /// Every group membership: device, group, number of sockets (Linux `/proc/net/igmp`).
    pub fn mc_memberships(&self) -> Vec<(DevId, Ipv4Addr, u32)> {
        self.igmp.memberships().collect()
    }

    /// The IGMP version a device speaks at `now` (3, or 1 or 2 while an older querier
    /// was heard).
    pub fn igmp_version(&self, dev: DevId, now: Instant) -> u8 {
        self.igmp.version(dev, now)
    }

    /// IGMP counters.
    pub fn igmp_stats(&self) -> IgmpStats {
        self.igmp.stats()
    }

    /// The device with address `addr`, if any.
    pub fn dev_of_addr(&self, addr: Ipv4Addr) -> Option<DevId> {
        self.ifaces
            .iter()
            .find(|i| i.addr.addr() == addr)
            .map(|i| i.dev)
    }

    /// Wraps the IGMP messages waiting into datagrams (Linux `igmpv3_newpack`,
    /// `igmp_send_report`): from the device's first address, TTL 1, TOS 0xc0, DF, and the
    /// Router Alert option (RFC 2113; RFC 3376 4 requires it).
    pub(crate) fn send_igmp(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.igmp.take_out(&mut out);
        for m in out {
            let src = self
                .ifaces
                .iter()
                .find(|i| i.dev == m.dev)
                .map_or(Ipv4Addr::UNSPECIFIED, |i| i.addr.addr());
            let hlen = HEADER_LEN + 4;
            let repr = Ipv4Repr {
                src,
                dst: m.dst,
                protocol: IPPROTO_IGMP,
                ttl: 1,
                tos: TOS_INTERNETCONTROL,
                ident: self.next_ident(),
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                header_len: hlen,
                // The option counts as payload for `emit`'s total length.
                payload_len: 4 + m.msg.len(),
            };
            let mut pkt = PacketBuf::with_payload_capacity(hlen + m.msg.len());
            let b = pkt.put(hlen + m.msg.len());
            repr.emit(b);
            if let Some(h) = b.get_mut(..hlen) {
                h[0] = 0x46;
                // Router Alert: copied flag + option 20, length 4, value 0.
                h[HEADER_LEN..hlen].copy_from_slice(&[0x94, 0x04, 0, 0]);
                h[10..12].copy_from_slice(&[0, 0]);
                let c = crate::checksum::checksum(h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            if let Some(body) = b.get_mut(hlen..) {
                body.copy_from_slice(&m.msg);
            }
            self.stats.out_requests += 1;
            self.stats.out_mcast_pkts += 1;
            let start = self.tx.len();
            self.tx.push(IpTx { dev: m.dev, pkt });
            if self.ether {
                self.neigh_output(now, start, src, m.dst, m.dst, false);
            }
        }
    }

    /// Moves every datagram sent to one of our own addresses into `out`; the driver feeds
    /// them back through [`crate::ip_rcv`] (Linux: the loopback device).
    pub fn take_local(&mut self, out: &mut Vec<PacketBuf>) {
        out.append(&mut self.local);
    }

    /// Records a path MTU towards `dst` learned from ICMP "fragmentation needed"
    /// (RFC 1191; Linux: `__ip_rt_update_pmtu`). Values below `min_pmtu` are raised to it;
    /// an estimate is only lowered, and expires after `pmtu_expiry`. Called by the
    /// transport once it has validated the ICMP error (RFC 5927), never by `ip_rcv`.
    pub fn update_pmtu(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant) {
        let mtu = mtu.max(self.cfg.min_pmtu);
        self.pmtu.update(dst, mtu, now, self.cfg.pmtu_expiry);
    }

    /// The learned path MTU towards `dst`, if one is known and not expired.
    pub fn path_mtu(&self, dst: Ipv4Addr, now: Instant) -> Option<usize> {
        self.pmtu.get(dst, now)
    }

    /// The MTU an ICMP "fragmentation needed" about a datagram whose quoted total length
    /// was `quoted_len` proposes, clamped to `min_pmtu`. RFC 1191 section 5: an MTU of 0
    /// (or below 68) comes from an old router; guess the next plateau down. Nothing is
    /// applied here: the transport validates the error first and then calls
    /// [`Ipv4Layer::update_pmtu`] (Linux: `tcp_v4_err` -> `tcp_v4_mtu_reduced` ->
    /// `inet_csk_update_pmtu`).
    pub(crate) fn pmtu_clamp_icmp(&self, mtu: u16, quoted_len: u16) -> u16 {
        let mut m = usize::from(mtu);
        if m < 68 {
            m = plateau_below(usize::from(quoted_len));
        }
        let m = m.max(self.cfg.min_pmtu);
        u16::try_from(m).unwrap_or(u16::MAX)
    }

    /// Sends an ICMP echo request (ping). Linux: ping socket `ping_v4_sendmsg`.
    pub fn send_echo_request(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        ident: u16,
        seq: u16,
        payload: &[u8],
    ) -> Result<(), OutputError> {
        let msg = IcmpRepr::EchoRequest {
            ident,
            seq,
            data: payload,
        };
        let meta = OutMeta {
            src: None,
            dst,
            protocol: IPPROTO_ICMP,
            ttl: None,
            tos: 0,
            dont_frag: false,
            oif: None,
            mc_loop: false,
            confirm_neigh: false,
        };
        self.send_icmp(now, &meta, &msg)?;
        self.icmp_stats.out_echos += 1;
        Ok(())
    }

    fn send_icmp(
        &mut self,
        now: Instant,
        meta: &OutMeta,
        msg: &IcmpRepr<'_>,
    ) -> Result<(), OutputError> {
        let len = msg.buffer_len();
        let mut pkt = PacketBuf::with_payload_capacity(len);
        msg.emit(pkt.put(len));
        match self.output(now, meta, pkt) {
            Ok(()) => {
                self.icmp_stats.out_msgs += 1;
                Ok(())
            }
            Err(e) => {
                self.icmp_stats.out_errors += 1;
                Err(e)
            }
        }
    }

    /// Answers an echo request (Linux: `icmp_echo`): same identifier, sequence and data,
    /// from the address it was sent to, with its TOS.
    pub(crate) fn send_echo_reply(
        &mut self,
        now: Instant,
        req: &IpRxMeta,
        ident: u16,
        seq: u16,
        data: &[u8],
    ) {
        let msg = IcmpRepr::EchoReply { ident, seq, data };
        let meta = OutMeta {
            src: Some(req.dst),
            dst: req.src,
            protocol: IPPROTO_ICMP,
            ttl: None,
            tos: req.tos,
            dont_frag: false,
            oif: None,
            mc_loop: false,
            confirm_neigh: false,
        };
        if self.send_icmp(now, &meta, &msg).is_ok() {
            self.icmp_stats.out_echo_reps += 1;
        }
    }

    /// Queues a received echo reply; dropped when [`ECHO_REPLY_QUEUE`] are waiting.
    pub(crate) fn push_echo_reply(&mut self, r: EchoReply) {
        if self.echo_replies.len() < ECHO_REPLY_QUEUE {
            self.echo_replies.push_back(r);
        }
    }

    /// Moves the received echo replies into `out` (oldest first).
    pub fn take_echo_replies(&mut self, out: &mut Vec<EchoReply>) {
        out.extend(self.echo_replies.drain(..));
    }

    /// Sends an ICMP error about a received datagram (Linux: `icmp_send`). `quote` is the
    /// original datagram's IP header followed by at least 8 bytes of its payload (more
    /// is quoted, up to a 576-byte error, RFC 1812 4.3.2.3).
    ///
    /// Nothing is sent (RFC 1122 3.2.2) about an ICMP error message, a fragment other
    /// than the first, a datagram to a broadcast or multicast address, or from a source
    /// that is not a unicast address. Errors other than "fragmentation needed" are rate
    /// limited by a token bucket (counted in `out_rate_limited`).
    pub fn icmp_send_error(&mut self, now: Instant, quote: &[u8], kind: IcmpErrorKind) {
        let Some(q) = QuotedHeader::parse(quote) else {
            return;
        };
        if q.frag_offset != 0 || q.dst.is_multicast() || self.is_broadcast(q.dst) {
            return;
        }
        if q.src.is_unspecified()
            || q.src.is_multicast()
            || self.is_broadcast(q.src)
            || q.src.is_loopback() && !self.is_local(q.src)
        {
            return;
        }
        if q.protocol == IPPROTO_ICMP {
            match quote.get(q.header_len) {
                Some(&typ) if !is_error_type(typ) => {}
                _ => return,
            }
        }
        if !matches!(kind, IcmpErrorKind::FragmentationNeeded { .. })
            && !self.icmp_limiter.allow(now)
        {
            self.icmp_stats.out_rate_limited += 1;
            return;
        }
        let room = ICMP_ERROR_MAX - HEADER_LEN - crate::icmp::ICMP_HEADER_LEN;
        let quote = quote.get(..quote.len().min(room)).unwrap_or_default();
        let msg = IcmpRepr::Error { kind, quote };
        // Reply from the address the datagram was sent to when it is ours.
        let src = self.is_local(q.dst).then_some(q.dst);
        let meta = OutMeta {
            src,
            dst: q.src,
            protocol: IPPROTO_ICMP,
            ttl: None,
            tos: TOS_INTERNETCONTROL,
            dont_frag: false,
            oif: None,
            mc_loop: false,
            confirm_neigh: false,
        };
        if self.send_icmp(now, &meta, &msg).is_ok() {
            match kind.type_code().0 {
                ICMP_DEST_UNREACH => self.icmp_stats.out_dest_unreachs += 1,
                ICMP_TIME_EXCEEDED => self.icmp_stats.out_time_excds += 1,
                ICMP_PARAMETER_PROB => self.icmp_stats.out_parm_probs += 1,
                _ => {}
            }
        }
    }

    /// Feeds a fragment to reassembly (Linux: `ip_defrag`), counting `ReasmReqds`,
    /// `ReasmOKs`, `ReasmFails`. Returns the whole datagram when complete.
    pub(crate) fn defrag(
        &mut self,
        now: Instant,
        repr: &Ipv4Repr,
        packet: &[u8],
    ) -> Option<PacketBuf> {
        self.stats.reasm_reqds += 1;
        let evicted_before = self.reasm.evictions();
        let out = self.reasm.add(now, repr, packet);
        self.stats.reasm_fails += self.reasm.evictions() - evicted_before;
        match out {
            ReasmOutcome::Complete(p) => {
                self.stats.reasm_oks += 1;
                Some(p)
            }
            ReasmOutcome::Pending => None,
            ReasmOutcome::Dropped(why) => {
                tracing::debug!(?why, src = %repr.src, ident = repr.ident, "reassembly dropped");
                self.stats.reasm_fails += 1;
                None
            }
        }
    }

    /// Counters like `/proc/net/snmp` `Ip:`.
    pub fn stats(&self) -> IpStats {
        self.stats
    }

    /// Counters like `/proc/net/snmp` `Icmp:`.
    pub fn icmp_stats(&self) -> IcmpStats {
        self.icmp_stats
    }

    /// The next instant [`Ipv4Layer::on_timeout`] has work to do (reassembly expiry,
    /// IGMP reports, ARP requests).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = match (self.reasm.next_expiry(), self.igmp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (t, self.ether.then(|| self.neigh.poll_timeout()).flatten()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires reassembly queues (Linux: `ip_expire`: `ReasmTimeout`, `ReasmFails`, and
    /// ICMP time exceeded code 1 when the first fragment had arrived, RFC 1122 3.3.2)
    /// and drops expired path MTU entries.
    pub fn on_timeout(&mut self, now: Instant) {
        let mut quotes: Vec<Vec<u8>> = Vec::new();
        let mut n = 0u64;
        self.reasm.expire(now, |q| {
            n += 1;
            if let Some(q) = q {
                quotes.push(q.to_vec());
            }
        });
        self.stats.reasm_timeout += n;
        self.stats.reasm_fails += n;
        for q in quotes {
            self.icmp_send_error(
                now,
                &q,
                IcmpErrorKind::Other {
                    typ: ICMP_TIME_EXCEEDED,
                    code: 1,
                },
            );
        }
        self.pmtu.prune(now);
        if self.igmp.next_deadline().is_some_and(|d| d <= now) {
            let ifaces = &self.ifaces;
            // Room for IGMP in a datagram with the Router Alert option.
            let room = |dev: DevId| {
                ifaces
                    .iter()
                    .find(|i| i.dev == dev)
                    .map_or(576, |i| i.mtu)
                    .saturating_sub(HEADER_LEN + 4)
            };
            self.igmp.on_timeout(now, room);
            self.send_igmp(now);
        }
        if self.ether && self.neigh.poll_timeout().is_some_and(|d| d <= now) {
            // Datagrams whose neighbour never answered: "host unreachable" to their
            // sender, which is this host (Linux `arp_error_report`).
            let mut failed = Vec::new();
            self.neigh.on_timeout(now, &mut self.tx, &mut failed);
            for p in failed {
                self.icmp_send_error(now, p.data(), IcmpErrorKind::HostUnreachable);
            }
        }
    }
}

#[cfg(test)]
mod tests;
