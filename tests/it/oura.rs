//! Oura against a local server that answers like its documented API v2
//! (tests/it/fake_oura.rs): the connect flow through the real callback, backfill and
//! re-sync, deletions, single-use refresh tokens with a crash after the refresh answer,
//! a refused refresh, 429 with Retry-After, webhook subscriptions and signed deliveries,
//! and verdicts judged from Oura data alone against hand-computed labels.

use crate::fake_oura::{self, FakeOura, FakeSleep, FakeWorkout, ALL_SCOPES, USER};
use crate::TestStore;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
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
    fake: FakeOura,
    reg: Arc<Registry>,
    app: coachd::app::App,
    base: String,
    client: i64,
    http: reqwest::Client,
}

/// Thursday 2026-11-20, 10:07 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time")
}

async fn env_at(now: DateTime<Utc>, tz: &str, backfill_days: u32) -> Env {
    env_with(now, tz, backfill_days, |_| {}).await
}

async fn env_with(
    now: DateTime<Utc>,
    tz: &str,
    backfill_days: u32,
    tune: impl FnOnce(&mut coachd::config::Config),
) -> Env {
    let fake = fake_oura::start(now).await;
    let ts = TestStore::new().await;
    let client = ts
        .store
        .add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client"))
        .await
        .expect("add client")
        .id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = fake_oura::config(&fake, &base);
    config.providers.backfill_days = backfill_days;
    tune(&mut config);
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    let app = coachd::app::App::from_parts(ts.store.clone(), Arc::new(config), reg.clone());
    let web = router(WebState::for_app(app.clone(), Health::default()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, web).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { ts, fake, reg, app, base, client, http }
}

async fn env() -> Env {
    env_at(t0(), "Europe/Berlin", 30).await
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).expect("url").query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn berlin() -> FixedOffset {
    FixedOffset::east_opt(3600).expect("offset")
}

impl Env {
    async fn callback(&self, query: &[(&str, &str)]) -> (u16, String) {
        let r =
            self.http.get(format!("{}/oauth/oura/callback", self.base)).query(query).send().await.expect("callback");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// The connect flow as the client's browser does it, granting `scopes`.
    async fn connect_as(&self, user: &str, scopes: &str) -> (u16, String) {
        let link = oauth::authorization_link(&self.reg, &self.ts.store, "oura", self.client).await.expect("link");
        let code = self.fake.issue_code(user, scopes);
        let state = param(&link, "state").expect("state");
        self.callback(&[("state", &state), ("code", &code), ("scope", scopes)]).await
    }

    async fn connect(&self) -> Account {
        let (status, body) = self.connect_as(USER, ALL_SCOPES).await;
        assert_eq!(status, 200, "{body}");
        self.account().await
    }

    async fn account(&self) -> Account {
        self.ts.store.account(self.client, "oura").await.expect("account")
    }

    async fn sync(&self) -> Report {
        sync_account(&self.reg, &self.ts.store, &self.account().await, 500).await.expect("sync")
    }

    async fn activities(&self) -> i64 {
        self.ts.store.row_counts().await.expect("counts").activities
    }

    fn workout(&self, id: &str, start: DateTime<FixedOffset>, minutes: i64) {
        let w = FakeWorkout { id: id.into(), activity: "running".into(), start, minutes, bpm: 150.0 };
        self.fake.lock().workouts.insert(id.into(), w);
    }
}

/// `days` days up to yesterday in Berlin: steps every day, a 7-hour night every night,
/// a 45-minute run every other evening.
fn seed(fake: &FakeOura, now: DateTime<Utc>, days: i64) {
    let mut s = fake.lock();
    let today = now.with_timezone(&berlin()).date_naive();
    for i in 1..=days {
        let d = today - Duration::days(i);
        s.steps.insert(d, 6000 + 100 * (i % 40));
        let bed = berlin().from_local_datetime(&d.and_hms_opt(23, 0, 0).expect("t")).single().expect("t");
        s.sleeps.push(FakeSleep {
            id: format!("s{i}"),
            kind: "long_sleep".into(),
            bedtime_start: bed,
            bedtime_end: bed + Duration::hours(8),
            total_s: 7 * 3600,
        });
        if i % 2 == 0 {
            let start = berlin().from_local_datetime(&d.and_hms_opt(18, 0, 0).expect("t")).single().expect("t");
            let id = format!("w{i}");
            s.workouts
                .insert(id.clone(), FakeWorkout { id, activity: "running".into(), start, minutes: 45, bpm: 148.0 });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_flow_checks_state_scopes_and_the_user_limit() {
    let e = env().await;
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "oura", e.client).await.expect("link");
    assert!(link.starts_with(&format!("{}/oauth/authorize?", e.fake.base)), "{link}");
    assert_eq!(param(&link, "scope").as_deref(), Some(ALL_SCOPES), "scopes space-separated");
    assert_eq!(param(&link, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&link, "client_id").as_deref(), Some(fake_oura::CLIENT_ID));
    assert_eq!(param(&link, "redirect_uri"), Some(format!("{}/oauth/oura/callback", e.base)));
    // A wrong state: refused, the code never sent to Oura, nothing stored.
    let code = e.fake.issue_code(USER, ALL_SCOPES);
    let (status, body) = e.callback(&[("state", &"f".repeat(64)), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown, used or expired"), "{body}");
    assert!(e.fake.lock().codes.contains_key(&code), "the code was not spent");
    assert!(e.ts.store.accounts().await.expect("accounts").is_empty());
    // The right state: connected, the Oura user id read from personal_info, tokens sealed.
    let state = param(&link, "state").expect("state");
    let (status, body) = e.callback(&[("state", &state), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Oura connected") && !body.contains("not enough"), "{body}");
    let a = e.account().await;
    assert_eq!((a.state.as_str(), a.external_user_id.as_deref()), (state::ACTIVE, Some(USER)));
    let t = e.ts.store.tokens(e.client, "oura").await.expect("tokens");
    assert!(t.access.expose().starts_with("oura-access-") && t.refresh.is_some() && t.expires.is_some());
    // Used once: the same state again is refused.
    let (status, _) = e.callback(&[("state", &state), ("code", &e.fake.issue_code(USER, ALL_SCOPES))]).await;
    assert_eq!(status, 400);
    // Heart rate and daily unticked: connected, with what cannot be read named, and every
    // sync says so; no request is made for what was not granted.
    let (status, body) = e.connect_as(USER, "personal workout").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("not enough") && body.contains("daily steps and sleep"), "{body}");
    assert!(body.contains("heart rate during workouts"), "{body}");
    assert_eq!(e.account().await.state, state::ACTIVE);
    e.workout("w1", berlin().with_ymd_and_hms(2026, 11, 19, 18, 0, 0).single().expect("t"), 30);
    let r = e.sync().await;
    assert_eq!(r.inserted, 1);
    assert!(r.skipped.iter().any(|s| s.contains("daily steps and sleep: not granted")), "{:?}", r.skipped);
    assert_eq!((e.fake.requests("heartrate"), e.fake.requests("sleep"), e.fake.requests("daily_activity")), (0, 0, 0));
    // Nothing coachd reads granted: the account says so.
    let (status, body) = e.connect_as(USER, "personal").await;
    assert_eq!(status, 200);
    assert!(body.contains("not enough"), "{body}");
    let a = e.account().await;
    assert_eq!(a.state, state::INSUFFICIENT_SCOPE);
    assert!(a.last_error.unwrap_or_default().contains("workout or daily"));
    // Declined at Oura.
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "oura", e.client).await.expect("link");
    let q = [("state", param(&link, "state").expect("state")), ("error", "access_denied".into())];
    let (status, body) = e.callback(&q.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(status, 400);
    assert!(body.contains("nothing was connected"), "{body}");
    // An application Oura has not approved is full: the trainer is told why and what to do.
    e.fake.lock().max_users = 1;
    let (status, body) = e.connect_as("another-oura-user", ALL_SCOPES).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at most 10 users") && body.contains("approve"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_a_resync_that_changes_nothing_and_deletions_that_disappear() {
    let e = env().await;
    seed(&e.fake, t0(), 30);
    let account = e.connect().await;
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    assert_eq!((r.inserted, r.updated, r.deleted), (15, 0, 0), "{r:?}");
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let tz = chrono_tz::Europe::Berlin;
    let today = t0().with_timezone(&tz).date_naive();
    let ev = e.ts.store.evidence(e.client, tz, today - Duration::days(31), today).await.expect("evidence");
    assert_eq!(ev.workouts.len(), 15);
    // The last one (November: Berlin is at +01:00, as the fake's times say).
    let w = ev.workouts.last().expect("a workout");
    assert_eq!((w.activity_type.as_str(), w.duration_s, w.utc_offset_s), ("run", 2700.0, 3600));
    assert_eq!(w.hr_samples, 541, "a reading every 5 s of the workout's span, kept as its samples");
    assert_eq!(w.start.with_timezone(&tz).format("%H:%M").to_string(), "18:00");
    let value = |m: coachd::model::Metric, d: NaiveDate| {
        ev.daily.iter().find(|v| v.metric == m && v.date == d).map(|v| v.value)
    };
    use coachd::model::Metric;
    let d = today - Duration::days(3);
    assert_eq!(value(Metric::Steps, d), Some(6300.0));
    // The night of the 16th (23:00-07:00 Berlin) is dated by the morning of the 17th.
    assert_eq!(value(Metric::SleepS, d), Some(7.0 * 3600.0));
    let bed =
        berlin().from_local_datetime(&(d - Duration::days(1)).and_hms_opt(23, 0, 0).expect("t")).single().expect("t");
    assert_eq!(value(Metric::SleepStart, d), Some(bed.timestamp() as f64));
    assert_eq!(value(Metric::SleepEnd, d), Some((bed + Duration::hours(8)).timestamp() as f64));
    // Again: the listings only, nothing written.
    let counts = e.ts.store.row_counts().await.expect("counts");
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert_eq!((r.inserted, r.updated, r.deleted, r.unchanged), (0, 0, 0, 1), "two days looked at again: {r:?}");
    assert_eq!(e.fake.lock().api_requests - before, 3, "workouts, daily activity, sleep");
    assert_eq!(e.ts.store.row_counts().await.expect("counts"), counts, "a re-sync changes nothing");
    // A workout deleted in the Oura app disappears at the next sync (checked: 404).
    e.fake.clock.advance(Duration::hours(2));
    e.fake.lock().workouts.remove("w2");
    let r = e.sync().await;
    assert_eq!(r.deleted, 1, "{r:?}");
    assert_eq!(e.activities().await, 14);
    // One outside the re-read span: the signed delete delivery, confirmed by a 404.
    e.fake.lock().workouts.remove("w20");
    let status = deliver(&e, "delete", "workout", "w20", e.fake.clock.now().timestamp(), true).await;
    assert_eq!(status, 200);
    wait_for(|| async { e.activities().await == 13 }).await;
    assert!(e.reg.pending.lock().expect("pending").contains(&account.id));
}

/// POST a delivery to /webhooks/oura, signed right (or with the wrong secret).
async fn deliver(e: &Env, event: &str, data: &str, id: &str, at: i64, right: bool) -> u16 {
    let body = format!(
        r#"{{"event_type":"{event}","data_type":"{data}","object_id":"{id}","event_time":"2026-11-20T10:08:00+00:00","user_id":"{USER}"}}"#
    );
    let secret = if right { fake_oura::CLIENT_SECRET } else { "not-the-secret" };
    let stamp = at.to_string();
    let r = e
        .http
        .post(format!("{}/webhooks/oura", e.base))
        .header("x-oura-timestamp", &stamp)
        .header("x-oura-signature", FakeOura::sign(secret, &stamp, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    r.status().as_u16()
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
async fn single_use_refresh_tokens_survive_a_crash_and_a_refused_one_needs_reauth() {
    let e = env().await;
    seed(&e.fake, t0(), 6);
    let account = e.connect().await;
    e.sync().await;
    // A day later the access token has expired: the sync refreshes first, spending the
    // refresh token, and stores the new pair.
    e.fake.clock.advance(Duration::hours(25));
    let r = e.sync().await;
    assert!(r.done);
    let stored = e.ts.store.tokens(e.client, "oura").await.expect("tokens");
    assert_eq!(e.fake.lock().refreshes, 1);
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), e.fake.refresh_token());
    // Expired again; the refresh is answered, then coachd "crashes" while its first
    // request hangs. The new pair was stored before anything used it.
    e.fake.clock.advance(Duration::hours(25));
    e.fake.lock().hang_next_api = true;
    let (reg, store, a) = (e.reg.clone(), e.ts.store.clone(), account.clone());
    let task = tokio::spawn(async move { sync_account(&reg, &store, &a, 500).await });
    wait_for(|| async { !e.fake.lock().hang_next_api }).await;
    task.abort();
    assert_eq!(e.fake.lock().refreshes, 2);
    let stored = e.ts.store.tokens(e.client, "oura").await.expect("tokens");
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), e.fake.refresh_token(), "the new pair survived");
    // After the restart: the stored token works; no refresh, no spent refresh token.
    let r = e.sync().await;
    assert!(r.done);
    let counts = {
        let s = e.fake.lock();
        (s.refreshes, s.spent_refreshes)
    };
    assert_eq!(counts, (2, 0));
    // Oura refuses the refresh token (revoked in the Oura app): needs_reauth, not a loop.
    e.fake.lock().refresh.clear();
    e.fake.clock.advance(Duration::hours(25));
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 500).await.expect_err("refused");
    assert!(err.to_string().contains("connect again"), "{err}");
    let a = e.account().await;
    assert_eq!(a.state, state::NEEDS_REAUTH);
    assert!(a.last_error.as_deref().unwrap_or_default().contains("Token already used or revoked"));
    let before = e.fake.lock().api_requests;
    let results = sync_all(&e.reg, &e.ts.store, &[a], &tokio_util::sync::CancellationToken::new()).await;
    assert!(results.iter().all(|(_, r)| matches!(r, Ok(r) if r.requests == 0)));
    assert_eq!(e.fake.lock().api_requests, before, "a needs_reauth account is not synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_honoured_with_its_retry_after() {
    let e = env().await;
    seed(&e.fake, t0(), 4);
    e.connect().await;
    let start = e.fake.clock.now();
    {
        let mut s = e.fake.lock();
        s.faults = vec![(429, r#"{"status": 429, "title": "Too Many Requests"}"#.into())];
        s.retry_after = Some("120".into());
    }
    let r = e.sync().await;
    assert!(r.done && r.inserted == 2, "{r:?}");
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(120) && waited < Duration::seconds(130), "waited {waited}");
    // The application's own window full (other installs of the app): 429 with the
    // seconds to its end; coachd waits that long and goes on.
    {
        let mut s = e.fake.lock();
        s.limit = 2;
        s.window = (e.fake.clock.now().timestamp(), 2);
    }
    e.fake.clock.advance(Duration::hours(1));
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    assert!(e.fake.lock().limited >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_subscriptions_kept_and_only_signed_fresh_deliveries_taken() {
    let e = env().await;
    let account = e.connect().await;
    // The handshake answers Oura's challenge with the install's verification token only.
    let token = coachd::providers::oura::verification_token(&e.reg, &e.ts.store).await.expect("token");
    let get = |t: &str| {
        let (http, url, t) = (e.http.clone(), format!("{}/webhooks/oura", e.base), t.to_string());
        async move {
            let r = http.get(url).query(&[("verification_token", t.as_str()), ("challenge", "abc123")]).send().await;
            let r = r.expect("get");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = get(&token).await;
    assert_eq!((status, body.as_str()), (200, r#"{"challenge":"abc123"}"#));
    assert_eq!(get("guess").await.0, 403);
    // `coachd subscribe oura`: nine subscriptions, each made after Oura's own handshake.
    let made = e.app.subscribe("oura").await.expect("subscribed");
    assert!(made.contains("9 made"), "{made}");
    let subs = e.fake.lock().subscriptions.clone();
    assert_eq!(subs.len(), 9);
    assert!(subs.iter().all(|s| s.callback_url == format!("{}/webhooks/oura", e.base)));
    // The daemon's upkeep: nothing to do now; renewals before expiration_time.
    let oura = coachd::providers::provider("oura").expect("oura");
    oura.upkeep(&e.reg, &e.ts.store).await.expect("upkeep");
    assert_eq!(e.fake.lock().renewals, 0);
    e.fake.clock.advance(Duration::days(28));
    oura.upkeep(&e.reg, &e.ts.store).await.expect("upkeep");
    assert_eq!(e.fake.lock().renewals, 9, "renewed 2 days before they expire");
    assert!(e.fake.lock().subscriptions.iter().all(|s| s.expiration > e.fake.clock.now() + Duration::days(29)));
    // Gone at Oura: made again at the next look (twelve hours on).
    e.fake.lock().subscriptions.retain(|s| s.data_type != "sleep");
    e.fake.clock.advance(Duration::hours(13));
    oura.upkeep(&e.reg, &e.ts.store).await.expect("upkeep");
    assert_eq!(e.fake.lock().subscriptions.len(), 9);
    // Deliveries: signed right and fresh ones ask for a sync; nothing else does anything.
    let now = e.fake.clock.now().timestamp();
    let pending = || e.reg.pending.lock().expect("pending").contains(&account.id);
    e.reg.pending.lock().expect("pending").clear();
    assert_eq!(deliver(&e, "update", "sleep", "s1", now, false).await, 401, "wrongly signed");
    assert_eq!(deliver(&e, "update", "sleep", "s1", now - 600, true).await, 401, "stale");
    let unsigned = e
        .http
        .post(format!("{}/webhooks/oura", e.base))
        .header("x-oura-timestamp", now.to_string())
        .body(format!(r#"{{"event_type":"update","data_type":"sleep","object_id":"s1","user_id":"{USER}"}}"#))
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401, "unsigned");
    assert!(!pending(), "a refused delivery asks for nothing");
    assert_eq!(deliver(&e, "create", "sleep", "s1", now, true).await, 200);
    wait_for(|| async { pending() }).await;
    // Another provider's URL still works as before, and an unknown one is not found.
    let r = e.http.post(format!("{}/webhooks/garmin", e.base)).body("{}").send().await.expect("post");
    assert_eq!(r.status(), 404);
}

/// Local time in Tokyo as Oura writes it.
fn tokyo(d: NaiveDate, h: u32, m: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(9 * 3600)
        .expect("offset")
        .from_local_datetime(&d.and_hms_opt(h, m, 0).expect("t"))
        .single()
        .expect("t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_from_oura_alone_match_hand_computed_labels_in_tokyo() {
    use coachd::engine::judge::Verdict::{self, Done, Missed, Partial};
    // Saturday 2026-11-21, 12:00 in Tokyo (03:00 UTC): every night below is over.
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).single().expect("time");
    let e = env_at(now, "Asia/Tokyo", 14).await;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
    {
        let mut s = e.fake.lock();
        let mut sleep =
            |id: &str, kind: &str, start: DateTime<FixedOffset>, end: DateTime<FixedOffset>, total_min: i64| {
                s.sleeps.push(FakeSleep {
                    id: id.into(),
                    kind: kind.into(),
                    bedtime_start: start,
                    bedtime_end: end,
                    total_s: total_min * 60,
                });
            };
        // Evening of the 15th: a night Oura split in two, 25 minutes awake between: one
        // night from 23:25, 90 + 350 = 440 min asleep (7 h 20).
        sleep("n15a", "sleep", tokyo(day(15), 23, 25), tokyo(day(16), 0, 55), 90);
        sleep("n15b", "long_sleep", tokyo(day(16), 1, 20), tokyo(day(16), 7, 20), 350);
        // Evening of the 16th: 22:40 to 06:10, 425 min asleep (7 h 05).
        sleep("n16", "long_sleep", tokyo(day(16), 22, 40), tokyo(day(17), 6, 10), 425);
        // Evening of the 17th: 23:20 to 06:30, 390 min (6 h 30).
        sleep("n17", "long_sleep", tokyo(day(17), 23, 20), tokyo(day(18), 6, 30), 390);
        // Evening of the 18th: to bed after midnight, 00:30 to 08:00, 420 min (7 h).
        sleep("n18", "long_sleep", tokyo(day(19), 0, 30), tokyo(day(19), 8, 0), 420);
        // Evening of the 19th: no night at all, only an afternoon nap and a rest period
        // the next day (neither is a night).
        sleep("n19nap", "late_nap", tokyo(day(20), 14, 0), tokyo(day(20), 15, 0), 55);
        sleep("n19rest", "rest", tokyo(day(20), 16, 0), tokyo(day(20), 17, 0), 0);
        for (d, steps) in [(15, 9100), (16, 8000), (17, 5200), (18, 3000), (19, 12000), (20, 8500)] {
            s.steps.insert(day(d), steps);
        }
    }
    e.connect().await;
    let r = e.sync().await;
    assert!(r.done && r.skipped.is_empty(), "{r:?}");
    let tz = chrono_tz::Asia::Tokyo;
    let ev = e.ts.store.evidence(e.client, tz, day(14), day(21)).await.expect("evidence");
    let cfg = e.ts.config.homework.judge_config();
    let mut homework = Vec::new();
    for phrase in ["7 hours of sleep nightly", "8000 steps a day", "in bed by 23:00"] {
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
    assert_eq!(verdicts(0), vec![(Done, 7.33), (Done, 7.08), (Partial, 6.5), (Done, 7.0), (Missed, 0.0)]);
    // Steps of each local day in Tokyo.
    assert_eq!(verdicts(1), vec![(Done, 9100.0), (Done, 8000.0), (Partial, 5200.0), (Missed, 3000.0), (Done, 12000.0)]);
    // In bed by 23:00 of each evening: the share kept falls by the minute late, 0 an hour
    // late; 23:25 keeps 0.58, 22:40 all of it, 23:20 0.67, 00:30 nothing, no night nothing.
    assert_eq!(verdicts(2), vec![(Partial, 0.58), (Done, 1.0), (Partial, 0.67), (Missed, 0.0), (Missed, 0.0)]);
}

/// The fewest requests a 90-day backfill can take: each collection's pages (an empty
/// one still costs a request), and one heart-rate request per workout.
fn minimum(workouts: usize, days: usize, nights: usize) -> usize {
    let pages = |n: usize| n.div_ceil(fake_oura::PAGE).max(1);
    pages(workouts) + workouts + pages(days) + pages(nights)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_day_backfill_takes_the_fewest_requests_inside_the_limits() {
    for limit in [5000u32, 25] {
        // A trainer whose application has a smaller budget says so in the manifest.
        let e = env_with(t0(), "Europe/Berlin", 90, |c| {
            let mut window = toml::Table::new();
            window.insert("name".into(), "5min".into());
            window.insert("seconds".into(), 300.into());
            window.insert("limit".into(), i64::from(limit).into());
            window.insert("aligned".into(), false.into());
            let window = toml::Value::Table(window);
            c.providers.get_mut("oura").manifest.insert("rate_limits".into(), toml::Value::Array(vec![window]));
        })
        .await;
        seed(&e.fake, t0(), 90);
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
            "Oura 90-day backfill, {limit} requests / 5 min: {} workouts, {used} requests (minimum {min}), {} refused \
             by the limit, simulated time {} s",
            r.inserted,
            e.fake.lock().limited,
            took.num_seconds()
        );
        assert_eq!(r.inserted, 45);
        assert_eq!(e.fake.lock().limited, 0, "coachd's own budget kept it under the limit");
        if limit == 5000 {
            assert_eq!(used, min, "requests used against the minimum possible");
            assert_eq!(took, Duration::zero(), "no waiting");
        } else {
            // Turns of a fair share of each window: a day-by-day part a turn could not
            // finish is asked again from its first page by the next turn.
            assert!(used <= min + 1, "{used} requests against {min}");
            // With the connect's own request, 51 or 52 requests need three windows of 25:
            // two waits of 5 minutes, the fastest the limit allows.
            assert_eq!(took, Duration::minutes(10), "{took}");
        }
    }
}
