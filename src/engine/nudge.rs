//! When to nudge a client about an occurrence that is still open: pure, on any clock.
//!
//! [`plan`] says when an occurrence's reminder is due, when its window closes and until
//! when its links work; [`decide`] says, at a moment, whether to wait, send or record
//! that it is not sent (and why). Times are reckoned on the client's wall clock, so a
//! DST day moves nothing: "20:00" is 20:00 local on the 23- and the 25-hour day alike.
//!
//! - A homework with a window (its own, or the nightly one): `lead` before the window
//!   ends (never before it opens). With the default 19:00-03:00 night and 90 minutes,
//!   that is 01:30, inside the default quiet hours, so it goes out at 22:00.
//! - A whole-day homework: `daily_at` (20:00) on its day.
//! - A weekly homework: as a daily one, on the last day of its week it applies.
//! - Quiet hours: a reminder due inside them goes out as they begin; if that is before
//!   the window opens, as they end; if that is after it closes, never. A reminder that
//!   is late (the daemon was down) waits out quiet hours, and is dropped once the window
//!   has closed: it is sent late only while the window is still open.

use super::judge::{window, Homework, JudgeConfig};
use super::rule::Window;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

/// The `[notify]` settings that shape the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct NudgeSettings {
    /// How long before a window ends its reminder is due.
    pub lead: Duration,
    /// When a whole-day (or weekly) homework's reminder is due, local time.
    pub daily_at: NaiveTime,
    /// No message strictly between their start and end (local); None: none.
    pub quiet: Option<Window>,
}

/// One occurrence's reminder, in UTC instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The occurrence's date (a week's Monday for weekly homework).
    pub date: NaiveDate,
    pub opens: DateTime<Utc>,
    pub closes: DateTime<Utc>,
    /// When it goes out; None when quiet hours cover every moment it could.
    pub due: Option<DateTime<Utc>>,
    /// Its links work until then: the window's close plus the grace period.
    pub links_until: DateTime<Utc>,
}

/// What the devices and the client have said about the occurrence so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Open,
    /// The devices (or check-ins) already reach the target.
    Done,
    Excused,
    /// The client checked in (some amount) already.
    CheckedIn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not yet (before it is due, or inside quiet hours after a late start).
    Wait,
    Send,
    /// Never for this occurrence, with the reason shown in the outbox.
    Suppress(&'static str),
}

/// How late a reminder may still go out once quiet hours have begun.
pub const LATE_IN_QUIET: Duration = Duration::minutes(15);

fn at(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    crate::time::local(tz, t.date(), t.time())
}

/// The reminder plan of the occurrence of `hw` dated `date`.
pub fn plan(hw: &Homework, cfg: &JudgeConfig, s: &NudgeSettings, tz: Tz, date: NaiveDate) -> Plan {
    let rule = &hw.rule;
    // The day the reminder belongs to: the date, or a week's last day it applies.
    let (first, day) = if rule.schedule.weekly() {
        let days: Vec<NaiveDate> = (0..7).map(|i| date + Duration::days(i)).filter(|d| hw.active_on(*d)).collect();
        (days.first().copied().unwrap_or(date), days.last().copied().unwrap_or(date))
    } else {
        (date, date)
    };
    let opens = window(rule, cfg, tz, first).0;
    let closes = window(rule, cfg, tz, day).1;
    let wall = match rule.window.or(rule.nightly.then_some(cfg.nightly)) {
        Some(w) => {
            let start = day.and_time(w.start);
            let end =
                if w.crosses_midnight() { (day + Duration::days(1)).and_time(w.end) } else { day.and_time(w.end) };
            (end - s.lead).max(start)
        }
        None => day.and_time(s.daily_at),
    };
    let due = match s.quiet {
        Some(q) if quiet_at(q, wall) => {
            let begins = quiet_start(q, wall);
            let ends = quiet_end(q, wall);
            if at(tz, begins) >= opens {
                Some(at(tz, begins))
            } else if at(tz, ends) < closes {
                Some(at(tz, ends).max(opens))
            } else {
                None
            }
        }
        _ => Some(at(tz, wall)),
    };
    Plan { date, opens, closes, due, links_until: closes + cfg.grace }
}

