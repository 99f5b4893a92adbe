//! Withings (the Public Health Data API): daily steps, workouts with the heart rate
//! recorded during them, and sleep summaries, on a token endpoint and an API that answer
//! every request with `{"status": N, "body": {...}}`.
//!
//! **The envelope.** Every answer is HTTP 200 whether it worked or not; `status` 0 is
//! success, anything else an error ([`check`]): 401 (and 100-102, 200) is a refused or
//! expired token, handled as an HTTP 401 is (refreshed once, then the account's state
//! says so); 601 is "too many requests", waited out like a 429 (for `body.wait_seconds`
//! when it says); 522, 524 and 2555 are Withings failing, retried with backoff; any
//! other is named with what Withings documents it to mean. So is the token endpoint's
//! answer: Withings' own exchange ([`Provider::token_request`]), not the oauth2 crate's.
//!
//! **Tokens.** The authorization code lives 30 seconds: the callback exchanges it before
//! anything else, and that request never waits for coachd's own rate-limit window. An
//! access token lives 3 hours; the refresh token is replaced on every refresh (the old
//! one dies once the new access token is used, or 8 hours later), so the generic refresh
//! stores the new pair before anything uses it, one refresh at a time per account.
//!
//! **A sync.** Reads are POSTs with form fields and the bearer token, paged with `more` and
//! `offset`. The first sync reads `providers.backfill_days` by dates. After it, the cursor
//! is when the last complete sync began, and each sync asks for what changed since
//! (`lastupdate`, [`LASTUPDATE_SLACK`] earlier for clocks and data in flight): workouts
//! (`/v2/measure action=getworkouts`) of the last [`RECONCILE_DAYS`] by date, so those
//! deleted at Withings are deleted here (Withings has no request that confirms one is
//! gone: the listing is believed), then those older that changed; daily activity
//! (`action=getactivity`: each day's `steps` on its `date`, the client's day where the
//! device was); sleep summaries (`/v2/sleep action=getsummary`), of which the nights that
//! changed are read again whole. A new or changed workout whose summary has a heart rate
//! costs one `action=getintradayactivity` per 24 hours of it; the readings are kept as
//! its samples when dense enough to count minutes from (a watch in workout mode records
//! every second), so cardio minutes and zones judge from them.
//!
//! **Sleep.** A summary is a stretch in bed (`startdate`-`enddate`) with the seconds
//! asleep (`total_sleep_time`; `asleepduration` for a night from another app). Stretches
//! less than an hour apart are one night (the shared rule of [`crate::sleep`]), dated by
//! the client's local day it ends; a wake-up day's sleep is its nights' (Withings marks no
//! naps), its bed and wake times those of the longest.
//!
//! **Notifications.** `coachd subscribe withings` (and the daemon twice a day after it)
//! subscribes each account to appli 16 (activity) and 44 (sleep) at `/webhooks/withings`,
//! which answers Withings' `HEAD` check with 200. Deliveries are form fields (`userid`,
//! `appli`, `startdate`, `enddate`) and are not signed: each is only a hint that asks for
//! a sync of that user's account, which finds what changed itself (`lastupdate`).
//!
//! **Revoking.** Withings has both: `notify revoke` for each subscription, and a signed
//! `oauth2 action=revoke` (a nonce from `/v2/signature`, HMAC-SHA256 with the client
//! secret) that ends the tokens.

use super::api::{Call, Verdict};
use super::oauth::{Grant, TokenAnswer, TokenFailure};
use super::sync::{reconcile, Daily, Listing, Page, Plan, Report, SyncError, Turn};
use super::{Api, ApiError, Auth, BoxFuture, Connection, Provider, ProviderError, Registry, WebhookRefusal};
use crate::model::{DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::sleep::Night;
use crate::store::providers::Account;
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

pub const SOURCE: &str = "withings";
/// How many days of workouts every sync lists again by date, for those edited or
/// deleted at Withings (one page, whatever the number of days, for most people).
pub const RECONCILE_DAYS: i64 = 7;
/// `lastupdate` asks from this long before the last sync began: more than a sync takes
/// at 120 requests a minute, and more than any clock between here and Withings differs.
pub const LASTUPDATE_SLACK: Duration = Duration::hours(1);
/// Heart rate is kept as a workout's samples only when readings are at most this far
/// apart on average: the store counts each sample for at most 5 s, so sparser readings
/// (Withings' every-10-minutes daytime rate) would count less than the time they stand
/// for; then the workout's category counts instead.
pub const MAX_MEAN_GAP_S: f64 = 5.0;
/// `getintradayactivity` answers at most 24 hours a call.
pub const INTRADAY_SPAN_S: i64 = 86_400;
/// More steps than anyone takes in a day: a recording fault.
pub const MAX_STEPS: f64 = 200_000.0;
/// The notification categories coachd subscribes to: activity (steps, workouts) and sleep.
pub const APPLIS: [u32; 2] = [16, 44];
/// How often the daemon looks at the subscriptions (Withings drops one after deliveries
/// fail).
pub const UPKEEP_EVERY: Duration = Duration::hours(12);

const SUBSCRIBED: &str = "withings_subscriptions";
const CHECKED: &str = "withings_subscriptions_checked";
const WORKOUT_FIELDS: &str = "calories,hr_average,hr_min,hr_max,distance,steps,pause_duration,intensity";

/// What Withings documents a non-zero `status` to mean.
pub fn status_meaning(status: i64) -> &'static str {
    match status {
        0 => "success",
        100..=102 | 200 | 401 => "the access token is invalid or expired",
        214 | 277 | 2553 => "the application may not do this",
        293 => "the callback URL is absent or incorrect",
        294 => "no such subscription",
        304 => "the comment is absent or incorrect",
        305 => "too many notifications are already set",
        342 => "the signature is invalid",
        503 => "invalid parameters",
        522 => "a timeout at Withings",
        524 => "Withings is in a bad state",
        601 => "too many requests",
        2554 => "wrong action or web service",
        2555 => "an unknown error occurred at Withings",
        _ => "a status Withings does not document",
    }
}

