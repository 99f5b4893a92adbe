//! Cloud providers: one [`Provider`] per cloud, all in [`PROVIDERS`], the one list that
//! config, sync, the command line, the dashboard and the webhook routes go through.
//!
//! A provider is one file here, one manifest in `providers/NAME.toml` (endpoints,
//! scopes, rate limits, type map; embedded, overridable from `[providers.NAME]`) and one
//! line in [`PROVIDERS`]. What it supplies:
//! - its listing, per-item detail and conversion ([`sync::Listing`]), which the shared
//!   reconcile ([`sync::reconcile`]) turns into batches: fingerprints, counts, the model's
//!   clamp, ingest with the cursor, the check of what vanished;
//! - how it connects: by the manifest's auth kind, OAuth ([`oauth`]: link, callback,
//!   refresh) or an API key ([`Provider::check_key`]), then an optional step of its own
//!   ([`Provider::after_connect`]: Polar registers the user, Oura reads the user id);
//! - optionally its webhooks (`/webhooks/NAME`: probe, handshake, verification,
//!   delivery) and the upkeep of its push subscriptions;
//! - optionally its own token exchange, for a token endpoint that is not RFC 6749's
//!   ([`Provider::token_request`]: Withings).
//!
//! Shared by all: the manifest ([`Manifest`]), the per-application request budget
//! ([`ratelimit`]), the HTTP layer that keeps to it ([`api::Api`]), the clock
//! ([`clock`]) and [`Registry`], which holds them for every provider.

pub mod api;
pub mod clock;
pub mod oauth;
pub mod ratelimit;
pub mod sync;

pub use api::{Api, ApiError, Auth};

use crate::config::{Config, ProviderSettings};
use crate::crypto::Secret;
use crate::store::providers::Account;
use crate::store::{Store, StoreError};
use clock::Clock;
use ratelimit::Window;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use sync::{Report, SyncError, Turn};

/// Declares each provider's module (`src/providers/MODULE.rs`) and puts its value in
/// [`PROVIDERS`], in order.
macro_rules! providers {
    ($($module:ident :: $value:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every cloud provider coachd knows.
        pub static PROVIDERS: &[&dyn Provider] = &[$(&$module::$value),*];
    };
}

// A new provider is one line here.
providers! {
    strava::Strava,
    polar::Polar,
    intervals::Intervals,
    oura::Oura,
    whoop::Whoop,
    withings::Withings,
}

/// The providers' names, in [`PROVIDERS`] order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|p| p.name())
}

/// The provider called `name`.
pub fn provider(name: &str) -> Result<&'static dyn Provider, ProviderError> {
    PROVIDERS.iter().copied().find(|p| p.name() == name).ok_or_else(|| {
        ProviderError::Invalid(format!("no provider {name:?}; coachd knows {}", names().collect::<Vec<_>>().join(", ")))
    })
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a provider operation failed, in the kinds callers answer differently.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider, the person or the configuration said no (a refused code or key, an
    /// unknown or used authorization link, a provider not set up); nothing changed, and
    /// the text says what to do. Bad input: exit 2, HTTP 400.
    #[error("{0}")]
    Refused(String),
    /// The provider could not be asked, or answered with an error. Exit 1, HTTP 500.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// coachd's own database failed. Exit 1, HTTP 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What came in cannot be used: an unknown provider, a malformed key, a provider's
    /// answer without what it documents. Bad input: exit 2, HTTP 400.
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::crypto::RandomError> for ProviderError {
    fn from(e: crate::crypto::RandomError) -> Self {
        Self::Store(StoreError::from(e))
    }
}

/// Why a webhook request is not taken.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// This provider takes no webhooks, or they are not set up here (404).
    #[error("{0}")]
    NotHere(String),
    /// Unsigned, signed wrongly, stale, or a handshake with the wrong token (401/403).
    #[error("{0}")]
    Unauthorized(String),
    /// Not what the provider sends (400).
    #[error("{0}")]
    BadBody(String),
}

/// A new connection, for [`Provider::after_connect`].
pub struct Connection<'a> {
    pub reg: &'a Registry,
    pub store: &'a Store,
    pub account: &'a Account,
    pub access: Auth,
}

