//! Homework in the trainer's words: a small grammar (winnow) over word tokens.
//!
//! ```text
//! phrase    := [start at] head tail* end
//! head      := amount subject                  "10 push-ups", "150 minutes of cardio"
//!            | sets of N exercise | N x N exercise
//!            | [a] duration holdable | holdable [for] duration
//!            | amount distance [of] effort | a distance family-noun
//!            | duration family-noun             "30 min walk"
//!            | N-N hours of sleep
//!            | activity-verb [duration | distance]   "walk 30 minutes", "run", "meditate 10 min"
//!            | (in bed | asleep) by TIME | (up | awake) by TIME
//!            | habit-words                      anything no device sees, before a schedule
//! tail      := schedule | window | progression | timing
//! schedule  := every day | daily | every night | before bed | every other day | every N days
//!            | [on] day-list | weekdays | weekends | weeknights
//!            | N times a week | twice a week | once a week | on different days
//!            | a week | per week | weekly | this week      (a weekly total, or a weekly count of sessions)
//! window    := between TIME and TIME | after dinner | before breakfast | in the morning | at lunch
//! progression := (+N | add N) [unit | %] each week [, up to N]
//! timing    := from next monday | from tomorrow | from YYYY-MM-DD | for N weeks
//! ```
//!
//! [`FORMS`] is the one table of examples: `assign --help`, the README and the
//! dashboard list it, and its tests check every line parses to its echo.

use super::rule::{DistanceUnit, Effort, Measure, Progression, Rule, Schedule, Window};
use crate::model::Category;
use chrono::{NaiveDate, NaiveTime, Weekday};
use winnow::combinator::{alt, opt, preceded, repeat, separated};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::token::any;

/// Every form the grammar knows, as (what a trainer writes, what coachd echoes, what it is).
pub const FORMS: &[(&str, &str, &str)] = &[
    ("15 minutes of cardio", "15 minutes of cardio every day", "minutes of an effort"),
    ("15 min cardio on mon, wed and sat", "15 minutes of cardio on Mon, Wed and Sat", "on weekdays you name"),
    ("30 min zone 2 twice a week", "30 minutes in zone 2, twice a week", "a heart-rate zone, N days a week"),
    ("150 minutes of cardio a week", "150 minutes of cardio per week", "a weekly total"),
    ("3 hours of zone 2 per week", "180 minutes in zone 2 per week", "a weekly total"),
    ("walk 30 minutes every day", "30 minutes of walking every day", "minutes of one activity"),
    ("30 min walk after dinner", "30 minutes of walking every day between 19:00 and 23:00", "with a window"),
    ("half an hour of yoga on weekends", "30 minutes of yoga on Sat and Sun", "numbers in words"),
    ("1h30 of cycling on sundays", "90 minutes of cycling on Sun", "1h30, 90', 1.5 hours"),
    ("yoga twice a week", "a yoga session, twice a week", "sessions of one activity"),
    ("run 3 times a week", "a run, 3 times a week", "sessions of one activity"),
    ("2 runs per week on different days", "a run, twice a week on different days", "sessions on different days"),
    ("a recovery routine every day", "a recovery session every day", "a session"),
    ("a 5 km run on saturday", "5 km of running on Sat", "a distance"),
    ("walk 3 miles daily", "3 mi of walking every day", "a distance"),
    ("20 km of running this week", "20 km of running per week", "a weekly distance"),
    ("10 push-ups every night", "10 push-ups every night", "repetitions"),
    ("100 push-ups a week", "100 push-ups per week", "a weekly total of repetitions"),
    ("3 sets of 10 push-ups every night", "3 sets of 10 push-ups every night", "sets x reps"),
    ("3 x 12 squats on mon and thu", "3 sets of 12 squats on Mon and Thu", "sets x reps"),
    ("plank 60 seconds every day", "a 60-second plank every day", "a hold"),
    ("a 2-minute plank daily", "a 120-second plank every day", "a hold"),
    ("10 pull-ups every other day", "10 pull-ups every other day", "every other day"),
    ("20 squats every 3 days", "20 squats every 3 days", "every N days"),
    ("10k steps daily", "10000 steps every day", "steps: 10k, 10,000, 10.000"),
    ("8 hours of sleep", "8 hours of sleep every night", "sleep"),
    ("7-9 hours of sleep", "7-9 hours of sleep every night", "sleep in a range"),
    ("7 hours of sleep on weeknights", "7 hours of sleep on Mon, Tue, Wed, Thu and Sun nights", "weeknights"),
    ("in bed by 23:00", "in bed by 23:00 every night", "a bedtime"),
    ("up by 7:00 on weekdays", "up by 07:00 on Mon, Tue, Wed, Thu and Fri", "a wake-up time"),
    ("meditate 10 minutes daily", "10 minutes of meditation every day", "mindfulness minutes"),
    ("10 min breathing every evening", "10 minutes of meditation every night", "mindfulness minutes"),
    ("10 push-ups every night, +2 each week", "10 push-ups every night, +2 each week", "a progression"),
    (
        "5 km of running on sundays, add 10 % a week, up to 10 km",
        "5 km of running on Sun, +10 % each week, up to 10",
        "a progression with a cap",
    ),
    ("drink 2 liters of water every day", "drink 2 liters of water every day", "a habit (client's check-ins)"),
    ("no alcohol on weeknights", "no alcohol on Mon, Tue, Wed, Thu and Sun nights", "a habit (client's check-ins)"),
    ("journal every evening", "journal every night", "a habit (client's check-ins)"),
];

/// The words each effort, exercise and activity answers to (shown in help and errors).
pub const WORDS: &str = "\
efforts: cardio, mobility/recovery/stretching, strength, zone 1-5 (z2), exercise/workout
activities: run/jog/running, ride/bike/cycle/cycling, walk/hike/walking, swim/swimming, row/rowing, yoga,
            meditate/meditation/mindfulness/breathing/breathwork
exercises: push-ups, pull-ups/chin-ups, squats, sit-ups, lunges, burpees, crunches, dips, jumping jacks;
           holds: plank, side plank, wall sit, dead hang
numbers: 10, 10k, 10,000, 10.000 (steps), ten, half an hour, 1h30, 90', 1.5 hours
times: 23:00, 11pm, 7am; windows: between 19:00 and 23:00, after dinner, before breakfast, in the morning";

/// The forms as a text block (`assign --help`, errors).
pub fn forms_help() -> String {
    let mut out = String::from("Homework phrases (what you write → what coachd judges):\n");
    for (phrase, echo, what) in FORMS {
        out.push_str(&format!("  {phrase:<58} → {echo}   ({what})\n"));
    }
    out.push_str(WORDS);
    out.push_str(
        "\nA phrase no device can see, with a schedule (\"drink 2 liters of water every day\"), becomes a\n\
         habit judged from the client's check-ins.",
    );
    out
}

/// The forms as a Markdown table (the README's homework section holds exactly this).
pub fn forms_markdown() -> String {
    let mut out = String::from("| a trainer writes | coachd judges | kind |\n|---|---|---|\n");
    for (phrase, echo, what) in FORMS {
        out.push_str(&format!("| `{phrase}` | {echo} | {what} |\n"));
    }
    out
}

