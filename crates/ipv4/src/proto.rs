//! The transport protocol table (Linux: `struct net_protocol`, `inet_protos[]`,
//! `inet_add_protocol`).
//!
//! The table is generic over the context `C` that owns the IP layer and the transport
//! layers (the socket crate's `NetCore`), so handlers are plain `fn` pointers that get
//! `&mut C`: no trait objects, no shared ownership, no locks.

use crate::icmp::IcmpError;
use crate::layer::{IpRxMeta, Ipv4Layer};
use crate::IPPROTO_ICMP;
use std::fmt;
use std::time::Instant;
use ustack_netdev::PacketBuf;

/// What a protocol handler did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverResult {
    /// Taken (queued, answered, or dropped and counted by the protocol).
    Consumed,
    /// No socket for it: the IP layer answers with ICMP port unreachable (RFC 1122
    /// 4.1.3.1; Linux `udp_rcv` calls `icmp_send(ICMP_PORT_UNREACH)` itself).
    PortUnreachable,
}

/// A transport protocol's entry points (Linux: `struct net_protocol`).
pub struct NetProtocol<C> {
    /// Receives a datagram for us: `meta` describes the IP header, the buffer holds the
    /// transport header and payload (the IP header is pulled). Linux: `handler`.
    pub handler: fn(&mut C, Instant, &IpRxMeta, PacketBuf) -> DeliverResult,
    /// Receives an ICMP error about a datagram of this protocol. Linux: `err_handler`.
    pub err_handler: fn(&mut C, Instant, &IcmpError),
}

// Manual impls: fn pointers are Copy whatever `C` is; derive would require `C: Copy`.
impl<C> Clone for NetProtocol<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for NetProtocol<C> {}

impl<C> fmt::Debug for NetProtocol<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetProtocol").finish_non_exhaustive()
    }
}

/// The slot for that protocol number is taken (Linux: `inet_add_protocol` returns -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoExists;

impl fmt::Display for ProtoExists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("protocol already registered")
    }
}

impl std::error::Error for ProtoExists {}

/// The protocol table, indexed by protocol number (Linux: `inet_protos[MAX_INET_PROTOS]`).
pub struct InetProtos<C> {
    table: Vec<Option<NetProtocol<C>>>,
}

impl<C> fmt::Debug for InetProtos<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used: Vec<usize> = (0..self.table.len())
            .filter(|&i| self.table.get(i).is_some_and(|e| e.is_some()))
            .collect();
        f.debug_struct("InetProtos")
            .field("registered", &used)
            .finish()
    }
}

impl<C> Default for InetProtos<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> InetProtos<C> {
    /// An empty table. ICMP is built into the IP layer and needs no entry.
    pub fn new() -> Self {
        InetProtos {
            table: vec![None; 256],
        }
    }

    /// Registers `proto` for protocol number `protocol` (Linux: `inet_add_protocol`).
    /// Fails if the slot is taken, or for ICMP, which [`crate::ip_rcv`] handles itself.
    pub fn add(&mut self, protocol: u8, proto: NetProtocol<C>) -> Result<(), ProtoExists> {
        if protocol == IPPROTO_ICMP {
            return Err(ProtoExists);
        }
        match self.table.get_mut(usize::from(protocol)) {
            Some(slot @ None) => {
                *slot = Some(proto);
                Ok(())
            }
            _ => Err(ProtoExists),
        }
    }

    /// Removes the entry for `protocol` (Linux: `inet_del_protocol`).
    pub fn remove(&mut self, protocol: u8) -> Option<NetProtocol<C>> {
        self.table.get_mut(usize::from(protocol))?.take()
    }

    /// The entry for `protocol` (copied out, so the caller can then lend `&mut C` to it).
    pub fn get(&self, protocol: u8) -> Option<NetProtocol<C>> {
        self.table.get(usize::from(protocol)).copied().flatten()
    }
}

/// What [`crate::ip_rcv`] needs from its caller: the IP layer and the protocol table,
/// reachable from one `&mut` context that the handlers also receive.
pub trait IpContext: Sized {
    /// The IP layer.
    fn ip(&mut self) -> &mut Ipv4Layer;
    /// The protocol table.
    fn protos(&self) -> &InetProtos<Self>;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cx;
    fn h(_: &mut Cx, _: Instant, _: &IpRxMeta, _: PacketBuf) -> DeliverResult {
        DeliverResult::Consumed
    }
    fn e(_: &mut Cx, _: Instant, _: &IcmpError) {}

    #[test]
    fn add_get_remove() {
        let mut t = InetProtos::<Cx>::new();
        let p = NetProtocol {
            handler: h,
            err_handler: e,
        };
        assert!(t.get(6).is_none());
        t.add(6, p).unwrap();
        assert_eq!(t.add(6, p), Err(ProtoExists));
        assert_eq!(t.add(IPPROTO_ICMP, p), Err(ProtoExists));
        assert!(t.get(6).is_some());
        assert!(t.remove(6).is_some());
        assert!(t.get(6).is_none());
        t.add(255, p).unwrap();
        assert!(t.get(255).is_some());
    }
}
