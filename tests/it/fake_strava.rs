//! A local server that answers like Strava's documented API v3 (and intervals.icu's
//! activity endpoints under /intervals): the OAuth token endpoint with rotating refresh
//! tokens, the activity list with `after`/`page`/`per_page`, key_by_type streams,
//! single activities, the athlete; per-application read limits in windows aligned to
//! :00/:15/:30/:45 and midnight UTC on a simulated clock, with Strava's usage headers
//! and 429 body. It counts requests, and the requests it had to refuse for the limits.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, Utc};
use coachd::providers::clock::{Clock, SimClock};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "4711";
pub const CLIENT_SECRET: &str = "app-secret";
pub const ATHLETE: i64 = 9001;

#[derive(Clone, Debug)]
pub struct FakeActivity {
    pub id: i64,
    pub start: DateTime<Utc>,
    pub minutes: i64,
    pub sport: String,
    pub hr: bool,
    pub name: String,
}

#[derive(Default)]
pub struct FakeState {
    pub activities: BTreeMap<i64, FakeActivity>,
    /// Issued authorization codes → athlete.
    pub codes: HashMap<String, i64>,
    /// The PKCE verifier of the last code exchange, if one was sent.
    pub last_verifier: Option<String>,
    /// access token → (athlete, expiry).
    pub access: HashMap<String, (i64, DateTime<Utc>)>,
    /// Each athlete's one valid refresh token (rotation kills the previous one).
    pub refresh: HashMap<i64, String>,
    /// Activity id → athlete, for activities not of [`ATHLETE`].
    pub owner: HashMap<i64, i64>,
    pub refreshes: u32,
    /// Refresh tokens sent that were not (or no longer) valid: a stale one spent.
    pub stale_refreshes: u32,
    pub serial: u32,
    pub deauthorized: bool,
    /// Responses to give instead of the real one, first first: (status, body).
    pub faults: Vec<(u16, String)>,
    /// A `Retry-After` value sent with 429 faults.
    pub retry_after: Option<String>,
    /// Activity id → the elapsed time (s) to claim instead of its own.
    pub elapsed_override: HashMap<i64, f64>,
    /// intervals.icu: (id, start) of stubs for activities that came from Strava.
    pub icu_stubs: Vec<(String, DateTime<Utc>)>,
    /// Make the next API request hang (a "crash" right after a refresh).
    pub hang_next_api: bool,
    pub api_requests: u32,
    pub list_requests: u32,
    pub stream_requests: u32,
    /// Requests refused with 429 because a window was full: coachd's own scheduling
    /// must never cause one.
    pub limited: u32,
    /// (window start, used) for the 15-minute and the daily window.
    pub q: (i64, u32),
    pub d: (i64, u32),
    pub intervals_key: Option<String>,
    /// Polar: exercises as AccessLink lists them, daily activity, registered users.
    pub polar_exercises: Vec<serde_json::Value>,
    pub polar_days: Vec<serde_json::Value>,
    pub polar_registered: u32,
    pub polar_access: Option<String>,
    /// Polar users de-registered (`DELETE /v3/users/{id}`).
    pub polar_deregistered: u32,
    /// How long every authorized API request takes (0: at once), so that two processes
    /// syncing one account at the same time would overlap visibly.
    pub api_delay_ms: u64,
    /// Per athlete: authorized requests being served now, and the most ever at once.
    pub in_flight: HashMap<i64, u32>,
    pub most_at_once: HashMap<i64, u32>,
    /// Per athlete, when each authorized request arrived.
    pub seen: Vec<(i64, std::time::Instant)>,
    /// Make every API request sent to this `Host` hang (one of two replicas that reach
    /// the fake by different names), and how many did.
    pub hang_host: Option<String>,
    pub hung: u32,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub clock: Arc<SimClock>,
    pub base: String,
}