/// The envelope's head: enough to judge it before its body is read.
#[derive(Debug, Deserialize)]
struct Head {
    status: Option<i64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

fn describe(status: i64, error: Option<&str>) -> String {
    let said = error.map(|e| format!(": {}", e.chars().take(200).collect::<String>())).unwrap_or_default();
    format!("Withings status {status} ({}){said}", status_meaning(status))
}

/// How a 2xx answer reads ([`super::api::Check`]): status 0 is fine; the others are named.
pub fn check(what: &str, raw: &[u8]) -> Verdict {
    // Not an envelope at all: the body's own parse says what is wrong with it.
    let Ok(head) = serde_json::from_slice::<Head>(raw) else { return Verdict::Fine };
    let Some(status) = head.status.filter(|s| *s != 0) else { return Verdict::Fine };
    let text = describe(status, head.error.as_deref());
    match status {
        100..=102 | 200 | 401 => Verdict::Unauthorized,
        601 => {
            let wait = head.body.as_ref().and_then(|b| b.get("wait_seconds")).and_then(serde_json::Value::as_i64);
            Verdict::RateLimited(wait.map(|s| Duration::seconds(s.clamp(0, 86_400))))
        }
        522 | 524 | 2555 => Verdict::Transient(text),
        _ => Verdict::Failed(ApiError::Refused(what.into(), text)),
    }
}

/// [`check`] for `notify revoke`, where 294 ("no such subscription") means there is
/// nothing left to revoke.
fn check_revoke(what: &str, raw: &[u8]) -> Verdict {
    match serde_json::from_slice::<Head>(raw) {
        Ok(Head { status: Some(294), .. }) => Verdict::Fine,
        _ => check(what, raw),
    }
}

/// A successful envelope.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    body: T,
}

/// A page of workouts, days or sleep summaries.
#[derive(Debug, Deserialize)]
struct PageBody<T> {
    #[serde(default = "Vec::new", alias = "activities")]
    series: Vec<T>,
    /// `true`/`false`, or `1`/`0` in the older services.
    #[serde(default)]
    more: serde_json::Value,
    #[serde(default)]
    offset: Option<i64>,
}

impl<T> PageBody<T> {
    fn next(&self) -> Option<i64> {
        let more = self.more.as_bool().unwrap_or_else(|| self.more.as_i64().is_some_and(|n| n != 0));
        more.then_some(self.offset).flatten()
    }
}

/// POST `form` to `path` for the turn's account; the envelope's body.
async fn post<T: DeserializeOwned>(
    turn: &mut Turn<'_>,
    what: &str,
    path: &str,
    form: &[(&str, String)],
) -> Result<T, SyncError> {
    let url = turn.reg.api(SOURCE)?.manifest.url(path);
    let e: Envelope<T> = turn.call_json(what, &Call::post_form(&url, form).checked(check)).await?;
    Ok(e.body)
}

/// Every page of a listing, following `more` and `offset`.
async fn all_pages<T: DeserializeOwned>(
    turn: &mut Turn<'_>,
    what: &str,
    path: &str,
    form: &[(&str, String)],
) -> Result<Vec<T>, SyncError> {
    let mut out = Vec::new();
    let mut offset: Option<i64> = None;
    loop {
        let mut f = form.to_vec();
        if let Some(o) = offset {
            f.push(("offset", o.to_string()));
        }
        let page: PageBody<T> = post(turn, what, path, &f).await?;
        let next = page.next().filter(|n| Some(*n) != offset);
        out.extend(page.series);
        match next {
            Some(n) => offset = Some(n),
            None => return Ok(out),
        }
    }
}

/// A number or a string, as text (Withings writes ids and user ids either way).
fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The HMAC-SHA256 (lowercase hex) Withings' signed services take: the parameters'
/// values sorted by name, joined with commas, keyed with the client secret.
pub fn sign(secret: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_by_key(|(k, _)| *k);
    let text = sorted.iter().map(|(_, v)| *v).collect::<Vec<_>>().join(",");
    crate::crypto::hex(&crate::crypto::hmac_sha256(secret.as_bytes(), &[text.as_bytes()]))
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    userid: Option<serde_json::Value>,
}

