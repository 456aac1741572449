//! `NetCore`: the sans-IO heart of a stack. It owns the IPv4, TCP and UDP layers, the
//! protocol demux table and the socket wait queues; the facade wraps it in one lock and
//! feeds it packets, user calls and the current time.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use ustack_ipv4::{
    ip_rcv, EchoReply, InetProtos, IpContext, IpRxMeta, IpTx, Ipv4Config, Ipv4Layer, Ipv4Repr,
    OutMeta, OutRoute, OutputError, IPPROTO_TCP, IPPROTO_UDP,
};
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::{TcpConfig, TcpLayer, TcpSegmentOut};
use ustack_udp::{UdpConfig, UdpDatagramOut, UdpLayer};

use crate::errno::ip_err;
use crate::family::Registry;
use crate::inet;
use crate::sock::{AddressFamily, SockRef, SockType, Socket};
use crate::wait::WaitQueues;

/// Configuration of a [`NetCore`]: the sysctls of each layer and the secret keying ISNs,
/// ephemeral ports and SYN cookies.
#[derive(Clone, Debug, Default)]
pub struct NetCoreConfig {
    /// IPv4/ICMP settings (`net.ipv4.*`).
    pub ip: Ipv4Config,
    /// TCP settings (`net.ipv4.tcp_*`).
    pub tcp: TcpConfig,
    /// UDP settings.
    pub udp: UdpConfig,
    /// 16 random bytes (RFC 6528 ISNs, RFC 6056 ports, RFC 4987 cookies).
    pub secret: [u8; 16],
}

#[derive(Debug, Default)]
struct PingSlot {
    reply: Option<EchoReply>,
    waker: Option<Waker>,
}

/// The sans-IO network core of one stack (Linux: the per-netns state of `net/ipv4`).
///
/// Time is passed in; nothing here blocks, spawns or reads a clock. After any call that
/// may produce packets, call [`flush`](NetCore::flush) and then [`take_tx`](NetCore::take_tx)
/// and [`take_wakers`](NetCore::take_wakers).
///
/// ```
/// use ustack_socket::{NetCore, NetCoreConfig};
/// let core = NetCore::new(NetCoreConfig::default());
/// // A fresh core has no timer armed.
/// assert!(core.poll_timeout().is_none());
/// ```
pub struct NetCore {
    /// The IPv4 layer (routing, ICMP, fragmentation).
    pub ip: Ipv4Layer,
    /// The TCP engine (Linux: `tcp_hashinfo` and every TCP socket).
    pub tcp: TcpLayer,
    /// The UDP engine (Linux: `udp_table`).
    pub udp: UdpLayer,
    /// Wait queues of every socket that has waited once.
    pub wait: WaitQueues,
    protos: InetProtos<NetCore>,
    registry: Registry,
    pub(crate) tcp_out: Vec<TcpSegmentOut>,
    local: Vec<PacketBuf>,
    looped: Vec<IpTx>,
    tcp_ev: Vec<ustack_tcp::SockId>,
    udp_ev: Vec<ustack_udp::SockId>,
    pings: HashMap<(u16, u16), PingSlot>,
    echo: Vec<EchoReply>,
    ping_seq: u16,
    local_dev: DevId,
    tproxy_tcp: Option<SockRef>,
    /// Names of the attached devices, indexed by id (Linux: `dev->name`), so that a socket
    /// call can report one without leaving the stack's lock.
    dev_names: Vec<Option<Box<str>>>,
}

impl std::fmt::Debug for NetCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetCore")
            .field("sockets_waiting", &self.wait.len())
            .field("pings", &self.pings.len())
            .finish_non_exhaustive()
    }
}

impl IpContext for NetCore {
    fn ip(&mut self) -> &mut Ipv4Layer {
        &mut self.ip
    }
    fn protos(&self) -> &InetProtos<Self> {
        &self.protos
    }
}

