use std::time::{Duration, Instant};

use super::cubic::{ALPHA, BETA, C};
use super::*;

/// Acks one full window per RTT, one segment per ACK, spread evenly over the RTT,
/// calling `probe(t_seconds, cwnd)` after each ACK. Returns the final time.
fn run(
    cc: &mut dyn CongestionOps,
    s: &mut CcState,
    start: Instant,
    rtt: Duration,
    until: Duration,
    mut probe: impl FnMut(f64, u32),
) {
    let mut now = start;
    while now.saturating_duration_since(start) < until {
        let w = s.cwnd.max(1);
        let gap = rtt / w;
        for _ in 0..w {
            now += gap;
            cc.on_rtt_sample(s, rtt, now);
            cc.cong_avoid(s, 1, now);
            probe(now.saturating_duration_since(start).as_secs_f64(), s.cwnd);
        }
    }
}

#[test]
fn slow_start_doubles_per_rtt() {
    for alg in [CcAlgorithm::Reno, CcAlgorithm::Cubic] {
        let mut cc = new_cc(alg);
        let mut s = CcState::new(1460, 10);
        cc.init(&mut s);
        let t0 = Instant::now();
        for round in 0..4 {
            let w = s.cwnd;
            assert_eq!(w, 10 << round, "{alg}");
            for i in 0..w {
                cc.cong_avoid(
                    &mut s,
                    1,
                    t0 + Duration::from_millis(u64::from(round * 100 + i)),
                );
            }
        }
        assert_eq!(s.cwnd, 160);
    }
}

#[test]
fn slow_start_stops_at_ssthresh_and_carries_over() {
    let mut s = CcState::new(1460, 10);
    s.ssthresh = 12;
    let left = s.slow_start(5);
    assert_eq!(s.cwnd, 12);
    assert_eq!(left, 3);
    assert!(!s.in_slow_start());
}

#[test]
fn reno_additive_increase() {
    let mut cc = new_cc(CcAlgorithm::Reno);
    let mut s = CcState::new(1460, 10);
    s.ssthresh = 10;
    let t0 = Instant::now();
    // One segment per cwnd ACKed segments (RFC 5681 3.1).
    for expect in 11..15 {
        let w = s.cwnd;
        for _ in 0..w {
            cc.cong_avoid(&mut s, 1, t0);
        }
        assert_eq!(s.cwnd, expect);
    }
    // A stretch ACK of two windows adds two segments.
    let w = s.cwnd;
    cc.cong_avoid(&mut s, 2 * w + 1, t0);
    assert_eq!(s.cwnd, w + 2);
}

#[test]
fn reno_ssthresh_and_undo() {
    let mut cc = Reno::new();
    let mut s = CcState::new(1460, 20);
    assert_eq!(cc.ssthresh(&s), 10);
    s.in_flight = 8;
    assert_eq!(cc.ssthresh(&s), 4);
    s.in_flight = 1;
    assert_eq!(cc.ssthresh(&s), 2);
    s.in_flight = 0;
    s.cwnd = 30;
    let ss = cc.ssthresh(&s);
    assert_eq!(ss, 15);
    s.cwnd = ss;
    s.ssthresh = ss;
    assert_eq!(cc.undo_cwnd(&s), 30);
}

#[test]
fn app_limited_does_not_grow() {
    for alg in [CcAlgorithm::Reno, CcAlgorithm::Cubic] {
        let mut cc = new_cc(alg);
        let mut s = CcState::new(1460, 10);
        s.app_limited = true;
        cc.cong_avoid(&mut s, 10, Instant::now());
        assert_eq!(s.cwnd, 10);
    }
}

/// Puts CUBIC in congestion avoidance right after a loss at `w_max` segments.
fn cubic_after_loss(w_max: u32) -> (Cubic, CcState) {
    let mut cc = Cubic::new();
    let mut s = CcState::new(1460, 10);
    cc.init(&mut s);
    s.cwnd = w_max;
    let ss = cc.ssthresh(&s);
    assert_eq!(ss, (f64::from(w_max) * BETA) as u32);
    s.cwnd = ss;
    s.ssthresh = ss;
    (cc, s)
}

#[test]
fn cubic_follows_rfc9438_curve() {
    let (mut cc, mut s) = cubic_after_loss(1000);
    let rtt = Duration::from_millis(100);
    let w_max = 1000.0;
    let k = (w_max * (1.0 - BETA) / C).cbrt();
    let w = |t: f64| C * (t - k).powi(3) + w_max;
    let checkpoints = [1.0, 3.0, 6.0, k, 11.0, 13.0, 15.0];
    let mut seen = Vec::new();
    let mut next = 0;
    run(
        &mut cc,
        &mut s,
        Instant::now(),
        rtt,
        Duration::from_secs(15),
        |t, cwnd| {
            if next < checkpoints.len() && t >= checkpoints[next] {
                seen.push((checkpoints[next], cwnd));
                next += 1;
            }
        },
    );
    assert!((cc.k() - k).abs() < 1e-9, "K {} vs {}", cc.k(), k);
    assert_eq!(cc.w_max(), w_max);
    assert_eq!(seen.len(), checkpoints.len());
    for (t, cwnd) in seen {
        let want = w(t);
        let got = f64::from(cwnd);
        assert!(
            (got - want).abs() <= 2.0,
            "t={t:.3}: cwnd {got} vs W_cubic {want:.1}"
        );
    }
}

