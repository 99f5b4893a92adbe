//! Home Assistant over MQTT against a real Mosquitto broker started by the test, with the
//! real daemon: discovery configs retained with unique ids and a device, states that
//! follow a new activity, `offline` on SIGTERM and through the last will on SIGKILL,
//! entities removed with the client, and a broker that comes late or goes away.

use crate::apt_install;
use crate::coachd;
use crate::fit_encoder::*;
use chrono::{Timelike, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Mosquitto on a free loopback port, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Self {
        if !Path::new(MOSQUITTO).exists() {
            assert!(
                apt_install(&["mosquitto"]),
                "mosquitto is missing and could not be installed: apt-get install mosquitto"
            );
        }
        assert!(Path::new(MOSQUITTO).exists(), "{MOSQUITTO} is missing after installing mosquitto");
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))
            .expect("write mosquitto.conf");
        Self::spawn(&conf, port)
    }

    fn spawn(conf: &Path, port: u16) -> Self {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port} in 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, conf: conf.to_path_buf() }
    }

    /// Stop and start it again: a broker without persistence comes back empty.
    fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Self::spawn(&self.conf.clone(), self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// What a fresh subscriber gets as retained on `coachd/#` and `homeassistant/#`, once
/// nothing new has come for a moment: topic → payload.
async fn retained(port: u16) -> BTreeMap<String, String> {
    let mut options = MqttOptions::new(format!("test-{}", free_port()), "127.0.0.1", port);
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe("coachd/#", QoS::AtLeastOnce).await.expect("subscribe");
    client.subscribe("homeassistant/#", QoS::AtLeastOnce).await.expect("subscribe");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut subscribed = 0;
    loop {
        // After both subscriptions are acknowledged, retained messages come at once.
        let quiet = if subscribed < 2 { Duration::from_secs(5) } else { Duration::from_millis(300) };
        match tokio::time::timeout(quiet, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed += 1,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain => {
                out.insert(p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("the test's MQTT connection failed: {e}"),
            Err(_) => break,
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
    out
}

/// Poll the retained messages until `ok` holds, or fail with what was there.
async fn until(port: u16, what: &str, ok: impl Fn(&BTreeMap<String, String>) -> bool) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = retained(port).await;
        if ok(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: not within 30 s; retained:\n{now:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A fixed-offset zone in which it is now between 08:00 and 16:00, so a workout that
/// ended minutes ago is today's.
fn midday_zone() -> String {
    let off = 12 - i64::from(Utc::now().hour());
    match off {
        0 => "UTC".into(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// A 30-minute run that ended five minutes ago, as a FIT file.
fn recent_run(dir: &Path) -> PathBuf {
    let start = Utc::now().timestamp() - 35 * 60;
    let mut w = FitWriter::default();
    w.file_id(4242, start);
    for s in (0..1800).step_by(5) {
        w.record(start + s, 145, 80);
    }
    w.session(&SessionSpec {
        start,
        elapsed_s: 1800,
        timer_s: 1800,
        sport: SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 145,
        max_hr: 150,
    });
    let path = dir.join("run.fit");
    std::fs::write(&path, w.finish()).expect("write fit");
    path
}

/// `coachd run` with MQTT on `port`, states every second; waits until it serves.
fn start_daemon(data: &Path, port: u16) -> Child {
    let mut child = crate::coachd_process(data)
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("COACHD__BLE__ENABLED", "false")
        .env("COACHD__INBOX__ENABLED", "false")
        .env("COACHD__BACKUP__DAILY", "false")
        .env("COACHD__PROVIDERS__INTERVALS__ENABLED", "false")
        .env("COACHD__MQTT__ENABLED", "true")
        .env("COACHD__MQTT__PORT", port.to_string())
        .env("COACHD__MQTT__INTERVAL_S", "1")
        .env("COACHD__MQTT__RECONNECT_MAX_S", "1")
        .env_remove("COACHD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the daemon exited ({status}) before it ran:\n{}", log.join("\n"));
            }
            continue;
        };
        if serde_json::from_str::<Value>(&line).is_ok_and(|j| j["message"] == "coachd is running") {
            return child;
        }
        log.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the daemon did not start in 60 s:\n{}", log.join("\n"));
}

fn configs(m: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    m.iter()
        .filter(|(t, p)| t.ends_with("/config") && !p.is_empty())
        .filter_map(|(t, p)| Some((t.clone(), serde_json::from_str(p).ok()?)))
        .collect()
}

/// Whether every config's state topic is retained too.
fn complete(m: &BTreeMap<String, String>) -> bool {
    configs(m).iter().all(|(_, c)| c["state_topic"].as_str().is_some_and(|t| m.contains_key(t)))
}

/// The devices' names, sorted and once each.
fn devices(m: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> =
        configs(m).iter().filter_map(|(_, c)| c["device"]["name"].as_str().map(str::to_string)).collect();
    names.sort();
    names.dedup();
    names
}

fn sigterm(child: &mut Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the daemon did not stop in 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_sees_each_client_as_a_device_through_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", &midday_zone()]).assert().success();
    coachd(&data).args(["assign", "alex", "15 minutes of cardio"]).assert().success();
    coachd(&data).args(["client", "add", "bo", "--tz", "UTC"]).assert().success();
    let port = free_port();

    // The broker is away when the daemon starts: the daemon runs anyway.
    let mut daemon = start_daemon(&data, port);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(daemon.try_wait().expect("wait").is_none(), "the daemon stopped while the broker was away");
    let broker = Broker::start(dir.path(), port);

    // Discovery: retained configs with unique ids and the client as a device.
    let m = until(port, "discovery configs and their states", |m| {
        m.get("coachd/status").is_some_and(|s| s == "online") && complete(m) && devices(m) == ["alex", "bo"]
    })
    .await;
    let all = configs(&m);
    let mut ids: Vec<&str> = all.iter().filter_map(|(_, c)| c["unique_id"].as_str()).collect();
    assert_eq!(ids.len(), all.len(), "every config has a unique_id: {all:#?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "unique ids repeat: {all:#?}");
    for (topic, c) in &all {
        assert!(topic.starts_with("homeassistant/"), "{topic}");
        assert!(["alex", "bo"].contains(&c["device"]["name"].as_str().unwrap_or_default()), "{topic}: {c}");
        assert_eq!(c["device"]["manufacturer"], "coachd", "{topic}: {c}");
        assert!(c["device"]["identifiers"][0].is_string(), "{topic}: {c}");
        assert!(c["device"]["model"].is_string(), "{topic}: {c}");
        assert_eq!(c["availability_topic"], "coachd/status", "{topic}: {c}");
        let state = c["state_topic"].as_str().expect("state_topic");
        assert!(m.contains_key(state), "{topic}: its state {state} is not retained");
    }
    let homework = all
        .iter()
        .find(|(_, c)| c["name"].as_str().is_some_and(|n| n.contains("15 minutes of cardio")))
        .map(|(_, c)| c["state_topic"].as_str().expect("state_topic").to_string())
        .unwrap_or_else(|| panic!("no sensor for the homework: {all:#?}"));
    assert!(["pending", "no_data"].contains(&m[&homework].as_str()), "before the run: {}", m[&homework]);
    let of = |name: &str| all.iter().filter(|(_, c)| c["device"]["name"] == name).count();
    assert_eq!((of("alex"), of("bo")), (3, 2), "alex: adherence, attention, homework; bo: no homework");
    let adherence = all.iter().find(|(t, _)| t.ends_with("/adherence_7d/config")).expect("adherence sensor");
    assert_eq!(adherence.1["unit_of_measurement"], "%");
    let needs = all.iter().find(|(t, _)| t.ends_with("/needs_attention/config")).expect("binary sensor");
    assert!(["ON", "OFF"].contains(&m[needs.1["state_topic"].as_str().expect("topic")].as_str()));

    // A new activity: today's state follows, and the file source gets a data age sensor.
    coachd(&data).args(["import", "alex"]).arg(recent_run(dir.path())).assert().success();
    let m = until(port, "the state after a run", |m| {
        m.get(&homework).is_some_and(|s| s == "done")
            && configs(m).iter().any(|(t, c)| t.contains("_age/config") && c["unit_of_measurement"] == "h")
    })
    .await;
    let age = configs(&m).into_iter().find(|(t, _)| t.contains("_age/config")).expect("age sensor").1;
    let hours: f64 = m[age["state_topic"].as_str().expect("topic")].parse().expect("hours");
    assert!((0.0..1.0).contains(&hours), "the run ended minutes ago: {hours} h");

    // The broker restarts empty: everything is published again.
    let broker = broker.restart();
    until(port, "republished after the broker came back", |m| {
        m.get(&homework).is_some_and(|s| s == "done") && configs(m).len() == all.len() + 1 && complete(m)
    })
    .await;

    // SIGTERM: `offline`, published by the daemon itself before it disconnects.
    sigterm(&mut daemon);
    until(port, "offline after SIGTERM", |m| m.get("coachd/status").is_some_and(|s| s == "offline")).await;

    // SIGKILL: the broker says `offline` through the last will.
    let mut daemon = start_daemon(&data, port);
    until(port, "online again", |m| m.get("coachd/status").is_some_and(|s| s == "online")).await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    until(port, "offline through the last will", |m| m.get("coachd/status").is_some_and(|s| s == "offline")).await;

    // Removing a client removes its entities: while the daemon runs, and when it was
    // stopped at the time (it finds what it published before among the retained messages).
    let mut daemon = start_daemon(&data, port);
    until(port, "online for the removal", |m| m.get("coachd/status").is_some_and(|s| s == "online")).await;
    coachd(&data).args(["client", "remove", "bo", "--yes"]).assert().success();
    until(port, "bo's entities removed", |m| devices(m) == ["alex"] && complete(m)).await;
    sigterm(&mut daemon);
    coachd(&data).args(["client", "remove", "alex", "--yes"]).assert().success();
    let mut daemon = start_daemon(&data, port);
    // Its discovery configs are cleared first, then its states: wait for both.
    let m = until(port, "alex's entities removed after a restart", |m| {
        configs(m).is_empty()
            && m.get("coachd/status").is_some_and(|s| s == "online")
            && !m.keys().any(|t| t.starts_with("coachd/client/"))
    })
    .await;
    assert!(!m.keys().any(|t| t.starts_with("coachd/client/")), "states left behind: {m:#?}");
    sigterm(&mut daemon);
    drop(broker);
}

#[tokio::test]
async fn a_sources_data_age_is_its_newest_data_and_an_old_day_stays_old() {
    use coachd::model::{Batch, DailyMetric, Metric};
    let t = crate::TestStore::new().await;
    let alex = t.client("alex").await;
    let app = coachd::app::App::new(t.store.clone(), std::sync::Arc::new(t.config.clone())).expect("app");
    let start = crate::t0();
    t.store.ingest(&crate::batch("fit", vec![crate::hour_run(alex, "a", start)], None)).await.expect("ingest");
    // Steps for a day long past, delivered now (an import of old data).
    let mut old = Batch::new("intervals");
    old.daily.push(DailyMetric {
        client_id: alex,
        date: start.date_naive() - chrono::Duration::days(9),
        metric: Metric::Steps,
        value: 8000.0,
    });
    t.store.ingest(&old).await.expect("ingest");
    // A manual log is not a source that can go quiet.
    let mut manual = crate::hour_run(alex, "m", start + chrono::Duration::hours(3));
    manual.series.clear();
    t.store.ingest(&crate::batch("manual", vec![manual], None)).await.expect("ingest");
    let client = app.client("alex").await.expect("client");
    let fresh = app.data_freshness(&client).await.expect("freshness");
    let by: BTreeMap<&str, chrono::DateTime<Utc>> = fresh.iter().map(|f| (f.source.as_str(), f.newest)).collect();
    assert_eq!(by.keys().copied().collect::<Vec<_>>(), ["fit", "intervals"], "{fresh:?}");
    assert_eq!(by["fit"], start + chrono::Duration::hours(1), "the run's end");
    let day_end = (start.date_naive() - chrono::Duration::days(8)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    assert_eq!(by["intervals"], day_end, "no later than the end of its day");
    let f = fresh.iter().find(|f| f.source == "fit").expect("fit");
    assert!((f.age_hours(start + chrono::Duration::hours(25)) - 24.0).abs() < 1e-9);
}
