//! WHOOP API v2: workouts with their time in heart-rate zones, sleep from its stage
//! summary, refresh tokens that rotate on every refresh (the generic refresh, one at a
//! time per account, stores each new pair before using it), signed webhook deliveries
//! taken as hints, and the revocation of coachd's access.
//!
//! A sync lists `GET /v2/activity/workout?start=&end=&limit=25` (paged with `nextToken`)
//! from the committed cursor, the last local date fully synced, looking two days further
//! back for edits and deletions. WHOOP gives no heart-rate samples, only each workout's
//! `score.zone_durations` (zones 0-5: below 50 %, then 50-60 % ... 90-100 % of the max HR
//! WHOOP knows for the member), kept as the workout's [`ZoneTime`] with that max HR
//! (`GET /v2/user/measurement/body`, read at most once a day), so cardio minutes and
//! "zone N" homework are judged from it. Then `GET /v2/activity/sleep` for the same span
//! and at least the last [`LATE_DAYS`]: sleeps that are not naps, less than an hour apart,
//! are one night (the shared rule of [`crate::sleep`]); the main night of a wake-up day
//! (the local date it ends, as every sleep source is dated) gives that day the time asleep
//! (the stage summary's time in bed less the time awake and the time without data) and
//! the bed and wake times. A night WHOOP no longer lists is deleted here.
//!
//! WHOOP has no steps: [`Provider::cannot_give`] says so, and a step homework of a client
//! with no other source of steps says why it cannot be judged.

use super::sync::{reconcile, Daily, Listing, Page, Plan, Report, SyncError, Turn};
use super::{Api, ApiError, BoxFuture, Connection, Provider, ProviderError, Registry, WebhookRefusal};
use crate::model::{Metric, NewActivity, ZoneTime};
use crate::sleep::{Night, WakeDay};
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

pub const SOURCE: &str = "whoop";
/// How far behind the cursor every sync looks again for edited and deleted workouts.
pub const RECONCILE_DAYS: i64 = 2;
/// Sleep is read again this far back on every sync: it is scored after the strap's data
/// reaches WHOOP, and may be edited in the app.
pub const LATE_DAYS: i64 = 3;
/// The most records WHOOP returns in one page.
pub const PAGE: u32 = 25;
/// A delivery signed longer ago (or further ahead) than this is refused as stale.
pub const FRESH_S: i64 = 300;
/// How often the max HR WHOOP counts zones against is read again.
pub const MAX_HR_EVERY: Duration = Duration::days(1);
/// WHOOP's heart-rate zones as lower bounds in % of max HR: zone 0 below 50 %, zones 1-5
/// from 50, 60, 70, 80 and 90 % (10 points wide, as coachd's zones 1-5 are).
pub const ZONE_BOUNDS: [u8; 6] = [0, 50, 60, 70, 80, 90];
/// What a sleep night is stored as, and deleted as when WHOOP no longer has it.
const SLEEP_METRICS: [Metric; 3] = [Metric::SleepS, Metric::SleepStart, Metric::SleepEnd];

