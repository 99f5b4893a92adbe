//! Clients connect their own accounts from their private page: every provider with its
//! state and a Connect / Disconnect button, the Health Auto Export token shown once, a
//! file upload from a phone. A link acts only for its own client; an OAuth state is
//! single-use and names its client, so neither a forged nor a reused one attaches an
//! account to anyone else. Disconnecting (and removing a client) revokes at the provider
//! where its API allows: Oura, Strava, Polar against their fakes.

use crate::dashboard::csrf_of;
use crate::fake_oura::{self, FakeOura, ALL_SCOPES, USER};
use crate::fake_strava::{self, Fake};
use crate::TestStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use coachd::providers::sync::sync_all;
use coachd::providers::Registry;
use coachd::source::Health;
use coachd::store::providers::state;
use coachd::store::{Client, NewClient};
use coachd::web::{router, WebState};
use reqwest::StatusCode;
use std::sync::Arc;

struct Env {
    ts: TestStore,
    app: coachd::app::App,
    reg: Arc<Registry>,
    base: String,
    http: reqwest::Client,
    alex: Client,
    sam: Client,
}

/// Thursday 2026-11-20, 10:07 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time")
}

async fn serve(
    ts: TestStore,
    config: coachd::config::Config,
    reg: Arc<Registry>,
    listener: tokio::net::TcpListener,
) -> Env {
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = coachd::app::App::from_parts(ts.store.clone(), Arc::new(config), reg.clone());
    let web = router(WebState::for_app(app.clone(), Health::default()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, web).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let add = |name: &str| NewClient::parse(name, "Europe/Berlin", Some(190), None).expect("client");
    let alex = ts.store.add_client(&add("alex")).await.expect("alex");
    let sam = ts.store.add_client(&add("sam")).await.expect("sam");
    Env { ts, app, reg, base, http, alex, sam }
}

async fn oura_env() -> (Env, FakeOura) {
    let fake = fake_oura::start(t0()).await;
    let ts = TestStore::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = fake_oura::config(&fake, &base);
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    (serve(ts, config, reg, listener).await, fake)
}

async fn strava_env() -> (Env, Fake) {
    let fake = fake_strava::start(t0()).await;
    let ts = TestStore::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = fake_strava::config(&fake, &base);
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).expect("registry"));
    (serve(ts, config, reg, listener).await, fake)
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).expect("url").query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Env {
    /// The path of a new private link of `client` (`/c/TOKEN`).
    async fn link(&self, client: &Client) -> String {
        let url = self.app.new_share_link(client).await.expect("link");
        url[url.find("/c/").expect("a /c/ link")..].to_string()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("get");
        (r.status(), r.text().await.expect("body"))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let r = self.http.post(format!("{}{path}", self.base)).form(form).send().await.expect("post");
        let location = r.headers().get("location").map(|l| l.to_str().expect("ascii").to_string()).unwrap_or_default();
        (r.status(), location, r.text().await.expect("body"))
    }

    /// The client's page: its CSRF token and its text.
    async fn page(&self, link: &str) -> (String, String) {
        let (status, body) = self.get(link).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (csrf_of(&body), body)
    }

    /// Start connecting `provider` from a page: the provider's authorization URL.
    async fn start(&self, link: &str, provider: &str) -> String {
        let r = self.http.get(format!("{}{link}/connect/{provider}", self.base)).send().await.expect("connect");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
        r.headers()["location"].to_str().expect("ascii").to_string()
    }

    async fn callback(&self, provider: &str, query: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}/oauth/{provider}/callback", self.base))
            .query(query)
            .send()
            .await
            .expect("callback");
        (r.status(), r.text().await.expect("body"))
    }

    async fn account_state(&self, client: &Client, provider: &str) -> Option<String> {
        self.ts.store.account(client.id, provider).await.ok().map(|a| a.state)
    }

    async fn activities(&self) -> i64 {
        self.ts.store.row_counts().await.expect("counts").activities
    }
}

