//! What the engine judges from: a client's activities (merged across sources into
//! workouts), daily metrics, check-ins and excuses.

use crate::activity_types;
use crate::model::{ActivityId, Category, Metric, ZoneTime};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Sources a person types in; everything else is passive (a device or a cloud recorded it).
pub const MANUAL_SOURCE: &str = "manual";

/// An active strength set (a hold has a duration and no reps).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetRec {
    pub start: Option<DateTime<Utc>>,
    pub exercise: String,
    pub reps: u32,
    pub duration_s: Option<f64>,
}

/// One activity as one source recorded it (no samples: the HR histogram stands in).
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityRec {
    pub id: ActivityId,
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub utc_offset_s: i32,
    pub activity_type: String,
    pub category: Category,
    pub duration_s: f64,
    pub distance_m: Option<f64>,
    pub avg_hr: Option<f64>,
    pub max_hr: Option<u16>,
    /// (bpm, seconds spent at it), ascending bpm.
    pub hr_hist: Vec<(u16, f64)>,
    pub hr_samples: u32,
    /// Time in heart-rate zones as the source counted it, for a source without samples
    /// (WHOOP): minutes are counted from it where there is no histogram.
    pub hr_zones: Option<ZoneTime>,
    pub sets: Vec<SetRec>,
    /// The activity file (FIT, TCX, GPX) it came from: the sessions of one multi-sport
    /// file share it and are separate workouts by construction. None for other sources
    /// (an Apple Health export holds many apps' records of the same workout).
    pub origin: Option<Vec<u8>>,
}

impl ActivityRec {
    /// Seconds at or above `lo` bpm and below `hi`.
    pub fn hr_seconds(&self, lo: f64, hi: f64) -> f64 {
        self.hr_hist.iter().filter(|(b, _)| f64::from(*b) >= lo && f64::from(*b) < hi).map(|(_, s)| s).sum()
    }
}

/// The same effort seen by one or more sources, counted once.
///
/// The engine credits a workout with the union of its records ([`Workout::credit`]):
/// records that overlap in time saw the same effort and count once, with the most either
/// shows (another source can add detail but never take credit away); records that follow
/// one another (one strap session split by a restart) add up. The other fields describe
/// it for display, from the record with the best samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Workout {
    /// The id of the record the workout is shown as (the one with the best samples).
    pub id: ActivityId,
    /// Every record of it, from every source.
    pub parts: Vec<ActivityRec>,
    pub sources: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub utc_offset_s: i32,
    pub activity_type: String,
    pub category: Category,
    pub duration_s: f64,
    pub avg_hr: Option<f64>,
    pub max_hr: Option<u16>,
    pub hr_hist: Vec<(u16, f64)>,
    pub hr_samples: u32,
    /// A record's zone times, where the record shown has no samples (for display; the
    /// engine reads each record's own).
    pub hr_zones: Option<ZoneTime>,
    pub sets: Vec<SetRec>,
    /// Recorded by a device or a cloud, not only typed in.
    pub passive: bool,
}

impl Workout {
    pub fn reps(&self) -> u32 {
        self.sets.iter().map(|s| s.reps).sum()
    }

    pub fn member_ids(&self) -> Vec<ActivityId> {
        self.parts.iter().map(|p| p.id).collect()
    }

    /// The workout's amount of something each record measures on its own (minutes in a
    /// zone, distance): the most any set of records that do not overlap in time gives
    /// together. Overlapping records saw the same time, so only one of them counts;
    /// records one after another saw different time, so they add. Records have no samples
    /// here (a histogram stands in), so this is the union of what they cover, to the
    /// record.
    pub fn credit(&self, value: impl Fn(&ActivityRec) -> f64) -> f64 {
        union_credit(&self.parts, value)
    }
}

/// Records overlapping by at most this much still follow one another (a resumed
/// recording's first sample can share the second of the last one before the break).
const ABUT_S: i64 = 2;

/// The heaviest set of pairwise non-overlapping records (weighted interval scheduling,
/// over the few records of one workout).
fn union_credit(parts: &[ActivityRec], value: impl Fn(&ActivityRec) -> f64) -> f64 {
    let mut by_end: Vec<(&ActivityRec, f64)> =
        parts.iter().map(|p| (p, value(p))).filter(|(_, v)| v.is_finite() && *v > 0.0).collect();
    by_end.sort_by_key(|(p, _)| (p.end, p.start));
    // best[i]: the most the first i records (by end) give.
    let mut best = vec![0.0_f64; by_end.len() + 1];
    for (i, (p, v)) in by_end.iter().enumerate() {
        let before =
            by_end[..i].iter().rposition(|(q, _)| (q.end - p.start).num_seconds() <= ABUT_S).map_or(0, |j| j + 1);
        best[i + 1] = best[i].max(v + best[before]);
    }
    best[by_end.len()]
}

