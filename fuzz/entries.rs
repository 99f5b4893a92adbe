//! The fuzz targets' bodies, one function per target: each feeds any bytes to a parser
//! of outside input exactly as coachd calls it. Shared by the libFuzzer binaries
//! (`fuzz_targets/*.rs`, through `#[path]`) and by the test suite, which replays every
//! seed and saved crash through the same functions (`tests/it/fuzz_seeds.rs`), so a
//! crash once found stays found without cargo-fuzz.
#![allow(dead_code)]

/// A target's body: any bytes in, no panic out.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder of its seeds and crashes) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("fit", fit),
    ("xml", xml),
    ("apple", apple),
    ("hae", hae),
    ("codec", codec),
    ("gatt", gatt),
    ("phrase", phrase),
    ("questions", questions),
];

/// FIT decoding (fitparser plus coachd's mapping), and format sniffing.
pub fn fit(data: &[u8]) {
    let _ = coachd::files::sniff(data);
    let _ = coachd::files::fit::parse(data, 1, |_| 0);
}

/// TCX and GPX parsing, and the XML root sniffing.
pub fn xml(data: &[u8]) {
    use coachd::files::xml::{parse, root, XmlKind};
    let _ = root(data);
    for kind in [XmlKind::Tcx, XmlKind::Gpx] {
        let _ = parse(data, kind, 1, "c1", |_| 0);
    }
}

/// The Apple Health export parser reads a file: the input is written to a temp file
/// (named per process and thread, so replays in parallel tests do not collide).
pub fn apple(data: &[u8]) {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = std::env::temp_dir().join(format!("coachd-fuzz-apple-{}-{thread}.xml", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = coachd::files::apple::parse(&path, false, 1, chrono_tz::UTC, &|_, _| {});
        let _ = coachd::files::apple::parse(&path, true, 1, chrono_tz::UTC, &|_, _| {});
    }
    let _ = std::fs::remove_file(&path);
}

/// Health Auto Export push bodies come from the network.
pub fn hae(data: &[u8]) {
    let _ = coachd::files::hae::parse(data, 1, chrono_tz::Europe::Berlin);
}

/// Stored sample chunks are decoded without trusting them.
pub fn codec(data: &[u8]) {
    let mut out = Vec::new();
    let _ = coachd::store::codec::decode(data, &mut out);
}

/// Every Bluetooth characteristic decoder: the first byte picks the characteristic, the
/// rest is its payload, fed in two halves so the counter-based ones (crank and wheel
/// revolutions) compute rates from hostile pairs too.
pub fn gatt(data: &[u8]) {
    use coachd::ble::reading::{Decoder, MEASUREMENTS};
    let Some((&pick, payload)) = data.split_first() else { return };
    let mut decoder = Decoder::default();
    let characteristic = MEASUREMENTS[usize::from(pick) % MEASUREMENTS.len()];
    let half = payload.len() / 2;
    let _ = decoder.decode(characteristic, &payload[..half]);
    let _ = decoder.decode(characteristic, &payload[half..]);
    let _ = coachd::ble::gatt::body_sensor_location(payload);
}

/// The homework language (a trainer's words, from the dashboard or the command line),
/// with the flags that come beside it: weekdays and a daily window.
pub fn phrase(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = coachd::engine::phrase::parse_with_timing(text);
    let _ = coachd::engine::rule::Window::parse(text);
    let _ = coachd::app::parse_weekdays(text);
}

/// A questions file (`coachd assign CLIENT --questions FILE`).
pub fn questions(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = coachd::app::parse_questions(text);
}
