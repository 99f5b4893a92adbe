//! Sources and the supervisor that keeps them running.
//!
//! A [`Source`] turns the outside world (a Bluetooth strap, a provider's API, a folder)
//! into [`Batch`]es. It is built from its typed settings by the one `match` in
//! `sources::build`, and run with a [`SourceContext`]: the store, the shutdown
//! signal and the daemon's configuration. The supervisor runs each source as its own
//! task, restarts one that fails or panics with capped exponential backoff, and lets
//! no source stop the others or the web server.

use crate::config::{Config, SupervisorConfig};
use crate::model::{Batch, IngestReport};
use crate::store::outbox::{Outbox, PushError};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Something that produces batches until it is told to stop.
///
/// `run` returns `Ok(())` when shutdown was requested (after committing what it holds)
/// or when it has nothing more to do; an `Err` or a panic makes the supervisor restart
/// it after a backoff. It must watch `ctx.shutdown` in every loop.
pub trait Source: Send + Sync + 'static {
    /// Unique among the configured sources: `ble`, `strava`, `inbox`, ...
    fn name(&self) -> &str;
    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a>;
}

/// Where a source's batches go.
#[derive(Clone, Debug)]
pub enum Sink {
    /// `coachd run`: this daemon's database, through ingest.
    Store(Store),
    /// `coachd collect`: the collector's outbox, which the forwarder sends to the hub.
    Outbox(Outbox),
}

/// What a source is given to work with.
#[derive(Clone)]
pub struct SourceContext {
    pub sink: Sink,
    /// Cancelled when the daemon stops: commit what you hold, then return `Ok(())`.
    pub shutdown: CancellationToken,
    pub config: Arc<Config>,
    /// What is being recorded right now, for the live view.
    pub live: crate::live::Live,
    name: String,
    health: Health,
}

impl SourceContext {
    /// The daemon's database. Collector mode has none (it runs only the Bluetooth
    /// collector and its forwarder), so a source that needs it fails there, saying so.
    pub fn store(&self) -> anyhow::Result<&Store> {
        match &self.sink {
            Sink::Store(store) => Ok(store),
            Sink::Outbox(_) => anyhow::bail!(
                "source {} needs the hub's database; collector mode (coachd collect) runs only the Bluetooth collector",
                self.name
            ),
        }
    }

    /// Store a batch and record it in the source's health: ingest into the database, or
    /// (collector mode) commit it to the outbox. A full outbox is an error here; the
    /// batch was not stored.
    pub async fn ingest(&self, batch: &Batch) -> Result<IngestReport, StoreError> {
        let report = match &self.sink {
            Sink::Store(store) => store.ingest(batch).await?,
            Sink::Outbox(outbox) => match outbox.push(batch).await {
                Ok(_) => IngestReport::default(),
                Err(PushError::Store(e)) => return Err(e),
                Err(full @ PushError::Full { .. }) => return Err(StoreError::Invalid(vec![full.to_string()])),
            },
        };
        self.health.update(&self.name, |h| {
            h.batches += 1;
            h.last_batch = Some(Utc::now());
        });
        Ok(report)
    }

    /// Record in the source's health that it delivered, for sources that write through
    /// their own store calls (the cloud sync ingests page by page).
    pub fn note_batch(&self) {
        self.health.update(&self.name, |h| {
            h.batches += 1;
            h.last_batch = Some(Utc::now());
        });
    }

    /// Sleep unless shutdown comes first; returns false on shutdown.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Every source's state, as /healthz shows it (the collector's forwarder reports the
    /// Bluetooth collector's to the hub).
    pub fn sources(&self) -> Vec<SourceHealth> {
        self.health.snapshot()
    }

    /// A short human-readable note shown in /healthz ("3 devices connected").
    pub fn set_detail(&self, detail: impl Into<String>) {
        let detail = detail.into();
        self.health.update(&self.name, |h| h.detail = Some(detail));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Running,
    /// Failed; waiting before the next start.
    Backoff,
    /// Returned with nothing more to do.
    Finished,
    /// Stopped by shutdown.
    Stopped,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceHealth {
    pub name: String,
    pub state: SourceState,
    pub since: DateTime<Utc>,
    pub restarts: u32,
    pub batches: u64,
    pub last_batch: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

/// Shared view of every source's state, read by /healthz and sd_notify STATUS.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, SourceHealth>>>);

impl Health {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, SourceHealth>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // update is a plain field write), so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Vec<SourceHealth> {
        self.lock().values().cloned().collect()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut SourceHealth)) {
        if let Some(h) = self.lock().get_mut(name) {
            f(h);
        }
    }

    fn set_state(&self, name: &str, state: SourceState) {
        self.update(name, |h| {
            h.state = state;
            h.since = Utc::now();
            if state != SourceState::Backoff {
                h.retry_at = None;
            }
        });
    }

    /// "2 sources running, 1 in backoff": for sd_notify STATUS.
    pub fn summary(&self) -> String {
        let all = self.snapshot();
        let count = |s| all.iter().filter(|h| h.state == s).count();
        let (running, backoff) = (count(SourceState::Running), count(SourceState::Backoff));
        if all.is_empty() {
            "no sources configured".into()
        } else if backoff == 0 {
            format!("{running} of {} sources running", all.len())
        } else {
            format!("{running} of {} sources running, {backoff} failing", all.len())
        }
    }
}

/// The running supervisor.
pub struct Supervisor {
    health: Health,
    live: crate::live::Live,
    tasks: JoinSet<()>,
}

impl Supervisor {
    /// Start every source as its own supervised task.
    pub fn start(
        sources: Vec<Arc<dyn Source>>,
        store: Store,
        config: Arc<Config>,
        shutdown: CancellationToken,
    ) -> Self {
        Self::start_with(sources, Sink::Store(store), config, shutdown)
    }

