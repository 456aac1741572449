//! `IcmpRepr::parse` and `IcmpError::parse` on arbitrary bytes: never panic; what parses
//! round trips through `IcmpRepr::emit`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::icmp_parse(data);
});
