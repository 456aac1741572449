//! ACK batching (`TcpLayer::set_ack_batching`): the ACK owed for every second full-sized
//! segment goes out once per batch of input, from `flush_acks`, covering the whole batch;
//! out-of-order data is still acknowledged at once, and a caller that never flushes still
//! gets its ACK from the delayed-ACK timer.

mod common;
use common::*;
use std::time::Duration;
use ustack_netdev::PacketBuf;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{SockId, TcpSegmentOut};

/// Gives `segs` to `layer` as one batch (no flush in between); returns what the layer
/// sent while taking them in.
fn input_batch(n: &mut Net, segs: &[TcpSegmentOut]) -> Vec<TcpSegmentOut> {
    let now = n.now;
    let mut out = Vec::new();
    for s in segs {
        let pkt = PacketBuf::from_slice(s.pkt.data());
        n.b.input(now, &rx_meta(s), pkt, MTU, &mut out);
    }
    out
}

fn pure_acks(out: &[TcpSegmentOut]) -> Vec<TcpRepr> {
    out.iter()
        .map(|s| {
            TcpRepr::parse(s.pkt.data(), s.src, s.dst, true)
                .expect("valid")
                .0
        })
        .filter(|r| r.flags.0 & 0x3f == TcpFlags::ACK.0)
        .collect()
}

/// A connection past its quick-ack phase (a first transfer used up the quick ACKs),
/// with A's next segments captured instead of delivered.
fn warmed_up() -> (Net, SockId, SockId) {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    let data = pattern(256 * 1024, 9);
    let got = n.transfer(c, s, &data, Duration::from_secs(60));
    assert_eq!(got.len(), data.len());
    // Let the last delayed ACK fire: nothing in flight, so Nagle holds nothing back.
    n.run_for(Duration::from_secs(1));
    (n, c, s)
}

fn a_segments(n: &mut Net, c: SockId, bytes: usize) -> Vec<TcpSegmentOut> {
    let now = n.now;
    let mut out = Vec::new();
    let sent =
        n.a.send(now, c, &pattern(bytes, 3), &mut out)
            .expect("send");
    assert_eq!(sent, bytes);
    out
}

#[test]
fn one_ack_per_batch_covers_every_segment() {
    let (mut n, c, _s) = warmed_up();
    let segs = a_segments(&mut n, c, 8 * 1448);
    assert!(segs.len() >= 6, "{} segments", segs.len());
    let last = segs.last().expect("segments");
    let end = {
        let (r, range) = TcpRepr::parse(last.pkt.data(), last.src, last.dst, true).expect("ok");
        r.seq.0.wrapping_add(range.len() as u32)
    };
    // Inside the batch nothing is acknowledged yet...
    let during = input_batch(&mut n, &segs);
    assert!(pure_acks(&during).is_empty(), "ACK sent inside the batch");
    assert!(n.b.has_owed_acks());
    // ...and at its end one ACK covers all of it.
    let now = n.now;
    let mut out = Vec::new();
    n.b.flush_acks(now, &mut out);
    let acks = pure_acks(&out);
    assert_eq!(acks.len(), 1, "one ACK per batch");
    assert_eq!(acks[0].ack.0, end);
    assert!(!n.b.has_owed_acks());
    // Nothing is owed twice: a second flush sends nothing.
    let mut again = Vec::new();
    n.b.flush_acks(now, &mut again);
    assert!(again.is_empty());
    // The delayed-ACK timer no longer has anything to send either.
    let before = n.b.stats().delayed_acks;
    let later = now + Duration::from_millis(500);
    let mut timers = Vec::new();
    n.b.on_timeout(later, &mut timers);
    assert!(pure_acks(&timers).is_empty());
    assert_eq!(n.b.stats().delayed_acks, before);
}

#[test]
fn single_segment_batch_waits_for_the_delayed_ack_timer() {
    let (mut n, c, _s) = warmed_up();
    let segs = a_segments(&mut n, c, 1000);
    assert_eq!(segs.len(), 1);
    let during = input_batch(&mut n, &segs);
    assert!(pure_acks(&during).is_empty());
    let mut out = Vec::new();
    let now = n.now;
    n.b.flush_acks(now, &mut out);
    assert!(
        out.is_empty(),
        "one small segment is not worth an immediate ACK"
    );
    let due = n.b.poll_timeout().expect("delayed ACK armed");
    assert!(due > now);
    n.b.on_timeout(due, &mut out);
    assert_eq!(pure_acks(&out).len(), 1);
}

#[test]
fn out_of_order_data_is_acked_inside_the_batch() {
    let (mut n, c, _s) = warmed_up();
    let mut segs = a_segments(&mut n, c, 4 * 1448);
    assert!(segs.len() >= 3);
    // The first segment is lost: each later one is out of order and gets a dupack at
    // once (fast retransmit must not wait for the end of the batch).
    segs.remove(0);
    let during = input_batch(&mut n, &segs);
    let acks = pure_acks(&during);
    assert_eq!(
        acks.len(),
        segs.len(),
        "one immediate dupack per out-of-order segment"
    );
    assert!(acks.iter().all(|a| a.options.sack_count > 0));
}

#[test]
fn without_a_flush_the_delayed_ack_timer_is_the_backstop() {
    let (mut n, c, _s) = warmed_up();
    let segs = a_segments(&mut n, c, 6 * 1448);
    let during = input_batch(&mut n, &segs);
    assert!(pure_acks(&during).is_empty());
    let due = n.b.poll_timeout().expect("a timer is armed");
    let mut out = Vec::new();
    n.b.on_timeout(due, &mut out);
    assert_eq!(pure_acks(&out).len(), 1);
    // The ACK already went: a late flush has nothing to send.
    let mut late = Vec::new();
    n.b.flush_acks(due, &mut late);
    assert!(late.is_empty());
}

#[test]
fn batching_off_acks_every_second_segment() {
    let (mut n, c, _s) = warmed_up();
    n.b.set_ack_batching(false);
    let segs = a_segments(&mut n, c, 8 * 1448);
    let during = input_batch(&mut n, &segs);
    assert_eq!(pure_acks(&during).len(), segs.len() / 2);
    assert!(!n.b.has_owed_acks());
}
