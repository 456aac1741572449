//! Per-connection information (Linux `struct tcp_info`, `TCP_INFO`).

use std::net::SocketAddrV4;
use std::time::Duration;

use crate::sock::SockId;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::tcb::CaState;

/// A snapshot like Linux `TCP_INFO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Connection state.
    pub state: TcpState,
    /// Congestion avoidance state name ("open", "disorder", "cwr" while an ECN-Echo's
    /// window reduction is under way, "recovery", "loss").
    pub ca_state: &'static str,
    /// Current retransmission timeout (with backoff).
    pub rto: Duration,
    /// Smoothed RTT (zero before the first sample).
    pub rtt: Duration,
    /// RTT variance.
    pub rttvar: Duration,
    /// Congestion window in segments.
    pub snd_cwnd: u32,
    /// Slow start threshold in segments.
    pub snd_ssthresh: u32,
    /// Sending MSS.
    pub snd_mss: u32,
    /// MSS we advertised.
    pub rcv_mss: u32,
    /// Bytes sent and not acknowledged.
    pub unacked: u32,
    /// SACKed bytes in the scoreboard.
    pub sacked: u32,
    /// Consecutive retransmission timeouts (Linux `icsk_retransmits`).
    pub retransmits: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Retransmission timeouts over the connection's life.
    pub rto_events: u32,
    /// Fast recovery episodes.
    pub recoveries: u32,
    /// Reordering the path has shown, in segments: the fast-retransmit threshold
    /// (`tcpi_reordering`; 3 until reordering is seen).
    pub reordering: u32,
    /// ECN (RFC 3168) was negotiated (Linux `TCPI_OPT_ECN`).
    pub ecn: bool,
    /// Payload bytes sent (first transmissions).
    pub bytes_sent: u64,
    /// Payload bytes retransmitted.
    pub bytes_retrans: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Payload bytes received in order.
    pub bytes_received: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Peer's window in bytes (scaled).
    pub snd_wnd: u32,
    /// Window we last advertised, in bytes.
    pub rcv_wnd: u32,
    /// Receive buffer bound (grows with autotuning).
    pub rcv_space: u32,
    /// Send buffer bound (grows with the congestion window).
    pub snd_buf: u32,
    /// Window scale we send with / they send with (None when not negotiated).
    pub wscale: Option<(u8, u8)>,
    /// SACK negotiated.
    pub sack: bool,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// Congestion control algorithm name.
    pub congestion: &'static str,
    /// Pacing rate in bytes per second (Linux `tcpi_pacing_rate`); 0 while new data is
    /// not paced (neither `TcpConfig::pacing` nor `SO_MAX_PACING_RATE`, or no RTT sample
    /// and no maximum rate yet).
    pub pacing_rate: u64,
}

impl TcpLayer {
    /// `TCP_INFO` for a connection; `None` for stale ids and non-connections.
    pub fn info(&self, id: SockId) -> Option<TcpInfo> {
        let Some(Sock::Conn(t)) = self.socks.get(id) else {
            return None;
        };
        Some(TcpInfo {
            state: t.state,
            ca_state: match t.ca {
                CaState::Open | CaState::Disorder if t.cwr_until.is_some() => "cwr",
                CaState::Open => "open",
                CaState::Disorder => "disorder",
                CaState::Recovery => "recovery",
                CaState::Loss => "loss",
            },
            rto: t.rtt.rto(),
            rtt: t.rtt.srtt().unwrap_or_default(),
            rttvar: t.rtt.rttvar(),
            snd_cwnd: t.ccs.cwnd,
            snd_ssthresh: t.ccs.ssthresh,
            snd_mss: t.mss,
            rcv_mss: t.advmss as u32,
            unacked: t.snd_nxt.since(t.snd_una),
            sacked: t.sacked_bytes,
            retransmits: t.retransmits,
            total_retrans: t.total_retrans,
            rto_events: t.rto_events,
            recoveries: t.recoveries,
            reordering: t.reordering,
            ecn: t.ecn_ok,
            bytes_sent: t.bytes_sent,
            bytes_retrans: t.bytes_retrans,
            bytes_acked: t.bytes_acked,
            bytes_received: t.bytes_received,
            segs_in: t.segs_in,
            segs_out: t.segs_out,
            snd_wnd: t.snd_wnd,
            rcv_wnd: t.rcv_wnd,
            rcv_space: t.rcvbuf_cap as u32,
            snd_buf: t.sndbuf_cap as u32,
            wscale: t.ws_ok.then_some((t.snd_wscale, t.rcv_wscale)),
            sack: t.sack_ok,
            timestamps: t.ts_ok,
            congestion: t.cc.name(),
            pacing_rate: if crate::output::paced_conn(t, &self.sh) {
                crate::output::pacing_rate(t).unwrap_or(0)
            } else {
                0
            },
        })
    }
}

/// One row of the socket table (Linux `ss -tan`): a listener, a half-open passive
/// connection, a connection in any state, or a TIME-WAIT socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocketEntry {
    /// Connection state (`Listen` for a listener).
    pub state: TcpState,
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address; `None` for a listener.
    pub remote: Option<SocketAddrV4>,
    /// A listener: connections waiting for `accept`. Otherwise: bytes received and not
    /// yet read (`ss` Recv-Q).
    pub recv_q: usize,
    /// A listener: its backlog. Otherwise: bytes written and not yet acknowledged
    /// (`ss` Send-Q).
    pub send_q: usize,
    /// Closed by the application and finishing on its own (TIME-WAIT sockets included).
    pub orphan: bool,
}

impl TcpLayer {
    /// A snapshot of every listener and connection the layer holds (a full scan, for
    /// diagnostics; `ss -tan`), in no particular order. Sockets that are neither listening
    /// nor connected (fresh or only bound) are left out, as `ss` leaves them out.
    pub fn sockets(&self) -> Vec<TcpSocketEntry> {
        self.socks
            .values()
            .filter_map(|s| match s {
                Sock::Listen(l) => Some(TcpSocketEntry {
                    state: TcpState::Listen,
                    local: l.local,
                    remote: None,
                    recv_q: l.accept_q.len(),
                    send_q: l.backlog,
                    orphan: false,
                }),
                Sock::Req(r) => Some(TcpSocketEntry {
                    state: TcpState::SynReceived,
                    local: r.local,
                    remote: Some(r.remote),
                    recv_q: 0,
                    send_q: 0,
                    orphan: false,
                }),
                Sock::Conn(t) if t.state != TcpState::Closed => Some(TcpSocketEntry {
                    state: t.state,
                    local: t.local,
                    remote: Some(t.remote),
                    recv_q: t.rcv_buf.len(),
                    send_q: t.snd_buf.len(),
                    orphan: t.orphan,
                }),
                Sock::Tw(tw) => Some(TcpSocketEntry {
                    state: TcpState::TimeWait,
                    local: tw.local,
                    remote: Some(tw.remote),
                    recv_q: 0,
                    send_q: 0,
                    orphan: true,
                }),
                _ => None,
            })
            .collect()
    }
}
