//! Polar AccessLink v3: the user registration that must follow the token, exercises of
//! the last 30 days with their heart-rate samples inline (`GET
//! /exercises?samples=true`, one request for all), daily steps (`GET
//! /users/activities?from=&to=`), and signed webhook deliveries
//! (`Polar-Webhook-Signature` = HMAC-SHA256 of the body with the webhook's secret).

use super::sync::{reconcile, Daily, Listing, Page, Plan, Report, SyncError, Turn};
use super::{ApiError, Auth, BoxFuture, Connection, Provider, ProviderError, Registry, WebhookRefusal};
use crate::model::{DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::store::providers::state;
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use std::sync::Arc;

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
        self.samples
            .iter()
            .filter(|s| s.sample_type == "0" && s.recording_rate > 0.0)
            .flat_map(|s| {
                s.data.split(',').enumerate().filter_map(move |(i, v)| {
                    let bpm: f64 = v.trim().parse().ok()?;
                    let t_ms = crate::model::sample_ms(start, i as f64 * s.recording_rate)?;
                    Some(Sample { t_ms, value: bpm })
                })
            })
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
) -> Result<(), ProviderError> {
    let api = reg.api(SOURCE)?;
    let body = serde_json::json!({ "member-id": format!("coachd-client-{client}") });
    let (status, text) = api.post_json("the user registration", access, &api.manifest.url("/users"), &body).await?;
    match status {
        200 | 201 | 204 | 409 => Ok(()),
        code => {
            let why = format!(
                "Polar refused the user registration (HTTP {code}: {}); connect again",
                String::from_utf8_lossy(&text).chars().take(200).collect::<String>()
            );
            store.set_account_state(account_id, state::NEEDS_REAUTH, Some(&why)).await?;
            Err(ProviderError::Refused(why))
        }
    }
}

const WEBHOOK_SECRET: &str = "webhook_secret";

/// Polar on the provider interface.
pub struct Polar;

