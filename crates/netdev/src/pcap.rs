//! Packet capture wrapper writing classic pcap files (what `tcpdump -w` writes).
//!
//! [`PcapCapture`] wraps any [`NetDevice`] and records both directions: packets handed to
//! `transmit` (before the inner device may drop them, like a capture at
//! `dev_queue_xmit`) and packets `poll_recv` returns. The file uses link type 101
//! (`LINKTYPE_RAW`: each record is a bare IPv4 packet), or 1 (`LINKTYPE_ETHERNET`) for a
//! device that carries Ethernet frames, snap length 65535, microsecond
//! timestamps from [`SystemTime`]. It is flushed when the device goes idle (`poll_recv`
//! returns `Pending`), at least once a second while busy, and on drop. The inner device's
//! transmit offload stays on: its TCP super-segments are recorded as the stack sent them.
//!
//! ```no_run
//! use ustack_netdev::loopback::Loopback;
//! use ustack_netdev::pcap::PcapCapture;
//!
//! let dev = PcapCapture::new(Loopback::new(65536), "/tmp/lo.pcap")?;
//! // ... hand `dev` to a stack, then: tcpdump -nr /tmp/lo.pcap
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{DeviceStats, NetDevice, PacketBuf};

/// Classic pcap magic for microsecond timestamps.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// Largest number of bytes kept per packet.
pub const PCAP_SNAPLEN: u32 = 65535;
/// `LINKTYPE_RAW`: records start with the IP header.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_ETHERNET`: records are Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Longest time captured records stay in the write buffer while the device is busy.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The 24-byte global header (little-endian; readers detect the order from the magic).
fn file_header(linktype: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone (8..12) and sigfigs (12..16) stay 0.
    h[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

/// The 16-byte record header for a packet of `len` bytes seen at `ts`.
fn record_header(ts: SystemTime, len: usize) -> [u8; 16] {
    let since = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
    let orig = u32::try_from(len).unwrap_or(u32::MAX);
    let incl = orig.min(PCAP_SNAPLEN);
    let mut h = [0u8; 16];
    // pcap's 32-bit seconds wrap in 2106; truncation is the format's limit.
    h[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
    h[8..12].copy_from_slice(&incl.to_le_bytes());
    h[12..16].copy_from_slice(&orig.to_le_bytes());
    h
}

/// A device wrapper that records every packet in a pcap file. Itself a [`NetDevice`].
pub struct PcapCapture<D: NetDevice> {
    inner: D,
    path: PathBuf,
    /// `None` after a write error: capture stops, the device keeps working.
    writer: Option<BufWriter<File>>,
    records: u64,
    dirty: bool,
    last_flush: Instant,
}

impl<D: NetDevice> std::fmt::Debug for PcapCapture<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapCapture")
            .field("dev", &self.inner.name())
            .field("path", &self.path)
            .field("records", &self.records)
            .finish()
    }
}

impl<D: NetDevice> PcapCapture<D> {
    /// Wraps `inner`, creating (or truncating) the capture file at `path` and writing the
    /// pcap header.
    pub fn new(inner: D, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = BufWriter::with_capacity(64 * 1024, File::create(&path)?);
        let linktype = match inner.link() {
            crate::Link::RawIp => LINKTYPE_RAW,
            crate::Link::Ethernet(_) => LINKTYPE_ETHERNET,
        };
        writer.write_all(&file_header(linktype))?;
        writer.flush()?;
        Ok(PcapCapture {
            inner,
            path,
            writer: Some(writer),
            records: 0,
            dirty: false,
            last_flush: Instant::now(),
        })
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The capture file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True while capturing (false after a write error stopped it).
    pub fn is_capturing(&self) -> bool {
        self.writer.is_some()
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutable.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Writes buffered records to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.dirty = false;
        match &mut self.writer {
            Some(w) => {
                let res = w.flush();
                if let Err(e) = &res {
                    self.stop(e);
                }
                res
            }
            None => Ok(()),
        }
    }

    fn stop(&mut self, e: &io::Error) {
        tracing::warn!(path = %self.path.display(), error = %e, "pcap capture stopped");
        self.writer = None;
    }

    fn write(&mut self, pkts: &[PacketBuf]) {
        let Some(w) = &mut self.writer else {
            return;
        };
        let now = SystemTime::now();
        let mut res = Ok(());
        for p in pkts {
            let data = p.data();
            let keep = data.len().min(PCAP_SNAPLEN as usize);
            res = w
                .write_all(&record_header(now, data.len()))
                .and_then(|()| w.write_all(&data[..keep]));
            if res.is_err() {
                break;
            }
            self.records += 1;
            self.dirty = true;
        }
        if let Err(e) = res {
            self.stop(&e);
        } else if self.dirty && self.last_flush.elapsed() >= FLUSH_INTERVAL {
            let _ = self.flush();
        }
    }
}

impl<D: NetDevice> NetDevice for PcapCapture<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<PacketBuf>,
        budget: usize,
    ) -> Poll<io::Result<usize>> {
        let start = out.len();
        let res = self.inner.poll_recv(cx, out, budget);
        match &res {
            Poll::Ready(Ok(_)) => self.write(out.get(start..).unwrap_or_default()),
            Poll::Pending if self.dirty => {
                // Idle: a good moment to make the capture visible to readers.
                let _ = self.flush();
            }
            _ => {}
        }
        res
    }

    fn transmit(&mut self, pkts: &mut Vec<PacketBuf>) {
        self.write(pkts);
        self.inner.transmit(pkts);
    }

    fn link(&self) -> crate::Link {
        self.inner.link()
    }

    /// The inner device's: capturing does not turn transmit offload off. Super-segments
    /// are recorded whole, with the partial checksum the device completes (as `tcpdump`
    /// on the sending host shows them).
    fn tso_max(&self) -> usize {
        self.inner.tso_max()
    }

    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }
}

impl<D: NetDevice> Drop for PcapCapture<D> {
    fn drop(&mut self) {
        if let Some(w) = &mut self.writer {
            let _ = w.flush();
        }
    }
}

#[cfg(test)]
mod tests;
