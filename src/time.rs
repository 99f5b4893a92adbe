//! Local dates and times in a client's time zone: the one place that knows how an
//! instant maps to "Tuesday" for someone in Berlin, how long a DST day is, and how a
//! person writes a day ("2026-11-20", "today", "yesterday"). Pure; used by the store,
//! the engine, charts, the application layer and both front ends.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The local date of `now` in `tz`.
pub fn today(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The Monday of `d`'s week (weeks run Monday to Sunday).
pub fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// The local dates an interval touches, first to last.
pub fn local_dates(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> impl Iterator<Item = NaiveDate> {
    let (first, last) = (start.with_timezone(&tz).date_naive(), end.with_timezone(&tz).date_naive());
    first.iter_days().take_while(move |d| *d <= last)
}

/// The instant a local date and time maps to; in a DST gap, the first instant after it.
pub fn local(tz: Tz, d: NaiveDate, t: NaiveTime) -> DateTime<Utc> {
    let naive = d.and_time(t);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(x) => x.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // Gaps are at most a few hours: step forward until local time exists again.
            (1..=6)
                .find_map(|h| tz.from_local_datetime(&(naive + Duration::minutes(30 * h))).earliest())
                .map_or_else(|| naive.and_utc(), |x| x.with_timezone(&Utc))
        }
    }
}

/// A day as a person writes it: `YYYY-MM-DD`, `today` or `yesterday` (in `tz`, as of
/// `now`). `what` names the field in the message, e.g. "the start date".
pub fn parse_day(s: &str, tz: Tz, now: DateTime<Utc>, what: &str) -> Result<NaiveDate, String> {
    let today = today(tz, now);
    match s.trim().to_ascii_lowercase().as_str() {
        "today" => Ok(today),
        "yesterday" => Ok(today - Duration::days(1)),
        other => NaiveDate::parse_from_str(other, "%Y-%m-%d")
            .ok()
            .filter(|d| (1900..=2200).contains(&d.year()))
            .ok_or_else(|| format!("{what} {s:?} is not a date: write it as YYYY-MM-DD, today or yesterday")),
    }
}

/// The server's own IANA zone, if it has one that chrono-tz knows.
pub fn server_zone() -> Option<Tz> {
    iana_time_zone::get_timezone().ok().and_then(|tz| tz.parse::<Tz>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_read_in_the_clients_zone() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 23, 30, 0).single().expect("valid");
        let berlin = chrono_tz::Europe::Berlin;
        let d = |s| parse_day(s, berlin, now, "the date");
        assert_eq!(d("today"), Ok(NaiveDate::from_ymd_opt(2026, 11, 21).expect("date")), "00:30 in Berlin");
        assert_eq!(d(" Yesterday "), Ok(NaiveDate::from_ymd_opt(2026, 11, 20).expect("date")));
        assert_eq!(d("2026-02-28"), Ok(NaiveDate::from_ymd_opt(2026, 2, 28).expect("date")));
        let e = d("2026-02-30").expect_err("no such day");
        assert!(e.starts_with("the date \"2026-02-30\" is not a date"), "{e}");
        assert!(d("99999-01-01").is_err() && d("0001-01-01").is_err(), "years out of range are refused");
    }

    #[test]
    fn dst_gaps_move_forward_and_weeks_start_on_monday() {
        let berlin = chrono_tz::Europe::Berlin;
        let spring = NaiveDate::from_ymd_opt(2026, 3, 29).expect("date");
        let t = local(berlin, spring, NaiveTime::from_hms_opt(2, 30, 0).expect("time"));
        assert_eq!(t.with_timezone(&berlin).format("%H:%M").to_string(), "03:00");
        assert_eq!(monday(spring), NaiveDate::from_ymd_opt(2026, 3, 23).expect("date"));
        let start = Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).single().expect("valid");
        assert_eq!(local_dates(berlin, start, start + Duration::hours(20)).count(), 2);
    }
}
