//! `StackBuilder`: devices, addresses, routes and settings, then `build().await`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use ustack_ipv4::{Ipv4Cidr, Ipv4Config};
use ustack_netdev::fault::{FaultConfig, FaultInjector};
use ustack_netdev::pcap::PcapCapture;
use ustack_netdev::tun::{TunDevice, TunOptions};
use ustack_netdev::{DevId, NetDevice};
use ustack_socket::{NetCore, NetCoreConfig};
use ustack_tcp::TcpConfig;
use ustack_udp::UdpConfig;

use crate::dns::DnsConfig;
use crate::driver::Driver;
use crate::stack::{add_route_locked, DevSlot, RxKick, Shared, Signal, Stack, State};

enum DevSource {
    Tun(TunOptions),
    Device(Box<dyn NetDevice>),
}

enum Wrap {
    Fault(FaultConfig),
    Pcap(PathBuf),
}

struct DevSpec {
    source: DevSource,
    addrs: Vec<Ipv4Cidr>,
    mtu: Option<usize>,
    wraps: Vec<Wrap>,
}

/// How long [`StackBuilder::build`] waits for a TUN device that is up to be running.
const TUN_RUNNING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds a [`Stack`]: attach devices, give them addresses, add routes, tune the protocol
/// settings, then [`build`](StackBuilder::build) spawns the driver on the current tokio
/// runtime (current-thread and multi-thread both work).
///
/// `addr`, `mtu`, `fault` and `pcap` apply to the most recently added device.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let stack = ustack::Stack::builder()
///     .tun("tun0")
///     .addr("10.0.0.2/24".parse()?)
///     .gateway("10.0.0.1".parse()?)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct StackBuilder {
    devices: Vec<DevSpec>,
    routes: Vec<(Ipv4Cidr, Option<Ipv4Addr>)>,
    gateway: Option<Ipv4Addr>,
    ip: Ipv4Config,
    tcp: TcpConfig,
    udp: UdpConfig,
    secret: Option<[u8; 16]>,
    dns: DnsConfig,
    error: Option<io::Error>,
}

