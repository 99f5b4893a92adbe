//! The homework engine through the store and the real binary.

use crate::coachd;
use crate::{batch, TestStore};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use coachd::engine::judge::{Occurrence, Verdict};
use coachd::engine::rule::Rule;
use coachd::model::{Batch, Category, DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use coachd::status::{status, RunStats, StatusReport};
use predicates::str::contains;

fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time").with_timezone(&Utc)
}

fn date(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
}

/// A workout with per-second HR: `hard` minutes at 150 bpm, then `easy` at 100.
fn hr_workout(client: i64, id: &str, ty: &str, start: DateTime<Utc>, hard: i64, easy: i64) -> NewActivity {
    let t0 = start.timestamp_millis();
    let samples: Vec<Sample> = (0..(hard + easy) * 60)
        .map(|s| Sample { t_ms: t0 + s * 1000, value: if s < hard * 60 { 150.0 } else { 100.0 } })
        .collect();
    NewActivity {
        client_id: client,
        external_id: id.into(),
        start,
        end: start + Duration::minutes(hard + easy),
        utc_offset_s: 3600,
        activity_type: ty.into(),
        category: coachd::activity_types::category(ty),
        duration_s: ((hard + easy) * 60) as f64,
        distance_m: None,
        avg_hr: Some(125.0),
        max_hr: Some(150),
        energy_kj: None,
        content_hash: None,
        series: vec![Series { kind: SeriesKind::Hr, samples }],
        sets: None,
        hr_zones: None,
    }
}

async fn setup() -> (TestStore, i64) {
    let t = TestStore::new().await;
    let alex = t.client("alex").await; // Europe/Berlin, HR max 190
    for phrase in ["15 minutes of cardio", "8000 steps a day", "2 runs per week"] {
        let rule: Rule = coachd::engine::phrase::parse(phrase).expect("phrase");
        t.store.add_homework(alex, &rule, date(9), None).await.expect("homework");
    }
    (t, alex)
}

fn week_data(alex: i64) -> Vec<Batch> {
    let mut a = batch("strava", vec![hr_workout(alex, "s1", "run", berlin(2026, 11, 10, 18, 0), 20, 10)], Some("1"));
    a.daily.push(DailyMetric { client_id: alex, date: date(10), metric: Metric::Steps, value: 9500.0 });
    let b = batch("fit", vec![hr_workout(alex, "f1", "run", berlin(2026, 11, 10, 18, 0), 20, 10)], None);
    let c = batch("ble", vec![hr_workout(alex, "b1", "workout", berlin(2026, 11, 12, 23, 30), 10, 40)], None);
    let mut d = batch("oura", Vec::new(), None);
    d.daily.push(DailyMetric { client_id: alex, date: date(12), metric: Metric::Steps, value: 3000.0 });
    let e = batch("strava", vec![hr_workout(alex, "s2", "run", berlin(2026, 11, 14, 9, 0), 30, 0)], Some("2"));
    vec![a, b, c, d, e]
}

async fn run(t: &TestStore, now: DateTime<Utc>) -> (StatusReport, RunStats) {
    let cfg = t.config.homework.judge_config();
    let clients = t.store.list_clients().await.expect("clients");
    status(&t.store, &cfg, 0.2, &clients, date(9), date(15), now).await.expect("status")
}

fn verdicts(r: &StatusReport) -> Vec<(i64, NaiveDate, Verdict, f64)> {
    r.occurrences.iter().map(|o| (o.homework_id, o.date, o.verdict, o.achieved)).collect()
}

fn find(r: &StatusReport, hw: i64, d: NaiveDate) -> Occurrence {
    r.occurrences.iter().find(|o| o.homework_id == hw && o.date == d).cloned().expect("occurrence")
}

