//! DHCP messages (RFC 2131 section 2, options from RFC 2132): building the client's
//! messages and parsing the server's. Every field of a received message is checked
//! against the bytes that are there; a malformed message is an error, never a panic.

use std::net::Ipv4Addr;

use ustack_netdev::MacAddr;

/// Fixed part of a message: op .. file (RFC 2131 figure 1).
pub const FIXED_LEN: usize = 236;
/// The magic cookie that starts the options (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// A client message is padded to at least this (BOOTP's 300-byte message; some relays
/// and servers drop shorter ones).
pub const MIN_LEN: usize = 300;
/// BOOTREQUEST.
pub const BOOTREQUEST: u8 = 1;
/// BOOTREPLY.
pub const BOOTREPLY: u8 = 2;
/// The broadcast bit of `flags`: the client cannot receive unicast before it has an
/// address, so the server answers to 255.255.255.255.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Options this client sends or reads (RFC 2132).
pub mod opt {
    /// Padding.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers (the first is the default gateway).
    pub const ROUTER: u8 = 3;
    /// Domain name servers.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOST_NAME: u8 = 12;
    /// Domain name (becomes the resolver's search domain).
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU.
    pub const MTU: u8 = 26;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time, seconds.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload: options continue in `file` (1), `sname` (2) or both (3).
    pub const OVERLOAD: u8 = 52;
    /// Message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAM_REQUEST: u8 = 55;
    /// Maximum message size the client accepts.
    pub const MAX_MSG_SIZE: u8 = 57;
    /// Renewal (T1) time, seconds.
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time, seconds.
    pub const REBINDING_TIME: u8 = 59;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// End of options.
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    /// Client looks for servers.
    Discover,
    /// Server offers an address.
    Offer,
    /// Client asks for the offered (or its current) address.
    Request,
    /// Client found the address in use.
    Decline,
    /// Server grants the lease.
    Ack,
    /// Server refuses.
    Nak,
    /// Client gives the address back.
    Release,
    /// Client asks for configuration only.
    Inform,
}

impl MsgType {
    /// The option's value.
    pub fn code(self) -> u8 {
        match self {
            MsgType::Discover => 1,
            MsgType::Offer => 2,
            MsgType::Request => 3,
            MsgType::Decline => 4,
            MsgType::Ack => 5,
            MsgType::Nak => 6,
            MsgType::Release => 7,
            MsgType::Inform => 8,
        }
    }

    /// The type of option value `c`.
    pub fn from_code(c: u8) -> Option<MsgType> {
        Some(match c {
            1 => MsgType::Discover,
            2 => MsgType::Offer,
            3 => MsgType::Request,
            4 => MsgType::Decline,
            5 => MsgType::Ack,
            6 => MsgType::Nak,
            7 => MsgType::Release,
            8 => MsgType::Inform,
            _ => return None,
        })
    }
}

/// Why a received message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed part and the cookie.
    Truncated,
    /// Not a BOOTREPLY for Ethernet, or no magic cookie.
    NotDhcpReply,
    /// An option runs past the end of its field.
    BadOption,
    /// No (or an unknown) message type.
    NoMessageType,
}

/// A server's message, as far as the client uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Transaction id.
    pub xid: u32,
    /// The client hardware address it is for.
    pub chaddr: [u8; 6],
    /// "Your" address: the one offered or granted.
    pub yiaddr: Ipv4Addr,
    /// Message type (option 53).
    pub msg_type: Option<MsgType>,
    /// Server identifier (option 54).
    pub server_id: Option<Ipv4Addr>,
    /// Lease time in seconds (option 51; `u32::MAX` is infinite).
    pub lease_secs: Option<u32>,
    /// T1 (option 58).
    pub t1_secs: Option<u32>,
    /// T2 (option 59).
    pub t2_secs: Option<u32>,
    /// Subnet mask (option 1).
    pub subnet_mask: Option<Ipv4Addr>,
    /// Routers (option 3).
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15), when it is printable ASCII.
    pub domain: Option<String>,
    /// Interface MTU (option 26).
    pub mtu: Option<u16>,
    /// Classless static routes (option 121, RFC 3442): destination, prefix length and
    /// router (0.0.0.0: the destination is on the link). `None` when absent, empty or
    /// malformed (the option is then ignored as a whole).
    pub classless_routes: Option<Vec<(Ipv4Addr, u8, Ipv4Addr)>>,
}

