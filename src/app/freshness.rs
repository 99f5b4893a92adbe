//! How fresh a client's data is, per source: the "last data age" Home Assistant shows.

use super::{App, AppResult};
use crate::store::Client;
use chrono::{DateTime, Utc};

/// One passive source of a client's data and the newest instant it covers.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFreshness {
    /// The source's name as activities list it: `ble`, `fit`, `strava`, ...
    pub source: String,
    pub newest: DateTime<Utc>,
}

impl SourceFreshness {
    /// Hours from the newest data to `now` (never negative).
    pub fn age_hours(&self, now: DateTime<Utc>) -> f64 {
        ((now - self.newest).num_seconds().max(0) as f64) / 3600.0
    }
}

impl App {
    /// Every passive source that delivered data for this client, by name.
    pub async fn data_freshness(&self, client: &Client) -> AppResult<Vec<SourceFreshness>> {
        Ok(self
            .store
            .newest_data(client.id)
            .await?
            .into_iter()
            .filter_map(|(source, ms)| Some(SourceFreshness { source, newest: DateTime::from_timestamp_millis(ms)? }))
            .collect())
    }
}
