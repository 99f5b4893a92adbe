//! How fresh each source's data for a client is: the newest instant it covers.

use super::on;
use super::{Store, StoreError};
use crate::engine::evidence::MANUAL_SOURCE;
use crate::model::ClientId;

impl Store {
    /// Per passive source that ever delivered for this client (manual logs are not one),
    /// the newest instant its data covers, in ms since the epoch, by source name: an
    /// activity's end, a timed bucket's time, and for a daily total the time it was
    /// delivered, but no later than the end of its date (an imported old day is old).
    pub async fn newest_data(&self, client: ClientId) -> Result<Vec<(String, i64)>, StoreError> {
        // The end of a daily total's date (its midnight after, as UTC), per dialect.
        let end_of_date = match self.db {
            super::Backend::Sqlite(_) => "CAST(strftime('%s', date, '+1 day') AS INTEGER) * 1000",
            super::Backend::Postgres(_) => "CAST(EXTRACT(EPOCH FROM CAST(date AS DATE) + 1) AS BIGINT) * 1000",
        };
        let least = if matches!(self.db, super::Backend::Sqlite(_)) { "MIN" } else { "LEAST" };
        let statement = format!(
            "SELECT source, MAX(t) FROM (
                 SELECT source, MAX(end_ms) AS t FROM activities
                  WHERE client_id = ?1 AND source <> ?2 GROUP BY source
                 UNION ALL
                 SELECT source, MAX(t_ms) FROM metric_buckets WHERE client_id = ?1 GROUP BY source
                 UNION ALL
                 SELECT source, MAX({least}(updated_ms, {end_of_date}))
                   FROM daily_metrics WHERE client_id = ?1 GROUP BY source
             ) AS newest GROUP BY source ORDER BY source"
        );
        Ok(on!(&self.db, |e, sql| sqlx::query_as(&sql(&statement))
            .bind(client)
            .bind(MANUAL_SOURCE)
            .fetch_all(e)
            .await)?)
    }
}
