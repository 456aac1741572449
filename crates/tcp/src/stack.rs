//! The TCP layer object (Linux: `tcp_hashinfo` plus every TCP socket of a namespace) and
//! the socket bookkeeping shared by input, timers and user calls.

use std::time::Instant;

use crate::config::TcpConfig;
use crate::conn::tcp_done;
use crate::ctx::{Shared, TimerKind};
use crate::hash::HashInfo;
use crate::isn::IsnGenerator;
use crate::output::{send_active_rst, TcpSegmentOut};
use crate::sock::{Slab, SockId};
use crate::syncookie::SynCookies;
use crate::tcb::{Listener, PlainSock, ReqSock, SockOpts, Tcb};
use crate::timer::TimerWheel;
use crate::tw::TwSock;

/// One socket of any kind.
pub(crate) enum Sock {
    /// Fresh, bound, or closed-and-not-yet-released.
    Plain(Box<PlainSock>),
    /// LISTEN.
    Listen(Box<Listener>),
    /// A request sock (SYN_RECV, passive open in progress).
    Req(Box<ReqSock>),
    /// A connection (any state from SYN_SENT to TIME_WAIT, or CLOSED after it ended).
    Conn(Box<Tcb>),
    /// TIME_WAIT after the application closed the connection: only what TIME_WAIT needs.
    Tw(Box<TwSock>),
}

/// The TCP engine: all sockets, the demux tables, timers and counters. Sans-IO: it takes
/// segments, the time and user calls, and returns segments to send plus a deadline.
/// Linux: `tcp_prot` + `tcp_hashinfo` + the per-netns TCP state.
pub struct TcpLayer {
    pub(crate) socks: Slab<Sock>,
    pub(crate) hash: HashInfo,
    pub(crate) sh: Shared,
}

