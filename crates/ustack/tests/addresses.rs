//! Addresses added to and removed from a running stack (`ip addr add` / `ip addr del`).

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{echo_roundtrip, echo_server, pair};
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack::{Ipv4Cidr, RouteKind};

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

#[tokio::test]
async fn addresses_come_and_go_while_the_stack_runs() {
    let (s1, s2) = pair().await;
    let l = TcpListener::bind_with(&s2, "0.0.0.0:7000").await.unwrap();
    tokio::spawn(echo_server(l));
    assert_eq!(
        s2.addresses(),
        vec![("veth1".to_string(), cidr("10.0.0.2/24"))]
    );

    // A second address in the same subnet: reachable at once, by TCP and UDP.
    s2.add_address("veth1", cidr("10.0.0.3/24")).unwrap();
    assert_eq!(
        s2.addresses(),
        vec![
            ("veth1".to_string(), cidr("10.0.0.2/24")),
            ("veth1".to_string(), cidr("10.0.0.3/24"))
        ]
    );
    let st = TcpStream::connect_with(&s1, "10.0.0.3:7000").await.unwrap();
    assert_eq!(
        st.peer_addr().unwrap(),
        "10.0.0.3:7000".parse::<SocketAddr>().unwrap()
    );
    echo_roundtrip(st, 10_000, 3, "to the added address").await;
    let u = UdpSocket::bind_with(&s2, "10.0.0.3:7001").await.unwrap();
    let c = UdpSocket::bind_with(&s1, "0.0.0.0:0").await.unwrap();
    c.send_to(b"hi", "10.0.0.3:7001").await.unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"hi");

    // Errors say what is wrong.
    let e = s2.add_address("veth1", cidr("10.0.0.3/24")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = s2.add_address("nosuch0", cidr("10.9.0.1/24")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(19), "{e}");
    let e = s2.remove_address("veth1", cidr("10.0.0.4/24")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");
    let e = s2.remove_address("veth1", cidr("10.0.0.3/16")).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::AddrNotAvailable,
        "the prefix must match: {e}"
    );

    // Removing the first address keeps the subnet, now sourced from the other one.
    s2.remove_address("veth1", cidr("10.0.0.2/24")).unwrap();
    let connected: Vec<_> = s2
        .routes()
        .into_iter()
        .filter(|r| r.kind == RouteKind::Connected)
        .collect();
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert_eq!(connected[0].dst, cidr("10.0.0.0/24"));
    assert_eq!(connected[0].src, Some(Ipv4Addr::new(10, 0, 0, 3)));
    // A removed address is not ours any more: nothing answers there, and it cannot be
    // bound.
    let gone = tokio::time::timeout(
        Duration::from_millis(500),
        TcpStream::connect_with(&s1, "10.0.0.2:7000"),
    )
    .await;
    assert!(
        !matches!(gone, Ok(Ok(_))),
        "a connection to a removed address: {gone:?}"
    );
    let e = UdpSocket::bind_with(&s2, "10.0.0.2:0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
    let st = TcpStream::connect_with(&s1, "10.0.0.3:7000").await.unwrap();
    echo_roundtrip(st, 1000, 4, "to the remaining address").await;

    // An address in a new subnet brings its connected route; the last address of a
    // subnet takes the route with it.
    s2.add_address("veth1", cidr("10.5.0.1/24")).unwrap();
    s1.add_route(cidr("10.5.0.0/24"), None).unwrap();
    let st = TcpStream::connect_with(&s1, "10.5.0.1:7000").await.unwrap();
    echo_roundtrip(st, 1000, 5, "to a new subnet").await;
    s2.remove_address("veth1", cidr("10.5.0.1/24")).unwrap();
    assert!(
        s2.routes().iter().all(|r| r.dst != cidr("10.5.0.0/24")),
        "{:?}",
        s2.routes()
    );
}
