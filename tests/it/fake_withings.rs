//! A local server that answers like Withings' documented Public Health Data API: every
//! answer HTTP 200 with `{"status": N, "body": {...}}` (non-zero N an error, with an
//! `error` text); the token endpoint `POST /v2/oauth2 action=requesttoken` (client id and
//! secret in the form, authorization codes that live 30 seconds, access tokens of 3
//! hours, refresh tokens replaced on every refresh whose predecessor dies once the new
//! access token is used or 8 hours later) and its signed `action=revoke` with a nonce from
//! `/v2/signature action=getnonce`; `/v2/measure` (`getworkouts`, `getactivity`,
//! `getintradayactivity` of at most 24 hours), `/v2/sleep` (`getsummary`), all POSTs with
//! form fields and a bearer token, by dates or `lastupdate` (never both), paged with
//! `more` and `offset`; `/notify` (`subscribe` after a HEAD to the callback, `list`,
//! `revoke`); 120 requests a minute per application (token requests included) answered
//! with status 601 and `wait_seconds` beyond; and faults on demand. It runs on a
//! simulated clock and counts what it was asked.
//!
//! What Withings does not publish is chosen here and said so: pages of 50 items, a watch
//! in workout mode reading the heart rate every second and every 10 minutes otherwise,
//! an unknown or expired code or refresh token answered with status 503 ("Invalid
//! Params"), a bad signature with 342, a callback that fails the HEAD check with 293.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use coachd::providers::clock::{Clock, SimClock};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "withings-app-7f2c";
pub const CLIENT_SECRET: &str = "withings-app-secret";
/// The Withings user id of the test client (Withings writes it as a number).
pub const USER: i64 = 27_364_519;
pub const SCOPES: &str = "user.activity";
pub const PAGE: usize = 50;
pub const CODE_LIFE_S: i64 = 30;
pub const ACCESS_LIFE_S: i64 = 10_800;
const DEVICE: &str = "892359876fd8805ac45bab078c4828692f0276b1";

#[derive(Clone, Debug)]
pub struct FakeWorkout {
    pub id: i64,
    pub category: i64,
    pub start: DateTime<Utc>,
    pub minutes: i64,
    /// Where the device was (the workout's `timezone`).
    pub tz: Tz,
    /// The heart rate around which the watch reads during it; None: no heart rate.
    pub bpm: Option<f64>,
    pub modified: i64,
}

impl FakeWorkout {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::minutes(self.minutes)
    }
}

#[derive(Clone, Debug)]
pub struct FakeDay {
    pub steps: i64,
    pub tz: Tz,
    pub modified: i64,
}

#[derive(Clone, Debug)]
pub struct FakeSleep {
    pub id: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub asleep_s: i64,
    pub tz: Tz,
    pub modified: i64,
}

#[derive(Clone, Debug)]
pub struct Refresh {
    pub user: i64,
    pub scopes: String,
    /// Set once a newer pair replaced it: it dies then (or when `successor` is used).
    pub dies: Option<DateTime<Utc>>,
    pub successor: Option<String>,
}

#[derive(Default)]
pub struct WithingsState {
    pub workouts: BTreeMap<i64, FakeWorkout>,
    pub days: BTreeMap<NaiveDate, FakeDay>,
    pub sleeps: Vec<FakeSleep>,
    /// Authorization codes → (user, scopes, issued at).
    pub codes: HashMap<String, (i64, String, DateTime<Utc>)>,
    /// Access token → (user, expiry).
    pub access: HashMap<String, (i64, DateTime<Utc>)>,
    pub refresh: HashMap<String, Refresh>,
    /// (user, appli, callback URL).
    pub subscriptions: Vec<(i64, i64, String)>,
    pub nonces: HashMap<String, bool>,
    /// Refuse `oauth2 action=revoke` (an application Withings does not let revoke).
    pub refuse_revoke: bool,
    pub revoked: Vec<i64>,
    pub serial: i64,
    pub refreshes: u32,
    /// Refresh tokens presented that were dead or never issued.
    pub spent_refreshes: u32,
    /// The last token request's form.
    pub last_token_form: HashMap<String, String>,
    /// Answers to give instead of the real one, first first: (HTTP status, body); an
    /// HTTP 0 serves the request normally.
    pub faults: Vec<(u16, String)>,
    pub retry_after: Option<String>,
    /// Hang the next API request (a crash right after a refresh answer).
    pub hang_next_api: bool,
    /// Requests per minute of the application, and the window now (start, used).
    pub limit: u32,
    pub window: (i64, u32),
    /// Requests refused for the budget.
    pub limited: u32,
    pub api_requests: u32,
    pub token_requests: u32,
    pub by_action: BTreeMap<String, u32>,
    /// Requests that mixed `lastupdate` with dates (Withings: "do not use with").
    pub mixed: u32,
}

