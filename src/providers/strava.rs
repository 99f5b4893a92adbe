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

use super::sync::{reconcile, Listing, Page, Plan, Report, SyncError, Turn};
use super::{ApiError, BoxFuture, Connection, Provider, ProviderError, Registry, WebhookRefusal};
use crate::model::{NewActivity, Sample, Series, SeriesKind};
use crate::store::providers::state;
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

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
    time.data
        .iter()
        .zip(hr.data)
        .filter_map(|(t, bpm)| Some(Sample { t_ms: crate::model::sample_ms(start, *t)?, value: bpm }))
        .collect()
}

/// Strava on the provider interface.
pub struct Strava;

impl Provider for Strava {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/strava.toml")
    }

    /// `POST /oauth/deauthorize` with the access token: Strava ends the authorization
    /// (and sends an athlete event with `authorized: false`).
    fn revoke<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?;
            let url = super::beside_token(&api.manifest, "deauthorize");
            let (status, body) = api.send_once(reqwest::Method::POST, "the deauthorization", &c.access, &url, None).await?;
            super::revocation(&api.manifest.display, status, &body)
        })
    }

    fn settings_keys(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            VERIFY_TOKEN,
            "what Strava must echo when it checks the push-subscription callback; empty: a random one kept in the database",
        )]
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            reconcile(turn, &Activities { api }).await
        })
    }

    fn webhook_handshake<'a>(
        &'a self,
        reg: &'a Registry,
        store: &'a Store,
        q: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<serde_json::Value, WebhookRefusal>> {
        Box::pin(async move {
            let expected = verify_token(reg, store).await.map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
            let given = q.get("hub.verify_token").map(String::as_str).unwrap_or_default();
            let ok = q.get("hub.mode").map(String::as_str) == Some("subscribe")
                && crate::crypto::same_secret(&expected, given);
            match (ok, q.get("hub.challenge")) {
                (true, Some(c)) => Ok(serde_json::json!({ "hub.challenge": c })),
                _ => Err(WebhookRefusal::Unauthorized("verify token mismatch".into())),
            }
        })
    }

    /// Events are not signed: anything shaped like one is taken, as a hint.
    fn webhook_verify(
        &self,
        _reg: &Registry,
        _h: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        serde_json::from_slice::<Event>(body)
            .map(drop)
            .map_err(|e| WebhookRefusal::BadBody(format!("not a Strava event: {e}")))
    }

    fn webhook_deliver(
        &self,
        reg: Arc<Registry>,
        store: Store,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<&'static str, SyncError>> {
        Box::pin(async move {
            let event: Event = serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid(e.to_string()))?;
            on_event(&reg, &store, &event).await
        })
    }

    fn subscribe<'a>(&'a self, reg: &'a Registry, store: &'a Store) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let token = verify_token(reg, store).await?;
            let id = subscribe(reg, &token).await?;
            Ok(format!("Strava push subscription {id}: events arrive at {}", reg.webhook_url(SOURCE)))
        })
    }
}

const VERIFY_TOKEN: &str = "webhook_verify_token";

/// The token Strava must echo in its subscription handshake: configured, else a random
/// one kept in the database.
pub async fn verify_token(reg: &Registry, store: &Store) -> Result<String, ProviderError> {
    let configured = reg.settings(SOURCE)?.extra_secret(VERIFY_TOKEN);
    Ok(super::install_secret(store, configured, "strava_webhook_verify_token").await?)
}

/// `GET /athlete/activities?after=T&per_page=200`, oldest first: the cursor is the start
/// of the last activity stored (Unix s), each page continues after the last one's start.
struct Activities {
    api: Arc<super::Api>,
}

impl Listing for Activities {
    type Item = Summary;
    const NOUN: &'static str = "activity";

    fn plan(&self, turn: &Turn<'_>, _client: &Client, cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let cursor: Option<i64> = cursor.and_then(|c| c.parse().ok());
        let first = (now - Duration::days(i64::from(turn.reg.backfill_days))).timestamp();
        let from = cursor.map_or(first, |c| c.min((now - RECONCILE).timestamp()).max(first));
        Plan {
            // What is stored after `from` (Strava's `after` is exclusive).
            since: DateTime::from_timestamp(from + 1, 0).unwrap_or(now),
            until: now + Duration::days(1),
            first: from.to_string(),
            cursor: cursor.unwrap_or(from).to_string(),
            done: None,
            from: String::new(),
            to: String::new(),
        }
    }

