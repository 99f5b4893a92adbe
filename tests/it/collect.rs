//! Remote collectors end to end: `coachd collect` binaries, each on its own private
//! D-Bus with the fake BlueZ (tests/it/bluez.rs), forwarding to a hub `coachd run` in the
//! same test; and the hub's batch endpoint refusing what a collector may not send.

use crate::bluez::{eventually, lines, listen_address, prerequisites, private_bus, wait_log, Fake, Guard};
use coachd::model::SeriesKind;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const STRAP: &str = "C0:FF:EE:00:00:01";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A hub on `port` (its own Bluetooth collector off: the straps are at the collectors).
fn hub(data: &Path, port: u16) -> (Guard, Receiver<String>, String) {
    let mut child = crate::coachd_process(data)
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--log-format", "json"])
        .env("RUST_LOG", "info")
        .env("COACHD__BLE__ENABLED", "false")
        .env("COACHD__BLE__SESSION_SILENCE_S", "30")
        .env("COACHD__INBOX__ENABLED", "false")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("COACHD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let log = lines(child.stderr.take().expect("stderr"));
    let mut kept = Vec::new();
    let listen = listen_address(&log, &mut kept);
    (Guard(child), log, format!("http://{listen}"))
}

/// `coachd collect` on the fake BlueZ at `bus`, forwarding to `hub`.
fn collector(data: &Path, bus: &str, hub: &str, token_file: &Path) -> (Guard, Receiver<String>) {
    collector_with(data, bus, hub, token_file, &[])
}

/// The same, with more arguments (`--inbox DIR`).
fn collector_with(data: &Path, bus: &str, hub: &str, token_file: &Path, more: &[&str]) -> (Guard, Receiver<String>) {
    let mut child = crate::coachd_process(data)
        .args(["collect", "--hub", hub, "--token-file"])
        .arg(token_file)
        .args(["--log-format", "json"])
        .args(more)
        .env("COACHD__INBOX__POLL_MS", "200")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env("RUST_LOG", "info,bluez_async=warn")
        .env("COACHD__BLE__SESSION_SILENCE_S", "30")
        .env("COACHD__BLE__FLUSH_S", "1")
        .env("COACHD__BLE__BLUEZ_RETRY_S", "1")
        .env("COACHD__COLLECTOR__REPORT_S", "1")
        .env("COACHD__COLLECTOR__RETRY_MAX_S", "2")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("COACHD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd collect");
    let log = lines(child.stderr.take().expect("stderr"));
    // Up (its SIGTERM handler installed) before the test goes on.
    wait_log(&log, &mut Vec::new(), "coachd collector is running", Duration::from_secs(30));
    (Guard(child), log)
}

/// Clients ana and bo, the strap paired with ana, and collectors with these names; their
/// token files.
fn prepare_hub(dir: &Path, hub_data: &Path, names: &[&str]) -> Vec<PathBuf> {
    for args in [
        vec!["client", "add", "ana", "--tz", "Europe/Berlin"],
        vec!["client", "add", "bo", "--tz", "Europe/Berlin"],
        vec!["devices", "pair", STRAP, "ana"],
    ] {
        super::coachd(hub_data).args(&args).assert().success();
    }
    names
        .iter()
        .map(|name| {
            let out = super::coachd(hub_data).args(["collector", "add", name]).assert().success();
            let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
            let token = text
                .lines()
                .map(str::trim)
                .find(|l| coachd::crypto::is_token(l))
                .unwrap_or_else(|| panic!("no token printed: {text}"))
                .to_string();
            let file = dir.join(format!("{name}.token"));
            std::fs::write(&file, format!("{token}\n")).expect("token file");
            file
        })
        .collect()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// The hub's Bluetooth sessions: (external id, stored hr_samples, heart-rate sample times).
fn hub_sessions(data: &Path) -> Vec<(String, i64, Vec<i64>)> {
    block_on(async {
        let pool = crate::raw_db(data).await;
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, external_id, hr_samples FROM activities WHERE source = 'ble' ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("query");
        pool.close().await;
        let store = crate::open_store(data).await;
        let mut out = Vec::new();
        for (id, external, n) in rows {
            let hr = store.series(id, SeriesKind::Hr).await.expect("series");
            out.push((external, n, hr.iter().map(|s| s.t_ms).collect()));
        }
        store.close().await;
        out
    })
}

fn hub_times(data: &Path) -> BTreeSet<i64> {
    hub_sessions(data).into_iter().flat_map(|(_, _, t)| t).collect()
}

/// Heart-rate sample times waiting in a (stopped) collector's outbox, and its batch count.
fn outbox_times(data: &Path) -> (BTreeSet<i64>, usize) {
    let path = data.join("collector-outbox.db");
    if !path.exists() {
        return (BTreeSet::new(), 0);
    }
    block_on(async {
        let pool = sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("outbox");
        let bodies: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM batches ORDER BY seq").fetch_all(&pool).await.expect("q");
        pool.close().await;
        let mut times = BTreeSet::new();
        for (body,) in &bodies {
            let b: coachd::model::Batch = serde_json::from_str(body).expect("a stored batch");
            for a in &b.activities {
                for s in a.series.iter().filter(|s| s.kind == SeriesKind::Hr) {
                    times.extend(s.samples.iter().map(|p| p.t_ms));
                }
            }
        }
        (times, bodies.len())
    })
}

fn collectors_json(hub_data: &Path) -> Vec<serde_json::Value> {
    let out = super::coachd(hub_data).args(["collector", "list", "--json"]).assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    v.as_array().cloned().unwrap_or_default()
}

fn signal(g: &Guard, sig: &str) {
    assert!(Command::new("kill").args([sig, &g.0.id().to_string()]).status().expect("kill").success());
}

/// SIGTERM, and exit 0 within 15 s.
fn stop(g: &mut Guard, log: &Receiver<String>, what: &str) {
    signal(g, "-TERM");
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = g.0.try_wait().expect("wait") {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(15), "{what} did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let kept: Vec<String> = log.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{what}:\n{}", kept.join("\n"));
}

fn kill(g: &mut Guard) {
    let _ = g.0.kill();
    let _ = g.0.wait();
}

#[test]
fn a_collector_records_while_the_hub_is_stopped_and_every_sample_reaches_it_once_as_one_activity() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub_data, col_data) = (dir.path().join("hub"), dir.path().join("collector"));
    let (_bus, bus) = private_bus(dir.path());
    let mut fake = Fake::start(&bus);
    let tokens = prepare_hub(dir.path(), &hub_data, &["studio"]);
    let port = free_port();
    let (mut hub1, hub_log, base) = hub(&hub_data, port);
    let (mut col, col_log) = collector(&col_data, &bus, &base, &tokens[0]);
    fake.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    let first = fake.beat_of(STRAP, 120);
    for i in 1..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat_of(STRAP, if i % 2 == 0 { 120 } else { 140 });
    }
    eventually(Duration::from_secs(30), || hub_times(&hub_data).len(), |n| *n == 10);

    // The hub goes away; the collector keeps recording into its outbox.
    stop(&mut hub1, &hub_log, "the hub");
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat_of(STRAP, if i % 2 == 0 { 120 } else { 140 });
    }
    let mut last = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake.beat_of(STRAP, 140);
    }
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(hub_times(&hub_data).len(), 10, "nothing reached a stopped hub");

    // Back: the backlog drains, every sample once, one session.
    let (mut hub2, hub_log2, _) = hub(&hub_data, port);
    eventually(Duration::from_secs(40), || hub_times(&hub_data).len(), |n| *n == 35);
    let listed = eventually(
        Duration::from_secs(30),
        || collectors_json(&hub_data),
        |c| c.len() == 1 && c[0]["backlog_batches"] == 0 && c[0]["state"] == "ok",
    );
    let studio = &listed[0];
    assert_eq!(studio["name"], "studio");
    assert!(studio["last_contact_age_s"].as_i64().is_some_and(|s| s < 30), "{studio}");
    let in_range = studio["in_range"].as_array().expect("in range");
    assert!(
        in_range.iter().any(|s| s["address"] == STRAP && s["link"] == "connected"),
        "the strap is connected at the collector: {studio}"
    );
    assert!(studio["adapter"].as_str().is_some_and(|a| a.starts_with("running")), "{studio}");
    let metrics =
        block_on(async { reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text") });
    assert!(metrics.contains("coachd_collector_backlog_batches{collector=\"studio\"} 0"), "{metrics}");
    assert!(metrics.contains("coachd_collector_outbox_full{collector=\"studio\"} 0"), "{metrics}");

    stop(&mut col, &col_log, "the collector");
    stop(&mut hub2, &hub_log2, "the hub");
    let sessions = hub_sessions(&hub_data);
    assert_eq!(sessions.len(), 1, "one activity: {sessions:?}");
    let (external, n, times) = &sessions[0];
    assert!(external.starts_with(STRAP), "{external}");
    assert_eq!((*n, times.len()), (35, 35), "every sample once");
    let spanned = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let expected = (last - first).as_secs_f64();
    assert!((spanned - expected).abs() < 1.5, "samples span {spanned} s; notifications {expected} s");
}

#[test]
fn devices_scan_at_a_collector_lists_what_its_adapter_hears_and_a_silent_collector_is_named_with_its_last_contact() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub_data, col_data) = (dir.path().join("hub"), dir.path().join("collector"));
    let (_bus, bus) = private_bus(dir.path());
    let cadence = "C0:FF:EE:00:02:03";
    let mut fake = Fake::with(&bus, &[&format!("{STRAP}=Polar H10 test"), &format!("{cadence}=Cadence/csc")]);
    let tokens = prepare_hub(dir.path(), &hub_data, &["studio"]);
    let (mut hub, hub_log, base) = hub(&hub_data, free_port());
    let (mut col, col_log) = collector(&col_data, &bus, &base, &tokens[0]);
    fake.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));

    // Asked at the hub, scanned at the collector (which records the strap meanwhile).
    let out = super::coachd(&hub_data)
        .args(["devices", "scan", "--collector", "studio", "--seconds", "2", "--wait", "30", "--json"])
        .assert()
        .success();
    let seen: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    let seen = seen.as_array().expect("a list");
    let strap = seen.iter().find(|s| s["address"] == STRAP).unwrap_or_else(|| panic!("the strap: {seen:?}"));
    assert_eq!(strap["name"], "Polar H10 test", "{strap}");
    assert_eq!(strap["services"][0], "heart_rate", "{strap}");
    assert!(strap["rssi"].is_i64(), "{strap}");
    assert_eq!((&strap["client"], &strap["collector"]), (&"ana".into(), &"studio".into()), "{strap}");
    let other = seen.iter().find(|s| s["address"] == cadence).unwrap_or_else(|| panic!("the sensor: {seen:?}"));
    assert_eq!((&other["services"][0], &other["client"]), (&"cycling_speed".into(), &serde_json::Value::Null));
    // The table names the collector too; what was heard is remembered for `devices list`.
    let out = super::coachd(&hub_data)
        .args(["devices", "scan", "--collector", "studio", "--seconds", "1", "--wait", "30"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("COLLECTOR") && text.contains("Cadence") && text.contains("studio"), "{text}");
    let out = super::coachd(&hub_data).args(["devices", "list", "--json"]).assert().success();
    let listed: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert!(listed.as_array().expect("list").iter().any(|d| d["address"] == cadence), "{listed}");
    // The collector kept recording the strap through the scans.
    fake.beat_of(STRAP, 120);
    eventually(Duration::from_secs(30), || hub_times(&hub_data).len(), |n| *n >= 1);

    // Stopped: the hub gives up after --wait and names the collector's last contact.
    stop(&mut col, &col_log, "the collector");
    let out = super::coachd(&hub_data)
        .args(["devices", "scan", "--collector", "studio", "--seconds", "1", "--wait", "2"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("collector studio last seen") && err.contains("s ago; is it running?"), "{err}");
    // An unknown (or removed, so revoked) collector is bad input.
    let out = super::coachd(&hub_data).args(["devices", "scan", "--collector", "attic"]).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no collector named \"attic\"") && err.contains("collector list"), "{err}");
    super::coachd(&hub_data).args(["collector", "remove", "studio"]).assert().success();
    let out = super::coachd(&hub_data).args(["devices", "scan", "--collector", "studio"]).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no collector named \"studio\""), "{err}");
    stop(&mut hub, &hub_log, "the hub");
}

