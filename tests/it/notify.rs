//! Reaching people: channels against stand-ins that answer like ntfy's and Gotify's
//! documented APIs and a real SMTP server (aiosmtpd from PyPI, with AUTH), the nudge
//! schedule on a simulated clock across time zones and DST days, the outbox never
//! sending twice, and the one-tap links in a nudge.

use crate::{batch, hour_run, pip_install, TestStore};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use coachd::app::{App, NotifyTarget};
use coachd::config::Config;
use coachd::engine::judge::Verdict;
use coachd::store::{Client, NewClient};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// One request a stand-in received.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    method: String,
    headers: BTreeMap<String, String>,
    body: String,
    bytes: Vec<u8>,
    status: u16,
}

/// A push server on loopback that records what it receives and answers as ntfy or
/// Gotify would; `fail` holds scripted answers for the next requests.
#[derive(Clone, Default)]
struct StandIn {
    got: Arc<Mutex<Vec<Got>>>,
    fail: Arc<Mutex<VecDeque<u16>>>,
}

impl StandIn {
    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    fn delivered(&self, path: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.path == path && g.status == 200).collect()
    }

    fn fail_next(&self, codes: &[u16]) {
        self.fail.lock().expect("lock").extend(codes);
    }

    fn record(&self, path: String, headers: &HeaderMap, body: String, status: u16) {
        self.record_as("POST", path, headers, body.into_bytes(), status);
    }

    fn record_as(&self, method: &str, path: String, headers: &HeaderMap, bytes: Vec<u8>, status: u16) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        self.got.lock().expect("lock").push(Got { path, method: method.into(), headers, body, bytes, status });
    }

    fn scripted(&self) -> Option<u16> {
        self.fail.lock().expect("lock").pop_front()
    }
}

const NTFY_TOKEN: &str = "tk_goodtoken";
const GOTIFY_TOKEN: &str = "AppTokenA1";

fn json(code: u16, v: serde_json::Value) -> Response {
    (StatusCode::from_u16(code).expect("status"), axum::Json(v)).into_response()
}

/// ntfy: `POST /TOPIC`; 401 without the right bearer token, 403 on the topic `closed`,
/// its JSON error bodies; a scripted 5xx when asked.
async fn ntfy(State(s): State<StandIn>, UrlPath(topic): UrlPath<String>, headers: HeaderMap, body: String) -> Response {
    let path = format!("/{topic}");
    if let Some(code) = s.scripted() {
        s.record(path, &headers, body, code);
        return json(code, serde_json::json!({"code": code * 100, "http": code, "error": "internal server error"}));
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {NTFY_TOKEN}") {
        s.record(path, &headers, body, 401);
        return json(
            401,
            serde_json::json!({"code": 40101, "http": 401, "error": "unauthorized", "link": "https://ntfy.sh/docs/publish/#authentication"}),
        );
    }
    if topic == "closed" {
        s.record(path, &headers, body, 403);
        return json(403, serde_json::json!({"code": 40301, "http": 403, "error": "forbidden"}));
    }
    s.record(path, &headers, body.clone(), 200);
    json(
        200,
        serde_json::json!({"id": "hwQ2YpKdmg", "time": 1_764_000_000, "event": "message", "topic": topic, "message": body}),
    )
}

/// ntfy's attachment upload: `PUT /TOPIC` with the file as the body, `Filename` and the
/// text in `Message`; the same token check.
async fn ntfy_put(
    State(s): State<StandIn>,
    UrlPath(topic): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/{topic}");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {NTFY_TOKEN}") {
        s.record_as("PUT", path, &headers, body.to_vec(), 401);
        return json(401, serde_json::json!({"code": 40101, "http": 401, "error": "unauthorized"}));
    }
    s.record_as("PUT", path, &headers, body.to_vec(), 200);
    let name = headers.get("filename").and_then(|v| v.to_str().ok()).unwrap_or("attachment").to_string();
    json(
        200,
        serde_json::json!({"id": "aTtAcH3d", "event": "message", "topic": topic,
                           "attachment": {"name": name, "type": "image/png", "size": body.len()}}),
    )
}

