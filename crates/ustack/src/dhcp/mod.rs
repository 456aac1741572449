//! A DHCP client (RFC 2131) for Ethernet devices: [`Stack::dhcp`] finds a server, takes
//! the address it offers, configures the stack with it (address and subnet, default
//! route or the classless static routes of RFC 3442, DNS servers, interface MTU) and keeps the lease in the background, renewing it at T1 with its
//! server, rebinding at T2 with any server, and starting over when the lease is lost.
//! Linux leaves this to user space (`dhclient`, `systemd-networkd`); the kernel's own
//! boot-time client (`net/ipv4/ipconfig.c`) is the model for sending from 0.0.0.0 on an
//! unconfigured device.
//!
//! The client speaks through an ordinary UDP socket on port 68, bound to the device and
//! allowed to broadcast: the IP layer routes a limited broadcast through a device
//! without an address from 0.0.0.0, and replies come back as broadcasts (the client sets
//! the broadcast flag) or, once configured, to the leased address.
//!
//! A granted address is first probed with ARP (RFC 2131 4.4.1, RFC 5227) and declined
//! when another host uses it ([`DhcpConfig::arp_check`]). While it is in use, the stack
//! defends it against another host that claims it (RFC 5227 2.4, at most once per 10 s);
//! a claim that comes within 10 s of a defence ends the lease: the address goes at once,
//! the server is told (DHCPDECLINE), and discovery starts over 10 s later.
//!
//! [`Stack::dhcp_inform`] asks for configuration only (DHCPINFORM) for a device whose
//! address was set by other means.
//!
//! A program that kept an earlier lease's address can have the client ask for it back at
//! once (INIT-REBOOT, RFC 2131 3.2: [`DhcpConfig::init_reboot`]), or let the client keep
//! its lease in a file and do that by itself after a restart ([`DhcpConfig::lease_file`]).

pub mod wire;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::net::UdpSocket;
use crate::{Ipv4Cidr, MacAddr, Stack};
use ustack_socket::{AddressFamily, SockType};
use wire::{MsgType, Reply, Request};

/// The client's UDP port.
pub const CLIENT_PORT: u16 = 68;
/// The servers' UDP port.
pub const SERVER_PORT: u16 = 67;
/// Lease length assumed when an acknowledgement names none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// Leases shorter than this are taken to be this long (a server handing out leases of
/// a few seconds would otherwise keep the client in a tight loop).
pub const MIN_LEASE: Duration = Duration::from_secs(10);
/// Least wait before a renewal or rebinding request is repeated (RFC 2131 4.4.5).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);
/// Requests sent in REQUESTING before starting over with a new discovery.
const REQUEST_TRIES: u32 = 4;
/// Requests sent in INIT-REBOOT (after 4 and 8 s, ±1 s) before discovery takes over.
const REBOOT_TRIES: u32 = 2;

/// How [`Stack::dhcp`] behaves.
#[derive(Clone, Debug)]
pub struct DhcpConfig {
    /// How long the first lease may take before `dhcp` fails with `TimedOut` (default
    /// 60 s). Discovery repeats after 4, 8, 16, 32 and then every 64 s (each ±1 s).
    pub timeout: Duration,
    /// Host name sent to the server (option 12), if any.
    pub host_name: Option<String>,
    /// Client identifier (option 61); default: hardware type 1 and the device's Ethernet
    /// address.
    pub client_id: Option<Vec<u8>>,
    /// Add the lease's routes (default true): its classless static routes (option 121,
    /// RFC 3442) when it has them, through this device (a route with router 0.0.0.0 is
    /// on the link), and then, as RFC 3442 asks, not its router option; otherwise a
    /// default route through its first router.
    pub use_router: bool,
    /// Make the lease's DNS servers the resolver's, and its domain name the search
    /// domain (default true); the previous ones come back when the lease goes.
    pub use_dns: bool,
    /// Use the server's interface MTU (option 26) on the device (default true), within
    /// 576 (smaller values are ignored, as by `dhcpcd`: a server could otherwise make
    /// every TCP segment tiny) and the device's own MTU; the previous MTU comes back
    /// when the lease goes. Connections opened before keep their MSS.
    pub use_mtu: bool,
    /// Before using a new address, probe for it with ARP (RFC 2131 4.4.1, RFC 5227:
    /// two probes a second apart, then a second of listening; default true): if another
    /// host answers, the address is declined (DHCPDECLINE) and discovery starts over 10 s
    /// later. Also, while the lease is held, give it up the same way when another host
    /// keeps claiming the address after the stack defended it (RFC 5227 2.4 (b); see
    /// [`Stack::address_conflicts`]). Without it the address is kept whatever happens
    /// (the stack still defends it).
    pub arp_check: bool,
    /// An address to ask for (option 50 in each DISCOVER), such as the one an earlier
    /// lease had: servers give it again when they can (default none). A program that
    /// wants its address back across restarts keeps [`DhcpLease::addr`] and passes it
    /// here (with [`init_reboot`](Self::init_reboot) to ask for it first), or lets
    /// [`lease_file`](Self::lease_file) do both.
    pub preferred_addr: Option<Ipv4Addr>,
    /// With [`preferred_addr`](Self::preferred_addr), first ask for that address
    /// directly (INIT-REBOOT, RFC 2131 3.2 and 4.3.2: a broadcast DHCPREQUEST naming it
    /// and no server), as a client that rebooted with a lease still valid does (default
    /// false). A server's DHCPACK gives the lease without a discovery round (the ARP
    /// check still runs); a DHCPNAK (the address is wrong for this network) drops the
    /// address, and discovery follows without it; no answer after two requests (4 and
    /// 8 s, each ±1 s; a server that does not know the client keeps silent) leaves it to
    /// discovery, which still suggests the address.
    pub init_reboot: bool,
    /// A file to keep the lease in across restarts (default none), like `dhclient`'s
    /// lease file: written (replaced whole) whenever a lease is taken or renewed,
    /// removed when it is given back ([`DhcpClient::release`]), refused or lost; kept
    /// when the client just stops (the lease is still the client's). At start, an
    /// address from it whose lease has not run out is asked for again by INIT-REBOOT,
    /// unless [`preferred_addr`](Self::preferred_addr) names one already. A file that is
    /// missing, unreadable or damaged only means discovery as usual (a damaged one is
    /// reported with a warning). The format is text, one `key value` per line: `addr`
    /// (address/prefix), `server`, `expires` (seconds since 1970; no line for an
    /// infinite lease).
    pub lease_file: Option<PathBuf>,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            timeout: Duration::from_secs(60),
            host_name: None,
            client_id: None,
            use_router: true,
            use_dns: true,
            use_mtu: true,
            arp_check: true,
            preferred_addr: None,
            init_reboot: false,
            lease_file: None,
        }
    }
}

