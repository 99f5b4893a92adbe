//! The daemon's HTTP side (axum). Every module is a thin front end over
//! [`crate::app`]: it turns a request into an application call and the answer (or
//! [`page::WebError`]) into a response. Nothing here imports `cli/`.
//!
//! - [`page`]: templates, error pages, redirects with a message, [`page::WebError`].
//! - [`session`]: the session cookie, the [`session::LoggedIn`] and [`session::CsrfForm`]
//!   extractors, login throttling; [`proxy`]: the client's address behind trusted proxies.
//! - pages: [`login`], [`roster`] (with its cache), [`live`] (who is recording now, with
//!   its server-sent events), [`client`] (and its forms), [`data`]
//!   (a client's export and removal),
//!   [`workout`], [`charts`], [`share`] (a client's private link), [`view`] (the week
//!   both client pages show), [`nudge`] (the signed links in a reminder).
//! - machines: [`api`] (JSON behind the session), [`push`] (Health Auto Export),
//!   [`collector`] (remote Bluetooth collectors forwarding batches, with their token),
//!   [`oauth`] (authorization callback, webhooks), [`metrics`], `/healthz` here.

pub mod api;
pub mod charts;
pub mod client;
pub mod collector;
pub mod data;
pub mod live;
pub mod login;
pub mod metrics;
pub mod nudge;
pub mod oauth;
pub mod page;
pub mod proxy;
pub mod push;
pub mod roster;
pub mod session;
pub mod share;
pub mod view;
pub mod workout;

pub use page::WebError;

use crate::app::App;
use crate::source::{Health, SourceHealth};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct WebState {
    pub app: App,
    pub health: Health,
    pub throttle: Arc<session::Throttle>,
    pub roster: Arc<roster::RosterCache>,
    /// Cookies get `Secure` when the public URL is https (TLS at a reverse proxy).
    pub secure: bool,
    /// What is being recorded right now (the daemon's sources feed it).
    pub live: crate::live::Live,
}

impl WebState {
    pub fn for_app(app: App, health: Health) -> Self {
        let secure = app.config.web.public_url.starts_with("https://");
        Self {
            app,
            health,
            throttle: Arc::default(),
            roster: Arc::default(),
            secure,
            live: crate::live::Live::default(),
        }
    }
}

