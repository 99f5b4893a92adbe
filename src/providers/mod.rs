//! Cloud providers: manifests (providers/*.toml, embedded, overridable from config), the
//! OAuth framework ([`oauth`]), the per-application request budget ([`ratelimit`]),
//! an HTTP layer that keeps to it ([`Api`]), and the providers' sync code
//! ([`strava`], [`intervals`]) run by the daemon's [`sync::CloudSource`] and by
//! `coachd sync`.

pub mod clock;
pub mod intervals;
pub mod oauth;
pub mod polar;
pub mod ratelimit;
pub mod strava;
pub mod sync;

use crate::config::{Config, ProviderSettings};
use crate::crypto::Secret;
use clock::Clock;
use ratelimit::{Limiter, Window};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Oauth2,
    ApiKey,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// client_id and client_secret in the token request's form body.
    #[default]
    Body,
    /// HTTP Basic.
    Basic,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageHeaders {
    pub limit: String,
    pub usage: String,
    /// Seconds until each window resets, where the provider says (Polar).
    #[serde(default)]
    pub reset: Option<String>,
}

/// One provider's facts (providers/NAME.toml).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub display: String,
    pub auth: AuthKind,
    #[serde(default)]
    pub authorize_url: String,
    #[serde(default)]
    pub token_url: String,
    pub api_base: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default)]
    pub pkce: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "space")]
    pub scope_separator: String,
    /// At least one of these must be granted.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    pub rate_limits: Vec<Window>,
    #[serde(default)]
    pub usage_headers: Option<UsageHeaders>,
    /// Provider activity type → coachd type.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
}

fn space() -> String {
    " ".into()
}

pub const MANIFESTS: [(&str, &str); 3] = [
    ("strava", include_str!("../../providers/strava.toml")),
    ("polar", include_str!("../../providers/polar.toml")),
    ("intervals", include_str!("../../providers/intervals.toml")),
];

pub fn names() -> impl Iterator<Item = &'static str> {
    MANIFESTS.iter().map(|m| m.0)
}

impl Manifest {
    /// The embedded manifest with the config's overrides applied: any field from
    /// `[providers.NAME.manifest]`, then the URL keys.
    pub fn load(name: &str, settings: &ProviderSettings) -> Result<Self, String> {
        let (_, text) = MANIFESTS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no provider {name:?}; known: {}", names().collect::<Vec<_>>().join(", ")))?;
        let mut table: toml::Table = text.parse().map_err(|e| format!("providers/{name}.toml: {e}"))?;
        for (k, v) in &settings.manifest {
            table.insert(k.clone(), v.clone());
        }
        let mut m: Manifest = table.try_into().map_err(|e| e.to_string().trim().to_string())?;
        if m.name != name {
            return Err(format!("the manifest's name is {:?}, not {name:?}", m.name));
        }
        for (field, value) in [
            (&mut m.authorize_url, &settings.authorize_url),
            (&mut m.token_url, &settings.token_url),
            (&mut m.api_base, &settings.api_base),
        ] {
            if !value.is_empty() {
                *field = value.trim_end_matches('/').to_string();
            }
        }
        Ok(m)
    }

    /// coachd's activity type for the provider's.
    pub fn activity_type(&self, theirs: &str) -> String {
        self.types.get(theirs).cloned().unwrap_or_else(|| crate::activity_types::GENERIC.to_string())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }
}

/// `[providers]` problems only this module can see: each manifest, with the config's
/// overrides applied, must still load. For [`Config::load_with`].
pub fn config_problems(config: &Config) -> Vec<(String, String)> {
    names()
        .filter_map(|name| {
            let s = settings(config, name)?;
            Manifest::load(name, s).err().map(|e| (format!("providers.{name}.manifest"), e))
        })
        .collect()
}

/// No activity from a provider lasts longer than this; a longer one is rejected.
pub const MAX_ACTIVITY_S: f64 = 7.0 * 86_400.0;

