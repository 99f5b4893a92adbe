//! `POST /ingest/health-auto-export`: the iPhone app Health Auto Export pushes steps,
//! sleep, heart rate and workouts with the client's bearer token from `coachd push-token`.

use super::WebState;
use crate::app::PushRefused;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::json;

type Reply = (StatusCode, Json<serde_json::Value>);

fn reply(code: StatusCode, error: impl Into<String>) -> Reply {
    (code, Json(json!({ "status": "error", "error": error.into() })))
}

/// `POST /ingest/health-auto-export` with `Authorization: Bearer TOKEN` from `coachd push-token`.
pub async fn health_auto_export(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Reply {
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
    match state.app.health_auto_export(token, &body).await {
        Ok(p) => {
            tracing::info!(client = %p.client, activities = p.activities, days = p.days_updated, "health auto export push");
            let body = json!({"status": "ok", "activities": p.activities, "days_updated": p.days_updated, "rejected": p.rejected});
            (StatusCode::OK, Json(body))
        }
        Err(PushRefused::AllRejected(items)) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "status": "error",
                "error": format!("nothing could be stored: all {} items were rejected", items.len()),
                "rejected": items,
            })),
        ),
        Err(PushRefused::Unauthorized(why)) => reply(StatusCode::UNAUTHORIZED, why),
        Err(PushRefused::BadBody(why)) => reply(StatusCode::BAD_REQUEST, why),
        // A full disk: nothing stored; the phone sends it again later.
        Err(PushRefused::Failed(e)) if e.is_disk_full() => {
            tracing::error!(error = %e, "health auto export push refused: the disk is full");
            reply(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
        }
        Err(PushRefused::Failed(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