#[test]
fn cubic_concave_then_convex() {
    let (mut cc, mut s) = cubic_after_loss(500);
    let k = (500.0 * (1.0 - BETA) / C).cbrt();
    let mut samples = Vec::new();
    run(
        &mut cc,
        &mut s,
        Instant::now(),
        Duration::from_millis(50),
        Duration::from_secs_f64(2.0 * k),
        |t, cwnd| samples.push((t, cwnd)),
    );
    let at = |x: f64| {
        samples
            .iter()
            .find(|&&(t, _)| t >= x)
            .map(|&(_, c)| f64::from(c))
            .unwrap_or(0.0)
    };
    // Concave: growth over the first quarter of K exceeds growth over the one before K.
    let early = at(0.25 * k) - at(0.0);
    let late = at(k) - at(0.75 * k);
    assert!(early > late, "early {early} late {late}");
    // Plateau near W_max at K, then convex: growth accelerates past K.
    assert!((at(k) - 500.0).abs() <= 6.0, "at K: {}", at(k));
    let after1 = at(1.5 * k) - at(1.25 * k);
    let after2 = at(2.0 * k - 0.05) - at(1.75 * k);
    assert!(after2 > after1, "convex: {after1} then {after2}");
}

#[test]
fn cubic_reno_friendly_region() {
    // Short RTT: Reno's per-RTT growth beats the cubic curve in real time.
    let (mut cc, mut s) = cubic_after_loss(100);
    let rtt = Duration::from_millis(1);
    let mut last = (0.0, 0);
    run(
        &mut cc,
        &mut s,
        Instant::now(),
        rtt,
        Duration::from_millis(200),
        |t, cwnd| last = (t, cwnd),
    );
    let (t, cwnd) = last;
    let k = (100.0 * (1.0 - BETA) / C).cbrt();
    let w_cubic = C * (t - k).powi(3) + 100.0;
    assert!(
        f64::from(cwnd) > w_cubic + 10.0,
        "cwnd {cwnd} vs W_cubic {w_cubic}"
    );
    assert_eq!(f64::from(cwnd), cc.w_est().floor());
    // About alpha per RTT until W_est reaches cwnd_prior, then 1 per RTT.
    assert!(cwnd > 70 + (ALPHA * 40.0) as u32);
}

#[test]
fn cubic_fast_convergence() {
    let mut cc = Cubic::new();
    let mut s = CcState::new(1460, 100);
    assert_eq!(cc.ssthresh(&s), 70);
    assert_eq!(cc.w_max(), 100.0);
    // The next loss comes below the previous W_max: W_max = cwnd (1 + beta) / 2.
    s.cwnd = 80;
    cc.set_state(&mut s, CaState::Open);
    assert_eq!(cc.ssthresh(&s), 56);
    assert!((cc.w_max() - 80.0 * 1.7 / 2.0).abs() < 1e-9);
    // Without fast convergence W_max = cwnd.
    let mut cc = Cubic::new();
    cc.set_fast_convergence(false);
    s.cwnd = 100;
    cc.ssthresh(&s);
    s.cwnd = 80;
    cc.ssthresh(&s);
    assert_eq!(cc.w_max(), 80.0);
}

#[test]
fn cubic_undo_restores_state() {
    let (mut cc, mut s) = cubic_after_loss(200);
    let t0 = Instant::now();
    run(
        &mut cc,
        &mut s,
        t0,
        Duration::from_millis(100),
        Duration::from_secs(2),
        |_, _| {},
    );
    let (w_max, k, cwnd) = (cc.w_max(), cc.k(), s.cwnd);
    // The engine's order (Linux `tcp_enter_recovery`): ssthresh, then the state change.
    let ss = cc.ssthresh(&s);
    cc.set_state(&mut s, CaState::Recovery);
    s.cwnd = ss;
    s.ssthresh = ss;
    assert!(cc.w_max() < w_max + f64::from(cwnd));
    assert_eq!(cc.undo_cwnd(&s), cwnd);
    assert_eq!(cc.w_max(), w_max);
    assert_eq!(cc.k(), k);
}

#[test]
fn cubic_after_rto_starts_flat() {
    let (mut cc, mut s) = cubic_after_loss(300);
    cc.set_state(&mut s, CaState::Loss);
    s.cwnd = 1;
    s.ssthresh = 210;
    // Slow start back up to ssthresh, then the first CA epoch has K = 0, W_max = cwnd.
    let t0 = Instant::now();
    run(
        &mut cc,
        &mut s,
        t0,
        Duration::from_millis(10),
        Duration::from_millis(200),
        |_, _| {},
    );
    assert!(s.cwnd >= 210);
    assert_eq!(cc.k(), 0.0);
    assert_eq!(cc.w_max(), 210.0);
}

#[test]
fn algorithm_names() {
    assert_eq!("reno".parse::<CcAlgorithm>(), Ok(CcAlgorithm::Reno));
    assert_eq!("CUBIC".parse::<CcAlgorithm>(), Ok(CcAlgorithm::Cubic));
    assert!("bbr".parse::<CcAlgorithm>().is_err());
    assert_eq!(CcAlgorithm::Cubic.to_string(), "cubic");
    assert_eq!(CcAlgorithm::default(), CcAlgorithm::Cubic);
    assert_eq!(new_cc(CcAlgorithm::Reno).name(), "reno");
    assert_eq!(new_cc(CcAlgorithm::Cubic).name(), "cubic");
    assert_eq!(new_cc(CcAlgorithm::Cubic).algorithm(), CcAlgorithm::Cubic);
}
