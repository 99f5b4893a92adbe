//! Provider accounts: tokens are sealed with the data dir's key before they reach SQL.
//! The OAuth flows that fill this table arrive with the providers.

use super::on;
use super::{Store, StoreError};
use crate::crypto::Secret;
use crate::model::ClientId;
use chrono::{DateTime, Utc};

/// An account's OAuth tokens, in the clear only in memory.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access: Secret<String>,
    pub refresh: Option<Secret<String>>,
    pub expires: Option<DateTime<Utc>>,
    pub scopes: String,
}

/// Sealed access token, sealed refresh token, expiry (ms), scopes.
type TokenRow = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>, String);

impl Store {
    /// Create or update the account of `client` at `provider` with fresh tokens and mark it active.
    pub async fn save_tokens(&self, client: ClientId, provider: &str, tokens: &Tokens) -> Result<(), StoreError> {
        let now = Store::now_ms();
        let seal = |s: &str| self.cipher.seal(s.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string()));
        let access = seal(tokens.access.expose())?;
        let refresh = tokens.refresh.as_ref().map(|r| seal(r.expose())).transpose()?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO accounts (client_id, provider, state, access_token, refresh_token, expires_ms, scopes,
                                   created_ms, updated_ms)
             VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?)
             ON CONFLICT (client_id, provider) DO UPDATE SET state = 'active', access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token, expires_ms = excluded.expires_ms,
                 scopes = excluded.scopes, last_error = NULL, updated_ms = excluded.updated_ms",
        ))
        .bind(client)
        .bind(provider)
        .bind(access)
        .bind(refresh)
        .bind(tokens.expires.map(|t| t.timestamp_millis()))
        .bind(&tokens.scopes)
        .bind(now)
        .bind(now)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn tokens(&self, client: ClientId, provider: &str) -> Result<Tokens, StoreError> {
        let row: Option<TokenRow> = on!(&self.db, |e, sql| {
            sqlx::query_as(&sql(
            "SELECT access_token, refresh_token, expires_ms, scopes FROM accounts WHERE client_id = ? AND provider = ?",
        ))
        .bind(client)
        .bind(provider)
        .fetch_optional(e)
        .await
        })?;
        let what = || format!("{provider} account of client #{client}");
        let (access, refresh, expires, scopes) = row.ok_or_else(|| StoreError::NotFound(what()))?;
        let open = |sealed: Vec<u8>| -> Result<Secret<String>, StoreError> {
            let plain = self.cipher.open(&sealed).map_err(|e| StoreError::Corrupt(format!("{}: {e}", what())))?;
            String::from_utf8(plain)
                .map(Secret::new)
                .map_err(|_| StoreError::Corrupt(format!("{}: token is not UTF-8", what())))
        };
        Ok(Tokens {
            access: open(access.ok_or_else(|| StoreError::NotFound(format!("access token of {}", what())))?)?,
            refresh: refresh.map(open).transpose()?,
            expires: expires.and_then(DateTime::from_timestamp_millis),
            scopes,
        })
    }

    /// Forget an account's tokens and mark it disconnected with why; its data and its row
    /// stay (connecting again reuses the row). Whether there was an account.
    pub async fn forget_tokens(&self, account: i64, why: &str) -> Result<bool, StoreError> {
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE accounts SET access_token = NULL, refresh_token = NULL, expires_ms = NULL, state = ?,
                 last_error = ?, updated_ms = ? WHERE id = ?",
        ))
        .bind(super::providers::state::DISCONNECTED)
        .bind(why)
        .bind(Store::now_ms())
        .bind(account)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }
}
