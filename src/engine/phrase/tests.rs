//! The phrase table: what trainers write, what coachd echoes, and what it refuses.

use super::*;
use crate::engine::rule::{Measure, Schedule};
use proptest::prelude::*;

fn norm(p: &str) -> String {
    parse(p).unwrap_or_else(|e| panic!("{p:?}: {e}")).to_string()
}

/// (what a trainer writes, the normalized echo).
const TABLE: &[(&str, &str)] = &[
    ("150 minutes of cardio a week", "150 minutes of cardio per week"),
    ("10k steps daily", "10000 steps every day"),
    ("walk 30 minutes every day", "30 minutes of walking every day"),
    ("30 min walk after dinner", "30 minutes of walking every day between 19:00 and 23:00"),
    ("3 sets of 10 push-ups every night", "3 sets of 10 push-ups every night"),
    ("yoga twice a week", "a yoga session, twice a week"),
    ("run 3 times a week", "a run, 3 times a week"),
    ("in bed by 23:00", "in bed by 23:00 every night"),
    ("100 push-ups a week", "100 push-ups per week"),
    ("10 pull-ups every other day", "10 pull-ups every other day"),
    ("10,000 steps a day", "10000 steps every day"),
    ("20 min yoga on sunday", "20 minutes of yoga on Sun"),
    ("8 hours of sleep", "8 hours of sleep every night"),
    ("20 squats every night", "20 squats every night"),
    ("150 min of cardio per week", "150 minutes of cardio per week"),
    ("150 minutes cardio weekly", "150 minutes of cardio per week"),
    ("2.5 hours of cardio a week", "150 minutes of cardio per week"),
    ("3 hours of zone 2 per week", "180 minutes in zone 2 per week"),
    ("90 minutes in zone 2 each week", "90 minutes in zone 2 per week"),
    ("60 min z2 a week", "60 minutes in zone 2 per week"),
    ("100 push-ups per week", "100 push-ups per week"),
    ("200 squats a week", "200 squats per week"),
    ("20 km of running this week", "20 km of running per week"),
    ("50 km of cycling a week", "50 km of cycling per week"),
    ("70000 steps a week", "70000 steps per week"),
    ("10 km a week", "10 km of exercise per week"),
    ("a 5 km run on saturday", "5 km of running on Sat"),
    ("a 5k run on saturday", "5 km of running on Sat"),
    ("run 5 km on saturdays", "5 km of running on Sat"),
    ("5 km of running on sundays", "5 km of running on Sun"),
    ("walk 3 miles daily", "3 mi of walking every day"),
    ("walk 2 km every day", "2 km of walking every day"),
    ("swim 1000 meters twice a week", "1000 meters of swimming, twice a week"),
    ("run 10k on sunday", "10 km of running on Sun"),
    ("3 miles of walking every day", "3 mi of walking every day"),
    ("walk for 30 minutes daily", "30 minutes of walking every day"),
    ("run 20 minutes on mon and thu", "20 minutes of running on Mon and Thu"),
    ("cycle 1 hour on saturdays", "60 minutes of cycling on Sat"),
    ("bike 45 min twice a week", "45 minutes of cycling, twice a week"),
    ("swim 30 minutes once a week", "30 minutes of swimming, once a week"),
    ("a 20 minute run every day", "20 minutes of running every day"),
    ("20 min jog on weekdays", "20 minutes of running on Mon, Tue, Wed, Thu and Fri"),
    ("do yoga twice a week", "a yoga session, twice a week"),
    ("swim once a week", "a swim, once a week"),
    ("walk every day", "a walk every day"),
    ("go for a run 3 times a week", "a run, 3 times a week"),
    ("stretch every day", "a recovery session every day"),
    ("3 yoga sessions a week", "a yoga session, 3 times a week"),
    ("2 swims a week", "a swim, twice a week"),
    ("4 walks per week", "a walk, 4 times a week"),
    ("3 x 12 squats", "3 sets of 12 squats every day"),
    ("3x12 squats every day", "3 sets of 12 squats every day"),
    ("4 sets of 8 pull-ups on mon, wed and fri", "4 sets of 8 pull-ups on Mon, Wed and Fri"),
    ("5 sets of 20 sit-ups daily", "5 sets of 20 sit-ups every day"),
    ("2 sets of 15 lunges", "2 sets of 15 lunges every day"),
    ("plank 60 seconds every day", "a 60-second plank every day"),
    ("a 2-minute plank", "a 120-second plank every day"),
    ("a 2 minute plank daily", "a 120-second plank every day"),
    ("hold a plank for 1 minute every day", "a 60-second plank every day"),
    ("60 seconds of plank", "a 60-second plank every day"),
    ("wall sit 45 seconds daily", "a 45-second wall-sit every day"),
    ("side plank 30 seconds each day", "a 30-second side-plank every day"),
    ("a 90-second plank every night", "a 90-second plank every night"),
    ("20 squats every 3 days", "20 squats every 3 days"),
    ("10 push-ups every second day", "10 push-ups every other day"),
    ("30 min cardio on alternate days", "30 minutes of cardio every other day"),
    ("a run every other day", "a run every other day"),
    ("8000 steps every 2 days", "8000 steps every other day"),
    ("15 minutes of cardio on weekdays", "15 minutes of cardio on Mon, Tue, Wed, Thu and Fri"),
    ("20 min mobility on weekends", "20 minutes of mobility on Sat and Sun"),
    ("10 push-ups every night on weekdays", "10 push-ups on Mon, Tue, Wed, Thu and Fri nights"),
    ("7 hours of sleep on weeknights", "7 hours of sleep on Mon, Tue, Wed, Thu and Sun nights"),
    ("10.000 steps a day", "10000 steps every day"),
    ("ten push-ups every night", "10 push-ups every night"),
    ("twenty squats daily", "20 squats every day"),
    ("forty-five minutes of cardio twice a week", "45 minutes of cardio, twice a week"),
    ("forty five minutes of cardio", "45 minutes of cardio every day"),
    ("half an hour of yoga on weekends", "30 minutes of yoga on Sat and Sun"),
    ("half an hour of cardio", "30 minutes of cardio every day"),
    ("an hour of cycling on sundays", "60 minutes of cycling on Sun"),
    ("1h30 of cycling on sundays", "90 minutes of cycling on Sun"),
    ("1h of cardio", "60 minutes of cardio every day"),
    ("90' of cardio", "90 minutes of cardio every day"),
    ("1.5 hours of cardio", "90 minutes of cardio every day"),
    ("an hour and a half of cycling", "90 minutes of cycling every day"),
    ("2 hours and a half of walking", "150 minutes of walking every day"),
    ("12,500 steps", "12500 steps every day"),
    ("7.5k steps a day", "7500 steps every day"),
    ("in bed by 11pm", "in bed by 23:00 every night"),
    ("in bed by 22:30 on weeknights", "in bed by 22:30 on Mon, Tue, Wed, Thu and Sun nights"),
    ("asleep by 23:30 every night", "in bed by 23:30 every night"),
    ("lights out by 22:45", "in bed by 22:45 every night"),
    ("go to bed by 11", "in bed by 23:00 every night"),
    ("up by 7:00", "up by 07:00 every day"),
    ("up by 7am on weekdays", "up by 07:00 on Mon, Tue, Wed, Thu and Fri"),
    ("wake up by 6:30", "up by 06:30 every day"),
    ("awake by 6:00 every day", "up by 06:00 every day"),
    ("get up by 7 on weekdays", "up by 07:00 on Mon, Tue, Wed, Thu and Fri"),
    ("7-9 hours of sleep", "7-9 hours of sleep every night"),
    ("7 to 9 hours of sleep", "7-9 hours of sleep every night"),
    ("8 hours of sleep every night", "8 hours of sleep every night"),
    ("7.5 hours of sleep nightly", "7.5 hours of sleep every night"),
    ("meditate 10 minutes daily", "10 minutes of meditation every day"),
    ("10 min breathing", "10 minutes of meditation every day"),
    ("10 minutes of meditation every day", "10 minutes of meditation every day"),
    ("meditate for 15 minutes every night", "15 minutes of meditation every night"),
    ("20 min mindfulness on weekdays", "20 minutes of meditation on Mon, Tue, Wed, Thu and Fri"),
    ("breathwork 5 minutes daily", "5 minutes of meditation every day"),
    ("a meditation session every day", "a meditation session every day"),
    ("drink 2 liters of water every day", "drink 2 liters of water every day"),
    ("no alcohol on weeknights", "no alcohol on Mon, Tue, Wed, Thu and Sun nights"),
    ("log your meals daily", "log your meals every day"),
    ("journal every evening", "journal every night"),
    ("eat 5 portions of vegetables every day", "eat 5 portions of vegetables every day"),
    ("no sugar on weekdays", "no sugar on Mon, Tue, Wed, Thu and Fri"),
    ("take your vitamins every morning", "take your vitamins every day between 05:00 and 12:00"),
    ("read 20 pages every night", "read 20 pages every night"),
    ("10 push-ups every night, +2 each week", "10 push-ups every night, +2 each week"),
    ("10 push-ups every night +2 a week", "10 push-ups every night, +2 each week"),
    ("20 squats daily, add 5 each week, up to 50", "20 squats every day, +5 each week, up to 50"),
    ("30 min cardio 3 times a week, +5 minutes each week", "30 minutes of cardio, 3 times a week, +5 each week"),
    ("5 km of running on sundays, add 10 % a week, up to 10 km", "5 km of running on Sun, +10 % each week, up to 10"),
    (
        "start at 5 km of running on sundays, add 10% each week, up to 10 km",
        "5 km of running on Sun, +10 % each week, up to 10",
    ),
    ("8000 steps a day, increase by 500 every week, up to 12000", "8000 steps every day, +500 each week, up to 12000"),
    ("10 push-ups every night from next monday", "10 push-ups every night"),
    ("20 min yoga twice a week for 4 weeks", "20 minutes of yoga, twice a week"),
    ("15 minutes of cardio daily starting tomorrow", "15 minutes of cardio every day"),
    ("10 squats every day from 2026-12-07 for 6 weeks", "10 squats every day"),
    ("15 minutes of cardio", "15 minutes of cardio every day"),
    ("15 min cardio on mon, wed and sat", "15 minutes of cardio on Mon, Wed and Sat"),
    ("30 min zone 2 twice a week", "30 minutes in zone 2, twice a week"),
    ("10 push-ups every night", "10 push-ups every night"),
    ("10 push-ups nightly before bed", "10 push-ups every night"),
    ("8000 steps a day", "8000 steps every day"),
    ("8,000 steps daily", "8000 steps every day"),
    ("20 minutes of mobility 3 times a week", "20 minutes of mobility, 3 times a week"),
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
    ("3 workouts a week", "a workout, 3 times a week"),
    ("2 runs per week on different days", "a run, twice a week on different days"),
    ("3 workouts a week on separate days", "a workout, 3 times a week on different days"),
    ("30 min cardio between 06:00 and 09:00", "30 minutes of cardio every day between 06:00 and 09:00"),
    ("20 minutes of cardio in the morning", "20 minutes of cardio every day between 05:00 and 12:00"),
    ("15 minutes of cardio before breakfast", "15 minutes of cardio every day between 05:00 and 10:00"),
    ("20 min walk at lunch", "20 minutes of walking every day between 11:00 and 15:00"),
    (
        "30 minutes of walking every day between 19:00 and 23:00",
        "30 minutes of walking every day between 19:00 and 23:00",
    ),
    ("a workout every day", "a workout every day"),
    ("run", "a run every day"),
];