impl Fake {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state")
    }

    /// Add `n` activities, one a day going back from `last`, all with heart rate.
    pub fn add_activities(&self, n: i64, last: DateTime<Utc>) {
        let mut s = self.lock();
        for i in 0..n {
            let id = 1_000_000 + i;
            let start = last - Duration::hours(12 * i);
            s.activities.insert(
                id,
                FakeActivity { id, start, minutes: 30, sport: "Run".into(), hr: true, name: format!("run {i}") },
            );
        }
    }

    pub fn issue_code(&self) -> String {
        self.issue_code_for(ATHLETE)
    }

    pub fn issue_code_for(&self, athlete: i64) -> String {
        let mut s = self.lock();
        s.serial += 1;
        let code = format!("code-{}", s.serial);
        s.codes.insert(code.clone(), athlete);
        code
    }

    /// The valid refresh token of [`ATHLETE`].
    pub fn refresh_token(&self) -> Option<String> {
        self.lock().refresh.get(&ATHLETE).cloned()
    }
}

fn token_pair(s: &mut FakeState, now: DateTime<Utc>, who: i64, athlete: bool) -> serde_json::Value {
    s.serial += 1;
    let access = format!("access-{}", s.serial);
    let refresh = format!("refresh-{}", s.serial);
    let expires = now + Duration::hours(6);
    s.access.insert(access.clone(), (who, expires));
    s.refresh.insert(who, refresh.clone());
    let mut body = json!({
        "token_type": "Bearer", "access_token": access, "refresh_token": refresh,
        "expires_at": expires.timestamp(), "expires_in": 21600
    });
    if athlete {
        body["athlete"] = json!({"id": who, "firstname": "Alex", "lastname": "Demo"});
    }
    body
}

fn strava_error(code: StatusCode, message: &str, resource: &str, field: &str, what: &str) -> Response {
    (code, Json(json!({"message": message, "errors": [{"resource": resource, "field": field, "code": what}]})))
        .into_response()
}

async fn token(State(f): State<Fake>, Form(form): Form<HashMap<String, String>>) -> Response {
    let now = f.clock.now();
    let mut s = f.lock();
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return strava_error(StatusCode::UNAUTHORIZED, "Authorization Error", "Application", "client_id", "invalid");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = form.get("code") else {
                return strava_error(StatusCode::BAD_REQUEST, "Bad Request", "AuthorizationCode", "code", "missing");
            };
            s.last_verifier = form.get("code_verifier").cloned();
            let Some(who) = s.codes.remove(code) else {
                return strava_error(StatusCode::BAD_REQUEST, "Bad Request", "AuthorizationCode", "code", "invalid");
            };
            Json(token_pair(&mut s, now, who, true)).into_response()
        }
        Some("refresh_token") => {
            let sent = form.get("refresh_token").cloned().unwrap_or_default();
            let who = s.refresh.iter().find(|(_, r)| **r == sent).map(|(a, _)| *a);
            if who.is_none() {
                s.stale_refreshes += 1;
            }
            let Some(who) = who.filter(|_| !s.deauthorized) else {
                return strava_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "RefreshToken",
                    "refresh_token",
                    "invalid",
                );
            };
            s.refreshes += 1;
            Json(token_pair(&mut s, now, who, false)).into_response()
        }
        _ => strava_error(StatusCode::BAD_REQUEST, "Bad Request", "Grant", "grant_type", "invalid"),
    }
}

/// Authorization, faults, rate limits and headers for an API request; Ok((headers,
/// athlete)) to serve it.
async fn gate(f: &Fake, headers: &HeaderMap) -> Result<(HeaderMap, i64), Response> {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let hang = {
        let mut s = f.lock();
        let hang = std::mem::take(&mut s.hang_next_api) || s.hang_host.as_deref().is_some_and(|h| h == host);
        s.hung += u32::from(hang);
        hang
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let (h, who, delay) = admit(f, headers).map_err(|r| *r)?;
    if delay > 0 {
        // Counted out however the request ends (a client that hangs up drops this future).
        let _counted = InFlight(f.clone(), who);
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    Ok((h, who))
}

/// One request of an athlete being served (see [`FakeState::in_flight`]).
struct InFlight(Fake, i64);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = self.0.lock().in_flight.get_mut(&self.1) {
            *n = n.saturating_sub(1);
        }
    }
}

