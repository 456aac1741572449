//! The Linux errno values the protocol errors map to, and the `io::Error` a kernel socket
//! call would give for one (shared by IP output, TCP and UDP errors).

use std::io;

/// Broken pipe.
pub const EPIPE: i32 = 32;
/// Try again (would block).
pub const EAGAIN: i32 = 11;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// Message too long.
pub const EMSGSIZE: i32 = 90;
/// Address already in use.
pub const EADDRINUSE: i32 = 98;
/// Cannot assign requested address.
pub const EADDRNOTAVAIL: i32 = 99;
/// Network is unreachable.
pub const ENETUNREACH: i32 = 101;
/// Software caused connection abort.
pub const ECONNABORTED: i32 = 103;
/// Connection reset by peer.
pub const ECONNRESET: i32 = 104;
/// No buffer space available.
pub const ENOBUFS: i32 = 105;
/// Transport endpoint is already connected.
pub const EISCONN: i32 = 106;
/// Transport endpoint is not connected.
pub const ENOTCONN: i32 = 107;
/// Connection timed out.
pub const ETIMEDOUT: i32 = 110;
/// Connection refused.
pub const ECONNREFUSED: i32 = 111;
/// No route to host.
pub const EHOSTUNREACH: i32 = 113;

/// The `io::Error` a kernel socket call gives for Linux errno `errno`: built with
/// `from_raw_os_error` (so `raw_os_error()` and the message are tokio's, "Connection
/// refused (os error 111)") when std gives that errno the kind `kind`; otherwise (an
/// errno std leaves uncategorised, such as `EISCONN`, `EMSGSIZE`, `ENOBUFS`) with `kind`
/// and `err`'s message, so code can still match the kind.
pub fn kernel_error<E>(errno: i32, kind: io::ErrorKind, err: E) -> io::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let raw = io::Error::from_raw_os_error(errno);
    if raw.kind() == kind {
        raw
    } else {
        io::Error::new(kind, err)
    }
}
