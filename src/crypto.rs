//! The data dir's encryption key, sealing of secrets at rest, [`Secret`], and the
//! small primitives every other module shares: SHA-256, HMAC-SHA256 and hex, random
//! tokens and their stored hashes, constant-time comparison, and trainers' password
//! hashes.
//!
//! The key is 32 random bytes in `DATA/coachd.key` (mode 0600), created once by
//! `coachd init` and never replaced: losing it makes stored provider tokens unreadable,
//! so the store records the key's fingerprint and refuses to open with another key.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use thiserror::Error;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot create key file {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("key file {path} holds {len} bytes, expected {KEY_LEN}; restore it from a backup (stored tokens need the original key)")]
    BadLength { path: String, len: usize },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
}

#[derive(Debug, Error)]
#[error("a sealed secret could not be opened: it is corrupt or was sealed with another key")]
pub struct OpenError;

#[derive(Debug, Error)]
#[error("a secret could not be sealed: {0}")]
pub struct SealError(String);

/// Seals and opens secrets with the data dir's key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    fingerprint: String,
    /// The key for links coachd signs (HMAC-SHA256), derived from the data dir's key so
    /// it needs no file of its own and is never stored.
    link_key: [u8; 32],
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cipher({})", self.fingerprint)
    }
}

impl Cipher {
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"coachd key fingerprint v1\0");
        h.update(key);
        let fingerprint = hex(&h.finalize()[..8]);
        let link_key = hmac_sha256(key, &[b"coachd link signing key v1"]);
        Self { aead: XChaCha20Poly1305::new(Key::from_slice(key)), fingerprint, link_key }
    }

    /// The signature of a link's parts (hex), under a key only this data dir has.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        hex(&hmac_sha256(&self.link_key, parts))
    }

    /// Whether `mac` (hex) is the signature of `parts`, compared in constant time.
    pub fn signed(&self, parts: &[&[u8]], mac: &str) -> bool {
        unhex(mac).is_some_and(|m| hmac_sha256_is(&self.link_key, parts, &m))
    }

    /// A short, non-secret identifier of the key, stored to detect a swapped key file.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Nonce followed by ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError(format!("the OS random source failed: {e}")))?;
        let nonce = XNonce::from_slice(&nonce);
        let mut out = nonce.to_vec();
        let sealed = self.aead.encrypt(nonce, plaintext).map_err(|e| SealError(e.to_string()))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.aead.decrypt(XNonce::from_slice(nonce), body).map_err(|_| OpenError)
    }
}

/// Load the key at `path`, creating it (0600) if it does not exist yet.
/// Returns the cipher and whether the file was created.
pub fn load_or_create_key(path: &Path) -> Result<(Cipher, bool), KeyError> {
    let mut created = false;
    if !path.exists() {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| KeyError::Create {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("the OS random source failed: {e}")),
        })?;
        created = crate::paths::write_new_private(path, &key)
            .map_err(|source| KeyError::Create { path: path.display().to_string(), source })?;
    }
    Ok((load_key(path)?, created))
}

pub fn load_key(path: &Path) -> Result<Cipher, KeyError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read { path: shown.clone(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { path: shown, mode });
    }
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: shown.clone(), source })?;
    let key: [u8; KEY_LEN] =
        bytes.as_slice().try_into().map_err(|_| KeyError::BadLength { path: shown, len: bytes.len() })?;
    Ok(Cipher::from_key(&key))
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HMAC-SHA256 of `parts`, one after the other, keyed with `key` (the providers'
/// webhook signatures and Withings' signed requests).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    hmac_of(key, parts).finalize().into_bytes().into()
}

/// Whether `mac` is the HMAC-SHA256 of `parts` under `key`, compared in constant time.
pub fn hmac_sha256_is(key: &[u8], parts: &[&[u8]], mac: &[u8]) -> bool {
    use hmac::Mac;
    hmac_of(key, parts).verify_slice(mac).is_ok()
}

fn hmac_of(key: &[u8], parts: &[&[u8]]) -> hmac::Hmac<Sha256> {
    use hmac::Mac;
    // HMAC takes a key of any length: this never fails.
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).expect("an HMAC key of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Hex digits (either case) as bytes; None for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The OS random source failed (it practically never does).
#[derive(Debug, Error)]
#[error("the OS random source failed: {0}")]
pub struct RandomError(String);

/// 256 random bits as 64 hex digits: session, link, push and OAuth-state tokens.
pub fn random_token() -> Result<String, RandomError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex(&raw))
}

/// Whether `s` has the shape of a [`random_token`]; anything else is refused unread.
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What is stored of a bearer token: its SHA-256, so a copy of the database opens nothing.
pub fn token_hash(token: &str) -> Vec<u8> {
    sha256(token.as_bytes()).to_vec()
}

/// Compare secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id PHC string (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's
/// recommended minimum) with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, RandomError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| RandomError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| RandomError(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RandomError(format!("hashing the password: {e}")))
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

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The only way to the value; grep for it when auditing.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Serialising a secret writes `***` too, so a dumped config cannot leak it.
impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let c = Cipher::from_key(&[7; 32]);
        let sealed = c.seal(b"refresh-token").expect("seal");
        assert_eq!(c.open(&sealed).expect("opens"), b"refresh-token");
        assert_ne!(c.seal(b"refresh-token").expect("seal"), sealed, "nonces differ");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(c.open(&bad).is_err());
        assert!(Cipher::from_key(&[8; 32]).open(&sealed).is_err());
        assert!(c.open(&sealed[..10]).is_err());
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coachd.key");
        let (a, created) = load_or_create_key(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = load_or_create_key(&path).expect("load");
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(load_key(&path), Err(KeyError::BadLength { len: 5, .. })));
    }

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").expect("hash");
        let b = hash_password("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("wrong horse battery", &a));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn hex_tokens_and_comparison() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(hex(&sha256(b"abc")[..4]), "ba7816bf");
        let t = random_token().expect("token");
        assert!(is_token(&t) && !is_token(&t[1..]) && !is_token(&t.replace(|_: char| true, "z")));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"***\"");
    }
}
