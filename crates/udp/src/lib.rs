//! ustack udp
