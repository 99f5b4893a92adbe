//! Gathering each chart's data from the store: verdicts through [`crate::status`] (so a
//! chart never disagrees with `status`), workouts through the evidence view (merged
//! across sources, nothing counted twice).

use super::{render::ZONE_NAMES, TrendData};
use super::{
    AdherenceData, Body, CardioData, Cell, Chart, Kind, RepsData, RosterData, RosterRow, Row, SessionData,
    SessionSeries,
};
use super::{LinkedHomework, ProgressData, ProgressTest};
use crate::engine::adherence::rate;
use crate::engine::evidence::Workout;
use crate::engine::judge::{JudgeConfig, Occurrence, Verdict};
use crate::engine::rule::{Measure, Schedule};
use crate::model::{ActivityId, Category, SeriesKind};
use crate::status::{self, hr_max};
use crate::store::{Client, Store, StoreError};
use crate::time::monday;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// What a chart is asked for. Dates are the client's local dates; None takes the kind's
/// default span ending today.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub kind: Kind,
    /// The client (every kind but the roster).
    pub client: Option<&'a Client>,
    /// The roster's clients.
    pub clients: &'a [Client],
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The session chart's workout [default: the latest with heart rate].
    pub activity: Option<ActivityId>,
    pub now: DateTime<Utc>,
}

/// The verdict settings charts judge with.
#[derive(Clone, Debug)]
pub struct Judging {
    pub cfg: JudgeConfig,
    pub attention_drop: f64,
}

impl Judging {
    pub fn from_config(h: &crate::config::HomeworkConfig) -> Self {
        Self { cfg: h.judge_config(), attention_drop: h.attention_drop_points / 100.0 }
    }
}

impl Request<'_> {
    /// Default span per kind: 12 weeks for calendars and trends, 4 weeks of cardio, a
    /// year to look for a workout.
    fn default_days(&self) -> i64 {
        match self.kind {
            Kind::Cardio => 28,
            Kind::Session => 365,
            _ => 84,
        }
    }
}

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(vec![msg])
}

pub async fn build(store: &Store, judging: &Judging, req: &Request<'_>) -> Result<Chart, StoreError> {
    if req.kind == Kind::Roster {
        return roster(store, judging, req).await;
    }
    let client = req.client.ok_or_else(|| invalid(format!("the {} chart needs a client", req.kind.as_str())))?;
    let tz = client.tz;
    let today = req.now.with_timezone(&tz).date_naive();
    let to = req.to.unwrap_or(today);
    let from = req.from.unwrap_or(to - Duration::days(req.default_days() - 1));
    if from > to {
        return Err(invalid(format!("--from {from} is after --to {to}")));
    }
    if (to - from).num_days() > 3 * 366 {
        return Err(invalid(format!("{from} to {to} is more than three years; choose a shorter span")));
    }
    let span = format!("{} – {}", from.format("%b %-d, %Y"), to.format("%b %-d, %Y"));
    match req.kind {
        Kind::Adherence => {
            let occs = occurrences(store, judging, client, from, to, req.now).await?;
            let body = adherence(store, client, &occs, from, to).await?;
            Ok(Chart { title: format!("{}: homework by day", client.name), subtitle: span, body })
        }
        Kind::Trend => {
            let occs = occurrences(store, judging, client, from, to, req.now).await?;
            let body = trend(store, client, &occs, from, to).await?;
            Ok(Chart { title: format!("{}: weekly adherence", client.name), subtitle: span, body })
        }
        Kind::Cardio => {
            let body = cardio(store, client, from, to, today).await?;
            let subtitle = format!("{span} · cardio minutes per day by heart-rate zone");
            Ok(Chart { title: format!("{}: cardio", client.name), subtitle, body })
        }
        Kind::Reps => {
            let occs = occurrences(store, judging, client, from, to, req.now).await?;
            let (name, body) = reps(store, client, &occs).await?;
            Ok(Chart { title: format!("{}: {name}", client.name), subtitle: span, body })
        }
        Kind::Session => session(store, client, from, to, today, req.activity).await,
        Kind::Progress => progress(store, judging, client, req, from, to).await,
        Kind::Roster => unreachable!("handled above"),
    }
}

