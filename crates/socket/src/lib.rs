//! ustack socket
