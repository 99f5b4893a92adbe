//! Oura API v2: workouts with their heart rate, daily steps and sleep, single-use refresh
//! tokens (the generic refresh stores each new pair before using it), webhook
//! subscriptions kept alive, and signed deliveries taken as hints.
//!
//! A sync lists `GET /v2/usercollection/workout?start_date=&end_date=` (paged with
//! `next_token`) from the committed cursor, the last local date fully synced, looking two
//! days further back for edits and deletions. A new or changed workout costs one `GET
//! /v2/usercollection/heartrate?start_datetime=&end_datetime=` for its span, kept as its
//! heart-rate samples when they are dense enough to count minutes from. Then
//! `daily_activity` (steps) and `sleep` are read for the same span and at least the
//! last week: sleep reaches Oura only after the ring syncs with the phone, so this
//! poll reconciles what webhooks may never announce. Sleep periods of type `long_sleep`
//! or `sleep` (not naps, `late_nap`, nor `rest`) less than an hour apart are one night
//! (the shared rule of [`crate::sleep`]); the main night of a wake-up day (the local
//! date its `bedtime_end` falls on, as every sleep source is dated) gives that day the
//! seconds asleep (the periods' `total_sleep_duration`) and the bed and wake times.
//!
//! Scopes the client unticked are not asked for; each sync says what they leave out.

