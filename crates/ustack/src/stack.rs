//! `Stack`: one user-space TCP/IPv4 stack: a [`NetCore`] and its devices behind one lock,
//! driven by a tokio task (see [`crate::driver`]).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use ustack_ipv4::{IpTx, Ipv4Cidr, Route, RouteKind};
use ustack_netdev::{DevId, MacAddr, NetDevice, PacketBuf};
use ustack_socket::NetCore;

use crate::builder::StackBuilder;
use crate::stats::{DeviceSnapshot, DriverStats, StackStats};

/// The clock of every stack: tokio's, so `tokio::time::pause()` makes tests deterministic.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

thread_local! {
    /// The instant of the stack call in progress on this thread, if any.
    static CALL_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time for work done on this thread: the instant of the stack call in progress if
/// there is one (packets received inline in a sender's call are processed at the sender's
/// instant, as Linux's softirq pass reads the clock once), otherwise the clock.
pub(crate) fn call_now() -> Instant {
    CALL_NOW.with(|c| c.get()).unwrap_or_else(now)
}

/// Marks `now` as the instant of the stack call in progress on this thread until the
/// guard drops (restoring an enclosing call's instant).
pub(crate) fn enter_call(now: Instant) -> CallTime {
    CallTime(CALL_NOW.with(|c| c.replace(Some(now))))
}

/// See [`enter_call`].
pub(crate) struct CallTime(Option<Instant>);

impl Drop for CallTime {
    fn drop(&mut self) {
        let prev = self.0;
        CALL_NOW.with(|c| c.set(prev));
    }
}

thread_local! {
    /// Set while an in-place read or write closure runs on this thread, under a stack's
    /// lock (see [`InPlaceClosure`]).
    static IN_PLACE_CLOSURE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the run of an application's in-place read or write closure (`read_with`,
/// `write_with`), which runs with the stack's state lock held: a stack call from inside
/// it would deadlock on that lock, so [`check_not_in_closure`] turns it into a panic
/// that says why. Restores the previous mark on drop, panics included.
pub(crate) struct InPlaceClosure(bool);

impl InPlaceClosure {
    pub(crate) fn enter() -> InPlaceClosure {
        InPlaceClosure(IN_PLACE_CLOSURE.with(|c| c.replace(true)))
    }
}

impl Drop for InPlaceClosure {
    fn drop(&mut self) {
        let prev = self.0;
        IN_PLACE_CLOSURE.with(|c| c.set(prev));
    }
}

/// Panics when called from inside an in-place closure (see [`InPlaceClosure`]).
#[inline]
fn check_not_in_closure() {
    if IN_PLACE_CLOSURE.with(|c| c.get()) {
        panic!(
            "ustack: a read_with/write_with closure called into a stack; it runs with the \
             stack locked and must not use sockets or stacks"
        );
    }
}

/// The driver's doorbell: set `kicked` (or `stop`) and wake the stored waker.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pub(crate) waker: AtomicWaker,
    pub(crate) kicked: AtomicBool,
    pub(crate) stop: AtomicBool,
    /// Packets wait on an inline device (see [`NetDevice::rx_inline`]) for whoever holds
    /// or next takes the state lock.
    pub(crate) rx_pending: AtomicBool,
    /// A task waits for the state lock in [`Shared::lock_waiters`].
    pub(crate) lock_waiting: AtomicBool,
    /// Counters of the driver task (see [`DriverStats`]).
    pub(crate) polls: AtomicU64,
    pub(crate) rx_packets: AtomicU64,
    pub(crate) timer_runs: AtomicU64,
    pub(crate) kicks: AtomicU64,
    /// Receive batches processed in a sender's context instead of the driver task.
    pub(crate) inline_runs: AtomicU64,
    /// Polls that found the state lock held and waited ([`poll_lock`]).
    pub(crate) lock_waits: AtomicU64,
}

impl Signal {
    pub(crate) fn kick(&self) {
        self.kicks.fetch_add(1, Ordering::Relaxed);
        self.kicked.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// One entry of [`Stack::neighbours`] (a line of `ip neigh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The device's name.
    pub dev: String,
    /// The neighbour's IPv4 address.
    pub addr: Ipv4Addr,
    /// Its Ethernet address, once resolved.
    pub mac: Option<MacAddr>,
    /// Its state (`REACHABLE`, `STALE`, ...).
    pub state: ustack_ipv4::NeighState,
}

/// Another host claimed one of the stack's addresses (RFC 5227 2.4; see
/// [`Stack::address_conflicts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressConflict {
    /// The device's name.
    pub dev: String,
    /// Our address.
    pub addr: Ipv4Addr,
    /// The other host's Ethernet address.
    pub mac: MacAddr,
    /// When it came (tokio's clock, as a `std` instant).
    pub at: std::time::Instant,
    /// The stack answered with an announcement. False when it had defended the address
    /// within the last 10 s: the other host insists (RFC 5227 2.4 (b): stop using the
    /// address; [`Stack::dhcp`] gives its lease up, a static address stays).
    pub defended: bool,
}

/// One attached device (Linux: a `net_device` registered with the stack).
pub(crate) struct DevSlot {
    pub(crate) dev: Box<dyn NetDevice>,
    pub(crate) id: DevId,
    /// The device's [`NetDevice::rx_inline`], read once when it is attached.
    pub(crate) inline: bool,
    /// False once `poll_recv` reported the device gone for good; the slot is then
    /// detached ([`State::detach_gone`]).
    pub(crate) alive: bool,
    /// The largest IPv4 packet the stack sends on it: the device's own MTU, or less
    /// ([`Stack::set_mtu`], `StackBuilder::mtu`); addresses added later take it.
    pub(crate) mtu: usize,
}

/// Everything behind the stack's one lock.
pub(crate) struct State {
    pub(crate) core: NetCore,
    /// Indexed by [`DevId`]; `None` where a device was detached (ids are not reused,
    /// like Linux's ifindex).
    pub(crate) devices: Vec<Option<DevSlot>>,
    /// The driver's timer. It lives under the lock so that a user call arming an earlier
    /// protocol deadline moves it directly, without waking the driver task; the driver
    /// polls it before it sleeps, so its waker is always registered.
    pub(crate) timer: Pin<Box<Sleep>>,
    /// The deadline `timer` is set to (far in the future when no protocol timer is armed).
    pub(crate) armed: Instant,
    pub(crate) shut_down: bool,
    /// Some device reported itself gone and waits to be detached.
    pub(crate) gone: bool,
    /// The latest instant any pass under the lock has used: see [`State::clock`].
    last_now: Instant,
    tx: Vec<IpTx>,
    batches: Vec<Vec<PacketBuf>>,
}

impl State {
    /// Needs a tokio runtime with time enabled (the driver's timer is created here).
    pub(crate) fn new(core: NetCore, devices: Vec<DevSlot>) -> Self {
        let n = devices.len();
        let devices = devices.into_iter().map(Some).collect();
        let armed = now() + IDLE_TIMER;
        State {
            core,
            devices,
            timer: Box::pin(tokio::time::sleep_until(armed.into())),
            armed,
            shut_down: false,
            gone: false,
            last_now: now(),
            tx: Vec::new(),
            batches: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    /// Adds a device slot (its id is its index) and its transmit batch.
    pub(crate) fn attach(&mut self, slot: DevSlot) {
        self.devices.push(Some(slot));
        self.batches.push(Vec::new());
    }

    /// The id the next attached device gets.
    pub(crate) fn next_dev_id(&self) -> io::Result<DevId> {
        u16::try_from(self.devices.len())
            .map(DevId)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many devices"))
    }

    /// Detaches every device that reported itself gone (Linux: a device unregistered
    /// under its users takes its addresses and routes with it), closing it.
    pub(crate) fn detach_gone(&mut self) {
        if !std::mem::take(&mut self.gone) {
            return;
        }
        let gone: Vec<DevId> = self.slots().filter(|s| !s.alive).map(|s| s.id).collect();
        for id in gone {
            drop(self.detach(id));
        }
    }

    /// The attached devices.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &DevSlot> {
        self.devices.iter().flatten()
    }

    /// The attached device `id`.
    pub(crate) fn slot(&self, id: DevId) -> Option<&DevSlot> {
        self.devices.get(usize::from(id.0)).and_then(Option::as_ref)
    }

    /// The name of device `id`; empty once it is detached.
    pub(crate) fn name_of(&self, id: DevId) -> String {
        self.slot(id)
            .map_or_else(String::new, |d| d.dev.name().to_string())
    }

    /// The id of the attached device named `name`: see [`Stack::dev_id`].
    pub(crate) fn dev_id(&self, name: &[u8]) -> io::Result<DevId> {
        let mut named = self.slots().filter(|d| d.dev.name().as_bytes() == name);
        match (named.next(), named.next()) {
            (Some(d), None) => Ok(d.id),
            (None, _) => Err(io::Error::from_raw_os_error(ENODEV)),
            (Some(_), Some(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "several devices are named {:?}",
                    String::from_utf8_lossy(name)
                ),
            )),
        }
    }

    /// Detaches device `id`: the IP layer forgets it (addresses, routes, neighbours,
    /// memberships, queued packets), and its slot is emptied. Returns the device, to be
    /// dropped by the caller outside the lock.
    pub(crate) fn detach(&mut self, id: DevId) -> Option<DevSlot> {
        let slot = self.devices.get_mut(usize::from(id.0))?.take()?;
        if let Some(b) = self.batches.get_mut(usize::from(id.0)) {
            b.clear();
        }
        if !slot.alive {
            tracing::info!(dev = slot.dev.name(), id = id.0, "gone device detached");
        }
        // Local traffic may still be said to arrive on `id` (the first device): it is
        // delivered all the same, and only sockets bound to no device see it, as
        // traffic over Linux's loopback device.
        self.core.remove_device(id);
        Some(slot)
    }

    /// The instant for a pass under the lock that was started at `now`: never earlier than
    /// an instant a previous pass used. Packets received inline are processed at the
    /// sending call's instant, which another thread's call may already have passed; the
    /// stack's clock must not step back (TCP timestamps going backwards make the peer's
    /// PAWS check drop segments, and RTT samples and timers assume a monotonic clock).
    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    /// Flushes the core and hands its packets to the devices (Linux: `dev_queue_xmit`).
    pub(crate) fn transmit(&mut self, now: Instant) {
        self.core.flush(now);
        self.core.take_tx(&mut self.tx);
        if self.tx.is_empty() {
            return;
        }
        for t in self.tx.drain(..) {
            match self.batches.get_mut(usize::from(t.dev.0)) {
                Some(b) => b.push(t.pkt),
                None => tracing::debug!(dev = t.dev.0, "packet for an unknown device dropped"),
            }
        }
        for (slot, batch) in self.devices.iter_mut().zip(self.batches.iter_mut()) {
            if !batch.is_empty() {
                if let Some(slot) = slot.as_mut().filter(|s| s.alive) {
                    slot.dev.transmit(batch);
                }
                batch.clear();
            }
        }
    }

    /// The tail of every user call and inline receive: transmit, collect wakers, and move
    /// the driver's timer earlier if a protocol deadline now comes first (a later one is
    /// left for the driver to re-arm when the timer fires).
    pub(crate) fn finish_op(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        self.transmit(now);
        self.core.take_wakers(wakers);
        if let Some(d) = self.core.poll_timeout() {
            if d < self.armed {
                self.set_timer(d);
            }
        }
    }

    /// Points the driver's timer at `d`.
    pub(crate) fn set_timer(&mut self, d: Instant) {
        self.armed = d;
        self.timer.as_mut().reset(d.into());
    }

    /// Receives from the inline devices (up to `budget` packets each) with `waker` as
    /// their receive waker and runs the packets up the stack. Returns true when a device
    /// still has packets waiting, and the number of packets received.
    pub(crate) fn receive_inline(
        &mut self,
        now: Instant,
        waker: &Waker,
        rx: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> (bool, u64) {
        let mut cx = Context::from_waker(waker);
        let mut more = false;
        let mut total = 0u64;
        for slot in self
            .devices
            .iter_mut()
            .flatten()
            .filter(|s| s.alive && s.inline)
        {
            let mut got = 0;
            while got < budget {
                let want = budget - got;
                let drained = match slot.dev.poll_recv(&mut cx, rx, want) {
                    Poll::Ready(Ok(n)) => {
                        got += n.max(1);
                        total += n as u64;
                        // Fewer than asked: the queue is empty and the waker armed.
                        n < want
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(dev = slot.dev.name(), err = %e, "device gone; detaching it");
                        slot.alive = false;
                        self.gone = true;
                        true
                    }
                    Poll::Pending => true,
                };
                for pkt in rx.drain(..) {
                    self.core.receive(now, slot.id, pkt);
                }
                if drained {
                    break;
                }
            }
            for pkt in rx.drain(..) {
                self.core.receive(now, slot.id, pkt);
            }
            more |= got >= budget;
        }
        self.detach_gone();
        (more, total)
    }
}

/// Where the driver's timer points while no protocol timer is armed.
pub(crate) const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// Packets taken from each inline device per round of [`softirq`].
const INLINE_BUDGET: usize = 64;

/// Rounds one [`softirq`] call runs before it leaves the rest to the driver task.
const INLINE_ROUNDS: usize = 8;

/// Deepest nesting of inline receives on one thread (stack A's transmit runs stack B's
/// receive, whose transmit may run stack C's, ...). Beyond it the driver task takes over.
const INLINE_DEPTH: u32 = 4;

thread_local! {
    static INLINE_NESTING: Cell<u32> = const { Cell::new(0) };
    /// Scratch vectors reused by user calls and inline receive on this thread (one pair
    /// per nesting level), so the per-packet path does not allocate.
    static SCRATCH: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

/// Wakers to wake and packets received, reused across calls.
type Scratch = (Vec<Waker>, Vec<PacketBuf>);

/// Borrows a pair of scratch vectors of this thread; give it back with [`put_scratch`].
fn take_scratch() -> Scratch {
    SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default()
}

fn put_scratch(mut v: Scratch) {
    // Both are drained already on every path; clearing only when needed keeps the length
    // stores away from the move below (a narrow store read back by a wide load stalls).
    if !v.0.is_empty() {
        v.0.clear();
    }
    if !v.1.is_empty() {
        v.1.clear();
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < INLINE_DEPTH as usize + 2 {
            s.push(v);
        }
    });
}

/// The receive waker given to inline devices: it processes what arrived at once if the
/// stack's lock is free, or leaves it to the lock holder, who checks `rx_pending` after
/// unlocking (Linux: a packet for a socket owned by the user goes to the backlog that
/// `release_sock` processes).
pub(crate) struct RxKick {
    pub(crate) shared: Weak<Shared>,
    pub(crate) signal: Arc<Signal>,
}

impl Wake for RxKick {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signal.rx_pending.store(true, Ordering::SeqCst);
        if let Some(shared) = self.shared.upgrade() {
            softirq(&shared);
        }
    }
}

/// Adds `n` to a counter that only holders of the state lock write (readers load it
/// without the lock).
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Processes packets waiting on inline devices if any are flagged and the state lock is
/// free; never blocks on the lock. Called after every user call (with the lock released)
/// and from the inline devices' receive waker.
pub(crate) fn softirq(shared: &Shared) {
    // Pairs with the fence in a notifier: either it sees the lock free, or we see its flag.
    lock_released(shared);
    if !shared.signal.rx_pending.load(Ordering::Relaxed) {
        return;
    }
    let depth = INLINE_NESTING.with(|d| d.get());
    if depth >= INLINE_DEPTH {
        shared.signal.kick();
        return;
    }
    INLINE_NESTING.with(|d| d.set(depth + 1));
    let (mut wakers, mut rx) = take_scratch();
    let mut rounds = 0;
    loop {
        let mut st = match shared.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            // The holder sees `rx_pending` when it unlocks.
            Err(TryLockError::WouldBlock) => break,
        };
        shared.signal.rx_pending.store(false, Ordering::SeqCst);
        if st.shut_down {
            drop(st);
            lock_released(shared);
            break;
        }
        let now = st.clock(call_now());
        let (more, n) = st.receive_inline(now, &shared.rx_waker, &mut rx, INLINE_BUDGET);
        st.finish_op(now, &mut wakers);
        // Counted under the lock, which every writer of these counters holds: a load and
        // a store, not a locked read-modify-write.
        bump(&shared.signal.inline_runs, 1);
        bump(&shared.signal.rx_packets, n);
        drop(st);
        lock_released(shared);
        if more {
            shared.signal.rx_pending.store(true, Ordering::SeqCst);
        }
        for w in wakers.drain(..) {
            w.wake();
        }
        rounds += 1;
        fence(Ordering::SeqCst);
        if !shared.signal.rx_pending.load(Ordering::Relaxed) {
            break;
        }
        if rounds >= INLINE_ROUNDS {
            // Still busy: let the driver task go on after other tasks had a turn.
            shared.signal.kick();
            break;
        }
    }
    put_scratch((wakers, rx));
    INLINE_NESTING.with(|d| d.set(depth));
}

