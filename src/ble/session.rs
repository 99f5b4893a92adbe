//! Sessions from a sensor's notification stream.
//!
//! A session starts at the first valid sample (a heart rate above 0 from a strap on skin),
//! and ends when valid samples stop for `silence` (default 2 minutes: the strap came
//! off, the client walked away, the device disconnected and did not come back). Shorter
//! gaps are bridged. Samples are handed over as batches every `flush_every`, so a crash
//! or power cut loses at most that much; each batch upserts the same activity (its id is
//! the device and start time) and its samples merge by timestamp, so a repeated batch
//! changes nothing. Zero-bpm and no-contact samples never count as workout time.

use super::gatt::HeartRate;
use crate::model::{Batch, Category, ClientId, NewActivity, Sample, Series, SeriesKind};
use chrono::DateTime;
use std::time::Duration;

pub const SOURCE: &str = "ble";

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub silence: Duration,
    pub flush_every: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { silence: Duration::from_secs(120), flush_every: Duration::from_secs(5) }
    }
}

struct Open {
    start_ms: i64,
    last_ms: i64,
    hr: Vec<Sample>,
    rr: Vec<Sample>,
    count: u64,
    sum_bpm: f64,
    max_bpm: u16,
    last_flush_ms: i64,
}

/// Turns one device's heart-rate notifications into session batches for one client.
pub struct Recorder {
    device: String,
    client: ClientId,
    utc_offset_s: i32,
    cfg: SessionConfig,
    open: Option<Open>,
}

impl Recorder {
    pub fn new(device: impl Into<String>, client: ClientId, utc_offset_s: i32, cfg: SessionConfig) -> Self {
        Self { device: device.into(), client, utc_offset_s, cfg, open: None }
    }

    pub fn in_session(&self) -> bool {
        self.open.is_some()
    }

    fn silence_ms(&self) -> i64 {
        self.cfg.silence.as_millis() as i64
    }

    /// A notification received at `t_ms`. Returns the batches to store now, in order
    /// (the end of a session that went silent, then a flush of the current one).
    pub fn on_heart_rate(&mut self, t_ms: i64, hr: &HeartRate) -> Vec<Batch> {
        let mut out = Vec::new();
        if !hr.is_valid_sample() {
            out.extend(self.on_tick(t_ms));
            return out;
        }
        if let Some(open) = &self.open {
            if t_ms - open.last_ms > self.silence_ms() {
                out.extend(self.close());
            } else if t_ms <= open.last_ms {
                return out; // duplicate or out-of-order notification
            }
        }
        let open = self.open.get_or_insert_with(|| Open {
            start_ms: t_ms,
            last_ms: t_ms,
            hr: Vec::new(),
            rr: Vec::new(),
            count: 0,
            sum_bpm: 0.0,
            max_bpm: 0,
            last_flush_ms: t_ms,
        });
        open.last_ms = t_ms;
        open.hr.push(Sample { t_ms, value: f64::from(hr.bpm) });
        open.count += 1;
        open.sum_bpm += f64::from(hr.bpm);
        open.max_bpm = open.max_bpm.max(hr.bpm);
        // RR intervals end at the notification: the last beat at t, earlier ones before it.
        let mut beat = t_ms;
        for rr in hr.rr_ms().collect::<Vec<_>>().into_iter().rev() {
            if (1.0..=65_535.0).contains(&rr) {
                open.rr.push(Sample { t_ms: beat, value: rr.round() });
            }
            beat -= rr.round() as i64;
        }
        if t_ms - open.last_flush_ms >= self.cfg.flush_every.as_millis() as i64 {
            out.extend(self.flush());
        }
        out
    }

    /// Time passes with no valid sample: closes a session silent for too long.
    pub fn on_tick(&mut self, now_ms: i64) -> Option<Batch> {
        match &self.open {
            Some(open) if now_ms - open.last_ms > self.silence_ms() => self.close(),
            _ => None,
        }
    }

