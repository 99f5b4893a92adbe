//! Ingest: one batch and its cursor in one transaction, upserting by
//! (source, external id). Replaying a batch writes nothing; a failure leaves nothing.
//!
//! Buckets are summed into their local day, except `sleep_start` buckets: each is a
//! stretch asleep (stored at its end, its start in Unix seconds as the value), and the
//! nights they make give the wake-up day's `sleep_start` and `sleep_end`, derived again
//! from every stored stretch of the source, so pushes that each carry part of a night
//! give the whole night's bed and wake times.

use super::codec;
use super::{on, Tx};
use super::{Store, StoreError};
use crate::model::{ActivityId, Batch, IngestReport, Metric, NewActivity, Sample, Series, SeriesKind, StrengthSet};
use crate::sleep;
use crate::time::{local, local_dates};
use std::collections::BTreeMap;

/// A sample chunk covers this much time. Measured with benches/ingest.rs: 15 minutes of
/// 1 Hz heart rate is ~1.8 KB, small enough to rewrite on every BLE flush and large
/// enough that per-row overhead stays under 0.1 byte per sample.
pub(super) const CHUNK_MS: i64 = 15 * 60 * 1000;

/// The stored scalar fields of an activity, compared to decide whether an upsert changes anything.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct ActivityFields {
    client_id: i64,
    start_ms: i64,
    end_ms: i64,
    utc_offset_s: i64,
    r#type: String,
    category: String,
    duration_s: f64,
    distance_m: Option<f64>,
    avg_hr: Option<f64>,
    max_hr: Option<i64>,
    energy_kj: Option<f64>,
    content_hash: Option<Vec<u8>>,
    /// [`crate::model::ZoneTime`] as JSON.
    hr_zones: Option<String>,
}

impl ActivityFields {
    fn of(a: &NewActivity) -> Self {
        Self {
            client_id: a.client_id,
            start_ms: a.start.timestamp_millis(),
            end_ms: a.end.timestamp_millis(),
            utc_offset_s: i64::from(a.utc_offset_s),
            r#type: a.activity_type.clone(),
            category: a.category.as_str().to_string(),
            duration_s: a.duration_s,
            distance_m: a.distance_m,
            avg_hr: a.avg_hr,
            max_hr: a.max_hr.map(i64::from),
            energy_kj: a.energy_kj,
            content_hash: a.content_hash.clone(),
            hr_zones: a.hr_zones.as_ref().and_then(|z| serde_json::to_string(z).ok()),
        }
    }
}

enum Upsert {
    Inserted,
    Updated,
    Unchanged,
}

