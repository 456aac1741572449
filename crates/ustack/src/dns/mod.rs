//! A DNS stub resolver over the stack's own UDP (like the system resolver that
//! `tokio::net::lookup_host` uses, but through ustack's devices): A queries to the
//! servers of [`DnsConfig`], with recursion desired, answered from the first server that
//! gives a usable answer.
//!
//! Names in [`DnsConfig::hosts`] (filled from a hosts file with
//! [`DnsConfig::read_hosts_file`] or [`DnsConfig::add_hosts`]) and `localhost` are answered
//! without asking. Answers are kept for their TTL, at most [`DnsConfig::max_ttl`] (5
//! minutes by default), and "no such name" / "no address" answers for the time their
//! zone's SOA allows (RFC 2308), at most [`DnsConfig::max_negative_ttl`] (1 minute), in a
//! cache of at most [`CACHE_ENTRIES`] names per stack. Search domains
//! ([`DnsConfig::search`]) complete short names as `resolv.conf`'s `search` and `ndots`
//! do. A truncated answer (TC) is asked again over TCP (RFC 7766), or every query goes
//! over TCP with [`DnsConfig::use_tcp`]. With [`DnsConfig::edns0`] queries advertise a
//! larger UDP payload (EDNS(0), RFC 6891), so that answers up to 1232 bytes come in one
//! datagram. [`DnsConfig::read_resolv_conf`] takes servers, search domains and options
//! from a `resolv.conf` file. What it does not do: DNSSEC, IPv6 (AAAA).

pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{TcpSocket, UdpSocket};
use crate::stack::Stack;
use wire::{DnsError, Response, RCODE_NXDOMAIN};

/// Where and how to ask (Linux: `/etc/resolv.conf` `nameserver`, `options timeout:`
/// `attempts:`). [`StackBuilder::dns`](crate::StackBuilder::dns) adds servers,
/// [`StackBuilder::resolv_conf`](crate::StackBuilder::resolv_conf) reads a
/// `resolv.conf`; [`Stack::set_dns`] replaces the whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Servers, asked in order (port 53 unless given).
    pub servers: Vec<SocketAddrV4>,
    /// How long to wait for each server's answer (default 2 s).
    pub timeout: Duration,
    /// Rounds over all servers before giving up (default 2).
    pub attempts: u32,
    /// Longest time an answer is kept (default 5 minutes; shorter when its TTL says so).
    /// Zero: no cache.
    pub max_ttl: Duration,
    /// Longest time a "no such name" (NXDOMAIN) or "no address" answer is kept (default
    /// 1 minute; shorter when its SOA says so, RFC 2308; never without one). Zero: such
    /// answers are not cached.
    pub max_negative_ttl: Duration,
    /// Fixed names (lower-case, without a trailing dot), answered without asking a
    /// server, like `/etc/hosts` (Linux: `hosts: files dns` in `nsswitch.conf`).
    pub hosts: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Search domains (`resolv.conf` `search`): a name without a trailing dot is also
    /// tried with each appended, in order; before the name as given when it has fewer
    /// than [`ndots`](Self::ndots) dots, after it otherwise.
    pub search: Vec<String>,
    /// `resolv.conf` `options ndots:` (default 1).
    pub ndots: usize,
    /// Every query over TCP instead of UDP (`resolv.conf` `options use-vc`; default off:
    /// UDP, and TCP only for an answer the server truncated).
    pub use_tcp: bool,
    /// Queries carry an EDNS(0) OPT record advertising
    /// [`EDNS_UDP_SIZE`](wire::EDNS_UDP_SIZE) bytes of UDP payload (RFC 6891;
    /// `resolv.conf` `options edns0`; default off, as in glibc): answers of up to that
    /// size come over UDP instead of truncated and asked again over TCP. A server that
    /// answers such a query with a format error is asked again without it.
    pub edns0: bool,
}

/// A configuration file's text; the error names the file.
fn read_text(path: &std::path::Path) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))
}

