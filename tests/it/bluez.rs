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
pub(crate) fn lines(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
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
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dbus-daemon and dbus-next, installed if missing; returns the PYTHONPATH to use.
pub(crate) fn prerequisites() -> String {
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

pub(crate) fn private_bus(dir: &Path) -> (Guard, String) {
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
        Fake::with(bus, &[&format!("{PAIRED}=Polar H10 test"), STRANGER])
    }

    /// The fake with these devices (`ADDR[=NAME][/KIND]`) and options (`--max-connections N`).
    pub(crate) fn with(bus: &str, args: &[&str]) -> Fake {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_bluez/fake_bluez.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
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
    pub(crate) fn expect(&mut self, want: &str, within: Duration) {
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

    pub(crate) fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the fake");
        self.stdin.flush().expect("flush");
    }

    /// Heart Rate Measurement: u8 bpm, skin contact detected, one RR interval of 500 ms.
    fn beat(&mut self, bpm: u8) -> Instant {
        self.beat_of(PAIRED, bpm)
    }

    pub(crate) fn beat_of(&mut self, address: &str, bpm: u8) -> Instant {
        self.notify(address, &format!("16{bpm:02x}0002"))
    }

    /// A measurement from `address`, delivered.
    fn notify(&mut self, address: &str, hex: &str) -> Instant {
        self.say(&format!("notify {address} {hex}"));
        self.expect(&format!("sent {address}"), Duration::from_secs(5));
        Instant::now()
    }

    /// Send a command and wait for its answer.
    fn command(&mut self, line: &str, answer: &str) {
        self.say(line);
        self.expect(answer, Duration::from_secs(5));
    }

    /// Wait for every line in `want`, in any order.
    fn expect_all(&mut self, want: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        let mut missing: Vec<&String> = want.iter().collect();
        while !missing.is_empty() && Instant::now() < deadline {
            if let Ok(line) = self.out.recv_timeout(Duration::from_millis(100)) {
                missing.retain(|w| **w != line);
                self.seen.push(line);
            }
        }
        assert!(
            missing.is_empty(),
            "the fake BlueZ did not print {missing:?} within {within:?}; it printed {:?}",
            self.seen
        );
    }

    /// Lines printed so far, without waiting.
    fn drain(&mut self) {
        self.seen.extend(self.out.try_iter());
    }
}

fn coachd_run(data: &Path, bus: &str) -> (Guard, Receiver<String>) {
    coachd_run_flushing(data, bus, 60)
}

/// [`coachd_run`], committing open sessions every `flush_s`.
fn coachd_run_flushing(data: &Path, bus: &str, flush_s: u32) -> (Guard, Receiver<String>) {
    coachd_run_with(data, bus, flush_s, &[])
}

/// [`coachd_run_flushing`] with more (or other) settings from the environment.
fn coachd_run_with(data: &Path, bus: &str, flush_s: u32, env: &[(&str, &str)]) -> (Guard, Receiver<String>) {
    let mut child = crate::coachd_process(data)
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env("RUST_LOG", "info,bluez_async=warn")
        .env("COACHD__BLE__SESSION_SILENCE_S", "30")
        // By default nothing is flushed by the clock during a test: what is stored at the
        // end was committed by the shutdown.
        .env("COACHD__BLE__FLUSH_S", flush_s.to_string())
        .env("COACHD__BLE__BLUEZ_RETRY_S", "1")
        .env("COACHD__INBOX__ENABLED", "false")
        .envs(env.iter().copied())
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let err = lines(child.stderr.take().expect("stderr"));
    (Guard(child), err)
}

pub(crate) fn wait_log(log: &Receiver<String>, kept: &mut Vec<String>, want: &str, within: Duration) {
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
        let store = crate::open_store(&data).await;
        let pool = crate::raw_db(&data).await;
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
        let pool = crate::raw_db(data).await;
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
    for args in [
        vec!["client", "add", "ana", "--tz", "Europe/Berlin", "--hr-max", "190"],
        vec!["devices", "pair", PAIRED, "ana"],
        vec!["assign", "ana", "30 minutes of cardio"],
    ] {
        super::coachd(&data).args(&args).assert().success();
    }
    super::coachd(&data)
        .args(["trainer", "add", "coach", "--password-stdin"])
        .write_stdin(LIVE_PASSWORD)
        .assert()
        .success();
    let mut fake = Fake::start(&bus);
    let (mut daemon, _log) = coachd_run_flushing(&data, &bus, 1);
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    let first = fake.beat(130);
    let mut last_before_kill = first;
    for _ in 1..20 {
        std::thread::sleep(Duration::from_millis(150));
        last_before_kill = fake.beat(130);
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
    let mut resumed_at = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(140);
        resumed_at.get_or_insert(last);
    }
    let down = resumed_at.expect("beats") - last_before_kill;
    // The trainer in the room sees the strap live: its heart rate and its battery (the
    // fake's Battery Service says 77 %), from the collector, not from the store.
    let mut kept: Vec<String> = Vec::new();
    wait_log(&log, &mut kept, "coachd is running", Duration::from_secs(5));
    let line = kept.iter().find(|l| l.contains("coachd is running")).expect("the line");
    let listen: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    let base = format!("http://{}", listen["listen"].as_str().expect("listen"));
    let live = live_snapshot(&base);
    let devices = &live["clients"][0]["devices"];
    assert_eq!(live["clients"][0]["name"], "ana", "{live}");
    assert_eq!(devices[0]["device"], PAIRED, "{live}");
    assert_eq!((devices[0]["bpm"].as_u64(), devices[0]["battery_pct"].as_u64()), (Some(140), Some(77)), "{live}");
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = daemon.0.wait().expect("wait");
    kept.extend(log.try_iter());
    assert_eq!(status.code(), Some(0), "{}", kept.join("\n"));

    let after = ble_sessions(&data);
    assert_eq!(after.len(), 1, "one session across the kill and the restart: {after:?}");
    let (external, samples, duration) = after[0].clone();
    assert_eq!(external, before[0].0, "the same activity went on");
    assert_eq!(samples, 40, "every notification of both runs, once");
    let expected = (last - first).as_secs_f64();
    assert!((duration - expected).abs() < 1.5, "duration {duration} s, notifications spanned {expected} s");
    // The cardio minutes are those of a run without the kill, less at most the seconds the
    // daemon was down (130 and 140 bpm are both above 64 % of 190).
    let out = super::coachd(&data).args(["status", "ana", "--json"]).output().expect("status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let today = status["occurrences"].as_array().expect("occurrences").last().expect("today").clone();
    let credited = today["achieved"].as_f64().expect("achieved") * 60.0;
    let (spanned, down) = (expected, down.as_secs_f64());
    println!("cardio credited {credited:.1} s; notifications spanned {spanned:.1} s; daemon down {down:.1} s");
    assert!(
        // Each sample counts until the next (gaps up to 5 s) and the last one a second.
        credited >= spanned - down - 1.0 && credited <= spanned + 1.5,
        "credited {credited:.1} s of cardio; the notifications spanned {spanned:.1} s with the daemon down {down:.1} s"
    );
}

const LIVE_PASSWORD: &str = "a trainer in the room";

/// `GET /api/live` as the trainer `coach`, logged in through the login form.
fn live_snapshot(base: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let http = live_login(base).await;
        http.get(format!("{base}/api/live")).send().await.expect("live").json().await.expect("JSON")
    })
}

/// A client logged in as the trainer `coach`.
async fn live_login(base: &str) -> reqwest::Client {
    let http = super::dashboard::browser();
    let page = http.get(format!("{base}/login")).send().await.expect("login page").text().await.expect("body");
    let csrf = super::dashboard::csrf_of(&page);
    let r = http
        .post(format!("{base}/login"))
        .form(&[("csrf", csrf.as_str()), ("name", "coach"), ("password", LIVE_PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "login");
    http
}

/// Wait until the live view shows the first client's first device at `bpm`: the collector
/// has recorded that notification (it is shown after the recorder has it).
fn wait_live_bpm(base: &str, bpm: u64, within: Duration) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let http = live_login(base).await;
        let deadline = Instant::now() + within;
        loop {
            let live: serde_json::Value =
                http.get(format!("{base}/api/live")).send().await.expect("live").json().await.expect("JSON");
            if live["clients"][0]["devices"][0]["bpm"].as_u64() == Some(bpm) {
                return;
            }
            assert!(Instant::now() < deadline, "the live view did not show {bpm} bpm within {within:?}: {live}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Where the daemon serves, from its "coachd is running" log line.
pub(crate) fn listen_address(log: &Receiver<String>, kept: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = log.recv_timeout(Duration::from_millis(100)) else { continue };
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        kept.push(line);
        if json["message"] == "coachd is running" {
            if let Some(listen) = json["listen"].as_str() {
                return listen.to_string();
            }
        }
    }
    panic!("coachd did not say where it serves:\n{}", kept.join("\n"));
}

/// The `ble` source's detail in `/healthz`.
fn healthz_ble(listen: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let health: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{listen}/healthz")).await.expect("healthz").json().await.expect("json")
    });
    let sources = health["sources"].as_array().cloned().unwrap_or_default();
    let ble = sources.iter().find(|s| s["name"] == "ble").unwrap_or_else(|| panic!("no ble source: {health}"));
    ble["detail"].as_str().unwrap_or_default().to_string()
}

/// `devices list --json`, by address.
fn devices(data: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let listed = super::coachd(data).args(["devices", "list", "--json"]).assert().success();
    let devices: serde_json::Value = serde_json::from_slice(&listed.get_output().stdout).expect("json");
    devices
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| (d["address"].as_str().unwrap_or_default().to_string(), d.clone()))
        .collect()
}

/// Poll until `ok` holds (or fail after `within`, showing the last value).
pub(crate) fn eventually<T: std::fmt::Debug>(
    within: Duration,
    mut get: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let v = get();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {v:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// SIGTERM, and exit 0 within 10 s.
fn stop(daemon: &mut Guard, log: &Receiver<String>, kept: &mut Vec<String>) {
    let killed = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = daemon.0.try_wait().expect("wait") {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "coachd did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    kept.extend(log.try_iter());
    assert_eq!(status.code(), Some(0), "{}", kept.join("\n"));
}

/// A stored Bluetooth session with the number of samples of each series kind.
#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    client: String,
    activity_type: String,
    distance_m: Option<f64>,
    /// kind id → samples
    series: std::collections::BTreeMap<i64, i64>,
}

impl Stored {
    fn n(&self, kind: coachd::model::SeriesKind) -> i64 {
        self.series.get(&kind.id()).copied().unwrap_or(0)
    }
}

/// Every `ble` session, by its device's address (its external id is `ADDRESS@START`).
fn stored_sessions(data: &Path) -> Vec<(String, Stored)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let pool = crate::raw_db(data).await;
        type Row = (i64, String, String, String, Option<f64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT a.id, a.external_id, c.name, a.type, a.distance_m, s.kind, CAST(sum(s.n) AS BIGINT)
             FROM activities a JOIN clients c ON c.id = a.client_id
             LEFT JOIN sample_chunks s ON s.activity_id = a.id
             WHERE a.source = 'ble' GROUP BY a.id, a.external_id, c.name, a.type, a.distance_m, s.kind ORDER BY a.external_id",
        )
        .fetch_all(&pool)
        .await
        .expect("query");
        pool.close().await;
        let mut out: Vec<(String, Stored)> = Vec::new();
        for (id, external, client, activity_type, distance_m, kind, n) in rows {
            if out.last().is_none_or(|(_, s)| s.id != id) {
                let address = external.split('@').next().unwrap_or_default().to_string();
                let series = Default::default();
                out.push((address, Stored { id, client, activity_type, distance_m, series }));
            }
            if let (Some(kind), Some(n), Some((_, s))) = (kind, n, out.last_mut()) {
                s.series.insert(kind, n);
            }
        }
        out
    })
}

