//! `coachd connect`, `coachd accounts list`, `coachd sync`.

use super::Failure;
use crate::config::Config;
use crate::providers::clock::SystemClock;
use crate::providers::ratelimit::Headroom;
use crate::providers::sync::sync_all;
use crate::providers::{intervals, oauth, Registry};
use crate::store::Store;
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;

fn registry(config: &Config) -> Result<Registry, Failure> {
    Registry::new(config, Arc::new(SystemClock)).map_err(Failure::Input)
}

fn known(provider: &str) -> Result<(), Failure> {
    if crate::providers::names().any(|n| n == provider) {
        Ok(())
    } else {
        let all: Vec<_> = crate::providers::names().collect();
        Err(Failure::Input(format!("no provider {provider:?}; coachd knows {}", all.join(", "))))
    }
}

pub async fn connect(
    store: &Store,
    config: &Config,
    provider: &str,
    client: &str,
    api_key: Option<&str>,
) -> Result<(), Failure> {
    let provider = provider.trim().to_ascii_lowercase();
    known(&provider)?;
    let client = store.client_by_name(client).await?;
    let reg = registry(config)?;
    match (provider.as_str(), api_key) {
        ("intervals", Some(key)) => {
            let athlete = intervals::connect(&reg, store, client.id, key).await.map_err(Failure::Input)?;
            println!(
                "connected intervals.icu athlete {athlete} to {}; the daemon syncs it within a minute",
                client.name
            );
            println!("note: activities that reached intervals.icu from Strava are not readable through its API");
            Ok(())
        }
        ("intervals", None) => Err(Failure::Input(
            "intervals.icu uses the client's own API key (intervals.icu → Settings → Developer Settings): \
             coachd connect intervals CLIENT --api-key KEY"
                .into(),
        )),
        (_, Some(_)) => Err(Failure::Input(format!("{provider} connects through its own login, not --api-key"))),
        (_, None) => {
            let url = oauth::authorization_link(&reg, store, &provider, client.id).await.map_err(Failure::Input)?;
            println!("{url}");
            eprintln!(
                "Send this link to {} (valid {} minutes, once). After they allow access, their browser comes back to \
                 {}, which must reach this server.",
                client.name,
                oauth::LINK_TTL.num_minutes(),
                reg.redirect_uri(&provider)
            );
            Ok(())
        }
    }
}

#[derive(serde::Deserialize)]
struct Saved {
    windows: Vec<Headroom>,
}

#[derive(Serialize)]
struct AccountJson {
    client: String,
    provider: String,
    state: String,
    reason: Option<String>,
    last_sync: Option<chrono::DateTime<Utc>>,
    next_sync: Option<chrono::DateTime<Utc>>,
    headroom: Vec<Headroom>,
}

pub async fn list(store: &Store, config: &Config, json: bool) -> Result<(), Failure> {
    let reg = registry(config)?;
    let mut rows = Vec::new();
    for a in store.accounts().await? {
        let next = a.syncable().then(|| a.last_sync.map_or(Utc::now(), |t| t + reg.sync_interval));
        // As the last sync (daemon or CLI) left it; windows that have reset since are full again.
        let now = Utc::now();
        let headroom: Vec<Headroom> = store
            .headroom(&a.provider)
            .await?
            .and_then(|j| serde_json::from_str::<Saved>(&j).ok())
            .map(|s| {
                s.windows.into_iter().map(|w| if w.resets <= now { Headroom { used: 0, ..w } } else { w }).collect()
            })
            .unwrap_or_else(|| match reg.api(&a.provider) {
                Ok(api) => api
                    .manifest
                    .rate_limits
                    .iter()
                    .map(|w| Headroom { window: w.name.clone(), used: 0, limit: w.limit, resets: now })
                    .collect(),
                Err(_) => Vec::new(),
            });
        rows.push(AccountJson {
            client: a.client,
            provider: a.provider,
            state: a.state,
            reason: a.last_error,
            last_sync: a.last_sync,
            next_sync: next,
            headroom,
        });
    }
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
        "CLIENT", "PROVIDER", "STATE", "LAST SYNC", "NEXT SYNC"
    );
    let when = |t: Option<chrono::DateTime<Utc>>| t.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string());
    for r in rows {
        let room: Vec<String> =
            r.headroom.iter().map(|h| format!("{} {}/{}", h.window, h.limit.saturating_sub(h.used), h.limit)).collect();
        println!(
            "{:<16} {:<10} {:<19} {:<17} {:<17} {}",
            r.client,
            r.provider,
            r.state,
            when(r.last_sync),
            if r.next_sync.is_some() { when(r.next_sync) } else { "-".into() },
            room.join(", ")
        );
        if let Some(reason) = r.reason {
            println!("    {reason}");
        }
    }
    Ok(())
}

pub async fn sync(store: &Store, config: &Config, client: Option<&str>, provider: Option<&str>) -> Result<(), Failure> {
    if let Some(p) = provider {
        known(p)?;
    }
    let client = match client {
        Some(name) => Some(store.client_by_name(name).await?.id),
        None => None,
    };
    let accounts: Vec<_> = store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| client.is_none_or(|c| a.client_id == c) && provider.is_none_or(|p| a.provider == p))
        .collect();
    if accounts.is_empty() {
        return Err(Failure::Input("no matching accounts; see `coachd accounts list`".into()));
    }
    let reg = registry(config)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut failed = 0;
    for (a, r) in sync_all(&reg, store, &accounts, &stop).await {
        if !a.syncable() {
            println!("{:<16} {:<10} skipped: {} ({})", a.client, a.provider, a.state, a.last_error.unwrap_or_default());
            continue;
        }
        match r {
            Ok(r) => println!(
                "{:<16} {:<10} {} listed, {} new, {} updated, {} deleted, {} unchanged; {} requests",
                a.client, a.provider, r.listed, r.inserted, r.updated, r.deleted, r.unchanged, r.requests
            ),
            Err(e) => {
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

pub async fn subscribe(store: &Store, config: &Config, provider: &str) -> Result<(), Failure> {
    if provider != "strava" {
        return Err(Failure::Input(format!(
            "push subscriptions are made here for strava only; {provider} webhooks are set up at the provider"
        )));
    }
    let reg = registry(config)?;
    let configured = config.providers.strava.webhook_verify_token.expose().clone();
    let token =
        if configured.is_empty() { store.meta_secret("strava_webhook_verify_token").await? } else { configured };
    let id = crate::providers::strava::subscribe(&reg, &token).await.map_err(Failure::Input)?;
    println!("Strava push subscription {id}: events arrive at {}/webhooks/strava", reg.base_url);
    Ok(())
}
