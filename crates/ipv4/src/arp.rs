//! ARP (RFC 826) and the neighbour table for devices that carry Ethernet frames (Linux:
//! `net/ipv4/arp.c` and `net/core/neighbour.c`, sans-IO).
//!
//! IP output hands a datagram and its next hop to [`NeighTable::output`]: with the next
//! hop's Ethernet address known the datagram leaves at once in a frame; otherwise it waits
//! in the entry's bounded queue while requests are broadcast (one per `retrans_time`, at
//! most `mcast_solicit`), and once a reply comes everything queued leaves. An entry that
//! gets no answer goes `Failed` and its queued datagrams come back to IP, which tells the
//! sender with an ICMP "host unreachable" of its own (Linux `arp_error_report`), so a
//! connect to an absent neighbour fails within about three seconds.
//!
//! The states are Linux's NUD states without the timers a kernel runs for them all the
//! time: `Reachable` lasts `reachable_time` after a reply (checked when the entry is
//! used), then a use moves it to `Delay`; `delay_first_probe` later, with no reply
//! meanwhile, up to `ucast_solicit` unicast requests are sent (`Probe`) before it fails.
//! A transport that has proof that the neighbour receives our frames confirms it
//! ([`NeighTable::confirm`]; TCP on an ACK that makes progress, Linux `dst_confirm`), so a
//! neighbour that a TCP sender is talking to is not probed; one that only sends to us
//! (a pure TCP receiver, UDP) is probed once per `reachable_time + delay_first_probe`.
//!
//! Address conflict detection (RFC 5227): [`NeighTable::probe`] asks from 0.0.0.0 whether
//! anyone has an address, and [`NeighTable::probe_end`] says whether someone showed that
//! it does; [`NeighTable::announce`] claims an address. (A DHCP client uses all three.)
//! Ongoing defence (RFC 5227 2.4): an ARP message from another Ethernet address with one
//! of our addresses as its sender is a conflict. The table answers the first with an
//! announcement (policy (b): at most one per [`DEFEND_INTERVAL`] and address) and logs
//! every one ([`NeighTable::conflicts`], the last [`CONFLICT_LOG`]); a conflict within
//! the interval after a defence is logged as not defended, the signal for whoever
//! configured the address (a DHCP client gives a lease up on it) to stop using it. The
//! message itself teaches the table nothing and is not answered.
//!
//! Hostile input: only ARP aimed at one of our addresses creates an entry (Linux's
//! `arp_accept = 0`: unsolicited replies and gratuitous ARP only update entries that
//! exist, and a full table learns nothing from them); the table holds at most
//! `max_entries` (full: failed, then least recently used resolved entries make room for a
//! destination we send to; a table of unresolved entries refuses new ones), each queue
//! `queue_len` datagrams and all queues together [`MAX_QUEUED`].

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::task::Waker;
use std::time::{Duration, Instant};

use ustack_netdev::ether::{ETH_HLEN, ETH_P_ARP, ETH_P_IP, ETH_ZLEN};
use ustack_netdev::{DevId, MacAddr, PacketBuf};

use crate::layer::IpTx;

/// Length of an Ethernet/IPv4 ARP message.
pub const ARP_LEN: usize = 28;
/// ARP request opcode.
pub const ARPOP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const ARPOP_REPLY: u16 = 2;
/// Datagrams waiting for resolution, over all entries.
pub const MAX_QUEUED: usize = 1024;
/// Least time between two defences of one address (RFC 5227 `DEFEND_INTERVAL`).
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);
/// Address conflicts remembered (the most recent).
pub const CONFLICT_LOG: usize = 32;
/// Tasks waiting for an address conflict, at most: one per DHCP client, so one per device
/// at most in practice. Past it the oldest is woken early and registers again (more
/// waiters than this would keep waking each other).
const MAX_CONFLICT_WAITERS: usize = 1024;

/// Another host claimed one of our addresses (RFC 5227 2.4): an ARP message with the
/// address as its sender, from another Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrConflict {
    /// Increases by one with each conflict (the first is 1).
    pub seq: u64,
    /// The device it arrived on.
    pub dev: DevId,
    /// Our address.
    pub addr: Ipv4Addr,
    /// The other host's Ethernet address.
    pub mac: MacAddr,
    /// When.
    pub at: Instant,
    /// We answered with an announcement. False when we had defended the address within
    /// [`DEFEND_INTERVAL`]: the other host insists, and RFC 5227 2.4 (b) says to stop
    /// using the address.
    pub defended: bool,
}

