//! `coachd doctor`: checks the install and explains each problem with its fix. Nothing is
//! created or changed: the database is looked at read-only first ([`crate::store::inspect`])
//! and opened as a store only when it is sound, holds this key and needs no upgrade.
//!
//! Each check is `ok`, `warn` (works, but something will bite: no backup yet, the daemon
//! not running, the clock unknown), `fail` (broken: fix it) or `skip` (could not be
//! looked at because an earlier check failed, or not in use). The command exits 0 when
//! nothing failed, warnings included, and 1 when anything did. Every probe of the
//! outside world (D-Bus, `timedatectl`, `/healthz`) has a time limit.

mod os;

use crate::config::{Config, Problems};
use crate::paths::DataDir;
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// How long any one probe of the outside world may take.
pub const PROBE_LIMIT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked, a stable name: `data_dir`, `key`, `database`, `backup`, `disk`,
    /// `clock`, `config`, `bluez`, `bluetooth_access`, `adapter`, `sensor`, `provider`,
    /// `webhooks`, `account`, `daemon`.
    pub check: &'static str,
    /// Which one, when there are several (an adapter, a sensor's address, a provider,
    /// `client/provider`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub status: Status,
    pub message: String,
    /// What to do about it (never for ok).
    pub fix: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `ok`, `warn` or `fail`: the worst of the checks.
    pub status: Status,
    pub failures: usize,
    pub warnings: usize,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Self {
        let count = |s| checks.iter().filter(|c| c.status == s).count();
        let (failures, warnings) = (count(Status::Fail), count(Status::Warn));
        let status = if failures > 0 {
            Status::Fail
        } else if warnings > 0 {
            Status::Warn
        } else {
            Status::Ok
        };
        Self { status, failures, warnings, checks }
    }

    pub fn get<'a>(&'a self, check: &'a str) -> impl Iterator<Item = &'a Check> {
        self.checks.iter().filter(move |c| c.check == check)
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>, fix: Option<String>) {
        self.0.push(Check { check, subject: None, status, message: message.into(), fix });
    }

    fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Ok, message, None);
    }

    fn warn(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.add(check, Status::Warn, message, Some(fix.into()));
    }

    fn fail(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.add(check, Status::Fail, message, Some(fix.into()));
    }

    fn skip(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Skip, message, None);
    }

    /// The last check gets a subject.
    fn about(&mut self, subject: impl Into<String>) {
        if let Some(c) = self.0.last_mut() {
            c.subject = Some(subject.into());
        }
    }
}