/// Name servers taken from one `resolv.conf` (glibc's `MAXNS`); later ones are ignored.
pub const RESOLV_CONF_MAX_SERVERS: usize = 3;

impl DnsConfig {
    /// Adds the IPv4 entries of a hosts file's text (`/etc/hosts` format: an address,
    /// a name and its aliases per line; `#` starts a comment). Lines with an IPv6 or
    /// malformed address are skipped, as are names DNS could not carry; a name listed
    /// twice keeps both addresses, in order.
    pub fn add_hosts(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(Ok(addr)) = words.next().map(str::parse::<Ipv4Addr>) else {
                continue;
            };
            for name in words {
                let name = name.strip_suffix('.').unwrap_or(name);
                if wire::labels(name).is_err() {
                    continue;
                }
                let e = self.hosts.entry(name.to_ascii_lowercase()).or_default();
                if !e.contains(&addr) {
                    e.push(addr);
                }
            }
        }
    }

    /// Reads a hosts file (for instance `/etc/hosts`) with [`add_hosts`](Self::add_hosts).
    pub fn read_hosts_file(&mut self, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        self.add_hosts(&read_text(path.as_ref())?);
        Ok(())
    }

    /// Takes the settings of a `resolv.conf` file's text (resolv.conf(5), read as glibc
    /// reads it): each IPv4 `nameserver` is added to [`servers`](Self::servers) (port 53;
    /// at most [`RESOLV_CONF_MAX_SERVERS`] from one file, IPv6 servers skipped); the last
    /// `search` or `domain` line replaces [`search`](Self::search); `options` sets
    /// `ndots:N` (at most 15), `timeout:N` (seconds, 1 to 30), `attempts:N` (1 to 5),
    /// `use-vc` ([`use_tcp`](Self::use_tcp)) and `edns0` ([`edns0`](Self::edns0)); other
    /// options, and lines that are not
    /// understood, are ignored. `#` and `;` start comments.
    ///
    /// A server such as `127.0.0.53` (a local caching resolver on the host) is reachable
    /// only if the stack's own network leads to it.
    pub fn add_resolv_conf(&mut self, text: &str) {
        let mut servers = 0;
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let Some(Ok(ip)) = words.next().map(str::parse::<Ipv4Addr>) else {
                        continue;
                    };
                    if servers < RESOLV_CONF_MAX_SERVERS {
                        servers += 1;
                        self.servers.push(SocketAddrV4::new(ip, 53));
                    }
                }
                Some("search" | "domain") => {
                    self.search = words
                        .map(|d| d.trim_end_matches('.').to_string())
                        .filter(|d| wire::labels(d).is_ok())
                        .collect();
                }
                Some("options") => {
                    for opt in words {
                        let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = value.parse::<u64>().ok();
                        match (key, n) {
                            ("ndots", Some(n)) => self.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => {
                                self.timeout = Duration::from_secs(n.clamp(1, 30))
                            }
                            ("attempts", Some(n)) => self.attempts = n.clamp(1, 5) as u32,
                            ("use-vc", _) => self.use_tcp = true,
                            ("edns0", _) => self.edns0 = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads a `resolv.conf` file (for instance `/etc/resolv.conf`) with
    /// [`add_resolv_conf`](Self::add_resolv_conf).
    pub fn read_resolv_conf(&mut self, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        self.add_resolv_conf(&read_text(path.as_ref())?);
        Ok(())
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            max_ttl: Duration::from_secs(300),
            max_negative_ttl: Duration::from_secs(60),
            hosts: BTreeMap::new(),
            search: Vec::new(),
            ndots: 1,
            use_tcp: false,
            edns0: false,
        }
    }
}

/// Names a stack's cache holds at most; when it is full, expired answers go first, then
/// the one that would expire soonest.
pub const CACHE_ENTRIES: usize = 256;

/// A cached answer: the addresses, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Addrs(Vec<Ipv4Addr>),
    /// NXDOMAIN, from this server.
    NoSuchName(SocketAddrV4),
    /// The name exists without an A record (NODATA), says this server.
    NoAddress(SocketAddrV4),
}