impl Store {
    /// Store a batch and its cursor atomically.
    #[tracing::instrument(skip_all, fields(source = %batch.source, activities = batch.activities.len()))]
    pub async fn ingest(&self, batch: &Batch) -> Result<IngestReport, StoreError> {
        // IMMEDIATE takes the write lock up front, so a concurrent writer (the CLI next to
        // the daemon) waits on the busy timeout instead of failing a read-to-write upgrade.
        let mut tx = self.write().await?;
        let report = Self::ingest_in(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Store several batches in one transaction (one commit, one sync), each still all or
    /// nothing: each is written inside a savepoint, and one the store refuses (`Invalid`,
    /// `Conflict`) is rolled back alone, its error in its place in the answer. Any other
    /// failure rolls back every batch of the call.
    #[tracing::instrument(skip_all, fields(batches = batches.len()))]
    pub async fn ingest_many(&self, batches: &[Batch]) -> Result<Vec<Result<IngestReport, StoreError>>, StoreError> {
        // IMMEDIATE for the reason given in `ingest`.
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut savepoint = tx.savepoint().await?;
            match Self::ingest_in(&mut savepoint, batch).await {
                Ok(report) => {
                    savepoint.commit().await?;
                    out.push(Ok(report));
                }
                Err(e @ (StoreError::Invalid(_) | StoreError::Conflict(_))) => {
                    savepoint.rollback().await?;
                    out.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// One batch and its cursor, written in the caller's transaction (or savepoint): also
    /// a remote collector's batches with the collector's cursor (`store::collectors`).
    pub(super) async fn ingest_in(tx: &mut Tx<'_>, batch: &Batch) -> Result<IngestReport, StoreError> {
        let mut problems = batch.problems();
        if batch.buckets.iter().any(|b| b.metric == Metric::SleepEnd) {
            problems.push(format!(
                "{}: a sleep_end bucket; a stretch asleep is one sleep_start bucket (at its end, its start as the value)",
                batch.source
            ));
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let now = Store::now_ms();
        let mut report = IngestReport::default();
        let mut zones = TzCache::default();
        for a in &batch.activities {
            let (id, outcome) = upsert_activity(tx, &batch.source, a, now).await?;
            let mut changed = !matches!(outcome, Upsert::Unchanged);
            match outcome {
                Upsert::Inserted => report.activities_inserted += 1,
                Upsert::Updated => report.activities_updated += 1,
                Upsert::Unchanged => report.activities_unchanged += 1,
            }
            let fresh = matches!(outcome, Upsert::Inserted);
            let mut hr_changed = false;
            for s in &a.series {
                let written = merge_series(tx, id, s, fresh).await?;
                hr_changed |= written > 0 && s.kind == SeriesKind::Hr;
                changed |= written > 0;
                report.samples_written += written;
            }
            if hr_changed {
                refresh_hr_summary(tx, id).await?;
            }
            if let Some(sets) = &a.sets {
                changed |= replace_sets(tx, id, sets, fresh).await?;
            }
            if changed {
                let tz = zones.get(tx, a.client_id).await?;
                for d in local_dates(tz, a.start, a.end) {
                    mark_dirty(tx, a.client_id, d).await?;
                }
            }
        }
        for d in &batch.daily {
            let done = on!(&mut *tx, |e, sql| sqlx::query(&sql(
                "INSERT INTO daily_metrics (client_id, date, metric, source, value, updated_ms)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (client_id, date, metric, source)
                 DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms
                 WHERE daily_metrics.value IS DISTINCT FROM excluded.value",
            ))
            .bind(d.client_id)
            .bind(d.date.to_string())
            .bind(d.metric.as_str())
            .bind(&batch.source)
            .bind(d.value)
            .bind(now)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| fk_context(e, format!("daily {} of client #{}", d.metric.as_str(), d.client_id)))?;
            if done > 0 {
                report.daily_written += 1;
                mark_dirty(tx, d.client_id, d.date).await?;
            }
        }
        let mut touched: std::collections::BTreeSet<(i64, crate::model::Metric, chrono::NaiveDate)> =
            Default::default();
        for b in &batch.buckets {
            let done = on!(&mut *tx, |e, sql| sqlx::query(&sql(
                "INSERT INTO metric_buckets (client_id, metric, source, t_ms, value) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (client_id, metric, source, t_ms) DO UPDATE SET value = excluded.value
                 WHERE metric_buckets.value IS DISTINCT FROM excluded.value",
            ))
            .bind(b.client_id)
            .bind(b.metric.as_str())
            .bind(&batch.source)
            .bind(b.t_ms)
            .bind(b.value)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| fk_context(e, format!("{} bucket of client #{}", b.metric.as_str(), b.client_id)))?;
            if done > 0 {
                report.buckets_written += 1;
                let tz = zones.get(tx, b.client_id).await?;
                let at = chrono::DateTime::from_timestamp_millis(b.t_ms).unwrap_or_default();
                touched.insert((b.client_id, b.metric, at.with_timezone(&tz).date_naive()));
            }
        }
        // A stretch ending on a day belongs to a night ending that day or the next, and may
        // carry on a night that so far ended the day before.
        let nights: std::collections::BTreeSet<(i64, chrono::NaiveDate)> = touched
            .iter()
            .filter(|(_, m, _)| *m == Metric::SleepStart)
            .flat_map(|&(c, _, d)| [d.pred_opt(), Some(d), d.succ_opt()].into_iter().flatten().map(move |d| (c, d)))
            .collect();
        for (client, wake) in nights {
            let tz = zones.get(tx, client).await?;
            if derive_night(tx, client, &batch.source, tz, wake, now).await? {
                report.daily_written += 1;
                mark_dirty(tx, client, wake).await?;
            }
        }
        for (client, metric, day) in touched.into_iter().filter(|(_, m, _)| *m != Metric::SleepStart) {
            // The day's total is the sum of its distinct buckets, in the client's local day.
            let tz = zones.get(tx, client).await?;
            let bound = |d: chrono::NaiveDate| local(tz, d, chrono::NaiveTime::MIN).timestamp_millis();
            let (lo, hi) = (bound(day), bound(day + chrono::Duration::days(1)));
            let total: f64 = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
                "SELECT COALESCE(SUM(value), 0.0) FROM metric_buckets
                 WHERE client_id = ? AND metric = ? AND source = ? AND t_ms >= ? AND t_ms < ?",
            ))
            .bind(client)
            .bind(metric.as_str())
            .bind(&batch.source)
            .bind(lo)
            .bind(hi)
            .fetch_one(&mut **e)
            .await)?;
            on!(&mut *tx, |e, sql| {
                sqlx::query(&sql(
                "INSERT INTO daily_metrics (client_id, date, metric, source, value, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (client_id, date, metric, source)
                 DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms WHERE daily_metrics.value IS DISTINCT FROM excluded.value",
            ))
            .bind(client)
            .bind(day.to_string())
            .bind(metric.as_str())
            .bind(&batch.source)
            .bind(total)
            .bind(now)
            .execute(&mut **e)
            .await.map(|r| r.rows_affected())
            })?;
            report.daily_written += 1;
            mark_dirty(tx, client, day).await?;
        }
        if let Some(c) = &batch.cursor {
            on!(&mut *tx, |e, sql| sqlx::query(&sql(
                "INSERT INTO cursors (source, stream, value, updated_ms) VALUES (?, ?, ?, ?)
                 ON CONFLICT (source, stream) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms
                 WHERE cursors.value IS DISTINCT FROM excluded.value",
            ))
            .bind(&batch.source)
            .bind(&c.stream)
            .bind(&c.value)
            .bind(now)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        }
        Ok(report)
    }

    /// The cursor a source last committed for a stream.
    pub async fn cursor(&self, source: &str, stream: &str) -> Result<Option<String>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT value FROM cursors WHERE source = ? AND stream = ?"
        ))
        .bind(source)
        .bind(stream)
        .fetch_optional(e)
        .await)?)
    }

    /// The id of an activity by its source identity.
    pub async fn activity_id(&self, source: &str, external_id: &str) -> Result<Option<ActivityId>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT id FROM activities WHERE source = ? AND external_id = ?"
        ))
        .bind(source)
        .bind(external_id)
        .fetch_optional(e)
        .await)?)
    }

    /// One series of one activity, in time order.
    pub async fn series(&self, activity: ActivityId, kind: SeriesKind) -> Result<Vec<Sample>, StoreError> {
        let chunks: Vec<(i64, Vec<u8>)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT chunk_ms, data FROM sample_chunks WHERE activity_id = ? AND kind = ? ORDER BY chunk_ms",
        ))
        .bind(activity)
        .bind(kind.id())
        .fetch_all(e)
        .await)?;
        let mut points = Vec::new();
        for (chunk_ms, data) in chunks {
            codec::decode(&data, &mut points).map_err(|e| {
                StoreError::Corrupt(format!("{} chunk {chunk_ms} of activity #{activity}: {e}", kind.as_str()))
            })?;
        }
        let scale = kind.scale();
        Ok(points.into_iter().map(|(t_ms, v)| Sample { t_ms, value: v as f64 / scale }).collect())
    }

    /// The strength sets of an activity, in order.
    pub async fn sets(&self, activity: ActivityId) -> Result<Vec<StrengthSet>, StoreError> {
        let rows: Vec<SetRow> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(LOAD_SETS)).bind(activity).fetch_all(e).await)?;
        Ok(rows.into_iter().map(SetRow::into_set).collect())
    }
}

