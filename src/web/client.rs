//! A client's page for their trainer (`/clients/{id}`) and the forms on it: assign and
//! end homework, excuse a day, record or remove a benchmark, pair a sensor, share the
//! private link, connect a cloud account. Another trainer's client is a 404, the same as
//! a missing one.

use super::page::{back, html, Page};
use super::session::{CsrfForm, LoggedIn};
use super::view::{self, week_view, WeekRow};
use super::WebState;
use crate::app::{AppError, Assignment, BenchmarkInput, Connected};
use crate::store::web::Session;
use crate::store::Client;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use serde::Deserialize;

struct HomeworkLine {
    id: i64,
    text: String,
    span: String,
    active: bool,
}

struct WorkoutLine {
    id: i64,
    when: String,
    ty: String,
    minutes: String,
    avg_hr: String,
    sources: String,
}

struct AccountLine {
    /// The provider's name (the disconnect form's value).
    name: String,
    provider: String,
    state: String,
    last_sync: String,
    /// The newest data it delivered for this client.
    last_data: String,
    reason: String,
    connected: bool,
}

/// A source that is not a cloud account, with its newest data.
struct OtherLine {
    display: String,
    last_data: String,
}

struct BenchmarkLine {
    id: i64,
    date: String,
    test: String,
    result: String,
    homework: String,
    note: String,
}

/// A client's answers to one occurrence of a questions homework.
struct AnswersLine {
    homework: String,
    occurrence: String,
    answered: String,
    /// Question, answer.
    items: Vec<(String, String)>,
}

struct ReflectionLine {
    week: String,
    rating: u8,
    note: String,
}

#[derive(Template)]
#[template(path = "client.html")]
struct ClientPage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    id: i64,
    name: String,
    tz: String,
    hr_max: String,
    new_link: String,
    link_label: String,
    accounts: Vec<AccountLine>,
    /// Sensors, files, the phone's push: what delivered data, and when last.
    others: Vec<OtherLine>,
    /// Every enabled provider, with a Connect button (or an API key field).
    providers: Vec<crate::app::ProviderChoice>,
    week: Vec<String>,
    week_rows: Vec<WeekRow>,
    occurrences: Vec<view::OccurrenceLine>,
    charts: Vec<&'static str>,
    workouts: Vec<WorkoutLine>,
    reflections: Vec<ReflectionLine>,
    answers: Vec<AnswersLine>,
    benchmarks: Vec<BenchmarkLine>,
    /// The client's tests so far, offered when recording another result.
    tests: Vec<String>,
    units: Vec<&'static str>,
    homework: Vec<HomeworkLine>,
    today: String,
    devices: Vec<String>,
    share_links: u64,
    /// The reminder channel, without secrets (empty: none), its state, and the outbox.
    channel: String,
    channel_state: String,
    channel_failing: bool,
    nudges_off: bool,
    outbox: Vec<OutboxLine>,
    /// A phrase the assign form refused, back in the field with why and a suggestion.
    retry: AssignRetry,
    /// Examples under the assign form and every form in a fold (the engine's one table).
    examples: Vec<&'static str>,
    forms: Vec<(&'static str, &'static str, &'static str)>,
}

/// A row of the client's outbox.
struct OutboxLine {
    when: String,
    title: String,
    occurrence: String,
    via: String,
    state: String,
    /// done, missed, pending, excused: the colour of the state.
    css: &'static str,
    detail: String,
}

/// How many outbox rows the client page lists.
const OUTBOX_ROWS: i64 = 20;

/// The `?phrase=&assign_error=` a refused assign form comes back with.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    msg: String,
    #[serde(default)]
    phrase: String,
    #[serde(default)]
    assign_error: String,
}

#[derive(Default)]
struct AssignRetry {
    phrase: String,
    /// The refusal's first line (what was not understood, what was expected).
    error: String,
    /// More lines of the refusal (why, when the parser knows).
    detail: Vec<String>,
    /// A phrase that would work, when a word looked misspelled.
    suggestion: String,
}

/// The four progress charts a client page shows (the private link shows the same).
pub const CLIENT_CHARTS: [&str; 4] = ["adherence", "trend", "cardio", "reps"];

