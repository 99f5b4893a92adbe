//! The HTTP layer every provider's requests go through: [`Api`] keeps to the
//! application's request budget ([`super::ratelimit`]), reads the usage headers, retries
//! 429s at the next window (or `Retry-After`) and 5xx / network failures with jittered
//! backoff, and turns statuses into [`ApiError`]. A GET with a query or a POST with form
//! fields ([`Call`]) goes the same way; a provider whose 2xx answers carry a status of
//! their own (Withings) reads it with a [`Check`], so its "too many requests" and "token
//! refused" are handled like 429 and 401.

use super::clock::Clock;
use super::ratelimit::Limiter;
use super::Manifest;
use crate::crypto::Secret;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::Mutex;

/// How a request proves who it is for.
#[derive(Clone)]
pub enum Auth {
    Bearer(Secret<String>),
    Basic(String, Secret<String>),
    /// The application itself, in headers of the provider's naming (Oura's webhook API:
    /// `x-client-id`, `x-client-secret`).
    Headers(Vec<(&'static str, Secret<String>)>),
}

impl Auth {
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
            Auth::Headers(h) => h.iter().fold(req, |r, (k, v)| r.header(*k, v.expose())),
        }
    }
}

/// What a successful (2xx) answer says when the provider puts its own status inside
/// (Withings answers HTTP 200 with `{"status": 401, ...}`): read by a call's [`Check`].
#[derive(Debug)]
pub enum Verdict {
    /// The answer is what was asked for.
    Fine,
    /// The token is refused, as an HTTP 401 would say.
    Unauthorized,
    /// Too many requests, as an HTTP 429 would say: wait this long (None: the window).
    RateLimited(Option<chrono::Duration>),
    /// The provider failed for now, as a 5xx would say: asked again with backoff.
    Transient(String),
    /// The provider refused the request for a reason of its own.
    Failed(ApiError),
}

/// Reads a 2xx body for what its HTTP status does not say: `(what, body)`.
pub type Check = fn(&str, &[u8]) -> Verdict;

/// One request: its method, URL, query, form body, and the [`Check`] of its answer.
pub struct Call<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub query: &'a [(&'a str, String)],
    pub form: Option<&'a [(&'a str, String)]>,
    pub check: Option<Check>,
}

