//! Gadgetbridge (the Android app for Mi Band, Amazfit, Xiaomi, Garmin, Pebble and
//! Bangle.js watches without their vendor's cloud): its database export, imported by
//! `coachd import CLIENT Gadgetbridge.db` or dropped into the client's inbox by the
//! app's periodic export (over Syncthing or WebDAV).
//!
//! Per device: per-sample steps become the day's steps (as timed buckets, so a day is
//! summed once however often it is imported), sleep kinds or sleep stages become time
//! asleep dated by the wake-up day, with the bed and wake times of that day's main night
//! (its first and last stretch asleep), and the device's workouts become activities with
//! the heart rate sampled during them. Each device has a cursor (its last sample), so the
//! nightly re-export reads only the last three days again and stores only what changed.

use super::Outcome;
use crate::activity_types;
use crate::model::{Batch, Cursor, Metric, MetricBucket, NewActivity, Sample, Series, SeriesKind};
use crate::sleep;
use crate::store::gadgetbridge::{Family, GadgetbridgeDb, GbDevice, GbSample, GbWorkout};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone};
use std::path::Path;

/// What is read again on each import, behind a device's cursor: a night that was still
/// going on at the last export, and late-synced samples.
const REREAD_S: i64 = 72 * 3600;
/// Plausible values: anything else from the file is ignored, never stored.
const MAX_STEPS_PER_SAMPLE: i64 = 5_000;
const HR: std::ops::RangeInclusive<i64> = 10..=250;
/// 2000-01-01 to 2100-01-01, in seconds.
const TIMES: std::ops::Range<i64> = 946_684_800..4_102_444_800;

/// The source name of a device's data: one per device, so two devices counting the same
/// steps are never added up (the engine takes the larger day).
/// (`gadgetbridge.c80f10112233` for the device at C8:0F:10:11:22:33).
pub fn source(device: &GbDevice) -> String {
    let id: String = device.identifier.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("gadgetbridge.{}", id.to_ascii_lowercase())
}

/// Import a Gadgetbridge database for `client`.
pub async fn import(store: &Store, client: &Client, path: &Path) -> Result<Outcome, StoreError> {
    let db = match GadgetbridgeDb::open_copy(path).await {
        Ok(db) => db,
        Err(StoreError::Invalid(why)) => return Ok(Outcome::Rejected(why.join("; "))),
        Err(e) => return Err(e),
    };
    let result = import_open(store, client, &db).await;
    db.close().await;
    result
}