/// `POST /v2/oauth2 action=requesttoken`: Withings' token exchange.
async fn request_token(reg: &Registry, grant: Grant<'_>) -> Result<TokenAnswer, TokenFailure> {
    let api = reg.api(SOURCE).map_err(TokenFailure::Setup)?;
    let app = reg.app(SOURCE).map_err(TokenFailure::Setup)?;
    let mut form: Vec<(&str, String)> = vec![
        ("action", "requesttoken".into()),
        ("client_id", app.client_id.clone()),
        ("client_secret", app.client_secret.expose().clone()),
    ];
    match grant {
        Grant::Code { code, .. } => {
            form.push(("grant_type", "authorization_code".into()));
            form.push(("code", code.to_string()));
            form.push(("redirect_uri", reg.redirect_uri(SOURCE)));
        }
        Grant::Refresh(r) => {
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", r.to_string()));
        }
    }
    // Counted, never kept waiting for the window: the code lives 30 seconds, and a
    // refresh runs under a lease of a minute (a sync waits for the window before it asks
    // for a token anyway).
    api.count_now().await;
    let unavailable = |said: String, text: String| TokenFailure::Unavailable { said, text };
    let resp = api
        .http
        .post(&api.manifest.token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| unavailable("no answer".into(), e.to_string()))?;
    let http = resp.status().as_u16();
    let raw = resp.bytes().await.map_err(|e| unavailable(format!("HTTP {http}"), e.to_string()))?;
    let text = || String::from_utf8_lossy(&raw).chars().take(200).collect::<String>();
    if !(200..300).contains(&http) {
        return Err(if http >= 500 || http == 429 {
            unavailable(format!("HTTP {http}"), text())
        } else {
            TokenFailure::Refused { status: http, said: format!("HTTP {http}"), text: text() }
        });
    }
    let head: Head = serde_json::from_slice(&raw)
        .map_err(|e| unavailable(format!("HTTP {http}"), format!("not Withings' answer ({e}): {}", text())))?;
    let status = head.status.unwrap_or(-1);
    if status != 0 {
        let said = format!("status {status}");
        let text = describe(status, head.error.as_deref());
        return Err(match status {
            // A code or refresh token Withings does not know (expired, used, revoked).
            100..=102 | 200 | 401 | 503 => TokenFailure::Refused { status: status.clamp(0, 65_535) as u16, said, text },
            _ => unavailable(said, text),
        });
    }
    let body: TokenBody = head
        .body
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| unavailable("status 0".into(), format!("an unreadable token: {e}")))?
        .ok_or_else(|| unavailable("status 0".into(), "an answer without a body".into()))?;
    let Some(access) = body.access_token.filter(|a| !a.is_empty()) else {
        return Err(unavailable("status 0".into(), "an answer without an access_token".into()));
    };
    let expires = body.expires_in.as_ref().and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    Ok(TokenAnswer {
        access,
        refresh: body.refresh_token.filter(|r| !r.is_empty()),
        expires_in: expires.map(|s| Duration::seconds(s.clamp(0, 366 * 86_400))),
        scope: body.scope,
        user: body.userid.as_ref().and_then(text_of),
    })
}

/// A sync error as a provider error (subscriptions and revocation run outside a sync).
fn provider_error(e: SyncError) -> ProviderError {
    match e {
        SyncError::Token(super::oauth::TokenError::Reauth(why)) => ProviderError::Refused(why),
        SyncError::Token(super::oauth::TokenError::Temporary(why)) => {
            ProviderError::Api(ApiError::Server("the Withings token".into(), why))
        }
        SyncError::Token(super::oauth::TokenError::Store(e)) | SyncError::Store(e) => ProviderError::Store(e),
        SyncError::Api(e) => ProviderError::Api(e),
        SyncError::Provider(e) => e,
        busy @ SyncError::Busy(_) => ProviderError::Api(ApiError::Server("Withings".into(), busy.to_string())),
    }
}

/// Withings on the provider interface.
pub struct Withings;

