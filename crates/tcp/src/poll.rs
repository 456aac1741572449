//! Socket state queries, options and events (Linux: `tcp_poll`, `getsockname`,
//! `getpeername`, `sock_error`, `setsockopt`/`getsockopt`, the wait-queue wakeups).

use crate::config::{SockOpt, SockOptName};
use crate::ctx::TimerKind;
use crate::error::TcpError;
use crate::output::TcpSegmentOut;
use crate::sock::SockId;
use crate::stack::{Sock, TcpLayer};
use crate::state::{Readiness, TcpState};
use crate::stats::TcpStats;
use crate::tcb::SockOpts;
use std::net::SocketAddrV4;
use std::time::Instant;

impl TcpLayer {
    /// The options of a socket, whatever its kind.
    fn opts_of(&self, id: SockId) -> Option<SockOpts> {
        match self.socks.get(id)? {
            Sock::Plain(p) => Some(p.opts),
            Sock::Listen(l) => Some(l.opts),
            Sock::Conn(t) => Some(t.opts),
            Sock::Req(_) | Sock::Tw(_) => None,
        }
    }

    /// The state of a socket; `None` for a stale id.
    pub fn state(&self, id: SockId) -> Option<TcpState> {
        Some(match self.socks.get(id)? {
            Sock::Plain(_) => TcpState::Closed,
            Sock::Listen(_) => TcpState::Listen,
            Sock::Req(_) => TcpState::SynReceived,
            Sock::Conn(t) => t.state,
            Sock::Tw(_) => TcpState::TimeWait,
        })
    }

