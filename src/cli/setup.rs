//! `coachd setup` (and `coachd` alone at a terminal): the few decisions of a new install,
//! in order: the public URL, the sources, the first trainer login, the first client.
//! (What goes into the configuration file comes first: on a packaged install the file is
//! root's and the database the service user's, so the file is written before setup
//! switches to that user for the rest.)
//! The answers go into the configuration file (edited in place, comments kept, checked
//! before it is replaced) and the database; the exact next commands are printed. Safe to
//! run again: the current values are the defaults, what exists is kept. Every question
//! has a flag, for scripted installs (`--yes`: no questions at all).

use super::trainer::{password_from_stdin, read_hidden};
use super::Failure;
use crate::app::{App, NewClientInput, Owner};
use crate::config::Config;
use crate::config_file::{self, Value};
use crate::paths::DataDir;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

/// What `coachd setup` was told on its command line.
#[derive(Debug, Default, clap::Args)]
pub struct SetupArgs {
    /// The address browsers, phones and providers reach this server at (web.public_url), e.g. https://coach.example.org
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The first trainer's login name (skipped when trainers exist)
    #[arg(long, value_name = "NAME")]
    pub trainer: Option<String>,
    /// Read the trainer's password from the first line of stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// A first client to add
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
    /// The client's time zone (IANA, e.g. Europe/Berlin) [default: this machine's]
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// The sources to enable, comma-separated (the others are disabled): inbox, ble, mqtt and the providers (strava, polar, intervals, oura, ...)
    #[arg(long, value_name = "LIST")]
    pub sources: Option<String>,
    /// Ask nothing: only the flags given are applied
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Questions on a terminal, or none.
struct Ask {
    on: bool,
}

impl Ask {
    fn line(&self, question: &str, default: &str) -> Result<String, Failure> {
        if !self.on {
            return Ok(default.to_string());
        }
        let shown = if default.is_empty() { String::new() } else { format!(" [{default}]") };
        eprint!("{question}{shown}: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading the answer: {e}")))?;
        if n == 0 {
            return Err(Failure::Input("setup ended (no more input); nothing after this point was changed".into()));
        }
        let answer = line.trim();
        Ok(if answer.is_empty() { default.to_string() } else { answer.to_string() })
    }

    fn yes(&self, question: &str, default: bool) -> Result<bool, Failure> {
        loop {
            let answer = self.line(&format!("{question} (y/n)"), if default { "y" } else { "n" })?;
            match answer.to_ascii_lowercase().as_str() {
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => eprintln!("  answer y or n"),
            }
        }
    }
}

fn say(text: &str) {
    eprintln!("{text}");
}

/// A source offered in step 4: (name, what it is and needs).
fn source_menu(config: &Config) -> Vec<(String, String, bool)> {
    let mut out = vec![
        (
            "inbox".to_string(),
            "the inbox: FIT/TCX/GPX files and exports dropped into DATA/inbox/CLIENT are imported (needs nothing)"
                .to_string(),
            config.inbox.enabled,
        ),
        (
            "ble".to_string(),
            "Bluetooth sensors (heart-rate straps, gym machines): needs BlueZ and an adapter; the service user must be \
             in the bluetooth group (the package does that)"
                .to_string(),
            config.ble.enabled,
        ),
    ];
    for p in crate::providers::PROVIDERS {
        let name = p.name();
        let display =
            crate::providers::Manifest::load(name, config.providers.get(name)).map(|m| (m.display, m.auth)).ok();
        let Some((display, auth)) = display else { continue };
        let needs = match auth {
            crate::providers::AuthKind::ApiKey => "each client gives their own API key; nothing to set up".to_string(),
            crate::providers::AuthKind::Oauth2 => format!(
                "needs your own {display} API application (client id and secret; see README, Cloud providers) and, \
                 for its login to come back, a public URL the client's browser reaches"
            ),
        };
        out.push((name.to_string(), format!("{display}: {needs}"), config.providers.get(name).enabled));
    }
    out.push((
        "mqtt".to_string(),
        "Home Assistant over MQTT: needs a broker (host and port)".to_string(),
        config.mqtt.enabled,
    ));
    out
}

