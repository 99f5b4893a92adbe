//! The command line (clap). Exit codes: 0 success, 1 runtime failure, 2 bad usage or
//! bad input. Every error names what was wrong and what to do.
//!
//! A thin front end over [`crate::app`]: each command parses its flags, calls the
//! application layer and prints. This file is longer than the others because it holds
//! the whole command-line contract (every command, flag and help text, which scripts
//! rely on) in one place, where it is read and reviewed as one; the commands' bodies
//! live in the files beside it.

use crate::app::{App, AppError, NewClientInput, Owner};
use crate::config::{Config, LogFormat};
use crate::daemon;
use crate::paths::DataDir;

mod accounts;
mod benchmarks;
mod charts;
mod collector;
mod data;
mod devices;
mod doctor;
mod homework;
mod import;
mod notify;
mod setup;
mod trainer;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "coachd",
    version,
    about = "Judges clients' training homework from the data their wearables already record."
)]
pub struct Cli {
    /// Where coachd keeps everything [default: $STATE_DIRECTORY under systemd, else /var/lib/coachd on a packaged install (for root and its owner), else ~/.local/share/coachd]
    #[arg(long, global = true, env = "COACHD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: /etc/coachd/coachd.toml on a packaged install, else DIR/coachd.toml]
    #[arg(long, global = true, env = "COACHD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr [default: log.format from the config, else human]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the data dir, a commented default config, the database and the encryption key (idempotent)
    Init,
    /// The first run, guided: public URL, sources, first trainer login, first client; writes the config (comments kept) and prints the next commands. Safe to re-run. `coachd` alone at a terminal runs it
    Setup(setup::SetupArgs),
    /// Check or show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Add or list clients
    #[command(subcommand)]
    Client(ClientCommand),
    /// Assign homework in plain words, e.g. "15 minutes of cardio" or "10 push-ups every night"
    #[command(after_help = crate::engine::phrase::forms_help())]
    Assign {
        client: String,
        /// The homework, as a trainer would say it (or --questions FILE instead)
        #[arg(required_unless_present = "questions", conflicts_with = "questions")]
        phrase: Option<String>,
        /// Only on these weekdays, e.g. mon,wed,sat
        #[arg(long, value_name = "DAYS")]
        days: Option<String>,
        /// Daily window in local time, e.g. 19:00-03:00 (crossing midnight belongs to the evening's date)
        #[arg(long, value_name = "HH:MM-HH:MM")]
        window: Option<String>,
        /// First day it applies [default: today]
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day it applies [default: open-ended]
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Done at this percent of the target [default: homework.done_percent]
        #[arg(long, value_name = "PCT")]
        done_at: Option<f64>,
        /// Partial at this percent of the target [default: homework.partial_percent]
        #[arg(long, value_name = "PCT")]
        partial_at: Option<f64>,
        /// Questions the client answers on their private page, one per line: "[1-10] ...", "[yes/no] ...", other lines free text; done when answered
        #[arg(long, value_name = "FILE", conflicts_with_all = ["window", "done_at", "partial_at"])]
        questions: Option<PathBuf>,
        /// With --questions: ask them every day or every week [default: week; day with --days]
        #[arg(long, value_name = "day|week")]
        every: Option<String>,
        /// Show the rule and its next five occurrences without saving anything
        #[arg(long, conflicts_with = "questions")]
        dry_run: bool,
    },
    /// List or end homework
    #[command(subcommand)]
    Homework(HomeworkCommand),
    /// Log a manual activity, in the client's local time
    Log {
        client: String,
        /// Activity type: run, ride, walk, strength, yoga, mobility, ... (see the error for all)
        #[arg(long = "type", value_name = "TYPE")]
        activity_type: String,
        /// Local start time, "YYYY-MM-DD HH:MM"
        #[arg(long, value_name = "\"YYYY-MM-DD HH:MM\"")]
        start: String,
        #[arg(long, value_name = "N")]
        minutes: f64,
        /// Average heart rate, bpm
        #[arg(long, value_name = "N")]
        avg_hr: Option<u32>,
        /// Exercise of a strength set, e.g. push_up (with --reps)
        #[arg(long, value_name = "NAME")]
        exercise: Option<String>,
        #[arg(long, value_name = "N")]
        reps: Option<u32>,
    },
    /// Record a client's self-report for a homework (marked self-reported everywhere)
    Checkin {
        client: String,
        homework_id: i64,
        /// The day it is for [default: today]
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
        /// What was done, in the homework's unit (reps, minutes, steps, hours) [default: the target]
        #[arg(long, value_name = "N")]
        value: Option<f64>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Excuse a day of a homework (illness, travel): it no longer counts against adherence
    Excuse {
        client: String,
        homework_id: i64,
        #[arg(long, value_name = "DATE")]
        date: String,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Record a test done in a session (max push-ups, a plank, a 1RM, a sprint speed, a 1-5 form score)
    #[command(after_help = benchmarks::BENCHMARK_HELP)]
    Benchmark {
        client: String,
        /// The test, e.g. "max push-ups" (a test keeps its first spelling and its unit)
        name: String,
        /// The result: 18, 12.5, or 1:30 (minutes:seconds)
        #[arg(allow_negative_numbers = true)]
        value: String,
        /// reps, s, kg, km/h or score (1-5) [default: the test's earlier unit, else read from its name]
        #[arg(long, value_name = "UNIT")]
        unit: Option<String>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// The homework this test should show the effect of (an id from `coachd homework list`)
        #[arg(long = "for", value_name = "HOMEWORK_ID")]
        for_homework: Option<i64>,
        /// The session's date [default: today]
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
        /// Record it as this dashboard trainer's (the client must be theirs) [default: no trainer named]
        #[arg(long, value_name = "NAME")]
        trainer: Option<String>,
    },
    /// A client's benchmarks by test, oldest first, with each test's change; or remove one
    Benchmarks {
        client: String,
        /// Only this test (any case)
        #[arg(long, value_name = "TEST")]
        test: Option<String>,
        /// Remove this benchmark (an id from the list), e.g. one recorded by mistake
        #[arg(long, value_name = "ID", conflicts_with_all = ["json", "test"])]
        remove: Option<i64>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Workouts of a client, merged across sources [default: the last 30 days]
    Activities {
        client: String,
        #[command(flatten)]
        range: Range,
    },
    /// Import FIT, TCX, GPX files (or .gz), Strava/Garmin account exports, Apple Health export.zip/export.xml and Gadgetbridge.db (or folders of them), recognised by content
    Import {
        client: String,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print the URL and header for a client's Health Auto Export app (a new token revokes older ones)
    PushToken {
        client: String,
        /// Revoke the client's tokens instead of making a new one
        #[arg(long)]
        revoke: bool,
    },
    /// Verdicts and adherence, per client [default: the last 7 days]
    Status {
        client: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Draw a chart to FILE.svg or FILE.png
    Chart {
        kind: crate::charts::Kind,
        /// The client (every kind but roster; with roster, only that client)
        client: Option<String>,
        /// First day [default: per kind, 12 weeks back; cardio 4 weeks; session a year]
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day [default: today]
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// The session chart's workout, an id from `coachd activities` [default: the latest with heart rate]
        #[arg(long, value_name = "ID")]
        activity: Option<i64>,
        /// The file to write: .svg or .png
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create a realistic demo data set: 4 clients, 3 months, several sources
    Demo {
        /// Pretend it is this moment (RFC 3339), for reproducible pictures [default: now]
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// Also draw every chart kind of the demo into DIR (the README's gallery)
        #[arg(long, value_name = "DIR")]
        gallery: Option<PathBuf>,
    },
    /// Dashboard logins: add a trainer (or set a new password), list trainers
    #[command(subcommand)]
    Trainer(TrainerCommand),
    /// Push and e-mail channels for nudges: set, test, remove, list; the outbox of what was sent
    #[command(subcommand, after_help = notify::NOTIFY_HELP)]
    Notify(notify::NotifyCommand),
    /// Print a client's private link (their charts, this week, check-ins); --revoke ends every link
    Share {
        client: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Connect a client's cloud account: prints the authorization link to send them (OAuth providers), or stores their API key (intervals.icu)
    Connect {
        /// A provider's name (an unknown one lists them): strava, polar, intervals, oura, ...
        provider: String,
        client: String,
        /// API-key providers (intervals.icu): the client's API key
        #[arg(long, value_name = "KEY")]
        api_key: Option<String>,
    },
    /// Disconnect a client's cloud account: coachd's access is revoked at the provider where its API allows, the tokens deleted and the sync stopped; the data stays
    Disconnect {
        /// A provider's name: strava, polar, intervals, oura, ...
        provider: String,
        client: String,
    },
    /// Cloud accounts: provider, client, state, last and next sync, rate-limit headroom
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Ask a provider (Strava, Oura) to push events to this server (the daemon must be running and reachable at web.public_url)
    Subscribe {
        /// A provider that takes push subscriptions made from coachd: strava, oura
        provider: String,
    },
    /// Sync cloud accounts now (all, one client's, or one provider's)
    Sync { client: Option<String>, provider: Option<String> },
    /// Bluetooth sensors: scan for them, pair them with clients, list them
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Write a consistent backup (database and configuration; the key only with --with-key), also while the daemon runs
    #[command(after_help = data::BACKUP_HELP)]
    Backup {
        /// The zip to write, or a folder for a dated one [default: DATA/backups/coachd-backup-TIME.zip]
        file: Option<PathBuf>,
        /// Also put the encryption key in (it decrypts the cloud tokens: guard the file like the key)
        #[arg(long)]
        with_key: bool,
    },
    /// Copy this data dir's SQLite database into an empty PostgreSQL database, check the copy (rows per table, every client's verdicts of the last 90 days), and print the config line that switches to it; the SQLite file's data is left as it was
    #[command(after_help = data::MIGRATE_HELP)]
    Migrate {
        /// The PostgreSQL database to copy into: postgres://USER@HOST:PORT/DBNAME (empty, or only migrated)
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the database password [default: store.password_file, else the URL's own]
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Put a backup back (the daemon must be stopped); the database it replaces is kept aside
    Restore {
        /// A zip from `coachd backup` (or the daily ones in DATA/backups/), or a bare database file
        file: PathBuf,
        /// Leave the configuration file as it is instead of restoring the backup's
        #[arg(long)]
        keep_config: bool,
    },
    /// Check the install (data dir, key, database, backups, disk, clock, Bluetooth, sensors, providers, daemon) and explain each problem with its fix; exit 1 if any check fails
    #[command(after_help = doctor::DOCTOR_HELP)]
    Doctor {
        /// Print JSON instead of one line per check
        #[arg(long)]
        json: bool,
    },
    /// Register, list or remove remote Bluetooth collectors (boxes running `coachd collect`) at this hub
    #[command(subcommand)]
    Collector(collector::CollectorCommand),
    /// Collector mode: record the Bluetooth sensors paired at the hub and forward their sessions to it (no database, no dashboard), and, with --inbox, the files dropped into an inbox folder; every batch is committed to DATA/collector-outbox.db first, then forwarded in order, and nothing is lost while the hub is away
    Collect {
        /// The hub's URL, https://... (plain http:// only to a loopback address) [default: collector.hub]
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        /// The file holding this collector's token from `coachd collector add NAME` at the hub [default: collector.token_file]
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Also watch this inbox folder: files dropped into DIR/<client>/ (the client's name at the hub) are forwarded and imported at the hub; a relative path is inside the data dir [default: collector.inbox, none]
        #[arg(long, value_name = "DIR")]
        inbox: Option<PathBuf>,
    },
    /// Run the daemon: every source, the supervisor and the web server
    Run {
        /// Address to listen on [default: web.listen, 127.0.0.1:7878]
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Create the demo data set if missing, and add a simulated heart-rate strap worn by a client named "demo"
        #[arg(long)]
        demo: bool,
        /// Add a simulated heart-rate strap worn by CLIENT (an existing client): to try the Bluetooth pipeline without a strap; repeat it for several straps at once
        #[arg(long, value_name = "CLIENT")]
        simulate_strap: Vec<String>,
        /// How many simulated seconds the simulated strap records per real second (1 to 1000)
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        strap_speed: u32,
    },
}

/// Dates to show (YYYY-MM-DD, today or yesterday) and the output form.
#[derive(Debug, clap::Args)]
struct Range {
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum HomeworkCommand {
    /// List homework, of one client or all
    List {
        client: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// End a homework: it no longer applies from DATE on
    End {
        id: i64,
        /// First day without it [default: today]
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// List accounts
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TrainerCommand {
    /// Add a trainer with a password (asked twice at a terminal), or set a new one; the
    /// trainer adopts every client that has none
    Add {
        name: String,
        /// Read the password from the first line of standard input (for scripts)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List trainers and how many clients each has
    List,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Report every problem in the configuration and the key file; exit 2 if there is any
    Check,
    /// Print the effective configuration (file and environment applied, secrets masked)
    Show,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Add a client
    Add {
        /// Unique name, used by every other command (case-insensitive)
        name: String,
        /// IANA time zone, e.g. Europe/Berlin [default: clients.default_tz, else the server's]
        #[arg(long, value_name = "IANA")]
        tz: Option<String>,
        /// Measured maximum heart rate, bpm (100-250) [default: 208 - 0.7 x age when the birth year is known]
        #[arg(long, value_name = "BPM")]
        hr_max: Option<u32>,
        /// Year of birth, for the HR max estimate
        #[arg(long, value_name = "Y")]
        birth_year: Option<i32>,
        /// The trainer who sees this client in the dashboard [default: the only trainer, if there is one]
        #[arg(long, value_name = "NAME")]
        trainer: Option<String>,
    },
    /// List clients
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Write all of a client's data to a zip: activities (JSON, and TCX where samples exist), daily metrics, homework and verdicts, check-ins, reflections, answers, benchmarks (formats in its README.txt)
    Export {
        name: String,
        /// The zip to write [default: NAME-export-DATE.zip here]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Erase a client: every row of theirs in every table, their inbox, archive and quarantine folders; their sensors are unpaired
    Remove {
        name: String,
        /// Do not ask for the client's name as confirmation
        #[arg(long)]
        yes: bool,
    },
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or bad input: exit 2.
    Input(String),
    /// Something failed at run time: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Runtime(e)
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Input(m) | AppError::NotFound(m) => Self::Input(m),
            AppError::Runtime(e) => Self::Runtime(e),
        }
    }
}

pub fn main() -> ExitCode {
    // `coachd` alone at a terminal is the first-run dialogue (a new install's admin types
    // just that); anywhere else it is the usage, as before.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 1 && std::io::stdin().is_terminal() {
        argv.push("setup".into());
    }
    let cli = Cli::parse_from(argv);
    // Everything coachd writes (database, WAL, key, exports) is personal health data:
    // readable by its owner only, whatever umask the shell or unit had.
    // SAFETY: umask only swaps the process's file-mode mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    if !matches!(cli.command, Command::Run { .. } | Command::Collect { .. }) {
        // A short command whose reader went away (`coachd activities … | head`) ends
        // quietly, as Unix tools do, instead of panicking in `println!`. Sockets are
        // unaffected (they are written with MSG_NOSIGNAL). The daemon keeps ignoring it.
        // SAFETY: restores the default disposition of one signal; no handler runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::Error::new(e).context("starting the async runtime")))
        .and_then(|rt| rt.block_on(dispatch(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("error: {}", msg.trim_end());
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let data = DataDir::resolve(cli.data_dir.clone()).map_err(Failure::Input)?;
    let config_path = cli.config.clone().unwrap_or_else(|| data.default_config());
    let env = std::env::vars();
    if let Command::Config(ConfigCommand::Check) = cli.command {
        return config_check(&data, &config_path, env);
    }
    if let Command::Doctor { json } = cli.command {
        // Before the configuration is loaded: a broken one is one of the things it reports.
        return doctor::doctor(&data, &config_path, env, json).await;
    }
    let env: Vec<(String, String)> = env.collect();
    let config = crate::app::load_config(&config_path, env.clone()).map_err(|p| Failure::Input(p.to_string()))?;
    let is_run = matches!(cli.command, Command::Run { .. } | Command::Collect { .. });
    init_logging(&config, cli.log_format, is_run);
    if let Command::Setup(args) = cli.command {
        // Writes the configuration first (root's, on a packaged install), then runs as
        // the data dir's owner.
        return setup::setup(&data, &config_path, config, args, env).await;
    }
    // `sudo coachd ...` on a packaged install: as the service user from here on, so
    // nothing it writes in the data dir is root's.
    if let Some(user) = data.become_owner().map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))? {
        tracing::debug!(user, "running as the data dir's owner");
    }
    match cli.command {
        Command::Config(ConfigCommand::Check) => unreachable!("handled above"),
        Command::Config(ConfigCommand::Show) => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Init => {
            let (app, report) = App::open(&data, &config_path, config, false).await?;
            app.close().await;
            println!("data dir  {}", data.root().display());
            println!("config    {}{}", config_path.display(), if report.wrote_config { " (created)" } else { "" });
            println!("key       {}{}", data.key().display(), if report.created_key { " (created)" } else { "" });
            println!(
                "database  {}{}",
                data.database().display(),
                if report.created_database { " (created)" } else { "" }
            );
            if !report.created_anything() {
                println!("already initialised; nothing changed");
            }
            Ok(())
        }
        Command::Run { listen, demo, simulate_strap, strap_speed } => {
            let mut config = config;
            if let Some(listen) = listen {
                config.web.listen = listen;
            }
            let listen = config.web.listen;
            let app = open(&data, &config_path, config, false).await?;
            let listener = match tokio::net::TcpListener::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    app.close().await;
                    return Err(Failure::Runtime(anyhow::anyhow!(
                        "cannot listen on {listen}: {e}; choose another address with --listen or web.listen"
                    )));
                }
            };
            tracing::info!(data_dir = %data.root().display(), "data dir");
            if demo {
                prepare_demo(&app).await?;
            }
            let mut straps = simulate_strap;
            if straps.is_empty() && demo {
                straps.push("demo".to_string());
            }
            for name in &straps {
                // Checked here, so a misspelt name stops the start instead of a source
                // failing in a loop.
                app.client(name).await?;
            }
            let tick = std::time::Duration::from_micros(1_000_000 / u64::from(strap_speed));
            let sources = crate::sources::build(&app, &data, (!straps.is_empty()).then_some((straps, tick)));
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
            let signal = async move {
                if let Err(e) = daemon::shutdown_signal().await {
                    let _ = stop_tx.send(e);
                }
            };
            daemon::run(app, listener, sources, signal).await?;
            if let Ok(e) = { stop_rx }.try_recv() {
                return Err(Failure::Runtime(e));
            }
            Ok(())
        }
        Command::Restore { file, keep_config } => data::restore(&data, &config_path, &file, keep_config, &config).await,
        Command::Migrate { to, password_file } => data::migrate(&data, &config, &to, password_file.as_deref()).await,
        Command::Collect { hub, token_file, inbox } => collect(&data, config, hub, token_file, inbox).await,
        command => {
            let app = open(&data, &config_path, config, true).await?;
            let result = with_app(&app, &data, command).await;
            app.close().await;
            result
        }
    }
}

/// `coachd collect`: the flags over `[collector]`, checked before anything starts.
async fn collect(
    data: &DataDir,
    config: Config,
    hub: Option<String>,
    token_file: Option<PathBuf>,
    inbox: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut config = config;
    if let Some(dir) = inbox {
        config.collector.inbox = dir.display().to_string();
    }
    if let Some(hub) = hub {
        config.collector.hub = hub;
    }
    if let Some(file) = token_file {
        config.collector.token_file = file.display().to_string();
    }
    let c = &config.collector;
    if c.hub.is_empty() {
        return Err(Failure::Input("collector mode needs the hub's URL: --hub https://... (or collector.hub)".into()));
    }
    if let Some(problem) = crate::config::hub_url_problem(&c.hub) {
        return Err(Failure::Input(format!("--hub: {problem}")));
    }
    let hub = url::Url::parse(&c.hub).map_err(|e| Failure::Input(format!("--hub {:?}: {e}", c.hub)))?;
    if c.token_file.is_empty() {
        return Err(Failure::Input(
            "collector mode needs its token: --token-file FILE (or collector.token_file), holding what `coachd collector add NAME` printed at the hub".into(),
        ));
    }
    let token = crate::collect::read_token(std::path::Path::new(&c.token_file)).map_err(Failure::Input)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let signal = async move {
        if let Err(e) = daemon::shutdown_signal().await {
            let _ = stop_tx.send(e);
        }
    };
    crate::collect::run(config, data, hub, token, signal).await.map_err(Failure::Runtime)?;
    if let Ok(e) = { stop_rx }.try_recv() {
        return Err(Failure::Runtime(e));
    }
    Ok(())
}

/// `run --demo`: the demo data set if missing, the client "demo" who wears the
/// simulated strap, and the demo trainer's login (shown once, where the admin looks).
async fn prepare_demo(app: &App) -> Result<(), Failure> {
    if !app.demo_present().await? {
        let r = app.create_demo(chrono::Utc::now()).await?;
        tracing::info!(clients = r.clients, activities = r.activities, "created the demo data set");
    }
    if app.client("demo").await.is_err() {
        let input = NewClientInput { name: "demo".into(), hr_max: Some(190), ..Default::default() };
        let demo = app.add_client(&input, Owner::OnlyTrainer).await?;
        // Something the simulated strap can satisfy, so the roster shows a live client
        // being judged rather than a row of dashes.
        let cardio = crate::app::Assignment { phrase: "20 minutes of cardio".into(), ..Default::default() };
        app.assign(&demo, &cardio).await?;
    }
    if let Some(password) = app.demo_trainer().await? {
        tracing::warn!("demo dashboard login: coach / {password} at {}/login", app.base_url());
    }
    Ok(())
}
/// The commands that work on the database.
async fn with_app(app: &App, data: &DataDir, command: Command) -> Result<(), Failure> {
    match command {
        Command::Client(cmd) => client(app, cmd).await,
        Command::Backup { file, with_key } => data::backup(app, file.as_deref(), with_key).await,
        Command::Devices(cmd) => devices::devices(app, cmd).await,
        Command::Collector(cmd) => collector::collector(app, cmd).await,
        Command::Assign { client, questions: Some(file), every, days, from, until, .. } => {
            homework::assign_questions(app, homework::QuestionsArgs { client, file, every, days, from, until }).await
        }
        Command::Assign { questions: None, every: Some(_), .. } => Err(Failure::Input(
            "--every goes with --questions FILE; a phrase says how often itself (\"10 push-ups every day\")".into(),
        )),
        Command::Assign {
            client,
            phrase,
            days,
            window,
            from,
            until,
            done_at,
            partial_at,
            questions: None,
            dry_run,
            ..
        } => {
            let phrase = phrase.unwrap_or_default();
            let args = homework::AssignArgs { client, phrase, days, window, from, until, done_at, partial_at, dry_run };
            homework::assign(app, args).await
        }
        Command::Homework(HomeworkCommand::List { client, json }) => homework::list(app, client.as_deref(), json).await,
        Command::Homework(HomeworkCommand::End { id, from }) => homework::end(app, id, from.as_deref()).await,
        Command::Log { client, activity_type, start, minutes, avg_hr, exercise, reps } => {
            let args = homework::LogArgs { client, activity_type, start, minutes, avg_hr, exercise, reps };
            homework::log(app, args).await
        }
        Command::Checkin { client, homework_id, date, value, note } => {
            homework::checkin(app, &client, homework_id, date.as_deref(), value, note.as_deref()).await
        }
        Command::Benchmark { client, name, value, unit, note, for_homework, date, trainer } => {
            let args = benchmarks::RecordArgs { client, name, value, unit, note, for_homework, date, trainer };
            benchmarks::record(app, args).await
        }
        Command::Benchmarks { client, remove: Some(id), .. } => benchmarks::remove(app, &client, id).await,
        Command::Benchmarks { client, test, remove: None, json } => {
            benchmarks::list(app, &client, test.as_deref(), json).await
        }
        Command::Excuse { client, homework_id, date, reason } => {
            homework::excuse(app, &client, homework_id, &date, reason.as_deref()).await
        }
        Command::Activities { client, range } => {
            homework::activities(app, &client, range.from.as_deref(), range.to.as_deref(), range.json).await
        }
        Command::Import { client, paths } => import::import(app, data, &client, &paths).await,
        Command::PushToken { client, revoke } => trainer::push_token(app, &client, revoke).await,
        Command::Status { client, range } => {
            let (from, to) = (range.from.as_deref(), range.to.as_deref());
            homework::status_cmd(app, client.as_deref(), from, to, range.json).await
        }
        Command::Connect { provider, client, api_key } => {
            accounts::connect(app, &provider, &client, api_key.as_deref()).await
        }
        Command::Disconnect { provider, client } => accounts::disconnect(app, &provider, &client).await,
        Command::Accounts(AccountsCommand::List { json }) => accounts::list(app, json).await,
        Command::Subscribe { provider } => accounts::subscribe(app, &provider).await,
        Command::Sync { client, provider } => accounts::sync(app, client.as_deref(), provider.as_deref()).await,
        Command::Trainer(TrainerCommand::Add { name, password_stdin }) => {
            trainer::add(app, &name, password_stdin).await
        }
        Command::Trainer(TrainerCommand::List) => trainer::list(app).await,
        Command::Share { client, revoke } => trainer::share(app, &client, revoke).await,
        Command::Notify(cmd) => notify::notify(app, cmd).await,
        Command::Chart { kind, client, from, to, activity, out } => {
            charts::chart(app, charts::ChartArgs { kind, client, from, to, activity, out }).await
        }
        Command::Demo { now, gallery } => charts::demo(app, now.as_deref(), gallery.as_deref()).await,
        Command::Init
        | Command::Collect { .. }
        | Command::Setup(_)
        | Command::Config(_)
        | Command::Run { .. }
        | Command::Restore { .. }
        | Command::Migrate { .. }
        | Command::Doctor { .. } => {
            unreachable!("handled by dispatch without an open store")
        }
    }
}

/// The application on the data dir, initialising it first if this is its first use.
async fn open(
    data: &DataDir,
    config_path: &std::path::Path,
    config: Config,
    beside_daemon: bool,
) -> Result<App, Failure> {
    let (app, report) = App::open(data, config_path, config, beside_daemon).await?;
    if report.created_database {
        // A warning, so it shows for short commands too: a new data dir may be the wrong one.
        tracing::warn!(data_dir = %data.root().display(), "initialised a new data dir");
    }
    Ok(app)
}

fn config_check(
    data: &DataDir,
    config_path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), Failure> {
    let mut problems = match crate::app::load_config(config_path, env) {
        Ok(_) => Vec::new(),
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    };
    let key = data.key();
    if key.exists() {
        if let Err(e) = crate::crypto::load_key(&key) {
            problems.push(format!("{}: {e}", key.display()));
        }
    }
    if problems.is_empty() {
        let shown = if config_path.exists() { config_path.display().to_string() } else { "defaults (no file)".into() };
        println!("configuration OK: {shown}");
        Ok(())
    } else {
        let mut msg = format!("{} configuration problem(s):\n", problems.len());
        for p in problems {
            msg.push_str(&format!("  {p}\n"));
        }
        Err(Failure::Input(msg))
    }
}

async fn client(app: &App, cmd: ClientCommand) -> Result<(), Failure> {
    match cmd {
        ClientCommand::Export { name, out } => data::export(app, &name, out).await,
        ClientCommand::Remove { name, yes } => data::remove(app, &name, yes).await,
        ClientCommand::Add { name, tz, hr_max, birth_year, trainer } => {
            let owner = trainer.map_or(Owner::OnlyTrainer, Owner::Named);
            let c = app.add_client(&NewClientInput { name, tz, hr_max, birth_year }, owner).await?;
            let hr = c.hr_max.map(|h| format!(", HR max {h}")).unwrap_or_default();
            println!("added client {} (#{}, {}{hr})", c.name, c.id, c.tz);
            Ok(())
        }
        ClientCommand::List { json } => {
            let clients = app.clients().await?;
            if json {
                let text = serde_json::to_string_pretty(&clients).map_err(anyhow::Error::new)?;
                println!("{text}");
            } else if clients.is_empty() {
                println!("no clients yet; add one with `coachd client add NAME --tz Europe/Berlin`");
            } else {
                println!("{:<20} {:<24} {:>6} {:>10}", "NAME", "TIME ZONE", "HR MAX", "BORN");
                for c in clients {
                    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                    println!(
                        "{:<20} {:<24} {:>6} {:>10}",
                        c.name,
                        c.tz,
                        opt(c.hr_max.map(|v| v.to_string())),
                        opt(c.birth_year.map(|v| v.to_string()))
                    );
                }
            }
            Ok(())
        }
    }
}

/// Logs go to stderr: human (no timestamps under journald, which adds its own) or JSON.
/// Short commands log warnings only, so their output stays clean.
fn init_logging(config: &Config, format: Option<LogFormat>, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let mut default = if daemon { config.log.level.clone() } else { "warn".into() };
    if !default.contains("bluez_async") {
        default.push_str(",bluez_async=warn"); // it logs routine steps at info
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A log line that cannot be written (stderr closed: the reader of a pipe went away)
    // is dropped; the subscriber's own report of that would `eprintln!` and panic.
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    let result = match format.unwrap_or(config.log.format) {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.with_ansi(false).without_time().try_init()
        }
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging not set up: {e}");
    }
}
