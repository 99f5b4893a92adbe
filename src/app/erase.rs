//! The client's data is the client's: all of it as one zip (`coachd client export`, the
//! dashboard's Export), or erased (`coachd client remove`, the dashboard's Remove).
//!
//! The export's formats are in the zip's own README.txt ([`EXPORT_README`]) and in the
//! project README. The removal deletes every row of the client in one transaction
//! ([`crate::store::erase`]), then, outside it and never blocking it, removes their
//! inbox, archive and quarantine folders; their cloud authorizations are ended at the
//! providers just before, where the provider's API allows.

use super::{App, AppError, AppResult};
use crate::model::SeriesKind;
use crate::store::erase::{Removed, EXPORTED};
use crate::store::Client;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Seek, Write};
use std::path::PathBuf;

/// The README.txt at the top of an export.
pub const EXPORT_README: &str = "\
coachd export of one client's data

client.json         the client (name, time zone, HR max, birth year) and when this was exported
status.json         every homework occurrence from the first homework's start to today, with its
                    verdict (done, partial, missed, no_data, pending, excused), what was achieved
                    against the target and the evidence; and adherence (the shape of
                    `coachd status --json`)
<table>.json        the client's rows of each table, one JSON object per row, keys as the
                    columns: activities, strength_sets, daily_metrics (one value per day, metric
                    and source), metric_buckets (the timed pieces some sources send), homework
                    (the phrase and its rule), verdicts (cached final verdicts), excuses,
                    checkins (self-reports), answers (to questions homework), reflections
                    (weekly rating and note), benchmarks (tests recorded in sessions), accounts
                    (cloud accounts: provider, state, sync times; never tokens), devices
                    (paired sensors)
activities/<id>.tcx each activity with samples as Garmin Training Center XML (TCX v2): heart rate,
                    cadence, and speed and power in the ActivityExtension v2 TPX element

Conventions: a key ending in _ms is milliseconds since 1970-01-01 UTC, and the same key without
_ms holds that instant in RFC 3339; dates (date, week, from_date, until_date) are the client's
local calendar dates; durations are seconds, distances metres, energy kJ, heart rate bpm.
";

/// What a removal did.
#[derive(Clone, Debug, Serialize)]
pub struct ClientRemoved {
    pub removed: Removed,
    /// The client's folders (inbox, archive, quarantine) deleted.
    pub folders: Vec<PathBuf>,
    /// Folders that could not be deleted, with why.
    pub folder_errors: Vec<String>,
    /// What happened to each cloud authorization, per provider.
    pub authorizations: Vec<String>,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn tcx_sport(activity_type: &str) -> &'static str {
    match crate::activity_types::family(activity_type) {
        "run" => "Running",
        "ride" => "Biking",
        _ => "Other",
    }
}

/// One point of a TCX track.
#[derive(Default)]
struct Point {
    hr: Option<f64>,
    cadence: Option<f64>,
    speed: Option<f64>,
    power: Option<f64>,
}

/// A TCX document of one activity from its stored series.
fn tcx(activity: &Map<String, Value>, series: &[(SeriesKind, Vec<crate::model::Sample>)]) -> String {
    let ms = |k: &str| activity.get(k).and_then(Value::as_i64).unwrap_or(0);
    let time = |t: i64| {
        DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    };
    let mut points: BTreeMap<i64, Point> = BTreeMap::new();
    for (kind, samples) in series {
        for s in samples.iter().filter(|s| s.value.is_finite()) {
            let p = points.entry(s.t_ms).or_default();
            match kind {
                SeriesKind::Hr => p.hr = Some(s.value),
                SeriesKind::Cadence => p.cadence = Some(s.value),
                SeriesKind::Speed => p.speed = Some(s.value),
                SeriesKind::Power => p.power = Some(s.value),
                // TCX has no place for RR intervals, strokes or a bare distance series.
                SeriesKind::Rr | SeriesKind::Distance | SeriesKind::Strokes => {}
            }
        }
    }
    let start = time(ms("start_ms"));
    let ty = activity.get("type").and_then(Value::as_str).unwrap_or_default();
    let duration = activity.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0);
    let distance = activity.get("distance_m").and_then(Value::as_f64).unwrap_or(0.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TrainingCenterDatabase \
         xmlns=\"http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2\" \
         xmlns:ns3=\"http://www.garmin.com/xmlschemas/ActivityExtension/v2\">\n\
         <Activities>\n<Activity Sport=\"{}\">\n<Id>{start}</Id>\n<Lap StartTime=\"{start}\">\n\
         <TotalTimeSeconds>{duration:.1}</TotalTimeSeconds>\n<DistanceMeters>{distance:.1}</DistanceMeters>\n\
         <Calories>0</Calories>\n<Intensity>Active</Intensity>\n<TriggerMethod>Manual</TriggerMethod>\n<Track>\n",
        tcx_sport(ty)
    );
    for (t, p) in &points {
        let _ = write!(out, "<Trackpoint><Time>{}</Time>", time(*t));
        if let Some(hr) = p.hr.filter(|h| (1.0..=255.0).contains(h)) {
            let _ = write!(out, "<HeartRateBpm><Value>{}</Value></HeartRateBpm>", hr.round() as u32);
        }
        if let Some(c) = p.cadence.filter(|c| (0.0..=254.0).contains(c)) {
            let _ = write!(out, "<Cadence>{}</Cadence>", c.round() as u32);
        }
        let speed = p.speed.filter(|s| *s >= 0.0);
        let power = p.power.filter(|w| (0.0..=65535.0).contains(w));
        if speed.is_some() || power.is_some() {
            out.push_str("<Extensions><ns3:TPX>");
            if let Some(s) = speed {
                let _ = write!(out, "<ns3:Speed>{s:.3}</ns3:Speed>");
            }
            if let Some(w) = power {
                let _ = write!(out, "<ns3:Watts>{}</ns3:Watts>", w.round() as u32);
            }
            out.push_str("</ns3:TPX></Extensions>");
        }
        out.push_str("</Trackpoint>\n");
    }
    let _ = write!(
        out,
        "</Track>\n</Lap>\n<Notes>{}</Notes>\n</Activity>\n</Activities>\n</TrainingCenterDatabase>\n",
        xml_escape(&format!("coachd activity #{} ({ty})", ms("id")))
    );
    out
}

