#![no_main]
//! See `voxtap_core::fuzz::sdp` for the invariant this target checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| voxtap_core::fuzz::sdp(data));