/// Run every check on a data dir. `config`: the loaded configuration, or its problems
/// (then the defaults are used for the rest).
pub async fn doctor(data: &DataDir, config_path: &Path, config: Result<Config, Problems>) -> Report {
    let mut c = Checks(Vec::new());
    let config = match config {
        Ok(cfg) => {
            let shown =
                if config_path.exists() { config_path.display().to_string() } else { "defaults (no file)".into() };
            c.ok("config", format!("configuration loads: {shown}"));
            cfg
        }
        Err(p) => {
            c.fail(
                "config",
                format!("{} problem(s) in the configuration: {}", p.0.len(), p.to_string().replace('\n', "; ")),
                format!("edit {} (`coachd config check` lists each problem with its place)", config_path.display()),
            );
            Config::default()
        }
    };
    let dir_ok = data_dir(&mut c, data.root());
    let cipher = key(&mut c, data, config.store.is_postgres());
    let store = if dir_ok { database(&mut c, data, &config, cipher.as_ref()).await } else { None };
    if dir_ok {
        backup(&mut c, data);
        disk(&mut c, data.root());
    } else {
        c.skip("backup", "no data dir");
        c.skip("disk", "no data dir");
    }
    let served = match &store {
        Some(s) => s.served_url().await.ok().flatten(),
        None => None,
    };
    let devices = match &store {
        Some(s) => s.devices().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let paired: Vec<_> = devices.into_iter().filter(|d| d.client_id.is_some()).collect();
    let health_url = served.clone().unwrap_or_else(|| config.web.base_url());
    let ble_enabled = config.ble.enabled;
    // The slow probes side by side: at most one time limit for all three.
    let (bluez, clock, health) = tokio::join!(
        async move {
            if ble_enabled {
                Some(probe_bluez().await)
            } else {
                None
            }
        },
        tokio::task::spawn_blocking(|| os::clock_synchronised(PROBE_LIMIT)),
        async {
            // Where it last served (its public address, when it has one), else where it
            // listens: a public address that does not answer from here (a proxy down, or no
            // hairpin NAT) is told apart from a daemon that is not running.
            let first = healthz(&health_url).await;
            let local = format!("http://{}", config.web.listen);
            match first {
                Err(e) if local != health_url => (Err(e), Some((local.clone(), healthz(&local).await))),
                other => (other, None),
            }
        },
    );
    match clock {
        Ok(Ok(true)) => c.ok("clock", "the system clock is synchronised (NTP)"),
        Ok(Ok(false)) => c.warn(
            "clock",
            "the system clock is not synchronised: days and homework windows may be judged at the wrong time",
            "timedatectl set-ntp true (or start chrony/ntpd)",
        ),
        Ok(Err(e)) => c.warn(
            "clock",
            format!("could not be checked ({e})"),
            "make sure an NTP client keeps the clock right (systemd-timesyncd, chrony)",
        ),
        Err(e) => c.warn("clock", format!("could not be checked ({e})"), "check the clock by hand: timedatectl"),
    }
    bluetooth(&mut c, &config, bluez, !paired.is_empty());
    let now = Utc::now();
    if store.is_none() {
        // What only the database knows (paired sensors, accounts, where the daemon served)
        // is not read from one that failed above.
        c.skip("sensor", "not checked: the database is not usable (see above)");
        c.skip("account", "not checked: the database is not usable (see above)");
    }
    for d in &paired {
        sensor(&mut c, d, now);
    }
    providers(&mut c, &config, store.as_ref()).await;
    daemon(&mut c, served.as_deref(), &health_url, health);
    if let Some(s) = store {
        s.close().await;
    }
    Report::new(c.0)
}

fn data_dir(c: &mut Checks, root: &Path) -> bool {
    let shown = root.display();
    let meta = match os::owned(root) {
        Ok(m) if m.is_dir => m,
        Ok(_) => {
            c.fail(
                "data_dir",
                format!("{shown} is not a folder"),
                "point --data-dir (or COACHD_DATA_DIR) at the data dir",
            );
            return false;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            c.fail(
                "data_dir",
                format!("{shown} does not exist"),
                "coachd init (or pass --data-dir / set COACHD_DATA_DIR to the right folder)",
            );
            return false;
        }
        Err(e) => {
            c.fail(
                "data_dir",
                format!("{shown}: {e}"),
                "run doctor as the service user, e.g. sudo -u coachd coachd doctor",
            );
            return false;
        }
    };
    let me = os::euid();
    let owner = os::user_name(meta.uid);
    if let Err(e) = os::writable(root) {
        c.fail(
            "data_dir",
            format!("{shown} is not writable by {}: {e}", os::user_name(me)),
            format!(
                "chown -R {} {shown} (and check ReadWritePaths/StateDirectory if it runs under systemd)",
                os::user_name(me)
            ),
        );
        return true;
    }
    if meta.uid != me && me != 0 {
        c.fail(
            "data_dir",
            format!("{shown} belongs to {owner}, but coachd runs as {}", os::user_name(me)),
            format!("chown -R {} {shown}", os::user_name(me)),
        );
    } else if meta.mode & 0o077 != 0 {
        c.fail(
            "data_dir",
            format!("{shown} has mode {:o}: others may read clients' health data", meta.mode),
            format!("chmod 700 {shown}"),
        );
    } else if meta.uid != me {
        c.warn(
            "data_dir",
            format!("{shown} belongs to {owner}; doctor runs as root, so it may see what the daemon cannot"),
            format!("run it as the service user: sudo -u {owner} coachd doctor"),
        );
    } else {
        c.ok("data_dir", format!("{shown}: owned by {owner}, mode {:o}, writable", meta.mode));
    }
    true
}

/// `remote_database`: the store is a PostgreSQL server, so its database exists apart
/// from the data dir.
fn key(c: &mut Checks, data: &DataDir, remote_database: bool) -> Option<crate::crypto::Cipher> {
    let path = data.key();
    let shown = path.display();
    let meta = match os::owned(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if remote_database || data.database().exists() {
                c.fail(
                    "key",
                    format!("{shown} is missing, but the database exists: its sealed tokens cannot be opened"),
                    format!("put the original coachd.key back at {shown} (mode 600) from your backup"),
                );
            } else {
                c.fail("key", format!("{shown} is missing"), "coachd init");
            }
            return None;
        }
        Err(e) => {
            c.fail("key", format!("{shown}: {e}"), "run doctor as the service user");
            return None;
        }
    };
    if meta.mode & 0o077 != 0 {
        c.fail(
            "key",
            format!("{shown} has mode {:o}: others may read the key that seals provider tokens", meta.mode),
            format!("chmod 600 {shown}"),
        );
        return None;
    }
    match crate::crypto::load_key(&path) {
        Ok(cipher) => Some(cipher),
        Err(e) => {
            c.fail("key", e.to_string(), format!("restore the original coachd.key at {shown} from your backup"));
            None
        }
    }
}

