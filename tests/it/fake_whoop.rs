//! A local server that answers like WHOOP's documented API v2: the OAuth token endpoint
//! (client credentials in the form body; a refresh token only with the `offline` scope;
//! every refresh rotates it, and a refresh that does not name `offline` again gets no new
//! one), scopes per endpoint; the collections `/v2/activity/workout` (and
//! `workout/{id}`) and `/v2/activity/sleep` with `start` (inclusive), `end` (exclusive),
//! `limit` (at most 25) and `nextToken` paging, newest first; `/v2/user/profile/basic`,
//! `/v2/user/measurement/body`, `DELETE /v2/user/access` (204); a per-application budget
//! of 100 requests a minute and 10,000 a day with the `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` headers, and 429 beyond it; signed
//! webhook deliveries; faults on demand. It runs on a simulated clock and counts what it
//! was asked.
//!
//! Every member sees the same data set (a benchmark connects many), each under ids of
//! their own (`w2` for [`USER`], `w2-u10130` for the next member), as WHOOP's UUIDs are.
//!
//! What WHOOP does not publish is chosen here and said so: the wording of error bodies
//! (OAuth errors as its Ory Hydra server writes them: `error`, `error_description`,
//! `status_code`), a missing scope answered 403, a refresh token presented a second time
//! revoking the whole grant (Hydra's reuse detection), windows that start with their first
//! request, and no `Retry-After` on a 429 unless a test asks for one.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use coachd::providers::clock::{Clock, SimClock};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "whoop-app-1f2e";
pub const CLIENT_SECRET: &str = "whoop-app-secret";
/// The member's WHOOP user id (a number).
pub const USER: i64 = 10129;
pub const ALL_SCOPES: &str = "offline read:workout read:sleep read:profile read:body_measurement";
pub const PAGE: usize = 25;
/// The max HR WHOOP knows for the member.
pub const MAX_HR: u32 = 190;
pub const MINUTE_LIMIT: u32 = 100;
pub const DAILY_LIMIT: u32 = 10_000;

#[derive(Clone, Debug)]
pub struct FakeWorkout {
    pub id: String,
    pub sport: String,
    /// Local start with its offset.
    pub start: DateTime<FixedOffset>,
    pub minutes: i64,
    /// Minutes in WHOOP's zones 0-5.
    pub zones: [i64; 6],
    /// SCORED, PENDING_SCORE or UNSCORABLE.
    pub state: String,
}

impl FakeWorkout {
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.start + Duration::minutes(self.minutes)
    }

    pub fn new(id: &str, sport: &str, start: DateTime<FixedOffset>, minutes: i64, zones: [i64; 6]) -> Self {
        Self { id: id.into(), sport: sport.into(), start, minutes, zones, state: "SCORED".into() }
    }
}

#[derive(Clone, Debug)]
pub struct FakeSleep {
    pub id: String,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    pub nap: bool,
    pub awake_min: i64,
    pub no_data_min: i64,
    pub scored: bool,
}

impl FakeSleep {
    pub fn night(id: &str, start: DateTime<FixedOffset>, end: DateTime<FixedOffset>, awake_min: i64) -> Self {
        Self { id: id.into(), start, end, nap: false, awake_min, no_data_min: 0, scored: true }
    }
}

#[derive(Default)]
pub struct WhoopState {
    pub workouts: BTreeMap<String, FakeWorkout>,
    pub sleeps: Vec<FakeSleep>,
    /// Authorization codes → (user, scopes granted).
    pub codes: HashMap<String, (i64, String)>,
    /// Access token → (user, expiry, scopes).
    pub access: HashMap<String, (i64, DateTime<Utc>, String)>,
    /// Each user's one live refresh token.
    pub refresh: HashMap<i64, String>,
    /// Refresh tokens already spent (rotated away), with whose they were.
    pub spent: HashMap<String, i64>,
    pub serial: u32,
    pub refreshes: u32,
    /// Refresh requests that named no `offline` scope.
    pub refreshes_without_offline: u32,
    /// Spent refresh tokens presented again (each revokes the grant).
    pub reused_refreshes: u32,
    pub revocations: u32,
    /// Responses to give instead of the real one, first first: (status, body); 0 serves
    /// the request normally.
    pub faults: Vec<(u16, String)>,
    /// Seconds a faulted 429 names in `X-RateLimit-Reset` (and `Retry-After` if set).
    pub fault_reset: u32,
    pub retry_after: Option<String>,
    /// Hang the next API request (a crash right after a refresh answer).
    pub hang_next_api: bool,
    /// The application's windows: (start, used) of the minute and of the day; requests
    /// other installs of the app made count too.
    pub minute: (i64, u32),
    pub day: (i64, u32),
    pub minute_limit: u32,
    /// Requests refused for the budget.
    pub limited: u32,
    pub api_requests: u32,
    pub by_path: BTreeMap<String, u32>,
}