/// xorshift: the kill points, reproducible from the seed printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_collector_killed_at_random_points_loses_nothing_it_committed_and_doubles_nothing() {
    prerequisites();
    let rounds: u32 = std::env::var("COLLECT_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let seed = std::env::var("COLLECT_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    println!("COLLECT_KILL_SEED={seed} COLLECT_KILL_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub_data, col_data) = (dir.path().join("hub"), dir.path().join("collector"));
    let (_bus, bus) = private_bus(dir.path());
    let mut fake = Fake::start(&bus);
    let tokens = prepare_hub(dir.path(), &hub_data, &["studio"]);
    let (mut hub, hub_log, base) = hub(&hub_data, free_port());
    let mut committed: BTreeSet<i64> = BTreeSet::new();
    let (mut sent, mut surely) = (0usize, 0usize);
    for round in 0..rounds {
        let (mut col, col_log) = collector(&col_data, &bus, &base, &tokens[0]);
        let subscribed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fake.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
        }));
        if subscribed.is_err() {
            let kept: Vec<String> = col_log.try_iter().collect();
            panic!("round {round}: not subscribed; the collector logged:\n{}", kept.join("\n"));
        }
        let mut beats = Vec::new();
        for _ in 0..2 + rng.below(6) {
            std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
            beats.push(fake.beat_of(STRAP, 130));
        }
        // Kill while recording, while flushing, or while forwarding.
        std::thread::sleep(Duration::from_millis(rng.below(2500)));
        kill(&mut col);
        let killed = Instant::now();
        sent += beats.len();
        // A beat the recorder had for 4 s was flushed (every second) and committed.
        surely += beats.iter().filter(|b| killed - **b >= Duration::from_secs(4)).count();
        let (waiting, _) = outbox_times(&col_data);
        let now: BTreeSet<i64> = hub_times(&hub_data).union(&waiting).copied().collect();
        let lost: Vec<_> = committed.difference(&now).collect();
        assert!(lost.is_empty(), "round {round} (seed {seed}): committed samples lost: {lost:?}");
        committed = now;
    }
    assert!(committed.len() >= surely, "{} committed of {sent} sent; {surely} were surely flushed", committed.len());
    // Started once more, the collector forwards what its outbox still holds.
    let (mut col, col_log) = collector(&col_data, &bus, &base, &tokens[0]);
    eventually(Duration::from_secs(40), || hub_times(&hub_data), |t| t.is_superset(&committed));
    stop(&mut col, &col_log, "the collector");
    eventually(Duration::from_secs(20), || outbox_times(&col_data).1, |n| *n == 0);
    stop(&mut hub, &hub_log, "the hub");
    let sessions = hub_sessions(&hub_data);
    assert_eq!(
        sessions.len(),
        1,
        "one activity across {rounds} kills: {:?}",
        sessions.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let (_, n, times) = &sessions[0];
    let times: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(times, committed, "the hub holds exactly what the collector committed");
    assert_eq!(*n as usize, committed.len(), "nothing doubled");
    let studio = &collectors_json(&hub_data)[0];
    assert_eq!(studio["applied_batches"], studio["last_seq"], "each sequence number applied once: {studio}");
    println!("{rounds} kills: {sent} notifications sent, {} committed and forwarded once", committed.len());
}

