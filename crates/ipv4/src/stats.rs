//! MIB counters, named like the `Ip:` and `Icmp:` lines of `/proc/net/snmp`
//! (`InReceives` -> `in_receives`). Each is incremented at the exact place the event
//! happens (Linux: `IPSTATS_MIB_*`, `ICMP_MIB_*`) and read as one snapshot.

/// IP counters (Linux: `IPSTATS_MIB_*`, RFC 4293 `ipSystemStats*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpStats {
    /// `InReceives`: datagrams received from devices (and local loopback), including errors.
    pub in_receives: u64,
    /// `InHdrErrors`: discarded for header errors (version, IHL, total length, checksum,
    /// fragment fields).
    pub in_hdr_errors: u64,
    /// `InAddrErrors`: discarded because the destination is not ours (no forwarding) or an
    /// address is martian.
    pub in_addr_errors: u64,
    /// `InUnknownProtos`: for us, but no handler for the protocol.
    pub in_unknown_protos: u64,
    /// `InDiscards`: discarded for lack of resources.
    pub in_discards: u64,
    /// `InDelivers`: handed to a transport protocol (or ICMP).
    pub in_delivers: u64,
    /// `OutRequests`: datagrams the transports asked to send.
    pub out_requests: u64,
    /// `OutDiscards`: not sent for reasons other than routing (e.g. too big).
    pub out_discards: u64,
    /// `OutNoRoutes`: not sent because no route matched.
    pub out_no_routes: u64,
    /// `ReasmTimeout`: reassembly queues that timed out.
    pub reasm_timeout: u64,
    /// `ReasmReqds`: fragments received that needed reassembly.
    pub reasm_reqds: u64,
    /// `ReasmOKs`: datagrams reassembled.
    pub reasm_oks: u64,
    /// `ReasmFails`: reassembly failures (overlap, timeout, eviction, too big).
    pub reasm_fails: u64,
    /// `FragOKs`: datagrams fragmented.
    pub frag_oks: u64,
    /// `FragFails`: datagrams that needed fragmenting but could not be (DF set).
    pub frag_fails: u64,
    /// `FragCreates`: fragments created.
    pub frag_creates: u64,
    /// `IpExt: InTruncatedPkts`: shorter than their header says.
    pub in_truncated_pkts: u64,
    /// `IpExt: InCsumErrors`: bad header checksum (also counted in `InHdrErrors`).
    pub in_csum_errors: u64,
    /// `IpExt: InMcastPkts`: multicast datagrams accepted (to a joined group).
    pub in_mcast_pkts: u64,
    /// `IpExt: OutMcastPkts`: multicast datagrams sent (IGMP included).
    pub out_mcast_pkts: u64,
    /// `IpExt: InBcastPkts`: broadcast datagrams accepted.
    pub in_bcast_pkts: u64,
    /// `IpExt: OutBcastPkts`: broadcast datagrams sent.
    pub out_bcast_pkts: u64,
}

/// ICMP counters (Linux: `ICMP_MIB_*`, `/proc/net/snmp` `Icmp:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpStats {
    /// `InMsgs`: ICMP messages received (including erroneous ones).
    pub in_msgs: u64,
    /// `InErrors`: received with errors (checksum, truncated, bad quote).
    pub in_errors: u64,
    /// `InCsumErrors`: bad ICMP checksum (also in `InErrors`).
    pub in_csum_errors: u64,
    /// `InDestUnreachs`.
    pub in_dest_unreachs: u64,
    /// `InTimeExcds`.
    pub in_time_excds: u64,
    /// `InParmProbs`.
    pub in_parm_probs: u64,
    /// `InEchos`: echo requests received.
    pub in_echos: u64,
    /// `InEchoReps`: echo replies received.
    pub in_echo_reps: u64,
    /// `OutMsgs`: ICMP messages sent.
    pub out_msgs: u64,
    /// `OutErrors`: ICMP messages not sent because of an output error.
    pub out_errors: u64,
    /// `OutDestUnreachs`.
    pub out_dest_unreachs: u64,
    /// `OutTimeExcds`.
    pub out_time_excds: u64,
    /// `OutParmProbs`.
    pub out_parm_probs: u64,
    /// `OutEchos`: echo requests sent.
    pub out_echos: u64,
    /// `OutEchoReps`: echo replies sent.
    pub out_echo_reps: u64,
    /// `TcpExt: IcmpRateLimited`-like: errors suppressed by the rate limiter.
    pub out_rate_limited: u64,
}