/// Gotify: `POST /message` with the application token in `X-Gotify-Key` or `?token=`.
async fn gotify(
    State(s): State<StandIn>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(code) = s.scripted() {
        s.record("/message".into(), &headers, body, code);
        return json(
            code,
            serde_json::json!({"error": "Internal Server Error", "errorCode": code, "errorDescription": "boom"}),
        );
    }
    let key = headers.get("x-gotify-key").and_then(|v| v.to_str().ok()).map(str::to_string).or(q.get("token").cloned());
    if key.as_deref() != Some(GOTIFY_TOKEN) {
        s.record("/message".into(), &headers, body, 401);
        return json(
            401,
            serde_json::json!({"error": "Unauthorized", "errorCode": 401,
                "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
        );
    }
    let Ok(m) = serde_json::from_str::<serde_json::Value>(&body) else {
        s.record("/message".into(), &headers, body, 400);
        return json(
            400,
            serde_json::json!({"error": "Bad Request", "errorCode": 400, "errorDescription": "not JSON"}),
        );
    };
    s.record("/message".into(), &headers, body, 200);
    json(
        200,
        serde_json::json!({"id": 1, "appid": 1, "message": m["message"], "title": m["title"],
        "priority": m["priority"], "date": "2026-11-20T20:00:00Z"}),
    )
}

/// Both stand-ins on one loopback port; its `host:port`.
async fn stand_in() -> (StandIn, String) {
    let s = StandIn::default();
    let app = axum::Router::new()
        .route("/message", post(gotify))
        .route("/{topic}", post(ntfy).put(ntfy_put))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (s, addr)
}

/// A store, an app on it (links made for `http://coachd.test`), one client with a
/// homework from `from`. The client's weekly message is off unless `config` turns it
/// on, so the nudge tests see nudges alone (several of their days are Sundays).
struct Case {
    ts: TestStore,
    app: App,
    client: Client,
    hw: i64,
}

async fn case(tz: &str, phrase: &str, from: NaiveDate, config: impl FnOnce(&mut Config)) -> Case {
    let ts = TestStore::new().await;
    let mut c = ts.config.clone();
    c.web.public_url = "http://coachd.test".into();
    c.notify.weekly_at = String::new();
    config(&mut c);
    let app = App::new(ts.store.clone(), Arc::new(c)).expect("app");
    let client =
        ts.store.add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client")).await.expect("add");
    let rule = coachd::engine::phrase::parse(phrase).expect("phrase");
    let hw = ts.store.add_homework(client.id, &rule, from, None).await.expect("homework").homework.id;
    Case { ts, app, client, hw }
}

impl Case {
    fn target(&self) -> NotifyTarget {
        NotifyTarget::Client(self.client.clone())
    }

    async fn channel(&self, url: &str) {
        self.app.set_channel(&self.target(), url).await.expect("set channel");
    }

    async fn outbox(&self) -> Vec<coachd::store::notify::OutboxRow> {
        self.app.outbox(&self.target(), 100).await.expect("outbox")
    }

    async fn round(&self, now: DateTime<Utc>) -> coachd::app::Round {
        self.app.notify_round(now).await.expect("round")
    }

    /// Rounds every `step` over `[from, to)`.
    async fn walk(&self, from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) {
        let mut t = from;
        while t < to {
            self.round(t).await;
            t += step;
        }
    }
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn local(tz: &str, d: NaiveDate, hm: &str) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = tz.parse().expect("tz");
    coachd::time::local(tz, d, NaiveTime::parse_from_str(hm, "%H:%M").expect("time"))
}

#[tokio::test]
async fn a_nudge_goes_out_once_at_the_right_local_time_on_both_sides_of_utc_and_on_both_dst_days() {
    let (s, addr) = stand_in().await;
    // (zone, phrase, occurrence date, local time it is due, first day of the walk)
    let cases = [
        ("America/Los_Angeles", "10 push-ups", "2026-03-08", "20:00"), // 23-hour day
        ("America/Los_Angeles", "10 push-ups", "2026-11-01", "20:00"), // 25-hour day
        ("Pacific/Auckland", "10 push-ups", "2026-04-05", "20:00"),
        ("Pacific/Auckland", "10 push-ups", "2026-09-27", "20:00"),
        ("Europe/Berlin", "10 push-ups", "2026-03-29", "20:00"),
        ("Europe/Berlin", "10 push-ups", "2026-10-25", "20:00"),
        // The nightly window 19:00-03:00 crosses the change; 90 minutes before its end
        // (01:30) is in quiet hours, so 22:00.
        ("Europe/Berlin", "10 push-ups every night", "2026-03-28", "22:00"),
        ("Europe/Berlin", "10 push-ups every night", "2026-10-24", "22:00"),
    ];
    for (n, (tz, phrase, date, due)) in cases.into_iter().enumerate() {
        let d = day(date);
        let c = case(tz, phrase, d - Duration::days(3), |_| {}).await;
        let topic = format!("case{n}");
        c.channel(&format!("ntfy+http://{addr}/{topic}?token={NTFY_TOKEN}")).await;
        // From the local midnight the day starts with, every 10 minutes, for 30 hours.
        let start = local(tz, d, "00:00");
        c.walk(start, start + Duration::hours(30), Duration::minutes(10)).await;
        let got = s.delivered(&format!("/{topic}"));
        let nudges: Vec<_> = c.outbox().await.into_iter().filter(|o| o.occurrence == Some(d)).collect();
        assert_eq!(got.len(), 1, "{tz} {date}: one message, got {got:#?}");
        assert_eq!(nudges.len(), 1, "{tz} {date}: one outbox row for the occurrence");
        let o = &nudges[0];
        assert_eq!(o.state, "sent", "{tz} {date}");
        assert_eq!(o.sent, Some(local(tz, d, due)), "{tz} {date}: sent at {due} local");
        let closes = if phrase.contains("night") {
            local(tz, d + Duration::days(1), "03:00")
        } else {
            local(tz, d + Duration::days(1), "00:00")
        };
        assert_eq!(o.link_expires, Some(closes + Duration::hours(6)), "{tz} {date}: links until the grace ends");
        let title = &got[0].headers["title"];
        let when = if phrase.contains("night") { "tonight" } else { "today" };
        assert_eq!(title, &format!("10 push-ups {when}?"), "{tz} {date}");
        assert_eq!(got[0].headers["authorization"], format!("Bearer {NTFY_TOKEN}"));
        let actions = &got[0].headers["actions"];
        assert!(actions.starts_with("http, Done, http://coachd.test/n/"), "{actions}");
        assert!(
            actions.contains("method=POST") && actions.contains("view, I did N, http://coachd.test/n/"),
            "{actions}"
        );
        assert!(got[0].headers["click"].starts_with("http://coachd.test/n/"), "{:?}", got[0].headers);
    }
}

#[tokio::test]
async fn a_client_s_own_reminder_times_move_the_nudge_and_bad_times_change_nothing() {
    let (s, addr) = stand_in().await;
    for (n, (phrase, at, lead, due)) in
        [("10 push-ups", "18:45", "90", "18:45"), ("10 push-ups every night", "20:00", "360", "21:00")]
            .into_iter()
            .enumerate()
    {
        let d = day("2026-10-25"); // Berlin's 25-hour day
        let c = case("Europe/Berlin", phrase, d - Duration::days(3), |_| {}).await;
        let topic = format!("own{n}");
        c.channel(&format!("ntfy+http://{addr}/{topic}?token={NTFY_TOKEN}")).await;
        let set = c.app.set_nudge_times(&c.client, Some(at), Some(lead), false).await.expect("times");
        assert_eq!(set.daily_at.format("%H:%M").to_string(), at);
        // Refused, and what was set stays.
        for (bad_at, bad_lead) in [(Some("25:00"), None), (Some("7pm"), None), (None, Some("721")), (None, Some("-5"))]
        {
            let e = c.app.set_nudge_times(&c.client, bad_at, bad_lead, false).await.expect_err("refused");
            assert!(e.to_string().contains("HH:MM") || e.to_string().contains("minutes"), "{e}");
        }
        let kept = c.app.nudge_settings_for(&c.client).await.expect("settings");
        assert_eq!(
            (kept.daily_at.format("%H:%M").to_string(), kept.lead.num_minutes().to_string()),
            (at.into(), lead.into())
        );
        let week = c.app.nudge_schedule(&c.client, coachd::time::monday(d)).await.expect("schedule");
        let planned = week.iter().find(|p| p.date == d).and_then(|p| p.due).expect("planned");
        assert_eq!(planned, local("Europe/Berlin", d, due), "{phrase}: the schedule says {due}");
        let start = local("Europe/Berlin", d, "00:00");
        c.walk(start, start + Duration::hours(30), Duration::minutes(5)).await;
        let sent: Vec<_> = c.outbox().await.into_iter().filter(|o| o.occurrence == Some(d)).collect();
        assert_eq!(sent.len(), 1, "{phrase}");
        assert_eq!(
            sent[0].sent,
            Some(local("Europe/Berlin", d, due)),
            "{phrase}: sent at {due}, the client's own time"
        );
        assert_eq!(s.delivered(&format!("/{topic}")).len(), 1);
        // Back to the defaults: 20:00 for a whole-day homework, 22:00 for a nightly one.
        let back = c.app.set_nudge_times(&c.client, None, None, true).await.expect("reset");
        assert_eq!((back.daily_at.format("%H:%M").to_string(), back.lead.num_minutes()), ("20:00".into(), 90));
    }
}

#[tokio::test]
async fn no_nudge_when_the_strap_already_showed_it_done_or_the_day_is_excused_or_checked_in() {
    let (s, addr) = stand_in().await;
    let tz = "Europe/Berlin";
    let d = day("2026-11-20");
    // The strap saw an hour's run at 17:00 local: 15 minutes of cardio are done.
    let c = case(tz, "15 minutes of cardio", d - Duration::days(3), |_| {}).await;
    c.channel(&format!("ntfy+http://{addr}/strap?token={NTFY_TOKEN}")).await;
    c.ts.store
        .ingest(&batch("ble", vec![hour_run(c.client.id, "s1", local(tz, d, "17:00"))], None))
        .await
        .expect("ingest");
    // Excused, and checked in (a part only: the client said something, no reminder).
    let rule = coachd::engine::phrase::parse("10 push-ups").expect("phrase");
    let excused =
        c.ts.store.add_homework(c.client.id, &rule, d - Duration::days(3), None).await.expect("hw").homework.id;
    c.ts.store.excuse(c.client.id, excused, d, Some("flu")).await.expect("excuse");
    let rule = coachd::engine::phrase::parse("8000 steps").expect("phrase");
    let checked =
        c.ts.store.add_homework(c.client.id, &rule, d - Duration::days(3), None).await.expect("hw").homework.id;
    c.ts.store.add_checkin(c.client.id, checked, d, Some(3000.0), None, "cli").await.expect("checkin");
    let start = local(tz, d, "12:00");
    c.walk(start, start + Duration::hours(14), Duration::minutes(15)).await;
    assert!(s.got().is_empty(), "nothing sent: {:#?}", s.got());
    let rows = c.outbox().await;
    let why = |hw: i64| {
        rows.iter()
            .find(|o| o.homework_id == Some(hw) && o.occurrence == Some(d))
            .map(|o| (o.state.clone(), o.reason.clone()))
    };
    assert_eq!(why(c.hw), Some(("suppressed".into(), Some("already done".into()))));
    assert_eq!(why(excused), Some(("suppressed".into(), Some("excused".into()))));
    assert_eq!(why(checked), Some(("suppressed".into(), Some("already checked in".into()))));
    assert_eq!(rows.iter().filter(|o| o.occurrence == Some(d)).count(), 3, "one row per occurrence: {rows:#?}");
}

#[tokio::test]
async fn after_a_restart_a_nudge_goes_out_late_only_while_the_window_is_open_and_never_twice() {
    let (s, addr) = stand_in().await;
    let tz = "Asia/Tokyo";
    let d = day("2026-11-20");
    let c = case(tz, "10 push-ups", d - Duration::days(3), |cfg| cfg.notify.daily_at = "18:00".into()).await;
    c.channel(&format!("ntfy+http://{addr}/late?token={NTFY_TOKEN}")).await;
    // Down from 17:00 to 21:10 local: the 18:00 reminder goes out at 21:10 (still open, not quiet).
    c.round(local(tz, d, "17:00")).await;
    assert!(s.got().is_empty());
    let restarted = App::new(c.ts.store.clone(), c.app.config.clone()).expect("app");
    restarted.interrupt_sending(local(tz, d, "21:10")).await.expect("interrupt");
    let r = restarted.notify_round(local(tz, d, "21:10")).await.expect("round");
    assert_eq!((r.queued, r.sent), (1, 1));
    // Another restart and more rounds: never a second one.
    let again = App::new(c.ts.store.clone(), c.app.config.clone()).expect("app");
    for m in [0, 5, 60, 120] {
        again.notify_round(local(tz, d, "21:10") + Duration::minutes(m)).await.expect("round");
    }
    assert_eq!(s.delivered("/late").len(), 1, "{:#?}", s.got());

    // The next day the daemon is down all evening and back after midnight: too late.
    let next = d + Duration::days(1);
    c.round(local(tz, next + Duration::days(1), "00:30")).await;
    let row = c.outbox().await.into_iter().find(|o| o.occurrence == Some(next)).expect("a row for the next day");
    assert_eq!(row.state, "suppressed");
    assert!(row.reason.as_deref().unwrap_or_default().contains("window closed"), "{row:?}");
    assert_eq!(s.delivered("/late").len(), 1, "nothing sent for a closed window");

    // Down between claiming a row and settling it: the send may have gone out, so it is
    // not repeated after the restart.
    let third = d + Duration::days(2);
    let c2 = case(tz, "10 push-ups", third - Duration::days(1), |cfg| cfg.notify.daily_at = "18:00".into()).await;
    c2.channel(&format!("ntfy+http://{addr}/cut?token={NTFY_TOKEN}")).await;
    let new = coachd::store::notify::NewOutbox {
        to: coachd::store::notify::Recipient::Client(c2.client.id),
        kind: "nudge",
        occurrence: Some((c2.hw, third)),
        channel_kind: Some("ntfy".into()),
        title: "10 push-ups today?".into(),
        body: "Tap when done.".into(),
        state: "pending",
        reason: None,
        due: local(tz, third, "18:00"),
        expires: local(tz, third + Duration::days(1), "00:00"),
        link_expires: None,
    };
    let at = local(tz, third, "18:00");
    let id = c2.ts.store.record_outbox(&new, at).await.expect("record").expect("new row");
    assert!(c2.ts.store.claim_outbox(id, at).await.expect("claim"));
    let back = App::new(c2.ts.store.clone(), c2.app.config.clone()).expect("app");
    assert_eq!(back.interrupt_sending(at + Duration::minutes(1)).await.expect("interrupt"), 1);
    back.notify_round(at + Duration::minutes(1)).await.expect("round");
    back.notify_round(at + Duration::minutes(30)).await.expect("round");
    assert!(s.delivered("/cut").is_empty(), "an interrupted send is not repeated: {:#?}", s.got());
    let row = c2.ts.store.outbox_row(id).await.expect("row").expect("row");
    assert_eq!(row.state, "interrupted");
}

#[tokio::test]
async fn a_failing_channel_is_retried_with_backoff_shown_failing_and_recovers() {
    let (s, addr) = stand_in().await;
    let tz = "America/Sao_Paulo";
    let d = day("2026-11-20");
    let c = case(tz, "10 push-ups", d - Duration::days(3), |_| {}).await;
    c.channel(&format!("ntfy+http://{addr}/flaky?token={NTFY_TOKEN}")).await;
    s.fail_next(&[502, 503]);
    let due = local(tz, d, "20:00");
    let r = c.round(due).await;
    assert_eq!((r.sent, r.failed), (0, 1));
    let status = c.app.channel_status(&c.target()).await.expect("status").expect("channel");
    assert_eq!(status.state, "failing");
    assert!(status.last_error.as_deref().unwrap_or_default().contains("502"), "{status:?}");
    let row = c.outbox().await.remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));
    // Within the first minute nothing is tried; after it, again (and fails); then two minutes.
    assert_eq!(c.round(due + Duration::seconds(30)).await.failed, 0);
    assert_eq!(c.round(due + Duration::seconds(61)).await.failed, 1);
    assert_eq!(c.round(due + Duration::seconds(61 + 100)).await.sent, 0, "the second wait is two minutes");
    assert_eq!(c.round(due + Duration::seconds(61 + 121)).await.sent, 1);
    assert_eq!(s.got().len(), 3);
    let status = c.app.channel_status(&c.target()).await.expect("status").expect("channel");
    assert_eq!((status.state.as_str(), status.last_error), ("ok", None));
    let row = c.outbox().await.remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 3));

    // A wrong token: ntfy's 401 and its words on the channel; retried until the window closes, then failed.
    let c = case(tz, "10 push-ups", d - Duration::days(3), |_| {}).await;
    c.channel(&format!("ntfy+http://{addr}/flaky?token=tk_wrong")).await;
    c.round(due).await;
    let status = c.app.channel_status(&c.target()).await.expect("status").expect("channel");
    let e = status.last_error.unwrap_or_default();
    assert!(e.contains("401") && e.contains("unauthorized") && e.contains("token or password was refused"), "{e}");
    c.walk(due, local(tz, d + Duration::days(1), "00:10"), Duration::minutes(10)).await;
    let row = c.outbox().await.remove(0);
    assert_eq!(row.state, "failed", "{row:?}");
    // Rounds every 10 minutes for 4 hours, waits of 1, 2, 4, 8, 16, then 30 minutes: 11 tries, not 25.
    assert_eq!(row.attempts, 11, "backoff, not a retry every round: {row:?}");
    // 403 on a topic the token may not write.
    let c = case(tz, "10 push-ups", d - Duration::days(3), |_| {}).await;
    c.channel(&format!("ntfy+http://{addr}/closed?token={NTFY_TOKEN}")).await;
    let e = c.app.test_channel(&c.target(), due).await.expect("test").expect_err("forbidden");
    assert!(e.contains("403") && e.contains("forbidden"), "{e}");
    // Nothing listens: a connection failure, in words.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    c.channel(&format!("ntfy+http://{dead}/x?token=t")).await;
    let e = c.app.test_channel(&c.target(), due).await.expect("test").expect_err("nothing listens");
    assert!(e.contains("could not connect"), "{e}");
}

