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
    /// Metres along the track's positions (within each segment), for files that carry
    /// no distance of their own (every GPX, some TCX).
    path_m: f64,
    /// The last position of the current segment: (lat, lon, ms).
    last_fix: Option<(f64, f64, i64)>,
    /// Fixes in a row too far from `last_fix`: after a few, `last_fix` was the outlier.
    jumps: u32,
}

/// Great-circle distance in metres (haversine on a 6,371 km sphere).
fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let (dla, dlo) = (la2 - la1, (b.1 - a.1).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().min(1.0).asin()
}

/// Faster than this between two fixes is a GPS jump, not movement (m/s).
const MAX_FIX_SPEED: f64 = 100.0;

#[derive(Default)]
struct Point {
    t: Option<i64>,
    lat: Option<f64>,
    lon: Option<f64>,
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
                    if kind == XmlKind::Gpx {
                        let coord = |key: &str| {
                            e.try_get_attribute(key)
                                .ok()
                                .flatten()
                                .and_then(|a| String::from_utf8_lossy(&a.value).trim().parse::<f64>().ok())
                        };
                        (point.lat, point.lon) = (coord("lat"), coord("lon"));
                    }
                } else if kind == XmlKind::Gpx && name == b"trkseg" {
                    if let Some(t) = tracks.last_mut() {
                        t.segments.push((i64::MAX, i64::MIN));
                        t.last_fix = None;
                        t.jumps = 0;
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
                    (XmlKind::Tcx, b"LatitudeDegrees", b"Position") => point.lat = number(),
                    (XmlKind::Tcx, b"LongitudeDegrees", b"Position") => point.lon = number(),
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
                            let fix = match (point.lat, point.lon) {
                                (Some(la), Some(lo))
                                    if (-90.0..=90.0).contains(&la) && (-180.0..=180.0).contains(&lo) =>
                                {
                                    Some((la, lo))
                                }
                                _ => None,
                            };
                            if let Some(here) = fix {
                                // A jump is skipped, and the next fix measured from the last good one.
                                let good = match track.last_fix {
                                    Some((la, lo, t0)) => {
                                        let d = haversine_m((la, lo), here);
                                        let secs = (t_ms - t0).max(0) as f64 / 1000.0;
                                        let plausible = d.is_finite() && d <= MAX_FIX_SPEED * secs.max(1.0);
                                        if plausible {
                                            track.path_m += d;
                                        }
                                        plausible
                                    }
                                    None => true,
                                };
                                track.jumps = if good { 0 } else { track.jumps + 1 };
                                // Three fixes in a row agree against the last one: it was the
                                // outlier; carry on from here without counting the jump.
                                if good || track.jumps >= 3 {
                                    track.last_fix = Some((here.0, here.1, t_ms));
                                    track.jumps = 0;
                                }
                            }
                            let push = |v: &mut Vec<Sample>, x: Option<f64>, kind: SeriesKind| {
                                if let Some(value) = kind.checked(x) {
                                    v.push(Sample { t_ms, value });
                                }
                            };
                            push(&mut track.hr, point.hr, SeriesKind::Hr);
                            push(&mut track.cadence, point.cad, SeriesKind::Cadence);
                            push(&mut track.speed, point.speed, SeriesKind::Speed);
                            push(&mut track.power, point.watts, SeriesKind::Power);
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
            // The file's own distance (TCX laps) when it has one; else along the positions.
            distance_m: t.distance_m.filter(|d| *d > 0.0).or((t.path_m > 0.0).then_some(t.path_m.round())),
            avg_hr: avg.map(|h| (h * 10.0).round() / 10.0),
            max_hr: max.map(|h| h as u16),
            energy_kj: (t.energy_kcal > 0.0).then_some(t.energy_kcal * 4.184),
            content_hash: None,
            series,
            sets: None,
            hr_zones: None,
        });
    }
    if activities.is_empty() {
        return Err(FileError::Invalid(format!("{kind}: no track points with times: nothing to import")));
    }
    Ok(Parsed { activities, daily: Vec::new(), diagnostics: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpx(points: &str) -> Parsed {
        let doc = format!(
            r#"<?xml version="1.0"?><gpx version="1.1" creator="test"><trk><type>running</type>{points}</trk></gpx>"#
        );
        parse(doc.as_bytes(), XmlKind::Gpx, 1, "k", |_| 0).expect("parses")
    }

    fn pt(lat: f64, s: u32) -> String {
        format!(r#"<trkpt lat="{lat}" lon="13.4"><time>2026-11-20T07:{:02}:{:02}Z</time></trkpt>"#, s / 60, s % 60)
    }

    #[test]
    fn a_gpx_track_gets_its_distance_from_its_positions() {
        // 0.009° of latitude is 1,000.8 m; the jump of a degree in one second is a GPS glitch.
        let seg = format!("<trkseg>{}{}{}{}</trkseg>", pt(52.0, 0), pt(52.0045, 180), pt(53.0, 181), pt(52.009, 360));
        let d = gpx(&seg).activities[0].distance_m.expect("a distance");
        assert!((d - 1000.8).abs() < 2.0, "{d}");
        // Two segments: the gap between them is not walked.
        let two = format!(
            "<trkseg>{}{}</trkseg><trkseg>{}{}</trkseg>",
            pt(52.0, 0),
            pt(52.009, 300),
            pt(52.5, 600),
            pt(52.509, 900)
        );
        let d = gpx(&two).activities[0].distance_m.expect("a distance");
        assert!((d - 2001.6).abs() < 4.0, "{d}");
        // A bad first fix: after three fixes that agree, counting carries on from them.
        let bad_start = format!(
            "<trkseg>{}{}{}{}{}</trkseg>",
            pt(10.0, 0),
            pt(52.0, 1),
            pt(52.0045, 180),
            pt(52.009, 360),
            pt(52.0135, 540)
        );
        let d = gpx(&bad_start).activities[0].distance_m.expect("a distance");
        assert!((d - 500.4).abs() < 2.0, "{d}");
        // No positions: no distance (never 0 m made up).
        let none = "<trkseg><trkpt><time>2026-11-20T07:00:00Z</time></trkpt><trkpt><time>2026-11-20T07:10:00Z</time></trkpt></trkseg>";
        assert_eq!(gpx(none).activities[0].distance_m, None);
    }
}
