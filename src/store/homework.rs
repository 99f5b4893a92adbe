//! Homework, check-ins, excuses, the evidence the engine judges from, and the verdict cache.

use super::ingest::mark_dirty;
use super::on;
use super::{codec, packed, Store, StoreError};
use crate::engine::evidence::{ActivityRec, CheckinRec, DailyValue, Evidence, SetRec};
use crate::engine::judge::Homework;
use crate::engine::rule::Rule;
use crate::model::{Category, ClientId, Metric};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::borrow::Cow;
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
            client: r.2.into(),
            text: r.3.into(),
            rule,
            from: date(&r.5)?,
            until: r.6.as_deref().map(date).transpose()?,
        },
    })
}

const HOMEWORK_SELECT: &str = "SELECT h.id, h.client_id, c.name, h.text, h.rule, h.from_date, h.until_date
                               FROM homework h JOIN clients c ON c.id = h.client_id";

/// A strength set as packed: activity id, start, exercise, reps, duration.
#[derive(Deserialize)]
struct SetPacked(i64, Option<i64>, String, Option<i64>, #[serde(deserialize_with = "packed::opt_real")] Option<f64>);

/// An activity as packed, in the order the statement lists the columns.
#[derive(Deserialize)]
struct ActivityPacked<'a> {
    id: i64,
    source: String,
    start_ms: i64,
    end_ms: i64,
    utc_offset_s: i64,
    activity_type: String,
    #[serde(borrow)]
    category: Cow<'a, str>,
    #[serde(deserialize_with = "packed::real")]
    duration_s: f64,
    #[serde(deserialize_with = "packed::opt_real")]
    avg_hr: Option<f64>,
    max_hr: Option<i64>,
    /// Hex of the codec points.
    hr_hist: Option<&'a str>,
    hr_samples: i64,
    /// Hex of the content hash, for files.
    origin: Option<&'a str>,
    #[serde(deserialize_with = "packed::opt_real")]
    distance_m: Option<f64>,
    hr_zones: Option<String>,
}

/// A daily metric as packed: date, metric, source, value.
#[derive(Deserialize)]
struct DailyPacked<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    String,
    #[serde(deserialize_with = "packed::real")] f64,
);

