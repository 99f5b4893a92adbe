//! The live page for the trainer in the room (`GET /live`), its events
//! (`GET /live/events`, server-sent, one `live` event a second with the
//! [`crate::app::live::LiveView`] JSON) and one snapshot of them (`GET /api/live`).
//! The only page with a script (`/live.js`, served from here); its CSP allows that one
//! script and connections back to this server, nothing else.

use super::api::ApiTrainer;
use super::page::{html, Page};
use super::session::{self, LoggedIn};
use super::WebState;
use crate::app::live::{LiveCache, LiveView, REFRESH};
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;

/// The live page's policy: the security headers' own, plus its one script and its events.
const LIVE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; \
                        style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const SCRIPT: &str = include_str!("../../templates/live.js");

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    rows: Vec<Row>,
    as_of: String,
}

/// One device's line, as text (the script writes the same cells).
struct Row {
    client: String,
    device: String,
    bpm: String,
    pct: String,
    zone: String,
    session: String,
    cardio: String,
    machine: String,
    battery: String,
    signal: String,
    homework: String,
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

fn rows(view: &LiveView) -> Vec<Row> {
    let mut out = Vec::new();
    for c in &view.clients {
        let homework = c
            .homework
            .iter()
            .map(|h| format!("{}: {:.0}/{:.0} {}", h.homework, h.achieved, h.target, h.unit))
            .collect::<Vec<_>>()
            .join("; ");
        for d in &c.devices {
            let mut machine: Vec<String> = Vec::new();
            machine.extend(d.power_w.map(|w| format!("{w} W")));
            machine.extend(d.cadence_rpm.map(|c| format!("{c:.0} /min")));
            machine.extend(d.speed_kmh.map(|s| format!("{s:.1} km/h")));
            out.push(Row {
                client: c.name.clone(),
                device: d.device.clone(),
                bpm: or_dash(d.bpm),
                pct: or_dash(d.pct_max),
                zone: or_dash(d.zone),
                session: format!("{:.1}", d.session_min),
                cardio: or_dash(d.cardio_min.map(|m| format!("{m:.1}"))),
                machine: if machine.is_empty() {
                    d.activity_type.to_string()
                } else {
                    format!("{}: {}", d.activity_type, machine.join(", "))
                },
                battery: or_dash(d.battery_pct.map(|b| format!("{b} %"))),
                signal: or_dash(d.rssi_dbm.map(|r| format!("{r} dBm"))),
                homework: if homework.is_empty() { "–".into() } else { homework.clone() },
            });
        }
    }
    out
}

pub async fn page(State(state): State<WebState>, me: LoggedIn) -> Page {
    let now = Utc::now();
    let view =
        state.app.live_view(me.session.trainer.id, state.live.snapshot(now), &mut LiveCache::default(), now).await?;
    let mut r = html(LivePage {
        message: String::new(),
        error: String::new(),
        trainer: me.session.trainer.name,
        csrf: me.session.csrf,
        rows: rows(&view),
        as_of: now.format("%Y-%m-%d %H:%M:%S").to_string(),
    });
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(LIVE_CSP));
    Ok(r)
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, LIVE_CSP),
        ],
        SCRIPT,
    )
        .into_response()
}

/// One snapshot, for scripts: the same JSON as each event.
pub async fn snapshot(
    State(state): State<WebState>,
    ApiTrainer(t): ApiTrainer,
) -> Result<Response, super::api::ApiError> {
    let now = Utc::now();
    let view = state.app.live_view(t, state.live.snapshot(now), &mut LiveCache::default(), now).await?;
    Ok(Json(view).into_response())
}

/// One `live` event a second, from memory. The session is checked again every
/// [`REFRESH`]: a trainer who logged out (or whose session expired) stops receiving.
pub async fn events(
    State(state): State<WebState>,
    ApiTrainer(trainer): ApiTrainer,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Stream_ {
        state: WebState,
        headers: HeaderMap,
        cache: LiveCache,
        tick: tokio::time::Interval,
        checked: chrono::DateTime<Utc>,
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Stream_ { state, headers, cache: LiveCache::default(), tick, checked: Utc::now() };
    let stream = futures_util::stream::unfold(start, move |mut s| async move {
        s.tick.tick().await;
        let now = Utc::now();
        if now - s.checked >= REFRESH {
            match session::session(&s.state, &s.headers).await {
                Ok(Some((_, live))) if live.trainer.id == trainer => s.checked = now,
                _ => return None,
            }
        }
        let event = match s.state.app.live_view(trainer, s.state.live.snapshot(now), &mut s.cache, now).await {
            Ok(view) => {
                Event::default().event("live").json_data(&view).unwrap_or_else(|_| Event::default().comment(""))
            }
            Err(e) => {
                tracing::warn!(error = %e, "live view failed");
                Event::default().event("failure").data("the live view failed; see the server's log")
            }
        };
        Some((Ok(event), s))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
