//! Backups and schema versions: a consistent copy of the live database (`VACUUM INTO`,
//! which reads one snapshot while other connections keep writing), the check of a
//! database file before it replaces the live one, the schema version a file carries, and
//! what a restore without the original key must forget (the tokens sealed with it).

use super::{Store, StoreError, MIGRATOR};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::Path;

/// The newest schema version (migration number) this build knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What a database file is, read without changing it.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseFacts {
    /// The highest migration applied.
    pub schema_version: i64,
    /// The fingerprint of the key its tokens were sealed with, if it has one.
    pub key_fingerprint: Option<String>,
    pub clients: i64,
    pub activities: i64,
    /// Cloud accounts holding sealed tokens.
    pub sealed_accounts: i64,
}

/// The highest migration recorded in `pool`'s database; None for a database without
/// migrations (a new, empty file).
async fn applied_version(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    let has: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await?;
    if has.is_none() {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(pool).await?)
}

/// Refuse a database a newer coachd wrote: migrating it down is impossible and running
/// on it would misread what the newer schema means.
pub(super) async fn refuse_newer(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let known = known_schema_version();
    match applied_version(pool).await? {
        Some(found) if found > known => Err(StoreError::TooNew { path: path.display().to_string(), found, known }),
        _ => Ok(()),
    }
}

async fn open_plain(path: &Path, read_only: bool) -> Result<SqlitePool, StoreError> {
    let opts = SqliteConnectOptions::new().filename(path).read_only(read_only).create_if_missing(false);
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?)
}

async fn has_table(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

impl Store {
    /// Write a consistent copy of the database to `dest` (which must not exist), as one
    /// self-contained file (rollback journal, not WAL), while other connections go on.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::Duplicate(format!("file {}", dest.display())));
        }
        let target = dest.to_str().ok_or_else(|| {
            StoreError::Invalid(vec![format!("the backup path {} is not valid UTF-8", dest.display())])
        })?;
        match &self.db {
            super::Backend::Sqlite(p) => {
                sqlx::query("VACUUM INTO ?").bind(target).execute(p).await?;
            }
            // A PostgreSQL store backs up into the same SQLite file a SQLite store writes,
            // so a backup restores on either.
            super::Backend::Postgres(_) => {
                let opts = super::StoreOptions { max_connections: 1, ..Default::default() };
                let copy = Store::open(dest, &opts, self.cipher.clone()).await?;
                let copied = self.copy_into(&copy, false, |_, _| {}).await;
                copy.close().await;
                if let Err(e) = copied {
                    let _ = std::fs::remove_file(dest);
                    for side in ["-wal", "-shm"] {
                        let mut f = dest.as_os_str().to_owned();
                        f.push(side);
                        let _ = std::fs::remove_file(f);
                    }
                    return Err(e);
                }
            }
        }
        let copy = open_plain(dest, false).await?;
        let result = sqlx::query("PRAGMA journal_mode = DELETE").execute(&copy).await;
        copy.close().await;
        result?;
        Ok(())
    }

    /// Check a database file before it replaces the live one: SQLite's integrity check,
    /// coachd's tables, a schema version this build knows. Read-only.
    pub async fn inspect_file(path: &Path) -> Result<DatabaseFacts, StoreError> {
        let shown = path.display().to_string();
        let pool = open_plain(path, true)
            .await
            .map_err(|e| StoreError::Invalid(vec![format!("{shown} is not an SQLite database: {e}")]))?;
        let result = inspect(&pool, &shown).await;
        pool.close().await;
        result
    }

    /// After a restore without the key that sealed its tokens: forget every sealed token
    /// and pending authorization in the database at `path` (they cannot be opened), mark
    /// those accounts `needs_reauth`, and record `fingerprint` as the key's. Returns the
    /// (client, provider) of each account that must be connected again.
    pub async fn forget_sealed_at(path: &Path, fingerprint: &str) -> Result<Vec<(String, String)>, StoreError> {
        let pool = open_plain(path, false).await?;
        let result = async {
            let mut tx = pool.begin().await?;
            let accounts: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.name, a.provider FROM accounts a JOIN clients c ON c.id = a.client_id
                 WHERE a.access_token IS NOT NULL OR a.refresh_token IS NOT NULL ORDER BY c.name, a.provider",
            )
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE accounts SET access_token = NULL, refresh_token = NULL, expires_ms = NULL,
                     state = 'needs_reauth',
                     last_error = 'restored from a backup without the key that sealed its tokens: connect again'
                 WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL",
            )
            .execute(&mut *tx)
            .await?;
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'oauth_states'")
                    .fetch_one(&mut *tx)
                    .await?;
            if pending > 0 {
                sqlx::query("DELETE FROM oauth_states").execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(accounts)
        }
        .await;
        pool.close().await;
        result
    }

    /// Checkpoint the WAL into the main file, so the file alone is the whole database.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        match &self.db {
            super::Backend::Sqlite(p) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(p).await?;
            }
            // The server's own files are the server's business.
            super::Backend::Postgres(_) => {}
        }
        Ok(())
    }

    /// Remember when the last backup was made and where (any process: the daemon's daily
    /// one or `coachd backup`).
    pub async fn set_last_backup(&self, at_ms: i64, path: &str) -> Result<(), StoreError> {
        super::on!(&self.db, |e, sql| {
            sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES ('last_backup', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ))
        .bind(format!("{at_ms} {path}"))
        .execute(e)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// When the last backup was made (ms) and its file.
    pub async fn last_backup(&self) -> Result<Option<(i64, String)>, StoreError> {
        let value: Option<String> = super::on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT value FROM meta WHERE key = 'last_backup'"
        ))
        .fetch_optional(e)
        .await)?;
        Ok(value.and_then(|v| {
            let (ms, path) = v.split_once(' ')?;
            Some((ms.parse().ok()?, path.to_string()))
        }))
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(super::on!(&self.db, |e, sql| sqlx::query_scalar::<_, Option<i64>>(&sql(
            "SELECT max(version) FROM _sqlx_migrations WHERE success"
        ))
        .fetch_one(e)
        .await)?
        .unwrap_or(0))
    }
}

async fn inspect(pool: &SqlitePool, shown: &str) -> Result<DatabaseFacts, StoreError> {
    let bad = |m: String| StoreError::Invalid(vec![m]);
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(pool)
        .await
        .map_err(|e| bad(format!("{shown} is not a readable SQLite database: {e}")))?;
    if check != ["ok"] {
        let first: Vec<&str> = check.iter().take(3).map(String::as_str).collect();
        return Err(bad(format!("{shown} fails SQLite's integrity check: {}", first.join("; "))));
    }
    for table in ["_sqlx_migrations", "meta", "clients", "activities", "accounts"] {
        if !has_table(pool, table).await? {
            return Err(bad(format!("{shown} is not a coachd database: it has no table {table}")));
        }
    }
    let known = known_schema_version();
    let schema_version = applied_version(pool).await?.unwrap_or(0);
    if schema_version > known {
        return Err(StoreError::TooNew { path: shown.to_string(), found: schema_version, known });
    }
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE NOT success").fetch_one(pool).await?;
    if failed > 0 {
        return Err(bad(format!("{shown} records a migration that failed half-way; it cannot be restored")));
    }
    let key_fingerprint =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_fingerprint'").fetch_optional(pool).await?;
    let (clients, activities, sealed_accounts): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM activities),
                (SELECT count(*) FROM accounts WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL)",
    )
    .fetch_one(pool)
    .await?;
    Ok(DatabaseFacts { schema_version, key_fingerprint, clients, activities, sealed_accounts })
}
