//! ustack on a TAP device (Ethernet frames) against the Linux kernel: ARP both ways (the
//! kernel learns ustack's Ethernet address from ustack's answer, ustack the kernel's from
//! its own request), TCP in both directions, ping, and a connect to an address nobody
//! answers failing with "host unreachable" after three ARP requests.
//!
//! Each test makes its own namespace with a persistent TAP device (`ip tuntap add mode
//! tap`), removed on drop, also on failure.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream};
use ustack::{MacAddr, NeighState, Stack, TunOptions};
use ustack_integration_tests::{
    block_on_in, require_root, stack_cidr, NetNs, TunNet, HOST_IP, PREFIX, STACK_IP,
};

/// ustack's Ethernet address in these tests.
const STACK_MAC: MacAddr = MacAddr([0x02, 0x55, 0x53, 0x54, 0x00, 0x02]);

/// A namespace with a TAP device `ust0`: kernel side HOST_IP/24, link up.
fn tap_net(tag: &str) -> TunNet {
    let ns = NetNs::new(tag);
    let tun = "ust0".to_string();
    ns.sh(&format!(
        "ip tuntap add dev {tun} mode tap && ip link set {tun} mtu 1500 && \
         ip addr add {HOST_IP}/{PREFIX} dev {tun} && ip link set {tun} up"
    ));
    TunNet { ns, tun }
}

/// The kernel side's Ethernet address (`ip -br link`).
fn kernel_mac(net: &TunNet) -> MacAddr {
    let out = net.ns.sh(&format!("ip -br link show {}", net.tun));
    out.split_whitespace()
        .find_map(|w| w.parse::<MacAddr>().ok())
        .unwrap_or_else(|| panic!("no link address in {out:?}"))
}

/// A stack on TAP `tap` with STACK_MAC, and STACK_IP when `with_addr`.
async fn stack_on(tap: String, with_addr: bool) -> Result<Stack, String> {
    let mut b = Stack::builder().tun_with(TunOptions {
        name: tap,
        up: true,
        tap: Some(STACK_MAC),
        ..Default::default()
    });
    if with_addr {
        b = b.addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?);
    }
    b.build().await.map_err(|e| format!("stack: {e}"))
}

