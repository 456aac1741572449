//! Stack-wide TCP settings (Linux: the `net.ipv4.tcp_*` sysctls) and per-socket options.

use std::time::Duration;

use crate::cc::CcAlgorithm;
use ustack_netdev::DevId;

/// Stack-wide TCP configuration; `Default` gives Linux's defaults.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// SYN retransmissions for an active open (Linux `tcp_syn_retries` = 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions for a passive open (Linux `tcp_synack_retries` = 5).
    pub synack_retries: u32,
    /// Data retransmissions before giving up (Linux `tcp_retries2` = 15).
    pub retries2: u32,
    /// Orphan retransmissions before giving up (Linux `tcp_orphan_retries`, 0 means 8).
    pub orphan_retries: u32,
    /// TIME_WAIT duration, 2*MSL (Linux `TCP_TIMEWAIT_LEN` = 60 s).
    pub time_wait: Duration,
    /// FIN_WAIT_2 timeout for orphans (Linux `tcp_fin_timeout` = 60 s).
    pub fin_timeout: Duration,
    /// Minimum retransmission timeout (Linux `TCP_RTO_MIN` = 200 ms).
    pub rto_min: Duration,
    /// Maximum retransmission timeout (Linux `TCP_RTO_MAX` = 120 s).
    pub rto_max: Duration,
    /// Initial retransmission timeout (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Receive buffer (min, default, max) in bytes (Linux `tcp_rmem`).
    pub rmem: (usize, usize, usize),
    /// Send buffer (min, default, max) in bytes (Linux `tcp_wmem`).
    pub wmem: (usize, usize, usize),
    /// SYN queue bound per listener (Linux `tcp_max_syn_backlog`).
    pub max_syn_backlog: usize,
    /// Upper bound for a listen backlog (Linux `somaxconn`).
    pub somaxconn: u32,
    /// Send SYN cookies when the SYN queue is full (Linux `tcp_syncookies` = 1).
    pub syncookies: bool,
    /// Maximum orphaned (closed by the app, still finishing) connections.
    pub max_orphans: usize,
    /// Maximum TIME_WAIT connections (Linux `tcp_max_tw_buckets`).
    pub max_tw_buckets: usize,
    /// Out-of-order queue bound per connection, in bytes.
    pub ooo_queue_limit: usize,
    /// Delayed ACK minimum (Linux `TCP_DELACK_MIN` = 40 ms).
    pub delack_min: Duration,
    /// Delayed ACK maximum (Linux `TCP_DELACK_MAX` = 200 ms).
    pub delack_max: Duration,
    /// Keepalive idle time (Linux `tcp_keepalive_time` = 7200 s).
    pub keepalive_time: Duration,
    /// Keepalive probe interval (Linux `tcp_keepalive_intvl` = 75 s).
    pub keepalive_intvl: Duration,
    /// Keepalive probes before giving up (Linux `tcp_keepalive_probes` = 9).
    pub keepalive_probes: u32,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_cwnd: u32,
    /// Congestion control for new sockets (Linux default: cubic).
    pub default_cc: CcAlgorithm,
    /// CUBIC leaves the initial slow start by HyStart++ (RFC 9406) when the RTT shows a
    /// queue building, or when a flight's ACK train shows the window filling the path
    /// (Linux: `tcp_cubic` parameter `hystart`, on by default, both detections).
    pub hystart: bool,
    /// Pace new data (Linux internal pacing, `tcp_update_pacing_rate`; off by default, as
    /// Linux paces CUBIC only under the `fq` qdisc): the pacing rate is twice cwnd / SRTT
    /// in slow start (cwnd below half of ssthresh) and 1.2 times after, and new data
    /// leaves at most ten segments (at least 1 ms) ahead of its time. Without it a stack
    /// that handles ACKs in batches (a busy driver reads many at once) answers a batch
    /// with one burst, in slow start twice what the batch acknowledged, which can
    /// overflow a shallow queue on the path. Retransmissions are not held back.
    pub pacing: bool,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Explicit Congestion Notification (RFC 3168; Linux `tcp_ecn`): by default used when
    /// the peer asks for it, not asked for.
    pub ecn: EcnMode,
    /// Ephemeral port range, inclusive (Linux `ip_local_port_range`).
    pub ephemeral: (u16, u16),
    /// Reuse TIME_WAIT pairs for outgoing connections (Linux `tcp_tw_reuse`).
    pub tw_reuse: bool,
    /// Challenge ACKs per second (Linux `tcp_challenge_ack_limit` = 1000).
    pub challenge_ack_limit: u32,
    /// Global bound on socket buffer memory in bytes (Linux `tcp_mem[2]`, "high"): above
    /// it, data that needs new memory is dropped (`TCPRcvQDrop`, `TCPOFODrop`), writes
    /// get `WouldBlock` and new connections are refused (`ListenDrops`). Each socket may
    /// still hold `rmem.0` / `wmem.0` bytes (Linux `sk_rmem_schedule` minimum).
    pub mem_limit: usize,
    /// Memory pressure threshold in bytes (Linux `tcp_mem[1]`): above it the stack enters
    /// pressure (`TCPMemoryPressures`): receive and send buffers stop growing, advertised
    /// windows are clamped to 4 MSS, out-of-order queues are pruned (`PruneCalled`,
    /// `OfoPruned`). 0 = two thirds of `mem_limit` (Linux's 4:6 ratio).
    pub mem_pressure: usize,
    /// Pressure ends when memory falls below this many bytes (Linux `tcp_mem[0]`).
    /// 0 = half of `mem_limit` (Linux's 3:6 ratio).
    pub mem_low: usize,
    /// Default Nagle setting for new sockets (false = Nagle on).
    pub nodelay: bool,
}

