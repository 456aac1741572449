//! Network devices for ustack (Linux: `net_device`, `net_device_ops`, `sk_buff`, NAPI).
//!
//! Every device carries raw IPv4 packets (layer 3, like a TUN device): there is no
//! Ethernet header and no ARP.
//!
//! - [`NetDevice`]: the device trait. Receive is batched with a budget like a NAPI poll;
//!   transmit takes a batch and never blocks (what cannot be queued is dropped and counted,
//!   like a full qdisc).
//! - Backends: [`tun::TunDevice`] (a Linux TUN device through `tokio-tun`),
//!   [`mem::MemLink`] (two connected in-memory ends, like a veth pair) and
//!   [`loopback::Loopback`].
//! - Wrappers for any device: [`fault::FaultInjector`] (loss, duplication, reordering,
//!   corruption, delay with jitter and a rate limit, seeded like a repeatable netem) and
//!   [`pcap::PcapCapture`] (writes a pcap file that tcpdump and wireshark open).
//! - [`PacketBuf`]: a packet buffer with headroom (Linux: `sk_buff`), so lower layers
//!   prepend their headers without copying the payload.
//!
//! # Example
//!
//! Two ends of an in-memory link, one of them behind a lossy, delaying wrapper:
//!
//! ```
//! use std::future::poll_fn;
//! use std::time::Duration;
//! use ustack_netdev::fault::{FaultConfig, FaultInjector};
//! use ustack_netdev::mem::{MemLink, MemLinkConfig};
//! use ustack_netdev::{NetDevice, PacketBuf};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a, mut b) = MemLink::pair(MemLinkConfig::default());
//! let cfg = FaultConfig { delay: Duration::from_millis(5), seed: 7, ..Default::default() };
//! let mut a = FaultInjector::new(a, cfg);
//!
//! // A minimal IPv4 header (version 4, IHL 5) is enough for the device layer.
//! let mut pkt = PacketBuf::from_slice(&[0x45; 20]);
//! pkt.data_mut()[2..4].copy_from_slice(&20u16.to_be_bytes());
//! a.transmit(&mut vec![pkt]);
//!
//! // The driver task polls every device; here we poll `a` (which releases the delayed
//! // packet after 5 ms) and `b` (which receives it) by hand.
//! let mut got = Vec::new();
//! while got.is_empty() {
//!     let mut none = Vec::new();
//!     tokio::select! {
//!         _ = poll_fn(|cx| a.poll_recv(cx, &mut none, 64)) => {}
//!         _ = poll_fn(|cx| b.poll_recv(cx, &mut got, 64)) => {}
//!     }
//! }
//! assert_eq!(got[0].len(), 20);
//! assert_eq!(b.stats().rx_packets, 1);
//! # }
//! ```

use std::io;
use std::task::{Context, Poll};

mod buf;
pub mod ether;
pub mod fault;
pub mod loopback;
pub mod mem;
pub mod pcap;
pub mod rng;
pub mod tun;

#[cfg(test)]
mod testutil;

pub use buf::{PacketBuf, DEFAULT_HEADROOM};
pub use ether::{Link, MacAddr};

/// Identifies a device inside one stack (Linux: `ifindex`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevId(pub u16);

impl std::fmt::Display for DevId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dev{}", self.0)
    }
}

/// Link counters, like `ip -s link` (Linux: `struct rtnl_link_stats64`).
///
/// Each counter is incremented at the place the event happens: `tx_dropped` when a
/// packet could not be queued (full queue, link down), `tx_errors` when the packet itself
/// was bad (larger than the MTU) or the write failed, `rx_dropped` when a received packet
/// was discarded by the device (not IPv4, longer than the MTU, link down), `rx_errors` when
/// a read failed, `rx_missed` when a packet was lost before the device could read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Packets handed to the stack.
    pub rx_packets: u64,
    /// Bytes handed to the stack.
    pub rx_bytes: u64,
    /// Receive errors (failed reads).
    pub rx_errors: u64,
    /// Received packets discarded by the device.
    pub rx_dropped: u64,
    /// Packets lost on the way in because the device did not read them in time (Linux
    /// `rx_missed_errors`, a NIC's full receive ring). A TUN device reports the kernel's
    /// count of packets it dropped because its queue to the device was full (the
    /// interface's `tx_dropped` on the kernel side), since the device was opened; 0 for
    /// devices that cannot tell.
    pub rx_missed: u64,
    /// Packets sent (queued to the peer or written to the kernel).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Transmit errors (oversize packets, failed writes).
    pub tx_errors: u64,
    /// Packets dropped on transmit because they could not be queued.
    pub tx_dropped: u64,
}

impl std::fmt::Display for DeviceStats {
    /// Formats like the two counter blocks of `ip -s link`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "    RX:  bytes packets errors dropped  missed")?;
        writeln!(
            f,
            "    {:>10} {:>7} {:>6} {:>7} {:>7}",
            self.rx_bytes, self.rx_packets, self.rx_errors, self.rx_dropped, self.rx_missed
        )?;
        writeln!(f, "    TX:  bytes packets errors dropped")?;
        write!(
            f,
            "    {:>10} {:>7} {:>6} {:>7}",
            self.tx_bytes, self.tx_packets, self.tx_errors, self.tx_dropped
        )
    }
}

