//! Configuration: defaults, then the TOML file, then `COACHD__SECTION__KEY` variables,
//! loaded once into typed structs and passed down explicitly.
//!
//! Loading reports every problem it finds (syntax, unknown keys, wrong types, values out
//! of range), each with where it came from: `coachd.toml: [web] listen: ...` or
//! `COACHD__WEB__LISTEN: ...`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The commented default configuration that `coachd init` writes.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "COACHD__";

/// The sections a configuration may have.
const SECTIONS: [&str; 13] = [
    "web",
    "log",
    "store",
    "supervisor",
    "clients",
    "homework",
    "inbox",
    "ble",
    "providers",
    "backup",
    "mqtt",
    "notify",
    "collector",
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub web: WebConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub supervisor: SupervisorConfig,
    pub clients: ClientsConfig,
    pub homework: HomeworkConfig,
    pub inbox: InboxConfig,
    pub ble: BleConfig,
    pub providers: ProvidersConfig,
    pub backup: BackupConfig,
    pub mqtt: MqttConfig,
    pub notify: NotifyConfig,
    pub collector: CollectorConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// The address phones and browsers reach coachd at (behind a reverse proxy, say);
    /// empty means `http://` + `listen`.
    pub public_url: String,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` / `Forwarded`
    /// headers name the client; from any other peer those headers are ignored.
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// An address or a CIDR block (`10.0.0.1`, `192.168.1.0/24`, `fd00::/8`), written as
/// text in the file; an IPv4 block also matches its IPv4-mapped IPv6 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy {
    network: std::net::IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        let (net, addr, bits) = match (self.network, ip) {
            (V4(n), V4(a)) => (u128::from(n.to_bits()), u128::from(a.to_bits()), 32),
            (V6(n), V6(a)) => (n.to_bits(), a.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (addr >> shift)
    }
}

impl std::str::FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or a CIDR block like 10.0.0.0/8 or fd00::/8");
        let (addr, prefix) = text.trim().split_once('/').map_or((text.trim(), None), |(a, p)| (a, Some(p)));
        let network: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { network, prefix })
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(p: TrustedProxy) -> Self {
        let max = if p.network.is_ipv4() { 32 } else { 128 };
        if p.prefix == max {
            p.network.to_string()
        } else {
            format!("{}/{}", p.network, p.prefix)
        }
    }
}

impl WebConfig {
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Human }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Empty: the SQLite file in the data dir. `postgres://user@host:port/dbname`: that
    /// PostgreSQL database.
    pub url: String,
    /// PostgreSQL: a file holding the password. Empty: the systemd credential
    /// `$CREDENTIALS_DIRECTORY/store_password` if there is one, else the URL's own or none.
    pub password_file: String,
    /// PostgreSQL: each statement is cancelled after this long, in ms (0: no limit).
    pub statement_timeout_ms: u64,
    /// Connections in the pool (SQLite: readers beside the one writer).
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub synchronous: Synchronous,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            password_file: String::new(),
            statement_timeout_ms: 30_000,
            max_connections: 4,
            busy_timeout_ms: 5000,
            synchronous: Synchronous::Full,
        }
    }
}

