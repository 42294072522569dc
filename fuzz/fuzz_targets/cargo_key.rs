//! Fuzz target `cargo_key`: see btrfly_fuzz_targets::cargo_key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::cargo_key(data));