/// When a homework starts and how long it runs, in words ("from next monday", "for 4 weeks").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub from: Option<StartWords>,
    pub weeks: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartWords {
    Tomorrow,
    /// "from next monday", "starting monday": the first such day after today.
    Next(Weekday),
    /// "from next week": next Monday.
    NextWeek,
    Date(NaiveDate),
}

impl StartWords {
    /// The date these words mean, seen from `today`.
    pub fn resolve(self, today: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        match self {
            Self::Tomorrow => today + chrono::Duration::days(1),
            Self::Next(day) => {
                let ahead = (i64::from(day.num_days_from_monday()) - i64::from(today.weekday().num_days_from_monday()))
                    .rem_euclid(7);
                today + chrono::Duration::days(if ahead == 0 { 7 } else { ahead })
            }
            Self::NextWeek => crate::time::monday(today) + chrono::Duration::days(7),
            Self::Date(d) => d,
        }
    }
}

/// Longer phrases are refused before parsing, which keeps every parse short.
pub const MAX_WORDS: usize = 40;

type Toks<'t> = &'t [&'t str];
type PResult<T> = Result<T, ErrMode<ContextError>>;

/// Parse a phrase into a rule (schedule defaults: daily; nightly for sleep and bedtimes).
pub fn parse(phrase: &str) -> Result<Rule, String> {
    parse_with_timing(phrase).map(|(rule, _)| rule)
}

/// Parse a phrase into a rule and any start/length words in it.
pub fn parse_with_timing(phrase: &str) -> Result<(Rule, Timing), String> {
    read(phrase).map_err(|r| r.to_string())
}

/// Why a phrase was not understood, in parts: what a front end shows and offers.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// What was not understood and what was expected there.
    pub reason: String,
    /// More to say: a form not judged yet, a misspelled word and the word it looks like.
    pub notes: Vec<String>,
    /// The normalized phrase with misspelled words fixed, when that parses.
    pub suggestion: Option<String>,
    /// The closest forms of the table.
    pub forms: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        for note in &self.notes {
            write!(f, "\n{note}")?;
        }
        if let Some(fixed) = &self.suggestion {
            write!(f, "\ndid you mean: {fixed}?")?;
        }
        write!(f, "\n{}", self.forms)
    }
}

/// Why `phrase` is refused, or None when it is understood.
pub fn refusal(phrase: &str) -> Option<Refusal> {
    read(phrase).err()
}

fn read(phrase: &str) -> Result<(Rule, Timing), Refusal> {
    let owned = tokenize(phrase);
    let tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
    let plain = |reason: String| Refusal { reason, notes: Vec::new(), suggestion: None, forms: short_forms(&[]) };
    if tokens.is_empty() {
        return Err(plain("the homework phrase is empty".into()));
    }
    if tokens.len() > MAX_WORDS {
        return Err(plain(format!(
            "the homework phrase has {} words; coachd reads at most {MAX_WORDS}: say it shorter, and set weekdays, \
             windows and dates with --days, --window, --from and --until",
            tokens.len()
        )));
    }
    attempt(&tokens).map_err(|failure| explain(phrase, &tokens, failure))
}

/// How far the best reading got, and what it expected next.
struct Failure {
    consumed: usize,
    expected: &'static str,
    /// Every word was read but they make no homework: why.
    why: Option<String>,
}

