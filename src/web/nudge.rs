//! The links in a nudge: `/n/ID/ACTION/EXPIRY/SIGNATURE`. The link is the key (signed
//! by coachd for one outbox row, its client and occurrence), so no login and no form
//! token: ntfy's "Done" button POSTs it as it is. A GET shows one button that POSTs
//! (mail scanners and link previews fetch GETs, and must not check anyone in); the
//! "I did N" page asks for the number; a weekly message's link shows the reflection form
//! (1-10 and a note) of its week. A refused link is a plain page and changes nothing.

use super::page::{html, Page, WebError};
use super::session::parse_form;
use super::WebState;
use crate::app::{LinkAction, LinkRefusal, NudgeLink};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;

#[derive(Template)]
#[template(path = "nudge.html")]
struct NudgePage {
    title: String,
    message: String,
    error: String,
    ask: bool,
    amount: bool,
    reflect: bool,
    homework: String,
    day: String,
    unit: String,
    button: String,
}

fn page(code: StatusCode, title: &str, message: String, error: String) -> Response {
    let p = NudgePage {
        title: title.into(),
        message,
        error,
        ask: false,
        amount: false,
        reflect: false,
        homework: String::new(),
        day: String::new(),
        unit: String::new(),
        button: String::new(),
    };
    let mut r = html(p);
    *r.status_mut() = code;
    r
}

fn refused(why: &LinkRefusal) -> Response {
    let code = match why {
        LinkRefusal::Invalid => StatusCode::NOT_FOUND,
        LinkRefusal::Expired | LinkRefusal::Used => StatusCode::GONE,
    };
    page(code, "Nothing changed", String::new(), why.to_string())
}

type LinkPath = Path<(i64, String, i64, String)>;

async fn checked(state: &WebState, (id, action, exp, mac): (i64, String, i64, String)) -> Result<NudgeLink, Response> {
    state.app.nudge_link(id, &action, exp, &mac, Utc::now()).await.map_err(|e| refused(&e))
}

pub async fn show(State(state): State<WebState>, Path(p): LinkPath) -> Page {
    let link = match checked(&state, p).await {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let (title, button) = match link.action {
        LinkAction::Done => ("Done?", format!("Yes, done: {}", link.homework)),
        LinkAction::Did => ("How many did you do?", "Send".to_string()),
        LinkAction::Stop => ("No more reminders?", "Stop reminders".to_string()),
        LinkAction::Reflect => ("How did your week go?", "Save".to_string()),
    };
    Ok(html(NudgePage {
        title: title.into(),
        message: String::new(),
        error: String::new(),
        ask: true,
        amount: link.action == LinkAction::Did,
        reflect: link.action == LinkAction::Reflect,
        homework: if link.action == LinkAction::Reflect { "Your week".into() } else { link.homework.clone() },
        day: if link.action == LinkAction::Reflect {
            format!("from {}", link.occurrence.format("%a %b %-d"))
        } else {
            link.occurrence.format("%a %b %-d").to_string()
        },
        unit: link.unit.clone(),
        button,
    }))
}

#[derive(serde::Deserialize, Default)]
struct Amount {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rating: String,
    #[serde(default)]
    note: String,
}

pub async fn take(State(state): State<WebState>, Path(p): LinkPath, body: Bytes) -> Page {
    let link = match checked(&state, p).await {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let form: Amount = if body.is_empty() { Amount::default() } else { parse_form(&body)? };
    if link.action == LinkAction::Reflect {
        let rating = state.app.reflect_by_link(&link, &form.rating, &form.note).await?;
        let said = format!("Saved your week of {}: {rating}/10. Your trainer sees it.", link.occurrence);
        return Ok(page(StatusCode::OK, "Thank you", said, String::new()));
    }
    let value = match form.value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            Some(v.replace(',', ".").parse::<f64>().map_err(|_| WebError::input(format!("{v:?} is not a number")))?)
        }
    };
    match state.app.use_nudge_link(&link, value, Utc::now()).await? {
        Err(why) => Ok(refused(&why)),
        Ok(()) => {
            let said = match link.action {
                LinkAction::Stop | LinkAction::Reflect => {
                    "You will get no more reminders. Your trainer can turn them on again.".to_string()
                }
                LinkAction::Done => format!("Recorded: {} on {}. Well done!", link.homework, link.occurrence),
                LinkAction::Did => format!(
                    "Recorded: {} {} of {} on {}.",
                    crate::engine::rule::number(value.unwrap_or_default()),
                    link.unit,
                    link.homework,
                    link.occurrence
                ),
            };
            Ok(page(StatusCode::OK, "Thank you", said, String::new()))
        }
    }
}
