//! TCP and UDP sockets with the names, signatures and behaviour of `tokio::net`.
//!
//! Constructors without a stack argument (`bind`, `connect`) use the process-wide default
//! stack ([`Stack::set_default`](crate::Stack::set_default)); the `*_with(&stack, ..)` forms
//! take one explicitly.

mod addr;
mod handle;
mod socket;
pub mod tcp;
mod udp;

pub use addr::ToSocketAddrs;
pub use socket::Socket;
pub use tcp::{TcpListener, TcpSocket, TcpStream};
pub use udp::{UdpRecvMsg, UdpSocket};

/// Resolves `host` (`"example.com:80"`, `("example.com", 80)`, or a numeric address) to
/// socket addresses through the default stack's DNS resolver (like
/// `tokio::net::lookup_host`; see [`crate::dns`] and
/// [`StackBuilder::dns`](crate::StackBuilder::dns)).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// for addr in ustack::net::lookup_host("example.com:80").await? {
///     println!("{addr}");
/// }
/// # Ok(()) }
/// ```
pub async fn lookup_host<A: ToSocketAddrs>(
    host: A,
) -> std::io::Result<impl Iterator<Item = std::net::SocketAddr>> {
    lookup_host_with(&crate::Stack::try_default()?, host).await
}

/// [`lookup_host`] through `stack`.
pub async fn lookup_host_with<A: ToSocketAddrs>(
    stack: &crate::Stack,
    host: A,
) -> std::io::Result<impl Iterator<Item = std::net::SocketAddr>> {
    let addrs = addr::resolve_addrs(stack, &host).await?;
    Ok(addrs.into_iter().map(std::net::SocketAddr::V4))
}

use std::task::Poll;

use tokio::io::{Interest, Ready};
use ustack_socket::PollMask;

pub(crate) fn interest_mask(interest: Interest) -> PollMask {
    let mut m = PollMask::EMPTY;
    if interest.is_readable() {
        m |= PollMask::IN;
    }
    if interest.is_writable() {
        m |= PollMask::OUT;
    }
    m
}

/// Maps an `EPOLL*` mask to tokio's `Ready`, keeping only what `interest` asked for.
pub(crate) fn mask_to_ready(mask: PollMask, interest: Interest) -> Ready {
    let mut r = Ready::EMPTY;
    if interest.is_readable() {
        if mask.intersects(PollMask::IN | PollMask::ERR | PollMask::HUP) {
            r |= Ready::READABLE;
        }
        if mask.intersects(PollMask::RDHUP | PollMask::HUP) {
            r |= Ready::READ_CLOSED;
        }
    }
    if interest.is_writable() {
        if mask.intersects(PollMask::OUT | PollMask::ERR) {
            r |= Ready::WRITABLE;
        }
        if mask.contains(PollMask::HUP) {
            r |= Ready::WRITE_CLOSED;
        }
    }
    r
}

/// `Poll::Pending` from a `MSG_DONTWAIT` call cannot happen; map it to `WouldBlock` anyway.
pub(crate) fn dontwait<T>(p: Poll<std::io::Result<T>>) -> std::io::Result<T> {
    match p {
        Poll::Ready(r) => r,
        Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
    }
}
