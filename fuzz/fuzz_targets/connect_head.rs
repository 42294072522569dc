//! Fuzz target `connect_head`: see btrfly_fuzz_targets::connect_head.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::connect_head(data));
