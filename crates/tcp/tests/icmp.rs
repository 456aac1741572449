//! ICMP errors: PMTU discovery (RFC 1191, RFC 5927) and hard/soft errors (RFC 1122 4.2.3.9).

mod common;
use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use ustack_ipv4::{IcmpError, IcmpErrorKind};
use ustack_tcp::{TcpError, TcpSegmentOut, TcpState};

fn icmp_for(s: &TcpSegmentOut, kind: IcmpErrorKind) -> IcmpError {
    IcmpError {
        kind,
        reporter: Ipv4Addr::new(10, 0, 0, 254),
        orig_src: s.src,
        orig_dst: s.dst,
        orig_protocol: 6,
        quoted: s.pkt.data()[..8].to_vec(),
    }
}

#[test]
fn frag_needed_lowers_mss_and_resends_smaller() {
    let mut n = Net::new();
    let (c, s) = n.connect_pair(80);
    n.mtu_limit[0] = Some(1000);
    let data = pattern(100_000, 4);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut accepted = 0;
    let limit = n.now + Duration::from_secs(60);
    while got.len() < data.len() && n.now < limit {
        if sent < data.len() {
            sent += n.a_send(c, &data[sent..]);
        }
        // The "router": every too-big packet triggers one ICMP frag-needed.
        for (_, seg) in std::mem::take(&mut n.too_big) {
            let e = icmp_for(&seg, IcmpErrorKind::FragmentationNeeded { mtu: 1000 });
            let mut out = Vec::new();
            let now = n.now;
            // Validated: the caller is told to record the path MTU (inet_csk_update_pmtu).
            if let Some(mtu) = n.a.err_input(now, &e, &mut out) {
                assert_eq!(mtu, 1000);
                accepted += 1;
            }
            n.send(Dir::AtoB, out);
        }
        got.extend(n.recv_all(Dir::BtoA, s));
        n.step(limit);
    }
    assert!(got == data, "{} of {}", got.len(), data.len());
    assert!(accepted >= 1);
    let info = n.a.info(c).unwrap();
    assert_eq!(info.snd_mss, 1000 - 40 - 12);
    assert!(n
        .log
        .iter()
        .filter(|x| x.dir == Dir::AtoB)
        .all(|x| x.len <= 948));
    assert!(
        n.a.stats().tcp_timeouts <= 1,
        "resent at once, not after an RTO"
    );
}

#[test]
fn icmp_quoting_a_sequence_not_in_flight_is_ignored() {
    let mut n = Net::new();
    let (c, _s) = n.connect_pair(80);
    let mut out = Vec::new();
    let now = n.now;
    n.a.send(now, c, &[0u8; 100], &mut out).unwrap();
    let mut bogus = out[0].clone();
    // Corrupt the quoted sequence number.
    bogus.pkt.data_mut()[4] ^= 0x80;
    let e = icmp_for(&bogus, IcmpErrorKind::FragmentationNeeded { mtu: 600 });
    let mut o2 = Vec::new();
    assert_eq!(
        n.a.err_input(now, &e, &mut o2),
        None,
        "not for the PMTU cache"
    );
    assert!(o2.is_empty());
    assert_eq!(n.a.stats().out_of_window_icmps, 1);
    assert_eq!(n.a.info(c).unwrap().snd_mss, 1448);
    n.send(Dir::AtoB, out);
    n.settle();
    // A soft error on an established connection is recorded, not fatal.
    let mut out = Vec::new();
    n.a.send(n.now, c, &[1u8; 10], &mut out).unwrap();
    let e = icmp_for(&out[0], IcmpErrorKind::HostUnreachable);
    assert_eq!(n.a.err_input(n.now, &e, &mut Vec::new()), None);
    assert_eq!(n.a.state(c), Some(TcpState::Established));
    assert_eq!(n.a.take_error(c), Some(TcpError::HostUnreachable));
}

#[test]
fn hard_icmp_errors_abort_connect() {
    for (kind, err) in [
        (IcmpErrorKind::PortUnreachable, TcpError::ConnectionRefused),
        (IcmpErrorKind::HostUnreachable, TcpError::HostUnreachable),
        (IcmpErrorKind::NetUnreachable, TcpError::NetworkUnreachable),
    ] {
        let mut n = Net::new();
        let c = n.a.socket();
        let mut out = Vec::new();
        n.a.connect(n.now, c, A_IP, sa(B_IP, 80), MTU, &mut out)
            .unwrap();
        let e = icmp_for(&out[0], kind);
        n.a.err_input(n.now, &e, &mut Vec::new());
        assert_eq!(n.a.state(c), Some(TcpState::Closed), "{kind:?}");
        assert_eq!(n.a.take_error(c), Some(err));
    }
}
