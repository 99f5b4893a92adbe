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
    /// Distance covered since the machine or sensor started counting, metres (0.1 m
    /// resolution); cumulative, so a chart draws it rising.
    Distance = 6,
    /// Strokes counted by a rower since it started counting; cumulative.
    Strokes = 7,
}

impl SeriesKind {
    pub const ALL: [SeriesKind; 7] =
        [Self::Hr, Self::Rr, Self::Power, Self::Cadence, Self::Speed, Self::Distance, Self::Strokes];

    pub fn id(self) -> i64 {
        self as i64
    }

    pub fn from_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Values are stored as integers of `value * scale`.
    pub fn scale(self) -> f64 {
        match self {
            Self::Hr | Self::Rr | Self::Power | Self::Strokes => 1.0,
            Self::Cadence | Self::Distance => 10.0,
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
            // 10,000 km: what a sensor's lifetime counter may reach, not one session.
            Self::Distance => 0.0..=10_000_000.0,
            Self::Strokes => 0.0..=65_535.0,
        }
    }

    /// Whether a value is plausible for this kind (finite and in [`SeriesKind::valid_range`]).
    pub fn plausible(self, v: f64) -> bool {
        v.is_finite() && self.valid_range().contains(&v)
    }

    /// The value, when plausible.
    pub fn checked(self, v: Option<f64>) -> Option<f64> {
        v.filter(|v| self.plausible(*v))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hr => "hr",
            Self::Rr => "rr",
            Self::Power => "power",
            Self::Cadence => "cadence",
            Self::Speed => "speed",
            Self::Distance => "distance",
            Self::Strokes => "strokes",
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
    /// Time in heart-rate zones as the source counted it, for a source that gives no
    /// samples (WHOOP); stored as given (None clears it).
    pub hr_zones: Option<ZoneTime>,
}

/// Time in heart-rate zones as a source counted it, for an activity without samples
/// (WHOOP's `zone_durations`): bands of percent of a max HR, each from its lower bound to
/// the next band's. The engine counts the minutes of any range of % of HR max from it
/// ([`ZoneTime::seconds`]), as it does from the samples' histogram where there are samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneTime {
    /// The max HR (bpm) the bands are percentages of, where the source says (WHOOP's,
    /// which may differ from the HR max set in coachd); None: not known, and taken to
    /// be the client's HR max in coachd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hr: Option<u16>,
    /// (lower bound in % of `max_hr`, milliseconds in the band), bounds ascending. A
    /// first band from 0 % ("below zone 1") is taken to be as wide as the next one, and the
    /// last band as wide as the one before it, when a range cuts through them.
    pub bands: Vec<(u8, i64)>,
}

impl ZoneTime {
    /// The most milliseconds a band may hold (a week, like an activity).
    const MAX_MS: i64 = (MAX_ACTIVITY_S as i64) * 1000;

    /// Every band's time together, in seconds.
    pub fn total_s(&self) -> f64 {
        self.bands.iter().map(|(_, ms)| *ms as f64 / 1000.0).sum()
    }

    /// The seconds spent from `lo` to `hi` percent (`hi` may be infinite) of `client_max`,
    /// the client's HR max in coachd (None: unknown, then the source's max stands in).
    /// Where both maxes are known the range is carried over to the source's: 60-70 % of
    /// 190 bpm is 57-66.5 % of a source max of 200. A band the range covers in part
    /// counts in proportion, its time taken as spread evenly across it.
    pub fn seconds(&self, lo: f64, hi: f64, client_max: Option<f64>) -> f64 {
        let scale = match (client_max, self.max_hr) {
            (Some(c), Some(s)) if c > 0.0 && s > 0 => c / f64::from(s),
            _ => 1.0,
        };
        let (lo, hi) = (lo * scale, hi * scale);
        let bound = |i: usize| self.bands.get(i).map(|b| f64::from(b.0));
        let mut total = 0.0;
        for (i, &(lower, ms)) in self.bands.iter().enumerate() {
            let a = f64::from(lower);
            // A band ends where the next begins; the last is as wide as the one before.
            let width = |i: usize| match (bound(i), bound(i + 1), i.checked_sub(1).and_then(bound)) {
                (Some(x), Some(next), _) => next - x,
                (Some(x), None, Some(prev)) => x - prev,
                _ => 10.0,
            };
            let (a, b) = match bound(i + 1) {
                // Below zone 1 (from 0 %): as wide as the band above it.
                Some(next) if a == 0.0 => (next - width(i + 1), next),
                _ => (a, a + width(i)),
            };
            if b > a {
                let covered = (hi.min(b) - lo.max(a)).max(0.0);
                total += (covered / (b - a)).min(1.0) * ms as f64 / 1000.0;
            }
        }
        total
    }

