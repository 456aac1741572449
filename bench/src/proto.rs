//! The benchmark protocol, served identically by the kernel server (`kserve`) and the ustack
//! server (`userve`), generic over any `AsyncRead + AsyncWrite` stream:
//!
//! - port 5001 *sink*: read to EOF, reply with the byte count (u64 big-endian), close.
//! - port 5002 *echo*: write back everything read (TCP_NODELAY).
//! - port 5003 *close*: read one byte, then close first (the server holds TIME-WAIT).
//! - port 5004 *source*: write until the peer goes away (server -> client bulk).
//! - port 5005 *sink in place* (`userve` only): the sink, discarding the data where it lies
//!   in the receive queue (`TcpStream::read_with`) instead of reading it into a buffer.
//!
//! 5001..5003 are the three ports of `../shared/peers` `tcpbench` and of `bench_server`
//! (`examples/src/bin/bench_server.rs`, which includes this file).

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Sink port.
pub const SINK: u16 = 5001;
/// Echo port.
pub const ECHO: u16 = 5002;
/// Close port.
pub const CLOSE: u16 = 5003;
/// Source port.
pub const SOURCE: u16 = 5004;
/// In-place sink port (`userve` only).
#[allow(dead_code)]
pub const SINK_IN_PLACE: u16 = 5005;

/// Reads to EOF and replies with the count.
pub async fn sink<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    s.write_all(&total.to_be_bytes()).await?;
    s.shutdown().await?;
    Ok(total)
}

/// Echoes until EOF.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

/// Reads one byte (2 s at most) and returns; the caller drops the stream (active close).
pub async fn close_one<S: AsyncRead + Unpin>(mut s: S) {
    let mut b = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
}

/// A stream that can be written through `&self` (readiness + `try_write`), so that a
/// sampler can read its state while a write is pending. tokio's and ustack's `TcpStream`
/// both have these methods.
pub trait TryWrite {
    /// Waits until the stream may be writable.
    fn writable(&self) -> impl std::future::Future<Output = io::Result<()>>;
    /// Writes what fits now; `WouldBlock` when nothing does.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

impl TryWrite for tokio::net::TcpStream {
    fn writable(&self) -> impl std::future::Future<Output = io::Result<()>> {
        tokio::net::TcpStream::writable(self)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
}

/// Writes 16 KiB chunks until the peer goes away (or 5 s without progress, or `max`);
/// calls `sample` every `every` meanwhile (cwnd/RTT sampling for the loss chart).
pub async fn source<S: TryWrite>(
    s: &S,
    max: Duration,
    every: Duration,
    mut sample: impl FnMut(&S, Duration),
) -> u64 {
    let buf = vec![0x5au8; 16 * 1024];
    let t0 = Instant::now();
    let mut progress = t0;
    let mut total = 0u64;
    let mut tick = tokio::time::interval(every);
    while t0.elapsed() < max && progress.elapsed() < Duration::from_secs(5) {
        tokio::select! {
            r = s.writable() => {
                if r.is_err() {
                    break;
                }
                match s.try_write(&buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        total += n as u64;
                        progress = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            _ = tick.tick() => sample(s, t0.elapsed()),
        }
    }
    total
}
