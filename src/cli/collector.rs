//! `coachd collector`: register, list and remove remote Bluetooth collectors at the hub.

use super::Failure;
use crate::app::App;

#[derive(Debug, clap::Subcommand)]
pub enum CollectorCommand {
    /// Register a collector (a box running `coachd collect`); prints its token once, which the box keeps in its token file
    Add {
        /// What you call the box, e.g. studio-east
        name: String,
        /// Bind it to this trainer (their login): its pairing list holds only their clients' devices, and the hub refuses its sessions and files for anyone else. Without it the collector is studio-wide
        #[arg(long, value_name = "LOGIN")]
        trainer: Option<String>,
    },
    /// Each collector: its scope (a trainer or studio-wide), last contact, backlog in its outbox, adapter state, sensors in range, files from its inbox, the last refusal
    List {
        /// Print JSON instead of one block per collector
        #[arg(long)]
        json: bool,
    },
    /// Remove a collector: its token is refused from now on; what it forwarded is kept
    Remove { name: String },
}

fn age(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "never".into(), |s| format!("{} ago", crate::app::collectors::ago(s)))
}

pub async fn collector(app: &App, cmd: CollectorCommand) -> Result<(), Failure> {
    match cmd {
        CollectorCommand::Add { name, trainer } => {
            let added = app.add_collector(&name, trainer.as_deref()).await?;
            let scope = match &added.trainer {
                Some(login) => format!("for trainer {login}'s clients only"),
                None => "studio-wide".into(),
            };
            println!(
                "collector {} registered ({scope}). Its token (shown only now; the hub keeps only its hash):",
                added.name
            );
            println!();
            println!("{}", added.token.expose());
            println!();
            println!("On the collector, put it in a file only coachd can read, and start collector mode:");
            println!("  install -m 600 /dev/stdin /etc/coachd/collector.token   # paste the token, then Ctrl-D");
            println!("  coachd collect --hub {} --token-file /etc/coachd/collector.token", hub_hint(app));
            Ok(())
        }
        CollectorCommand::List { json } => {
            let all = app.collectors().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).map_err(anyhow::Error::new)?);
                return Ok(());
            }
            if all.is_empty() {
                println!("no collectors; register one with: coachd collector add NAME");
            }
            for c in all {
                println!("{}  [{}]", c.name, c.state);
                let scope = match &c.trainer {
                    Some(t) => format!("trainer {t}'s clients only"),
                    None => "studio-wide (every device paired at the hub)".into(),
                };
                println!("  scope         {scope}");
                println!("  last contact  {}", age(c.last_contact_age_s));
                let backlog = match (c.backlog_batches, c.backlog_bytes) {
                    (Some(b), Some(bytes)) => format!("{b} batch(es), {bytes} bytes waiting in its outbox"),
                    _ => "not reported yet".into(),
                };
                println!(
                    "  backlog       {backlog}{}",
                    if c.outbox_full { "; OUTBOX FULL: new sessions are not being stored" } else { "" }
                );
                if c.not_stored > 0 {
                    println!("  not stored    {} batch(es) could not be stored (outbox full)", c.not_stored);
                }
                println!(
                    "  forwarded     {} batch(es), {} samples; cursor {}",
                    c.applied_batches, c.applied_samples, c.last_seq
                );
                println!("  adapter       {}", c.adapter.as_deref().unwrap_or("not reported yet"));
                if c.in_range.is_empty() {
                    println!("  in range      none");
                }
                for s in &c.in_range {
                    let name = s.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                    let note = s.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                    println!("  in range      {}{name} {}{note}", s.address, s.link);
                }
                if c.files_imported > 0 || c.files_quarantined > 0 {
                    println!(
                        "  inbox files   {} imported, {} quarantined at the hub",
                        c.files_imported, c.files_quarantined
                    );
                }
                if let Some(q) = &c.quarantined {
                    println!("  quarantined   {q}");
                }
                if let (Some(why), Some(at)) = (&c.refused, c.refused_at) {
                    println!("  last refused  {} — {why}", at.format("%Y-%m-%d %H:%M:%S UTC"));
                }
            }
            Ok(())
        }
        CollectorCommand::Remove { name } => {
            app.remove_collector(&name).await?;
            println!(
                "collector {} removed; its token is refused from now on, and what it forwarded is kept",
                name.trim()
            );
            Ok(())
        }
    }
}

fn hub_hint(app: &App) -> String {
    let url = &app.config.web.public_url;
    if url.is_empty() {
        "https://YOUR-HUB".into()
    } else {
        url.trim_end_matches('/').to_string()
    }
}