impl<'a> Call<'a> {
    pub fn get(url: &'a str, query: &'a [(&'a str, String)]) -> Self {
        Self { method: reqwest::Method::GET, url, query, form: None, check: None }
    }

    /// A POST whose parameters are form fields in the body.
    pub fn post_form(url: &'a str, form: &'a [(&'a str, String)]) -> Self {
        Self { method: reqwest::Method::POST, url, query: &[], form: Some(form), check: None }
    }

    pub fn checked(self, check: Check) -> Self {
        Self { check: Some(check), ..self }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is not (or no longer) accepted.
    #[error("{0}: not authorized (HTTP 401)")]
    Unauthorized(String),
    #[error("{0}: forbidden (HTTP 403)")]
    Forbidden(String),
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: the provider keeps failing: {1}")]
    Server(String, String),
    #[error("{0}: the response is not what the provider documents: {1}")]
    Malformed(String, String),
    #[error("{0}: unexpected HTTP {1}: {2}")]
    Unexpected(String, u16, String),
    /// The provider answered with an error of its own (Withings' non-zero `status`).
    #[error("{0}: {1}")]
    Refused(String, String),
    /// This account's share of the budget for this turn is used up (not an error: the
    /// sync resumes at its next turn).
    #[error("this turn's request budget is used up")]
    Budget,
    #[error("stopped")]
    Stopped,
}

/// The requests of one provider application: every request waits for the budget
/// ([`Limiter`]), reads the usage headers, retries 429s at the next window and 5xx /
/// network failures with jittered backoff.
pub struct Api {
    pub manifest: Manifest,
    pub http: reqwest::Client,
    pub limiter: Mutex<Limiter>,
    pub clock: Arc<dyn Clock>,
    /// Requests sent (for benchmarks and logs).
    pub sent: std::sync::atomic::AtomicU64,
}

const ATTEMPTS_5XX: u32 = 5;
const ATTEMPTS_429: u32 = 20;

/// A number in [0.5, 1.5) for backoff jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    0.5 + f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

fn numbers(h: &reqwest::header::HeaderMap, name: &str) -> Vec<u32> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// One window's figures in the IETF draft's form (WHOOP): `limit` names the window
/// ("100, 100;window=60, 10000;window=86400": the one whose limit is 100, a minute),
/// `remaining` what is left of it, `reset` the seconds until it resets.
pub(super) fn quota(
    h: &reqwest::header::HeaderMap,
    limit: &str,
    remaining: &str,
    reset: Option<&str>,
) -> Option<super::ratelimit::Quota> {
    let text = h.get(limit)?.to_str().ok()?;
    let mut parts = text.split(',').map(str::trim);
    let current: u32 = parts.next()?.parse().ok()?;
    let window_s = parts.find_map(|p| {
        let mut fields = p.split(';').map(str::trim);
        let n: u32 = fields.next()?.parse().ok()?;
        let secs = fields.find_map(|f| f.strip_prefix("window=").or_else(|| f.strip_prefix("w=")))?;
        (n == current).then(|| secs.trim().parse::<i64>().ok()).flatten()
    });
    let one = |name: &str| h.get(name)?.to_str().ok()?.split(',').next()?.trim().parse::<u32>().ok();
    Some(super::ratelimit::Quota { limit: current, window_s, remaining: one(remaining)?, reset_s: reset.and_then(one) })
}

impl Api {
    pub fn new(manifest: Manifest, clock: Arc<dyn Clock>) -> Result<Self, super::ProviderError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("coachd/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            // OAuth responses must not be followed anywhere (oauth2's advice).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| super::ProviderError::Invalid(format!("HTTP client: {e}")))?;
        let limiter = Mutex::new(Limiter::new(&manifest.rate_limits));
        Ok(Self { manifest, http, limiter, clock, sent: Default::default() })
    }

    /// Wait until the budget allows one more request, and count it.
    async fn acquire(&self) {
        loop {
            let wait = self.limiter.lock().await.try_acquire(self.clock.now());
            match wait {
                Ok(()) => return,
                Err(until) => {
                    tracing::debug!(provider = %self.manifest.name, %until, "rate limit: waiting");
                    self.clock.sleep_until(until).await;
                }
            }
        }
    }

    /// Count one request now without waiting for the budget (an authorization code that
    /// lives seconds cannot wait for the next window; the provider's own limit decides).
    pub async fn count_now(&self) {
        let _ = self.limiter.lock().await.try_acquire(self.clock.now());
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Wait until the budget has room, without taking it (so credentials can be
    /// checked after a long wait, right before the request).
    pub async fn wait_for_budget(&self) {
        loop {
            let ready = self.limiter.lock().await.ready_at(self.clock.now());
            match ready {
                None => return,
                Some(until) => self.clock.sleep_until(until).await,
            }
        }
    }

    /// One request with an optional JSON body, sent once (within the budget): the status
    /// and the body, whatever the status (the caller decides what a 409 means).
    pub async fn send_once(
        &self,
        method: reqwest::Method,
        what: &str,
        auth: &Auth,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        self.acquire().await;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = auth.apply(self.http.request(method, url));
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| ApiError::Server(what.into(), e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Server(what.into(), e.to_string()))?;
        Ok((status, body.to_vec()))
    }

    /// POST a JSON body once; see [`Api::send_once`].
    pub async fn post_json(
        &self,
        what: &str,
        auth: &Auth,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        self.send_once(reqwest::Method::POST, what, auth, url, Some(body)).await
    }

    /// GET a JSON document. `what` names it in errors.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        auth: &Auth,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        self.call_json(what, auth, &Call::get(url, query)).await
    }

    /// One call's JSON document (see [`Api::call`]).
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        what: &str,
        auth: &Auth,
        call: &Call<'_>,
    ) -> Result<T, ApiError> {
        // A body that does not parse (cut short in transit, most often) is transient like a
        // 5xx: asked again with the same backoff, then given up with the reason.
        let mut failures = 0u32;
        loop {
            let body = self.call(what, auth, call).await?;
            match serde_json::from_slice(&body) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    failures += 1;
                    if failures >= ATTEMPTS_5XX {
                        return Err(ApiError::Malformed(what.into(), e.to_string()));
                    }
                    let wait = 2f64.powi(failures as i32) * jitter();
                    tracing::warn!(provider = %self.manifest.name, what, error = %e, wait_s = wait, "unreadable response; asking again");
                    let until = self.clock.now() + chrono::Duration::milliseconds((wait * 1000.0) as i64);
                    self.clock.sleep_until(until).await;
                }
            }
        }
    }

    pub async fn get(&self, what: &str, auth: &Auth, url: &str, query: &[(&str, String)]) -> Result<Vec<u8>, ApiError> {
        self.call(what, auth, &Call::get(url, query)).await
    }

    /// One request within the budget, its body once it succeeds: the usage headers read,
    /// a 429 (or what the call's [`Check`] reads as one) waited out, 5xx and network
    /// failures retried with backoff, 401/403/404 and other statuses turned into errors.
    pub async fn call(&self, what: &str, auth: &Auth, call: &Call<'_>) -> Result<Vec<u8>, ApiError> {
        let (mut failures, mut limited) = (0u32, 0u32);
        loop {
            self.acquire().await;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut req = auth.apply(self.http.request(call.method.clone(), call.url).query(call.query));
            if let Some(form) = call.form {
                req = req.form(form);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if let Some(h) = &self.manifest.usage_headers {
                        if let Some(remaining) = h.remaining.as_deref() {
                            if let Some(q) = quota(&headers, &h.limit, remaining, h.reset.as_deref()) {
                                self.limiter.lock().await.observe_quota(self.clock.now(), &q);
                            }
                        } else {
                            let (limits, usage) = (numbers(&headers, &h.limit), numbers(&headers, &h.usage));
                            let resets = h.reset.as_deref().map(|r| numbers(&headers, r)).unwrap_or_default();
                            if !usage.is_empty() {
                                self.limiter.lock().await.observe(self.clock.now(), &limits, &usage, &resets);
                            }
                        }
                    }
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body.to_vec())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let rate_limited = |headers: &reqwest::header::HeaderMap| {
                headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map(|s| chrono::Duration::seconds(s.clamp(0, 86_400)))
            };
            let verdict = match &outcome {
                Ok((status, _, body)) if status.is_success() => match call.check {
                    Some(check) => check(what, body),
                    None => Verdict::Fine,
                },
                Ok((status, headers, _)) if status.as_u16() == 429 => Verdict::RateLimited(rate_limited(headers)),
                _ => Verdict::Fine,
            };
            let retry = match (verdict, outcome) {
                (Verdict::Fine, Ok((status, _, body))) if status.is_success() => return Ok(body),
                (Verdict::RateLimited(retry_after), _) => {
                    limited += 1;
                    // A day at most: a larger value is not believed (and would not fit).
                    let retry_after = retry_after.map(|d| d.clamp(chrono::Duration::zero(), chrono::Duration::days(1)));
                    tracing::warn!(provider = %self.manifest.name, what, "rate limited: waiting for the window");
                    self.limiter.lock().await.exhausted(self.clock.now(), retry_after);
                    if limited >= ATTEMPTS_429 {
                        return Err(ApiError::Server(what.into(), "rate limited over and over".into()));
                    }
                    continue;
                }
                (Verdict::Unauthorized, _) => return Err(ApiError::Unauthorized(what.into())),
                (Verdict::Failed(e), _) => return Err(e),
                (Verdict::Transient(why), _) => why,
                (Verdict::Fine, Ok((status, _, body))) => {
                    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                    match status.as_u16() {
                        401 => return Err(ApiError::Unauthorized(what.into())),
                        403 => return Err(ApiError::Forbidden(what.into())),
                        404 => return Err(ApiError::NotFound(what.into())),
                        code if status.is_server_error() => format!("HTTP {code}: {text}"),
                        code => return Err(ApiError::Unexpected(what.into(), code, text)),
                    }
                }
                (Verdict::Fine, Err(network)) => network,
            };
            failures += 1;
            if failures >= ATTEMPTS_5XX {
                return Err(ApiError::Server(what.into(), retry));
            }
            let wait = 2f64.powi(failures as i32) * jitter();
            tracing::warn!(provider = %self.manifest.name, what, error = %retry, wait_s = wait, "request failed; retrying");
            let until = self.clock.now() + chrono::Duration::milliseconds((wait * 1000.0) as i64);
            self.clock.sleep_until(until).await;
        }
    }
}