async fn database(
    c: &mut Checks,
    data: &DataDir,
    config: &Config,
    cipher: Option<&crate::crypto::Cipher>,
) -> Option<Store> {
    if config.store.is_postgres() {
        return postgres(c, data, config, cipher).await;
    }
    let path = data.database();
    let shown = path.display();
    let newest = newest_backup(&data.root().join("backups")).map(|(p, _)| p);
    let restore = || match &newest {
        Some(b) => format!("stop the daemon, then coachd restore {}", b.display()),
        None => format!(
            "restore a backup with coachd restore FILE; without one, try sqlite3 {shown} .recover into a new file"
        ),
    };
    let key_shown = data.key().display().to_string();
    let found = if path.exists() {
        match tokio::time::timeout(PROBE_LIMIT * 4, crate::store::inspect::inspect(&path, PROBE_LIMIT)).await {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(e)) => Err((format!("{shown} cannot be read: {e}"), restore())),
            Err(_) => Err((
                format!("{shown} did not answer within {} s (locked by a stuck process?)", (PROBE_LIMIT * 4).as_secs()),
                "look for a hung coachd or sqlite3 holding it (fuser coachd.db), then try again".to_string(),
            )),
        }
    } else {
        Err((format!("{shown} does not exist"), "coachd init".to_string()))
    };
    // The key's line, now that there is (or is not) a database to match it with.
    if let Some(cipher) = cipher {
        match found.as_ref().map(|f| f.key_fingerprint.as_deref()) {
            Ok(Some(f)) if f != cipher.fingerprint() => c.fail(
                "key",
                format!("{key_shown} is key {}, but the database was sealed with key {f}", cipher.fingerprint()),
                "put the original coachd.key back from your backup (a new key cannot open the stored tokens)",
            ),
            Ok(_) => c.ok("key", format!("{key_shown}: mode 600, matches the database")),
            Err(_) => c.ok("key", format!("{key_shown}: mode 600 (no readable database to match it with)")),
        }
    }
    let found = match found {
        Ok(f) => f,
        Err((msg, fix)) => {
            c.fail("database", msg, fix);
            return None;
        }
    };
    let size = mib(found.size_bytes);
    if !found.sound() {
        let lines = found.quick_check.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        c.fail("database", format!("{shown} ({size}) is damaged: {lines}"), restore());
        return None;
    }
    if !found.unknown.is_empty() {
        c.fail(
            "database",
            format!("{shown} was upgraded by a newer coachd (schema {:?} unknown here)", found.unknown),
            "run the newer coachd, or restore a backup made by this version",
        );
        return None;
    }
    if found.applied < found.known {
        c.warn(
            "database",
            format!(
                "{shown} ({size}) is sound; {} of {} schema upgrades are still to apply",
                found.known - found.applied,
                found.known
            ),
            "the next `coachd run` (or any other command) applies them; take a backup first: coachd backup",
        );
        return None;
    }
    c.ok("database", format!("{shown}: {size}, integrity ok, schema current"));
    let cipher = cipher?.clone();
    match tokio::time::timeout(PROBE_LIMIT * 4, Store::open(&path, &config.store.options(), cipher)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            c.fail("database", format!("{shown} could not be opened: {e}"), restore());
            None
        }
        Err(_) => {
            c.warn(
                "database",
                format!("{shown} is sound but stayed locked for {} s", (PROBE_LIMIT * 4).as_secs()),
                "try again; if it stays locked, look for a hung process holding it (fuser coachd.db)",
            );
            None
        }
    }
}

