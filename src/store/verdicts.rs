//! The verdict cache: final verdicts, one row per homework and calendar month.
//!
//! A row holds a byte per day (`codes`: 0 when nothing is cached for the day, else the
//! verdict) and the month's occurrences in a compact binary array (`detail`, postcard:
//! varints and raw doubles, read back in one pass without parsing text), without what
//! the homework supplies (its text, unit and period). Adherence reads only the codes;
//! the occurrences are decoded only for the months a caller shows. Ingest, check-ins
//! and excuses mark the dates they change (`dirty_dates`); a status run drops the months
//! those dates can affect before reading, so a cached verdict never disagrees with the
//! data. Pending verdicts are never cached. A row that does not decode is treated as not
//! cached: it is judged again and written over.

use super::on;
use super::{Store, StoreError};
use crate::engine::judge::{EvidenceRef, Homework, Occurrence, Verdict};
use crate::model::ClientId;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The verdicts a cache row can hold, by code (code = index + 1; 0 is "not cached").
const CODES: [Verdict; 5] = [Verdict::Done, Verdict::Partial, Verdict::Missed, Verdict::NoData, Verdict::Excused];

fn code(v: Verdict) -> u8 {
    CODES.iter().position(|c| *c == v).map_or(0, |i| i as u8 + 1)
}

fn verdict(code: u8) -> Option<Verdict> {
    CODES.get(usize::from(code).checked_sub(1)?).copied()
}

