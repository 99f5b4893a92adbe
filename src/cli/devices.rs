//! `coachd devices`: find Bluetooth sensors nearby, bind them to clients, list bindings.

use super::Failure;
use crate::app::App;
use chrono::{DateTime, Local};

#[derive(Debug, clap::Subcommand)]
pub enum DevicesCommand {
    /// List fitness sensors nearby (address, name, services, signal) through BlueZ, on
    /// this machine or at a remote collector
    Scan {
        /// How long to listen, in seconds
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        seconds: u64,
        /// Ask this remote collector (from `coachd collector list`) to scan on its adapter
        /// instead; it picks the request up at its next report (every `collector.report_s`
        /// there, 10 s by default)
        #[arg(long, value_name = "NAME")]
        collector: Option<String>,
        /// With --collector: how long to wait for its answer, in seconds (default: the
        /// scan's length plus 60)
        #[arg(long, value_name = "S", requires = "collector", value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Bind a sensor to a client: from now on the running daemon records it for them
    Pair {
        /// Bluetooth address, e.g. C0:FF:EE:12:34:56 (from `devices scan`)
        address: String,
        client: String,
    },
    /// Stop recording a sensor; what it recorded stays
    Unpair { address: String },
    /// Known sensors: bindings, when each was last seen, and the running daemon's link
    /// to it (connected, or waiting and why)
    List {
        #[arg(long)]
        json: bool,
    },
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn devices(app: &App, cmd: DevicesCommand) -> Result<(), Failure> {
    match cmd {
        DevicesCommand::Scan { seconds, collector, wait, json } => scan(app, seconds, collector, wait, json).await,
        DevicesCommand::Pair { address, client } => {
            let client = app.client(&client).await?;
            let d = app.pair_device(&address, &client, None).await?;
            let name = d.name.map(|n| format!(" ({n})")).unwrap_or_default();
            println!("paired {}{name} with {}; a running daemon picks it up within seconds", d.address, client.name);
            if !app.config.ble.enabled {
                println!("note: [ble] enabled = false, so nothing is recorded until it is turned on");
            }
            Ok(())
        }
        DevicesCommand::Unpair { address } => {
            let address = app.unpair_device(&address).await?;
            println!("unpaired {address}; its recordings are kept");
            Ok(())
        }
        DevicesCommand::List { json } => {
            let devices = app.devices().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices).map_err(anyhow::Error::new)?);
            } else if devices.is_empty() {
                println!("no devices yet; find sensors with `coachd devices scan`");
            } else {
                println!(
                    "{:<18} {:<20} {:<28} {:<14} {:<16} {:<16} LINK",
                    "ADDRESS", "NAME", "SERVICES", "CLIENT", "PAIRED", "LAST SEEN"
                );
                for d in devices {
                    // What the running daemon says: connected, or waiting and why.
                    let link = match (d.link.as_deref(), d.link_note.as_deref()) {
                        (Some(link), Some(why)) => format!("{link}: {why}"),
                        (Some(link), None) => link.to_string(),
                        (None, _) => "-".into(),
                    };
                    println!(
                        "{:<18} {:<20} {:<28} {:<14} {:<16} {:<16} {link}",
                        d.address,
                        d.name.as_deref().unwrap_or("-"),
                        if d.services.is_empty() { "-" } else { &d.services },
                        d.client.as_deref().unwrap_or("(not paired)"),
                        when(d.paired_ms),
                        when(d.last_seen_ms)
                    );
                }
            }
            Ok(())
        }
    }
}

async fn scan(
    app: &App,
    seconds: u64,
    collector: Option<String>,
    wait: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let listen = std::time::Duration::from_secs(seconds);
    let seen = match &collector {
        Some(name) => {
            let wait = std::time::Duration::from_secs(wait.unwrap_or(seconds + 60));
            if !json {
                eprintln!("asked collector {name} to scan for {seconds} s; waiting for its answer");
            }
            app.scan_at_collector(name, listen, wait).await?
        }
        None => app.scan_devices(listen).await?,
    };
    let at = collector.as_deref().map(|c| format!(" at collector {c}")).unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&seen).map_err(anyhow::Error::new)?);
    } else if seen.is_empty() {
        println!("no fitness sensors heard{at} in {seconds} s; wake the sensor (wear the strap, pedal, start the belt) and scan again");
    } else {
        let by = if collector.is_some() { "  COLLECTOR" } else { "" };
        let head = format!("{:<18} {:<22} {:<30} {:>5}  {:<14}{by}", "ADDRESS", "NAME", "SERVICES", "RSSI", "CLIENT");
        println!("{}", head.trim_end());
        for s in &seen {
            let by = s.collector.as_deref().map(|c| format!("  {c}")).unwrap_or_default();
            let line = format!(
                "{:<18} {:<22} {:<30} {:>5}  {:<14}{by}",
                s.address,
                s.name.as_deref().unwrap_or("-"),
                s.services.join(","),
                s.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                s.client.clone().unwrap_or_else(|| "(not paired)".into())
            );
            println!("{}", line.trim_end());
        }
        println!("pair one with `coachd devices pair ADDRESS CLIENT`");
    }
    Ok(())
}