fn series_of(data: &Path, id: i64, kind: coachd::model::SeriesKind) -> Vec<coachd::model::Sample> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = crate::open_store(data).await;
        store.series(id, kind).await.expect("series")
    })
}

fn le16(v: u16) -> String {
    v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn le24(v: u32) -> String {
    v.to_le_bytes()[..3].iter().map(|b| format!("{b:02x}")).collect()
}

/// Rower Data: stroke rate 28/min and the stroke count, total distance, power.
fn rower(strokes: u16, metres: u32, watts: u16) -> String {
    format!("2400{:02x}{}{}{}", 56, le16(strokes), le24(metres), le16(watts))
}

/// Indoor Bike Data: 30 km/h, 90 rpm, total distance, 200 W.
fn bike(metres: u32) -> String {
    format!("5400{}{}{}{}", le16(3000), le16(180), le24(metres), le16(200))
}

/// Treadmill Data: 10 km/h and the total distance.
fn treadmill(metres: u32) -> String {
    format!("0400{}{}", le16(1000), le24(metres))
}

/// CSC Measurement: wheel and crank revolutions, one second (1024 ticks) per reading.
fn csc(i: u32) -> String {
    let t = le16((i * 1024 % 65_536) as u16);
    format!("03{:08x}{t}{}{t}", (i * 4).swap_bytes(), le16(i as u16))
}

/// Cycling Power Measurement: 250 W with crank revolutions, 90 rpm.
fn power(i: u32) -> String {
    format!("2000{}{}{}", le16(250), le16((i * 3) as u16), le16((i * 2048 % 65_536) as u16))
}

const STRAP: &str = "C0:FF:EE:00:01:01";
const ROWER: &str = "C0:FF:EE:00:02:01";
const BIKE: &str = "C0:FF:EE:00:02:02";
const CSC: &str = "C0:FF:EE:00:02:03";
const POWER: &str = "C0:FF:EE:00:02:04";
const FOOTPOD: &str = "C0:FF:EE:00:02:05";

/// RSC Measurement: 3 m/s, 170 steps a minute, total distance in 1/10 m.
fn rsc(decimetres: u32) -> String {
    format!("02{}aa{:08x}", le16(768), decimetres.swap_bytes())
}

#[test]
fn machines_and_sensors_are_recorded_with_their_series_and_types_and_a_rower_with_a_strap_is_one_workout() {
    use coachd::model::SeriesKind::*;
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    for name in ["ana", "bo", "cy", "di", "ed"] {
        super::coachd(&data).args(["client", "add", name, "--tz", "Europe/Berlin"]).assert().success();
    }
    let pairs = [("ana", STRAP), ("ana", ROWER), ("bo", BIKE), ("cy", CSC), ("di", POWER), ("ed", FOOTPOD)];
    for (name, device) in pairs {
        super::coachd(&data).args(["devices", "pair", device, name]).assert().success();
    }
    let mut fake = Fake::with(
        &bus,
        &[
            &format!("{STRAP}=Polar H10/hr"),
            &format!("{ROWER}=Concept2 PM5/rower"),
            &format!("{BIKE}=KICKR BIKE/bike"),
            &format!("{CSC}=Wahoo CADENCE/csc"),
            &format!("{POWER}=Assioma/power"),
            &format!("{FOOTPOD}=Stryd/rsc"),
        ],
    );
    let (mut daemon, log) = coachd_run_flushing(&data, &bus, 1);
    let mut kept = Vec::new();
    let all = [STRAP, ROWER, BIKE, CSC, POWER, FOOTPOD];
    fake.expect_all(&all.map(|a| format!("subscribed {a}")), Duration::from_secs(40));
    for i in 0..20u32 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat_of(STRAP, 150);
        fake.notify(ROWER, &rower(100 + i as u16, 400 + 10 * i, 180));
        fake.notify(BIKE, &bike(2000 + 8 * i));
        fake.notify(CSC, &csc(i));
        fake.notify(POWER, &power(i));
        fake.notify(FOOTPOD, &rsc(12_345 + 30 * i));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut daemon, &log, &mut kept);

    let sessions = stored_sessions(&data);
    let of = |address: &str| {
        let found: Vec<&Stored> = sessions.iter().filter(|(a, _)| a == address).map(|(_, s)| s).collect();
        assert_eq!(found.len(), 1, "{address}: one session: {sessions:?}");
        found[0].clone()
    };
    let strap = of(STRAP);
    assert_eq!((strap.client.as_str(), strap.activity_type.as_str(), strap.n(Hr)), ("ana", "workout", 20));
    let row = of(ROWER);
    assert_eq!((row.client.as_str(), row.activity_type.as_str()), ("ana", "row"), "typed from the service");
    assert_eq!(
        [row.n(Power), row.n(Cadence), row.n(Distance), row.n(Strokes), row.n(Speed)],
        [20, 20, 20, 20, 0],
        "{row:?}"
    );
    assert_eq!(row.distance_m, Some(190.0), "400 m to 590 m on the monitor");
    let strokes = series_of(&data, row.id, Strokes);
    assert_eq!((strokes[0].value, strokes[19].value), (100.0, 119.0));
    assert!(series_of(&data, row.id, Cadence).iter().all(|s| s.value == 28.0), "28 strokes a minute");
    let ride = of(BIKE);
    assert_eq!((ride.client.as_str(), ride.activity_type.as_str()), ("bo", "indoor_ride"));
    assert_eq!([ride.n(Speed), ride.n(Cadence), ride.n(Power), ride.n(Distance)], [20, 20, 20, 20], "{ride:?}");
    assert!(series_of(&data, ride.id, Speed).iter().all(|s| (s.value - 8.333).abs() < 0.001), "30 km/h");
    assert!(series_of(&data, ride.id, Cadence).iter().all(|s| s.value == 90.0));
    let cadence = of(CSC);
    assert_eq!((cadence.client.as_str(), cadence.activity_type.as_str()), ("cy", "indoor_ride"));
    // Rates from counters need two readings: 19 of the 20.
    assert_eq!([cadence.n(Cadence), cadence.n(Speed), cadence.n(Power)], [19, 19, 0], "{cadence:?}");
    assert!(series_of(&data, cadence.id, Cadence).iter().all(|s| s.value == 60.0), "one crank turn a second");
    let wheel = 4.0 * 2.105; // four turns a second of a 2.105 m wheel
    assert!(series_of(&data, cadence.id, Speed).iter().all(|s| (s.value - wheel).abs() < 0.001));
    let watts = of(POWER);
    assert_eq!((watts.client.as_str(), watts.activity_type.as_str()), ("di", "indoor_ride"));
    assert_eq!([watts.n(Power), watts.n(Cadence)], [20, 19], "{watts:?}");
    assert!(series_of(&data, watts.id, Power).iter().all(|s| s.value == 250.0));
    assert!(series_of(&data, watts.id, Cadence).iter().all(|s| s.value == 90.0), "3 turns in 2 s");
    let run = of(FOOTPOD);
    assert_eq!((run.client.as_str(), run.activity_type.as_str()), ("ed", "treadmill_run"));
    assert_eq!([run.n(Speed), run.n(Cadence), run.n(Distance)], [20, 20, 20], "{run:?}");
    assert!(series_of(&data, run.id, Speed).iter().all(|s| s.value == 3.0));
    assert!(series_of(&data, run.id, Cadence).iter().all(|s| s.value == 170.0));
    assert_eq!(run.distance_m, Some(57.0), "1234.5 m to 1291.5 m");

    // The strap and the rower of one client at once: one workout, a row, with both.
    let out = super::coachd(&data).args(["activities", "ana", "--json"]).assert().success();
    let workouts: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    let workouts = workouts.as_array().expect("a list");
    assert_eq!(workouts.len(), 1, "{workouts:?}");
    assert_eq!(workouts[0]["type"], "row");
    assert_eq!(workouts[0]["hr_samples"], 20, "the strap's heart rate");
    assert_eq!(workouts[0]["sources"], serde_json::json!(["ble"]));
    // The workout's chart shows the strap's heart rate and the rower's series.
    let svg = dir.path().join("row.svg");
    super::coachd(&data).args(["chart", "session", "ana", "--out", svg.to_str().expect("path")]).assert().success();
    let svg = std::fs::read_to_string(svg).expect("svg");
    for label in ["heart rate", "power, W", "stroke rate", "strokes"] {
        assert!(svg.contains(label), "the session chart has no {label:?}");
    }
}

