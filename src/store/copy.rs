//! Copying a whole database between the two backends: `coachd migrate` (the data dir's
//! SQLite file into an empty PostgreSQL database), and a PostgreSQL store's backup into a
//! SQLite file of the same schema.
//!
//! The schema is read from the SQLite side (every table but sqlx's own, its columns with
//! their declared types, its foreign keys), so a table a migration adds is copied without
//! a list to keep up. Tables go parents first; rows cross in batches inside one
//! transaction on the target, which therefore holds all of it or nothing. Identity
//! sequences on PostgreSQL are moved past the copied ids.

use super::{Backend, Store, StoreError};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{Row, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};

/// A table's name and its columns with their SQLite storage type.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Real,
    Text,
    Blob,
    /// An INTEGER 0/1 in SQLite that PostgreSQL holds as BOOLEAN.
    Bool,
}

impl Kind {
    fn of(declared: &str) -> Kind {
        match declared.to_ascii_uppercase().as_str() {
            "INTEGER" => Kind::Integer,
            "REAL" => Kind::Real,
            "BLOB" => Kind::Blob,
            _ => Kind::Text,
        }
    }
}

/// One value in transit.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Bool(Option<bool>),
    Integer(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// Rows copied per table, in copy order.
pub type Copied = Vec<(String, u64)>;

/// Most bound values in one statement (SQLite's limit is 32,766, PostgreSQL's 65,535).
const MAX_BINDS: usize = 30_000;

/// The tables of a SQLite database in an order where every table comes after the tables
/// it references.
async fn tables(pool: &SqlitePool) -> Result<Vec<Table>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
           AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut columns: BTreeMap<String, Vec<(String, Kind)>> = BTreeMap::new();
    for name in &names {
        // The names come from sqlite_master itself.
        let cols: Vec<(String, String)> =
            sqlx::query_as(&format!("SELECT name, type FROM pragma_table_info('{name}') ORDER BY cid"))
                .fetch_all(pool)
                .await?;
        columns.insert(name.clone(), cols.into_iter().map(|(c, t)| (c, Kind::of(&t))).collect());
        let refs: Vec<String> =
            sqlx::query_scalar(&format!("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list('{name}')"))
                .fetch_all(pool)
                .await?;
        parents.insert(name.clone(), refs.into_iter().filter(|r| r != name).collect());
    }
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while order.len() < names.len() {
        let before = order.len();
        for name in &names {
            if !placed.contains(name) && parents[name].iter().all(|p| placed.contains(p) || !parents.contains_key(p)) {
                placed.insert(name.clone());
                order.push(Table { name: name.clone(), columns: columns[name].clone() });
            }
        }
        if order.len() == before {
            return Err(StoreError::Corrupt("the tables' foreign keys form a cycle".into()));
        }
    }
    Ok(order)
}

/// A row of `t`'s columns as values, each read by `value`.
fn values_of<R>(
    t: &Table,
    row: Result<R, sqlx::Error>,
    value: fn(&R, usize, Kind) -> Result<Value, sqlx::Error>,
) -> Result<Vec<Value>, sqlx::Error> {
    let row = row?;
    t.columns.iter().enumerate().map(|(i, (_, k))| value(&row, i, *k)).collect()
}

fn sqlite_value(row: &sqlx::sqlite::SqliteRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Bool => Value::Bool(row.try_get(i)?),
        Kind::Integer => Value::Integer(row.try_get(i)?),
        Kind::Real => Value::Real(row.try_get(i)?),
        Kind::Text => Value::Text(row.try_get(i)?),
        Kind::Blob => Value::Blob(row.try_get(i)?),
    })
}

fn pg_value(row: &sqlx::postgres::PgRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Bool => Value::Bool(row.try_get(i)?),
        Kind::Integer => Value::Integer(row.try_get(i)?),
        Kind::Real => Value::Real(row.try_get(i)?),
        Kind::Text => Value::Text(row.try_get(i)?),
        Kind::Blob => Value::Blob(row.try_get(i)?),
    })
}

