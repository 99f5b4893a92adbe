//! Verdicts and adherence for `status`, the dashboard and the API.
//!
//! Final verdicts are cached (`store::verdicts`); ingest, check-ins and excuses mark the
//! local dates they change, and a status run first drops the cached months those dates
//! can affect, then judges only occurrences without a cached verdict (pending ones are
//! never cached).

use crate::engine::adherence::{adherence, Adherence};
use crate::engine::evidence::Evidence;
use crate::engine::judge::{judge, Occurrence, Verdict};
use crate::engine::judge::{Homework, JudgeConfig};
use crate::model::ClientId;
use crate::store::verdicts::MonthRow;
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
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

/// Clients read, judged and cached together at most: bounds what a run holds in memory,
/// whatever the number of clients, while keeping the statements per client few.
const CHUNK: usize = 250;

/// Clients per chunk at least, when a run is split so that every core has a chunk.
const CHUNK_MIN: usize = 25;

/// Occurrences judged per blocking task at least: below this, the run judges in place.
const PARALLEL_MIN: usize = 4_000;

/// Verdicts with dates in `[from, to]` and adherence as of `now`, for each client.
///
/// Clients are taken a chunk at a time, as many chunks at once as there are cores (each
/// on its own connection: reading, decoding and judging are spread over the cores, and
/// the results come back in the clients' order). For a chunk, a run reads what it needs
/// for every client at once: the homework, which clients changed, the cached verdicts of
/// the span adherence needs and the cached occurrences of the range shown (decoded for
/// those months only); then the evidence of the occurrences not cached, which it judges
/// and caches in one write.
pub async fn status(
    store: &Store,
    cfg: &JudgeConfig,
    attention_drop: f64,
    clients: &[Client],
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(StatusReport, RunStats), StoreError> {
    let json = format!("{}{}", crate::engine::REVISION, serde_json::to_string(cfg).unwrap_or_default());
    let fingerprint = crate::crypto::hex(&crate::crypto::sha256(json.as_bytes())[..8]);
    store.check_verdict_settings(&fingerprint).await?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    let size = clients.len().div_ceil(cores).clamp(CHUNK_MIN, CHUNK);
    let run = std::sync::Arc::new(Run { store: store.clone(), cfg: cfg.clone(), attention_drop, from, to, now });
    let mut report = StatusReport::default();
    let mut stats = RunStats::default();
    if clients.len() <= size {
        run.chunk(clients, &mut report, &mut stats).await?;
        return Ok((report, stats));
    }
    let mut add = |part: Result<_, tokio::task::JoinError>| -> Result<(), StoreError> {
        let (part, s): (StatusReport, RunStats) =
            part.map_err(|e| StoreError::Corrupt(format!("a status run stopped: {e}")))??;
        // The first part's vectors are taken as they are: a year of a roster's occurrences
        // is tens of megabytes, not worth copying.
        if report.occurrences.is_empty() && report.adherence.is_empty() {
            report = part;
        } else {
            report.occurrences.extend(part.occurrences);
            report.adherence.extend(part.adherence);
        }
        stats.judged += s.judged;
        stats.cached += s.cached;
        stats.invalidated += s.invalidated;
        Ok(())
    };
    // At most one chunk per core in flight, taken back in the clients' order.
    let mut running = std::collections::VecDeque::new();
    for chunk in clients.chunks(size) {
        if running.len() == cores {
            if let Some(first) = running.pop_front() {
                add(first.await)?;
            }
        }
        let (run, chunk) = (run.clone(), chunk.to_vec());
        running.push_back(tokio::spawn(async move {
            let (mut report, mut stats) = (StatusReport::default(), RunStats::default());
            run.chunk(&chunk, &mut report, &mut stats).await.map(|()| (report, stats))
        }));
    }
    for part in running {
        add(part.await)?;
    }
    Ok((report, stats))
}

struct Run {
    store: Store,
    cfg: JudgeConfig,
    attention_drop: f64,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
}

/// One client's part of a run.
struct Plan<'a> {
    client: &'a Client,
    today: NaiveDate,
    /// The dates whose verdicts adherence needs (and the displayed range, if wider).
    span: (NaiveDate, NaiveDate),
    homework: Vec<Homework>,
    /// Per homework (by index), the (date, verdict) pairs of the span.
    verdicts: Vec<Vec<(NaiveDate, Verdict)>>,
    shown: Vec<Occurrence>,
    /// Occurrences to judge: (homework index, date).
    missing: Vec<(usize, NaiveDate)>,
}