#[tokio::test]
async fn gotify_gets_json_with_the_app_token_and_a_wrong_token_is_shown_failing() {
    let (s, addr) = stand_in().await;
    let tz = "Europe/London";
    let d = day("2026-11-20");
    let c =
        case(tz, "10 push-ups every night", d - Duration::days(3), |cfg| cfg.notify.quiet_hours = String::new()).await;
    c.channel(&format!("gotify+http://{addr}?token={GOTIFY_TOKEN}&priority=7")).await;
    c.round(local(tz, d + Duration::days(1), "01:30")).await;
    let got = s.delivered("/message");
    assert_eq!(got.len(), 1, "{:#?}", s.got());
    assert_eq!(got[0].headers["x-gotify-key"], GOTIFY_TOKEN);
    let m: serde_json::Value = serde_json::from_str(&got[0].body).expect("json");
    assert_eq!(m["title"], "10 push-ups tonight?");
    assert_eq!(m["priority"], 7);
    let text = m["message"].as_str().expect("message");
    assert!(
        text.contains("Tap when done: http://coachd.test/n/")
            && text.contains("No more reminders: http://coachd.test/n/"),
        "{text}"
    );
    assert!(m["extras"]["client::notification"]["click"]["url"]
        .as_str()
        .unwrap_or_default()
        .starts_with("http://coachd.test/n/"));

    c.channel(&format!("gotify+http://{addr}?token=nope")).await;
    let e = c.app.test_channel(&c.target(), Utc::now()).await.expect("test").expect_err("refused");
    assert!(e.contains("401") && e.contains("valid access token"), "{e}");
    let listed = c.app.channel_statuses().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "failing");
    assert!(!listed[0].shown.contains("nope"), "no token in the list: {listed:?}");
}

