//! Raw IPv4 packets on one device through an `AF_PACKET` datagram socket (Linux
//! `packet(7)`, `SOCK_DGRAM`, `ETH_P_IP`): write packets with any source into a TUN device,
//! as if the kernel routed them there, or capture what crosses it. Opened in the calling
//! thread's network namespace; closed on drop.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An `AF_PACKET` socket for IPv4 on one device.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl PacketSocket {
    /// A socket that sends into device `ifname` (not bound: it captures nothing, so a
    /// flood does not also copy every packet back to it).
    pub fn sender(ifname: &str) -> io::Result<PacketSocket> {
        Self::open(ifname)
    }

    /// A socket that captures the IPv4 packets crossing device `ifname` (both
    /// directions); each [`recv`](Self::recv) waits at most `read_timeout`.
    pub fn capture(ifname: &str, read_timeout: Duration) -> io::Result<PacketSocket> {
        let s = Self::open(ifname)?;
        // SAFETY: bind with a pointer to a live sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                s.fd.as_raw_fd(),
                (&s.addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(with_context(format!("bind to {ifname}")));
        }
        let tv = libc::timeval {
            tv_sec: read_timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(read_timeout.subsec_micros()),
        };
        // SAFETY: setsockopt with a pointer to a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                s.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(with_context("SO_RCVTIMEO".to_string()));
        }
        Ok(s)
    }

    fn open(ifname: &str) -> io::Result<PacketSocket> {
        let name = CString::new(ifname)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(with_context(format!("no interface {ifname}")));
        }
        let proto = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: socket(2) with constant arguments.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, libc::c_int::from(proto)) };
        if fd < 0 {
            return Err(with_context("AF_PACKET socket".to_string()));
        }
        // SAFETY: fd is a socket we just opened and own from now on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as libc::c_int;
        Ok(PacketSocket { fd, addr })
    }

    /// Writes one IPv4 packet into the device without blocking (a full queue is an
    /// error, `WouldBlock`).
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: sendto(2) with a valid buffer and a sockaddr_ll of the right size.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                libc::MSG_DONTWAIT,
                (&self.addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// The next captured packet into `buf`: its length, or `None` when the read timeout
    /// passed first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: recv into a live buffer of the length passed.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
    }
}

fn with_context(what: String) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
