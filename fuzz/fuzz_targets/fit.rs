#![no_main]
//! FIT decoding and sniffing must never panic on any input: the body is `entries::fit`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::fit(data));
