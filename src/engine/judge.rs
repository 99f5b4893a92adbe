//! Judging: one occurrence of one homework, from evidence, at a given moment.

use super::evidence::{ActivityRec, Evidence, Workout};
use super::rule::{Bands, Effort, JudgedBy, Measure, Rule, Schedule, Window};
use crate::activity_types;
use crate::model::{Category, Metric};
use crate::time::{local, monday};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Done,
    Partial,
    Missed,
    NoData,
    Pending,
    Excused,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Partial => "partial",
            Self::Missed => "missed",
            Self::NoData => "no_data",
            Self::Pending => "pending",
            Self::Excused => "excused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Done, Self::Partial, Self::Missed, Self::NoData, Self::Pending, Self::Excused]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Settings that shape every verdict (the `[homework]` config section).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JudgeConfig {
    pub bands: Bands,
    /// How long after a window closes late syncs are awaited before judging.
    pub grace: Duration,
    pub nightly: Window,
    /// Sources that never give daily steps (WHOOP): what they deliver does not make a day
    /// one with data for a step homework, so a day only they saw is `no_data`, not missed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_steps: Vec<String>,
}

/// A homework as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Homework {
    pub id: i64,
    /// Shared by every occurrence judged or read for it (not copied per occurrence).
    pub client: Arc<str>,
    pub text: Arc<str>,
    pub rule: Rule,
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

impl Homework {
    /// `day`, or `week` for weekly homework (its occurrences are dated by their Monday).
    pub fn period(&self) -> &'static str {
        if self.rule.schedule.weekly() {
            "week"
        } else {
            "day"
        }
    }

    pub fn active_on(&self, d: NaiveDate) -> bool {
        d >= self.from && self.until.is_none_or(|u| d <= u)
    }

    /// The dates of its occurrences in `[from, to]` (for weekly homework, week Mondays).
    pub fn occurrence_dates(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        if self.rule.schedule.weekly() {
            let mut m = monday(from);
            while m <= to {
                if (0..7).any(|i| self.active_on(m + Duration::days(i))) {
                    out.push(m);
                }
                m += Duration::days(7);
            }
        } else {
            let mut d = from.max(self.from);
            let last = self.until.map_or(to, |u| u.min(to));
            while d <= last {
                if self.rule.occurs_on(self.from, d) {
                    out.push(d);
                }
                d += Duration::days(1);
            }
        }
        out
    }

    /// The occurrence dates a change of evidence on local date `d` can affect.
    pub fn affected_by(&self, d: NaiveDate) -> Vec<NaiveDate> {
        // A nightly window reaches into the next morning, and a night's sleep is dated by
        // the wake-up day: a change on `d` can move the occurrence of `d - 1` as well.
        let (a, b) = (d - Duration::days(1), d + Duration::days(1));
        let mut dates = self.occurrence_dates(a, b);
        if self.rule.schedule.weekly() {
            dates.dedup();
        }
        dates
    }
}

/// One piece of evidence behind a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvidenceRef {
    Activity { activity_id: i64, sources: Vec<String>, amount: f64 },
    Metric { metric: String, date: NaiveDate, value: f64, sources: Vec<String> },
    Checkin { checkin_id: i64, date: NaiveDate, value: Option<f64>, self_reported: bool },
}

/// One occurrence of one homework, judged: the `status --json` shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub client: Arc<str>,
    pub homework_id: i64,
    pub homework: Arc<str>,
    pub date: NaiveDate,
    /// `day`, or `week` (then `date` is the Monday and achieved/target count days).
    pub period: Cow<'static, str>,
    pub verdict: Verdict,
    pub achieved: f64,
    pub target: f64,
    pub unit: Cow<'static, str>,
    /// A check-in supplied more than the devices showed.
    pub self_reported: bool,
    pub evidence: Vec<EvidenceRef>,
    /// Why it cannot be judged, where that is known (the client's sources cannot give what
    /// it counts): set by the application when shown, never cached with the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Occurrence {
    /// An occurrence as a verdict cache keeps it; the homework supplies the rest.
    pub fn from_cache(
        hw: &Homework,
        date: NaiveDate,
        verdict: Verdict,
        achieved: f64,
        target: f64,
        self_reported: bool,
        evidence: Vec<EvidenceRef>,
    ) -> Self {
        Self {
            client: hw.client.clone(),
            homework_id: hw.id,
            homework: hw.text.clone(),
            date,
            period: Cow::Borrowed(hw.period()),
            verdict,
            achieved,
            target,
            unit: Cow::Borrowed(hw.rule.unit()),
            self_reported,
            evidence,
            note: None,
        }
    }

    /// The last date it covers: a weekly occurrence (dated by its Monday) covers the week.
    pub fn last_day(&self) -> NaiveDate {
        if self.period == "week" {
            self.date + Duration::days(6)
        } else {
            self.date
        }
    }

    pub fn covers(&self, d: NaiveDate) -> bool {
        d >= self.date && d <= self.last_day()
    }
}

