//! The impairment relay: user-space forwarding between two TUN devices in two namespaces
//! (this kernel has no netem). Each direction is one thread: read every packet, drop it with
//! probability `loss` (a seeded xorshift, so runs repeat), hold the rest for `delay`, then
//! write it out of the other TUN, in order unless `reorder` holds a packet back for
//! `reorder_delay` more (later packets then overtake it). No rate limit.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::tunraw::{open_tun, wait_readable};
use crate::util::emit;

/// Relay options.
pub struct RelayOpts {
    /// Namespace file (`/run/netns/NAME`) and TUN name of side A.
    pub a: (String, String),
    /// Namespace file and TUN name of side B.
    pub b: (String, String),
    /// Drop probability per packet, each direction.
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    /// Probability per packet of being held back `reorder_delay` longer, each direction.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// PRNG seed.
    pub seed: u64,
    /// Lifetime.
    pub secs: f64,
}

fn setns(path: &str) -> io::Result<()> {
    let f = std::fs::File::open(Path::new(path))?;
    // SAFETY: setns on an open namespace file; affects this thread only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// xorshift64* (seeded, deterministic).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default, Clone, Copy)]
struct DirStats {
    read: u64,
    dropped: u64,
    reordered: u64,
    written: u64,
    overflow: u64,
}

/// What one direction does to its packets.
#[derive(Clone, Copy)]
struct Impair {
    loss: f64,
    delay: Duration,
    reorder: f64,
    reorder_delay: Duration,
}

fn forward(from: &OwnedFd, to: &OwnedFd, im: Impair, seed: u64, stop: &AtomicBool) -> DirStats {
    const MAX_QUEUE: usize = 100_000;
    let mut rng = Rng(seed | 1);
    let mut q: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut st = DirStats::default();
    let (rfd, wfd) = (from.as_raw_fd(), to.as_raw_fd());
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some((due, _)) = q.front() {
            if *due > now {
                break;
            }
            if let Some((_, pkt)) = q.pop_front() {
                // SAFETY: writing an owned buffer.
                let n = unsafe { libc::write(wfd, pkt.as_ptr().cast(), pkt.len()) };
                if n > 0 {
                    st.written += 1;
                }
                pool.push(pkt);
            }
        }
        let wait_ms = match q.front() {
            Some((due, _)) => due
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(0, 50) as i32,
            None => 50,
        };
        if !wait_readable(rfd, wait_ms) {
            continue;
        }
        loop {
            let mut buf = pool.pop().unwrap_or_default();
            buf.resize(65536, 0);
            // SAFETY: reading into an owned buffer of the given length (fd is non-blocking).
            let n = unsafe { libc::read(rfd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                pool.push(buf);
                break;
            }
            st.read += 1;
            buf.truncate(n as usize);
            if rng.next_f64() < im.loss {
                st.dropped += 1;
                pool.push(buf);
            } else if q.len() >= MAX_QUEUE {
                st.overflow += 1;
                pool.push(buf);
            } else {
                let mut due = Instant::now() + im.delay;
                if im.reorder > 0.0 && rng.next_f64() < im.reorder {
                    st.reordered += 1;
                    due += im.reorder_delay;
                }
                enqueue(&mut q, due, buf);
            }
        }
    }
    st
}

/// Queues `buf` to leave at `due`, after everything due no later (the queue stays in
/// order of departure; a held-back packet goes behind those that overtake it). Due
/// times only grow but for held-back packets, so the search from the back is short.
fn enqueue(q: &mut VecDeque<(Instant, Vec<u8>)>, due: Instant, buf: Vec<u8>) {
    let at = q.len() - q.iter().rev().take_while(|(d, _)| *d > due).count();
    q.insert(at, (due, buf));
}

/// Runs the relay until `secs` pass.
pub fn relay(o: RelayOpts) -> io::Result<()> {
    setns(&o.a.0)?;
    let fa = Arc::new(open_tun(&o.a.1, true)?);
    setns(&o.b.0)?;
    let fb = Arc::new(open_tun(&o.b.1, true)?);
    println!(
        "READY relay loss={} delay_ms={} reorder={} reorder_ms={} seed={}",
        o.loss,
        o.delay.as_millis(),
        o.reorder,
        o.reorder_delay.as_millis(),
        o.seed
    );
    let im = Impair {
        loss: o.loss,
        delay: o.delay,
        reorder: o.reorder,
        reorder_delay: o.reorder_delay,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    for (i, (from, to)) in [(fa.clone(), fb.clone()), (fb, fa)].into_iter().enumerate() {
        let stop = stop.clone();
        let seed = o.seed.wrapping_add(i as u64 * 0x9e37_79b9_7f4a_7c15);
        hs.push(std::thread::spawn(move || {
            forward(&from, &to, im, seed, &stop)
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(o.secs));
    stop.store(true, Ordering::Relaxed);
    let st: Vec<DirStats> = hs
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    let j = |d: &DirStats| json!({ "read": d.read, "dropped": d.dropped, "reordered": d.reordered, "written": d.written, "overflow": d.overflow });
    emit(
        "relay",
        "relay",
        json!({ "a_to_b": j(&st[0]), "b_to_a": j(&st[1]) }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet held back leaves after the ones queued later with earlier due times, and
    /// packets due at the same time keep their arrival order.
    #[test]
    fn held_back_packets_are_overtaken() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = VecDeque::new();
        enqueue(&mut q, t0 + ms(50), vec![1]);
        enqueue(&mut q, t0 + ms(61), vec![2]); // held back 10 ms
        enqueue(&mut q, t0 + ms(52), vec![3]);
        enqueue(&mut q, t0 + ms(53), vec![4]);
        enqueue(&mut q, t0 + ms(53), vec![5]);
        enqueue(&mut q, t0 + ms(62), vec![6]);
        let order: Vec<u8> = q.iter().map(|(_, b)| b[0]).collect();
        assert_eq!(order, vec![1, 3, 4, 5, 2, 6]);
    }
}