/// A proxy between the collector and the hub that, once armed, passes one batch request
/// to the hub, SIGKILLs the hub once it has answered, and gives the collector no answer.
struct Proxy {
    base: String,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    killed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hub_pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
    answers: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

fn proxy(hub: String) -> Proxy {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hub_pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (a, k, p, ans) = (armed.clone(), killed.clone(), hub_pid.clone(), answers.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let http = reqwest::Client::new();
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (http, hub, a, k, p, ans) =
                    (http.clone(), hub.clone(), a.clone(), k.clone(), p.clone(), ans.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                    let url = format!("{hub}{}", parts.uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
                    let mut out = http.request(parts.method.clone(), url).body(body.to_vec());
                    for (name, value) in &parts.headers {
                        if name != "host" && name != "content-length" {
                            out = out.header(name, value);
                        }
                    }
                    let batches = parts.uri.path().ends_with("/batches");
                    let Ok(r) = out.send().await else {
                        return (axum::http::StatusCode::BAD_GATEWAY, "the hub is away".to_string());
                    };
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    if batches && status.is_success() {
                        ans.lock().expect("lock").push(serde_json::from_str(&text).unwrap_or_default());
                        if a.swap(false, Ordering::SeqCst) {
                            // Applied and committed at the hub; the hub dies before its answer arrives.
                            let pid = p.load(Ordering::SeqCst);
                            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                            k.store(true, Ordering::SeqCst);
                            return (axum::http::StatusCode::BAD_GATEWAY, "the hub died mid-request".to_string());
                        }
                    }
                    (status, text)
                }
            });
            axum::serve(listener, app).await.expect("proxy");
        });
    });
    Proxy { base, armed, killed, hub_pid, answers }
}

#[test]
fn a_hub_killed_mid_request_applies_the_batch_once() {
    use std::sync::atomic::Ordering;
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub_data, col_data) = (dir.path().join("hub"), dir.path().join("collector"));
    let (_bus, bus) = private_bus(dir.path());
    let mut fake = Fake::start(&bus);
    let tokens = prepare_hub(dir.path(), &hub_data, &["studio"]);
    let port = free_port();
    let (mut hub1, _log1, base) = hub(&hub_data, port);
    let proxy = proxy(base);
    proxy.hub_pid.store(hub1.0.id(), Ordering::SeqCst);
    let (mut col, col_log) = collector(&col_data, &bus, &proxy.base, &tokens[0]);
    fake.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    proxy.armed.store(true, Ordering::SeqCst);
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(150));
        fake.beat_of(STRAP, 130);
    }
    eventually(Duration::from_secs(30), || proxy.killed.load(Ordering::SeqCst), |k| *k);
    let _ = hub1.0.wait();
    let applied_before = hub_times(&hub_data).len();
    assert!(applied_before > 0, "the request was applied before the hub died");
    // The hub comes back at the same address; the collector sends the batch again.
    let (mut hub2, log2, _) = hub(&hub_data, port);
    eventually(Duration::from_secs(40), || hub_times(&hub_data).len(), |n| *n == 12);
    eventually(
        Duration::from_secs(30),
        || collectors_json(&hub_data),
        |c| c[0]["backlog_batches"] == 0 && c[0]["last_contact_age_s"].as_i64().is_some_and(|s| s < 10),
    );
    stop(&mut col, &col_log, "the collector");
    let repeated: u64 = proxy.answers.lock().expect("lock").iter().map(|a| a["repeated"].as_u64().unwrap_or(0)).sum();
    assert!(repeated >= 1, "the batch whose answer was lost was sent again and found applied");
    let studio = &collectors_json(&hub_data)[0];
    assert_eq!(studio["applied_batches"], studio["last_seq"], "applied once: {studio}");
    stop(&mut hub2, &log2, "the hub");
    let sessions = hub_sessions(&hub_data);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!((sessions[0].1, sessions[0].2.len()), (12, 12), "every sample once");
}