#[test]
fn eight_straps_and_two_machines_of_ten_clients_are_recorded_at_once_each_its_own_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    let mut devices: Vec<(String, String)> =
        (1..=8).map(|i| (format!("C0:FF:EE:00:03:{i:02X}"), format!("{}/hr", i))).collect();
    devices.push(("C0:FF:EE:00:04:01".into(), "Treadmill/treadmill".into()));
    devices.push(("C0:FF:EE:00:04:02".into(), "Rower/rower".into()));
    for (i, (address, _)) in devices.iter().enumerate() {
        let name = format!("client{i}");
        super::coachd(&data).args(["client", "add", &name, "--tz", "Europe/Berlin"]).assert().success();
        super::coachd(&data).args(["devices", "pair", address, &name]).assert().success();
    }
    // The adapter first holds eight connections, as a small controller does.
    let mut args: Vec<String> = vec!["--max-connections".into(), "8".into()];
    args.extend(devices.iter().map(|(a, n)| format!("{a}=Group {n}")));
    let mut fake = Fake::with(&bus, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (mut daemon, log) = coachd_run_flushing(&data, &bus, 1);
    let mut kept = Vec::new();
    let listen = listen_address(&log, &mut kept);

    // Eight connect; the two BlueZ refuses are named, not dropped.
    let detail = eventually(Duration::from_secs(40), || healthz_ble(&listen), |d| d.contains("8 of 10"));
    let listed = devices_of(&data);
    let waiting: Vec<&String> = listed.keys().filter(|a| listed[*a]["link"] == "waiting").collect();
    assert_eq!(waiting.len(), 2, "{listed:?}");
    for address in &waiting {
        assert!(detail.contains(&format!("{address} (BlueZ refused the connection")), "{detail}");
        let note = listed[*address]["link_note"].as_str().unwrap_or_default();
        assert!(note.contains("le-connection-abort"), "{note}");
    }
    assert_eq!(listed.values().filter(|d| d["link"] == "connected").count(), 8, "{listed:?}");

    // Room for all ten: the two waiting connect at their next attempt, and all record at once.
    fake.command("limit 10", "ok");
    let subscribed: Vec<String> = devices.iter().map(|(a, _)| format!("subscribed {a}")).collect();
    fake.expect_all(&subscribed, Duration::from_secs(60));
    for i in 0..15u32 {
        std::thread::sleep(Duration::from_millis(100));
        for (n, (address, _)) in devices.iter().enumerate() {
            match n {
                8 => fake.notify(address, &treadmill(100 + 3 * i)),
                9 => fake.notify(address, &rower(i as u16, 50 + 10 * i, 150)),
                _ => fake.beat_of(address, 120 + n as u8),
            };
        }
    }
    let detail = eventually(Duration::from_secs(15), || healthz_ble(&listen), |d| d.contains("10 of 10"));
    kept.extend(log.try_iter());
    let found: Vec<&String> =
        kept.iter().filter(|l| l.contains("paired sensor found") || l.contains("cannot")).collect();
    assert!(!detail.contains("waiting"), "{detail}\n{found:#?}");
    let listed = devices_of(&data);
    assert!(listed.values().all(|d| d["link"] == "connected"), "{listed:?}");
    stop(&mut daemon, &log, &mut kept);

    let sessions = stored_sessions(&data);
    assert_eq!(sessions.len(), 10, "ten sessions: {sessions:?}");
    for (i, (address, _)) in devices.iter().enumerate() {
        let (_, s) = sessions.iter().find(|(a, _)| a == address).unwrap_or_else(|| panic!("{address}: {sessions:?}"));
        assert_eq!(s.client, format!("client{i}"));
        let (kind, ty) = match i {
            8 => (coachd::model::SeriesKind::Speed, "treadmill_run"),
            9 => (coachd::model::SeriesKind::Strokes, "row"),
            _ => (coachd::model::SeriesKind::Hr, "workout"),
        };
        assert_eq!((s.activity_type.as_str(), s.n(kind)), (ty, 15), "{address}: none lost: {s:?}");
    }
    // Stopped: no link is claimed any more.
    assert!(devices_of(&data).values().all(|d| d["link"].is_null()));
}