impl StoreConfig {
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            synchronous_full: self.synchronous == Synchronous::Full,
            max_connections: self.max_connections,
        }
    }

    /// Whether the store is a PostgreSQL server rather than the data dir's file.
    pub fn is_postgres(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// The PostgreSQL store's options, its password read from the file or credential.
    pub fn postgres(&self) -> Result<crate::store::PgOptions, String> {
        let file = if !self.password_file.trim().is_empty() {
            Some(std::path::PathBuf::from(self.password_file.trim()))
        } else {
            std::env::var_os("CREDENTIALS_DIRECTORY")
                .map(|dir| std::path::Path::new(&dir).join("store_password"))
                .filter(|p| p.exists())
        };
        let password = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    format!("cannot read the database password from {}: {e}; check store.password_file", path.display())
                })?;
                Some(crate::crypto::Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
            }
            None => None,
        };
        Ok(crate::store::PgOptions {
            url: self.url.trim().to_string(),
            password,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisorConfig {
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub healthy_after_s: u64,
    pub shutdown_grace_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self { backoff_initial_ms: 1000, backoff_max_ms: 300_000, healthy_after_s: 60, shutdown_grace_ms: 3000 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientsConfig {
    /// IANA name; empty means the server's own time zone.
    pub default_tz: String,
}

/// Home Assistant over MQTT: each client a device with sensors, through a broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    pub enabled: bool,
    /// The broker's host name or address, and its port (plain MQTT, no TLS).
    pub host: String,
    pub port: u16,
    /// Empty: connect without a login.
    pub username: String,
    /// Empty: read from `$CREDENTIALS_DIRECTORY/mqtt_password` (systemd), else none.
    pub password: crate::crypto::Secret<String>,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// Where coachd's own topics go: `BASE/status`, `BASE/client/ID/...`.
    pub base_topic: String,
    /// How often states are recomputed (only changes are published), in seconds.
    pub interval_s: u64,
    /// Reconnection attempts to a broker that is away back off up to this delay, in seconds.
    pub reconnect_max_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 1883,
            username: String::new(),
            password: crate::crypto::Secret::default(),
            discovery_prefix: "homeassistant".into(),
            base_topic: "coachd".into(),
            interval_s: 60,
            reconnect_max_s: 60,
        }
    }
}

/// Reminders ("nudges") to clients through their channels (`coachd notify set`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// Send nudges while `coachd run` runs (only clients with a channel get any).
    pub enabled: bool,
    /// How often the schedule and the outbox are looked at, in seconds.
    pub interval_s: u64,
    /// A windowed (or nightly) homework's reminder goes out this long before the window ends.
    pub lead_minutes: u32,
    /// A whole-day homework's reminder (and a weekly one's, on its last day), local `HH:MM`.
    pub daily_at: String,
    /// No reminder in between, local `HH:MM-HH:MM`; empty: none.
    pub quiet_hours: String,
    /// A failing send is retried with backoff doubling from a minute up to this, in seconds.
    pub retry_max_s: u64,
    /// The trainers' weekly digest goes out on Mondays at this local `HH:MM` (in
    /// `clients.default_tz`, else the server's zone); empty: no digest.
    pub digest_at: String,
    /// A client's weekly message (their week, a link to reflect on it) goes out on their
    /// Sunday at this local `HH:MM`; empty: none.
    pub weekly_at: String,
    /// Also a daily digest, of the clients who need attention only, on the other days
    /// at `digest_at` (none on a day when nobody does).
    pub attention_daily: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_s: 60,
            lead_minutes: 90,
            daily_at: "20:00".into(),
            quiet_hours: "22:00-07:00".into(),
            retry_max_s: 1800,
            digest_at: "07:00".into(),
            weekly_at: "18:00".into(),
            attention_daily: false,
        }
    }
}

impl NotifyConfig {
    /// The engine's schedule settings. Call on a validated config; a bad value falls back to the default.
    pub fn nudge_settings(&self) -> crate::engine::nudge::NudgeSettings {
        use crate::engine::rule::Window;
        let d = Self::default();
        let time = |s: &str| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
        crate::engine::nudge::NudgeSettings {
            lead: chrono::Duration::minutes(i64::from(self.lead_minutes)),
            daily_at: time(&self.daily_at).or_else(|| time(&d.daily_at)).unwrap_or_default(),
            quiet: if self.quiet_hours.trim().is_empty() { None } else { Window::parse(&self.quiet_hours).ok() },
        }
    }
}

/// The daemon's daily backups into `DATA/backups/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {
    /// Make one a day while `coachd run` runs.
    pub daily: bool,
    /// How many daily backups to keep; older ones are deleted.
    pub retention: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self { daily: true, retention: 7 }
    }
}

/// The watched folder `DATA/inbox/<client>/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InboxConfig {
    pub enabled: bool,
    /// How often the folders are scanned, in ms; a file is imported once it is unchanged
    /// over one interval.
    pub poll_ms: u64,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self { enabled: true, poll_ms: 5000 }
    }
}

/// Cloud providers: how often and how far back to sync, and per provider (by name: the
/// `[providers.NAME]` tables) the trainer's app credentials, any manifest field to
/// override (URLs above all) and the provider's own keys. Which names exist, and which
/// keys each provider takes, only `providers` knows: it checks them
/// (`providers::config_problems`), so this module never lists providers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvidersConfig {
    pub sync_interval_min: u64,
    pub backfill_days: u32,
    /// `[providers.strava]`, `[providers.oura]`, ...: a provider without a table has the
    /// defaults.
    #[serde(flatten)]
    pub named: BTreeMap<String, ProviderSettings>,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self { sync_interval_min: 15, backfill_days: 90, named: BTreeMap::new() }
    }
}