use super::sync::{reconcile, Daily, Listing, Page, Plan, Report, SyncError, Turn};
use super::{Api, ApiError, Auth, BoxFuture, Connection, Provider, ProviderError, Registry, WebhookRefusal};
use crate::crypto::Secret;
use crate::model::{DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::sleep::{Night, WakeDay};
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

pub const SOURCE: &str = "oura";
/// How far behind the cursor every sync looks again for edited and deleted workouts.
pub const RECONCILE_DAYS: i64 = 2;
/// Sleep and daily activity are read again this far back on every sync: they arrive late.
pub const LATE_DAYS: i64 = 7;
/// A delivery signed longer ago (or further ahead) than this is refused as stale.
pub const FRESH_S: i64 = 300;
/// Heart rate is kept as a workout's samples only when readings are at most this far
/// apart on average: the store counts each sample for at most 5 s, so sparse readings
/// (Oura's 5-minute daytime rate) would undercount the minutes; then the workout's
/// category counts instead.
pub const MAX_MEAN_GAP_S: f64 = 10.0;
/// A subscription is renewed this long before its `expiration_time`.
pub const RENEW_BEFORE: Duration = Duration::days(3);
/// How often the daemon looks at the subscriptions.
pub const UPKEEP_EVERY: Duration = Duration::hours(12);
/// What coachd subscribes to: every change of these.
pub const DATA_TYPES: [&str; 3] = ["workout", "sleep", "daily_activity"];
pub const EVENT_TYPES: [&str; 3] = ["create", "update", "delete"];

const VERIFICATION_TOKEN: &str = "webhook_verification_token";
const SUBSCRIBED: &str = "oura_subscriptions";
const CHECKED: &str = "oura_subscriptions_checked";

/// A page of any collection.
#[derive(Debug, Deserialize)]
struct Collection<T> {
    data: Vec<T>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Workout {
    pub id: String,
    #[serde(default)]
    pub activity: Option<String>,
    #[serde(default)]
    pub calories: Option<f64>,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub day: Option<String>,
    /// Local time with offset, e.g. "2026-11-20T18:02:11+01:00".
    pub start_datetime: String,
    pub end_datetime: String,
    #[serde(default)]
    pub intensity: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HeartRate {
    bpm: f64,
    timestamp: String,
}

#[derive(Debug, Deserialize)]
struct DailyActivity {
    day: String,
    #[serde(default)]
    steps: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct SleepPeriod {
    #[serde(default)]
    bedtime_start: Option<String>,
    #[serde(default)]
    bedtime_end: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Seconds asleep.
    #[serde(default)]
    total_sleep_duration: Option<f64>,
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Every page of a collection, following `next_token`.
async fn collect<T: serde::de::DeserializeOwned>(
    turn: &mut Turn<'_>,
    what: &str,
    url: &str,
    query: &[(&str, String)],
) -> Result<Vec<T>, SyncError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = query.to_vec();
        if let Some(t) = &token {
            q.push(("next_token", t.clone()));
        }
        let page: Collection<T> = turn.get_json(what, url, &q).await?;
        out.extend(page.data);
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Oura on the provider interface.
pub struct Oura;

impl Provider for Oura {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/oura.toml")
    }

    /// `POST /oauth/revoke?access_token=…` (beside the token endpoint), as Oura documents it:
    /// the authorization ends and its refresh token dies with it.
    fn revoke<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let Auth::Bearer(token) = &c.access else {
                return Ok(false);
            };
            let mut url = reqwest::Url::parse(&super::beside_token(&api.manifest, "revoke"))
                .map_err(|e| ProviderError::Invalid(format!("oura token_url: {e}")))?;
            url.query_pairs_mut().append_pair("access_token", token.expose());
            let none = Auth::Headers(Vec::new());
            let (status, body) = api.send_once(reqwest::Method::POST, "the revocation", &none, url.as_str(), None).await?;
            super::revocation(&api.manifest.display, status, &body)
        })
    }

    fn settings_keys(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            VERIFICATION_TOKEN,
            "what Oura must echo when it checks the webhook callback; empty: a random one kept in the database",
        )]
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            let (workouts, heartrate, daily) =
                (turn.account.granted("workout"), turn.account.granted("heartrate"), turn.account.granted("daily"));
            reconcile(turn, &Workouts { api, workouts, heartrate, daily }).await
        })
    }

    /// The Oura user id (`personal_info`), which webhook deliveries name.
    fn after_connect<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let url = api.manifest.url("/v2/usercollection/personal_info");
            match api.get_json::<serde_json::Value>("the personal info", &c.access, &url, &[]).await {
                Ok(info) => match info.get("id").and_then(serde_json::Value::as_str) {
                    Some(id) => {
                        c.store.set_account_user(c.account.id, id).await?;
                        Ok(None)
                    }
                    None => Err(ProviderError::Invalid(format!("Oura's personal info has no id: {info}"))),
                },
                Err(ApiError::Unauthorized(_) | ApiError::Forbidden(_)) => Ok(Some(
                    "Without the personal scope Oura's webhook deliveries cannot be matched to this client; the \
                     regular sync still reads everything granted."
                        .into(),
                )),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Oura admits at most 10 users to an application it has not approved.
    fn explain_refusal(&self, _status: u16, text: &str) -> Option<String> {
        let t = text.to_ascii_lowercase();
        let cap =
            t.contains("user") && ["limit", "maximum", "max ", "10 users", "too many"].iter().any(|w| t.contains(w));
        cap.then(|| {
            format!(
                "Oura refused the connection because the trainer's Oura application has reached its user limit: an \
                 application Oura has not approved connects at most 10 users (Oura said: {}). Disconnect a client \
                 who no longer uses it (they remove the app under Oura → Settings → Connected apps), or ask Oura to \
                 approve the application at https://cloud.ouraring.com/oauth/applications. Nothing was connected.",
                text.trim()
            )
        })
    }

    fn webhook_handshake<'a>(
        &'a self,
        reg: &'a Registry,
        store: &'a Store,
        q: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<serde_json::Value, WebhookRefusal>> {
        Box::pin(async move {
            let expected = verification_token(reg, store).await.map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
            let given = q.get("verification_token").map(String::as_str).unwrap_or_default();
            match q.get("challenge") {
                Some(c) if crate::crypto::same_secret(&expected, given) => Ok(serde_json::json!({ "challenge": c })),
                _ => Err(WebhookRefusal::Unauthorized("verification token mismatch".into())),
            }
        })
    }

    /// `x-oura-signature` = uppercase hex HMAC-SHA256(client secret, `x-oura-timestamp`
    /// + raw body), the timestamp within [`FRESH_S`] of now.
    fn webhook_verify(
        &self,
        reg: &Registry,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        let app = reg.app(SOURCE).map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let Some(signature) = header("x-oura-signature").filter(|s| !s.is_empty()) else {
            return Err(WebhookRefusal::Unauthorized("unsigned: no x-oura-signature".into()));
        };
        let Some((stamp, at)) = header("x-oura-timestamp").and_then(|t| Some((t, t.parse::<i64>().ok()?))) else {
            return Err(WebhookRefusal::Unauthorized("no readable x-oura-timestamp".into()));
        };
        let age = reg.clock.now().timestamp().saturating_sub(at);
        if age.abs() > FRESH_S {
            return Err(WebhookRefusal::Unauthorized(format!("stale: signed {age} s from now (at most {FRESH_S})")));
        }
        if !signature_ok(app.client_secret.expose(), stamp, body, signature) {
            return Err(WebhookRefusal::Unauthorized("wrong x-oura-signature".into()));
        }
        serde_json::from_slice::<Delivery>(body)
            .map(drop)
            .map_err(|e| WebhookRefusal::BadBody(format!("not an Oura delivery: {e}")))
    }

    fn webhook_deliver(
        &self,
        reg: Arc<Registry>,
        store: Store,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<&'static str, SyncError>> {
        Box::pin(async move {
            let d: Delivery = serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid(e.to_string()))?;
            on_delivery(&reg, &store, &d).await
        })
    }

    fn subscribe<'a>(&'a self, reg: &'a Registry, store: &'a Store) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let kept = keep_subscriptions(reg, store).await?;
            store.set_meta_value(SUBSCRIBED, "on").await?;
            store.set_meta_value(CHECKED, &reg.clock.now().to_rfc3339()).await?;
            Ok(format!(
                "Oura webhook subscriptions: {} made, {} renewed, {} current; deliveries arrive at {} (the daemon \
                 renews them before they expire)",
                kept.made,
                kept.renewed,
                kept.current,
                reg.webhook_url(SOURCE)
            ))
        })
    }

    /// Once `coachd subscribe oura` made them: every [`UPKEEP_EVERY`], subscriptions
    /// that are gone are made again and those expiring within [`RENEW_BEFORE`] renewed.
    fn upkeep<'a>(&'a self, reg: &'a Registry, store: &'a Store) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if store.meta_value(SUBSCRIBED).await?.is_none() || reg.app(SOURCE).is_err() {
                return Ok(());
            }
            let now = reg.clock.now();
            let last = store.meta_value(CHECKED).await?.and_then(|t| instant(&t));
            if last.is_some_and(|t| now - t < UPKEEP_EVERY) {
                return Ok(());
            }
            let kept = keep_subscriptions(reg, store).await?;
            store.set_meta_value(CHECKED, &now.to_rfc3339()).await?;
            if kept.made + kept.renewed > 0 {
                tracing::info!(made = kept.made, renewed = kept.renewed, "Oura webhook subscriptions kept");
            }
            Ok(())
        })
    }
}

