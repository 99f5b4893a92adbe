//! Cloud accounts as the sync sees them: state, the provider's user id, sync times,
//! pending authorizations, and what a provider already sent (to fetch only what changed
//! and to notice deletions).

use super::on;
use super::{Store, StoreError};
use crate::model::{ActivityId, ClientId};
use crate::time::local_dates;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// What an account can do, shown in `accounts list` and the dashboard.
pub mod state {
    pub const ACTIVE: &str = "active";
    /// The refresh token is dead or the authorization was revoked: connect again.
    pub const NEEDS_REAUTH: &str = "needs_reauth";
    /// The client unticked a permission coachd needs: connect again and keep it ticked.
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    /// The client revoked coachd's access at the provider.
    pub const REVOKED: &str = "revoked";
    /// Disconnected from coachd (by the client or the trainer): the tokens are gone, the
    /// data stays; connecting again makes it active.
    pub const DISCONNECTED: &str = "disconnected";
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Account {
    pub id: i64,
    pub client_id: ClientId,
    pub client: String,
    pub provider: String,
    pub external_user_id: Option<String>,
    pub state: String,
    pub last_error: Option<String>,
    /// The last complete, successful sync.
    pub last_sync: Option<DateTime<Utc>>,
    pub scopes: String,
    /// The last sync tried, whatever came of it (what "due" counts from).
    pub last_attempt: Option<DateTime<Utc>>,
    /// When `last_error` happened; an error newer than the last success means failing.
    pub last_error_at: Option<DateTime<Utc>>,
}

impl Account {
    /// Whether the granted scopes include `scope` (an account connected before scopes
    /// were recorded is taken to have them all).
    pub fn granted(&self, scope: &str) -> bool {
        self.scopes.is_empty() || self.scopes.split([' ', ',']).any(|x| x == scope)
    }

    pub fn syncable(&self) -> bool {
        self.state == state::ACTIVE
    }

