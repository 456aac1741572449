//! UDP counters, named after `/proc/net/snmp` `Udp:` (Linux `UDP_MIB_*`).

/// A snapshot of the UDP counters (Linux `/proc/net/snmp` `Udp:` line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams delivered to applications (Linux `InDatagrams`, counted in
    /// `udp_recvmsg` when a datagram is read, not peeked).
    pub in_datagrams: u64,
    /// Datagrams for a port with no socket (Linux `NoPorts`; ICMP port unreachable sent).
    pub no_ports: u64,
    /// Datagrams dropped for any error: bad length, bad checksum, full queue (Linux
    /// `InErrors`).
    pub in_errors: u64,
    /// Datagrams sent (Linux `OutDatagrams`).
    pub out_datagrams: u64,
    /// Datagrams dropped because the receive queue was full (Linux `RcvbufErrors`).
    pub rcvbuf_errors: u64,
    /// Datagrams not sent for lack of buffer (Linux `SndbufErrors`; UDP here never
    /// buffers, so this stays 0 unless a caller counts device drops).
    pub sndbuf_errors: u64,
    /// Datagrams with a bad checksum (Linux `InCsumErrors`).
    pub in_csum_errors: u64,
    /// Broadcast or multicast datagrams no socket wanted (Linux `IgnoredMulti`).
    pub ignored_multi: u64,
}
