//! FIT files (Garmin, COROS, Wahoo, Suunto, Polar) decoded with `fitparser`.
//!
//! Sessions become activities (a multi-sport file gives several); records give the
//! sample series (HR, speed, cadence, power); `set` messages give strength sets (reps,
//! weight, exercise category, active or rest). Moving time is the session's timer time;
//! without one, the time between timer start and stop events (pauses excluded), else the
//! laps' timer times, else the elapsed time.

use super::{FileError, Parsed};
use crate::activity_types;
use crate::model::{NewActivity, Sample, Series, SeriesKind, SetType, StrengthSet};
use chrono::{DateTime, Utc};
use fitparser::profile::MesgNum;
use fitparser::{FitDataRecord, Value};

/// `.FIT` at bytes 8-11 of the file header.
pub fn looks_like_fit(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[8..12] == b".FIT" && (bytes[0] == 12 || bytes[0] == 14)
}

fn field<'a>(r: &'a FitDataRecord, name: &str) -> Option<&'a Value> {
    r.fields().iter().find(|f| f.name() == name).map(|f| f.value())
}

fn num(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Byte(x) | Value::Enum(x) | Value::UInt8(x) | Value::UInt8z(x) => f64::from(*x),
        Value::SInt8(x) => f64::from(*x),
        Value::SInt16(x) => f64::from(*x),
        Value::UInt16(x) | Value::UInt16z(x) => f64::from(*x),
        Value::SInt32(x) => f64::from(*x),
        Value::UInt32(x) | Value::UInt32z(x) => f64::from(*x),
        Value::Float32(x) => f64::from(*x),
        Value::Float64(x) => *x,
        Value::SInt64(x) => *x as f64,
        Value::UInt64(x) | Value::UInt64z(x) => *x as f64,
        Value::Array(items) => return items.first().and_then(num),
        _ => return None,
    };
    x.is_finite().then_some(x)
}

fn number(r: &FitDataRecord, name: &str) -> Option<f64> {
    field(r, name).and_then(num)
}

fn time(r: &FitDataRecord, name: &str) -> Option<DateTime<Utc>> {
    match field(r, name)? {
        Value::Timestamp(t) => Some(t.with_timezone(&Utc)),
        _ => None,
    }
}

fn text(r: &FitDataRecord, name: &str) -> Option<String> {
    match field(r, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => match items.first()? {
            Value::String(s) => Some(s.clone()),
            other => num(other).map(|n| format!("{n}")),
        },
        other => num(other).map(|n| format!("{n}")),
    }
}

/// FIT sport / sub-sport names (as fitparser spells them) → coachd's type.
pub fn activity_type(sport: &str, sub_sport: &str) -> &'static str {
    match (sport, sub_sport) {
        ("running", "treadmill") => "treadmill_run",
        ("running", "trail") => "trail_run",
        ("running", "virtual_activity") => "virtual_run",
        ("running", _) => "run",
        ("cycling", "indoor_cycling" | "spin") => "indoor_ride",
        ("cycling", "virtual_activity") => "virtual_ride",
        ("cycling", "mountain") => "mountain_bike",
        ("cycling" | "e_biking", _) => "ride",
        ("walking", _) => "walk",
        ("hiking", _) => "hike",
        ("swimming", _) => "swim",
        ("rowing", _) | (_, "indoor_rowing") => "row",
        (_, "elliptical") => "elliptical",
        (_, "stair_climbing") => "stair_stepper",
        (_, "strength_training") => "strength",
        (_, "yoga") | ("yoga", _) => "yoga",
        (_, "pilates") => "pilates",
        (_, "flexibility_training") => "stretching",
        (_, "cardio_training") => "cardio",
        ("hiit", _) | (_, "hiit") => "hiit",
        _ => "workout",
    }
}

/// exercise_category names come from fitparser; a few numeric fallbacks from the profile.
fn exercise(category: Option<String>) -> String {
    match category.as_deref() {
        Some("21") => "pull_up".into(),
        Some("22") => "push_up".into(),
        Some("23") => "row".into(),
        Some("28") => "squat".into(),
        Some("17") => "lunge".into(),
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            name.to_ascii_lowercase()
        }
        _ => "unknown".into(),
    }
}

