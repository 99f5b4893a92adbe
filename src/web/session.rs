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

/// Failed logins, counted three ways, each refusing further attempts (without checking
/// the password) for a while once it has had its free failures, the wait doubling with
/// every failure after them (1 s, 2 s, 4 s, ... up to 15 minutes):
/// - per (trainer name, client address): 5 free. Someone guessing anna's password from
///   one address waits; anna at another address does not, so one address cannot lock a
///   trainer out, let alone all of them.
/// - per client address, whatever the names: 20 free, against one address trying many
///   names (it only ever slows itself).
/// - all failures together: at most [`Limits::global`] a minute, then every login waits
///   for the minute to end, except from a (name, address) pair that has logged in
///   before (since the start): many addresses guessing at once (which the pairs cannot
///   see) meet this ceiling, a trainer at their usual address does not. It also bounds
///   how fast the map can grow.
///
/// A success clears its (name, address) pair and remembers it. The addresses are
/// [`super::proxy::ClientAddr`]s; an IPv6 one counts as its /64, which one household or
/// one attacker's machine holds whole (a new address in it costs them nothing).
/// Kept in memory: a restart forgives, which costs an attacker a restart of the server.
pub struct Throttle {
    limits: Limits,
    state: Mutex<State>,
}

/// The throttle's numbers (the defaults above; tests use smaller ones).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub pair_free: u32,
    pub address_free: u32,
    /// Failures, from anyone, within [`Limits::window`] before everyone waits.
    pub global: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { pair_free: 5, address_free: 20, global: 100, window: Duration::from_secs(60) }
    }
}

#[derive(Default)]
struct State {
    /// `pair:NAME|ADDRESS` and `ip:ADDRESS` → (failures, last failure).
    counts: HashMap<String, (u32, Instant)>,
    /// The current global window's start and its failures.
    window: Option<(Instant, u32)>,
    /// Pairs that logged in before (bounded by [`KNOWN_MAX`]).
    known: std::collections::HashSet<String>,
}

const KNOWN_MAX: usize = 10_000;