/// The UTC interval of the rule's window on local date `d`.
pub fn window(rule: &Rule, cfg: &JudgeConfig, tz: Tz, d: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let w = rule.window.or(rule.nightly.then_some(cfg.nightly));
    let next = d + Duration::days(1);
    match w {
        None => (local(tz, d, NaiveTime::MIN), local(tz, next, NaiveTime::MIN)),
        Some(w) if w.crosses_midnight() => (local(tz, d, w.start), local(tz, next, w.end)),
        Some(w) => (local(tz, d, w.start), local(tz, d, w.end)),
    }
}

/// Cardio effort starts at this % of HR max (moderate intensity).
pub const CARDIO_PCT: f64 = 64.0;

/// HR zone bounds in % of HR max: zone 1 is 50-60 %, ..., zone 5 from 90 % up.
pub fn zone_bounds(z: u8) -> (f64, f64) {
    let lo = 40.0 + 10.0 * f64::from(z);
    (lo, if z >= 5 { f64::INFINITY } else { lo + 10.0 })
}

/// Minutes of `of` in one record: from its heart-rate samples where it has them and the
/// HR max is known, else from the zone times its source counted (WHOOP), else (the effort
/// cannot be told) its whole duration when it is cardio.
fn record_minutes(w: &ActivityRec, of: &Effort, hr_max: Option<f64>) -> f64 {
    let by_duration = |ok: bool| if ok { w.duration_s / 60.0 } else { 0.0 };
    let hr = hr_max.filter(|_| !w.hr_hist.is_empty());
    let zones = w.hr_zones.as_ref().filter(|_| w.hr_hist.is_empty());
    match of {
        Effort::Category(Category::Cardio) => match (hr, zones) {
            (Some(max), _) => w.hr_seconds((CARDIO_PCT / 100.0 * max).ceil(), f64::INFINITY) / 60.0,
            (None, Some(z)) => z.seconds(CARDIO_PCT, f64::INFINITY, hr_max) / 60.0,
            (None, None) => by_duration(w.category == Category::Cardio),
        },
        Effort::Category(c) => by_duration(w.category == *c),
        Effort::Zone(z) => {
            let (lo, hi) = zone_bounds(*z);
            match (hr, zones) {
                (Some(max), _) => w.hr_seconds((lo / 100.0 * max).ceil(), (hi / 100.0 * max).ceil()) / 60.0,
                (None, Some(zt)) => zt.seconds(lo, hi, hr_max) / 60.0,
                // Without HR samples or HR max a zone cannot be told: cardio time stands in.
                (None, None) => by_duration(w.category == Category::Cardio),
            }
        }
        Effort::Family(f) => by_duration(activity_types::family(&w.activity_type) == f),
        Effort::Any => w.duration_s / 60.0,
    }
}

/// The day's share of a bedtime or wake-up time kept: 1 on time, less by the minute late,
/// 0 an hour or more late.
fn on_time(at: DateTime<Utc>, by: DateTime<Utc>) -> f64 {
    let late_min = (at - by).num_seconds() as f64 / 60.0;
    (1.0 - late_min.max(0.0) / 60.0).max(0.0)
}

/// A clock-time metric (Unix seconds) as an instant; None when it is not one.
fn instant(v: f64) -> Option<DateTime<Utc>> {
    (v.is_finite() && v > 0.0 && v < 1e11).then(|| DateTime::from_timestamp(v as i64, 0)).flatten()
}

fn session_matches(w: &ActivityRec, of: &Effort) -> bool {
    match of {
        Effort::Category(c) => w.category == *c,
        Effort::Zone(_) => w.category == Category::Cardio,
        Effort::Family(f) => activity_types::family(&w.activity_type) == f,
        Effort::Any => true,
    }
}

