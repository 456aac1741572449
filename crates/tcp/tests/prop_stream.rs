//! The end-to-end property of TCP (RFC 9293 section 1: reliable, ordered byte streams):
//! two `TcpLayer` engines joined by a simulated link that loses, reorders, duplicates and
//! corrupts segments on a proptest-chosen seeded schedule. Whatever the schedule, each
//! side receives exactly the bytes the other sent, then EOF, or the connection fails
//! with a clear error (timeout or reset) after delivering a prefix of the stream — never
//! silently different bytes. Corruption flips one byte of a segment; the TCP checksum
//! must reject it (RFC 9293 3.1, RFC 1071).
//!
//! `STREAM_TRACE=<seconds>` prints every segment sent after that much virtual time
//! (with its fate on the link), to debug a failing case.
//!
//! Time is virtual: a fixed `Instant` base plus an advancing `Duration`, moved to the next
//! link delivery or timer deadline, so a case with minutes of retransmission backoff runs
//! in milliseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ustack_ipv4::IpRxMeta;
use ustack_netdev::rng::SplitMix64;
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::{SockId, SockOpt, TcpConfig, TcpError, TcpLayer, TcpSegmentOut};

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B_PORT: u16 = 5001;
/// Virtual time after which a case that neither finished nor failed is a hang.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(4 * 3600);

/// The link's deterministic fault schedule: the shared splitmix64, with a `chance` that
/// always draws (so a seed gives the same schedule whatever the probabilities).
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.next_f64() <= p && p > 0.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
}

/// What the link does to each segment (each probability applies independently).
#[derive(Clone, Copy, Debug)]
struct Faults {
    loss: f64,
    duplicate: f64,
    reorder: f64,
    corrupt: f64,
    seed: u64,
    /// One-way delay in ms.
    delay_ms: u64,
    mtu: usize,
    /// Chance that an application reads on a given turn (a slow reader fills the
    /// receive window: zero windows, window probes, window updates).
    read_chance: f64,
    /// SO_RCVBUF for both sockets, when set.
    rcvbuf: Option<usize>,
}

#[derive(Debug, Default)]
struct LinkStats {
    sent: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    corrupted: u64,
}

/// A segment on the wire: (delivery time, sequence for a stable order), direction, bytes.
type Wire = Reverse<(Duration, u64, bool, Vec<u8>)>;

struct Link {
    faults: Faults,
    rng: Rng,
    q: BinaryHeap<Wire>,
    order: u64,
    stats: LinkStats,
}

impl Link {
    fn transmit(&mut self, t: Duration, to_b: bool, segs: &mut Vec<TcpSegmentOut>) {
        for seg in segs.drain(..) {
            self.stats.sent += 1;
            let (src, dst) = if to_b { (A_IP, B_IP) } else { (B_IP, A_IP) };
            assert_eq!(
                (seg.src, seg.dst),
                (src, dst),
                "segment with the wrong addresses"
            );
            // The link carries IP packets of at most `mtu` bytes and TCP sets DF: a bigger
            // segment would never arrive.
            assert!(
                seg.pkt.len() + 20 <= self.faults.mtu,
                "a {}-byte segment on a {}-byte MTU link",
                seg.pkt.len(),
                self.faults.mtu
            );
            let lost = self.rng.chance(self.faults.loss);
            if std::env::var("STREAM_TRACE")
                .is_ok_and(|v| t.as_secs_f64() > v.parse::<f64>().unwrap_or(0.0))
            {
                let (src, dst) = if to_b { (A_IP, B_IP) } else { (B_IP, A_IP) };
                let (r, range) =
                    ustack_tcp::wire::TcpRepr::parse(seg.pkt.data(), src, dst, true).unwrap();
                eprintln!(
                    "{:>12.3} {} seq={} ack={} {:?} len={} win={} ts={:?} sack={:?}{}",
                    t.as_secs_f64(),
                    if to_b { "A>B" } else { "B>A" },
                    r.seq.0,
                    r.ack.0,
                    r.flags,
                    range.len(),
                    r.window,
                    r.options.timestamp,
                    r.options.sack_blocks(),
                    if lost { " LOST" } else { "" }
                );
            }
            if lost {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if self.rng.chance(self.faults.duplicate) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut bytes = seg.pkt.data().to_vec();
                if !bytes.is_empty() && self.rng.chance(self.faults.corrupt) {
                    // One byte changed: a one's-complement checksum always catches it.
                    let i = self.rng.below(bytes.len() as u64) as usize;
                    bytes[i] ^= (self.rng.below(255) + 1) as u8;
                    self.stats.corrupted += 1;
                }
                let mut delay = Duration::from_millis(self.faults.delay_ms);
                if self.rng.chance(self.faults.reorder) {
                    delay += Duration::from_micros(
                        self.rng.below(4 * self.faults.delay_ms * 1000 + 1000),
                    );
                    self.stats.reordered += 1;
                }
                self.order += 1;
                self.q.push(Reverse((t + delay, self.order, to_b, bytes)));
            }
        }
    }
}

