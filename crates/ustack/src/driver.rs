//! The driver task (Linux: the NAPI poll loop + the timer softirq): polls each device's
//! receive with a budget, runs packets up the stack, fires timers, transmits, and wakes the
//! sockets whose readiness changed. It sleeps on one `tokio::time::Sleep` kept in the
//! stack's state and set to the next protocol deadline (user calls that arm an earlier
//! deadline move it themselves, without waking the task), and on a doorbell rung at
//! shutdown or when inline receive hands work over. Packets of inline devices (in-memory
//! pair, loopback) are normally processed in the sender's context (`stack::softirq`); the
//! driver polls them too, so nothing waits if that path backs off. An idle stack's timer
//! points an hour ahead and it uses no CPU.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use ustack_netdev::PacketBuf;

use crate::stack::{bump, enter_call, now, poll_lock, softirq, Shared, Signal, State, IDLE_TIMER};

/// Packets taken from one device per poll (Linux: the NAPI weight, 64).
pub(crate) const RX_BUDGET: usize = 64;

/// Rounds of work per wake before the driver yields to other tasks.
const ROUNDS_PER_POLL: usize = 8;

pub(crate) struct Driver {
    shared: Weak<Shared>,
    signal: Arc<Signal>,
    rx: Vec<PacketBuf>,
    wakers: Vec<Waker>,
}

impl Driver {
    pub(crate) fn new(shared: Weak<Shared>, signal: Arc<Signal>) -> Self {
        Driver {
            shared,
            signal,
            rx: Vec::with_capacity(RX_BUDGET),
            wakers: Vec::new(),
        }
    }

    /// One pass: receive, timers, transmit, collect wakers, re-arm the timer. Returns
    /// whether more work is known to be waiting (a device hit its budget, or the timer
    /// is already due).
    fn run_once(
        &mut self,
        shared: &Shared,
        mut guard: MutexGuard<'_, State>,
        cx: &mut Context<'_>,
    ) -> bool {
        shared.signal.rx_pending.store(false, Ordering::SeqCst);
        let st = &mut *guard;
        let now = st.clock(now());
        let _call = enter_call(now);
        let (mut more, n) = st.receive_inline(now, &shared.rx_waker, &mut self.rx, RX_BUDGET);
        bump(&self.signal.rx_packets, n);
        for slot in st
            .devices
            .iter_mut()
            .flatten()
            .filter(|s| s.alive && !s.inline)
        {
            // Poll until the device says Pending (which registers our waker) or the
            // budget is used up (then come back after a yield, like NAPI).
            let mut got = 0;
            loop {
                match slot.dev.poll_recv(cx, &mut self.rx, RX_BUDGET - got) {
                    Poll::Ready(Ok(n)) => {
                        got += n.max(1);
                        bump(&self.signal.rx_packets, n as u64);
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(dev = slot.dev.name(), err = %e, "device gone; detaching it");
                        slot.alive = false;
                        st.gone = true;
                        break;
                    }
                    Poll::Pending => break,
                }
                for pkt in self.rx.drain(..) {
                    st.core.receive(now, slot.id, pkt);
                }
                if got >= RX_BUDGET {
                    more = true;
                    break;
                }
            }
            for pkt in self.rx.drain(..) {
                st.core.receive(now, slot.id, pkt);
            }
        }
        st.detach_gone();
        if st.core.poll_timeout().is_some_and(|d| d <= now) {
            bump(&self.signal.timer_runs, 1);
            st.core.on_timeout(now);
        }
        st.transmit(now);
        st.core.take_wakers(&mut self.wakers);
        more |= st.core.has_pending();
        let next = st.core.poll_timeout().unwrap_or(now + IDLE_TIMER);
        if next != st.armed {
            st.set_timer(next);
        }
        // Poll the timer under the lock so its waker is ours before any user call moves it.
        more |= st.timer.as_mut().poll(cx).is_ready();
        drop(guard);
        more
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.signal.polls.fetch_add(1, Ordering::Relaxed);
        this.signal.waker.register(cx.waker());
        for _ in 0..ROUNDS_PER_POLL {
            if this.signal.stop.load(Ordering::Acquire) {
                tracing::debug!("ustack driver stopped");
                return Poll::Ready(());
            }
            let Some(shared) = this.shared.upgrade() else {
                tracing::debug!("ustack driver stopped: last Stack handle dropped");
                return Poll::Ready(());
            };
            // A user call on another thread holds the lock: it wakes us when it is done
            // instead of this worker thread sleeping on the lock.
            let guard = match poll_lock(&shared, cx) {
                Poll::Ready(g) => g,
                Poll::Pending => return Poll::Pending,
            };
            this.signal.kicked.store(false, Ordering::Release);
            let more = this.run_once(&shared, guard, cx);
            for w in this.wakers.drain(..) {
                w.wake();
            }
            // Packets an inline device got while we held the lock.
            softirq(&shared);
            // Dropping the last strong handle here runs Shared::drop inside the driver,
            // which only sets `stop`; the check above ends the task next round.
            drop(shared);
            if more || this.signal.kicked.load(Ordering::Acquire) {
                continue;
            }
            return Poll::Pending;
        }
        // Still busy: yield so other tasks on this runtime run (NAPI: reschedule).
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
