//! Demux tables (Linux: `struct inet_hashinfo` — ehash, lhash, bhash).
//!
//! Every lookup is one or two hash probes, independent of the number of sockets.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use ustack_ipv4::hash::{FastHashMap, FastState};

use crate::sock::SockId;
use ustack_netdev::DevId;

/// (local, remote) of a connection.
pub(crate) type FourTuple = (SocketAddrV4, SocketAddrV4);

/// Owners of one local port (Linux: `inet_bind_bucket`).
#[derive(Default)]
pub(crate) struct BindBucket {
    /// Sockets that bound the port explicitly or listen on it.
    pub(crate) owners: Vec<SockId>,
    /// Connections (accepted children, ephemeral connects) using the port.
    pub(crate) conns: u32,
}

/// Linux `inet_hashinfo`: established (incl. request socks and TIME_WAIT), listening and
/// bound tables.
#[derive(Default)]
pub(crate) struct HashInfo {
    ehash: FastHashMap<FourTuple, SockId>,
    /// The last established-table hit: consecutive segments of a flow skip the hash
    /// probe. Dropped whenever an entry is replaced or removed.
    last: Cell<Option<(FourTuple, SockId)>>,
    lhash: FastHashMap<SocketAddrV4, Vec<Listening>>,
    any: Option<Listening>,
    bhash: FastHashMap<u16, BindBucket>,
    /// Keys the choice among `SO_REUSEPORT` listeners (Linux: the `inet_ehashfn`
    /// secret), so a peer cannot pick the listener its connections land on in advance.
    reuseport_key: FastState,
}

/// One listener of a local address (Linux: a socket on the listening hash chain). An
/// address has several when they all set `SO_REUSEPORT` (a `sock_reuseport` group) or
/// are bound to different devices, kept in the order they started listening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Listening {
    pub(crate) id: SockId,
    /// It set `SO_REUSEPORT`.
    pub(crate) reuseport: bool,
    /// The device it is bound to (`SO_BINDTODEVICE`).
    pub(crate) dev: Option<DevId>,
}

impl Listening {
    /// Whether `self` and `other` may listen on one address (Linux
    /// `inet_csk_bind_conflict`): both set `SO_REUSEPORT`, or they are bound to two
    /// different devices.
    pub(crate) fn shares_with(&self, other: &Listening) -> bool {
        (self.reuseport && other.reuseport)
            || matches!((self.dev, other.dev), (Some(a), Some(b)) if a != b)
    }

    fn takes(&self, dev: DevId) -> bool {
        self.dev.is_none_or(|d| d == dev)
    }
}

impl HashInfo {
    /// Linux `__inet_lookup_established`.
    pub(crate) fn lookup_established(&self, t: &FourTuple) -> Option<SockId> {
        if let Some((k, id)) = self.last.get() {
            if k == *t {
                return Some(id);
            }
        }
        let id = self.ehash.get(t).copied();
        if let Some(id) = id {
            self.last.set(Some((*t, id)));
        }
        id
    }