/// Day-level amount from devices and manual logs, with the evidence behind it.
fn day_amount(
    rule: &Rule,
    cfg: &JudgeConfig,
    tz: Tz,
    hr_max: Option<f64>,
    d: NaiveDate,
    ev: &Evidence,
) -> (f64, Vec<EvidenceRef>) {
    let (a, b) = window(rule, cfg, tz, d);
    let mut refs = Vec::new();
    let mut total = 0.0;
    // A workout counts, whole, for the window its start falls in (as Strava and
    // TrainingPeaks date activities): a 23:30 run is that evening's, and a workout is
    // never split over two days. Sets carry their own times when the source knows them.
    let first = ev.workouts.partition_point(|w| w.start < a - Duration::days(2));
    let near: Vec<&Workout> = ev.workouts[first..].iter().take_while(|w| w.start < b).collect();
    // Which of a workout's records count here: all of them when it starts in the window.
    // When it starts earlier (another source's longer record began before midnight) but
    // one of its records starts in the window, the records from the window's start on
    // still count here: what a record alone earned is never taken away by another
    // source joining it. The earlier day keeps the whole workout.
    let counted = |w: &&Workout| -> Option<DateTime<Utc>> {
        if w.start >= a {
            Some(w.start)
        } else if w.parts.iter().any(|p| p.start >= a && p.start < b) {
            Some(a)
        } else {
            None
        }
    };
    let mut add = |w: &Workout, amount: f64, refs: &mut Vec<EvidenceRef>| {
        if amount > 0.0 {
            total += amount;
            refs.push(EvidenceRef::Activity { activity_id: w.id, sources: w.sources.clone(), amount: round2(amount) });
        }
    };
    match &rule.measure {
        // Each workout counts once: the union of its records (Workout::credit).
        Measure::Minutes { of, .. } => {
            for (w, from) in near.iter().filter_map(|w| Some((*w, counted(w)?))) {
                let most = w.credit(|p| if p.start >= from { record_minutes(p, of, hr_max) } else { 0.0 });
                add(w, most, &mut refs);
            }
        }
        Measure::Reps { exercise, .. } => {
            for w in near {
                let in_window = |p: &ActivityRec| -> u32 {
                    p.sets
                        .iter()
                        .filter(|s| s.exercise == *exercise)
                        .filter(|s| s.start.unwrap_or(p.start) >= a && s.start.unwrap_or(p.start) < b)
                        .map(|s| s.reps)
                        .sum()
                };
                let most = w.parts.iter().map(in_window).max().unwrap_or(0);
                add(w, f64::from(most), &mut refs);
            }
        }
        Measure::Session { of } => {
            for (w, from) in near.iter().filter_map(|w| Some((*w, counted(w)?))) {
                if w.parts.iter().any(|p| p.start >= from && session_matches(p, of)) {
                    add(w, 1.0, &mut refs);
                }
            }
        }
        Measure::Distance { of, unit, .. } => {
            for (w, from) in near.iter().filter_map(|w| Some((*w, counted(w)?))) {
                let most =
                    w.credit(
                        |p| {
                            if p.start >= from && session_matches(p, of) {
                                p.distance_m.unwrap_or(0.0)
                            } else {
                                0.0
                            }
                        },
                    );
                add(w, most / unit.meters(), &mut refs);
            }
        }
        Measure::Sets { exercise, reps, .. } => {
            // Each set counts as the share of the reps it reached, at most one set.
            let per_set = f64::from((*reps).max(1));
            for w in near {
                let in_window = |p: &ActivityRec| -> f64 {
                    p.sets
                        .iter()
                        .filter(|s| s.exercise == *exercise && s.reps > 0)
                        .filter(|s| s.start.unwrap_or(p.start) >= a && s.start.unwrap_or(p.start) < b)
                        .map(|s| (f64::from(s.reps) / per_set).min(1.0))
                        .sum()
                };
                let most = w.parts.iter().map(in_window).fold(0.0, f64::max);
                add(w, most, &mut refs);
            }
        }
        Measure::Hold { exercise, .. } => {
            // The longest single hold counts: a 2-minute plank is one plank.
            let mut best: Option<(&Workout, f64)> = None;
            for w in near {
                let longest = w
                    .parts
                    .iter()
                    .flat_map(|p| p.sets.iter().map(move |s| (p, s)))
                    .filter(|(p, s)| {
                        s.exercise == *exercise && s.start.unwrap_or(p.start) >= a && s.start.unwrap_or(p.start) < b
                    })
                    .filter_map(|(_, s)| s.duration_s)
                    .fold(0.0, f64::max);
                if longest > best.map_or(0.0, |b| b.1) {
                    best = Some((w, longest));
                }
            }
            if let Some((w, secs)) = best {
                add(w, secs, &mut refs);
            }
        }
        Measure::Steps { .. } => {
            if let Some(r) = metric(ev, Metric::Steps, d, 1.0) {
                total = r.1;
                refs.push(r.0);
            }
        }
        Measure::Sleep { .. } => {
            if let Some(r) = metric(ev, Metric::SleepS, d + Duration::days(1), 3600.0) {
                total = r.1;
                refs.push(r.0);
            }
        }
        Measure::BedBy { time } => {
            // The night that starts on `d` is dated by its wake-up day. A bedtime before
            // noon is after midnight ("in bed by 00:30").
            let by_day = if *time < NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN) {
                d + Duration::days(1)
            } else {
                d
            };
            let by = local(tz, by_day, *time);
            if let Some((r, at)) = clock_metric(ev, Metric::SleepStart, d + Duration::days(1), tz) {
                total = on_time(at, by);
                refs.push(r);
            }
        }
        Measure::UpBy { time } => {
            let by = local(tz, d, *time);
            if let Some((r, at)) = clock_metric(ev, Metric::SleepEnd, d, tz) {
                total = on_time(at, by);
                refs.push(r);
            }
        }
        // Only the client can tell.
        Measure::Habit { .. } | Measure::Questions { .. } => {}
    }
    (round2(total), refs)
}

