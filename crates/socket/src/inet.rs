//! The glue between IP's protocol table and the transport engines
//! (Linux: `af_inet.c` `inet_init`, `tcp_protocol`, `udp_protocol`).

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
    let mtu = core.route_mtu(now, meta.src);
    core.tcp.input(now, meta, pkt, mtu, &mut core.tcp_out);
    DeliverResult::Consumed
}

/// TCP ICMP error entry (Linux: `tcp_v4_err`): PMTU updates, soft and hard errors.
pub fn tcp_v4_err(core: &mut NetCore, now: Instant, err: &IcmpError) {
    core.tcp.err_input(now, err, &mut core.tcp_out);
}

/// UDP receive entry (Linux: `udp_rcv`); `PortUnreachable` makes IP send ICMP.
pub fn udp_rcv(core: &mut NetCore, now: Instant, meta: &IpRxMeta, pkt: PacketBuf) -> DeliverResult {
    core.udp.input(now, meta, pkt)
}

/// UDP ICMP error entry (Linux: `udp_err`).
pub fn udp_err(core: &mut NetCore, _now: Instant, err: &IcmpError) {
    core.udp.err_input(err);
}