async fn import_open(store: &Store, client: &Client, db: &GadgetbridgeDb) -> Result<Outcome, StoreError> {
    let families = db.families();
    if families.is_empty() {
        return Ok(Outcome::Rejected(
            "a Gadgetbridge database without samples of a device coachd reads (Mi Band/Amazfit/Zepp, Xiaomi, \
             Garmin, Pebble, Bangle.js)"
                .into(),
        ));
    }
    let (mut activities, mut samples) = (0, 0);
    for device in db.devices().await? {
        let source = source(&device);
        let cursor: Option<i64> = store.cursor(&source, "device").await?.and_then(|c| c.parse().ok());
        let since_s = cursor.map_or(TIMES.start, |c| c - REREAD_S);
        let mut batch = Batch::new(source.clone());
        let mut last = cursor.unwrap_or(0);
        let mut asleep: Vec<(i64, i64)> = Vec::new();
        let mut with_hr: Vec<GbSample> = Vec::new();
        for family in &families {
            let rows: Vec<GbSample> =
                db.samples(*family, device.id, since_s).await?.into_iter().filter(|s| TIMES.contains(&s.t_s)).collect();
            if rows.is_empty() {
                continue;
            }
            last = last.max(rows.last().map_or(0, |s| s.t_s));
            batch.buckets.extend(steps(*family, &rows, client));
            asleep.extend(sleep_from_samples(*family, &rows));
            with_hr.extend(rows.iter().copied().filter(|s| HR.contains(&s.hr)));
        }
        // Stage tables and overlays, where a family keeps its sleep there.
        let since_ms = since_s * 1000;
        for family in &families {
            let stages = db.sleep_stages(*family, device.id, since_ms).await?;
            match family {
                Family::Garmin if !stages.is_empty() => asleep = garmin_sleep(&stages),
                Family::Xiaomi => {
                    let nights = db.xiaomi_nights(device.id, since_ms).await?;
                    if !nights.is_empty() {
                        asleep = xiaomi_sleep(&nights, &stages);
                    }
                }
                Family::Pebble => {
                    let overlays = db.pebble_overlays(device.id, since_s).await?;
                    asleep.extend(
                        overlays.iter().filter(|(_, _, k)| (1..=4).contains(k)).map(|(a, b, _)| (a * 1000, b * 1000)),
                    );
                }
                _ => {}
            }
        }
        // Nights that end before the re-read window's first full day may be cut: leave them.
        let first_full_day = cursor.map(|c| local_date(client, (c - 24 * 3600) * 1000));
        let now = chrono::Utc::now();
        batch.daily = sleep_days(&asleep, client)
            .into_iter()
            .filter(|d| first_full_day.is_none_or(|f| d.date >= f))
            .flat_map(|d| d.metrics(client.id, now))
            .collect();
        with_hr.sort_by_key(|s| s.t_s);
        for w in db.workouts(device.id, since_ms).await? {
            match workout(&device, &w, &with_hr, client).map(crate::model::NewActivity::clamped) {
                Some(Ok(a)) => batch.activities.push(a),
                Some(Err(why)) => tracing::warn!(device = %device.name, %why, "Gadgetbridge workout left out"),
                None => {}
            }
        }
        if batch.buckets.is_empty() && batch.daily.is_empty() && batch.activities.is_empty() && last == 0 {
            continue;
        }
        batch.cursor = Some(Cursor { stream: "device".into(), value: last.to_string() });
        match store.ingest(&batch).await {
            // What changed: a re-read day that is already stored counts nothing.
            Ok(r) => {
                activities += r.activities_inserted;
                samples += r.buckets_written + r.samples_written;
            }
            Err(StoreError::Invalid(p)) => return Ok(Outcome::Rejected(format!("{}: {}", device.name, p.join("; ")))),
            Err(e) => return Err(e),
        }
    }
    Ok(Outcome::Imported { format: super::Format::Gadgetbridge, activities, samples })
}

fn local_date(client: &Client, ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&client.tz).date_naive()
}

/// Steps per sample as timed buckets. Garmin stores a running daily total: the steps of
/// a sample are its rise over the one before (a fall is the midnight reset).
fn steps(family: Family, rows: &[GbSample], client: &Client) -> Vec<MetricBucket> {
    let mut out = Vec::new();
    let mut before: Option<&GbSample> = None;
    for s in rows {
        let n = if family == Family::Garmin {
            let prev = before.filter(|p| local_date(client, p.t_s * 1000) == local_date(client, s.t_s * 1000));
            match prev {
                Some(p) if s.steps >= p.steps && p.steps >= 0 => s.steps - p.steps,
                _ => s.steps,
            }
        } else {
            s.steps
        };
        if s.steps >= 0 {
            before = Some(s);
        }
        if (1..=MAX_STEPS_PER_SAMPLE).contains(&n) {
            out.push(MetricBucket { client_id: client.id, metric: Metric::Steps, t_ms: s.t_s * 1000, value: n as f64 });
        }
    }
    out
}

