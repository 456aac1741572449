//! Socket creation: the family registry and the inet (type, protocol) switch
//! (Linux: `net_families[]` + `sock_register`, `inetsw[]` + `inet_register_protosw`,
//! `__sock_create` -> `inet_create`).

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use crate::core::NetCore;
use crate::errno::{errno, EAFNOSUPPORT, EPROTONOSUPPORT, ESOCKTNOSUPPORT};
use crate::ops::ProtoOps;
use crate::proto::Proto;
use crate::sock::{AddressFamily, Sock, SockType, Socket};
use crate::table;

/// An address family's socket constructor (Linux: `struct net_proto_family`).
pub trait NetProtoFamily: Send + Sync + 'static {
    /// The family number.
    fn family(&self) -> AddressFamily;
    /// A name for diagnostics ("inet").
    fn name(&self) -> &'static str;
    /// Creates a socket of this family (Linux: `net_proto_family.create`, e.g. `inet_create`).
    fn create(&self, core: &mut NetCore, ty: SockType, protocol: i32) -> io::Result<Socket>;
}

/// One row of the inet switch (Linux: `struct inet_protosw`): which `Proto` and `ProtoOps`
/// serve a (type, protocol) pair.
#[derive(Clone, Copy)]
pub struct InetProtosw {
    /// The socket type.
    pub ty: SockType,
    /// The IP protocol number.
    pub protocol: u8,
    /// The protocol operations (`tcp_prot`).
    pub prot: &'static dyn Proto,
    /// The socket operations (`inet_stream_ops`).
    pub ops: &'static dyn ProtoOps,
}

impl fmt::Debug for InetProtosw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InetProtosw")
            .field("ty", &self.ty)
            .field("protocol", &self.protocol)
            .field("prot", &self.prot.name())
            .field("ops", &self.ops.name())
            .finish()
    }
}

/// The registries consulted by `sock_create`.
#[derive(Clone, Default)]
pub struct Registry {
    families: BTreeMap<AddressFamily, &'static dyn NetProtoFamily>,
    inetsw: Vec<InetProtosw>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families.keys().collect::<Vec<_>>())
            .field("inetsw", &self.inetsw)
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The registry ustack boots with: everything in [`table`] (Linux: `sock_register(&inet_family_ops)`
    /// and the `inetsw_array` loop of `inet_init`).
    pub fn linux_default() -> Self {
        let mut r = Registry::empty();
        for fam in table::NET_FAMILIES.iter() {
            let _ = r.sock_register(*fam);
        }
        for sw in table::INETSW.iter() {
            r.inet_register_protosw(*sw);
        }
        r
    }

    /// Registers a family (Linux: `sock_register`); `EEXIST` if taken.
    pub fn sock_register(&mut self, fam: &'static dyn NetProtoFamily) -> io::Result<()> {
        if fam.family().0 >= AddressFamily::MAX {
            return Err(errno(crate::errno::EINVAL));
        }
        if self.families.contains_key(&fam.family()) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        self.families.insert(fam.family(), fam);
        Ok(())
    }

    /// Removes a family (Linux: `sock_unregister`).
    pub fn sock_unregister(&mut self, family: AddressFamily) {
        self.families.remove(&family);
    }

    /// Adds a (type, protocol) row (Linux: `inet_register_protosw`); a later row for the
    /// same pair replaces the earlier one.
    pub fn inet_register_protosw(&mut self, sw: InetProtosw) {
        self.inetsw
            .retain(|r| !(r.ty == sw.ty && r.protocol == sw.protocol));
        self.inetsw.push(sw);
    }

    /// The constructor of a family; `EAFNOSUPPORT` if none (Linux: `__sock_create`).
    pub fn family(&self, family: AddressFamily) -> io::Result<&'static dyn NetProtoFamily> {
        self.families
            .get(&family)
            .copied()
            .ok_or_else(|| errno(EAFNOSUPPORT))
    }

    /// Every registered family number.
    pub fn families(&self) -> Vec<AddressFamily> {
        self.families.keys().copied().collect()
    }

    /// Every inet switch row.
    pub fn inetsw(&self) -> &[InetProtosw] {
        &self.inetsw
    }

    /// Finds the row for (type, protocol) the way `inet_create` does: protocol 0 takes the
    /// type's first row; `ESOCKTNOSUPPORT` if the type has no rows, `EPROTONOSUPPORT` if
    /// it has rows but not this protocol.
    pub fn inetsw_lookup(&self, ty: SockType, protocol: i32) -> io::Result<InetProtosw> {
        let mut rows = self.inetsw.iter().filter(|r| r.ty == ty).peekable();
        if rows.peek().is_none() {
            return Err(errno(ESOCKTNOSUPPORT));
        }
        rows.find(|r| protocol == 0 || i32::from(r.protocol) == protocol)
            .copied()
            .ok_or_else(|| errno(EPROTONOSUPPORT))
    }
}

/// The inet family (Linux: `inet_family_ops`).
#[derive(Debug, Default)]
pub struct InetFamily;

impl NetProtoFamily for InetFamily {
    fn family(&self) -> AddressFamily {
        AddressFamily::INET
    }

    fn name(&self) -> &'static str {
        "inet"
    }

    /// Linux: `inet_create`: look up the switch row, attach its ops and protocol, and
    /// run the protocol's init.
    fn create(&self, core: &mut NetCore, ty: SockType, protocol: i32) -> io::Result<Socket> {
        if !(0..=255).contains(&protocol) {
            return Err(errno(EPROTONOSUPPORT));
        }
        let sw = core.registry().inetsw_lookup(ty, protocol)?;
        let id = sw.prot.init(core)?;
        Ok(Socket {
            ops: sw.ops,
            sk: Sock { prot: sw.prot, id },
        })
    }
}
