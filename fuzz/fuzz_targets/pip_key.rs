//! Fuzz target `pip_key`: see btrfly_fuzz_targets::pip_key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::pip_key(data));