/// A page of any collection.
#[derive(Debug, Deserialize)]
struct Collection<T> {
    records: Vec<T>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Workout {
    /// A UUID.
    pub id: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// UTC, e.g. "2026-11-20T17:00:00.000Z".
    pub start: String,
    pub end: String,
    /// The member's offset then: "+hh:mm", "-hh:mm" or "Z".
    #[serde(default)]
    pub timezone_offset: Option<String>,
    #[serde(default)]
    pub sport_name: Option<String>,
    /// SCORED, PENDING_SCORE or UNSCORABLE; only a scored workout has a score.
    #[serde(default)]
    pub score_state: Option<String>,
    #[serde(default)]
    pub score: Option<WorkoutScore>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WorkoutScore {
    #[serde(default)]
    pub strain: Option<f64>,
    #[serde(default)]
    pub average_heart_rate: Option<f64>,
    #[serde(default)]
    pub max_heart_rate: Option<f64>,
    #[serde(default)]
    pub kilojoule: Option<f64>,
    #[serde(default)]
    pub percent_recorded: Option<f64>,
    #[serde(default)]
    pub distance_meter: Option<f64>,
    /// The v1 documentation spells it `zone_duration`.
    #[serde(default, alias = "zone_duration")]
    pub zone_durations: Option<ZoneDurations>,
}

/// Milliseconds in each of WHOOP's zones.
#[derive(Clone, Debug, Deserialize)]
pub struct ZoneDurations {
    #[serde(default)]
    pub zone_zero_milli: Option<i64>,
    #[serde(default)]
    pub zone_one_milli: Option<i64>,
    #[serde(default)]
    pub zone_two_milli: Option<i64>,
    #[serde(default)]
    pub zone_three_milli: Option<i64>,
    #[serde(default)]
    pub zone_four_milli: Option<i64>,
    #[serde(default)]
    pub zone_five_milli: Option<i64>,
}

impl ZoneDurations {
    /// The zones as coachd's [`ZoneTime`], counted against `max_hr` (WHOOP's, if known).
    pub fn zone_time(&self, max_hr: Option<u16>) -> Option<ZoneTime> {
        let ms = [
            self.zone_zero_milli,
            self.zone_one_milli,
            self.zone_two_milli,
            self.zone_three_milli,
            self.zone_four_milli,
            self.zone_five_milli,
        ];
        // A zone WHOOP leaves out had no time (and leaving it out would widen the one below).
        let any = ms.iter().any(Option::is_some);
        let bands = ZONE_BOUNDS.iter().zip(ms).map(|(bound, ms)| (*bound, ms.unwrap_or(0))).collect();
        any.then_some(ZoneTime { max_hr, bands })
    }
}

#[derive(Debug, Deserialize)]
struct Sleep {
    start: String,
    end: String,
    #[serde(default)]
    nap: bool,
    #[serde(default)]
    score: Option<SleepScore>,
}

#[derive(Debug, Deserialize)]
struct SleepScore {
    #[serde(default)]
    stage_summary: Option<StageSummary>,
}

#[derive(Debug, Deserialize)]
struct StageSummary {
    #[serde(default)]
    total_in_bed_time_milli: Option<i64>,
    #[serde(default)]
    total_awake_time_milli: Option<i64>,
    #[serde(default)]
    total_no_data_time_milli: Option<i64>,
}

impl StageSummary {
    /// Milliseconds asleep: in bed, less awake, less the time the strap sent nothing
    /// (which is not known to be sleep). None when WHOOP gives no time in bed.
    fn asleep_ms(&self) -> Option<i64> {
        let in_bed = self.total_in_bed_time_milli.filter(|t| (0..=crate::sleep::LONGEST_NIGHT_MS).contains(t))?;
        let off = |t: Option<i64>| t.unwrap_or(0).clamp(0, in_bed);
        Some((in_bed - off(self.total_awake_time_milli) - off(self.total_no_data_time_milli)).max(0))
    }
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// "+hh:mm", "-hh:mm" or "Z" as an offset.
fn offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" || s.is_empty() {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// A sport name as the manifest's type map spells it: lower case, `_` for spaces,
/// hyphens, slashes and ampersands.
fn sport_key(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// WHOOP on the provider interface.
pub struct Whoop;

impl Provider for Whoop {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/whoop.toml")
    }

    /// No steps in WHOOP's API.
    fn cannot_give(&self) -> &'static [Metric] {
        &[Metric::Steps]
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            let (workouts, sleep) = (turn.account.granted("read:workout"), turn.account.granted("read:sleep"));
            let max_hr = if workouts && turn.account.granted("read:body_measurement") { max_hr(turn).await? } else { None };
            reconcile(turn, &Activities { api, workouts, sleep, max_hr }).await
        })
    }

