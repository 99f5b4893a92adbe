//! Trainer authentication: argon2id password hashes, session cookies, CSRF tokens and
//! login throttling.

use crate::store::web::{Session, Trainer};
use crate::store::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "coachd_session";
/// The login form's double-submit token, before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "coachd_login";
pub const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// An argon2id PHC string (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's
/// recommended minimum) with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StoreError::Corrupt(format!("the OS random source failed: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Corrupt(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Corrupt(format!("hashing the password: {e}")))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A password a trainer may set: 10 to 512 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 10 {
        return Err(format!("the password has {n} characters; use at least 10"));
    }
    if n > 512 {
        return Err("the password is longer than 512 characters".into());
    }
    Ok(())
}

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

/// Compare secrets in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session a request's cookie names, if it is live.
pub async fn session(store: &Store, headers: &HeaderMap) -> Result<Option<(String, Session)>, StoreError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(store.session(token).await?.map(|s| (token.to_string(), s)))
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

/// Check a login: the trainer, if the name and password match.
pub async fn login(store: &Store, name: &str, password: &str) -> Result<Option<Trainer>, StoreError> {
    let found = store.trainer_login(name).await?;
    let password = password.to_string();
    // Hash even for an unknown name, so timing does not tell which names exist.
    let phc = match &found {
        Some((_, Some(h))) => h.clone(),
        _ => DUMMY_HASH.to_string(),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| StoreError::Corrupt(format!("password check failed: {e}")))?;
    Ok(match found {
        Some((t, Some(_))) if ok => Some(t),
        _ => None,
    })
}

/// An argon2id hash of a random password nobody knows, with the same parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2iL0TAyR1ILxHS5aZ1s3Tj8pXzQQ1h/3lJfh7CPZ3nk";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").expect("hash");
        let b = hash_password("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("wrong horse battery", &a));
        assert!(!verify_password("x", "not a hash"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash parses, so unknown names cost the same");
    }

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
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
