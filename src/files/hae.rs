//! Health Auto Export (iOS app) REST pushes: `{"data": {"metrics": [...], "workouts": [...]}}`.
//!
//! Steps and sleep arrive as timed pieces (per minute, per sleep stage, or per day when
//! aggregated); they are stored as buckets keyed by time, so the app's "since last sync"
//! and "previous 7 days" modes both give the right day totals and a repeated push changes
//! nothing. Each stretch asleep with known times is also kept as a `sleep_start` bucket
//! (its start as the value, at its end), from which ingest derives the night's bed and
//! wake times across pushes. Heart rate is kept where it falls inside a workout; mindful
//! minutes become meditation activities.

use crate::activity_types;
use crate::model::{Batch, Metric, MetricBucket, NewActivity, Sample, Series, SeriesKind};
use crate::sleep::Night;
use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

pub const SOURCE: &str = "hae";

fn time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?.trim();
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z").ok().map(|t| t.with_timezone(&Utc))
}

/// A number, or `{"qty": n}` as newer export versions write quantities.
fn qty(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    v.as_f64().or_else(|| v.get("qty").and_then(Value::as_f64)).filter(|x| x.is_finite() && *x >= 0.0)
}

/// An item of a push that could not be used, named in the answer so the phone's app
/// does not report success for data that was dropped.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rejected {
    /// `step_count`, `sleep_analysis`, `heart_rate`, `mindful_minutes` or `workouts`.
    pub metric: String,
    /// Its position in that list.
    pub index: usize,
    pub why: String,
}

/// A date of the item under `key`: present, in the app's format, and plausible (from
/// 2000 to a day ahead of now).
fn checked_time(v: &Value, key: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let raw = v.get(key).ok_or_else(|| format!("{key} is missing"))?;
    let t = time(raw).ok_or_else(|| format!("{key} {raw} is not \"YYYY-MM-DD HH:MM:SS +ZZZZ\""))?;
    let earliest = DateTime::from_timestamp(946_684_800, 0).unwrap_or_default();
    if t < earliest || t > now + chrono::Duration::days(1) {
        return Err(format!("{key} {raw} is outside 2000 to tomorrow"));
    }
    Ok(t)
}

/// The quantity under `key`, a number of at least 0 (or `{"qty": n}`).
fn checked_qty(v: &Value, key: &str) -> Result<f64, String> {
    let raw = v.get(key).ok_or_else(|| format!("{key} is missing"))?;
    qty(Some(raw)).ok_or_else(|| format!("{key} {raw} is not a number of at least 0"))
}

fn workout_type(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    let has = |w: &str| n.contains(w);
    if has("run") {
        if has("indoor") || has("treadmill") {
            "treadmill_run"
        } else {
            "run"
        }
    } else if has("cycl") || has("bik") {
        if has("indoor") {
            "indoor_ride"
        } else {
            "ride"
        }
    } else if has("walk") {
        "walk"
    } else if has("hik") {
        "hike"
    } else if has("swim") {
        "swim"
    } else if has("row") {
        "row"
    } else if has("elliptical") {
        "elliptical"
    } else if has("stair") {
        "stair_stepper"
    } else if has("strength") || has("weight") || has("core training") {
        "strength"
    } else if has("yoga") {
        "yoga"
    } else if has("pilates") {
        "pilates"
    } else if has("flexibility") || has("cooldown") || has("mind and body") || has("stretch") || has("recovery") {
        "mobility"
    } else if has("high intensity") || has("hiit") || has("cross training") || has("mixed cardio") {
        "hiit"
    } else {
        "workout"
    }
}

/// Turn a push into a batch for `client`; the error names what was wrong with the push
/// as a whole.
pub fn parse(body: &[u8], client: i64, tz: Tz) -> Result<Batch, String> {
    parse_checked(body, client, tz, Utc::now()).map(|(batch, _)| batch)
}