/// Write `rows` into `table` with one multi-row INSERT.
async fn insert(tx: &mut super::Tx<'_>, table: &Table, rows: &[Vec<Value>]) -> Result<(), sqlx::Error> {
    let cols: Vec<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
    let head = format!(
        "INSERT INTO {} ({}) ",
        table.name,
        cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
    );
    // The key fingerprint the target wrote on open is the same key's: the source's wins.
    let tail = if table.name == "meta" { " ON CONFLICT (key) DO UPDATE SET value = excluded.value" } else { "" };
    macro_rules! build {
        ($db:ty) => {{
            let mut q = sqlx::QueryBuilder::<$db>::new(&head);
            q.push_values(rows, |mut b, row| {
                for v in row {
                    match v {
                        Value::Bool(x) => b.push_bind(*x),
                        Value::Integer(x) => b.push_bind(*x),
                        Value::Real(x) => b.push_bind(*x),
                        Value::Text(x) => b.push_bind(x.clone()),
                        Value::Blob(x) => b.push_bind(x.clone()),
                    };
                }
            });
            q.push(tail);
            q
        }};
    }
    match tx {
        Backend::Sqlite(t) => {
            build!(sqlx::Sqlite).build().execute(&mut **t).await?;
        }
        Backend::Postgres(t) => {
            build!(sqlx::Postgres).build().execute(&mut **t).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Copy every row of this store into `target` (the other backend, migrated to the
    /// same schema), in one transaction on the target, from one snapshot of this one.
    /// The target must be empty, unless `replace`: then what it holds is deleted in the
    /// same transaction (a restore). `progress` hears each table's name and the rows
    /// copied so far. Returns the rows copied per table.
    pub async fn copy_into(
        &self,
        target: &Store,
        replace: bool,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<Copied, StoreError> {
        let (schema_pool, pg, source) = match (&self.db, &target.db) {
            (Backend::Sqlite(s), Backend::Postgres(p)) => (s.clone(), p.clone(), &self.db),
            (Backend::Postgres(p), Backend::Sqlite(t)) => (t.clone(), p.clone(), &self.db),
            _ => return Err(StoreError::Invalid(vec!["a copy goes between SQLite and PostgreSQL".into()])),
        };
        let mut tables = tables(&schema_pool).await?;
        // Flags: INTEGER 0/1 in SQLite, BOOLEAN in PostgreSQL.
        let flags: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
              WHERE table_schema = current_schema() AND data_type = 'boolean'",
        )
        .fetch_all(&pg)
        .await?;
        for t in &mut tables {
            for (c, k) in &mut t.columns {
                if flags.iter().any(|(ft, fc)| *ft == t.name && fc == c) {
                    *k = Kind::Bool;
                }
            }
        }
        let mut tx = target.write().await?;
        if replace {
            for t in tables.iter().rev() {
                super::on!(&mut tx, |e, sql| sqlx::query(&sql(&format!("DELETE FROM {}", t.name)))
                    .execute(&mut **e)
                    .await
                    .map(|_| ()))?;
            }
        }
        for t in &tables {
            let n: i64 = super::on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(&format!(
                "SELECT count(*) FROM {} {}",
                t.name,
                if t.name == "meta" { "WHERE key <> 'key_fingerprint'" } else { "" }
            )))
            .fetch_one(&mut **e)
            .await)?;
            if n > 0 {
                return Err(StoreError::Invalid(vec![format!(
                    "the target database is not empty: its table {} holds {n} rows; copy into a new, empty database",
                    t.name
                )]));
            }
        }
        // One snapshot of the source for every table, while its writers go on.
        let mut snapshot = Some(match source {
            Backend::Sqlite(p) => Backend::Sqlite(p.begin().await?),
            Backend::Postgres(p) => {
                let mut t = p.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *t).await?;
                Backend::Postgres(t)
            }
        });
        let mut copied = Vec::new();
        for t in &tables {
            let select = format!(
                "SELECT {} FROM {}",
                t.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect::<Vec<_>>().join(", "),
                t.name
            );
            let per_batch = (MAX_BINDS / t.columns.len().max(1)).clamp(1, 1000);
            let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
            let mut count = 0u64;
            progress(&t.name, 0);
            {
                // The snapshot's rows as values, whichever backend it reads.
                let mut rows: futures_util::stream::BoxStream<'_, Result<Vec<Value>, sqlx::Error>> = match &mut snapshot
                {
                    Some(Backend::Sqlite(s)) => {
                        sqlx::query(&select).fetch(&mut **s).map(|r| values_of(t, r, sqlite_value)).boxed()
                    }
                    Some(Backend::Postgres(s)) => {
                        sqlx::query(&select).fetch(&mut **s).map(|r| values_of(t, r, pg_value)).boxed()
                    }
                    None => unreachable!("the snapshot is taken before the tables and kept to the end"),
                };
                while let Some(values) = rows.try_next().await? {
                    batch.push(values);
                    if batch.len() == per_batch {
                        insert(&mut tx, t, &batch).await?;
                        count += batch.len() as u64;
                        batch.clear();
                        progress(&t.name, count);
                    }
                }
            }
            if !batch.is_empty() {
                insert(&mut tx, t, &batch).await?;
                count += batch.len() as u64;
            }
            progress(&t.name, count);
            if let Backend::Postgres(pt) = &mut tx {
                if t.columns.iter().any(|(c, k)| c == "id" && *k == Kind::Integer) {
                    // Identity columns: the next id comes after the copied ones.
                    sqlx::query(&format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE((SELECT max(id) FROM {0}), 0) + 1, false)
                         WHERE pg_get_serial_sequence('{0}', 'id') IS NOT NULL",
                        t.name
                    ))
                    .execute(&mut **pt)
                    .await?;
                }
            }
            copied.push((t.name.clone(), count));
        }
        tx.commit().await?;
        if let Some(s) = snapshot {
            s.rollback().await?;
        }
        Ok(copied)
    }

    /// Rows per table (every table but sqlx's own), by name, for comparing two stores.
    pub async fn table_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let names: Vec<String> = match &self.db {
            Backend::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                       AND name <> '_sqlx_migrations'",
                )
                .fetch_all(p)
                .await?
            }
            Backend::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                        AND table_name <> '_sqlx_migrations'",
                )
                .fetch_all(p)
                .await?
            }
        };
        let mut out = BTreeMap::new();
        for name in names {
            let n: i64 =
                super::on!(&self.db, |e, sql| sqlx::query_scalar(&sql(&format!("SELECT count(*) FROM {name}")))
                    .fetch_one(e)
                    .await)?;
            out.insert(name, n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_storage_kinds() {
        assert_eq!(Kind::of("INTEGER"), Kind::Integer);
        assert_eq!(Kind::of("real"), Kind::Real);
        assert_eq!(Kind::of("BLOB"), Kind::Blob);
        assert_eq!(Kind::of("TEXT"), Kind::Text);
    }
}
