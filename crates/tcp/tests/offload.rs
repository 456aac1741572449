//! Transmit offload (TSO and checksum offload, `TcpLayer::set_offload`): super-segments
//! of whole MSS-sized segments within the windows, partial checksums, MSS-sized
//! retransmissions, and the fall back to whole segments when IP refuses them.

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::TcpState;

const MSS: usize = 1448;

fn data_segs(log: &[Seg], d: Dir) -> Vec<Seg> {
    log.iter()
        .filter(|s| s.dir == d && s.len > 0)
        .cloned()
        .collect()
}

#[test]
fn super_segments_carry_the_stream_intact() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    assert!(n.a.set_offload(c, 65535));
    n.log_take();
    let data = pattern(4 << 20, 7);
    assert_eq!(n.transfer(c, s, &data, Duration::from_secs(30)), data);
    let segs = data_segs(&n.log_take(), Dir::AtoB);
    assert!(
        segs.iter().all(|s| s.partial),
        "every data segment left its checksum"
    );
    let big: Vec<_> = segs.iter().filter(|s| s.len > MSS).collect();
    assert!(!big.is_empty(), "no super-segment was sent");
    for s in &big {
        assert_eq!(usize::from(s.gso), MSS, "segment size of a super-segment");
        assert!(s.len <= 64 * MSS);
        assert!(s.len + 20 + 60 <= 65535);
    }
    // Far fewer packets than MSS-sized segments.
    assert!(segs.len() * 4 < data.len() / MSS, "{} packets", segs.len());
    // B sends whole segments: it has no offload.
    let back = data_segs(&n.log_take(), Dir::BtoA);
    assert!(back.iter().all(|s| !s.partial && s.gso == 0));
    assert_eq!(n.a.state(c), Some(TcpState::Established));
}

#[test]
fn loss_with_super_segments_recovers_with_mss_sized_retransmissions() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    assert!(n.a.set_offload(c, 65535));
    n.faults[0].loss = 0.05;
    n.log_take();
    let data = pattern(4 << 20, 9);
    assert_eq!(n.transfer(c, s, &data, Duration::from_secs(120)), data);
    assert!(n.dropped[0] > 0, "the pipe dropped nothing");
    let segs = data_segs(&n.log_take(), Dir::AtoB);
    let mut top = 0u32;
    let mut retrans = 0;
    for sg in &segs {
        let end = sg.seq.wrapping_add(sg.len as u32);
        if top != 0 && (end.wrapping_sub(top) as i32) <= 0 {
            // Resends what was sent before: never more than one segment at a time.
            retrans += 1;
            assert!(sg.len <= MSS, "a retransmission of {} bytes", sg.len);
            assert_eq!(sg.gso, 0);
        }
        if top == 0 || (end.wrapping_sub(top) as i32) > 0 {
            top = end;
        }
    }
    assert!(retrans > 0);
    assert!(n.a.stats().retrans_segs >= retrans as u64);
}

/// IP refuses an offloaded segment (the route moved to a device without offload): the
/// connection stops offloading, resends what was in flight as whole segments, and the
/// stream arrives intact.
#[test]
fn refused_offload_falls_back_to_whole_segments() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    assert!(n.a.set_offload(c, 65535));
    let first = pattern(256 * 1024, 1);
    assert_eq!(n.transfer(c, s, &first, Duration::from_secs(10)), first);
    // More data leaves as super-segments, then the device goes away under them.
    let second = pattern(512 * 1024, 2);
    let mut sent = n.a_send(c, &second);
    n.log_take();
    let local = n.a.local_addr(c).unwrap();
    let remote = n.a.peer_addr(c).unwrap();
    let mut out = Vec::new();
    let now = n.now;
    assert!(n.a.output_too_big(now, local, remote, MTU, &mut out));
    n.send(Dir::AtoB, out);
    let mut got = Vec::new();
    let ok = n.run_until(Duration::from_secs(30), |n| {
        if sent < second.len() {
            sent += n.a_send(c, &second[sent..]);
        }
        got.extend(n.recv_all(Dir::BtoA, s));
        got.len() >= second.len()
    });
    assert!(ok, "the stream stalled after the fall back");
    assert_eq!(got, second);
    let after = data_segs(&n.log_take(), Dir::AtoB);
    assert!(!after.is_empty());
    assert!(after
        .iter()
        .all(|s| !s.partial && s.gso == 0 && s.len <= MSS));
    // Refusing again changes nothing: there is no offload left to drop, and the MTU
    // did not shrink.
    let mut out = Vec::new();
    let now = n.now;
    assert!(!n.a.output_too_big(now, local, remote, MTU, &mut out));
    assert!(out.is_empty());
}

#[test]
fn offload_needs_a_connection_and_a_device_above_one_segment() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    // Below the route MTU it is off: nothing to gain.
    assert!(n.a.set_offload(c, 1000));
    n.log_take();
    let data = pattern(64 * 1024, 4);
    assert_eq!(n.transfer(c, s, &data, Duration::from_secs(10)), data);
    assert!(data_segs(&n.log_take(), Dir::AtoB)
        .iter()
        .all(|s| !s.partial && s.gso == 0));
    let l = n.listen_b(81, 8);
    assert!(!n.b.set_offload(l, 65535), "a listener is not a connection");
}
