//! `/login`, `/logout` and `/`: the trainer's way in and out.

use super::page::{html, Page, WebError};
use super::proxy::ClientAddr;
use super::session::{self, clear_cookie, cookie, set_cookie, CsrfForm, LoggedIn, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::WebState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    message: String,
    error: String,
    csrf: String,
}

fn with_cookies(mut r: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn login_page(state: &WebState, error: &str, code: StatusCode) -> Response {
    let Ok(csrf) = crate::crypto::random_token() else {
        return WebError::Internal("the OS random source failed".into()).into_response();
    };
    let cookie = set_cookie(LOGIN_CSRF_COOKIE, &csrf, std::time::Duration::from_secs(3600), state.secure);
    let mut r = html(LoginPage { message: String::new(), error: error.into(), csrf });
    *r.status_mut() = code;
    with_cookies(r, &[cookie])
}

pub async fn login_form(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = session::session(&state, &headers).await {
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
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Page {
    // The login form's token is a double-submit cookie: a page elsewhere cannot read it.
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if session::check_csrf(cookie_token, &form.csrf, "").is_err() {
        return Ok(login_page(&state, "The form expired; please log in again.", StatusCode::FORBIDDEN));
    }
    if let Some(wait) = state.throttle.wait(&state.app, &form.name, ip).await? {
        tracing::warn!(name = %form.name, %ip, "login throttled");
        let msg = format!("Too many failed attempts; try again in {} s.", wait.as_secs() + 1);
        let mut r = login_page(&state, &msg, StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = (wait.as_secs() + 1).to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let Some(trainer) = state.app.check_login(&form.name, &form.password).await? else {
        state.throttle.failed(&state.app, &form.name, ip).await?;
        tracing::warn!(name = %form.name, %ip, "login failed");
        return Ok(login_page(&state, "Wrong name or password.", StatusCode::UNAUTHORIZED));
    };
    state.throttle.succeeded(&state.app, &form.name, ip).await?;
    let (token, _) = state.app.start_session(&trainer).await?;
    tracing::info!(trainer = %trainer.name, %ip, "logged in");
    Ok(with_cookies(
        Redirect::to("/roster").into_response(),
        &[
            set_cookie(SESSION_COOKIE, &token, session::SESSION_TTL, state.secure),
            clear_cookie(LOGIN_CSRF_COOKIE, state.secure),
        ],
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(State(state): State<WebState>, form: CsrfForm<Empty>) -> Page {
    state.app.end_session(&form.token).await?;
    Ok(with_cookies(Redirect::to("/login").into_response(), &[clear_cookie(SESSION_COOKIE, state.secure)]))
}

pub async fn home(_: LoggedIn) -> Response {
    Redirect::to("/roster").into_response()
}
