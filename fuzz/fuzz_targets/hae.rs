#![no_main]
//! Health Auto Export push bodies come from the network: never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coachd::files::hae::parse(data, 1, chrono_tz::Europe::Berlin);
});
