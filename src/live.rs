//! What is being recorded right now, for the trainer in the room: each recording
//! device's latest reading and its session so far. The Bluetooth collector and the
//! simulated strap report every notification they record here, as it arrives; the live
//! page reads it once a second. In memory only, never the store: what is kept goes
//! through ingest as always, and a restart starts this view empty.

use crate::model::ClientId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A device that has sent nothing for this long is no longer shown as recording.
pub const STALE_MS: i64 = 30_000;
/// At most this long between two readings counts as time at the earlier heart rate (a
/// strap that dropped out for a minute did not measure that minute).
const MAX_STEP_MS: i64 = 5_000;

/// One recording device, as the live view shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveDevice {
    pub device: String,
    pub client_id: ClientId,
    /// The activity type its sessions get (`workout` for a strap, `row` for a rower).
    pub activity_type: &'static str,
    /// The start of its open session (a resumed session keeps its first start).
    pub session_start: DateTime<Utc>,
    pub last_reading: DateTime<Utc>,
    pub bpm: Option<u16>,
    pub power_w: Option<i16>,
    pub cadence_rpm: Option<f64>,
    pub speed_kmh: Option<f64>,
    /// Battery Service level, where the device offers it.
    pub battery_pct: Option<u8>,
    /// Received signal strength, where BlueZ reports it.
    pub rssi_dbm: Option<i16>,
    /// Seconds at each heart rate seen by this process in the session (bpm ascending).
    #[serde(skip)]
    pub hr_seconds: BTreeMap<u16, f64>,
    #[serde(skip)]
    last_hr_ms: Option<i64>,
}

impl LiveDevice {
    /// Seconds at or above `bpm`, as far as this process saw the session.
    pub fn seconds_from(&self, bpm: f64) -> f64 {
        self.hr_seconds.iter().filter(|(b, _)| f64::from(**b) >= bpm).map(|(_, s)| s).sum()
    }
}

/// A reading to show, from whatever the device measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub bpm: Option<u16>,
    pub power_w: Option<i16>,
    pub cadence_rpm: Option<f64>,
    pub speed_kmh: Option<f64>,
    /// Battery Service level (0-100; anything else is ignored), read at connect.
    pub battery_pct: Option<u8>,
}

/// The shared live state: cheap to clone, one per daemon.
#[derive(Clone, Default)]
pub struct Live(Arc<Mutex<HashMap<String, LiveDevice>>>);

impl Live {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, LiveDevice>> {
        // Every update is a plain field write: a poisoned lock leaves nothing half-done.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A recorded reading of `device` at `t_ms`, in the session that started at
    /// `session_start_ms`. A reading of a new session starts its counts again.
    pub fn record(
        &self,
        device: &str,
        client_id: ClientId,
        activity_type: &'static str,
        session_start_ms: i64,
        t_ms: i64,
        r: &Reading,
    ) {
        let (Some(start), Some(at)) =
            (DateTime::from_timestamp_millis(session_start_ms), DateTime::from_timestamp_millis(t_ms))
        else {
            return;
        };
        let mut all = self.lock();
        let d = all.entry(device.to_string()).or_insert_with(|| LiveDevice {
            device: device.to_string(),
            client_id,
            activity_type,
            session_start: start,
            last_reading: at,
            bpm: None,
            power_w: None,
            cadence_rpm: None,
            speed_kmh: None,
            battery_pct: None,
            rssi_dbm: None,
            hr_seconds: BTreeMap::new(),
            last_hr_ms: None,
        });
        if d.session_start != start || d.client_id != client_id {
            d.session_start = start;
            d.client_id = client_id;
            d.hr_seconds.clear();
            d.last_hr_ms = None;
            (d.bpm, d.power_w, d.cadence_rpm, d.speed_kmh) = (None, None, None, None);
        }
        d.activity_type = activity_type;
        d.last_reading = d.last_reading.max(at);
        if let Some(bpm) = r.bpm {
            if let (Some(prev), Some(last)) = (d.bpm, d.last_hr_ms) {
                let step = (t_ms - last).clamp(0, MAX_STEP_MS);
                *d.hr_seconds.entry(prev).or_default() += step as f64 / 1000.0;
            }
            d.bpm = Some(bpm);
            d.last_hr_ms = Some(t_ms);
        }
        d.power_w = r.power_w.or(d.power_w);
        d.cadence_rpm = r.cadence_rpm.or(d.cadence_rpm);
        d.speed_kmh = r.speed_kmh.or(d.speed_kmh);
        d.battery_pct = r.battery_pct.filter(|p| *p <= 100).or(d.battery_pct);
    }