impl TcpLayer {
    /// A TCP layer with configuration `cfg`. `secret` keys the ISN generator (RFC 6528),
    /// the ephemeral port offsets (RFC 6056) and SYN cookies (RFC 4987).
    pub fn new(cfg: TcpConfig, secret: [u8; 16]) -> Self {
        let mut cookie_key = secret;
        for (i, b) in cookie_key.iter_mut().enumerate() {
            *b ^= 0x5a ^ (i as u8);
        }
        TcpLayer {
            socks: Slab::new(),
            hash: HashInfo::default(),
            sh: Shared {
                cfg,
                stats: Default::default(),
                timers: TimerWheel::new(),
                events: Vec::new(),
                epoch: None,
                isn: IsnGenerator::new(secret),
                cookies: SynCookies::new(cookie_key),
                challenge: (None, 0),
                orphans: 0,
                tw_count: 0,
                mem_used: 0,
                mem_peak: 0,
                mem_pressure: false,
                pressure_since: None,
                last_now: None,
                port_counter: 0,
                ack_batching: false,
                ack_owed: Vec::new(),
                sack_newly: Vec::new(),
            },
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &TcpConfig {
        &self.sh.cfg
    }

    pub(crate) fn default_opts(&self) -> SockOpts {
        SockOpts::from_config(&self.sh.cfg)
    }

    /// An orphaned connection that reached TIME_WAIT keeps only a [`TwSock`] (Linux
    /// `tcp_time_wait` -> `inet_twsk_alloc`): same id, same hash entries and timer; the
    /// TCB is freed.
    pub(crate) fn compact_time_wait(&mut self, id: SockId) {
        let Some(sock) = self.socks.get_mut(id) else {
            return;
        };
        let Sock::Conn(tcb) = sock else {
            return;
        };
        if tcb.state != crate::state::TcpState::TimeWait || !tcb.orphan {
            return;
        }
        tcb.sync_mem(&mut self.sh);
        if tcb.mem != 0 {
            // Still holding buffer memory (cannot happen: entering TIME_WAIT dropped it).
            return;
        }
        *sock = Sock::Tw(Box::new(TwSock::of(tcb)));
        self.sh.stats.tcp_tw_compact += 1;
        // A TIME_WAIT socket is no longer an orphan (Linux: `tcp_time_wait` ends the
        // full socket, which leaves `tcp_orphan_count`): `max_orphans` bounds connections
        // still closing, not the TIME_WAIT table (`max_tw_buckets` does that).
        self.sh.orphans = self.sh.orphans.saturating_sub(1);
    }

    /// Removes a connection from the demux tables and its port's bind bucket.
    pub(crate) fn unhash_conn(&mut self, id: SockId) {
        if let Some(Sock::Tw(tw)) = self.socks.get_mut(id) {
            if tw.hashed {
                tw.hashed = false;
                self.hash.remove_established(&(tw.local, tw.remote), id);
            }
            if tw.in_bhash {
                tw.in_bhash = false;
                self.hash.remove_conn(tw.local.port());
            }
            return;
        }
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) else {
            return;
        };
        if tcb.hashed {
            tcb.hashed = false;
            self.hash.remove_established(&(tcb.local, tcb.remote), id);
        }
        if tcb.in_bhash {
            tcb.in_bhash = false;
            self.hash.remove_conn(tcb.local.port());
        }
    }

    /// A connection reached CLOSED: unhash it; an orphan is freed at once, otherwise it
    /// stays until the application closes it (to report EOF / the error).
    pub(crate) fn conn_closed(&mut self, id: SockId) {
        self.unhash_conn(id);
        let orphan = match self.socks.get(id) {
            Some(Sock::Conn(t)) => t.orphan,
            Some(Sock::Tw(_)) => true,
            _ => false,
        };
        if orphan {
            self.free(id);
        }
    }

    /// Frees a socket slot: timers, memory, orphan and TIME_WAIT accounting.
    pub(crate) fn free(&mut self, id: SockId) {
        self.sh.clear_all_timers(id);
        match self.socks.remove(id) {
            Some(Sock::Conn(mut tcb)) => {
                if tcb.hashed {
                    self.hash.remove_established(&(tcb.local, tcb.remote), id);
                }
                if tcb.in_bhash {
                    self.hash.remove_conn(tcb.local.port());
                }
                if tcb.orphan {
                    self.sh.orphans = self.sh.orphans.saturating_sub(1);
                }
                if tcb.state.counts_established() {
                    self.sh.stats.curr_estab = self.sh.stats.curr_estab.saturating_sub(1);
                }
                if tcb.state == crate::state::TcpState::TimeWait {
                    self.sh.tw_count = self.sh.tw_count.saturating_sub(1);
                }
                tcb.snd_buf.clear();
                tcb.rcv_buf.clear();
                tcb.ooo.clear();
                tcb.ooo_bytes = 0;
                tcb.sync_mem(&mut self.sh);
            }
            Some(Sock::Tw(tw)) => {
                if tw.hashed {
                    self.hash.remove_established(&(tw.local, tw.remote), id);
                }
                if tw.in_bhash {
                    self.hash.remove_conn(tw.local.port());
                }
                // Always in TIME_WAIT; no longer counted as an orphan.
                self.sh.tw_count = self.sh.tw_count.saturating_sub(1);
            }
            Some(Sock::Req(req)) => {
                self.hash.remove_established(&(req.local, req.remote), id);
                if let Some(Sock::Listen(l)) = self.socks.get_mut(req.listener) {
                    l.syn_q.remove(&id);
                }
            }
            Some(Sock::Listen(l)) => {
                self.hash.remove_listener(&l.local, id);
                self.hash.remove_owner(l.local.port(), id);
            }
            Some(Sock::Plain(p)) => {
                if let Some(a) = p.local {
                    self.hash.remove_owner(a.port(), id);
                }
            }
            None => {}
        }
    }

    /// Aborts a connection with RST (Linux `tcp_disconnect` / `inet_child_forget`).
    pub(crate) fn reset_and_free(
        &mut self,
        now: Instant,
        id: SockId,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        if let Some(Sock::Conn(tcb)) = self.socks.get_mut(id) {
            if tcb.state.is_synchronized() && tcb.state != crate::state::TcpState::TimeWait
                || tcb.state == crate::state::TcpState::SynReceived
            {
                send_active_rst(tcb, &mut self.sh, now, out);
            }
            tcp_done(tcb, &mut self.sh, None);
        }
        self.free(id);
    }

    /// Moves an orphaned connection to a fresh id so the application's id goes stale
    /// (Linux: the file is gone after `close`, the sock lives on without it).
    pub(crate) fn rekey(&mut self, id: SockId) -> Option<SockId> {
        let sock = self.socks.remove(id)?;
        let nid = self.socks.insert(sock);
        let Some(Sock::Conn(tcb)) = self.socks.get_mut(nid) else {
            return Some(nid);
        };
        tcb.id = nid;
        tcb.evt = false;
        if tcb.ack_owed {
            // The batch's ACK list holds the old id: owe it under the new one.
            self.sh.ack_owed.push(nid);
        }
        if tcb.hashed {
            self.hash.replace_established((tcb.local, tcb.remote), nid);
        }
        for k in [TimerKind::Rtx, TimerKind::DelAck, TimerKind::Keepalive] {
            if let Some(t) = self.sh.timers.deadline(&(id, k)) {
                self.sh.timers.cancel(&(id, k));
                self.sh.timers.schedule((nid, k), t);
            }
        }
        Some(nid)
    }

    /// Releases a listener's SYN queue and accept queue (Linux `inet_csk_listen_stop`).
    pub(crate) fn listen_stop(&mut self, now: Instant, id: SockId, out: &mut Vec<TcpSegmentOut>) {
        let (reqs, children) = match self.socks.get_mut(id) {
            Some(Sock::Listen(l)) => (
                l.syn_q.drain().collect::<Vec<_>>(),
                l.accept_q.drain(..).collect::<Vec<_>>(),
            ),
            _ => return,
        };
        for r in reqs {
            self.free(r);
        }
        for c in children {
            self.reset_and_free(now, c, out);
        }
    }
}
