//! Fuzz target `npm_key`: see btrfly_fuzz_targets::npm_key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::npm_key(data));
