//! The `rx_path` target: the whole sans-IO receive path of a stack.
//!
//! Setup (the same for every input): a [`NetCore`] with address 10.0.0.2/24 holding
//! - a TCP listener on :80 (small backlog, small SYN queue: SYN cookies engage quickly),
//! - an ESTABLISHED connection from 10.0.0.1:40000 (a real handshake, data both ways,
//!   some of ours still unacknowledged),
//! - a half-open connection (SYN received) from 10.0.0.1:40001,
//! - an active open in SYN_SENT to 10.0.0.1:8080,
//! - a UDP socket on :53 that joined multicast group 239.1.1.1 (IGMP runs).
//!
//! The input is a sequence of operations, each taking a few bytes: raw IP packets,
//! valid IP headers around fuzzed payloads, TCP segments with correct checksums aimed at
//! the known sockets with sequence numbers relative to the real ones, UDP datagrams, ICMP
//! errors quoting our connections, fragments, user calls, and time steps that run the
//! timers. After each operation it checks: no panic (implicit), every packet the stack
//! emits is a valid IPv4 datagram from our address, connection table and buffer memory
//! stay under the configured limits, a bounded number of packets per operation, and
//! timers make progress (a deadline that stays due after `on_timeout` is a livelock).
//! At the end everything is closed and the clock runs on: every socket, connection and
//! buffer byte must be released.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ustack_ipv4::{IpTx, Ipv4Cidr, Ipv4Repr, OutMeta, IPPROTO_TCP, IPPROTO_UDP};
use ustack_netdev::{DevId, PacketBuf};
use ustack_socket::{NetCore, NetCoreConfig};
use ustack_tcp::seq::SeqNum;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{SockId, TcpConfig, TcpError, TcpSegmentOut, TcpState};
use ustack_udp::UdpError;

use crate::build;
use crate::script::{seq_delta, Input};

/// Our address.
pub const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer's address.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DEV: DevId = DevId(1);
const LISTEN_PORT: u16 = 80;
const UDP_PORT: u16 = 53;
const EST_PORT: u16 = 40000;
const HALF_PORT: u16 = 40001;
const ACTIVE_PORT: u16 = 8080;
/// The groups the UDP socket may join; the first is joined at setup.
const GROUPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(239, 1, 1, 1),
    Ipv4Addr::new(239, 1, 1, 2),
    Ipv4Addr::new(224, 0, 0, 251),
    Ipv4Addr::new(224, 0, 0, 1),
];

const BACKLOG: u32 = 4;
const MAX_SYN_BACKLOG: usize = 8;
const MAX_TW: usize = 16;
const MAX_ORPHANS: usize = 16;
const MEM_LIMIT: usize = 4 << 20;
/// Most packets one operation may make the stack send (an amplification guard).
const MAX_TX_PER_OP: usize = 4096;
/// Most operations taken from one input.
const MAX_OPS: usize = 512;

/// The bounded configuration the target runs with.
pub fn config() -> NetCoreConfig {
    let tcp = TcpConfig {
        max_syn_backlog: MAX_SYN_BACKLOG,
        max_tw_buckets: MAX_TW,
        max_orphans: MAX_ORPHANS,
        mem_limit: MEM_LIMIT,
        ooo_queue_limit: 256 << 10,
        ..TcpConfig::default()
    };
    NetCoreConfig {
        tcp,
        secret: *b"ustack-fuzz-key!",
        ..NetCoreConfig::default()
    }
}

/// The connection table may hold at most: the SYN queue, the accept queue (backlog + 1,
/// like Linux), TIME_WAIT and orphans, plus the sockets the setup made.
const MAX_CONNECTIONS: usize = MAX_SYN_BACKLOG + BACKLOG as usize + 1 + MAX_TW + MAX_ORPHANS + 8;

/// What the peer side knows of one 4-tuple, learned from the packets the stack sends.
#[derive(Clone, Copy, Debug, Default)]
struct Flow {
    peer_port: u16,
    local_port: u16,
    /// Next sequence number the peer would send (its SND.NXT).
    peer_nxt: u32,
    /// The stack's SND.NXT, sniffed from its segments.
    our_nxt: u32,
    /// The stack's last TSval.
    tsval: u32,
}

