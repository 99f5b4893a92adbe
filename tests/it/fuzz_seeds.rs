//! Every fuzz target's seed corpus (`fuzz/seeds/TARGET/`) and every crash found so far
//! (`fuzz/crashes/TARGET/`, kept in the repository; and `fuzz/artifacts/TARGET/` when a
//! local fuzzing run left some) replayed through the targets' own bodies
//! (`fuzz/entries.rs`), without cargo-fuzz: none may panic.

#[path = "../../fuzz/entries.rs"]
mod entries;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly in `dir`, sorted (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_fuzz_seed_and_saved_crash_goes_through_its_parser_without_a_panic() {
    let root = fuzz_dir();
    let mut replayed = 0;
    let mut panicked = Vec::new();
    for (target, body) in entries::TARGETS {
        let seeds = files_in(&root.join("seeds").join(target));
        assert!(!seeds.is_empty(), "fuzz target {target} has no seeds in fuzz/seeds/{target}/");
        let crashes = [root.join("crashes").join(target), root.join("artifacts").join(target)];
        for file in seeds.iter().cloned().chain(crashes.iter().flat_map(|d| files_in(d))) {
            let bytes = std::fs::read(&file).expect("read a fuzz input");
            // Each prefix too: a truncated upload is the commonest hostile input.
            let cuts = [bytes.len(), bytes.len() / 2, bytes.len().saturating_sub(1)];
            for cut in cuts {
                if std::panic::catch_unwind(|| body(&bytes[..cut])).is_err() {
                    panicked.push(format!("{target}: {} (first {cut} bytes)", file.display()));
                }
            }
            replayed += 1;
        }
    }
    assert!(panicked.is_empty(), "parsers panicked on:\n{}", panicked.join("\n"));
    assert!(replayed >= entries::TARGETS.len(), "only {replayed} inputs replayed");
}

#[test]
fn every_fuzz_target_binary_is_declared_and_uses_its_entry() {
    // The fuzz crate's binaries and the shared bodies stay one list.
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in entries::TARGETS {
        assert!(manifest.contains(&format!("name = \"{target}\"")), "fuzz/Cargo.toml lacks the bin {target}");
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{target}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(source.contains(&format!("entries::{target}(data)")), "{target}.rs does not call entries::{target}");
    }
}

/// Writes the seeds of the targets whose inputs are not file fixtures (the file formats'
/// seeds come from `files::write_fuzz_seeds`):
/// `cargo test --test integration write_more_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_more_fuzz_seeds() {
    let root = fuzz_dir().join("seeds");
    let write = |dir: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        std::fs::write(root.join(dir).join(name), bytes).expect("write");
    };
    // Health Auto Export: steps, sleep and a workout with heart rate.
    let hae = serde_json::json!({"data": {
        "metrics": [
            {"name": "step_count", "units": "count", "data": [{"date": "2026-11-20 00:00:00 +0100", "qty": 8421}]},
            {"name": "sleep_analysis", "units": "hr", "data": [{"date": "2026-11-21 00:00:00 +0100",
                "asleep": 7.2, "sleepStart": "2026-11-20 23:10:00 +0100", "sleepEnd": "2026-11-21 06:40:00 +0100"}]},
            {"name": "mindful_minutes", "units": "min", "data": [{"date": "2026-11-20 07:00:00 +0100", "qty": 10}]}
        ],
        "workouts": [{"name": "Outdoor Run", "start": "2026-11-20 18:00:00 +0100", "end": "2026-11-20 18:30:00 +0100",
            "heartRateData": [{"date": "2026-11-20 18:01:00 +0100", "Avg": 150, "Min": 140, "Max": 160}]}]
    }});
    write("hae", "push.json", hae.to_string().as_bytes());
    write("hae", "empty.json", br#"{"data": {"metrics": [], "workouts": []}}"#);
    // Sample chunks as the store writes them.
    let mut chunk = Vec::new();
    let points: Vec<(i64, i64)> = (0..60).map(|i| (1_763_658_000_000 + i * 1000, 120 + (i * 7) % 30)).collect();
    coachd::store::codec::encode(&points, &mut chunk);
    write("codec", "hr-minute.bin", &chunk);
    let mut uneven = Vec::new();
    coachd::store::codec::encode(&[(0, -5), (3, 1_000_000), (1_000_003, 0)], &mut uneven);
    write("codec", "uneven.bin", &uneven);
    // GATT notifications: the first byte picks the characteristic (its index in
    // MEASUREMENTS), the rest is what a sensor sends, in two halves.
    let gatt: &[(&str, &[u8])] = &[
        ("hr-u8.bin", &[0, 0x00, 72, 0x00, 73]),
        ("hr-u16-rr.bin", &[0, 0x11, 0x90, 0x01, 0x00, 0x04, 0x11, 0x90, 0x01, 0x00, 0x04]),
        ("rsc.bin", &[1, 0x00, 0x00, 0x02, 80, 0x00, 0x00, 0x02, 80]),
        (
            "csc.bin",
            &[2, 0x03, 10, 0, 0, 0, 0x00, 0x04, 5, 0, 0x00, 0x04, 0x03, 12, 0, 0, 0, 0x00, 0x08, 7, 0, 0x00, 0x08],
        ),
        ("power.bin", &[3, 0x00, 0x00, 200, 0x00, 0x00, 0x00, 210, 0x00]),
        ("treadmill.bin", &[4, 0x00, 0x00, 0xE8, 0x03, 0x00, 0x00, 0xEA, 0x03]),
        ("rower.bin", &[5, 0x00, 0x00, 24, 0x10, 0x00, 0x00, 0x00, 26, 0x11, 0x00]),
        ("bike.bin", &[6, 0x00, 0x00, 0xD0, 0x07, 0x00, 0x00, 0xD4, 0x07]),
    ];
    for (name, bytes) in gatt {
        write("gatt", name, bytes);
    }
    // Every homework form the language documents, and the flags beside a phrase.
    for (i, (written, echoed, _)) in coachd::app::PHRASE_FORMS.iter().enumerate() {
        write("phrase", &format!("form-{i:02}.txt"), written.as_bytes());
        write("phrase", &format!("echo-{i:02}.txt"), echoed.as_bytes());
    }
    write("phrase", "window.txt", b"19:00-03:00");
    write("phrase", "days.txt", b"mon,wed,sat");
    write(
        "questions",
        "weekly.txt",
        "[1-10] How hard was training this week?\n[yes/no] Did you sleep 7 hours most nights?\nWhat got in the way?\n"
            .as_bytes(),
    );
    write("questions", "bom-crlf.txt", "\u{feff}[yes/no] Stretched today?\r\n\r\n[1-10] Energy\r\n".as_bytes());
}
