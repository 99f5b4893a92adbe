//! `coachd devices`: find Bluetooth sensors nearby, bind them to clients, list bindings.

use super::Failure;
use crate::config::Config;
use crate::store::Store;
use chrono::{DateTime, Local};

#[derive(Debug, clap::Subcommand)]
pub enum DevicesCommand {
    /// List fitness sensors nearby (address, name, services, signal) through BlueZ
    Scan {
        /// How long to listen, in seconds
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        seconds: u64,
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
    /// Known sensors: bindings and when each was last seen
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

pub async fn devices(store: &Store, config: &Config, cmd: DevicesCommand) -> Result<(), Failure> {
    match cmd {
        DevicesCommand::Scan { seconds, json } => scan(store, config, seconds, json).await,
        DevicesCommand::Pair { address, client } => {
            let client = store.client_by_name(&client).await?;
            let d = store.pair_device(&address, client.id).await?;
            let name = d.name.map(|n| format!(" ({n})")).unwrap_or_default();
            println!("paired {}{name} with {}; a running daemon picks it up within seconds", d.address, client.name);
            if !config.ble.enabled {
                println!("note: [ble] enabled = false, so nothing is recorded until it is turned on");
            }
            Ok(())
        }
        DevicesCommand::Unpair { address } => {
            store.unpair_device(&address).await?;
            println!("unpaired {}; its recordings are kept", address.trim().to_ascii_uppercase());
            Ok(())
        }
        DevicesCommand::List { json } => {
            let devices = store.devices().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices).map_err(anyhow::Error::new)?);
            } else if devices.is_empty() {
                println!("no devices yet; find sensors with `coachd devices scan`");
            } else {
                println!(
                    "{:<18} {:<20} {:<28} {:<14} {:<16} {:<16}",
                    "ADDRESS", "NAME", "SERVICES", "CLIENT", "PAIRED", "LAST SEEN"
                );
                for d in devices {
                    println!(
                        "{:<18} {:<20} {:<28} {:<14} {:<16} {:<16}",
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

#[cfg(feature = "ble")]
async fn scan(store: &Store, config: &Config, seconds: u64, json: bool) -> Result<(), Failure> {
    let seen =
        crate::ble::collector::scan(&config.ble.adapter, std::time::Duration::from_secs(seconds)).await.map_err(
            |e| Failure::Runtime(e.context("Bluetooth scan failed (is bluetoothd running, and may this user use it?)")),
        )?;
    for s in &seen {
        store.device_seen(&s.address, s.name.as_deref(), &s.services.join(",")).await?;
    }
    let paired = store.devices().await?;
    let client_of = |a: &str| paired.iter().find(|d| d.address.eq_ignore_ascii_case(a)).and_then(|d| d.client.clone());
    if json {
        let rows: Vec<_> = seen
            .iter()
            .map(|s| serde_json::json!({"address": s.address, "name": s.name, "services": s.services, "rssi": s.rssi, "client": client_of(&s.address)}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::new)?);
    } else if seen.is_empty() {
        println!("no fitness sensors heard in {seconds} s; wake the sensor (wear the strap, pedal, start the belt) and scan again");
    } else {
        println!("{:<18} {:<22} {:<30} {:>5}  CLIENT", "ADDRESS", "NAME", "SERVICES", "RSSI");
        for s in &seen {
            println!(
                "{:<18} {:<22} {:<30} {:>5}  {}",
                s.address,
                s.name.as_deref().unwrap_or("-"),
                s.services.join(","),
                s.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                client_of(&s.address).unwrap_or_else(|| "(not paired)".into())
            );
        }
        println!("pair one with `coachd devices pair ADDRESS CLIENT`");
    }
    Ok(())
}

#[cfg(not(feature = "ble"))]
async fn scan(_: &Store, _: &Config, _: u64, _: bool) -> Result<(), Failure> {
    Err(Failure::Runtime(anyhow::anyhow!("this coachd was built without Bluetooth support (cargo feature `ble`)")))
}
