//! DNS messages for a stub resolver (RFC 1035 section 4): an A query, and the parts of a
//! response a stub needs: the response code, the truncation bit, the IPv4 addresses of
//! the asked name, following CNAME records in the answer section, and for a negative
//! answer how long it may be cached (RFC 2308: the authority section's SOA).
//!
//! Responses come from the network: every length and pointer is checked, names are at
//! most 255 bytes and follow at most [`MAX_JUMPS`] compression pointers, so a hostile
//! message gives an error, never a panic or a loop.

use std::fmt;
use std::net::Ipv4Addr;

/// DNS header length.
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4), length bytes included.
pub const MAX_NAME_WIRE: usize = 255;
/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Compression pointers followed while reading one name.
pub const MAX_JUMPS: usize = 32;
/// CNAME records followed from the asked name.
pub const MAX_CNAMES: usize = 8;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const CLASS_IN: u16 = 1;
/// Flags of a query: standard query, recursion desired.
const FLAGS_QUERY_RD: u16 = 0x0100;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;

/// Why a name cannot be asked for or a response cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name is empty, has an empty label, a label over 63 bytes, or is over 253
    /// characters.
    BadName,
    /// The message ends early, or a length, pointer or count points outside it.
    Malformed,
    /// A name in the message is over 255 bytes or follows too many pointers.
    NameTooLong,
    /// Not a response to our query: wrong id, not a response, another opcode, or
    /// another question.
    NotOurs,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DnsError::BadName => "not a valid DNS name",
            DnsError::Malformed => "malformed DNS message",
            DnsError::NameTooLong => "DNS name too long or too many compression pointers",
            DnsError::NotOurs => "DNS message does not answer our query",
        })
    }
}

impl std::error::Error for DnsError {}

/// What a response says about the asked name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// RCODE (0 no error, 2 server failure, 3 name error / NXDOMAIN, 5 refused, ...).
    pub rcode: u8,
    /// TC: the server cut the message to fit a datagram.
    pub truncated: bool,
    /// The A records of the asked name (or of the end of its CNAME chain), in order.
    pub addrs: Vec<Ipv4Addr>,
    /// The smallest TTL (seconds) of the records that gave `addrs` (the CNAMEs followed
    /// and the A records); 0 without addresses.
    pub ttl: u32,
    /// For an answer without addresses: how long the "no such name" or "no address"
    /// answer may be cached (RFC 2308 5: the smaller of the authority section's SOA
    /// record TTL and its MINIMUM field); `None` when the response holds no usable SOA
    /// (then it is not cached).
    pub negative_ttl: Option<u32>,
}

/// RCODE of a name that does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;

/// The name as labels, lower-cased, without a trailing dot; checked for RFC 1035 limits.
pub fn labels(name: &str) -> Result<Vec<&str>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(DnsError::BadName);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > MAX_LABEL) {
        return Err(DnsError::BadName);
    }
    Ok(labels)
}

/// Appends an A query for `name` with `id` to `out` (RFC 1035 4.1: header, one
/// question, recursion desired).
pub fn build_query(id: u16, name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    build_query_edns(id, name, None, out)
}

/// The UDP payload size an EDNS(0) query advertises (the DNS flag day 2020 value: fits
/// the IPv6 minimum MTU without fragmentation).
pub const EDNS_UDP_SIZE: u16 = 1232;
/// Resource record type of the EDNS(0) pseudo-record (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// Response code "format error": what a server without EDNS may answer an EDNS query.
pub const RCODE_FORMERR: u8 = 1;

/// [`build_query`], with an EDNS(0) OPT record in the additional section advertising
/// `udp_size` bytes of UDP payload when given (RFC 6891 6.1: root owner, type OPT, the
/// size as its class, extended code, version 0 and flags zero, no options).
pub fn build_query_edns(
    id: u16,
    name: &str,
    udp_size: Option<u16>,
    out: &mut Vec<u8>,
) -> Result<(), DnsError> {
    let labels = labels(name)?;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAGS_QUERY_RD.to_be_bytes());
    let ar = u8::from(udp_size.is_some());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, ar]); // QD 1, AN 0, NS 0, AR 0 or 1
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = udp_size {
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // TTL fields, RDLENGTH 0
    }
    Ok(())
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, DnsError> {
    match msg.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(DnsError::Malformed),
    }
}

/// Reads the (possibly compressed) name at `at`: returns it lower-cased with dots, and
/// the offset just after it where it starts (after the first pointer, if any).
pub fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut pos = at;
    let mut end = None;
    let mut jumps = 0;
    let mut wire_len = 0;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Malformed)? as usize;
        match len & 0xc0 {
            0x00 => {
                wire_len += len + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(DnsError::NameTooLong);
                }
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Malformed)?;
                if !name.is_empty() {
                    name.push('.');
                }
                // Labels are bytes; anything outside printable ASCII keeps a stable,
                // comparable form.
                for &b in label {
                    match b {
                        b'!'..=b'~' if b != b'.' && b != b'\\' => {
                            name.push(char::from(b.to_ascii_lowercase()))
                        }
                        _ => name.push_str(&format!("\\{b:03}")),
                    }
                }
                pos += 1 + len;
            }
            0xc0 => {
                let ptr = (u16_at(msg, pos)? & 0x3fff) as usize;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(DnsError::NameTooLong);
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = ptr;
            }
            // 0x40 and 0x80: extended label types (RFC 6891), not used in names here.
            _ => return Err(DnsError::Malformed),
        }
    }
}