/// When a connection uses ECN (RFC 3168; Linux `net.ipv4.tcp_ecn`). An ECN connection
/// sends its new data as ECN-capable (ECT(0)); a router queue that would drop such a
/// packet can mark it Congestion Experienced instead; the receiver echoes the mark (ECE)
/// until the sender answers with CWR, and the sender reduces its window once per round
/// trip as for a loss, without a retransmission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EcnMode {
    /// Never: a SYN asking for ECN is answered without it (Linux `tcp_ecn = 0`).
    Off,
    /// Used when the peer's SYN asks for it; our SYNs do not ask (Linux `tcp_ecn = 2`,
    /// its default).
    #[default]
    Accept,
    /// Our SYNs ask for it, and it is used when the peer's SYN does (Linux `tcp_ecn = 1`).
    Request,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            syn_retries: 6,
            synack_retries: 5,
            retries2: 15,
            orphan_retries: 8,
            time_wait: Duration::from_secs(60),
            fin_timeout: Duration::from_secs(60),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            rto_initial: Duration::from_secs(1),
            rmem: (4096, 131072, 6 << 20),
            wmem: (4096, 16384, 4 << 20),
            max_syn_backlog: 1024,
            somaxconn: 4096,
            syncookies: true,
            max_orphans: 65536,
            max_tw_buckets: 262144,
            ooo_queue_limit: 4 << 20,
            delack_min: Duration::from_millis(40),
            delack_max: Duration::from_millis(200),
            keepalive_time: Duration::from_secs(7200),
            keepalive_intvl: Duration::from_secs(75),
            keepalive_probes: 9,
            initial_cwnd: 10,
            default_cc: CcAlgorithm::Cubic,
            hystart: true,
            pacing: false,
            window_scaling: true,
            sack: true,
            timestamps: true,
            ecn: EcnMode::Accept,
            ephemeral: (32768, 60999),
            tw_reuse: false,
            challenge_ack_limit: 1000,
            mem_limit: 256 << 20,
            mem_pressure: 0,
            mem_low: 0,
            nodelay: false,
        }
    }
}

impl TcpConfig {
    /// The pressure threshold in bytes (`mem_pressure`, or 2/3 of `mem_limit` when 0).
    pub fn mem_pressure_bytes(&self) -> usize {
        match self.mem_pressure {
            0 => self.mem_limit / 3 * 2,
            p => p.min(self.mem_limit),
        }
    }

    /// The low threshold in bytes (`mem_low`, or half of `mem_limit` when 0).
    pub fn mem_low_bytes(&self) -> usize {
        match self.mem_low {
            0 => self.mem_limit / 2,
            l => l.min(self.mem_pressure_bytes()),
        }
    }
}

/// Keepalive settings for one socket (Linux `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveCfg {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection fails with `TimedOut`.
    pub count: u32,
}

/// Segments acknowledged at once after `TCP_QUICKACK` is set (Linux `TCP_MAX_QUICKACKS`).
pub const QUICKACK_SEGS: u32 = 16;

