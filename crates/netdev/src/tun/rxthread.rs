//! Receiving on a thread of its own ([`TunOptions::rx_thread`](super::TunOptions::rx_thread);
//! Linux: threaded NAPI, `/sys/class/net/<dev>/threaded`, where a device's receive work runs
//! in a kernel thread of its own instead of the softirq of the CPU that took the interrupt).
//!
//! A reader thread does nothing but `read(2)` from the TUN descriptor into packet buffers
//! and queues the filled ones; the stack's driver takes them from the queue in its
//! `poll_recv` and hands the thread fresh buffers from its own packet-buffer pool, one for
//! each it took (the stack drops the packets it consumed into that same pool, so a steady
//! stream of packets neither allocates nor copies). The number of buffers is fixed
//! ([`BUFFERS`]): when the stack falls behind, the thread stops reading and the kernel's
//! queue of the interface fills and drops, as it does with no reader (memory stays
//! bounded). The read system calls, the costliest part of receiving from a TUN, then run in
//! parallel with the stack's protocol work and its transmissions.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crate::PacketBuf;

/// Packet buffers in circulation between the stack and the reader (queued, being read
/// into, or free). At MTU 1500, about 0.8 MiB.
pub(super) const BUFFERS: usize = 512;

/// The reader publishes what it read after this many packets even while more are waiting,
/// so that the stack can start on them.
const PUBLISH_EVERY: usize = 32;

/// What the reader and the stack share.
struct Shared {
    q: Mutex<Queues>,
    stop: AtomicBool,
    /// An eventfd that wakes the reader out of `poll(2)` when the device is dropped.
    stop_fd: OwnedFd,
}

struct Queues {
    /// Filled buffers with the length read, oldest first.
    full: VecDeque<(PacketBuf, usize)>,
    /// Empty buffers for the reader.
    free: Vec<PacketBuf>,
    /// The errno of the read error that ended the reader.
    err: Option<i32>,
    /// The stack's driver, waiting for packets.
    waker: Option<Waker>,
    /// The reader waits for free buffers (parked).
    reader_parked: bool,
}

fn lock(m: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stack's side of a receiving thread.
pub(super) struct RxThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Packets taken from the queue and not yet handed on.
    batch: VecDeque<(PacketBuf, usize)>,
    /// Buffers to give back to the reader.
    give: Vec<PacketBuf>,
}

impl RxThread {
    /// Starts a reader on a duplicate of `fd` (a non-blocking TUN descriptor), with
    /// [`BUFFERS`] buffers made by `new_buf`.
    pub(super) fn start(
        fd: RawFd,
        name: &str,
        new_buf: impl Fn() -> PacketBuf,
    ) -> io::Result<RxThread> {
        let fd = super::vnet::dup(fd)?;
        // SAFETY: eventfd(2) with valid flags; the result is checked before use.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` is a fresh descriptor no one else owns.
        let stop_fd = unsafe { OwnedFd::from_raw_fd(efd) };
        let shared = Arc::new(Shared {
            q: Mutex::new(Queues {
                full: VecDeque::with_capacity(BUFFERS),
                free: (0..BUFFERS).map(|_| new_buf()).collect(),
                err: None,
                waker: None,
                reader_parked: false,
            }),
            stop: AtomicBool::new(false),
            stop_fd,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ustack-rx-{name}"))
            .spawn(move || read_loop(&fd, &s))?;
        Ok(RxThread {
            shared,
            thread: Some(thread),
            batch: VecDeque::with_capacity(BUFFERS),
            give: Vec::with_capacity(BUFFERS),
        })
    }

    /// The next packet the reader read, with its length; `Pending` (waker registered) when
    /// none is queued; `Ready(Err)` once the reader ended with a read error.
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(PacketBuf, usize)>> {
        if let Some(p) = self.batch.pop_front() {
            return Poll::Ready(Ok(p));
        }
        let mut q = lock(&self.shared.q);
        std::mem::swap(&mut self.batch, &mut q.full);
        if let Some(p) = self.batch.pop_front() {
            return Poll::Ready(Ok(p));
        }
        if let Some(code) = q.err {
            return Poll::Ready(Err(io::Error::from_raw_os_error(code)));
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next packet the reader read, if one is queued (no waker registered).
    pub(super) fn try_next(&mut self) -> Option<(PacketBuf, usize)> {
        if let Some(p) = self.batch.pop_front() {
            return Some(p);
        }
        let mut q = lock(&self.shared.q);
        std::mem::swap(&mut self.batch, &mut q.full);
        drop(q);
        self.batch.pop_front()
    }

    /// Packets read and not yet taken by the stack.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.batch.len() + lock(&self.shared.q).full.len()
    }

    /// Gives a buffer back to the reader (after [`flush`](Self::flush)).
    pub(super) fn give_back(&mut self, buf: PacketBuf) {
        self.give.push(buf);
    }

    /// Hands the given-back buffers to the reader, waking it if it waits for them.
    pub(super) fn flush(&mut self) {
        if self.give.is_empty() {
            return;
        }
        let mut q = lock(&self.shared.q);
        q.free.append(&mut self.give);
        let unpark = std::mem::take(&mut q.reader_parked);
        drop(q);
        if unpark {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }
}

impl Drop for RxThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
        let _ = unsafe {
            libc::write(
                self.shared.stop_fd.as_raw_fd(),
                (&one as *const u64).cast(),
                8,
            )
        };
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Waits until `fd` is readable or the stop eventfd is signalled. Returns false to stop.
fn wait_readable(fd: RawFd, shared: &Shared) -> bool {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: shared.stop_fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 && io::Error::last_os_error().kind() == ErrorKind::Interrupted {
            continue;
        }
        return fds[1].revents == 0 && !shared.stop.load(Ordering::Acquire);
    }
}

/// Publishes `filled` (and an error) to the stack and wakes it.
fn publish(shared: &Shared, filled: &mut Vec<(PacketBuf, usize)>, err: Option<i32>) {
    let mut q = lock(&shared.q);
    q.full.extend(filled.drain(..));
    if err.is_some() {
        q.err = err;
    }
    let w = q.waker.take();
    drop(q);
    if let Some(w) = w {
        w.wake();
    }
}

fn read_loop(fd: &OwnedFd, shared: &Shared) {
    let fd = fd.as_raw_fd();
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BUFFERS);
    let mut filled: Vec<(PacketBuf, usize)> = Vec::with_capacity(PUBLISH_EVERY);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if bufs.is_empty() {
            let mut q = lock(&shared.q);
            bufs.append(&mut q.free);
            if bufs.is_empty() {
                q.reader_parked = true;
                drop(q);
                std::thread::park();
                continue;
            }
        }
        let mut blocked = false;
        while let Some(mut b) = bufs.pop() {
            match super::vnet::read(fd, b.data_mut()) {
                Ok(n) => {
                    filled.push((b, n));
                    if filled.len() >= PUBLISH_EVERY {
                        publish(shared, &mut filled, None);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    bufs.push(b);
                    blocked = true;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => bufs.push(b),
                Err(e) => {
                    publish(
                        shared,
                        &mut filled,
                        Some(e.raw_os_error().unwrap_or(libc::EIO)),
                    );
                    return;
                }
            }
        }
        if !filled.is_empty() {
            publish(shared, &mut filled, None);
        }
        if blocked && !wait_readable(fd, shared) {
            return;
        }
    }
}
