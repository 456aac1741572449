//! The `arp_rx` target: the Ethernet side of the IP layer (`link_input`, ARP and the
//! neighbour table) on hostile frames.
//!
//! Setup: an [`Ipv4Layer`] with one Ethernet device, 10.0.0.2/24, default route via
//! 10.0.0.1, a neighbour table of at most [`MAX_ENTRIES`] entries with
//! [`QUEUE_LEN`]-datagram queues. The input is a sequence of operations: raw frames,
//! ARP messages with fields picked from addresses that matter (ours, the gateway's, group
//! and zero addresses, others) or arbitrary, IPv4 frames, datagrams sent to on-link,
//! off-link, broadcast and multicast destinations (also with the transport's
//! reachability confirmation), permanent entries set and entries removed, address probes
//! (RFC 5227) started and ended and announcements, and time steps that run the timers.
//! After each operation it checks: every frame the layer emits comes from our Ethernet
//! address and is well formed (ARP from our IPv4 address; IPv4 to a group address or to
//! an address some ARP message named), a bounded number of frames, the table within its
//! bound, timers that make progress. At the end the clock runs on with nothing sent:
//! no timer may stay armed and no entry may stay between states. Claims on our address
//! (RFC 5227 2.4 conflicts) are defended at most once per 10 s and logged within bounds.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ustack_ipv4::arp::{push_ether, ArpPacket, ARPOP_REQUEST, ARP_LEN, CONFLICT_LOG};
use ustack_ipv4::{
    IpTx, Ipv4Config, Ipv4Layer, NeighConfig, NeighState, OutMeta, Route, RouteKind, IPPROTO_UDP,
};
use ustack_netdev::ether::{ETH_HLEN, ETH_P_ARP, ETH_P_IP};
use ustack_netdev::{DevId, MacAddr, PacketBuf};

use crate::script::Input;

const DEV: DevId = DevId(1);
const OUR: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Entries the table may hold.
pub const MAX_ENTRIES: usize = 8;
/// Datagrams per unresolved entry.
pub const QUEUE_LEN: usize = 4;
const MAX_OPS: usize = 512;
/// Most frames one operation may make the layer send: a queue released, a request, a
/// reply, a datagram (or its fragments).
const MAX_TX_PER_OP: usize = QUEUE_LEN + 64;

fn pick_mac(inp: &mut Input<'_>) -> MacAddr {
    match inp.u8() % 8 {
        0 => OUR,
        1 => MacAddr::BROADCAST,
        2 => MacAddr::ZERO,
        3 => MacAddr::ipv4_multicast(Ipv4Addr::new(224, 0, 0, 1)),
        b @ 4..=6 => MacAddr([0x02, 0, 0, 0, 1, b]),
        _ => {
            let b = inp.bytes(6);
            let mut m = [0u8; 6];
            m[..b.len()].copy_from_slice(&b);
            MacAddr(m)
        }
    }
}

fn pick_ip(inp: &mut Input<'_>) -> Ipv4Addr {
    match inp.u8() % 10 {
        0 => US,
        1 => Ipv4Addr::new(10, 0, 0, 1),
        b @ 2..=5 => Ipv4Addr::new(10, 0, 0, 1 + b),
        6 => Ipv4Addr::UNSPECIFIED,
        7 => Ipv4Addr::new(10, 0, 0, 255),
        8 => Ipv4Addr::new(224, 0, 0, 1),
        _ => Ipv4Addr::from(inp.u32()),
    }
}

fn frame(dst: MacAddr, src: MacAddr, ty: u16, body: &[u8]) -> PacketBuf {
    let mut p = PacketBuf::with_payload_capacity(body.len());
    p.extend_from_slice(body);
    push_ether(&mut p, dst, src, ty);
    p
}

struct Harness {
    ip: Ipv4Layer,
    base: Instant,
    t: Duration,
    /// Ethernet addresses some received ARP message named as a sender.
    learnt: Vec<MacAddr>,
    /// Addresses being probed (RFC 5227): the only ones an ARP from 0.0.0.0 may ask for.
    probing: Vec<Ipv4Addr>,
    tx: Vec<IpTx>,
}

impl Harness {
    fn now(&self) -> Instant {
        self.base + self.t
    }