fn devices_of(data: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    devices(data)
}

#[test]
fn devices_beyond_what_bluez_connects_wait_named_in_devices_list_and_healthz_and_connect_with_backoff() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    let straps = ["C0:FF:EE:00:05:01", "C0:FF:EE:00:05:02", "C0:FF:EE:00:05:03"];
    for (i, address) in straps.iter().enumerate() {
        let name = format!("client{i}");
        super::coachd(&data).args(["client", "add", &name, "--tz", "Europe/Berlin"]).assert().success();
        super::coachd(&data).args(["devices", "pair", address, &name]).assert().success();
    }
    let mut fake = Fake::with(&bus, &["--max-connections", "2", straps[0], straps[1], straps[2]]);
    let (mut daemon, log) = coachd_run_flushing(&data, &bus, 1);
    let mut kept = Vec::new();
    let listen = listen_address(&log, &mut kept);

    // Two connect; the third is refused as BlueZ refuses it, again and again, backing off.
    let started = Instant::now();
    let mut refusals: Vec<(String, Instant)> = Vec::new();
    while refusals.len() < 4 {
        assert!(started.elapsed() < Duration::from_secs(40), "refusals {refusals:?}; fake {:?}", fake.seen);
        if let Ok(line) = fake.out.recv_timeout(Duration::from_millis(100)) {
            if let Some(address) = line.strip_prefix("refused ") {
                refusals.push((address.to_string(), Instant::now()));
            }
            fake.seen.push(line);
        }
    }
    let waiting = refusals[0].0.clone();
    assert!(refusals.iter().all(|(a, _)| *a == waiting), "only the third is refused: {refusals:?}");
    let gaps: Vec<f64> = refusals.windows(2).map(|w| (w[1].1 - w[0].1).as_secs_f64()).collect();
    // 1 s, 2 s, 4 s: each wait about twice the one before.
    kept.extend(log.try_iter());
    assert!(
        gaps[0] >= 0.7 && gaps[1] >= gaps[0] * 1.5 && gaps[2] >= gaps[1] * 1.5,
        "backoff gaps {gaps:?}:\n{}",
        kept.join("\n")
    );

    // Reported, never a silent drop: `devices list` says which and why, and so does /healthz.
    let listed = eventually(
        Duration::from_secs(15),
        || devices_of(&data),
        |d| {
            d.get(&waiting).is_some_and(|w| w["link"] == "waiting")
                && d.values().filter(|x| x["link"] == "connected").count() == 2
        },
    );
    let note = listed[&waiting]["link_note"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("refused") && note.contains("le-connection-abort"), "{note}");
    let table = super::coachd(&data).args(["devices", "list"]).assert().success();
    let table = String::from_utf8_lossy(&table.get_output().stdout).to_string();
    let line = table.lines().find(|l| l.starts_with(&waiting)).unwrap_or_default();
    assert!(line.contains("waiting: BlueZ refused the connection"), "{table}");
    let detail = healthz_ble(&listen);
    assert!(detail.contains("2 of 3 paired sensor(s) connected"), "{detail}");
    assert!(detail.contains(&format!("waiting: {waiting} (BlueZ refused")), "{detail}");

    // The adapter has room again: the waiting strap connects at its next attempt and records.
    fake.command("limit 3", "ok");
    fake.expect(&format!("subscribed {waiting}"), Duration::from_secs(20));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        for address in straps {
            fake.beat_of(address, 130);
        }
    }
    eventually(Duration::from_secs(15), || healthz_ble(&listen), |d| d.contains("3 of 3") && !d.contains("waiting"));
    assert_eq!(devices_of(&data)[&waiting]["link"], "connected");
    stop(&mut daemon, &log, &mut kept);
    let sessions = stored_sessions(&data);
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert!(sessions.iter().all(|(_, s)| s.n(coachd::model::SeriesKind::Hr) == 5), "{sessions:?}");
}

