//! IPv4 for ustack, sans-IO (Linux: `ip_rcv`, `fib_lookup`, `inet_protos`, `ip_defrag`, `icmp`).

pub mod checksum;