fn attempt(tokens: &[&str]) -> Result<(Rule, Timing), Failure> {
    let mut best = Failure { consumed: 0, expected: EXPECT_START, why: None };
    let mut input: Toks<'_> = tokens;
    let _ =
        opt((word(&["start", "starting", "begin", "beginning"]), word(&["at", "with", "from"]))).parse_next(&mut input);
    let lead = tokens.len() - input.len();
    let heads: [fn(&mut Toks<'_>) -> PResult<Head>; 4] = [amount_head, verb_head, clock_head, sleep_range_head];
    for head in heads {
        let mut rest = input;
        let Ok(h) = head(&mut rest) else { continue };
        let after_head = tokens.len() - rest.len();
        let tail: Vec<Fragment> = repeat(0.., tail_fragment).parse_next(&mut rest).unwrap_or_default();
        let consumed = tokens.len() - rest.len();
        if rest.is_empty() {
            match build(h, &tail) {
                Ok(parsed) => return Ok(parsed),
                Err(why) => {
                    if consumed >= best.consumed {
                        best = Failure { consumed, expected: EXPECT_TAIL, why: Some(why) };
                    }
                }
            }
        } else if consumed > best.consumed || (consumed == best.consumed && best.consumed == lead) {
            let expected = match h {
                _ if consumed != after_head => EXPECT_TAIL,
                Head::Activity(_) => EXPECT_AFTER_ACTIVITY,
                _ => EXPECT_SCHEDULE,
            };
            best = Failure { consumed, expected, why: None };
        }
    }
    if best.consumed <= lead {
        // Nothing past the amount was understood: maybe a habit no device sees.
        if let Some(parsed) = habit(input) {
            return Ok(parsed);
        }
        let mut rest = input;
        if number(&mut rest).is_ok() {
            best = Failure { consumed: tokens.len() - rest.len(), expected: EXPECT_SUBJECT, why: None };
        }
    }
    Err(best)
}

const EXPECT_START: &str =
    "an amount (10, ten, a), an activity (walk, run, yoga, meditate), or \"in bed by\" / \"up by\"";
const EXPECT_SUBJECT: &str =
    "what it counts after the number: minutes/hours of an effort, km/miles, steps, sets, an exercise (push-ups), or sleep";
const EXPECT_SCHEDULE: &str =
    "a schedule: every day, every night, on mon and thu, 3 times a week, per week, every other day";
const EXPECT_AFTER_ACTIVITY: &str = "how long or how far (30 minutes, 5 km) or a schedule (every day, 3 times a week)";
const EXPECT_TAIL: &str = "a schedule, a window (between 19:00 and 23:00), a progression (+2 each week) or an end";

fn explain(phrase: &str, tokens: &[&str], failure: Failure) -> Refusal {
    let (ok, rest) = tokens.split_at(failure.consumed.min(tokens.len()));
    let reason = match (&failure.why, ok.is_empty(), rest.is_empty()) {
        (Some(why), _, true) => format!("read every word of {:?}, but {why}", phrase.trim()),
        (_, true, _) => format!("could not read {:?} as homework: expected {}", phrase.trim(), failure.expected),
        (_, false, true) => format!("read every word of {:?}, but they do not make one homework", phrase.trim()),
        _ => format!("understood {:?} but not {:?}: expected {} there", ok.join(" "), rest.join(" "), failure.expected),
    };
    let mut notes: Vec<String> = unsupported(tokens).into_iter().map(str::to_string).collect();
    let suggestion = did_you_mean(tokens).map(|(fixed, words)| {
        notes.extend(
            words.into_iter().map(|(typed, known)| format!("{typed:?} is not a word coachd knows; {known:?} is")),
        );
        fixed
    });
    Refusal { reason, notes, suggestion, forms: short_forms(tokens) }
}

/// Forms a trainer may reach for that coachd does not judge, with what to write instead.
fn unsupported(tokens: &[&str]) -> Option<&'static str> {
    let has = |w: &str| tokens.contains(&w);
    if let Some(i) = tokens.iter().position(|t| *t == "zone") {
        if tokens.get(i + 1).and_then(|z| z.parse::<f64>().ok()).is_some_and(|z| !(1.0..=5.0).contains(&z)) {
            return Some("heart-rate zones are 1 to 5 (zone 2 is 60-70 % of HR max)");
        }
    }
    if (has("training") || has("rest")) && has("days") {
        return Some(
            "\"on training days\" / \"on rest days\" is not judged yet: name the weekdays instead (\"on mon, wed and fri\")",
        );
    }
    if has("after") && (has("every") || has("each")) && tokens.iter().any(|t| family_noun(t).is_some()) {
        return Some(
            "\"after every run\" is not judged yet: give the schedule instead (\"every day\", \"3 times a week\")",
        );
    }
    None
}

/// The closest forms of the table to the words given (by shared words).
fn short_forms(tokens: &[&str]) -> String {
    let mut scored: Vec<(usize, usize)> = FORMS
        .iter()
        .enumerate()
        .map(|(i, (p, ..))| {
            let words = tokenize(p);
            (words.iter().filter(|w| tokens.contains(&w.as_str())).count(), i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = String::from("forms that work, for example:\n");
    for (_, i) in scored.iter().take(4) {
        out.push_str(&format!("  {}\n", FORMS[*i].0));
    }
    out.push_str("(`coachd assign --help` lists every form)");
    out
}

/// The phrase with unknown words replaced by the nearest known ones, if that parses, and
/// the words replaced.
fn did_you_mean(tokens: &[&str]) -> Option<(String, Vec<(String, &'static str)>)> {
    let mut changed = Vec::new();
    let fixed: Vec<String> = tokens
        .iter()
        .map(|t| match nearest_word(t, 4) {
            Some(w) => {
                changed.push(((*t).to_string(), w));
                w.to_string()
            }
            None => (*t).to_string(),
        })
        .collect();
    if changed.is_empty() {
        return None;
    }
    let refs: Vec<&str> = fixed.iter().map(String::as_str).collect();
    attempt(&refs).ok().map(|(rule, _)| (rule.to_string(), changed))
}

/// Every word the grammar knows (for spelling suggestions and to keep habits honest).
const VOCABULARY: &[&str] = &[
    "minutes",
    "minute",
    "hours",
    "hour",
    "seconds",
    "second",
    "cardio",
    "mobility",
    "recovery",
    "stretching",
    "strength",
    "training",
    "yoga",
    "zone",
    "running",
    "jogging",
    "cycling",
    "biking",
    "walking",
    "hiking",
    "swimming",
    "rowing",
    "exercise",
    "workout",
    "workouts",
    "session",
    "sessions",
    "routine",
    "steps",
    "sleep",
    "push-ups",
    "pull-ups",
    "squats",
    "sit-ups",
    "lunges",
    "burpees",
    "crunches",
    "plank",
    "every",
    "daily",
    "nightly",
    "night",
    "week",
    "weekly",
    "twice",
    "once",
    "times",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "weekdays",
    "weekends",
    "weeknights",
    "meditate",
    "meditation",
    "breathing",
    "mindfulness",
    "walk",
    "run",
    "swim",
    "ride",
    "cycle",
    "miles",
    "km",
    "before",
    "bed",
    "morning",
    "evening",
];

/// Words that name something a device measures: a phrase with one of them is never a habit.
const DEVICE_WORDS: &[&str] = &[
    "cardio",
    "aerobic",
    "mobility",
    "recovery",
    "stretching",
    "stretch",
    "strength",
    "weights",
    "lifting",
    "zone",
    "z1",
    "z2",
    "z3",
    "z4",
    "z5",
    "yoga",
    "running",
    "jogging",
    "cycling",
    "biking",
    "riding",
    "walking",
    "hiking",
    "swimming",
    "rowing",
    "exercise",
    "workout",
    "workouts",
    "steps",
    "step",
    "sleep",
    "sleeping",
    "km",
    "mi",
    "miles",
    "meditate",
    "meditation",
    "mindfulness",
    "breathing",
    "breathwork",
    "plank",
    "sets",
    "reps",
];

fn nearest_word(t: &str, shortest: usize) -> Option<&'static str> {
    if t.chars().count() < shortest
        || !t.chars().all(|c| c.is_alphabetic() || c == '-')
        || VOCABULARY.contains(&t)
        || known(t)
    {
        return None;
    }
    let limit = if t.chars().count() >= 7 { 2 } else { 1 };
    VOCABULARY
        .iter()
        .map(|w| (edit_distance(t, w), *w))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, w)| w)
}

/// Whether any part of the grammar reads this word on its own.
fn known(t: &str) -> bool {
    let one = [t];
    let mut input: Toks<'_> = &one;
    exercise(&mut input).is_ok()
        || family_noun(t).is_some()
        || verb(t).is_some()
        || weekday_word(t).is_some()
        || DEVICE_WORDS.contains(&t)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------
// Tokens

/// Lower-case words and numbers: commas become their own token; "15min" → "15", "min";
/// "8,000" → "8000"; "10.000 steps" → "10000"; "10k" → "10000" (or "10", "km" before a
/// run); "1h30" → "90", "min"; "90'" → "90", "min"; "11pm" → "23:00"; "3x12" → "3", "x",
/// "12"; "7-9" → "7", "-", "9"; hyphens inside words stay ("push-ups").
fn tokenize(s: &str) -> Vec<String> {
    let raw: Vec<String> = s
        .to_lowercase()
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '.' | '!' | ';' | '"' | '?' | '(' | ')' | ':')).to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let next = raw.get(i + 1).map(String::as_str).unwrap_or("");
        let after_activity = out.last().is_some_and(|p| verb(p).is_some() || family_noun(p).is_some());
        token(w, if after_activity && w.ends_with('k') { "run" } else { next }, &mut out);
    }
    out
}

