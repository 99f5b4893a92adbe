//! A client's private page (`coachd share CLIENT`): `/c/TOKEN`. It shows that client's
//! own charts and this week's homework, and takes check-ins, answers to a questions
//! homework and the weekly reflection. There the client also connects and disconnects
//! their own cloud accounts, gets their Health Auto Export token and uploads an activity
//! file from their phone.
//! The token is the only key: it names one client, so nothing else is reachable, and a
//! revoked or unknown token is a plain 404.

use super::charts::{client_chart, ChartQuery};
use super::client::CLIENT_CHARTS;
use super::page::{back, html, Msg, Page, WebError};
use super::session::checked_form;
use super::view::{week_view, WeekRow};
use super::WebState;
use crate::app::questions::{questions_of, OpenQuestions};
use crate::app::Connected;
use crate::engine::rule::{JudgedBy, Measure, QuestionKind};
use crate::files::Outcome;
use crate::store::Client;
use crate::time::monday;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
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
    sources: Vec<SourceLine>,
    sensors: Vec<String>,
    push_url: String,
    has_push_token: bool,
    /// A fresh Health Auto Export token, shown once (right after the client asked).
    push_token: String,
}

/// A provider on the client's page.
struct SourceLine {
    name: &'static str,
    display: String,
    /// In words: connected, not connected, needs connecting again, ...
    state: String,
    detail: String,
    last_data: String,
    connected: bool,
    wants_connect: bool,
    api_key: bool,
    key_help: String,
}

fn state_words(state: &str) -> String {
    match state {
        "active" => "connected".into(),
        "not_connected" => "not connected".into(),
        "needs_reauth" => "needs connecting again".into(),
        "insufficient_scope" => "connected without a permission coachd needs: connect again".into(),
        "revoked" => "access was removed at the provider".into(),
        "disconnected" => "disconnected".into(),
        other => other.replace('_', " "),
    }
}

pub async fn page(State(state): State<WebState>, Path(token): Path<String>, Query(q): Query<Msg>) -> Page {
    let client = client_of_link(&state, &token).await?;
    render(&state, client, token, q.msg, String::new()).await
}

async fn render(state: &WebState, client: Client, token: String, msg: String, push_token: String) -> Page {
    let now = Utc::now();
    let week = week_view(state, &client, now, None).await?;
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
            (r.homework.id, r.homework.text.to_string(), unit)
        })
        .collect();
    let homework = open.into_iter().map(|r| (r.homework.id, r.homework.text.to_string())).collect();
    let questions =
        state.app.open_questions(&client, now).await?.into_iter().map(|o| questions_box(o, &client)).collect();
    let this_week = state.app.reflections(&client, 1).await?.into_iter().find(|r| r.week == monday(today));
    let tz = client.tz;
    let when = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%a %b %-d, %H:%M").to_string()).unwrap_or_default()
    };
    let found = state.app.sources(&client).await?;
    let sources = found
        .providers
        .iter()
        .map(|p| SourceLine {
            name: p.name,
            display: p.display.clone(),
            state: state_words(&p.state),
            detail: p.detail.clone(),
            last_data: when(p.last_data),
            connected: p.connected(),
            wants_connect: p.wants_connect(),
            api_key: p.api_key,
            key_help: p.key_help.clone(),
        })
        .collect();
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
        sources,
        sensors: found.sensors,
        push_url: state.app.push_url(),
        has_push_token: found.push_token,
        push_token,
    }))
}

/// `GET /c/TOKEN/connect/PROVIDER`: an OAuth provider's login, for this link's client
/// only (the authorization's state names them and is single-use).
pub async fn connect_start(State(state): State<WebState>, Path((token, provider)): Path<(String, String)>) -> Page {
    let client = client_of_link(&state, &token).await?;
    match state.app.connect(&provider, &client, None).await? {
        Connected::Link { url, .. } => {
            tracing::info!(client = %client.name, provider, "connect started from the client's link");
            Ok(Redirect::to(&url).into_response())
        }
        Connected::Athlete { .. } => Err(WebError::input("this provider takes an API key: use the form")),
    }
}

#[derive(Deserialize)]
pub struct ProviderForm {
    provider: String,
    #[serde(default)]
    api_key: String,
}

/// `POST /c/TOKEN/connect`: an API-key provider (intervals.icu) with the client's key.
pub async fn connect_key(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let form: ProviderForm = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    if form.api_key.trim().is_empty() {
        return Err(WebError::input("paste your API key into the field first"));
    }
    match state.app.connect(&form.provider, &client, Some(&form.api_key)).await? {
        Connected::Athlete { provider, .. } => {
            Ok(back(&format!("/c/{token}"), &format!("Connected {provider}. Your data arrives within a few minutes.")))
        }
        Connected::Link { .. } => Err(WebError::input("this provider connects through its own login")),
    }
}

