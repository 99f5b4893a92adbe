//! The normalized shapes every source produces and the store keeps.
//!
//! Sources translate the outside world into a [`Batch`]; nothing here knows about
//! devices, files or providers.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

pub type ClientId = i64;
pub type ActivityId = i64;

/// What kind of effort an activity is, as homework rules count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Cardio,
    Strength,
    /// Mobility, stretching, yoga, recovery routines.
    Mobility,
    Other,
}

impl Category {
    pub const ALL: [Category; 4] = [Self::Cardio, Self::Strength, Self::Mobility, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cardio => "cardio",
            Self::Strength => "strength",
            Self::Mobility => "mobility",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sample series kind. The discriminant is stored; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Heart rate, beats per minute.
    Hr = 1,
    /// RR interval, milliseconds; each beat carries its own timestamp.
    Rr = 2,
    /// Power, watts.
    Power = 3,
    /// Cadence, steps or revolutions per minute (0.1 resolution).
    Cadence = 4,
    /// Speed, metres per second (1 mm/s resolution).
    Speed = 5,
}

impl SeriesKind {
    pub const ALL: [SeriesKind; 5] = [Self::Hr, Self::Rr, Self::Power, Self::Cadence, Self::Speed];

    pub fn id(self) -> i64 {
        self as i64
    }

    pub fn from_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Values are stored as integers of `value * scale`.
    pub fn scale(self) -> f64 {
        match self {
            Self::Hr | Self::Rr | Self::Power => 1.0,
            Self::Cadence => 10.0,
            Self::Speed => 1000.0,
        }
    }

    /// The range of plausible values; anything outside is a source bug.
    pub fn valid_range(self) -> std::ops::RangeInclusive<f64> {
        match self {
            Self::Hr => 1.0..=300.0,
            Self::Rr => 1.0..=65_535.0,
            Self::Power => -5_000.0..=5_000.0,
            Self::Cadence => 0.0..=1_000.0,
            Self::Speed => 0.0..=200.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hr => "hr",
            Self::Rr => "rr",
            Self::Power => "power",
            Self::Cadence => "cadence",
            Self::Speed => "speed",
        }
    }
}

/// One point of a series: milliseconds since the Unix epoch (UTC) and a value in the
/// kind's unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: i64,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub kind: SeriesKind,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetType {
    Active,
    Rest,
}

impl SetType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rest => "rest",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrengthSet {
    pub start: Option<DateTime<Utc>>,
    pub duration_s: Option<f64>,
    /// `push_up`, `squat`, `pull_up`, ...
    pub exercise: String,
    pub set_type: SetType,
    pub reps: Option<u32>,
    pub weight_kg: Option<f64>,
}

/// An activity as one source recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewActivity {
    pub client_id: ClientId,
    /// The source's own id, stable when the source delivers the activity again.
    pub external_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The local UTC offset at the start, in seconds, as the source knew it.
    pub utc_offset_s: i32,
    pub activity_type: String,
    pub category: Category,
    /// Moving time in seconds (excludes pauses).
    pub duration_s: f64,
    pub distance_m: Option<f64>,
    pub avg_hr: Option<f64>,
    pub max_hr: Option<u16>,
    pub energy_kj: Option<f64>,
    /// Hash of the content the activity came from (file bytes, payload), if any.
    pub content_hash: Option<Vec<u8>>,
    /// Merged into what is stored: points at a stored time replace it, others add.
    pub series: Vec<Series>,
    /// `Some` replaces the activity's stored sets; `None` leaves them alone.
    pub sets: Option<Vec<StrengthSet>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Steps,
    RestingHr,
    /// Seconds asleep in the night that ended on the date (the wake-up date).
    SleepS,
    /// When that night's sleep began (in bed asleep): Unix seconds, UTC. Dated by the
    /// wake-up date like `SleepS`; a source with several pieces gives the first start.
    SleepStart,
    /// When that night's sleep ended (woke up for the day): Unix seconds, UTC.
    SleepEnd,
}

impl Metric {
    pub const ALL: [Metric; 5] = [Self::Steps, Self::RestingHr, Self::SleepS, Self::SleepStart, Self::SleepEnd];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steps => "steps",
            Self::RestingHr => "resting_hr",
            Self::SleepS => "sleep_s",
            Self::SleepStart => "sleep_start",
            Self::SleepEnd => "sleep_end",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyMetric {
    pub client_id: ClientId,
    /// The client's local date.
    pub date: NaiveDate,
    pub metric: Metric,
    pub value: f64,
}

/// A timed piece of a daily metric (a minute of steps, a stretch of sleep dated by its
/// end). The day's total is the sum of the distinct buckets stored for that local date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricBucket {
    pub client_id: ClientId,
    pub metric: Metric,
    pub t_ms: i64,
    pub value: f64,
}

