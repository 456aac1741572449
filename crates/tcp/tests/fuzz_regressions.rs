//! Minimal reproductions of bugs found by the fuzz targets (`fuzz/`, see
//! `scripts/fuzz.sh`) and the property tests of this crate. Each test names the input
//! that found it (kept under `fuzz/regressions/`) and stays here once fixed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ustack_ipv4::IpRxMeta;
use ustack_netdev::{DevId, PacketBuf};
use ustack_tcp::wire::TcpRepr;
use ustack_tcp::{SockId, TcpConfig, TcpLayer, TcpSegmentOut, TcpState};

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn meta(src: Ipv4Addr, dst: Ipv4Addr) -> IpRxMeta {
    IpRxMeta {
        src,
        dst,
        protocol: 6,
        ttl: 64,
        tos: 0,
        dev: DevId(0),
        multi: false,
    }
}

struct Pair {
    now: Instant,
    a: TcpLayer,
    b: TcpLayer,
    a_sock: SockId,
    b_sock: SockId,
    mtu: usize,
}

impl Pair {
    /// A connected pair over a path of `mtu` bytes, default configuration (timestamps
    /// and SACK on).
    fn new(mtu: usize) -> Pair {
        let now = Instant::now();
        let mut a = TcpLayer::new(TcpConfig::default(), [1; 16]);
        let mut b = TcpLayer::new(TcpConfig::default(), [2; 16]);
        let l = b.socket();
        b.bind(l, SocketAddrV4::new(B_IP, 80)).unwrap();
        b.listen(l, 4).unwrap();
        let c = a.socket();
        let mut out = Vec::new();
        a.connect(now, c, A_IP, SocketAddrV4::new(B_IP, 80), mtu, &mut out)
            .unwrap();
        let mut p = Pair {
            now,
            a,
            b,
            a_sock: c,
            b_sock: c,
            mtu,
        };
        p.deliver(out, true);
        p.b_sock = p.b.accept(l).unwrap().unwrap();
        assert_eq!(p.a.state(p.a_sock), Some(TcpState::Established));
        p
    }

    fn input(&mut self, seg: &TcpSegmentOut, to_b: bool) -> Vec<TcpSegmentOut> {
        let mut out = Vec::new();
        let bytes = PacketBuf::from_slice(seg.pkt.data());
        if to_b {
            self.b
                .input(self.now, &meta(A_IP, B_IP), bytes, self.mtu, &mut out);
        } else {
            self.a
                .input(self.now, &meta(B_IP, A_IP), bytes, self.mtu, &mut out);
        }
        out
    }

    /// Delivers `segs` and everything they cause until quiet.
    fn deliver(&mut self, segs: Vec<TcpSegmentOut>, to_b: bool) {
        let mut q: Vec<(TcpSegmentOut, bool)> = segs.into_iter().map(|s| (s, to_b)).collect();
        while let Some((s, to_b)) = q.pop() {
            let out = self.input(&s, to_b);
            q.extend(out.into_iter().map(|s| (s, !to_b)));
        }
    }
}

/// Found by `rx_path` (fuzz/regressions/rx_path/rto-sack-oversize) and by
/// `prop_stream::stream_survives_a_hostile_link` once its link enforced the MTU: a
/// retransmission on RTO that also carries SACK blocks is larger than the path MTU.
/// `timers.rs` (RTO and zero-window paths) calls `retransmit_at(.., tcb.mss, ..)`
/// instead of `mss_now(tcb)`, so the payload is sized for the timestamp option only
/// (1448 on a 1500-byte path) and the SACK option (4 + 8n bytes) comes on top:
/// 1448 + 32 + 12 = 1492 bytes of TCP, a 1512-byte IP packet with DF set. IP refuses it
/// (`FragFails`): while the receive side holds out-of-order data, every RTO
/// retransmission is lost, and the connection can only recover through new ACKs.
/// Fixed in `timers.rs` (both paths now use `mss_now`).
#[test]
fn rto_retransmission_with_sack_blocks_fits_the_mtu() {
    let mut p = Pair::new(1500);
    // B sends three segments; the first is lost, so A holds out-of-order data and puts a
    // SACK block on everything it sends.
    let mut out = Vec::new();
    assert_eq!(
        p.b.send(p.now, p.b_sock, &[0x42; 3000], &mut out).unwrap(),
        3000
    );
    assert!(out.len() >= 2, "B sent {} segments", out.len());
    for s in out.iter().skip(1) {
        let _ = p.input(s, false); // A's ACKs (with SACK) are dropped as well
    }
    // A sends a bulk of data, all of it lost; then its RTO fires.
    let mut lost = Vec::new();
    p.now += Duration::from_millis(1);
    p.a.send(p.now, p.a_sock, &[0x61; 20_000], &mut lost)
        .unwrap();
    let mut segs = lost;
    for _ in 0..3 {
        let Some(t) = p.a.poll_timeout() else { break };
        p.now = p.now.max(t);
        p.a.on_timeout(p.now, &mut segs);
    }
    assert!(!segs.is_empty());
    for s in &segs {
        let (r, range) = TcpRepr::parse(s.pkt.data(), A_IP, B_IP, true).unwrap();
        assert!(
            s.pkt.len() + 20 <= p.mtu,
            "{}-byte segment ({} header incl. {} SACK blocks, {} payload) on a {}-byte path",
            s.pkt.len(),
            r.header_len,
            r.options.sack_blocks().len(),
            range.len(),
            p.mtu
        );
    }
}

