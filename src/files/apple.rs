//! Apple Health exports (`export.zip` or `export.xml`), streamed in constant memory.
//!
//! Real exports are hundreds of MB to several GB, so the XML is read as a stream rather
//! than held: the first pass collects workouts, mindful sessions, daily step counts,
//! sleep and resting heart rate (all small), and the heart rates themselves up to a
//! bounded number ([`KEPT_HR`], 10 MB); only an export with more is read a second time
//! for the heart-rate records that fall inside a workout. A malformed record makes the whole file rejected with its byte
//! position: nothing partial is stored.

use super::{FileError, Parsed};
use crate::activity_types;
use crate::model::{DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::sleep;
use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// An entry claiming more than this, or more than 200× its compressed size, is refused.
const MAX_ENTRY_BYTES: u64 = 64 * 1024 * 1024 * 1024;
const MAX_RATIO: u64 = 200;

/// Heart-rate records kept from the first pass at most (10 bytes each), so an export with
/// fewer is read once; a larger one is read twice, in the same memory.
const KEPT_HR: usize = 1 << 20;

/// Called with (bytes done, bytes in all).
type Progress<'a> = &'a dyn Fn(u64, u64);

/// Refuses to read past `limit`: an archive entry may not hold more than it declares.
struct Limited<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the archive entry holds more than the {} bytes it declares", self.limit),
            ));
        }
        Ok(n)
    }
}

/// Run `pass` over the export's XML as a fresh stream (the zip entry is read in place,
/// decompressed as it goes; nothing is extracted to disk or held in memory).
fn with_xml<T>(
    path: &Path,
    zipped: bool,
    pass: impl FnOnce(&mut dyn BufRead, u64) -> Result<T, FileError>,
) -> Result<T, FileError> {
    let file = std::fs::File::open(path)?;
    if !zipped {
        let len = file.metadata()?.len();
        return pass(&mut BufReader::with_capacity(1 << 16, file), len);
    }
    let mut archive = zip::ZipArchive::new(file).map_err(|e| FileError::Invalid(format!("zip archive: {e}")))?;
    let index = (0..archive.len())
        .find(|i| {
            archive
                .name_for_index(*i)
                .and_then(Result::ok)
                .is_some_and(|n| n.ends_with("export.xml") && !n.contains("__MACOSX"))
        })
        .ok_or_else(|| FileError::Invalid("zip archive without an export.xml: not an Apple Health export".into()))?;
    let entry = archive.by_index(index).map_err(|e| FileError::Invalid(format!("zip archive: {e}")))?;
    let (size, packed) = (entry.size(), entry.compressed_size());
    if size > MAX_ENTRY_BYTES || size > packed.saturating_mul(MAX_RATIO).max(1 << 20) {
        return Err(FileError::Invalid(format!(
            "zip archive: export.xml claims {size} bytes from {packed} compressed; refusing an entry that large"
        )));
    }
    let mut reader = BufReader::with_capacity(1 << 16, Limited { inner: entry, read: 0, limit: size });
    let result = pass(&mut reader, size);
    drop(reader);
    result
}

fn date_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    exact_date_time(s)
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z").ok().map(|t| t.with_timezone(&Utc)))
}

/// `2024-01-01 07:00:00 +0100`, the one way Apple writes a date, read without chrono's
/// format interpreter (an export has millions); anything else is left to it.
fn exact_date_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shape = b.len() == 25
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' '
        && (b[20] == b'+' || b[20] == b'-');
    if !shape {
        return None;
    }
    let n = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(n(0, 4)?).ok()?, n(5, 7)?, n(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(n(11, 13)?, n(14, 16)?, n(17, 19)?)?;
    let offset_s = i32::try_from(n(21, 23)? * 3600 + n(23, 25)? * 60).ok()?;
    let offset = chrono::FixedOffset::east_opt(if b[20] == b'-' { -offset_s } else { offset_s })?;
    Some(offset.from_local_datetime(&date.and_time(time)).single()?.with_timezone(&Utc))
}

