//! `coachd notify set|test|remove|list|times|schedule|digest|outbox`.

use super::Failure;
use crate::app::{App, NotifyTarget};
use clap::Subcommand;

pub const NOTIFY_HELP: &str = "\
Channel URLs (quote them in the shell):
  ntfy://HOST/TOPIC?token=tk_...              ntfy (https; ntfy+http:// for plain HTTP)
  gotify://HOST[/PATH]?token=APPTOKEN          Gotify (https; gotify+http:// for plain HTTP)
  smtp://USER:PASS@HOST:587?to=ADDR&from=ADDR  e-mail with STARTTLS (tls=tls for port 465,
                                               tls=none only to a server on this machine)
The URL is stored sealed with the data dir's key; lists show it without its secrets.

Examples:
  coachd notify set alex 'ntfy://ntfy.sh/alex-8f3k2?token=tk_abc'
  coachd notify set --trainer sam 'smtp://sam%40example.org:PASSWORD@mail.example.org?to=sam@example.org'
  coachd notify test alex";

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Set the channel of a client (nudges) or, with --trainer, of a trainer
    Set {
        /// CLIENT URL, or URL alone with --trainer
        #[arg(num_args = 1..=2, required = true, value_names = ["CLIENT", "URL"])]
        args: Vec<String>,
        /// The dashboard trainer whose channel this is
        #[arg(long, value_name = "NAME")]
        trainer: Option<String>,
    },
    /// Send a test message now and show whether it went through
    Test {
        #[arg(required_unless_present = "trainer")]
        client: Option<String>,
        #[arg(long, value_name = "NAME", conflicts_with = "client")]
        trainer: Option<String>,
    },
    /// Remove a channel (no more messages to them)
    Remove {
        #[arg(required_unless_present = "trainer")]
        client: Option<String>,
        #[arg(long, value_name = "NAME", conflicts_with = "client")]
        trainer: Option<String>,
    },
    /// Every channel: whose, what (without secrets), whether it works
    List {
        #[arg(long)]
        json: bool,
    },
    /// A trainer's weekly digest: print it (text), write its HTML, or send it now
    Digest {
        #[arg(long, value_name = "NAME")]
        trainer: String,
        /// Any day of the week it is about [default: last week]
        #[arg(long, value_name = "DATE")]
        week: Option<String>,
        /// Also write the HTML part (the chart as roster.png beside it) to FILE
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
        /// Send it through the trainer's channel now (once per week)
        #[arg(long)]
        send: bool,
    },
    /// A client's own reminder times, over the [notify] defaults (without options: show them)
    Times {
        client: String,
        /// When a whole-day or weekly homework's reminder is due, HH:MM on the client's clock
        #[arg(long, value_name = "HH:MM")]
        at: Option<String>,
        /// Minutes before a windowed homework's window ends (0-720), e.g. a nightly one's
        #[arg(long, value_name = "MIN")]
        lead: Option<String>,
        /// Back to the [notify] defaults
        #[arg(long, conflicts_with_all = ["at", "lead"])]
        default: bool,
    },
    /// When a client's reminders are due over a week, on their clock (nothing is sent)
    Schedule {
        client: String,
        /// Any day of the week [default: this week]
        #[arg(long, value_name = "DATE")]
        week: Option<String>,
    },
    /// What was sent to a client, when, and how it went (newest first)
    Outbox {
        client: String,
        #[arg(long)]
        json: bool,
    },
}

async fn target(app: &App, client: Option<&str>, trainer: Option<&str>) -> Result<NotifyTarget, Failure> {
    Ok(match (client, trainer) {
        (_, Some(t)) => NotifyTarget::Trainer(app.trainer_named(t).await?),
        (Some(c), None) => NotifyTarget::Client(app.client(c).await?),
        (None, None) => return Err(Failure::Input("name a client, or a trainer with --trainer NAME".into())),
    })
}

