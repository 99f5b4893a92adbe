//! `coachd import`: FIT (fixtures from the test encoder), TCX, GPX, bad input, idempotence.

use crate::coachd;
use crate::fit_encoder::*;
use chrono::{TimeZone, Utc};
use predicates::str::contains;
use std::path::Path;

/// 2026-11-20 18:00 Europe/Berlin.
fn t0() -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 20, 17, 0, 0).single().expect("time").timestamp()
}

/// A 40-minute run with per-second HR and a 5-minute pause in the middle; records after
/// the pause use compressed timestamp headers.
pub fn run_with_pause(serial: u32) -> Vec<u8> {
    paused_run(serial, true)
}

fn paused_run(serial: u32, with_session: bool) -> Vec<u8> {
    let mut w = FitWriter::default();
    let start = t0();
    w.file_id(serial, start);
    w.timer(start, false);
    for s in 0..1200 {
        w.record(start + s, 140 + (s % 20) as u8, 85);
    }
    w.timer(start + 1200, true);
    w.timer(start + 1500, false);
    w.record(start + 1500, 150, 86);
    for s in 1501..2700 {
        w.compressed_record(0, fit_time(start + s), &[(3, Base::U8, 150 + (s % 10) as u64), (4, Base::U8, 87)]);
    }
    w.timer(start + 2700, true);
    if with_session {
        w.session(&SessionSpec {
            start,
            elapsed_s: 2700,
            timer_s: 2400,
            sport: SPORT_RUNNING,
            sub_sport: 0,
            avg_hr: 148,
            max_hr: 160,
        });
    }
    w.activity(start + 2700, 3600);
    w.finish()
}

#[test]
fn without_a_session_pauses_come_from_timer_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("no-session.fit");
    std::fs::write(&file, paused_run(4242, false)).expect("write");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data).args(["import", "alex"]).arg(&file).assert().success();
    let acts = activities(&data);
    let a = &acts[0];
    // 45 minutes from first to last record, 5 of them paused.
    assert_eq!(a["duration_s"].as_f64(), Some(2400.0), "{a}");
    assert_eq!(a["start"], "2026-11-20T18:00:00+01:00");
}

/// Three sets of 10 push-ups with rest sets between them, at 21:30 local.
pub fn push_ups(serial: u32) -> Vec<u8> {
    let mut w = FitWriter::default();
    let start = t0() + 3 * 3600 + 1800;
    w.file_id(serial, start);
    w.record(start, 95, 0);
    let mut t = start;
    for i in 0..3 {
        w.set(t, 30, Some(10), EXERCISE_PUSH_UP);
        t += 30;
        if i < 2 {
            w.set(t, 60, None, 0);
            t += 60;
        }
    }
    w.record(t, 110, 0);
    w.session(&SessionSpec {
        start,
        elapsed_s: (t - start) as u32,
        timer_s: (t - start) as u32,
        sport: SPORT_TRAINING,
        sub_sport: SUB_STRENGTH,
        avg_hr: 100,
        max_hr: 120,
    });
    w.finish()
}

/// A run, then a ride, in one file.
pub fn multi_sport(serial: u32) -> Vec<u8> {
    let mut w = FitWriter::default();
    let start = t0();
    w.file_id(serial, start);
    for s in 0..600 {
        w.record(start + s, 150, 88);
    }
    w.session(&SessionSpec {
        start,
        elapsed_s: 600,
        timer_s: 600,
        sport: SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 150,
        max_hr: 150,
    });
    for s in 700..1900 {
        w.record(start + s, 130, 90);
    }
    w.session(&SessionSpec {
        start: start + 700,
        elapsed_s: 1200,
        timer_s: 1200,
        sport: SPORT_CYCLING,
        sub_sport: 0,
        avg_hr: 130,
        max_hr: 130,
    });
    w.finish()
}