impl Provider for Withings {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn manifest(&self) -> &'static str {
        include_str!("../../providers/withings.toml")
    }

    fn takes_webhooks(&self) -> bool {
        true
    }

    fn sync<'a>(&'a self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Report, SyncError>> {
        Box::pin(async move {
            let api = turn.reg.api(SOURCE)?.clone();
            reconcile(turn, &Workouts { api }).await
        })
    }

    fn token_request<'a>(
        &'a self,
        reg: &'a Registry,
        grant: Grant<'a>,
    ) -> Option<BoxFuture<'a, Result<TokenAnswer, TokenFailure>>> {
        Some(Box::pin(request_token(reg, grant)))
    }

    /// Once `coachd subscribe withings` has been run, a new account is subscribed at once.
    fn after_connect<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            if c.account.external_user_id.is_none() {
                return Ok(Some(
                    "Withings did not say which user this is: notifications cannot be matched to this client (the \
                     regular sync still reads everything)."
                        .into(),
                ));
            }
            if c.store.meta_value(SUBSCRIBED).await?.is_none() {
                return Ok(None);
            }
            match subscribe_account(c.reg, c.store, c.account).await {
                Ok(_) => Ok(None),
                Err(e) => Ok(Some(format!(
                    "Withings did not take the notification subscription ({e}); the regular sync reads everything \
                     anyway, and the daemon tries again."
                ))),
            }
        })
    }

    /// The notification subscriptions (`notify revoke`), then the tokens themselves (the
    /// signed `oauth2 action=revoke`). Ok(false): Withings refused to revoke the tokens
    /// (the client can remove coachd in the Withings app); the subscriptions are gone.
    fn revoke<'a>(&'a self, c: Connection<'a>) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            let api = c.reg.api(SOURCE)?.clone();
            let url = api.manifest.url("/notify");
            let callback = c.reg.webhook_url(SOURCE);
            for appli in APPLIS {
                let form =
                    [("action", "revoke".to_string()), ("callbackurl", callback.clone()), ("appli", appli.to_string())];
                let call = Call::post_form(&url, &form).checked(check_revoke);
                let revoked = api.call_json::<serde_json::Value>("a notification revocation", &c.access, &call).await;
                if let Err(e) = revoked {
                    let client = &c.account.client;
                    tracing::warn!(%client, appli, error = %e, "revoking a Withings notification failed");
                }
            }
            let Some(user) = c.account.external_user_id.clone() else {
                let client = &c.account.client;
                tracing::warn!(%client, "no Withings user id: the tokens cannot be revoked, only forgotten");
                return Ok(false);
            };
            let app = c.reg.app(SOURCE)?;
            let nobody = Auth::Headers(Vec::new());
            let stamp = c.reg.clock.now().timestamp().to_string();
            let id = app.client_id.clone();
            let secret = app.client_secret.expose().clone();
            let signature = sign(&secret, &[("action", "getnonce"), ("client_id", &id), ("timestamp", &stamp)]);
            let form = [
                ("action", "getnonce".to_string()),
                ("client_id", id.clone()),
                ("timestamp", stamp.clone()),
                ("signature", signature),
            ];
            let sig_url = api.manifest.url("/v2/signature");
            #[derive(Deserialize)]
            struct Nonce {
                nonce: String,
            }
            let nonce: Envelope<Nonce> =
                match api.call_json("a nonce", &nobody, &Call::post_form(&sig_url, &form).checked(check)).await {
                    Ok(n) => n,
                    Err(ApiError::Refused(_, why)) => return Ok(refused_revoke(c.account, &why)),
                    Err(e) => return Err(e.into()),
                };
            let nonce = nonce.body.nonce;
            let signature = sign(&secret, &[("action", "revoke"), ("client_id", &id), ("nonce", &nonce)]);
            let form = [
                ("action", "revoke".to_string()),
                ("client_id", id),
                ("nonce", nonce),
                ("signature", signature),
                ("userid", user),
            ];
            let oauth_url = api.manifest.token_url.clone();
            let call = Call::post_form(&oauth_url, &form).checked(check);
            match api.call_json::<serde_json::Value>("the revocation", &nobody, &call).await {
                Ok(_) => Ok(true),
                Err(ApiError::Refused(_, why)) => Ok(refused_revoke(c.account, &why)),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn webhook_handshake<'a>(
        &'a self,
        _reg: &'a Registry,
        _store: &'a Store,
        _query: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<serde_json::Value, WebhookRefusal>> {
        // Withings checks the callback with HEAD; a GET is answered as kindly.
        Box::pin(async { Ok(serde_json::json!({})) })
    }

    /// Deliveries are not signed: anything shaped like one is taken, as a hint.
    fn webhook_verify(
        &self,
        _reg: &Registry,
        _headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        Delivery::parse(body).map(drop)
    }

    fn webhook_deliver(
        &self,
        reg: Arc<Registry>,
        store: Store,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<&'static str, SyncError>> {
        Box::pin(async move {
            let d = Delivery::parse(&body).map_err(|e| ProviderError::Invalid(e.to_string()))?;
            on_delivery(&reg, &store, d.as_ref()).await
        })
    }

    fn subscribe<'a>(&'a self, reg: &'a Registry, store: &'a Store) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let callback = reg.webhook_url(SOURCE);
            let mut out = Vec::new();
            if let Some(problem) = callback_problem(&callback) {
                out.push(format!("Warning: Withings will likely refuse {callback}: {problem}."));
            }
            let kept = keep_subscriptions(reg, store).await?;
            if kept.accounts > 0 && kept.failed.len() == kept.accounts {
                return Err(ProviderError::Refused(format!(
                    "Withings took no subscription: {}. Is `coachd run` reachable from the internet at {callback}?",
                    kept.failed.join("; ")
                )));
            }
            store.set_meta_value(SUBSCRIBED, "on").await?;
            store.set_meta_value(CHECKED, &reg.clock.now().to_rfc3339()).await?;
            out.push(format!(
                "Withings notifications (activity and sleep) for {} account(s): {} made, {} current; deliveries \
                 arrive at {callback} (accounts connected later are subscribed when they connect; the daemon \
                 checks twice a day)",
                kept.accounts, kept.made, kept.current
            ));
            out.extend(kept.failed.iter().map(|f| format!("Not subscribed: {f}")));
            Ok(out.join("\n"))
        })
    }

    fn upkeep<'a>(&'a self, reg: &'a Registry, store: &'a Store) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if store.meta_value(SUBSCRIBED).await?.is_none() || reg.app(SOURCE).is_err() {
                return Ok(());
            }
            let now = reg.clock.now();
            let last = store.meta_value(CHECKED).await?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
            if last.is_some_and(|t| now - t.with_timezone(&Utc) < UPKEEP_EVERY) {
                return Ok(());
            }
            let kept = keep_subscriptions(reg, store).await?;
            store.set_meta_value(CHECKED, &now.to_rfc3339()).await?;
            if kept.made > 0 || !kept.failed.is_empty() {
                tracing::info!(made = kept.made, failed = ?kept.failed, "Withings notification subscriptions kept");
            }
            Ok(())
        })
    }
}

fn refused_revoke(account: &Account, why: &str) -> bool {
    tracing::warn!(
        client = %account.client, why,
        "Withings refused to revoke the tokens: coachd forgets them; the client can remove coachd in the Withings app"
    );
    false
}

/// What Withings asks of a callback URL that coachd can see: https, a domain name (not
/// an address), the standard port, at most 255 characters.
pub fn callback_problem(url: &str) -> Option<&'static str> {
    let Ok(u) = url::Url::parse(url) else { return Some("it is not a URL") };
    if u.scheme() != "https" {
        return Some("it must be https://");
    }
    match u.host() {
        Some(url::Host::Domain(_)) => {}
        _ => return Some("it must name a domain, not an IP address"),
    }
    if u.port().is_some_and(|p| p != 443) {
        return Some("it must be on port 443");
    }
    (url.len() > 255).then_some("it is longer than 255 characters")
}

/// A notification: which user's data of which category changed.
#[derive(Debug, Default, Deserialize)]
pub struct Delivery {
    pub userid: String,
    #[serde(default)]
    pub appli: Option<String>,
    #[serde(default)]
    pub startdate: Option<String>,
    #[serde(default)]
    pub enddate: Option<String>,
}