impl Run {
    async fn chunk(
        &self,
        clients: &[Client],
        report: &mut StatusReport,
        stats: &mut RunStats,
    ) -> Result<(), StoreError> {
        let (store, from, to) = (&self.store, self.from, self.to);
        let started = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
        let ids: Vec<ClientId> = clients.iter().map(|c| c.id).collect();
        let mut homework = store.homework_of(&ids).await?;
        let dirty = store.dirty_clients(&ids).await?;
        for client in clients.iter().filter(|c| dirty.contains(&c.id)) {
            let Some(homework) = homework.get(&client.id) else { continue };
            stats.invalidated += store
                .invalidate_dirty(client.id, |d| {
                    homework.iter().flat_map(|h| h.affected_by(d).into_iter().map(|o| (h.id, o))).collect()
                })
                .await?;
        }
        // Adherence needs only verdicts; the displayed range needs whole occurrences. A
        // weekly occurrence is dated by its Monday, up to 6 days before `from`.
        let show_from = from - Duration::days(6);
        let mut plans: Vec<Plan> = clients
            .iter()
            .filter_map(|client| {
                let homework = homework.remove(&client.id).filter(|h| !h.is_empty())?;
                let today = self.now.with_timezone(&client.tz).date_naive();
                // Weekly occurrences are dated by their Monday, up to 6 days before the
                // span: start it on a Monday so every occurrence in it finds its verdict.
                let span = (crate::time::monday(from.min(today - Duration::days(LOOKBACK_DAYS - 1))), to.max(today));
                let verdicts = vec![Vec::new(); homework.len()];
                Some(Plan { client, today, span, homework, verdicts, shown: Vec::new(), missing: Vec::new() })
            })
            .collect();
        let (Some(lo), Some(hi)) = (plans.iter().map(|p| p.span.0).min(), plans.iter().map(|p| p.span.1).max()) else {
            return Ok(());
        };
        let homework: HashMap<i64, &Homework> =
            plans.iter().flat_map(|p| p.homework.iter().map(|h| (h.id, h))).collect();
        let t = std::time::Instant::now();
        let mut cached = store.cached(&homework, lo, hi, show_from, to).await?;
        let read_ms = ms(t);
        drop(homework);
        for plan in &mut plans {
            let (span_from, span_to) = plan.span;
            for (i, h) in plan.homework.iter().enumerate() {
                let mut have = cached.verdicts.remove(&h.id).unwrap_or_default();
                have.retain(|(d, _)| *d >= span_from && *d <= span_to);
                have.sort_unstable_by_key(|(d, _)| *d);
                have.dedup_by_key(|(d, _)| *d);
                stats.cached += have.len();
                for d in h.occurrence_dates(span_from, span_to) {
                    if have.binary_search_by_key(&d, |(d, _)| *d).is_err() {
                        plan.missing.push((i, d));
                    }
                }
                plan.verdicts[i] = have;
                plan.shown.extend(cached.occurrences.remove(&h.id).unwrap_or_default());
            }
        }

        // The evidence of what is not cached, for every client of the chunk at once.
        let wanted: Vec<(ClientId, Tz, NaiveDate, NaiveDate)> = plans
            .iter()
            .filter_map(|p| {
                let lo = p.missing.iter().map(|m| m.1).min()?;
                let hi = p.missing.iter().map(|m| m.1).max()?;
                Some((p.client.id, p.client.tz, lo, hi + Duration::days(7)))
            })
            .collect();
        let t = std::time::Instant::now();
        let mut evidence = store.evidence_of(&wanted).await?;
        let evidence_ms = ms(t);
        let jobs: Vec<Job> = plans
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| !p.missing.is_empty())
            .map(|(i, p)| Job {
                plan: i,
                tz: p.client.tz,
                hr_max: hr_max(p.client, p.today),
                homework: p.homework.clone(),
                missing: std::mem::take(&mut p.missing),
                evidence: evidence.remove(&p.client.id).unwrap_or_default(),
                shown: (show_from, to),
            })
            .collect();
        let mut rows = Vec::new();
        let t = std::time::Instant::now();
        let judged_now = stats.judged;
        for judged in judge_all(jobs, &self.cfg, self.now).await? {
            let plan = &mut plans[judged.plan];
            stats.judged += judged.count;
            for (k, d, v) in judged.verdicts {
                plan.verdicts[k].push((d, v));
            }
            plan.shown.extend(judged.shown);
            rows.extend(judged.rows);
        }
        let judge_ms = ms(t);
        let t = std::time::Instant::now();
        store.save_verdicts(rows).await?;
        let write_ms = ms(t);

