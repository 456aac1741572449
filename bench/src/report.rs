//! `report`: reads the `RESULT` lines one run of `scripts/bench.sh` collected, pairs every
//! ustack figure with the baseline measured in the same run, prints the table (ustack,
//! baseline, ratio, target, met), writes the raw results and the comparisons as JSON, and
//! draws the SVG charts (ratio bars, loss cwnd/RTT over time, scale).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

/// How a figure compares with its target.
#[derive(Clone, Copy)]
enum Target {
    /// ratio must be at least this.
    AtLeast(f64),
    /// ratio must be at most this.
    AtMost(f64),
    /// informational.
    None,
}

/// Where a value comes from.
#[derive(Clone)]
enum Src {
    /// (result name, stack, field)
    Fig(String, &'static str, &'static str),
    /// A fixed number (a target stated as an absolute figure).
    Const(f64),
}

struct Cmp {
    label: String,
    unit: &'static str,
    ustack: Src,
    base: Src,
    base_label: String,
    target: Target,
}

fn fig(name: &str, stack: &'static str, field: &'static str) -> Src {
    Src::Fig(name.to_string(), stack, field)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

struct Results {
    recs: Vec<Value>,
}

impl Results {
    fn value(&self, s: &Src) -> Option<f64> {
        match s {
            Src::Const(v) => Some(*v),
            // The TUN read ceiling is run at several offered rates: the best one is the ceiling.
            Src::Fig(name, stack, field) if name == "tun_read_ceiling" => self
                .recs
                .iter()
                .filter(|r| r["name"] == name.as_str() && r["stack"] == *stack)
                .filter_map(|r| r[*field].as_f64())
                .reduce(f64::max),
            Src::Fig(name, stack, field) => median(
                self.recs
                    .iter()
                    .filter(|r| r["name"] == name.as_str() && r["stack"] == *stack)
                    .filter_map(|r| r[*field].as_f64())
                    .collect(),
            ),
        }
    }
    fn get(&self, name: &str, stack: &str, field: &str) -> Option<f64> {
        self.recs
            .iter()
            .filter(|r| r["name"] == name && r["stack"] == stack)
            .filter_map(|r| r[field].as_f64())
            .next_back()
    }
    fn scale_counts(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .recs
            .iter()
            .filter_map(|r| r["name"].as_str()?.strip_prefix("scale_")?.parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn comparisons(r: &Results) -> Vec<Cmp> {
    use Target::*;
    let mut v = vec![
        Cmp {
            label: "In-memory bulk, MTU 1500, in place (both stacks' closure APIs)".into(),
            unit: "Gbit/s",
            ustack: fig("mem_bulk_1500", "ustack_in_place", "gbit_s"),
            base: fig("mem_bulk_1500", "smoltcp", "gbit_s"),
            base_label: "smoltcp".into(),
            target: AtLeast(1.5),
        },
        Cmp {
            label: "In-memory bulk, MTU 1500, AsyncRead/AsyncWrite".into(),
            unit: "Gbit/s",
            ustack: fig("mem_bulk_1500", "ustack", "gbit_s"),
            base: fig("mem_bulk_1500", "smoltcp", "gbit_s"),
            base_label: "smoltcp".into(),
            target: None,
        },
        Cmp {
            label: "In-memory bulk, MTU 65535, in place".into(),
            unit: "Gbit/s",
            ustack: fig("mem_bulk_65535", "ustack_in_place", "gbit_s"),
            base: fig("mem_bulk_65535", "smoltcp", "gbit_s"),
            base_label: "smoltcp".into(),
            target: None,
        },
        Cmp {
            label: "In-memory bulk, MTU 65535, AsyncRead/AsyncWrite".into(),
            unit: "Gbit/s",
            ustack: fig("mem_bulk_65535", "ustack", "gbit_s"),
            base: fig("mem_bulk_65535", "smoltcp", "gbit_s"),
            base_label: "smoltcp".into(),
            target: None,
        },
        Cmp {
            label: "In-memory 1-byte ping-pong p50".into(),
            unit: "µs",
            ustack: fig("mem_pingpong", "ustack", "p50_us"),
            base: fig("mem_pingpong", "smoltcp", "p50_us"),
            base_label: "smoltcp".into(),
            target: AtMost(1.0),
        },
        Cmp {
            label: "In-memory 1-byte ping-pong p50, both ends in one task".into(),
            unit: "µs",
            ustack: fig("mem_pingpong", "ustack_one_task", "p50_us"),
            base: fig("mem_pingpong", "smoltcp", "p50_us"),
            base_label: "smoltcp".into(),
            target: None,
        },
        Cmp {
            label: "In-memory 1-byte ping-pong p99".into(),
            unit: "µs",
            ustack: fig("mem_pingpong", "ustack", "p99_us"),
            base: fig("mem_pingpong", "smoltcp", "p99_us"),
            base_label: "smoltcp".into(),
            target: None,
        },
        Cmp {
            label: "In-memory connection rate".into(),
            unit: "conn/s",
            ustack: fig("mem_connrate", "ustack", "conn_per_s"),
            base: fig("mem_connrate", "smoltcp", "conn_per_s"),
            base_label: "smoltcp".into(),
            target: AtLeast(3.0),
        },
        Cmp {
            label: "TUN bulk kernel→ustack vs raw TUN read".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack", "gbit_s"),
            base: fig("tun_read_ceiling", "tun_raw", "gbit_s"),
            base_label: "raw TUN read ceiling".into(),
            target: AtLeast(0.9),
        },
        // The same transfer with the sink discarding data in place (`read_with`), as the
        // ceiling's reader discards each packet: no copy into an application buffer.
        Cmp {
            label: "TUN bulk kernel→ustack, in-place sink, vs raw TUN read".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_in_place", "gbit_s"),
            base: fig("tun_read_ceiling", "tun_raw", "gbit_s"),
            base_label: "raw TUN read ceiling".into(),
            target: None,
        },
        Cmp {
            label: "TUN bulk kernel→ustack vs netstack-smoltcp".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack", "gbit_s"),
            base: fig("tun_bulk_in", "netstack", "gbit_s"),
            base_label: "netstack-smoltcp (TUN)".into(),
            target: AtLeast(1.5),
        },
        Cmp {
            label: "TUN bulk kernel→ustack vs kernel veth".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack", "gbit_s"),
            base: fig("tun_bulk_in", "kernel_veth", "gbit_s"),
            base_label: "kernel↔kernel veth".into(),
            target: None,
        },
        // Which side of the TUN bulk figure is the bottleneck: the share of one CPU the
        // ustack server and the kernel client each used while the client was writing.
        Cmp {
            label: "TUN bulk kernel→ustack, CPU used: ustack server vs kernel client".into(),
            unit: "CPUs",
            ustack: fig("tun_bulk_in", "ustack", "server_cpu"),
            base: fig("tun_bulk_in", "ustack", "client_cpu"),
            base_label: "kernel client (same runs)".into(),
            target: None,
        },
        // The same two servers with the kernel client on BBR, this guest's default: its
        // per-packet pacing makes the client the bottleneck of the ustack run.
        Cmp {
            label: "TUN bulk kernel→ustack vs netstack-smoltcp, client on BBR".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_client_bbr", "gbit_s"),
            base: fig("tun_bulk_in", "netstack_client_bbr", "gbit_s"),
            base_label: "netstack-smoltcp (TUN), client on BBR".into(),
            target: None,
        },
        Cmp {
            label:
                "TUN bulk kernel→ustack, client on BBR, CPU used: ustack server vs kernel client"
                    .into(),
            unit: "CPUs",
            ustack: fig("tun_bulk_in", "ustack_client_bbr", "server_cpu"),
            base: fig("tun_bulk_in", "ustack_client_bbr", "client_cpu"),
            base_label: "kernel client (same run)".into(),
            target: None,
        },
        Cmp {
            label: "TUN bulk kernel→ustack, vnet_hdr offload vs netstack-smoltcp".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_offload", "gbit_s"),
            base: fig("tun_bulk_in", "netstack", "gbit_s"),
            base_label: "netstack-smoltcp (TUN)".into(),
            target: AtLeast(1.5),
        },
        Cmp {
            label: "TUN bulk kernel→ustack, vnet_hdr offload vs raw TUN read".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_offload", "gbit_s"),
            base: fig("tun_read_ceiling", "tun_raw", "gbit_s"),
            base_label: "raw TUN read ceiling (per packet)".into(),
            target: None,
        },
        // The per-packet TUN read by a thread of its own (`TunOptions::rx_thread`): the
        // same MTU-sized packets, one read(2) each, overlapping with the stack's work.
        Cmp {
            label: "TUN bulk kernel→ustack, receiving thread vs netstack-smoltcp".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_rx_thread", "gbit_s"),
            base: fig("tun_bulk_in", "netstack", "gbit_s"),
            base_label: "netstack-smoltcp (TUN)".into(),
            target: AtLeast(1.5),
        },
        Cmp {
            label: "TUN bulk kernel→ustack, receiving thread vs raw TUN read".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_rx_thread", "gbit_s"),
            base: fig("tun_read_ceiling", "tun_raw", "gbit_s"),
            base_label: "raw TUN read ceiling".into(),
            target: AtLeast(0.9),
        },
        Cmp {
            label:
                "TUN bulk kernel→ustack, receiving thread, CPU used: ustack server vs kernel client"
                    .into(),
            unit: "CPUs",
            ustack: fig("tun_bulk_in", "ustack_rx_thread", "server_cpu"),
            base: fig("tun_bulk_in", "ustack_rx_thread", "client_cpu"),
            base_label: "kernel client (same runs)".into(),
            target: None,
        },
        Cmp {
            label: "TUN ping-pong p50 unpinned, receiving thread, vs without".into(),
            unit: "µs",
            ustack: fig("tun_pingpong", "ustack_rx_thread", "p50_us"),
            base: fig("tun_pingpong", "ustack", "p50_us"),
            base_label: "ustack, no receiving thread".into(),
            target: None,
        },
        Cmp {
            label: "TUN bulk ustack→kernel vs kernel veth".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_out", "ustack", "gbit_s"),
            base: fig("tun_bulk_out", "kernel_veth", "gbit_s"),
            base_label: "kernel↔kernel veth".into(),
            target: None,
        },
        Cmp {
            label: "TUN bulk ustack→kernel, vnet_hdr offload (TSO) vs kernel veth".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_out", "ustack_offload", "gbit_s"),
            base: fig("tun_bulk_out", "kernel_veth", "gbit_s"),
            base_label: "kernel↔kernel veth".into(),
            target: None,
        },
        Cmp {
            label: "TUN connections/s (conc 50) vs veth".into(),
            unit: "conn/s",
            ustack: fig("tun_connrate", "ustack", "conn_per_s"),
            base: fig("tun_connrate", "kernel_veth", "conn_per_s"),
            base_label: "kernel↔kernel veth".into(),
            target: AtLeast(1.0),
        },
        Cmp {
            label: "TUN connections/s (conc 50) vs netstack-smoltcp".into(),
            unit: "conn/s",
            ustack: fig("tun_connrate", "ustack", "conn_per_s"),
            base: fig("tun_connrate", "netstack", "conn_per_s"),
            base_label: "netstack-smoltcp (TUN)".into(),
            target: AtLeast(10.0),
        },
        Cmp {
            label: "TUN ping-pong p50, pinned".into(),
            unit: "µs",
            ustack: fig("tun_pingpong_pinned", "ustack", "p50_us"),
            base: fig("tun_pingpong_pinned", "kernel_veth", "p50_us"),
            base_label: "kernel↔kernel veth".into(),
            target: AtMost(1.2),
        },
        Cmp {
            label: "TUN bulk kernel→bench_server vs raw TUN read".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_bench_server", "gbit_s"),
            base: fig("tun_read_ceiling", "tun_raw", "gbit_s"),
            base_label: "raw TUN read ceiling".into(),
            target: AtLeast(0.9),
        },
        Cmp {
            label: "TUN connections/s, bench_server vs veth".into(),
            unit: "conn/s",
            ustack: fig("tun_connrate", "ustack_bench_server", "conn_per_s"),
            base: fig("tun_connrate", "kernel_veth", "conn_per_s"),
            base_label: "kernel↔kernel veth".into(),
            target: AtLeast(1.0),
        },
        Cmp {
            label: "TUN ping-pong p50 pinned, bench_server".into(),
            unit: "µs",
            ustack: fig("tun_pingpong_pinned", "ustack_bench_server", "p50_us"),
            base: fig("tun_pingpong_pinned", "kernel_veth", "p50_us"),
            base_label: "kernel↔kernel veth".into(),
            target: AtMost(1.2),
        },
        Cmp {
            label: "TUN bulk kernel→bench_server, 2 workers vs 1".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_bench_server_2w", "gbit_s"),
            base: fig("tun_bulk_in", "ustack_bench_server", "gbit_s"),
            base_label: "bench_server, current-thread".into(),
            target: None,
        },
        Cmp {
            label: "TUN connections/s, bench_server, 2 workers vs 1".into(),
            unit: "conn/s",
            ustack: fig("tun_connrate", "ustack_bench_server_2w", "conn_per_s"),
            base: fig("tun_connrate", "ustack_bench_server", "conn_per_s"),
            base_label: "bench_server, current-thread".into(),
            target: None,
        },
        Cmp {
            label: "TUN ping-pong p50 unpinned, bench_server, 2 workers vs 1".into(),
            unit: "µs",
            ustack: fig("tun_pingpong", "ustack_bench_server_2w", "p50_us"),
            base: fig("tun_pingpong", "ustack_bench_server", "p50_us"),
            base_label: "bench_server, current-thread".into(),
            target: None,
        },
        Cmp {
            label: "TUN bulk kernel→bench_server vs veth, both servers on 2 workers".into(),
            unit: "Gbit/s",
            ustack: fig("tun_bulk_in", "ustack_bench_server_2w", "gbit_s"),
            base: fig("tun_bulk_in", "kernel_veth_2w", "gbit_s"),
            base_label: "kernel↔kernel veth, 2 workers".into(),
            target: None,
        },
        Cmp {
            label: "TUN connections/s, bench_server vs veth, both on 2 workers".into(),
            unit: "conn/s",
            ustack: fig("tun_connrate", "ustack_bench_server_2w", "conn_per_s"),
            base: fig("tun_connrate", "kernel_veth_2w", "conn_per_s"),
            base_label: "kernel↔kernel veth, 2 workers".into(),
            target: None,
        },
        Cmp {
            label: "TUN ping-pong p50, unpinned".into(),
            unit: "µs",
            ustack: fig("tun_pingpong", "ustack", "p50_us"),
            base: fig("tun_pingpong", "kernel_veth", "p50_us"),
            base_label: "kernel↔kernel veth".into(),
            target: None,
        },
    ];
    let counts = r.scale_counts();
    if let (Some(&lo), Some(&hi)) = (counts.first(), counts.last()) {
        v.push(Cmp {
            label: format!("Memory per idle connection ({hi} conns)"),
            unit: "bytes",
            ustack: fig(&format!("scale_{hi}"), "ustack", "bytes_per_socket"),
            base: Src::Const(4096.0),
            base_label: "4 KiB target".into(),
            target: AtMost(1.0),
        });
        v.push(Cmp {
            label: format!("Per-packet cost, ping-pong, {hi} vs {lo} conns, each ÷ reference pair"),
            unit: "× ref",
            ustack: fig(&format!("scale_{hi}"), "ustack", "pingpong_vs_reference"),
            base: fig(&format!("scale_{lo}"), "ustack", "pingpong_vs_reference"),
            base_label: format!("ustack at {lo} conns"),
            target: AtMost(1.2),
        });
        v.push(Cmp {
            label: format!("Per-packet cost, ping-pong, {hi} vs {lo} conns, wall time"),
            unit: "ns/pkt",
            ustack: fig(&format!("scale_{hi}"), "ustack", "pingpong_ns_per_packet"),
            base: fig(&format!("scale_{lo}"), "ustack", "pingpong_ns_per_packet"),
            base_label: format!("ustack at {lo} conns"),
            target: None,
        });
        v.push(Cmp {
            label: format!("Per-packet cost, bulk, {hi} vs {lo} conns"),
            unit: "ns/pkt",
            ustack: fig(&format!("scale_{hi}"), "ustack", "bulk_ns_per_packet"),
            base: fig(&format!("scale_{lo}"), "ustack", "bulk_ns_per_packet"),
            base_label: format!("ustack at {lo} conns"),
            target: None,
        });
    }
    v.push(Cmp {
        label: "1% loss, 100 ms RTT: ustack→kernel goodput".into(),
        unit: "Mbit/s",
        ustack: fig("loss_out", "ustack", "mbit_s"),
        base: fig("loss_out", "kernel", "mbit_s"),
        base_label: "kernel→kernel CUBIC".into(),
        target: AtLeast(0.9),
    });
    v.push(Cmp {
        label: "1% loss, 100 ms RTT: kernel→ustack goodput".into(),
        unit: "Mbit/s",
        ustack: fig("loss_in", "ustack", "mbit_s"),
        base: fig("loss_in", "kernel", "mbit_s"),
        base_label: "kernel→kernel CUBIC".into(),
        target: AtLeast(0.9),
    });
    v
}

struct Row {
    label: String,
    unit: &'static str,
    ustack: Option<f64>,
    base: Option<f64>,
    base_label: String,
    ratio: Option<f64>,
    target: Target,
    met: Option<bool>,
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn target_str(t: Target) -> String {
    match t {
        Target::AtLeast(x) => format!("≥ {x}×"),
        Target::AtMost(x) => format!("≤ {x}×"),
        Target::None => "—".into(),
    }
}

/// Builds the report from `results` (a file of `RESULT {json}` or plain JSON lines).
pub fn report(
    results: &Path,
    samples: Option<&Path>,
    json_out: &Path,
    svg_dir: &Path,
    meta: Value,
) -> io::Result<()> {
    let text = std::fs::read_to_string(results)?;
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("RESULT ").unwrap_or(l);
            serde_json::from_str::<Value>(l).ok()
        })
        .filter(|v| v.is_object())
        .collect();
    let r = Results { recs };
    let rows: Vec<Row> = comparisons(&r)
        .into_iter()
        .map(|c| {
            let u = r.value(&c.ustack);
            let b = r.value(&c.base);
            let ratio = match (u, b) {
                (Some(u), Some(b)) if b != 0.0 => Some(u / b),
                _ => None,
            };
            let mut met = match (ratio, c.target) {
                (Some(x), Target::AtLeast(t)) => Some(x >= t),
                (Some(x), Target::AtMost(t)) => Some(x <= t),
                _ => None,
            };
            // Connection-rate targets also require zero connect timeouts.
            if let Src::Fig(name, stack, "conn_per_s") = &c.ustack {
                let timeouts: f64 = r
                    .recs
                    .iter()
                    .filter(|x| x["name"] == name.as_str() && x["stack"] == *stack)
                    .filter_map(|x| x["timeouts"].as_f64())
                    .sum();
                if timeouts > 0.0 {
                    met = met.map(|_| false);
                }
            }
            let _ = &c.base;
            Row {
                label: c.label,
                unit: c.unit,
                ustack: u,
                base: b,
                base_label: c.base_label,
                ratio,
                target: c.target,
                met,
            }
        })
        .collect();

    println!("| comparison | unit | ustack | baseline | baseline value | ratio | target | met |");
    println!("|---|---|---:|---|---:|---:|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            row.unit,
            fmt_num(row.ustack),
            row.base_label,
            fmt_num(row.base),
            row.ratio
                .map(|x| format!("{x:.3}×"))
                .unwrap_or_else(|| "—".into()),
            target_str(row.target),
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }

    let cmp_json: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "label": row.label, "unit": row.unit, "ustack": row.ustack, "baseline": row.base,
                "baseline_label": row.base_label, "ratio": row.ratio, "target": target_str(row.target), "met": row.met,
            })
        })
        .collect();
    let sample_recs: Vec<Value> = match samples {
        Some(p) => std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        None => Vec::new(),
    };
    let out = json!({ "meta": meta, "comparisons": cmp_json, "results": r.recs, "loss_samples": sample_recs.len() });
    if let Some(dir) = json_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        json_out,
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    )?;
    std::fs::create_dir_all(svg_dir)?;
    let e = |e: Box<dyn std::error::Error>| io::Error::other(e.to_string());
    ratio_chart(&rows, &svg_dir.join("bench-ratios.svg")).map_err(e)?;
    if !sample_recs.is_empty() {
        loss_chart(&sample_recs, &svg_dir.join("bench-loss.svg")).map_err(e)?;
    }
    if !r.scale_counts().is_empty() {
        scale_chart(&r, &svg_dir.join("bench-scale.svg")).map_err(e)?;
    }
    eprintln!(
        "wrote {} and charts in {}",
        json_out.display(),
        svg_dir.display()
    );
    Ok(())
}

