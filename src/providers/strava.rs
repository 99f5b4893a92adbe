//! Strava: activities and their heart-rate streams, incrementally, plus the push
//! subscription's events.
//!
//! A sync lists `GET /athlete/activities?after=T&per_page=200` (oldest first) from the
//! committed cursor, reaching back two days more each time so that edits and deletions
//! of recent activities are seen; an activity whose summary is unchanged (its
//! fingerprint is stored with it) costs no further request, a new or changed one with
//! heart rate costs one `GET /activities/{id}/streams`. Each page is ingested with the
//! cursor in one transaction. A stored activity missing from the listing is checked
//! (`GET /activities/{id}`: 404) and then deleted.

use super::sync::{Report, SyncError, Turn};
use super::ApiError;
use crate::model::{Batch, Cursor, NewActivity, Sample, Series, SeriesKind};
use crate::store::providers::state;
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

pub const SOURCE: &str = "strava";
pub const PER_PAGE: usize = 200;
/// How far behind the cursor every sync looks again, for edits and deletions.
pub const RECONCILE: Duration = Duration::days(2);

/// An activity as `GET /athlete/activities` lists it (SummaryActivity).
#[derive(Clone, Debug, Deserialize)]
pub struct Summary {
    pub id: i64,
    #[serde(default)]
    pub sport_type: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub start_date: DateTime<Utc>,
    #[serde(default)]
    pub utc_offset: Option<f64>,
    pub elapsed_time: f64,
    #[serde(default)]
    pub moving_time: Option<f64>,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub has_heartrate: bool,
    #[serde(default)]
    pub average_heartrate: Option<f64>,
    #[serde(default)]
    pub max_heartrate: Option<f64>,
    #[serde(default)]
    pub kilojoules: Option<f64>,
}

impl Summary {
    fn sport(&self) -> &str {
        self.sport_type.as_deref().or(self.kind.as_deref()).unwrap_or("Workout")
    }

    /// What decides whether the stored copy is current.
    pub fn fingerprint(&self) -> Vec<u8> {
        let text = format!(
            "{}|{}|{}|{:?}|{:?}|{}|{:?}|{:?}",
            self.sport(),
            self.start_date.timestamp(),
            self.elapsed_time,
            self.moving_time,
            self.distance,
            self.has_heartrate,
            self.average_heartrate,
            self.max_heartrate
        );
        crate::crypto::sha256(text.as_bytes())[..16].to_vec()
    }
}

/// `GET /activities/{id}/streams?keys=time,heartrate&key_by_type=true`.
#[derive(Debug, Default, Deserialize)]
struct Streams {
    #[serde(default)]
    time: Option<Stream>,
    #[serde(default)]
    heartrate: Option<Stream>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    data: Vec<f64>,
}

fn heart_rate(start: DateTime<Utc>, s: Streams) -> Vec<Sample> {
    let (Some(time), Some(hr)) = (s.time, s.heartrate) else { return Vec::new() };
    let range = SeriesKind::Hr.valid_range();
    time.data
        .iter()
        .zip(hr.data)
        .filter(|(_, bpm)| range.contains(bpm))
        .filter_map(|(t, bpm)| Some(Sample { t_ms: super::sample_ms(start, *t)?, value: bpm }))
        .collect()
}

fn activity(turn: &Turn<'_>, s: &Summary, end: DateTime<Utc>, hr: Vec<Sample>) -> Result<NewActivity, SyncError> {
    let api = turn.reg.api(SOURCE).map_err(SyncError::Other)?;
    let ty = api.manifest.activity_type(s.sport());
    let elapsed = (end - s.start_date).num_milliseconds() as f64 / 1000.0;
    Ok(NewActivity {
        client_id: turn.account.client_id,
        external_id: s.id.to_string(),
        start: s.start_date,
        end,
        utc_offset_s: s.utc_offset.map_or(0, |o| o as i32).clamp(-18 * 3600, 18 * 3600),
        category: crate::activity_types::category(&ty),
        activity_type: ty,
        duration_s: s.moving_time.unwrap_or(elapsed).clamp(0.0, elapsed.max(0.0)),
        distance_m: s.distance.filter(|d| d.is_finite() && *d >= 0.0),
        avg_hr: s.average_heartrate.filter(|h| h.is_finite() && *h > 0.0),
        max_hr: s.max_heartrate.filter(|h| h.is_finite() && *h > 0.0 && *h < 300.0).map(|h| h as u16),
        energy_kj: s.kilojoules.filter(|k| k.is_finite() && *k >= 0.0),
        content_hash: Some(s.fingerprint()),
        series: if hr.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples: hr }] },
        sets: None,
    })
}