/// A kernel client's connection to STACK_IP:`port`, made once the ustack side says it is
/// ready, with `read_timeout` on reads.
fn connect_when_ready(
    ready: &std::sync::mpsc::Receiver<()>,
    port: u16,
    read_timeout: Duration,
) -> Result<StdStream, String> {
    ready
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the ustack side never became ready".to_string())?;
    let to: SocketAddr = format!("{STACK_IP}:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let s = StdStream::connect_timeout(&to, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

/// Kernel client -> ustack echo server over the TAP device, 4 MiB; then the kernel's
/// neighbour entry for ustack holds ustack's address, and ustack's for the kernel the
/// kernel's; the kernel pings ustack.
#[test]
fn kernel_client_reaches_ustack_over_ethernet() {
    require_root!();
    let net = tap_net("tapin");
    let kmac = kernel_mac(&net);
    const PORT: u16 = 9400;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let tap = net.tun.clone();
    let client = net.ns.thread(move || -> Result<String, String> {
        let mut s = connect_when_ready(&ready_rx, PORT, Duration::from_secs(20))?;
        let data = pattern(4 << 20);
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let writer = std::thread::spawn(move || w.write_all(&data).map_err(|e| e.to_string()));
        let mut back = vec![0u8; 4 << 20];
        s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
        writer.join().map_err(|_| "writer panicked")??;
        if back != pattern(4 << 20) {
            return Err("echoed data differ".into());
        }
        // The kernel's neighbour entry for ustack, while the TAP is still attached (a
        // TAP without a reader loses its carrier, and the kernel its entries).
        let neigh = std::process::Command::new("ip")
            .args(["neigh", "show", STACK_IP, "dev", &tap])
            .output()
            .map_err(|e| format!("ip neigh: {e}"))?;
        let _ = done_tx.send(());
        Ok(String::from_utf8_lossy(&neigh.stdout).into_owned())
    });
    let res = block_on_in(&net, move |tap| async move {
        let stack = stack_on(tap, true).await?;
        let l = TcpListener::bind_with(&stack, SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))
            .await
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let (mut s, peer) = tokio::time::timeout(Duration::from_secs(20), l.accept())
            .await
            .map_err(|_| "no connection".to_string())?
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut echoed = 0usize;
        while echoed < 4 << 20 {
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .map_err(|_| format!("stalled after {echoed} bytes"))?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
            echoed += n;
        }
        // Wait for the client's check before the stack goes.
        let deadline = Instant::now() + Duration::from_secs(20);
        while done_rx.try_recv().is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok((peer, echoed, stack.neighbours(), stack.stats().arp))
    });
    let (peer, echoed, neighbours, arp) = res.unwrap();
    let neigh = client.join().expect("client thread").unwrap();
    assert_eq!(peer.ip().to_string(), HOST_IP);
    assert_eq!(echoed, 4 << 20);
    // ustack learnt the kernel from the kernel's request and answered it.
    assert!(arp.requests_in >= 1 && arp.replies_out >= 1, "{arp:?}");
    let k = neighbours
        .iter()
        .find(|n| n.addr.to_string() == HOST_IP)
        .unwrap_or_else(|| panic!("no entry for the kernel: {neighbours:?}"));
    assert_eq!(k.mac, Some(kmac), "{neighbours:?}");
    assert_ne!(k.state, NeighState::Failed);
    // The kernel's entry for ustack has ustack's address.
    assert!(neigh.contains(&STACK_MAC.to_string()), "{neigh:?}");
}

/// ustack connects to a kernel server (resolving the kernel with its own request), pings
/// it, and a connect to an address on the link that nobody answers fails with "host
/// unreachable" after about three seconds (three requests, as Linux).
#[test]
fn ustack_reaches_the_kernel_and_gives_up_on_a_silent_address() {
    require_root!();
    let net = tap_net("tapout");
    let kmac = kernel_mac(&net);
    let server = net
        .ns
        .within(|| StdListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("kernel listener"));
    let port = server.local_addr().expect("addr").port();
    let srv = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let (mut s, _) = server.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).map_err(|e| e.to_string())?;
        s.write_all(b"bye").map_err(|e| e.to_string())?;
        Ok(got)
    });
    let res = block_on_in(&net, move |tap| async move {
        // `StackBuilder::tap`: a random Ethernet address for the stack.
        let stack = Stack::builder()
            .tap(&tap)
            .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
            .build()
            .await
            .map_err(|e| format!("stack: {e}"))?;
        let host: Ipv4Addr = HOST_IP.parse().map_err(|e| format!("{e}"))?;
        let mut s = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect_with(&stack, (host, port)),
        )
        .await
        .map_err(|_| "connect hung".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
        let data = pattern(1 << 20);
        s.write_all(&data).await.map_err(|e| e.to_string())?;
        s.shutdown().await.map_err(|e| e.to_string())?;
        let mut bye = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut bye))
            .await
            .map_err(|_| "no answer".to_string())?
            .map_err(|e| e.to_string())?;
        let rtt = stack
            .ping(host, Duration::from_secs(5))
            .await
            .map_err(|e| format!("ping: {e}"))?;
        let t0 = Instant::now();
        let silent: Ipv4Addr = "10.88.0.77".parse().map_err(|e| format!("{e}"))?;
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            TcpStream::connect_with(&stack, (silent, 80)),
        )
        .await
        .map_err(|_| "connect to a silent address hung".to_string())?
        .err()
        .ok_or("connect to a silent address succeeded")?;
        Ok((
            bye,
            rtt,
            err.kind(),
            t0.elapsed(),
            stack.neighbours(),
            stack.stats().arp,
        ))
    });
    let (bye, _rtt, kind, took, neighbours, arp) = res.unwrap();
    let got = srv.join().expect("server thread").unwrap();
    assert!(
        got == pattern(1 << 20),
        "kernel got {} bytes, or different ones",
        got.len()
    );
    assert_eq!(bye, b"bye");
    assert_eq!(kind, std::io::ErrorKind::HostUnreachable);
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&took),
        "{took:?}"
    );
    let k = neighbours
        .iter()
        .find(|n| n.addr.to_string() == HOST_IP)
        .unwrap_or_else(|| panic!("no entry for the kernel: {neighbours:?}"));
    assert_eq!(k.mac, Some(kmac));
    assert!(arp.requests_out >= 4 && arp.resolve_failed >= 1, "{arp:?}");
}

