//! Benchmarks: a test the trainer records during a session ("max push-ups: 18"), its
//! unit (given, remembered from the test's earlier results, or read from its name), and
//! the homework it is meant to show the effect of. The `progress` chart draws them.

use super::{App, AppError, AppResult};
use crate::store::benchmarks::{Unit, NOTE_MAX};
use crate::store::web::Trainer;
use crate::store::{Benchmark, Client, NewBenchmark};
use chrono::{Datelike, NaiveDate, Utc};

/// A benchmark as the trainer typed it.
#[derive(Clone, Debug, Default)]
pub struct BenchmarkInput {
    /// The test, e.g. "max push-ups".
    pub name: String,
    /// The result as typed: `18`, `12.5`, `12,5`, `1:30` (minutes:seconds) or `75 s`.
    pub value: String,
    /// `reps`, `s`, `kg`, `km/h` or `score` [default: the test's earlier unit, else read
    /// from its name].
    pub unit: Option<String>,
    pub note: Option<String>,
    /// The homework this test is meant to show the effect of.
    pub for_homework: Option<i64>,
    /// The session's date [default: today in the client's zone].
    pub date: Option<NaiveDate>,
}

/// The units a trainer can name, for messages and forms.
pub const UNITS: &str = "reps, s, kg, km/h or score";

/// The unit a test's name implies, if it does: "max push-ups" → reps, "plank" → s,
/// "squat form" → score, "deadlift 1RM" → kg, "sprint speed" → km/h.
pub fn infer_unit(name: &str) -> Option<Unit> {
    let words: Vec<String> = name
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '/'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let text = format!(" {} ", words.join(" "));
    let has = |keys: &str| keys.split('|').any(|k| text.contains(&format!(" {k} ")));
    // Most specific first: "squat form" is a score, "back squat 1rm" a weight, and an
    // exercise before the words of time: "push-ups in 60 seconds" counts push-ups.
    if has("form|score|technique|quality|rating") {
        Some(Unit::Score)
    } else if has("kg|1rm|3rm|5rm|rm|deadlift|bench press|overhead press|leg press|weight") {
        Some(Unit::Kg)
    } else if has("km/h|kmh|kph|speed") {
        Some(Unit::Kmh)
    } else if has("plank|hold|hang|wall sit|l sit") {
        Some(Unit::Seconds)
    } else if has(REPS_WORDS) {
        Some(Unit::Reps)
    } else if has("seconds|secs|sec|time|duration") {
        Some(Unit::Seconds)
    } else {
        None
    }
}

/// Exercises counted in repetitions, as a test's name says them (hyphens read as spaces).
const REPS_WORDS: &str = "push up|push ups|pushup|pushups|press up|press ups|pull up|pull ups|pullup|pullups|\
                          chin up|chin ups|chinup|chinups|sit up|sit ups|situp|situps|squat|squats|burpee|burpees|\
                          lunge|lunges|dip|dips|crunch|crunches|step up|step ups|jumping jacks|reps|rep";

/// A result as typed, and the unit it names, if any (`1:30` names seconds, `75 s` names s).
fn parse_value(typed: &str) -> AppResult<(f64, Option<Unit>)> {
    let s = typed.trim();
    let not_a_result = || {
        AppError::input(format!("{typed:?} is not a result: give a number, e.g. 18, 12.5 or 1:30 (minutes:seconds)"))
    };
    if s.contains(':') {
        // m:ss or h:mm:ss; every part after the first below 60.
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '.')) {
            return Err(not_a_result());
        }
        let mut total = 0.0;
        for (i, p) in parts.iter().enumerate() {
            let v: f64 = p.parse().map_err(|_| not_a_result())?;
            if i > 0 && v >= 60.0 {
                return Err(not_a_result());
            }
            total = total * 60.0 + v;
        }
        return Ok((total, Some(Unit::Seconds)));
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+'))).unwrap_or(s.len());
    let (number, rest) = s.split_at(split);
    let number = if number.contains('.') { number.to_string() } else { number.replacen(',', ".", 1) };
    if number.is_empty() || !number.chars().any(|c| c.is_ascii_digit()) {
        return Err(not_a_result());
    }
    let value: f64 = number.parse().map_err(|_| not_a_result())?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((value, None));
    }
    match Unit::parse(rest) {
        Some(u) => Ok((value, Some(u))),
        None => Err(AppError::input(format!("{typed:?}: {rest:?} is not a unit; use {UNITS}"))),
    }
}

fn parse_unit(s: &str) -> AppResult<Unit> {
    Unit::parse(s).ok_or_else(|| AppError::input(format!("unit {:?} is not known; use {UNITS}", s.trim())))
}

