//! coachd's integration tests: one binary, helpers here, one module per area.

mod apple;
mod backups;
mod benchmarks;
mod bluez;
mod browser;
mod charts;
mod cli;
mod collect;
mod connections;
mod crash;
mod daemon;
mod dashboard;
mod doctor;
mod erase;
mod exports;
mod fake_oura;
mod fake_strava;
mod fake_whoop;
mod fake_withings;
mod files;
mod fit_encoder;
mod fixture;
mod fuzz_seeds;
mod gadgetbridge;
mod homeassistant;
mod homework;
mod inbox;
mod ingest;
mod language;
mod layers;
mod live;
mod migrate;
mod notify;
mod oura;
mod providers;
mod proxy;
mod push;
mod questions;
mod replicas;
mod replicas_sync;
mod setup;
mod strap;
mod supervisor;
mod upgrade;
mod whoop;
mod withings;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coachd::config::Config;
use coachd::model::{Batch, Category, Cursor, NewActivity, Sample, Series, SeriesKind};
use coachd::paths::DataDir;
use coachd::store::{NewClient, Store};
use std::sync::Once;

/// The real binary on a data dir, with no configuration leaking in from the environment.
/// With `COACHD_TEST_POSTGRES` set, its store is that data dir's own PostgreSQL database.
pub fn coachd(data: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("coachd").expect("binary");
    cmd.env("COACHD_DATA_DIR", data).env_remove("COACHD_CONFIG").env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("COACHD__") {
            cmd.env_remove(k);
        }
    }
    if let Some(url) = postgres_for(data) {
        cmd.env("COACHD__STORE__URL", url);
    }
    cmd
}

/// The real binary on a data dir as a plain process (a daemon a test starts and stops),
/// on the same store as [`coachd`] gives it.
pub fn coachd_process(data: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("coachd"));
    cmd.env("COACHD_DATA_DIR", data);
    if let Some(url) = postgres_for(data) {
        cmd.env("COACHD__STORE__URL", url);
    }
    cmd
}

/// The same suite again with every store on PostgreSQL, when a server is given
/// (`COACHD_TEST_POSTGRES_SERVER=postgres://USER@HOST:PORT`, a role that may create
/// databases; `.ci/run` starts one): this binary runs itself with
/// `COACHD_TEST_POSTGRES` set, so `cargo test` covers both backends.
#[test]
fn the_whole_suite_passes_on_postgresql() {
    if std::env::var("COACHD_TEST_POSTGRES").is_ok_and(|v| !v.trim().is_empty()) {
        return; // This is the PostgreSQL run itself.
    }
    let Some(server) = std::env::var("COACHD_TEST_POSTGRES_SERVER").ok().filter(|s| !s.trim().is_empty()) else {
        println!(
            "skipped: set COACHD_TEST_POSTGRES_SERVER=postgres://USER@HOST:PORT (a role that may create databases) \
             to run the suite on PostgreSQL too"
        );
        return;
    };
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .env("COACHD_TEST_POSTGRES", server.trim())
        .args(["--skip", "the_whole_suite_passes_on_postgresql"])
        .output()
        .expect("run the suite on PostgreSQL");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout.lines().filter(|l| l.starts_with("test result") || l.ends_with("FAILED")).collect();
    println!("on PostgreSQL: {}", summary.join("\n"));
    assert!(
        out.status.success(),
        "the suite failed on PostgreSQL:\n{}\n--- stderr (end) ---\n{}",
        stdout.lines().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Whether a test about the data dir's SQLite file itself (its bytes, its disk, its raw
/// schema) has nothing to check because the suite runs on PostgreSQL; says so.
pub fn sqlite_file_only(what: &str) -> bool {
    let on_pg = std::env::var("COACHD_TEST_POSTGRES").is_ok_and(|v| !v.trim().is_empty());
    if on_pg {
        println!("skipped on PostgreSQL: {what} is about the SQLite file");
    }
    on_pg
}

/// The config a test's data dir runs with: the defaults, on that data dir's PostgreSQL
/// database when the suite runs on PostgreSQL.
pub fn test_config(data: &std::path::Path) -> Config {
    let mut config = Config::default();
    if let Some(url) = postgres_for(data) {
        config.store.url = url;
    }
    config
}

/// The data dir's store, opened as the binary opens it.
pub async fn open_store(data: &std::path::Path) -> Store {
    let dd = DataDir::new(data);
    coachd::init::init(&dd, &dd.default_config(), &test_config(data)).await.expect("open the store").0
}

/// The data dir's database as plain rows, to check what is stored (the SQLite file, or
/// its PostgreSQL database). Statements number their placeholders (`$1`) for both.
pub async fn raw_db(data: &std::path::Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = postgres_for(data).unwrap_or_else(|| format!("sqlite://{}", data.join("coachd.db").display()));
    sqlx::AnyPool::connect(&url).await.expect("open the database")
}

/// The PostgreSQL database of a test's data dir, when the suite runs on PostgreSQL
/// (`COACHD_TEST_POSTGRES=postgres://USER@HOST:PORT`, a server the tests may create
/// databases on): one empty database per data dir, made on first use, so tests stay as
/// apart as their temporary directories.
pub fn postgres_for(data: &std::path::Path) -> Option<String> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static MADE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let base = std::env::var("COACHD_TEST_POSTGRES").ok().filter(|b| !b.trim().is_empty())?;
    let base = base.trim().trim_end_matches('/').to_string();
    // The data dir itself or its parent (a test's temp dir) names the database.
    let key = data.parent().filter(|_| data.ends_with("data")).unwrap_or(data);
    let digest =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(key.as_os_str().as_encoded_bytes()));
    let name = format!("coachd_t_{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let made = made.get_or_insert_with(HashSet::new);
    if !made.contains(&name) {
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &format!("{base}/postgres")])
            .args(["-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
            .args(["-c", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql for COACHD_TEST_POSTGRES");
        assert!(out.status.success(), "creating {name}: {}", String::from_utf8_lossy(&out.stderr));
        made.insert(name.clone());
    }
    Some(format!("{base}/{name}"))
}

/// Whether a command runs and succeeds (its output discarded).
pub fn have(cmd: &mut std::process::Command) -> bool {
    use std::process::Stdio;
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Install Debian packages (as root, else through `sudo -n`); whether it worked.
pub fn apt_install(packages: &[&str]) -> bool {
    use std::process::Command;
    let root = std::env::var("USER").is_ok_and(|u| u == "root") || have(Command::new("test").args(["-w", "/"]));
    let apt = |args: &[&str]| {
        let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            cmd.args(["-n", "apt-get"]);
        }
        have(cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive"))
    };
    let _ = apt(&["update", "-qq"]);
    apt(&[&["install", "-y", "-qq", "--no-install-recommends"][..], packages].concat())
}

/// A Python package installed (if missing) into a folder under the target dir; returns
/// the PYTHONPATH that imports it.
pub fn pip_install(folder: &str, spec: &str, module: &str) -> String {
    use std::process::Command;
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    let path = target.display().to_string();
    let importable =
        || have(Command::new("python3").args(["-c", &format!("import {module}")]).env("PYTHONPATH", &path));
    if !importable() {
        let installed =
            have(Command::new("python3").args(["-m", "pip", "install", "--quiet", "--target"]).arg(&target).arg(spec));
        assert!(installed && importable(), "could not install {spec}: python3 -m pip install {spec}");
    }
    path
}

/// Logs stay silent unless `TEST_LOG` is set.
pub fn test_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("debug").with_test_writer().try_init();
        }
    });
}