pub async fn setup(
    data: &DataDir,
    config_path: &Path,
    config: Config,
    args: SetupArgs,
    env: Vec<(String, String)>,
) -> Result<(), Failure> {
    let ask = Ask { on: !args.yes && std::io::stdin().is_terminal() && !args.password_stdin };
    if ask.on {
        say(&format!(
            "coachd setup: a few decisions, in order. Enter keeps the value in brackets. Nothing is written until the \
             end of step 2; you can run this again at any time.\n  data dir  {}\n  config    {}\n",
            data.root().display(),
            config_path.display()
        ));
    }
    let mut values: Vec<(String, Value)> = Vec::new();

    // 1. The public URL.
    if ask.on {
        say("1. The public URL: the address browsers and phones use to reach coachd, which the links it prints and \
             the providers' logins come back to. Cloud providers need https:// for webhooks (and Strava, WHOOP and \
             Oura for their logins), so put coachd behind a TLS reverse proxy and enter its https:// address. Keep \
             the default to use coachd on this machine or your home network only.");
    }
    let current = config.web.base_url();
    let url = match &args.public_url {
        Some(u) => u.trim().to_string(),
        None => ask.line("   public URL", &current)?,
    };
    let url = url.trim_end_matches('/').to_string();
    if url != current {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Failure::Input(format!("{url:?} is not a URL: it starts with https:// (or http://)")));
        }
        values.push(("web.public_url".into(), Value::Text(url.clone())));
    }
    if url.starts_with("http://")
        && !["http://127.", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p))
    {
        say("   note: without https://, cookies are not marked Secure and providers cannot send webhooks (coachd polls).");
    }

    // 4 (asked now, written with step 1): the sources.
    let menu = source_menu(&config);
    let chosen: Option<Vec<String>> = match &args.sources {
        Some(list) => {
            let names: Vec<String> =
                list.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
            for n in &names {
                if !menu.iter().any(|(m, ..)| m == n) {
                    let known: Vec<&str> = menu.iter().map(|(m, ..)| m.as_str()).collect();
                    return Err(Failure::Input(format!("no source {n:?}; the sources are {}", known.join(", "))));
                }
            }
            Some(names)
        }
        None if ask.on => {
            say("\n2. The sources: where clients' data comes from. Each can be changed later in the config file.");
            let mut names = Vec::new();
            for (name, what, on) in &menu {
                say(&format!("   {what}"));
                if ask.yes(&format!("   enable {name}?"), *on)? {
                    names.push(name.clone());
                }
            }
            Some(names)
        }
        None => None,
    };
    if let Some(names) = &chosen {
        for (name, _, on) in &menu {
            let want = names.contains(name);
            let key = match name.as_str() {
                "inbox" | "ble" | "mqtt" => format!("{name}.enabled"),
                provider => format!("providers.{provider}.enabled"),
            };
            if want != *on {
                values.push((key, Value::Bool(want)));
            }
        }
        // What an enabled source still needs, asked where it can be.
        for name in names {
            let Ok(p) = crate::providers::provider(name) else { continue };
            let settings = config.providers.get(p.name());
            let Ok(m) = crate::providers::Manifest::load(p.name(), settings) else { continue };
            if m.auth != crate::providers::AuthKind::Oauth2 || !settings.client_id.trim().is_empty() || !ask.on {
                continue;
            }
            say(&format!("   {}: your API application's client id and secret (empty: later)", m.display));
            let id = ask.line("     client id", "")?;
            if !id.is_empty() {
                let secret = read_hidden("     client secret (not shown): ")?;
                values.push((format!("providers.{name}.client_id"), Value::Text(id)));
                if !secret.trim().is_empty() {
                    values.push((format!("providers.{name}.client_secret"), Value::Text(secret.trim().to_string())));
                }
            }
        }
        if names.iter().any(|n| n == "mqtt") && ask.on {
            let host = ask.line("   MQTT broker host", &config.mqtt.host)?;
            if host != config.mqtt.host {
                values.push(("mqtt.host".into(), Value::Text(host)));
            }
        }
    }

    // Written now, checked as every start checks it; then the rest runs as the data
    // dir's owner (a packaged install: the service user).
    let config = if values.is_empty() {
        config
    } else {
        let text = match std::fs::read_to_string(config_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::config::DEFAULT_TOML.to_string(),
            Err(e) => return Err(Failure::Runtime(anyhow::anyhow!("reading {}: {e}", config_path.display()))),
        };
        let pairs: Vec<(&str, Value)> = values.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let edited = config_file::edit(&text, &pairs).map_err(Failure::Input)?;
        let mut loaded = None;
        config_file::replace(config_path, &edited, |tmp| {
            let c = crate::app::load_config(tmp, env.clone()).map_err(|p| p.to_string())?;
            loaded = Some(c);
            Ok(())
        })
        .map_err(Failure::Input)?;
        let keys: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
        say(&format!("   wrote {}: {}", config_path.display(), keys.join(", ")));
        // The file's own values with the environment's overrides, as the daemon will see them.
        loaded.unwrap_or_else(|| unreachable!("checked above"))
    };
    if let Some(user) = data.become_owner().map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))? {
        tracing::debug!(user, "running as the data dir's owner");
    }
    let (app, _) = App::open(data, config_path, config, false).await?;
    let result = accounts(&app, &ask, &args).await;
    let next = result.map(|client| next_steps(&app, data, client, chosen.as_deref()));
    app.close().await;
    next
}

