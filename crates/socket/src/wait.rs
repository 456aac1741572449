//! Per-socket wait queues (Linux: `struct socket_wq`, woken by `sk_data_ready`,
//! `sk_write_space` and `sk_state_change`).
//!
//! A blocking call in Linux sleeps on the socket's wait queue; here a `poll_*` method that
//! cannot finish stores the task's `Waker` and returns `Pending`. Registration and the
//! readiness check happen under the same lock as protocol processing, so no wakeup is lost.

use std::task::Waker;

use ustack_ipv4::hash::FastHashMap;

use crate::sock::SockRef;

/// Most wakers kept per wait list (see [`WaitQueue::register`]).
pub const MAX_WAITERS: usize = 64;

/// Which wait list a waiter sleeps on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// Readers, accepters (Linux: woken by `sk_data_ready`).
    Read,
    /// Writers, connecters (Linux: woken by `sk_write_space` / `sk_state_change`).
    Write,
}

/// The wait queue and socket-level state of one socket (Linux: `struct socket_wq` plus
/// `socket->state`).
#[derive(Debug, Default)]
pub struct WaitQueue {
    readers: Vec<Waker>,
    writers: Vec<Waker>,
    /// `SS_CONNECTING`: a connect was started and its outcome not yet reported.
    pub connecting: bool,
}

impl WaitQueue {
    fn add(list: &mut Vec<Waker>, waker: &Waker) {
        if list.iter().any(|w| w.will_wake(waker)) {
            return;
        }
        // Bound the list: waiters whose futures were dropped (a timed-out recv, say) stay
        // until the next wakeup. Past the bound, the oldest is woken early: a spurious
        // wakeup costs one poll, an unbounded list costs memory.
        if list.len() >= MAX_WAITERS {
            list.remove(0).wake();
        }
        list.push(waker.clone());
    }

    /// Registers `waker` on the given list (deduplicated with `Waker::will_wake`; at most
    /// [`MAX_WAITERS`], the oldest being woken early when full).
    pub fn register(&mut self, kind: WaitKind, waker: &Waker) {
        match kind {
            WaitKind::Read => Self::add(&mut self.readers, waker),
            WaitKind::Write => Self::add(&mut self.writers, waker),
        }
    }

    /// Moves every stored waker into `out` (woken by the caller after the lock is released).
    pub fn drain_into(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.readers);
        out.append(&mut self.writers);
    }
}

/// All wait queues of a stack, keyed by socket.
#[derive(Debug, Default)]
pub struct WaitQueues {
    /// Keyed by our own socket handles (not by anything a peer chooses), so the fast
    /// hasher is enough.
    map: FastHashMap<SockRef, WaitQueue>,
}

impl WaitQueues {
    /// The queue of `sk`, created on first use.
    pub fn entry(&mut self, sk: SockRef) -> &mut WaitQueue {
        self.map.entry(sk).or_default()
    }

    /// The queue of `sk`, if it has one.
    pub fn get(&self, sk: SockRef) -> Option<&WaitQueue> {
        self.map.get(&sk)
    }

    /// Registers `waker` for `sk`.
    pub fn register(&mut self, sk: SockRef, kind: WaitKind, waker: &Waker) {
        self.entry(sk).register(kind, waker);
    }

    /// Collects the wakers of `sk` (Linux: `sk_data_ready` + `sk_write_space`).
    pub fn wake(&mut self, sk: SockRef, out: &mut Vec<Waker>) {
        if let Some(q) = self.map.get_mut(&sk) {
            q.drain_into(out);
        }
    }

    /// Forgets the queue of a released socket, collecting any waiters left on it.
    pub fn remove(&mut self, sk: SockRef, out: &mut Vec<Waker>) {
        if let Some(mut q) = self.map.remove(&sk) {
            q.drain_into(out);
        }
    }

    /// Collects every waiter of every socket (used when the stack shuts down, so that
    /// blocked calls return an error instead of hanging).
    pub fn wake_all(&mut self, out: &mut Vec<Waker>) {
        for q in self.map.values_mut() {
            q.drain_into(out);
        }
    }

    /// Number of sockets with a queue.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no socket has a queue.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::{WaitKind, WaitQueue, MAX_WAITERS};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn dedup_and_bound() {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        let mut q = WaitQueue::default();
        q.register(WaitKind::Read, &w);
        q.register(WaitKind::Read, &w);
        let mut out = Vec::new();
        q.drain_into(&mut out);
        assert_eq!(out.len(), 1);
        let others: Vec<_> = (0..MAX_WAITERS + 3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        for o in &others {
            q.register(WaitKind::Write, &Waker::from(o.clone()));
        }
        out.clear();
        q.drain_into(&mut out);
        assert_eq!(out.len(), MAX_WAITERS);
        // The three oldest were woken early.
        assert_eq!(
            others
                .iter()
                .filter(|o| o.0.load(Ordering::Relaxed) == 1)
                .count(),
            3
        );
    }
}