/// aiosmtpd on loopback with AUTH (login `coach`, password `right-password`), writing
/// each message it accepts to a folder; stopped when dropped.
struct Smtp {
    child: Child,
    port: u16,
    mail: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, "plain", None)
    }

    /// `mode`: plain, starttls (required before AUTH) or tls (implicit), with the
    /// certificate and key files for the TLS ones.
    fn start_with(dir: &Path, mode: &str, cert: Option<(&Path, &Path)>) -> Self {
        let pythonpath = pip_install("aiosmtpd-python", "aiosmtpd==1.4.6", "aiosmtpd");
        let mail = dir.join(format!("mail-{mode}"));
        std::fs::create_dir_all(&mail).expect("mail dir");
        let script = dir.join(format!("smtpd-{mode}.py"));
        std::fs::write(
            &script,
            r#"import os, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Keep:
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(out, "%04d.eml" % len(os.listdir(out)))
        with open(path + ".part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 OK"

def check(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"coach" and auth_data.password == b"right-password"
    return AuthResult(success=ok, handled=False)

tls = {"auth_require_tls": False}
if mode != "plain":
    import ssl
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    if mode == "starttls":
        tls = {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
    else:
        # TLS from the first byte; aiosmtpd only counts STARTTLS as TLS for AUTH.
        tls = {"ssl_context": ctx, "auth_require_tls": False}
c = Controller(Keep(), hostname="127.0.0.1", port=port, authenticator=check, auth_required=True, **tls)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#,
        )
        .expect("script");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(port.to_string()).arg(&mail).arg(mode);
        if let Some((cert, key)) = cert {
            cmd.arg(cert).arg(key);
        }
        let child = cmd
            .env("PYTHONPATH", pythonpath)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not listen on {port} in 20 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port, mail }
    }

    fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.mail)
            .expect("mail dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).expect("read mail")).collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_nudge_arrives_by_e_mail_through_a_real_smtp_server_and_a_wrong_password_is_shown_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(dir.path());
    let tz = "America/New_York";
    let d = day("2026-11-20");
    let c = case(tz, "10 push-ups", d - Duration::days(3), |_| {}).await;
    let url = |pass: &str| {
        format!(
            "smtp://coach:{pass}@127.0.0.1:{}?to=alex@example.org&from=Coach%20Sam%20<sam@example.org>&tls=none",
            smtp.port
        )
    };
    c.channel(&url("right-password")).await;
    let r = c.round(local(tz, d, "20:00")).await;
    assert_eq!((r.sent, r.failed), (1, 0));
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert!(m.contains("Subject: 10 push-ups today?"), "{m}");
    assert!(m.contains("To: alex@example.org") && m.contains("sam@example.org"), "{m}");
    assert!(m.contains("http://coachd.test/n/"), "the links are in the text: {m}");
    let channel = c.app.channel_status(&c.target()).await.expect("status").expect("channel");
    assert_eq!(channel.state, "ok");
    assert!(!channel.shown.contains("right-password"), "{channel:?}");

    c.channel(&url("wrong-password")).await;
    let e = c.app.test_channel(&c.target(), Utc::now()).await.expect("test").expect_err("auth fails");
    assert!(e.contains("535") && e.contains("login was refused"), "{e}");
    let channel = c.app.channel_status(&c.target()).await.expect("status").expect("channel");
    assert_eq!(channel.state, "failing");
    assert!(channel.last_error.unwrap_or_default().contains("535"));
    assert_eq!(smtp.messages().len(), 1, "nothing more arrived");
}

/// What the web server answers for a link: status and body.
async fn follow(http: &reqwest::Client, method: &str, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let req = if method == "POST" { http.post(url).form(form) } else { http.get(url) };
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// The links of a delivered ntfy message, by label, moved onto the test's server.
fn links(got: &Got, base: &str) -> BTreeMap<String, String> {
    got.headers["actions"]
        .split("; ")
        .map(|a| {
            let parts: Vec<&str> = a.split(", ").collect();
            let url = parts[2].replace("http://coachd.test", base);
            (parts[1].to_string(), url)
        })
        .collect()
}

#[tokio::test]
async fn a_one_tap_link_checks_in_once_and_is_refused_when_used_expired_or_replayed() {
    let (s, addr) = stand_in().await;
    let tz = "Europe/Berlin";
    // Due at local midnight, so a round now sends today's reminder with live links.
    let now = Utc::now();
    let today = coachd::time::today(tz.parse().expect("tz"), now);
    let c = case(tz, "10 push-ups", today - Duration::days(20), |cfg| {
        cfg.notify.daily_at = "00:00".into();
        cfg.notify.quiet_hours = String::new();
    })
    .await;
    let base = c.ts.serve().await;
    let http = reqwest::Client::new();
    c.channel(&format!("ntfy+http://{addr}/tap?token={NTFY_TOKEN}")).await;
    let rule = coachd::engine::phrase::parse("20 squats").expect("phrase");
    let squats =
        c.ts.store.add_homework(c.client.id, &rule, today - Duration::days(20), None).await.expect("hw").homework.id;
    // Nudges ten days ago (their links long expired), and today's two.
    c.round(local(tz, today - Duration::days(10), "12:00")).await;
    assert_eq!(s.delivered("/tap").len(), 2);
    c.round(now).await;
    let got = s.delivered("/tap");
    assert_eq!(got.len(), 4, "{got:#?}");
    let of =
        |hw: &str| got[2..].iter().find(|g| g.headers["title"].contains(hw)).map(|g| links(g, &base)).expect("message");
    let old = links(&got[0], &base);
    let pushups = of("push-ups");
    let squat_links = of("squats");
    let status = |at: DateTime<Utc>| {
        let app = c.app.clone();
        let client = c.client.clone();
        async move {
            let r = app.status(&[client], today, today, at).await.expect("status");
            r.occurrences
                .into_iter()
                .map(|o| (o.homework_id, (o.verdict, o.self_reported, o.evidence.len())))
                .collect::<BTreeMap<_, _>>()
        }
    };
    let before = status(Utc::now()).await;
    assert_eq!(before[&c.hw].0, Verdict::Pending);

    // A GET only asks (link previews and mail scanners fetch GETs); it records nothing.
    let (code, body) = follow(&http, "GET", &pushups["Done"], &[]).await;
    assert_eq!(code, 200);
    assert!(body.contains("Yes, done"), "{body}");
    assert_eq!(status(Utc::now()).await, before);

    // First use: a self-reported check-in of the target; the verdict turns done.
    let (code, body) = follow(&http, "POST", &pushups["Done"], &[]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Recorded"), "{body}");
    let after = status(Utc::now()).await;
    assert_eq!(after[&c.hw], (Verdict::Done, true, 1), "done and self-reported");

    // Second use, and the "I did N" link of the same nudge: refused, nothing changes.
    for (method, url) in [("POST", &pushups["Done"]), ("GET", &pushups["Done"]), ("POST", &pushups["I did N"])] {
        let (code, body) = follow(&http, method, url, &[("value", "3")]).await;
        assert_eq!(code, 410, "{method} {url}: {body}");
        assert!(body.contains("used already") && body.contains("Nothing changed"), "{body}");
    }
    assert_eq!(status(Utc::now()).await, after);

    // Expired: the link of ten days ago.
    let (code, body) = follow(&http, "POST", &old["Done"], &[]).await;
    assert_eq!(code, 410);
    assert!(body.contains("expired"), "{body}");

    // Replayed for another occurrence: the push-ups link's signature on the squats' row.
    let swap = |from: &str, onto: &str| {
        let (f, o): (Vec<&str>, Vec<&str>) = (from.split('/').collect(), onto.split('/').collect());
        let n = f.len();
        format!("{}/{}/{}/{}", o[..n - 3].join("/"), f[n - 3], f[n - 2], f[n - 1])
    };
    let replayed = swap(&pushups["I did N"], &squat_links["I did N"]);
    let (code, body) = follow(&http, "POST", &replayed, &[("value", "12")]).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("not valid"), "{body}");
    // A forged signature, and a link cut short.
    let done = &squat_links["Done"];
    let flipped = if done.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &done[..done.len() - 1]);
    assert_eq!(follow(&http, "POST", &forged, &[]).await.0, 404);
    assert_eq!(follow(&http, "POST", &format!("{base}/n/1/done/99"), &[]).await.0, 404);
    assert_eq!(status(Utc::now()).await, after, "nothing changed");

    // Replayed for another client: a second client's nudge row.
    let bo = c.ts.store.add_client(&NewClient::parse("bo", tz, Some(180), None).expect("client")).await.expect("add");
    let rule = coachd::engine::phrase::parse("10 push-ups").expect("phrase");
    c.ts.store.add_homework(bo.id, &rule, today - Duration::days(20), None).await.expect("hw");
    c.app
        .set_channel(&NotifyTarget::Client(bo.clone()), &format!("ntfy+http://{addr}/bo?token={NTFY_TOKEN}"))
        .await
        .expect("set");
    c.round(Utc::now()).await;
    let bo_links = links(&s.delivered("/bo")[0], &base);
    let (code, _) = follow(&http, "POST", &swap(&squat_links["Done"], &bo_links["Done"]), &[]).await;
    assert_eq!(code, 404);
    let bo_status = c.app.status(std::slice::from_ref(&bo), today, today, Utc::now()).await.expect("status");
    assert!(bo_status.occurrences.iter().all(|o| o.evidence.is_empty()), "nothing recorded for bo");

    // "I did N" with a number: a partial self-report.
    let (code, body) = follow(&http, "POST", &squat_links["I did N"], &[("value", "12")]).await;
    assert_eq!(code, 200, "{body}");
    let st = status(Utc::now()).await;
    assert!(st[&squats].1, "self-reported");
    assert_eq!(st[&squats].2, 1);

    // The opt-out link: no more reminders for alex; the outbox says why.
    let (code, body) = follow(&http, "POST", &pushups["Stop reminders"], &[]).await;
    assert_eq!(code, 200, "{body}");
    let rule = coachd::engine::phrase::parse("5 burpees").expect("phrase");
    c.ts.store.add_homework(c.client.id, &rule, today, None).await.expect("hw");
    c.round(Utc::now()).await;
    assert_eq!(s.delivered("/tap").len(), 4, "no new message after opting out");
    let row = c.outbox().await.into_iter().find(|o| o.title.contains("burpees")).expect("a row for the new homework");
    assert_eq!(row.state, "suppressed");
    assert!(row.reason.unwrap_or_default().contains("turned reminders off"));
}

#[tokio::test]
async fn notify_commands_set_list_and_refuse_a_bad_url_without_printing_secrets() {
    use predicates::prelude::*;
    use predicates::str::contains;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    crate::coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    crate::coachd(&data)
        .args(["notify", "set", "alex", "ntfy://ntfy.example.org/alex-9x?token=tk_secret123"])
        .assert()
        .success()
        .stdout(contains("alex: ntfy https://ntfy.example.org/alex-9x with a token"));
    crate::coachd(&data)
        .args(["notify", "set", "alex", "smtp://u:hunter2@mail.example.org?to=a@b.org&from=c@d.org&tls=none"])
        .assert()
        .code(2)
        .stderr(contains("only allowed to a server on this machine"))
        .stderr(contains("hunter2").not());
    crate::coachd(&data)
        .args(["notify", "list"])
        .assert()
        .success()
        .stdout(contains("alex").and(contains("untested")).and(contains("tk_secret123").not()));
    crate::coachd(&data).args(["notify", "test", "--trainer", "nobody"]).assert().code(2).stderr(contains("nobody"));
    for file in ["coachd.db", "coachd.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains("tk_secret123"), "the token is sealed at rest ({file})");
    }
}

#[tokio::test]
async fn a_trainer_sets_and_tests_their_own_digest_channel_from_the_roster() {
    use crate::dashboard::{browser, login, site, PASSWORD_A, PASSWORD_B};
    let (s, addr) = stand_in().await;
    let site = site().await;
    let anna = browser();
    let csrf = login(&site, &anna, "anna", PASSWORD_A).await;
    let post = |http: &reqwest::Client, csrf: &str, url: &str, action: &str| {
        http.post(format!("{}/channel", site.base)).form(&[("csrf", csrf), ("url", url), ("action", action)]).send()
    };
    let url = format!("ntfy+http://{addr}/anna-digest?token={NTFY_TOKEN}");
    let r = post(&anna, "", &url, "set").await.expect("no csrf");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a form without the session's token");
    let r = post(&anna, &csrf, &url, "set").await.expect("set");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap_or_default().starts_with("/roster?msg=Your+digests+go+to"));
    let r = post(&anna, &csrf, "", "test").await.expect("test");
    assert!(r.headers()["location"].to_str().unwrap_or_default().contains("Sent+a+test"), "{:?}", r.headers());
    assert_eq!(s.delivered("/anna-digest").len(), 1, "the test message");
    let roster = anna.get(format!("{}/roster", site.base)).send().await.expect("roster").text().await.expect("body");
    assert!(roster.contains("Channel: ntfy") && !roster.contains(NTFY_TOKEN), "shown without its token");
    let r = post(&anna, &csrf, "ftp://x", "set").await.expect("bad");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // It is anna's own: ben's roster has none, and ben's form sets ben's.
    let ben = browser();
    let ben_csrf = login(&site, &ben, "ben", PASSWORD_B).await;
    let roster = ben.get(format!("{}/roster", site.base)).send().await.expect("roster").text().await.expect("body");
    assert!(roster.contains("No channel: you get no weekly digest"));
    let app = App::new(site.ts.store.clone(), Arc::new(site.ts.config.clone())).expect("app");
    let (anna_t, ben_t) =
        (app.trainer_named("anna").await.expect("anna"), app.trainer_named("ben").await.expect("ben"));
    assert!(app.channel_status(&NotifyTarget::Trainer(anna_t.clone())).await.expect("status").is_some());
    assert!(app.channel_status(&NotifyTarget::Trainer(ben_t.clone())).await.expect("status").is_none());
    let r =
        post(&ben, &ben_csrf, &format!("ntfy+http://{addr}/ben-digest?token={NTFY_TOKEN}"), "set").await.expect("ben");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let bens = app.channel_status(&NotifyTarget::Trainer(ben_t)).await.expect("status").expect("ben's own");
    assert!(bens.shown.contains("ben-digest"), "{}", bens.shown);
    let annas = app.channel_status(&NotifyTarget::Trainer(anna_t.clone())).await.expect("status").expect("anna's");
    assert!(annas.shown.contains("anna-digest"), "anna's channel is untouched: {}", annas.shown);
    let r = post(&anna, &csrf, "", "remove").await.expect("remove");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.channel_status(&NotifyTarget::Trainer(anna_t)).await.expect("status").is_none());
}

