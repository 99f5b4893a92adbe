//! OAuth 2 on the `oauth2` crate: the authorization link (`coachd connect`), the
//! callback (state checked, single use, PKCE where the provider supports it), the code
//! exchange, and token refresh: before expiry, once at a time per account, the rotated
//! refresh token stored before anything uses the new access token. A refused refresh
//! token becomes the account state `needs_reauth`, not a retry loop.
//!
//! Both token requests go through [`request_token`]: a provider whose token endpoint is
//! not RFC 6749's (Withings wraps every answer in `{status, body}` and names its errors
//! with numbers) supplies its own exchange ([`super::Provider::token_request`]); the
//! others take the `oauth2` crate's. Either way the answer is a [`TokenAnswer`] or a
//! [`TokenFailure`] that says whether the grant was refused or the provider failed.

use super::{Auth, Connection, ProviderError, Registry};
use crate::crypto::Secret;
use crate::store::providers::{state, Account, OAuthState};
use crate::store::{Store, StoreError, Tokens};
use chrono::{DateTime, Duration, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// What providers add to the token response: Strava's athlete, Polar's user id.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Extra {
    #[serde(default)]
    pub athlete: Option<serde_json::Value>,
    #[serde(default)]
    pub x_user_id: Option<serde_json::Value>,
}

impl ExtraTokenFields for Extra {}

type Token = StandardTokenResponse<Extra, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Token,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Authorization links live this long.
pub const LINK_TTL: Duration = Duration::minutes(30);
/// Tokens are refreshed this long before they expire.
const EARLY: Duration = Duration::minutes(5);

fn oauth_client(reg: &Registry, provider: &str) -> Result<OAuthClient, ProviderError> {
    let api = reg.api(provider)?;
    let m = &api.manifest;
    let app = reg.app(provider)?;
    let bad = |what: &str, e: oauth2::url::ParseError| ProviderError::Invalid(format!("{provider} {what}: {e}"));
    Ok(oauth2::Client::new(ClientId::new(app.client_id))
        .set_client_secret(ClientSecret::new(app.client_secret.expose().clone()))
        .set_auth_uri(AuthUrl::new(m.authorize_url.clone()).map_err(|e| bad("authorize_url", e))?)
        .set_token_uri(TokenUrl::new(m.token_url.clone()).map_err(|e| bad("token_url", e))?)
        .set_redirect_uri(RedirectUrl::new(reg.redirect_uri(provider)).map_err(|e| bad("redirect URL", e))?)
        .set_auth_type(match m.client_auth {
            super::ClientAuth::Body => AuthType::RequestBody,
            super::ClientAuth::Basic => AuthType::BasicAuth,
        }))
}

/// `coachd connect`: a single-use authorization link for one client.
pub async fn authorization_link(
    reg: &Registry,
    store: &Store,
    provider: &str,
    client: i64,
) -> Result<String, ProviderError> {
    let api = reg.api(provider)?;
    let m = &api.manifest;
    if m.auth != super::AuthKind::Oauth2 {
        return Err(ProviderError::Invalid(format!(
            "{} uses API keys: coachd connect {provider} CLIENT --api-key KEY",
            m.display
        )));
    }
    let oauth = oauth_client(reg, provider)?;
    let state = crate::crypto::random_token()?;
    let mut req = oauth.authorize_url(|| CsrfToken::new(state.clone()));
    // Scopes go in one parameter, joined the provider's way (Strava: commas).
    req = req.add_scope(Scope::new(m.scopes.join(&m.scope_separator)));
    for (k, v) in &m.authorize_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    let mut verifier = None;
    if m.pkce {
        let (challenge, v) = PkceCodeChallenge::new_random_sha256();
        req = req.set_pkce_challenge(challenge);
        verifier = Some(v.secret().clone());
    }
    let (url, _) = req.url();
    let pending = OAuthState {
        provider: provider.to_string(),
        client_id: client,
        verifier,
        redirect: reg.redirect_uri(provider),
    };
    store.save_oauth_state(&state, &pending, Utc::now() + LINK_TTL).await?;
    Ok(url.to_string())
}

