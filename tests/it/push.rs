//! Health Auto Export pushes to the daemon's web server.

use crate::TestStore;
use chrono::{NaiveDate, TimeZone};
use coachd::model::Metric;
use serde_json::json;
use std::sync::Arc;

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(t: &TestStore) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = coachd::app::App::new(t.store.clone(), Arc::new(t.config.clone())).expect("app");
    let task = tokio::spawn(coachd::daemon::run(app, listener, Vec::new(), async move {
        let _ = stopped.await;
    }));
    Running { base, stop, task }
}

fn steps(entries: &[(&str, f64)]) -> serde_json::Value {
    let data: Vec<_> = entries.iter().map(|(d, q)| json!({"date": d, "qty": q})).collect();
    json!({"data": {"metrics": [{"name": "step_count", "units": "count", "data": data}], "workouts": []}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_authorised_idempotent_and_land_like_the_export() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let app = start(&t).await;
    let url = format!("{}/ingest/health-auto-export", app.base);
    let http = reqwest::Client::new();
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut req = http.post(&url).json(&body);
        if let Some(tok) = token {
            req = req.bearer_auth(tok);
        }
        req.send()
    };
    assert_eq!(post(None, steps(&[])).await.expect("post").status(), 401);
    assert_eq!(post(Some("not-a-token"), steps(&[])).await.expect("post").status(), 401);
    let token = t.store.new_push_token(alex).await.expect("token");

    // "Since last sync": the morning, then the afternoon; the morning again changes nothing.
    let morning = steps(&[("2026-11-20 08:00:00 +0100", 3000.0), ("2026-11-20 09:00:00 +0100", 1000.0)]);
    let afternoon = steps(&[("2026-11-20 15:00:00 +0100", 4500.0), ("2026-11-20 23:59:00 +0100", 100.0)]);
    for body in [morning.clone(), afternoon, morning] {
        let r = post(Some(&token), body).await.expect("post");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let tz = chrono_tz::Europe::Berlin;
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
    let ev = t.store.evidence(alex, tz, day, day).await.expect("evidence");
    let total: Vec<f64> =
        ev.daily.iter().filter(|d| d.metric == Metric::Steps && d.date == day).map(|d| d.value).collect();
    assert_eq!(total, [8600.0]);

    let workout = json!({"data": {"metrics": [
        {"name": "sleep_analysis", "units": "hr", "data": [{"date": "2026-11-21", "totalSleep": 7.25,
            "sleepStart": "2026-11-20 23:30:00 +0100", "sleepEnd": "2026-11-21 06:45:00 +0100"}]}],
      "workouts": [{"id": "A1B2", "name": "Outdoor Run", "start": "2026-11-20 18:00:00 +0100",
        "end": "2026-11-20 18:30:00 +0100", "duration": 1800,
        "heartRateData": (0..30).map(|m| json!({"date": format!("2026-11-20 18:{m:02}:00 +0100"), "Avg": 150, "Min": 140, "Max": 160})).collect::<Vec<_>>()}]}});
    let r = post(Some(&token), workout.clone()).await.expect("post");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["activities"], 1);
    let ev = t.store.evidence(alex, tz, day, day).await.expect("evidence");
    let run = ev.workouts.iter().find(|w| w.activity_type == "run").expect("run");
    assert_eq!((run.hr_samples, run.sources.clone()), (30, vec!["hae".to_string()]));
    assert_eq!(run.start, tz.with_ymd_and_hms(2026, 11, 20, 18, 0, 0).single().expect("t").with_timezone(&chrono::Utc));
    let sleep: Vec<f64> = ev.daily.iter().filter(|d| d.metric == Metric::SleepS).map(|d| d.value).collect();
    assert_eq!(sleep, [7.25 * 3600.0]);
    // Pushed again: nothing changes.
    let before = t.store.row_counts().await.expect("counts");
    assert_eq!(post(Some(&token), workout).await.expect("post").status(), 200);
    assert_eq!(t.store.row_counts().await.expect("counts"), before);

    // Bad payloads are refused with the reason; a revoked token no longer works.
    let r = http.post(&url).bearer_auth(&token).body("{not json").send().await.expect("post");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("not JSON"));
    assert_eq!(post(Some(&token), json!({"metrics": []})).await.expect("post").status(), 400);
    let newer = t.store.new_push_token(alex).await.expect("token");
    assert_eq!(post(Some(&token), steps(&[])).await.expect("post").status(), 401);
    assert_eq!(post(Some(&newer), steps(&[])).await.expect("post").status(), 200);

    app.stop.send(()).expect("stop");
    app.task.await.expect("task").expect("daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_names_what_it_could_not_use_and_never_says_ok_to_nothing() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let app = start(&t).await;
    let url = format!("{}/ingest/health-auto-export", app.base);
    let token = t.store.new_push_token(alex).await.expect("token");
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| http.post(&url).bearer_auth(&token).json(&body).send();
    let items =
        |data: serde_json::Value| json!({"data": {"metrics": [{"name": "step_count", "data": data}], "workouts": []}});
    // Mixed: the good items are stored, the bad ones named.
    let mixed = items(json!([
        {"date": "2026-11-20 08:00:00 +0100", "qty": 3000},
        {"date": "2026-11-20 09:00:00 +0100", "qty": "x"},
        {"date": "2026-11-20 10:00:00 +0100", "qty": -5},
        {"date": "9999-12-31 23:59:59 +0000", "qty": 10},
        {"date": "yesterday", "qty": 10},
    ]));
    let r = post(mixed).await.expect("post");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let rejected = body["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 4, "{body}");
    assert_eq!(rejected[0]["metric"], "step_count");
    assert_eq!(rejected[0]["index"], 1);
    assert!(rejected[0]["why"].as_str().is_some_and(|w| w.contains("qty") && w.contains("not a number")), "{body}");
    assert!(rejected[2]["why"].as_str().is_some_and(|w| w.contains("outside 2000 to tomorrow")), "{body}");
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
    let ev = t.store.evidence(alex, chrono_tz::Europe::Berlin, day, day).await.expect("evidence");
    let steps: Vec<f64> =
        ev.daily.iter().filter(|d| d.metric == Metric::Steps && d.date == day).map(|d| d.value).collect();
    assert_eq!(steps, vec![3000.0], "only the good item");
    // Everything bad: 400 with the reasons, nothing stored.
    let r = post(items(json!([{"date": "9999-12-31 23:59:59 +0000", "qty": 10}, {"qty": 5}]))).await.expect("post");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("nothing could be stored")), "{body}");
    let far = t
        .store
        .evidence(
            alex,
            chrono_tz::UTC,
            NaiveDate::from_ymd_opt(9999, 12, 30).expect("d"),
            NaiveDate::from_ymd_opt(9999, 12, 31).expect("d"),
        )
        .await
        .expect("evidence");
    assert!(far.daily.is_empty(), "the far-future bucket was not stored");
    // A workout with a broken date is named too; the push's good workout is kept.
    let workouts = json!({"data": {"metrics": [], "workouts": [
        {"name": "Outdoor Run", "start": "2026-11-21 07:00:00 +0100", "end": "2026-11-21 07:30:00 +0100"},
        {"name": "Outdoor Run", "start": "tomorrow", "end": "2026-11-21 08:30:00 +0100"},
    ]}});
    let r = post(workouts).await.expect("post");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (body["activities"].as_u64(), body["rejected"][0]["metric"].as_str()),
        (Some(1), Some("workouts")),
        "{body}"
    );
    app.stop.send(()).expect("stop");
    app.task.await.expect("task").expect("daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_of_parts_of_a_night_give_its_bed_and_wake_times_and_mindful_minutes_a_meditation() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let app = start(&t).await;
    let url = format!("{}/ingest/health-auto-export", app.base);
    let token = t.store.new_push_token(alex).await.expect("token");
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| http.post(&url).bearer_auth(&token).json(&body).send();
    let stage = |start: &str, end: &str, value: &str, hours: f64| {
        json!({"startDate": format!("2026-11-{start} +0100"), "endDate": format!("2026-11-{end} +0100"),
               "qty": hours, "value": value, "source": "Alex’s Apple Watch"})
    };
    let night = |stages: Vec<serde_json::Value>| json!({"data": {"metrics": [{"name": "sleep_analysis", "units": "hr", "data": stages}], "workouts": []}});
    let tz = chrono_tz::Europe::Berlin;
    let (evening, morning) =
        (NaiveDate::from_ymd_opt(2026, 11, 20).expect("d"), NaiveDate::from_ymd_opt(2026, 11, 21).expect("d"));
    let at = |d: u32, h: u32, m: u32| tz.with_ymd_and_hms(2026, 11, d, h, m, 0).single().expect("t").timestamp() as f64;
    let times = |date: NaiveDate| {
        let store = t.store.clone();
        async move {
            let ev = store.evidence(alex, tz, date, date).await.expect("evidence");
            let get = |m: Metric| ev.daily.iter().find(|d| d.metric == m && d.date == date).map(|d| d.value);
            (get(Metric::SleepStart), get(Metric::SleepEnd))
        }
    };
    let ok = |r: reqwest::Response| assert_eq!(r.status(), 200);

    // "Since last sync" at 23:55: the night so far ends on the 20th, so it is the 20th's for now.
    let first = night(vec![stage("20 23:10:00", "20 23:50:00", "Core", 40.0 / 60.0)]);
    ok(post(first.clone()).await.expect("post"));
    assert_eq!(times(evening).await, (Some(at(20, 23, 10)), Some(at(20, 23, 50))));
    // At 03:00, past midnight and an awake spell: the night now ends on the 21st.
    let second = night(vec![
        stage("20 23:50:00", "21 00:30:00", "Core", 40.0 / 60.0),
        stage("21 00:30:00", "21 00:45:00", "Awake", 0.25),
        stage("21 00:45:00", "21 02:50:00", "Deep", 125.0 / 60.0),
    ]);
    ok(post(second.clone()).await.expect("post"));
    assert_eq!(times(evening).await, (None, None), "the 20th's part-night is gone");
    assert_eq!(times(morning).await, (Some(at(20, 23, 10)), Some(at(21, 2, 50))));
    // The same push again changes nothing.
    let before = t.store.row_counts().await.expect("counts");
    ok(post(second.clone()).await.expect("post"));
    assert_eq!(t.store.row_counts().await.expect("counts"), before);
    // After waking: only the rest of the night; the bedtime stays, the wake time moves.
    let third = night(vec![stage("21 03:00:00", "21 06:40:00", "REM", 220.0 / 60.0)]);
    ok(post(third.clone()).await.expect("post"));
    assert_eq!(times(morning).await, (Some(at(20, 23, 10)), Some(at(21, 6, 40))));
    // "Previous 7 days": the whole night again, now with a nap: nothing changes but the
    // nap's own sleep, and the nap never becomes the bedtime.
    let before = t.store.row_counts().await.expect("counts");
    let mut all: Vec<serde_json::Value> = [first, second, third]
        .iter()
        .flat_map(|n| n["data"]["metrics"][0]["data"].as_array().cloned().unwrap_or_default())
        .collect();
    let whole = night(all.clone());
    ok(post(whole).await.expect("post"));
    assert_eq!(t.store.row_counts().await.expect("counts"), before);
    all.push(stage("21 14:00:00", "21 14:30:00", "Core", 0.5));
    ok(post(night(all)).await.expect("post"));
    assert_eq!(times(morning).await, (Some(at(20, 23, 10)), Some(at(21, 6, 40))));

    // Mindful minutes: a meditation of that length, the same one when pushed again.
    let mindful = json!({"data": {"metrics": [{"name": "mindful_minutes", "units": "min",
        "data": [{"date": "2026-11-21 07:00:00 +0100", "qty": 12}]}], "workouts": []}});
    let r = post(mindful.clone()).await.expect("post");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["activities"], 1, "{body}");
    let before = t.store.row_counts().await.expect("counts");
    ok(post(mindful).await.expect("post"));
    assert_eq!(t.store.row_counts().await.expect("counts"), before);
    let ev = t.store.evidence(alex, tz, morning, morning).await.expect("evidence");
    let m = ev.workouts.iter().find(|w| w.activity_type == "meditation").expect("a meditation");
    assert_eq!((m.duration_s, m.sources.clone()), (720.0, vec!["hae".to_string()]));
    assert_eq!(m.start.timestamp() as f64, at(21, 7, 0));

    app.stop.send(()).expect("stop");
    app.task.await.expect("task").expect("daemon");
}
