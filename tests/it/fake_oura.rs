//! A local server that answers like Oura's documented API v2: the OAuth token endpoint
//! with single-use refresh tokens (a refresh token works once; the pair it gives replaces
//! it), scopes the user may untick, an application not approved by Oura limited to a
//! number of users; the user collections (`personal_info`, `workout` and
//! `workout/{id}`, `heartrate`, `daily_activity`, `sleep`) with `start_date`/`end_date`
//! (or datetimes) and `next_token` paging; the webhook subscription API (made only after
//! the callback echoes the challenge, renewed, expiring); RFC 7807 error bodies (`status`,
//! `title`, `detail`, plus RFC 6749's `error` on OAuth errors); a per-application budget
//! in 5-minute windows whose 429 carries `Retry-After`; and faults on demand. It runs on a
//! simulated clock and counts what it was asked.
//!
//! What Oura does not publish is chosen here and said so: pages of 50 items (the heart
//! rate 1,000 rows), `end_date` read as inclusive, workout heart rate every 5 s and
//! daytime heart rate every 5 minutes, a missing scope answered 403, and the wording of
//! the user-limit refusal.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use coachd::providers::clock::{Clock, SimClock};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "OURA-APP-1";
pub const CLIENT_SECRET: &str = "oura-app-secret";
pub const USER: &str = "oura-user-7f3a";
pub const ALL_SCOPES: &str = "personal daily heartrate workout";
pub const PAGE: usize = 50;
pub const HR_PAGE: usize = 1000;

#[derive(Clone, Debug)]
pub struct FakeWorkout {
    pub id: String,
    pub activity: String,
    /// Local start with its offset.
    pub start: DateTime<FixedOffset>,
    pub minutes: i64,
    pub bpm: f64,
}

impl FakeWorkout {
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.start + Duration::minutes(self.minutes)
    }
}

#[derive(Clone, Debug)]
pub struct FakeSleep {
    pub id: String,
    pub kind: String,
    pub bedtime_start: DateTime<FixedOffset>,
    pub bedtime_end: DateTime<FixedOffset>,
    pub total_s: i64,
}

#[derive(Clone, Debug)]
pub struct FakeSubscription {
    pub id: String,
    pub callback_url: String,
    pub event_type: String,
    pub data_type: String,
    pub expiration: DateTime<Utc>,
}

#[derive(Default)]
pub struct OuraState {
    pub workouts: BTreeMap<String, FakeWorkout>,
    pub steps: BTreeMap<NaiveDate, i64>,
    pub sleeps: Vec<FakeSleep>,
    /// Authorization codes → (user, scopes granted).
    pub codes: HashMap<String, (String, String)>,
    /// Access token → (user, expiry, scopes).
    pub access: HashMap<String, (String, DateTime<Utc>, String)>,
    /// Each user's one live refresh token (single use).
    pub refresh: HashMap<String, String>,
    /// Users who ever got a token: an unapproved application admits `max_users`.
    pub users: Vec<String>,
    pub max_users: usize,
    pub subscriptions: Vec<FakeSubscription>,
    pub renewals: u32,
    pub serial: u32,
    pub refreshes: u32,
    /// Refresh tokens presented that were already spent or never issued.
    pub spent_refreshes: u32,
    /// Responses to give instead of the real one, first first: (status, body); 0 serves
    /// the request normally.
    pub faults: Vec<(u16, String)>,
    pub retry_after: Option<String>,
    /// Hang the next API request (a crash right after a refresh answer).
    pub hang_next_api: bool,
    /// Requests per 5-minute window of the application, and the window now.
    pub limit: u32,
    pub window: (i64, u32),
    /// Requests refused for the budget.
    pub limited: u32,
    pub api_requests: u32,
    pub by_path: BTreeMap<String, u32>,
    /// Users whose authorization was revoked (`/oauth/revoke`).
    pub revoked: Vec<String>,
}

#[derive(Clone)]
pub struct FakeOura {
    pub state: Arc<Mutex<OuraState>>,
    pub clock: Arc<SimClock>,
    pub base: String,
}

fn problem(code: StatusCode, title: &str, detail: &str) -> Response {
    (code, Json(json!({"status": code.as_u16(), "title": title, "detail": detail}))).into_response()
}