fn workout_type(hk: &str) -> &'static str {
    match hk.trim_start_matches("HKWorkoutActivityType") {
        "Running" => "run",
        "Cycling" => "ride",
        "Walking" => "walk",
        "Hiking" => "hike",
        "Swimming" => "swim",
        "Rowing" => "row",
        "Elliptical" => "elliptical",
        "StairClimbing" | "Stairs" => "stair_stepper",
        "TraditionalStrengthTraining" | "FunctionalStrengthTraining" | "CoreTraining" => "strength",
        "Yoga" => "yoga",
        "Pilates" => "pilates",
        "Flexibility" | "Cooldown" | "MindAndBody" | "PreparationAndRecovery" => "mobility",
        "HighIntensityIntervalTraining" | "CrossTraining" | "MixedCardio" => "hiit",
        _ => "workout",
    }
}

struct Workout {
    ty: &'static str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    duration_s: f64,
    distance_m: Option<f64>,
    energy_kj: Option<f64>,
    avg_hr: Option<f64>,
    max_hr: Option<f64>,
    hr: Vec<Sample>,
}

/// Attributes by name: all of a workout's, or the few a record is read for.
trait Attrs {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Attrs for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

/// The attributes of a `<Record>` that are read, borrowed from the reader's buffer (no
/// copy unless a value holds an escape): records are nearly all of an export.
struct RecordAttrs<'a>([Option<std::borrow::Cow<'a, str>>; 5]);

const RECORD_KEYS: [&str; 5] = ["type", "sourceName", "startDate", "endDate", "value"];

impl Attrs for RecordAttrs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        RECORD_KEYS.iter().position(|k| *k == key).and_then(|i| self.0[i].as_deref())
    }
}

/// A record's attributes, each checked as [`attrs`] checks them, the read ones kept.
fn record_attrs<'a>(e: &'a BytesStart<'_>, pos: u64) -> Result<RecordAttrs<'a>, FileError> {
    let bad = |err: &dyn std::fmt::Display| FileError::Invalid(format!("Apple Health export: byte {pos}: {err}"));
    let mut out = RecordAttrs([None, None, None, None, None]);
    for a in e.attributes() {
        let a = a.map_err(|err| bad(&err))?;
        match RECORD_KEYS.iter().position(|k| k.as_bytes() == a.key.as_ref()) {
            Some(i) => out.0[i] = Some(a.unescape_value().map_err(|err| bad(&err))?),
            // Not read, but a broken escape in it is still a malformed file.
            None if a.value.contains(&b'&') || std::str::from_utf8(&a.value).is_err() => {
                a.unescape_value().map_err(|err| bad(&err))?;
            }
            None => {}
        }
    }
    Ok(out)
}

fn attrs(e: &BytesStart<'_>, pos: u64) -> Result<HashMap<String, String>, FileError> {
    let mut out = HashMap::new();
    for a in e.attributes() {
        let a = a.map_err(|err| FileError::Invalid(format!("Apple Health export: byte {pos}: {err}")))?;
        let value =
            a.unescape_value().map_err(|err| FileError::Invalid(format!("Apple Health export: byte {pos}: {err}")))?;
        out.insert(String::from_utf8_lossy(a.key.as_ref()).into_owned(), value.into_owned());
    }
    Ok(out)
}

fn required<'a>(a: &'a impl Attrs, key: &str, what: &str, pos: u64) -> Result<&'a str, FileError> {
    a.get(key).ok_or_else(|| {
        FileError::Invalid(format!("Apple Health export: {what} at byte {pos} has no {key}: the file is malformed"))
    })
}

fn when(a: &impl Attrs, key: &str, what: &str, pos: u64) -> Result<DateTime<Utc>, FileError> {
    let s = required(a, key, what, pos)?;
    date_time(s).ok_or_else(|| {
        FileError::Invalid(format!("Apple Health export: {what} at byte {pos}: {key} {s:?} is not a date"))
    })
}

