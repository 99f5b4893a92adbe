//! The application layer: every use case the command line and the dashboard offer, in
//! the domain's terms. Callers hand in typed values (a [`Client`] with its parsed time
//! zone, dates already parsed with [`crate::time::parse_day`]); raw text is taken only
//! where the trainer's words are the input (a homework phrase, weekdays, a window), and
//! then parsed here, once, so both front ends give the same message for the same input.
//!
//! Errors are [`AppError`]: bad input with a message written for a person, something
//! that is not there (or not the caller's: the same answer, so nothing leaks), or a
//! failure at run time. `cli/` turns them into exit codes, `web/` into pages.

mod accounts;
pub mod backup;
mod benchmarks;
mod charts;
mod clients;
pub mod collectors;
mod connections;
mod devices;
pub mod digest;
pub mod doctor;
mod erase;
mod freshness;
mod homework;
mod inbound;
mod links;
pub mod live;
pub mod migrate;
pub mod notify;
pub mod questions;
pub mod trainers;

/// Every homework form, as (what a trainer writes, what coachd echoes, what it is).
pub use crate::engine::phrase::FORMS as PHRASE_FORMS;
pub use accounts::{AccountView, Connected, ProviderChoice, SyncLine};
pub use benchmarks::{infer_unit, BenchmarkInput, UNITS};
pub use clients::{NewClientInput, Owner};
pub use connections::{Disconnected, OtherSource, ProviderLine, Sources};
pub use devices::SeenDevice;
pub use freshness::SourceFreshness;
pub use homework::parse_weekdays;
pub use homework::{Assignment, Logged, ManualActivity, Plan};
pub use inbound::{Counts, PushRefused, Pushed, WebhookRefusal};
pub use notify::{LinkAction, LinkRefusal, NotifyTarget, NudgeLink, Round};
pub use questions::{parse_questions, Answered, Every, QuestionsAssignment};
pub use trainers::{TrainerAdded, TrainerLine};

use crate::config::Config;
use crate::providers::clock::{Clock, SystemClock};
use crate::providers::Registry;
use crate::status::{self, StatusReport};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// Load the configuration with every module's own checks (today: the providers'
/// manifests), so `config check`, each command and the daemon refuse the same files.
pub fn load_config(
    path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, crate::config::Problems> {
    Config::load_with(path, env, crate::providers::config_problems)
}

/// What went wrong, in the three kinds a front end answers differently.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input cannot be used; nothing changed. Exit 2, or a 400 page.
    #[error("{0}")]
    Input(String),
    /// The thing asked for does not exist, or is not the caller's. Exit 2, or a 404.
    #[error("{0}")]
    NotFound(String),
    /// Something failed at run time. Exit 1, or a 500 (logged).
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn input(msg: impl Into<String>) -> Self {
        Self::Input(msg.into())
    }

    /// The write failed because the disk is full (nothing was stored).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Runtime(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::DiskFull)))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::NotFound(e.to_string()),
            StoreError::Invalid(p) => Self::Input(p.join("\n")),
            StoreError::Duplicate(_) | StoreError::Conflict(_) => Self::Input(e.to_string()),
            other => Self::Runtime(other.into()),
        }
    }
}

impl From<crate::providers::ProviderError> for AppError {
    fn from(e: crate::providers::ProviderError) -> Self {
        use crate::providers::ProviderError as P;
        match e {
            P::Refused(s) | P::Invalid(s) => Self::Input(s),
            P::Store(e) => e.into(),
            P::Api(e) => Self::Runtime(e.into()),
        }
    }
}

impl From<crate::crypto::RandomError> for AppError {
    fn from(e: crate::crypto::RandomError) -> Self {
        Self::Runtime(e.into())
    }
}