fn oauth_problem(code: StatusCode, error: &str, title: &str, detail: &str) -> Response {
    let body =
        json!({"status": code.as_u16(), "title": title, "detail": detail, "error": error, "error_description": detail});
    (code, Json(body)).into_response()
}

impl FakeOura {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, OuraState> {
        self.state.lock().expect("fake state")
    }

    /// A code for `user` granting `scopes` (what the consent page gives).
    pub fn issue_code(&self, user: &str, scopes: &str) -> String {
        let mut s = self.lock();
        s.serial += 1;
        let code = format!("oura-code-{}", s.serial);
        s.codes.insert(code.clone(), (user.to_string(), scopes.to_string()));
        code
    }

    pub fn refresh_token(&self) -> Option<String> {
        self.lock().refresh.get(USER).cloned()
    }

    pub fn requests(&self, path: &str) -> u32 {
        self.lock().by_path.get(path).copied().unwrap_or(0)
    }

    /// Sign a delivery as Oura does: uppercase hex HMAC-SHA256(secret, timestamp + body).
    pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("mac");
        mac.update(timestamp.as_bytes());
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02X}")).collect()
    }
}

fn token_pair(s: &mut OuraState, now: DateTime<Utc>, user: &str, scopes: &str) -> Value {
    s.serial += 1;
    let access = format!("oura-access-{}", s.serial);
    let refresh = format!("oura-refresh-{}", s.serial);
    s.access.insert(access.clone(), (user.to_string(), now + Duration::seconds(86_400), scopes.to_string()));
    s.refresh.insert(user.to_string(), refresh.clone());
    json!({"token_type": "bearer", "access_token": access, "expires_in": 86400, "refresh_token": refresh, "scope": scopes})
}

/// `POST /oauth/revoke?access_token=…`: the authorization ends, its refresh token too.
async fn revoke(State(f): State<FakeOura>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = f.lock();
    if !s.faults.is_empty() {
        let (code, body) = s.faults.remove(0);
        if code != 0 {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, [("content-type", "application/json")], body).into_response();
        }
    }
    let sent = q.get("access_token").cloned().unwrap_or_default();
    let Some((user, _, _)) = s.access.get(&sent).cloned() else {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid or expired access token.");
    };
    s.access.retain(|_, (u, _, _)| *u != user);
    s.refresh.remove(&user);
    s.revoked.push(user);
    StatusCode::OK.into_response()
}

async fn token(State(f): State<FakeOura>, Form(form): Form<HashMap<String, String>>) -> Response {
    let now = f.clock.now();
    let mut s = f.lock();
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_problem(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid Client ID", "Invalid client_id.");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((user, scopes)) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return oauth_problem(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid Grant", "Invalid code.");
            };
            if form.get("redirect_uri").is_none_or(String::is_empty) {
                return oauth_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing Redirect URI Payload",
                    "redirect_uri missing.",
                );
            }
            if !s.users.contains(&user) {
                if s.users.len() >= s.max_users {
                    return oauth_problem(
                        StatusCode::FORBIDDEN,
                        "access_denied",
                        "Forbidden",
                        "Maximum number of users reached for this application.",
                    );
                }
                s.users.push(user.clone());
            }
            Json(token_pair(&mut s, now, &user, &scopes)).into_response()
        }
        Some("refresh_token") => {
            let sent = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(user) = s.refresh.iter().find(|(_, r)| **r == sent).map(|(u, _)| u.clone()) else {
                s.spent_refreshes += 1;
                return oauth_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Token Already Used Or Revoked",
                    "Token already used or revoked.",
                );
            };
            s.refreshes += 1;
            let scopes = s.access.values().find(|(u, ..)| *u == user).map(|(_, _, sc)| sc.clone());
            let scopes = scopes.unwrap_or_else(|| ALL_SCOPES.to_string());
            // The old refresh token dies with this answer: single use.
            Json(token_pair(&mut s, now, &user, &scopes)).into_response()
        }
        _ => oauth_problem(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid Grant Type",
            "grant_type must be either authorization_code or refresh_token.",
        ),
    }
}