/// The part of a page about one provider (its `<li id="source-NAME">`).
fn source_item<'a>(page: &'a str, name: &str) -> &'a str {
    let at = page.find(&format!("id=\"source-{name}\"")).unwrap_or_else(|| panic!("no source {name} in the page"));
    let rest = &page[at..];
    &rest[..rest.find("</li>").expect("end of item")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connects_and_disconnects_their_own_oura_and_no_one_elses() {
    let (e, fake) = oura_env().await;
    {
        let mut s = fake.lock();
        let day = t0().date_naive() - Duration::days(1);
        s.steps.insert(day, 9100);
    }
    let (alex_link, sam_link) = (e.link(&e.alex).await, e.link(&e.sam).await);
    let (alex_csrf, page) = e.page(&alex_link).await;
    let item = source_item(&page, "oura");
    assert!(item.contains("not connected") && item.contains(&format!("{alex_link}/connect/oura")), "{item}");
    assert!(page.contains("id=\"source-hae\"") && page.contains("enctype=\"multipart/form-data\""), "{page}");

    // An unknown link starts nothing.
    let (status, _) = e.get(&format!("/c/{}/connect/oura", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Alex's page sends Alex's browser to Oura; the state it carries names Alex.
    let authorize = e.start(&alex_link, "oura").await;
    assert!(authorize.starts_with(&format!("{}/oauth/authorize", fake.base)), "{authorize}");
    let alex_state = param(&authorize, "state").expect("state");
    // Sam's page starts a flow of its own, with another state.
    let sam_state = param(&e.start(&sam_link, "oura").await, "state").expect("state");
    assert_ne!(alex_state, sam_state);

    // A forged state attaches nothing.
    let code = fake.issue_code(USER, ALL_SCOPES);
    let (status, body) =
        e.callback("oura", &[("state", &"a".repeat(64)), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!((e.account_state(&e.alex, "oura").await, e.account_state(&e.sam, "oura").await), (None, None));

    // Alex's state attaches Alex's account, to Alex only.
    let code = fake.issue_code(USER, ALL_SCOPES);
    let (status, body) = e.callback("oura", &[("state", &alex_state), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("alex"), "{body}");
    assert_eq!(e.account_state(&e.alex, "oura").await.as_deref(), Some(state::ACTIVE));
    assert_eq!(e.account_state(&e.sam, "oura").await, None);

    // The same state again (replayed, or by another client's browser) is refused.
    let code = fake.issue_code("someone-else", ALL_SCOPES);
    let (status, body) = e.callback("oura", &[("state", &alex_state), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(e.account_state(&e.sam, "oura").await, None);
    assert_eq!(e.ts.store.account(e.alex.id, "oura").await.expect("account").external_user_id.as_deref(), Some(USER));

    let accounts = e.ts.store.accounts().await.expect("accounts");
    let stop = tokio_util::sync::CancellationToken::new();
    for (_, r) in sync_all(&e.reg, &e.ts.store, &accounts, &stop).await {
        r.expect("sync");
    }
    let stored = e.activities().await;
    let (_, page) = e.page(&alex_link).await;
    let item = source_item(&page, "oura");
    assert!(item.contains("connected") && item.contains("Disconnect") && item.contains("newest data"), "{item}");

    // Sam's page cannot disconnect Alex's account: it only ever acts for Sam.
    let (sam_csrf, _) = e.page(&sam_link).await;
    let (status, _, body) =
        e.post(&format!("{sam_link}/disconnect"), &[("csrf", &sam_csrf), ("provider", "oura")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("sam has no oura account"), "{body}");
    // Nor can a form without Alex's page's token.
    let (status, _, _) = e.post(&format!("{alex_link}/disconnect"), &[("csrf", &sam_csrf), ("provider", "oura")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(e.account_state(&e.alex, "oura").await.as_deref(), Some(state::ACTIVE));
    assert!(fake.lock().revoked.is_empty());

    // Alex disconnects: revoked at Oura, tokens gone, no more syncing, the data stays.
    let (status, location, _) =
        e.post(&format!("{alex_link}/disconnect"), &[("csrf", &alex_csrf), ("provider", "oura")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("Disconnected") && location.contains("ended"), "{location}");
    assert_eq!(fake.lock().revoked, vec![USER.to_string()]);
    assert!(fake.lock().access.is_empty() && fake.lock().refresh.is_empty());
    let account = e.ts.store.account(e.alex.id, "oura").await.expect("account");
    assert_eq!(account.state, state::DISCONNECTED);
    assert!(account.last_error.as_deref().is_some_and(|w| w.contains("the client")), "{:?}", account.last_error);
    assert!(e.ts.store.tokens(e.alex.id, "oura").await.is_err(), "the tokens are forgotten");
    assert_eq!(e.activities().await, stored);
    let requests = fake.lock().api_requests;
    let accounts = e.ts.store.accounts().await.expect("accounts");
    for (_, r) in sync_all(&e.reg, &e.ts.store, &accounts, &stop).await {
        assert!(r.is_ok(), "a disconnected account is skipped, not failed: {r:?}");
    }
    assert_eq!(fake.lock().api_requests, requests, "nothing asked of Oura after the disconnect");
    let (_, page) = e.page(&alex_link).await;
    let item = source_item(&page, "oura");
    assert!(
        item.contains("disconnected") && item.contains("/connect/oura") && !item.contains(">Disconnect<"),
        "{item}"
    );
    // Twice is a clear no.
    let (status, _, body) =
        e.post(&format!("{alex_link}/disconnect"), &[("csrf", &alex_csrf), ("provider", "oura")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("already disconnected"), "{body}");

    // Connecting again from the page makes the same account active again.
    let state2 = param(&e.start(&alex_link, "oura").await, "state").expect("state");
    let code = fake.issue_code(USER, ALL_SCOPES);
    let (status, body) = e.callback("oura", &[("state", &state2), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(e.account_state(&e.alex, "oura").await.as_deref(), Some(state::ACTIVE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_client_revokes_at_oura_and_the_trainer_disconnects_strava_and_polar() {
    let (e, fake) = oura_env().await;
    let link = e.link(&e.alex).await;
    let state = param(&e.start(&link, "oura").await, "state").expect("state");
    let code = fake.issue_code(USER, ALL_SCOPES);
    let (status, body) = e.callback("oura", &[("state", &state), ("code", &code), ("scope", ALL_SCOPES)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let removed = e.app.remove_client(&e.alex).await.expect("removed");
    assert_eq!(fake.lock().revoked, vec![USER.to_string()]);
    assert!(
        removed.authorizations.iter().any(|a| a.contains("oura") && a.contains("ended")),
        "{:?}",
        removed.authorizations
    );

    let (e, fake) = strava_env().await;
    for provider in ["strava", "polar"] {
        let link = e.link(&e.alex).await;
        let state = param(&e.start(&link, provider).await, "state").expect("state");
        let code = fake.issue_code();
        let (status, body) =
            e.callback(provider, &[("state", &state), ("code", &code), ("scope", "read,activity:read_all")]).await;
        assert_eq!(status, StatusCode::OK, "{provider}: {body}");
    }
    // The trainer's side: the same disconnect, by the application.
    let done = e.app.disconnect(&e.alex, "strava", "trainer anna").await.expect("strava");
    assert!(done.revoked, "{}", done.note);
    assert!(fake.lock().deauthorized && fake.lock().access.is_empty(), "Strava deauthorized every token");
    let done = e.app.disconnect(&e.alex, "polar", "trainer anna").await.expect("polar");
    assert!(done.revoked, "{}", done.note);
    assert_eq!(fake.lock().polar_deregistered, 1);
    assert_eq!(e.account_state(&e.alex, "polar").await.as_deref(), Some(state::DISCONNECTED));
    // A provider that was never connected is a clear no; an unknown one names those known.
    let err = e.app.disconnect(&e.sam, "strava", "trainer anna").await.expect_err("nothing to disconnect");
    assert!(err.to_string().contains("sam has no strava account"), "{err}");
    let err = e.app.disconnect(&e.sam, "garmin", "trainer anna").await.expect_err("unknown");
    assert!(err.to_string().contains("coachd knows"), "{err}");
    // A provider that fails the revocation still ends coachd's side, and says so.
    let (e2, fake2) = oura_env().await;
    let link = e2.link(&e2.alex).await;
    let state = param(&e2.start(&link, "oura").await, "state").expect("state");
    let code = fake2.issue_code(USER, ALL_SCOPES);
    assert_eq!(
        e2.callback("oura", &[("state", &state), ("code", &code), ("scope", ALL_SCOPES)]).await.0,
        StatusCode::OK
    );
    fake2.lock().faults.push((503, "{\"detail\": \"Service Unavailable\"}".into()));
    let done = e2.app.disconnect(&e2.alex, "oura", "trainer anna").await.expect("disconnected anyway");
    assert!(!done.revoked && done.note.contains("503") && done.note.contains("settings"), "{}", done.note);
    assert!(e2.ts.store.tokens(e2.alex.id, "oura").await.is_err(), "forgotten all the same");
    assert_eq!(e2.account_state(&e2.alex, "oura").await.as_deref(), Some(state::DISCONNECTED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_uploads_a_file_and_gets_a_push_token_from_their_page() {
    let (e, _fake) = oura_env().await;
    let link = e.link(&e.alex).await;
    let (csrf, _) = e.page(&link).await;
    let upload = |csrf: String, bytes: Vec<u8>, name: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        e.http.post(format!("{}{link}/upload", e.base)).multipart(form).send()
    };
    let fit = crate::files::run_with_pause(7);

    // Without the page's token nothing is read or stored.
    let r = upload("0".repeat(64), fit.clone(), "run.fit").await.expect("upload");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(e.activities().await, 0);

    let r = upload(csrf.clone(), fit.clone(), "Morning Run.fit").await.expect("upload");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(location.contains("is+in") && location.contains("1+activity"), "{location}");
    let stored = e.ts.store.activities_with_samples(e.alex.id).await.expect("activities");
    assert_eq!(stored.len(), 1, "alex's, and nobody else's");
    assert!(e.ts.store.activities_with_samples(e.sam.id).await.expect("activities").is_empty());

    // The same file again changes nothing; a file that is not an activity is named.
    let r = upload(csrf.clone(), fit, "again.fit").await.expect("upload");
    assert!(r.headers()["location"].to_str().expect("ascii").contains("already+here"));
    let r = upload(csrf.clone(), b"<html>not a workout</html>".to_vec(), "page.gpx").await.expect("upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("body").contains("File not imported"));
    let r = upload(csrf.clone(), Vec::new(), "empty.fit").await.expect("upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(e.activities().await, 1);

    // The Health Auto Export token: shown once, then working, then not shown again.
    let (status, _, page) = e.post(&format!("{link}/push-token"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    let at = page.find("Bearer ").expect("the token on the page") + "Bearer ".len();
    let token: String = page[at..].chars().take_while(char::is_ascii_alphanumeric).collect();
    assert!(token.len() >= 32, "{token}");
    assert!(page.contains("/ingest/health-auto-export"), "the URL to paste");
    let push = serde_json::json!({"data": {"metrics": [{"name": "step_count", "units": "count", "data": [
        {"date": "2026-11-19 00:00:00 +0100", "qty": 8123}]}], "workouts": []}});
    let r = e
        .http
        .post(format!("{}/ingest/health-auto-export", e.base))
        .bearer_auth(&token)
        .json(&push)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap_or_default());
    let (_, page) = e.page(&link).await;
    assert!(!page.contains(&token), "the token is shown only once");
    assert!(source_item(&page, "hae").contains("set up"));
}