/// [`parse`], with every item that could not be used (a quantity that is not a number, a
/// date that is malformed or implausible) left out and named; the rest is kept.
pub fn parse_checked(body: &[u8], client: i64, tz: Tz, now: DateTime<Utc>) -> Result<(Batch, Vec<Rejected>), String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let data = root.get("data").ok_or("the JSON has no \"data\" object: is this a Health Auto Export push?")?;
    let mut batch = Batch::new(SOURCE);
    let mut rejected = Vec::new();
    let mut reject = |metric: &str, index: usize, why: String| {
        rejected.push(Rejected { metric: metric.into(), index, why });
    };
    let mut hr: Vec<Sample> = Vec::new();
    for m in data.get("metrics").and_then(Value::as_array).into_iter().flatten() {
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let points = m.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        match name {
            "step_count" => {
                for (i, p) in points.iter().enumerate() {
                    match checked_time(p, "date", now).and_then(|t| Ok((t, checked_qty(p, "qty")?))) {
                        Ok((t, q)) => batch.buckets.push(MetricBucket {
                            client_id: client,
                            metric: Metric::Steps,
                            t_ms: t.timestamp_millis(),
                            value: q,
                        }),
                        Err(why) => reject(name, i, why),
                    }
                }
            }
            "sleep_analysis" => {
                for (i, p) in points.iter().enumerate() {
                    // Aggregated: one entry per night; unaggregated: one per stage.
                    let asleep_hours = match p.get("value").and_then(Value::as_str) {
                        Some(stage) => {
                            let asleep =
                                ["Asleep", "Core", "Deep", "REM", "Unspecified"].iter().any(|s| stage.starts_with(s));
                            if asleep {
                                qty(p.get("qty"))
                            } else {
                                None
                            }
                        }
                        None => qty(p.get("totalSleep")).or_else(|| qty(p.get("asleep"))),
                    };
                    let end = p.get("endDate").and_then(time).or_else(|| p.get("sleepEnd").and_then(time));
                    let end = end.or_else(|| {
                        let d = p.get("date")?.as_str()?.get(..10)?;
                        let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
                        tz.from_local_datetime(&day.and_hms_opt(8, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
                    });
                    let plausible = |t: &DateTime<Utc>| {
                        *t >= DateTime::from_timestamp(946_684_800, 0).unwrap_or_default()
                            && *t <= now + chrono::Duration::days(1)
                    };
                    match (asleep_hours, end) {
                        (Some(h), Some(end)) if plausible(&end) && h <= 24.0 => {
                            batch.buckets.push(MetricBucket {
                                client_id: client,
                                metric: Metric::SleepS,
                                t_ms: end.timestamp_millis(),
                                value: h * 3600.0,
                            });
                            // Times only where the app gave them; an implausible span keeps
                            // its sleep but gives no bed or wake time.
                            if let Some((n, (start, _))) = asleep_span(p, h).and_then(|n| Some((n, n.times(now)?))) {
                                batch.buckets.push(MetricBucket {
                                    client_id: client,
                                    metric: Metric::SleepStart,
                                    t_ms: n.end_ms,
                                    value: start,
                                });
                            }
                        }
                        (Some(h), Some(_)) if h > 24.0 => reject(name, i, format!("{h} hours asleep in one piece")),
                        (Some(_), Some(_)) => reject(name, i, "its end is outside 2000 to tomorrow".into()),
                        (Some(_), None) => reject(name, i, "it has no valid endDate, sleepEnd or date".into()),
                        // Awake or in-bed stages are not sleep: nothing to store, nothing wrong.
                        (None, _) if p.get("value").and_then(Value::as_str).is_some() => {}
                        (None, _) => reject(name, i, "totalSleep/asleep is not a number of at least 0".into()),
                    }
                }
            }
            "mindful_minutes" => {
                for (i, p) in points.iter().enumerate() {
                    let key =
                        if p.get("date").is_none() && p.get("startDate").is_some() { "startDate" } else { "date" };
                    match checked_time(p, key, now).and_then(|t| Ok((t, checked_qty(p, "qty")?))) {
                        Ok((_, minutes)) if minutes > 24.0 * 60.0 => {
                            reject(name, i, format!("{minutes} mindful minutes in one entry"));
                        }
                        // A period without a session: nothing to store, nothing wrong.
                        Ok((_, 0.0)) => {}
                        Ok((start, minutes)) => batch.activities.push(meditation(client, tz, start, minutes)),
                        Err(why) => reject(name, i, why),
                    }
                }
            }
            "heart_rate" => {
                for (i, p) in points.iter().enumerate() {
                    let bpm = qty(p.get("Avg")).or_else(|| qty(p.get("qty")));
                    match (checked_time(p, "date", now), SeriesKind::Hr.checked(bpm)) {
                        (Ok(t), Some(bpm)) => hr.push(Sample { t_ms: t.timestamp_millis(), value: bpm.round() }),
                        (Err(why), _) => reject(name, i, why),
                        (_, None) => reject(name, i, "Avg/qty is not a heart rate (1-300 bpm)".into()),
                    }
                }
            }
            _ => {}
        }
    }
    hr.sort_by_key(|s| s.t_ms);
    for (i, w) in data.get("workouts").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let (start, end) = match (checked_time(w, "start", now), checked_time(w, "end", now)) {
            (Ok(s), Ok(e)) if e >= s && e - s <= chrono::Duration::days(2) => (s, e),
            (Ok(_), Ok(_)) => {
                reject("workouts", i, format!("its end is before its start or two days after it: {}", truncate(w)));
                continue;
            }
            (Err(why), _) | (_, Err(why)) => {
                reject("workouts", i, why);
                continue;
            }
        };
        let name = w.get("name").and_then(Value::as_str).unwrap_or("Workout");
        let ty = workout_type(name);
        let id =
            w.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| start.timestamp().to_string());
        let mut samples: Vec<Sample> = w
            .get("heartRateData")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let bpm = qty(p.get("Avg")).or_else(|| qty(p.get("qty")))?;
                Some(Sample { t_ms: p.get("date").and_then(time)?.timestamp_millis(), value: bpm.round() })
            })
            .filter(|s| SeriesKind::Hr.plausible(s.value))
            .collect();
        if samples.is_empty() {
            let (lo, hi) = (start.timestamp_millis(), end.timestamp_millis());
            samples = hr.iter().filter(|s| s.t_ms >= lo && s.t_ms <= hi).copied().collect();
        }
        samples.sort_by_key(|s| s.t_ms);
        samples.dedup_by_key(|s| s.t_ms);
        let avg = qty(w.get("avgHeartRate")).or_else(|| {
            (!samples.is_empty()).then(|| samples.iter().map(|s| s.value).sum::<f64>() / samples.len() as f64)
        });
        let max = qty(w.get("maxHeartRate")).or_else(|| samples.iter().map(|s| s.value).reduce(f64::max));
        let distance = w.get("distance").and_then(|d| {
            let q = qty(Some(d))?;
            Some(match d.get("units").and_then(Value::as_str) {
                Some("km") => q * 1000.0,
                Some("mi") => q * 1609.344,
                _ => q,
            })
        });
        batch.activities.push(NewActivity {
            client_id: client,
            external_id: format!("c{client}:{id}"),
            start,
            end: end.max(start),
            utc_offset_s: tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
            activity_type: ty.into(),
            category: activity_types::category(ty),
            duration_s: qty(w.get("duration"))
                .filter(|d| *d <= 2.0 * 86_400.0)
                .unwrap_or((end - start).num_seconds().max(0) as f64),
            distance_m: distance,
            avg_hr: SeriesKind::Hr.checked(avg).map(|h| (h * 10.0).round() / 10.0),
            max_hr: SeriesKind::Hr.checked(max).map(|h| h as u16),
            energy_kj: None,
            content_hash: None,
            series: if samples.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples }] },
            sets: None,
            hr_zones: None,
        });
    }
    // The model's clamp, as for every source: what cannot be true is rejected, with why.
    let activities = std::mem::take(&mut batch.activities);
    for (i, a) in activities.into_iter().enumerate() {
        match a.clamped() {
            Ok(a) => batch.activities.push(a),
            Err(why) => reject("workouts", i, why),
        }
    }
    Ok((batch, rejected))
}

