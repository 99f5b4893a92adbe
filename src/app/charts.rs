//! Charts and the demo data set, on the application's store and verdict settings.

use super::{App, AppError, AppResult};
use crate::charts::data::{self, Request};
use crate::charts::{Chart, Kind, RosterRow};
use crate::store::Client;
use chrono::{DateTime, NaiveDate, Utc};

impl App {
    /// One chart's data. `client` for every kind but the roster; `clients` for the roster.
    pub async fn chart(
        &self,
        kind: Kind,
        client: Option<&Client>,
        clients: &[Client],
        span: (Option<NaiveDate>, Option<NaiveDate>),
        activity: Option<i64>,
    ) -> AppResult<Chart> {
        if kind.per_client() && client.is_none() {
            return Err(AppError::input(format!("the {} chart is about one client: name the client", kind.as_str())));
        }
        if activity.is_some() && kind != Kind::Session {
            return Err(AppError::input("a workout id belongs to the session chart"));
        }
        if let (Some(from), Some(to)) = span {
            if from > to {
                return Err(AppError::input(format!("the first day {from} is after the last day {to}")));
            }
        }
        let req = Request { kind, client, clients, from: span.0, to: span.1, activity, now: Utc::now() };
        Ok(data::build(&self.store, &self.judging(), &req).await?)
    }

    /// The roster chart of rows already judged (the dashboard's cached roster).
    pub fn roster_chart(&self, rows: Vec<RosterRow>, today: NaiveDate) -> Chart {
        data::roster_chart(rows, today)
    }

    /// Every chart of the README's gallery, drawn from the demo data.
    pub async fn gallery(&self, now: DateTime<Utc>) -> AppResult<Vec<(&'static str, Chart)>> {
        Ok(crate::charts::gallery(&self.store, &self.judging(), now).await?)
    }

    pub async fn demo_present(&self) -> AppResult<bool> {
        Ok(crate::demo::present(&self.store).await?)
    }

    /// Create the demo data set as of `now`.
    pub async fn create_demo(&self, now: DateTime<Utc>) -> AppResult<crate::demo::DemoReport> {
        Ok(crate::demo::create(&self.store, now).await?)
    }

    /// The demo trainer's password, if it was created just now (shown once).
    pub async fn demo_trainer(&self) -> AppResult<Option<String>> {
        Ok(crate::demo::trainer(&self.store).await?)
    }
}