#[test]
fn a_strap_that_leaves_bluez_and_comes_back_and_an_adapter_powered_off_and_on_give_one_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    for args in [vec!["client", "add", "ana", "--tz", "Europe/Berlin"], vec!["devices", "pair", PAIRED, "ana"]] {
        super::coachd(&data).args(&args).assert().success();
    }
    let mut fake = Fake::start(&bus);
    let (mut daemon, log) = coachd_run_flushing(&data, &bus, 1);
    let mut kept = Vec::new();
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    let first = fake.beat(130);
    for _ in 1..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(130);
    }

    // Out of range: BlueZ drops the device from its tree (InterfacesRemoved).
    fake.command(&format!("remove {PAIRED}"), &format!("removed {PAIRED}"));
    let listed = eventually(
        Duration::from_secs(15),
        || devices_of(&data),
        |d| {
            d[PAIRED]["link"] == "waiting" && d[PAIRED]["link_note"].as_str().is_some_and(|n| n.contains("device list"))
        },
    );
    assert_eq!(listed[PAIRED]["client"], "ana");
    // Long enough for the backoff to reach several seconds; back in range, it is found
    // again and connected at once, not at the end of the backoff.
    std::thread::sleep(Duration::from_secs(8));
    fake.drain();
    fake.command(&format!("add {PAIRED}"), &format!("added {PAIRED}"));
    let back = Instant::now();
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(20));
    assert!(back.elapsed() < Duration::from_secs(4), "connected {:?} after it was back", back.elapsed());
    wait_log(&log, &mut kept, "connecting now, not after the backoff", Duration::from_secs(5));
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(135);
    }

    // The adapter powered off (rfkill, a user): links drop, connecting fails, and the
    // collector does not power it on again behind the user's back.
    fake.command("power 0", "powered 0");
    fake.seen.clear();
    let listed = eventually(
        Duration::from_secs(15),
        || devices_of(&data),
        |d| d[PAIRED]["link_note"].as_str().is_some_and(|n| n.contains("powered off")),
    );
    assert_eq!(listed[PAIRED]["link"], "waiting");
    std::thread::sleep(Duration::from_secs(8));
    fake.drain();
    assert!(!fake.seen.iter().any(|l| l == "discovery on" || l.starts_with("subscribed")), "{:?}", fake.seen);
    fake.command("power 1", "powered 1");
    let on = Instant::now();
    fake.expect("discovery on", Duration::from_secs(5));
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(20));
    assert!(on.elapsed() < Duration::from_secs(4), "connected {:?} after the adapter was on", on.elapsed());
    wait_log(&log, &mut kept, "connecting now, not after the backoff", Duration::from_secs(5));
    let mut last = Instant::now();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(140);
    }
    eventually(Duration::from_secs(15), || devices_of(&data), |d| d[PAIRED]["link"] == "connected");
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut daemon, &log, &mut kept);

    let sessions = ble_sessions(&data);
    assert_eq!(sessions.len(), 1, "one session across leaving, coming back and the adapter off: {sessions:?}");
    let (_, samples, duration) = sessions[0].clone();
    assert_eq!(samples, 30, "every notification, once");
    assert!((duration - (last - first).as_secs_f64()).abs() < 1.5, "duration {duration}");
}

