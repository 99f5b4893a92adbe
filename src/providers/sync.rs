//! Syncing accounts: one provider-independent frame (a request budget per turn, 401 →
//! refresh once → revoked, errors recorded on the account) around each provider's own
//! sync, and [`CloudSource`], which the daemon runs: every account is synced every
//! `providers.sync_interval_min` (sooner when a webhook pokes it), accounts take turns
//! with a fair share of each provider's request budget, and a turn that runs out of
//! budget resumes next turn from its committed cursor.

use super::oauth::TokenError;
use super::{ApiError, Auth, Registry};
use crate::source::{Source, SourceContext, SourceFuture};
use crate::store::providers::{state, Account};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub listed: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// Items the provider listed that were not stored, with why (out-of-range values).
    pub skipped: Vec<String>,
    /// Activities stored without their samples (the stream kept failing); fetched again
    /// next round.
    pub samples_pending: usize,
    pub requests: u32,
    /// Everything up to now is synced (false: the turn's budget ran out first).
    pub done: bool,
}

/// One account's turn: its request budget and its credentials.
pub struct Turn<'a> {
    pub reg: &'a Registry,
    pub store: &'a Store,
    pub account: &'a Account,
    budget: u32,
    pub used: u32,
}

impl<'a> Turn<'a> {
    pub fn new(reg: &'a Registry, store: &'a Store, account: &'a Account, budget: u32) -> Self {
        Self { reg, store, account, budget, used: 0 }
    }

    /// Count one request against the turn's budget.
    pub fn take(&mut self) -> Result<(), ApiError> {
        if self.used >= self.budget {
            return Err(ApiError::Budget);
        }
        self.used += 1;
        Ok(())
    }

    pub fn has_budget(&self) -> bool {
        self.used < self.budget
    }

    /// Asked before every request: a turn can outlast a token (it may wait hours for
    /// the rate-limit window), and refreshing ahead of expiry costs no API request.
    async fn auth(&mut self, force: bool) -> Result<Auth, SyncError> {
        Ok(self.reg.tokens.auth(self.reg, self.store, self.account, force).await?)
    }

    /// GET JSON for this account: a 401 refreshes the token once and retries; a second
    /// 401 means the client revoked access (the account's state says so).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, SyncError> {
        let api = self.reg.api(&self.account.provider).map_err(SyncError::Other)?.clone();
        self.take()?;
        // A request may wait hours for the rate-limit window: check the token after it.
        api.wait_for_budget().await;
        let auth = self.auth(false).await?;
        match api.get_json(what, &auth, url, query).await {
            Err(ApiError::Unauthorized(_)) => {
                let auth = self.auth(true).await?;
                self.take()?;
                match api.get_json(what, &auth, url, query).await {
                    Err(ApiError::Unauthorized(w)) => {
                        let why = format!(
                            "{} refuses coachd's token: access was revoked; connect again",
                            api.manifest.display
                        );
                        self.store.set_account_state(self.account.id, state::REVOKED, Some(&why)).await?;
                        Err(SyncError::Api(ApiError::Unauthorized(w)))
                    }
                    other => Ok(other?),
                }
            }
            other => Ok(other?),
        }
    }
}

