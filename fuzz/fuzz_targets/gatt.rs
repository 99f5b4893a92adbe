#![no_main]
//! The Bluetooth characteristic decoders must never panic on any input: the body is `entries::gatt`.
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::gatt(data));
