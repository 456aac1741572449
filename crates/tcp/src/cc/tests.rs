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

/// A slow start acked one segment per ACK, `acks` ACKs long; the ACK of segment `i`
/// carries RTT `rtt(i)` and the sender keeps cwnd segments in flight (it sends after
/// each ACK); sequence numbers count segments. The ACKs of one round (one flight) arrive
/// `spacing` apart, the first of each round one RTT after the first of the round before
/// (`spacing` zero: a path without a bottleneck, whose flights come back as one burst).
/// Returns (cwnd, phase) after each ACK.
fn hystart_run(
    cc: &mut Cubic,
    s: &mut CcState,
    acks: usize,
    rtt: impl Fn(usize) -> Duration,
) -> Vec<(u32, super::hystart::Phase)> {
    hystart_run_spaced(cc, s, acks, Duration::ZERO, rtt)
}

fn hystart_run_spaced(
    cc: &mut Cubic,
    s: &mut CcState,
    acks: usize,
    spacing: Duration,
    rtt: impl Fn(usize) -> Duration,
) -> Vec<(u32, super::hystart::Phase)> {
    let mut now = Instant::now();
    let mut round_at = now;
    let mut out = Vec::new();
    s.snd_nxt = s.snd_una.wrapping_add(s.cwnd);
    let mut round_end = s.snd_nxt;
    for i in 0..acks {
        s.snd_una = s.snd_una.wrapping_add(1);
        if (s.snd_una.wrapping_sub(round_end) as i32) > 0 || i == 0 {
            round_end = s.snd_nxt;
            round_at = (round_at + rtt(i)).max(now);
            now = round_at;
        } else {
            now += spacing;
        }
        cc.on_rtt_sample(s, rtt(i), now);
        cc.cong_avoid(s, 1, now);
        s.snd_nxt = s.snd_una.wrapping_add(s.cwnd);
        let phase = cc.hystart_phase().unwrap_or(super::hystart::Phase::Done);
        out.push((s.cwnd, phase));
    }
    out
}

/// RFC 9406: once the RTT of a round's first samples is 20 ms above the last round's
/// (threshold clamp(20 ms / 8, 4, 16) = 4 ms), slow start ends; Conservative Slow Start
/// then grows cwnd by a quarter per ACKed segment for five rounds (about 1.25^5 = 3.05
/// times), after which ssthresh = cwnd: congestion avoidance without any loss.
#[test]
fn hystart_leaves_slow_start_when_the_rtt_rises() {
    use super::hystart::Phase;
    let mut cc = Cubic::new();
    let mut s = CcState::new(1448, 10);
    s.snd_una = u32::MAX - 100; // rounds work across the wrap of sequence space
    let base = Duration::from_millis(20);
    let trace = hystart_run(&mut cc, &mut s, 3000, |i| {
        if i < 150 {
            base
        } else {
            base + Duration::from_millis(20)
        }
    });
    // Slow start while the RTT is flat: one more segment per ACK.
    assert_eq!(trace[149].0, 160);
    let css = trace
        .iter()
        .position(|(_, p)| matches!(p, Phase::Css { .. }))
        .expect("CSS entered");
    let done = trace
        .iter()
        .position(|(_, p)| *p == Phase::Done)
        .expect("HyStart++ finished");
    assert!(css > 150 && done > css);
    assert!(trace[css..done]
        .iter()
        .all(|(_, p)| matches!(p, Phase::Css { .. })));
    let growth = f64::from(trace[done].0) / f64::from(trace[css].0);
    assert!((2.6..=3.5).contains(&growth), "CSS grew cwnd x{growth:.2}");
    assert!(!s.in_slow_start());
    assert_eq!(s.ssthresh, trace[done].0);
    // Then CUBIC's congestion avoidance: far slower than slow start would have gone.
    assert!(s.cwnd < trace[done].0 + 100, "cwnd {} at the end", s.cwnd);
}