/// Takes the state lock for a task's poll without blocking its thread: when another
/// thread holds the lock (the driver in its batch, a task on another worker of a
/// multi-thread runtime), the task's waker is queued, the poll returns `Pending`, and
/// the holder wakes the task when it unlocks, from its own thread (where tokio then
/// tends to run it: next to the stack's work, instead of a worker thread asleep in
/// the kernel until the lock is free). The `try_*` forms poll with the no-op waker,
/// which nobody could wake: they wait for the lock.
pub(crate) fn poll_lock<'a>(
    shared: &'a Shared,
    cx: &mut Context<'_>,
) -> Poll<MutexGuard<'a, State>> {
    match shared.state.try_lock() {
        Ok(g) => return Poll::Ready(g),
        Err(TryLockError::Poisoned(e)) => return Poll::Ready(e.into_inner()),
        Err(TryLockError::WouldBlock) => {}
    }
    if cx.waker().will_wake(futures::task::noop_waker_ref()) {
        return Poll::Ready(shared.state.lock().unwrap_or_else(|e| e.into_inner()));
    }
    {
        let mut ws = shared
            .lock_waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !ws.iter().any(|w| w.will_wake(cx.waker())) {
            ws.push(cx.waker().clone());
        }
    }
    shared.signal.lock_waiting.store(true, Ordering::SeqCst);
    // Pairs with the fence in `softirq` after every unlock: either the holder sees
    // the flag, or this try sees the lock free.
    fence(Ordering::SeqCst);
    match shared.state.try_lock() {
        Ok(g) => Poll::Ready(g),
        Err(TryLockError::Poisoned(e)) => Poll::Ready(e.into_inner()),
        Err(TryLockError::WouldBlock) => {
            shared.signal.lock_waits.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }
}

