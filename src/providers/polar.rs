//! Polar AccessLink v3: the user registration that must follow the token, exercises of
//! the last 30 days with their heart-rate samples inline (`GET
//! /exercises?samples=true`, one request for all), daily steps (`GET
//! /users/activities?from=&to=`), and signed webhook deliveries
//! (`Polar-Webhook-Signature` = HMAC-SHA256 of the body with the webhook's secret).

use super::sync::{Report, SyncError, Turn};
use super::{ApiError, Auth, Registry};
use crate::model::{Batch, Cursor, DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::store::providers::state;
use crate::store::Store;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashSet;

pub const SOURCE: &str = "polar";

#[derive(Clone, Debug, Deserialize)]
pub struct Exercise {
    pub id: String,
    #[serde(alias = "start-time")]
    pub start_time: String,
    /// Minutes.
    #[serde(default, alias = "start-time-utc-offset")]
    pub start_time_utc_offset: Option<i32>,
    /// ISO 8601, e.g. "PT1H2M3S".
    pub duration: String,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default, alias = "heart-rate")]
    pub heart_rate: Option<HeartRate>,
    #[serde(default)]
    pub sport: Option<String>,
    #[serde(default, alias = "detailed-sport-info")]
    pub detailed_sport_info: Option<String>,
    #[serde(default)]
    pub calories: Option<f64>,
    #[serde(default)]
    pub samples: Vec<PolarSamples>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HeartRate {
    #[serde(default)]
    pub average: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PolarSamples {
    #[serde(alias = "recording-rate")]
    pub recording_rate: f64,
    /// "0" is heart rate.
    #[serde(alias = "sample-type")]
    pub sample_type: String,
    /// Comma-separated values; empty entries are gaps.
    pub data: String,
}

/// "PT1H2M3.5S" → seconds.
pub fn iso_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix("PT")?;
    let (mut total, mut num) = (0.0, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' | 'M' | 'S' => {
                let v: f64 = num.parse().ok()?;
                total += v * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
                num.clear();
            }
            _ => return None,
        }
    }
    num.is_empty().then_some(total)
}

impl Exercise {
    fn start(&self) -> Option<DateTime<Utc>> {
        let local = NaiveDateTime::parse_from_str(self.start_time.get(..19)?, "%Y-%m-%dT%H:%M:%S").ok()?;
        let offset = FixedOffset::east_opt(self.start_time_utc_offset.unwrap_or(0) * 60)?;
        offset.from_local_datetime(&local).single().map(|t| t.with_timezone(&Utc))
    }

    fn fingerprint(&self) -> Vec<u8> {
        let text = format!(
            "{}|{:?}|{}|{:?}|{:?}|{:?}|{}",
            self.start_time,
            self.start_time_utc_offset,
            self.duration,
            self.distance,
            self.sport,
            self.detailed_sport_info,
            self.samples.iter().map(|s| s.data.len()).sum::<usize>()
        );
        crate::crypto::sha256(text.as_bytes())[..16].to_vec()
    }

