//! The JSON API: what the dashboard's pages show, behind the same login (the session
//! cookie). A missing session is 401; another trainer's client is 404.
//!
//! | route | gives |
//! |---|---|
//! | `GET /api/clients` | the roster: each client's 7/30/90-day adherence and needs-attention |
//! | `GET /api/clients/{id}/status?from=&to=` | the `coachd status --json` shape for one client |
//! | `GET /api/clients/{id}/activities?from=&to=` | workouts merged across sources |
//! | `GET /api/clients/{id}/homework` | the client's homework |

use super::auth;
use super::WebState;
use crate::status::{self, client_tz};
use crate::store::{Client, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

type Api = Result<Response, Response>;

fn error(code: StatusCode, msg: &str) -> Response {
    (code, Json(json!({ "error": msg }))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found"),
        StoreError::Invalid(p) => error(StatusCode::BAD_REQUEST, &p.join("; ")),
        other => {
            tracing::error!(error = %other, "API request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server's log")
        }
    }
}

async fn trainer(state: &WebState, headers: &HeaderMap) -> Result<i64, Response> {
    match auth::session(&state.store, headers).await.map_err(store_error)? {
        Some((_, s)) => Ok(s.trainer.id),
        None => Err(error(StatusCode::UNAUTHORIZED, "log in at /login first (session cookie)")),
    }
}

async fn my_client(state: &WebState, headers: &HeaderMap, id: i64) -> Result<Client, Response> {
    let t = trainer(state, headers).await?;
    state.store.client_of(t, id).await.map_err(store_error)
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

pub async fn clients(State(state): State<WebState>, headers: HeaderMap) -> Api {
    let t = trainer(&state, &headers).await?;
    let roster = state.roster.get(&state, t).await.map_err(store_error)?;
    let rows: Vec<RosterJson> = roster
        .rows
        .iter()
        .map(|e| RosterJson {
            id: e.client.id,
            name: e.client.name.clone(),
            tz: e.client.tz.clone(),
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

fn span(client: &Client, q: &Span, default_days: i64) -> Result<(NaiveDate, NaiveDate), Response> {
    let tz = client_tz(client).map_err(store_error)?;
    let parse = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|s| {
                crate::cli::homework::parse_date(s, tz, what).map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        &format!("{what}={s:?} is not a date (YYYY-MM-DD, today, yesterday)"),
                    )
                })
            })
            .transpose()
    };
    let to = parse(&q.to, "to")?.unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    let from = parse(&q.from, "from")?.unwrap_or(to - Duration::days(default_days - 1));
    if from > to || (to - from).num_days() > 3 * 366 {
        return Err(error(StatusCode::BAD_REQUEST, "from must be before to, at most three years apart"));
    }
    Ok((from, to))
}

pub async fn client_status(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Span>,
) -> Api {
    let client = my_client(&state, &headers, id).await?;
    let (from, to) = span(&client, &q, 7)?;
    let j = state.judging();
    let clients = std::slice::from_ref(&client);
    let (report, _) = status::status(&state.store, &j.cfg, j.attention_drop, clients, from, to, Utc::now())
        .await
        .map_err(store_error)?;
    Ok(Json(report).into_response())
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
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Span>,
) -> Api {
    let client = my_client(&state, &headers, id).await?;
    let (from, to) = span(&client, &q, 30)?;
    let tz = client_tz(&client).map_err(store_error)?;
    let ev = state.store.evidence(client.id, tz, from, to).await.map_err(store_error)?;
    let items: Vec<WorkoutJson> = ev
        .workouts
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

pub async fn homework(State(state): State<WebState>, headers: HeaderMap, Path(id): Path<i64>) -> Api {
    let client = my_client(&state, &headers, id).await?;
    let rows = state.store.list_homework(Some(client.id)).await.map_err(store_error)?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let h = &r.homework;
            json!({"id": h.id, "text": h.text, "rule": h.rule, "from": h.from, "until": h.until})
        })
        .collect();
    Ok(Json(items).into_response())
}
