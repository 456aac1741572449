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

async fn stack_on(tap: String) -> Result<Stack, String> {
    Stack::builder()
        .tun_with(TunOptions {
            name: tap,
            up: true,
            tap: Some(STACK_MAC),
            ..Default::default()
        })
        .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
        .build()
        .await
        .map_err(|e| format!("stack: {e}"))
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
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "the ustack side never became ready".to_string())?;
        let to: SocketAddr = format!("{STACK_IP}:{PORT}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut s = StdStream::connect_timeout(&to, Duration::from_secs(10))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
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
        let stack = stack_on(tap).await?;
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
/// carrier, and the stack its address.
#[test]
fn a_tap_attached_to_a_running_stack_is_reachable() {
    require_root!();
    let net = tap_net("tapadd");
    const PORT: u16 = 9401;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let client = net.ns.thread(move || -> Result<Vec<u8>, String> {
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "the ustack side never became ready".to_string())?;
        let to: SocketAddr = format!("{STACK_IP}:{PORT}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut s = StdStream::connect_timeout(&to, Duration::from_secs(10))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
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