#[tokio::test]
async fn the_client_page_sets_and_tests_the_channel_and_lists_the_outbox_and_metrics_count_it() {
    use crate::dashboard::{browser, login, site, PASSWORD_A, PASSWORD_B};
    let (s, addr) = stand_in().await;
    let site = site().await;
    let http = browser();
    let csrf = login(&site, &http, "anna", PASSWORD_A).await;
    let a = site.a_client;
    let form =
        |url: String, action: &'static str| vec![("csrf", csrf.clone()), ("url", url), ("action", action.to_string())];
    let r = http
        .post(format!("{}/clients/{a}/channel", site.base))
        .form(&form(format!("ntfy+http://{addr}/page?token={NTFY_TOKEN}"), "set"))
        .send()
        .await
        .expect("set");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = http
        .post(format!("{}/clients/{a}/channel", site.base))
        .form(&form(String::new(), "test"))
        .send()
        .await
        .expect("test");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap_or_default().contains("Sent+a+test"), "{:?}", r.headers());
    assert_eq!(s.delivered("/page").len(), 1, "the test message");
    // A bad URL is refused with why; another trainer cannot touch anna's client.
    let r = http
        .post(format!("{}/clients/{a}/channel", site.base))
        .form(&form("ftp://x".into(), "set"))
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("body").contains("not a channel coachd knows"));
    let ben = browser();
    let ben_csrf = login(&site, &ben, "ben", PASSWORD_B).await;
    let r = ben
        .post(format!("{}/clients/{a}/channel", site.base))
        .form(&[("csrf", ben_csrf.as_str()), ("url", "ntfy://evil.example/x"), ("action", "set")])
        .send()
        .await
        .expect("ben");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Today's reminder (due at midnight in this test's settings) goes out.
    let mut cfg = site.ts.config.clone();
    cfg.notify.daily_at = "00:00".into();
    cfg.notify.quiet_hours = String::new();
    cfg.notify.weekly_at = String::new(); // a Sunday evening run would send that too
    let app = App::new(site.ts.store.clone(), Arc::new(cfg)).expect("app");
    let r = app.notify_round(Utc::now()).await.expect("round");
    assert_eq!(r.sent, 1, "{r:?}");
    let page = http.get(format!("{}/clients/{a}", site.base)).send().await.expect("page").text().await.expect("body");
    let outbox = &page[page.find("id=\"outbox\"").expect("the outbox table")..];
    assert!(outbox.contains("15 minutes of cardio today?") && outbox.contains(">sent<"), "{outbox}");
    assert!(outbox.contains("coachd: test message"), "{outbox}");
    assert!(page.contains("with a token") && !page.contains(NTFY_TOKEN), "the channel, without its token");

    let metrics = http.get(format!("{}/metrics", site.base)).send().await.expect("metrics").text().await.expect("body");
    assert!(metrics.contains("coachd_notify_sent_total 2"), "{metrics}");
    assert!(metrics.contains("coachd_notify_failed_total 0"), "{metrics}");
    assert!(metrics.contains("coachd_outbox{kind=\"nudge\",state=\"sent\"} 1"), "{metrics}");
    // The failure shows on the page and in the counts.
    s.fail_next(&[500]);
    let r = http
        .post(format!("{}/clients/{a}/channel", site.base))
        .form(&form(String::new(), "test"))
        .send()
        .await
        .expect("test");
    assert!(r.headers()["location"].to_str().unwrap_or_default().contains("failed"), "{:?}", r.headers());
    let page = http.get(format!("{}/clients/{a}", site.base)).send().await.expect("page").text().await.expect("body");
    assert!(page.contains("failing: ntfy answered 500"), "{page}");
    let metrics = http.get(format!("{}/metrics", site.base)).send().await.expect("metrics").text().await.expect("body");
    assert!(metrics.contains("coachd_notify_failed_total 1"), "{metrics}");
}

