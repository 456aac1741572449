//! In-memory link: two connected devices, like a veth pair (Linux: `drivers/net/veth.c`).
//!
//! What one end transmits, the other end receives, in order. Each direction has a bounded
//! queue of packets guarded by its own mutex (a sender and a receiver never contend with
//! the other direction). A transmit call queues its whole batch under one lock and wakes
//! the receiver once. Both ends share one link state: [`MemDevice::set_up`] on either end
//! (or on a [`MemLinkHandle`]) takes the whole link down or up, like `ip link set down`.
//!
//! ```
//! use ustack_netdev::mem::{MemLink, MemLinkConfig};
//! use ustack_netdev::NetDevice;
//!
//! let (a, b) = MemLink::pair(MemLinkConfig { mtu: 9000, ..Default::default() });
//! assert_eq!((a.name(), b.name(), a.mtu()), ("veth0", "veth1", 9000));
//! ```

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::ether::ETH_HLEN;
use crate::{DeviceStats, Link, MacAddr, NetDevice, PacketBuf};

/// Ethernet addresses handed out to in-memory ends: 02:00 and a counter.
fn next_mac() -> MacAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    MacAddr([0x02, 0x00, n[0], n[1], n[2], n[3]])
}

/// Configuration of an in-memory link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemLinkConfig {
    /// MTU of both ends (default 1500). Larger packets are counted in `tx_errors` and dropped.
    pub mtu: usize,
    /// Packets each direction can hold (default 1024, like a `txqueuelen`). When the
    /// queue is full, further packets are dropped and counted in the sender's `tx_dropped`.
    pub queue_len: usize,
    /// Names of the two ends (default `("veth0", "veth1")`).
    pub names: (String, String),
    /// The link carries Ethernet frames (default false: bare IPv4 packets): each end
    /// reports [`Link::Ethernet`] with an address of its own (locally administered,
    /// unique in the process), frames may be [`ETH_HLEN`] bytes longer than the MTU, and
    /// the stacks on it use ARP.
    pub ethernet: bool,
}

impl Default for MemLinkConfig {
    fn default() -> Self {
        MemLinkConfig {
            mtu: 1500,
            queue_len: 1024,
            names: ("veth0".to_string(), "veth1".to_string()),
            ethernet: false,
        }
    }
}

/// Constructor of in-memory links.
#[derive(Debug)]
pub struct MemLink;

impl MemLink {
    /// Creates two connected ends (Linux: `veth_newlink`). The link starts up.
    pub fn pair(cfg: MemLinkConfig) -> (MemDevice, MemDevice) {
        let link = Arc::new(LinkState {
            up: AtomicBool::new(true),
            alive: [AtomicBool::new(true), AtomicBool::new(true)],
        });
        let a_to_b = Arc::new(Channel::new(cfg.queue_len));
        let b_to_a = Arc::new(Channel::new(cfg.queue_len));
        let link_of = |ether: bool| match ether {
            true => Link::Ethernet(next_mac()),
            false => Link::RawIp,
        };
        let a = MemDevice {
            l2: link_of(cfg.ethernet),
            name: cfg.names.0,
            mtu: cfg.mtu,
            queue_len: cfg.queue_len,
            end: 0,
            tx: a_to_b.clone(),
            rx: b_to_a.clone(),
            link: link.clone(),
            stats: DeviceStats::default(),
        };
        let b = MemDevice {
            l2: link_of(cfg.ethernet),
            name: cfg.names.1,
            mtu: cfg.mtu,
            queue_len: cfg.queue_len,
            end: 1,
            tx: b_to_a,
            rx: a_to_b,
            link,
            stats: DeviceStats::default(),
        };
        (a, b)
    }
}

/// State shared by both ends.
#[derive(Debug)]
struct LinkState {
    /// Administrative state of the whole link.
    up: AtomicBool,
    /// Whether each end still exists (a dropped end takes the carrier away).
    alive: [AtomicBool; 2],
}

/// One direction: a bounded FIFO and the receiver's waker.
#[derive(Debug)]
struct Channel {
    inner: Mutex<ChannelInner>,
}

#[derive(Debug)]
struct ChannelInner {
    queue: VecDeque<PacketBuf>,
    waker: Option<Waker>,
}

impl Channel {
    fn new(queue_len: usize) -> Self {
        Channel {
            inner: Mutex::new(ChannelInner {
                queue: VecDeque::with_capacity(queue_len.min(64)),
                waker: None,
            }),
        }
    }

    /// Locks the channel. A panic elsewhere while holding the lock cannot leave the queue
    /// inconsistent (every update is a single push or pop), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, ChannelInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on the shared link state, usable after the devices moved into stacks.
#[derive(Clone, Debug)]
pub struct MemLinkHandle {
    link: Arc<LinkState>,
}

impl MemLinkHandle {
    /// Takes the link down (both directions drop) or brings it back up.
    pub fn set_up(&self, up: bool) {
        self.link.up.store(up, Ordering::Release);
    }