const TCX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2" xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2">
 <Activities><Activity Sport="Running"><Id>2026-11-20T17:00:00Z</Id>
  <Lap StartTime="2026-11-20T17:00:00Z"><TotalTimeSeconds>2400</TotalTimeSeconds><DistanceMeters>7000</DistanceMeters><Calories>450</Calories>
   <Track>
    <Trackpoint><Time>2026-11-20T17:00:00Z</Time><HeartRateBpm><Value>140</Value></HeartRateBpm><Cadence>85</Cadence><Extensions><ns3:TPX><ns3:Speed>2.9</ns3:Speed></ns3:TPX></Extensions></Trackpoint>
    <Trackpoint><Time>2026-11-20T17:20:00Z</Time><HeartRateBpm><Value>150</Value></HeartRateBpm></Trackpoint>
    <Trackpoint><Time>2026-11-20T17:45:00Z</Time><HeartRateBpm><Value>155</Value></HeartRateBpm></Trackpoint>
   </Track></Lap></Activity></Activities></TrainingCenterDatabase>"#;

const GPX: &str = r#"<?xml version="1.0"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1" xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">
 <trk><name>Evening walk</name><type>walking</type><trkseg>
  <trkpt lat="52.5" lon="13.4"><time>2026-11-21T16:00:00Z</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>101</gpxtpx:hr><gpxtpx:cad>55</gpxtpx:cad></gpxtpx:TrackPointExtension></extensions></trkpt>
  <trkpt lat="52.6" lon="13.4"><time>2026-11-21T16:30:00Z</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>109</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>
 </trkseg></trk></gpx>"#;

fn activities(data: &Path) -> serde_json::Value {
    let out = coachd(data)
        .args(["activities", "alex", "--from", "2026-11-19", "--to", "2026-11-22", "--json"])
        .output()
        .expect("activities");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn fit_tcx_and_gpx_import_and_count_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("run.fit"), run_with_pause(1001)).expect("write");
    std::fs::write(files.join("strength.fit"), push_ups(1002)).expect("write");
    std::fs::write(files.join("multi.FIT"), multi_sport(1003)).expect("write");
    std::fs::write(files.join("run.tcx"), TCX).expect("write");
    // Recognised by content: a GPX without its extension.
    std::fs::write(files.join("walk.txt"), GPX).expect("write");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin", "--hr-max", "190"]).assert().success();
    coachd(&data)
        .args(["import", "alex"])
        .arg(&files)
        .assert()
        .success()
        .stdout(contains("imported").count(5))
        .stdout(contains("FIT: 2 activities"));
    // Again: every file is a duplicate and nothing changes.
    coachd(&data).args(["import", "alex"]).arg(&files).assert().success().stdout(contains("duplicate").count(5));

    let acts = activities(&data);
    let list = acts.as_array().expect("list");
    // run.fit and run.tcx are one workout; the multi-sport file overlaps it in time but is
    // another file with a run then a ride: the run part merges, the ride stays apart.
    let run = list.iter().find(|a| a["type"] == "run").expect("run");
    let sources: Vec<&str> = run["sources"].as_array().expect("sources").iter().filter_map(|s| s.as_str()).collect();
    assert!(sources.contains(&"fit") && sources.contains(&"tcx"), "{run}");
    assert_eq!(run["hr_samples"], 2400, "{run}");
    assert_eq!(run["start"], "2026-11-20T18:00:00+01:00");
    assert!(list.iter().any(|a| a["type"] == "ride"), "{acts}");
    let walk = list.iter().find(|a| a["type"] == "walk").expect("walk");
    assert_eq!(walk["sources"][0], "gpx");
    let strength = list.iter().find(|a| a["type"] == "strength").expect("strength");
    let sets = strength["sets"].as_array().expect("sets");
    assert_eq!(sets.len(), 3, "rest sets carry no reps: {strength}");
    assert!(sets.iter().all(|s| s["exercise"] == "push_up" && s["reps"] == 10));
    // Moving time excludes the pause.
    let fit_run = list.iter().find(|a| a["type"] == "run").expect("run");
    assert!(fit_run["duration_s"].as_f64().unwrap_or(0.0) >= 2400.0);

    // The push-ups are device evidence for nightly homework.
    coachd(&data).args(["assign", "alex", "30 push-ups nightly", "--from", "2026-11-20"]).assert().success();
    let out = coachd(&data)
        .args(["status", "alex", "--from", "2026-11-20", "--to", "2026-11-20", "--json"])
        .output()
        .expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let occ = &json["occurrences"][0];
    assert_eq!((occ["verdict"].as_str(), occ["achieved"].as_f64()), (Some("done"), Some(30.0)), "{occ}");
}

