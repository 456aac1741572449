//! Ethernet link-layer addresses and framing constants, for devices that carry Ethernet
//! frames instead of bare IPv4 packets (a TAP device, an in-memory link in Ethernet mode;
//! Linux: `ARPHRD_ETHER` devices, `include/uapi/linux/if_ether.h`).
//!
//! Such a device reports [`Link::Ethernet`] with the stack's own hardware address; the IP
//! layer then adds and removes the 14-byte header and resolves next hops with ARP.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Ethernet header length: destination, source, EtherType (`ETH_HLEN`).
pub const ETH_HLEN: usize = 14;
/// Shortest frame without its FCS (`ETH_ZLEN`): shorter ones are padded with zeros.
pub const ETH_ZLEN: usize = 60;
/// EtherType of IPv4 (`ETH_P_IP`).
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP (`ETH_P_ARP`).
pub const ETH_P_ARP: u16 = 0x0806;

/// What a device's packets start with (Linux: `dev->type` and `dev->dev_addr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    /// Bare IPv4 packets (TUN, loopback, an in-memory link): no link-layer header.
    #[default]
    RawIp,
    /// Ethernet frames; the stack's own address on this link.
    Ethernet(MacAddr),
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (an ARP request's unknown target).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group addresses (the I/G bit), the broadcast address included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The Ethernet address an IPv4 multicast group maps to (RFC 1112 6.4: 01:00:5e and
    /// the group's low 23 bits; Linux `ip_eth_mc_map`).
    pub fn ipv4_multicast(group: Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// A locally administered unicast address from `seed` (Linux `eth_random_addr`):
    /// the U/L bit set, the I/G bit clear.
    pub fn local_from_seed(seed: u64) -> MacAddr {
        let b = seed.to_le_bytes();
        MacAddr([(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not an Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMacAddr;

impl fmt::Display for BadMacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an Ethernet address (six hex bytes separated by ':')")
    }
}

impl std::error::Error for BadMacAddr {}

impl FromStr for MacAddr {
    type Err = BadMacAddr;

    /// Parses `02:00:5e:10:00:01` (also with `-` between the bytes).
    fn from_str(s: &str) -> Result<Self, BadMacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or(BadMacAddr)?;
            if p.is_empty() || p.len() > 2 {
                return Err(BadMacAddr);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| BadMacAddr)?;
        }
        match parts.next() {
            None => Ok(MacAddr(out)),
            Some(_) => Err(BadMacAddr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_print_and_map() {
        let m: MacAddr = "02:00:5E:10:0a:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0x10, 0x0a, 1]);
        assert_eq!(m.to_string(), "02:00:5e:10:0a:01");
        assert_eq!("2-0-5e-10-a-1".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "02:00:5e:10:0a",
            "02:00:5e:10:0a:01:02",
            "02:00:5e:10:0a:1g",
            "002:0:0:0:0:0",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(BadMacAddr), "{bad}");
        }
        assert!(!m.is_multicast() && MacAddr::BROADCAST.is_multicast());
        assert_eq!(
            MacAddr::ipv4_multicast(Ipv4Addr::new(239, 129, 2, 3)).to_string(),
            "01:00:5e:01:02:03"
        );
        let r = MacAddr::local_from_seed(0xffff_ffff_ffff_ffff);
        assert_eq!(r.0[0] & 3, 2, "locally administered unicast: {r}");
    }
}