/// An Ethernet/IPv4 ARP message (RFC 826).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// [`ARPOP_REQUEST`] or [`ARPOP_REPLY`].
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    if let Some(s) = b.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    MacAddr(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        None => Ipv4Addr::UNSPECIFIED,
    }
}

impl ArpPacket {
    /// Parses an ARP message for Ethernet (hardware type 1, length 6) and IPv4 (protocol
    /// 0x0800, length 4) with a request or reply opcode; anything else is `None`.
    pub fn parse(b: &[u8]) -> Option<ArpPacket> {
        let h = b.get(..ARP_LEN)?;
        if h[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return None;
        }
        let op = u16::from_be_bytes([h[6], h[7]]);
        if op != ARPOP_REQUEST && op != ARPOP_REPLY {
            return None;
        }
        Some(ArpPacket {
            op,
            sha: mac_at(h, 8),
            spa: ip_at(h, 14),
            tha: mac_at(h, 18),
            tpa: ip_at(h, 24),
        })
    }

    /// Writes the message into the first [`ARP_LEN`] bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) {
        let Some(h) = b.get_mut(..ARP_LEN) else {
            return;
        };
        h[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        h[6..8].copy_from_slice(&self.op.to_be_bytes());
        h[8..14].copy_from_slice(&self.sha.0);
        h[14..18].copy_from_slice(&self.spa.octets());
        h[18..24].copy_from_slice(&self.tha.0);
        h[24..28].copy_from_slice(&self.tpa.octets());
    }
}

/// Writes an Ethernet header in front of `pkt`'s data (into its headroom).
pub fn push_ether(pkt: &mut PacketBuf, dst: MacAddr, src: MacAddr, ethertype: u16) {
    let h = pkt.push(ETH_HLEN);
    h[0..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// A whole ARP frame, padded to the Ethernet minimum.
fn arp_frame(dst: MacAddr, src: MacAddr, msg: &ArpPacket) -> PacketBuf {
    let mut p = PacketBuf::with_payload_capacity(ETH_ZLEN);
    let body = p.put(ETH_ZLEN - ETH_HLEN);
    body.fill(0);
    msg.emit(body);
    push_ether(&mut p, dst, src, ETH_P_ARP);
    p
}

/// Neighbour table tunables (Linux: `net.ipv4.neigh.default.*`). `Default` gives Linux's
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighConfig {
    /// Entries at most (`gc_thresh3`, 1024).
    pub max_entries: usize,
    /// Datagrams queued per unresolved entry; the oldest is dropped beyond it
    /// (`unres_qlen`, 101).
    pub queue_len: usize,
    /// Between two requests for one entry (`retrans_time_ms`, 1 s).
    pub retrans_time: Duration,
    /// Broadcast requests before an unresolved entry fails (`mcast_solicit`, 3).
    pub mcast_solicit: u32,
    /// Unicast requests before a probed entry fails (`ucast_solicit`, 3).
    pub ucast_solicit: u32,
    /// How long a reply keeps an entry reachable (`base_reachable_time_ms`, 30 s; Linux
    /// randomises it between half and one and a half times that).
    pub reachable_time: Duration,
    /// How long a used stale entry waits for a confirmation before it is probed
    /// (`delay_first_probe_time`, 5 s).
    pub delay_first_probe: Duration,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            max_entries: 1024,
            queue_len: 101,
            retrans_time: Duration::from_secs(1),
            mcast_solicit: 3,
            ucast_solicit: 3,
            reachable_time: Duration::from_secs(30),
            delay_first_probe: Duration::from_secs(5),
        }
    }
}

/// A neighbour entry's state (Linux `NUD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighState {
    /// Requests sent, no answer yet; datagrams wait.
    Incomplete,
    /// Answered within `reachable_time`.
    Reachable,
    /// Address known but not confirmed lately (learnt from a request, or aged).
    Stale,
    /// Used while stale: waiting `delay_first_probe` before probing.
    Delay,
    /// Unicast requests sent to confirm the address.
    Probe,
    /// No answer: datagrams to it are dropped with "host unreachable" until it is tried
    /// again by the next datagram.
    Failed,
    /// Set by hand ([`NeighTable::add_permanent`], `ip neigh add ... nud permanent`):
    /// never probed, aged, evicted or changed by ARP.
    Permanent,
}