    /// The histogram with what cannot be true dropped: a band of negative or more than a
    /// week's time, bounds that do not ascend; None when nothing is left.
    fn clamped(mut self) -> Option<Self> {
        self.max_hr = self.max_hr.filter(|h| SeriesKind::Hr.plausible(f64::from(*h)));
        self.bands.retain(|(_, ms)| (0..=Self::MAX_MS).contains(ms));
        self.bands.sort_by_key(|(b, _)| *b);
        self.bands.dedup_by_key(|(b, _)| *b);
        (!self.bands.is_empty()).then_some(self)
    }
}

/// No activity lasts longer than this; a longer one is rejected.
pub const MAX_ACTIVITY_S: f64 = 7.0 * 86_400.0;
/// The widest UTC offset there is.
pub const MAX_UTC_OFFSET_S: i32 = 18 * 3600;

/// The end of an activity that lasted `secs` from `start`, when both are plausible: a
/// start from 2000 to 2100, a finite duration of 0 to [`MAX_ACTIVITY_S`]. Values from
/// outside are checked here before any date arithmetic, which would panic out of range.
pub fn span_end(start: DateTime<Utc>, secs: f64) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    if !(2000..2100).contains(&start.year()) {
        return Err(format!("its start {start} is not between 2000 and 2100"));
    }
    if !(secs.is_finite() && (0.0..=MAX_ACTIVITY_S).contains(&secs)) {
        return Err(format!("its duration of {secs} s is not between 0 and a week"));
    }
    Ok(start + chrono::Duration::milliseconds((secs * 1000.0).round() as i64))
}

/// A sample `t` seconds into an activity that began at `start`, in ms; None past a week.
pub fn sample_ms(start: DateTime<Utc>, t: f64) -> Option<i64> {
    (t.is_finite() && (0.0..=MAX_ACTIVITY_S).contains(&t)).then(|| start.timestamp_millis() + (t * 1000.0) as i64)
}

