//! ustack ustack