#[test]
fn devices_scan_lists_the_fitness_sensors_the_fake_bluez_finds_strongest_first() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus, bus) = private_bus(dir.path());
    for args in [vec!["client", "add", "ana", "--tz", "Europe/Berlin"], vec!["devices", "pair", ROWER, "ana"]] {
        super::coachd(&data).args(&args).assert().success();
    }
    let mut fake = Fake::with(
        &bus,
        &[&format!("{STRAP}=Polar H10"), &format!("{ROWER}=Concept2 PM5/rower"), &format!("{CSC}=Cadence/csc")],
    );
    let out = super::coachd(&data)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
        .args(["devices", "scan", "--seconds", "3", "--json"])
        .assert()
        .success();
    fake.expect("discovery on", Duration::from_secs(1));
    let seen: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    let seen = seen.as_array().expect("a list");
    let got: Vec<(&str, &str, &str, i64)> = seen
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap_or_default(),
                s["name"].as_str().unwrap_or_default(),
                s["services"][0].as_str().unwrap_or_default(),
                s["rssi"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (STRAP, "Polar H10", "heart_rate", -50),
            (ROWER, "Concept2 PM5", "fitness_machine", -55),
            (CSC, "Cadence", "cycling_speed", -60)
        ]
    );
    assert_eq!(seen[1]["client"], "ana");
    assert_eq!(seen[0]["client"], serde_json::Value::Null);
    // Nothing connected: a scan only listens.
    assert!(!fake.seen.iter().any(|l| l.starts_with("connect")), "{:?}", fake.seen);
    // What was heard is remembered for `devices list`.
    let listed = devices_of(&data);
    assert_eq!(listed[CSC]["services"], "cycling_speed");
    assert!(listed[STRAP]["last_seen_ms"].is_i64());

    // The human form names them too, with how to pair one.
    let out = super::coachd(&data)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
        .args(["devices", "scan", "--seconds", "2"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("Concept2 PM5") && text.contains("devices pair ADDRESS CLIENT"), "{text}");
}