/// [`gate`] under the state's lock: Ok((headers, athlete, how long to take)).
fn admit(f: &Fake, headers: &HeaderMap) -> Result<(HeaderMap, i64, u64), Box<Response>> {
    let now = f.clock.now();
    let mut s = f.lock();
    s.api_requests += 1;
    let t = now.timestamp();
    let (q0, d0) = (t - t.rem_euclid(900), t - t.rem_euclid(86400));
    if s.q.0 != q0 {
        s.q = (q0, 0);
    }
    if s.d.0 != d0 {
        s.d = (d0, 0);
    }
    let full = s.q.1 >= 100 || s.d.1 >= 1000;
    let mut h = HeaderMap::new();
    let usage = |s: &FakeState| format!("{},{}", s.q.1, s.d.1);
    h.insert("x-ratelimit-limit", "200,2000".parse().expect("header"));
    h.insert("x-readratelimit-limit", "100,1000".parse().expect("header"));
    if full {
        s.limited += 1;
        h.insert("x-readratelimit-usage", usage(&s).parse().expect("header"));
        h.insert("x-ratelimit-usage", usage(&s).parse().expect("header"));
        let body = json!({"message": "Rate Limit Exceeded", "errors": [{"resource": "Application", "field": "rate limit", "code": "exceeded"}]});
        return Err(Box::new((StatusCode::TOO_MANY_REQUESTS, h, Json(body)).into_response()));
    }
    s.q.1 += 1;
    s.d.1 += 1;
    h.insert("x-readratelimit-usage", usage(&s).parse().expect("header"));
    h.insert("x-ratelimit-usage", usage(&s).parse().expect("header"));
    // A fault of code 0 is a request served normally (to place faults at points); code 1
    // cuts the connection mid-body (a 200 that promises more than it sends).
    if s.faults.first().is_some_and(|f| f.0 == 0) {
        s.faults.remove(0);
    } else if s.faults.first().is_some_and(|f| f.0 == 1) {
        s.faults.remove(0);
        let cut = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("content-length", "100000")
            .body(axum::body::Body::from("[{\"id\": 1"))
            .expect("response");
        return Err(Box::new(cut));
    } else if !s.faults.is_empty() {
        let (code, body) = s.faults.remove(0);
        if let (429, Some(r)) = (code, s.retry_after.as_deref()) {
            h.insert("retry-after", r.parse().expect("header"));
        }
        let code = StatusCode::from_u16(code).expect("status");
        return Err(Box::new((code, h, body).into_response()));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let who = s.access.get(token).filter(|(_, e)| *e > now).map(|(a, _)| *a);
    let who = match who {
        Some(who) if !s.deauthorized => who,
        _ => return Err(Box::new((StatusCode::UNAUTHORIZED, h, Json(json!({"message": "Authorization Error", "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}]}))).into_response())),
    };
    s.seen.push((who, std::time::Instant::now()));
    let delay = s.api_delay_ms;
    if delay > 0 {
        let n = s.in_flight.entry(who).or_default();
        *n += 1;
        let n = *n;
        let most = s.most_at_once.entry(who).or_default();
        *most = (*most).max(n);
    }
    Ok((h, who, delay))
}

fn summary(a: &FakeActivity) -> serde_json::Value {
    json!({
        "resource_state": 2, "athlete": {"id": ATHLETE, "resource_state": 1}, "name": a.name,
        "distance": 5000.0, "moving_time": a.minutes * 60 - 30, "elapsed_time": a.minutes * 60,
        "total_elevation_gain": 12.0, "type": a.sport, "sport_type": a.sport, "id": a.id,
        "start_date": a.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "start_date_local": a.start.naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "timezone": "(GMT+01:00) Europe/Berlin", "utc_offset": 3600.0, "trainer": false, "manual": false,
        "has_heartrate": a.hr, "average_heartrate": if a.hr { json!(141.5) } else { json!(null) },
        "max_heartrate": if a.hr { json!(171.0) } else { json!(null) }
    })
}

async fn list(State(f): State<Fake>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let (h, who) = match gate(&f, &headers).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let mut s = f.lock();
    s.list_requests += 1;
    let after: i64 = q.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).min(200);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mut acts: Vec<&FakeActivity> = s
        .activities
        .values()
        .filter(|a| a.start.timestamp() > after && s.owner.get(&a.id).copied().unwrap_or(ATHLETE) == who)
        .collect();
    acts.sort_by_key(|a| a.start);
    let items: Vec<_> = acts
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|a| {
            let mut v = summary(a);
            if let Some(e) = s.elapsed_override.get(&a.id) {
                v["elapsed_time"] = json!(e);
            }
            v
        })
        .collect();
    (h, Json(items)).into_response()
}

async fn streams(State(f): State<Fake>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let h = match gate(&f, &headers).await {
        Ok((h, _)) => h,
        Err(r) => return r,
    };
    let mut s = f.lock();
    s.stream_requests += 1;
    let Some(a) = s.activities.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, h, Json(json!({"message": "Record Not Found", "errors": [{"resource": "Activity", "field": "id", "code": "invalid"}]}))).into_response();
    };
    let n = a.minutes * 60;
    let time: Vec<i64> = (0..n).step_by(5).collect();
    let hr: Vec<i64> = time.iter().map(|t| 120 + (t / 30) % 40).collect();
    let body = json!({
        "time": {"data": time, "series_type": "distance", "original_size": time.len(), "resolution": "high"},
        "heartrate": {"data": hr, "series_type": "distance", "original_size": hr.len(), "resolution": "high"}
    });
    (h, Json(body)).into_response()
}

async fn one(State(f): State<Fake>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let h = match gate(&f, &headers).await {
        Ok((h, _)) => h,
        Err(r) => return r,
    };
    let s = f.lock();
    match s.activities.get(&id) {
        Some(a) => (h, Json(summary(a))).into_response(),
        None => (StatusCode::NOT_FOUND, h, Json(json!({"message": "Record Not Found", "errors": []}))).into_response(),
    }
}

async fn athlete(State(f): State<Fake>, headers: HeaderMap) -> Response {
    match gate(&f, &headers).await {
        Ok((h, who)) => (h, Json(json!({"id": who, "firstname": "Alex"}))).into_response(),
        Err(r) => r,
    }
}

/// intervals.icu: Basic API_KEY:key.
fn intervals_ok(f: &Fake, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let want = f.lock().intervals_key.clone().unwrap_or_default();
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("API_KEY:{want}")));
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn icu_athlete(State(f): State<Fake>, headers: HeaderMap) -> Response {
    if !intervals_ok(&f, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": 401, "error": "Unauthorized"}))).into_response();
    }
    Json(json!({"id": "i12345", "name": "Alex"})).into_response()
}

async fn icu_activities(
    State(f): State<Fake>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !intervals_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(oldest), Some(newest)) = (q.get("oldest"), q.get("newest")) else {
        return (StatusCode::BAD_REQUEST, "oldest and newest are required").into_response();
    };
    let s = f.lock();
    let items: Vec<_> = s
        .activities
        .values()
        .filter(|a| {
            let d = a.start.date_naive().to_string();
            d >= *oldest && d <= *newest
        })
        .map(|a| {
            let elapsed = s.elapsed_override.get(&a.id).copied().unwrap_or((a.minutes * 60) as f64);
            json!({"id": format!("i{}", a.id), "type": a.sport, "start_date": a.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                   "start_date_local": (a.start + Duration::hours(1)).naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
                   "elapsed_time": elapsed, "moving_time": a.minutes * 60, "distance": 5000.0,
                   "average_heartrate": if a.hr { json!(140) } else { json!(null) }, "max_heartrate": if a.hr { json!(170) } else { json!(null) }})
        })
        .chain(s.icu_stubs.iter().filter(|(_, t)| {
            let d = t.date_naive().to_string();
            d >= *oldest && d <= *newest
        }).map(|(id, t)| {
            // As intervals.icu lists an activity that reached it from Strava.
            json!({"id": id, "start_date_local": t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(), "source": "STRAVA",
                   "_note": "STRAVA activities are not available via the API"})
        }))
        .collect();
    Json(items).into_response()
}

async fn icu_streams(State(f): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !intervals_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = id.trim_start_matches('i').trim_end_matches(".json").parse::<i64>().unwrap_or(-1);
    let s = f.lock();
    let Some(a) = s.activities.get(&id) else { return StatusCode::NOT_FOUND.into_response() };
    let time: Vec<i64> = (0..a.minutes * 60).collect();
    let hr: Vec<i64> = time.iter().map(|t| 125 + t % 30).collect();
    Json(json!([{"type": "time", "data": time}, {"type": "heartrate", "data": hr}])).into_response()
}

async fn polar_token(State(f): State<Fake>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    use base64::Engine;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut s = f.lock();
    let Some(code) = form.get("code") else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request"}))).into_response();
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") || s.codes.remove(code).is_none() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    }
    s.serial += 1;
    let token = format!("polar-access-{}", s.serial);
    s.polar_access = Some(token.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 31535999, "x_user_id": 475}))
        .into_response()
}