/// A lease as the server granted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpLease {
    /// The address with its subnet (from the subnet mask option, else the address
    /// class's).
    pub addr: Ipv4Cidr,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// Routers, in the server's order (the first becomes the default gateway unless
    /// [`routes`](Self::routes) has any).
    pub routers: Vec<Ipv4Addr>,
    /// Classless static routes (option 121, RFC 3442), in the server's order.
    pub routes: Vec<DhcpRoute>,
    /// DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// Domain name.
    pub domain: Option<String>,
    /// The interface MTU the server suggests (applied as [`DhcpConfig::use_mtu`] says).
    pub mtu: Option<u16>,
    /// How long the lease lasts from when it was granted; `None`: for ever.
    pub lease_time: Option<Duration>,
    /// When renewal starts (T1).
    pub renew_after: Option<Duration>,
    /// When rebinding starts (T2).
    pub rebind_after: Option<Duration>,
}

/// A classless static route of a lease (RFC 3442).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpRoute {
    /// Destination network.
    pub dst: Ipv4Cidr,
    /// The router; `None` (0.0.0.0 in the option): the destination is on the link.
    pub gateway: Option<Ipv4Addr>,
}

/// Configuration a server gave in answer to a DHCPINFORM ([`Stack::dhcp_inform`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpInfo {
    /// The server that answered (its server identifier).
    pub server: Option<Ipv4Addr>,
    /// Routers, in the server's order.
    pub routers: Vec<Ipv4Addr>,
    /// Classless static routes (option 121, RFC 3442).
    pub routes: Vec<DhcpRoute>,
    /// DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// Domain name.
    pub domain: Option<String>,
    /// Interface MTU.
    pub mtu: Option<u16>,
}

impl DhcpInfo {
    fn from_reply(r: &Reply) -> DhcpInfo {
        DhcpInfo {
            server: r.server_id,
            routers: r.routers.clone(),
            routes: routes_of(r),
            dns: r.dns.clone(),
            domain: r.domain.clone(),
            mtu: r.mtu,
        }
    }
}

/// The classless static routes of a reply.
fn routes_of(r: &Reply) -> Vec<DhcpRoute> {
    r.classless_routes
        .iter()
        .flatten()
        .filter_map(|&(dst, len, gw)| {
            Some(DhcpRoute {
                dst: Ipv4Cidr::new(dst, len).ok()?,
                gateway: (!gw.is_unspecified()).then_some(gw),
            })
        })
        .collect()
}

/// The address and expiry (seconds since 1970; `None`: never) in a lease file's text;
/// `None` when it has no usable address line.
fn parse_lease_file(text: &str) -> Option<(Ipv4Addr, Option<u64>)> {
    let mut addr = None;
    let mut expires = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once(' ')?;
        match key {
            "addr" => addr = Some(value.trim().parse::<Ipv4Cidr>().ok()?.addr()),
            "expires" => expires = Some(value.trim().parse::<u64>().ok()?),
            _ => {}
        }
    }
    let a = addr?;
    (!a.is_unspecified() && !a.is_broadcast() && !a.is_multicast() && !a.is_loopback())
        .then_some((a, expires))
}