#[derive(Clone, Debug, PartialEq)]
pub struct DailyValue {
    pub date: NaiveDate,
    pub metric: Metric,
    pub source: String,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckinRec {
    pub id: i64,
    pub homework_id: Option<i64>,
    pub date: NaiveDate,
    pub value: Option<f64>,
    pub note: Option<String>,
}

/// Everything known about one client over a span of dates.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Sorted by start.
    pub workouts: Vec<Workout>,
    pub daily: Vec<DailyValue>,
    pub checkins: Vec<CheckinRec>,
    pub excused: BTreeSet<(i64, NaiveDate)>,
    /// Local dates on which some passive source delivered anything.
    pub passive_days: BTreeSet<NaiveDate>,
    /// The same days with the sources that delivered (a step homework asks whether one of
    /// them could have counted steps).
    pub passive_sources: BTreeMap<NaiveDate, BTreeSet<String>>,
}

impl Evidence {
    /// Merge raw activities into workouts and note which days have passive data.
    pub fn build(
        tz: Tz,
        activities: Vec<ActivityRec>,
        daily: Vec<DailyValue>,
        checkins: Vec<CheckinRec>,
        excused: BTreeSet<(i64, NaiveDate)>,
    ) -> Self {
        let mut passive_sources: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
        let mut saw = |d: NaiveDate, source: &str| {
            let sources = passive_sources.entry(d).or_default();
            if !sources.contains(source) {
                sources.insert(source.to_string());
            }
        };
        for a in activities.iter().filter(|a| a.source != MANUAL_SOURCE) {
            for d in crate::time::local_dates(tz, a.start, a.end) {
                saw(d, &a.source);
            }
        }
        for v in &daily {
            saw(v.date, &v.source);
            if matches!(v.metric, Metric::SleepS | Metric::SleepStart | Metric::SleepEnd) {
                // A night's sleep is dated by the wake-up day and covers the evening before.
                if let Some(prev) = v.date.pred_opt() {
                    saw(prev, &v.source);
                }
            }
        }
        let passive_days = passive_sources.keys().copied().collect();
        Self { workouts: merge(activities), daily, checkins, excused, passive_days, passive_sources }
    }
}

/// Two records are the same workout when their types are compatible and they start
/// within 5 minutes of each other or overlap by at least half of the shorter one. A record
/// joins a workout only when that holds against every record already in it, so two
/// separate workouts are never chained together through a third record.
const SAME_START_S: i64 = 300;

/// Merge overlapping records of compatible type into workouts (a view: nothing is deleted).
pub fn merge(mut activities: Vec<ActivityRec>) -> Vec<Workout> {
    activities.sort_by_key(|a| (a.start, a.id));
    let mut groups: Vec<Vec<ActivityRec>> = Vec::new();
    for a in activities {
        // Groups are in start order; none starting more than two days earlier can overlap.
        let horizon = a.start - chrono::Duration::days(2);
        let home = groups.iter_mut().rev().take_while(|g| g[0].start >= horizon).find(|g| {
            g.iter().all(|m| activity_types::compatible(&m.activity_type, &a.activity_type))
                && g.iter().all(|m| same_effort(m, &a))
        });
        match home {
            Some(g) => g.push(a),
            None => groups.push(vec![a]),
        }
    }
    let mut workouts: Vec<Workout> = groups.into_iter().map(workout).collect();
    workouts.sort_by_key(|w| (w.start, w.id));
    workouts
}

fn same_effort(a: &ActivityRec, b: &ActivityRec) -> bool {
    if a.source == b.source && a.origin.is_some() && a.origin == b.origin {
        // Two sessions of one file (a triathlon's swim, transition and ride).
        return false;
    }
    if (a.start - b.start).num_seconds().abs() <= SAME_START_S {
        return true;
    }
    let overlap = (a.end.min(b.end) - a.start.max(b.start)).num_milliseconds();
    let shorter = (a.end - a.start).num_milliseconds().min((b.end - b.start).num_milliseconds());
    overlap > 0 && overlap * 2 >= shorter
}