fn value(a: &impl Attrs, what: &str, pos: u64) -> Result<f64, FileError> {
    let s = required(a, "value", what, pos)?;
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| {
        FileError::Invalid(format!("Apple Health export: {what} at byte {pos}: value {s:?} is not a number"))
    })
}

/// Walk the XML, calling `on` for each element start with its attributes and byte position.
fn walk(
    reader: &mut dyn BufRead,
    total: u64,
    progress: Progress<'_>,
    mut on: impl FnMut(&BytesStart<'_>, bool, u64) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let mut reader = Reader::from_reader(reader);
    let mut buf = Vec::with_capacity(4096);
    let mut depth = 0usize;
    let mut next_report = 0u64;
    loop {
        let pos = reader.buffer_position();
        if pos >= next_report {
            progress(pos, total);
            next_report = pos + (16 << 20);
        }
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                on(&e, false, pos)?;
            }
            Ok(Event::Empty(e)) => on(&e, true, pos)?,
            Ok(Event::End(e)) => {
                depth = depth.saturating_sub(1);
                if e.local_name().as_ref() == b"Workout" {
                    on(&BytesStart::new("/Workout"), true, pos)?;
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(FileError::Invalid(format!(
                    "Apple Health export: XML error at byte {}: {e}",
                    reader.error_position()
                )))
            }
        }
        buf.clear();
    }
    if depth != 0 {
        return Err(FileError::Invalid("Apple Health export: the file ends in the middle: it is truncated".into()));
    }
    progress(total, total);
    Ok(())
}

/// Parse an export for one client, whose time zone dates the daily metrics.
pub fn parse(path: &Path, zipped: bool, client: i64, tz: Tz, progress: Progress<'_>) -> Result<Parsed, FileError> {
    parse_keeping(path, zipped, client, tz, progress, KEPT_HR)
}