/// One cloud. Everything but [`Provider::name`], [`Provider::manifest`] and
/// [`Provider::sync`] has a default: a provider adds only what it has.
pub trait Provider: Send + Sync + 'static {
    /// `[providers.NAME]`, `/oauth/NAME/callback`, `/webhooks/NAME`, the source name of
    /// what it stores, `cloud.NAME` in `/healthz`.
    fn name(&self) -> &'static str;

    /// Its manifest (`providers/NAME.toml`), embedded with `include_str!`.
    fn manifest(&self) -> &'static str;

    /// Its own keys in `[providers.NAME]`, beside the common ones: (key, what it is).
    fn settings_keys(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// One turn of an account's sync: the provider's [`sync::Listing`] handed to
    /// [`sync::reconcile`].
    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>>;

    /// Day-by-day figures coachd never gets from this provider (WHOOP: steps). A homework
    /// counting one of them, for a client none of whose sources can give it, is shown with
    /// why it cannot be judged instead of waiting for data forever. The default: none (a
    /// provider is never said to lack what it may give).
    fn cannot_give(&self) -> &'static [crate::model::Metric] {
        &[]
    }

    /// Right after a connection's token is stored: what the provider needs done once
    /// (Polar: register the user; Oura: read the user id webhooks name). Some(text): a
    /// warning for whoever connected.
    fn after_connect<'a>(&'a self, _c: Connection<'a>) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// Withdraw coachd's access at the provider, for a disconnect or a client's removal:
    /// `c.access` is the account's current access (refreshed if it had expired).
    /// Ok(true): the provider revoked it; Ok(false): the provider's API has no way to,
    /// so coachd only forgets the tokens (the client can remove the app at the provider).
    fn revoke<'a>(&'a self, _c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async { Ok(false) })
    }

    /// An API-key provider: check a client's key with the provider; the id of whom it
    /// belongs to.
    fn check_key<'a>(&'a self, _reg: &'a Registry, _key: &'a str) -> BoxFuture<'a, Result<String, ProviderError>> {
        let name = self.name();
        Box::pin(async move {
            Err(ProviderError::Invalid(format!("{name} connects through its own login, not an API key")))
        })
    }

    /// A token endpoint that is not RFC 6749's: the provider's own exchange of a code or
    /// refresh token (Withings: form fields with `action=requesttoken`, an answer inside
    /// `{status, body}`). None, the default: the `oauth2` crate's, as the manifest says.
    fn token_request<'a>(
        &'a self,
        _reg: &'a Registry,
        _grant: oauth::Grant<'a>,
    ) -> Option<BoxFuture<'a, Result<oauth::TokenAnswer, oauth::TokenFailure>>> {
        None
    }

    /// Words for the trainer when the provider refused a connection for a reason of its
    /// own (`status` 0: the refusal came back in the redirect). None: the generic text.
    fn explain_refusal(&self, _status: u16, _text: &str) -> Option<String> {
        None
    }

    /// Whether the provider pushes events to `/webhooks/NAME` (which it reaches only at
    /// a public https:// address).
    fn takes_webhooks(&self) -> bool {
        false
    }

    /// `HEAD /webhooks/NAME`: whether to answer 2xx (Withings checks its callback so
    /// before it subscribes). The default: yes, where the provider takes webhooks.
    fn webhook_probe(&self) -> bool {
        self.takes_webhooks()
    }

    /// `GET /webhooks/NAME`: the subscription handshake; the JSON to answer.
    fn webhook_handshake<'a>(
        &'a self,
        _reg: &'a Registry,
        _store: &'a Store,
        _query: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<serde_json::Value, WebhookRefusal>> {
        let name = self.name();
        Box::pin(async move { Err(WebhookRefusal::NotHere(format!("{name} has no webhook handshake"))) })
    }

    /// `POST /webhooks/NAME`: whether a delivery is genuine and readable. Checked before
    /// anything is done or answered.
    fn webhook_verify(
        &self,
        _reg: &Registry,
        _headers: &reqwest::header::HeaderMap,
        _body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        Err(WebhookRefusal::NotHere(format!("{} sends no webhooks", self.name())))
    }

    /// Act on a verified delivery: a hint, mostly (ask for a sync). May take a while (a
    /// provider's answer to confirm it); the web layer answers the provider without waiting long.
    fn webhook_deliver(
        &self,
        _reg: Arc<Registry>,
        _store: Store,
        _body: Vec<u8>,
    ) -> BoxFuture<'static, Result<&'static str, SyncError>> {
        Box::pin(async { Ok("ignored") })
    }

    /// `coachd subscribe NAME`: ask the provider to push events to `/webhooks/NAME`;
    /// what was made.
    fn subscribe<'a>(&'a self, _reg: &'a Registry, _store: &'a Store) -> BoxFuture<'a, Result<String, ProviderError>> {
        let name = self.name();
        Box::pin(async move {
            Err(ProviderError::Refused(format!(
                "{name} has no push subscriptions made from coachd; its webhooks (if any) are set up at the provider"
            )))
        })
    }

    /// Called by the daemon every round: keep push subscriptions alive (re-made when
    /// gone, renewed before they expire). Costs nothing when there is nothing to do.
    fn upkeep<'a>(&'a self, _reg: &'a Registry, _store: &'a Store) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}

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
    /// Requests used, one figure per window (Strava, Polar); empty where the provider
    /// sends what is left instead (`remaining`).
    #[serde(default)]
    pub usage: String,
    /// Seconds until each window resets, where the provider says (Polar); with
    /// `remaining`, until the window the limit header names resets (WHOOP).
    #[serde(default)]
    pub reset: Option<String>,
    /// Requests left in one window (WHOOP's `X-RateLimit-Remaining`), which the limit
    /// header names in the IETF draft's form: the window's limit first, then every
    /// window as `LIMIT;window=SECONDS` ("100, 100;window=60, 10000;window=86400").
    #[serde(default)]
    pub remaining: Option<String>,
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
    /// Scopes a refresh request names (WHOOP: `offline`, else it hands out no new
    /// refresh token); empty: none named, the grant's scopes stand.
    #[serde(default)]
    pub refresh_scopes: Vec<String>,
    /// At least one of these must be granted, or the account is `insufficient_scope`.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Scope → what coachd reads with it: a scope the client unticked is named with what
    /// cannot be read without it.
    #[serde(default)]
    pub scope_reads: BTreeMap<String, String>,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// API-key providers: where the client finds their key.
    #[serde(default)]
    pub key_help: String,
    /// What to tell whoever connected an account (what the provider cannot give).
    #[serde(default)]
    pub connect_note: String,
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