/// Decodes option 121's value (RFC 3442 section 3): for each route the prefix length, the
/// destination's significant octets (as many as the length needs) and the router. Bits of
/// the destination beyond the prefix are cleared. `None` for a length above 32 or a route
/// cut short, and for an empty value.
pub fn classless_routes(v: &[u8]) -> Option<Vec<(Ipv4Addr, u8, Ipv4Addr)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let width = v[i];
        if width > 32 {
            return None;
        }
        let n = usize::from(width).div_ceil(8);
        let dst = v.get(i + 1..i + 1 + n)?;
        let router = v.get(i + 1 + n..i + 5 + n)?;
        let mut d = [0u8; 4];
        d[..n].copy_from_slice(dst);
        let mask = u32::MAX.checked_shl(32 - u32::from(width)).unwrap_or(0);
        out.push((
            Ipv4Addr::from(u32::from_be_bytes(d) & mask),
            width,
            addr_at(router),
        ));
        i += 5 + n;
    }
    (!out.is_empty()).then_some(out)
}

fn addr_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn addrs(v: &[u8]) -> Vec<Ipv4Addr> {
    v.chunks_exact(4).map(addr_at).collect()
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

fn addr_of(v: &[u8]) -> Option<Ipv4Addr> {
    (v.len() == 4).then(|| addr_at(v))
}

/// Walks one options field, calling `f(code, value)` for each option; returns the
/// overload value if option 52 appeared.
fn walk(field: &[u8], f: &mut impl FnMut(u8, &[u8])) -> Result<Option<u8>, ParseError> {
    let mut overload = None;
    let mut i = 0;
    while i < field.len() {
        let code = field[i];
        match code {
            opt::PAD => {
                i += 1;
                continue;
            }
            opt::END => break,
            _ => {}
        }
        let len = usize::from(*field.get(i + 1).ok_or(ParseError::BadOption)?);
        let v = field.get(i + 2..i + 2 + len).ok_or(ParseError::BadOption)?;
        if code == opt::OVERLOAD {
            overload = v.first().copied();
        } else {
            f(code, v);
        }
        i += 2 + len;
    }
    Ok(overload)
}

impl Reply {
    /// Parses a server's message (the UDP payload).
    pub fn parse(b: &[u8]) -> Result<Reply, ParseError> {
        if b.len() < FIXED_LEN + MAGIC_COOKIE.len() {
            return Err(ParseError::Truncated);
        }
        if b[0] != BOOTREPLY
            || b[1] != 1
            || b[2] != 6
            || b[FIXED_LEN..FIXED_LEN + 4] != MAGIC_COOKIE
        {
            return Err(ParseError::NotDhcpReply);
        }
        let mut r = Reply {
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            chaddr: [b[28], b[29], b[30], b[31], b[32], b[33]],
            yiaddr: addr_at(&b[16..20]),
            msg_type: None,
            server_id: None,
            lease_secs: None,
            t1_secs: None,
            t2_secs: None,
            subnet_mask: None,
            routers: Vec::new(),
            dns: Vec::new(),
            domain: None,
            mtu: None,
            classless_routes: None,
        };
        // Option 121 may come in pieces (RFC 3396: a long value is split across instances
        // of the option, to be joined before decoding).
        let mut routes: Option<Vec<u8>> = None;
        let mut take = |code: u8, v: &[u8]| match code {
            opt::MESSAGE_TYPE => r.msg_type = v.first().and_then(|&c| MsgType::from_code(c)),
            opt::SERVER_ID => r.server_id = addr_of(v),
            opt::LEASE_TIME => r.lease_secs = u32_of(v),
            opt::RENEWAL_TIME => r.t1_secs = u32_of(v),
            opt::REBINDING_TIME => r.t2_secs = u32_of(v),
            opt::SUBNET_MASK => r.subnet_mask = addr_of(v),
            // RFC 3396 would concatenate repeated options; later ones add here.
            opt::ROUTER => r.routers.extend(addrs(v)),
            opt::DNS => r.dns.extend(addrs(v)),
            opt::DOMAIN_NAME => {
                let name = v.strip_suffix(&[0]).unwrap_or(v);
                if !name.is_empty() && name.iter().all(|c| c.is_ascii_graphic()) {
                    r.domain = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            opt::MTU => {
                r.mtu = <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes);
            }
            opt::CLASSLESS_ROUTES => routes.get_or_insert_with(Vec::new).extend_from_slice(v),
            _ => {}
        };
        let overload = walk(&b[FIXED_LEN + 4..], &mut take)?;
        // Option overload (RFC 2132 9.3): `file` first, then `sname`.
        if let Some(o) = overload {
            if o & 1 != 0 {
                walk(&b[108..236], &mut take)?;
            }
            if o & 2 != 0 {
                walk(&b[44..108], &mut take)?;
            }
        }
        r.classless_routes = routes.as_deref().and_then(classless_routes);
        if r.msg_type.is_none() {
            return Err(ParseError::NoMessageType);
        }
        Ok(r)
    }
}

/// A client message to send.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Message type.
    pub msg_type: MsgType,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client began this exchange.
    pub secs: u16,
    /// Ask the server to answer by broadcast.
    pub broadcast: bool,
    /// Our current address (RENEWING, REBINDING, RELEASE), else 0.0.0.0.
    pub ciaddr: Ipv4Addr,
    /// Our hardware address.
    pub chaddr: MacAddr,
    /// Option 50 (SELECTING, INIT-REBOOT).
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54 (SELECTING, RELEASE).
    pub server_id: Option<Ipv4Addr>,
    /// Option 12.
    pub host_name: Option<&'a str>,
    /// Option 61; `None`: hardware type 1 and `chaddr`.
    pub client_id: Option<&'a [u8]>,
}

impl Request<'_> {
    /// The message's bytes (at least [`MIN_LEN`]).
    pub fn emit(&self) -> Vec<u8> {
        let mut b = vec![0u8; FIXED_LEN];
        b[0] = BOOTREQUEST;
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[8..10].copy_from_slice(&self.secs.to_be_bytes());
        if self.broadcast {
            b[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        }
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[28..34].copy_from_slice(&self.chaddr.0);
        b.extend_from_slice(&MAGIC_COOKIE);
        let mut put = |code: u8, v: &[u8]| {
            // Values longer than 255 bytes are cut (only a host name could be).
            let v = &v[..v.len().min(255)];
            b.push(code);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        };
        put(opt::MESSAGE_TYPE, &[self.msg_type.code()]);
        match self.client_id {
            Some(id) => put(opt::CLIENT_ID, id),
            None => {
                let mut id = [1u8; 7];
                id[1..].copy_from_slice(&self.chaddr.0);
                put(opt::CLIENT_ID, &id);
            }
        }
        if let Some(a) = self.requested_ip {
            put(opt::REQUESTED_IP, &a.octets());
        }
        if let Some(a) = self.server_id {
            put(opt::SERVER_ID, &a.octets());
        }
        if let Some(h) = self.host_name {
            put(opt::HOST_NAME, h.as_bytes());
        }
        if !matches!(self.msg_type, MsgType::Release | MsgType::Decline) {
            put(opt::MAX_MSG_SIZE, &576u16.to_be_bytes());
            put(
                opt::PARAM_REQUEST,
                &[
                    opt::SUBNET_MASK,
                    // Before the router option, as RFC 3442 asks.
                    opt::CLASSLESS_ROUTES,
                    opt::ROUTER,
                    opt::DNS,
                    opt::DOMAIN_NAME,
                    opt::MTU,
                    opt::LEASE_TIME,
                    opt::RENEWAL_TIME,
                    opt::REBINDING_TIME,
                ],
            );
        }
        b.push(opt::END);
        if b.len() < MIN_LEN {
            b.resize(MIN_LEN, 0);
        }
        b
    }
}

#[cfg(test)]
mod tests;
