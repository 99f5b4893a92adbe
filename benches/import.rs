//! File import benchmark, side by side in one run:
//!
//! 1. `COACHD_BENCH_FILES` one-hour FIT activities (default 500; per-second HR and
//!    cadence): the bare `fitparser` crate parsing them on one thread (nothing mapped or
//!    kept: the floor a single-threaded importer could reach), coachd parsing only,
//!    coachd importing end to end (read, hash, parse on every core, store in
//!    transactions of many files with a savepoint each, fsync), `coachd import` of the
//!    folder (the binary, a fresh data dir: what a trainer runs), the same with the
//!    binary named by `COACHD_BENCH_BEFORE` (an older build, for before/after in one
//!    run), and Python's `fitdecode` merely parsing the same files (when
//!    `python3 -c "import fitdecode"` works; `pip install fitdecode`); then the ratios.
//! 2. A Strava-shaped account export of `COACHD_BENCH_EXPORT` one-hour activities
//!    (default 2000; 0 skips it; FIT, GPX and TCX in turn, each gzipped, per-second
//!    points): `coachd import` of the zip (wall time, peak RSS, activities/s) beside the
//!    bare parse of the same members in this process (gunzip + parse, nothing stored),
//!    and the peak RSS of a tenth of the export, to show memory does not grow with it.
//! 3. `coachd import` of a synthetic Apple Health export.xml of `COACHD_BENCH_APPLE_MB`
//!    MB (default 1024; 0 skips it): throughput and peak memory (max RSS), for this
//!    build and the `COACHD_BENCH_BEFORE` one.
//!
//!     cargo build --release && cargo bench --bench import
//!
//! Before and after in one run: build the older commit's binary once and name it, e.g.
//! `git worktree add /tmp/old OLD && cargo build --release --manifest-path
//! /tmp/old/Cargo.toml && COACHD_BENCH_BEFORE=/tmp/old/target/release/coachd cargo bench
//! --bench import`.

#[path = "../tests/it/fit_encoder.rs"]
#[allow(dead_code)]
mod fit_encoder;

use chrono::{Duration, TimeZone, Utc};
use coachd::config::{Config, Synchronous};
use coachd::files::{import_files, quiet, Outcome};
use coachd::paths::DataDir;
use coachd::store::NewClient;
use fit_encoder::FitWriter;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn hour_fit(i: u32) -> Vec<u8> {
    let start = (Utc.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).single().expect("t") + Duration::hours(i64::from(i) * 9))
        .timestamp();
    let mut w = FitWriter::default();
    w.file_id(50_000 + i, start);
    for s in 0..3600 {
        w.record(start + s, 120 + ((s * 7 + i64::from(i)) % 50) as u8, 80 + (s % 10) as u8);
    }
    w.session(&fit_encoder::SessionSpec {
        start,
        elapsed_s: 3600,
        timer_s: 3600,
        sport: fit_encoder::SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 145,
        max_hr: 170,
    });
    w.finish()
}

/// The child's peak resident memory (VmHWM, a high-water mark), polled until it exits.
fn run_measuring_peak(mut cmd: Command) -> (std::process::Output, u64) {
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Ok(text) = std::fs::read_to_string(&status_path) {
                if let Some(kb) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let out = child.wait_with_output().expect("wait");
    let _ = watcher.join();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

fn write_apple_export(path: &Path, mb: u64) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HealthData locale=\"en_DE\">").expect("write");
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("t");
    let mut written = 0u64;
    let mut i = 0i64;
    while written < mb << 20 {
        let t = (t0 + Duration::seconds(i * 30)).format("%Y-%m-%d %H:%M:%S +0100");
        let line = if i % 3 == 0 {
            format!("<Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"Phone\" unit=\"count\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\"/>\n", 10 + i % 40)
        } else {
            format!("<Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Watch\" unit=\"count/min\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\"/>\n", 60 + i % 90)
        };
        f.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
        if i % 20_000 == 0 {
            let end = (t0 + Duration::seconds(i * 30 + 1800)).format("%Y-%m-%d %H:%M:%S +0100");
            let w = format!("<Workout workoutActivityType=\"HKWorkoutActivityTypeRunning\" duration=\"30\" durationUnit=\"min\" sourceName=\"Watch\" startDate=\"{t}\" endDate=\"{end}\"/>\n");
            f.write_all(w.as_bytes()).expect("write");
            written += w.len() as u64;
        }
        i += 1;
    }
    writeln!(f, "</HealthData>").expect("write");
    f.flush().expect("flush");
    written
}

