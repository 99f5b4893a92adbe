//! The store: every SQL statement of coachd lives under this module.
//!
//! SQLite through sqlx is the embedded default (WAL, foreign keys, busy timeout,
//! migrations from `migrations/sqlite/` embedded and run on open); a PostgreSQL server is
//! the other backend (`store.url`, migrations from `migrations/postgres/`). Callers see a
//! small API of domain types, the same on both. A statement is written once, in SQL both
//! understand, and run on whichever the store is with [`on!`].
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
mod copy;
pub mod devices;
mod dialect;
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
pub mod throttle;
pub mod verdicts;
pub mod web;

pub use accounts::Tokens;
pub use answers::{AnswerSet, StoredAnswer};
pub use benchmarks::{Benchmark, NewBenchmark};
pub use clients::{Client, NewClient};
pub use homework::HomeworkRow;

use crate::crypto::Cipher;
use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key every PostgreSQL write transaction takes (SQLite's one writer).
const WRITER_LOCK: i64 = 0x636f_6163_6864; // "coachd"

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

/// What [`Store::server_health`] found.
#[derive(Clone, Copy, Debug)]
pub struct ServerHealth {
    pub checksum_failures: i64,
    pub schema_version: i64,
}

/// Where a PostgreSQL store is.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user@host:port/dbname`; a password in it works, but a file or a
    /// systemd credential keeps it out of the config.
    pub url: String,
    pub password: Option<crate::crypto::Secret<String>>,
    /// Each statement is cancelled after this long (zero: no limit).
    pub statement_timeout: Duration,
}

