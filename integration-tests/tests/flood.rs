//! Issue 7: a SYN flood with spoofed sources and a stream of malformed packets, written
//! into the TUN device from the kernel side, while real kernel clients (std `TcpStream`)
//! connect to the stack's echo server and each move 1 MiB through it.
//!
//! The stack is `soak tun-echo` (examples/src/bin/soak.rs): echo on port 5002, a TCP
//! memory budget (`--mem-limit`), a small SYN queue (`--max-syn-backlog`) so SYN cookies
//! engage, and a `stats key=value ...` line every 250 ms. The flood goes through an
//! `AF_PACKET` socket bound to the TUN device, so spoofed sources (10.77.0.0/16) and
//! packets the kernel's IP output would refuse (bad IP checksum, bad version, truncated
//! headers) reach the stack as they are. The stack answers spoofed SYNs through its
//! gateway (the kernel side), which drops the replies.
//!
//! Asserts: every client's echo is byte-identical, SYN cookies were sent, malformed
//! packets were counted as errors, and socket-buffer memory stayed under the budget
//! (1 MiB, plus each socket's `rmem.0` + `wmem.0` minimum), which the 20 streams reach,
//! so memory pressure and the over-limit drops run during the flood as well.
//! Prints the flood rate, the legitimate connect success rate, peak memory (stack
//! counter and process RSS) and the drop counters. Bounded: 6 to 15 s of flood.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ustack_integration_tests::packet::PacketSocket;
use ustack_integration_tests::{
    example_bin, fill_pattern, kv, pattern_sha256, require_root, sha256, stack_cidr, TunNet,
    HOST_IP, STACK_IP,
};

const PORT: u16 = 5002;
const CLIENTS: usize = 20;
const BYTES: u64 = 1 << 20;
/// The stack's TCP buffer budget: small enough that 20 echo streams push it into memory
/// pressure and over the limit, so the shedding paths run under the flood too.
const MEM_LIMIT: u64 = 1 << 20;
/// What may exceed the budget: each socket's `rmem.0` + `wmem.0` minimum (Linux
/// `sk_mem_schedule` lets a socket hold that much whatever the global state).
const PER_SOCKET_MIN: u64 = 4096 + 4096;
/// The flood lasts at least this long (the clients transfer while it runs).
const SYN_BACKLOG: u32 = 64;
const FLOOD_MIN: Duration = Duration::from_secs(6);
const FLOOD_MAX: Duration = Duration::from_secs(15);
/// Clients send in chunks of this size with a pause between them, so that every
/// transfer overlaps the flood.
const CHUNK: usize = 64 * 1024;
const CHUNK_PAUSE: Duration = Duration::from_millis(150);
/// Flood pacing: this many packets, then a 5 ms pause (about 20 000 packets/s).
const BURST: u64 = 100;