    /// Hand over what is buffered (on the flush interval, and on shutdown).
    pub fn flush(&mut self) -> Option<Batch> {
        let device = self.device.clone();
        let (client, offset) = (self.client, self.utc_offset_s);
        let open = self.open.as_mut()?;
        open.last_flush_ms = open.last_ms;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut series = Vec::new();
        if !open.hr.is_empty() {
            series.push(Series { kind: SeriesKind::Hr, samples: std::mem::take(&mut open.hr) });
        }
        if !open.rr.is_empty() {
            open.rr.sort_by_key(|s| s.t_ms);
            series.push(Series { kind: SeriesKind::Rr, samples: std::mem::take(&mut open.rr) });
        }
        let activity = NewActivity {
            client_id: client,
            external_id: format!("{device}@{}", open.start_ms),
            start: at(open.start_ms),
            end: at(open.last_ms),
            utc_offset_s: offset,
            activity_type: crate::activity_types::GENERIC.into(),
            category: Category::Other,
            duration_s: (open.last_ms - open.start_ms) as f64 / 1000.0,
            distance_m: None,
            avg_hr: Some((open.sum_bpm / open.count.max(1) as f64 * 10.0).round() / 10.0),
            max_hr: Some(open.max_bpm),
            energy_kj: None,
            content_hash: None,
            series,
            sets: None,
        };
        Some(Batch { activities: vec![activity], ..Batch::new(SOURCE) })
    }

    fn close(&mut self) -> Option<Batch> {
        let batch = self.flush();
        self.open = None;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::gatt::{heart_rate, Contact};

    fn hr(bpm: u16, contact: Contact) -> HeartRate {
        HeartRate { bpm, contact, energy_kj: None, rr_1024: vec![1024] }
    }

    fn samples(batches: &[Batch]) -> Vec<(String, i64)> {
        batches
            .iter()
            .flat_map(|b| &b.activities)
            .flat_map(|a| {
                a.series
                    .iter()
                    .filter(|s| s.kind == SeriesKind::Hr)
                    .flat_map(move |s| s.samples.iter().map(move |p| (a.external_id.clone(), p.t_ms)))
            })
            .collect()
    }

    #[test]
    fn sessions_start_on_skin_end_on_silence_and_bridge_short_gaps() {
        let mut r = Recorder::new("AA:BB", 1, 3600, SessionConfig::default());
        let mut batches = Vec::new();
        // A strap on the table and a settling strap: no session.
        batches.extend(r.on_heart_rate(0, &hr(60, Contact::NoContact)));
        batches.extend(r.on_heart_rate(1000, &hr(0, Contact::InContact)));
        assert!(!r.in_session());
        // 10 minutes of valid samples with a 90 s dropout in the middle: one session.
        for s in 2..600 {
            if !(300..390).contains(&s) {
                batches.extend(r.on_heart_rate(s * 1000, &hr(140, Contact::InContact)));
            }
        }
        // Off for 3 minutes, then a second session.
        batches.extend(r.on_tick(599_000 + 60_000));
        assert!(r.in_session(), "a 1-minute silence does not end it");
        for s in 780..800 {
            batches.extend(r.on_heart_rate(s * 1000, &hr(120, Contact::NotSupported)));
        }
        batches.extend(r.flush());
        let ids: std::collections::BTreeSet<String> = samples(&batches).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let first: Vec<_> = samples(&batches).into_iter().filter(|(id, _)| id == "AA:BB@2000").collect();
        assert_eq!(first.len(), 598 - 90);
        // Flushed every 5 s: a crash loses at most that much.
        assert!(batches.len() > 100, "{}", batches.len());
        let last = batches.iter().rev().find(|b| b.activities[0].external_id == "AA:BB@2000").expect("first session");
        assert_eq!(last.activities[0].duration_s, 597.0);
        assert_eq!(last.activities[0].avg_hr, Some(140.0));
    }

    #[test]
    fn rr_intervals_are_dated_back_from_their_notification() {
        let mut r = Recorder::new("AA", 1, 0, SessionConfig::default());
        let n = heart_rate(&[0x19, 0x96, 0x00, 0x0A, 0x00, 0x00, 0x03, 0xC0, 0x03]).expect("vector");
        r.on_heart_rate(10_000, &n);
        let b = r.flush().expect("batch");
        let rr = b.activities[0].series.iter().find(|s| s.kind == SeriesKind::Rr).expect("rr");
        assert_eq!(rr.samples, vec![Sample { t_ms: 9062, value: 750.0 }, Sample { t_ms: 10_000, value: 938.0 }]);
    }
}
