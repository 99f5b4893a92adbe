//! A look at a database file without changing it, for `coachd doctor`: opened read-only,
//! never created, never migrated. Integrity, size, schema version and the key
//! fingerprint the store recorded.

use super::{StoreError, MIGRATOR};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// What [`inspect`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// `PRAGMA quick_check`'s lines: `["ok"]` when the file is sound.
    pub quick_check: Vec<String>,
    /// Pages in use times the page size, plus the write-ahead log.
    pub size_bytes: u64,
    /// The key fingerprint sealed secrets were made with (none before the first open).
    pub key_fingerprint: Option<String>,
    /// Migrations applied / known to this binary; applied ones this binary does not know
    /// (a database made by a newer coachd).
    pub applied: usize,
    pub known: usize,
    pub unknown: Vec<i64>,
}

impl Inspection {
    pub fn sound(&self) -> bool {
        self.quick_check == ["ok"]
    }
}

/// Read-only look at the SQLite database at `path`.
pub async fn inspect(path: &Path, busy_timeout: Duration) -> Result<Inspection, StoreError> {
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(busy_timeout)
        .connect()
        .await?;
    let quick_check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(&mut conn).await?;
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut conn).await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut conn).await?;
    let has = |table: &'static str| {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?").bind(table)
    };
    let key_fingerprint = if has("meta").fetch_one(&mut conn).await? > 0 {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_fingerprint'").fetch_optional(&mut conn).await?
    } else {
        None
    };
    let applied: Vec<i64> = if has("_sqlx_migrations").fetch_one(&mut conn).await? > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&mut conn).await?
    } else {
        Vec::new()
    };
    conn.close().await?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let unknown = applied.iter().copied().filter(|v| !known.contains(v)).collect();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    Ok(Inspection {
        quick_check,
        size_bytes: u64::try_from(pages.saturating_mul(page_size)).unwrap_or(0) + wal,
        key_fingerprint,
        applied: applied.len(),
        known: known.len(),
        unknown,
    })
}