pub async fn notify(app: &App, cmd: NotifyCommand) -> Result<(), Failure> {
    let now = chrono::Utc::now();
    match cmd {
        NotifyCommand::Set { args, trainer } => {
            let (client, url) = match (args.as_slice(), &trainer) {
                ([url], Some(_)) => (None, url),
                ([client, url], None) => (Some(client.as_str()), url),
                ([_, _], Some(_)) => {
                    return Err(Failure::Input("with --trainer NAME give only the URL, not a client".into()))
                }
                _ => return Err(Failure::Input("give CLIENT URL, or --trainer NAME URL".into())),
            };
            let to = target(app, client, trainer.as_deref()).await?;
            let shown = app.set_channel(&to, url).await?;
            println!("{}: {shown}", to.name());
            println!("send a test message with `coachd notify test {}`", test_args(&to));
            if let (NotifyTarget::Client(_), Some(w)) = (&to, app.link_warning()) {
                println!("warning: {w}");
            }
            Ok(())
        }
        NotifyCommand::Test { client, trainer } => {
            let to = target(app, client.as_deref(), trainer.as_deref()).await?;
            match app.test_channel(&to, now).await? {
                Ok(shown) => {
                    println!("sent a test message to {} ({shown})", to.name());
                    Ok(())
                }
                Err(e) => Err(Failure::Runtime(anyhow::anyhow!("the test message to {} failed: {e}", to.name()))),
            }
        }
        NotifyCommand::Remove { client, trainer } => {
            let to = target(app, client.as_deref(), trainer.as_deref()).await?;
            if app.remove_channel(&to).await? {
                println!("removed the channel of {}", to.name());
            } else {
                println!("{} had no channel", to.name());
            }
            Ok(())
        }
        NotifyCommand::Times { client, at, lead, default } => {
            let c = app.client(&client).await?;
            let s = if at.is_none() && lead.is_none() && !default {
                app.nudge_settings_for(&c).await?
            } else {
                app.set_nudge_times(&c, at.as_deref(), lead.as_deref(), default).await?
            };
            println!(
                "{}: whole-day and weekly homework at {}; windowed homework {} min before the window ends",
                c.name,
                s.daily_at.format("%H:%M"),
                s.lead.num_minutes()
            );
            println!("see the week with `coachd notify schedule {}`", c.name);
            Ok(())
        }
        NotifyCommand::List { json } => {
            let rows = app.channel_statuses().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::new)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no channels yet; set one with `coachd notify set CLIENT URL`");
            }
            for r in rows {
                let state = match (&r.state[..], &r.last_error) {
                    ("failing", Some(e)) => format!("FAILING: {e}"),
                    (s, _) => s.to_string(),
                };
                println!("{:<8} {:<20} {:<8} {}  [{state}]", r.owner_kind, r.owner, r.kind, r.shown);
            }
            Ok(())
        }
        NotifyCommand::Digest { trainer, week, html, send } => {
            let t = app.trainer_named(&trainer).await?;
            let tz = app.default_tz();
            let week = match week {
                Some(w) => crate::time::parse_day(&w, tz, now, "the week").map_err(Failure::Input)?,
                None => crate::time::today(tz, now) - chrono::Duration::days(7),
            };
            let week = crate::time::monday(week);
            if send {
                let r = app.send_digest(&t, week, now).await?;
                if r.sent == 0 {
                    let row = app.outbox(&NotifyTarget::Trainer(t.clone()), 1).await?;
                    let why = row.first().and_then(|r| r.reason.clone()).unwrap_or_default();
                    return Err(Failure::Runtime(anyhow::anyhow!("the digest to {} failed: {why}", t.name)));
                }
                println!("sent the digest of the week of {week} to {}", t.name);
                return Ok(());
            }
            let m = app.digest(&t, week, now).await?;
            if let Some(path) = html {
                let write = |p: &std::path::Path, b: &[u8]| {
                    std::fs::write(p, b).map_err(|e| Failure::Runtime(anyhow::anyhow!("writing {}: {e}", p.display())))
                };
                let page = m.html.clone().unwrap_or_default().replace("cid:roster", "roster.png");
                write(&path, page.as_bytes())?;
                if let Some((_, png)) = m.images.first() {
                    write(&path.with_file_name("roster.png"), png)?;
                }
            }
            println!("Subject: {}\n\n{}", m.title, m.body);
            Ok(())
        }
        NotifyCommand::Schedule { client, week } => {
            let c = app.client(&client).await?;
            let day = match week {
                Some(w) => crate::time::parse_day(&w, c.tz, now, "the week").map_err(Failure::Input)?,
                None => crate::time::today(c.tz, now),
            };
            let lines = app.nudge_schedule(&c, crate::time::monday(day)).await?;
            if lines.is_empty() {
                println!("{} has no homework a reminder is sent for that week", c.name);
            }
            let show = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&c.tz).format("%a %b %-d %H:%M").to_string();
            for l in lines {
                let due = l.due.map_or_else(|| "none (quiet hours cover the window)".to_string(), show);
                println!(
                    "{}  #{} {:<36} due {due}  (window closes {})",
                    l.date,
                    l.homework_id,
                    l.homework,
                    show(l.closes)
                );
            }
            Ok(())
        }
        NotifyCommand::Outbox { client, json } => {
            let c = app.client(&client).await?;
            let tz = c.tz;
            let rows = app.outbox(&NotifyTarget::Client(c), 50).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::new)?);
                return Ok(());
            }
            for r in rows {
                let when = r.sent.unwrap_or(r.created).with_timezone(&tz).format("%Y-%m-%d %H:%M");
                let why = r.reason.map(|w| format!(" ({w})")).unwrap_or_default();
                println!("{when}  {:<6} {:<11} {}{why}", r.kind, r.state, r.title);
            }
            Ok(())
        }
    }
}

fn test_args(to: &NotifyTarget) -> String {
    match to {
        NotifyTarget::Client(c) => c.name.clone(),
        NotifyTarget::Trainer(t) => format!("--trainer {}", t.name),
    }
}
