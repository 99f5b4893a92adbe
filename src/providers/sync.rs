//! Syncing accounts: one provider-independent frame (a request budget per turn, 401 →
//! refresh once → revoked, errors recorded on the account), one reconcile every provider
//! shares ([`reconcile`]: each supplies only its listing, the detail of an item and its
//! conversion, as a [`Listing`]), and [`CloudSource`], which the daemon runs: every
//! account is synced every `providers.sync_interval_min` (sooner when a webhook pokes it),
//! accounts take turns with a fair share of each provider's request budget, and a turn
//! that runs out of budget resumes next turn from its committed cursor. A turn runs under
//! the account's lease in the store ([`sync_account`]), so one process at a time syncs an
//! account, however many replicas, daemons and commands share the store.

use super::api::Call;
use super::oauth::TokenError;
use super::{ApiError, Auth, ProviderError, Registry};
use crate::model::{Batch, Cursor, DailyMetric, NewActivity, Series};
use crate::source::{Source, SourceContext, SourceFuture};
use crate::store::providers::{state, Account};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Another coachd process (a replica, the daemon, a command) kept syncing the
    /// account for longer than a command waits.
    #[error("another coachd process has been syncing this account for {0} s; its results are stored as they come, try again when it is done")]
    Busy(u64),
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
    /// Nothing was done: another coachd process holds the account's sync lease, or
    /// synced it since the caller read it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub elsewhere: bool,
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
        self.call_json(what, &Call::get(url, query)).await
    }

    /// Any request for this account ([`Call`]: a GET, a form POST, with its check), as
    /// [`Turn::get_json`]: a 401 (or what the check reads as one) refreshes the token once
    /// and asks again; a second one means access was revoked.
    pub async fn call_json<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        call: &Call<'_>,
    ) -> Result<T, SyncError> {
        let api = self.reg.api(&self.account.provider)?.clone();
        self.take()?;
        // A request may wait hours for the rate-limit window: check the token after it.
        api.wait_for_budget().await;
        let auth = self.auth(false).await?;
        match api.call_json(what, &auth, call).await {
            Err(ApiError::Unauthorized(_)) => {
                let auth = self.auth(true).await?;
                self.take()?;
                match api.call_json(what, &auth, call).await {
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

/// What a provider lists, in the terms of the shared [`reconcile`]: a plan from the
/// committed cursor, pages of items, each item's id, fingerprint and (when it needs one)
/// a detail request, its conversion to a [`NewActivity`], the URL that confirms a
/// deletion, and the day-by-day figures beside the activities.
pub trait Listing: Sync {
    type Item: Clone + Send + Sync + 'static;

    /// What one item is called in reports ("activity", "exercise", "workout").
    const NOUN: &'static str;

    /// This sync's span and first page, from the committed cursor (None: the first sync).
    fn plan(&self, turn: &Turn<'_>, client: &Client, cursor: Option<&str>) -> Plan;

    /// One page of the listing: `page` is the plan's `first`, then each page's `next`.
    fn list(
        &self,
        turn: &mut Turn<'_>,
        client: &Client,
        plan: &Plan,
        page: &str,
    ) -> impl Future<Output = Result<Page<Self::Item>, SyncError>> + Send;

    fn id(&self, item: &Self::Item) -> String;

    /// What decides whether the stored copy is current.
    fn fingerprint(&self, item: &Self::Item) -> Vec<u8>;

    /// Move the cursor past an item (Strava: its start); the cursor is committed with
    /// each page. The default leaves it to [`Plan::done`].
    fn advance(&self, _cursor: &mut String, _item: &Self::Item) {}

    /// What the next turn's plan starts from (its `first`) when it goes on where this
    /// one stopped: what a turn carries is used only then. The default: the same first
    /// page (the cursor moves only at the end); Strava: the cursor (each page moves it).
    fn resume_at(&self, first: &str, _cursor: &str) -> String {
        first.to_string()
    }

    /// Whether the item needs a request of its own (its samples).
    fn needs_detail(&self, _item: &Self::Item) -> bool {
        false
    }

    /// The item's samples (one request or more), for the activity it converted to. 404:
    /// none; 5xx or a body that does not parse: stored without them, asked again next round.
    fn detail(
        &self,
        _turn: &mut Turn<'_>,
        _item: &Self::Item,
        _activity: &NewActivity,
    ) -> impl Future<Output = Result<Vec<Series>, SyncError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The item as coachd's activity, with whatever samples the listing carries inline
    /// (then clamped by the model); Err: skipped, with why, before any detail is asked.
    fn convert(&self, client: &Client, item: &Self::Item) -> Result<NewActivity, String>;

    /// The request that answers 404 once the item is deleted at the provider; None: the
    /// listing alone is believed.
    fn gone_url(&self, id: &str) -> Option<String>;

    /// How many parts the day-by-day figures come in (each stored on its own, so a turn
    /// whose budget runs out goes on from the part it was at).
    fn daily_parts(&self) -> usize {
        1
    }

    /// Part `part` of the day-by-day figures of the plan's span (steps, sleep); the
    /// last part's batch carries the final cursor.
    fn daily(
        &self,
        _turn: &mut Turn<'_>,
        _client: &Client,
        _plan: &Plan,
        _part: usize,
    ) -> impl Future<Output = Result<Daily, SyncError>> + Send {
        async { Ok(Daily::default()) }
    }
}

/// What a sync covers.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Stored activities starting in `[since, until)` are compared with the listing;
    /// those it no longer lists are checked and deleted.
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Where the listing starts (a cursor, a date, an empty page token).
    pub first: String,
    /// The cursor now (empty: none yet), moved by [`Listing::advance`].
    pub cursor: String,
    /// The cursor once everything up to now is stored (None: the advanced one).
    pub done: Option<String>,
    /// Free for the provider: the dates or times its requests ask for.
    pub from: String,
    pub to: String,
}

/// One page of a listing and where the next one starts.
pub struct Page<I> {
    pub items: Vec<I>,
    pub next: Option<String>,
}

/// Day-by-day figures, and what was left out with why.
#[derive(Default)]
pub struct Daily {
    pub metrics: Vec<DailyMetric>,
    pub skipped: Vec<String>,
    /// Days' figures the provider no longer has and the provider deleted here (a night
    /// deleted at WHOOP), counted with the deleted activities.
    pub deleted: usize,
}

/// Where a turn that ran out of budget stopped, carried to the next turn (in
/// [`Registry::carry`]): the rest of a page, or (the listing done) the part of the
/// day-by-day figures next; and the ids listed so far, so the vanished check of the last
/// turn knows them.
struct Carried<I> {
    key: String,
    /// The page the rest came from.
    page: String,
    next: Option<String>,
    rest: Vec<I>,
    listed: bool,
    daily_part: usize,
    seen: HashSet<String>,
}

/// The one reconcile of every provider: from the plan, each page is listed (or taken
/// from what the last turn carried), an item whose fingerprint matches the stored copy
/// costs nothing more, a new or changed one is converted and clamped
/// ([`NewActivity::clamped`]; what cannot be stored is skipped with its reason, before
/// any further request) and gets its detail request,
/// and each page is ingested with the cursor in one transaction. A turn out of budget
/// carries the page's rest. Then the day-by-day figures are stored with the final
/// cursor, and stored activities of the span the listing no longer has are checked
/// ([`Listing::gone_url`] must answer 404) and deleted.
pub async fn reconcile<L: Listing>(turn: &mut Turn<'_>, l: &L) -> Result<Report, SyncError> {
    let store = turn.store;
    let source = turn.account.provider.clone();
    let client = store.client_by_id(turn.account.client_id).await?;
    let stream = format!("account:{}", turn.account.id);
    let committed = store.cursor(&source, &stream).await?;
    let plan = l.plan(turn, &client, committed.as_deref());
    let stored = store.source_fingerprints(&source, client.id, plan.since, plan.until).await?;
    let mut report = Report::default();
    let mut cursor = plan.cursor.clone();
    let mut page = plan.first.clone();
    let with_cursor =
        |value: &str| (!value.is_empty()).then(|| Cursor { stream: stream.clone(), value: value.to_string() });
    let carry = |c: Carried<L::Item>| {
        let mut all = turn.reg.carry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.insert(turn.account.id, Box::new(c));
    };
    let mut carried = {
        let mut all = turn.reg.carry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.remove(&turn.account.id)
            .and_then(|c| c.downcast::<Carried<L::Item>>().ok())
            .filter(|c| c.key == page)
            .map(|c| *c)
    };
    let mut seen: HashSet<String> = carried.as_mut().map(|c| std::mem::take(&mut c.seen)).unwrap_or_default();
    if let Some(c) = &carried {
        page = c.page.clone();
    }
    let mut daily_part = carried.as_ref().map_or(0, |c| c.daily_part);
    // A turn that stopped after the listing goes on with the day-by-day figures.
    let mut listing = !carried.as_ref().is_some_and(|c| c.listed);
    while listing {
        let (items, next) = match carried.take() {
            Some(c) => (c.rest, c.next),
            None => {
                if !turn.has_budget() {
                    return Ok(report);
                }
                let p = l.list(turn, &client, &plan, &page).await?;
                report.listed += p.items.len();
                (p.items, p.next)
            }
        };
        let mut batch = Batch::new(source.as_str());
        let mut rest = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let id = l.id(item);
            let fp = l.fingerprint(item);
            if stored.get(&id).is_some_and(|h| h.as_deref() == Some(fp.as_slice())) {
                seen.insert(id);
                report.unchanged += 1;
                l.advance(&mut cursor, item);
                continue;
            }
            let mut a = match l.convert(&client, item).and_then(NewActivity::clamped) {
                Ok(a) => a,
                Err(why) => {
                    tracing::warn!(client = %client.name, provider = %source, %id, %why, "item skipped");
                    report.skipped.push(format!("{} {id}: {why}", L::NOUN));
                    seen.insert(id);
                    l.advance(&mut cursor, item);
                    continue;
                }
            };
            let mut pending = false;
            if l.needs_detail(item) {
                if !turn.has_budget() {
                    rest = items[i..].to_vec();
                    break;
                }
                match l.detail(turn, item, &a).await {
                    Ok(series) => a.series.extend(series),
                    Err(SyncError::Api(ApiError::NotFound(_))) => {}
                    // Its samples take more requests than the turn has left: next turn.
                    Err(SyncError::Api(ApiError::Budget)) => {
                        rest = items[i..].to_vec();
                        break;
                    }
                    // Samples that keep failing: the item is stored with what is known,
                    // and (not its fingerprint) seen as changed next round.
                    Err(SyncError::Api(e @ (ApiError::Server(..) | ApiError::Malformed(..)))) => {
                        tracing::warn!(client = %client.name, provider = %source, %id, error = %e, "samples not read; asking again next round");
                        report.samples_pending += 1;
                        pending = true;
                    }
                    Err(e) => return Err(e),
                }
                // The samples' values go through the same clamp.
                a = a.clamped().map_err(ProviderError::Invalid)?;
            }
            a.content_hash = Some(if pending { b"samples pending".to_vec() } else { fp });
            if stored.contains_key(&id) {
                report.updated += 1;
            } else {
                report.inserted += 1;
            }
            batch.activities.push(a);
            seen.insert(id);
            l.advance(&mut cursor, item);
        }
        // The cursor moves only with the data it covers.
        batch.cursor = with_cursor(&cursor);
        store.ingest(&batch).await?;
        if !rest.is_empty() {
            let key = l.resume_at(&plan.first, &cursor);
            carry(Carried { key, page, next, rest, listed: false, daily_part: 0, seen });
            return Ok(report);
        }
        match next {
            Some(n) => page = n,
            None => listing = false,
        }
    }
    // The day-by-day figures, part by part; the last part's batch moves the cursor.
    let parts = l.daily_parts();
    let done = plan.done.clone().unwrap_or(cursor);
    while daily_part < parts {
        let daily = match l.daily(turn, &client, &plan, daily_part).await {
            Ok(d) => d,
            Err(SyncError::Api(ApiError::Budget)) => {
                let key = l.resume_at(&plan.first, &done);
                carry(Carried { key, page, next: None, rest: Vec::new(), listed: true, daily_part, seen });
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        report.skipped.extend(daily.skipped);
        report.deleted += daily.deleted;
        daily_part += 1;
        let last = daily_part == parts;
        if !daily.metrics.is_empty() || (last && plan.done.is_some()) {
            let mut batch = Batch::new(source.as_str());
            batch.daily = daily.metrics;
            batch.cursor = if last { with_cursor(&done) } else { None };
            store.ingest(&batch).await?;
        }
    }
    // Stored activities of the span the provider no longer lists were deleted there.
    for id in stored.keys().filter(|id| !seen.contains(*id)) {
        let gone = match l.gone_url(id) {
            None => true,
            Some(url) => {
                if !turn.has_budget() {
                    return Ok(report);
                }
                match turn.get_json::<serde_json::Value>(&format!("{} {id}", L::NOUN), &url, &[]).await {
                    Err(SyncError::Api(ApiError::NotFound(_))) => true,
                    Ok(_) => false,
                    Err(e) => return Err(e),
                }
            }
        };
        if gone && store.delete_source_activity(&source, id).await? {
            report.deleted += 1;
        }
    }
    report.done = true;
    Ok(report)
}

/// How long an account's sync lease holds without being renewed: a replica that dies
/// mid-sync gives its accounts up to the others within this.
const SYNC_LEASE_MS: i64 = 20_000;
/// How often the holder renews it while its turn runs.
const SYNC_RENEW: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a command waits for an account another process is syncing.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Sync one account within `budget` requests, if no other coachd process is syncing it
/// (else a [`Report::elsewhere`], nothing done).
///
/// One process at a time per account, whichever replica, daemon or command: the turn
/// runs under a lease in the store (`sync:ACCOUNT`), renewed every [`SYNC_RENEW`] while
/// it runs and given back at its end; a holder that dies leaves it to expire within
/// [`SYNC_LEASE_MS`].
pub async fn sync_account(reg: &Registry, store: &Store, account: &Account, budget: u32) -> Result<Report, SyncError> {
    sync_turn(reg, store, account, budget, false).await
}

/// [`sync_account`]; with `if_unchanged`, the account is read again under the lease and
/// left alone if another process synced it since `account` was read (the daemon's due
/// list is read before its round, and another replica may take an account meanwhile).
async fn sync_turn(
    reg: &Registry,
    store: &Store,
    account: &Account,
    budget: u32,
    if_unchanged: bool,
) -> Result<Report, SyncError> {
    let lease = format!("sync:{}", account.id);
    let holder = reg.tokens.holder();
    let elsewhere = Report { elsewhere: true, ..Report::default() };
    if !store.try_lease(&lease, holder, SYNC_LEASE_MS).await? {
        return Ok(elsewhere);
    }
    let result = async {
        let now = store.account(account.client_id, &account.provider).await?;
        if if_unchanged && (now.last_attempt != account.last_attempt || !now.syncable()) {
            return Ok(elsewhere);
        }
        tokio::select! {
            r = sync_leased(reg, store, &now, budget) => r,
            lost = keep_lease(store, &lease, holder) => lost,
        }
    }
    .await;
    if let Err(e) = store.release_lease(&lease, holder).await {
        tracing::warn!(error = %e, "giving back the sync lease failed; it expires by itself");
    }
    result
}

/// Renew the sync lease until it is lost (never, unless this process stalled for longer
/// than the lease and another took the account over): then the turn stops, leaving what
/// it committed, and the other goes on from the committed cursor.
async fn keep_lease(store: &Store, lease: &str, holder: &str) -> Result<Report, SyncError> {
    loop {
        tokio::time::sleep(SYNC_RENEW).await;
        match store.try_lease(lease, holder, SYNC_LEASE_MS).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(lease, "another coachd process took over this account's sync; this turn stops");
                return Ok(Report { elsewhere: true, ..Report::default() });
            }
            Err(e) => tracing::warn!(lease, error = %e, "renewing the sync lease failed; trying again"),
        }
    }
}

/// [`sync_account`] under the lease.
async fn sync_leased(reg: &Registry, store: &Store, account: &Account, budget: u32) -> Result<Report, SyncError> {
    let mut turn = Turn::new(reg, store, account, budget);
    let result = match super::provider(&account.provider) {
        Ok(p) => p.sync(&mut turn).await,
        Err(e) => Err(e.into()),
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
///
/// With `if_unchanged` (the daemon), an account another process synced since `accounts`
/// were read is left alone ([`sync_turn`]).
pub async fn sync_round(
    reg: &Registry,
    store: &Store,
    accounts: &[Account],
    if_unchanged: bool,
) -> Vec<(Account, Result<Report, SyncError>)> {
    let mut out = Vec::new();
    for a in accounts.iter().filter(|a| a.syncable()) {
        let Ok(api) = reg.api(&a.provider) else { continue };
        let sharing = accounts.iter().filter(|b| b.provider == a.provider && b.syncable()).count().max(1) as u32;
        let window = api.limiter.lock().await.remaining_now(reg.clock.now());
        // A fair share of what is left in the window, at least a few requests so a
        // turn makes progress (the limiter waits for the next window if needed).
        let budget = (window / sharing).max(5);
        out.push((a.clone(), sync_turn(reg, store, a, budget, if_unchanged).await));
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
    let started = std::time::Instant::now();
    while !open.is_empty() && !stop.is_cancelled() {
        let mut still = Vec::new();
        let mut busy = false;
        for (a, r) in sync_round(reg, store, &open, false).await {
            let Some(slot) = out.iter_mut().find(|(x, _)| x.id == a.id) else { continue };
            match (r, &mut slot.1) {
                // Another process is on it: wait for it, then sync what is left, from
                // the account as that process left it.
                (Ok(r), Ok(_)) if r.elsewhere => {
                    if started.elapsed() > SYNC_WAIT {
                        slot.1 = Err(SyncError::Busy(SYNC_WAIT.as_secs()));
                        continue;
                    }
                    busy = true;
                    match store.account(a.client_id, &a.provider).await {
                        Ok(fresh) => still.push(fresh),
                        Err(e) => slot.1 = Err(e.into()),
                    }
                }
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
        if busy {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
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

    /// One source for every provider in [`super::PROVIDERS`].
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
            ctx.store()?.accounts().await?.into_iter().filter(|a| a.provider == provider && a.syncable()).collect();
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
        if let Ok(p) = super::provider(provider) {
            if let Err(e) = p.upkeep(reg, ctx.store()?).await {
                tracing::warn!(provider, error = %e, "keeping the push subscriptions failed; trying again next round");
            }
        }
        if !due.is_empty() {
            for (a, r) in sync_round(reg, ctx.store()?, &due, true).await {
                match r {
                    // Another replica has it; it is due again from whatever that one
                    // recorded. A poke (a webhook's event) may be newer than that
                    // replica's listing, so it is kept for the next round.
                    Ok(r) if r.elsewhere => {
                        if poked.contains(&a.id) {
                            reg.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(a.id);
                        }
                    }
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