#[test]
fn two_collectors_seeing_the_same_strap_in_turn_give_one_session_at_the_hub() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_data = dir.path().join("hub");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).expect("dir");
    std::fs::create_dir_all(&b_dir).expect("dir");
    let (_bus_a, bus_a) = private_bus(&a_dir);
    let (_bus_b, bus_b) = private_bus(&b_dir);
    let mut fake_a = Fake::with(&bus_a, &[&format!("{STRAP}=Polar H10 test")]);
    let mut fake_b = Fake::with(&bus_b, &[&format!("{STRAP}=Polar H10 test")]);
    let tokens = prepare_hub(dir.path(), &hub_data, &["hall-east", "hall-west"]);
    let (mut hub, hub_log, base) = hub(&hub_data, free_port());
    let (mut col_a, log_a) = collector(&a_dir.join("data"), &bus_a, &base, &tokens[0]);
    let (mut col_b, log_b) = collector(&b_dir.join("data"), &bus_b, &base, &tokens[1]);
    fake_a.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    fake_b.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    // The client warms up by the east end of the hall, then rows at the west end.
    let first = fake_a.beat_of(STRAP, 120);
    for _ in 1..10 {
        std::thread::sleep(Duration::from_millis(150));
        fake_a.beat_of(STRAP, 120);
    }
    eventually(Duration::from_secs(30), || hub_times(&hub_data).len(), |n| *n == 10);
    std::thread::sleep(Duration::from_secs(3));
    let mut last = first;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        last = fake_b.beat_of(STRAP, 140);
    }
    eventually(Duration::from_secs(30), || hub_times(&hub_data).len(), |n| *n == 20);
    stop(&mut col_a, &log_a, "collector a");
    stop(&mut col_b, &log_b, "collector b");
    stop(&mut hub, &hub_log, "the hub");
    let sessions = hub_sessions(&hub_data);
    assert_eq!(sessions.len(), 1, "one session across two collectors: {sessions:?}");
    let (_, n, times) = &sessions[0];
    assert_eq!((*n, times.len()), (20, 20));
    let spanned = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    assert!((spanned - (last - first).as_secs_f64()).abs() < 1.5, "the session spans both parts: {spanned} s");
    let out = super::coachd(&hub_data).args(["activities", "ana", "--json"]).output().expect("activities");
    let acts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let a = &acts.as_array().expect("list")[0];
    assert_eq!(a["avg_hr"].as_f64(), Some(130.0), "both parts' heart rate: {a}");
    assert_eq!(a["max_hr"].as_u64(), Some(140), "{a}");
    assert!((a["duration_s"].as_f64().unwrap_or(0.0) - spanned).abs() < 1.0, "{a}");
}

