//! Shared helpers for ustack's integration tests.