/// One neighbour, as `ip neigh` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighInfo {
    /// The device it is reached through.
    pub dev: DevId,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Its Ethernet address, once known.
    pub mac: Option<MacAddr>,
    /// Its state.
    pub state: NeighState,
}

/// ARP and neighbour counters (Linux: `/proc/net/stat/arp_cache` and the device's
/// `rx_dropped` reasons).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpStats {
    /// Requests received (for any address).
    pub requests_in: u64,
    /// Replies received.
    pub replies_in: u64,
    /// Requests sent (broadcast and unicast probes).
    pub requests_out: u64,
    /// Replies sent.
    pub replies_out: u64,
    /// Resolutions that failed (`res_failed`).
    pub resolve_failed: u64,
    /// Datagrams dropped while unresolved: queue full, or resolution failed
    /// (`unresolved_discards`).
    pub unres_discards: u64,
    /// Datagrams dropped because the table was full of unresolved entries
    /// (`table_fulls`).
    pub table_full: u64,
    /// ARP messages ignored as malformed or impossible (a group sender address, ...).
    pub rx_bad: u64,
    /// Frames for another Ethernet address, dropped (`PACKET_OTHERHOST`).
    pub rx_other_host: u64,
    /// Frames of an EtherType other than IPv4 and ARP, dropped.
    pub rx_unknown_type: u64,
    /// ARP messages from another host with one of our addresses as sender (RFC 5227
    /// address conflicts).
    pub conflicts: u64,
    /// Announcements sent to defend an address (at most one per address per 10 s).
    pub defences: u64,
}

#[derive(Debug)]
struct Entry {
    state: NeighState,
    /// Meaningful once the state is not `Incomplete` or `Failed`.
    mac: MacAddr,
    timer: Option<Instant>,
    probes: u32,
    /// The last reply or transport confirmation (start of `Reachable`); `None` before
    /// the first.
    confirmed: Option<Instant>,
    /// The last datagram sent to it (eviction order).
    used: Instant,
    /// The source address of our requests.
    src: Ipv4Addr,
    queue: VecDeque<PacketBuf>,
}

/// The neighbour table of every Ethernet device of a stack. See the module documentation.
#[derive(Debug)]
pub struct NeighTable {
    cfg: NeighConfig,
    /// Our Ethernet address per Ethernet device.
    macs: Vec<(DevId, MacAddr)>,
    entries: HashMap<(DevId, Ipv4Addr), Entry>,
    /// Datagrams in all queues.
    queued: usize,
    /// No entry timer is earlier (may be earlier than any: then a pass finds nothing).
    next_timer: Option<Instant>,
    /// Addresses being probed before use (RFC 5227): device, address, and whether
    /// another host showed that it uses (or is probing for) it.
    probing: Vec<(DevId, Ipv4Addr, bool)>,
    /// The last defence of each of our addresses, within [`DEFEND_INTERVAL`] (older ones
    /// are dropped when a conflict comes: at most one per address in use).
    defended: Vec<(DevId, Ipv4Addr, Instant)>,
    /// The last [`CONFLICT_LOG`] conflicts, oldest first.
    conflicts: VecDeque<AddrConflict>,
    conflict_seq: u64,
    /// Tasks waiting for the next conflict, and whether one came since they registered.
    conflict_wakers: Vec<Waker>,
    conflict_new: bool,
    stats: ArpStats,
}

/// Addresses probed at once at most (each probe is one caller waiting for its answer).
pub const MAX_PROBING: usize = 64;

impl NeighTable {
    /// An empty table.
    pub fn new(cfg: NeighConfig) -> Self {
        NeighTable {
            cfg,
            macs: Vec::new(),
            entries: HashMap::new(),
            queued: 0,
            next_timer: None,
            probing: Vec::new(),
            defended: Vec::new(),
            conflicts: VecDeque::new(),
            conflict_seq: 0,
            conflict_wakers: Vec::new(),
            conflict_new: false,
            stats: ArpStats::default(),
        }
    }