/// [`parse`], keeping at most `kept_max` heart rates from the first pass.
fn parse_keeping(
    path: &Path,
    zipped: bool,
    client: i64,
    tz: Tz,
    progress: Progress<'_>,
    kept_max: usize,
) -> Result<Parsed, FileError> {
    // Pass 1: workouts and daily metrics.
    // Step totals by device, then local day (looked up by the record's own name, no copy).
    let mut steps: HashMap<String, HashMap<NaiveDate, f64>> = HashMap::new();
    // Stretches asleep (ms) per recording device, made into nights once all are read.
    let mut asleep: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    // Mindful sessions by start: two apps writing the same session keep the longer.
    let mut mindful: BTreeMap<DateTime<Utc>, DateTime<Utc>> = BTreeMap::new();
    let mut resting: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    let mut workouts: Vec<Workout> = Vec::new();
    let mut in_workout = false;
    let mut root_seen = false;
    // Plausible heart rates (time, bpm) in file order while there are few enough, so that
    // no second pass is needed; past `KEPT_HR` they are dropped and the second pass reads them.
    let mut kept_hr: Option<(Vec<i64>, Vec<u16>)> = Some((Vec::new(), Vec::new()));
    with_xml(path, zipped, |reader, total| {
        walk(reader, total, &|done, all| progress(done / 2, all), |e, empty, pos| {
            match e.local_name().as_ref() {
                b"HealthData" => root_seen = true,
                b"Record" => {
                    let a = record_attrs(e, pos)?;
                    let ty = required(&a, "type", "a record", pos)?;
                    let local = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
                    match ty {
                        "HKQuantityTypeIdentifierStepCount" => {
                            let start = when(&a, "startDate", "a step count", pos)?;
                            let count = value(&a, "a step count", pos)?;
                            let source = a.get("sourceName").unwrap_or_default();
                            let days = match steps.get_mut(source) {
                                Some(days) => days,
                                None => steps.entry(source.to_string()).or_default(),
                            };
                            *days.entry(local(start)).or_default() += count;
                        }
                        "HKCategoryTypeIdentifierSleepAnalysis" => {
                            let (s, t) = (
                                when(&a, "startDate", "a sleep record", pos)?,
                                when(&a, "endDate", "a sleep record", pos)?,
                            );
                            let is_asleep =
                                a.get("value").is_some_and(|v| v.starts_with("HKCategoryValueSleepAnalysisAsleep"));
                            if is_asleep && t > s {
                                let source = a.get("sourceName").unwrap_or_default().to_string();
                                asleep.entry(source).or_default().push((s.timestamp_millis(), t.timestamp_millis()));
                            }
                        }
                        "HKCategoryTypeIdentifierMindfulSession" => {
                            let (s, t) = (
                                when(&a, "startDate", "a mindful session", pos)?,
                                when(&a, "endDate", "a mindful session", pos)?,
                            );
                            // A session without length, or longer than a day, is a recording fault.
                            if t > s && t - s <= chrono::Duration::days(1) {
                                let end = mindful.entry(s).or_insert(t);
                                *end = (*end).max(t);
                            }
                        }
                        "HKQuantityTypeIdentifierRestingHeartRate" => {
                            let start = when(&a, "startDate", "a resting heart rate", pos)?;
                            resting.insert(local(start), value(&a, "a resting heart rate", pos)?);
                        }
                        "HKQuantityTypeIdentifierHeartRate" => {
                            // Checked now so a malformed one rejects the file before anything is kept.
                            let t = when(&a, "startDate", "a heart-rate record", pos)?;
                            let bpm = value(&a, "a heart-rate record", pos)?;
                            if let Some((times, rates)) = kept_hr.as_mut().filter(|k| k.0.len() < kept_max) {
                                if SeriesKind::Hr.plausible(bpm) {
                                    times.push(t.timestamp_millis());
                                    rates.push(bpm.round() as u16);
                                }
                            } else {
                                kept_hr = None;
                            }
                        }
                        _ => {}
                    }
                }
                b"Workout" => {
                    let a = attrs(e, pos)?;
                    let (start, end) =
                        (when(&a, "startDate", "a workout", pos)?, when(&a, "endDate", "a workout", pos)?);
                    let unit_factor = |unit: Option<&String>, table: &[(&str, f64)]| {
                        unit.and_then(|u| table.iter().find(|(n, _)| n == u).map(|(_, f)| *f)).unwrap_or(table[0].1)
                    };
                    let num =
                        |k: &str| a.get(k).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
                    let duration_s = num("duration")
                        .map(|d| d * unit_factor(a.get("durationUnit"), &[("min", 60.0), ("s", 1.0), ("hr", 3600.0)]))
                        .unwrap_or((end - start).num_seconds().max(0) as f64);
                    workouts.push(Workout {
                        ty: workout_type(required(&a, "workoutActivityType", "a workout", pos)?),
                        start,
                        end: end.max(start),
                        duration_s,
                        distance_m: num("totalDistance").map(|d| {
                            d * unit_factor(a.get("totalDistanceUnit"), &[("km", 1000.0), ("m", 1.0), ("mi", 1609.344)])
                        }),
                        energy_kj: num("totalEnergyBurned").map(|k| {
                            k * unit_factor(
                                a.get("totalEnergyBurnedUnit"),
                                &[("kcal", 4.184), ("kJ", 1.0), ("Cal", 4.184)],
                            )
                        }),
                        avg_hr: None,
                        max_hr: None,
                        hr: Vec::new(),
                    });
                    in_workout = !empty;
                }
                b"/Workout" => in_workout = false,
                b"WorkoutStatistics" if in_workout => {
                    let a = attrs(e, pos)?;
                    if a.get("type").map(String::as_str) == Some("HKQuantityTypeIdentifierHeartRate") {
                        if let Some(w) = workouts.last_mut() {
                            w.avg_hr = a.get("average").and_then(|v| v.parse().ok());
                            w.max_hr = a.get("maximum").and_then(|v| v.parse().ok());
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })
    })?;
    if !root_seen {
        return Err(FileError::Invalid("XML without <HealthData>: not an Apple Health export".into()));
    }
    // Pass 2: heart rate inside workouts.
    workouts.sort_by_key(|w| w.start);
    let any_workout = !workouts.is_empty();
    let mut in_workouts = |t_ms: i64, bpm: f64| {
        let i = workouts.partition_point(|w| w.start.timestamp_millis() <= t_ms);
        if let Some(w) = i.checked_sub(1).and_then(|i| workouts.get_mut(i)) {
            if t_ms <= w.end.timestamp_millis() {
                w.hr.push(Sample { t_ms, value: bpm });
            }
        }
    };
    if let Some((times, rates)) = kept_hr {
        for (t_ms, bpm) in times.into_iter().zip(rates) {
            in_workouts(t_ms, f64::from(bpm));
        }
    } else if any_workout {
        with_xml(path, zipped, |reader, total| {
            walk(reader, total, &|done, all| progress(all / 2 + done / 2, all), |e, _, pos| {
                if e.local_name().as_ref() != b"Record" {
                    return Ok(());
                }
                // Every record's attributes were checked in the first pass: only the type
                // is looked at first here.
                let heart_rate = e.try_get_attribute("type").ok().flatten().is_some_and(|t| {
                    t.value.as_ref() == b"HKQuantityTypeIdentifierHeartRate" || t.value.contains(&b'&')
                });
                if !heart_rate {
                    return Ok(());
                }
                let a = record_attrs(e, pos)?;
                if a.get("type") != Some("HKQuantityTypeIdentifierHeartRate") {
                    return Ok(());
                }
                let t = when(&a, "startDate", "a heart-rate record", pos)?;
                let bpm = value(&a, "a heart-rate record", pos)?;
                if SeriesKind::Hr.plausible(bpm) {
                    in_workouts(t.timestamp_millis(), bpm.round());
                }
                Ok(())
            })
        })?;
    }
    let mut parsed = Parsed::default();
    let most = |m: HashMap<String, HashMap<NaiveDate, f64>>| {
        let mut by_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        for (d, v) in m.into_values().flatten() {
            let e = by_day.entry(d).or_default();
            *e = e.max(v);
        }
        by_day
    };
    // Several devices (phone and watch) count the same steps: the largest device total wins.
    for (date, value) in most(steps) {
        parsed.daily.push(DailyMetric { client_id: client, date, metric: Metric::Steps, value: value.round() });
    }
    // Each device's nights by wake-up day (a night across midnight belongs to the morning
    // it ends); the device with the most sleep on a day gives that day's time asleep and
    // its main night's bed and wake times, never a mix of two devices.
    let now = Utc::now();
    let mut nights: BTreeMap<NaiveDate, sleep::WakeDay> = BTreeMap::new();
    for stretches in asleep.values() {
        for day in sleep::wake_days(&sleep::nights(stretches), tz) {
            let best = nights.entry(day.date).or_insert(day);
            if day.asleep_ms > best.asleep_ms {
                *best = day;
            }
        }
    }
    for day in nights.values() {
        parsed.daily.extend(day.metrics(client, now));
    }
    for (date, value) in resting {
        parsed.daily.push(DailyMetric { client_id: client, date, metric: Metric::RestingHr, value });
    }
    for w in workouts {
        let avg = w
            .avg_hr
            .or_else(|| (!w.hr.is_empty()).then(|| w.hr.iter().map(|s| s.value).sum::<f64>() / w.hr.len() as f64));
        let max = w.max_hr.or_else(|| w.hr.iter().map(|s| s.value).reduce(f64::max));
        let mut hr = w.hr;
        hr.sort_by_key(|s| s.t_ms);
        parsed.activities.push(NewActivity {
            client_id: client,
            external_id: format!("c{client}:{}:{}", w.start.timestamp(), w.ty),
            start: w.start,
            end: w.end,
            utc_offset_s: offset(tz, w.start),
            activity_type: w.ty.into(),
            category: activity_types::category(w.ty),
            duration_s: w.duration_s,
            distance_m: w.distance_m,
            avg_hr: SeriesKind::Hr.checked(avg),
            max_hr: SeriesKind::Hr.checked(max).map(|h| h as u16),
            energy_kj: w.energy_kj,
            content_hash: None,
            series: if hr.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples: hr }] },
            sets: None,
            hr_zones: None,
        });
    }
    for (start, end) in mindful {
        let ty = "meditation";
        parsed.activities.push(NewActivity {
            client_id: client,
            external_id: format!("c{client}:{}:{ty}", start.timestamp()),
            start,
            end,
            utc_offset_s: offset(tz, start),
            activity_type: ty.into(),
            category: activity_types::category(ty),
            duration_s: (end - start).num_seconds() as f64,
            distance_m: None,
            avg_hr: None,
            max_hr: None,
            energy_kj: None,
            content_hash: None,
            series: Vec::new(),
            sets: None,
            hr_zones: None,
        });
    }
    Ok(parsed)
}

/// The client's UTC offset at `t`, in seconds.
fn offset(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_xml(records: &str, tz: Tz) -> Parsed {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("export.xml");
        let xml = format!("<?xml version=\"1.0\"?>\n<HealthData locale=\"en_US\">\n{records}</HealthData>\n");
        std::fs::write(&path, xml).expect("write");
        parse(&path, false, 3, tz, &|_, _| {}).expect("parse")
    }

    fn sleep_record(source: &str, start: &str, end: &str, value: &str) -> String {
        format!(
            "<Record type=\"HKCategoryTypeIdentifierSleepAnalysis\" sourceName=\"{source}\" startDate=\"{start}\" \
             endDate=\"{end}\" value=\"HKCategoryValueSleepAnalysis{value}\"/>\n"
        )
    }

    fn daily(p: &Parsed, metric: Metric) -> Vec<(String, f64)> {
        p.daily.iter().filter(|d| d.metric == metric).map(|d| (d.date.to_string(), d.value)).collect()
    }

    #[test]
    fn a_night_across_midnight_gives_bed_and_wake_times_of_the_wake_up_day_and_a_nap_none() {
        let records = [
            sleep_record("Watch", "2026-11-20 22:40:00 -0500", "2026-11-20 23:05:00 -0500", "InBed"),
            sleep_record("Watch", "2026-11-20 23:05:00 -0500", "2026-11-21 01:30:00 -0500", "AsleepCore"),
            sleep_record("Watch", "2026-11-21 01:30:00 -0500", "2026-11-21 01:50:00 -0500", "Awake"),
            sleep_record("Watch", "2026-11-21 01:50:00 -0500", "2026-11-21 06:35:00 -0500", "AsleepDeep"),
            // An afternoon nap: sleep on the 21st, but not its bedtime.
            sleep_record("Watch", "2026-11-21 14:00:00 -0500", "2026-11-21 14:30:00 -0500", "AsleepCore"),
            // The phone saw less of the same night: the watch's night counts, not a mix.
            sleep_record("Phone", "2026-11-21 00:30:00 -0500", "2026-11-21 06:00:00 -0500", "AsleepUnspecified"),
        ]
        .concat();
        let p = parse_xml(&records, chrono_tz::America::New_York);
        let bed = Utc.with_ymd_and_hms(2026, 11, 21, 4, 5, 0).single().expect("t").timestamp() as f64;
        let wake = Utc.with_ymd_and_hms(2026, 11, 21, 11, 35, 0).single().expect("t").timestamp() as f64;
        assert_eq!(daily(&p, Metric::SleepStart), vec![("2026-11-21".to_string(), bed)]);
        assert_eq!(daily(&p, Metric::SleepEnd), vec![("2026-11-21".to_string(), wake)]);
        let asleep = (2.0 * 60.0 + 25.0 + 4.0 * 60.0 + 45.0 + 30.0) * 60.0;
        assert_eq!(daily(&p, Metric::SleepS), vec![("2026-11-21".to_string(), asleep)]);
    }

    #[test]
    fn heart_rates_kept_from_the_first_pass_give_what_a_second_pass_gives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("export.xml");
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<HealthData locale=\"en_US\">\n");
        for m in 0..180 {
            let t = format!("2026-11-20 {:02}:{:02}:00 +0100", 17 + m / 60, m % 60);
            let bpm = if m == 7 { "400".to_string() } else { format!("{}.4", 100 + m % 50) };
            xml.push_str(&format!(
                "<Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Watch\" startDate=\"{t}\" \
                 endDate=\"{t}\" value=\"{bpm}\"/>\n"
            ));
        }
        for (start, end) in [("17:05", "17:40"), ("18:30", "19:10")] {
            xml.push_str(&format!(
                "<Workout workoutActivityType=\"HKWorkoutActivityTypeRunning\" startDate=\"2026-11-20 {start}:00 +0100\" \
                 endDate=\"2026-11-20 {end}:00 +0100\"/>\n"
            ));
        }
        xml.push_str("</HealthData>\n");
        std::fs::write(&path, xml).expect("write");
        let series = |kept_max| {
            let p = parse_keeping(&path, false, 3, chrono_tz::Europe::Berlin, &|_, _| {}, kept_max).expect("parse");
            p.activities
                .into_iter()
                .map(|a| a.series.into_iter().flat_map(|s| s.samples).collect())
                .collect::<Vec<Vec<Sample>>>()
        };
        let once = series(KEPT_HR);
        assert_eq!(once.iter().map(Vec::len).collect::<Vec<_>>(), vec![35, 41], "the implausible 400 left out");
        assert_eq!(once, series(0), "read twice");
        assert_eq!(once, series(100), "kept until the 100th, then read twice");
    }

    #[test]
    fn apple_dates_read_without_chrono_agree_with_chrono() {
        let chrono = |s: &str| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z").ok().map(|t| t.with_timezone(&Utc));
        for s in [
            "2024-01-01 07:00:00 +0100",
            "2024-02-29 23:59:59 -0530",
            "1999-12-31 00:00:00 +0000",
            "2026-03-29 02:30:00 +0200",
        ] {
            assert!(exact_date_time(s).is_some(), "{s}");
            assert_eq!(exact_date_time(s), chrono(s), "{s}");
        }
        for s in [
            "2023-02-29 07:00:00 +0100",
            "2024-01-01 24:00:00 +0100",
            "2024-01-01 07:00:00 Z",
            "2024-1-01 07:00:00 +0100",
        ] {
            assert_eq!(exact_date_time(s), None, "{s}");
            assert_eq!(date_time(s), chrono(s), "{s}");
        }
        assert_eq!(date_time(" 2024-01-01 07:00:00 +0100 "), chrono("2024-01-01 07:00:00 +0100"));
    }

    #[test]
    fn mindful_sessions_are_meditations_with_a_stable_id() {
        let session = |source: &str, start: &str, end: &str| {
            format!(
                "<Record type=\"HKCategoryTypeIdentifierMindfulSession\" sourceName=\"{source}\" \
                 startDate=\"{start}\" endDate=\"{end}\" value=\"HKCategoryValueNotApplicable\"/>\n"
            )
        };
        let records = [
            session("Calm", "2026-11-20 07:00:00 +0100", "2026-11-20 07:12:00 +0100"),
            session("Watch", "2026-11-20 07:00:00 +0100", "2026-11-20 07:10:00 +0100"),
            session("Watch", "2026-11-20 21:00:00 +0100", "2026-11-20 21:00:00 +0100"),
        ]
        .concat();
        let p = parse_xml(&records, chrono_tz::Europe::Berlin);
        assert_eq!(p.activities.len(), 1, "the empty session is left out, the doubled one kept once");
        let a = &p.activities[0];
        assert_eq!((a.activity_type.as_str(), a.duration_s, a.utc_offset_s), ("meditation", 720.0, 3600));
        assert_eq!(activity_types::family(&a.activity_type), "mindfulness");
        let again = parse_xml(&records, chrono_tz::Europe::Berlin);
        assert_eq!(again.activities[0].external_id, a.external_id);
    }
}
