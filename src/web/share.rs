//! A client's private page (`coachd share CLIENT`): `/c/TOKEN`. It shows that client's
//! own charts and this week's homework, and takes check-ins and the weekly reflection.
//! The token is the only key: it names one client, so nothing else is reachable, and a
//! revoked or unknown token is a plain 404.

use super::dashboard::{
    back, client_chart, error_page, html, not_found, store_error, ChartQuery, Msg, Page, CLIENT_CHARTS,
};
use super::view::{week_view, WeekRow};
use super::WebState;
use crate::engine::judge::monday;
use crate::status::client_tz;
use crate::store::web::Reflection;
use crate::store::Client;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::{Duration, Utc};
use serde::Deserialize;

/// The forms' CSRF token of a link: derived from the link's own secret, so only a page
/// served through the link has it.
fn csrf(token: &str) -> String {
    crate::files::hex(&crate::files::sha256(format!("coachd share form\0{token}").as_bytes()))
}

async fn client_of_link(state: &WebState, token: &str) -> Result<Client, Response> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    match state.store.client_for_share(token).await.map_err(store_error)? {
        Some(id) => state.store.client_by_id(id).await.map_err(store_error),
        None => Err(not_found()),
    }
}

fn check(token: &str, sent: &str) -> Result<(), Response> {
    if super::auth::same(&csrf(token), sent) {
        Ok(())
    } else {
        Err(error_page(StatusCode::FORBIDDEN, "Form refused", "the form is stale: reload the page and send it again"))
    }
}

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    message: String,
    error: String,
    token: String,
    csrf: String,
    name: String,
    week: Vec<String>,
    week_rows: Vec<WeekRow>,
    homework: Vec<(i64, String)>,
    charts: Vec<&'static str>,
    rating: String,
    note: String,
}

pub async fn page(State(state): State<WebState>, Path(token): Path<String>, Query(q): Query<Msg>) -> Page {
    let client = client_of_link(&state, &token).await?;
    let now = Utc::now();
    let week = week_view(&state, &client, now, None).await.map_err(store_error)?;
    let tz = client_tz(&client).map_err(store_error)?;
    let today = now.with_timezone(&tz).date_naive();
    let homework = state
        .store
        .list_homework(Some(client.id))
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|r| r.homework.active_on(today) || r.homework.active_on(today - Duration::days(1)))
        .map(|r| (r.homework.id, r.homework.text))
        .collect();
    let this_week =
        state.store.reflections(client.id, 1).await.map_err(store_error)?.into_iter().find(|r| r.week == monday(today));
    let msg = q.msg.clone();
    Ok(html(SharePage {
        message: msg,
        error: String::new(),
        csrf: csrf(&token),
        token,
        name: client.name,
        week: week.days,
        week_rows: week.rows,
        homework,
        charts: CLIENT_CHARTS.to_vec(),
        rating: this_week.as_ref().map(|r| r.rating.to_string()).unwrap_or_default(),
        note: this_week.and_then(|r| r.note).unwrap_or_default(),
    }))
}

pub async fn chart(
    State(state): State<WebState>,
    Path((token, file)): Path<(String, String)>,
    Query(q): Query<ChartQuery>,
) -> Page {
    let client = client_of_link(&state, &token).await?;
    // The link shows the four progress charts, no single workout pages.
    if !CLIENT_CHARTS.iter().any(|k| file.starts_with(&format!("{k}."))) {
        return Err(not_found());
    }
    client_chart(&state, &client, &file, &q).await
}

#[derive(Deserialize)]
pub struct CheckinForm {
    #[serde(default)]
    csrf: String,
    homework_id: i64,
    #[serde(default)]
    day: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    note: String,
}

pub async fn checkin(State(state): State<WebState>, Path(token): Path<String>, Form(form): Form<CheckinForm>) -> Page {
    check(&token, &form.csrf)?;
    let client = client_of_link(&state, &token).await?;
    let row = state.store.homework(form.homework_id).await.map_err(store_error)?;
    if row.client_id != client.id {
        return Err(not_found());
    }
    let tz = client_tz(&client).map_err(store_error)?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    // Today or yesterday only: a link cannot rewrite the past.
    let on = if form.day == "yesterday" { today - Duration::days(1) } else { today };
    let value = match form.value.trim() {
        "" => None,
        v => match v.replace(',', ".").parse::<f64>() {
            Ok(x) if x.is_finite() && (0.0..=100_000.0).contains(&x) => Some(x),
            _ => return Err(error_page(StatusCode::BAD_REQUEST, "Not accepted", &format!("{v:?} is not an amount"))),
        },
    };
    let note: String = form.note.trim().chars().take(500).collect();
    let note = (!note.is_empty()).then_some(note);
    state
        .store
        .add_checkin(client.id, row.homework.id, on, value, note.as_deref(), "client_page")
        .await
        .map_err(store_error)?;
    if let Some(t) = client.trainer_id {
        state.roster.clear(t);
    }
    tracing::info!(client = %client.name, homework = row.homework.id, %on, "check-in from the client's link");
    Ok(back(&format!("/c/{token}"), &format!("Thanks! Checked in for {on}: {}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct ReflectionForm {
    #[serde(default)]
    csrf: String,
    rating: String,
    #[serde(default)]
    note: String,
}

pub async fn reflection(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Form(form): Form<ReflectionForm>,
) -> Page {
    check(&token, &form.csrf)?;
    let client = client_of_link(&state, &token).await?;
    let rating = form.rating.trim().parse::<u8>().ok().filter(|r| (1..=10).contains(r)).ok_or_else(|| {
        error_page(StatusCode::BAD_REQUEST, "Not accepted", "the rating is a whole number from 1 to 10")
    })?;
    let tz = client_tz(&client).map_err(store_error)?;
    let week = monday(Utc::now().with_timezone(&tz).date_naive());
    let note: String = form.note.trim().chars().take(2000).collect();
    let r = Reflection { week, rating, note: (!note.is_empty()).then_some(note) };
    state.store.save_reflection(client.id, &r).await.map_err(store_error)?;
    Ok(back(&format!("/c/{token}"), &format!("Saved your week of {week}: {rating}/10.")))
}