/// A rise that does not last (the next round's RTT is back at the baseline of the
/// earlier rounds) returns to slow start; a constant RTT never leaves it; with HyStart++
/// off a rising RTT does not either.
#[test]
fn hystart_resumes_slow_start_after_a_passing_rise_and_can_be_off() {
    use super::hystart::Phase;
    let base = Duration::from_millis(20);
    let mut cc = Cubic::new();
    let mut s = CcState::new(1448, 10);
    let trace = hystart_run(&mut cc, &mut s, 1200, |i| {
        if (150..400).contains(&i) {
            base + Duration::from_millis(10)
        } else {
            base
        }
    });
    let css = trace
        .iter()
        .position(|(_, p)| matches!(p, Phase::Css { .. }))
        .expect("CSS entered");
    let back = css
        + trace[css..]
            .iter()
            .position(|(_, p)| *p == Phase::SlowStart)
            .expect("slow start resumed");
    assert!(back >= 400, "resumed at ACK {back}, before the RTT fell");
    assert!(s.in_slow_start());
    assert_eq!(trace.last().unwrap().1, Phase::SlowStart);
    assert_eq!(
        trace.last().unwrap().0 - trace[back].0,
        (trace.len() - 1 - back) as u32,
        "one more segment per ACK after resuming"
    );

    let mut cc = Cubic::new();
    let mut s = CcState::new(1448, 10);
    hystart_run(&mut cc, &mut s, 3000, |_| base);
    assert_eq!(cc.hystart_phase().unwrap(), Phase::SlowStart);
    assert_eq!(s.cwnd, 3010);

    let mut cc = Cubic::new();
    cc.set_hystart(false);
    let mut s = CcState::new(1448, 10);
    hystart_run(&mut cc, &mut s, 3000, |i| base * (i as u32 / 100 + 1));
    assert!(cc.hystart_phase().is_none());
    assert_eq!(s.cwnd, 3010);
    assert!(s.in_slow_start());
}

/// The ACK-train test (Linux CUBIC's): ACKs 100 us apart (a bottleneck of about 120
/// Mbit/s for 1,448-byte segments) over a flat 20 ms RTT. Once a round's ACKs keep coming
/// for more than half the minimum RTT (10 ms: a flight of about 100 segments), the pipe is
/// about full, and slow start ends at once (ssthresh = cwnd, no Conservative Slow Start),
/// although the RTT has not risen. A paced sender's flight is spread over half an RTT by
/// pacing itself, so its train must last a whole minimum RTT. ACKs more than
/// [`ACK_DELTA`](super::hystart::ACK_DELTA) apart never make a train.
#[test]
fn hystart_ack_train_ends_slow_start_when_the_pipe_is_full() {
    use super::hystart::Phase;
    let rtt = |_| Duration::from_millis(20);
    let spacing = Duration::from_micros(100);
    let exit_cwnd = |paced: bool| {
        let mut cc = Cubic::new();
        let mut s = CcState::new(1448, 10);
        s.paced = paced;
        let trace = hystart_run_spaced(&mut cc, &mut s, 2000, spacing, rtt);
        let done = trace
            .iter()
            .position(|(_, p)| *p == Phase::Done)
            .expect("slow start ended");
        assert!(
            trace[..done].iter().all(|(_, p)| *p == Phase::SlowStart),
            "no CSS"
        );
        assert_eq!(s.ssthresh, trace[done].0);
        assert!(!s.in_slow_start());
        trace[done].0
    };
    let unpaced = exit_cwnd(false);
    let paced = exit_cwnd(true);
    // The flight must exceed 100 segments (200 paced), and cwnd has grown by the ACKs of
    // the train when it ends: between one and two flights.
    assert!(
        (100..=400).contains(&unpaced),
        "unpaced exit at cwnd {unpaced}"
    );
    assert!((200..=800).contains(&paced), "paced exit at cwnd {paced}");
    assert!(paced > unpaced);

    let mut cc = Cubic::new();
    let mut s = CcState::new(1448, 10);
    let gaps = super::hystart::ACK_DELTA + Duration::from_micros(500);
    let trace = hystart_run_spaced(&mut cc, &mut s, 1000, gaps, rtt);
    assert_eq!(trace.last().unwrap().1, Phase::SlowStart);
    assert!(s.in_slow_start());
}

/// A congestion event ends HyStart++: the slow start after it is the standard one.
#[test]
fn hystart_is_only_for_the_initial_slow_start() {
    use super::hystart::Phase;
    let mut cc = Cubic::new();
    let mut s = CcState::new(1448, 10);
    hystart_run(&mut cc, &mut s, 30, |_| Duration::from_millis(20));
    s.ssthresh = cc.ssthresh(&s);
    cc.set_state(&mut s, CaState::Loss);
    assert_eq!(cc.hystart_phase().unwrap(), Phase::Done);
    s.cwnd = 1;
    let trace = hystart_run(&mut cc, &mut s, 7, |i| {
        Duration::from_millis(20 * (i as u64 + 1))
    });
    assert_eq!(trace.last().unwrap().0, 8);
}
