//! intervals.icu: a personal API key per client (HTTP Basic, user `API_KEY`), activities
//! by local date (`GET /athlete/0/activities?oldest=&newest=`) and their heart-rate
//! streams (`GET /activity/{id}/streams.json?types=time,heartrate`). Same scheme as
//! Strava: the cursor is the last local date fully synced, two days are looked at again,
//! unchanged summaries cost nothing more, vanished activities are checked and deleted.

use super::sync::{reconcile, Listing, Page, Plan, Report, SyncError, Turn};
use super::{ApiError, Auth, BoxFuture, Provider, ProviderError, Registry};
use crate::crypto::Secret;
use crate::model::{NewActivity, Sample, Series, SeriesKind};
use crate::store::Client;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use serde::Deserialize;
use std::sync::Arc;

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

/// intervals.icu on the provider interface.
pub struct Intervals;

impl Provider for Intervals {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/intervals.toml")
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            reconcile(turn, &Activities { api }).await
        })
    }

    fn check_key<'a>(&'a self, reg: &'a Registry, key: &'a str) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let api = reg.api(SOURCE)?;
            let key = key.trim();
            if key.is_empty() || key.len() > 200 || key.chars().any(char::is_whitespace) {
                return Err(ProviderError::Invalid(
                    "the API key looks wrong: copy it from intervals.icu → Settings → Developer Settings".into(),
                ));
            }
            let auth = Auth::Basic("API_KEY".into(), Secret::new(key.to_string()));
            let athlete: serde_json::Value = api
                .get_json("the athlete", &auth, &api.manifest.url("/athlete/0"), &[])
                .await
                .map_err(|e| match e {
                    ApiError::Unauthorized(_) | ApiError::Forbidden(_) => {
                        ProviderError::Refused("intervals.icu refused the API key".into())
                    }
                    other => other.into(),
                })?;
            let id = athlete.get("id").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
            Ok(id.unwrap_or_else(|| "?".into()))
        })
    }
}

/// Activities by local date (`GET /athlete/0/activities?oldest=&newest=`), all in one
/// listing: the cursor is the last local date fully synced, two days are looked at again.
struct Activities {
    api: Arc<super::Api>,
}

impl Listing for Activities {
    type Item = Summary;
    const NOUN: &'static str = "activity";

    fn plan(&self, turn: &Turn<'_>, client: &Client, cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let tz = client.tz;
        let today = now.with_timezone(&tz).date_naive();
        let cursor: Option<NaiveDate> = cursor.and_then(|c| c.parse().ok());
        let first = today - Duration::days(i64::from(turn.reg.backfill_days));
        let oldest = cursor.map_or(first, |c| c.min(today - Duration::days(2)).max(first));
        let since = tz
            .from_local_datetime(&oldest.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map_or(now, |t| t.with_timezone(&Utc));
        Plan {
            since,
            until: now + Duration::days(1),
            first: String::new(),
            cursor: cursor.map(|c| c.to_string()).unwrap_or_default(),
            done: Some(today.to_string()),
            from: oldest.to_string(),
            to: today.to_string(),
        }
    }

    async fn list(
        &self,
        turn: &mut Turn<'_>,
        _client: &Client,
        plan: &Plan,
        _page: &str,
    ) -> Result<Page<Summary>, SyncError> {
        let q = [("oldest", plan.from.clone()), ("newest", plan.to.clone())];
        let mut items: Vec<Summary> =
            turn.get_json("the activity list", &self.api.manifest.url("/athlete/0/activities"), &q).await?;
        items.sort_by(|a, b| a.start_date_local.cmp(&b.start_date_local));
        Ok(Page { items, next: None })
    }

    fn id(&self, s: &Summary) -> String {
        s.id.clone()
    }

    fn fingerprint(&self, s: &Summary) -> Vec<u8> {
        s.fingerprint()
    }

    fn needs_detail(&self, s: &Summary) -> bool {
        s.average_heartrate.is_some() && s.source.as_deref() != Some("STRAVA")
    }

    async fn detail(&self, turn: &mut Turn<'_>, s: &Summary, a: &NewActivity) -> Result<Vec<Series>, SyncError> {
        let url = self.api.manifest.url(&format!("/activity/{}/streams.json", s.id));
        let streams: Vec<Stream> =
            turn.get_json("an activity's streams", &url, &[("types", "time,heartrate".into())]).await?;
        let start = a.start;
        let get = |k: &str| streams.iter().find(|x| x.kind == k).map(|x| x.data.clone()).unwrap_or_default();
        let samples = get("time")
            .into_iter()
            .zip(get("heartrate"))
            .filter_map(|(t, v)| Some((t?, v?)))
            .filter_map(|(t, v)| Some(Sample { t_ms: crate::model::sample_ms(start, t)?, value: v }))
            .collect();
        Ok(vec![Series { kind: SeriesKind::Hr, samples }])
    }

    fn convert(&self, client: &Client, s: &Summary) -> Result<NewActivity, String> {
        let tz = client.tz;
        let start = s.start(tz).ok_or("no start time")?;
        // A listed item that is not delivered is not a workout, and must not make its
        // day count as having data.
        if s.source.as_deref() == Some("STRAVA") {
            return Err(
                "came to intervals.icu from Strava and is not readable there: connect Strava directly".to_string()
            );
        }
        let elapsed = s.elapsed_time.or(s.moving_time).unwrap_or(0.0);
        let end = crate::model::span_end(start, elapsed)?;
        if elapsed <= 0.0 {
            return Err("no duration".into());
        }
        let ty = self.api.manifest.activity_type(s.kind.as_deref().unwrap_or("Workout"));
        Ok(NewActivity {
            client_id: client.id,
            external_id: s.id.clone(),
            start,
            end,
            utc_offset_s: tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: s.moving_time.unwrap_or(elapsed),
            distance_m: s.distance,
            avg_hr: s.average_heartrate,
            max_hr: s.max_heartrate.map(|h| h as u16),
            energy_kj: None,
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: None,
        })
    }

    fn gone_url(&self, id: &str) -> Option<String> {
        Some(self.api.manifest.url(&format!("/activity/{id}")))
    }
}