/// One end: its engine, its socket and its half of the transfer.
struct End {
    tcp: TcpLayer,
    sock: Option<SockId>,
    to_send: Vec<u8>,
    sent: usize,
    shut: bool,
    received: Vec<u8>,
    eof: bool,
    error: Option<TcpError>,
    last_read: Instant,
}

impl End {
    fn new(ip: Ipv4Addr, data: Vec<u8>, seed: u64, base: Instant) -> End {
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[8] = ip.octets()[3];
        End {
            tcp: TcpLayer::new(TcpConfig::default(), secret),
            sock: None,
            to_send: data,
            sent: 0,
            shut: false,
            received: Vec::new(),
            eof: false,
            error: None,
            last_read: base,
        }
    }

    fn note_error(&mut self, e: TcpError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// The application's turn: write what fits, FIN when all is written, read everything.
    fn app(&mut self, now: Instant, rng: &mut Rng, read_chance: f64, out: &mut Vec<TcpSegmentOut>) {
        let Some(id) = self.sock else { return };
        if self.error.is_some() {
            return;
        }
        while self.sent < self.to_send.len() {
            let chunk = 1 + rng.below(32 * 1024) as usize;
            let end = (self.sent + chunk).min(self.to_send.len());
            match self.tcp.send(now, id, &self.to_send[self.sent..end], out) {
                Ok(0) | Err(TcpError::WouldBlock) => break,
                Ok(n) => {
                    assert!(n <= end - self.sent);
                    self.sent += n;
                }
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
        if self.sent == self.to_send.len() && !self.shut {
            match self.tcp.shutdown_write(now, id, out) {
                Ok(()) => self.shut = true,
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
        // A slow reader still reads at least every 200 ms (of virtual time).
        if !rng.chance(read_chance)
            && now.saturating_duration_since(self.last_read) < Duration::from_millis(200)
        {
            return;
        }
        self.last_read = now;
        let mut buf = vec![0u8; 1 + rng.below(64 * 1024) as usize];
        while !self.eof {
            match self.tcp.recv(now, id, &mut buf, out) {
                Ok(0) => self.eof = true,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
        if let Some(e) = self.tcp.poll_state(id).error {
            self.note_error(e);
        }
    }

    fn done(&self) -> bool {
        self.eof && self.shut
    }
}

fn meta(src: Ipv4Addr, dst: Ipv4Addr) -> IpRxMeta {
    IpRxMeta {
        src,
        dst,
        protocol: 6,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: false,
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[derive(Debug)]
enum Outcome {
    Delivered,
    Failed(TcpError),
}

/// Runs one transfer: `a_len` bytes from A to B and `b_len` bytes back, both sides then
/// close. Returns the outcome; panics (fails the property) on any silent difference.
fn run(faults: Faults, a_len: usize, b_len: usize) -> (Outcome, LinkStats) {
    let base = Instant::now();
    let mut t = Duration::ZERO;
    let mut link = Link {
        faults,
        rng: Rng::new(faults.seed),
        q: BinaryHeap::new(),
        order: 0,
        stats: LinkStats::default(),
    };
    let mut app_rng = Rng::new(faults.seed ^ 0xdead_beef);
    let mut a = End::new(A_IP, pattern(a_len, faults.seed ^ 1), faults.seed, base);
    let mut b = End::new(B_IP, pattern(b_len, faults.seed ^ 2), faults.seed ^ 3, base);
    let mut out = Vec::new();

    let listener = b.tcp.socket();
    b.tcp
        .bind(listener, SocketAddrV4::new(B_IP, B_PORT))
        .unwrap();
    b.tcp.listen(listener, 16).unwrap();
    let cs = a.tcp.socket();
    if let Some(n) = faults.rcvbuf {
        a.tcp.set_option(cs, SockOpt::RecvBuf(n)).unwrap();
    }
    a.tcp
        .connect(
            base,
            cs,
            A_IP,
            SocketAddrV4::new(B_IP, B_PORT),
            faults.mtu,
            &mut out,
        )
        .unwrap();
    a.sock = Some(cs);
    link.transmit(t, true, &mut out);

    let mut spins = 0u32;
    let mut forced_read = false;
    let outcome = loop {
        let now = base + t;
        // Deliver everything due.
        while link.q.peek().is_some_and(|Reverse((at, ..))| *at <= t) {
            let Some(Reverse((_, _, to_b, bytes))) = link.q.pop() else {
                break;
            };
            let (dst, src_ip, dst_ip) = if to_b {
                (&mut b, A_IP, B_IP)
            } else {
                (&mut a, B_IP, A_IP)
            };
            dst.tcp.input(
                now,
                &meta(src_ip, dst_ip),
                PacketBuf::from_slice(&bytes),
                faults.mtu,
                &mut out,
            );
            link.transmit(t, !to_b, &mut out);
        }
        // Timers.
        for (end, to_b) in [(&mut a, true), (&mut b, false)] {
            if end.tcp.poll_timeout().is_some_and(|d| d <= now) {
                end.tcp.on_timeout(now, &mut out);
                link.transmit(t, to_b, &mut out);
            }
        }
        // Applications.
        if b.sock.is_none() {
            match b.tcp.accept(listener) {
                Ok(Some(id)) => {
                    if let Some(n) = faults.rcvbuf {
                        b.tcp.set_option(id, SockOpt::RecvBuf(n)).unwrap();
                    }
                    b.sock = Some(id);
                }
                Ok(None) => {}
                Err(e) => panic!("accept failed: {e:?}"),
            }
        }
        a.app(now, &mut app_rng, faults.read_chance, &mut out);
        link.transmit(t, true, &mut out);
        b.app(now, &mut app_rng, faults.read_chance, &mut out);
        link.transmit(t, false, &mut out);

        // Never silently different: what arrived so far is a prefix of what was sent.
        assert!(
            b.received.len() <= a.to_send.len(),
            "B received more than A sent"
        );
        assert!(
            a.received.len() <= b.to_send.len(),
            "A received more than B sent"
        );
        assert!(
            b.received == a.to_send[..b.received.len()],
            "A->B stream differs"
        );
        assert!(
            a.received == b.to_send[..a.received.len()],
            "B->A stream differs"
        );

        if a.done() && b.done() {
            break Outcome::Delivered;
        }
        if let Some(e) = a.error.or(b.error) {
            break Outcome::Failed(e);
        }
        // Advance the virtual clock to the next event.
        let mut next: Option<Duration> = link.q.peek().map(|Reverse((at, ..))| *at);
        for end in [&a, &b] {
            if let Some(d) = end.tcp.poll_timeout() {
                let d = d.saturating_duration_since(base);
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        match next {
            Some(n) if n > t => {
                t = n;
                spins = 0;
                forced_read = false;
            }
            Some(_) => {
                spins += 1;
                assert!(spins < 10_000, "livelock at {t:?}: a timer or packet due now makes no progress");
            }
            None if !forced_read => {
                // Nothing in flight and no timer: the applications may simply not have
                // read (slow reader). Give them a turn that always reads.
                forced_read = true;
                a.app(now, &mut app_rng, 1.0, &mut out);
                link.transmit(t, true, &mut out);
                b.app(now, &mut app_rng, 1.0, &mut out);
                link.transmit(t, false, &mut out);
                continue;
            }
            None => panic!(
                "stalled at {t:?} with nothing in flight and no timer: a={}/{} sent, b received {}, b={}/{} sent, a received {}",
                a.sent,
                a.to_send.len(),
                b.received.len(),
                b.sent,
                b.to_send.len(),
                a.received.len()
            ),
        }
        assert!(
            t < VIRTUAL_LIMIT,
            "no outcome after {t:?} of virtual time: a={}/{} sent (shut {}), b received {} (eof {}), b={}/{} sent (shut {}), a received {} (eof {}); a {:?} {:?}, b {:?} {:?}",
            a.sent,
            a.to_send.len(),
            a.shut,
            b.received.len(),
            b.eof,
            b.sent,
            b.to_send.len(),
            b.shut,
            a.received.len(),
            a.eof,
            a.sock.and_then(|id| a.tcp.state(id)),
            a.sock.and_then(|id| a.tcp.info(id)),
            b.sock.and_then(|id| b.tcp.state(id)),
            b.sock.and_then(|id| b.tcp.info(id)),
        );
    };

    if let Outcome::Delivered = outcome {
        assert_eq!(b.received, a.to_send, "A->B stream");
        assert_eq!(a.received, b.to_send, "B->A stream");
        // Both close; run the link and the timers until both engines hold no connection
        // (TIME_WAIT, LAST_ACK retransmissions): nothing may leak.
        for (end, to_b) in [(&mut a, true), (&mut b, false)] {
            if let Some(id) = end.sock {
                end.tcp.close(base + t, id, &mut out);
                link.transmit(t, to_b, &mut out);
            }
        }
        let deadline = t + Duration::from_secs(3600);
        while t < deadline {
            let now = base + t;
            while link.q.peek().is_some_and(|Reverse((at, ..))| *at <= t) {
                let Some(Reverse((_, _, to_b, bytes))) = link.q.pop() else {
                    break;
                };
                let (dst, src_ip, dst_ip) = if to_b {
                    (&mut b, A_IP, B_IP)
                } else {
                    (&mut a, B_IP, A_IP)
                };
                dst.tcp.input(
                    now,
                    &meta(src_ip, dst_ip),
                    PacketBuf::from_slice(&bytes),
                    faults.mtu,
                    &mut out,
                );
                link.transmit(t, !to_b, &mut out);
            }
            for (end, to_b) in [(&mut a, true), (&mut b, false)] {
                if end.tcp.poll_timeout().is_some_and(|d| d <= now) {
                    end.tcp.on_timeout(now, &mut out);
                    link.transmit(t, to_b, &mut out);
                }
            }
            if a.tcp.connection_count() == 0 && b.tcp.connection_count() == 0 && link.q.is_empty() {
                break;
            }
            let mut next: Option<Duration> = link.q.peek().map(|Reverse((at, ..))| *at);
            for end in [&a, &b] {
                if let Some(d) = end.tcp.poll_timeout() {
                    let d = d.saturating_duration_since(base);
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            match next {
                Some(n) => t = t.max(n),
                None => break,
            }
        }
        assert_eq!(
            a.tcp.connection_count(),
            0,
            "A still holds a connection after close"
        );
        assert_eq!(
            b.tcp.connection_count(),
            0,
            "B still holds a connection after close"
        );
        assert_eq!(
            a.tcp.memory_used(),
            0,
            "A still accounts buffer memory after close"
        );
        assert_eq!(
            b.tcp.memory_used(),
            0,
            "B still accounts buffer memory after close"
        );
    }
    (outcome, link.stats)
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        0.0..0.15f64,
        0.0..0.1f64,
        0.0..0.3f64,
        0.0..0.1f64,
        any::<u64>(),
        1u64..40,
        prop_oneof![Just(1500usize), Just(576usize), Just(9000usize)],
        prop_oneof![Just(1.0f64), 0.05..1.0f64],
        prop_oneof![Just(None), Just(Some(4096usize)), Just(Some(16384usize))],
    )
        .prop_map(
            |(loss, duplicate, reorder, corrupt, seed, delay_ms, mtu, read_chance, rcvbuf)| {
                Faults {
                    loss,
                    duplicate,
                    reorder,
                    corrupt,
                    seed,
                    delay_ms,
                    mtu,
                    read_chance,
                    rcvbuf,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn stream_survives_a_hostile_link(f in faults(), a_len in 0usize..=256 * 1024, b_len in 0usize..=16 * 1024) {
        let (outcome, _stats) = run(f, a_len, b_len);
        match outcome {
            Outcome::Delivered => {}
            Outcome::Failed(e) => prop_assert!(
                matches!(e, TcpError::TimedOut | TcpError::ConnectionReset),
                "unclear failure {:?} with {:?}", e, f
            ),
        }
    }
}

/// A clean link delivers, and a fixed bad schedule exercises every fault at once.
#[test]
fn fixed_schedules_deliver() {
    for (loss, dup, reorder, corrupt) in [
        (0.0, 0.0, 0.0, 0.0),
        (0.1, 0.05, 0.2, 0.05),
        (0.0, 0.0, 0.0, 0.3),
    ] {
        let f = Faults {
            loss,
            duplicate: dup,
            reorder,
            corrupt,
            seed: 42,
            delay_ms: 10,
            mtu: 1500,
            read_chance: 1.0,
            rcvbuf: None,
        };
        let (outcome, stats) = run(f, 200_000, 10_000);
        eprintln!("{f:?}: {outcome:?}, link {stats:?}");
        assert!(
            matches!(outcome, Outcome::Delivered),
            "{outcome:?} with {f:?}, link {stats:?}"
        );
        if corrupt > 0.0 {
            assert!(stats.corrupted > 0);
        }
    }
}

/// A slow reader with a tiny receive buffer on a lossy link: zero windows and probes.
#[test]
fn slow_reader_small_window_delivers() {
    let f = Faults {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.1,
        corrupt: 0.02,
        seed: 7,
        delay_ms: 5,
        mtu: 1500,
        read_chance: 0.1,
        rcvbuf: Some(4096),
    };
    let (outcome, stats) = run(f, 100_000, 3_000);
    eprintln!("{f:?}: {outcome:?}, link {stats:?}");
    assert!(
        matches!(outcome, Outcome::Delivered),
        "{outcome:?} with {f:?}, link {stats:?}"
    );
}

/// Number of cases: `default`, or `PROPTEST_CASES` from the environment to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