const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self { limits, state: Mutex::default() }
    }

    fn pair_key(name: &str, ip: IpAddr) -> String {
        format!("pair:{}|{}", name.trim().to_lowercase(), Self::who(ip))
    }

    fn address_key(ip: IpAddr) -> String {
        format!("ip:{}", Self::who(ip))
    }

    /// An IPv4 address as itself; an IPv6 one as its /64.
    fn who(ip: IpAddr) -> String {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("{}/64", std::net::Ipv6Addr::from_bits(v6.to_bits() & !0u128 << 64)),
            },
            v4 => v4.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the caller must still wait, if at all.
    pub fn wait(&self, name: &str, ip: IpAddr) -> Option<Duration> {
        self.wait_at(name, ip, Instant::now())
    }

    fn wait_at(&self, name: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let state = self.lock();
        let backoff = |key: String, free: u32| {
            let (n, last) = state.counts.get(&key).copied()?;
            (n >= free).then_some(())?;
            let wait = Duration::from_secs(1u64 << (n - free).min(10)).min(MAX_WAIT);
            let passed = now.saturating_duration_since(last);
            (passed < wait).then(|| wait - passed)
        };
        let pair = Self::pair_key(name, ip);
        let global = state.window.filter(|_| !state.known.contains(&pair)).and_then(|(start, n)| {
            let passed = now.saturating_duration_since(start);
            (n >= self.limits.global && passed < self.limits.window).then(|| self.limits.window - passed)
        });
        [backoff(pair, self.limits.pair_free), backoff(Self::address_key(ip), self.limits.address_free), global]
            .into_iter()
            .flatten()
            .max()
    }

    pub fn failed(&self, name: &str, ip: IpAddr) {
        self.failed_at(name, ip, Instant::now());
    }

    fn failed_at(&self, name: &str, ip: IpAddr, now: Instant) {
        let mut state = self.lock();
        // Forget entries idle for longer than the longest wait, so the map stays small.
        state.counts.retain(|_, (_, last)| now.saturating_duration_since(*last) < MAX_WAIT * 2);
        for key in [Self::pair_key(name, ip), Self::address_key(ip)] {
            let e = state.counts.entry(key).or_insert((0, now));
            *e = (e.0.saturating_add(1), now);
        }
        state.window = match state.window {
            Some((start, n)) if now.saturating_duration_since(start) < self.limits.window => {
                Some((start, n.saturating_add(1)))
            }
            _ => Some((now, 1)),
        };
    }

    /// A right password: that name at that address starts afresh.
    pub fn succeeded(&self, name: &str, ip: IpAddr) {
        let pair = Self::pair_key(name, ip);
        let mut state = self.lock();
        state.counts.remove(&pair);
        if state.known.len() < KNOWN_MAX {
            state.known.insert(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_pair_waits_after_its_free_attempts_and_nobody_else_does() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..5 {
            assert!(t.wait_at("Ann", ip(1), now).is_none());
            t.failed_at("ann", ip(1), now);
        }
        assert_eq!(t.wait_at("ANN ", ip(1), now), Some(Duration::from_secs(1)), "the pair waits, any case");
        assert!(t.wait_at("ann", ip(2), now).is_none(), "ann from elsewhere is not locked out");
        assert!(t.wait_at("bob", ip(1), now).is_none(), "the address may still try another name");
        // Each further failure doubles the wait.
        let later = now + Duration::from_secs(1);
        t.failed_at("ann", ip(1), later);
        assert_eq!(t.wait_at("ann", ip(1), later), Some(Duration::from_secs(2)));
        assert!(t.wait_at("ann", ip(1), later + Duration::from_secs(2)).is_none(), "until it has passed");
        t.succeeded("Ann", ip(1));
        assert!(t.wait_at("ann", ip(1), later).is_none(), "a success clears the pair");
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let t = Throttle::default();
        let now = Instant::now();
        let at = |s: &str| s.parse::<IpAddr>().expect("ip");
        for i in 1..=5 {
            t.failed_at("ann", at(&format!("2001:db8:1:2::{i}")), now);
        }
        assert!(t.wait_at("ann", at("2001:db8:1:2:ffff::9"), now).is_some(), "a new address in the same /64");
        assert!(t.wait_at("ann", at("2001:db8:1:3::1"), now).is_none(), "another /64");
        assert_eq!(Throttle::who(at("::ffff:10.0.0.1")), "10.0.0.1");
    }

    #[test]
    fn one_address_trying_many_names_slows_only_itself() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..20 {
            t.failed_at(&format!("name{i}"), ip(1), now);
        }
        assert!(t.wait_at("fresh", ip(1), now).is_some(), "the address waits for any name");
        assert!(t.wait_at("fresh", ip(2), now).is_none(), "others do not");
        t.succeeded("name3", ip(1));
        assert!(t.wait_at("fresh", ip(1), now).is_some(), "one right guess does not clear the address");
    }

    #[test]
    fn many_addresses_failing_at_once_meet_the_global_ceiling() {
        let limits = Limits { global: 30, ..Limits::default() };
        let t = Throttle::new(limits);
        let now = Instant::now();
        for i in 0..29u8 {
            t.failed_at("ann", IpAddr::from([192, 0, 2, i]), now);
        }
        assert!(t.wait_at("ben", ip(9), now).is_none(), "below the ceiling");
        t.failed_at("ann", IpAddr::from([192, 0, 2, 200]), now);
        let half = now + Duration::from_secs(20);
        assert_eq!(t.wait_at("ben", ip(9), half), Some(Duration::from_secs(40)), "everyone waits out the minute");
        assert!(t.wait_at("ben", ip(9), now + Duration::from_secs(60)).is_none(), "a new minute starts afresh");
        t.failed_at("ann", ip(7), now + Duration::from_secs(61));
        assert!(t.wait_at("ben", ip(9), now + Duration::from_secs(61)).is_none());
        // A pair that logged in before passes the ceiling.
        t.succeeded("ben", ip(9));
        for i in 0..30u8 {
            t.failed_at("ann", IpAddr::from([198, 51, 100, i]), now + Duration::from_secs(62));
        }
        assert!(t.wait_at("cid", ip(8), now + Duration::from_secs(63)).is_some());
        assert!(t.wait_at("Ben", ip(9), now + Duration::from_secs(63)).is_none(), "a known pair is let through");
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
