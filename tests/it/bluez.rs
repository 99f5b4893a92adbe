//! End to end through the real btleplug path: the `coachd run` binary talks D-Bus to a
//! fake BlueZ (tests/fake_bluez/fake_bluez.py, on dbus-next) on a private `dbus-daemon`
//! that `DBUS_SYSTEM_BUS_ADDRESS` points at. No root, no hardware.
//!
//! Needs `dbus-daemon` and Python's dbus-next. The test installs what is missing itself:
//! dbus-daemon from Debian's packages (as root, or with password-less sudo), dbus-next
//! from PyPI into the cargo target dir (nothing outside it changes). If that fails, the
//! test fails and says what to install.

use crate::{apt_install, have, pip_install};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const PAIRED: &str = "C0:FF:EE:00:00:01";
const STRANGER: &str = "C0:FF:EE:00:00:02";

/// Lines a child prints, read on a thread.
fn lines(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Kills the child when dropped, so a failing test leaves nothing running.
pub(crate) struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dbus-daemon and dbus-next, installed if missing; returns the PYTHONPATH to use.
fn prerequisites() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if !have(Command::new("dbus-daemon").arg("--version")) {
            assert!(
                apt_install(&["dbus-daemon"]),
                "dbus-daemon is missing and could not be installed: apt-get install dbus-daemon"
            );
        }
        pip_install("fake-bluez-python", "dbus-next==0.2.3", "dbus_next")
    })
    .clone()
}

fn private_bus(dir: &Path) -> (Guard, String) {
    private_bus_with(dir, "")
}

/// A private system bus whose default policy ends with `extra` rules (e.g. a deny).
pub(crate) fn private_bus_with(dir: &Path, extra: &str) -> (Guard, String) {
    let socket = dir.join("bus");
    let conf = dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    {extra}
  </policy>
</busconfig>
"#,
            socket.display(),
        ),
    )
    .expect("bus config");
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}); install it: apt-get install dbus-daemon"));
    let out = lines(child.stdout.take().expect("stdout"));
    let address = out.recv_timeout(Duration::from_secs(10)).expect("dbus-daemon prints its address");
    (Guard(child), address)
}

/// The fake BlueZ, driven through its stdin.
pub(crate) struct Fake {
    _child: Guard,
    stdin: ChildStdin,
    out: Receiver<String>,
    seen: Vec<String>,
}

impl Fake {
    pub(crate) fn start(bus: &str) -> Fake {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_bluez/fake_bluez.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([format!("{PAIRED}=Polar H10 test"), STRANGER.to_string()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .env("PYTHONPATH", prerequisites())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().expect("stdin");
        let out = lines(child.stdout.take().expect("stdout"));
        let mut fake = Fake { _child: Guard(child), stdin, out, seen: Vec::new() };
        fake.expect("ready", Duration::from_secs(20));
        fake
    }

    /// Wait for a line; everything read on the way is kept in `seen`.
    fn expect(&mut self, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(line) = self.out.recv_timeout(Duration::from_millis(100)) {
                let hit = line == want;
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("the fake BlueZ did not print {want:?} within {within:?}; it printed {:?}", self.seen);
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the fake");
        self.stdin.flush().expect("flush");
    }

    /// Heart Rate Measurement: u8 bpm, skin contact detected, one RR interval of 500 ms.
    fn beat(&mut self, bpm: u8) -> Instant {
        self.say(&format!("notify {PAIRED} 16{bpm:02x}0002"));
        self.expect(&format!("sent {PAIRED}"), Duration::from_secs(5));
        Instant::now()
    }
}

fn coachd_run(data: &Path, bus: &str) -> (Guard, Receiver<String>) {
    coachd_run_flushing(data, bus, 60)
}

/// [`coachd_run`], committing open sessions every `flush_s`.
fn coachd_run_flushing(data: &Path, bus: &str, flush_s: u32) -> (Guard, Receiver<String>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("coachd"))
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("COACHD_DATA_DIR", data)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env("RUST_LOG", "info,bluez_async=warn")
        .env("COACHD__BLE__SESSION_SILENCE_S", "30")
        // By default nothing is flushed by the clock during a test: what is stored at the
        // end was committed by the shutdown.
        .env("COACHD__BLE__FLUSH_S", flush_s.to_string())
        .env("COACHD__BLE__BLUEZ_RETRY_S", "1")
        .env("COACHD__INBOX__ENABLED", "false")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let err = lines(child.stderr.take().expect("stderr"));
    (Guard(child), err)
}

fn wait_log(log: &Receiver<String>, kept: &mut Vec<String>, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(line) = log.recv_timeout(Duration::from_millis(100)) {
            let hit = line.contains(want);
            kept.push(line);
            if hit {
                return;
            }
        }
    }
    panic!("coachd did not log {want:?} within {within:?}:\n{}", kept.join("\n"));
}

/// id, external id, client id, duration s, avg HR, max HR, client name
type Session = (i64, String, i64, f64, f64, Option<i64>, String);

#[test]
fn a_paired_strap_on_a_fake_bluez_becomes_one_stored_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    for args in [
        vec!["client", "add", "ana", "--tz", "Europe/Berlin"],
        vec!["client", "add", "bo", "--tz", "Europe/Berlin"],
        vec!["devices", "pair", &PAIRED.to_lowercase(), "ana"],
    ] {
        super::coachd(&data).args(&args).assert().success();
    }

