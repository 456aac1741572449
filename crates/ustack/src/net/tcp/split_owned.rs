//! Owned halves of a `TcpStream` (like `tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf}`).

use std::error::Error;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};
use ustack_socket::MsgFlags;

use crate::net::handle::SockHandle;
use crate::net::tcp::stream;
use crate::net::TcpStream;

/// The owned read half of a [`TcpStream`] (see [`TcpStream::into_split`]).
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<SockHandle>,
}

/// The owned write half of a [`TcpStream`]. Dropping it shuts down the write direction
/// (FIN), like tokio; [`forget`](OwnedWriteHalf::forget) avoids that.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<SockHandle>,
    shutdown_on_drop: bool,
}

/// The halves given to [`OwnedReadHalf::reunite`] came from different streams.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tried to reunite halves that are not from the same socket"
        )
    }
}

impl Error for ReuniteError {}

pub(crate) fn split_owned(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let inner = stream.inner;
    (
        OwnedReadHalf {
            inner: inner.clone(),
        },
        OwnedWriteHalf {
            inner,
            shutdown_on_drop: true,
        },
    )
}

fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if Arc::ptr_eq(&read.inner, &write.inner) {
        write.shutdown_on_drop = false;
        let inner = read.inner.clone();
        drop(read);
        drop(write);
        Ok(TcpStream::from_handle(inner))
    } else {
        Err(ReuniteError(read, write))
    }
}

impl OwnedReadHalf {
    /// Puts the halves back together; fails if they are from different streams.
    ///
    /// ```no_run
    /// # fn demo(stream: ustack::net::TcpStream) {
    /// let (r, w) = stream.into_split();
    /// let stream = r.reunite(w).unwrap();
    /// # }
    /// ```
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

    /// Polls for peeked data.
    pub fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        stream::poll_peek(&self.inner, cx, buf)
    }

    /// Peeks data without consuming it.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx, buf, MsgFlags::PEEK))
            .await
            .map(|(n, _)| n)
    }

    /// Waits for readiness.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// Waits until readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Reads without waiting.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        stream::try_read(&self.inner, buf)
    }

    /// Reads in place (see [`TcpStream::read_with`]).
    pub async fn read_with<F: FnOnce(&[u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        std::future::poll_fn(|cx| self.inner.poll_recv_in_place(cx, &mut f, MsgFlags::NONE)).await
    }

    /// Reads in place without waiting (see [`TcpStream::try_read_with`]).
    pub fn try_read_with<F: FnOnce(&[u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        stream::try_in_place(|cx| {
            self.inner
                .poll_recv_in_place(cx, &mut f, MsgFlags::DONTWAIT)
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(true).map(SocketAddr::V4)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }
}

impl OwnedWriteHalf {
    /// Puts the halves back together; fails if they are from different streams.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// Drops the half without shutting down the write direction.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }

    /// Waits for readiness.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// Waits until writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Writes without waiting.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        stream::try_write_vectored(&self.inner, &[IoSlice::new(buf)])
    }

    /// Writes several buffers without waiting.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        stream::try_write_vectored(&self.inner, bufs)
    }

    /// Writes in place (see [`TcpStream::write_with`]).
    pub async fn write_with<F: FnOnce(&mut [u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        std::future::poll_fn(|cx| self.inner.poll_send_in_place(cx, &mut f, MsgFlags::NONE)).await
    }

    /// Writes in place without waiting (see [`TcpStream::try_write_with`]).
    pub fn try_write_with<F: FnOnce(&mut [u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let mut f = Some(f);
        stream::try_in_place(|cx| {
            self.inner
                .poll_send_in_place(cx, &mut f, MsgFlags::DONTWAIT)
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(true).map(SocketAddr::V4)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.getname(false).map(SocketAddr::V4)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = stream::poll_shutdown(&self.inner);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        stream::poll_read(&self.inner, cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        stream::poll_write(&self.inner, cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        stream::poll_write(&self.inner, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream::poll_shutdown(&self.inner)
    }
}