    /// Administrative state of the link.
    pub fn is_up(&self) -> bool {
        self.link.up.load(Ordering::Acquire)
    }
}

/// One end of an in-memory link. `Send`; the two ends may live in different tasks.
#[derive(Debug)]
pub struct MemDevice {
    name: String,
    /// Bare IPv4, or Ethernet with this end's address.
    l2: Link,
    mtu: usize,
    queue_len: usize,
    /// Which end this is (index into `LinkState::alive`).
    end: usize,
    tx: Arc<Channel>,
    rx: Arc<Channel>,
    link: Arc<LinkState>,
    stats: DeviceStats,
}

impl MemDevice {
    /// Takes the whole link down (both ends drop what they send and what is queued to
    /// them) or brings it back up. Linux: `ip link set dev veth0 down` (with the carrier
    /// of the peer following).
    pub fn set_up(&self, up: bool) {
        self.link.up.store(up, Ordering::Release);
    }

    /// A handle to change the link state later, e.g. after the device moved into a stack.
    pub fn handle(&self) -> MemLinkHandle {
        MemLinkHandle {
            link: self.link.clone(),
        }
    }

    /// Packets waiting in this end's receive queue.
    pub fn rx_queue_len(&self) -> usize {
        self.rx.lock().queue.len()
    }

