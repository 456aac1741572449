//! ECN (RFC 3168) with the Linux kernel as the peer, over TUN in a namespace: the kernel
//! asks for ECN (`net.ipv4.tcp_ecn = 1` in the namespace), ustack's `echo_server`
//! accepts (its default), and iptables rules play an ECN-marking router queue in both
//! directions (some of the ECN-capable data packets arrive Congestion Experienced). The
//! stack's pcap shows the negotiation, ECT(0) on new data, each side's ECN-Echo and the
//! other side's CWR in answer; the echoed data arrives intact.

use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use ustack_integration_tests::pcap::{self, flags, Segment};
use ustack_integration_tests::{
    read_pattern, require_root, require_tool, write_pattern, TunNet, HOST_IP, STACK_IP,
};

const N: u64 = 8 * 1024 * 1024;

/// The two bits of the IPv4 ECN field: ECT(0) and Congestion Experienced.
const ECT0: u8 = 0b10;
const CE: u8 = 0b11;

#[test]
fn ecn_with_a_kernel_peer_negotiates_marks_echoes_and_reduces() {
    require_root!();
    require_tool!("iptables");
    ecn_echo_run("ecn", &[]);
}

/// The same over a TUN with offloads: ustack sends TCP super-segments (CWR on the first
/// segment the kernel cuts from one) and the kernel hands over its own.
#[test]
fn ecn_with_a_kernel_peer_over_an_offload_tun() {
    require_root!();
    require_tool!("iptables");
    ecn_echo_run("ecno", &["--offload"]);
}