fn token(w: &str, next: &str, out: &mut Vec<String>) {
    if NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok() {
        out.push(w.to_string());
        return;
    }
    let digits_only = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    // Thousands separators: 8,000 or 10,000 (and 10.000 before steps).
    for sep in [',', '.'] {
        let groups: Vec<&str> = w.split(sep).collect();
        if groups.len() > 1
            && (sep == ',' || next.starts_with("step"))
            && groups.iter().all(|g| digits_only(g))
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3)
        {
            out.push(groups.concat());
            return;
        }
    }
    // 10k: ten thousand steps, or ten kilometres before a run.
    if let Some(n) = w.strip_suffix('k').and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite()) {
        if family_noun(next).is_some() || matches!(next, "race" | "of") {
            out.extend([number_text(n), "km".into()]);
        } else {
            out.push(number_text(n * 1000.0));
        }
        return;
    }
    // 1h30, 1h, 90'
    if let Some((h, m)) = w.split_once('h') {
        if digits_only(h) && (m.is_empty() || digits_only(m.trim_end_matches("min"))) && !m.starts_with('r') {
            let hours: f64 = h.parse().unwrap_or(0.0);
            let mins: f64 = m.trim_end_matches("min").parse().unwrap_or(0.0);
            if m.is_empty() {
                out.extend([number_text(hours), "h".into()]);
            } else {
                out.extend([number_text(hours * 60.0 + mins), "min".into()]);
            }
            return;
        }
    }
    if let Some(n) = w.strip_suffix('\'').filter(|n| digits_only(n)) {
        out.extend([n.to_string(), "min".into()]);
        return;
    }
    // Clock times: 23:00, 7:30, 11pm, 7am, 10:30pm, and 19:00-23:00.
    if let Some((a, b)) = w.split_once('-') {
        if let (Some(a), Some(b)) = (clock(a), clock(b)) {
            out.extend([a, "-".into(), b]);
            return;
        }
        if digits_only(a) && digits_only(b) {
            out.extend([a.to_string(), "-".into(), b.to_string()]);
            return;
        }
    }
    if let Some(t) = clock(w) {
        out.push(t);
        return;
    }
    // +2, 10%, 3x12
    if let Some(n) = w.strip_prefix('+') {
        out.push("+".into());
        if !n.is_empty() {
            token(n, next, out);
        }
        return;
    }
    if let Some(n) = w.strip_suffix('%') {
        if !n.is_empty() {
            token(n, "", out);
        }
        out.push("%".into());
        return;
    }
    if let Some((a, b)) = w.split_once('x') {
        if digits_only(a) && (b.is_empty() || digits_only(b)) {
            out.extend([a.to_string(), "x".into()]);
            if !b.is_empty() {
                out.push(b.to_string());
            }
            return;
        }
    }
    for (i, part) in w.split(',').enumerate() {
        if i > 0 {
            out.push(",".into());
        }
        split_number_unit(part, out);
    }
}

fn number_text(n: f64) -> String {
    super::rule::number(n)
}

