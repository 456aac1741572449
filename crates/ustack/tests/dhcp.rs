//! The DHCP client against a small DHCP server on another stack, over an in-memory
//! Ethernet link, in paused time: a lease is taken and applied (address, default route,
//! DNS), renewed with its server at T1, rebound at T2, lost when nobody answers and then
//! taken again, dropped on a refusal, given back with a release, and taken away when the
//! handle is dropped. The server here is written from RFC 2131 independently of the
//! client's message code.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ustack::dhcp::DhcpConfig;
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack::netdev::mem::{MemLink, MemLinkConfig};
use ustack::Stack;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

/// How the server behaves, and what it saw.
#[derive(Debug, Default)]
struct Server {
    lease_secs: u32,
    /// The address offered (after a DHCPDECLINE, the next one).
    offer: Option<Ipv4Addr>,
    /// Answer nothing.
    silent: bool,
    /// Refuse requests from a configured client (ciaddr set).
    nak_renewals: bool,
    /// Refuse every request.
    nak_all: bool,
    /// (message type, ciaddr, sent to) of every client message.
    seen: Vec<(u8, Ipv4Addr, Ipv4Addr)>,
    /// More options (encoded) for offers and acknowledgements.
    extra: Vec<u8>,
    /// Keep silent to INIT-REBOOT requests (no server identifier, no ciaddr), as a
    /// server that has no record of the client does.
    ignore_reboot: bool,
    /// INIT-REBOOT requests seen (option 50, no option 54, ciaddr 0.0.0.0).
    reboots: usize,
}

fn option(msg: &[u8], code: u8) -> Option<&[u8]> {
    let mut i = 240;
    while i + 1 < msg.len() {
        match msg[i] {
            0 => i += 1,
            255 => return None,
            c => {
                let len = msg[i + 1] as usize;
                let v = msg.get(i + 2..i + 2 + len)?;
                if c == code {
                    return Some(v);
                }
                i += 2 + len;
            }
        }
    }
    None
}

fn reply(req: &[u8], msg_type: u8, lease_secs: u32, addr: Ipv4Addr, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 2;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&req[4..8]); // xid
    b[10..12].copy_from_slice(&req[10..12]); // flags
    if msg_type != 6 {
        b[16..20].copy_from_slice(&addr.octets());
    }
    b[28..44].copy_from_slice(&req[28..44]); // chaddr
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, msg_type, 54, 4, 10, 0, 0, 1]);
    if msg_type != 6 {
        b.extend_from_slice(&[51, 4]);
        b.extend_from_slice(&lease_secs.to_be_bytes());
        b.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 1]);
        b.extend_from_slice(&[15, 8]);
        b.extend_from_slice(b"lan.test");
        b.extend_from_slice(extra);
    }
    b.push(255);
    b
}

async fn serve(sock: UdpSocket, state: Arc<Mutex<Server>>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from, to)) = sock.recv_from_to(&mut buf).await else {
            return;
        };
        let req = &buf[..n];
        let (SocketAddr::V4(to), Some(&[t])) = (to, option(req, 53)) else {
            continue;
        };
        let ciaddr = Ipv4Addr::new(req[12], req[13], req[14], req[15]);
        let answer = {
            let mut st = state.lock().unwrap();
            st.seen.push((t, ciaddr, *to.ip()));
            let reboot = t == 3
                && ciaddr.is_unspecified()
                && option(req, 50).is_some()
                && option(req, 54).is_none();
            st.reboots += usize::from(reboot);
            // A client that keeps asking as fast as it is answered would never let the
            // paused clock move: stop answering it, and the counts below show it.
            let offer = st.offer.unwrap_or(OFFERED);
            if t == 4 {
                // Declined: in use by someone; offer the next address from now on.
                let o = offer.octets();
                st.offer = Some(Ipv4Addr::new(o[0], o[1], o[2], o[3] + 1));
            }
            if st.silent || st.seen.len() > 1000 || (reboot && st.ignore_reboot) {
                None
            } else {
                // A suggested address (option 50 in the DISCOVER) is offered if it is
                // in the test's range.
                let hint = option(req, 50)
                    .filter(|v| v.len() == 4 && v[..3] == [10, 0, 0] && v[3] >= 50)
                    .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
                let offer = if t == 1 { hint.unwrap_or(offer) } else { offer };
                if t == 1 {
                    st.offer = Some(offer);
                }
                let extra = st.extra.clone();
                match t {
                    1 => Some(reply(req, 2, st.lease_secs, offer, &extra)),
                    // DHCPINFORM: an acknowledgement with the options, no address.
                    8 => Some(reply(req, 5, 0, Ipv4Addr::UNSPECIFIED, &extra)),
                    3 if st.nak_all || (!ciaddr.is_unspecified() && st.nak_renewals) => {
                        Some(reply(req, 6, 0, offer, &[]))
                    }
                    3 => {
                        let asked = option(req, 50).map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
                        if asked.unwrap_or(ciaddr) == offer {
                            Some(reply(req, 5, st.lease_secs, offer, &extra))
                        } else {
                            Some(reply(req, 6, 0, offer, &[]))
                        }
                    }
                    _ => None,
                }
            }
        };
        if let Some(a) = answer {
            // A damaged message first: the client must ignore it.
            let _ = sock.send_to(&a[..100], "255.255.255.255:68").await;
            let dst = if ciaddr.is_unspecified() {
                SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
            } else {
                SocketAddrV4::new(ciaddr, 68)
            };
            let _ = from;
            sock.send_to(&a, dst).await.unwrap();
        }
    }
}