impl Delivery {
    /// Form fields; None: no user at all (Withings checking the callback).
    pub fn parse(body: &[u8]) -> Result<Option<Self>, WebhookRefusal> {
        let fields: HashMap<String, String> = serde_urlencoded::from_bytes(body)
            .map_err(|e| WebhookRefusal::BadBody(format!("not a Withings notification (form fields): {e}")))?;
        let Some(user) = fields.get("userid") else {
            return if fields.contains_key("appli") {
                Err(WebhookRefusal::BadBody("a Withings notification without userid".into()))
            } else {
                Ok(None)
            };
        };
        let number = |k: &str| fields.get(k).is_none_or(|v| v.trim().parse::<i64>().is_ok());
        if user.trim().is_empty() || !user.trim().chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(WebhookRefusal::BadBody(format!("userid {user:?} is not a Withings user id")));
        }
        if !(number("appli") && number("startdate") && number("enddate")) {
            return Err(WebhookRefusal::BadBody("appli, startdate and enddate must be numbers".into()));
        }
        Ok(Some(Self {
            userid: user.trim().to_string(),
            appli: fields.get("appli").cloned(),
            startdate: fields.get("startdate").cloned(),
            enddate: fields.get("enddate").cloned(),
        }))
    }
}

/// A delivery is a hint: the user's account is synced soon, and the sync finds what
/// changed (a forged delivery costs a sync, nothing more).
pub async fn on_delivery(reg: &Registry, store: &Store, d: Option<&Delivery>) -> Result<&'static str, SyncError> {
    let Some(d) = d else { return Ok("a callback check") };
    let Some(account) = store.account_by_external(SOURCE, &d.userid).await?.filter(|a| a.syncable()) else {
        return Ok("unknown user; ignored");
    };
    reg.poke(account.id);
    Ok("sync requested")
}

#[derive(Debug, Default)]
struct Kept {
    accounts: usize,
    made: usize,
    current: usize,
    failed: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Profiles {
    #[serde(default)]
    profiles: Vec<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    appli: Option<serde_json::Value>,
    #[serde(default)]
    callbackurl: Option<String>,
}

/// Every active Withings account subscribed to [`APPLIS`] at `/webhooks/withings`.
async fn keep_subscriptions(reg: &Registry, store: &Store) -> Result<Kept, ProviderError> {
    reg.api(SOURCE)?;
    let mut kept = Kept::default();
    for a in store.accounts().await?.into_iter().filter(|a| a.provider == SOURCE && a.syncable()) {
        kept.accounts += 1;
        match subscribe_account(reg, store, &a).await {
            Ok((made, current)) => {
                kept.made += made;
                kept.current += current;
            }
            Err(ProviderError::Store(e)) => return Err(ProviderError::Store(e)),
            Err(e) => kept.failed.push(format!("{}: {e}", a.client)),
        }
    }
    Ok(kept)
}

/// One account's subscriptions: those missing are made (Withings checks the callback
/// with HEAD first). (made, already there).
async fn subscribe_account(reg: &Registry, store: &Store, account: &Account) -> Result<(usize, usize), ProviderError> {
    let callback = reg.webhook_url(SOURCE);
    let mut turn = Turn::new(reg, store, account, 2 + APPLIS.len() as u32 * 2);
    let list = [("action", "list".to_string())];
    let existing: Profiles =
        post(&mut turn, "the notification subscriptions", "/notify", &list).await.map_err(provider_error)?;
    let (mut made, mut current) = (0, 0);
    for appli in APPLIS {
        let have = existing.profiles.iter().any(|p| {
            p.callbackurl.as_deref() == Some(callback.as_str())
                && p.appli.as_ref().and_then(text_of).as_deref() == Some(appli.to_string().as_str())
        });
        if have {
            current += 1;
            continue;
        }
        let form = [
            ("action", "subscribe".to_string()),
            ("callbackurl", callback.clone()),
            ("appli", appli.to_string()),
            ("comment", "coachd".to_string()),
        ];
        post::<serde_json::Value>(&mut turn, "a notification subscription", "/notify", &form)
            .await
            .map_err(provider_error)?;
        made += 1;
    }
    Ok((made, current))
}

/// A workout as `getworkouts` lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct Workout {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    pub category: i64,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Unix seconds.
    pub startdate: i64,
    pub enddate: i64,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub modified: Option<i64>,
    #[serde(default)]
    pub attrib: Option<i64>,
    #[serde(default)]
    pub data: WorkoutData,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct WorkoutData {
    #[serde(default)]
    pub calories: Option<f64>,
    #[serde(default)]
    pub hr_average: Option<f64>,
    #[serde(default)]
    pub hr_min: Option<f64>,
    #[serde(default)]
    pub hr_max: Option<f64>,
    /// Metres.
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub steps: Option<f64>,
    /// Seconds the client paused.
    #[serde(default)]
    pub pause_duration: Option<f64>,
    #[serde(default)]
    pub intensity: Option<f64>,
}

impl Workout {
    /// Withings' id; a workout listed without one is known by its start.
    pub fn key(&self) -> String {
        self.id.as_ref().and_then(text_of).unwrap_or_else(|| format!("start-{}", self.startdate))
    }
}

#[derive(Debug, Deserialize)]
struct DayActivity {
    date: String,
    #[serde(default)]
    steps: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct SleepSummary {
    #[serde(default)]
    id: Option<serde_json::Value>,
    startdate: i64,
    enddate: i64,
    #[serde(default)]
    data: SleepData,
}

#[derive(Debug, Default, Deserialize)]
struct SleepData {
    #[serde(default)]
    total_sleep_time: Option<f64>,
    /// A night that came from another app (then there are no stages).
    #[serde(default)]
    asleepduration: Option<f64>,
}

/// The first day the backfill reaches, in the client's time zone.
fn first_day(turn: &Turn<'_>, client: &Client) -> NaiveDate {
    let today = turn.reg.clock.now().with_timezone(&client.tz).date_naive();
    today - Duration::days(i64::from(turn.reg.backfill_days))
}

/// The `lastupdate` of an incremental sync, from the committed cursor (None: the first).
fn lastupdate(plan: &Plan) -> Option<i64> {
    plan.cursor.parse::<i64>().ok().map(|t| t - LASTUPDATE_SLACK.num_seconds())
}

/// Workouts, then daily activity and sleep, of one account.
struct Workouts {
    api: Arc<Api>,
}

impl Listing for Workouts {
    type Item = Workout;
    const NOUN: &'static str = "workout";