/// The end of an activity that lasted `secs` from `start`, when both are plausible: a
/// start from 2000 to 2100, a finite duration of 0 to [`MAX_ACTIVITY_S`]. None: the item
/// is rejected (values from outside are checked before any date arithmetic, which would
/// panic out of range).
pub fn span_end(start: chrono::DateTime<chrono::Utc>, secs: f64) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::Datelike;
    if !(2000..2100).contains(&start.year()) {
        return Err(format!("its start {start} is not between 2000 and 2100"));
    }
    if !(secs.is_finite() && (0.0..=MAX_ACTIVITY_S).contains(&secs)) {
        return Err(format!("its duration of {secs} s is not between 0 and a week"));
    }
    Ok(start + chrono::Duration::milliseconds((secs * 1000.0).round() as i64))
}

/// A sample `t` seconds into an activity that began at `start`, in ms; None past a week.
pub fn sample_ms(start: chrono::DateTime<chrono::Utc>, t: f64) -> Option<i64> {
    (t.is_finite() && (0.0..=MAX_ACTIVITY_S).contains(&t)).then(|| start.timestamp_millis() + (t * 1000.0) as i64)
}

pub fn settings<'c>(config: &'c Config, name: &str) -> Option<&'c ProviderSettings> {
    match name {
        "strava" => Some(&config.providers.strava),
        "polar" => Some(&config.providers.polar),
        "intervals" => Some(&config.providers.intervals),
        _ => None,
    }
}

/// The trainer's app credentials: config, else the systemd credential
/// `<provider>_client_secret` (LoadCredential=).
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: Secret<String>,
}

pub fn credentials(name: &str, settings: &ProviderSettings) -> Result<AppCredentials, String> {
    let mut secret = settings.client_secret.expose().trim().to_string();
    if secret.is_empty() {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = std::path::Path::new(&dir).join(format!("{name}_client_secret"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                secret = text.trim().to_string();
            }
        }
    }
    if settings.client_id.trim().is_empty() || secret.is_empty() {
        return Err(format!(
            "{name} needs your own API application: set providers.{name}.client_id and client_secret in \
             coachd.toml (or the systemd credential {name}_client_secret)"
        ));
    }
    Ok(AppCredentials { client_id: settings.client_id.trim().to_string(), client_secret: Secret::new(secret) })
}

/// How a request proves who it is for.
#[derive(Clone)]
pub enum Auth {
    Bearer(Secret<String>),
    Basic(String, Secret<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is not (or no longer) accepted.
    #[error("{0}: not authorized (HTTP 401)")]
    Unauthorized(String),
    #[error("{0}: forbidden (HTTP 403)")]
    Forbidden(String),
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: the provider keeps failing: {1}")]
    Server(String, String),
    #[error("{0}: the response is not what the provider documents: {1}")]
    Malformed(String, String),
    #[error("{0}: unexpected HTTP {1}: {2}")]
    Unexpected(String, u16, String),
    /// This account's share of the budget for this turn is used up (not an error: the
    /// sync resumes at its next turn).
    #[error("this turn's request budget is used up")]
    Budget,
    #[error("stopped")]
    Stopped,
}

/// The requests of one provider application: every request waits for the budget
/// ([`Limiter`]), reads the usage headers, retries 429s at the next window and 5xx /
/// network failures with jittered backoff.
pub struct Api {
    pub manifest: Manifest,
    pub http: reqwest::Client,
    pub limiter: Mutex<Limiter>,
    pub clock: Arc<dyn Clock>,
    /// Requests sent (for benchmarks and logs).
    pub sent: std::sync::atomic::AtomicU64,
}

const ATTEMPTS_5XX: u32 = 5;
const ATTEMPTS_429: u32 = 20;

/// A number in [0.5, 1.5) for backoff jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    0.5 + f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

fn numbers(h: &reqwest::header::HeaderMap, name: &str) -> Vec<u32> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default()
}

