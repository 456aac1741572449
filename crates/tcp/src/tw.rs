//! TIME-WAIT (Linux: `inet_timewait_sock`, `tcp_timewait_state_process`).
//!
//! A connection the application has closed keeps only what TIME-WAIT needs once it gets
//! there: its addresses, the sequence numbers to acknowledge a retransmitted FIN with,
//! and the timestamps that guard the pair against old duplicates. The whole TCB (~800
//! bytes) is freed; a server that closes first can hold `max_tw_buckets` of these.

use std::net::SocketAddrV4;
use std::time::Instant;

use crate::ctx::{Shared, TimerKind};
use crate::input::Verdict;
use crate::output::{send_raw, TcpSegmentOut};
use crate::seq::SeqNum;
use crate::sock::SockId;
use crate::tcb::{IpOpts, Tcb};
use crate::wire::{TcpFlags, TcpRepr};

/// What a connection in TIME-WAIT keeps.
#[derive(Clone, Debug)]
pub(crate) struct TwSock {
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    /// Our next sequence number (after our FIN).
    pub(crate) snd_nxt: SeqNum,
    /// The peer's next sequence number (after its FIN).
    pub(crate) rcv_nxt: SeqNum,
    /// The window field our ACKs carry (already scaled).
    pub(crate) window: u16,
    pub(crate) ts_ok: bool,
    pub(crate) ts_recent: u32,
    pub(crate) ts_recent_stamp: Option<Instant>,
    pub(crate) ts_offset: u32,
    pub(crate) ip: IpOpts,
    /// In the established hash / counted in the port's bind bucket.
    pub(crate) hashed: bool,
    pub(crate) in_bhash: bool,
}

impl TwSock {
    /// The TIME-WAIT state of `tcb`.
    pub(crate) fn of(tcb: &Tcb) -> TwSock {
        TwSock {
            local: tcb.local,
            remote: tcb.remote,
            snd_nxt: tcb.snd_nxt,
            rcv_nxt: tcb.rcv_nxt,
            window: (tcb.rcv_wnd_now() >> tcb.rcv_wscale).min(65535) as u16,
            ts_ok: tcb.ts_ok,
            ts_recent: tcb.ts_recent,
            ts_recent_stamp: tcb.ts_recent_stamp,
            ts_offset: tcb.ts_offset,
            ip: tcb.opts.ip,
            hashed: tcb.hashed,
            in_bhash: tcb.in_bhash,
        }
    }

    /// The sequence number a new connection reusing this pair must start above (Linux
    /// `tcp_twsk_unique`), if timestamps protect it and it is older than one second.
    pub(crate) fn reusable_after(&self, now: Instant) -> Option<SeqNum> {
        let old = self
            .ts_recent_stamp
            .is_some_and(|s| now.saturating_duration_since(s) > std::time::Duration::from_secs(1));
        (self.ts_ok && old).then(|| self.snd_nxt + 65535 + 2)
    }

    /// A pure ACK of everything received (RFC 9293 3.10.7.4, TIME-WAIT).
    fn send_ack(&self, sh: &mut Shared, now: Instant, out: &mut Vec<TcpSegmentOut>) {
        let mut repr = TcpRepr::new(
            self.local.port(),
            self.remote.port(),
            self.snd_nxt,
            self.rcv_nxt,
            TcpFlags::ACK,
        );
        if self.ts_ok {
            repr.options.timestamp =
                Some((sh.ts_now(now).wrapping_add(self.ts_offset), self.ts_recent));
        }
        repr.window = self.window;
        repr.header_len = repr.emit_len();
        send_raw(sh, self.local, self.remote, &repr, self.ip, out);
    }
}

/// A segment for a connection in TIME-WAIT (checksum already verified; Linux
/// `tcp_timewait_state_process`). `Closed` ends TIME-WAIT (an in-window RST); `TwSyn`
/// hands a clearly newer SYN to the listener after the caller kills this pair.
pub(crate) fn tw_input(
    tw: &TwSock,
    id: SockId,
    sh: &mut Shared,
    now: Instant,
    seg: &TcpRepr,
    payload_len: usize,
    out: &mut Vec<TcpSegmentOut>,
) -> Verdict {
    let f = seg.flags;
    if f.syn() && !f.rst() && !f.ack() {
        // A new SYN may reuse the pair if it is clearly newer (Linux TCP_TW_SYN).
        let newer_seq = seg.seq.gt(tw.rcv_nxt);
        let newer_ts = match (tw.ts_ok, seg.options.timestamp) {
            (true, Some((val, _))) => (val.wrapping_sub(tw.ts_recent) as i32) > 0,
            (true, None) => false,
            _ => true,
        };
        if newer_seq && newer_ts {
            sh.stats.tcp_tw_recycled += 1;
            return Verdict::TwSyn;
        }
    }
    if tw.ts_ok && !f.rst() {
        if let Some((val, _)) = seg.options.timestamp {
            if (val.wrapping_sub(tw.ts_recent) as i32) < 0 {
                sh.stats.paws_estab += 1;
                tw.send_ack(sh, now, out);
                return Verdict::Keep;
            }
        }
    }
    if f.rst() {
        // RFC 1337: Linux ignores RST in TIME_WAIT by default (tcp_rfc1337 = 0 kills it).
        return if seg.seq == tw.rcv_nxt {
            Verdict::Closed
        } else {
            Verdict::Keep
        };
    }
    let len = payload_len as u32 + f.fin() as u32;
    if f.fin() && seg.seq + payload_len as u32 == SeqNum(tw.rcv_nxt.0.wrapping_sub(1)) {
        // Retransmitted FIN: ACK it and restart the 2*MSL timer.
        tw.send_ack(sh, now, out);
        sh.set_timer(id, TimerKind::Keepalive, now + sh.cfg.time_wait);
        return Verdict::Keep;
    }
    if f.syn() || len > 0 || f.ack() && seg.ack.gt(tw.snd_nxt) {
        tw.send_ack(sh, now, out);
    }
    Verdict::Keep
}
