//! Cloud providers against local servers that answer like the providers' documented
//! APIs (tests/it/fake_strava.rs): the connect flow, token refresh with rotation and a
//! crash after it, 429s, 5xx and malformed JSON, a 1,000-activity backfill inside the
//! limits with the fewest requests, webhook events, re-sync changing nothing.

use crate::fake_strava::{self, Fake, ATHLETE};
use crate::{coachd, TestStore};
use chrono::{DateTime, Duration, TimeZone, Utc};
use coachd::providers::clock::Clock;
use coachd::providers::sync::{sync_account, sync_all};
use coachd::providers::{oauth, ProviderError, Registry};
use coachd::source::Health;
use coachd::store::providers::{state, Account};
use coachd::web::{router, WebState};
use std::sync::Arc;

pub struct Env {
    pub ts: TestStore,
    pub fake: Fake,
    pub reg: Arc<Registry>,
    pub base: String,
    pub client: i64,
    pub http: reqwest::Client,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time")
}

pub async fn env_with(backfill_days: u32) -> Env {
    let fake = fake_strava::start(t0()).await;
    let ts = TestStore::new().await;
    let client = ts.client("alex").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = fake_strava::config(&fake, &base);
    config.providers.backfill_days = backfill_days;
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    let app = coachd::app::App::from_parts(ts.store.clone(), Arc::new(config), reg.clone());
    let state = WebState::for_app(app, Health::default());
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { ts, fake, reg, base, client, http }
}

async fn env() -> Env {
    env_with(30).await
}

/// Connect the client's intervals.icu account with an API key.
async fn connect_key(e: &Env, key: &str) -> Result<String, ProviderError> {
    coachd::providers::connect_key(&e.reg, &e.ts.store, "intervals", e.client, key).await
}