impl Api {
    pub fn new(manifest: Manifest, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("coachd/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            // OAuth responses must not be followed anywhere (oauth2's advice).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let limiter = Mutex::new(Limiter::new(&manifest.rate_limits));
        Ok(Self { manifest, http, limiter, clock, sent: Default::default() })
    }

    /// Wait until the budget allows one more request, and count it.
    async fn acquire(&self) {
        loop {
            let wait = self.limiter.lock().await.try_acquire(self.clock.now());
            match wait {
                Ok(()) => return,
                Err(until) => {
                    tracing::debug!(provider = %self.manifest.name, %until, "rate limit: waiting");
                    self.clock.sleep_until(until).await;
                }
            }
        }
    }

    /// Wait until the budget has room, without taking it (so credentials can be
    /// checked after a long wait, right before the request).
    pub async fn wait_for_budget(&self) {
        loop {
            let ready = self.limiter.lock().await.ready_at(self.clock.now());
            match ready {
                None => return,
                Some(until) => self.clock.sleep_until(until).await,
            }
        }
    }

    /// POST a JSON body once (within the budget); the status and the body, whatever
    /// the status (the caller decides what a 409 means).
    pub async fn post_json(
        &self,
        what: &str,
        auth: &Auth,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        self.acquire().await;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = self.http.post(url).json(body);
        let req = match auth {
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
        };
        let resp = req.send().await.map_err(|e| ApiError::Server(what.into(), e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Server(what.into(), e.to_string()))?;
        Ok((status, body.to_vec()))
    }

    /// GET a JSON document. `what` names it in errors.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        auth: &Auth,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        // A body that does not parse (cut short in transit, most often) is transient like a
        // 5xx: asked again with the same backoff, then given up with the reason.
        let mut failures = 0u32;
        loop {
            let body = self.get(what, auth, url, query).await?;
            match serde_json::from_slice(&body) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    failures += 1;
                    if failures >= ATTEMPTS_5XX {
                        return Err(ApiError::Malformed(what.into(), e.to_string()));
                    }
                    let wait = 2f64.powi(failures as i32) * jitter();
                    tracing::warn!(provider = %self.manifest.name, what, error = %e, wait_s = wait, "unreadable response; asking again");
                    let until = self.clock.now() + chrono::Duration::milliseconds((wait * 1000.0) as i64);
                    self.clock.sleep_until(until).await;
                }
            }
        }
    }

    pub async fn get(&self, what: &str, auth: &Auth, url: &str, query: &[(&str, String)]) -> Result<Vec<u8>, ApiError> {
        let (mut failures, mut limited) = (0u32, 0u32);
        loop {
            self.acquire().await;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let req = self.http.get(url).query(query);
            let req = match auth {
                Auth::Bearer(t) => req.bearer_auth(t.expose()),
                Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
            };
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if let Some(h) = &self.manifest.usage_headers {
                        let (limits, usage) = (numbers(&headers, &h.limit), numbers(&headers, &h.usage));
                        let resets = h.reset.as_deref().map(|r| numbers(&headers, r)).unwrap_or_default();
                        if !usage.is_empty() {
                            self.limiter.lock().await.observe(self.clock.now(), &limits, &usage, &resets);
                        }
                    }
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body.to_vec())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let retry = match outcome {
                Ok((status, _, body)) if status.is_success() => return Ok(body),
                Ok((status, headers, _)) if status.as_u16() == 429 => {
                    limited += 1;
                    let retry_after = headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        // A day at most: a larger value is not believed (and would not fit).
                        .map(|s| chrono::Duration::seconds(s.clamp(0, 86_400)));
                    tracing::warn!(provider = %self.manifest.name, what, "rate limited (429): waiting for the window");
                    self.limiter.lock().await.exhausted(self.clock.now(), retry_after);
                    if limited >= ATTEMPTS_429 {
                        return Err(ApiError::Server(what.into(), "HTTP 429 over and over".into()));
                    }
                    continue;
                }
                Ok((status, _, body)) => {
                    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                    match status.as_u16() {
                        401 => return Err(ApiError::Unauthorized(what.into())),
                        403 => return Err(ApiError::Forbidden(what.into())),
                        404 => return Err(ApiError::NotFound(what.into())),
                        code if status.is_server_error() => format!("HTTP {code}: {text}"),
                        code => return Err(ApiError::Unexpected(what.into(), code, text)),
                    }
                }
                Err(network) => network,
            };
            failures += 1;
            if failures >= ATTEMPTS_5XX {
                return Err(ApiError::Server(what.into(), retry));
            }
            let wait = 2f64.powi(failures as i32) * jitter();
            tracing::warn!(provider = %self.manifest.name, what, error = %retry, wait_s = wait, "request failed; retrying");
            let until = self.clock.now() + chrono::Duration::milliseconds((wait * 1000.0) as i64);
            self.clock.sleep_until(until).await;
        }
    }
}

