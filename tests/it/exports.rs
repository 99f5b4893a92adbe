//! Whole account exports through `coachd import`: a Strava-shaped zip and a
//! Garmin-shaped zip of nested zips, made here (plain, gzipped and corrupt members),
//! and single gzipped files.

use crate::coachd;
use crate::fit_encoder::*;
use chrono::{TimeZone, Utc};
use std::io::Write;
use std::path::Path;

fn day(n: i64) -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 1, 7, 0, 0).single().expect("time").timestamp() + n * 86_400
}

/// A 30-minute run on day `n`, with HR every 5 s.
pub fn run_fit(n: i64, serial: u32) -> Vec<u8> {
    let start = day(n);
    let mut w = FitWriter::default();
    w.file_id(serial, start);
    for s in (0..1800).step_by(5) {
        w.record(start + s, 140 + (s % 15) as u8, 80);
    }
    w.session(&SessionSpec {
        start,
        elapsed_s: 1800,
        timer_s: 1800,
        sport: SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 147,
        max_hr: 155,
    });
    w.finish()
}

/// A GPX without a type (as Strava writes them): the CSV names the sport.
fn walk_gpx(n: i64) -> Vec<u8> {
    let t = |m: i64| {
        chrono::DateTime::from_timestamp(day(n) + m * 60, 0).expect("time").format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    format!(
        r#"<?xml version="1.0"?><gpx version="1.1" creator="StravaGPX" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>Walk</name><trkseg><trkpt lat="52.5" lon="13.4"><time>{}</time></trkpt><trkpt lat="52.6" lon="13.4"><time>{}</time></trkpt></trkseg></trk></gpx>"#,
        t(0),
        t(40)
    )
    .into_bytes()
}

fn ride_tcx(n: i64) -> Vec<u8> {
    let t = |m: i64| {
        chrono::DateTime::from_timestamp(day(n) + m * 60, 0).expect("time").format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    format!(
        r#"<?xml version="1.0"?><TrainingCenterDatabase><Activities><Activity Sport="Biking"><Id>{}</Id><Lap><TotalTimeSeconds>3000</TotalTimeSeconds><Track><Trackpoint><Time>{}</Time><HeartRateBpm><Value>130</Value></HeartRateBpm></Trackpoint><Trackpoint><Time>{}</Time><HeartRateBpm><Value>135</Value></HeartRateBpm></Trackpoint></Track></Lap></Activity></Activities></TrainingCenterDatabase>"#,
        t(0),
        t(0),
        t(50)
    )
    .into_bytes()
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

pub fn zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in members {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).expect("member");
        w.write_all(bytes).expect("write");
    }
    w.finish().expect("zip").into_inner()
}

/// A Strava "Download your data" zip: `count` activities (FIT, FIT.gz, GPX.gz, TCX.gz in
/// turn), `activities.csv`, a profile picture, and one corrupt member when `corrupt`.
pub fn strava_export(count: i64, corrupt: bool) -> Vec<u8> {
    let mut csv = String::from(
        "Activity ID,Activity Date,Activity Name,Activity Type,Activity Description,Elapsed Time,Distance,Filename\n",
    );
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..count {
        let id = 1000 + i;
        let (file, bytes, ty) = match i % 4 {
            0 => (format!("activities/{id}.fit"), run_fit(i, id as u32), "Run"),
            1 => (format!("activities/{id}.fit.gz"), gz(&run_fit(i, id as u32)), "Run"),
            2 => (format!("activities/{id}.gpx.gz"), gz(&walk_gpx(i)), "Walk"),
            _ => (format!("activities/{id}.tcx.gz"), gz(&ride_tcx(i)), "Ride"),
        };
        csv.push_str(&format!(
            "{id},\"Nov 1, 2026, 7:00:00 AM\",\"Morning, {ty}\",{ty},\"a \"\"quoted\"\" note\",1800,5.0,{file}\n"
        ));
        members.push((file, bytes));
    }
    if corrupt {
        let mut bad = gz(&run_fit(0, 9999));
        let n = bad.len();
        bad.truncate(n / 2);
        members.push(("activities/9999.fit.gz".into(), bad));
    }
    members.push(("activities.csv".into(), csv.into_bytes()));
    members.push(("profile.jpg".into(), b"\xFF\xD8\xFF\xE0 not an activity".to_vec()));
    let borrowed: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    zip(&borrowed)
}

fn activities(data: &Path) -> serde_json::Value {
    let out = coachd(data)
        .args(["activities", "alex", "--from", "2026-10-30", "--to", "2026-12-31", "--json"])
        .output()
        .expect("activities");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn import(data: &Path, file: &Path) -> (Option<i32>, String) {
    let out = coachd(data).arg("import").arg("alex").arg(file).output().expect("import");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_strava_export_imports_every_good_activity_once_and_names_the_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let path = dir.path().join("export_12345.zip");
    std::fs::write(&path, strava_export(8, true)).expect("write");
    let (code, out) = import(&data, &path);
    assert_eq!(code, Some(2), "a rejected member is reported: {out}");
    assert!(out.contains("Strava export: 8 files imported, 0 already there, 1 rejected"), "{out}");
    assert!(out.contains("rejected activities/9999.fit.gz: gzip"), "the bad member by its path: {out}");
    let list = activities(&data);
    let items = list.as_array().expect("list");
    assert_eq!(items.len(), 8, "{list}");
    let types: Vec<&str> = items.iter().filter_map(|a| a["type"].as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "walk").count(), 2, "GPX without a type: the CSV's Walk: {types:?}");
    assert_eq!(types.iter().filter(|t| **t == "run").count(), 4, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "ride").count(), 2, "{types:?}");
    let with_hr = items.iter().filter(|a| a["type"] != "walk");
    assert!(with_hr.clone().all(|a| a["hr_samples"].as_u64().unwrap_or(0) > 0), "samples kept: {list}");
    assert_eq!(with_hr.filter(|a| a["hr_samples"] == 360).count(), 4, "every FIT member's HR samples: {list}");
    // Again: one lookup, nothing changes.
    let (code, out) = import(&data, &path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("duplicate"), "{out}");
    assert_eq!(activities(&data), list);
    // The same activity as a file of its own (gzipped or not) is already there.
    let single = dir.path().join("1001.fit.gz");
    std::fs::write(&single, gz(&run_fit(1, 1001))).expect("write");
    let (code, out) = import(&data, &single);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("duplicate") && out.contains("FIT"), "{out}");
}

