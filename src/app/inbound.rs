//! What arrives from outside over HTTP: the end of an OAuth authorization, providers'
//! webhooks, and Health Auto Export pushes. The web layer checks nothing here but the
//! HTTP shape; the meaning of each message is decided below.

use super::{App, AppError, AppResult};
use crate::providers::oauth::{self, Callback, Outcome};
use crate::providers::{polar, strava};
use crate::store::StoreError;

/// What a Health Auto Export push changed.
pub struct Pushed {
    pub client: String,
    pub activities: usize,
    pub days_updated: usize,
    /// Items left out, each with why.
    pub rejected: Vec<crate::files::hae::Rejected>,
}

/// Why a push was refused.
pub enum PushRefused {
    /// No token, or an unknown or revoked one (401).
    Unauthorized(&'static str),
    /// The body is not what the app sends (400).
    BadBody(String),
    /// Every item was unusable: nothing stored (400).
    AllRejected(Vec<crate::files::hae::Rejected>),
    /// Ours (500).
    Failed(AppError),
}

impl App {
    /// The browser came back from the provider's consent page.
    pub async fn finish_authorization(&self, provider: &str, q: &Callback) -> Result<Outcome, String> {
        oauth::finish(&self.providers, &self.store, provider, q).await
    }

    /// The token Strava must echo in its subscription handshake: configured, else a
    /// random one kept in the database.
    pub async fn strava_verify_token(&self) -> Option<String> {
        let configured = self.config.providers.strava.webhook_verify_token.expose().clone();
        if !configured.is_empty() {
            return Some(configured);
        }
        self.store.meta_secret("strava_webhook_verify_token").await.ok()
    }

    /// Act on a Strava push event (a new, changed or deleted activity; a revoked app).
    pub async fn strava_event(&self, event: &strava::Event) -> Result<&'static str, String> {
        strava::on_event(&self.providers, &self.store, event).await.map_err(|e| e.to_string())
    }

    /// Polar's webhook secret, if webhooks are configured.
    pub fn polar_webhook_secret(&self) -> Option<String> {
        Some(self.config.providers.polar.webhook_secret.expose().clone()).filter(|s| !s.is_empty())
    }

    /// Act on a Polar delivery whose signature the caller has checked with
    /// [`polar::signature_ok`].
    pub async fn polar_delivery(&self, d: &polar::Delivery) -> Result<&'static str, String> {
        polar::on_delivery(&self.providers, &self.store, d).await.map_err(|e| e.to_string())
    }

    /// A Health Auto Export push with the client's bearer token.
    pub async fn health_auto_export(&self, token: &str, body: &[u8]) -> Result<Pushed, PushRefused> {
        let failed = |e: StoreError| PushRefused::Failed(e.into());
        let id = match self.store.client_for_push_token(token).await {
            Ok(Some(id)) => id,
            Ok(None) => return Err(PushRefused::Unauthorized("unknown or revoked token")),
            Err(e) => return Err(failed(e)),
        };
        let client = self.store.client_by_id(id).await.map_err(failed)?;
        let (batch, rejected) = crate::files::hae::parse_checked(body, client.id, client.tz, chrono::Utc::now())
            .map_err(|e| {
                tracing::warn!(client = %client.name, error = %e, "health auto export push refused");
                PushRefused::BadBody(e.to_string())
            })?;
        let usable = batch.activities.len() + batch.buckets.len() + batch.daily.len();
        if usable == 0 && !rejected.is_empty() {
            tracing::warn!(client = %client.name, rejected = rejected.len(), "health auto export push: nothing usable");
            return Err(PushRefused::AllRejected(rejected));
        }
        if !rejected.is_empty() {
            tracing::warn!(client = %client.name, rejected = rejected.len(), "health auto export push: items left out");
        }
        match self.store.ingest(&batch).await {
            Ok(r) => Ok(Pushed {
                client: client.name,
                activities: batch.activities.len(),
                days_updated: r.daily_written,
                rejected,
            }),
            Err(StoreError::Invalid(p)) => Err(PushRefused::BadBody(p.join("; "))),
            Err(e) => Err(failed(e)),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> AppResult<()> {
        Ok(self.store.ping().await?)
    }

    /// For `/metrics`: cached final verdicts by state, the cloud accounts, and the
    /// number of clients and trainers.
    pub async fn counts(&self) -> AppResult<Counts> {
        Ok(Counts {
            verdicts: self.store.verdict_counts().await?,
            accounts: self.store.accounts().await?,
            clients: self.store.list_clients().await?.len(),
            trainers: self.store.trainers().await?.len(),
        })
    }
}

pub struct Counts {
    pub verdicts: Vec<(String, i64)>,
    pub accounts: Vec<crate::store::providers::Account>,
    pub clients: usize,
    pub trainers: usize,
}
