#![no_main]
//! See `voxtap_core::fuzz::engine_timed` for the invariants this target checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| voxtap_core::fuzz::engine_timed(data));
