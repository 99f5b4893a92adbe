//! Adherence over 7/30/90 days and per Monday-Sunday week, streaks, needs-attention.
//!
//! adherence = (done + ½ partial) / (occurrences − excused − pending), as TrueCoach
//! computes compliance; `needs_attention` when any window drops by the configured points
//! (default 20) against the window just before it.

use super::judge::Verdict;
use crate::time::monday;
use chrono::{Duration, NaiveDate};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeekAdherence {
    pub week: NaiveDate,
    pub adherence: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Adherence {
    pub client: String,
    pub homework_id: i64,
    pub days7: Option<f64>,
    pub days30: Option<f64>,
    pub days90: Option<f64>,
    /// Consecutive done occurrences up to the latest judged one (excused ones do not break it).
    pub streak: u32,
    pub needs_attention: bool,
    /// The last 12 Monday-Sunday weeks, oldest first.
    pub weeks: Vec<WeekAdherence>,
}

/// Adherence of the occurrences whose date is in `[from, to]`; None when nothing there counts.
pub fn rate(occs: &[(NaiveDate, Verdict)], from: NaiveDate, to: NaiveDate) -> Option<f64> {
    let (mut score, mut count) = (0.0, 0u32);
    for (_, verdict) in occs.iter().filter(|(d, _)| *d >= from && *d <= to) {
        match verdict {
            Verdict::Excused | Verdict::Pending => {}
            Verdict::Done => (score, count) = (score + 1.0, count + 1),
            Verdict::Partial => (score, count) = (score + 0.5, count + 1),
            Verdict::Missed | Verdict::NoData => count += 1,
        }
    }
    (count > 0).then(|| ((score / f64::from(count)) * 1000.0).round() / 1000.0)
}

/// `occs`: one homework's (date, verdict) pairs, any order, covering at least the last 180 days.
pub fn adherence(
    client: &str,
    homework_id: i64,
    occs: &[(NaiveDate, Verdict)],
    today: NaiveDate,
    drop: f64,
) -> Adherence {
    let window = |days: i64, back: i64| {
        let to = today - Duration::days(days * back);
        rate(occs, to - Duration::days(days - 1), to)
    };
    let needs_attention = [7, 30, 90].iter().any(|&n| match (window(n, 0), window(n, 1)) {
        (Some(now), Some(before)) => before - now >= drop - 1e-9,
        _ => false,
    });
    let mut sorted: Vec<&(NaiveDate, Verdict)> = occs.iter().filter(|(d, _)| *d <= today).collect();
    sorted.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
    let mut streak = 0;
    for (_, verdict) in sorted {
        match verdict {
            Verdict::Pending | Verdict::Excused => continue,
            Verdict::Done => streak += 1,
            _ => break,
        }
    }
    let this_week = monday(today);
    let weeks = (0..12)
        .rev()
        .map(|i| {
            let week = this_week - Duration::days(7 * i);
            WeekAdherence { week, adherence: rate(occs, week, week + Duration::days(6)) }
        })
        .collect();
    Adherence {
        client: client.into(),
        homework_id,
        days7: window(7, 0),
        days30: window(30, 0),
        days90: window(90, 0),
        streak,
        needs_attention,
        weeks,
    }
}
