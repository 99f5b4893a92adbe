//! `coachd migrate --to postgres://…`: move an install from the data dir's SQLite file to
//! a PostgreSQL database.
//!
//! The target must be empty (a new database, or one only migrated). Every table is copied
//! in one transaction (the target has all of it or nothing), then checked twice: the rows
//! of every table are counted on both sides, and every client's verdicts for the last 90
//! days are judged on each side from its evidence (no cache read or written) and
//! compared. The SQLite file is only read.

use super::{AppError, AppResult};
use crate::config::Config;
use crate::paths::DataDir;
use crate::store::Store;
use anyhow::Context;
use chrono::{Duration, Utc};

/// What a migration did and found.
#[derive(Debug, Default)]
pub struct Migrated {
    /// Rows copied per table, in copy order.
    pub copied: Vec<(String, u64)>,
    /// Tables whose row counts differ after the copy: (table, SQLite, PostgreSQL).
    pub count_mismatches: Vec<(String, i64, i64)>,
    /// Clients whose last 90 days of verdicts were compared.
    pub clients_compared: usize,
    /// Clients whose verdicts differ.
    pub verdict_mismatches: Vec<String>,
    /// The target, without its password.
    pub target: String,
}

impl Migrated {
    pub fn matches(&self) -> bool {
        self.count_mismatches.is_empty() && self.verdict_mismatches.is_empty()
    }
}

/// Copy the data dir's database into the PostgreSQL database at `to` (its password in
/// `password_file`, else as the config says) and check the copy. `progress` hears each
/// table and the rows copied so far.
pub async fn migrate(
    data: &DataDir,
    config: &Config,
    to: &str,
    password_file: Option<&std::path::Path>,
    progress: impl FnMut(&str, u64),
) -> AppResult<Migrated> {
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(AppError::input(format!(
            "--to {to:?} is not a postgres:// URL (postgres://USER@HOST:PORT/DBNAME)"
        )));
    }
    let mut store = config.store.clone();
    store.url = to.to_string();
    if let Some(file) = password_file {
        store.password_file = file.display().to_string();
    }
    let pg = &store.postgres().map_err(AppError::input)?;
    let database = data.database();
    if !database.exists() {
        return Err(AppError::input(format!(
            "there is no SQLite database at {}: nothing to migrate (is COACHD_DATA_DIR right?)",
            database.display()
        )));
    }
    let (cipher, _) = crate::crypto::load_or_create_key(&data.key()).context("reading the data dir's key")?;
    let opts = config.store.options();
    let source = Store::open(&database, &opts, cipher.clone())
        .await
        .with_context(|| format!("opening {}", database.display()))?;
    let target = Store::open_postgres(pg, &opts, cipher)
        .await
        .with_context(|| format!("opening the PostgreSQL database {}", pg.shown()))?;
    let result = copy_and_check(&source, &target, config, progress).await;
    source.close().await;
    target.close().await;
    let mut report = result?;
    report.target = pg.shown();
    tracing::info!(target = %report.target, tables = report.copied.len(), matches = report.matches(), "migrated");
    Ok(report)
}

async fn copy_and_check(
    source: &Store,
    target: &Store,
    config: &Config,
    progress: impl FnMut(&str, u64),
) -> AppResult<Migrated> {
    let copied = source.copy_into(target, false, progress).await?;
    let (a, b) = (source.table_counts().await?, target.table_counts().await?);
    let mut count_mismatches = Vec::new();
    for (table, n) in &a {
        let m = b.get(table).copied().unwrap_or(-1);
        // The target's own key check row is not copied data.
        if *n != m {
            count_mismatches.push((table.clone(), *n, m));
        }
    }
    // Judge both from their evidence alone (nothing is cached, neither is written).
    let cfg = config.homework.judge_config();
    let clients = source.list_clients().await?;
    let now = Utc::now();
    let today = now.date_naive();
    let from = today - Duration::days(90);
    let mut verdict_mismatches = Vec::new();
    for c in &clients {
        if judged(source, &cfg, c, from, today, now).await? != judged(target, &cfg, c, from, today, now).await? {
            verdict_mismatches.push(c.name.clone());
        }
    }
    Ok(Migrated {
        copied,
        count_mismatches,
        clients_compared: clients.len(),
        verdict_mismatches,
        target: String::new(),
    })
}

/// A client's occurrences from `from` to `to`, as `status --json` shows them, judged from
/// the store's evidence.
async fn judged(
    store: &Store,
    cfg: &crate::engine::judge::JudgeConfig,
    c: &crate::store::Client,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    now: chrono::DateTime<Utc>,
) -> AppResult<serde_json::Value> {
    let homework = store.homework_of(&[c.id]).await?.remove(&c.id).unwrap_or_default();
    let ev = store.evidence(c.id, c.tz, from - Duration::days(7), to).await?;
    let hr_max = crate::status::hr_max(c, to);
    let mut out = Vec::new();
    for h in &homework {
        for d in h.occurrence_dates(from, to) {
            out.push(crate::engine::judge::judge(h, cfg, c.tz, hr_max, d, &ev, now));
        }
    }
    Ok(serde_json::to_value(out).map_err(anyhow::Error::from)?)
}
