//! A simulated heart-rate strap, for demos and tests: realistic notifications (warm-up,
//! intervals, cool-down, rest; RR intervals; occasional dropouts) encoded as real Heart
//! Rate Measurement bytes, then decoded and recorded by exactly the code a real strap's
//! notifications go through ([`super::gatt::heart_rate`], [`super::session::Recorder`]).

use super::gatt;
use super::session::{Recorder, SessionConfig};
use crate::source::{Source, SourceContext, SourceFuture};
use chrono::{Offset, TimeZone, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const DEVICE: &str = "SIM:00:00:00:00:01";

pub struct SimulatedStrap {
    client: String,
    /// Its address: [`DEVICE`] unless several straps are simulated at once.
    device: String,
    /// Its source name (`demo-strap`, then `demo-strap-2`, ...).
    name: String,
    /// Real time per simulated second (1 s for demos; shorter in tests).
    tick: Duration,
    cfg: SessionConfig,
    /// Valid notifications produced so far (for tests).
    pub sent: Arc<AtomicU64>,
}

impl SimulatedStrap {
    pub fn new(client: impl Into<String>, tick: Duration, cfg: SessionConfig) -> Self {
        Self {
            client: client.into(),
            device: DEVICE.into(),
            name: "demo-strap".into(),
            tick,
            cfg,
            sent: Arc::default(),
        }
    }

    /// The `n`th of several simulated straps (0 is [`DEVICE`]), each with its own address.
    pub fn nth(mut self, n: u8) -> Self {
        self.device = format!("SIM:00:00:00:00:{:02X}", n.saturating_add(1));
        if n > 0 {
            self.name = format!("demo-strap-{}", u16::from(n) + 1);
        }
        self
    }
}

/// The workout a simulated client repeats: heart-rate target by second of the cycle,
/// or None while resting with the strap off.
fn target(second: u64) -> Option<f64> {
    let s = second % 2400;
    match s {
        0..300 => Some(95.0 + 35.0 * s as f64 / 300.0),
        300..1500 => Some(if (s - 300) % 300 < 180 { 165.0 } else { 125.0 }),
        1500..1800 => Some(130.0 - 30.0 * (s - 1500) as f64 / 300.0),
        _ => None,
    }
}

/// Heart Rate Measurement bytes: u8 bpm, skin contact, RR intervals in 1/1024 s.
pub fn encode(bpm: u8, rr_1024: &[u16]) -> Vec<u8> {
    let mut out = vec![0x16, bpm];
    for rr in rr_1024 {
        out.extend_from_slice(&rr.to_le_bytes());
    }
    out
}

/// A debug line for each batch once it is committed: the session (its start) and its
/// newest sample, what a crash test holds the store to.
fn committed(client: &str, b: &crate::model::Batch) {
    for a in &b.activities {
        let last_ms = a
            .series
            .iter()
            .filter(|s| s.kind == crate::model::SeriesKind::Hr)
            .filter_map(|s| s.samples.last())
            .map(|s| s.t_ms)
            .max();
        tracing::debug!(
            client,
            session_start_ms = a.start.timestamp_millis(),
            last_ms,
            samples = a
                .series
                .iter()
                .filter(|s| s.kind == crate::model::SeriesKind::Hr)
                .map(|s| s.samples.len())
                .sum::<usize>(),
            "strap batch committed"
        );
    }
}

impl Source for SimulatedStrap {
    fn name(&self) -> &str {
        &self.name
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let client = ctx.store()?.client_by_name(&self.client).await?;
            let tz = client.tz;
            let offset = tz.offset_from_utc_datetime(&Utc::now().naive_utc()).fix().local_minus_utc();
            let mut recorder = Recorder::new(self.device.clone(), client.id, offset, self.cfg.clone());
            ctx.set_detail(format!("simulating a strap for {}", client.name));
            let mut t_ms = Utc::now().timestamp_millis();
            // Started again within the session gap: the session goes on, as a real
            // strap's does. The simulated clock never goes back (a fast simulation runs
            // ahead of the real one).
            if let Some(stored) = ctx.store()?.last_session(client.id, &self.device).await? {
                if stored.last_ms >= t_ms - self.cfg.silence.as_millis() as i64 {
                    t_ms = t_ms.max(stored.last_ms + 1000);
                }
                recorder.resume(stored);
            }
            let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ t_ms as u64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let (mut bpm, mut dropout) = (90.0f64, 0u64);
            for second in 0u64.. {
                let mut batches = Vec::new();
                match target(second) {
                    Some(goal) if dropout == 0 => {
                        bpm += (goal - bpm) * 0.08 + (next() % 5) as f64 - 2.0;
                        let beat = (60_000.0 / bpm * 1.024) as u16;
                        let rr = [beat.saturating_add((next() % 21) as u16).saturating_sub(10)];
                        let payload = encode(bpm.clamp(40.0, 220.0) as u8, &rr);
                        let hr = gatt::heart_rate(&payload)?;
                        self.sent.fetch_add(1, Ordering::Relaxed);
                        batches.extend(recorder.on_heart_rate(t_ms, &hr));
                        if let Some(start) = recorder.session_start_ms() {
                            // A battery that drains a percent every ten minutes.
                            let battery = Some(100u8.saturating_sub((second / 600).min(100) as u8));
                            let shown =
                                crate::live::Reading { bpm: Some(hr.bpm), battery_pct: battery, ..Default::default() };
                            ctx.live.record(&self.device, client.id, recorder.activity_type(), start, t_ms, &shown);
                        }
                        if next() % 400 == 0 {
                            dropout = 3 + next() % 6; // the strap loses contact for a few seconds
                        }
                    }
                    _ => {
                        dropout = dropout.saturating_sub(1);
                        batches.extend(recorder.on_tick(t_ms));
                        if !recorder.in_session() {
                            ctx.live.ended(&self.device);
                        }
                    }
                }
                for b in &batches {
                    ctx.ingest(b).await?;
                    committed(&client.name, b);
                }
                if !ctx.sleep(self.tick).await {
                    break;
                }
                t_ms += 1000;
            }
            // Shutdown: commit what the recorder holds.
            if let Some(b) = recorder.flush() {
                ctx.ingest(&b).await?;
                committed(&client.name, &b);
            }
            Ok(())
        })
    }
}