/// The application: the store, the configuration and the cloud providers. Cheap to
/// clone; the daemon, the dashboard and each CLI command hold one.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Arc<Config>,
    pub providers: Arc<Registry>,
    /// The data dir and the configuration file, when opened from them ([`App::open`]):
    /// backups, a removed client's folders. None for an app built from parts.
    pub files: Option<Files>,
}

/// Where an app's data dir and configuration file are.
#[derive(Clone, Debug)]
pub struct Files {
    pub data: crate::paths::DataDir,
    pub config: std::path::PathBuf,
}

impl App {
    /// On the system clock.
    pub fn new(store: Store, config: Arc<Config>) -> AppResult<Self> {
        Self::with_clock(store, config, Arc::new(SystemClock))
    }

    /// On a given clock (the provider fakes and benches run on a simulated one).
    pub fn with_clock(store: Store, config: Arc<Config>, clock: Arc<dyn Clock>) -> AppResult<Self> {
        let providers = Registry::new(&config, clock)?;
        Ok(Self::from_parts(store, config, Arc::new(providers)))
    }

    /// Open the data dir's store, initialising the data dir first if this is its first
    /// use (`coachd init` does the same and reports what it created). `beside_daemon`:
    /// a command whose links must reach the daemon, so without `web.public_url` they
    /// use the address the daemon last served at (not for the daemon itself).
    pub async fn open(
        data: &crate::paths::DataDir,
        config_path: &std::path::Path,
        config: Config,
        beside_daemon: bool,
    ) -> AppResult<(Self, crate::init::InitReport)> {
        let (store, report) = crate::init::init(data, config_path, &config).await?;
        let mut config = config;
        if beside_daemon && config.web.public_url.is_empty() {
            // Links made here must reach the daemon: where it last served, if it has run.
            match store.served_url().await {
                Ok(Some(url)) => config.web.public_url = url,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the served URL failed"),
            }
        }
        match Self::new(store.clone(), Arc::new(config)) {
            Ok(mut app) => {
                app.files = Some(Files { data: data.clone(), config: config_path.to_path_buf() });
                Ok((app, report))
            }
            Err(e) => {
                store.close().await;
                Err(e)
            }
        }
    }

    /// Close the store: every connection finishes, the WAL is checkpointed.
    pub async fn close(&self) {
        self.store.close().await;
    }

    pub fn from_parts(store: Store, config: Arc<Config>, providers: Arc<Registry>) -> Self {
        Self { store, config, providers, files: None }
    }

    /// How verdicts are reached, from `[homework]`, with the providers that never give
    /// steps ([`crate::providers::Provider::cannot_give`]).
    pub fn judging(&self) -> crate::charts::data::Judging {
        let mut j = crate::charts::data::Judging::from_config(&self.config.homework);
        j.cfg.no_steps = crate::providers::PROVIDERS
            .iter()
            .filter(|p| p.cannot_give().contains(&crate::model::Metric::Steps))
            .map(|p| p.name().to_string())
            .collect();
        j
    }

    /// Verdicts in `[from, to]` and adherence as of `now`, for each client.
    pub async fn status(
        &self,
        clients: &[Client],
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> AppResult<StatusReport> {
        if from > to {
            return Err(AppError::input(format!("the first day {from} is after the last day {to}")));
        }
        let j = self.judging();
        let mut report = status::status(&self.store, &j.cfg, j.attention_drop, clients, from, to, now).await?.0;
        self.note_unjudgeable(clients, &mut report.occurrences).await?;
        Ok(report)
    }

    /// The public base URL links are made from: `web.public_url`, else where the daemon
    /// last served, else its configured listen address.
    pub fn base_url(&self) -> String {
        self.config.web.base_url()
    }

    /// Whether links can reach this server from elsewhere; else what to configure.
    pub fn link_warning(&self) -> Option<String> {
        let url = self.base_url();
        let local = ["http://127.", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p));
        local.then(|| {
            format!(
                "links point at {url}, which only this machine reaches; set web.public_url to the address clients \
                 (and the provider's redirect) use"
            )
        })
    }
}
