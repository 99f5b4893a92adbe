//! `coachd chart` and `coachd demo`.

use super::homework::parse_date;
use super::Failure;
use crate::charts::data::{build, Judging, Request};
use crate::charts::{self, Format, Kind};
use crate::config::Config;
use crate::status::client_tz;
use crate::store::Store;
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

pub fn judging(config: &Config) -> Judging {
    Judging { cfg: config.homework.judge_config(), attention_drop: config.homework.attention_drop_points / 100.0 }
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

pub async fn chart(store: &Store, config: &Config, args: ChartArgs) -> Result<(), Failure> {
    let format = format_of(&args.out)?;
    let clients = store.list_clients().await?;
    let client = match (&args.client, args.kind.per_client()) {
        (Some(name), _) => Some(store.client_by_name(name).await?),
        (None, false) => None,
        (None, true) => {
            return Err(Failure::Input(format!(
                "the {} chart is about one client: coachd chart {} CLIENT --out FILE",
                args.kind.as_str(),
                args.kind.as_str()
            )))
        }
    };
    if args.activity.is_some() && args.kind != Kind::Session {
        return Err(Failure::Input("--activity belongs to the session chart".into()));
    }
    let tz = match &client {
        Some(c) => client_tz(c)?,
        None => chrono_tz::UTC,
    };
    let from = args.from.as_deref().map(|s| parse_date(s, tz, "--from")).transpose()?;
    let to = args.to.as_deref().map(|s| parse_date(s, tz, "--to")).transpose()?;
    // The roster is about every client; a named client narrows it to that one.
    let roster_clients: Vec<_> = match (&client, args.kind) {
        (Some(c), Kind::Roster) => vec![c.clone()],
        _ => clients,
    };
    let req = Request {
        kind: args.kind,
        client: client.as_ref(),
        clients: &roster_clients,
        from,
        to,
        activity: args.activity,
        now: Utc::now(),
    };
    let chart = build(store, &judging(config), &req).await?;
    let bytes = charts::render(&chart, format)?;
    write_file(&args.out, &bytes)?;
    println!("wrote {} ({}, {} bytes)", args.out.display(), chart.title, bytes.len());
    Ok(())
}

pub async fn demo(store: &Store, config: &Config, now: Option<&str>, gallery: Option<&Path>) -> Result<(), Failure> {
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
    if crate::demo::present(store).await? && gallery.is_some() {
        println!("demo data present; drawing the gallery from it");
    } else {
        let r = crate::demo::create(store, now).await?;
        println!(
            "demo: {} clients, {} homework, {} activity records ({} HR samples), {} check-ins, {} excused days",
            r.clients, r.homework, r.activities, r.samples, r.checkins, r.excused
        );
        if let Some(password) = crate::demo::trainer(store).await? {
            println!(
                "dashboard login: coach / {password}  (at {}/login while `coachd run` runs)",
                config.web.base_url()
            );
        }
        println!("see it with: coachd status  ·  coachd chart roster --out roster.svg  ·  coachd run");
    }
    if let Some(dir) = gallery {
        for (stem, chart) in charts::gallery(store, &judging(config), now).await? {
            for (ext, format) in [("svg", Format::Svg), ("png", Format::Png)] {
                let path = dir.join(format!("{stem}.{ext}"));
                write_file(&path, &charts::render(&chart, format)?)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