/// The token Oura must echo in its webhook handshake: configured, else a random one
/// kept in the database.
pub async fn verification_token(reg: &Registry, store: &Store) -> Result<String, ProviderError> {
    let configured = reg.settings(SOURCE)?.extra_secret(VERIFICATION_TOKEN);
    Ok(super::install_secret(store, configured, "oura_webhook_verification_token").await?)
}

/// Whether `signature` (hex, any case) is HMAC-SHA256(secret, timestamp + body).
pub fn signature_ok(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    crate::crypto::unhex(signature)
        .is_some_and(|mac| crate::crypto::hmac_sha256_is(secret.as_bytes(), &[timestamp.as_bytes(), body], &mac))
}

/// A webhook delivery: which user's what changed.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    pub event_type: String,
    pub data_type: String,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub event_time: Option<String>,
    pub user_id: String,
}

/// A delivery is a hint: the user's account is synced soon; a deleted workout is
/// deleted here once Oura answers 404 for it.
pub async fn on_delivery(reg: &Registry, store: &Store, d: &Delivery) -> Result<&'static str, SyncError> {
    let Some(account) = store.account_by_external(SOURCE, &d.user_id).await?.filter(|a| a.syncable()) else {
        return Ok("unknown user; ignored");
    };
    if let (true, "workout", Some(id)) = (d.event_type == "delete", d.data_type.as_str(), &d.object_id) {
        let api = reg.api(SOURCE)?.clone();
        let mut turn = Turn::new(reg, store, &account, 3);
        let url = api.manifest.url(&format!("/v2/usercollection/workout/{id}"));
        if let Err(SyncError::Api(ApiError::NotFound(_))) =
            turn.get_json::<serde_json::Value>("a workout", &url, &[]).await
        {
            store.delete_source_activity(SOURCE, id).await?;
            reg.poke(account.id);
            return Ok("deleted");
        }
    }
    reg.poke(account.id);
    Ok("sync requested")
}