    fn plan(&self, turn: &Turn<'_>, client: &Client, cursor: Option<&str>) -> Plan {
        let now = turn.reg.clock.now();
        let today = now.with_timezone(&client.tz).date_naive();
        let first = first_day(turn, client);
        let last = cursor.and_then(|c| c.parse::<i64>().ok()).and_then(|t| DateTime::from_timestamp(t, 0));
        let from = last.map_or(first, |t| {
            let day = t.with_timezone(&client.tz).date_naive().min(today);
            (day - Duration::days(RECONCILE_DAYS)).max(first)
        });
        Plan {
            since: crate::time::local(client.tz, from, chrono::NaiveTime::MIN),
            until: now + Duration::days(1),
            first: "w:".into(),
            cursor: last.map(|t| t.timestamp().to_string()).unwrap_or_default(),
            // What the next sync asks for changes since.
            done: Some(now.timestamp().to_string()),
            from: from.to_string(),
            to: (today + Duration::days(1)).to_string(),
        }
    }

    /// Pages `w:OFFSET` list the span by date; then (after the first sync) pages
    /// `u:OFFSET` the older workouts that changed since the last sync.
    async fn list(
        &self,
        turn: &mut Turn<'_>,
        client: &Client,
        plan: &Plan,
        page: &str,
    ) -> Result<Page<Workout>, SyncError> {
        let (by_date, offset) = match page.split_once(':') {
            Some(("u", o)) => (false, o),
            Some((_, o)) => (true, o),
            None => (true, ""),
        };
        let since = plan.since.timestamp();
        let mut form = vec![("action", "getworkouts".to_string()), ("data_fields", WORKOUT_FIELDS.to_string())];
        let changed_since = lastupdate(plan);
        match (by_date, changed_since) {
            (false, Some(t)) => form.push(("lastupdate", t.to_string())),
            _ => {
                // A day more than the span: Withings dates a workout where the device was,
                // which may be a day apart from the client's own time zone.
                let from: NaiveDate = plan.from.parse().unwrap_or_default();
                form.push(("startdateymd", (from - Duration::days(1)).to_string()));
                form.push(("enddateymd", plan.to.clone()));
            }
        }
        if !offset.is_empty() {
            form.push(("offset", offset.to_string()));
        }
        let body: PageBody<Workout> = post(turn, "the workouts", "/v2/measure", &form).await?;
        let oldest = crate::time::local(client.tz, first_day(turn, client), chrono::NaiveTime::MIN).timestamp();
        let next = body.next().map(|n| format!("{}:{n}", if by_date { "w" } else { "u" }));
        let next = next.or_else(|| (by_date && changed_since.is_some()).then(|| "u:".to_string()));
        let items = body
            .series
            .into_iter()
            // By date: the span's (the day before it was only read for time zones). Changed:
            // the older ones, as far as the backfill reaches (the span's were listed).
            .filter(|w| if by_date { w.startdate >= since } else { w.startdate < since && w.startdate >= oldest })
            .collect();
        Ok(Page { items, next })
    }

    fn id(&self, w: &Workout) -> String {
        w.key()
    }

    fn fingerprint(&self, w: &Workout) -> Vec<u8> {
        crate::crypto::sha256(format!("{w:?}").as_bytes())[..16].to_vec()
    }

    /// A workout whose summary has no heart rate has none to read.
    fn needs_detail(&self, w: &Workout) -> bool {
        w.data.hr_average.is_some_and(|h| h > 0.0)
    }

    async fn detail(&self, turn: &mut Turn<'_>, _w: &Workout, a: &NewActivity) -> Result<Vec<Series>, SyncError> {
        let (from, to) = (a.start.timestamp(), a.end.timestamp());
        let mut samples: Vec<Sample> = Vec::new();
        let mut t = from;
        loop {
            let until = (t + INTRADAY_SPAN_S).min(to);
            let form = [
                ("action", "getintradayactivity".to_string()),
                ("startdate", t.to_string()),
                ("enddate", until.to_string()),
                ("data_fields", "heart_rate".to_string()),
            ];
            #[derive(Deserialize)]
            struct Intraday {
                #[serde(default)]
                series: serde_json::Value,
            }
            let day: Intraday = post(turn, "the heart rate of a workout", "/v2/measure", &form).await?;
            // An object keyed by Unix time (an empty one may come as `[]`).
            if let Some(points) = day.series.as_object() {
                for (stamp, p) in points {
                    let (Ok(at), Some(bpm)) = (stamp.parse::<i64>(), p.get("heart_rate").and_then(|v| v.as_f64()))
                    else {
                        continue;
                    };
                    if (from..=to).contains(&at) {
                        samples.push(Sample { t_ms: at * 1000, value: bpm });
                    }
                }
            }
            if until >= to {
                break;
            }
            t = until;
        }
        samples.sort_by_key(|s| s.t_ms);
        samples.dedup_by_key(|s| s.t_ms);
        let dense = match (samples.first(), samples.last()) {
            (Some(f), Some(l)) if samples.len() > 1 => {
                (l.t_ms - f.t_ms) as f64 / 1000.0 / (samples.len() - 1) as f64 <= MAX_MEAN_GAP_S
            }
            _ => false,
        };
        Ok(if dense { vec![Series { kind: SeriesKind::Hr, samples }] } else { Vec::new() })
    }

