//! Clients: the people whose homework coachd judges.

use super::on;
use super::{is_unique_violation, Store, StoreError};
use crate::model::ClientId;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// A validated client, ready to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewClient {
    pub name: String,
    pub tz: Tz,
    pub hr_max: Option<u16>,
    pub birth_year: Option<i32>,
}

impl NewClient {
    /// Validate raw input; every problem is reported, each naming the field.
    pub fn parse(name: &str, tz: &str, hr_max: Option<u32>, birth_year: Option<i32>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let name = name.trim();
        if name.is_empty() {
            problems.push("client name is empty".to_string());
        } else if name.chars().count() > 64 {
            problems.push(format!("client name {name:?} is longer than 64 characters"));
        } else if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') || name.starts_with('.') {
            // The name is also the client's inbox folder.
            problems.push(format!(
                "client name {name:?} may not contain '/', '\\' or control characters, or start with '.'"
            ));
        }
        let tz = match tz.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                problems.push(format!(
                    "time zone {tz:?} is not an IANA time zone name (examples: Europe/Berlin, America/New_York, UTC)"
                ));
                None
            }
        };
        let hr_max = match hr_max {
            None => None,
            Some(v @ 100..=250) => Some(v as u16),
            Some(v) => {
                problems.push(format!("HR max {v} bpm is not plausible; give a value between 100 and 250"));
                None
            }
        };
        let this_year = Utc::now().year();
        if let Some(y) = birth_year {
            if !(1900..=this_year).contains(&y) {
                problems.push(format!("birth year {y} is not between 1900 and {this_year}"));
            }
        }
        match tz {
            Some(tz) if problems.is_empty() => Ok(Self { name: name.to_string(), tz, hr_max, birth_year }),
            _ => Err(problems),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// Checked when read: a zone chrono-tz does not know is a corrupt row, not a panic.
    pub tz: Tz,
    pub hr_max: Option<u16>,
    pub birth_year: Option<i32>,
    pub trainer: Option<String>,
    /// The trainer who sees this client in the dashboard.
    #[serde(skip)]
    pub trainer_id: Option<i64>,
    pub created: DateTime<Utc>,
}

type ClientRow = (i64, String, String, Option<i64>, Option<i64>, Option<String>, i64, Option<i64>);

fn from_row(r: ClientRow) -> Result<Client, StoreError> {
    let tz = r.2.parse().map_err(|_| StoreError::Corrupt(format!("client {} has time zone {:?}", r.1, r.2)))?;
    Ok(Client {
        id: r.0,
        name: r.1,
        tz,
        hr_max: r.3.and_then(|v| u16::try_from(v).ok()),
        birth_year: r.4.and_then(|v| i32::try_from(v).ok()),
        trainer: r.5,
        trainer_id: r.7,
        created: DateTime::from_timestamp_millis(r.6).unwrap_or_default(),
    })
}

const SELECT: &str = "SELECT c.id, c.name, c.tz, c.hr_max, c.birth_year, t.name, c.created_ms, c.trainer_id
                      FROM clients c LEFT JOIN trainers t ON t.id = c.trainer_id";

impl Store {
    pub async fn add_client(&self, new: &NewClient) -> Result<Client, StoreError> {
        let id: i64 = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO clients (name, tz, hr_max, birth_year, created_ms) VALUES (?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(&new.name)
        .bind(new.tz.name())
        .bind(new.hr_max.map(i64::from))
        .bind(new.birth_year)
        .bind(Store::now_ms())
        .fetch_one(e)
        .await)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(format!("client {:?}", new.name))
            } else {
                e.into()
            }
        })?;
        self.client_by_id(id).await
    }

    pub async fn client_by_id(&self, id: ClientId) -> Result<Client, StoreError> {
        let row: Option<ClientRow> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{SELECT} WHERE c.id = ?")))
            .bind(id)
            .fetch_optional(e)
            .await)?;
        row.map(from_row).ok_or_else(|| StoreError::NotFound(format!("client #{id}")))?
    }

    /// Look a client up by name, ignoring case.
    pub async fn client_by_name(&self, name: &str) -> Result<Client, StoreError> {
        let row: Option<ClientRow> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{SELECT} WHERE c.name = ? COLLATE NOCASE")))
                .bind(name.trim())
                .fetch_optional(e)
                .await)?;
        row.map(from_row).ok_or_else(|| StoreError::NotFound(format!("client {name:?}")))?
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{SELECT} ORDER BY c.name COLLATE NOCASE")))
                .fetch_all(e)
                .await)?;
        rows.into_iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_every_problem() {
        let err = NewClient::parse(" ", "Mars/Olympus", Some(0), Some(1850)).expect_err("invalid");
        assert_eq!(err.len(), 4, "{err:?}");
        assert!(err[1].contains("Mars/Olympus"));
        assert!(err[2].contains("HR max 0"));
        let ok = NewClient::parse(" alex ", "Europe/Berlin", Some(190), Some(1990)).expect("valid");
        assert_eq!(ok.name, "alex");
        assert_eq!(ok.tz, chrono_tz::Europe::Berlin);
    }
}
