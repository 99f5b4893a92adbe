//! Homework in the trainer's words: a small grammar (winnow) over word tokens.
//!
//! ```text
//! phrase    := amount subject schedule* end
//! amount    := NUMBER | a | an | one .. twenty
//! subject   := time-unit [of|in|for] (effort [training|work|session]? | sleep)
//!            | exercise                         "10 push-ups"
//!            | steps                            "8000 steps"
//!            | [effort] (session|routine|workout|class)s?   "a recovery routine"
//!            | family-noun                      "2 runs"
//! schedule  := every day | daily | a day | per day | each day
//!            | every night | nightly | each night | at night | before bed
//!            | [on|every] day-list | weekdays | weekends
//!            | N times (a|per|each) week | twice a week | once a week
//!            | (a|per|each) week | weekly       "2 runs per week"
//! ```

use super::rule::{Effort, Measure, Rule, Schedule};
use crate::model::Category;
use chrono::Weekday;
use winnow::combinator::{alt, opt, preceded, repeat, separated};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::token::any;

/// Shown when a phrase is not understood.
pub const FORMS: &str = "\
understood forms (examples):
  15 minutes of cardio                 15 min cardio on mon, wed and sat
  30 min zone 2 twice a week           20 minutes of mobility 3 times a week
  10 push-ups every night              10 push-ups nightly before bed
  8000 steps a day                     7 hours of sleep nightly
  a recovery routine every day         2 runs per week
exercises: push-ups, pull-ups, squats, sit-ups, lunges, burpees, crunches, dips, jumping jacks
efforts: cardio, mobility, recovery, stretching, strength, yoga, zone 1-5, running, cycling, walking, swimming, rowing";

type Toks<'t> = &'t [&'t str];
type PResult<T> = Result<T, ErrMode<ContextError>>;

/// Parse a phrase into a rule (schedule defaults: daily; nightly for sleep).
pub fn parse(phrase: &str) -> Result<Rule, String> {
    let owned = tokenize(phrase);
    let tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
    if tokens.is_empty() {
        return Err(format!("the homework phrase is empty\n{FORMS}"));
    }
    let mut input: Toks<'_> = &tokens;
    let parsed = phrase_parser(&mut input);
    match parsed {
        Ok(rule) if input.is_empty() => Ok(rule),
        Ok(_) | Err(_) => {
            let consumed = tokens.len() - input.len();
            let (ok, rest) = tokens.split_at(consumed.min(tokens.len()));
            // "150 minutes a week": a week with no count of times.
            let weekly = tokens.iter().any(|t| matches!(*t, "week" | "weekly" | "wk"))
                && !tokens.iter().any(|t| matches!(*t, "times" | "time" | "twice" | "once" | "x"));
            let at = if ok.is_empty() {
                format!("could not read {:?} as homework", phrase.trim())
            } else if rest.is_empty() && weekly {
                // Every word was read, but they make no homework coachd judges (yet).
                format!(
                    "read every word of {:?}, but a weekly total of an amount is not judged yet: say how often \
                     instead, e.g. \"30 minutes of cardio 5 times a week\"",
                    phrase.trim()
                )
            } else if rest.is_empty() {
                format!(
                    "read every word of {:?}, but they do not make one homework (two schedules that contradict \
                     each other, or an amount out of range)",
                    phrase.trim()
                )
            } else {
                format!("understood {:?} but not {:?}", ok.join(" "), rest.join(" "))
            };
            Err(format!("{at}\n{FORMS}"))
        }
    }
}

/// Lower-case words and numbers; commas become their own token; "15min" → "15", "min";
/// "8,000" → "8000"; hyphens inside words stay ("push-ups").
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in s.to_lowercase().split_whitespace() {
        let raw = raw.trim_matches(|c: char| c == '.' || c == '!' || c == ';' || c == '"');
        // Thousands separators: 8,000 or 10,000.
        let digits: String = raw.chars().filter(|c| *c != ',').collect();
        if raw.contains(',')
            && digits.chars().all(|c| c.is_ascii_digit())
            && raw.split(',').skip(1).all(|g| g.len() == 3)
        {
            out.push(digits);
            continue;
        }
        // "10k": ten thousand (as people write steps).
        if let Some(n) = raw.strip_suffix('k').and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite()) {
            out.push(format!("{}", n * 1000.0));
            continue;
        }
        for (i, part) in raw.split(',').enumerate() {
            if i > 0 {
                out.push(",".into());
            }
            split_number_unit(part, &mut out);
        }
    }
    out
}