impl fmt::Debug for StackBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackBuilder")
            .field("devices", &self.devices.len())
            .field("routes", &self.routes)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StackBuilder {
    /// An empty builder (same as [`Stack::builder`]).
    pub fn new() -> Self {
        StackBuilder {
            devices: Vec::new(),
            routes: Vec::new(),
            gateway: None,
            ip: Ipv4Config::default(),
            tcp: TcpConfig::default(),
            udp: UdpConfig::default(),
            secret: None,
            dns: DnsConfig::default(),
            error: None,
        }
    }

    fn last(&mut self, what: &str) -> Option<&mut DevSpec> {
        if self.devices.is_empty() && self.error.is_none() {
            self.error = Some(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("StackBuilder::{what} needs a device first (call .tun() or .device())"),
            ));
        }
        self.devices.last_mut()
    }

    /// Attaches the TUN device `name`, creating it if it does not exist (needs
    /// `CAP_NET_ADMIN`), and brings it up. The kernel side's address is left as it is; use
    /// [`tun_with`](Self::tun_with) to set it.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder().tun("tun0").addr("10.0.0.2/24".parse().unwrap()).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn tun(self, name: &str) -> Self {
        self.tun_with(TunOptions {
            name: name.to_string(),
            up: true,
            ..TunOptions::default()
        })
    }

    /// Attaches the TAP device `name` (Ethernet frames; created if it does not exist, and
    /// brought up), with a random locally administered Ethernet address for the stack
    /// (a fixed one: [`tun_with`](Self::tun_with) and [`TunOptions::tap`]). The stack
    /// answers ARP for its addresses on it and resolves next hops with ARP
    /// ([`Stack::neighbours`](crate::Stack::neighbours) lists them, like `ip neigh`).
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder().tap("tap0").addr("10.0.0.2/24".parse().unwrap()).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn tap(self, name: &str) -> Self {
        let mac = ustack_netdev::MacAddr::local_from_seed(random_u64());
        self.tun_with(TunOptions {
            name: name.to_string(),
            up: true,
            tap: Some(mac),
            ..TunOptions::default()
        })
    }

    /// Attaches a TUN device with explicit options (MTU, the kernel side's address,
    /// [offloads](TunOptions::offload)).
    pub fn tun_with(mut self, opts: TunOptions) -> Self {
        self.devices.push(DevSpec {
            source: DevSource::Tun(opts),
            addrs: Vec::new(),
            mtu: None,
            wraps: Vec::new(),
        });
        self
    }

    /// Attaches any device, e.g. one end of a [`MemLink`](ustack_netdev::mem::MemLink) pair.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use ustack::netdev::mem::{MemLink, MemLinkConfig};
    /// let (a, b) = MemLink::pair(MemLinkConfig::default());
    /// let s1 = ustack::Stack::builder().device(a).addr("10.0.0.1/24".parse().unwrap()).build().await?;
    /// let s2 = ustack::Stack::builder().device(b).addr("10.0.0.2/24".parse().unwrap()).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn device(mut self, dev: impl NetDevice) -> Self {
        let dev: Box<dyn NetDevice> = Box::new(dev);
        self.devices.push(DevSpec {
            source: DevSource::Device(dev),
            addrs: Vec::new(),
            mtu: None,
            wraps: Vec::new(),
        });
        self
    }

    /// Gives the most recently added device an address with its prefix; adds the local and
    /// connected routes (Linux: `ip addr add 10.0.0.2/24 dev tun0`). May be repeated.
    pub fn addr(mut self, cidr: Ipv4Cidr) -> Self {
        if let Some(d) = self.last("addr") {
            d.addrs.push(cidr);
        }
        self
    }

    /// Sets the MTU of the most recently added device (for TUN: the device's MTU; for other
    /// devices: the MTU the stack uses on it).
    pub fn mtu(mut self, mtu: usize) -> Self {
        if let Some(d) = self.last("mtu") {
            d.mtu = Some(mtu);
            if let DevSource::Tun(o) = &mut d.source {
                o.mtu = Some(mtu);
            }
        }
        self
    }

    /// Opens the most recently added TUN device with offloads (default off; see
    /// [`TunOptions::offload`]): the kernel hands over TCP super-segments of up to 64 KiB
    /// and partial checksums (`IFF_VNET_HDR`, `TUN_F_CSUM | TUN_F_TSO4`), so a bulk
    /// transfer from a kernel socket costs one read(2) per super-segment instead of one
    /// per 1500-byte packet. Same as `tun_with(TunOptions { offload: true, .. })`. An error
    /// at [`build`](Self::build) when the most recent device is not a TUN.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder()
    ///     .tun("tun0")
    ///     .offload(true)
    ///     .addr("10.0.0.2/24".parse().unwrap())
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn offload(self, on: bool) -> Self {
        self.tun_option("offload", |o| o.offload = on)
    }

    /// Reads the most recently added TUN (or TAP) device on a thread of its own (default
    /// off; see [`TunOptions::rx_thread`], Linux: threaded NAPI): the thread only does the
    /// read(2)s, so they overlap with the stack's protocol work and writes. More receive
    /// throughput where a second CPU is free, at the cost of that CPU's time and of a
    /// thread hand-off in latency. Same as `tun_with(TunOptions { rx_thread: true, .. })`.
    /// An error at [`build`](Self::build) when the most recent device is not a TUN, or
    /// also has [offloads](Self::offload).
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder()
    ///     .tun("tun0")
    ///     .rx_thread(true)
    ///     .addr("10.0.0.2/24".parse().unwrap())
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn rx_thread(self, on: bool) -> Self {
        self.tun_option("rx_thread", |o| o.rx_thread = on)
    }

    /// Sets an option of the most recently added device, which must be a TUN (otherwise
    /// the error `build` returns).
    fn tun_option(mut self, what: &str, set: impl FnOnce(&mut TunOptions)) -> Self {
        let mut not_tun = false;
        if let Some(d) = self.last(what) {
            match &mut d.source {
                DevSource::Tun(o) => set(o),
                DevSource::Device(_) => not_tun = true,
            }
        }
        if not_tun && self.error.is_none() {
            self.error = Some(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("StackBuilder::{what} applies to TUN devices only"),
            ));
        }
        self
    }

    /// Wraps the most recently added device in a fault injector (loss, delay, ...).
    pub fn fault(mut self, cfg: FaultConfig) -> Self {
        if let Some(d) = self.last("fault") {
            d.wraps.push(Wrap::Fault(cfg));
        }
        self
    }

    /// Captures the most recently added device's traffic to a pcap file.
    pub fn pcap(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if let Some(d) = self.last("pcap") {
            d.wraps.push(Wrap::Pcap(path));
        }
        self
    }

    /// Adds a default route via `gw` (Linux: `ip route add default via GW`).
    pub fn gateway(mut self, gw: Ipv4Addr) -> Self {
        self.gateway = Some(gw);
        self
    }

    /// Adds a route to `dst`, via `gateway` or directly on the first device.
    pub fn route(mut self, dst: Ipv4Cidr, gateway: Option<Ipv4Addr>) -> Self {
        self.routes.push((dst, gateway));
        self
    }

    /// TCP settings (Linux: the `net.ipv4.tcp_*` sysctls).
    pub fn tcp_config(mut self, cfg: TcpConfig) -> Self {
        self.tcp = cfg;
        self
    }

    /// UDP settings.
    pub fn udp_config(mut self, cfg: UdpConfig) -> Self {
        self.udp = cfg;
        self
    }

    /// IPv4/ICMP settings.
    pub fn ip_config(mut self, cfg: Ipv4Config) -> Self {
        self.ip = cfg;
        self
    }

    /// Adds a DNS server (port 53) for host names given to `TcpStream::connect`,
    /// `UdpSocket::connect` and `lookup_host` (Linux: a `nameserver` line of
    /// `/etc/resolv.conf`). May be repeated; servers are asked in order. Without one,
    /// resolving a name fails with `InvalidInput`. See [`crate::dns`].
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let stack = ustack::Stack::builder()
    ///     .tun("tun0")
    ///     .addr("10.0.0.2/24".parse().unwrap())
    ///     .gateway("10.0.0.1".parse().unwrap())
    ///     .dns("10.0.0.1".parse().unwrap())
    ///     .build()
    ///     .await?;
    /// let stream = ustack::net::TcpStream::connect_with(&stack, "example.com:80").await?;
    /// # Ok(()) }
    /// ```
    pub fn dns(mut self, server: Ipv4Addr) -> Self {
        self.dns
            .servers
            .push(std::net::SocketAddrV4::new(server, 53));
        self
    }

    /// Adds a search domain (`resolv.conf` `search`; see [`DnsConfig::search`]): a name
    /// without dots, such as `db`, is then also tried as `db.<domain>`.
    pub fn dns_search(mut self, domain: &str) -> Self {
        self.dns.search.push(domain.to_string());
        self
    }

    /// Reads a hosts file (`/etc/hosts` format; for instance `/etc/hosts` itself) into the
    /// resolver's fixed names ([`DnsConfig::hosts`]), which are answered without asking a
    /// server. Not read by default: the stack's network is not necessarily the host's. A
    /// file that cannot be read makes [`build`](Self::build) fail, saying which.
    pub fn hosts_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        if let Err(e) = self.dns.read_hosts_file(path) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Reads a `resolv.conf` file (for instance `/etc/resolv.conf`) into the resolver's
    /// configuration with [`DnsConfig::add_resolv_conf`]: its name servers are added
    /// after those given so far with [`dns`](Self::dns), its `search` line replaces the
    /// search domains, its `options` set `ndots`, `timeout`, `attempts` and `use-vc`.
    /// Not read by default: the stack's network is not necessarily the host's (a local
    /// caching resolver at `127.0.0.53` is not reachable through a TUN device). A file
    /// that cannot be read makes [`build`](Self::build) fail, saying which.
    pub fn resolv_conf(mut self, path: impl AsRef<std::path::Path>) -> Self {
        if let Err(e) = self.dns.read_resolv_conf(path) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// The secret keying ISNs, ephemeral ports and SYN cookies (random by default; fix it
    /// to make a test repeat exactly).
    pub fn secret(mut self, secret: [u8; 16]) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Opens the devices, configures addresses and routes, and spawns the driver task on
    /// the current tokio runtime. A TUN device that is up is waited for (at most 2 s)
    /// until the kernel sends into it (`TunDevice::is_running`), so the stack is reachable
    /// when it is returned.
    ///
    /// # Panics
    /// Outside a tokio runtime (like `tokio::spawn`).
    pub async fn build(self) -> io::Result<Stack> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let secret = self.secret.unwrap_or_else(random_secret);
        let mut core = NetCore::new(NetCoreConfig {
            ip: self.ip,
            tcp: self.tcp,
            udp: self.udp,
            secret,
        });
        let mut slots = Vec::new();
        for (i, spec) in self.devices.into_iter().enumerate() {
            let id = DevId(u16::try_from(i).map_err(|_| io::Error::other("too many devices"))?);
            let mut dev: Box<dyn NetDevice> = match spec.source {
                DevSource::Tun(opts) => {
                    let tun = TunDevice::open(opts)?;
                    // A TUN that is up but not yet running drops what the kernel sends
                    // into it (see `TunDevice::is_running`): wait for it, briefly.
                    if tun.is_up() && !tun.wait_running(TUN_RUNNING_WAIT).await {
                        tracing::warn!(
                            dev = tun.name(),
                            "TUN device is up but not running after {TUN_RUNNING_WAIT:?}"
                        );
                    }
                    Box::new(tun)
                }
                DevSource::Device(d) => d,
            };
            for w in spec.wraps {
                dev = match w {
                    Wrap::Fault(cfg) => Box::new(FaultInjector::new(dev, cfg)),
                    Wrap::Pcap(path) => Box::new(PcapCapture::new(dev, path)?),
                };
            }
            if i == 0 {
                core.set_local_dev(id);
            }
            slots.push(attach(&mut core, id, dev, &spec.addrs, spec.mtu));
        }
        let mut state = State::new(core, slots);
        for (dst, gw) in self.routes {
            add_route_locked(&mut state, dst, gw, None)?;
        }
        if let Some(gw) = self.gateway {
            let default: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
            add_route_locked(&mut state, default, Some(gw), None)?;
        }
        let signal = Arc::new(Signal::default());
        let shared = Arc::new_cyclic(|weak| Shared {
            state: Mutex::new(state),
            signal: signal.clone(),
            rx_waker: Waker::from(Arc::new(RxKick {
                shared: weak.clone(),
                signal: signal.clone(),
            })),
            driver: Mutex::new(None),
            ping_ident: (random_u64() & 0xffff) as u16,
            dns: Mutex::new(self.dns),
            dns_cache: Mutex::default(),
            lock_waiters: Mutex::default(),
        });
        let driver = Driver::new(Arc::downgrade(&shared), signal);
        let handle = tokio::spawn(driver);
        *shared.driver.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Stack { shared })
    }
}

