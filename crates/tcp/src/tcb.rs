//! The socket kinds and the connection block (Linux: `struct tcp_sock`,
//! `struct request_sock`, `struct inet_connection_sock` accept queue).

use std::collections::{HashSet, VecDeque};

use crate::ring::ByteRing;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::cc::{CcAlgorithm, CcState, CongestionOps};
use crate::config::{KeepaliveCfg, TcpConfig};
use crate::ctx::Shared;
use crate::error::TcpError;
use crate::rtt::RttEstimator;
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::state::TcpState;
use ustack_ipv4::checksum;
use ustack_netdev::DevId;

/// Empty send and receive buffers of at most this capacity are kept rather than freed:
/// request/response traffic would otherwise allocate and free them for every message. An
/// idle connection that exchanged small messages holds at most twice this.
pub(crate) const SMALL_BUF_KEEP: usize = 256;

/// What the IP header of a socket's segments is sent with beyond the addresses (Linux: the
/// `inet_sock` fields `ip_queue_xmit` reads): `IP_TTL`, `IP_TOS` and the device the socket
/// is bound to (`SO_BINDTODEVICE`). Request and TIME-WAIT sockets keep a copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpOpts {
    /// `None`: the IP layer's default TTL.
    pub(crate) ttl: Option<u8>,
    pub(crate) tos: u8,
    /// Send through this device only and accept segments that arrived on it only.
    pub(crate) oif: Option<DevId>,
}

/// Per-socket options (Linux: the fields `setsockopt` writes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SockOpts {
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<KeepaliveCfg>,
    pub(crate) rcvbuf: usize,
    pub(crate) sndbuf: usize,
    pub(crate) rcvbuf_locked: bool,
    pub(crate) sndbuf_locked: bool,
    pub(crate) cc: CcAlgorithm,
    pub(crate) ip: IpOpts,
    pub(crate) linger: Option<Duration>,
    pub(crate) reuseaddr: bool,
    pub(crate) reuseport: bool,
    /// `SO_MAX_PACING_RATE` (bytes/s): set, the socket is paced whatever the stack's
    /// setting, at no more than this.
    pub(crate) max_pacing_rate: Option<std::num::NonZeroU64>,
}

impl SockOpts {
    pub(crate) fn from_config(cfg: &TcpConfig) -> Self {
        SockOpts {
            nodelay: cfg.nodelay,
            keepalive: None,
            rcvbuf: cfg.rmem.1,
            sndbuf: cfg.wmem.1,
            rcvbuf_locked: false,
            sndbuf_locked: false,
            cc: cfg.default_cc,
            ip: IpOpts::default(),
            linger: None,
            reuseaddr: false,
            reuseport: false,
            max_pacing_rate: None,
        }
    }
}

/// A socket that is neither listening nor connected (fresh, bound, or failed connect).
pub(crate) struct PlainSock {
    pub(crate) opts: SockOpts,
    pub(crate) local: Option<SocketAddrV4>,
    pub(crate) evt: bool,
}

/// A listening socket (Linux: `inet_connection_sock` in LISTEN with its queues).
pub(crate) struct Listener {
    pub(crate) opts: SockOpts,
    pub(crate) local: SocketAddrV4,
    pub(crate) backlog: usize,
    /// Request socks (SYN queue) of this listener (Linux `icsk_accept_queue.qlen`).
    pub(crate) syn_q: HashSet<SockId>,
    /// Established children waiting for accept (Linux `icsk_accept_queue.rskq_accept_head`).
    pub(crate) accept_q: VecDeque<SockId>,
    pub(crate) evt: bool,
}

