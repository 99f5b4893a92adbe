#![no_main]
//! FIT decoding (fitparser plus coachd's mapping) must never panic on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coachd::files::sniff(data);
    let _ = coachd::files::fit::parse(data, 1, |_| 0);
});
