//! Verdicts of the homework language's rule kinds, in a zone on each side of UTC.

use super::evidence::{CheckinRec, DailyValue, Evidence, SetRec};
use super::judge::{judge, Homework, Verdict};
use super::phrase;
use super::rule::{Measure, Question, QuestionKind, Rule, Schedule};
use super::tests::{act, at, cfg, date, evidence, hw, later, verdict};
use crate::model::Metric;
use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use std::collections::BTreeSet;

const ZONES: [Tz; 2] = [chrono_tz::Europe::Berlin, chrono_tz::America::Los_Angeles];

fn hw_from(phrase: &str, from: NaiveDate) -> Homework {
    Homework { from, ..hw(phrase) }
}

fn checkin(id: i64, d: NaiveDate, value: Option<f64>) -> CheckinRec {
    CheckinRec { id, homework_id: Some(1), date: d, value, note: None }
}

fn with_checkins(tz: Tz, checkins: Vec<CheckinRec>) -> Evidence {
    Evidence::build(tz, Vec::new(), Vec::new(), checkins, BTreeSet::new())
}

#[test]
fn a_weekly_total_adds_the_week_up_across_a_month_end_and_a_dst_change() {
    // (zone, a Monday): Los Angeles' week of 2026-10-26 crosses into November and its DST
    // end on Nov 1; Berlin's week of 2026-10-19 holds its DST end on Oct 25, and its week
    // of 2026-10-26 crosses the month.
    let weeks = [
        (chrono_tz::America::Los_Angeles, date(2026, 10, 26)),
        (chrono_tz::Europe::Berlin, date(2026, 10, 19)),
        (chrono_tz::Europe::Berlin, date(2026, 10, 26)),
    ];
    for (tz, monday) in weeks {
        let h = hw("150 minutes of cardio a week");
        assert_eq!(h.rule.schedule, Schedule::WeekTotal);
        let sunday = monday + Duration::days(6);
        let day = |i: i64| monday + Duration::days(i);
        let on = |d: NaiveDate, hh: u32, mm: u32| {
            at(tz, chrono::Datelike::year(&d), chrono::Datelike::month(&d), chrono::Datelike::day(&d), hh, mm)
        };
        let acts = vec![
            act(1, "fit", "run", on(day(0), 7, 0), 40),
            act(2, "fit", "ride", on(day(3), 18, 0), 50),
            // Late on the Sunday (after a DST change where there is one): still this week.
            act(3, "strava", "run", on(sunday, 23, 10), 30),
            // Just after midnight: next week's.
            act(4, "fit", "run", on(sunday + Duration::days(1), 0, 20), 60),
        ];
        let o = verdict(&h, tz, monday, &evidence(tz, acts.clone(), Vec::new()));
        assert_eq!(
            (o.period.as_ref(), o.achieved, o.target, o.unit.as_ref()),
            ("week", 120.0, 150.0, "min"),
            "{tz} {monday}"
        );
        assert_eq!(o.verdict, Verdict::Partial, "{tz}: 120 of 150 is partial with bands 100/50");
        let mut more = acts;
        more.push(act(5, "fit", "walk", on(day(5), 10, 0), 45));
        more[4].category = crate::model::Category::Cardio;
        let o = verdict(&h, tz, monday, &evidence(tz, more, Vec::new()));
        assert_eq!((o.verdict, o.achieved), (Verdict::Done, 165.0), "{tz}");
        assert_eq!(o.evidence.len(), 4, "{tz}: the four activities of the week");
        // The week is pending until it ends.
        let o = judge(&h, &cfg(), tz, None, monday, &Evidence::default(), on(day(4), 12, 0));
        assert_eq!(o.verdict, Verdict::Pending);
    }
}

#[test]
fn a_weekly_total_in_a_first_partial_week_asks_for_its_share() {
    let tz = chrono_tz::Europe::Berlin;
    // Starts on a Thursday: four of seven days.
    let h = hw_from("140 minutes of cardio a week", date(2026, 11, 19));
    let o = verdict(&h, tz, date(2026, 11, 16), &Evidence::default());
    assert_eq!(o.target, 80.0);
}