/// A fresh data dir with an initialised store.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub config: Config,
}

impl TestStore {
    pub async fn new() -> Self {
        test_log();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::new(dir.path().join("data"));
        let mut config = Config::default();
        if let Some(url) = postgres_for(data.root()) {
            config.store.url = url;
        }
        let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("init");
        Self { dir, store, config }
    }

    /// The web server (dashboard, API, webhooks) on this store, on a random port; its base URL.
    pub async fn serve(&self) -> String {
        use std::sync::Arc;
        let app = coachd::app::App::new(self.store.clone(), Arc::new(self.config.clone())).expect("providers");
        let state = coachd::web::WebState::for_app(app, coachd::source::Health::default());
        let app = coachd::web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    pub async fn client(&self, name: &str) -> i64 {
        let new = NewClient::parse(name, "Europe/Berlin", Some(190), None).expect("valid client");
        self.store.add_client(&new).await.expect("add client").id
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 17, 0, 0).single().expect("valid time")
}

/// A one-hour run with per-second heart rate.
pub fn hour_run(client: i64, external_id: &str, start: DateTime<Utc>) -> NewActivity {
    let samples = (0..3600)
        .map(|i| Sample { t_ms: start.timestamp_millis() + i * 1000, value: (120 + (i * 7919) % 40) as f64 })
        .collect();
    NewActivity {
        client_id: client,
        external_id: external_id.to_string(),
        start,
        end: start + Duration::hours(1),
        utc_offset_s: 3600,
        activity_type: "run".into(),
        category: Category::Cardio,
        duration_s: 3600.0,
        distance_m: Some(10_000.0),
        avg_hr: Some(139.5),
        max_hr: Some(159),
        energy_kj: None,
        content_hash: None,
        series: vec![Series { kind: SeriesKind::Hr, samples }],
        sets: None,
        hr_zones: None,
    }
}

pub fn batch(source: &str, activities: Vec<NewActivity>, cursor: Option<&str>) -> Batch {
    Batch {
        source: source.into(),
        activities,
        daily: Vec::new(),
        buckets: Vec::new(),
        cursor: cursor.map(|v| Cursor { stream: "main".into(), value: v.into() }),
    }
}