async fn upsert_activity(
    tx: &mut Tx<'_>,
    source: &str,
    a: &NewActivity,
    now: i64,
) -> Result<(ActivityId, Upsert), StoreError> {
    let new = ActivityFields::of(a);
    let existing: Option<(i64,)> =
        on!(&mut *tx, |e, sql| sqlx::query_as(&sql("SELECT id FROM activities WHERE source = ? AND external_id = ?"))
            .bind(source)
            .bind(&a.external_id)
            .fetch_optional(&mut **e)
            .await)?;
    let Some((id,)) = existing else {
        let id: i64 = on!(&mut *tx, |e, sql| {
            sqlx::query_scalar(&sql(
            "INSERT INTO activities (client_id, source, external_id, start_ms, end_ms, utc_offset_s, type, category,
                                     duration_s, distance_m, avg_hr, max_hr, energy_kj, content_hash, hr_zones,
                                     updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(new.client_id)
        .bind(source)
        .bind(&a.external_id)
        .bind(new.start_ms)
        .bind(new.end_ms)
        .bind(new.utc_offset_s)
        .bind(&new.r#type)
        .bind(&new.category)
        .bind(new.duration_s)
        .bind(new.distance_m)
        .bind(new.avg_hr)
        .bind(new.max_hr)
        .bind(new.energy_kj)
        .bind(&new.content_hash)
        .bind(&new.hr_zones)
        .bind(now)
        .fetch_one(&mut **e)
        .await
        })
        .map_err(|e| fk_context(e, format!("activity {source}/{} of client #{}", a.external_id, a.client_id)))?;
        return Ok((id, Upsert::Inserted));
    };
    let old: ActivityFields = on!(&mut *tx, |e, sql| sqlx::query_as(&sql(
        "SELECT client_id, start_ms, end_ms, utc_offset_s, type, category, duration_s, distance_m, avg_hr,
                max_hr, energy_kj, content_hash, hr_zones FROM activities WHERE id = ?",
    ))
    .bind(id)
    .fetch_one(&mut **e)
    .await)?;
    if old.client_id != new.client_id {
        return Err(StoreError::Conflict(format!(
            "activity {source}/{} belongs to client #{}, not client #{}",
            a.external_id, old.client_id, new.client_id
        )));
    }
    if old == new {
        return Ok((id, Upsert::Unchanged));
    }
    on!(&mut *tx, |e, sql| sqlx::query(&sql(
        "UPDATE activities SET start_ms = ?, end_ms = ?, utc_offset_s = ?, type = ?, category = ?, duration_s = ?,
                distance_m = ?, avg_hr = ?, max_hr = ?, energy_kj = ?, content_hash = ?, hr_zones = ?, updated_ms = ?
         WHERE id = ?",
    ))
    .bind(new.start_ms)
    .bind(new.end_ms)
    .bind(new.utc_offset_s)
    .bind(&new.r#type)
    .bind(&new.category)
    .bind(new.duration_s)
    .bind(new.distance_m)
    .bind(new.avg_hr)
    .bind(new.max_hr)
    .bind(new.energy_kj)
    .bind(&new.content_hash)
    .bind(&new.hr_zones)
    .bind(now)
    .bind(id)
    .execute(&mut **e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok((id, Upsert::Updated))
}

/// Merge a series into the stored chunks; returns how many points were new or changed.
async fn merge_series(tx: &mut Tx<'_>, id: ActivityId, series: &Series, fresh: bool) -> Result<usize, StoreError> {
    let scale = series.kind.scale();
    if fresh && series.samples.windows(2).all(|w| w[0].t_ms < w[1].t_ms) {
        // A new activity's series in time order (what files and devices give): each chunk
        // is encoded straight from the samples, with nothing to merge.
        let mut buf = Vec::new();
        let mut points: Vec<(i64, i64)> = Vec::new();
        for (i, s) in series.samples.iter().enumerate() {
            points.push((s.t_ms, (s.value * scale).round() as i64));
            let slot = s.t_ms.div_euclid(CHUNK_MS);
            if series.samples.get(i + 1).is_none_or(|next| next.t_ms.div_euclid(CHUNK_MS) != slot) {
                insert_chunk(tx, id, series.kind, slot * CHUNK_MS, &points, &mut buf).await?;
                points.clear();
            }
        }
        return Ok(series.samples.len());
    }
    // Group by chunk slot; within a slot keep the last value given for a time.
    let mut slots: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for s in &series.samples {
        let slot = s.t_ms.div_euclid(CHUNK_MS) * CHUNK_MS;
        slots.entry(slot).or_default().insert(s.t_ms, (s.value * scale).round() as i64);
    }
    let mut written = 0;
    let (mut old, mut buf) = (Vec::new(), Vec::new());
    for (slot, new) in slots {
        old.clear();
        if !fresh {
            let data: Option<Vec<u8>> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
                "SELECT data FROM sample_chunks WHERE activity_id = ? AND kind = ? AND chunk_ms = ?",
            ))
            .bind(id)
            .bind(series.kind.id())
            .bind(slot)
            .fetch_optional(&mut **e)
            .await)?;
            if let Some(data) = data {
                codec::decode(&data, &mut old).map_err(|e| {
                    StoreError::Corrupt(format!("{} chunk {slot} of activity #{id}: {e}", series.kind.as_str()))
                })?;
            }
        }
        let changed = new.iter().filter(|(t, v)| old.binary_search(&(**t, **v)).is_err()).count();
        if changed == 0 {
            continue;
        }
        written += changed;
        let merged = merge_points(&old, &new);
        insert_chunk(tx, id, series.kind, slot, &merged, &mut buf).await?;
    }
    Ok(written)
}

/// Write one chunk of points (time-sorted, at least one), encoded in `buf`.
async fn insert_chunk(
    tx: &mut Tx<'_>,
    id: ActivityId,
    kind: SeriesKind,
    slot: i64,
    points: &[(i64, i64)],
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    codec::encode(points, buf);
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    on!(&mut *tx, |e, sql| sqlx::query(&sql(
        "INSERT INTO sample_chunks (activity_id, kind, chunk_ms, first_ms, last_ms, n, data)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (activity_id, kind, chunk_ms)
         DO UPDATE SET first_ms = excluded.first_ms, last_ms = excluded.last_ms, n = excluded.n, data = excluded.data",
    ))
    .bind(id)
    .bind(kind.id())
    .bind(slot)
    .bind(first)
    .bind(last)
    .bind(points.len() as i64)
    .bind(&*buf)
    .execute(&mut **e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Union of two time-sorted point lists; at the same time the new value wins.
fn merge_points(old: &[(i64, i64)], new: &BTreeMap<i64, i64>) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut old = old.iter().copied().peekable();
    for (&t, &v) in new {
        while let Some(&(ot, ov)) = old.peek() {
            if ot >= t {
                break;
            }
            out.push((ot, ov));
            old.next();
        }
        if old.peek().is_some_and(|&(ot, _)| ot == t) {
            old.next();
        }
        out.push((t, v));
    }
    out.extend(old);
    out
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct SetRow {
    start_ms: Option<i64>,
    duration_s: Option<f64>,
    exercise: String,
    set_type: String,
    reps: Option<i64>,
    weight_kg: Option<f64>,
}

impl SetRow {
    fn of(s: &StrengthSet) -> Self {
        Self {
            start_ms: s.start.map(|t| t.timestamp_millis()),
            duration_s: s.duration_s,
            exercise: s.exercise.clone(),
            set_type: s.set_type.as_str().to_string(),
            reps: s.reps.map(i64::from),
            weight_kg: s.weight_kg,
        }
    }

    fn into_set(self) -> StrengthSet {
        use crate::model::SetType;
        StrengthSet {
            start: self.start_ms.and_then(chrono::DateTime::from_timestamp_millis),
            duration_s: self.duration_s,
            exercise: self.exercise,
            set_type: if self.set_type == "rest" { SetType::Rest } else { SetType::Active },
            reps: self.reps.and_then(|r| u32::try_from(r).ok()),
            weight_kg: self.weight_kg,
        }
    }
}

const LOAD_SETS: &str = "SELECT start_ms, duration_s, exercise, set_type, reps, weight_kg FROM strength_sets
                         WHERE activity_id = ? ORDER BY seq";

/// Returns whether anything changed.
async fn replace_sets(tx: &mut Tx<'_>, id: ActivityId, sets: &[StrengthSet], fresh: bool) -> Result<bool, StoreError> {
    let new: Vec<SetRow> = sets.iter().map(SetRow::of).collect();
    if !fresh {
        let old: Vec<SetRow> =
            on!(&mut *tx, |e, sql| sqlx::query_as(&sql(LOAD_SETS)).bind(id).fetch_all(&mut **e).await)?;
        if old == new {
            return Ok(false);
        }
        on!(&mut *tx, |e, sql| sqlx::query(&sql("DELETE FROM strength_sets WHERE activity_id = ?"))
            .bind(id)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
    }
    for (seq, s) in new.iter().enumerate() {
        on!(&mut *tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO strength_sets (activity_id, seq, start_ms, duration_s, exercise, set_type, reps, weight_kg)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(seq as i64)
        .bind(s.start_ms)
        .bind(s.duration_s)
        .bind(&s.exercise)
        .bind(&s.set_type)
        .bind(s.reps)
        .bind(s.weight_kg)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(!new.is_empty() || !fresh)
}

/// An activity's whole stored heart-rate series, decoded, in time order.
async fn hr_points(tx: &mut Tx<'_>, id: ActivityId) -> Result<Vec<(i64, i64)>, StoreError> {
    let chunks: Vec<Vec<u8>> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
        "SELECT data FROM sample_chunks WHERE activity_id = ? AND kind = ? ORDER BY chunk_ms"
    ))
    .bind(id)
    .bind(SeriesKind::Hr.id())
    .fetch_all(&mut **e)
    .await)?;
    let mut points = Vec::new();
    for data in &chunks {
        codec::decode(data, &mut points)
            .map_err(|e| StoreError::Corrupt(format!("hr series of activity #{id}: {e}")))?;
    }
    Ok(points)
}

/// The times of an activity's stored samples of one kind within [from, to], in order.
pub(super) async fn stored_times(
    tx: &mut Tx<'_>,
    id: ActivityId,
    kind: SeriesKind,
    from: i64,
    to: i64,
) -> Result<Vec<i64>, StoreError> {
    let chunks: Vec<Vec<u8>> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
        "SELECT data FROM sample_chunks WHERE activity_id = ? AND kind = ? AND chunk_ms >= ? AND chunk_ms <= ?
          ORDER BY chunk_ms"
    ))
    .bind(id)
    .bind(kind.id())
    .bind(from.div_euclid(CHUNK_MS) * CHUNK_MS)
    .bind(to)
    .fetch_all(&mut **e)
    .await)?;
    let mut points = Vec::new();
    for data in &chunks {
        codec::decode(data, &mut points)
            .map_err(|e| StoreError::Corrupt(format!("{} series of activity #{id}: {e}", kind.as_str())))?;
    }
    Ok(points.into_iter().map(|(t, _)| t).filter(|t| (from..=to).contains(t)).collect())
}

/// Recompute an activity's heart-rate histogram from its whole stored series. Each
/// sample stands for the time until the next one, at most 5 s (a dropout is not effort).
async fn refresh_hr_summary(tx: &mut Tx<'_>, id: ActivityId) -> Result<(), StoreError> {
    const MAX_GAP_MS: i64 = 5000;
    let points = hr_points(tx, id).await?;
    let mut hist: BTreeMap<i64, i64> = BTreeMap::new();
    for (i, &(t, bpm)) in points.iter().enumerate() {
        let weight = points.get(i + 1).map_or(1000, |&(next, _)| (next - t).clamp(0, MAX_GAP_MS));
        *hist.entry(bpm).or_default() += weight;
    }
    let mut blob = Vec::new();
    codec::encode(&hist.into_iter().collect::<Vec<_>>(), &mut blob);
    on!(&mut *tx, |e, sql| sqlx::query(&sql("UPDATE activities SET hr_hist = ?, hr_samples = ? WHERE id = ?"))
        .bind(blob)
        .bind(points.len() as i64)
        .bind(id)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Set a session's average and maximum heart rate from every stored sample: a session
/// forwarded in parts by more than one collector has each part's figures in its batches.
pub(super) async fn restate_hr(tx: &mut Tx<'_>, source: &str, external_id: &str) -> Result<(), StoreError> {
    let Some(id): Option<i64> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
        "SELECT id FROM activities WHERE source = ? AND external_id = ?"
    ))
    .bind(source)
    .bind(external_id)
    .fetch_optional(&mut **e)
    .await)?
    else {
        return Ok(());
    };
    let points = hr_points(tx, id).await?;
    if points.is_empty() {
        return Ok(());
    }
    let scale = SeriesKind::Hr.scale();
    let sum: f64 = points.iter().map(|&(_, v)| v as f64 / scale).sum();
    let avg = (sum / points.len() as f64 * 10.0).round() / 10.0;
    let max = points.iter().map(|&(_, v)| v).max().map(|v| (v as f64 / scale).round() as i64);
    on!(&mut *tx, |e, sql| sqlx::query(&sql("UPDATE activities SET avg_hr = ?, max_hr = ? WHERE id = ?"))
        .bind(avg)
        .bind(max)
        .bind(id)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Derive a wake-up day's bed and wake times from the source's stored stretches asleep:
/// the main night ending that day, or none (a night that a later stretch carried on into
/// the next day). Returns whether anything changed.
async fn derive_night(
    tx: &mut Tx<'_>,
    client: i64,
    source: &str,
    tz: chrono_tz::Tz,
    wake: chrono::NaiveDate,
    now_ms: i64,
) -> Result<bool, StoreError> {
    // Every stretch of a night ending on `wake`, and those that would carry it on: a
    // plausible night lasts at most a day, so a day and a bit either side is enough.
    let margin = sleep::LONGEST_NIGHT_MS + 2 * sleep::SAME_NIGHT_MS;
    let bound = |d: chrono::NaiveDate| local(tz, d, chrono::NaiveTime::MIN).timestamp_millis();
    let next = wake.succ_opt().unwrap_or(wake);
    let (lo, hi) = (bound(wake).saturating_sub(margin), bound(next).saturating_add(margin));
    let rows: Vec<(i64, f64)> = on!(&mut *tx, |e, sql| sqlx::query_as(&sql("SELECT t_ms, value FROM metric_buckets
         WHERE client_id = ? AND metric = ? AND source = ? AND t_ms >= ? AND t_ms < ?",))
    .bind(client)
    .bind(Metric::SleepStart.as_str())
    .bind(source)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut **e)
    .await)?;
    // `as` saturates: a stored value far out of range makes an implausible night, not a panic.
    let stretches: Vec<(i64, i64)> =
        rows.into_iter().map(|(end, start_s)| ((start_s * 1000.0).round() as i64, end)).collect();
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let times = sleep::wake_days(&sleep::nights(&stretches), tz)
        .into_iter()
        .find(|d| d.date == wake)
        .and_then(|d| d.main.times(now));
    let mut changed = false;
    match times {
        Some((start, end)) => {
            for (metric, value) in [(Metric::SleepStart, start), (Metric::SleepEnd, end)] {
                let done = on!(&mut *tx, |e, sql| sqlx::query(&sql(
                    "INSERT INTO daily_metrics (client_id, date, metric, source, value, updated_ms)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (client_id, date, metric, source)
                     DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms
                     WHERE daily_metrics.value IS DISTINCT FROM excluded.value",
                ))
                .bind(client)
                .bind(wake.to_string())
                .bind(metric.as_str())
                .bind(source)
                .bind(value)
                .bind(now_ms)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?;
                changed |= done > 0;
            }
        }
        None => {
            let done = on!(&mut *tx, |e, sql| sqlx::query(&sql(
                "DELETE FROM daily_metrics WHERE client_id = ? AND date = ? AND source = ? AND metric IN (?, ?)",
            ))
            .bind(client)
            .bind(wake.to_string())
            .bind(source)
            .bind(Metric::SleepStart.as_str())
            .bind(Metric::SleepEnd.as_str())
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
            changed = done > 0;
        }
    }
    Ok(changed)
}

/// Remember that a client's evidence on a local date changed, so its verdicts are re-judged.
pub(super) async fn mark_dirty(tx: &mut Tx<'_>, client: i64, date: chrono::NaiveDate) -> Result<(), StoreError> {
    on!(&mut *tx, |e, sql| sqlx::query(&sql(
        "INSERT INTO dirty_dates (client_id, date) VALUES (?, ?) ON CONFLICT DO NOTHING"
    ))
    .bind(client)
    .bind(date.to_string())
    .execute(&mut **e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Clients' time zones, looked up once per transaction.
#[derive(Default)]
struct TzCache(std::collections::HashMap<i64, chrono_tz::Tz>);

impl TzCache {
    async fn get(&mut self, tx: &mut Tx<'_>, client: i64) -> Result<chrono_tz::Tz, StoreError> {
        if let Some(tz) = self.0.get(&client) {
            return Ok(*tz);
        }
        let name: String = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql("SELECT tz FROM clients WHERE id = ?"))
            .bind(client)
            .fetch_optional(&mut **e)
            .await)?
        .ok_or_else(|| StoreError::Invalid(vec![format!("client #{client}: no such client")]))?;
        let tz = name.parse().map_err(|_| StoreError::Corrupt(format!("client #{client} has time zone {name:?}")))?;
        self.0.insert(client, tz);
        Ok(tz)
    }
}

/// A foreign-key failure means the batch named a client that does not exist.
fn fk_context(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::Invalid(vec![format!("{what}: no such client")])
        }
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_order_and_new_values_win() {
        let old = vec![(1, 10), (3, 30), (5, 50)];
        let new: BTreeMap<i64, i64> = [(0, 0), (3, 31), (4, 40), (9, 90)].into_iter().collect();
        assert_eq!(merge_points(&old, &new), vec![(0, 0), (1, 10), (3, 31), (4, 40), (5, 50), (9, 90)]);
        assert_eq!(merge_points(&[], &new).len(), 4);
    }
}
