//! The kernel's counters of an interface, by rtnetlink (`RTM_GETLINK`, the reply's
//! `IFLA_STATS64`, as `ip -s link` reads them): for a TUN, the kernel's `tx_dropped` counts
//! the packets it dropped because its queue to the reader was full, which the reader
//! cannot see otherwise.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const IFLA_STATS64: u16 = 23;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
/// `rtnl_link_stats64.tx_dropped`: the eighth u64.
const TX_DROPPED_AT: usize = 7 * 8;

/// An rtnetlink socket for one interface, opened in the network namespace of the thread
/// that opens it (queries from any thread later still ask that namespace).
pub(super) struct LinkQuery {
    fd: OwnedFd,
    ifindex: u32,
}

impl LinkQuery {
    /// For interface `name` in the calling thread's network namespace.
    pub(super) fn open(name: &str) -> io::Result<LinkQuery> {
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        // SAFETY: a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor no one else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(LinkQuery { fd, ifindex })
    }

    /// The interface's `tx_dropped` now.
    pub(super) fn tx_dropped(&self) -> io::Result<u64> {
        let mut req = [0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
        let len = req.len() as u32;
        req[0..4].copy_from_slice(&len.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
        req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        req[NLMSG_HDRLEN] = libc::AF_UNSPEC as u8;
        req[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].copy_from_slice(&self.ifindex.to_ne_bytes());
        // SAFETY: sends `req.len()` bytes from a valid buffer to the kernel (no address:
        // the socket's default peer is the kernel).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        // SAFETY: receives into a valid buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        parse_tx_dropped(buf.get(..n as usize).unwrap_or_default())
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("RTM_GETLINK reply: {what}"),
    )
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `tx_dropped` from the `IFLA_STATS64` attribute of an `RTM_NEWLINK` reply.
fn parse_tx_dropped(msg: &[u8]) -> io::Result<u64> {
    let len = u32_at(msg, 0).ok_or_else(|| bad("short"))? as usize;
    let kind = u16_at(msg, 4).ok_or_else(|| bad("short"))?;
    let msg = msg.get(..len).ok_or_else(|| bad("truncated"))?;
    if kind == NLMSG_ERROR {
        let code = u32_at(msg, NLMSG_HDRLEN).ok_or_else(|| bad("short error"))? as i32;
        return Err(io::Error::from_raw_os_error(-code));
    }
    if kind != RTM_NEWLINK {
        return Err(bad("not a link"));
    }
    let mut at = NLMSG_HDRLEN + IFINFOMSG_LEN;
    while at + 4 <= msg.len() {
        let alen = usize::from(u16_at(msg, at).ok_or_else(|| bad("attribute"))?);
        let atype = u16_at(msg, at + 2).ok_or_else(|| bad("attribute"))? & 0x3fff;
        if alen < 4 {
            return Err(bad("attribute length"));
        }
        if atype == IFLA_STATS64 {
            let v = msg
                .get(at + 4 + TX_DROPPED_AT..at + 4 + TX_DROPPED_AT + 8)
                .ok_or_else(|| bad("short statistics"))?;
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            return Ok(u64::from_ne_bytes(b));
        }
        at += alen.div_ceil(4) * 4;
    }
    Err(bad("no IFLA_STATS64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_reply(attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
        for (t, v) in attrs {
            let alen = (4 + v.len()) as u16;
            m.extend_from_slice(&alen.to_ne_bytes());
            m.extend_from_slice(&t.to_ne_bytes());
            m.extend_from_slice(v);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m
    }

    #[test]
    fn tx_dropped_is_found_past_other_attributes() {
        let mut stats = vec![0u8; 24 * 8];
        stats[TX_DROPPED_AT..TX_DROPPED_AT + 8].copy_from_slice(&4242u64.to_ne_bytes());
        let m = link_reply(&[(3, b"tun0\0".to_vec()), (IFLA_STATS64, stats)]);
        assert_eq!(parse_tx_dropped(&m).unwrap(), 4242);
    }

    #[test]
    fn damaged_replies_are_errors() {
        assert!(parse_tx_dropped(&[]).is_err());
        let no_stats = link_reply(&[(3, b"tun0\0".to_vec())]);
        assert!(parse_tx_dropped(&no_stats).is_err());
        let short = link_reply(&[(IFLA_STATS64, vec![0u8; 16])]);
        assert!(parse_tx_dropped(&short).is_err());
        let mut zero_len = link_reply(&[(3, vec![1, 2, 3, 4])]);
        let at = NLMSG_HDRLEN + IFINFOMSG_LEN;
        zero_len[at..at + 2].copy_from_slice(&0u16.to_ne_bytes());
        assert!(parse_tx_dropped(&zero_len).is_err());
        let mut err = vec![0u8; NLMSG_HDRLEN + 4];
        let n = err.len() as u32;
        err[0..4].copy_from_slice(&n.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[NLMSG_HDRLEN..].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(
            parse_tx_dropped(&err).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
