#![no_main]
//! TCX and GPX parsing, and format sniffing, must never panic on any bytes.
use coachd::files::xml::{parse, root, XmlKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = root(data);
    for kind in [XmlKind::Tcx, XmlKind::Gpx] {
        let _ = parse(data, kind, 1, "c1", |_| 0);
    }
});
