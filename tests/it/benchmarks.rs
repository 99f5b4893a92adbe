//! Benchmarks: recorded and listed by the real binary (bad input exits 2 with its
//! reason and changes nothing), recorded from the client page (CSRF-checked, only for the
//! trainer's own clients), seen through the API by their trainer only, and drawn by the
//! progress chart beside the linked homework's weekly adherence.

use crate::dashboard::{browser, login, site, PASSWORD_A};
use crate::{coachd, TestStore};
use chrono::{Duration, Utc};
use coachd::charts::data::{build, Judging, Request};
use coachd::charts::{render, Body, Format, Kind};
use coachd::store::benchmarks::Unit;
use coachd::store::NewBenchmark;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use reqwest::StatusCode;
use std::path::Path;

fn list_json(data: &Path, client: &str) -> Vec<serde_json::Value> {
    let out = coachd(data).args(["benchmarks", client, "--json"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json").as_array().expect("a list").clone()
}

/// The stderr of a command that must exit 2, without its "error: ".
fn refused(data: &Path, args: &[&str]) -> String {
    let out = coachd(data).args(args).assert().code(2).get_output().stderr.clone();
    let text = String::from_utf8_lossy(&out).trim().to_string();
    text.strip_prefix("error: ").unwrap_or_else(|| panic!("an error line for {args:?}: {text}")).to_string()
}

#[test]
fn the_command_line_records_lists_and_refuses_bad_benchmarks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Two trainers with a client each: each trainer adopts the clients nobody has.
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data)
        .args(["trainer", "add", "anna", "--password-stdin"])
        .write_stdin("anna's long password\n")
        .assert()
        .success();
    coachd(&data)
        .args(["trainer", "add", "ben", "--password-stdin"])
        .write_stdin("ben's long password\n")
        .assert()
        .success();
    coachd(&data).args(["client", "add", "bea", "--tz", "Europe/Berlin", "--trainer", "ben"]).assert().success();
    coachd(&data).args(["assign", "alex", "10 push-ups every night", "--from", "2026-01-01"]).assert().success();
    coachd(&data).args(["assign", "bea", "8000 steps a day", "--from", "2026-01-01"]).assert().success();

    coachd(&data)
        .args([
            "benchmark",
            "alex",
            "max push-ups",
            "18",
            "--for",
            "1",
            "--note",
            "chest to fist",
            "--date",
            "yesterday",
        ])
        .assert()
        .success()
        .stdout(contains("max push-ups 18 reps (for #1 10 push-ups every night"));
    // Another spelling is the same test; the earlier result is shown beside the new one.
    coachd(&data)
        .args(["benchmark", "alex", "Max  Push-Ups", "20", "--trainer", "anna"])
        .assert()
        .success()
        .stdout(contains("max push-ups 20 reps").and(contains("previous: 18 reps")).and(contains("(+2)")));
    coachd(&data).args(["benchmark", "alex", "plank", "1:30"]).assert().success().stdout(contains("plank 90 s"));

    let before = list_json(&data, "alex");
    assert_eq!(before.len(), 3, "{before:?}");
    let first = &before[0];
    assert_eq!(first["name"], "max push-ups");
    assert_eq!(first["unit"], "reps");
    assert_eq!(first["value"], 18.0);
    assert_eq!(first["homework_id"], 1);
    assert_eq!(first["homework"], "10 push-ups every night");
    assert_eq!(first["note"], "chest to fist");
    assert_eq!(first["recorded_by"], serde_json::Value::Null);
    let yesterday = (Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive() - Duration::days(1)).to_string();
    assert_eq!(first["date"], yesterday.as_str());
    assert_eq!(before[1]["name"], "max push-ups", "the first spelling is kept");
    assert_eq!(before[1]["recorded_by"], "anna");
    assert_eq!(before[1]["homework_id"], serde_json::Value::Null);
    assert_eq!((before[2]["name"].as_str(), before[2]["unit"].as_str()), (Some("plank"), Some("s")));
    for key in ["id", "client", "date", "created"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }

    // Bad input: exit 2, the reason named, nothing stored.
    let cases: [(&[&str], &str); 10] = [
        (&["benchmark", "alex", "max push-ups", "lots"], "\"lots\" is not a result"),
        (&["benchmark", "alex", "max push-ups", "NaN"], "is not a result"),
        (&["benchmark", "alex", "max push-ups", "-3"], "-3 reps is out of range"),
        (&["benchmark", "alex", "max push-ups", "18.5"], "whole number"),
        (&["benchmark", "alex", "squat form", "7"], "a score is from 1 to 5"),
        (&["benchmark", "alex", "jump", "40", "--unit", "furlongs"], "unit \"furlongs\" is not known; use reps, s"),
        (&["benchmark", "alex", "broad jump", "180"], "not clear from its name: give it (--unit"),
        (&["benchmark", "alex", "max push-ups", "30", "--unit", "kg"], "is recorded in reps"),
        (&["benchmark", "alex", "max push-ups", "19", "--date", "2199-01-01"], "is in the future"),
        // Bea's homework through alex: not found, as if it did not exist.
        (&["benchmark", "alex", "max push-ups", "19", "--for", "2"], "homework #2 of alex not found"),
    ];
    for (args, message) in cases {
        let said = refused(&data, args);
        assert!(said.contains(message), "{args:?}: {said:?} should say {message:?}");
    }
    // Another trainer's client is not found for that trainer; an unknown trainer neither.
    let said = refused(&data, &["benchmark", "alex", "max push-ups", "19", "--trainer", "ben"]);
    assert_eq!(said, "client \"alex\" not found among ben's clients");
    assert!(refused(&data, &["benchmark", "alex", "plank", "60", "--trainer", "nobody"]).contains("no trainer"));
    assert!(refused(&data, &["benchmark", "nobody", "plank", "60"]).contains("not found"));
    assert_eq!(list_json(&data, "alex"), before, "nothing was stored");
    assert!(list_json(&data, "bea").is_empty());

    // The table: one block per test, with its change.
    coachd(&data).args(["benchmarks", "alex"]).assert().success().stdout(
        contains("max push-ups (reps): 18 → 20 (+2)").and(contains("chest to fist")).and(contains("plank (s)")),
    );
    let only = coachd(&data).args(["benchmarks", "alex", "--test", "PLANK", "--json"]).output().expect("runs");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&only.stdout).expect("json").as_array().map(Vec::len),
        Some(1)
    );
    coachd(&data).args(["benchmarks", "bea"]).assert().success().stdout(contains("no benchmarks for bea yet"));

    // The progress chart names each test.
    let out = dir.path().join("progress.svg");
    coachd(&data).args(["chart", "progress", "alex", "--out"]).arg(&out).assert().success();
    let svg = std::fs::read_to_string(&out).expect("svg");
    assert!(svg.contains("max push-ups") && svg.contains("plank"), "{svg}");
    assert!(svg.contains("weekly adherence of #1 10 push-ups every night"), "the linked homework's bars are labelled");

    // Removing: only alex's own, by id.
    let plank = before[2]["id"].as_i64().expect("id").to_string();
    assert!(refused(&data, &["benchmarks", "bea", "--remove", &plank])
        .contains(&format!("benchmark #{plank} of bea not found")));
    coachd(&data).args(["benchmarks", "alex", "--remove", &plank]).assert().success().stdout(contains("removed"));
    assert_eq!(list_json(&data, "alex").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_page_records_benchmarks_for_the_trainers_own_clients_only() {
    let s = site().await;
    let (a, b) = (s.a_client, s.b_client);
    // A benchmark of Ben's client, recorded elsewhere.
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let bens =
        s.ts.store
            .add_benchmark(&NewBenchmark {
                client_id: b,
                name: "plank".into(),
                unit: Unit::Seconds,
                value: 60.0,
                note: None,
                homework_id: None,
                date: today,
                trainer_id: None,
            })
            .await
            .expect("benchmark");

    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let page = http.get(format!("{}/clients/{a}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("Record a benchmark") && page.contains(&format!("action=\"/clients/{a}/benchmarks\"")));
    assert!(!page.contains("progress.svg"), "no progress chart before the first benchmark");

    let url = format!("{}/clients/{a}/benchmarks", s.base);
    let form = |csrf: &str, value: &str, homework: String| {
        vec![
            ("csrf", csrf.to_string()),
            ("name", "max push-ups".to_string()),
            ("value", value.to_string()),
            ("unit", String::new()),
            ("date", today.to_string()),
            ("homework_id", homework),
            ("note", "chest to fist".to_string()),
        ]
    };
    // Without the session's token: refused before anything is read.
    for token in ["", "0000"] {
        let r = http.post(&url).form(&form(token, "18", s.a_homework.to_string())).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let stored = |client| {
        let store = s.ts.store.clone();
        async move { store.benchmarks(client, None).await.expect("benchmarks") }
    };
    assert!(stored(a).await.is_empty(), "nothing without the token");
    // A bad value: 400 with the same reason the command line gives.
    let r = http.post(&url).form(&form(&csrf, "lots", String::new())).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.expect("body").replace("&#34;", "\"").replace("&quot;", "\"");
    assert!(body.contains("\"lots\" is not a result"), "{body}");
    // Ben's client's homework for Anna's client, and Ben's client itself: not found.
    let r = http.post(&url).form(&form(&csrf, "18", s.b_homework.to_string())).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .post(format!("{}/clients/{b}/benchmarks", s.base))
        .form(&form(&csrf, "18", String::new()))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(stored(a).await.is_empty());
    assert_eq!(stored(b).await.len(), 1, "Ben's client got nothing from Anna");

    // The real token: stored, recorded by Anna, linked to the homework.
    let r = http.post(&url).form(&form(&csrf, "18", s.a_homework.to_string())).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let mine = stored(a).await;
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].value, mine[0].unit, mine[0].homework_id), (18.0, Unit::Reps, Some(s.a_homework)));
    assert_eq!(mine[0].recorded_by.as_deref(), Some("anna"));
    let page = http.get(format!("{}/clients/{a}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("id=\"benchmarks\"") && page.contains("18 reps") && page.contains("chest to fist"));
    assert!(page.contains(&format!("/clients/{a}/charts/progress.svg")));
    let svg = http.get(format!("{}/clients/{a}/charts/progress.svg", s.base)).send().await.expect("get");
    assert_eq!(svg.status(), StatusCode::OK);
    assert!(svg.text().await.expect("svg").contains("max push-ups"));

    // The API: Anna sees her client's benchmarks, not Ben's; nobody without a session.
    let api: serde_json::Value = http
        .get(format!("{}/api/clients/{a}/benchmarks", s.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let items = api.as_array().expect("a list");
    assert_eq!(items.len(), 1);
    assert_eq!((items[0]["name"].as_str(), items[0]["unit"].as_str()), (Some("max push-ups"), Some("reps")));
    assert_eq!(items[0]["homework_id"], s.a_homework);
    let r = http.get(format!("{}/api/clients/{b}/benchmarks", s.base)).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = browser().get(format!("{}/api/clients/{a}/benchmarks", s.base)).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(format!("{}/clients/{b}/charts/progress.svg", s.base)).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Removing: Ben's benchmark through either client's URL is not found; Anna's own goes.
    for path in
        [format!("/clients/{b}/benchmarks/{}/remove", bens.id), format!("/clients/{a}/benchmarks/{}/remove", bens.id)]
    {
        let r = http.post(format!("{}{path}", s.base)).form(&[("csrf", csrf.as_str())]).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(stored(b).await.len(), 1, "Ben's benchmark is still there");
    let r = http
        .post(format!("{}/clients/{a}/benchmarks/{}/remove", s.base, mine[0].id))
        .form(&[("csrf", "stale")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{}/clients/{a}/benchmarks/{}/remove", s.base, mine[0].id))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(stored(a).await.is_empty());
}

fn judging(ts: &TestStore) -> Judging {
    Judging { cfg: ts.config.homework.judge_config(), attention_drop: ts.config.homework.attention_drop_points / 100.0 }
}

#[tokio::test]
async fn the_progress_chart_sets_each_test_beside_its_homeworks_weekly_adherence() {
    let ts = TestStore::new().await;
    let id = ts.client("alex").await;
    let alex = ts.store.client_by_id(id).await.expect("client");
    let now = Utc::now();
    let today = now.with_timezone(&alex.tz).date_naive();
    let first = today - Duration::days(70);
    let req = |kind| Request { kind, client: Some(&alex), clients: &[], from: None, to: None, activity: None, now };

    // No benchmarks: an empty state that says so, not a failure.
    let empty = build(&ts.store, &judging(&ts), &req(Kind::Progress)).await.expect("chart");
    let svg = String::from_utf8(render(&empty, Format::Svg).expect("svg")).expect("utf-8");
    assert!(svg.contains("no benchmarks recorded from"), "{svg}");
    render(&empty, Format::Png).expect("png");

    let rule = coachd::engine::phrase::parse("10 push-ups every night").expect("phrase");
    let hw = ts.store.add_homework(id, &rule, first, None).await.expect("homework").homework.id;
    // Push-ups on half the nights, self-reported.
    for d in 0..70 {
        if d % 2 == 0 {
            ts.store.add_checkin(id, hw, first + Duration::days(d), Some(10.0), None, "cli").await.expect("checkin");
        }
    }
    let add = |name: &str, unit, value, date, homework_id| {
        let b = NewBenchmark {
            client_id: id,
            name: name.into(),
            unit,
            value,
            note: None,
            homework_id,
            date,
            trainer_id: None,
        };
        let store = ts.store.clone();
        async move { store.add_benchmark(&b).await.expect("benchmark") }
    };
    // The first result is older than the default 12 weeks would show.
    add("max push-ups", Unit::Reps, 9.0, today - Duration::days(100), Some(hw)).await;
    add("max push-ups", Unit::Reps, 12.0, first + Duration::days(28), Some(hw)).await;
    add("max push-ups", Unit::Reps, 16.0, first + Duration::days(56), Some(hw)).await;
    add("dead hang", Unit::Seconds, 35.0, first + Duration::days(30), None).await;

    let chart = build(&ts.store, &judging(&ts), &req(Kind::Progress)).await.expect("chart");
    let Body::Progress(d) = &chart.body else { panic!("a progress body: {:?}", chart.body) };
    assert_eq!(d.from, today - Duration::days(100), "the span reaches back to the first result");
    let names: Vec<&str> = d.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["dead hang", "max push-ups"]);
    let pushups = &d.tests[1];
    assert_eq!(pushups.points.iter().map(|p| p.1).collect::<Vec<_>>(), [9.0, 12.0, 16.0]);
    let linked = pushups.homework.as_ref().expect("the push-up homework is linked");
    assert!(linked.label.starts_with(&format!("#{hw} 10 push-ups")), "{}", linked.label);
    let judged: Vec<f64> = linked.weeks.iter().filter_map(|w| w.1).collect();
    assert!(judged.len() >= 8, "weekly adherence over the homework's weeks: {:?}", linked.weeks);
    // About half the nights; a week cut short at either end may be all or nothing.
    let halfway = judged.iter().filter(|a| (0.3..=0.7).contains(*a)).count();
    assert!(halfway + 2 >= judged.len(), "about half the nights: {judged:?}");
    assert!(linked.weeks.iter().any(|w| w.1.is_none()), "no adherence before the homework began");
    assert!(d.tests[0].homework.is_none(), "the hang is for no homework");

    let svg = String::from_utf8(render(&chart, Format::Svg).expect("svg")).expect("utf-8");
    for text in ["max push-ups: 9 → 16 reps (+7)", "dead hang: 35 s on", "weekly adherence of", "adherence", "seconds"]
    {
        assert!(svg.contains(text), "{text:?} in the SVG");
    }
    assert_eq!(svg.matches("weekly adherence of #").count(), 1, "bars only where a homework is linked");
    let png = render(&chart, Format::Png).expect("png");
    assert!(png.starts_with(b"\x89PNG"));

    // --from narrows the span, and a result outside it is not drawn.
    let narrow = Request { from: Some(first), ..req(Kind::Progress) };
    let chart = build(&ts.store, &judging(&ts), &narrow).await.expect("chart");
    let Body::Progress(d) = &chart.body else { panic!("a progress body") };
    assert_eq!(d.tests[1].points.len(), 2);
}