/// How far a source has got in one of its streams (an account, a device, a folder).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub stream: String,
    pub value: String,
}

/// Everything one source hands over at once; stored all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// `ble`, `fit`, `strava`, ...: lower-case, no spaces.
    pub source: String,
    pub activities: Vec<NewActivity>,
    pub daily: Vec<DailyMetric>,
    /// Pieces of daily metrics; each local day they touch gets its total re-derived.
    pub buckets: Vec<MetricBucket>,
    /// Stored in the same transaction as the data, so it never runs ahead of it.
    pub cursor: Option<Cursor>,
}

impl Batch {
    pub fn new(source: impl Into<String>) -> Self {
        Self { source: source.into(), ..Self::default() }
    }

    /// Every problem with the batch, each naming the record it is about.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let source_ok = !self.source.is_empty()
            && self.source.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !source_ok {
            problems.push(format!("source name {:?} must be lower-case letters, digits, '_' or '.'", self.source));
        }
        for a in &self.activities {
            let at = |p: String| format!("activity {}/{}: {p}", self.source, a.external_id);
            if a.external_id.is_empty() {
                problems.push(at("empty external id".into()));
            }
            if a.end < a.start {
                problems.push(at(format!("ends ({}) before it starts ({})", a.end, a.start)));
            }
            if !(a.duration_s.is_finite() && a.duration_s >= 0.0) {
                problems.push(at(format!("duration {} s is not a non-negative number", a.duration_s)));
            }
            if a.utc_offset_s.abs() > 18 * 3600 {
                problems.push(at(format!("UTC offset {} s is beyond ±18 h", a.utc_offset_s)));
            }
            if a.activity_type.is_empty() {
                problems.push(at("empty activity type".into()));
            }
            for (name, v) in [("distance", a.distance_m), ("average HR", a.avg_hr), ("energy", a.energy_kj)] {
                if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    problems.push(at(format!("{name} {v:?} is not a non-negative number")));
                }
            }
            for s in &a.series {
                let range = s.kind.valid_range();
                if let Some(bad) = s.samples.iter().find(|p| !p.value.is_finite() || !range.contains(&p.value)) {
                    problems.push(at(format!(
                        "{} sample {} at {} ms is outside {:?}",
                        s.kind.as_str(),
                        bad.value,
                        bad.t_ms,
                        range
                    )));
                }
            }
            for (i, set) in a.sets.iter().flatten().enumerate() {
                if set.exercise.is_empty() {
                    problems.push(at(format!("set {i} has no exercise")));
                }
                if set.weight_kg.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
                    problems.push(at(format!("set {i} weight {:?} is not a non-negative number", set.weight_kg)));
                }
            }
        }
        for d in &self.daily {
            if !(d.value.is_finite() && d.value >= 0.0) {
                problems.push(format!(
                    "daily {} of client {} on {}: value {} is not a non-negative number",
                    d.metric.as_str(),
                    d.client_id,
                    d.date,
                    d.value
                ));
            }
        }
        for b in &self.buckets {
            if !(b.value.is_finite() && b.value >= 0.0) {
                problems.push(format!(
                    "{} bucket of client {} at {} ms: value {} is not a non-negative number",
                    b.metric.as_str(),
                    b.client_id,
                    b.t_ms,
                    b.value
                ));
            }
        }
        if let Some(c) = &self.cursor {
            if c.stream.is_empty() {
                problems.push("cursor with an empty stream name".into());
            }
        }
        problems
    }
}

/// What an ingest changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub activities_inserted: usize,
    pub activities_updated: usize,
    pub activities_unchanged: usize,
    /// Sample points that were new or changed.
    pub samples_written: usize,
    pub daily_written: usize,
    /// Timed metric pieces (a minute of steps) that were new or changed.
    pub buckets_written: usize,
}

impl IngestReport {
    pub fn changed_anything(&self) -> bool {
        self.activities_inserted
            + self.activities_updated
            + self.samples_written
            + self.daily_written
            + self.buckets_written
            > 0
    }
}