#[tokio::test]
async fn verdicts_from_stored_heart_rate_and_sources() {
    let (t, alex) = setup().await;
    for b in week_data(alex) {
        t.store.ingest(&b).await.expect("ingest");
    }
    let (r, _) = run(&t, berlin(2026, 11, 20, 12, 0)).await;
    // Tue 10: the same run from Strava and a FIT file counts once, 20 min at 150 bpm (>= 122).
    let tue = find(&r, 1, date(10));
    assert_eq!((tue.verdict, tue.achieved), (Verdict::Done, 20.0), "{tue:?}");
    assert_eq!(tue.evidence.len(), 1);
    // Thu 12, 23:30 local: the strap session runs past midnight and counts, whole, for
    // the 12th: 10 minutes at 150 bpm of the 15 asked.
    let thu = find(&r, 1, date(12));
    assert_eq!((thu.verdict, thu.achieved), (Verdict::Partial, 10.0), "{thu:?}");
    assert_eq!(find(&r, 1, date(13)).achieved, 0.0);
    // Steps: 9500 done on the 10th, 3000 missed on the 12th, nothing at all on the 9th: no data.
    assert_eq!(find(&r, 2, date(10)).verdict, Verdict::Done);
    assert_eq!(find(&r, 2, date(12)).verdict, Verdict::Missed);
    assert_eq!(find(&r, 2, date(9)).verdict, Verdict::NoData);
    // Cardio on the 11th: steps-free, activity-free, but a passive source delivered nothing: no data.
    assert_eq!(find(&r, 1, date(11)).verdict, Verdict::NoData);
    // The week of the 9th had two runs.
    let week = find(&r, 3, date(9));
    assert_eq!((week.period.as_ref(), week.verdict, week.achieved), ("week", Verdict::Done, 2.0));
}

#[tokio::test]
async fn one_batch_or_many_in_any_order_gives_the_same_verdicts() {
    let now = berlin(2026, 11, 20, 12, 0);
    let (one, alex) = setup().await;
    let mut all = Batch::new("strava");
    // Everything from one source in one batch (sources matter for dedup only as labels).
    for b in week_data(alex) {
        for mut a in b.activities {
            a.external_id = format!("{}-{}", b.source, a.external_id);
            all.activities.push(a);
        }
        all.daily.extend(b.daily);
    }
    // Two oura/strava step values on different dates: keep them distinct per date.
    one.store.ingest(&all).await.expect("ingest");
    let (r1, _) = run(&one, now).await;

    for order in [[4usize, 3, 2, 1, 0], [2, 0, 4, 1, 3]] {
        let (many, alex) = setup().await;
        let data = week_data(alex);
        for i in order {
            many.store.ingest(&data[i]).await.expect("ingest");
        }
        let (r2, _) = run(&many, now).await;
        assert_eq!(verdicts(&r1), verdicts(&r2), "order {order:?}");
    }
}

#[tokio::test]
async fn new_data_rejudges_only_what_it_can_affect_and_late_syncs_count() {
    let (t, alex) = setup().await;
    let now = berlin(2026, 11, 20, 12, 0);
    let (first, s1) = run(&t, now).await;
    assert_eq!(find(&first, 1, date(13)).verdict, Verdict::NoData);
    // 12 days (9th-20th) x 2 daily homework + 2 weeks: everything judged once.
    assert_eq!(s1.judged, 26, "{s1:?}");
    // Nothing changed: the second run judges only the pending occurrences (today's, this week's).
    let (_, s2) = run(&t, now).await;
    assert!(s2.judged <= 3, "{s2:?}");
    // A late sync for the 13th: only occurrences around that date are re-judged.
    let late = batch("strava", vec![hr_workout(alex, "late", "run", berlin(2026, 11, 13, 7, 0), 25, 0)], None);
    t.store.ingest(&late).await.expect("ingest");
    let (after, s3) = run(&t, now).await;
    // The 12th-14th of both daily homework (a nightly window or a night's sleep reaches
    // into the next day) and the week of the 9th: 7 verdicts dropped and re-judged, plus
    // the 3 pending ones.
    assert_eq!(s3.invalidated, 7, "{s3:?}");
    assert_eq!(s3.judged, 3 + 7, "{s3:?}");
    assert_eq!(find(&after, 1, date(13)).verdict, Verdict::Done);
    // Everything else is as before.
    for (o, p) in first.occurrences.iter().zip(&after.occurrences) {
        if o.date != date(13) && !(o.homework_id == 3 && o.date == date(9)) {
            assert_eq!((o.homework_id, o.date, o.verdict), (p.homework_id, p.date, p.verdict));
        }
    }
}

