//! Fuzz target `config`: see btrfly_fuzz_targets::config.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::config(data));
