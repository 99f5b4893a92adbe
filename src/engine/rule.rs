//! Homework rules: what is measured, on which days, in which daily window, and how the
//! target grows.

use crate::model::Category;
use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
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
    /// Sets of at least `reps` repetitions ("3 sets of 10 push-ups"); a shorter set
    /// counts as the fraction it reached.
    Sets {
        exercise: String,
        sets: u32,
        reps: u32,
    },
    /// One hold of an exercise for at least `seconds` ("plank 60 seconds").
    Hold {
        exercise: String,
        seconds: f64,
    },
    /// Distance of an effort, in metres; `unit` is how the trainer wrote it (km, mi, m).
    Distance {
        of: Effort,
        meters: f64,
        unit: DistanceUnit,
    },
    Steps {
        steps: u32,
    },
    /// Hours asleep in the night that starts on the occurrence's date; `up_to` makes
    /// it a range ("7-9 hours of sleep").
    Sleep {
        hours: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up_to: Option<f64>,
    },
    /// Asleep by a local clock time on the night that starts on the occurrence's date.
    BedBy {
        time: NaiveTime,
    },
    /// Awake by a local clock time on the occurrence's morning.
    UpBy {
        time: NaiveTime,
    },
    /// At least one session of an effort.
    Session {
        of: Effort,
    },
    /// Something no device sees ("drink 2 liters of water"): judged from the client's
    /// check-ins alone. `amount` and `unit` when the phrase names them.
    Habit {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    /// Questions the client answers on their private page; done when answered.
    Questions {
        questions: Vec<Question>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistanceUnit {
    Km,
    Mi,
    M,
}

impl DistanceUnit {
    pub fn meters(self) -> f64 {
        match self {
            Self::Km => 1000.0,
            Self::Mi => 1609.344,
            Self::M => 1.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Km => "km",
            Self::Mi => "mi",
            Self::M => "m",
        }
    }
}

/// One question of a questions homework.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub text: String,
    pub kind: QuestionKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// Free text.
    Text,
    /// A whole number from 1 to 10.
    Scale,
    YesNo,
}

/// Which activities count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum Effort {
    Category(Category),
    /// Heart-rate zone 1-5: 50-60, 60-70, 70-80, 80-90, 90-100 % of HR max.
    Zone(u8),
    /// A type family (`run`, `ride`, `yoga`, `mindfulness`, ...).
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
    /// Every N days from the homework's first day ("every other day" is 2).
    EveryNDays(u8),
    /// The amount is a total over each Monday-Sunday week ("150 minutes of cardio a week").
    WeekTotal,
}

impl Schedule {
    /// N, for either weekly count.
    pub fn per_week(&self) -> Option<u8> {
        match self {
            Self::PerWeek(n) | Self::DaysPerWeek(n) => Some(*n),
            _ => None,
        }
    }

    /// Judged per Monday-Sunday week (the occurrence is dated by its Monday).
    pub fn weekly(&self) -> bool {
        matches!(self, Self::PerWeek(_) | Self::DaysPerWeek(_) | Self::WeekTotal)
    }
}

/// How the target grows week by week from the homework's first week.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progression {
    /// Added each week: in the measure's unit, or a percentage when `percent`.
    pub step: f64,
    #[serde(default)]
    pub percent: bool,
    /// The target never goes past this (the measure's unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<f64>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progression: Option<Progression>,
}

/// How a rule is judged, in the words the assign echo uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JudgedBy {
    Devices,
    /// Only the client's check-ins can tell (habits, questions).
    CheckIns,
}

impl Rule {
    /// The day-level target and its unit, before any progression.
    pub fn day_target(&self) -> (f64, &'static str) {
        match &self.measure {
            Measure::Minutes { minutes, .. } => (*minutes, "min"),
            Measure::Reps { reps, .. } => (f64::from(*reps), "reps"),
            Measure::Sets { sets, .. } => (f64::from(*sets), "sets"),
            Measure::Hold { seconds, .. } => (*seconds, "s"),
            Measure::Distance { meters, unit, .. } => (meters / unit.meters(), unit.as_str()),
            Measure::Steps { steps } => (f64::from(*steps), "steps"),
            Measure::Sleep { hours, .. } => (*hours, "h"),
            Measure::BedBy { .. } => (1.0, "nights"),
            Measure::UpBy { .. } => (1.0, "mornings"),
            Measure::Session { .. } => (1.0, "sessions"),
            Measure::Habit { amount: Some(a), .. } => (*a, "check-in"),
            Measure::Habit { amount: None, .. } => (1.0, "check-ins"),
            Measure::Questions { .. } => (1.0, "answered"),
        }
    }

