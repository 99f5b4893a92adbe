#![no_main]
//! The Apple Health export parser must never panic on any input: the body is `entries::apple`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::apple(data));
