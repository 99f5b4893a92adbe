//! The trainer's dashboard: login, roster → client → workout, the forms that change a
//! client, and the charts as images. Server-rendered (askama templates, compiled in);
//! no JavaScript. Every page needs a session; every form carries the session's CSRF
//! token; a trainer reaches only their own clients (another trainer's client is a 404,
//! the same as a missing one).

use super::auth::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL};
use super::view::{self, week_view, WeekRow};
use super::WebState;
use crate::charts::data::{self, Request};
use crate::charts::{self, Format, Kind};
use crate::cli::homework::{assign_to, AssignArgs};
use crate::cli::Failure;
use crate::engine::evidence::Workout;
use crate::status::client_tz;
use crate::store::web::{Session, TrainerId};
use crate::store::{Client, NewClient, StoreError};
use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, Utc};
use serde::Deserialize;
use std::net::SocketAddr;

pub type Page = Result<Response, Response>;

/// A rendered template, or a plain 500 if rendering failed.
pub fn html(t: impl Template) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
    error: String,
}

pub fn error_page(code: StatusCode, title: &str, detail: &str) -> Response {
    let page = ErrorPage { title: title.into(), message: String::new(), error: detail.into() };
    let mut r = html(page);
    *r.status_mut() = code;
    r
}

pub fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", "")
}

/// A store error as a page: missing things are 404, bad input 400, the rest 500 (logged).
pub fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => not_found(),
        StoreError::Invalid(p) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &p.join("\n")),
        StoreError::Duplicate(what) => {
            error_page(StatusCode::BAD_REQUEST, "Already there", &format!("{what} exists already"))
        }
        StoreError::Conflict(what) => error_page(StatusCode::BAD_REQUEST, "Conflict", &what),
        other => {
            tracing::error!(error = %other, "dashboard request failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "the error is in the server's log")
        }
    }
}

fn failure(f: Failure) -> Response {
    match f {
        Failure::Input(msg) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &msg),
        Failure::Runtime(e) => {
            tracing::error!(error = %format!("{e:#}"), "dashboard request failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "the error is in the server's log")
        }
    }
}

/// The request's trainer session, or a redirect to the login page.
pub async fn trainer(state: &WebState, headers: &HeaderMap) -> Result<Session, Response> {
    match auth::session(&state.store, headers).await {
        Ok(Some((_, s))) => Ok(s),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(store_error(e)),
    }
}

/// Refuse a form whose CSRF token is not the session's.
fn check_csrf(session: &Session, sent: &str) -> Result<(), Response> {
    if auth::same(&session.csrf, sent) {
        Ok(())
    } else {
        Err(error_page(
            StatusCode::FORBIDDEN,
            "Form refused",
            "the form's security token is missing or stale: reload the page and send it again",
        ))
    }
}

async fn my_client(state: &WebState, session: &Session, id: i64) -> Result<Client, Response> {
    state.store.client_of(session.trainer.id, id).await.map_err(store_error)
}

/// Redirect after a form, with a message for the next page.
pub fn back(to: &str, message: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let msg: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    Redirect::to(&format!("{to}{sep}msg={msg}")).into_response()
}

#[derive(Deserialize, Default)]
pub struct Msg {
    #[serde(default)]
    pub msg: String,
}

// ---- login -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    message: String,
    error: String,
    csrf: String,
}

