//! Benchmarks: tests a trainer records during a session ("max push-ups: 18 reps"), each
//! with its unit, the client's local date and, optionally, the homework it is meant to
//! show the effect of. Values are range-checked here, per unit, before anything is
//! written (the migration repeats the ranges as CHECKs).

use super::on;
use super::web::TrainerId;
use super::{Store, StoreError};
use crate::model::ClientId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

/// The unit a test is measured in. A test keeps one unit for all its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Repetitions, a whole number (max push-ups).
    Reps,
    /// Seconds (plank, dead hang).
    Seconds,
    /// Kilograms (a one-rep max).
    Kg,
    /// Kilometres per hour (sprint speed).
    Kmh,
    /// A 1-5 score (squat form).
    Score,
}

impl Unit {
    pub const ALL: [Unit; 5] = [Self::Reps, Self::Seconds, Self::Kg, Self::Kmh, Self::Score];

    /// The name stored and printed: `reps`, `s`, `kg`, `km/h`, `score`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reps => "reps",
            Self::Seconds => "s",
            Self::Kg => "kg",
            Self::Kmh => "km/h",
            Self::Score => "score",
        }
    }

    /// A unit as a person writes it (any case; `rep`, `sec`, `seconds`, `kmh`, `kph` too).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reps" | "rep" | "repetitions" => Some(Self::Reps),
            "s" | "sec" | "secs" | "second" | "seconds" => Some(Self::Seconds),
            "kg" | "kgs" | "kilograms" => Some(Self::Kg),
            "km/h" | "kmh" | "kph" => Some(Self::Kmh),
            "score" | "points" => Some(Self::Score),
            _ => None,
        }
    }

    /// The values a result in this unit may take, inclusive.
    pub fn range(self) -> (f64, f64) {
        match self {
            Self::Reps => (0.0, 10_000.0),
            Self::Seconds => (0.0, 86_400.0),
            Self::Kg => (0.0, 1_000.0),
            Self::Kmh => (0.0, 200.0),
            Self::Score => (1.0, 5.0),
        }
    }

    /// Why `value` cannot be a result in this unit, if it cannot.
    pub fn check(self, value: f64) -> Result<(), String> {
        let (lo, hi) = self.range();
        if !value.is_finite() {
            return Err(format!("{value} is not a number"));
        }
        if !(lo..=hi).contains(&value) {
            return Err(match self {
                Self::Score => format!("{} is out of range: a score is from 1 to 5", number(value)),
                _ => format!(
                    "{} {} is out of range: a result in {} is from {} to {}",
                    number(value),
                    self.as_str(),
                    self.as_str(),
                    number(lo),
                    number(hi)
                ),
            });
        }
        if self == Self::Reps && value.fract() != 0.0 {
            return Err(format!("{} reps: repetitions are a whole number", number(value)));
        }
        Ok(())
    }

    /// A result with its unit: `18 reps`, `75 s`, `4 of 5`.
    pub fn show(self, value: f64) -> String {
        match self {
            Self::Score => format!("{} of 5", number(value)),
            _ => format!("{} {}", number(value), self.as_str()),
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A number as a trainer writes it: `18`, `12.5`, `0.25` (at most two decimals).
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A benchmark ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewBenchmark {
    pub client_id: ClientId,
    /// The test, e.g. "max push-ups" (1-64 characters).
    pub name: String,
    pub unit: Unit,
    pub value: f64,
    pub note: Option<String>,
    /// The homework it is meant to show the effect of (the client's own).
    pub homework_id: Option<i64>,
    /// The client's local date of the session.
    pub date: NaiveDate,
    /// Who recorded it; None from the command line.
    pub trainer_id: Option<TrainerId>,
}

/// The longest test name, and note, a benchmark keeps.
pub const NAME_MAX: usize = 64;
pub const NOTE_MAX: usize = 500;

impl NewBenchmark {
    /// Every problem with it, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            problems.push("the test has no name; name it, e.g. \"max push-ups\"".to_string());
        } else if name.chars().count() > NAME_MAX {
            problems.push(format!("the test name {name:?} is longer than {NAME_MAX} characters"));
        } else if name.chars().any(char::is_control) {
            problems.push(format!("the test name {name:?} contains control characters"));
        }
        if let Err(e) = self.unit.check(self.value) {
            problems.push(e);
        }
        if self.note.as_ref().is_some_and(|n| n.chars().count() > NOTE_MAX) {
            problems.push(format!("the note is longer than {NOTE_MAX} characters"));
        }
        problems
    }
}

