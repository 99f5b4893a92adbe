//! `coachd backup`, `coachd restore`, `coachd client export` and `coachd client remove`.

use super::Failure;
use crate::app::backup::{KEY_NOTE, WITH_KEY_NOTE};
use crate::app::App;
use crate::config::Config;
use crate::paths::DataDir;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub const BACKUP_HELP: &str = "\
A backup is one zip: coachd.db (a consistent copy made while the daemon keeps running),
coachd.toml, backup.json (versions, time, counts) and, only with --with-key, coachd.key.
The key decrypts the cloud providers' tokens stored in the database: without it a
restored data dir keeps every row, but each cloud account must be connected again.
The daemon also makes one a day into DATA/backups/ (see [backup] in coachd.toml).
Put one back with `coachd restore FILE` (the daemon stopped).

With a PostgreSQL store, back up with `pg_dump --format=custom --file=coachd.dump DBNAME`
(restore: `pg_restore --clean --dbname=DBNAME coachd.dump`), copy coachd.toml beside it
and keep coachd.key apart.";

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} kB", (bytes as f64 / 1024.0).ceil())
    }
}

pub async fn backup(app: &App, file: Option<&Path>, with_key: bool) -> Result<(), Failure> {
    let made = app.backup(file, with_key).await?;
    let m = &made.manifest;
    println!(
        "backup written: {} ({}; schema version {}, {} clients, {} activities)",
        made.path.display(),
        size(made.bytes),
        m.schema_version,
        m.counts.clients,
        m.counts.activities
    );
    println!("{}", if with_key { WITH_KEY_NOTE } else { KEY_NOTE });
    if let Some(files) = &app.files {
        if made.path.starts_with(files.data.root()) {
            println!("it is on the same disk as the data: copy it to another machine or disk as well");
        }
    }
    if !m.with_config {
        println!("there was no configuration file to include: the defaults (and any COACHD__ variables) are in use");
    }
    Ok(())
}

pub async fn restore(
    data: &DataDir,
    config_path: &Path,
    file: &Path,
    keep_config: bool,
    config: &Config,
) -> Result<(), Failure> {
    let r = crate::app::backup::restore(data, config_path, file, keep_config, config).await?;
    println!("restored {} into {}", r.from.display(), r.database.display());
    if r.schema_before != r.schema_now {
        println!("its schema was upgraded from version {} to {}", r.schema_before, r.schema_now);
    }
    println!(
        "{} clients, {} activities, {} daily metrics, {} cursors",
        r.counts.clients, r.counts.activities, r.counts.daily_metrics, r.counts.cursors
    );
    match &r.kept_aside {
        Some(p) => println!("the database it replaced is kept as {}", p.display()),
        None => println!("there was no database before"),
    }
    if r.key_restored {
        println!("the backup's key was put in place as {}", data.key().display());
    }
    if let Some(p) = &r.key_aside {
        println!("the key it replaced is kept as {}", p.display());
    }
    if r.config_restored {
        println!("the backup's configuration was written to {}", config_path.display());
    }
    if let Some(p) = &r.config_aside {
        println!("the configuration it replaced is kept as {}", p.display());
    }
    if !r.reconnect.is_empty() {
        println!(
            "the backup's cloud tokens were sealed with another key (it holds no coachd.key), so they cannot be opened \
             and were removed; every other row is back. Connect these accounts again (each client follows the link):"
        );
        for (client, provider) in &r.reconnect {
            println!("  coachd connect {provider} {client}");
        }
    }
    println!("start the daemon again (`systemctl start coachd` or `coachd run`)");
    Ok(())
}

pub async fn export(app: &App, name: &str, out: Option<PathBuf>) -> Result<(), Failure> {
    let client = app.client(name).await?;
    let today = crate::time::today(client.tz, chrono::Utc::now());
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{}-export-{today}.zip", client.name)));
    if path.exists() {
        return Err(Failure::Input(format!("{} exists already; choose another file with --out", path.display())));
    }
    let tmp = {
        let mut p = path.clone().into_os_string();
        p.push(format!(".tmp-{}", std::process::id()));
        PathBuf::from(p)
    };
    let file =
        std::fs::File::create_new(&tmp).map_err(|e| Failure::Input(format!("cannot create {}: {e}", tmp.display())))?;
    let result = app.export_client(&client, std::io::BufWriter::new(file)).await;
    let tcx = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    std::fs::rename(&tmp, &path)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("moving the export to {}: {e}", path.display())))?;
    println!("exported {} to {} ({} activities as TCX; formats in its README.txt)", client.name, path.display(), tcx);
    Ok(())
}

pub async fn remove(app: &App, name: &str, yes: bool) -> Result<(), Failure> {
    let client = app.client(name).await?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Input(format!(
                "removing {} erases every row of theirs; confirm with --yes (nothing was changed)",
                client.name
            )));
        }
        eprint!(
            "This erases every row of {} (activities, samples, metrics, homework, check-ins, links, accounts) and \
             their inbox, archive and quarantine folders. Export first with `coachd client export {}` if they want \
             their data.\nType the client's name to confirm: ",
            client.name, client.name
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading the confirmation: {e}")))?;
        if !line.trim().eq_ignore_ascii_case(&client.name) {
            return Err(Failure::Input("the name typed is not the client's; nothing was changed".into()));
        }
    }
    let done = app.remove_client(&client).await?;
    let r = &done.removed;
    println!("removed client {}: {} rows, {} cursors", r.client, r.total() - r.cursors, r.cursors);
    for (table, n) in &r.rows {
        println!("  {table:<16} {n}");
    }
    if r.devices_unpaired > 0 {
        println!("{} sensor(s) unpaired", r.devices_unpaired);
    }
    for f in &done.folders {
        println!("deleted {}", f.display());
    }
    for e in &done.folder_errors {
        eprintln!("warning: could not delete {e}");
    }
    for a in &done.authorizations {
        println!("{a}");
    }
    Ok(())
}

pub const MIGRATE_HELP: &str = "\
Before: stop coachd (systemctl stop coachd), create the role and the database
(createuser coachd; createdb -O coachd coachd), and take a backup.
After: put the printed line into the [store] section of coachd.toml (the password
in store.password_file or the systemd credential store_password), and start coachd.
Exit 0: copied and checked; 1: the copy differs (the line is not printed); 2: bad input.";

/// `coachd migrate --to URL`: the SQLite database into PostgreSQL, checked.
pub async fn migrate(data: &DataDir, config: &Config, to: &str, password_file: Option<&Path>) -> Result<(), Failure> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let report = crate::app::migrate::migrate(data, config, to, password_file, |table, rows| {
        bar.set_message(format!("{table}: {rows} rows"));
        bar.tick();
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    let total: u64 = report.copied.iter().map(|(_, n)| n).sum();
    println!("copied {total} rows in {} tables into {}", report.copied.len(), report.target);
    for (table, n) in report.copied.iter().filter(|(_, n)| *n > 0) {
        println!("  {table:<20} {n:>10}");
    }
    for (table, a, b) in &report.count_mismatches {
        println!("rows differ in {table}: {a} in SQLite, {b} in PostgreSQL");
    }
    for name in &report.verdict_mismatches {
        println!("verdicts differ for client {name}");
    }
    if !report.matches() {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "the copy does not match the SQLite database; keep using it, and report this with the lines above"
        )));
    }
    println!(
        "checked: equal rows in every table, and equal verdicts of the last 90 days for {} clients",
        report.clients_compared
    );
    println!("to switch, put this in the [store] section of the config and restart coachd:");
    println!("url = \"{}\"", report.target);
    Ok(())
}
