//! Homework, check-ins, excuses, the evidence the engine judges from, and the verdict cache.

use super::ingest::mark_dirty;
use super::{codec, Store, StoreError};
use crate::engine::evidence::{ActivityRec, CheckinRec, DailyValue, Evidence, SetRec};
use crate::engine::judge::{Homework, Occurrence, Verdict};
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

/// id, homework id, date, value, note.
type CheckinSql = (i64, Option<i64>, String, Option<f64>, Option<String>);

/// activity id, start, exercise, reps, duration.
type SetSql = (i64, Option<i64>, String, Option<i64>, Option<f64>);

type ActivitySql = (
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
        sqlx::query("DELETE FROM verdicts WHERE homework_id = ? AND date > ?")
            .bind(id)
            .bind((until - Duration::days(7)).to_string()) // a weekly occurrence may straddle the end
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
        // Local dates map to UTC within ±14 h; workouts last at most two days; nightly
        // windows reach into the next morning and sleep is dated by the wake-up day.
        let lo = from.and_time(chrono::NaiveTime::MIN).and_utc() - Duration::days(3);
        let hi = to.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::days(3);
        let (lo_ms, hi_ms) = (lo.timestamp_millis(), hi.timestamp_millis());
        let rows: Vec<ActivitySql> = sqlx::query_as(
            "SELECT id, source, start_ms, end_ms, utc_offset_s, type, category, duration_s, avg_hr, max_hr, hr_hist,
                    hr_samples, CASE WHEN source IN ('fit', 'tcx', 'gpx') THEN content_hash END, distance_m, hr_zones
             FROM activities WHERE client_id = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms",
        )
        .bind(client)
        .bind(lo_ms)
        .bind(hi_ms)
        .fetch_all(&self.pool)
        .await?;
        let sets: Vec<SetSql> = sqlx::query_as(
            "SELECT s.activity_id, s.start_ms, s.exercise, s.reps, s.duration_s FROM strength_sets s
             JOIN activities a ON a.id = s.activity_id
             WHERE a.client_id = ? AND a.start_ms >= ? AND a.start_ms < ? AND s.set_type = 'active'
               AND (s.reps > 0 OR s.duration_s > 0)
             ORDER BY s.activity_id, s.seq",
        )
        .bind(client)
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
        let mut activities = Vec::with_capacity(rows.len());
        for r in rows {
            let mut hr_hist = Vec::new();
            if let Some(blob) = &r.10 {
                let mut points = Vec::new();
                codec::decode(blob, &mut points)
                    .map_err(|e| StoreError::Corrupt(format!("hr histogram of activity #{}: {e}", r.0)))?;
                hr_hist = points
                    .into_iter()
                    .filter_map(|(bpm, ms)| Some((u16::try_from(bpm).ok()?, ms as f64 / 1000.0)))
                    .collect();
            }
            let hr_zones = match &r.14 {
                Some(json) => Some(
                    serde_json::from_str(json)
                        .map_err(|e| StoreError::Corrupt(format!("heart-rate zones of activity #{}: {e}", r.0)))?,
                ),
                None => None,
            };
            let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
            activities.push(ActivityRec {
                id: r.0,
                source: r.1,
                start: at(r.2),
                end: at(r.3),
                utc_offset_s: i32::try_from(r.4).unwrap_or(0),
                category: Category::parse(&r.6).unwrap_or(Category::Other),
                activity_type: r.5,
                duration_s: r.7,
                distance_m: r.13.filter(|d| d.is_finite() && *d >= 0.0),
                avg_hr: r.8,
                max_hr: r.9.and_then(|v| u16::try_from(v).ok()),
                hr_hist,
                hr_samples: u32::try_from(r.11).unwrap_or(0),
                hr_zones,
                sets: sets_by.remove(&r.0).unwrap_or_default(),
                origin: r.12,
            });
        }
        let (d_lo, d_hi) = ((from - Duration::days(2)).to_string(), (to + Duration::days(2)).to_string());
        let daily: Vec<(String, String, String, f64)> = sqlx::query_as(
            "SELECT date, metric, source, value FROM daily_metrics WHERE client_id = ? AND date BETWEEN ? AND ?",
        )
        .bind(client)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let daily = daily
            .into_iter()
            .filter_map(|(d, m, source, value)| {
                Some(DailyValue { date: d.parse().ok()?, metric: Metric::parse(&m)?, source, value })
            })
            .collect();
        let checkins: Vec<CheckinSql> = sqlx::query_as(
            "SELECT id, homework_id, date, value, note FROM checkins WHERE client_id = ? AND date BETWEEN ? AND ?",
        )
        .bind(client)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let checkins = checkins
            .into_iter()
            .map(|(id, homework_id, d, value, note)| Ok(CheckinRec { id, homework_id, date: date(&d)?, value, note }))
            .collect::<Result<_, StoreError>>()?;
        let excuses: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.homework_id, e.date FROM excuses e JOIN homework h ON h.id = e.homework_id
             WHERE h.client_id = ? AND e.date BETWEEN ? AND ?",
        )
        .bind(client)
        .bind(&d_lo)
        .bind(&d_hi)
        .fetch_all(&self.pool)
        .await?;
        let excused: BTreeSet<(i64, NaiveDate)> =
            excuses.into_iter().map(|(h, d)| Ok((h, date(&d)?))).collect::<Result<_, StoreError>>()?;
        Ok(Evidence::build(tz, activities, daily, checkins, excused))
    }

    /// Drop the cached verdicts that a client's changed dates can affect, and forget
    /// those dates, in one transaction. `affected` maps a changed date to the
    /// (homework, occurrence date) pairs it can move.
    pub async fn invalidate_dirty(
        &self,
        client: ClientId,
        affected: impl Fn(NaiveDate) -> Vec<(i64, NaiveDate)>,
    ) -> Result<usize, StoreError> {
        // The common case, nothing changed, must not take the write lock.
        let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM dirty_dates WHERE client_id = ? LIMIT 1")
            .bind(client)
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let dirty: Vec<String> = sqlx::query_scalar("SELECT date FROM dirty_dates WHERE client_id = ?")
            .bind(client)
            .fetch_all(&mut *tx)
            .await?;
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut keys: HashMap<i64, BTreeSet<NaiveDate>> = HashMap::new();
        for d in &dirty {
            for (hw, on) in affected(date(d)?) {
                keys.entry(hw).or_default().insert(on);
            }
        }
        let mut count = 0;
        for (hw, dates) in &keys {
            count += dates.len();
            let list: Vec<String> = dates.iter().map(ToString::to_string).collect();
            let list = serde_json::to_string(&list).map_err(|e| StoreError::Invalid(vec![e.to_string()]))?;
            sqlx::query("DELETE FROM verdicts WHERE homework_id = ? AND date IN (SELECT value FROM json_each(?))")
                .bind(hw)
                .bind(list)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM dirty_dates WHERE client_id = ?").bind(client).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// Cached verdicts (homework, date, verdict) of a client's homework with dates in `[from, to]`.
    pub async fn cached_verdicts(
        &self,
        client: ClientId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(i64, NaiveDate, Verdict)>, StoreError> {
        // One row per homework ("date:verdict,..."), not one per day: a year of verdicts
        // for 200 clients is 230,000 rows otherwise.
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT v.homework_id, group_concat(v.date || ':' || v.verdict) FROM verdicts v
             JOIN homework h ON h.id = v.homework_id
             WHERE h.client_id = ? AND v.date BETWEEN ? AND ? GROUP BY v.homework_id",
        )
        .bind(client)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (hw, list) in rows {
            for item in list.split(',') {
                let (d, v) =
                    item.split_once(':').ok_or_else(|| StoreError::Corrupt(format!("cached verdict {item:?}")))?;
                let verdict = Verdict::parse(v).ok_or_else(|| StoreError::Corrupt(format!("cached verdict {v:?}")))?;
                out.push((hw, date(d)?, verdict));
            }
        }
        Ok(out)
    }

    /// Cached occurrences, in full, of a client's homework with dates in `[from, to]`.
    pub async fn cached_occurrences(
        &self,
        client: ClientId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Occurrence>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT v.occurrence FROM verdicts v JOIN homework h ON h.id = v.homework_id
             WHERE h.client_id = ? AND v.date BETWEEN ? AND ?",
        )
        .bind(client)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(json,)| serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("cached verdict: {e}"))))
            .collect()
    }

    /// Cache final verdicts: one statement for the lot (rows unpacked by SQLite's json_each).
    pub async fn save_verdicts(&self, occurrences: &[Occurrence]) -> Result<(), StoreError> {
        if occurrences.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_string(occurrences).map_err(|e| StoreError::Invalid(vec![e.to_string()]))?;
        sqlx::query(
            "INSERT OR REPLACE INTO verdicts (homework_id, date, verdict, occurrence)
             SELECT j.value ->> 'homework_id', j.value ->> 'date', j.value ->> 'verdict', j.value FROM json_each(?) j",
        )
        .bind(json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drop every cached verdict when the settings that shaped them changed.
    pub async fn check_verdict_settings(&self, fingerprint: &str) -> Result<bool, StoreError> {
        // Read first: only a change of settings takes the write lock.
        let current: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'verdict_settings'")
            .fetch_optional(&self.pool)
            .await?;
        if current.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let stored: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'verdict_settings'")
            .fetch_optional(&mut *tx)
            .await?;
        if stored.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM verdicts").execute(&mut *tx).await?;
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('verdict_settings', ?)")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