/// The stretch asleep a sleep entry covers, from the times the app gave: a stage's
/// `startDate`/`endDate` (its start from its length when only the end is there), an
/// aggregated night's `sleepStart`/`sleepEnd`, else its `inBedStart`/`inBedEnd`. Never
/// guessed from a date alone.
fn asleep_span(p: &Value, hours: f64) -> Option<Night> {
    let at = |key: &str| p.get(key).and_then(time).map(|t| t.timestamp_millis());
    let (start, end) = if p.get("value").and_then(Value::as_str).is_some() {
        let end = at("endDate")?;
        (at("startDate").unwrap_or(end.saturating_sub((hours * 3_600_000.0) as i64)), end)
    } else {
        match (at("sleepStart"), at("sleepEnd")) {
            (Some(s), Some(e)) => (s, e),
            _ => (at("inBedStart")?, at("inBedEnd")?),
        }
    };
    Some(Night { start_ms: start, end_ms: end, asleep_ms: end.saturating_sub(start) })
}

/// A mindful-minutes entry as a meditation: it starts at the entry's date and lasts its
/// minutes. Its id is the start, so a day's entry pushed again with more minutes (the
/// app's aggregated modes) updates the same activity.
fn meditation(client: i64, tz: Tz, start: DateTime<Utc>, minutes: f64) -> NewActivity {
    let ty = "meditation";
    let duration_s = minutes * 60.0;
    NewActivity {
        client_id: client,
        external_id: format!("c{client}:mindful:{}", start.timestamp()),
        start,
        end: start + chrono::Duration::milliseconds((duration_s * 1000.0).round() as i64),
        utc_offset_s: tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
        activity_type: ty.into(),
        category: activity_types::category(ty),
        duration_s,
        distance_m: None,
        avg_hr: None,
        max_hr: None,
        energy_kj: None,
        content_hash: None,
        series: Vec::new(),
        sets: None,
        hr_zones: None,
    }
}