/// The callback's query.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// What the callback tells the trainer.
#[derive(Debug)]
pub struct Outcome {
    pub client: String,
    pub provider: String,
    /// Connected, but coachd cannot read what it needs.
    pub warning: Option<String>,
}

/// An HTTP client for oauth2 that remembers the last status code, so a refused token
/// (400/401) is told apart from a provider that is down (5xx, network).
fn recording_client(
    http: reqwest::Client,
    status: Arc<AtomicU16>,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>> {
    move |req: oauth2::HttpRequest| {
        let http = http.clone();
        let status = status.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
            for (k, v) in &parts.headers {
                builder = builder.header(k, v);
            }
            let resp = builder.send().await?;
            status.store(resp.status().as_u16(), Ordering::Relaxed);
            let mut out = oauth2::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let bytes = resp.bytes().await?;
            Ok(out.body(bytes.to_vec()).unwrap_or_default())
        })
    }
}

/// What a token request asks for.
#[derive(Clone, Copy, Debug)]
pub enum Grant<'a> {
    /// The code the provider's redirect brought, with the PKCE verifier if one was made.
    Code { code: &'a str, verifier: Option<&'a str> },
    /// A new pair for this refresh token.
    Refresh(&'a str),
}

/// A token endpoint's answer, however the provider shapes it.
#[derive(Clone, Debug, Default)]
pub struct TokenAnswer {
    pub access: String,
    /// None: the provider does not rotate; the stored refresh token stays.
    pub refresh: Option<String>,
    pub expires_in: Option<Duration>,
    /// The scopes granted, as the provider lists them.
    pub scope: Option<String>,
    /// The provider's id of the user (Strava's athlete, Polar's and Withings' user id).
    pub user: Option<String>,
}

/// Why a token request gave no token.
#[derive(Debug)]
pub enum TokenFailure {
    /// The provider refused the code or refresh token. `status` is the number it said
    /// it with, `said` how to show it ("HTTP 400", "status 503").
    Refused { status: u16, said: String, text: String },
    /// The provider could not be asked or failed: try again later.
    Unavailable { said: String, text: String },
    /// The provider is not set up (no credentials, a bad URL).
    Setup(ProviderError),
}

fn tokens_of(t: &TokenAnswer, now: DateTime<Utc>, scopes: String, old_refresh: Option<&Secret<String>>) -> Tokens {
    Tokens {
        access: Secret::new(t.access.clone()),
        // A provider that does not rotate keeps the old refresh token.
        refresh: t.refresh.clone().map(Secret::new).or_else(|| old_refresh.cloned()),
        expires: t.expires_in.map(|d| now + d),
        scopes,
    }
}

