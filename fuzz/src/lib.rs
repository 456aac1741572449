//! The logic of ustack's fuzz targets, kept in a library so that the same code runs under
//! libFuzzer (`cargo +nightly fuzz run <target>`, see `scripts/fuzz.sh`) and on stable,
//! where `cargo test --manifest-path fuzz/Cargo.toml` replays the seed corpora and every
//! saved crash under `fuzz/regressions/`.
//!
//! Every entry point takes arbitrary bytes and panics only when an invariant of the code
//! under test is broken (that panic is the finding).

pub mod build;
pub mod dhcp;
pub mod dns;
pub mod ether;
pub mod rx;
mod script;
mod wire;

pub use dhcp::dhcp_parse;
pub use dns::dns_parse;
pub use wire::{icmp_parse, ipv4_parse, tcp_parse, udp_parse};

/// The names of the fuzz targets, as in `fuzz/Cargo.toml` and `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 8] = [
    "ipv4_parse",
    "tcp_parse",
    "udp_parse",
    "icmp_parse",
    "dns_parse",
    "dhcp_parse",
    "rx_path",
    "arp_rx",
];

/// An input's first byte (the mode of the targets that have one; 0 for empty input) and
/// the rest.
pub(crate) fn mode_byte(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&m, rest)) => (m, rest),
        None => (0, &[]),
    }
}

/// Runs the target `name` on `data` (used by the replay test and the corpus tools).
pub fn run_target(name: &str, data: &[u8]) {
    match name {
        "ipv4_parse" => ipv4_parse(data),
        "tcp_parse" => tcp_parse(data),
        "udp_parse" => udp_parse(data),
        "icmp_parse" => icmp_parse(data),
        "dns_parse" => dns_parse(data),
        "dhcp_parse" => dhcp_parse(data),
        "rx_path" => rx::run(data),
        "arp_rx" => ether::run(data),
        other => panic!("unknown fuzz target {other}"),
    }
}
