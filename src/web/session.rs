//! Who is asking: the session cookie, the extractors that make a handler take a
//! logged-in trainer ([`LoggedIn`]) or a form with the session's CSRF token
//! ([`CsrfForm`]), so no handler can forget either check; cookies; and login throttling.

use super::page::WebError;
use super::WebState;
use crate::crypto::same_secret;
use crate::store::web::Session;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "coachd_session";
/// The login form's double-submit token, before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "coachd_login";
pub use crate::app::trainers::SESSION_TTL;

/// A cookie's value from the request's Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a cookie only this site's own requests carry, and no script reads.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Duration::ZERO, secure)
}

/// The session a request's cookie names, if it is live.
pub async fn session(state: &WebState, headers: &HeaderMap) -> Result<Option<(String, Session)>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    Ok(state.app.session(token).await?.map(|s| (token.to_string(), s)))
}

/// A logged-in trainer; without a live session the request goes to the login page.
pub struct LoggedIn {
    /// The cookie's token (logout ends it).
    pub token: String,
    pub session: Session,
}

impl FromRequestParts<WebState> for LoggedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        match session(state, &parts.headers).await? {
            Some((token, session)) => Ok(Self { token, session }),
            None => Err(WebError::Login),
        }
    }
}

/// A form from a logged-in trainer whose `csrf` field is the session's token; any
/// other form is refused (403) before the handler runs.
pub struct CsrfForm<T> {
    pub token: String,
    pub session: Session,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Refuse a form whose token is not `expected`.
pub fn check_csrf(expected: &str, sent: &str, why: &'static str) -> Result<(), WebError> {
    if !sent.is_empty() && same_secret(expected, sent) {
        Ok(())
    } else {
        Err(WebError::Forbidden(why))
    }
}

/// What a stale or forged dashboard form is told.
pub const STALE_FORM: &str = "the form's security token is missing or stale: reload the page and send it again";

/// A form whose `csrf` field must be `expected`: checked before anything else of it is
/// used (`why` is what a refused sender is told), then read as `T`.
pub fn checked_form<T: DeserializeOwned>(body: &[u8], expected: &str, why: &'static str) -> Result<T, WebError> {
    let sent: CsrfField = parse_form(body)?;
    check_csrf(expected, &sent.csrf, why)?;
    parse_form(body)
}

/// A urlencoded body as `T`, or a 400 naming what is wrong with it.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebError> {
    serde_urlencoded::from_bytes(body).map_err(|e| WebError::input(format!("the form is incomplete: {e}")))
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let LoggedIn { token, session } = LoggedIn::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| WebError::input(format!("the form could not be read: {e}")))?;
        let form = checked_form(&body, &session.csrf, STALE_FORM)?;
        Ok(Self { token, session, form })
    }
}

/// Failed logins per trainer name and per client address: after `FREE` failures each
/// further attempt waits twice as long as the last (1 s, 2 s, 4 s, ... up to 15 minutes)
/// and is refused without checking the password until then. A success clears the name.
/// Kept in memory: a restart forgives, which costs an attacker a restart of the server.
#[derive(Default)]
pub struct Throttle {
    state: Mutex<HashMap<String, (u32, Instant)>>,
}

const FREE: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    fn keys(name: &str, ip: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("name:{}", name.trim().to_lowercase())];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// How long the caller must still wait, if at all.
    pub fn wait(&self, name: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        Self::keys(name, ip)
            .iter()
            .filter_map(|k| state.get(k))
            .filter(|(n, _)| *n >= FREE)
            .filter_map(|(n, last)| {
                let wait = Duration::from_secs(1u64 << (n - FREE).min(10)).min(MAX_WAIT);
                (last.elapsed() < wait).then(|| wait - now.duration_since(*last))
            })
            .max()
    }

    pub fn failed(&self, name: &str, ip: Option<IpAddr>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        // Forget entries idle for longer than the longest wait, so the map stays small.
        state.retain(|_, (_, last)| now.duration_since(*last) < MAX_WAIT * 2);
        for k in Self::keys(name, ip) {
            let e = state.entry(k).or_insert((0, now));
            *e = (e.0.saturating_add(1), now);
        }
    }

    pub fn succeeded(&self, name: &str) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.remove(&format!("name:{}", name.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_after_free_attempts() {
        let t = Throttle::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..FREE {
            assert!(t.wait("Ann", ip).is_none());
            t.failed("ann", ip);
        }
        assert!(t.wait("ANN", None).is_some(), "the name is throttled whatever the address");
        assert!(t.wait("bob", ip).is_some(), "the address is throttled whatever the name");
        assert!(t.wait("bob", Some(IpAddr::from([10, 0, 0, 2]))).is_none());
        t.succeeded("ann");
        assert!(t.wait("ann", None).is_none());
    }

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; coachd_session=abc".parse().expect("header"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(set_cookie("x", "y", SESSION_TTL, true).contains("HttpOnly; SameSite=Strict; Max-Age=1209600; Secure"));
    }
}