/// Stored activities the provider no longer lists: each is checked (`url_of(id)` must
/// answer 404) before it is deleted. Returns false when the turn's budget ran out first.
pub async fn delete_vanished<'i>(
    turn: &mut Turn<'_>,
    source: &str,
    vanished: impl Iterator<Item = &'i String>,
    url_of: impl Fn(&str) -> String,
    report: &mut Report,
) -> Result<bool, SyncError> {
    for id in vanished {
        if !turn.has_budget() {
            return Ok(false);
        }
        match turn.get_json::<serde_json::Value>("an activity", &url_of(id), &[]).await {
            Err(SyncError::Api(ApiError::NotFound(_))) => {
                if turn.store.delete_source_activity(source, id).await? {
                    report.deleted += 1;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sync one account within `budget` requests.
pub async fn sync_account(reg: &Registry, store: &Store, account: &Account, budget: u32) -> Result<Report, SyncError> {
    let mut turn = Turn::new(reg, store, account, budget);
    let result = match account.provider.as_str() {
        "strava" => super::strava::sync(&mut turn).await,
        "intervals" => super::intervals::sync(&mut turn).await,
        "polar" => super::polar::sync(&mut turn).await,
        other => Err(SyncError::Other(format!("no sync for provider {other:?}"))),
    };
    let now = reg.clock.now();
    match result {
        Ok(mut r) => {
            r.requests = turn.used;
            if r.done {
                store.account_synced(account.id, now, None).await?;
                store.set_skipped(account.id, &r.skipped).await?;
            }
            Ok(r)
        }
        Err(SyncError::Api(ApiError::Budget)) => Ok(Report { requests: turn.used, ..Report::default() }),
        Err(e) => {
            store.account_synced(account.id, now, Some(&e.to_string())).await?;
            Err(e)
        }
    }
}

/// One turn for each of the given accounts, with a fair share of each provider's
/// current window. Returns each account's result.
pub async fn sync_round(
    reg: &Registry,
    store: &Store,
    accounts: &[Account],
) -> Vec<(Account, Result<Report, SyncError>)> {
    let mut out = Vec::new();
    for a in accounts.iter().filter(|a| a.syncable()) {
        let Ok(api) = reg.api(&a.provider) else { continue };
        let sharing = accounts.iter().filter(|b| b.provider == a.provider && b.syncable()).count().max(1) as u32;
        let window = api.limiter.lock().await.remaining_now(reg.clock.now());
        // A fair share of what is left in the window, at least a few requests so a
        // turn makes progress (the limiter waits for the next window if needed).
        let budget = (window / sharing).max(5);
        out.push((a.clone(), sync_account(reg, store, a, budget).await));
    }
    save_headroom(reg, store).await;
    out
}

/// Keep each provider's budget as last seen, for `accounts list`.
pub async fn save_headroom(reg: &Registry, store: &Store) {
    for (name, api) in &reg.providers {
        let h = api.limiter.lock().await.headroom(reg.clock.now());
        let recorded = (api.sent.load(std::sync::atomic::Ordering::Relaxed) > 0)
            .then(|| serde_json::json!({"at": reg.clock.now(), "windows": h}).to_string());
        if let Some(json) = recorded {
            if let Err(e) = store.save_headroom(name, &json).await {
                tracing::warn!(provider = %name, error = %e, "saving the rate-limit headroom failed");
            }
        }
    }
}

/// Sync the given accounts until each is done, taking turns. Returns each account's
/// summed report.
pub async fn sync_all(
    reg: &Registry,
    store: &Store,
    accounts: &[Account],
    stop: &tokio_util::sync::CancellationToken,
) -> Vec<(Account, Result<Report, SyncError>)> {
    let mut out: Vec<(Account, Result<Report, SyncError>)> =
        accounts.iter().map(|a| (a.clone(), Ok(Report::default()))).collect();
    let mut open: Vec<Account> = accounts.iter().filter(|a| a.syncable()).cloned().collect();
    while !open.is_empty() && !stop.is_cancelled() {
        let mut still = Vec::new();
        for (a, r) in sync_round(reg, store, &open).await {
            let Some(slot) = out.iter_mut().find(|(x, _)| x.id == a.id) else { continue };
            match (r, &mut slot.1) {
                (Ok(r), Ok(sum)) => {
                    add(sum, &r);
                    if !r.done {
                        still.push(a);
                    }
                }
                (Err(e), _) => slot.1 = Err(e),
                (Ok(_), Err(_)) => {}
            }
        }
        open = still;
    }
    out
}

fn add(sum: &mut Report, r: &Report) {
    sum.listed += r.listed;
    sum.inserted += r.inserted;
    sum.updated += r.updated;
    sum.unchanged += r.unchanged;
    sum.deleted += r.deleted;
    sum.requests += r.requests;
    sum.done = r.done;
}

/// The daemon's cloud sync of one provider: every account every interval, sooner when
/// poked. One source per provider, each supervised on its own: a provider whose loop
/// fails or panics is restarted with backoff and shown failing (in `/healthz` and
/// `/metrics`, as `cloud.NAME`) while the others go on, and a provider waiting hours
/// for its rate-limit window holds up nobody else.
pub struct CloudSource {
    pub reg: Arc<Registry>,
    provider: &'static str,
    name: String,
}

impl CloudSource {
    pub fn new(reg: Arc<Registry>, provider: &'static str) -> Self {
        Self { reg, provider, name: format!("cloud.{provider}") }
    }

    /// One source for every provider coachd knows.
    pub fn all(reg: Arc<Registry>) -> Vec<Arc<dyn Source>> {
        super::names().map(|p| Arc::new(Self::new(reg.clone(), p)) as Arc<dyn Source>).collect()
    }
}

impl Source for CloudSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(provider_loop(&self.reg, ctx, self.provider))
    }
}

async fn provider_loop(reg: &Registry, ctx: &SourceContext, provider: &str) -> anyhow::Result<()> {
    if !reg.enabled(provider) {
        return Ok(());
    }
    // Accounts whose turn ran out of budget: they go on in the next round, next to any
    // account that became due meanwhile (a long backfill does not hold up the others'
    // regular syncs).
    let mut unfinished: std::collections::BTreeSet<i64> = Default::default();
    loop {
        // Listen for pokes before reading what is pending: a poke that lands while this
        // round runs wakes the wait below instead of being lost until the next tick.
        let poke = reg.wake.notified();
        tokio::pin!(poke);
        poke.as_mut().enable();
        let now = reg.clock.now();
        let accounts: Vec<Account> =
            ctx.store.accounts().await?.into_iter().filter(|a| a.provider == provider && a.syncable()).collect();
        let poked: std::collections::BTreeSet<i64> = {
            let mut pending = reg.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            accounts.iter().filter_map(|a| pending.take(&a.id)).collect()
        };
        let due: Vec<Account> = accounts
            .into_iter()
            .filter(|a| {
                poked.contains(&a.id)
                    || unfinished.contains(&a.id)
                    || a.last_attempt.or(a.last_sync).is_none_or(|t| now - t >= reg.sync_interval)
            })
            .collect();
        unfinished.clear();
        if !due.is_empty() {
            for (a, r) in sync_round(reg, &ctx.store, &due).await {
                match r {
                    Ok(r) if !r.done => {
                        unfinished.insert(a.id);
                    }
                    Ok(r) => tracing::info!(
                        client = %a.client, provider = %a.provider, new = r.inserted, updated = r.updated,
                        deleted = r.deleted, requests = r.requests, "synced"
                    ),
                    Err(e) => tracing::warn!(client = %a.client, provider = %a.provider, error = %e, "sync failed"),
                }
            }
            ctx.note_batch();
            ctx.set_detail(format!("{provider}: {} account(s) synced at {}", due.len(), now.format("%H:%M")));
        }
        if !unfinished.is_empty() {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            () = poke => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
        }
    }
}