impl NetCore {
    /// Creates the layers and registers TCP and UDP in the protocol table
    /// (Linux: `inet_init` -> `inet_add_protocol(&tcp_protocol, IPPROTO_TCP)`, ...).
    pub fn new(cfg: NetCoreConfig) -> Self {
        let mut protos = InetProtos::new();
        inet::inet_add_protocols(&mut protos);
        let mut tcp = TcpLayer::new(cfg.tcp, cfg.secret);
        // `flush` ends every batch: one ACK per connection per batch of received segments.
        tcp.set_ack_batching(true);
        let mut ip = Ipv4Layer::new(cfg.ip);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&cfg.secret[4..12]);
        ip.seed(u64::from_le_bytes(seed) ^ 0x1f83_d9ab_fb41_bd6b);
        NetCore {
            ip,
            tcp,
            udp: UdpLayer::new(cfg.udp, cfg.secret),
            wait: WaitQueues::default(),
            protos,
            registry: Registry::linux_default(),
            tcp_out: Vec::new(),
            local: Vec::new(),
            looped: Vec::new(),
            tcp_ev: Vec::new(),
            udp_ev: Vec::new(),
            pings: HashMap::new(),
            echo: Vec::new(),
            ping_seq: 0,
            local_dev: DevId(0),
            tproxy_tcp: None,
            dev_names: Vec::new(),
        }
    }

    /// The family and (type, protocol) registries used by [`sock_create`](Self::sock_create).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Mutable registries, to register more families or protocols (Linux: `sock_register`,
    /// `inet_register_protosw`).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Creates a socket (Linux: `__sock_create` -> `net_families[family]->create` ->
    /// `inet_create`). `protocol` 0 picks the default protocol of the type.
    ///
    /// Errors: `EAFNOSUPPORT` for an unknown family, `ESOCKTNOSUPPORT` for a type the family
    /// lacks, `EPROTONOSUPPORT` for a protocol the type lacks.
    pub fn sock_create(
        &mut self,
        family: AddressFamily,
        ty: SockType,
        protocol: i32,
    ) -> io::Result<Socket> {
        let fam = self.registry.family(family)?;
        fam.create(self, ty, protocol)
    }

    /// Adds an interface: its address, the local and connected routes
    /// (Linux: `inet_insert_ifa` -> `fib_add_ifaddr`).
    pub fn add_interface(
        &mut self,
        dev: DevId,
        name: &str,
        addr: ustack_ipv4::Ipv4Cidr,
        mtu: usize,
    ) {
        self.ip.add_interface(dev, name, addr, mtu);
    }

    /// Records the transmit offload of device `dev` (`NetDevice::tso_max`; 0: none):
    /// connections routed through it then hand it super-segments and partial checksums.
    pub fn set_tso_max(&mut self, dev: DevId, tso_max: usize) {
        self.ip.set_tso_max(dev, tso_max);
    }

    /// Runs one received packet up the stack (Linux: `netif_receive_skb` -> `ip_rcv`).
    /// Packets it produces stay queued until [`flush`](Self::flush).
    pub fn receive(&mut self, now: Instant, dev: DevId, pkt: PacketBuf) {
        // Ethernet devices: the frame's header first (ARP stays in IP's neighbour code).
        let pkt = if self.ip.has_ethernet() {
            match self.ip.link_input(now, dev, pkt) {
                Some(p) => p,
                None => return,
            }
        } else {
            pkt
        };
        // Two calls rather than one on a rebound buffer: the common path hands the
        // buffer straight on without copying it to a new place first.
        if self.tproxy_tcp.is_some() || self.udp.has_transparent() {
            if let Some(p) = self.tproxy(now, dev, pkt) {
                ip_rcv(self, now, dev, p);
            }
        } else {
            ip_rcv(self, now, dev, pkt);
        }
    }

    /// Turns on transparent interception of TCP: segments to addresses that are not ours
    /// are delivered to TCP (whose catch-all listener accepts them) instead of being
    /// dropped by IP (Linux: an `nf_tproxy` rule in PREROUTING + `IP_TRANSPARENT`).
    /// `owner` is the transparent listener (set by `listen_any`); `None` turns it off.
    pub fn set_tproxy_tcp(&mut self, owner: Option<SockRef>) {
        self.tproxy_tcp = owner;
    }

    /// The transparent listener, if one is active.
    pub fn tproxy_tcp(&self) -> Option<SockRef> {
        self.tproxy_tcp
    }

    /// The PREROUTING hook: a whole (unfragmented) TCP datagram to a foreign address goes
    /// straight to `tcp_v4_rcv` while a transparent listener exists, a UDP one to the
    /// transparent UDP socket while one is open; everything else is handed back for
    /// `ip_rcv`.
    fn tproxy(&mut self, now: Instant, dev: DevId, mut pkt: PacketBuf) -> Option<PacketBuf> {
        let Ok(repr) = Ipv4Repr::parse(pkt.data()) else {
            return Some(pkt);
        };
        let tcp = repr.protocol == IPPROTO_TCP && self.tproxy_tcp.is_some();
        let udp = repr.protocol == IPPROTO_UDP && self.udp.has_transparent();
        if !(tcp || udp)
            || self.ip.is_local(repr.dst)
            || repr.more_frags
            || repr.frag_offset != 0
            || repr.dst.is_broadcast()
            || repr.dst.is_multicast()
        {
            return Some(pkt);
        }
        pkt.trim(repr.header_len + repr.payload_len);
        pkt.pull(repr.header_len)?;
        let meta = IpRxMeta {
            src: repr.src,
            dst: repr.dst,
            protocol: repr.protocol,
            ttl: repr.ttl,
            tos: repr.tos,
            dev,
            multi: false,
        };
        if tcp {
            inet::tcp_v4_rcv(self, now, &meta, pkt);
        } else {
            self.udp.input_foreign(now, &meta, pkt);
        }
        None
    }

    /// The earliest protocol deadline (reassembly, TCP timers), if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.ip.poll_timeout(), self.tcp.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.ip.poll_timeout().is_some_and(|d| d <= now) {
            self.ip.on_timeout(now);
        }
        if self.tcp.poll_timeout().is_some_and(|d| d <= now) {
            self.tcp.on_timeout(now, &mut self.tcp_out);
        }
    }

    /// Hands queued TCP segments to IP output and runs packets addressed to ourselves back
    /// through `ip_rcv` (Linux: `ip_queue_xmit`; loopback `dev_queue_xmit` ->
    /// `netif_rx`), until nothing is left. What goes out stays in the IP tx queue for
    /// [`take_tx`](Self::take_tx).
    pub fn flush(&mut self, now: Instant) {
        // Local traffic can ping-pong (data -> ACK -> window update); bound the rounds so a
        // pathological loop cannot hold the lock forever. Anything left is flushed next time.
        for _ in 0..64 {
            // The ACKs owed by the batch of input that just ended (one per connection).
            self.tcp.flush_acks(now, &mut self.tcp_out);
            let mut segs = std::mem::take(&mut self.tcp_out);
            for seg in segs.drain(..) {
                let meta = OutMeta {
                    src: Some(seg.src),
                    dst: seg.dst,
                    protocol: IPPROTO_TCP,
                    ttl: seg.ttl,
                    tos: seg.tos,
                    dont_frag: true,
                    oif: seg.oif,
                    mc_loop: false,
                    confirm_neigh: seg.confirm_neigh,
                };
                // Ports, for the rare refusal below (the segment is consumed by output).
                let ports = seg.pkt.data().get(..4).map(|p| [p[0], p[1], p[2], p[3]]);
                match self.ip.output(now, &meta, seg.pkt) {
                    Ok(()) => {}
                    Err(OutputError::MessageTooLong) => {
                        if let Some(p) = ports {
                            self.tcp_too_big(now, seg.src, seg.dst, seg.oif, p);
                        }
                    }
                    Err(e) => {
                        tracing::trace!(dst = %seg.dst, err = ?e, "tcp segment not routed");
                    }
                }
            }
            // Give the (now empty) buffer back to keep its capacity.
            if self.tcp_out.is_empty() {
                self.tcp_out = segs;
            }
            self.ip.take_local(&mut self.local);
            self.ip.take_looped(&mut self.looped);
            if self.local.is_empty() && self.tcp_out.is_empty() && self.looped.is_empty() {
                return;
            }
            // Our own multicasts and broadcasts, as if received on the device they left.
            let mut looped = std::mem::take(&mut self.looped);
            for t in looped.drain(..) {
                ip_rcv(self, now, t.dev, t.pkt);
            }
            self.looped = looped;
            let mut local = std::mem::take(&mut self.local);
            for pkt in local.drain(..) {
                let dev = self.local_dev;
                ip_rcv(self, now, dev, pkt);
            }
            self.local = local;
        }
    }

    /// IP refused a TCP segment with DF (ports `p` from its header) as larger than the
    /// route MTU: the path MTU dropped under the connection (Linux re-reads `dst_mtu` in
    /// `tcp_current_mss` on every write). The connection shrinks its MSS to the current
    /// route MTU and resends at the smaller size (into `tcp_out`, sent by the next round
    /// of [`flush`](Self::flush)) instead of stalling.
    #[cold]
    fn tcp_too_big(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        oif: Option<DevId>,
        p: [u8; 4],
    ) {
        let local = SocketAddrV4::new(src, u16::from_be_bytes([p[0], p[1]]));
        let remote = SocketAddrV4::new(dst, u16::from_be_bytes([p[2], p[3]]));
        let mtu = self.route_mtu(now, dst, oif);
        let shrunk = self
            .tcp
            .output_too_big(now, local, remote, mtu, &mut self.tcp_out);
        tracing::trace!(%local, %remote, mtu, shrunk, "tcp segment larger than the path MTU");
    }

    /// True when packets wait for [`flush`](Self::flush).
    pub fn has_pending(&self) -> bool {
        !self.tcp_out.is_empty()
            || !self.local.is_empty()
            || !self.looped.is_empty()
            || self.tcp.has_owed_acks()
    }

    /// Drains packets ready for the devices.
    pub fn take_tx(&mut self, out: &mut Vec<IpTx>) {
        self.ip.take_tx(out);
    }

    /// Collects the wakers of every socket whose readiness changed and of every ping whose
    /// reply arrived (Linux: `sk_data_ready` / `sk_write_space` / `sk_state_change`). Wake
    /// them after releasing the lock around the core.
    pub fn take_wakers(&mut self, out: &mut Vec<Waker>) {
        self.tcp.drain_events(&mut self.tcp_ev);
        for id in self.tcp_ev.drain(..) {
            self.wait.wake(SockRef::Tcp(id), out);
        }
        self.udp.drain_events(&mut self.udp_ev);
        for id in self.udp_ev.drain(..) {
            self.wait.wake(SockRef::Udp(id), out);
        }
        self.ip.take_arp_wakers(out);
        self.ip.take_echo_replies(&mut self.echo);
        for reply in self.echo.drain(..) {
            if let Some(slot) = self.pings.get_mut(&(reply.ident, reply.seq)) {
                if slot.reply.is_none() {
                    slot.reply = Some(reply);
                    if let Some(w) = slot.waker.take() {
                        out.push(w);
                    }
                }
            }
        }
    }

    /// Routes `dst` (Linux: `ip_route_output_key`), through device `oif` only when given
    /// (a socket bound to it), giving the source address and MTU.
    pub fn route(&self, now: Instant, dst: Ipv4Addr, oif: Option<DevId>) -> io::Result<OutRoute> {
        self.ip.route_output_dev(dst, oif, now).map_err(ip_err)
    }

    /// The MTU towards `dst` (route MTU, lowered by path MTU discovery), through `oif`
    /// only when given, or 576 when there is no route.
    pub fn route_mtu(&self, now: Instant, dst: Ipv4Addr, oif: Option<DevId>) -> usize {
        self.ip
            .route_output_dev(dst, oif, now)
            .map(|r| r.mtu)
            .unwrap_or(576)
    }

    /// Sends a UDP datagram built by the UDP engine (Linux: `udp_send_skb` ->
    /// `ip_send_skb`).
    pub fn output_udp(&mut self, now: Instant, dgram: UdpDatagramOut) -> io::Result<()> {
        let meta = OutMeta {
            src: Some(dgram.src),
            dst: dgram.dst,
            protocol: IPPROTO_UDP,
            ttl: dgram.ttl,
            tos: dgram.tos,
            dont_frag: false,
            oif: dgram.oif,
            mc_loop: dgram.mc_loop,
            confirm_neigh: false,
        };
        self.ip.output(now, &meta, dgram.pkt).map_err(ip_err)
    }

    /// Sends an ICMP echo request to `dst` and returns the key to poll for its reply.
    pub fn ping_start(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        ident: u16,
        payload: &[u8],
    ) -> io::Result<(u16, u16)> {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let key = (ident, self.ping_seq);
        self.ip
            .send_echo_request(now, dst, key.0, key.1, payload)
            .map_err(ip_err)?;
        self.pings.insert(key, PingSlot::default());
        Ok(key)
    }

    /// Polls for the reply of a ping started with [`ping_start`](Self::ping_start).
    pub fn poll_ping(&mut self, key: (u16, u16), cx: &mut Context<'_>) -> Poll<EchoReply> {
        match self.pings.get_mut(&key) {
            Some(slot) => match slot.reply.take() {
                Some(r) => {
                    self.pings.remove(&key);
                    Poll::Ready(r)
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            None => Poll::Pending,
        }
    }

    /// Collects every stored waker: sockets and pings (for shutdown).
    pub fn take_all_wakers(&mut self, out: &mut Vec<Waker>) {
        self.wait.wake_all(out);
        out.extend(self.pings.values_mut().filter_map(|p| p.waker.take()));
    }

    /// Forgets a ping (timed out or cancelled).
    pub fn ping_cancel(&mut self, key: (u16, u16)) {
        self.pings.remove(&key);
    }

    /// Sets the device id that locally delivered packets are said to arrive on (Linux: `lo`).
    pub fn set_local_dev(&mut self, dev: DevId) {
        self.local_dev = dev;
    }

    /// Forgets device `dev` (Linux `unregister_netdevice`): see
    /// [`Ipv4Layer::remove_device`]. Sockets stay: bound to one of its addresses they no
    /// longer receive, bound to the device (`SO_BINDTODEVICE`) or routed only through it
    /// they fail to send with "network unreachable", and connections through it time
    /// out, as in Linux, unless another route takes their traffic.
    pub fn remove_device(&mut self, dev: DevId) {
        self.ip.remove_device(dev);
        if let Some(n) = self.dev_names.get_mut(usize::from(dev.0)) {
            *n = None;
        }
    }

    /// Records the name of device `dev`, attached now.
    pub fn set_dev_name(&mut self, dev: DevId, name: &str) {
        let i = usize::from(dev.0);
        if self.dev_names.len() <= i {
            self.dev_names.resize(i + 1, None);
        }
        self.dev_names[i] = Some(name.into());
    }

    /// The name of attached device `dev`; `None` for an id never attached or detached.
    pub fn dev_name(&self, dev: DevId) -> Option<&str> {
        self.dev_names.get(usize::from(dev.0))?.as_deref()
    }
}
