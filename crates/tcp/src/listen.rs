//! Passive open (Linux: `tcp_v4_conn_request`, `request_sock`, `tcp_check_req`,
//! `tcp_v4_syn_recv_sock`, `inet_csk_complete_hashdance`, `reqsk_timer_handler`,
//! `cookie_v4_check`).

use std::net::SocketAddrV4;
use std::time::Instant;

use crate::conn::{set_mss, set_state};
use crate::ctx::TimerKind;
use crate::input::{on_established, rcv_state_process, Verdict};
use crate::output::{send_raw, send_reset_reply, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::stack::{Sock, TcpLayer};
use crate::state::TcpState;
use crate::tcb::{wscale_for, IpOpts, ReqSock, Tcb};
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};

impl TcpLayer {
    pub(crate) fn gen_isn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> SeqNum {
        let t = self.sh.since_epoch(now);
        SeqNum(self.sh.isn.isn(t, local, remote))
    }

    /// A segment for a listening socket (Linux `tcp_v4_do_rcv` in LISTEN ->
    /// `tcp_rcv_state_process` -> `tcp_v4_conn_request`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn listen_rcv(
        &mut self,
        now: Instant,
        lid: SockId,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        payload: &[u8],
        route_mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let f = seg.flags;
        if f.rst() {
            return;
        }
        // Above the global memory limit no new connection is made (Linux: the child's
        // `sk_mem` charge fails); the peer retries, counted as a listen drop.
        if self.sh.mem_over_limit() && (f.syn() || (f.ack() && self.sh.cfg.syncookies)) {
            self.sh.stats.listen_drops += 1;
            return;
        }
        if f.ack() {
            if self.sh.cfg.syncookies
                && !f.syn()
                && self.cookie_check(now, lid, local, remote, seg, payload, route_mtu, out)
            {
                return;
            }
            send_reset_reply(&mut self.sh, local, remote, seg, payload.len(), out);
            return;
        }
        if !f.syn() {
            return;
        }
        let Some(Sock::Listen(l)) = self.socks.get(lid) else {
            return;
        };
        if l.accept_q.len() > l.backlog {
            // Linux: sk_acceptq_is_full -> ListenOverflows, drop (the client retries).
            self.sh.stats.listen_overflows += 1;
            self.sh.stats.listen_drops += 1;
            return;
        }
        let qlen = l.syn_q.len();
        let limit = l.backlog.min(self.sh.cfg.max_syn_backlog).max(1);
        let opts = l.opts;
        if qlen >= limit {
            if self.sh.cfg.syncookies {
                self.send_cookie_synack(
                    now,
                    local,
                    remote,
                    seg,
                    route_mtu,
                    opts.ip,
                    opts.rcvbuf,
                    out,
                );
            } else {
                self.sh.stats.tcp_req_q_full_drop += 1;
                self.sh.stats.listen_drops += 1;
            }
            return;
        }
        let iss = self.gen_isn(now, local, remote);
        let advmss = route_mtu.saturating_sub(40).clamp(88, 65495) as u16;
        let cfg = &self.sh.cfg;
        let ws = if cfg.window_scaling && seg.options.wscale.is_some() {
            Some(seg.options.wscale.unwrap_or(0).min(14))
        } else {
            None
        };
        let rcv_wscale = if ws.is_some() {
            wscale_for(cfg.rmem.2.max(opts.rcvbuf))
        } else {
            0
        };
        let req = ReqSock {
            listener: lid,
            local,
            remote,
            iss,
            irs: seg.seq,
            peer_mss: seg.options.mss.unwrap_or(crate::tcb::DEFAULT_MSS),
            advmss,
            route_mtu,
            snd_wscale: ws,
            rcv_wscale,
            sack_ok: cfg.sack && seg.options.sack_permitted,
            ecn_ok: ecn_accepted(cfg, seg),
            ts_recent: if cfg.timestamps {
                seg.options.timestamp.map(|t| t.0)
            } else {
                None
            },
            ts_offset: self.sh.isn.ts_offset(*local.ip(), *remote.ip()),
            retrans: 0,
            created: now,
            ip: opts.ip,
            rcvbuf: opts.rcvbuf,
            acked: false,
        };
        let rid = self.socks.insert(Sock::Req(Box::new(req)));
        if !self.hash.insert_established((local, remote), rid) {
            self.socks.remove(rid);
            return;
        }
        if let Some(Sock::Listen(l)) = self.socks.get_mut(lid) {
            l.syn_q.insert(rid);
        }
        self.sh.stats.passive_opens += 1;
        self.send_synack(now, rid, false, out);
        let rto = self.sh.cfg.rto_initial;
        self.sh.set_timer(rid, TimerKind::Rtx, now + rto);
    }

    /// Linux `tcp_v4_send_synack`.
    pub(crate) fn send_synack(
        &mut self,
        now: Instant,
        rid: SockId,
        retrans: bool,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let Some(Sock::Req(req)) = self.socks.get(rid) else {
            return;
        };
        let mut r = TcpRepr::new(
            req.local.port(),
            req.remote.port(),
            req.iss,
            req.irs + 1,
            TcpFlags::SYN | TcpFlags::ACK,
        );
        r.window = req.rcvbuf.min(65535) as u16;
        if req.ecn_ok {
            // ECN-setup SYN-ACK: ECE without CWR.
            r.flags |= TcpFlags::ECE;
        }
        r.options.mss = Some(req.advmss);
        if req.snd_wscale.is_some() {
            r.options.wscale = Some(req.rcv_wscale);
        }
        r.options.sack_permitted = req.sack_ok;
        if let Some(ts) = req.ts_recent {
            let val = self.sh.ts_now(now).wrapping_add(req.ts_offset);
            r.options.timestamp = Some((val, ts));
        }
        r.header_len = r.emit_len();
        let (local, remote, ip) = (req.local, req.remote, req.ip);
        send_raw(&mut self.sh, local, remote, &r, ip, out);
        if retrans {
            self.sh.stats.retrans_segs += 1;
            self.sh.stats.out_segs = self.sh.stats.out_segs.saturating_sub(1);
        }
    }

    /// SYN-ACK retransmission timer of a request sock (Linux `reqsk_timer_handler`).
    pub(crate) fn req_timer(&mut self, now: Instant, rid: SockId, out: &mut Vec<TcpSegmentOut>) {
        let max = self.sh.cfg.synack_retries;
        let Some(Sock::Req(req)) = self.socks.get_mut(rid) else {
            return;
        };
        if req.retrans >= max {
            self.sh.stats.attempt_fails += 1;
            self.free(rid);
            return;
        }
        req.retrans += 1;
        let backoff = req.retrans.min(16);
        self.send_synack(now, rid, true, out);
        let rto = (self.sh.cfg.rto_initial * (1u32 << backoff)).min(self.sh.cfg.rto_max);
        self.sh.set_timer(rid, TimerKind::Rtx, now + rto);
    }

    /// A segment for a request sock (Linux `tcp_check_req`).
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn req_rcv(
        &mut self,
        now: Instant,
        rid: SockId,
        seg: &TcpRepr,
        payload: &[u8],
        route_mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let Some(Sock::Req(req)) = self.socks.get(rid) else {
            return;
        };
        let f = seg.flags;
        let (local, remote) = (req.local, req.remote);
        let rcv_nxt = req.irs + 1;
        // PAWS on the request (RFC 7323 section 5).
        if let (Some(recent), Some((val, _))) = (req.ts_recent, seg.options.timestamp) {
            if !f.rst() && (val.wrapping_sub(recent) as i32) < 0 {
                self.sh.stats.paws_estab += 1;
                return;
            }
        }
        if f.syn() && !f.ack() && seg.seq == req.irs {
            // Retransmitted SYN: repeat the SYN-ACK (Linux inet_rtx_syn_ack).
            self.send_synack(now, rid, true, out);
            return;
        }
        let wnd = req.rcvbuf.min(65535) as u32;
        let in_window = seg.seq.ge(rcv_nxt) && seg.seq.le(rcv_nxt + wnd);
        if !in_window {
            if !f.rst() {
                self.send_synack(now, rid, true, out);
            }
            return;
        }
        if f.rst() || f.syn() {
            // Embryonic reset (RFC 9293: RST in SYN-RECEIVED from a passive open returns
            // to LISTEN; a SYN in window is an error).
            if f.syn() {
                send_reset_reply(&mut self.sh, local, remote, seg, payload.len(), out);
            }
            self.sh.stats.attempt_fails += 1;
            self.free(rid);
            return;
        }
        if !f.ack() {
            return;
        }
        if seg.ack != req.iss + 1 {
            send_reset_reply(&mut self.sh, local, remote, seg, payload.len(), out);
            return;
        }
        let lid = req.listener;
        let full = match self.socks.get(lid) {
            Some(Sock::Listen(l)) => l.accept_q.len() > l.backlog,
            _ => {
                self.free(rid);
                send_reset_reply(&mut self.sh, local, remote, seg, payload.len(), out);
                return;
            }
        };
        if full {
            // Linux: listen_overflow without tcp_abort_on_overflow: mark acked, drop.
            self.sh.stats.listen_overflows += 1;
            self.sh.stats.listen_drops += 1;
            if let Some(Sock::Req(r)) = self.socks.get_mut(rid) {
                r.acked = true;
            }
            return;
        }
        // Promote the request sock to a full connection in the same slot.
        self.sh.clear_timer(rid, TimerKind::Rtx);
        let Some(Sock::Req(req)) = self.socks.remove(rid) else {
            return;
        };
        let opts = match self.socks.get_mut(lid) {
            Some(Sock::Listen(l)) => {
                l.syn_q.remove(&rid);
                l.opts
            }
            _ => self.default_opts(),
        };
        let cid = self
            .socks
            .insert(Sock::Plain(Box::new(crate::tcb::PlainSock {
                opts,
                local: None,
                evt: false,
            })));
        let mut tcb = Tcb::new(
            cid,
            opts,
            &self.sh.cfg,
            local,
            remote,
            req.iss,
            // The route now: the path MTU may have dropped since the SYN (Linux routes
            // the child afresh, `inet_csk_route_child_sock`).
            req.route_mtu.min(route_mtu),
            now,
        );
        tcb.advmss = req.advmss;
        tcb.irs = req.irs;
        tcb.rcv_nxt = req.irs + 1;
        tcb.rcv_wup = tcb.rcv_nxt;
        tcb.rcv_wnd = req.rcvbuf.min(65535) as u32;
        tcb.snd_una = req.iss + 1;
        tcb.snd_nxt = req.iss + 1;
        tcb.snd_sml = tcb.snd_una;
        tcb.high_seq = tcb.snd_una;
        tcb.rtx_next = tcb.snd_una;
        tcb.lost_end = tcb.snd_una;
        tcb.peer_mss = req.peer_mss.max(64);
        if let Some(ws) = req.snd_wscale {
            tcb.ws_ok = true;
            tcb.snd_wscale = ws;
            tcb.rcv_wscale = req.rcv_wscale;
        }
        tcb.sack_ok = req.sack_ok;
        tcb.ecn_ok = req.ecn_ok;
        if let Some(ts) = req.ts_recent {
            tcb.ts_ok = true;
            tcb.ts_recent = ts;
            tcb.ts_recent_stamp = Some(now);
            tcb.ts_offset = req.ts_offset;
        }
        set_mss(&mut tcb);
        tcb.snd_wnd = (seg.window as u32) << tcb.snd_wscale;
        tcb.max_sndwnd = tcb.snd_wnd;
        tcb.snd_wl1 = seg.seq;
        tcb.snd_wl2 = seg.ack;
        if req.retrans == 0 {
            tcb.rtt.sample(now.saturating_duration_since(req.created));
        }
        tcb.listener = Some(lid);
        tcb.hashed = true;
        tcb.in_bhash = true;
        tcb.state = TcpState::SynReceived;
        self.hash.replace_established((local, remote), cid);
        self.hash.add_conn(local.port());
        set_state(&mut tcb, &mut self.sh, TcpState::Established);
        on_established(&mut tcb, &mut self.sh, now);
        tcb.last_rcv = now;
        // The rest of the segment (data, FIN) as in ESTABLISHED.
        self.install_child(now, tcb, cid, lid, seg, payload, out);
    }

    /// The last step of a passive open (Linux: `tcp_check_req` -> `inet_csk_complete_hashdance`
    /// -> `inet_csk_reqsk_queue_add`): the rest of the third ACK (data, FIN) is processed as
    /// in ESTABLISHED, the child takes its slot, and it joins the listener's accept queue.
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        now: Instant,
        mut tcb: Tcb,
        cid: SockId,
        lid: SockId,
        seg: &TcpRepr,
        payload: &[u8],
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let mut verdict = Verdict::Keep;
        if !payload.is_empty() || seg.flags.fin() {
            verdict = rcv_state_process(&mut tcb, &mut self.sh, now, seg, payload, out);
        }
        tcb.sync_mem(&mut self.sh);
        if let Some(slot) = self.socks.get_mut(cid) {
            *slot = Sock::Conn(Box::new(tcb));
        }
        if let Some(Sock::Listen(l)) = self.socks.get_mut(lid) {
            l.accept_q.push_back(cid);
            let mut evt = l.evt;
            self.sh.wake(lid, &mut evt);
            l.evt = evt;
        }
        if verdict == Verdict::Closed {
            self.unhash_conn(cid);
        }
    }

    fn cookie_time(&mut self, now: Instant) -> u32 {
        crate::syncookie::minute_counter(self.sh.since_epoch(now))
    }

    /// Linux `cookie_v4_init_sequence` + SYN-ACK without state: the MSS is encoded in the
    /// ISN (RFC 4987 section 3.6); when the SYN carried timestamps, its window scale and
    /// SACK-permitted ride in the low bits of our TSval (Linux `cookie_init_timestamp`).
    #[allow(clippy::too_many_arguments)]
    fn send_cookie_synack(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        route_mtu: usize,
        ip: IpOpts,
        rcvbuf: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) {
        let mss = seg
            .options
            .mss
            .unwrap_or(crate::tcb::DEFAULT_MSS)
            .min(route_mtu.saturating_sub(40).min(65535) as u16);
        let t = self.cookie_time(now);
        let (iss, _mss_used) = self.sh.cookies.encode(t, local, remote, seg.seq.0, mss);
        let mut r = TcpRepr::new(
            local.port(),
            remote.port(),
            SeqNum(iss),
            seg.seq + 1,
            TcpFlags::SYN | TcpFlags::ACK,
        );
        r.window = rcvbuf.min(65535) as u16;
        r.options = TcpOptions {
            mss: Some(route_mtu.saturating_sub(40).clamp(88, 65495) as u16),
            ..TcpOptions::default()
        };
        if let (true, Some((val, _))) = (self.sh.cfg.timestamps, seg.options.timestamp) {
            let ws = if self.sh.cfg.window_scaling {
                seg.options.wscale
            } else {
                None
            };
            let sack = self.sh.cfg.sack && seg.options.sack_permitted;
            // ECN needs the timestamp to be remembered (Linux `cookie_ecn_ok`), as the
            // SYN's other options do.
            let ecn = ecn_accepted(&self.sh.cfg, seg);
            if ecn {
                // ECN-setup SYN-ACK: ECE without CWR.
                r.flags |= TcpFlags::ECE;
            }
            let off = self.sh.isn.ts_offset(*local.ip(), *remote.ip());
            let ts_now = self.sh.ts_now(now).wrapping_add(off);
            r.options.timestamp = Some((
                crate::syncookie::encode_ts_options(ts_now, ws, sack, ecn),
                val,
            ));
            if ws.is_some() {
                r.options.wscale = Some(wscale_for(self.sh.cfg.rmem.2));
            }
            r.options.sack_permitted = sack;
        }
        r.header_len = r.emit_len();
        self.sh.stats.syncookies_sent += 1;
        send_raw(&mut self.sh, local, remote, &r, ip, out);
    }

    /// Linux `cookie_v4_check`: a bare ACK to a listener may complete a cookie handshake.
    /// Returns true when the segment was consumed.
    #[allow(clippy::too_many_arguments)]
    fn cookie_check(
        &mut self,
        now: Instant,
        lid: SockId,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
        payload: &[u8],
        route_mtu: usize,
        out: &mut Vec<TcpSegmentOut>,
    ) -> bool {
        let t = self.cookie_time(now);
        let iss = SeqNum(seg.ack.0.wrapping_sub(1));
        let client_isn = SeqNum(seg.seq.0.wrapping_sub(1));
        let Some(mss) = self
            .sh
            .cookies
            .decode(t, local, remote, client_isn.0, iss.0)
        else {
            if self.sh.stats.syncookies_sent > 0 {
                self.sh.stats.syncookies_failed += 1;
            }
            return false;
        };
        self.sh.stats.syncookies_recv += 1;
        let opts = match self.socks.get(lid) {
            Some(Sock::Listen(l)) if l.accept_q.len() <= l.backlog => l.opts,
            Some(Sock::Listen(_)) => {
                self.sh.stats.listen_overflows += 1;
                self.sh.stats.listen_drops += 1;
                return true;
            }
            _ => return false,
        };
        let cid = self
            .socks
            .insert(Sock::Plain(Box::new(crate::tcb::PlainSock {
                opts,
                local: None,
                evt: false,
            })));
        let mut tcb = Tcb::new(cid, opts, &self.sh.cfg, local, remote, iss, route_mtu, now);
        tcb.irs = client_isn;
        tcb.rcv_nxt = seg.seq;
        tcb.rcv_wup = tcb.rcv_nxt;
        tcb.rcv_wnd = opts.rcvbuf.min(65535) as u32;
        tcb.snd_una = seg.ack;
        tcb.snd_nxt = seg.ack;
        tcb.snd_sml = tcb.snd_una;
        tcb.high_seq = tcb.snd_una;
        tcb.rtx_next = tcb.snd_una;
        tcb.lost_end = tcb.snd_una;
        tcb.peer_mss = mss;
        if let (true, Some((val, ecr))) = (self.sh.cfg.timestamps, seg.options.timestamp) {
            if let Some(o) = crate::syncookie::decode_ts_options(ecr) {
                tcb.ts_ok = true;
                tcb.ts_recent = val;
                tcb.ts_recent_stamp = Some(now);
                tcb.ts_offset = self.sh.isn.ts_offset(*local.ip(), *remote.ip());
                tcb.sack_ok = o.sack;
                tcb.ecn_ok = o.ecn && self.sh.cfg.ecn != crate::EcnMode::Off;
                if let Some(ws) = o.wscale {
                    tcb.ws_ok = true;
                    tcb.snd_wscale = ws.min(14);
                    tcb.rcv_wscale = wscale_for(self.sh.cfg.rmem.2);
                }
            }
        }
        set_mss(&mut tcb);
        tcb.snd_wnd = (seg.window as u32) << tcb.snd_wscale;
        tcb.max_sndwnd = tcb.snd_wnd;
        tcb.snd_wl1 = seg.seq;
        tcb.snd_wl2 = seg.ack;
        tcb.listener = Some(lid);
        tcb.hashed = true;
        tcb.in_bhash = true;
        tcb.state = TcpState::SynReceived;
        if !self.hash.insert_established((local, remote), cid) {
            self.socks.remove(cid);
            return true;
        }
        self.hash.add_conn(local.port());
        self.sh.stats.passive_opens += 1;
        set_state(&mut tcb, &mut self.sh, TcpState::Established);
        on_established(&mut tcb, &mut self.sh, now);
        self.install_child(now, tcb, cid, lid, seg, payload, out);
        true
    }
}

/// Whether a listener answers this SYN with ECN (RFC 3168 6.1.1: an ECN-setup SYN carries
/// ECE and CWR; the stack accepts unless ECN is off).
fn ecn_accepted(cfg: &crate::TcpConfig, seg: &TcpRepr) -> bool {
    cfg.ecn != crate::EcnMode::Off && seg.flags.ece() && seg.flags.cwr()
}