/// The settings of a provider that has no table.
static DEFAULT_SETTINGS: std::sync::LazyLock<ProviderSettings> = std::sync::LazyLock::new(ProviderSettings::default);

impl ProvidersConfig {
    /// A provider's settings (the defaults when it has no table).
    pub fn get(&self, name: &str) -> &ProviderSettings {
        self.named.get(name).unwrap_or(&DEFAULT_SETTINGS)
    }

    /// A provider's settings to change (made with the defaults when it has no table).
    pub fn get_mut(&mut self, name: &str) -> &mut ProviderSettings {
        self.named.entry(name.to_string()).or_default()
    }
}

/// Equal when every provider's settings are, a missing table counting as the defaults
/// (so the commented default file, uncommented, equals the defaults).
impl PartialEq for ProvidersConfig {
    fn eq(&self, other: &Self) -> bool {
        self.sync_interval_min == other.sync_interval_min
            && self.backfill_days == other.backfill_days
            && self.named.keys().chain(other.named.keys()).all(|k| self.get(k) == other.get(k))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    pub enabled: bool,
    /// Strava's client ids are numbers: written either way.
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    /// Empty: read from `$CREDENTIALS_DIRECTORY/<provider>_client_secret` (systemd).
    pub client_secret: crate::crypto::Secret<String>,
    /// Overrides of the manifest's URLs; empty keeps the manifest's.
    pub authorize_url: String,
    pub token_url: String,
    pub api_base: String,
    /// Any other manifest field (providers/NAME.toml), replacing the manifest's value:
    /// `[providers.strava.manifest]` with e.g. `scopes = ["read", "activity:read"]` or
    /// `rate_limits = [...]`.
    pub manifest: toml::Table,
    /// The provider's own keys, beside the common ones in the same table (Strava's
    /// `webhook_verify_token`, Polar's `webhook_secret`, ...): each provider names and
    /// checks its own.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            client_id: String::new(),
            client_secret: crate::crypto::Secret::default(),
            authorize_url: String::new(),
            token_url: String::new(),
            api_base: String::new(),
            manifest: toml::Table::new(),
            extra: Extra::default(),
        }
    }
}

impl ProviderSettings {
    /// A provider key's text; None when it is missing or empty.
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.0.get(key).and_then(toml::Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    /// A provider key that holds a secret.
    pub fn extra_secret(&self, key: &str) -> Option<crate::crypto::Secret<String>> {
        self.extra_str(key).map(|s| crate::crypto::Secret::new(s.to_string()))
    }
}

/// A provider's own keys. A key whose name ends in `secret`, `token` or `key` holds a
/// secret: `Debug` and serialized output (`coachd config show`) print `***`. An empty
/// text counts as unset, the way the commented default file shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Extra(pub toml::Table);

impl Extra {
    pub fn is_secret(key: &str) -> bool {
        ["secret", "token", "key"].iter().any(|end| key.ends_with(end))
    }

    fn shown(&self) -> toml::Table {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), if Self::is_secret(k) { toml::Value::String("***".into()) } else { v.clone() }))
            .collect()
    }

    fn set(&self) -> BTreeMap<&String, &toml::Value> {
        self.0.iter().filter(|(_, v)| v.as_str() != Some("")).collect()
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        self.set() == other.set()
    }
}

impl fmt::Debug for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.shown()).finish()
    }
}

impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(s)
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(i64),
    }
    Ok(match Either::deserialize(d)? {
        Either::Text(s) => s,
        Either::Number(n) => n.to_string(),
    })
}

/// The Bluetooth collector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BleConfig {
    pub enabled: bool,
    /// The adapter to use, by address (`00:1A:7D:DA:71:13`) or name (`hci0`); empty
    /// means the only one (with several, the first by name).
    pub adapter: String,
    /// A session ends after this many seconds without a valid sample.
    pub session_silence_s: u64,
    /// Samples are committed at least this often, in seconds.
    pub flush_s: u64,
    /// A connected device silent this long is disconnected and connected again, in seconds.
    pub watchdog_s: u64,
    /// Reconnection attempts back off up to this delay, in seconds.
    pub reconnect_max_s: u64,
    /// With BlueZ absent or gone, how often to look for it again, in seconds.
    pub bluez_retry_s: u64,
}

impl Default for BleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            adapter: String::new(),
            session_silence_s: 120,
            flush_s: 5,
            watchdog_s: 30,
            reconnect_max_s: 60,
            bluez_retry_s: 10,
        }
    }
}