struct Harness {
    core: NetCore,
    base: Instant,
    t: Duration,
    out: Vec<TcpSegmentOut>,
    tx: Vec<IpTx>,
    listener: SockId,
    est: Option<SockId>,
    active: SockId,
    udp: Option<ustack_udp::SockId>,
    flows: [Flow; 3],
    /// ISN + 1 of the last SYN-ACK the listener sent to each peer port (cookie or not).
    synacks: HashMap<u16, u32>,
    ident: u16,
}

impl Harness {
    fn now(&self) -> Instant {
        self.base + self.t
    }

    /// Hands user-call output to IP (as `NetCore::flush` does for its own queue), runs
    /// local delivery, and collects and checks what goes to the device.
    fn pump(&mut self) -> usize {
        let now = self.now();
        for seg in self.out.drain(..) {
            // Every TCP segment fits the route (DF is set: no fragmentation to save it).
            assert!(
                seg.pkt.len() + 20 <= 1500,
                "TCP built a {}-byte segment for a 1500-byte route: {:02x?}",
                seg.pkt.len(),
                &seg.pkt.data()[..seg.pkt.len().min(60)]
            );
            let meta = OutMeta {
                src: Some(seg.src),
                dst: seg.dst,
                protocol: IPPROTO_TCP,
                ttl: seg.ttl,
                tos: seg.tos,
                dont_frag: true,
                oif: seg.oif,
                mc_loop: false,
                confirm_neigh: false,
            };
            let _ = self.core.ip.output(now, &meta, seg.pkt);
        }
        self.core.flush(now);
        self.core.take_tx(&mut self.tx);
        let n = self.tx.len();
        let tx = std::mem::take(&mut self.tx);
        for p in &tx {
            self.observe(p.pkt.data());
        }
        self.tx = tx;
        self.tx.clear();
        n
    }

    /// Checks one emitted packet and learns sequence numbers from it.
    fn observe(&mut self, pkt: &[u8]) {
        let r = match Ipv4Repr::parse(pkt) {
            Ok(r) => r,
            Err(e) => panic!("the stack emitted an invalid IPv4 packet ({e:?}): {pkt:02x?}"),
        };
        assert!(
            r.src == US || self.core.ip.is_local(r.src),
            "emitted from a foreign source {}",
            r.src
        );
        assert!(
            pkt.len() <= 1500,
            "emitted {} bytes on a 1500-byte link",
            pkt.len()
        );
        if r.protocol != IPPROTO_TCP || r.is_fragment() {
            return;
        }
        let seg = &pkt[r.header_len..r.header_len + r.payload_len];
        let Ok((t, range)) = TcpRepr::parse(seg, r.src, r.dst, true) else {
            panic!("the stack emitted a TCP segment that does not parse: {seg:02x?}");
        };
        if t.flags.syn() && t.flags.ack() && t.src_port == LISTEN_PORT {
            if self.synacks.len() > 4096 {
                self.synacks.clear();
            }
            self.synacks.insert(t.dst_port, t.seq.0.wrapping_add(1));
        }
        for f in self.flows.iter_mut() {
            if f.peer_port == t.dst_port && f.local_port == t.src_port {
                let mut len = range.len() as u32;
                if t.flags.syn() {
                    len += 1;
                }
                if t.flags.fin() {
                    len += 1;
                }
                let end = t.seq.0.wrapping_add(len);
                if SeqNum(end).gt(SeqNum(f.our_nxt)) || f.our_nxt == 0 {
                    f.our_nxt = end;
                }
                if t.flags.ack() && SeqNum(t.ack.0).gt(SeqNum(f.peer_nxt)) {
                    f.peer_nxt = t.ack.0;
                }
                if let Some((v, _)) = t.options.timestamp {
                    f.tsval = v;
                }
            }
        }
    }

    fn receive(&mut self, pkt: Vec<u8>) -> usize {
        let now = self.now();
        self.core.receive(now, DEV, PacketBuf::from_vec(pkt));
        self.pump()
    }

