//! Backups that restore: the real binary's backup and restore give back the same
//! verdicts and counts; a restore refuses while the daemon runs and refuses a bad file;
//! the key decides whether cloud tokens survive; the daily backups keep their retention.

use crate::{coachd, t0, TestStore};
use chrono::Duration;
use coachd::app::App;
use coachd::paths::DataDir;
use coachd::store::Tokens;
use predicates::str::contains;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

fn stdout(data: &Path, args: &[&str]) -> String {
    let out = coachd(data).args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What a restore must give back: the verdicts, the clients, each client's activities.
fn snapshot(data: &Path) -> (String, String, Vec<usize>) {
    let status = stdout(data, &["status", "--from", "2026-10-01", "--to", "2026-11-20", "--json"]);
    let clients = stdout(data, &["client", "list", "--json"]);
    let counts = coachd::demo::CLIENTS
        .iter()
        .map(|c| {
            let json = stdout(data, &["activities", c, "--from", "2026-08-01", "--to", "2026-11-20", "--json"]);
            serde_json::from_str::<Vec<serde_json::Value>>(&json).expect("json").len()
        })
        .collect();
    (status, clients, counts)
}

#[test]
fn a_restored_backup_gives_the_same_status_and_activity_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["demo", "--now", "2026-11-20T18:00:00Z"]).assert().success();
    let before = snapshot(&data);
    assert!(before.2.iter().sum::<usize>() > 20, "{:?}", before.2);
    let file = dir.path().join("night.zip");
    coachd(&data)
        .args(["backup"])
        .arg(&file)
        .assert()
        .success()
        .stdout(contains("backup written"))
        .stdout(contains("not in the backup: it decrypts the cloud providers' tokens"));
    coachd(&data).arg("backup").arg(&file).assert().code(2).stderr(contains("exists already"));

    // Changes after the backup, which the restore undoes.
    coachd(&data).args(["client", "add", "late", "--tz", "UTC"]).assert().success();
    coachd(&data)
        .args(["log", "alex", "--type", "run", "--start", "2026-11-19 07:00", "--minutes", "40"])
        .assert()
        .success();
    assert_ne!(snapshot(&data), before);

    coachd(&data).arg("restore").arg(&file).assert().success().stdout(contains("the database it replaced is kept as"));
    assert_eq!(snapshot(&data), before);
    let aside: Vec<_> = std::fs::read_dir(&data)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("coachd.db.before-restore-"))
        .collect();
    assert!(!aside.is_empty(), "the replaced database is kept");

    // On another machine: a new data dir with its own key; no cloud accounts to lose.
    let other = dir.path().join("other");
    coachd(&other).arg("restore").arg(&file).assert().success().stdout(contains("there was no database before"));
    assert_eq!(snapshot(&other), before);
}

fn wait_for_daemon(child: &mut std::process::Child) -> (String, std::sync::mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) else { continue };
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["message"] == "coachd is running" {
            return (json["listen"].as_str().expect("listen").to_string(), rx);
        }
    }
    let _ = child.kill();
    panic!("daemon did not start");
}

#[test]
fn restore_refuses_while_the_daemon_runs_and_the_daemon_backs_up_daily() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    let mut child = crate::coachd_process(&data)
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("COACHD__INBOX__ENABLED", "false")
        .env("COACHD__BLE__ENABLED", "false")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let (listen, rx) = wait_for_daemon(&mut child);
    let stop = |child: &mut std::process::Child| {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    };

    // A backup while it runs is fine; a restore is refused and changes nothing.
    let file = dir.path().join("while-running.zip");
    coachd(&data).arg("backup").arg(&file).assert().success();
    let listed = stdout(&data, &["client", "list", "--json"]);
    coachd(&data).arg("restore").arg(&file).assert().code(2).stderr(contains("daemon is running"));
    assert_eq!(stdout(&data, &["client", "list", "--json"]), listed);
    // A second daemon on the same data dir is refused too.
    coachd(&data)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("COACHD__INBOX__ENABLED", "false")
        .env("COACHD__BLE__ENABLED", "false")
        .assert()
        .code(1)
        .stderr(contains("another coachd daemon"));

    // The daily backup is made a few seconds after start; its age is reported.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let daily = loop {
        let found: Vec<_> = std::fs::read_dir(data.join("backups"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("coachd-daily-"))
            .collect();
        if let Some(f) = found.first() {
            break f.path();
        }
        if Instant::now() > deadline {
            stop(&mut child);
            panic!("no daily backup: {:?}", rx.try_iter().collect::<Vec<_>>());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (health, metrics) = rt.block_on(async {
        let h: serde_json::Value =
            reqwest::get(format!("http://{listen}/healthz")).await.expect("healthz").json().await.expect("json");
        let m = reqwest::get(format!("http://{listen}/metrics")).await.expect("metrics").text().await.expect("text");
        (h, m)
    });
    stop(&mut child);
    assert!(health["backup"]["age_seconds"].as_i64().is_some_and(|a| (0..60).contains(&a)), "{health}");
    assert!(metrics.contains("\ncoachd_backup_last_age_seconds "), "{metrics}");

    // Stopped, the daily backup restores.
    coachd(&data).arg("restore").arg(&daily).assert().success();
    assert_eq!(stdout(&data, &["client", "list", "--json"]), listed);
}

#[test]
fn restore_refuses_what_is_not_a_coachd_backup_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "UTC"]).assert().success();
    let listed = stdout(&data, &["client", "list", "--json"]);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a backup at all").expect("write");
    coachd(&data).arg("restore").arg(&text).assert().code(2).stderr(contains("neither a coachd backup"));
    let foreign = dir.path().join("foreign.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&foreign).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("open");
        sqlx::query("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await.expect("create");
        pool.close().await;
    });
    coachd(&data).arg("restore").arg(&foreign).assert().code(2).stderr(contains("is not a coachd database"));
    let truncated = dir.path().join("cut.zip");
    let good = dir.path().join("good.zip");
    coachd(&data).arg("backup").arg(&good).assert().success();
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    coachd(&data).arg("restore").arg(&truncated).assert().code(2);
    assert_eq!(stdout(&data, &["client", "list", "--json"]), listed);
    let aside = std::fs::read_dir(&data)
        .expect("dir")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("before-restore"));
    assert!(!aside, "a refused restore touches nothing");
}

