//! The providers' side of the web server: the OAuth callback that ends `coachd
//! connect` (shown in the browser of whoever authorized, usually the client) and every
//! provider's webhooks at `/webhooks/PROVIDER`.

use super::page::html;
use super::WebState;
use crate::app::{AppError, WebhookRefusal};
use crate::providers::oauth::Callback;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "oauth.html")]
struct Page {
    message: String,
    error: String,
    title: String,
    detail: String,
}

fn page(code: StatusCode, title: &str, detail: &str, ok: bool) -> Response {
    let (message, error) = if ok { (String::new(), String::new()) } else { (String::new(), detail.to_string()) };
    let mut r =
        html(Page { message, error, title: title.into(), detail: if ok { detail.into() } else { String::new() } });
    *r.status_mut() = code;
    r
}

pub async fn callback(
    State(state): State<WebState>,
    Path(provider): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    match state.app.finish_authorization(&provider, &q).await {
        Ok(o) => match o.warning {
            None => page(
                StatusCode::OK,
                &format!("{} connected", o.provider),
                &format!(
                    "coachd now reads {}'s data from {}. The first sync starts within a minute.",
                    o.client, o.provider
                ),
                true,
            ),
            Some(w) => page(StatusCode::OK, &format!("{} connected, but not enough", o.provider), &w, false),
        },
        Err(AppError::Runtime(e)) => {
            tracing::error!(provider, error = %e, "authorization callback failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not connected",
                "coachd could not finish the connection (the provider or coachd's database failed); try the link \
                 again later. The details are in coachd's log.",
                false,
            )
        }
        Err(e) => {
            tracing::warn!(provider, error = %e, "authorization callback refused");
            page(StatusCode::BAD_REQUEST, "Not connected", &e.to_string(), false)
        }
    }
}

fn refused(get: bool, e: WebhookRefusal) -> Response {
    let code = match e {
        WebhookRefusal::NotHere(_) => StatusCode::NOT_FOUND,
        // A handshake with the wrong token is forbidden; a delivery without a good
        // signature is unauthenticated.
        WebhookRefusal::Unauthorized(_) if get => StatusCode::FORBIDDEN,
        WebhookRefusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        WebhookRefusal::BadBody(_) => StatusCode::BAD_REQUEST,
    };
    (code, e.to_string()).into_response()
}

/// `HEAD /webhooks/PROVIDER`: a provider checking that its callback answers (Withings
/// does before it subscribes): 200 where the provider takes webhooks, else 404.
pub async fn probe(State(state): State<WebState>, Path(provider): Path<String>) -> Response {
    match state.app.webhook_probe(&provider) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(true, e),
    }
}

/// `GET /webhooks/PROVIDER`: a subscription handshake (Strava's `hub.challenge`, Oura's
/// `challenge`), answered with the JSON the provider expects.
pub async fn handshake(
    State(state): State<WebState>,
    Path(provider): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match state.app.webhook_handshake(&provider, &q).await {
        Ok(json) => Json(json).into_response(),
        Err(e) => refused(true, e),
    }
}

/// `POST /webhooks/PROVIDER`: a delivery, verified as the provider signs it (or taken as
/// a hint where it does not), answered 200 at once; anything refused changes nothing.
pub async fn delivery(
    State(state): State<WebState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.app.webhook_delivery(&provider, &headers, &body).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => refused(false, e),
    }
}
