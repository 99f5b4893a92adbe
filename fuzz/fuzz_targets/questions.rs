#![no_main]
//! Questions files must never panic on any input: the body is `entries::questions`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::questions(data));
