//! What the trainer's client page and the client's own page show of a week: one row
//! per homework, a symbol per day, and the week's verdicts with their evidence.

use super::WebState;
use crate::app::AppResult;
use crate::engine::judge::{EvidenceRef, Occurrence, Verdict};
use crate::status;
use crate::store::Client;
use crate::time::monday;
use chrono::{DateTime, Duration, NaiveDate, Utc};

pub struct Cell {
    pub symbol: String,
    pub class: &'static str,
    pub title: String,
    /// The evidence page, when the viewer may open it.
    pub href: String,
}

pub struct WeekRow {
    pub id: i64,
    pub text: String,
    pub cells: Vec<Cell>,
}

pub struct EvidenceLine {
    pub text: String,
    pub href: String,
}

pub struct OccurrenceLine {
    pub date: String,
    pub homework: String,
    pub verdict: &'static str,
    pub class: &'static str,
    pub self_reported: bool,
    pub achieved: String,
    pub evidence: Vec<EvidenceLine>,
}

pub struct Week {
    pub days: Vec<String>,
    pub rows: Vec<WeekRow>,
    pub occurrences: Vec<OccurrenceLine>,
    pub report: status::StatusReport,
}

pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0} %", v * 100.0)).unwrap_or_else(|| "–".into())
}

pub fn symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Done => "✔",
        Verdict::Partial => "◐",
        Verdict::Missed => "✘",
        Verdict::Excused => "–",
        Verdict::Pending => "○",
        Verdict::NoData => "·",
    }
}

pub fn label(v: Verdict) -> &'static str {
    match v {
        Verdict::NoData => "no data",
        other => other.as_str(),
    }
}

fn amount(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// This Monday-Sunday week of a client. `links_for`: the client id whose workout pages
/// the viewer may open (a trainer), or None (the client's own page).
pub async fn week_view(
    state: &WebState,
    client: &Client,
    now: DateTime<Utc>,
    links_for: Option<i64>,
) -> AppResult<Week> {
    let today = crate::time::today(client.tz, now);
    let from = monday(today);
    let days: Vec<NaiveDate> = (0..7).map(|i| from + Duration::days(i)).collect();
    let report = state.app.status(std::slice::from_ref(client), from, today, now).await?;
    let homework = state.app.homework_list(Some(client)).await?;
    let mut rows = Vec::new();
    for h in homework.iter().map(|r| &r.homework).filter(|h| days.iter().any(|d| h.active_on(*d))) {
        let cells = days
            .iter()
            .map(|d| {
                let o =
                    report.occurrences.iter().filter(|o| o.homework_id == h.id).find(|o| o.covers(*d) && *d <= today);
                match o {
                    None => Cell { symbol: String::new(), class: "none", title: String::new(), href: String::new() },
                    Some(o) => {
                        let mut symbol = symbol(o.verdict).to_string();
                        if o.self_reported {
                            symbol.push('*');
                        }
                        let mut title =
                            format!("{}: {} of {} {}", label(o.verdict), amount(o.achieved), amount(o.target), o.unit);
                        if let Some(note) = &o.note {
                            title = format!("{title}. {note}");
                        }
                        let href = links_for
                            .and_then(|c| {
                                o.evidence.iter().find_map(|e| match e {
                                    EvidenceRef::Activity { activity_id, .. } => {
                                        Some(format!("/clients/{c}/workouts/{activity_id}"))
                                    }
                                    _ => None,
                                })
                            })
                            .unwrap_or_default();
                        Cell { symbol, class: o.verdict.as_str(), title, href }
                    }
                }
            })
            .collect();
        rows.push(WeekRow { id: h.id, text: h.text.to_string(), cells });
    }
    let mut occurrences: Vec<OccurrenceLine> =
        report.occurrences.iter().map(|o| occurrence_line(o, links_for)).collect();
    occurrences.reverse();
    Ok(Week { days: days.iter().map(|d| d.format("%a %-d").to_string()).collect(), rows, occurrences, report })
}

/// Hours after midnight as a clock time: 23.5 is 23:30, 24.5 is 00:30.
fn clock(hours: f64) -> String {
    let minutes = (hours * 60.0).round().rem_euclid(24.0 * 60.0) as u32;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn occurrence_line(o: &Occurrence, links_for: Option<i64>) -> OccurrenceLine {
    let mut evidence: Vec<EvidenceLine> = o
        .evidence
        .iter()
        .map(|e| match e {
            EvidenceRef::Activity { activity_id, sources, amount: a } => EvidenceLine {
                text: format!("workout {activity_id} ({}; {} {})", sources.join(", "), amount(*a), o.unit),
                href: links_for.map(|c| format!("/clients/{c}/workouts/{activity_id}")).unwrap_or_default(),
            },
            EvidenceRef::Metric { metric, date, value, sources } => EvidenceLine {
                text: match metric.as_str() {
                    // Clock times come as hours after the evening's midnight (24.5 is 00:30).
                    "sleep_start" => format!("asleep at {} (night to {date}; {})", clock(*value), sources.join(", ")),
                    "sleep_end" => format!("awake at {} on {date} ({})", clock(*value), sources.join(", ")),
                    _ => format!("{metric} {} on {date} ({})", amount(*value), sources.join(", ")),
                },
                href: String::new(),
            },
            EvidenceRef::Checkin { checkin_id, date, value, .. } => EvidenceLine {
                text: format!(
                    "check-in #{checkin_id} for {date}{}",
                    value.map(|v| format!(": {}", amount(v))).unwrap_or_default()
                ),
                href: String::new(),
            },
        })
        .collect();
    if let Some(note) = &o.note {
        evidence.push(EvidenceLine { text: note.clone(), href: String::new() });
    }
    let date = if o.period == "week" { format!("week of {}", o.date) } else { o.date.to_string() };
    OccurrenceLine {
        date,
        homework: o.homework.to_string(),
        verdict: label(o.verdict),
        class: o.verdict.as_str(),
        self_reported: o.self_reported,
        achieved: format!("{} / {} {}", amount(o.achieved), amount(o.target), o.unit),
        evidence,
    }
}

/// A channel's state as a page shows it: `ok`, `untested`, or `failing: WHY`.
pub fn channel_state(c: &crate::store::notify::ChannelStatus) -> String {
    match &c.last_error {
        Some(e) if c.state == "failing" => format!("failing: {e}"),
        _ => c.state.clone(),
    }
}
