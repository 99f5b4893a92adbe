//! The daemon's HTTP side (axum): `/healthz`, the Health Auto Export push endpoint, the
//! trainer's dashboard ([`dashboard`]), clients' private pages ([`share`]), the JSON API
//! ([`api`]) and `/metrics`.

// Handlers return a ready error page or JSON error (`Result<_, Response>`), the axum
// way; the error value is large but short-lived and on the error path only.
#[allow(clippy::result_large_err)]
pub mod api;
pub mod auth;
#[allow(clippy::result_large_err)]
pub mod dashboard;
pub mod metrics;
pub mod oauth;
pub mod roster;
#[allow(clippy::result_large_err)]
pub mod share;
pub mod view;

use crate::charts::data::Judging;
use crate::config::Config;
use crate::source::{Health, SourceHealth};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub health: Health,
    pub config: Arc<Config>,
    pub throttle: Arc<auth::Throttle>,
    pub roster: Arc<roster::RosterCache>,
    pub providers: Arc<crate::providers::Registry>,
    /// Cookies get `Secure` when the public URL is https (TLS at a reverse proxy).
    pub secure: bool,
}

impl WebState {
    pub fn new(store: Store, health: Health, config: Arc<Config>, providers: Arc<crate::providers::Registry>) -> Self {
        let secure = config.web.public_url.starts_with("https://");
        Self { store, health, config, throttle: Arc::default(), roster: Arc::default(), providers, secure }
    }

    pub fn judging(&self) -> Judging {
        Judging {
            cfg: self.config.homework.judge_config(),
            attention_drop: self.config.homework.attention_drop_points / 100.0,
        }
    }
}

/// Pushes carry up to a day or a week of per-second heart rate.
const PUSH_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Forms are small.
const FORM_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: WebState) -> Router {
    use dashboard as d;
    let pages = Router::new()
        .route("/", get(d::home))
        .route("/login", get(d::login_form).post(d::login))
        .route("/logout", post(d::logout))
        .route("/roster", get(d::roster))
        .route("/charts/{file}", get(d::roster_chart))
        .route("/clients", post(d::add_client))
        .route("/clients/{id}", get(d::client_page))
        .route("/clients/{id}/charts/{file}", get(d::chart))
        .route("/clients/{id}/workouts/{aid}", get(d::workout_page))
        .route("/clients/{id}/homework", post(d::assign))
        .route("/clients/{id}/homework/{hw}/end", post(d::end_homework))
        .route("/clients/{id}/excuse", post(d::excuse))
        .route("/clients/{id}/devices", post(d::pair))
        .route("/clients/{id}/share", post(d::share))
        .route("/clients/{id}/connect", post(d::connect))
        .route("/c/{token}", get(share::page))
        .route("/c/{token}/charts/{file}", get(share::chart))
        .route("/c/{token}/checkin", post(share::checkin))
        .route("/c/{token}/reflection", post(share::reflection))
        .route("/api/clients", get(api::clients))
        .route("/api/clients/{id}/status", get(api::client_status))
        .route("/api/clients/{id}/activities", get(api::activities))
        .route("/api/clients/{id}/homework", get(api::homework))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/ingest/health-auto-export", post(health_auto_export).layer(DefaultBodyLimit::max(PUSH_BODY_LIMIT)))
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .route(
            "/webhooks/strava",
            get(oauth::strava_challenge).post(oauth::strava_event).layer(DefaultBodyLimit::max(FORM_BODY_LIMIT)),
        )
        .route("/webhooks/polar", post(oauth::polar_event).layer(DefaultBodyLimit::max(FORM_BODY_LIMIT)))
        .merge(pages)
        .fallback(|| async { dashboard::not_found() })
        .with_state(state)
}

/// No framing by other sites, no sniffing, no referrer (private links live in URLs), no
/// scripts at all.
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    for (k, v) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
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
