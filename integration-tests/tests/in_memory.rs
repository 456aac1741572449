//! The in-memory example needs no privileges: two stacks on an in-memory link in one
//! process, a bulk transfer, counters printed. Runs without root too.

use std::process::Command;
use std::time::Duration;

use ustack_integration_tests::{example_bin, Proc};

#[test]
fn in_memory_example_transfers_and_prints_counters() {
    let mut cmd = Command::new(example_bin("in_memory"));
    cmd.args(["--size-mib", "16", "--connections", "4"]);
    let (ok, out) = Proc::spawn("in_memory", cmd).wait(Duration::from_secs(120));
    println!("{out}");
    assert!(ok, "in_memory failed");
    assert!(
        out.contains("server counted 16.0 MiB"),
        "transfer line missing"
    );
    assert!(out.contains("client stack counters"), "counters missing");
}

#[test]
fn in_memory_example_with_faults() {
    let mut cmd = Command::new(example_bin("in_memory"));
    cmd.args([
        "--size-mib",
        "4",
        "--loss",
        "1",
        "--reorder",
        "2",
        "--duplicate",
        "1",
        "--delay",
        "2",
        "--seed",
        "7",
    ]);
    let (ok, out) = Proc::spawn("in_memory", cmd).wait(Duration::from_secs(180));
    println!("{out}");
    assert!(ok, "in_memory with faults failed");
    assert!(
        out.contains("server counted 4.0 MiB"),
        "transfer line missing"
    );
}

#[test]
fn every_example_has_help() {
    for bin in [
        "echo_server",
        "http_server",
        "http_client",
        "bench_server",
        "tcp_client",
        "in_memory",
    ] {
        let out = Command::new(example_bin(bin))
            .arg("--help")
            .output()
            .expect("run --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin} --help failed");
        assert!(text.contains("Usage:"), "{bin} --help: {text}");
        if bin != "in_memory" {
            for flag in [
                "--tun",
                "--addr",
                "--gateway",
                "--mtu",
                "--pcap",
                "--loss",
                "--reorder",
                "--duplicate",
                "--delay",
                "--seed",
                "--host-addr",
            ] {
                assert!(text.contains(flag), "{bin} --help lacks {flag}");
            }
        }
    }
}