#[test]
fn bad_files_are_rejected_by_name_and_good_ones_still_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    let good = run_with_pause(2001);
    std::fs::write(files.join("a-good.fit"), &good).expect("write");
    std::fs::write(files.join("b-truncated.fit"), &good[..good.len() / 2]).expect("write");
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xFF;
    std::fs::write(files.join("c-bad-crc.fit"), bad_crc).expect("write");
    std::fs::write(files.join("d-picture.fit"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
    std::fs::write(files.join("e-not-tcx.tcx"), "<?xml version=\"1.0\"?><html><body>hi</body></html>").expect("write");
    std::fs::write(files.join("f-broken.tcx"), &TCX[..TCX.len() / 2]).expect("write");
    std::fs::write(files.join("g-empty.gpx"), "").expect("write");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let out = coachd(&data).args(["import", "alex"]).arg(&files).output().expect("import");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        stdout.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {stdout}")).to_string()
    };
    assert!(line("a-good").starts_with("imported"), "{stdout}");
    for (name, why) in [
        ("b-truncated", "truncated"),
        ("c-bad-crc", "CRC"),
        ("d-picture", "PNG"),
        ("e-not-tcx", "neither TCX nor GPX"),
        ("f-broken", "TCX"),
        ("g-empty", "empty"),
    ] {
        let l = line(name);
        assert!(l.starts_with("rejected") && l.contains(why), "{l}");
    }
    eprintln!("{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 of 7 files rejected"));
    // Only the good file's activity is stored.
    assert_eq!(activities(&data).as_array().map(Vec::len), Some(1));
}

/// Writes the fixtures as fuzzing seeds: `cargo test --test integration write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (dir, name, bytes) in [
        ("fit", "run.fit", run_with_pause(1)),
        ("fit", "strength.fit", push_ups(2)),
        ("fit", "multi.fit", multi_sport(3)),
        ("xml", "run.tcx", TCX.as_bytes().to_vec()),
        ("xml", "walk.gpx", GPX.as_bytes().to_vec()),
        ("apple", "export.xml", crate::apple::export_xml("").into_bytes()),
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        std::fs::write(root.join(dir).join(name), bytes).expect("write");
    }
}

fn session(start: i64, elapsed_s: u32, sport: u64) -> SessionSpec {
    SessionSpec { start, elapsed_s, timer_s: elapsed_s, sport, sub_sport: 0, avg_hr: 140, max_hr: 160 }
}

/// (start, end, duration) of each activity of a FIT file, in seconds from `t0()`.
fn spans(bytes: &[u8]) -> Vec<(i64, i64, f64)> {
    let parsed = coachd::files::fit::parse(bytes, 1, |_| 3600).expect("parses");
    parsed.activities.iter().map(|a| (a.start.timestamp() - t0(), a.end.timestamp() - t0(), a.duration_s)).collect()
}

