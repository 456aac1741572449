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
pub use udp::UdpSocket;

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
