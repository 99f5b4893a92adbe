//! The dashboard's rows: trainers and their password hashes, login sessions, clients'
//! private links and weekly reflections. Session and link tokens are random 256-bit
//! values shown once; only their SHA-256 is stored, so a copy of the database opens
//! nothing.

use super::on;
use super::{Store, StoreError};
use crate::crypto::{random_token, token_hash as hash};
use crate::model::ClientId;
use chrono::NaiveDate;

pub type TrainerId = i64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trainer {
    pub id: TrainerId,
    pub name: String,
}

/// A live login session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub trainer: Trainer,
    pub csrf: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reflection {
    pub week: NaiveDate,
    pub rating: u8,
    pub note: Option<String>,
}

impl Store {
    /// Create a trainer, or set a new password for an existing one. Returns the trainer
    /// and whether it was created.
    pub async fn upsert_trainer(&self, name: &str, password_hash: &str) -> Result<(Trainer, bool), StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(vec![format!("trainer name {name:?}: 1-64 printable characters")]));
        }
        let mut tx = self.write().await?;
        let existing: Option<(i64, String)> =
            on!(&mut tx, |e, sql| sqlx::query_as(&sql("SELECT id, name FROM trainers WHERE name = ? COLLATE NOCASE"))
                .bind(name)
                .fetch_optional(&mut **e)
                .await)?;
        let (trainer, created) = match existing {
            Some((id, name)) => {
                on!(&mut tx, |e, sql| sqlx::query(&sql("UPDATE trainers SET password_hash = ? WHERE id = ?"))
                    .bind(password_hash)
                    .bind(id)
                    .execute(&mut **e)
                    .await
                    .map(|r| r.rows_affected()))?;
                // A new password ends every session of the old one.
                on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM sessions WHERE trainer_id = ?"))
                    .bind(id)
                    .execute(&mut **e)
                    .await
                    .map(|r| r.rows_affected()))?;
                (Trainer { id, name }, false)
            }
            None => {
                let id: i64 = on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(
                    "INSERT INTO trainers (name, password_hash, created_ms) VALUES (?, ?, ?) RETURNING id",
                ))
                .bind(name)
                .bind(password_hash)
                .bind(Store::now_ms())
                .fetch_one(&mut **e)
                .await)?;
                (Trainer { id, name: name.to_string() }, true)
            }
        };
        tx.commit().await?;
        Ok((trainer, created))
    }

    pub async fn trainers(&self) -> Result<Vec<Trainer>, StoreError> {
        let rows: Vec<(i64, String)> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql("SELECT id, name FROM trainers ORDER BY name"))
                .fetch_all(e)
                .await)?;
        Ok(rows.into_iter().map(|(id, name)| Trainer { id, name }).collect())
    }

    /// The trainer and their password hash, for a login.
    pub async fn trainer_login(&self, name: &str) -> Result<Option<(Trainer, Option<String>)>, StoreError> {
        let row: Option<(i64, String, Option<String>)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT id, name, password_hash FROM trainers WHERE name = ? COLLATE NOCASE"
        ))
        .bind(name.trim())
        .fetch_optional(e)
        .await)?;
        Ok(row.map(|(id, name, hash)| (Trainer { id, name }, hash)))
    }

    /// Give every client without a trainer to this one; returns how many.
    pub async fn adopt_unassigned(&self, trainer: TrainerId) -> Result<u64, StoreError> {
        let r =
            on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE clients SET trainer_id = ? WHERE trainer_id IS NULL"))
                .bind(trainer)
                .execute(e)
                .await
                .map(|r| r.rows_affected()))?;
        Ok(r)
    }

    pub async fn set_client_trainer(&self, client: ClientId, trainer: Option<TrainerId>) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE clients SET trainer_id = ? WHERE id = ?"))
            .bind(trainer)
            .bind(client)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A new login session; returns the cookie's token (shown once) and the session.
    pub async fn new_session(&self, trainer: &Trainer, ttl_ms: i64) -> Result<(String, Session), StoreError> {
        let token = random_token()?;
        let csrf = random_token()?;
        let now = Store::now_ms();
        on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM sessions WHERE expires_ms < ?"))
            .bind(now)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO sessions (token_hash, trainer_id, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(hash(&token))
        .bind(trainer.id)
        .bind(&csrf)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok((token, Session { trainer: trainer.clone(), csrf }))
    }

    /// The live session of a cookie token, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let row: Option<(i64, String, String)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT t.id, t.name, s.csrf FROM sessions s JOIN trainers t ON t.id = s.trainer_id
             WHERE s.token_hash = ? AND s.expires_ms > ?",
        ))
        .bind(hash(token))
        .bind(Store::now_ms())
        .fetch_optional(e)
        .await)?;
        Ok(row.map(|(id, name, csrf)| Session { trainer: Trainer { id, name }, csrf }))
    }

    pub async fn end_session(&self, token: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM sessions WHERE token_hash = ?"))
            .bind(hash(token))
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The version of a trainer's roster: bumped by [`Store::bump_roster_version`] when
    /// the dashboard changes their data, so every replica's cached roster can tell it is
    /// stale with this one cheap read. 0 before the first change.
    pub async fn roster_version(&self, trainer: TrainerId) -> Result<i64, StoreError> {
        let v: Option<String> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT value FROM meta WHERE key = ?"))
                .bind(format!("roster_version:{trainer}"))
                .fetch_optional(e)
                .await)?;
        v.map_or(Ok(0), |v| v.parse().map_err(|_| StoreError::Corrupt(format!("roster version {v:?}"))))
    }

    /// Mark a trainer's roster changed, for every replica.
    pub async fn bump_roster_version(&self, trainer: TrainerId) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("INSERT INTO meta (key, value) VALUES (?, '1')
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)",))
        .bind(format!("roster_version:{trainer}"))
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The trainer's clients, by name.
    pub async fn clients_of(&self, trainer: TrainerId) -> Result<Vec<super::Client>, StoreError> {
        Ok(self.list_clients().await?.into_iter().filter(|c| c.trainer_id == Some(trainer)).collect())
    }

    /// A client, only if it is this trainer's (else NotFound, the same as a missing id).
    pub async fn client_of(&self, trainer: TrainerId, client: ClientId) -> Result<super::Client, StoreError> {
        match self.client_by_id(client).await {
            Ok(c) if c.trainer_id == Some(trainer) => Ok(c),
            _ => Err(StoreError::NotFound(format!("client #{client}"))),
        }
    }

    /// A new private link token for a client (earlier links keep working until revoked).
    pub async fn new_share_link(&self, client: ClientId) -> Result<String, StoreError> {
        let token = random_token()?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO share_links (token_hash, client_id, created_ms) VALUES (?, ?, ?)"
        ))
        .bind(hash(&token))
        .bind(client)
        .bind(Store::now_ms())
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(token)
    }

    /// Revoke every link of a client; returns how many were live.
    pub async fn revoke_share_links(&self, client: ClientId) -> Result<u64, StoreError> {
        let r = on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE share_links SET revoked_ms = ? WHERE client_id = ? AND revoked_ms IS NULL"
        ))
        .bind(Store::now_ms())
        .bind(client)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(r)
    }

    pub async fn live_share_links(&self, client: ClientId) -> Result<u64, StoreError> {
        let n: i64 = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT COUNT(*) FROM share_links WHERE client_id = ? AND revoked_ms IS NULL"
        ))
        .bind(client)
        .fetch_one(e)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub async fn client_for_share(&self, token: &str) -> Result<Option<ClientId>, StoreError> {
        let id: Option<i64> = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT client_id FROM share_links WHERE token_hash = ? AND revoked_ms IS NULL"
        ))
        .bind(hash(token))
        .fetch_optional(e)
        .await)?;
        Ok(id)
    }

    /// Save (or replace) the client's reflection for the week starting `week` (a Monday).
    pub async fn save_reflection(&self, client: ClientId, r: &Reflection) -> Result<(), StoreError> {
        if !(1..=10).contains(&r.rating) {
            return Err(StoreError::Invalid(vec![format!("rating {}: 1 to 10", r.rating)]));
        }
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO reflections (client_id, week, rating, note, created_ms) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (client_id, week) DO UPDATE SET rating = excluded.rating, note = excluded.note,
             created_ms = excluded.created_ms",
        ))
        .bind(client)
        .bind(r.week.to_string())
        .bind(i64::from(r.rating))
        .bind(&r.note)
        .bind(Store::now_ms())
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The client's reflections, newest week first.
    pub async fn reflections(&self, client: ClientId, limit: i64) -> Result<Vec<Reflection>, StoreError> {
        let rows: Vec<(String, i64, Option<String>)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT week, rating, note FROM reflections WHERE client_id = ? ORDER BY week DESC LIMIT ?"
        ))
        .bind(client)
        .bind(limit)
        .fetch_all(e)
        .await)?;
        rows.into_iter()
            .map(|(week, rating, note)| {
                let week = week.parse().map_err(|_| StoreError::Corrupt(format!("reflection week {week:?}")))?;
                Ok(Reflection { week, rating: u8::try_from(rating).unwrap_or(0), note })
            })
            .collect()
    }
}
