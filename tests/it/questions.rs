//! Questions as homework: assigned from a file or the dashboard, answered on the client's
//! private page (checked, nothing stored on a bad answer, a second answer set replacing
//! the first), read by the trainer on the client page and in the API, done when answered.

use crate::coachd;
use crate::dashboard::{browser, csrf_of, login, site, Site, PASSWORD_A, PASSWORD_B};
use chrono::{Duration, NaiveDate, Utc};
use coachd::app::{App, Every, QuestionsAssignment};
use predicates::str::contains;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

const SHEET: &str = "# the weekly assignment sheet\n\
    [1-10] On a scale of 1-10, how do you choose to make this week work for you?\n\
    \n\
    What will you do to make that happen?\n\
    [yes/no] Did you sleep 7 hours most nights?\n";

fn berlin_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive()
}

#[test]
fn assign_takes_a_questions_file_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let sheet = dir.path().join("sheet.txt");
    std::fs::write(&sheet, SHEET).expect("write");
    coachd(&data)
        .args(["assign", "alex", "--questions"])
        .arg(&sheet)
        .assert()
        .success()
        .stdout(contains("#1 alex: answer 3 questions per week"))
        .stdout(contains("1. [1-10] On a scale of 1-10, how do you choose"))
        .stdout(contains("2. What will you do to make that happen?"))
        .stdout(contains("3. [yes/no] Did you sleep"))
        .stdout(contains("judged from alex's answers on their private page"));
    coachd(&data)
        .args(["assign", "alex", "--every", "day", "--questions"])
        .arg(&sheet)
        .assert()
        .success()
        .stdout(contains("answer 3 questions every day"));
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "How was your week?\n[maybe] Perhaps?\nno\n").expect("write");
    let out = coachd(&data).args(["assign", "alex", "--questions"]).arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt: line 2: [maybe] is not a kind of question"), "{err}");
    assert!(err.contains("bad.txt: line 3: a question has 3 to 300 characters"), "{err}");
    assert!(!err.contains("line 1"), "{err}");
    let eleven: String = (1..=11).map(|i| format!("Question number {i}?\n")).collect();
    std::fs::write(&bad, eleven).expect("write");
    coachd(&data).args(["assign", "alex", "--questions"]).arg(&bad).assert().code(2).stderr(contains("line 11"));
    // A phrase and a file, neither, a weekly homework on weekdays, an unknown period, no file.
    coachd(&data).args(["assign", "alex", "10 push-ups", "--questions"]).arg(&sheet).assert().code(2);
    coachd(&data).args(["assign", "alex"]).assert().code(2);
    coachd(&data)
        .args(["assign", "alex", "10 push-ups", "--every", "day"])
        .assert()
        .code(2)
        .stderr(contains("--every goes with --questions"));
    coachd(&data)
        .args(["assign", "alex", "--every", "week", "--days", "mon", "--questions"])
        .arg(&sheet)
        .assert()
        .code(2)
        .stderr(contains("weekdays go with every day"));
    coachd(&data)
        .args(["assign", "alex", "--every", "fortnight", "--questions"])
        .arg(&sheet)
        .assert()
        .code(2)
        .stderr(contains("every day or every week"));
    coachd(&data)
        .args(["assign", "alex", "--questions"])
        .arg(dir.path().join("missing.txt"))
        .assert()
        .code(2)
        .stderr(contains("cannot read the questions file"));
    coachd(&data)
        .args(["assign", "alex", "--days", "mon,thu", "--questions"])
        .arg(&sheet)
        .assert()
        .success()
        .stdout(contains("answer 3 questions on Mon and Thu"));
    let out = coachd(&data).args(["homework", "list", "alex", "--json"]).output().expect("list");
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().expect("list").len(), 3, "nothing stored from the refused commands: {list}");
    let questions = &list[0]["rule"]["measure"]["questions"];
    assert_eq!(questions[0]["kind"], "scale");
    assert_eq!(questions[1]["kind"], "text");
    assert_eq!(questions[2]["kind"], "yes_no");
    assert_eq!(questions[1]["text"], "What will you do to make that happen?");
}

