//! `coachd chart` and `coachd demo`.

use super::homework::day;
use super::Failure;
use crate::app::App;
use crate::charts::{self, Format, Kind};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

pub struct ChartArgs {
    pub kind: Kind,
    pub client: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub activity: Option<i64>,
    pub out: PathBuf,
}

fn format_of(path: &Path) -> Result<Format, Failure> {
    Format::from_path(path)
        .ok_or_else(|| Failure::Input(format!("--out {}: name the file .svg or .png", path.display())))
}

/// Write through a temporary file and a rename, so a reader never sees half a picture.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or_default()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}

pub async fn chart(app: &App, args: ChartArgs) -> Result<(), Failure> {
    let format = format_of(&args.out)?;
    let client = match &args.client {
        Some(name) => Some(app.client(name).await?),
        None => None,
    };
    let (from, to) = match &client {
        Some(c) => (day(args.from.as_deref(), c, "the first day")?, day(args.to.as_deref(), c, "the last day")?),
        None => {
            let utc = |s: Option<&str>, what: &str| {
                s.map(|s| crate::time::parse_day(s, chrono_tz::UTC, Utc::now(), what))
                    .transpose()
                    .map_err(Failure::Input)
            };
            (utc(args.from.as_deref(), "the first day")?, utc(args.to.as_deref(), "the last day")?)
        }
    };
    // The roster is about every client; a named client narrows it to that one.
    let roster_clients: Vec<_> = match (&client, args.kind) {
        (Some(c), Kind::Roster) => vec![c.clone()],
        _ => app.clients().await?,
    };
    let chart = app.chart(args.kind, client.as_ref(), &roster_clients, (from, to), args.activity).await?;
    let bytes = charts::render(&chart, format)?;
    write_file(&args.out, &bytes)?;
    println!("wrote {} ({}, {} bytes)", args.out.display(), chart.title, bytes.len());
    Ok(())
}

pub async fn demo(app: &App, now: Option<&str>, gallery: Option<&Path>) -> Result<(), Failure> {
    let now = match now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| Failure::Input(format!("--now {s:?} is not an RFC 3339 time (2026-11-20T19:00:00Z): {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    if let Some(dir) = gallery {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    if app.demo_present().await? && gallery.is_some() {
        println!("demo data present; drawing the gallery from it");
    } else {
        let r = app.create_demo(now).await?;
        println!(
            "demo: {} clients, {} homework, {} activity records ({} HR samples), {} check-ins, {} excused days, {} benchmarks",
            r.clients, r.homework, r.activities, r.samples, r.checkins, r.excused, r.benchmarks
        );
        if let Some(password) = app.demo_trainer().await? {
            println!("dashboard login: coach / {password}  (at {}/login while `coachd run` runs)", app.base_url());
        }
        println!("see it with: coachd status  ·  coachd chart roster --out roster.svg  ·  coachd run");
    }
    if let Some(dir) = gallery {
        for (stem, chart) in app.gallery(now).await? {
            for (ext, format) in [("svg", Format::Svg), ("png", Format::Png)] {
                let path = dir.join(format!("{stem}.{ext}"));
                write_file(&path, &charts::render(&chart, format)?)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
