#![no_main]
//! The homework language must never panic on any input: the body is `entries::phrase`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::phrase(data));
