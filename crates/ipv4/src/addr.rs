//! IPv4 address with prefix length (Linux: `struct in_ifaddr`, `ifa_address`/`ifa_prefixlen`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address together with a prefix length, like `10.0.0.2/24`.
///
/// The address keeps its host bits (`10.0.0.2/24` is an interface address on the
/// `10.0.0.0/24` network); [`Ipv4Cidr::network`] clears them.
///
/// ```
/// use ustack_ipv4::Ipv4Cidr;
/// let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
/// assert_eq!(c.network().to_string(), "10.0.0.0/24");
/// assert!(c.contains("10.0.0.77".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

/// Why a CIDR could not be built or parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The prefix length is greater than 32 or not a number.
    BadPrefixLen,
    /// The address part is not a dotted-quad IPv4 address.
    BadAddress,
    /// The text has no `/` separating address and prefix length.
    MissingPrefix,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CidrError::BadPrefixLen => "invalid prefix length (0..=32)",
            CidrError::BadAddress => "invalid IPv4 address",
            CidrError::MissingPrefix => "missing '/prefix_len'",
        };
        f.write_str(s)
    }
}

impl std::error::Error for CidrError {}

/// The netmask of a prefix length as a host-order `u32` (`len` is clamped to 32).
#[inline]
pub(crate) fn mask_of(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl Ipv4Cidr {
    /// 0.0.0.0/0: every address (a default route's destination).
    pub const DEFAULT: Ipv4Cidr = Ipv4Cidr {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
    };

    /// Builds `addr/prefix_len`; errors if `prefix_len > 32`.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError::BadPrefixLen);
        }
        Ok(Ipv4Cidr { addr, prefix_len })
    }

    /// The address, host bits included.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The network: the address with its host bits cleared, same prefix length.
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & mask_of(self.prefix_len)),
            prefix_len: self.prefix_len,
        }
    }

    /// The netmask, e.g. `255.255.255.0` for `/24`.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_of(self.prefix_len))
    }

    /// The directed broadcast address of the network (all host bits set). For /31 and /32
    /// networks (RFC 3021) there is no broadcast address; this returns `None` for them.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(
            u32::from(self.addr) | !mask_of(self.prefix_len),
        ))
    }

    /// True when `a` lies in this network.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = mask_of(self.prefix_len);
        u32::from(a) & m == u32::from(self.addr) & m
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// Parses `a.b.c.d/len`.
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (a, l) = s.split_once('/').ok_or(CidrError::MissingPrefix)?;
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| CidrError::BadAddress)?;
        let len: u8 = l.trim().parse().map_err(|_| CidrError::BadPrefixLen)?;
        Ipv4Cidr::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.to_string(), "10.0.0.2/24");
        assert_eq!(c.network().to_string(), "10.0.0.0/24");
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 1)));
    }

    #[test]
    fn edges() {
        let d: Ipv4Cidr = "1.2.3.4/0".parse().unwrap();
        assert_eq!(d.network().addr(), Ipv4Addr::UNSPECIFIED);
        assert!(d.contains(Ipv4Addr::new(8, 8, 8, 8)));
        let h: Ipv4Cidr = "1.2.3.4/32".parse().unwrap();
        assert!(h.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(!h.contains(Ipv4Addr::new(1, 2, 3, 5)));
        assert_eq!(h.broadcast(), None);
        assert_eq!(
            "1.2.3.4/33".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefixLen)
        );
        assert_eq!("1.2.3.4".parse::<Ipv4Cidr>(), Err(CidrError::MissingPrefix));
        assert_eq!("1.2.3/8".parse::<Ipv4Cidr>(), Err(CidrError::BadAddress));
        assert_eq!(
            "1.2.3.4/x".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefixLen)
        );
        assert!(Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33).is_err());
    }
}
