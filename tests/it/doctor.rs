//! `coachd doctor` through the real binary: a fresh data dir passes with warnings, and
//! each broken thing fails with its fix; no D-Bus (or one that never answers) is
//! reported, not waited for.

use crate::coachd;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// `coachd doctor --json` on `data`, with the system bus at `bus`: (exit code, report).
fn doctor_with_bus(data: &Path, bus: &str) -> (i32, Value) {
    let out = coachd(data)
        .args(["doctor", "--json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("doctor runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {text}"));
    (out.status.code().unwrap_or(-1), report)
}

fn doctor(data: &Path) -> (i32, Value) {
    doctor_with_bus(data, &format!("unix:path={}", data.with_file_name("no-such-bus").display()))
}

/// The checks called `name`.
fn checks<'r>(report: &'r Value, name: &str) -> Vec<&'r Value> {
    report["checks"].as_array().expect("checks").iter().filter(|c| c["check"] == name).collect()
}

/// The one check called `name`: its status, message and fix.
fn check(report: &Value, name: &str) -> (String, String, String) {
    let found = checks(report, name);
    assert_eq!(found.len(), 1, "one {name} check in {report:#}");
    let s = |k: &str| found[0][k].as_str().unwrap_or_default().to_string();
    (s("status"), s("message"), s("fix"))
}

fn initialised() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("init").assert().success();
    (dir, data)
}

#[test]
fn a_fresh_data_dir_passes_with_warnings_and_names_each_fix() {
    let (_dir, data) = initialised();
    let (code, report) = doctor(&data);
    assert_eq!(code, 0, "warnings only: {report:#}");
    assert_eq!(report["status"], "warn");
    assert_eq!(report["failures"], 0);
    for name in ["config", "data_dir", "key", "database", "disk"] {
        assert_eq!(check(&report, name).0, "ok", "{name} in {report:#}");
    }
    assert!(check(&report, "database").1.contains("integrity ok"));
    let (status, message, fix) = check(&report, "backup");
    assert_eq!((status.as_str(), fix.as_str()), ("warn", "coachd backup (the running daemon also makes one a day)"));
    assert!(message.starts_with("no backup yet"), "{message}");
    let (status, message, _) = check(&report, "bluez");
    assert_eq!(status, "warn", "no bus, but no sensor paired either");
    assert!(message.contains("system bus is not reachable"), "{message}");
    let (status, message, fix) = check(&report, "daemon");
    assert_eq!((status.as_str(), message.as_str()), ("warn", "has never run on this data dir"));
    assert!(fix.contains("systemctl start coachd"));
    assert!(["ok", "warn"].contains(&check(&report, "clock").0.as_str()));
    // Providers without an API application are not in use: skipped, not failed.
    assert!(checks(&report, "provider").iter().all(|c| c["status"] == "skip"), "{report:#}");
    // Ok checks carry no fix; the others always do.
    for c in report["checks"].as_array().expect("checks") {
        let has_fix = c["fix"].is_string();
        assert_eq!(has_fix, c["status"] == "warn" || c["status"] == "fail", "{c}");
    }
    // The human form: one line per check, then the tally.
    let out =
        coachd(&data).arg("doctor").env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("warn  backup: no backup yet") && l.contains("-> fix: coachd backup")));
    assert!(text.lines().any(|l| l.starts_with("ok    database: ")), "{text}");
    assert!(
        text.trim_end().lines().last().is_some_and(|l| l.starts_with("warn: ") && l.contains("0 failed")),
        "{text}"
    );
}

#[test]
fn a_backup_in_the_backups_folder_is_found() {
    let (_dir, data) = initialised();
    std::fs::create_dir_all(data.join("backups")).expect("mkdir");
    std::fs::write(data.join("backups/coachd-backup-1.zip"), b"zip").expect("write");
    let (_, report) = doctor(&data);
    let (status, message, _) = check(&report, "backup");
    assert_eq!(status, "ok");
    assert!(message.starts_with("last backup ") && message.contains("coachd-backup-1.zip"), "{message}");
}

#[test]
fn a_missing_data_dir_fails_with_init_as_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, report) = doctor(&dir.path().join("never-made"));
    assert_eq!(code, 1);
    let (status, _, fix) = check(&report, "data_dir");
    assert_eq!(status, "fail");
    assert!(fix.starts_with("coachd init"), "{fix}");
    assert!(!dir.path().join("never-made").exists(), "doctor creates nothing");
}

