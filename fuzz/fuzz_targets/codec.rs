#![no_main]
//! Stored sample chunks must never panic on any input: the body is `entries::codec`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::codec(data));
