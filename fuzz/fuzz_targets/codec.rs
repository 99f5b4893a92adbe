#![no_main]
//! Stored sample chunks are decoded without trusting them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = coachd::store::codec::decode(data, &mut out);
});