/// Where a page continues from, whether it was full, and its unprocessed activities.
pub type Carry = (i64, bool, Vec<strava::Summary>);

/// Everything the sync and the OAuth callback share: per provider its manifest, API
/// budget and app credentials, and the token refresher.
pub struct Registry {
    pub providers: BTreeMap<String, Arc<Api>>,
    pub settings: BTreeMap<String, ProviderSettings>,
    pub tokens: oauth::Refresher,
    pub clock: Arc<dyn Clock>,
    pub backfill_days: u32,
    pub sync_interval: chrono::Duration,
    pub base_url: String,
    /// Wakes the sync early for an account (webhook events).
    pub wake: tokio::sync::Notify,
    pub pending: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// Listed but unprocessed activities of an account whose turn ran out of budget,
    /// with the cursor they continue from and whether the page was full: the next turn
    /// goes on without listing again.
    pub carry: std::sync::Mutex<std::collections::HashMap<i64, Carry>>,
}

impl Registry {
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let mut providers = BTreeMap::new();
        let mut settings = BTreeMap::new();
        for name in names() {
            let Some(s) = self::settings(config, name) else { continue };
            let m = Manifest::load(name, s)?;
            providers.insert(name.to_string(), Arc::new(Api::new(m, clock.clone())?));
            settings.insert(name.to_string(), s.clone());
        }
        Ok(Self {
            providers,
            settings,
            tokens: oauth::Refresher::default(),
            clock,
            backfill_days: config.providers.backfill_days,
            sync_interval: chrono::Duration::minutes(config.providers.sync_interval_min as i64),
            base_url: config.web.base_url(),
            wake: tokio::sync::Notify::new(),
            pending: Default::default(),
            carry: Default::default(),
        })
    }

    pub fn api(&self, name: &str) -> Result<&Arc<Api>, String> {
        let api = self
            .providers
            .get(name)
            .ok_or_else(|| format!("no provider {name:?}; known: {}", names().collect::<Vec<_>>().join(", ")))?;
        if !self.enabled(name) {
            return Err(format!("{name} is disabled in the configuration (providers.{name}.enabled = false)"));
        }
        Ok(api)
    }

    /// Whether `providers.NAME.enabled` (a disabled provider neither connects nor syncs).
    pub fn enabled(&self, name: &str) -> bool {
        self.settings.get(name).is_some_and(|s| s.enabled)
    }

    pub fn app(&self, name: &str) -> Result<AppCredentials, String> {
        let s = self.settings.get(name).ok_or_else(|| format!("no provider {name:?}"))?;
        credentials(name, s)
    }

    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/oauth/{name}/callback", self.base_url)
    }

    /// Ask the sync to look at an account soon.
    pub fn poke(&self, account: i64) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(account);
        // Every provider's loop looks; the one the account belongs to takes it.
        self.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_loads_and_config_can_override_any_field() {
        for name in names() {
            let m = Manifest::load(name, &ProviderSettings::default()).expect("manifest");
            assert_eq!(m.name, name);
            assert!(!m.rate_limits.is_empty(), "{name} has rate limits");
            for ty in m.types.values() {
                assert!(crate::activity_types::is_known(ty), "{name}: {ty} is a coachd type");
            }
        }
        let mut s = ProviderSettings { api_base: "http://127.0.0.1:9/api".into(), ..ProviderSettings::default() };
        s.manifest.insert("scopes".into(), toml::Value::Array(vec!["read".into()]));
        s.manifest.insert("display".into(), "Strava (proxy)".into());
        let m = Manifest::load("strava", &s).expect("overridden");
        assert_eq!(
            (m.scopes, m.display.as_str(), m.api_base.as_str()),
            (vec!["read".to_string()], "Strava (proxy)", "http://127.0.0.1:9/api")
        );
        s.manifest.insert("no_such_field".into(), true.into());
        let err = Manifest::load("strava", &s).expect_err("unknown field");
        assert!(err.contains("no_such_field"), "{err}");
    }
}