/// `echo_server --tap` (the examples' flag): the kernel pings it and talks to it with
/// `nc`; its Ethernet address is 02:00 and the bytes of its IPv4 address.
#[test]
fn the_examples_run_on_a_tap_device() {
    require_root!();
    let net = tap_net("tapex");
    let server = net.stack("echo_server", &["--tap"]);
    let ping = net.ns.sh(&format!("ping -c 2 -W 5 {STACK_IP}"));
    assert!(ping.contains("2 received"), "{ping}");
    let out = net.ns.sh(&format!(
        "printf 'hello over ethernet\\n' | nc -N -w 5 {STACK_IP} 7"
    ));
    assert_eq!(out, "hello over ethernet\n");
    let ip: Ipv4Addr = STACK_IP.parse().expect("STACK_IP");
    let o = ip.octets();
    let mac = MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]]);
    let neigh = net
        .ns
        .sh(&format!("ip neigh show {STACK_IP} dev {}", net.tun));
    assert!(neigh.contains(&mac.to_string()), "{neigh:?}");
    let (clean, log) = server.terminate(Duration::from_secs(10));
    assert!(clean, "echo_server did not exit cleanly:\n{log}");
}

/// A TAP device attached to a stack that is already running (`Stack::add_device`): the
/// driver starts polling it, and a kernel client reaches a listener on its address.
/// Detached again (`Stack::remove_device`), it is closed: the kernel's side loses its
/// carrier, and the stack its address. The TAP is read by a thread of its own
/// (`TunOptions::rx_thread`), which must have ended and closed its descriptor by the time
/// `remove_device` returns.
#[test]
fn a_tap_attached_to_a_running_stack_is_reachable() {
    require_root!();
    let net = tap_net("tapadd");
    const PORT: u16 = 9401;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let client = net.ns.thread(move || -> Result<Vec<u8>, String> {
        let mut s = connect_when_ready(&ready_rx, PORT, Duration::from_secs(10))?;
        s.write_all(b"late device").map_err(|e| e.to_string())?;
        let mut got = [0u8; 11];
        s.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
        Ok(got.to_vec())
    });
    let res = block_on_in(&net, move |tap| async move {
        // A stack on an unrelated in-memory link first.
        let (a, _b) = ustack::netdev::mem::MemLink::pair(Default::default());
        let stack = Stack::builder()
            .device(a)
            .addr("10.99.0.1/24".parse().map_err(|e| format!("{e:?}"))?)
            .build()
            .await
            .map_err(|e| format!("stack: {e}"))?;
        let dev = ustack::netdev::tun::TunDevice::open(TunOptions {
            name: tap.clone(),
            up: true,
            tap: Some(STACK_MAC),
            rx_thread: true,
            ..Default::default()
        })
        .map_err(|e| format!("open: {e}"))?;
        stack
            .add_device(dev, &[stack_cidr().parse().map_err(|e| format!("{e:?}"))?])
            .map_err(|e| format!("add_device: {e}"))?;
        let l = TcpListener::bind_with(&stack, SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))
            .await
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(20), l.accept())
            .await
            .map_err(|_| "no connection".to_string())?
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 11];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
        // Until the client has its answer.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // This thread is in the test's namespace: `ip` sees the TAP's kernel side.
        let link = || {
            std::process::Command::new("ip")
                .args(["-o", "link", "show", &tap])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .map_err(|e| format!("ip link: {e}"))
        };
        let before = link()?;
        stack
            .remove_device(&tap)
            .map_err(|e| format!("remove_device: {e}"))?;
        let after = link()?;
        if stack.addresses().iter().any(|(d, _)| *d == tap) {
            return Err(format!(
                "{tap} still has addresses: {:?}",
                stack.addresses()
            ));
        }
        Ok((before, after))
    });
    let (before, after) = res.unwrap();
    assert_eq!(
        client.join().expect("client thread").unwrap(),
        b"late device"
    );
    assert!(!before.contains("NO-CARRIER"), "{before}");
    assert!(
        after.contains("NO-CARRIER"),
        "the TAP was not closed: {after}"
    );
}