    /// The day-level target on `date` of a homework that started on `from`: the
    /// progression applied once per whole week since the first week's Monday.
    pub fn day_target_on(&self, from: NaiveDate, date: NaiveDate) -> f64 {
        let (base, unit) = self.day_target();
        let Some(p) = self.progression else { return base };
        let weeks = ((crate::time::monday(date) - crate::time::monday(from)).num_days() / 7).clamp(0, 520);
        let grown =
            if p.percent { base * (1.0 + p.step / 100.0).powi(weeks as i32) } else { base + p.step * weeks as f64 };
        let capped = match p.up_to {
            Some(cap) if p.step >= 0.0 => grown.min(cap),
            Some(cap) => grown.max(cap),
            None => grown,
        };
        // Whole reps, steps and sets; distances to 0.1; times to whole units.
        let rounded = match unit {
            "km" | "mi" | "h" => (capped * 10.0).round() / 10.0,
            _ => capped.round(),
        };
        rounded.max(0.0)
    }

    /// The occurrence-level unit: sessions or days for weekly counts, the measure's otherwise.
    pub fn unit(&self) -> &'static str {
        match self.schedule {
            Schedule::PerWeek(_) if matches!(self.measure, Measure::Session { .. }) => "sessions",
            Schedule::PerWeek(_) | Schedule::DaysPerWeek(_) => "days",
            _ => self.day_target().1,
        }
    }

    /// The occurrence-level target on an occurrence date (a week's Monday for weekly rules).
    pub fn target_on(&self, from: NaiveDate, date: NaiveDate) -> f64 {
        match self.schedule.per_week() {
            Some(n) => f64::from(n),
            None => self.day_target_on(from, date),
        }
    }

    /// The occurrence-level target and unit, before any progression.
    pub fn target(&self) -> (f64, &'static str) {
        match self.schedule.per_week() {
            Some(n) => (f64::from(n), self.unit()),
            None => self.day_target(),
        }
    }

    pub fn judged_by(&self) -> JudgedBy {
        match self.measure {
            Measure::Habit { .. } | Measure::Questions { .. } => JudgedBy::CheckIns,
            _ => JudgedBy::Devices,
        }
    }

    /// Whether `d` is an occurrence date of a rule whose homework starts on `from`
    /// (for weekly rules, whether it is a Monday).
    pub fn occurs_on(&self, from: NaiveDate, d: NaiveDate) -> bool {
        match &self.schedule {
            Schedule::Daily => true,
            Schedule::Days(days) => days.contains(&d.weekday()),
            Schedule::EveryNDays(n) => (d - from).num_days().rem_euclid(i64::from((*n).max(1))) == 0,
            Schedule::PerWeek(_) | Schedule::DaysPerWeek(_) | Schedule::WeekTotal => d.weekday() == Weekday::Mon,
        }
    }
}

