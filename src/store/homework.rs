//! Homework, check-ins, excuses, the evidence the engine judges from, and the verdict cache.

use super::ingest::mark_dirty;
use super::{codec, Store, StoreError};
use crate::engine::evidence::{ActivityRec, CheckinRec, DailyValue, Evidence, SetRec};
use crate::engine::judge::Homework;
use crate::engine::rule::Rule;
use crate::model::{Category, ClientId, Metric};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeSet, HashMap};

/// A homework and the client it belongs to.
#[derive(Clone, Debug)]
pub struct HomeworkRow {
    pub client_id: ClientId,
    pub homework: Homework,
}

type HomeworkSql = (i64, i64, String, String, String, String, Option<String>);

fn date(s: &str) -> Result<NaiveDate, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("stored date {s:?}")))
}

fn homework_row(r: HomeworkSql) -> Result<HomeworkRow, StoreError> {
    let rule: Rule =
        serde_json::from_str(&r.4).map_err(|e| StoreError::Corrupt(format!("rule of homework #{}: {e}", r.0)))?;
    Ok(HomeworkRow {
        client_id: r.1,
        homework: Homework {
            id: r.0,
            client: r.2,
            text: r.3,
            rule,
            from: date(&r.5)?,
            until: r.6.as_deref().map(date).transpose()?,
        },
    })
}

const HOMEWORK_SELECT: &str = "SELECT h.id, h.client_id, c.name, h.text, h.rule, h.from_date, h.until_date
                               FROM homework h JOIN clients c ON c.id = h.client_id";

/// activity id, start, exercise, reps, duration.
type SetSql = (i64, Option<i64>, String, Option<i64>, Option<f64>);

type ActivitySql = (
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    f64,
    Option<f64>,
    Option<i64>,
    Option<Vec<u8>>,
    i64,
    Option<Vec<u8>>,
    Option<f64>,
    Option<String>,
);

