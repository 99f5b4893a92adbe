//! How fresh each source's data for a client is: the newest instant it covers.

use super::{Store, StoreError};
use crate::engine::evidence::MANUAL_SOURCE;
use crate::model::ClientId;

impl Store {
    /// Per passive source that ever delivered for this client (manual logs are not one),
    /// the newest instant its data covers, in ms since the epoch, by source name: an
    /// activity's end, a timed bucket's time, and for a daily total the time it was
    /// delivered, but no later than the end of its date (an imported old day is old).
    pub async fn newest_data(&self, client: ClientId) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT source, MAX(t) FROM (
                 SELECT source, MAX(end_ms) AS t FROM activities
                  WHERE client_id = ?1 AND source <> ?2 GROUP BY source
                 UNION ALL
                 SELECT source, MAX(t_ms) FROM metric_buckets WHERE client_id = ?1 GROUP BY source
                 UNION ALL
                 SELECT source, MAX(MIN(updated_ms, CAST(strftime('%s', date, '+1 day') AS INTEGER) * 1000))
                   FROM daily_metrics WHERE client_id = ?1 GROUP BY source
             ) GROUP BY source ORDER BY source",
        )
        .bind(client)
        .bind(MANUAL_SOURCE)
        .fetch_all(&self.pool)
        .await?)
    }
}
