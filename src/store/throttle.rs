//! The login throttle's rows (`login_failures`, `login_known`): read, and changed in one
//! write transaction, so every replica on the database counts the same failures. What
//! the counts mean (who waits how long) is decided in `web::session`; the store only
//! keeps them.

use super::on;
use super::{Store, StoreError};

/// One counter of failed logins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: i64,
    /// The first failure counted (for the global counter: its window's start).
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The rows that decide one login attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleRows {
    /// Failures of this (name, address) pair.
    pub pair: Option<FailureCount>,
    /// Failures from this address, whatever the names.
    pub address: Option<FailureCount>,
    /// All failures together.
    pub global: Option<FailureCount>,
    /// Whether this pair has logged in before.
    pub known: bool,
}

/// The keys of one attempt's counters (`pair` also names it among the known pairs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleKeys {
    pub pair: String,
    pub address: String,
}

/// The key of the counter of all failures together.
const GLOBAL: &str = "global";

const READ: &str = "SELECT key, failures, first_ms, last_ms FROM login_failures WHERE key IN (?, ?, ?)
                    UNION ALL SELECT '', 0, 0, 0 FROM login_known WHERE pair = ?";

fn rows_of(keys: &ThrottleKeys, found: Vec<(String, i64, i64, i64)>) -> ThrottleRows {
    let mut rows = ThrottleRows::default();
    for (key, failures, first_ms, last_ms) in found {
        let count = Some(FailureCount { failures, first_ms, last_ms });
        match key.as_str() {
            "" => rows.known = true,
            GLOBAL => rows.global = count,
            k if k == keys.pair => rows.pair = count,
            k if k == keys.address => rows.address = count,
            _ => {}
        }
    }
    rows
}

impl Store {
    /// The counters of an attempt, as they are now.
    pub async fn throttle_rows(&self, keys: &ThrottleKeys) -> Result<ThrottleRows, StoreError> {
        let found: Vec<(String, i64, i64, i64)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(READ))
            .bind(&keys.pair)
            .bind(&keys.address)
            .bind(GLOBAL)
            .bind(&keys.pair)
            .fetch_all(e)
            .await)?;
        Ok(rows_of(keys, found))
    }

    /// Count a failure: in one write transaction, forget counters idle since before
    /// `idle_before_ms`, read the attempt's counters, and store what `next` makes of them
    /// (a `None` counter is deleted; `known` is not written here). Returns what was stored.
    pub async fn throttle_failed(
        &self,
        keys: &ThrottleKeys,
        idle_before_ms: i64,
        next: impl FnOnce(&ThrottleRows) -> ThrottleRows,
    ) -> Result<ThrottleRows, StoreError> {
        let mut tx = self.write().await?;
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM login_failures WHERE last_ms < ?"))
            .bind(idle_before_ms)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        let found: Vec<(String, i64, i64, i64)> = on!(&mut tx, |e, sql| sqlx::query_as(&sql(READ))
            .bind(&keys.pair)
            .bind(&keys.address)
            .bind(GLOBAL)
            .bind(&keys.pair)
            .fetch_all(&mut **e)
            .await)?;
        let rows = next(&rows_of(keys, found));
        for (key, count) in
            [(keys.pair.as_str(), rows.pair), (keys.address.as_str(), rows.address), (GLOBAL, rows.global)]
        {
            match count {
                Some(c) => on!(&mut tx, |e, sql| sqlx::query(&sql(
                    "INSERT INTO login_failures (key, failures, first_ms, last_ms) VALUES (?, ?, ?, ?)
                     ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, first_ms = excluded.first_ms,
                     last_ms = excluded.last_ms",
                ))
                .bind(key)
                .bind(c.failures)
                .bind(c.first_ms)
                .bind(c.last_ms)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?,
                None => on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM login_failures WHERE key = ?"))
                    .bind(key)
                    .execute(&mut **e)
                    .await
                    .map(|r| r.rows_affected()))?,
            };
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// A right password: the pair's counter goes, and the pair is known from now on
    /// (while fewer than `known_max` pairs are).
    pub async fn throttle_succeeded(&self, keys: &ThrottleKeys, now_ms: i64, known_max: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM login_failures WHERE key = ?"))
            .bind(&keys.pair)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO login_known (pair, at_ms) SELECT ?, ? WHERE (SELECT count(*) FROM login_known) < ?
             ON CONFLICT (pair) DO UPDATE SET at_ms = excluded.at_ms",
        ))
        .bind(&keys.pair)
        .bind(now_ms)
        .bind(known_max)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }
}