#[test]
fn the_system_bus_restarting_mid_session_gives_one_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (bus_daemon, address) = private_bus(dir.path());
    // As the system bus's own address is: the socket, without the server's guid (a new
    // bus daemon has a new one).
    let bus = address.split(",guid=").next().expect("address").to_string();
    for args in [vec!["client", "add", "ana", "--tz", "Europe/Berlin"], vec!["devices", "pair", PAIRED, "ana"]] {
        super::coachd(&data).args(&args).assert().success();
    }
    let mut fake = Fake::start(&bus);
    let (mut daemon, log) = coachd_run(&data, &bus);
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    let first = fake.beat(130);
    for _ in 1..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(130);
    }
    // The system bus itself goes away and comes back at the same address (dbus-daemon
    // restarted): coachd's D-Bus connection is gone with every stream on it; the probe
    // notices, and the collector connects again and finds the strap.
    drop(fake);
    drop(bus_daemon);
    let _ = std::fs::remove_file(dir.path().join("bus"));
    let (_bus_daemon, again) = private_bus(dir.path());
    assert!(again.starts_with(&bus), "the same socket: {again}");
    let mut fake = Fake::start(&bus);
    let mut kept = Vec::new();
    let subscribed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(60));
    }));
    if subscribed.is_err() {
        kept.extend(log.try_iter());
        panic!("not subscribed again; coachd logged:\n{}", kept.join("\n"));
    }
    let mut last = Instant::now();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(140);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut daemon, &log, &mut kept);
    let sessions = ble_sessions(&data);
    assert_eq!(sessions.len(), 1, "one session across the bus restart: {sessions:?}\n{}", kept.join("\n"));
    let (_, samples, duration) = sessions[0].clone();
    assert_eq!(samples, 20, "every notification of both halves, once");
    let spanned = (last - first).as_secs_f64();
    assert!(duration <= spanned + 1.5 && duration >= 1.4, "duration {duration} s, notifications spanned {spanned} s");
}

