//! Fuzz target `pip_page`: see btrfly_fuzz_targets::pip_page.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btrfly_fuzz_targets::pip_page(data));