fn tokens() -> Tokens {
    Tokens {
        access: coachd::crypto::Secret::new("ACCESS-abc".into()),
        refresh: Some(coachd::crypto::Secret::new("REFRESH-xyz".into())),
        expires: Some(t0()),
        scopes: "read".into(),
    }
}

async fn app_on(root: &Path) -> App {
    let data = DataDir::new(root);
    let config = crate::test_config(root);
    App::open(&data, &data.default_config(), config, false).await.expect("open").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_a_restore_keeps_every_row_and_names_the_accounts_to_connect_again() {
    let ts = TestStore::new().await;
    let root = ts.dir.path().join("data");
    let alex = ts.client("alex").await;
    ts.store.save_tokens(alex, "strava", &tokens()).await.expect("tokens");
    ts.store.close().await;
    let app = app_on(&root).await;
    let plain = app.backup(Some(&ts.dir.path().join("plain.zip")), false).await.expect("backup");
    let keyed = app.backup(Some(&ts.dir.path().join("keyed.zip")), true).await.expect("backup");
    assert!(!plain.manifest.with_key && keyed.manifest.with_key);
    app.close().await;
    let elsewhere = DataDir::new(ts.dir.path().join("elsewhere"));
    let opts = crate::test_config(elsewhere.root());
    let config = elsewhere.default_config();
    let r = coachd::app::backup::restore(&elsewhere, &config, &plain.path, false, &opts).await.expect("restore");
    assert_eq!(r.reconnect, vec![("alex".to_string(), "strava".to_string())]);
    assert_eq!(r.counts.clients, 1);
    let app = app_on(elsewhere.root()).await;
    let account = app.store.account(alex, "strava").await.expect("the account is kept");
    assert_eq!(account.state, "needs_reauth");
    assert!(app.store.tokens(alex, "strava").await.is_err(), "no token survives without its key");
    app.close().await;

    let keyed_dir = DataDir::new(ts.dir.path().join("keyed"));
    let opts = crate::test_config(keyed_dir.root());
    let r = coachd::app::backup::restore(&keyed_dir, &keyed_dir.default_config(), &keyed.path, false, &opts)
        .await
        .expect("restore");
    assert!(r.reconnect.is_empty() && r.key_restored);
    let app = app_on(keyed_dir.root()).await;
    assert_eq!(app.store.tokens(alex, "strava").await.expect("tokens open").access.expose(), "ACCESS-abc");
    app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_backups_come_once_a_day_and_keep_the_retention() {
    let ts = TestStore::new().await;
    let root = ts.dir.path().join("data");
    ts.store.close().await;
    let data = DataDir::new(&root);
    let mut config = crate::test_config(&root);
    config.backup.retention = 2;
    let app = App::open(&data, &data.default_config(), config, false).await.expect("open").0;
    let app = App { config: Arc::new(app.config.as_ref().clone()), ..app };
    let now = t0();
    assert!(app.daily_backup_if_due(now).await.expect("backup").is_some());
    assert!(app.daily_backup_if_due(now + Duration::hours(1)).await.expect("not due").is_none());
    for days in 1..=3 {
        let made = app.daily_backup_if_due(now + Duration::hours(25 * days)).await.expect("backup");
        assert!(made.is_some(), "day {days}");
    }
    let mut left: Vec<String> = std::fs::read_dir(data.backups())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[1].contains(&(now + Duration::hours(75)).format("%Y%m%d").to_string()), "{left:?}");
    let last = app.last_backup().await.expect("last").expect("some");
    assert_eq!(last.0.timestamp(), (now + Duration::hours(75)).timestamp());
    app.close().await;
}