type DynErr = Box<dyn std::error::Error>;

/// One named series of (x, y) points and its colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn ratio_chart(rows: &[Row], path: &Path) -> Result<(), DynErr> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.ratio.is_some()).collect();
    let n = rows.len().max(1);
    let h = 90 + 34 * n as u32;
    let root = SVGBackend::new(path, (1000, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let lo = rows
        .iter()
        .filter_map(|r| r.ratio)
        .fold(0.1f64, f64::min)
        .max(1e-3)
        / 1.5;
    let hi = rows.iter().filter_map(|r| r.ratio).fold(10.0f64, f64::max) * 1.5;
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("ustack ÷ baseline, same run (green: target met, red: missed, grey: no target; | = target)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(380)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n as i32 - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => {
                labels.get(n - 1 - *i as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .x_desc("ratio (log scale)")
        .draw()?;
    for (i, row) in rows.iter().enumerate() {
        let ratio = row.ratio.unwrap_or(lo);
        let color = match row.met {
            Some(true) => GREEN.mix(0.7),
            Some(false) => RED.mix(0.7),
            None => BLACK.mix(0.3),
        };
        let yi = (n - 1 - i) as i32;
        let y0 = SegmentValue::Exact(yi);
        let y1 = SegmentValue::Exact(yi + 1);
        let mut bar = Rectangle::new([(lo, y0.clone()), (ratio, y1.clone())], color.filled());
        bar.set_margin(4, 4, 0, 0);
        chart.draw_series(std::iter::once(bar))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}×"),
            (ratio * 1.05, SegmentValue::CenterOf(yi)),
            ("sans-serif", 12),
        )))?;
        let t = match row.target {
            Target::AtLeast(t) | Target::AtMost(t) => Some(t),
            Target::None => None,
        };
        if let Some(t) = t {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(t, y0), (t, y1)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![
            (1.0, SegmentValue::Exact(0)),
            (1.0, SegmentValue::Exact(n as i32)),
        ],
        BLUE.mix(0.5),
    )))?;
    root.present()?;
    Ok(())
}