/// Replaces `path` with `text`: written to `<path>.tmp`, then renamed over it.
fn write_replacing(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Smallest interface MTU taken from a server ([`DhcpConfig::use_mtu`]).
pub const MIN_DHCP_MTU: u16 = 576;

impl DhcpLease {
    /// The lease in an acknowledgement, if it grants a usable address.
    fn from_ack(r: &Reply, server: Ipv4Addr) -> Option<DhcpLease> {
        let a = r.yiaddr;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
            return None;
        }
        let prefix = r
            .subnet_mask
            .and_then(mask_len)
            .unwrap_or_else(|| class_prefix(a));
        let addr = Ipv4Cidr::new(a, prefix).ok()?;
        let (lease_time, renew_after, rebind_after) = match r.lease_secs {
            Some(u32::MAX) => (None, None, None),
            secs => {
                let lease = secs
                    .map_or(DEFAULT_LEASE, |s| Duration::from_secs(u64::from(s)))
                    .max(MIN_LEASE);
                let t2 = r
                    .t2_secs
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .filter(|t| *t < lease)
                    .unwrap_or(lease * 7 / 8);
                let t1 = r
                    .t1_secs
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .filter(|t| *t <= t2)
                    .unwrap_or((lease / 2).min(t2));
                (Some(lease), Some(t1), Some(t2))
            }
        };
        Some(DhcpLease {
            addr,
            server,
            routers: r.routers.clone(),
            routes: routes_of(r),
            dns: r.dns.clone(),
            domain: r.domain.clone(),
            mtu: r.mtu,
            lease_time,
            renew_after,
            rebind_after,
        })
    }

    /// The same configuration (timers aside).
    fn same_config(&self, o: &DhcpLease) -> bool {
        self.addr == o.addr
            && self.routers.first() == o.routers.first()
            && self.routes == o.routes
            && self.dns == o.dns
            && self.domain == o.domain
            && self.mtu == o.mtu
    }
}

/// The prefix length of a contiguous subnet mask.
fn mask_len(m: Ipv4Addr) -> Option<u8> {
    let v = u32::from(m);
    let len = v.leading_ones();
    (v.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The prefix of `a`'s address class (RFC 2131 leaves the mask to the server; without
/// one, as Linux's `ipconfig` does).
fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// What the task is told by its handle.
#[derive(Debug)]
enum Stop {
    /// Give the lease back to the server, then stop.
    Release,
}

/// The DHCP client of one device, running in the background (see [`Stack::dhcp`]). It
/// keeps the lease while this handle lives: dropping it stops the client, which takes
/// the configuration away as its task ends, shortly after (without telling the server;
/// [`release`](Self::release) does, and returns once everything is taken away).
#[derive(Debug)]
pub struct DhcpClient {
    lease: watch::Receiver<Option<DhcpLease>>,
    /// Dropped with the handle, it stops the task, which then removes what the lease
    /// configured.
    stop: Option<oneshot::Sender<Stop>>,
    task: Option<JoinHandle<()>>,
}

impl DhcpClient {
    /// The lease in use; `None` while the client looks for a new one (after the lease
    /// expired or a server refused to renew it).
    pub fn lease(&self) -> Option<DhcpLease> {
        self.lease.borrow().clone()
    }

    /// Waits until the lease changes (renewed with other settings, lost, or a new one
    /// taken) and returns it. `None` once the client has stopped.
    pub async fn changed(&mut self) -> Option<Option<DhcpLease>> {
        self.lease.changed().await.ok()?;
        Some(self.lease.borrow_and_update().clone())
    }

    /// Gives the lease back (DHCPRELEASE to its server), removes the address, route and
    /// DNS servers it brought, and stops the client.
    pub async fn release(mut self) -> io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(Stop::Release);
        }
        if let Some(t) = self.task.take() {
            t.await.map_err(io::Error::other)?;
        }
        Ok(())
    }
}

/// What a lease put into the stack, to be taken out again.
struct Applied {
    lease: DhcpLease,
    granted: Instant,
    /// The stack's address-conflict sequence number before the address was added: a
    /// conflict after it that the stack did not defend ends the lease.
    conflicts_from: u64,
    /// The routes the client added (destination and gateway, through its device).
    routes: Vec<(Ipv4Cidr, Option<Ipv4Addr>)>,
    /// The device's MTU before the lease changed it.
    mtu_before: Option<usize>,
    /// The resolver's servers and search domains before the lease replaced them.
    dns_before: Option<(Vec<SocketAddrV4>, Vec<String>)>,
}

struct Client {
    stack: Stack,
    dev: String,
    mac: MacAddr,
    cfg: DhcpConfig,
    sock: UdpSocket,
    tx: watch::Sender<Option<DhcpLease>>,
    applied: Option<Applied>,
    rng: RandomState,
    counter: u64,
    buf: Vec<u8>,
}

