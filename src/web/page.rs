//! Responses every page shares: a rendered template, error pages, the redirect that
//! carries a message to the next page, and [`WebError`], which turns the application
//! layer's errors into pages (bad input 400, not found or not yours 404, the rest 500
//! with the detail in the log only).

use crate::app::AppError;
use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// A page handler's result.
pub type Page = Result<Response, WebError>;

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

/// Redirect after a form, with a message for the next page.
pub fn back(to: &str, message: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let msg: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    Redirect::to(&format!("{to}{sep}msg={msg}")).into_response()
}

/// The `?msg=` a redirect from [`back`] carries.
#[derive(Deserialize, Default)]
pub struct Msg {
    #[serde(default)]
    pub msg: String,
}

/// Why a page is not shown.
#[derive(Debug)]
pub enum WebError {
    /// 400 with the reason, written for the person who filled in the form.
    Input { title: &'static str, detail: String },
    /// 404: missing, or not the viewer's (the same answer, so nothing leaks).
    NotFound,
    /// 403: a form without the right security token.
    Forbidden(&'static str),
    /// Not logged in: to the login page.
    Login,
    /// 500; the detail goes to the log only.
    Internal(String),
}

impl WebError {
    pub fn input(detail: impl Into<String>) -> Self {
        Self::Input { title: "Not accepted", detail: detail.into() }
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Input(detail) => Self::Input { title: "Not accepted", detail },
            AppError::NotFound(_) => Self::NotFound,
            AppError::Runtime(e) => Self::Internal(format!("{e:#}")),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::Input { title, detail } => error_page(StatusCode::BAD_REQUEST, title, &detail),
            Self::NotFound => not_found(),
            Self::Forbidden(why) => error_page(StatusCode::FORBIDDEN, "Form refused", why),
            Self::Login => Redirect::to("/login").into_response(),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "dashboard request failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the error is in the server's log",
                )
            }
        }
    }
}