/// `coachd import` of `paths` into a fresh data dir: (seconds, peak RSS in kB, stdout).
fn cli_import(bin: &Path, data: &Path, tz: &str, paths: &[&Path]) -> (f64, u64, String) {
    let added = Command::new(bin)
        .env("COACHD_DATA_DIR", data)
        .args(["client", "add", "bench", "--tz", tz])
        .output()
        .expect("coachd");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let mut cmd = Command::new(bin);
    cmd.env("COACHD_DATA_DIR", data).arg("import").arg("bench").args(paths);
    let t = Instant::now();
    let (out, rss) = run_measuring_peak(cmd);
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{} import failed: {}", bin.display(), String::from_utf8_lossy(&out.stdout));
    (secs, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The binaries to compare: this build's, and the one `COACHD_BENCH_BEFORE` names.
fn binaries() -> Vec<(&'static str, std::path::PathBuf)> {
    let mut bins = Vec::new();
    if let Some(before) = std::env::var_os("COACHD_BENCH_BEFORE") {
        let before = std::path::PathBuf::from(before);
        assert!(before.is_file(), "COACHD_BENCH_BEFORE={} is not a file", before.display());
        bins.push(("before", before));
    }
    bins.push(("this build", std::path::PathBuf::from(env!("CARGO_BIN_EXE_coachd"))));
    bins
}

fn main() {
    let n: u32 = std::env::var("COACHD_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("fit");
    std::fs::create_dir_all(&files).expect("mkdir");
    let mut paths = Vec::new();
    for i in 0..n {
        let p = files.join(format!("{i:04}.fit"));
        std::fs::write(&p, hour_fit(i)).expect("write");
        paths.push(p);
    }
    let samples = f64::from(n) * 3600.0;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!("{n} one-hour FIT files, per-second records ({samples:.0} records); {cores} cores\n");
    println!("{:<60} {:>10} {:>10} {:>12} {:>10}", "", "time", "files/s", "records/s", "peak RSS");
    let row = |label: &str, secs: f64, rss_kb: Option<u64>| {
        let rss = rss_kb.map_or("-".to_string(), |kb| format!("{:.1} MB", kb as f64 / 1024.0));
        println!("{label:<60} {secs:>8.2} s {:>10.0} {:>12.0} {rss:>10}", f64::from(n) / secs, samples / secs);
    };

    // The bare decoder, one thread: read each file and decode it, nothing mapped or kept.
    let t = Instant::now();
    let mut records = 0usize;
    for p in &paths {
        let bytes = std::fs::read(p).expect("read");
        let decoded = fitparser::from_bytes(&bytes).expect("fitparser");
        records += decoded.iter().filter(|r| r.kind() == fitparser::profile::MesgNum::Record).count();
    }
    let bare = t.elapsed().as_secs_f64();
    assert_eq!(records as f64, samples);
    row("bare fitparser: parse only, single-threaded, same files", bare, None);

    // coachd parsing only.
    let client = coachd::store::Client {
        id: 1,
        name: "bench".into(),
        tz: chrono_tz::Europe::Berlin,
        hr_max: None,
        birth_year: None,
        trainer: None,
        trainer_id: None,
        created: Utc::now(),
    };
    let t = Instant::now();
    for p in &paths {
        let bytes = std::fs::read(p).expect("read");
        let format = coachd::files::sniff(&bytes).expect("sniff");
        std::hint::black_box(coachd::files::parse(&bytes, format, &client, chrono_tz::Europe::Berlin).expect("parse"));
    }
    row("coachd: parse only (fitparser + mapping), single-threaded", t.elapsed().as_secs_f64(), None);

    // coachd end to end in this process: read, hash, parse, store, fsync.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let secs = rt.block_on(async {
        let data = DataDir::new(dir.path().join("data"));
        let mut config = Config::default();
        config.store.synchronous = Synchronous::Full;
        let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("init");
        let client = store
            .add_client(&NewClient::parse("bench", "Europe/Berlin", Some(190), None).expect("c"))
            .await
            .expect("add");
        let t = Instant::now();
        let mut imported = 0;
        import_files(&store, &client, chrono_tz::Europe::Berlin, &paths, quiet(), |_, outcome| {
            assert!(matches!(outcome, Outcome::Imported { .. }), "{outcome:?}");
            imported += 1;
        })
        .await
        .expect("import");
        assert_eq!(imported, n);
        let secs = t.elapsed().as_secs_f64();
        store.close().await;
        secs
    });
    row("coachd: import end to end, in process (synchronous = full)", secs, None);

    // The binary, as a trainer runs it: a fresh data dir, the folder, default settings.
    let mut cli = Vec::new();
    for (which, bin) in binaries() {
        let data = dir.path().join(format!("fit-data-{}", which.replace(' ', "-")));
        let (secs, rss, out) = cli_import(&bin, &data, "Europe/Berlin", &[files.as_path()]);
        assert_eq!(out.lines().filter(|l| l.starts_with("imported")).count(), n as usize, "{out}");
        row(&format!("`coachd import FOLDER`, {which}"), secs, Some(rss));
        cli.push((which, secs));
    }

    // Python fitdecode, parsing only.
    let script = r#"
import sys, time, glob, fitdecode
files = sorted(glob.glob(sys.argv[1] + "/*.fit"))
t = time.perf_counter()
n = 0
for f in files:
    with fitdecode.FitReader(f) as fit:
        for frame in fit:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record":
                n += 1
print(time.perf_counter() - t, n)
"#;
    let fitdecode = match Command::new("python3").args(["-c", script]).arg(&files).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let secs: f64 = text.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
            row("python fitdecode: parse only", secs, None);
            Some(secs)
        }
        _ => {
            println!("python fitdecode: not available (pip install fitdecode) — skipped");
            None
        }
    };
    println!();
    for (which, secs) in &cli {
        let vs_python = fitdecode.map_or(String::new(), |p| format!(", {:.1}× Python fitdecode's parse", p / secs));
        println!(
            "`coachd import`, {which}: {:.2}× a bare single-threaded fitparser parse (aim ≥ 1.0){vs_python}",
            bare / secs
        );
    }
    if let [(_, before), (_, after)] = cli.as_slice() {
        println!("this build imports the folder {:.2}× as fast as the one before", before / after);
    }

    let exports: u32 = std::env::var("COACHD_BENCH_EXPORT").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    if exports > 0 {
        export_bench(dir.path(), exports, &client);
    }
    let mb: u64 = std::env::var("COACHD_BENCH_APPLE_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    if mb == 0 {
        return;
    }
    let export = dir.path().join("export.xml");
    let bytes = write_apple_export(&export, mb);
    println!("\nApple Health export.xml of {} MB (`coachd import`, a fresh data dir)", bytes >> 20);
    for (which, bin) in binaries() {
        let data = dir.path().join(format!("apple-data-{}", which.replace(' ', "-")));
        let (secs, rss, out) = cli_import(&bin, &data, "Europe/Berlin", &[export.as_path()]);
        println!(
            "  {which:<12} {secs:>6.2} s {:>6.0} MB/s   peak RSS {:>6.1} MB   ({})",
            (bytes >> 20) as f64 / secs,
            rss as f64 / 1024.0,
            out.trim()
        );
    }
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).expect("time").format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Member `i` of the export: (path inside the zip, uncompressed bytes).
fn export_member(i: u32) -> (String, Vec<u8>) {
    let start = (Utc.with_ymd_and_hms(2024, 1, 1, 7, 0, 0).single().expect("t") + Duration::hours(i64::from(i) * 9))
        .timestamp();
    let id = 10_000 + i;
    match i % 3 {
        0 => (format!("activities/{id}.fit.gz"), hour_fit(100_000 + i)),
        1 => {
            let mut x = String::from(
                r#"<?xml version="1.0"?><gpx version="1.1" creator="StravaGPX" xmlns="http://www.topografix.com/GPX/1/1" xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1"><trk><type>running</type><trkseg>"#,
            );
            for s in 0..3600 {
                x.push_str(&format!(
                    "<trkpt lat=\"52.{s:04}\" lon=\"13.4\"><time>{}</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>{}</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>",
                    iso(start + s),
                    120 + s % 50
                ));
            }
            x.push_str("</trkseg></trk></gpx>");
            (format!("activities/{id}.gpx.gz"), x.into_bytes())
        }
        _ => {
            let mut x = format!(
                r#"<?xml version="1.0"?><TrainingCenterDatabase><Activities><Activity Sport="Biking"><Id>{}</Id><Lap><TotalTimeSeconds>3600</TotalTimeSeconds><Track>"#,
                iso(start)
            );
            for s in 0..3600 {
                x.push_str(&format!(
                    "<Trackpoint><Time>{}</Time><HeartRateBpm><Value>{}</Value></HeartRateBpm></Trackpoint>",
                    iso(start + s),
                    120 + s % 50
                ));
            }
            x.push_str("</Track></Lap></Activity></Activities></TrainingCenterDatabase>");
            (format!("activities/{id}.tcx.gz"), x.into_bytes())
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// The zip as Strava writes it: gzipped members stored as they are, and activities.csv.
fn write_export(path: &Path, members: &[(String, Vec<u8>)]) -> u64 {
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(path).expect("create")));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut csv = String::from("Activity ID,Activity Date,Activity Name,Activity Type,Filename\n");
    for (i, (name, packed)) in members.iter().enumerate() {
        zip.start_file(name.as_str(), stored).expect("member");
        zip.write_all(packed).expect("write");
        csv.push_str(&format!("{},\"Jan 1, 2024\",Bench,Run,{name}\n", 10_000 + i));
    }
    zip.start_file("activities.csv", zip::write::SimpleFileOptions::default()).expect("csv");
    zip.write_all(csv.as_bytes()).expect("csv");
    zip.finish().expect("zip");
    std::fs::metadata(path).expect("meta").len()
}

fn export_bench(dir: &Path, n: u32, client: &coachd::store::Client) {
    let members: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let (name, raw) = export_member(i);
            (name, gzip(&raw))
        })
        .collect();
    let tenth = (n / 10).max(1);
    let small = dir.join("export-small.zip");
    let big = dir.join("export.zip");
    write_export(&small, &members[..tenth as usize]);
    let bytes = write_export(&big, &members);
    println!("\nStrava-shaped export: {n} one-hour activities (FIT, GPX, TCX in turn, gzipped), {} MB", bytes >> 20);
    println!("{:<52} {:>10} {:>14} {:>12}", "", "time", "activities/s", "peak RSS");
    // The bare parse: every member gunzipped and parsed here, nothing stored.
    let t = Instant::now();
    let mut parsed = 0usize;
    for (_, packed) in &members {
        let raw = coachd::files::export::read_member(&mut packed.as_slice(), true).expect("gunzip");
        let format = coachd::files::sniff(&raw).expect("sniff");
        parsed += coachd::files::parse(&raw, format, client, client.tz).expect("parse").activities.len();
    }
    let bare = t.elapsed().as_secs_f64();
    assert_eq!(parsed, n as usize);
    println!(
        "{:<52} {bare:>8.2} s {:>14.0} {:>12}",
        "bare parse: gunzip + parse each member, no store",
        f64::from(n) / bare,
        "-"
    );
    for (which, bin) in binaries() {
        for (label, path, count) in [("a tenth of the export", &small, tenth), ("the whole export", &big, n)] {
            let data = dir.join(format!("export-data-{count}-{}", which.replace(' ', "-")));
            let (secs, rss, text) = cli_import(&bin, &data, "UTC", &[path.as_path()]);
            assert!(text.contains(&format!("{count} files imported")), "{text}");
            let label = format!("coachd import, {label}, {which}");
            println!("{label:<52} {secs:>8.2} s {:>14.0} {:>9.1} MB", f64::from(count) / secs, rss as f64 / 1024.0);
        }
    }
}
