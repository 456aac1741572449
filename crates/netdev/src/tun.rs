//! Linux TUN device through `tokio-tun` (Linux: `drivers/net/tun.c`, seen from user space).
//!
//! The kernel writes the IPv4 packets it routes to the TUN interface into our file
//! descriptor, and injects what we write as if received on that interface. The device is
//! opened without the packet-information header (`IFF_NO_PI`), so every read is exactly
//! one IP packet.
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
//! })?;
//! # Ok(()) }
//! ```

use std::io::{self, ErrorKind};
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_tun::{Tun, TunBuilder};

use crate::{looks_like_ipv4, DeviceStats, NetDevice, PacketBuf};

/// Largest packet a TUN read can return (the IPv4 total-length limit).
const MAX_PACKET: usize = 65535;

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
}

/// A TUN device. Needs a tokio runtime with I/O enabled.
pub struct TunDevice {
    tun: Tun,
    name: String,
    mtu: usize,
    /// Reusable read buffer; each packet is copied out once into its own [`PacketBuf`].
    scratch: Box<[u8]>,
    stats: DeviceStats,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
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
    /// Opens (attaches to or creates) the TUN device `opts.name`, sets its MTU, gives the
    /// kernel side `opts.host_addr` and brings it up when asked. Linux: `TUNSETIFF` with
    /// `IFF_TUN | IFF_NO_PI`, then `SIOCSIFMTU`, `SIOCSIFADDR`, `SIOCSIFNETMASK`,
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
        let mut builder = TunBuilder::new().name(&opts.name);
        if let Some(mtu) = opts.mtu {
            if !(68..=MAX_PACKET).contains(&mtu) {
                return Err(invalid("TUN MTU must be within 68..=65535"));
            }
            builder = builder.mtu(mtu as i32);
        }
        if let Some((addr, prefix_len)) = opts.host_addr {
            let mask = netmask(prefix_len).ok_or_else(|| invalid("prefix length above 32"))?;
            builder = builder.address(addr).netmask(mask);
        }
        if opts.up {
            builder = builder.up();
        }
        // tokio-tun registers the descriptor with the current reactor (and would panic
        // without one).
        tokio::runtime::Handle::try_current()
            .map_err(|_| io::Error::other("TunDevice::open must run inside a tokio runtime"))?;
        let mut tuns = builder.build().map_err(tun_error)?;
        let tun = tuns
            .pop()
            .ok_or_else(|| io::Error::other("tokio-tun returned no queue"))?;
        let mtu = match tun.mtu() {
            Ok(m) if m > 0 => m as usize,
            _ => opts.mtu.unwrap_or(1500),
        };
        let name = tun.name().to_string();
        tracing::debug!(%name, mtu, "TUN device opened");
        Ok(TunDevice {
            tun,
            name,
            mtu,
            scratch: vec![0u8; MAX_PACKET].into_boxed_slice(),
            stats: DeviceStats::default(),
        })
    }

    /// Counts one packet read from the kernel and hands it on (or discards it).
    fn accept(&mut self, len: usize, out: &mut Vec<PacketBuf>) -> bool {
        let data = self.scratch.get(..len).unwrap_or_default();
        if !looks_like_ipv4(data) {
            // IPv6 neighbour discovery and the like: not for an IPv4 stack.
            self.stats.rx_dropped += 1;
            return false;
        }
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        out.push(PacketBuf::from_slice(data));
        true
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
        self.tun
            .flags()
            .is_ok_and(|f| i32::from(f) & libc::IFF_UP != 0)
    }

    /// Waits for readiness, then reads packets until the read would block or `budget`
    /// packets were taken (Linux: `tun_do_read` in a NAPI-like loop).
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let budget = budget.max(1);
        let mut n = 0;
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
            let res = if n == 0 {
                // The first read goes through the reactor so that a waker is registered
                // (and readiness cleared) when nothing is waiting.
                let mut rb = ReadBuf::new(&mut self.scratch);
                match Pin::new(&mut self.tun).poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.map(|()| rb.filled().len()),
                }
            } else {
                self.tun.try_recv(&mut self.scratch)
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
            // Only reachable when try_recv said WouldBlock after a discarded packet: the
            // next poll_read clears readiness and registers the waker.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    /// Writes each packet (one `write(2)` per packet). A full device drops the packet
    /// (`tx_dropped`); any other write error counts in `tx_errors`.
    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        for pkt in pkts.drain(..) {
            loop {
                match self.tun.try_send(pkt.data()) {
                    Ok(_) => {
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += pkt.len() as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => self.stats.tx_dropped += 1,
                    Err(e) => {
                        self.stats.tx_errors += 1;
                        tracing::debug!(dev = %self.name, error = %e, "TUN write failed");
                    }
                }
                break;
            }
        }
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