#[test]
fn distance_counts_the_longest_record_of_one_run_from_a_file_and_a_cloud() {
    for tz in ZONES {
        let h = hw("a 5 km run on saturday");
        let d = date(2026, 11, 21);
        let mut fit = act(1, "fit", "run", at(tz, 2026, 11, 21, 9, 0), 30);
        fit.distance_m = Some(5040.0);
        let mut strava = act(2, "strava", "run", at(tz, 2026, 11, 21, 9, 0), 30);
        strava.distance_m = Some(4990.0);
        let o = verdict(&h, tz, d, &evidence(tz, vec![fit.clone(), strava.clone()], Vec::new()));
        assert_eq!(
            (o.verdict, o.achieved, o.unit.as_ref()),
            (Verdict::Done, 5.04, "km"),
            "{tz}: one run, the longest record"
        );
        // The cloud summary alone.
        let o = verdict(&h, tz, d, &evidence(tz, vec![strava], Vec::new()));
        assert_eq!((o.verdict, o.achieved), (Verdict::Partial, 4.99), "{tz}");
        // A ride's distance is not a run's.
        let mut ride = act(3, "fit", "ride", at(tz, 2026, 11, 21, 14, 0), 60);
        ride.distance_m = Some(25_000.0);
        let o = verdict(&h, tz, d, &evidence(tz, vec![ride], Vec::new()));
        assert_eq!((o.verdict, o.achieved), (Verdict::Missed, 0.0), "{tz}");
        // Miles.
        let mut walk = act(4, "apple", "walk", at(tz, 2026, 11, 21, 8, 0), 70);
        walk.distance_m = Some(4900.0);
        let o = verdict(&hw("walk 3 miles daily"), tz, d, &evidence(tz, vec![walk], Vec::new()));
        assert_eq!((o.verdict, o.unit.as_ref()), (Verdict::Done, "mi"), "{tz}: {}", o.achieved);
    }
}

fn set(t: chrono::DateTime<chrono::Utc>, exercise: &str, reps: u32, secs: Option<f64>) -> SetRec {
    SetRec { start: Some(t), exercise: exercise.into(), reps, duration_s: secs }
}

#[test]
fn sets_count_each_set_up_to_its_reps_and_holds_count_the_longest() {
    for tz in ZONES {
        let h = hw("3 sets of 10 push-ups every night");
        let t = at(tz, 2026, 11, 20, 21, 0);
        let mut a = act(1, "fit", "strength", t, 20);
        // Rest sets are never loaded (the store reads active sets only); a set of 12 counts as one.
        a.sets = vec![set(t, "push_up", 12, None), set(t, "push_up", 10, None), set(t, "push_up", 5, None)];
        let o = verdict(&h, tz, date(2026, 11, 20), &evidence(tz, vec![a.clone()], Vec::new()));
        assert_eq!((o.verdict, o.achieved, o.unit.as_ref()), (Verdict::Partial, 2.5, "sets"), "{tz}");
        a.sets.push(set(t, "push_up", 10, None));
        a.sets.push(set(t, "squat", 30, None));
        let o = verdict(&h, tz, date(2026, 11, 20), &evidence(tz, vec![a], Vec::new()));
        assert_eq!(
            (o.verdict, o.achieved),
            (Verdict::Done, 3.5),
            "{tz}: three full sets and half a set; squats are not push-ups"
        );

        let plank = hw("a 2-minute plank daily");
        let mut b = act(2, "fit", "strength", at(tz, 2026, 11, 20, 7, 0), 10);
        b.sets = vec![
            set(t - Duration::hours(14), "plank", 0, Some(70.0)),
            set(t - Duration::hours(14), "plank", 0, Some(65.0)),
        ];
        let o = verdict(&plank, tz, date(2026, 11, 20), &evidence(tz, vec![b.clone()], Vec::new()));
        assert_eq!(
            (o.verdict, o.achieved, o.unit.as_ref()),
            (Verdict::Partial, 70.0, "s"),
            "{tz}: two holds are not one long one"
        );
        b.sets.push(set(t - Duration::hours(14), "plank", 0, Some(125.0)));
        let o = verdict(&plank, tz, date(2026, 11, 20), &evidence(tz, vec![b], Vec::new()));
        assert_eq!((o.verdict, o.achieved), (Verdict::Done, 125.0), "{tz}");
    }
}

#[test]
fn every_other_day_runs_from_the_first_day_across_a_month_end() {
    for tz in ZONES {
        let h = hw_from("10 pull-ups every other day", date(2026, 1, 27));
        let dates = h.occurrence_dates(date(2026, 1, 25), date(2026, 2, 6));
        let want: Vec<NaiveDate> =
            [(1, 27), (1, 29), (1, 31), (2, 2), (2, 4), (2, 6)].iter().map(|(m, d)| date(2026, *m, *d)).collect();
        assert_eq!(dates, want, "{tz}");
        // A change on an off day touches no occurrence; on an occurrence day, that one.
        assert!(h.affected_by(date(2026, 2, 1)).iter().all(|d| want.contains(d)));
        let t = at(tz, 2026, 1, 31, 18, 0);
        let mut a = act(1, "fit", "strength", t, 10);
        a.sets = vec![set(t, "pull_up", 10, None)];
        assert_eq!(verdict(&h, tz, date(2026, 1, 31), &evidence(tz, vec![a], Vec::new())).verdict, Verdict::Done);
        let every3 = hw_from("20 squats every 3 days", date(2026, 2, 27));
        assert_eq!(
            every3.occurrence_dates(date(2026, 2, 27), date(2026, 3, 6)),
            vec![date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 5)]
        );
    }
}