impl Stack {
    /// Configures Ethernet device `device` by DHCP (RFC 2131): waits for a lease (at
    /// most `cfg.timeout`), gives the device its address, adds a default route through
    /// its router and makes its DNS servers the resolver's (each as `cfg` says), and
    /// keeps the lease in the background for as long as the returned [`DhcpClient`]
    /// lives: renewed at T1 with its server, rebound at T2 with any, and replaced by a
    /// new one if it runs out or a server refuses it (meanwhile the address is gone).
    ///
    /// Errors: `ENODEV` for an unknown device, `InvalidInput` for a device without
    /// Ethernet (a TUN device carries no broadcasts), `AddrInUse` when a socket of the
    /// stack holds UDP port 68, `TimedOut` when no server granted a lease in time.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder().tap("tap0").build().await?;
    /// let dhcp = stack.dhcp("tap0", Default::default()).await?;
    /// println!("{:?}", dhcp.lease());
    /// # Ok(()) }
    /// ```
    pub async fn dhcp(&self, device: &str, cfg: DhcpConfig) -> io::Result<DhcpClient> {
        let (mut c, rx) = Client::new(self, device, cfg)?;
        let deadline = Instant::now() + c.cfg.timeout;
        c.load_lease_file();
        let first = match c.reboot(deadline).await {
            Some(x) => Some(x),
            None => c.acquire(Some(deadline)).await,
        };
        let Some((lease, granted)) = first else {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no DHCP server granted a lease on {device} within {:?}",
                    c.cfg.timeout
                ),
            ));
        };
        c.apply(lease, granted);
        // The first lease is the one returned, not a change.
        let mut rx = rx;
        rx.borrow_and_update();
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(c.run(stop_rx));
        Ok(DhcpClient {
            lease: rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Asks a DHCP server for configuration only (DHCPINFORM, RFC 2131 3.4), for a device
    /// whose address was set by other means: the reply's routers, classless static
    /// routes, DNS servers, domain and MTU, as a [`DhcpInfo`]. Nothing is applied; the
    /// caller picks what it wants ([`Stack::set_dns`], [`Stack::add_device_route`], ...).
    /// The request is broadcast from the device's first address and repeated after 4, 8,
    /// ... s within `cfg.timeout`; `cfg`'s host name and client id are sent, its `use_*`
    /// switches do not matter here.
    ///
    /// Errors: as [`dhcp`](Self::dhcp), and `InvalidInput` for a device without an
    /// address, `TimedOut` when no server answered in time.
    ///
    /// ```no_run
    /// # async fn demo(stack: ustack::Stack) -> std::io::Result<()> {
    /// let info = stack.dhcp_inform("tap0", Default::default()).await?;
    /// println!("DNS servers {:?}", info.dns);
    /// # Ok(()) }
    /// ```
    pub async fn dhcp_inform(&self, device: &str, cfg: DhcpConfig) -> io::Result<DhcpInfo> {
        let addr = self
            .addresses()
            .into_iter()
            .find(|(d, _)| d == device)
            .map(|(_, a)| a.addr())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{device} has no address to inform a DHCP server of (Stack::dhcp takes a lease)"),
                )
            })?;
        let (mut c, _rx) = Client::new(self, device, cfg)?;
        let xid = c.random() as u32;
        let msg = Request {
            ciaddr: addr,
            broadcast: false,
            ..c.request(MsgType::Inform, xid, Instant::now())
        }
        .emit();
        let deadline = Instant::now() + c.cfg.timeout;
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        let r = c
            .exchange(&msg, to, xid, u32::MAX, Some(deadline), |r| {
                r.msg_type == Some(MsgType::Ack)
            })
            .await
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no DHCP server answered a DHCPINFORM on {device} within {:?}",
                        c.cfg.timeout
                    ),
                )
            })?;
        Ok(DhcpInfo::from_reply(&r))
    }
}

