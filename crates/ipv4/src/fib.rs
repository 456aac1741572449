//! Forwarding information base: the routing table (Linux: `fib_table`, `fib_lookup`,
//! `fib_table_insert`, `fib_table_delete`).
//!
//! Longest-prefix match uses one `HashMap` per prefix length (keyed by the network
//! address) and a 64-bit mask of the prefix lengths in use. A lookup probes the lengths in
//! use from the longest down, so its cost is bounded by 33 hash probes whatever the number
//! of routes (Linux uses an LC-trie; this is simpler and has the same bound in practice).

use crate::addr::{mask_of, Ipv4Cidr};
use std::cell::Cell;
use std::collections::HashMap;

use crate::hash::FastHashMap;
use std::fmt;
use std::net::Ipv4Addr;
use ustack_netdev::DevId;

/// Where a route came from (Linux: `rtm_type` / `rtm_protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// One of our own addresses (`/32`, Linux table `local`, `RTN_LOCAL`).
    Local,
    /// The subnet of an interface address (`proto kernel scope link`).
    Connected,
    /// Added by the user (`ip route add`), usually via a gateway.
    Static,
}

/// A routing table entry (Linux: `struct fib_alias` + `struct fib_nh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network (host bits are cleared on insert).
    pub dst: Ipv4Cidr,
    /// Next-hop gateway; `None` for directly reachable (on-link) destinations.
    pub gateway: Option<Ipv4Addr>,
    /// Output device.
    pub dev: DevId,
    /// Priority: among routes for the same prefix, the lowest metric wins.
    pub metric: u32,
    /// Preferred source address (`ip route ... src`).
    pub src: Option<Ipv4Addr>,
    /// Kind of route.
    pub kind: RouteKind,
}

/// Routing table errors (Linux: `-EEXIST`, `-ESRCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FibError {
    /// A route for the same prefix with the same metric exists (`RTNETLINK answers: File exists`).
    Exists,
    /// No matching route (`RTNETLINK answers: No such process`).
    NotFound,
}

impl fmt::Display for FibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FibError::Exists => "route exists",
            FibError::NotFound => "no such route",
        })
    }
}

impl std::error::Error for FibError {}

/// The routing table. See the module documentation for the lookup structure.
#[derive(Debug, Clone)]
pub struct Fib {
    /// `tables[len]`: network address (host order) -> routes sorted by metric.
    tables: Vec<FastHashMap<u32, Vec<Route>>>,
    /// Bit `len` is set when `tables[len]` is not empty.
    lens_in_use: u64,
    /// Device names for [`fmt::Display`].
    dev_names: HashMap<DevId, String>,
    count: usize,
    /// Lookup memo, direct-mapped by the low address bits: `MEMO_VALID | len << 32 |
    /// addr` for an address whose longest match was found at prefix length `len`, so
    /// the next lookup of it probes one table instead of every length in use (each
    /// packet of a flow routes the same few addresses). Cleared by every change.
    memo: [Cell<u64>; MEMO_SLOTS],
}

/// Entries of [`Fib`]'s lookup memo (a power of two).
const MEMO_SLOTS: usize = 4;
/// Marks a used memo entry.
const MEMO_VALID: u64 = 1 << 40;

impl Default for Fib {
    fn default() -> Self {
        Fib::new()
    }
}

impl Fib {
    /// An empty table.
    pub fn new() -> Self {
        Fib {
            tables: (0..=32).map(|_| FastHashMap::default()).collect(),
            lens_in_use: 0,
            dev_names: HashMap::new(),
            count: 0,
            memo: Default::default(),
        }
    }

