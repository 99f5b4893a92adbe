//! WHOOP against a local server that answers like its documented API v2
//! (tests/it/fake_whoop.rs): the connect flow through the real callback, backfill and
//! re-sync, deletions, rotating refresh tokens with a crash after the refresh answer and
//! two processes at once, a refused refresh, 429s and the rate-limit headers, signed
//! webhook deliveries, the revocation of access, and verdicts judged from WHOOP alone
//! (zone 2 from its zone durations, sleep, the step homework it cannot judge) against
//! hand-computed labels in Tokyo.

use crate::fake_whoop::{self, FakeSleep, FakeWhoop, FakeWorkout, ALL_SCOPES, USER};
use crate::TestStore;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use coachd::model::Metric;
use coachd::providers::clock::Clock;
use coachd::providers::sync::{sync_account, sync_all, Report};
use coachd::providers::{oauth, Connection, Registry};
use coachd::source::Health;
use coachd::store::providers::{state, Account};
use coachd::store::NewClient;
use coachd::web::{router, WebState};
use std::sync::Arc;

struct Env {
    ts: TestStore,
    fake: FakeWhoop,
    reg: Arc<Registry>,
    app: coachd::app::App,
    config: coachd::config::Config,
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
    let fake = fake_whoop::start(now).await;
    let ts = TestStore::new().await;
    let client = ts
        .store
        .add_client(&NewClient::parse("alex", tz, Some(190), None).expect("client"))
        .await
        .expect("add client")
        .id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = fake_whoop::config(&fake, &base);
    config.providers.backfill_days = backfill_days;
    tune(&mut config);
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    let app = coachd::app::App::from_parts(ts.store.clone(), Arc::new(config.clone()), reg.clone());
    let web = router(WebState::for_app(app.clone(), Health::default()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, web).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { ts, fake, reg, app, config, base, client, http }
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
            self.http.get(format!("{}/oauth/whoop/callback", self.base)).query(query).send().await.expect("callback");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// The connect flow as the client's browser does it, granting `scopes`.
    async fn connect_as(&self, user: i64, scopes: &str) -> (u16, String) {
        let link = oauth::authorization_link(&self.reg, &self.ts.store, "whoop", self.client).await.expect("link");
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
        self.ts.store.account(self.client, "whoop").await.expect("account")
    }

    async fn sync(&self) -> Report {
        sync_account(&self.reg, &self.ts.store, &self.account().await, 500).await.expect("sync")
    }

    async fn activities(&self) -> i64 {
        self.ts.store.row_counts().await.expect("counts").activities
    }

    async fn daily(&self, m: Metric, d: NaiveDate) -> Option<f64> {
        let tz = self.ts.store.client_by_id(self.client).await.expect("client").tz;
        let ev = self.ts.store.evidence(self.client, tz, d, d).await.expect("evidence");
        ev.daily.iter().find(|v| v.metric == m && v.date == d && v.source == "whoop").map(|v| v.value)
    }
}

/// Local time in Berlin (+01:00 in November).
fn at_berlin(d: NaiveDate, h: u32, m: u32) -> DateTime<FixedOffset> {
    berlin().from_local_datetime(&d.and_hms_opt(h, m, 0).expect("t")).single().expect("t")
}

/// `days` days up to yesterday in Berlin: a night 23:00-07:00 with 45 minutes awake (7 h
/// 15 asleep) every night, a 45-minute run at 18:00 every other day.
fn seed(fake: &FakeWhoop, now: DateTime<Utc>, days: i64) {
    let mut s = fake.lock();
    let today = now.with_timezone(&berlin()).date_naive();
    for i in 1..=days {
        let d = today - Duration::days(i);
        let bed = at_berlin(d, 23, 0);
        s.sleeps.push(FakeSleep::night(&format!("s{i}"), bed, bed + Duration::hours(8), 45));
        if i % 2 == 0 {
            let id = format!("w{i}");
            s.workouts
                .insert(id.clone(), FakeWorkout::new(&id, "Running", at_berlin(d, 18, 0), 45, [3, 5, 25, 10, 2, 0]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_flow_checks_state_scopes_and_the_refresh_token() {
    let e = env().await;
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "whoop", e.client).await.expect("link");
    assert!(link.starts_with(&format!("{}/oauth/oauth2/auth?", e.fake.base)), "{link}");
    assert_eq!(param(&link, "scope").as_deref(), Some(ALL_SCOPES), "offline first, space-separated");
    assert_eq!(param(&link, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&link, "client_id").as_deref(), Some(fake_whoop::CLIENT_ID));
    assert_eq!(param(&link, "redirect_uri"), Some(format!("{}/oauth/whoop/callback", e.base)));
    assert!(param(&link, "state").is_some_and(|s| s.len() >= 8), "WHOOP wants a state of 8 characters or more");
    // A wrong state: refused, the code never sent to WHOOP, nothing stored.
    let code = e.fake.issue_code(USER, ALL_SCOPES);
    let (status, body) = e.callback(&[("state", &"f".repeat(64)), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown, used or expired"), "{body}");
    assert!(e.fake.lock().codes.contains_key(&code), "the code was not spent");
    assert!(e.ts.store.accounts().await.expect("accounts").is_empty());
    // The right state: connected, the WHOOP user id read from the profile, tokens sealed.
    let state = param(&link, "state").expect("state");
    let (status, body) = e.callback(&[("state", &state), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("WHOOP connected") && !body.contains("not enough"), "{body}");
    let a = e.account().await;
    assert_eq!((a.state.as_str(), a.external_user_id.as_deref()), (state::ACTIVE, Some("10129")));
    let t = e.ts.store.tokens(e.client, "whoop").await.expect("tokens");
    assert!(t.access.expose().starts_with("whoop-access-") && t.refresh.is_some() && t.expires.is_some());
    // Used once: the same state again is refused.
    let (status, _) = e.callback(&[("state", &state), ("code", &e.fake.issue_code(USER, ALL_SCOPES))]).await;
    assert_eq!(status, 400);
    // Without `offline` WHOOP gives no refresh token: said when connecting, and the
    // account needs the client again once the hour is over (not a retry loop).
    let (status, body) = e.connect_as(USER, "read:workout read:sleep read:profile read:body_measurement").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("offline") && body.contains("no refresh token"), "{body}");
    assert!(e.ts.store.tokens(e.client, "whoop").await.expect("tokens").refresh.is_none());
    e.fake.clock.advance(Duration::minutes(61));
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 50).await.expect_err("no refresh token");
    assert!(err.to_string().contains("no refresh token"), "{err}");
    assert_eq!(e.account().await.state, state::NEEDS_REAUTH);
    // Sleep only: connected, workouts named as what is missing, no workout request made.
    let (status, body) = e.connect_as(USER, "offline read:sleep read:profile").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("workouts with their time in heart-rate zones"), "{body}");
    let r = e.sync().await;
    assert!(r.skipped.iter().any(|s| s.contains("not granted (WHOOP scope read:workout)")), "{:?}", r.skipped);
    assert_eq!((e.fake.requests("workout"), e.fake.requests("measurement/body")), (0, 0));
    // Nothing coachd reads granted: the account says so.
    let (status, body) = e.connect_as(USER, "offline read:profile").await;
    assert_eq!(status, 200);
    assert!(body.contains("not enough"), "{body}");
    let a = e.account().await;
    assert_eq!(a.state, state::INSUFFICIENT_SCOPE);
    assert!(a.last_error.unwrap_or_default().contains("read:workout or read:sleep"));
    // Declined at WHOOP.
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "whoop", e.client).await.expect("link");
    let q = [("state", param(&link, "state").expect("state")), ("error", "access_denied".into())];
    let (status, body) = e.callback(&q.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(status, 400);
    assert!(body.contains("nothing was connected"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_a_resync_that_changes_nothing_and_deletions_that_disappear() {
    let e = env().await;
    seed(&e.fake, t0(), 30);
    let account = e.connect().await;
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    assert_eq!((r.inserted, r.updated, r.deleted), (15, 0, 0), "{r:?}");
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    // The max HR, one page of 15 workouts, two pages of 30 nights.
    assert_eq!(e.fake.lock().api_requests - before, 4);
    let tz = chrono_tz::Europe::Berlin;
    let today = t0().with_timezone(&tz).date_naive();
    let ev = e.ts.store.evidence(e.client, tz, today - Duration::days(31), today).await.expect("evidence");
    assert_eq!(ev.workouts.len(), 15);
    let w = ev.workouts.last().expect("a workout");
    assert_eq!((w.activity_type.as_str(), w.duration_s, w.utc_offset_s, w.hr_samples), ("run", 2700.0, 3600, 0));
    assert_eq!(w.start.with_timezone(&tz).format("%H:%M").to_string(), "18:00");
    let zones = w.parts[0].hr_zones.clone().expect("zone durations kept");
    assert_eq!(zones.max_hr, Some(fake_whoop::MAX_HR as u16), "counted against WHOOP's max HR");
    let minutes: Vec<(u8, i64)> = zones.bands.iter().map(|(b, ms)| (*b, ms / 60_000)).collect();
    assert_eq!(minutes, vec![(0, 3), (50, 5), (60, 25), (70, 10), (80, 2), (90, 0)]);
    assert_eq!((w.avg_hr, w.max_hr), (Some(131.0), Some(163)));
    // The night of the 16th (23:00-07:00 Berlin, 45 minutes awake) is dated by the
    // morning of the 17th: 7 h 15 asleep.
    let d = today - Duration::days(3);
    assert_eq!(e.daily(Metric::SleepS, d).await, Some((7.0 * 60.0 + 15.0) * 60.0));
    let bed = at_berlin(d - Duration::days(1), 23, 0);
    assert_eq!(e.daily(Metric::SleepStart, d).await, Some(bed.timestamp() as f64));
    assert_eq!(e.daily(Metric::SleepEnd, d).await, Some((bed + Duration::hours(8)).timestamp() as f64));
    assert_eq!(e.daily(Metric::Steps, d).await, None, "WHOOP has no steps");
    // Again: the listings only (the max HR is read once a day), nothing written.
    let counts = e.ts.store.row_counts().await.expect("counts");
    let before = e.fake.lock().api_requests;
    let r = e.sync().await;
    assert_eq!((r.inserted, r.updated, r.deleted, r.unchanged), (0, 0, 0, 1), "two days looked at again: {r:?}");
    assert_eq!(e.fake.lock().api_requests - before, 2, "workouts, sleep");
    assert_eq!(e.ts.store.row_counts().await.expect("counts"), counts, "a re-sync changes nothing");
    // A workout and a night deleted in the WHOOP app disappear at the next sync (the
    // workout checked: 404).
    e.fake.clock.advance(Duration::hours(2));
    {
        let mut s = e.fake.lock();
        s.workouts.remove("w2");
        s.sleeps.retain(|p| p.id != "s2");
    }
    assert!(e.daily(Metric::SleepS, today - Duration::days(1)).await.is_some());
    let r = e.sync().await;
    assert_eq!(r.deleted, 2, "{r:?}");
    assert_eq!(e.activities().await, 14);
    assert_eq!(e.daily(Metric::SleepS, today - Duration::days(1)).await, None, "the night of s2 is gone");
    assert_eq!(e.daily(Metric::SleepEnd, today - Duration::days(1)).await, None);
    // One outside the re-read span: the signed delete delivery, confirmed by a 404.
    e.fake.lock().workouts.remove("w20");
    let now_ms = e.fake.clock.now().timestamp_millis();
    let status = deliver(&e, "workout.deleted", "w20", now_ms, Some(fake_whoop::CLIENT_SECRET)).await;
    assert_eq!(status, 200);
    wait_for(|| async { e.activities().await == 13 }).await;
    assert!(e.reg.pending.lock().expect("pending").contains(&account.id));
}

/// POST a delivery to /webhooks/whoop, signed with `secret` (None: unsigned).
async fn deliver(e: &Env, kind: &str, id: &str, at_ms: i64, secret: Option<&str>) -> u16 {
    let body = format!(r#"{{"user_id":{USER},"id":"{id}","type":"{kind}","trace_id":"d3709ee7-104e-4f70"}}"#);
    let stamp = at_ms.to_string();
    let mut req = e
        .http
        .post(format!("{}/webhooks/whoop", e.base))
        .header("x-whoop-signature-timestamp", &stamp)
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        req = req.header("x-whoop-signature", FakeWhoop::sign(secret, &stamp, &body));
    }
    req.body(body).send().await.expect("post").status().as_u16()
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
async fn rotating_refresh_tokens_one_at_a_time_survive_a_crash_and_a_refused_one_needs_reauth() {
    let e = env().await;
    seed(&e.fake, t0(), 6);
    let account = e.connect().await;
    e.sync().await;
    // Two hours later the access token (an hour) has expired: the sync refreshes first,
    // naming `offline` again, and stores the rotated pair.
    e.fake.clock.advance(Duration::hours(2));
    let r = e.sync().await;
    assert!(r.done);
    let stored = e.ts.store.tokens(e.client, "whoop").await.expect("tokens");
    assert_eq!(e.fake.tally(|s| (s.refreshes, s.refreshes_without_offline)), (1, 0));
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), e.fake.refresh_token());
    // Expired again; the refresh is answered, then coachd "crashes" while its first
    // request hangs. The new pair was stored before anything used it.
    e.fake.clock.advance(Duration::hours(2));
    e.fake.lock().hang_next_api = true;
    let (reg, store, a) = (e.reg.clone(), e.ts.store.clone(), account.clone());
    let task = tokio::spawn(async move { sync_account(&reg, &store, &a, 500).await });
    wait_for(|| async { !e.fake.lock().hang_next_api }).await;
    task.abort();
    assert_eq!(e.fake.lock().refreshes, 2);
    let stored = e.ts.store.tokens(e.client, "whoop").await.expect("tokens");
    assert_eq!(stored.refresh.as_ref().map(|r| r.expose().clone()), e.fake.refresh_token(), "the new pair survived");
    // After the restart: the stored token works; no refresh, no spent token presented.
    let r = e.sync().await;
    assert!(r.done);
    assert_eq!(e.fake.tally(|s| (s.refreshes, s.reused_refreshes)), (2, 0));
    // Two processes (the daemon and a `coachd sync`) after the next expiry: one syncs
    // and refreshes, the other (a command, which waits for the account's sync lease) then
    // uses its pair; a second refresh would present a spent token, which WHOOP answers
    // by revoking the grant.
    e.fake.clock.advance(Duration::hours(2));
    let other = Arc::new(Registry::new(&e.config, e.fake.clock.clone()).expect("registry"));
    let stop = tokio_util::sync::CancellationToken::new();
    let (one, two) = tokio::join!(
        sync_account(&e.reg, &e.ts.store, &account, 500),
        sync_all(&other, &e.ts.store, std::slice::from_ref(&account), &stop)
    );
    let two = two.into_iter().next().expect("one account").1;
    assert!(one.is_ok_and(|r| r.done || r.elsewhere) && two.is_ok_and(|r| r.done));
    assert_eq!(e.fake.tally(|s| (s.refreshes, s.reused_refreshes)), (3, 0), "one refresh at a time");
    assert_eq!(e.account().await.state, state::ACTIVE);
    // WHOOP refuses the refresh token (the member removed the app): needs_reauth, not a loop.
    e.fake.lock().refresh.clear();
    e.fake.clock.advance(Duration::hours(2));
    let err = sync_account(&e.reg, &e.ts.store, &e.account().await, 500).await.expect_err("refused");
    assert!(err.to_string().contains("connect again"), "{err}");
    let a = e.account().await;
    assert_eq!(a.state, state::NEEDS_REAUTH);
    assert!(a.last_error.as_deref().unwrap_or_default().contains("invalid, expired, or revoked"), "{a:?}");
    let before = e.fake.lock().api_requests;
    let results = sync_all(&e.reg, &e.ts.store, &[a], &tokio_util::sync::CancellationToken::new()).await;
    assert!(results.iter().all(|(_, r)| matches!(r, Ok(r) if r.requests == 0)));
    assert_eq!(e.fake.lock().api_requests, before, "a needs_reauth account is not synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_honoured_and_the_rate_limit_headers_keep_coachd_under_the_limit() {
    let e = env().await;
    seed(&e.fake, t0(), 4);
    e.connect().await;
    // A 429 naming the window's reset in 30 s (no Retry-After): coachd waits that long.
    let start = e.fake.clock.now();
    {
        let mut s = e.fake.lock();
        s.faults = vec![(429, r#"{"error": "Too Many Requests"}"#.into())];
        s.fault_reset = 30;
    }
    let r = e.sync().await;
    assert!(r.done && r.inserted == 2, "{r:?}");
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(30) && waited < Duration::seconds(40), "waited {waited}");
    // With a Retry-After, that.
    e.fake.clock.advance(Duration::hours(1));
    let start = e.fake.clock.now();
    {
        let mut s = e.fake.lock();
        s.faults = vec![(429, r#"{"error": "Too Many Requests"}"#.into())];
        s.retry_after = Some("120".into());
    }
    assert!(e.sync().await.done);
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(120) && waited < Duration::seconds(130), "waited {waited}");
    e.fake.lock().retry_after = None;
    // Other installs of the app used 98 of this minute's 100: the headers tell coachd,
    // which waits for the window's reset instead of being refused. (A day on, so the
    // sync reads the max HR again too: three requests.)
    e.fake.clock.advance(Duration::hours(25));
    let (start, limited) = (e.fake.clock.now(), e.fake.lock().limited);
    e.fake.lock().minute = (start.timestamp(), 98);
    e.fake.clock.advance(Duration::seconds(5));
    let r = e.sync().await;
    assert!(r.done, "{r:?}");
    assert_eq!(e.fake.lock().limited, limited, "no request refused");
    let waited = e.fake.clock.now() - start;
    assert!(waited >= Duration::seconds(60) && waited < Duration::seconds(70), "waited for the minute: {waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_only_signed_fresh_deliveries_taken_as_hints() {
    let e = env().await;
    let account = e.connect().await;
    let now = e.fake.clock.now().timestamp_millis();
    let pending = || e.reg.pending.lock().expect("pending").contains(&account.id);
    e.reg.pending.lock().expect("pending").clear();
    let secret = Some(fake_whoop::CLIENT_SECRET);
    assert_eq!(deliver(&e, "sleep.updated", "s1", now, Some("not-the-secret")).await, 401, "wrongly signed");
    assert_eq!(deliver(&e, "sleep.updated", "s1", now - 600_000, secret).await, 401, "stale");
    assert_eq!(deliver(&e, "sleep.updated", "s1", now + 600_000, secret).await, 401, "from the future");
    assert_eq!(deliver(&e, "sleep.updated", "s1", now, None).await, 401, "unsigned");
    let body = format!(r#"{{"user_id":{USER},"id":"s1","type":"sleep.updated"}}"#);
    let no_stamp = e
        .http
        .post(format!("{}/webhooks/whoop", e.base))
        .header("x-whoop-signature", FakeWhoop::sign(fake_whoop::CLIENT_SECRET, "", &body))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(no_stamp.status(), 401, "no timestamp");
    // Signed right but not a WHOOP delivery.
    let stamp = now.to_string();
    let odd = e
        .http
        .post(format!("{}/webhooks/whoop", e.base))
        .header("x-whoop-signature-timestamp", &stamp)
        .header("x-whoop-signature", FakeWhoop::sign(fake_whoop::CLIENT_SECRET, &stamp, "[1]"))
        .body("[1]")
        .send()
        .await
        .expect("post");
    assert_eq!(odd.status(), 400);
    assert!(!pending(), "a refused delivery asks for nothing");
    // Recovery is not read; a delivery for a member coachd does not know changes nothing.
    assert_eq!(deliver(&e, "recovery.updated", "s1", now, secret).await, 200);
    assert!(!pending());
    // Signed right and fresh: a sync of that member's account is asked for.
    assert_eq!(deliver(&e, "sleep.updated", "ecfc6a15-4661-442f-a9a4-f160dd7afae8", now + 2000, secret).await, 200);
    wait_for(|| async { pending() }).await;
    e.reg.pending.lock().expect("pending").clear();
    assert_eq!(deliver(&e, "workout.updated", "w1", now - 290_000, secret).await, 200, "within 5 minutes");
    wait_for(|| async { pending() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_withdraws_access_at_whoop() {
    let e = env().await;
    seed(&e.fake, t0(), 2);
    let account = e.connect().await;
    let whoop = coachd::providers::provider("whoop").expect("whoop");
    let access = e.reg.tokens.auth(&e.reg, &e.ts.store, &account, false).await.expect("access");
    let c = Connection { reg: &e.reg, store: &e.ts.store, account: &account, access };
    assert!(whoop.revoke(c).await.expect("revoked"), "WHOOP's API revokes");
    assert_eq!(e.fake.tally(|s| (s.revocations, s.by_path.get("user/access").copied())), (1, Some(1)));
    assert!(e.fake.refresh_token().is_none() && e.fake.lock().access.is_empty(), "the grant is gone at WHOOP");
    // What coachd still holds no longer works: asked again, WHOOP answers 401, which
    // leaves nothing to revoke.
    let access = e.reg.tokens.auth(&e.reg, &e.ts.store, &account, false).await.expect("stored access");
    let c = Connection { reg: &e.reg, store: &e.ts.store, account: &account, access };
    assert!(whoop.revoke(c).await.expect("nothing left"), "already revoked");
    assert_eq!(e.fake.requests("user/access"), 2);
    // A failure at WHOOP is an error naming the answer.
    e.fake.lock().faults = vec![(500, r#"{"error": "Server error occurred while making request"}"#.into())];
    let access = e.reg.tokens.auth(&e.reg, &e.ts.store, &account, false).await.expect("stored access");
    let c = Connection { reg: &e.reg, store: &e.ts.store, account: &account, access };
    let err = whoop.revoke(c).await.expect_err("a 500");
    assert!(err.to_string().contains("500"), "{err}");
}

/// Local time in Tokyo as WHOOP's timezone_offset gives it.
fn tokyo(d: NaiveDate, h: u32, m: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(9 * 3600)
        .expect("offset")
        .from_local_datetime(&d.and_hms_opt(h, m, 0).expect("t"))
        .single()
        .expect("t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_from_whoop_alone_match_hand_computed_labels_in_tokyo() {
    use coachd::engine::judge::Verdict::{self, Done, Missed, NoData, Partial};
    // Monday 2026-11-23, 12:00 in Tokyo (03:00 UTC): the week of the 16th is over.
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).single().expect("time");
    let e = env_at(now, "Asia/Tokyo", 21).await;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
    {
        let mut s = e.fake.lock();
        let mut workout = |id: &str, sport: &str, start: DateTime<FixedOffset>, minutes: i64, zones: [i64; 6]| {
            s.workouts.insert(id.into(), FakeWorkout::new(id, sport, start, minutes, zones));
        };
        // Week of the 9th: one run with 35 minutes in zone 2.
        workout("w11", "running", tokyo(day(11), 18, 0), 40, [0, 2, 35, 3, 0, 0]);
        // Week of the 16th: Tuesday 32 minutes in zone 2 (6 in zone 3); Thursday a run
        // from 23:30 to 00:15, Thursday's (when it started), 31 minutes in zone 2;
        // Saturday a ride with only 25.
        workout("w17", "running", tokyo(day(17), 7, 0), 50, [2, 10, 32, 6, 0, 0]);
        workout("w19", "running", tokyo(day(19), 23, 30), 45, [1, 5, 31, 8, 0, 0]);
        workout("w21", "cycling", tokyo(day(21), 10, 0), 60, [3, 2, 25, 30, 0, 0]);
        // Nights, each crossing midnight; in UTC every one of them ends a day earlier
        // (06:40 in Tokyo is 21:40 UTC the day before).
        let mut night = |p: FakeSleep| s.sleeps.push(p);
        // Evening of the 16th: 23:10-06:40 (450 min), 20 awake: 430 min (7 h 10).
        night(FakeSleep::night("n16", tokyo(day(16), 23, 10), tokyo(day(17), 6, 40), 20));
        // Evening of the 17th: 22:30-05:50 (440 min), 35 awake, 5 without data: 400 min.
        let mut n17 = FakeSleep::night("n17", tokyo(day(17), 22, 30), tokyo(day(18), 5, 50), 35);
        n17.no_data_min = 5;
        night(n17);
        // Evening of the 18th, split in two by 30 minutes up: 23:40-01:30 (110, 5 awake)
        // and 02:00-07:30 (330, 10 awake): one night of 105 + 320 = 425 min.
        night(FakeSleep::night("n18a", tokyo(day(18), 23, 40), tokyo(day(19), 1, 30), 5));
        night(FakeSleep::night("n18b", tokyo(day(19), 2, 0), tokyo(day(19), 7, 30), 10));
        // Evening of the 19th: to bed after midnight, 00:45-08:15 (450), 25 awake: 425.
        night(FakeSleep::night("n19", tokyo(day(20), 0, 45), tokyo(day(20), 8, 15), 25));
        // Evening of the 20th: no night, only a nap the next afternoon.
        let mut nap = FakeSleep::night("nap21", tokyo(day(21), 14, 0), tokyo(day(21), 15, 30), 5);
        nap.nap = true;
        night(nap);
    }
    e.connect().await;
    let r = e.sync().await;
    assert!(r.done && r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.inserted, 4);
    // Dated by the wake-up day in Tokyo, not in UTC.
    assert_eq!(e.daily(Metric::SleepS, day(17)).await, Some(430.0 * 60.0));
    assert_eq!(e.daily(Metric::SleepS, day(16)).await, None);
    let client = e.ts.store.client_by_id(e.client).await.expect("client");
    let mut ids = Vec::new();
    for phrase in [
        "30 min zone 2 twice a week",
        "7 hours of sleep nightly",
        "30 minutes of cardio",
        "8000 steps a day",
        "in bed by 23:00",
    ] {
        let rule = coachd::engine::phrase::parse(phrase).expect("phrase");
        ids.push(e.ts.store.add_homework(e.client, &rule, day(9), None).await.expect("homework").homework.id);
    }
    let report = e.app.status(std::slice::from_ref(&client), day(9), day(22), now).await.expect("status");
    let of = |i: usize, from: u32, to: u32| {
        report
            .occurrences
            .iter()
            .filter(|o| o.homework_id == ids[i] && o.date >= day(from) && o.date <= day(to))
            .map(|o| (o.verdict, o.achieved))
            .collect::<Vec<(Verdict, f64)>>()
    };
    // Days with at least 30 minutes in zone 2, from WHOOP's zone durations (its max HR
    // and coachd's are both 190: zone for zone): one in the week of the 9th, two in the
    // week of the 16th (Tuesday and Thursday; Saturday's 25 do not make a day).
    assert_eq!(of(0, 9, 16), vec![(Partial, 1.0), (Done, 2.0)]);
    // Hours asleep in the night that starts each evening (dated by its morning).
    assert_eq!(of(1, 16, 20), vec![(Done, 7.17), (Partial, 6.67), (Done, 7.08), (Done, 7.08), (Missed, 0.0)]);
    // Cardio minutes from 64 % of HR max: zone 3 and up, and 6/10 of zone 2 (60-70 %):
    // Tuesday 0.6 × 32 + 6, Thursday 0.6 × 31 + 8, Saturday 0.6 × 25 + 30.
    assert_eq!(of(2, 17, 21), vec![(Partial, 25.2), (Missed, 0.0), (Partial, 26.6), (Missed, 0.0), (Done, 45.0)]);
    // In bed by 23:00 (the share kept falls by the minute late): 23:10 keeps 0.83, 22:30
    // all of it, 23:40 0.33 (under half: missed), 00:45 nothing, no night nothing.
    assert_eq!(of(4, 16, 20), vec![(Partial, 0.83), (Done, 1.0), (Missed, 0.33), (Missed, 0.0), (Missed, 0.0)]);
    // Steps: WHOOP gives none, and nothing else of this client could: never missed, and
    // said why.
    let steps: Vec<_> = report.occurrences.iter().filter(|o| o.homework_id == ids[3] && o.date <= day(22)).collect();
    assert!(!steps.is_empty());
    for o in &steps {
        assert_eq!(o.verdict, NoData, "{o:?}");
        let note = o.note.as_deref().unwrap_or_default();
        assert!(
            note.starts_with("WHOOP does not give steps, so this cannot be judged: connect a step source"),
            "{note}"
        );
    }
    // Had coachd's HR max for the client been 200 (WHOOP's still 190), zone 2 (120-140
    // bpm) is 63.2-73.7 % of WHOOP's max: 6.84/10 of WHOOP's zone 2 and 3.68/10 of its
    // zone 3. Tuesday: 0.684 × 32 + 0.368 × 6 = 24.11 minutes, not enough.
    let tz = chrono_tz::Asia::Tokyo;
    let ev = e.ts.store.evidence(e.client, tz, day(9), day(22)).await.expect("evidence");
    let cfg = e.app.judging().cfg;
    let daily = coachd::engine::phrase::parse("30 min zone 2").expect("phrase");
    let hw = coachd::engine::judge::Homework {
        id: 99,
        client: "alex".into(),
        text: daily.to_string().into(),
        rule: daily,
        from: day(9),
        until: None,
    };
    let judge = |d: u32, max: f64| coachd::engine::judge::judge(&hw, &cfg, tz, Some(max), day(d), &ev, now);
    assert_eq!((judge(17, 190.0).achieved, judge(19, 190.0).achieved), (32.0, 31.0));
    assert_eq!((judge(17, 200.0).verdict, judge(17, 200.0).achieved), (Partial, 24.11));
    assert_eq!(judge(19, 200.0).achieved, 24.16);
    // A step source joins (an Apple Health export with Thursday's steps): the step
    // homework is judged again, and no longer said to be unjudgeable.
    let mut batch = coachd::model::Batch::new("apple");
    batch.daily.push(coachd::model::DailyMetric {
        client_id: e.client,
        date: day(19),
        metric: Metric::Steps,
        value: 9100.0,
    });
    e.ts.store.ingest(&batch).await.expect("ingest");
    let report = e.app.status(std::slice::from_ref(&client), day(16), day(22), now).await.expect("status");
    let steps: Vec<_> = report.occurrences.iter().filter(|o| o.homework_id == ids[3]).collect();
    assert!(steps.iter().all(|o| o.note.is_none()), "{steps:?}");
    let thursday = steps.iter().find(|o| o.date == day(19)).expect("thursday");
    assert_eq!((thursday.verdict, thursday.achieved), (Done, 9100.0));
    let tuesday = steps.iter().find(|o| o.date == day(17)).expect("tuesday");
    assert_eq!(tuesday.verdict, NoData, "a day only WHOOP saw is no day without steps");
}

/// The fewest requests a 90-day backfill can take: the max HR once, each collection's
/// pages of 25 (an empty one still costs a request); WHOOP's workouts carry their zones,
/// so there is no request per workout.
fn minimum(workouts: usize, nights: usize) -> usize {
    let pages = |n: usize| n.div_ceil(fake_whoop::PAGE).max(1);
    1 + pages(workouts) + pages(nights)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_day_backfill_takes_the_fewest_requests_inside_the_limits() {
    for limit in [100u32, 3] {
        // A trainer whose application has a smaller budget says so in the manifest.
        let e = env_with(t0(), "Europe/Berlin", 90, |c| {
            let window = |name: &str, seconds: i64, limit: u32| {
                let mut w = toml::Table::new();
                w.insert("name".into(), name.into());
                w.insert("seconds".into(), seconds.into());
                w.insert("limit".into(), i64::from(limit).into());
                w.insert("aligned".into(), false.into());
                toml::Value::Table(w)
            };
            let windows = vec![window("minute", 60, limit), window("daily", 86_400, 10_000)];
            c.providers.get_mut("whoop").manifest.insert("rate_limits".into(), toml::Value::Array(windows));
        })
        .await;
        seed(&e.fake, t0(), 90);
        e.fake.lock().minute_limit = limit;
        e.connect().await;
        let (before, started) = (e.fake.lock().api_requests, e.fake.clock.now());
        let results =
            sync_all(&e.reg, &e.ts.store, &[e.account().await], &tokio_util::sync::CancellationToken::new()).await;
        let r = results[0].1.as_ref().expect("backfill");
        let used = (e.fake.lock().api_requests - before) as usize;
        let took = e.fake.clock.now() - started;
        let min = minimum(45, 90);
        println!(
            "WHOOP 90-day backfill, {limit} requests / minute: {} workouts, {used} requests (minimum {min}), {} refused \
             by the limit, simulated time {} s",
            r.inserted,
            e.fake.lock().limited,
            took.num_seconds()
        );
        assert_eq!(r.inserted, 45);
        assert_eq!(e.fake.lock().limited, 0, "coachd's own budget kept it under the limit");
        assert_eq!(e.daily(Metric::SleepS, t0().date_naive() - Duration::days(89)).await, Some(26_100.0));
        if limit == 100 {
            assert_eq!(used, min, "requests used against the minimum possible");
            assert_eq!(took, Duration::zero(), "no waiting");
        } else {
            // Turns of at least 5 requests: the sleep (four pages) that a turn could not
            // finish is asked again from its first page by the next turn, so 9 requests
            // against 7, and (with the connect's own) three waits of a minute where 8
            // requests in windows of 3 could take two.
            assert!(used <= min + 2, "{used} requests against {min}");
            assert!(took <= Duration::minutes(3), "{took}");
        }
    }
}