#[test]
fn a_fit_session_ends_at_start_plus_elapsed_whatever_its_timestamp_says() {
    let start = t0();
    let records = |w: &mut FitWriter, from: i64, to: i64| {
        for s in (from..to).step_by(5) {
            w.record(start + s, 140, 80);
        }
    };
    // Garmin devices that stamp the session with its start.
    let mut w = FitWriter::default();
    w.file_id(1, start);
    records(&mut w, 0, 600);
    w.session_stamped(&session(start, 600, SPORT_RUNNING), start);
    assert_eq!(spans(&w.finish()), vec![(0, 600, 600.0)], "timestamp = start");
    // Devices that stamp it with the save time, minutes after the last record.
    let mut w = FitWriter::default();
    w.file_id(2, start);
    records(&mut w, 0, 600);
    w.session_stamped(&session(start, 600, SPORT_RUNNING), start + 900);
    assert_eq!(spans(&w.finish()), vec![(0, 600, 600.0)], "timestamp = save time");
    // Two sessions: the first stamped with the second's start.
    let mut w = FitWriter::default();
    w.file_id(3, start);
    records(&mut w, 0, 600);
    records(&mut w, 3600, 4500);
    w.session_stamped(&session(start, 600, SPORT_RUNNING), start + 3600);
    w.session(&session(start + 3600, 900, SPORT_CYCLING));
    assert_eq!(spans(&w.finish()), vec![(0, 600, 600.0), (3600, 4500, 900.0)], "two sessions");
    // Records past the elapsed time (a device that lost its final lap): the last record ends it.
    let mut w = FitWriter::default();
    w.file_id(4, start);
    records(&mut w, 0, 905);
    w.session_stamped(&session(start, 600, SPORT_RUNNING), start);
    assert_eq!(spans(&w.finish()), vec![(0, 900, 600.0)], "the later last record");
}

#[test]
fn gaps_between_gpx_segments_are_pauses() {
    let point = |t: &str| format!("<trkpt lat=\"52.5\" lon=\"13.4\"><time>{t}</time></trkpt>");
    let gpx = format!(
        r#"<?xml version="1.0"?><gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1"><trk><type>running</type>
<trkseg>{}{}</trkseg><trkseg>{}{}</trkseg></trk></gpx>"#,
        point("2026-11-20T17:00:00Z"),
        point("2026-11-20T17:30:00Z"),
        point("2026-11-20T18:30:00Z"),
        point("2026-11-20T18:50:00Z")
    );
    let parsed =
        coachd::files::xml::parse(gpx.as_bytes(), coachd::files::xml::XmlKind::Gpx, 1, "k", |_| 0).expect("parses");
    let a = &parsed.activities[0];
    assert_eq!(a.duration_s, 50.0 * 60.0, "30 + 20 minutes, the hour between the segments excluded");
    assert_eq!((a.end - a.start).num_minutes(), 110, "the span still runs first point to last");
}

#[test]
fn the_fit_decoders_own_complaints_never_reach_the_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let start = t0();
    let mut w = FitWriter::default();
    w.file_id(77, start);
    w.record(start, 140, 80);
    for s in 1..300 {
        w.misaligned_record(start + s, 141);
    }
    w.session(&session(start, 300, SPORT_RUNNING));
    let path = dir.path().join("coros.fit");
    std::fs::write(&path, w.finish()).expect("write");
    // With debug logging the decoder's complaint is there, with the file's name.
    let out =
        coachd(&data).env("RUST_LOG", "coachd=debug").arg("import").arg("alex").arg(&path).output().expect("import");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("decoder: ERROR: field size") && stderr.contains("coros.fit"), "{stderr}");
    // By default, nothing of it (a fresh data dir, so the file is decoded again).
    let data = dir.path().join("data2");
    coachd(&data).args(["client", "add", "bo", "--tz", "Europe/Berlin"]).assert().success();
    let out = coachd(&data).arg("import").arg("bo").arg(&path).output().expect("import");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("imported") && !stdout.contains("ERROR"), "{stdout}");
    assert!(stderr.trim().is_empty(), "nothing of the decoder's on stderr: {stderr}");
}

