//! Verdicts and adherence for `status`, the dashboard and the API.
//!
//! Final verdicts are cached; ingest, check-ins and excuses mark the local dates they
//! change, and a status run first drops the cached verdicts those dates can affect, then
//! judges only occurrences without a cached verdict (pending ones are never cached).

use crate::engine::adherence::{adherence, Adherence};
use crate::engine::judge::{judge, Occurrence, Verdict};
use crate::engine::judge::{Homework, JudgeConfig};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Adherence looks back 90 days and compares with the 90 before.
pub const LOOKBACK_DAYS: i64 = 180;

#[derive(Clone, Debug, Default, Serialize)]
pub struct StatusReport {
    pub occurrences: Vec<Occurrence>,
    pub adherence: Vec<Adherence>,
}

/// What the run did, for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    pub judged: usize,
    pub cached: usize,
    pub invalidated: usize,
}

/// The client's HR max: measured, else 208 − 0.7 × age (Tanaka), else unknown.
pub fn hr_max(c: &Client, today: NaiveDate) -> Option<f64> {
    c.hr_max.map(f64::from).or_else(|| c.birth_year.map(|y| 208.0 - 0.7 * f64::from(today.year() - y)))
}

/// Verdicts with dates in `[from, to]` and adherence as of `now`, for each client.
pub async fn status(
    store: &Store,
    cfg: &JudgeConfig,
    attention_drop: f64,
    clients: &[Client],
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(StatusReport, RunStats), StoreError> {
    let json = serde_json::to_string(cfg).unwrap_or_default();
    let fingerprint = crate::crypto::hex(&crate::crypto::sha256(json.as_bytes())[..8]);
    store.check_verdict_settings(&fingerprint).await?;
    let mut report = StatusReport::default();
    let mut stats = RunStats::default();
    for client in clients {
        let tz = client.tz;
        let today = now.with_timezone(&tz).date_naive();
        let homework: Vec<Homework> =
            store.list_homework(Some(client.id)).await?.into_iter().map(|r| r.homework).collect();
        if homework.is_empty() {
            continue;
        }
        stats.invalidated += store
            .invalidate_dirty(client.id, |d| {
                homework.iter().flat_map(|h| h.affected_by(d).into_iter().map(|o| (h.id, o))).collect()
            })
            .await?;
        // Weekly occurrences are dated by their Monday, up to 6 days before the span: start
        // the span on a Monday so every occurrence in it finds its cached verdict.
        let span_from = crate::time::monday(from.min(today - Duration::days(LOOKBACK_DAYS - 1)));
        let span_to = to.max(today);
        // Adherence needs only verdicts; the displayed range needs whole occurrences. A
        // weekly occurrence is dated by its Monday, up to 6 days before `from`.
        let show_from = from - Duration::days(6);
        let mut verdicts: HashMap<(i64, NaiveDate), Verdict> = store
            .cached_verdicts(client.id, span_from, span_to)
            .await?
            .into_iter()
            .map(|(h, d, v)| ((h, d), v))
            .collect();
        let mut shown: Vec<Occurrence> = store.cached_occurrences(client.id, show_from, to).await?;
        stats.cached += verdicts.len();
        let missing: Vec<(&Homework, NaiveDate)> = homework
            .iter()
            .flat_map(|h| h.occurrence_dates(span_from, span_to).into_iter().map(move |d| (h, d)))
            .filter(|(h, d)| !verdicts.contains_key(&(h.id, *d)))
            .collect();
        if let (Some(lo), Some(hi)) = (missing.iter().map(|m| m.1).min(), missing.iter().map(|m| m.1).max()) {
            let evidence = store.evidence(client.id, tz, lo, hi + Duration::days(7)).await?;
            let max = hr_max(client, today);
            let judged: Vec<Occurrence> =
                missing.iter().map(|(h, d)| judge(h, cfg, tz, max, *d, &evidence, now)).collect();
            stats.judged += judged.len();
            let final_ones: Vec<Occurrence> =
                judged.iter().filter(|o| o.verdict != Verdict::Pending).cloned().collect();
            store.save_verdicts(&final_ones).await?;
            for o in judged {
                verdicts.insert((o.homework_id, o.date), o.verdict);
                if o.date >= show_from && o.date <= to {
                    shown.push(o);
                }
            }
        }
        for h in &homework {
            let mine: Vec<(NaiveDate, Verdict)> =
                verdicts.iter().filter(|((hw, _), _)| *hw == h.id).map(|((_, d), v)| (*d, *v)).collect();
            report.adherence.push(adherence(&client.name, h.id, &mine, today, attention_drop));
        }
        // A weekly occurrence (dated by its Monday) shows when its week overlaps the range.
        shown.retain(|o| o.last_day() >= from && o.date <= to);
        shown.sort_by_key(|o| (o.homework_id, o.date));
        report.occurrences.extend(shown);
    }
    Ok((report, stats))
}
