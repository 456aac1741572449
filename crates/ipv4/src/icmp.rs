//! ICMP messages (RFC 792, RFC 1122 3.2.2, RFC 1191 for "fragmentation needed").
//!
//! Linux: `icmp_rcv`, `icmp_echo`, `icmp_unreach`, `icmp_send`, `icmpv4_xrlim_allow`,
//! `icmp_err_convert`.

use crate::checksum;
use std::io;
use std::net::Ipv4Addr;
use std::time::Instant;

/// Echo reply (type 0).
pub const ICMP_ECHO_REPLY: u8 = 0;
/// Destination unreachable (type 3).
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Source quench (type 4, deprecated by RFC 6633; ignored).
pub const ICMP_SOURCE_QUENCH: u8 = 4;
/// Redirect (type 5; ignored: a host without forwarding keeps its routes).
pub const ICMP_REDIRECT: u8 = 5;
/// Echo request (type 8).
pub const ICMP_ECHO: u8 = 8;
/// Time exceeded (type 11).
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// Parameter problem (type 12).
pub const ICMP_PARAMETER_PROB: u8 = 12;
/// Length of the ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const ICMP_HEADER_LEN: usize = 8;

/// True for ICMP types that are error messages (or unknown, which RFC 1122 3.2.2 and
/// Linux `icmp_send` treat the same way: never answered with an error).
pub fn is_error_type(typ: u8) -> bool {
    !matches!(typ, 0 | 8 | 13..=18)
}

/// What an ICMP error says (the type/code pair of RFC 792, grouped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpErrorKind {
    /// Type 3 codes 0, 6, 11: network unreachable / unknown.
    NetUnreachable,
    /// Type 3 codes 1, 7, 8, 12: host unreachable / unknown / isolated.
    HostUnreachable,
    /// Type 3 code 2.
    ProtocolUnreachable,
    /// Type 3 code 3.
    PortUnreachable,
    /// Type 3 code 4 with the next-hop MTU (RFC 1191 section 4; 0 from old routers).
    FragmentationNeeded {
        /// Next-hop MTU.
        mtu: u16,
    },
    /// Type 3 code 5.
    SourceRouteFailed,
    /// Type 3 codes 9, 10, 13: administratively prohibited.
    AdminProhibited,
    /// Type 11 (any code; emitted with code 0, TTL exceeded in transit).
    TimeExceeded,
    /// Type 12 (any code; emitted with code 0 and pointer 0).
    ParameterProblem,
    /// Anything else, kept raw (e.g. type 3 codes 14-15, or type 11 code 1 to emit
    /// "fragment reassembly time exceeded").
    Other {
        /// ICMP type.
        typ: u8,
        /// ICMP code.
        code: u8,
    },
}

impl IcmpErrorKind {
    /// The kind for a received error type/code; `rest` is bytes 4..8 of the ICMP header.
    /// `None` when the type is not an error that quotes a datagram (3, 11, 12).
    pub fn from_type_code(typ: u8, code: u8, rest: [u8; 4]) -> Option<Self> {
        Some(match (typ, code) {
            (ICMP_DEST_UNREACH, 0 | 6 | 11) => IcmpErrorKind::NetUnreachable,
            (ICMP_DEST_UNREACH, 1 | 7 | 8 | 12) => IcmpErrorKind::HostUnreachable,
            (ICMP_DEST_UNREACH, 2) => IcmpErrorKind::ProtocolUnreachable,
            (ICMP_DEST_UNREACH, 3) => IcmpErrorKind::PortUnreachable,
            (ICMP_DEST_UNREACH, 4) => IcmpErrorKind::FragmentationNeeded {
                mtu: u16::from_be_bytes([rest[2], rest[3]]),
            },
            (ICMP_DEST_UNREACH, 5) => IcmpErrorKind::SourceRouteFailed,
            (ICMP_DEST_UNREACH, 9 | 10 | 13) => IcmpErrorKind::AdminProhibited,
            (ICMP_DEST_UNREACH, c) => IcmpErrorKind::Other { typ, code: c },
            (ICMP_TIME_EXCEEDED, _) => IcmpErrorKind::TimeExceeded,
            (ICMP_PARAMETER_PROB, _) => IcmpErrorKind::ParameterProblem,
            _ => return None,
        })
    }

    /// The type, code and rest-of-header bytes this kind is emitted with.
    pub fn type_code(&self) -> (u8, u8, [u8; 4]) {
        let z = [0; 4];
        match *self {
            IcmpErrorKind::NetUnreachable => (ICMP_DEST_UNREACH, 0, z),
            IcmpErrorKind::HostUnreachable => (ICMP_DEST_UNREACH, 1, z),
            IcmpErrorKind::ProtocolUnreachable => (ICMP_DEST_UNREACH, 2, z),
            IcmpErrorKind::PortUnreachable => (ICMP_DEST_UNREACH, 3, z),
            IcmpErrorKind::FragmentationNeeded { mtu } => {
                let m = mtu.to_be_bytes();
                (ICMP_DEST_UNREACH, 4, [0, 0, m[0], m[1]])
            }
            IcmpErrorKind::SourceRouteFailed => (ICMP_DEST_UNREACH, 5, z),
            IcmpErrorKind::AdminProhibited => (ICMP_DEST_UNREACH, 13, z),
            IcmpErrorKind::TimeExceeded => (ICMP_TIME_EXCEEDED, 0, z),
            IcmpErrorKind::ParameterProblem => (ICMP_PARAMETER_PROB, 0, z),
            IcmpErrorKind::Other { typ, code } => (typ, code, z),
        }
    }

