//! Health Auto Export (iOS app) REST pushes: `{"data": {"metrics": [...], "workouts": [...]}}`.
//!
//! Steps and sleep arrive as timed pieces (per minute, per sleep stage, or per day when
//! aggregated); they are stored as buckets keyed by time, so the app's "since last sync"
//! and "previous 7 days" modes both give the right day totals and a repeated push changes
//! nothing. Heart rate is kept where it falls inside a workout.

use crate::activity_types;
use crate::model::{Batch, Metric, MetricBucket, NewActivity, Sample, Series, SeriesKind};
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
    /// `step_count`, `sleep_analysis`, `heart_rate` or `workouts`.
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
                        (Some(h), Some(end)) if plausible(&end) && h <= 24.0 => batch.buckets.push(MetricBucket {
                            client_id: client,
                            metric: Metric::SleepS,
                            t_ms: end.timestamp_millis(),
                            value: h * 3600.0,
                        }),
                        (Some(h), Some(_)) if h > 24.0 => reject(name, i, format!("{h} hours asleep in one piece")),
                        (Some(_), Some(_)) => reject(name, i, "its end is outside 2000 to tomorrow".into()),
                        (Some(_), None) => reject(name, i, "it has no valid endDate, sleepEnd or date".into()),
                        // Awake or in-bed stages are not sleep: nothing to store, nothing wrong.
                        (None, _) if p.get("value").and_then(Value::as_str).is_some() => {}
                        (None, _) => reject(name, i, "totalSleep/asleep is not a number of at least 0".into()),
                    }
                }
            }
            "heart_rate" => {
                for (i, p) in points.iter().enumerate() {
                    let bpm = qty(p.get("Avg")).or_else(|| qty(p.get("qty")));
                    match (checked_time(p, "date", now), bpm.filter(|b| (1.0..=300.0).contains(b))) {
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
            .filter(|s| (1.0..=300.0).contains(&s.value))
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
            avg_hr: avg.filter(|h| (1.0..=300.0).contains(h)).map(|h| (h * 10.0).round() / 10.0),
            max_hr: max.filter(|h| (1.0..=300.0).contains(h)).map(|h| h as u16),
            energy_kj: None,
            content_hash: None,
            series: if samples.is_empty() { Vec::new() } else { vec![Series { kind: SeriesKind::Hr, samples }] },
            sets: None,
        });
    }
    Ok((batch, rejected))
}

/// The first 200 characters of a JSON value, for error messages.
fn truncate(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}
