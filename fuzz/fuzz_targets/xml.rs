#![no_main]
//! TCX and GPX parsing must never panic on any input: the body is `entries::xml`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::xml(data));