/// The month key of a date: year * 12 + month - 1.
pub fn month_of(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

fn day_in(month: i64, day: u8) -> Option<NaiveDate> {
    let year = i32::try_from(month.div_euclid(12)).ok()?;
    NaiveDate::from_ymd_opt(year, u32::try_from(month.rem_euclid(12)).ok()? + 1, u32::from(day))
}

/// One piece of evidence, as cached (a variant index, then its fields in order).
#[derive(Serialize, Deserialize)]
enum Ev {
    A(i64, Vec<String>, f64),
    M(String, NaiveDate, f64, Vec<String>),
    C(i64, NaiveDate, Option<f64>, bool),
}

impl From<&EvidenceRef> for Ev {
    fn from(e: &EvidenceRef) -> Self {
        match e {
            EvidenceRef::Activity { activity_id, sources, amount } => {
                Self::A(*activity_id, sources.clone(), finite(*amount))
            }
            EvidenceRef::Metric { metric, date, value, sources } => {
                Self::M(metric.clone(), *date, finite(*value), sources.clone())
            }
            EvidenceRef::Checkin { checkin_id, date, value, self_reported } => {
                Self::C(*checkin_id, *date, value.map(finite), *self_reported)
            }
        }
    }
}

impl From<Ev> for EvidenceRef {
    fn from(e: Ev) -> Self {
        match e {
            Ev::A(activity_id, sources, amount) => Self::Activity { activity_id, sources, amount },
            Ev::M(metric, date, value, sources) => Self::Metric { metric, date, value, sources },
            Ev::C(checkin_id, date, value, self_reported) => Self::Checkin { checkin_id, date, value, self_reported },
        }
    }
}

/// A cache row as read: homework, month, codes, and the detail when asked for.
type CacheRow = (i64, i64, Vec<u8>, Option<Vec<u8>>);

/// Day of the month, achieved, target, self-reported, evidence.
type Entry = (u8, f64, f64, bool, Vec<Ev>);

/// What the cache holds for some clients over a span.
#[derive(Debug, Default)]
pub struct Cached {
    /// Per homework, every cached (date, verdict) in the span.
    pub verdicts: HashMap<i64, Vec<(NaiveDate, Verdict)>>,
    /// Per homework, its cached occurrences in full, of the dates asked for in full (built
    /// straight from the rows with what the homework supplies; see
    /// [`Occurrence::from_cache`]).
    pub occurrences: HashMap<i64, Vec<Occurrence>>,
}

fn encode(entries: &BTreeMap<u8, (Verdict, Entry)>) -> (Vec<u8>, Vec<u8>) {
    let mut codes = vec![0u8; 31];
    let mut detail = Vec::with_capacity(entries.len());
    for (day, (v, e)) in entries {
        codes[usize::from(*day) - 1] = code(*v);
        detail.push(e);
    }
    // Entries hold numbers, strings and dates only; should encoding ever fail, the empty
    // detail does not decode, and the month counts as not cached.
    (codes, postcard::to_allocvec(&detail).unwrap_or_default())
}

/// A row's entries in day order, each with its verdict, or None when the row does not
/// decode or disagrees with its codes (then it counts as not cached).
fn entries(codes: &[u8], detail: &[u8]) -> Option<Vec<(Verdict, Entry)>> {
    if codes.len() != 31 {
        return None;
    }
    let entries: Vec<Entry> = postcard::from_bytes(detail).ok()?;
    let mut out = Vec::with_capacity(entries.len());
    let mut last = 0;
    for e in entries {
        // Days strictly increase, and each has its code.
        if e.0 <= last {
            return None;
        }
        last = e.0;
        let v = verdict(*codes.get(usize::from(e.0) - 1)?)?;
        out.push((v, e));
    }
    (out.len() == codes.iter().filter(|c| **c != 0).count()).then_some(out)
}

/// A row's entries by day, or None as for [`entries`].
fn decode(codes: &[u8], detail: &[u8]) -> Option<BTreeMap<u8, (Verdict, Entry)>> {
    Some(entries(codes, detail)?.into_iter().map(|(v, e)| (e.0, (v, e))).collect())
}

/// One final occurrence, ready for its month's row.
pub struct CacheEntry {
    key: (i64, i64),
    day: u8,
    verdict: Verdict,
    entry: Entry,
}

/// A month of one homework's final verdicts, encoded for the cache.
pub struct MonthRow {
    key: (i64, i64),
    codes: Vec<u8>,
    detail: Vec<u8>,
}

impl MonthRow {
    /// The cache entry of a final occurrence; None for a pending one.
    pub fn entry(o: &Occurrence) -> Option<CacheEntry> {
        let day = u8::try_from(o.date.day()).ok()?;
        (o.verdict != Verdict::Pending).then(|| CacheEntry {
            key: (o.homework_id, month_of(o.date)),
            day,
            verdict: o.verdict,
            entry: (
                day,
                finite(o.achieved),
                finite(o.target),
                o.self_reported,
                o.evidence.iter().map(Ev::from).collect(),
            ),
        })
    }

    /// Entries grouped into their months' rows, encoded.
    pub fn group(entries: impl IntoIterator<Item = CacheEntry>) -> Vec<MonthRow> {
        let mut months: BTreeMap<(i64, i64), BTreeMap<u8, (Verdict, Entry)>> = BTreeMap::new();
        for e in entries {
            months.entry(e.key).or_default().insert(e.day, (e.verdict, e.entry));
        }
        months
            .into_iter()
            .map(|(key, entries)| {
                let (codes, detail) = encode(&entries);
                MonthRow { key, codes, detail }
            })
            .collect()
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// The cache of `homework` (with every homework of the clients asked for) for dates in
    /// `[from, to]`: every verdict, and the occurrences in full for dates in `[full_from,
    /// full_to]` (only those months' details are decoded, and within them only the entries
    /// in that range).
    pub async fn cached(
        &self,
        homework: &HashMap<i64, &Homework>,
        from: NaiveDate,
        to: NaiveDate,
        full_from: NaiveDate,
        full_to: NaiveDate,
    ) -> Result<Cached, StoreError> {
        // A row per homework and month (a few thousand for a year of a chunk of clients,
        // so plain rows cost less than packing them), the detail only for months shown.
        let ids = super::packed::Packing::of(&self.db).ids_at(1);
        let statement = format!(
            "SELECT v.homework_id, v.month, v.codes, CASE WHEN v.month BETWEEN ?2 AND ?3 THEN v.detail END
             FROM verdicts v WHERE v.homework_id IN ({ids}) AND v.month BETWEEN ?4 AND ?5"
        );
        let mut ids: Vec<i64> = homework.keys().copied().collect();
        ids.sort_unstable();
        let rows: Vec<CacheRow> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&statement))
            .bind(ids_json(&ids))
            .bind(month_of(full_from))
            .bind(month_of(full_to))
            .bind(month_of(from))
            .bind(month_of(to))
            .fetch_all(e)
            .await)?;
        let shown = month_of(full_from)..=month_of(full_to);
        let mut out = Cached::default();
        for (hw, month, codes, detail) in rows {
            let Some(h) = homework.get(&hw) else { continue };
            if codes.len() != 31 {
                continue; // a row that does not decode counts as not cached
            }
            let mut days = Vec::with_capacity(31);
            match detail.as_deref() {
                Some(detail) => {
                    let Some(entries) = entries(&codes, detail) else { continue };
                    let mut full = Vec::with_capacity(entries.len());
                    for (v, (day, achieved, target, self_reported, ev)) in entries {
                        let Some(date) = day_in(month, day) else { continue };
                        if date < from || date > to {
                            continue;
                        }
                        days.push((date, v));
                        if date >= full_from && date <= full_to {
                            let evidence = ev.into_iter().map(EvidenceRef::from).collect();
                            full.push(Occurrence::from_cache(h, date, v, achieved, target, self_reported, evidence));
                        }
                    }
                    if days.is_empty() {
                        continue;
                    }
                    out.occurrences.entry(hw).or_default().extend(full);
                }
                None if shown.contains(&month) => continue, // detail NULL: not cached
                None => {
                    for (i, c) in codes.iter().enumerate().take(31) {
                        let (Some(v), Some(date)) = (verdict(*c), day_in(month, i as u8 + 1)) else { continue };
                        if date >= from && date <= to {
                            days.push((date, v));
                        }
                    }
                }
            }
            out.verdicts.entry(hw).or_default().extend(days);
        }
        Ok(out)
    }

    /// Cache months of final verdicts, merged into the rows already there, in one
    /// transaction.
    pub async fn save_verdicts(&self, rows: Vec<MonthRow>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut rows: BTreeMap<(i64, i64), MonthRow> = rows.into_iter().map(|r| (r.key, r)).collect();
        let mut tx = self.write().await?;
        // Months already partly cached (the current one, say) keep what they hold.
        let keys: Vec<(i64, i64)> = rows.keys().copied().collect();
        let mut existing: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = Vec::new();
        let pairs = format!(
            "SELECT v.homework_id, v.month, v.codes, v.detail FROM verdicts v {}",
            super::packed::Packing::of(&self.db).month_pairs()
        );
        for chunk in keys.chunks(5_000) {
            existing.extend(on!(&mut tx, |e, sql| sqlx::query_as(&sql(&pairs))
                .bind(serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into()))
                .fetch_all(&mut **e)
                .await)?);
        }
        for (hw, month, codes, detail) in existing {
            let (Some(old), Some(row)) = (decode(&codes, &detail), rows.get_mut(&(hw, month))) else { continue };
            let Some(mut new) = decode(&row.codes, &row.detail) else { continue };
            for (day, e) in old {
                new.entry(day).or_insert(e);
            }
            (row.codes, row.detail) = encode(&new);
        }
        // A few hundred rows per statement keeps every statement within SQLite's limits.
        let rows: Vec<MonthRow> = rows.into_values().collect();
        for chunk in rows.chunks(200) {
            on!(&mut tx, |e, _sql| {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO verdicts (homework_id, month, codes, detail) ");
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.key.0)
                        .push_bind(r.key.1)
                        .push_bind(r.codes.as_slice())
                        .push_bind(r.detail.as_slice());
                });
                q.push(
                    " ON CONFLICT (homework_id, month) DO UPDATE SET codes = excluded.codes, detail = excluded.detail",
                );
                q.build().execute(&mut **e).await.map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The clients among `clients` whose evidence changed since their verdicts were read.
    pub async fn dirty_clients(&self, clients: &[ClientId]) -> Result<HashSet<ClientId>, StoreError> {
        let statement = format!(
            "SELECT DISTINCT client_id FROM dirty_dates WHERE client_id IN ({})",
            super::packed::Packing::of(&self.db).ids
        );
        let rows: Vec<i64> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql(&statement)).bind(ids_json(clients)).fetch_all(e).await)?;
        Ok(rows.into_iter().collect())
    }

    /// Drop the cached verdicts that a client's changed dates can affect, and forget those
    /// dates, in one transaction. `affected` maps a changed date to the (homework,
    /// occurrence date) pairs it can move. Returns how many verdicts were dropped.
    pub async fn invalidate_dirty(
        &self,
        client: ClientId,
        affected: impl Fn(NaiveDate) -> Vec<(i64, NaiveDate)>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.write().await?;
        let dirty: Vec<String> =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT date FROM dirty_dates WHERE client_id = ?"))
                .bind(client)
                .fetch_all(&mut **e)
                .await)?;
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut drop: BTreeMap<(i64, i64), BTreeSet<u8>> = BTreeMap::new();
        for d in &dirty {
            let d: NaiveDate = d.parse().map_err(|_| StoreError::Corrupt(format!("stored date {d:?}")))?;
            for (hw, on) in affected(d) {
                if let Ok(day) = u8::try_from(on.day()) {
                    drop.entry((hw, month_of(on))).or_default().insert(day);
                }
            }
        }
        let keys: Vec<(i64, i64)> = drop.keys().copied().collect();
        let pairs = format!(
            "SELECT v.homework_id, v.month, v.codes, v.detail FROM verdicts v {}",
            super::packed::Packing::of(&self.db).month_pairs()
        );
        let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = on!(&mut tx, |e, sql| sqlx::query_as(&sql(&pairs))
            .bind(serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut **e)
            .await)?;
        let mut dropped = 0;
        for (hw, month, codes, detail) in rows {
            let days = drop.get(&(hw, month)).cloned().unwrap_or_default();
            // A row that does not decode is dropped whole: it is judged again anyway.
            let kept = decode(&codes, &detail).map(|mut entries| {
                let before = entries.len();
                entries.retain(|day, _| !days.contains(day));
                dropped += before - entries.len();
                entries
            });
            match kept {
                Some(entries) if !entries.is_empty() => {
                    let (codes, detail) = encode(&entries);
                    on!(&mut tx, |e, sql| sqlx::query(&sql(
                        "UPDATE verdicts SET codes = ?, detail = ? WHERE homework_id = ? AND month = ?"
                    ))
                    .bind(codes)
                    .bind(detail)
                    .bind(hw)
                    .bind(month)
                    .execute(&mut **e)
                    .await
                    .map(|r| r.rows_affected()))?;
                }
                _ => {
                    on!(&mut tx, |e, sql| sqlx::query(&sql(
                        "DELETE FROM verdicts WHERE homework_id = ? AND month = ?"
                    ))
                    .bind(hw)
                    .bind(month)
                    .execute(&mut **e)
                    .await
                    .map(|r| r.rows_affected()))?;
                }
            }
        }
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM dirty_dates WHERE client_id = ?"))
            .bind(client)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(dropped)
    }

    /// Drop every cached verdict when the settings that shaped them changed.
    pub async fn check_verdict_settings(&self, fingerprint: &str) -> Result<bool, StoreError> {
        // Read first: only a change of settings takes the write lock.
        let current: Option<String> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = 'verdict_settings'"))
                .fetch_optional(e)
                .await)?;
        if current.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        let mut tx = self.write().await?;
        let stored: Option<String> =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = 'verdict_settings'"))
                .fetch_optional(&mut **e)
                .await)?;
        if stored.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM verdicts"))
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        on!(&mut tx, |e, sql| sqlx::query(&sql("INSERT INTO meta (key, value) VALUES ('verdict_settings', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"))
        .bind(fingerprint)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Verdict counts in the cache, for /metrics, by verdict name.
    pub async fn verdict_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<Vec<u8>> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT codes FROM verdicts")).fetch_all(e).await)?;
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for codes in rows {
            for v in codes.into_iter().filter_map(verdict) {
                *counts.entry(v.as_str()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().map(|(v, n)| (v.to_string(), n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_keys_round_trip_every_day() {
        let mut d = NaiveDate::from_ymd_opt(2023, 12, 25).expect("date");
        while d < NaiveDate::from_ymd_opt(2025, 3, 5).expect("date") {
            let day = u8::try_from(d.day()).expect("day");
            assert_eq!(day_in(month_of(d), day), Some(d));
            d = d.succ_opt().expect("next");
        }
        assert_eq!(month_of(NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")), 2026 * 12);
        assert_eq!(day_in(2026 * 12 + 1, 30), None, "no 30 February");
    }

    #[test]
    fn codes_cover_every_final_verdict_and_only_those() {
        for v in CODES {
            assert_eq!(verdict(code(v)), Some(v));
        }
        assert_eq!(code(Verdict::Pending), 0);
        assert_eq!(verdict(0), None);
        assert_eq!(verdict(6), None);
    }

    #[test]
    fn a_row_that_disagrees_with_its_codes_counts_as_not_cached() {
        let mut entries = BTreeMap::new();
        entries.insert(3, (Verdict::Done, (3, 15.0, 15.0, false, vec![Ev::A(7, vec!["fit".into()], 15.0)])));
        let (codes, detail) = encode(&entries);
        assert_eq!(codes[2], code(Verdict::Done));
        assert!(decode(&codes, &detail).is_some());
        let mut extra = codes.clone();
        extra[4] = code(Verdict::Missed);
        assert!(decode(&extra, &detail).is_none(), "a code without its occurrence");
        assert!(decode(&codes, &detail[..detail.len() - 1]).is_none(), "a truncated entry");
        let late: Vec<Entry> = vec![(32, 1.0, 1.0, false, Vec::new())];
        assert!(decode(&codes, &postcard::to_allocvec(&late).expect("encode")).is_none(), "a day past the codes");
        assert!(decode(&codes, b"[[3, 15.0, 15.0, false, []]]").is_none(), "a row left in the old JSON form");
        assert!(decode(&codes[..2], &detail).is_none(), "codes cut short");
    }
}
