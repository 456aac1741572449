//! The UDP input path on arbitrary bytes: never panics; a datagram that is accepted is
//! delivered byte-exact.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::udp_parse(data);
});