    /// Makes `dev` an Ethernet device with our address `mac` on it.
    pub fn set_mac(&mut self, dev: DevId, mac: MacAddr) {
        self.macs.retain(|(d, _)| *d != dev);
        self.macs.push((dev, mac));
    }

    /// Forgets device `dev` (Linux `neigh_ifdown`): its entries go, with the datagrams
    /// they held, and it is no longer an Ethernet device.
    pub fn remove_dev(&mut self, dev: DevId) {
        self.macs.retain(|(d, _)| *d != dev);
        self.probing.retain(|p| p.0 != dev);
        let mut dropped = 0;
        self.entries.retain(|(d, _), e| {
            if *d == dev {
                dropped += e.queue.len();
            }
            *d != dev
        });
        self.queued -= dropped;
        self.next_timer = self.entries.values().filter_map(|e| e.timer).min();
    }

    /// Our Ethernet address on `dev`; `None` for a device without a link-layer header.
    pub fn mac_of(&self, dev: DevId) -> Option<MacAddr> {
        self.macs.iter().find(|(d, _)| *d == dev).map(|(_, m)| *m)
    }

    /// True when any device carries Ethernet.
    pub fn any(&self) -> bool {
        !self.macs.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> ArpStats {
        self.stats
    }

    pub(crate) fn count_other_host(&mut self) {
        self.stats.rx_other_host += 1;
    }

    pub(crate) fn count_unknown_type(&mut self) {
        self.stats.rx_unknown_type += 1;
    }

    pub(crate) fn count_bad(&mut self) {
        self.stats.rx_bad += 1;
    }

    /// Every entry as it stands at `now`, sorted by device and address: a reachable entry
    /// whose `reachable_time` has run out shows as `Stale` (as `ip neigh` shows it; the
    /// entry itself moves on when it is next used).
    pub fn neighbours_at(&self, now: Instant) -> Vec<NeighInfo> {
        let mut v = self.neighbours();
        for n in &mut v {
            let aged = self.entries.get(&(n.dev, n.addr)).is_some_and(|e| {
                e.confirmed
                    .is_none_or(|c| now >= c + self.cfg.reachable_time)
            });
            if n.state == NeighState::Reachable && aged {
                n.state = NeighState::Stale;
            }
        }
        v
    }

    /// Every entry, sorted by device and address.
    pub fn neighbours(&self) -> Vec<NeighInfo> {
        let mut v: Vec<NeighInfo> = self
            .entries
            .iter()
            .map(|((dev, addr), e)| NeighInfo {
                dev: *dev,
                addr: *addr,
                mac: match e.state {
                    NeighState::Incomplete | NeighState::Failed => None,
                    _ => Some(e.mac),
                },
                state: e.state,
            })
            .collect();
        v.sort_by_key(|n| (n.dev, n.addr));
        v
    }

    /// Sets a permanent entry: `addr` on `dev` is `mac` (Linux `ip neigh replace ADDR
    /// lladdr MAC dev DEV nud permanent`), replacing any entry; datagrams waiting for it
    /// leave now (to `out`). Permanent entries do not count against `max_entries`' eviction
    /// (they are never evicted) but do take room. False when `dev` has no Ethernet
    /// address, `mac` is a group address, or the table is full of entries that cannot go.
    pub fn add_permanent(
        &mut self,
        dev: DevId,
        addr: Ipv4Addr,
        mac: MacAddr,
        out: &mut Vec<IpTx>,
    ) -> bool {
        let Some(our) = self.mac_of(dev) else {
            return false;
        };
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return false;
        }
        let key = (dev, addr);
        if !self.entries.contains_key(&key) && !self.make_room() {
            return false;
        }
        let e = self.entries.entry(key).or_insert_with(|| Entry {
            state: NeighState::Permanent,
            mac,
            timer: None,
            probes: 0,
            confirmed: None,
            used: Instant::now(),
            src: Ipv4Addr::UNSPECIFIED,
            queue: VecDeque::new(),
        });
        e.state = NeighState::Permanent;
        e.mac = mac;
        e.timer = None;
        let waiting = std::mem::take(&mut e.queue);
        self.queued -= waiting.len();
        for mut pkt in waiting {
            push_ether(&mut pkt, mac, our, ETH_P_IP);
            out.push(IpTx { dev, pkt });
        }
        true
    }