/// A network device carrying IPv4 packets.
///
/// Linux: `struct net_device` + `net_device_ops`; [`NetDevice::poll_recv`] is the NAPI
/// poll with a budget, [`NetDevice::transmit`] is `dev_queue_xmit`.
pub trait NetDevice: Send + 'static {
    /// Interface name (`tun0`, `lo`, `veth0`, ...).
    fn name(&self) -> &str;

    /// Largest IPv4 packet (header included) the device carries.
    fn mtu(&self) -> usize;

    /// True when the link is up (administratively up and, for a pair, the peer exists).
    fn is_up(&self) -> bool;

    /// Appends up to `budget` received IPv4 packets to `out`.
    ///
    /// Returns `Ready(Ok(n))` with `n >= 1`, or `Pending` (waker registered) when nothing
    /// is waiting. `Ready(Err)` only when the device is gone for good. Wrappers (fault,
    /// pcap) also do their own timed work here (e.g. releasing delayed tx packets), so the
    /// driver polls this whenever woken. Linux: `napi_poll`.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>>;

    /// Sends every packet in `pkts` (drains it). Never blocks: what cannot be queued now is
    /// dropped and counted in `tx_dropped` (a full qdisc). Linux: `dev_queue_xmit`.
    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>);

    /// A snapshot of the link counters.
    fn stats(&self) -> DeviceStats;

    /// True when this device wakes its receive waker only from a [`transmit`](Self::transmit)
    /// call in this process (an in-memory pair, loopback), never while holding a lock of
    /// its own. The stack then hands such a device a waker that processes the received
    /// packets right away, in the sender's context, instead of scheduling its driver task
    /// (Linux: veth and loopback run the receiver's softirq on the sending CPU). Such a
    /// device must also arm the waker whenever `poll_recv` returns `Ready` with fewer
    /// packets than the budget (its queue is then empty), so the stack need not poll it
    /// again to see `Pending`. Devices woken by the OS (TUN) or by timers of their own
    /// keep the default, `false`.
    fn rx_inline(&self) -> bool {
        false
    }

    /// Transmit offload: the largest IPv4 packet (header included) the device accepts as
    /// a TCP super-segment ([`PacketBuf::gso_size`]) that it, or what lies behind it, cuts
    /// into MTU-sized segments; such a device also completes partial TCP checksums
    /// ([`PacketBuf::csum_partial`]). Zero (the default): neither; every packet it is given
    /// fits the MTU and carries its full checksum. Linux: `NETIF_F_TSO` with
    /// `gso_max_size` and `NETIF_F_HW_CSUM`.
    fn tso_max(&self) -> usize {
        0
    }

    /// What the device's packets start with: nothing ([`Link::RawIp`], the default) or an
    /// Ethernet header ([`Link::Ethernet`] with the stack's own address on the link). An
    /// Ethernet device hands over and takes whole frames, up to [`mtu`](Self::mtu) +
    /// [`ether::ETH_HLEN`] bytes; the stack adds and strips the header and answers and
    /// sends ARP. Read once, when the device is attached.
    fn link(&self) -> Link {
        Link::RawIp
    }
}

/// Boxed devices (including `Box<dyn NetDevice>`) are devices: every call is delegated.
impl<D: NetDevice + ?Sized> NetDevice for Box<D> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn mtu(&self) -> usize {
        (**self).mtu()
    }

    fn is_up(&self) -> bool {
        (**self).is_up()
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        (**self).poll_recv(cx, out, budget)
    }

    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        (**self).transmit(pkts)
    }

    fn tso_max(&self) -> usize {
        (**self).tso_max()
    }

    fn stats(&self) -> DeviceStats {
        (**self).stats()
    }

    fn rx_inline(&self) -> bool {
        (**self).rx_inline()
    }

    fn link(&self) -> Link {
        (**self).link()
    }
}

/// True when `data` starts like an IPv4 packet (version nibble 4). Devices use it to
/// discard other traffic (IPv6, garbage) before it reaches the stack.
pub(crate) fn looks_like_ipv4(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b >> 4 == 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::Loopback;

    #[test]
    fn boxed_dyn_device_delegates() {
        let mut dev: Box<dyn NetDevice> = Box::new(Loopback::new(1500));
        assert_eq!(dev.name(), "lo");
        assert_eq!(dev.mtu(), 1500);
        assert!(dev.is_up());
        dev.transmit(&mut vec![PacketBuf::from_slice(&[0x45, 0, 0, 4])]);
        let (waker, _) = crate::testutil::counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        assert!(matches!(
            dev.poll_recv(&mut cx, &mut out, 8),
            Poll::Ready(Ok(1))
        ));
        assert_eq!(dev.stats().rx_packets, 1);
        assert_eq!(dev.stats().tx_packets, 1);
    }

    #[test]
    fn stats_display_like_ip_s_link() {
        let s = DeviceStats {
            rx_packets: 3,
            rx_bytes: 300,
            ..Default::default()
        };
        let text = s.to_string();
        assert!(text.contains("RX:  bytes packets errors dropped  missed"));
        assert!(text.contains("300"));
        assert_eq!(DevId(3).to_string(), "dev3");
    }

    #[test]
    fn ipv4_check() {
        assert!(looks_like_ipv4(&[0x45]));
        assert!(!looks_like_ipv4(&[0x60]));
        assert!(!looks_like_ipv4(&[]));
    }
}