#[derive(Clone)]
pub struct FakeWithings {
    pub state: Arc<Mutex<WithingsState>>,
    pub clock: Arc<SimClock>,
    pub base: String,
}

/// An envelope: status 0 and the body.
pub fn ok(body: Value) -> Response {
    Json(json!({"status": 0, "body": body})).into_response()
}

/// An error envelope, HTTP 200 as Withings answers them.
pub fn fail(status: i64, error: &str) -> Response {
    Json(json!({"status": status, "body": {}, "error": error})).into_response()
}

impl FakeWithings {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, WithingsState> {
        self.state.lock().expect("fake state")
    }

    /// A code for `user` granting `scopes`, as the consent page's redirect brings it.
    pub fn issue_code(&self, user: i64, scopes: &str) -> String {
        let now = self.clock.now();
        let mut s = self.lock();
        s.serial += 1;
        let code = format!("wcode{}", s.serial);
        s.codes.insert(code.clone(), (user, scopes.to_string(), now));
        code
    }

    /// The user's newest refresh token.
    pub fn refresh_token(&self) -> Option<String> {
        let serial = |t: &str| t.rsplit('-').next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
        self.lock()
            .refresh
            .iter()
            .filter(|(_, r)| r.user == USER && r.dies.is_none())
            .map(|(t, _)| t.clone())
            .max_by_key(|t| serial(t))
    }

    pub fn requests(&self, action: &str) -> u32 {
        self.lock().by_action.get(action).copied().unwrap_or(0)
    }
}

/// The application's budget: a window of a minute from its first request.
fn budget(f: &FakeWithings, s: &mut WithingsState) -> Option<Response> {
    let now = f.clock.now().timestamp();
    if now >= s.window.0 + 60 {
        s.window = (now, 0);
    }
    if s.window.1 >= s.limit {
        s.limited += 1;
        let wait = (s.window.0 + 60 - now).max(1);
        let body = json!({"status": 601, "body": {"wait_seconds": wait}, "error": "Too Many Request"});
        return Some(Json(body).into_response());
    }
    s.window.1 += 1;
    None
}

fn token_pair(s: &mut WithingsState, now: DateTime<Utc>, user: i64, scopes: &str) -> (Value, String) {
    s.serial += 1;
    let access = format!("wi-access-{}", s.serial);
    let refresh = format!("wi-refresh-{}", s.serial);
    s.access.insert(access.clone(), (user, now + Duration::seconds(ACCESS_LIFE_S)));
    s.refresh.insert(refresh.clone(), Refresh { user, scopes: scopes.into(), dies: None, successor: None });
    let body = json!({"userid": user, "access_token": access, "refresh_token": refresh, "scope": scopes,
                      "expires_in": ACCESS_LIFE_S, "token_type": "Bearer", "csrf_token": "PACnnxwHTaBQOzF7bQqwFUU"});
    (body, access)
}