/// The database check of a PostgreSQL store: reachable, migrated, sealed with this key.
async fn postgres(
    c: &mut Checks,
    data: &DataDir,
    config: &Config,
    cipher: Option<&crate::crypto::Cipher>,
) -> Option<Store> {
    let key_shown = data.key().display().to_string();
    let pg = match config.store.postgres() {
        Ok(pg) => pg,
        Err(e) => {
            c.fail("database", e, "fix store.password_file (or the credential store_password)");
            return None;
        }
    };
    let shown = pg.shown();
    let cipher = cipher?.clone();
    let fingerprint = cipher.fingerprint().to_string();
    match tokio::time::timeout(PROBE_LIMIT * 4, Store::open_postgres(&pg, &config.store.options(), cipher)).await {
        Ok(Ok(s)) => {
            c.ok("key", format!("{key_shown}: mode 600, matches the database"));
            match s.server_health().await {
                Ok(h) if h.checksum_failures > 0 => c.fail(
                    "database",
                    format!(
                        "PostgreSQL {shown}: the server found {} damaged pages (data checksum failures)",
                        h.checksum_failures
                    ),
                    "see the server's log; restore the database from a pg_dump or a coachd backup",
                ),
                Ok(h) => c.ok(
                    "database",
                    format!(
                        "PostgreSQL {shown}: reachable, integrity ok (no checksum failures reported), schema version {}",
                        h.schema_version
                    ),
                ),
                Err(e) => c.fail("database", format!("PostgreSQL {shown}: {e}"), "check the server's log"),
            }
            Some(s)
        }
        Ok(Err(crate::store::StoreError::KeyMismatch { stored, .. })) => {
            c.fail(
                "key",
                format!("{key_shown} is key {fingerprint}, but the database was sealed with key {stored}"),
                "put the original coachd.key back from your backup (a new key cannot open the stored tokens)",
            );
            None
        }
        Ok(Err(e)) => {
            c.fail(
                "database",
                format!("PostgreSQL {shown} cannot be used: {e}"),
                "check that the server runs, that store.url names the database and role, and the password",
            );
            None
        }
        Err(_) => {
            c.fail(
                "database",
                format!("PostgreSQL {shown} did not answer within {} s", (PROBE_LIMIT * 4).as_secs()),
                "check that the server runs and that nothing holds a lock on its tables (pg_stat_activity)",
            );
            None
        }
    }
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

fn newest_backup(dir: &Path) -> Option<(std::path::PathBuf, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            (m.is_file() && !e.file_name().to_string_lossy().starts_with('.')).then_some((e.path(), m.modified().ok()?))
        })
        .max_by_key(|(_, t)| *t)
}

fn backup(c: &mut Checks, data: &DataDir) {
    let dir = data.root().join("backups");
    match newest_backup(&dir) {
        None => c.warn(
            "backup",
            format!("no backup yet (none in {})", dir.display()),
            "coachd backup (the running daemon also makes one a day)",
        ),
        Some((path, at)) => {
            let age = at.elapsed().unwrap_or_default();
            let shown = age_text(age);
            if age > Duration::from_secs(36 * 3600) {
                c.warn(
                    "backup",
                    format!("the last backup, {}, is {shown} old", path.display()),
                    "coachd backup now; the daemon makes one a day, so is it running?",
                );
            } else {
                c.ok("backup", format!("last backup {shown} ago: {}", path.display()));
            }
        }
    }
}

fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

fn disk(c: &mut Checks, root: &Path) {
    match os::disk_space(root) {
        Err(e) => c.warn("disk", format!("free space unknown: {e}"), format!("df -h {}", root.display())),
        Ok((free, total)) => {
            let pct = if total > 0 { free as f64 * 100.0 / total as f64 } else { 0.0 };
            let msg = format!("{} free of {} ({pct:.0} %) on {}", mib(free), mib(total), root.display());
            let fix = "free space there (old exports, logs), or move the data dir to a larger disk";
            if free < 64 * 1024 * 1024 {
                c.fail("disk", format!("{msg}: too little to store new data"), fix);
            } else if free < 1024 * 1024 * 1024 || pct < 5.0 {
                c.warn("disk", format!("{msg}: running low"), fix);
            } else {
                c.ok("disk", msg);
            }
        }
    }
}

#[cfg(feature = "ble")]
async fn probe_bluez() -> Result<crate::ble::probe::Bluez, String> {
    // The probe keeps its own time limit on a thread of its own.
    tokio::task::spawn_blocking(|| crate::ble::probe::probe(PROBE_LIMIT)).await.map_err(|e| e.to_string())
}

#[cfg(not(feature = "ble"))]
async fn probe_bluez() -> Result<(), String> {
    Err("this coachd was built without Bluetooth support (cargo feature `ble`)".into())
}

#[cfg(feature = "ble")]
fn bluetooth(c: &mut Checks, config: &Config, probe: Option<Result<crate::ble::probe::Bluez, String>>, in_use: bool) {
    use crate::ble::probe::Bluez;
    let Some(probe) = probe else {
        c.skip("bluez", "Bluetooth is off in the configuration ([ble] enabled = false)");
        return;
    };
    // Without a paired sensor a missing BlueZ costs nothing yet: a warning.
    let bad = |c: &mut Checks, check, msg: String, fix: &str| {
        if in_use {
            c.fail(check, msg, fix);
        } else {
            c.warn(check, format!("{msg} (no sensor is paired yet)"), fix);
        }
    };
    let group = os::group_id("bluetooth");
    let member = group.is_some_and(|g| os::groups().contains(&g));
    let user = os::user_name(os::euid());
    match probe {
        Err(e) => c.fail("bluez", format!("the probe failed: {e}"), "report this; try `busctl tree org.bluez`"),
        Ok(Bluez::NoBus(e)) => bad(
            c,
            "bluez",
            format!("the D-Bus system bus is not reachable: {e}"),
            "start D-Bus (systemctl start dbus); in a container, mount /run/dbus/system_bus_socket",
        ),
        Ok(Bluez::NotRunning(e)) => bad(
            c,
            "bluez",
            format!("BlueZ is not running (nothing owns org.bluez: {e})"),
            "apt-get install bluez && systemctl enable --now bluetooth",
        ),
        Ok(Bluez::Denied(e)) => {
            c.ok("bluez", "BlueZ is running");
            let fix = format!(
                "usermod -aG bluetooth {user} (then restart coachd), or allow it in /etc/dbus-1/system.d/bluetooth.conf"
            );
            let msg = format!(
                "the D-Bus policy refuses {user} access to BlueZ ({}): {e}",
                if member { "in group bluetooth" } else { "not in group bluetooth" }
            );
            if in_use {
                c.fail("bluetooth_access", msg, fix);
            } else {
                c.warn("bluetooth_access", msg, fix);
            }
        }
        Ok(Bluez::Failed(e)) => {
            bad(c, "bluez", format!("BlueZ answered with an error: {e}"), "systemctl restart bluetooth")
        }
        Ok(Bluez::Adapters(adapters)) => {
            c.ok("bluez", "BlueZ is running");
            c.ok(
                "bluetooth_access",
                format!(
                    "{user} may use BlueZ{}",
                    match (group, member) {
                        (Some(_), true) => " (in group bluetooth)",
                        (Some(_), false) => " (the D-Bus policy allows it without the bluetooth group)",
                        (None, _) => "",
                    }
                ),
            );
            let wanted = config.ble.adapter.trim();
            if adapters.is_empty() {
                bad(c, "adapter", "BlueZ has no Bluetooth adapter".into(), "plug in a Bluetooth dongle; rfkill list");
            }
            if !wanted.is_empty()
                && !adapters.iter().any(|a| a.name == wanted || a.address.eq_ignore_ascii_case(wanted))
            {
                let have: Vec<_> = adapters.iter().map(|a| format!("{} ({})", a.name, a.address)).collect();
                c.fail(
                    "adapter",
                    format!("the configured adapter {wanted:?} is not there (BlueZ has: {})", have.join(", ")),
                    "set [ble] adapter to one of those, or empty for the only one",
                );
            }
            for a in adapters {
                let used = wanted.is_empty() || a.name == wanted || a.address.eq_ignore_ascii_case(wanted);
                if a.powered {
                    c.ok("adapter", format!("{} ({}) is powered", a.name, a.address));
                } else if used {
                    let fix = format!("bluetoothctl power on (rfkill unblock bluetooth if it is blocked); {}", a.name);
                    bad(c, "adapter", format!("{} ({}) is powered off", a.name, a.address), &fix);
                } else {
                    c.skip("adapter", format!("{} ({}) is off and not the configured adapter", a.name, a.address));
                }
                c.about(a.name);
            }
        }
    }
}

