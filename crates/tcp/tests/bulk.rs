//! Bulk transfers through a lossy, reordering, duplicating pipe.

mod common;
use common::*;
use std::time::Duration;

fn lossy_transfer(size: usize, loss: f64, reorder: f64, dup: f64, seed: u64) {
    let mut n = Net::new();
    n.keep_log = false;
    n.rng = Rng::new(seed);
    let (c, s) = n.connect_pair(80);
    for d in 0..2 {
        n.faults[d] = Faults {
            loss,
            dup,
            reorder,
            reorder_delay: Duration::from_millis(3),
        };
    }
    let data = pattern(size, seed);
    let t0 = n.now;
    let got = n.transfer(c, s, &data, Duration::from_secs(3600));
    let el = n.now - t0;
    let ia = n.a.info(c).unwrap();
    let sa = n.a.stats();
    eprintln!(
        "size {size} virtual {:?} retrans {} rto {} recoveries {} sack_rec {} reno_rec {} undo {}/{} dsack {} hp hits {} acks {}",
        el, sa.retrans_segs, ia.rto_events, ia.recoveries, sa.tcp_sack_recovery, sa.tcp_reno_recovery,
        sa.tcp_loss_undo, sa.tcp_full_undo, sa.tcp_dsack_recv, n.b.stats().tcp_hp_hits, sa.tcp_hp_acks
    );
    assert_eq!(got.len(), data.len());
    assert_eq!(hash(&got), hash(&data));
    if loss > 0.0 {
        assert!(sa.retrans_segs > 0);
    }
}

#[test]
fn clean_4mib() {
    lossy_transfer(4 << 20, 0.0, 0.0, 0.0, 1);
}

#[test]
fn lossy_4mib() {
    lossy_transfer(4 << 20, 0.03, 0.01, 0.01, 2);
}

#[test]
fn lossy_64mib_byte_identical() {
    lossy_transfer(64 << 20, 0.03, 0.01, 0.01, 3);
}