fn clock(d: NaiveDate, source: &str, m: Metric, t: chrono::DateTime<chrono::Utc>) -> DailyValue {
    DailyValue { date: d, metric: m, source: source.into(), value: t.timestamp() as f64 }
}

#[test]
fn bedtimes_and_wake_up_times_from_the_night_dated_by_its_morning() {
    for tz in ZONES {
        let h = hw("in bed by 23:00");
        let night = date(2026, 11, 20);
        let morning = date(2026, 11, 21);
        let on_time = vec![
            clock(morning, "apple_health", Metric::SleepStart, at(tz, 2026, 11, 20, 22, 50)),
            clock(morning, "apple_health", Metric::SleepEnd, at(tz, 2026, 11, 21, 6, 40)),
        ];
        let o = verdict(&h, tz, night, &evidence(tz, Vec::new(), on_time.clone()));
        assert_eq!((o.verdict, o.achieved, o.unit.as_ref()), (Verdict::Done, 1.0, "nights"), "{tz}");
        // Half an hour late: half the night kept, partial with bands 100/50; after midnight, missed.
        let late = |t| vec![clock(morning, "polar", Metric::SleepStart, t)];
        let o = verdict(&h, tz, night, &evidence(tz, Vec::new(), late(at(tz, 2026, 11, 20, 23, 30))));
        assert_eq!((o.verdict, o.achieved), (Verdict::Partial, 0.5), "{tz}");
        let o = verdict(&h, tz, night, &evidence(tz, Vec::new(), late(at(tz, 2026, 11, 21, 0, 15))));
        assert_eq!(o.verdict, Verdict::Missed, "{tz}");
        // Two sources that disagree: the one in the client's favour.
        let mut both = late(at(tz, 2026, 11, 21, 0, 15));
        both.extend(on_time.clone());
        assert_eq!(verdict(&h, tz, night, &evidence(tz, Vec::new(), both)).verdict, Verdict::Done, "{tz}");
        // A bedtime after midnight belongs to the evening before.
        let late_target = hw("in bed by 00:30");
        let o = verdict(&late_target, tz, night, &evidence(tz, Vec::new(), late(at(tz, 2026, 11, 21, 0, 20))));
        assert_eq!(o.verdict, Verdict::Done, "{tz}");
        // No sleep record: no data, not missed.
        assert_eq!(verdict(&h, tz, night, &Evidence::default()).verdict, Verdict::NoData);

        let up = hw("up by 7:00 on weekdays");
        let o = verdict(&up, tz, morning, &evidence(tz, Vec::new(), on_time));
        assert_eq!(o.verdict, Verdict::Done, "{tz}: awake 06:40");
        let lie_in = vec![clock(morning, "polar", Metric::SleepEnd, at(tz, 2026, 11, 21, 9, 0))];
        assert_eq!(verdict(&up, tz, morning, &evidence(tz, Vec::new(), lie_in)).verdict, Verdict::Missed);
    }
}

#[test]
fn a_sleep_range_is_done_inside_it_and_partial_past_it() {
    let tz = chrono_tz::America::Los_Angeles;
    let h = hw("7-9 hours of sleep");
    let night = |hours: f64| {
        vec![DailyValue {
            date: date(2026, 11, 21),
            metric: Metric::SleepS,
            source: "oura".into(),
            value: hours * 3600.0,
        }]
    };
    let v = |hours| verdict(&h, tz, date(2026, 11, 20), &evidence(tz, Vec::new(), night(hours))).verdict;
    assert_eq!(
        (v(8.0), v(9.0), v(10.5), v(5.0), v(3.0)),
        (Verdict::Done, Verdict::Done, Verdict::Partial, Verdict::Partial, Verdict::Missed)
    );
}

#[test]
fn a_habit_is_judged_by_check_ins_alone_and_none_is_a_miss() {
    for tz in ZONES {
        let h = hw("drink 2 liters of water every day");
        let d = date(2026, 11, 20);
        // No check-in once the day is over: missed, never no data (no device could see it).
        assert_eq!(verdict(&h, tz, d, &Evidence::default()).verdict, Verdict::Missed, "{tz}");
        // A device workout does not count for a habit.
        let busy = evidence(tz, vec![act(1, "fit", "run", at(tz, 2026, 11, 20, 8, 0), 60)], Vec::new());
        assert_eq!(verdict(&h, tz, d, &busy).verdict, Verdict::Missed, "{tz}");
        let o = verdict(&h, tz, d, &with_checkins(tz, vec![checkin(7, d, Some(2.5))]));
        assert_eq!((o.verdict, o.achieved, o.self_reported), (Verdict::Done, 2.5, true), "{tz}");
        let o = verdict(&h, tz, d, &with_checkins(tz, vec![checkin(7, d, Some(1.0))]));
        assert_eq!(o.verdict, Verdict::Partial, "{tz}");
        // A yes/no habit: a tick is done.
        let yes = hw("no alcohol on weeknights");
        let sunday = date(2026, 11, 22);
        assert_eq!(
            verdict(&yes, tz, sunday, &with_checkins(tz, vec![checkin(8, sunday, None)])).verdict,
            Verdict::Done
        );
        assert!(
            yes.occurrence_dates(date(2026, 11, 20), date(2026, 11, 21)).is_empty(),
            "Fri and Sat are not weeknights"
        );
        // Today, before the day is over: pending.
        let o = judge(&h, &cfg(), tz, None, d, &Evidence::default(), at(tz, 2026, 11, 20, 12, 0));
        assert_eq!(o.verdict, Verdict::Pending);
    }
}