/// IPv4 + TCP glued the way `NetCore` does it (Linux `inet_init`: TCP registered in
/// `inet_protos`), for regressions that cross the two layers.
mod stack {
    use super::*;
    use ustack_ipv4::{
        ip_rcv, DeliverResult, IcmpError, InetProtos, IpContext, IpTx, Ipv4Cidr, Ipv4Config,
        Ipv4Layer, NetProtocol, OutMeta,
    };

    pub struct Stack {
        pub ip: Ipv4Layer,
        pub tcp: TcpLayer,
        protos: InetProtos<Stack>,
        pending: Vec<TcpSegmentOut>,
    }

    impl IpContext for Stack {
        fn ip(&mut self) -> &mut Ipv4Layer {
            &mut self.ip
        }
        fn protos(&self) -> &InetProtos<Self> {
            &self.protos
        }
    }

    fn tcp_rcv(s: &mut Stack, now: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
        let mtu =
            s.ip.route_output(meta.src, now)
                .map(|r| r.mtu)
                .unwrap_or(576);
        s.tcp.input(now, meta, pkt, mtu, &mut s.pending);
        DeliverResult::Consumed
    }

    /// As `NetCore`'s `tcp_v4_err`: the path MTU is only updated once TCP accepted the
    /// "fragmentation needed" (Linux `tcp_v4_mtu_reduced` -> `inet_csk_update_pmtu`).
    fn tcp_err(s: &mut Stack, now: Instant, err: &IcmpError) {
        if let Some(mtu) = s.tcp.err_input(now, err, &mut s.pending) {
            s.ip.update_pmtu(err.orig_dst, mtu, now);
        }
    }

    impl Stack {
        pub fn new(addr: Ipv4Addr) -> Stack {
            let mut ip = Ipv4Layer::new(Ipv4Config::default());
            ip.add_interface(DevId(1), "t0", Ipv4Cidr::new(addr, 24).unwrap(), 1500);
            let mut protos = InetProtos::new();
            protos
                .add(
                    6,
                    NetProtocol {
                        handler: tcp_rcv,
                        err_handler: tcp_err,
                    },
                )
                .unwrap();
            Stack {
                ip,
                tcp: TcpLayer::new(TcpConfig::default(), [9; 16]),
                protos,
                pending: Vec::new(),
            }
        }

        /// Hands TCP's segments to IP (DF set, as `NetCore::flush` does) and returns what
        /// IP would put on the wire.
        pub fn flush(&mut self, now: Instant, more: Vec<TcpSegmentOut>) -> Vec<Vec<u8>> {
            self.pending.extend(more);
            for seg in std::mem::take(&mut self.pending) {
                let meta = OutMeta {
                    src: Some(seg.src),
                    dst: seg.dst,
                    protocol: 6,
                    ttl: seg.ttl,
                    tos: seg.tos,
                    dont_frag: true,
                    oif: None,
                    mc_loop: false,
                    confirm_neigh: false,
                };
                let _ = self.ip.output(now, &meta, seg.pkt);
            }
            let mut tx: Vec<IpTx> = Vec::new();
            self.ip.take_tx(&mut tx);
            tx.into_iter().map(|t| t.pkt.data().to_vec()).collect()
        }

        pub fn receive(&mut self, now: Instant, pkt: Vec<u8>) -> Vec<Vec<u8>> {
            ip_rcv(self, now, DevId(1), PacketBuf::from_vec(pkt));
            self.flush(now, Vec::new())
        }
    }
}

fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let r = ustack_ipv4::Ipv4Repr {
        src,
        dst,
        protocol,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        header_len: 20,
        payload_len: payload.len(),
    };
    let mut p = vec![0u8; 20 + payload.len()];
    r.emit(&mut p);
    p[20..].copy_from_slice(payload);
    p
}

