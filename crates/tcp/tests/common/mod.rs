//! Test harness: two `TcpLayer`s joined by a programmable pipe with a virtual clock.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ustack_ipv4::{checksum, IpRxMeta};
use ustack_netdev::rng::SplitMix64;
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::wire::{TcpFlags, TcpOptions, TcpRepr};
use ustack_tcp::{SeqNum, SockId, TcpConfig, TcpLayer, TcpSegmentOut, TcpState};

pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const MTU: usize = 1500;

/// Direction of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    AtoB,
    BtoA,
}

/// A decoded segment for assertions.
#[derive(Clone, Debug)]
pub struct Seg {
    pub dir: Dir,
    pub at: Instant,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub len: usize,
    pub window: u16,
    pub opts: TcpOptions,
    /// Transmit offload: the segment size of a super-segment (0: none).
    pub gso: u16,
    /// Transmit offload: the checksum was left for the device.
    pub partial: bool,
    /// The type-of-service byte TCP asked IP to send the segment with.
    pub tos: u8,
}

impl Seg {
    /// The segment's header as sent (ports, numbers, flags, window, options), to replay
    /// it or a variant of it with [`Net::inject`].
    pub fn repr(&self) -> TcpRepr {
        let mut r = TcpRepr::new(
            self.src.port(),
            self.dst.port(),
            SeqNum(self.seq),
            SeqNum(self.ack),
            self.flags,
        );
        r.window = self.window;
        r.options = self.opts;
        r
    }
    pub fn is(&self, f: TcpFlags) -> bool {
        self.flags.0 & 0x3f == f.0
    }
    pub fn has(&self, f: TcpFlags) -> bool {
        self.flags.contains(f)
    }
    /// True when this data segment starts `off` bytes after the first data byte of its
    /// connection (based on the ISN recorded in the SYN of the same direction).
    pub fn seq_rel_is(&self, off: u32) -> bool {
        ISN.with(|m| {
            m.borrow()
                .get(&(self.src, self.dst))
                .is_some_and(|isn| self.seq.wrapping_sub(isn.wrapping_add(1)) == off)
        })
    }
}

thread_local! {
    static ISN: std::cell::RefCell<std::collections::HashMap<(SocketAddrV4, SocketAddrV4), u32>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

pub fn decode(dir: Dir, at: Instant, s: &TcpSegmentOut) -> Seg {
    let partial = s.pkt.csum_partial();
    if partial {
        // Left for the device: the field holds the folded pseudo-header sum.
        let d = s.pkt.data();
        let psum = checksum::pseudo_header_sum(s.src, s.dst, 6, d.len() as u16);
        assert_eq!(
            u16::from_be_bytes([d[16], d[17]]),
            checksum::fold(psum),
            "partial checksum field"
        );
    }
    let (r, range) = TcpRepr::parse(s.pkt.data(), s.src, s.dst, !partial).expect("valid segment");
    if r.flags.syn() {
        ISN.with(|m| {
            m.borrow_mut().insert(
                (
                    SocketAddrV4::new(s.src, r.src_port),
                    SocketAddrV4::new(s.dst, r.dst_port),
                ),
                r.seq.0,
            )
        });
    }
    Seg {
        dir,
        at,
        src: SocketAddrV4::new(s.src, r.src_port),
        dst: SocketAddrV4::new(s.dst, r.dst_port),
        flags: r.flags,
        seq: r.seq.0,
        ack: r.ack.0,
        len: range.len(),
        window: r.window,
        opts: r.options,
        gso: s.pkt.gso_size(),
        partial,
        tos: s.tos,
    }
}

/// How IP hands `s` to the receiving TCP.
pub fn rx_meta(s: &TcpSegmentOut) -> IpRxMeta {
    IpRxMeta {
        src: s.src,
        dst: s.dst,
        protocol: 6,
        ttl: 64,
        tos: s.tos,
        dev: DevId(0),
        multi: false,
    }
}

/// What a device with transmit offload does to a segment TCP left for it: completes the
/// checksum (the receiver then verifies it like any other). A super-segment stays whole,
/// as the kernel delivers it to a local socket.
pub fn finish_offload(s: &mut TcpSegmentOut) {
    if !s.pkt.csum_partial() {
        return;
    }
    let d = s.pkt.data_mut();
    d[16] = 0;
    d[17] = 0;
    let c = checksum::transport_checksum(s.src, s.dst, 6, d);
    d[16..18].copy_from_slice(&c.to_be_bytes());
    s.pkt.set_csum_partial(false);
    s.pkt.set_gso_size(0);
}

/// What the pipe does with one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    Drop,
    Duplicate,
    /// Deliver after this extra delay.
    Delay(Duration),
    /// Deliver with the last byte of the segment (payload if it has any) flipped.
    Corrupt,
    /// Deliver marked Congestion Experienced if it is ECN-capable (as an ECN-marking
    /// router queue does); otherwise drop it (as that queue would).
    MarkCe,
}

