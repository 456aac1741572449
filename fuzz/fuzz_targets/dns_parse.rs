//! DNS responses as the stub resolver parses them: never panics, never loops; an accepted
//! response holds no more addresses than answer records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::dns_parse(data);
});