/// Called after every release of the state lock (from [`softirq`], which every unlock
/// is followed by): wakes the tasks that found it held ([`poll_lock`]). The fence pairs
/// with theirs.
#[inline]
fn lock_released(shared: &Shared) {
    fence(Ordering::SeqCst);
    if shared.signal.lock_waiting.load(Ordering::Relaxed) {
        wake_lock_waiters(shared);
    }
}

#[cold]
fn wake_lock_waiters(shared: &Shared) {
    shared.signal.lock_waiting.store(false, Ordering::SeqCst);
    let ws = std::mem::take(
        &mut *shared
            .lock_waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    for w in ws {
        w.wake();
    }
}

/// The state lock held by a user call that is not an [`Stack::op`]: on release, packets
/// that arrived on an inline device meanwhile are processed (or handed to the driver).
pub(crate) struct StateGuard<'a> {
    guard: Option<MutexGuard<'a, State>>,
    shared: &'a Shared,
}

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_deref().expect("guard held until drop")
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_deref_mut().expect("guard held until drop")
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        softirq(self.shared);
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) signal: Arc<Signal>,
    /// The receive waker of inline devices (an [`RxKick`]).
    pub(crate) rx_waker: Waker,
    pub(crate) driver: Mutex<Option<JoinHandle<()>>>,
    pub(crate) ping_ident: u16,
    /// The DNS resolver's configuration ([`Stack::set_dns`]).
    pub(crate) dns: Mutex<crate::dns::DnsConfig>,
    /// Its answers, kept for their TTL.
    pub(crate) dns_cache: Mutex<crate::dns::DnsCache>,
    /// Tasks whose poll found the state lock held by another thread; whoever unlocks it
    /// next wakes them (see [`poll_lock`]).
    pub(crate) lock_waiters: Mutex<Vec<Waker>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: stop the driver (it holds only a Weak).
        self.signal.stop();
    }
}