#[cfg(not(feature = "ble"))]
fn bluetooth(c: &mut Checks, _config: &Config, _probe: Option<Result<(), String>>, in_use: bool) {
    let msg = "this coachd was built without Bluetooth support (cargo feature `ble`)";
    if in_use {
        c.fail("bluez", msg, "install a build with the `ble` feature to record paired sensors");
    } else {
        c.skip("bluez", msg);
    }
}

fn sensor(c: &mut Checks, d: &crate::store::devices::Device, now: DateTime<Utc>) {
    let who = d.client.clone().unwrap_or_default();
    let name = d.name.clone().map(|n| format!(" {n}")).unwrap_or_default();
    let fix = "wear or wake the sensor near the Bluetooth adapter while the daemon runs (a strap only sends when \
               worn); coachd devices scan lists what is heard";
    match d.last_seen_ms.and_then(DateTime::<Utc>::from_timestamp_millis) {
        None => c.warn("sensor", format!("{}{name} ({who}'s) has never been heard", d.address), fix),
        Some(at) => {
            let age = (now - at).to_std().unwrap_or_default();
            if age > Duration::from_secs(14 * 86_400) {
                c.warn("sensor", format!("{}{name} ({who}'s) was last heard {} ago", d.address, age_text(age)), fix);
            } else {
                c.ok("sensor", format!("{}{name} ({who}'s) last heard {} ago", d.address, age_text(age)));
            }
        }
    }
    c.about(d.address.clone());
}