/// The decoded body of the MIME part whose headers contain `content_type`.
fn mime_part(mail: &str, content_type: &str) -> (String, String) {
    let at =
        mail.find(&format!("Content-Type: {content_type}")).unwrap_or_else(|| panic!("no {content_type} part: {mail}"));
    // The part's headers start after its boundary line.
    let start = mail[..at].rfind("\n--").map_or(0, |i| i + 1);
    let rest = &mail[start..];
    let split =
        rest.find("\r\n\r\n").map(|i| (i, 4)).or_else(|| rest.find("\n\n").map(|i| (i, 2))).expect("headers end");
    let headers = rest[..split.0].to_string();
    let body: String =
        rest[split.0 + split.1..].lines().take_while(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n");
    (headers, body)
}

#[tokio::test]
async fn the_weekly_digest_arrives_once_on_monday_with_text_html_and_the_roster_png_inline() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(dir.path());
    let ts = TestStore::new().await;
    let mut cfg = ts.config.clone();
    cfg.web.public_url = "http://coachd.test".into();
    cfg.clients.default_tz = "Europe/Berlin".into();
    let app = App::new(ts.store.clone(), Arc::new(cfg)).expect("app");
    let (sam, _) = ts
        .store
        .upsert_trainer("sam", &coachd::crypto::hash_password("sam's password!").expect("hash"))
        .await
        .expect("trainer");
    let tz = "Europe/Berlin";
    let alex = ts.store.add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client")).await.expect("add");
    ts.store.set_client_trainer(alex.id, Some(sam.id)).await.expect("assign");
    let monday = day("2026-11-23");
    let rule = coachd::engine::phrase::parse("10 push-ups").expect("phrase");
    let hw = ts.store.add_homework(alex.id, &rule, monday - Duration::days(30), None).await.expect("hw").homework.id;
    // The strap last delivered on the Friday before last (10:00, so 9 whole days before the digest); a partial check-in on Tuesday.
    ts.store
        .ingest(&batch("ble", vec![hour_run(alex.id, "old", local(tz, monday - Duration::days(10), "10:00"))], None))
        .await
        .expect("ingest");
    ts.store.add_checkin(alex.id, hw, day("2026-11-17"), Some(4.0), None, "cli").await.expect("checkin");
    let to = NotifyTarget::Trainer(sam.clone());
    let url = format!(
        "smtp://coach:right-password@127.0.0.1:{}?to=sam@example.org&from=coachd@example.org&tls=none",
        smtp.port
    );
    app.set_channel(&to, &url).await.expect("channel");

    for (when, digests) in [
        (local(tz, monday, "06:59"), 0),
        (local(tz, monday, "07:00"), 1),
        (local(tz, monday, "09:30"), 1),
        (local(tz, monday + Duration::days(1), "07:00"), 1),
    ] {
        app.notify_round(when).await.expect("round");
        assert_eq!(smtp.messages().len(), digests, "at {when}");
    }
    let rows = app.outbox(&to, 10).await.expect("outbox");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].kind.as_str(), rows[0].state.as_str(), rows[0].occurrence),
        ("digest", "sent", Some(day("2026-11-16")))
    );

    let mail = &smtp.messages()[0];
    assert!(mail.contains("Subject: coachd: your clients' week of Nov 16"), "{mail}");
    assert!(mail.contains("multipart/alternative") && mail.contains("multipart/related"), "{mail}");
    let (_, text) = mime_part(mail, "text/plain");
    let unqp = |s: &str| s.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let text = unqp(&text);
    assert!(text.contains("alex:") && text.contains("over 7 days"), "{text}");
    assert!(text.contains("10 push-ups") && text.contains("missed or partial Tue"), "{text}");
    assert!(text.contains("the Bluetooth strap was last seen Fri Nov 13 (9 days ago)"), "{text}");
    assert!(text.contains("http://coachd.test/roster"), "{text}");
    let (_, html) = mime_part(mail, "text/html");
    let html = unqp(&html);
    assert!(html.contains("src=\"cid:roster\"") && html.contains("<b>alex</b>"), "{html}");
    assert!(
        !html.contains("http://") || html.contains("href=\"http://coachd.test/roster\""),
        "no remote images: {html}"
    );
    let (headers, png) = mime_part(mail, "image/png");
    assert!(headers.contains("Content-ID: <roster>") && headers.contains("inline"), "{headers}");
    let png: String = png.split_whitespace().collect();
    let png = base64::engine::general_purpose::STANDARD.decode(png).expect("base64 PNG");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "a PNG of {} bytes", png.len());
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let info = decoder.read_info().expect("a PNG that decodes");
    assert!(info.info().width >= 400, "{}", info.info().width);
}

