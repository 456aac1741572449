//! The state lock seen from a task's poll: a lock held by another thread makes the poll
//! wait without blocking its thread, and the holder wakes the task when it unlocks.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use ustack_netdev::mem::{MemLink, MemLinkConfig};

use crate::net::{TcpListener, TcpStream};
use crate::Stack;

struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two stacks on an in-memory link, 10.9.`net`.1 and 10.9.`net`.2.
async fn stacks(net: u8) -> (Stack, Stack) {
    let (a, b) = MemLink::pair(MemLinkConfig::default());
    let mut out = Vec::new();
    for (dev, host) in [(a, 1), (b, 2)] {
        let addr = format!("10.9.{net}.{host}/24").parse().unwrap();
        out.push(
            Stack::builder()
                .device(dev)
                .addr(addr)
                .build()
                .await
                .unwrap(),
        );
    }
    let sb = out.pop().unwrap();
    (out.pop().unwrap(), sb)
}

async fn connected_pair() -> (Stack, TcpStream, TcpStream) {
    let (sa, sb) = stacks(0).await;
    let to: SocketAddr = "10.9.0.2:7".parse().unwrap();
    let l = TcpListener::bind_with(&sb, to).await.unwrap();
    let (c, s) = tokio::join!(TcpStream::connect_with(&sa, to), l.accept());
    (sa, c.unwrap(), s.unwrap().0)
}

/// Holds `stack`'s lock on a thread of its own until told to let go.
fn hold_lock(stack: &Stack) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let stack = stack.clone();
    let t = std::thread::spawn(move || {
        let guard = stack.lock();
        held_tx.send(()).unwrap();
        let _ = go_rx.recv_timeout(Duration::from_secs(10));
        drop(guard);
    });
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (go_tx, t)
}

#[tokio::test]
async fn a_poll_that_finds_the_lock_held_waits_and_is_woken_by_the_holder() {
    let (sa, mut c, mut s) = connected_pair().await;
    s.write_all(b"x").await.unwrap();
    let (go, t) = hold_lock(&sa);

    let w = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    let mut rb = ReadBuf::new(&mut buf);
    // The byte is queued, but the lock is another thread's: the poll returns at once.
    assert!(Pin::new(&mut c).poll_read(&mut cx, &mut rb).is_pending());
    assert_eq!(w.0.load(Ordering::SeqCst), 0);

    go.send(()).unwrap();
    t.join().unwrap();
    // Unlocking woke the task.
    assert!(
        w.0.load(Ordering::SeqCst) >= 1,
        "the holder did not wake the waiter"
    );
    match Pin::new(&mut c).poll_read(&mut cx, &mut rb) {
        Poll::Ready(Ok(())) => assert_eq!(rb.filled(), b"x"),
        other => panic!("read after the wake: {other:?}"),
    }
}

#[tokio::test]
async fn try_read_waits_for_a_held_lock_instead_of_would_block() {
    let (sa, c, mut s) = connected_pair().await;
    s.write_all(b"yz").await.unwrap();
    let (go, t) = hold_lock(&sa);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        go.send(()).unwrap();
    });
    let t0 = Instant::now();
    let mut buf = [0u8; 4];
    // The no-op waker of the try_ forms could never be woken: the call waits.
    assert_eq!(c.try_read(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"yz");
    assert!(t0.elapsed() >= Duration::from_millis(40));
    release.join().unwrap();
    t.join().unwrap();
}

/// Ping-pongs on a multi-thread runtime while another thread keeps taking the lock of
/// the clients' stack: polls find the lock held again and again, and every one of them
/// must be woken (a lost wake-up would hang a connection until the deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lost_wakeups_under_lock_contention() {
    use std::sync::atomic::AtomicBool;
    use tokio::io::AsyncReadExt;

    let (sa, sb) = stacks(1).await;
    let to: SocketAddr = "10.9.1.2:7".parse().unwrap();
    let l = TcpListener::bind_with(&sb, to).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut st, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = st.read(&mut buf).await {
                    if st.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    let done = Arc::new(AtomicBool::new(false));
    let contended = {
        let (sa, done) = (sa.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) && n < 200_000 {
                let g = sa.lock();
                std::hint::spin_loop();
                std::thread::sleep(Duration::from_micros(20));
                drop(g);
                n += 1;
            }
        })
    };
    let work = async {
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let sa = sa.clone();
            tasks.push(tokio::spawn(async move {
                let mut st = TcpStream::connect_with(&sa, to).await.unwrap();
                st.set_nodelay(true).unwrap();
                let mut b = [0u8; 1];
                for k in 0..300u32 {
                    b[0] = (k as u8).wrapping_add(i);
                    st.write_all(&b).await.unwrap();
                    st.read_exact(&mut b).await.unwrap();
                    assert_eq!(b[0], (k as u8).wrapping_add(i));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    };
    let waits0 = sa.stats().driver.lock_waits;
    let r = tokio::time::timeout(Duration::from_secs(60), work).await;
    done.store(true, Ordering::SeqCst);
    contended.join().unwrap();
    r.expect("connections hung: a task waiting for the lock was not woken");
    let waits = sa.stats().driver.lock_waits - waits0;
    assert!(waits > 0, "no poll found the lock held: nothing was tested");
    eprintln!("{waits} polls waited for the lock");
}