pub async fn page(
    State(state): State<WebState>,
    me: LoggedIn,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> Page {
    let client = state.app.client_of(me.session.trainer.id, id).await?;
    let retry = if q.assign_error.is_empty() {
        AssignRetry::default()
    } else {
        // Only what the parser says about this phrase is shown: the text in the link is
        // not trusted, the phrase is read again.
        match state.app.explain_phrase(&q.phrase) {
            Some(r) => AssignRetry {
                phrase: q.phrase,
                error: r.reason,
                detail: r.notes,
                suggestion: r.suggestion.unwrap_or_default(),
            },
            None => AssignRetry::default(),
        }
    };
    render_with(&state, me.session, client, q.msg, None, retry).await
}

/// How many of the latest benchmarks the page lists (the progress chart shows them all).
const RECENT_BENCHMARKS: usize = 10;

/// A link shown once on the page: (what it is, the link).
type OnceLink = Option<(String, String)>;

async fn render(state: &WebState, session: Session, client: Client, message: String, link: OnceLink) -> Page {
    render_with(state, session, client, message, link, AssignRetry::default()).await
}

async fn render_with(
    state: &WebState,
    session: Session,
    client: Client,
    message: String,
    link: OnceLink,
    retry: AssignRetry,
) -> Page {
    let app = &state.app;
    let (link_label, new_link) = link.unwrap_or_default();
    let now = Utc::now();
    let tz = client.tz;
    let today = crate::time::today(tz, now);
    let week = week_view(state, &client, now, Some(client.id)).await?;
    let homework = app
        .homework_list(Some(&client))
        .await?
        .into_iter()
        .map(|r| {
            let h = r.homework;
            let span = match h.until {
                Some(u) => format!("{} to {u}", h.from),
                None => format!("from {}", h.from),
            };
            HomeworkLine { id: h.id, text: h.text.to_string(), span, active: h.until.is_none_or(|u| u >= today) }
        })
        .collect();
    let workouts = app
        .workouts(&client, today - Duration::days(13), today)
        .await?
        .iter()
        .rev()
        .take(15)
        .map(|w| WorkoutLine {
            id: w.id,
            when: w.start.with_timezone(&tz).format("%a %b %-d, %H:%M").to_string(),
            ty: w.activity_type.clone(),
            minutes: format!("{:.0}", w.duration_s / 60.0),
            avg_hr: w.avg_hr.map(|h| format!("{h:.0}")).unwrap_or_else(|| "–".into()),
            sources: w.sources.join(", "),
        })
        .collect();
    let reflections = app
        .reflections(&client, 6)
        .await?
        .into_iter()
        .map(|r| ReflectionLine { week: r.week.to_string(), rating: r.rating, note: r.note.unwrap_or_default() })
        .collect();
    let answers = app
        .answers(&client, today - Duration::days(ANSWER_DAYS), today)
        .await?
        .into_iter()
        .map(|a| AnswersLine {
            homework: format!("#{} {}", a.homework_id, a.homework),
            occurrence: if a.period == "week" { format!("week of {}", a.occurrence) } else { a.occurrence.to_string() },
            answered: a.answered_at.with_timezone(&tz).format("%a %b %-d, %H:%M").to_string(),
            items: a.answers.into_iter().map(|i| (i.question, i.answer.to_string())).collect(),
        })
        .collect();
    let mut recorded = app.benchmarks(&client, None).await?;
    let mut tests: Vec<String> = recorded.iter().map(|b| b.name.clone()).collect();
    tests.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    recorded.sort_by_key(|b| std::cmp::Reverse((b.date, b.id)));
    let benchmarks = recorded
        .into_iter()
        .take(RECENT_BENCHMARKS)
        .map(|b| BenchmarkLine {
            id: b.id,
            date: b.date.to_string(),
            result: b.unit.show(b.value),
            test: b.name,
            homework: match (b.homework_id, b.homework) {
                (Some(id), Some(text)) => format!("#{id} {text}"),
                _ => String::new(),
            },
            note: b.note.unwrap_or_default(),
        })
        .collect();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%b %-d, %H:%M").to_string()).unwrap_or_default()
    };
    let sources = app.sources(&client).await?;
    let mut accounts = Vec::new();
    for a in app.accounts(Some(&client)).await? {
        let line = sources.providers.iter().find(|p| p.name == a.provider);
        accounts.push(AccountLine {
            connected: line.is_some_and(|p| p.connected()),
            last_data: when(line.and_then(|p| p.last_data)),
            name: a.provider.clone(),
            provider: line.map_or_else(|| a.provider.clone(), |p| p.display.clone()),
            state: if a.failing {
                format!("{}, failing", a.state.replace('_', " "))
            } else {
                a.state.replace('_', " ")
            },
            last_sync: when(a.last_sync),
            reason: a.reason.unwrap_or_default(),
        });
    }
    let others =
        sources.others.iter().map(|o| OtherLine { display: o.display.clone(), last_data: when(o.last_data) }).collect();
    let target = crate::app::NotifyTarget::Client(client.clone());
    let channel = app.channel_status(&target).await?;
    let outbox = app
        .outbox(&target, OUTBOX_ROWS)
        .await?
        .into_iter()
        .map(|o| OutboxLine {
            when: o.sent.unwrap_or(o.created).with_timezone(&tz).format("%a %b %-d, %H:%M").to_string(),
            title: o.title,
            occurrence: o.occurrence.map(|d| d.to_string()).unwrap_or_else(|| o.kind.clone()),
            via: o.channel_kind.unwrap_or_default(),
            css: match o.state.as_str() {
                "sent" => "done",
                "failed" | "interrupted" => "missed",
                "suppressed" => "excused",
                _ => "pending",
            },
            state: match (o.state.as_str(), o.attempts) {
                ("retry", n) => format!("retrying (tried {n}x)"),
                (s, _) => s.to_string(),
            },
            detail: {
                let used = o.link_used.map(|t| format!("checked in {}", t.with_timezone(&tz).format("%H:%M")));
                [o.reason, used].into_iter().flatten().collect::<Vec<_>>().join("; ")
            },
        })
        .collect();
    Ok(html(ClientPage {
        message,
        error: String::new(),
        trainer: session.trainer.name,
        csrf: session.csrf,
        id: client.id,
        name: client.name.clone(),
        tz: client.tz.name().to_string(),
        hr_max: crate::status::hr_max(&client, today).map(|h| format!("{h:.0}")).unwrap_or_else(|| "unknown".into()),
        new_link,
        link_label,
        accounts,
        others,
        providers: app.provider_choices(),
        week: week.days,
        week_rows: week.rows,
        occurrences: week.occurrences,
        charts: CLIENT_CHARTS.to_vec(),
        workouts,
        reflections,
        answers,
        benchmarks,
        tests,
        units: crate::store::benchmarks::Unit::ALL.iter().map(|u| u.as_str()).collect(),
        homework,
        today: today.to_string(),
        devices: app.devices_of(&client).await?,
        share_links: app.live_share_links(&client).await?,
        nudges_off: app.nudges_off(&client).await?,
        channel_failing: channel.as_ref().is_some_and(|c| c.state == "failing"),
        channel_state: channel.as_ref().map(super::view::channel_state).unwrap_or_default(),
        channel: channel.map(|c| c.shown).unwrap_or_default(),
        outbox,
        retry,
        examples: crate::app::PHRASE_FORMS.iter().take(10).map(|(p, ..)| *p).collect(),
        forms: crate::app::PHRASE_FORMS.to_vec(),
    }))
}

