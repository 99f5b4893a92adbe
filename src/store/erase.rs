//! A client's rows, every table of them: read for an export, or deleted in one
//! transaction when the client leaves.
//!
//! [`CLIENT_ROWS`] is the one list of where a client's data lives; the removal and the
//! export both read it, and a test walks `sqlite_master` so a new table that references
//! a client (directly or through its activities, homework or check-ins) and is missing
//! here fails it.

use super::on;
use super::{Store, StoreError};
use crate::model::ClientId;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Column, Row, TypeInfo, ValueRef};

const OF_ACTIVITIES: &str = "activity_id IN (SELECT id FROM activities WHERE client_id = ?1)";
const OF_HOMEWORK: &str = "homework_id IN (SELECT id FROM homework WHERE client_id = ?1)";
const OWN: &str = "client_id = ?1";

/// Every table with rows of a client, and the condition that selects them (`?1` is the
/// client's id), children before parents. `devices` is not here: a sensor outlives its
/// wearer and is unpaired instead. `cursors` and `meta` name a client's streams and
/// accounts in their keys; [`Store::remove_client`] clears those too.
pub const CLIENT_ROWS: &[(&str, &str)] = &[
    ("sample_chunks", OF_ACTIVITIES),
    ("collector_sessions", OF_ACTIVITIES),
    ("strength_sets", OF_ACTIVITIES),
    (
        "answers",
        "checkin_id IN (SELECT id FROM checkins WHERE client_id = ?1) \
         OR homework_id IN (SELECT id FROM homework WHERE client_id = ?1)",
    ),
    ("outbox", "client_id = ?1 OR homework_id IN (SELECT id FROM homework WHERE client_id = ?1)"),
    ("channels", OWN),
    ("verdicts", OF_HOMEWORK),
    ("excuses", OF_HOMEWORK),
    ("checkins", OWN),
    ("benchmarks", OWN),
    ("homework", OWN),
    ("activities", OWN),
    ("daily_metrics", OWN),
    ("metric_buckets", OWN),
    ("dirty_dates", OWN),
    ("push_tokens", OWN),
    ("share_links", OWN),
    ("reflections", OWN),
    ("oauth_states", OWN),
    ("accounts", OWN),
    ("clients", "id = ?1"),
];

/// What a removal deleted, per table, and what it unpaired.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Removed {
    pub client: String,
    /// (table, rows deleted), for tables that had any.
    pub rows: Vec<(String, u64)>,
    pub cursors: u64,
    pub devices_unpaired: u64,
}

impl Removed {
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum::<u64>() + self.cursors
    }
}

/// Tables an export writes, as the rows' own columns (sealed tokens, hashes and encoded
/// samples, the BLOB columns, are left out; samples go out as TCX).
pub const EXPORTED: &[&str] = &[
    "clients",
    "activities",
    "strength_sets",
    "daily_metrics",
    "metric_buckets",
    "homework",
    "verdicts",
    "excuses",
    "checkins",
    "answers",
    "reflections",
    "benchmarks",
    "accounts",
    "devices",
];

/// Columns holding JSON text, exported as JSON values.
const JSON_COLUMNS: &[&str] = &["rule", "detail"];

fn condition(table: &str) -> Option<&'static str> {
    if table == "devices" {
        return Some(OWN);
    }
    CLIENT_ROWS.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

fn to_json<R>(row: &R) -> Map<String, Value>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let Ok(raw) = row.try_get_raw(i) else { continue };
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                // SQLite's storage classes, PostgreSQL's types.
                "INTEGER" | "INT8" => row.try_get::<i64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "INT4" => row.try_get::<i32, _>(i).map(Value::from).unwrap_or(Value::Null),
                "REAL" | "FLOAT8" => row.try_get::<f64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "TEXT" => {
                    let text: String = row.try_get(i).unwrap_or_default();
                    if JSON_COLUMNS.contains(&name) {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    } else {
                        Value::String(text)
                    }
                }
                _ => continue, // BLOB: secrets, hashes, encoded samples
            }
        };
        // An instant also as RFC 3339, beside the milliseconds.
        if let (Some(stem), Some(ms)) = (name.strip_suffix("_ms"), value.as_i64()) {
            if let Some(t) = chrono::DateTime::from_timestamp_millis(ms) {
                out.insert(stem.to_string(), Value::String(t.to_rfc3339()));
            }
        }
        out.insert(name.to_string(), value);
    }
    out
}