#[test]
fn a_garmin_export_of_nested_zips_imports_once_and_names_the_bad_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let part1 = zip(&[("a.fit", run_fit(0, 1)), ("b.fit", run_fit(1, 2))]);
    let mut broken = run_fit(3, 4);
    let n = broken.len();
    broken[n - 1] ^= 0xFF;
    let part2 = zip(&[("c.fit", run_fit(2, 3)), ("d.fit", broken)]);
    let export = zip(&[
        ("DI_CONNECT/DI-Connect-User/user_profile.json", b"{}".to_vec()),
        ("DI_CONNECT/DI-Connect-Fitness/UploadedFiles_0-_Part1.zip", part1),
        ("DI_CONNECT/DI-Connect-Fitness/UploadedFiles_0-_Part2.zip", part2),
    ]);
    let path = dir.path().join("garmin.zip");
    std::fs::write(&path, export).expect("write");
    let (code, out) = import(&data, &path);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Garmin Connect export: 3 files imported, 0 already there, 1 rejected"), "{out}");
    assert!(out.contains("UploadedFiles_0-_Part2.zip/d.fit: FIT: the CRC"), "{out}");
    assert_eq!(activities(&data).as_array().map(Vec::len), Some(3));
    let (code, out) = import(&data, &path);
    assert_eq!((code, out.starts_with("duplicate")), (Some(0), true), "{out}");
    assert_eq!(activities(&data).as_array().map(Vec::len), Some(3));
}

#[test]
fn many_rejections_go_to_a_report_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let bad: Vec<(String, Vec<u8>)> =
        (0..25).map(|i| (format!("activities/{i}.fit"), b"not a fit file".to_vec())).collect();
    let members: Vec<(&str, Vec<u8>)> = bad.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let path = dir.path().join("export.zip");
    std::fs::write(&path, zip(&members)).expect("write");
    let (code, out) = import(&data, &path);
    assert_eq!(code, Some(2), "{out}");
    let report = out.lines().find_map(|l| l.split("and why: ").nth(1)).unwrap_or_else(|| panic!("a report: {out}"));
    let text = std::fs::read_to_string(report.trim()).expect("the report file");
    assert_eq!(text.lines().count(), 25, "{text}");
    assert!(out.lines().filter(|l| l.trim_start().starts_with("rejected")).count() <= 6, "{out}");
}
