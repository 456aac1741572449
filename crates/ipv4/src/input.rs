//! IPv4 input and ICMP input (Linux: `ip_rcv`, `ip_rcv_finish`, `ip_local_deliver`,
//! `ip_local_deliver_finish`, `icmp_rcv`).

use crate::icmp::{
    EchoReply, IcmpError, IcmpErrorKind, IcmpParseError, IcmpRepr, QuotedHeader, ICMP_DEST_UNREACH,
    ICMP_PARAMETER_PROB, ICMP_TIME_EXCEEDED,
};
use crate::layer::{IpRxMeta, Ipv4Layer};
use crate::proto::{DeliverResult, IpContext};
use crate::wire::{HeaderError, Ipv4Repr};
use crate::{IPPROTO_ICMP, IPPROTO_IGMP};
use std::net::Ipv4Addr;
use std::time::Instant;
use ustack_netdev::{DevId, PacketBuf};

/// Largest quote kept for an ICMP error sent after delivery: a 60-byte header + 8 bytes.
const QUOTE_MAX: usize = 68;

/// Saves the start of a received datagram (its header + 8 bytes, at most [`QUOTE_MAX`])
/// into `quote` for an ICMP error sent after the handler has consumed the buffer; returns
/// the number of bytes saved. `quote` is filled in place (building it elsewhere and moving
/// it would reload bytes just stored, which stalls store forwarding).
#[inline]
fn save_quote(quote: &mut [u8; QUOTE_MAX], data: &[u8], header_len: usize) -> usize {
    let len = (header_len + 8).min(data.len()).min(QUOTE_MAX);
    match data.first_chunk::<QUOTE_MAX>() {
        // Common case: one fixed-size copy.
        Some(b) => quote.copy_from_slice(b),
        None => {
            if let (Some(d), Some(s)) = (quote.get_mut(..len), data.get(..len)) {
                d.copy_from_slice(s);
            }
        }
    }
    len
}

/// Receives one IPv4 datagram from device `dev`.
///
/// Linux: `ip_rcv` -> `ip_rcv_finish` -> `ip_local_deliver` (with `ip_defrag`) ->
/// `ipprot->handler`.
///
/// 1. Validate the header ([`Ipv4Repr::parse`]); count `InReceives` and, on error,
///    `InHdrErrors` (`InTruncatedPkts`, `InCsumErrors`, `InAddrErrors` for martians).
///    Trailing link padding beyond the total length is trimmed.
/// 2. Accept only datagrams to one of our addresses, to a broadcast address
///    (255.255.255.255 or a connected subnet's) or to a multicast group the arrival
///    device has joined (224.0.0.1 always); everything else is dropped (and, unless
///    multicast, counted in `InAddrErrors`) — there is no forwarding.
/// 3. Reassemble fragments.
/// 4. IGMP (protocol 2) goes to the group membership state ([`crate::igmp`]).
///    ICMP (protocol 1) is handled here: echo request -> echo reply; echo reply ->
///    [`crate::Ipv4Layer::take_echo_replies`]; errors -> the `err_handler` of the quoted
///    datagram's protocol ("fragmentation needed" with its MTU clamped; the transport
///    validates it and updates the PMTU cache).
/// 5. Other protocols go to their [`crate::NetProtocol::handler`]. Unknown protocol ->
///    ICMP protocol unreachable; handler says `PortUnreachable` -> ICMP port unreachable
///    (never for broadcasts or multicasts, RFC 1122 3.2.2).
pub fn ip_rcv<C: IpContext>(cx: &mut C, now: Instant, dev: DevId, mut pkt: PacketBuf) {
    let ip = cx.ip();
    ip.stats.in_receives += 1;
    let mut repr = match Ipv4Repr::parse(pkt.data()) {
        Ok(r) => r,
        Err(e) => {
            match e {
                HeaderError::Truncated => ip.stats.in_truncated_pkts += 1,
                HeaderError::BadAddress => ip.stats.in_addr_errors += 1,
                HeaderError::BadChecksum => {
                    ip.stats.in_csum_errors += 1;
                    ip.stats.in_hdr_errors += 1;
                }
                _ => ip.stats.in_hdr_errors += 1,
            }
            tracing::trace!(error = %e, "ip_rcv: bad header");
            return;
        }
    };
    pkt.trim(repr.header_len + repr.payload_len);

    let mut quote = [0u8; QUOTE_MAX];
    let (broadcast, qlen) = if !repr.is_fragment() {
        // Common path. The quote is saved and the header pulled before the address check,
        // so the store of the buffer's new head has completed by the time the buffer is
        // handed to the protocol (a reload of a field still being stored stalls).
        let qlen = save_quote(&mut quote, pkt.data(), repr.header_len);
        if pkt.pull(repr.header_len).is_none() {
            // Cannot happen: parse checked that the header fits in the buffer.
            ip.stats.in_hdr_errors += 1;
            return;
        }
        let Some(broadcast) = accept_dst(ip, repr.dst, dev) else {
            return;
        };
        (broadcast, qlen)
    } else {
        let Some(broadcast) = accept_dst(ip, repr.dst, dev) else {
            return;
        };
        let Some(whole) = ip.defrag(now, &repr, pkt.data()) else {
            return;
        };
        match Ipv4Repr::parse(whole.data()) {
            Ok(r) => repr = r,
            Err(_) => {
                ip.stats.in_hdr_errors += 1;
                return;
            }
        }
        pkt = whole;
        let qlen = save_quote(&mut quote, pkt.data(), repr.header_len);
        if pkt.pull(repr.header_len).is_none() {
            ip.stats.in_hdr_errors += 1;
            return;
        }
        (broadcast, qlen)
    };
    let quote = quote.get(..qlen).unwrap_or_default();
    let meta = IpRxMeta {
        src: repr.src,
        dst: repr.dst,
        protocol: repr.protocol,
        ttl: repr.ttl,
        tos: repr.tos,
        dev,
        multi: broadcast,
    };

    if repr.protocol == IPPROTO_ICMP {
        ip.stats.in_delivers += 1;
        icmp_rcv(cx, now, &meta, &pkt, broadcast);
        return;
    }
    if repr.protocol == IPPROTO_IGMP {
        ip.stats.in_delivers += 1;
        if let Err(e) = ip.igmp.input(now, dev, pkt.data()) {
            tracing::trace!(error = ?e, "igmp: bad message");
        }
        ip.send_igmp(now);
        return;
    }
    // Copy the entry out so the handler can borrow the whole context mutably.
    let Some(proto) = cx.protos().get(repr.protocol) else {
        let ip = cx.ip();
        ip.stats.in_unknown_protos += 1;
        if !broadcast {
            ip.icmp_send_error(now, quote, IcmpErrorKind::ProtocolUnreachable);
        }
        return;
    };
    cx.ip().stats.in_delivers += 1;
    match (proto.handler)(cx, now, &meta, pkt) {
        DeliverResult::Consumed => {}
        DeliverResult::PortUnreachable => {
            if !broadcast {
                cx.ip()
                    .icmp_send_error(now, quote, IcmpErrorKind::PortUnreachable);
            }
        }
    }
}