fn stream_name(account: i64) -> String {
    format!("account:{account}")
}

pub async fn sync(turn: &mut Turn<'_>) -> Result<Report, SyncError> {
    let api = turn.reg.api(SOURCE).map_err(SyncError::Other)?.clone();
    let store = turn.store;
    let now = turn.reg.clock.now();
    let stream = stream_name(turn.account.id);
    let cursor: Option<i64> = store.cursor(SOURCE, &stream).await?.and_then(|c| c.parse().ok());
    let first = (now - Duration::days(i64::from(turn.reg.backfill_days))).timestamp();
    let from = cursor.map_or(first, |c| c.min((now - RECONCILE).timestamp()).max(first));
    // What is stored after `from` (Strava's `after` is exclusive).
    let since = DateTime::from_timestamp(from + 1, 0).unwrap_or(now);
    let stored = store.source_fingerprints(SOURCE, turn.account.client_id, since, now + Duration::days(1)).await?;
    let mut report = Report::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut after = from;
    let mut committed = cursor.unwrap_or(from);
    loop {
        let carried = {
            let mut carry = turn.reg.carry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            carry.remove(&turn.account.id).filter(|(key, _, _)| *key == after)
        };
        let (page, full) = match carried {
            Some((_, full, page)) => (page, full),
            None => {
                if !turn.has_budget() {
                    return Ok(report);
                }
                let query =
                    [("after", after.to_string()), ("per_page", PER_PAGE.to_string()), ("page", "1".to_string())];
                let mut page: Vec<Summary> =
                    turn.get_json("the activity list", &api.manifest.url("/athlete/activities"), &query).await?;
                page.sort_by_key(|s| (s.start_date, s.id));
                report.listed += page.len();
                let full = page.len() >= PER_PAGE;
                (page, full)
            }
        };
        let mut batch = Batch::new(SOURCE);
        let mut rest: Vec<Summary> = Vec::new();
        let mut pending = std::collections::HashSet::new();
        for (i, s) in page.iter().enumerate() {
            seen.insert(s.id.to_string());
            let fp = s.fingerprint();
            if stored.get(&s.id.to_string()).is_some_and(|h| h.as_deref() == Some(fp.as_slice())) {
                report.unchanged += 1;
                after = after.max(s.start_date.timestamp());
                continue;
            }
            let end = match super::span_end(s.start_date, s.elapsed_time.max(0.0)) {
                Ok(end) => end,
                Err(why) => {
                    tracing::warn!(client = %turn.account.client, id = s.id, %why, "Strava activity skipped");
                    report.skipped.push(format!("activity {}: {why}", s.id));
                    after = after.max(s.start_date.timestamp());
                    continue;
                }
            };
            let hr = if s.has_heartrate {
                if !turn.has_budget() {
                    rest = page[i..].to_vec();
                    break;
                }
                let url = api.manifest.url(&format!("/activities/{}/streams", s.id));
                let q = [("keys", "time,heartrate".to_string()), ("key_by_type", "true".to_string())];
                match turn.get_json::<Streams>("an activity's heart-rate stream", &url, &q).await {
                    Ok(streams) => heart_rate(s.start_date, streams),
                    Err(SyncError::Api(ApiError::NotFound(_))) => Vec::new(),
                    // A stream that keeps failing: the activity is stored with what is
                    // known, and its samples are asked for again next round.
                    Err(SyncError::Api(e @ (ApiError::Server(..) | ApiError::Malformed(..)))) => {
                        tracing::warn!(client = %turn.account.client, id = s.id, error = %e, "heart rate not read; asking again next round");
                        report.samples_pending += 1;
                        pending.insert(s.id);
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                }
            } else {
                Vec::new()
            };
            if stored.contains_key(&s.id.to_string()) {
                report.updated += 1;
            } else {
                report.inserted += 1;
            }
            let mut a = activity(turn, s, end, hr)?;
            if pending.contains(&s.id) {
                // Not its fingerprint: the next round sees it as changed and fetches again.
                a.content_hash = Some(b"samples pending".to_vec());
            }
            batch.activities.push(a);
            after = after.max(s.start_date.timestamp());
        }
        // The cursor never moves back, and moves only with the data it covers.
        committed = committed.max(after);
        batch.cursor = Some(Cursor { stream: stream.clone(), value: committed.to_string() });
        store.ingest(&batch).await?;
        if !rest.is_empty() {
            let mut carry = turn.reg.carry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            carry.insert(turn.account.id, (committed, full, rest));
            return Ok(report);
        }
        if !full {
            break;
        }
    }
    // Stored activities of the listed span that Strava no longer lists were deleted there.
    let vanished = stored.keys().filter(|id| !seen.contains(*id));
    let url_of = |id: &str| api.manifest.url(&format!("/activities/{id}"));
    if !super::sync::delete_vanished(turn, SOURCE, vanished, url_of, &mut report).await? {
        return Ok(report);
    }
    report.done = true;
    Ok(report)
}

/// A push-subscription event (`POST /webhooks/strava`).
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub object_type: String,
    pub object_id: i64,
    pub aspect_type: String,
    pub owner_id: i64,
    #[serde(default)]
    pub updates: HashMap<String, serde_json::Value>,
}