/// Whether a local wall-clock moment is strictly inside the quiet hours.
fn quiet_at(q: Window, t: NaiveDateTime) -> bool {
    let x = t.time();
    if q.crosses_midnight() {
        x > q.start || x < q.end
    } else {
        x > q.start && x < q.end
    }
}

/// The start of the quiet stretch `t` is in.
fn quiet_start(q: Window, t: NaiveDateTime) -> NaiveDateTime {
    let d = t.date();
    if q.crosses_midnight() && t.time() < q.end {
        (d - Duration::days(1)).and_time(q.start)
    } else {
        d.and_time(q.start)
    }
}

/// The end of the quiet stretch `t` is in.
fn quiet_end(q: Window, t: NaiveDateTime) -> NaiveDateTime {
    let d = t.date();
    if q.crosses_midnight() && t.time() > q.start {
        (d + Duration::days(1)).and_time(q.end)
    } else {
        d.and_time(q.end)
    }
}

/// Whether `now` is inside the quiet hours, on the client's clock.
pub fn is_quiet(s: &NudgeSettings, tz: Tz, now: DateTime<Utc>) -> bool {
    s.quiet.is_some_and(|q| quiet_at(q, now.with_timezone(&tz).naive_local()))
}

/// At `now`, what to do about a planned reminder that has not been decided yet.
pub fn decide(
    p: &Plan,
    s: &NudgeSettings,
    tz: Tz,
    now: DateTime<Utc>,
    progress: Progress,
    opted_out: bool,
) -> Decision {
    let Some(due) = p.due else {
        return if now >= p.closes { Decision::Suppress("quiet hours cover the whole window") } else { Decision::Wait };
    };
    if now < due {
        return Decision::Wait;
    }
    match progress {
        Progress::Done => return Decision::Suppress("already done"),
        Progress::Excused => return Decision::Suppress("excused"),
        Progress::CheckedIn => return Decision::Suppress("already checked in"),
        Progress::Open => {}
    }
    if now >= p.closes {
        return Decision::Suppress("the window closed before coachd could send it (the daemon was not running)");
    }
    if opted_out {
        return Decision::Suppress("the client turned reminders off");
    }
    if is_quiet(s, tz, now) && now - due > LATE_IN_QUIET {
        // Late (the daemon was down at the due time) and now it is night: wait for the
        // morning, which may be after the window closes; then it is suppressed. A reminder
        // due as quiet hours begin still goes out on the next round.
        return Decision::Wait;
    }
    Decision::Send
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::phrase;
    use crate::engine::rule::Bands;
    use chrono::TimeZone;

    fn cfg() -> JudgeConfig {
        JudgeConfig {
            bands: Bands { done: 1.0, partial: 0.5 },
            grace: Duration::hours(6),
            nightly: Window::parse("19:00-03:00").expect("window"),
            no_steps: Vec::new(),
        }
    }

    fn settings(quiet: Option<&str>) -> NudgeSettings {
        NudgeSettings {
            lead: Duration::minutes(90),
            daily_at: NaiveTime::from_hms_opt(20, 0, 0).expect("time"),
            quiet: quiet.map(|q| Window::parse(q).expect("quiet")),
        }
    }

    fn hw(phrase: &str, window: Option<&str>) -> Homework {
        let mut rule = phrase::parse(phrase).expect("phrase");
        rule.window = window.map(|w| Window::parse(w).expect("window"));
        Homework { id: 1, client: "c".into(), text: phrase.into(), rule, from: day(2026, 1, 1), until: None }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn local(tz: Tz, due: Option<DateTime<Utc>>) -> String {
        due.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "never".into())
    }

    #[test]
    fn a_daily_homework_is_due_at_eight_in_the_evening_on_both_sides_of_utc_and_on_dst_days() {
        let h = hw("10 push-ups", None);
        let s = settings(Some("22:00-07:00"));
        for (tz, d) in [
            (chrono_tz::America::Los_Angeles, day(2026, 3, 8)),  // spring forward
            (chrono_tz::America::Los_Angeles, day(2026, 11, 1)), // fall back
            (chrono_tz::Europe::Berlin, day(2026, 3, 29)),
            (chrono_tz::Europe::Berlin, day(2026, 10, 25)),
            (chrono_tz::Pacific::Auckland, day(2026, 4, 5)), // NZ falls back in April
            (chrono_tz::Pacific::Auckland, day(2026, 9, 27)),
            (chrono_tz::Asia::Tokyo, day(2026, 6, 1)),
        ] {
            let p = plan(&h, &cfg(), &s, tz, d);
            assert_eq!(local(tz, p.due), format!("{d} 20:00"), "{tz}");
            assert_eq!(p.closes, crate::time::local(tz, d + Duration::days(1), NaiveTime::MIN), "{tz}");
        }
    }

    #[test]
    fn a_nightly_reminder_falls_in_quiet_hours_and_goes_out_as_they_begin() {
        let h = hw("10 push-ups every night", None);
        let tz = chrono_tz::Europe::Berlin;
        // 90 minutes before 03:00 is 01:30, by the wall clock also on the night the clocks go back.
        for d in [day(2026, 10, 24), day(2026, 3, 28), day(2026, 11, 20)] {
            let p = plan(&h, &cfg(), &settings(None), tz, d);
            assert_eq!(local(tz, p.due), format!("{} 01:30", d + Duration::days(1)));
            let p = plan(&h, &cfg(), &settings(Some("22:00-07:00")), tz, d);
            assert_eq!(local(tz, p.due), format!("{d} 22:00"));
        }
        // A window of its own: 90 minutes before it ends, inside it.
        let h = hw("10 push-ups", Some("06:00-09:00"));
        assert_eq!(local(tz, plan(&h, &cfg(), &settings(None), tz, day(2026, 11, 20)).due), "2026-11-20 07:30");
        // Quiet until 07:00 moves it later, to their end, still inside the window.
        let q = plan(&h, &cfg(), &settings(Some("22:00-07:45")), tz, day(2026, 11, 20));
        assert_eq!(local(tz, q.due), "2026-11-20 07:45");
        let never = plan(&h, &cfg(), &settings(Some("22:00-09:30")), tz, day(2026, 11, 20));
        assert_eq!(never.due, None, "the whole window is quiet");
        // A short window: never before it opens.
        let h = hw("10 push-ups", Some("12:00-12:30"));
        assert_eq!(local(tz, plan(&h, &cfg(), &settings(None), tz, day(2026, 11, 20)).due), "2026-11-20 12:00");
    }

    #[test]
    fn a_weekly_homework_is_due_on_the_last_day_of_its_week() {
        let h = hw("150 minutes of cardio a week", None);
        let tz = chrono_tz::America::New_York;
        let p = plan(&h, &cfg(), &settings(None), tz, day(2026, 11, 16));
        assert_eq!(local(tz, p.due), "2026-11-22 20:00");
        assert_eq!(p.closes, crate::time::local(tz, day(2026, 11, 23), NaiveTime::MIN));
    }

    #[test]
    fn decisions_wait_send_late_only_while_open_and_suppress_what_is_settled() {
        let tz = chrono_tz::Asia::Tokyo;
        let h = hw("10 push-ups", None);
        let s = settings(Some("22:00-07:00"));
        let p = plan(&h, &cfg(), &s, tz, day(2026, 11, 20));
        let t = |h: u32, m: u32| tz.with_ymd_and_hms(2026, 11, 20, h, m, 0).single().expect("time").with_timezone(&Utc);
        assert_eq!(decide(&p, &s, tz, t(19, 59), Progress::Open, false), Decision::Wait);
        assert_eq!(decide(&p, &s, tz, t(20, 0), Progress::Open, false), Decision::Send);
        assert_eq!(decide(&p, &s, tz, t(21, 30), Progress::Open, false), Decision::Send, "late, still open");
        assert_eq!(decide(&p, &s, tz, t(23, 0), Progress::Open, false), Decision::Wait, "late, but quiet");
        let after = p.closes + Duration::minutes(1);
        assert!(
            matches!(decide(&p, &s, tz, after, Progress::Open, false), Decision::Suppress(r) if r.contains("closed"))
        );
        for (progress, why) in [
            (Progress::Done, "already done"),
            (Progress::Excused, "excused"),
            (Progress::CheckedIn, "already checked in"),
        ] {
            assert_eq!(decide(&p, &s, tz, t(20, 0), progress, false), Decision::Suppress(why));
        }
        assert!(
            matches!(decide(&p, &s, tz, t(20, 0), Progress::Open, true), Decision::Suppress(r) if r.contains("off"))
        );
        assert_eq!(p.links_until, p.closes + Duration::hours(6));
    }
}