/// Whether a sample's kind says asleep (light, deep or REM).
fn sleeping(family: Family, kind: i64) -> bool {
    // ActivityKind codes: LIGHT_SLEEP 0x2, DEEP_SLEEP 0x4, REM_SLEEP 0x0100_0000 (bit flags
    // below 0x0400_0000; codes from there on are sequential, not flags).
    let activity_kind = |k: i64| k > 0 && k < 0x0400_0000 && k & (0x2 | 0x4 | 0x0100_0000) != 0;
    match family {
        // Huami's raw kinds: 9 light sleep, 11 deep sleep (low four bits).
        Family::Huami => matches!(kind & 0xF, 9 | 11),
        Family::HuamiExtended => kind == 120,
        Family::Xiaomi | Family::BangleJs | Family::Garmin => activity_kind(kind),
        Family::Pebble => false,
    }
}

/// Asleep stretches (ms) from per-sample kinds: each asleep sample lasts until the next
/// sample, at most a minute (Bangle.js samples every ten minutes: at most ten).
fn sleep_from_samples(family: Family, rows: &[GbSample]) -> Vec<(i64, i64)> {
    let longest = if family == Family::BangleJs { 600 } else { 60 };
    rows.iter()
        .enumerate()
        .filter(|(_, s)| s.kind.is_some_and(|k| sleeping(family, k)))
        .map(|(i, s)| {
            let next = rows.get(i + 1).map_or(s.t_s + 60, |n| n.t_s).clamp(s.t_s, s.t_s + longest);
            (s.t_s * 1000, next * 1000)
        })
        .collect()
}

/// Garmin's stage rows mark the end of each stage: 2 light, 3 deep, 4 REM are asleep.
fn garmin_sleep(stages: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (i, (end, stage)) in stages.iter().enumerate() {
        let start = i.checked_sub(1).map(|p| stages[p].0).filter(|p| end - p <= 30 * 60 * 1000).unwrap_or(end - 60_000);
        if (2..=4).contains(stage) && *end > start {
            out.push((start, *end));
        }
    }
    out
}

/// Xiaomi's nights (bedtime, wake-up), with stage rows that mark each stage's start
/// (2 deep, 3 light, 4 REM asleep); a night without stage rows counts as asleep whole.
fn xiaomi_sleep(nights: &[(i64, i64)], stages: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(bed, wake) in nights.iter().filter(|(b, w)| w > b && w - b <= 24 * 3600 * 1000) {
        let mine: Vec<&(i64, i64)> = stages.iter().filter(|(t, _)| *t >= bed && *t < wake).collect();
        if mine.is_empty() {
            out.push((bed, wake));
            continue;
        }
        for (i, (t, stage)) in mine.iter().enumerate() {
            let end = mine.get(i + 1).map_or(wake, |n| n.0);
            if (2..=4).contains(stage) && end > *t {
                out.push((*t, end));
            }
        }
    }
    out
}

/// Nights by wake-up date: stretches less than an hour apart are one night, dated by the
/// local date it ends; overlapping stretches (two tables saying the same) count once.
fn sleep_days(asleep: &[(i64, i64)], client: &Client) -> Vec<sleep::WakeDay> {
    sleep::wake_days(&sleep::nights(asleep), client.tz)
}

/// coachd's activity type for Gadgetbridge's ActivityKind code.
fn kind_type(kind: i64) -> &'static str {
    match kind {
        0x10 => "run",
        0x20 | 0x0400_0012 => "walk",
        0x40 | 0x400 | 0x0400_000a => "swim",
        0x80 => "ride",
        0x100 => "treadmill_run",
        0x800 => "indoor_ride",
        0x1000 => "elliptical",
        0x4000 => "yoga",
        0x10000 => "row",
        0x200000 => "strength",
        0x400000 => "hike",
        0x0400_0010 => "cardio",
        0x0400_0045 => "hiit",
        _ => activity_types::GENERIC,
    }
}

