//! Test helpers: a waker that counts its wake-ups, and a minimal IPv4 packet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::PacketBuf;

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