/// "23:00", "7:30", "11pm", "7am", "10:30pm" as "HH:MM".
fn clock(w: &str) -> Option<String> {
    let (body, shift) = match (w.strip_suffix("pm"), w.strip_suffix("am")) {
        (Some(b), _) => (b, Some(12)),
        (_, Some(b)) => (b, Some(0)),
        _ => (w, None),
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None if shift.is_some() => (body, "00"),
        None => return None,
    };
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !(h.chars().chain(m.chars()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    let (mut h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if let Some(shift) = shift {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = h % 12 + shift;
    }
    NaiveTime::from_hms_opt(h, m, 0).map(|t| t.format("%H:%M").to_string())
}

fn split_number_unit(part: &str, out: &mut Vec<String>) {
    if part.is_empty() {
        return;
    }
    let n = part.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(part.len());
    if n > 0 && n < part.len() && !part[..n].ends_with('.') {
        out.push(part[..n].to_string());
        let unit = part[n..].trim_start_matches('-');
        if !unit.is_empty() {
            out.push(unit.to_string());
        }
    } else {
        out.push(part.to_string());
    }
}

// ---------------------------------------------------------------------------------------
// Words

/// One token from a set of words.
fn word<'t>(options: &'static [&'static str]) -> impl Parser<Toks<'t>, &'t str, ErrMode<ContextError>> {
    any.verify(move |t: &&str| options.contains(t))
}

fn number_word(t: &str) -> Option<f64> {
    Some(match t {
        "a" | "an" | "one" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "thirteen" => 13.0,
        "fourteen" => 14.0,
        "fifteen" => 15.0,
        "sixteen" => 16.0,
        "seventeen" => 17.0,
        "eighteen" => 18.0,
        "nineteen" => 19.0,
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "seventy" => 70.0,
        "eighty" => 80.0,
        "ninety" => 90.0,
        "hundred" => 100.0,
        _ => {
            // forty-five
            let (tens, ones) = t.split_once('-')?;
            let (tens, ones) = (number_word(tens)?, number_word(ones)?);
            if (20.0..100.0).contains(&tens) && (1.0..10.0).contains(&ones) && tens.fract() == 0.0 {
                return Some(tens + ones);
            }
            return None;
        }
    })
}

fn number(input: &mut Toks<'_>) -> PResult<f64> {
    let single = any.verify_map(|t: &str| {
        let v = number_word(t).or_else(|| t.parse::<f64>().ok())?;
        (v.is_finite() && v > 0.0).then_some(v)
    });
    // "forty five", "a hundred"
    let compound = (any, any).verify_map(|(a, b): (&str, &str)| {
        let (a, b) = (number_word(a)?, number_word(b)?);
        if (20.0..100.0).contains(&a) && (2.0..10.0).contains(&b) {
            Some(a + b)
        } else if a == 1.0 && b == 100.0 {
            Some(100.0)
        } else {
            None
        }
    });
    alt((compound, single)).parse_next(input)
}

fn whole(n: f64, lo: f64, hi: f64) -> Option<u32> {
    (n.fract() == 0.0 && n >= lo && n <= hi).then_some(n as u32)
}

/// A length of time, in minutes: "15 min", "1.5 hours", "half an hour", "an hour and a half", "45 seconds".
fn duration(input: &mut Toks<'_>) -> PResult<f64> {
    let per_unit = any.verify_map(|t: &str| match t.trim_start_matches('-') {
        "min" | "mins" | "minute" | "minutes" | "m" | "'" => Some(1.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(60.0),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0 / 60.0),
        _ => None,
    });
    let half_hour = (word(&["half"]), opt(word(&["an", "a"])), word(&["hour"])).value(30.0);
    let and_a_half = (number, word(&["hour", "hours"]), word(&["and"]), word(&["a"]), word(&["half"]))
        .map(|(n, ..)| n * 60.0 + 30.0);
    let plain = (number, per_unit).map(|(n, per)| n * per);
    alt((half_hour, and_a_half, plain)).parse_next(input)
}

fn distance(input: &mut Toks<'_>) -> PResult<(f64, DistanceUnit)> {
    let unit = any.verify_map(|t: &str| match t {
        "km" | "kms" | "kilometer" | "kilometers" | "kilometre" | "kilometres" | "k" => Some(DistanceUnit::Km),
        "mi" | "mile" | "miles" => Some(DistanceUnit::Mi),
        "meter" | "meters" | "metre" | "metres" => Some(DistanceUnit::M),
        _ => None,
    });
    (number, unit).parse_next(input)
}

fn effort(input: &mut Toks<'_>) -> PResult<Effort> {
    alt((
        word(&["cardio", "aerobic", "conditioning"]).value(Effort::Category(Category::Cardio)),
        word(&["mobility", "recovery", "stretching", "stretch", "flexibility"])
            .value(Effort::Category(Category::Mobility)),
        word(&["strength", "weights", "lifting"]).value(Effort::Category(Category::Strength)),
        preceded(word(&["zone"]), number).verify_map(zone),
        word(&["z1", "z2", "z3", "z4", "z5"]).map(|z: &str| Effort::Zone(z.as_bytes()[1] - b'0')),
        word(&["yoga"]).value(Effort::Family("yoga".into())),
        word(&["running", "jogging"]).value(Effort::Family("run".into())),
        word(&["cycling", "biking", "riding"]).value(Effort::Family("ride".into())),
        word(&["walking", "hiking"]).value(Effort::Family("walk".into())),
        word(&["swimming"]).value(Effort::Family("swim".into())),
        word(&["rowing"]).value(Effort::Family("row".into())),
        word(&["meditation", "mindfulness", "breathing", "breathwork", "meditating"])
            .value(Effort::Family("mindfulness".into())),
        word(&["exercise", "activity", "training", "movement"]).value(Effort::Any),
    ))
    .parse_next(input)
}

fn zone(z: f64) -> Option<Effort> {
    (z.fract() == 0.0 && (1.0..=5.0).contains(&z)).then_some(Effort::Zone(z as u8))
}

fn exercise(input: &mut Toks<'_>) -> PResult<&'static str> {
    let single = any.verify_map(|t: &str| {
        let t = t.trim_end_matches('s').replace(['-', '_'], "");
        Some(match t.as_str() {
            "pushup" | "pressup" => "push_up",
            "pullup" | "chinup" => "pull_up",
            "squat" => "squat",
            "situp" => "sit_up",
            "lunge" => "lunge",
            "burpee" => "burpee",
            "crunche" | "crunch" => "crunch",
            "dip" => "dip",
            "jumpingjack" => "jumping_jack",
            _ => return None,
        })
    });
    let pair = (any, any).verify_map(|(a, b): (&str, &str)| {
        Some(match (a, b.trim_end_matches('s')) {
            ("push" | "press", "up") => "push_up",
            ("pull" | "chin", "up") => "pull_up",
            ("sit", "up") => "sit_up",
            ("jumping", "jack") => "jumping_jack",
            _ => return None,
        })
    });
    alt((pair, single)).parse_next(input)
}

/// Exercises held for time rather than counted.
fn holdable(input: &mut Toks<'_>) -> PResult<&'static str> {
    let single = any.verify_map(|t: &str| match t.trim_end_matches('s') {
        "plank" => Some("plank"),
        "wall-sit" | "wallsit" => Some("wall_sit"),
        "side-plank" => Some("side_plank"),
        "dead-hang" => Some("dead_hang"),
        _ => None,
    });
    let pair = (any, any).verify_map(|(a, b): (&str, &str)| match (a, b.trim_end_matches('s')) {
        ("side", "plank") => Some("side_plank"),
        ("wall", "sit") => Some("wall_sit"),
        ("dead", "hang") => Some("dead_hang"),
        _ => None,
    });
    alt((pair, single)).parse_next(input)
}

/// "run", "runs", "jog", ...: a session of a type family.
fn family_noun(t: &str) -> Option<&'static str> {
    Some(match t {
        "run" | "runs" | "jog" | "jogs" => "run",
        "ride" | "rides" | "bike" | "bikes" => "ride",
        "walk" | "walks" | "hike" | "hikes" => "walk",
        "swim" | "swims" => "swim",
        "row" | "rows" => "row",
        "yoga" => "yoga",
        _ => return None,
    })
}

/// A verb that starts a phrase: "walk 30 minutes", "meditate 10 minutes", "cycle".
fn verb(t: &str) -> Option<&'static str> {
    Some(match t {
        "run" | "jog" => "run",
        "ride" | "bike" | "cycle" => "ride",
        "walk" | "hike" => "walk",
        "swim" => "swim",
        "row" => "row",
        "yoga" => "yoga",
        "meditate" | "breathe" | "meditation" | "breathing" | "breathwork" => "mindfulness",
        "stretch" => "stretch",
        _ => return None,
    })
}

fn family_effort(fam: &str) -> Effort {
    match fam {
        "stretch" => Effort::Category(Category::Mobility),
        other => Effort::Family(other.into()),
    }
}

fn clock_time(input: &mut Toks<'_>) -> PResult<NaiveTime> {
    any.verify_map(|t: &str| NaiveTime::parse_from_str(t, "%H:%M").ok()).parse_next(input)
}

// ---------------------------------------------------------------------------------------
// Heads

enum Head {
    Measure(Measure),
    /// A count of sessions: "2 runs" per week means two runs.
    Sessions(f64, Effort),
    /// An activity named with no amount ("run", "yoga"): sessions, counted by the schedule.
    Activity(Effort),
}

fn amount_head(input: &mut Toks<'_>) -> PResult<Head> {
    alt((sets_head, hold_head, distance_head, timed_family_head, amount_subject)).parse_next(input)
}

/// "3 sets of 10 push-ups", "3 x 12 squats".
fn sets_head(input: &mut Toks<'_>) -> PResult<Head> {
    (number, alt((word(&["sets", "set"]).void(), word(&["x", "*", "×"]).void())), opt(word(&["of"])), number, exercise)
        .verify_map(|(sets, _, _, reps, e)| {
            Some(Head::Measure(Measure::Sets {
                exercise: e.into(),
                sets: whole(sets, 1.0, 50.0)?,
                reps: whole(reps, 1.0, 1000.0)?,
            }))
        })
        .parse_next(input)
}

/// "a 2-minute plank", "60 seconds of plank", "a 60 second plank".
fn hold_head(input: &mut Toks<'_>) -> PResult<Head> {
    preceded(opt(word(&["a", "an"])), (duration, opt(word(&["of", "in"])), holdable))
        .map(|(min, _, e)| Head::Measure(Measure::Hold { exercise: e.into(), seconds: (min * 60.0).round() }))
        .parse_next(input)
}

/// "5 km of running", "a 5 km run", "20 km of running", "3 miles".
fn distance_head(input: &mut Toks<'_>) -> PResult<Head> {
    let of =
        alt((preceded(opt(word(&["of", "in"])), effort), any.verify_map(|t: &str| family_noun(t).map(family_effort))));
    preceded(opt(word(&["a", "an"])), (distance, opt(of)))
        .map(|((n, unit), of)| {
            Head::Measure(Measure::Distance { of: of.unwrap_or(Effort::Any), meters: n * unit.meters(), unit })
        })
        .parse_next(input)
}

/// "30 min walk", "a 20 minute run".
fn timed_family_head(input: &mut Toks<'_>) -> PResult<Head> {
    preceded(opt(word(&["a", "an"])), (duration, any.verify_map(|t: &str| family_noun(t).map(family_effort))))
        .map(|(minutes, of)| Head::Measure(Measure::Minutes { of, minutes }))
        .parse_next(input)
}

fn amount_subject(input: &mut Toks<'_>) -> PResult<Head> {
    let timed = (
        duration,
        opt(word(&["of", "in", "for"])),
        alt((word(&["sleep", "sleeping"]).value(None), effort.map(Some))),
        opt(word(&["training", "work", "session", "sessions", "exercise", "practice"])),
    )
        .map(|(minutes, _, what, _)| match what {
            None => Head::Measure(Measure::Sleep { hours: minutes / 60.0, up_to: None }),
            Some(of) => Head::Measure(Measure::Minutes { of, minutes }),
        });
    let counted = (number, alt((exercise.map(Ok), word(&["step", "steps"]).map(|_| Err(()))))).verify_map(
        |(n, what): (f64, Result<&str, ()>)| {
            Some(Head::Measure(match what {
                Ok(e) => Measure::Reps { exercise: e.into(), reps: whole(n, 1.0, 100_000.0)? },
                Err(()) => Measure::Steps { steps: whole(n.round(), 1.0, 1_000_000.0)? },
            }))
        },
    );
    let sessions = (
        number,
        opt(effort),
        word(&["session", "sessions", "routine", "routines", "workout", "workouts", "class", "classes"]),
    )
        .map(|(n, of, _)| Head::Sessions(n, of.unwrap_or(Effort::Any)));
    let nouns =
        (number, any.verify_map(|t: &str| family_noun(t).map(family_effort))).map(|(n, of)| Head::Sessions(n, of));
    alt((timed, counted, sessions, nouns)).parse_next(input)
}

/// "walk 30 minutes", "run 5 km", "run", "do yoga", "go for a run", "plank 60 seconds".
fn verb_head(input: &mut Toks<'_>) -> PResult<Head> {
    let _ = opt(alt((
        (word(&["go"]), word(&["for"]), word(&["a", "an"])).void(),
        word(&["do", "go", "practice", "practise"]).void(),
    )))
    .parse_next(input)?;
    let hold = (opt(word(&["hold"])), opt(word(&["a", "an"])), holdable, opt(word(&["for"])), duration)
        .map(|(_, _, e, _, min)| Head::Measure(Measure::Hold { exercise: e.into(), seconds: (min * 60.0).round() }));
    let activity = (any.verify_map(verb), opt(word(&["for"])), opt(alt((duration.map(Ok), distance.map(Err))))).map(
        |(fam, _, amount)| {
            let of = family_effort(fam);
            match amount {
                Some(Ok(minutes)) => Head::Measure(Measure::Minutes { of, minutes }),
                Some(Err((n, unit))) => Head::Measure(Measure::Distance { of, meters: n * unit.meters(), unit }),
                None => Head::Activity(of),
            }
        },
    );
    alt((hold, activity)).parse_next(input)
}

/// "in bed by 23:00", "asleep by 11pm", "up by 7:00", "awake by 6:30".
fn clock_head(input: &mut Toks<'_>) -> PResult<Head> {
    let bed = (
        alt((
            (opt(word(&["be", "get", "go"])), word(&["in", "to"]), word(&["bed"])).void(),
            (opt(word(&["fall"])), word(&["asleep"])).void(),
            (word(&["lights"]), word(&["out", "off"])).void(),
            word(&["bed", "bedtime"]).void(),
        )),
        opt(word(&["by", "before", "at"])),
        bed_clock,
    )
        .map(|(_, _, time)| Head::Measure(Measure::BedBy { time }));
    let up = (
        alt((
            (opt(word(&["get", "wake", "be"])), word(&["up"])).void(),
            word(&["awake", "wake", "rise", "wake-up"]).void(),
            (word(&["out"]), word(&["of"]), word(&["bed"])).void(),
        )),
        opt(word(&["by", "before", "at"])),
        up_clock,
    )
        .map(|(_, _, time)| Head::Measure(Measure::UpBy { time }));
    alt((bed, up)).parse_next(input)
}

/// A bedtime: "23:00", "11pm", or a bare hour (6-11 means the evening, 12 midnight).
fn bed_clock(input: &mut Toks<'_>) -> PResult<NaiveTime> {
    let bare = any.verify_map(|t: &str| {
        let h: u32 = t.parse().ok()?;
        let h = match h {
            6..=11 => h + 12,
            12 => 0,
            0..=5 | 13..=23 => h,
            _ => return None,
        };
        NaiveTime::from_hms_opt(h, 0, 0)
    });
    alt((clock_time, bare)).parse_next(input)
}

/// A wake-up time: "7:00", "7am", or a bare hour 0-23.
fn up_clock(input: &mut Toks<'_>) -> PResult<NaiveTime> {
    let bare = any.verify_map(|t: &str| NaiveTime::from_hms_opt(t.parse().ok()?, 0, 0));
    alt((clock_time, bare)).parse_next(input)
}

/// "7-9 hours of sleep", "7 to 9 hours of sleep".
fn sleep_range_head(input: &mut Toks<'_>) -> PResult<Head> {
    (number, word(&["-", "to"]), number, word(&["h", "hours", "hrs"]), opt(word(&["of"])), word(&["sleep", "sleeping"]))
        .verify_map(|(lo, _, hi, ..)| (lo < hi).then_some(Head::Measure(Measure::Sleep { hours: lo, up_to: Some(hi) })))
        .parse_next(input)
}

/// Anything before a schedule that no device sees: judged from the client's check-ins.
fn habit(tokens: &[&str]) -> Option<(Rule, Timing)> {
    // The shortest habit text whose rest is a schedule.
    for split in 1..tokens.len() {
        let (text, tail) = tokens.split_at(split);
        let mut rest: Toks<'_> = tail;
        let Ok(frags) = repeat::<_, _, Vec<Fragment>, _, _>(1.., tail_fragment).parse_next(&mut rest) else {
            continue;
        };
        if !rest.is_empty() || !frags.iter().any(Fragment::is_schedule) {
            continue;
        }
        if text.iter().any(|t| known(t) || nearest_word(t, 5).is_some() || *t == ",") {
            return None;
        }
        let mut amount = None;
        let mut unit = None;
        for (i, t) in text.iter().enumerate() {
            let one = [*t];
            let mut n: Toks<'_> = &one;
            if let Ok(v) = number(&mut n) {
                if t.chars().next().is_some_and(|c| c.is_ascii_digit()) || !matches!(*t, "a" | "an") {
                    amount = Some(v);
                    unit = text.get(i + 1).filter(|u| u.chars().all(char::is_alphabetic)).map(|u| (*u).to_string());
                    break;
                }
            }
        }
        let words: Vec<String> = text
            .iter()
            .map(|t| if t.parse::<f64>().is_ok() { number_text(t.parse().unwrap_or(0.0)) } else { (*t).to_string() })
            .collect();
        let head = Head::Measure(Measure::Habit { text: words.join(" "), amount, unit });
        return build(head, &frags).ok();
    }
    None
}

// ---------------------------------------------------------------------------------------
// Tails

#[derive(Clone, Debug, PartialEq)]
enum Fragment {
    Daily,
    Nightly,
    Days(Vec<Weekday>),
    /// Weeknights: the evenings before a working day (Sun-Thu), judged at night.
    Weeknights,
    PerWeek(u8),
    /// "per week", "a week": a weekly total, or after a count of sessions the weekly count.
    Weekly,
    /// "on different days" / "on separate days": a weekly count of days, not sessions.
    DifferentDays,
    EveryN(u8),
    /// "every other night": every other day, at night.
    EveryNNights(u8),
    Window(Window),
    Step {
        step: f64,
        percent: bool,
    },
    UpTo(f64),
    From(StartWords),
    Weeks(u32),
}

impl Fragment {
    fn is_schedule(&self) -> bool {
        matches!(
            self,
            Self::Window(_)
                | Self::Daily
                | Self::Nightly
                | Self::Days(_)
                | Self::Weeknights
                | Self::PerWeek(_)
                | Self::Weekly
                | Self::EveryN(_)
                | Self::EveryNNights(_)
        )
    }
}

fn weekday_word(t: &str) -> Option<Vec<Weekday>> {
    use Weekday::*;
    let t = t.trim_end_matches('s');
    Some(match t {
        "mon" | "monday" => vec![Mon],
        "tue" | "tues" | "tuesday" => vec![Tue],
        "wed" | "weds" | "wednesday" => vec![Wed],
        "thu" | "thur" | "thurs" | "thursday" => vec![Thu],
        "fri" | "friday" => vec![Fri],
        "sat" | "saturday" => vec![Sat],
        "sun" | "sunday" => vec![Sun],
        "weekday" => vec![Mon, Tue, Wed, Thu, Fri],
        "weekend" => vec![Sat, Sun],
        _ => return None,
    })
}

fn weekday(input: &mut Toks<'_>) -> PResult<Vec<Weekday>> {
    any.verify_map(weekday_word).parse_next(input)
}

fn window(start: u32, end: u32) -> Fragment {
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or(NaiveTime::MIN);
    Fragment::Window(Window { start: t(start), end: t(end) })
}

/// A fragment, optionally after a connecting word ("..., +2 each week", "and before bed").
fn tail_fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    alt((fragment, preceded(word(&[",", "and", "then", "for"]), fragment))).parse_next(input)
}

fn fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    alt((schedule_fragment, window_fragment, progression_fragment, timing_fragment)).parse_next(input)
}

fn schedule_fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    let every = || word(&["every", "each", "a", "per", "an"]);
    let week = || word(&["week", "wk"]);
    let day_list = separated(1.., weekday, word(&[",", "and", "&", "or"]))
        .map(|lists: Vec<Vec<Weekday>>| Fragment::Days(lists.concat()));
    let every_n = (
        word(&["every"]),
        alt((word(&["other", "second", "2nd"]).value(2.0), number)),
        word(&["day", "days", "night", "nights"]),
    )
        .verify_map(|(_, n, unit): (_, f64, &str)| {
            let n = u8::try_from(whole(n, 2.0, 14.0)?).ok()?;
            Some(if unit.starts_with("night") { Fragment::EveryNNights(n) } else { Fragment::EveryN(n) })
        });
    alt((
        every_n,
        (opt(word(&["on"])), word(&["alternate"]), word(&["days"])).value(Fragment::EveryN(2)),
        (every(), word(&["day"])).value(Fragment::Daily),
        word(&["daily", "everyday"]).value(Fragment::Daily),
        (every(), word(&["night", "evening"])).value(Fragment::Nightly),
        word(&["nightly", "nights"]).value(Fragment::Nightly),
        (word(&["at", "in"]), opt(word(&["the"])), word(&["night", "evening"])).value(Fragment::Nightly),
        (word(&["before"]), opt(word(&["going"])), opt(word(&["to"])), word(&["bed", "bedtime", "sleep"]))
            .value(Fragment::Nightly),
        (opt(word(&["on"])), word(&["weeknights", "weeknight", "school-nights"])).value(Fragment::Weeknights),
        (number, word(&["times", "time", "x", "days"]), every(), week()).verify_map(|(n, ..)| per_week(n)),
        (word(&["twice"]), every(), week()).value(Fragment::PerWeek(2)),
        (word(&["once"]), every(), week()).value(Fragment::PerWeek(1)),
        (opt(word(&["on"])), word(&["different", "separate"]), word(&["days"])).value(Fragment::DifferentDays),
        (alt((every(), word(&["this", "in", "over"]))), opt(word(&["the"])), week()).value(Fragment::Weekly),
        word(&["weekly"]).value(Fragment::Weekly),
        preceded(opt(word(&["on", "every"])), day_list),
    ))
    .parse_next(input)
}

