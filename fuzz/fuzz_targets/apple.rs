#![no_main]
//! The Apple Health export parser (reads a file: the input is written to a temp file).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("coachd-fuzz-apple-{}.xml", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = coachd::files::apple::parse(&path, false, 1, chrono_tz::UTC, &|_, _| {});
        let _ = coachd::files::apple::parse(&path, true, 1, chrono_tz::UTC, &|_, _| {});
    }
});
