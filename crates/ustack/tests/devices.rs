//! Sockets bound to one of a stack's devices (`SO_BINDTODEVICE`) and pending errors
//! (`SO_ERROR`), on a stack with two in-memory links.
//!
//! The stack under test ("host") has `wan0` (10.1.0.2/24, default route via 10.1.0.1) and
//! `lan0` (10.2.0.2/24). Its peers: `wan` on the far end of `wan0` (10.1.0.1), and `lan` on
//! the far end of `lan0` (10.2.0.1, and also 10.9.0.1, an address no route of the host
//! leads to except through the default route, which goes to `wan`).

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use ustack::netdev::mem::{MemDevice, MemLink, MemLinkConfig};
use ustack::netdev::NetDevice;
use ustack::Stack;

struct Net {
    host: Stack,
    wan: Stack,
    lan: Stack,
}

fn link(a: &str, b: &str) -> MemLinkConfig {
    MemLinkConfig {
        names: (a.to_string(), b.to_string()),
        ..MemLinkConfig::default()
    }
}

async fn net() -> Net {
    let (wan0, wan_peer) = MemLink::pair(link("wan0", "wanpeer"));
    let (lan0, lan_peer) = MemLink::pair(link("lan0", "lanpeer"));
    let host = Stack::builder()
        .device(wan0)
        .addr("10.1.0.2/24".parse().unwrap())
        .device(lan0)
        .addr("10.2.0.2/24".parse().unwrap())
        .gateway("10.1.0.1".parse().unwrap())
        .secret([1; 16])
        .build()
        .await
        .unwrap();
    let wan = Stack::builder()
        .device(wan_peer)
        .addr("10.1.0.1/24".parse().unwrap())
        .secret([2; 16])
        .build()
        .await
        .unwrap();
    let lan = Stack::builder()
        .device(lan_peer)
        .addr("10.2.0.1/24".parse().unwrap())
        .addr("10.9.0.1/24".parse().unwrap())
        .secret([3; 16])
        .build()
        .await
        .unwrap();
    Net { host, wan, lan }
}

