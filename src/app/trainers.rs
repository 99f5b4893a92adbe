//! Trainers: the dashboard's users. Passwords are argon2id hashes; checking one costs
//! the same whether the name exists or not.

use super::{App, AppError, AppResult};
use crate::store::throttle::{ThrottleKeys, ThrottleRows};
use crate::store::web::{Session, Trainer, TrainerId};

pub struct TrainerAdded {
    pub trainer: Trainer,
    /// False: an existing trainer got a new password (and their sessions ended).
    pub created: bool,
    /// Clients without a trainer that this one now sees.
    pub adopted: u64,
}

pub struct TrainerLine {
    pub name: String,
    pub clients: usize,
}

/// An argon2id hash of a random password nobody knows, with the default parameters:
/// an unknown name costs a login the same time as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2iL0TAyR1ILxHS5aZ1s3Tj8pXzQQ1h/3lJfh7CPZ3nk";

/// How long a dashboard login lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

impl App {
    /// Add a trainer, or set a new password; the trainer adopts every client without one.
    pub async fn add_trainer(&self, name: &str, password: String) -> AppResult<TrainerAdded> {
        crate::crypto::check_password(&password).map_err(AppError::Input)?;
        let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password))
            .await
            .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))??;
        let (trainer, created) = self.store.upsert_trainer(name, &hash).await?;
        let adopted = self.store.adopt_unassigned(trainer.id).await?;
        Ok(TrainerAdded { trainer, created, adopted })
    }

    /// Trainers with how many clients each sees, and how many clients nobody sees.
    pub async fn trainer_lines(&self) -> AppResult<(Vec<TrainerLine>, usize)> {
        let clients = self.store.list_clients().await?;
        let lines = self
            .store
            .trainers()
            .await?
            .into_iter()
            .map(|t| TrainerLine {
                clients: clients.iter().filter(|c| c.trainer_id == Some(t.id)).count(),
                name: t.name,
            })
            .collect();
        Ok((lines, clients.iter().filter(|c| c.trainer_id.is_none()).count()))
    }

    /// The trainer, if the name and password match.
    pub async fn check_login(&self, name: &str, password: &str) -> AppResult<Option<Trainer>> {
        let found = self.store.trainer_login(name).await?;
        let password = password.to_string();
        let phc = match &found {
            Some((_, Some(h))) => h.clone(),
            _ => DUMMY_HASH.to_string(),
        };
        let ok = tokio::task::spawn_blocking(move || crate::crypto::verify_password(&password, &phc))
            .await
            .map_err(|e| anyhow::anyhow!("password check failed: {e}"))?;
        Ok(match found {
            Some((t, Some(_))) if ok => Some(t),
            _ => None,
        })
    }

    /// Start a login session; its token (for the cookie) and the session.
    pub async fn start_session(&self, trainer: &Trainer) -> AppResult<(String, Session)> {
        Ok(self.store.new_session(trainer, SESSION_TTL.as_millis() as i64).await?)
    }

    /// The live session a cookie's token names. A token of the wrong shape is refused unread.
    pub async fn session(&self, token: &str) -> AppResult<Option<Session>> {
        if !crate::crypto::is_token(token) {
            return Ok(None);
        }
        Ok(self.store.session(token).await?)
    }

    pub async fn end_session(&self, token: &str) -> AppResult<()> {
        Ok(self.store.end_session(token).await?)
    }

    /// The login throttle's counters of an attempt (the rules are `web::session`'s).
    pub async fn throttle_rows(&self, keys: &ThrottleKeys) -> AppResult<ThrottleRows> {
        Ok(self.store.throttle_rows(keys).await?)
    }

    /// Count a failed login: `next` turns the counters into the new ones, atomically for
    /// every replica; counters idle since before `idle_before_ms` are forgotten.
    pub async fn throttle_failed(
        &self,
        keys: &ThrottleKeys,
        idle_before_ms: i64,
        next: impl FnOnce(&ThrottleRows) -> ThrottleRows,
    ) -> AppResult<ThrottleRows> {
        Ok(self.store.throttle_failed(keys, idle_before_ms, next).await?)
    }

    /// A right password: the pair starts afresh and is known (below `known_max` pairs).
    pub async fn throttle_succeeded(&self, keys: &ThrottleKeys, now_ms: i64, known_max: i64) -> AppResult<()> {
        Ok(self.store.throttle_succeeded(keys, now_ms, known_max).await?)
    }

    /// The version of a trainer's roster (see [`crate::store::Store::roster_version`]).
    pub async fn roster_version(&self, trainer: TrainerId) -> AppResult<i64> {
        Ok(self.store.roster_version(trainer).await?)
    }

    /// The trainer's data changed: every replica's cached roster of theirs is stale.
    pub async fn roster_changed(&self, trainer: TrainerId) -> AppResult<()> {
        Ok(self.store.bump_roster_version(trainer).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_parses_so_unknown_names_cost_the_same() {
        assert!(argon2::password_hash::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }
}