/// A non-negative amount (distance, energy), when it is one.
pub fn amount(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

impl NewActivity {
    /// The one clamp every source's activity goes through before it is handed to ingest
    /// (files, cloud providers, pushes, sensors, manual entries), with the ranges of this
    /// module: an activity that cannot be true (no id, a start outside 2000-2100, an end
    /// before its start, longer than a week) is rejected with why; values that cannot be
    /// true are dropped (a heart rate outside [`SeriesKind::valid_range`], a negative
    /// distance, a sample out of its kind's range) or brought into range (the moving time
    /// within the elapsed time, the UTC offset within ±18 h). Ingest refuses whatever
    /// still breaks these rules ([`Batch::problems`]).
    pub fn clamped(mut self) -> Result<Self, String> {
        if self.external_id.is_empty() {
            return Err("it has no id".into());
        }
        let elapsed = (self.end - self.start).num_milliseconds() as f64 / 1000.0;
        if elapsed < 0.0 {
            return Err(format!("it ends ({}) before it starts ({})", self.end, self.start));
        }
        span_end(self.start, elapsed)?;
        self.utc_offset_s = self.utc_offset_s.clamp(-MAX_UTC_OFFSET_S, MAX_UTC_OFFSET_S);
        self.duration_s = if self.duration_s.is_finite() { self.duration_s.clamp(0.0, elapsed) } else { elapsed };
        if self.activity_type.is_empty() {
            self.activity_type = crate::activity_types::GENERIC.to_string();
        }
        self.distance_m = amount(self.distance_m);
        self.energy_kj = amount(self.energy_kj);
        self.avg_hr = SeriesKind::Hr.checked(self.avg_hr);
        self.max_hr = self.max_hr.filter(|h| SeriesKind::Hr.plausible(f64::from(*h)));
        for s in &mut self.series {
            let kind = s.kind;
            s.samples.retain(|p| kind.plausible(p.value));
        }
        self.series.retain(|s| !s.samples.is_empty());
        for set in self.sets.iter_mut().flatten() {
            set.weight_kg = amount(set.weight_kg);
            set.duration_s = amount(set.duration_s);
        }
        if let Some(sets) = &mut self.sets {
            sets.retain(|set| !set.exercise.is_empty());
        }
        self.hr_zones = self.hr_zones.take().and_then(ZoneTime::clamped);
        Ok(self)
    }
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
            if a.utc_offset_s.abs() > MAX_UTC_OFFSET_S {
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
                if let Some(bad) = s.samples.iter().find(|p| !s.kind.plausible(p.value)) {
                    problems.push(at(format!(
                        "{} sample {} at {} ms is outside {:?}",
                        s.kind.as_str(),
                        bad.value,
                        bad.t_ms,
                        range
                    )));
                }
            }
            if let Some(z) = &a.hr_zones {
                if z.bands.iter().any(|(_, ms)| *ms < 0) || z.bands.windows(2).any(|w| w[0].0 >= w[1].0) {
                    problems.push(at("heart-rate zones with negative time or bounds out of order".into()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run() -> NewActivity {
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 17, 0, 0).single().expect("time");
        NewActivity {
            client_id: 1,
            external_id: "a1".into(),
            start,
            end: start + chrono::Duration::minutes(30),
            utc_offset_s: 3600,
            activity_type: "run".into(),
            category: Category::Cardio,
            duration_s: 1800.0,
            distance_m: Some(5000.0),
            avg_hr: Some(140.0),
            max_hr: Some(170),
            energy_kj: Some(1200.0),
            content_hash: None,
            series: vec![Series { kind: SeriesKind::Hr, samples: vec![Sample { t_ms: 0, value: 130.0 }] }],
            sets: None,
            hr_zones: None,
        }
    }

    /// WHOOP's zones: below 50 %, then 50-60 ... 90-100 % of max HR.
    fn whoop(max_hr: Option<u16>, minutes: [i64; 6]) -> ZoneTime {
        let bounds = [0, 50, 60, 70, 80, 90];
        ZoneTime { max_hr, bands: bounds.iter().zip(minutes).map(|(b, m)| (*b, m * 60_000)).collect() }
    }

    #[test]
    fn zone_time_counts_a_range_of_hr_max_spreading_a_band_it_cuts_evenly() {
        let z = whoop(None, [5, 10, 20, 30, 4, 1]);
        let min = |lo: f64, hi: f64, max: Option<f64>| (z.seconds(lo, hi, max) / 60.0 * 1000.0).round() / 1000.0;
        // coachd's zones are WHOOP's, band for band, when the max is the same.
        assert_eq!(
            [min(50.0, 60.0, None), min(60.0, 70.0, Some(190.0)), min(90.0, f64::INFINITY, None)],
            [10.0, 20.0, 1.0]
        );
        // Cardio from 64 %: 6/10 of 60-70 %, and everything above.
        assert_eq!(min(64.0, f64::INFINITY, None), 12.0 + 30.0 + 4.0 + 1.0);
        // Below zone 1 is taken as 40-50 %; above the last band nothing more is known.
        assert_eq!((min(45.0, 50.0, None), min(95.0, 120.0, None), min(0.0, f64::INFINITY, None)), (2.5, 0.5, 70.0));
        // WHOOP counted against 200 bpm, coachd's HR max is 190: coachd's zone 2 (114-133
        // bpm) is 57-66.5 % of WHOOP's max: 3/10 of WHOOP's zone 1 and 6.5/10 of its zone 2.
        let z = whoop(Some(200), [5, 10, 20, 30, 4, 1]);
        assert_eq!((z.seconds(60.0, 70.0, Some(190.0)) / 60.0 * 1000.0).round() / 1000.0, 3.0 + 13.0);
        assert_eq!(z.seconds(60.0, 70.0, None), 20.0 * 60.0, "without coachd's max, WHOOP's stands in");
        assert_eq!(z.clone().clamped(), Some(z));
        let odd = ZoneTime { max_hr: Some(900), bands: vec![(60, -1), (50, 60_000), (50, 5)] };
        assert_eq!(odd.clamped(), Some(ZoneTime { max_hr: None, bands: vec![(50, 60_000)] }));
        assert_eq!(ZoneTime { max_hr: None, bands: vec![(50, -1)] }.clamped(), None);
    }

    #[test]
    fn the_clamp_drops_what_cannot_be_true_and_rejects_what_cannot_be_an_activity() {
        assert_eq!(run().clamped(), Ok(run()), "a plausible activity is unchanged");
        let mut odd = run();
        odd.duration_s = 99_999.0;
        odd.utc_offset_s = 100 * 3600;
        odd.distance_m = Some(-1.0);
        odd.avg_hr = Some(0.0);
        odd.max_hr = Some(400);
        odd.energy_kj = Some(f64::NAN);
        odd.activity_type = String::new();
        odd.series[0].samples.extend([Sample { t_ms: 1, value: 301.0 }, Sample { t_ms: 2, value: f64::INFINITY }]);
        odd.series.push(Series { kind: SeriesKind::Power, samples: vec![Sample { t_ms: 0, value: 9_999.0 }] });
        let c = odd.clamped().expect("kept");
        assert_eq!((c.duration_s, c.utc_offset_s), (1800.0, MAX_UTC_OFFSET_S));
        assert_eq!((c.distance_m, c.avg_hr, c.max_hr, c.energy_kj), (None, None, None, None));
        assert_eq!(c.activity_type, crate::activity_types::GENERIC);
        assert_eq!(c.series, run().series, "out-of-range samples and an empty series are dropped");
        assert!(Batch { activities: vec![c], ..Batch::new("x") }.problems().is_empty(), "ingest takes it");
        let mut backwards = run();
        backwards.end = backwards.start - chrono::Duration::seconds(1);
        assert!(backwards.clamped().is_err_and(|e| e.contains("before it starts")));
        let mut long = run();
        long.end = long.start + chrono::Duration::days(8);
        assert!(long.clamped().is_err_and(|e| e.contains("not between 0 and a week")));
        let mut old = run();
        old.start = Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).single().expect("time");
        assert!(old.clamped().is_err_and(|e| e.contains("not between 2000 and 2100")));
        assert!(NewActivity { external_id: String::new(), ..run() }.clamped().is_err());
    }
}