/// A user-space TCP/IPv4 stack: devices, addresses, routes, sockets, and the task that
/// drives them. Cheap to clone (an `Arc` inside); the stack lives while any handle or
/// socket does, or until [`Stack::shutdown`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use ustack::Stack;
/// // Needs CAP_NET_ADMIN to create the TUN device.
/// let stack = Stack::builder()
///     .tun("tun0")
///     .addr("10.0.0.2/24".parse()?)
///     .gateway("10.0.0.1".parse()?)
///     .build()
///     .await?;
/// stack.set_default();
/// let listener = ustack::net::TcpListener::bind("0.0.0.0:80").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Stack")
            .field(
                "devices",
                &st.slots()
                    .map(|d| d.dev.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("shut_down", &st.shut_down)
            .finish()
    }
}

/// Linux `ENODEV`: no device of that name.
const ENODEV: i32 = 19;

static DEFAULT_STACK: RwLock<Option<Stack>> = RwLock::new(None);

const NO_DEFAULT: &str =
    "no default ustack Stack: call Stack::set_default() or use the *_with(&stack) constructors";

impl Stack {
    /// Starts building a stack.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use ustack::Stack;
    /// use ustack::netdev::mem::{MemLink, MemLinkConfig};
    /// let (a, _b) = MemLink::pair(MemLinkConfig::default());
    /// let stack = Stack::builder().device(a).addr("10.0.0.1/24".parse().unwrap()).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> StackBuilder {
        StackBuilder::new()
    }

    pub(crate) fn lock(&self) -> StateGuard<'_> {
        check_not_in_closure();
        StateGuard {
            guard: Some(self.shared.state.lock().unwrap_or_else(|e| e.into_inner())),
            shared: &self.shared,
        }
    }

    /// Runs a user call against the core under the lock, then transmits from the caller's
    /// context (Linux: `tcp_push` -> `dev_queue_xmit`), moves the driver's timer if a
    /// protocol timer now fires earlier, wakes affected sockets after the lock is
    /// released, and processes packets that arrived on inline devices meanwhile.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut NetCore, Instant) -> R) -> R {
        match self.run(false, f) {
            Some(r) => r,
            None => unreachable!("run(false, ..) always runs"),
        }
    }

    fn run<R>(&self, check_live: bool, f: impl FnOnce(&mut NetCore, Instant) -> R) -> Option<R> {
        self.run_or_wait(
            check_live,
            &mut (),
            |_, _| None,
            |core, now, _| f(core, now),
        )
    }

    /// [`run`](Self::run) with a first step: `wait` runs under the lock and may end the
    /// call with its own result when the call would only wait (a receive on an empty
    /// socket that registered its waker). Such a call changed nothing that the tail of a
    /// call acts on (nothing to transmit, no socket to wake, no timer moved), so it ends
    /// without reading the clock and without that tail, as Linux's `tcp_recvmsg` goes to
    /// sleep on an empty queue without touching the rest of the stack. `c` is handed to
    /// both steps (the task's `Context`).
    fn run_or_wait<C: ?Sized, R>(
        &self,
        check_live: bool,
        c: &mut C,
        wait: impl FnOnce(&mut NetCore, &mut C) -> Option<R>,
        f: impl FnOnce(&mut NetCore, Instant, &mut C) -> R,
    ) -> Option<R> {
        check_not_in_closure();
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        self.run_locked(st, check_live, c, wait, f)
    }

    /// The body of [`run_or_wait`](Self::run_or_wait), with the lock taken.
    fn run_locked<C: ?Sized, R>(
        &self,
        mut st: MutexGuard<'_, State>,
        check_live: bool,
        c: &mut C,
        wait: impl FnOnce(&mut NetCore, &mut C) -> Option<R>,
        f: impl FnOnce(&mut NetCore, Instant, &mut C) -> R,
    ) -> Option<R> {
        if check_live && st.shut_down {
            drop(st);
            softirq(&self.shared);
            return None;
        }
        if let Some(r) = wait(&mut st.core, c) {
            drop(st);
            softirq(&self.shared);
            return Some(r);
        }
        let (mut wakers, rx) = take_scratch();
        let now = st.clock(call_now());
        let _call = enter_call(now);
        let r = f(&mut st.core, now, c);
        st.finish_op(now, &mut wakers);
        drop(st);
        for w in wakers.drain(..) {
            w.wake();
        }
        put_scratch((wakers, rx));
        softirq(&self.shared);
        Some(r)
    }

    /// Like [`with_core`](Self::with_core) but fails once the stack is shut down.
    pub(crate) fn op<R>(
        &self,
        f: impl FnOnce(&mut NetCore, Instant) -> io::Result<R>,
    ) -> io::Result<R> {
        self.run(true, f).unwrap_or_else(|| Err(shut_down_error()))
    }

    /// A `poll_*` form of [`op`](Self::op): `f` gets the task's `Context`. A lock held
    /// by another thread makes the call return `Pending` (see [`poll_lock`]).
    pub(crate) fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut NetCore, Instant, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        self.poll_op_or_wait(cx, |_, _| None, f)
    }

    /// A `poll_*` form of [`run_or_wait`](Self::run_or_wait): `wait` may end the call
    /// first, without the clock read and the tail of a call, when the call would only wait.
    pub(crate) fn poll_op_or_wait<R>(
        &self,
        cx: &mut Context<'_>,
        wait: impl FnOnce(&mut NetCore, &mut Context<'_>) -> Option<Poll<io::Result<R>>>,
        f: impl FnOnce(&mut NetCore, Instant, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        check_not_in_closure();
        let st = match poll_lock(&self.shared, cx) {
            Poll::Ready(st) => st,
            Poll::Pending => return Poll::Pending,
        };
        self.run_locked(st, true, cx, wait, f)
            .unwrap_or_else(|| Poll::Ready(Err(shut_down_error())))
    }

    /// Installs this stack as the process-wide default used by constructors that take no
    /// stack (`ustack::net::TcpListener::bind`, ...). Replaces any earlier default.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.set_default();
    /// let sock = ustack::net::UdpSocket::bind("0.0.0.0:0").await?;
    /// # Ok(()) }
    /// ```
    pub fn set_default(&self) {
        *DEFAULT_STACK.write().unwrap_or_else(|e| e.into_inner()) = Some(self.clone());
    }

    /// Removes the process-wide default stack, returning it.
    pub fn clear_default() -> Option<Stack> {
        DEFAULT_STACK
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The process-wide default stack, or a `NotFound` error that says how to set one.
    ///
    /// ```
    /// let err = ustack::Stack::try_default().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn try_default() -> io::Result<Stack> {
        DEFAULT_STACK
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, NO_DEFAULT))
    }

    /// Sends an ICMP echo request to `dst` and waits up to `timeout` for the reply; returns
    /// the round-trip time. Fails at once with `NetworkUnreachable` when there is no route.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let rtt = stack.ping("10.0.0.1".parse().unwrap(), std::time::Duration::from_secs(1)).await?;
    /// println!("rtt {rtt:?}");
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self, dst: Ipv4Addr, timeout: Duration) -> io::Result<Duration> {
        let payload: Vec<u8> = (0..56u8).collect();
        let start = now();
        let ident = self.shared.ping_ident;
        let key = self.op(|core, now| core.ping_start(now, dst, ident, &payload))?;
        struct Cancel<'a>(&'a Stack, (u16, u16));
        impl Drop for Cancel<'_> {
            fn drop(&mut self) {
                self.0.lock().core.ping_cancel(self.1);
            }
        }
        let _cancel = Cancel(self, key);
        let wait = std::future::poll_fn(|cx: &mut Context<'_>| -> Poll<()> {
            self.lock().core.poll_ping(key, cx).map(|_| ())
        });
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) => Ok(now().saturating_duration_since(start)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no echo reply from {dst}"),
            )),
        }
    }

    /// The TCP settings this stack was built with ([`StackBuilder::tcp_config`]).
    pub fn tcp_config(&self) -> crate::TcpConfig {
        self.with_core(|core, _| core.tcp.config().clone())
    }

    /// The DNS resolver's configuration (servers, timeout, attempts).
    pub fn dns(&self) -> crate::dns::DnsConfig {
        self.shared
            .dns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the DNS resolver's configuration and empties its cache; lookups that
    /// start afterwards use it.
    pub fn set_dns(&self, cfg: crate::dns::DnsConfig) {
        *self.shared.dns.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
        self.dns_cache(|c| c.clear());
    }

    /// Names whose answers the DNS cache holds now.
    pub fn dns_cached(&self) -> usize {
        self.dns_cache(|c| c.len())
    }

    pub(crate) fn dns_cache<R>(&self, f: impl FnOnce(&mut crate::dns::DnsCache) -> R) -> R {
        f(&mut self
            .shared
            .dns_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// The id of the attached device named `name`: `ENODEV` (19) when there is none,
    /// `InvalidInput` when several devices have that name (nothing stops two in-memory
    /// links from keeping their default names).
    pub(crate) fn dev_id(&self, name: &[u8]) -> io::Result<DevId> {
        self.lock().dev_id(name)
    }

    /// What device `name` carries: `ENODEV` when there is none.
    pub(crate) fn dev_link(&self, name: &str) -> io::Result<ustack_netdev::Link> {
        self.on_slot(name, |d| d.dev.link())
    }

    /// `f` of the attached device named `name`: `ENODEV` when there is none.
    fn on_slot<T>(&self, name: &str, f: impl FnOnce(&DevSlot) -> T) -> io::Result<T> {
        let st = self.lock();
        let id = st.dev_id(name.as_bytes())?;
        st.slot(id)
            .map(f)
            .ok_or_else(|| io::Error::from_raw_os_error(ENODEV))
    }

    /// The name of attached device `id`.
    pub(crate) fn dev_name(&self, id: DevId) -> Option<String> {
        self.lock().slot(id).map(|d| d.dev.name().to_string())
    }

    /// The multicast groups the stack's devices have joined (Linux `/proc/net/igmp`): the
    /// device name, the group and how many sockets joined it there. 224.0.0.1 (all
    /// hosts), which every device receives, is not listed.
    pub fn multicast_groups(&self) -> Vec<(String, Ipv4Addr, u32)> {
        let st = self.lock();
        st.core
            .ip
            .mc_memberships()
            .into_iter()
            .map(|(dev, group, users)| {
                let name = st.name_of(dev);
                (name, group, users)
            })
            .collect()
    }

    /// The neighbour table of the stack's Ethernet devices (Linux `ip neigh`): each
    /// neighbour's device, address, Ethernet address (once known) and state. Empty for a
    /// stack without Ethernet devices.
    pub fn neighbours(&self) -> Vec<Neighbour> {
        let mut st = self.lock();
        let now = st.clock(now());
        st.core
            .ip
            .neighbours_at(now)
            .into_iter()
            .map(|n| Neighbour {
                dev: st.name_of(n.dev),
                addr: n.addr,
                mac: n.mac,
                state: n.state,
            })
            .collect()
    }

    /// Broadcasts an ARP announcement of our address `addr` on Ethernet device `device`
    /// (RFC 5227 2.3, like `arping -U`): neighbours that have an entry for the address,
    /// even one still being resolved or failed, take this stack's Ethernet address.
    /// [`Stack::dhcp`] sends one for each new lease. Errors: `ENODEV` for an unknown
    /// device, `InvalidInput` for a device without Ethernet.
    pub fn announce_address(&self, device: &str, addr: Ipv4Addr) -> io::Result<()> {
        self.on_ether_dev(device, |st, dev| {
            st.core.ip.arp_announce(dev, addr);
            Ok(())
        })
    }

    /// Whether another host on Ethernet device `device` uses `addr` (RFC 5227 address
    /// conflict detection, like `arping -D`): sends `probes` ARP probes (from 0.0.0.0, so
    /// no cache learns from them) a second apart and watches until a second after the
    /// last for any ARP message from `addr` or another host's probe for it.
    /// [`Stack::dhcp`] checks an offered address this way. Errors: `ENODEV` for an
    /// unknown device, `InvalidInput` for a device without Ethernet, `OutOfMemory` when
    /// 64 probes are already running.
    pub async fn address_in_use(
        &self,
        device: &str,
        addr: Ipv4Addr,
        probes: u32,
    ) -> io::Result<bool> {
        /// Ends the probe however the wait ends (also when the future is dropped).
        struct Probe<'a>(&'a Stack, DevId, Ipv4Addr);
        impl Drop for Probe<'_> {
            fn drop(&mut self) {
                self.0.lock().core.ip.arp_probe_end(self.1, self.2);
            }
        }
        let send = || {
            self.on_ether_dev(device, |st, d| {
                if st.core.ip.arp_probe(d, addr) {
                    Ok(d)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "too many address probes at once",
                    ))
                }
            })
        };
        let d = send()?;
        let guard = Probe(self, d, addr);
        for _ in 1..probes {
            tokio::time::sleep(Duration::from_secs(1)).await;
            send()?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let in_use = self.lock().core.ip.arp_probe_end(d, addr);
        // (Its end finds nothing left to end.)
        drop(guard);
        Ok(in_use)
    }

    /// The last address conflicts on the stack's Ethernet devices, oldest first (at most
    /// 32): ARP messages from another host that claim one of our addresses as its
    /// sender (RFC 5227 2.4 ongoing address conflict detection). The stack defends an
    /// address with a broadcast announcement at most once per 10 s and never removes it;
    /// a DHCP client ([`Stack::dhcp`]) gives its lease up at a conflict that comes within
    /// 10 s of a defence. Each conflict is also counted in `stats().arp.conflicts`; each
    /// defence is logged as a warning (so a flood of claims logs one line per 10 s).
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) {
    /// for c in stack.address_conflicts() {
    ///     eprintln!("{} on {} claimed by {}", c.addr, c.dev, c.mac);
    /// }
    /// # }
    /// ```
    pub fn address_conflicts(&self) -> Vec<AddressConflict> {
        let st = self.lock();
        st.core
            .ip
            .arp_conflicts()
            .into_iter()
            .map(|c| AddressConflict {
                dev: st.name_of(c.dev),
                addr: c.addr,
                mac: c.mac,
                at: c.at,
                defended: c.defended,
            })
            .collect()
    }

    /// The sequence number of the last address conflict (0 before the first), the
    /// starting point of [`address_lost`](Self::address_lost).
    pub(crate) fn conflict_seq(&self) -> u64 {
        self.lock().core.ip.arp_conflict_seq()
    }

    /// Resolves at the first conflict after sequence number `after` that the stack did
    /// not defend, for `addr` on device `dev`: the other host insists and the address is
    /// to be given up (RFC 5227 2.4 (b)).
    pub(crate) async fn address_lost(&self, dev: DevId, addr: Ipv4Addr, after: u64) {
        std::future::poll_fn(|cx| {
            match self
                .lock()
                .core
                .ip
                .arp_poll_lost(dev, addr, after, cx.waker())
            {
                Some(_) => Poll::Ready(()),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Runs `f` under the lock on the Ethernet device named `device`, then sends what it
    /// queued and wakes whom it woke. `ENODEV` for an unknown device, `InvalidInput` for
    /// one without Ethernet.
    fn on_ether_dev<T>(
        &self,
        device: &str,
        f: impl FnOnce(&mut State, DevId) -> io::Result<T>,
    ) -> io::Result<T> {
        let dev = self.dev_id(device.as_bytes())?;
        let mut st = self.lock();
        if !st.core.ip.has_ethernet_dev(dev) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{device} does not carry Ethernet"),
            ));
        }
        let r = f(&mut st, dev)?;
        let now = st.clock(now());
        let mut wakers = Vec::new();
        st.finish_op(now, &mut wakers);
        drop(st);
        wakers.into_iter().for_each(Waker::wake);
        Ok(r)
    }

    /// Sets a permanent neighbour on the Ethernet device named `device`: `addr` is
    /// `mac`, without ARP (Linux `ip neigh replace ADDR lladdr MAC dev DEV nud
    /// permanent`); ARP never changes it. Datagrams waiting for `addr` leave now.
    /// Errors: `ENODEV` for an unknown device, `InvalidInput` for a device without
    /// Ethernet or a group or zero `mac`, `OutOfMemory` when the table is full of
    /// entries that cannot make room.
    pub fn add_neighbour(&self, device: &str, addr: Ipv4Addr, mac: MacAddr) -> io::Result<()> {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{mac} is not a unicast Ethernet address"),
            ));
        }
        self.on_ether_dev(device, |st, dev| {
            if st.core.ip.add_neighbour(dev, addr, mac) {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "the neighbour table is full",
                ))
            }
        })
    }

    /// Removes the neighbour entry for `addr` on `device`, permanent or learnt (`ip neigh
    /// del`). Errors: `ENODEV` for an unknown device, `NotFound` without such an entry.
    pub fn remove_neighbour(&self, device: &str, addr: Ipv4Addr) -> io::Result<()> {
        let dev = self.dev_id(device.as_bytes())?;
        if self.lock().core.ip.remove_neighbour(dev, addr) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no neighbour {addr} on {device}"),
            ))
        }
    }

    /// A snapshot of every counter: devices (`ip -s link`), IP and ICMP (`/proc/net/snmp`),
    /// TCP and UDP.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) {
    /// let s = stack.stats();
    /// println!("{}", s.to_json());
    /// # }
    /// ```
    pub fn stats(&self) -> StackStats {
        let st = self.lock();
        StackStats {
            devices: st
                .slots()
                .map(|d| DeviceSnapshot {
                    name: d.dev.name().to_string(),
                    stats: d.dev.stats(),
                })
                .collect(),
            ip: st.core.ip.stats(),
            icmp: st.core.ip.icmp_stats(),
            tcp: st.core.tcp.stats(),
            udp: st.core.udp.stats(),
            igmp: st.core.ip.igmp_stats(),
            arp: st.core.ip.arp_stats(),
            driver: DriverStats {
                polls: self.shared.signal.polls.load(Ordering::Relaxed),
                rx_packets: self.shared.signal.rx_packets.load(Ordering::Relaxed),
                timer_runs: self.shared.signal.timer_runs.load(Ordering::Relaxed),
                kicks: self.shared.signal.kicks.load(Ordering::Relaxed),
                inline_runs: self.shared.signal.inline_runs.load(Ordering::Relaxed),
                lock_waits: self.shared.signal.lock_waits.load(Ordering::Relaxed),
                next_deadline_in: st
                    .core
                    .poll_timeout()
                    .map(|d| d.saturating_duration_since(now())),
            },
        }
    }

    /// The routing table (Linux: `ip route show table all`).
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// for r in stack.routes() {
    ///     println!("{r:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn routes(&self) -> Vec<Route> {
        self.lock().core.ip.fib().routes()
    }

    /// The name of the device a [`Route`] goes through (`Route::dev`); `None` once that
    /// device is detached.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) {
    /// for r in stack.routes() {
    ///     println!("{} via {:?} dev {:?}", r.dst, r.gateway, stack.device_name(r.dev));
    /// }
    /// # }
    /// ```
    pub fn device_name(&self, id: DevId) -> Option<String> {
        self.lock().slot(id).map(|d| d.dev.name().to_string())
    }

    /// Every address of the stack, with its device's name (Linux: `ip -4 addr`).
    pub fn addresses(&self) -> Vec<(String, Ipv4Cidr)> {
        let st = self.lock();
        let mut out = Vec::new();
        for d in st.slots() {
            for a in st.core.ip.addresses(d.id) {
                out.push((d.dev.name().to_string(), a));
            }
        }
        out
    }

    /// Adds address `addr` to the device named `device`, with its local route and its
    /// subnet's connected route (Linux: `ip addr add ADDR dev DEVICE`), while the stack
    /// runs: sockets can bind it and connections reach it at once. A device may have
    /// several addresses. Errors: `ENODEV` (19 in `raw_os_error()`) for an unknown
    /// device, `AlreadyExists` when the device has it already (Linux `EEXIST`).
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.add_address("tun0", "10.0.0.3/24".parse().unwrap())?;
    /// # Ok(()) }
    /// ```
    pub fn add_address(&self, device: &str, addr: Ipv4Cidr) -> io::Result<()> {
        let dev = self.dev_id(device.as_bytes())?;
        let mut st = self.lock();
        if st.core.ip.addresses(dev).contains(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{device} has {addr} already"),
            ));
        }
        let Some(slot) = st.slot(dev) else {
            return Err(io::Error::from_raw_os_error(ENODEV));
        };
        let mtu = slot.mtu;
        let name = slot.dev.name().to_string();
        st.core.add_interface(dev, &name, addr, mtu);
        Ok(())
    }

    /// The MTU the stack uses on device `device` (Linux: `ip link show`'s `mtu`): the
    /// device's own, unless lowered with [`set_mtu`](Self::set_mtu) or
    /// `StackBuilder::mtu`. `ENODEV` for an unknown device.
    pub fn mtu(&self, device: &str) -> io::Result<usize> {
        self.on_slot(device, |d| d.mtu)
    }

    /// The largest MTU device `device` carries (`NetDevice::mtu`), the bound of
    /// [`set_mtu`](Self::set_mtu).
    pub(crate) fn device_max_mtu(&self, device: &str) -> io::Result<usize> {
        self.on_slot(device, |d| d.dev.mtu())
    }

    /// Sets the MTU the stack uses on device `device` (Linux: `ip link set DEV mtu N`):
    /// the largest IPv4 packet it sends there, the MSS of TCP connections opened or
    /// accepted afterwards, the size above which datagrams are fragmented. At least 68
    /// (RFC 791) and at most the device's own MTU (what it can carry); existing
    /// connections keep their MSS. Errors: `ENODEV` for an unknown device,
    /// `InvalidInput` outside those bounds.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.set_mtu("tun0", 1400)?;
    /// # Ok(()) }
    /// ```
    pub fn set_mtu(&self, device: &str, mtu: usize) -> io::Result<()> {
        let mut st = self.lock();
        let id = st.dev_id(device.as_bytes())?;
        let Some(slot) = st
            .devices
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
        else {
            return Err(io::Error::from_raw_os_error(ENODEV));
        };
        let max = slot.dev.mtu();
        if !(68..=max).contains(&mtu) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {mtu} for {device}: must be within 68..={max}"),
            ));
        }
        slot.mtu = mtu;
        st.core.ip.set_mtu(id, mtu);
        Ok(())
    }

    /// Attaches device `dev` to the running stack with addresses `addrs` (Linux: a new
    /// interface registered, then `ip addr add`): their local and connected routes
    /// follow at once, and the driver starts polling the device. Any `NetDevice` works:
    /// a `TunDevice` opened with `TunDevice::open` (TUN or TAP), an in-memory link end,
    /// a device wrapped in a `FaultInjector` or `PcapCapture`. A device that reports
    /// itself gone (its receive path fails: a TUN deleted under the stack, noticed at its
    /// next write) is detached as by [`remove_device`](Self::remove_device).
    ///
    /// Errors: `AlreadyExists` when a device of that name is attached, `InvalidInput`
    /// past 65,535 devices.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// use ustack::netdev::tun::{TunDevice, TunOptions};
    /// let tun = TunDevice::open(TunOptions { name: "tun1".into(), up: true, ..Default::default() })?;
    /// stack.add_device(tun, &["10.1.0.2/24".parse().unwrap()])?;
    /// # Ok(()) }
    /// ```
    pub fn add_device(&self, dev: impl NetDevice, addrs: &[Ipv4Cidr]) -> io::Result<()> {
        let mut st = self.lock();
        if st.slots().any(|d| d.dev.name() == dev.name()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a device named {:?} is attached already", dev.name()),
            ));
        }
        let id = st.next_dev_id()?;
        let slot = crate::builder::attach(&mut st.core, id, Box::new(dev), addrs, None);
        st.attach(slot);
        drop(st);
        // The driver polls the new device, which registers its receive waker.
        self.shared.signal.kick();
        Ok(())
    }

    /// Detaches the device named `name` and closes it (Linux: `ip link del`): its
    /// addresses go with their local and connected routes, every route through it, its
    /// neighbour entries (with the datagrams waiting for them), its multicast
    /// memberships and whatever was queued for it. Sockets stay, as in Linux: bound to
    /// one of its addresses they no longer receive; bound to the device
    /// (`bind_device`) or routed only through it they fail to send with
    /// `NetworkUnreachable`; established connections through it go quiet and time out
    /// unless another route (say, a default route through another device) takes their
    /// traffic. The name can be attached again; ids are not reused.
    ///
    /// Errors: `ENODEV` (19 in `raw_os_error()`) when no device has that name,
    /// `InvalidInput` when several do.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.remove_device("tun1")?;
    /// # Ok(()) }
    /// ```
    pub fn remove_device(&self, name: &str) -> io::Result<()> {
        let slot = {
            let mut st = self.lock();
            let id = st.dev_id(name.as_bytes())?;
            st.detach(id)
        };
        if let Some(slot) = slot {
            tracing::info!(dev = name, id = slot.id.0, "ustack device detached");
            // Closed here, outside the lock.
            drop(slot);
        }
        Ok(())
    }

    /// Removes address `addr` (with its prefix length) from the device named `device`,
    /// with its local route and its connected route unless another address of the device
    /// is in that subnet (Linux: `ip addr del`). Sockets bound to it stay and no longer
    /// receive; connections from it go on until they fail, as in Linux. Errors: `ENODEV`
    /// for an unknown device, `AddrNotAvailable` when the device does not have it.
    pub fn remove_address(&self, device: &str, addr: Ipv4Cidr) -> io::Result<()> {
        let dev = self.dev_id(device.as_bytes())?;
        let mut st = self.lock();
        if st.core.ip.remove_interface(dev, addr) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{device} does not have {addr}"),
            ))
        }
    }

    /// Adds a static route (Linux: `ip route add DST [via GW]`). With a gateway, the device
    /// is the one the gateway is reachable through; without, the first device.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.add_route("192.168.7.0/24".parse().unwrap(), Some("10.0.0.1".parse().unwrap()))?;
    /// # Ok(()) }
    /// ```
    pub fn add_route(&self, dst: Ipv4Cidr, gateway: Option<Ipv4Addr>) -> io::Result<()> {
        let mut st = self.lock();
        add_route_locked(&mut st, dst, gateway, None)
    }

    /// Adds a static route through device `device` (Linux: `ip route add DST [via GW] dev
    /// DEV`). Without a gateway the destination is on that device's link (reached directly,
    /// by ARP on an Ethernet device). Errors: `ENODEV` for an unknown device,
    /// `AlreadyExists` when a route for `dst` exists.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// stack.add_device_route("tap0", "192.168.50.0/24".parse().unwrap(), None)?;
    /// # Ok(()) }
    /// ```
    pub fn add_device_route(
        &self,
        device: &str,
        dst: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let mut st = self.lock();
        let dev = st.dev_id(device.as_bytes())?;
        add_route_locked(&mut st, dst, gateway, Some(dev))
    }

    /// Removes the static route for exactly `dst` through device `dev` with gateway
    /// `gateway` (and no other route for `dst`); whether there was one.
    pub(crate) fn remove_static_route(
        &self,
        dev: &str,
        dst: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
    ) -> bool {
        let mut st = self.lock();
        let Ok(id) = st.dev_id(dev.as_bytes()) else {
            return false;
        };
        st.core
            .ip
            .fib_mut()
            .remove_matching(dst, |r| {
                r.dev == id && r.gateway == gateway && r.kind == RouteKind::Static
            })
            .is_ok()
    }

    /// Removes a route added with [`add_route`](Self::add_route) (or a connected one).
    pub fn remove_route(&self, dst: Ipv4Cidr, gateway: Option<Ipv4Addr>) -> io::Result<()> {
        let mut st = self.lock();
        st.core
            .ip
            .fib_mut()
            .remove(dst.network(), gateway)
            .map(|_| ())
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{e:?}")))
    }

    /// Stops the driver task and releases the devices (a TUN device is closed). Sockets
    /// of this stack fail afterwards. Dropping the last handle (and socket) does the same
    /// without waiting.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) {
    /// stack.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.shared.signal.stop();
        let handle = self
            .shared
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        let mut wakers = Vec::new();
        let devices = {
            let mut st = self.lock();
            st.shut_down = true;
            st.core.take_all_wakers(&mut wakers);
            std::mem::take(&mut st.devices)
        };
        drop(devices);
        // Blocked socket calls wake up and fail with "the ustack Stack has been shut down".
        for w in wakers {
            w.wake();
        }
        let mut cleared = DEFAULT_STACK.write().unwrap_or_else(|e| e.into_inner());
        if cleared
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.shared, &self.shared))
        {
            *cleared = None;
        }
    }

    /// True while the driver task runs.
    pub fn is_running(&self) -> bool {
        self.shared
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// The TCP socket table: every listener, half-open and established connection, closing
    /// and TIME-WAIT socket, with its addresses and queue lengths (Linux `ss -tan`). A full
    /// scan under the stack's lock: for diagnostics, not for a hot path.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) {
    /// for s in stack.tcp_sockets() {
    ///     println!("{:?} {} {:?} recv-q {} send-q {}", s.state, s.local, s.remote, s.recv_q, s.send_q);
    /// }
    /// # }
    /// ```
    pub fn tcp_sockets(&self) -> Vec<crate::TcpSocketEntry> {
        self.lock().core.tcp.sockets()
    }

    /// Number of TCP connections the engine tracks (including TIME_WAIT and orphans).
    pub fn tcp_connection_count(&self) -> usize {
        self.lock().core.tcp.connection_count()
    }

    /// A weak handle, for tests and for caches that must not keep the stack alive.
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let weak = stack.downgrade();
    /// drop(stack);
    /// assert!(weak.upgrade().is_none() || weak.upgrade().is_some());
    /// # Ok(()) }
    /// ```
    pub fn downgrade(&self) -> WeakStack {
        WeakStack {
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// A handle that does not keep the stack alive (see [`Stack::downgrade`]).
#[derive(Clone, Debug)]
pub struct WeakStack {
    shared: std::sync::Weak<Shared>,
}

impl WeakStack {
    /// The stack, if it is still alive.
    pub fn upgrade(&self) -> Option<Stack> {
        self.shared.upgrade().map(|shared| Stack { shared })
    }
}

pub(crate) fn shut_down_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the ustack Stack has been shut down",
    )
}

pub(crate) fn add_route_locked(
    st: &mut State,
    dst: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
    dev: Option<DevId>,
) -> io::Result<()> {
    let now = now();
    let dev = match (dev, gateway) {
        (Some(d), _) => d,
        (None, Some(gw)) => {
            st.core
                .ip
                .route_output(gw, now)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("gateway {gw} is not reachable through any device: {e:?}"),
                    )
                })?
                .dev
        }
        (None, None) => st.slots().next().map(|d| d.id).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no device to route through")
        })?,
    };
    let route = Route {
        dst: dst.network(),
        gateway,
        dev,
        metric: 0,
        src: None,
        kind: RouteKind::Static,
    };
    st.core
        .ip
        .fib_mut()
        .add(route)
        .map_err(|e| io::Error::new(io::ErrorKind::AlreadyExists, format!("{e:?}")))
}

#[cfg(test)]
mod tests;
