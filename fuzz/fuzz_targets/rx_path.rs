//! The whole receive path: a `NetCore` holding a listener, a half-open connection, an
//! established connection, a connecting socket and a UDP socket gets the fuzzer's bytes
//! as a sequence of packets (raw, or with valid checksums aimed at the known sockets),
//! user calls and advancing time with timers. Asserts no panic, no timer livelock and
//! bounded tables and queues.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz::rx::run(data);
});
