//! A client's private page (`coachd share CLIENT`): `/c/TOKEN`. It shows that client's
//! own charts and this week's homework, and takes check-ins, answers to a questions
//! homework and the weekly reflection.
//! The token is the only key: it names one client, so nothing else is reachable, and a
//! revoked or unknown token is a plain 404.

use super::charts::{client_chart, ChartQuery};
use super::client::CLIENT_CHARTS;
use super::page::{back, html, Msg, Page, WebError};
use super::session::checked_form;
use super::view::{week_view, WeekRow};
use super::WebState;
use crate::app::questions::{questions_of, OpenQuestions};
use crate::engine::rule::{JudgedBy, Measure, QuestionKind};
use crate::store::Client;
use crate::time::monday;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::{Duration, Utc};
use serde::Deserialize;

/// The forms' CSRF token of a link: derived from the link's own secret, so only a page
/// served through the link has it.
fn csrf(token: &str) -> String {
    crate::crypto::hex(&crate::crypto::sha256(format!("coachd share form\0{token}").as_bytes()))
}

async fn client_of_link(state: &WebState, token: &str) -> Result<Client, WebError> {
    state.app.client_for_share(token).await?.ok_or(WebError::NotFound)
}

/// A form sent through the link: its token checked before anything else is read.
fn link_form<T: serde::de::DeserializeOwned>(token: &str, body: &[u8]) -> Result<T, WebError> {
    checked_form(body, &csrf(token), "the form is stale: reload the page and send it again")
}

/// One question on the page, with what the client answered so far.
struct QuestionField {
    /// The form field: q0, q1, ...
    name: String,
    text: String,
    /// text, scale or yes_no.
    kind: &'static str,
    value: String,
    /// 1 to 10, and whether it is the chosen one.
    scale: Vec<(u8, bool)>,
}

/// A questions homework open to answer: this week's or today's.
struct QuestionsBox {
    homework_id: i64,
    homework: String,
    when: &'static str,
    answered: String,
    fields: Vec<QuestionField>,
    /// Question, answer, once answered.
    answers: Vec<(String, String)>,
}

fn questions_box(o: OpenQuestions, client: &Client) -> QuestionsBox {
    let given: Vec<String> = match &o.answered {
        Some(a) => a.answers.iter().map(|i| i.answer.form_value()).collect(),
        None => Vec::new(),
    };
    let fields = o
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let value = given.get(i).cloned().unwrap_or_default();
            let kind = match q.kind {
                QuestionKind::Text => "text",
                QuestionKind::Scale => "scale",
                QuestionKind::YesNo => "yes_no",
            };
            let scale = if q.kind == QuestionKind::Scale {
                (1..=10u8).map(|n| (n, value == n.to_string())).collect()
            } else {
                Vec::new()
            };
            QuestionField { name: format!("q{i}"), text: q.text.clone(), kind, value, scale }
        })
        .collect();
    QuestionsBox {
        homework_id: o.homework_id,
        homework: o.homework,
        when: if o.period == "week" { "this week" } else { "today" },
        answered: o
            .answered
            .as_ref()
            .map(|a| a.answered_at.with_timezone(&client.tz).format("%a %b %-d, %H:%M").to_string())
            .unwrap_or_default(),
        answers: o
            .answered
            .map(|a| a.answers.into_iter().map(|i| (i.question, i.answer.to_string())).collect())
            .unwrap_or_default(),
        fields,
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
    /// Today's habits, each a one-tap tick: (id, text, the amount's unit if it has one).
    habits: Vec<(i64, String, String)>,
    questions: Vec<QuestionsBox>,
    charts: Vec<&'static str>,
    rating: String,
    note: String,
}

