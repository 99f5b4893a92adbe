//! The live view: every client of a trainer recording right now, with live heart rate,
//! zone, the session's minutes against today's minute homework, and each device's
//! signal and battery. The readings come from [`crate::live::Live`] (memory, fed by the
//! collector); who the client is and today's homework are read from the store at most
//! every [`REFRESH`], not with every update.

use super::{App, AppResult};
use crate::engine::judge::{zone_bounds, CARDIO_PCT};
use crate::live::LiveDevice;
use crate::model::ClientId;
use crate::store::web::TrainerId;
use crate::store::Client;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// How often a live stream reads the client and today's verdicts again.
pub const REFRESH: Duration = Duration::seconds(30);

#[derive(Clone, Debug, Serialize)]
pub struct LiveView {
    pub at: DateTime<Utc>,
    pub clients: Vec<LiveClient>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveClient {
    pub client_id: ClientId,
    pub name: String,
    pub hr_max: Option<f64>,
    pub devices: Vec<LiveDeviceView>,
    /// Today's homework counted in minutes, with what the store holds so far (the
    /// session's samples are committed every flush, so this grows during it).
    pub homework: Vec<LiveHomework>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveDeviceView {
    pub device: String,
    pub activity_type: &'static str,
    pub bpm: Option<u16>,
    /// Percent of HR max, and the zone (1-5; 0 below zone 1), where HR max is known.
    pub pct_max: Option<u8>,
    pub zone: Option<u8>,
    /// Minutes since the session started, and minutes at cardio effort this daemon saw.
    pub session_min: f64,
    pub cardio_min: Option<f64>,
    pub power_w: Option<i16>,
    pub cadence_rpm: Option<f64>,
    pub speed_kmh: Option<f64>,
    pub battery_pct: Option<u8>,
    pub rssi_dbm: Option<i16>,
    pub last_reading: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveHomework {
    pub homework_id: i64,
    pub homework: String,
    pub achieved: f64,
    pub target: f64,
    pub unit: String,
}

/// What one live stream keeps between updates: each client it has shown, read when it
/// first appeared and again every [`REFRESH`].
#[derive(Default)]
pub struct LiveCache {
    /// When each was read, and the client with today's homework (None: not the trainer's).
    known: HashMap<ClientId, (DateTime<Utc>, Option<Known>)>,
}

type Known = (Client, Vec<LiveHomework>);

impl App {
    /// The trainer's clients among `devices` (a [`crate::live::Live`] snapshot), as of `now`.
    /// Devices of clients who are not the trainer's are left out.
    pub async fn live_view(
        &self,
        trainer: TrainerId,
        devices: Vec<LiveDevice>,
        cache: &mut LiveCache,
        now: DateTime<Utc>,
    ) -> AppResult<LiveView> {
        let mut by_client: Vec<(ClientId, Vec<LiveDevice>)> = Vec::new();
        for d in devices {
            match by_client.iter_mut().find(|(c, _)| *c == d.client_id) {
                Some((_, ds)) => ds.push(d),
                None => by_client.push((d.client_id, vec![d])),
            }
        }
        let mut clients = Vec::new();
        for (id, devices) in by_client {
            let fresh = cache.known.get(&id).is_some_and(|(at, _)| now - *at < REFRESH);
            if !fresh {
                let found = self.live_client(trainer, id, now).await?;
                cache.known.insert(id, (now, found));
            }
            let Some((_, Some((client, homework)))) = cache.known.get(&id) else { continue };
            let hr_max = crate::status::hr_max(client, crate::time::today(client.tz, now));
            clients.push(LiveClient {
                client_id: id,
                name: client.name.clone(),
                hr_max,
                devices: devices.iter().map(|d| device_view(d, hr_max)).collect(),
                homework: homework.clone(),
            });
        }
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(LiveView { at: now, clients })
    }

    /// The client, if the trainer's, with today's minute homework.
    async fn live_client(&self, trainer: TrainerId, id: ClientId, now: DateTime<Utc>) -> AppResult<Option<Known>> {
        let Ok(client) = self.store.client_by_id(id).await else { return Ok(None) };
        if client.trainer_id != Some(trainer) {
            return Ok(None);
        }
        let today = crate::time::today(client.tz, now);
        let report = self.status(std::slice::from_ref(&client), today, today, now).await?;
        let homework = report
            .occurrences
            .into_iter()
            .filter(|o| o.unit == "min" && o.covers(today))
            .map(|o| LiveHomework {
                homework_id: o.homework_id,
                homework: o.homework.to_string(),
                achieved: o.achieved,
                target: o.target,
                unit: o.unit.into_owned(),
            })
            .collect();
        Ok(Some((client, homework)))
    }
}

fn device_view(d: &LiveDevice, hr_max: Option<f64>) -> LiveDeviceView {
    let pct = match (d.bpm, hr_max) {
        (Some(bpm), Some(max)) if max > 0.0 => Some(f64::from(bpm) / max * 100.0),
        _ => None,
    };
    let zone = pct.map(|p| (1..=5u8).rev().find(|z| p >= zone_bounds(*z).0).unwrap_or(0));
    let session_s = (d.last_reading - d.session_start).num_milliseconds().max(0) as f64 / 1000.0;
    LiveDeviceView {
        device: d.device.clone(),
        activity_type: d.activity_type,
        bpm: d.bpm,
        pct_max: pct.map(|p| p.round().clamp(0.0, 255.0) as u8),
        zone,
        session_min: round1(session_s / 60.0),
        cardio_min: hr_max.map(|max| round1(d.seconds_from((CARDIO_PCT / 100.0 * max).ceil()) / 60.0)),
        power_w: d.power_w,
        cadence_rpm: d.cadence_rpm,
        speed_kmh: d.speed_kmh,
        battery_pct: d.battery_pct,
        rssi_dbm: d.rssi_dbm,
        last_reading: d.last_reading,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
