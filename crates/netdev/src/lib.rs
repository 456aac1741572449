//! Network devices for ustack (Linux: `net_device`, `net_device_ops`, `sk_buff`, NAPI).
//!
//! Every device carries raw IPv4 packets (layer 3, like a TUN device): there is no
//! Ethernet header and no ARP.

mod buf;

pub use buf::{PacketBuf, DEFAULT_HEADROOM};
