use super::*;
use crate::loopback::Loopback;
use crate::mem::{MemDevice, MemLink, MemLinkConfig};
use crate::testutil::{counting_waker, pkt, TsoDevice};
use std::future::poll_fn;

/// A packet tagged with a 16-bit index in bytes 1..3.
fn tagged(i: u16, len: usize) -> PacketBuf {
    let mut p = pkt(len.max(3), 0);
    p.data_mut()[1..3].copy_from_slice(&i.to_be_bytes());
    p
}

fn tag(p: &PacketBuf) -> u16 {
    u16::from_be_bytes([p.data()[1], p.data()[2]])
}

fn big_link() -> (MemDevice, MemDevice) {
    MemLink::pair(MemLinkConfig {
        queue_len: 100_000,
        ..Default::default()
    })
}

/// Everything waiting on `dev` right now (no timers involved).
fn drain<D: NetDevice>(dev: &mut D) -> Vec<PacketBuf> {
    let (w, _) = counting_waker();
    let mut cx = Context::from_waker(&w);
    let mut out = Vec::new();
    while let Poll::Ready(Ok(_)) = dev.poll_recv(&mut cx, &mut out, 64) {}
    out
}

/// Sends 10_000 packets through `a` with `cfg` and returns the tags `b` received.
fn run_lossy(cfg: FaultConfig) -> (Vec<u16>, FaultStats) {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(a, cfg);
    for chunk in 0..100u16 {
        let mut batch: Vec<_> = (0..100).map(|i| tagged(chunk * 100 + i, 40)).collect();
        a.transmit(&mut batch);
    }
    let tags = drain(&mut b).iter().map(tag).collect();
    (tags, a.fault_stats())
}

#[test]
fn prng_is_deterministic_and_spread() {
    let mut a = SplitMix64::new(1);
    let mut b = SplitMix64::new(1);
    let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    let mut r = SplitMix64::new(7);
    let mean = (0..10_000).map(|_| r.next_f64()).sum::<f64>() / 10_000.0;
    assert!((0.45..0.55).contains(&mean), "mean {mean}");
    assert!((0..1000).all(|_| r.below(10) < 10));
    assert_eq!(prob(f64::NAN), 0.0);
    assert_eq!(prob(2.0), 1.0);
    assert_eq!(prob(-1.0), 0.0);
}

#[test]
fn loss_half_is_about_half_and_repeatable() {
    let cfg = FaultConfig {
        loss: 0.5,
        seed: 1234,
        ..Default::default()
    };
    let (got, stats) = run_lossy(cfg.clone());
    assert!((4700..=5300).contains(&got.len()), "received {}", got.len());
    assert_eq!(stats.dropped as usize, 10_000 - got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]), "loss must not reorder");
    let (again, stats2) = run_lossy(cfg.clone());
    assert_eq!(got, again);
    assert_eq!(stats, stats2);
    let (other, _) = run_lossy(FaultConfig { seed: 99, ..cfg });
    assert_ne!(got, other);
}

#[test]
fn no_faults_is_transparent() {
    let (got, stats) = run_lossy(FaultConfig::default());
    assert_eq!(got, (0..10_000).collect::<Vec<u16>>());
    assert_eq!(stats, FaultStats::default());
}

#[test]
fn full_loss_drops_everything() {
    let (got, stats) = run_lossy(FaultConfig {
        loss: 1.0,
        ..Default::default()
    });
    assert!(got.is_empty());
    assert_eq!(stats.dropped, 10_000);
}

#[test]
fn duplicate_sends_twice() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            duplicate: 1.0,
            ..Default::default()
        },
    );
    a.transmit(&mut vec![tagged(1, 20), tagged(2, 20)]);
    let got: Vec<u16> = drain(&mut b).iter().map(tag).collect();
    assert_eq!(got, vec![1, 1, 2, 2]);
    assert_eq!(a.fault_stats().duplicated, 2);
}

#[test]
fn reorder_swaps_with_next() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            reorder: 1.0,
            ..Default::default()
        },
    );
    a.transmit(&mut (1..=4).map(|i| tagged(i, 20)).collect());
    let got: Vec<u16> = drain(&mut b).iter().map(tag).collect();
    assert_eq!(got, vec![2, 1, 4, 3]);
    assert_eq!(a.fault_stats().reordered, 2);
}