/// Collector mode (`coachd collect`): this box records Bluetooth sensors and forwards
/// the sessions to a hub. The hub itself needs nothing here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectorConfig {
    /// The hub's URL, `https://…` (plain `http://` only to a loopback address).
    pub hub: String,
    /// The file holding this collector's token (`coachd collector add NAME` at the hub prints it).
    pub token_file: String,
    /// The outbox's size limit, in MB: when full, new batches are not stored (and said so).
    pub outbox_max_mb: u64,
    /// Failed forwards are retried with backoff (and jitter) up to this delay, in seconds.
    pub retry_max_s: u64,
    /// How often the collector reports its state and reads its pairing list (and with it
    /// a scan the hub asks for), in seconds.
    pub report_s: u64,
    /// An inbox folder on the collector: files dropped into `INBOX/<client>/` (the
    /// client's name at the hub) are forwarded to the hub and imported there. Empty: none.
    /// A relative path is inside the data dir.
    pub inbox: String,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            hub: String::new(),
            token_file: String::new(),
            outbox_max_mb: 256,
            retry_max_s: 60,
            report_s: 10,
            inbox: String::new(),
        }
    }
}

/// Whether `url` may carry a collector's token: https, or http to a loopback address.
pub fn hub_url_problem(url: &str) -> Option<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Some(format!("{url:?} is not a URL; write the hub's address, e.g. https://coach.example.com"));
    };
    let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "{url:?} is plain http to another machine: the collector's token and clients' sessions would cross the \
             network unencrypted; use https:// (plain http only to 127.0.0.1 or ::1)"
        )),
        other => Some(format!("{url:?}: scheme {other:?}; use https://")),
    }
}

/// How verdicts are reached (defaults follow ../shared/reference/compliance.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HomeworkConfig {
    /// Done at this share of the target, in percent.
    pub done_percent: f64,
    /// Partial at this share of the target, in percent; missed below it.
    pub partial_percent: f64,
    /// Hours after a window closes that late syncs are awaited (the verdict stays pending).
    pub grace_hours: f64,
    /// The window of "every night" / "before bed" homework, `HH:MM-HH:MM`.
    pub nightly_window: String,
    /// needs_attention when 7/30/90-day adherence drops this many points against the window before.
    pub attention_drop_points: f64,
}

impl Default for HomeworkConfig {
    fn default() -> Self {
        Self {
            done_percent: 100.0,
            partial_percent: 50.0,
            grace_hours: 6.0,
            nightly_window: "19:00-03:00".into(),
            attention_drop_points: 20.0,
        }
    }
}

impl HomeworkConfig {
    /// The engine's settings. Call on a validated config; a bad window falls back to the default.
    pub fn judge_config(&self) -> crate::engine::judge::JudgeConfig {
        use crate::engine::rule::{Bands, Window};
        crate::engine::judge::JudgeConfig {
            bands: Bands { done: self.done_percent / 100.0, partial: self.partial_percent / 100.0 },
            grace: chrono::Duration::minutes((self.grace_hours * 60.0).round() as i64),
            nightly: Window::parse(&self.nightly_window)
                .or_else(|_| Window::parse(&HomeworkConfig::default().nightly_window))
                .unwrap_or_else(|_| unreachable!("the default nightly window parses")),
            no_steps: Vec::new(),
        }
    }
}

/// One problem in the configuration, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found while loading.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Where each leaf value came from, by dotted key.
type Origins = BTreeMap<String, String>;