fn login_page(state: &WebState, error: &str, code: StatusCode) -> Response {
    let Ok(csrf) = crate::store::random_token() else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "no random numbers");
    };
    let cookie = auth::set_cookie(LOGIN_CSRF_COOKIE, &csrf, std::time::Duration::from_secs(3600), state.secure);
    let mut r = html(LoginPage { message: String::new(), error: error.into(), csrf });
    *r.status_mut() = code;
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_form(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = auth::session(&state.store, &headers).await {
        return Redirect::to("/roster").into_response();
    }
    login_page(&state, "", StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // The login form's token is a double-submit cookie: a page elsewhere cannot read it.
    let cookie_token = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if form.csrf.is_empty() || !auth::same(cookie_token, &form.csrf) {
        return login_page(&state, "The form expired; please log in again.", StatusCode::FORBIDDEN);
    }
    let ip = Some(peer.ip());
    if let Some(wait) = state.throttle.wait(&form.name, ip) {
        tracing::warn!(name = %form.name, ip = %peer.ip(), "login throttled");
        let msg = format!("Too many failed attempts; try again in {} s.", wait.as_secs() + 1);
        let mut r = login_page(&state, &msg, StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = (wait.as_secs() + 1).to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    match auth::login(&state.store, &form.name, &form.password).await {
        Ok(Some(trainer)) => {
            state.throttle.succeeded(&form.name);
            match state.store.new_session(&trainer, SESSION_TTL.as_millis() as i64).await {
                Ok((token, _)) => {
                    tracing::info!(trainer = %trainer.name, "logged in");
                    let mut r = Redirect::to("/roster").into_response();
                    for c in [
                        auth::set_cookie(SESSION_COOKIE, &token, SESSION_TTL, state.secure),
                        auth::clear_cookie(LOGIN_CSRF_COOKIE, state.secure),
                    ] {
                        if let Ok(v) = c.parse() {
                            r.headers_mut().append(header::SET_COOKIE, v);
                        }
                    }
                    r
                }
                Err(e) => store_error(e),
            }
        }
        Ok(None) => {
            state.throttle.failed(&form.name, ip);
            tracing::warn!(name = %form.name, ip = %peer.ip(), "login failed");
            login_page(&state, "Wrong name or password.", StatusCode::UNAUTHORIZED)
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(State(state): State<WebState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Page {
    let Some((token, session)) = auth::session(&state.store, &headers).await.map_err(store_error)? else {
        return Ok(Redirect::to("/login").into_response());
    };
    check_csrf(&session, &form.csrf)?;
    state.store.end_session(&token).await.map_err(store_error)?;
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = auth::clear_cookie(SESSION_COOKIE, state.secure).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn home(State(state): State<WebState>, headers: HeaderMap) -> Page {
    trainer(&state, &headers).await?;
    Ok(Redirect::to("/roster").into_response())
}

// ---- roster ------------------------------------------------------------------------

struct RosterLine {
    id: i64,
    name: String,
    needs_attention: bool,
    days7: String,
    days30: String,
    days90: String,
    homework: usize,
}

#[derive(Template)]
#[template(path = "roster.html")]
struct RosterPage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    rows: Vec<RosterLine>,
    as_of: String,
    default_tz: String,
}

pub async fn roster(State(state): State<WebState>, headers: HeaderMap, Query(q): Query<Msg>) -> Page {
    let session = trainer(&state, &headers).await?;
    let roster = state.roster.get(&state, session.trainer.id).await.map_err(store_error)?;
    let rows = roster
        .rows
        .iter()
        .map(|r| RosterLine {
            id: r.client.id,
            name: r.client.name.clone(),
            needs_attention: r.row.as_ref().is_some_and(|x| x.needs_attention),
            days7: view::pct(r.row.as_ref().and_then(|x| x.days7)),
            days30: view::pct(r.row.as_ref().and_then(|x| x.days30)),
            days90: view::pct(r.row.as_ref().and_then(|x| x.days90)),
            homework: r.homework,
        })
        .collect();
    let as_of = format!("As of {} UTC.", roster.computed.format("%Y-%m-%d %H:%M"));
    let default_tz = state.config.clients.default_tz.clone();
    let default_tz = if default_tz.is_empty() { "UTC".into() } else { default_tz };
    Ok(html(RosterPage {
        message: q.msg,
        error: String::new(),
        trainer: session.trainer.name,
        csrf: session.csrf,
        rows,
        as_of,
        default_tz,
    }))
}

#[derive(Deserialize)]
pub struct AddClientForm {
    #[serde(default)]
    csrf: String,
    name: String,
    tz: String,
    #[serde(default)]
    hr_max: String,
    #[serde(default)]
    birth_year: String,
}

fn optional_number<T: std::str::FromStr>(s: &str, what: &str) -> Result<Option<T>, Response> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        error_page(StatusCode::BAD_REQUEST, "Not accepted", &format!("{what} {s:?} is not a whole number"))
    })
}

pub async fn add_client(State(state): State<WebState>, headers: HeaderMap, Form(form): Form<AddClientForm>) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let hr_max = optional_number::<u32>(&form.hr_max, "HR max")?;
    let born = optional_number::<i32>(&form.birth_year, "year of birth")?;
    let new = NewClient::parse(&form.name, form.tz.trim(), hr_max, born)
        .map_err(|p| error_page(StatusCode::BAD_REQUEST, "Not accepted", &p.join("\n")))?;
    let client = state.store.add_client(&new).await.map_err(store_error)?;
    state.store.set_client_trainer(client.id, Some(session.trainer.id)).await.map_err(store_error)?;
    state.roster.clear(session.trainer.id);
    tracing::info!(trainer = %session.trainer.name, client = %client.name, "client added");
    Ok(back(&format!("/clients/{}", client.id), &format!("Added {}.", client.name)))
}

// ---- client ------------------------------------------------------------------------

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
    provider: String,
    state: String,
    last_sync: String,
    reason: String,
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
    week: Vec<String>,
    week_rows: Vec<WeekRow>,
    occurrences: Vec<view::OccurrenceLine>,
    charts: Vec<&'static str>,
    workouts: Vec<WorkoutLine>,
    reflections: Vec<ReflectionLine>,
    homework: Vec<HomeworkLine>,
    today: String,
    devices: Vec<String>,
    share_links: u64,
}

pub const CLIENT_CHARTS: [&str; 4] = ["adherence", "trend", "cardio", "reps"];

pub async fn client_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Msg>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    let client = my_client(&state, &session, id).await?;
    render_client(&state, session, client, q.msg, None).await
}

/// A link shown once on the page: (what it is, the link).
type OnceLink = Option<(String, String)>;

async fn render_client(state: &WebState, session: Session, client: Client, message: String, link: OnceLink) -> Page {
    let (link_label, new_link) = link.unwrap_or_default();
    let now = Utc::now();
    let tz = client_tz(&client).map_err(store_error)?;
    let today = now.with_timezone(&tz).date_naive();
    let week = week_view(state, &client, now, Some(client.id)).await.map_err(store_error)?;
    let homework = state
        .store
        .list_homework(Some(client.id))
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|r| {
            let h = r.homework;
            let span = match h.until {
                Some(u) => format!("{} to {u}", h.from),
                None => format!("from {}", h.from),
            };
            HomeworkLine { id: h.id, text: h.text.clone(), span, active: h.until.is_none_or(|u| u >= today) }
        })
        .collect();
    let evidence = state.store.evidence(client.id, tz, today - Duration::days(13), today).await.map_err(store_error)?;
    let workouts = evidence
        .workouts
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
    let reflections = state
        .store
        .reflections(client.id, 6)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|r| ReflectionLine { week: r.week.to_string(), rating: r.rating, note: r.note.unwrap_or_default() })
        .collect();
    let devices = state
        .store
        .pairings()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|p| p.client_id == client.id)
        .map(|p| p.address)
        .collect();
    let share_links = state.store.live_share_links(client.id).await.map_err(store_error)?;
    let accounts = state
        .store
        .accounts()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|a| a.client_id == client.id)
        .map(|a| AccountLine {
            provider: a.provider,
            state: a.state.replace('_', " "),
            last_sync: a
                .last_sync
                .map(|t| t.with_timezone(&tz).format("%b %-d, %H:%M").to_string())
                .unwrap_or_default(),
            reason: a.last_error.unwrap_or_default(),
        })
        .collect();
    Ok(html(ClientPage {
        message,
        error: String::new(),
        trainer: session.trainer.name,
        csrf: session.csrf,
        id: client.id,
        name: client.name.clone(),
        tz: client.tz.clone(),
        hr_max: crate::status::hr_max(&client, today).map(|h| format!("{h:.0}")).unwrap_or_else(|| "unknown".into()),
        new_link,
        link_label,
        accounts,
        week: week.days,
        week_rows: week.rows,
        occurrences: week.occurrences,
        charts: CLIENT_CHARTS.to_vec(),
        workouts,
        reflections,
        homework,
        today: today.to_string(),
        devices,
        share_links,
    }))
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    csrf: String,
    phrase: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    window: String,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub async fn assign(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<AssignForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    let args = AssignArgs {
        client: client.name.clone(),
        phrase: form.phrase,
        days: non_empty(&form.days),
        window: non_empty(&form.window),
        from: None,
        until: None,
        done_at: None,
        partial_at: None,
    };
    let row = assign_to(&state.store, &client, &args).await.map_err(failure)?;
    state.roster.clear(session.trainer.id);
    Ok(back(&format!("/clients/{id}"), &format!("Assigned #{} {}.", row.homework.id, row.homework.text)))
}