/// A server stack (10.0.0.1/24) running the DHCP server, and a client stack whose
/// device ("veth1") has no address.
async fn setup(lease_secs: u32) -> (Stack, Stack, Arc<Mutex<Server>>) {
    let (a, b) = MemLink::pair(MemLinkConfig {
        ethernet: true,
        ..Default::default()
    });
    let server = Stack::builder()
        .device(a)
        .addr("10.0.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let client = Stack::builder().device(b).build().await.unwrap();
    let state = Arc::new(Mutex::new(Server {
        lease_secs,
        ..Default::default()
    }));
    let sock = UdpSocket::bind_with(&server, "0.0.0.0:67").await.unwrap();
    sock.set_broadcast(true).unwrap();
    tokio::spawn(serve(sock, state.clone()));
    (server, client, state)
}

fn has_default_route(s: &Stack) -> bool {
    s.routes()
        .iter()
        .any(|r| r.dst.prefix_len() == 0 && r.gateway == Some(SERVER))
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_taken_applied_renewed_rebound_lost_and_taken_again() {
    let (server, client, st) = setup(120).await;
    let mut dhcp = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    let lease = dhcp.lease().unwrap();
    assert_eq!(lease.addr.to_string(), "10.0.0.50/24");
    assert_eq!(
        (lease.server, lease.routers.clone()),
        (SERVER, vec![SERVER])
    );
    assert_eq!(lease.dns, [SERVER]);
    assert_eq!(lease.domain.as_deref(), Some("lan.test"));
    assert_eq!(lease.lease_time, Some(Duration::from_secs(120)));
    assert_eq!(lease.renew_after, Some(Duration::from_secs(60)));
    assert_eq!(lease.rebind_after, Some(Duration::from_secs(105)));
    // DISCOVER and REQUEST went out as broadcasts from an unconfigured device.
    assert_eq!(
        st.lock().unwrap().seen,
        [
            (1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
            (3, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        ]
    );
    // Applied: the address, a default route, the resolver's servers and search domain.
    assert!(client
        .addresses()
        .iter()
        .any(|(d, a)| d == "veth1" && *a == lease.addr));
    assert!(has_default_route(&client));
    let dns = client.dns();
    assert_eq!(dns.servers, [SocketAddrV4::new(SERVER, 53)]);
    assert_eq!(dns.search, ["lan.test"]);
    // The address works.
    let l = TcpListener::bind_with(&server, "10.0.0.1:80")
        .await
        .unwrap();
    let (c, a) = tokio::join!(TcpStream::connect_with(&client, "10.0.0.1:80"), l.accept());
    assert_eq!(
        c.unwrap().local_addr().unwrap().ip().to_string(),
        "10.0.0.50"
    );
    drop(a);

    // T1 (60 s): renewed by a unicast request to the server, from the leased address.
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(
        st.lock().unwrap().seen.last(),
        Some(&(3, OFFERED, SERVER)),
        "no renewal"
    );
    assert!(dhcp.lease().is_some());
    // The server goes quiet: at T2 (105 s after the renewal) a broadcast request, then
    // the lease runs out (120 s) and everything it brought goes.
    st.lock().unwrap().silent = true;
    let t0 = tokio::time::Instant::now();
    assert_eq!(dhcp.changed().await, Some(None));
    let lost_after = t0.elapsed();
    assert!(
        lost_after > Duration::from_secs(115) && lost_after < Duration::from_secs(125),
        "{lost_after:?}"
    );
    assert!(st
        .lock()
        .unwrap()
        .seen
        .contains(&(3, OFFERED, Ipv4Addr::BROADCAST)));
    assert!(client.addresses().is_empty(), "{:?}", client.addresses());
    assert!(!has_default_route(&client));
    assert!(client.dns().servers.is_empty());
    // It looks for a new lease meanwhile (discoveries), and takes one when the server
    // answers again.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(st.lock().unwrap().seen.iter().filter(|s| s.0 == 1).count() >= 3);
    st.lock().unwrap().silent = false;
    let again = tokio::time::timeout(Duration::from_secs(120), dhcp.changed())
        .await
        .expect("no new lease")
        .unwrap()
        .unwrap();
    assert_eq!(again.addr, lease.addr);
    assert!(has_default_route(&client));
    // A refused renewal drops the lease at once, and discovery starts over (here it
    // succeeds within the same instant).
    st.lock().unwrap().nak_renewals = true;
    let before = st.lock().unwrap().seen.len();
    tokio::time::sleep(Duration::from_secs(61)).await;
    let after: Vec<_> = st.lock().unwrap().seen[before..].to_vec();
    assert_eq!(
        after,
        [
            (3, OFFERED, SERVER),
            (1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
            (3, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        ]
    );
    assert!(dhcp.lease().is_some());
    st.lock().unwrap().nak_renewals = false;

    // A release tells the server and takes the configuration away.
    dhcp.release().await.unwrap();
    assert_eq!(
        st.lock().unwrap().seen.last(),
        Some(&(7, OFFERED, SERVER)),
        "no release"
    );
    assert!(client.addresses().is_empty());
    assert!(!has_default_route(&client));
    // Port 68 is free again.
    let dhcp = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    assert!(dhcp.lease().is_some());
    // Dropping the handle stops the client and removes the address (no release).
    drop(dhcp);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(client.addresses().is_empty());
    assert_ne!(st.lock().unwrap().seen.last().map(|s| s.0), Some(7));
}

#[tokio::test(start_paused = true)]
async fn dhcp_errors_are_clear() {
    let (_server, client, st) = setup(600).await;
    let e = client
        .dhcp("nope0", DhcpConfig::default())
        .await
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    // Port 68 taken by another socket.
    let holder = UdpSocket::bind_with(&client, "0.0.0.0:68").await.unwrap();
    let e = client
        .dhcp("veth1", DhcpConfig::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    drop(holder);
    // Nobody answers: TimedOut after the configured time, having repeated discovery.
    st.lock().unwrap().silent = true;
    let t0 = tokio::time::Instant::now();
    let e = client
        .dhcp(
            "veth1",
            DhcpConfig {
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(t0.elapsed() >= Duration::from_secs(30));
    let discovers = st.lock().unwrap().seen.iter().filter(|s| s.0 == 1).count();
    assert!(
        (3..=5).contains(&discovers),
        "{discovers} discoveries in 30 s"
    );
    // A device that carries no Ethernet (a TUN-like link) cannot do DHCP.
    let (a, _b) = MemLink::pair(MemLinkConfig::default());
    let raw = Stack::builder().device(a).build().await.unwrap();
    let e = raw.dhcp("veth0", DhcpConfig::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // So are the ARP probe and announcement it uses; unknown devices are ENODEV.
    let e = raw.address_in_use("veth0", OFFERED, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = raw.announce_address("veth0", OFFERED).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = client
        .address_in_use("nope0", OFFERED, 1)
        .await
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    let e = client.announce_address("nope0", OFFERED).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    // Settings: no route, no DNS.
    st.lock().unwrap().silent = false;
    let d = client
        .dhcp(
            "veth1",
            DhcpConfig {
                use_router: false,
                use_dns: false,
                host_name: Some("box".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(d.lease().is_some());
    assert!(!has_default_route(&client));
    assert!(client.dns().servers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hostile_server_cannot_make_the_client_spin() {
    // Leases of 0 s, and every request refused.
    let (_server, client, st) = setup(0).await;
    st.lock().unwrap().nak_all = true;
    let cfg = DhcpConfig {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let e = client.dhcp("veth1", cfg.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    // Each refusal is followed by a pause of 1-10 s before discovery starts over.
    let sent = st.lock().unwrap().seen.len();
    assert!((6..=60).contains(&sent), "{sent} messages in 30 s");
    // A 0 s lease is taken as 10 s: renewed every 5 s, not continuously.
    st.lock().unwrap().nak_all = false;
    let d = client.dhcp("veth1", cfg).await.unwrap();
    let l = d.lease().unwrap();
    assert_eq!(l.lease_time, Some(Duration::from_secs(10)));
    assert_eq!(l.renew_after, Some(Duration::from_secs(5)));
    let before = st.lock().unwrap().seen.len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let renewals = st.lock().unwrap().seen.len() - before;
    assert!((10..=13).contains(&renewals), "{renewals} renewals in 60 s");
    assert!(d.lease().is_some());
}

#[tokio::test(start_paused = true)]
async fn an_address_in_use_is_declined() {
    let (server, client, st) = setup(600).await;
    // The probe itself: the server's address is in use, another one is not.
    assert!(client.address_in_use("veth1", SERVER, 1).await.unwrap());
    assert!(!client
        .address_in_use("veth1", Ipv4Addr::new(10, 0, 0, 77), 2)
        .await
        .unwrap());
    // Another host (the server's stack) already uses the address about to be offered.
    server
        .add_address("veth0", "10.0.0.50/24".parse().unwrap())
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let d = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    assert_eq!(d.lease().unwrap().addr.to_string(), "10.0.0.51/24");
    assert!(
        st.lock()
            .unwrap()
            .seen
            .contains(&(4, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)),
        "no DHCPDECLINE"
    );
    // Two probes and a second of listening, declined, 10 s, then the next address.
    assert!(
        t0.elapsed() >= Duration::from_secs(12),
        "{:?}",
        t0.elapsed()
    );
    drop(d);
    // Without the check the address in use is taken as offered.
    st.lock().unwrap().offer = Some(OFFERED);
    let d = client
        .dhcp(
            "veth1",
            DhcpConfig {
                arp_check: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
}

/// RFC 5227 2.4: while the lease is held, another host (here the server's stack) claims the
/// address. The client defends it once with an announcement; when the other host
/// answers that within 10 s (its own defence of what it takes for its static address),
/// the client gives the lease up at once, declines it, and 10 s later takes another
/// address. The host with the static address defends it too, and keeps it.
#[tokio::test(start_paused = true)]
async fn an_address_claimed_after_our_defence_is_given_up() {
    let (server, client, st) = setup(600).await;
    let mut d = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
    assert!(client.address_conflicts().is_empty());
    let seen_before = st.lock().unwrap().seen.len();
    // The other host starts using the leased address and announces it.
    server
        .add_address("veth0", "10.0.0.50/24".parse().unwrap())
        .unwrap();
    server.announce_address("veth0", OFFERED).unwrap();
    let t0 = tokio::time::Instant::now();
    let gone = tokio::time::timeout(Duration::from_secs(5), d.changed()).await;
    assert_eq!(gone, Ok(Some(None)), "the lease was not given up");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "not at once: {:?}",
        t0.elapsed()
    );
    assert!(client.addresses().is_empty(), "{:?}", client.addresses());
    let c = client.address_conflicts();
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!((c[0].dev.as_str(), c[0].addr), ("veth1", OFFERED));
    assert!(c[0].defended && !c[1].defended, "{c:?}");
    assert_eq!(c[0].mac, c[1].mac);
    let arp = client.stats().arp;
    assert_eq!((arp.conflicts, arp.defences), (2, 1));
    // The server was told the address is in use.
    assert!(
        st.lock().unwrap().seen[seen_before..]
            .iter()
            .any(|m| m.0 == 4),
        "no DHCPDECLINE"
    );
    // The static address stays where it was configured; that host defended it once.
    assert!(server.addresses().iter().any(|(_, a)| a.addr() == OFFERED));
    let sc = server.address_conflicts();
    assert_eq!(sc.len(), 1, "{sc:?}");
    assert!(sc[0].defended);
    assert_eq!(server.stats().arp.defences, 1);
    // After the 10 s of RFC 2131 4.4.1, another lease (the server offers the next
    // address after a decline).
    let next = d.changed().await.flatten().expect("no new lease");
    assert_eq!(next.addr.addr(), Ipv4Addr::new(10, 0, 0, 51));
    assert!(
        t0.elapsed() >= Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    // No more conflicts: the new address is nobody else's.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(client.address_conflicts().len(), 2);
    assert!(d.lease().is_some());
}

/// With `arp_check: false` the client keeps its lease whatever another host claims: the
/// stack still defends the address (once per 10 s) and logs the conflicts, but nothing
/// is given up or declined.
#[tokio::test(start_paused = true)]
async fn without_the_arp_check_a_claimed_address_is_kept() {
    let (server, client, st) = setup(600).await;
    let cfg = DhcpConfig {
        arp_check: false,
        ..Default::default()
    };
    let mut d = client.dhcp("veth1", cfg).await.unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
    let seen_before = st.lock().unwrap().seen.len();
    server
        .add_address("veth0", "10.0.0.50/24".parse().unwrap())
        .unwrap();
    server.announce_address("veth0", OFFERED).unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), d.changed()).await;
    assert!(change.is_err(), "the lease changed: {change:?}");
    // The same exchange as with the check: one defence, then a claim it did not answer.
    let c = client.address_conflicts();
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0].defended && !c[1].defended, "{c:?}");
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
    assert!(client.addresses().iter().any(|(_, a)| a.addr() == OFFERED));
    assert!(
        !st.lock().unwrap().seen[seen_before..]
            .iter()
            .any(|m| m.0 == 4),
        "declined"
    );
}

/// Options 121 and 26: the classless static routes replace the router option's default
/// route (RFC 3442), a route with router 0.0.0.0 is on the link, the server's MTU becomes
/// the device's (and the MSS of new connections), and all of it goes with the lease.
#[tokio::test(start_paused = true)]
async fn classless_routes_and_the_mtu_are_applied_and_taken_back() {
    let (server, client, st) = setup(600).await;
    st.lock().unwrap().extra = vec![
        121, 20, //
        16, 192, 168, 10, 0, 0, 1, // 192.168.0.0/16 via 10.0.0.1
        24, 172, 16, 5, 0, 0, 0, 0, // 172.16.5.0/24 on the link
        0, 10, 0, 0, 254, // default via 10.0.0.254
        26, 2, 0x05, 0x78, // MTU 1400
    ];
    assert_eq!(client.mtu("veth1").unwrap(), 1500);
    let dhcp = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    let lease = dhcp.lease().unwrap();
    assert_eq!(lease.mtu, Some(1400));
    assert_eq!(lease.routes.len(), 3);
    let routes = client.routes();
    let find = |dst: &str| {
        routes
            .iter()
            .find(|r| r.dst.to_string() == dst)
            .map(|r| (r.gateway, client.device_name(r.dev).unwrap_or_default()))
    };
    let via = |a: [u8; 4]| Some(Ipv4Addr::from(a));
    assert_eq!(
        find("192.168.0.0/16"),
        Some((via([10, 0, 0, 1]), "veth1".into()))
    );
    assert_eq!(find("172.16.5.0/24"), Some((None, "veth1".into())));
    assert_eq!(
        find("0.0.0.0/0"),
        Some((via([10, 0, 0, 254]), "veth1".into()))
    );
    // The router option (10.0.0.1) gave no default route.
    assert!(!has_default_route(&client), "{routes:?}");
    assert_eq!(client.mtu("veth1").unwrap(), 1400);
    // A connection opened now sends at most 1400 - 40 bytes per segment.
    let l = TcpListener::bind_with(&server, "10.0.0.1:80")
        .await
        .unwrap();
    let (c, _a) = tokio::join!(TcpStream::connect_with(&client, "10.0.0.1:80"), l.accept());
    let mss = c.unwrap().info().unwrap().snd_mss;
    assert!(mss <= 1360, "MSS {mss}");
    // The on-link route: a datagram to 172.16.5.9 asks the link for 172.16.5.9 itself.
    let u = UdpSocket::bind_with(&client, "0.0.0.0:0").await.unwrap();
    u.send_to(b"x", "172.16.5.9:9").await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        client
            .neighbours()
            .iter()
            .any(|n| n.addr == Ipv4Addr::new(172, 16, 5, 9) && n.dev == "veth1"),
        "{:?}",
        client.neighbours()
    );
    // Released: the routes and the MTU go with the lease.
    dhcp.release().await.unwrap();
    let left: Vec<_> = client
        .routes()
        .into_iter()
        .filter(|r| r.kind == ustack::RouteKind::Static)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(client.mtu("veth1").unwrap(), 1500);

    // Without use_router and use_mtu: none of it.
    let dhcp = client
        .dhcp(
            "veth1",
            DhcpConfig {
                use_router: false,
                use_mtu: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dhcp.lease().unwrap().routes.len(), 3);
    assert!(client
        .routes()
        .iter()
        .all(|r| r.dst.to_string() != "192.168.0.0/16" && r.dst.prefix_len() != 0));
    assert_eq!(client.mtu("veth1").unwrap(), 1500);
    dhcp.release().await.unwrap();
}

/// An MTU below 576 is ignored; one above the device's is cut to it. Without option 121
/// the first router is the default gateway.
#[tokio::test(start_paused = true)]
async fn server_mtus_out_of_bounds_are_not_taken_as_they_are() {
    let (_server, client, st) = setup(600).await;
    client.set_mtu("veth1", 1300).unwrap();
    st.lock().unwrap().extra = vec![26, 2, 0, 100];
    let dhcp = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    assert_eq!(dhcp.lease().unwrap().mtu, Some(100));
    assert_eq!(client.mtu("veth1").unwrap(), 1300);
    assert!(has_default_route(&client));
    dhcp.release().await.unwrap();
    st.lock().unwrap().extra = vec![26, 2, 0x23, 0x28]; // 9000
    let dhcp = client.dhcp("veth1", DhcpConfig::default()).await.unwrap();
    assert_eq!(client.mtu("veth1").unwrap(), 1500);
    dhcp.release().await.unwrap();
    assert_eq!(client.mtu("veth1").unwrap(), 1300);
    // set_mtu's own bounds.
    assert_eq!(
        client.set_mtu("veth1", 67).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        client.set_mtu("veth1", 1501).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        client.set_mtu("nope0", 1000).unwrap_err().raw_os_error(),
        Some(19)
    );
    assert_eq!(client.mtu("nope0").unwrap_err().raw_os_error(), Some(19));
}

/// DHCPINFORM (RFC 2131 3.4): a device with an address of its own asks for the rest of
/// the configuration, which is returned and not applied.
#[tokio::test(start_paused = true)]
async fn inform_asks_for_configuration_only() {
    let (_server, client, st) = setup(600).await;
    // No address yet: nothing to inform the server of.
    let e = client
        .dhcp_inform("veth1", DhcpConfig::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    client
        .add_address("veth1", "10.0.0.60/24".parse().unwrap())
        .unwrap();
    st.lock().unwrap().extra = vec![
        121, 8, 24, 172, 16, 5, 10, 0, 0, 9, // 172.16.5.0/24 via 10.0.0.9
        26, 2, 0x05, 0x78, // MTU 1400
    ];
    let info = client
        .dhcp_inform("veth1", DhcpConfig::default())
        .await
        .unwrap();
    assert_eq!(info.server, Some(SERVER));
    assert_eq!(info.routers, [SERVER]);
    assert_eq!(info.dns, [SERVER]);
    assert_eq!(info.domain.as_deref(), Some("lan.test"));
    assert_eq!(info.mtu, Some(1400));
    assert_eq!(info.routes.len(), 1);
    assert_eq!(info.routes[0].dst.to_string(), "172.16.5.0/24");
    assert_eq!(info.routes[0].gateway, Some(Ipv4Addr::new(10, 0, 0, 9)));
    // Sent from the device's address, as a broadcast; nothing else asked.
    assert_eq!(
        st.lock().unwrap().seen,
        [(8, Ipv4Addr::new(10, 0, 0, 60), Ipv4Addr::BROADCAST)]
    );
    // Nothing applied.
    assert!(client.dns().servers.is_empty());
    assert!(!has_default_route(&client));
    assert_eq!(client.mtu("veth1").unwrap(), 1500);
    // A silent server: TimedOut at the configured timeout, after repeated requests.
    st.lock().unwrap().silent = true;
    let t0 = tokio::time::Instant::now();
    let e = client
        .dhcp_inform(
            "veth1",
            DhcpConfig {
                timeout: Duration::from_secs(20),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(21),
        "{waited:?}"
    );
    let informs = st.lock().unwrap().seen.iter().filter(|s| s.0 == 8).count();
    assert!((3..=4).contains(&informs), "{informs} requests");
}

#[tokio::test(start_paused = true)]
async fn a_preferred_address_is_asked_for() {
    let (_server, client, st) = setup(600).await;
    let want = Ipv4Addr::new(10, 0, 0, 77);
    let d = client
        .dhcp(
            "veth1",
            DhcpConfig {
                preferred_addr: Some(want),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), want);
    assert_eq!(st.lock().unwrap().seen[0].0, 1);
}

#[tokio::test(start_paused = true)]
async fn clients_on_two_devices_share_port_68() {
    let link = |a: &str, b: &str| MemLinkConfig {
        ethernet: true,
        names: (a.to_string(), b.to_string()),
        ..Default::default()
    };
    let (a0, a1) = MemLink::pair(link("srva", "eth0"));
    let (b0, b1) = MemLink::pair(link("srvb", "eth1"));
    let client = Stack::builder()
        .device(a1)
        .device(b1)
        .build()
        .await
        .unwrap();
    let mut servers = Vec::new();
    for (dev, addr) in [(a0, "10.0.0.1/24"), (b0, "10.0.0.1/24")] {
        let s = Stack::builder()
            .device(dev)
            .addr(addr.parse().unwrap())
            .build()
            .await
            .unwrap();
        let st = Arc::new(Mutex::new(Server {
            lease_secs: 600,
            ..Default::default()
        }));
        let sock = UdpSocket::bind_with(&s, "0.0.0.0:67").await.unwrap();
        sock.set_broadcast(true).unwrap();
        tokio::spawn(serve(sock, st.clone()));
        servers.push((s, st));
    }
    // The second server hands out another address.
    servers[1].1.lock().unwrap().offer = Some(Ipv4Addr::new(10, 0, 0, 60));
    let cfg = DhcpConfig {
        use_router: false,
        use_dns: false,
        ..Default::default()
    };
    let d0 = client.dhcp("eth0", cfg.clone()).await.unwrap();
    let d1 = client.dhcp("eth1", cfg).await.unwrap();
    assert_eq!(d0.lease().unwrap().addr.addr(), OFFERED);
    assert_eq!(d1.lease().unwrap().addr.addr(), Ipv4Addr::new(10, 0, 0, 60));
    let mut addrs = client.addresses();
    addrs.sort();
    assert_eq!(
        addrs
            .iter()
            .map(|(d, a)| format!("{d} {a}"))
            .collect::<Vec<_>>(),
        ["eth0 10.0.0.50/24", "eth1 10.0.0.60/24"]
    );
    // Each server saw only its own client's messages.
    for (_, st) in &servers {
        assert!(st.lock().unwrap().seen.iter().all(|s| s.0 == 1 || s.0 == 3));
        assert_eq!(st.lock().unwrap().seen.len(), 2);
    }
}

/// INIT-REBOOT (RFC 2131 3.2): asked directly for an earlier address, a server that
/// grants it acknowledges it and no discovery takes place. A server that refuses it (the
/// address is wrong here) sends the client to discovery, which no longer suggests it;
/// one that keeps silent (no record of the client) leaves it to discovery after two
/// requests, and discovery still suggests it; a granted address that another host uses
/// is declined and not suggested again.
#[tokio::test(start_paused = true)]
async fn init_reboot_asks_for_the_earlier_address_first() {
    let cfg = |addr| DhcpConfig {
        preferred_addr: Some(addr),
        init_reboot: true,
        arp_check: false,
        ..Default::default()
    };
    let types = |st: &Arc<Mutex<Server>>| -> Vec<u8> {
        st.lock().unwrap().seen.iter().map(|s| s.0).collect()
    };
    // Granted: one request, broadcast from 0.0.0.0, and nothing else.
    let (_server, client, st) = setup(600).await;
    let d = client.dhcp("veth1", cfg(OFFERED)).await.unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
    assert_eq!(types(&st), [3]);
    let first = st.lock().unwrap().seen[0];
    assert_eq!(first, (3, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
    assert_eq!(st.lock().unwrap().reboots, 1);
    assert!(client.addresses().iter().any(|(_, a)| a.addr() == OFFERED));

    // Refused: discovery follows, without the refused address.
    let (_server, client, st) = setup(600).await;
    let other = Ipv4Addr::new(10, 0, 0, 99);
    let d = client.dhcp("veth1", cfg(other)).await.unwrap();
    assert_eq!(
        d.lease().unwrap().addr.addr(),
        OFFERED,
        "a refused address is not suggested again"
    );
    assert_eq!(types(&st), [3, 1, 3]);
    assert_eq!(st.lock().unwrap().reboots, 1);

    // Silent: two requests (after 4 and 8 s, each give or take a second), then
    // discovery, which still suggests the address and gets it.
    let (_server, client, st) = setup(600).await;
    st.lock().unwrap().ignore_reboot = true;
    let start = tokio::time::Instant::now();
    let d = client.dhcp("veth1", cfg(other)).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(d.lease().unwrap().addr.addr(), other);
    assert_eq!(types(&st), [3, 3, 1, 3]);
    assert_eq!(st.lock().unwrap().reboots, 2);
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(15),
        "{waited:?}"
    );

    // Granted but in use by another host (the ARP check): declined, and discovery
    // follows without the address (the server offers the next one after a decline).
    let (server, client, st) = setup(600).await;
    server
        .add_address("veth0", "10.0.0.50/24".parse().unwrap())
        .unwrap();
    let d = client
        .dhcp(
            "veth1",
            DhcpConfig {
                arp_check: true,
                ..cfg(OFFERED)
            },
        )
        .await
        .unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), Ipv4Addr::new(10, 0, 0, 51));
    assert_eq!(types(&st), [3, 4, 1, 3]);
    drop(server);

    // Without `init_reboot` the address is only suggested in the discovery.
    let (_server, client, st) = setup(600).await;
    let d = client
        .dhcp(
            "veth1",
            DhcpConfig {
                init_reboot: false,
                ..cfg(other)
            },
        )
        .await
        .unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), other);
    assert_eq!(types(&st), [1, 3]);
    assert_eq!(st.lock().unwrap().reboots, 0);
}

/// The lease file (`DhcpConfig::lease_file`): written with the lease, read after a
/// restart to ask for the same address by INIT-REBOOT (no discovery), removed when the
/// lease is given back or lost; a lease that ran out or a damaged file means discovery
/// as usual.
#[tokio::test(start_paused = true)]
async fn a_lease_file_brings_the_address_back_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("ustack-dhcp-leasefile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("veth1.lease");
    let _ = std::fs::remove_file(&file);
    let cfg = DhcpConfig {
        lease_file: Some(file.clone()),
        arp_check: false,
        ..Default::default()
    };
    let types = |st: &Arc<Mutex<Server>>| -> Vec<u8> {
        st.lock().unwrap().seen.iter().map(|s| s.0).collect()
    };
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };

    // First start: discovery; the lease is written.
    let (_server, client, st) = setup(600).await;
    let d = client.dhcp("veth1", cfg.clone()).await.unwrap();
    assert_eq!(types(&st), [1, 3]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\naddr 10.0.0.50/24\n"), "{text}");
    assert!(text.contains("\nserver 10.0.0.1\n"), "{text}");
    let expires: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("expires "))
        .unwrap()
        .parse()
        .unwrap();
    let now = unix_now();
    assert!(
        expires > now + 590 && expires <= now + 601,
        "{expires} vs {now}"
    );
    // Stopped without a release (the lease is still ours): the file stays.
    drop(d);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(file.exists());

    // Restart: the kept address is asked for directly and granted.
    let (_server, client, st) = setup(600).await;
    let d = client.dhcp("veth1", cfg.clone()).await.unwrap();
    assert_eq!(d.lease().unwrap().addr.addr(), OFFERED);
    assert_eq!(types(&st), [3]);
    assert_eq!(st.lock().unwrap().reboots, 1);
    // Given back: the file goes.
    d.release().await.unwrap();
    assert!(!file.exists());

    // A lease that has run out: discovery, and the new lease is written.
    std::fs::write(
        &file,
        format!(
            "addr 10.0.0.77/24\nserver 10.0.0.1\nexpires {}\n",
            unix_now() - 10
        ),
    )
    .unwrap();
    let (_server, client, st) = setup(600).await;
    let d = client.dhcp("veth1", cfg.clone()).await.unwrap();
    assert_eq!(types(&st), [1, 3]);
    assert_eq!(st.lock().unwrap().reboots, 0);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("addr 10.0.0.50/24"));
    // The server goes silent: at the end of the lease (600 s) it is lost, and the file
    // goes with it.
    st.lock().unwrap().silent = true;
    let mut d = d;
    let lost = tokio::time::timeout(Duration::from_secs(700), d.changed())
        .await
        .unwrap();
    assert_eq!(lost, Some(None));
    assert!(!file.exists());
    drop(d);

    // A damaged file: discovery.
    std::fs::write(&file, "addr not-an-address\n").unwrap();
    let (_server, client, st) = setup(600).await;
    let _d = client.dhcp("veth1", cfg.clone()).await.unwrap();
    assert_eq!(types(&st), [1, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}
