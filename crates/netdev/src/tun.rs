//! Linux TUN device through `tokio-tun` (Linux: `drivers/net/tun.c`, seen from user space).
//!
//! The kernel writes the IPv4 packets it routes to the TUN interface into our file
//! descriptor, and injects what we write as if received on that interface. The device is
//! opened without the packet-information header (`IFF_NO_PI`), so every read is exactly
//! one IP packet.
//!
//! With [`TunOptions::offload`] the device is opened with `IFF_VNET_HDR` and the offloads
//! `TUN_F_CSUM | TUN_F_TSO4` instead (see the `vnet` module): the kernel then hands over TCP
//! super-segments of up to 64 KiB and partial checksums, one read(2) for up to ~45
//! segments of a bulk transfer, which is what bounds kernel→ustack throughput otherwise.
//!
//! ```no_run
//! use ustack_netdev::tun::{TunDevice, TunOptions};
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! // Needs CAP_NET_ADMIN. Creates tun0 (or attaches to a persistent tun0), gives the
//! // kernel side 10.0.0.1/24 and brings it up; the stack then uses e.g. 10.0.0.2.
//! let dev = TunDevice::open(TunOptions {
//!     name: "tun0".into(),
//!     mtu: Some(1500),
//!     host_addr: Some(("10.0.0.1".parse().unwrap(), 24)),
//!     up: true,
//!     ..Default::default()
//! })?;
//! # Ok(()) }
//! ```

use std::io::{self, ErrorKind};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tun::{Tun, TunBuilder};

use vnet::{IfCtl, VnetHdr, VNET_HDR_LEN};

use crate::ether::ETH_HLEN;
use crate::{looks_like_ipv4, DeviceStats, Link, MacAddr, NetDevice, PacketBuf};

/// Largest packet a TUN read can return (the IPv4 total-length limit).
const MAX_PACKET: usize = 65535;

/// With offloads, packets below this size are copied out of the 64 KiB read buffer (which
/// is kept for the next read) into storage of their own size class; larger ones, the
/// super-segments of a bulk transfer, are handed on in it. A queued packet thus never
/// holds more than about twice its size in memory (and a UDP receive queue charges the
/// storage a datagram holds, [`PacketBuf::truesize`]).
const COPY_BELOW: usize = (MAX_PACKET + VNET_HDR_LEN) / 2;

/// A read buffer for the offload path: room for the header and the largest IP packet.
fn vnet_rx_buf() -> PacketBuf {
    let mut p = PacketBuf::with_headroom(0, MAX_PACKET + VNET_HDR_LEN);
    p.put_for_overwrite(MAX_PACKET + VNET_HDR_LEN);
    p
}

/// Without offloads, reads go into a packet buffer of the MTU plus one byte: the kernel
/// truncates a packet to the read buffer and returns the truncated length, so a read that
/// fills the whole buffer is a packet larger than the MTU (dropped and counted, never handed
/// on cut short).
fn plain_rx_len(mtu: usize) -> usize {
    mtu.clamp(576, MAX_PACKET) + 1
}

/// A read buffer for the plain path (see [`plain_rx_len`]). It comes from the per-thread
/// packet buffer pool and goes back to it when the stack drops the packet, so a steady
/// stream of packets neither allocates nor copies.
fn plain_rx_buf(mtu: usize) -> PacketBuf {
    let len = plain_rx_len(mtu);
    let mut p = PacketBuf::with_headroom(0, len);
    p.put_for_overwrite(len);
    p
}

/// The largest frame the device carries: the MTU, plus the Ethernet header on a TAP.
fn frame_len(l2: Link, mtu: usize) -> usize {
    match l2 {
        Link::RawIp => mtu,
        Link::Ethernet(_) => mtu + ETH_HLEN,
    }
}

/// The kernel's drop counter of interface `name` and its value now, for `rx_missed`.
fn link_counter(name: &str) -> Option<(LinkQuery, u64, AtomicU64)> {
    let q = LinkQuery::open(name)
        .inspect_err(|e| tracing::debug!(%name, error = %e, "no rtnetlink counters"))
        .ok()?;
    let base = q
        .tx_dropped()
        .inspect_err(|e| tracing::debug!(%name, error = %e, "no rtnetlink counters"))
        .ok()?;
    Some((q, base, AtomicU64::new(0)))
}