    // BlueZ is not there yet: the collector says so once and keeps looking.
    let (mut daemon, log) = coachd_run(&data, &bus);
    let mut kept = Vec::new();
    wait_log(&log, &mut kept, "Bluetooth unavailable", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(2500));

    let mut fake = Fake::start(&bus);
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    fake.expect(&format!("read {PAIRED}"), Duration::from_secs(5));
    let first = fake.beat(120);
    for i in 1..15 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(if i % 2 == 0 { 120 } else { 140 });
    }

    // The strap drops out for a moment and comes back: the same session goes on.
    fake.say(&format!("disconnect {PAIRED}"));
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    for i in 0..15 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(if i % 2 == 0 { 120 } else { 140 });
    }

    // bluetoothd restarts: the collector notices, finds the strap again, same session.
    drop(fake);
    let mut fake = Fake::start(&bus);
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(40));
    let mut last = Instant::now();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(if i % 2 == 0 { 120 } else { 140 });
    }

    // SIGTERM mid-session: what was received is committed (no clock flush has run).
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = daemon.0.try_wait().expect("wait") {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "coachd did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    kept.extend(log.try_iter());
    assert_eq!(status.code(), Some(0), "{}", kept.join("\n"));
    let unavailable = kept.iter().filter(|l| l.contains("Bluetooth unavailable")).count();
    assert_eq!(unavailable, 1, "BlueZ's absence is logged once:\n{}", kept.join("\n"));
    assert!(kept.iter().any(|l| l.contains("lost BlueZ")), "{}", kept.join("\n"));

    // The unpaired strap was seen (it is listed) but never connected or recorded.
    assert!(!fake.seen.iter().any(|l| l.contains(STRANGER)), "{:?}", fake.seen);
    let listed = super::coachd(&data).args(["devices", "list", "--json"]).assert().success();
    let devices: serde_json::Value = serde_json::from_slice(&listed.get_output().stdout).expect("json");
    let stranger = devices.as_array().and_then(|d| d.iter().find(|d| d["address"] == STRANGER)).expect("listed");
    assert_eq!(stranger["client"], serde_json::Value::Null);
    assert_eq!(stranger["services"], "heart_rate");
    let paired = devices.as_array().and_then(|d| d.iter().find(|d| d["address"] == PAIRED)).expect("listed");
    assert_eq!(paired["client"], "ana");
    assert_eq!(paired["name"], "Polar H10 test");
    assert!(paired["last_seen_ms"].is_i64());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dd = coachd::paths::DataDir::new(&data);
        let config = coachd::config::Config::default();
        let (store, _) = coachd::init::init(&dd, &dd.default_config(), &config).await.expect("open");
        let pool =
            sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", dd.database().display())).await.expect("db");
        let rows: Vec<Session> = sqlx::query_as(
            "SELECT a.id, a.external_id, a.client_id, a.duration_s, a.avg_hr, a.max_hr, c.name
             FROM activities a JOIN clients c ON c.id = a.client_id WHERE a.source = 'ble'",
        )
        .fetch_all(&pool)
        .await
        .expect("query");
        assert_eq!(rows.len(), 1, "one session across a disconnect and a BlueZ restart: {rows:?}");
        let (id, external, _, duration, avg, max, client) = rows[0].clone();
        assert_eq!(client, "ana");
        assert!(external.starts_with(PAIRED), "{external}");
        let expected = (last - first).as_secs_f64();
        assert!((duration - expected).abs() < 1.0, "duration {duration} s, notifications spanned {expected} s");
        let hr = store.series(id, coachd::model::SeriesKind::Hr).await.expect("hr");
        let rr = store.series(id, coachd::model::SeriesKind::Rr).await.expect("rr");
        assert_eq!(hr.len(), 40, "every notification is one sample");
        assert_eq!(rr.len(), 40);
        assert!(rr.iter().all(|s| (s.value - 500.0).abs() < 1.0), "RR 512/1024 s = 500 ms");
        let mean = hr.iter().map(|s| s.value).sum::<f64>() / hr.len() as f64;
        assert!((avg - mean).abs() < 0.05 && (avg - 130.0).abs() < 0.6, "avg HR {avg}, samples {mean}");
        assert_eq!(max, Some(140));
    });
}

