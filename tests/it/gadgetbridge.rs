//! Gadgetbridge's database export through `coachd import`: a database made here with
//! the tables Gadgetbridge's schema generator creates, for a Mi Band (Huami: per-minute
//! steps and sleep kinds) and a Garmin watch (a running step total, sleep stages), plus
//! a workout with heart rate.

use crate::coachd;
use chrono::{TimeZone, Utc};
use sqlx::Connection;
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE "DEVICE" ("_id" INTEGER PRIMARY KEY AUTOINCREMENT ,"NAME" TEXT NOT NULL ,"MANUFACTURER" TEXT NOT NULL ,"IDENTIFIER" TEXT NOT NULL UNIQUE ,"TYPE" INTEGER NOT NULL ,"TYPE_NAME" TEXT NOT NULL ,"MODEL" TEXT,"ALIAS" TEXT,"PARENT_FOLDER" TEXT);
CREATE TABLE "USER" ("_id" INTEGER PRIMARY KEY AUTOINCREMENT ,"NAME" TEXT NOT NULL ,"BIRTHDAY" INTEGER NOT NULL ,"GENDER" INTEGER NOT NULL );
CREATE TABLE "MI_BAND_ACTIVITY_SAMPLE" ("TIMESTAMP" INTEGER NOT NULL ,"DEVICE_ID" INTEGER NOT NULL ,"USER_ID" INTEGER NOT NULL ,"RAW_INTENSITY" INTEGER NOT NULL ,"STEPS" INTEGER NOT NULL ,"RAW_KIND" INTEGER NOT NULL ,"HEART_RATE" INTEGER NOT NULL ,PRIMARY KEY ("TIMESTAMP" ,"DEVICE_ID") ON CONFLICT REPLACE);
CREATE TABLE "GARMIN_ACTIVITY_SAMPLE" ("TIMESTAMP" INTEGER NOT NULL ,"DEVICE_ID" INTEGER NOT NULL ,"USER_ID" INTEGER NOT NULL ,"RAW_INTENSITY" INTEGER NOT NULL ,"STEPS" INTEGER NOT NULL ,"RAW_KIND" INTEGER NOT NULL ,"HEART_RATE" INTEGER NOT NULL ,"DISTANCE_CM" INTEGER NOT NULL ,"ACTIVE_CALORIES" INTEGER NOT NULL ,PRIMARY KEY ("TIMESTAMP" ,"DEVICE_ID") ON CONFLICT REPLACE);
CREATE TABLE "GARMIN_SLEEP_STAGE_SAMPLE" ("TIMESTAMP" INTEGER NOT NULL ,"DEVICE_ID" INTEGER NOT NULL ,"USER_ID" INTEGER NOT NULL ,"STAGE" INTEGER NOT NULL ,PRIMARY KEY ("TIMESTAMP" ,"DEVICE_ID") ON CONFLICT REPLACE);
CREATE TABLE "BASE_ACTIVITY_SUMMARY" ("_id" INTEGER PRIMARY KEY AUTOINCREMENT ,"NAME" TEXT,"START_TIME" INTEGER NOT NULL ,"END_TIME" INTEGER NOT NULL ,"ACTIVITY_KIND" INTEGER NOT NULL ,"BASE_LONGITUDE" INTEGER,"BASE_LATITUDE" INTEGER,"BASE_ALTITUDE" INTEGER,"GPX_TRACK" TEXT,"RAW_DETAILS_PATH" TEXT,"DEVICE_ID" INTEGER NOT NULL ,"USER_ID" INTEGER NOT NULL ,"SUMMARY_DATA" TEXT,"RAW_SUMMARY_DATA" BLOB);
"#;

/// 07:00 Berlin on 2026-11-(10 + day) as unix seconds.
fn morning(day: i64) -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 10, 6, 0, 0).single().expect("time").timestamp() + day * 86_400
}

async fn open(path: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    sqlx::SqliteConnection::connect(&url).await.expect("open")
}

