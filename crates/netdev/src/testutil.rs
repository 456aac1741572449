//! Test helpers: a waker that counts its wake-ups, a minimal IPv4 packet, and a device
//! with transmit offload.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::loopback::Loopback;
use crate::{DeviceStats, NetDevice, PacketBuf};

/// Counts how often it was woken.
pub(crate) struct CountWake(AtomicUsize);

impl CountWake {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker and the counter behind it.
pub(crate) fn counting_waker() -> (Waker, Arc<CountWake>) {
    let c = Arc::new(CountWake(AtomicUsize::new(0)));
    (Waker::from(c.clone()), c)
}

/// A fake IPv4 packet of `len` bytes (at least 1) whose byte 1.. carry `tag`.
pub(crate) fn pkt(len: usize, tag: u8) -> PacketBuf {
    let mut v = vec![tag; len.max(1)];
    v[0] = 0x45;
    PacketBuf::from_vec(v)
}

/// A device that takes TCP super-segments of up to 64 KiB (as a TUN with offloads does).
pub(crate) struct TsoDevice(pub(crate) Loopback);

impl NetDevice for TsoDevice {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn mtu(&self) -> usize {
        self.0.mtu()
    }
    fn is_up(&self) -> bool {
        self.0.is_up()
    }
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, out, budget)
    }
    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        self.0.transmit(pkts)
    }
    fn tso_max(&self) -> usize {
        65535
    }
    fn stats(&self) -> DeviceStats {
        self.0.stats()
    }
}