/// Budget, faults, and the bearer token with its scope for an API request: Ok(user).
async fn gate(f: &FakeOura, headers: &HeaderMap, path: &str, scope: &str) -> Result<(String, HeaderMap), Response> {
    let hang = std::mem::take(&mut f.lock().hang_next_api);
    if hang {
        std::future::pending::<()>().await;
    }
    let now = f.clock.now().timestamp();
    let mut s = f.lock();
    s.api_requests += 1;
    *s.by_path.entry(path.to_string()).or_default() += 1;
    // Windows start with the first request and last 5 minutes.
    if now >= s.window.0 + 300 {
        s.window = (now, 0);
    }
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit", s.limit.to_string().parse().expect("header"));
    if s.window.1 >= s.limit {
        s.limited += 1;
        let wait = (s.window.0 + 300 - now).max(1);
        h.insert("retry-after", wait.to_string().parse().expect("header"));
        h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        let body = json!({"status": 429, "title": "Too Many Requests", "detail": "Rate limit exceeded."});
        return Err((StatusCode::TOO_MANY_REQUESTS, h, Json(body)).into_response());
    }
    s.window.1 += 1;
    h.insert("x-ratelimit-remaining", (s.limit - s.window.1).to_string().parse().expect("header"));
    if s.faults.first().is_some_and(|x| x.0 == 0) {
        s.faults.remove(0);
    } else if !s.faults.is_empty() {
        let (code, body) = s.faults.remove(0);
        if let (429, Some(r)) = (code, s.retry_after.as_deref()) {
            h.insert("retry-after", r.parse().expect("header"));
        }
        let code = StatusCode::from_u16(code).expect("status");
        return Err((code, h, body).into_response());
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some((user, expires, scopes)) = s.access.get(token).cloned() else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "Invalid Access token",
            "Access token not provided or is invalid.",
        ));
    };
    if expires <= f.clock.now() {
        return Err(problem(StatusCode::UNAUTHORIZED, "Expired Token", "Token has expired."));
    }
    if !scope.is_empty() && !scopes.split(' ').any(|x| x == scope) {
        return Err(problem(StatusCode::FORBIDDEN, "Missing Scopes", &format!("Missing required scopes: {scope}")));
    }
    Ok((user, h))
}

/// The `start_date` and `end_date` of a query.
fn dates(q: &HashMap<String, String>) -> Result<(NaiveDate, NaiveDate), Box<Response>> {
    let one = |key: &str| {
        q.get(key).and_then(|d| d.parse().ok()).ok_or_else(|| {
            Box::new(problem(
                StatusCode::BAD_REQUEST,
                "Validation Error",
                &format!("{key} must be a date (YYYY-MM-DD)"),
            ))
        })
    };
    Ok((one("start_date")?, one("end_date")?))
}

/// One page of `items`, from `next_token` (an offset here).
fn paged(items: Vec<Value>, q: &HashMap<String, String>, size: usize) -> Value {
    let from: usize = q.get("next_token").and_then(|t| t.strip_prefix('p')).and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(from).take(size).cloned().collect();
    let next = (from + size < items.len()).then(|| format!("p{}", from + size));
    json!({"data": page, "next_token": next})
}

fn workout_json(w: &FakeWorkout) -> Value {
    let fmt = |t: DateTime<FixedOffset>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    json!({"id": w.id, "activity": w.activity, "calories": 8.5 * w.minutes as f64, "distance": 120.0 * w.minutes as f64,
           "day": w.start.date_naive().to_string(), "start_datetime": fmt(w.start), "end_datetime": fmt(w.end()),
           "intensity": "moderate", "label": null, "source": "autodetected"})
}

async fn workouts(State(f): State<FakeOura>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let h = match gate(&f, &headers, "workout", "workout").await {
        Ok((_, h)) => h,
        Err(r) => return r,
    };
    let (from, to) = match dates(&q) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let s = f.lock();
    let items: Vec<Value> =
        s.workouts.values().filter(|w| (from..=to).contains(&w.start.date_naive())).map(workout_json).collect();
    (h, Json(paged(items, &q, PAGE))).into_response()
}

async fn one_workout(State(f): State<FakeOura>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let h = match gate(&f, &headers, "workout/{id}", "workout").await {
        Ok((_, h)) => h,
        Err(r) => return r,
    };
    match f.lock().workouts.get(&id) {
        Some(w) => (h, Json(workout_json(w))).into_response(),
        None => problem(StatusCode::NOT_FOUND, "Not Found", "Document not found."),
    }
}