/// A scripted rule: sees the segment and its 0-based index in its direction.
pub type Rule = Box<dyn FnMut(&Seg, usize) -> Action>;

/// Drops A->B data segments by where they start: for each `(offset, times)`, the first
/// `times` transmissions of the segment starting `offset` bytes after the first data byte.
pub fn drop_tx(n: &mut Net, drops: &[(u32, u32)]) {
    let mut left: Vec<(u32, u32)> = drops.to_vec();
    n.set_rule(Dir::AtoB, move |seg, _| {
        if seg.len == 0 {
            return Action::Pass;
        }
        for (off, times) in left.iter_mut() {
            if *times > 0 && seg.seq_rel_is(*off) {
                *times -= 1;
                return Action::Drop;
            }
        }
        Action::Pass
    });
}

/// Drops the first transmission of the A->B data segments with these indexes (0-based,
/// by offset / mss).
pub fn drop_first_tx(n: &mut Net, mss: u32, which: &[u32]) {
    let drops: Vec<(u32, u32)> = which.iter().map(|&k| (k * mss, 1)).collect();
    drop_tx(n, &drops);
}

/// Seeded random faults for one direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    /// Extra delay for reordered packets.
    pub reorder_delay: Duration,
}

/// The link's fault schedule: the shared splitmix64, seeded as these tests always were
/// (their seeds and tuned bounds keep the same sequences).
pub struct Rng(SplitMix64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed ^ 0x9E37_79B9_7F4A_7C15))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub fn f64(&mut self) -> f64 {
        self.0.next_f64()
    }
}

pub struct Net {
    pub a: TcpLayer,
    pub b: TcpLayer,
    pub now: Instant,
    pub start: Instant,
    /// One-way delay.
    pub delay: Duration,
    /// Bottleneck rate in bytes/s per direction (None = infinite).
    pub rate: Option<u64>,
    busy_until: [Instant; 2],
    queue: BTreeMap<(Instant, u64), (Dir, TcpSegmentOut)>,
    qseq: u64,
    pub log: Vec<Seg>,
    pub keep_log: bool,
    pub rules: [Option<Rule>; 2],
    pub faults: [Faults; 2],
    pub rng: Rng,
    counts: [usize; 2],
    pub dropped: [usize; 2],
    /// Segments handed to the IP layer but "lost" before reaching the pipe (e.g. ICMP tests).
    pub mtu_limit: [Option<usize>; 2],
    pub too_big: Vec<(Dir, TcpSegmentOut)>,
}

fn idx(d: Dir) -> usize {
    match d {
        Dir::AtoB => 0,
        Dir::BtoA => 1,
    }
}

impl Net {
    pub fn new() -> Self {
        Self::with_configs(TcpConfig::default(), TcpConfig::default())
    }