#[test]
fn the_phrases_trainers_use() {
    assert!(TABLE.len() >= 150, "{} phrases", TABLE.len());
    for (phrase, expected) in TABLE {
        assert_eq!(norm(phrase), *expected, "{phrase:?}");
    }
}

#[test]
fn every_documented_form_parses_to_its_echo() {
    for (phrase, echo, _) in FORMS {
        assert_eq!(norm(phrase), *echo, "{phrase:?}");
    }
    let help = forms_help();
    for (phrase, ..) in FORMS {
        assert!(help.contains(phrase), "{phrase:?} missing from the help");
    }
}

#[test]
fn the_readme_lists_exactly_the_forms_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("<!-- forms:start -->").expect("README has the forms:start marker");
    let end = readme.find("<!-- forms:end -->").expect("README has the forms:end marker");
    let block = readme[start + "<!-- forms:start -->".len()..end].trim();
    assert_eq!(block, forms_markdown().trim(), "README's forms table is stale: paste phrase::forms_markdown()");
}

#[test]
fn every_echo_parses_back_to_the_same_rule() {
    let phrases = TABLE.iter().map(|(p, _)| *p).chain(FORMS.iter().map(|(p, ..)| *p));
    for phrase in phrases {
        let rule = parse(phrase).expect("parses");
        let echo = rule.to_string();
        assert_eq!(parse(&echo).unwrap_or_else(|e| panic!("{echo:?}: {e}")), rule, "{phrase:?} → {echo:?}");
    }
}