#[derive(Clone)]
pub struct FakeWhoop {
    pub state: Arc<Mutex<WhoopState>>,
    pub clock: Arc<SimClock>,
    pub base: String,
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

fn oauth_error(code: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description, "status_code": code.as_u16()});
    (code, Json(body)).into_response()
}

impl FakeWhoop {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, WhoopState> {
        self.state.lock().expect("fake state")
    }

    /// A code for `user` granting `scopes` (what the consent page gives).
    pub fn issue_code(&self, user: i64, scopes: &str) -> String {
        let mut s = self.lock();
        s.serial += 1;
        let code = format!("whoop-code-{}", s.serial);
        s.codes.insert(code.clone(), (user, scopes.to_string()));
        code
    }

    /// Figures read under one lock (two `lock()`s in one expression would deadlock).
    pub fn tally<T>(&self, f: impl FnOnce(&WhoopState) -> T) -> T {
        f(&self.lock())
    }

    pub fn refresh_token(&self) -> Option<String> {
        self.lock().refresh.get(&USER).cloned()
    }

    pub fn requests(&self, path: &str) -> u32 {
        self.lock().by_path.get(path).copied().unwrap_or(0)
    }

    /// Sign a delivery as WHOOP does: base64 HMAC-SHA256(secret, timestamp + body).
    pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("mac");
        mac.update(timestamp.as_bytes());
        mac.update(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

fn token_pair(s: &mut WhoopState, now: DateTime<Utc>, user: i64, scopes: &str, rotate: bool) -> Value {
    s.serial += 1;
    let access = format!("whoop-access-{}", s.serial);
    s.access.insert(access.clone(), (user, now + Duration::seconds(3600), scopes.to_string()));
    let mut body = json!({"access_token": access, "expires_in": 3600, "scope": scopes, "token_type": "bearer"});
    if rotate {
        let refresh = format!("whoop-refresh-{}", s.serial);
        s.refresh.insert(user, refresh.clone());
        body["refresh_token"] = refresh.into();
    }
    body
}

async fn token(State(f): State<FakeWhoop>, Form(form): Form<HashMap<String, String>>) -> Response {
    let now = f.clock.now();
    let mut s = f.lock();
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((user, scopes)) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The provided authorization grant is invalid, expired, or revoked.",
                );
            };
            if form.get("redirect_uri").is_none_or(String::is_empty) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The redirect_uri is missing.");
            }
            let offline = scopes.split(' ').any(|x| x == "offline");
            Json(token_pair(&mut s, now, user, &scopes, offline)).into_response()
        }
        Some("refresh_token") => {
            let sent = form.get("refresh_token").cloned().unwrap_or_default();
            if let Some(user) = s.spent.get(&sent).copied() {
                // Presented again: the whole grant is revoked.
                s.reused_refreshes += 1;
                s.refresh.remove(&user);
                s.access.retain(|_, (u, ..)| *u != user);
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token has already been used; the grant was revoked.",
                );
            }
            let Some(user) = s.refresh.iter().find(|(_, r)| **r == sent).map(|(u, _)| *u) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The provided authorization grant (e.g., refresh token) is invalid, expired, or revoked.",
                );
            };
            s.refreshes += 1;
            s.spent.insert(sent, user);
            s.refresh.remove(&user);
            let offline = form.get("scope").is_some_and(|sc| sc.split(' ').any(|x| x == "offline"));
            if !offline {
                s.refreshes_without_offline += 1;
            }
            let scopes = s.access.values().find(|(u, ..)| *u == user).map(|(_, _, sc)| sc.clone());
            let scopes = scopes.unwrap_or_else(|| ALL_SCOPES.to_string());
            Json(token_pair(&mut s, now, user, &scopes, offline)).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "The grant type is not supported."),
    }
}