fn window_fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    let between = (opt(word(&["between", "from"])), clock_time, word(&["and", "-", "to", "until"]), clock_time)
        .verify_map(|(_, start, _, end)| (start != end).then_some(Fragment::Window(Window { start, end })));
    alt((
        between,
        (word(&["after"]), word(&["dinner", "supper"])).value(window(19, 23)),
        (word(&["before"]), word(&["breakfast"])).value(window(5, 10)),
        (word(&["after"]), word(&["work"])).value(window(16, 22)),
        (word(&["at", "over"]), word(&["lunch", "lunchtime"])).value(window(11, 15)),
        (opt(word(&["every", "in"])), opt(word(&["the"])), word(&["morning", "mornings"])).value(window(5, 12)),
    ))
    .parse_next(input)
}

/// "+2 each week", "add 10 % a week", "increase by 5 minutes every week", "up to 10 km".
fn progression_fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    let sign = alt((
        word(&["+", "add", "plus"]).value(1.0),
        (word(&["increase", "increasing", "adding", "up"]), opt(word(&["by"]))).value(1.0),
        word(&["-", "minus"]).value(-1.0),
        (word(&["decrease", "decreasing", "reduce", "down"]), opt(word(&["by"]))).value(-1.0),
    ));
    let unit_word = any.verify(|t: &&str| {
        !matches!(*t, "each" | "every" | "a" | "per" | "%" | "," | "weekly")
            && t.chars().all(|c| c.is_alphabetic() || c == '-')
    });
    let step = (
        sign,
        number,
        opt(word(&["%", "percent"])),
        opt(unit_word),
        alt(((word(&["each", "every", "a", "per"]), word(&["week"])).void(), word(&["weekly"]).void())),
    )
        .verify_map(|(s, n, pct, _, _)| {
            let percent = pct.is_some();
            (n.is_finite() && n > 0.0 && (!percent || n <= 100.0)).then_some(Fragment::Step { step: s * n, percent })
        });
    let cap = (
        alt(((word(&["up"]), word(&["to"])).void(), word(&["until", "max", "maximum"]).void())),
        opt(word(&["a", "of"])),
        number,
        opt(any.verify(|t: &&str| {
            t.chars().all(|c| c.is_alphabetic() || c == '-') && !matches!(*t, "every" | "each" | "on" | "and")
        })),
    )
        .map(|(_, _, n, _)| Fragment::UpTo(n));
    alt((step, cap)).parse_next(input)
}

