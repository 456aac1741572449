//! Loopback device (Linux: `drivers/net/loopback.c`): what is transmitted is received.
//!
//! ```
//! use ustack_netdev::loopback::Loopback;
//! use ustack_netdev::NetDevice;
//!
//! let lo = Loopback::new(65536);
//! assert_eq!((lo.name(), lo.mtu()), ("lo", 65536));
//! ```

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll, Waker};

use crate::{DeviceStats, NetDevice, PacketBuf};

/// Packets the loopback queue holds before it drops (Linux `lo` has `txqueuelen 1000`).
pub const LOOPBACK_QUEUE_LEN: usize = 1000;

/// The loopback device, named `lo`.
#[derive(Debug)]
pub struct Loopback {
    mtu: usize,
    queue: VecDeque<PacketBuf>,
    waker: Option<Waker>,
    stats: DeviceStats,
}

impl Loopback {
    /// A loopback device with the given MTU (Linux uses 65536).
    pub fn new(mtu: usize) -> Self {
        Loopback {
            mtu,
            queue: VecDeque::new(),
            waker: None,
            stats: DeviceStats::default(),
        }
    }
}

impl NetDevice for Loopback {
    fn name(&self) -> &str {
        "lo"
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn is_up(&self) -> bool {
        true
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let n = budget.max(1).min(self.queue.len());
        if n == 0 {
            match &self.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => self.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        for pkt in self.queue.drain(..n) {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += pkt.len() as u64;
            out.push(pkt);
        }
        if self.queue.is_empty() {
            // Drained: arm the waker now (see `rx_inline`).
            match &self.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => self.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Ready(Ok(n))
    }

    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        let mut queued = false;
        for pkt in pkts.drain(..) {
            if pkt.len() > self.mtu {
                self.stats.tx_errors += 1;
            } else if self.queue.len() >= LOOPBACK_QUEUE_LEN {
                self.stats.tx_dropped += 1;
            } else {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += pkt.len() as u64;
                self.queue.push_back(pkt);
                queued = true;
            }
        }
        if queued {
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The waker is called only from this device's own `transmit`; it is armed whenever
    /// a poll leaves the queue empty.
    fn rx_inline(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{counting_waker, pkt};

    #[test]
    fn echoes_in_order_and_wakes() {
        let mut lo = Loopback::new(1500);
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        let mut out = Vec::new();
        assert!(lo.poll_recv(&mut cx, &mut out, 8).is_pending());
        lo.transmit(&mut vec![pkt(20, 1), pkt(30, 2), pkt(1501, 3)]);
        assert_eq!(count.count(), 1);
        assert!(matches!(
            lo.poll_recv(&mut cx, &mut out, 1),
            Poll::Ready(Ok(1))
        ));
        assert!(matches!(
            lo.poll_recv(&mut cx, &mut out, 8),
            Poll::Ready(Ok(1))
        ));
        assert!(lo.poll_recv(&mut cx, &mut out, 8).is_pending());
        assert_eq!(out[0].data()[1], 1);
        assert_eq!(out[1].data()[1], 2);
        let s = lo.stats();
        assert_eq!((s.tx_packets, s.tx_bytes, s.tx_errors), (2, 50, 1));
        assert_eq!((s.rx_packets, s.rx_bytes), (2, 50));
    }

    #[test]
    fn bounded() {
        let mut lo = Loopback::new(1500);
        lo.transmit(&mut (0..LOOPBACK_QUEUE_LEN + 5).map(|_| pkt(20, 0)).collect());
        assert_eq!(lo.stats().tx_dropped, 5);
        assert_eq!(lo.stats().tx_packets, LOOPBACK_QUEUE_LEN as u64);
    }
}