    /// The WHOOP user id (`/v2/user/profile/basic`), which webhook deliveries name.
    fn after_connect<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let url = api.manifest.url("/v2/user/profile/basic");
            match api.get_json::<serde_json::Value>("the basic profile", &c.access, &url, &[]).await {
                Ok(profile) => match profile.get("user_id") {
                    Some(serde_json::Value::Number(n)) => {
                        c.store.set_account_user(c.account.id, &n.to_string()).await?;
                        Ok(None)
                    }
                    Some(serde_json::Value::String(s)) if !s.is_empty() => {
                        c.store.set_account_user(c.account.id, s).await?;
                        Ok(None)
                    }
                    _ => Err(ProviderError::Invalid(format!("WHOOP's basic profile has no user_id: {profile}"))),
                },
                Err(ApiError::Unauthorized(_) | ApiError::Forbidden(_)) => Ok(Some(
                    "Without read:profile WHOOP's webhook deliveries cannot be matched to this client; the regular \
                     sync still reads everything granted."
                        .into(),
                )),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// `DELETE /v2/user/access`: WHOOP revokes the access token and its grant, and sends
    /// no more webhooks for the member.
    fn revoke<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let url = api.manifest.url("/v2/user/access");
            let (status, body) =
                api.send_once(reqwest::Method::DELETE, "the revocation", &c.access, &url, None).await?;
            // 204; a 401 means the token was already dead: nothing left to revoke.
            super::revocation(&api.manifest.display, status, &body)
        })
    }

    /// `X-WHOOP-Signature` = base64 HMAC-SHA256(client secret, `X-WHOOP-Signature-Timestamp`
    /// + raw body), the timestamp (milliseconds) within [`FRESH_S`] of now.
    fn webhook_verify(
        &self,
        reg: &Registry,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        let app = reg.app(SOURCE).map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let Some(signature) = header("x-whoop-signature").filter(|s| !s.is_empty()) else {
            return Err(WebhookRefusal::Unauthorized("unsigned: no X-WHOOP-Signature".into()));
        };
        let Some((stamp, at_ms)) =
            header("x-whoop-signature-timestamp").and_then(|t| Some((t, t.parse::<i64>().ok()?)))
        else {
            return Err(WebhookRefusal::Unauthorized("no readable X-WHOOP-Signature-Timestamp".into()));
        };
        let age_s = reg.clock.now().timestamp_millis().saturating_sub(at_ms) / 1000;
        if age_s.abs() > FRESH_S {
            return Err(WebhookRefusal::Unauthorized(format!(
                "stale: signed {age_s} s from now (at most {FRESH_S})"
            )));
        }
        if !signature_ok(app.client_secret.expose(), stamp, body, signature) {
            return Err(WebhookRefusal::Unauthorized("wrong X-WHOOP-Signature".into()));
        }
        serde_json::from_slice::<Delivery>(body)
            .map(drop)
            .map_err(|e| WebhookRefusal::BadBody(format!("not a WHOOP delivery: {e}")))
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
}

/// The max HR WHOOP counts the account's zones against: kept in the store, read again
/// from `/v2/user/measurement/body` once [`MAX_HR_EVERY`] has passed. A failure to read it
/// keeps the last value (the sync goes on).
async fn max_hr(turn: &mut Turn<'_>) -> Result<Option<u16>, SyncError> {
    let key = format!("whoop_max_hr:{}", turn.account.id);
    let now = turn.reg.clock.now();
    let kept = turn.store.meta_value(&key).await?;
    let (value, at) = match kept.as_deref().and_then(|v| v.split_once('@')) {
        Some((bpm, at)) => (bpm.parse::<u16>().ok(), instant(at)),
        None => (None, None),
    };
    if at.is_some_and(|t| now - t < MAX_HR_EVERY) {
        return Ok(value);
    }
    let api = turn.reg.api(SOURCE)?.clone();
    let url = api.manifest.url("/v2/user/measurement/body");
    let read = match turn.get_json::<serde_json::Value>("the body measurement", &url, &[]).await {
        Ok(body) => body
            .get("max_heart_rate")
            .and_then(serde_json::Value::as_f64)
            .filter(|h| crate::model::SeriesKind::Hr.plausible(*h))
            .map(|h| h.round() as u16),
        Err(SyncError::Api(ApiError::NotFound(_) | ApiError::Forbidden(_))) => None,
        Err(SyncError::Api(e @ (ApiError::Server(..) | ApiError::Malformed(..) | ApiError::Unexpected(..)))) => {
            tracing::warn!(client = %turn.account.client, error = %e, "WHOOP's max HR not read; keeping the last one");
            return Ok(value);
        }
        Err(e) => return Err(e),
    };
    let text = format!("{}@{}", read.map(|h| h.to_string()).unwrap_or_default(), now.to_rfc3339());
    turn.store.set_meta_value(&key, &text).await?;
    Ok(read)
}

