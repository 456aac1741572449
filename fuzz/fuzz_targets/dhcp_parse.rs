//! DHCP server messages as the client parses them: never panics; an accepted message has
//! a message type and no more addresses than its bytes hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::dhcp_parse(data);
});