impl Provider for Polar {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/polar.toml")
    }

    /// `DELETE /v3/users/{user-id}`: Polar's de-registration, which ends coachd's access to
    /// the user's data (Polar has no token revocation of its own).
    fn revoke<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let Some(user) = c.account.external_user_id.as_deref().filter(|u| u.bytes().all(|b| b.is_ascii_digit()) && !u.is_empty()) else {
                return Ok(false);
            };
            let url = api.manifest.url(&format!("/users/{user}"));
            let (status, body) = api.send_once(reqwest::Method::DELETE, "the de-registration", &c.access, &url, None).await?;
            // 404: not registered (any more): nothing left to end.
            if status == 404 {
                return Ok(true);
            }
            super::revocation(&api.manifest.display, status, &body)
        })
    }

    fn settings_keys(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            WEBHOOK_SECRET,
            "the webhook's signature_secret_key, to verify Polar's signed deliveries; empty: webhooks refused",
        )]
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            reconcile(turn, &Exercises { api }).await
        })
    }

    fn after_connect<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            register(c.reg, c.store, c.account.id, c.account.client_id, &c.access).await?;
            Ok(None)
        })
    }

    fn webhook_verify(
        &self,
        reg: &Registry,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        let secret = reg.settings(SOURCE).ok().and_then(|s| s.extra_secret(WEBHOOK_SECRET)).ok_or_else(|| {
            WebhookRefusal::NotHere("Polar webhooks are not configured (providers.polar.webhook_secret)".into())
        })?;
        let signature = headers.get("polar-webhook-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !signature_ok(secret.expose(), body, signature.trim()) {
            return Err(WebhookRefusal::Unauthorized("missing or wrong Polar-Webhook-Signature".into()));
        }
        serde_json::from_slice::<Delivery>(body)
            .map(drop)
            .map_err(|e| WebhookRefusal::BadBody(format!("not a Polar delivery: {e}")))
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

/// `GET /exercises?samples=true` (the last 30 days, samples inline: one request for all),
/// then daily steps (`GET /users/activities?from=&to=`).
struct Exercises {
    api: Arc<super::Api>,
}

impl Listing for Exercises {
    type Item = Exercise;
    const NOUN: &'static str = "exercise";

    fn plan(&self, turn: &Turn<'_>, client: &Client, _cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        Plan {
            // Polar lists the last 30 days.
            since: now - Duration::days(30),
            until: now + Duration::days(1),
            first: String::new(),
            cursor: String::new(),
            done: Some(now.to_rfc3339()),
            // Daily steps of the last 28 days.
            from: (today - Duration::days(27)).to_string(),
            to: today.to_string(),
        }
    }

    async fn list(
        &self,
        turn: &mut Turn<'_>,
        _client: &Client,
        _plan: &Plan,
        _page: &str,
    ) -> Result<Page<Exercise>, SyncError> {
        let users = turn.store.accounts().await?.iter().filter(|a| a.provider == SOURCE && a.syncable()).count() as u32;
        self.api.limiter.lock().await.set_users(users);
        let q = [("samples", "true".to_string()), ("zones", "false".to_string())];
        let items = turn.get_json("the exercise list", &self.api.manifest.url("/exercises"), &q).await?;
        Ok(Page { items, next: None })
    }

    fn id(&self, e: &Exercise) -> String {
        e.id.clone()
    }

    fn fingerprint(&self, e: &Exercise) -> Vec<u8> {
        e.fingerprint()
    }

    fn convert(&self, client: &Client, e: &Exercise) -> Result<NewActivity, String> {
        let (Some(start), Some(secs)) = (e.start(), iso_duration(&e.duration)) else {
            return Err(format!("unreadable start {:?} or duration {:?}", e.start_time, e.duration));
        };
        let end = crate::model::span_end(start, secs)?;
        let hr = e.heart_rate_samples(start);
        let m = &self.api.manifest;
        let ty = m.activity_type(e.detailed_sport_info.as_deref().or(e.sport.as_deref()).unwrap_or("OTHER"));
        let ty = if ty == crate::activity_types::GENERIC {
            m.activity_type(e.sport.as_deref().unwrap_or("OTHER"))
        } else {
            ty
        };
        Ok(NewActivity {
            client_id: client.id,
            external_id: e.id.clone(),
            start,
            end,
            utc_offset_s: e.start_time_utc_offset.unwrap_or(0).saturating_mul(60),
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: secs,
            distance_m: e.distance,
            avg_hr: e.heart_rate.as_ref().and_then(|h| h.average),
            max_hr: e.heart_rate.as_ref().and_then(|h| h.maximum).map(|h| h as u16),
            energy_kj: e.calories.map(|c| c * 4.184),
            content_hash: None,
            series: if hr.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples: hr }] },
            sets: None,
            hr_zones: None,
        })
    }

    fn gone_url(&self, id: &str) -> Option<String> {
        Some(self.api.manifest.url(&format!("/exercises/{id}")))
    }

    async fn daily(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan, _part: usize) -> Result<Daily, SyncError> {
        let mut out = Daily::default();
        let q = [("from", plan.from.clone()), ("to", plan.to.clone())];
        match turn.get_json::<Activities>("the daily activity", &self.api.manifest.url("/users/activities"), &q).await {
            Ok(Activities::List(days) | Activities::Wrapped { activities: days }) => {
                for d in days {
                    let date = d.start_time.get(..10).and_then(|s| s.parse::<NaiveDate>().ok());
                    if let (Some(date), Some(steps)) = (date, crate::model::amount(d.steps)) {
                        out.metrics.push(DailyMetric {
                            client_id: client.id,
                            date,
                            metric: Metric::Steps,
                            value: steps,
                        });
                    }
                }
            }
            Err(SyncError::Api(ApiError::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }
}

/// Whether `signature` (hex) is HMAC-SHA256(body, secret).
pub fn signature_ok(secret: &str, body: &[u8], signature: &str) -> bool {
    crate::crypto::unhex(signature).is_some_and(|mac| crate::crypto::hmac_sha256_is(secret.as_bytes(), &[body], &mac))
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
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

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
