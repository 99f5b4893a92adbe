//! intervals.icu: a personal API key per client (HTTP Basic, user `API_KEY`), activities
//! by local date (`GET /athlete/0/activities?oldest=&newest=`) and their heart-rate
//! streams (`GET /activity/{id}/streams.json?types=time,heartrate`). Same scheme as
//! Strava: the cursor is the last local date fully synced, two days are looked at again,
//! unchanged summaries cost nothing more, vanished activities are checked and deleted.

use super::sync::{Report, SyncError, Turn};
use super::ApiError;
use crate::model::{Batch, Cursor, NewActivity, Sample, Series, SeriesKind};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use serde::Deserialize;
use std::collections::HashSet;

pub const SOURCE: &str = "intervals";

#[derive(Clone, Debug, Deserialize)]
pub struct Summary {
    pub id: String,
    /// Where the activity came from: "STRAVA" marks the stubs intervals.icu lists for
    /// activities it may not hand on (Strava's API terms): no type, no duration, no streams.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// UTC, e.g. "2026-11-20T17:00:00Z".
    #[serde(default)]
    pub start_date: Option<String>,
    /// Local, e.g. "2026-11-20T18:00:00".
    #[serde(default)]
    pub start_date_local: Option<String>,
    #[serde(default)]
    pub elapsed_time: Option<f64>,
    #[serde(default)]
    pub moving_time: Option<f64>,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub average_heartrate: Option<f64>,
    #[serde(default)]
    pub max_heartrate: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Vec<Option<f64>>,
}

impl Summary {
    fn start(&self, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        if let Some(s) = &self.start_date {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
        }
        let local = NaiveDateTime::parse_from_str(self.start_date_local.as_deref()?, "%Y-%m-%dT%H:%M:%S").ok()?;
        tz.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
    }

    fn fingerprint(&self) -> Vec<u8> {
        let text = format!("{self:?}");
        crate::crypto::sha256(text.as_bytes())[..16].to_vec()
    }
}