    fn convert(&self, client: &Client, w: &Workout) -> Result<NewActivity, String> {
        if w.enddate < w.startdate {
            return Err(format!("it ends ({}) before it starts ({})", w.enddate, w.startdate));
        }
        let start =
            DateTime::from_timestamp(w.startdate, 0).ok_or_else(|| format!("start {} is no time", w.startdate))?;
        let elapsed = (w.enddate - w.startdate) as f64;
        let end = crate::model::span_end(start, elapsed)?;
        // The offset where the device was, else the client's.
        let tz: chrono_tz::Tz = w.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(client.tz);
        let offset = tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc();
        let paused = crate::model::amount(w.data.pause_duration).unwrap_or(0.0);
        let ty = self.api.manifest.activity_type(&w.category.to_string());
        Ok(NewActivity {
            client_id: client.id,
            external_id: w.key(),
            start,
            end,
            utc_offset_s: offset,
            category: crate::activity_types::category(&ty),
            activity_type: ty,
            duration_s: (elapsed - paused).max(0.0),
            distance_m: crate::model::amount(w.data.distance),
            avg_hr: SeriesKind::Hr.checked(w.data.hr_average),
            max_hr: SeriesKind::Hr.checked(w.data.hr_max).map(|v| v.round() as u16),
            energy_kj: crate::model::amount(w.data.calories).map(|kcal| kcal * 4.184),
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: None,
        })
    }

    /// Withings has no request for one workout: what the listing of the span lacks was
    /// deleted.
    fn gone_url(&self, _id: &str) -> Option<String> {
        None
    }

    /// Daily activity, then sleep.
    fn daily_parts(&self) -> usize {
        2
    }

    async fn daily(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan, part: usize) -> Result<Daily, SyncError> {
        match part {
            0 => self.steps(turn, client, plan).await,
            _ => self.sleep(turn, client, plan).await,
        }
    }
}

impl Workouts {
    /// Each day's steps: the backfill's days, then the days that changed.
    async fn steps(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan) -> Result<Daily, SyncError> {
        let first = first_day(turn, client);
        // Tomorrow at most: the device's day may be ahead of the client's time zone.
        let last: NaiveDate = plan.to.parse().unwrap_or(first);
        let mut form = vec![("action", "getactivity".to_string()), ("data_fields", "steps".to_string())];
        match lastupdate(plan) {
            Some(t) => form.push(("lastupdate", t.to_string())),
            None => {
                form.push(("startdateymd", first.to_string()));
                form.push(("enddateymd", plan.to.clone()));
            }
        }
        let days: Vec<DayActivity> = all_pages(turn, "the daily activity", "/v2/measure", &form).await?;
        let mut out = Daily::default();
        for d in days {
            let Ok(date) = d.date.parse::<NaiveDate>() else {
                out.skipped.push(format!("daily activity of {:?}: not a date", d.date));
                continue;
            };
            if date < first {
                continue;
            }
            if date > last {
                out.skipped.push(format!("daily activity of {date}: a day that has not come yet"));
                continue;
            }
            match crate::model::amount(d.steps) {
                Some(steps) if steps <= MAX_STEPS => {
                    out.metrics.push(DailyMetric { client_id: client.id, date, metric: Metric::Steps, value: steps })
                }
                Some(steps) => out.skipped.push(format!("steps of {date}: {steps} is more than anyone walks in a day")),
                None => {}
            }
        }
        Ok(out)
    }