fn param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).expect("url");
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Env {
    async fn callback(&self, query: &[(&str, &str)]) -> (u16, String) {
        let r =
            self.http.get(format!("{}/oauth/strava/callback", self.base)).query(query).send().await.expect("callback");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// The whole connect flow, as the client's browser does it.
    async fn connect(&self) -> Account {
        let link = oauth::authorization_link(&self.reg, &self.ts.store, "strava", self.client).await.expect("link");
        let state = param(&link, "state").expect("state");
        let code = self.fake.issue_code();
        let (status, body) =
            self.callback(&[("state", &state), ("code", &code), ("scope", "read,activity:read_all")]).await;
        assert_eq!(status, 200, "{body}");
        self.ts.store.account(self.client, "strava").await.expect("account")
    }

    async fn account(&self) -> Account {
        self.ts.store.account(self.client, "strava").await.expect("account")
    }

    async fn activity_count(&self) -> i64 {
        self.ts.store.row_counts().await.expect("counts").activities
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_flow_checks_state_and_scopes() {
    let e = env().await;
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "strava", e.client).await.expect("link");
    assert!(link.starts_with(&format!("{}/oauth/authorize?", e.fake.base)), "{link}");
    assert_eq!(param(&link, "client_id").as_deref(), Some(fake_strava::CLIENT_ID));
    assert_eq!(param(&link, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&link, "scope").as_deref(), Some("read,activity:read_all"));
    assert_eq!(param(&link, "approval_prompt").as_deref(), Some("auto"));
    assert_eq!(param(&link, "redirect_uri"), Some(format!("{}/oauth/strava/callback", e.base)));
    let state = param(&link, "state").expect("state");
    assert_eq!(state.len(), 64);
    // A wrong or missing state: refused, nothing stored, the code not spent.
    let code = e.fake.issue_code();
    for q in [vec![("state", "0".repeat(64)), ("code", code.clone())], vec![("code", code.clone())]] {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = e.callback(&q).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("Not connected"));
    }
    assert!(e.ts.store.accounts().await.expect("accounts").is_empty());
    assert_eq!(e.fake.lock().codes.len(), 1, "the code was never sent to Strava");
    // The right state: connected, athlete id kept, tokens sealed.
    let (status, body) = e.callback(&[("state", &state), ("code", &code), ("scope", "read,activity:read_all")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Strava connected"));
    let a = e.account().await;
    assert_eq!((a.state.as_str(), a.external_user_id.as_deref()), (state::ACTIVE, Some(ATHLETE.to_string().as_str())));
    let t = e.ts.store.tokens(e.client, "strava").await.expect("tokens");
    assert!(t.access.expose().starts_with("access-") && t.refresh.is_some());
    // The state is single use.
    let (status, _) = e.callback(&[("state", &state), ("code", &e.fake.issue_code())]).await;
    assert_eq!(status, 400);
    // The client unticked "View data about your private activities" and more.
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "strava", e.client).await.expect("link");
    let (status, body) = e
        .callback(&[
            ("state", &param(&link, "state").expect("state")),
            ("code", &e.fake.issue_code()),
            ("scope", "read"),
        ])
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("not enough"), "{body}");
    let a = e.account().await;
    assert_eq!(a.state, state::INSUFFICIENT_SCOPE);
    assert!(a.last_error.unwrap_or_default().contains("activity:read_all or activity:read"));
    // Declined at Strava.
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "strava", e.client).await.expect("link");
    let (status, body) =
        e.callback(&[("state", &param(&link, "state").expect("state")), ("error", "access_denied")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("nothing was connected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_once_at_a_time_and_survives_a_crash() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(3, t0() - Duration::hours(1));
    e.fake.clock.advance(Duration::hours(7));
    // Two users of the expired token at once: one refresh.
    let (a, b) = tokio::join!(
        e.reg.tokens.auth(&e.reg, &e.ts.store, &account, false),
        e.reg.tokens.auth(&e.reg, &e.ts.store, &account, false)
    );
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(e.fake.lock().refreshes, 1);
    let stored = e.ts.store.tokens(e.client, "strava").await.expect("tokens");
    assert_eq!(
        stored.refresh.as_ref().map(|r| r.expose().clone()),
        e.fake.refresh_token(),
        "the rotated refresh token is stored"
    );
    // Expire again; the sync refreshes, then "crashes" while its first request hangs.
    e.fake.clock.advance(Duration::hours(7));
    e.fake.lock().hang_next_api = true;
    let (reg, store) = (e.reg.clone(), e.ts.store.clone());
    let task = tokio::spawn(async move { sync_account(&reg, &store, &account, 50).await });
    for _ in 0..200 {
        if !e.fake.lock().hang_next_api {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!e.fake.lock().hang_next_api, "the request after the refresh arrived");
    task.abort();
    assert_eq!(e.fake.lock().refreshes, 2);
    let stored = e.ts.store.tokens(e.client, "strava").await.expect("tokens");
    assert_eq!(
        stored.refresh.as_ref().map(|r| r.expose().clone()),
        e.fake.refresh_token(),
        "the new pair survived the crash"
    );
    // After the "restart": the stored token works, no further refresh needed.
    let account = e.account().await;
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!(r.inserted, 3);
    assert_eq!(e.fake.lock().refreshes, 2);
    // A dead refresh token is an account state, not a retry loop.
    e.fake.lock().refresh.insert(ATHLETE, "someone-else".into());
    e.fake.clock.advance(Duration::hours(7));
    let err = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect_err("cannot refresh");
    assert!(err.to_string().contains("connect again"), "{err}");
    let a = e.account().await;
    assert_eq!(a.state, state::NEEDS_REAUTH);
    let before = e.fake.lock().api_requests;
    let results = sync_all(&e.reg, &e.ts.store, &[a], &tokio_util::sync::CancellationToken::new()).await;
    assert!(results.iter().all(|(_, r)| matches!(r, Ok(r) if r.requests == 0)), "a needs_reauth account is not synced");
    assert_eq!(e.fake.lock().api_requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_for_the_next_window() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(3, t0() - Duration::hours(1));
    // Someone else (another install of the app) used the window up.
    {
        let mut s = e.fake.lock();
        let t = t0().timestamp();
        s.q = (t - t.rem_euclid(900), 100);
        s.d = (t - t.rem_euclid(86400), 100);
    }
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!(r.inserted, 3);
    assert_eq!(e.fake.lock().limited, 1, "one 429, then coachd waited");
    let quarter = Utc.with_ymd_and_hms(2026, 11, 20, 10, 15, 0).single().expect("time");
    assert!(e.fake.clock.now() >= quarter, "waited until :15 ({})", e.fake.clock.now());
    assert!(e.fake.clock.now() < quarter + Duration::minutes(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_malformed_json_changes_nothing() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(2, t0() - Duration::hours(1));
    e.fake.lock().faults = vec![(500, "Internal Server Error".into()), (503, String::new())];
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync after retries");
    assert_eq!(r.inserted, 2);
    let before = e.activity_count().await;
    let cursor = e.ts.store.cursor("strava", &format!("account:{}", account.id)).await.expect("cursor");
    let later = fake_strava::FakeActivity {
        id: 42,
        start: t0() + Duration::hours(2),
        minutes: 20,
        sport: "Ride".into(),
        hr: false,
        name: "later".into(),
    };
    e.fake.lock().activities.insert(42, later);
    e.fake.clock.advance(Duration::hours(3));
    // One body cut short is asked again; the same broken body every time gives up.
    e.fake.lock().faults = vec![(200, "[{\"id\": 1, \"start_date\": ".into()); 5];
    let err = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect_err("malformed");
    assert!(err.to_string().contains("not what the provider documents"), "{err}");
    let a = e.account().await;
    assert_eq!(a.state, state::ACTIVE, "a bad response is not the account's fault");
    assert!(a.last_error.unwrap_or_default().contains("not what the provider documents"));
    assert_eq!(e.activity_count().await, before, "nothing stored from a broken page");
    assert_eq!(e.ts.store.cursor("strava", &format!("account:{}", account.id)).await.expect("cursor"), cursor);
    // Five failures in a row give up for this turn, with the reason.
    e.fake.lock().faults = vec![(502, String::new()); 5];
    let err = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect_err("keeps failing");
    assert!(err.to_string().contains("keeps failing"), "{err}");
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("recovered");
    assert_eq!(r.inserted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_1000_stays_inside_the_limits_with_the_fewest_requests() {
    let e = env_with(600).await;
    let account = e.connect().await;
    e.fake.add_activities(1000, t0() - Duration::hours(1));
    let started = e.fake.clock.now();
    let stop = tokio_util::sync::CancellationToken::new();
    let results = sync_all(&e.reg, &e.ts.store, std::slice::from_ref(&account), &stop).await;
    let r = results[0].1.as_ref().expect("backfill");
    assert_eq!(r.inserted, 1000);
    let (lists, streams, all, limited) = {
        let s = e.fake.lock();
        (s.list_requests, s.stream_requests, s.api_requests, s.limited)
    };
    // 5 full pages of 200, one page that comes back empty, one stream per activity.
    assert_eq!((lists, streams, all), (6, 1000, 1006));
    assert_eq!(limited, 0, "coachd's own scheduling never hit a limit");
    let took = e.fake.clock.now() - started;
    // 1,000 reads fit a day's budget, so the last 6 wait for midnight UTC.
    assert!(took > Duration::hours(13) && took < Duration::hours(15), "simulated time {took}");
    assert_eq!(e.activity_count().await, 1000);
    // Re-sync: one listing request, nothing written.
    let counts = e.ts.store.row_counts().await.expect("counts");
    let before = e.fake.lock().api_requests;
    let results = sync_all(&e.reg, &e.ts.store, &[e.account().await], &stop).await;
    let r = results[0].1.as_ref().expect("resync");
    assert_eq!((r.inserted, r.updated, r.deleted), (0, 0, 0));
    assert_eq!(e.fake.lock().api_requests - before, 1);
    assert_eq!(e.ts.store.row_counts().await.expect("counts"), counts, "re-sync changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_delete_update_and_deauthorize() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(3, t0() - Duration::hours(1));
    sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!(e.activity_count().await, 3);
    // The subscription handshake.
    let token = e.ts.store.meta_secret("strava_webhook_verify_token").await.expect("token");
    let r = e
        .http
        .get(format!("{}/webhooks/strava", e.base))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "15f7d1a91c1f40f8a748fd134752feb3"),
            ("hub.verify_token", token.as_str()),
        ])
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.expect("json")["hub.challenge"], "15f7d1a91c1f40f8a748fd134752feb3");
    let r = e
        .http
        .get(format!("{}/webhooks/strava", e.base))
        .query(&[("hub.mode", "subscribe"), ("hub.challenge", "x"), ("hub.verify_token", "guess")])
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
    let post = |body: serde_json::Value| {
        let (http, url) = (e.http.clone(), format!("{}/webhooks/strava", e.base));
        async move { http.post(url).json(&body).send().await.expect("post").status().as_u16() }
    };
    let event = |kind: &str, id: i64, aspect: &str, updates: serde_json::Value| {
        serde_json::json!({"object_type": kind, "object_id": id, "aspect_type": aspect, "owner_id": ATHLETE,
                           "subscription_id": 120475, "event_time": 1516126040, "updates": updates})
    };
    // A deletion claimed while Strava still has the activity: ignored.
    assert_eq!(post(event("activity", 1_000_000, "delete", serde_json::json!({}))).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(e.activity_count().await, 3);
    // Deleted at Strava: deleted here.
    e.fake.lock().activities.remove(&1_000_000);
    assert_eq!(post(event("activity", 1_000_000, "delete", serde_json::json!({}))).await, 200);
    wait_for(|| async { e.activity_count().await == 2 }).await;
    // A claimed deauthorization while the token still works: ignored.
    let deauth = event("athlete", ATHLETE, "update", serde_json::json!({"authorized": "false"}));
    assert_eq!(post(deauth.clone()).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(e.account().await.state, state::ACTIVE);
    e.fake.lock().deauthorized = true;
    assert_eq!(post(deauth).await, 200);
    wait_for(|| async { e.account().await.state == state::REVOKED }).await;
    assert!(e.account().await.last_error.unwrap_or_default().contains("connect again"));
    // Creating the subscription: Strava's check reaches the callback and gets its challenge back.
    let id = coachd::providers::strava::subscribe(&e.reg, &token).await.expect("subscribed");
    assert_eq!(id, 120475);
    let err = coachd::providers::strava::subscribe(&e.reg, "not the daemon's token").await.expect_err("refused");
    assert!(err.to_string().contains("refused the subscription"), "{err}");
    // Garbage is refused.
    let r = e.http.post(format!("{}/webhooks/strava", e.base)).body("{").send().await.expect("post");
    assert_eq!(r.status(), 400);
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
async fn intervals_icu_with_an_api_key() {
    let e = env().await;
    e.fake.lock().intervals_key = Some("k3y".into());
    e.fake.add_activities(4, t0() - Duration::hours(1));
    let err = connect_key(&e, "wrong").await.expect_err("refused");
    assert!(matches!(err, ProviderError::Refused(_)) && err.to_string().contains("refused the API key"), "{err}");
    connect_key(&e, "k3y").await.expect("connected");
    let account = e.ts.store.account(e.client, "intervals").await.expect("account");
    assert_eq!(account.external_user_id.as_deref(), Some("i12345"));
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!((r.inserted, r.listed), (4, 4));
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("resync");
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 0, 4));
    let tz = chrono_tz::Europe::Berlin;
    let ev =
        e.ts.store
            .evidence(e.client, tz, (t0() - Duration::days(3)).date_naive(), t0().date_naive())
            .await
            .expect("ev");
    assert!(ev.workouts.iter().all(|w| w.hr_samples > 1000 && w.sources == vec!["intervals".to_string()]));
}

#[test]
fn the_command_line_connects_and_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let out = coachd(&data).args(["connect", "strava", "alex"]).assert().code(2).get_output().stderr.clone();
    assert!(String::from_utf8_lossy(&out).contains("providers.strava.client_id"), "{}", String::from_utf8_lossy(&out));
    let out = coachd(&data)
        .args(["connect", "strava", "alex"])
        .env("COACHD__PROVIDERS__STRAVA__CLIENT_ID", "4711")
        .env("COACHD__PROVIDERS__STRAVA__CLIENT_SECRET", "s3cret")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let link = String::from_utf8_lossy(&out);
    assert!(link.starts_with("https://www.strava.com/oauth/authorize?") && link.contains("client_id=4711"), "{link}");
    assert!(!link.contains("s3cret"));
    coachd(&data).args(["connect", "garmin", "alex"]).assert().code(2);
    coachd(&data).args(["connect", "intervals", "alex"]).assert().code(2);
    let out = coachd(&data).args(["accounts", "list"]).assert().success().get_output().stdout.clone();
    assert!(String::from_utf8_lossy(&out).contains("no accounts yet"));
    coachd(&data).args(["sync"]).assert().code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polar_registers_the_user_syncs_exercises_and_verifies_webhooks() {
    let e = env().await;
    {
        let mut s = e.fake.lock();
        s.polar_exercises = vec![serde_json::json!({
            "id": "2AC312F", "upload_time": "2026-11-20T09:40:02Z", "polar_user": "https://www.polaraccesslink.com/v3/users/475",
            "device": "Polar Vantage V3", "device_id": "1111AAAA", "start_time": "2026-11-20T08:10:00",
            "start_time_utc_offset": 60, "duration": "PT45M", "calories": 530, "distance": 7600,
            "heart_rate": {"average": 139, "maximum": 171}, "training_load": 143.22, "sport": "RUNNING",
            "has_route": true, "detailed_sport_info": "RUNNING",
            "samples": [{"recording_rate": 5, "sample_type": "0", "data": (0..540).map(|i| (120 + i % 40).to_string()).collect::<Vec<_>>().join(",")},
                        {"recording_rate": 5, "sample_type": "1", "data": "10,11,12"}]
        })];
        s.polar_days = vec![
            serde_json::json!({"start_time": "2026-11-19T00:00:00", "end_time": "2026-11-19T23:59:59", "steps": 9120}),
            serde_json::json!({"start_time": "2026-11-20T00:00:00", "end_time": "2026-11-20T11:00:00", "steps": 3004}),
        ];
    }
    let account = polar_account(&e).await;
    assert_eq!(e.fake.lock().polar_registered, 1, "the user was registered after the token");
    assert_eq!((account.state.as_str(), account.external_user_id.as_deref()), (state::ACTIVE, Some("475")));
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!((r.inserted, r.requests), (1, 2), "exercises with samples inline, plus the daily activity");
    let ev =
        e.ts.store
            .evidence(e.client, chrono_tz::Europe::Berlin, (t0() - Duration::days(2)).date_naive(), t0().date_naive())
            .await
            .expect("ev");
    let w = &ev.workouts[0];
    assert_eq!((w.activity_type.as_str(), w.hr_samples, w.duration_s), ("run", 540, 2700.0));
    assert_eq!(w.start, Utc.with_ymd_and_hms(2026, 11, 20, 7, 10, 0).single().expect("time"));
    assert!(ev.daily.iter().any(|d| d.value == 9120.0), "daily steps");
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("resync");
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 0, 1));
    // Webhooks: signed deliveries only.
    use hmac::Mac;
    let sign = |body: &str, key: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("mac");
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let url = format!("{}/webhooks/polar", e.base);
    let ping = r#"{"timestamp":"2026-11-20T10:07:00Z","event":"PING"}"#;
    let post = |body: &'static str, sig: String| {
        let (http, url) = (e.http.clone(), url.clone());
        async move {
            http.post(url)
                .header("Polar-Webhook-Signature", sig)
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(ping, sign(ping, "polar-webhook-key")).await, 200);
    assert_eq!(post(ping, sign(ping, "wrong key")).await, 401);
    assert_eq!(post(ping, String::new()).await, 401);
    let exercise = r#"{"event":"EXERCISE","user_id":475,"entity_id":"aQlC83","timestamp":"2026-11-20T10:08:00Z","url":"https://www.polaraccesslink.com/v3/exercises/aQlC83"}"#;
    assert_eq!(post(exercise, sign(exercise, "polar-webhook-key")).await, 200);
    assert!(e.reg.pending.lock().expect("pending").contains(&account.id), "a signed EXERCISE event asks for a sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_cloud_source_syncs_connected_accounts_and_follows_events() {
    let e = env().await;
    e.fake.add_activities(3, t0() - Duration::hours(1));
    let stop = tokio_util::sync::CancellationToken::new();
    let sources = coachd::providers::sync::CloudSource::all(e.reg.clone());
    let supervisor =
        coachd::source::Supervisor::start(sources, e.ts.store.clone(), Arc::new(e.ts.config.clone()), stop.clone());
    e.connect().await; // the callback asks for a first sync
    wait_for(|| async { e.activity_count().await == 3 }).await;
    // Strava pushes a new activity: synced without waiting for the interval.
    let new = fake_strava::FakeActivity {
        id: 77,
        start: t0() + Duration::minutes(5),
        minutes: 25,
        sport: "Ride".into(),
        hr: true,
        name: "new".into(),
    };
    e.fake.lock().activities.insert(77, new);
    let event = serde_json::json!({"object_type": "activity", "object_id": 77, "aspect_type": "create", "owner_id": ATHLETE,
                                   "subscription_id": 120475, "event_time": 1516126040, "updates": {}});
    let r = e.http.post(format!("{}/webhooks/strava", e.base)).json(&event).send().await.expect("post");
    assert_eq!(r.status(), 200);
    wait_for(|| async { e.activity_count().await == 4 }).await;
    // The round notes its batch after it has stored the activity: wait for that too.
    let noted = || supervisor.health().snapshot().iter().any(|h| h.name == "cloud.strava" && h.batches >= 2);
    wait_for(|| async { noted() }).await;
    let health = supervisor.health().snapshot();
    assert!(health.iter().any(|h| h.name == "cloud.strava" && h.batches >= 2), "{health:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_when_the_manifest_asks_for_it() {
    // None of the three providers offers PKCE; a manifest override turns it on, as a
    // provider that offers it would.
    let fake = fake_strava::start(t0()).await;
    let ts = TestStore::new().await;
    let client = ts.client("alex").await;
    let mut config = fake_strava::config(&fake, "http://127.0.0.1:9");
    config.providers.get_mut("strava").manifest.insert("pkce".into(), true.into());
    let reg = Registry::new(&config, fake.clock.clone()).expect("registry");
    let link = oauth::authorization_link(&reg, &ts.store, "strava", client).await.expect("link");
    assert_eq!(param(&link, "code_challenge_method").as_deref(), Some("S256"));
    let challenge = param(&link, "code_challenge").expect("challenge");
    let q = oauth::Callback {
        state: param(&link, "state"),
        code: Some(fake.issue_code()),
        scope: Some("read,activity:read_all".into()),
        error: None,
        error_description: None,
    };
    oauth::finish(&reg, &ts.store, "strava", &q).await.expect("connected");
    let verifier = fake.lock().last_verifier.clone().expect("a verifier was sent");
    use base64::Engine;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes());
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
        challenge,
        "S256(verifier) = challenge"
    );
}

/// The configuration file a `coachd` command process reads to reach the fake.
fn config_file(e: &Env) -> String {
    format!(
        "[web]\npublic_url = \"{}\"\n[ble]\nenabled = false\n[providers.strava]\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
         authorize_url = \"{f}/oauth/authorize\"\ntoken_url = \"{f}/oauth/token\"\napi_base = \"{f}/api/v3\"\n",
        e.base,
        fake_strava::CLIENT_ID,
        fake_strava::CLIENT_SECRET,
        f = e.fake.base
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_and_coachd_sync_side_by_side_never_spend_a_stale_refresh_token() {
    let e = env().await;
    e.fake.add_activities(6, t0() - Duration::hours(1));
    e.connect().await;
    let data = e.ts.dir.path().join("data");
    std::fs::write(data.join("coachd.toml"), config_file(&e)).expect("config");
    // The daemon's cloud sync, on the fake's clock.
    let stop = tokio_util::sync::CancellationToken::new();
    let sources = coachd::providers::sync::CloudSource::all(e.reg.clone());
    let supervisor =
        coachd::source::Supervisor::start(sources, e.ts.store.clone(), Arc::new(e.ts.config.clone()), stop.clone());
    // `coachd sync` in a loop beside it: on the real clock every token it reads looks
    // expired, so every run refreshes, racing the daemon's refreshes.
    let cli = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            // 12 s of racing, and at least three runs however slow a loaded machine is
            // (at most 90 s).
            let started = std::time::Instant::now();
            let until = started + std::time::Duration::from_secs(12);
            let mut runs = Vec::new();
            while (std::time::Instant::now() < until || runs.len() < 3)
                && started.elapsed() < std::time::Duration::from_secs(90)
            {
                let out = coachd(&data).args(["sync", "alex", "strava"]).output().expect("sync");
                runs.push((
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
                ));
            }
            runs
        })
    };
    // Meanwhile the daemon's token falls due every 300 ms, and it is asked to sync.
    let account = e.account().await;
    while !cli.is_finished() {
        e.fake.clock.advance(Duration::hours(6));
        e.reg.poke(account.id);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let runs = cli.await.expect("cli");
    // A loaded machine may have refreshed less often in the time: keep the daemon's
    // token falling due until it has rotated ten times (at most 30 s more).
    let more = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while e.fake.lock().refreshes < 10 && std::time::Instant::now() < more {
        e.fake.clock.advance(Duration::hours(6));
        e.reg.poke(account.id);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    stop.cancel();
    supervisor.join().await;
    let failed: Vec<_> = runs.iter().filter(|(code, _)| *code != Some(0)).collect();
    assert!(failed.is_empty(), "every `coachd sync` succeeded ({} runs): {failed:?}", runs.len());
    assert!(runs.len() >= 3, "the race ran ({} command runs)", runs.len());
    let (refreshes, stale) = {
        let s = e.fake.lock();
        (s.refreshes, s.stale_refreshes)
    };
    assert_eq!(stale, 0, "no refresh token was spent twice ({refreshes} refreshes)");
    assert!(refreshes >= 10, "the token rotated again and again meanwhile ({refreshes} refreshes)");
    assert_eq!(e.account().await.state, state::ACTIVE, "{:?}", e.account().await.last_error);
    assert_eq!(e.activity_count().await, 6, "every activity stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_stubs_from_strava_are_no_workouts_and_no_data() {
    let e = env().await;
    e.fake.lock().intervals_key = Some("k3y".into());
    // Two real activities, and two days whose only item is a stub of a Strava activity.
    e.fake.add_activities(2, t0() - Duration::hours(1));
    e.fake.lock().icu_stubs =
        vec![("i900".into(), t0() - Duration::days(3)), ("i901".into(), t0() - Duration::days(4))];
    connect_key(&e, "k3y").await.expect("connected");
    let account = e.ts.store.account(e.client, "intervals").await.expect("account");
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!((r.listed, r.inserted, r.skipped.len()), (4, 2, 2), "{:?}", r.skipped);
    assert!(
        r.skipped[0].contains("from Strava") && r.skipped[0].contains("connect Strava directly"),
        "{:?}",
        r.skipped
    );
    let tz = chrono_tz::Europe::Berlin;
    let stub_day = (t0() - Duration::days(3)).date_naive();
    let ev = e.ts.store.evidence(e.client, tz, stub_day - Duration::days(1), stub_day).await.expect("ev");
    let on_stub_days: Vec<_> =
        ev.workouts.iter().filter(|w| w.start.with_timezone(&tz).date_naive() <= stub_day).collect();
    assert!(on_stub_days.is_empty(), "no zero-length workout stored: {on_stub_days:?}");
    assert!(!ev.passive_days.contains(&stub_day), "a day whose only item is a stub has no data");
    // accounts list names them, in any process.
    let data = e.ts.dir.path().join("data");
    std::fs::write(data.join("coachd.toml"), config_file(&e)).expect("config");
    let out = coachd(&data).args(["accounts", "list"]).output().expect("list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 item(s) left out at the last sync") && text.contains("connect Strava directly"), "{text}");
    // Judged: no_data, never missed.
    let rule = coachd::engine::phrase::parse("15 minutes of cardio").expect("phrase");
    let hw = e.ts.store.add_homework(e.client, &rule, stub_day - Duration::days(2), None).await.expect("hw");
    let cfg = e.ts.config.homework.judge_config();
    let o = coachd::engine::judge::judge(&hw.homework, &cfg, tz, Some(190.0), stub_day, &ev, t0() + Duration::days(2));
    assert_eq!(o.verdict, coachd::engine::judge::Verdict::NoData, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_from_each_provider_are_rejected_with_a_reason_and_never_panic() {
    let e = env().await;
    // Strava: one activity claims an elapsed time of 10^12 s; and a 429 asks to wait 10^15 s.
    e.fake.add_activities(3, t0() - Duration::hours(1));
    e.fake.lock().elapsed_override.insert(1_000_001, 1e12);
    {
        let mut s = e.fake.lock();
        s.faults = vec![(429, "{\"message\": \"Rate Limit Exceeded\"}".into())];
        s.retry_after = Some("1000000000000000".into());
    }
    let account = e.connect().await;
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync");
    assert_eq!((r.inserted, r.skipped.len()), (2, 1), "{:?}", r.skipped);
    assert!(r.skipped[0].contains("1000001") && r.skipped[0].contains("not between 0 and a week"), "{:?}", r.skipped);
    assert_eq!(e.activity_count().await, 2);
    // Polar: a duration of PT9999999999999H beside a good exercise.
    let good = serde_json::json!({"id": "ok1", "upload_time": "2026-11-20T09:00:00Z", "polar_user": "https://www.polaraccesslink.com/v3/users/475",
        "device": "Polar Vantage V3", "start_time": "2026-11-20T08:10:00", "start_time_utc_offset": 60, "duration": "PT45M",
        "sport": "RUNNING", "detailed_sport_info": "RUNNING", "has_route": false});
    let mut huge = good.clone();
    huge["id"] = "huge".into();
    huge["start_time"] = "2026-11-19T08:10:00".into();
    huge["duration"] = "PT9999999999999H".into();
    e.fake.lock().polar_exercises = vec![good, huge];
    let polar = polar_account(&e).await;
    let r = sync_account(&e.reg, &e.ts.store, &polar, 50).await.expect("polar sync");
    assert_eq!((r.inserted, r.skipped.len()), (1, 1), "{:?}", r.skipped);
    assert!(r.skipped[0].contains("huge"), "{:?}", r.skipped);
    // intervals.icu: an elapsed time of 10^12 s beside good activities.
    e.fake.lock().intervals_key = Some("k3y".into());
    connect_key(&e, "k3y").await.expect("connected");
    let icu = e.ts.store.account(e.client, "intervals").await.expect("account");
    let r = sync_account(&e.reg, &e.ts.store, &icu, 50).await.expect("intervals sync");
    assert_eq!((r.inserted, r.skipped.len()), (2, 1), "{:?}", r.skipped);
    assert!(r.skipped[0].contains("i1000001") && r.skipped[0].contains("not between 0 and a week"), "{:?}", r.skipped);
}

/// Connect Polar through its OAuth callback, as the client's browser does.
async fn polar_account(e: &Env) -> Account {
    let link = oauth::authorization_link(&e.reg, &e.ts.store, "polar", e.client).await.expect("link");
    assert!(link.contains("scope=accesslink.read_all"), "{link}");
    let code = e.fake.issue_code();
    let r = e
        .http
        .get(format!("{}/oauth/polar/callback", e.base))
        .query(&[("state", param(&link, "state").expect("state").as_str()), ("code", code.as_str())])
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    e.ts.store.account(e.client, "polar").await.expect("account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_through_cut_bodies_and_server_errors_stores_everything_in_one_run() {
    let e = env_with(400).await;
    let account = e.connect().await;
    e.fake.add_activities(300, t0() - Duration::hours(1));
    // Faults at scattered points of the backfill: bodies cut short (lists and streams),
    // connections cut mid-body, 500s and 503s; never more than two in a row.
    let mut faults: Vec<(u16, String)> = Vec::new();
    let mut x: u64 = 0x5eed;
    for _ in 0..900 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if faults.iter().rev().take(2).filter(|f| f.0 != 0).count() == 2 {
            faults.push((0, String::new()));
            continue;
        }
        faults.push(match (x >> 33) % 10 {
            0 => (200, "[{\"id\": 1, \"start_date\": ".to_string()),
            1 => (200, "{\"time\": {\"data\": [0, 1".to_string()),
            2 => (500, "Internal Server Error".to_string()),
            3 => (503, String::new()),
            4 => (1, String::new()),
            _ => (0, String::new()),
        });
    }
    let injected = faults.iter().filter(|f| f.0 != 0).count();
    e.fake.lock().faults = faults;
    let r = sync_account(&e.reg, &e.ts.store, &account, 5000).await.expect("one run through the faults");
    assert!(r.done, "the whole backfill in this run: {r:?}");
    assert_eq!((r.inserted, r.samples_pending), (300, 0), "{r:?}");
    assert_eq!(e.activity_count().await, 300);
    let tz = chrono_tz::Europe::Berlin;
    let ev =
        e.ts.store
            .evidence(e.client, tz, (t0() - Duration::days(160)).date_naive(), t0().date_naive())
            .await
            .expect("ev");
    assert_eq!(ev.workouts.len(), 300);
    assert!(ev.workouts.iter().all(|w| w.hr_samples == 360), "every activity with all its heart rate");
    assert!(injected > 150, "the faults were there ({injected})");
    let r = sync_account(&e.reg, &e.ts.store, &account, 5000).await.expect("again");
    assert_eq!((r.inserted, r.updated), (0, 0), "a second sync changes nothing: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_failing_is_stored_without_samples_and_fetched_next_round() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(1, t0() - Duration::hours(1));
    // The list answers; the activity's stream is cut short five times in a row.
    let mut faults = vec![(0, String::new())];
    faults.extend(vec![(200, "{\"time\": {\"data\": [0, 1".to_string()); 5]);
    e.fake.lock().faults = faults;
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("sync goes on");
    assert_eq!((r.inserted, r.samples_pending), (1, 1), "{r:?}");
    let tz = chrono_tz::Europe::Berlin;
    let day = t0().date_naive();
    let ev = e.ts.store.evidence(e.client, tz, day - Duration::days(1), day).await.expect("ev");
    assert_eq!((ev.workouts.len(), ev.workouts[0].hr_samples), (1, 0), "the summary, no samples yet");
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("next round");
    assert_eq!((r.updated, r.samples_pending), (1, 0), "{r:?}");
    let ev = e.ts.store.evidence(e.client, tz, day - Duration::days(1), day).await.expect("ev");
    assert_eq!(ev.workouts[0].hr_samples, 360, "the samples arrived");
    let r = sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("then");
    assert_eq!((r.updated, r.unchanged), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_shows_failing_and_never_looks_fresh() {
    let e = env().await;
    let account = e.connect().await;
    e.fake.add_activities(2, t0() - Duration::hours(1));
    sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("first sync");
    let ok = e.account().await;
    let success = ok.last_sync.expect("a success");
    assert!(!ok.failing());
    // Then every attempt fails.
    e.fake.clock.advance(Duration::hours(1));
    e.fake.lock().faults = vec![(502, String::new()); 5];
    sync_account(&e.reg, &e.ts.store, &account, 50).await.expect_err("keeps failing");
    let bad = e.account().await;
    assert!(bad.failing(), "{bad:?}");
    assert_eq!(bad.last_sync, Some(success), "a failed attempt does not move the last success");
    assert!(bad.last_attempt > Some(success) && bad.last_error_at == bad.last_attempt, "{bad:?}");
    let metrics = e.http.get(format!("{}/metrics", e.base)).send().await.expect("metrics").text().await.expect("text");
    let failing = metrics.lines().find(|l| l.starts_with("coachd_account_failing{")).unwrap_or_default().to_string();
    assert!(failing.ends_with(" 1"), "{failing}\n{metrics}");
    let age = metrics
        .lines()
        .find_map(|l| l.strip_prefix("coachd_account_last_success_age_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<i64>().ok())
        .expect("a success age");
    assert!(age >= 0, "{metrics}");
    // The list says so.
    let data = e.ts.dir.path().join("data");
    std::fs::write(data.join("coachd.toml"), config_file(&e)).expect("config");
    let out = coachd(&data).args(["accounts", "list"]).output().expect("list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("active (failing)") && text.contains("failed:") && text.contains("last success"), "{text}");
    // A good sync clears it.
    sync_account(&e.reg, &e.ts.store, &account, 50).await.expect("recovered");
    let good = e.account().await;
    assert!(!good.failing() && good.last_sync > Some(success), "{good:?}");
}
