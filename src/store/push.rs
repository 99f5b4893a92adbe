//! Push tokens: what a client's phone presents to push data. Only a SHA-256 is stored.

use super::on;
use super::{Store, StoreError};
use crate::crypto::{random_token, token_hash as hash};
use crate::model::ClientId;

impl Store {
    /// A new token for the client; earlier ones stop working. Returned once, never stored.
    pub async fn new_push_token(&self, client: ClientId) -> Result<String, StoreError> {
        let token = random_token()?;
        let now = Store::now_ms();
        let mut tx = self.write().await?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "UPDATE push_tokens SET revoked_ms = ? WHERE client_id = ? AND revoked_ms IS NULL"
        ))
        .bind(now)
        .bind(client)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO push_tokens (token_hash, client_id, created_ms) VALUES (?, ?, ?)"
        ))
        .bind(hash(&token))
        .bind(client)
        .bind(now)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revoke every push token of a client; returns how many were live.
    pub async fn revoke_push_tokens(&self, client: ClientId) -> Result<u64, StoreError> {
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE push_tokens SET revoked_ms = ? WHERE client_id = ? AND revoked_ms IS NULL"
        ))
        .bind(Store::now_ms())
        .bind(client)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// The client a live token belongs to.
    pub async fn client_for_push_token(&self, token: &str) -> Result<Option<ClientId>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT client_id FROM push_tokens WHERE token_hash = ? AND revoked_ms IS NULL"
        ))
        .bind(hash(token))
        .fetch_optional(e)
        .await)?)
    }

    /// How many live push tokens the client has (0 or 1: a new one ends the others).
    pub async fn live_push_tokens(&self, client: ClientId) -> Result<u64, StoreError> {
        let n: i64 = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT COUNT(*) FROM push_tokens WHERE client_id = ? AND revoked_ms IS NULL"
        ))
        .bind(client)
        .fetch_one(e)
        .await)?;
        Ok(n.max(0) as u64)
    }
}
