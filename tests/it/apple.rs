//! Apple Health exports through `coachd import`.

use crate::coachd;
use chrono::{NaiveDate, TimeZone};
use coachd::model::Metric;
use predicates::str::contains;
use std::path::Path;

/// A day of data: the phone and the watch both count steps (the larger total counts, not
/// the sum), a walk with heart rate inside it, and a night's sleep.
pub fn export_xml(extra_record: &str) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [ <!ELEMENT HealthData (ExportDate,Me,(Record|Workout)*)> ]>
<HealthData locale="en_DE">
 <ExportDate value="2026-11-22 08:00:00 +0100"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1990-01-01"/>
"#,
    );
    for h in 8..20 {
        s += &format!(
            r#" <Record type="HKQuantityTypeIdentifierStepCount" sourceName="Alex’s iPhone" unit="count" startDate="2026-11-20 {h:02}:00:00 +0100" endDate="2026-11-20 {h:02}:30:00 +0100" value="600"/>
 <Record type="HKQuantityTypeIdentifierStepCount" sourceName="Alex’s Apple Watch" unit="count" startDate="2026-11-20 {h:02}:00:00 +0100" endDate="2026-11-20 {h:02}:30:00 +0100" value="700"/>
"#
        );
    }
    s += extra_record;
    for m in 0..30 {
        s += &format!(
            r#" <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Alex’s Apple Watch" unit="count/min" startDate="2026-11-20 18:{m:02}:00 +0100" endDate="2026-11-20 18:{m:02}:00 +0100" value="{}"/>
"#,
            120 + m
        );
    }
    s += r#" <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Alex’s Apple Watch" unit="count/min" startDate="2026-11-20 12:00:00 +0100" endDate="2026-11-20 12:00:00 +0100" value="70"/>
 <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Alex’s Apple Watch" startDate="2026-11-20 23:00:00 +0100" endDate="2026-11-21 00:00:00 +0100" value="HKCategoryValueSleepAnalysisInBed"/>
 <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Alex’s Apple Watch" startDate="2026-11-21 00:00:00 +0100" endDate="2026-11-21 04:00:00 +0100" value="HKCategoryValueSleepAnalysisAsleepCore"/>
 <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Alex’s Apple Watch" startDate="2026-11-21 04:00:00 +0100" endDate="2026-11-21 07:30:00 +0100" value="HKCategoryValueSleepAnalysisAsleepDeep"/>
 <Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="30" durationUnit="min" totalDistance="3.1" totalDistanceUnit="km" sourceName="Alex’s Apple Watch" startDate="2026-11-20 18:00:00 +0100" endDate="2026-11-20 18:30:00 +0100">
  <WorkoutStatistics type="HKQuantityTypeIdentifierHeartRate" startDate="2026-11-20 18:00:00 +0100" endDate="2026-11-20 18:30:00 +0100" average="134.5" minimum="120" maximum="149" unit="count/min"/>
 </Workout>