/// "from next monday", "starting tomorrow", "from 2026-12-07", "for 4 weeks".
fn timing_fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    let start = alt((
        word(&["tomorrow"]).value(StartWords::Tomorrow),
        (word(&["next"]), word(&["week"])).value(StartWords::NextWeek),
        preceded(opt(word(&["next", "this"])), weekday)
            .verify_map(|days: Vec<Weekday>| (days.len() == 1).then(|| StartWords::Next(days[0]))),
        any.verify_map(|t: &str| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().map(StartWords::Date)),
    ));
    let from = preceded(
        alt(((word(&["starting", "beginning"]), opt(word(&["from", "on"]))).void(), word(&["from"]).void())),
        start,
    )
    .map(Fragment::From);
    let weeks = (word(&["for"]), number, word(&["week", "weeks", "month", "months"])).verify_map(
        |(_, n, unit): (_, f64, &str)| {
            let per = if unit.starts_with("month") { 4 } else { 1 };
            Some(Fragment::Weeks(whole(n, 1.0, 104.0)? * per))
        },
    );
    let a_month = (word(&["for"]), word(&["a", "one"]), word(&["month"])).value(Fragment::Weeks(4));
    alt((from, weeks, a_month)).parse_next(input)
}

fn per_week(n: f64) -> Option<Fragment> {
    (n.fract() == 0.0 && (1.0..=7.0).contains(&n)).then_some(Fragment::PerWeek(n as u8))
}

