//! Sessions from a sensor's notification stream.
//!
//! A session starts at the first valid sample (a heart rate above 0 from a strap on skin),
//! and ends when valid samples stop for `silence` (default 2 minutes: the strap came
//! off, the client walked away, the device disconnected and did not come back). Shorter
//! gaps are bridged. Samples are handed over as batches every `flush_every`, so a crash
//! or power cut loses at most that much; each batch upserts the same activity (its id is
//! the device and start time) and its samples merge by timestamp, so a repeated batch
//! changes nothing. Zero-bpm and no-contact samples never count as workout time.
//!
//! A session outlives the recorder: a recorder told of the device's latest stored
//! session ([`Recorder::resume`]: after a restart of coachd, of the device's task, of
//! bluetoothd) goes on with it when the next valid sample comes within `silence` of its
//! last one, so a restart in the middle of a workout leaves one activity, not two.

use super::gatt::{HeartRate, MachineData};
use crate::model::{Batch, ClientId, NewActivity, Sample, Series, SeriesKind};
use chrono::DateTime;
use std::time::Duration;

pub const SOURCE: &str = "ble";

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub silence: Duration,
    pub flush_every: Duration,
}

impl SessionConfig {
    /// From `[ble]`.
    pub fn from_config(b: &crate::config::BleConfig) -> Self {
        Self { silence: Duration::from_secs(b.session_silence_s), flush_every: Duration::from_secs(b.flush_s) }
    }
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
    /// Power, cadence, speed, distance and strokes from machines and bike/run sensors.
    machine: [Vec<Sample>; 5],
    /// Metres covered in the session (from the device's cumulative distance, the stored
    /// session's own when it goes on with one), and the latest cumulative reading.
    covered_m: Option<f64>,
    last_distance_m: Option<f64>,
    count: u64,
    sum_bpm: f64,
    max_bpm: u16,
    last_flush_ms: i64,
}

impl Open {
    fn push_hr(&mut self, t_ms: i64, bpm: u16) {
        self.hr.push(Sample { t_ms, value: f64::from(bpm) });
        self.count += 1;
        self.sum_bpm += f64::from(bpm);
        self.max_bpm = self.max_bpm.max(bpm);
    }
}

/// Turns one device's heart-rate notifications into session batches for one client.
pub struct Recorder {
    device: String,
    client: ClientId,
    utc_offset_s: i32,
    cfg: SessionConfig,
    activity_type: &'static str,
    open: Option<Open>,
    /// The device's latest stored session, until the first sample says whether it goes on.
    resumable: Option<crate::store::devices::StoredSession>,
}

const MACHINE_KINDS: [SeriesKind; 5] =
    [SeriesKind::Power, SeriesKind::Cadence, SeriesKind::Speed, SeriesKind::Distance, SeriesKind::Strokes];

impl Recorder {
    pub fn new(device: impl Into<String>, client: ClientId, utc_offset_s: i32, cfg: SessionConfig) -> Self {
        Self {
            device: device.into(),
            client,
            utc_offset_s,
            cfg,
            activity_type: crate::activity_types::GENERIC,
            open: None,
            resumable: None,
        }
    }

    /// The activity type sessions are stored with (a treadmill's are `treadmill_run`); a
    /// strap's stay the generic `workout`, which merges with whatever a watch calls it.
    /// Applies from the next session on.
    pub fn set_activity_type(&mut self, activity_type: &'static str) {
        if self.open.is_none() {
            self.activity_type = activity_type;
        }
    }

    /// The client's current UTC offset, for the next session (it changes with DST).
    pub fn set_utc_offset(&mut self, utc_offset_s: i32) {
        if self.open.is_none() {
            self.utc_offset_s = utc_offset_s;
        }
    }

    /// The device's latest stored session: the next valid sample within `silence` of its
    /// last one (and after it) extends it, under its own start and id; a later one starts
    /// a new session. Ignored while a session is open.
    pub fn resume(&mut self, stored: crate::store::devices::StoredSession) {
        if self.open.is_none() {
            self.resumable = Some(stored);
        }
    }

    pub fn client(&self) -> ClientId {
        self.client
    }

    pub fn in_session(&self) -> bool {
        self.open.is_some()
    }

