//! Small helpers shared by every benchmark: result lines, percentiles, rates.

use serde_json::{json, Value};

/// Prints one result as a single line `RESULT {json}` on stdout. `scripts/bench.sh` collects
/// these lines; `ustack-bench report` turns them into the table, JSON and charts.
///
/// `name` identifies the figure (e.g. `mem_bulk_1500`), `stack` who produced it
/// (`ustack`, `smoltcp`, `kernel_veth`, ...), `fields` the measured values.
pub fn emit(name: &str, stack: &str, fields: Value) {
    let mut v = json!({ "name": name, "stack": stack });
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    println!("RESULT {v}");
}

/// Nearest-rank percentile (0..=100) of a sorted slice of nanoseconds, in microseconds.
pub fn pct_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e3
}

/// Latency summary of round-trip samples in nanoseconds.
pub fn latency_fields(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    let mean = if ns.is_empty() {
        0.0
    } else {
        ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3
    };
    json!({
        "samples": ns.len(),
        "p50_us": round3(pct_us(&ns, 50.0)),
        "p90_us": round3(pct_us(&ns, 90.0)),
        "p99_us": round3(pct_us(&ns, 99.0)),
        "p999_us": round3(pct_us(&ns, 99.9)),
        "mean_us": round3(mean),
    })
}

/// Bits per second in Gbit/s.
pub fn gbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    round3(bytes as f64 * 8.0 / secs / 1e9)
}

/// Rounds to three decimals (keeps the JSON readable).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A current-thread tokio runtime (the single-threaded setting every in-memory run uses).
pub fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A current-thread runtime for `threads` <= 1, else tokio's multi-thread runtime with
/// that many workers.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads <= 1 {
        return current_thread_rt();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