/// `f`, or a panic naming `what` if it takes over 10 s (a packet that went out the wrong
/// device would otherwise leave the test waiting for a SYN retry or a datagram for ever).
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends one byte and reads it back through an echo of it (the caller's peer echoes).
async fn round_trip(s: &mut TcpStream) {
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    within("echo", s.read_exact(&mut b)).await.unwrap();
    assert_eq!(&b, b"x");
}

/// Accepts one connection on `l` and echoes it in a task; returns the peer's address.
async fn accept_echo(l: &TcpListener) -> SocketAddr {
    let (mut s, peer) = l.accept().await.unwrap();
    tokio::spawn(async move { common::echo_conn(&mut s).await });
    peer
}

/// Connects from `from` to `to`, where `l` must be the listener that takes the
/// connection, and checks one echoed byte.
async fn connect_to(from: &Stack, to: &str, l: &TcpListener) {
    let (c, peer) = within(&format!("connect to {to}"), async {
        tokio::join!(TcpStream::connect_with(from, to), accept_echo(l))
    })
    .await;
    let mut c = c.unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    round_trip(&mut c).await;
}

/// Connects from `from` to `to` and expects a refusal (RST): no listener takes it.
async fn refused(from: &Stack, to: &str) {
    let e = within(
        &format!("refusal from {to}"),
        TcpStream::connect_with(from, to),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{to}: {e}");
}

/// A listener on `host` at 0.0.0.0:`port`, bound to device `dev` first, with
/// `SO_REUSEPORT` when asked.
fn listen_on(host: &Stack, dev: &[u8], port: u16, reuseport: bool) -> std::io::Result<TcpListener> {
    let s = TcpSocket::new_v4_with(host)?;
    s.set_reuseport(reuseport)?;
    s.bind_device(Some(dev))?;
    s.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
    s.listen(16)
}

fn tx_packets(stack: &Stack, dev: &str) -> u64 {
    let st = stack.stats();
    st.devices
        .iter()
        .find(|d| d.name == dev)
        .map(|d| d.stats.tx_packets)
        .unwrap()
}

#[tokio::test]
async fn bind_device_names_and_errors() {
    let n = net().await;
    let s = TcpSocket::new_v4_with(&n.host).unwrap();
    assert_eq!(s.device().unwrap(), None);
    s.bind_device(Some(b"lan0")).unwrap();
    assert_eq!(s.device().unwrap(), Some(b"lan0".to_vec()));
    // A trailing NUL (a C string) names the same device.
    s.bind_device(Some(b"wan0\0")).unwrap();
    assert_eq!(s.device().unwrap(), Some(b"wan0".to_vec()));
    let e = s.bind_device(Some(b"eth7")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    // The failed call left the binding alone; an empty name and None unbind.
    assert_eq!(s.device().unwrap(), Some(b"wan0".to_vec()));
    s.bind_device(Some(b"")).unwrap();
    assert_eq!(s.device().unwrap(), None);
    s.bind_device(Some(b"lan0")).unwrap();
    s.bind_device(None).unwrap();
    assert_eq!(s.device().unwrap(), None);

    let u = UdpSocket::bind_with(&n.host, "0.0.0.0:0").await.unwrap();
    u.bind_device(Some(b"lan0")).unwrap();
    assert_eq!(u.device().unwrap(), Some(b"lan0".to_vec()));
    assert_eq!(
        u.bind_device(Some(b"nope")).unwrap_err().raw_os_error(),
        Some(19)
    );

    // Two devices keeping MemLink's default names: the name is ambiguous.
    let (a, _pa) = MemLink::pair(MemLinkConfig::default());
    let (b, _pb) = MemLink::pair(MemLinkConfig::default());
    let twins = Stack::builder()
        .device(a)
        .addr("10.3.0.2/24".parse().unwrap())
        .device(b)
        .addr("10.4.0.2/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let t = TcpSocket::new_v4_with(&twins).unwrap();
    let e = t.bind_device(Some(b"veth0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn a_listener_bound_to_a_device_takes_only_that_devices_connections() {
    let n = net().await;
    let s = TcpSocket::new_v4_with(&n.host).unwrap();
    s.bind_device(Some(b"lan0")).unwrap();
    s.bind(sa("0.0.0.0:7000")).unwrap();
    let l = s.listen(16).unwrap();

    // Through wan0 the port has no listener: refused (RST), as for a closed port.
    refused(&n.wan, "10.1.0.2:7000").await;

    connect_to(&n.lan, "10.2.0.2:7000", &l).await;
}

#[tokio::test]
async fn reuseport_listeners_bound_to_different_devices_split_a_port() {
    let n = net().await;
    let on_wan = listen_on(&n.host, b"wan0", 7001, true).unwrap();
    let on_lan = listen_on(&n.host, b"lan0", 7001, true).unwrap();
    for _ in 0..4 {
        connect_to(&n.lan, "10.2.0.2:7001", &on_lan).await;
        connect_to(&n.wan, "10.1.0.2:7001", &on_wan).await;
    }
}

#[tokio::test]
async fn a_connect_bound_to_a_device_leaves_through_it() {
    let n = net().await;
    let l = TcpListener::bind_with(&n.lan, "10.9.0.1:7002")
        .await
        .unwrap();
    // The host's only route to 10.9.0.1 is the default route through wan0, whose peer
    // does not have that address; bound to lan0, the connection goes onto lan0's link.
    let wan_tx = tx_packets(&n.host, "wan0");
    let s = TcpSocket::new_v4_with(&n.host).unwrap();
    s.bind_device(Some(b"lan0")).unwrap();
    let (c, peer) = within("connect through lan0", async {
        tokio::join!(s.connect(sa("10.9.0.1:7002")), accept_echo(&l))
    })
    .await;
    let mut c = c.unwrap();
    // The source address is lan0's.
    assert_eq!(c.local_addr().unwrap().ip().to_string(), "10.2.0.2");
    assert_eq!(peer, c.local_addr().unwrap());
    round_trip(&mut c).await;
    let mut big = vec![0u8; 200_000];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let (mut r, mut w) = c.into_split();
    let sent = big.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; big.len()];
    within("echo of 200 kB", r.read_exact(&mut back))
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(back == big, "echoed bytes differ");
    assert_eq!(
        tx_packets(&n.host, "wan0"),
        wan_tx,
        "nothing left through wan0"
    );
}

#[tokio::test]
async fn a_udp_socket_bound_to_a_device_hears_only_that_device() {
    let n = net().await;
    let u = UdpSocket::bind_with(&n.host, "0.0.0.0:7003").await.unwrap();
    u.bind_device(Some(b"lan0")).unwrap();

    // From wan's side the port is closed: its connected socket gets the ICMP port
    // unreachable as its pending error (SO_ERROR), taken once.
    let from_wan = UdpSocket::bind_with(&n.wan, "0.0.0.0:0").await.unwrap();
    from_wan.connect("10.1.0.2:7003").await.unwrap();
    from_wan.send(b"via wan").await.unwrap();
    let mut err = None;
    for _ in 0..200 {
        err = from_wan.take_error().unwrap();
        if err.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = err.expect("no ICMP error reached the sender");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(from_wan.take_error().unwrap().is_none(), "taken twice");

    let from_lan = UdpSocket::bind_with(&n.lan, "10.2.0.1:0").await.unwrap();
    from_lan.send_to(b"via lan", "10.2.0.2:7003").await.unwrap();
    let mut buf = [0u8; 64];
    let (len, from) = within("datagram from lan", u.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..len], b"via lan");
    assert_eq!(from, from_lan.local_addr().unwrap());
    // Nothing from wan was queued behind it.
    assert_eq!(
        u.try_recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );

    // Sending to 10.9.0.1 (routed through wan0 when unbound) goes onto lan0's link.
    let far = UdpSocket::bind_with(&n.lan, "10.9.0.1:7004").await.unwrap();
    u.send_to(b"bound", "10.9.0.1:7004").await.unwrap();
    let (len, from) = within("datagram through lan0", far.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..len], b"bound");
    assert_eq!(from, sa("10.2.0.2:7003"));
}

#[tokio::test]
async fn take_error_reports_a_reset_once() {
    let n = net().await;
    let l = TcpListener::bind_with(&n.lan, "10.2.0.1:7005")
        .await
        .unwrap();
    let (c, a) = within("connect", async {
        tokio::join!(
            TcpStream::connect_with(&n.host, "10.2.0.1:7005"),
            l.accept()
        )
    })
    .await;
    let mut c = c.unwrap();
    let (server, _) = a.unwrap();
    assert!(c.take_error().unwrap().is_none());
    // Closing with SO_LINGER 0 sends RST.
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    within("the reset", c.readable()).await.unwrap();
    let e = c.take_error().unwrap().expect("the reset is pending");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(c.take_error().unwrap().is_none());
    // Taken, the reset is not reported again: the read sees the end of the stream.
    let mut b = [0u8; 8];
    assert_eq!(c.read(&mut b).await.unwrap(), 0);
}

#[tokio::test]
async fn listeners_bound_to_different_devices_share_a_port() {
    let n = net().await;
    let on_wan = listen_on(&n.host, b"wan0", 7006, false).unwrap();
    let on_lan = listen_on(&n.host, b"lan0", 7006, false).unwrap();
    // A third on a device that already has one, or unbound: the address is taken.
    assert_eq!(
        listen_on(&n.host, b"lan0", 7006, false).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    let unbound = TcpSocket::new_v4_with(&n.host).unwrap();
    assert_eq!(
        unbound.bind(sa("0.0.0.0:7006")).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    for _ in 0..3 {
        connect_to(&n.lan, "10.2.0.2:7006", &on_lan).await;
        connect_to(&n.wan, "10.1.0.2:7006", &on_wan).await;
    }
    // With the lan0 listener gone, lan0's connections are refused; wan0's still work.
    drop(on_lan);
    refused(&n.lan, "10.2.0.2:7006").await;
    connect_to(&n.wan, "10.1.0.2:7006", &on_wan).await;
}

#[tokio::test]
async fn udp_sockets_bound_to_different_devices_share_a_port() {
    let n = net().await;
    let bind_on = |dev: Option<&[u8]>| -> std::io::Result<UdpSocket> {
        let s = n.host.socket(
            ustack::socket::AddressFamily::INET,
            ustack::socket::SockType::Dgram,
            0,
        )?;
        s.bind_device(dev)?;
        s.bind("0.0.0.0:7007")?;
        UdpSocket::from_socket(s)
    };
    let on_wan = bind_on(Some(b"wan0")).unwrap();
    let on_lan = bind_on(Some(b"lan0")).unwrap();
    for dev in [Some(&b"lan0"[..]), None] {
        let e = bind_on(dev).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{dev:?}: {e}");
    }
    // A stream socket is not a UdpSocket.
    let t = n
        .host
        .socket(
            ustack::socket::AddressFamily::INET,
            ustack::socket::SockType::Stream,
            0,
        )
        .unwrap();
    assert_eq!(
        UdpSocket::from_socket(t).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    let from_wan = UdpSocket::bind_with(&n.wan, "0.0.0.0:0").await.unwrap();
    let from_lan = UdpSocket::bind_with(&n.lan, "10.2.0.1:0").await.unwrap();
    let mut buf = [0u8; 32];
    for round in 0..3u8 {
        from_wan
            .send_to(&[b'w', round], "10.1.0.2:7007")
            .await
            .unwrap();
        from_lan
            .send_to(&[b'l', round], "10.2.0.2:7007")
            .await
            .unwrap();
        let (len, _) = within("datagram on wan0", on_wan.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..len], &[b'w', round]);
        let (len, from) = within("datagram on lan0", on_lan.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..len], &[b'l', round]);
        // Each answers through its own device.
        on_lan.send_to(b"ack", from).await.unwrap();
        let (len, from) = within("answer", from_lan.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!((&buf[..len], from), (&b"ack"[..], sa("10.2.0.2:7007")));
    }
    assert_eq!(
        on_wan.try_recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // With the lan0 socket closed, its datagrams find no socket (the wan0 one does not
    // take them): the sender hears of it.
    drop(on_lan);
    from_lan.connect("10.2.0.2:7007").await.unwrap();
    from_lan.send(b"late").await.unwrap();
    let e = within("port unreachable", from_lan.recv(&mut buf))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

/// A "dmz0" link (Ethernet or bare IP) whose far end is a stack at 10.3.0.1/24: the
/// device for the host to attach, and that peer.
async fn dmz_link(ethernet: bool) -> (MemDevice, Stack) {
    let (dmz0, dmz_peer) = MemLink::pair(MemLinkConfig {
        ethernet,
        ..link("dmz0", "dmzpeer")
    });
    let dmz = Stack::builder()
        .device(dmz_peer)
        .addr("10.3.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    (dmz0, dmz)
}

/// A device attached while the stack runs: its subnet is routed at once, connections
/// go both ways through it (also when it carries Ethernet), and a name cannot be used
/// twice.
#[tokio::test]
async fn devices_attach_while_the_stack_runs() {
    let n = net().await;
    // A third peer on a link that does not exist yet.
    let (dmz0, dmz) = dmz_link(true).await;
    // Before: 10.3.0.1 is reached only through the default route (wan), which has no
    // such host.
    let far = TcpListener::bind_with(&dmz, "10.3.0.1:80").await.unwrap();
    n.host
        .add_device(dmz0, &["10.3.0.2/24".parse().unwrap()])
        .unwrap();
    assert!(n
        .host
        .addresses()
        .iter()
        .any(|(d, a)| d == "dmz0" && a.to_string() == "10.3.0.2/24"));
    connect_to(&n.host, "10.3.0.1:80", &far).await;
    // And back: the peer reaches the new address, answered through the new device.
    let here = TcpListener::bind_with(&n.host, "10.3.0.2:81")
        .await
        .unwrap();
    connect_to(&dmz, "10.3.0.2:81", &here).await;
    assert!(tx_packets(&n.host, "dmz0") > 0);
    assert!(n.host.neighbours().iter().any(|x| x.dev == "dmz0"));
    // The old devices are untouched.
    let l = TcpListener::bind_with(&n.lan, "10.2.0.1:82").await.unwrap();
    connect_to(&n.host, "10.2.0.1:82", &l).await;
    // A second device of the same name is refused.
    let (again, _other) = MemLink::pair(link("dmz0", "x"));
    let e = n.host.add_device(again, &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}

#[tokio::test]
async fn devices_detach_while_the_stack_runs() {
    let n = net().await;
    let attach_dmz = |host: &Stack| {
        let (dmz0, dmz_peer) = MemLink::pair(MemLinkConfig {
            ethernet: true,
            ..link("dmz0", "dmzpeer")
        });
        host.add_device(dmz0, &["10.3.0.2/24".parse().unwrap()])
            .unwrap();
        async move {
            Stack::builder()
                .device(dmz_peer)
                .addr("10.3.0.1/24".parse().unwrap())
                .build()
                .await
                .unwrap()
        }
    };
    let dmz = attach_dmz(&n.host).await;
    let far = TcpListener::bind_with(&dmz, "10.3.0.1:80").await.unwrap();
    connect_to(&n.host, "10.3.0.1:80", &far).await;
    // A UDP socket bound to the device, and a multicast group joined on it.
    let u = UdpSocket::bind_with(&n.host, "0.0.0.0:5000").await.unwrap();
    u.bind_device(Some(b"dmz0")).unwrap();
    u.send_to(b"before", "10.3.0.1:9").await.unwrap();
    let m = UdpSocket::bind_with(&n.host, "0.0.0.0:5001").await.unwrap();
    let group: std::net::Ipv4Addr = "239.1.2.3".parse().unwrap();
    m.join_multicast_v4(group, "10.3.0.2".parse().unwrap())
        .unwrap();
    assert!(n
        .host
        .multicast_groups()
        .iter()
        .any(|(d, _, _)| d == "dmz0"));
    assert!(n.host.neighbours().iter().any(|x| x.dev == "dmz0"));

    n.host.remove_device("dmz0").unwrap();
    // Everything of the device went with it: addresses, routes, neighbours, groups.
    assert!(
        n.host.addresses().iter().all(|(d, _)| d != "dmz0"),
        "{:?}",
        n.host.addresses()
    );
    let dmz_net: ustack::Ipv4Cidr = "10.3.0.0/24".parse().unwrap();
    let routes = n.host.routes();
    assert!(
        routes.iter().all(|r| r.dst != dmz_net
            && r.dst.addr() != "10.3.0.2".parse::<std::net::Ipv4Addr>().unwrap()),
        "{routes:?}"
    );
    assert!(n.host.neighbours().is_empty(), "{:?}", n.host.neighbours());
    assert!(n.host.multicast_groups().is_empty());
    assert!(n.host.stats().devices.iter().all(|d| d.name != "dmz0"));
    // The socket bound to it stays and cannot send; the name is unknown now.
    let e = u.send_to(b"after", "10.3.0.1:9").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
    let s = TcpSocket::new_v4_with(&n.host).unwrap();
    let e = s.bind_device(Some(b"dmz0")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    let e = n.host.remove_device("dmz0").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    // The other devices are untouched.
    let l = TcpListener::bind_with(&n.lan, "10.2.0.1:82").await.unwrap();
    connect_to(&n.host, "10.2.0.1:82", &l).await;

    // The name can be attached again, to a new link, and works at once.
    let dmz = attach_dmz(&n.host).await;
    let far = TcpListener::bind_with(&dmz, "10.3.0.1:80").await.unwrap();
    connect_to(&n.host, "10.3.0.1:80", &far).await;
    let here = TcpListener::bind_with(&n.host, "10.3.0.2:81")
        .await
        .unwrap();
    connect_to(&dmz, "10.3.0.2:81", &here).await;

    // Removing the first device (the one local traffic is said to arrive on) takes
    // the default route through it; traffic to our own addresses still flows.
    n.host.remove_device("wan0").unwrap();
    assert!(n.host.routes().iter().all(|r| r.dst.prefix_len() != 0));
    let me = TcpListener::bind_with(&n.host, "10.2.0.2:83")
        .await
        .unwrap();
    connect_to(&n.host, "10.2.0.2:83", &me).await;
    connect_to(&n.host, "10.2.0.1:82", &l).await;
}

/// A device that can be unplugged: once told, its receive path reports an error, as a TUN
/// whose interface was deleted does.
struct Unpluggable {
    inner: ustack::netdev::mem::MemDevice,
    unplugged: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl NetDevice for Unpluggable {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn is_up(&self) -> bool {
        self.inner.is_up()
    }
    fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
        out: &mut Vec<ustack::netdev::PacketBuf>,
        budget: usize,
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.unplugged.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Err(std::io::Error::other("unplugged")));
        }
        self.inner.poll_recv(cx, out, budget)
    }
    fn transmit(&mut self, pkts: &mut Vec<ustack::netdev::PacketBuf>) {
        self.inner.transmit(pkts)
    }
    fn stats(&self) -> ustack::netdev::DeviceStats {
        self.inner.stats()
    }
    fn rx_inline(&self) -> bool {
        self.inner.rx_inline()
    }
}

#[tokio::test]
async fn a_device_that_goes_away_is_detached() {
    let n = net().await;
    let (usb0, usb_peer) = MemLink::pair(link("usb0", "usbpeer"));
    let unplugged = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dev = Unpluggable {
        inner: usb0,
        unplugged: unplugged.clone(),
    };
    assert_eq!(dev.name(), "usb0");
    n.host
        .add_device(dev, &["10.5.0.2/24".parse().unwrap()])
        .unwrap();
    let peer = Stack::builder()
        .device(usb_peer)
        .addr("10.5.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let far = TcpListener::bind_with(&peer, "10.5.0.1:80").await.unwrap();
    connect_to(&n.host, "10.5.0.1:80", &far).await;
    // Unplugged: the next packet makes the stack poll it, see the error and detach it,
    // with its address and routes, as Linux does when a device is unregistered.
    unplugged.store(true, std::sync::atomic::Ordering::SeqCst);
    let u = UdpSocket::bind_with(&peer, "10.5.0.1:0").await.unwrap();
    u.send_to(b"anyone?", "10.5.0.2:9").await.unwrap();
    within("detach", async {
        while n.host.addresses().iter().any(|(d, _)| d == "usb0") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let usb_net: ustack::Ipv4Cidr = "10.5.0.0/24".parse().unwrap();
    assert!(n.host.routes().iter().all(|r| r.dst != usb_net));
    assert!(n.host.stats().devices.iter().all(|d| d.name != "usb0"));
    // The name is free again; the other devices are untouched.
    let (again, _p) = MemLink::pair(link("usb0", "x"));
    n.host.add_device(again, &[]).unwrap();
    let l = TcpListener::bind_with(&n.lan, "10.2.0.1:84").await.unwrap();
    connect_to(&n.host, "10.2.0.1:84", &l).await;
}

/// `add_device_route` sends a destination out the named device (here one the default
/// route does not lead to), `device_name` names a route's device, and `set_mtu` lowers
/// what the stack sends on a device: the MSS of connections opened afterwards.
#[tokio::test]
async fn device_routes_and_the_mtu_of_a_device() {
    let n = net().await;
    let l = TcpListener::bind_with(&n.lan, "10.9.0.1:7100")
        .await
        .unwrap();
    let dst: ustack::Ipv4Cidr = "10.9.0.0/24".parse().unwrap();
    // Without a route of its own, 10.9.0.1 is reached through the default route, wan0
    // (where nobody answers for it): the connect goes out wan0.
    let before = tx_packets(&n.host, "wan0");
    let c = TcpStream::connect_with(&n.host, "10.9.0.1:7100");
    assert!(tokio::time::timeout(Duration::from_millis(300), c)
        .await
        .is_err());
    assert!(tx_packets(&n.host, "wan0") > before);
    // On lan0's link: reached directly.
    n.host.add_device_route("lan0", dst, None).unwrap();
    let r = n.host.routes().into_iter().find(|r| r.dst == dst).unwrap();
    assert_eq!(n.host.device_name(r.dev).as_deref(), Some("lan0"));
    assert_eq!(r.gateway, None);
    connect_to(&n.host, "10.9.0.1:7100", &l).await;
    assert_eq!(
        n.host
            .add_device_route("lan0", dst, None)
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        n.host
            .add_device_route("nope0", dst, None)
            .unwrap_err()
            .raw_os_error(),
        Some(19)
    );
    // The MTU: the device's own (1500) until lowered; connections opened afterwards send
    // segments of at most 1200 bytes, earlier ones keep their MSS.
    assert_eq!(n.host.mtu("lan0").unwrap(), 1500);
    let (early, _) = tokio::join!(
        TcpStream::connect_with(&n.host, "10.9.0.1:7100"),
        accept_echo(&l)
    );
    n.host.set_mtu("lan0", 1200).unwrap();
    assert_eq!(n.host.mtu("lan0").unwrap(), 1200);
    assert_eq!(n.host.mtu("wan0").unwrap(), 1500);
    let (late, _) = tokio::join!(
        TcpStream::connect_with(&n.host, "10.9.0.1:7100"),
        accept_echo(&l)
    );
    // (snd_mss is net of the 12 bytes of timestamps on every segment.)
    let mss = |s: &TcpStream| s.info().unwrap().snd_mss;
    assert_eq!(mss(&early.unwrap()), 1500 - 40 - 12);
    let mut late = late.unwrap();
    assert_eq!(mss(&late), 1200 - 40 - 12);
    // A write larger than a segment still arrives whole.
    let big = vec![7u8; 5000];
    late.write_all(&big).await.unwrap();
    let mut back = vec![0u8; 5000];
    within("echo of 5000 bytes", late.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, big);
    // Removed with remove_route: 10.9.0.1 is behind the default route again.
    n.host.remove_route(dst, None).unwrap();
    assert!(n.host.routes().iter().all(|r| r.dst != dst));
    // A detached device has no name any more.
    let lan_id = r.dev;
    n.host.remove_device("lan0").unwrap();
    assert_eq!(n.host.device_name(lan_id), None);
}

/// `recv_msg` tells which device each datagram arrived on (`IP_PKTINFO`): an unbound
/// socket hears wan0 and lan0, a broadcast says which link it came from, and the stack's
/// datagram to its own lan0 address is delivered locally, through the stack's first
/// device (where Linux would say `lo`). A device attached at run time is named; a
/// detached one no longer is.
#[tokio::test]
async fn recv_msg_names_the_arrival_device() {
    let n = net().await;
    let u = UdpSocket::bind_with(&n.host, "0.0.0.0:7010").await.unwrap();
    let mut buf = [0u8; 64];
    let mut next = async |what: &str| {
        let m = within(what, u.recv_msg(&mut buf)).await.unwrap();
        (String::from_utf8_lossy(&buf[..m.len]).into_owned(), m)
    };

    let w = UdpSocket::bind_with(&n.wan, "10.1.0.1:0").await.unwrap();
    w.send_to(b"wan", "10.1.0.2:7010").await.unwrap();
    let (data, m) = next("from wan").await;
    assert_eq!(data, "wan");
    assert_eq!(m.device.as_deref(), Some("wan0"));
    assert_eq!(m.from, w.local_addr().unwrap());
    assert_eq!(m.to, sa("10.1.0.2:7010"));
    assert_eq!(n.host.device_name(m.device_id).as_deref(), Some("wan0"));

    let l = UdpSocket::bind_with(&n.lan, "10.2.0.1:0").await.unwrap();
    l.set_broadcast(true).unwrap();
    l.send_to(b"lan bcast", "255.255.255.255:7010")
        .await
        .unwrap();
    let (data, m) = next("broadcast from lan").await;
    assert_eq!(data, "lan bcast");
    assert_eq!(m.device.as_deref(), Some("lan0"));
    assert_eq!(m.to, sa("255.255.255.255:7010"));

    let own = UdpSocket::bind_with(&n.host, "10.2.0.2:0").await.unwrap();
    own.send_to(b"self", "10.2.0.2:7010").await.unwrap();
    let (data, m) = next("from the stack itself").await;
    assert_eq!(data, "self");
    assert_eq!(m.device.as_deref(), Some("wan0"));
    assert_eq!(m.from, own.local_addr().unwrap());

    // A device attached at run time is named too; once it is detached, a datagram that
    // arrived on it before still says which id it came from, but no name.
    let (dmz0, dmz) = dmz_link(false).await;
    n.host
        .add_device(dmz0, &["10.3.0.2/24".parse().unwrap()])
        .unwrap();
    let d = UdpSocket::bind_with(&dmz, "10.3.0.1:0").await.unwrap();
    d.send_to(b"dmz", "10.3.0.2:7010").await.unwrap();
    let (data, m) = next("from dmz").await;
    assert_eq!(data, "dmz");
    assert_eq!(m.device.as_deref(), Some("dmz0"));
    let dmz_id = m.device_id;
    d.send_to(b"dmz again", "10.3.0.2:7010").await.unwrap();
    // The datagram is queued on the socket before the device goes.
    within("queued", u.peek_from(&mut [0u8; 1])).await.unwrap();
    n.host.remove_device("dmz0").unwrap();
    let (data, m) = next("queued from dmz").await;
    assert_eq!(data, "dmz again");
    assert_eq!(m.device_id, dmz_id);
    assert_eq!(m.device, None);
}
