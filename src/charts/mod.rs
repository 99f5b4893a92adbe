//! Charts: the plain data each kind shows ([`Body`]), gathered from the store by
//! [`data`], drawn to SVG or PNG by [`render`].
//!
//! | kind | shows |
//! |---|---|
//! | adherence | calendar heatmap: a row per homework, a cell per day coloured by verdict |
//! | trend | weekly adherence per homework with the 80 % line |
//! | cardio | minutes per day stacked by HR zone, against the target |
//! | reps | reps per occurrence with a least-squares trend line |
//! | roster | every client's 7/30/90-day adherence, needs-attention first |
//! | session | one workout's HR curve with zone bands and its sources |
//! | progress | each benchmark over time, beside the weekly adherence of the homework linked to it |

pub mod data;
pub mod render;

use crate::engine::judge::Verdict;
use chrono::NaiveDate;
use serde::Serialize;

pub use render::render;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Adherence,
    Trend,
    Cardio,
    Reps,
    Roster,
    Session,
    Progress,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Self::Adherence, Self::Trend, Self::Cardio, Self::Reps, Self::Roster, Self::Session, Self::Progress];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adherence => "adherence",
            Self::Trend => "trend",
            Self::Cardio => "cardio",
            Self::Reps => "reps",
            Self::Roster => "roster",
            Self::Session => "session",
            Self::Progress => "progress",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the kind is about one client (all but the roster).
    pub fn per_client(self) -> bool {
        self != Self::Roster
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// From a file name's extension.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "svg" => Some(Self::Svg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }
}

/// A chart ready to draw: its titles and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Adherence(AdherenceData),
    Trend(TrendData),
    Cardio(CardioData),
    Reps(RepsData),
    Roster(RosterData),
    Session(SessionData),
    Progress(ProgressData),
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdherenceData {
    pub days: Vec<NaiveDate>,
    pub rows: Vec<Row>,
}

/// One homework: a cell per day of [`AdherenceData::days`], None where it did not apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub verdict: Verdict,
    pub self_reported: bool,
}

/// Adherence per Monday-Sunday week (0..=1), per homework.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendData {
    pub weeks: Vec<NaiveDate>,
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Minutes per day: no HR, then zones 1-5 (zone 1 includes everything below it).
#[derive(Clone, Debug, PartialEq)]
pub struct CardioData {
    pub days: Vec<NaiveDate>,
    pub minutes: Vec<[f64; 6]>,
    pub target: Option<f64>,
}

/// (date, reps, self-reported) per occurrence.
#[derive(Clone, Debug, PartialEq)]
pub struct RepsData {
    pub points: Vec<(NaiveDate, f64, bool)>,
    pub target: Option<f64>,
    /// Each occurrence's own target, when a progression makes them differ.
    pub targets: Vec<(NaiveDate, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RosterData {
    pub rows: Vec<RosterRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RosterRow {
    pub client: String,
    pub days7: Option<f64>,
    pub days30: Option<f64>,
    pub days90: Option<f64>,
    pub needs_attention: bool,
}

/// (minutes since start, bpm).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionData {
    pub samples: Vec<(f64, f64)>,
    pub hr_max: Option<f64>,
    pub sources: Vec<String>,
    /// What a machine or sensor recorded besides heart rate (power, cadence, speed,
    /// distance, strokes), a panel each under the heart rate.
    pub extra: Vec<SessionSeries>,
}

/// One series of a session: its axis label ("power, W") and (minutes since start, value).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A panel per benchmark test over `[from, to]`: its results and, when a homework is
/// linked to it, that homework's weekly adherence.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressData {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tests: Vec<ProgressTest>,
    /// Tests with results in the span that did not fit (the least recently measured).
    pub hidden: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProgressTest {
    /// The test, e.g. "max push-ups".
    pub name: String,
    pub unit: crate::store::benchmarks::Unit,
    /// (date, result), oldest first.
    pub points: Vec<(NaiveDate, f64)>,
    /// The homework of the test's latest linked result.
    pub homework: Option<LinkedHomework>,
}

/// A homework's adherence per Monday-Sunday week (0..=1; None where nothing counted).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkedHomework {
    pub label: String,
    pub weeks: Vec<(NaiveDate, Option<f64>)>,
}

/// The chart gallery (charts/ in the repository): every kind, drawn from the demo data
/// set as of `now`. Returns (file stem, chart).
pub async fn gallery(
    store: &crate::store::Store,
    judging: &data::Judging,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(&'static str, Chart)>, crate::store::StoreError> {
    let clients = store.list_clients().await?;
    let find = |name: &str| clients.iter().find(|c| c.name == name).cloned();
    let (Some(alex), Some(sam)) = (find("alex"), find("sam")) else {
        return Err(crate::store::StoreError::NotFound("the demo clients; run `coachd demo` first".into()));
    };
    let mut out = Vec::new();
    for (stem, kind, client) in [
        ("adherence", Kind::Adherence, Some(&alex)),
        ("trend", Kind::Trend, Some(&alex)),
        ("cardio", Kind::Cardio, Some(&alex)),
        ("reps", Kind::Reps, Some(&alex)),
        ("roster", Kind::Roster, None),
        ("session", Kind::Session, Some(&sam)),
        ("progress", Kind::Progress, Some(&alex)),
    ] {
        let req = data::Request { kind, client, clients: &clients, from: None, to: None, activity: None, now };
        out.push((stem, data::build(store, judging, &req).await?));
    }
    Ok(out)
}