    fn check_tx(&mut self) {
        self.tx.clear();
        self.ip.take_tx(&mut self.tx);
        assert!(
            self.tx.len() <= MAX_TX_PER_OP,
            "{} frames for one operation",
            self.tx.len()
        );
        for t in &self.tx {
            assert_eq!(t.dev, DEV);
            let d = t.pkt.data();
            assert!(d.len() >= ETH_HLEN, "runt frame sent");
            let dst = MacAddr([d[0], d[1], d[2], d[3], d[4], d[5]]);
            assert_eq!(&d[6..12], &OUR.0, "frame not from our address");
            match u16::from_be_bytes([d[12], d[13]]) {
                ETH_P_ARP => {
                    let m = ArpPacket::parse(&d[ETH_HLEN..]).expect("malformed ARP sent");
                    assert_eq!(m.sha, OUR);
                    if m.spa.is_unspecified() {
                        assert!(
                            m.op == ARPOP_REQUEST
                                && dst == MacAddr::BROADCAST
                                && self.probing.contains(&m.tpa),
                            "ARP from 0.0.0.0 that is not a probe we asked for"
                        );
                    } else {
                        assert_eq!(m.spa, US, "ARP from another IPv4 address");
                    }
                    assert!(d.len() >= 60, "ARP frame not padded");
                }
                ETH_P_IP => {
                    assert!(
                        d.len() >= ETH_HLEN + 20,
                        "datagram without an IP header sent"
                    );
                    assert!(
                        dst.is_multicast() || self.learnt.contains(&dst),
                        "datagram to {dst}, an address nobody announced"
                    );
                }
                other => panic!("EtherType {other:#06x} sent"),
            }
        }
        assert!(self.ip.neighbours().len() <= MAX_ENTRIES);
        // RFC 5227 2.4: one address of ours, defended at most once per 10 s; the
        // conflict log is bounded and names only our address.
        let defences = self.ip.arp_stats().defences;
        assert!(
            defences <= 1 + self.t.as_secs() / 10,
            "{defences} defences in {:?}",
            self.t
        );
        let log = self.ip.arp_conflicts();
        assert!(log.len() <= CONFLICT_LOG);
        assert!(log
            .iter()
            .all(|c| c.addr == US && c.dev == DEV && c.mac != OUR));
    }

    fn arp(&mut self, inp: &mut Input<'_>) {
        let op = match inp.u8() % 4 {
            0 | 1 => 1,
            2 => 2,
            _ => inp.u16(),
        };
        let msg = ArpPacket {
            op,
            sha: pick_mac(inp),
            spa: pick_ip(inp),
            tha: pick_mac(inp),
            tpa: pick_ip(inp),
        };
        let dst = pick_mac(inp);
        let mut body = [0u8; ARP_LEN];
        msg.emit(&mut body);
        if inp.u8().is_multiple_of(8) {
            // A damaged header field.
            let at = usize::from(inp.u8()) % 8;
            body[at] = inp.u8();
        }
        if ArpPacket::parse(&body).is_some() {
            self.learnt.push(msg.sha);
        }
        let f = frame(dst, pick_mac(inp), ETH_P_ARP, &body);
        let now = self.now();
        assert!(
            self.ip.link_input(now, DEV, f).is_none(),
            "ARP handed to IP"
        );
    }

    /// Sends a datagram; `confirm`: as a transport that knows the next hop receives our
    /// frames (TCP after an ACK).
    fn send(&mut self, inp: &mut Input<'_>, confirm: bool) {
        let dst = match inp.u8() % 4 {
            0 => Ipv4Addr::new(192, 0, 2, inp.u8()),
            _ => pick_ip(inp),
        };
        let len = usize::from(inp.u8()) * 8;
        let mut p = PacketBuf::with_payload_capacity(len);
        p.put(len).fill(0x5a);
        let meta = OutMeta {
            src: None,
            dst,
            protocol: IPPROTO_UDP,
            ttl: None,
            tos: 0,
            dont_frag: inp.u8().is_multiple_of(2),
            oif: None,
            mc_loop: false,
            confirm_neigh: confirm,
        };
        let now = self.now();
        let _ = self.ip.output(now, &meta, p);
        // Our own address goes to local delivery, not to the device.
        let mut local = Vec::new();
        self.ip.take_local(&mut local);
    }