fn external_user(extra: &Extra) -> Option<String> {
    let id = extra.athlete.as_ref().and_then(|a| a.get("id")).or(extra.x_user_id.as_ref())?;
    Some(match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Ask `provider`'s token endpoint for a token: the provider's own exchange if it has
/// one ([`super::Provider::token_request`]), else the `oauth2` crate's.
pub async fn request_token(reg: &Registry, provider: &str, grant: Grant<'_>) -> Result<TokenAnswer, TokenFailure> {
    let p = super::provider(provider).map_err(TokenFailure::Setup)?;
    if let Some(own) = p.token_request(reg, grant) {
        return own.await;
    }
    let api = reg.api(provider).map_err(TokenFailure::Setup)?;
    let oauth = oauth_client(reg, provider).map_err(TokenFailure::Setup)?;
    let status = Arc::new(AtomicU16::new(0));
    let http = recording_client(api.http.clone(), status.clone());
    let result = match grant {
        Grant::Code { code, verifier } => {
            let mut exchange = oauth.exchange_code(AuthorizationCode::new(code.to_string()));
            if let Some(v) = verifier {
                exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
            }
            exchange.request_async(&http).await
        }
        Grant::Refresh(r) => {
            let refresh = RefreshToken::new(r.to_string());
            let mut request = oauth.exchange_refresh_token(&refresh);
            let m = &api.manifest;
            // A provider whose refresh names scopes again (WHOOP: `offline`).
            if !m.refresh_scopes.is_empty() {
                request = request.add_scope(Scope::new(m.refresh_scopes.join(&m.scope_separator)));
            }
            request.request_async(&http).await
        }
    };
    match result {
        Ok(t) => Ok(TokenAnswer {
            access: t.access_token().secret().clone(),
            refresh: t.refresh_token().map(|r| r.secret().clone()),
            expires_in: t.expires_in().and_then(|d| Duration::from_std(d).ok()),
            scope: t.scopes().map(|s| s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")),
            user: external_user(t.extra_fields()),
        }),
        Err(e) => {
            let code = status.load(Ordering::Relaxed);
            let (said, text) = (format!("HTTP {code}"), describe(&e));
            let refused = match grant {
                // The provider could not be reached or failed: not the person's doing.
                Grant::Code { .. } => !(matches!(e, RequestTokenError::Request(_)) || code >= 500),
                Grant::Refresh(_) => {
                    matches!(e, RequestTokenError::ServerResponse(_)) || matches!(code, 400 | 401 | 403)
                }
            };
            Err(if refused {
                TokenFailure::Refused { status: code, said, text }
            } else {
                TokenFailure::Unavailable { said, text }
            })
        }
    }
}

/// `/oauth/PROVIDER/callback`: check the state, exchange the code, store the tokens,
/// check the scopes granted, then the provider's own step ([`super::Provider::after_connect`]).
pub async fn finish(reg: &Registry, store: &Store, provider: &str, q: &Callback) -> Result<Outcome, ProviderError> {
    let refused = |s: String| ProviderError::Refused(s);
    let Some(state_token) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(refused("the link has no state: start again with `coachd connect`".into()));
    };
    let p = super::provider(provider)?;
    let pending = store.take_oauth_state(state_token).await?;
    let Some(pending) = pending.filter(|s| s.provider == provider) else {
        return Err(refused("this authorization link is unknown, used or expired: run `coachd connect` again".into()));
    };
    let client_row = store.client_by_id(pending.client_id).await?;
    let api = reg.api(provider)?;
    let m = &api.manifest;
    if let Some(e) = &q.error {
        let said = format!("{e} {}", q.error_description.as_deref().unwrap_or_default());
        return Err(refused(
            p.explain_refusal(0, &said)
                .unwrap_or_else(|| format!("{} answered {e:?}: nothing was connected", m.display)),
        ));
    }
    let code = q.code.clone().filter(|c| !c.is_empty()).ok_or_else(|| refused("the provider sent no code".into()))?;
    let grant = Grant::Code { code: &code, verifier: pending.verifier.as_deref() };
    let token = match request_token(reg, provider, grant).await {
        Ok(t) => t,
        Err(TokenFailure::Setup(e)) => return Err(e),
        Err(TokenFailure::Unavailable { text, .. }) => {
            return Err(super::ApiError::Server(format!("{}'s token endpoint", m.display), text).into());
        }
        Err(TokenFailure::Refused { status, said, text }) => {
            return Err(refused(
                p.explain_refusal(status, &text)
                    .unwrap_or_else(|| format!("{} refused the code ({said}): {text}", m.display)),
            ));
        }
    };
    // The scopes granted: the redirect says (Strava, Oura), else the token, else what was asked.
    let granted = q.scope.clone().or_else(|| token.scope.clone()).unwrap_or_else(|| m.scopes.join(","));
    let have: Vec<&str> = granted.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    let enough = m.required_scopes.is_empty() || m.required_scopes.iter().any(|r| have.contains(&r.as_str()));
    let tokens = tokens_of(&token, reg.clock.now(), granted.clone(), None);
    store.save_tokens(pending.client_id, provider, &tokens).await?;
    let mut account = store.account(pending.client_id, provider).await?;
    if let Some(user) = &token.user {
        store.set_account_user(account.id, user).await?;
        account.external_user_id = Some(user.clone());
    }
    if !enough {
        let why = format!(
            "{} granted only {granted:?}; coachd needs {} to read anything. Connect again and leave that box ticked.",
            m.display,
            m.required_scopes.join(" or ")
        );
        store.set_account_state(account.id, state::INSUFFICIENT_SCOPE, Some(&why)).await?;
        tracing::info!(client = %client_row.name, provider, scopes = %granted, "account connected without the scopes it needs");
        return Ok(Outcome { client: client_row.name, provider: m.display.clone(), warning: Some(why) });
    }
    let mut warnings: Vec<String> = Vec::new();
    let missing = missing_scopes(m, &granted);
    if !missing.is_empty() {
        warnings.push(format!(
            "{} did not grant {}: coachd cannot read {}. Connect again with those boxes ticked to have them.",
            m.display,
            missing.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", "),
            missing.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let access = Auth::Bearer(tokens.access.clone());
    if let Some(w) = p.after_connect(Connection { reg, store, account: &account, access }).await? {
        warnings.push(w);
    }
    reg.poke(account.id);
    tracing::info!(client = %client_row.name, provider, scopes = %granted, "account connected");
    let warning = (!warnings.is_empty()).then(|| warnings.join(" "));
    Ok(Outcome { client: client_row.name, provider: m.display.clone(), warning })
}

/// The manifest's scopes with what they read (`scope_reads`) that `granted` lacks.
pub fn missing_scopes<'m>(m: &'m super::Manifest, granted: &str) -> Vec<(&'m String, &'m String)> {
    let have: Vec<&str> = granted.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    m.scope_reads.iter().filter(|(s, _)| !have.contains(&s.as_str())).collect()
}

fn describe<E: std::error::Error>(e: &RequestTokenError<E, BasicErrorResponse>) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => {
            format!("{}{}", r.error(), r.error_description().map(|d| format!(": {d}")).unwrap_or_default())
        }
        RequestTokenError::Request(e) => format!("request failed: {e}"),
        RequestTokenError::Parse(e, body) => {
            format!("{e}: {}", String::from_utf8_lossy(body).chars().take(200).collect::<String>())
        }
        RequestTokenError::Other(s) => s.clone(),
    }
}

/// Why there is no token to use.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The account needs the client to connect again (its state says so).
    #[error("{0}")]
    Reauth(String),
    /// Try again later (the provider or the network failed).
    #[error("{0}")]
    Temporary(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands out access tokens, refreshing them one at a time per account: one task at a
/// time in this process (a mutex), and one process at a time across the daemon and every
/// `coachd` command (a lease in the store, see [`Store::try_lease`]).
pub struct Refresher {
    locks: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Refreshes done (for tests and logs).
    pub refreshes: std::sync::atomic::AtomicU64,
    /// This process's name on the store's leases.
    holder: String,
}

impl Default for Refresher {
    fn default() -> Self {
        let holder = crate::crypto::random_token()
            .map(|t| t[..16].to_string())
            .unwrap_or_else(|_| format!("pid{}", std::process::id()));
        Self { locks: Default::default(), refreshes: Default::default(), holder }
    }
}

/// How long a lease holds if its holder dies mid-refresh, and how long to wait for one.
const LEASE_MS: i64 = 60_000;
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

impl Refresher {
    /// This process's name on the store's leases (the token and the sync leases).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn lock_of(&self, account: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(account).or_default().clone()
    }

    /// The credentials for a request of `account`: the stored token, refreshed first if
    /// it expires within 5 minutes, or if `force` (the provider just answered 401).
    pub async fn auth(
        &self,
        reg: &Registry,
        store: &Store,
        account: &Account,
        force: bool,
    ) -> Result<Auth, TokenError> {
        let api = reg.api(&account.provider).map_err(|e| TokenError::Temporary(e.to_string()))?;
        if api.manifest.auth == super::AuthKind::ApiKey {
            let t = store.tokens(account.client_id, &account.provider).await?;
            return Ok(Auth::Basic("API_KEY".into(), t.access));
        }
        let lock = self.lock_of(account.id);
        let _one_at_a_time = lock.lock().await;
        // Across processes: a lease on the account's token in the store.
        let lease = format!("refresh:{}", account.id);
        let waited = std::time::Instant::now();
        while !store.try_lease(&lease, &self.holder, LEASE_MS).await? {
            if waited.elapsed() > LEASE_WAIT {
                return Err(TokenError::Temporary(format!(
                    "another coachd process has been refreshing the {} token for {} s; trying again later",
                    api.manifest.display,
                    LEASE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let result = self.auth_leased(reg, store, account, force, api).await;
        if let Err(e) = store.release_lease(&lease, &self.holder).await {
            tracing::warn!(error = %e, "releasing the token lease failed; it expires by itself");
        }
        result
    }

    /// [`Refresher::auth`] under both locks.
    async fn auth_leased(
        &self,
        reg: &Registry,
        store: &Store,
        account: &Account,
        force: bool,
        api: &super::Api,
    ) -> Result<Auth, TokenError> {
        // Read under the lease: whoever held it may have refreshed already.
        let t = store.tokens(account.client_id, &account.provider).await?;
        let now = reg.clock.now();
        let due = t.expires.is_some_and(|e| e - EARLY <= now);
        if !(due || force) {
            return Ok(Auth::Bearer(t.access));
        }
        let Some(refresh) = t.refresh.clone() else {
            let why =
                format!("the {} token expired and there is no refresh token: connect again", api.manifest.display);
            store.set_account_state(account.id, state::NEEDS_REAUTH, Some(&why)).await?;
            return Err(TokenError::Reauth(why));
        };
        let result = request_token(reg, &account.provider, Grant::Refresh(refresh.expose())).await;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(token) => {
                let fresh = tokens_of(&token, reg.clock.now(), t.scopes.clone(), Some(&refresh));
                // Stored before anything uses it: a crash from here on keeps the new pair.
                store.save_tokens(account.client_id, &account.provider, &fresh).await?;
                tracing::info!(client = %account.client, provider = %account.provider, "token refreshed");
                Ok(Auth::Bearer(fresh.access))
            }
            Err(e) => {
                let (refused, said, text) = match e {
                    TokenFailure::Refused { said, text, .. } => (true, said, text),
                    TokenFailure::Unavailable { said, text } => (false, said, text),
                    TokenFailure::Setup(e) => return Err(TokenError::Temporary(e.to_string())),
                };
                // Only a refusal of the token stored now means the authorization is gone:
                // if the pair changed meanwhile (a process that did not take the lease, an
                // older coachd), use the new one.
                let now_stored = store.tokens(account.client_id, &account.provider).await?;
                if refused && now_stored.refresh.as_ref().map(|r| r.expose()) != Some(refresh.expose()) {
                    tracing::info!(client = %account.client, provider = %account.provider, "token rotated elsewhere; using the new one");
                    return Ok(Auth::Bearer(now_stored.access));
                }
                if refused {
                    let why = format!(
                        "{} refused the refresh token ({said}: {text}); the authorization was revoked or expired: \
                         connect again",
                        api.manifest.display
                    );
                    store.set_account_state(account.id, state::NEEDS_REAUTH, Some(&why)).await?;
                    Err(TokenError::Reauth(why))
                } else {
                    Err(TokenError::Temporary(format!(
                        "refreshing the {} token failed ({said}): {text}",
                        api.manifest.display
                    )))
                }
            }
        }
    }
}
