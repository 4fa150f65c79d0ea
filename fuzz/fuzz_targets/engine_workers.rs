#![no_main]
//! See `voxtap_core::fuzz::engine_workers` for what this target checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| voxtap_core::fuzz::engine_workers(data));