#[test]
fn a_fit_file_cut_inside_a_message_is_refused_in_plain_words() {
    let start = t0();
    let mut w = FitWriter::default();
    w.file_id(5, start);
    for s in 0..60 {
        w.record(start + s, 140, 80);
    }
    let bytes = w.finish_cut(3);
    let err = coachd::files::fit::parse(&bytes, 1, |_| 0).expect_err("truncated");
    let msg = err.to_string();
    assert!(msg.contains("truncated") && msg.contains("ends inside a message"), "{msg}");
    assert!(!msg.contains("parser error"), "{msg}");
}

#[test]
fn a_monitoring_file_is_named_for_what_it_is() {
    let mut w = FitWriter::default();
    // file_id with type 32 (monitoring_b), as a watch's Monitor folder holds.
    w.message(
        0,
        0,
        &[(0, Base::Enum, 32), (1, Base::U16, 1), (3, Base::U32, 7), (4, Base::U32, u64::from(fit_time(t0())))],
    );
    let err = coachd::files::fit::parse(&w.finish(), 1, |_| 0).expect_err("not an activity");
    assert!(err.to_string().contains("not an activity file: it is a monitoring"), "{err}");
}

/// A run of `serial` starting `hours` after [`t0`], `hr` its steady heart rate.
fn hour_run(serial: u32, hours: i64, hr: u8) -> Vec<u8> {
    let start = t0() + hours * 3600;
    let mut w = FitWriter::default();
    w.file_id(serial, start);
    for s in 0..600 {
        w.record(start + s, hr, 80);
    }
    w.session(&session(start, 600, SPORT_RUNNING));
    w.finish()
}

#[test]
fn a_folder_of_many_files_is_reported_in_order_each_file_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data).args(["client", "add", "bo", "--tz", "Europe/Berlin"]).assert().success();
    // bo's run, imported first: a file of alex's with the same device identity but other
    // content is refused by the store (the activity is bo's) inside a group of good files.
    let theirs = dir.path().join("theirs.fit");
    std::fs::write(&theirs, hour_run(9000, 0, 140)).expect("write");
    coachd(&data).args(["import", "bo"]).arg(&theirs).assert().success();
    // More files than one transaction holds, with a copy, a broken file and the clash.
    let mut expect = Vec::new();
    for i in 0..70u32 {
        let name = format!("{i:03}.fit");
        let bytes = match i {
            13 => b"not a fit file".to_vec(),
            // The same content as file 2: a duplicate of it within the run.
            40 => hour_run(3002, 2, 141),
            55 => hour_run(9000, 0, 150),
            _ => hour_run(3000 + i, i64::from(i), 141),
        };
        std::fs::write(files.join(&name), bytes).expect("write");
        expect.push(match i {
            13 | 55 => ("rejected", name),
            40 => ("duplicate", name),
            _ => ("imported", name),
        });
    }
    let out = coachd(&data).args(["import", "alex"]).arg(&files).output().expect("import");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 70, "{stdout}");
    for (line, (what, name)) in lines.iter().zip(&expect) {
        assert!(line.starts_with(what) && line.contains(name.as_str()), "{line} (expected {what} {name})");
    }
    assert!(lines[55].contains("belongs to client"), "{}", lines[55]);
    let stored = |client: &str| {
        let out = coachd(&data)
            .args(["activities", client, "--from", "2026-11-01", "--to", "2026-12-31", "--json"])
            .output()
            .expect("activities");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        list.as_array().expect("list").iter().map(|a| a["hr_samples"].as_i64().unwrap_or(0)).collect::<Vec<_>>()
    };
    // 67 files stored whole; bo's run untouched by the refused file.
    let alex = stored("alex");
    assert_eq!(alex.len(), 67, "{alex:?}");
    assert!(alex.iter().all(|n| *n == 600), "{alex:?}");
    assert_eq!(stored("bo"), vec![600]);
    // Again: every stored file is a duplicate; the refused ones are refused again.
    let out = coachd(&data).args(["import", "alex"]).arg(&files).output().expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("duplicate")).count(), 68, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("rejected")).count(), 2, "{stdout}");
}