impl PgOptions {
    /// The URL with any password in it replaced, for messages and logs.
    pub fn shown(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "the configured PostgreSQL URL".to_string(),
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
    db: Db,
    cipher: Cipher,
}

/// One of the two databases the store runs on. Statements are written once, in SQL both
/// understand, and run on whichever this is with [`on!`].
#[derive(Clone, Debug)]
pub(crate) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

pub(crate) type Db = Backend<SqlitePool, PgPool>;

/// A write transaction on either database.
pub(crate) type Tx<'a> = Backend<sqlx::Transaction<'a, Sqlite>, sqlx::Transaction<'a, Postgres>>;

/// Run one statement on either database: `on!(&self.db, |e, sql| sqlx::query(&sql("…")).fetch_one(e).await)`.
/// The body is compiled once per backend with `e` the pool (or `&mut` transaction) and `s`
/// the dialect's placeholder spelling ([`dialect`]), so one statement serves both.
macro_rules! on {
    ($db:expr, |$e:ident, $s:ident| $body:expr) => {
        match $db {
            $crate::store::Backend::Sqlite($e) => {
                let $s = $crate::store::dialect::sqlite;
                $body
            }
            $crate::store::Backend::Postgres($e) => {
                let $s = $crate::store::dialect::postgres;
                $body
            }
        }
    };
}
pub(crate) use on;

impl Tx<'_> {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Backend::Sqlite(t) => t.commit().await,
            Backend::Postgres(t) => t.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Backend::Sqlite(t) => t.rollback().await,
            Backend::Postgres(t) => t.rollback().await,
        }
    }

    /// A savepoint inside this transaction: dropped without commit, only its own writes
    /// are undone.
    pub(crate) async fn savepoint(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        use sqlx::Connection;
        Ok(match self {
            Backend::Sqlite(t) => Backend::Sqlite(t.begin().await?),
            Backend::Postgres(t) => Backend::Postgres(t.begin().await?),
        })
    }
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
        let store = Self { db: Backend::Sqlite(pool), cipher };
        store.check_key().await?;
        Ok(store)
    }

    /// Connect to a PostgreSQL database and migrate it. The migration runs under
    /// PostgreSQL's advisory lock (sqlx takes it), so replicas starting together migrate
    /// once; a database migrated by a newer coachd is refused as [`StoreError::TooNew`].
    pub async fn open_postgres(pg: &PgOptions, opts: &StoreOptions, cipher: Cipher) -> Result<Self, StoreError> {
        let mut connect = sqlx::postgres::PgConnectOptions::from_str(&pg.url)?;
        if let Some(password) = &pg.password {
            connect = connect.password(password.expose());
        }
        if !pg.statement_timeout.is_zero() {
            let ms = pg.statement_timeout.as_millis().to_string();
            connect = connect.options([("statement_timeout", ms.as_str())]);
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(opts.busy_timeout.max(Duration::from_secs(1)))
            .idle_timeout(Duration::from_secs(300))
            .connect_with(connect)
            .await?;
        let known = PG_MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let found: Option<i64> = match sqlx::query_scalar::<_, Option<i64>>("SELECT max(version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
        {
            Ok(v) => v,
            // No migrations table yet: an empty database.
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01") => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(found) = found.filter(|f| *f > known) {
            pool.close().await;
            return Err(StoreError::TooNew { path: pg.shown(), found, known });
        }
        PG_MIGRATOR.run(&pool).await?;
        let store = Self { db: Backend::Postgres(pool), cipher };
        store.check_key().await?;
        Ok(store)
    }

    /// A PostgreSQL server's view of this database: data checksum failures it counted
    /// (0 where checksums are off) and the schema version.
    pub async fn server_health(&self) -> Result<ServerHealth, StoreError> {
        let pool = match &self.db {
            Backend::Postgres(p) => p,
            Backend::Sqlite(_) => return Err(StoreError::Invalid(vec!["the store is SQLite, not a server".into()])),
        };
        let checksum_failures: Option<i64> =
            sqlx::query_scalar("SELECT checksum_failures FROM pg_stat_database WHERE datname = current_database()")
                .fetch_optional(pool)
                .await?
                .flatten();
        Ok(ServerHealth {
            checksum_failures: checksum_failures.unwrap_or(0),
            schema_version: self.schema_version().await?,
        })
    }

    /// SQL for a BLOB column as lowercase hex text.
    pub(crate) fn hex_of(&self, column: &str) -> String {
        match self.db {
            Backend::Sqlite(_) => format!("lower(hex({column}))"),
            Backend::Postgres(_) => format!("encode({column}, 'hex')"),
        }
    }

    /// Which database this is, for logs and reports (a PostgreSQL URL without its password).
    pub fn backend(&self) -> &'static str {
        match self.db {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Remember the key's fingerprint on first open; refuse a different key later.
    async fn check_key(&self) -> Result<(), StoreError> {
        let found = self.cipher.fingerprint().to_string();
        let mut tx = self.write().await?;
        let stored: Option<String> =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = 'key_fingerprint'"))
                .fetch_optional(&mut **e)
                .await)?;
        match stored {
            Some(stored) if stored != found => return Err(StoreError::KeyMismatch { stored, found }),
            Some(_) => {}
            None => {
                on!(&mut tx, |e, sql| sqlx::query(&sql(
                    "INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)"
                ))
                .bind(&found)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Begin a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a read inside it sees what the write will change; on PostgreSQL
    /// the same holds through one transaction-scoped advisory lock that every writer
    /// takes, whichever replica it runs in.
    pub(crate) async fn write(&self) -> Result<Tx<'static>, StoreError> {
        Ok(match &self.db {
            Backend::Sqlite(p) => Backend::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITER_LOCK).execute(&mut *tx).await?;
                Backend::Postgres(tx)
            }
        })
    }

    /// The data dir's cipher: sealing and the signatures of links coachd hands out.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Wait for in-flight statements and close every connection (checkpointing the WAL).
    pub async fn close(&self) {
        match &self.db {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("SELECT 1")).execute(e).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn row_counts(&self) -> Result<RowCounts, StoreError> {
        let row: (i64, i64, i64, i64, i64, i64) = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM activities),
                    (SELECT count(*) FROM sample_chunks), (SELECT count(*) FROM strength_sets),
                    (SELECT count(*) FROM daily_metrics), (SELECT count(*) FROM cursors)",
        ))
        .fetch_one(e)
        .await)?;
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