    /// [`Supervisor::start`] with the batches going to `sink` (collector mode's outbox).
    pub fn start_with(
        sources: Vec<Arc<dyn Source>>,
        sink: Sink,
        config: Arc<Config>,
        shutdown: CancellationToken,
    ) -> Self {
        let health = Health::default();
        let live = crate::live::Live::default();
        let mut tasks = JoinSet::new();
        for source in sources {
            let name = source.name().to_string();
            health.lock().insert(
                name.clone(),
                SourceHealth {
                    name: name.clone(),
                    state: SourceState::Running,
                    since: Utc::now(),
                    restarts: 0,
                    batches: 0,
                    last_batch: None,
                    last_error: None,
                    last_error_at: None,
                    retry_at: None,
                    detail: None,
                },
            );
            let ctx = SourceContext {
                sink: sink.clone(),
                shutdown: shutdown.clone(),
                config: config.clone(),
                live: live.clone(),
                name: name.clone(),
                health: health.clone(),
            };
            let span = tracing::info_span!("source", source = %name);
            tasks.spawn(keep_running(source, ctx, config.supervisor.clone()).instrument(span));
        }
        Self { health, live, tasks }
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    pub fn live(&self) -> crate::live::Live {
        self.live.clone()
    }

    /// Wait for every source to stop (call after cancelling the shutdown token).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Run one source until shutdown, restarting it with backoff when it fails.
async fn keep_running(source: Arc<dyn Source>, ctx: SourceContext, cfg: SupervisorConfig) {
    let name = ctx.name.clone();
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    let max = Duration::from_millis(cfg.backoff_max_ms.max(cfg.backoff_initial_ms));
    let mut backoff = Duration::from_millis(cfg.backoff_initial_ms);
    loop {
        ctx.health.set_state(&name, SourceState::Running);
        let started = Instant::now();
        let mut task = {
            let (source, ctx) = (source.clone(), ctx.clone());
            tokio::spawn(async move { source.run(&ctx).await }.in_current_span())
        };
        let outcome = tokio::select! {
            r = &mut task => r,
            () = ctx.shutdown.cancelled() => match tokio::time::timeout(grace, &mut task).await {
                Ok(r) => r,
                Err(_) => {
                    task.abort();
                    warn!(grace_ms = grace.as_millis() as u64, "source did not stop in time; aborted");
                    ctx.health.set_state(&name, SourceState::Stopped);
                    return;
                }
            },
        };
        let failure = match outcome {
            Ok(Ok(())) => {
                let state = if ctx.shutdown.is_cancelled() { SourceState::Stopped } else { SourceState::Finished };
                info!(state = ?state, "source returned");
                ctx.health.set_state(&name, state);
                return;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
            Err(e) => format!("task failed: {e}"),
        };
        if ctx.shutdown.is_cancelled() {
            warn!(error = %failure, "source failed while stopping");
            ctx.health.set_state(&name, SourceState::Stopped);
            return;
        }
        if started.elapsed() >= Duration::from_secs(cfg.healthy_after_s) {
            backoff = Duration::from_millis(cfg.backoff_initial_ms);
        }
        let retry_at = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
        error!(error = %failure, retry_in_ms = backoff.as_millis() as u64, "source failed");
        ctx.health.update(&name, |h| {
            h.restarts += 1;
            h.last_error = Some(failure);
            h.last_error_at = Some(Utc::now());
        });
        ctx.health.set_state(&name, SourceState::Backoff);
        ctx.health.update(&name, |h| h.retry_at = Some(retry_at));
        if !ctx.sleep(backoff).await {
            ctx.health.set_state(&name, SourceState::Stopped);
            return;
        }
        backoff = (backoff * 2).min(max);
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}