/// Internet checksum (RFC 1071) over `parts` concatenated (each of even length except
/// possibly the last).
fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(h) => sum += u32::from(u16::from_be_bytes([h, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(h) = odd {
        sum += u32::from(u16::from_be_bytes([h, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An IPv4 packet around `l4` (valid header checksum unless the caller breaks it).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = csum(&[&p]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// A TCP segment with a valid checksum (options padded by the caller).
fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut t = vec![0u8; hl];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&PORT.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..].copy_from_slice(opts);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(hl as u16).to_be_bytes());
    let c = csum(&[&pseudo, &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Packet `i` of the flood: mostly spoofed SYNs, every 8th a malformed packet of one of
/// six kinds. Returns (packet, malformed?).
fn flood_packet(i: u64, rng: &mut Rng) -> (Vec<u8>, bool) {
    let dst: Ipv4Addr = STACK_IP.parse().unwrap();
    let src = Ipv4Addr::new(10, 77, (i >> 8) as u8, i as u8);
    let sport = 1024 + (i % 60000) as u16;
    let seq = rng.next() as u32;
    let mss = [2, 4, 0x05, 0xb4];
    if i % 8 != 7 {
        return (
            ipv4(
                src,
                dst,
                6,
                i as u16,
                &tcp(src, dst, sport, seq, 0, 0x02, &mss),
            ),
            false,
        );
    }
    let p = match (i / 8) % 6 {
        // Random bytes (mostly a bad version or header length).
        0 => {
            let n = 1 + (rng.next() % 80) as usize;
            (0..n).map(|_| rng.next() as u8).collect()
        }
        // A SYN with a bad TCP checksum.
        1 => {
            let mut t = tcp(src, dst, sport, seq, 0, 0x02, &mss);
            t[16] ^= 0x5a;
            ipv4(src, dst, 6, i as u16, &t)
        }
        // A truncated TCP header (8 bytes).
        2 => {
            let t = tcp(src, dst, sport, seq, 0, 0x02, &[]);
            ipv4(src, dst, 6, i as u16, &t[..8])
        }
        // A bad IP header checksum.
        3 => {
            let mut p = ipv4(
                src,
                dst,
                6,
                i as u16,
                &tcp(src, dst, sport, seq, 0, 0x02, &mss),
            );
            p[10] ^= 0xff;
            p
        }
        // A malformed option (MSS with length 40) under a valid checksum.
        4 => ipv4(
            src,
            dst,
            6,
            i as u16,
            &tcp(src, dst, sport, seq, 0, 0x02, &[2, 40, 1, 1]),
        ),
        // A blind ACK: a forged cookie (SyncookiesFailed, answered with RST).
        _ => ipv4(
            src,
            dst,
            6,
            i as u16,
            &tcp(src, dst, sport, seq, rng.next() as u32, 0x10, &[]),
        ),
    };
    (p, true)
}

/// Writes the flood into TUN device `ifname` through an AF_PACKET socket until `stop`
/// (or [`FLOOD_MAX`]). Runs inside the namespace. Returns (SYNs, malformed, send errors).
fn flood(ifname: &str, stop: Arc<AtomicBool>) -> (u64, u64, u64) {
    let sock = PacketSocket::sender(ifname).expect("AF_PACKET sender");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut syns, mut bad, mut errs) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut i = 0u64;
    while (!stop.load(Ordering::Relaxed) || start.elapsed() < FLOOD_MIN)
        && start.elapsed() < FLOOD_MAX
    {
        for _ in 0..BURST {
            let (p, malformed) = flood_packet(i, &mut rng);
            i += 1;
            if sock.send(&p).is_err() {
                errs += 1;
            } else if malformed {
                bad += 1;
            } else {
                syns += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (syns, bad, errs)
}

/// One legitimate client: connect (retrying on failure), echo 1 MiB, compare.
/// Returns (connect attempts, connected?, echo hash).
fn client(i: usize) -> (u32, Result<String, String>) {
    let addr: SocketAddr = format!("{STACK_IP}:{PORT}").parse().unwrap();
    let mut attempts = 0;
    let s = loop {
        attempts += 1;
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => break s,
            Err(e) if attempts >= 6 => return (attempts, Err(format!("connect: {e}"))),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let run = || -> std::io::Result<String> {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut w = s.try_clone()?;
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = vec![0u8; CHUNK];
            let mut off = 0u64;
            while off < BYTES {
                let n = (BYTES - off).min(buf.len() as u64) as usize;
                fill_pattern(&mut buf[..n], off);
                w.write_all(&buf[..n])?;
                off += n as u64;
                std::thread::sleep(CHUNK_PAUSE);
            }
            w.shutdown(Shutdown::Write)
        });
        let mut got = Vec::with_capacity(BYTES as usize);
        (&s).read_to_end(&mut got)?;
        writer
            .join()
            .map_err(|_| std::io::Error::other("writer panicked"))??;
        Ok(sha256(&got))
    };
    let r = run().map_err(|e| format!("client {i}: echo: {e}"));
    (attempts, r)
}

fn last_stats(output: &str) -> HashMap<String, u64> {
    output
        .lines()
        .rev()
        .find(|l| l.starts_with("stats "))
        .map(kv)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
        .collect()
}

#[test]
fn syn_flood_and_malformed_packets_while_clients_transfer() {
    require_root!();
    let t0 = Instant::now();
    let bin = example_bin("soak");
    let net = TunNet::new("flood");
    let addr = stack_cidr();
    let mem = MEM_LIMIT.to_string();
    let backlog = SYN_BACKLOG.to_string();
    let stack = net.ns.spawn(
        "soak tun-echo",
        &bin,
        &[
            "tun-echo",
            "--tun",
            &net.tun,
            "--addr",
            &addr,
            "--gateway",
            HOST_IP,
            "--port",
            &PORT.to_string(),
            "--mem-limit",
            &mem,
            "--max-syn-backlog",
            &backlog,
            "--stats-ms",
            "250",
        ],
    );
    stack.wait_for("ready", Duration::from_secs(20));
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let tun = net.tun.clone();
    let stop2 = stop.clone();
    let flooder = net.ns.thread(move || flood(&tun, stop2));
    // Let the flood fill the SYN queue before the clients come.
    std::thread::sleep(Duration::from_millis(1000));

    let ok_first = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let ok_first = ok_first.clone();
            net.ns.thread(move || {
                let r = client(i);
                if r.0 == 1 && r.1.is_ok() {
                    ok_first.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
        })
        .collect();
    let results: Vec<(u32, Result<String, String>)> = clients
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (syns, bad, send_errs) = flooder.join().expect("flood thread");
    let flood_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(600));
    let during = last_stats(&stack.output());
    let (exited, out) = stack.terminate(Duration::from_secs(10));
    let fin = last_stats(&out);
    let st = if fin.is_empty() { &during } else { &fin };
    let g = |k: &str| st.get(k).copied().unwrap_or(0);

    let attempts: u32 = results.iter().map(|r| r.0).sum();
    let connected = results.iter().filter(|r| r.1.is_ok()).count();
    let want = pattern_sha256(BYTES);
    let identical = results
        .iter()
        .filter(|r| r.1.as_deref() == Ok(want.as_str()))
        .count();
    println!(
        "flood: {syns} spoofed SYNs + {bad} malformed packets in {flood_secs:.1} s \
         ({:.0} packets/s, {send_errs} send errors)",
        (syns + bad) as f64 / flood_secs
    );
    println!(
        "legitimate clients: {connected}/{CLIENTS} transferred 1 MiB each, {identical} \
         byte-identical; connect attempts {attempts}, success rate per attempt {:.1} %, \
         first-attempt successes {}/{CLIENTS}",
        100.0 * connected as f64 / attempts.max(1) as f64,
        ok_first.load(Ordering::Relaxed)
    );
    let budget = MEM_LIMIT + (CLIENTS as u64 + 1) * PER_SOCKET_MIN;
    println!(
        "stack: memory_used_peak={} B (mem_limit {MEM_LIMIT} B, bound with per-socket \
         minimums {budget} B), memory_used now={}, peak_rss={} kB, sockets={}, conns={}",
        g("memory_used_peak"),
        g("memory_used"),
        g("peak_rss_kb"),
        g("sockets"),
        g("conns")
    );
    println!(
        "counters: syncookies_sent={} syncookies_recv={} syncookies_failed={} \
         passive_opens={} listen_drops={} listen_overflows={} tcp_req_q_full_drop={} \
         tcp_rcvq_drop={} tcp_ofo_drop={} prune_called={} tcp_memory_pressures={} in_errs={} \
         in_csum_errors={} ip_in_hdr_errors={} ip_in_discards={} dev_rx_packets={} \
         dev_rx_dropped={}",
        g("syncookies_sent"),
        g("syncookies_recv"),
        g("syncookies_failed"),
        g("passive_opens"),
        g("listen_drops"),
        g("listen_overflows"),
        g("tcp_req_q_full_drop"),
        g("tcp_rcvq_drop"),
        g("tcp_ofo_drop"),
        g("prune_called"),
        g("tcp_memory_pressures"),
        g("in_errs"),
        g("in_csum_errors"),
        g("ip_in_hdr_errors"),
        g("ip_in_discards"),
        g("dev_rx_packets"),
        g("dev_rx_dropped")
    );
    println!("total test time {:.1} s", t0.elapsed().as_secs_f64());

    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.1.as_deref(),
            Ok(want.as_str()),
            "client {i} (after {} connect attempts)",
            r.0
        );
    }
    assert!(exited, "the stack exits cleanly after the flood:\n{out}");
    assert!(!st.is_empty(), "no stats line from the stack:\n{out}");
    assert!(syns > 1000, "the flood ran: {syns} SYNs");
    assert!(g("syncookies_sent") > 0, "SYN cookies engaged");
    assert!(
        g("in_errs") + g("ip_in_hdr_errors") > 0,
        "malformed packets counted"
    );
    assert!(
        g("memory_used_peak") <= budget,
        "socket memory {} over the budget {budget}",
        g("memory_used_peak")
    );
    // The SYN queue holds at most the backlog of spoofed request socks; cookies keep the
    // rest stateless, so the stack's sockets stay bounded.
    assert!(
        g("sockets") <= u64::from(SYN_BACKLOG) + CLIENTS as u64 + 8,
        "sockets bounded: {}",
        g("sockets")
    );
}
