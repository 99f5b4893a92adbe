//! The JSON API: what the dashboard's pages show, behind the same login (the session
//! cookie). A missing session is 401; another trainer's client is 404.
//!
//! | route | gives |
//! |---|---|
//! | `GET /api/clients` | the roster: each client's 7/30/90-day adherence and needs-attention |
//! | `GET /api/clients/{id}/status?from=&to=` | the `coachd status --json` shape for one client; an answered questions occurrence also carries `answered_on` and `answers` |
//! | `GET /api/clients/{id}/activities?from=&to=` | workouts merged across sources |
//! | `GET /api/clients/{id}/homework` | the client's homework |
//! | `GET /api/clients/{id}/answers?from=&to=` | answers to questions homework, per occurrence, newest first |
//! | `GET /api/clients/{id}/benchmarks?test=` | the client's benchmarks, as `coachd benchmarks --json` |

use super::session;
use super::WebState;
use crate::app::AppError;
use crate::store::Client;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

type Api = Result<Response, ApiError>;

/// An API error as JSON: `{"error": "..."}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        super::WebError::from(e).into()
    }
}

/// The same kinds as a page's error, as JSON.
impl From<super::WebError> for ApiError {
    fn from(e: super::WebError) -> Self {
        match e {
            super::WebError::Input { detail, .. } => Self(StatusCode::BAD_REQUEST, detail),
            super::WebError::NotFound => Self(StatusCode::NOT_FOUND, "not found".into()),
            other => {
                tracing::error!(error = ?other, "API request failed");
                Self(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server's log".into())
            }
        }
    }
}

/// The trainer of an API request; without a session, 401 (no redirect, it is not a page).
pub struct ApiTrainer(pub crate::store::web::TrainerId);

impl FromRequestParts<WebState> for ApiTrainer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        match session::session(state, &parts.headers).await? {
            Some((_, s)) => Ok(Self(s.trainer.id)),
            None => Err(ApiError(StatusCode::UNAUTHORIZED, "log in at /login first (session cookie)".into())),
        }
    }
}

#[derive(Serialize)]
struct RosterJson {
    id: i64,
    name: String,
    tz: String,
    homework: usize,
    days7: Option<f64>,
    days30: Option<f64>,
    days90: Option<f64>,
    needs_attention: bool,
}

pub async fn clients(State(state): State<WebState>, ApiTrainer(t): ApiTrainer) -> Api {
    let roster = state.roster.get(&state, t).await?;
    let rows: Vec<RosterJson> = roster
        .rows
        .iter()
        .map(|e| RosterJson {
            id: e.client.id,
            name: e.client.name.clone(),
            tz: e.client.tz.name().to_string(),
            homework: e.homework,
            days7: e.row.as_ref().and_then(|r| r.days7),
            days30: e.row.as_ref().and_then(|r| r.days30),
            days90: e.row.as_ref().and_then(|r| r.days90),
            needs_attention: e.row.as_ref().is_some_and(|r| r.needs_attention),
        })
        .collect();
    Ok(Json(json!({ "as_of": roster.computed, "clients": rows })).into_response())
}

#[derive(Deserialize, Default)]
pub struct Span {
    from: Option<String>,
    to: Option<String>,
}

fn span(client: &Client, q: &Span, default_days: i64) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let now = Utc::now();
    let parse = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|s| crate::time::parse_day(s, client.tz, now, what).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e)))
            .transpose()
    };
    let to = parse(&q.to, "to")?.unwrap_or_else(|| crate::time::today(client.tz, now));
    let from = parse(&q.from, "from")?.unwrap_or(to - Duration::days(default_days - 1));
    if from > to || (to - from).num_days() > 3 * 366 {
        return Err(ApiError(StatusCode::BAD_REQUEST, "from must be before to, at most three years apart".into()));
    }
    Ok((from, to))
}