/// Add `days` days from `first`: the Mi Band walks 1,200 steps each morning (08:00-10:00,
/// 10 a minute) and sleeps 23:00-06:30 (7.5 h, light and deep); the Garmin counts a
/// running total of 3,000 steps each afternoon and records 23:30-06:30 stages with half
/// an hour awake (6.5 h asleep).
async fn add_days(c: &mut sqlx::SqliteConnection, first: i64, days: i64) {
    for day in first..first + days {
        let m = morning(day);
        // The night before this morning: 22:00 UTC-ish = 23:00 Berlin.
        for t in ((m - 8 * 3600)..(m - 30 * 60)).step_by(60) {
            let kind = if (t / 60) % 3 == 0 { 11 } else { 9 };
            sqlx::query("INSERT INTO MI_BAND_ACTIVITY_SAMPLE VALUES (?, 1, 1, 10, 0, ?, 55)")
                .bind(t)
                .bind(kind)
                .execute(&mut *c)
                .await
                .expect("sleep");
        }
        for t in ((m + 3600)..(m + 3 * 3600)).step_by(60) {
            sqlx::query("INSERT INTO MI_BAND_ACTIVITY_SAMPLE VALUES (?, 1, 1, 40, 10, 1, 90)")
                .bind(t)
                .execute(&mut *c)
                .await
                .expect("steps");
        }
        // A 30-minute run at 07:00 with the band's heart rate.
        for t in (m..(m + 1800)).step_by(60) {
            sqlx::query("INSERT INTO MI_BAND_ACTIVITY_SAMPLE VALUES (?, 1, 1, 90, 0, 2, 150)")
                .bind(t)
                .execute(&mut *c)
                .await
                .expect("run");
        }
        sqlx::query("INSERT INTO BASE_ACTIVITY_SUMMARY (NAME, START_TIME, END_TIME, ACTIVITY_KIND, DEVICE_ID, USER_ID) VALUES ('Run', ?, ?, 16, 1, 1)")
            .bind(m * 1000)
            .bind((m + 1800) * 1000)
            .execute(&mut *c)
            .await
            .expect("workout");
        // Garmin: a running total over the afternoon, then sleep stages (end of each stage).
        let mut total = 0;
        for t in ((m + 7 * 3600)..(m + 8 * 3600)).step_by(60) {
            total += 50;
            sqlx::query("INSERT INTO GARMIN_ACTIVITY_SAMPLE VALUES (?, 2, 1, 30, ?, 1, 80, 0, 0)")
                .bind(t)
                .bind(total)
                .execute(&mut *c)
                .await
                .expect("garmin steps");
        }
        for (i, t) in ((m - 7 * 3600 - 30 * 60 + 60)..=(m - 30 * 60)).step_by(60).enumerate() {
            let stage = if i < 30 {
                1
            } else if i % 2 == 0 {
                2
            } else {
                3
            };
            sqlx::query("INSERT INTO GARMIN_SLEEP_STAGE_SAMPLE VALUES (?, 2, 1, ?)")
                .bind(t * 1000)
                .bind(stage)
                .execute(&mut *c)
                .await
                .expect("stage");
        }
    }
}

async fn make_db(path: &Path, days: i64) {
    let mut c = open(path).await;
    sqlx::raw_sql(SCHEMA).execute(&mut c).await.expect("schema");
    sqlx::query("INSERT INTO DEVICE (NAME, MANUFACTURER, IDENTIFIER, TYPE, TYPE_NAME) VALUES ('Amazfit Bip', 'Huami', 'C8:0F:10:11:22:33', 13, 'AMAZFITBIP'), ('Forerunner 255', 'Garmin', 'E4:5F:01:44:55:66', 300, 'GARMIN_FORERUNNER_255')")
        .execute(&mut c)
        .await
        .expect("devices");
    add_days(&mut c, 0, days).await;
    c.close().await.expect("close");
}