    /// Removes the entry for `addr` on `dev`, whatever its state (`ip neigh del`); what
    /// waited for it is dropped. False when there was none.
    pub fn remove(&mut self, dev: DevId, addr: Ipv4Addr) -> bool {
        match self.entries.remove(&(dev, addr)) {
            Some(e) => {
                self.queued -= e.queue.len();
                true
            }
            None => false,
        }
    }

    /// The earliest instant [`on_timeout`](Self::on_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer
    }

    fn arm(&mut self, at: Instant) {
        self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
    }

    /// Sends IPv4 datagram `pkt` through Ethernet device `dev` to the unicast `next_hop`
    /// (Linux `neigh_resolve_output`): in a frame to the neighbour's address once known.
    /// `src` is the source address for a request this sends. Frames go to `out`.
    pub fn output(
        &mut self,
        now: Instant,
        dev: DevId,
        next_hop: Ipv4Addr,
        src: Ipv4Addr,
        mut pkt: PacketBuf,
        out: &mut Vec<IpTx>,
    ) {
        let Some(our) = self.mac_of(dev) else {
            return;
        };
        let key = (dev, next_hop);
        if !self.entries.contains_key(&key) && !self.make_room() {
            self.stats.table_full += 1;
            return;
        }
        let cfg = &self.cfg;
        let e = self.entries.entry(key).or_insert_with(|| Entry {
            state: NeighState::Failed,
            mac: MacAddr::ZERO,
            timer: None,
            probes: 0,
            confirmed: None,
            used: now,
            src,
            queue: VecDeque::new(),
        });
        e.used = now;
        let mut timer = None;
        let mut request = None;
        match e.state {
            NeighState::Permanent => {}
            NeighState::Reachable if e.confirmed.is_some_and(|c| now < c + cfg.reachable_time) => {}
            NeighState::Reachable | NeighState::Stale => {
                e.state = NeighState::Delay;
                let t = now + cfg.delay_first_probe;
                e.timer = Some(t);
                timer = Some(t);
            }
            NeighState::Delay | NeighState::Probe => {}
            NeighState::Failed => {
                // (Re)start resolution: the first request now.
                e.state = NeighState::Incomplete;
                e.probes = 1;
                e.src = src;
                let t = now + cfg.retrans_time;
                e.timer = Some(t);
                timer = Some(t);
                request = Some(MacAddr::BROADCAST);
            }
            NeighState::Incomplete => {}
        }
        if e.state == NeighState::Incomplete {
            // Wait for the answer; the oldest waiting datagram makes room (Linux).
            if e.queue.len() >= cfg.queue_len || self.queued >= MAX_QUEUED {
                if e.queue.pop_front().is_some() {
                    self.queued -= 1;
                }
                self.stats.unres_discards += 1;
            }
            if e.queue.len() < cfg.queue_len && self.queued < MAX_QUEUED {
                e.queue.push_back(pkt);
                self.queued += 1;
            }
        } else {
            push_ether(&mut pkt, e.mac, our, ETH_P_IP);
            out.push(IpTx { dev, pkt });
        }
        if let Some(to) = request {
            self.solicit(dev, next_hop, to, out);
        }
        if let Some(t) = timer {
            self.arm(t);
        }
    }

    /// Room for one more entry: a failed entry, else the least recently used resolved
    /// one, goes. False when every entry is being resolved.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.cfg.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.state, NeighState::Incomplete | NeighState::Permanent))
            .min_by_key(|(_, e)| (e.state != NeighState::Failed, e.used))
            .map(|(k, _)| *k);
        match victim.and_then(|k| self.entries.remove(&k)) {
            Some(e) => {
                self.queued -= e.queue.len();
                true
            }
            None => false,
        }
    }

    /// Announces that `addr` is ours on `dev` (RFC 5227 2.3 ARP announcement: a broadcast
    /// request with sender and target address both `addr`), so that neighbours with an
    /// entry for it, resolved or still unanswered, take our Ethernet address (Linux's
    /// `arp_accept = 0` updates existing entries from it). A DHCP client sends one for a
    /// new lease (RFC 2131 4.4.1). Nothing for a device without Ethernet.
    pub fn announce(&mut self, dev: DevId, addr: Ipv4Addr, out: &mut Vec<IpTx>) {
        self.request(dev, MacAddr::BROADCAST, addr, addr, out);
    }

    /// Sends an ARP probe for `addr` on `dev` (RFC 5227 2.1.1: a broadcast request from
    /// sender address 0.0.0.0, so that nobody's cache learns from it) and watches for
    /// another host using the address: any ARP message with `addr` as its sender, or a
    /// probe for it from another Ethernet address, until [`probe_end`](Self::probe_end).
    /// False when the device carries no Ethernet or [`MAX_PROBING`] probes are running.
    pub fn probe(&mut self, dev: DevId, addr: Ipv4Addr, out: &mut Vec<IpTx>) -> bool {
        if self.mac_of(dev).is_none() {
            return false;
        }
        if !self.probing.iter().any(|p| p.0 == dev && p.1 == addr) {
            if self.probing.len() >= MAX_PROBING {
                return false;
            }
            self.probing.push((dev, addr, false));
        }
        self.request(dev, MacAddr::BROADCAST, Ipv4Addr::UNSPECIFIED, addr, out);
        true
    }

    /// Stops watching `addr` on `dev`; true when another host showed it uses the address
    /// since the first [`probe`](Self::probe).
    pub fn probe_end(&mut self, dev: DevId, addr: Ipv4Addr) -> bool {
        match self.probing.iter().position(|p| p.0 == dev && p.1 == addr) {
            Some(i) => self.probing.swap_remove(i).2,
            None => false,
        }
    }

    /// Sends a request for `target` on `dev` to `to` (broadcast, or the known address
    /// when probing), from the entry's source address.
    fn solicit(&mut self, dev: DevId, target: Ipv4Addr, to: MacAddr, out: &mut Vec<IpTx>) {
        if let Some(src) = self.entries.get(&(dev, target)).map(|e| e.src) {
            self.request(dev, to, src, target, out);
        }
    }

    /// Sends an ARP request from `spa` for `tpa` on `dev` to Ethernet address `to`
    /// (every request this table sends: resolution, probes, announcements).
    fn request(
        &mut self,
        dev: DevId,
        to: MacAddr,
        spa: Ipv4Addr,
        tpa: Ipv4Addr,
        out: &mut Vec<IpTx>,
    ) {
        let Some(our) = self.mac_of(dev) else {
            return;
        };
        let msg = ArpPacket {
            op: ARPOP_REQUEST,
            sha: our,
            spa,
            tha: MacAddr::ZERO,
            tpa,
        };
        out.push(IpTx {
            dev,
            pkt: arp_frame(to, our, &msg),
        });
        self.stats.requests_out += 1;
    }

    /// The conflicts remembered (at most [`CONFLICT_LOG`], oldest first).
    pub fn conflicts(&self) -> impl Iterator<Item = &AddrConflict> {
        self.conflicts.iter()
    }

    /// The first conflict after sequence number `after` about `addr` on `dev` that was
    /// not defended (see [`AddrConflict::defended`]); without one, `waker` is woken at the
    /// next conflict of any address (through [`take_wakers`](Self::take_wakers)).
    pub fn poll_lost(
        &mut self,
        dev: DevId,
        addr: Ipv4Addr,
        after: u64,
        waker: &Waker,
    ) -> Option<AddrConflict> {
        let lost = self
            .conflicts
            .iter()
            .find(|c| c.seq > after && c.dev == dev && c.addr == addr && !c.defended);
        if let Some(c) = lost {
            return Some(*c);
        }
        if !self.conflict_wakers.iter().any(|w| w.will_wake(waker)) {
            if self.conflict_wakers.len() >= MAX_CONFLICT_WAITERS {
                // The oldest waiter is woken early and registers again.
                let w = self.conflict_wakers.remove(0);
                w.wake();
            }
            self.conflict_wakers.push(waker.clone());
        }
        None
    }

    /// The sequence number of the last conflict (0 before the first).
    pub fn conflict_seq(&self) -> u64 {
        self.conflict_seq
    }

    /// Moves the wakers of tasks waiting for a conflict to `out` when one came.
    pub fn take_wakers(&mut self, out: &mut Vec<Waker>) {
        if self.conflict_new {
            self.conflict_new = false;
            out.append(&mut self.conflict_wakers);
        }
    }

    /// Another host (`mac`) claims our address `addr` on `dev`: defend it with an
    /// announcement unless we did within [`DEFEND_INTERVAL`], and log the conflict.
    #[cold]
    fn conflict(
        &mut self,
        now: Instant,
        dev: DevId,
        addr: Ipv4Addr,
        mac: MacAddr,
        out: &mut Vec<IpTx>,
    ) {
        self.stats.conflicts += 1;
        self.defended
            .retain(|d| now.saturating_duration_since(d.2) < DEFEND_INTERVAL);
        let recent = self.defended.iter().any(|d| d.0 == dev && d.1 == addr);
        if !recent {
            // At most one warning per address per interval, however many claims come.
            tracing::warn!(dev = dev.0, %addr, other = %mac,
                "address conflict: another host claims our address; defending it");
            self.defended.push((dev, addr, now));
            self.stats.defences += 1;
            self.announce(dev, addr, out);
        } else {
            tracing::debug!(dev = dev.0, %addr, other = %mac, "address conflict after a defence");
        }
        self.conflict_seq += 1;
        if self.conflicts.len() >= CONFLICT_LOG {
            self.conflicts.pop_front();
        }
        self.conflicts.push_back(AddrConflict {
            seq: self.conflict_seq,
            dev,
            addr,
            mac,
            at: now,
            defended: !recent,
        });
        self.conflict_new = true;
    }

    /// Processes a received ARP message on `dev` (Linux `arp_process`). `ours`: its
    /// target address is one of `dev`'s addresses; `from_ours`: its sender address is
    /// (another host claims it: a conflict, see the module documentation); `to_us`: the
    /// frame was sent to our Ethernet address (not broadcast). Answers requests for our
    /// addresses, learns the sender of such a request, and updates the sender's entry if
    /// there is one (a reply to us confirms it); queued datagrams leave once their
    /// neighbour is known. Frames go to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn input(
        &mut self,
        now: Instant,
        dev: DevId,
        msg: &ArpPacket,
        ours: bool,
        from_ours: bool,
        to_us: bool,
        out: &mut Vec<IpTx>,
    ) {
        let Some(our) = self.mac_of(dev) else {
            return;
        };
        if msg.op == ARPOP_REQUEST {
            self.stats.requests_in += 1;
        } else {
            self.stats.replies_in += 1;
        }
        if msg.sha.is_multicast()
            || msg.sha == MacAddr::ZERO
            || msg.sha == our
            || msg.spa.is_multicast()
            || msg.spa.is_broadcast()
            || msg.tpa.is_multicast()
        {
            self.stats.rx_bad += 1;
            return;
        }
        if !self.probing.is_empty() {
            // RFC 5227 2.1.1: a conflict is a message from the address, or another
            // host's probe for it.
            for p in self.probing.iter_mut().filter(|p| p.0 == dev) {
                let probe_for_it =
                    msg.op == ARPOP_REQUEST && msg.spa.is_unspecified() && msg.tpa == p.1;
                if msg.spa == p.1 || probe_for_it {
                    p.2 = true;
                }
            }
        }
        if from_ours {
            self.conflict(now, dev, msg.spa, msg.sha, out);
            return;
        }
        let request_for_us = msg.op == ARPOP_REQUEST && ours;
        if request_for_us {
            // A probe (RFC 5227, sender 0.0.0.0) is answered to the prober's address too.
            let reply = ArpPacket {
                op: ARPOP_REPLY,
                sha: our,
                spa: msg.tpa,
                tha: msg.sha,
                tpa: msg.spa,
            };
            out.push(IpTx {
                dev,
                pkt: arp_frame(msg.sha, our, &reply),
            });
            self.stats.replies_out += 1;
        }
        if msg.spa.is_unspecified() {
            return;
        }
        let key = (dev, msg.spa);
        // A reply sent to us confirms; anything else about the sender makes it stale.
        let confirmed = msg.op == ARPOP_REPLY && to_us;
        if !self.entries.contains_key(&key) {
            // Learn only from those asking us (they are about to talk to us), and only
            // into free room: a flood of requests costs no eviction scans (the entry is
            // made when we send to them).
            if !request_for_us || self.entries.len() >= self.cfg.max_entries {
                return;
            }
            self.entries.insert(
                key,
                Entry {
                    state: NeighState::Stale,
                    mac: msg.sha,
                    timer: None,
                    probes: 0,
                    confirmed: None,
                    used: now,
                    src: msg.tpa,
                    queue: VecDeque::new(),
                },
            );
            return;
        }
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if e.state == NeighState::Permanent {
            return;
        }
        let known = !matches!(e.state, NeighState::Incomplete | NeighState::Failed);
        if confirmed {
            e.state = NeighState::Reachable;
            e.confirmed = Some(now);
            e.timer = None;
        } else if !known || e.mac != msg.sha {
            e.state = NeighState::Stale;
            e.timer = None;
        }
        e.mac = msg.sha;
        e.probes = 0;
        let mac = e.mac;
        let waiting = std::mem::take(&mut e.queue);
        self.queued -= waiting.len();
        for mut pkt in waiting {
            push_ether(&mut pkt, mac, our, ETH_P_IP);
            out.push(IpTx { dev, pkt });
        }
    }

    /// Confirms that the neighbour `addr` on `dev` receives our frames (Linux
    /// `neigh_confirm`, fed by a transport's `dst_confirm`): a resolved entry becomes
    /// `Reachable` for another `reachable_time`, and one waiting to be probed or being
    /// probed is not probed (further). Unresolved, failed, permanent and unknown entries
    /// are left as they are: only an ARP reply gives an address.
    pub fn confirm(&mut self, now: Instant, dev: DevId, addr: Ipv4Addr) {
        let Some(e) = self.entries.get_mut(&(dev, addr)) else {
            return;
        };
        match e.state {
            NeighState::Reachable | NeighState::Stale | NeighState::Delay | NeighState::Probe => {
                e.state = NeighState::Reachable;
                e.confirmed = Some(now);
                e.probes = 0;
                // A pending delay or probe timer has nothing left to do; the table's
                // next wake-up may still point at it and finds nothing then.
                e.timer = None;
            }
            NeighState::Incomplete | NeighState::Failed | NeighState::Permanent => {}
        }
    }

    /// Runs the entries' timers due at `now`: repeats requests, starts probing delayed
    /// entries, fails those that got no answer. The datagrams a failed entry held go to
    /// `failed` (for "host unreachable"); frames go to `out`.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<IpTx>, failed: &mut Vec<PacketBuf>) {
        if self.next_timer.is_none_or(|t| t > now) {
            return;
        }
        let due: Vec<(DevId, Ipv4Addr)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.timer.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        let cfg = self.cfg.clone();
        for key in due {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            e.timer = None;
            let mut request = None;
            match e.state {
                NeighState::Incomplete if e.probes < cfg.mcast_solicit => {
                    e.probes += 1;
                    e.timer = Some(now + cfg.retrans_time);
                    request = Some(MacAddr::BROADCAST);
                }
                NeighState::Delay if e.confirmed.is_some_and(|c| now < c + cfg.reachable_time) => {
                    e.state = NeighState::Reachable;
                }
                NeighState::Delay => {
                    e.state = NeighState::Probe;
                    e.probes = 1;
                    e.timer = Some(now + cfg.retrans_time);
                    request = Some(e.mac);
                }
                NeighState::Probe if e.probes < cfg.ucast_solicit => {
                    e.probes += 1;
                    e.timer = Some(now + cfg.retrans_time);
                    request = Some(e.mac);
                }
                NeighState::Incomplete | NeighState::Probe => {
                    e.state = NeighState::Failed;
                    e.mac = MacAddr::ZERO;
                    self.stats.resolve_failed += 1;
                    self.stats.unres_discards += e.queue.len() as u64;
                    self.queued -= e.queue.len();
                    failed.extend(e.queue.drain(..));
                }
                _ => {}
            }
            if let Some(to) = request {
                self.solicit(key.0, key.1, to, out);
            }
        }
        self.next_timer = self.entries.values().filter_map(|e| e.timer).min();
    }
}

#[cfg(test)]
mod tests;
