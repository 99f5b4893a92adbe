//! Reading many rows as one: a client's rows packed by SQLite into one JSON array.
//!
//! The driver hands each row to the async side on its own, with a copy of every value:
//! a year of a roster's evidence is a quarter of a million rows, and that handing over,
//! not SQLite, was most of the time of reading them. The statements that read in bulk
//! therefore ask SQLite for one JSON array per client (`json_group_array`), which
//! crosses as one value and is decoded here by serde, borrowing where it can.
//!
//! JSON numbers from SQLite keep only 15 significant digits, so a REAL goes through
//! [`Packing::real`] (`printf('%!.17g', x)`: 17 digits, which give the same double back)
//! and is read with [`real`]/[`opt_real`]; a BLOB goes as hex.
//!
//! PostgreSQL packs the same arrays with its own functions (`json_agg`,
//! `json_build_array`), its shortest exact text for a double and `encode(x, 'hex')`, so
//! the decoding here is one for both; [`Packing`] spells each piece per database.

use super::{on, Db, StoreError};
use serde::de::{Deserialize, Deserializer, Error};
use sqlx::{Encode, Postgres, Sqlite, Type};

/// The pieces of a packing statement, in the store's database's dialect.
#[derive(Clone, Copy)]
pub struct Packing {
    /// The aggregate that packs rows into one JSON array (as text).
    pub agg: &'static str,
    /// Its closing: PostgreSQL's JSON is cast to text.
    pub end: &'static str,
    /// A row as a JSON array.
    pub arr: &'static str,
    /// The client ids, bound as one JSON array of numbers.
    pub ids: &'static str,
    pg: bool,
}

impl Packing {
    pub fn of(db: &Db) -> Self {
        match db {
            super::Backend::Sqlite(_) => Self {
                agg: "json_group_array(",
                end: ")",
                arr: "json_array",
                ids: "SELECT value FROM json_each(?)",
                pg: false,
            },
            super::Backend::Postgres(_) => Self {
                agg: "CAST(json_agg(",
                end: ") AS TEXT)",
                arr: "json_build_array",
                ids: "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(? AS JSON))",
                pg: true,
            },
        }
    }

    /// A REAL column so that it reads back exactly (NULL stays NULL).
    pub fn real(&self, column: &str) -> String {
        if self.pg {
            format!("CAST({column} AS TEXT)")
        } else {
            format!("CASE WHEN {column} IS NOT NULL THEN printf('%!.17g', {column}) END")
        }
    }

    /// The client ids as [`Packing::ids`], bound at placeholder `?N`.
    pub fn ids_at(&self, n: u8) -> String {
        self.ids.replace("(?)", &format!("(?{n})")).replace("(? AS", &format!("(?{n} AS"))
    }

    /// `JOIN` the JSON array of `[homework, month]` pairs bound at the `?` to the
    /// verdicts `v`.
    pub fn month_pairs(&self) -> &'static str {
        if self.pg {
            "JOIN json_array_elements(CAST(? AS JSON)) k
               ON v.homework_id = CAST(k.value ->> 0 AS BIGINT) AND v.month = CAST(k.value ->> 1 AS BIGINT)"
        } else {
            "JOIN json_each(?) k ON v.homework_id = k.value ->> 0 AND v.month = k.value ->> 1"
        }
    }

    /// A BLOB column as hex text (NULL stays NULL).
    pub fn hex(&self, column: &str) -> String {
        if self.pg {
            format!("encode({column}, 'hex')")
        } else {
            format!("CASE WHEN {column} IS NOT NULL THEN hex({column}) END")
        }
    }
}

/// Run a statement that takes a JSON array of client ids and two bounds and gives
/// (client id, packed rows) per client.
pub async fn rows<A, B>(db: &Db, sql: String, ids: String, lo: A, hi: B) -> Result<Vec<(i64, String)>, StoreError>
where
    A: for<'q> Encode<'q, Sqlite> + Type<Sqlite> + for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + 'static,
    B: for<'q> Encode<'q, Sqlite> + Type<Sqlite> + for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + 'static,
{
    Ok(on!(db, |e, dialect| sqlx::query_as(&dialect(&sql)).bind(ids).bind(lo).bind(hi).fetch_all(e).await)?)
}

/// A REAL rendered by [`Packing::real`].
pub fn real<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let s: &str = Deserialize::deserialize(d)?;
    s.parse().map_err(|_| D::Error::custom(format!("not a number: {s:?}")))
}

/// A nullable REAL rendered by [`real_sql`].
pub fn opt_real<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let s: Option<&str> = Deserialize::deserialize(d)?;
    s.map(|s| s.parse().map_err(|_| D::Error::custom(format!("not a number: {s:?}")))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    struct Row(#[serde(deserialize_with = "real")] f64, #[serde(deserialize_with = "opt_real")] Option<f64>);

    async fn round_trip(values: &[f64]) -> Vec<f64> {
        let pool =
            sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.expect("db");
        sqlx::query("CREATE TABLE t (i INTEGER PRIMARY KEY, x REAL)").execute(&pool).await.expect("table");
        for (i, v) in values.iter().enumerate() {
            sqlx::query("INSERT INTO t VALUES (?, ?)").bind(i as i64).bind(v).execute(&pool).await.expect("insert");
        }
        let json: String = sqlx::query_scalar(&format!(
            "SELECT json_group_array(json_array({}, NULL) ORDER BY i) FROM t",
            Packing::of(&super::super::Backend::Sqlite(pool.clone())).real("x")
        ))
        .fetch_one(&pool)
        .await
        .expect("select");
        let rows: Vec<Row> = serde_json::from_str(&json).expect("decode");
        assert!(rows.iter().all(|r| r.1.is_none()));
        rows.into_iter().map(|r| r.0).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        /// Every finite double comes back bit for bit (the JSON numbers SQLite writes would not).
        #[test]
        fn reals_read_back_exactly(bits in proptest::collection::vec(any::<u64>(), 500)) {
            let mut values: Vec<f64> = bits.into_iter().map(f64::from_bits).filter(|v| v.is_finite()).collect();
            values.extend([0.0, 0.1 + 0.2, 1.0 / 3.0, 137.458_333_333_333_34, f64::MIN_POSITIVE, f64::MAX, 5e-324]);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let back = rt.block_on(round_trip(&values));
            for (v, b) in values.iter().zip(&back) {
                prop_assert_eq!(v.to_bits(), b.to_bits(), "{} read back as {}", v, b);
            }
        }
    }
}