pub async fn end_homework(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path((id, hw)): Path<(i64, i64)>,
    Form(form): Form<CsrfForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    let row = state.store.homework(hw).await.map_err(store_error)?;
    if row.client_id != client.id {
        return Err(not_found());
    }
    let tz = client_tz(&client).map_err(store_error)?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    // Ended today: today is its last day, as the button says.
    state.store.end_homework(hw, today).await.map_err(store_error)?;
    state.roster.clear(session.trainer.id);
    Ok(back(&format!("/clients/{id}"), &format!("#{hw} {} ends; last day {today}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct ExcuseForm {
    #[serde(default)]
    csrf: String,
    homework_id: i64,
    date: String,
    #[serde(default)]
    reason: String,
}

pub async fn excuse(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ExcuseForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    let row = state.store.homework(form.homework_id).await.map_err(store_error)?;
    if row.client_id != client.id {
        return Err(not_found());
    }
    let tz = client_tz(&client).map_err(store_error)?;
    let on = crate::cli::homework::parse_date(&form.date, tz, "date").map_err(failure)?;
    let reason = non_empty(&form.reason);
    state.store.excuse(client.id, row.homework.id, on, reason.as_deref()).await.map_err(store_error)?;
    state.roster.clear(session.trainer.id);
    Ok(back(&format!("/clients/{id}"), &format!("Excused {on}: {}.", row.homework.text)))
}

#[derive(Deserialize)]
pub struct PairForm {
    #[serde(default)]
    csrf: String,
    address: String,
}

pub async fn pair(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<PairForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    let address = crate::store::devices::parse_address(&form.address)
        .map_err(|e| error_page(StatusCode::BAD_REQUEST, "Not accepted", &e))?;
    // A sensor paired to another trainer's client stays theirs.
    if let Ok(d) = state.store.device(&address).await {
        if let Some(owner) = d.client_id.filter(|c| *c != client.id) {
            if state.store.client_of(session.trainer.id, owner).await.is_err() {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "Not accepted",
                    "that sensor is paired with someone else",
                ));
            }
        }
    }
    state.store.pair_device(&address, client.id).await.map_err(store_error)?;
    Ok(back(&format!("/clients/{id}"), &format!("Paired {address} with {}.", client.name)))
}

#[derive(Deserialize)]
pub struct ShareForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
}