/// Per-socket options (Linux `setsockopt`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SockOpt {
    /// `TCP_NODELAY`: true disables Nagle's algorithm.
    NoDelay(bool),
    /// `TCP_QUICKACK`: true acknowledges at once what is waiting for a delayed ACK and
    /// puts the connection in quick-ACK mode (the next [`QUICKACK_SEGS`] segments that
    /// want an acknowledgement get it at once); false ends quick-ACK mode, so ACKs wait
    /// as usual (every second full segment, or the delayed-ACK timer). Not permanent,
    /// as in Linux: quick-ACK mode ends by itself. A no-op before the connection exists.
    QuickAck(bool),
    /// `SO_KEEPALIVE` plus its parameters; `None` turns keepalive off.
    KeepAlive(Option<KeepaliveCfg>),
    /// `SO_RCVBUF` in bytes (clamped to `rmem`).
    RecvBuf(usize),
    /// `SO_SNDBUF` in bytes (clamped to `wmem`).
    SendBuf(usize),
    /// `TCP_CONGESTION`.
    Congestion(CcAlgorithm),
    /// `IP_TTL`.
    Ttl(u8),
    /// `IP_TOS`: the type-of-service byte of every segment sent. TCP keeps the two ECN
    /// bits for itself (as Linux does for stream sockets): clear, or ECT(0) on the new data
    /// of a connection that negotiated ECN ([`EcnMode`]).
    Tos(u8),
    /// `SO_LINGER`: `Some(0)` makes close send RST.
    Linger(Option<std::time::Duration>),
    /// `SO_REUSEADDR`.
    ReuseAddr(bool),
    /// `SO_REUSEPORT`: sockets that all set it may bind the same address and port; when
    /// they listen, incoming connections are spread over them by a hash of the peer's
    /// address and port.
    ReusePort(bool),
    /// `SO_MAX_PACING_RATE` in bytes per second: `Some(rate)` paces this socket's new
    /// data (whatever [`TcpConfig::pacing`] says) at no more than `rate` (`u64::MAX`: no
    /// cap beyond the congestion window's rate); `None` leaves pacing to the stack's
    /// setting, without a cap. Zero is refused (`InvalidInput`). As in Linux, setting a
    /// rate turns pacing on for the socket.
    MaxPacingRate(Option<u64>),
    /// `SO_BINDTODEVICE`: `Some(dev)` sends only through device `dev` (its routes, else
    /// on its link) and takes only segments that arrived on it; `None` unbinds. A
    /// listener passes it to the connections it accepts.
    BindDevice(Option<DevId>),
    /// `SO_BROADCAST` (datagram sockets only: TCP refuses it with `InvalidInput`).
    Broadcast(bool),
    /// `IP_MULTICAST_TTL` (datagram sockets only, like every multicast option below).
    MulticastTtl(u8),
    /// `IP_MULTICAST_LOOP`.
    MulticastLoop(bool),
    /// `IP_MULTICAST_ALL`: on (the default, as in Linux), a socket receives the
    /// datagrams of every group the host joined on its port; off, only of the groups it
    /// joined itself.
    MulticastAll(bool),
    /// `IP_MULTICAST_IF`: the address of the interface multicasts leave from;
    /// `None` (or 0.0.0.0) lets the route decide.
    MulticastIf(Option<std::net::Ipv4Addr>),
    /// `IP_ADD_MEMBERSHIP`: join `group` on the interface with address `interface`
    /// (0.0.0.0: the interface the route to the group leaves through).
    AddMembership {
        /// The multicast group.
        group: std::net::Ipv4Addr,
        /// An address of the interface, or 0.0.0.0.
        interface: std::net::Ipv4Addr,
    },
    /// `IP_DROP_MEMBERSHIP`: leave `group` (on the interface with address `interface`;
    /// 0.0.0.0: the socket's first membership of `group`).
    DropMembership {
        /// The multicast group.
        group: std::net::Ipv4Addr,
        /// An address of the interface, or 0.0.0.0.
        interface: std::net::Ipv4Addr,
    },
}

/// Which option [`crate::TcpLayer::get_option`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOptName {
    /// `TCP_NODELAY`.
    NoDelay,
    /// `TCP_QUICKACK`: whether the connection is in quick-ACK mode (true for a socket
    /// not yet connected: every connection starts in it).
    QuickAck,
    /// `SO_KEEPALIVE`.
    KeepAlive,
    /// `SO_RCVBUF`.
    RecvBuf,
    /// `SO_SNDBUF`.
    SendBuf,
    /// `TCP_CONGESTION`.
    Congestion,
    /// `IP_TTL`.
    Ttl,
    /// `IP_TOS`.
    Tos,
    /// `SO_LINGER`.
    Linger,
    /// `SO_REUSEADDR`.
    ReuseAddr,
    /// `SO_REUSEPORT`.
    ReusePort,
    /// `SO_MAX_PACING_RATE`.
    MaxPacingRate,
    /// `SO_BINDTODEVICE`.
    BindDevice,
    /// `SO_BROADCAST`.
    Broadcast,
    /// `IP_MULTICAST_TTL`.
    MulticastTtl,
    /// `IP_MULTICAST_LOOP`.
    MulticastLoop,
    /// `IP_MULTICAST_ALL`.
    MulticastAll,
    /// `IP_MULTICAST_IF`.
    MulticastIf,
}