/// Packets written between two looks at the receive queue by the transmit path (over one
/// or many transmits, whatever `poll_recv` read meanwhile).
/// The kernel answers a packet written to a TUN inside the write itself (an ACK for a
/// segment, a reply to a request) and queues the answer for us; a burst written without
/// reading in between would overflow that queue (`txqueuelen`, 500 by default) and the
/// kernel would drop the answers (a NIC receives into its ring while it transmits).
const TX_DRAIN_EVERY: usize = 128;

/// Packets, and bytes, a transmit takes off the kernel's queue at most and keeps for the
/// next `poll_recv` (about 3 MiB of MTU-sized buffers, or 4 MiB of offload
/// super-segments); past either the kernel's queue fills and drops as without it.
const RX_BACKLOG_MAX: usize = 2048;
const RX_BACKLOG_BYTES: usize = 4 << 20;

/// Longest interface name (Linux `IFNAMSIZ` minus the terminating NUL).
const MAX_NAME: usize = 15;

/// How to open a TUN device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunOptions {
    /// Interface name (at most 15 bytes). An existing persistent TUN of that name is
    /// attached to; otherwise it is created. Empty: the kernel picks `tunN`.
    pub name: String,
    /// MTU to set on the interface; `None` keeps the current one (1500 for a new TUN).
    pub mtu: Option<usize>,
    /// Address and prefix length for the kernel side of the link (`ip addr add 10.0.0.1/24
    /// dev tun0`); the kernel then routes that subnet into the device.
    pub host_addr: Option<(Ipv4Addr, u8)>,
    /// Bring the interface up (`ip link set tun0 up`).
    pub up: bool,
    /// Let the kernel hand over unfinished packets (default `false`): open the device with
    /// `IFF_VNET_HDR`, a 10-byte `virtio_net_hdr` in front of every packet, and the
    /// offloads `TUN_F_CSUM | TUN_F_TSO4` (Linux: what a VM's virtio-net backend asks of a
    /// TUN). The kernel then writes TCP *super-segments* of up to 64 KiB (many MSS-sized
    /// segments in one read, delivered to the stack as one large TCP segment) and TCP/UDP
    /// packets with a partial checksum, which the stack does not verify (they come from
    /// the local kernel; [`PacketBuf::csum_unnecessary`]). Malformed headers are dropped
    /// and counted ([`TunDevice::offload_stats`]). Transmit is unchanged: one packet of at
    /// most the MTU per write, after a zeroed header. The device's MTU stays what it is; a
    /// received packet may be larger. Attaching to a persistent TUN works as without
    /// offloads (the flags are the attaching descriptor's). The offloads outlive the
    /// descriptor on a persistent TUN, so they are switched off again when the device is
    /// dropped, and whenever a TUN is opened without them (an earlier reader may have been
    /// killed).
    pub offload: bool,
    /// Open a TAP device instead (`IFF_TAP`: Ethernet frames, `ip tuntap add mode tap`),
    /// with this as the stack's own Ethernet address on it: the device reports
    /// [`Link::Ethernet`], reads and writes frames of up to the MTU plus
    /// [`ETH_HLEN`] bytes, and the stack speaks ARP on it. Not
    /// with [`offload`](Self::offload). The kernel side of a TAP has an address of its own
    /// (`ip link show`), which must differ from this one.
    pub tap: Option<MacAddr>,
    /// Read from the device on a thread of its own (default `false`; Linux: threaded
    /// NAPI). The thread only does the `read(2)`s and queues the packets (at most 512
    /// buffers in circulation); the stack's task processes them. The reads, the costliest
    /// part of receiving from a TUN, then overlap with the stack's protocol work and its
    /// writes: more throughput where a second CPU is free, at the cost of that CPU's time
    /// and of a thread hand-off per burst in latency. Not with [`offload`](Self::offload).
    pub rx_thread: bool,
}