    fn step(&mut self, d: Duration) {
        self.t += d;
        let now = self.now();
        if self.ip.poll_timeout().is_some_and(|t| t <= now) {
            self.ip.on_timeout(now);
            assert!(
                self.ip.poll_timeout().is_none_or(|t| t > now),
                "a timer stays due after running"
            );
        }
    }
}

/// Runs the `arp_rx` target on `data`.
pub fn run(data: &[u8]) {
    let cfg = Ipv4Config {
        neigh: NeighConfig {
            max_entries: MAX_ENTRIES,
            queue_len: QUEUE_LEN,
            ..NeighConfig::default()
        },
        ..Ipv4Config::default()
    };
    let mut ip = Ipv4Layer::new(cfg);
    ip.add_interface(DEV, "eth0", "10.0.0.2/24".parse().expect("cidr"), 1500);
    ip.fib_mut()
        .add(Route {
            dst: "0.0.0.0/0".parse().expect("cidr"),
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            dev: DEV,
            metric: 0,
            src: None,
            kind: RouteKind::Static,
        })
        .expect("default route");
    ip.set_ethernet(DEV, OUR);
    let mut h = Harness {
        ip,
        base: Instant::now(),
        t: Duration::ZERO,
        learnt: Vec::new(),
        probing: Vec::new(),
        tx: Vec::new(),
    };
    let mut inp = Input::new(data);
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 9 {
            0 => {
                let len = usize::from(inp.u8());
                let body = inp.bytes(len);
                let mut p = PacketBuf::with_payload_capacity(body.len());
                p.extend_from_slice(&body);
                let now = h.now();
                if let Some(ip_pkt) = h.ip.link_input(now, DEV, p) {
                    assert_eq!(ip_pkt.len() + ETH_HLEN, body.len(), "header not stripped");
                    assert_eq!(&body[12..14], &ETH_P_IP.to_be_bytes());
                }
            }
            1 | 2 => h.arp(&mut inp),
            3 => h.send(&mut inp, false),
            7 => h.send(&mut inp, true),
            8 => {
                // Address conflict detection: a probe started, one ended, or our address
                // announced.
                let ip = pick_ip(&mut inp);
                match inp.u8() % 3 {
                    0 => {
                        if h.ip.arp_probe(DEV, ip) {
                            h.probing.push(ip);
                        }
                    }
                    1 => {
                        let probed = h.probing.contains(&ip);
                        let in_use = h.ip.arp_probe_end(DEV, ip);
                        assert!(probed || !in_use, "a conflict for {ip}, never probed");
                        h.probing.retain(|p| *p != ip);
                    }
                    _ => h.ip.arp_announce(DEV, US),
                }
            }
            4 => {
                let dst = pick_mac(&mut inp);
                let len = usize::from(inp.u8() % 64);
                let body = inp.bytes(len);
                let f = frame(dst, pick_mac(&mut inp), ETH_P_IP, &body);
                let now = h.now();
                let got = h.ip.link_input(now, DEV, f);
                assert_eq!(got.is_some(), dst == OUR || dst.is_multicast());
            }
            6 => {
                // A neighbour set by hand, or any entry removed.
                let ip = pick_ip(&mut inp);
                if inp.u8().is_multiple_of(2) {
                    let mac = pick_mac(&mut inp);
                    if h.ip.add_neighbour(DEV, ip, mac) {
                        h.learnt.push(mac);
                    }
                } else {
                    h.ip.remove_neighbour(DEV, ip);
                }
            }
            _ => {
                let d = match inp.u8() % 4 {
                    0 => Duration::from_millis(u64::from(inp.u8())),
                    1 => Duration::from_secs(1),
                    2 => Duration::from_secs(5),
                    _ => Duration::from_secs(u64::from(inp.u8() % 64)),
                };
                h.step(d);
            }
        }
        h.check_tx();
    }
    // Quiet: every entry settles (resolved or failed) and no timer stays armed.
    for _ in 0..120 {
        h.step(Duration::from_secs(1));
        h.check_tx();
    }
    assert_eq!(
        h.ip.poll_timeout(),
        None,
        "a timer stays armed with nothing to do"
    );
    for n in h.ip.neighbours() {
        assert!(
            matches!(
                n.state,
                NeighState::Reachable
                    | NeighState::Stale
                    | NeighState::Failed
                    | NeighState::Permanent
            ),
            "{n:?} left between states"
        );
    }
}