#[test]
fn open_permissions_fail_with_chmod_as_the_fix() {
    let (_dir, data) = initialised();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(data.join("coachd.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, report) = doctor(&data);
    assert_eq!(code, 1, "{report:#}");
    let (status, message, fix) = check(&report, "data_dir");
    assert_eq!(status, "fail");
    assert!(message.contains("mode 755"), "{message}");
    assert_eq!(fix, format!("chmod 700 {}", data.display()));
    let (status, _, fix) = check(&report, "key");
    assert_eq!(status, "fail");
    assert_eq!(fix, format!("chmod 600 {}", data.join("coachd.key").display()));
}

#[test]
fn a_missing_or_swapped_key_fails_with_restore_as_the_fix() {
    let (_dir, data) = initialised();
    let key = data.join("coachd.key");
    let original = std::fs::read(&key).expect("key");
    std::fs::remove_file(&key).expect("rm");
    let (code, report) = doctor(&data);
    assert_eq!(code, 1);
    let (status, message, fix) = check(&report, "key");
    assert_eq!(status, "fail");
    assert!(message.contains("is missing, but the database exists"), "{message}");
    assert!(fix.contains("put the original coachd.key back"), "{fix}");
    assert!(!key.exists(), "doctor does not make a new key");
    // Another key of the right shape: it does not match what the database was sealed with.
    let other: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(&key, &other).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, report) = doctor(&data);
    assert_eq!(code, 1);
    let (status, message, fix) = check(&report, "key");
    assert_eq!(status, "fail");
    assert!(message.contains("but the database was sealed with key"), "{message}");
    assert!(fix.contains("original coachd.key"), "{fix}");
}

#[test]
fn a_corrupted_database_fails_and_names_the_newest_backup() {
    if crate::sqlite_file_only("a damaged database file") {
        return;
    }
    let (_dir, data) = initialised();
    let db = data.join("coachd.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(&db, b"this is not an SQLite database, it is what a bad disk left behind".repeat(100))
        .expect("write");
    let (code, report) = doctor(&data);
    assert_eq!(code, 1);
    let (status, message, fix) = check(&report, "database");
    assert_eq!(status, "fail");
    assert!(message.contains("cannot be read"), "{message}");
    assert!(fix.contains("coachd restore"), "{fix}");
    // With a backup there, the fix names it.
    std::fs::create_dir_all(data.join("backups")).expect("mkdir");
    let backup = data.join("backups/coachd-backup-2026-11-30.zip");
    std::fs::write(&backup, b"zip").expect("write");
    let (_, report) = doctor(&data);
    let (_, _, fix) = check(&report, "database");
    assert_eq!(fix, format!("stop the daemon, then coachd restore {}", backup.display()));
    // Nothing dependent on the database is read from it.
    for name in ["sensor", "account"] {
        let (status, message, _) = check(&report, name);
        assert_eq!(status, "skip");
        assert!(message.starts_with("not checked: the database is not usable"), "{message}");
    }
}

#[test]
fn a_bus_that_never_answers_is_reported_within_the_time_limit() {
    let (dir, data) = initialised();
    // A socket that takes connections and never says a word.
    let path = dir.path().join("silent-bus");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(4).flatten() {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let (code, report) = doctor_with_bus(&data, &format!("unix:path={}", path.display()));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "doctor took {took:?}");
    assert_eq!(code, 0, "no sensor paired: a warning; {report:#}");
    let (status, message, fix) = check(&report, "bluez");
    assert_eq!(status, "warn");
    assert!(message.contains("not reachable"), "{message}");
    assert!(fix.contains("systemctl start dbus"), "{fix}");
    drop(held);
}

#[test]
fn a_paired_sensor_without_bluez_fails_and_one_never_heard_warns() {
    let (_dir, data) = initialised();
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data).args(["devices", "pair", "C0:FF:EE:00:00:01", "alex"]).assert().success();
    let (code, report) = doctor(&data);
    assert_eq!(code, 1, "a paired sensor needs BlueZ");
    assert_eq!(check(&report, "bluez").0, "fail");
    let sensors = checks(&report, "sensor");
    assert_eq!(sensors.len(), 1);
    assert_eq!(sensors[0]["subject"], "C0:FF:EE:00:00:01");
    assert_eq!(sensors[0]["status"], "warn");
    assert!(sensors[0]["message"].as_str().is_some_and(|m| m.contains("alex's) has never been heard")));
}

#[test]
fn a_running_daemon_is_found_where_it_serves_and_missed_once_stopped() {
    let (_dir, data) = initialised();
    std::fs::write(
        data.join("coachd.toml"),
        "[ble]\nenabled = false\n[providers.strava]\nclient_id = \"4711\"\nclient_secret = \"app-secret\"\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = crate::coachd_process(&data)
        .env_remove("RUST_LOG")
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let up = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the daemon listens");
    let (code, report) = doctor(&data);
    // SAFETY: a plain signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    assert_eq!(code, 0, "{report:#}");
    let (status, message, _) = check(&report, "daemon");
    assert_eq!(status, "ok", "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert_eq!(check(&report, "bluez").0, "skip", "Bluetooth is off");
    // Strava is set up, so its webhooks' needs are checked: no public https address yet.
    let strava: Vec<_> = checks(&report, "provider").into_iter().filter(|c| c["subject"] == "strava").collect();
    assert_eq!(strava[0]["status"], "ok");
    let (status, message, fix) = check(&report, "webhooks");
    assert_eq!(status, "warn");
    assert!(message.contains("web.public_url is not set") && message.contains("polls every 15 min"), "{message}");
    assert!(fix.contains("https://"), "{fix}");
    // Stopped, it is missed where it last served.
    let (_, report) = doctor(&data);
    let (status, message, _) = check(&report, "daemon");
    assert_eq!(status, "warn");
    assert!(message.contains(&format!("not reachable at http://127.0.0.1:{port}")), "{message}");
}

#[test]
fn through_a_fake_bluez_an_adapter_that_is_off_fails_and_powered_on_passes() {
    let (dir, data) = initialised();
    let (_bus, address) = crate::bluez::private_bus_with(dir.path(), "");
    let _fake = crate::bluez::Fake::start(&address);
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data).args(["devices", "pair", "C0:FF:EE:00:00:01", "alex"]).assert().success();
    let (code, report) = doctor_with_bus(&data, &address);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(check(&report, "bluez").0, "ok");
    assert_eq!(check(&report, "bluetooth_access").0, "ok");
    let (status, message, fix) = check(&report, "adapter");
    assert_eq!(status, "fail", "a sensor is paired and the adapter is off");
    assert!(message.starts_with("hci0 (") && message.ends_with("is powered off"), "{message}");
    assert!(fix.starts_with("bluetoothctl power on"), "{fix}");
    let powered = std::process::Command::new("dbus-send")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .args([
            "--system",
            "--print-reply",
            "--dest=org.bluez",
            "/org/bluez/hci0",
            "org.freedesktop.DBus.Properties.Set",
            "string:org.bluez.Adapter1",
            "string:Powered",
            "variant:boolean:true",
        ])
        .output()
        .expect("dbus-send (apt-get install dbus-bin)");
    assert!(powered.status.success(), "{}", String::from_utf8_lossy(&powered.stderr));
    let (_, report) = doctor_with_bus(&data, &address);
    let (status, message, _) = check(&report, "adapter");
    assert_eq!((status.as_str(), message.ends_with("is powered")), ("ok", true), "{message}");
}

#[test]
fn a_d_bus_policy_that_refuses_bluez_fails_with_the_bluetooth_group_as_the_fix() {
    let (dir, data) = initialised();
    let (_bus, address) = crate::bluez::private_bus_with(dir.path(), r#"<deny send_destination="org.bluez"/>"#);
    let _fake = crate::bluez::Fake::start(&address);
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(&data).args(["devices", "pair", "C0:FF:EE:00:00:01", "alex"]).assert().success();
    let (code, report) = doctor_with_bus(&data, &address);
    assert_eq!(code, 1);
    assert_eq!(check(&report, "bluez").0, "ok", "bluetoothd runs");
    let (status, message, fix) = check(&report, "bluetooth_access");
    assert_eq!(status, "fail");
    assert!(message.contains("the D-Bus policy refuses"), "{message}");
    assert!(fix.starts_with("usermod -aG bluetooth "), "{fix}");
}

#[test]
fn a_daemon_whose_public_address_does_not_answer_is_told_apart_from_a_stopped_one() {
    let (_dir, data) = initialised();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    std::fs::write(
        data.join("coachd.toml"),
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://coach.invalid\"\n[ble]\nenabled = false\n\
             [providers.strava]\nclient_id = \"4711\"\nclient_secret = \"app-secret\"\n"
        ),
    )
    .expect("config");
    let mut child = crate::coachd_process(&data)
        .env_remove("RUST_LOG")
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let up = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the daemon listens");
    let (code, report) = doctor(&data);
    // SAFETY: a plain signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    assert_eq!(code, 0, "{report:#}");
    let (status, message, fix) = check(&report, "daemon");
    assert_eq!(status, "warn");
    assert!(
        message.starts_with(&format!("running at http://127.0.0.1:{port} (/healthz: ok), but https://coach.invalid")),
        "{message}"
    );
    assert!(fix.contains("reverse proxy"), "{fix}");
    let (status, message, _) = check(&report, "webhooks");
    assert_eq!((status.as_str(), message.as_str()), ("ok", "strava can push to https://coach.invalid/webhooks/strava"));
}
