//! TCX and GPX, read with a streaming XML parser (quick-xml): constant memory whatever
//! the file size. Heart rate and cadence come from TCX trackpoints and from Garmin's
//! TrackPointExtension in GPX.

use super::{FileError, Parsed};
use crate::activity_types;
use crate::model::{NewActivity, Sample, Series, SeriesKind};
use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::io::BufRead;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmlKind {
    Tcx,
    Gpx,
    AppleHealth,
    Other,
}

impl std::fmt::Display for XmlKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcx => "TCX",
            Self::Gpx => "GPX",
            Self::AppleHealth => "Apple Health XML",
            Self::Other => "XML",
        })
    }
}

/// The root element's name, read from the first few kilobytes.
pub fn root(bytes: &[u8]) -> XmlKind {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let mut reader = Reader::from_reader(head);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return match e.local_name().as_ref() {
                    b"TrainingCenterDatabase" => XmlKind::Tcx,
                    b"gpx" => XmlKind::Gpx,
                    b"HealthData" => XmlKind::AppleHealth,
                    _ => XmlKind::Other,
                };
            }
            Ok(Event::Eof) | Err(_) => return XmlKind::Other,
            _ => buf.clear(),
        }
    }
}

fn sport_type(name: &str) -> &'static str {
    match name.trim().to_ascii_lowercase().as_str() {
        "running" | "run" | "trail_running" | "trailrun" => "run",
        "biking" | "cycling" | "ride" | "road_biking" | "mountain_biking" => "ride",
        "walking" | "walk" => "walk",
        "hiking" | "hike" => "hike",
        "swimming" | "swim" => "swim",
        "rowing" | "row" => "row",
        _ => "workout",
    }
}

#[derive(Default)]
struct Track {
    ty: Option<String>,
    id: Option<String>,
    laps_s: f64,
    distance_m: Option<f64>,
    energy_kcal: f64,
    hr: Vec<Sample>,
    cadence: Vec<Sample>,
    speed: Vec<Sample>,
    power: Vec<Sample>,
    times: Vec<i64>,
    /// GPX `<trkseg>` spans (first and last point time, ms): the receiver was off
    /// between two segments, so a gap is a pause, not activity time.
    segments: Vec<(i64, i64)>,
}

