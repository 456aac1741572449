//! User calls (Linux: `tcp_prot` ops — `inet_bind`/`inet_csk_get_port`, `inet_listen`,
//! `inet_csk_accept`, `tcp_v4_connect`, `tcp_sendmsg`, `tcp_recvmsg`, `tcp_shutdown`,
//! `tcp_close`, `tcp_disconnect`, `tcp_poll`, `setsockopt`).

use std::collections::{HashSet, VecDeque};
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::conn::{check_write_space, set_state, tcp_done};
use crate::ctx::TimerKind;
use crate::error::TcpError;
use crate::hash::Listening;
use crate::output::{send_active_rst, send_syn, write_xmit, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::tcb::{wscale_for, Listener, PlainSock, Tcb};
use crate::tw::TwSock;
use ustack_netdev::DevId;

/// Most bytes of free send-buffer space offered to one in-place write
/// ([`SendSrc::InPlace`]): about what one large application write carries, so a closure
/// that writes little does not make the send buffer grow to its limit.
pub const IN_PLACE_CHUNK: usize = 64 * 1024;

/// Where [`TcpLayer::send_from`] takes data from.
pub enum SendSrc<'a> {
    /// Copied from this buffer.
    Copy(&'a [u8]),
    /// Copied from these buffers in order, as one write (Linux `tcp_sendmsg` over an
    /// iovec): the bytes are queued first and sent after, so a small buffer after
    /// another is not held back by Nagle's algorithm behind the segment of the first.
    Vectored(&'a [IoSlice<'a>]),
    /// Written in place into the send buffer by this closure, which returns how many
    /// bytes it wrote (at the front of the space it was given). Called at most once,
    /// with one contiguous part of the free space.
    InPlace(&'a mut dyn FnMut(&mut [u8]) -> usize),
}

/// Where [`TcpLayer::recv_into`] puts data.
pub enum RecvDst<'a> {
    /// Copied into this buffer.
    Copy(&'a mut [u8]),
    /// Shown in place to this closure, which returns how many of the bytes it was shown
    /// it consumed. Called at most once, with the oldest queued bytes as one contiguous
    /// part (not all of them when the queue wraps around its storage).
    InPlace(&'a mut dyn FnMut(&[u8]) -> usize),
}

/// No more data will arrive for the application: the peer's FIN, a closed connection,
/// or `shutdown(SHUT_RD)` (a receive then returns end of stream once the queue is empty).
fn read_ended(tcb: &Tcb) -> bool {
    tcb.fin_rcvd || tcb.state == TcpState::Closed || tcb.shut_rd
}

fn overlaps(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

impl TcpLayer {
    /// A new socket in CLOSED with the stack's default options (Linux `inet_create`).
    pub fn socket(&mut self) -> SockId {
        let opts = self.default_opts();
        self.socks.insert(Sock::Plain(Box::new(PlainSock {
            opts,
            local: None,
            evt: false,
        })))
    }

    /// True when `port` can be bound at `ip` by a socket with these `SO_REUSEADDR` /
    /// `SO_REUSEPORT` flags and bound device (Linux `inet_csk_bind_conflict`): an owner on
    /// an overlapping address conflicts unless both set SO_REUSEADDR and the owner does
    /// not listen, or both set SO_REUSEPORT, or both are bound to devices and not the same
    /// one; ports held only by connections (e.g. TIME_WAIT) are free with either flag.
    fn port_free(
        &self,
        ip: Ipv4Addr,
        port: u16,
        reuse: bool,
        reuseport: bool,
        dev: Option<DevId>,
    ) -> bool {
        let Some(b) = self.hash.bucket(port) else {
            return true;
        };
        if b.conns > 0 && !reuse && !reuseport {
            return false;
        }
        for o in &b.owners {
            let (oaddr, opts, olisten) = match self.socks.get(*o) {
                Some(Sock::Plain(p)) => match p.local {
                    Some(a) => (*a.ip(), p.opts, false),
                    None => continue,
                },
                Some(Sock::Listen(l)) => (*l.local.ip(), l.opts, true),
                _ => continue,
            };
            let other_dev = matches!((dev, opts.ip.oif), (Some(a), Some(b)) if a != b);
            let shared =
                (reuse && opts.reuseaddr && !olisten) || (reuseport && opts.reuseport) || other_dev;
            if overlaps(ip, oaddr) && !shared {
                return false;
            }
        }
        true
    }

    /// Binds to a local address; port 0 picks a free ephemeral port (Linux `inet_bind`).
    pub fn bind(&mut self, id: SockId, addr: SocketAddrV4) -> Result<(), TcpError> {
        let (reuse, reuseport, dev) = match self.socks.get(id) {
            Some(Sock::Plain(p)) if p.local.is_none() => {
                (p.opts.reuseaddr, p.opts.reuseport, p.opts.ip.oif)
            }
            Some(Sock::Plain(_)) | Some(Sock::Listen(_)) | Some(Sock::Conn(_)) => {
                return Err(TcpError::InvalidInput)
            }
            _ => return Err(TcpError::NotConnected),
        };
        let port = if addr.port() == 0 {
            let (lo, hi) = self.sh.cfg.ephemeral;
            let n = (hi.saturating_sub(lo) as u32) + 1;
            let start = self
                .sh
                .isn
                .port_offset(*addr.ip(), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            let mut found = None;
            for i in 0..n {
                let p =
                    lo + ((start.wrapping_add(self.sh.port_counter).wrapping_add(i)) % n) as u16;
                if self.hash.bucket(p).is_none() {
                    found = Some(p);
                    self.sh.port_counter = self.sh.port_counter.wrapping_add(i + 1);
                    break;
                }
            }
            found.ok_or(TcpError::AddrNotAvailable)?
        } else {
            if !self.port_free(*addr.ip(), addr.port(), reuse, reuseport, dev) {
                return Err(TcpError::AddrInUse);
            }
            addr.port()
        };
        self.hash.add_owner(port, id);
        if let Some(Sock::Plain(p)) = self.socks.get_mut(id) {
            p.local = Some(SocketAddrV4::new(*addr.ip(), port));
        }
        Ok(())
    }

    /// Starts listening (Linux `inet_listen`); an unbound socket gets an ephemeral port.
    pub fn listen(&mut self, id: SockId, backlog: u32) -> Result<(), TcpError> {
        self.listen_inner(id, backlog, false)
    }

    /// Listens on every address and port that reaches this stack and is not otherwise
    /// taken (a transparent listener for tun2socks-style use; Linux `IP_TRANSPARENT`
    /// with a catch-all redirect).
    pub fn listen_any(&mut self, id: SockId, backlog: u32) -> Result<(), TcpError> {
        self.listen_inner(id, backlog, true)
    }

    fn listen_inner(&mut self, id: SockId, backlog: u32, any: bool) -> Result<(), TcpError> {
        let backlog = backlog.min(self.sh.cfg.somaxconn) as usize;
        match self.socks.get_mut(id) {
            Some(Sock::Listen(l)) => {
                l.backlog = backlog;
                return Ok(());
            }
            Some(Sock::Plain(_)) => {}
            Some(_) => return Err(TcpError::InvalidState),
            None => return Err(TcpError::NotConnected),
        }
        let local = if any {
            if self.hash.any_listener().is_some() {
                return Err(TcpError::AddrInUse);
            }
            match self.socks.get(id) {
                Some(Sock::Plain(p)) => p
                    .local
                    .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                _ => return Err(TcpError::InvalidState),
            }
        } else {
            let bound = match self.socks.get(id) {
                Some(Sock::Plain(p)) => p.local,
                _ => None,
            };
            match bound {
                Some(a) => a,
                None => {
                    self.bind(id, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
                    match self.socks.get(id) {
                        Some(Sock::Plain(p)) => p.local.ok_or(TcpError::AddrNotAvailable)?,
                        _ => return Err(TcpError::InvalidState),
                    }
                }
            }
        };
        let member = match self.socks.get(id) {
            Some(Sock::Plain(p)) => Listening {
                id,
                reuseport: p.opts.reuseport,
                dev: p.opts.ip.oif,
            },
            _ => return Err(TcpError::InvalidState),
        };
        if !any && !self.hash.insert_listener(local, member) {
            return Err(TcpError::AddrInUse);
        }
        if any {
            self.hash.set_any_listener(Some(member));
        }
        let Some(Sock::Plain(p)) = self.socks.get(id) else {
            return Err(TcpError::InvalidState);
        };
        let l = Listener {
            opts: p.opts,
            local,
            backlog,
            syn_q: HashSet::new(),
            accept_q: VecDeque::new(),
            evt: false,
        };
        if let Some(slot) = self.socks.get_mut(id) {
            *slot = Sock::Listen(Box::new(l));
        }
        Ok(())
    }

    /// Takes one established connection from the accept queue; `Ok(None)` when empty
    /// (Linux `inet_csk_accept` with O_NONBLOCK).
    pub fn accept(&mut self, id: SockId) -> Result<Option<SockId>, TcpError> {
        loop {
            let cid = match self.socks.get_mut(id) {
                Some(Sock::Listen(l)) => match l.accept_q.pop_front() {
                    Some(c) => c,
                    None => return Ok(None),
                },
                Some(_) => return Err(TcpError::InvalidInput),
                None => return Err(TcpError::NotConnected),
            };
            if let Some(Sock::Conn(t)) = self.socks.get_mut(cid) {
                t.listener = None;
                return Ok(Some(cid));
            }
        }
    }

    /// Linux `tcp_twsk_unique` with `tcp_tw_reuse`: a TIME_WAIT pair may be reused by an
    /// outgoing connection when timestamps protect it (RFC 7323 PAWS) and it is older
    /// than one second. Returns the sequence number the new connection must start after.
    fn tw_reusable(&self, t: &(SocketAddrV4, SocketAddrV4), now: Instant) -> Option<SeqNum> {
        if !self.sh.cfg.tw_reuse {
            return None;
        }
        let id = self.hash.lookup_established(t)?;
        match self.socks.get(id)? {
            Sock::Tw(tw) => tw.reusable_after(now),
            Sock::Conn(t) if t.state == TcpState::TimeWait => TwSock::of(t).reusable_after(now),
            _ => None,
        }
    }

    /// Picks a local port for a connection to `remote` (RFC 6056 algorithm 3; Linux
    /// `__inet_hash_connect`): the 4-tuple must be unused and the port not bound.
    fn connect_port(
        &mut self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        now: Instant,
    ) -> Result<u16, TcpError> {
        let (lo, hi) = self.sh.cfg.ephemeral;
        let n = (hi.saturating_sub(lo) as u32) + 1;
        let offset = self.sh.isn.port_offset(local_ip, remote);
        for i in 0..n {
            let p = crate::isn::ephemeral_port(offset, self.sh.port_counter, i, lo, hi);
            let bound = self.hash.bucket(p).is_some_and(|b| !b.owners.is_empty());
            if bound {
                continue;
            }
            let t = (SocketAddrV4::new(local_ip, p), remote);
            if self.hash.lookup_established(&t).is_none() || self.tw_reusable(&t, now).is_some() {
                self.sh.port_counter = self.sh.port_counter.wrapping_add(i + 1);
                return Ok(p);
            }
        }
        Err(TcpError::AddrNotAvailable)
    }

    /// Active open: sends the SYN (Linux `tcp_v4_connect` + `tcp_connect`). Completion is
    /// seen through [`TcpLayer::state`] / [`TcpLayer::poll_state`] / events.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &mut self,
        now: Instant,
        id: SockId,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        route_mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<(), TcpError> {
        let (opts, bound) = match self.socks.get(id) {
            Some(Sock::Plain(p)) => (p.opts, p.local),
            Some(Sock::Conn(t)) => {
                return Err(match t.state {
                    TcpState::SynSent | TcpState::SynReceived => TcpError::InvalidState,
                    TcpState::Closed => TcpError::InvalidInput,
                    _ => TcpError::AlreadyConnected,
                })
            }
            Some(_) => return Err(TcpError::InvalidState),
            None => return Err(TcpError::NotConnected),
        };
        if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_broadcast() {
            return Err(TcpError::InvalidInput);
        }
        // Linux tcp_v4_connect: a multicast route is ENETUNREACH.
        if remote.ip().is_multicast() {
            return Err(TcpError::NetworkUnreachable);
        }
        let local = match bound {
            Some(a) => {
                let ip = if a.ip().is_unspecified() {
                    local_ip
                } else {
                    *a.ip()
                };
                let l = SocketAddrV4::new(ip, a.port());
                if self.hash.lookup_established(&(l, remote)).is_some()
                    && self.tw_reusable(&(l, remote), now).is_none()
                {
                    return Err(TcpError::AddrInUse);
                }
                l
            }
            None => SocketAddrV4::new(local_ip, self.connect_port(local_ip, remote, now)?),
        };
        let mut iss = self.gen_isn(now, local, remote);
        if let Some(after) = self.tw_reusable(&(local, remote), now) {
            // Kill the TIME_WAIT socket; start clearly above its sequence space.
            if let Some(tw) = self.hash.lookup_established(&(local, remote)) {
                if let Some(Sock::Conn(t)) = self.socks.get_mut(tw) {
                    tcp_done(t, &mut self.sh, None);
                }
                self.conn_closed(tw);
                self.sh.stats.tcp_tw_recycled += 1;
            }
            iss = iss.max(after);
        }
        let mut tcb = Tcb::new(id, opts, &self.sh.cfg, local, remote, iss, route_mtu, now);
        if self.sh.cfg.window_scaling {
            tcb.rcv_wscale = wscale_for(self.sh.cfg.rmem.2.max(opts.rcvbuf));
        }
        tcb.ts_offset = self.sh.isn.ts_offset(*local.ip(), *remote.ip());
        tcb.state = TcpState::SynSent;
        tcb.rtt_seq = Some((iss + 1, now));
        if let Some(a) = bound {
            self.hash.remove_owner(a.port(), id);
        }
        self.hash.insert_established((local, remote), id);
        self.hash.add_conn(local.port());
        tcb.hashed = true;
        tcb.in_bhash = true;
        self.sh.stats.active_opens += 1;
        send_syn(&mut tcb, &mut self.sh, now, false, out);
        if let Some(slot) = self.socks.get_mut(id) {
            *slot = Sock::Conn(Box::new(tcb));
        }
        Ok(())
    }

    /// Queues data for sending (Linux `tcp_sendmsg`). Returns the bytes accepted;
    /// `Err(WouldBlock)` when the send buffer is full or the handshake is still running.
    pub fn send(
        &mut self,
        now: Instant,
        id: SockId,
        data: &[u8],
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<usize, TcpError> {
        self.send_from(now, id, SendSrc::Copy(data), out)
    }

    /// [`send`](Self::send) from a buffer or written in place by a closure: with
    /// [`SendSrc::InPlace`] the closure is offered up to [`IN_PLACE_CHUNK`] bytes of free
    /// send-buffer space and the bytes it reports written are queued. `Ok(0)` when it
    /// wrote nothing.
    pub fn send_from(
        &mut self,
        now: Instant,
        id: SockId,
        src: SendSrc<'_>,
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<usize, TcpError> {
        let tcb = match self.socks.get_mut(id) {
            Some(Sock::Conn(t)) => t,
            Some(_) => return Err(TcpError::NotConnected),
            None => return Err(TcpError::NotConnected),
        };
        if let Some(e) = tcb.error.take() {
            return Err(e);
        }
        if tcb.shut_wr {
            return Err(TcpError::BrokenPipe);
        }
        match tcb.state {
            TcpState::Established | TcpState::CloseWait => {}
            TcpState::SynSent | TcpState::SynReceived => return Err(TcpError::WouldBlock),
            TcpState::Closed => return Err(TcpError::BrokenPipe),
            _ => return Err(TcpError::BrokenPipe),
        }
        let want = match &src {
            SendSrc::Copy(data) => data.len(),
            SendSrc::Vectored(bufs) => bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len())),
            SendSrc::InPlace(_) => IN_PLACE_CHUNK,
        };
        if want == 0 {
            return Ok(0);
        }
        self.sh.tick(now);
        let space = tcb.sndbuf_cap.saturating_sub(tcb.snd_buf.len());
        let mut n = space.min(want);
        // Above the global limit a socket may still fill its `wmem.0` minimum
        // (Linux `sk_wmem_schedule` / `__sk_mem_raise_allocated`).
        if n > 0 && !self.sh.wmem_schedule(tcb.snd_buf.len(), n) {
            n = self.sh.cfg.wmem.0.saturating_sub(tcb.snd_buf.len()).min(n);
            if n == 0 {
                self.sh.stats.tcp_snd_mem_drop += 1;
            }
        }
        if n == 0 {
            tcb.write_blocked = true;
            return Err(TcpError::WouldBlock);
        }
        if n < want {
            tcb.write_blocked = true;
        }
        let n = match src {
            SendSrc::Copy(data) => {
                tcb.snd_buf.extend(data.get(..n).unwrap_or(&[]));
                n
            }
            SendSrc::Vectored(bufs) => {
                let mut left = n;
                for b in bufs {
                    if left == 0 {
                        break;
                    }
                    let part = b.get(..b.len().min(left)).unwrap_or(&[]);
                    tcb.snd_buf.extend(part);
                    left -= part.len();
                }
                n
            }
            SendSrc::InPlace(f) => tcb.snd_buf.extend_with(n, f),
        };
        if n > 0 {
            write_xmit(tcb, &mut self.sh, now, out);
        }
        tcb.sync_mem(&mut self.sh);
        Ok(n)
    }

    /// Reads received data (Linux `tcp_recvmsg`): `Ok(n)` with data, `Ok(0)` at EOF,
    /// `Err(WouldBlock)` when nothing is queued and the peer may still send; a pending
    /// error (reset, timeout) is returned once the queued data is read.
    pub fn recv(
        &mut self,
        now: Instant,
        id: SockId,
        buf: &mut [u8],
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<usize, TcpError> {
        self.recv_into(now, id, RecvDst::Copy(buf), out)
    }

    /// Whether a [`recv`](Self::recv) on `id` would return `Err(WouldBlock)`: a connection
    /// with nothing queued, no pending error and no end of stream. Reads nothing and
    /// changes nothing, so a caller can park a reader without the rest of a receive call
    /// (its clock read and the tail of a stack call).
    pub fn recv_would_block(&self, id: SockId) -> bool {
        match self.socks.get(id) {
            Some(Sock::Conn(t)) => t.rcv_buf.is_empty() && t.error.is_none() && !read_ended(t),
            _ => false,
        }
    }

    /// [`recv`](Self::recv) into a buffer or shown in place to a closure: with
    /// [`RecvDst::InPlace`] the closure sees the oldest queued bytes and the bytes it
    /// reports consumed are removed. At EOF the closure is not called and the result is `Ok(0)`.
    pub fn recv_into(
        &mut self,
        now: Instant,
        id: SockId,
        dst: RecvDst<'_>,
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<usize, TcpError> {
        self.sh.tick(now);
        let tcb = match self.socks.get_mut(id) {
            Some(Sock::Conn(t)) => t,
            Some(Sock::Plain(_)) | Some(Sock::Listen(_)) => return Err(TcpError::NotConnected),
            _ => return Err(TcpError::NotConnected),
        };
        if tcb.rcv_buf.is_empty() {
            if let Some(e) = tcb.error.take() {
                return Err(e);
            }
            if read_ended(tcb) {
                return Ok(0);
            }
            return Err(TcpError::WouldBlock);
        }
        let n = match dst {
            RecvDst::Copy(buf) => {
                let n = buf.len().min(tcb.rcv_buf.len());
                let (a, b) = tcb.rcv_buf.as_slices();
                let na = n.min(a.len());
                if let (Some(d), Some(s)) = (buf.get_mut(..na), a.get(..na)) {
                    d.copy_from_slice(s);
                }
                if n > na {
                    if let (Some(d), Some(s)) = (buf.get_mut(na..n), b.get(..n - na)) {
                        d.copy_from_slice(s);
                    }
                }
                n
            }
            RecvDst::InPlace(f) => tcb.rcv_buf.read_with(f),
        };
        if n == 0 {
            return Ok(0);
        }
        tcb.rcv_buf.consume(n);
        tcb.rcvq_copied += n;
        // Bytes read in the current round trip, this read included.
        let streaming = tcb.rcvq_copied >= SHRINK_READ_BELOW;
        let sh = &mut self.sh;
        rcv_space_adjust(tcb, sh, now);
        // Release the buffers of a connection that reads little (an idle one holds little
        // memory); a streaming reader keeps its ring buffer instead of freeing and
        // regrowing it whenever a read happens to drain it.
        if tcb.rcv_buf.is_empty() && !streaming {
            tcb.shrink_buffers();
        }
        // Linux tcp_cleanup_rbuf: announce a window that grew a lot since the last ACK.
        if tcb.state.is_synchronized() && !tcb.fin_rcvd && tcb.state != TcpState::TimeWait {
            let cur = tcb.rcv_wnd_now();
            let free = tcb.rcv_space().min(65535u32 << tcb.rcv_wscale);
            let thresh = tcb.mss.min(tcb.rcvbuf_cap as u32 / 2).max(1);
            if free >= cur.saturating_mul(2) && free >= cur + thresh {
                crate::output::send_ack(tcb, sh, now, out);
            }
        }
        tcb.sync_mem(sh);
        Ok(n)
    }

    /// Copies queued data without consuming it (`MSG_PEEK`).
    pub fn peek(&self, id: SockId, buf: &mut [u8]) -> Result<usize, TcpError> {
        match self.socks.get(id) {
            Some(Sock::Conn(t)) => {
                if t.rcv_buf.is_empty() {
                    if let Some(e) = t.error {
                        return Err(e);
                    }
                    if t.fin_rcvd || t.state == TcpState::Closed {
                        return Ok(0);
                    }
                    return Err(TcpError::WouldBlock);
                }
                let (a, b) = t.rcv_buf.as_slices();
                let mut n = 0;
                for part in [a, b] {
                    let k = (buf.len() - n).min(part.len());
                    if let (Some(d), Some(s)) = (buf.get_mut(n..n + k), part.get(..k)) {
                        d.copy_from_slice(s);
                    }
                    n += k;
                }
                Ok(n)
            }
            _ => Err(TcpError::NotConnected),
        }
    }

    /// Half-close: no more data from us; FIN follows the queued data (Linux
    /// `tcp_shutdown(SEND_SHUTDOWN)` -> `tcp_close_state` + `tcp_send_fin`).
    pub fn shutdown_write(
        &mut self,
        now: Instant,
        id: SockId,
        out: &mut Vec<TcpSegmentOut>,
    ) -> Result<(), TcpError> {
        let tcb = match self.socks.get_mut(id) {
            Some(Sock::Conn(t)) => t,
            _ => return Err(TcpError::NotConnected),
        };
        if tcb.shut_wr {
            return Ok(());
        }
        match tcb.state {
            TcpState::Established | TcpState::SynReceived => {
                tcb.shut_wr = true;
                set_state(tcb, &mut self.sh, TcpState::FinWait1);
            }
            TcpState::CloseWait => {
                tcb.shut_wr = true;
                set_state(tcb, &mut self.sh, TcpState::LastAck);
            }
            TcpState::SynSent => {
                tcp_done(tcb, &mut self.sh, None);
                self.conn_closed(id);
                return Ok(());
            }
            _ => return Err(TcpError::NotConnected),
        }
        write_xmit(tcb, &mut self.sh, now, out);
        Ok(())
    }

    /// Linux `tcp_close`: unread data or linger 0 -> RST; otherwise a FIN after the queued
    /// data, and the orphaned connection finishes in the background. The id is invalid
    /// afterwards.
    pub fn close(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        self.sh.tick(now);
        match self.socks.get_mut(id) {
            Some(Sock::Plain(_)) => {
                self.free(id);
                return;
            }
            Some(Sock::Listen(_)) => {
                self.listen_stop(now, id, out);
                self.free(id);
                return;
            }
            Some(Sock::Conn(_)) => {}
            _ => return,
        }
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        let sh = &mut self.sh;
        tcb.shut_rd = true;
        match tcb.state {
            TcpState::Closed => {
                self.free(id);
                return;
            }
            TcpState::SynSent => {
                tcp_done(tcb, sh, None);
                self.free(id);
                return;
            }
            TcpState::TimeWait => {
                tcb.orphan = true;
                sh.orphans += 1;
                if let Some(nid) = self.rekey(id) {
                    self.compact_time_wait(nid);
                }
                return;
            }
            _ => {}
        }
        let unread = !tcb.rcv_buf.is_empty();
        let linger0 = tcb.opts.linger == Some(Duration::ZERO);
        if unread || linger0 {
            if unread {
                sh.stats.tcp_abort_on_close += 1;
            } else {
                sh.stats.tcp_abort_on_linger += 1;
            }
            send_active_rst(tcb, sh, now, out);
            tcp_done(tcb, sh, None);
            self.free(id);
            return;
        }
        tcb.orphan = true;
        sh.orphans += 1;
        tcb.rcv_buf = Default::default();
        if sh.orphans > sh.cfg.max_orphans {
            sh.stats.tcp_abort_on_memory += 1;
            send_active_rst(tcb, sh, now, out);
            tcp_done(tcb, sh, None);
            self.free(id);
            return;
        }
        match tcb.state {
            TcpState::Established | TcpState::SynReceived => {
                tcb.shut_wr = true;
                set_state(tcb, sh, TcpState::FinWait1);
            }
            TcpState::CloseWait => {
                tcb.shut_wr = true;
                set_state(tcb, sh, TcpState::LastAck);
            }
            TcpState::FinWait2 => {
                sh.set_timer(id, TimerKind::Keepalive, now + sh.cfg.fin_timeout);
            }
            _ => {}
        }
        write_xmit(tcb, sh, now, out);
        tcb.sync_mem(sh);
        let closed = tcb.state == TcpState::Closed;
        if closed {
            self.conn_closed(id);
        } else {
            self.rekey(id);
        }
    }

    /// Aborts with RST whatever the state (Linux `tcp_abort` / `SO_LINGER` 0 close).
    /// The id is invalid afterwards.
    pub fn abort(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        match self.socks.get(id) {
            Some(Sock::Conn(_)) => self.reset_and_free(now, id, out),
            Some(Sock::Listen(_)) => {
                self.listen_stop(now, id, out);
                self.free(id);
            }
            Some(_) => self.free(id),
            None => {}
        }
    }
}

/// A read that drains the receive queue releases the buffers (`Tcb::shrink_buffers`)
/// when fewer bytes than this were read in the current round trip.
const SHRINK_READ_BELOW: usize = 16 * 1024;

/// Linux `tcp_rcv_space_adjust`: once per RTT, grow the receive buffer to twice what the
/// application read in that RTT (bounded by `rmem` max), so a fast reader on a long path
/// gets a window that fills the pipe.
fn rcv_space_adjust(tcb: &mut Tcb, sh: &mut crate::ctx::Shared, now: Instant) {
    // Linux `tcp_rcv_space_adjust` skips growth under memory pressure (via
    // `tcp_rmem_pressure` / `sk_rmem_schedule` failing).
    if tcb.opts.rcvbuf_locked || sh.under_pressure() {
        return;
    }
    let rtt = tcb
        .rtt
        .srtt()
        .unwrap_or(Duration::from_millis(200))
        .max(Duration::from_millis(1));
    if now.saturating_duration_since(tcb.rcvq_time) < rtt {
        return;
    }
    let want = tcb.rcvq_copied.saturating_mul(4);
    if want > tcb.rcvbuf_cap {
        tcb.rcvbuf_cap = want.min(sh.cfg.rmem.2);
    }
    tcb.rcvq_copied = 0;
    tcb.rcvq_time = now;
    let _ = check_write_space;
}