/// Whether `signature` (base64) is HMAC-SHA256(secret, timestamp + body).
/// Padding optional.
pub fn signature_ok(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(signature.trim().trim_end_matches('='))
        .is_ok_and(|mac| crate::crypto::hmac_sha256_is(secret.as_bytes(), &[timestamp.as_bytes(), body], &mac))
}

/// A webhook delivery: which member's what changed.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    /// The WHOOP user id (a number).
    pub user_id: serde_json::Value,
    /// The workout's or sleep's UUID (a recovery's: its sleep's).
    pub id: serde_json::Value,
    /// `workout.updated`, `workout.deleted`, `sleep.updated`, `sleep.deleted`,
    /// `recovery.updated`, `recovery.deleted`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub trace_id: Option<String>,
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A delivery is a hint: the member's account is synced soon. A deleted workout is
/// deleted here once WHOOP answers 404 for it; a deleted sleep goes at that sync (WHOOP no
/// longer lists it). Recovery is not read.
pub async fn on_delivery(reg: &Registry, store: &Store, d: &Delivery) -> Result<&'static str, SyncError> {
    if d.kind.starts_with("recovery.") {
        return Ok("recovery is not read; ignored");
    }
    let Some(account) = store.account_by_external(SOURCE, &text(&d.user_id)).await?.filter(|a| a.syncable()) else {
        return Ok("unknown user; ignored");
    };
    if d.kind == "workout.deleted" {
        let id = text(&d.id);
        let api = reg.api(SOURCE)?.clone();
        let mut turn = Turn::new(reg, store, &account, 3);
        let url = api.manifest.url(&format!("/v2/activity/workout/{id}"));
        if let Err(SyncError::Api(ApiError::NotFound(_))) =
            turn.get_json::<serde_json::Value>("a workout", &url, &[]).await
        {
            store.delete_source_activity(SOURCE, &id).await?;
            reg.poke(account.id);
            return Ok("deleted");
        }
    }
    reg.poke(account.id);
    Ok("sync requested")
}

/// Workouts, then sleep, of one account.
struct Activities {
    api: Arc<Api>,
    /// The scopes granted.
    workouts: bool,
    sleep: bool,
    /// The max HR WHOOP counts zones against, where known.
    max_hr: Option<u16>,
}

impl Activities {
    fn url(&self, path: &str) -> String {
        self.api.manifest.url(&format!("/v2/activity/{path}"))
    }
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
            q.push(("nextToken", t.clone()));
        }
        let page: Collection<T> = turn.get_json(what, url, &q).await?;
        out.extend(page.records);
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

impl Listing for Activities {
    type Item = Workout;
    const NOUN: &'static str = "workout";

