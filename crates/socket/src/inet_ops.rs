//! `inet_stream_ops` and `inet_dgram_ops` (Linux: `net/ipv4/af_inet.c`).

use std::io;
use std::net::SocketAddrV4;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::core::NetCore;
use crate::ops::{inet_stream_connect, ProtoOps};
use crate::sock::{AddressFamily, Sock, SockType, Socket};

/// Stream socket operations (Linux: `inet_stream_ops`).
#[derive(Debug, Default)]
pub struct InetStreamOps;

/// Datagram socket operations (Linux: `inet_dgram_ops`).
#[derive(Debug, Default)]
pub struct InetDgramOps;

impl ProtoOps for InetStreamOps {
    fn name(&self) -> &'static str {
        "inet_stream_ops"
    }

    fn family(&self) -> AddressFamily {
        AddressFamily::INET
    }

    fn sock_type(&self) -> SockType {
        SockType::Stream
    }

    fn poll_connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        addr: SocketAddrV4,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        inet_stream_connect(core, now, sock, addr, cx)
    }

    /// Linux: `inet_listen`.
    fn listen(&self, core: &mut NetCore, sock: &Socket, backlog: u32) -> io::Result<()> {
        sock.sk.prot.listen(core, sock.sk.id, backlog)
    }

    fn listen_any(&self, core: &mut NetCore, sock: &Socket, backlog: u32) -> io::Result<()> {
        sock.sk.prot.listen_any(core, sock.sk.id, backlog)
    }

    /// Linux: `inet_accept` -> `sk->sk_prot->accept` -> `sock_graft`: the child gets the
    /// parent's ops and protocol.
    fn poll_accept(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Socket>> {
        sock.sk
            .prot
            .poll_accept(core, now, sock.sk.id, cx)
            .map_ok(|id| Socket {
                ops: sock.ops,
                sk: Sock {
                    prot: sock.sk.prot,
                    id,
                },
            })
    }
}

impl ProtoOps for InetDgramOps {
    fn name(&self) -> &'static str {
        "inet_dgram_ops"
    }

    fn family(&self) -> AddressFamily {
        AddressFamily::INET
    }

    fn sock_type(&self) -> SockType {
        SockType::Dgram
    }

    /// Linux: `inet_dgram_connect`: sets the default destination, never waits.
    fn poll_connect(
        &self,
        core: &mut NetCore,
        now: Instant,
        sock: &Socket,
        addr: SocketAddrV4,
        _cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(sock.sk.prot.connect(core, now, sock.sk.id, addr))
    }
}