fn hmac_hex(secret: &str, text: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("mac");
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `/v2/oauth2`: `requesttoken` and the signed `revoke`.
async fn oauth2(State(f): State<FakeWithings>, Form(form): Form<HashMap<String, String>>) -> Response {
    let now = f.clock.now();
    let mut s = f.lock();
    if let Some(r) = budget(&f, &mut s) {
        return r;
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    match field("action").as_str() {
        "requesttoken" => {}
        "revoke" => {
            *s.by_action.entry("revoke".into()).or_default() += 1;
            let nonce = field("nonce");
            if field("client_id") != CLIENT_ID
                || hmac_hex(CLIENT_SECRET, &format!("revoke,{CLIENT_ID},{nonce}")) != field("signature")
            {
                return fail(342, "The signature is invalid");
            }
            match s.nonces.get_mut(&nonce) {
                Some(used) if !*used => *used = true,
                _ => return fail(503, "Invalid Params: invalid nonce"),
            }
            if s.refuse_revoke {
                return fail(2553, "Unauthorized: this application may not revoke");
            }
            let Ok(user) = field("userid").parse::<i64>() else { return fail(503, "Invalid Params: userid") };
            s.access.retain(|_, (u, _)| *u != user);
            s.refresh.retain(|_, r| r.user != user);
            s.subscriptions.retain(|(u, ..)| *u != user);
            s.revoked.push(user);
            return ok(json!({}));
        }
        _ => return fail(2554, "Wrong action or wrong webservice"),
    }
    s.token_requests += 1;
    s.last_token_form = form.clone();
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return fail(503, "Invalid Params: invalid client_id or client_secret");
    }
    match field("grant_type").as_str() {
        "authorization_code" => {
            let code = field("code");
            let Some((user, scopes, issued)) = s.codes.remove(&code) else {
                return fail(503, "Invalid Params: invalid code");
            };
            if now - issued > Duration::seconds(CODE_LIFE_S) {
                return fail(503, "Invalid Params: invalid code");
            }
            if field("redirect_uri").is_empty() {
                return fail(503, "Invalid Params: redirect_uri");
            }
            ok(token_pair(&mut s, now, user, &scopes).0)
        }
        "refresh_token" => {
            let sent = field("refresh_token");
            let live = s.refresh.get(&sent).cloned().filter(|r| r.dies.is_none_or(|d| d > now));
            let Some(old) = live else {
                s.spent_refreshes += 1;
                return fail(503, "Invalid Params: invalid refresh_token");
            };
            s.refreshes += 1;
            let (body, access) = token_pair(&mut s, now, old.user, &old.scopes);
            // Replaced: the old one lives until the new access token is used, 8 h at most.
            if let Some(r) = s.refresh.get_mut(&sent) {
                r.dies = Some(r.dies.unwrap_or(now + Duration::hours(8)).min(now + Duration::hours(8)));
                r.successor = Some(access);
            }
            ok(body)
        }
        _ => fail(503, "Invalid Params: grant_type"),
    }
}

/// `/v2/signature action=getnonce`, signed with the timestamp.
async fn signature(State(f): State<FakeWithings>, Form(form): Form<HashMap<String, String>>) -> Response {
    let now = f.clock.now().timestamp();
    let mut s = f.lock();
    if let Some(r) = budget(&f, &mut s) {
        return r;
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    *s.by_action.entry("getnonce".into()).or_default() += 1;
    let stamp = field("timestamp");
    let fresh = stamp.parse::<i64>().is_ok_and(|t| (t - now).abs() <= 600);
    if field("action") != "getnonce"
        || field("client_id") != CLIENT_ID
        || !fresh
        || hmac_hex(CLIENT_SECRET, &format!("getnonce,{CLIENT_ID},{stamp}")) != field("signature")
    {
        return fail(342, "The signature is invalid");
    }
    s.serial += 1;
    let nonce = format!("nonce{}", s.serial);
    s.nonces.insert(nonce.clone(), false);
    ok(json!({"nonce": nonce}))
}

/// Budget, faults, and the bearer token of an API request: Ok(user).
async fn gate(f: &FakeWithings, headers: &HeaderMap, action: &str) -> Result<i64, Response> {
    let hang = std::mem::take(&mut f.lock().hang_next_api);
    if hang {
        std::future::pending::<()>().await;
    }
    let now = f.clock.now();
    let mut s = f.lock();
    s.api_requests += 1;
    *s.by_action.entry(action.to_string()).or_default() += 1;
    if let Some(r) = budget(f, &mut s) {
        return Err(r);
    }
    if s.faults.first().is_some_and(|x| x.0 == 0) {
        s.faults.remove(0);
    } else if !s.faults.is_empty() {
        let (code, body) = s.faults.remove(0);
        let mut h = HeaderMap::new();
        if let (429, Some(r)) = (code, s.retry_after.as_deref()) {
            h.insert("retry-after", r.parse().expect("header"));
        }
        let code = StatusCode::from_u16(code).expect("status");
        return Err((code, h, [("content-type", "application/json")], body).into_response());
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let invalid = "XRequestID: Not provided invalid_token: The access token provided is invalid";
    let Some((user, expires)) = s.access.get(token).cloned() else { return Err(fail(401, invalid)) };
    if expires <= now {
        return Err(fail(401, invalid));
    }
    // The first use of a new access token ends the refresh token it replaced.
    s.refresh.retain(|_, r| r.successor.as_deref() != Some(token));
    Ok(user)
}

fn date_of(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// A listing's filter on (local date, modified).
type Keep = Box<dyn Fn(NaiveDate, i64) -> bool>;

/// Dates or `lastupdate` of a listing: Ok(its filter).
fn span(s: &mut WithingsState, form: &HashMap<String, String>) -> Result<Keep, Box<Response>> {
    let date = |k: &str| form.get(k).and_then(|d| d.parse::<NaiveDate>().ok());
    let last = form.get("lastupdate").and_then(|t| t.parse::<i64>().ok());
    let has_dates = form.contains_key("startdateymd") || form.contains_key("enddateymd");
    match (last, has_dates) {
        (Some(_), true) => {
            s.mixed += 1;
            Err(Box::new(fail(503, "Invalid Params: lastupdate cannot be used with startdateymd or enddateymd")))
        }
        (Some(t), false) => Ok(Box::new(move |_, modified| modified > t)),
        (None, _) => match (date("startdateymd"), date("enddateymd")) {
            (Some(a), Some(b)) => Ok(Box::new(move |d, _| (a..=b).contains(&d))),
            _ => Err(Box::new(fail(503, "Invalid Params: startdateymd and enddateymd, or lastupdate"))),
        },
    }
}

/// One page of `items` from `offset`.
fn paged(items: Vec<Value>, form: &HashMap<String, String>, key: &str) -> Value {
    let from: usize = form.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(from).take(PAGE).cloned().collect();
    let more = from + PAGE < items.len();
    let mut body = Map::new();
    body.insert(key.into(), Value::Array(page));
    body.insert("more".into(), more.into());
    body.insert("offset".into(), if more { (from + PAGE).into() } else { 0.into() });
    Value::Object(body)
}

/// Only the data fields asked for (all when none are).
fn fields(all: Value, form: &HashMap<String, String>) -> Value {
    let Some(wanted) = form.get("data_fields") else { return all };
    let wanted: Vec<&str> = wanted.split(',').collect();
    match all {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(k, _)| wanted.contains(&k.as_str())).collect()),
        other => other,
    }
}

fn workout_json(w: &FakeWorkout, form: &HashMap<String, String>) -> Value {
    let bpm = w.bpm.unwrap_or(0.0);
    let data = json!({"calories": 9 * w.minutes, "intensity": 0, "manual_distance": 0, "manual_calories": 0,
        "hr_average": bpm.round() as i64, "hr_min": if w.bpm.is_some() { (bpm - 20.0).round() as i64 } else { 0 },
        "hr_max": if w.bpm.is_some() { (bpm + 12.0).round() as i64 } else { 0 },
        "hr_zone_0": 0, "hr_zone_1": 0, "hr_zone_2": 0, "hr_zone_3": 0, "pause_duration": 0, "algo_pause_duration": 0,
        "spo2_average": null, "steps": 150 * w.minutes, "distance": 180 * w.minutes, "elevation": 2});
    json!({"id": w.id, "category": w.category, "timezone": w.tz.name(), "model": 93, "attrib": 7,
           "startdate": w.start.timestamp(), "enddate": w.end().timestamp(), "date": date_of(w.start, w.tz).to_string(),
           "modified": w.modified, "deviceid": DEVICE, "data": fields(data, form)})
}

/// The heart rate a workout's watch reads at `t`.
pub fn workout_bpm(w: &FakeWorkout, t: i64) -> Option<f64> {
    let base = w.bpm?;
    Some(base + ((t - w.start.timestamp()) / 30 % 10) as f64)
}

/// `/v2/measure`: `getworkouts`, `getactivity`, `getintradayactivity`.
async fn measure(
    State(f): State<FakeWithings>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let action = form.get("action").cloned().unwrap_or_default();
    let user = match gate(&f, &headers, &action).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut s = f.lock();
    if user != USER {
        return ok(json!({"series": [], "more": false, "offset": 0}));
    }
    match action.as_str() {
        "getworkouts" => {
            let keep = match span(&mut s, &form) {
                Ok(k) => k,
                Err(r) => return *r,
            };
            let mut list: Vec<&FakeWorkout> =
                s.workouts.values().filter(|w| keep(date_of(w.start, w.tz), w.modified)).collect();
            list.sort_by_key(|w| (w.start, w.id));
            let items = list.iter().map(|w| workout_json(w, &form)).collect();
            ok(paged(items, &form, "series"))
        }
        "getactivity" => {
            let keep = match span(&mut s, &form) {
                Ok(k) => k,
                Err(r) => return *r,
            };
            let items = s
                .days
                .iter()
                .filter(|(d, day)| keep(**d, day.modified))
                .map(|(d, day)| {
                    let data = json!({"steps": day.steps, "distance": day.steps * 7 / 10, "elevation": 3, "soft": 3600,
                        "moderate": 1200, "intense": 300, "active": 1500, "calories": day.steps / 25,
                        "totalcalories": 2100 + day.steps / 25, "hr_average": 72, "hr_min": 51, "hr_max": 151});
                    let mut row = json!({"date": d.to_string(), "timezone": day.tz.name(),
                        "deviceid": DEVICE, "hash_deviceid": DEVICE,
                        "brand": 1, "is_tracker": true, "modified": day.modified});
                    if let (Value::Object(r), Value::Object(d)) = (&mut row, fields(data, &form)) {
                        r.extend(d);
                    }
                    row
                })
                .collect();
            ok(paged(items, &form, "activities"))
        }
        "getintradayactivity" => {
            let when = |k: &str| form.get(k).and_then(|t| t.parse::<i64>().ok());
            let (Some(from), Some(to)) = (when("startdate"), when("enddate")) else {
                return fail(503, "Invalid Params: startdate and enddate");
            };
            // More than 24 hours apart: only the first 24 hours.
            let to = to.min(from + 86_400);
            let mut series: BTreeMap<i64, Value> = BTreeMap::new();
            let mut t = from - from.rem_euclid(600);
            while t <= to {
                if t >= from {
                    series.insert(t, json!({"heart_rate": 68, "deviceid": DEVICE}));
                }
                t += 600;
            }
            for w in s.workouts.values() {
                let (a, b) = (w.start.timestamp().max(from), w.end().timestamp().min(to));
                for t in a..=b {
                    if let Some(bpm) = workout_bpm(w, t) {
                        series.insert(t, json!({"heart_rate": bpm, "deviceid": DEVICE}));
                    }
                }
            }
            // An empty series is written as a list, the way PHP writes an empty map.
            let series: Value = if series.is_empty() {
                json!([])
            } else {
                Value::Object(series.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            };
            ok(json!({"series": series}))
        }
        _ => fail(2554, "Wrong action or wrong webservice"),
    }
}

/// `/v2/sleep action=getsummary`.
async fn sleep(
    State(f): State<FakeWithings>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let action = form.get("action").cloned().unwrap_or_default();
    let user = match gate(&f, &headers, &format!("sleep:{action}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut s = f.lock();
    if action != "getsummary" {
        return fail(2554, "Wrong action or wrong webservice");
    }
    let keep = match span(&mut s, &form) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let mut list: Vec<&FakeSleep> =
        s.sleeps.iter().filter(|n| user == USER && keep(date_of(n.end, n.tz), n.modified)).collect();
    list.sort_by_key(|n| n.start);
    let items = list
        .iter()
        .map(|n| {
            let in_bed = (n.end - n.start).num_seconds();
            json!({"id": n.id, "timezone": n.tz.name(), "model": 32, "model_id": 63, "startdate": n.start.timestamp(),
                   "enddate": n.end.timestamp(), "date": date_of(n.end, n.tz).to_string(), "created": n.modified,
                   "modified": n.modified, "hash_deviceid": "b1e4ea9c8bf584c8", "completed": true,
                   "data": {"total_timeinbed": in_bed, "total_sleep_time": n.asleep_s, "asleepduration": null,
                            "lightsleepduration": n.asleep_s / 2, "deepsleepduration": n.asleep_s / 5,
                            "remsleepduration": n.asleep_s * 3 / 10, "wakeupcount": 2,
                            "wakeupduration": in_bed - n.asleep_s, "sleep_efficiency": n.asleep_s as f64 / in_bed as f64,
                            "hr_average": 54, "sleep_score": 81}})
        })
        .collect();
    ok(paged(items, &form, "series"))
}

/// `/notify`: `subscribe` (after checking the callback with HEAD), `list`, `revoke`.
async fn notify(
    State(f): State<FakeWithings>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let action = form.get("action").cloned().unwrap_or_default();
    let user = match gate(&f, &headers, &format!("notify:{action}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let callback = form.get("callbackurl").cloned().unwrap_or_default();
    let appli = form.get("appli").and_then(|a| a.parse::<i64>().ok());
    match action.as_str() {
        "subscribe" => {
            let Some(appli) = appli else { return fail(503, "Invalid Params: appli") };
            let reachable = reqwest::Client::new().head(&callback).send().await.is_ok_and(|r| r.status().is_success());
            if callback.is_empty() || !reachable {
                return fail(293, "The callback URL is either absent or incorrect");
            }
            let mut s = f.lock();
            if !s.subscriptions.iter().any(|(u, a, c)| *u == user && *a == appli && *c == callback) {
                s.subscriptions.push((user, appli, callback));
            }
            ok(json!({}))
        }
        "list" => {
            let s = f.lock();
            let profiles: Vec<Value> = s
                .subscriptions
                .iter()
                .filter(|(u, a, _)| *u == user && appli.is_none_or(|x| x == *a))
                .map(|(_, a, c)| json!({"appli": a, "callbackurl": c, "comment": "coachd", "expires": 2_147_483_647}))
                .collect();
            ok(json!({"profiles": profiles}))
        }
        "revoke" => {
            let mut s = f.lock();
            let before = s.subscriptions.len();
            s.subscriptions.retain(|(u, a, c)| !(*u == user && *c == callback && appli.is_none_or(|x| x == *a)));
            if s.subscriptions.len() == before {
                return fail(294, "No such subscription could be deleted");
            }
            ok(json!({}))
        }
        _ => fail(2554, "Wrong action or wrong webservice"),
    }
}

pub async fn start(now: DateTime<Utc>) -> FakeWithings {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let state = WithingsState { limit: 120, ..WithingsState::default() };
    let fake = FakeWithings { state: Arc::new(Mutex::new(state)), clock: Arc::new(SimClock::new(now)), base };
    let app = Router::new()
        .route("/v2/oauth2", post(oauth2))
        .route("/v2/signature", post(signature))
        .route("/v2/measure", post(measure))
        .route("/v2/sleep", post(sleep))
        .route("/notify", post(notify))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

/// coachd's configuration pointed at the fake, links made for `public_url`.
pub fn config(fake: &FakeWithings, public_url: &str) -> coachd::config::Config {
    let mut c = coachd::config::Config::default();
    c.web.public_url = public_url.to_string();
    let w = c.providers.get_mut("withings");
    w.client_id = CLIENT_ID.into();
    w.client_secret = coachd::crypto::Secret::new(CLIENT_SECRET.into());
    w.authorize_url = format!("{}/oauth2_user/authorize2", fake.base);
    w.token_url = format!("{}/v2/oauth2", fake.base);
    w.api_base = fake.base.clone();
    c
}

/// A local time in `tz` as UTC.
pub fn local(tz: Tz, d: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_hms_opt(h, m, 0).expect("time")).single().expect("one time").with_timezone(&Utc)
}