/// Linux `struct request_sock` / `tcp_request_sock`: a half-open passive connection.
pub(crate) struct ReqSock {
    pub(crate) listener: SockId,
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    pub(crate) iss: SeqNum,
    pub(crate) irs: SeqNum,
    pub(crate) peer_mss: u16,
    pub(crate) advmss: u16,
    pub(crate) route_mtu: usize,
    pub(crate) snd_wscale: Option<u8>,
    pub(crate) rcv_wscale: u8,
    pub(crate) sack_ok: bool,
    /// The SYN asked for ECN and the stack accepts it (the SYN-ACK says so with ECE).
    pub(crate) ecn_ok: bool,
    pub(crate) ts_recent: Option<u32>,
    pub(crate) ts_offset: u32,
    pub(crate) retrans: u32,
    pub(crate) created: Instant,
    /// The listener's TTL, TOS and device.
    pub(crate) ip: IpOpts,
    /// Receive buffer inherited from the listener (the SYN-ACK window).
    pub(crate) rcvbuf: usize,
    /// Sent when the third ACK was dropped because the accept queue was full.
    pub(crate) acked: bool,
}

/// Linux `tcp_ca_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaState {
    /// Normal.
    Open,
    /// Dupacks or SACKs seen, not yet recovering.
    Disorder,
    /// Fast recovery (RFC 5681 / 6582 / 6675).
    Recovery,
    /// After an RTO.
    Loss,
}

/// What the retransmit timer is armed for (Linux `icsk_pending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RtxKind {
    Retrans,
    /// Zero-window probe.
    Probe,
    /// Tail loss probe (RFC 8985 section 7; Linux `ICSK_TIME_LOSS_PROBE`).
    Tlp,
    /// RACK's reordering timer (RFC 8985 section 6.2 step 5; Linux
    /// `ICSK_TIME_REO_TIMEOUT`).
    Reo,
}

/// Bytes of `[start, end)` that the sorted, disjoint `sacked` ranges from index `*j` on
/// do not cover. For ranges visited in ascending order `*j` only moves forward (past SACK
/// ranges ending at or below `start`), so a pass over many sorted ranges walks the
/// scoreboard once.
pub(crate) fn unsacked_from(
    sacked: &[(SeqNum, SeqNum)],
    j: &mut usize,
    start: SeqNum,
    end: SeqNum,
) -> u32 {
    if end.le(start) {
        return 0;
    }
    while sacked.get(*j).is_some_and(|&(_, r)| r.le(start)) {
        *j += 1;
    }
    let mut n = end.since(start);
    for &(l, r) in sacked.get(*j..).unwrap_or_default() {
        if l.ge(end) {
            break;
        }
        let (l, r) = (l.max(start), r.min(end));
        if r.gt(l) {
            n = n.saturating_sub(r.since(l));
        }
    }
    n
}

/// SACK blocks the receiver reports first, as a sequence number inside each, most recent
/// first (RFC 2018 section 4: the first block holds the segment that just arrived, the
/// others repeat the most recently reported blocks, so that each is reported in several
/// ACKs; Linux `selective_acks`). Four: as many blocks as an ACK without timestamps
/// carries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RecentOoo {
    seqs: [SeqNum; 4],
    len: u8,
}

impl RecentOoo {
    /// A segment arrived out of order at `seq`, into the block `[l, r)` (after merging):
    /// that block goes first, once.
    pub(crate) fn note(&mut self, seq: SeqNum, (l, r): (SeqNum, SeqNum)) {
        let mut kept = [seq; 4];
        let mut n = 1;
        let older = self.seqs.iter().take(self.len as usize);
        for (slot, &s) in kept
            .iter_mut()
            .skip(1)
            .zip(older.filter(|s| !(s.ge(l) && s.lt(r))))
        {
            *slot = s;
            n += 1;
        }
        self.seqs = kept;
        self.len = n;
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Most recent first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = SeqNum> + '_ {
        self.seqs.iter().take(self.len as usize).copied()
    }
}

