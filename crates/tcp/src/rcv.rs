//! Segment and ICMP error input (Linux: `tcp_v4_rcv`, `tcp_v4_err`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use ustack_ipv4::{IcmpError, IcmpErrorKind, IpRxMeta};
use ustack_netdev::PacketBuf;

use crate::conn::{set_mss, tcp_done};
use crate::ctx::Shared;
use crate::error::TcpError;
use crate::input::{checksum_ok, segment_arrives, Verdict};
use crate::output::{send_reset_reply, write_xmit, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::tcb::Tcb;
use crate::tw::tw_input;
use crate::wire::{TcpRepr, ECN_CE, ECN_MASK, IPPROTO_TCP};
use ustack_ipv4::checksum;

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
        self.sh.tick(now);
        let data = seg.data();
        // The header is parsed first and the checksum verified on the way in: header
        // prediction sums the payload right after copying it into the receive buffer
        // (one pass over the packet instead of two); every other path verifies it before
        // looking at the segment. A device that vouches for the checksum (TUN offload:
        // kernel-made) skips the check.
        let (repr, range) = match TcpRepr::parse(data, meta.src, meta.dst, false) {
            Ok(r) => r,
            Err(_) => {
                self.sh.stats.in_errs += 1;
                return;
            }
        };
        let payload = data.get(range.clone()).unwrap_or(&[]);
        let mut hdr_sum = (!seg.csum_unnecessary()).then(|| {
            let len = data.len().min(u16::MAX as usize) as u16;
            checksum::sum(
                data.get(..range.start).unwrap_or_default(),
                checksum::pseudo_header_sum(meta.src, meta.dst, IPPROTO_TCP, len),
            )
        });
        // RFC 1122 4.2.3.10: nothing to or from a broadcast or multicast address (a
        // subnet's broadcast address included, which IP recognises).
        if meta.multi
            || meta.dst.is_broadcast()
            || meta.dst.is_multicast()
            || meta.src.is_broadcast()
        {
            return;
        }
        let local = SocketAddrV4::new(meta.dst, repr.dst_port);
        let remote = SocketAddrV4::new(meta.src, repr.src_port);
        if let Some(id) = self.hash.lookup_established(&(local, remote)) {
            match self.socks.get_mut(id) {
                // Bound to another device (SO_BINDTODEVICE): not this connection's
                // segment (Linux `inet_match` checks the bound device too).
                Some(Sock::Conn(tcb)) if tcb.opts.ip.oif.is_some_and(|d| d != meta.dev) => {}
                Some(Sock::Conn(tcb)) => {
                    let ce = meta.tos & ECN_MASK == ECN_CE;
                    match segment_arrives(tcb, &mut self.sh, now, &repr, payload, hdr_sum, ce, out)
                    {
                        Verdict::Keep => {
                            if tcb.orphan && tcb.state == TcpState::TimeWait {
                                self.compact_time_wait(id);
                            }
                            return;
                        }
                        Verdict::BadChecksum => {
                            self.sh.stats.in_errs += 1;
                            self.sh.stats.in_csum_errors += 1;
                            return;
                        }
                        Verdict::Closed => {
                            self.conn_closed(id);
                            return;
                        }
                        Verdict::TwSyn => {
                            // Checked by segment_arrives.
                            hdr_sum = None;
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
                Some(Sock::Tw(tw)) => {
                    if !checksum_ok(hdr_sum, payload) {
                        self.sh.stats.in_errs += 1;
                        self.sh.stats.in_csum_errors += 1;
                        return;
                    }
                    match tw_input(tw, id, &mut self.sh, now, &repr, payload.len(), out) {
                        Verdict::Keep | Verdict::BadChecksum => return,
                        Verdict::Closed => {
                            self.free(id);
                            return;
                        }
                        Verdict::TwSyn => {
                            // Kill the TIME_WAIT socket; the SYN goes to the listener.
                            hdr_sum = None;
                            self.free(id);
                        }
                    }
                }
                Some(Sock::Req(_)) => {
                    if !checksum_ok(hdr_sum, payload) {
                        self.sh.stats.in_errs += 1;
                        self.sh.stats.in_csum_errors += 1;
                        return;
                    }
                    self.req_rcv(now, id, &repr, payload, route_mtu, out);
                    return;
                }
                _ => {}
            }
        }
        if !checksum_ok(hdr_sum, payload) {
            self.sh.stats.in_errs += 1;
            self.sh.stats.in_csum_errors += 1;
            return;
        }
        if let Some(lid) = self.hash.lookup_listener(local, remote, meta.dev) {
            self.listen_rcv(now, lid, local, remote, &repr, payload, route_mtu, out);
            return;
        }
        // No socket: RST (RFC 9293 3.10.7.1), never for an RST.
        send_reset_reply(&mut self.sh, local, remote, &repr, payload.len(), out);
    }

    /// An ICMP error quoting one of our segments (Linux `tcp_v4_err`): PMTU discovery
    /// (RFC 1191, RFC 5927 sequence validation), hard errors abort a connect in progress,
    /// soft errors are recorded (RFC 1122 4.2.3.9).
    ///
    /// Returns `Some(mtu)` when the error is a "fragmentation needed" that passed
    /// validation (it quotes a sequence number in flight on a live connection): the caller
    /// then records `mtu` as the path MTU towards `err.orig_dst` in its IP layer (Linux
    /// `tcp_v4_mtu_reduced` -> `inet_csk_update_pmtu`). `None` for everything else; IP
    /// must not apply an unvalidated MTU, or one forged ICMP stalls every connection to
    /// that host.
    pub fn err_input(
        &mut self,
        now: Instant,
        err: &IcmpError,
        out: &mut Vec<TcpSegmentOut>,
    ) -> Option<usize> {
        let q = &err.quoted;
        use crate::wire::be_bytes;
        let (Some(sp), Some(dp), Some(sq)) = (be_bytes(q, 0), be_bytes(q, 2), be_bytes(q, 4))
        else {
            return None;
        };
        let local = SocketAddrV4::new(err.orig_src, u16::from_be_bytes(sp));
        let remote = SocketAddrV4::new(err.orig_dst, u16::from_be_bytes(dp));
        let seq = SeqNum(u32::from_be_bytes(sq));
        let id = self.hash.lookup_established(&(local, remote))?;
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return None;
        };
        if tcb.state == TcpState::TimeWait {
            return None;
        }
        // RFC 5927 section 4.1: the quoted sequence must be in flight.
        if !(seq.ge(tcb.snd_una) && seq.lt(tcb.snd_nxt.max(tcb.snd_una + 1))) {
            self.sh.stats.out_of_window_icmps += 1;
            return None;
        }
        match err.kind {
            IcmpErrorKind::FragmentationNeeded { mtu } => {
                let mtu = mtu as usize;
                if mtu < 68 {
                    return None;
                }
                mtu_reduced(tcb, &mut self.sh, now, mtu, out);
                return Some(mtu);
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
        None
    }

    /// IP output refused a segment of ours (DF set) as larger than the MTU of its route,
    /// `mtu`, because the path MTU dropped since the connection sized its segments (from
    /// any source). Shrinks the MSS of the connection `local` -> `remote` to fit and
    /// resends what is in flight at the smaller size, instead of stalling (Linux re-reads
    /// `dst_mtu` in `tcp_current_mss` on every write). For a connection with transmit
    /// offload ([`TcpLayer::set_offload`]) the refusal means the route's device no longer
    /// takes super-segments or partial checksums: offload goes off and what is in flight
    /// is resent as whole segments. Returns true if the connection shrank its MSS or
    /// dropped its offload (segments may have been queued in `out`).
    pub fn output_too_big(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) -> bool {
        let Some(id) = self.hash.lookup_established(&(local, remote)) else {
            return false;
        };
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return false;
        };
        if tcb.state == TcpState::TimeWait {
            return false;
        }
        if tcb.tso_max > 0 {
            // IP refused a super-segment or a partial checksum: the route no longer
            // leads to a device that finishes them. Build whole segments from now on and
            // resend what is in flight that way.
            tcb.tso_max = 0;
            resend_in_flight(tcb, &mut self.sh, now, out);
            if mtu < 68 || mtu >= tcb.route_mtu {
                return true;
            }
        }
        if mtu < 68 || mtu >= tcb.route_mtu {
            return false;
        }
        mtu_reduced(tcb, &mut self.sh, now, mtu, out);
        true
    }

    /// The path MTU towards `dst` is now `mtu` (after the caller's IP layer accepted a
    /// validated "fragmentation needed"; Linux: the route's PMTU is shared by every socket
    /// to `dst`, and `tcp_current_mss` notices `dst_mtu` changed on the next write). Every
    /// live connection to `dst` sized for more shrinks its MSS and resends what is in
    /// flight at the smaller size, so none of them keeps building segments IP refuses.
    pub fn pmtu_changed(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let sh = &mut self.sh;
        for sock in self.socks.values_mut() {
            if let Sock::Conn(tcb) = sock {
                if *tcb.remote.ip() == dst
                    && !matches!(tcb.state, TcpState::TimeWait | TcpState::Closed)
                {
                    mtu_reduced(tcb, sh, now, mtu, out);
                }
            }
        }
    }
}

/// The path MTU of `tcb` dropped to `mtu` (Linux `tcp_v4_mtu_reduced`): re-sync the MSS
/// (`tcp_sync_mss`) and, if it shrank, resend what is in flight at the smaller size
/// (`tcp_simple_retransmit`).
fn mtu_reduced(
    tcb: &mut Tcb,
    sh: &mut Shared,
    now: Instant,
    mtu: usize,
    out: &mut Vec<TcpSegmentOut>,
) {
    if mtu < 68 || mtu >= tcb.route_mtu {
        return;
    }
    tcb.route_mtu = mtu;
    let old = tcb.mss;
    set_mss(tcb);
    if tcb.mss < old {
        resend_in_flight(tcb, sh, now, out);
    }
}

/// Resends everything in flight (Linux `tcp_simple_retransmit`): after the MSS shrank,
/// or after the device stopped taking super-segments.
fn resend_in_flight(tcb: &mut Tcb, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
    tcb.rtx_next = tcb.snd_una;
    tcb.lost_end = tcb.snd_nxt;
    tcb.rtx_lost.clear();
    tcb.high_seq = tcb.snd_nxt;
    if tcb.ca == crate::tcb::CaState::Open || tcb.ca == crate::tcb::CaState::Disorder {
        tcb.ca = crate::tcb::CaState::Loss;
        if tcb.ccs.cwnd < 2 {
            tcb.ccs.cwnd = 2;
        }
    }
    write_xmit(tcb, sh, now, out);
    tcb.sync_mem(sh);
}
