//! Inline receive on in-process links and the driver timer moved by user calls: packets
//! are processed in the sender's context, nothing is lost or left waiting when stacks
//! feed each other from several threads, and timers armed by user calls still fire.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{echo_roundtrip, echo_server, pair, pair_with, pair_with_link, B};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream};
use ustack::netdev::mem::MemLinkConfig;
use ustack::Stack;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((B, port))
}

/// An echo server on `s` at `port` that serves any number of connections.
async fn echo_on(s: &Stack, port: u16) {
    let l = TcpListener::bind_with(s, addr(port)).await.unwrap();
    tokio::spawn(echo_server(l));
}

#[tokio::test]
async fn round_trips_need_no_driver_wakeups() {
    let (c, s) = pair().await;
    echo_on(&s, 7).await;
    let mut st = TcpStream::connect_with(&c, addr(7)).await.unwrap();
    st.set_nodelay(true).unwrap();
    let before = (c.stats().driver, s.stats().driver);
    let rounds = 200u64;
    let mut b = [0u8; 1];
    for i in 0..rounds {
        b[0] = i as u8;
        st.write_all(&b).await.unwrap();
        st.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], i as u8);
    }
    let after = (c.stats().driver, s.stats().driver);
    // Every request and reply was received inline, by the writer's call.
    assert!(after.1.inline_runs - before.1.inline_runs >= rounds);
    assert!(after.0.inline_runs - before.0.inline_runs >= rounds);
    assert!(after.1.rx_packets - before.1.rx_packets >= rounds);
    // The driver tasks were not a hop of the round trips (a few wakeups for timers at most).
    let polls = (after.0.polls - before.0.polls) + (after.1.polls - before.1.polls);
    assert!(
        polls < rounds / 4,
        "driver tasks polled {polls} times in {rounds} round trips"
    );
}

/// Many connections both ways between two stacks, driven from four worker threads: the
/// lock holder / inline waker hand-off must never lose a packet or a wakeup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lost_wakeups_across_threads() {
    let (a, b) = pair_with(MemLinkConfig {
        queue_len: 4096,
        ..Default::default()
    })
    .await;
    echo_on(&b, 7).await;
    let work = async {
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let st = TcpStream::connect_with(&a, addr(7)).await.unwrap();
                let len = 2 * 1024 * 1024 + i as usize * 1000;
                echo_roundtrip(st, len, i, &format!("connection {i}")).await;
            }));
        }
        for i in 0..4u8 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let mut st = TcpStream::connect_with(&a, addr(7)).await.unwrap();
                st.set_nodelay(true).unwrap();
                let mut b = [0u8; 1];
                for k in 0..2000u32 {
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
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("transfers across threads stalled");
    // The link neither loses nor reorders, and each stack's clock never steps back even
    // when packets are processed inline at another thread's earlier instant: no segment
    // may fail the peer's PAWS check (a timestamp behind the last one seen).
    assert_eq!(a.stats().tcp.paws_estab, 0);
    assert_eq!(b.stats().tcp.paws_estab, 0);
}

/// A retransmission timer armed by a user call while the driver sleeps with no deadline
/// moves the driver's timer itself: the lost segment is resent once the link is back.
#[tokio::test]
async fn timer_armed_by_a_user_call_fires() {
    let (c, s, link) = pair_with_link(MemLinkConfig::default()).await;
    echo_on(&s, 7).await;
    let mut st = TcpStream::connect_with(&c, addr(7)).await.unwrap();
    st.set_nodelay(true).unwrap();
    st.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    st.read_exact(&mut one).await.unwrap();
    // Let every timer of the exchange settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    link.set_up(false);
    st.write_all(b"y").await.unwrap(); // dropped on the link; the RTO is armed by this call
    tokio::time::sleep(Duration::from_millis(100)).await;
    link.set_up(true);
    tokio::time::timeout(Duration::from_secs(5), st.read_exact(&mut one))
        .await
        .expect("the retransmission never came")
        .unwrap();
    assert_eq!(&one, b"y");
    assert!(c.stats().tcp.retrans_segs >= 1);
}