/// The connection block (Linux `struct tcp_sock`).
pub(crate) struct Tcb {
    pub(crate) id: SockId,
    pub(crate) state: TcpState,
    pub(crate) opts: SockOpts,
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    /// The listener whose accept queue holds us (until accepted).
    pub(crate) listener: Option<SockId>,
    /// Holds a connection count in the bind bucket of `local.port()`.
    pub(crate) in_bhash: bool,
    pub(crate) hashed: bool,
    pub(crate) evt: bool,
    pub(crate) error: Option<TcpError>,
    pub(crate) soft_error: Option<TcpError>,
    pub(crate) orphan: bool,
    /// The application will write no more (FIN queued after the send buffer).
    pub(crate) shut_wr: bool,
    pub(crate) shut_rd: bool,
    pub(crate) write_blocked: bool,

    // --- send sequence space (RFC 9293 3.3.1)
    pub(crate) iss: SeqNum,
    pub(crate) snd_una: SeqNum,
    /// Highest sequence sent so far plus one (retransmissions do not move it back).
    pub(crate) snd_nxt: SeqNum,
    /// End of the last sub-MSS segment of new data sent (Linux `snd_sml`): Nagle holds a
    /// partial segment only while such a small segment is unacknowledged (Minshall's
    /// variant, Linux `tcp_minshall_check`).
    pub(crate) snd_sml: SeqNum,
    pub(crate) snd_wnd: u32,
    pub(crate) max_sndwnd: u32,
    pub(crate) snd_wl1: SeqNum,
    pub(crate) snd_wl2: SeqNum,
    /// Bytes from `snd_una` (or `snd_una + 1` before the SYN is acked): unacked then unsent.
    pub(crate) snd_buf: ByteRing,
    /// Sequence number of the first byte in `snd_buf`.
    pub(crate) snd_buf_seq: SeqNum,
    pub(crate) sndbuf_cap: usize,

    // --- receive sequence space
    pub(crate) irs: SeqNum,
    pub(crate) rcv_nxt: SeqNum,
    /// Window advertised in the last segment, from `rcv_wup`.
    pub(crate) rcv_wnd: u32,
    pub(crate) rcv_wup: SeqNum,
    pub(crate) rcv_buf: ByteRing,
    pub(crate) rcvbuf_cap: usize,
    /// Out-of-order segments, sorted by sequence, non-overlapping.
    pub(crate) ooo: Vec<(SeqNum, Vec<u8>)>,
    pub(crate) ooo_bytes: usize,
    pub(crate) ooo_fin: Option<SeqNum>,
    /// Where the latest out-of-order segments fell, one per block, most recent first:
    /// the SACK blocks to report first (RFC 2018 section 4).
    pub(crate) recent_ooo: RecentOoo,
    /// A D-SACK block to report in the next ACK (RFC 2883).
    pub(crate) dsack: Option<(SeqNum, SeqNum)>,
    pub(crate) fin_rcvd: bool,

    // --- negotiated options
    pub(crate) snd_wscale: u8,
    pub(crate) rcv_wscale: u8,
    pub(crate) ws_ok: bool,
    pub(crate) sack_ok: bool,
    pub(crate) ts_ok: bool,
    /// ECN (RFC 3168) negotiated.
    pub(crate) ecn_ok: bool,
    /// Receiver: a Congestion Experienced mark arrived; ECE goes on every segment until
    /// the peer's CWR (Linux `TCP_ECN_DEMAND_CWR`).
    pub(crate) ecn_demand_cwr: bool,
    /// Sender: the window was reduced for an ECE; the next new data carries CWR (Linux
    /// `TCP_ECN_QUEUE_CWR`).
    pub(crate) ecn_queue_cwr: bool,
    /// An ACK proved that the peer receives our segments; the next segment sent tells IP
    /// to confirm the neighbour (Linux `sk_dst_pending_confirm`).
    pub(crate) dst_confirm: bool,
    /// Sender: no further reduction for ECE until SND.UNA passes this (one per window,
    /// RFC 3168 section 6.1.2).
    pub(crate) ecn_cwr_high: Option<SeqNum>,
    /// Sender: an ECE's window reduction is under way, by PRR, until SND.UNA passes this
    /// (Linux `TCP_CA_CWR` with `high_seq`).
    pub(crate) cwr_until: Option<SeqNum>,
    pub(crate) ts_recent: u32,
    pub(crate) ts_recent_stamp: Option<Instant>,
    pub(crate) ts_offset: u32,
    pub(crate) peer_mss: u16,
    pub(crate) advmss: u16,
    pub(crate) route_mtu: usize,
    /// Largest TCP super-segment (IPv4 packet) the route's device takes and finishes
    /// (TSO and checksum offload, `NetDevice::tso_max`); 0: none, every segment is built
    /// whole, checksum included. Set by [`crate::TcpLayer::set_offload`].
    pub(crate) tso_max: usize,
    /// Payload bytes per full-sized segment (Linux `mss_cache`; excludes the TS option).
    pub(crate) mss: u32,