/// A kernel client asking for ECN echoes `N` bytes through ustack's `echo_server` (with
/// `args`) while iptables marks CE; checks the stack's capture.
fn ecn_echo_run(tag: &str, args: &[&str]) {
    let net = TunNet::new(tag);
    net.ns.sh("sysctl -qw net.ipv4.tcp_ecn=1");
    // Kernel -> ustack leaves through the TUN (POSTROUTING); ustack -> kernel enters
    // through it (PREROUTING). Only ECT(0) data packets are marked, as a router's queue
    // would mark them instead of dropping. The kernel's rule sees its GSO packets before
    // they are cut into segments (a few hundred for the whole transfer), so it marks
    // more of them.
    for (hook, p) in [("POSTROUTING -o", "0.2"), ("PREROUTING -i", "0.05")] {
        net.ns.sh(&format!(
            "iptables -t mangle -A {hook} {} -p tcp -m length --length 500:65535 \
             -m ecn --ecn-ip-ect 2 -m statistic --mode random --probability {p} \
             -j TOS --set-tos 0x03/0x03",
            net.tun
        ));
    }
    let cap = std::env::temp_dir().join(format!("{}.pcap", net.ns.name()));
    let cap_s = cap.display().to_string();
    let mut all = vec!["--pcap", cap_s.as_str()];
    all.extend_from_slice(args);
    let server = net.stack("echo_server", &all);

    let (n, ok) = net
        .ns
        .within(move || -> std::io::Result<(u64, bool)> {
            let mut s = TcpStream::connect_timeout(
                &format!("{STACK_IP}:7").parse().unwrap(),
                Duration::from_secs(5),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut w = s.try_clone()?;
            let writer = std::thread::spawn(move || -> std::io::Result<()> {
                write_pattern(&mut w, N)?;
                w.shutdown(Shutdown::Write)
            });
            let (total, ok) = read_pattern(&mut s)?;
            writer.join().expect("writer thread")?;
            Ok((total, ok))
        })
        .expect("kernel client");
    assert_eq!(n, N, "echoed bytes");
    assert!(ok, "echoed data corrupted");
    let marked = net.ns.sh("iptables -t mangle -L -v -x -n");
    println!("{marked}");

    let kernel_retrans = net.ns.nstat().get("TcpRetransSegs").copied().unwrap_or(0);
    let (clean, log) = server.terminate(Duration::from_secs(5));
    assert!(clean, "echo_server did not exit cleanly:\n{log}");
    let segs = pcap::read_tcp(&cap).expect("read pcap");
    let _ = std::fs::remove_file(&cap);
    check_ecn(&segs, kernel_retrans);
}

fn check_ecn(segs: &[Segment], kernel_retrans: u64) {
    let host: std::net::Ipv4Addr = HOST_IP.parse().unwrap();
    let stack: std::net::Ipv4Addr = STACK_IP.parse().unwrap();
    let conn: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.sport == 7 || s.dport == 7)
        .collect();
    let syn = conn
        .iter()
        .find(|s| s.is_syn() && s.src == host)
        .expect("SYN in capture");
    let synack = conn
        .iter()
        .find(|s| s.is_synack() && s.src == stack)
        .expect("SYN-ACK in capture");
    assert!(syn.has(flags::ECE | flags::CWR), "kernel SYN: {syn:?}");
    assert!(
        synack.has(flags::ECE) && !synack.has(flags::CWR),
        "ustack SYN-ACK: {synack:?}"
    );
    let data = |from| {
        conn.iter()
            .filter(move |s| s.src == from && s.payload_len > 0 && !s.has(flags::SYN))
    };
    let ecn_of = |s: &&&Segment| s.tos & 0b11;
    // The pcap holds what ustack sent (before the kernel's rule could mark it) and what
    // it received (after the rule).
    let sent: Vec<_> = data(stack).collect();
    let sent_ect = sent.iter().filter(|s| ecn_of(s) == ECT0).count();
    println!("ustack data segments: {} ({} ECT(0))", sent.len(), sent_ect);
    // Retransmissions go without ECT; everything else is ECT(0).
    assert!(
        sent_ect * 10 >= sent.len() * 9,
        "ustack data not ECN-capable"
    );
    let bare_acks = conn
        .iter()
        .filter(|s| s.src == stack && s.payload_len == 0 && !s.has(flags::SYN));
    assert!(
        bare_acks.clone().all(|s| s.tos & 0b11 == 0),
        "a bare ACK from ustack is ECN-capable"
    );
    let got: Vec<_> = data(host).collect();
    let got_ce = got.iter().filter(|s| ecn_of(s) == CE).count();
    println!("kernel data segments: {} ({} CE)", got.len(), got_ce);
    // New data from the kernel is ECN-capable; its retransmissions need not be (RFC 3168
    // 6.1.5, and Linux sends them Not-ECT). A busy machine can overflow the TUN's queue,
    // and the capture may then hold a retransmission without the original, so the
    // kernel's own count of retransmitted segments bounds the Not-ECT data segments.
    let not_ect: Vec<_> = got
        .iter()
        .filter(|s| !matches!(ecn_of(s), ECT0 | CE) && !s.has(flags::FIN))
        .collect();
    assert!(
        not_ect.len() as u64 <= kernel_retrans,
        "kernel data not ECN-capable ({} segments, {kernel_retrans} retransmitted): {:?}",
        not_ect.len(),
        not_ect.first()
    );
    assert!(got_ce > 0, "no kernel data arrived marked");
    // Each side echoes the marks it received (ECE); the other answers with CWR on later
    // data.
    let answered = |echoer, sender| {
        let first_ece = conn
            .iter()
            .position(|s| s.src == echoer && s.has(flags::ECE) && !s.has(flags::SYN))
            .expect("an ECN-Echo");
        conn.iter()
            .skip(first_ece)
            .any(|s| s.src == sender && s.has(flags::CWR) && s.payload_len > 0)
    };
    assert!(
        answered(stack, host),
        "the kernel never answered ustack's ECN-Echo with CWR"
    );
    assert!(
        answered(host, stack),
        "ustack never answered the kernel's ECN-Echo with CWR"
    );
    assert!(!conn.iter().any(|s| s.has(flags::RST)), "RST on the wire");
}
