//! Clients: add, look up, list; who sees them in the dashboard.

use super::{App, AppError, AppResult};
use crate::store::web::TrainerId;
use crate::store::{Client, NewClient};
use chrono_tz::Tz;

/// A new client as a trainer typed it.
#[derive(Clone, Debug, Default)]
pub struct NewClientInput {
    pub name: String,
    /// An IANA zone name; empty or None means [`App::default_tz`].
    pub tz: Option<String>,
    pub hr_max: Option<u32>,
    pub birth_year: Option<i32>,
}

/// Which trainer sees a new client.
#[derive(Clone, Debug)]
pub enum Owner {
    /// This trainer (the one adding it in the dashboard).
    Trainer(TrainerId),
    /// The trainer of this name (`--trainer NAME`).
    Named(String),
    /// The only trainer, if there is exactly one; else nobody until one adopts it.
    OnlyTrainer,
}

impl App {
    /// `clients.default_tz`, else the server's zone, else UTC.
    pub fn default_tz(&self) -> Tz {
        let configured = &self.config.clients.default_tz;
        if !configured.is_empty() {
            if let Ok(tz) = configured.parse() {
                return tz;
            }
        }
        crate::time::server_zone().unwrap_or(chrono_tz::UTC)
    }

    /// Add a client and give it to its trainer. Every problem with the input is
    /// reported at once; nothing is written unless all of it is good.
    pub async fn add_client(&self, input: &NewClientInput, owner: Owner) -> AppResult<Client> {
        let tz = match input.tz.as_deref().map(str::trim) {
            Some(tz) if !tz.is_empty() => tz.to_string(),
            _ => self.default_tz().name().to_string(),
        };
        let new = NewClient::parse(&input.name, &tz, input.hr_max, input.birth_year)
            .map_err(|p| AppError::Input(p.join("\n")))?;
        let trainer = match owner {
            Owner::Trainer(id) => Some(id),
            Owner::Named(name) => {
                let trainers = self.store.trainers().await?;
                let t = trainers.iter().find(|x| x.name.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
                    AppError::input(format!("no trainer {name:?}; add one with `coachd trainer add {name}`"))
                })?;
                Some(t.id)
            }
            Owner::OnlyTrainer => match self.store.trainers().await?.as_slice() {
                [only] => Some(only.id),
                _ => None,
            },
        };
        let client = self.store.add_client(&new).await?;
        if trainer.is_some() {
            self.store.set_client_trainer(client.id, trainer).await?;
            return Ok(self.store.client_by_id(client.id).await?);
        }
        Ok(client)
    }

    pub async fn client(&self, name: &str) -> AppResult<Client> {
        Ok(self.store.client_by_name(name).await?)
    }

    /// A client of this trainer; another trainer's client is "not found", like a missing one.
    pub async fn client_of(&self, trainer: TrainerId, id: i64) -> AppResult<Client> {
        Ok(self.store.client_of(trainer, id).await?)
    }

    /// The clients this trainer sees.
    pub async fn clients_of(&self, trainer: TrainerId) -> AppResult<Vec<Client>> {
        Ok(self.store.clients_of(trainer).await?)
    }

    pub async fn clients(&self) -> AppResult<Vec<Client>> {
        Ok(self.store.list_clients().await?)
    }

    /// One named client, or all of them.
    pub async fn clients_named(&self, name: Option<&str>) -> AppResult<Vec<Client>> {
        match name {
            Some(n) => Ok(vec![self.client(n).await?]),
            None => self.clients().await,
        }
    }
}