    // --- RTT and retransmission
    pub(crate) rtt: RttEstimator,
    /// Karn timing of one segment when timestamps are off: (end seq, sent at).
    pub(crate) rtt_seq: Option<(SeqNum, Instant)>,
    pub(crate) retransmits: u32,
    pub(crate) total_retrans: u32,
    pub(crate) retrans_stamp: Option<Instant>,
    /// Pacing: when the next new data may leave (Linux `tcp_wstamp_ns`); `None` while
    /// nothing has been paced.
    pub(crate) pace_at: Option<Instant>,
    pub(crate) rtx_kind: RtxKind,
    pub(crate) probes_out: u32,
    pub(crate) rtx_armed: bool,
    /// When the retransmission / probe timer is due (the timer wheel may hold an earlier
    /// instant; see `Shared::set_timer_lazy`).
    pub(crate) rtx_deadline: Instant,

    // --- congestion control and recovery
    pub(crate) cc: Box<dyn CongestionOps + Send>,
    pub(crate) ccs: CcState,
    pub(crate) ca: CaState,
    pub(crate) high_seq: SeqNum,
    /// Next sequence to retransmit during Recovery/Loss.
    pub(crate) rtx_next: SeqNum,
    /// Holes below this (not SACKed) are considered lost.
    pub(crate) lost_end: SeqNum,
    /// Retransmitted ranges RACK found lost again, in sequence order: sent again before
    /// anything else; cleared when the Recovery / Loss episode ends.
    pub(crate) rtx_lost: Vec<(SeqNum, SeqNum)>,
    /// RACK time-based loss detection (with SACK).
    pub(crate) rack: crate::rack::Rack,
    pub(crate) dupacks: u32,
    /// NewReno emulation of SACKed segments (Linux `tcp_add_reno_sack`), in bytes.
    pub(crate) reno_sacked: u32,
    /// Proportional Rate Reduction (RFC 6937) during Recovery: segments delivered to the
    /// receiver (cumulatively or selectively acknowledged) and segments sent since
    /// Recovery began (Linux `prr_delivered`, `prr_out`).
    pub(crate) prr_delivered: u32,
    pub(crate) prr_out: u32,
    /// A tail loss probe is out: SND.NXT when it was sent (RFC 8985 `TLP.end_seq`, Linux
    /// `tlp_high_seq`), and whether it was a retransmission.
    pub(crate) tlp_high_seq: Option<SeqNum>,
    pub(crate) tlp_retrans: bool,
    /// How far (in segments) the path has been seen to reorder (Linux `tp->reordering`;
    /// starts at 3): the duplicate-ACK threshold without SACK; with SACK, the SACKed
    /// segments that close RACK's reordering window while no reordering has been seen.
    pub(crate) reordering: u32,
    /// SACK scoreboard above `snd_una`: sorted, non-overlapping `[l, r)`.
    pub(crate) sacked: Vec<(SeqNum, SeqNum)>,
    pub(crate) sacked_bytes: u32,
    /// Undo information (Linux `undo_marker`/`prior_ssthresh`): (cwnd, ssthresh, TSval of
    /// the first retransmission).
    pub(crate) undo: Option<(u32, u32, u32)>,

