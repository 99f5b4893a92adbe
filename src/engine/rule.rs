//! Homework rules: what is measured, on which days, in which daily window.

use crate::model::Category;
use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a day's effort is measured by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measure {
    /// Minutes of an effort in the window.
    Minutes {
        of: Effort,
        minutes: f64,
    },
    /// Repetitions of an exercise (`push_up`, `squat`, ...).
    Reps {
        exercise: String,
        reps: u32,
    },
    Steps {
        steps: u32,
    },
    /// Hours asleep in the night that starts on the occurrence's date.
    Sleep {
        hours: f64,
    },
    /// At least one session of an effort.
    Session {
        of: Effort,
    },
}

/// Which activities count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum Effort {
    Category(Category),
    /// Heart-rate zone 1-5: 50-60, 60-70, 70-80, 80-90, 90-100 % of HR max.
    Zone(u8),
    /// A type family (`run`, `ride`, `yoga`, ...).
    Family(String),
    Any,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Schedule {
    Daily,
    /// Only on these weekdays.
    Days(Vec<Weekday>),
    /// N times a week, judged per Monday-Sunday week: N sessions for session homework
    /// ("2 runs a week": two runs on one day count two), N days for an amount.
    PerWeek(u8),
    /// N different days a week ("2 runs a week on different days").
    DaysPerWeek(u8),
}

impl Schedule {
    /// N, for either weekly schedule.
    pub fn per_week(&self) -> Option<u8> {
        match self {
            Self::PerWeek(n) | Self::DaysPerWeek(n) => Some(*n),
            _ => None,
        }
    }
}

/// A daily window in local time; `end <= start` means it crosses midnight and belongs to
/// the evening's date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("window {s:?} is not HH:MM-HH:MM (for example 19:00-03:00)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        let w = Self { start: t(a)?, end: t(b)? };
        if w.start == w.end {
            return Err(format!("window {s:?} is empty"));
        }
        Ok(w)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start.format("%H:%M"), self.end.format("%H:%M"))
    }
}

/// Done and partial thresholds, as fractions of the target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bands {
    pub done: f64,
    pub partial: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub measure: Measure,
    pub schedule: Schedule,
    /// "every night", "before bed": judged in the nightly window unless `window` is set.
    pub nightly: bool,
    pub window: Option<Window>,
    /// Per-homework bands; the configured ones otherwise.
    pub bands: Option<Bands>,
}

impl Rule {
    /// The day-level target and its unit.
    pub fn day_target(&self) -> (f64, &'static str) {
        match &self.measure {
            Measure::Minutes { minutes, .. } => (*minutes, "min"),
            Measure::Reps { reps, .. } => (f64::from(*reps), "reps"),
            Measure::Steps { steps } => (f64::from(*steps), "steps"),
            Measure::Sleep { hours } => (*hours, "h"),
            Measure::Session { .. } => (1.0, "sessions"),
        }
    }

    /// The occurrence-level target and unit: for weekly homework, days in the week.
    pub fn target(&self) -> (f64, &'static str) {
        match self.schedule {
            Schedule::PerWeek(n) if matches!(self.measure, Measure::Session { .. }) => (f64::from(n), "sessions"),
            Schedule::PerWeek(n) | Schedule::DaysPerWeek(n) => (f64::from(n), "days"),
            _ => self.day_target(),
        }
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

fn plural(n: f64, one: &str, many: &str) -> String {
    format!("{} {}", number(n), if n == 1.0 { one } else { many })
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effort::Category(c) => write!(f, "{c}"),
            Effort::Zone(z) => write!(f, "zone {z}"),
            Effort::Family(fam) => f.write_str(match fam.as_str() {
                "run" => "running",
                "ride" => "cycling",
                "walk" => "walking",
                "swim" => "swimming",
                "row" => "rowing",
                other => other,
            }),
            Effort::Any => f.write_str("exercise"),
        }
    }
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

/// The normalized phrase, echoed back by `assign` and shown everywhere.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.measure {
            Measure::Minutes { of: Effort::Zone(z), minutes } => {
                write!(f, "{} in zone {z}", plural(*minutes, "minute", "minutes"))?
            }
            Measure::Minutes { of, minutes } => write!(f, "{} of {of}", plural(*minutes, "minute", "minutes"))?,
            Measure::Reps { exercise, reps } => {
                let name = exercise.replace('_', "-");
                write!(f, "{}", plural(f64::from(*reps), &name, &format!("{name}s")))?
            }
            Measure::Steps { steps } => write!(f, "{}", plural(f64::from(*steps), "step", "steps"))?,
            Measure::Sleep { hours } => write!(f, "{} of sleep", plural(*hours, "hour", "hours"))?,
            Measure::Session { of: Effort::Family(fam) }
                if ["run", "ride", "walk", "swim", "row"].contains(&fam.as_str()) =>
            {
                write!(f, "a {fam}")?
            }
            Measure::Session { of: Effort::Category(Category::Mobility) } => f.write_str("a recovery session")?,
            Measure::Session { of: Effort::Any } => f.write_str("a workout")?,
            Measure::Session { of } => write!(f, "a {of} session")?,
        }
        let night = if self.nightly { "night" } else { "day" };
        match &self.schedule {
            Schedule::Daily => write!(f, " every {night}")?,
            Schedule::Days(days) => {
                let names: Vec<&str> = days.iter().map(|d| weekday_name(*d)).collect();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => write!(f, " on {} and {last}", rest.join(", "))?,
                    _ => write!(f, " on {}", names.join(""))?,
                }
                if self.nightly {
                    f.write_str(" nights")?;
                }
            }
            Schedule::PerWeek(1) => f.write_str(", once a week")?,
            Schedule::PerWeek(2) => f.write_str(", twice a week")?,
            Schedule::PerWeek(n) => write!(f, ", {n} times a week")?,
            Schedule::DaysPerWeek(1) => f.write_str(", once a week")?,
            Schedule::DaysPerWeek(2) => f.write_str(", twice a week on different days")?,
            Schedule::DaysPerWeek(n) => write!(f, ", {n} times a week on different days")?,
        }
        if let Some(w) = self.window {
            write!(f, " ({w})")?;
        }
        if let Some(b) = self.bands {
            write!(f, " [done at {:.0} %, partial at {:.0} %]", b.done * 100.0, b.partial * 100.0)?;
        }
        Ok(())
    }
}