#[tokio::test]
async fn on_ntfy_the_digest_comes_with_the_roster_chart_attached() {
    let (s, addr) = stand_in().await;
    let ts = TestStore::new().await;
    let mut cfg = ts.config.clone();
    cfg.web.public_url = "http://coachd.test".into();
    cfg.clients.default_tz = "Europe/Berlin".into();
    let app = App::new(ts.store.clone(), Arc::new(cfg)).expect("app");
    let (sam, _) = ts
        .store
        .upsert_trainer("sam", &coachd::crypto::hash_password("sam's password!").expect("hash"))
        .await
        .expect("trainer");
    let alex = ts
        .store
        .add_client(&NewClient::parse("alex", "Europe/Berlin", Some(190), None).expect("client"))
        .await
        .expect("add");
    ts.store.set_client_trainer(alex.id, Some(sam.id)).await.expect("assign");
    let monday = day("2026-11-23");
    let rule = coachd::engine::phrase::parse("10 push-ups").expect("phrase");
    ts.store.add_homework(alex.id, &rule, monday - Duration::days(30), None).await.expect("hw");
    let to = NotifyTarget::Trainer(sam);
    app.set_channel(&to, &format!("ntfy+http://{addr}/sam-digest?token={NTFY_TOKEN}")).await.expect("channel");
    app.notify_round(local("Europe/Berlin", monday, "07:00")).await.expect("round");
    let got = s.delivered("/sam-digest");
    assert_eq!(got.len(), 1, "{got:#?}");
    let g = &got[0];
    assert_eq!(g.method, "PUT", "an attachment upload");
    assert_eq!(g.headers["filename"], "roster.png");
    assert!(g.bytes.starts_with(b"\x89PNG\r\n\x1a\n") && g.bytes.len() > 1000, "a PNG of {} bytes", g.bytes.len());
    png::Decoder::new(std::io::Cursor::new(g.bytes.clone())).read_info().expect("a PNG that decodes");
    let message = &g.headers["message"];
    assert!(message.contains("alex") && message.contains("\\n"), "the text, lines as \\n: {message}");
    assert!(g.headers["title"].starts_with("coachd: your clients' week of"), "{:?}", g.headers);
    let rows = app.outbox(&to, 10).await.expect("outbox");
    assert_eq!((rows[0].kind.as_str(), rows[0].state.as_str()), ("digest", "sent"));
}