</HealthData>
"#;
    s
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A zip with one stored (uncompressed) entry; `claimed` overrides the declared size.
pub fn zip_stored(name: &str, data: &[u8], claimed: Option<u32>) -> Vec<u8> {
    let (crc, len) = (crc32(data), data.len() as u32);
    let size = claimed.unwrap_or(len);
    let mut out = Vec::new();
    let header = |sig: u32, central: bool| {
        let mut h = sig.to_le_bytes().to_vec();
        if central {
            h.extend_from_slice(&20u16.to_le_bytes()); // made by
        }
        for v in [20u16, 0, 0, 0, 0x21] {
            h.extend_from_slice(&v.to_le_bytes()); // version, flags, method stored, time, date
        }
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        if central {
            h.extend_from_slice(&[0; 6]); // comment len, disk, internal attrs
            h.extend_from_slice(&[0; 4]); // external attrs
            h.extend_from_slice(&0u32.to_le_bytes()); // local header offset
        }
        h.extend_from_slice(name.as_bytes());
        h
    };
    out.extend(header(0x0403_4b50, false));
    out.extend_from_slice(data);
    let cd_offset = out.len() as u32;
    let cd = header(0x0201_4b50, true);
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn status(data: &Path) -> serde_json::Value {
    let out = coachd(data)
        .args(["status", "alex", "--from", "2026-11-20", "--to", "2026-11-20", "--json"])
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn setup(data: &Path) {
    coachd(data).args(["client", "add", "alex", "--tz", "Europe/Berlin", "--hr-max", "190"]).assert().success();
    for phrase in ["8000 steps a day", "7 hours of sleep nightly", "20 minutes of walking"] {
        coachd(data).args(["assign", "alex", phrase, "--from", "2026-11-20"]).assert().success();
    }
}

#[test]
fn export_xml_and_zip_give_steps_sleep_and_workouts() {
    for zipped in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        setup(&data);
        let xml = export_xml("");
        let path = if zipped {
            let p = dir.path().join("export.zip");
            std::fs::write(&p, zip_stored("apple_health_export/export.xml", xml.as_bytes(), None)).expect("write");
            p
        } else {
            let p = dir.path().join("export.xml");
            std::fs::write(&p, &xml).expect("write");
            p
        };
        coachd(&data)
            .args(["import", "alex"])
            .arg(&path)
            .assert()
            .success()
            .stdout(contains("1 activities, 30 samples"));
        let json = status(&data);
        let occ = json["occurrences"].as_array().expect("occurrences");
        let by = |id: i64| occ.iter().find(|o| o["homework_id"] == id).cloned().expect("occurrence");
        // 12 × 700 from the watch beats 12 × 600 from the phone; never 15,600.
        assert_eq!(
            (by(1)["verdict"].as_str(), by(1)["achieved"].as_f64()),
            (Some("done"), Some(8400.0)),
            "zipped {zipped}"
        );
        // The night starting on the 20th: 7.5 h asleep (in bed without sleep does not count).
        assert_eq!(
            (by(2)["verdict"].as_str(), by(2)["achieved"].as_f64()),
            (Some("done"), Some(7.5)),
            "zipped {zipped}"
        );
        assert_eq!(by(3)["verdict"], "done");
        let out = coachd(&data)
            .args(["activities", "alex", "--from", "2026-11-20", "--to", "2026-11-20", "--json"])
            .output()
            .expect("activities");
        let acts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(acts[0]["type"], "walk");
        assert_eq!(acts[0]["hr_samples"], 30, "only the heart rate inside the workout: {acts}");
        assert_eq!(acts[0]["avg_hr"], 134.5);
        coachd(&data).args(["import", "alex"]).arg(&path).assert().success().stdout(contains("duplicate"));
    }
}

#[test]
fn a_malformed_record_or_a_lying_zip_rejects_the_file_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    setup(&data);
    let bad = export_xml(
        r#" <Record type="HKQuantityTypeIdentifierStepCount" sourceName="x" startDate="yesterday" endDate="x" value="5"/>
"#,
    );
    let p = dir.path().join("bad-export.xml");
    std::fs::write(&p, &bad).expect("write");
    let big = dir.path().join("bomb.zip");
    std::fs::write(&big, zip_stored("apple_health_export/export.xml", b"<HealthData></HealthData>", Some(0xFFFF_0000)))
        .expect("write");
    let cut = dir.path().join("cut-export.xml");
    let good = export_xml("");
    std::fs::write(&cut, &good.as_bytes()[..good.len() * 2 / 3]).expect("write");
    let out = coachd(&data).args(["import", "alex"]).arg(&p).arg(&big).arg(&cut).output().expect("import");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("startDate \"yesterday\" is not a date"), "{stdout}");
    assert!(stdout.contains("at byte"), "{stdout}");
    assert!(stdout.contains("claims 4294901760 bytes"), "{stdout}");
    assert!(
        stdout.contains("cut-export.xml") && stdout.lines().filter(|l| l.starts_with("rejected")).count() == 3,
        "{stdout}"
    );
    let json = status(&data);
    assert!(json["occurrences"].as_array().expect("occ").iter().all(|o| o["achieved"] == 0.0), "{json}");
}

