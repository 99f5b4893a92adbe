//! The homework language end to end: phrases through `coachd assign`, files through
//! `coachd import`, verdicts through `coachd status --json`.

use crate::coachd;
use crate::fit_encoder::*;
use chrono::{TimeZone, Utc};
use predicates::str::contains;
use serde_json::Value;
use std::path::Path;

fn status(data: &Path, day: &str) -> Vec<Value> {
    let out = coachd(data).args(["status", "alex", "--from", day, "--to", day, "--json"]).output().expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["occurrences"].as_array().cloned().unwrap_or_default()
}

fn occurrence(data: &Path, day: &str, homework: &str) -> Value {
    status(data, day)
        .into_iter()
        .find(|o| o["homework"].as_str().is_some_and(|h| h.starts_with(homework)))
        .unwrap_or_else(|| panic!("no occurrence of {homework:?} on {day}"))
}

fn unix(tz: chrono_tz::Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    tz.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("local time").with_timezone(&Utc).timestamp()
}

/// A 28-minute run of 5.2 km.
fn run_5k(start: i64) -> Vec<u8> {
    let mut w = FitWriter::default();
    w.file_id(7001, start);
    for s in (0..1680).step_by(10) {
        w.record(start + s, 150, 85);
    }
    let spec = SessionSpec {
        start,
        elapsed_s: 1680,
        timer_s: 1680,
        sport: SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 150,
        max_hr: 165,
    };
    w.session_with_distance(&spec, 5200.0);
    w.activity(start + 1680, 3600);
    w.finish()
}

/// Push-ups 12, 10, 6 with rest sets between, then a 75-second plank.
fn strength(start: i64) -> Vec<u8> {
    let mut w = FitWriter::default();
    w.file_id(7002, start);
    w.record(start, 95, 0);
    let mut t = start;
    for (i, reps) in [12u16, 10, 6].iter().enumerate() {
        w.set(t, 30, Some(*reps), EXERCISE_PUSH_UP);
        t += 30;
        if i < 2 {
            w.set(t, 60, None, 0);
            t += 60;
        }
    }
    w.set(t, 60, None, 0);
    t += 60;
    w.set(t, 75, Some(0), EXERCISE_PLANK);
    t += 75;
    w.record(t, 110, 0);
    w.activity(t, 3600);
    w.finish()
}

#[test]
fn distance_sets_and_holds_from_fit_files_in_two_zones() {
    for (zone, tz) in
        [("Europe/Berlin", chrono_tz::Europe::Berlin), ("America/Los_Angeles", chrono_tz::America::Los_Angeles)]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        coachd(&data).args(["client", "add", "alex", "--tz", zone]).assert().success();
        for phrase in ["a 5 km run on saturday", "3 sets of 10 push-ups every night", "plank 60 seconds every day"] {
            coachd(&data).args(["assign", "alex", phrase, "--from", "2026-11-16"]).assert().success();
        }
        let run = dir.path().join("run.fit");
        std::fs::write(&run, run_5k(unix(tz, 2026, 11, 21, 8, 30))).expect("write");
        // 23:50 local: the push-ups count for the night; the plank (23:54) for that day.
        let gym = dir.path().join("gym.fit");
        std::fs::write(&gym, strength(unix(tz, 2026, 11, 20, 23, 50))).expect("write");
        coachd(&data).args(["import", "alex"]).arg(&run).arg(&gym).assert().success();

        let o = occurrence(&data, "2026-11-21", "5 km of running");
        assert_eq!(
            (o["verdict"].as_str(), o["achieved"].as_f64(), o["unit"].as_str()),
            (Some("done"), Some(5.2), Some("km")),
            "{zone}: {o}"
        );
        let o = occurrence(&data, "2026-11-20", "3 sets of 10 push-ups");
        // 12 and 10 are full sets, 6 is 0.6 of one; rest sets and the plank never count.
        assert_eq!(
            (o["verdict"].as_str(), o["achieved"].as_f64(), o["unit"].as_str()),
            (Some("partial"), Some(2.6), Some("sets")),
            "{zone}: {o}"
        );
        let o = occurrence(&data, "2026-11-20", "a 60-second plank");
        assert_eq!((o["verdict"].as_str(), o["achieved"].as_f64()), (Some("done"), Some(75.0)), "{zone}: {o}");
    }
}

#[test]
fn assign_echoes_what_it_judges_and_dry_run_saves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "America/Los_Angeles"]).assert().success();
    coachd(&data)
        .args(["assign", "alex", "10 push-ups every night, +2 each week", "--from", "2026-11-02", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("10 push-ups every night, +2 each week"))
        .stdout(contains("not saved"))
        .stdout(contains("target by week:"));
    coachd(&data).args(["homework", "list", "alex", "--json"]).assert().success().stdout(contains("[]"));
    coachd(&data)
        .args(["assign", "alex", "drink 2 liters of water every day", "--from", "2026-11-02"])
        .assert()
        .success()
        .stdout(contains("judged from the client's check-ins"));
    coachd(&data)
        .args(["assign", "alex", "150 minutes of cadio a week"])
        .assert()
        .code(2)
        .stderr(contains("did you mean: 150 minutes of cardio per week?"));
    coachd(&data)
        .args(["assign", "alex", "20 min yoga twice a week for 4 weeks", "--from", "2026-11-02"])
        .assert()
        .success()
        .stdout(contains("2026-11-02 to 2026-11-29"));
    coachd(&data)
        .args(["assign", "alex", "20 min yoga twice a week for 4 weeks", "--until", "2026-12-01"])
        .assert()
        .code(2)
        .stderr(contains("give one of them"));
    coachd(&data).args(["assign", "--help"]).assert().success().stdout(contains("3 sets of 10 push-ups every night"));

    // A habit with no check-in is missed once its day is over; with one, done.
    let o = occurrence(&data, "2026-11-03", "drink 2 liters");
    assert_eq!(o["verdict"], "missed", "{o}");
    let id = o["homework_id"].as_i64().expect("id").to_string();
    coachd(&data).args(["checkin", "alex", &id, "--date", "2026-11-04", "--value", "2"]).assert().success();
    assert_eq!(occurrence(&data, "2026-11-04", "drink 2 liters")["verdict"], "done");
}
