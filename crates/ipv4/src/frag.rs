//! Fragment reassembly on input and fragmentation on output.
//!
//! Linux: `ip_defrag`, `ip_frag_queue`, `ip_frag_reasm`, `ip_expire`, the `inet_frags`
//! evictor; and `ip_fragment` / `ip_do_fragment` on output.
//!
//! Reassembly keeps, per datagram (key: source, destination, protocol, identification,
//! RFC 791 section 3.2), one buffer that each fragment's payload is copied into exactly
//! once, plus the sorted list of byte ranges received (RFC 815 hole bookkeeping: the
//! holes are the gaps between the ranges). When the ranges cover `[0, total)` the buffer,
//! with the first fragment's header in front, is the reassembled datagram: no second copy.
//!
//! Overlap policy: a fragment that repeats exactly the range of one already received
//! (a retransmitted or duplicated fragment) is ignored. Any other overlap drops the whole
//! datagram, as Linux does since 2018 for IPv4 and RFC 5722 prescribes for IPv6: overlapping
//! fragments have no legitimate use and are the basis of evasion and teardrop attacks.
//!
//! Bounds: a datagram is at most 65535 bytes; a queue lives at most `timeout` (30 s by
//! default, RFC 1122 3.3.2 recommends 60-120 s, Linux uses 30 s); the memory held by all
//! queues is bounded by `mem_limit`, and the oldest queues are evicted to stay under it.

use crate::checksum;
use crate::wire::{Ipv4Repr, HEADER_LEN, MAX_DATAGRAM};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use ustack_netdev::PacketBuf;

/// Room reserved in front of a reassembly buffer for the largest IPv4 header.
const MAX_HDR: usize = 60;
/// Memory charged per queue on top of its buffer (bookkeeping).
const QUEUE_OVERHEAD: usize = 256;
/// Memory charged per received range (one entry of `FragQueue::pieces`).
const PIECE_OVERHEAD: usize = 16;

/// Identifies the fragments of one datagram (Linux: `struct frag_v4_compare_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Identification field.
    pub ident: u16,
}

/// Why a fragment (and its datagram) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasmDrop {
    /// It overlapped a fragment already received without repeating it exactly.
    Overlap,
    /// The reassembled datagram would exceed 65535 bytes.
    TooBig,
    /// Inconsistent with the fragments received so far (data beyond the end given by the
    /// last fragment, two different ends, or a length mismatch with the buffer).
    Inconsistent,
    /// The fragment alone does not fit in the memory limit.
    MemoryLimit,
}

/// Result of feeding one fragment to the [`Reassembler`].
#[derive(Debug)]
pub enum ReasmOutcome {
    /// The datagram is complete: IP header (first fragment's, with MF and offset cleared,
    /// total length and checksum fixed) followed by the whole payload.
    Complete(PacketBuf),
    /// Kept; more fragments are needed (or an exact duplicate was ignored).
    Pending,
    /// Dropped, together with every fragment of the same datagram received so far.
    Dropped(ReasmDrop),
}

#[derive(Debug)]
struct FragQueue {
    /// `buf[MAX_HDR - hdr_len..MAX_HDR]` is the first fragment's header once it arrived;
    /// `buf[MAX_HDR..]` is the payload.
    buf: Vec<u8>,
    /// Header length of the first fragment; 0 until it arrives.
    hdr_len: usize,
    /// Received payload ranges `[start, end)`, sorted and disjoint.
    pieces: Vec<(usize, usize)>,
    /// Payload bytes received.
    received: usize,
    /// Payload length, known once the last fragment (MF = 0) arrived.
    total: Option<usize>,
    seq: u64,
    expires: Instant,
}

impl FragQueue {
    fn mem(&self) -> usize {
        self.buf.len() + QUEUE_OVERHEAD + self.pieces.len() * PIECE_OVERHEAD
    }
}

/// The reassembly queues (Linux: `struct fqdir` + `struct ipq`).
#[derive(Debug)]
pub struct Reassembler {
    queues: HashMap<FragKey, FragQueue>,
    /// Creation order: oldest first. As the timeout is the same for all queues this is
    /// also expiry order.
    order: BTreeMap<u64, FragKey>,
    next_seq: u64,
    mem: usize,
    mem_limit: usize,
    timeout: Duration,
    evictions: u64,
}

impl Reassembler {
    /// A reassembler with the given queue lifetime and global memory bound (bytes).
    pub fn new(timeout: Duration, mem_limit: usize) -> Self {
        Reassembler {
            queues: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            mem: 0,
            mem_limit,
            timeout,
            evictions: 0,
        }
    }

    /// Number of datagrams being reassembled.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// True when no datagram is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Memory charged to all queues (bytes).
    pub fn mem_usage(&self) -> usize {
        self.mem
    }