pub async fn client_status(
    State(state): State<WebState>,
    ApiTrainer(t): ApiTrainer,
    Path(id): Path<i64>,
    Query(q): Query<Span>,
) -> Api {
    let client = state.app.client_of(t, id).await?;
    let (from, to) = span(&client, &q, 7)?;
    let report = state.app.status(std::slice::from_ref(&client), from, to, Utc::now()).await?;
    // A weekly occurrence is dated by its Monday, up to 6 days before `from`.
    let answered = state.app.answers(&client, from - Duration::days(6), to).await?;
    let occurrences = report
        .occurrences
        .iter()
        .map(|o| {
            let a = answered.iter().find(|a| a.homework_id == o.homework_id && a.occurrence == o.date);
            OccurrenceJson { occurrence: o, answered_on: a.map(|a| a.answered_on), answers: a.map(|a| &a.answers[..]) }
        })
        .collect();
    Ok(Json(StatusJson { occurrences, adherence: &report.adherence }).into_response())
}

/// An occurrence as `status --json` has it; with the answers when it is an answered
/// questions occurrence.
#[derive(Serialize)]
struct OccurrenceJson<'a> {
    #[serde(flatten)]
    occurrence: &'a crate::engine::judge::Occurrence,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<&'a [crate::app::questions::AnswerItem]>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    occurrences: Vec<OccurrenceJson<'a>>,
    adherence: &'a [crate::engine::adherence::Adherence],
}

/// Answers to the client's questions homework, by occurrence [default: the last 28 days].
pub async fn answers(
    State(state): State<WebState>,
    ApiTrainer(t): ApiTrainer,
    Path(id): Path<i64>,
    Query(q): Query<Span>,
) -> Api {
    let client = state.app.client_of(t, id).await?;
    let (from, to) = span(&client, &q, 28)?;
    Ok(Json(state.app.answers(&client, from, to).await?).into_response())
}

#[derive(Serialize)]
struct WorkoutJson {
    id: i64,
    start: chrono::DateTime<Utc>,
    end: chrono::DateTime<Utc>,
    #[serde(rename = "type")]
    activity_type: String,
    category: crate::model::Category,
    duration_s: f64,
    avg_hr: Option<f64>,
    max_hr: Option<u16>,
    hr_samples: u32,
    sources: Vec<String>,
    members: Vec<i64>,
}

pub async fn activities(
    State(state): State<WebState>,
    ApiTrainer(t): ApiTrainer,
    Path(id): Path<i64>,
    Query(q): Query<Span>,
) -> Api {
    let client = state.app.client_of(t, id).await?;
    let (from, to) = span(&client, &q, 30)?;
    let items: Vec<WorkoutJson> = state
        .app
        .workouts(&client, from, to)
        .await?
        .into_iter()
        .map(|w| WorkoutJson {
            id: w.id,
            start: w.start,
            end: w.end,
            activity_type: w.activity_type,
            category: w.category,
            duration_s: w.duration_s,
            avg_hr: w.avg_hr,
            max_hr: w.max_hr,
            hr_samples: w.hr_samples,
            sources: w.sources,
            members: w.parts.iter().map(|p| p.id).collect(),
        })
        .collect();
    Ok(Json(items).into_response())
}

pub async fn homework(State(state): State<WebState>, ApiTrainer(t): ApiTrainer, Path(id): Path<i64>) -> Api {
    let client = state.app.client_of(t, id).await?;
    let rows = state.app.homework_list(Some(&client)).await?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let h = &r.homework;
            json!({"id": h.id, "text": h.text, "rule": h.rule, "from": h.from, "until": h.until})
        })
        .collect();
    Ok(Json(items).into_response())
}

#[derive(Deserialize, Default)]
pub struct TestQuery {
    test: Option<String>,
}

pub async fn benchmarks(
    State(state): State<WebState>,
    ApiTrainer(t): ApiTrainer,
    Path(id): Path<i64>,
    Query(q): Query<TestQuery>,
) -> Api {
    let client = state.app.client_of(t, id).await?;
    Ok(Json(state.app.benchmarks(&client, q.test.as_deref()).await?).into_response())
}