    /// The error a socket reports for this ICMP error (Linux: `icmp_err_convert`):
    /// port and protocol unreachable -> `ConnectionRefused`, network unreachable ->
    /// `NetworkUnreachable`, fragmentation needed -> `InvalidInput` (EMSGSIZE has no
    /// `ErrorKind`), source route failed -> `Unsupported`, parameter problem ->
    /// `InvalidData` (EPROTO), everything else -> `HostUnreachable`.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            IcmpErrorKind::NetUnreachable => io::ErrorKind::NetworkUnreachable,
            IcmpErrorKind::ProtocolUnreachable | IcmpErrorKind::PortUnreachable => {
                io::ErrorKind::ConnectionRefused
            }
            IcmpErrorKind::FragmentationNeeded { .. } => io::ErrorKind::InvalidInput,
            IcmpErrorKind::SourceRouteFailed => io::ErrorKind::Unsupported,
            IcmpErrorKind::ParameterProblem => io::ErrorKind::InvalidData,
            IcmpErrorKind::HostUnreachable
            | IcmpErrorKind::AdminProhibited
            | IcmpErrorKind::TimeExceeded
            | IcmpErrorKind::Other { .. } => io::ErrorKind::HostUnreachable,
        }
    }

    /// Hard errors abort a connection; soft ones are only remembered (RFC 1122 4.2.3.9:
    /// codes 2-3 (protocol, port) are hard, 0, 1, 5 soft; fragmentation needed is handled
    /// by PMTU discovery). Administratively prohibited is hard as in Linux.
    pub fn is_hard(&self) -> bool {
        matches!(
            self,
            IcmpErrorKind::ProtocolUnreachable
                | IcmpErrorKind::PortUnreachable
                | IcmpErrorKind::AdminProhibited
        )
    }
}

/// A received ICMP error with the quoted datagram's header parsed: what the transport's
/// `err_handler` gets (Linux: the `skb` + `info` passed to `tcp_v4_err` / `udp_err`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// What went wrong. For `FragmentationNeeded` the MTU is the value the IP layer
    /// proposes (clamped to `min_pmtu`, RFC 1191 plateau when 0); the IP layer has not
    /// applied it: a transport that validates the error calls `Ipv4Layer::update_pmtu`.
    pub kind: IcmpErrorKind,
    /// Who sent the ICMP error (a router or the destination host).
    pub reporter: Ipv4Addr,
    /// Source of the datagram that caused the error (normally us).
    pub orig_src: Ipv4Addr,
    /// Destination of the datagram that caused the error.
    pub orig_dst: Ipv4Addr,
    /// Protocol of the datagram that caused the error.
    pub orig_protocol: u8,
    /// The transport bytes quoted after the original IP header (at least 8).
    pub quoted: Vec<u8>,
}

impl IcmpError {
    /// Parses the quoted datagram of an error message. `None` when it is not an IPv4
    /// header followed by at least 8 bytes (RFC 792; Linux `icmp_unreach` requires the
    /// same before calling `err_handler`).
    pub fn parse(kind: IcmpErrorKind, reporter: Ipv4Addr, quote: &[u8]) -> Option<IcmpError> {
        let q = QuotedHeader::parse(quote)?;
        let quoted = quote.get(q.header_len..)?;
        if quoted.len() < 8 {
            return None;
        }
        Some(IcmpError {
            kind,
            reporter,
            orig_src: q.src,
            orig_dst: q.dst,
            orig_protocol: q.protocol,
            quoted: quoted.to_vec(),
        })
    }
}

/// The fields of a quoted (possibly truncated) IPv4 header that matter for ICMP.
/// Lenient on purpose: the quoted datagram is cut short, so its total length cannot be
/// checked, and a router may have changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QuotedHeader {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub header_len: usize,
    pub frag_offset: u16,
    pub total_len: u16,
}

impl QuotedHeader {
    pub(crate) fn parse(b: &[u8]) -> Option<QuotedHeader> {
        let v = *b.first()?;
        if v >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(v & 0x0f) * 4;
        if header_len < 20 {
            return None;
        }
        let h = b.get(..header_len)?;
        Some(QuotedHeader {
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            protocol: h[9],
            header_len,
            frag_offset: (u16::from_be_bytes([h[6], h[7]]) & 0x1fff) * 8,
            total_len: u16::from_be_bytes([h[2], h[3]]),
        })
    }
}