/// One stored daily value of a source, by metric and date.
fn stored(ev: &coachd::engine::evidence::Evidence, metric: Metric, date: &str, source: &str) -> Option<f64> {
    ev.daily.iter().find(|d| d.metric == metric && d.date.to_string() == date && d.source == source).map(|d| d.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_across_midnight_gives_bed_and_wake_times_and_a_mindful_session_is_a_meditation() {
    let t = crate::TestStore::new().await;
    let alex = t.client("alex").await;
    let client = t.store.client_by_id(alex).await.expect("client");
    let tz = chrono_tz::Europe::Berlin;
    let sleep = |start: &str, end: &str, value: &str| {
        format!(
            " <Record type=\"HKCategoryTypeIdentifierSleepAnalysis\" sourceName=\"Alex’s Apple Watch\" \
             startDate=\"{start}\" endDate=\"{end}\" value=\"HKCategoryValueSleepAnalysis{value}\"/>\n"
        )
    };
    // In bed at 22:50, asleep 23:10 to 06:40 with a quarter of an hour awake after midnight
    // (00:30 in Berlin is 23:30 UTC of the day before); an afternoon nap; a morning meditation.
    let records = [
        sleep("2026-11-20 22:50:00 +0100", "2026-11-20 23:10:00 +0100", "InBed"),
        sleep("2026-11-20 23:10:00 +0100", "2026-11-21 00:30:00 +0100", "AsleepCore"),
        sleep("2026-11-21 00:30:00 +0100", "2026-11-21 00:45:00 +0100", "Awake"),
        sleep("2026-11-21 00:45:00 +0100", "2026-11-21 06:40:00 +0100", "AsleepDeep"),
        sleep("2026-11-21 15:00:00 +0100", "2026-11-21 15:40:00 +0100", "AsleepCore"),
        " <Record type=\"HKCategoryTypeIdentifierMindfulSession\" sourceName=\"Headspace\" \
         startDate=\"2026-11-21 07:00:00 +0100\" endDate=\"2026-11-21 07:15:00 +0100\"/>\n"
            .to_string(),
    ]
    .concat();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HealthData locale=\"en_DE\">\n \
         <ExportDate value=\"2026-11-22 08:00:00 +0100\"/>\n{records}</HealthData>\n"
    );
    let path = t.dir.path().join("export.xml");
    std::fs::write(&path, &xml).expect("write");
    let outcome =
        coachd::files::import_file(&t.store, &client, tz, &path, coachd::files::quiet()).await.expect("import");
    assert!(matches!(outcome, coachd::files::Outcome::Imported { activities: 1, .. }), "{outcome:?}");

    let day = NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
    let ev = t.store.evidence(alex, tz, day, day).await.expect("evidence");
    let at = |h: u32, m: u32, d: u32| tz.with_ymd_and_hms(2026, 11, d, h, m, 0).single().expect("t").timestamp() as f64;
    assert_eq!(stored(&ev, Metric::SleepStart, "2026-11-21", "apple"), Some(at(23, 10, 20)), "{:?}", ev.daily);
    assert_eq!(stored(&ev, Metric::SleepEnd, "2026-11-21", "apple"), Some(at(6, 40, 21)));
    // The whole night (and the nap) is the 21st's sleep; nothing is dated the 20th.
    let asleep = (80.0 + 355.0 + 40.0) * 60.0;
    assert_eq!(stored(&ev, Metric::SleepS, "2026-11-21", "apple"), Some(asleep));
    assert!(ev.daily.iter().all(|d| d.date == day), "{:?}", ev.daily);

    let meditation = ev.workouts.iter().find(|w| w.activity_type == "meditation").expect("a meditation");
    assert_eq!((meditation.duration_s, meditation.sources.clone()), (900.0, vec!["apple".to_string()]));
    assert_eq!(coachd::activity_types::family(&meditation.activity_type), "mindfulness");

    // A newer export (another file, the same records and one more step count) changes none of it.
    let before = t.store.row_counts().await.expect("counts");
    let newer = xml.replace(
        "</HealthData>",
        " <Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"Alex’s iPhone\" unit=\"count\" \
         startDate=\"2026-11-21 09:00:00 +0100\" endDate=\"2026-11-21 09:30:00 +0100\" value=\"500\"/>\n</HealthData>",
    );
    let path = t.dir.path().join("export-newer.xml");
    std::fs::write(&path, newer).expect("write");
    coachd::files::import_file(&t.store, &client, tz, &path, coachd::files::quiet()).await.expect("import");
    let after = t.store.row_counts().await.expect("counts");
    assert_eq!((after.activities, after.daily_metrics), (before.activities, before.daily_metrics + 1), "steps only");
    let again = t.store.evidence(alex, tz, day, day).await.expect("evidence");
    assert_eq!(stored(&again, Metric::SleepStart, "2026-11-21", "apple"), Some(at(23, 10, 20)));
    assert_eq!(stored(&again, Metric::SleepEnd, "2026-11-21", "apple"), Some(at(6, 40, 21)));
}
