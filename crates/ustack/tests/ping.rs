//! Stack + driver + ICMP echo over an in-memory link; routes.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{pair, A, B};
use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;

#[tokio::test]
async fn two_stacks_ping_each_other() {
    let (s1, s2) = pair().await;
    let rtt = s1.ping(B, Duration::from_secs(2)).await.unwrap();
    assert!(rtt < Duration::from_secs(2));
    s2.ping(A, Duration::from_secs(2)).await.unwrap();
    let st = s1.stats();
    assert!(st.icmp.in_echo_reps >= 1, "{st:?}");
    assert!(st.devices[0].stats.tx_packets >= 2);
    assert!(s1.stats().to_json().contains("\"in_echo_reps\":"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_on_multi_thread_runtime() {
    let (s1, _s2) = pair().await;
    for _ in 0..10 {
        s1.ping(B, Duration::from_secs(2)).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn ping_under_paused_time() {
    let (s1, s2) = pair().await;
    let rtt = s1.ping(B, Duration::from_secs(1)).await.unwrap();
    // Virtual time does not advance while packets move in memory.
    assert_eq!(rtt, Duration::ZERO);
    s2.ping(A, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ping_to_silent_host_times_out() {
    let (s1, _s2) = pair().await;
    let err = s1
        .ping("10.0.0.9".parse().unwrap(), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[tokio::test]
async fn unrouted_destination_is_network_unreachable() {
    let (s1, _s2) = pair().await;
    let err = s1
        .ping("192.168.1.1".parse().unwrap(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable
        ),
        "{err:?}"
    );
}

/// Three stacks: A (10.0.0.1) -- B (10.0.0.2 | 10.1.0.1) -- C (10.1.0.2). B does not
/// forward, so A reaches C's network only through a route whose gateway is B; the echo
/// request to B's far address 10.1.0.1 is accepted by B (weak host model).
#[tokio::test]
async fn gateway_route_is_used() {
    let (a, b1) = MemLink::pair(MemLinkConfig::default());
    let (b2, c) = MemLink::pair(MemLinkConfig::default());
    let sa = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .route("10.1.0.0/24".parse().unwrap(), Some(B))
        .build()
        .await
        .unwrap();
    let sb = Stack::builder()
        .device(b1)
        .addr("10.0.0.2/24".parse().unwrap())
        .device(b2)
        .addr("10.1.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let _sc = Stack::builder()
        .device(c)
        .addr("10.1.0.2/24".parse().unwrap())
        .gateway("10.1.0.1".parse().unwrap())
        .build()
        .await
        .unwrap();
    assert!(sa.routes().iter().any(|r| r.gateway == Some(B)));
    sa.ping("10.1.0.1".parse().unwrap(), Duration::from_secs(2))
        .await
        .unwrap();
    // The request went out on A's only device to B; B answered from its far address.
    assert!(sb.stats().icmp.in_echos >= 1);
    sa.remove_route("10.1.0.0/24".parse().unwrap(), Some(B))
        .unwrap();
    let err = sa
        .ping("10.1.0.1".parse().unwrap(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
}

#[tokio::test]
async fn default_gateway_route() {
    let (a, _b) = MemLink::pair(MemLinkConfig::default());
    let s = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .gateway(B)
        .build()
        .await
        .unwrap();
    assert!(s
        .routes()
        .iter()
        .any(|r| r.dst.prefix_len() == 0 && r.gateway == Some(B)));
}

#[tokio::test]
async fn builder_errors() {
    let err = Stack::builder()
        .addr("10.0.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let (a, _b) = MemLink::pair(MemLinkConfig::default());
    // A gateway outside every connected network cannot be resolved to a device.
    let err = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .gateway("172.16.0.1".parse().unwrap())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable
        ),
        "{err:?}"
    );
}