async fn occurrences(
    store: &Store,
    judging: &Judging,
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<Occurrence>, StoreError> {
    let clients = std::slice::from_ref(client);
    let (report, _) = status::status(store, &judging.cfg, judging.attention_drop, clients, from, to, now).await?;
    Ok(report.occurrences)
}

fn label(id: i64, text: &str, schedule: &Schedule) -> String {
    match schedule {
        s if s.weekly() => format!("#{id} {text} (weekly)"),
        _ => format!("#{id} {text}"),
    }
}

async fn adherence(
    store: &Store,
    client: &Client,
    occs: &[Occurrence],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Body, StoreError> {
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let mut rows = Vec::new();
    for hw in store.list_homework(Some(client.id)).await?.into_iter().map(|r| r.homework) {
        if !days.iter().any(|d| hw.active_on(*d)) {
            continue;
        }
        let cells = days
            .iter()
            .map(|d| {
                // A weekly homework's verdict colours every day of its week.
                occs.iter()
                    .filter(|o| o.homework_id == hw.id)
                    .find(|o| o.covers(*d))
                    .map(|o| Cell { verdict: o.verdict, self_reported: o.self_reported })
            })
            .collect();
        rows.push(Row { label: label(hw.id, &hw.text, &hw.rule.schedule), cells });
    }
    Ok(Body::Adherence(AdherenceData { days, rows }))
}

async fn trend(
    store: &Store,
    client: &Client,
    occs: &[Occurrence],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Body, StoreError> {
    let weeks: Vec<NaiveDate> =
        std::iter::successors(Some(monday(from)), |m| Some(*m + Duration::days(7))).take_while(|m| *m <= to).collect();
    let mut series = Vec::new();
    for hw in store.list_homework(Some(client.id)).await?.into_iter().map(|r| r.homework) {
        let mine: Vec<(NaiveDate, Verdict)> =
            occs.iter().filter(|o| o.homework_id == hw.id).map(|o| (o.date, o.verdict)).collect();
        if mine.is_empty() {
            continue;
        }
        let values = weeks.iter().map(|m| rate(&mine, *m, *m + Duration::days(6))).collect();
        series.push((label(hw.id, &hw.text, &hw.rule.schedule), values));
    }
    Ok(Body::Trend(TrendData { weeks, series }))
}

/// Seconds per zone (index 1-5; below zone 1 counts as zone 1) of a workout, and the
/// seconds without heart rate (index 0).
pub fn zone_seconds(w: &Workout, max: Option<f64>) -> [f64; 6] {
    let mut out = [0.0; 6];
    let mut with_hr = 0.0;
    if let Some(max) = max.filter(|m| *m > 0.0) {
        for (bpm, secs) in &w.hr_hist {
            let pct = f64::from(*bpm) / max;
            let zone = ((pct - 0.4) / 0.1).floor().clamp(1.0, 5.0) as usize;
            out[zone] += secs;
            with_hr += secs;
        }
    }
    // No samples, but the zone times the source counted (WHOOP).
    if let Some(z) = w.hr_zones.as_ref().filter(|_| w.hr_hist.is_empty()) {
        for (zone, slot) in out.iter_mut().enumerate().skip(1) {
            let (lo, hi) = crate::engine::judge::zone_bounds(zone as u8);
            *slot = z.seconds(if zone == 1 { 0.0 } else { lo }, hi, max);
            with_hr += *slot;
        }
    }
    out[0] = (w.duration_s - with_hr).max(0.0);
    debug_assert_eq!(ZONE_NAMES.len(), out.len());
    out
}

async fn cardio(
    store: &Store,
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<Body, StoreError> {
    let tz = client.tz;
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let mut minutes = vec![[0.0; 6]; days.len()];
    let evidence = store.evidence(client.id, tz, from, to).await?;
    let max = hr_max(client, today);
    for w in evidence.workouts.iter().filter(|w| w.category == Category::Cardio) {
        let day = w.start.with_timezone(&tz).date_naive();
        let Some(i) = days.iter().position(|d| *d == day) else { continue };
        for (slot, secs) in minutes[i].iter_mut().zip(zone_seconds(w, max)) {
            *slot += secs / 60.0;
        }
    }
    // The daily target of the first cardio-minutes homework (weekly ones have no daily line).
    // The daily target of the first daily cardio-minutes homework, as it stands on the
    // last day shown (a progression has grown it by then).
    let last = days.last().copied().unwrap_or(today);
    let target = store.list_homework(Some(client.id)).await?.into_iter().find_map(|r| {
        let h = r.homework;
        let daily = h.rule.schedule.per_week().is_none() && h.rule.schedule != Schedule::WeekTotal;
        match h.rule.measure {
            Measure::Minutes { .. } if daily => Some(h.rule.day_target_on(h.from, last)),
            _ => None,
        }
    });
    Ok(Body::Cardio(CardioData { days, minutes, target }))
}

async fn reps(store: &Store, client: &Client, occs: &[Occurrence]) -> Result<(String, Body), StoreError> {
    let hw = store
        .list_homework(Some(client.id))
        .await?
        .into_iter()
        .map(|r| r.homework)
        .filter(|h| matches!(h.rule.measure, Measure::Reps { .. }))
        .max_by_key(|h| h.id);
    let Some(hw) = hw else {
        let body = Body::Reps(RepsData { points: Vec::new(), target: None, targets: Vec::new() });
        return Ok(("repetitions".into(), body));
    };
    let mine: Vec<&Occurrence> = occs.iter().filter(|o| o.homework_id == hw.id).collect();
    // With a progression the target moves week by week: each occurrence carries its own.
    let targets: Vec<(NaiveDate, f64)> = match hw.rule.progression {
        Some(_) => mine.iter().map(|o| (o.date, o.target)).collect(),
        None => Vec::new(),
    };
    let target = match hw.rule.measure {
        Measure::Reps { .. } => Some(targets.last().map_or_else(|| hw.rule.day_target().0, |t| t.1)),
        _ => None,
    };
    let points = mine
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Done | Verdict::Partial | Verdict::Missed))
        .map(|o| (o.date, o.achieved, o.self_reported))
        .collect();
    Ok((format!("#{} {}", hw.id, hw.text), Body::Reps(RepsData { points, target, targets })))
}

/// How many tests the progress chart draws, one panel each.
pub const PROGRESS_PANELS: usize = 4;

/// Each benchmark test's results over the span, and the weekly adherence of the homework
/// linked to it. Without `--from`, the span reaches back to the first result of the last
/// year when that is earlier than the default 12 weeks, so a monthly test shows its history.
async fn progress(
    store: &Store,
    judging: &Judging,
    client: &Client,
    req: &Request<'_>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Chart, StoreError> {
    let all = store.benchmarks(client.id, None).await?;
    let from = match req.from {
        Some(f) => f,
        None => {
            all.iter().map(|b| b.date).filter(|d| *d >= to - Duration::days(365) && *d < from).min().unwrap_or(from)
        }
    };
    let span = format!("{} – {}", from.format("%b %-d, %Y"), to.format("%b %-d, %Y"));
    // One test per name (any case); the store orders by name, then date.
    let mut tests: Vec<(ProgressTest, Option<i64>)> = Vec::new();
    for b in all.iter().filter(|b| (from..=to).contains(&b.date)) {
        let same = |t: &(ProgressTest, Option<i64>)| t.0.name.to_lowercase() == b.name.to_lowercase();
        let i = match tests.iter().position(same) {
            Some(i) => i,
            None => {
                let test = ProgressTest { name: b.name.clone(), unit: b.unit, points: Vec::new(), homework: None };
                tests.push((test, None));
                tests.len() - 1
            }
        };
        tests[i].0.points.push((b.date, b.value));
        if b.homework_id.is_some() {
            tests[i].1 = b.homework_id;
        }
    }
    // The most recently measured tests, if there are more than fit.
    tests.sort_by_key(|t| std::cmp::Reverse(t.0.points.last().map(|p| p.0)));
    let hidden = tests.len().saturating_sub(PROGRESS_PANELS);
    tests.truncate(PROGRESS_PANELS);
    tests.sort_by_key(|t| t.0.name.to_lowercase());
    if tests.iter().any(|t| t.1.is_some()) {
        let occs = occurrences(store, judging, client, from, to, req.now).await?;
        let homework = store.list_homework(Some(client.id)).await?;
        let weeks: Vec<NaiveDate> = std::iter::successors(Some(monday(from)), |m| Some(*m + Duration::days(7)))
            .take_while(|m| *m <= to)
            .collect();
        for (test, link) in &mut tests {
            let Some(hw) = link.and_then(|id| homework.iter().find(|h| h.homework.id == id)).map(|h| &h.homework)
            else {
                continue;
            };
            let mine: Vec<(NaiveDate, Verdict)> =
                occs.iter().filter(|o| o.homework_id == hw.id).map(|o| (o.date, o.verdict)).collect();
            test.homework = Some(LinkedHomework {
                label: label(hw.id, &hw.text, &hw.rule.schedule),
                weeks: weeks.iter().map(|m| (*m, rate(&mine, *m, *m + Duration::days(6)))).collect(),
            });
        }
    }
    let tests: Vec<ProgressTest> = tests.into_iter().map(|t| t.0).collect();
    let subtitle = if tests.is_empty() {
        span
    } else if hidden > 0 {
        format!("{span} · the {} most recently measured of {} tests", tests.len(), tests.len() + hidden)
    } else {
        format!("{span} · benchmark results; bars: weekly adherence of the homework linked to the test")
    };
    let body = Body::Progress(ProgressData { from, to, tests, hidden });
    Ok(Chart { title: format!("{}: progress", client.name), subtitle, body })
}

async fn roster(store: &Store, judging: &Judging, req: &Request<'_>) -> Result<Chart, StoreError> {
    let now = req.now;
    let today = now.date_naive();
    let (report, _) =
        status::status(store, &judging.cfg, judging.attention_drop, req.clients, today, today, now).await?;
    Ok(roster_chart(roster_rows(&report, req.clients), today))
}

/// The roster chart of already computed rows (sorted here).
pub fn roster_chart(mut rows: Vec<RosterRow>, today: NaiveDate) -> Chart {
    sort_roster(&mut rows);
    let subtitle = format!("as of {} · mean of each client's homework · 80 % marked", today.format("%b %-d, %Y"));
    Chart { title: "Clients' adherence".into(), subtitle, body: Body::Roster(RosterData { rows }) }
}

/// A row per client with homework: the mean of its homework's adherence per window.
pub fn roster_rows(report: &status::StatusReport, clients: &[Client]) -> Vec<RosterRow> {
    clients
        .iter()
        .filter_map(|c| {
            let mine: Vec<_> = report.adherence.iter().filter(|a| a.client == c.name).collect();
            if mine.is_empty() {
                return None;
            }
            let mean = |f: fn(&crate::engine::adherence::Adherence) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|a| f(a)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            Some(RosterRow {
                client: c.name.clone(),
                days7: mean(|a| a.days7),
                days30: mean(|a| a.days30),
                days90: mean(|a| a.days90),
                needs_attention: mine.iter().any(|a| a.needs_attention),
            })
        })
        .collect()
}

/// Needs-attention first, then the lowest 7-day adherence (unknown last), then by name.
pub fn sort_roster(rows: &mut [RosterRow]) {
    rows.sort_by(|a, b| {
        let key = |r: &RosterRow| r.days7.or(r.days30).unwrap_or(2.0);
        b.needs_attention
            .cmp(&a.needs_attention)
            .then(key(a).total_cmp(&key(b)))
            .then_with(|| a.client.to_lowercase().cmp(&b.client.to_lowercase()))
    });
}

async fn session(
    store: &Store,
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    activity: Option<ActivityId>,
) -> Result<Chart, StoreError> {
    let tz = client.tz;
    let evidence = store.evidence(client.id, tz, from, to).await?;
    let workout = match activity {
        Some(id) => {
            evidence.workouts.iter().find(|w| w.id == id || w.parts.iter().any(|p| p.id == id)).ok_or_else(|| {
                StoreError::NotFound(format!(
                    "activity {id} of {} between {from} and {to}; see `coachd activities {}` (or widen --from)",
                    client.name, client.name
                ))
            })?
        }
        None => match evidence.workouts.iter().rev().find(|w| w.hr_samples > 0) {
            Some(w) => w,
            None => {
                let body = Body::Session(SessionData {
                    samples: Vec::new(),
                    hr_max: hr_max(client, today),
                    sources: vec![],
                    extra: vec![],
                });
                let title = format!("{}: workout", client.name);
                return Ok(Chart { title, subtitle: format!("no workout with heart rate from {from} to {to}"), body });
            }
        },
    };
    // The part with the most heart-rate samples carries the curve (the merged workout
    // keeps the best samples; the others are the same session seen by other sources).
    let mut samples = Vec::new();
    if let Some(part) = workout.parts.iter().filter(|p| p.hr_samples > 0).max_by_key(|p| p.hr_samples) {
        let start_ms = workout.start.timestamp_millis();
        samples = store
            .series(part.id, SeriesKind::Hr)
            .await?
            .into_iter()
            .map(|s| ((s.t_ms - start_ms) as f64 / 60_000.0, s.value))
            .collect();
    }
    // A machine's or sensor's series, from the first record of the workout that has each.
    let start_ms = workout.start.timestamp_millis();
    let mut extra = Vec::new();
    for kind in [SeriesKind::Power, SeriesKind::Cadence, SeriesKind::Speed, SeriesKind::Distance, SeriesKind::Strokes] {
        for part in &workout.parts {
            let series = store.series(part.id, kind).await?;
            if series.is_empty() {
                continue;
            }
            let (label, scale) = match kind {
                SeriesKind::Power => ("power, W", 1.0),
                SeriesKind::Cadence if part.activity_type == "row" => ("stroke rate, /min", 1.0),
                SeriesKind::Cadence => ("cadence, /min", 1.0),
                SeriesKind::Speed => ("speed, km/h", 3.6),
                SeriesKind::Distance => ("distance, m", 1.0),
                _ => ("strokes", 1.0),
            };
            let points = series.into_iter().map(|s| ((s.t_ms - start_ms) as f64 / 60_000.0, s.value * scale)).collect();
            extra.push(SessionSeries { label: label.into(), points });
            break;
        }
    }
    let local = workout.start.with_timezone(&tz);
    let title = format!("{}: {} on {}", client.name, workout.activity_type, local.format("%a %b %-d, %H:%M"));
    let subtitle = format!(
        "{:.0} min · activity {} · sources: {}",
        workout.duration_s / 60.0,
        workout.id,
        workout.sources.join(", ")
    );
    let body =
        Body::Session(SessionData { samples, hr_max: hr_max(client, today), sources: workout.sources.clone(), extra });
    Ok(Chart { title, subtitle, body })
}