async fn heartrate(
    State(f): State<FakeOura>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let h = match gate(&f, &headers, "heartrate", "heartrate").await {
        Ok((_, h)) => h,
        Err(r) => return r,
    };
    let when = |key: &str| q.get(key).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    let (Some(from), Some(to)) = (when("start_datetime"), when("end_datetime")) else {
        return problem(StatusCode::BAD_REQUEST, "Validation Error", "start_datetime and end_datetime are required");
    };
    if to - from > Duration::days(30) {
        return problem(StatusCode::BAD_REQUEST, "Validation Error", "the range must be at most 30 days");
    }
    let s = f.lock();
    let mut rows: BTreeMap<i64, Value> = BTreeMap::new();
    // Daytime readings every 5 minutes, workout readings every 5 seconds.
    let mut t = from.timestamp() - from.timestamp().rem_euclid(300);
    while t <= to.timestamp() {
        if t >= from.timestamp() {
            rows.insert(t, json!({"bpm": 64, "source": "awake", "timestamp": DateTime::from_timestamp(t, 0).expect("t").to_rfc3339()}));
        }
        t += 300;
    }
    for w in s.workouts.values() {
        let (a, b) = (w.start.timestamp().max(from.timestamp()), w.end().timestamp().min(to.timestamp()));
        let mut t = a;
        while t <= b {
            let bpm = w.bpm + ((t - w.start.timestamp()) / 30 % 10) as f64;
            let at = DateTime::from_timestamp(t, 0).expect("t").to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            rows.insert(t, json!({"bpm": bpm, "source": "workout", "timestamp": at}));
            t += 5;
        }
    }
    (h, Json(paged(rows.into_values().collect(), &q, HR_PAGE))).into_response()
}

async fn daily_activity(
    State(f): State<FakeOura>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let h = match gate(&f, &headers, "daily_activity", "daily").await {
        Ok((_, h)) => h,
        Err(r) => return r,
    };
    let (from, to) = match dates(&q) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let s = f.lock();
    let items: Vec<Value> = s
        .steps
        .range(from..=to)
        .map(|(d, steps)| {
            json!({"id": format!("da-{d}"), "day": d.to_string(), "steps": steps, "active_calories": steps / 25,
                   "total_calories": 2100 + steps / 25, "high_activity_time": 600, "medium_activity_time": 1800,
                   "low_activity_time": 7200, "equivalent_walking_distance": steps * 7 / 10})
        })
        .collect();
    (h, Json(paged(items, &q, PAGE))).into_response()
}

async fn sleep(State(f): State<FakeOura>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let h = match gate(&f, &headers, "sleep", "daily").await {
        Ok((_, h)) => h,
        Err(r) => return r,
    };
    let (from, to) = match dates(&q) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let s = f.lock();
    let fmt = |t: DateTime<FixedOffset>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let items: Vec<Value> = s
        .sleeps
        .iter()
        // Oura files a period under the day it ends on.
        .filter(|p| (from..=to).contains(&p.bedtime_end.date_naive()))
        .map(|p| {
            let in_bed = (p.bedtime_end - p.bedtime_start).num_seconds();
            json!({"id": p.id, "day": p.bedtime_end.date_naive().to_string(), "type": p.kind,
                   "bedtime_start": fmt(p.bedtime_start), "bedtime_end": fmt(p.bedtime_end),
                   "total_sleep_duration": p.total_s, "time_in_bed": in_bed, "awake_time": in_bed - p.total_s,
                   "deep_sleep_duration": p.total_s / 5, "light_sleep_duration": p.total_s / 2, "rem_sleep_duration": p.total_s * 3 / 10,
                   "efficiency": 90, "average_heart_rate": 52.5, "lowest_heart_rate": 47, "average_hrv": 48})
        })
        .collect();
    (h, Json(paged(items, &q, PAGE))).into_response()
}

async fn personal_info(State(f): State<FakeOura>, headers: HeaderMap) -> Response {
    match gate(&f, &headers, "personal_info", "personal").await {
        Ok((user, h)) => {
            (h, Json(json!({"id": user, "age": 34, "weight": 68.0, "height": 1.72, "biological_sex": "female"})))
                .into_response()
        }
        Err(r) => r,
    }
}

