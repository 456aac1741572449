//! `axum::serve::Listener` for [`TcpListener`] (feature `axum`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::net::{TcpListener, TcpStream};

impl axum::serve::Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    /// Accepts the next connection. Errors are logged and retried (axum's contract): a
    /// per-connection error (e.g. reset before accept) at once, others after 1 s.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match TcpListener::accept(self).await {
                Ok(pair) => return pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(err = %e, "ustack accept error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        TcpListener::local_addr(self)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