/// With `reorder_delay`, a packet picked for reordering is held that much longer than the
/// others: everything sent within that time overtakes it, nothing later does.
#[tokio::test(start_paused = true)]
async fn reorder_delay_holds_a_packet_back_by_its_time() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            reorder: 1.0,
            reorder_delay: Duration::from_millis(5),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    a.transmit(&mut vec![tagged(1, 20)]);
    // Everything sent from now on leaves at once (reorder picks only the first: the
    // configuration changes before the next packets).
    a.set_config(FaultConfig::default());
    tokio::time::advance(Duration::from_millis(2)).await;
    a.transmit(&mut vec![tagged(2, 20), tagged(3, 20)]);
    let got = pump(&mut a, &mut b, 3).await;
    let tags: Vec<u16> = got.iter().map(tag).collect();
    assert_eq!(tags, vec![2, 3, 1]);
    assert_eq!(t0.elapsed(), Duration::from_millis(5));
    assert_eq!(a.fault_stats().reordered, 1);
}

#[tokio::test(start_paused = true)]
async fn reorder_releases_a_lonely_packet_after_hold() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            reorder: 1.0,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    a.transmit(&mut vec![tagged(7, 20)]);
    let got = pump(&mut a, &mut b, 1).await;
    assert_eq!(tag(&got[0]), 7);
    assert_eq!(t0.elapsed(), REORDER_HOLD);
    assert_eq!(a.fault_stats().reordered, 0);
}

#[test]
fn corrupt_changes_one_byte() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            corrupt: 1.0,
            seed: 5,
            ..Default::default()
        },
    );
    let original = pkt(100, 0xaa);
    a.transmit(&mut vec![original.clone(); 50]);
    let got = drain(&mut b);
    assert_eq!(got.len(), 50);
    for p in &got {
        let diff = p
            .data()
            .iter()
            .zip(original.data())
            .filter(|(x, y)| x != y)
            .count();
        assert_eq!(diff, 1);
    }
    assert_eq!(a.fault_stats().corrupted, 50);
    // Empty packets cannot be corrupted and do not panic.
    a.transmit(&mut vec![PacketBuf::default()]);
}

/// Drives `a` (to release its delayed packets) until `b` has received `want` packets.
async fn pump<A: NetDevice, B: NetDevice>(a: &mut A, b: &mut B, want: usize) -> Vec<PacketBuf> {
    let mut got = Vec::new();
    let mut none = Vec::new();
    while got.len() < want {
        poll_fn(|cx| {
            let _ = a.poll_recv(cx, &mut none, 64);
            b.poll_recv(cx, &mut got, 64)
        })
        .await
        .unwrap();
    }
    got
}

#[tokio::test(start_paused = true)]
async fn tx_delay_holds_packets() {
    let (a, mut b) = big_link();
    let delay = Duration::from_millis(50);
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            delay,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    a.transmit(&mut vec![tagged(1, 20), tagged(2, 20)]);
    assert!(drain(&mut b).is_empty());
    tokio::time::advance(Duration::from_millis(20)).await;
    a.transmit(&mut vec![tagged(3, 20)]);
    let got = pump(&mut a, &mut b, 2).await;
    assert_eq!(t0.elapsed(), delay);
    assert_eq!(got.iter().map(tag).collect::<Vec<_>>(), vec![1, 2]);
    let got = pump(&mut a, &mut b, 1).await;
    assert_eq!(t0.elapsed(), delay + Duration::from_millis(20));
    assert_eq!(tag(&got[0]), 3);
    assert_eq!(a.fault_stats().delayed, 3);
}

