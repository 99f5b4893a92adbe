//! What arrives from outside over HTTP: the end of an OAuth authorization, providers'
//! webhooks, and Health Auto Export pushes. The web layer checks nothing here but the
//! HTTP shape; the meaning of each message is decided below.

use super::{App, AppError, AppResult};
use crate::providers::oauth::{self, Callback, Outcome};
use crate::store::StoreError;
use std::collections::HashMap;

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

/// Why a webhook request was not taken: the front end's status (404, 401/403, 400).
pub use crate::providers::WebhookRefusal;

/// How long a webhook delivery's work may hold the answer; longer work goes on in the
/// background (Strava wants an answer within 2 s, Oura within 10).
const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl App {
    /// The browser came back from the provider's consent page.
    pub async fn finish_authorization(&self, provider: &str, q: &Callback) -> AppResult<Outcome> {
        Ok(oauth::finish(&self.providers, &self.store, provider, q).await?)
    }

    /// `HEAD /webhooks/PROVIDER`: whether the callback answers 2xx.
    pub fn webhook_probe(&self, provider: &str) -> Result<(), WebhookRefusal> {
        let p = crate::providers::provider(provider).map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
        if !self.providers.enabled(provider) || !p.webhook_probe() {
            return Err(WebhookRefusal::NotHere(format!("{provider} takes no webhooks here")));
        }
        Ok(())
    }

    /// `GET /webhooks/PROVIDER`: a provider checks the callback of a subscription.
    pub async fn webhook_handshake(
        &self,
        provider: &str,
        query: &HashMap<String, String>,
    ) -> Result<serde_json::Value, WebhookRefusal> {
        let p = crate::providers::provider(provider).map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
        p.webhook_handshake(&self.providers, &self.store, query).await
    }

    /// `POST /webhooks/PROVIDER`: verified first (nothing is done for a delivery that is
    /// unsigned, signed wrongly or stale), then acted on; work that takes longer than a
    /// moment goes on after the answer. What was done, when it finished in time.
    pub async fn webhook_delivery(
        &self,
        provider: &str,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<&'static str, WebhookRefusal> {
        let p = crate::providers::provider(provider).map_err(|e| WebhookRefusal::NotHere(e.to_string()))?;
        if !self.providers.enabled(provider) {
            return Err(WebhookRefusal::NotHere(format!("{provider} is disabled in the configuration")));
        }
        if let Err(e) = p.webhook_verify(&self.providers, headers, body) {
            tracing::warn!(provider, error = %e, "webhook delivery refused");
            return Err(e);
        }
        let work = p.webhook_deliver(self.providers.clone(), self.store.clone(), body.to_vec());
        let task = tokio::spawn(async move {
            match work.await {
                Ok(what) => {
                    tracing::info!(provider = p.name(), what, "webhook delivery");
                    what
                }
                Err(e) => {
                    tracing::warn!(provider = p.name(), error = %e, "webhook delivery failed");
                    "failed"
                }
            }
        });
        Ok(match tokio::time::timeout(DELIVERY_WAIT, task).await {
            Ok(Ok(what)) => what,
            _ => "accepted; acting on it in the background",
        })
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