    /// A segment from the peer on flow `i` (seq/ack relative to the real numbers).
    #[allow(clippy::too_many_arguments)]
    fn peer_segment(
        &mut self,
        i: usize,
        flags: u8,
        dseq: u32,
        dack: u32,
        window: u16,
        opts: &[u8],
        payload: &[u8],
    ) -> usize {
        let f = self.flows[i];
        let mut r = TcpRepr::new(
            f.peer_port,
            f.local_port,
            SeqNum(f.peer_nxt.wrapping_add(dseq)),
            SeqNum(f.our_nxt.wrapping_add(dack)),
            TcpFlags(flags),
        );
        r.window = window;
        let seg = build::tcp_raw_opts(PEER, US, &r, opts, payload);
        if dseq == 0 && !payload.is_empty() {
            // In-order data: the peer's stream moves on.
            self.flows[i].peer_nxt = f.peer_nxt.wrapping_add(payload.len() as u32);
        }
        self.ident = self.ident.wrapping_add(1);
        self.receive(build::ipv4(PEER, US, IPPROTO_TCP, self.ident, &seg))
    }

    /// Runs every timer due now; a deadline still due afterwards is a livelock.
    fn run_timers(&mut self) -> usize {
        let mut sent = 0;
        for round in 0..8 {
            let now = self.now();
            match self.core.poll_timeout() {
                Some(d) if d <= now => {
                    assert!(
                        round < 7,
                        "timer livelock: deadline {d:?} stays due at {now:?}"
                    );
                    // NetCore::on_timeout, with TCP's output passing through `pump` so its
                    // segments are checked.
                    if self.core.ip.poll_timeout().is_some_and(|d| d <= now) {
                        self.core.ip.on_timeout(now);
                    }
                    if self.core.tcp.poll_timeout().is_some_and(|d| d <= now) {
                        self.core.tcp.on_timeout(now, &mut self.out);
                    }
                    sent += self.pump();
                }
                _ => break,
            }
        }
        sent
    }

    fn advance(&mut self, d: Duration) -> usize {
        let end = self.t + d;
        let mut sent = 0;
        let mut steps = 0;
        loop {
            let next = self
                .core
                .poll_timeout()
                .map(|i| i.saturating_duration_since(self.base))
                .filter(|n| *n <= end);
            let Some(n) = next else { break };
            steps += 1;
            assert!(steps < 100_000, "timers fire endlessly within {d:?}");
            self.t = self.t.max(n);
            sent += self.run_timers();
        }
        self.t = end;
        sent + self.run_timers()
    }

    fn check_bounds(&mut self) {
        let frag_fails = self.core.ip.stats().frag_fails;
        assert!(
            frag_fails == 0,
            "IP refused {frag_fails} oversized DF packets (TCP segments larger than the route MTU)"
        );
        let conns = self.core.tcp.connection_count();
        assert!(
            conns <= MAX_CONNECTIONS,
            "{conns} connections > bound {MAX_CONNECTIONS}"
        );
        let mem = self.core.tcp.memory_used();
        assert!(
            mem <= MEM_LIMIT + (1 << 20),
            "TCP buffers hold {mem} bytes, limit {MEM_LIMIT}"
        );
        if let Some(u) = self.udp {
            if let (Some((n, bytes)), Ok(rb)) = (self.core.udp.queued(u), self.core.udp.recv_buf(u))
            {
                assert!(
                    n <= 1 || bytes <= rb,
                    "UDP queue: {n} datagrams, {bytes} bytes > rcvbuf {rb}"
                );
            }
        }
        let socks = self.core.tcp.socket_count();
        assert!(socks <= MAX_CONNECTIONS + 8, "{socks} TCP sockets");
    }