#[derive(Deserialize)]
pub struct AssignForm {
    phrase: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    window: String,
}

pub async fn assign(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<AssignForm>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    let a = Assignment {
        phrase: f.form.phrase,
        days: Some(f.form.days),
        window: Some(f.form.window),
        ..Default::default()
    };
    let row = match state.app.assign(&client, &a).await {
        Ok(row) => row,
        Err(AppError::Input(_)) if state.app.explain_phrase(&a.phrase).is_some() => {
            // Back to the form with the phrase in it, why, and what would work.
            let q =
                serde_urlencoded::to_string([("phrase", a.phrase.as_str()), ("assign_error", "1")]).unwrap_or_default();
            return Ok(axum::response::Redirect::to(&format!("/clients/{id}?{q}#assign")).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    state.roster.clear(&state.app, trainer).await;
    let how = if row.homework.rule.judged_by() == crate::engine::rule::JudgedBy::CheckIns {
        format!(
            " No device can see this: it is judged from {}'s check-ins (a tick on their private link).",
            client.name
        )
    } else {
        String::new()
    };
    Ok(back(&format!("/clients/{id}"), &format!("Assigned #{} {}.{how}", row.homework.id, row.homework.text)))
}

/// How far back the page lists a client's answers.
const ANSWER_DAYS: i64 = 8 * 7;

#[derive(Deserialize)]
pub struct QuestionsForm {
    questions: String,
    #[serde(default)]
    every: String,
}

/// Assign questions, written one per line as in a questions file.
pub async fn assign_questions(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<QuestionsForm>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    let every = match f.form.every.trim() {
        "" => None,
        s => Some(crate::app::Every::parse(s)?),
    };
    let a = crate::app::QuestionsAssignment {
        questions: crate::app::parse_questions(&f.form.questions)?,
        every,
        days: None,
        from: None,
        until: None,
    };
    let row = state.app.assign_questions(&client, &a).await?;
    state.roster.clear(&state.app, trainer).await;
    let msg =
        format!("Assigned #{} {}; {} answers on their private link.", row.homework.id, row.homework.text, client.name);
    Ok(back(&format!("/clients/{id}"), &msg))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn end_homework(State(state): State<WebState>, Path((id, hw)): Path<(i64, i64)>, f: CsrfForm<Empty>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    let row = state.app.homework_of(&client, hw).await?;
    // Ended today: today is its last day, as the button says.
    let today = crate::time::today(client.tz, Utc::now());
    state.app.end_homework(&row, today).await?;
    state.roster.clear(&state.app, trainer).await;
    Ok(back(&format!("/clients/{id}"), &format!("#{hw} {} ends; last day {today}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct ExcuseForm {
    homework_id: i64,
    date: String,
    #[serde(default)]
    reason: String,
}

pub async fn excuse(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<ExcuseForm>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    let row = state.app.homework_of(&client, f.form.homework_id).await?;
    let on = crate::time::parse_day(&f.form.date, client.tz, Utc::now(), "the date").map_err(super::WebError::input)?;
    state.app.excuse(&client, &row, on, Some(&f.form.reason)).await?;
    state.roster.clear(&state.app, trainer).await;
    Ok(back(&format!("/clients/{id}"), &format!("Excused {on}: {}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct BenchmarkForm {
    name: String,
    value: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    date: String,
    /// A homework id, or empty for none.
    #[serde(default)]
    homework_id: String,
    #[serde(default)]
    note: String,
}

/// Record a benchmark done in the session, as the logged-in trainer.
pub async fn record_benchmark(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<BenchmarkForm>) -> Page {
    let trainer = &f.session.trainer;
    let client = state.app.client_of(trainer.id, id).await?;
    let form = f.form;
    let for_homework = match form.homework_id.trim() {
        "" => None,
        s => Some(s.parse::<i64>().map_err(|_| super::WebError::input(format!("{s:?} is not a homework id")))?),
    };
    let date = match form.date.trim() {
        "" => None,
        s => Some(crate::time::parse_day(s, client.tz, Utc::now(), "the date").map_err(super::WebError::input)?),
    };
    let input = BenchmarkInput {
        name: form.name,
        value: form.value,
        unit: Some(form.unit),
        note: Some(form.note),
        for_homework,
        date,
    };
    let b = state.app.record_benchmark(&client, Some(trainer), &input).await?;
    Ok(back(&format!("/clients/{id}"), &format!("Recorded {} {} on {}.", b.name, b.unit.show(b.value), b.date)))
}

pub async fn remove_benchmark(
    State(state): State<WebState>,
    Path((id, bid)): Path<(i64, i64)>,
    f: CsrfForm<Empty>,
) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    let b = state.app.remove_benchmark(&client, bid).await?;
    Ok(back(&format!("/clients/{id}"), &format!("Removed {} {} of {}.", b.name, b.unit.show(b.value), b.date)))
}

#[derive(Deserialize)]
pub struct PairForm {
    address: String,
}

pub async fn pair(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<PairForm>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    let d = state.app.pair_device(&f.form.address, &client, Some(trainer)).await?;
    Ok(back(&format!("/clients/{id}"), &format!("Paired {} with {}.", d.address, client.name)))
}

#[derive(Deserialize)]
pub struct ShareForm {
    #[serde(default)]
    action: String,
}

pub async fn share(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<ShareForm>) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    if f.form.action == "revoke" {
        let n = state.app.revoke_share_links(&client).await?;
        return Ok(back(&format!("/clients/{id}"), &format!("Revoked {n} link(s) of {}.", client.name)));
    }
    let link = state.app.new_share_link(&client).await?;
    // Shown once, on this response; never in a URL the browser keeps in its history.
    let label = format!("Private link for {}", client.name);
    render(&state, f.session, client, String::new(), Some((label, link))).await
}

#[derive(Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    url: String,
    action: String,
}

/// Set, test or remove the client's reminder channel.
pub async fn channel(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<ChannelForm>) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    let to = crate::app::NotifyTarget::Client(client.clone());
    let said = channel_action(&state, &to, &f.form).await?;
    Ok(back(&format!("/clients/{id}"), &said))
}

/// Set, test or remove the logged-in trainer's own channel (digests), from the roster.
pub async fn own_channel(State(state): State<WebState>, f: CsrfForm<ChannelForm>) -> Page {
    let to = crate::app::NotifyTarget::Trainer(f.session.trainer.clone());
    let said = channel_action(&state, &to, &f.form).await?;
    Ok(back("/roster", &said))
}

/// What a channel form asked for, done; what to tell the trainer.
async fn channel_action(
    state: &WebState,
    to: &crate::app::NotifyTarget,
    form: &ChannelForm,
) -> Result<String, super::WebError> {
    Ok(match form.action.as_str() {
        "set" => {
            let shown = state.app.set_channel(to, &form.url).await.map_err(|e| match e {
                crate::app::AppError::Input(detail) => super::WebError::Input { title: "Channel not set", detail },
                other => other.into(),
            })?;
            match to {
                crate::app::NotifyTarget::Client(c) => format!("Reminders for {} go to {shown}.", c.name),
                crate::app::NotifyTarget::Trainer(_) => format!("Your digests go to {shown}."),
            }
        }
        "test" => match state.app.test_channel(to, Utc::now()).await? {
            Ok(shown) => format!("Sent a test message to {shown}."),
            Err(e) => format!("The test message failed: {e}"),
        },
        "remove" => {
            state.app.remove_channel(to).await?;
            match to {
                crate::app::NotifyTarget::Client(c) => format!("{} gets no more reminders.", c.name),
                crate::app::NotifyTarget::Trainer(_) => "You get no more digests.".to_string(),
            }
        }
        other => return Err(super::WebError::input(format!("unknown action {other:?}"))),
    })
}

#[derive(Deserialize)]
pub struct ConnectForm {
    provider: String,
    #[serde(default)]
    api_key: String,
}

/// Connect a cloud account: an OAuth provider gives an authorization link to send the
/// client; an API-key provider (intervals.icu) takes the client's key.
pub async fn connect(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<ConnectForm>) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    let connected = state.app.connect(&f.form.provider, &client, Some(&f.form.api_key)).await.map_err(|e| match e {
        crate::app::AppError::Input(detail) => super::WebError::Input { title: "Not connected", detail },
        other => other.into(),
    })?;
    match connected {
        Connected::Athlete { provider, athlete, note } => Ok(back(
            &format!("/clients/{id}"),
            &format!(
                "Connected {provider} athlete {athlete}; the first sync starts within a minute.{}",
                if note.is_empty() { String::new() } else { format!(" Note: {note}.") }
            ),
        )),
        Connected::Link { url, valid_minutes, .. } => {
            let shown = state
                .app
                .provider_choices()
                .into_iter()
                .find(|p| p.name == f.form.provider.trim().to_ascii_lowercase())
                .map_or_else(|| f.form.provider.clone(), |p| p.display);
            let label = format!("{shown} authorization link, valid {valid_minutes} minutes and once");
            render(&state, f.session, client, String::new(), Some((label, url))).await
        }
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    provider: String,
}

/// `POST /clients/ID/disconnect`: end a client's connection to a provider (revoked there
/// where its API allows); the data stays.
pub async fn disconnect(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<DisconnectForm>) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    let by = format!("trainer {}", f.session.trainer.name);
    let done = state.app.disconnect(&client, &f.form.provider, &by).await?;
    Ok(back(
        &format!("/clients/{id}"),
        &format!("Disconnected {}'s {}: {}. Their data stays.", client.name, done.provider, done.note),
    ))
}