impl Manifest {
    /// The embedded manifest with the config's overrides applied: any field from
    /// `[providers.NAME.manifest]`, then the URL keys.
    pub fn load(name: &str, settings: &ProviderSettings) -> Result<Self, ProviderError> {
        let p = provider(name)?;
        let bad = |e: String| ProviderError::Invalid(e);
        let mut table: toml::Table = p.manifest().parse().map_err(|e| bad(format!("providers/{name}.toml: {e}")))?;
        for (k, v) in &settings.manifest {
            table.insert(k.clone(), v.clone());
        }
        let mut m: Manifest = table.try_into().map_err(|e: toml::de::Error| bad(e.to_string().trim().to_string()))?;
        if m.name != name {
            return Err(bad(format!("the manifest's name is {:?}, not {name:?}", m.name)));
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

/// `[providers]` problems only this module can see: a table for a provider coachd does
/// not know, keys a provider does not take, and each manifest with the config's overrides
/// applied. For [`Config::load_with`].
pub fn config_problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in config.providers.named.keys() {
        if provider(name).is_err() {
            let known = names().collect::<Vec<_>>().join(", ");
            out.push((format!("providers.{name}"), format!("no provider {name:?}; coachd knows {known}")));
        }
    }
    for p in PROVIDERS {
        let name = p.name();
        let s = config.providers.get(name);
        if let Err(e) = Manifest::load(name, s) {
            out.push((format!("providers.{name}.manifest"), e.to_string()));
        }
        let keys = p.settings_keys();
        for (key, value) in &s.extra.0 {
            let full = format!("providers.{name}.{key}");
            if !keys.iter().any(|(k, _)| k == key) {
                // An empty value sets nothing: older files carry the webhook keys of
                // other providers commented out or empty, and must still load.
                if value.as_str() != Some("") {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    let takes = if known.is_empty() { "no keys of its own".to_string() } else { known.join(", ") };
                    out.push((full.clone(), format!("unknown key {full:?}; {name} takes {takes}")));
                }
            } else if !value.is_str() {
                out.push((full, "must be text (in quotes)".into()));
            }
        }
    }
    out
}

/// An endpoint beside the token endpoint (`…/oauth/token` → `…/oauth/NAME`): where Strava
/// and Oura take a revocation. Derived, so a configured `token_url` (a proxy, a test's fake)
/// moves it too.
pub fn beside_token(m: &Manifest, name: &str) -> String {
    match m.token_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{}/{name}", m.token_url),
    }
}

/// What a revocation's answer means: 2xx, revoked; 401, the token was already dead, so
/// there is nothing left to revoke; anything else an error naming the answer.
pub fn revocation(display: &str, status: u16, body: &[u8]) -> Result<bool, ProviderError> {
    match status {
        200..=299 | 401 => Ok(true),
        code => Err(ProviderError::Api(ApiError::Unexpected(
            format!("revoking coachd's access at {display}"),
            code,
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ))),
    }
}

/// The trainer's app credentials: config, else the systemd credential
/// `<provider>_client_secret` (LoadCredential=).
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: Secret<String>,
}

