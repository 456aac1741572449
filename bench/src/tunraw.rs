//! Raw TUN I/O: the read ceiling (`tunread`: read(2) and discard, one packet per call,
//! poll(2) when the queue is empty; the most any stack on a plain IFF_TUN|IFF_NO_PI device
//! can receive), the kernel UDP load that feeds it (`udpblast`, sendmmsg, optionally paced),
//! and the helpers the impairment relay uses.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{emit, gbps, round3};

/// Attaches to (or creates) the TUN device `name` with IFF_TUN|IFF_NO_PI.
pub fn open_tun(name: &str, nonblock: bool) -> io::Result<OwnedFd> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    let nb = name.as_bytes();
    if nb.len() >= 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let flags = libc::O_RDWR | libc::O_CLOEXEC | if nonblock { libc::O_NONBLOCK } else { 0 };
    // SAFETY: plain open(2) of a constant C string.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TUN | IFF_NO_PI,
        pad: [0; 22],
    };
    req.name[..nb.len()].copy_from_slice(nb);
    // SAFETY: TUNSETIFF reads and writes an ifreq-sized struct.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Waits up to `ms` for `fd` to become readable.
pub fn wait_readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// Reads and discards packets from TUN `dev` for `secs` seconds after the first packet.
pub fn tunread(dev: &str, secs: f64) -> io::Result<()> {
    let fd = open_tun(dev, true)?;
    println!("READY tunread {dev}");
    let mut buf = vec![0u8; 65536];
    let (mut pkts, mut bytes) = (0u64, 0u64);
    let mut start: Option<Instant> = None;
    let give_up = Instant::now() + Duration::from_secs_f64(secs + 20.0);
    loop {
        // SAFETY: reading into an owned buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            let done = match start {
                Some(s) => s.elapsed().as_secs_f64() >= secs,
                None => Instant::now() > give_up,
            };
            if done {
                break;
            }
            wait_readable(fd.as_raw_fd(), 20);
            continue;
        }
        let s = *start.get_or_insert_with(Instant::now);
        pkts += 1;
        bytes += n as u64;
        if pkts & 1023 == 0 && s.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    let el = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    emit(
        "tun_read_ceiling",
        "tun_raw",
        json!({ "packets": pkts, "bytes": bytes, "secs": round3(el), "pps": round3(pkts as f64 / el.max(1e-9)),
                "gbit_s": gbps(bytes, el), "avg_len": bytes / pkts.max(1) }),
    );
    Ok(())
}

/// Datagrams per message with `udpblast --gso` (44 x 1472 bytes fit in one UDP payload).
const GSO_SEGS: usize = 44;

/// Sends UDP datagrams of `len` payload bytes to `dst` as fast as sendmmsg allows.
/// `pps` > 0 paces the sender (batches on a schedule); 0 sends flat out. With `gso`, each
/// message carries [`GSO_SEGS`] datagrams' worth of payload and UDP_SEGMENT makes the kernel
/// cut it into `len`-byte datagrams just before the device (which has no UDP offload, so the
/// TUN reader still sees one packet per datagram).
pub fn udpblast(dst: SocketAddrV4, len: usize, secs: f64, pps: u64, gso: bool) -> io::Result<()> {
    const SOL_UDP: libc::c_int = 17;
    const UDP_SEGMENT: libc::c_int = 103;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(dst)?;
    let (batch, per_msg) = if gso { (8, GSO_SEGS) } else { (64, 1) };
    if gso {
        if len * GSO_SEGS > 65507 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--gso needs len * 44 <= 65507",
            ));
        }
        let seg = len as libc::c_int;
        // SAFETY: setsockopt with a c_int option value of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                SOL_UDP,
                UDP_SEGMENT,
                (&seg as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let payload = vec![0x42u8; len * per_msg];
    let mut iov: Vec<libc::iovec> = (0..batch)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is a valid "no name, no control" header.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = 1;
    }
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        // SAFETY: msgs/iov point at live buffers for the duration of the call.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), batch as _, 0) };
        if n > 0 {
            sent += n as u64 * per_msg as u64;
        }
        if pps > 0 {
            let due = Duration::from_secs_f64(sent as f64 / pps as f64);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let el = t0.elapsed().as_secs_f64();
    emit(
        "udpblast",
        "kernel",
        json!({ "sent": sent, "pps": round3(sent as f64 / el), "gso": gso }),
    );
    Ok(())
}