impl Store {
    /// The client's rows of `table` (one of [`EXPORTED`]) as JSON objects, by rowid order.
    pub async fn client_rows(&self, client: ClientId, table: &str) -> Result<Vec<Map<String, Value>>, StoreError> {
        if !EXPORTED.contains(&table) {
            return Err(StoreError::Invalid(vec![format!("table {table} is not exported")]));
        }
        let cond = condition(table).ok_or_else(|| StoreError::Invalid(vec![format!("no condition for {table}")]))?;
        // The table names come from the constant lists above, never from input.
        Ok(on!(&self.db, |e, sql| sqlx::query(&sql(&format!("SELECT * FROM {table} WHERE {cond}")))
            .bind(client)
            .fetch_all(e)
            .await
            .map(|rows| rows.iter().map(to_json).collect()))?)
    }

    /// The ids of the client's activities that have samples, with their start and end (ms).
    pub async fn activities_with_samples(&self, client: ClientId) -> Result<Vec<(i64, i64, i64, String)>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_as(&sql("SELECT a.id, a.start_ms, a.end_ms, a.type FROM activities a
             WHERE a.client_id = ? AND EXISTS (SELECT 1 FROM sample_chunks s WHERE s.activity_id = a.id)
             ORDER BY a.start_ms",))
        .bind(client)
        .fetch_all(e)
        .await)?)
    }

    /// Delete every row of the client in one transaction: [`CLIENT_ROWS`], the cursors
    /// of their streams (their accounts', their files', sources only they used), the
    /// meta entries of their accounts; their sensors are unpaired. Nothing else changes.
    pub async fn remove_client(&self, client: ClientId) -> Result<Removed, StoreError> {
        // BEGIN IMMEDIATE: the write lock first, so no batch for this client can land
        // between reading what is theirs and deleting it.
        let mut tx = self.write().await?;
        let name: Option<String> =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT name FROM clients WHERE id = ?"))
                .bind(client)
                .fetch_optional(&mut **e)
                .await)?;
        let name = name.ok_or_else(|| StoreError::NotFound(format!("client #{client}")))?;
        let mut removed = Removed { client: name.clone(), ..Default::default() };
        let hash = self.hex_of("content_hash");
        let statement = format!(
            "DELETE FROM cursors WHERE
                stream IN (SELECT 'account:' || id FROM accounts WHERE client_id = ?1)
             OR stream IN (SELECT 'sha256:' || {hash} FROM activities
                           WHERE client_id = ?1 AND content_hash IS NOT NULL)
             OR stream = 'demo-' || ?2
             OR (source IN (SELECT source FROM activities WHERE client_id = ?1
                            UNION SELECT source FROM daily_metrics WHERE client_id = ?1
                            UNION SELECT source FROM metric_buckets WHERE client_id = ?1)
                 AND source NOT IN (SELECT source FROM activities WHERE client_id <> ?1
                            UNION SELECT source FROM daily_metrics WHERE client_id <> ?1
                            UNION SELECT source FROM metric_buckets WHERE client_id <> ?1))"
        );
        let cursors = on!(&mut tx, |e, sql| sqlx::query(&sql(&statement))
            .bind(client)
            .bind(&name)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        removed.cursors = cursors;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "DELETE FROM meta WHERE key IN (SELECT 'skipped:' || id FROM accounts WHERE client_id = ?1
                                            UNION SELECT 'lease:refresh:' || id FROM accounts WHERE client_id = ?1)",
        ))
        .bind(client)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        let unpaired = on!(&mut tx, |e, sql| sqlx::query(&sql(
            "UPDATE devices SET client_id = NULL, paired_ms = NULL WHERE client_id = ?"
        ))
        .bind(client)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        removed.devices_unpaired = unpaired;
        for (table, cond) in CLIENT_ROWS {
            // Names and conditions are the constants above, never input.
            let done = on!(&mut tx, |e, sql| sqlx::query(&sql(&format!("DELETE FROM {table} WHERE {cond}")))
                .bind(client)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?;
            if done > 0 {
                removed.rows.push((table.to_string(), done));
            }
        }
        tx.commit().await?;
        Ok(removed)
    }
}