/// A check-in as packed: id, homework id, date, value, note.
#[derive(Deserialize)]
struct CheckinPacked(
    i64,
    Option<i64>,
    String,
    #[serde(deserialize_with = "packed::opt_real")] Option<f64>,
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
        let id: i64 = on!(&self.db, |e, sql| {
            sqlx::query_scalar(&sql(
            "INSERT INTO homework (client_id, text, rule, from_date, until_date, created_ms) VALUES (?, ?, ?, ?, ?, ?)
             RETURNING id",
        ))
        .bind(client)
        .bind(rule.to_string())
        .bind(json)
        .bind(from.to_string())
        .bind(until.map(|d| d.to_string()))
        .bind(Store::now_ms())
        .fetch_one(e)
        .await
        })?;
        self.homework(id).await
    }

    pub async fn homework(&self, id: i64) -> Result<HomeworkRow, StoreError> {
        let row: Option<HomeworkSql> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{HOMEWORK_SELECT} WHERE h.id = ?")))
                .bind(id)
                .fetch_optional(e)
                .await)?;
        homework_row(row.ok_or_else(|| StoreError::NotFound(format!("homework #{id}")))?)
    }

    /// Every homework, or one client's, by id.
    pub async fn list_homework(&self, client: Option<ClientId>) -> Result<Vec<HomeworkRow>, StoreError> {
        // `? IS NULL` lets one statement serve both: every client, or just one.
        let rows: Vec<HomeworkSql> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{HOMEWORK_SELECT} WHERE ? IS NULL OR h.client_id = ? ORDER BY c.name COLLATE NOCASE, h.id"
        )))
        .bind(client)
        .bind(client)
        .fetch_all(e)
        .await)?;
        rows.into_iter().map(homework_row).collect()
    }

    /// Set the last day a homework applies; cached verdicts after it are dropped.
    pub async fn end_homework(&self, id: i64, until: NaiveDate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = on!(&mut tx, |e, sql| sqlx::query(&sql("UPDATE homework SET until_date = ? WHERE id = ?"))
            .bind(until.to_string())
            .bind(id)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("homework #{id}")));
        }
        // A weekly occurrence may straddle the end.
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM verdicts WHERE homework_id = ? AND month >= ?"))
            .bind(id)
            .bind(super::verdicts::month_of(until - Duration::days(7)))
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
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
        let mut tx = self.write().await?;
        let id: i64 = on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO checkins (client_id, homework_id, date, value, note, origin, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(client)
        .bind(homework)
        .bind(on.to_string())
        .bind(value)
        .bind(note)
        .bind(origin)
        .bind(Store::now_ms())
        .fetch_one(&mut **e)
        .await)?;
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
        let mut tx = self.write().await?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO excuses (homework_id, date, reason, created_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (homework_id, date) DO UPDATE SET reason = excluded.reason",
        ))
        .bind(homework)
        .bind(on.to_string())
        .bind(reason)
        .bind(Store::now_ms())
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
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
        // Each client's own span (start times in ms, and days), to keep only its rows when
        // the spans differ.
        type Span = ((i64, i64), (NaiveDate, NaiveDate));
        let own: HashMap<ClientId, Span> = wanted.iter().map(|&(c, _, f, t)| (c, (span(f, t), days(f, t)))).collect();
        let ids = serde_json::to_string(&own.keys().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into());
        let in_span = |c: ClientId, ms: i64| own.get(&c).is_some_and(|((lo, hi), _)| ms >= *lo && ms < *hi);
        let on_day = |c: ClientId, d: NaiveDate| own.get(&c).is_some_and(|(_, (lo, hi))| d >= *lo && d <= *hi);
        // Each statement gives one row per client: its rows packed into a JSON array.
        let by_time = |sql: String| packed::rows(&self.db, sql, ids.clone(), lo_ms, hi_ms);
        let by_date = |sql: String| packed::rows(&self.db, sql, ids.clone(), d_lo.clone(), d_hi.clone());
        let p = packed::Packing::of(&self.db);
        let (agg, end, arr, in_ids) = (p.agg, p.end, p.arr, p.ids);
        let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("{what}: {e}"));

        let set_rows = by_time(format!(
            "SELECT a.client_id, {agg}{arr}(s.activity_id, s.start_ms, s.exercise, s.reps, {})
                     ORDER BY s.activity_id, s.seq{end}
                 FROM strength_sets s JOIN activities a ON a.id = s.activity_id
                 WHERE a.client_id IN ({in_ids}) AND a.start_ms >= ? AND a.start_ms < ?
                   AND s.set_type = 'active' AND (s.reps > 0 OR s.duration_s > 0)
                 GROUP BY a.client_id",
            p.real("s.duration_s")
        ))
        .await?;
        let mut sets_by: HashMap<i64, Vec<SetRec>> = HashMap::new();
        for (_, json) in &set_rows {
            let sets: Vec<SetPacked> = serde_json::from_str(json).map_err(|e| corrupt("strength sets", e))?;
            for s in sets {
                sets_by.entry(s.0).or_default().push(SetRec {
                    start: s.1.and_then(DateTime::from_timestamp_millis),
                    exercise: s.2,
                    reps: s.3.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
                    duration_s: s.4.filter(|d| d.is_finite() && *d > 0.0),
                });
            }
        }
        let activity_rows = by_time(format!(
            "SELECT client_id, {agg}{arr}(id, source, start_ms, end_ms, utc_offset_s, type, category,
                     {}, {}, max_hr, {}, hr_samples,
                     CASE WHEN source IN ('fit', 'tcx', 'gpx') THEN {} END,
                     {}, hr_zones) ORDER BY start_ms, id{end}
                 FROM activities WHERE client_id IN ({in_ids}) AND start_ms >= ? AND start_ms < ?
                 GROUP BY client_id",
            p.real("duration_s"),
            p.real("avg_hr"),
            p.hex("hr_hist"),
            p.hex("content_hash"),
            p.real("distance_m")
        ))
        .await?;
        let mut activities: HashMap<ClientId, Vec<ActivityRec>> = HashMap::new();
        let mut points = Vec::new();
        for (c, json) in &activity_rows {
            let rows: Vec<ActivityPacked> = serde_json::from_str(json).map_err(|e| corrupt("activities", e))?;
            let mine = activities.entry(*c).or_default();
            for r in rows {
                if !in_span(*c, r.start_ms) {
                    continue;
                }
                let mut hr_hist = Vec::new();
                if let Some(hex) = r.hr_hist {
                    let blob = crate::crypto::unhex(hex)
                        .ok_or_else(|| StoreError::Corrupt(format!("hr histogram of activity #{}", r.id)))?;
                    points.clear();
                    codec::decode(&blob, &mut points)
                        .map_err(|e| StoreError::Corrupt(format!("hr histogram of activity #{}: {e}", r.id)))?;
                    hr_hist = points
                        .iter()
                        .filter_map(|&(bpm, ms)| Some((u16::try_from(bpm).ok()?, ms as f64 / 1000.0)))
                        .collect();
                }
                let hr_zones = match &r.hr_zones {
                    Some(json) => Some(
                        serde_json::from_str(json)
                            .map_err(|e| StoreError::Corrupt(format!("heart-rate zones of activity #{}: {e}", r.id)))?,
                    ),
                    None => None,
                };
                let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
                mine.push(ActivityRec {
                    id: r.id,
                    source: r.source,
                    start: at(r.start_ms),
                    end: at(r.end_ms),
                    utc_offset_s: i32::try_from(r.utc_offset_s).unwrap_or(0),
                    category: Category::parse(&r.category).unwrap_or(Category::Other),
                    activity_type: r.activity_type,
                    duration_s: r.duration_s,
                    distance_m: r.distance_m.filter(|d| d.is_finite() && *d >= 0.0),
                    avg_hr: r.avg_hr,
                    max_hr: r.max_hr.and_then(|v| u16::try_from(v).ok()),
                    hr_hist,
                    hr_samples: u32::try_from(r.hr_samples).unwrap_or(0),
                    hr_zones,
                    sets: sets_by.remove(&r.id).unwrap_or_default(),
                    origin: r.origin.and_then(crate::crypto::unhex),
                });
            }
        }
        let daily_rows = by_date(format!(
            "SELECT client_id, {agg}{arr}(date, metric, source, {}) ORDER BY date, metric, source{end}
                 FROM daily_metrics WHERE client_id IN ({in_ids}) AND date BETWEEN ? AND ?
                 GROUP BY client_id",
            p.real("value")
        ))
        .await?;
        let mut daily: HashMap<ClientId, Vec<DailyValue>> = HashMap::new();
        for (c, json) in &daily_rows {
            let rows: Vec<DailyPacked> = serde_json::from_str(json).map_err(|e| corrupt("daily metrics", e))?;
            let mine = daily.entry(*c).or_default();
            for r in rows {
                let (Ok(d), Some(metric)) = (r.0.parse(), Metric::parse(&r.1)) else { continue };
                if on_day(*c, d) {
                    mine.push(DailyValue { date: d, metric, source: r.2, value: r.3 });
                }
            }
        }
        let checkin_rows = by_date(format!(
            "SELECT client_id, {agg}{arr}(id, homework_id, date, {}, note) ORDER BY date, id{end}
                 FROM checkins WHERE client_id IN ({in_ids}) AND date BETWEEN ? AND ?
                 GROUP BY client_id",
            p.real("value")
        ))
        .await?;
        let mut checkins: HashMap<ClientId, Vec<CheckinRec>> = HashMap::new();
        for (c, json) in &checkin_rows {
            let rows: Vec<CheckinPacked> = serde_json::from_str(json).map_err(|e| corrupt("check-ins", e))?;
            for r in rows {
                let d = date(&r.2)?;
                if on_day(*c, d) {
                    checkins.entry(*c).or_default().push(CheckinRec {
                        id: r.0,
                        homework_id: r.1,
                        date: d,
                        value: r.3,
                        note: r.4,
                    });
                }
            }
        }
        let excuse_rows = by_date(format!(
            "SELECT h.client_id, {agg}{arr}(e.homework_id, e.date){end}
             FROM excuses e JOIN homework h ON h.id = e.homework_id
             WHERE h.client_id IN ({in_ids}) AND e.date BETWEEN ? AND ?
             GROUP BY h.client_id"
        ))
        .await?;
        let mut excused: HashMap<ClientId, BTreeSet<(i64, NaiveDate)>> = HashMap::new();
        for (c, json) in &excuse_rows {
            let rows: Vec<(i64, Cow<str>)> = serde_json::from_str(json).map_err(|e| corrupt("excuses", e))?;
            for (hw, d) in rows {
                let d = date(&d)?;
                if on_day(*c, d) {
                    excused.entry(*c).or_default().insert((hw, d));
                }
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

    /// The homework of the given clients, each client's by id (one statement, one row).
    pub async fn homework_of(&self, clients: &[ClientId]) -> Result<HashMap<ClientId, Vec<Homework>>, StoreError> {
        let p = packed::Packing::of(&self.db);
        let (agg, end, arr, in_ids) = (p.agg, p.end, p.arr, p.ids);
        let statement = format!(
            "SELECT {agg}{arr}(h.id, h.client_id, c.name, h.text, h.rule, h.from_date, h.until_date)
                 ORDER BY h.id{end}
             FROM homework h JOIN clients c ON c.id = h.client_id
             WHERE h.client_id IN ({in_ids})"
        );
        // No homework: SQLite packs an empty array, PostgreSQL gives NULL.
        let json: Option<String> = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(&statement))
            .bind(serde_json::to_string(clients).unwrap_or_else(|_| "[]".into()))
            .fetch_one(e)
            .await)?;
        let json = json.unwrap_or_else(|| "[]".into());
        let rows: Vec<HomeworkSql> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("homework: {e}")))?;
        let mut out: HashMap<ClientId, Vec<Homework>> = HashMap::new();
        for r in rows {
            let row = homework_row(r)?;
            out.entry(row.client_id).or_default().push(row.homework);
        }
        Ok(out)
    }
}
