//! The daemon's HTTP side (axum): `/healthz` and the Health Auto Export push endpoint.
//! The dashboard and the OAuth callbacks mount here as they land.

use crate::source::{Health, SourceHealth};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub health: Health,
}

/// Pushes carry up to a day or a week of per-second heart rate.
const PUSH_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/ingest/health-auto-export", post(health_auto_export).layer(DefaultBodyLimit::max(PUSH_BODY_LIMIT)))
        .with_state(state)
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn reply(code: StatusCode, error: impl Into<String>) -> Reply {
    (code, Json(json!({ "status": "error", "error": error.into() })))
}

/// `POST /ingest/health-auto-export` with `Authorization: Bearer TOKEN` from `coachd push-token`.
async fn health_auto_export(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Reply {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return reply(
            StatusCode::UNAUTHORIZED,
            "missing header Authorization: Bearer TOKEN (coachd push-token CLIENT prints it)",
        );
    };
    let client = match state.store.client_for_push_token(token).await {
        Ok(Some(id)) => match state.store.client_by_id(id).await {
            Ok(c) => c,
            Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(None) => return reply(StatusCode::UNAUTHORIZED, "unknown or revoked token"),
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let tz = match crate::status::client_tz(&client) {
        Ok(tz) => tz,
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let batch = match crate::files::hae::parse(&body, client.id, tz) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(client = %client.name, error = %e, "health auto export push refused");
            return reply(StatusCode::BAD_REQUEST, e);
        }
    };
    match state.store.ingest(&batch).await {
        Ok(r) => {
            tracing::info!(client = %client.name, activities = batch.activities.len(), days = r.daily_written, "health auto export push");
            (
                StatusCode::OK,
                Json(json!({"status": "ok", "activities": batch.activities.len(), "days_updated": r.daily_written})),
            )
        }
        Err(crate::store::StoreError::Invalid(p)) => reply(StatusCode::BAD_REQUEST, p.join("; ")),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Serialize)]
struct HealthReport {
    /// `ok` when the database answers; `degraded` when it answers but a source is failing;
    /// `error` when the database does not answer (HTTP 503).
    status: &'static str,
    version: &'static str,
    database: String,
    sources: Vec<SourceHealth>,
}

async fn healthz(State(state): State<WebState>) -> (StatusCode, Json<HealthReport>) {
    let sources = state.health.snapshot();
    let (code, status, database) = match state.store.ping().await {
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, "error", e.to_string()),
        Ok(()) if sources.iter().any(|s| s.state == crate::source::SourceState::Backoff) => {
            (StatusCode::OK, "degraded", "ok".to_string())
        }
        Ok(()) => (StatusCode::OK, "ok", "ok".to_string()),
    };
    (code, Json(HealthReport { status, version: env!("CARGO_PKG_VERSION"), database, sources }))
}
