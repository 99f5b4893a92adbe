//! Who is asking: the session cookie, the extractors that make a handler take a
//! logged-in trainer ([`LoggedIn`]) or a form with the session's CSRF token
//! ([`CsrfForm`]), so no handler can forget either check; cookies; and login throttling.

use super::page::WebError;
use super::WebState;
use crate::app::{App, AppResult};
use crate::crypto::same_secret;
use crate::store::throttle::{FailureCount, ThrottleKeys, ThrottleRows};
use crate::store::web::Session;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::time::Duration;

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
///   before: many addresses guessing at once (which the pairs cannot see) meet this
///   ceiling, a trainer at their usual address does not. It also bounds how fast the
///   counters' rows can grow.
///
/// A success clears its (name, address) pair and remembers it (up to [`KNOWN_MAX`]
/// pairs). The addresses are [`super::proxy::ClientAddr`]s; an IPv6 one counts as its
/// /64, which one household or one attacker's machine holds whole (a new address in it
/// costs them nothing).
///
/// The counters are rows of the store ([`crate::store::throttle`]), so every replica on
/// one database counts the same failures, and a restart forgives nothing; a counter idle
/// for longer than twice the longest wait is forgotten. Who waits how long is decided
/// here, by the pure [`wait`] and [`after_failure`] over those rows.
pub struct Throttle {
    limits: Limits,
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

/// Pairs remembered as having logged in, at most.
pub const KNOWN_MAX: i64 = 10_000;

const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// Counters idle this long are forgotten.
const IDLE: Duration = Duration::from_secs(2 * 15 * 60);

/// The time the store's rows are written in: ms since 1970 UTC.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How long an attempt whose counters are `rows` must still wait at `now_ms`, if at all.
pub fn wait(limits: &Limits, rows: &ThrottleRows, now_ms: i64) -> Option<Duration> {
    let passed = |since: i64| Duration::from_millis(u64::try_from(now_ms.saturating_sub(since)).unwrap_or(0));
    let backoff = |count: Option<FailureCount>, free: u32| {
        let c = count?;
        let over = c.failures.checked_sub(i64::from(free)).filter(|n| *n >= 0)?;
        let wait = Duration::from_secs(1u64 << over.min(10)).min(MAX_WAIT);
        let passed = passed(c.last_ms);
        (passed < wait).then(|| wait - passed)
    };
    let global = rows.global.filter(|_| !rows.known).and_then(|g| {
        let passed = passed(g.first_ms);
        (g.failures >= i64::from(limits.global) && passed < limits.window).then(|| limits.window - passed)
    });
    [backoff(rows.pair, limits.pair_free), backoff(rows.address, limits.address_free), global]
        .into_iter()
        .flatten()
        .max()
}

/// The counters after one more failure at `now_ms`: the pair's and the address's count
/// it, and so does the global window (a new one, when the last has ended).
pub fn after_failure(limits: &Limits, rows: &ThrottleRows, now_ms: i64) -> ThrottleRows {
    let count = |c: Option<FailureCount>| {
        let c = c.unwrap_or(FailureCount { failures: 0, first_ms: now_ms, last_ms: now_ms });
        Some(FailureCount { failures: c.failures.saturating_add(1), first_ms: c.first_ms, last_ms: now_ms })
    };
    let global = match rows.global {
        Some(g) if now_ms.saturating_sub(g.first_ms) < ms(limits.window) => {
            FailureCount { failures: g.failures.saturating_add(1), first_ms: g.first_ms, last_ms: now_ms }
        }
        _ => FailureCount { failures: 1, first_ms: now_ms, last_ms: now_ms },
    };
    ThrottleRows { pair: count(rows.pair), address: count(rows.address), global: Some(global), known: rows.known }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The keys of the counters of this name at this address.
    pub fn keys(name: &str, ip: IpAddr) -> ThrottleKeys {
        let who = Self::who(ip);
        ThrottleKeys { pair: format!("pair:{}|{who}", name.trim().to_lowercase()), address: format!("ip:{who}") }
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

    /// How long the caller must still wait, if at all.
    pub async fn wait(&self, app: &App, name: &str, ip: IpAddr) -> AppResult<Option<Duration>> {
        let rows = app.throttle_rows(&Self::keys(name, ip)).await?;
        Ok(wait(&self.limits, &rows, now_ms()))
    }

    /// A wrong password (or name), counted for every replica.
    pub async fn failed(&self, app: &App, name: &str, ip: IpAddr) -> AppResult<()> {
        let now = now_ms();
        let limits = self.limits;
        app.throttle_failed(&Self::keys(name, ip), now - ms(IDLE), |rows| after_failure(&limits, rows, now)).await?;
        Ok(())
    }

    /// A right password: that name at that address starts afresh, and is known.
    pub async fn succeeded(&self, app: &App, name: &str, ip: IpAddr) -> AppResult<()> {
        app.throttle_succeeded(&Self::keys(name, ip), now_ms(), KNOWN_MAX).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// The store's rows, kept as the store keeps them, under the rules of [`wait`] and
    /// [`after_failure`].
    #[derive(Default)]
    struct Rows {
        limits: Limits,
        counts: HashMap<String, FailureCount>,
        known: HashSet<String>,
    }

    const GLOBAL: &str = "global";

    impl Rows {
        fn new(limits: Limits) -> Self {
            Self { limits, ..Self::default() }
        }

        fn rows(&self, name: &str, ip: IpAddr) -> (ThrottleKeys, ThrottleRows) {
            let keys = Throttle::keys(name, ip);
            let rows = ThrottleRows {
                pair: self.counts.get(&keys.pair).copied(),
                address: self.counts.get(&keys.address).copied(),
                global: self.counts.get(GLOBAL).copied(),
                known: self.known.contains(&keys.pair),
            };
            (keys, rows)
        }

        fn wait_at(&self, name: &str, ip: IpAddr, now: i64) -> Option<Duration> {
            wait(&self.limits, &self.rows(name, ip).1, now)
        }

        fn failed_at(&mut self, name: &str, ip: IpAddr, now: i64) {
            self.counts.retain(|_, c| c.last_ms >= now - ms(IDLE));
            let (keys, rows) = self.rows(name, ip);
            let next = after_failure(&self.limits, &rows, now);
            for (key, c) in [(keys.pair, next.pair), (keys.address, next.address), (GLOBAL.into(), next.global)] {
                match c {
                    Some(c) => drop(self.counts.insert(key, c)),
                    None => drop(self.counts.remove(&key)),
                }
            }
        }

        fn succeeded(&mut self, name: &str, ip: IpAddr) {
            let keys = Throttle::keys(name, ip);
            self.counts.remove(&keys.pair);
            self.known.insert(keys.pair);
        }
    }

    const T0: i64 = 1_800_000_000_000;

    fn secs(n: i64) -> i64 {
        n * 1000
    }

    #[test]
    fn a_pair_waits_after_its_free_attempts_and_nobody_else_does() {
        let mut t = Rows::default();
        let now = T0;
        for _ in 0..5 {
            assert!(t.wait_at("Ann", ip(1), now).is_none());
            t.failed_at("ann", ip(1), now);
        }
        assert_eq!(t.wait_at("ANN ", ip(1), now), Some(Duration::from_secs(1)), "the pair waits, any case");
        assert!(t.wait_at("ann", ip(2), now).is_none(), "ann from elsewhere is not locked out");
        assert!(t.wait_at("bob", ip(1), now).is_none(), "the address may still try another name");
        // Each further failure doubles the wait.
        let later = now + secs(1);
        t.failed_at("ann", ip(1), later);
        assert_eq!(t.wait_at("ann", ip(1), later), Some(Duration::from_secs(2)));
        assert!(t.wait_at("ann", ip(1), later + secs(2)).is_none(), "until it has passed");
        t.succeeded("Ann", ip(1));
        assert!(t.wait_at("ann", ip(1), later).is_none(), "a success clears the pair");
    }

    #[test]
    fn the_wait_doubles_up_to_fifteen_minutes_and_idle_counters_are_forgotten() {
        let mut t = Rows::default();
        for _ in 0..30 {
            t.failed_at("ann", ip(1), T0);
        }
        assert_eq!(t.wait_at("ann", ip(1), T0), Some(MAX_WAIT), "capped");
        assert!(t.wait_at("ann", ip(1), T0 + ms(MAX_WAIT)).is_none());
        // Half an hour later another failure forgets the old counters first.
        t.failed_at("ann", ip(1), T0 + ms(IDLE) + 1);
        assert!(t.wait_at("ann", ip(1), T0 + ms(IDLE) + 1).is_none(), "one failure again, not 31");
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let mut t = Rows::default();
        let now = T0;
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
        let mut t = Rows::default();
        let now = T0;
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
        let mut t = Rows::new(limits);
        let now = T0;
        for i in 0..29u8 {
            t.failed_at("ann", IpAddr::from([192, 0, 2, i]), now);
        }
        assert!(t.wait_at("ben", ip(9), now).is_none(), "below the ceiling");
        t.failed_at("ann", IpAddr::from([192, 0, 2, 200]), now);
        let half = now + secs(20);
        assert_eq!(t.wait_at("ben", ip(9), half), Some(Duration::from_secs(40)), "everyone waits out the minute");
        assert!(t.wait_at("ben", ip(9), now + secs(60)).is_none(), "a new minute starts afresh");
        t.failed_at("ann", ip(7), now + secs(61));
        assert!(t.wait_at("ben", ip(9), now + secs(61)).is_none());
        // A pair that logged in before passes the ceiling.
        t.succeeded("ben", ip(9));
        for i in 0..30u8 {
            t.failed_at("ann", IpAddr::from([198, 51, 100, i]), now + secs(62));
        }
        assert!(t.wait_at("cid", ip(8), now + secs(63)).is_some());
        assert!(t.wait_at("Ben", ip(9), now + secs(63)).is_none(), "a known pair is let through");
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