/// The webhook API authenticates the application with `x-client-id` / `x-client-secret`.
fn app_ok(headers: &HeaderMap) -> bool {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    h("x-client-id") == CLIENT_ID && h("x-client-secret") == CLIENT_SECRET
}

fn subscription_json(s: &FakeSubscription) -> Value {
    json!({"id": s.id, "callback_url": s.callback_url, "event_type": s.event_type, "data_type": s.data_type,
           "expiration_time": s.expiration.to_rfc3339()})
}

async fn list_subscriptions(State(f): State<FakeOura>, headers: HeaderMap) -> Response {
    if !app_ok(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid client credentials.");
    }
    let mut s = f.lock();
    *s.by_path.entry("webhook/subscription".into()).or_default() += 1;
    Json(s.subscriptions.iter().map(subscription_json).collect::<Vec<_>>()).into_response()
}

/// Made only once the callback answers the challenge with it.
async fn create_subscription(State(f): State<FakeOura>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !app_ok(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid client credentials.");
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (callback, token, event, data) =
        (field("callback_url"), field("verification_token"), field("event_type"), field("data_type"));
    if callback.is_empty() || token.is_empty() || event.is_empty() || data.is_empty() {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "Validation Error", "missing field");
    }
    let challenge = format!("chl-{}", f.lock().serial + 17);
    let check = reqwest::Client::new()
        .get(&callback)
        .query(&[("verification_token", token.as_str()), ("challenge", challenge.as_str())])
        .send()
        .await;
    let echoed = match check {
        Ok(r) if r.status().is_success() => {
            r.json::<Value>().await.ok().and_then(|v| v["challenge"].as_str().map(str::to_string))
        }
        _ => None,
    };
    if echoed.as_deref() != Some(challenge.as_str()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "The callback URL did not answer the verification challenge.",
        );
    }
    let now = f.clock.now();
    let mut s = f.lock();
    s.serial += 1;
    let sub = FakeSubscription {
        id: format!("sub-{}", s.serial),
        callback_url: callback,
        event_type: event,
        data_type: data,
        expiration: now + Duration::days(30),
    };
    s.subscriptions.push(sub.clone());
    (StatusCode::CREATED, Json(subscription_json(&sub))).into_response()
}

async fn renew_subscription(State(f): State<FakeOura>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !app_ok(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid client credentials.");
    }
    let now = f.clock.now();
    let mut s = f.lock();
    s.renewals += 1;
    match s.subscriptions.iter_mut().find(|x| x.id == id) {
        Some(sub) => {
            sub.expiration = now + Duration::days(30);
            let body = subscription_json(sub);
            Json(body).into_response()
        }
        None => problem(StatusCode::NOT_FOUND, "Not Found", "Subscription not found."),
    }
}

pub async fn start(now: DateTime<Utc>) -> FakeOura {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let state = OuraState { max_users: 10, limit: 5000, ..OuraState::default() };
    let fake = FakeOura { state: Arc::new(Mutex::new(state)), clock: Arc::new(SimClock::new(now)), base };
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/v2/usercollection/personal_info", get(personal_info))
        .route("/v2/usercollection/workout", get(workouts))
        .route("/v2/usercollection/workout/{id}", get(one_workout))
        .route("/v2/usercollection/heartrate", get(heartrate))
        .route("/v2/usercollection/daily_activity", get(daily_activity))
        .route("/v2/usercollection/sleep", get(sleep))
        .route("/v2/webhook/subscription", get(list_subscriptions).post(create_subscription))
        .route("/v2/webhook/subscription/renew/{id}", put(renew_subscription))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

/// coachd's configuration pointed at the fake, links made for `public_url`.
pub fn config(fake: &FakeOura, public_url: &str) -> coachd::config::Config {
    let mut c = coachd::config::Config::default();
    c.web.public_url = public_url.to_string();
    let o = c.providers.get_mut("oura");
    o.client_id = CLIENT_ID.into();
    o.client_secret = coachd::crypto::Secret::new(CLIENT_SECRET.into());
    o.authorize_url = format!("{}/oauth/authorize", fake.base);
    o.token_url = format!("{}/oauth/token", fake.base);
    o.api_base = fake.base.clone();
    c
}