#[test]
fn a_duration_in_seconds_echoes_as_what_reads_back_the_same() {
    for phrase in ["10 seconds cardio", "10 seconds of cardio every day", "45 secs in zone 2", "1.5 minutes of yoga"] {
        let rule = parse(phrase).unwrap_or_else(|e| panic!("{phrase}: {e:?}"));
        let echo = rule.to_string();
        assert_eq!(parse(&echo).ok(), Some(rule), "{phrase} → {echo}");
    }
    assert_eq!(parse("10 seconds cardio").expect("parses").to_string(), "10 seconds of cardio every day");
}

#[test]
fn rules_carry_the_right_numbers() {
    let r = parse("3 hours of zone 2 per week").expect("parses");
    assert_eq!(r.schedule, Schedule::WeekTotal);
    assert_eq!(r.measure, Measure::Minutes { of: Effort::Zone(2), minutes: 180.0 });
    let r = parse("walk 3 miles daily").expect("parses");
    match r.measure {
        Measure::Distance { meters, unit, .. } => assert_eq!((meters.round(), unit), (4828.0, DistanceUnit::Mi)),
        other => panic!("{other:?}"),
    }
    let r = parse("3 x 12 squats").expect("parses");
    assert_eq!(r.measure, Measure::Sets { exercise: "squat".into(), sets: 3, reps: 12 });
    let r = parse("in bed by 00:30").expect("parses");
    assert!(r.nightly);
    let r = parse("20 squats daily, add 5 each week, up to 50").expect("parses");
    assert_eq!(r.progression, Some(Progression { step: 5.0, percent: false, up_to: Some(50.0) }));
    let r = parse("drink 2 liters of water every day").expect("parses");
    assert_eq!(r.judged_by(), crate::engine::rule::JudgedBy::CheckIns);
    assert_eq!(
        r.measure,
        Measure::Habit { text: "drink 2 liters of water".into(), amount: Some(2.0), unit: Some("liters".into()) }
    );
    assert_eq!(parse("10 push-ups every night").expect("parses").judged_by(), crate::engine::rule::JudgedBy::Devices);
}