/// Accepts only datagrams to one of our addresses, to a broadcast address, or to a
/// multicast group device `dev` has joined; the value is true for a broadcast or
/// multicast. `None`: not ours, counted in `InAddrErrors` (a multicast datagram to a
/// group not joined is dropped without counting, as Linux does).
#[inline]
fn accept_dst(ip: &mut Ipv4Layer, dst: Ipv4Addr, dev: DevId) -> Option<bool> {
    if dst.is_multicast() {
        if !ip.igmp.is_member(dev, dst) {
            tracing::trace!(dst = %dst, "ip_rcv: multicast group not joined");
            return None;
        }
        ip.stats.in_mcast_pkts += 1;
        return Some(true);
    }
    let broadcast = ip.is_broadcast(dst);
    if broadcast {
        ip.stats.in_bcast_pkts += 1;
    }
    if !broadcast && !ip.is_local(dst) {
        // Not ours and no forwarding (RFC 1122 3.3.1: a host silently discards it).
        ip.stats.in_addr_errors += 1;
        tracing::trace!(dst = %dst, "ip_rcv: not for us");
        return None;
    }
    Some(broadcast)
}

/// ICMP input (Linux: `icmp_rcv` with `icmp_echo`, `icmp_unreach`). `msg` is the ICMP
/// message (IP header already pulled).
fn icmp_rcv<C: IpContext>(
    cx: &mut C,
    now: Instant,
    meta: &IpRxMeta,
    msg: &PacketBuf,
    broadcast: bool,
) {
    let ip = cx.ip();
    ip.icmp_stats.in_msgs += 1;
    let repr = match IcmpRepr::parse(msg.data()) {
        Ok(r) => r,
        Err(e) => {
            ip.icmp_stats.in_errors += 1;
            if e == IcmpParseError::BadChecksum {
                ip.icmp_stats.in_csum_errors += 1;
            }
            return;
        }
    };
    match repr {
        IcmpRepr::EchoRequest { ident, seq, data } => {
            ip.icmp_stats.in_echos += 1;
            // Linux default icmp_echo_ignore_broadcasts = 1 (RFC 1122 3.2.2.6 allows it).
            if !broadcast {
                ip.send_echo_reply(now, meta, ident, seq, data);
            }
        }
        IcmpRepr::EchoReply { ident, seq, data } => {
            ip.icmp_stats.in_echo_reps += 1;
            ip.push_echo_reply(EchoReply {
                from: meta.src,
                ident,
                seq,
                payload_len: data.len(),
            });
        }
        IcmpRepr::Error { kind, quote } => {
            match kind.type_code().0 {
                ICMP_DEST_UNREACH => ip.icmp_stats.in_dest_unreachs += 1,
                ICMP_TIME_EXCEEDED => ip.icmp_stats.in_time_excds += 1,
                ICMP_PARAMETER_PROB => ip.icmp_stats.in_parm_probs += 1,
                _ => {}
            }
            // Linux icmp_ignore_bogus_error_responses: errors sent to broadcast are ignored.
            if broadcast {
                return;
            }
            let Some(mut err) = IcmpError::parse(kind, meta.src, quote) else {
                ip.icmp_stats.in_errors += 1;
                return;
            };
            if let IcmpErrorKind::FragmentationNeeded { mtu } = kind {
                // Only clamp: the PMTU cache is updated by the transport after it has
                // validated the quoted segment (RFC 5927; Linux `tcp_v4_err`), so a
                // forged error cannot lower the path MTU of a whole host.
                let total = QuotedHeader::parse(quote).map_or(0, |q| q.total_len);
                let clamped = ip.pmtu_clamp_icmp(mtu, total);
                err.kind = IcmpErrorKind::FragmentationNeeded { mtu: clamped };
            }
            if err.orig_protocol == IPPROTO_ICMP {
                // About one of our echo requests: nothing to tell.
                return;
            }
            if let Some(proto) = cx.protos().get(err.orig_protocol) {
                (proto.err_handler)(cx, now, &err);
            }
        }
        IcmpRepr::Other { typ, code } => {
            // Redirects, source quench (RFC 6633), timestamps: not processed.
            tracing::trace!(typ, code, "icmp: ignored message type");
        }
    }
}

#[cfg(test)]
mod tests;