fn workout(device: &GbDevice, w: &GbWorkout, hr: &[GbSample], client: &Client) -> Option<NewActivity> {
    let (start, end) = (DateTime::from_timestamp_millis(w.start_ms)?, DateTime::from_timestamp_millis(w.end_ms)?);
    let duration = end - start;
    if !(TIMES.contains(&(w.start_ms / 1000)) && duration > Duration::zero() && duration <= Duration::days(2)) {
        return None;
    }
    let samples: Vec<Sample> = hr
        .iter()
        .filter(|s| s.t_s * 1000 >= w.start_ms && s.t_s * 1000 <= w.end_ms)
        .map(|s| Sample { t_ms: s.t_s * 1000, value: s.hr as f64 })
        .collect();
    let avg = (!samples.is_empty()).then(|| samples.iter().map(|s| s.value).sum::<f64>() / samples.len() as f64);
    let max = samples.iter().map(|s| s.value as u16).max();
    let ty = kind_type(w.kind);
    let category = activity_types::category(ty);
    Some(NewActivity {
        client_id: client.id,
        external_id: format!("{}/{}", device.identifier, w.start_ms),
        start,
        end,
        utc_offset_s: client.tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
        activity_type: ty.into(),
        category,
        duration_s: duration.num_milliseconds() as f64 / 1000.0,
        distance_m: None,
        avg_hr: avg.map(|h| (h * 10.0).round() / 10.0),
        max_hr: max,
        energy_kj: None,
        content_hash: None,
        series: if samples.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples }] },
        sets: None,
        hr_zones: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn client() -> Client {
        Client {
            id: 1,
            name: "t".into(),
            tz: chrono_tz::Europe::Berlin,
            hr_max: None,
            birth_year: None,
            trainer: None,
            trainer_id: None,
            created: Utc::now(),
        }
    }

    #[test]
    fn a_night_is_dated_by_its_wake_up_day_and_overlaps_count_once() {
        let at = |h: i64| {
            Utc.with_ymd_and_hms(2026, 11, 20, 21, 0, 0).single().expect("t").timestamp_millis() + h * 3_600_000
        };
        // 22:00 to 06:00 Berlin, with a 20-minute wake-up; the same hour twice.
        let asleep = [(at(0), at(4)), (at(4) + 1_200_000, at(8)), (at(1), at(2))];
        let days = sleep_days(&asleep, &client());
        let wake = NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
        assert_eq!(days.len(), 1, "{days:?}");
        let metrics = days[0].metrics(1, Utc::now());
        let value = |m: Metric| metrics.iter().find(|d| d.metric == m && d.date == wake).map(|d| d.value);
        assert_eq!(value(Metric::SleepS), Some(8.0 * 3600.0 - 1200.0), "{metrics:?}");
        assert_eq!(value(Metric::SleepStart), Some(at(0) as f64 / 1000.0), "bed at 22:00 the evening before");
        assert_eq!(value(Metric::SleepEnd), Some(at(8) as f64 / 1000.0));
    }

    #[test]
    fn garmin_steps_are_a_running_total_reset_at_midnight() {
        let base = Utc.with_ymd_and_hms(2026, 11, 20, 22, 57, 0).single().expect("t").timestamp();
        let rows: Vec<GbSample> = [(0, 100), (60, 130), (120, 130), (180, 5), (240, 20)]
            .iter()
            .map(|(dt, steps)| GbSample { t_s: base + dt, steps: *steps, kind: None, hr: -1 })
            .collect();
        let b: Vec<f64> = steps(Family::Garmin, &rows, &client()).iter().map(|b| b.value).collect();
        assert_eq!(b, vec![100.0, 30.0, 5.0, 15.0], "midnight Berlin falls between 23:59 and 00:00");
    }

    #[test]
    fn sleep_kinds_per_family() {
        assert!(sleeping(Family::Huami, 9) && sleeping(Family::Huami, 0x1b) && !sleeping(Family::Huami, 1));
        assert!(sleeping(Family::HuamiExtended, 120) && !sleeping(Family::HuamiExtended, 9));
        assert!(sleeping(Family::BangleJs, 2) && sleeping(Family::BangleJs, 0x0100_0000));
        assert!(!sleeping(Family::BangleJs, 0x0200_0000) && !sleeping(Family::BangleJs, 0x0400_0045));
    }
}