        report.occurrences.reserve(plans.iter().map(|p| p.shown.len()).sum());
        report.adherence.reserve(plans.iter().map(|p| p.homework.len()).sum());
        for mut plan in plans {
            for (h, mine) in plan.homework.iter().zip(&plan.verdicts) {
                report.adherence.push(adherence(&plan.client.name, h.id, mine, plan.today, self.attention_drop));
            }
            // A weekly occurrence (dated by its Monday) shows when its week overlaps the range.
            plan.shown.retain(|o| o.last_day() >= from && o.date <= to);
            plan.shown.sort_by_key(|o| (o.homework_id, o.date));
            report.occurrences.extend(plan.shown);
        }
        tracing::debug!(
            clients = clients.len(),
            judged = stats.judged - judged_now,
            cache_ms = read_ms,
            evidence_ms,
            judge_ms,
            write_ms,
            total_ms = ms(started),
            "status: a chunk of clients"
        );
        Ok(())
    }
}

/// One client's occurrences to judge, with what judging them needs (owned, so that it can
/// move to a blocking task).
struct Job {
    plan: usize,
    tz: Tz,
    hr_max: Option<f64>,
    homework: Vec<Homework>,
    missing: Vec<(usize, NaiveDate)>,
    evidence: Evidence,
    /// The dates whose occurrences are kept whole.
    shown: (NaiveDate, NaiveDate),
}

/// What judging a job gave: the verdicts (homework index, date, verdict), the occurrences
/// shown, and the final ones encoded for the cache.
struct Judged {
    plan: usize,
    count: usize,
    verdicts: Vec<(usize, NaiveDate, Verdict)>,
    shown: Vec<Occurrence>,
    rows: Vec<MonthRow>,
}

impl Job {
    fn run(self, cfg: &JudgeConfig, now: DateTime<Utc>) -> Judged {
        let mut out = Judged {
            plan: self.plan,
            count: self.missing.len(),
            verdicts: Vec::new(),
            shown: Vec::new(),
            rows: Vec::new(),
        };
        let mut to_cache = Vec::new();
        for (k, d) in &self.missing {
            let o = judge(&self.homework[*k], cfg, self.tz, self.hr_max, *d, &self.evidence, now);
            out.verdicts.push((*k, o.date, o.verdict));
            if o.verdict != Verdict::Pending {
                to_cache.push(MonthRow::entry(&o));
            }
            if o.date >= self.shown.0 && o.date <= self.shown.1 {
                out.shown.push(o);
            }
        }
        out.rows = MonthRow::group(to_cache.into_iter().flatten());
        out
    }
}

/// Judge the jobs, on every core when there are many occurrences (the engine is pure and
/// each client's evidence its own), in place when there are few.
async fn judge_all(jobs: Vec<Job>, cfg: &JudgeConfig, now: DateTime<Utc>) -> Result<Vec<Judged>, StoreError> {
    let total: usize = jobs.iter().map(|j| j.missing.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    let tasks = cores.min(total / PARALLEL_MIN).max(1);
    if tasks == 1 {
        return Ok(jobs.into_iter().map(|j| j.run(cfg, now)).collect());
    }
    // Deal the clients out so each task gets about the same number of occurrences.
    let mut shares: Vec<(usize, Vec<Job>)> = (0..tasks).map(|_| (0, Vec::new())).collect();
    let mut jobs = jobs;
    jobs.sort_by_key(|j| std::cmp::Reverse(j.missing.len()));
    for job in jobs {
        if let Some(share) = shares.iter_mut().min_by_key(|s| s.0) {
            share.0 += job.missing.len();
            share.1.push(job);
        }
    }
    let handles: Vec<_> = shares
        .into_iter()
        .map(|(_, share)| {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || share.into_iter().map(|j| j.run(&cfg, now)).collect::<Vec<_>>())
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.extend(h.await.map_err(|e| StoreError::Corrupt(format!("judging stopped: {e}")))?);
    }
    Ok(out)
}