/// A socket in front of the private bus that passes each connection through byte for byte
/// and can cut one of them: one of coachd's D-Bus connections dying while the bus, the
/// fake's `org.bluez` and coachd's other connections stay.
struct Relay {
    address: String,
    socket: std::path::PathBuf,
    connections: std::sync::Arc<std::sync::Mutex<Vec<Relayed>>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// One connection through the relay.
struct Relayed {
    /// The client's socket and the bus's, to cut both.
    ends: [std::os::unix::net::UnixStream; 2],
    /// What the client has sent (the first MiB): a D-Bus message header carries its
    /// member name as plain text, so btleplug's connection is the one that said
    /// `StartNotify`, and the probe's says `GetNameOwner` and nothing of BlueZ's.
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(socket: &Path, bus: &Path) -> Relay {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = UnixListener::bind(socket).expect("the relay's socket");
        let connections: Arc<Mutex<Vec<Relayed>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (kept, stop, bus) = (connections.clone(), stopping.clone(), bus.to_path_buf());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { break };
                // No bus: the client's connection closes, as the bus's own would refuse it.
                let Ok(upstream) = UnixStream::connect(&bus) else { continue };
                let ends = [client.try_clone().expect("clone"), upstream.try_clone().expect("clone")];
                let sent = Arc::new(Mutex::new(Vec::new()));
                let open = Arc::new(AtomicBool::new(true));
                let back = (upstream.try_clone().expect("clone"), client.try_clone().expect("clone"));
                relay_bytes(client, upstream, Some(sent.clone()), open.clone());
                relay_bytes(back.0, back.1, None, open.clone());
                kept.lock().expect("relay lock").push(Relayed { ends, sent, open });
            }
        });
        Relay {
            address: format!("unix:path={}", socket.display()),
            socket: socket.to_path_buf(),
            connections,
            stopping,
        }
    }

    /// Cut every open connection whose client has sent `said`. Returns how many were cut
    /// and how many others stay open.
    fn cut_saying(&self, said: &str) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        let connections = self.connections.lock().expect("relay lock");
        let (mut cut, mut stayed) = (0, 0);
        for c in connections.iter().filter(|c| c.open.load(Ordering::SeqCst)) {
            let sent = c.sent.lock().expect("relay lock");
            if sent.windows(said.len()).any(|w| w == said.as_bytes()) {
                for end in &c.ends {
                    let _ = end.shutdown(std::net::Shutdown::Both);
                }
                cut += 1;
            } else {
                stayed += 1;
            }
        }
        (cut, stayed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.socket); // wakes the accepting thread
        for c in self.connections.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for end in &c.ends {
                let _ = end.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Copy `from` to `to` on a thread of its own, keeping what went through in `record`,
/// until either side closes; then close both.
fn relay_bytes(
    mut from: std::os::unix::net::UnixStream,
    mut to: std::os::unix::net::UnixStream,
    record: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::Read;
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Kept before it goes on: once the bus has a message, the test can find it here.
            if let Some(record) = &record {
                let mut record = record.lock().unwrap_or_else(|p| p.into_inner());
                if record.len() < 1 << 20 {
                    record.extend_from_slice(&buf[..n]);
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        open.store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = from.shutdown(std::net::Shutdown::Both);
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// A device's notifications stop reaching coachd and come back: the bus drops the D-Bus
/// connection btleplug subscribed on, while the bus, BlueZ and the strap stay.
#[test]
fn the_bus_dropping_coachds_bluez_connection_mid_session_gives_one_session() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_bus_daemon, bus) = private_bus(dir.path());
    let relay = Relay::start(&dir.path().join("relay"), &dir.path().join("bus"));
    for args in [vec!["client", "add", "ana", "--tz", "Europe/Berlin"], vec!["devices", "pair", PAIRED, "ana"]] {
        super::coachd(&data).args(&args).assert().success();
    }
    super::coachd(&data)
        .args(["trainer", "add", "coach", "--password-stdin"])
        .write_stdin(LIVE_PASSWORD)
        .assert()
        .success();
    let mut fake = Fake::start(&bus);
    // A session ends only after 2 minutes of silence here (the default), however long a
    // loaded machine takes to notice the lost connection.
    let (mut daemon, log) = coachd_run_with(&data, &relay.address, 60, &[("COACHD__BLE__SESSION_SILENCE_S", "120")]);
    let mut kept = Vec::new();
    let base = format!("http://{}", listen_address(&log, &mut kept));
    fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(30));
    let first = fake.beat(130);
    for i in 1..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat(if i == 9 { 135 } else { 130 });
    }
    // "sent" means the bus has it, not coachd: the cut waits until the last one is recorded.
    wait_live_bpm(&base, 135, Duration::from_secs(30));
    // btleplug's connection dies (the one that subscribed); the bus, org.bluez and the
    // connection coachd watches BlueZ's owner on stay.
    let (cut, stayed) = relay.cut_saying("StartNotify");
    assert_eq!(cut, 1, "one connection subscribed");
    assert!(stayed >= 1, "the probe's connection stays");
    let subscribed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.expect(&format!("subscribed {PAIRED}"), Duration::from_secs(90));
    }));
    if subscribed.is_err() {
        kept.extend(log.try_iter());
        panic!("not subscribed again; coachd logged:\n{}", kept.join("\n"));
    }
    let mut last = Instant::now();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat(if i == 9 { 145 } else { 140 });
    }
    wait_live_bpm(&base, 145, Duration::from_secs(30));
    stop(&mut daemon, &log, &mut kept);
    // The rest of what it logged, up to the end of its stderr.
    while let Ok(line) = log.recv_timeout(Duration::from_secs(5)) {
        kept.push(line);
    }
    println!("{}", kept.join("\n"));
    let sessions = ble_sessions(&data);
    assert_eq!(sessions.len(), 1, "one session across the lost connection: {sessions:?}\n{}", kept.join("\n"));
    let (_, samples, duration) = sessions[0].clone();
    assert_eq!(samples, 20, "every notification sent while coachd was connected, once");
    let spanned = (last - first).as_secs_f64();
    assert!((duration - spanned).abs() < 1.5, "duration {duration} s, notifications spanned {spanned} s");
    // The path taken: the probe's call on the dead connection got no answer while BlueZ
    // answered on the probe's own; not BlueZ leaving or restarting.
    let noticed = kept.iter().filter(|l| l.contains("does not answer coachd's connection")).count();
    assert_eq!(noticed, 1, "the dead connection noticed once:\n{}", kept.join("\n"));
    for never in ["org.bluez left the bus", "bluetoothd restarted"] {
        assert!(!kept.iter().any(|l| l.contains(never)), "BlueZ stayed: {never:?}\n{}", kept.join("\n"));
    }
    assert!(
        !kept.iter().any(|l| l.contains("stream ended")),
        "btleplug's streams were silent on the dead connection, never ended (ble::collector's \
         module docs); if one ends now, that path was taken and this test should say so:\n{}",
        kept.join("\n")
    );
}