/// The rate-limit headers of the window closest to its end of budget.
fn limit_headers(s: &WhoopState, h: &mut HeaderMap, now: i64) {
    let minute_left = s.minute_limit.saturating_sub(s.minute.1);
    let day_left = DAILY_LIMIT.saturating_sub(s.day.1);
    let (limit, left, reset) = if day_left < minute_left {
        (DAILY_LIMIT, day_left, s.day.0 + 86_400 - now)
    } else {
        (s.minute_limit, minute_left, s.minute.0 + 60 - now)
    };
    let policy = format!("{limit}, {};window=60, {DAILY_LIMIT};window=86400", s.minute_limit);
    h.insert("x-ratelimit-limit", policy.parse().expect("header"));
    h.insert("x-ratelimit-remaining", left.to_string().parse().expect("header"));
    h.insert("x-ratelimit-reset", reset.max(0).to_string().parse().expect("header"));
}

/// Budget, faults, and the bearer token with its scope for an API request: Ok(user).
async fn gate(f: &FakeWhoop, headers: &HeaderMap, path: &str, scope: &str) -> Result<(i64, HeaderMap), Response> {
    let hang = std::mem::take(&mut f.lock().hang_next_api);
    if hang {
        std::future::pending::<()>().await;
    }
    let now = f.clock.now().timestamp();
    let mut s = f.lock();
    s.api_requests += 1;
    *s.by_path.entry(path.to_string()).or_default() += 1;
    // Windows start with their first request.
    if now >= s.minute.0 + 60 {
        s.minute = (now, 0);
    }
    if now >= s.day.0 + 86_400 {
        s.day = (now, 0);
    }
    let mut h = HeaderMap::new();
    if s.minute.1 >= s.minute_limit || s.day.1 >= DAILY_LIMIT {
        s.limited += 1;
        limit_headers(&s, &mut h, now);
        return Err((StatusCode::TOO_MANY_REQUESTS, h, Json(json!({"error": "Too Many Requests"}))).into_response());
    }
    s.minute.1 += 1;
    s.day.1 += 1;
    limit_headers(&s, &mut h, now);
    if s.faults.first().is_some_and(|x| x.0 == 0) {
        s.faults.remove(0);
    } else if !s.faults.is_empty() {
        let (code, body) = s.faults.remove(0);
        if code == 429 {
            h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
            h.insert("x-ratelimit-reset", s.fault_reset.to_string().parse().expect("header"));
            if let Some(r) = s.retry_after.as_deref() {
                h.insert("retry-after", r.parse().expect("header"));
            }
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
        return Err(error(StatusCode::UNAUTHORIZED, "Authorization was not valid"));
    };
    if expires <= f.clock.now() {
        return Err(error(StatusCode::UNAUTHORIZED, "Authorization has expired"));
    }
    if !scope.is_empty() && !scopes.split(' ').any(|x| x == scope) {
        return Err(error(StatusCode::FORBIDDEN, &format!("Missing scope {scope}")));
    }
    Ok((user, h))
}

/// A collection query's `start` (inclusive; none: no lower bound), `end` (exclusive) and
/// `limit`.
type Span = (Option<DateTime<Utc>>, DateTime<Utc>, usize);

/// `start` (inclusive), `end` (exclusive, default now) and `limit` of a collection query.
fn span(f: &FakeWhoop, q: &HashMap<String, String>) -> Result<Span, Box<Response>> {
    let when = |key: &str| -> Result<Option<DateTime<Utc>>, Box<Response>> {
        match q.get(key) {
            None => Ok(None),
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, &format!("{key} must be an ISO 8601 date-time")))),
        }
    };
    let limit: usize = q.get("limit").map_or(Ok(10), |l| l.parse()).unwrap_or(0);
    if !(1..=PAGE).contains(&limit) {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "limit must be between 1 and 25")));
    }
    Ok((when("start")?, when("end")?.unwrap_or_else(|| f.clock.now()), limit))
}