/// The first 200 characters of a JSON value, for error messages.
fn truncate(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(metrics: Value) -> (Batch, Vec<Rejected>) {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).single().expect("now");
        let body = json!({"data": {"metrics": metrics, "workouts": []}}).to_string();
        parse_checked(body.as_bytes(), 4, chrono_tz::Europe::Berlin, now).expect("a push")
    }

    fn stretches(b: &Batch) -> Vec<(i64, f64)> {
        b.buckets.iter().filter(|b| b.metric == Metric::SleepStart).map(|b| (b.t_ms, b.value)).collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        time(&json!(s)).expect("a time")
    }

    #[test]
    fn sleep_stages_and_nights_give_stretches_with_the_times_the_app_sent() {
        let (b, rejected) = push(json!([{"name": "sleep_analysis", "data": [
            {"startDate": "2026-11-20 23:10:00 +0100", "endDate": "2026-11-21 02:00:00 +0100", "qty": 2.8333, "value": "Core"},
            {"startDate": "2026-11-21 02:00:00 +0100", "endDate": "2026-11-21 02:20:00 +0100", "qty": 0.3333, "value": "Awake"},
            {"endDate": "2026-11-21 06:40:00 +0100", "qty": 4.25, "value": "Deep"},
            {"date": "2026-11-19", "totalSleep": 7.0, "sleepStart": "2026-11-18 23:00:00 +0100",
             "sleepEnd": "2026-11-19 06:30:00 +0100", "inBedStart": "2026-11-18 22:30:00 +0100"},
            {"date": "2026-11-18", "totalSleep": 6.5, "inBedStart": "2026-11-17 22:45:00 +0100",
             "inBedEnd": "2026-11-18 06:00:00 +0100"},
            // A night with only its date: sleep, but no invented bed or wake time.
            {"date": "2026-11-17", "totalSleep": 6.0},
            // An implausible span (ends before it starts): its sleep counts, its times do not.
            {"date": "2026-11-16", "totalSleep": 6.0, "sleepStart": "2026-11-16 07:00:00 +0100",
             "sleepEnd": "2026-11-16 06:00:00 +0100"},
        ]}]));
        assert!(rejected.is_empty(), "{rejected:?}");
        let secs = |s: &str| at(s).timestamp() as f64;
        let ms = |s: &str| at(s).timestamp_millis();
        assert_eq!(
            stretches(&b),
            vec![
                (ms("2026-11-21 02:00:00 +0100"), secs("2026-11-20 23:10:00 +0100")),
                // Its start from its length: 4 h 15 min before its end.
                (ms("2026-11-21 06:40:00 +0100"), secs("2026-11-21 02:25:00 +0100")),
                (ms("2026-11-19 06:30:00 +0100"), secs("2026-11-18 23:00:00 +0100")),
                (ms("2026-11-18 06:00:00 +0100"), secs("2026-11-17 22:45:00 +0100")),
            ]
        );
        assert_eq!(b.buckets.iter().filter(|b| b.metric == Metric::SleepS).count(), 6, "every night's sleep");
    }

    #[test]
    fn mindful_minutes_become_meditations_and_bad_entries_are_named() {
        let (b, rejected) = push(json!([{"name": "mindful_minutes", "units": "min", "data": [
            {"date": "2026-11-20 07:00:00 +0100", "qty": 10},
            {"date": "2026-11-20 12:00:00 +0100", "qty": 0},
            {"date": "2026-11-20 13:00:00 +0100", "qty": 5000},
            {"date": "soon", "qty": 5},
        ]}]));
        assert_eq!(b.activities.len(), 1);
        let a = &b.activities[0];
        assert_eq!((a.activity_type.as_str(), a.duration_s, a.utc_offset_s), ("meditation", 600.0, 3600));
        assert_eq!(a.end - a.start, chrono::Duration::minutes(10));
        assert_eq!(a.external_id, format!("c4:mindful:{}", at("2026-11-20 07:00:00 +0100").timestamp()));
        assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 3], "{rejected:?}");
        assert!(rejected.iter().all(|r| r.metric == "mindful_minutes"));
    }
}