    /// Linux `__inet_lookup_listener`: exact address, then wildcard, then the transparent
    /// "any" listener. Among `SO_REUSEPORT` listeners of an address, a seeded hash of the
    /// peer's address and port picks one (Linux `reuseport_select_sock`): every segment of
    /// a handshake from one peer port reaches the same listener.
    ///
    /// `dev` is the device the segment arrived on: a listener bound to another device
    /// (`SO_BINDTODEVICE`) does not match, and within one address the listeners bound to
    /// `dev` come before unbound ones (Linux `compute_score`).
    pub(crate) fn lookup_listener(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        dev: DevId,
    ) -> Option<SockId> {
        let wild = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port());
        let pick = |ls: &Vec<Listening>| -> Option<SockId> {
            if let [one] = &ls[..] {
                return one.takes(dev).then_some(one.id);
            }
            // Bound to this device first; unbound members only when none is.
            let on_dev = ls.iter().filter(|l| l.dev == Some(dev)).count();
            let want = |l: &&Listening| match l.dev {
                Some(d) => d == dev,
                None => on_dev == 0,
            };
            let n = if on_dev > 0 {
                on_dev
            } else {
                ls.iter().filter(want).count()
            };
            if n == 0 {
                return None;
            }
            let h = self.reuseport_key.hash_one(remote);
            ls.iter()
                .filter(want)
                .nth((h % n as u64) as usize)
                .map(|l| l.id)
        };
        self.lhash
            .get(&local)
            .and_then(pick)
            .or_else(|| self.lhash.get(&wild).and_then(pick))
            .or_else(|| self.any.filter(|l| l.takes(dev)).map(|l| l.id))
    }

    pub(crate) fn insert_established(&mut self, t: FourTuple, id: SockId) -> bool {
        match self.ehash.entry(t) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
                true
            }
        }
    }

    /// Replaces whatever holds `t` (used when a new SYN reuses a TIME_WAIT pair).
    pub(crate) fn replace_established(&mut self, t: FourTuple, id: SockId) {
        self.last.set(None);
        self.ehash.insert(t, id);
    }

    pub(crate) fn remove_established(&mut self, t: &FourTuple, id: SockId) {
        if self.ehash.get(t) == Some(&id) {
            self.last.set(None);
            self.ehash.remove(t);
        }
    }

    pub(crate) fn established_len(&self) -> usize {
        self.ehash.len()
    }

    /// Adds a listener for `local`; another one is accepted only when it may share the
    /// address with every listener already there ([`Listening::shares_with`]).
    pub(crate) fn insert_listener(&mut self, local: SocketAddrV4, l: Listening) -> bool {
        let ls = self.lhash.entry(local).or_default();
        if !ls.iter().all(|o| o.shares_with(&l)) {
            return false;
        }
        ls.push(l);
        true
    }

    /// The listener `id` on `local` is now bound to `dev` (`SO_BINDTODEVICE` set while it
    /// listens). Refused (false) when that would make it conflict with another listener
    /// of the address.
    pub(crate) fn rebind_listener(
        &mut self,
        local: &SocketAddrV4,
        id: SockId,
        dev: Option<DevId>,
    ) -> bool {
        if let Some(a) = self.any.as_mut().filter(|a| a.id == id) {
            a.dev = dev;
            return true;
        }
        let Some(ls) = self.lhash.get_mut(local) else {
            return true;
        };
        let Some(me) = ls.iter().find(|l| l.id == id).copied() else {
            return true;
        };
        let moved = Listening { dev, ..me };
        if !ls
            .iter()
            .filter(|o| o.id != id)
            .all(|o| o.shares_with(&moved))
        {
            return false;
        }
        for l in ls.iter_mut().filter(|l| l.id == id) {
            l.dev = dev;
        }
        true
    }

    pub(crate) fn remove_listener(&mut self, local: &SocketAddrV4, id: SockId) {
        if let Some(ls) = self.lhash.get_mut(local) {
            ls.retain(|l| l.id != id);
            if ls.is_empty() {
                self.lhash.remove(local);
            }
        }
        if self.any.is_some_and(|a| a.id == id) {
            self.any = None;
        }
    }

    pub(crate) fn set_any_listener(&mut self, l: Option<Listening>) -> bool {
        if l.is_some() && self.any.is_some() {
            return false;
        }
        self.any = l;
        true
    }

    pub(crate) fn any_listener(&self) -> Option<SockId> {
        self.any.map(|a| a.id)
    }

    pub(crate) fn bucket(&self, port: u16) -> Option<&BindBucket> {
        self.bhash.get(&port)
    }

    pub(crate) fn add_owner(&mut self, port: u16, id: SockId) {
        let b = self.bhash.entry(port).or_default();
        if !b.owners.contains(&id) {
            b.owners.push(id);
        }
    }

    pub(crate) fn remove_owner(&mut self, port: u16, id: SockId) {
        if let Some(b) = self.bhash.get_mut(&port) {
            b.owners.retain(|o| *o != id);
            if b.owners.is_empty() && b.conns == 0 {
                self.bhash.remove(&port);
            }
        }
    }

    pub(crate) fn add_conn(&mut self, port: u16) {
        self.bhash.entry(port).or_default().conns += 1;
    }

    pub(crate) fn remove_conn(&mut self, port: u16) {
        if let Some(b) = self.bhash.get_mut(&port) {
            b.conns = b.conns.saturating_sub(1);
            if b.owners.is_empty() && b.conns == 0 {
                self.bhash.remove(&port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_lookups_follow_replace_and_remove() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 80);
        let (id1, id2, id3) = (
            SockId::from_u64(1),
            SockId::from_u64(2),
            SockId::from_u64(3),
        );
        let mut h = HashInfo::default();
        assert!(h.insert_established((a, b), id1));
        for _ in 0..2 {
            assert_eq!(h.lookup_established(&(a, b)), Some(id1));
        }
        // Another connection does not disturb the remembered one.
        assert!(h.insert_established((a, c), id3));
        assert_eq!(h.lookup_established(&(a, c)), Some(id3));
        assert_eq!(h.lookup_established(&(a, b)), Some(id1));
        h.replace_established((a, b), id2);
        assert_eq!(h.lookup_established(&(a, b)), Some(id2));
        // Removing with a stale id changes nothing.
        h.remove_established(&(a, b), id1);
        assert_eq!(h.lookup_established(&(a, b)), Some(id2));
        h.remove_established(&(a, b), id2);
        assert_eq!(h.lookup_established(&(a, b)), None);
        assert_eq!(h.lookup_established(&(a, c)), Some(id3));
    }
}
