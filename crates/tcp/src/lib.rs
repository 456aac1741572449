//! ustack tcp
