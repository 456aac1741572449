//! Hostile frames on an Ethernet device: ARP, the neighbour table and its timers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::ether::run(data);
});