pub async fn sync(turn: &mut Turn<'_>) -> Result<Report, SyncError> {
    let api = turn.reg.api(SOURCE).map_err(SyncError::Other)?.clone();
    let store = turn.store;
    let client = store.client_by_id(turn.account.client_id).await?;
    let tz = client.tz;
    let now = turn.reg.clock.now();
    let today = now.with_timezone(&tz).date_naive();
    let stream = format!("account:{}", turn.account.id);
    let cursor: Option<NaiveDate> = store.cursor(SOURCE, &stream).await?.and_then(|c| c.parse().ok());
    let first = today - Duration::days(i64::from(turn.reg.backfill_days));
    let oldest = cursor.map_or(first, |c| c.min(today - Duration::days(2)).max(first));
    let q = [("oldest", oldest.to_string()), ("newest", today.to_string())];
    let mut list: Vec<Summary> =
        turn.get_json("the activity list", &api.manifest.url("/athlete/0/activities"), &q).await?;
    let since = tz
        .from_local_datetime(&oldest.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc));
    let stored = store.source_fingerprints(SOURCE, client.id, since, now + Duration::days(1)).await?;
    list.sort_by(|a, b| a.start_date_local.cmp(&b.start_date_local));
    let mut report = Report { listed: list.len(), ..Report::default() };
    let mut batch = Batch::new(SOURCE);
    let mut seen = HashSet::new();
    for s in &list {
        seen.insert(s.id.clone());
        let fp = s.fingerprint();
        if stored.get(&s.id).is_some_and(|h| h.as_deref() == Some(fp.as_slice())) {
            report.unchanged += 1;
            continue;
        }
        let Some(start) = s.start(tz) else {
            tracing::warn!(client = %client.name, id = %s.id, "intervals.icu activity without a start time; skipped");
            report.skipped.push(format!("activity {}: no start time", s.id));
            continue;
        };
        // A listed item that is not delivered is not a workout, and must not make its
        // day count as having data.
        if s.source.as_deref() == Some("STRAVA") {
            report.skipped.push(format!(
                "activity {}: came to intervals.icu from Strava and is not readable there: connect Strava directly",
                s.id
            ));
            continue;
        }
        let elapsed = s.elapsed_time.or(s.moving_time).unwrap_or(0.0);
        let end = match super::span_end(start, elapsed) {
            Ok(end) if elapsed > 0.0 => end,
            Ok(_) => {
                report.skipped.push(format!("activity {}: no duration", s.id));
                continue;
            }
            Err(why) => {
                tracing::warn!(client = %client.name, id = %s.id, %why, "intervals.icu activity skipped");
                report.skipped.push(format!("activity {}: {why}", s.id));
                continue;
            }
        };
        let mut hr = Vec::new();
        let mut samples_pending = false;
        if s.average_heartrate.is_some() {
            if !turn.has_budget() {
                // What is listed so far is stored; the rest comes next turn.
                store.ingest(&batch).await?;
                return Ok(report);
            }
            let url = api.manifest.url(&format!("/activity/{}/streams.json", s.id));
            match turn
                .get_json::<Vec<Stream>>("an activity's streams", &url, &[("types", "time,heartrate".into())])
                .await
            {
                Ok(streams) => {
                    let get =
                        |k: &str| streams.iter().find(|x| x.kind == k).map(|x| x.data.clone()).unwrap_or_default();
                    let range = SeriesKind::Hr.valid_range();
                    hr = get("time")
                        .into_iter()
                        .zip(get("heartrate"))
                        .filter_map(|(t, v)| Some((t?, v?)))
                        .filter(|(_, v)| range.contains(v))
                        .filter_map(|(t, v)| Some(Sample { t_ms: super::sample_ms(start, t)?, value: v }))
                        .collect();
                }
                Err(SyncError::Api(ApiError::NotFound(_))) => {}
                // Streams that keep failing: stored with what is known, asked again next round.
                Err(SyncError::Api(e @ (ApiError::Server(..) | ApiError::Malformed(..)))) => {
                    tracing::warn!(client = %client.name, id = %s.id, error = %e, "heart rate not read; asking again next round");
                    report.samples_pending += 1;
                    samples_pending = true;
                }
                Err(e) => return Err(e),
            }
        }
        if stored.contains_key(&s.id) {
            report.updated += 1;
        } else {
            report.inserted += 1;
        }
        let ty = api.manifest.activity_type(s.kind.as_deref().unwrap_or("Workout"));
        batch.activities.push(NewActivity {
            client_id: client.id,
            external_id: s.id.clone(),
            start,
            end,
            utc_offset_s: tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: s.moving_time.unwrap_or(elapsed).clamp(0.0, elapsed),
            distance_m: s.distance.filter(|d| d.is_finite() && *d >= 0.0),
            avg_hr: s.average_heartrate.filter(|h| h.is_finite() && *h > 0.0),
            max_hr: s.max_heartrate.filter(|h| h.is_finite() && *h > 0.0 && *h < 300.0).map(|h| h as u16),
            energy_kj: None,
            // Not its fingerprint while samples are pending: the next round fetches again.
            content_hash: Some(if samples_pending { b"samples pending".to_vec() } else { fp }),
            series: if hr.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples: hr }] },
            sets: None,
        });
    }
    batch.cursor = Some(Cursor { stream, value: today.to_string() });
    store.ingest(&batch).await?;
    let vanished = stored.keys().filter(|id| !seen.contains(*id));
    if !super::sync::delete_vanished(
        turn,
        SOURCE,
        vanished,
        |id| api.manifest.url(&format!("/activity/{id}")),
        &mut report,
    )
    .await?
    {
        return Ok(report);
    }
    report.done = true;
    Ok(report)
}

/// `coachd connect intervals CLIENT --api-key KEY`: check the key, store it sealed.
pub async fn connect(
    reg: &super::Registry,
    store: &crate::store::Store,
    client: i64,
    key: &str,
) -> Result<String, String> {
    let api = reg.api(SOURCE)?;
    let key = key.trim();
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_whitespace) {
        return Err("the API key looks wrong: copy it from intervals.icu → Settings → Developer Settings".into());
    }
    let auth = super::Auth::Basic("API_KEY".into(), crate::crypto::Secret::new(key.to_string()));
    let athlete: serde_json::Value =
        api.get_json("the athlete", &auth, &api.manifest.url("/athlete/0"), &[]).await.map_err(|e| match e {
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => "intervals.icu refused the API key".to_string(),
            other => other.to_string(),
        })?;
    let tokens = crate::store::Tokens {
        access: crate::crypto::Secret::new(key.to_string()),
        refresh: None,
        expires: None,
        scopes: "api_key".into(),
    };
    store.save_tokens(client, SOURCE, &tokens).await.map_err(|e| e.to_string())?;
    let account = store.account(client, SOURCE).await.map_err(|e| e.to_string())?;
    let id = athlete.get("id").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    if let Some(id) = &id {
        store.set_account_user(account.id, id).await.map_err(|e| e.to_string())?;
    }
    reg.poke(account.id);
    Ok(id.unwrap_or_else(|| "?".into()))
}
