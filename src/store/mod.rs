//! The store: every SQL statement of coachd lives under this module.
//!
//! SQLite through sqlx is the embedded default (WAL, foreign keys, busy timeout,
//! migrations from `migrations/` embedded and run on open). Callers see a small API of
//! domain types, so another backend can be added without touching sources, engine or web.
//!
//! Queries are runtime-checked (`sqlx::query`/`query_as`) rather than the `query!`
//! macros: building then needs neither a database nor committed offline data, and every
//! statement here is exercised by the test suite against a freshly migrated database.

mod accounts;
pub mod answers;
pub mod backup;
pub mod benchmarks;
mod clients;
pub mod codec;
pub mod collectors;
pub mod devices;
pub mod erase;
mod freshness;
pub mod gadgetbridge;
mod homework;
mod ingest;
pub mod inspect;
pub mod notify;
pub mod outbox;
mod packed;
pub mod providers;
mod push;
pub mod verdicts;
pub mod web;

pub use accounts::Tokens;
pub use answers::{AnswerSet, StoredAnswer};
pub use benchmarks::{Benchmark, NewBenchmark};
pub use clients::{Client, NewClient};
pub use homework::HomeworkRow;

use crate::crypto::Cipher;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
    /// Input the store refuses; nothing was written.
    #[error("invalid input: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The input contradicts what is stored (e.g. an activity id owned by another client).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the database was sealed with key {stored}, but the key file is {found}; restore the original coachd.key")]
    KeyMismatch { stored: String, found: String },
    /// The database was written by a newer coachd (a schema version this build does not know).
    #[error(
        "{path} has schema version {found}, but this coachd ({version}) knows versions up to {known}: a newer coachd \
         wrote it. Run that newer coachd (or upgrade this one), or restore a backup made by this version with \
         `coachd restore FILE`; the database was left unchanged",
        version = env!("CARGO_PKG_VERSION")
    )]
    TooNew { path: String, found: i64, known: i64 },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// SQLite could not grow the database or its journal: nothing of the write was stored.
    #[error(
        "the disk holding coachd's data is full: nothing of this was stored; free some space (`df` on the data \
         dir) and coachd carries on by itself"
    )]
    DiskFull,
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13) from the database, ENOSPC (28) from the file system.
        let full = match &e {
            sqlx::Error::Database(d) => {
                d.code().is_some_and(|c| c == "13" || c.parse::<i32>().is_ok_and(|c| c & 0xff == 13))
            }
            sqlx::Error::Io(io) => io.raw_os_error() == Some(28),
            _ => false,
        };
        if full {
            Self::DiskFull
        } else {
            Self::Db(e)
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub busy_timeout: Duration,
    /// `full` survives power cuts without losing a committed batch; `normal` is faster
    /// and survives process crashes.
    pub synchronous_full: bool,
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { busy_timeout: Duration::from_secs(5), synchronous_full: true, max_connections: 4 }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    cipher: Cipher,
}

impl From<crate::crypto::RandomError> for StoreError {
    fn from(e: crate::crypto::RandomError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Row counts of the main tables, for health reports and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RowCounts {
    pub clients: i64,
    pub activities: i64,
    pub sample_chunks: i64,
    pub strength_sets: i64,
    pub daily_metrics: i64,
    pub cursors: i64,
}

impl Store {
    /// Open (creating if missing) the SQLite database at `path` and migrate it.
    pub async fn open(path: &Path, opts: &StoreOptions, cipher: Cipher) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(opts.busy_timeout)
            .synchronous(if opts.synchronous_full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .pragma("temp_store", "memory")
            .optimize_on_close(true, None);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .idle_timeout(Duration::from_secs(300))
            // A write that failed on a full disk leaves its connection believing it is
            // still in a transaction (SQLite already rolled it back, so the queued ROLLBACK
            // fails): once the queue has run (the ping), such a connection is closed rather
            // than handed to the next writer.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(conn.ping().await.is_ok() && !conn.is_in_transaction())
                })
            })
            .connect_with(connect)
            .await?;
        if let Err(e) = backup::refuse_newer(&pool, path).await {
            pool.close().await;
            return Err(e);
        }
        MIGRATOR.run(&pool).await?;
        let store = Self { pool, cipher };
        store.check_key().await?;
        Ok(store)
    }

    /// Remember the key's fingerprint on first open; refuse a different key later.
    async fn check_key(&self) -> Result<(), StoreError> {
        let found = self.cipher.fingerprint().to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_fingerprint'").fetch_optional(&mut *tx).await?;
        match stored {
            Some(stored) if stored != found => return Err(StoreError::KeyMismatch { stored, found }),
            Some(_) => {}
            None => {
                sqlx::query("INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)")
                    .bind(&found)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The data dir's cipher: sealing and the signatures of links coachd hands out.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Wait for in-flight statements and close every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn row_counts(&self) -> Result<RowCounts, StoreError> {
        let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM activities),
                    (SELECT count(*) FROM sample_chunks), (SELECT count(*) FROM strength_sets),
                    (SELECT count(*) FROM daily_metrics), (SELECT count(*) FROM cursors)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RowCounts {
            clients: row.0,
            activities: row.1,
            sample_chunks: row.2,
            strength_sets: row.3,
            daily_metrics: row.4,
            cursors: row.5,
        })
    }

    pub(crate) fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
