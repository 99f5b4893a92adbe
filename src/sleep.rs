//! Nights from stretches asleep: which stretches make one night, the date a night
//! belongs to (the local date it ends: the wake-up day), and its bed and wake times.
//!
//! Pure, and shared by every source that knows when its client slept (Apple Health,
//! Health Auto Export through ingest, Gadgetbridge), so "in bed by 23:00" and "7 hours of
//! sleep" read a night the same way whichever device recorded it.

use crate::model::{ClientId, DailyMetric, Metric};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// Stretches asleep this close together are one night (a wake-up in the night).
pub const SAME_NIGHT_MS: i64 = 60 * 60 * 1000;
/// A night longer than this is a recording fault: its bed and wake times are left out.
pub const LONGEST_NIGHT_MS: i64 = 24 * 3600 * 1000;
/// 2000-01-01 UTC: nothing earlier is a plausible time from a wearable.
const EARLIEST_MS: i64 = 946_684_800_000;

/// One night: from the first stretch asleep to the last, and the time asleep in between
/// (overlapping stretches counted once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Night {
    pub start_ms: i64,
    pub end_ms: i64,
    pub asleep_ms: i64,
}

impl Night {
    /// Bed and wake times in Unix seconds, when plausible: the night starts before it
    /// ends, lasts at most 24 h and lies between 2000 and a day after `now`.
    pub fn times(&self, now: DateTime<Utc>) -> Option<(f64, f64)> {
        let latest = now.timestamp_millis().saturating_add(24 * 3600 * 1000);
        let ok = self.start_ms < self.end_ms
            && self.end_ms.saturating_sub(self.start_ms) <= LONGEST_NIGHT_MS
            && self.start_ms >= EARLIEST_MS
            && self.end_ms <= latest;
        ok.then(|| (self.start_ms as f64 / 1000.0, self.end_ms as f64 / 1000.0))
    }
}

/// Stretches (start ms, end ms) grouped into nights, in time order. Empty or backwards
/// stretches are dropped; stretches less than [`SAME_NIGHT_MS`] apart are one night.
pub fn nights(stretches: &[(i64, i64)]) -> Vec<Night> {
    let mut pieces: Vec<(i64, i64)> = stretches.iter().copied().filter(|(a, b)| b > a).collect();
    pieces.sort_unstable();
    let mut out: Vec<Night> = Vec::new();
    for (a, b) in pieces {
        match out.last_mut() {
            Some(n) if a.saturating_sub(n.end_ms) <= SAME_NIGHT_MS => {
                // Overlapping stretches (two tables or two records saying the same) count once.
                n.asleep_ms = n.asleep_ms.saturating_add(b.saturating_sub(a.max(n.end_ms)).max(0));
                n.end_ms = n.end_ms.max(b);
            }
            _ => out.push(Night { start_ms: a, end_ms: b, asleep_ms: b.saturating_sub(a) }),
        }
    }
    out
}

/// Sleep periods a source scored itself, each with its own time asleep (Oura's, WHOOP's),
/// as nights: periods less than [`SAME_NIGHT_MS`] apart are one night, whose time asleep
/// is theirs together. In time order.
pub fn join_periods(mut periods: Vec<Night>) -> Vec<Night> {
    periods.retain(|p| p.end_ms > p.start_ms);
    periods.sort_by_key(|n| n.start_ms);
    let mut out: Vec<Night> = Vec::new();
    for n in periods {
        match out.last_mut() {
            Some(last) if n.start_ms.saturating_sub(last.end_ms) <= SAME_NIGHT_MS => {
                last.end_ms = last.end_ms.max(n.end_ms);
                last.asleep_ms = last.asleep_ms.saturating_add(n.asleep_ms);
            }
            _ => out.push(n),
        }
    }
    out
}

/// The main night of each wake-up date from `from` on: of the nights ending that local
/// date, the one with the most time asleep (a source's naps are left out before this).
pub fn main_nights(nights: &[Night], tz: Tz, from: NaiveDate) -> BTreeMap<NaiveDate, Night> {
    let mut mains: BTreeMap<NaiveDate, Night> = BTreeMap::new();
    for night in nights {
        let date = local_date(tz, night.end_ms);
        if date < from {
            continue;
        }
        let main = mains.entry(date).or_insert(*night);
        if night.asleep_ms > main.asleep_ms {
            *main = *night;
        }
    }
    mains
}

/// The local date of an instant (ms) in `tz`.
pub fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&tz).date_naive()
}

/// What one wake-up date holds: all the sleep of the nights that ended on it (a nap
/// included) and its main night, the one with the most time asleep, whose start and end
/// are the bed and wake times (a nap never makes a bedtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeDay {
    pub date: NaiveDate,
    pub asleep_ms: i64,
    pub main: Night,
}

/// Nights by the local date they end, in date order.
pub fn wake_days(nights: &[Night], tz: Tz) -> Vec<WakeDay> {
    let mut days: BTreeMap<NaiveDate, WakeDay> = BTreeMap::new();
    for n in nights {
        let date = local_date(tz, n.end_ms);
        let day = days.entry(date).or_insert(WakeDay { date, asleep_ms: 0, main: *n });
        day.asleep_ms = day.asleep_ms.saturating_add(n.asleep_ms);
        if n.asleep_ms > day.main.asleep_ms {
            day.main = *n;
        }
    }
    days.into_values().collect()
}