/// The asked name in the comparable form [`read_name`] gives (read back from the query
/// it makes, so both sides are spelled alike).
fn canonical(name: &str) -> Result<String, DnsError> {
    let mut q = Vec::new();
    build_query(0, name, &mut q)?;
    read_name(&q, HEADER_LEN).map(|(n, _)| n)
}

/// Parses a response to the A query `id` for `name`: checks that it answers that query
/// (id, QR, opcode, the one question), then collects the A records of `name`, following
/// CNAME records of the answer section (up to [`MAX_CNAMES`]).
pub fn parse_response(msg: &[u8], id: u16, name: &str) -> Result<Response, DnsError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsError::Malformed);
    }
    let flags = u16_at(msg, 2)?;
    if u16_at(msg, 0)? != id || flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 {
        return Err(DnsError::NotOurs);
    }
    let (qd, an) = (u16_at(msg, 4)?, u16_at(msg, 6)?);
    let want = canonical(name).map_err(|_| DnsError::NotOurs)?;
    let mut pos = HEADER_LEN;
    // The question must be ours (a response to something else is not taken).
    if qd != 1 {
        return Err(DnsError::NotOurs);
    }
    let (qname, after) = read_name(msg, pos)?;
    if qname != want || u16_at(msg, after)? != TYPE_A || u16_at(msg, after + 2)? != CLASS_IN {
        return Err(DnsError::NotOurs);
    }
    pos = after + 4;
    let truncated = flags & FLAG_TC != 0;
    let mut cnames: Vec<(String, String, u32)> = Vec::new();
    let mut a: Vec<(String, Ipv4Addr, u32)> = Vec::new();
    for _ in 0..an {
        // A truncated message may be cut inside a record (RFC 2181 9 asks servers not
        // to, not all comply): the records before the cut are what it holds.
        let rr = match record_at(msg, pos) {
            Ok(rr) => rr,
            Err(_) if truncated => break,
            Err(e) => return Err(e),
        };
        if rr.class == CLASS_IN {
            match (rr.rtype, rr.rdata) {
                (TYPE_A, &[a0, a1, a2, a3]) => {
                    a.push((rr.owner, Ipv4Addr::new(a0, a1, a2, a3), rr.ttl))
                }
                (TYPE_CNAME, _) => match read_name(msg, rr.rdata_at) {
                    Ok((target, _)) => cnames.push((rr.owner, target, rr.ttl)),
                    Err(_) if truncated => break,
                    Err(e) => return Err(e),
                },
                _ => {}
            }
        }
        pos = rr.end;
    }
    // The chain from the asked name through the CNAMEs the answer holds.
    let mut chain = vec![want];
    let mut ttl = u32::MAX;
    while chain.len() <= MAX_CNAMES {
        let last = chain.last().cloned().unwrap_or_default();
        match cnames.iter().find(|(o, _, _)| *o == last) {
            Some((_, t, t_ttl)) if !chain.contains(t) => {
                chain.push(t.clone());
                ttl = ttl.min(*t_ttl);
            }
            _ => break,
        }
    }
    let mut addrs = Vec::new();
    for (_, ip, a_ttl) in a.into_iter().filter(|(o, _, _)| chain.contains(o)) {
        addrs.push(ip);
        ttl = ttl.min(a_ttl);
    }
    // A negative answer's lifetime: the first SOA of the authority section (a malformed
    // authority section only means the answer is not cached).
    let negative_ttl = if addrs.is_empty() {
        u16_at(msg, 8).ok().and_then(|ns| soa_ttl(msg, pos, ns))
    } else {
        None
    };
    Ok(Response {
        rcode: (flags & RCODE_MASK) as u8,
        truncated,
        ttl: if addrs.is_empty() { 0 } else { ttl },
        addrs,
        negative_ttl,
    })
}

/// One resource record as read from a message.
struct Record<'a> {
    owner: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_at: usize,
    rdata: &'a [u8],
    /// Where the next record starts.
    end: usize,
}

/// Reads the resource record at `pos`.
fn record_at(msg: &[u8], pos: usize) -> Result<Record<'_>, DnsError> {
    let (owner, after) = read_name(msg, pos)?;
    let rtype = u16_at(msg, after)?;
    let class = u16_at(msg, after + 2)?;
    // RFC 2181 8: a TTL with the top bit set counts as zero.
    let ttl = (u32::from(u16_at(msg, after + 4)?) << 16) | u32::from(u16_at(msg, after + 6)?);
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    let rdlen = u16_at(msg, after + 8)? as usize;
    let rdata_at = after + 10;
    let rdata = msg
        .get(rdata_at..rdata_at + rdlen)
        .ok_or(DnsError::Malformed)?;
    Ok(Record {
        owner,
        rtype,
        class,
        ttl,
        rdata_at,
        rdata,
        end: rdata_at + rdlen,
    })
}

/// RFC 2308 5: the TTL of a negative answer is the smaller of the SOA record's own TTL and
/// its MINIMUM field (the last of its five 32-bit numbers). `pos` is where the `ns`
/// authority records start.
fn soa_ttl(msg: &[u8], mut pos: usize, ns: u16) -> Option<u32> {
    for _ in 0..ns {
        let rr = record_at(msg, pos).ok()?;
        // MNAME and RNAME (at least one byte each) and the five numbers.
        if rr.rtype == TYPE_SOA && rr.class == CLASS_IN && rr.rdata.len() >= 22 {
            let m = rr.rdata.get(rr.rdata.len() - 4..)?;
            let minimum = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
            let minimum = if minimum > i32::MAX as u32 {
                0
            } else {
                minimum
            };
            return Some(rr.ttl.min(minimum));
        }
        pos = rr.end;
    }
    None
}

#[cfg(test)]
mod tests;
