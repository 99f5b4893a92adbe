//! Withings against a local server that answers like its documented API
//! (tests/it/fake_withings.rs): the connect flow through the real callback with its
//! 30-second code, backfill and incremental re-sync (`lastupdate`), deletions, rotating
//! refresh tokens with a crash after the refresh answer, a refused refresh, HTTP 200 with
//! `status: 401`, 429 and status 601, notification subscriptions with their HEAD check and
//! unsigned deliveries taken as hints, revocation, and verdicts judged from Withings data
//! alone against hand-computed labels.

use crate::fake_withings::{self, local, FakeDay, FakeSleep, FakeWithings, FakeWorkout, SCOPES, USER};
use crate::TestStore;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use coachd::providers::clock::Clock;
use coachd::providers::sync::{sync_account, sync_all, Report};
use coachd::providers::{oauth, Registry};
use coachd::source::Health;
use coachd::store::providers::{state, Account};
use coachd::store::NewClient;
use coachd::web::{router, WebState};
use std::sync::Arc;

struct Env {
    ts: TestStore,
    fake: FakeWithings,
    reg: Arc<Registry>,
    app: coachd::app::App,
    base: String,
    client: i64,
    tz: Tz,
    http: reqwest::Client,
}

/// Thursday 2026-11-20, 10:07 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time")
}