#[tokio::test]
async fn with_attention_daily_a_trainer_hears_each_other_morning_about_the_clients_who_slipped_only() {
    let (s, addr) = stand_in().await;
    let ts = TestStore::new().await;
    let mut cfg = ts.config.clone();
    cfg.web.public_url = "http://coachd.test".into();
    cfg.clients.default_tz = "Europe/Berlin".into();
    cfg.notify.attention_daily = true;
    let app = App::new(ts.store.clone(), Arc::new(cfg)).expect("app");
    let hash = coachd::crypto::hash_password("a trainer's password").expect("hash");
    let (sam, _) = ts.store.upsert_trainer("sam", &hash).await.expect("trainer");
    let (kim, _) = ts.store.upsert_trainer("kim", &hash).await.expect("trainer");
    let tz = "Europe/Berlin";
    let monday = day("2026-11-23");
    // alex (sam's) did every day until a week before, then stopped (the roster's drop);
    // kim's only client did every day.
    let alex = ts.store.add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client")).await.expect("add");
    let bo = ts.store.add_client(&NewClient::parse("bo", tz, Some(190), None).expect("client")).await.expect("add");
    ts.store.set_client_trainer(alex.id, Some(sam.id)).await.expect("assign");
    ts.store.set_client_trainer(bo.id, Some(kim.id)).await.expect("assign");
    let rule = coachd::engine::phrase::parse("10 push-ups").expect("phrase");
    let alex_hw =
        ts.store.add_homework(alex.id, &rule, monday - Duration::days(30), None).await.expect("hw").homework.id;
    for d in 0..24 {
        let on = monday - Duration::days(30) + Duration::days(d);
        ts.store.add_checkin(alex.id, alex_hw, on, Some(10.0), None, "cli").await.expect("checkin");
    }
    let bo_hw = ts.store.add_homework(bo.id, &rule, monday - Duration::days(30), None).await.expect("hw").homework.id;
    for d in 0..40 {
        let on = monday - Duration::days(30) + Duration::days(d);
        ts.store.add_checkin(bo.id, bo_hw, on, Some(10.0), None, "cli").await.expect("checkin");
    }
    for (who, topic) in [(&sam, "sam"), (&kim, "kim")] {
        let url = format!("ntfy+http://{addr}/{topic}?token={NTFY_TOKEN}");
        app.set_channel(&NotifyTarget::Trainer(who.clone()), &url).await.expect("channel");
    }
    let attention = |topic: &str| {
        s.delivered(&format!("/{topic}"))
            .into_iter()
            .filter(|g| g.headers["title"].contains("need"))
            .collect::<Vec<_>>()
    };
    for (when, n) in [
        (local(tz, monday, "07:00"), 0), // Monday: the weekly digest instead
        (local(tz, monday + Duration::days(1), "06:59"), 0),
        (local(tz, monday + Duration::days(1), "07:00"), 1),
        (local(tz, monday + Duration::days(1), "12:00"), 1),
        (local(tz, monday + Duration::days(2), "07:05"), 2),
    ] {
        app.notify_round(when).await.expect("round");
        assert_eq!(attention("sam").len(), n, "at {when}");
        assert!(attention("kim").is_empty(), "kim's client is fine: nothing to say");
    }
    let got = &attention("sam")[0];
    assert_eq!(got.headers["title"], "coachd: 1 client needs attention");
    assert!(got.body.contains("alex: 0% over 7 days (-100 points)"), "{}", got.body);
    assert!(got.body.contains("no device has delivered any data yet"), "why, where it is known: {}", got.body);
    assert!(!got.body.contains("bo:"), "{}", got.body);
    let digests = s.delivered("/sam").into_iter().filter(|g| g.headers["title"].contains("your clients' week")).count();
    assert_eq!(digests, 1, "Monday's weekly digest went out as before");
    let kinds: Vec<String> =
        app.outbox(&NotifyTarget::Trainer(sam), 10).await.expect("outbox").into_iter().map(|o| o.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "attention").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn e_mail_goes_through_starttls_and_implicit_tls_with_auth_and_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !crate::have(Command::new("openssl").arg("version")) {
        assert!(crate::apt_install(&["openssl"]), "openssl is missing and could not be installed");
    }
    // A CA of the test's own, and a server certificate for 127.0.0.1 it signed.
    let p = |f: &str| dir.path().join(f);
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| crate::have(Command::new("openssl").args(args).current_dir(dir.path()));
    assert!(openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=coachd test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem"
    ]));
    assert!(openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr"
    ]));
    assert!(openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem"
    ]));
    let c = case("Europe/Berlin", "10 push-ups", day("2026-11-01"), |_| {}).await;
    for (mode, tls) in [("starttls", "starttls"), ("tls", "tls")] {
        let smtp = Smtp::start_with(dir.path(), mode, Some((&cert, &key)));
        let url = |extra: &str| {
            format!(
                "smtp://coach:right-password@127.0.0.1:{}?to=alex@example.org&from=sam@example.org&tls={tls}{extra}",
                smtp.port
            )
        };
        c.channel(&url(&format!("&ca={}", ca.display()))).await;
        let sent = c.app.test_channel(&c.target(), Utc::now()).await.expect("test");
        assert!(sent.is_ok(), "{mode}: {sent:?}");
        assert_eq!(smtp.messages().len(), 1, "{mode}");
        assert!(smtp.messages()[0].contains("Subject: coachd: test message"));
        // Without the CA, the server's certificate is not trusted: nothing is sent.
        c.channel(&url("")).await;
        let e = c.app.test_channel(&c.target(), Utc::now()).await.expect("test").expect_err("untrusted");
        assert!(e.to_ascii_lowercase().contains("certificate"), "{mode}: {e}");
        assert_eq!(smtp.messages().len(), 1, "{mode}");
    }
    // A server that requires STARTTLS refuses a login in the clear.
    let smtp = Smtp::start_with(dir.path(), "starttls", Some((&cert, &key)));
    let plain =
        format!("smtp://coach:right-password@127.0.0.1:{}?to=a@example.org&from=s@example.org&tls=none", smtp.port);
    c.channel(&plain).await;
    let e = c.app.test_channel(&c.target(), Utc::now()).await.expect("test").expect_err("STARTTLS required");
    assert!(e.contains("530") || e.to_ascii_lowercase().contains("starttls"), "{e}");
}

#[tokio::test]
async fn the_clients_weekly_message_goes_out_once_on_sunday_evening_and_its_link_saves_that_weeks_reflection() {
    let (s, addr) = stand_in().await;
    let tz = "America/Los_Angeles";
    // This week's Sunday (its links then work now, on the real clock of the web server).
    let monday = coachd::time::monday(coachd::time::today(tz.parse().expect("tz"), Utc::now()));
    let sunday = monday + Duration::days(6);
    let c = case(tz, "10 push-ups", monday - Duration::days(14), |cfg| cfg.notify.weekly_at = "18:00".into()).await;
    c.channel(&format!("ntfy+http://{addr}/week?token={NTFY_TOKEN}")).await;
    c.ts.store.add_checkin(c.client.id, c.hw, monday + Duration::days(1), None, None, "cli").await.expect("checkin");
    let weekly =
        || s.delivered("/week").into_iter().filter(|g| g.headers["title"].starts_with("Your week")).collect::<Vec<_>>();
    for (when, n) in [
        (local(tz, sunday, "17:59"), 0),
        (local(tz, sunday, "18:00"), 1),
        (local(tz, sunday, "19:30"), 1),
        (local(tz, sunday + Duration::days(1), "18:00"), 1),
    ] {
        c.round(when).await;
        assert_eq!(weekly().len(), n, "at {when}");
    }
    let got = weekly().remove(0);
    assert_eq!(got.headers["title"], format!("Your week of {}: 1 of 7 done", monday.format("%b %-d")));
    // Their week's chart is the attachment; the text is in the Message header.
    assert_eq!(got.method, "PUT");
    assert!(got.bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "the week's chart attached");
    let text = got.headers["message"].replace("\\n", "\n");
    assert!(text.contains("10 push-ups every day: 1 of 7 done"), "{text}");
    let base = c.ts.serve().await;
    let l = links(&got, &base);
    let reflect = &l["Rate my week"];
    assert!(reflect.contains("/reflect/"), "{reflect}");
    let http = reqwest::Client::new();
    let (code, page) = follow(&http, "GET", reflect, &[]).await;
    assert_eq!(code, 200);
    assert!(page.contains("How did your week go?") && page.contains("name=\"rating\""), "{page}");
    // The same signature with another action is not a link coachd made.
    let (code, _) = follow(&http, "POST", &reflect.replace("/reflect/", "/done/"), &[]).await;
    assert_eq!(code, 404);
    let (code, page) =
        follow(&http, "POST", reflect, &[("rating", "8"), ("note", "good week, tired on Thursday")]).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("8/10"), "{page}");
    let saved = c.app.reflections(&c.client, 4).await.expect("reflections");
    assert_eq!(saved.len(), 1);
    assert_eq!(
        (saved[0].week, saved[0].rating, saved[0].note.as_deref()),
        (monday, 8, Some("good week, tired on Thursday"))
    );
    let row = c.outbox().await.into_iter().find(|o| o.kind == "weekly").expect("the weekly row");
    assert_eq!((row.state.as_str(), row.occurrence), ("sent", Some(monday)));
}
