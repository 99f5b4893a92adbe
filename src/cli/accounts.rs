//! `coachd connect`, `coachd accounts list`, `coachd sync`, `coachd subscribe`.

use super::Failure;
use crate::app::{App, Connected};
use chrono::Utc;

pub async fn connect(app: &App, provider: &str, client: &str, api_key: Option<&str>) -> Result<(), Failure> {
    let client = app.client(client).await?;
    match app.connect(provider, &client, api_key).await? {
        Connected::Athlete { provider, athlete, note } => {
            println!("connected {provider} athlete {athlete} to {}; the daemon syncs it within a minute", client.name);
            if !note.is_empty() {
                println!("note: {note}");
            }
        }
        Connected::Link { url, valid_minutes, redirect_uri } => {
            println!("{url}");
            eprintln!(
                "Send this link to {} (valid {valid_minutes} minutes, once). After they allow access, their browser \
                 comes back to {redirect_uri}, which must reach this server.",
                client.name,
            );
            if let Some(w) = app.link_warning() {
                eprintln!("note: {w}");
            }
        }
    }
    Ok(())
}

pub async fn disconnect(app: &App, provider: &str, client: &str) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let done = app.disconnect(&client, provider, "the trainer (command line)").await?;
    println!(
        "disconnected {}'s {} account: coachd no longer syncs it and its tokens are deleted; the data stays",
        client.name, done.provider
    );
    println!("at {}: {}", done.provider, done.note);
    Ok(())
}

pub async fn list(app: &App, json: bool) -> Result<(), Failure> {
    let rows = app.accounts(None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::new)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no accounts yet; connect one with `coachd connect strava CLIENT`");
        return Ok(());
    }
    println!(
        "{:<16} {:<10} {:<19} {:<17} {:<17} RATE-LIMIT HEADROOM (app-wide, as of the last sync)",
        "CLIENT", "PROVIDER", "STATE", "LAST SUCCESS", "NEXT SYNC"
    );
    let when = |t: Option<chrono::DateTime<Utc>>| t.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string());
    for r in rows {
        let room: Vec<String> =
            r.headroom.iter().map(|h| format!("{} {}/{}", h.window, h.limit.saturating_sub(h.used), h.limit)).collect();
        println!(
            "{:<16} {:<10} {:<19} {:<17} {:<17} {}",
            r.client,
            r.provider,
            if r.failing { format!("{} (failing)", r.state) } else { r.state.clone() },
            when(r.last_sync),
            if r.next_sync.is_some() { when(r.next_sync) } else { "-".into() },
            room.join(", ")
        );
        match (&r.reason, r.failing) {
            (Some(reason), true) => println!(
                "    the sync at {} failed: {reason} (last success: {})",
                when(r.last_error_at),
                when(r.last_sync)
            ),
            (Some(reason), false) => println!("    {reason}"),
            (None, _) => {}
        }
        if !r.skipped.is_empty() {
            println!("    {} item(s) left out at the last sync:", r.skipped.len());
            for why in r.skipped.iter().take(5) {
                println!("      {why}");
            }
        }
    }
    Ok(())
}

pub async fn sync(app: &App, client: Option<&str>, provider: Option<&str>) -> Result<(), Failure> {
    let client = match client {
        Some(name) => Some(app.client(name).await?),
        None => None,
    };
    let mut failed = 0;
    for line in app.sync_now(client.as_ref(), provider).await? {
        let a = line.account;
        match line.result {
            None => {
                println!(
                    "{:<16} {:<10} skipped: {} ({})",
                    a.client,
                    a.provider,
                    a.state,
                    a.last_error.unwrap_or_default()
                )
            }
            Some(Ok(r)) => {
                println!(
                    "{:<16} {:<10} {} listed, {} new, {} updated, {} deleted, {} unchanged, {} skipped; {} requests",
                    a.client,
                    a.provider,
                    r.listed,
                    r.inserted,
                    r.updated,
                    r.deleted,
                    r.unchanged,
                    r.skipped.len(),
                    r.requests
                );
                for why in &r.skipped {
                    println!("    skipped {why}");
                }
                if r.samples_pending > 0 {
                    println!("    {} activities stored without their heart rate (the provider kept failing); asked again next sync", r.samples_pending);
                }
            }
            Some(Err(e)) => {
                failed += 1;
                println!("{:<16} {:<10} failed: {e}", a.client, a.provider);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Runtime(anyhow::anyhow!("{failed} account(s) failed to sync")));
    }
    Ok(())
}

pub async fn subscribe(app: &App, provider: &str) -> Result<(), Failure> {
    println!("{}", app.subscribe(provider).await?);
    Ok(())
}