async fn providers(c: &mut Checks, config: &Config, store: Option<&Store>) {
    let accounts = match store {
        Some(s) => s.accounts().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let url = config.web.public_url.trim();
    for p in crate::providers::PROVIDERS {
        let name = p.name();
        let settings = config.providers.get(name);
        let mine: Vec<_> = accounts.iter().filter(|a| a.provider == name).collect();
        if !settings.enabled {
            c.skip("provider", format!("{name} is off ([providers.{name}] enabled = false)"));
            c.about(name);
            continue;
        }
        // Connected with the client's own API key, or with the trainer's API application.
        let oauth = crate::providers::Manifest::load(name, settings)
            .is_ok_and(|m| m.auth == crate::providers::AuthKind::Oauth2);
        let credentials =
            if oauth { crate::providers::credentials(name, settings).err().map(|e| e.to_string()) } else { None };
        let configured = !oauth || credentials.is_none();
        match (&credentials, mine.is_empty()) {
            (Some(_), true) if settings.client_id.trim().is_empty() => {
                c.skip("provider", format!("{name} is not set up (no API application)"));
                c.about(name);
                continue;
            }
            (Some(e), true) => {
                c.warn("provider", format!("{name}: {e}"), format!("set providers.{name}.client_secret"))
            }
            (Some(e), false) => c.fail(
                "provider",
                format!("{name} has {} account(s) but cannot sync them: {e}", mine.len()),
                format!("set providers.{name}.client_id and client_secret in coachd.toml"),
            ),
            (None, _) if oauth => c.ok("provider", format!("{name}: API application set, {} account(s)", mine.len())),
            (None, true) if !oauth => {
                c.skip("provider", format!("{name}: no accounts"));
                c.about(name);
                continue;
            }
            (None, _) => c.ok("provider", format!("{name}: {} account(s), each with the client's API key", mine.len())),
        }
        c.about(name);
        // Webhooks only reach a public https:// address (the providers' rule).
        if configured && p.takes_webhooks() {
            let interval = config.providers.sync_interval_min;
            let why = format!("{name} pushes new activities only to a public https:// address; until then coachd polls every {interval} min");
            if url.is_empty() {
                c.warn(
                    "webhooks",
                    format!("web.public_url is not set: {why}"),
                    "set web.public_url to the https:// address of your reverse proxy",
                );
            } else if !url.starts_with("https://") {
                c.warn(
                    "webhooks",
                    format!("web.public_url {url} is not https: {why}"),
                    "put coachd behind a TLS reverse proxy and set web.public_url to its https:// address",
                );
            } else {
                c.ok("webhooks", format!("{name} can push to {url}/webhooks/{name}"));
            }
            c.about(name);
        }
        for a in mine {
            let who = format!("{}/{name}", a.client);
            if !a.syncable() {
                c.warn(
                    "account",
                    format!(
                        "{who} is {}{}",
                        a.state.replace('_', " "),
                        a.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                    format!("the client connects again: coachd connect {name} {}", a.client),
                );
            } else if a.failing() {
                c.warn(
                    "account",
                    format!("{who}: the last sync failed: {}", a.last_error.as_deref().unwrap_or("unknown error")),
                    format!("coachd sync {} {name} to retry and see the error", a.client),
                );
            } else {
                let last = a.last_sync.map_or("not synced yet".to_string(), |t| format!("last synced {t}"));
                c.ok("account", format!("{who}: connected, {last}"));
            }
            c.about(who);
        }
    }
}

/// `/healthz`'s status field, or why it could not be read.
async fn healthz(base: &str) -> Result<String, String> {
    let http = reqwest::Client::builder().timeout(PROBE_LIMIT).build().map_err(|e| e.to_string())?;
    let r = http.get(format!("{}/healthz", base.trim_end_matches('/'))).send().await.map_err(|e| e.to_string())?;
    let code = r.status();
    let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    let status = body.get("status").and_then(|s| s.as_str()).unwrap_or("unknown").to_string();
    if code.is_success() {
        Ok(status)
    } else {
        Err(format!("HTTP {code}, status {status}"))
    }
}

type Health = (Result<String, String>, Option<(String, Result<String, String>)>);

fn daemon(c: &mut Checks, served: Option<&str>, url: &str, (health, local): Health) {
    let start = "systemctl start coachd (or coachd run)";
    if let (Err(e), Some((local, Ok(s)))) = (&health, &local) {
        c.warn(
            "daemon",
            format!("running at {local} (/healthz: {s}), but {url} does not answer from here ({e})"),
            "check the reverse proxy in front of it and web.public_url (some routers do not let the server reach \
             its own public address: then try it from outside)",
        );
        return;
    }
    match (health, served) {
        (Ok(s), _) if s == "ok" => c.ok("daemon", format!("running at {url} (/healthz: ok)")),
        (Ok(s), _) => c.warn(
            "daemon",
            format!("running at {url}, but /healthz says {s}"),
            format!("curl {url}/healthz shows which source fails; journalctl -u coachd"),
        ),
        (Err(e), Some(_)) => c.warn(
            "daemon",
            format!("not reachable at {url}, where it last served ({e})"),
            format!("{start}; journalctl -u coachd says why it stopped"),
        ),
        (Err(_), None) => c.warn("daemon", "has never run on this data dir", start),
    }
}