fn series(samples: &[Value], stack: &str, field: &str, scale: f64) -> Vec<(f64, f64)> {
    // Only the first connection of each stack (its time restarts at 0 for the next one).
    let mut out: Vec<(f64, f64)> = Vec::new();
    for s in samples.iter().filter(|s| s["stack"] == stack) {
        let (Some(t), Some(v)) = (s["t_ms"].as_f64(), s[field].as_f64()) else {
            continue;
        };
        if out.last().is_some_and(|p| t / 1e3 < p.0) {
            break;
        }
        out.push((t / 1e3, v * scale));
    }
    out
}

fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    ylabel: &str,
    data: &[Line<'_>],
) -> Result<(), DynErr> {
    let xmax = data
        .iter()
        .flat_map(|d| d.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = data
        .iter()
        .flat_map(|d| d.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(ylabel)
        .draw()?;
    for (name, pts, color) in data {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn loss_chart(samples: &[Value], path: &Path) -> Result<(), DynErr> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let parts = root.split_evenly((2, 1));
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    panel(
        &parts[0],
        "Sender congestion window, 1% loss + 50 ms each way (relay)",
        "cwnd (segments)",
        &[
            (
                "ustack (TcpStream::info)",
                series(samples, "ustack", "cwnd", 1.0),
                blue,
            ),
            (
                "kernel CUBIC (TCP_INFO)",
                series(samples, "kernel", "cwnd", 1.0),
                orange,
            ),
        ],
    )?;
    panel(
        &parts[1],
        "Sender smoothed RTT",
        "srtt (ms)",
        &[
            ("ustack", series(samples, "ustack", "rtt_us", 1e-3), blue),
            (
                "kernel CUBIC",
                series(samples, "kernel", "rtt_us", 1e-3),
                orange,
            ),
        ],
    )?;
    root.present()?;
    Ok(())
}

fn scale_chart(r: &Results, path: &Path) -> Result<(), DynErr> {
    let counts = r.scale_counts();
    let pts = |field: &str| -> Vec<(f64, f64)> {
        counts
            .iter()
            .filter_map(|n| Some((*n as f64, r.get(&format!("scale_{n}"), "ustack", field)?)))
            .collect()
    };
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let parts = root.split_evenly((2, 1));
    let xmax = counts.last().copied().unwrap_or(10) as f64 * 2.0;
    let mut series_map: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for f in [
        "bytes_per_socket",
        "pingpong_ns_per_packet",
        "bulk_ns_per_packet",
    ] {
        series_map.insert(f, pts(f));
    }
    let mem = &series_map["bytes_per_socket"];
    let ymax = mem.iter().map(|p| p.1).fold(4096.0f64, f64::max) * 1.2;
    let mut c = ChartBuilder::on(&parts[0])
        .caption(
            "Memory per idle established socket (counting allocator); dashed = 4 KiB target",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((5f64..xmax).log_scale(), 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("established connections")
        .y_desc("bytes")
        .draw()?;
    c.draw_series(LineSeries::new(mem.iter().copied(), BLUE.stroke_width(2)))?;
    c.draw_series(mem.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
    c.draw_series(DashedLineSeries::new(
        vec![(5.0, 4096.0), (xmax, 4096.0)],
        6,
        4,
        RED.into(),
    ))?;
    let pp = &series_map["pingpong_ns_per_packet"];
    let bk = &series_map["bulk_ns_per_packet"];
    let ymax = pp
        .iter()
        .chain(bk.iter())
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.2;
    let mut c = ChartBuilder::on(&parts[1])
        .caption(
            "Per-packet cost on one connection while N others sit idle",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((5f64..xmax).log_scale(), 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("established connections")
        .y_desc("ns per packet")
        .draw()?;
    c.draw_series(LineSeries::new(pp.iter().copied(), BLUE.stroke_width(2)))?
        .label("1-byte ping-pong")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    c.draw_series(LineSeries::new(bk.iter().copied(), RED.stroke_width(2)))?
        .label("bulk 32 MiB")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