    fn setup() -> Harness {
        let mut core = NetCore::new(config());
        core.add_interface(DEV, "fz0", Ipv4Cidr::new(US, 24).unwrap(), 1500);
        let base = Instant::now();
        let listener = core.tcp.socket();
        core.tcp
            .bind(listener, SocketAddrV4::new(US, LISTEN_PORT))
            .unwrap();
        core.tcp.listen(listener, BACKLOG).unwrap();
        let udp = core.udp.socket();
        let udp = core
            .udp
            .bind(udp, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, UDP_PORT))
            .ok()
            .map(|_| udp);
        if let Some(u) = udp {
            core.udp.add_membership(u, GROUPS[0], DEV).unwrap();
            core.ip.join_group(base, DEV, GROUPS[0]);
        }
        let active = core.tcp.socket();
        let mut h = Harness {
            core,
            base,
            t: Duration::from_millis(1),
            out: Vec::new(),
            tx: Vec::new(),
            listener,
            est: None,
            active,
            udp,
            flows: [
                Flow {
                    peer_port: EST_PORT,
                    local_port: LISTEN_PORT,
                    peer_nxt: 1_000_000,
                    ..Flow::default()
                },
                Flow {
                    peer_port: HALF_PORT,
                    local_port: LISTEN_PORT,
                    peer_nxt: 2_000_000,
                    ..Flow::default()
                },
                Flow {
                    peer_port: ACTIVE_PORT,
                    local_port: 0,
                    peer_nxt: 3_000_000,
                    ..Flow::default()
                },
            ],
            synacks: HashMap::new(),
            ident: 0,
        };
        // Handshake for the established connection, with all the options Linux sends.
        let syn_opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        h.peer_segment(0, TcpFlags::SYN.0, 0, 0, 65535, &syn_opts, &[]);
        h.flows[0].peer_nxt = h.flows[0].peer_nxt.wrapping_add(1);
        let ts = |v: u32, e: u32| {
            let (v, e) = (v.to_be_bytes(), e.to_be_bytes());
            [1, 1, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]
        };
        let o = ts(2, h.flows[0].tsval);
        h.peer_segment(0, TcpFlags::ACK.0, 0, 0, 1024, &o, &[]);
        h.est = h.core.tcp.accept(listener).ok().flatten();
        assert!(
            h.est.is_some(),
            "setup: the handshake did not produce a connection"
        );
        // Data both ways; ours stays partly unacknowledged.
        let o = ts(3, h.flows[0].tsval);
        h.peer_segment(
            0,
            (TcpFlags::ACK | TcpFlags::PSH).0,
            0,
            0,
            1024,
            &o,
            b"hello from the peer",
        );
        if let Some(id) = h.est {
            let now = h.now();
            let _ = h.core.tcp.send(now, id, &[0x42; 3000], &mut h.out);
            h.pump();
        }
        // Half-open: a SYN that is never completed.
        h.peer_segment(1, TcpFlags::SYN.0, 0, 0, 65535, &syn_opts, &[]);
        h.flows[1].peer_nxt = h.flows[1].peer_nxt.wrapping_add(1);
        // Active open to the peer, left in SYN_SENT.
        let now = h.now();
        let _ = h.core.tcp.connect(
            now,
            active,
            US,
            SocketAddrV4::new(PEER, ACTIVE_PORT),
            1500,
            &mut h.out,
        );
        if let Some(a) = h.core.tcp.local_addr(active) {
            h.flows[2].local_port = a.port();
        }
        h.pump();
        assert_eq!(
            h.core.tcp.state(active),
            Some(TcpState::SynSent),
            "setup: active open"
        );
        h.check_bounds();
        h
    }

    fn op(&mut self, inp: &mut Input<'_>) -> usize {
        let op = inp.u8();
        // The low 3 bits of the op byte step the clock: 0, 1 ms .. ~30 s.
        let step = match op & 7 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(1),
            2 => Duration::from_millis(10),
            3 => Duration::from_millis(50),
            4 => Duration::from_millis(200),
            5 => Duration::from_secs(1),
            6 => Duration::from_secs(5),
            _ => Duration::from_secs(30),
        };
        let mut sent = self.advance(step);
        if verbose() {
            eprintln!("op kind {} step {:?} at {:?}", op >> 3, step, self.t);
        }
        sent += match op >> 3 {
            // Raw bytes as an IP packet.
            0 | 1 => {
                let n = usize::from(inp.u8()) * 2;
                let p = inp.bytes(n);
                self.receive(p)
            }
            // A valid IP header (any protocol, maybe broadcast / from ourselves) + raw payload.
            2 => {
                let proto = inp.u8();
                let sel = inp.u8();
                let src = if sel & 1 == 1 { US } else { PEER };
                let dst = if sel & 2 == 2 {
                    Ipv4Addr::new(10, 0, 0, 255)
                } else {
                    US
                };
                let n = usize::from(inp.u8()) * 2;
                let body = inp.bytes(n);
                self.ident = self.ident.wrapping_add(1);
                self.receive(build::ipv4(src, dst, proto, self.ident, &body))
            }
            // A TCP segment on one of the known flows, checksum valid.
            3..=9 => {
                let i = usize::from(inp.u8() % 3);
                let flags = inp.u8();
                let dseq = seq_delta(inp);
                let dack = seq_delta(inp);
                let window = inp.u16();
                let olen = usize::from(inp.u8() % 41);
                let opts = inp.bytes(olen);
                let plen = usize::from(inp.u16() % 2048);
                let payload = inp.bytes(plen);
                self.peer_segment(i, flags, dseq, dack, window, &opts, &payload)
            }
            // A SYN (or anything) to the listener from a new port: fills the SYN queue,
            // engages SYN cookies; sometimes completes with the cookie's ACK.
            10 | 11 => {
                let port = 1024 + (inp.u16() % 2048);
                let flags = inp.u8() | TcpFlags::SYN.0;
                let mss = inp.u16();
                let mut r = TcpRepr::new(
                    port,
                    LISTEN_PORT,
                    SeqNum(inp.u32()),
                    SeqNum(0),
                    TcpFlags(flags & !TcpFlags::ACK.0),
                );
                r.window = 65535;
                r.options.mss = Some(mss);
                r.options.sack_permitted = true;
                r.header_len = r.emit_len();
                let seg = build::tcp(PEER, US, &r, &[]);
                self.ident = self.ident.wrapping_add(1);
                let mut sent = self.receive(build::ipv4(PEER, US, IPPROTO_TCP, self.ident, &seg));
                if inp.u8() & 1 == 1 {
                    // Complete it blindly with ACK = (our ISN guess) from the last SYN-ACK.
                    let ack = self.last_synack_for(port);
                    if let Some(ack) = ack {
                        let mut r = TcpRepr::new(port, LISTEN_PORT, r.seq + 1, ack, TcpFlags::ACK);
                        r.window = 65535;
                        let seg = build::tcp(PEER, US, &r, &[]);
                        self.ident = self.ident.wrapping_add(1);
                        sent += self.receive(build::ipv4(PEER, US, IPPROTO_TCP, self.ident, &seg));
                    }
                }
                sent
            }
            // UDP datagram to :53 or elsewhere, checksum valid, zero or broken.
            12 | 13 => {
                let sel = inp.u8();
                let dport = if sel & 1 == 0 { UDP_PORT } else { inp.u16() };
                let n = usize::from(inp.u16() % 1500);
                let body = inp.bytes(n);
                let mut d = build::udp(PEER, US, 5353, dport, &body, sel & 2 == 0);
                if sel & 4 != 0 {
                    // Break the length field.
                    let l = inp.u16();
                    d[4..6].copy_from_slice(&l.to_be_bytes());
                }
                self.ident = self.ident.wrapping_add(1);
                let mut sent = self.receive(build::ipv4(PEER, US, IPPROTO_UDP, self.ident, &d));
                if let (Some(u), true) = (self.udp, sel & 8 == 0) {
                    let mut buf = [0u8; 2048];
                    loop {
                        // As for TCP: the facade parks a reader on `recv_would_block`.
                        let would = self.core.udp.recv_would_block(u);
                        let r = self.core.udp.recv_from(u, &mut buf);
                        assert_eq!(
                            would,
                            r == Err(UdpError::WouldBlock),
                            "udp recv_would_block {would}, recv {r:?}"
                        );
                        if r.is_err() {
                            break;
                        }
                    }
                }
                sent += self.pump();
                sent
            }
            // ICMP error quoting one of our connections (or garbage).
            14 | 15 => {
                let i = usize::from(inp.u8() % 3);
                let typ = [3, 3, 3, 11, 12, 4, 5, inp.u8()][usize::from(inp.u8() % 8)];
                let code = inp.u8() % 16;
                let rest = [0, 0, inp.u8(), inp.u8()];
                let f = self.flows[i];
                let dseq = seq_delta(inp);
                let mut r = TcpRepr::new(
                    f.local_port,
                    f.peer_port,
                    // Delta 0 quotes the last byte sent: in flight when anything is.
                    SeqNum(f.our_nxt.wrapping_sub(1).wrapping_add(dseq)),
                    SeqNum(0),
                    TcpFlags::ACK,
                );
                r.window = 1;
                let seg = build::tcp(US, PEER, &r, &[]);
                let quoted = build::ipv4(US, PEER, IPPROTO_TCP, 1, &seg);
                let qlen = 28 + usize::from(inp.u8() % 32);
                let q = &quoted[..qlen.min(quoted.len())];
                self.receive(build::icmp_error_packet(
                    Ipv4Addr::new(10, 0, 0, 254),
                    US,
                    typ,
                    code,
                    rest,
                    q,
                ))
            }
            // ICMP echo request.
            16 => {
                let n = usize::from(inp.u8());
                let body = inp.bytes(n);
                let m = build::icmp(8, 0, [0, 1, 0, 1], &body);
                self.receive(build::ipv4(PEER, US, 1, 7, &m))
            }
            // Fragments of a valid TCP segment or UDP datagram, in a fuzzed order.
            17 | 18 => {
                let i = usize::from(inp.u8() % 3);
                let n = usize::from(inp.u16() % 4000);
                let payload = inp.bytes(n);
                let f = self.flows[i];
                let (proto, body) = if inp.u8() & 1 == 0 {
                    let mut r = TcpRepr::new(
                        f.peer_port,
                        f.local_port,
                        SeqNum(f.peer_nxt),
                        SeqNum(f.our_nxt),
                        TcpFlags::ACK | TcpFlags::PSH,
                    );
                    r.window = 4096;
                    (IPPROTO_TCP, build::tcp(PEER, US, &r, &payload))
                } else {
                    (
                        IPPROTO_UDP,
                        build::udp(PEER, US, 5353, UDP_PORT, &payload, true),
                    )
                };
                let mtu = 68 + usize::from(inp.u16() % 1432);
                self.ident = self.ident.wrapping_add(1);
                let hdr = Ipv4Repr::parse(&build::ipv4(PEER, US, proto, self.ident, &body))
                    .expect("valid header");
                let mut frags = Vec::new();
                let _ = ustack_ipv4::frag::fragment(&hdr, &body, mtu, &mut frags);
                let order = inp.u32();
                let k = frags.len();
                if verbose() {
                    eprintln!(
                        "fragments: {k} of {} bytes at mtu {mtu}, order {order:#x}",
                        body.len()
                    );
                }
                let mut sent = 0;
                for j in 0..k {
                    let idx = (j + order as usize) % k;
                    // Maybe drop or duplicate one.
                    if order >> 24 == idx as u32 {
                        continue;
                    }
                    let p = frags[idx].data().to_vec();
                    if (order >> 16) & 0xff == idx as u32 {
                        sent += self.receive(p.clone());
                    }
                    sent += self.receive(p);
                }
                sent
            }
            // User calls on the established connection / the listener.
            19..=24 => self.user_call(inp),
            // A long sleep: minutes of timers.
            25 => {
                let mins = u64::from(inp.u8() % 16);
                self.advance(Duration::from_secs(60 * mins))
            }
            // An IGMP message (query of any version, a report, or raw) to all hosts, to a
            // group or to us, checksum valid unless the selector says otherwise.
            26 | 27 => {
                let sel = inp.u8();
                let raw_type = inp.u8();
                let typ =
                    [0x11, 0x11, 0x11, 0x12, 0x16, 0x17, 0x22, raw_type][usize::from(sel & 7)];
                let code = inp.u8();
                let group = match (sel >> 3) & 3 {
                    0 => Ipv4Addr::UNSPECIFIED,
                    1 => GROUPS[usize::from(inp.u8() % 4)],
                    _ => Ipv4Addr::from(inp.u32()),
                };
                let mut m = vec![typ, code, 0, 0];
                m.extend_from_slice(&group.octets());
                // v3 query tail: flags, QQIC, source count, then up to 255 bytes.
                let extra = usize::from(inp.u8());
                m.extend_from_slice(&inp.bytes(extra));
                let c = ustack_ipv4::checksum::checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                if sel & 0x20 != 0 {
                    m[2] ^= 0x5a;
                }
                let dst = match sel >> 6 {
                    0 => GROUPS[3],
                    1 => GROUPS[0],
                    2 => US,
                    _ => group,
                };
                self.ident = self.ident.wrapping_add(1);
                self.receive(build::ipv4(PEER, dst, 2, self.ident, &m))
            }
            // A UDP datagram to a group (joined or not), all hosts or a broadcast.
            28 => {
                let sel = inp.u8();
                let dst = match sel & 7 {
                    0..=3 => GROUPS[usize::from(sel & 3)],
                    4 => Ipv4Addr::BROADCAST,
                    5 => Ipv4Addr::new(10, 0, 0, 255),
                    _ => Ipv4Addr::new(239, 7, 7, 7),
                };
                let dport = if sel & 8 == 0 { UDP_PORT } else { inp.u16() };
                let n = usize::from(inp.u16() % 1500);
                let body = inp.bytes(n);
                let d = build::udp(PEER, dst, 5353, dport, &body, sel & 16 == 0);
                self.ident = self.ident.wrapping_add(1);
                let sent = self.receive(build::ipv4(PEER, dst, IPPROTO_UDP, self.ident, &d));
                if let Some(u) = self.udp {
                    let mut buf = [0u8; 2048];
                    while self.core.udp.recv_from(u, &mut buf).is_ok() {}
                }
                sent
            }
            // The UDP socket joins or leaves a group (as `udp_prot` does).
            29 => {
                let sel = inp.u8();
                let group = GROUPS[usize::from(sel & 3)];
                let now = self.now();
                if let Some(u) = self.udp {
                    if sel & 4 == 0 {
                        if self.core.udp.add_membership(u, group, DEV).is_ok() {
                            self.core.ip.join_group(now, DEV, group);
                        }
                    } else if let Ok(d) = self.core.udp.drop_membership(u, group, None) {
                        self.core.ip.leave_group(now, d, group);
                    }
                }
                self.pump()
            }
            _ => 0,
        };
        sent
    }

    /// The ACK that completes a handshake with port `port`: the last SYN-ACK's seq + 1.
    fn last_synack_for(&self, port: u16) -> Option<SeqNum> {
        self.synacks.get(&port).map(|&a| SeqNum(a))
    }

    fn user_call(&mut self, inp: &mut Input<'_>) -> usize {
        let now = self.now();
        let sel = inp.u8();
        match sel % 8 {
            0 => {
                if let Some(id) = self.est {
                    let mut buf = vec![0u8; usize::from(inp.u16())];
                    // The facade parks a reader on `recv_would_block` without calling
                    // `recv`: the two must agree in every state the wire can produce.
                    let would = self.core.tcp.recv_would_block(id);
                    let r = self.core.tcp.recv(now, id, &mut buf, &mut self.out);
                    assert_eq!(
                        would,
                        r == Err(TcpError::WouldBlock),
                        "recv_would_block {would}, recv {r:?}"
                    );
                }
            }
            1 => {
                if let Some(id) = self.est {
                    let n = usize::from(inp.u16());
                    let _ = self.core.tcp.send(now, id, &vec![0x61; n], &mut self.out);
                }
            }
            2 => {
                while let Ok(Some(id)) = self.core.tcp.accept(self.listener) {
                    // Accepted connections are closed at once (a busy server rejecting).
                    if inp.u8() & 1 == 0 {
                        self.core.tcp.close(now, id, &mut self.out);
                    } else {
                        self.core.tcp.abort(now, id, &mut self.out);
                    }
                }
            }
            3 => {
                if let Some(id) = self.est {
                    let _ = self.core.tcp.shutdown_write(now, id, &mut self.out);
                }
            }
            4 => {
                if let Some(id) = self.est.take() {
                    self.core.tcp.close(now, id, &mut self.out);
                }
            }
            5 => {
                if let Some(id) = self.est.take() {
                    self.core.tcp.abort(now, id, &mut self.out);
                }
            }
            6 => {
                if let Some(id) = self.est {
                    let _ = self.core.tcp.take_error(id);
                    let _ = self.core.tcp.poll_state(id);
                    let _ = self.core.tcp.info(id);
                }
            }
            _ => {
                let mut ev = Vec::new();
                self.core.take_wakers(&mut ev);
            }
        }
        self.pump()
    }

    /// Closes everything and lets the clock run: nothing may stay behind.
    fn finish(&mut self) {
        let now = self.now();
        while let Ok(Some(id)) = self.core.tcp.accept(self.listener) {
            self.core.tcp.close(now, id, &mut self.out);
        }
        if let Some(id) = self.est.take() {
            self.core.tcp.close(now, id, &mut self.out);
        }
        self.core.tcp.close(now, self.active, &mut self.out);
        self.core.tcp.close(now, self.listener, &mut self.out);
        if let Some(u) = self.udp.take() {
            // As `udp_prot` closes it: its groups are left first.
            for (group, dev) in self.core.udp.memberships(u) {
                self.core.ip.leave_group(now, dev, group);
            }
            self.core.udp.close(u);
        }
        self.pump();
        assert!(
            self.core.ip.mc_memberships().is_empty(),
            "group memberships left after the socket closed: {:?}",
            self.core.ip.mc_memberships()
        );
        // Orphans retry (FIN, RTO backoff up to rto_max), TIME_WAIT lasts 60 s, an IGMP
        // answer waits at most 53 minutes: a few hours of virtual time is plenty.
        for _ in 0..48 {
            self.advance(Duration::from_secs(300));
            if self.core.tcp.socket_count() == 0 && self.core.ip.poll_timeout().is_none() {
                break;
            }
        }
        assert_eq!(
            self.core.tcp.connection_count(),
            0,
            "connections left after close + hours"
        );
        assert_eq!(
            self.core.tcp.socket_count(),
            0,
            "TCP sockets leaked after close + hours"
        );
        assert_eq!(
            self.core.tcp.memory_used(),
            0,
            "TCP buffer memory leaked after close + hours"
        );
        assert_eq!(
            self.core.ip.poll_timeout(),
            None,
            "IP timers (reassembly, IGMP) still armed after close + hours"
        );
    }
}

/// Runs one input through the harness (the body of the `rx_path` fuzz target).
pub fn run(data: &[u8]) {
    let mut h = Harness::setup();
    let mut inp = Input::new(data);
    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        let sent = h.op(&mut inp);
        assert!(
            sent <= MAX_TX_PER_OP,
            "one operation made the stack send {sent} packets"
        );
        h.check_bounds();
    }
    if verbose() {
        eprintln!(
            "rx_path: {ops} ops, est {:?} ({:?}), active {:?}, {} connections, {} sockets, {} bytes\n  tcp {:?}\n  ip {:?}\n  icmp {:?}\n  udp {:?}",
            h.est,
            h.est.and_then(|id| h.core.tcp.state(id)),
            h.core.tcp.state(h.active),
            h.core.tcp.connection_count(),
            h.core.tcp.socket_count(),
            h.core.tcp.memory_used(),
            h.core.tcp.stats(),
            h.core.ip.stats(),
            h.core.ip.icmp_stats(),
            h.core.udp.stats(),
        );
    }
    h.finish();
}

/// `USTACK_FUZZ_VERBOSE=1` prints what each input did (counters) — for checking seeds.
fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("USTACK_FUZZ_VERBOSE").is_some())
}
