//! The providers' side of the web server: the OAuth callback that ends `coachd
//! connect` (shown in the browser of whoever authorized, usually the client) and
//! Strava's push-subscription endpoint.

use super::page::html;
use super::WebState;
use crate::providers::oauth::Callback;
use crate::providers::strava;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
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
                    "coachd now reads {}'s activities from {}. The first sync starts within a minute.",
                    o.client, o.provider
                ),
                true,
            ),
            Some(w) => page(StatusCode::OK, &format!("{} connected, but not enough", o.provider), &w, false),
        },
        Err(e) => {
            tracing::warn!(provider, error = %e, "authorization callback refused");
            page(StatusCode::BAD_REQUEST, "Not connected", &e, false)
        }
    }
}

#[derive(Deserialize)]
pub struct Challenge {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
}

/// `GET /webhooks/strava`: the subscription handshake.
pub async fn strava_challenge(State(state): State<WebState>, Query(q): Query<Challenge>) -> Response {
    let expected = state.app.strava_verify_token().await;
    let ok = q.mode.as_deref() == Some("subscribe")
        && expected
            .as_deref()
            .is_some_and(|e| q.verify_token.as_deref().is_some_and(|t| crate::crypto::same_secret(e, t)));
    match (ok, q.challenge) {
        (true, Some(c)) => Json(HashMap::from([("hub.challenge", c)])).into_response(),
        _ => (StatusCode::FORBIDDEN, "verify token mismatch").into_response(),
    }
}

/// `POST /webhooks/strava`: answered at once (Strava wants 200 within 2 s); the event
/// is acted on in the background.
pub async fn strava_event(State(state): State<WebState>, body: Bytes) -> Response {
    let event: strava::Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a Strava event: {e}")).into_response(),
    };
    tokio::spawn(async move {
        match state.app.strava_event(&event).await {
            Ok(what) => tracing::info!(owner = event.owner_id, object = event.object_id, what, "strava event"),
            Err(e) => tracing::warn!(owner = event.owner_id, error = %e, "strava event failed"),
        }
    });
    StatusCode::OK.into_response()
}

/// `POST /webhooks/polar`: deliveries signed with the webhook's secret key; anything
/// unsigned or signed wrongly is refused (401) and changes nothing.
pub async fn polar_event(State(state): State<WebState>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    let Some(secret) = state.app.polar_webhook_secret() else {
        return (StatusCode::NOT_FOUND, "Polar webhooks are not configured (providers.polar.webhook_secret)")
            .into_response();
    };
    let signature = headers.get("polar-webhook-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::providers::polar::signature_ok(&secret, &body, signature.trim()) {
        tracing::warn!("Polar webhook with a missing or wrong signature refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let delivery: crate::providers::polar::Delivery = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a Polar delivery: {e}")).into_response(),
    };
    match state.app.polar_delivery(&delivery).await {
        Ok(what) => tracing::info!(event = %delivery.event, what, "polar webhook"),
        Err(e) => tracing::warn!(event = %delivery.event, error = %e, "polar webhook failed"),
    }
    StatusCode::OK.into_response()
}