    // --- delayed ACK (Linux `icsk_ack`)
    pub(crate) ack_pending: bool,
    pub(crate) quickack: u32,
    pub(crate) rcv_segs_unacked: u32,
    pub(crate) ato: Duration,
    pub(crate) delack_armed: bool,
    /// When the delayed ACK is due (the timer wheel may hold an earlier instant; see
    /// `Shared::set_timer_lazy`).
    pub(crate) delack_deadline: Instant,
    /// Listed in `Shared::ack_owed`: an immediate ACK goes out at the end of the batch.
    pub(crate) ack_owed: bool,

    // --- keepalive / liveness
    pub(crate) last_rcv: Instant,
    /// When the last ACK answering an out-of-window or PAWS-rejected segment went out
    /// (Linux `last_oow_ack_time`; such ACKs are rate limited per connection).
    pub(crate) last_oow_ack: Option<Instant>,
    pub(crate) ka_probes: u32,

    // --- TCP_INFO counters
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_acked: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_retrans: u64,
    pub(crate) segs_in: u64,
    pub(crate) segs_out: u64,
    pub(crate) rto_events: u32,
    pub(crate) recoveries: u32,

    // --- receive buffer autotuning (Linux `rcvq_space`)
    pub(crate) rcvq_copied: usize,
    pub(crate) rcvq_time: Instant,
    /// Bytes charged to `Shared::mem_used`.
    pub(crate) mem: usize,
}

/// Window scale we offer for a receive buffer bound (RFC 7323 section 2.3; max 14).
pub(crate) fn wscale_for(max_rcvbuf: usize) -> u8 {
    let mut s = 0u8;
    while s < 14 && (65535usize << s) < max_rcvbuf {
        s += 1;
    }
    s
}

/// Default peer MSS when the SYN carries none (RFC 9293 section 3.7.1).
pub(crate) const DEFAULT_MSS: u16 = 536;