impl Config {
    /// Load from `path` (a missing file means defaults) and the given environment.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
        Self::load_with(path, env, |_| Vec::new())
    }

    /// [`Config::load`], plus checks that need another module's knowledge (a provider's
    /// manifest): `check` returns (dotted key, problem), located like the loader's own.
    /// The application layer passes every module's check (`app::load_config`).
    pub fn load_with(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        check: impl Fn(&Config) -> Vec<(String, String)>,
    ) -> Result<Config, Problems> {
        let file_name = path.display().to_string();
        let mut problems = Vec::new();
        let mut origins = Origins::new();
        let mut merged = toml::Table::new();
        match std::fs::read_to_string(path) {
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(table) => {
                    record_origins(&table, "", &file_name, &mut origins);
                    merged = table;
                }
                Err(e) => problems.push(Problem {
                    location: file_name.clone(),
                    message: e.to_string().trim().replace('\n', "\n    "),
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(Problem { location: file_name.clone(), message: format!("cannot read: {e}") }),
        }
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            let keys: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if keys.iter().any(String::is_empty) {
                problems
                    .push(Problem { location: name, message: "empty key segment; use COACHD__SECTION__KEY".into() });
                continue;
            }
            origins.insert(keys.join("."), name.clone());
            insert_path(&mut merged, &keys, env_value(&raw));
        }
        let config = Config {
            web: section(&merged, "web", &origins, &mut problems),
            log: section(&merged, "log", &origins, &mut problems),
            store: section(&merged, "store", &origins, &mut problems),
            supervisor: section(&merged, "supervisor", &origins, &mut problems),
            clients: section(&merged, "clients", &origins, &mut problems),
            homework: section(&merged, "homework", &origins, &mut problems),
            inbox: section(&merged, "inbox", &origins, &mut problems),
            ble: section(&merged, "ble", &origins, &mut problems),
            providers: section(&merged, "providers", &origins, &mut problems),
            backup: section(&merged, "backup", &origins, &mut problems),
            mqtt: section(&merged, "mqtt", &origins, &mut problems),
            notify: section(&merged, "notify", &origins, &mut problems),
            collector: section(&merged, "collector", &origins, &mut problems),
        };
        for key in merged.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem { location: locate(&origins, key), message: format!("unknown section [{key}]") });
            }
        }
        config.validate(&origins, &mut problems);
        if problems.is_empty() {
            for (key, message) in check(&config) {
                problems.push(Problem { location: locate(&origins, &key), message });
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Problems(problems))
        }
    }

    fn validate(&self, origins: &Origins, problems: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: String| problems.push(Problem { location: locate(origins, key), message });
        let url = &self.web.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            bad("web.public_url", format!("{url:?} must start with http:// or https://"));
        }
        if let Some(all) = self.web.trusted_proxies.iter().find(|p| p.prefix == 0) {
            bad(
                "web.trusted_proxies",
                format!(
                    "{} trusts every address, so any client could claim any other's; list your proxies' addresses",
                    String::from(*all)
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            bad("log.level", format!("{:?} is not a log level or filter: {e}", self.log.level));
        }
        let url = self.store.url.trim();
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bad(
                "store.url",
                "must be empty (the SQLite file in the data dir) or a postgres:// URL, e.g. \
                 postgres://coachd@localhost/coachd"
                    .into(),
            );
        } else if !url.is_empty() && url::Url::parse(url).is_err() {
            bad("store.url", "is not a valid URL (postgres://USER@HOST:PORT/DBNAME)".into());
        }
        if self.store.max_connections == 0 || self.store.max_connections > 200 {
            bad("store.max_connections", format!("{} must be between 1 and 200", self.store.max_connections));
        }
        if self.store.busy_timeout_ms == 0 || self.store.busy_timeout_ms > 600_000 {
            bad("store.busy_timeout_ms", format!("{} must be between 1 and 600000", self.store.busy_timeout_ms));
        }
        let s = &self.supervisor;
        if s.backoff_initial_ms == 0 {
            bad("supervisor.backoff_initial_ms", "must be at least 1".into());
        }
        if s.backoff_max_ms < s.backoff_initial_ms {
            bad(
                "supervisor.backoff_max_ms",
                format!("{} is below backoff_initial_ms ({})", s.backoff_max_ms, s.backoff_initial_ms),
            );
        }
        if s.shutdown_grace_ms > 4000 {
            bad(
                "supervisor.shutdown_grace_ms",
                format!("{} is over 4000: systemd expects coachd to stop within 5 s", s.shutdown_grace_ms),
            );
        }
        let h = &self.homework;
        if !(h.done_percent > 0.0 && h.done_percent <= 200.0) {
            bad("homework.done_percent", format!("{} must be above 0 and at most 200", h.done_percent));
        }
        if !(h.partial_percent > 0.0 && h.partial_percent <= h.done_percent) {
            bad("homework.partial_percent", format!("{} must be above 0 and at most done_percent", h.partial_percent));
        }
        if !(0.0..=72.0).contains(&h.grace_hours) {
            bad("homework.grace_hours", format!("{} must be between 0 and 72", h.grace_hours));
        }
        if let Err(e) = crate::engine::rule::Window::parse(&h.nightly_window) {
            bad("homework.nightly_window", e);
        }
        if !(h.attention_drop_points > 0.0 && h.attention_drop_points <= 100.0) {
            bad(
                "homework.attention_drop_points",
                format!("{} must be above 0 and at most 100", h.attention_drop_points),
            );
        }
        let b = &self.ble;
        for (key, value, range) in [
            ("ble.session_silence_s", b.session_silence_s, 5..=3600),
            ("ble.flush_s", b.flush_s, 1..=60),
            ("ble.watchdog_s", b.watchdog_s, 2..=600),
            ("ble.reconnect_max_s", b.reconnect_max_s, 1..=3600),
            ("ble.bluez_retry_s", b.bluez_retry_s, 1..=3600),
        ] {
            if !range.contains(&value) {
                bad(key, format!("{value} must be between {} and {}", range.start(), range.end()));
            }
        }
        if !b.adapter.is_empty()
            && crate::store::devices::parse_address(&b.adapter).is_err()
            && !b.adapter.starts_with("hci")
        {
            bad("ble.adapter", format!("{:?} is neither an adapter address nor a name like hci0", b.adapter));
        }
        let c = &self.collector;
        if !c.hub.is_empty() {
            if let Some(problem) = hub_url_problem(&c.hub) {
                bad("collector.hub", problem);
            }
        }
        for (key, value, range) in [
            ("collector.outbox_max_mb", c.outbox_max_mb, 1..=1_000_000),
            ("collector.retry_max_s", c.retry_max_s, 1..=3600),
            ("collector.report_s", c.report_s, 1..=3600),
        ] {
            if !range.contains(&value) {
                bad(key, format!("{value} must be between {} and {}", range.start(), range.end()));
            }
        }
        if !(100..=3_600_000).contains(&self.inbox.poll_ms) {
            bad("inbox.poll_ms", format!("{} must be between 100 and 3600000", self.inbox.poll_ms));
        }
        let p = &self.providers;
        if !(1..=1440).contains(&p.sync_interval_min) {
            bad("providers.sync_interval_min", format!("{} must be between 1 and 1440", p.sync_interval_min));
        }
        if !(1..=3650).contains(&p.backfill_days) {
            bad("providers.backfill_days", format!("{} must be between 1 and 3650", p.backfill_days));
        }
        for (name, s) in &p.named {
            for (key, url) in
                [("authorize_url", &s.authorize_url), ("token_url", &s.token_url), ("api_base", &s.api_base)]
            {
                if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                    bad(&format!("providers.{name}.{key}"), format!("{url:?} must start with http:// or https://"));
                }
            }
        }
        let m = &self.mqtt;
        if m.enabled && m.host.trim().is_empty() {
            bad("mqtt.host", "is empty: name the MQTT broker (e.g. 127.0.0.1)".into());
        }
        if m.port == 0 {
            bad("mqtt.port", "must be between 1 and 65535".into());
        }
        for (key, topic) in [("mqtt.discovery_prefix", &m.discovery_prefix), ("mqtt.base_topic", &m.base_topic)] {
            if topic.is_empty() || topic.starts_with('/') || topic.ends_with('/') || topic.contains(['+', '#', ' ']) {
                bad(key, format!("{topic:?} must be a topic without wildcards, spaces or a leading or trailing /"));
            }
        }
        for (key, value, range) in
            [("mqtt.interval_s", m.interval_s, 1..=3600), ("mqtt.reconnect_max_s", m.reconnect_max_s, 1..=3600)]
        {
            if !range.contains(&value) {
                bad(key, format!("{value} must be between {} and {}", range.start(), range.end()));
            }
        }
        let n = &self.notify;
        if chrono::NaiveTime::parse_from_str(n.daily_at.trim(), "%H:%M").is_err() {
            bad("notify.daily_at", format!("{:?} is not a time: write HH:MM, e.g. 20:00", n.daily_at));
        }
        if !n.digest_at.trim().is_empty() && chrono::NaiveTime::parse_from_str(n.digest_at.trim(), "%H:%M").is_err() {
            bad(
                "notify.digest_at",
                format!("{:?} is not a time: write HH:MM, e.g. 07:00, or \"\" for no digest", n.digest_at),
            );
        }
        if !n.weekly_at.trim().is_empty() && chrono::NaiveTime::parse_from_str(n.weekly_at.trim(), "%H:%M").is_err() {
            bad(
                "notify.weekly_at",
                format!("{:?} is not a time: write HH:MM, e.g. 18:00, or \"\" for none", n.weekly_at),
            );
        }
        if !n.quiet_hours.trim().is_empty() {
            if let Err(e) = crate::engine::rule::Window::parse(&n.quiet_hours) {
                bad("notify.quiet_hours", format!("{e}; or \"\" for none"));
            }
        }
        for (key, value, range) in [
            ("notify.interval_s", n.interval_s, 1..=3600),
            ("notify.lead_minutes", u64::from(n.lead_minutes), 0..=1440),
            ("notify.retry_max_s", n.retry_max_s, 60..=86_400),
        ] {
            if !range.contains(&value) {
                bad(key, format!("{value} must be between {} and {}", range.start(), range.end()));
            }
        }
        if !(1..=365).contains(&self.backup.retention) {
            bad(
                "backup.retention",
                format!("{} must be between 1 and 365 (daily backups kept)", self.backup.retention),
            );
        }
        let tz = &self.clients.default_tz;
        if !tz.is_empty() && tz.parse::<chrono_tz::Tz>().is_err() {
            bad("clients.default_tz", format!("{tz:?} is not an IANA time zone name (e.g. Europe/Berlin)"));
        }
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// Deserialize one section, reporting unknown keys and the first type error in it.
fn section<T: DeserializeOwned + Default>(
    merged: &toml::Table,
    name: &str,
    origins: &Origins,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(value) = merged.get(name) else { return T::default() };
    if !value.is_table() {
        problems.push(Problem { location: locate(origins, name), message: format!("[{name}] must be a table") });
        return T::default();
    }
    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value.clone(), &mut note_unknown);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    for key in unknown {
        let full = format!("{name}.{key}");
        problems.push(Problem { location: locate(origins, &full), message: format!("unknown key {full:?}") });
    }
    match result {
        Ok(v) => v,
        Err(e) => {
            let full = format!("{name}.{}", e.path());
            // toml appends "in `key`" on later lines; the location already says it.
            let message = e.inner().to_string().lines().next().unwrap_or_default().trim().to_string();
            problems.push(Problem { location: locate(origins, &full), message });
            T::default()
        }
    }
}