#[tokio::test]
async fn changing_the_verdict_settings_drops_the_cache() {
    let (t, alex) = setup().await;
    let mut b = batch("oura", Vec::new(), None);
    b.daily.push(DailyMetric { client_id: alex, date: date(10), metric: Metric::Steps, value: 6000.0 });
    t.store.ingest(&b).await.expect("ingest");
    let now = berlin(2026, 11, 20, 12, 0);
    let clients = t.store.list_clients().await.expect("clients");
    let mut cfg = t.config.homework.judge_config();
    let (r, _) = status(&t.store, &cfg, 0.2, &clients, date(9), date(15), now).await.expect("status");
    assert_eq!(find(&r, 2, date(10)).verdict, Verdict::Partial);
    cfg.bands.done = 0.7;
    let (r, _) = status(&t.store, &cfg, 0.2, &clients, date(9), date(15), now).await.expect("status");
    assert_eq!(find(&r, 2, date(10)).verdict, Verdict::Done);
}

#[tokio::test]
async fn activities_are_listed_merged_with_their_sources() {
    let (t, alex) = setup().await;
    for b in week_data(alex) {
        t.store.ingest(&b).await.expect("ingest");
    }
    let ev = t.store.evidence(alex, chrono_tz::Europe::Berlin, date(9), date(15)).await.expect("evidence");
    let tue: Vec<_> = ev.workouts.iter().filter(|w| w.start < berlin(2026, 11, 11, 0, 0)).collect();
    assert_eq!(tue.len(), 1);
    assert_eq!(tue[0].sources, ["fit", "strava"]);
    assert_eq!(tue[0].hr_samples, 1800);
    assert_eq!(tue[0].category, Category::Cardio);
}