/// Hub side only: what the batch endpoint refuses, and that a refusal stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_unpaired_devices_and_replayed_batches_are_refused_with_a_clear_status_and_nothing_stored() {
    use std::io::Write;
    let t = super::TestStore::new().await;
    let ana = t.client("ana").await;
    let bo = t.client("bo").await;
    t.store.pair_device(STRAP, ana).await.expect("pair");
    let (_, token) = t.store.add_collector("studio", None).await.expect("add");
    let base = t.serve().await;
    let http = reqwest::Client::new();
    let start = super::t0();
    let session = |client: i64, address: &str, bpm: f64| {
        let mut a = super::hour_run(client, &format!("{address}@{}", start.timestamp_millis()), start);
        a.activity_type = "workout".into();
        a.series[0].samples.truncate(60);
        for s in &mut a.series[0].samples {
            s.value = bpm;
        }
        a.end = start + chrono::Duration::seconds(59);
        a.duration_s = 59.0;
        a.distance_m = None;
        super::batch("ble", vec![a], None)
    };
    let post = |token: Option<String>, batches: serde_json::Value| {
        let http = http.clone();
        let url = format!("{base}/collector/v1/batches");
        async move {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(serde_json::json!({ "batches": batches }).to_string().as_bytes()).expect("gzip");
            let mut r = http.post(url).header("content-encoding", "gzip").body(gz.finish().expect("gzip"));
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            let r = r.send().await.expect("send");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    let one = |seq: i64, id: &str, b: &coachd::model::Batch| serde_json::json!([{ "seq": seq, "id": id, "batch": b }]);
    let good = session(ana, STRAP, 130.0);

    // No token, a made-up one: 401, nothing stored.
    let (s, body) = post(None, one(1, "a1", &good)).await;
    assert_eq!(s, 401, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Authorization")), "{body}");
    let (s, body) = post(Some("ab".repeat(32)), one(1, "a1", &good)).await;
    assert_eq!(s, 401, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("unknown or revoked")), "{body}");
    assert_eq!(t.store.row_counts().await.expect("counts").activities, 0);

    // Applied once; the same batch again changes nothing.
    let (s, body) = post(Some(token.clone()), one(1, "a1", &good)).await;
    assert_eq!((s, body["applied"].as_u64(), body["through"].as_i64()), (200, Some(1), Some(1)), "{body}");
    let counts = t.store.row_counts().await.expect("counts");
    let (s, body) = post(Some(token.clone()), one(1, "a1", &good)).await;
    assert_eq!((s, body["applied"].as_u64(), body["repeated"].as_u64()), (200, Some(0), Some(1)), "{body}");
    assert_eq!(t.store.row_counts().await.expect("counts"), counts, "a repeated batch changes nothing");

    // The same sequence number with other content, or under another id: 409, nothing stored.
    let other = session(ana, STRAP, 150.0);
    for (id, b) in [("a1", &other), ("zz", &good)] {
        let (s, body) = post(Some(token.clone()), one(1, id, b)).await;
        assert_eq!((s, body["seq"].as_i64()), (409, Some(1)), "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("refused")), "{body}");
    }
    let hr = t.store.series(1, SeriesKind::Hr).await.expect("hr");
    assert!(hr.iter().all(|s| s.value == 130.0), "the stored session is untouched");

    // A device the hub has not paired, or paired with someone else: 403, nothing of the
    // request stored (the good batch before it in the same request neither).
    let unpaired = session(ana, "C0:FF:EE:00:00:99", 130.0);
    let not_bos = session(bo, STRAP, 130.0);
    for b in [&unpaired, &not_bos] {
        let later = session(ana, STRAP, 131.0);
        let batches =
            serde_json::json!([{ "seq": 2, "id": "b2", "batch": later }, { "seq": 3, "id": "b3", "batch": b }]);
        let (s, body) = post(Some(token.clone()), batches).await;
        assert_eq!((s, body["seq"].as_i64()), (403, Some(3)), "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("not paired")), "{body}");
        assert_eq!(t.store.row_counts().await.expect("counts"), counts, "nothing stored");
    }
    let listed = t.store.collector("studio").await.expect("collector");
    assert_eq!(listed.last_seq, 1, "the cursor did not move");
    assert!(listed.refused.as_deref().is_some_and(|r| r.contains("not paired")), "{listed:?}");

    // Not a session (a cursor of its own, daily metrics): 400.
    let mut sneaky = session(ana, STRAP, 130.0);
    sneaky.cursor = Some(coachd::model::Cursor { stream: "x".into(), value: "y".into() });
    let (s, body) = post(Some(token.clone()), one(2, "c2", &sneaky)).await;
    assert_eq!(s, 400, "{body}");
    let app = coachd::app::App::new(t.store.clone(), std::sync::Arc::new(t.config.clone())).expect("app");
    let shown = app.collectors().await.expect("list");
    assert_eq!(shown[0].state, "refused", "collector list shows it stuck: {shown:?}");
    // Once a request goes through again, it is no longer shown as refused.
    let (s, body) = post(Some(token.clone()), one(2, "c2", &session(ana, STRAP, 131.0))).await;
    assert_eq!((s, body["through"].as_i64()), (200, Some(2)), "{body}");
    assert_eq!(app.collectors().await.expect("list")[0].state, "ok");
    let counts = t.store.row_counts().await.expect("counts");

    // The pairing list: with the token only.
    let r = http.get(format!("{base}/collector/v1/pairings")).send().await.expect("pairings");
    assert_eq!(r.status().as_u16(), 401);
    let r = http.get(format!("{base}/collector/v1/pairings")).bearer_auth(&token).send().await.expect("pairings");
    let list: serde_json::Value = r.json().await.expect("json");
    assert_eq!(list["pairings"][0]["address"], STRAP, "{list}");
    assert_eq!(list["pairings"][0]["client_id"], ana, "{list}");

    // Removed: its token is refused from then on.
    t.store.remove_collector("studio").await.expect("remove");
    let (s, _) = post(Some(token.clone()), one(3, "d3", &session(ana, STRAP, 130.0))).await;
    assert_eq!(s, 401);
    let r = http.get(format!("{base}/collector/v1/pairings")).bearer_auth(&token).send().await.expect("pairings");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(t.store.row_counts().await.expect("counts"), counts);
}

#[test]
fn collect_refuses_plain_http_to_another_machine_and_a_token_file_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("collector");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{}\n", "ab".repeat(32))).expect("token");
    let refused = |hub: &str, file: &Path| {
        let out = super::coachd(&data).args(["collect", "--hub", hub, "--token-file"]).arg(file).assert().code(2);
        String::from_utf8_lossy(&out.get_output().stderr).to_string()
    };
    let err = refused("http://coach.example.org", &token);
    assert!(err.contains("plain http") && err.contains("https://"), "{err}");
    let err = refused("ftp://coach.example.org", &token);
    assert!(err.contains("https://"), "{err}");
    let err = refused("https://coach.example.org", &dir.path().join("missing"));
    assert!(err.contains("cannot read the token file"), "{err}");
    std::fs::write(&token, "not a token\n").expect("token");
    let err = refused("https://coach.example.org", &token);
    assert!(err.contains("does not hold a collector token"), "{err}");
    assert!(!data.join("collector-outbox.db").exists(), "nothing started");
    // The same check in the configuration.
    std::fs::create_dir_all(&data).expect("dir");
    let out = super::coachd(&data)
        .args(["config", "check"])
        .env("COACHD__COLLECTOR__HUB", "http://192.168.1.10:7878")
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stdout).to_string()
        + &String::from_utf8_lossy(&out.get_output().stderr);
    assert!(err.contains("COACHD__COLLECTOR__HUB") && err.contains("plain http"), "{err}");
}

/// Hub side only: a scan request goes to the collector it was asked of, and only that
/// collector may answer it, once, with sensor addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_request_reaches_only_its_collector_and_is_answered_once() {
    use coachd::store::collectors::{Heard, ScanState};
    let t = super::TestStore::new().await;
    let (studio, token) = t.store.add_collector("studio", None).await.expect("add");
    let (_, other) = t.store.add_collector("attic", None).await.expect("add");
    let base = t.serve().await;
    let http = reqwest::Client::new();
    let id = t.store.ask_scan(studio.id, 3).await.expect("ask");
    let scan_of = |token: String| {
        let (http, url) = (http.clone(), format!("{base}/collector/v1/pairings"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("pairings");
            r.json::<serde_json::Value>().await.expect("json")["scan"].clone()
        }
    };
    assert_eq!(scan_of(other.clone()).await, serde_json::Value::Null, "not the attic's");
    assert_eq!(scan_of(token.clone()).await, serde_json::json!({ "id": id, "seconds": 3 }));
    assert_eq!(t.store.scan_state(id).await.expect("state"), ScanState::Waiting { sent: true });
    let answer = |token: String, body: serde_json::Value| {
        let (http, url) = (http.clone(), format!("{base}/collector/v1/scans/{id}"));
        async move {
            let r = http.post(url).bearer_auth(token).json(&body).send().await.expect("answer");
            (r.status().as_u16(), r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    let good = serde_json::json!({ "seen": [{ "address": "c0:ff:ee:00:00:01", "name": "Polar H10",
        "services": ["heart_rate"], "rssi": -50 }] });
    let (s, body) = answer(other, good.clone()).await;
    assert_eq!(s, 404, "another collector's request: {body}");
    let (s, body) = answer(token.clone(), serde_json::json!({ "seen": [{ "address": "not an address" }] })).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("not an address")), "{body}");
    let (s, body) = answer(token.clone(), good.clone()).await;
    assert_eq!(s, 200, "{body}");
    let heard = Heard {
        address: "C0:FF:EE:00:00:01".into(),
        name: Some("Polar H10".into()),
        services: vec!["heart_rate".into()],
        rssi: Some(-50),
    };
    assert_eq!(t.store.scan_state(id).await.expect("state"), ScanState::Done(vec![heard]));
    let (s, body) = answer(token.clone(), good).await;
    assert_eq!(s, 404, "answered once: {body}");
    assert_eq!(scan_of(token).await, serde_json::Value::Null, "nothing open any more");
}

/// POST these forwarded batches with this token (gzip JSON, as a collector sends them):
/// (status, answer).
async fn post_batches(base: &str, token: &str, batches: serde_json::Value) -> (u16, serde_json::Value) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(serde_json::json!({ "batches": batches }).to_string().as_bytes()).expect("gzip");
    let r = reqwest::Client::new()
        .post(format!("{base}/collector/v1/batches"))
        .header("content-encoding", "gzip")
        .bearer_auth(token)
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// A strap session of `client` starting at `start_ms`, heart rate at these times.
fn strap_session(client: i64, address: &str, start_ms: i64, times: &[i64], bpm: f64) -> coachd::model::Batch {
    let at = |ms| chrono::DateTime::from_timestamp_millis(ms).expect("time");
    let mut a = super::hour_run(client, &format!("{address}@{start_ms}"), at(start_ms));
    a.activity_type = "workout".into();
    a.series[0].samples = times.iter().map(|&t| coachd::model::Sample { t_ms: t, value: bpm }).collect();
    a.series.truncate(1);
    a.end = at(*times.last().expect("a sample"));
    a.duration_s = (times.last().expect("a sample") - start_ms) as f64 / 1000.0;
    a.distance_m = None;
    a.avg_hr = Some(bpm);
    a.max_hr = Some(bpm as u16);
    super::batch("ble", vec![a], None)
}

/// A file as a collector's inbox forwards it.
fn inbox_file(client: &str, name: &str, bytes: &[u8]) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "client": client, "name": name, "size": bytes.len(),
        "sha256": coachd::crypto::hex(&coachd::crypto::sha256(bytes)),
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// `coachd activities CLIENT --json` on the test store's data dir.
fn activities_of(t: &super::TestStore, client: &str) -> Vec<serde_json::Value> {
    let out = super::coachd(&t.dir.path().join("data"))
        .args(["activities", client, "--from", "2000-01-01", "--to", "2100-01-01", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    v.as_array().cloned().unwrap_or_default()
}

/// The hub's web server over an app that knows its data dir (so it can quarantine).
async fn serve_with_files(t: &super::TestStore) -> String {
    let mut app = coachd::app::App::new(t.store.clone(), std::sync::Arc::new(t.config.clone())).expect("app");
    let data = coachd::paths::DataDir::new(t.dir.path().join("data"));
    app.files = Some(coachd::app::Files { config: data.default_config(), data });
    let state = coachd::web::WebState::for_app(app, coachd::source::Health::default());
    let router = coachd::web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Hub side: a collector bound to a trainer reads only that trainer's clients' devices
/// and may submit only for them; a studio-wide one reads every pairing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_bound_collector_lists_only_its_trainers_devices_and_is_refused_for_another_trainers_client() {
    let t = super::TestStore::new().await;
    let (tina, _) = t.store.upsert_trainer("tina", "x").await.expect("trainer");
    let (tom, _) = t.store.upsert_trainer("tom", "x").await.expect("trainer");
    let ana = t.client("ana").await;
    let bo = t.client("bo").await;
    t.store.set_client_trainer(ana, Some(tina.id)).await.expect("assign");
    t.store.set_client_trainer(bo, Some(tom.id)).await.expect("assign");
    let bos_strap = "C0:FF:EE:00:00:02";
    t.store.pair_device(STRAP, ana).await.expect("pair");
    t.store.pair_device(bos_strap, bo).await.expect("pair");
    let app = coachd::app::App::new(t.store.clone(), std::sync::Arc::new(t.config.clone())).expect("app");
    let bound = app.add_collector("tinas-gym", Some("tina")).await.expect("add").token;
    let hall = app.add_collector("hall", None).await.expect("add").token;
    let err = app.add_collector("nobodys", Some("nobody")).await.err().expect("no such trainer");
    assert!(err.to_string().contains("no trainer \"nobody\""), "{err}");
    let base = serve_with_files(&t).await;
    let http = reqwest::Client::new();
    let pairings = |token: String| {
        let (http, url) = (http.clone(), format!("{base}/collector/v1/pairings"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("pairings");
            let v: serde_json::Value = r.json().await.expect("json");
            v["pairings"]
                .as_array()
                .expect("list")
                .iter()
                .map(|p| p["address"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(pairings(bound.expose().clone()).await, [STRAP], "only tina's client's strap");
    assert_eq!(pairings(hall.expose().clone()).await, [STRAP, bos_strap], "studio-wide: every pairing");

    // Bo's strap (paired at the hub, with tom's client) through tina's collector: 403,
    // nothing of the request stored, the good batch before it neither.
    let start = super::t0().timestamp_millis();
    let times: Vec<i64> = (0..30).map(|i| start + i * 1000).collect();
    let anas = strap_session(ana, STRAP, start, &times, 120.0);
    let bos = strap_session(bo, bos_strap, start, &times, 120.0);
    let (s, body) = post_batches(
        &base,
        bound.expose(),
        serde_json::json!([{ "seq": 1, "id": "a1", "batch": anas }, { "seq": 2, "id": "a2", "batch": bos }]),
    )
    .await;
    assert_eq!((s, body["seq"].as_i64()), (403, Some(2)), "{body}");
    let why = body["error"].as_str().unwrap_or_default();
    assert!(why.contains(bos_strap) && why.contains("not a client of trainer tina"), "{body}");
    assert!(why.contains("nothing stored"), "{body}");
    assert_eq!(t.store.row_counts().await.expect("counts").activities, 0, "nothing stored");
    // A file for bo's folder through tina's collector: refused the same way, nothing kept.
    let fit = super::files::run_with_pause(7);
    let (s, body) = post_batches(
        &base,
        bound.expose(),
        serde_json::json!([{ "seq": 1, "id": "f1", "file": inbox_file("bo", "run.fit", &fit) }]),
    )
    .await;
    assert_eq!((s, body["seq"].as_i64()), (403, Some(1)), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("not a client of trainer tina")), "{body}");
    let (s, body) = post_batches(
        &base,
        bound.expose(),
        serde_json::json!([{ "seq": 1, "id": "f1", "file": inbox_file("nobody", "run.fit", &fit) }]),
    )
    .await;
    assert_eq!(s, 403, "a folder naming no client: {body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("no client of that name")), "{body}");
    let counts = t.store.row_counts().await.expect("counts");
    assert_eq!((counts.activities, counts.cursors), (0, 0), "nothing stored: {counts:?}");
    assert!(!t.dir.path().join("data/quarantine/bo").exists(), "nothing kept of a refused file");
    let c = t.store.collector("tinas-gym").await.expect("collector");
    assert_eq!(c.last_seq, 0, "the cursor did not move");

    // Its own trainer's client: applied. The studio-wide collector: bo's strap too.
    let (s, body) =
        post_batches(&base, bound.expose(), serde_json::json!([{ "seq": 1, "id": "a1", "batch": anas }])).await;
    assert_eq!((s, body["applied"].as_u64()), (200, Some(1)), "{body}");
    let (s, body) =
        post_batches(&base, hall.expose(), serde_json::json!([{ "seq": 1, "id": "h1", "batch": bos }])).await;
    assert_eq!((s, body["applied"].as_u64()), (200, Some(1)), "{body}");
    let listed = app.collectors().await.expect("list");
    let scope: Vec<_> = listed.iter().map(|c| (c.name.as_str(), c.trainer.as_deref())).collect();
    assert_eq!(scope, [("hall", None), ("tinas-gym", Some("tina"))]);
    let data = t.dir.path().join("data");
    let out = super::coachd(&data).args(["collector", "list"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("scope         trainer tina's clients only"), "{text}");
    assert!(text.contains("scope         studio-wide"), "{text}");
    let out = super::coachd(&data).args(["collector", "add", "attic", "--trainer", "nobody"]).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no trainer \"nobody\""), "{err}");
    let out = super::coachd(&data).args(["collector", "add", "attic", "--trainer", "TOM"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("registered (for trainer tom's clients only)"), "{text}");
    assert_eq!(t.store.collector("attic").await.expect("attic").trainer.as_deref(), Some("tom"));
}

/// Hub side: files from a collector's inbox go through the file reader inside the
/// exactly-once batch; one the hub cannot read is acknowledged and quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_file_is_imported_once_and_an_unreadable_one_is_acknowledged_and_quarantined_at_the_hub() {
    let t = super::TestStore::new().await;
    let ana = t.client("ana").await;
    t.store.pair_device(STRAP, ana).await.expect("pair");
    let (_, token) = t.store.add_collector("studio", None).await.expect("add");
    let base = serve_with_files(&t).await;
    let fit = super::files::run_with_pause(11);
    let file = inbox_file("ana", "run.fit", &fit);

    let (s, body) = post_batches(&base, &token, serde_json::json!([{ "seq": 1, "id": "f1", "file": file }])).await;
    assert_eq!((s, body["applied"].as_u64(), body["through"].as_i64()), (200, Some(1), Some(1)), "{body}");
    let counts = t.store.row_counts().await.expect("counts");
    assert_eq!(counts.activities, 1, "{counts:?}");
    let acts = activities_of(&t, "ana");
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["sources"], serde_json::json!(["fit"]), "stored as ana's FIT file: {acts:?}");
    // The same batch again: repeated, nothing changes. The same file committed again (a
    // crash between the collector's commit and its move): applied, and a duplicate.
    let (s, body) = post_batches(&base, &token, serde_json::json!([{ "seq": 1, "id": "f1", "file": file }])).await;
    assert_eq!((s, body["repeated"].as_u64()), (200, Some(1)), "{body}");
    let (s, body) = post_batches(&base, &token, serde_json::json!([{ "seq": 2, "id": "f2", "file": file }])).await;
    assert_eq!((s, body["applied"].as_u64(), body["through"].as_i64()), (200, Some(1), Some(2)), "{body}");
    assert_eq!(t.store.row_counts().await.expect("counts"), counts, "one import by content hash");
    // Damaged on the way (bytes and hash disagree): 400, nothing stored.
    let mut damaged = inbox_file("ana", "other.fit", &super::files::run_with_pause(12));
    damaged["sha256"] = serde_json::json!("00".repeat(32));
    let (s, body) = post_batches(&base, &token, serde_json::json!([{ "seq": 3, "id": "f3", "file": damaged }])).await;
    assert_eq!((s, body["seq"].as_i64()), (400, Some(3)), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("damaged")), "{body}");

    // Not an activity file, in line with a session: both applied; the file's bytes are
    // kept in the hub's quarantine with why; collector list says so.
    let junk = b"these are not the bytes of a workout".to_vec();
    let start = super::t0().timestamp_millis();
    let times: Vec<i64> = (0..10).map(|i| start + i * 1000).collect();
    let batches = serde_json::json!([
        { "seq": 3, "id": "f3", "file": inbox_file("ana", "notes.fit", &junk) },
        { "seq": 4, "id": "b4", "batch": strap_session(ana, STRAP, start, &times, 120.0) },
    ]);
    let (s, body) = post_batches(&base, &token, batches.clone()).await;
    assert_eq!((s, body["applied"].as_u64(), body["through"].as_i64()), (200, Some(2), Some(4)), "{body}");
    let kept = t.dir.path().join("data/quarantine/ana/notes.fit");
    assert_eq!(std::fs::read(&kept).expect("quarantined"), junk);
    let reason = std::fs::read_to_string(t.dir.path().join("data/quarantine/ana/notes.fit.reason")).expect("reason");
    assert!(reason.contains("not a FIT, TCX, GPX") && reason.contains("collector studio"), "{reason}");
    // Sent again (its answer lost): nothing doubled, not even in the quarantine.
    let (s, body) = post_batches(&base, &token, batches).await;
    assert_eq!((s, body["repeated"].as_u64()), (200, Some(2)), "{body}");
    let quarantined: Vec<_> = std::fs::read_dir(t.dir.path().join("data/quarantine/ana")).expect("dir").collect();
    assert_eq!(quarantined.len(), 2, "the file and its reason, once");
    let app = coachd::app::App::new(t.store.clone(), std::sync::Arc::new(t.config.clone())).expect("app");
    let studio = &app.collectors().await.expect("list")[0];
    assert_eq!((studio.files_imported, studio.files_quarantined), (2, 1), "{studio:?}");
    assert!(
        studio.quarantined.as_deref().is_some_and(|q| q.contains("notes.fit") && q.contains("quarantine")),
        "{studio:?}"
    );
    assert_eq!(studio.state, "ok");
}

/// Hub side: two collectors near one strap at the same time forward the same beats a few
/// milliseconds apart, in overlapping batches: one session, each beat once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_hearing_one_strap_at_the_same_time_give_one_session_with_each_beat_once() {
    let t = super::TestStore::new().await;
    let ana = t.client("ana").await;
    t.store.pair_device(STRAP, ana).await.expect("pair");
    let (_, east) = t.store.add_collector("east", None).await.expect("add");
    let (_, west) = t.store.add_collector("west", None).await.expect("add");
    let base = t.serve().await;
    let start = super::t0().timestamp_millis();
    // 60 beats a second apart; east hears each at +0..9 ms, west at +20..29 ms, each
    // flushing every 5 s (west's batches straddle east's), west from the 10th beat on.
    let heard = |offset: i64, beats: std::ops::Range<i64>| -> Vec<i64> {
        beats.map(|i| start + i * 1000 + offset + i % 10).collect()
    };
    let mut east_seq = 0;
    let mut west_seq = 0;
    let mut requests = Vec::new();
    for k in 0..12 {
        let beats = k * 5..k * 5 + 5;
        east_seq += 1;
        requests.push((east.clone(), east_seq, strap_session(ana, STRAP, start, &heard(0, beats.clone()), 130.0)));
        if k >= 2 {
            west_seq += 1;
            let straddled = (beats.start - 2)..(beats.end - 2);
            requests.push((
                west.clone(),
                west_seq,
                strap_session(ana, STRAP, start + 10_020, &heard(20, straddled), 130.0),
            ));
        }
    }
    // West's last part arrives after east's, and the end of the workout only west hears.
    west_seq += 1;
    requests.push((west.clone(), west_seq, strap_session(ana, STRAP, start + 10_020, &heard(20, 58..66), 130.0)));
    for (token, seq, b) in &requests {
        let (s, body) =
            post_batches(&base, token, serde_json::json!([{ "seq": seq, "id": format!("x{seq}"), "batch": b }])).await;
        assert_eq!(s, 200, "{body}");
    }
    let acts = activities_of(&t, "ana");
    assert_eq!(acts.len(), 1, "one session: {acts:?}");
    let ms = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(acts[0][k].as_str().expect("a time")).expect("rfc 3339").timestamp_millis()
    };
    let id = acts[0]["id"].as_i64().expect("id");
    let hr = t.store.series(id, SeriesKind::Hr).await.expect("hr");
    let beats: Vec<i64> = hr.iter().map(|s| (s.t_ms - start).div_euclid(1000)).collect();
    assert_eq!(beats, (0..66).collect::<Vec<_>>(), "each beat once, east's or west's: {hr:?}");
    assert_eq!(acts[0]["hr_samples"], 66, "the session's count");
    assert_eq!(acts[0]["sources"], serde_json::json!(["ble"]));
    assert_eq!((ms("start"), ms("end") / 1000), (start, (start + 65_025) / 1000), "it spans both collectors' parts");
}

/// Collector mode with an inbox folder, end to end: a file dropped into INBOX/<client>/
/// is committed to the outbox beside the strap's sessions, archived on the collector and
/// imported at the hub; one the hub cannot read is acknowledged and kept in the hub's
/// quarantine; one for a folder naming no client, or over the size cap, is kept in the
/// collector's quarantine with why, and the rest goes on.
#[test]
fn files_dropped_into_a_collectors_inbox_folder_reach_the_hub_once_and_the_ones_it_cannot_take_are_quarantined() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub_data, col_data) = (dir.path().join("hub"), dir.path().join("collector"));
    let inbox = dir.path().join("share");
    let (_bus, bus) = private_bus(dir.path());
    let mut fake = Fake::start(&bus);
    let tokens = prepare_hub(dir.path(), &hub_data, &["studio"]);
    let (mut hub, hub_log, base) = hub(&hub_data, free_port());
    let (mut col, col_log) =
        collector_with(&col_data, &bus, &base, &tokens[0], &["--inbox", inbox.to_str().expect("utf-8")]);
    fake.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    fake.beat_of(STRAP, 120);

    // Written in two steps: not taken while it grows.
    let fit = super::files::run_with_pause(21);
    std::fs::create_dir_all(inbox.join("ana")).expect("dir");
    std::fs::create_dir_all(inbox.join("nobody")).expect("dir");
    std::fs::write(inbox.join("ana/.run.fit.part"), &fit[..100]).expect("write");
    std::fs::write(inbox.join("ana/notes.fit"), b"not a workout at all").expect("write");
    std::fs::write(inbox.join("nobody/run.fit"), &fit).expect("write");
    let big = std::fs::File::create(inbox.join("ana/huge.gpx")).expect("create");
    big.set_len(coachd::store::collectors::FORWARDED_FILE_MAX + 1).expect("size");
    drop(big);
    std::thread::sleep(Duration::from_millis(500));
    assert!(inbox.join("ana/.run.fit.part").exists(), "a file being written is left alone");
    std::fs::write(inbox.join("ana/.run.fit.part"), &fit).expect("write");
    std::fs::rename(inbox.join("ana/.run.fit.part"), inbox.join("ana/run.fit")).expect("rename");
    fake.beat_of(STRAP, 125);

    let sources = |data: &Path| -> Vec<String> {
        let out = super::coachd(data)
            .args(["activities", "ana", "--from", "2000-01-01", "--json"])
            .output()
            .expect("activities");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_array()
            .expect("list")
            .iter()
            .flat_map(|a| a["sources"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    eventually(Duration::from_secs(40), || sources(&hub_data), |s| s.contains(&"fit".to_string()));
    let studio = eventually(
        Duration::from_secs(40),
        || collectors_json(&hub_data),
        |c| c[0]["files_imported"] == 1 && c[0]["files_quarantined"] == 1 && c[0]["backlog_batches"] == 0,
    );
    assert!(studio[0]["quarantined"].as_str().is_some_and(|q| q.contains("notes.fit")), "{studio:?}");
    // Archived on the collector, the unreadable one kept at the hub with why.
    assert_eq!(std::fs::read(col_data.join("archive/ana/run.fit")).expect("archived"), fit);
    assert!(col_data.join("archive/ana/notes.fit").exists(), "committed, so archived here");
    assert_eq!(
        std::fs::read(hub_data.join("quarantine/ana/notes.fit")).expect("kept at the hub"),
        b"not a workout at all"
    );
    let reason = std::fs::read_to_string(hub_data.join("quarantine/ana/notes.fit.reason")).expect("reason");
    assert!(reason.contains("not a FIT, TCX, GPX"), "{reason}");
    // A folder naming no client: refused by the hub, kept here with its answer.
    let reason = eventually(
        Duration::from_secs(30),
        || std::fs::read_to_string(col_data.join("quarantine/nobody/run.fit.reason")).unwrap_or_default(),
        |r| !r.is_empty(),
    );
    assert!(reason.contains("403") && reason.contains("no client of that name"), "{reason}");
    assert_eq!(std::fs::read(col_data.join("quarantine/nobody/run.fit")).expect("kept"), fit);
    // Over the cap: never sent, kept here with why.
    let reason = std::fs::read_to_string(col_data.join("quarantine/ana/huge.gpx.reason")).expect("reason");
    assert!(reason.contains("at most 33554432 bytes") && reason.contains("coachd import"), "{reason}");
    assert!(!inbox.join("ana/huge.gpx").exists() && !inbox.join("ana/run.fit").exists(), "the inbox is empty");
    // The strap went on: both beats at the hub, in the one session.
    fake.beat_of(STRAP, 130);
    eventually(Duration::from_secs(30), || hub_times(&hub_data).len(), |n| *n == 3);
    stop(&mut col, &col_log, "the collector");
    stop(&mut hub, &hub_log, "the hub");
    assert_eq!(sources(&hub_data).iter().filter(|s| *s == "fit").count(), 1, "the FIT once");
}

/// Two collectors near one strap at the same time (not in turn), end to end: each
/// records and forwards every beat it hears; the hub keeps one session, each beat once.
#[test]
fn two_collectors_near_one_strap_at_the_same_time_give_one_session_with_every_beat_once() {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_data = dir.path().join("hub");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).expect("dir");
    std::fs::create_dir_all(&b_dir).expect("dir");
    let (_bus_a, bus_a) = private_bus(&a_dir);
    let (_bus_b, bus_b) = private_bus(&b_dir);
    let mut fake_a = Fake::with(&bus_a, &[&format!("{STRAP}=Polar H10 test")]);
    let mut fake_b = Fake::with(&bus_b, &[&format!("{STRAP}=Polar H10 test")]);
    let tokens = prepare_hub(dir.path(), &hub_data, &["rack-1", "rack-2"]);
    let (mut hub, hub_log, base) = hub(&hub_data, free_port());
    let (mut col_a, log_a) = collector(&a_dir.join("data"), &bus_a, &base, &tokens[0]);
    let (mut col_b, log_b) = collector(&b_dir.join("data"), &bus_b, &base, &tokens[1]);
    fake_a.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    fake_b.expect(&format!("subscribed {STRAP}"), Duration::from_secs(40));
    // Every beat reaches both collectors, a few milliseconds apart.
    let beats = 12;
    for i in 0..beats {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(400));
        }
        fake_a.beat_of(STRAP, 120 + i as u8);
        fake_b.beat_of(STRAP, 120 + i as u8);
    }
    let last = chrono::Utc::now();
    // Both have flushed (every second) and forwarded everything: each reported an empty
    // outbox well after the last beat.
    eventually(
        Duration::from_secs(40),
        || collectors_json(&hub_data),
        |c| {
            c.len() == 2
                && c.iter().all(|c| {
                    c["backlog_batches"] == 0
                        && c["last_contact"]
                            .as_str()
                            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                            .is_some_and(|t| t > last + chrono::Duration::seconds(3))
                })
        },
    );
    stop(&mut col_a, &log_a, "collector a");
    stop(&mut col_b, &log_b, "collector b");
    stop(&mut hub, &hub_log, "the hub");
    for data in [a_dir.join("data"), b_dir.join("data")] {
        // (The stop commits the sessions' close; every beat went before it.)
        assert!(outbox_times(&data).0.is_empty(), "every beat was forwarded before the stop");
    }
    let both = collectors_json(&hub_data);
    assert!(both.iter().all(|c| c["applied_batches"].as_i64().is_some_and(|n| n > 0)), "both forwarded: {both:?}");
    let sessions = hub_sessions(&hub_data);
    assert_eq!(sessions.len(), 1, "one session: {sessions:?}");
    let (_, n, times) = &sessions[0];
    assert_eq!((*n, times.len()), (beats, beats as usize), "each beat once, not once per collector: {times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] > 200), "one sample per beat: {times:?}");
}