fn tcp_segment(src: Ipv4Addr, dst: Ipv4Addr, r: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let mut pkt = PacketBuf::with_payload_capacity(payload.len());
    pkt.extend_from_slice(payload);
    r.emit(&mut pkt, src, dst);
    ipv4_packet(src, dst, 6, pkt.data())
}

/// Found by `rx_path` (input `fuzz/regressions/open/rx_path/icmp-pmtu-blackhole`, 10 bytes:
/// one ICMP "fragmentation needed" with MTU 0 quoting the connecting socket with a
/// sequence number that is not in flight, then 5 s of timers).
///
/// `ip_rcv` applied the MTU of every "fragmentation needed" to its path MTU cache
/// (`input.rs`: `pmtu_from_icmp` before the transport's `err_handler`), for the whole
/// destination address. TCP then rejects the message (RFC 5927 4.1: the quoted sequence
/// is not in flight, counted in `OutOfWindowIcmps`) or, for another connection to the
/// same host, never hears of it: its MSS stays sized for 1500 bytes. From then on every
/// full-sized segment to that host is refused by `Ipv4Layer::output` (DF set, larger
/// than the path MTU; `FragFails`) until the cache entry expires (600 s): a blind,
/// off-path attacker who knows only our peer's address stalls all our bulk transfers to
/// it with one forged ICMP. Linux validates in `tcp_v4_err` before it touches the path
/// MTU (`tcp_v4_mtu_reduced`), and every socket re-reads the route MTU when it builds
/// segments (`tcp_current_mss` -> `dst_mtu`).
///
/// Fixed: IP only clamps the MTU and hands it to the `err_handler`; the PMTU cache is
/// updated by the transport once `TcpLayer::err_input` accepted the error (it returns the
/// MTU to apply). `NetCore::flush` also shrinks the MSS of a connection whose segment IP
/// refuses as too big for the path (`TcpLayer::output_too_big`).
#[test]
fn forged_frag_needed_does_not_blackhole_tcp() {
    use ustack_tcp::seq::SeqNum;
    use ustack_tcp::wire::TcpFlags;
    const US: Ipv4Addr = B_IP;
    const PEER: Ipv4Addr = A_IP;
    let mut now = Instant::now();
    let mut s = stack::Stack::new(US);
    let l = s.tcp.socket();
    s.tcp.bind(l, SocketAddrV4::new(US, 80)).unwrap();
    s.tcp.listen(l, 4).unwrap();
    // Handshake from the peer (MSS 1460, no options beyond it).
    let mut syn = TcpRepr::new(40000, 80, SeqNum(1000), SeqNum(0), TcpFlags::SYN);
    syn.window = 65535;
    syn.options.mss = Some(1460);
    syn.header_len = syn.emit_len();
    let out = s.receive(now, tcp_segment(PEER, US, &syn, &[]));
    let synack = out
        .iter()
        .find_map(|p| TcpRepr::parse(&p[20..], US, PEER, true).ok())
        .unwrap()
        .0;
    let mut ack = TcpRepr::new(40000, 80, SeqNum(1001), synack.seq + 1, TcpFlags::ACK);
    ack.window = 65535;
    s.receive(now, tcp_segment(PEER, US, &ack, &[]));
    let c = s.tcp.accept(l).unwrap().unwrap();
    // The forged ICMP: "fragmentation needed, MTU 0" quoting a segment of ours to the peer
    // with a sequence number nowhere near what is in flight.
    let mut bogus = TcpRepr::new(80, 40000, SeqNum(0x1234_5678), SeqNum(0), TcpFlags::ACK);
    bogus.header_len = bogus.emit_len();
    let quoted = tcp_segment(US, PEER, &bogus, &[]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted[..28]);
    let csum = ustack_ipv4::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    s.receive(now, ipv4_packet(Ipv4Addr::new(10, 0, 0, 254), US, 1, &icmp));
    // Bulk data: every segment must still reach the wire, now and on retransmission.
    let mut segs = Vec::new();
    let n = s.tcp.send(now, c, &[0x61; 6000], &mut segs).unwrap();
    assert!(n > 0);
    let mut wire = s.flush(now, segs);
    for _ in 0..3 {
        let Some(t) = s.tcp.poll_timeout() else { break };
        now = now.max(t);
        let mut segs = Vec::new();
        s.tcp.on_timeout(now, &mut segs);
        wire.extend(s.flush(now, segs));
    }
    let refused = s.ip.stats().frag_fails;
    assert_eq!(
        refused, 0,
        "IP refused {refused} TCP segments after a forged frag-needed (path MTU now {:?}, {} packets got out)",
        s.ip.path_mtu(PEER, now),
        wire.len()
    );
    assert_eq!(s.ip.path_mtu(PEER, now), None);
    assert_eq!(s.tcp.stats().out_of_window_icmps, 1);
}