/// A stored benchmark, as `coachd benchmarks --json` and the API show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Benchmark {
    pub id: i64,
    pub client: String,
    /// The test.
    pub name: String,
    pub unit: Unit,
    pub value: f64,
    pub date: NaiveDate,
    pub note: Option<String>,
    pub homework_id: Option<i64>,
    /// The linked homework's normalized text.
    pub homework: Option<String>,
    /// The trainer who recorded it in the dashboard; None from the command line.
    pub recorded_by: Option<String>,
    pub created: DateTime<Utc>,
}

type BenchmarkSql =
    (i64, String, String, String, f64, String, Option<String>, Option<i64>, Option<String>, Option<String>, i64);

const SELECT: &str = "SELECT b.id, c.name, b.name, b.unit, b.value, b.date, b.note, b.homework_id, h.text, t.name,
                             b.created_ms
                      FROM benchmarks b JOIN clients c ON c.id = b.client_id
                      LEFT JOIN homework h ON h.id = b.homework_id LEFT JOIN trainers t ON t.id = b.trainer_id";

fn from_row(r: BenchmarkSql) -> Result<Benchmark, StoreError> {
    let unit =
        Unit::parse(&r.3).ok_or_else(|| StoreError::Corrupt(format!("benchmark #{} has unit {:?}", r.0, r.3)))?;
    let date = r.5.parse().map_err(|_| StoreError::Corrupt(format!("benchmark #{} has date {:?}", r.0, r.5)))?;
    Ok(Benchmark {
        id: r.0,
        client: r.1,
        name: r.2,
        unit,
        value: r.4,
        date,
        note: r.6,
        homework_id: r.7,
        homework: r.8,
        recorded_by: r.9,
        created: DateTime::from_timestamp_millis(r.10).unwrap_or_default(),
    })
}