fn workout(members: Vec<ActivityRec>) -> Workout {
    // The best samples: most HR samples, then longest recorded time.
    let best = members
        .iter()
        .max_by(|a, b| {
            (a.hr_samples, a.duration_s).partial_cmp(&(b.hr_samples, b.duration_s)).unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(&members[0]);
    let typed = members.iter().find(|m| !activity_types::is_generic(&m.activity_type)).unwrap_or(best);
    let most_reps = members.iter().max_by_key(|m| m.sets.iter().map(|s| s.reps).sum::<u32>()).unwrap_or(best);
    let mut sources: Vec<String> = members.iter().map(|m| m.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let with_hr = if best.hr_samples > 0 { best } else { members.iter().find(|m| m.avg_hr.is_some()).unwrap_or(best) };
    Workout {
        id: best.id,
        sources,
        start: members.iter().map(|m| m.start).min().unwrap_or(best.start),
        end: members.iter().map(|m| m.end).max().unwrap_or(best.end),
        utc_offset_s: typed.utc_offset_s,
        activity_type: typed.activity_type.clone(),
        category: typed.category,
        duration_s: union_credit(&members, |m| m.duration_s),
        avg_hr: with_hr.avg_hr,
        max_hr: members.iter().filter_map(|m| m.max_hr).max(),
        hr_hist: best.hr_hist.clone(),
        hr_samples: best.hr_samples,
        hr_zones: if best.hr_hist.is_empty() { members.iter().find_map(|m| m.hr_zones.clone()) } else { None },
        sets: most_reps.sets.clone(),
        passive: members.iter().any(|m| m.source != MANUAL_SOURCE),
        parts: members,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub fn rec(id: i64, source: &str, ty: &str, start_min: i64, minutes: i64) -> ActivityRec {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 17, 0, 0).single().expect("time");
        let start = t0 + chrono::Duration::minutes(start_min);
        ActivityRec {
            id,
            source: source.into(),
            start,
            end: start + chrono::Duration::minutes(minutes),
            utc_offset_s: 3600,
            activity_type: ty.into(),
            category: activity_types::category(ty),
            duration_s: (minutes * 60) as f64,
            distance_m: None,
            avg_hr: None,
            max_hr: None,
            hr_hist: Vec::new(),
            hr_samples: 0,
            hr_zones: None,
            sets: Vec::new(),
            origin: None,
        }
    }

    #[test]
    fn strap_watch_and_strava_make_one_workout() {
        let mut strap = rec(1, "ble", "workout", -2, 64);
        strap.hr_samples = 3800;
        strap.hr_hist = vec![(150, 3800.0)];
        let watch = rec(2, "fit", "run", 0, 60);
        let strava = rec(3, "strava", "run", 0, 60);
        let later = rec(4, "strava", "run", 180, 30);
        let w = merge(vec![strava, later, watch, strap]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].sources, ["ble", "fit", "strava"]);
        assert_eq!(w[0].activity_type, "run");
        assert_eq!(w[0].id, 1, "shown as the member with the best samples");
        assert_eq!(w[0].hr_samples, 3800);
        assert_eq!(w[0].duration_s, 64.0 * 60.0);
        assert_eq!(w[1].member_ids(), [4]);
    }

    #[test]
    fn a_long_workout_is_found_past_a_short_later_one() {
        let w = merge(vec![
            rec(1, "fit", "ride", 0, 120),
            rec(2, "fit", "strength", 10, 10),
            rec(3, "strava", "ride", 2, 118),
        ]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].member_ids(), [1, 3]);
    }

    #[test]
    fn sessions_of_one_file_stay_apart() {
        let mut transition = rec(1, "fit", "workout", 0, 3);
        let mut ride = rec(2, "fit", "ride", 3, 60);
        (transition.origin, ride.origin) = (Some(vec![7]), Some(vec![7]));
        assert_eq!(merge(vec![transition.clone(), ride.clone()]).len(), 2, "one triathlon file, two sessions");
        ride.origin = Some(vec![8]);
        assert_eq!(merge(vec![transition, ride]).len(), 1, "from two files, the same workout");
    }

    #[test]
    fn records_one_after_another_add_up_and_overlapping_ones_count_once() {
        // A strap session split by a restart: 4 minutes, 10 s down, then 30 minutes. The
        // two parts start within 5 minutes, so they are one workout.
        let mut first = rec(1, "ble", "workout", 0, 4);
        let mut second = rec(2, "ble", "workout", 4, 30);
        second.start += chrono::Duration::seconds(10);
        second.end += chrono::Duration::seconds(10);
        (first.hr_hist, second.hr_hist) = (vec![(150, 240.0)], vec![(150, 1800.0)]);
        let w = merge(vec![first, second]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].credit(|p| p.hr_seconds(100.0, 200.0)), 2040.0, "both parts count");
        assert_eq!(w[0].duration_s, 34.0 * 60.0);
        // Strava's record of the same 34 minutes overlaps both: it counts instead of
        // them when it shows more, never on top of them.
        let mut strava = rec(3, "strava", "workout", 0, 34);
        strava.hr_hist = vec![(150, 2100.0)];
        let w = merge(vec![w[0].parts[0].clone(), w[0].parts[1].clone(), strava]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].credit(|p| p.hr_seconds(100.0, 200.0)), 2100.0);
        assert_eq!(w[0].credit(|_| f64::NAN), 0.0, "a value that is not a number counts nothing");
    }

    #[test]
    fn different_sports_stay_apart() {
        let w = merge(vec![rec(1, "fit", "run", 0, 30), rec(2, "fit", "strength", 10, 30)]);
        assert_eq!(w.len(), 2);
        // Back-to-back but barely overlapping sessions of the same sport stay apart too.
        let w = merge(vec![rec(1, "fit", "run", 0, 60), rec(2, "strava", "run", 55, 60)]);
        assert_eq!(w.len(), 2);
    }
}