    pub fn with_configs(ca: TcpConfig, cb: TcpConfig) -> Self {
        let now = Instant::now();
        // Both sides batch ACKs like the socket layer does; every delivery below is a
        // batch of one segment, flushed at once.
        let mut a = TcpLayer::new(ca, [1; 16]);
        let mut b = TcpLayer::new(cb, [2; 16]);
        a.set_ack_batching(true);
        b.set_ack_batching(true);
        Net {
            a,
            b,
            now,
            start: now,
            delay: Duration::from_millis(1),
            rate: None,
            busy_until: [now; 2],
            queue: BTreeMap::new(),
            qseq: 0,
            log: Vec::new(),
            keep_log: true,
            rules: [None, None],
            faults: [Faults::default(); 2],
            rng: Rng::new(42),
            counts: [0; 2],
            dropped: [0; 2],
            mtu_limit: [None, None],
            too_big: Vec::new(),
        }
    }

    pub fn layer(&mut self, d: Dir) -> &mut TcpLayer {
        match d {
            Dir::AtoB => &mut self.a,
            Dir::BtoA => &mut self.b,
        }
    }

    pub fn set_rule(&mut self, d: Dir, r: impl FnMut(&Seg, usize) -> Action + 'static) {
        self.rules[idx(d)] = Some(Box::new(r));
    }

    pub fn clear_rules(&mut self) {
        self.rules = [None, None];
    }

    /// Hands segments emitted by one side to the pipe.
    pub fn send(&mut self, d: Dir, out: Vec<TcpSegmentOut>) {
        for s in out {
            let i = idx(d);
            if let Some(limit) = self.mtu_limit[i] {
                if s.pkt.len() + 20 > limit {
                    self.too_big.push((d, s));
                    continue;
                }
            }
            let seg = decode(d, self.now, &s);
            let n = self.counts[i];
            self.counts[i] += 1;
            let mut action = match self.rules[i].as_mut() {
                Some(r) => r(&seg, n),
                None => Action::Pass,
            };
            let f = self.faults[i];
            if action == Action::Pass {
                if f.loss > 0.0 && self.rng.f64() < f.loss {
                    action = Action::Drop;
                } else if f.dup > 0.0 && self.rng.f64() < f.dup {
                    action = Action::Duplicate;
                } else if f.reorder > 0.0 && self.rng.f64() < f.reorder {
                    action = Action::Delay(f.reorder_delay);
                }
            }
            if self.keep_log {
                self.log.push(seg);
            }
            let mut at = self.now;
            if let Some(rate) = self.rate {
                let tx =
                    Duration::from_nanos((s.pkt.len() as u64 + 20) * 1_000_000_000 / rate.max(1));
                let start = self.busy_until[i].max(self.now);
                self.busy_until[i] = start + tx;
                at = start + tx;
            }
            at += self.delay;
            match action {
                Action::Drop => {
                    self.dropped[i] += 1;
                }
                Action::Pass => self.enqueue(at, d, s),
                Action::Duplicate => {
                    self.enqueue(at, d, s.clone());
                    self.enqueue(at + Duration::from_micros(10), d, s);
                }
                Action::Delay(x) => self.enqueue(at + x, d, s),
                Action::Corrupt => {
                    let mut s = s;
                    if let Some(b) = s.pkt.data_mut().last_mut() {
                        *b ^= 0x5a;
                    }
                    self.enqueue(at, d, s)
                }
                Action::MarkCe => {
                    if s.tos & 0b11 != 0 {
                        let mut s = s;
                        s.tos |= 0b11;
                        self.enqueue(at, d, s)
                    }
                }
            }
        }
    }

    fn enqueue(&mut self, at: Instant, d: Dir, s: TcpSegmentOut) {
        self.qseq += 1;
        self.queue.insert((at, self.qseq), (d, s));
    }

