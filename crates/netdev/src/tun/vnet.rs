//! TUN with offloads: the `virtio_net_hdr` in front of every packet, and opening the
//! device with `IFF_VNET_HDR` (Linux: `drivers/net/tun.c` `tun_put_user` /
//! `tun_get_user`, `include/uapi/linux/virtio_net.h`, `include/linux/virtio_net.h`).
//!
//! With `IFF_VNET_HDR` and `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4)` the kernel may hand the
//! reader what its own stack built without finishing it:
//!
//! - a TCP or UDP packet whose checksum is still *partial* (`VIRTIO_NET_HDR_F_NEEDS_CSUM`:
//!   the checksum field holds only the pseudo-header sum; Linux `CHECKSUM_PARTIAL`);
//! - a TCP *super-segment* (`VIRTIO_NET_HDR_GSO_TCPV4`): one IPv4 header, one TCP header and
//!   up to 64 KiB of payload that would have left as `gso_size`-byte segments. Its IPv4
//!   total length covers the whole super-segment; it is delivered as one large segment,
//!   like the result of GRO.
//!
//! The 10-byte header (`struct virtio_net_hdr`) is, in order: `flags` u8, `gso_type` u8,
//! `hdr_len` u16, `gso_size` u16, `csum_start` u16, `csum_offset` u16. The u16 fields are in
//! the host's byte order (legacy virtio: a TUN without `TUNSETVNETLE`/`TUNSETVNETBE`).

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Size of `struct virtio_net_hdr` (set with `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already validated.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_ECN`: ORed into `gso_type` when the segments carry CWR.
pub const GSO_ECN: u8 = 0x80;

/// `TUN_F_CSUM` (linux/if_tun.h): the reader accepts partial checksums.
pub const TUN_F_CSUM: libc::c_uint = 0x01;
/// `TUN_F_TSO4` (linux/if_tun.h): the reader accepts TCPv4 super-segments.
pub const TUN_F_TSO4: libc::c_uint = 0x02;
/// `TUNSETIFF` = `_IOW('T', 202, int)`.
pub const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
/// `TUNSETOFFLOAD` = `_IOW('T', 208, unsigned int)`.
pub const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
/// `TUNSETVNETHDRSZ` = `_IOW('T', 216, int)`.
pub const TUNSETVNETHDRSZ: libc::Ioctl = 0x4004_54d8;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The header in front of each packet (`struct virtio_net_hdr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers (IP + transport) of a super-segment.
    pub hdr_len: u16,
    /// Payload bytes per segment of a super-segment (the MSS).
    pub gso_size: u16,
    /// Where the checksummed data starts (from the IP header).
    pub csum_start: u16,
    /// Where the checksum field sits, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header at the start of `frame`.
    pub fn parse(frame: &[u8]) -> Result<VnetHdr, VnetError> {
        let h: &[u8; VNET_HDR_LEN] = frame
            .get(..VNET_HDR_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(VnetError::Truncated)?;
        let u = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        Ok(VnetHdr {
            flags: h[0],
            gso_type: h[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }
}

/// Why a received header was refused (the packet is dropped and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VnetError {
    /// Shorter than the header, or an IP packet too short for what the header claims.
    Truncated,
    /// Unknown bits in `flags`.
    BadFlags,
    /// A GSO type other than TCPv4 (UDP, TCPv6, ...), which was not asked for.
    UnsupportedGso,
    /// A TCPv4 super-segment that is not an unfragmented IPv4/TCP packet, has no MSS, or
    /// whose checksum is not marked partial.
    BadGso,
    /// A partial checksum whose offsets do not point at a TCP or UDP checksum field right
    /// after the IPv4 header.
    BadCsumOffsets,
}

impl std::fmt::Display for VnetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VnetError::Truncated => "truncated virtio_net_hdr or packet",
            VnetError::BadFlags => "unknown virtio_net_hdr flags",
            VnetError::UnsupportedGso => "unsupported GSO type",
            VnetError::BadGso => "malformed TCPv4 super-segment",
            VnetError::BadCsumOffsets => "partial checksum at an unexpected offset",
        })
    }
}

/// What the header says about a valid IPv4 packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxInfo {
    /// The transport checksum must not be verified (partial or already validated).
    pub csum_unnecessary: bool,
    /// The checksum is partial (`NEEDS_CSUM`).
    pub csum_partial: bool,
    /// A TCPv4 super-segment.
    pub gso: bool,
}

/// Checks `hdr` against the IPv4 packet `ip` that followed it. The packet's own IPv4
/// header is validated later by IP input; only what the offload claims is checked here.
pub fn check(hdr: &VnetHdr, ip: &[u8]) -> Result<RxInfo, VnetError> {
    if hdr.flags & !(F_NEEDS_CSUM | F_DATA_VALID) != 0 {
        return Err(VnetError::BadFlags);
    }
    let ihl = usize::from(ip.first().ok_or(VnetError::Truncated)? & 0x0f) * 4;
    let head = ip.get(..20).ok_or(VnetError::Truncated)?;
    let protocol = head[9];
    let fragment = u16::from_be_bytes([head[6], head[7]]) & 0x3fff != 0;
    let partial = hdr.flags & F_NEEDS_CSUM != 0;
    if partial {
        let field = match protocol {
            IPPROTO_TCP => 16,
            IPPROTO_UDP => 6,
            _ => return Err(VnetError::BadCsumOffsets),
        };
        if ihl < 20
            || fragment
            || usize::from(hdr.csum_start) != ihl
            || usize::from(hdr.csum_offset) != field
        {
            return Err(VnetError::BadCsumOffsets);
        }
        if ihl + field + 2 > ip.len() {
            return Err(VnetError::Truncated);
        }
    }
    let gso = match hdr.gso_type & !GSO_ECN {
        GSO_NONE => false,
        GSO_TCPV4 => {
            if protocol != IPPROTO_TCP || fragment || hdr.gso_size == 0 || !partial {
                return Err(VnetError::BadGso);
            }
            true
        }
        _ => return Err(VnetError::UnsupportedGso),
    };
    Ok(RxInfo {
        csum_unnecessary: partial || hdr.flags & F_DATA_VALID != 0,
        csum_partial: partial,
        gso,
    })
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An `ifreq` naming `name` (at most 15 bytes, checked by the caller).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of integers and
    // sockaddrs); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    req
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and both are plain
    // old data; this is how the SIOCSIF*ADDR ioctls take an IPv4 address.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The control socket for the `SIOC[GS]IF*` ioctls on interface `name`.
pub struct IfCtl {
    sock: OwnedFd,
    name: String,
}

impl IfCtl {
    /// Opens an `AF_INET` datagram socket for interface ioctls on `name`.
    pub fn new(name: &str) -> io::Result<IfCtl> {
        // SAFETY: plain socket(2) call; the descriptor is owned right away.
        let fd =
            cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(IfCtl {
            sock,
            name: name.to_string(),
        })
    }

    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request used here reads or writes one `struct ifreq`, which `req`
        // points to for the duration of the call.
        cvt(unsafe { libc::ioctl(self.sock.as_raw_fd(), request as _, req as *mut libc::ifreq) })
            .map(|_| ())
    }

    /// `SIOCSIFMTU`.
    pub fn set_mtu(&self, mtu: usize) -> io::Result<()> {
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.ioctl(libc::SIOCSIFMTU, &mut req)
    }

    /// `SIOCGIFMTU`.
    pub fn mtu(&self) -> io::Result<usize> {
        let mut req = ifreq(&self.name);
        self.ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU filled the ifru_mtu member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        usize::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
    }

    /// `SIOCSIFADDR` then `SIOCSIFNETMASK`.
    pub fn set_addr(&self, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_addr = sockaddr_in(addr);
        self.ioctl(libc::SIOCSIFADDR, &mut req)?;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
        self.ioctl(libc::SIOCSIFNETMASK, &mut req)
    }

    /// `SIOCGIFFLAGS`.
    pub fn flags(&self) -> io::Result<libc::c_int> {
        let mut req = ifreq(&self.name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the ifru_flags member of the union.
        Ok(libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff)
    }

    /// Sets `IFF_UP | IFF_RUNNING` (`SIOCGIFFLAGS` + `SIOCSIFFLAGS`).
    pub fn up(&self) -> io::Result<()> {
        let flags = self.flags()? | libc::IFF_UP | libc::IFF_RUNNING;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut req)
    }
}

/// Opens `/dev/net/tun` non-blocking and attaches it to (or creates) TUN `name` with
/// `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`, a 10-byte header and the offloads `TUN_F_CSUM |
/// TUN_F_TSO4`. Returns the descriptor and the interface's name (the kernel's choice when
/// `name` is empty).
pub fn open_vnet(name: &str) -> io::Result<(OwnedFd, String)> {
    // SAFETY: open(2) with a NUL-terminated path; the descriptor is owned right away.
    let fd = cvt(unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just returned by open(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw: RawFd = fd.as_raw_fd();
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes back one `struct ifreq`.
    cvt(unsafe { libc::ioctl(raw, TUNSETIFF, &mut req as *mut libc::ifreq) })?;
    // SAFETY: the kernel NUL-terminates ifr_name (IFNAMSIZ includes the NUL); the array
    // was zeroed and is 16 bytes long, so a NUL is always present.
    let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let hdr_len: libc::c_int = VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
    cvt(unsafe { libc::ioctl(raw, TUNSETVNETHDRSZ, &hdr_len as *const libc::c_int) })?;
    // SAFETY: TUNSETOFFLOAD takes the flags as the argument value itself.
    cvt(unsafe {
        libc::ioctl(
            raw,
            TUNSETOFFLOAD,
            libc::c_ulong::from(TUN_F_CSUM | TUN_F_TSO4),
        )
    })?;
    Ok((fd, name))
}

/// `TUNSETOFFLOAD(0)`: the kernel again segments and checksums everything it writes. The
/// offloads outlive the descriptor on a persistent TUN, and a reader without
/// `IFF_VNET_HDR` must not get super-segments: done when an offload device is dropped, and
/// when a TUN is opened without offloads (the earlier reader may have died without it).
pub fn clear_offload(fd: RawFd) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes the flags as the argument value itself.
    cvt(unsafe { libc::ioctl(fd, TUNSETOFFLOAD, 0 as libc::c_ulong) }).map(|_| ())
}

/// read(2) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes for the duration of the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl VnetHdr {
    /// The header for one outgoing IPv4 packet `ip`: zero for a finished packet; for a TCP
    /// segment whose checksum is partial, `F_NEEDS_CSUM` with the checksum range (from the
    /// TCP header, field at 16), and for a super-segment longer than one `gso_size`
    /// segment also `GSO_TCPV4` with the header length and segment size (Linux:
    /// `virtio_net_hdr_from_skb`). `None` when a partial or GSO packet is not a
    /// well-formed TCP/IPv4 packet (never sent: the kernel would refuse it).
    pub fn for_tx(ip: &[u8], csum_partial: bool, gso_size: u16) -> Option<VnetHdr> {
        if !csum_partial && gso_size == 0 {
            return Some(VnetHdr::default());
        }
        let ihl = usize::from(*ip.first()? & 0x0f) * 4;
        if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != IPPROTO_TCP {
            return None;
        }
        let thl = usize::from(*ip.get(ihl + 12)? >> 4) * 4;
        if thl < 20 || ip.len() < ihl + thl {
            return None;
        }
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            hdr_len: (ihl + thl) as u16,
            gso_size: 0,
            csum_start: ihl as u16,
            csum_offset: 16,
        };
        if gso_size > 0 && ip.len() - ihl - thl > usize::from(gso_size) {
            h.gso_type = GSO_TCPV4;
            h.gso_size = gso_size;
        }
        Some(h)
    }

    /// The 10 bytes on the wire (host byte order, like [`VnetHdr::parse`] reads them).
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// write(2) of `pkt` (a non-blocking descriptor: `WouldBlock` when the queue is full).
pub fn write(fd: RawFd, pkt: &[u8]) -> io::Result<usize> {
    // SAFETY: pkt is valid for reads of pkt.len() bytes for the duration of the call.
    let n = unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A second descriptor for the same open TUN, close-on-exec like the first (plain dup(2)
/// would not be: a process forked meanwhile would keep the device open).
pub fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) of a descriptor the caller keeps open; the result is
    // checked and owned by the returned OwnedFd.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if d < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `d` is a fresh descriptor no one else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(d) })
}

/// writev(2) of `hdr` followed by `pkt`.
pub fn write_with_hdr(fd: RawFd, hdr: &VnetHdr, pkt: &[u8]) -> io::Result<usize> {
    let hdr = hdr.to_bytes();
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        },
    ];
    // SAFETY: both iovecs point to live buffers of the given lengths, only read by writev.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr_bytes(h: &VnetHdr) -> Vec<u8> {
        let mut v = vec![h.flags, h.gso_type];
        for x in [h.hdr_len, h.gso_size, h.csum_start, h.csum_offset] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
    }

    /// An IPv4 header (protocol `proto`, total length `len`) followed by zeros.
    fn ip(proto: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p
    }

    /// The transmit header for ustack's own packets: zero for finished packets, a partial
    /// checksum range for offloaded ones, GSO only for a super-segment longer than one
    /// segment; never for a packet that is not TCP/IPv4. What it writes, the receive side
    /// reads back and accepts.
    #[test]
    fn transmit_headers() {
        let mut p = ip(IPPROTO_TCP, 20 + 32 + 2896);
        p[20 + 12] = 8 << 4; // TCP header of 32 bytes (timestamps)
        assert_eq!(VnetHdr::for_tx(&p, false, 0), Some(VnetHdr::default()));
        let partial = VnetHdr::for_tx(&p, true, 0).unwrap();
        assert_eq!(
            partial,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_NONE,
                hdr_len: 52,
                gso_size: 0,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        let gso = VnetHdr::for_tx(&p, true, 1448).unwrap();
        assert_eq!(gso, tso(1448));
        assert_eq!(gso.to_bytes().to_vec(), hdr_bytes(&gso));
        assert_eq!(VnetHdr::parse(&gso.to_bytes()), Ok(gso));
        // One segment's worth or less is not a super-segment.
        assert_eq!(VnetHdr::for_tx(&p, true, 2896).unwrap().gso_type, GSO_NONE);
        // Not TCP, not IPv4, or cut short: nothing to offload.
        assert_eq!(VnetHdr::for_tx(&ip(IPPROTO_UDP, 100), true, 0), None);
        let mut v6 = p.clone();
        v6[0] = 0x60;
        assert_eq!(VnetHdr::for_tx(&v6, true, 1448), None);
        assert_eq!(VnetHdr::for_tx(&p[..40], true, 1448), None);
        assert_eq!(VnetHdr::for_tx(&[], true, 0), None);
    }

    fn tso(gso_size: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 52,
            gso_size,
            csum_start: 20,
            csum_offset: 16,
        }
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(TUNSETIFF, libc::TUNSETIFF);
        assert_eq!(TUNSETOFFLOAD, libc::TUNSETOFFLOAD);
        assert_eq!(TUNSETVNETHDRSZ, libc::TUNSETVNETHDRSZ);
        assert_eq!(TUN_F_CSUM, libc::TUN_F_CSUM);
        assert_eq!(TUN_F_TSO4, libc::TUN_F_TSO4);
    }

    #[test]
    fn parses_all_fields_in_host_order() {
        let h = tso(1448);
        let mut frame = hdr_bytes(&h);
        frame.extend_from_slice(&ip(6, 40));
        assert_eq!(VnetHdr::parse(&frame), Ok(h));
        assert_eq!(VnetHdr::parse(&[0u8; 10]), Ok(VnetHdr::default()));
    }

    #[test]
    fn truncated_header_is_an_error() {
        for n in 0..VNET_HDR_LEN {
            assert_eq!(VnetHdr::parse(&[0u8; 16][..n]), Err(VnetError::Truncated));
        }
    }

    #[test]
    fn plain_packet_needs_verification() {
        let info = check(&VnetHdr::default(), &ip(6, 40)).unwrap();
        assert_eq!(info, RxInfo::default());
        // DATA_VALID: validated by the kernel, not partial.
        let h = VnetHdr {
            flags: F_DATA_VALID,
            ..Default::default()
        };
        let info = check(&h, &ip(17, 28)).unwrap();
        assert!(info.csum_unnecessary && !info.csum_partial && !info.gso);
    }

    #[test]
    fn super_segment_is_accepted() {
        let info = check(&tso(1448), &ip(6, 65535)).unwrap();
        assert!(info.gso && info.csum_partial && info.csum_unnecessary);
        let ecn = VnetHdr {
            gso_type: GSO_TCPV4 | GSO_ECN,
            ..tso(1448)
        };
        assert!(check(&ecn, &ip(6, 3000)).unwrap().gso);
    }

    #[test]
    fn needs_csum_udp_and_tcp() {
        let udp = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 6,
            ..Default::default()
        };
        let info = check(&udp, &ip(17, 100)).unwrap();
        assert!(info.csum_partial && info.csum_unnecessary && !info.gso);
        let tcp = VnetHdr {
            csum_offset: 16,
            ..udp
        };
        assert!(check(&tcp, &ip(6, 40)).unwrap().csum_unnecessary);
        // Offsets that do not match the protocol or the header length.
        assert_eq!(check(&tcp, &ip(17, 100)), Err(VnetError::BadCsumOffsets));
        assert_eq!(check(&udp, &ip(6, 100)), Err(VnetError::BadCsumOffsets));
        assert_eq!(check(&tcp, &ip(1, 100)), Err(VnetError::BadCsumOffsets));
        let off = VnetHdr {
            csum_start: 24,
            ..tcp
        };
        assert_eq!(check(&off, &ip(6, 100)), Err(VnetError::BadCsumOffsets));
        // The checksum field lies beyond the packet.
        assert_eq!(check(&tcp, &ip(6, 30)), Err(VnetError::Truncated));
        // A fragment cannot carry a partial checksum.
        let mut frag = ip(6, 100);
        frag[6] = 0x20;
        assert_eq!(check(&tcp, &frag), Err(VnetError::BadCsumOffsets));
    }

    #[test]
    fn bad_gso_types_and_flags_are_refused() {
        for t in [3u8, 4, 5, 0x7f, 0x83] {
            let h = VnetHdr {
                gso_type: t,
                ..tso(1448)
            };
            assert_eq!(
                check(&h, &ip(6, 3000)),
                Err(VnetError::UnsupportedGso),
                "{t}"
            );
        }
        let h = VnetHdr {
            flags: 4,
            ..Default::default()
        };
        assert_eq!(check(&h, &ip(6, 40)), Err(VnetError::BadFlags));
        // TCPv4 GSO on a UDP packet, without MSS, or without a partial checksum.
        let h = VnetHdr {
            csum_offset: 6,
            ..tso(1448)
        };
        assert_eq!(check(&h, &ip(17, 3000)), Err(VnetError::BadGso));
        assert_eq!(check(&tso(0), &ip(6, 3000)), Err(VnetError::BadGso));
        let h = VnetHdr {
            flags: 0,
            ..tso(1448)
        };
        assert_eq!(check(&h, &ip(6, 3000)), Err(VnetError::BadGso));
    }

    #[test]
    fn short_ip_packet_is_truncated() {
        assert_eq!(check(&VnetHdr::default(), &[]), Err(VnetError::Truncated));
        assert_eq!(
            check(&VnetHdr::default(), &[0x45, 0, 0]),
            Err(VnetError::Truncated)
        );
    }
}