#[test]
fn the_cli_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin", "--hr-max", "190"]).assert().success();
    coachd(&data)
        .args(["assign", "alex", "15 min cardio on mon, wed and sat", "--from", "2026-11-09"])
        .assert()
        .success()
        .stdout(contains("#1 alex: 15 minutes of cardio on Mon, Wed and Sat"));
    coachd(&data)
        .args(["assign", "alex", "10 push-ups nightly before bed", "--from", "2026-11-09"])
        .assert()
        .success()
        .stdout(contains("#2 alex: 10 push-ups every night"));
    for bad in ["do more", "15 minutes of juggling", "3 runs", "10 push-ups on mon twice a week"] {
        coachd(&data).args(["assign", "alex", bad]).assert().code(2).stderr(contains("forms that work"));
    }
    coachd(&data).args(["assign", "nobody", "15 minutes of cardio"]).assert().code(2).stderr(contains("not found"));
    coachd(&data).args(["assign", "alex", "2 runs per week", "--days", "mon"]).assert().code(2);
    coachd(&data).args(["assign", "alex", "10 squats", "--window", "25:00-26:00"]).assert().code(2);
    coachd(&data)
        .args(["log", "alex", "--type", "strength", "--start", "2026-11-11 00:40", "--minutes", "5"])
        .args(["--exercise", "push_up", "--reps", "12"])
        .assert()
        .success();
    coachd(&data)
        .args(["log", "alex", "--type", "run", "--start", "2026-11-11 18:00", "--minutes", "20"])
        .assert()
        .success();
    coachd(&data)
        .args(["log", "alex", "--type", "flying", "--start", "2026-11-11 18:00", "--minutes", "20"])
        .assert()
        .code(2);
    coachd(&data).args(["checkin", "alex", "2", "--date", "2026-11-12", "--value", "10"]).assert().success();
    coachd(&data).args(["excuse", "alex", "1", "--date", "2026-11-14", "--reason", "flu"]).assert().success();

    let out = coachd(&data)
        .args(["status", "alex", "--from", "2026-11-09", "--to", "2026-11-15", "--json"])
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let occ = json["occurrences"].as_array().expect("occurrences");
    let get = |hw: i64, d: &str| {
        occ.iter().find(|o| o["homework_id"] == hw && o["date"] == d).cloned().unwrap_or_else(|| panic!("{hw} {d}"))
    };
    let wed = get(1, "2026-11-11");
    for key in ["client", "homework_id", "homework", "date", "verdict", "achieved", "target", "unit", "evidence"] {
        assert!(wed.get(key).is_some(), "missing {key} in {wed}");
    }
    assert_eq!(wed["verdict"], "done");
    assert_eq!(wed["unit"], "min");
    assert_eq!(wed["evidence"][0]["sources"][0], "manual");
    assert!(wed["evidence"][0]["activity_id"].is_i64());
    assert!(occ.iter().all(|o| o["homework_id"] != 1 || o["date"] != "2026-11-10"), "Tuesday is not scheduled");
    assert_eq!(get(2, "2026-11-10")["verdict"], "done", "00:40 push-ups count for the evening before");
    assert_eq!(get(2, "2026-11-12")["self_reported"], true);
    assert_eq!(get(1, "2026-11-14")["verdict"], "excused");
    let adh = &json["adherence"][0];
    for key in ["client", "homework_id", "days7", "days30", "days90", "needs_attention", "streak"] {
        assert!(adh.get(key).is_some(), "missing {key} in {adh}");
    }
    coachd(&data)
        .args(["status", "--from", "2026-11-09", "--to", "2026-11-15"])
        .assert()
        .success()
        .stdout(contains("alex (Europe/Berlin)"))
        .stdout(contains("#2 10 push-ups every night"));
    let out = coachd(&data)
        .args(["activities", "alex", "--from", "2026-11-09", "--to", "2026-11-15", "--json"])
        .output()
        .expect("activities");
    let acts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(acts.as_array().map(Vec::len), Some(2));
    assert_eq!(acts[0]["start"], "2026-11-11T00:40:00+01:00");
    assert_eq!(acts[0]["sets"][0]["reps"], 12);
    let out = coachd(&data).args(["homework", "list", "alex", "--json"]).output().expect("list");
    let hw: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(hw[0]["text"], "15 minutes of cardio on Mon, Wed and Sat");
    assert!(hw[0]["rule"].is_object());
    coachd(&data)
        .args(["homework", "end", "2", "--from", "2026-11-13"])
        .assert()
        .success()
        .stdout(contains("last day 2026-11-12"));
    let out = coachd(&data)
        .args(["status", "alex", "--from", "2026-11-09", "--to", "2026-11-15", "--json"])
        .output()
        .expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(json["occurrences"]
        .as_array()
        .expect("occ")
        .iter()
        .all(|o| o["homework_id"] != 2 || o["date"].as_str() < Some("2026-11-13")));
}

#[tokio::test]
async fn cached_verdicts_read_back_exactly_as_judged_across_months() {
    let (t, alex) = setup().await;
    for b in week_data(alex) {
        t.store.ingest(&b).await.expect("ingest");
    }
    t.store.add_checkin(alex, 2, date(16), Some(12_000.0), Some("walked to work"), "cli").await.expect("checkin");
    t.store.excuse(alex, 1, date(17), Some("flu")).await.expect("excuse");
    let cfg = t.config.homework.judge_config();
    let clients = t.store.list_clients().await.expect("clients");
    // Into December, from a Monday in October: weekly occurrences dated in one month and
    // shown in another, and months only partly judged (today's occurrences are pending).
    let now = berlin(2026, 12, 3, 12, 0);
    let (from, to) =
        (NaiveDate::from_ymd_opt(2026, 10, 28).expect("date"), NaiveDate::from_ymd_opt(2026, 12, 6).expect("date"));
    let (cold, s1) = status(&t.store, &cfg, 0.2, &clients, from, to, now).await.expect("status");
    assert_eq!(s1.cached, 0, "{s1:?}");
    let (warm, s2) = status(&t.store, &cfg, 0.2, &clients, from, to, now).await.expect("status");
    // Only what is still pending is judged again (the 3rd to the 6th, and that week).
    let pending = cold.occurrences.iter().filter(|o| o.verdict == Verdict::Pending).count();
    assert!(s2.cached > 0 && s2.judged == pending, "{s2:?}, {pending} pending");
    assert_eq!(cold.occurrences, warm.occurrences, "every field of every occurrence, cached or not");
    assert_eq!(cold.adherence, warm.adherence);
    assert!(warm.occurrences.iter().any(|o| o.verdict == Verdict::Excused));
    assert!(warm.occurrences.iter().any(|o| o.self_reported));
    // A narrower range reads the same occurrences from the cache.
    let (week, _) = status(&t.store, &cfg, 0.2, &clients, date(16), date(22), now).await.expect("status");
    let expected: Vec<_> =
        cold.occurrences.iter().filter(|o| o.last_day() >= date(16) && o.date <= date(22)).cloned().collect();
    assert_eq!(week.occurrences, expected);
    // After a change, what is re-judged equals a run from scratch on the same data.
    let late = batch("strava", vec![hr_workout(alex, "late", "run", berlin(2026, 11, 30, 23, 50), 20, 0)], None);
    t.store.ingest(&late).await.expect("ingest");
    let (after, s3) = status(&t.store, &cfg, 0.2, &clients, from, to, now).await.expect("status");
    assert!(s3.invalidated > 0, "{s3:?}");
    let mut other = cfg.clone();
    other.bands.done -= 1e-9; // other settings drop the whole cache: everything judged again
    let (scratch, _) = status(&t.store, &other, 0.2, &clients, from, to, now).await.expect("status");
    assert_eq!(after.occurrences, scratch.occurrences);
    assert_eq!(after.adherence, scratch.adherence);
}