fn polar_ok(f: &Fake, headers: &HeaderMap) -> bool {
    let s = f.lock();
    let want = s.polar_access.as_ref().map(|t| format!("Bearer {t}"));
    want.is_some() && headers.get("authorization").and_then(|v| v.to_str().ok()) == want.as_deref()
}

async fn polar_register(State(f): State<Fake>, headers: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
    if !polar_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if body.get("member-id").and_then(|v| v.as_str()).is_none_or(str::is_empty) {
        return (StatusCode::BAD_REQUEST, "member-id is required").into_response();
    }
    let mut s = f.lock();
    s.polar_registered += 1;
    if s.polar_registered > 1 {
        return (StatusCode::CONFLICT, "User already registered").into_response();
    }
    Json(json!({"polar-user-id": 475, "member-id": body["member-id"], "registration-date": "2026-11-20T10:07:00Z"}))
        .into_response()
}

/// `POST /oauth/deauthorize` with the access token (a bearer header or `access_token`):
/// every token of the athlete dies; Strava answers with the token.
async fn deauthorize(State(f): State<Fake>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| q.get("access_token").cloned())
        .unwrap_or_default();
    let mut s = f.lock();
    let Some((athlete, _)) = s.access.get(&sent).cloned() else {
        let body = json!({"message": "Authorization Error", "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}]});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    s.access.retain(|_, (a, _)| *a != athlete);
    s.refresh.remove(&athlete);
    s.deauthorized = true;
    Json(json!({"access_token": sent})).into_response()
}

/// `DELETE /v3/users/{user-id}`: the user is de-registered and the token stops working.
async fn polar_deregister(State(f): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !polar_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if id != "475" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut s = f.lock();
    s.polar_access = None;
    s.polar_registered = 0;
    s.polar_deregistered += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn polar_exercises(State(f): State<Fake>, headers: HeaderMap) -> Response {
    if !polar_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let h = [("ratelimit-usage", "3, 40"), ("ratelimit-limit", "520, 5100")];
    (h, Json(f.lock().polar_exercises.clone())).into_response()
}

async fn polar_exercise(State(f): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !polar_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match f.lock().polar_exercises.iter().find(|e| e["id"] == id.as_str()) {
        Some(e) => Json(e.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn polar_days(State(f): State<Fake>, headers: HeaderMap) -> Response {
    if !polar_ok(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(f.lock().polar_days.clone()).into_response()
}

/// `POST /push_subscriptions`: Strava checks the callback before answering.
async fn subscribe(State(_f): State<Fake>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return strava_error(StatusCode::UNAUTHORIZED, "Authorization Error", "Application", "client_id", "invalid");
    }
    let (Some(callback), Some(verify)) = (form.get("callback_url"), form.get("verify_token")) else {
        return strava_error(StatusCode::BAD_REQUEST, "Bad Request", "PushSubscription", "callback_url", "missing");
    };
    let challenge = "f3b5a7c9e1";
    let check = reqwest::Client::new()
        .get(callback)
        .query(&[("hub.mode", "subscribe"), ("hub.challenge", challenge), ("hub.verify_token", verify.as_str())])
        .send()
        .await;
    let echoed = match check {
        Ok(r) if r.status().is_success() => {
            r.json::<serde_json::Value>().await.ok().and_then(|v| v["hub.challenge"].as_str().map(str::to_string))
        }
        _ => None,
    };
    if echoed.as_deref() != Some(challenge) {
        return strava_error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "PushSubscription",
            "callback url",
            "GET to callback URL does not return 200",
        );
    }
    (StatusCode::CREATED, Json(json!({"id": 120475}))).into_response()
}

pub async fn start(now: DateTime<Utc>) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = Fake { state: Arc::default(), clock: Arc::new(SimClock::new(now)), base };
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v3/athlete/activities", get(list))
        .route("/api/v3/athlete", get(athlete))
        .route("/api/v3/push_subscriptions", post(subscribe))
        .route("/api/v3/activities/{id}/streams", get(streams))
        .route("/api/v3/activities/{id}", get(one))
        .route("/polar/oauth2/token", post(polar_token))
        .route("/oauth/deauthorize", post(deauthorize))
        .route("/polar/v3/users", post(polar_register))
        .route("/polar/v3/users/{id}", axum::routing::delete(polar_deregister))
        .route("/polar/v3/exercises", get(polar_exercises))
        .route("/polar/v3/exercises/{id}", get(polar_exercise))
        .route("/polar/v3/users/activities", get(polar_days))
        .route("/intervals/api/v1/athlete/0", get(icu_athlete))
        .route("/intervals/api/v1/athlete/0/activities", get(icu_activities))
        .route("/intervals/api/v1/activity/{id}/streams.json", get(icu_streams))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

/// coachd's config pointed at the fake.
pub fn config(fake: &Fake, public_url: &str) -> coachd::config::Config {
    let mut c = coachd::config::Config::default();
    c.web.public_url = public_url.to_string();
    let s = c.providers.get_mut("strava");
    s.client_id = CLIENT_ID.into();
    s.client_secret = coachd::crypto::Secret::new(CLIENT_SECRET.into());
    s.authorize_url = format!("{}/oauth/authorize", fake.base);
    s.token_url = format!("{}/oauth/token", fake.base);
    s.api_base = format!("{}/api/v3", fake.base);
    c.providers.get_mut("intervals").api_base = format!("{}/intervals/api/v1", fake.base);
    let p = c.providers.get_mut("polar");
    p.client_id = CLIENT_ID.into();
    p.client_secret = coachd::crypto::Secret::new(CLIENT_SECRET.into());
    p.authorize_url = format!("{}/polar/authorize", fake.base);
    p.token_url = format!("{}/polar/oauth2/token", fake.base);
    p.api_base = format!("{}/polar/v3", fake.base);
    p.extra.0.insert("webhook_secret".into(), "polar-webhook-key".into());
    c
}