    /// Delivers one segment now to its receiver.
    pub fn deliver(&mut self, d: Dir, mut s: TcpSegmentOut) {
        finish_offload(&mut s);
        let meta = rx_meta(&s);
        let now = self.now;
        let mut out = Vec::new();
        let rx = match d {
            Dir::AtoB => Dir::BtoA,
            Dir::BtoA => Dir::AtoB,
        };
        self.layer(rx).input(
            now,
            &meta,
            PacketBuf::from_vec(s.pkt.into_vec()),
            MTU,
            &mut out,
        );
        self.layer(rx).flush_acks(now, &mut out);
        self.send(rx, out);
    }

    /// The next instant something happens.
    pub fn next_event(&self) -> Option<Instant> {
        let q = self.queue.keys().next().map(|k| k.0);
        [q, self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Processes everything due at `self.now`.
    pub fn run_due(&mut self) {
        loop {
            let mut progressed = false;
            while let Some((&k, _)) = self.queue.iter().next() {
                if k.0 > self.now {
                    break;
                }
                let (d, s) = self.queue.remove(&k).expect("present");
                self.deliver(d, s);
                progressed = true;
            }
            let now = self.now;
            if self.a.poll_timeout().is_some_and(|t| t <= now) {
                let mut out = Vec::new();
                self.a.on_timeout(now, &mut out);
                self.send(Dir::AtoB, out);
                progressed = true;
            }
            if self.b.poll_timeout().is_some_and(|t| t <= now) {
                let mut out = Vec::new();
                self.b.on_timeout(now, &mut out);
                self.send(Dir::BtoA, out);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    /// Advances to the next event (if any before `limit`) and processes it.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.run_due();
        match self.next_event() {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                self.run_due();
                true
            }
            _ => false,
        }
    }

    /// Runs until `cond` holds or `max` virtual time passes; returns whether it held.
    pub fn run_until(&mut self, max: Duration, mut cond: impl FnMut(&mut Net) -> bool) -> bool {
        let limit = self.now + max;
        loop {
            self.run_due();
            if cond(self) {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= limit => self.now = self.now.max(t),
                _ => {
                    self.now = limit;
                    self.run_due();
                    return cond(self);
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = limit;
        self.run_due();
    }

    /// Runs until nothing is in flight in the pipe (timers may remain).
    pub fn settle(&mut self) {
        let limit = self.now + Duration::from_secs(5);
        while !self.queue.is_empty() && self.step(limit) {}
    }

    pub fn log_take(&mut self) -> Vec<Seg> {
        std::mem::take(&mut self.log)
    }

    /// B listens on `port`; A connects; runs the handshake. Returns (client, server).
    pub fn connect_pair(&mut self, port: u16) -> (SockId, SockId) {
        let l = self.listen_b(port, 16);
        let c = self.connect_a(port);
        assert!(self.run_until(Duration::from_secs(10), |n| n.a.state(c)
            == Some(TcpState::Established)));
        self.settle();
        let s = self.b.accept(l).expect("accept").expect("a connection");
        (c, s)
    }

    pub fn listen_b(&mut self, port: u16, backlog: u32) -> SockId {
        let l = self.b.socket();
        self.b
            .bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .expect("bind");
        self.b.listen(l, backlog).expect("listen");
        l
    }

    pub fn connect_a(&mut self, port: u16) -> SockId {
        let c = self.a.socket();
        let mut out = Vec::new();
        let now = self.now;
        self.a
            .connect(now, c, A_IP, SocketAddrV4::new(B_IP, port), MTU, &mut out)
            .expect("connect");
        self.send(Dir::AtoB, out);
        c
    }

    pub fn a_send(&mut self, id: SockId, data: &[u8]) -> usize {
        let mut out = Vec::new();
        let now = self.now;
        let r = self.a.send(now, id, data, &mut out);
        self.send(Dir::AtoB, out);
        r.unwrap_or(0)
    }

    /// A's send from any source (`TcpLayer::send_from`), its segments put on the wire.
    pub fn a_send_from(
        &mut self,
        id: SockId,
        src: ustack_tcp::SendSrc<'_>,
    ) -> Result<usize, ustack_tcp::TcpError> {
        let mut out = Vec::new();
        let now = self.now;
        let r = self.a.send_from(now, id, src, &mut out);
        self.send(Dir::AtoB, out);
        r
    }

    pub fn b_send(&mut self, id: SockId, data: &[u8]) -> usize {
        let mut out = Vec::new();
        let now = self.now;
        let r = self.b.send(now, id, data, &mut out);
        self.send(Dir::BtoA, out);
        r.unwrap_or(0)
    }

    pub fn recv_all(&mut self, d: Dir, id: SockId) -> Vec<u8> {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let mut out = Vec::new();
            let now = self.now;
            let r = self.layer(d).recv(now, id, &mut buf, &mut out);
            self.send(d, out);
            match r {
                Ok(0) | Err(_) => break,
                Ok(n) => v.extend_from_slice(&buf[..n]),
            }
        }
        v
    }

    pub fn close(&mut self, d: Dir, id: SockId) {
        let mut out = Vec::new();
        let now = self.now;
        self.layer(d).close(now, id, &mut out);
        self.send(d, out);
    }

    pub fn shutdown(&mut self, d: Dir, id: SockId) {
        let mut out = Vec::new();
        let now = self.now;
        self.layer(d)
            .shutdown_write(now, id, &mut out)
            .expect("shutdown");
        self.send(d, out);
    }

    /// Injects a raw segment from `src` to `dst` into side `to`.
    pub fn inject(
        &mut self,
        to: Dir,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> Vec<Seg> {
        let mut pkt = PacketBuf::with_payload_capacity(payload.len());
        pkt.extend_from_slice(payload);
        let mut r = *repr;
        r.header_len = r.emit_len();
        r.emit(&mut pkt, *src.ip(), *dst.ip());
        let meta = IpRxMeta {
            src: *src.ip(),
            dst: *dst.ip(),
            protocol: 6,
            ttl: 64,
            tos: 0,
            dev: DevId(0),
            multi: false,
        };
        let now = self.now;
        let mut out = Vec::new();
        // `to` names the receiving side: AtoB = B receives.
        let (layer, reply_dir) = match to {
            Dir::AtoB => (&mut self.b, Dir::BtoA),
            Dir::BtoA => (&mut self.a, Dir::AtoB),
        };
        layer.input(
            now,
            &meta,
            PacketBuf::from_vec(pkt.into_vec()),
            MTU,
            &mut out,
        );
        layer.flush_acks(now, &mut out);
        let segs: Vec<Seg> = out.iter().map(|s| decode(reply_dir, now, s)).collect();
        self.send(reply_dir, out);
        segs
    }

    /// Like [`Net::inject`] but the replies are only returned, not sent (spoofed sources).
    pub fn inject_noreply(
        &mut self,
        to: Dir,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> Vec<Seg> {
        let mut pkt = PacketBuf::with_payload_capacity(payload.len());
        pkt.extend_from_slice(payload);
        let mut r = *repr;
        r.header_len = r.emit_len();
        r.emit(&mut pkt, *src.ip(), *dst.ip());
        let meta = IpRxMeta {
            src: *src.ip(),
            dst: *dst.ip(),
            protocol: 6,
            ttl: 64,
            tos: 0,
            dev: DevId(0),
            multi: false,
        };
        let now = self.now;
        let mut out = Vec::new();
        let (layer, reply_dir) = match to {
            Dir::AtoB => (&mut self.b, Dir::BtoA),
            Dir::BtoA => (&mut self.a, Dir::AtoB),
        };
        layer.input(
            now,
            &meta,
            PacketBuf::from_vec(pkt.into_vec()),
            MTU,
            &mut out,
        );
        layer.flush_acks(now, &mut out);
        out.iter().map(|s| decode(reply_dir, now, s)).collect()
    }

    /// Sends B one SYN (MSS 1460) to `port` from spoofed source number `i`
    /// (192.168.x.y:1000+i) and drops B's reply.
    pub fn spoofed_syn_b(&mut self, i: u32, port: u16) {
        let src = sa(
            Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8),
            1000 + i as u16,
        );
        let mut r = TcpRepr::new(src.port(), port, SeqNum(i * 7919), SeqNum(0), TcpFlags::SYN);
        r.window = 1000;
        r.options.mss = Some(1460);
        self.inject_noreply(Dir::AtoB, src, sa(B_IP, port), &r, &[]);
    }

    /// A SYN flood that fills B's SYN queue: `count` spoofed SYNs to `port`.
    pub fn syn_flood_b(&mut self, port: u16, count: u32) {
        for i in 0..count {
            self.spoofed_syn_b(i, port);
        }
    }

    /// Connects a new socket of A to B's listener `l` on `port` (A's route MTU
    /// `route_mtu`), runs until A is established and returns A's socket and the one B
    /// accepted.
    pub fn connect_to_listener(
        &mut self,
        l: SockId,
        port: u16,
        route_mtu: usize,
    ) -> (SockId, SockId) {
        let c = self.a.socket();
        let mut out = Vec::new();
        self.a
            .connect(self.now, c, A_IP, sa(B_IP, port), route_mtu, &mut out)
            .unwrap();
        self.send(Dir::AtoB, out);
        assert!(self.run_until(Duration::from_secs(5), |n| n.a.state(c)
            == Some(TcpState::Established)));
        self.settle();
        let s = self.b.accept(l).unwrap().expect("connection accepted");
        (c, s)
    }

    /// The flags of the last SYN-ACK B sent.
    pub fn last_synack_flags(&self) -> TcpFlags {
        self.log
            .iter()
            .rev()
            .find(|x| x.dir == Dir::BtoA && x.flags.syn())
            .expect("a SYN-ACK")
            .flags
    }

    /// The sequence number of the first data segment logged in direction `d`.
    pub fn first_data_seq(&self, d: Dir) -> u32 {
        self.log
            .iter()
            .find(|x| x.dir == d && x.len > 0)
            .expect("a data segment")
            .seq
    }

    /// The last segment logged in direction `d`.
    pub fn last(&self, d: Dir) -> Seg {
        self.log
            .iter()
            .rev()
            .find(|s| s.dir == d)
            .expect("a segment")
            .clone()
    }

    /// Pumps `data` from A to B through the pipe, reading at B; returns what B got.
    pub fn transfer(&mut self, c: SockId, s: SockId, data: &[u8], max: Duration) -> Vec<u8> {
        self.transfer_observed(c, s, data, max, |_| {})
    }

    /// [`transfer`](Self::transfer), calling `observe` before every step of the clock.
    pub fn transfer_observed(
        &mut self,
        c: SockId,
        s: SockId,
        data: &[u8],
        max: Duration,
        mut observe: impl FnMut(&Net),
    ) -> Vec<u8> {
        let mut sent = 0;
        let mut got = Vec::with_capacity(data.len());
        let limit = self.now + max;
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < data.len() && self.now < limit {
            if sent < data.len() {
                let n = self.a_send(c, &data[sent..]);
                sent += n;
            }
            loop {
                let mut out = Vec::new();
                let now = self.now;
                match self.b.recv(now, s, &mut buf, &mut out) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => {
                        self.send(Dir::BtoA, out);
                        break;
                    }
                }
                self.send(Dir::BtoA, out);
            }
            if got.len() >= data.len() {
                break;
            }
            observe(self);
            if !self.step(limit) {
                break;
            }
        }
        got
    }
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// FNV-1a 64 over data (a cheap content hash for big transfers).
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        v.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    v.truncate(n);
    v
}