    fn plan(&self, turn: &Turn<'_>, client: &Client, cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        let cursor: Option<NaiveDate> = cursor.and_then(|c| c.parse().ok());
        let first = today - Duration::days(i64::from(turn.reg.backfill_days));
        let from = cursor.map_or(first, |c| c.min(today - Duration::days(RECONCILE_DAYS)).max(first));
        let since = crate::time::local(client.tz, from, chrono::NaiveTime::MIN);
        let until = now + Duration::days(1);
        Plan {
            since,
            until,
            first: String::new(),
            cursor: cursor.map(|c| c.to_string()).unwrap_or_default(),
            done: Some(today.to_string()),
            from: from.to_string(),
            to: utc(until),
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
        let mut q = vec![("limit", PAGE.to_string()), ("start", utc(plan.since)), ("end", plan.to.clone())];
        if !page.is_empty() {
            q.push(("nextToken", page.to_string()));
        }
        let c: Collection<Workout> = turn.get_json("the workouts", &self.url("workout"), &q).await?;
        // WHOOP lists what overlaps the span; one that began before it is not this span's.
        let items = c.records.into_iter().filter(|w| instant(&w.start).is_none_or(|t| t >= plan.since)).collect();
        Ok(Page { items, next: c.next_token.filter(|t| !t.is_empty()) })
    }

    fn id(&self, w: &Workout) -> String {
        w.id.clone()
    }

    fn fingerprint(&self, w: &Workout) -> Vec<u8> {
        // Learning WHOOP's max HR makes the workouts due again, for their zones' basis.
        let text = format!("{w:?}|max_hr={}", self.max_hr.is_some());
        crate::crypto::sha256(text.as_bytes())[..16].to_vec()
    }

    fn convert(&self, client: &Client, w: &Workout) -> Result<NewActivity, String> {
        let parse = |s: &str| instant(s).ok_or_else(|| format!("unreadable time {s:?}"));
        let (start, end) = (parse(&w.start)?, parse(&w.end)?);
        let secs = (end - start).num_milliseconds() as f64 / 1000.0;
        let end = crate::model::span_end(start, secs)?;
        let utc_offset_s = match w.timezone_offset.as_deref() {
            Some(o) => offset(o).ok_or_else(|| format!("unreadable timezone_offset {o:?}"))?.local_minus_utc(),
            None => 0,
        };
        let ty = self.api.manifest.activity_type(&sport_key(w.sport_name.as_deref().unwrap_or("activity")));
        let score = w.score.as_ref().filter(|_| w.score_state.as_deref().is_none_or(|s| s == "SCORED"));
        Ok(NewActivity {
            client_id: client.id,
            external_id: w.id.clone(),
            start,
            end,
            utc_offset_s,
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: secs,
            distance_m: score.and_then(|s| s.distance_meter),
            avg_hr: score.and_then(|s| s.average_heart_rate),
            max_hr: score.and_then(|s| s.max_heart_rate).filter(|h| h.is_finite() && *h >= 0.0).map(|h| h as u16),
            energy_kj: score.and_then(|s| s.kilojoule),
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: score.and_then(|s| s.zone_durations.as_ref()).and_then(|z| z.zone_time(self.max_hr)),
        })
    }

    fn gone_url(&self, id: &str) -> Option<String> {
        Some(self.url(&format!("workout/{id}")))
    }

    /// Sleep (with what the scopes left out).
    async fn daily(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan, _part: usize) -> Result<Daily, SyncError> {
        let mut out = Daily::default();
        let m = &self.api.manifest;
        for (scope, on) in [("read:workout", self.workouts), ("read:sleep", self.sleep)] {
            if !on {
                let reads = m.scope_reads.get(scope).map_or(scope, String::as_str);
                out.skipped.push(format!("{reads}: not granted (WHOOP scope {scope}); connect again to allow it"));
            }
        }
        if !self.sleep {
            return Ok(out);
        }
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        let from: NaiveDate = plan.from.parse().unwrap_or(today).min(today - Duration::days(LATE_DAYS));
        // A night ending on `from` began the evening before.
        let since = crate::time::local(client.tz, from - Duration::days(1), chrono::NaiveTime::MIN);
        let q = [("limit", PAGE.to_string()), ("start", utc(since)), ("end", plan.to.clone())];
        let sleeps: Vec<Sleep> = collect(turn, "the sleeps", &self.url("sleep"), &q).await?;
        // Sleeps of one night (a wake-up of under an hour between them, the shared rule)
        // are one night: its time asleep is theirs together. Naps are not nights.
        let mut pieces: Vec<Night> = Vec::new();
        // Days WHOOP has a night for, scored or not yet.
        let mut listed: BTreeSet<NaiveDate> = BTreeSet::new();
        for s in sleeps.iter().filter(|s| !s.nap) {
            let (Some(start), Some(end)) = (instant(&s.start), instant(&s.end)) else { continue };
            let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
            if end_ms <= start_ms {
                continue;
            }
            listed.insert(crate::sleep::local_date(client.tz, end_ms));
            let Some(asleep_ms) = s.score.as_ref().and_then(|x| x.stage_summary.as_ref()).and_then(StageSummary::asleep_ms)
            else {
                // Not scored yet (or unscorable): no time asleep to count.
                continue;
            };
            pieces.push(Night { start_ms, end_ms, asleep_ms });
        }
        let nights = crate::sleep::join_periods(pieces);
        // The main night of each wake-up day: the one with the most sleep.
        let mains = crate::sleep::main_nights(&nights, client.tz, from);
        for (date, main) in mains {
            out.metrics.extend(WakeDay { date, asleep_ms: main.asleep_ms, main }.metrics(client.id, now));
        }
        // A night stored here that WHOOP no longer lists was deleted there.
        for date in turn.store.source_daily_dates(SOURCE, client.id, Metric::SleepS, from, today).await? {
            if !listed.contains(&date) && turn.store.delete_source_daily(SOURCE, client.id, date, &SLEEP_METRICS).await? {
                out.deleted += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn sign(secret: &str, stamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("mac");
        mac.update(stamp.as_bytes());
        mac.update(body);
        use base64::Engine;
        // Standard base64, padded.
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_are_base64_of_timestamp_and_body() {
        let body = br#"{"user_id":10129,"id":"ecfc6a15-4661-442f-a9a4-f160dd7afae8","type":"sleep.updated"}"#;
        let sig = sign("secret", "1763650000000", body);
        assert_eq!(sig.len(), 44);
        assert!(signature_ok("secret", "1763650000000", body, &sig));
        assert!(signature_ok("secret", "1763650000000", body, sig.trim_end_matches('=')), "padding optional");
        assert!(!signature_ok("secret", "1763650000001", body, &sig), "the timestamp is signed");
        assert!(!signature_ok("other", "1763650000000", body, &sig));
        assert!(!signature_ok("secret", "1763650000000", b"{}", &sig));
        assert!(!signature_ok("secret", "1763650000000", body, "not base64!"));
        assert!(!signature_ok("secret", "1763650000000", body, &sig[..20]));
    }

    #[test]
    fn offsets_sports_and_sleep_read_as_whoop_writes_them() {
        assert_eq!(offset("-05:00").map(|o| o.local_minus_utc()), Some(-5 * 3600));
        assert_eq!(offset("+09:30").map(|o| o.local_minus_utc()), Some(9 * 3600 + 1800));
        assert_eq!(offset("Z").map(|o| o.local_minus_utc()), Some(0));
        assert_eq!(offset("09:00"), None);
        assert_eq!(sport_key("Hiking/Rucking"), "hiking_rucking");
        assert_eq!(sport_key("functional-fitness"), "functional_fitness");
        assert_eq!(sport_key(" Track & Field "), "track_field");
        let s = StageSummary {
            total_in_bed_time_milli: Some(8 * 3_600_000),
            total_awake_time_milli: Some(40 * 60_000),
            total_no_data_time_milli: Some(5 * 60_000),
        };
        assert_eq!(s.asleep_ms(), Some(8 * 3_600_000 - 45 * 60_000));
        let none = StageSummary { total_in_bed_time_milli: None, ..s };
        assert_eq!(none.asleep_ms(), None);
        let z = ZoneDurations {
            zone_zero_milli: Some(1),
            zone_one_milli: Some(2),
            zone_two_milli: Some(3),
            zone_three_milli: None,
            zone_four_milli: Some(5),
            zone_five_milli: Some(6),
        };
        let t = z.zone_time(Some(190)).expect("zones");
        assert_eq!(t.bands, vec![(0, 1), (50, 2), (60, 3), (70, 0), (80, 5), (90, 6)]);
        assert_eq!(t.max_hr, Some(190));
    }
}