fn record_origins(table: &toml::Table, prefix: &str, file: &str, origins: &mut Origins) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => record_origins(t, &key, file, origins),
            _ => {
                let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
                let shown =
                    if section.is_empty() { format!("{file} {leaf}") } else { format!("{file} [{section}] {leaf}") };
                origins.insert(key, shown);
            }
        }
    }
}

/// Where a dotted key came from; for a section, where its first key came from.
fn locate(origins: &Origins, key: &str) -> String {
    if let Some(o) = origins.get(key) {
        return o.clone();
    }
    let prefix = format!("{key}.");
    origins
        .iter()
        .find(|(k, _)| k.starts_with(&prefix))
        .map(|(_, o)| o.split(" [").next().unwrap_or(o).to_string())
        .unwrap_or_else(|| key.to_string())
}

fn insert_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let Some((last, parents)) = keys.split_last() else { return };
    let mut t = table;
    for k in parents {
        let entry = t.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        t = inner;
    }
    t.insert(last.clone(), value);
}

/// An environment value is read as a TOML value when it is one (`5000`, `true`), else as a string.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, Problems> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coachd.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn default_file_documents_the_defaults() {
        // Uncommenting every `# key = value` line must give exactly the defaults.
        let uncommented: String = DEFAULT_TOML
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(uncommented.contains("\nlisten = "));
        assert_eq!(load(&uncommented, &[]).expect("loads"), Config::default());
        assert_eq!(load(DEFAULT_TOML, &[]).expect("loads"), Config::default());
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "[web]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("COACHD__WEB__LISTEN", "0.0.0.0:9000"),
                ("COACHD__STORE__BUSY_TIMEOUT_MS", "250"),
                ("COACHD_DATA_DIR", "x"),
            ],
        )
        .expect("loads");
        assert_eq!(c.web.listen.port(), 9000);
        assert_eq!(c.store.busy_timeout_ms, 250);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let c = load("[web]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.0.0/16\", \"fd00::/8\"]\n", &[]).expect("loads");
        let inside = |ip: &str| c.web.trusted_proxies.iter().any(|p| p.contains(ip.parse().expect("ip")));
        assert!(inside("127.0.0.1") && inside("10.1.255.3") && inside("fd12::1") && inside("::ffff:10.1.0.9"));
        assert!(!inside("127.0.0.2") && !inside("10.2.0.1") && !inside("fe80::1"));
        let all: TrustedProxy = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("203.0.113.9".parse().expect("ip")) && !all.contains("::2".parse().expect("ip")));
        assert_eq!(String::from(c.web.trusted_proxies[1]), "10.1.0.0/16");
        for bad in ["10.0.0.0/33", "proxy.lan", "::/129", "10.0.0.1/"] {
            let err = load(&format!("[web]\ntrusted_proxies = [\"{bad}\"]\n"), &[]).expect_err(bad).to_string();
            assert!(err.contains("web.trusted_proxies[0]") && err.contains("CIDR"), "{bad}: {err}");
        }
        let err = load("[web]\ntrusted_proxies = [\"::/0\"]\n", &[]).expect_err("everyone").to_string();
        assert!(err.contains("trusts every address"), "{err}");
        let c = load("", &[("COACHD__WEB__TRUSTED_PROXIES", "[\"192.168.0.0/24\"]")]).expect("from the environment");
        assert_eq!(c.web.trusted_proxies.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let err = load(
            "[web]\nlisten = \"nowhere\"\n[log]\nlevel = \"loud=+\"\nfromat = \"json\"\n[store]\nbusy_timeout_ms = \"soon\"\n[supervisr]\nx = 1\n",
            &[("COACHD__CLIENTS__DEFAULT_TZ", "Mars/Base")],
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "[web] listen",
            "[log] level",
            "unknown key \"log.fromat\"",
            "[store] busy_timeout_ms",
            "unknown section [supervisr]",
            "COACHD__CLIENTS__DEFAULT_TZ",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn provider_tables_keep_their_old_keys_and_hide_secrets() {
        // A file written before providers became a map: the same keys, the same meaning.
        let c = load(
            "[providers]\nbackfill_days = 30\n[providers.strava]\nclient_id = 4711\nclient_secret = \"s3cret\"\n\
             webhook_verify_token = \"t0k-9\"\n[providers.polar]\nenabled = false\nwebhook_secret = \"key\"\n\
             [providers.strava.manifest]\nscopes = [\"read\"]\n",
            &[("COACHD__PROVIDERS__OURA__CLIENT_ID", "abc")],
        )
        .expect("loads");
        let strava = c.providers.get("strava");
        assert_eq!((strava.client_id.as_str(), strava.client_secret.expose().as_str()), ("4711", "s3cret"));
        assert_eq!(strava.extra_str("webhook_verify_token"), Some("t0k-9"));
        assert!(strava.manifest.contains_key("scopes"));
        assert!(!c.providers.get("polar").enabled);
        assert_eq!(
            c.providers.get("polar").extra_secret("webhook_secret").map(|s| s.expose().clone()),
            Some("key".into())
        );
        assert_eq!(c.providers.get("oura").client_id, "abc");
        assert!(c.providers.get("whoop").enabled, "a provider without a table has the defaults");
        assert_eq!(c.providers.backfill_days, 30);
        let shown = c.to_toml();
        assert!(!shown.contains("s3cret") && !shown.contains("t0k-9") && !shown.contains("\"key\""), "{shown}");
        assert!(!format!("{c:?}").contains("t0k-9"));
        let err = load("[providers.strava]\nclient_id = []\n", &[]).expect_err("a wrong type");
        assert!(err.to_string().contains("providers"), "{err}");
    }

    #[test]
    fn mqtt_settings_are_checked_and_the_password_stays_hidden() {
        let c = load("[mqtt]\nenabled = true\nusername = \"coach\"\npassword = \"hunter2\"\n", &[]).expect("loads");
        assert_eq!((c.mqtt.port, c.mqtt.discovery_prefix.as_str()), (1883, "homeassistant"));
        assert_eq!(c.mqtt.password.expose(), "hunter2");
        assert!(!c.to_toml().contains("hunter2") && !format!("{c:?}").contains("hunter2"));
        let err = load(
            "[mqtt]\nenabled = true\nhost = \"\"\nbase_topic = \"coachd/#\"\ninterval_s = 0\n",
            &[("COACHD__MQTT__DISCOVERY_PREFIX", "/ha")],
        )
        .expect_err("invalid")
        .to_string();
        for needle in ["[mqtt] host", "[mqtt] base_topic", "[mqtt] interval_s", "COACHD__MQTT__DISCOVERY_PREFIX"] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = load("[web\nlisten = 1\n", &[]).expect_err("invalid");
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