    /// Sleep: the backfill's nights, then the nights that changed, each read again whole.
    async fn sleep(&self, turn: &mut Turn<'_>, client: &Client, plan: &Plan) -> Result<Daily, SyncError> {
        let first = first_day(turn, client);
        let to: NaiveDate = plan.to.parse().unwrap_or(first);
        let mut out = Daily::default();
        // The wake-up days to write: all of the backfill, or those a changed summary ends on.
        let (from, until) = match lastupdate(plan) {
            None => (first, to),
            Some(t) => {
                let form = [("action", "getsummary".to_string()), ("lastupdate", t.to_string())];
                let changed: Vec<SleepSummary> = all_pages(turn, "the sleep that changed", "/v2/sleep", &form).await?;
                let days: Vec<NaiveDate> = changed
                    .iter()
                    .map(|s| crate::sleep::local_date(client.tz, s.enddate.saturating_mul(1000)))
                    .filter(|d| *d >= first)
                    .collect();
                match (days.iter().min(), days.iter().max()) {
                    (Some(a), Some(b)) => (*a, *b),
                    _ => return Ok(out),
                }
            }
        };
        // A day either side: a night's pieces are filed under the day each ends.
        let form = [
            ("action", "getsummary".to_string()),
            ("startdateymd", (from - Duration::days(1)).to_string()),
            ("enddateymd", (until + Duration::days(1)).to_string()),
        ];
        let summaries: Vec<SleepSummary> = all_pages(turn, "the sleep summaries", "/v2/sleep", &form).await?;
        let mut pieces: Vec<Night> = Vec::new();
        for s in summaries {
            match piece(&s) {
                Ok(n) => pieces.push(n),
                Err(why) => {
                    let id = s.id.as_ref().and_then(text_of).unwrap_or_else(|| s.startdate.to_string());
                    out.skipped.push(format!("sleep summary {id}: {why}"));
                }
            }
        }
        pieces.sort_by_key(|n| n.start_ms);
        let mut nights: Vec<Night> = Vec::new();
        for n in pieces {
            match nights.last_mut() {
                Some(last) if n.start_ms.saturating_sub(last.end_ms) <= crate::sleep::SAME_NIGHT_MS => {
                    last.end_ms = last.end_ms.max(n.end_ms);
                    last.asleep_ms = last.asleep_ms.saturating_add(n.asleep_ms);
                }
                _ => nights.push(n),
            }
        }
        let now = turn.reg.clock.now();
        for day in crate::sleep::wake_days(&nights, client.tz) {
            if (from..=until).contains(&day.date) {
                out.metrics.extend(day.metrics(client.id, now));
            }
        }
        Ok(out)
    }
}

/// A summary as a stretch in bed with its time asleep, range-checked.
fn piece(s: &SleepSummary) -> Result<Night, String> {
    let in_bed = s.enddate.saturating_sub(s.startdate);
    if in_bed <= 0 {
        return Err(format!("it ends ({}) before it starts ({})", s.enddate, s.startdate));
    }
    if in_bed * 1000 > crate::sleep::LONGEST_NIGHT_MS {
        return Err(format!("{in_bed} s in bed is more than a day"));
    }
    let asleep = s.data.total_sleep_time.filter(|t| *t > 0.0).or(s.data.asleepduration).unwrap_or(0.0);
    if !asleep.is_finite() || asleep < 0.0 || asleep > in_bed as f64 {
        return Err(format!("{asleep} s asleep in {in_bed} s in bed"));
    }
    Ok(Night { start_ms: s.startdate * 1000, end_ms: s.enddate * 1000, asleep_ms: (asleep * 1000.0) as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    #[test]
    fn the_envelope_status_decides_and_401_is_a_refused_token() {
        assert!(matches!(check("x", br#"{"status":0,"body":{}}"#), Verdict::Fine));
        let refused = br#"{"status":401,"body":{},"error":"invalid_token: The access token provided is invalid"}"#;
        assert!(matches!(check("x", refused), Verdict::Unauthorized));
        let busy = br#"{"status":601,"body":{"wait_seconds":42},"error":"Too Many Request"}"#;
        assert!(matches!(check("x", busy), Verdict::RateLimited(Some(d)) if d == Duration::seconds(42)));
        assert!(matches!(check("x", br#"{"status":601,"error":"Too Many Request"}"#), Verdict::RateLimited(None)));
        assert!(matches!(check("x", br#"{"status":2555,"error":"Unknown error"}"#), Verdict::Transient(_)));
        match check("the workouts", br#"{"status":503,"error":"Invalid Params: lastupdate"}"#) {
            Verdict::Failed(e) => {
                let t = e.to_string();
                assert!(t.contains("status 503 (invalid parameters): Invalid Params"), "{t}");
            }
            other => panic!("{other:?}"),
        }
        // Not an envelope: left to the body's parse.
        assert!(matches!(check("x", b"<html>"), Verdict::Fine));
    }

    #[test]
    fn signatures_sort_the_parameters_by_name() {
        let a = sign("s3cret", &[("timestamp", "1700000000"), ("action", "getnonce"), ("client_id", "abc")]);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("mac");
        mac.update(b"getnonce,abc,1700000000");
        assert_eq!(a, crate::crypto::hex(&mac.finalize().into_bytes()));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn deliveries_are_form_fields_and_a_bare_post_is_a_check() {
        let d = Delivery::parse(b"userid=12345&appli=44&startdate=1763596800&enddate=1763640000").expect("ok");
        assert_eq!(d.map(|d| (d.userid, d.appli)), Some(("12345".into(), Some("44".into()))));
        assert!(Delivery::parse(b"").expect("a check").is_none());
        assert!(Delivery::parse(b"appli=44").is_err(), "no user");
        assert!(Delivery::parse(b"userid=1%27%3B&appli=44").is_err(), "not an id");
        assert!(Delivery::parse(b"userid=1&appli=sleep").is_err());
    }

    #[test]
    fn callbacks_must_be_https_on_a_domain() {
        assert_eq!(callback_problem("https://coach.example.org/webhooks/withings"), None);
        assert!(callback_problem("http://coach.example.org/webhooks/withings").is_some());
        assert!(callback_problem("https://203.0.113.7/webhooks/withings").is_some());
        assert!(callback_problem("https://coach.example.org:8443/webhooks/withings").is_some());
    }

    #[test]
    fn sleep_summaries_are_range_checked() {
        let s = |start: i64, end: i64, asleep: f64| SleepSummary {
            id: None,
            startdate: start,
            enddate: end,
            data: SleepData { total_sleep_time: Some(asleep), asleepduration: None },
        };
        let t = 1_763_600_000;
        assert_eq!(piece(&s(t, t + 28_800, 25_200.0)).map(|n| n.asleep_ms), Ok(25_200_000));
        assert!(piece(&s(t, t - 1, 0.0)).is_err());
        assert!(piece(&s(t, t + 3600, 7200.0)).is_err(), "more asleep than in bed");
        assert!(piece(&s(t, t + 90_000, 3600.0)).is_err(), "more than a day");
        let other_app = SleepData { total_sleep_time: None, asleepduration: Some(3600.0) };
        let external = SleepSummary { data: other_app, ..s(t, t + 7200, 0.0) };
        assert_eq!(piece(&external).map(|n| n.asleep_ms), Ok(3_600_000), "a night from another app");
    }
}