impl Client {
    /// A client for Ethernet device `device` of `stack`, with its socket on port 68.
    fn new(
        stack: &Stack,
        device: &str,
        cfg: DhcpConfig,
    ) -> io::Result<(Client, watch::Receiver<Option<DhcpLease>>)> {
        let mac = match stack.dev_link(device)? {
            ustack_netdev::Link::Ethernet(mac) => mac,
            ustack_netdev::Link::RawIp => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("DHCP needs an Ethernet device; {device} carries IP packets only"),
                ))
            }
        };
        // Bound to the device first, so that clients on other devices share the port;
        // with SO_REUSEADDR, so that a client just stopped (its task still ending) does
        // not keep a new one from starting. Another holder of the port without it still
        // makes this fail with `AddrInUse`.
        let s = stack.socket(AddressFamily::INET, SockType::Dgram, 0)?;
        s.set_reuse_address(true)?;
        s.bind_device(Some(device.as_bytes()))?;
        s.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT))?;
        let sock = UdpSocket::from_socket(s)?;
        sock.set_broadcast(true)?;
        let (tx, rx) = watch::channel(None);
        let c = Client {
            stack: stack.clone(),
            dev: device.to_string(),
            mac,
            cfg,
            sock,
            tx,
            applied: None,
            rng: RandomState::new(),
            counter: 0,
            buf: vec![0; 1500],
        };
        Ok((c, rx))
    }

    fn random(&mut self) -> u64 {
        self.counter += 1;
        let mut h = self.rng.build_hasher();
        h.write_u64(self.counter);
        h.finish()
    }

    /// `d` give or take up to a second (RFC 2131 4.1).
    fn jitter(&mut self, d: Duration) -> Duration {
        let ms = self.random() % 2001;
        (d + Duration::from_millis(ms)).saturating_sub(Duration::from_secs(1))
    }

    fn request(&self, msg_type: MsgType, xid: u32, started: Instant) -> Request<'_> {
        let secs = u16::try_from(started.elapsed().as_secs()).unwrap_or(u16::MAX);
        Request {
            msg_type,
            xid,
            secs,
            broadcast: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: self.mac,
            requested_ip: None,
            server_id: None,
            host_name: self.cfg.host_name.as_deref(),
            client_id: self.cfg.client_id.as_deref(),
        }
    }

    /// Sends `msg` to `to`, then waits for a reply to `xid` that `accept` takes,
    /// repeating the message after 4, 8, 16, 32, 64, 64, ... s (±1 s) and after at most
    /// `tries` messages; never past `deadline`. Send errors (no route yet) count as
    /// sent: the wait is the same.
    async fn exchange(
        &mut self,
        msg: &[u8],
        to: SocketAddrV4,
        xid: u32,
        tries: u32,
        deadline: Option<Instant>,
        accept: impl Fn(&Reply) -> bool,
    ) -> Option<Reply> {
        let mut wait = Duration::from_secs(4);
        for _ in 0..tries {
            if let Err(e) = self.sock.send_to(msg, to).await {
                tracing::debug!(dev = %self.dev, err = %e, "dhcp: send failed");
            }
            let mut until = Instant::now() + self.jitter(wait);
            if let Some(d) = deadline {
                until = until.min(d);
            }
            if let Some(r) = self.receive(xid, until, &accept).await {
                return Some(r);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            wait = (wait * 2).min(Duration::from_secs(64));
        }
        None
    }

    /// The first reply to `xid` for our address that `accept` takes, before `until`.
    async fn receive(
        &mut self,
        xid: u32,
        until: Instant,
        accept: &impl Fn(&Reply) -> bool,
    ) -> Option<Reply> {
        loop {
            let got = tokio::time::timeout_at(until, self.sock.recv_from(&mut self.buf)).await;
            let (n, from) = match got {
                Err(_) => return None,
                Ok(Err(e)) => {
                    tracing::debug!(dev = %self.dev, err = %e, "dhcp: receive failed");
                    // The stack is gone (or the socket broken): nothing will come.
                    tokio::time::sleep_until(until).await;
                    return None;
                }
                Ok(Ok(x)) => x,
            };
            if from.port() != SERVER_PORT {
                continue;
            }
            let r = match Reply::parse(&self.buf[..n]) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(dev = %self.dev, %from, err = ?e, "dhcp: bad message");
                    continue;
                }
            };
            if r.xid == xid && r.chaddr == self.mac.0 && accept(&r) {
                return Some(r);
            }
        }
    }

    /// INIT -> SELECTING -> REQUESTING until a server grants a lease (or `deadline`).
    async fn acquire(&mut self, deadline: Option<Instant>) -> Option<(DhcpLease, Instant)> {
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        loop {
            let xid = self.random() as u32;
            let started = Instant::now();
            let mut discover = self.request(MsgType::Discover, xid, started);
            // RFC 2131 4.4.1: a DISCOVER may suggest an address (option 50).
            discover.requested_ip = self.cfg.preferred_addr;
            let discover = discover.emit();
            let offer = self
                .exchange(&discover, bcast, xid, u32::MAX, deadline, |r| {
                    r.msg_type == Some(MsgType::Offer)
                        && r.server_id.is_some()
                        && !r.yiaddr.is_unspecified()
                })
                .await;
            let offer = offer?;
            let Some(server) = offer.server_id else {
                continue;
            };
            tracing::debug!(dev = %self.dev, addr = %offer.yiaddr, %server, "dhcp: offer");
            let mut req = self.request(MsgType::Request, xid, started);
            req.requested_ip = Some(offer.yiaddr);
            req.server_id = Some(server);
            let req = req.emit();
            let answer = self
                .exchange(&req, bcast, xid, REQUEST_TRIES, deadline, |r| {
                    matches!(r.msg_type, Some(MsgType::Ack | MsgType::Nak))
                        && r.server_id.is_none_or(|s| s == server)
                })
                .await;
            match answer {
                Some(r) if r.msg_type == Some(MsgType::Ack) => {
                    match DhcpLease::from_ack(&r, server) {
                        Some(lease) if !self.in_use(lease.addr.addr()).await => {
                            return Some((lease, started));
                        }
                        Some(lease) => {
                            // Declined: the 10 s wait is the pause before discovery.
                            self.decline(xid, lease.addr.addr(), server, deadline).await;
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                return None;
                            }
                            continue;
                        }
                        None => {
                            tracing::warn!(dev = %self.dev, addr = %r.yiaddr, "dhcp: unusable lease");
                        }
                    }
                }
                Some(_) => tracing::info!(dev = %self.dev, %server, "dhcp: request refused"),
                None if deadline.is_some_and(|d| Instant::now() >= d) => return None,
                None => continue,
            }
            // Refused or unusable: start over after 1-10 s (RFC 2131 4.1's start-up
            // delay), so that a server answering every request this way cannot keep the
            // client sending as fast as it answers.
            let pause = Instant::now() + Duration::from_millis(1000 + self.random() % 9001);
            match deadline {
                Some(d) if pause >= d => return None,
                _ => tokio::time::sleep_until(pause).await,
            }
        }
    }

    /// INIT-REBOOT ([`DhcpConfig::init_reboot`]): asks for the preferred address
    /// directly. `None` when the client must discover (refused, silent, in use, or not
    /// asked for); a refused or used address is not suggested again.
    async fn reboot(&mut self, deadline: Instant) -> Option<(DhcpLease, Instant)> {
        let addr = self.cfg.preferred_addr.filter(|_| self.cfg.init_reboot)?;
        let xid = self.random() as u32;
        let started = Instant::now();
        let mut req = self.request(MsgType::Request, xid, started);
        req.requested_ip = Some(addr);
        let req = req.emit();
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        let answer = self
            .exchange(&req, bcast, xid, REBOOT_TRIES, Some(deadline), |r| {
                matches!(r.msg_type, Some(MsgType::Ack | MsgType::Nak))
            })
            .await;
        let Some(r) = answer else {
            tracing::debug!(dev = %self.dev, %addr, "dhcp: no answer to INIT-REBOOT; discovering");
            return None;
        };
        let lease = match (r.msg_type, r.server_id) {
            (Some(MsgType::Ack), Some(server)) if r.yiaddr == addr => {
                DhcpLease::from_ack(&r, server)
            }
            (Some(MsgType::Ack), _) => {
                tracing::warn!(dev = %self.dev, %addr, got = %r.yiaddr, "dhcp: unusable INIT-REBOOT answer");
                None
            }
            _ => {
                tracing::info!(dev = %self.dev, %addr, "dhcp: earlier address refused");
                None
            }
        };
        let Some(lease) = lease else {
            self.cfg.preferred_addr = None;
            return None;
        };
        if self.in_use(addr).await {
            self.cfg.preferred_addr = None;
            self.decline(xid, addr, lease.server, Some(deadline)).await;
            return None;
        }
        Some((lease, started))
    }

    /// Takes the address of an unexpired lease from [`DhcpConfig::lease_file`] as the one
    /// to ask for by INIT-REBOOT (unless the configuration names one).
    fn load_lease_file(&mut self) {
        let Some(path) = &self.cfg.lease_file else {
            return;
        };
        if self.cfg.preferred_addr.is_some() {
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(dev = %self.dev, file = %path.display(), err = %e, "dhcp: lease file not read");
                return;
            }
        };
        match parse_lease_file(&text) {
            Some((addr, expires)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if expires.is_some_and(|e| e <= now) {
                    tracing::debug!(dev = %self.dev, %addr, "dhcp: the kept lease has run out");
                    return;
                }
                tracing::debug!(dev = %self.dev, %addr, "dhcp: asking for the kept lease's address");
                self.cfg.preferred_addr = Some(addr);
                self.cfg.init_reboot = true;
            }
            None => {
                tracing::warn!(dev = %self.dev, file = %path.display(), "dhcp: damaged lease file ignored");
            }
        }
    }

    /// Writes `lease` (granted at `granted`) to the lease file, if there is one: into a
    /// file beside it, then renamed over it, so that a reader never sees half of it.
    fn save_lease(&self, lease: &DhcpLease, granted: Instant) {
        let Some(path) = &self.cfg.lease_file else {
            return;
        };
        let mut text = format!(
            "# ustack DHCP lease ({})\naddr {}\nserver {}\n",
            self.dev, lease.addr, lease.server
        );
        if let Some(life) = lease.lease_time {
            let left = life.saturating_sub(granted.elapsed());
            let expires = SystemTime::now() + left;
            let secs = expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            text.push_str(&format!("expires {secs}\n"));
        }
        if let Err(e) = write_replacing(path, &text) {
            tracing::warn!(dev = %self.dev, file = %path.display(), err = %e, "dhcp: lease file not written");
        }
    }

    /// Removes the lease file, if there is one.
    fn forget_lease(&self) {
        if let Some(path) = &self.cfg.lease_file {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dev = %self.dev, file = %path.display(), err = %e, "dhcp: lease file not removed")
                }
            }
        }
    }

    /// True when the ARP check finds `addr` in use by another host (false without the
    /// check, or when it cannot run).
    async fn in_use(&self, addr: Ipv4Addr) -> bool {
        if !self.cfg.arp_check {
            return false;
        }
        match self.stack.address_in_use(&self.dev, addr, 2).await {
            Ok(used) => used,
            Err(e) => {
                tracing::debug!(dev = %self.dev, err = %e, "dhcp: no ARP check");
                false
            }
        }
    }

    /// Tells `server` that `addr` is in use by someone else (DHCPDECLINE), then waits
    /// the 10 s RFC 2131 4.4.1 asks for (not past `deadline`).
    async fn decline(
        &mut self,
        xid: u32,
        addr: Ipv4Addr,
        server: Ipv4Addr,
        deadline: Option<Instant>,
    ) {
        tracing::warn!(dev = %self.dev, %addr, %server, "dhcp: offered address in use; declined");
        let mut m = self.request(MsgType::Decline, xid, Instant::now());
        m.requested_ip = Some(addr);
        m.server_id = Some(server);
        let m = m.emit();
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        if let Err(e) = self.sock.send_to(&m, to).await {
            tracing::debug!(dev = %self.dev, err = %e, "dhcp: decline not sent");
        }
        let mut until = Instant::now() + Duration::from_secs(10);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        tokio::time::sleep_until(until).await;
    }

    /// Puts `lease` (granted at `granted`) into the stack, replacing what an earlier one
    /// put there unless it is the same configuration.
    fn apply(&mut self, lease: DhcpLease, granted: Instant) {
        if let Some(a) = &mut self.applied {
            if a.lease.same_config(&lease) {
                a.lease = lease.clone();
                a.granted = granted;
                self.save_lease(&lease, granted);
                // Watchers hear of a renewal only when something in it changed.
                self.tx.send_if_modified(|v| {
                    let changed = v.as_ref() != Some(&lease);
                    *v = Some(lease);
                    changed
                });
                return;
            }
        }
        self.unapply();
        tracing::info!(dev = %self.dev, addr = %lease.addr, server = %lease.server,
            lease = ?lease.lease_time, "dhcp: lease");
        let conflicts_from = self.stack.conflict_seq();
        if let Err(e) = self.stack.add_address(&self.dev, lease.addr) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                tracing::warn!(dev = %self.dev, err = %e, "dhcp: address not added");
            }
        }
        // RFC 2131 4.4.1: announce the address, so that neighbours drop stale entries
        // (a server's "is it in use" ping left one unresolved in its host).
        if let Err(e) = self.stack.announce_address(&self.dev, lease.addr.addr()) {
            tracing::debug!(dev = %self.dev, err = %e, "dhcp: no announcement");
        }
        let routes = if self.cfg.use_router {
            self.add_routes(&lease)
        } else {
            Vec::new()
        };
        let mtu_before = match lease.mtu {
            Some(m) if self.cfg.use_mtu => self.set_mtu(m),
            _ => None,
        };
        let mut dns_before = None;
        if self.cfg.use_dns && !lease.dns.is_empty() {
            let mut d = self.stack.dns();
            dns_before = Some((d.servers.clone(), d.search.clone()));
            d.servers = lease
                .dns
                .iter()
                .map(|a| SocketAddrV4::new(*a, 53))
                .collect();
            if let Some(dom) = &lease.domain {
                d.search = vec![dom.clone()];
            }
            self.stack.set_dns(d);
        }
        self.save_lease(&lease, granted);
        self.applied = Some(Applied {
            lease: lease.clone(),
            granted,
            conflicts_from,
            routes,
            mtu_before,
            dns_before,
        });
        self.tx.send_replace(Some(lease));
    }

    /// Adds `lease`'s routes through the device: its classless static routes, else a
    /// default route through its first router (RFC 3442: with option 121 the router
    /// option is ignored). Returns those added (one that exists already is left alone).
    fn add_routes(&self, lease: &DhcpLease) -> Vec<(Ipv4Cidr, Option<Ipv4Addr>)> {
        let wanted: Vec<(Ipv4Cidr, Option<Ipv4Addr>)> = if lease.routes.is_empty() {
            lease
                .routers
                .first()
                .map(|&gw| (Ipv4Cidr::DEFAULT, Some(gw)))
                .into_iter()
                .collect()
        } else {
            lease.routes.iter().map(|r| (r.dst, r.gateway)).collect()
        };
        let mut added = Vec::new();
        for (dst, gw) in wanted {
            match self.stack.add_device_route(&self.dev, dst, gw) {
                Ok(()) => added.push((dst, gw)),
                Err(e) => {
                    tracing::warn!(dev = %self.dev, %dst, ?gw, err = %e, "dhcp: route not added")
                }
            }
        }
        added
    }

    /// Uses the server's MTU `m` on the device (see [`DhcpConfig::use_mtu`]); returns
    /// the MTU it replaced, when it changed it.
    fn set_mtu(&self, m: u16) -> Option<usize> {
        let before = self.stack.mtu(&self.dev).ok()?;
        if m < MIN_DHCP_MTU {
            tracing::warn!(dev = %self.dev, mtu = m, "dhcp: interface MTU below 576 ignored");
            return None;
        }
        let max = self.stack.device_max_mtu(&self.dev).ok()?;
        let mtu = usize::from(m).min(max);
        if mtu == before {
            return None;
        }
        match self.stack.set_mtu(&self.dev, mtu) {
            Ok(()) => Some(before),
            Err(e) => {
                tracing::warn!(dev = %self.dev, mtu, err = %e, "dhcp: MTU not set");
                None
            }
        }
    }

    /// Takes out what the lease put into the stack.
    fn unapply(&mut self) {
        let Some(a) = self.applied.take() else {
            return;
        };
        tracing::info!(dev = %self.dev, addr = %a.lease.addr, "dhcp: lease gone");
        for (dst, gw) in a.routes.iter().rev() {
            self.stack.remove_static_route(&self.dev, *dst, *gw);
        }
        if let Some(m) = a.mtu_before {
            if let Err(e) = self.stack.set_mtu(&self.dev, m) {
                tracing::debug!(dev = %self.dev, err = %e, "dhcp: MTU not restored");
            }
        }
        let _ = self.stack.remove_address(&self.dev, a.lease.addr);
        if let Some((servers, search)) = a.dns_before {
            let mut d = self.stack.dns();
            d.servers = servers;
            d.search = search;
            self.stack.set_dns(d);
        }
        self.tx.send_replace(None);
    }

    /// Keeps a lease until told to stop (or the handle is dropped).
    async fn run(mut self, mut stop: oneshot::Receiver<Stop>) {
        let why = tokio::select! {
            () = self.keep() => None,
            s = &mut stop => s.ok(),
        };
        let release = matches!(why, Some(Stop::Release));
        let held = self
            .applied
            .as_ref()
            .map(|a| (a.lease.server, a.lease.addr.addr()));
        if let (true, Some((server, addr))) = (release, held) {
            let xid = self.random() as u32;
            let mut m = self.request(MsgType::Release, xid, Instant::now());
            m.broadcast = false;
            m.ciaddr = addr;
            m.server_id = Some(server);
            let m = m.emit();
            if let Err(e) = self
                .sock
                .send_to(&m, SocketAddrV4::new(server, SERVER_PORT))
                .await
            {
                tracing::debug!(dev = %self.dev, err = %e, "dhcp: release not sent");
            }
        }
        if release {
            self.forget_lease();
        }
        self.unapply();
    }

    /// BOUND -> RENEWING -> REBINDING, and INIT again when the lease is lost.
    async fn keep(&mut self) {
        loop {
            if self.applied.is_none() {
                match self.acquire(None).await {
                    Some((lease, granted)) => self.apply(lease, granted),
                    None => return,
                }
            }
            let Some(a) = &self.applied else {
                continue;
            };
            let (granted, server, addr) = (a.granted, a.lease.server, a.lease.addr.addr());
            // None for an infinite lease: nothing to renew, only conflicts to watch.
            let times = match (
                a.lease.renew_after,
                a.lease.rebind_after,
                a.lease.lease_time,
            ) {
                (Some(t1), Some(t2), Some(life)) => {
                    Some((granted + t1, granted + t2, granted + life))
                }
                _ => None,
            };
            let conflicts_from = a.conflicts_from;
            let stack = self.stack.clone();
            let dev = stack
                .dev_id(self.dev.as_bytes())
                .ok()
                .filter(|_| self.cfg.arp_check);
            let lost = async {
                match dev {
                    Some(d) => stack.address_lost(d, addr, conflicts_from).await,
                    None => std::future::pending().await,
                }
            };
            let phases = async {
                let Some((t1, t2, end)) = times else {
                    return std::future::pending().await;
                };
                tokio::time::sleep_until(t1).await;
                // RENEWING: to the server that granted it, then REBINDING: to any.
                let mut outcome = None;
                for (to, until) in [(server, t2), (Ipv4Addr::BROADCAST, end)] {
                    outcome = self.renew(to, server, addr, until).await;
                    if outcome.is_some() {
                        break;
                    }
                }
                outcome
            };
            let outcome = tokio::select! {
                o = phases => o,
                () = lost => {
                    // RFC 5227 2.4 (b): another host insists on the address after our
                    // defence; stop using it at once, tell the server it is in use, and
                    // look for another lease after the 10 s RFC 2131 4.4.1 asks for.
                    tracing::warn!(dev = %self.dev, %addr, "dhcp: address conflict; lease given up");
                    self.forget_lease();
                    self.unapply();
                    let xid = self.random() as u32;
                    self.decline(xid, addr, server, None).await;
                    continue;
                }
            };
            match outcome {
                Some((Some(lease), granted)) => self.apply(lease, granted),
                Some((None, _)) => {
                    tracing::info!(dev = %self.dev, "dhcp: renewal refused");
                    self.forget_lease();
                    self.unapply();
                }
                None => {
                    tracing::info!(dev = %self.dev, "dhcp: lease expired");
                    self.forget_lease();
                    self.unapply();
                }
            }
        }
    }

    /// Asks `to` (the lease's `server`, or everyone) to extend the lease on `addr` until
    /// `until`, repeating after half the time left (at least 60 s). `Some((Some(lease), when))`
    /// for an acknowledgement, `Some((None, _))` for a refusal, `None` without answer.
    async fn renew(
        &mut self,
        to: Ipv4Addr,
        server: Ipv4Addr,
        addr: Ipv4Addr,
        until: Instant,
    ) -> Option<(Option<DhcpLease>, Instant)> {
        let xid = self.random() as u32;
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            let mut m = self.request(MsgType::Request, xid, started);
            m.broadcast = false;
            m.ciaddr = addr;
            let m = m.emit();
            if let Err(e) = self
                .sock
                .send_to(&m, SocketAddrV4::new(to, SERVER_PORT))
                .await
            {
                tracing::debug!(dev = %self.dev, err = %e, "dhcp: renewal not sent");
            }
            let next = (now + ((until - now) / 2).max(MIN_RENEW_RETRY)).min(until);
            let r = self
                .receive(xid, next, &|r: &Reply| {
                    matches!(r.msg_type, Some(MsgType::Ack | MsgType::Nak))
                })
                .await;
            if let Some(r) = r {
                if r.msg_type == Some(MsgType::Nak) {
                    return Some((None, started));
                }
                // An answer without a server identifier keeps the lease's server.
                let server = r.server_id.unwrap_or(server);
                return match DhcpLease::from_ack(&r, server) {
                    Some(l) => Some((Some(l), started)),
                    None => Some((None, started)),
                };
            }
        }
    }
}