    /// Local address (`getsockname`).
    pub fn local_addr(&self, id: SockId) -> Option<SocketAddrV4> {
        match self.socks.get(id)? {
            // Unbound: the zero address, like Linux `inet_getname`.
            Sock::Plain(p) => Some(
                p.local
                    .unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)),
            ),
            Sock::Listen(l) => Some(l.local),
            Sock::Req(r) => Some(r.local),
            Sock::Conn(t) => Some(t.local),
            Sock::Tw(t) => Some(t.local),
        }
    }

    /// Peer address (`getpeername`).
    pub fn peer_addr(&self, id: SockId) -> Option<SocketAddrV4> {
        match self.socks.get(id)? {
            Sock::Req(r) => Some(r.remote),
            Sock::Conn(t) => Some(t.remote),
            Sock::Tw(t) => Some(t.remote),
            _ => None,
        }
    }

    /// A task waits for write space on `id` (its readiness showed none): the connection
    /// will signal when space frees up, as after a send that did not fit (Linux:
    /// `tcp_poll` setting `SOCK_NOSPACE`). Without this, a writer that filled the send
    /// buffer exactly and then waited in `writable()` would never be woken.
    pub fn note_write_waiter(&mut self, id: SockId) {
        if let Some(Sock::Conn(t)) = self.socks.get_mut(id) {
            t.write_blocked = true;
        }
    }

    /// What the socket is ready for (Linux `tcp_poll`). A stale id reads as closed.
    pub fn poll_state(&self, id: SockId) -> Readiness {
        match self.socks.get(id) {
            Some(Sock::Conn(t)) => {
                let closed = t.state == TcpState::Closed;
                let read_closed = t.fin_rcvd || closed || t.shut_rd;
                let write_closed = t.shut_wr || closed || t.state == TcpState::TimeWait;
                let err = t.error;
                Readiness {
                    readable: !t.rcv_buf.is_empty() || read_closed || err.is_some(),
                    writable: (t.state.can_send() && !t.shut_wr && t.snd_buf.len() < t.sndbuf_cap)
                        || err.is_some()
                        || write_closed && t.state != TcpState::SynSent,
                    acceptable: false,
                    connected: t.state.is_synchronized(),
                    error: err,
                    read_closed,
                    write_closed,
                }
            }
            Some(Sock::Listen(l)) => Readiness {
                acceptable: !l.accept_q.is_empty(),
                ..Readiness::default()
            },
            Some(_) => Readiness::default(),
            None => Readiness {
                readable: true,
                writable: true,
                read_closed: true,
                write_closed: true,
                error: Some(TcpError::NotConnected),
                ..Readiness::default()
            },
        }
    }

    /// Takes the pending error (`SO_ERROR`), including soft ICMP errors.
    pub fn take_error(&mut self, id: SockId) -> Option<TcpError> {
        match self.socks.get_mut(id)? {
            Sock::Conn(t) => t.error.take().or_else(|| t.soft_error.take()),
            _ => None,
        }
    }

    /// Sets a socket option (`setsockopt`).
    pub fn set_option(&mut self, id: SockId, opt: SockOpt) -> Result<(), TcpError> {
        let (rmem, wmem) = (self.sh.cfg.rmem, self.sh.cfg.wmem);
        // Datagram-only options: Linux refuses them on stream sockets (EINVAL; EPROTO
        // for memberships).
        if matches!(
            opt,
            SockOpt::MaxPacingRate(Some(0))
                | SockOpt::Broadcast(_)
                | SockOpt::MulticastTtl(_)
                | SockOpt::MulticastLoop(_)
                | SockOpt::MulticastAll(_)
                | SockOpt::MulticastIf(_)
                | SockOpt::AddMembership { .. }
                | SockOpt::DropMembership { .. }
        ) {
            return Err(TcpError::InvalidInput);
        }
        let apply = |o: &mut SockOpts| match opt {
            SockOpt::NoDelay(v) => o.nodelay = v,
            // State of the connection, not an option a new one inherits.
            SockOpt::QuickAck(_) => {}
            SockOpt::KeepAlive(k) => o.keepalive = k,
            SockOpt::RecvBuf(n) => {
                o.rcvbuf = n.clamp(rmem.0, rmem.2.max(rmem.0));
                o.rcvbuf_locked = true;
            }
            SockOpt::SendBuf(n) => {
                o.sndbuf = n.clamp(wmem.0, wmem.2.max(wmem.0));
                o.sndbuf_locked = true;
            }
            SockOpt::Congestion(c) => o.cc = c,
            SockOpt::Ttl(t) => o.ip.ttl = Some(t),
            // Linux `do_ip_setsockopt(IP_TOS)` on a stream socket: the ECN bits belong to
            // the connection's ECN state (`EcnMode`), not to the application.
            SockOpt::Tos(t) => o.ip.tos = t & !crate::wire::ECN_MASK,
            SockOpt::Linger(l) => o.linger = l,
            SockOpt::ReuseAddr(r) => o.reuseaddr = r,
            SockOpt::ReusePort(r) => o.reuseport = r,
            SockOpt::MaxPacingRate(r) => o.max_pacing_rate = r.and_then(std::num::NonZeroU64::new),
            SockOpt::BindDevice(d) => o.ip.oif = d,
            // Refused above.
            SockOpt::Broadcast(_)
            | SockOpt::MulticastTtl(_)
            | SockOpt::MulticastLoop(_)
            | SockOpt::MulticastAll(_)
            | SockOpt::MulticastIf(_)
            | SockOpt::AddMembership { .. }
            | SockOpt::DropMembership { .. } => {}
        };
        match self.socks.get_mut(id) {
            Some(Sock::Plain(p)) => apply(&mut p.opts),
            Some(Sock::Listen(l)) => {
                if let SockOpt::BindDevice(d) = opt {
                    // The listening table keeps each listener's device.
                    if !self.hash.rebind_listener(&l.local, id, d) {
                        return Err(TcpError::AddrInUse);
                    }
                }
                apply(&mut l.opts)
            }
            Some(Sock::Conn(t)) => {
                apply(&mut t.opts);
                match opt {
                    SockOpt::RecvBuf(_) => t.rcvbuf_cap = t.opts.rcvbuf,
                    SockOpt::SendBuf(_) => t.sndbuf_cap = t.opts.sndbuf,
                    SockOpt::Congestion(c) => {
                        let mut cc = crate::cc::new_cc_with(c, self.sh.cfg.hystart);
                        cc.init(&mut t.ccs);
                        t.cc = cc;
                    }
                    SockOpt::QuickAck(true) => {
                        t.quickack = t.quickack.max(crate::config::QUICKACK_SEGS);
                        // Linux `tcp_cleanup_rbuf` with `ICSK_ACK_PUSHED`: what waits for
                        // the delayed-ACK timer is acknowledged now (at the end of this
                        // call, with the batch's other owed ACKs).
                        if t.ack_pending
                            && matches!(t.state, TcpState::Established | TcpState::CloseWait)
                            && !t.ack_owed
                        {
                            t.ack_owed = true;
                            self.sh.ack_owed.push(id);
                        }
                    }
                    SockOpt::QuickAck(false) => t.quickack = 0,
                    SockOpt::KeepAlive(Some(ka)) if t.state.is_synchronized() => {
                        self.sh.set_timer(
                            id,
                            TimerKind::Keepalive,
                            t.last_rcv.max(t.rcvq_time) + ka.idle,
                        );
                    }
                    _ => {}
                }
            }
            _ => return Err(TcpError::NotConnected),
        }
        Ok(())
    }

    /// Reads a socket option (`getsockopt`).
    pub fn get_option(&self, id: SockId, name: SockOptName) -> Result<SockOpt, TcpError> {
        let o = self.opts_of(id).ok_or(TcpError::NotConnected)?;
        let (rcv, snd) = match self.socks.get(id) {
            Some(Sock::Conn(t)) => (t.rcvbuf_cap, t.sndbuf_cap),
            _ => (o.rcvbuf, o.sndbuf),
        };
        Ok(match name {
            SockOptName::NoDelay => SockOpt::NoDelay(o.nodelay),
            SockOptName::QuickAck => SockOpt::QuickAck(match self.socks.get(id) {
                Some(Sock::Conn(t)) => t.quickack > 0,
                _ => true,
            }),
            SockOptName::KeepAlive => SockOpt::KeepAlive(o.keepalive),
            SockOptName::RecvBuf => SockOpt::RecvBuf(rcv),
            SockOptName::SendBuf => SockOpt::SendBuf(snd),
            SockOptName::Congestion => SockOpt::Congestion(o.cc),
            SockOptName::Ttl => SockOpt::Ttl(o.ip.ttl.unwrap_or(64)),
            SockOptName::Tos => SockOpt::Tos(o.ip.tos),
            SockOptName::Linger => SockOpt::Linger(o.linger),
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(o.reuseaddr),
            SockOptName::ReusePort => SockOpt::ReusePort(o.reuseport),
            SockOptName::MaxPacingRate => {
                SockOpt::MaxPacingRate(o.max_pacing_rate.map(std::num::NonZeroU64::get))
            }
            SockOptName::BindDevice => SockOpt::BindDevice(o.ip.oif),
            SockOptName::Broadcast
            | SockOptName::MulticastTtl
            | SockOptName::MulticastLoop
            | SockOptName::MulticastAll
            | SockOptName::MulticastIf => return Err(TcpError::InvalidInput),
        })
    }

    /// A snapshot of the stack counters (`/proc/net/snmp` Tcp: and TcpExt:).
    pub fn stats(&self) -> TcpStats {
        let mut s = self.sh.stats;
        s.memory_used = self.sh.mem_used as u64;
        s.memory_used_peak = self.sh.mem_peak as u64;
        s.memory_pressure = u64::from(self.sh.mem_pressure);
        s.sockets = self.socks.len() as u64;
        s.orphans = self.sh.orphans as u64;
        s.time_wait = self.sh.tw_count as u64;
        s.timers_pending = self.sh.timers.len() as u64;
        s
    }

    /// Timers armed in the stack's wheel (for leak checks).
    pub fn timers_pending(&self) -> usize {
        self.sh.timers.len()
    }

    /// True while the stack is under memory pressure (Linux `tcp_memory_pressure`).
    pub fn under_memory_pressure(&self) -> bool {
        self.sh.mem_pressure
    }

    /// Appends the sockets whose readiness changed since the last call (for waking
    /// wait queues; Linux `sk_data_ready` / `sk_write_space` / `sk_state_change`).
    pub fn drain_events(&mut self, out: &mut Vec<SockId>) {
        // Taken and given back (empty) so the vector keeps its capacity: no allocation
        // per wake-up.
        let mut events = std::mem::take(&mut self.sh.events);
        for id in events.drain(..) {
            let live = match self.socks.get_mut(id) {
                Some(Sock::Conn(t)) => {
                    t.evt = false;
                    true
                }
                Some(Sock::Listen(l)) => {
                    l.evt = false;
                    true
                }
                Some(Sock::Plain(p)) => {
                    p.evt = false;
                    true
                }
                _ => false,
            };
            if live {
                out.push(id);
            }
        }
        self.sh.events = events;
    }

    /// Transmit offload for connection `id`: its route's device takes TCP super-segments
    /// of up to `tso_max` bytes (IPv4 packet) and completes partial checksums
    /// (`NetDevice::tso_max`); 0 turns it off. From then on its data segments carry only
    /// the pseudo-header sum ([`ustack_netdev::PacketBuf::csum_partial`]) and new data
    /// goes out in super-segments of whole MSS-sized segments
    /// ([`ustack_netdev::PacketBuf::gso_size`]) within the peer's and the congestion
    /// window (Linux: `sk_setup_caps` with `NETIF_F_TSO`). If IP later refuses such a
    /// segment (the route moved to another device), [`TcpLayer::output_too_big`] turns
    /// it off and resends. Returns false for an unknown or non-connection id.
    pub fn set_offload(&mut self, id: SockId, tso_max: usize) -> bool {
        match self.socks.get_mut(id) {
            Some(Sock::Conn(t)) => {
                // Below one full segment there is nothing to gain; never above the IPv4 limit.
                t.tso_max = if tso_max >= t.route_mtu {
                    tso_max.min(65535)
                } else {
                    0
                };
                true
            }
            _ => false,
        }
    }

    /// The route MTU a live connection `local` <- `remote` already uses (not TIME_WAIT,
    /// not closed), if there is one. A segment for such a connection never needs the
    /// route MTU that [`TcpLayer::input`] takes (only passive opens and a SYN recycling
    /// a TIME_WAIT pair use it), so the caller can skip its route lookup and pass this.
    pub fn conn_route_mtu(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<usize> {
        let id = self.hash.lookup_established(&(local, remote))?;
        match self.socks.get(id) {
            Some(Sock::Conn(t)) if !matches!(t.state, TcpState::TimeWait | TcpState::Closed) => {
                Some(t.route_mtu)
            }
            _ => None,
        }
    }

    /// Turns ACK batching on or off (off by default). When on, the ACK that RFC 9293 /
    /// RFC 5681 want for every second full-sized segment is not sent from
    /// [`TcpLayer::input`]; the connection owes it, and [`TcpLayer::flush_acks`] sends
    /// one ACK per connection at the end of the batch of input, covering every segment
    /// of the batch. Out-of-order data, duplicates, D-SACK, a FIN, quick-ack mode and
    /// zero-window cases still ACK at once. A caller that turns this on must call
    /// `flush_acks` after each batch of `input` calls (the delayed-ACK timer is only a
    /// backstop).
    pub fn set_ack_batching(&mut self, on: bool) {
        self.sh.ack_batching = on;
    }

    /// True when some connection owes an ACK that [`TcpLayer::flush_acks`] will send.
    pub fn has_owed_acks(&self) -> bool {
        !self.sh.ack_owed.is_empty()
    }

    /// Sends the ACKs owed at the end of a batch of input (see
    /// [`TcpLayer::set_ack_batching`]): at most one pure ACK per connection, none for a
    /// connection whose ACK already left on a data segment or window update.
    pub fn flush_acks(&mut self, now: Instant, out: &mut Vec<TcpSegmentOut>) {
        if self.sh.ack_owed.is_empty() {
            return;
        }
        let mut owed = std::mem::take(&mut self.sh.ack_owed);
        for id in owed.drain(..) {
            if let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) {
                crate::input::flush_owed_ack(tcb, &mut self.sh, now, out);
            }
        }
        // Keep the list's capacity for the next batch.
        if self.sh.ack_owed.is_empty() {
            self.sh.ack_owed = owed;
        }
    }

    /// Connections in the demux table (request socks, established, closing, TIME_WAIT).
    pub fn connection_count(&self) -> usize {
        self.hash.established_len()
    }

    /// All sockets the layer holds, of every kind (for leak checks).
    pub fn socket_count(&self) -> usize {
        self.socks.len()
    }

    /// Bytes held in socket buffers stack-wide.
    pub fn memory_used(&self) -> usize {
        self.sh.mem_used
    }
}