pub async fn page(State(state): State<WebState>, Path(token): Path<String>, Query(q): Query<Msg>) -> Page {
    let client = client_of_link(&state, &token).await?;
    let now = Utc::now();
    let week = week_view(&state, &client, now, None).await?;
    let today = crate::time::today(client.tz, now);
    let open: Vec<_> = state
        .app
        .homework_list(Some(&client))
        .await?
        .into_iter()
        .filter(|r| r.homework.active_on(today) || r.homework.active_on(today - Duration::days(1)))
        // A questions homework is answered in its own form, not checked in for.
        .filter(|r| questions_of(r).is_none())
        .collect();
    let habits = open
        .iter()
        .filter(|r| {
            r.homework.rule.judged_by() == JudgedBy::CheckIns && r.homework.rule.occurs_on(r.homework.from, today)
        })
        .filter(|r| r.homework.active_on(today))
        .map(|r| {
            let unit = match &r.homework.rule.measure {
                Measure::Habit { amount: Some(_), unit, .. } => unit.clone().unwrap_or_else(|| "amount".into()),
                _ => String::new(),
            };
            (r.homework.id, r.homework.text.clone(), unit)
        })
        .collect();
    let homework = open.into_iter().map(|r| (r.homework.id, r.homework.text)).collect();
    let questions =
        state.app.open_questions(&client, now).await?.into_iter().map(|o| questions_box(o, &client)).collect();
    let this_week = state.app.reflections(&client, 1).await?.into_iter().find(|r| r.week == monday(today));
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
        habits,
        questions,
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
        return Err(WebError::NotFound);
    }
    client_chart(&state, &client, &file, &q).await
}

#[derive(Deserialize)]
pub struct CheckinForm {
    homework_id: i64,
    #[serde(default)]
    day: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    note: String,
}

pub async fn checkin(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let form: CheckinForm = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    let row = state.app.homework_of(&client, form.homework_id).await?;
    let today = crate::time::today(client.tz, Utc::now());
    // Today or yesterday only: a link cannot rewrite the past.
    let on = if form.day == "yesterday" { today - Duration::days(1) } else { today };
    let value = match form.value.trim() {
        "" => None,
        v => Some(v.replace(',', ".").parse::<f64>().map_err(|_| WebError::input(format!("{v:?} is not an amount")))?),
    };
    state.app.check_in(&client, &row, on, value, Some(&form.note), "client_page").await?;
    if let Some(t) = client.trainer_id {
        state.roster.clear(t);
    }
    tracing::info!(client = %client.name, homework = row.homework.id, %on, "check-in from the client's link");
    Ok(back(&format!("/c/{token}"), &format!("Thanks! Checked in for {on}: {}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct ReflectionForm {
    rating: String,
    #[serde(default)]
    note: String,
}

pub async fn reflection(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let form: ReflectionForm = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    let week = monday(crate::time::today(client.tz, Utc::now()));
    let rating = state.app.reflect(&client, week, &form.rating, &form.note).await?;
    Ok(back(&format!("/c/{token}"), &format!("Saved your week of {week}: {rating}/10.")))
}

/// The answers to a questions homework: `homework_id` and `q0`, `q1`, ... Every answer
/// is checked before anything is stored; sending again replaces the earlier answers.
pub async fn answers(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let form: std::collections::HashMap<String, String> = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    let id = form
        .get("homework_id")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| WebError::input("the form names no homework: reload the page and send it again"))?;
    let row = state.app.homework_of(&client, id).await?;
    let asked = questions_of(&row).map_or(0, <[_]>::len);
    let raw: Vec<Option<String>> = (0..asked).map(|i| form.get(&format!("q{i}")).cloned()).collect();
    let answered = state.app.answer_questions(&client, &row, &raw, Utc::now(), "client_page").await?;
    if let Some(t) = client.trainer_id {
        state.roster.clear(t);
    }
    tracing::info!(client = %client.name, homework = row.homework.id, occurrence = %answered.occurrence, "answers from the client's link");
    let when = if answered.period == "week" { "this week" } else { "today" };
    Ok(back(&format!("/c/{token}"), &format!("Thanks! Your answers are saved: done for {when}.")))
}