    fn heart_rate_samples(&self, start: DateTime<Utc>) -> Vec<Sample> {
        let range = SeriesKind::Hr.valid_range();
        self.samples
            .iter()
            .filter(|s| s.sample_type == "0" && s.recording_rate > 0.0)
            .flat_map(|s| {
                s.data.split(',').enumerate().filter_map(move |(i, v)| {
                    let bpm: f64 = v.trim().parse().ok()?;
                    let t_ms = super::sample_ms(start, i as f64 * s.recording_rate)?;
                    Some(Sample { t_ms, value: bpm })
                })
            })
            .filter(|s| range.contains(&s.value))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Activities {
    List(Vec<DailyActivity>),
    Wrapped { activities: Vec<DailyActivity> },
}

#[derive(Debug, Deserialize)]
struct DailyActivity {
    #[serde(alias = "start-time", alias = "date")]
    start_time: String,
    #[serde(default)]
    steps: Option<f64>,
}

/// Register the user with coachd's AccessLink client (needed once; 409 = already).
pub async fn register(
    reg: &Registry,
    store: &Store,
    account_id: i64,
    client: i64,
    access: &Auth,
) -> Result<(), String> {
    let api = reg.api(SOURCE)?;
    let body = serde_json::json!({ "member-id": format!("coachd-client-{client}") });
    let (status, text) = api
        .post_json("the user registration", access, &api.manifest.url("/users"), &body)
        .await
        .map_err(|e| e.to_string())?;
    match status {
        200 | 201 | 204 | 409 => Ok(()),
        code => {
            let why = format!(
                "Polar refused the user registration (HTTP {code}: {}); connect again",
                String::from_utf8_lossy(&text).chars().take(200).collect::<String>()
            );
            store.set_account_state(account_id, state::NEEDS_REAUTH, Some(&why)).await.map_err(|e| e.to_string())?;
            Err(why)
        }
    }
}

pub async fn sync(turn: &mut Turn<'_>) -> Result<Report, SyncError> {
    let api = turn.reg.api(SOURCE).map_err(SyncError::Other)?.clone();
    let store = turn.store;
    let client = store.client_by_id(turn.account.client_id).await?;
    let tz = client.tz;
    let now = turn.reg.clock.now();
    let users = store.accounts().await?.iter().filter(|a| a.provider == SOURCE && a.syncable()).count() as u32;
    api.limiter.lock().await.set_users(users);
    let q = [("samples", "true".to_string()), ("zones", "false".to_string())];
    let list: Vec<Exercise> = turn.get_json("the exercise list", &api.manifest.url("/exercises"), &q).await?;
    // Polar lists the last 30 days.
    let since = now - Duration::days(30);
    let stored = store.source_fingerprints(SOURCE, client.id, since, now + Duration::days(1)).await?;
    let mut report = Report { listed: list.len(), ..Report::default() };
    let mut batch = Batch::new(SOURCE);
    let mut seen = HashSet::new();
    for e in &list {
        seen.insert(e.id.clone());
        let fp = e.fingerprint();
        if stored.get(&e.id).is_some_and(|h| h.as_deref() == Some(fp.as_slice())) {
            report.unchanged += 1;
            continue;
        }
        let (Some(start), Some(secs)) = (e.start(), iso_duration(&e.duration)) else {
            tracing::warn!(client = %client.name, id = %e.id, start = %e.start_time, duration = %e.duration, "Polar exercise with an unreadable start or duration; skipped");
            report
                .skipped
                .push(format!("exercise {}: unreadable start {:?} or duration {:?}", e.id, e.start_time, e.duration));
            continue;
        };
        let end = match super::span_end(start, secs) {
            Ok(end) => end,
            Err(why) => {
                tracing::warn!(client = %client.name, id = %e.id, %why, "Polar exercise skipped");
                report.skipped.push(format!("exercise {}: {why}", e.id));
                continue;
            }
        };
        let hr = e.heart_rate_samples(start);
        let ty = api.manifest.activity_type(e.detailed_sport_info.as_deref().or(e.sport.as_deref()).unwrap_or("OTHER"));
        let ty = if ty == crate::activity_types::GENERIC {
            api.manifest.activity_type(e.sport.as_deref().unwrap_or("OTHER"))
        } else {
            ty
        };
        if stored.contains_key(&e.id) {
            report.updated += 1;
        } else {
            report.inserted += 1;
        }
        batch.activities.push(NewActivity {
            client_id: client.id,
            external_id: e.id.clone(),
            start,
            end,
            utc_offset_s: e.start_time_utc_offset.unwrap_or(0).clamp(-18 * 60, 18 * 60) * 60,
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: secs,
            distance_m: e.distance.filter(|d| d.is_finite() && *d >= 0.0),
            avg_hr: e.heart_rate.as_ref().and_then(|h| h.average).filter(|h| h.is_finite() && *h > 0.0),
            max_hr: e
                .heart_rate
                .as_ref()
                .and_then(|h| h.maximum)
                .filter(|h| h.is_finite() && *h > 0.0 && *h < 300.0)
                .map(|h| h as u16),
            energy_kj: e.calories.filter(|c| c.is_finite() && *c >= 0.0).map(|c| c * 4.184),
            content_hash: Some(fp),
            series: if hr.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples: hr }] },
            sets: None,
        });
    }
    // Daily steps of the last 28 days.
    let today = now.with_timezone(&tz).date_naive();
    let q = [("from", (today - Duration::days(27)).to_string()), ("to", today.to_string())];
    match turn.get_json::<Activities>("the daily activity", &api.manifest.url("/users/activities"), &q).await {
        Ok(days) => {
            let days = match days {
                Activities::List(d) | Activities::Wrapped { activities: d } => d,
            };
            for d in days {
                let date = d.start_time.get(..10).and_then(|s| s.parse::<NaiveDate>().ok());
                if let (Some(date), Some(steps)) = (date, d.steps.filter(|s| s.is_finite() && *s >= 0.0)) {
                    batch.daily.push(DailyMetric { client_id: client.id, date, metric: Metric::Steps, value: steps });
                }
            }
        }
        Err(SyncError::Api(ApiError::NotFound(_))) => {}
        Err(e) => return Err(e),
    }
    batch.cursor = Some(Cursor { stream: format!("account:{}", turn.account.id), value: now.to_rfc3339() });
    store.ingest(&batch).await?;
    let vanished = stored.keys().filter(|id| !seen.contains(*id));
    if !super::sync::delete_vanished(
        turn,
        SOURCE,
        vanished,
        |id| api.manifest.url(&format!("/exercises/{id}")),
        &mut report,
    )
    .await?
    {
        return Ok(report);
    }
    report.done = true;
    Ok(report)
}

/// Whether `signature` (hex) is HMAC-SHA256(body, secret).
pub fn signature_ok(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = (0..signature.len())
        .step_by(2)
        .map(|i| signature.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(()))
        .collect::<Result<Vec<u8>, ()>>()
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// A webhook delivery.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    pub event: String,
    #[serde(default)]
    pub user_id: Option<serde_json::Value>,
}

/// Act on a verified delivery: PING needs nothing, data events poke the user's account.
pub async fn on_delivery(reg: &Registry, store: &Store, d: &Delivery) -> Result<&'static str, SyncError> {
    if d.event == "PING" {
        return Ok("ping");
    }
    let Some(user) = d.user_id.as_ref().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)) else {
        return Ok("no user; ignored");
    };
    match store.account_by_external(SOURCE, &user).await? {
        Some(a) if a.syncable() => {
            reg.poke(a.id);
            Ok("sync requested")
        }
        _ => Ok("unknown user; ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_signatures() {
        assert_eq!(iso_duration("PT2H44M"), Some(9840.0));
        assert_eq!(iso_duration("PT30M5.5S"), Some(1805.5));
        assert_eq!(iso_duration("P1D"), None);
        assert_eq!(iso_duration("PT5"), None);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("mac");
        mac.update(b"{\"event\":\"PING\"}");
        let sig = crate::crypto::hex(&mac.finalize().into_bytes());
        assert!(signature_ok("key", b"{\"event\":\"PING\"}", &sig));
        assert!(!signature_ok("key", b"{\"event\":\"PONG\"}", &sig));
        assert!(!signature_ok("other", b"{\"event\":\"PING\"}", &sig));
        assert!(!signature_ok("key", b"x", "zz"));
    }
}