#[test]
fn start_and_length_words_are_read_apart_from_the_rule() {
    let (rule, t) = parse_with_timing("10 squats every day from 2026-12-07 for 6 weeks").expect("parses");
    assert_eq!(rule.to_string(), "10 squats every day");
    assert_eq!(t.weeks, Some(6));
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    assert_eq!(t.from.map(|f| f.resolve(d("2026-12-01"))), Some(d("2026-12-07")));
    let (_, t) = parse_with_timing("10 push-ups every night from next monday").expect("parses");
    // 2026-12-01 is a Tuesday; from a Monday, "next monday" is a week later.
    assert_eq!(t.from.map(|f| f.resolve(d("2026-12-01"))), Some(d("2026-12-07")));
    assert_eq!(t.from.map(|f| f.resolve(d("2026-12-07"))), Some(d("2026-12-14")));
    let (_, t) = parse_with_timing("20 min yoga twice a week for a month").expect("parses");
    assert_eq!(t.weeks, Some(4));
    let (_, t) = parse_with_timing("15 minutes of cardio daily starting tomorrow").expect("parses");
    assert_eq!(t.from.map(|f| f.resolve(d("2026-12-31"))), Some(d("2027-01-01")));
}

#[test]
fn bad_phrases_explain_themselves() {
    // (phrase, a part of the message it must have)
    let cases = [
        ("", "empty"),
        ("do more", "could not read"),
        ("15 minutes of juggling", "not \"minutes of juggling\""),
        ("10 push-ups on mon twice a week", "contradict"),
        ("3 runs", "times a week"),
        ("zone 2", "could not read"),
        ("30 min zone 9", "zones are 1 to 5"),
        ("8000 steps a day and also some cake", "not \"and also some cake\""),
        ("0 push-ups", "could not read"),
        ("20 hours of sleep", "out of range"),
        ("10 push-ups on training days", "not judged yet"),
        ("a walk after every run", "not judged yet"),
        ("sleep well", "could not read"),
        ("in bed", "could not read"),
        ("up by 25:00", "could not read"),
        ("10 push-ups every 0 days", "not \"every 0 days\""),
        ("3 sets of push-ups", "not \"sets of push-ups\""),
        ("20 squats every night, up to 50", "belongs to a progression"),
        ("150 minutes of cadio a week", "did you mean: 150 minutes of cardio per week?"),
        ("10 pushups evry night", "did you mean: 10 push-ups every night?"),
        ("walk 30 minuts every day", "did you mean: 30 minutes of walking every day?"),
        ("yogaa twice a week", "did you mean: a yoga session, twice a week?"),
        ("10 squts every day", "did you mean: 10 squats every day?"),
        ("20 minutes of mobilty", "did you mean: 20 minutes of mobility every day?"),
        ("15 minutes of cardio every day, +2 each week, +3 each week", "two progressions"),
        ("in bed by 23:00 every day, +5 each week", "needs an amount"),
        ("up by 7:00 every night", "in the morning"),
        ("a run on different days", "weekly count"),
        ("9 runs a week", "more than coachd counts"),
        ("30 min cardio between 19:00 and 19:00", "not \"between 19:00 and 19:00\""),
        ("walk 30 bananas", "how long or how far"),
        ("drink water", "could not read"),
        ("10 cardio every day", "not"),
        ("steps every day", "could not read"),
    ];
    for (bad, part) in cases {
        let err = parse(bad).expect_err(bad);
        assert!(err.contains(part), "{bad:?}: {err}");
        assert!(err.contains("forms that work"), "{bad:?}: {err}");
        assert!(!err.contains("not \"\""), "{bad:?}: {err}");
    }
    let long = "10 push-ups ".repeat(30);
    assert!(parse(&long).expect_err("long").contains("at most 40"));
}

