//! `Ipv4Repr::parse` on arbitrary bytes: never panics; what parses obeys its documented
//! invariants and survives an emit/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::ipv4_parse(data);
});
