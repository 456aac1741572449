//! Stack counters: `/proc/net/snmp` `Tcp:` and `netstat -s` `TcpExt:` (Linux: `TCP_MIB_*`,
//! `LINUX_MIB_*`). Each is incremented at the exact place the event happens.

/// A snapshot of the TCP counters. Field names are the Linux MIB names in snake case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Tcp: ActiveOpens — transitions CLOSED -> SYN_SENT.
    pub active_opens: u64,
    /// Tcp: PassiveOpens — transitions LISTEN -> SYN_RECV (request socks created).
    pub passive_opens: u64,
    /// Tcp: AttemptFails — SYN_SENT/SYN_RECV -> CLOSED (or SYN_RECV -> LISTEN).
    pub attempt_fails: u64,
    /// Tcp: EstabResets — ESTABLISHED/CLOSE_WAIT -> CLOSED by RST.
    pub estab_resets: u64,
    /// Tcp: CurrEstab — connections now in ESTABLISHED or CLOSE_WAIT (a gauge).
    pub curr_estab: u64,
    /// Tcp: InSegs — segments received, including those in error.
    pub in_segs: u64,
    /// Tcp: OutSegs — segments sent, excluding retransmissions.
    pub out_segs: u64,
    /// Tcp: RetransSegs — segments retransmitted.
    pub retrans_segs: u64,
    /// Tcp: InErrs — segments received in error (bad checksum, malformed).
    pub in_errs: u64,
    /// Tcp: OutRsts — segments sent with RST.
    pub out_rsts: u64,
    /// Tcp: InCsumErrors — segments with a bad checksum.
    pub in_csum_errors: u64,
    /// TcpExt: ListenOverflows — accept queue full when a connection was to be queued.
    pub listen_overflows: u64,
    /// TcpExt: ListenDrops — segments to a listener dropped for any reason.
    pub listen_drops: u64,
    /// TcpExt: SyncookiesSent.
    pub syncookies_sent: u64,
    /// TcpExt: SyncookiesRecv — valid cookies received.
    pub syncookies_recv: u64,
    /// TcpExt: SyncookiesFailed — invalid cookies received.
    pub syncookies_failed: u64,
    /// TcpExt: TCPHPHits — in-order data segments handled by the fast path.
    pub tcp_hp_hits: u64,
    /// TcpExt: TCPHPAcks — pure ACKs handled by the fast path.
    pub tcp_hp_acks: u64,
    /// TcpExt: TCPPureAcks — pure ACKs handled by the slow path.
    pub tcp_pure_acks: u64,
    /// TcpExt: TCPSackRecovery — recovery episodes using SACK.
    pub tcp_sack_recovery: u64,
    /// TcpExt: TCPRenoRecovery — recovery episodes without SACK (NewReno).
    pub tcp_reno_recovery: u64,
    /// TcpExt: TCPLossUndo — RTO recoveries undone (spurious timeout).
    pub tcp_loss_undo: u64,
    /// TcpExt: TCPFullUndo — fast recoveries undone (spurious retransmit).
    pub tcp_full_undo: u64,
    /// TcpExt: TCPDSACKRecv — D-SACK blocks received.
    pub tcp_dsack_recv: u64,
    /// TcpExt: TCPDSACKOldSent — D-SACK blocks sent for old duplicates.
    pub tcp_dsack_old_sent: u64,
    /// TcpExt: TCPDSACKOfoSent — D-SACK blocks sent for duplicates of out-of-order data.
    pub tcp_dsack_ofo_sent: u64,
    /// TcpExt: TCPSACKReorder — data never retransmitted arrived below data already
    /// SACKed (reordering seen).
    pub tcp_sack_reorder: u64,
    /// TcpExt: TCPLostRetransmit — retransmissions found lost (data sent after them
    /// was SACKed first) and sent again without waiting for the retransmission timeout.
    pub tcp_lost_retransmit: u64,
    /// Data segments received marked Congestion Experienced on ECN connections (ustack
    /// counter; Linux counts them per socket, `tcpi_delivered_ce` at the sender).
    pub tcp_ecn_ce_rcvd: u64,
    /// Congestion window reductions for an ECN-Echo (ustack counter; Linux enters its CWR
    /// state).
    pub tcp_ecn_reductions: u64,
    /// TcpExt: TCPTimeouts — retransmission timer expirations.
    pub tcp_timeouts: u64,
    /// TcpExt: TCPFastRetrans — segments sent by fast retransmit / recovery.
    pub tcp_fast_retrans: u64,
    /// TcpExt: TCPLossProbes — tail loss probes sent (RFC 8985 section 7).
    pub tcp_loss_probes: u64,
    /// TcpExt: TCPLossProbeRecovery — losses repaired by a tail loss probe alone (cwnd
    /// reduced once).
    pub tcp_loss_probe_recovery: u64,
    /// TcpExt: TCPChallengeACK — challenge ACKs sent (RFC 5961).
    pub tcp_challenge_ack: u64,
    /// TcpExt: TCPSYNChallenge — SYNs on synchronized connections answered with a challenge ACK.
    pub tcp_syn_challenge: u64,
    /// TcpExt: TCPAbortOnData — RST sent because data arrived after close.
    pub tcp_abort_on_data: u64,
    /// TcpExt: TCPAbortOnClose — RST sent on close with unread data.
    pub tcp_abort_on_close: u64,
    /// TcpExt: TCPAbortOnLinger — RST sent on close with linger 0.
    pub tcp_abort_on_linger: u64,
    /// TcpExt: TCPAbortOnTimeout — connections killed by a timer (retries exhausted).
    pub tcp_abort_on_timeout: u64,
    /// TcpExt: TCPAbortOnMemory — orphans killed because of the orphan limit.
    pub tcp_abort_on_memory: u64,
    /// TcpExt: PAWSEstab — segments dropped by PAWS (RFC 7323 section 5).
    pub paws_estab: u64,
    /// TcpExt: TCPOFOQueue — segments queued out of order.
    pub tcp_ofo_queue: u64,
    /// TcpExt: TCPOFODrop — out-of-order segments dropped (queue full).
    pub tcp_ofo_drop: u64,
    /// TcpExt: TCPOFOMerge — out-of-order segments merged with queued data.
    pub tcp_ofo_merge: u64,
    /// TcpExt: TCPRcvQDrop — in-order segments dropped for lack of buffer.
    pub tcp_rcvq_drop: u64,
    /// TcpExt: TCPZeroWindowDrop — data dropped because the window was zero.
    pub tcp_zero_window_drop: u64,
    /// TcpExt: TCPDelayedACKs — delayed ACK timer expirations that sent an ACK.
    pub delayed_acks: u64,
    /// TcpExt: TW — TIME_WAIT connections that ended by their timer.
    pub tw: u64,
    /// TcpExt: TCPTimeWaitOverflow — TIME_WAIT entries not created (limit).
    pub tcp_time_wait_overflow: u64,
    /// TIME_WAIT connections the application had closed, kept as a compact TIME_WAIT
    /// socket instead of a whole connection (Linux allocates an `inet_timewait_sock` for
    /// each; no MIB counts it).
    pub tcp_tw_compact: u64,
    /// TcpExt: TCPTWRecycled / reuse of a TIME_WAIT pair by a new SYN.
    pub tcp_tw_recycled: u64,
    /// TcpExt: TCPKeepAlive — keepalive probes sent.
    pub tcp_keep_alive: u64,
    /// TcpExt: TCPWinProbe — zero-window probes sent.
    pub tcp_win_probe: u64,
    /// TcpExt: TCPSpuriousRTOs (counted with undo).
    pub tcp_spurious_rtos: u64,
    /// TcpExt: TCPSACKReneging-like: SACK blocks ignored as invalid.
    pub tcp_sack_discard: u64,
    /// TcpExt: OutOfWindowIcmps — ICMP errors quoting a sequence outside snd_una..snd_nxt.
    pub out_of_window_icmps: u64,
    /// TcpExt: TCPMemoryPressures — times the stack entered memory pressure (socket
    /// buffer memory rose above `mem_pressure`).
    pub tcp_memory_pressures: u64,
    /// TcpExt: TCPMemoryPressuresChrono — milliseconds spent under memory pressure
    /// (updated when pressure ends).
    pub tcp_memory_pressures_chrono: u64,
    /// TcpExt: PruneCalled — out-of-order queues pruned because of memory pressure.
    pub prune_called: u64,
    /// TcpExt: OfoPruned — out-of-order segments discarded by pruning.
    pub ofo_pruned: u64,
    /// Writes refused (`WouldBlock`) because socket memory was above `mem_limit`
    /// (Linux: `sk_stream_wait_memory`; no MIB counter there).
    pub tcp_snd_mem_drop: u64,
    /// Gauge: bytes held in socket buffers now (Linux `tcp_memory_allocated`, in bytes).
    pub memory_used: u64,
    /// Gauge: highest `memory_used` seen.
    pub memory_used_peak: u64,
    /// Gauge: 1 while under memory pressure (Linux `tcp_memory_pressure`).
    pub memory_pressure: u64,
    /// Gauge: sockets of every kind held by the layer (Linux `sockets: used`).
    pub sockets: u64,
    /// Gauge: orphaned connections (Linux `tcp_orphan_count`).
    pub orphans: u64,
    /// Gauge: connections in TIME_WAIT (Linux `tw_count`).
    pub time_wait: u64,
    /// Gauge: timers armed in the wheel.
    pub timers_pending: u64,
    /// TcpExt: TCPReqQFullDrop — SYNs dropped because the SYN queue was full and cookies are off.
    pub tcp_req_q_full_drop: u64,
}