#[derive(Debug, Deserialize)]
struct Subscription {
    id: String,
    callback_url: String,
    event_type: String,
    data_type: String,
    #[serde(default)]
    expiration_time: Option<String>,
}

#[derive(Debug, Default)]
struct Kept {
    made: usize,
    renewed: usize,
    current: usize,
}

/// One subscription per (event, data type) to `/webhooks/oura`: made when missing
/// (Oura checks the callback at once with its challenge, which the running daemon
/// answers), renewed when it expires within [`RENEW_BEFORE`].
async fn keep_subscriptions(reg: &Registry, store: &Store) -> Result<Kept, ProviderError> {
    let api: &Arc<Api> = reg.api(SOURCE)?;
    let app = reg.app(SOURCE)?;
    let auth = Auth::Headers(vec![
        ("x-client-id", Secret::new(app.client_id.clone())),
        ("x-client-secret", app.client_secret),
    ]);
    let url = api.manifest.url("/v2/webhook/subscription");
    let existing: Vec<Subscription> = api.get_json("the webhook subscriptions", &auth, &url, &[]).await?;
    let callback = reg.webhook_url(SOURCE);
    let token = verification_token(reg, store).await?;
    let now = reg.clock.now();
    let mut kept = Kept::default();
    let answer = |what: &str, status: u16, body: &[u8]| -> Result<(), ProviderError> {
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
        Err(ProviderError::Refused(format!(
            "Oura refused {what} (HTTP {status}: {text}). Is `coachd run` reachable from the internet at {callback}?"
        )))
    };
    for data in DATA_TYPES {
        for event in EVENT_TYPES {
            let mine =
                existing.iter().find(|s| s.callback_url == callback && s.event_type == event && s.data_type == data);
            match mine {
                Some(s) => {
                    let expires = s.expiration_time.as_deref().and_then(|t| {
                        instant(t).or_else(|| {
                            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
                        })
                    });
                    if expires.is_none_or(|e| e - now < RENEW_BEFORE) {
                        let renew = api.manifest.url(&format!("/v2/webhook/subscription/renew/{}", s.id));
                        let (status, body) =
                            api.send_once(reqwest::Method::PUT, "a subscription renewal", &auth, &renew, None).await?;
                        answer(&format!("to renew the {event} {data} subscription"), status, &body)?;
                        kept.renewed += 1;
                    } else {
                        kept.current += 1;
                    }
                }
                None => {
                    let body = serde_json::json!({
                        "callback_url": callback, "verification_token": token, "event_type": event, "data_type": data
                    });
                    let (status, text) = api.post_json("a webhook subscription", &auth, &url, &body).await?;
                    answer(&format!("the {event} {data} subscription"), status, &text)?;
                    kept.made += 1;
                }
            }
        }
    }
    Ok(kept)
}

/// Workouts, then daily activity and sleep, of one account.
struct Workouts {
    api: Arc<Api>,
    /// The scopes granted.
    workouts: bool,
    heartrate: bool,
    daily: bool,
}

impl Workouts {
    fn url(&self, collection: &str) -> String {
        self.api.manifest.url(&format!("/v2/usercollection/{collection}"))
    }
}

impl Listing for Workouts {
    type Item = Workout;
    const NOUN: &'static str = "workout";

    fn plan(&self, turn: &Turn<'_>, client: &Client, cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        let cursor: Option<NaiveDate> = cursor.and_then(|c| c.parse().ok());
        let first = today - Duration::days(i64::from(turn.reg.backfill_days));
        let from = cursor.map_or(first, |c| c.min(today - Duration::days(RECONCILE_DAYS)).max(first));
        Plan {
            since: crate::time::local(client.tz, from, chrono::NaiveTime::MIN),
            until: now + Duration::days(1),
            first: String::new(),
            cursor: cursor.map(|c| c.to_string()).unwrap_or_default(),
            done: Some(today.to_string()),
            from: from.to_string(),
            // Tomorrow too, whether Oura reads the end date as inclusive or not.
            to: (today + Duration::days(1)).to_string(),
        }
    }