/// Steps 3 and 4: the first trainer and the first client; the client's name, if any.
async fn accounts(app: &App, ask: &Ask, args: &SetupArgs) -> Result<Option<String>, Failure> {
    let (trainers, _) = app.trainer_lines().await?;
    if ask.on {
        say("\n3. The dashboard login: each trainer has one and sees only their own clients.");
    }
    if trainers.is_empty() {
        let name = match &args.trainer {
            Some(n) => n.trim().to_string(),
            None => ask.line("   first trainer's login name (empty: later, with coachd trainer add)", "")?,
        };
        if !name.is_empty() {
            let password = if args.password_stdin || !ask.on {
                password_from_stdin()?
            } else {
                loop {
                    let first = read_hidden(&format!("   password for {name} (at least 10 characters, not shown): "))?;
                    if let Err(e) = crate::crypto::check_password(&first) {
                        say(&format!("   {e}"));
                        continue;
                    }
                    if read_hidden("   again: ")? == first {
                        break first;
                    }
                    say("   the two differ; once more");
                }
            };
            let added = app.add_trainer(&name, password).await?;
            say(&format!("   added trainer {}", added.trainer.name));
        }
    } else {
        let names: Vec<&str> = trainers.iter().map(|t| t.name.as_str()).collect();
        say(&format!("   trainers: {} (more with coachd trainer add NAME)", names.join(", ")));
    }

    if ask.on {
        say("\n4. A first client (more later, on the dashboard or with coachd client add).");
    }
    let name = match &args.client {
        Some(n) => n.trim().to_string(),
        None => ask.line("   client's name (empty: later)", "")?,
    };
    if name.is_empty() {
        return Ok(None);
    }
    if app.client(&name).await.is_ok() {
        say(&format!("   {name} is already a client; kept as is"));
        return Ok(Some(name));
    }
    let tz = match &args.tz {
        Some(z) => z.trim().to_string(),
        None => ask.line(&format!("   {name}'s time zone"), app.default_tz().name())?,
    };
    let input = NewClientInput { name: name.clone(), tz: Some(tz), ..Default::default() };
    let client = app.add_client(&input, Owner::OnlyTrainer).await?;
    say(&format!("   added client {} ({})", client.name, client.tz.name()));
    Ok(Some(client.name))
}

/// The exact commands that come next.
fn next_steps(app: &App, data: &DataDir, client: Option<String>, sources: Option<&[String]>) {
    let on = |name: &str| match sources {
        Some(s) => s.iter().any(|n| n == name),
        None => match name {
            "ble" => app.config.ble.enabled,
            _ => false,
        },
    };
    let sudo = if data.is_system() { "sudo " } else { "" };
    println!("\nsetup done. Next:");
    if data.is_system() {
        println!("  sudo systemctl enable --now coachd        # start the service now and at every boot");
    } else {
        println!("  coachd run                                 # the daemon and the dashboard");
    }
    println!("  open {}/login                 # the dashboard", app.base_url());
    let who = client.unwrap_or_else(|| "CLIENT".into());
    println!("  {sudo}coachd assign {who} \"15 minutes of cardio\"   # homework in plain words");
    println!(
        "  {sudo}coachd share {who}                        # their private page: they connect their own accounts there"
    );
    if on("ble") {
        println!("  {sudo}coachd devices scan && {sudo}coachd devices pair ADDRESS {who}   # a heart-rate strap");
    }
    for p in crate::providers::PROVIDERS {
        if on(p.name()) && app.providers.app(p.name()).is_err() && p.name() != "intervals" {
            println!(
                "  # {}: set providers.{}.client_id and client_secret in the config before clients connect it",
                p.name(),
                p.name()
            );
        }
    }
    println!("  {sudo}coachd doctor                             # checks the install, with a fix for each problem");
}