/// Pushes carry up to a day or a week of per-second heart rate.
const PUSH_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Forms are small.
const FORM_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: WebState) -> Router {
    let pages = Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/roster", get(roster::page))
        .route("/live", get(live::page))
        .route("/live.js", get(live::script))
        .route("/live/events", get(live::events))
        .route("/api/live", get(live::snapshot))
        .route("/charts/{file}", get(charts::roster))
        .route("/clients", post(roster::add_client))
        .route("/channel", post(client::own_channel))
        .route("/clients/{id}", get(client::page))
        .route("/clients/{id}/charts/{file}", get(charts::client))
        .route("/clients/{id}/workouts/{aid}", get(workout::page))
        .route("/clients/{id}/homework", post(client::assign))
        .route("/clients/{id}/homework/{hw}/end", post(client::end_homework))
        .route("/clients/{id}/questions", post(client::assign_questions))
        .route("/clients/{id}/excuse", post(client::excuse))
        .route("/clients/{id}/benchmarks", post(client::record_benchmark))
        .route("/clients/{id}/benchmarks/{bid}/remove", post(client::remove_benchmark))
        .route("/clients/{id}/devices", post(client::pair))
        .route("/clients/{id}/share", post(client::share))
        .route("/clients/{id}/channel", post(client::channel))
        .route("/clients/{id}/connect", post(client::connect))
        .route("/clients/{id}/disconnect", post(client::disconnect))
        .route("/clients/{id}/export", post(data::export))
        .route("/clients/{id}/remove", post(data::remove))
        .route("/c/{token}", get(share::page))
        .route("/c/{token}/charts/{file}", get(share::chart))
        .route("/c/{token}/checkin", post(share::checkin))
        .route("/c/{token}/reflection", post(share::reflection))
        .route("/c/{token}/answers", post(share::answers))
        .route("/c/{token}/connect", post(share::connect_key))
        .route("/c/{token}/connect/{provider}", get(share::connect_start))
        .route("/c/{token}/disconnect", post(share::disconnect))
        .route("/c/{token}/push-token", post(share::push_token))
        .route("/n/{id}/{action}/{exp}/{mac}", get(nudge::show).post(nudge::take))
        .route("/api/clients", get(api::clients))
        .route("/api/clients/{id}/status", get(api::client_status))
        .route("/api/clients/{id}/activities", get(api::activities))
        .route("/api/clients/{id}/homework", get(api::homework))
        .route("/api/clients/{id}/answers", get(api::answers))
        .route("/api/clients/{id}/benchmarks", get(api::benchmarks))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/ingest/health-auto-export",
            post(push::health_auto_export).layer(DefaultBodyLimit::max(PUSH_BODY_LIMIT)),
        )
        .route(
            "/c/{token}/upload",
            post(share::upload)
                .layer(DefaultBodyLimit::max(share::UPLOAD_LIMIT + 64 * 1024))
                .layer(axum::middleware::map_response(security_headers)),
        )
        .route("/collector/v1/batches", post(collector::batches).layer(DefaultBodyLimit::max(PUSH_BODY_LIMIT)))
        .route("/collector/v1/pairings", get(collector::pairings))
        .route(
            "/collector/v1/scans/{id}",
            post(collector::scan_answer).layer(DefaultBodyLimit::max(FORM_BODY_LIMIT * 16)),
        )
        .route(
            "/collector/v1/status",
            axum::routing::put(collector::status).layer(DefaultBodyLimit::max(FORM_BODY_LIMIT * 16)),
        )
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .route(
            "/webhooks/{provider}",
            // HEAD before GET: axum would otherwise answer HEAD with the handshake.
            head(oauth::probe)
                .get(oauth::handshake)
                .post(oauth::delivery)
                .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT)),
        )
        .merge(pages)
        .fallback(|| async { page::not_found() })
        .with_state(state)
}

/// No framing by other sites, no sniffing, no referrer (private links live in URLs), no
/// scripts at all (the live page alone sets its own policy, allowing its one script).
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    if h.contains_key(header::CONTENT_SECURITY_POLICY) {
        for (k, v) in [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        return r;
    }
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

#[derive(Serialize)]
struct HealthReport {
    /// `ok` when the database answers; `degraded` when it answers but a source is failing;
    /// `error` when the database does not answer (HTTP 503).
    status: &'static str,
    version: &'static str,
    database: String,
    sources: Vec<SourceHealth>,
    /// The last backup (the daemon's daily one or `coachd backup`); null before the first.
    backup: Option<BackupHealth>,
}

#[derive(Serialize)]
struct BackupHealth {
    last: String,
    age_seconds: i64,
    file: String,
}

async fn healthz(State(state): State<WebState>) -> (StatusCode, Json<HealthReport>) {
    let sources = state.health.snapshot();
    let (code, status, database) = match state.app.ping().await {
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, "error", e.to_string()),
        Ok(()) if sources.iter().any(|s| s.state == crate::source::SourceState::Backoff) => {
            (StatusCode::OK, "degraded", "ok".to_string())
        }
        Ok(()) => (StatusCode::OK, "ok", "ok".to_string()),
    };
    let backup = match state.app.last_backup().await {
        Ok(b) => b.map(|(at, file)| BackupHealth {
            last: at.to_rfc3339(),
            age_seconds: (chrono::Utc::now() - at).num_seconds(),
            file,
        }),
        Err(_) => None,
    };
    (code, Json(HealthReport { status, version: env!("CARGO_PKG_VERSION"), database, sources, backup }))
}