    /// The device's signal strength.
    pub fn signal(&self, device: &str, rssi_dbm: i16) {
        if let Some(d) = self.lock().get_mut(device) {
            d.rssi_dbm = Some(rssi_dbm);
        }
    }

    /// The device's session closed (silence): it is no longer recording.
    pub fn ended(&self, device: &str) {
        self.lock().remove(device);
    }

    /// Every device recording as of `now`, by client then device. Devices silent for
    /// longer than [`STALE_MS`] are dropped.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Vec<LiveDevice> {
        let mut all = self.lock();
        all.retain(|_, d| (now - d.last_reading).num_milliseconds() <= STALE_MS);
        let mut out: Vec<LiveDevice> = all.values().cloned().collect();
        out.sort_by(|a, b| (a.client_id, &a.device).cmp(&(b.client_id, &b.device)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr(bpm: u16) -> Reading {
        Reading { bpm: Some(bpm), ..Reading::default() }
    }

    #[test]
    fn time_at_each_heart_rate_adds_up_and_a_new_session_starts_again() {
        let live = Live::default();
        let t0 = 1_800_000_000_000;
        for i in 0..10 {
            live.record("AA", 1, "workout", t0, t0 + i * 1000, &hr(150));
        }
        // A dropout of a minute counts as 5 seconds at the last rate, not 60.
        live.record("AA", 1, "workout", t0, t0 + 69_000, &hr(120));
        let now = DateTime::from_timestamp_millis(t0 + 69_000).expect("time");
        let d = &live.snapshot(now)[0];
        assert_eq!(d.bpm, Some(120));
        assert_eq!(d.seconds_from(140.0), 14.0);
        assert_eq!(d.seconds_from(100.0), 14.0);
        let charged = Reading { battery_pct: Some(87), ..hr(120) };
        live.record("AA", 1, "workout", t0, t0 + 69_000, &charged);
        live.record("AA", 1, "workout", t0, t0 + 69_000, &Reading { battery_pct: Some(200), ..hr(120) });
        assert_eq!(live.snapshot(now)[0].battery_pct, Some(87), "a level over 100 is ignored");
        // The next session (a new start) counts from nothing.
        live.record("AA", 1, "workout", t0 + 600_000, t0 + 600_000, &hr(100));
        let later = DateTime::from_timestamp_millis(t0 + 600_000).expect("time");
        assert_eq!(live.snapshot(later)[0].seconds_from(0.0), 0.0);
        // Silent for longer than STALE_MS: gone.
        let gone = DateTime::from_timestamp_millis(t0 + 600_000 + STALE_MS + 1).expect("time");
        assert!(live.snapshot(gone).is_empty());
    }

    #[test]
    fn machine_values_stay_until_replaced_and_an_ended_session_leaves() {
        let live = Live::default();
        let t0 = 1_800_000_000_000;
        let row = Reading { power_w: Some(180), cadence_rpm: Some(26.0), ..Reading::default() };
        live.record("RW", 2, "row", t0, t0, &row);
        live.record("RW", 2, "row", t0, t0 + 1000, &Reading { bpm: None, power_w: Some(200), ..Reading::default() });
        let now = DateTime::from_timestamp_millis(t0 + 1000).expect("time");
        let d = &live.snapshot(now)[0];
        assert_eq!((d.power_w, d.cadence_rpm, d.activity_type), (Some(200), Some(26.0), "row"));
        live.ended("RW");
        assert!(live.snapshot(now).is_empty());
        // A reading with a time out of range changes nothing.
        live.record("RW", 2, "row", i64::MAX, i64::MAX, &row);
        assert!(live.snapshot(now).is_empty());
    }
}