    /// Records the name printed for `dev` by [`fmt::Display`] (`dev tun0`).
    pub fn set_dev_name(&mut self, dev: DevId, name: &str) {
        self.dev_names.insert(dev, name.to_string());
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a route. Fails with [`FibError::Exists`] when a route for the same prefix
    /// with the same metric exists (like `ip route add`; use another metric to keep
    /// several). Linux: `fib_table_insert`.
    pub fn add(&mut self, mut route: Route) -> Result<(), FibError> {
        self.forget_memo();
        route.dst = route.dst.network();
        let len = route.dst.prefix_len();
        let key = u32::from(route.dst.addr());
        let Some(table) = self.tables.get_mut(usize::from(len)) else {
            return Err(FibError::NotFound);
        };
        let list = table.entry(key).or_default();
        if list.iter().any(|r| r.metric == route.metric) {
            return Err(FibError::Exists);
        }
        let pos = list.partition_point(|r| r.metric < route.metric);
        list.insert(pos, route);
        self.lens_in_use |= 1u64 << len;
        self.count += 1;
        Ok(())
    }

    /// Removes and returns the lowest-metric route for exactly `dst` (host bits ignored)
    /// whose gateway equals `gateway`; `None` matches any gateway (like
    /// `ip route del 10.0.0.0/8`). Linux: `fib_table_delete`.
    pub fn remove(&mut self, dst: Ipv4Cidr, gateway: Option<Ipv4Addr>) -> Result<Route, FibError> {
        self.remove_matching(dst, |r| gateway.is_none() || r.gateway == gateway)
    }

    /// Removes and returns the lowest-metric route for exactly `dst` (host bits ignored)
    /// that `pick` accepts.
    pub fn remove_matching(
        &mut self,
        dst: Ipv4Cidr,
        pick: impl Fn(&Route) -> bool,
    ) -> Result<Route, FibError> {
        self.forget_memo();
        let net = dst.network();
        let len = net.prefix_len();
        let key = u32::from(net.addr());
        let table = self
            .tables
            .get_mut(usize::from(len))
            .ok_or(FibError::NotFound)?;
        let list = table.get_mut(&key).ok_or(FibError::NotFound)?;
        let idx = list.iter().position(pick).ok_or(FibError::NotFound)?;
        let r = list.remove(idx);
        if list.is_empty() {
            table.remove(&key);
            if table.is_empty() {
                self.lens_in_use &= !(1u64 << len);
            }
        }
        self.count -= 1;
        Ok(r)
    }

    /// Removes every route through `dev` (an interface going away).
    pub fn remove_dev(&mut self, dev: DevId) {
        self.forget_memo();
        for t in &mut self.tables {
            t.retain(|_, list| {
                let before = list.len();
                list.retain(|r| r.dev != dev);
                self.count -= before - list.len();
                !list.is_empty()
            });
        }
        self.lens_in_use = 0;
        for (len, t) in self.tables.iter().enumerate() {
            if !t.is_empty() {
                self.lens_in_use |= 1u64 << len;
            }
        }
    }

    fn forget_memo(&mut self) {
        for m in &self.memo {
            m.set(0);
        }
    }

    /// The best route of exactly prefix length `len` covering `a`.
    #[inline]
    fn probe(&self, a: u32, len: u32) -> Option<&Route> {
        let key = a & mask_of(len as u8);
        self.tables
            .get(len as usize)
            .and_then(|t| t.get(&key))
            .and_then(|l| l.first())
    }

    /// Longest-prefix match; among routes of the same prefix the lowest metric wins.
    /// Linux: `fib_lookup` / `fib_table_lookup`.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Route> {
        let a = u32::from(dst);
        let memo = self.memo.get(a as usize & (MEMO_SLOTS - 1));
        if let Some(m) = memo.map(Cell::get) {
            if m & MEMO_VALID != 0 && m as u32 == a {
                // The table has not changed since this address matched at that length.
                if let Some(r) = self.probe(a, ((m >> 32) & 0xff) as u32) {
                    return Some(r);
                }
            }
        }
        let mut lens = self.lens_in_use;
        while lens != 0 {
            let len = 63 - lens.leading_zeros(); // highest set bit = longest prefix in use
            lens &= !(1u64 << len);
            if let Some(r) = self.probe(a, len) {
                if let Some(m) = memo {
                    m.set(MEMO_VALID | u64::from(len) << 32 | u64::from(a));
                }
                return Some(r);
            }
        }
        None
    }

    /// Longest-prefix match among the routes through `dev` (a socket bound to a device,
    /// Linux `flowi4_oif`): routes through other devices are skipped; among routes of the
    /// same prefix through `dev` the lowest metric wins.
    pub fn lookup_dev(&self, dst: Ipv4Addr, dev: DevId) -> Option<&Route> {
        let a = u32::from(dst);
        let mut lens = self.lens_in_use;
        while lens != 0 {
            let len = 63 - lens.leading_zeros();
            lens &= !(1u64 << len);
            let key = a & mask_of(len as u8);
            let found = self
                .tables
                .get(len as usize)
                .and_then(|t| t.get(&key))
                .and_then(|l| l.iter().find(|r| r.dev == dev));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Every route, longest prefix first, then by network address and metric.
    pub fn routes(&self) -> Vec<Route> {
        let mut v: Vec<Route> = self
            .tables
            .iter()
            .flat_map(|t| t.values().flat_map(|l| l.iter().cloned()))
            .collect();
        v.sort_by(|a, b| {
            b.dst
                .prefix_len()
                .cmp(&a.dst.prefix_len())
                .then(a.dst.addr().cmp(&b.dst.addr()))
                .then(a.metric.cmp(&b.metric))
        });
        v
    }

    fn dev_name(&self, dev: DevId) -> String {
        self.dev_names
            .get(&dev)
            .cloned()
            .unwrap_or_else(|| format!("dev{}", dev.0))
    }
}

impl fmt::Display for Fib {
    /// One route per line, like `ip route show table all` (default route first, then
    /// connected and static routes, then local routes):
    ///
    /// ```text
    /// default via 10.0.0.1 dev tun0 metric 100
    /// 10.0.0.0/24 dev tun0 proto kernel scope link src 10.0.0.2
    /// local 10.0.0.2 dev tun0 proto kernel scope host src 10.0.0.2
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes = self.routes();
        routes.sort_by_key(|r| match r.kind {
            RouteKind::Local => 2,
            _ if r.dst.prefix_len() == 0 => 0,
            _ => 1,
        });
        for r in routes {
            let dst = if r.dst.prefix_len() == 0 {
                "default".to_string()
            } else if r.dst.prefix_len() == 32 {
                r.dst.addr().to_string()
            } else {
                r.dst.to_string()
            };
            if r.kind == RouteKind::Local {
                write!(f, "local ")?;
            }
            write!(f, "{dst}")?;
            if let Some(gw) = r.gateway {
                write!(f, " via {gw}")?;
            }
            write!(f, " dev {}", self.dev_name(r.dev))?;
            match r.kind {
                RouteKind::Local => write!(f, " proto kernel scope host")?,
                RouteKind::Connected => write!(f, " proto kernel scope link")?,
                RouteKind::Static => {}
            }
            if let Some(src) = r.src {
                write!(f, " src {src}")?;
            }
            if r.metric != 0 {
                write!(f, " metric {}", r.metric)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
