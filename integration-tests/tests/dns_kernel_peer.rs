//! ustack's DNS resolver against a real server: dnsmasq on the kernel side of a TUN
//! device, answering from a hosts file (a name with one address, a name with 60, more
//! than a 512-byte datagram holds, and nothing for an unknown name). The big answer comes
//! truncated over UDP and whole over TCP without EDNS(0), and whole in one datagram with
//! it; an unknown name is `NotFound`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use ustack::net::lookup_host_with;
use ustack::Stack;
use ustack_integration_tests::{
    block_on_in, require_root, require_tool, stack_cidr, TunNet, HOST_IP,
};

/// dnsmasq serving DNS only (no DHCP, no upstream) on HOST_IP:53 from `hosts`, for the
/// domain dns.test.
fn start_dnsmasq(net: &TunNet, hosts: &std::path::Path) -> ustack_integration_tests::Proc {
    net.ns.spawn(
        "dnsmasq",
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=53",
            "--bind-interfaces",
            &format!("--listen-address={HOST_IP}"),
            "--no-resolv",
            "--no-hosts",
            // Authoritative for dns.test: an unknown name there is NXDOMAIN.
            "--local=/dns.test/",
            &format!("--addn-hosts={}", hosts.display()),
            "--pid-file=",
            "--log-queries",
            "--log-facility=-",
        ],
    )
}

/// What one lookup saw: the addresses (or the error kind) and the TCP connections the
/// stack opened for it.
type Seen = (Result<Vec<SocketAddr>, ErrorKind>, u64);

#[test]
fn the_resolver_talks_to_dnsmasq_with_and_without_edns0() {
    require_root!();
    require_tool!("dnsmasq");
    let net = TunNet::new("dns");
    let hosts = std::env::temp_dir().join(format!(
        "ustack-dns-{}-{}.hosts",
        std::process::id(),
        net.ns.name()
    ));
    let mut text = String::from("10.88.5.1 www.dns.test\n");
    for i in 0..60 {
        text.push_str(&format!("10.88.6.{i} big.dns.test\n"));
    }
    std::fs::write(&hosts, text).expect("hosts file");
    let dnsmasq = start_dnsmasq(&net, &hosts);
    let res = block_on_in(&net, move |tun| async move {
        let stack = Stack::builder()
            .tun(&tun)
            .addr(stack_cidr().parse().map_err(|e| format!("{e:?}"))?)
            .dns(HOST_IP.parse().map_err(|e| format!("{e}"))?)
            .build()
            .await
            .map_err(|e| format!("stack: {e}"))?;
        let mut cfg = stack.dns();
        cfg.max_ttl = Duration::ZERO;
        cfg.max_negative_ttl = Duration::ZERO;
        let mut seen: Vec<Seen> = Vec::new();
        for (edns0, name) in [
            (false, "www.dns.test"),
            (false, "big.dns.test"),
            (true, "big.dns.test"),
            (true, "nothing.dns.test"),
        ] {
            cfg.edns0 = edns0;
            stack.set_dns(cfg.clone());
            let opens = stack.stats().tcp.active_opens;
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                lookup_host_with(&stack, (name, 80)),
            )
            .await
            .map_err(|_| format!("{name}: no answer within 10 s"))?;
            let got = got.map(|a| a.collect::<Vec<_>>()).map_err(|e| e.kind());
            seen.push((got, stack.stats().tcp.active_opens - opens));
        }
        stack.shutdown().await;
        Ok::<_, String>(seen)
    });
    let log = dnsmasq.terminate(Duration::from_secs(5)).1;
    let _ = std::fs::remove_file(&hosts);
    let seen = res.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let big: Vec<SocketAddr> = (0..60)
        .map(|i| format!("10.88.6.{i}:80").parse().unwrap())
        .collect();
    let got_big = |i: usize| {
        let mut v = seen[i].0.clone().unwrap_or_else(|e| panic!("{e:?}\n{log}"));
        v.sort();
        v
    };
    assert_eq!(got_big(1), big, "without EDNS(0)");
    assert_eq!(got_big(2), big, "with EDNS(0)");
    assert_eq!(
        seen[0].0,
        Ok(vec!["10.88.5.1:80".parse().unwrap()]),
        "{log}"
    );
    // The one-address answer fits a datagram; the 60-address one needs TCP without
    // EDNS(0) and comes in one datagram with it.
    assert_eq!(seen[0].1, 0);
    assert_eq!(
        seen[1].1, 1,
        "the truncated answer was not asked again over TCP"
    );
    assert_eq!(seen[2].1, 0, "TCP although EDNS(0) made room");
    assert_eq!(seen[3].0, Err(ErrorKind::NotFound), "{:?}\n{log}", seen[3]);
}
