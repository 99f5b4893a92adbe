//! Cloud accounts: connect a client's account at any provider of
//! `providers::PROVIDERS`, list accounts with their rate-limit headroom, sync now, and
//! subscribe to push events.

use super::{App, AppError, AppResult};
use crate::providers::ratelimit::Headroom;
use crate::providers::sync::{sync_all, Report as SyncReport};
use crate::providers::{oauth, AuthKind};
use crate::store::providers::Account;
use crate::store::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What connecting gave.
pub enum Connected {
    /// An API-key provider is connected: its athlete id.
    Athlete { provider: String, athlete: String, note: String },
    /// An OAuth provider: the link to send the client (valid for `valid_minutes`, once),
    /// and where their browser returns.
    Link { url: String, valid_minutes: i64, redirect_uri: String },
}

#[derive(Serialize)]
pub struct AccountView {
    pub client: String,
    #[serde(skip)]
    pub client_id: i64,
    pub provider: String,
    pub state: String,
    pub reason: Option<String>,
    /// The last complete, successful sync.
    pub last_sync: Option<DateTime<Utc>>,
    /// The last sync tried, and when its error (if any) happened.
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Active, but the last attempt failed.
    pub failing: bool,
    /// What the last complete sync left out, with why.
    pub skipped: Vec<String>,
    pub next_sync: Option<DateTime<Utc>>,
    pub headroom: Vec<Headroom>,
}

/// One account's result of [`App::sync_now`].
pub struct SyncLine {
    pub account: Account,
    /// None: skipped (the account needs the client to connect again).
    pub result: Option<Result<SyncReport, String>>,
}

#[derive(serde::Deserialize)]
struct Saved {
    windows: Vec<Headroom>,
}

/// A provider as the front ends offer it.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderChoice {
    pub name: &'static str,
    pub display: String,
    /// Connected with the client's API key rather than through the provider's login.
    pub api_key: bool,
    /// Where the client finds the key.
    pub key_help: String,
}

impl App {
    fn known_provider(provider: &str) -> AppResult<&'static str> {
        let p = provider.trim().to_ascii_lowercase();
        Ok(crate::providers::provider(&p)?.name())
    }

    /// Every enabled provider, in the order of `providers::PROVIDERS`.
    pub fn provider_choices(&self) -> Vec<ProviderChoice> {
        crate::providers::names()
            .filter_map(|name| {
                let api = self.providers.api(name).ok()?;
                let m = &api.manifest;
                Some(ProviderChoice {
                    name,
                    display: m.display.clone(),
                    api_key: m.auth == AuthKind::ApiKey,
                    key_help: m.key_help.clone(),
                })
            })
            .collect()
    }

    /// Connect a client's account, the way the provider's manifest says: an API-key
    /// provider takes the client's key; an OAuth one gives an authorization link to send
    /// the client.
    pub async fn connect(&self, provider: &str, client: &Client, api_key: Option<&str>) -> AppResult<Connected> {
        let provider = Self::known_provider(provider)?;
        let reg = &self.providers;
        let m = &reg.api(provider)?.manifest;
        match (m.auth, api_key.map(str::trim).filter(|k| !k.is_empty())) {
            (AuthKind::ApiKey, Some(key)) => {
                let athlete = crate::providers::connect_key(reg, &self.store, provider, client.id, key).await?;
                Ok(Connected::Athlete { provider: m.display.clone(), athlete, note: m.connect_note.clone() })
            }
            (AuthKind::ApiKey, None) => Err(AppError::input(format!(
                "{} uses the client's own API key ({}): coachd connect {provider} CLIENT --api-key KEY, or the API \
                 key field on the client's page",
                m.display, m.key_help
            ))),
            (AuthKind::Oauth2, Some(_)) => {
                Err(AppError::input(format!("{provider} connects through its own login, not an API key")))
            }
            (AuthKind::Oauth2, None) => {
                let url = oauth::authorization_link(reg, &self.store, provider, client.id).await?;
                Ok(Connected::Link {
                    url,
                    valid_minutes: oauth::LINK_TTL.num_minutes(),
                    redirect_uri: reg.redirect_uri(provider),
                })
            }
        }
    }

    /// Every account, with its next sync and the app-wide rate-limit headroom as the last
    /// sync (daemon or command line) left it; windows that have reset since are full again.
    pub async fn accounts(&self, client: Option<&Client>) -> AppResult<Vec<AccountView>> {
        let reg = &self.providers;
        let now = Utc::now();
        let mut rows = Vec::new();
        for a in self.store.accounts().await? {
            if client.is_some_and(|c| c.id != a.client_id) {
                continue;
            }
            let next = a.syncable().then(|| a.last_attempt.or(a.last_sync).map_or(now, |t| t + reg.sync_interval));
            let headroom: Vec<Headroom> = self
                .store
                .headroom(&a.provider)
                .await?
                .and_then(|j| serde_json::from_str::<Saved>(&j).ok())
                .map(|s| {
                    s.windows.into_iter().map(|w| if w.resets <= now { Headroom { used: 0, ..w } } else { w }).collect()
                })
                .unwrap_or_else(|| match reg.api(&a.provider) {
                    Ok(api) => api
                        .manifest
                        .rate_limits
                        .iter()
                        .map(|w| Headroom { window: w.name.clone(), used: 0, limit: w.limit, resets: now })
                        .collect(),
                    Err(_) => Vec::new(),
                });
            let failing = a.failing();
            let skipped = self.store.skipped(a.id).await?;
            rows.push(AccountView {
                skipped,
                failing,
                last_attempt: a.last_attempt,
                last_error_at: a.last_error_at,
                client: a.client,
                client_id: a.client_id,
                provider: a.provider,
                state: a.state,
                reason: a.last_error,
                last_sync: a.last_sync,
                next_sync: next,
                headroom,
            });
        }
        Ok(rows)
    }

    /// Sync the matching accounts now (all, one client's, one provider's).
    pub async fn sync_now(&self, client: Option<&Client>, provider: Option<&str>) -> AppResult<Vec<SyncLine>> {
        let provider = provider.map(Self::known_provider).transpose()?;
        let accounts: Vec<_> = self
            .store
            .accounts()
            .await?
            .into_iter()
            .filter(|a| client.is_none_or(|c| a.client_id == c.id) && provider.is_none_or(|p| a.provider == p))
            .collect();
        if accounts.is_empty() {
            return Err(AppError::input("no matching accounts; see `coachd accounts list`"));
        }
        let stop = tokio_util::sync::CancellationToken::new();
        Ok(sync_all(&self.providers, &self.store, &accounts, &stop)
            .await
            .into_iter()
            .map(|(account, r)| {
                let result = account.syncable().then(|| r.map_err(|e| e.to_string()));
                SyncLine { account, result }
            })
            .collect())
    }

    /// Ask a provider to push events to this server (`/webhooks/PROVIDER`); what was made.
    pub async fn subscribe(&self, provider: &str) -> AppResult<String> {
        let provider = Self::known_provider(provider)?;
        self.providers.api(provider)?;
        Ok(crate::providers::provider(provider)?.subscribe(&self.providers, &self.store).await?)
    }
}