#[test]
fn misspelled_device_words_never_become_habits() {
    for p in ["15 minutes of cadio every day", "20 minutes of joging every day", "10 pushupz every night"] {
        let err = parse(p).expect_err(p);
        assert!(err.contains("did you mean"), "{p:?}: {err}");
    }
}

fn words() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        prop::sample::select(vec![
            "10",
            "a",
            "min",
            "of",
            "cardio",
            "push-ups",
            "every",
            "night",
            "on",
            "mon",
            ",",
            "and",
            "times",
            "week",
            "per",
            "steps",
            "zone",
            "2",
            "twice",
            "runs",
            "sleep",
            "hours",
            "km",
            "walk",
            "sets",
            "x",
            "plank",
            "seconds",
            "other",
            "day",
            "in",
            "bed",
            "by",
            "23:00",
            "+2",
            "each",
            "up",
            "to",
            "%",
            "drink",
            "water",
            "from",
            "next",
            "for",
            "weeks",
            "-",
            "7",
            "9",
            "half",
            "an",
            "hour",
            "between",
            "19:00",
            "weeknights",
        ]),
        0..16,
    )
}

proptest! {
    #[test]
    fn no_input_panics(s in "\\PC{0,200}") {
        let _ = parse(&s);
    }

    #[test]
    fn word_salad_never_panics_and_every_accepted_echo_round_trips(ws in words()) {
        if let Ok(rule) = parse(&ws.join(" ")) {
            let echo = rule.to_string();
            let again = parse(&echo);
            prop_assert_eq!(again.as_ref().ok(), Some(&rule), "{:?} → {:?}: {:?}", ws.join(" "), echo, again);
        }
    }

    #[test]
    fn generated_phrases_round_trip(
        n in 1u32..500,
        unit in prop::sample::select(vec!["minutes of cardio", "push-ups", "steps", "km of running", "minutes in zone 3", "squats"]),
        when in prop::sample::select(vec!["every day", "every night", "on mon and fri", "3 times a week", "per week", "every other day", "every 4 days", "on weekends", "on weeknights"]),
        step in prop::option::of(1u32..20),
    ) {
        let mut p = format!("{n} {unit} {when}");
        if let Some(s) = step {
            p.push_str(&format!(", +{s} each week"));
        }
        if let Ok(rule) = parse(&p) {
            prop_assert_eq!(parse(&rule.to_string()).ok(), Some(rule.clone()), "{}", p);
        }
    }
}

#[test]
#[ignore = "prints the README's forms table"]
fn print_forms_markdown() {
    print!("{}", forms_markdown());
}