pub async fn share(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ShareForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    if form.action == "revoke" {
        let n = state.store.revoke_share_links(client.id).await.map_err(store_error)?;
        return Ok(back(&format!("/clients/{id}"), &format!("Revoked {n} link(s) of {}.", client.name)));
    }
    let token = state.store.new_share_link(client.id).await.map_err(store_error)?;
    let link = format!("{}/c/{token}", state.config.web.base_url());
    // Shown once, on this response; never in a URL the browser keeps in its history.
    let label = format!("Private link for {}", client.name);
    render_client(&state, session, client, String::new(), Some((label, link))).await
}

#[derive(Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    csrf: String,
    provider: String,
    #[serde(default)]
    api_key: String,
}

/// Connect a cloud account: Strava gives an authorization link to send the client;
/// intervals.icu takes the client's API key.
pub async fn connect(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ConnectForm>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    check_csrf(&session, &form.csrf)?;
    let client = my_client(&state, &session, id).await?;
    let refused = |e: String| error_page(StatusCode::BAD_REQUEST, "Not connected", &e);
    match form.provider.as_str() {
        "intervals" => {
            let athlete =
                crate::providers::intervals::connect(&state.providers, &state.store, client.id, &form.api_key)
                    .await
                    .map_err(refused)?;
            Ok(back(
                &format!("/clients/{id}"),
                &format!("Connected intervals.icu athlete {athlete}; the first sync starts within a minute."),
            ))
        }
        "strava" => {
            let link = crate::providers::oauth::authorization_link(&state.providers, &state.store, "strava", client.id)
                .await
                .map_err(refused)?;
            let label = format!(
                "Strava authorization link, valid {} minutes and once",
                crate::providers::oauth::LINK_TTL.num_minutes()
            );
            render_client(&state, session, client, String::new(), Some((label, link))).await
        }
        other => Err(refused(format!("no provider {other:?}"))),
    }
}

// ---- workout -----------------------------------------------------------------------

struct PartLine {
    source: String,
    start: String,
    minutes: String,
    avg_hr: String,
    samples: u32,
    sets: String,
}

#[derive(Template)]
#[template(path = "workout.html")]
struct WorkoutPage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    client_id: i64,
    client_name: String,
    id: i64,
    title: String,
    parts: Vec<PartLine>,
}

