//! Bluetooth sensors: what was seen nearby, and which client each paired one belongs to.
//! A device with no client is never recorded.

use super::on;
use super::{Store, StoreError};
use crate::model::ClientId;
use serde::Serialize;

/// A normalised Bluetooth address (`AA:BB:CC:DD:EE:FF`), or a description of what is wrong.
pub fn parse_address(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(parts.join(":").to_ascii_uppercase())
    } else {
        Err(format!("{text:?} is not a Bluetooth address; expected six hex pairs like C0:FF:EE:12:34:56"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Device {
    pub address: String,
    pub name: Option<String>,
    /// Comma-separated GATT service names.
    pub services: String,
    pub client: Option<String>,
    pub client_id: Option<ClientId>,
    pub paired_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// `connected` or `waiting`, as the running collector last said (None: not recording).
    pub link: Option<String>,
    /// Why it is waiting: BlueZ refused the connection, out of range, adapter off.
    pub link_note: Option<String>,
    pub link_ms: Option<i64>,
}

/// A paired device's link as the collector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connected,
    /// Not connected, and why (what BlueZ answered the last attempt).
    Waiting(String),
}

/// A paired device, as the collector needs it.
/// start, end, heart-rate samples, average and maximum heart rate, distance.
type SessionRow = (i64, i64, i64, Option<f64>, Option<i64>, Option<f64>);

/// A device's latest stored session, for a recorder to go on with after a restart.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    pub start_ms: i64,
    pub last_ms: i64,
    pub hr_samples: u64,
    pub avg_hr: Option<f64>,
    pub max_hr: Option<u16>,
    /// Metres covered, from a machine's or sensor's distance.
    pub distance_m: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Pairing {
    pub address: String,
    pub client_id: ClientId,
    pub tz: chrono_tz::Tz,
}

impl Store {
    /// Record a device seen nearby (a scan, or the collector's discovery). Keeps its pairing.
    pub async fn device_seen(&self, address: &str, name: Option<&str>, services: &str) -> Result<(), StoreError> {
        let address = parse_address(address).map_err(|e| StoreError::Invalid(vec![e]))?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO devices (address, name, services, last_seen_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT(address) DO UPDATE SET name = COALESCE(excluded.name, devices.name),
                 services = CASE WHEN excluded.services = '' THEN devices.services ELSE excluded.services END,
                 last_seen_ms = excluded.last_seen_ms",
        ))
        .bind(address)
        .bind(name)
        .bind(services)
        .bind(Store::now_ms())
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Bind a device to a client (moving it from another client if it was paired before).
    pub async fn pair_device(&self, address: &str, client: ClientId) -> Result<Device, StoreError> {
        let address = parse_address(address).map_err(|e| StoreError::Invalid(vec![e]))?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO devices (address, client_id, paired_ms) VALUES (?, ?, ?)
             ON CONFLICT(address) DO UPDATE SET client_id = excluded.client_id, paired_ms = excluded.paired_ms",
        ))
        .bind(&address)
        .bind(client)
        .bind(Store::now_ms())
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        self.device(&address).await
    }

    /// Forget a device's client; it is no longer recorded. Errors if it was not paired.
    pub async fn unpair_device(&self, address: &str) -> Result<(), StoreError> {
        let address = parse_address(address).map_err(|e| StoreError::Invalid(vec![e]))?;
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE devices SET client_id = NULL, paired_ms = NULL WHERE address = ? AND client_id IS NOT NULL",
        ))
        .bind(&address)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("paired device {address}")));
        }
        Ok(())
    }

    pub async fn device(&self, address: &str) -> Result<Device, StoreError> {
        let address = parse_address(address).map_err(|e| StoreError::Invalid(vec![e]))?;
        self.devices()
            .await?
            .into_iter()
            .find(|d| d.address.eq_ignore_ascii_case(&address))
            .ok_or_else(|| StoreError::NotFound(format!("device {address}")))
    }

    /// Every known device, paired ones first.
    pub async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT d.address, d.name, d.services, c.name AS client, d.client_id, d.paired_ms, d.last_seen_ms,
                    d.link, d.link_note, d.link_ms
             FROM devices d LEFT JOIN clients c ON c.id = d.client_id
             ORDER BY d.client_id IS NULL, d.address",
        ))
        .fetch_all(e)
        .await)?)
    }

    /// The collector's view of a device's link (None: it is not recording it).
    pub async fn set_device_link(&self, address: &str, link: Option<&Link>) -> Result<(), StoreError> {
        let address = parse_address(address).map_err(|e| StoreError::Invalid(vec![e]))?;
        let (state, note) = match link {
            Some(Link::Connected) => (Some("connected"), None),
            Some(Link::Waiting(why)) => (Some("waiting"), Some(why.as_str())),
            None => (None, None),
        };
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE devices SET link = ?, link_note = ?, link_ms = ? WHERE address = ?"
        ))
        .bind(state)
        .bind(note)
        .bind(link.map(|_| Store::now_ms()))
        .bind(address)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forget every link (a collector starting or stopping: nothing it said holds any more).
    pub async fn clear_device_links(&self) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE devices SET link = NULL, link_note = NULL, link_ms = NULL WHERE link IS NOT NULL"
        ))
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Paired devices with their client's time zone.
    pub async fn pairings(&self) -> Result<Vec<Pairing>, StoreError> {
        let rows: Vec<(String, ClientId, String)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT d.address, c.id, c.tz FROM devices d JOIN clients c ON c.id = d.client_id ORDER BY d.address",
        ))
        .fetch_all(e)
        .await)?;
        rows.into_iter()
            .map(|(address, client_id, tz): (String, i64, String)| {
                let tz =
                    tz.parse().map_err(|_| StoreError::Corrupt(format!("client #{client_id} has time zone {tz:?}")))?;
                Ok(Pairing { address, client_id, tz })
            })
            .collect()
    }

    /// The latest session the device `address` recorded for `client` (source `ble`, its
    /// external id `ADDRESS@START`), if any.
    pub async fn last_session(&self, client: ClientId, address: &str) -> Result<Option<StoredSession>, StoreError> {
        let prefix = format!("{address}@");
        let row: Option<SessionRow> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT start_ms, end_ms, hr_samples, avg_hr, max_hr, distance_m FROM activities
              WHERE client_id = ? AND source = ? AND substr(external_id, 1, CAST(? AS INTEGER)) = ?
              ORDER BY end_ms DESC LIMIT 1",
        ))
        .bind(client)
        .bind("ble")
        .bind(prefix.len() as i64)
        .bind(&prefix)
        .fetch_optional(e)
        .await)?;
        Ok(row.map(|(start_ms, last_ms, n, avg_hr, max_hr, distance_m)| StoredSession {
            start_ms,
            last_ms,
            hr_samples: n.max(0) as u64,
            avg_hr,
            max_hr: max_hr.and_then(|m| u16::try_from(m).ok()),
            distance_m: distance_m.filter(|d| d.is_finite() && *d >= 0.0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses_are_normalised_or_refused() {
        assert_eq!(parse_address(" c0-ff-ee:00:00:01 ").as_deref(), Ok("C0:FF:EE:00:00:01"));
        for bad in ["", "C0:FF:EE:00:00", "C0:FF:EE:00:00:0G", "C0:FF:EE:00:00:001", "polar h10"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