// ---------------------------------------------------------------------------------------
// Building the rule

/// Combine head and tail; the reason when they contradict each other.
fn build(head: Head, fragments: &[Fragment]) -> Result<(Rule, Timing), String> {
    let mut schedule: Option<Schedule> = None;
    let mut nightly = false;
    let mut weekly = false;
    let mut different_days = false;
    let mut window = None;
    let mut step: Option<(f64, bool)> = None;
    let mut up_to = None;
    let mut timing = Timing::default();
    let clash = || "two schedules that contradict each other".to_string();
    for f in fragments {
        let next = match f {
            Fragment::Daily => Schedule::Daily,
            Fragment::Nightly => {
                nightly = true;
                continue;
            }
            Fragment::Weeknights => {
                nightly = true;
                Schedule::Days(vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Sun])
            }
            Fragment::Days(d) => {
                let mut days = d.clone();
                days.sort_by_key(|d| d.num_days_from_monday());
                days.dedup();
                Schedule::Days(days)
            }
            Fragment::PerWeek(n) => Schedule::PerWeek(*n),
            Fragment::EveryN(n) => Schedule::EveryNDays(*n),
            Fragment::EveryNNights(n) => {
                nightly = true;
                Schedule::EveryNDays(*n)
            }
            Fragment::Weekly => {
                weekly = true;
                continue;
            }
            Fragment::DifferentDays => {
                different_days = true;
                continue;
            }
            Fragment::Window(w) => {
                if window.replace(*w).is_some_and(|old| old != *w) {
                    return Err("two different windows".into());
                }
                continue;
            }
            Fragment::Step { step: s, percent } => {
                if step.replace((*s, *percent)).is_some() {
                    return Err("two progressions".into());
                }
                continue;
            }
            Fragment::UpTo(n) => {
                up_to = Some(*n);
                continue;
            }
            Fragment::From(s) => {
                timing.from = Some(*s);
                continue;
            }
            Fragment::Weeks(n) => {
                timing.weeks = Some(*n);
                continue;
            }
        };
        match &schedule {
            None | Some(Schedule::Daily) => schedule = Some(next),
            Some(s) if *s == next || next == Schedule::Daily => {}
            Some(_) => return Err(clash()),
        }
    }
    let sessions = |n: f64, of: Effort, schedule: &mut Option<Schedule>, weekly: bool| -> Result<Measure, String> {
        if weekly {
            if schedule.as_ref().is_some_and(|s| *s != Schedule::Daily) {
                return Err(clash());
            }
            match per_week(n) {
                Some(Fragment::PerWeek(k)) => *schedule = Some(Schedule::PerWeek(k)),
                _ => return Err(format!("{} sessions a week is more than coachd counts (1-7)", number_text(n))),
            }
        } else if n != 1.0 {
            // "3 runs" with no week: a count per day is not a thing trainers assign.
            return Err(format!("{} sessions needs a week: say \"{} times a week\"", number_text(n), number_text(n)));
        }
        Ok(Measure::Session { of })
    };
    let measure = match head {
        Head::Measure(m) => {
            if weekly {
                match &schedule {
                    None | Some(Schedule::Daily) => schedule = Some(Schedule::WeekTotal),
                    Some(_) => return Err(clash()),
                }
            }
            m
        }
        Head::Sessions(n, of) => sessions(n, of, &mut schedule, weekly)?,
        Head::Activity(of) => sessions(1.0, of, &mut schedule, weekly)?,
    };
    if different_days {
        // Only a weekly count can be on different days.
        match schedule {
            // Once a week is one day whatever it is called.
            Some(Schedule::PerWeek(1)) => {}
            Some(Schedule::PerWeek(n)) => schedule = Some(Schedule::DaysPerWeek(n)),
            _ => return Err("\"on different days\" belongs to a weekly count (\"3 times a week\")".into()),
        }
    }
    if matches!(measure, Measure::Sleep { .. } | Measure::BedBy { .. }) {
        nightly = true;
    }
    if matches!(measure, Measure::UpBy { .. }) && nightly {
        return Err("a wake-up time is in the morning, not at night".into());
    }
    if matches!(measure, Measure::Questions { .. }) {
        return Err("questions are assigned from a file (`coachd assign CLIENT --questions FILE`)".into());
    }
    let progression = match (step, up_to) {
        (Some((step, percent)), up_to) => {
            if matches!(
                measure,
                Measure::Session { .. }
                    | Measure::BedBy { .. }
                    | Measure::UpBy { .. }
                    | Measure::Habit { amount: None, .. }
            ) {
                return Err("a progression needs an amount to grow (\"10 push-ups, +2 each week\")".into());
            }
            Some(Progression { step, percent, up_to })
        }
        (None, Some(_)) => return Err("\"up to\" belongs to a progression (\"+2 each week, up to 20\")".into()),
        (None, None) => None,
    };
    let valid = match &measure {
        Measure::Minutes { minutes, .. } => *minutes >= 1.0 / 60.0 && *minutes <= 24.0 * 60.0 * 7.0,
        Measure::Reps { reps, .. } => *reps >= 1 && *reps <= 100_000,
        Measure::Sets { .. } => true,
        Measure::Hold { seconds, .. } => *seconds >= 1.0 && *seconds <= 3600.0,
        Measure::Distance { meters, .. } => *meters >= 1.0 && *meters <= 2_000_000.0,
        Measure::Steps { steps } => *steps >= 1 && *steps <= 1_000_000,
        Measure::Sleep { hours, up_to } => *hours <= 16.0 && up_to.is_none_or(|u| u <= 16.0),
        Measure::BedBy { .. } | Measure::UpBy { .. } | Measure::Session { .. } => true,
        Measure::Habit { amount, .. } => amount.is_none_or(|a| a <= 1_000_000.0),
        Measure::Questions { .. } => true,
    };
    if !valid {
        return Err("the amount is out of range".into());
    }
    // A weekly total of minutes may be longer than a day; a daily one may not.
    if let Measure::Minutes { minutes, .. } = &measure {
        if *minutes > 24.0 * 60.0 && schedule != Some(Schedule::WeekTotal) {
            return Err("the amount is out of range".into());
        }
    }
    let rule =
        Rule { measure, schedule: schedule.unwrap_or(Schedule::Daily), nightly, window, bands: None, progression };
    Ok((rule, timing))
}

#[cfg(test)]
mod tests;