/// A workout of the client within the last year, by its id or any of its parts' ids.
pub async fn find_workout(state: &WebState, client: &Client, id: i64) -> Result<Option<Workout>, StoreError> {
    let tz = client_tz(client)?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let ev = state.store.evidence(client.id, tz, today - Duration::days(365), today).await?;
    Ok(ev.workouts.into_iter().find(|w| w.id == id || w.parts.iter().any(|p| p.id == id)))
}

pub async fn workout_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path((id, aid)): Path<(i64, i64)>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    let client = my_client(&state, &session, id).await?;
    let w = find_workout(&state, &client, aid).await.map_err(store_error)?.ok_or_else(not_found)?;
    let tz = client_tz(&client).map_err(store_error)?;
    let parts = w
        .parts
        .iter()
        .map(|p| PartLine {
            source: p.source.clone(),
            start: p.start.with_timezone(&tz).format("%H:%M:%S").to_string(),
            minutes: format!("{:.1}", p.duration_s / 60.0),
            avg_hr: p.avg_hr.map(|h| format!("{h:.0}")).unwrap_or_else(|| "–".into()),
            samples: p.hr_samples,
            sets: p.sets.iter().map(|s| format!("{} × {}", s.reps, s.exercise)).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let title = format!(
        "{} · {} · {:.0} min",
        w.start.with_timezone(&tz).format("%a %b %-d, %H:%M"),
        w.activity_type,
        w.duration_s / 60.0
    );
    Ok(html(WorkoutPage {
        message: String::new(),
        error: String::new(),
        trainer: session.trainer.name,
        csrf: session.csrf,
        client_id: client.id,
        client_name: client.name,
        id: w.id,
        title,
        parts,
    }))
}

// ---- charts ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ChartQuery {
    from: Option<String>,
    to: Option<String>,
    activity: Option<i64>,
}

/// `kind.svg` or `kind.png`.
pub fn chart_file(file: &str) -> Option<(Kind, Format)> {
    let (kind, ext) = file.rsplit_once('.')?;
    let format = match ext {
        "svg" => Format::Svg,
        "png" => Format::Png,
        _ => return None,
    };
    Some((Kind::parse(kind)?, format))
}

pub fn chart_response(chart: &charts::Chart, format: Format) -> Response {
    match charts::render(chart, format) {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, format.content_type()), (header::CACHE_CONTROL, "private, max-age=60")], bytes)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "drawing a chart failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Chart failed", "the error is in the server's log")
        }
    }
}

/// Draw one client's chart (the client page and the private link share this).
pub async fn client_chart(state: &WebState, client: &Client, file: &str, q: &ChartQuery) -> Page {
    let (kind, format) = chart_file(file).filter(|(k, _)| k.per_client()).ok_or_else(not_found)?;
    let tz = client_tz(client).map_err(store_error)?;
    let date = |s: &Option<String>, what: &str| {
        s.as_deref().map(|s| crate::cli::homework::parse_date(s, tz, what)).transpose().map_err(failure)
    };
    let req = Request {
        kind,
        client: Some(client),
        clients: std::slice::from_ref(client),
        from: date(&q.from, "from")?,
        to: date(&q.to, "to")?,
        activity: q.activity,
        now: Utc::now(),
    };
    let chart = data::build(&state.store, &state.judging(), &req).await.map_err(store_error)?;
    Ok(chart_response(&chart, format))
}

pub async fn chart(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path((id, file)): Path<(i64, String)>,
    Query(q): Query<ChartQuery>,
) -> Page {
    let session = trainer(&state, &headers).await?;
    let client = my_client(&state, &session, id).await?;
    client_chart(&state, &client, &file, &q).await
}

pub async fn roster_chart(State(state): State<WebState>, headers: HeaderMap, Path(file): Path<String>) -> Page {
    let session = trainer(&state, &headers).await?;
    let (kind, format) = chart_file(&file).ok_or_else(not_found)?;
    if kind != Kind::Roster {
        return Err(not_found());
    }
    let roster = state.roster.get(&state, session.trainer.id).await.map_err(store_error)?;
    let rows = roster.rows.iter().filter_map(|r| r.row.clone()).collect();
    Ok(chart_response(&data::roster_chart(rows, roster.computed.date_naive()), format))
}

/// The trainer's id of a request, for handlers that only need to know who asks.
pub async fn trainer_id(state: &WebState, headers: &HeaderMap) -> Result<TrainerId, Response> {
    Ok(trainer(state, headers).await?.trainer.id)
}