impl Store {
    pub async fn add_homework(
        &self,
        client: ClientId,
        rule: &Rule,
        from: NaiveDate,
        until: Option<NaiveDate>,
    ) -> Result<HomeworkRow, StoreError> {
        let json = serde_json::to_string(rule).map_err(|e| StoreError::Invalid(vec![e.to_string()]))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO homework (client_id, text, rule, from_date, until_date, created_ms) VALUES (?, ?, ?, ?, ?, ?)
             RETURNING id",
        )
        .bind(client)
        .bind(rule.to_string())
        .bind(json)
        .bind(from.to_string())
        .bind(until.map(|d| d.to_string()))
        .bind(Store::now_ms())
        .fetch_one(&self.pool)
        .await?;
        self.homework(id).await
    }

    pub async fn homework(&self, id: i64) -> Result<HomeworkRow, StoreError> {
        let row: Option<HomeworkSql> =
            sqlx::query_as(&format!("{HOMEWORK_SELECT} WHERE h.id = ?")).bind(id).fetch_optional(&self.pool).await?;
        homework_row(row.ok_or_else(|| StoreError::NotFound(format!("homework #{id}")))?)
    }

    /// Every homework, or one client's, by id.
    pub async fn list_homework(&self, client: Option<ClientId>) -> Result<Vec<HomeworkRow>, StoreError> {
        // `? IS NULL` lets one statement serve both: every client, or just one.
        let rows: Vec<HomeworkSql> = sqlx::query_as(&format!(
            "{HOMEWORK_SELECT} WHERE ? IS NULL OR h.client_id = ? ORDER BY c.name COLLATE NOCASE, h.id"
        ))
        .bind(client)
        .bind(client)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(homework_row).collect()
    }

    /// Set the last day a homework applies; cached verdicts after it are dropped.
    pub async fn end_homework(&self, id: i64, until: NaiveDate) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("UPDATE homework SET until_date = ? WHERE id = ?")
            .bind(until.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("homework #{id}")));
        }
        // A weekly occurrence may straddle the end.
        sqlx::query("DELETE FROM verdicts WHERE homework_id = ? AND month >= ?")
            .bind(id)
            .bind(super::verdicts::month_of(until - Duration::days(7)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_checkin(
        &self,
        client: ClientId,
        homework: i64,
        on: NaiveDate,
        value: Option<f64>,
        note: Option<&str>,
        origin: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO checkins (client_id, homework_id, date, value, note, origin, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(client)
        .bind(homework)
        .bind(on.to_string())
        .bind(value)
        .bind(note)
        .bind(origin)
        .bind(Store::now_ms())
        .fetch_one(&mut *tx)
        .await?;
        mark_dirty(&mut tx, client, on).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Excuse a day (idempotent; a new reason replaces the old one).
    pub async fn excuse(
        &self,
        client: ClientId,
        homework: i64,
        on: NaiveDate,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO excuses (homework_id, date, reason, created_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (homework_id, date) DO UPDATE SET reason = excluded.reason",
        )
        .bind(homework)
        .bind(on.to_string())
        .bind(reason)
        .bind(Store::now_ms())
        .execute(&mut *tx)
        .await?;
        mark_dirty(&mut tx, client, on).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Everything the engine needs to judge a client's dates `[from, to]`.
    pub async fn evidence(
        &self,
        client: ClientId,
        tz: Tz,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Evidence, StoreError> {
        Ok(self.evidence_of(&[(client, tz, from, to)]).await?.remove(&client).unwrap_or_default())
    }

    /// The evidence of several clients, each for its own dates `[from, to]`: five
    /// statements for all of them, whatever their number.
    pub async fn evidence_of(
        &self,
        wanted: &[(ClientId, Tz, NaiveDate, NaiveDate)],
    ) -> Result<HashMap<ClientId, Evidence>, StoreError> {
        let (Some(from), Some(to)) = (wanted.iter().map(|w| w.2).min(), wanted.iter().map(|w| w.3).max()) else {
            return Ok(HashMap::new());
        };
        // Local dates map to UTC within ±14 h; workouts last at most two days; nightly
        // windows reach into the next morning and sleep is dated by the wake-up day.
        let span = |from: NaiveDate, to: NaiveDate| {
            let lo = from.and_time(chrono::NaiveTime::MIN).and_utc() - Duration::days(3);
            let hi = to.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::days(3);
            (lo.timestamp_millis(), hi.timestamp_millis())
        };
        let days = |from: NaiveDate, to: NaiveDate| (from - Duration::days(2), to + Duration::days(2));
        let (lo_ms, hi_ms) = span(from, to);
        let (d_lo, d_hi) = days(from, to);
        let (d_lo, d_hi) = (d_lo.to_string(), d_hi.to_string());
        // Each client's own span, to keep only its rows when the spans differ.
        let own: HashMap<ClientId, ((i64, i64), (NaiveDate, NaiveDate))> =
            wanted.iter().map(|&(c, _, f, t)| (c, (span(f, t), days(f, t)))).collect();
        let ids = serde_json::to_string(&own.keys().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into());
        let in_span = |c: ClientId, ms: i64| own.get(&c).is_some_and(|((lo, hi), _)| ms >= *lo && ms < *hi);
        let on_day = |c: ClientId, d: NaiveDate| own.get(&c).is_some_and(|(_, (lo, hi))| d >= *lo && d <= *hi);

        let rows: Vec<ActivitySql> = sqlx::query_as(
            "SELECT id, client_id, source, start_ms, end_ms, utc_offset_s, type, category, duration_s, avg_hr, max_hr,
                    hr_hist, hr_samples, CASE WHEN source IN ('fit', 'tcx', 'gpx') THEN content_hash END, distance_m,
                    hr_zones
             FROM activities WHERE client_id IN (SELECT value FROM json_each(?)) AND start_ms >= ? AND start_ms < ?
             ORDER BY client_id, start_ms",
        )
        .bind(&ids)
        .bind(lo_ms)
        .bind(hi_ms)
        .fetch_all(&self.pool)
        .await?;
        let sets: Vec<SetSql> = sqlx::query_as(
            "SELECT s.activity_id, s.start_ms, s.exercise, s.reps, s.duration_s FROM strength_sets s
             JOIN activities a ON a.id = s.activity_id
             WHERE a.client_id IN (SELECT value FROM json_each(?)) AND a.start_ms >= ? AND a.start_ms < ?
               AND s.set_type = 'active' AND (s.reps > 0 OR s.duration_s > 0)
             ORDER BY s.activity_id, s.seq",
        )
        .bind(&ids)
        .bind(lo_ms)
        .bind(hi_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut sets_by: HashMap<i64, Vec<SetRec>> = HashMap::new();
        for (id, start, exercise, reps, duration_s) in sets {
            sets_by.entry(id).or_default().push(SetRec {
                start: start.and_then(DateTime::from_timestamp_millis),
                exercise,
                reps: reps.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
                duration_s: duration_s.filter(|d| d.is_finite() && *d > 0.0),
            });
        }
        let mut activities: HashMap<ClientId, Vec<ActivityRec>> = HashMap::new();
        for r in rows {
            if !in_span(r.1, r.3) {
                continue;
            }
            let mut hr_hist = Vec::new();
            if let Some(blob) = &r.11 {
                let mut points = Vec::new();
                codec::decode(blob, &mut points)
                    .map_err(|e| StoreError::Corrupt(format!("hr histogram of activity #{}: {e}", r.0)))?;
                hr_hist = points
                    .into_iter()
                    .filter_map(|(bpm, ms)| Some((u16::try_from(bpm).ok()?, ms as f64 / 1000.0)))
                    .collect();
            }
            let hr_zones = match &r.15 {
                Some(json) => Some(
                    serde_json::from_str(json)
                        .map_err(|e| StoreError::Corrupt(format!("heart-rate zones of activity #{}: {e}", r.0)))?,
                ),
                None => None,
            };
            let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
            activities.entry(r.1).or_default().push(ActivityRec {
                id: r.0,
                source: r.2,
                start: at(r.3),
                end: at(r.4),
                utc_offset_s: i32::try_from(r.5).unwrap_or(0),
                category: Category::parse(&r.7).unwrap_or(Category::Other),
                activity_type: r.6,
                duration_s: r.8,
                distance_m: r.14.filter(|d| d.is_finite() && *d >= 0.0),
                avg_hr: r.9,
                max_hr: r.10.and_then(|v| u16::try_from(v).ok()),
                hr_hist,
                hr_samples: u32::try_from(r.12).unwrap_or(0),
                hr_zones,
                sets: sets_by.remove(&r.0).unwrap_or_default(),
                origin: r.13,
            });
        }
        let rows: Vec<(i64, String, String, String, f64)> = sqlx::query_as(
            "SELECT client_id, date, metric, source, value FROM daily_metrics
             WHERE client_id IN (SELECT value FROM json_each(?)) AND date BETWEEN ? AND ?",
        )
        .bind(&ids)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let mut daily: HashMap<ClientId, Vec<DailyValue>> = HashMap::new();
        for (c, d, m, source, value) in rows {
            let (Ok(d), Some(metric)) = (d.parse(), Metric::parse(&m)) else { continue };
            if on_day(c, d) {
                daily.entry(c).or_default().push(DailyValue { date: d, metric, source, value });
            }
        }
        let rows: Vec<(i64, i64, Option<i64>, String, Option<f64>, Option<String>)> = sqlx::query_as(
            "SELECT client_id, id, homework_id, date, value, note FROM checkins
             WHERE client_id IN (SELECT value FROM json_each(?)) AND date BETWEEN ? AND ?",
        )
        .bind(&ids)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let mut checkins: HashMap<ClientId, Vec<CheckinRec>> = HashMap::new();
        for (c, id, homework_id, d, value, note) in rows {
            let d = date(&d)?;
            if on_day(c, d) {
                checkins.entry(c).or_default().push(CheckinRec { id, homework_id, date: d, value, note });
            }
        }
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT h.client_id, e.homework_id, e.date FROM excuses e JOIN homework h ON h.id = e.homework_id
             WHERE h.client_id IN (SELECT value FROM json_each(?)) AND e.date BETWEEN ? AND ?",
        )
        .bind(&ids)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let mut excused: HashMap<ClientId, BTreeSet<(i64, NaiveDate)>> = HashMap::new();
        for (c, hw, d) in rows {
            let d = date(&d)?;
            if on_day(c, d) {
                excused.entry(c).or_default().insert((hw, d));
            }
        }
        Ok(wanted
            .iter()
            .map(|&(c, tz, _, _)| {
                let ev = Evidence::build(
                    tz,
                    activities.remove(&c).unwrap_or_default(),
                    daily.remove(&c).unwrap_or_default(),
                    checkins.remove(&c).unwrap_or_default(),
                    excused.remove(&c).unwrap_or_default(),
                );
                (c, ev)
            })
            .collect())
    }

    /// The homework of the given clients, each client's by id.
    pub async fn homework_of(&self, clients: &[ClientId]) -> Result<HashMap<ClientId, Vec<Homework>>, StoreError> {
        let rows: Vec<HomeworkSql> = sqlx::query_as(&format!(
            "{HOMEWORK_SELECT} WHERE h.client_id IN (SELECT value FROM json_each(?)) ORDER BY h.id"
        ))
        .bind(serde_json::to_string(clients).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<ClientId, Vec<Homework>> = HashMap::new();
        for r in rows {
            let row = homework_row(r)?;
            out.entry(row.client_id).or_default().push(row.homework);
        }
        Ok(out)
    }
}
