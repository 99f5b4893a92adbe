//! The daemon's HTTP side (axum). For now: `/healthz`. The dashboard, the OAuth
//! callbacks and the push endpoints mount here as they land.

use crate::source::{Health, SourceHealth};
use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub health: Health,
}

pub fn router(state: WebState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
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