impl Answer {
    /// The addresses, or the error a negative answer means.
    fn result(self, host: &str) -> io::Result<Vec<Ipv4Addr>> {
        match self {
            Answer::Addrs(a) => Ok(a),
            Answer::NoSuchName(server) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host:?} does not exist (NXDOMAIN from {server})"),
            )),
            Answer::NoAddress(server) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host:?} has no IPv4 address (from {server})"),
            )),
        }
    }
}

/// Answers by name (lower-cased, without a trailing dot), with when they expire.
#[derive(Debug, Default)]
pub(crate) struct DnsCache {
    entries: HashMap<String, (Answer, Instant)>,
}

impl DnsCache {
    fn get(&mut self, name: &str, now: Instant) -> Option<Answer> {
        match self.entries.get(name) {
            Some((addrs, expires)) if *expires > now => Some(addrs.clone()),
            Some(_) => {
                self.entries.remove(name);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, name: String, answer: Answer, expires: Instant, now: Instant) {
        if self.entries.len() >= CACHE_ENTRIES && !self.entries.contains_key(&name) {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= CACHE_ENTRIES {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(name, (answer, expires));
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Resolves `host` to its IPv4 addresses through `stack`: an IPv4 literal as itself,
/// `localhost` as 127.0.0.1 (unless the hosts table says otherwise), a name of
/// [`DnsConfig::hosts`] as listed there, any other name from the cache or by asking the
/// configured servers.
///
/// Errors: `InvalidInput` for a name DNS cannot carry, or when no server is configured;
/// `NotFound` when a server says (or said, within the negative-cache time) the name does
/// not exist (NXDOMAIN) or has no A record;
/// otherwise what went wrong last once every attempt is spent: `TimedOut` when the server
/// was silent, `Other` for a server failure (SERVFAIL, REFUSED), the send error's kind
/// (e.g. `NetworkUnreachable` without a route to the server).
pub async fn resolve(stack: &Stack, host: &str) -> io::Result<Vec<Ipv4Addr>> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(vec![ip]);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let cfg = stack.dns();
    if let Some(addrs) = cfg.hosts.get(&name.to_ascii_lowercase()) {
        return Ok(addrs.clone());
    }
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(vec![Ipv4Addr::LOCALHOST]);
    }
    // Host-name syntax (RFC 1123 letters, digits and hyphens, plus the underscore of
    // service names): anything else ("[::1]", spaces, ...) is not sent to a server.
    let host_chars = |l: &&str| {
        l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match wire::labels(name) {
        Ok(labels) if labels.iter().all(host_chars) => {}
        _ => return Err(invalid(format!("{host:?} is not a valid host name"))),
    }
    // The names to try (glibc `res_search`): with the search domains unless the name is
    // absolute (trailing dot); the name as given first when it has enough dots.
    let mut names = vec![name.to_string()];
    if !host.ends_with('.') {
        let searched = cfg
            .search
            .iter()
            .map(|d| format!("{name}.{}", d.trim_matches('.')))
            .filter(|n| wire::labels(n).is_ok());
        if name.matches('.').count() >= cfg.ndots {
            names.extend(searched);
        } else {
            names.splice(0..0, searched);
        }
    }
    // A name that does not exist, or a server failure, moves on to the next candidate;
    // anything else (silence, no route) ends the search. The first "not found" is what
    // is reported when every candidate fails.
    let mut first_not_found = None;
    let mut last_err = None;
    for n in &names {
        match resolve_name(stack, &cfg, n).await {
            Ok(a) => return Ok(a),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                first_not_found.get_or_insert(e);
            }
            Err(e) if e.kind() == io::ErrorKind::Other => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(first_not_found
        .or(last_err)
        .unwrap_or_else(|| invalid(format!("{host:?} is not a valid host name"))))
}

/// Resolves one fully spelled `name` (already checked): from the cache, else by asking
/// the servers.
async fn resolve_name(stack: &Stack, cfg: &DnsConfig, name: &str) -> io::Result<Vec<Ipv4Addr>> {
    let host = name;
    let key = name.to_ascii_lowercase();
    if let Some(answer) = stack.dns_cache(|c| c.get(&key, Instant::now())) {
        return answer.result(host);
    }
    if cfg.servers.is_empty() {
        return Err(invalid(format!(
            "cannot resolve {host:?}: no DNS server configured (StackBuilder::dns or Stack::set_dns)"
        )));
    }
    let sock = match cfg.use_tcp {
        true => None,
        false => Some(UdpSocket::bind_with(stack, "0.0.0.0:0").await?),
    };
    let mut query = Vec::with_capacity(64);
    let mut buf = vec![0u8; 1500];
    let mut last_err = None;
    for _ in 0..cfg.attempts.max(1) {
        for server in &cfg.servers {
            // EDNS(0) when configured; a format error to it: once more without (RFC 6891
            // 7).
            let mut edns = cfg.edns0.then_some(wire::EDNS_UDP_SIZE);
            let got = loop {
                let got = ask_server(
                    stack,
                    sock.as_ref(),
                    *server,
                    name,
                    edns,
                    &mut query,
                    &mut buf,
                    cfg.timeout,
                )
                .await;
                match got {
                    Ok(r) if edns.is_some() && r.rcode == wire::RCODE_FORMERR => {
                        tracing::debug!(
                            "DNS: {server} refused EDNS(0) for {name:?}; asking without"
                        );
                        edns = None;
                    }
                    got => break got,
                }
            };
            let answer = match got {
                Ok(r) if r.rcode == RCODE_NXDOMAIN => Some((
                    Answer::NoSuchName(*server),
                    r.negative_ttl,
                    cfg.max_negative_ttl,
                )),
                Ok(r) if r.rcode == 0 && !r.addrs.is_empty() => {
                    Some((Answer::Addrs(r.addrs), Some(r.ttl), cfg.max_ttl))
                }
                Ok(r) if r.rcode == 0 && !r.truncated => Some((
                    Answer::NoAddress(*server),
                    r.negative_ttl,
                    cfg.max_negative_ttl,
                )),
                Ok(r) => {
                    last_err = Some(io::Error::other(format!(
                        "{server} answered {host:?} with rcode {}{}",
                        r.rcode,
                        if r.truncated { ", truncated" } else { "" }
                    )));
                    None
                }
                Err(e) => {
                    last_err = Some(e);
                    None
                }
            };
            let Some((answer, ttl, max)) = answer else {
                continue;
            };
            // Kept for its TTL within the configured bound; a negative answer without
            // an SOA not at all (RFC 2308 5).
            let keep = ttl.map_or(Duration::ZERO, |t| {
                max.min(Duration::from_secs(u64::from(t)))
            });
            if !keep.is_zero() {
                let now = Instant::now();
                let a = answer.clone();
                stack.dns_cache(|c| c.put(key, a, now + keep, now));
            }
            return answer.result(host);
        }
    }
    // The last thing that went wrong, with its kind: `TimedOut` for silence, `Other` for
    // a server failure, the send error's own kind (`NetworkUnreachable`, ...).
    let kind = last_err
        .as_ref()
        .map_or(io::ErrorKind::TimedOut, io::Error::kind);
    Err(io::Error::new(
        kind,
        format!(
            "cannot resolve {host:?}: {}",
            last_err.map_or_else(|| "no answer".to_string(), |e| e.to_string())
        ),
    ))
}

/// Asks `server` over TCP (RFC 7766: the query, then the answer, each behind its
/// two-byte length, on a connection of its own): connecting, sending and the answer
/// within `timeout`. An answer that does not match the query is an error (`InvalidData`).
async fn ask_tcp(
    stack: &Stack,
    server: SocketAddrV4,
    id: u16,
    name: &str,
    query: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let exchange = async {
        // Through `TcpSocket`: `TcpStream::connect_with` resolves names, through here.
        let mut s = TcpSocket::new_v4_with(stack)?
            .connect(server.into())
            .await?;
        let mut msg = Vec::with_capacity(2 + query.len());
        msg.extend_from_slice(&(query.len() as u16).to_be_bytes());
        msg.extend_from_slice(query);
        s.write_all(&msg).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut answer).await?;
        wire::parse_response(&answer, id, name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("over TCP to {server}: {e}"),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer over TCP from {server}"),
        )),
    }
}

/// Waits up to `timeout` for `server`'s answer to query `id`; datagrams from elsewhere
/// or that do not answer this query are dropped (RFC 5452: a spoofed answer must match
/// the address, port, id and question).
/// One query for `name` to `server` (with an EDNS(0) record advertising `edns` bytes when
/// given): over UDP on `sock`, and again over TCP when the answer comes back truncated;
/// over TCP only without a socket. `query` and `buf` are scratch space.
#[allow(clippy::too_many_arguments)]
async fn ask_server(
    stack: &Stack,
    sock: Option<&UdpSocket>,
    server: SocketAddrV4,
    name: &str,
    edns: Option<u16>,
    query: &mut Vec<u8>,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<Response> {
    // A fresh id per query: an answer to an earlier one is not taken.
    let id = (crate::builder::random_u64() & 0xffff) as u16;
    query.clear();
    wire::build_query_edns(id, name, edns, query).map_err(|e| invalid(e.to_string()))?;
    let Some(sock) = sock else {
        return ask_tcp(stack, server, id, name, query, timeout).await;
    };
    // The poll form: `send_to` itself resolves names, through this function.
    let to = std::net::SocketAddr::V4(server);
    std::future::poll_fn(|cx| sock.poll_send_to(cx, query, to)).await?;
    match ask(sock, server, id, name, buf, timeout).await {
        // Cut to fit a datagram: asked again over TCP (RFC 7766 5). When that fails, the
        // addresses the cut answer holds are still usable.
        Ok(cut) if cut.truncated => match ask_tcp(stack, server, id, name, query, timeout).await {
            Ok(full) => Ok(full),
            Err(e) if !cut.addrs.is_empty() => {
                tracing::debug!(
                    "DNS: {name:?} truncated by {server}, TCP failed ({e}); \
                     using the {} addresses of the truncated answer",
                    cut.addrs.len()
                );
                Ok(cut)
            }
            Err(e) => Err(e),
        },
        got => got,
    }
}

async fn ask(
    sock: &UdpSocket,
    server: SocketAddrV4,
    id: u16,
    name: &str,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A malformed message from the server's address may be a spoofer's: keep waiting for
    // the real answer, and say what was seen if none comes.
    let mut bad = None;
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv_from(buf)).await;
        let (n, from) = match got {
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    match bad {
                        Some(e) => format!("no usable answer from {server} ({e})"),
                        None => format!("no answer from {server}"),
                    },
                ))
            }
            // An ICMP error about the query (port unreachable, ...) is not reported on
            // an unconnected socket; other receive errors end this server's turn.
            Ok(r) => r?,
        };
        if from != std::net::SocketAddr::V4(server) {
            continue;
        }
        match wire::parse_response(buf.get(..n).unwrap_or_default(), id, name) {
            Ok(r) => return Ok(r),
            Err(DnsError::NotOurs) => {}
            Err(e) => bad = Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_drops_the_soonest_to_expire() {
        let now = Instant::now();
        let ip = |i: usize| Answer::Addrs(vec![Ipv4Addr::from(i as u32)]);
        let mut c = DnsCache::default();
        for i in 0..CACHE_ENTRIES {
            c.put(
                format!("n{i}"),
                ip(i),
                now + Duration::from_secs(10 + i as u64),
                now,
            );
        }
        assert_eq!(c.len(), CACHE_ENTRIES);
        // Full: the entry closest to expiry (n0) makes room.
        c.put("new".into(), ip(9999), now + Duration::from_secs(5), now);
        assert_eq!(c.len(), CACHE_ENTRIES);
        assert_eq!(c.get("n0", now), None);
        assert_eq!(c.get("n1", now), Some(ip(1)));
        assert_eq!(c.get("new", now), Some(ip(9999)));
        // Expired entries go first when it is full again (new at 5 s, n1 at 11 s, n2 at
        // 12 s), and are not served.
        let later = now + Duration::from_secs(12);
        c.put("newer".into(), ip(7), later + Duration::from_secs(1), later);
        assert_eq!(c.len(), CACHE_ENTRIES - 2);
        assert_eq!(c.get("n1", later), None);
        assert_eq!(c.get("n3", later), Some(ip(3)));
        assert_eq!(c.get("n200", later), Some(ip(200)));
    }

    #[test]
    fn hosts_files_are_read_like_etc_hosts() {
        let mut cfg = DnsConfig::default();
        cfg.add_hosts(
            "127.0.0.1 localhost\n\
             # a comment line\n\
             10.1.2.3\tdb.internal  DB   # the database\n\
             ::1 ip6-localhost\n\
             10.1.2.4 db.internal. cache\n\
             999.1.1.1 broken\n\
             10.1.2.5 bad..name ok\n",
        );
        let get = |n: &str| cfg.hosts.get(n).cloned().unwrap_or_default();
        assert_eq!(
            get("db.internal"),
            vec![Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 1, 2, 4)]
        );
        assert_eq!(get("db"), vec![Ipv4Addr::new(10, 1, 2, 3)]);
        assert_eq!(get("cache"), vec![Ipv4Addr::new(10, 1, 2, 4)]);
        assert_eq!(get("ok"), vec![Ipv4Addr::new(10, 1, 2, 5)]);
        assert_eq!(get("localhost"), vec![Ipv4Addr::LOCALHOST]);
        for absent in ["ip6-localhost", "broken", "bad..name", "a"] {
            assert!(!cfg.hosts.contains_key(absent), "{absent}");
        }
        let e = cfg
            .read_hosts_file("/nonexistent/ustack/hosts")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/ustack/hosts"), "{e}");
    }

    #[test]
    fn resolv_conf_is_read_like_glibc() {
        let mut cfg = DnsConfig::default();
        cfg.servers
            .push(SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 53));
        cfg.add_resolv_conf(
            "; a comment\n\
             # another\n\
             domain first.test\n\
             nameserver 10.0.0.1 # trailing comment\n\
             nameserver 2001:db8::1\n\
             nameserver not-an-address\n\
             nameserver 10.0.0.2\n\
             nameserver 10.0.0.3\n\
             nameserver 10.0.0.4\n\
             search corp.test. bad..domain lab.test\n\
             options ndots:40 timeout:0 attempts:9 use-vc edns0 rotate\n\
             sortlist 10.0.0.0/8\n",
        );
        let ns = |d: u8| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, d), 53);
        // Servers given before stay first; three from the file, the fourth ignored.
        assert_eq!(
            cfg.servers,
            [
                SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 53),
                ns(1),
                ns(2),
                ns(3)
            ]
        );
        // The last search/domain line wins; names DNS cannot carry are dropped.
        assert_eq!(cfg.search, ["corp.test", "lab.test"]);
        // Options clamped as glibc clamps them.
        assert_eq!(cfg.ndots, 15);
        assert_eq!(cfg.timeout, Duration::from_secs(1));
        assert_eq!(cfg.attempts, 5);
        assert!(cfg.use_tcp);
        let mut cfg = DnsConfig::default();
        cfg.add_resolv_conf("search a.test\ndomain b.test\noptions timeout:3 attempts:1\n");
        assert_eq!(cfg.search, ["b.test"]);
        assert_eq!((cfg.timeout, cfg.attempts), (Duration::from_secs(3), 1));
        assert!(cfg.servers.is_empty() && !cfg.use_tcp);
        let e = cfg
            .read_resolv_conf("/nonexistent/ustack/resolv.conf")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string().contains("/nonexistent/ustack/resolv.conf"),
            "{e}"
        );
    }
}