impl App {
    /// Write every piece of the client's data to `out` as a zip (see [`EXPORT_README`]).
    /// Returns how many activities went out as TCX.
    pub async fn export_client<W: Write + Seek>(&self, client: &Client, out: W) -> AppResult<usize> {
        use zip::write::SimpleFileOptions;
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true)
            .last_modified_time(super::backup::zip_time(Utc::now()));
        let mut zip = zip::ZipWriter::new(out);
        let put = |zip: &mut zip::ZipWriter<W>, name: &str, bytes: &[u8]| -> AppResult<()> {
            zip.start_file(name, opts).with_context(|| format!("writing {name} into the export"))?;
            zip.write_all(bytes).with_context(|| format!("writing {name} into the export"))?;
            Ok(())
        };
        put(&mut zip, "README.txt", EXPORT_README.as_bytes())?;
        let now = Utc::now();
        let about = serde_json::json!({
            "client": client,
            "exported": now.to_rfc3339(),
            "coachd_version": env!("CARGO_PKG_VERSION"),
        });
        put(&mut zip, "client.json", &json(&about)?)?;
        // Status first: judging fills the verdict cache that verdicts.json lists.
        let homework = self.store.list_homework(Some(client.id)).await?;
        if let Some(first) = homework.iter().map(|h| h.homework.from).min() {
            let today = crate::time::today(client.tz, now);
            if first <= today {
                let report = self.status(std::slice::from_ref(client), first, today, now).await?;
                put(&mut zip, "status.json", &json(&report)?)?;
            }
        }
        for table in EXPORTED.iter().filter(|t| **t != "clients") {
            let rows = self.store.client_rows(client.id, table).await?;
            put(&mut zip, &format!("{table}.json"), &json(&rows)?)?;
        }
        let activities = self.store.client_rows(client.id, "activities").await?;
        let mut written = 0;
        for a in &activities {
            let Some(id) = a.get("id").and_then(Value::as_i64) else { continue };
            let mut series = Vec::new();
            for kind in [SeriesKind::Hr, SeriesKind::Cadence, SeriesKind::Speed, SeriesKind::Power] {
                let samples = self.store.series(id, kind).await?;
                if !samples.is_empty() {
                    series.push((kind, samples));
                }
            }
            if series.is_empty() {
                continue;
            }
            put(&mut zip, &format!("activities/{id}.tcx"), tcx(a, &series).as_bytes())?;
            written += 1;
        }
        let mut inner = zip.finish().context("finishing the export")?;
        inner.flush().context("finishing the export")?;
        Ok(written)
    }

    /// Erase the client: their cloud authorizations ended at the providers (best effort: a
    /// failure is reported, never stops the removal), then every row in one transaction,
    /// then their folders.
    pub async fn remove_client(&self, client: &Client) -> AppResult<ClientRemoved> {
        let accounts: Vec<_> = self.store.accounts().await?.into_iter().filter(|a| a.client_id == client.id).collect();
        // Ended at the providers first, while the tokens are still there; whatever a
        // provider answers, the removal goes on (its tokens go with the rows).
        let mut authorizations = Vec::new();
        for a in &accounts {
            let (_, note) = self.revoke_at_provider(a).await;
            tracing::info!(client = %client.name, provider = %a.provider, %note, "authorization of a removed client");
            authorizations.push(format!("{}: {note}; its tokens are deleted", a.provider));
        }
        let removed = self.store.remove_client(client.id).await?;
        let mut done = ClientRemoved { removed, folders: Vec::new(), folder_errors: Vec::new(), authorizations };
        // The name was checked when the client was added (no '/', not starting with '.'),
        // so each folder is directly under its parent; checked again before deleting.
        let safe = !client.name.is_empty() && !client.name.contains('/') && !client.name.starts_with('.');
        if let (Some(files), true) = (&self.files, safe) {
            for dir in files.data.client_folders(&client.name) {
                if !dir.exists() {
                    continue;
                }
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => done.folders.push(dir),
                    Err(e) => {
                        tracing::warn!(folder = %dir.display(), error = %e, "removing a client's folder failed");
                        done.folder_errors.push(format!("{}: {e}", dir.display()));
                    }
                }
            }
        }
        tracing::info!(client = %client.name, rows = done.removed.total(), "client removed");
        Ok(done)
    }
}

/// Pretty JSON for the export's files.
fn json<T: Serialize>(value: &T) -> AppResult<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| AppError::Runtime(e.into()))
}