    /// The start of the open session (a resumed one keeps its first start), for the live view.
    pub fn session_start_ms(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.start_ms)
    }

    pub fn activity_type(&self) -> &'static str {
        self.activity_type
    }

    fn silence_ms(&self) -> i64 {
        self.cfg.silence.as_millis() as i64
    }

    /// A heart-rate notification received at `t_ms`. Returns the batches to store now, in
    /// order (the end of a session that went silent, then a flush of the current one).
    pub fn on_heart_rate(&mut self, t_ms: i64, hr: &HeartRate) -> Vec<Batch> {
        if !hr.is_valid_sample() {
            return self.on_tick(t_ms).into_iter().collect();
        }
        let mut out = Vec::new();
        let Some(open) = self.begin(t_ms, &mut out) else { return out };
        open.push_hr(t_ms, hr.bpm);
        // RR intervals end at the notification: the last beat at t, earlier ones before it.
        let mut beat = t_ms;
        for rr in hr.rr_ms().collect::<Vec<_>>().into_iter().rev() {
            if (1.0..=65_535.0).contains(&rr) {
                open.rr.push(Sample { t_ms: beat, value: rr.round() });
            }
            beat -= rr.round() as i64;
        }
        out.extend(self.flush_if_due(t_ms));
        out
    }

    /// Fitness machine (or speed, cadence, power sensor) data received at `t_ms`. Only a
    /// machine in use counts: belt moving, pedals or oars turning, or power produced.
    /// A value outside its series' plausible range (a device's bug, a counter read
    /// wrong) is left out, never stored and never a reason to refuse the batch.
    pub fn on_machine(&mut self, t_ms: i64, m: &MachineData) -> Vec<Batch> {
        let values = [
            SeriesKind::Power.checked(m.power_w.map(f64::from)),
            SeriesKind::Cadence.checked(m.cadence_rpm.or(m.stroke_rate_spm).map(|v| (v * 10.0).round() / 10.0)),
            SeriesKind::Speed.checked(m.speed_kmh.map(|kmh| (kmh / 3.6 * 1000.0).round() / 1000.0)),
            SeriesKind::Distance.checked(m.distance_m),
            SeriesKind::Strokes.checked(m.stroke_count.map(f64::from)),
        ];
        let [power, cadence, speed, ..] = values;
        let moving = [power, cadence, speed].iter().any(|v| v.is_some_and(|v| v > 0.0));
        if !moving {
            return self.on_tick(t_ms).into_iter().collect();
        }
        let mut out = Vec::new();
        let Some(open) = self.begin(t_ms, &mut out) else { return out };
        if let Some(bpm) = m.heart_rate.filter(|&b| b > 0) {
            open.push_hr(t_ms, u16::from(bpm));
        }
        for (series, value) in open.machine.iter_mut().zip(values) {
            if let Some(value) = value {
                series.push(Sample { t_ms, value });
            }
        }
        if let Some(d) = values[3] {
            let step = match open.last_distance_m {
                Some(prev) if d >= prev => d - prev,
                // The counter went back (the machine was reset): it counts from 0 again.
                Some(_) => d,
                None => 0.0,
            };
            open.covered_m = Some(open.covered_m.unwrap_or(0.0) + step);
            open.last_distance_m = Some(d);
        }
        out.extend(self.flush_if_due(t_ms));
        out
    }

    /// The open session a valid sample at `t_ms` belongs to, after closing one that went
    /// silent (its last batch goes to `out`). None for a duplicate or out-of-order sample.
    fn begin(&mut self, t_ms: i64, out: &mut Vec<Batch>) -> Option<&mut Open> {
        if let Some(open) = &self.open {
            if t_ms - open.last_ms > self.silence_ms() {
                out.extend(self.close());
            } else if t_ms <= open.last_ms {
                return None;
            }
        }
        if self.open.is_none() {
            let silence = self.silence_ms();
            // Going on with the stored session: its start (so its id) and its statistics.
            let prior = self.resumable.take().filter(|p| t_ms > p.last_ms && t_ms - p.last_ms <= silence);
            let (start_ms, count, sum_bpm, max_bpm, covered_m) = match prior {
                Some(p) => (
                    p.start_ms,
                    p.hr_samples,
                    p.avg_hr.unwrap_or(0.0) * p.hr_samples as f64,
                    p.max_hr.unwrap_or(0),
                    p.distance_m,
                ),
                None => (t_ms, 0, 0.0, 0, None),
            };
            self.open = Some(Open {
                start_ms,
                last_ms: t_ms,
                hr: Vec::new(),
                rr: Vec::new(),
                machine: Default::default(),
                covered_m,
                last_distance_m: None,
                count,
                sum_bpm,
                max_bpm,
                last_flush_ms: t_ms,
            });
        }
        let open = self.open.as_mut()?;
        open.last_ms = t_ms;
        Some(open)
    }

    fn flush_if_due(&mut self, now_ms: i64) -> Option<Batch> {
        let due = self.open.as_ref()?.last_flush_ms + self.cfg.flush_every.as_millis() as i64;
        if now_ms >= due {
            self.flush_at(now_ms)
        } else {
            None
        }
    }

    /// Time passes (call it every second or so): closes a session silent for too long,
    /// and hands over what is buffered once the flush interval has passed, so samples
    /// before a pause are committed within `flush_every` even if no new one comes.
    pub fn on_tick(&mut self, now_ms: i64) -> Option<Batch> {
        match &self.open {
            Some(open) if now_ms - open.last_ms > self.silence_ms() => self.close(),
            Some(open) if open.hr.is_empty() && open.rr.is_empty() && open.machine.iter().all(Vec::is_empty) => None,
            Some(_) => self.flush_if_due(now_ms),
            None => None,
        }
    }

    /// Hand over what is buffered (on the flush interval, and on shutdown).
    pub fn flush(&mut self) -> Option<Batch> {
        let last = self.open.as_ref()?.last_ms;
        self.flush_at(last)
    }

    fn flush_at(&mut self, now_ms: i64) -> Option<Batch> {
        let device = self.device.clone();
        let (client, offset, activity_type) = (self.client, self.utc_offset_s, self.activity_type);
        let open = self.open.as_mut()?;
        open.last_flush_ms = now_ms;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut series = Vec::new();
        if !open.hr.is_empty() {
            series.push(Series { kind: SeriesKind::Hr, samples: std::mem::take(&mut open.hr) });
        }
        if !open.rr.is_empty() {
            open.rr.sort_by_key(|s| s.t_ms);
            series.push(Series { kind: SeriesKind::Rr, samples: std::mem::take(&mut open.rr) });
        }
        for (kind, samples) in MACHINE_KINDS.into_iter().zip(&mut open.machine) {
            if !samples.is_empty() {
                series.push(Series { kind, samples: std::mem::take(samples) });
            }
        }
        let activity = NewActivity {
            client_id: client,
            external_id: format!("{device}@{}", open.start_ms),
            start: at(open.start_ms),
            end: at(open.last_ms),
            utc_offset_s: offset,
            activity_type: activity_type.into(),
            category: crate::activity_types::category(activity_type),
            duration_s: (open.last_ms - open.start_ms) as f64 / 1000.0,
            distance_m: open.covered_m.map(|m| (m * 10.0).round() / 10.0),
            avg_hr: (open.count > 0).then(|| (open.sum_bpm / open.count as f64 * 10.0).round() / 10.0),
            max_hr: (open.count > 0).then_some(open.max_bpm),
            energy_kj: None,
            content_hash: None,
            series,
            sets: None,
            hr_zones: None,
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
    use crate::model::Category;

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

    fn stored(start_ms: i64, last_ms: i64) -> crate::store::devices::StoredSession {
        crate::store::devices::StoredSession {
            start_ms,
            last_ms,
            hr_samples: 100,
            avg_hr: Some(150.0),
            max_hr: Some(170),
            distance_m: None,
        }
    }

    #[test]
    fn a_new_recorder_goes_on_with_the_stored_session_only_within_the_gap() {
        // Back 30 s after the last stored sample: the same activity, its statistics whole.
        let mut r = Recorder::new("AA", 1, 0, SessionConfig::default());
        r.resume(stored(1_000_000, 1_100_000));
        let mut batches = r.on_heart_rate(1_130_000, &hr(90, Contact::InContact));
        batches.extend(r.flush());
        let a = &batches.last().expect("a batch").activities[0];
        assert_eq!((a.external_id.as_str(), a.start.timestamp_millis()), ("AA@1000000", 1_000_000));
        assert_eq!(a.end.timestamp_millis(), 1_130_000);
        // 100 samples at 150 and one at 90; the maximum stays the stored one.
        assert_eq!((a.avg_hr, a.max_hr), (Some(149.4), Some(170)));
        // Back after the gap, or before the stored end (a clock gone back): a new session.
        for t in [1_100_000 + 121_000, 1_050_000] {
            let mut r = Recorder::new("AA", 1, 0, SessionConfig::default());
            r.resume(stored(1_000_000, 1_100_000));
            r.on_heart_rate(t, &hr(90, Contact::InContact));
            let a = &r.flush().expect("a batch").activities[0];
            assert_eq!(a.external_id, format!("AA@{t}"), "{t}");
        }
        // Told while a session is open: the open one wins.
        let mut r = Recorder::new("AA", 1, 0, SessionConfig::default());
        r.on_heart_rate(5_000, &hr(90, Contact::InContact));
        r.resume(stored(1_000, 4_000));
        assert_eq!(r.flush().expect("a batch").activities[0].external_id, "AA@5000");
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
    fn a_pause_is_committed_by_the_clock_and_a_machine_records_only_while_moving() {
        let mut r = Recorder::new("TM", 1, 0, SessionConfig::default());
        r.set_activity_type("treadmill_run");
        let idle = MachineData { speed_kmh: Some(0.0), heart_rate: Some(90), ..Default::default() };
        assert!(r.on_machine(0, &idle).is_empty());
        assert!(!r.in_session(), "a standing belt is not a workout");
        let moving =
            MachineData { speed_kmh: Some(10.8), heart_rate: Some(150), power_w: Some(200), ..Default::default() };
        assert!(r.on_machine(1000, &moving).is_empty());
        assert!(r.on_machine(2000, &moving).is_empty());
        // No sample since: the clock hands the buffer over within flush_every.
        assert!(r.on_tick(4000).is_none());
        let b = r.on_tick(6000).expect("flushed by the clock");
        let a = &b.activities[0];
        assert_eq!((a.activity_type.as_str(), a.category), ("treadmill_run", Category::Cardio));
        assert_eq!(a.avg_hr, Some(150.0));
        let kinds: Vec<_> = a.series.iter().map(|s| (s.kind, s.samples.len())).collect();
        assert_eq!(kinds, vec![(SeriesKind::Hr, 2), (SeriesKind::Power, 2), (SeriesKind::Speed, 2)]);
        assert_eq!(a.series[2].samples[0].value, 3.0, "10.8 km/h is 3 m/s");
        assert!(r.on_tick(7000).is_none(), "nothing new to hand over");
        assert!(r.in_session());
        // The type applies to the next session, not the open one.
        r.set_activity_type("row");
        let end = r.on_tick(2000 + 121_000).expect("closed on silence");
        assert_eq!(end.activities[0].activity_type, "treadmill_run");
        assert!(!r.in_session());
    }

    #[test]
    fn a_rower_stores_strokes_and_distance_and_out_of_range_values_are_left_out() {
        let mut r = Recorder::new("RW", 1, 0, SessionConfig::default());
        r.set_activity_type("row");
        let stroke = |n: u16, metres: f64, watts: i16| MachineData {
            stroke_rate_spm: Some(28.0),
            stroke_count: Some(n),
            distance_m: Some(metres),
            power_w: Some(watts),
            ..Default::default()
        };
        r.on_machine(1000, &stroke(10, 40.0, 180));
        r.on_machine(2000, &stroke(11, 48.5, 190));
        // A machine's bug: 30,000 W and 16,000 strokes a minute are not stored, and with
        // nothing plausible left that shows the oars moving, neither is the rest of it.
        r.on_machine(3000, &MachineData { stroke_rate_spm: Some(16_000.0), ..stroke(12, 57.0, 30_000) });
        // Only the stroke rate wrong: the power, distance and count are kept.
        r.on_machine(3500, &MachineData { stroke_rate_spm: Some(16_000.0), ..stroke(12, 58.0, 175) });
        r.on_machine(4000, &stroke(13, 65.0, 185));
        let a = &r.flush().expect("a batch").activities[0];
        let kinds: Vec<_> = a.series.iter().map(|s| (s.kind, s.samples.len())).collect();
        assert_eq!(
            kinds,
            vec![(SeriesKind::Power, 4), (SeriesKind::Cadence, 3), (SeriesKind::Distance, 4), (SeriesKind::Strokes, 4)]
        );
        assert!(a.series.iter().all(|s| s.samples.iter().all(|p| s.kind.plausible(p.value))));
        assert_eq!((a.activity_type.as_str(), a.distance_m), ("row", Some(25.0)), "65 m less the 40 at the start");
        // Going on with a stored session adds to its distance; a reset counter counts on.
        let mut r = Recorder::new("RW", 1, 0, SessionConfig::default());
        r.resume(crate::store::devices::StoredSession { distance_m: Some(100.0), ..stored(0, 10_000) });
        for (t, m) in [(11_000, 500.0), (12_000, 510.0), (13_000, 4.0), (14_000, 9.0)] {
            r.on_machine(t, &stroke(1, m, 150));
        }
        assert_eq!(r.flush().expect("a batch").activities[0].distance_m, Some(119.0));
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
