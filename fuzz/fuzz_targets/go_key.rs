//! Fuzz target `go_key`: see btrfly_fuzz_targets::go_key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::go_key(data));