/// A roster large enough to be split into chunks judged in parallel gives, in the clients'
/// order, exactly what judging each client alone gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_judged_in_parallel_chunks_equals_each_client_judged_alone() {
    let t = TestStore::new().await;
    for i in 0..60 {
        let c = t.client(&format!("client{i:02}")).await;
        for phrase in ["15 minutes of cardio", "8000 steps a day", "2 runs per week"] {
            let rule: Rule = coachd::engine::phrase::parse(phrase).expect("phrase");
            t.store.add_homework(c, &rule, date(2), None).await.expect("homework");
        }
        // Each client's own week: some workouts, some steps, on days that differ by client.
        let mut b = batch("strava", Vec::new(), None);
        for d in (2 + (i % 3))..16 {
            if (d + i) % 2 == 0 {
                let start = berlin(2026, 11, d as u32, 7 + (i % 10) as u32, 0);
                b.activities.push(hr_workout(c, &format!("w{i}-{d}"), "run", start, 5 + (i + d) % 20, 5));
            }
            b.daily.push(DailyMetric {
                client_id: c,
                date: date(d as u32),
                metric: Metric::Steps,
                value: (5_000 + 250 * ((i * d) % 20)) as f64,
            });
        }
        t.store.ingest(&b).await.expect("ingest");
    }
    let cfg = t.config.homework.judge_config();
    let clients = t.store.list_clients().await.expect("clients");
    let now = berlin(2026, 11, 15, 12, 0);
    let (all, stats) = status(&t.store, &cfg, 0.2, &clients, date(2), date(15), now).await.expect("status");
    assert_eq!(stats.cached, 0, "from scratch");
    let mut alone = StatusReport::default();
    t.store.check_verdict_settings("judged again").await.expect("drop the cache");
    for c in &clients {
        let (r, s) =
            status(&t.store, &cfg, 0.2, std::slice::from_ref(c), date(2), date(15), now).await.expect("status");
        assert_eq!(s.cached, 0, "{}: from scratch", c.name);
        alone.occurrences.extend(r.occurrences);
        alone.adherence.extend(r.adherence);
    }
    assert_eq!(all.occurrences.len(), alone.occurrences.len());
    assert!(all.occurrences.iter().any(|o| o.verdict == Verdict::Done));
    assert!(all.occurrences.iter().any(|o| o.verdict == Verdict::Missed));
    assert_eq!(all.occurrences, alone.occurrences, "occurrences, in the clients' order");
    assert_eq!(all.adherence, alone.adherence, "adherence, in the clients' order");
    // And warm, from the cache the parallel run wrote.
    let (warm, stats) = status(&t.store, &cfg, 0.2, &clients, date(2), date(15), now).await.expect("status");
    assert!(stats.cached > 0);
    assert_eq!(warm.occurrences, alone.occurrences);
    assert_eq!(warm.adherence, alone.adherence);
}
