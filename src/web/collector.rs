//! The endpoints remote collectors (`coachd collect`) call, each with the collector's
//! token (`Authorization: Bearer TOKEN`, from `coachd collector add NAME`):
//!
//! - `POST /collector/v1/batches`: gzip JSON `{"batches": [{"seq", "id", "batch"}]}`,
//!   where an item may carry `"file": {"client", "name", "size", "sha256", "data"}` (a
//!   file from the collector's inbox folder, bytes in base64) instead of `batch`;
//!   200 `{"applied", "repeated", "through", "samples"}`; 401 for an unknown or revoked
//!   token, 403 for a device not paired at the hub or a client outside the collector's
//!   scope (a folder naming no client, another trainer's client), 409 for a sequence
//!   number already applied with other content, 400 for a body that is not forwarded
//!   batches (or a file whose bytes and hash disagree); a refusal's JSON names the batch
//!   (`seq`) and nothing of the request is stored. A file the hub cannot read is no
//!   refusal: it is applied, and kept in the hub's quarantine.
//! - `GET /collector/v1/pairings`: `{"pairings": [{"address", "client_id", "tz"}],
//!   "scan": {"id", "seconds"} or null}`; `scan` is a scan asked with
//!   `coachd devices scan --collector NAME`, which the collector runs at once.
//! - `POST /collector/v1/scans/{id}`: the answer to that scan, `{"seen": [{"address",
//!   "name", "services", "rssi"}]}` or `{"error": "why it could not scan"}`; 404 when
//!   the request is not open (answered, or the hub gave up waiting).
//! - `PUT /collector/v1/status`: the collector's backlog, adapter and sensors in range.

use super::WebState;
use crate::app::collectors::CollectorRefusal;
use crate::store::collectors::{Collector, Report};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A request with a registered collector's token; a handler taking it cannot forget the check.
pub struct CollectorAuth(pub Collector);

fn refused(code: StatusCode, message: String, seq: Option<i64>) -> Response {
    (code, Json(json!({"status": "error", "error": message, "seq": seq}))).into_response()
}

impl IntoResponse for CollectorRefusal {
    fn into_response(self) -> Response {
        match self {
            CollectorRefusal::Unauthorized(m) => refused(StatusCode::UNAUTHORIZED, m, None),
            CollectorRefusal::Forbidden { message, seq } => refused(StatusCode::FORBIDDEN, message, Some(seq)),
            CollectorRefusal::Replayed { message, seq } => refused(StatusCode::CONFLICT, message, Some(seq)),
            CollectorRefusal::BadBody { message, seq } => refused(StatusCode::BAD_REQUEST, message, seq),
            CollectorRefusal::NotAsked(m) => refused(StatusCode::NOT_FOUND, m, None),
            CollectorRefusal::Failed(e) if e.is_disk_full() => {
                tracing::error!(error = %e, "forwarded batches refused: the disk is full");
                refused(StatusCode::INSUFFICIENT_STORAGE, e.to_string(), None)
            }
            CollectorRefusal::Failed(e) => {
                tracing::error!(error = %e, "forwarded batches failed");
                refused(StatusCode::INTERNAL_SERVER_ERROR, "the hub failed; the collector sends it again".into(), None)
            }
        }
    }
}

impl FromRequestParts<WebState> for CollectorAuth {
    type Rejection = CollectorRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        Ok(CollectorAuth(state.app.collector_by_token(token).await?))
    }
}

pub async fn batches(
    State(state): State<WebState>,
    CollectorAuth(collector): CollectorAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<crate::store::collectors::Applied>, CollectorRefusal> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    Ok(Json(state.app.collector_batches(&collector, &body, gzip).await?))
}

pub async fn pairings(
    State(state): State<WebState>,
    CollectorAuth(collector): CollectorAuth,
) -> Result<Json<serde_json::Value>, CollectorRefusal> {
    let pairings = state.app.collector_pairings(&collector).await?;
    let scan = state.app.collector_open_scan(&collector).await?;
    Ok(Json(json!({ "pairings": pairings, "scan": scan })))
}

pub async fn status(
    State(state): State<WebState>,
    CollectorAuth(collector): CollectorAuth,
    Json(report): Json<Report>,
) -> Result<Json<serde_json::Value>, CollectorRefusal> {
    state.app.collector_report(&collector, &report).await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// A collector's answer to a scan the hub asked of it.
#[derive(serde::Deserialize)]
pub struct ScanAnswer {
    #[serde(default)]
    seen: Vec<crate::store::collectors::Heard>,
    #[serde(default)]
    error: Option<String>,
}

pub async fn scan_answer(
    State(state): State<WebState>,
    CollectorAuth(collector): CollectorAuth,
    Path(id): Path<i64>,
    Json(answer): Json<ScanAnswer>,
) -> Result<Json<serde_json::Value>, CollectorRefusal> {
    let answer = match answer.error {
        Some(why) => Err(why),
        None => Ok(answer.seen),
    };
    state.app.collector_scan_answer(&collector, id, answer).await?;
    Ok(Json(json!({ "status": "ok" })))
}