/// Counters of the offload path ([`TunOptions::offload`]); all zero without it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunOffloadStats {
    /// TCPv4 super-segments received (`VIRTIO_NET_HDR_GSO_TCPV4`).
    pub rx_gso_packets: u64,
    /// Bytes (IP packets) of those super-segments.
    pub rx_gso_bytes: u64,
    /// MSS-sized segments they stand for (payload / `gso_size`, rounded up).
    pub rx_gso_segments: u64,
    /// Packets with a partial transport checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub rx_csum_partial: u64,
    /// Packets whose checksum the kernel had validated (`VIRTIO_NET_HDR_F_DATA_VALID`).
    pub rx_csum_valid: u64,
    /// Packets dropped for a malformed header (also counted in `rx_errors`).
    pub rx_bad_hdr: u64,
    /// Largest IP packet received.
    pub rx_max_len: u64,
    /// TCPv4 super-segments written (`VIRTIO_NET_HDR_GSO_TCPV4`, ustack's TSO).
    pub tx_gso_packets: u64,
    /// MSS-sized segments they stand for.
    pub tx_gso_segments: u64,
    /// Packets written with a partial TCP checksum for the kernel to complete.
    pub tx_csum_partial: u64,
    /// Partial-checksum or GSO packets not sent because they were not well-formed
    /// TCP/IPv4 (also counted in `tx_errors`).
    pub tx_bad: u64,
}

/// The descriptor: through tokio-tun (plain), opened here with `IFF_VNET_HDR`, or read by
/// a thread of its own and not registered with the reactor at all (the TUN wakes only
/// the thread, never the runtime: `TunOptions::rx_thread`).
enum TunIo {
    Plain(Tun),
    Vnet { fd: AsyncFd<OwnedFd>, ctl: IfCtl },
    Threaded { fd: OwnedFd, ctl: IfCtl },
}

/// A TUN device. Needs a tokio runtime with I/O enabled.
pub struct TunDevice {
    io: TunIo,
    name: String,
    mtu: usize,
    /// TUN (bare IPv4) or TAP (Ethernet, with the stack's address).
    l2: Link,
    /// The packet buffer the next read goes into. Without offloads it is handed on as the
    /// packet (no copy) and the next read takes a fresh one from the pool. With offloads a
    /// large packet (a super-segment) is handed on in it; a small one is copied out and
    /// the 64 KiB buffer kept for the next read.
    rx_spare: Option<PacketBuf>,
    stats: DeviceStats,
    offload: TunOffloadStats,
    /// The errno of a write that found the interface gone (deleted with `ip link del`:
    /// `EBADFD`); reads report it from then on, so the stack detaches the device. A
    /// deleted interface wakes no reader, so a failed write is how the stack learns of it.
    gone: Option<i32>,
    /// The receiving thread ([`TunOptions::rx_thread`]).
    rx_thread: Option<RxThread>,
    /// Packets read during a transmit ([`TX_DRAIN_EVERY`]), handed on first by the next
    /// `poll_recv`, and their bytes.
    rx_backlog: Vec<PacketBuf>,
    rx_backlog_bytes: usize,
    /// Packets written since the transmit path last read the receive queue.
    tx_since_read: usize,
    /// The driver's waker from the last `poll_recv`, woken when a transmit read packets.
    rx_waker: Option<Waker>,
    /// The kernel's drop counter of the interface, with its value when the device was
    /// opened and the last value read (`rx_missed`); `None` when it cannot be read.
    link: Option<(LinkQuery, u64, AtomicU64)>,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
            .field("offload", &matches!(self.io, TunIo::Vnet { .. }))
            .finish()
    }
}

/// Netmask for a prefix length (`None` when above 32).
fn netmask(prefix_len: u8) -> Option<Ipv4Addr> {
    match prefix_len {
        0 => Some(Ipv4Addr::UNSPECIFIED),
        1..=32 => Some(Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix_len)))),
        _ => None,
    }
}

fn tun_error(e: tokio_tun::Error) -> io::Error {
    match e {
        tokio_tun::Error::IoError(e) => e,
        tokio_tun::Error::NixError(e) => io::Error::from(e),
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg.to_string())
}

impl TunDevice {
    /// The interface flags (`SIOCGIFFLAGS`).
    fn if_flags(&self) -> io::Result<i32> {
        match &self.io {
            TunIo::Plain(tun) => tun.flags().map(i32::from).map_err(tun_error),
            TunIo::Vnet { ctl, .. } | TunIo::Threaded { ctl, .. } => ctl.flags(),
        }
    }

    /// True once the kernel sends into the device: the interface is up and running
    /// (`IFF_UP | IFF_RUNNING`). A persistent TUN that was up before a reader attached
    /// becomes running when the kernel's link-state work next runs (Linux `linkwatch`,
    /// up to a second later), and only then does the kernel queue packets to it; until
    /// then it drops them.
    pub fn is_running(&self) -> bool {
        let want = libc::IFF_UP | libc::IFF_RUNNING;
        self.if_flags().is_ok_and(|f| f & want == want)
    }

