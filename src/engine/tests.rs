//! Engine tests: time zones, windows, verdicts, and properties over random evidence.

use super::evidence::{ActivityRec, CheckinRec, DailyValue, Evidence, SetRec};
use super::judge::{judge, window, Homework, JudgeConfig, Occurrence, Verdict};
use super::phrase;
use super::rule::{Bands, Window};
use crate::activity_types;
use crate::model::Metric;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use std::collections::BTreeSet;

pub(super) fn cfg() -> JudgeConfig {
    JudgeConfig {
        bands: Bands { done: 1.0, partial: 0.5 },
        grace: Duration::hours(6),
        nightly: Window::parse("19:00-03:00").expect("window"),
        no_steps: Vec::new(),
    }
}

pub(super) fn hw(phrase: &str) -> Homework {
    let rule = phrase::parse(phrase).expect("phrase");
    Homework { id: 1, client: "alex".into(), text: rule.to_string().into(), rule, from: date(2026, 1, 1), until: None }
}

pub(super) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

pub(super) fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, min, 0).earliest().expect("local time").with_timezone(&Utc)
}

pub(super) fn act(id: i64, source: &str, ty: &str, start: DateTime<Utc>, minutes: i64) -> ActivityRec {
    ActivityRec {
        id,
        source: source.into(),
        start,
        end: start + Duration::minutes(minutes),
        utc_offset_s: 0,
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

pub(super) fn evidence(tz: Tz, acts: Vec<ActivityRec>, daily: Vec<DailyValue>) -> Evidence {
    Evidence::build(tz, acts, daily, Vec::new(), BTreeSet::new())
}

pub(super) fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().expect("time")
}

pub(super) fn verdict(h: &Homework, tz: Tz, d: NaiveDate, ev: &Evidence) -> Occurrence {
    judge(h, &cfg(), tz, Some(190.0), d, ev, later())
}

#[test]
fn a_late_evening_session_counts_for_its_local_date() {
    for tz in [chrono_tz::Europe::Berlin, chrono_tz::America::Los_Angeles] {
        let h = hw("15 minutes of cardio");
        let ev = evidence(tz, vec![act(1, "fit", "run", at(tz, 2026, 11, 20, 23, 30), 20)], Vec::new());
        let o = verdict(&h, tz, date(2026, 11, 20), &ev);
        assert_eq!((o.verdict, o.achieved), (Verdict::Done, 20.0), "{tz}");
        // The UTC date differs from the local one in both zones, and the next local day is not credited.
        assert_eq!(verdict(&h, tz, date(2026, 11, 21), &ev).achieved, 0.0, "{tz}");
    }
}

#[test]
fn a_run_after_midnight_keeps_its_day_when_a_walk_from_before_midnight_joins_it() {
    let tz = chrono_tz::Europe::Berlin;
    let h = hw("15 minutes of cardio");
    let run = act(1, "fit", "run", at(tz, 2026, 11, 19, 0, 0), 15);
    let alone = evidence(tz, vec![run.clone()], Vec::new());
    assert_eq!(verdict(&h, tz, date(2026, 11, 19), &alone).verdict, Verdict::Done);
    // A Strava walk from 23:36 to 01:05 overlaps the run and merges with it: the evening
    // it started gets the whole workout, and the run still counts for its own day.
    let walk = act(2, "strava", "walk", at(tz, 2026, 11, 18, 23, 36), 89);
    let both = evidence(tz, vec![run, walk], Vec::new());
    assert_eq!(both.workouts.len(), 1);
    assert_eq!(verdict(&h, tz, date(2026, 11, 18), &both).achieved, 89.0);
    let o = verdict(&h, tz, date(2026, 11, 19), &both);
    assert_eq!((o.verdict, o.achieved), (Verdict::Done, 15.0));
}

#[test]
fn nightly_push_ups_after_midnight_count_for_the_evening_before() {
    let tz = chrono_tz::Europe::Berlin;
    let h = hw("10 push-ups every night");
    let t = at(tz, 2026, 11, 21, 0, 40);
    let mut a = act(1, "fit", "strength", t, 5);
    a.sets = vec![SetRec { start: Some(t), exercise: "push_up".into(), reps: 10, duration_s: None }];
    let ev = evidence(tz, vec![a], Vec::new());
    assert_eq!(verdict(&h, tz, date(2026, 11, 20), &ev).verdict, Verdict::Done);
    assert_eq!(verdict(&h, tz, date(2026, 11, 21), &ev).achieved, 0.0);
}

#[test]
fn dst_days_are_23_and_25_hours_long_and_minutes_are_real_minutes() {
    let tz = chrono_tz::Europe::Berlin;
    let h = hw("15 minutes of cardio");
    let len = |d| {
        let (a, b) = window(&h.rule, &cfg(), tz, d);
        (b - a).num_hours()
    };
    assert_eq!(len(date(2026, 3, 29)), 23);
    assert_eq!(len(date(2026, 10, 25)), 25);
    assert_eq!(len(date(2026, 11, 20)), 24);
    // 01:30 to 03:30 local on spring-forward day is one real hour.
    let start = at(tz, 2026, 3, 29, 1, 30);
    let end = at(tz, 2026, 3, 29, 3, 30);
    let ev = evidence(tz, vec![act(1, "fit", "run", start, (end - start).num_minutes())], Vec::new());
    assert_eq!(verdict(&h, tz, date(2026, 3, 29), &ev).achieved, 60.0);
    // 01:30 to 02:30 (second pass) local on fall-back day is two real hours.
    let start = at(tz, 2026, 10, 25, 1, 30);
    let ev = evidence(tz, vec![act(1, "fit", "run", start, 120)], Vec::new());
    assert_eq!(verdict(&h, tz, date(2026, 10, 25), &ev).achieved, 120.0);
    // A nightly window over the spring-forward night is 7 real hours instead of 8.
    let n = hw("10 push-ups every night");
    let (a, b) = window(&n.rule, &cfg(), tz, date(2026, 3, 28));
    assert_eq!((b - a).num_hours(), 7);
}

#[test]
fn steps_without_cardio_is_missed_nothing_is_no_data_today_is_pending() {
    let tz = chrono_tz::Europe::Berlin;
    let h = hw("15 minutes of cardio");
    let d = date(2026, 11, 20);
    let steps = DailyValue { date: d, metric: Metric::Steps, source: "oura".into(), value: 9000.0 };
    assert_eq!(verdict(&h, tz, d, &evidence(tz, Vec::new(), vec![steps])).verdict, Verdict::Missed);
    assert_eq!(verdict(&h, tz, d, &evidence(tz, Vec::new(), Vec::new())).verdict, Verdict::NoData);
    let now = at(tz, 2026, 11, 20, 15, 0);
    let o = judge(&h, &cfg(), tz, Some(190.0), d, &evidence(tz, Vec::new(), Vec::new()), now);
    assert_eq!(o.verdict, Verdict::Pending);
    // Still pending in the grace period after midnight; judged after it.
    let o = judge(&h, &cfg(), tz, Some(190.0), d, &Evidence::default(), at(tz, 2026, 11, 21, 5, 0));
    assert_eq!(o.verdict, Verdict::Pending);
    let o = judge(&h, &cfg(), tz, Some(190.0), d, &Evidence::default(), at(tz, 2026, 11, 21, 6, 1));
    assert_eq!(o.verdict, Verdict::NoData);
    // Done early: no need to wait for the window to close.
    let ev = evidence(tz, vec![act(1, "fit", "run", at(tz, 2026, 11, 20, 7, 0), 30)], Vec::new());
    assert_eq!(judge(&h, &cfg(), tz, Some(190.0), d, &ev, now).verdict, Verdict::Done);
}

#[test]
fn partial_self_reported_and_excused() {
    let tz = chrono_tz::Europe::Berlin;
    let d = date(2026, 11, 20);
    let h = hw("8000 steps a day");
    let steps = |v| vec![DailyValue { date: d, metric: Metric::Steps, source: "apple".into(), value: v }];
    assert_eq!(verdict(&h, tz, d, &evidence(tz, Vec::new(), steps(5000.0))).verdict, Verdict::Partial);
    assert_eq!(verdict(&h, tz, d, &evidence(tz, Vec::new(), steps(3000.0))).verdict, Verdict::Missed);
    let p = hw("10 push-ups every night");
    let mut ev = evidence(tz, Vec::new(), Vec::new());
    ev.checkins.push(CheckinRec { id: 7, homework_id: Some(1), date: d, value: Some(12.0), note: None });
    let o = verdict(&p, tz, d, &ev);
    assert_eq!((o.verdict, o.self_reported, o.achieved), (Verdict::Done, true, 12.0));
    ev.excused.insert((1, d));
    assert_eq!(verdict(&p, tz, d, &ev).verdict, Verdict::Excused);
}

#[test]
fn zone_minutes_come_from_heart_rate() {
    let tz = chrono_tz::Europe::Berlin;
    let d = date(2026, 11, 19); // a Thursday
    let h = hw("30 min zone 2 twice a week");
    let mut a = act(1, "ble", "workout", at(tz, 2026, 11, 17, 18, 0), 60);
    // HR max 190: zone 2 is 114..133 bpm. 35 min in it, 25 min above.
    a.hr_hist = vec![(120, 35.0 * 60.0), (150, 25.0 * 60.0)];
    a.hr_samples = 3600;
    let mut b = a.clone();
    b.id = 2;
    b.start = at(tz, 2026, 11, 19, 18, 0);
    b.end = b.start + Duration::minutes(60);
    b.hr_hist = vec![(120, 20.0 * 60.0), (150, 40.0 * 60.0)];
    let ev = evidence(tz, vec![a, b], Vec::new());
    let o = verdict(&h, tz, crate::time::monday(d), &ev);
    assert_eq!(o.period, "week");
    assert_eq!((o.achieved, o.target, o.verdict), (1.0, 2.0, Verdict::Partial), "{o:?}");
    // Cardio minutes at >= 64 % (122 bpm) count only the 150 bpm part of the first one.
    let c = hw("15 minutes of cardio");
    assert_eq!(verdict(&c, tz, date(2026, 11, 17), &ev).achieved, 25.0);
}

#[test]
fn runs_a_week_count_runs_and_on_different_days_count_days() {
    for tz in [chrono_tz::Europe::Berlin, chrono_tz::America::Los_Angeles] {
        let week = date(2026, 11, 16); // a Monday
                                       // Two separate runs on Tuesday, morning and evening.
        let morning = act(1, "fit", "run", at(tz, 2026, 11, 17, 7, 0), 30);
        let evening = act(2, "fit", "run", at(tz, 2026, 11, 17, 19, 0), 30);
        let ev = evidence(tz, vec![morning, evening], Vec::new());
        let runs = verdict(&hw("2 runs per week"), tz, week, &ev);
        assert_eq!((runs.achieved, runs.target, runs.verdict), (2.0, 2.0, Verdict::Done), "{runs:?}");
        assert_eq!(runs.unit, "sessions");
        let days = verdict(&hw("2 runs per week on different days"), tz, week, &ev);
        assert_eq!((days.achieved, days.target, days.verdict), (1.0, 2.0, Verdict::Partial), "{days:?}");
        assert_eq!(days.unit, "days");
        // An amount N times a week still counts days.
        let minutes = verdict(&hw("20 minutes of running 2 times a week"), tz, week, &ev);
        assert_eq!((minutes.achieved, minutes.verdict), (1.0, Verdict::Partial), "{minutes:?}");
    }
}

#[test]
fn a_workout_seen_by_three_sources_counts_once() {
    let tz = chrono_tz::Europe::Berlin;
    let h = hw("15 minutes of cardio");
    let t = at(tz, 2026, 11, 20, 18, 0);
    let ev = evidence(
        tz,
        vec![
            act(1, "ble", "workout", t - Duration::minutes(1), 32),
            act(2, "fit", "run", t, 30),
            act(3, "strava", "run", t, 30),
        ],
        Vec::new(),
    );
    let o = verdict(&h, tz, date(2026, 11, 20), &ev);
    // Counted once, at the most one record shows: the run's 30 min (the strap, with no
    // heart-rate samples here and no sport, cannot show cardio by itself).
    assert_eq!(o.achieved, 30.0);
    assert_eq!(o.evidence.len(), 1, "{:?}", o.evidence);
}

// ---- properties ----

fn arb_activity(id: i64) -> impl Strategy<Value = ActivityRec> {
    (
        0i64..(14 * 24 * 60),
        1i64..120,
        prop::sample::select(vec!["run", "ride", "strength", "yoga", "workout", "walk"]),
        prop::sample::select(vec!["fit", "ble", "strava", "manual"]),
        0u32..30,
        proptest::option::of(90u16..190),
    )
        .prop_map(move |(start_min, minutes, ty, source, reps, hr)| {
            let t0 = Utc.with_ymd_and_hms(2026, 11, 9, 0, 0, 0).single().expect("time");
            let mut a = act(id, source, ty, t0 + Duration::minutes(start_min), minutes);
            if reps > 0 && ty == "strength" {
                a.sets = vec![SetRec { start: None, exercise: "push_up".into(), reps, duration_s: None }];
            }
            if let Some(bpm) = hr {
                a.hr_hist = vec![(bpm, (minutes * 60) as f64)];
                a.hr_samples = (minutes * 60) as u32;
            }
            a
        })
}

fn arb_activities() -> impl Strategy<Value = Vec<ActivityRec>> {
    prop::collection::vec(any::<u8>(), 0..10)
        .prop_flat_map(|v| v.iter().enumerate().map(|(i, _)| arb_activity(i as i64 + 1)).collect::<Vec<_>>())
}

const PHRASES: [&str; 6] = [
    "15 minutes of cardio",
    "10 push-ups every night",
    "20 minutes of mobility 3 times a week",
    "30 min zone 2 twice a week",
    "2 runs per week",
    "a recovery routine every day",
];

fn all_verdicts(acts: &[ActivityRec]) -> Vec<(Verdict, f64)> {
    let tz = chrono_tz::Europe::Berlin;
    let ev = evidence(tz, acts.to_vec(), Vec::new());
    let mut out = Vec::new();
    for p in PHRASES {
        let h = hw(p);
        for d in h.occurrence_dates(date(2026, 11, 9), date(2026, 11, 22)) {
            let o = verdict(&h, tz, d, &ev);
            out.push((o.verdict, o.achieved));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_second_source_for_the_same_workouts_changes_no_verdict(acts in arb_activities(), which in prop::sample::select(vec!["strava", "fit", "ble"])) {
        let base = all_verdicts(&acts);
        let mut doubled = acts.clone();
        for a in &acts {
            let mut copy = a.clone();
            copy.id += 1000;
            // A typed-in log seen again is still typed in; a device's record seen by
            // another device or cloud. (A passive copy of a manual log is new passive data:
            // it rightly turns a day from no_data into judged.)
            copy.source = if a.source == "manual" { "manual".into() } else { which.into() };
            doubled.push(copy);
        }
        prop_assert_eq!(base, all_verdicts(&doubled));
    }

    #[test]
    fn order_of_arrival_changes_nothing(acts in arb_activities(), seed in any::<u64>()) {
        let mut shuffled = acts.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(all_verdicts(&acts), all_verdicts(&shuffled));
    }

    #[test]
    fn more_evidence_never_turns_done_into_missed(acts in arb_activities(), extra in arb_activity(500)) {
        let before = all_verdicts(&acts);
        let mut more = acts.clone();
        more.push(extra);
        let after = all_verdicts(&more);
        for (b, a) in before.iter().zip(&after) {
            if b.0 == Verdict::Done {
                prop_assert_eq!(a.0, Verdict::Done, "{:?} -> {:?}", b, a);
            }
        }
    }
}