async fn env_with(
    now: DateTime<Utc>,
    tz: &str,
    backfill_days: u32,
    tune: impl FnOnce(&mut coachd::config::Config),
) -> Env {
    let fake = fake_withings::start(now).await;
    let ts = TestStore::new().await;
    let client = ts
        .store
        .add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client"))
        .await
        .expect("add client")
        .id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = fake_withings::config(&fake, &base);
    config.providers.backfill_days = backfill_days;
    tune(&mut config);
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    let app = coachd::app::App::from_parts(ts.store.clone(), Arc::new(config), reg.clone());
    let web = router(WebState::for_app(app.clone(), Health::default()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, web).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { ts, fake, reg, app, base, client, tz: tz.parse().expect("tz"), http }
}

async fn env() -> Env {
    env_with(t0(), "Europe/Berlin", 30, |_| {}).await
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).expect("url").query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Env {
    async fn callback(&self, query: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}/oauth/withings/callback", self.base))
            .query(query)
            .send()
            .await
            .expect("callback");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// The connect flow as the client's browser does it: the link, Withings' consent
    /// page (a code), the redirect back with code and state.
    async fn connect_as(&self, user: i64) -> (u16, String) {
        let link = oauth::authorization_link(&self.reg, &self.ts.store, "withings", self.client).await.expect("link");
        let code = self.fake.issue_code(user, SCOPES);
        let state = param(&link, "state").expect("state");
        self.callback(&[("code", &code), ("state", &state)]).await
    }

    async fn connect(&self) -> Account {
        let (status, body) = self.connect_as(USER).await;
        assert_eq!(status, 200, "{body}");
        self.account().await
    }

    async fn account(&self) -> Account {
        self.ts.store.account(self.client, "withings").await.expect("account")
    }

    async fn sync(&self) -> Report {
        sync_account(&self.reg, &self.ts.store, &self.account().await, 500).await.expect("sync")
    }

    async fn activities(&self) -> i64 {
        self.ts.store.row_counts().await.expect("counts").activities
    }

    fn today(&self) -> NaiveDate {
        self.fake.clock.now().with_timezone(&self.tz).date_naive()
    }

    /// A workout at `h:00` local on `d`, `category` (2 run, 16 lift weights).
    fn workout(&self, id: i64, d: NaiveDate, h: u32, minutes: i64, category: i64, bpm: Option<f64>) {
        let start = local(self.tz, d, h, 0);
        let modified = self.fake.clock.now().timestamp();
        let w = FakeWorkout { id, category, start, minutes, tz: self.tz, bpm, modified };
        self.fake.lock().workouts.insert(id, w);
    }
}

/// `days` days up to yesterday in `tz`: steps every day, a night of 7 hours asleep in 8 in
/// bed every night (23:00-07:00), a 45-minute run every other evening at 18:00 with the
/// heart rate of a watch in workout mode.
fn seed(fake: &FakeWithings, now: DateTime<Utc>, tz: Tz, days: i64) {
    let mut s = fake.lock();
    let today = now.with_timezone(&tz).date_naive();
    for i in 1..=days {
        let d = today - Duration::days(i);
        let end_of_day = local(tz, d, 23, 59).timestamp();
        s.days.insert(d, FakeDay { steps: 6000 + 100 * (i % 40), tz, modified: end_of_day });
        let bed = local(tz, d, 23, 0);
        let wake = bed + Duration::hours(8);
        s.sleeps.push(FakeSleep {
            id: 5000 + i,
            start: bed,
            end: wake,
            asleep_s: 7 * 3600,
            tz,
            modified: (wake + Duration::minutes(15)).timestamp(),
        });
        if i % 2 == 0 {
            let start = local(tz, d, 18, 0);
            let w = FakeWorkout { id: 1000 + i, category: 2, start, minutes: 45, tz, bpm: Some(148.0), modified: 0 };
            let modified = (w.end() + Duration::minutes(10)).timestamp();
            s.workouts.insert(w.id, FakeWorkout { modified, ..w });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_flow_checks_the_state_and_exchanges_the_code_at_once() {
    let e = env().await;
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "withings", e.client).await.expect("link");
    assert!(link.starts_with(&format!("{}/oauth2_user/authorize2?", e.fake.base)), "{link}");
    assert_eq!(param(&link, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&link, "client_id").as_deref(), Some(fake_withings::CLIENT_ID));
    assert_eq!(param(&link, "scope").as_deref(), Some("user.activity"));
    assert_eq!(param(&link, "redirect_uri"), Some(format!("{}/oauth/withings/callback", e.base)));
    // A wrong state: refused, the code never sent to Withings, nothing stored.
    let code = e.fake.issue_code(USER, SCOPES);
    let (status, body) = e.callback(&[("code", &code), ("state", &"f".repeat(64))]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown, used or expired"), "{body}");
    assert!(e.fake.lock().codes.contains_key(&code), "the code was not spent");
    assert_eq!(e.fake.lock().token_requests, 0);
    assert!(e.ts.store.accounts().await.expect("accounts").is_empty());
    // coachd's own budget for Withings is used up for the minute: the code (30 s to live)
    // is exchanged at once all the same.
    let api = e.reg.api("withings").expect("api").clone();
    api.limiter.lock().await.exhausted(e.fake.clock.now(), None);
    let before = e.fake.clock.now();
    let state = param(&link, "state").expect("state");
    let (status, body) = e.callback(&[("code", &code), ("state", &state)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Withings connected") && !body.contains("not enough"), "{body}");
    assert_eq!(e.fake.clock.now(), before, "no wait for the window");
    // Withings' token request: form fields, the client's credentials in the body.
    let form = e.fake.lock().last_token_form.clone();
    let f = |k: &str| form.get(k).map(String::as_str);
    assert_eq!((f("action"), f("grant_type")), (Some("requesttoken"), Some("authorization_code")));
    assert_eq!(
        (f("client_id"), f("client_secret")),
        (Some(fake_withings::CLIENT_ID), Some(fake_withings::CLIENT_SECRET))
    );
    assert_eq!(f("redirect_uri"), Some(format!("{}/oauth/withings/callback", e.base).as_str()));
    let a = e.account().await;
    assert_eq!((a.state.as_str(), a.external_user_id.as_deref()), (state::ACTIVE, Some(USER.to_string().as_str())));
    assert_eq!(a.scopes, "user.activity");
    let t = e.ts.store.tokens(e.client, "withings").await.expect("tokens");
    assert!(t.access.expose().starts_with("wi-access-") && t.refresh.is_some());
    assert_eq!(t.expires, Some(before + Duration::seconds(10_800)), "3 hours");
    // Used once: the same state again is refused.
    let (status, _) = e.callback(&[("code", &e.fake.issue_code(USER, SCOPES)), ("state", &state)]).await;
    assert_eq!(status, 400);
    // A code that waited more than 30 seconds: Withings' "invalid code" (status 503 in an
    // HTTP 200), shown as a refusal, nothing changed.
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "withings", e.client).await.expect("link");
    let code = e.fake.issue_code(USER, SCOPES);
    e.fake.clock.advance(Duration::seconds(31));
    let (status, body) = e.callback(&[("code", &code), ("state", &param(&link, "state").expect("state"))]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Withings refused the code (status 503)") && body.contains("invalid code"), "{body}");
    assert_eq!(e.ts.store.tokens(e.client, "withings").await.expect("tokens").access.expose(), t.access.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_an_incremental_resync_that_changes_nothing_and_a_deleted_workout_disappearing() {
    let e = env().await;
    seed(&e.fake, t0(), e.tz, 30);
    e.connect().await;
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert!(r.done && r.skipped.is_empty(), "{r:?}");
    assert_eq!((r.inserted, r.updated, r.deleted), (15, 0, 0), "{r:?}");
    // One page of workouts, a heart-rate request each, one page of days, one of nights.
    assert_eq!(e.fake.lock().api_requests - before, 1 + 15 + 1 + 1);
    assert_eq!(e.fake.lock().mixed, 0, "never dates and lastupdate together");
    let today = e.today();
    let ev = e.ts.store.evidence(e.client, e.tz, today - Duration::days(31), today).await.expect("evidence");
    assert_eq!(ev.workouts.len(), 15);
    let w = ev.workouts.last().expect("a workout");
    assert_eq!((w.activity_type.as_str(), w.duration_s, w.utc_offset_s), ("run", 2700.0, 3600));
    assert_eq!(w.hr_samples, 2701, "a reading every second of the workout, kept as its samples");
    assert_eq!(w.start.with_timezone(&e.tz).format("%H:%M").to_string(), "18:00");
    use coachd::model::Metric;
    let value = |m: Metric, d: NaiveDate| ev.daily.iter().find(|v| v.metric == m && v.date == d).map(|v| v.value);
    let d = today - Duration::days(3);
    assert_eq!(value(Metric::Steps, d), Some(6300.0));
    // The night of the 16th (23:00-07:00 Berlin) is dated by the morning of the 17th.
    assert_eq!(value(Metric::SleepS, d), Some(7.0 * 3600.0));
    let bed = local(e.tz, d - Duration::days(1), 23, 0);
    assert_eq!(value(Metric::SleepStart, d), Some(bed.timestamp() as f64));
    assert_eq!(value(Metric::SleepEnd, d), Some((bed + Duration::hours(8)).timestamp() as f64));
    // Again: what changed since (nothing), and the last week of workouts by date.
    let counts = e.ts.store.row_counts().await.expect("counts");
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert_eq!((r.inserted, r.updated, r.deleted, r.unchanged), (0, 0, 0, 3), "a week looked at again: {r:?}");
    assert_eq!(e.fake.lock().api_requests - before, 4, "workouts by date and by lastupdate, days, nights");
    assert_eq!(e.ts.store.row_counts().await.expect("counts"), counts, "a re-sync changes nothing");
    // A workout deleted in the Withings app disappears at the next sync.
    e.fake.clock.advance(Duration::hours(2));
    e.fake.lock().workouts.remove(&1002);
    let r = e.sync().await;
    assert_eq!(r.deleted, 1, "{r:?}");
    assert_eq!(e.activities().await, 14);
    // What changed long ago reaches coachd by lastupdate: a watch that synced a workout of
    // 12 days ago only now, a workout of 20 days ago whose category was corrected, the steps
    // of 11 days ago counted again, and the night of 10 days ago.
    e.fake.clock.advance(Duration::hours(2));
    let now = e.fake.clock.now().timestamp();
    e.workout(77, today - Duration::days(12), 7, 30, 1, Some(112.0));
    {
        let mut s = e.fake.lock();
        let old = s.workouts.get_mut(&1020).expect("w20");
        (old.category, old.modified) = (16, now);
        let day = s.days.get_mut(&(today - Duration::days(11))).expect("day");
        (day.steps, day.modified) = (14_321, now);
        let night = s.sleeps.iter_mut().find(|n| n.id == 5011).expect("night");
        (night.asleep_s, night.modified) = (6 * 3600, now);
    }
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert!(r.done && r.deleted == 0, "{r:?}");
    assert_eq!(r.inserted + r.updated, 2, "{r:?}");
    // Window, changed workouts, two heart rates, days, changed nights, those nights whole.
    assert_eq!(e.fake.lock().api_requests - before, 7);
    assert_eq!(e.activities().await, 15);
    let ev = e.ts.store.evidence(e.client, e.tz, today - Duration::days(31), today).await.expect("evidence");
    let type_on = |d: NaiveDate| {
        ev.workouts.iter().find(|w| w.start.with_timezone(&e.tz).date_naive() == d).map(|w| w.activity_type.clone())
    };
    assert_eq!(type_on(today - Duration::days(20)).as_deref(), Some("weight_training"));
    assert_eq!(type_on(today - Duration::days(12)).as_deref(), Some("walk"));
    let value = |m: Metric, d: NaiveDate| ev.daily.iter().find(|v| v.metric == m && v.date == d).map(|v| v.value);
    assert_eq!(value(Metric::Steps, today - Duration::days(11)), Some(14_321.0));
    assert_eq!(value(Metric::SleepS, today - Duration::days(10)), Some(6.0 * 3600.0), "the night ending 10 days ago");
    assert_eq!(value(Metric::SleepS, today - Duration::days(9)), Some(7.0 * 3600.0), "its neighbours unchanged");
}

async fn wait_for<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if cond().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_refresh_tokens_survive_a_crash_one_refresh_at_a_time_and_a_refused_one_needs_reauth() {
    let e = env().await;
    seed(&e.fake, t0(), e.tz, 6);
    let account = e.connect().await;
    e.sync().await;
    // Three hours later the access token has expired: three syncs at once refresh it
    // once, and the new pair replaces the old.
    let first = e.fake.refresh_token().expect("refresh token");
    e.fake.clock.advance(Duration::hours(3));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (reg, store, a) = (e.reg.clone(), e.ts.store.clone(), account.clone());
        tasks.push(tokio::spawn(async move { sync_account(&reg, &store, &a, 500).await }));
    }
    for t in tasks {
        assert!(t.await.expect("task").expect("sync").done);
    }
    assert_eq!(e.fake.lock().refreshes, 1, "one refresh at a time");
    let stored = e.ts.store.tokens(e.client, "withings").await.expect("tokens");
    let second = e.fake.refresh_token().expect("refresh token");
    assert_ne!(first, second, "rotated");
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), Some(second.clone()));
    assert!(!e.fake.lock().refresh.contains_key(&first), "the old one died when the new access token was used");
    // Expired again; the refresh is answered, then coachd "crashes" while its first
    // request hangs. The new pair was stored before anything used it.
    e.fake.clock.advance(Duration::hours(3));
    e.fake.lock().hang_next_api = true;
    let (reg, store, a) = (e.reg.clone(), e.ts.store.clone(), account.clone());
    let task = tokio::spawn(async move { sync_account(&reg, &store, &a, 500).await });
    wait_for(|| async { !e.fake.lock().hang_next_api }).await;
    task.abort();
    assert_eq!(e.fake.lock().refreshes, 2);
    let third = e.fake.refresh_token().expect("refresh token");
    let stored = e.ts.store.tokens(e.client, "withings").await.expect("tokens");
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), Some(third), "the new pair survived");
    // After the restart: the stored token works; no refresh, no dead refresh token sent.
    let r = e.sync().await;
    assert!(r.done);
    let counts = {
        let s = e.fake.lock();
        (s.refreshes, s.spent_refreshes)
    };
    assert_eq!(counts, (2, 0));
    assert!(!e.fake.lock().refresh.contains_key(&second));
    // Withings refuses the refresh token (the client removed coachd): needs_reauth, not a
    // loop, and not a parse error.
    e.fake.lock().refresh.clear();
    e.fake.clock.advance(Duration::hours(4));
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 500).await.expect_err("refused");
    assert!(err.to_string().contains("connect again"), "{err}");
    let a = e.account().await;
    assert_eq!(a.state, state::NEEDS_REAUTH);
    let why = a.last_error.clone().unwrap_or_default();
    assert!(why.contains("status 503") && why.contains("invalid refresh_token"), "{why}");
    let before = e.fake.lock().api_requests;
    let results = sync_all(&e.reg, &e.ts.store, &[a], &tokio_util::sync::CancellationToken::new()).await;
    assert!(results.iter().all(|(_, r)| matches!(r, Ok(r) if r.requests == 0)));
    assert_eq!(e.fake.lock().api_requests, before, "a needs_reauth account is not synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_200_with_status_401_is_a_refused_token_not_a_parse_error() {
    let e = env().await;
    seed(&e.fake, t0(), e.tz, 4);
    e.connect().await;
    let refused = r#"{"status":401,"body":{},"error":"invalid_token: The access token provided is invalid"}"#;
    // Once: like an HTTP 401, the token is refreshed and the request asked again.
    e.fake.lock().faults = vec![(200, refused.into())];
    let r = e.sync().await;
    assert!(r.done && r.inserted == 2, "{r:?}");
    assert_eq!(e.fake.lock().refreshes, 1);
    assert_eq!(e.account().await.state, state::ACTIVE);
    // Whatever token coachd has, Withings keeps answering 401: the account says access
    // was revoked (the client's to fix), and the error is not about the answer's shape.
    e.fake.clock.advance(Duration::hours(1));
    e.fake.lock().faults = vec![(200, refused.into()), (200, refused.into())];
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 500).await.expect_err("revoked");
    let text = err.to_string();
    assert!(text.contains("not authorized") && !text.contains("not what the provider documents"), "{text}");
    assert_eq!(e.fake.lock().refreshes, 2);
    let a = e.account().await;
    assert_eq!(a.state, state::REVOKED);
    assert!(a.last_error.unwrap_or_default().contains("not authorized"));
    // Other statuses are named, not taken for data.
    let e = env().await;
    e.connect().await;
    e.fake.lock().faults = vec![(200, r#"{"status":503,"body":{},"error":"Invalid Params: data_fields"}"#.into())];
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 500).await.expect_err("refused");
    assert!(
        err.to_string().contains("the workouts: Withings status 503 (invalid parameters): Invalid Params"),
        "{err}"
    );
    assert_eq!(e.account().await.state, state::ACTIVE, "a refused request is not a refused token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_and_withings_own_status_601_are_honoured() {
    let e = env().await;
    seed(&e.fake, t0(), e.tz, 4);
    e.connect().await;
    let start = e.fake.clock.now();
    {
        let mut s = e.fake.lock();
        s.faults = vec![(429, r#"{"status":601,"error":"Too Many Request"}"#.into())];
        s.retry_after = Some("120".into());
    }
    let r = e.sync().await;
    assert!(r.done && r.inserted == 2, "{r:?}");
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(120) && waited < Duration::seconds(130), "waited {waited}");
    // Status 601 in an HTTP 200, with the seconds to wait.
    e.fake.clock.advance(Duration::hours(1));
    let start = e.fake.clock.now();
    e.fake.lock().faults = vec![(
        200,
        r#"{"status":601,"body":{"wait_seconds":45},"error":"Same arguments in less than 10 seconds"}"#.into(),
    )];
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(45) && waited < Duration::seconds(55), "waited {waited}");
    // The application's minute used up by another install of the app: 601 until the
    // window ends; coachd waits and goes on.
    {
        let mut s = e.fake.lock();
        s.limit = 3;
        s.window = (e.fake.clock.now().timestamp(), 3);
    }
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    assert!(e.fake.lock().limited >= 1);
}

/// POST a notification to /webhooks/withings as Withings sends it: form fields, unsigned.
async fn deliver(e: &Env, body: &str) -> u16 {
    let r = e
        .http
        .post(format!("{}/webhooks/withings", e.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_subscribed_per_user_and_deliveries_are_hints_confirmed_by_a_pull() {
    let e = env().await;
    seed(&e.fake, t0(), e.tz, 4);
    let account = e.connect().await;
    e.sync().await;
    // Withings checks the callback with HEAD; a provider without webhooks is not found.
    let head = e.http.head(format!("{}/webhooks/withings", e.base)).send().await.expect("head");
    assert_eq!(head.status(), 200);
    let head = e.http.head(format!("{}/webhooks/intervals", e.base)).send().await.expect("head");
    assert_eq!(head.status(), 404);
    // `coachd subscribe withings`: activity (16) and sleep (44) for the user, each made
    // after Withings' HEAD check; the callback's shape (not https here) is warned about.
    let made = e.app.subscribe("withings").await.expect("subscribed");
    assert!(made.contains("2 made") && made.contains("it must be https://"), "{made}");
    let callback = format!("{}/webhooks/withings", e.base);
    let subs = e.fake.lock().subscriptions.clone();
    assert_eq!(subs, vec![(USER, 16, callback.clone()), (USER, 44, callback.clone())]);
    let again = e.app.subscribe("withings").await.expect("subscribed");
    assert!(again.contains("0 made, 2 current"), "{again}");
    // Withings dropped one (deliveries failed): the daemon makes it again at its next look.
    let withings = coachd::providers::provider("withings").expect("withings");
    e.fake.lock().subscriptions.retain(|s| s.1 != 44);
    withings.upkeep(&e.reg, &e.ts.store).await.expect("upkeep");
    assert_eq!(e.fake.lock().subscriptions.len(), 1, "not before twelve hours");
    e.fake.clock.advance(Duration::hours(13));
    withings.upkeep(&e.reg, &e.ts.store).await.expect("upkeep");
    assert_eq!(e.fake.lock().subscriptions.len(), 2);
    // A delivery is taken unsigned, as a hint: it asks for a sync of that user's account.
    let pending = || e.reg.pending.lock().expect("pending").contains(&account.id);
    e.reg.pending.lock().expect("pending").clear();
    assert_eq!(deliver(&e, "userid=99999&appli=16&startdate=1763596800&enddate=1763640000").await, 200);
    assert_eq!(deliver(&e, "userid=1&appli=sleep").await, 400, "not what Withings sends");
    assert_eq!(deliver(&e, "").await, 200, "an empty POST is a check of the callback");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!pending(), "an unknown user or a bad body asks for nothing");
    // The workout it announces: nothing is taken from the delivery itself; the sync pulls
    // what changed since the last one.
    let yesterday = e.today() - Duration::days(1);
    e.workout(88, yesterday, 7, 40, 550, Some(160.0));
    let (from, to) = (local(e.tz, yesterday, 7, 0).timestamp(), local(e.tz, yesterday, 7, 40).timestamp());
    assert_eq!(deliver(&e, &format!("userid={USER}&appli=16&startdate={from}&enddate={to}")).await, 200);
    wait_for(|| async { pending() }).await;
    let before = e.fake.requests("getworkouts");
    let r = e.sync().await;
    assert_eq!(r.inserted, 1, "{r:?}");
    assert_eq!(e.fake.requests("getworkouts") - before, 2, "by date and by lastupdate");
    // A client connected after `coachd subscribe withings` is subscribed at once.
    e.fake.lock().subscriptions.clear();
    let (status, body) = e.connect_as(USER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(e.fake.lock().subscriptions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_revokes_the_notifications_and_the_tokens() {
    let e = env().await;
    let account = e.connect().await;
    e.app.subscribe("withings").await.expect("subscribed");
    assert_eq!(e.fake.lock().subscriptions.len(), 2);
    let withings = coachd::providers::provider("withings").expect("withings");
    let access = coachd::providers::Auth::Bearer(e.ts.store.tokens(e.client, "withings").await.expect("tokens").access);
    let c = coachd::providers::Connection { reg: &e.reg, store: &e.ts.store, account: &account, access };
    assert!(withings.revoke(c).await.expect("revoked"), "Withings revoked the tokens");
    {
        let s = e.fake.lock();
        assert!(s.subscriptions.is_empty(), "{:?}", s.subscriptions);
        assert_eq!((s.revoked.clone(), s.access.len(), s.refresh.len()), (vec![USER], 0, 0));
        let asked = (s.by_action.get("getnonce"), s.by_action.get("revoke"));
        assert_eq!(asked, (Some(&1), Some(&1)), "a signed nonce, once");
        assert!(s.nonces.values().all(|used| *used));
    }
    // An application Withings does not let revoke: the subscriptions go, the tokens are
    // only forgotten, and revoke says so.
    let e = env().await;
    let account = e.connect().await;
    e.app.subscribe("withings").await.expect("subscribed");
    e.fake.lock().refuse_revoke = true;
    let access = coachd::providers::Auth::Bearer(e.ts.store.tokens(e.client, "withings").await.expect("tokens").access);
    let c = coachd::providers::Connection { reg: &e.reg, store: &e.ts.store, account: &account, access };
    assert!(!withings.revoke(c).await.expect("answered"), "not revoked: only forgotten");
    assert!(e.fake.lock().subscriptions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_from_withings_alone_match_hand_computed_labels_in_kolkata() {
    use coachd::engine::judge::Verdict::{self, Done, Missed, Partial};
    // Saturday 2026-11-21, 12:00 in Kolkata (06:30 UTC, +05:30): every night below is over.
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 6, 30, 0).single().expect("time");
    let e = env_with(now, "Asia/Kolkata", 14, |_| {}).await;
    let tz = e.tz;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
    {
        let mut s = e.fake.lock();
        let mut n = 0;
        let mut night = |start: DateTime<Utc>, end: DateTime<Utc>, asleep_min: i64| {
            n += 1;
            let modified = end.timestamp() + 600;
            s.sleeps.push(FakeSleep { id: 7000 + n, start, end, asleep_s: asleep_min * 60, tz, modified });
        };
        // Evening of the 15th: up for 25 minutes after midnight, two summaries: one night
        // from 23:25, 90 + 350 = 440 min asleep (7 h 20).
        night(local(tz, day(15), 23, 25), local(tz, day(16), 0, 55), 90);
        night(local(tz, day(16), 1, 20), local(tz, day(16), 7, 20), 350);
        // Evening of the 16th: 22:40 to 06:10, 425 min asleep (7 h 05).
        night(local(tz, day(16), 22, 40), local(tz, day(17), 6, 10), 425);
        // Evening of the 17th: 23:20 to 06:30, 390 min (6 h 30).
        night(local(tz, day(17), 23, 20), local(tz, day(18), 6, 30), 390);
        // Evening of the 18th: to bed after midnight, 00:30 to 08:00, 420 min (7 h).
        night(local(tz, day(19), 0, 30), local(tz, day(19), 8, 0), 420);
        // Evening of the 19th: no night, only an afternoon nap on the 20th (55 min). Withings
        // does not mark naps, so it is that day's sleep: 0.92 h.
        night(local(tz, day(20), 14, 0), local(tz, day(20), 15, 0), 55);
        for (d, steps) in [(15, 9100), (16, 8000), (17, 5200), (18, 3000), (19, 12000), (20, 8500)] {
            s.days.insert(day(d), FakeDay { steps, tz, modified: local(tz, day(d), 23, 59).timestamp() });
        }
    }
    // Lifting weights is not cardio, but the watch's heart rate says 30 minutes were: on
    // the 17th at 130-139 bpm (above 64 % of 190). On the 18th the same without a watch
    // counts nothing. On the 19th a 20-minute run at an easy 100-109 bpm counts nothing
    // either: the heart rate decides, not the category.
    e.workout(1, day(17), 18, 30, 16, Some(130.0));
    e.workout(2, day(18), 18, 30, 16, None);
    e.workout(3, day(19), 18, 20, 2, Some(100.0));
    e.connect().await;
    let r = e.sync().await;
    assert!(r.done && r.skipped.is_empty(), "{r:?}");
    assert_eq!(e.fake.requests("getintradayactivity"), 2, "no heart-rate request for a workout without one");
    let ev = e.ts.store.evidence(e.client, tz, day(14), day(21)).await.expect("evidence");
    let cfg = e.ts.config.homework.judge_config();
    let mut homework = Vec::new();
    for phrase in ["7 hours of sleep nightly", "8000 steps a day", "15 minutes of cardio every day"] {
        let rule = coachd::engine::phrase::parse(phrase).expect("phrase");
        homework.push(e.ts.store.add_homework(e.client, &rule, day(15), None).await.expect("homework"));
    }
    let verdicts = |i: usize| {
        (15..=19)
            .map(|d| coachd::engine::judge::judge(&homework[i].homework, &cfg, tz, Some(190.0), day(d), &ev, now))
            .map(|o| (o.verdict, o.achieved))
            .collect::<Vec<(Verdict, f64)>>()
    };
    // Hours asleep in the night that starts on each evening (dated by its morning).
    assert_eq!(verdicts(0), vec![(Done, 7.33), (Done, 7.08), (Partial, 6.5), (Done, 7.0), (Missed, 0.92)]);
    // Steps of each local day in Kolkata.
    assert_eq!(verdicts(1), vec![(Done, 9100.0), (Done, 8000.0), (Partial, 5200.0), (Missed, 3000.0), (Done, 12000.0)]);
    // Cardio minutes from the heart rate: on the 17th 1,801 readings a second apart, each
    // standing for a second (the last one too), 30.02 minutes.
    assert_eq!(verdicts(2), vec![(Missed, 0.0), (Missed, 0.0), (Done, 30.02), (Missed, 0.0), (Missed, 0.0)]);
}

/// The fewest requests a 90-day backfill can take: each listing's pages (an empty one
/// still costs a request), one heart-rate request per workout.
fn minimum(workouts: usize, days: usize, nights: usize) -> usize {
    let pages = |n: usize| n.div_ceil(fake_withings::PAGE).max(1);
    pages(workouts) + workouts + pages(days) + pages(nights)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_day_backfill_takes_the_fewest_requests_inside_the_limits() {
    for limit in [120u32, 20] {
        // A trainer whose application has a smaller budget says so in the manifest.
        let e = env_with(t0(), "Europe/Berlin", 90, |c| {
            let mut window = toml::Table::new();
            window.insert("name".into(), "minute".into());
            window.insert("seconds".into(), 60.into());
            window.insert("limit".into(), i64::from(limit).into());
            window.insert("aligned".into(), false.into());
            let window = toml::Value::Table(window);
            c.providers.get_mut("withings").manifest.insert("rate_limits".into(), toml::Value::Array(vec![window]));
        })
        .await;
        seed(&e.fake, t0(), e.tz, 90);
        e.fake.lock().limit = limit;
        e.connect().await;
        let (before, started) = (e.fake.lock().api_requests, e.fake.clock.now());
        let results =
            sync_all(&e.reg, &e.ts.store, &[e.account().await], &tokio_util::sync::CancellationToken::new()).await;
        let r = results[0].1.as_ref().expect("backfill");
        let used = (e.fake.lock().api_requests - before) as usize;
        let took = e.fake.clock.now() - started;
        let min = minimum(45, 90, 90);
        println!(
            "Withings 90-day backfill, {limit} requests / min: {} workouts, {used} requests (minimum {min}), {} refused \
             by the limit, simulated time {} s",
            r.inserted,
            e.fake.lock().limited,
            took.num_seconds()
        );
        assert_eq!(r.inserted, 45);
        assert_eq!(e.fake.lock().limited, 0, "coachd's own budget kept it under the limit");
        if limit == 120 {
            assert_eq!(used, min, "requests used against the minimum possible");
            assert_eq!(took, Duration::zero(), "no waiting");
        } else {
            assert!(used <= min + 2, "{used} requests against {min}");
            // With the connect's token request, 51 requests need three windows of 20: two
            // waits of a minute, the fastest the limit allows.
            assert_eq!(took, Duration::minutes(2), "{took}");
        }
    }
}
