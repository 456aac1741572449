//! Path MTU cache (RFC 1191; Linux: the `fib_nh_exception` entries created by
//! `__ip_rt_update_pmtu`, expiring after `ip_rt_mtu_expires`, 600 s).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Entries kept at most; beyond this the entry closest to expiry is replaced.
pub(crate) const PMTU_CACHE_MAX: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct PmtuCache {
    map: HashMap<Ipv4Addr, (usize, Instant)>,
}

impl PmtuCache {
    /// The learned MTU towards `dst`, if any and not expired.
    pub(crate) fn get(&self, dst: Ipv4Addr, now: Instant) -> Option<usize> {
        match self.map.get(&dst) {
            Some(&(mtu, exp)) if now < exp => Some(mtu),
            _ => None,
        }
    }

    /// Records `mtu` (already clamped by the caller) towards `dst` until `now + expiry`.
    /// RFC 1191 section 6: an estimate is only lowered by a Datagram Too Big message; it
    /// increases again only when the entry expires.
    pub(crate) fn update(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant, expiry: Duration) {
        if let Some(cur) = self.get(dst, now) {
            if mtu >= cur {
                return;
            }
        }
        if self.map.len() >= PMTU_CACHE_MAX && !self.map.contains_key(&dst) {
            self.prune(now);
            if self.map.len() >= PMTU_CACHE_MAX {
                let victim = self.map.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k);
                if let Some(k) = victim {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(dst, (mtu, now + expiry));
    }

    /// Drops expired entries.
    pub(crate) fn prune(&mut self, now: Instant) {
        self.map.retain(|_, v| now < v.1);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// RFC 1191 section 7 plateau table: the guess used when a router sends "fragmentation
/// needed" with an MTU of 0 — the largest plateau below the quoted datagram's length.
pub(crate) fn plateau_below(total_len: usize) -> usize {
    const PLATEAUS: [usize; 10] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
    PLATEAUS
        .iter()
        .copied()
        .find(|&p| p < total_len)
        .unwrap_or(68)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_and_expires() {
        let t = Instant::now();
        let d = Ipv4Addr::new(1, 2, 3, 4);
        let mut c = PmtuCache::default();
        let exp = Duration::from_secs(600);
        c.update(d, 1400, t, exp);
        assert_eq!(c.get(d, t), Some(1400));
        c.update(d, 1450, t, exp);
        assert_eq!(c.get(d, t), Some(1400));
        c.update(d, 1300, t + Duration::from_secs(1), exp);
        assert_eq!(c.get(d, t + Duration::from_secs(600)), Some(1300));
        assert_eq!(c.get(d, t + Duration::from_secs(601)), None);
        c.prune(t + Duration::from_secs(601));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded() {
        let t = Instant::now();
        let mut c = PmtuCache::default();
        for i in 0..(PMTU_CACHE_MAX as u32 + 10) {
            c.update(Ipv4Addr::from(i), 1000, t, Duration::from_secs(600));
        }
        assert_eq!(c.len(), PMTU_CACHE_MAX);
    }

    #[test]
    fn plateaus() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(65535), 32000);
        assert_eq!(plateau_below(60), 68);
    }
}