/// `POST /c/TOKEN/disconnect`: end this client's connection to a provider.
pub async fn disconnect(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let form: ProviderForm = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    let done = state.app.disconnect(&client, &form.provider, "the client (private page)").await?;
    Ok(back(
        &format!("/c/{token}"),
        &format!(
            "Disconnected {}: coachd no longer reads it ({}). What it already read stays.",
            done.provider, done.note
        ),
    ))
}

/// `POST /c/TOKEN/push-token`: a new Health Auto Export token, shown once on the page
/// (the earlier one stops working).
pub async fn push_token(State(state): State<WebState>, Path(token): Path<String>, body: Bytes) -> Page {
    let _: CsrfOnly = link_form(&token, &body)?;
    let client = client_of_link(&state, &token).await?;
    let push = state.app.new_push_token(&client).await?;
    tracing::info!(client = %client.name, "new push token from the client's link");
    render(&state, client, token, "Your new token is below: copy it now, it is shown only once.".into(), push).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {}

/// The largest activity file a client uploads from the page (a FIT, TCX or GPX file; a
/// zipped account export fits too, a whole Apple Health export goes to the inbox).
pub const UPLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// `POST /c/TOKEN/upload` (multipart: `csrf` first, then `file`): an activity file from
/// the client's phone, imported at once, streamed to disk as it arrives.
pub async fn upload(State(state): State<WebState>, Path(token): Path<String>, mut form: Multipart) -> Page {
    let client = client_of_link(&state, &token).await?;
    let bad = |e: axum::extract::multipart::MultipartError| WebError::input(format!("the upload broke off: {e}"));
    let first = form.next_field().await.map_err(bad)?;
    let sent = match first {
        Some(f) if f.name() == Some("csrf") => f.text().await.map_err(bad)?,
        _ => String::new(),
    };
    super::session::check_csrf(&csrf(&token), &sent, "the form is stale: reload the page and send it again")?;
    let Some(mut field) = form.next_field().await.map_err(bad)? else {
        return Err(WebError::input("choose a file first"));
    };
    if field.name() != Some("file") {
        return Err(WebError::input("choose a file first"));
    }
    let name = field.file_name().unwrap_or("upload").to_string();
    let path = state.app.upload_path(&client)?;
    let written = async {
        use tokio::io::AsyncWriteExt;
        let mut out = tokio::fs::File::create(&path).await.map_err(|e| WebError::Internal(e.to_string()))?;
        let mut size = 0usize;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            size += chunk.len();
            if size > UPLOAD_LIMIT {
                return Err(WebError::input(format!(
                    "the file is larger than {} MB: ask your trainer to import it",
                    UPLOAD_LIMIT / (1024 * 1024)
                )));
            }
            out.write_all(&chunk).await.map_err(|e| WebError::Internal(e.to_string()))?;
        }
        out.sync_all().await.map_err(|e| WebError::Internal(e.to_string()))?;
        Ok::<usize, WebError>(size)
    }
    .await;
    let size = match written {
        Ok(0) => {
            let _ = std::fs::remove_file(&path);
            return Err(WebError::input("the file is empty"));
        }
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    tracing::info!(client = %client.name, file = %name, size, "upload received");
    let message = match state.app.import_upload(&client, &path, &name).await? {
        Outcome::Imported { format, activities, .. } => {
            format!(
                "Thanks! {name} ({format}) is in: {activities} activit{}.",
                if activities == 1 { "y" } else { "ies" }
            )
        }
        Outcome::Duplicate { .. } => format!("{name} was already here: nothing changed."),
        Outcome::Export(r) => format!(
            "Thanks! {name}: {} file(s) imported, {} already here, {} refused.",
            r.imported,
            r.duplicates,
            r.rejected.len()
        ),
        Outcome::Rejected(why) => return Err(WebError::Input { title: "File not imported", detail: why }),
    };
    if let Some(t) = client.trainer_id {
        state.roster.clear(&state.app, t).await;
    }
    Ok(back(&format!("/c/{token}"), &message))
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
        state.roster.clear(&state.app, t).await;
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
        state.roster.clear(&state.app, t).await;
    }
    tracing::info!(client = %client.name, homework = row.homework.id, occurrence = %answered.occurrence, "answers from the client's link");
    let when = if answered.period == "week" { "this week" } else { "today" };
    Ok(back(&format!("/c/{token}"), &format!("Thanks! Your answers are saved: done for {when}.")))
}