    /// Waits until the device [`is_running`](Self::is_running), at most `limit`; returns
    /// whether it is. ustack's `StackBuilder::build` waits up to 2 s for a TUN that is up,
    /// so that a stack is reachable when it is returned.
    pub async fn wait_running(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.is_running() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Opens (attaches to or creates) the TUN device `opts.name`, sets its MTU, gives the
    /// kernel side `opts.host_addr` and brings it up when asked. Linux: `TUNSETIFF` with
    /// `IFF_TUN | IFF_NO_PI` (plus `IFF_VNET_HDR`, `TUNSETVNETHDRSZ` and `TUNSETOFFLOAD`
    /// with [`TunOptions::offload`]), then `SIOCSIFMTU`, `SIOCSIFADDR`, `SIOCSIFNETMASK`,
    /// `SIOCSIFFLAGS`. Must be called inside a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, MTU or prefix length; `Other` outside a tokio
    /// runtime; the OS error otherwise (`PermissionDenied` without CAP_NET_ADMIN,
    /// `InvalidInput` when a device of that name exists but is not a TUN, ...).
    pub fn open(opts: TunOptions) -> io::Result<TunDevice> {
        if opts.name.len() > MAX_NAME || opts.name.contains(['\0', '/']) {
            return Err(invalid(
                "TUN name must be at most 15 bytes, without NUL or '/'",
            ));
        }
        if let Some(mtu) = opts.mtu {
            if !(68..=MAX_PACKET).contains(&mtu) {
                return Err(invalid("TUN MTU must be within 68..=65535"));
            }
        }
        let host = match opts.host_addr {
            Some((addr, prefix_len)) => Some((
                addr,
                netmask(prefix_len).ok_or_else(|| invalid("prefix length above 32"))?,
            )),
            None => None,
        };
        // Both paths register the descriptor with the current reactor (tokio-tun would
        // panic without one).
        tokio::runtime::Handle::try_current()
            .map_err(|_| io::Error::other("TunDevice::open must run inside a tokio runtime"))?;
        if opts.offload {
            if opts.rx_thread {
                return Err(invalid(
                    "TUN offload is not available with a receiving thread",
                ));
            }
            if opts.tap.is_some() {
                return Err(invalid("TUN offload is not available on a TAP device"));
            }
            return Self::open_vnet(&opts, host);
        }
        let mut builder = TunBuilder::new().name(&opts.name);
        if opts.tap.is_some() {
            builder = builder.tap();
        }
        if let Some(mtu) = opts.mtu {
            builder = builder.mtu(mtu as i32);
        }
        if let Some((addr, mask)) = host {
            builder = builder.address(addr).netmask(mask);
        }
        if opts.up {
            builder = builder.up();
        }
        let mut tuns = builder.build().map_err(tun_error)?;
        let tun = tuns
            .pop()
            .ok_or_else(|| io::Error::other("tokio-tun returned no queue"))?;
        // A persistent TUN keeps the offloads of an earlier reader that had them and died
        // without resetting them; this reader takes no super-segments or partial checksums.
        if let Err(e) = vnet::clear_offload(tun.as_raw_fd()) {
            tracing::debug!(error = %e, "TUNSETOFFLOAD(0) failed");
        }
        let mtu = match tun.mtu() {
            Ok(m) if m > 0 => m as usize,
            _ => opts.mtu.unwrap_or(1500),
        };
        let name = tun.name().to_string();
        let l2 = opts.tap.map_or(Link::RawIp, Link::Ethernet);
        let (io, rx_thread) = if opts.rx_thread {
            // The thread reads a duplicate of the descriptor; writes go through another, and
            // tokio-tun's (registered with the reactor) is closed, so that the packets the
            // kernel queues wake only the thread.
            let frame = frame_len(l2, mtu);
            let rx = RxThread::start(tun.as_raw_fd(), &name, || plain_rx_buf(frame))?;
            let fd = vnet::dup(tun.as_raw_fd())?;
            let ctl = IfCtl::new(&name)?;
            drop(tun);
            (TunIo::Threaded { fd, ctl }, Some(rx))
        } else {
            (TunIo::Plain(tun), None)
        };
        tracing::debug!(%name, mtu, tap = opts.tap.is_some(), rx_thread = opts.rx_thread, "TUN device opened");
        let link = link_counter(&name);
        Ok(TunDevice {
            io,
            name,
            mtu,
            l2,
            rx_spare: None,
            stats: DeviceStats::default(),
            gone: None,
            offload: TunOffloadStats::default(),
            rx_thread,
            rx_backlog: Vec::new(),
            rx_backlog_bytes: 0,
            tx_since_read: 0,
            rx_waker: None,
            link,
        })
    }

    /// The offload path of [`TunDevice::open`] (options checked, `host` = the kernel
    /// side's address and netmask).
    fn open_vnet(opts: &TunOptions, host: Option<(Ipv4Addr, Ipv4Addr)>) -> io::Result<TunDevice> {
        let (fd, name) = vnet::open_vnet(&opts.name)?;
        let ctl = IfCtl::new(&name)?;
        if let Some(mtu) = opts.mtu {
            ctl.set_mtu(mtu)?;
        }
        if let Some((addr, mask)) = host {
            ctl.set_addr(addr, mask)?;
        }
        if opts.up {
            ctl.up()?;
        }
        let mtu = match ctl.mtu() {
            Ok(m) if m > 0 => m,
            _ => opts.mtu.unwrap_or(1500),
        };
        // SAFETY: `fd` is an open descriptor owned by the `OwnedFd` that moves into the
        // `AsyncFd`; it stays open and is the same descriptor until the `AsyncFd` drops.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        tracing::debug!(%name, mtu, "TUN device opened with vnet_hdr offloads");
        let link = link_counter(&name);
        Ok(TunDevice {
            io: TunIo::Vnet { fd, ctl },
            name,
            mtu,
            l2: Link::RawIp,
            rx_spare: None,
            stats: DeviceStats::default(),
            gone: None,
            offload: TunOffloadStats::default(),
            rx_thread: None,
            rx_backlog: Vec::new(),
            rx_backlog_bytes: 0,
            tx_since_read: 0,
            rx_waker: None,
            link,
        })
    }

    /// Counters of the offload path (all zero without [`TunOptions::offload`]).
    pub fn offload_stats(&self) -> TunOffloadStats {
        self.offload
    }

    /// True when opened with [`TunOptions::offload`].
    pub fn offload(&self) -> bool {
        matches!(self.io, TunIo::Vnet { .. })
    }

    /// Counts one packet read from the kernel and hands it on (or discards it).
    fn accept(&mut self, len: usize, out: &mut Vec<PacketBuf>) -> bool {
        if let TunIo::Vnet { .. } = self.io {
            return self.accept_vnet(len, out);
        }
        let Some(mut buf) = self.rx_spare.take() else {
            // Unreachable: every read goes into the spare buffer.
            self.stats.rx_errors += 1;
            return false;
        };
        if len >= buf.len() {
            // The read filled the buffer: the packet was longer than the MTU and the
            // kernel cut it to fit. Dropped whole rather than handed on truncated.
            self.stats.rx_dropped += 1;
            tracing::debug!(dev = %self.name, mtu = self.mtu, "packet longer than the MTU dropped");
            self.rx_spare = Some(buf);
            return false;
        }
        let wanted = match self.l2 {
            Link::RawIp => looks_like_ipv4(buf.data().get(..len).unwrap_or_default()),
            // A frame: the stack looks at its EtherType.
            Link::Ethernet(_) => len >= ETH_HLEN,
        };
        if !wanted {
            // IPv6 neighbour discovery and the like: not for an IPv4 stack.
            self.stats.rx_dropped += 1;
            self.rx_spare = Some(buf);
            return false;
        }
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        buf.trim(len);
        out.push(buf);
        true
    }

    /// [`TunDevice::accept`] for a read that starts with a `virtio_net_hdr`.
    fn accept_vnet(&mut self, len: usize, out: &mut Vec<PacketBuf>) -> bool {
        let Some(mut buf) = self.rx_spare.take() else {
            // Unreachable: every read goes into the spare buffer.
            self.stats.rx_errors += 1;
            return false;
        };
        let frame = buf.data().get(..len).unwrap_or_default();
        let checked = VnetHdr::parse(frame).and_then(|hdr| {
            let ip = frame.get(VNET_HDR_LEN..).unwrap_or_default();
            if !looks_like_ipv4(ip) {
                return Ok(None);
            }
            vnet::check(&hdr, ip).map(|info| Some((hdr, info)))
        });
        let (hdr, info) = match checked {
            Ok(Some(x)) => x,
            Ok(None) => {
                // IPv6 neighbour discovery and the like: not for an IPv4 stack.
                self.stats.rx_dropped += 1;
                self.rx_spare = Some(buf);
                return false;
            }
            Err(e) => {
                self.stats.rx_errors += 1;
                self.offload.rx_bad_hdr += 1;
                tracing::debug!(dev = %self.name, error = %e, len, "bad virtio_net_hdr");
                self.rx_spare = Some(buf);
                return false;
            }
        };
        let ip_len = len.saturating_sub(VNET_HDR_LEN);
        let n = ip_len as u64;
        if info.gso {
            self.offload.rx_gso_packets += 1;
            self.offload.rx_gso_bytes += n;
            let payload = n.saturating_sub(u64::from(hdr.hdr_len));
            self.offload.rx_gso_segments += payload.div_ceil(u64::from(hdr.gso_size).max(1));
        }
        if info.csum_partial {
            self.offload.rx_csum_partial += 1;
        } else if info.csum_unnecessary {
            self.offload.rx_csum_valid += 1;
        }
        self.offload.rx_max_len = self.offload.rx_max_len.max(n);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += n;
        let mut pkt = if ip_len < COPY_BELOW {
            // Small (an ACK, a datagram, a short super-segment): copy it out and keep the
            // 64 KiB buffer.
            let mut p = PacketBuf::with_headroom(0, ip_len);
            p.extend_from_slice(buf.data().get(VNET_HDR_LEN..len).unwrap_or_default());
            self.rx_spare = Some(buf);
            p
        } else {
            buf.trim(len);
            buf.pull(VNET_HDR_LEN);
            buf
        };
        pkt.set_csum_unnecessary(info.csum_unnecessary);
        out.push(pkt);
        true
    }

    /// One read through the reactor: when nothing is waiting, readiness is cleared and
    /// the waker registered (`Pending`).
    fn poll_read_one(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match &mut self.io {
            TunIo::Plain(tun) => {
                let frame = frame_len(self.l2, self.mtu);
                let buf = self.rx_spare.get_or_insert_with(|| plain_rx_buf(frame));
                let mut rb = ReadBuf::new(buf.data_mut());
                match Pin::new(tun).poll_read(cx, &mut rb) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(r) => Poll::Ready(r.map(|()| rb.filled().len())),
                }
            }
            TunIo::Vnet { fd, .. } => loop {
                let mut guard = match fd.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r?,
                };
                let buf = self.rx_spare.get_or_insert_with(vnet_rx_buf).data_mut();
                match guard.try_io(|inner| vnet::read(inner.as_raw_fd(), buf)) {
                    Ok(r) => return Poll::Ready(r),
                    // WouldBlock: readiness was cleared; poll again to register the waker.
                    Err(_) => continue,
                }
            },
            // Unreachable: poll_recv takes what the thread read instead.
            TunIo::Threaded { .. } => Poll::Ready(Err(io::Error::other(
                "the device is read by its receiving thread",
            ))),
        }
    }

    /// [`NetDevice::poll_recv`] with a receiving thread: hands on what it read, up to
    /// `budget` packets, and gives it a fresh buffer for each one taken.
    fn poll_recv_threaded(
        &mut self,
        rx: &mut RxThread,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let frame = frame_len(self.l2, self.mtu);
        let mut n = 0;
        let mut res = Poll::Pending;
        while n < budget {
            match rx.poll_next(cx) {
                Poll::Ready(Ok((buf, len))) => {
                    self.rx_spare = Some(buf);
                    if self.accept(len, out) {
                        n += 1;
                    }
                    // A discarded packet's buffer goes back as it is; a fresh one from
                    // this thread's pool replaces one handed on.
                    let buf = self.rx_spare.take().unwrap_or_else(|| plain_rx_buf(frame));
                    rx.give_back(buf);
                }
                Poll::Ready(Err(e)) => {
                    self.stats.rx_errors += 1;
                    tracing::warn!(dev = %self.name, error = %e, "TUN read failed");
                    if n == 0 {
                        res = Poll::Ready(Err(e));
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        rx.flush();
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        res
    }

    /// Reads what the kernel queued for us without waiting, into the backlog (bounded),
    /// and wakes the driver if anything came. Read errors are left for `poll_recv` to
    /// meet and report.
    fn drain_rx(&mut self) {
        self.tx_since_read = 0;
        if self.gone.is_some() {
            return;
        }
        let mut backlog = std::mem::take(&mut self.rx_backlog);
        let before = backlog.len();
        let frame = frame_len(self.l2, self.mtu);
        let mut rx = self.rx_thread.take();
        let mut reads = 0;
        while backlog.len() < RX_BACKLOG_MAX
            && self.rx_backlog_bytes < RX_BACKLOG_BYTES
            && reads < RX_BACKLOG_MAX
        {
            reads += 1;
            let len = match (&mut rx, &mut self.io) {
                (Some(rx), _) => match rx.try_next() {
                    Some((buf, len)) => {
                        self.rx_spare = Some(buf);
                        len
                    }
                    None => break,
                },
                (None, TunIo::Plain(tun)) => {
                    let buf = self.rx_spare.get_or_insert_with(|| plain_rx_buf(frame));
                    match tun.try_recv(buf.data_mut()) {
                        Ok(len) => len,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                (None, TunIo::Vnet { fd, .. }) => {
                    let buf = self.rx_spare.get_or_insert_with(vnet_rx_buf).data_mut();
                    match vnet::read(fd.get_ref().as_raw_fd(), buf) {
                        Ok(len) => len,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                (None, TunIo::Threaded { .. }) => break,
            };
            let at = backlog.len();
            if self.accept(len, &mut backlog) {
                self.rx_backlog_bytes += backlog.get(at).map_or(0, PacketBuf::len);
            }
            if let Some(rx) = &mut rx {
                // As in `poll_recv_threaded`: a buffer back for each one taken.
                let buf = self.rx_spare.take().unwrap_or_else(|| plain_rx_buf(frame));
                rx.give_back(buf);
            }
        }
        if let Some(mut rx) = rx {
            rx.flush();
            self.rx_thread = Some(rx);
        }
        if backlog.len() > before {
            if let Some(w) = self.rx_waker.take() {
                w.wake();
            }
        }
        self.rx_backlog = backlog;
    }

    /// Hands on up to `budget` packets a transmit read, oldest first.
    fn take_backlog(&mut self, out: &mut Vec<PacketBuf>, budget: usize) -> usize {
        let n = budget.min(self.rx_backlog.len());
        if n == 0 {
            return 0;
        }
        for p in self.rx_backlog.drain(..n) {
            self.rx_backlog_bytes = self.rx_backlog_bytes.saturating_sub(p.len());
            out.push(p);
        }
        if self.rx_backlog.is_empty() {
            self.rx_backlog_bytes = 0;
        }
        n
    }

    fn try_write(&mut self, pkt: &PacketBuf) -> io::Result<usize> {
        match &mut self.io {
            TunIo::Plain(tun) => tun.try_send(pkt.data()),
            TunIo::Threaded { fd, .. } => vnet::write(fd.as_raw_fd(), pkt.data()),
            TunIo::Vnet { fd, .. } => {
                let Some(hdr) = VnetHdr::for_tx(pkt.data(), pkt.csum_partial(), pkt.gso_size())
                else {
                    self.offload.tx_bad += 1;
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        "partial checksum or GSO on a packet that is not TCP/IPv4",
                    ));
                };
                let n = vnet::write_with_hdr(fd.as_raw_fd(), &hdr, pkt.data())?;
                if hdr.flags & vnet::F_NEEDS_CSUM != 0 {
                    self.offload.tx_csum_partial += 1;
                }
                if hdr.gso_type == vnet::GSO_TCPV4 {
                    self.offload.tx_gso_packets += 1;
                    let payload = pkt.len().saturating_sub(usize::from(hdr.hdr_len));
                    self.offload.tx_gso_segments +=
                        payload.div_ceil(usize::from(hdr.gso_size).max(1)) as u64;
                }
                Ok(n)
            }
        }
    }
}

impl Drop for TunDevice {
    fn drop(&mut self) {
        if let TunIo::Vnet { fd, .. } = &self.io {
            if let Err(e) = vnet::clear_offload(fd.as_raw_fd()) {
                tracing::debug!(dev = %self.name, error = %e, "TUNSETOFFLOAD(0) failed");
            }
        }
    }
}

impl NetDevice for TunDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    /// Reads the interface flags (`SIOCGIFFLAGS`) and reports `IFF_UP`.
    fn is_up(&self) -> bool {
        self.if_flags().is_ok_and(|f| f & libc::IFF_UP != 0)
    }

    /// Waits for readiness, then reads packets until the read would block or `budget`
    /// packets were taken (Linux: `tun_do_read` in a NAPI-like loop).
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        if let Some(code) = self.gone {
            return Poll::Ready(Err(io::Error::from_raw_os_error(code)));
        }
        let budget = budget.max(1);
        match &self.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.rx_waker = Some(cx.waker().clone()),
        }
        // What a transmit read first: it came before anything still queued. (A receive
        // here does not restart the count of writes: it may stop at its budget, or find
        // the reactor's readiness not yet updated, with packets still queued.)
        let early = self.take_backlog(out, budget);
        if early == budget {
            return Poll::Ready(Ok(early));
        }
        if let Some(mut rx) = self.rx_thread.take() {
            let r = self.poll_recv_threaded(&mut rx, cx, out, budget - early);
            self.rx_thread = Some(rx);
            return match r {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(early + n)),
                // A reader's error stays and is reported by the next poll.
                _ if early > 0 => Poll::Ready(Ok(early)),
                r => r,
            };
        }
        let mut n = early;
        // Bounds the work of one poll even when every packet is discarded.
        let mut reads = 0;
        while n < budget {
            if reads >= budget {
                if n == 0 {
                    // Only discarded packets so far: let other tasks run, then continue.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                break;
            }
            reads += 1;
            // Every read goes through the reactor: the one that finds the queue empty
            // clears readiness and registers the waker, so the next poll returns Pending
            // without another read(2) (one system call fewer per wake-up).
            let res = match self.poll_read_one(cx) {
                Poll::Pending if n == 0 => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(r) => r,
            };
            match res {
                Ok(len) => {
                    if self.accept(len, out) {
                        n += 1;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.rx_errors += 1;
                    tracing::warn!(dev = %self.name, error = %e, "TUN read failed");
                    if n > 0 {
                        break;
                    }
                    return Poll::Ready(Err(e));
                }
            }
        }
        if n == 0 {
            // Only a WouldBlock error from the read itself (the reactor turns it into
            // Pending) gets here: poll again soon rather than sleep without a waker.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    /// Writes each packet (one `write(2)` per packet; with offloads a `writev(2)` of a
    /// zeroed `virtio_net_hdr` and the packet). A full device drops the packet
    /// (`tx_dropped`); any other write error counts in `tx_errors`.
    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        for pkt in pkts.drain(..) {
            if self.tx_since_read >= TX_DRAIN_EVERY {
                self.drain_rx();
            }
            self.tx_since_read += 1;
            if (pkt.csum_partial() || pkt.gso_size() > 0) && !self.offload() {
                // Never handed out by the stack for this device (its tso_max is 0).
                self.stats.tx_errors += 1;
                continue;
            }
            loop {
                match self.try_write(&pkt) {
                    Ok(_) => {
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += pkt.len() as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => self.stats.tx_dropped += 1,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EBADFD | libc::ENODEV)) => {
                        self.stats.tx_errors += 1;
                        if self.gone.is_none() {
                            tracing::warn!(dev = %self.name, error = %e, "TUN interface gone");
                        }
                        self.gone = e.raw_os_error();
                    }
                    Err(e) => {
                        self.stats.tx_errors += 1;
                        tracing::debug!(dev = %self.name, error = %e, "TUN write failed");
                    }
                }
                break;
            }
        }
    }

    /// The device's counters; `rx_missed` is read from the kernel (one rtnetlink
    /// request), the last value it gave when it cannot answer (the interface deleted).
    fn stats(&self) -> DeviceStats {
        let mut s = self.stats;
        if let Some((q, base, seen)) = &self.link {
            if let Ok(d) = q.tx_dropped() {
                seen.store(d.saturating_sub(*base), Ordering::Relaxed);
            }
            s.rx_missed = seen.load(Ordering::Relaxed);
        }
        s
    }

    fn link(&self) -> Link {
        self.l2
    }

    /// With offloads, super-segments up to the IPv4 limit: the kernel takes them as they
    /// are (one write(2), delivered to a local socket whole, like GRO) and cuts them
    /// itself where it forwards them.
    fn tso_max(&self) -> usize {
        if self.offload() {
            MAX_PACKET
        } else {
            0
        }
    }
}

mod rtnl;
mod rxthread;
mod vnet;

use rtnl::LinkQuery;
use rxthread::RxThread;

#[cfg(test)]
mod tests;
