//! Arbitrary bytes into every request decoder of the gateway (see `navarch_gateway::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    navarch_gateway::fuzzing::exercise(data);
});