impl WakeDay {
    /// The day's sleep metrics: seconds asleep, and bed and wake times when plausible.
    pub fn metrics(&self, client: ClientId, now: DateTime<Utc>) -> Vec<DailyMetric> {
        let metric = |metric, value| DailyMetric { client_id: client, date: self.date, metric, value };
        let mut out = vec![metric(Metric::SleepS, self.asleep_ms as f64 / 1000.0)];
        if let Some((start, end)) = self.main.times(now) {
            out.push(metric(Metric::SleepStart, start));
            out.push(metric(Metric::SleepEnd, end));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const H: i64 = 3_600_000;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("a Berlin time")
            .timestamp_millis()
    }

    #[test]
    fn stretches_an_hour_apart_are_one_night_and_overlaps_count_once() {
        let bed = at(2026, 11, 20, 23, 10);
        let s = [(bed, bed + 3 * H), (bed + 3 * H + 50 * 60_000, bed + 7 * H), (bed + H, bed + 2 * H)];
        let n = nights(&s);
        assert_eq!(n, vec![Night { start_ms: bed, end_ms: bed + 7 * H, asleep_ms: 7 * H - 50 * 60_000 }]);
        // Two hours apart: two nights.
        assert_eq!(nights(&[(0, H), (3 * H, 4 * H)]).len(), 2);
        assert!(nights(&[(5, 5), (9, 3)]).is_empty(), "empty and backwards stretches are dropped");
    }

    #[test]
    fn a_night_across_midnight_is_dated_by_its_wake_up_day_and_a_nap_makes_no_bedtime() {
        let bed = at(2026, 11, 20, 23, 10);
        let wake = at(2026, 11, 21, 6, 40);
        let nap = (at(2026, 11, 21, 14, 0), at(2026, 11, 21, 14, 45));
        let days = wake_days(&nights(&[(bed, wake), nap]), chrono_tz::Europe::Berlin);
        assert_eq!(days.len(), 1, "{days:?}");
        let day = days[0];
        assert_eq!(day.date, NaiveDate::from_ymd_opt(2026, 11, 21).expect("date"));
        assert_eq!(day.asleep_ms, wake - bed + 45 * 60_000, "the nap is sleep on that day");
        assert_eq!((day.main.start_ms, day.main.end_ms), (bed, wake), "but not its bedtime");
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).single().expect("now");
        let m = day.metrics(7, now);
        let value = |metric| m.iter().find(|d| d.metric == metric).map(|d| d.value);
        assert_eq!(value(Metric::SleepStart), Some(bed as f64 / 1000.0));
        assert_eq!(value(Metric::SleepEnd), Some(wake as f64 / 1000.0));
        // In UTC the same night ends on the 21st as well, but starts on the 20th at 22:10.
        assert_eq!(wake_days(&nights(&[(bed, wake)]), chrono_tz::UTC)[0].date, day.date);
    }

    #[test]
    fn scored_periods_an_hour_apart_join_and_the_longest_night_of_a_day_is_its_main() {
        let bed = at(2026, 11, 20, 23, 40);
        let a = Night { start_ms: bed, end_ms: bed + 2 * H, asleep_ms: 100 * 60_000 };
        let b = Night { start_ms: bed + 2 * H + 30 * 60_000, end_ms: bed + 8 * H, asleep_ms: 320 * 60_000 };
        let nap = Night { start_ms: bed + 15 * H, end_ms: bed + 16 * H, asleep_ms: 50 * 60_000 };
        let nights = join_periods(vec![b, nap, a]);
        assert_eq!(nights.len(), 2, "{nights:?}");
        assert_eq!(nights[0], Night { start_ms: bed, end_ms: bed + 8 * H, asleep_ms: 420 * 60_000 });
        let tz = chrono_tz::Europe::Berlin;
        let mains = main_nights(&nights, tz, NaiveDate::from_ymd_opt(2026, 11, 21).expect("date"));
        assert_eq!(mains.len(), 1);
        assert_eq!(mains.values().next(), Some(&nights[0]), "the night, not the afternoon sleep");
        assert!(main_nights(&nights, tz, NaiveDate::from_ymd_opt(2026, 11, 22).expect("date")).is_empty());
    }

    #[test]
    fn implausible_nights_keep_their_sleep_but_give_no_times() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).single().expect("now");
        let long = Night { start_ms: at(2026, 11, 19, 20, 0), end_ms: at(2026, 11, 21, 7, 0), asleep_ms: 30 * H };
        assert_eq!(long.times(now), None, "over 24 h");
        let future = Night { start_ms: at(2026, 11, 23, 22, 0), end_ms: at(2026, 11, 24, 6, 0), asleep_ms: 8 * H };
        assert_eq!(future.times(now), None, "more than a day ahead");
        let old = Night { start_ms: 0, end_ms: 8 * H, asleep_ms: 8 * H };
        assert_eq!(old.times(now), None, "before 2000");
        let day = WakeDay { date: now.date_naive(), asleep_ms: 30 * H, main: long };
        assert_eq!(day.metrics(1, now).iter().map(|d| d.metric).collect::<Vec<_>>(), vec![Metric::SleepS]);
        let extreme = [(i64::MIN, i64::MAX), (i64::MAX - 1, i64::MAX)];
        for n in nights(&extreme) {
            assert_eq!(n.times(now), None);
        }
    }
}