fn split_number_unit(part: &str, out: &mut Vec<String>) {
    if part.is_empty() {
        return;
    }
    let n = part.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(part.len());
    if n > 0 && n < part.len() && !part[..n].ends_with('.') {
        out.push(part[..n].to_string());
        out.push(part[n..].to_string());
    } else {
        out.push(part.to_string());
    }
}

/// One token from a set of words.
fn word<'t>(options: &'static [&'static str]) -> impl Parser<Toks<'t>, &'t str, ErrMode<ContextError>> {
    any.verify(move |t: &&str| options.contains(t))
}

fn number(input: &mut Toks<'_>) -> PResult<f64> {
    any.verify_map(|t: &str| {
        let v = match t {
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
            "twelve" => 12.0,
            "fifteen" => 15.0,
            "twenty" => 20.0,
            "thirty" => 30.0,
            _ => t.parse::<f64>().ok()?,
        };
        (v.is_finite() && v > 0.0).then_some(v)
    })
    .parse_next(input)
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
    alt((single, pair)).parse_next(input)
}

enum Subject {
    Measure(Measure),
    /// A count of sessions: "2 runs" means two days with a run.
    Sessions(Effort),
}

fn subject(amount: f64) -> impl FnMut(&mut Toks<'_>) -> PResult<Subject> {
    move |input: &mut Toks<'_>| {
        let minutes = word(&["min", "mins", "minute", "minutes", "m"]).value(1.0);
        let hours = word(&["h", "hr", "hrs", "hour", "hours"]).value(60.0);
        let timed = (
            alt((minutes, hours)),
            opt(word(&["of", "in", "for"])),
            alt((word(&["sleep", "sleeping"]).value(None), effort.map(Some))),
            opt(word(&["training", "work", "session", "sessions", "exercise"])),
        )
            .map(move |(per_min, _, what, _)| match what {
                None => Subject::Measure(Measure::Sleep { hours: amount * per_min / 60.0 }),
                Some(of) => Subject::Measure(Measure::Minutes { of, minutes: amount * per_min }),
            });
        let reps = exercise.map(move |e| Subject::Measure(Measure::Reps { exercise: e.into(), reps: amount as u32 }));
        let steps = word(&["step", "steps"]).map(move |_| Subject::Measure(Measure::Steps { steps: amount as u32 }));
        let sessions = (
            opt(effort),
            word(&["session", "sessions", "routine", "routines", "workout", "workouts", "class", "classes"]),
        )
            .map(|(of, _)| Subject::Sessions(of.unwrap_or(Effort::Any)));
        let nouns = any.verify_map(|t: &str| {
            let fam = match t {
                "run" | "runs" | "jog" | "jogs" => "run",
                "ride" | "rides" | "bike" => "ride",
                "walk" | "walks" | "hike" | "hikes" => "walk",
                "swim" | "swims" => "swim",
                "row" | "rows" => "row",
                "yoga" => "yoga",
                _ => return None,
            };
            Some(Subject::Sessions(Effort::Family(fam.into())))
        });
        alt((timed, reps, steps, sessions, nouns)).parse_next(input)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Fragment {
    Daily,
    Nightly,
    Days(Vec<Weekday>),
    PerWeek(u8),
    /// "per week" after a count of sessions: the amount is the weekly count.
    Weekly,
    /// "on different days" / "on separate days": a weekly count of days, not sessions.
    DifferentDays,
}

fn weekday(input: &mut Toks<'_>) -> PResult<Vec<Weekday>> {
    any.verify_map(|t: &str| {
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
    })
    .parse_next(input)
}

fn fragment(input: &mut Toks<'_>) -> PResult<Fragment> {
    let every = || word(&["every", "each", "a", "per", "an"]);
    let week = || word(&["week", "wk"]);
    let day_list = separated(1.., weekday, word(&[",", "and", "&", "or"]))
        .map(|lists: Vec<Vec<Weekday>>| Fragment::Days(lists.concat()));
    alt((
        (every(), word(&["day"])).value(Fragment::Daily),
        word(&["daily", "everyday"]).value(Fragment::Daily),
        (every(), word(&["night", "evening"])).value(Fragment::Nightly),
        word(&["nightly"]).value(Fragment::Nightly),
        (word(&["at", "in"]), opt(word(&["the"])), word(&["night", "evening"])).value(Fragment::Nightly),
        (word(&["before"]), opt(word(&["going"])), opt(word(&["to"])), word(&["bed", "bedtime", "sleep"]))
            .value(Fragment::Nightly),
        (number, word(&["times", "time", "x", "days"]), every(), week()).verify_map(|(n, ..)| per_week(n)),
        (word(&["twice"]), every(), week()).value(Fragment::PerWeek(2)),
        (word(&["once"]), every(), week()).value(Fragment::PerWeek(1)),
        (opt(word(&["on"])), word(&["different", "separate"]), word(&["days"])).value(Fragment::DifferentDays),
        (every(), week()).value(Fragment::Weekly),
        word(&["weekly"]).value(Fragment::Weekly),
        preceded(opt(word(&["on", "every"])), day_list),
    ))
    .parse_next(input)
}

fn per_week(n: f64) -> Option<Fragment> {
    (n.fract() == 0.0 && (1.0..=7.0).contains(&n)).then_some(Fragment::PerWeek(n as u8))
}

fn phrase_parser(input: &mut Toks<'_>) -> PResult<Rule> {
    let amount = number.parse_next(input)?;
    let subject = subject(amount).parse_next(input)?;
    let fragments: Vec<Fragment> =
        repeat(0.., preceded(opt(word(&[",", "and", "for"])), fragment)).parse_next(input)?;
    build(amount, subject, &fragments).ok_or_else(|| ErrMode::Backtrack(ContextError::new()))
}

/// Combine subject and schedule fragments; None when they contradict each other.
fn build(amount: f64, subject: Subject, fragments: &[Fragment]) -> Option<Rule> {
    let mut schedule: Option<Schedule> = None;
    let mut nightly = false;
    let mut weekly = false;
    let mut different_days = false;
    for f in fragments {
        let next = match f {
            Fragment::Daily => Schedule::Daily,
            Fragment::Nightly => {
                nightly = true;
                continue;
            }
            Fragment::Days(d) => {
                let mut days = d.clone();
                days.sort_by_key(|d| d.num_days_from_monday());
                days.dedup();
                Schedule::Days(days)
            }
            Fragment::PerWeek(n) => Schedule::PerWeek(*n),
            Fragment::Weekly => {
                weekly = true;
                continue;
            }
            Fragment::DifferentDays => {
                different_days = true;
                continue;
            }
        };
        match &schedule {
            None | Some(Schedule::Daily) => schedule = Some(next),
            Some(s) if *s == next || next == Schedule::Daily => {}
            Some(_) => return None,
        }
    }
    let measure = match subject {
        Subject::Measure(m) => {
            if weekly {
                return None; // "15 minutes of cardio per week" is ambiguous: say "3 times a week"
            }
            m
        }
        Subject::Sessions(of) if weekly => {
            if schedule.as_ref().is_some_and(|s| *s != Schedule::Daily) {
                return None;
            }
            schedule = per_week(amount).map(|f| match f {
                Fragment::PerWeek(n) => Schedule::PerWeek(n),
                _ => Schedule::Daily,
            });
            schedule.as_ref()?;
            Measure::Session { of }
        }
        Subject::Sessions(of) if amount == 1.0 => Measure::Session { of },
        // "3 runs" with no week: a count per day is not a thing trainers assign.
        Subject::Sessions(_) => return None,
    };
    if different_days {
        // Only a weekly count can be on different days.
        match schedule {
            // Once a week is one day whatever it is called.
            Some(Schedule::PerWeek(1)) => {}
            Some(Schedule::PerWeek(n)) => schedule = Some(Schedule::DaysPerWeek(n)),
            _ => return None,
        }
    }
    if let Measure::Sleep { .. } = measure {
        nightly = true;
    }
    let valid = match &measure {
        Measure::Minutes { minutes, .. } => *minutes <= 24.0 * 60.0,
        Measure::Reps { reps, .. } => *reps >= 1 && *reps <= 100_000,
        Measure::Steps { steps } => *steps >= 1 && *steps <= 200_000,
        Measure::Sleep { hours } => *hours <= 16.0,
        Measure::Session { .. } => true,
    };
    valid.then_some(Rule { measure, schedule: schedule.unwrap_or(Schedule::Daily), nightly, window: None, bands: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(p: &str) -> String {
        parse(p).unwrap_or_else(|e| panic!("{p:?}: {e}")).to_string()
    }

    #[test]
    fn the_phrases_trainers_use() {
        let table = [
            ("15 minutes of cardio", "15 minutes of cardio every day"),
            ("15 min cardio on mon, wed and sat", "15 minutes of cardio on Mon, Wed and Sat"),
            ("10 push-ups every night", "10 push-ups every night"),
            ("10 push-ups nightly before bed", "10 push-ups every night"),
            ("8000 steps a day", "8000 steps every day"),
            ("8,000 steps daily", "8000 steps every day"),
            ("20 minutes of mobility 3 times a week", "20 minutes of mobility, 3 times a week"),
            ("30 min zone 2 twice a week", "30 minutes in zone 2, twice a week"),
            ("7 hours of sleep nightly", "7 hours of sleep every night"),
            ("a recovery routine every day", "a recovery session every day"),
            ("2 runs per week", "a run, twice a week"),
            ("Ten pushups before bed", "10 push-ups every night"),
            ("15min of cardio on weekdays", "15 minutes of cardio on Mon, Tue, Wed, Thu and Fri"),
            ("1 hour of cycling twice a week", "60 minutes of cycling, twice a week"),
            ("25 squats every day", "25 squats every day"),
            ("10 push ups every night", "10 push-ups every night"),
            ("a yoga session once a week", "a yoga session, once a week"),
            ("45 minutes of strength training on tuesdays and thursdays", "45 minutes of strength on Tue and Thu"),
            ("7.5 hours of sleep", "7.5 hours of sleep every night"),
            ("3 workouts a week", "a workout, 3 times a week"),
            ("2 runs per week on different days", "a run, twice a week on different days"),
            ("10k steps daily", "10000 steps every day"),
            ("7.5k steps a day", "7500 steps every day"),
            ("3 workouts a week on separate days", "a workout, 3 times a week on different days"),
        ];
        for (phrase, expected) in table {
            assert_eq!(norm(phrase), expected, "{phrase:?}");
        }
    }

    #[test]
    fn bad_phrases_explain_themselves() {
        for bad in [
            "",
            "do more",
            "15 minutes of juggling",
            "10 push-ups on mon twice a week",
            "15 minutes of cardio per week",
            "3 runs",
            "zone 2",
            "30 min zone 9",
            "8000 steps a day and also some cake",
            "0 push-ups",
            "20 hours of sleep",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("understood forms"), "{bad:?}: {err}");
        }
        let err = parse("8000 steps a day and also some cake").expect_err("bad");
        assert!(err.contains("not \"and also some cake\""), "{err}");
        // Every word read, but no homework: the message says why, never `but not ""`.
        let err = parse("150 minutes of cardio a week").expect_err("a weekly total");
        assert!(err.contains("weekly total") && err.contains("times a week") && !err.contains("not \"\""), "{err}");
        let err = parse("10 push-ups on mon twice a week").expect_err("contradiction");
        assert!(err.contains("do not make one homework"), "{err}");
    }

    #[test]
    fn normalized_text_parses_back_to_the_same_rule() {
        for p in [
            "15 min cardio on mon, wed and sat",
            "10 push-ups every night",
            "30 min zone 2 twice a week",
            "2 runs per week",
            "a yoga session once a week",
            "3 workouts a week",
            "1 hour of cycling twice a week",
            "a recovery routine every day",
            "7 hours of sleep nightly",
        ] {
            let rule = parse(p).expect("parses");
            assert_eq!(parse(&rule.to_string()).expect("reparses"), rule, "{p}");
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(s in "\\PC{0,60}") {
            let _ = parse(&s);
        }

        #[test]
        fn word_salad_never_panics(words in proptest::collection::vec(
            prop::sample::select(vec!["10", "a", "min", "of", "cardio", "push-ups", "every", "night", "on", "mon",
                ",", "and", "times", "week", "per", "steps", "zone", "2", "twice", "runs", "sleep", "hours"]), 0..12)) {
            let _ = parse(&words.join(" "));
        }
    }
}
