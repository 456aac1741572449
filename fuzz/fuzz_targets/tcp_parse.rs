//! `TcpRepr::parse` (header + options) on arbitrary bytes: never panics; what parses
//! round trips through `TcpRepr::emit`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::tcp_parse(data);
});
