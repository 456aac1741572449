use super::*;

fn base(len: usize) -> Ipv4Repr {
    Ipv4Repr {
        src: Ipv4Addr::new(192, 168, 1, 1),
        dst: Ipv4Addr::new(192, 168, 1, 2),
        protocol: 17,
        ttl: 64,
        tos: 0,
        ident: 77,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: len,
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Builds the fragment carrying `payload[start..end]` of datagram `ident`.
fn frag(ident: u16, payload: &[u8], start: usize, end: usize, more: bool) -> (Ipv4Repr, Vec<u8>) {
    let r = Ipv4Repr {
        ident,
        more_frags: more,
        frag_offset: start as u16,
        payload_len: end - start,
        ..base(0)
    };
    let mut p = vec![0u8; 20];
    r.emit(&mut p);
    p.extend_from_slice(&payload[start..end]);
    let parsed = Ipv4Repr::parse(&p).unwrap();
    (parsed, p)
}

fn feed(r: &mut Reassembler, now: Instant, f: (Ipv4Repr, Vec<u8>)) -> ReasmOutcome {
    r.add(now, &f.0, &f.1)
}

fn complete(o: ReasmOutcome) -> Vec<u8> {
    match o {
        ReasmOutcome::Complete(p) => p.into_vec(),
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn check_datagram(bytes: &[u8], payload: &[u8]) {
    let r = Ipv4Repr::parse(bytes).unwrap();
    assert!(!r.is_fragment());
    assert_eq!(r.payload_len, payload.len());
    assert_eq!(&bytes[20..], payload);
}

fn reasm() -> Reassembler {
    Reassembler::new(Duration::from_secs(30), 4 << 20)
}

#[test]
fn in_order() {
    let t = Instant::now();
    let d = data(3000);
    let mut r = reasm();
    assert!(matches!(
        feed(&mut r, t, frag(1, &d, 0, 1480, true)),
        ReasmOutcome::Pending
    ));
    assert!(matches!(
        feed(&mut r, t, frag(1, &d, 1480, 2960, true)),
        ReasmOutcome::Pending
    ));
    let out = complete(feed(&mut r, t, frag(1, &d, 2960, 3000, false)));
    check_datagram(&out, &d);
    assert!(r.is_empty());
    assert_eq!(r.mem_usage(), 0);
}

#[test]
fn out_of_order() {
    let t = Instant::now();
    let d = data(4000);
    let mut r = reasm();
    assert!(matches!(
        feed(&mut r, t, frag(2, &d, 3200, 4000, false)),
        ReasmOutcome::Pending
    ));
    assert!(matches!(
        feed(&mut r, t, frag(2, &d, 1600, 3200, true)),
        ReasmOutcome::Pending
    ));
    // Another datagram interleaved.
    assert!(matches!(
        feed(&mut r, t, frag(3, &d, 0, 800, true)),
        ReasmOutcome::Pending
    ));
    let out = complete(feed(&mut r, t, frag(2, &d, 0, 1600, true)));
    check_datagram(&out, &d);
    assert_eq!(r.len(), 1);
}

#[test]
fn exact_duplicate_is_ignored() {
    let t = Instant::now();
    let d = data(100);
    let mut r = reasm();
    assert!(matches!(
        feed(&mut r, t, frag(4, &d, 0, 48, true)),
        ReasmOutcome::Pending
    ));
    assert!(matches!(
        feed(&mut r, t, frag(4, &d, 0, 48, true)),
        ReasmOutcome::Pending
    ));
    let out = complete(feed(&mut r, t, frag(4, &d, 48, 100, false)));
    check_datagram(&out, &d);
    // A duplicate after completion starts a new queue that will simply time out.
    assert!(matches!(
        feed(&mut r, t, frag(4, &d, 48, 100, false)),
        ReasmOutcome::Pending
    ));
}

#[test]
fn overlap_drops_datagram() {
    let t = Instant::now();
    let d = data(100);
    let mut r = reasm();
    assert!(matches!(
        feed(&mut r, t, frag(5, &d, 0, 48, true)),
        ReasmOutcome::Pending
    ));
    // Overlaps the tail of the first one.
    assert!(matches!(
        feed(&mut r, t, frag(5, &d, 40, 64, true)),
        ReasmOutcome::Dropped(ReasmDrop::Overlap)
    ));
    assert!(r.is_empty());
    // Overlap with the next piece.
    assert!(matches!(
        feed(&mut r, t, frag(6, &d, 48, 96, true)),
        ReasmOutcome::Pending
    ));
    assert!(matches!(
        feed(&mut r, t, frag(6, &d, 0, 56, true)),
        ReasmOutcome::Dropped(ReasmDrop::Overlap)
    ));
    // Same start, different length.
    assert!(matches!(
        feed(&mut r, t, frag(7, &d, 0, 48, true)),
        ReasmOutcome::Pending
    ));
    assert!(matches!(
        feed(&mut r, t, frag(7, &d, 0, 64, true)),
        ReasmOutcome::Dropped(ReasmDrop::Overlap)
    ));
    assert_eq!(r.mem_usage(), 0);
}

#[test]
fn inconsistent_end_drops() {
    let t = Instant::now();
    let d = data(200);
    let mut r = reasm();
    assert!(matches!(
        feed(&mut r, t, frag(8, &d, 0, 104, false)),
        ReasmOutcome::Complete(_)
    ));
    assert!(matches!(
        feed(&mut r, t, frag(9, &d, 104, 200, false)),
        ReasmOutcome::Pending
    ));
    // Data beyond the known end.
    assert!(matches!(
        feed(&mut r, t, frag(9, &d, 104, 200, false).clone()),
        ReasmOutcome::Pending
    ));
    let mut big = d.clone();
    big.extend_from_slice(&[0; 16]);
    assert!(matches!(
        feed(&mut r, t, frag(9, &big, 200, 216, true)),
        ReasmOutcome::Dropped(ReasmDrop::Inconsistent)
    ));
}

#[test]
fn timeout_expiry() {
    let t0 = Instant::now();
    let d = data(100);
    let mut r = reasm();
    feed(&mut r, t0, frag(10, &d, 0, 48, true));
    feed(
        &mut r,
        t0 + Duration::from_secs(10),
        frag(11, &d, 48, 96, true),
    );
    assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(30)));
    let mut quotes = Vec::new();
    r.expire(t0 + Duration::from_secs(29), |q| {
        quotes.push(q.map(|b| b.to_vec()))
    });
    assert!(quotes.is_empty());
    r.expire(t0 + Duration::from_secs(30), |q| {
        quotes.push(q.map(|b| b.to_vec()))
    });
    assert_eq!(quotes.len(), 1);
    // The first fragment had arrived: header + 8 bytes are quoted.
    let q = quotes[0].as_ref().unwrap();
    assert_eq!(q.len(), 28);
    assert_eq!(&q[20..], &d[..8]);
    assert_eq!(r.len(), 1);
    r.expire(t0 + Duration::from_secs(40), |q| {
        quotes.push(q.map(|b| b.to_vec()))
    });
    assert_eq!(quotes.len(), 2);
    assert!(quotes[1].is_none());
    assert!(r.is_empty());
    assert_eq!(r.mem_usage(), 0);
    assert_eq!(r.next_expiry(), None);
}

#[test]
fn memory_bound_evicts_oldest() {
    let t = Instant::now();
    let d = data(8000);
    // Room for about two 8 KB queues.
    let mut r = Reassembler::new(Duration::from_secs(30), 17_000);
    feed(&mut r, t, frag(20, &d, 0, 7992, true));
    feed(&mut r, t, frag(21, &d, 0, 7992, true));
    assert_eq!(r.len(), 2);
    feed(&mut r, t, frag(22, &d, 0, 7992, true));
    assert_eq!(r.len(), 2);
    assert_eq!(r.evictions(), 1);
    assert!(r.mem_usage() <= 17_000);
    // The oldest (20) is gone: completing it now is impossible, 22 completes.
    assert!(matches!(
        feed(&mut r, t, frag(20, &d, 7992, 8000, false)),
        ReasmOutcome::Pending
    ));
    let out = complete(feed(&mut r, t, frag(22, &d, 7992, 8000, false)));
    check_datagram(&out, &d);
    // A single fragment bigger than the whole limit is refused.
    let mut small = Reassembler::new(Duration::from_secs(30), 1000);
    assert!(matches!(
        feed(&mut small, t, frag(1, &d, 0, 4000, true)),
        ReasmOutcome::Dropped(ReasmDrop::MemoryLimit)
    ));
    assert_eq!(small.mem_usage(), 0);
}

#[test]
fn too_big_is_dropped() {
    let t = Instant::now();
    let d = data(65535);
    let mut r = reasm();
    // Offset 65520 + 8 payload bytes + a 20-byte header is over 65535.
    let (repr, bytes) = {
        let mut rp = base(0);
        rp.frag_offset = 65520;
        rp.payload_len = 8;
        let mut p = vec![0u8; 20];
        rp.emit(&mut p);
        p.extend_from_slice(&d[..8]);
        (Ipv4Repr::parse(&p).unwrap(), p)
    };
    assert!(matches!(
        r.add(t, &repr, &bytes),
        ReasmOutcome::Dropped(ReasmDrop::TooBig)
    ));
}

#[test]
fn fragment_then_reassemble_4000_at_1500() {
    let t = Instant::now();
    let d = data(4000);
    let mut hdr = base(d.len());
    hdr.ident = 999;
    let mut frags = Vec::new();
    assert_eq!(fragment(&hdr, &d, 1500, &mut frags), Ok(3));
    let lens: Vec<usize> = frags.iter().map(|f| f.len()).collect();
    assert_eq!(lens, vec![1500, 1500, 20 + 4000 - 2960]);
    let mut r = reasm();
    let mut result = None;
    // Feed in reverse order for good measure.
    for f in frags.iter().rev() {
        let repr = Ipv4Repr::parse(f.data()).unwrap();
        assert!(repr.is_fragment());
        assert!(repr.payload_len.is_multiple_of(8) || !repr.more_frags);
        if let ReasmOutcome::Complete(p) = r.add(t, &repr, f.data()) {
            result = Some(p);
        }
    }
    let out = result.unwrap().into_vec();
    let repr = Ipv4Repr::parse(&out).unwrap();
    assert_eq!(repr.ident, 999);
    assert_eq!(repr.payload_len, 4000);
    assert_eq!(&out[20..], &d[..]);
}

#[test]
fn fragment_rejects_tiny_mtu() {
    let mut v = Vec::new();
    assert_eq!(
        fragment(&base(100), &data(100), 27, &mut v),
        Err(FragError::MtuTooSmall)
    );
    assert_eq!(fragment(&base(100), &data(100), 28, &mut v), Ok(13));
}