impl App {
    /// A trainer by name (any case), for a command that acts as one.
    pub async fn trainer_named(&self, name: &str) -> AppResult<Trainer> {
        let trainers = self.store.trainers().await?;
        trainers.into_iter().find(|t| t.name.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            AppError::NotFound(format!(
                "no trainer {name:?}; see `coachd trainer list`, or add one with `coachd trainer add`"
            ))
        })
    }

    /// Record a benchmark of `client`. `by`: the trainer recording it (the dashboard, or
    /// `--trainer`); the client must be theirs, and another trainer's client is "not
    /// found", like a missing one. The homework, if given, must be the client's.
    pub async fn record_benchmark(
        &self,
        client: &Client,
        by: Option<&Trainer>,
        input: &BenchmarkInput,
    ) -> AppResult<Benchmark> {
        if let Some(t) = by {
            if client.trainer_id != Some(t.id) {
                return Err(AppError::NotFound(format!(
                    "client {:?} not found among {}'s clients",
                    client.name, t.name
                )));
            }
        }
        let name = input.name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() {
            return Err(AppError::input("the test has no name; name it, e.g. \"max push-ups\""));
        }
        let homework = match input.for_homework {
            Some(id) => Some(self.homework_of(client, id).await?),
            None => None,
        };
        let (value, typed_unit) = parse_value(&input.value)?;
        let given = match input.unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => Some(parse_unit(u)?),
            None => None,
        };
        let given = match (given, typed_unit) {
            (Some(a), Some(b)) if a != b => {
                return Err(AppError::input(format!(
                    "the result {:?} is in {b}, but the unit given is {a}; give one of them",
                    input.value.trim()
                )))
            }
            (a, b) => a.or(b),
        };
        // A test keeps its unit and its first spelling, so its results form one series.
        let earlier = self.store.benchmark_test(client.id, &name).await?;
        let (name, unit) = match (earlier, given) {
            (Some((first, unit)), Some(u)) if u != unit => {
                return Err(AppError::input(format!(
                    "{first:?} of {} is recorded in {unit}; give this result in {unit} too, or name a new test \
                     (e.g. \"{first} ({u})\")",
                    client.name
                )))
            }
            (Some((first, unit)), _) => (first, unit),
            (None, Some(u)) => (name, u),
            (None, None) => match infer_unit(&name) {
                Some(u) => (name, u),
                None => {
                    let what = format!("the unit of {name:?} is not clear from its name");
                    return Err(AppError::input(format!("{what}: give it (--unit, or the form's Unit) as {UNITS}")));
                }
            },
        };
        let today = crate::time::today(client.tz, Utc::now());
        let date = input.date.unwrap_or(today);
        if date > today {
            return Err(AppError::input(format!(
                "{date} is in the future for {} (today is {today} in {}); a benchmark is recorded on or after its session",
                client.name,
                client.tz.name()
            )));
        }
        if date.year() < 2000 {
            return Err(AppError::input(format!("{date} is before 2000; give the session's date")));
        }
        let note: Option<String> =
            input.note.as_deref().map(|n| n.trim().chars().take(NOTE_MAX).collect()).filter(|n: &String| !n.is_empty());
        let new = NewBenchmark {
            client_id: client.id,
            name,
            unit,
            value,
            note,
            homework_id: homework.map(|h| h.homework.id),
            date,
            trainer_id: by.map(|t| t.id),
        };
        Ok(self.store.add_benchmark(&new).await?)
    }

    /// The client's benchmarks, of one test (any case) or all: by test, oldest first.
    pub async fn benchmarks(&self, client: &Client, test: Option<&str>) -> AppResult<Vec<Benchmark>> {
        Ok(self.store.benchmarks(client.id, test.map(str::trim).filter(|t| !t.is_empty())).await?)
    }

    /// Remove a benchmark recorded by mistake; another client's is "not found".
    pub async fn remove_benchmark(&self, client: &Client, id: i64) -> AppResult<Benchmark> {
        self.store.remove_benchmark(client.id, id).await.map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => AppError::NotFound(format!(
                "benchmark #{id} of {} not found; see `coachd benchmarks {}`",
                client.name, client.name
            )),
            other => other.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_from_test_names() {
        for (name, unit) in [
            ("max push-ups", Some(Unit::Reps)),
            ("Max Pushups", Some(Unit::Reps)),
            ("pull-ups", Some(Unit::Reps)),
            ("air squats in a minute", Some(Unit::Reps)),
            ("push-ups in 60 seconds", Some(Unit::Reps)),
            ("5k time", Some(Unit::Seconds)),
            ("plank", Some(Unit::Seconds)),
            ("dead hang", Some(Unit::Seconds)),
            ("wall-sit", Some(Unit::Seconds)),
            ("squat form", Some(Unit::Score)),
            ("push-up form", Some(Unit::Score)),
            ("deadlift 1RM", Some(Unit::Kg)),
            ("back squat 5rm", Some(Unit::Kg)),
            ("sprint speed", Some(Unit::Kmh)),
            ("broad jump", None),
            ("resting heart rate", None),
        ] {
            assert_eq!(infer_unit(name), unit, "{name}");
        }
    }

    #[test]
    fn results_are_read_as_typed() {
        assert_eq!(parse_value("18").ok().map(|v| v.0), Some(18.0));
        assert_eq!(parse_value(" 12,5 ").ok().map(|v| v.0), Some(12.5));
        assert_eq!(parse_value("1:30").ok(), Some((90.0, Some(Unit::Seconds))));
        assert_eq!(parse_value("1:02:03").ok(), Some((3723.0, Some(Unit::Seconds))));
        assert_eq!(parse_value("75 s").ok(), Some((75.0, Some(Unit::Seconds))));
        assert_eq!(parse_value("18reps").ok(), Some((18.0, Some(Unit::Reps))));
        assert_eq!(parse_value("-3").ok().map(|v| v.0), Some(-3.0), "the range check refuses it, with its reason");
        for bad in ["", "NaN", "inf", "eighteen", "1:75", "1:", "1e400", "18 furlongs"] {
            let e = parse_value(bad).expect_err(bad).to_string();
            assert!(e.contains("not a result") || e.contains("not a unit"), "{bad}: {e}");
        }
    }
}