    async fn list(
        &self,
        turn: &mut Turn<'_>,
        _client: &Client,
        plan: &Plan,
        page: &str,
    ) -> Result<Page<Workout>, SyncError> {
        if !self.workouts {
            return Ok(Page { items: Vec::new(), next: None });
        }
        let mut q = vec![("start_date", plan.from.clone()), ("end_date", plan.to.clone())];
        if !page.is_empty() {
            q.push(("next_token", page.to_string()));
        }
        let c: Collection<Workout> = turn.get_json("the workouts", &self.url("workout"), &q).await?;
        Ok(Page { items: c.data, next: c.next_token.filter(|t| !t.is_empty()) })
    }

    fn id(&self, w: &Workout) -> String {
        w.id.clone()
    }

    fn fingerprint(&self, w: &Workout) -> Vec<u8> {
        // Granting heart rate later makes every workout due again, for its samples.
        let text = format!("{w:?}|hr={}", self.heartrate);
        crate::crypto::sha256(text.as_bytes())[..16].to_vec()
    }

    fn needs_detail(&self, _w: &Workout) -> bool {
        self.heartrate
    }

    async fn detail(&self, turn: &mut Turn<'_>, _w: &Workout, a: &NewActivity) -> Result<Vec<Series>, SyncError> {
        let q = [
            ("start_datetime", a.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ("end_datetime", a.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ];
        let rows: Vec<HeartRate> = collect(turn, "the heart rate of a workout", &self.url("heartrate"), &q).await?;
        let (from, to) = (a.start.timestamp_millis(), a.end.timestamp_millis());
        let mut samples: Vec<Sample> = rows
            .iter()
            .filter_map(|r| Some(Sample { t_ms: instant(&r.timestamp)?.timestamp_millis(), value: r.bpm }))
            .filter(|s| (from..=to).contains(&s.t_ms))
            .collect();
        samples.sort_by_key(|s| s.t_ms);
        samples.dedup_by_key(|s| s.t_ms);
        let dense = match (samples.first(), samples.last()) {
            (Some(f), Some(l)) if samples.len() > 1 => {
                (l.t_ms - f.t_ms) as f64 / 1000.0 / (samples.len() - 1) as f64 <= MAX_MEAN_GAP_S
            }
            _ => false,
        };
        if !dense {
            return Ok(Vec::new());
        }
        Ok(vec![Series { kind: SeriesKind::Hr, samples }])
    }

    fn convert(&self, client: &Client, w: &Workout) -> Result<NewActivity, String> {
        let parse = |s: &str| DateTime::parse_from_rfc3339(s).map_err(|e| format!("unreadable time {s:?}: {e}"));
        let (start, end) = (parse(&w.start_datetime)?, parse(&w.end_datetime)?);
        let secs = (end - start).num_milliseconds() as f64 / 1000.0;
        let end = crate::model::span_end(start.with_timezone(&Utc), secs)?;
        let ty = self.api.manifest.activity_type(w.activity.as_deref().unwrap_or("other"));
        Ok(NewActivity {
            client_id: client.id,
            external_id: w.id.clone(),
            start: start.with_timezone(&Utc),
            end,
            utc_offset_s: start.offset().local_minus_utc(),
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: secs,
            distance_m: w.distance,
            avg_hr: None,
            max_hr: None,
            energy_kj: w.calories.map(|kcal| kcal * 4.184),
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: None,
        })
    }

    fn gone_url(&self, id: &str) -> Option<String> {
        Some(self.url(&format!("workout/{id}")))
    }

    /// Daily activity (with what the unticked scopes leave out), then sleep.
    fn daily_parts(&self) -> usize {
        2
    }

    async fn daily(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan, part: usize) -> Result<Daily, SyncError> {
        let mut out = Daily::default();
        let m = &self.api.manifest;
        if part == 0 {
            for (scope, on) in [("workout", self.workouts), ("heartrate", self.heartrate), ("daily", self.daily)] {
                if !on {
                    let reads = m.scope_reads.get(scope).map_or(scope, String::as_str);
                    out.skipped.push(format!("{reads}: not granted (Oura scope {scope}); connect again to allow it"));
                }
            }
        }
        if !self.daily {
            return Ok(out);
        }
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        let from: NaiveDate = plan.from.parse().unwrap_or(today).min(today - Duration::days(LATE_DAYS));
        if part == 1 {
            return self.sleep(turn, client, plan, from, out).await;
        }
        let q = [("start_date", from.to_string()), ("end_date", plan.to.clone())];
        let days: Vec<DailyActivity> = collect(turn, "the daily activity", &self.url("daily_activity"), &q).await?;
        for d in days {
            match (d.day.parse::<NaiveDate>(), crate::model::amount(d.steps)) {
                (Ok(date), Some(steps)) => {
                    out.metrics.push(DailyMetric { client_id: client.id, date, metric: Metric::Steps, value: steps })
                }
                _ => out.skipped.push(format!("daily activity of {:?}: no date or steps", d.day)),
            }
        }
        Ok(out)
    }
}

impl Workouts {
    /// The sleep periods from the day before `from`, as each wake-up day's main night.
    async fn sleep(
        &self,
        turn: &mut Turn<'_>,
        client: &Client,
        plan: &Plan,
        from: NaiveDate,
        mut out: Daily,
    ) -> Result<Daily, SyncError> {
        let now = turn.reg.clock.now();
        // A night is filed by Oura under its own day; ask from the day before.
        let q = [("start_date", (from - Duration::days(1)).to_string()), ("end_date", plan.to.clone())];
        let periods: Vec<SleepPeriod> = collect(turn, "the sleep periods", &self.url("sleep"), &q).await?;
        // Periods of one night (a wake-up of under an hour between them, the shared
        // rule) are one night: its time asleep is theirs together.
        let mut pieces: Vec<Night> = Vec::new();
        for p in periods {
            if !matches!(p.kind.as_deref(), Some("long_sleep" | "sleep")) {
                continue;
            }
            let (Some(start), Some(end)) =
                (p.bedtime_start.as_deref().and_then(instant), p.bedtime_end.as_deref().and_then(instant))
            else {
                continue;
            };
            let Some(asleep) = p.total_sleep_duration.filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0) else {
                continue;
            };
            let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
            if end_ms > start_ms {
                pieces.push(Night { start_ms, end_ms, asleep_ms: (asleep * 1000.0) as i64 });
            }
        }
        let nights = crate::sleep::join_periods(pieces);
        // The main night of each wake-up day: the one with the most sleep.
        let mains = crate::sleep::main_nights(&nights, client.tz, from);
        for (date, main) in mains {
            out.metrics.extend(WakeDay { date, asleep_ms: main.asleep_ms, main }.metrics(client.id, now));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    #[test]
    fn signatures_are_uppercase_hex_of_timestamp_and_body() {
        let body = br#"{"event_type":"create","data_type":"sleep","object_id":"x","user_id":"u"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("mac");
        mac.update(b"1763650000");
        mac.update(body);
        let sig = crate::crypto::hex(&mac.finalize().into_bytes()).to_uppercase();
        assert!(signature_ok("secret", "1763650000", body, &sig));
        assert!(signature_ok("secret", "1763650000", body, &sig.to_lowercase()));
        assert!(!signature_ok("secret", "1763650001", body, &sig), "the timestamp is signed");
        assert!(!signature_ok("other", "1763650000", body, &sig));
        assert!(!signature_ok("secret", "1763650000", b"{}", &sig));
        assert!(!signature_ok("secret", "1763650000", body, "zz"));
        assert!(!signature_ok("secret", "1763650000", body, &sig[..10]));
    }

    #[test]
    fn the_user_cap_is_explained_and_other_refusals_are_not() {
        let why = Oura.explain_refusal(403, "access_denied: Maximum number of users reached for this application");
        assert!(why.is_some_and(|w| w.contains("at most 10 users") && w.contains("approve")));
        assert!(Oura.explain_refusal(400, "invalid_grant: Token already used or revoked").is_none());
    }
}