/// One page of `items` (newest first), from `nextToken` (an offset here).
fn paged(items: Vec<Value>, q: &HashMap<String, String>, size: usize) -> Value {
    let from: usize = q.get("nextToken").and_then(|t| t.strip_prefix("o")).and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(from).take(size).cloned().collect();
    let mut body = json!({ "records": page });
    if from + size < items.len() {
        body["next_token"] = format!("o{}", from + size).into();
    }
    body
}

fn stamp(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn tz(t: DateTime<FixedOffset>) -> String {
    t.offset().to_string()
}

/// An item's id as `user` sees it.
fn id_for(id: &str, user: i64) -> String {
    if user == USER {
        id.to_string()
    } else {
        format!("{id}-u{user}")
    }
}

fn workout_json(w: &FakeWorkout, user: i64) -> Value {
    let mut v = json!({
        "id": id_for(&w.id, user), "user_id": user, "created_at": stamp(w.end()), "updated_at": stamp(w.end()),
        "start": stamp(w.start), "end": stamp(w.end()), "timezone_offset": tz(w.start),
        "sport_name": w.sport, "score_state": w.state,
    });
    if w.state == "SCORED" {
        let z = |i: usize| w.zones[i] * 60_000;
        v["score"] = json!({
            "strain": 8.2463, "average_heart_rate": 131, "max_heart_rate": 163, "kilojoule": 35.0 * w.minutes as f64,
            "percent_recorded": 100.0, "distance_meter": 150.0 * w.minutes as f64, "altitude_gain_meter": 12.5,
            "altitude_change_meter": -0.8,
            "zone_durations": {"zone_zero_milli": z(0), "zone_one_milli": z(1), "zone_two_milli": z(2),
                               "zone_three_milli": z(3), "zone_four_milli": z(4), "zone_five_milli": z(5)}
        });
    }
    v
}

fn sleep_json(p: &FakeSleep, user: i64) -> Value {
    let in_bed = (p.end - p.start).num_milliseconds();
    let (awake, none) = (p.awake_min * 60_000, p.no_data_min * 60_000);
    let asleep = in_bed - awake - none;
    let mut v = json!({
        "id": id_for(&p.id, user), "cycle_id": 93845, "user_id": user, "created_at": stamp(p.end), "updated_at": stamp(p.end),
        "start": stamp(p.start), "end": stamp(p.end), "timezone_offset": tz(p.start), "nap": p.nap,
        "score_state": if p.scored { "SCORED" } else { "PENDING_SCORE" },
    });
    if p.scored {
        v["score"] = json!({
            "stage_summary": {"total_in_bed_time_milli": in_bed, "total_awake_time_milli": awake,
                              "total_no_data_time_milli": none, "total_light_sleep_time_milli": asleep / 2,
                              "total_slow_wave_sleep_time_milli": asleep / 4, "total_rem_sleep_time_milli": asleep - asleep / 2 - asleep / 4,
                              "sleep_cycle_count": 4, "disturbance_count": 9},
            "sleep_needed": {"baseline_milli": 27_395_716, "need_from_sleep_debt_milli": 352_230,
                             "need_from_recent_strain_milli": 208_595, "need_from_recent_nap_milli": -12_312},
            "respiratory_rate": 16.1, "sleep_performance_percentage": 91.0, "sleep_consistency_percentage": 88.0,
            "sleep_efficiency_percentage": 93.5
        });
    }
    v
}

/// Whether `[a, b)` meets the query's `[start, end)`.
fn meets(a: DateTime<Utc>, b: DateTime<Utc>, start: Option<DateTime<Utc>>, end: DateTime<Utc>) -> bool {
    start.is_none_or(|s| b > s) && a < end
}

async fn workouts(
    State(f): State<FakeWhoop>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (user, h) = match gate(&f, &headers, "workout", "read:workout").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (start, end, limit) = match span(&f, &q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let s = f.lock();
    let mut items: Vec<&FakeWorkout> = s
        .workouts
        .values()
        .filter(|w| meets(w.start.with_timezone(&Utc), w.end().with_timezone(&Utc), start, end))
        .collect();
    items.sort_by_key(|w| std::cmp::Reverse(w.start));
    (h, Json(paged(items.into_iter().map(|w| workout_json(w, user)).collect(), &q, limit))).into_response()
}

async fn one_workout(State(f): State<FakeWhoop>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (user, h) = match gate(&f, &headers, "workout/{id}", "read:workout").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let suffix = format!("-u{user}");
    let theirs = if user == USER { id.as_str() } else { id.strip_suffix(&suffix).unwrap_or("") };
    match f.lock().workouts.get(theirs) {
        Some(w) => (h, Json(workout_json(w, user))).into_response(),
        None => error(StatusCode::NOT_FOUND, "No resource found"),
    }
}

async fn sleeps(State(f): State<FakeWhoop>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let (user, h) = match gate(&f, &headers, "sleep", "read:sleep").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (start, end, limit) = match span(&f, &q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let s = f.lock();
    let mut items: Vec<&FakeSleep> =
        s.sleeps.iter().filter(|p| meets(p.start.with_timezone(&Utc), p.end.with_timezone(&Utc), start, end)).collect();
    items.sort_by_key(|p| std::cmp::Reverse(p.start));
    (h, Json(paged(items.into_iter().map(|p| sleep_json(p, user)).collect(), &q, limit))).into_response()
}

async fn profile(State(f): State<FakeWhoop>, headers: HeaderMap) -> Response {
    match gate(&f, &headers, "profile/basic", "read:profile").await {
        Ok((user, h)) => {
            (h, Json(json!({"user_id": user, "email": "alex@example.org", "first_name": "Alex", "last_name": "Meyer"})))
                .into_response()
        }
        Err(r) => r,
    }
}

async fn body(State(f): State<FakeWhoop>, headers: HeaderMap) -> Response {
    match gate(&f, &headers, "measurement/body", "read:body_measurement").await {
        Ok((_, h)) => (h, Json(json!({"height_meter": 1.8288, "weight_kilogram": 90.7185, "max_heart_rate": MAX_HR})))
            .into_response(),
        Err(r) => r,
    }
}

/// Revoke the access token's grant: its access and refresh tokens die.
async fn revoke(State(f): State<FakeWhoop>, headers: HeaderMap) -> Response {
    match gate(&f, &headers, "user/access", "").await {
        Ok((user, h)) => {
            let mut s = f.lock();
            s.revocations += 1;
            s.access.retain(|_, (u, ..)| *u != user);
            s.refresh.remove(&user);
            (StatusCode::NO_CONTENT, h).into_response()
        }
        Err(r) => r,
    }
}

pub async fn start(now: DateTime<Utc>) -> FakeWhoop {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let state = WhoopState { minute_limit: MINUTE_LIMIT, ..WhoopState::default() };
    let fake = FakeWhoop { state: Arc::new(Mutex::new(state)), clock: Arc::new(SimClock::new(now)), base };
    let app = Router::new()
        .route("/oauth/oauth2/token", post(token))
        .route("/developer/v2/user/profile/basic", get(profile))
        .route("/developer/v2/user/measurement/body", get(body))
        .route("/developer/v2/user/access", delete(revoke))
        .route("/developer/v2/activity/workout", get(workouts))
        .route("/developer/v2/activity/workout/{id}", get(one_workout))
        .route("/developer/v2/activity/sleep", get(sleeps))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

/// coachd's configuration pointed at the fake, links made for `public_url`.
pub fn config(fake: &FakeWhoop, public_url: &str) -> coachd::config::Config {
    let mut c = coachd::config::Config::default();
    c.web.public_url = public_url.to_string();
    let w = c.providers.get_mut("whoop");
    w.client_id = CLIENT_ID.into();
    w.client_secret = coachd::crypto::Secret::new(CLIENT_SECRET.into());
    w.authorize_url = format!("{}/oauth/oauth2/auth", fake.base);
    w.token_url = format!("{}/oauth/oauth2/token", fake.base);
    w.api_base = format!("{}/developer", fake.base);
    c
}