fn status(data: &Path, from: &str, to: &str) -> serde_json::Value {
    let out = coachd(data).args(["status", "alex", "--from", from, "--to", to, "--json"]).output().expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn verdicts(report: &serde_json::Value, homework: &str) -> Vec<(String, String, f64)> {
    report["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .filter(|o| o["homework"].as_str().is_some_and(|h| h.contains(homework)))
        .map(|o| {
            (
                o["date"].as_str().unwrap_or_default().to_string(),
                o["verdict"].as_str().unwrap_or_default().to_string(),
                o["achieved"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gadgetbridge_export_gives_steps_sleep_and_workouts_and_a_newer_one_only_what_is_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin", "--hr-max", "190"]).assert().success();
    coachd(&data).args(["assign", "alex", "4000 steps a day", "--from", "2026-11-01"]).assert().success();
    coachd(&data).args(["assign", "alex", "7 hours of sleep", "--from", "2026-11-01"]).assert().success();
    let db = dir.path().join("Gadgetbridge.db");
    make_db(&db, 3).await;
    let out = coachd(&data).arg("import").arg("alex").arg(&db).output().expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("imported") && stdout.contains("Gadgetbridge: 3 activities"), "{stdout}");
    let report = status(&data, "2026-11-10", "2026-11-12");
    // Steps: 1,200 from the band and 3,000 from the watch are two devices counting the
    // same person: the larger, 3,000, which is partial against 4,000.
    let steps = verdicts(&report, "steps");
    assert_eq!(steps.len(), 3, "{report}");
    assert!(steps.iter().all(|(_, v, a)| v == "partial" && *a == 3000.0), "{steps:?}");
    // Sleep: "7 hours of sleep" on a date is the night that ends the next morning; the
    // band's 7.5 h (the watch's 6.5 h is the smaller).
    let sleep = verdicts(&report, "sleep");
    for day in ["2026-11-10", "2026-11-11"] {
        let (_, v, a) = sleep.iter().find(|(d, _, _)| d == day).unwrap_or_else(|| panic!("{day}: {sleep:?}"));
        assert!(v == "done" && (*a - 7.5).abs() < 0.05, "{day}: {v} {a} ({sleep:?})");
    }
    // The runs, with the band's heart rate.
    let out = coachd(&data)
        .args(["activities", "alex", "--from", "2026-11-09", "--to", "2026-11-13", "--json"])
        .output()
        .expect("activities");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs: Vec<&serde_json::Value> = list.as_array().expect("list").iter().filter(|a| a["type"] == "run").collect();
    assert_eq!(runs.len(), 3, "{list}");
    assert!(runs.iter().all(|r| r["hr_samples"] == 30 && r["avg_hr"] == 150.0), "{list}");
    // The same file again: one lookup.
    let out = coachd(&data).arg("import").arg("alex").arg(&db).output().expect("import");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("duplicate"), "{}", String::from_utf8_lossy(&out.stdout));
    // Tonight's export has one more day: only that day's rows are new.
    let mut c = open(&db).await;
    add_days(&mut c, 3, 1).await;
    c.close().await.expect("close");
    let out = coachd(&data).arg("import").arg("alex").arg(&db).output().expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // Day 4: one run with its 30 heart-rate samples, 120 band minutes of steps and 60 watch
    // minutes; the three days read again change nothing.
    assert!(stdout.contains("Gadgetbridge: 1 activities, 210 samples"), "{stdout}");
    let again = status(&data, "2026-11-10", "2026-11-12");
    assert_eq!(verdicts(&again, "steps"), steps, "earlier days unchanged");
    let day4 = verdicts(&status(&data, "2026-11-13", "2026-11-13"), "steps");
    assert_eq!(day4, vec![("2026-11-13".to_string(), "partial".to_string(), 3000.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_still_being_written_or_not_gadgetbridges_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    // Half a database: the first pages of a real one, as a copy cut short would be.
    let db = dir.path().join("Gadgetbridge.db");
    make_db(&db, 2).await;
    let bytes = std::fs::read(&db).expect("read");
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let out = coachd(&data).arg("import").arg("alex").arg(&cut).output().expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("rejected") && stdout.contains("damaged or incomplete"), "{stdout}");
    // Another app's SQLite database.
    let other = dir.path().join("other.db");
    let mut c = open(&other).await;
    sqlx::raw_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)").execute(&mut c).await.expect("table");
    c.close().await.expect("close");
    let out = coachd(&data).arg("import").arg("alex").arg(&other).output().expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not a Gadgetbridge export"), "{stdout}");
    // Nothing of either was stored, and no private copy was left behind.
    let out = coachd(&data)
        .args(["activities", "alex", "--from", "2026-11-01", "--to", "2026-11-30", "--json"])
        .output()
        .expect("activities");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"), serde_json::json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".coachd-copy"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_while_it_is_imported_is_never_read_half_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let db = dir.path().join("Gadgetbridge.db");
    make_db(&db, 1).await;
    // The app keeps writing a day at a time while coachd imports.
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = open(&db).await;
            for day in 1..12 {
                sqlx::query("BEGIN").execute(&mut c).await.expect("begin");
                add_days(&mut c, day, 1).await;
                sqlx::query("COMMIT").execute(&mut c).await.expect("commit");
            }
            c.close().await.expect("close");
        })
    };
    let mut outcomes = Vec::new();
    while !writer.is_finished() {
        let out = coachd(&data).arg("import").arg("alex").arg(&db).output().expect("import");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ok = text.starts_with("imported") || text.starts_with("duplicate");
        let refused = text.contains("still being written") || text.contains("damaged or incomplete");
        assert!(
            ok || refused,
            "either a whole read or a clear refusal: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outcomes.push(text);
    }
    writer.await.expect("writer");
    // Once the writing is over, one more import brings it all, each day whole.
    coachd(&data).arg("import").arg("alex").arg(&db).assert().success();
    let out = coachd(&data)
        .args(["activities", "alex", "--from", "2026-11-09", "--to", "2026-11-30", "--json"])
        .output()
        .expect("activities");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = list.as_array().expect("list").iter().filter(|a| a["type"] == "run").count();
    assert_eq!(runs, 12, "every day's run once ({} imports during the writes)", outcomes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_gives_its_nights_bed_and_wake_times_dated_by_the_morning() {
    use coachd::model::Metric;
    let t = crate::TestStore::new().await;
    let alex = t.client("alex").await;
    let client = t.store.client_by_id(alex).await.expect("client");
    let tz = chrono_tz::Europe::Berlin;
    let db = t.dir.path().join("Gadgetbridge.db");
    make_db(&db, 3).await;
    let import = |path: std::path::PathBuf| {
        let (store, client) = (t.store.clone(), client.clone());
        async move { coachd::files::import_file(&store, &client, tz, &path, coachd::files::quiet()).await }
    };
    import(db.clone()).await.expect("import");
    let (from, to) = (
        chrono::NaiveDate::from_ymd_opt(2026, 11, 10).expect("d"),
        chrono::NaiveDate::from_ymd_opt(2026, 11, 12).expect("d"),
    );
    let times = || async {
        let ev = t.store.evidence(alex, tz, from, to).await.expect("evidence");
        let mut out: Vec<(String, String, f64, f64)> = Vec::new();
        for d in ev.daily.iter().filter(|d| d.metric == Metric::SleepStart && d.date >= from && d.date <= to) {
            let end =
                ev.daily.iter().find(|e| e.metric == Metric::SleepEnd && e.date == d.date && e.source == d.source);
            out.push((d.date.to_string(), d.source.clone(), d.value, end.map_or(-1.0, |e| e.value)));
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    };
    let found = times().await;
    let mut expected = Vec::new();
    for day in 0..3 {
        let m = morning(day) as f64;
        let date = format!("2026-11-{}", 10 + day);
        // The band: asleep from 23:00 to 06:30; the watch's stages: asleep from midnight
        // (23:00 UTC the day before) to 06:30, after half an hour awake.
        expected.push((date.clone(), "gadgetbridge.c80f10112233".to_string(), m - 8.0 * 3600.0, m - 1800.0));
        expected.push((date, "gadgetbridge.e45f01445566".to_string(), m - 7.0 * 3600.0, m - 1800.0));
    }
    assert_eq!(found, expected);
    // Tonight's export, with a day more: the nights already stored stay as they were.
    let mut c = open(&db).await;
    add_days(&mut c, 3, 1).await;
    c.close().await.expect("close");
    import(db.clone()).await.expect("import");
    assert_eq!(times().await, expected);
}