/// Act on an event. Events are not signed, so they are hints: a deauthorization is
/// believed once Strava refuses the token, a deletion once Strava answers 404.
pub async fn on_event(reg: &super::Registry, store: &Store, e: &Event) -> Result<&'static str, SyncError> {
    let Some(account) = store.account_by_external(SOURCE, &e.owner_id.to_string()).await? else {
        return Ok("unknown athlete; ignored");
    };
    let api = reg.api(SOURCE).map_err(SyncError::Other)?.clone();
    let deauthorized = e.object_type == "athlete"
        && e.updates.get("authorized").is_some_and(|v| v == "false" || v == &serde_json::Value::Bool(false));
    if deauthorized {
        let mut turn = Turn::new(reg, store, &account, 3);
        return match turn.get_json::<serde_json::Value>("the athlete", &api.manifest.url("/athlete"), &[]).await {
            Err(SyncError::Api(ApiError::Unauthorized(_))) | Err(SyncError::Token(_)) => {
                let why = "the client removed coachd's access in Strava; connect again to resume";
                store.set_account_state(account.id, state::REVOKED, Some(why)).await?;
                Ok("deauthorized")
            }
            Ok(_) => Ok("deauthorization not confirmed by Strava; ignored"),
            Err(e) => Err(e),
        };
    }
    if e.object_type != "activity" || !account.syncable() {
        return Ok("ignored");
    }
    if e.aspect_type == "delete" {
        let mut turn = Turn::new(reg, store, &account, 3);
        let url = api.manifest.url(&format!("/activities/{}", e.object_id));
        return match turn.get_json::<serde_json::Value>("an activity", &url, &[]).await {
            Err(SyncError::Api(ApiError::NotFound(_))) => {
                store.delete_source_activity(SOURCE, &e.object_id.to_string()).await?;
                Ok("deleted")
            }
            Ok(_) => Ok("still there; ignored"),
            Err(e) => Err(e),
        };
    }
    reg.poke(account.id);
    Ok("sync requested")
}

/// Create the push subscription (`POST /push_subscriptions`): Strava checks the callback
/// at once with a `hub.challenge` GET, which the running daemon answers with
/// `verify_token`. Returns the subscription id. Without a subscription (a server
/// Strava cannot reach), the regular sync polls.
pub async fn subscribe(reg: &super::Registry, verify_token: &str) -> Result<i64, String> {
    let api = reg.api(SOURCE)?;
    let app = reg.app(SOURCE)?;
    let callback = format!("{}/webhooks/strava", reg.base_url);
    let form = [
        ("client_id", app.client_id.clone()),
        ("client_secret", app.client_secret.expose().clone()),
        ("callback_url", callback.clone()),
        ("verify_token", verify_token.to_string()),
    ];
    let resp = api
        .http
        .post(api.manifest.url("/push_subscriptions"))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("Strava could not be reached: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "Strava refused the subscription (HTTP {}): {body}. Is `coachd run` reachable from the internet at {callback}?",
            status.as_u16()
        ));
    }
    body.get("id").and_then(serde_json::Value::as_i64).ok_or_else(|| format!("Strava's answer has no id: {body}"))
}