    /// Queues evicted so far to stay under the memory limit (each is a `ReasmFails`).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// When the oldest queue expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        let (_, key) = self.order.first_key_value()?;
        self.queues.get(key).map(|q| q.expires)
    }

    fn kill(&mut self, key: &FragKey) -> Option<FragQueue> {
        let q = self.queues.remove(key)?;
        self.order.remove(&q.seq);
        self.mem = self.mem.saturating_sub(q.mem());
        Some(q)
    }

    /// Drops every queue whose time is up (Linux: `ip_expire`). For each, `on_expired`
    /// gets the first fragment's IP header plus up to 8 payload bytes if the first
    /// fragment had arrived (RFC 792 / RFC 1122 3.2.2.4: the caller then sends ICMP time
    /// exceeded, code 1), or `None`.
    pub fn expire(&mut self, now: Instant, mut on_expired: impl FnMut(Option<&[u8]>)) {
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            let expired = self.queues.get(&key).is_none_or(|q| q.expires <= now);
            if !expired {
                break;
            }
            match self.kill(&key) {
                Some(q) => {
                    let quote = if q.hdr_len > 0 {
                        let first = q.pieces.first().map_or(0, |p| p.1 - p.0).min(8);
                        q.buf.get(MAX_HDR - q.hdr_len..MAX_HDR + first)
                    } else {
                        None
                    };
                    on_expired(quote);
                }
                None => {
                    // Order entry without a queue: cannot happen, but never loop forever.
                    self.order.pop_first();
                }
            }
        }
    }

    /// Makes room for `extra` more bytes by evicting the oldest queues other than `keep`.
    /// Returns false if that is not possible. Linux: `inet_frag_evictor`.
    fn make_room(&mut self, extra: usize, keep: &FragKey) -> bool {
        while self.mem + extra > self.mem_limit {
            let victim = self.order.values().find(|k| *k != keep).copied();
            match victim {
                Some(k) => {
                    self.kill(&k);
                    self.evictions += 1;
                }
                None => return false,
            }
        }
        true
    }

    /// Adds one fragment. `repr` is its parsed header and `packet` the whole fragment
    /// (header + payload, trimmed to the total length). Linux: `ip_defrag` ->
    /// `ip_frag_queue` -> `ip_frag_reasm`.
    pub fn add(&mut self, now: Instant, repr: &Ipv4Repr, packet: &[u8]) -> ReasmOutcome {
        let key = FragKey {
            src: repr.src,
            dst: repr.dst,
            protocol: repr.protocol,
            ident: repr.ident,
        };
        let start = usize::from(repr.frag_offset);
        let end = start + repr.payload_len;
        let Some(payload) = packet.get(repr.header_len..repr.header_len + repr.payload_len) else {
            return self.drop_queue(&key, ReasmDrop::Inconsistent);
        };
        if end + HEADER_LEN.max(if start == 0 { repr.header_len } else { 0 }) > MAX_DATAGRAM {
            return self.drop_queue(&key, ReasmDrop::TooBig);
        }
        if !self.queues.contains_key(&key) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let q = FragQueue {
                buf: Vec::new(),
                hdr_len: 0,
                pieces: Vec::new(),
                received: 0,
                total: None,
                seq,
                expires: now + self.timeout,
            };
            self.mem += q.mem();
            self.order.insert(seq, key);
            self.queues.insert(key, q);
        }
        // Validate against what is known before touching memory.
        let verdict = match self.queues.get(&key) {
            Some(q) => check(q, repr, start, end),
            None => Err(ReasmDrop::Inconsistent),
        };
        let is_dup = match verdict {
            Ok(dup) => dup,
            Err(why) => return self.drop_queue(&key, why),
        };
        if is_dup {
            return ReasmOutcome::Pending;
        }
        // Charge the whole cost before accepting: buffer growth plus the range entry
        // (and the queue's own overhead, already counted in `mem` when it was created).
        let need = MAX_HDR + end;
        let cur = self.queues.get(&key).map_or(0, |q| q.buf.len());
        let extra = need.saturating_sub(cur) + if end > start { PIECE_OVERHEAD } else { 0 };
        if !self.make_room(extra, &key) {
            return self.drop_queue(&key, ReasmDrop::MemoryLimit);
        }
        let Some(q) = self.queues.get_mut(&key) else {
            return ReasmOutcome::Dropped(ReasmDrop::Inconsistent);
        };
        let before = q.mem();
        if need > q.buf.len() {
            q.buf.reserve_exact(need - q.buf.len());
            q.buf.resize(need, 0);
        }
        if let Some(dst) = q.buf.get_mut(MAX_HDR + start..MAX_HDR + end) {
            dst.copy_from_slice(payload);
        }
        if start == 0 {
            let hl = repr.header_len;
            if let (Some(dst), Some(src)) = (q.buf.get_mut(MAX_HDR - hl..MAX_HDR), packet.get(..hl))
            {
                dst.copy_from_slice(src);
                q.hdr_len = hl;
            }
        }
        if !repr.more_frags {
            q.total = Some(end);
        }
        if end > start {
            let pos = q.pieces.partition_point(|p| p.0 < start);
            q.pieces.insert(pos, (start, end));
            q.received += end - start;
        }
        let after = q.mem();
        self.mem = self.mem + after - before;
        match q.total {
            Some(t) if q.received == t && q.hdr_len > 0 => {}
            _ => return ReasmOutcome::Pending,
        }
        match self.kill(&key) {
            Some(q) => finish(q),
            None => ReasmOutcome::Dropped(ReasmDrop::Inconsistent),
        }
    }

    fn drop_queue(&mut self, key: &FragKey, why: ReasmDrop) -> ReasmOutcome {
        self.kill(key);
        ReasmOutcome::Dropped(why)
    }
}