/// A form's fields for the answers of `hw`.
fn answers_form(csrf: &str, hw: i64, answers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form = vec![("csrf".to_string(), csrf.to_string()), ("homework_id".to_string(), hw.to_string())];
    form.extend(answers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    form
}

/// Assign the sheet to Anna's client through the dashboard; its homework id.
async fn assign_sheet(s: &Site, http: &reqwest::Client, csrf: &str) -> i64 {
    let r = http
        .post(format!("{}/clients/{}/questions", s.base, s.a_client))
        .form(&[("csrf", csrf), ("questions", SHEET), ("every", "week")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let hw = s.ts.store.list_homework(Some(s.a_client)).await.expect("hw");
    let last = hw.last().expect("homework");
    assert_eq!(&*last.homework.text, "answer 3 questions per week");
    last.homework.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answers_on_the_private_page_and_the_trainer_reads_the_answers() {
    let s = site().await;
    let anna = browser();
    let csrf = login(&s, &anna, "anna", PASSWORD_A).await;
    let a = s.a_client;
    // A bad sheet from the dashboard is explained by line, and nothing is assigned.
    let r = anna
        .post(format!("{}/clients/{a}/questions", s.base))
        .form(&[("csrf", csrf.as_str()), ("questions", "Fine question?\n[sometimes] Hm?"), ("every", "week")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("body").contains("line 2: [sometimes]"));
    assert_eq!(s.ts.store.list_homework(Some(a)).await.expect("hw").len(), 1);
    // Without the token: refused.
    let r = anna
        .post(format!("{}/clients/{a}/questions", s.base))
        .form(&[("csrf", "nope"), ("questions", SHEET)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let hw = assign_sheet(&s, &anna, &csrf).await;

    let token = s.ts.store.new_share_link(a).await.expect("link");
    let client = browser();
    let page = client.get(format!("{}/c/{token}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains(&format!("action=\"/c/{token}/answers\"")), "{page}");
    assert!(page.contains("On a scale of 1-10, how do you choose to make this week work for you?"));
    assert!(page.contains("name=\"q0\"") && page.contains("name=\"q1\"") && page.contains("name=\"q2\""));
    assert!(page.contains("type=\"radio\" name=\"q2\" value=\"yes\""), "yes/no as radio buttons");
    assert!(!page.contains("questions per week</option>"), "not offered for a plain check-in");
    let link_csrf = csrf_of(&page);
    let url = format!("{}/c/{token}/answers", s.base);
    let post = |form: Vec<(String, String)>| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).form(&form).send().await.expect("post") }
    };
    let monday = coachd::time::monday(berlin_today());
    let stored = || async { s.ts.store.answer_sets(a, monday - Duration::days(7), monday).await.expect("answers") };

    // Refused before anything is stored: a wrong token, a missing answer, out of range,
    // not yes or no, too long, another client's homework.
    let good = [("q0", "8"), ("q1", "Train before work on Tuesday and Thursday."), ("q2", "yes")];
    assert_eq!(post(answers_form("forged", hw, &good)).await.status(), StatusCode::FORBIDDEN);
    let r = post(answers_form(&link_csrf, hw, &good[..2])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.expect("body");
    assert!(body.contains("Nothing was saved") && body.contains("question 3"), "{body}");
    assert!(body.contains("has no answer"), "{body}");
    let long = "x".repeat(2001);
    for bad in [
        [("q0", "11"), good[1], good[2]],
        [("q0", "7.5"), good[1], good[2]],
        [good[0], good[1], ("q2", "maybe")],
        [good[0], ("q1", "   "), good[2]],
        [good[0], ("q1", long.as_str()), good[2]],
    ] {
        let r = post(answers_form(&link_csrf, hw, &bad)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(post(answers_form(&link_csrf, s.b_homework, &good)).await.status(), StatusCode::NOT_FOUND);
    assert!(stored().await.is_empty(), "nothing stored from refused forms");

    // Answered: the page says done and shows the answers.
    let r = post(answers_form(&link_csrf, hw, &good)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let next = r.headers()["location"].to_str().expect("ascii").to_string();
    let page = client.get(format!("{}{next}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("Your answers are saved: done for this week."), "{page}");
    assert!(page.contains("✔ Done this week: answered"), "{page}");
    assert!(page.contains("<dd>8/10</dd>") && page.contains("<dd>Train before work on Tuesday and Thursday.</dd>"));
    assert!(page.contains("<option value=\"8\" selected>"), "the form keeps the answers: {page}");

    // Sent again: the new answers replace the old ones, one check-in stays.
    let newer = [("q0", "6"), ("q1", "Walk at lunch instead."), ("q2", "no")];
    assert_eq!(post(answers_form(&link_csrf, hw, &newer)).await.status(), StatusCode::SEE_OTHER);
    let sets = stored().await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].answers.len(), 3);
    assert_eq!(sets[0].answers[0].number, Some(6.0));
    assert_eq!(sets[0].answers[1].text.as_deref(), Some("Walk at lunch instead."));
    let ev =
        s.ts.store.evidence(a, chrono_tz::Europe::Berlin, monday, monday + Duration::days(6)).await.expect("evidence");
    let checkins: Vec<_> = ev.checkins.iter().filter(|c| c.homework_id == Some(hw)).collect();
    assert_eq!(checkins.len(), 1, "{checkins:?}");
    assert_eq!(checkins[0].id, sets[0].checkin_id);

    // The trainer reads them on the client page and in the API.
    let page = anna.get(format!("{}/clients/{a}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("<h2>Answers</h2>"), "{page}");
    assert!(page.contains(&format!("#{hw} answer 3 questions per week · week of {monday}")), "{page}");
    assert!(page.contains("<dt>What will you do to make that happen?</dt><dd>Walk at lunch instead.</dd>"), "{page}");
    assert!(page.contains("<dd>6/10</dd>") && page.contains("<dd>no</dd>"));
    assert!(!page.contains("Train before work"), "the replaced answers are gone");
    let api: Value =
        anna.get(format!("{}/api/clients/{a}/answers", s.base)).send().await.expect("get").json().await.expect("json");
    let list = api.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{api}");
    let set = &list[0];
    assert_eq!(set["homework_id"], hw);
    assert_eq!(set["occurrence"], monday.to_string());
    assert_eq!(set["period"], "week");
    assert_eq!(set["answered_on"], berlin_today().to_string());
    assert_eq!(set["answers"][0]["answer"], 6);
    assert_eq!(set["answers"][0]["kind"], "scale");
    assert_eq!(set["answers"][1]["answer"], "Walk at lunch instead.");
    assert_eq!(set["answers"][2]["answer"], false);
    assert_eq!(set["answers"][2]["question"], "Did you sleep 7 hours most nights?");

    // Another trainer sees none of it; another client's link neither.
    let ben = browser();
    login(&s, &ben, "ben", PASSWORD_B).await;
    for path in [format!("/clients/{a}"), format!("/api/clients/{a}/answers"), format!("/api/clients/{a}/status")] {
        let r = ben.get(format!("{}{path}", s.base)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let bens = ben.get(format!("{}/clients/{}", s.base, s.b_client)).send().await.expect("get");
    assert!(!bens.text().await.expect("body").contains("Walk at lunch"));
    let other = s.ts.store.new_share_link(s.b_client).await.expect("link");
    let page = client.get(format!("{}/c/{other}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(!page.contains("Walk at lunch") && !page.contains("answers\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_questions_homework_is_done_when_answered_and_missed_when_not() {
    let s = site().await;
    let a = s.a_client;
    let app = App::new(s.ts.store.clone(), Arc::new(s.ts.config.clone())).expect("app");
    let alex = app.client("alex").await.expect("client");
    let today = berlin_today();
    let monday = coachd::time::monday(today);
    let questions = coachd::app::parse_questions(SHEET).expect("sheet");
    // Weekly since two weeks before this one; daily since three days ago.
    let weekly = QuestionsAssignment {
        questions: questions.clone(),
        every: Some(Every::Week),
        days: None,
        from: Some(monday - Duration::days(14)),
        until: None,
    };
    let weekly = app.assign_questions(&alex, &weekly).await.expect("weekly").homework.id;
    let daily = QuestionsAssignment {
        questions: questions[..1].to_vec(),
        every: Some(Every::Day),
        days: None,
        from: Some(today - Duration::days(3)),
        until: None,
    };
    let daily = app.assign_questions(&alex, &daily).await.expect("daily").homework.id;

    let anna = browser();
    login(&s, &anna, "anna", PASSWORD_A).await;
    let status = || async {
        let url = format!("{}/api/clients/{a}/status?from={}&to={today}", s.base, monday - Duration::days(14));
        let v: Value = anna.get(url).send().await.expect("get").json().await.expect("json");
        v
    };
    let verdict = |v: &Value, hw: i64, date: NaiveDate| -> Value {
        v["occurrences"]
            .as_array()
            .expect("occurrences")
            .iter()
            .find(|o| o["homework_id"] == hw && o["date"] == date.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("no occurrence of #{hw} on {date} in {v}"))
    };
    let before = status().await;
    for week in [monday - Duration::days(14), monday - Duration::days(7)] {
        assert_eq!(verdict(&before, weekly, week)["verdict"], "missed", "a past week without answers: {before}");
    }
    assert_eq!(verdict(&before, weekly, monday)["verdict"], "pending", "this week, not answered yet");
    // Two days back: yesterday stays pending for the judging grace (6 h) after midnight.
    assert_eq!(verdict(&before, daily, today - Duration::days(2))["verdict"], "missed", "{before}");
    assert!(verdict(&before, weekly, monday).get("answers").is_none());

    // The client answers both on the private page.
    let token = s.ts.store.new_share_link(a).await.expect("link");
    let client = browser();
    let page = client.get(format!("{}/c/{token}", s.base)).send().await.expect("get").text().await.expect("body");
    let csrf = csrf_of(&page);
    let url = format!("{}/c/{token}/answers", s.base);
    let week_answers = [("q0", "9"), ("q1", "Book the sessions on Sunday."), ("q2", "yes")];
    for (hw, answers) in [(weekly, &week_answers[..]), (daily, &week_answers[..1])] {
        let r = client.post(&url).form(&answers_form(&csrf, hw, answers)).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "#{hw}");
    }
    let after = status().await;
    let this_week = verdict(&after, weekly, monday);
    assert_eq!(this_week["verdict"], "done", "{this_week}");
    assert_eq!(this_week["period"], "week");
    assert_eq!(this_week["answered_on"], today.to_string());
    assert_eq!(this_week["answers"][0]["answer"], 9);
    assert_eq!(this_week["answers"][1]["answer"], "Book the sessions on Sunday.");
    assert_eq!(verdict(&after, daily, today)["verdict"], "done", "{after}");
    for week in [monday - Duration::days(14), monday - Duration::days(7)] {
        assert_eq!(verdict(&after, weekly, week)["verdict"], "missed", "answering now does not reach back");
    }
    assert_eq!(verdict(&after, daily, today - Duration::days(2))["verdict"], "missed");
}