    fn peer_alive(&self) -> bool {
        self.link.alive[1 - self.end].load(Ordering::Acquire)
    }
}

impl NetDevice for MemDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn is_up(&self) -> bool {
        self.link.up.load(Ordering::Acquire) && self.peer_alive()
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let budget = budget.max(1);
        let mut q = self.rx.lock();
        if !self.link.up.load(Ordering::Acquire) {
            // A down link delivers nothing: what was queued before is discarded.
            self.stats.rx_dropped += q.queue.len() as u64;
            q.queue.clear();
        }
        let n = budget.min(q.queue.len());
        if n == 0 {
            match &q.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => q.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        out.reserve(n);
        for pkt in q.queue.drain(..n) {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += pkt.len() as u64;
            out.push(pkt);
        }
        if q.queue.is_empty() {
            // Drained: arm the waker now, so a caller that got fewer than its budget
            // need not poll again just to see Pending (see `rx_inline`).
            match &q.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => q.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Ready(Ok(n))
    }

    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        if pkts.is_empty() {
            return;
        }
        if !self.is_up() {
            // Linux veth: no carrier / admin down, the packet is dropped at the sender.
            self.stats.tx_dropped += pkts.len() as u64;
            pkts.clear();
            return;
        }
        let waker = {
            let mut q = self.tx.lock();
            let mut queued = false;
            for pkt in pkts.drain(..) {
                let header = match self.l2 {
                    Link::RawIp => 0,
                    Link::Ethernet(_) => ETH_HLEN,
                };
                if pkt.len() > self.mtu + header {
                    // Linux: is_skb_forwardable() fails in veth_xmit.
                    self.stats.tx_errors += 1;
                } else if q.queue.len() >= self.queue_len {
                    self.stats.tx_dropped += 1;
                } else {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += pkt.len() as u64;
                    q.queue.push_back(pkt);
                    queued = true;
                }
            }
            if queued {
                q.waker.take()
            } else {
                None
            }
        };
        // Wake outside the lock, once per batch.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The waker is called only from the peer's `transmit`, after the queue lock is
    /// released; it is armed whenever a poll leaves the queue empty.
    fn rx_inline(&self) -> bool {
        true
    }

    fn link(&self) -> Link {
        self.l2
    }
}

impl Drop for MemDevice {
    fn drop(&mut self) {
        self.link.alive[self.end].store(false, Ordering::Release);
        // Free what was queued to us; the peer's sends are dropped from now on.
        let mut q = self.rx.lock();
        q.queue.clear();
        q.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{counting_waker, pkt};

    fn recv_all(dev: &mut MemDevice, budget: usize) -> Vec<PacketBuf> {
        let (w, _) = counting_waker();
        let mut cx = Context::from_waker(&w);
        let mut out = Vec::new();
        while let Poll::Ready(Ok(n)) = dev.poll_recv(&mut cx, &mut out, budget) {
            assert!(n >= 1 && n <= budget);
        }
        out
    }

    #[test]
    fn delivers_in_order_both_directions() {
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default());
        let mut batch: Vec<_> = (0..10).map(|i| pkt(40, i)).collect();
        a.transmit(&mut batch);
        assert!(batch.is_empty());
        b.transmit(&mut vec![pkt(60, 99)]);
        let got = recv_all(&mut b, 3);
        assert_eq!(got.len(), 10);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.data()[1], i as u8);
        }
        let back = recv_all(&mut a, 64);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].data()[1], 99);
        assert_eq!(a.stats().tx_packets, 10);
        assert_eq!(a.stats().tx_bytes, 400);
        assert_eq!(b.stats().rx_packets, 10);
        assert_eq!(b.stats().rx_bytes, 400);
        assert_eq!(a.stats().rx_packets, 1);
        assert_eq!(a.stats().rx_bytes, 60);
    }

    #[test]
    fn budget_limits_batch() {
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default());
        a.transmit(&mut (0..5).map(|i| pkt(20, i)).collect());
        let (w, _) = counting_waker();
        let mut cx = Context::from_waker(&w);
        let mut out = Vec::new();
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 2),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(b.rx_queue_len(), 3);
        // Budget 0 is treated as 1, never as "ready with nothing".
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 0),
            Poll::Ready(Ok(1))
        ));
    }

    #[test]
    fn bounded_queue_drops_and_counts() {
        let cfg = MemLinkConfig {
            queue_len: 4,
            ..Default::default()
        };
        let (mut a, mut b) = MemLink::pair(cfg);
        a.transmit(&mut (0..10).map(|i| pkt(20, i)).collect());
        assert_eq!(a.stats().tx_packets, 4);
        assert_eq!(a.stats().tx_dropped, 6);
        let got = recv_all(&mut b, 64);
        assert_eq!(got.len(), 4);
        // The first four made it, in order (tail drop).
        assert_eq!(got[3].data()[1], 3);
        // Room again after the receiver drained the queue.
        a.transmit(&mut vec![pkt(20, 50)]);
        assert_eq!(recv_all(&mut b, 64).len(), 1);
    }

    #[test]
    fn mtu_enforced() {
        let cfg = MemLinkConfig {
            mtu: 100,
            ..Default::default()
        };
        let (mut a, mut b) = MemLink::pair(cfg);
        a.transmit(&mut vec![pkt(100, 1), pkt(101, 2), pkt(5000, 3)]);
        assert_eq!(a.stats().tx_packets, 1);
        assert_eq!(a.stats().tx_errors, 2);
        let got = recv_all(&mut b, 64);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 100);
    }

    #[test]
    fn wakes_receiver_once_per_batch() {
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default());
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        let mut out = Vec::new();
        assert!(b.poll_recv(&mut cx, &mut out, 64).is_pending());
        a.transmit(&mut (0..8).map(|i| pkt(20, i)).collect());
        assert_eq!(count.count(), 1);
        // No waker registered until the receiver polls again and finds nothing.
        a.transmit(&mut vec![pkt(20, 9)]);
        assert_eq!(count.count(), 1);
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 64),
            Poll::Ready(Ok(9))
        ));
        assert!(b.poll_recv(&mut cx, &mut out, 64).is_pending());
        // An all-dropped batch wakes nobody.
        a.transmit(&mut vec![pkt(5000, 0)]);
        assert_eq!(count.count(), 1);
        a.transmit(&mut vec![pkt(20, 0)]);
        assert_eq!(count.count(), 2);
    }

    #[test]
    fn link_down_drops_both_ways() {
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default());
        a.transmit(&mut vec![pkt(20, 1), pkt(20, 2)]);
        let handle = b.handle();
        handle.set_up(false);
        assert!(!a.is_up() && !b.is_up() && !handle.is_up());
        a.transmit(&mut vec![pkt(20, 3)]);
        b.transmit(&mut vec![pkt(20, 4)]);
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(b.stats().tx_dropped, 1);
        assert!(recv_all(&mut b, 64).is_empty());
        assert_eq!(b.stats().rx_dropped, 2);
        a.set_up(true);
        assert!(b.is_up());
        a.transmit(&mut vec![pkt(20, 5)]);
        let got = recv_all(&mut b, 64);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data()[1], 5);
    }

    #[test]
    fn dropped_peer_takes_carrier_away() {
        let (mut a, b) = MemLink::pair(MemLinkConfig::default());
        a.transmit(&mut vec![pkt(20, 1)]);
        drop(b);
        assert!(!a.is_up());
        a.transmit(&mut vec![pkt(20, 2)]);
        assert_eq!(a.stats().tx_dropped, 1);
        assert!(recv_all(&mut a, 8).is_empty());
    }

    #[test]
    fn zero_queue_len_drops_everything() {
        let cfg = MemLinkConfig {
            queue_len: 0,
            ..Default::default()
        };
        let (mut a, mut b) = MemLink::pair(cfg);
        a.transmit(&mut vec![pkt(20, 1)]);
        assert_eq!(a.stats().tx_dropped, 1);
        assert!(recv_all(&mut b, 8).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn works_across_tasks() {
        fn assert_send<T: Send>(_: &T) {}
        let (mut a, mut b) = MemLink::pair(MemLinkConfig::default());
        assert_send(&a);
        let rx = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 1000 {
                std::future::poll_fn(|cx| b.poll_recv(cx, &mut got, 64))
                    .await
                    .unwrap();
            }
            got
        });
        for i in 0..100u8 {
            a.transmit(&mut (0..10).map(|_| pkt(30, i)).collect());
            tokio::task::yield_now().await;
            if i % 10 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1000);
        assert!(got.windows(2).all(|w| w[0].data()[1] <= w[1].data()[1]));
    }
}