/// DHCP against a real server: dnsmasq on the kernel side of the TAP hands ustack a lease
/// (address, router, DNS server), ustack uses it to reach a kernel listener, a
/// DHCPINFORM from the leased address gets the same options, and the release removes the
/// lease from dnsmasq's lease file.
#[test]
fn ustack_takes_a_dhcp_lease_from_dnsmasq() {
    require_root!();
    ustack_integration_tests::require_tool!("dnsmasq");
    let net = tap_net("tapdhcp");
    let (dnsmasq, leases) = start_dnsmasq(&net);
    let leasefile = leases.display().to_string();
    const PORT: u16 = 9402;
    let listener = net.ns.thread(|| -> Result<SocketAddr, String> {
        let l = StdListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).map_err(|e| e.to_string())?;
        l.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (mut s, peer) = l.accept().map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        s.write_all(&b).map_err(|e| e.to_string())?;
        Ok(peer)
    });
    let lf = leasefile.clone();
    let res = block_on_in(&net, move |tap| async move {
        let stack = stack_on(tap.clone(), false).await?;
        let dhcp = stack
            .dhcp(
                &tap,
                ustack::dhcp::DhcpConfig {
                    timeout: Duration::from_secs(30),
                    host_name: Some("ustack-test".into()),
                    preferred_addr: Some(Ipv4Addr::new(10, 88, 0, 142)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("dhcp: {e}"))?;
        let lease = dhcp.lease().ok_or("no lease")?;
        let in_file = std::fs::read_to_string(&lf).unwrap_or_default();
        let mut s = TcpStream::connect_with(&stack, (HOST_IP, PORT))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"dhcp").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        let dns = stack.dns();
        let routes: Vec<String> = stack
            .routes()
            .iter()
            .filter(|r| r.kind == ustack::RouteKind::Static)
            .map(|r| format!("{} {:?} {:?}", r.dst, r.gateway, stack.device_name(r.dev)))
            .collect();
        let mtu = stack.mtu(&tap).map_err(|e| e.to_string())?;
        // DHCPINFORM from the leased address: the same configuration, without a lease.
        let info = stack
            .dhcp_inform(
                &tap,
                ustack::dhcp::DhcpConfig {
                    timeout: Duration::from_secs(15),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("inform: {e}"))?;
        dhcp.release().await.map_err(|e| format!("release: {e}"))?;
        // dnsmasq rewrites its lease file once it has the release.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = std::fs::read_to_string(&lf).unwrap_or_default();
        let left = stack
            .routes()
            .iter()
            .filter(|r| r.kind == ustack::RouteKind::Static)
            .count();
        let mtu_after = stack.mtu(&tap).map_err(|e| e.to_string())?;
        Ok((
            lease,
            in_file,
            dns,
            stack.addresses(),
            after,
            (routes, mtu, left, mtu_after),
            info,
        ))
    });
    let log = dnsmasq.terminate(Duration::from_secs(5)).1;
    let _ = std::fs::remove_file(&leases);
    let (lease, in_file, dns, addrs, after, (routes, mtu, left, mtu_after), info) =
        res.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let peer = listener.join().expect("listener thread").unwrap();
    let a = lease.addr.addr();
    // The address asked for, free and in dnsmasq's range.
    assert_eq!(lease.addr.to_string(), "10.88.0.142/24", "{lease:?}");
    assert_eq!(lease.routers, [HOST_IP.parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(lease.server.to_string(), HOST_IP);
    assert_eq!(lease.lease_time, Some(Duration::from_secs(600)));
    assert_eq!(lease.domain.as_deref(), Some("dhcp.test"));
    assert_eq!(dns.servers.len(), 1);
    assert_eq!(dns.search, ["dhcp.test"]);
    // Option 121 (RFC 3442) in place of the router option's default route, option 26 as
    // the device's MTU; both gone with the release.
    let host: Ipv4Addr = HOST_IP.parse().unwrap();
    let dsts: Vec<String> = lease.routes.iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(dsts, ["192.168.77.0/24", "0.0.0.0/0"], "{lease:?}");
    assert!(lease.routes.iter().all(|r| r.gateway == Some(host)));
    let tap_name = Some(net.tun.clone());
    assert_eq!(
        routes,
        [
            format!("192.168.77.0/24 Some({host}) {tap_name:?}"),
            format!("0.0.0.0/0 Some({host}) {tap_name:?}")
        ],
    );
    assert_eq!((lease.mtu, mtu), (Some(1400), 1400));
    assert_eq!((left, mtu_after), (0, 1500));
    // dnsmasq's answer to the DHCPINFORM carries the same options.
    assert_eq!(info.server, Some(host), "{info:?}");
    assert_eq!(info.dns, [host]);
    assert_eq!(info.routes, lease.routes);
    assert_eq!(
        (info.mtu, info.domain.as_deref()),
        (Some(1400), Some("dhcp.test"))
    );
    // The kernel saw the connection from the leased address; dnsmasq recorded the lease
    // (with our Ethernet address and host name) and dropped it on release.
    assert_eq!(peer.ip().to_string(), a.to_string());
    assert!(
        in_file.contains(&a.to_string()) && in_file.contains(&STACK_MAC.to_string()),
        "lease file: {in_file:?}\n{log}"
    );
    assert!(in_file.contains("ustack-test"), "{in_file:?}");
    assert!(
        !after.contains(&a.to_string()),
        "not released: {after:?}\n{log}"
    );
    assert!(addrs.is_empty(), "{addrs:?}");
}

/// INIT-REBOOT against dnsmasq: a stack that took a lease and went away without giving
/// it back (a reboot) asks for the address again directly and gets it from one
/// DHCPREQUEST (dnsmasq logs no discovery for it); an address on another network is
/// refused and discovery finds one in range.
#[test]
fn init_reboot_gets_the_address_back_from_dnsmasq() {
    require_root!();
    ustack_integration_tests::require_tool!("dnsmasq");
    let net = tap_net("tapreboot");
    let (dnsmasq, leases) = start_dnsmasq(&net);
    let res = block_on_in(&net, move |tap| async move {
        let cfg = |addr, init_reboot| ustack::dhcp::DhcpConfig {
            timeout: Duration::from_secs(30),
            preferred_addr: Some(addr),
            init_reboot,
            arp_check: false,
            ..Default::default()
        };
        let lease_on = |addr, init_reboot| {
            let tap = tap.clone();
            async move {
                let stack = stack_on(tap.clone(), false).await?;
                let d = stack
                    .dhcp(&tap, cfg(addr, init_reboot))
                    .await
                    .map_err(|e| format!("dhcp: {e}"))?;
                let a = d.lease().ok_or("no lease")?.addr.addr();
                // The stack goes away without a release; its device is free again
                // once the driver has ended.
                drop(d);
                drop(stack);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<Ipv4Addr, String>(a)
            }
        };
        let first = lease_on(Ipv4Addr::new(10, 88, 0, 131), false).await?;
        let again = lease_on(first, true).await?;
        let elsewhere = lease_on(Ipv4Addr::new(10, 99, 0, 5), true).await?;
        Ok((first, again, elsewhere))
    });
    let log = dnsmasq.terminate(Duration::from_secs(5)).1;
    let _ = std::fs::remove_file(&leases);
    let (first, again, elsewhere) = res.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(first, Ipv4Addr::new(10, 88, 0, 131), "{log}");
    assert_eq!(again, first, "{log}");
    let o = elsewhere.octets();
    assert!(
        o[..3] == [10, 88, 0] && (100..=150).contains(&o[3]),
        "{elsewhere}\n{log}"
    );
    // Between the first lease's acknowledgement and the refusal: requests only.
    let first_ack = log.find("DHCPACK(").unwrap_or_else(|| panic!("{log}"));
    let nak = log
        .find("DHCPNAK(")
        .unwrap_or_else(|| panic!("no DHCPNAK\n{log}"));
    let reboot = log.get(first_ack..nak).unwrap_or_else(|| panic!("{log}"));
    assert!(
        reboot.contains("DHCPREQUEST(") && !reboot.contains("DHCPDISCOVER("),
        "{log}"
    );
}

/// dnsmasq serving DHCP (no DNS) on the TAP's kernel side: 10.88.0.100-150/24 for 10
/// minutes, router and DNS server HOST_IP, domain dhcp.test, classless static routes
/// 192.168.77.0/24 and 0.0.0.0/0 through HOST_IP, interface MTU 1400. Returns it and its lease
/// file (the caller removes the file).
fn start_dnsmasq(net: &TunNet) -> (ustack_integration_tests::Proc, std::path::PathBuf) {
    let leases = std::env::temp_dir().join(format!(
        "ustack-dhcp-{}-{}.leases",
        std::process::id(),
        net.ns.name()
    ));
    let p = net.ns.spawn(
        "dnsmasq",
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            &format!("--interface={}", net.tun),
            "--except-interface=lo",
            "--dhcp-range=10.88.0.100,10.88.0.150,255.255.255.0,10m",
            &format!("--dhcp-option=option:router,{HOST_IP}"),
            &format!("--dhcp-option=option:dns-server,{HOST_IP}"),
            "--dhcp-option=option:domain-name,dhcp.test",
            &format!(
                "--dhcp-option=option:classless-static-route,192.168.77.0/24,{HOST_IP},0.0.0.0/0,{HOST_IP}"
            ),
            "--dhcp-option=option:mtu,1400",
            &format!("--dhcp-leasefile={}", leases.display()),
            "--pid-file=",
            "--log-dhcp",
            "--log-facility=-",
        ],
    );
    (p, leases)
}

/// `echo_server --tap --dhcp --dhcp-lease-file F`: the example takes its address from
/// dnsmasq, says so in its ready line, answers the kernel there and keeps the lease in F;
/// started again, it gets the same address back by INIT-REBOOT (no second discovery).
#[test]
fn an_example_takes_its_address_by_dhcp() {
    require_root!();
    ustack_integration_tests::require_tool!("dnsmasq");
    ustack_integration_tests::require_tool!("nc");
    let net = tap_net("tapdhcpex");
    let (dnsmasq, leases) = start_dnsmasq(&net);
    let lease_file = std::env::temp_dir().join(format!(
        "ustack-example-{}-{}.lease",
        std::process::id(),
        net.ns.name()
    ));
    let lf = lease_file.display().to_string();
    // Started twice with the same lease file: the second start asks for the address
    // of the first directly (INIT-REBOOT) and gets it.
    let run = || {
        let server = net.ns.spawn(
            "echo_server",
            ustack_integration_tests::example_bin("echo_server"),
            &[
                "--tun",
                &net.tun,
                "--tap",
                "--dhcp",
                "--dhcp-lease-file",
                &lf,
            ],
        );
        let ready = server.wait_for("ready on", Duration::from_secs(40));
        let addr = ready
            .split("ready on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
            .unwrap_or_else(|| panic!("no address in {ready:?}"));
        let out = net
            .ns
            .sh(&format!("printf 'leased\\n' | nc -N -w 5 {addr} 7"));
        let (clean, log) = server.terminate(Duration::from_secs(10));
        (addr, out, clean, log)
    };
    let (addr, out, clean, log) = run();
    let kept = std::fs::read_to_string(&lease_file).unwrap_or_default();
    let (addr2, out2, clean2, log2) = run();
    let dlog = dnsmasq.terminate(Duration::from_secs(5)).1;
    let _ = std::fs::remove_file(&leases);
    let _ = std::fs::remove_file(&lease_file);
    assert!(
        (100..=150).contains(&addr.octets()[3]),
        "{addr}\n{log}\n{dlog}"
    );
    assert_eq!(out, "leased\n", "{log}");
    assert!(log.contains("dhcp lease"), "{log}");
    assert!(clean, "echo_server did not exit cleanly:\n{log}");
    assert!(kept.contains(&format!("addr {addr}/24")), "{kept:?}");
    assert_eq!(addr2, addr, "{log2}\n{dlog}");
    assert_eq!(out2, "leased\n", "{log2}");
    assert!(clean2, "echo_server did not exit cleanly:\n{log2}");
    // One discovery in all: the second start only asked for the address.
    assert_eq!(dlog.matches("DHCPDISCOVER(").count(), 1, "{dlog}");
}

/// A TUN device deleted under a running stack (`ip link del`): the deletion wakes no
/// reader, but the next write fails (`EBADFD`), and the stack detaches the device with
/// its address and routes, as Linux does when a device is unregistered under its users.
#[test]
fn a_tun_deleted_under_the_stack_is_detached() {
    tun_deleted_under_the_stack(false);
}

/// The same with the TUN read by a thread of its own, which the detached device ends.
#[test]
fn a_tun_read_by_its_own_thread_is_detached_when_deleted() {
    tun_deleted_under_the_stack(true);
}

fn tun_deleted_under_the_stack(rx_thread: bool) {
    require_root!();
    let net = TunNet::new(if rx_thread { "tundelrx" } else { "tundel" });
    let res = block_on_in(&net, move |tun| async move {
        let stack = Stack::builder()
            .tun(&tun)
            .rx_thread(rx_thread)
            .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
            .build()
            .await
            .map_err(|e| format!("stack: {e}"))?;
        if stack.addresses().is_empty() {
            return Err("no address to begin with".into());
        }
        // This thread is in the test's namespace.
        let out = std::process::Command::new("ip")
            .args(["link", "del", &tun])
            .output()
            .map_err(|e| format!("ip link del: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip link del: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // Something to send: a connect, whose SYN (and its retransmission timer) finds
        // the device gone.
        let st2 = stack.clone();
        let connect = tokio::spawn(async move {
            TcpStream::connect_with(&st2, (HOST_IP, 9))
                .await
                .map(|_| ())
        });
        let t0 = Instant::now();
        while !stack.addresses().is_empty() {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(format!("still attached: {:?}", stack.addresses()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // (As in Linux, the connect itself goes on retrying until its timeout.)
        connect.abort();
        Ok((stack.routes(), stack.stats().devices.len()))
    });
    let (routes, devices) = res.unwrap();
    assert!(routes.is_empty(), "{routes:?}");
    assert_eq!(devices, 0);
}