#[derive(Default)]
struct Point {
    t: Option<i64>,
    hr: Option<f64>,
    cad: Option<f64>,
    speed: Option<f64>,
    watts: Option<f64>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Parse TCX or GPX from a reader; one activity per TCX Activity or GPX track.
pub fn parse<R: BufRead>(
    source: R,
    kind: XmlKind,
    client: i64,
    file_key: &str,
    offset_s: impl Fn(DateTime<Utc>) -> i32,
) -> Result<Parsed, FileError> {
    let mut reader = Reader::from_reader(source);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut tracks: Vec<Track> = Vec::new();
    let mut point = Point::default();
    let mut gpx_type: Option<String> = None;
    let (track_tag, point_tag): (&[u8], &[u8]) = match kind {
        XmlKind::Tcx => (b"Activity", b"Trackpoint"),
        _ => (b"trk", b"trkpt"),
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| FileError::Invalid(format!("{kind} at byte {}: {e}", reader.buffer_position())))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if name == track_tag {
                    let mut t = Track::default();
                    if let Ok(Some(sport)) = e.try_get_attribute("Sport") {
                        t.ty = Some(String::from_utf8_lossy(&sport.value).into_owned());
                    }
                    tracks.push(t);
                } else if name == point_tag {
                    point = Point::default();
                } else if kind == XmlKind::Gpx && name == b"trkseg" {
                    if let Some(t) = tracks.last_mut() {
                        t.segments.push((i64::MAX, i64::MIN));
                    }
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => {
                text.push_str(&t.decode().map_err(|e| FileError::Invalid(format!("{kind}: {e}")))?);
            }
            Event::End(_) => {
                let Some(name) = path.pop() else { continue };
                let parent = path.last().map(Vec::as_slice).unwrap_or_default();
                let value = text.trim();
                let number = || value.parse::<f64>().ok().filter(|x| x.is_finite());
                match (kind, name.as_slice(), parent) {
                    (_, b"time" | b"Time", p) if p == point_tag => {
                        point.t = parse_time(value).map(|t| t.timestamp_millis())
                    }
                    (XmlKind::Tcx, b"Value", b"HeartRateBpm") if path.iter().any(|p| p == point_tag) => {
                        point.hr = number()
                    }
                    (XmlKind::Tcx, b"Cadence", p) if p == point_tag => point.cad = number(),
                    (XmlKind::Tcx, b"Speed", b"TPX") => point.speed = number(),
                    (XmlKind::Tcx, b"Watts", b"TPX") => point.watts = number(),
                    (XmlKind::Gpx, b"hr", _) => point.hr = number(),
                    (XmlKind::Gpx, b"cad", _) => point.cad = number(),
                    (XmlKind::Gpx, b"type", b"trk") => {
                        if let Some(t) = tracks.last_mut() {
                            t.ty = Some(value.to_string());
                        }
                    }
                    (XmlKind::Gpx, b"type", b"metadata") => gpx_type = Some(value.to_string()),
                    (XmlKind::Tcx, b"Id", b"Activity") => {
                        if let Some(t) = tracks.last_mut() {
                            t.id = Some(value.to_string());
                        }
                    }
                    (XmlKind::Tcx, b"TotalTimeSeconds", b"Lap") => {
                        if let (Some(t), Some(s)) = (tracks.last_mut(), number()) {
                            t.laps_s += s.max(0.0);
                        }
                    }
                    (XmlKind::Tcx, b"DistanceMeters", b"Lap") => {
                        if let (Some(t), Some(d)) = (tracks.last_mut(), number()) {
                            t.distance_m = Some(t.distance_m.unwrap_or(0.0) + d.max(0.0));
                        }
                    }
                    (XmlKind::Tcx, b"Calories", b"Lap") => {
                        if let (Some(t), Some(c)) = (tracks.last_mut(), number()) {
                            t.energy_kcal += c.max(0.0);
                        }
                    }
                    (_, n, _) if n == point_tag => {
                        if let (Some(t_ms), Some(track)) = (point.t, tracks.last_mut()) {
                            track.times.push(t_ms);
                            if let Some(seg) = track.segments.last_mut() {
                                *seg = (seg.0.min(t_ms), seg.1.max(t_ms));
                            }
                            let push = |v: &mut Vec<Sample>, x: Option<f64>, ok: fn(f64) -> bool| {
                                if let Some(value) = x.filter(|x| ok(*x)) {
                                    v.push(Sample { t_ms, value });
                                }
                            };
                            push(&mut track.hr, point.hr, |x| (1.0..=300.0).contains(&x));
                            push(&mut track.cadence, point.cad, |x| (0.0..=1000.0).contains(&x));
                            push(&mut track.speed, point.speed, |x| (0.0..=200.0).contains(&x));
                            push(&mut track.power, point.watts, |x| (-5000.0..=5000.0).contains(&x));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(FileError::Invalid(format!(
            "{kind}: the file ends inside <{}>",
            String::from_utf8_lossy(&path[path.len() - 1])
        )));
    }
    let mut activities = Vec::new();
    let n = tracks.len();
    for (i, t) in tracks.into_iter().enumerate() {
        let (Some(&lo), Some(&hi)) = (t.times.iter().min(), t.times.iter().max()) else { continue };
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let ty = sport_type(t.ty.as_deref().or(gpx_type.as_deref()).unwrap_or(""));
        let (start, end) = (at(lo), at(hi));
        let elapsed = (hi - lo) as f64 / 1000.0;
        // GPX: the segments' spans, summed; gaps between segments are pauses.
        let in_segments: i64 = t.segments.iter().filter(|(a, b)| a <= b).map(|(a, b)| b - a).sum();
        let moving = if t.segments.len() > 1 { in_segments as f64 / 1000.0 } else { elapsed };
        let avg = (!t.hr.is_empty()).then(|| t.hr.iter().map(|s| s.value).sum::<f64>() / t.hr.len() as f64);
        let max = t.hr.iter().map(|s| s.value).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let mut series = Vec::new();
        for (kind, samples) in [
            (SeriesKind::Hr, t.hr),
            (SeriesKind::Cadence, t.cadence),
            (SeriesKind::Speed, t.speed),
            (SeriesKind::Power, t.power),
        ] {
            if !samples.is_empty() {
                series.push(Series { kind, samples });
            }
        }
        let id = t.id.clone().unwrap_or_else(|| start.to_rfc3339());
        activities.push(NewActivity {
            client_id: client,
            external_id: if n == 1 { format!("{file_key}:{id}") } else { format!("{file_key}:{id}/{i}") },
            start,
            end,
            utc_offset_s: offset_s(start),
            activity_type: ty.into(),
            category: activity_types::category(ty),
            duration_s: if t.laps_s > 0.0 { t.laps_s } else { moving },
            distance_m: t.distance_m,
            avg_hr: avg.map(|h| (h * 10.0).round() / 10.0),
            max_hr: max.map(|h| h as u16),
            energy_kj: (t.energy_kcal > 0.0).then_some(t.energy_kcal * 4.184),
            content_hash: None,
            series,
            sets: None,
        });
    }
    if activities.is_empty() {
        return Err(FileError::Invalid(format!("{kind}: no track points with times: nothing to import")));
    }
    Ok(Parsed { activities, daily: Vec::new(), diagnostics: Vec::new() })
}