/// The largest value any source gave for a metric on a date (sources count the same
/// steps, so they are never added), scaled by `per_unit`.
fn metric(ev: &Evidence, m: Metric, date: NaiveDate, per_unit: f64) -> Option<(EvidenceRef, f64)> {
    let values: Vec<_> = ev.daily.iter().filter(|v| v.metric == m && v.date == date).collect();
    let best = values.iter().map(|v| v.value).fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))))?;
    let mut sources: Vec<String> = values.iter().map(|v| v.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let value = best / per_unit;
    Some((EvidenceRef::Metric { metric: m.as_str().into(), date, value: round2(value), sources }, value))
}

/// The earliest instant any source gave for a clock-time metric (the one most in the
/// client's favour: sources that saw the night start or end differently never make a
/// bedtime late), with its evidence showing the local clock time as hours (23.5 is 23:30,
/// 24.5 is 00:30 the next morning).
fn clock_metric(ev: &Evidence, m: Metric, date: NaiveDate, tz: Tz) -> Option<(EvidenceRef, DateTime<Utc>)> {
    let values: Vec<_> = ev.daily.iter().filter(|v| v.metric == m && v.date == date).collect();
    let at = values.iter().filter_map(|v| instant(v.value)).min()?;
    let mut sources: Vec<String> = values.iter().map(|v| v.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let localized = at.with_timezone(&tz);
    let evening = if m == Metric::SleepStart { date - Duration::days(1) } else { date };
    let hours = (localized.naive_local() - evening.and_time(NaiveTime::MIN)).num_seconds() as f64 / 3600.0;
    Some((EvidenceRef::Metric { metric: m.as_str().into(), date, value: round2(hours), sources }, at))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct DayResult {
    achieved: f64,
    self_reported: bool,
    refs: Vec<EvidenceRef>,
    has_checkin: bool,
}

fn judge_day(hw: &Homework, cfg: &JudgeConfig, tz: Tz, hr_max: Option<f64>, d: NaiveDate, ev: &Evidence) -> DayResult {
    let (device, mut refs) = day_amount(&hw.rule, cfg, tz, hr_max, d, ev);
    let target = hw.rule.day_target_on(hw.from, d);
    let mut reported = 0.0;
    let mut has_checkin = false;
    for c in ev.checkins.iter().filter(|c| c.date == d && c.homework_id == Some(hw.id)) {
        has_checkin = true;
        reported += c.value.unwrap_or(target);
        refs.push(EvidenceRef::Checkin { checkin_id: c.id, date: c.date, value: c.value, self_reported: true });
    }
    // A check-in reports the day's total: it stands in for what devices missed, it does not add to it.
    let achieved = if reported > device { reported } else { device };
    DayResult { achieved: round2(achieved), self_reported: reported > device, refs, has_checkin }
}

fn has_passive(ev: &Evidence, cfg: &JudgeConfig, rule: &Rule, d: NaiveDate) -> bool {
    if matches!(rule.measure, Measure::Steps { .. }) && !cfg.no_steps.is_empty() {
        // Only a source that could have counted steps makes a day one with data.
        let could =
            |d: NaiveDate| ev.passive_sources.get(&d).is_some_and(|s| s.iter().any(|src| !cfg.no_steps.contains(src)));
        let crosses = rule.nightly || rule.window.is_some_and(|w| w.crosses_midnight());
        return could(d) || (crosses && could(d + Duration::days(1)));
    }
    let crosses = rule.nightly || rule.window.is_some_and(|w| w.crosses_midnight());
    let sleep = matches!(rule.measure, Measure::Sleep { .. });
    ev.passive_days.contains(&d) || ((crosses || sleep) && ev.passive_days.contains(&(d + Duration::days(1))))
}

fn grade(ratio: f64, bands: &Bands) -> Verdict {
    if ratio >= bands.done {
        Verdict::Done
    } else if ratio >= bands.partial {
        Verdict::Partial
    } else {
        Verdict::Missed
    }
}

/// Judge one occurrence (a day, or for weekly homework the week starting on Monday `date`).
pub fn judge(
    hw: &Homework,
    cfg: &JudgeConfig,
    tz: Tz,
    hr_max: Option<f64>,
    date: NaiveDate,
    ev: &Evidence,
    now: DateTime<Utc>,
) -> Occurrence {
    let bands = hw.rule.bands.unwrap_or(cfg.bands);
    let mut occ = Occurrence {
        client: hw.client.clone(),
        homework_id: hw.id,
        homework: hw.text.clone(),
        date,
        period: hw.period().into(),
        verdict: Verdict::Pending,
        achieved: 0.0,
        target: hw.rule.target_on(hw.from, date),
        unit: hw.rule.unit().into(),
        self_reported: false,
        evidence: Vec::new(),
        note: None,
    };
    let (days, closes): (Vec<NaiveDate>, DateTime<Utc>) = if hw.rule.schedule.weekly() {
        let days: Vec<NaiveDate> = (0..7).map(|i| date + Duration::days(i)).filter(|d| hw.active_on(*d)).collect();
        let last = days.last().copied().unwrap_or(date);
        (days, window(&hw.rule, cfg, tz, last).1)
    } else {
        (vec![date], window(&hw.rule, cfg, tz, date).1)
    };
    if days.iter().any(|d| ev.excused.contains(&(hw.id, *d))) {
        occ.verdict = Verdict::Excused;
        return occ;
    }
    let mut any_checkin = false;
    let mut any_passive = false;
    let mut achieved = 0.0;
    let sessions = matches!(hw.rule.measure, Measure::Session { .. });
    for d in &days {
        let r = judge_day(hw, cfg, tz, hr_max, *d, ev);
        any_checkin |= r.has_checkin;
        any_passive |= has_passive(ev, cfg, &hw.rule, *d);
        match hw.rule.schedule {
            // "2 runs a week": every run counts, two on one day as two. A weekly total
            // adds up what each day brought.
            Schedule::PerWeek(_) | Schedule::WeekTotal if sessions || hw.rule.schedule == Schedule::WeekTotal => {
                if r.achieved > 0.0 {
                    achieved += r.achieved;
                    occ.self_reported |= r.self_reported;
                    occ.evidence.extend(r.refs);
                }
            }
            // An amount N times a week, or sessions on N different days: days count.
            Schedule::PerWeek(_) | Schedule::DaysPerWeek(_) => {
                let day_target = hw.rule.day_target_on(hw.from, *d);
                if r.achieved > 0.0 && (day_target <= 0.0 || r.achieved / day_target >= bands.done) {
                    achieved += 1.0;
                    occ.self_reported |= r.self_reported;
                    occ.evidence.extend(r.refs);
                }
            }
            _ => {
                achieved = r.achieved;
                occ.self_reported = r.self_reported;
                occ.evidence = r.refs;
            }
        }
    }
    if let Some(n) = hw.rule.schedule.per_week() {
        // A week the homework only partly covers asks for no more days than it has.
        occ.target = f64::from(n).min(days.len() as f64);
    } else if hw.rule.schedule == Schedule::WeekTotal && days.len() < 7 {
        // A weekly total in a week the homework only partly covers: its share of the days.
        occ.target = round2(occ.target * days.len() as f64 / 7.0);
    }
    occ.achieved = round2(achieved);
    let ratio = if occ.target > 0.0 { occ.achieved / occ.target } else { 1.0 };
    // "7-9 hours of sleep": more than the range is not done, but it is no miss either.
    let over = match hw.rule.measure {
        Measure::Sleep { up_to: Some(most), .. } => occ.achieved > most,
        _ => false,
    };
    let by_checkins = hw.rule.judged_by() == JudgedBy::CheckIns;
    occ.verdict = if ratio >= bands.done && occ.achieved > 0.0 && !over {
        Verdict::Done
    } else if now < closes + cfg.grace {
        Verdict::Pending
    } else if over {
        Verdict::Partial
    } else if occ.achieved == 0.0 && !any_checkin && !any_passive && occ.evidence.is_empty() && !by_checkins {
        // No device saw anything. A habit's devices are the client's check-ins: none is a miss.
        Verdict::NoData
    } else {
        grade(ratio, &bands)
    };
    occ
}
