#![no_main]
//! Health Auto Export push bodies must never panic on any input: the body is `entries::hae`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::hae(data));