pub fn number(x: f64) -> String {
    let r = (x * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

/// Minutes as the echo says them, so that the echo reads back as the same amount: in
/// minutes when three decimals say it exactly, else in whole seconds ("10 seconds", not
/// "0.167 minutes"), else in minutes with every digit.
fn duration(minutes: f64) -> String {
    if number(minutes).parse::<f64>().ok() == Some(minutes) {
        return plural(minutes, "minute", "minutes");
    }
    let seconds = (minutes * 60.0).round();
    if seconds * (1.0 / 60.0) == minutes {
        return plural(seconds, "second", "seconds");
    }
    format!("{minutes} minutes")
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
                "mindfulness" => "meditation",
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

fn exercise_name(exercise: &str) -> String {
    exercise.replace('_', "-")
}

/// The normalized phrase, echoed back by `assign` and shown everywhere.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.measure {
            Measure::Minutes { of: Effort::Zone(z), minutes } => write!(f, "{} in zone {z}", duration(*minutes))?,
            Measure::Minutes { of, minutes } => write!(f, "{} of {of}", duration(*minutes))?,
            Measure::Reps { exercise, reps } => {
                let name = exercise_name(exercise);
                write!(f, "{}", plural(f64::from(*reps), &name, &format!("{name}s")))?
            }
            Measure::Sets { exercise, sets, reps } => {
                let name = exercise_name(exercise);
                let sets = plural(f64::from(*sets), "set", "sets");
                write!(f, "{sets} of {}", plural(f64::from(*reps), &name, &format!("{name}s")))?
            }
            Measure::Hold { exercise, seconds } => {
                write!(f, "a {}-second {}", number(*seconds), exercise_name(exercise))?
            }
            Measure::Distance { of, meters, unit } => {
                // "m" alone reads as minutes.
                let word = if *unit == DistanceUnit::M { "meters" } else { unit.as_str() };
                write!(f, "{} {word} of {of}", number(meters / unit.meters()))?
            }
            Measure::Steps { steps } => write!(f, "{}", plural(f64::from(*steps), "step", "steps"))?,
            Measure::Sleep { hours, up_to: Some(most) } => {
                write!(f, "{}-{} hours of sleep", number(*hours), number(*most))?
            }
            Measure::Sleep { hours, up_to: None } => write!(f, "{} of sleep", plural(*hours, "hour", "hours"))?,
            Measure::BedBy { time } => write!(f, "in bed by {}", time.format("%H:%M"))?,
            Measure::UpBy { time } => write!(f, "up by {}", time.format("%H:%M"))?,
            Measure::Session { of: Effort::Family(fam) }
                if ["run", "ride", "walk", "swim", "row"].contains(&fam.as_str()) =>
            {
                write!(f, "a {fam}")?
            }
            Measure::Session { of: Effort::Category(Category::Mobility) } => f.write_str("a recovery session")?,
            Measure::Session { of: Effort::Any } => f.write_str("a workout")?,
            Measure::Session { of } => write!(f, "a {of} session")?,
            Measure::Habit { text, .. } => f.write_str(text)?,
            Measure::Questions { questions } => {
                write!(f, "answer {}", plural(questions.len() as f64, "question", "questions"))?
            }
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
            Schedule::EveryNDays(2) => write!(f, " every other {night}")?,
            Schedule::EveryNDays(n) => write!(f, " every {n} {night}s")?,
            Schedule::WeekTotal => f.write_str(" per week")?,
            Schedule::PerWeek(1) => f.write_str(", once a week")?,
            Schedule::PerWeek(2) => f.write_str(", twice a week")?,
            Schedule::PerWeek(n) => write!(f, ", {n} times a week")?,
            Schedule::DaysPerWeek(1) => f.write_str(", once a week")?,
            Schedule::DaysPerWeek(2) => f.write_str(", twice a week on different days")?,
            Schedule::DaysPerWeek(n) => write!(f, ", {n} times a week on different days")?,
        }
        if self.nightly
            && matches!(self.schedule, Schedule::PerWeek(_) | Schedule::DaysPerWeek(_) | Schedule::WeekTotal)
        {
            f.write_str(" at night")?;
        }
        if let Some(w) = self.window {
            write!(f, " between {} and {}", w.start.format("%H:%M"), w.end.format("%H:%M"))?;
        }
        if let Some(p) = self.progression {
            let sign = if p.step < 0.0 { "-" } else { "+" };
            let pct = if p.percent { " %" } else { "" };
            write!(f, ", {sign}{}{pct} each week", number(p.step.abs()))?;
            if let Some(cap) = p.up_to {
                write!(f, ", up to {}", number(cap))?;
            }
        }
        if let Some(b) = self.bands {
            write!(f, " [done at {:.0} %, partial at {:.0} %]", b.done * 100.0, b.partial * 100.0)?;
        }
        Ok(())
    }
}