    /// Active, but its last attempt failed.
    pub fn failing(&self) -> bool {
        self.syncable()
            && self.last_error.is_some()
            && self.last_error_at.is_some_and(|e| self.last_sync.is_none_or(|s| e >= s))
    }
}

type AccountRow =
    (i64, i64, String, String, Option<String>, String, Option<String>, Option<i64>, String, Option<i64>, Option<i64>);

const SELECT: &str = "SELECT a.id, a.client_id, c.name, a.provider, a.external_user_id, a.state, a.last_error,
                             a.last_sync_ms, a.scopes, a.last_attempt_ms, a.last_error_ms
                      FROM accounts a JOIN clients c ON c.id = a.client_id";

fn account(r: AccountRow) -> Account {
    Account {
        id: r.0,
        client_id: r.1,
        client: r.2,
        provider: r.3,
        external_user_id: r.4,
        state: r.5,
        last_error: r.6,
        last_sync: r.7.and_then(DateTime::from_timestamp_millis),
        scopes: r.8,
        last_attempt: r.9.and_then(DateTime::from_timestamp_millis),
        last_error_at: r.10.and_then(DateTime::from_timestamp_millis),
    }
}

/// provider, client id, sealed verifier, redirect, expiry (ms).
type StateRow = (String, i64, Option<Vec<u8>>, String, i64);

/// A pending authorization.
#[derive(Clone, Debug)]
pub struct OAuthState {
    pub provider: String,
    pub client_id: ClientId,
    pub verifier: Option<String>,
    pub redirect: String,
}

impl Store {
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows: Vec<AccountRow> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{SELECT} ORDER BY c.name, a.provider")))
                .fetch_all(e)
                .await)?;
        Ok(rows.into_iter().map(account).collect())
    }

    pub async fn account(&self, client: ClientId, provider: &str) -> Result<Account, StoreError> {
        let row: Option<AccountRow> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{SELECT} WHERE a.client_id = ? AND a.provider = ?"
        )))
        .bind(client)
        .bind(provider)
        .fetch_optional(e)
        .await)?;
        row.map(account).ok_or_else(|| StoreError::NotFound(format!("{provider} account of client #{client}")))
    }

    pub async fn account_by_external(&self, provider: &str, external: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{SELECT} WHERE a.provider = ? AND a.external_user_id = ?"
        )))
        .bind(provider)
        .bind(external)
        .fetch_optional(e)
        .await)?;
        Ok(row.map(account))
    }

    /// Set an account's state and the reason (None clears it).
    pub async fn set_account_state(&self, id: i64, state: &str, reason: Option<&str>) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE accounts SET state = ?, last_error = ?, updated_ms = ? WHERE id = ?"
        ))
        .bind(state)
        .bind(reason)
        .bind(Store::now_ms())
        .bind(id)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_account_user(&self, id: i64, external: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE accounts SET external_user_id = ? WHERE id = ?"))
            .bind(external)
            .bind(id)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A finished sync: when, and the error if it failed (the account stays active). A
    /// failure moves the last attempt and the last error, never the last success.
    pub async fn account_synced(&self, id: i64, at: DateTime<Utc>, error: Option<&str>) -> Result<(), StoreError> {
        let statement = if error.is_none() {
            "UPDATE accounts SET last_attempt_ms = ?1, last_sync_ms = ?1, last_error = ?2, updated_ms = ?3 WHERE id = ?4"
        } else {
            "UPDATE accounts SET last_attempt_ms = ?1, last_error_ms = ?1, last_error = ?2, updated_ms = ?3 WHERE id = ?4"
        };
        on!(&self.db, |e, sql| sqlx::query(&sql(statement))
            .bind(at.timestamp_millis())
            .bind(error)
            .bind(Store::now_ms())
            .bind(id)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn save_oauth_state(
        &self,
        state: &str,
        s: &OAuthState,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sealed = s
            .verifier
            .as_ref()
            .map(|v| self.cipher.seal(v.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM oauth_states WHERE expires_ms < ?"))
            .bind(Store::now_ms())
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        on!(&self.db, |e, sql| {
            sqlx::query(&sql(
            "INSERT INTO oauth_states (state, provider, client_id, verifier, redirect, expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(state)
        .bind(&s.provider)
        .bind(s.client_id)
        .bind(sealed)
        .bind(&s.redirect)
        .bind(expires.timestamp_millis())
        .execute(e)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Take (and delete) a pending authorization, if it exists and has not expired.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let row: Option<StateRow> = on!(&self.db, |e, sql| {
            sqlx::query_as(&sql(
            "DELETE FROM oauth_states WHERE state = ? RETURNING provider, client_id, verifier, redirect, expires_ms",
        ))
        .bind(state)
        .fetch_optional(e)
        .await
        })?;
        let Some((provider, client_id, verifier, redirect, expires)) = row else { return Ok(None) };
        if expires < Store::now_ms() {
            return Ok(None);
        }
        let verifier = verifier
            .map(|v| {
                let plain = self.cipher.open(&v).map_err(|e| StoreError::Corrupt(format!("PKCE verifier: {e}")))?;
                String::from_utf8(plain).map_err(|_| StoreError::Corrupt("PKCE verifier is not UTF-8".into()))
            })
            .transpose()?;
        Ok(Some(OAuthState { provider, client_id, verifier, redirect }))
    }

    /// External id → content hash of what `source` stored for `client` with a start in
    /// `[from, to)`.
    pub async fn source_fingerprints(
        &self,
        source: &str,
        client: ClientId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<String, Option<Vec<u8>>>, StoreError> {
        let rows: Vec<(String, Option<Vec<u8>>)> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql("SELECT external_id, content_hash FROM activities
             WHERE source = ? AND client_id = ? AND start_ms >= ? AND start_ms < ?",))
            .bind(source)
            .bind(client)
            .bind(from.timestamp_millis())
            .bind(to.timestamp_millis())
            .fetch_all(e)
            .await)?;
        Ok(rows.into_iter().collect())
    }

    /// Delete what `source` sent as `external_id` (deleted at the provider): the activity,
    /// its samples and sets; its dates are re-judged. Returns whether it existed.
    pub async fn delete_source_activity(&self, source: &str, external_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<(ActivityId, ClientId, i64, i64, String)> = on!(&mut tx, |e, sql| {
            sqlx::query_as(&sql(
            "SELECT a.id, a.client_id, a.start_ms, a.end_ms, c.tz FROM activities a JOIN clients c ON c.id = a.client_id
             WHERE a.source = ? AND a.external_id = ?",
        ))
        .bind(source)
        .bind(external_id)
        .fetch_optional(&mut **e)
        .await
        })?;
        let Some((id, client, start, end, tz)) = row else { return Ok(false) };
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM activities WHERE id = ?"))
            .bind(id)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        let tz: chrono_tz::Tz =
            tz.parse().map_err(|_| StoreError::Corrupt(format!("client #{client} time zone {tz:?}")))?;
        let (start, end) = (DateTime::from_timestamp_millis(start), DateTime::from_timestamp_millis(end));
        if let (Some(start), Some(end)) = (start, end) {
            for d in local_dates(tz, start, end) {
                super::ingest::mark_dirty(&mut tx, client, d).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// The dates in `[from, to]` a source stored `metric` for, for a client: what a
    /// provider compares with what it lists now, to notice a night deleted there.
    pub async fn source_daily_dates(
        &self,
        source: &str,
        client: ClientId,
        metric: crate::model::Metric,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<chrono::NaiveDate>, StoreError> {
        let rows: Vec<String> = on!(&self.db, |e, sql| {
            sqlx::query_scalar(&sql(
            "SELECT date FROM daily_metrics WHERE source = ? AND client_id = ? AND metric = ? AND date BETWEEN ? AND ?
             ORDER BY date",
        ))
        .bind(source)
        .bind(client)
        .bind(metric.as_str())
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(e)
        .await
        })?;
        rows.iter().map(|d| d.parse().map_err(|_| StoreError::Corrupt(format!("daily metric date {d:?}")))).collect()
    }

    /// Delete what a source stored of `metrics` for a client's date (a night deleted at
    /// the provider), marking the date for judging again; whether anything was there.
    pub async fn delete_source_daily(
        &self,
        source: &str,
        client: ClientId,
        date: chrono::NaiveDate,
        metrics: &[crate::model::Metric],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let mut gone = 0;
        for m in metrics {
            gone += on!(&mut tx, |e, sql| sqlx::query(&sql(
                "DELETE FROM daily_metrics WHERE source = ? AND client_id = ? AND date = ? AND metric = ?"
            ))
            .bind(source)
            .bind(client)
            .bind(date.to_string())
            .bind(m.as_str())
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))?;
        }
        if gone > 0 {
            super::ingest::mark_dirty(&mut tx, client, date).await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// A value a provider keeps in `meta` (its subscriptions' state, say).
    pub async fn meta_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
            .bind(key)
            .fetch_optional(e)
            .await)?)
    }

    pub async fn set_meta_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ))
        .bind(key)
        .bind(value)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A random secret kept in `meta` under `key`, made on first use.
    pub async fn meta_secret(&self, key: &str) -> Result<String, StoreError> {
        let fresh = crate::crypto::random_token()?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        ))
        .bind(key)
        .bind(&fresh)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
            .bind(key)
            .fetch_one(e)
            .await)?)
    }
}

impl Store {
    /// Take the lease `name` for `holder` until `ttl_ms` from now, if nobody else holds a
    /// live one: the lock that makes one process at a time spend an account's refresh
    /// token, whichever coachd process (daemon or command) asks. `BEGIN IMMEDIATE` takes
    /// the database's write lock first, so two processes cannot both see it free.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let key = format!("lease:{name}");
        let now = Store::now_ms();
        let mut tx = self.write().await?;
        let current: Option<String> =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
                .bind(&key)
                .fetch_optional(&mut **e)
                .await)?;
        let live = current
            .as_deref()
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(who, until)| who != holder && until.parse::<i64>().is_ok_and(|u| u > now));
        if live {
            return Ok(false);
        }
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ))
        .bind(&key)
        .bind(format!("{holder} {}", now + ttl_ms))
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Give a lease back (only the holder's own).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM meta WHERE key = ? AND value LIKE ? || ' %'"))
            .bind(format!("lease:{name}"))
            .bind(holder)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// What the last complete sync of an account left out, with why (shown by `accounts
    /// list` in any process).
    pub async fn set_skipped(&self, account: i64, skipped: &[String]) -> Result<(), StoreError> {
        let key = format!("skipped:{account}");
        if skipped.is_empty() {
            on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM meta WHERE key = ?"))
                .bind(&key)
                .execute(e)
                .await
                .map(|r| r.rows_affected()))?;
            return Ok(());
        }
        let json = serde_json::to_string(skipped).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ))
        .bind(&key)
        .bind(json)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn skipped(&self, account: i64) -> Result<Vec<String>, StoreError> {
        let json: Option<String> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
                .bind(format!("skipped:{account}"))
                .fetch_optional(e)
                .await)?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    /// The base URL the daemon last served at (its `--listen`, or `web.public_url`), so a
    /// command in another process makes links that reach it.
    pub async fn set_served_url(&self, url: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| {
            sqlx::query(&sql("INSERT INTO meta (key, value) VALUES ('served_url', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"))
            .bind(url)
            .execute(e)
            .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn served_url(&self) -> Result<Option<String>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = 'served_url'"))
            .fetch_optional(e)
            .await)?)
    }

    /// Remember a provider's rate-limit headroom (JSON), for `accounts list` in another
    /// process than the daemon's.
    pub async fn save_headroom(&self, provider: &str, json: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ))
        .bind(format!("headroom:{provider}"))
        .bind(json)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn headroom(&self, provider: &str) -> Result<Option<String>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
            .bind(format!("headroom:{provider}"))
            .fetch_optional(e)
            .await)?)
    }
}