impl Tcb {
    /// A fresh connection block; the caller fills in sequence numbers and options.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: SockId,
        opts: SockOpts,
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        route_mtu: usize,
        now: Instant,
    ) -> Tcb {
        let advmss = route_mtu.saturating_sub(40).clamp(88, 65495) as u16;
        let mut ccs = CcState::new(advmss as u32, cfg.initial_cwnd);
        let mut cc = crate::cc::new_cc_with(opts.cc, cfg.hystart);
        cc.init(&mut ccs);
        Tcb {
            id,
            state: TcpState::Closed,
            opts,
            local,
            remote,
            listener: None,
            in_bhash: false,
            hashed: false,
            evt: false,
            error: None,
            soft_error: None,
            orphan: false,
            shut_wr: false,
            shut_rd: false,
            write_blocked: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_sml: iss,
            snd_wnd: 0,
            max_sndwnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            snd_buf: ByteRing::new(),
            snd_buf_seq: iss + 1,
            sndbuf_cap: opts.sndbuf,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_wnd: 0,
            rcv_wup: SeqNum(0),
            rcv_buf: ByteRing::new(),
            rcvbuf_cap: opts.rcvbuf,
            ooo: Vec::new(),
            ooo_bytes: 0,
            ooo_fin: None,
            recent_ooo: RecentOoo::default(),
            dsack: None,
            fin_rcvd: false,
            snd_wscale: 0,
            rcv_wscale: 0,
            ws_ok: false,
            sack_ok: false,
            ecn_ok: false,
            ecn_demand_cwr: false,
            ecn_queue_cwr: false,
            dst_confirm: false,
            ecn_cwr_high: None,
            cwr_until: None,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_stamp: None,
            ts_offset: 0,
            peer_mss: DEFAULT_MSS,
            advmss,
            route_mtu,
            tso_max: 0,
            mss: DEFAULT_MSS as u32,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_seq: None,
            retransmits: 0,
            total_retrans: 0,
            retrans_stamp: None,
            pace_at: None,
            rtx_kind: RtxKind::Retrans,
            probes_out: 0,
            rtx_armed: false,
            rtx_deadline: now,
            cc,
            ccs,
            ca: CaState::Open,
            high_seq: iss,
            rtx_next: iss,
            lost_end: iss,
            rtx_lost: Vec::new(),
            rack: crate::rack::Rack::new(iss),
            dupacks: 0,
            reno_sacked: 0,
            prr_delivered: 0,
            prr_out: 0,
            tlp_high_seq: None,
            tlp_retrans: false,
            reordering: crate::recovery::REORDERING_INIT,
            sacked: Vec::new(),
            sacked_bytes: 0,
            undo: None,
            ack_pending: false,
            quickack: 16,
            rcv_segs_unacked: 0,
            ato: cfg.delack_min,
            delack_armed: false,
            delack_deadline: now,
            ack_owed: false,
            last_rcv: now,
            last_oow_ack: None,
            ka_probes: 0,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            bytes_retrans: 0,
            segs_in: 0,
            segs_out: 0,
            rto_events: 0,
            recoveries: 0,
            rcvq_copied: 0,
            rcvq_time: now,
            mem: 0,
        }
    }

    /// Sequence number of the first byte in `snd_buf`.
    #[inline]
    pub(crate) fn buf_seq(&self) -> SeqNum {
        self.snd_buf_seq
    }

    /// Sequence number just past the last byte queued (where a FIN goes).
    #[inline]
    pub(crate) fn write_seq(&self) -> SeqNum {
        self.buf_seq() + self.snd_buf.len() as u32
    }

    /// True once our FIN has been sent.
    pub(crate) fn fin_sent(&self) -> bool {
        self.shut_wr && self.snd_nxt.gt(self.write_seq())
    }

    /// True once our FIN has been acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.shut_wr && self.snd_una.gt(self.write_seq())
    }

    /// Bytes sent and not yet acknowledged (Linux `tcp_packets_in_flight`, in bytes,
    /// with SACKed and lost-not-retransmitted bytes taken out as RFC 6675 `pipe`).
    pub(crate) fn in_flight(&self) -> u32 {
        let out = self.snd_nxt.since(self.snd_una);
        let mut pipe = out.saturating_sub(self.sacked_bytes);
        pipe = pipe.saturating_sub(self.reno_sacked);
        if matches!(self.ca, CaState::Recovery | CaState::Loss) {
            pipe = pipe.saturating_sub(self.lost_pending());
        }
        pipe
    }

    /// The out-of-order queue's contiguous blocks `[l, r)`, in sequence order.
    pub(crate) fn ooo_blocks(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let mut it = self.ooo.iter().peekable();
        std::iter::from_fn(move || {
            let (s, d) = it.next()?;
            let mut e = *s + d.len() as u32;
            while let Some((s2, d2)) = it.next_if(|(s2, _)| *s2 == e) {
                e = *s2 + d2.len() as u32;
            }
            Some((*s, e))
        })
    }

    /// The out-of-order block holding `seq`, if any.
    pub(crate) fn ooo_block_containing(&self, seq: SeqNum) -> Option<(SeqNum, SeqNum)> {
        self.ooo_blocks()
            .take_while(|(l, _)| l.le(seq))
            .find(|(_, r)| seq.lt(*r))
    }

    /// Retransmitted data may still be on its way: the retransmission cursor is above
    /// SND.UNA (Linux `tcp_any_retrans_done`).
    pub(crate) fn retrans_out(&self) -> bool {
        self.rtx_next.gt(self.snd_una)
    }

    /// Bytes marked lost and not yet retransmitted, SACKed bytes excepted: those of
    /// retransmissions found lost again (all below `rtx_next`), and those in
    /// `[rtx_next, lost_end)`.
    pub(crate) fn lost_pending(&self) -> u32 {
        let start = self.rtx_next.max(self.snd_una);
        let mut j = 0;
        let mut n = 0;
        for &(l, r) in &self.rtx_lost {
            n += unsacked_from(&self.sacked, &mut j, l.max(self.snd_una), r.min(start));
        }
        n + unsacked_from(&self.sacked, &mut j, start, self.lost_end.min(self.snd_nxt))
    }

    /// Congestion window in bytes.
    pub(crate) fn cwnd_bytes(&self) -> u32 {
        self.ccs.cwnd.saturating_mul(self.mss.max(1))
    }

    /// Unused receive space: what we could advertise now.
    pub(crate) fn rcv_space(&self) -> u32 {
        self.rcvbuf_cap.saturating_sub(self.rcv_buf.len()) as u32
    }

    /// Window still open from the last advertisement (Linux `tcp_receive_window`).
    pub(crate) fn rcv_wnd_now(&self) -> u32 {
        let right = self.rcv_wup + self.rcv_wnd;
        if right.gt(self.rcv_nxt) {
            right.since(self.rcv_nxt)
        } else {
            0
        }
    }

    /// Linux `__tcp_select_window` + `tcp_select_window`: the window to advertise; never
    /// shrinks the right edge (RFC 9293 3.8.6.2.2) and avoids advertising tiny increases
    /// (receiver SWS avoidance, RFC 1122 4.2.3.3). Under memory pressure the window
    /// does not grow beyond 4 MSS (Linux `tcp_adjust_rcv_ssthresh`); an edge already
    /// promised is kept. Returns the value for the header.
    pub(crate) fn select_window(&mut self, pressure: bool) -> u16 {
        let cur = self.rcv_wnd_now();
        let max = 65535u32 << self.rcv_wscale;
        let mut free = self.rcv_space().min(max);
        if pressure {
            free = free.min((self.advmss as u32).saturating_mul(4));
        }
        let mss = self.mss.max(1);
        // Linux keeps the announced size while free space stays within one MSS of it,
        // so consecutive ACKs carry the same window (which keeps header prediction
        // working), and never announces less than an MSS (receiver SWS avoidance).
        let thresh = mss.min(self.rcvbuf_cap as u32 / 2).max(1);
        let mut new = self.rcv_wnd;
        if free < thresh {
            new = 0;
        } else if new + thresh <= free || new > free {
            new = if free >= mss { free / mss * mss } else { free };
        }
        new = new.max(cur);
        // Round down to the scale granularity (never offering space we lack), except
        // that an edge already promised is kept (Linux `__tcp_select_window`).
        let gran = 1u32 << self.rcv_wscale;
        let mut field = new >> self.rcv_wscale;
        if (field << self.rcv_wscale) < cur {
            field = cur.div_ceil(gran);
        }
        let field = field.min(65535);
        self.rcv_wnd = (field << self.rcv_wscale).max(cur);
        self.rcv_wup = self.rcv_nxt;
        field as u16
    }

    /// Keeps `Shared::mem_used` in step with this connection's buffers.
    pub(crate) fn sync_mem(&mut self, sh: &mut Shared) {
        let now = self.snd_buf.len() + self.rcv_buf.len() + self.ooo_bytes;
        if now > self.mem {
            sh.mem_charge(now - self.mem);
        } else if now < self.mem {
            sh.mem_uncharge(self.mem - now);
        }
        self.mem = now;
    }

    /// Releases buffer memory that is no longer needed (idle connections hold little).
    /// Empty buffers of up to [`SMALL_BUF_KEEP`] bytes stay.
    pub(crate) fn shrink_buffers(&mut self) {
        if self.snd_buf.is_empty() && self.snd_buf.capacity() > SMALL_BUF_KEEP {
            self.snd_buf = ByteRing::new();
        }
        if self.rcv_buf.is_empty() && self.rcv_buf.capacity() > SMALL_BUF_KEEP {
            self.rcv_buf = ByteRing::new();
        }
        if self.ooo.is_empty() && self.ooo.capacity() > 0 {
            self.ooo = Vec::new();
        }
    }

    /// Copies `dst.len()` bytes of the send buffer starting `off` bytes in, into `dst`
    /// (no checksum: the device completes it).
    pub(crate) fn copy_snd(&self, off: usize, dst: &mut [u8]) {
        let (a, b) = self.snd_buf.as_slices();
        let len = dst.len();
        let mut done = 0;
        if off < a.len() {
            let n = (a.len() - off).min(len);
            if let (Some(d), Some(s)) = (dst.get_mut(..n), a.get(off..off + n)) {
                d.copy_from_slice(s);
            }
            done = n;
        }
        if done < len {
            let boff = (off + done).saturating_sub(a.len());
            if let (Some(d), Some(s)) = (dst.get_mut(done..), b.get(boff..boff + (len - done))) {
                d.copy_from_slice(s);
            }
        }
    }

    /// Copies `dst.len()` bytes of the send buffer starting `off` bytes in, into `dst`,
    /// and returns their unfolded one's-complement sum (`checksum::sum`), computed in the
    /// same pass (Linux: `csum_partial_copy_nocheck` in `tcp_sendmsg`). Every byte of
    /// `dst` is written.
    pub(crate) fn copy_snd_sum(&self, off: usize, dst: &mut [u8]) -> u64 {
        let (a, b) = self.snd_buf.as_slices();
        let len = dst.len();
        let mut acc = 0u64;
        let mut done = 0;
        if off < a.len() {
            let n = (a.len() - off).min(len);
            if let (Some(d), Some(s)) = (dst.get_mut(..n), a.get(off..off + n)) {
                acc = checksum::copy_sum(s, d, 0);
            }
            done = n;
        }
        if done < len {
            let boff = (off + done).saturating_sub(a.len());
            let n = len - done;
            if let (Some(d), Some(s)) = (dst.get_mut(done..), b.get(boff..boff + n)) {
                let part = checksum::copy_sum(s, d, 0);
                // The second piece starts `done` bytes into the payload: at an odd
                // offset its 16-bit words pair the other way round.
                acc = if done % 2 == 0 {
                    acc + part
                } else {
                    checksum::add_at_odd_offset(acc, part)
                };
            }
        }
        acc
    }
}

