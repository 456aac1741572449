//! ustack's UDP against the Linux kernel over a TUN device: a connected socket learns
//! from the kernel's ICMP "port unreachable" that nobody listens (`ConnectionRefused`, as
//! on Linux), while an unconnected socket is not disturbed by such errors and goes on
//! receiving. The very first datagram gets its answer: the stack is returned only once
//! the kernel sends into the (persistent, already up) TUN device.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use ustack::net::UdpSocket;
use ustack::Stack;
use ustack_integration_tests::{block_on_in, require_root, stack_cidr, TunNet, HOST_IP};

async fn stack_on(tun: String) -> Result<Stack, String> {
    Stack::builder()
        .tun(&tun)
        .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
        .build()
        .await
        .map_err(|e| format!("stack: {e}"))
}

#[test]
fn port_unreachable_refuses_a_connected_socket_only() {
    require_root!();
    let net = TunNet::new("udpref");
    // A kernel echo server for one datagram on 9007; nothing listens on 9008.
    let echo = net.ns.thread(|| -> Result<(), String> {
        let s = StdUdpSocket::bind((HOST_IP, 9007)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let (n, from) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        s.send_to(&buf[..n], from).map_err(|e| e.to_string())?;
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let res = block_on_in(&net, |tun| async move {
        let stack = stack_on(tun).await?;
        let host: std::net::IpAddr = HOST_IP.parse().map_err(|e| format!("{e}"))?;
        // Connected to a closed port: the kernel answers with ICMP port unreachable.
        let connected = UdpSocket::bind_with(&stack, "0.0.0.0:0")
            .await
            .map_err(|e| e.to_string())?;
        connected
            .connect(SocketAddr::new(host, 9008))
            .await
            .map_err(|e| e.to_string())?;
        connected
            .send(b"anyone?")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let refused = tokio::time::timeout(Duration::from_secs(5), connected.recv(&mut buf)).await;
        // Unconnected: the same error does not reach it; the echo from 9007 does.
        let free = UdpSocket::bind_with(&stack, "0.0.0.0:0")
            .await
            .map_err(|e| e.to_string())?;
        free.send_to(b"anyone?", SocketAddr::new(host, 9008))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        free.send_to(b"echo me", SocketAddr::new(host, 9007))
            .await
            .map_err(|e| e.to_string())?;
        let echoed = tokio::time::timeout(Duration::from_secs(5), free.recv_from(&mut buf))
            .await
            .map_err(|_| "no echo".to_string())?
            .map_err(|e| format!("unconnected socket got an error: {e}"))?;
        let echoed_ok = &buf[..echoed.0] == b"echo me" && echoed.1.port() == 9007;
        let icmp = stack.stats().icmp.in_dest_unreachs;
        stack.shutdown().await;
        Ok((refused.map(|r| r.map_err(|e| e.kind())), echoed_ok, icmp))
    });
    echo.join().expect("echo thread").expect("echo server");
    let (refused, echoed_ok, icmp) = res.expect("ustack side");
    assert!(
        matches!(refused, Ok(Err(std::io::ErrorKind::ConnectionRefused))),
        "connected socket: {refused:?}"
    );
    assert!(echoed_ok, "the unconnected socket did not get its echo");
    assert!(icmp >= 2, "ICMP unreachables received: {icmp}");
}