pub(crate) fn random_u64() -> u64 {
    // RandomState is seeded from the OS per process (and varied per instance).
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x7573_7461_636b);
    h.finish()
}

fn random_secret() -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&random_u64().to_le_bytes());
    s[8..].copy_from_slice(&random_u64().to_le_bytes());
    s
}

/// Registers device `dev` as `id` with `core` (Linux `register_netdevice` and the
/// addresses' `inet_insert_ifa`): its addresses with their routes, at the device's MTU
/// (or `mtu` when lower), its transmit offload and its link layer.
pub(crate) fn attach(
    core: &mut NetCore,
    id: DevId,
    dev: Box<dyn NetDevice>,
    addrs: &[Ipv4Cidr],
    mtu: Option<usize>,
) -> DevSlot {
    // The device's own MTU bounds what the stack may send on it.
    let mtu = mtu.map_or_else(|| dev.mtu(), |m| m.min(dev.mtu()));
    tracing::info!(
        dev = dev.name(),
        id = id.0,
        mtu,
        ?addrs,
        "ustack device attached"
    );
    core.set_dev_name(id, dev.name());
    for cidr in addrs {
        core.add_interface(id, dev.name(), *cidr, mtu);
    }
    core.set_tso_max(id, dev.tso_max());
    if let ustack_netdev::Link::Ethernet(mac) = dev.link() {
        core.ip.set_ethernet(id, mac);
    }
    DevSlot {
        inline: dev.rx_inline(),
        dev,
        id,
        alive: true,
        mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack_netdev::mem::{MemLink, MemLinkConfig};

    #[test]
    fn offload_sets_the_tun_option() {
        let b = StackBuilder::new().tun("tun9").offload(true);
        assert!(b.error.is_none());
        assert!(matches!(&b.devices[0].source, DevSource::Tun(o) if o.offload));
        let b = StackBuilder::new().tun("tun9");
        assert!(matches!(&b.devices[0].source, DevSource::Tun(o) if !o.offload));
    }

    #[tokio::test]
    async fn offload_on_a_non_tun_device_is_an_error() {
        let (a, _b) = MemLink::pair(MemLinkConfig::default());
        let e = StackBuilder::new()
            .device(a)
            .offload(true)
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = StackBuilder::new().offload(true).build().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// `mtu` on a device built without an address is kept: `Stack::mtu` reports it and
    /// an address added later takes it; `set_mtu` may raise it up to the device's own.
    #[tokio::test]
    async fn a_builder_mtu_without_addresses_is_kept() {
        let (a, _b) = MemLink::pair(MemLinkConfig::default());
        let stack = StackBuilder::new()
            .device(a)
            .mtu(1300)
            .build()
            .await
            .unwrap();
        assert_eq!(stack.mtu("veth0").unwrap(), 1300);
        stack
            .add_address("veth0", "10.3.0.1/24".parse().unwrap())
            .unwrap();
        let st = stack.lock();
        let id = st.dev_id(b"veth0").unwrap();
        assert_eq!(st.core.ip.dev_mtu(id), Some(1300));
        drop(st);
        stack.set_mtu("veth0", 1500).unwrap();
        assert_eq!(stack.mtu("veth0").unwrap(), 1500);
    }

    #[tokio::test]
    async fn rx_thread_sets_the_tun_option_and_needs_a_tun() {
        let b = StackBuilder::new().tun("tun9").rx_thread(true);
        assert!(b.error.is_none());
        assert!(matches!(&b.devices[0].source, DevSource::Tun(o) if o.rx_thread && !o.offload));
        let (a, _b) = MemLink::pair(MemLinkConfig::default());
        let e = StackBuilder::new()
            .device(a)
            .rx_thread(true)
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("rx_thread"), "{e}");
    }
}