    async fn list(
        &self,
        turn: &mut Turn<'_>,
        _client: &Client,
        _plan: &Plan,
        page: &str,
    ) -> Result<Page<Summary>, SyncError> {
        let query = [("after", page.to_string()), ("per_page", PER_PAGE.to_string()), ("page", "1".to_string())];
        let mut items: Vec<Summary> =
            turn.get_json("the activity list", &self.api.manifest.url("/athlete/activities"), &query).await?;
        items.sort_by_key(|s| (s.start_date, s.id));
        let last = items.iter().map(|s| s.start_date.timestamp()).max();
        let next = (items.len() >= PER_PAGE).then(|| last.map(|t| t.to_string())).flatten();
        Ok(Page { items, next })
    }

    fn id(&self, s: &Summary) -> String {
        s.id.to_string()
    }

    fn fingerprint(&self, s: &Summary) -> Vec<u8> {
        s.fingerprint()
    }

    fn advance(&self, cursor: &mut String, s: &Summary) {
        // The cursor never moves back.
        let now: i64 = cursor.parse().unwrap_or(i64::MIN);
        *cursor = now.max(s.start_date.timestamp()).to_string();
    }

    /// The next turn's plan starts at the committed cursor (while it is older than the
    /// look-back), right where this turn stopped.
    fn resume_at(&self, _first: &str, cursor: &str) -> String {
        cursor.to_string()
    }

    fn needs_detail(&self, s: &Summary) -> bool {
        s.has_heartrate
    }

    async fn detail(&self, turn: &mut Turn<'_>, s: &Summary, _a: &NewActivity) -> Result<Vec<Series>, SyncError> {
        let url = self.api.manifest.url(&format!("/activities/{}/streams", s.id));
        let q = [("keys", "time,heartrate".to_string()), ("key_by_type", "true".to_string())];
        let streams: Streams = turn.get_json("an activity's heart-rate stream", &url, &q).await?;
        Ok(vec![Series { kind: SeriesKind::Hr, samples: heart_rate(s.start_date, streams) }])
    }

    fn convert(&self, client: &Client, s: &Summary) -> Result<NewActivity, String> {
        let end = crate::model::span_end(s.start_date, s.elapsed_time.max(0.0))?;
        let ty = self.api.manifest.activity_type(s.sport());
        Ok(NewActivity {
            client_id: client.id,
            external_id: s.id.to_string(),
            start: s.start_date,
            end,
            // `as` saturates (and makes NaN 0); the model's clamp keeps it within ±18 h.
            utc_offset_s: s.utc_offset.map_or(0, |o| o as i32),
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: s.moving_time.unwrap_or(s.elapsed_time),
            distance_m: s.distance,
            avg_hr: s.average_heartrate,
            max_hr: s.max_heartrate.map(|h| h as u16),
            energy_kj: s.kilojoules,
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: None,
        })
    }

    fn gone_url(&self, id: &str) -> Option<String> {
        Some(self.api.manifest.url(&format!("/activities/{id}")))
    }
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
pub async fn on_event(reg: &Registry, store: &Store, e: &Event) -> Result<&'static str, SyncError> {
    let Some(account) = store.account_by_external(SOURCE, &e.owner_id.to_string()).await? else {
        return Ok("unknown athlete; ignored");
    };
    let api = reg.api(SOURCE)?.clone();
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
pub async fn subscribe(reg: &Registry, verify_token: &str) -> Result<i64, ProviderError> {
    let api = reg.api(SOURCE)?;
    let app = reg.app(SOURCE)?;
    let callback = reg.webhook_url(SOURCE);
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
        .map_err(|e| ApiError::Server("the push subscription".into(), e.to_string()))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ProviderError::Refused(format!(
            "Strava refused the subscription (HTTP {}): {body}. Is `coachd run` reachable from the internet at {callback}?",
            status.as_u16()
        )));
    }
    body.get("id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| ProviderError::Invalid(format!("Strava's answer has no id: {body}")))
}