/// Checks a new fragment `[start, end)` against queue `q`: `Ok(true)` for an exact
/// duplicate (ignore it), `Ok(false)` to insert it, `Err` to drop the datagram.
fn check(q: &FragQueue, repr: &Ipv4Repr, start: usize, end: usize) -> Result<bool, ReasmDrop> {
    if let Some(t) = q.total {
        if end > t || (!repr.more_frags && end != t) {
            return Err(ReasmDrop::Inconsistent);
        }
    } else if !repr.more_frags && q.pieces.last().is_some_and(|p| p.1 > end) {
        return Err(ReasmDrop::Inconsistent);
    }
    if end == start {
        // Empty last fragment: nothing to place.
        return Ok(false);
    }
    let pos = q.pieces.partition_point(|p| p.0 < start);
    if let Some(&(s, e)) = q.pieces.get(pos) {
        if s == start && e == end {
            return Ok(true);
        }
        if s < end {
            return Err(ReasmDrop::Overlap);
        }
    }
    if pos > 0 {
        if let Some(&(_, e)) = q.pieces.get(pos - 1) {
            if e > start {
                return Err(ReasmDrop::Overlap);
            }
        }
    }
    Ok(false)
}

/// Turns a complete queue into the datagram (Linux: `ip_frag_reasm`).
fn finish(q: FragQueue) -> ReasmOutcome {
    let hl = q.hdr_len;
    let Some(total) = q.total else {
        return ReasmOutcome::Dropped(ReasmDrop::Inconsistent);
    };
    if hl + total > MAX_DATAGRAM {
        return ReasmOutcome::Dropped(ReasmDrop::TooBig);
    }
    let mut buf = q.buf;
    buf.truncate(MAX_HDR + total);
    let Some(h) = buf.get_mut(MAX_HDR - hl..MAX_HDR) else {
        return ReasmOutcome::Dropped(ReasmDrop::Inconsistent);
    };
    h[2..4].copy_from_slice(&((hl + total) as u16).to_be_bytes());
    // Keep DF, clear MF and the offset.
    h[6] &= 0x40;
    h[7] = 0;
    h[10] = 0;
    h[11] = 0;
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let mut pkt = PacketBuf::from_vec(buf);
    if pkt.pull(MAX_HDR - hl).is_none() {
        return ReasmOutcome::Dropped(ReasmDrop::Inconsistent);
    }
    ReasmOutcome::Complete(pkt)
}

/// Why [`fragment`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// The MTU cannot carry a header plus 8 bytes (RFC 791: every host accepts 68).
    MtuTooSmall,
}

/// Splits a datagram into fragments of at most `mtu` bytes each, appending them to `out`
/// (RFC 791 section 3.2 "fragmentation"; Linux: `ip_do_fragment`, slow path).
///
/// `repr` is the header of the whole datagram (its `payload_len` is ignored; its offset
/// and MF flag are honoured, so an already fragmented datagram can be split further);
/// `payload` is the whole payload. Each piece's payload is copied once into its own
/// buffer, with headroom for the header, which is then pushed in front. Every piece but
/// the last carries a multiple of 8 bytes. Returns the number of fragments made.
pub fn fragment(
    repr: &Ipv4Repr,
    payload: &[u8],
    mtu: usize,
    out: &mut Vec<PacketBuf>,
) -> Result<usize, FragError> {
    if mtu < HEADER_LEN + 8 {
        return Err(FragError::MtuTooSmall);
    }
    let piece = (mtu - HEADER_LEN) & !7;
    let mut n = 0;
    let mut off = 0;
    loop {
        let len = piece.min(payload.len() - off);
        let last = off + len >= payload.len();
        let chunk = payload.get(off..off + len).unwrap_or_default();
        let mut pkt = PacketBuf::with_headroom(HEADER_LEN, len);
        pkt.extend_from_slice(chunk);
        let hdr = Ipv4Repr {
            dont_frag: false,
            more_frags: !last || repr.more_frags,
            frag_offset: repr.frag_offset.saturating_add(off as u16),
            header_len: HEADER_LEN,
            payload_len: len,
            ..*repr
        };
        hdr.emit(pkt.push(HEADER_LEN));
        out.push(pkt);
        n += 1;
        off += len;
        if last {
            break;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