#[cfg(test)]
impl Tcb {
    /// A connection block for unit tests: 10.0.0.1:1 to 10.0.0.2:2, the default
    /// configuration, MTU 1500, initial send sequence `iss`.
    pub(crate) fn for_test(iss: SeqNum) -> Tcb {
        let cfg = TcpConfig::default();
        Tcb::new(
            SockId::from_u64(1),
            SockOpts::from_config(&cfg),
            &cfg,
            SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1),
            SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 2),
            iss,
            1500,
            Instant::now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_checksum_sum(data: &[u8]) -> u16 {
        let mut acc = 0u64;
        let mut c = data.chunks_exact(2);
        for w in &mut c {
            acc += u16::from_be_bytes([w[0], w[1]]) as u64;
        }
        if let [b] = c.remainder() {
            acc += (*b as u64) << 8;
        }
        checksum::fold(acc)
    }

    #[test]
    fn send_sums_handle_a_wrapped_buffer_at_any_split() {
        let mut tcb = Tcb::for_test(SeqNum(1));
        let mut rng = ustack_netdev::rng::SplitMix64::new(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64() as u8;
        for front in [0usize, 1, 2, 7, 100, 1001] {
            // A ring buffer whose contents wrap around its end `front` bytes in.
            let data: Vec<u8> = (0..3000).map(|_| next()).collect();
            tcb.snd_buf = ByteRing::wrapped(4096, front, &data);
            let flat = data;
            for (off, len) in [(0, 3000), (0, 1), (1, 1460), (front.saturating_sub(1), 33)] {
                let mut dst = vec![0u8; len];
                let s = tcb.copy_snd_sum(off, &mut dst);
                assert_eq!(dst, &flat[off..off + len], "front {front} off {off}");
                assert_eq!(
                    checksum::fold(s),
                    reference_checksum_sum(&flat[off..off + len]),
                    "front {front} off {off} len {len}"
                );
            }
        }
    }
}