/// A received echo reply, queued for [`crate::Ipv4Layer::take_echo_replies`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who replied.
    pub from: Ipv4Addr,
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
    /// Bytes of echo data.
    pub payload_len: usize,
}

/// Why an ICMP message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpParseError {
    /// Shorter than the 8-byte ICMP header.
    Truncated,
    /// The checksum does not verify (Linux: `InCsumErrors`).
    BadChecksum,
}

/// A parsed or to-be-built ICMP message (RFC 792).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRepr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// An error message quoting a datagram (types 3, 11, 12).
    Error {
        /// What went wrong.
        kind: IcmpErrorKind,
        /// The quoted datagram: IP header + leading payload bytes.
        quote: &'a [u8],
    },
    /// Any other message, not processed (timestamp, redirect, source quench, ...).
    Other {
        /// ICMP type.
        typ: u8,
        /// ICMP code.
        code: u8,
    },
}

impl<'a> IcmpRepr<'a> {
    /// Parses an ICMP message (the IP payload), verifying its checksum.
    pub fn parse(msg: &'a [u8]) -> Result<IcmpRepr<'a>, IcmpParseError> {
        let Some(h) = msg.get(..ICMP_HEADER_LEN) else {
            return Err(IcmpParseError::Truncated);
        };
        if checksum::checksum(msg) != 0 {
            return Err(IcmpParseError::BadChecksum);
        }
        let (typ, code) = (h[0], h[1]);
        let rest = [h[4], h[5], h[6], h[7]];
        let body = msg.get(ICMP_HEADER_LEN..).unwrap_or_default();
        let ident = u16::from_be_bytes([h[4], h[5]]);
        let seq = u16::from_be_bytes([h[6], h[7]]);
        Ok(match typ {
            ICMP_ECHO if code == 0 => IcmpRepr::EchoRequest {
                ident,
                seq,
                data: body,
            },
            ICMP_ECHO_REPLY if code == 0 => IcmpRepr::EchoReply {
                ident,
                seq,
                data: body,
            },
            _ => match IcmpErrorKind::from_type_code(typ, code, rest) {
                Some(kind) => IcmpRepr::Error { kind, quote: body },
                None => IcmpRepr::Other { typ, code },
            },
        })
    }

    /// Bytes [`IcmpRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        ICMP_HEADER_LEN
            + match self {
                IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } => data.len(),
                IcmpRepr::Error { quote, .. } => quote.len(),
                IcmpRepr::Other { .. } => 0,
            }
    }

    /// Writes the message into `buf[..self.buffer_len()]` with its checksum. A shorter
    /// `buf` is left untouched.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(b) = buf.get_mut(..self.buffer_len()) else {
            return;
        };
        let (typ, code, rest, body): (u8, u8, [u8; 4], &[u8]) = match *self {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                let (i, s) = (ident.to_be_bytes(), seq.to_be_bytes());
                (ICMP_ECHO, 0, [i[0], i[1], s[0], s[1]], data)
            }
            IcmpRepr::EchoReply { ident, seq, data } => {
                let (i, s) = (ident.to_be_bytes(), seq.to_be_bytes());
                (ICMP_ECHO_REPLY, 0, [i[0], i[1], s[0], s[1]], data)
            }
            IcmpRepr::Error { kind, quote } => {
                let (t, c, r) = kind.type_code();
                (t, c, r, quote)
            }
            IcmpRepr::Other { typ, code } => (typ, code, [0; 4], &[]),
        };
        b[0] = typ;
        b[1] = code;
        b[2] = 0;
        b[3] = 0;
        b[4..8].copy_from_slice(&rest);
        b[8..].copy_from_slice(body);
        let c = checksum::checksum(b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

/// Token bucket limiting the ICMP errors we send (Linux: `icmp_global_allow`,
/// `net.ipv4.icmp_msgs_per_sec` / `icmp_msgs_burst`). Time is passed in.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    rate_per_sec: u32,
    burst: u32,
    /// Tokens in billionths (one token = 1e9 units), so refill is exact per nanosecond.
    units: u64,
    last: Option<Instant>,
}

const UNIT: u64 = 1_000_000_000;

impl RateLimiter {
    /// `rate_per_sec` tokens per second up to `burst`; starts full. A rate of 0 disables
    /// the limit (as `icmp_ratelimit = 0` does in Linux).
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        RateLimiter {
            rate_per_sec,
            burst,
            units: u64::from(burst).saturating_mul(UNIT),
            last: None,
        }
    }

    /// Takes one token if available at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.rate_per_sec == 0 {
            return true;
        }
        let cap = u64::from(self.burst).saturating_mul(UNIT);
        if let Some(last) = self.last {
            let ns =
                u64::try_from(now.saturating_duration_since(last).as_nanos()).unwrap_or(u64::MAX);
            self.units = self
                .units
                .saturating_add(ns.saturating_mul(u64::from(self.rate_per_sec)))
                .min(cap);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.units >= UNIT {
            self.units -= UNIT;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
