//! Segment and ICMP error input (Linux: `tcp_v4_rcv`, `tcp_v4_err`).

use std::net::SocketAddrV4;
use std::time::Instant;

use ustack_ipv4::{IcmpError, IcmpErrorKind, IpRxMeta};
use ustack_netdev::PacketBuf;

use crate::conn::{set_mss, tcp_done};
use crate::error::TcpError;
use crate::input::{segment_arrives, Verdict};
use crate::output::{send_reset_reply, write_xmit, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::wire::{TcpParseError, TcpRepr};

impl TcpLayer {
    /// Processes one received TCP segment (IP header already removed). `route_mtu` is the
    /// MTU of the route back to the sender (used for the MSS of new passive connections).
    /// Linux: `tcp_v4_rcv` -> `__inet_lookup_skb` -> `tcp_v4_do_rcv` / `tcp_check_req` /
    /// `tcp_timewait_state_process` / `tcp_v4_send_reset`.
    pub fn input(
        &mut self,
        now: Instant,
        meta: &IpRxMeta,
        seg: PacketBuf,
        route_mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        self.sh.stats.in_segs += 1;
        let data = seg.data();
        let (repr, range) = match TcpRepr::parse(data, meta.src, meta.dst, true) {
            Ok(r) => r,
            Err(e) => {
                self.sh.stats.in_errs += 1;
                if e == TcpParseError::BadChecksum {
                    self.sh.stats.in_csum_errors += 1;
                }
                return;
            }
        };
        let payload = data.get(range).unwrap_or(&[]);
        if meta.dst.is_broadcast() || meta.dst.is_multicast() || meta.src.is_broadcast() {
            return;
        }
        let local = SocketAddrV4::new(meta.dst, repr.dst_port);
        let remote = SocketAddrV4::new(meta.src, repr.src_port);
        if let Some(id) = self.hash.lookup_established(&(local, remote)) {
            match self.socks.get_mut(id) {
                Some(Sock::Conn(tcb)) => {
                    match segment_arrives(tcb, &mut self.sh, now, &repr, payload, out) {
                        Verdict::Keep => return,
                        Verdict::Closed => {
                            self.conn_closed(id);
                            return;
                        }
                        Verdict::TwSyn => {
                            // Kill the TIME_WAIT socket; the SYN goes to the listener.
                            if let Some(Sock::Conn(t)) = self.socks.get_mut(id) {
                                tcp_done(t, &mut self.sh, None);
                            }
                            self.unhash_conn(id);
                            if matches!(self.socks.get(id), Some(Sock::Conn(t)) if t.orphan) {
                                self.free(id);
                            }
                        }
                    }
                }
                Some(Sock::Req(_)) => {
                    self.req_rcv(now, id, &repr, payload, out);
                    return;
                }
                _ => {}
            }
        }
        if let Some(lid) = self.hash.lookup_listener(local) {
            self.listen_rcv(now, lid, local, remote, &repr, payload, route_mtu, out);
            return;
        }
        // No socket: RST (RFC 9293 3.10.7.1), never for an RST.
        send_reset_reply(&mut self.sh, local, remote, &repr, payload.len(), out);
    }

    /// An ICMP error quoting one of our segments (Linux `tcp_v4_err`): PMTU discovery
    /// (RFC 1191, RFC 5927 sequence validation), hard errors abort a connect in progress,
    /// soft errors are recorded (RFC 1122 4.2.3.9).
    pub fn err_input(&mut self, now: Instant, err: &IcmpError, out: &mut Vec<TcpSegmentOut>) {
        let q = &err.quoted;
        let (Some(sp), Some(dp), Some(sq)) = (q.get(0..2), q.get(2..4), q.get(4..8)) else {
            return;
        };
        let local = SocketAddrV4::new(err.orig_src, u16::from_be_bytes([sp[0], sp[1]]));
        let remote = SocketAddrV4::new(err.orig_dst, u16::from_be_bytes([dp[0], dp[1]]));
        let seq = SeqNum(u32::from_be_bytes([sq[0], sq[1], sq[2], sq[3]]));
        let Some(id) = self.hash.lookup_established(&(local, remote)) else {
            return;
        };
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        if tcb.state == TcpState::TimeWait {
            return;
        }
        // RFC 5927 section 4.1: the quoted sequence must be in flight.
        if !(seq.ge(tcb.snd_una) && seq.lt(tcb.snd_nxt.max(tcb.snd_una + 1))) {
            self.sh.stats.out_of_window_icmps += 1;
            return;
        }
        match err.kind {
            IcmpErrorKind::FragmentationNeeded { mtu } => {
                let mtu = mtu as usize;
                if mtu >= 68 && mtu < tcb.route_mtu {
                    tcb.route_mtu = mtu;
                    let old = tcb.mss;
                    set_mss(tcb);
                    if tcb.mss < old {
                        // Linux tcp_v4_mtu_reduced -> tcp_simple_retransmit: resend what is
                        // in flight at the smaller size.
                        tcb.rtx_next = tcb.snd_una;
                        tcb.lost_end = tcb.snd_nxt;
                        tcb.high_seq = tcb.snd_nxt;
                        if tcb.ca == crate::tcb::CaState::Open
                            || tcb.ca == crate::tcb::CaState::Disorder
                        {
                            tcb.ca = crate::tcb::CaState::Loss;
                            if tcb.ccs.cwnd < 2 {
                                tcb.ccs.cwnd = 2;
                            }
                        }
                        write_xmit(tcb, &mut self.sh, now, out);
                        tcb.sync_mem(&mut self.sh);
                    }
                }
            }
            kind => {
                let e = match kind.io_kind() {
                    std::io::ErrorKind::ConnectionRefused => TcpError::ConnectionRefused,
                    std::io::ErrorKind::NetworkUnreachable => TcpError::NetworkUnreachable,
                    _ => TcpError::HostUnreachable,
                };
                // During connect, unreachability ends the attempt (the brief's "hard"
                // set: Linux keeps retrying on host/net unreachable, we fail fast).
                let fatal = kind.is_hard()
                    || matches!(
                        kind,
                        IcmpErrorKind::HostUnreachable | IcmpErrorKind::NetUnreachable
                    );
                if tcb.state == TcpState::SynSent && fatal {
                    tcp_done(tcb, &mut self.sh, Some(e));
                    self.conn_closed(id);
                } else {
                    tcb.soft_error = Some(e);
                }
            }
        }
    }
}
