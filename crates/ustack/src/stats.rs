//! A snapshot of every counter of a stack (Linux: `ip -s link`, `/proc/net/snmp`,
//! `/proc/net/netstat`).

use ustack_ipv4::{ArpStats, IcmpStats, IgmpStats, IpStats};
use ustack_netdev::DeviceStats;
use ustack_tcp::TcpStats;
use ustack_udp::UdpStats;

/// The counters of one device.
#[derive(Clone, Debug)]
pub struct DeviceSnapshot {
    /// The device name ("tun0").
    pub name: String,
    /// Its link counters.
    pub stats: DeviceStats,
}

/// Every counter of a stack at one moment (see [`Stack::stats`](crate::Stack::stats)).
#[derive(Clone, Debug)]
pub struct StackStats {
    /// Per-device link counters (`ip -s link`).
    pub devices: Vec<DeviceSnapshot>,
    /// IP counters (`/proc/net/snmp` Ip:).
    pub ip: IpStats,
    /// ICMP counters (`/proc/net/snmp` Icmp:).
    pub icmp: IcmpStats,
    /// TCP counters (`/proc/net/snmp` Tcp: and `/proc/net/netstat` TcpExt:).
    pub tcp: TcpStats,
    /// UDP counters (`/proc/net/snmp` Udp:).
    pub udp: UdpStats,
    /// IGMP counters (group membership reports and queries).
    pub igmp: IgmpStats,
    /// ARP and neighbour-table counters (Ethernet devices only; zero otherwise).
    pub arp: ArpStats,
    /// Counters of the driver task.
    pub driver: DriverStats,
}

/// What the driver task did (to see that an idle stack sleeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Times the driver future was polled (woken by a device, a timer or a kick).
    pub polls: u64,
    /// Packets taken from the devices (by the driver task or by inline receive).
    pub rx_packets: u64,
    /// Times protocol timers were run.
    pub timer_runs: u64,
    /// Times the driver task was woken to take over work: inline receive left packets
    /// over, or nested too deep.
    pub kicks: u64,
    /// Receive batches processed in a sender's context (inline devices: in-memory pair,
    /// loopback) instead of by the driver task.
    pub inline_runs: u64,
    /// Polls (of socket calls or of the driver task) that found the stack's lock held by
    /// another thread and waited to be woken instead of blocking their thread: how
    /// often the threads of a multi-thread runtime met on this stack.
    pub lock_waits: u64,
    /// Time until the next protocol deadline (`None`: no timer armed).
    pub next_deadline_in: Option<std::time::Duration>,
}

impl StackStats {
    /// The snapshot as one JSON object (field names as in the Rust structs).
    ///
    /// ```no_run
    /// # fn demo(stack: ustack::Stack) {
    /// let json = stack.stats().to_json();
    /// assert!(json.starts_with('{'));
    /// # }
    /// ```
    pub fn to_json(&self) -> String {
        debug_to_json(&format!("{self:?}"))
    }
}

/// Converts `Debug` output of plain data (structs, tuples, vectors, numbers, strings,
/// bools, unit enum variants, `Some`/`None`) into JSON. Struct and enum names are dropped;
/// `Some(x)` becomes `x`, `None` becomes `null`, other words become strings.
pub(crate) fn debug_to_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    // Stack of open brackets we emitted: '{' for struct, '[' for list/tuple.
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '{' => out.push('{'),
            '}' => out.push('}'),
            '[' | '(' => out.push('['),
            ']' | ')' => out.push(']'),
            ',' => out.push(','),
            ':' => out.push(':'),
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                out.extend(&chars[start..=i.min(chars.len() - 1)]);
            }
            _ if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric() || ".-+_".contains(chars[i + 1]))
                {
                    i += 1;
                }
                let tok: String = chars[start..=i].iter().collect();
                if tok.parse::<f64>().is_ok() {
                    out.push_str(&tok);
                } else {
                    out.push('"');
                    out.push_str(&tok);
                    out.push('"');
                }
            }
            _ => {
                let start = i;
                while i + 1 < chars.len()
                    && (chars[i + 1].is_alphanumeric() || "_.:".contains(chars[i + 1]))
                {
                    // A ':' followed by a space ends a field name.
                    if chars[i + 1] == ':' && chars.get(i + 2).is_some_and(|c| c.is_whitespace()) {
                        break;
                    }
                    i += 1;
                }
                let word: String = chars[start..=i].iter().collect();
                // What follows decides: a field name (':'), a type name ('{' / '('), or a value.
                let mut j = i + 1;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                match chars.get(j) {
                    Some(':') => {
                        out.push('"');
                        out.push_str(&word);
                        out.push('"');
                    }
                    Some('{') => {}
                    Some('(') if word == "Some" => {
                        // Some(x): emit x without brackets.
                        let mut depth = 0;
                        let mut k = j;
                        while k < chars.len() {
                            match chars[k] {
                                '(' => depth += 1,
                                ')' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            k += 1;
                        }
                        let inner: String = chars[j + 1..k.min(chars.len())].iter().collect();
                        out.push_str(&debug_to_json(&inner));
                        i = k;
                    }
                    Some('(') => {}
                    _ => match word.as_str() {
                        "true" | "false" => out.push_str(&word),
                        "None" => out.push_str("null"),
                        _ => {
                            out.push('"');
                            out.push_str(&word);
                            out.push('"');
                        }
                    },
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::debug_to_json;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Inner {
        a: u64,
        b: bool,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        list: Vec<Inner>,
        opt: Option<u32>,
        none: Option<u32>,
        dur: std::time::Duration,
    }

    #[test]
    fn converts_nested_debug() {
        let o = Outer {
            name: "tun0".into(),
            list: vec![Inner { a: 1, b: true }, Inner { a: 2, b: false }],
            opt: Some(5),
            none: None,
            dur: std::time::Duration::from_millis(1500),
        };
        let j = debug_to_json(&format!("{o:?}"));
        assert_eq!(
            j,
            r#"{"name":"tun0","list":[{"a":1,"b":true},{"a":2,"b":false}],"opt":5,"none":null,"dur":"1.5s"}"#
        );
    }
}