#[test]
fn a_progression_raises_the_target_each_week_up_to_its_cap() {
    for tz in ZONES {
        // Starts on a Wednesday: the first week is week 0.
        let h = hw_from("10 push-ups every night, +2 each week", date(2026, 11, 4));
        let targets: Vec<f64> = [4, 10, 17, 24, 29]
            .iter()
            .map(|d| verdict(&h, tz, date(2026, 11, *d), &Evidence::default()).target)
            .collect();
        assert_eq!(targets, [10.0, 12.0, 14.0, 16.0, 16.0], "{tz}");
        let t = at(tz, 2026, 11, 24, 21, 0);
        let mut a = act(1, "fit", "strength", t, 5);
        a.sets = vec![SetRec { start: Some(t), exercise: "push_up".into(), reps: 14, duration_s: None }];
        let o = verdict(&h, tz, date(2026, 11, 24), &evidence(tz, vec![a], Vec::new()));
        assert_eq!(
            (o.verdict, o.achieved, o.target),
            (Verdict::Partial, 14.0, 16.0),
            "{tz}: 14 was enough two weeks ago"
        );

        let pct = hw_from("5 km of running on sundays, add 10 % a week, up to 6 km", date(2026, 11, 1));
        let targets: Vec<f64> =
            [1, 8, 15, 22].iter().map(|d| verdict(&pct, tz, date(2026, 11, *d), &Evidence::default()).target).collect();
        assert_eq!(targets, [5.0, 5.5, 6.0, 6.0], "{tz}");
        // A weekly count with a growing amount: the day's target grows.
        let weekly = hw_from("20 minutes of cardio 3 times a week, +5 each week", date(2026, 11, 2));
        let ev = evidence(tz, vec![act(2, "fit", "run", at(tz, 2026, 11, 17, 7, 0), 22)], Vec::new());
        assert_eq!(verdict(&weekly, tz, date(2026, 11, 16), &ev).achieved, 0.0, "{tz}: week 2 asks 30 minutes a day");
    }
}

#[test]
fn questions_are_done_when_answered() {
    let rule = Rule {
        measure: Measure::Questions {
            questions: vec![Question {
                text: "How do you choose to make this week work?".into(),
                kind: QuestionKind::Scale,
            }],
        },
        schedule: Schedule::WeekTotal,
        nightly: false,
        window: None,
        bands: None,
        progression: None,
    };
    let h = Homework {
        id: 1,
        client: "alex".into(),
        text: rule.to_string().into(),
        rule,
        from: date(2026, 11, 2),
        until: None,
    };
    assert_eq!(&*h.text, "answer 1 question per week");
    for tz in ZONES {
        let monday = date(2026, 11, 16);
        let answered = with_checkins(tz, vec![checkin(3, date(2026, 11, 19), None)]);
        let o = verdict(&h, tz, monday, &answered);
        assert_eq!((o.verdict, o.period.as_ref()), (Verdict::Done, "week"), "{tz}");
        assert_eq!(verdict(&h, tz, monday, &Evidence::default()).verdict, Verdict::Missed, "{tz}");
        let o = judge(&h, &cfg(), tz, None, monday, &answered, at(tz, 2026, 11, 19, 12, 0));
        assert_eq!(o.verdict, Verdict::Done, "{tz}: done as soon as answered");
    }
    let _ = later();
}

#[test]
fn mindfulness_minutes_count_meditation_activities() {
    for tz in ZONES {
        let h = hw("meditate 10 minutes daily");
        let ev = evidence(tz, vec![act(1, "apple", "meditation", at(tz, 2026, 11, 20, 7, 0), 12)], Vec::new());
        let o = verdict(&h, tz, date(2026, 11, 20), &ev);
        assert_eq!((o.verdict, o.achieved), (Verdict::Done, 12.0), "{tz}");
        let _ = phrase::parse("10 min breathing").expect("parses");
    }
}