pub fn credentials(name: &str, settings: &ProviderSettings) -> Result<AppCredentials, ProviderError> {
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
        return Err(ProviderError::Refused(format!(
            "{name} needs your own API application: set providers.{name}.client_id and client_secret in \
             coachd.toml (or the systemd credential {name}_client_secret)"
        )));
    }
    Ok(AppCredentials { client_id: settings.client_id.trim().to_string(), client_secret: Secret::new(secret) })
}

/// A random secret of this install, kept in the database: what a provider must echo in
/// its webhook handshake when the configuration sets none.
pub async fn install_secret(
    store: &Store,
    configured: Option<Secret<String>>,
    key: &str,
) -> Result<String, StoreError> {
    match configured {
        Some(s) => Ok(s.expose().clone()),
        None => store.meta_secret(key).await,
    }
}

/// Connect an API-key provider's account (`coachd connect intervals CLIENT --api-key
/// KEY`): the key checked with the provider, stored sealed, a first sync asked for; who
/// the key belongs to.
pub async fn connect_key(
    reg: &Registry,
    store: &Store,
    provider: &str,
    client: i64,
    key: &str,
) -> Result<String, ProviderError> {
    let p = self::provider(provider)?;
    let user = p.check_key(reg, key).await?;
    let tokens = crate::store::Tokens {
        access: Secret::new(key.trim().to_string()),
        refresh: None,
        expires: None,
        scopes: "api_key".into(),
    };
    store.save_tokens(client, p.name(), &tokens).await?;
    let account = store.account(client, p.name()).await?;
    if user != "?" {
        store.set_account_user(account.id, &user).await?;
    }
    reg.poke(account.id);
    Ok(user)
}

/// Everything the sync, the OAuth callback and the webhooks share: per provider its
/// manifest, API budget and settings, the token refresher, and the sync's wake-ups.
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
    /// Per account, what a turn that ran out of budget listed but did not process
    /// ([`sync::reconcile`]'s own type): the next turn goes on without listing again.
    pub carry: std::sync::Mutex<HashMap<i64, Box<dyn std::any::Any + Send>>>,
}

impl Registry {
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, ProviderError> {
        let mut providers = BTreeMap::new();
        let mut settings = BTreeMap::new();
        for name in names() {
            let s = config.providers.get(name);
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

    /// A provider's API, if it is enabled.
    pub fn api(&self, name: &str) -> Result<&Arc<Api>, ProviderError> {
        provider(name)?;
        let api = self.providers.get(name).ok_or_else(|| ProviderError::Invalid(format!("no provider {name:?}")))?;
        if !self.enabled(name) {
            return Err(ProviderError::Refused(format!(
                "{name} is disabled in the configuration (providers.{name}.enabled = false)"
            )));
        }
        Ok(api)
    }

    /// Whether `providers.NAME.enabled` (a disabled provider neither connects nor syncs).
    pub fn enabled(&self, name: &str) -> bool {
        self.settings.get(name).is_some_and(|s| s.enabled)
    }

    pub fn settings(&self, name: &str) -> Result<&ProviderSettings, ProviderError> {
        self.settings.get(name).ok_or_else(|| ProviderError::Invalid(format!("no provider {name:?}")))
    }

    pub fn app(&self, name: &str) -> Result<AppCredentials, ProviderError> {
        credentials(name, self.settings(name)?)
    }

    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/oauth/{name}/callback", self.base_url)
    }

    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/webhooks/{name}", self.base_url)
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
            for scope in m.scope_reads.keys() {
                assert!(m.scopes.contains(scope), "{name}: {scope} is asked for");
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
        assert!(err.to_string().contains("no_such_field"), "{err}");
    }

    #[test]
    fn names_are_unique_and_every_key_is_checked() {
        let all: Vec<_> = names().collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "{all:?}");
        let mut c = Config::default();
        c.providers.get_mut("garmin");
        c.providers.get_mut("strava").extra.0.insert("webhook_verify_tokn".into(), "x".into());
        c.providers.get_mut("polar").extra.0.insert("webhook_verify_token".into(), "".into());
        c.providers.get_mut("polar").extra.0.insert("webhook_secret".into(), 5.into());
        let p = config_problems(&c);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["providers.garmin", "providers.strava.webhook_verify_tokn", "providers.polar.webhook_secret"],
            "{p:?}"
        );
        assert!(p[1].1.contains("strava takes webhook_verify_token"), "{p:?}");
    }
}