struct Session {
    start: DateTime<Utc>,
    /// Set once every session is known (see [`session_end`]).
    end: DateTime<Utc>,
    /// `total_elapsed_time`, when plausible.
    elapsed_s: Option<f64>,
    /// The session message's own `timestamp`: when it was written, which devices set
    /// to the start, to the save time, or to the next session's start.
    stamp: Option<DateTime<Utc>>,
    moving_s: Option<f64>,
    distance_m: Option<f64>,
    avg_hr: Option<f64>,
    max_hr: Option<f64>,
    energy_kj: Option<f64>,
    ty: &'static str,
}

/// Seconds the timer ran within `[lo, hi]` ms, from start/stop events; None without events.
fn timer_seconds(events: &[(i64, bool)], lo: i64, hi: i64) -> Option<f64> {
    let mut mine: Vec<(i64, bool)> = events.iter().copied().filter(|(t, _)| *t >= lo && *t <= hi).collect();
    if mine.is_empty() {
        return None;
    }
    mine.sort_by_key(|e| e.0);
    let (mut total, mut since) = (0i64, None);
    for (t, running) in mine {
        match (running, since) {
            (true, None) => since = Some(t),
            (false, Some(s)) => {
                total += t - s;
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        total += hi - s;
    }
    Some(total as f64 / 1000.0)
}

/// No session lasts longer than a week; a larger elapsed or timer time is not believed.
const MAX_SESSION_S: f64 = 7.0 * 86_400.0;

/// A session ends at its start + `total_elapsed_time`, or at its last record or timer
/// stop (before the next session) when that is later. The session message's own
/// `timestamp` is used only when nothing else is known, and never before the start.
fn session_end(s: &Session, next_ms: Option<i64>, records: &[i64], timer: &[(i64, bool)]) -> DateTime<Utc> {
    let lo = s.start.timestamp_millis();
    let inside = |t: i64| t >= lo && next_ms.is_none_or(|n| t < n);
    let by_elapsed = s.elapsed_s.map(|e| lo + (e * 1000.0).round() as i64);
    let last_record = records.iter().copied().filter(|t| inside(*t)).max();
    let last_stop = timer.iter().filter(|(t, running)| !running && inside(*t)).map(|(t, _)| *t).max();
    let end_ms = [by_elapsed, last_record, last_stop]
        .into_iter()
        .flatten()
        .max()
        .or_else(|| s.stamp.map(|t| t.timestamp_millis()))
        .unwrap_or(lo);
    // A session never reaches into the next one (elapsed times are rounded up by some
    // devices, which would make a triathlon's transition overlap the ride after it).
    let end_ms = next_ms.map_or(end_ms, |n| end_ms.min(n)).max(lo);
    DateTime::from_timestamp_millis(end_ms).unwrap_or(s.start)
}

/// Decode a FIT file into activities for `client`.
pub fn parse(bytes: &[u8], client: i64, offset_s: impl Fn(DateTime<Utc>) -> i32) -> Result<Parsed, FileError> {
    if !looks_like_fit(bytes) {
        return Err(FileError::Invalid("FIT: no valid FIT file header (12 or 14 bytes ending in \".FIT\")".into()));
    }
    // The header says how many bytes of messages follow (then a 2-byte CRC).
    let header = usize::from(bytes[0]);
    let data = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if bytes.len() < header + data + 2 {
        return Err(FileError::Invalid(format!(
            "FIT: truncated: the header announces {} bytes, the file has {}",
            header + data + 2,
            bytes.len()
        )));
    }
    // fitparser has panicked on malformed input (found by fuzz/run: an arithmetic
    // underflow in its header parser); a bad file must be an error, never a crash.
    // The decoder prints to stderr only for a field whose size is not a multiple of its
    // type's; a file without one is decoded as it is, so decodes run side by side.
    let decode = || std::panic::catch_unwind(|| fitparser::from_bytes(bytes));
    let (decoded, diagnostics) = if may_complain(bytes) { quiet_stderr(decode) } else { (decode(), Vec::new()) };
    let decoded = decoded.map_err(|_| FileError::Invalid("FIT: the decoder failed on malformed data".into()))?;
    let records = decoded.map_err(|e| FileError::Invalid(decode_error(&e, bytes.len())))?;
    let mut sessions = Vec::new();
    let mut hr = Vec::new();
    let mut speed = Vec::new();
    let mut cadence = Vec::new();
    let mut power = Vec::new();
    let mut sets = Vec::new();
    let mut record_ms: Vec<i64> = Vec::new();
    let mut file_key = None;
    let mut file_type: Option<String> = None;
    let mut local_offset = None;
    let mut fallback_sport = ("generic".to_string(), "generic".to_string());
    // Timer start/stop events, and laps' (start, timer seconds).
    let mut timer: Vec<(i64, bool)> = Vec::new();
    let mut laps: Vec<(i64, f64)> = Vec::new();
    for r in &records {
        match r.kind() {
            MesgNum::FileId => {
                file_type = text(r, "type");
                let serial = number(r, "serial_number").map(|n| n as u64);
                let created = time(r, "time_created").map(|t| t.timestamp());
                if let (Some(s), Some(c)) = (serial, created) {
                    file_key = Some(format!("{s}-{c}"));
                }
            }
            MesgNum::Activity => {
                if let (Some(t), Some(local)) = (time(r, "timestamp"), number(r, "local_timestamp")) {
                    // local_timestamp is seconds since the FIT epoch in local time.
                    let local = local as i64 + 631_065_600;
                    local_offset = i32::try_from(local - t.timestamp()).ok().filter(|o| o.abs() <= 18 * 3600);
                }
            }
            MesgNum::Event if text(r, "event").as_deref() == Some("timer") => {
                if let Some(t) = time(r, "timestamp") {
                    let running = text(r, "event_type").as_deref() == Some("start");
                    timer.push((t.timestamp_millis(), running));
                }
            }
            MesgNum::Lap => {
                if let (Some(t), Some(s)) = (time(r, "start_time"), number(r, "total_timer_time")) {
                    laps.push((t.timestamp_millis(), s.max(0.0)));
                }
            }
            MesgNum::Sport => {
                fallback_sport = (text(r, "sport").unwrap_or_default(), text(r, "sub_sport").unwrap_or_default());
            }
            MesgNum::Session => {
                let Some(start) = time(r, "start_time") else { continue };
                let sport = text(r, "sport").unwrap_or_default();
                let sub = text(r, "sub_sport").unwrap_or_default();
                sessions.push(Session {
                    start,
                    end: start,
                    elapsed_s: number(r, "total_elapsed_time").filter(|s| *s > 0.0 && *s <= MAX_SESSION_S),
                    stamp: time(r, "timestamp"),
                    moving_s: number(r, "total_timer_time").filter(|s| *s <= MAX_SESSION_S),
                    distance_m: number(r, "total_distance"),
                    avg_hr: SeriesKind::Hr.checked(number(r, "avg_heart_rate")),
                    max_hr: SeriesKind::Hr.checked(number(r, "max_heart_rate")),
                    energy_kj: number(r, "total_calories").map(|kcal| kcal * 4.184),
                    ty: activity_type(&sport, &sub),
                });
            }
            MesgNum::Record => {
                let Some(t) = time(r, "timestamp") else { continue };
                let t_ms = t.timestamp_millis();
                record_ms.push(t_ms);
                let push = |v: &mut Vec<Sample>, value: Option<f64>, kind: SeriesKind| {
                    if let Some(value) = kind.checked(value) {
                        v.push(Sample { t_ms, value });
                    }
                };
                push(&mut hr, number(r, "heart_rate"), SeriesKind::Hr);
                push(&mut speed, number(r, "enhanced_speed").or_else(|| number(r, "speed")), SeriesKind::Speed);
                push(&mut cadence, number(r, "cadence"), SeriesKind::Cadence);
                push(&mut power, number(r, "power"), SeriesKind::Power);
            }
            MesgNum::Set => {
                let start = time(r, "start_time").or_else(|| time(r, "timestamp"));
                let set_type =
                    if text(r, "set_type").as_deref() == Some("rest") { SetType::Rest } else { SetType::Active };
                sets.push(StrengthSet {
                    start,
                    duration_s: number(r, "duration"),
                    exercise: if set_type == SetType::Rest { "rest".into() } else { exercise(text(r, "category")) },
                    set_type,
                    reps: number(r, "repetitions").filter(|n| *n >= 0.0).map(|n| n as u32),
                    weight_kg: number(r, "weight").filter(|w| *w >= 0.0),
                });
            }
            _ => {}
        }
    }
    if sessions.is_empty() {
        // Some devices write no session: the records (or sets) span the activity.
        let times: Vec<i64> = record_ms
            .iter()
            .copied()
            .chain(sets.iter().filter_map(|s| s.start.map(|t| t.timestamp_millis())))
            .chain(timer.iter().map(|e| e.0))
            .collect();
        let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) else {
            return Err(FileError::Invalid(match file_type.as_deref().filter(|t| *t != "activity") {
                Some(t) => format!(
                    "FIT: not an activity file: it is a {} file (the watch keeps those beside its activities; \
                     import the files from its Activity folder)",
                    if t.starts_with("monitoring") {
                        "monitoring (all-day steps and heart rate)".to_string()
                    } else {
                        t.replace('_', " ")
                    }
                ),
                None => "FIT: no session, record or set messages: not an activity file".into(),
            }));
        };
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        sessions.push(Session {
            start: at(*lo),
            end: at(*hi),
            elapsed_s: None,
            stamp: None,
            moving_s: None,
            distance_m: None,
            avg_hr: None,
            max_hr: None,
            energy_kj: None,
            ty: activity_type(&fallback_sport.0, &fallback_sport.1),
        });
    }
    sessions.sort_by_key(|s| s.start);
    for i in 0..sessions.len() {
        let next = sessions.get(i + 1).map(|x| x.start.timestamp_millis());
        let s = &sessions[i];
        if s.elapsed_s.is_some() || s.stamp.is_some() || !record_ms.is_empty() {
            let end = session_end(s, next, &record_ms, &timer);
            sessions[i].end = end;
        }
    }
    let key = file_key.unwrap_or_else(|| crate::crypto::hex(&crate::crypto::sha256(bytes)[..12]));
    let mut activities = Vec::new();
    let n = sessions.len();
    for (i, s) in sessions.iter().enumerate() {
        // Samples belong to the session whose span holds them; the last takes stragglers.
        let (lo, hi) = (s.start.timestamp_millis(), s.end.timestamp_millis());
        let next = sessions.get(i + 1).map(|x| x.start.timestamp_millis());
        let mine = |v: &[Sample]| -> Vec<Sample> {
            v.iter()
                .filter(|p| p.t_ms >= lo && (p.t_ms <= hi || next.is_none()) && next.is_none_or(|n| p.t_ms < n))
                .copied()
                .collect()
        };
        let mut series = Vec::new();
        for (kind, v) in [
            (SeriesKind::Hr, &hr),
            (SeriesKind::Speed, &speed),
            (SeriesKind::Cadence, &cadence),
            (SeriesKind::Power, &power),
        ] {
            let samples = mine(v);
            if !samples.is_empty() {
                series.push(Series { kind, samples });
            }
        }
        let my_sets: Vec<StrengthSet> = sets
            .iter()
            .filter(|set| {
                let t = set.start.map_or(lo, |t| t.timestamp_millis());
                t >= lo && next.is_none_or(|n| t < n)
            })
            .cloned()
            .collect();
        let elapsed_s = (s.end - s.start).num_milliseconds() as f64 / 1000.0;
        let moving_s = s
            .moving_s
            .filter(|m| m.is_finite() && *m >= 0.0)
            .or_else(|| timer_seconds(&timer, lo, hi))
            .or_else(|| {
                let mine: Vec<f64> = laps.iter().filter(|(t, _)| *t >= lo && *t <= hi).map(|(_, s)| *s).collect();
                (!mine.is_empty()).then(|| mine.iter().sum())
            })
            .unwrap_or(elapsed_s.max(0.0));
        let hr_series = series.iter().find(|x| x.kind == SeriesKind::Hr);
        let avg_hr = s
            .avg_hr
            .or_else(|| hr_series.map(|x| x.samples.iter().map(|p| p.value).sum::<f64>() / x.samples.len() as f64));
        let max_hr = s.max_hr.or_else(|| hr_series.map(|x| x.samples.iter().map(|p| p.value).fold(0.0, f64::max)));
        activities.push(NewActivity {
            client_id: client,
            external_id: if n == 1 { key.clone() } else { format!("{key}/{i}") },
            start: s.start,
            end: s.end,
            utc_offset_s: local_offset.unwrap_or_else(|| offset_s(s.start)),
            activity_type: s.ty.to_string(),
            category: activity_types::category(s.ty),
            duration_s: moving_s,
            distance_m: s.distance_m.filter(|d| *d >= 0.0),
            avg_hr: avg_hr.map(|h| (h * 10.0).round() / 10.0),
            max_hr: max_hr.map(|h| h as u16),
            energy_kj: s.energy_kj,
            content_hash: None,
            series,
            sets: if my_sets.is_empty() { None } else { Some(my_sets) },
            hr_zones: None,
        });
    }
    Ok(Parsed { activities, daily: Vec::new(), diagnostics })
}

/// What a decoder error means, in a person's words.
fn decode_error(e: &fitparser::Error, len: usize) -> String {
    use fitparser::ErrorKind;
    match &**e {
        ErrorKind::UnexpectedEof(needed) => {
            // nom's `Needed` (Size(n) or Unknown), read off its Debug form so the
            // decoder's parser crate need not be a dependency of ours.
            let n: String = format!("{needed:?}").chars().filter(char::is_ascii_digit).collect();
            let more = if n.is_empty() { "more bytes".to_string() } else { format!("{n} more bytes") };
            format!(
                "FIT: truncated: the file ({len} bytes) ends inside a message that needs {more}; it was cut short \
                 while saving or copying: copy it from the device again"
            )
        }
        ErrorKind::MissingDefinitionMessage(local, at) => format!(
            "FIT: damaged at byte {at}: message type {local} is used but was never defined (the file is corrupt or \
             was cut and joined)"
        ),
        ErrorKind::ParseError(at, _) => format!("FIT: damaged data at byte {at}: not a valid FIT message"),
        ErrorKind::InvalidCrc(_) => "FIT: the CRC (checksum) does not match: the file is damaged; copy it again".into(),
        ErrorKind::TrailingBytes(n) => format!("FIT: {n} unexpected bytes after the data"),
        other => format!("FIT: {other}"),
    }
}

/// Whether decoding `bytes` may make the decoder print: a definition message has a field
/// whose size is not a multiple of its base type's (fitparser then reads it as bytes and
/// says so on stderr). Walks the messages' framing only (headers, definitions, data sizes);
/// anything it cannot follow answers yes, so the capture is left out only when it is
/// certainly not needed.
fn may_complain(bytes: &[u8]) -> bool {
    // Sizes of FIT base types by their number (bits 5 and 6 masked out, as the decoder does).
    fn base_size(base: u8) -> usize {
        match base & 0x9f {
            0x83 | 0x84 | 0x8b => 2,
            0x85 | 0x86 | 0x88 | 0x8c => 4,
            0x89 | 0x8e | 0x8f | 0x90 => 8,
            _ => 1,
        }
    }
    let mut pos = 0usize;
    // Chained FIT files: header, messages, CRC, and again.
    while pos < bytes.len() {
        let Some(head) = bytes.get(pos..pos + 12) else { return true };
        let header = usize::from(head[0]);
        if !(header == 12 || header == 14) || &head[8..12] != b".FIT" {
            return true;
        }
        let data = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let end = pos + header + data;
        if end + 2 > bytes.len() {
            return true;
        }
        // Data message sizes (header byte included) by local message type.
        let mut sizes = [0usize; 16];
        let mut at = pos + header;
        while at < end {
            let b = bytes[at];
            if b & 0x80 != 0 {
                match sizes[usize::from((b >> 5) & 0x3)] {
                    0 => return true,
                    n => at += n,
                }
            } else if b & 0x40 != 0 {
                let Some(fixed) = bytes.get(at + 1..at + 6) else { return true };
                let n = usize::from(fixed[4]);
                let fields_at = at + 6;
                let Some(fields) = bytes.get(fields_at..fields_at + 3 * n) else { return true };
                let mut size = 1;
                for f in fields.chunks_exact(3) {
                    let (len, base) = (usize::from(f[1]), f[2]);
                    if len % base_size(base) != 0 {
                        return true;
                    }
                    size += len;
                }
                at = fields_at + 3 * n;
                if b & 0x20 != 0 {
                    let Some(&m) = bytes.get(at) else { return true };
                    let m = usize::from(m);
                    let Some(dev) = bytes.get(at + 1..at + 1 + 3 * m) else { return true };
                    size += dev.chunks_exact(3).map(|f| usize::from(f[1])).sum::<usize>();
                    at += 1 + 3 * m;
                }
                sizes[usize::from(b & 0x0f)] = size;
            } else {
                match sizes[usize::from(b & 0x0f)] {
                    0 => return true,
                    n => at += n,
                }
            }
        }
        if at != end {
            return true;
        }
        pos = end + 2;
    }
    false
}

/// Run `f` with this process's stderr captured: the FIT decoder prints diagnostics of
/// its own (`ERROR: field size …` for fields it reads anyway), which must not reach the
/// user's terminal or the journal raw. Returns what was printed, one entry per line, for
/// the caller to log at debug with the file's name.
///
/// The capture swaps file descriptor 2 for a pipe, so it is process-wide: one decode at
/// a time holds it (decodes take milliseconds), and anything another thread writes to
/// stderr meanwhile is logged at debug with the decoder's lines instead of shown.
fn quiet_stderr<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fds = [0; 2];
    // SAFETY: plain fd calls on descriptors this function owns; stderr is restored from
    // its saved copy before returning, on every path.
    let saved = unsafe { libc::dup(libc::STDERR_FILENO) };
    if saved < 0 || unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        if saved >= 0 {
            unsafe { libc::close(saved) };
        }
        return (f(), Vec::new());
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // A reader drains the pipe while the decoder runs, so a full pipe never blocks it.
    let reader = std::thread::spawn(move || {
        // SAFETY: read_end is ours alone from here on; File closes it.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(read_end) };
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        text
    });
    unsafe {
        libc::dup2(write_end, libc::STDERR_FILENO);
        libc::close(write_end);
    }
    let out = f();
    unsafe {
        libc::dup2(saved, libc::STDERR_FILENO);
        libc::close(saved);
    }
    let text = reader.join().unwrap_or_default();
    let lines = String::from_utf8_lossy(&text).lines().map(str::to_string).filter(|l| !l.is_empty()).collect();
    (out, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIT file of one definition (local type 0, `record`: a uint32 timestamp and a
    /// heart rate of `hr_size` bytes typed `hr_base`) and `n` data messages.
    fn tiny(hr_size: u8, hr_base: u8, n: usize) -> Vec<u8> {
        let mut data = vec![0x40, 0, 0, 20, 0, 2, 253, 4, 0x86, 3, hr_size, hr_base];
        for i in 0..n {
            data.push(0);
            data.extend_from_slice(&(1_000_000_000u32 + i as u32).to_le_bytes());
            data.extend(std::iter::repeat_n(140, usize::from(hr_size)));
        }
        let mut file = vec![12, 0x10, 0x64, 0];
        file.extend_from_slice(&(data.len() as u32).to_le_bytes());
        file.extend_from_slice(b".FIT");
        file.extend(data);
        file.extend_from_slice(&[0, 0]);
        file
    }

    #[test]
    fn the_stderr_capture_is_needed_only_for_a_field_of_an_odd_size() {
        assert!(!may_complain(&tiny(1, 0x02, 3)), "a well-formed file");
        assert!(may_complain(&tiny(1, 0x86, 3)), "one byte of a uint32");
        assert!(may_complain(&tiny(3, 0x84, 1)), "three bytes of uint16s");
        let good = tiny(1, 0x02, 3);
        assert!(may_complain(&good[..good.len() - 4]), "cut short: not followed, so captured");
        let mut chained = good.clone();
        chained.extend_from_slice(&tiny(1, 0x86, 1));
        assert!(may_complain(&chained), "the second of two chained files");
        chained.truncate(good.len());
        chained.extend_from_slice(&good);
        assert!(!may_complain(&chained));
    }
}