impl Store {
    /// Store a benchmark. Refused (Invalid) with every problem named; a homework of
    /// another client is a Conflict. Nothing is written unless all of it is good.
    pub async fn add_benchmark(&self, b: &NewBenchmark) -> Result<Benchmark, StoreError> {
        let problems = b.problems();
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        // The homework, if any, must be this client's: checked in the same statement.
        let id: Option<i64> = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO benchmarks (client_id, name, unit, value, note, homework_id, date, trainer_id, created_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
             WHERE ?6 IS NULL OR EXISTS (SELECT 1 FROM homework WHERE id = ?6 AND client_id = ?1)
             RETURNING id",
        ))
        .bind(b.client_id)
        .bind(b.name.trim())
        .bind(b.unit.as_str())
        .bind(b.value)
        .bind(b.note.as_deref())
        .bind(b.homework_id)
        .bind(b.date.to_string())
        .bind(b.trainer_id)
        .bind(Store::now_ms())
        .fetch_optional(e)
        .await)?;
        let id = id.ok_or_else(|| {
            StoreError::Conflict(format!(
                "homework #{} is not a homework of client #{}",
                b.homework_id.unwrap_or_default(),
                b.client_id
            ))
        })?;
        self.benchmark(b.client_id, id).await
    }

    /// One of the client's benchmarks (another client's is NotFound, like a missing one).
    pub async fn benchmark(&self, client: ClientId, id: i64) -> Result<Benchmark, StoreError> {
        let row: Option<BenchmarkSql> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{SELECT} WHERE b.id = ? AND b.client_id = ?")))
                .bind(id)
                .bind(client)
                .fetch_optional(e)
                .await)?;
        from_row(row.ok_or_else(|| StoreError::NotFound(format!("benchmark #{id}")))?)
    }

    /// The client's benchmarks, of one test (any case) or all, by test, then oldest first.
    pub async fn benchmarks(&self, client: ClientId, name: Option<&str>) -> Result<Vec<Benchmark>, StoreError> {
        let name = name.map(str::trim);
        let rows: Vec<BenchmarkSql> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{SELECT} WHERE b.client_id = ? AND (? IS NULL OR b.name = ? COLLATE NOCASE)
             ORDER BY b.name COLLATE NOCASE, b.date, b.id"
        )))
        .bind(client)
        .bind(name)
        .bind(name)
        .fetch_all(e)
        .await)?;
        rows.into_iter().map(from_row).collect()
    }

    /// The name (as first written) and unit of a test the client has results for.
    pub async fn benchmark_test(&self, client: ClientId, name: &str) -> Result<Option<(String, Unit)>, StoreError> {
        let row: Option<(String, String)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT name, unit FROM benchmarks WHERE client_id = ? AND name = ? COLLATE NOCASE ORDER BY id LIMIT 1",
        ))
        .bind(client)
        .bind(name.trim())
        .fetch_optional(e)
        .await)?;
        row.map(|(name, unit)| {
            let unit = Unit::parse(&unit).ok_or_else(|| StoreError::Corrupt(format!("benchmark unit {unit:?}")))?;
            Ok((name, unit))
        })
        .transpose()
    }

    /// Delete one of the client's benchmarks; returns what it was.
    pub async fn remove_benchmark(&self, client: ClientId, id: i64) -> Result<Benchmark, StoreError> {
        let gone = self.benchmark(client, id).await?;
        let done = on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM benchmarks WHERE id = ? AND client_id = ?"))
            .bind(id)
            .bind(client)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("benchmark #{id}")));
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_check_their_ranges() {
        for u in Unit::ALL {
            assert_eq!(Unit::parse(u.as_str()), Some(u));
            assert_eq!(Unit::parse(&u.as_str().to_uppercase()), Some(u));
        }
        assert_eq!(Unit::parse("seconds"), Some(Unit::Seconds));
        assert_eq!(Unit::parse("furlongs"), None);
        assert!(Unit::Reps.check(18.0).is_ok());
        assert!(Unit::Reps.check(0.0).is_ok(), "zero pull-ups is a result");
        assert!(Unit::Reps.check(18.5).unwrap_err().contains("whole number"));
        assert!(Unit::Reps.check(-1.0).unwrap_err().contains("out of range"));
        assert!(Unit::Score.check(0.0).unwrap_err().contains("from 1 to 5"));
        assert!(Unit::Score.check(4.5).is_ok());
        assert!(Unit::Score.check(6.0).is_err());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Unit::Seconds.check(bad).unwrap_err().contains("not a number"), "{bad}");
        }
        assert!(Unit::Kmh.check(250.0).is_err());
        assert!(Unit::Kg.check(1000.0).is_ok() && Unit::Kg.check(1000.5).is_err());
    }

    #[test]
    fn numbers_read_as_written() {
        assert_eq!(number(18.0), "18");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.0 / 3.0), "0.33");
        assert_eq!(Unit::Score.show(4.0), "4 of 5");
        assert_eq!(Unit::Seconds.show(75.0), "75 s");
    }

    #[test]
    fn a_new_benchmark_names_every_problem() {
        let b = NewBenchmark {
            client_id: 1,
            name: " ".into(),
            unit: Unit::Score,
            value: 9.0,
            note: Some("x".repeat(NOTE_MAX + 1)),
            homework_id: None,
            date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("date"),
            trainer_id: None,
        };
        let p = b.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("no name") && p[1].contains("from 1 to 5") && p[2].contains("note"));
    }
}
