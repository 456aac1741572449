//! The glue between IP's protocol table and the transport engines
//! (Linux: `af_inet.c` `inet_init`, `tcp_protocol`, `udp_protocol`).

use std::net::SocketAddrV4;
use std::time::Instant;

use ustack_ipv4::{
    DeliverResult, IcmpError, InetProtos, IpRxMeta, NetProtocol, IPPROTO_TCP, IPPROTO_UDP,
};
use ustack_netdev::PacketBuf;

use crate::core::NetCore;

/// Registers TCP and UDP in IP's protocol table (Linux: `inet_init` ->
/// `inet_add_protocol(&tcp_protocol, IPPROTO_TCP)`, `inet_add_protocol(&udp_protocol, IPPROTO_UDP)`).
pub fn inet_add_protocols(protos: &mut InetProtos<NetCore>) {
    let tcp = NetProtocol {
        handler: tcp_v4_rcv,
        err_handler: tcp_v4_err,
    };
    let udp = NetProtocol {
        handler: udp_rcv,
        err_handler: udp_err,
    };
    // A fresh table cannot already hold these numbers; ignore the impossible error.
    let _ = protos.add(IPPROTO_TCP, tcp);
    let _ = protos.add(IPPROTO_UDP, udp);
}

/// TCP receive entry (Linux: `tcp_v4_rcv`). The TCP engine answers segments for no socket
/// with RST itself, so this never asks IP for an ICMP port unreachable.
pub fn tcp_v4_rcv(
    core: &mut NetCore,
    now: Instant,
    meta: &IpRxMeta,
    pkt: PacketBuf,
) -> DeliverResult {
    // Only passive opens use the route MTU back to the sender: a segment of a live
    // connection skips the route lookup (one per received segment otherwise).
    let ports = pkt.data().get(..4).map(|p| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    });
    let known = ports.and_then(|(sport, dport)| {
        core.tcp.conn_route_mtu(
            SocketAddrV4::new(meta.dst, dport),
            SocketAddrV4::new(meta.src, sport),
        )
    });
    let mtu = match known {
        Some(m) => m,
        // The route back to the sender; without one, the link it came in on (a listener
        // bound to that device answers there, Linux `inet_csk_route_req`).
        None => core
            .route(now, meta.src, None)
            .or_else(|_| core.route(now, meta.src, Some(meta.dev)))
            .map_or(576, |r| r.mtu),
    };
    core.tcp.input(now, meta, pkt, mtu, &mut core.tcp_out);
    DeliverResult::Consumed
}

/// TCP ICMP error entry (Linux: `tcp_v4_err`): PMTU updates, soft and hard errors.
/// IP hands "fragmentation needed" over without applying it; only when TCP has validated
/// it (RFC 5927: the quoted sequence is in flight) does the path MTU cache learn the new
/// value (Linux: `tcp_v4_mtu_reduced` -> `inet_csk_update_pmtu`).
pub fn tcp_v4_err(core: &mut NetCore, now: Instant, err: &IcmpError) {
    if let Some(mtu) = core.tcp.err_input(now, err, &mut core.tcp_out) {
        core.ip.update_pmtu(err.orig_dst, mtu, now);
        // The route's MTU now (the cache only lowers, and clamps): every connection to
        // that host re-syncs its MSS (Linux `tcp_current_mss` -> `dst_mtu`).
        let mtu = core.route_mtu(now, err.orig_dst, None);
        core.tcp
            .pmtu_changed(now, err.orig_dst, mtu, &mut core.tcp_out);
    }
}

/// UDP receive entry (Linux: `udp_rcv`); `PortUnreachable` makes IP send ICMP.
pub fn udp_rcv(core: &mut NetCore, now: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
    core.udp.input(now, meta, pkt)
}

/// UDP ICMP error entry (Linux: `udp_err`). "Fragmentation needed" is ignored: our UDP
/// datagrams never carry DF (IP fragments them), so a genuine one cannot quote them, and
/// with no sequence number to check a forged one must not lower the path MTU.
pub fn udp_err(core: &mut NetCore, _now: Instant, err: &IcmpError) {
    core.udp.err_input(err);
}