#[tokio::test(start_paused = true)]
async fn rx_delay_holds_packets() {
    let (mut a, b) = big_link();
    let delay = Duration::from_millis(30);
    let mut b = FaultInjector::new(
        b,
        FaultConfig {
            delay,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    a.transmit(&mut vec![tagged(9, 20)]);
    let got = pump(&mut a, &mut b, 1).await;
    assert_eq!(t0.elapsed(), delay);
    assert_eq!(tag(&got[0]), 9);
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_in_bounds_and_is_repeatable() {
    async fn run(seed: u64) -> (Vec<u16>, Vec<Duration>) {
        let (a, mut b) = big_link();
        let mut a = FaultInjector::new(
            a,
            FaultConfig {
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(10),
                seed,
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        a.transmit(&mut (0..50).map(|i| tagged(i, 20)).collect());
        let mut tags = Vec::new();
        let mut times = Vec::new();
        while tags.len() < 50 {
            for p in pump(&mut a, &mut b, 1).await {
                tags.push(tag(&p));
                times.push(t0.elapsed());
            }
        }
        (tags, times)
    }
    let (tags, times) = run(3).await;
    assert!(times
        .iter()
        .all(|t| (Duration::from_millis(10)..=Duration::from_millis(30)).contains(t)));
    assert_ne!(tags, (0..50).collect::<Vec<u16>>(), "jitter reorders");
    assert_eq!(run(3).await, (tags, times));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_shapes() {
    let (a, mut b) = big_link();
    // 100 kB/s: the 1500-byte burst passes, then one 1000-byte packet every 10 ms.
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            rate_bps: Some(800_000),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    a.transmit(&mut (0..10).map(|i| tagged(i, 1000)).collect());
    let got = pump(&mut a, &mut b, 10).await;
    assert_eq!(
        got.iter().map(tag).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(85));
    assert_eq!(a.fault_stats().delayed, 9);
}

#[test]
fn zero_rate_and_full_queue_drop() {
    let (a, mut b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            rate_bps: Some(0),
            ..Default::default()
        },
    );
    a.transmit(&mut vec![tagged(1, 20)]);
    assert_eq!(a.fault_stats().dropped, 1);
    assert!(drain(&mut b).is_empty());

    let (a, _b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            delay: Duration::from_secs(1),
            ..Default::default()
        },
    );
    a.transmit(
        &mut (0..FAULT_QUEUE_LIMIT as u16 + 10)
            .map(|i| tagged(i, 20))
            .collect(),
    );
    assert_eq!(a.fault_stats().dropped, 10);
    assert_eq!(a.fault_stats().delayed, FAULT_QUEUE_LIMIT as u64);
}

#[tokio::test(start_paused = true)]
async fn rx_loss_and_set_config_heals() {
    let (mut a, b) = big_link();
    let mut b = FaultInjector::new(
        b,
        FaultConfig {
            loss: 1.0,
            ..Default::default()
        },
    );
    a.transmit(&mut (0..100).map(|i| tagged(i, 20)).collect());
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.fault_stats().dropped, 100);
    let handle = b.handle();
    let mut boxed: Box<dyn NetDevice> = Box::new(b);
    handle.set_config(FaultConfig::default());
    a.transmit(&mut vec![tagged(500, 20)]);
    let got = drain(&mut boxed);
    assert_eq!(got.len(), 1);
    assert_eq!(tag(&got[0]), 500);
    assert_eq!(handle.fault_stats().dropped, 100);
    assert_eq!(boxed.stats().rx_packets, 101);
}

#[test]
fn set_config_directly() {
    let (mut a, b) = big_link();
    let mut b = FaultInjector::new(
        b,
        FaultConfig {
            loss: 1.0,
            ..Default::default()
        },
    );
    a.transmit(&mut vec![tagged(1, 20)]);
    assert!(drain(&mut b).is_empty());
    b.set_config(FaultConfig::default());
    assert_eq!(b.config().loss, 0.0);
    a.transmit(&mut vec![tagged(500, 20)]);
    let got = drain(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(tag(&got[0]), 500);
    assert_eq!(b.stats().rx_packets, 2);
}

#[tokio::test(start_paused = true)]
async fn transmit_wakes_driver_to_arm_timer() {
    let (a, _b) = big_link();
    let mut a = FaultInjector::new(
        a,
        FaultConfig {
            delay: Duration::from_millis(5),
            ..Default::default()
        },
    );
    let (w, count) = counting_waker();
    let mut cx = Context::from_waker(&w);
    assert!(a.poll_recv(&mut cx, &mut Vec::new(), 8).is_pending());
    a.transmit(&mut vec![tagged(1, 20)]);
    assert_eq!(count.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn extreme_configs_do_not_panic() {
    let configs = [
        FaultConfig {
            loss: f64::NAN,
            duplicate: f64::INFINITY,
            reorder: -3.0,
            corrupt: 7.0,
            delay: Duration::MAX,
            jitter: Duration::MAX,
            rate_bps: Some(1),
            seed: u64::MAX,
            reorder_delay: Duration::MAX,
        },
        FaultConfig {
            reorder: 1.0,
            reorder_delay: Duration::MAX,
            delay: Duration::MAX,
            ..Default::default()
        },
        FaultConfig {
            jitter: Duration::from_nanos(1),
            rate_bps: Some(u64::MAX),
            ..Default::default()
        },
    ];
    for cfg in configs {
        let (a, mut b) = big_link();
        let mut a = FaultInjector::new(a, cfg);
        a.transmit(&mut (0..100).map(|i| tagged(i, 1500)).collect());
        a.transmit(&mut vec![PacketBuf::default()]);
        let (w, _) = counting_waker();
        let mut cx = Context::from_waker(&w);
        for _ in 0..3 {
            let _ = a.poll_recv(&mut cx, &mut Vec::new(), 0);
            let _ = b.poll_recv(&mut cx, &mut Vec::new(), 64);
        }
    }
}

/// Faults act per wire packet: the wrapper hides the inner device's transmit offload, so
/// the stack sends it MTU-sized segments rather than super-segments.
#[test]
fn faults_hide_the_devices_transmit_offload() {
    let inner = TsoDevice(Loopback::new(1500));
    assert_eq!(inner.tso_max(), 65535);
    let dev = FaultInjector::new(inner, FaultConfig::default());
    assert_eq!(dev.tso_max(), 0);
}