/// The strap's stored sessions: (external id, heart-rate samples, duration s).
fn ble_sessions(data: &Path) -> Vec<(String, i64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", data.join("coachd.db").display()))
            .await
            .expect("db");
        let rows = sqlx::query_as("SELECT external_id, hr_samples, duration_s FROM activities WHERE source = 'ble'")
            .fetch_all(&pool)
            .await
            .expect("query");
        pool.close().await;
        rows
    })
}

#[test]
fn a_daemon_killed_mid_session_and_started_again_goes_on_with_the_same_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    for args in [vec!["client", "add", "ana", "--tz", "Europe/Berlin"], vec!["devices", "pair", PAIRED, "ana"]] {
        super::coachd(&data).args(&args).assert().success();
    }
    let mut fake = Fake::start(&bus);
    let (mut daemon, _log) = coachd_run_flushing(&data, &bus, 1);
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    let first = fake.beat(130);
    for _ in 1..20 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(130);
    }
    // Everything so far committed by the clock's flush, then SIGKILL mid-session.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let before = ble_sessions(&data);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].1, 20, "every notification of the first run committed: {before:?}");

    // Started again within seconds; the strap is found and goes on.
    let (mut daemon, log) = coachd_run_flushing(&data, &bus, 1);
    let subscribed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    }));
    if subscribed.is_err() {
        let kept: Vec<String> = log.try_iter().collect();
        panic!("not subscribed again; coachd logged:\n{}", kept.join("\n"));
    }
    let mut last = Instant::now();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(140);
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = daemon.0.wait().expect("wait");
    let kept: Vec<String> = log.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{}", kept.join("\n"));

    let after = ble_sessions(&data);
    assert_eq!(after.len(), 1, "one session across the kill and the restart: {after:?}");
    let (external, samples, duration) = after[0].clone();
    assert_eq!(external, before[0].0, "the same activity went on");
    assert_eq!(samples, 40, "every notification of both runs, once");
    let expected = (last - first).as_secs_f64();
    assert!((duration - expected).abs() < 1.5, "duration {duration} s, notifications spanned {expected} s");
}
