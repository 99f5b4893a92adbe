//! `coachd run`: health, a clean stop on SIGTERM, nothing accepted is lost.

use crate::{batch, hour_run, t0, TestStore};
use chrono::Duration as Days;
use coachd::source::{Source, SourceContext, SourceFuture};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ingests one activity every few ms and remembers which ingests were acknowledged.
struct Steady {
    client: i64,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl Source for Steady {
    fn name(&self) -> &str {
        "steady"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let mut i = 0;
            while !ctx.shutdown.is_cancelled() {
                let id = format!("s{i}");
                let b = batch("steady", vec![hour_run(self.client, &id, t0() + Days::hours(i))], Some(&id));
                ctx.ingest(&b).await?;
                self.accepted.lock().expect("lock").push(id);
                i += 1;
                tokio::task::yield_now().await;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_daemon_reports_health_and_drains_on_shutdown() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let source: Arc<dyn Source> = Arc::new(Steady { client: alex, accepted: accepted.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The daemon's own assembly (inbox and Bluetooth off here), plus the test's source.
    let mut config = t.config.clone();
    config.inbox.enabled = false;
    config.ble.enabled = false;
    let app = coachd::app::App::new(t.store.clone(), Arc::new(config)).expect("app");
    let data = coachd::paths::DataDir::new(t.dir.path().join("data"));
    let mut sources = coachd::sources::build(&app, &data, None);
    sources.push(source);
    let daemon = tokio::spawn(coachd::daemon::run(app, listener, sources, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health: serde_json::Value =
        reqwest::get(format!("http://{addr}/healthz")).await.expect("healthz answers").json().await.expect("json");
    assert_eq!(health["status"], "ok", "{health}");
    let steady = health["sources"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "steady"))
        .unwrap_or_else(|| panic!("the steady source in {health}"));
    assert_eq!(steady["state"], "running");
    assert!(steady["batches"].as_u64().unwrap_or(0) > 0, "{health}");
    assert!(
        ["cloud.strava", "cloud.polar", "cloud.intervals"]
            .iter()
            .all(|name| health["sources"].as_array().is_some_and(|all| all.iter().any(|s| s["name"] == *name))),
        "the cloud sync runs, one source per provider: {health}"
    );

    let asked = Instant::now();
    stop.send(()).expect("stop");
    daemon.await.expect("daemon task").expect("daemon ran cleanly");
    assert!(asked.elapsed() < Duration::from_secs(5), "took {:?}", asked.elapsed());

    // Every acknowledged batch is committed, and the cursor matches the last one.
    let data = coachd::paths::DataDir::new(t.dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &t.config).await.expect("reopen");
    let accepted = accepted.lock().expect("lock").clone();
    assert!(!accepted.is_empty());
    for id in &accepted {
        assert!(store.activity_id("steady", id).await.expect("lookup").is_some(), "{id} lost");
    }
    assert_eq!(store.cursor("steady", "main").await.expect("cursor").as_ref(), accepted.last());
    assert_eq!(store.row_counts().await.expect("counts").activities as usize, accepted.len());
}

#[test]
fn the_binary_answers_healthz_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::coachd_process(&dir.path().join("data"))
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut listen = None;
    let mut log = Vec::new();
    while listen.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if json["message"] == "coachd is running" {
            listen = json["listen"].as_str().map(str::to_string);
        }
        log.push(line);
    }
    let Some(listen) = listen else {
        let _ = child.kill();
        panic!("daemon did not start:\n{}", log.join("\n"));
    };

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let health: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{listen}/healthz")).await.expect("healthz").json().await.expect("json")
    });
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], "ok");

    let asked = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("coachd did not stop within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_roster_judges_the_strap_wearer_too() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = crate::coachd_process(&dir.path().join("data"))
        .env("COACHD__BLE__ENABLED", "false")
        .env_remove("RUST_LOG")
        .args(["run", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // Read the daemon's log to its end (a closed pipe would fail its writes).
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line.split("coach / ").nth(1).and_then(|r| r.split_whitespace().next()) {
                let _ = tx.send(p.to_string());
            }
        }
    });
    let password = tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(60)))
        .await
        .expect("join")
        .expect("the demo login is shown once");
    let base = format!("http://127.0.0.1:{port}");
    let http = crate::dashboard::browser();
    let login = http.get(format!("{base}/login")).send().await.expect("login page").text().await.expect("body");
    let r = http
        .post(format!("{base}/login"))
        .form(&[("csrf", crate::dashboard::csrf_of(&login).as_str()), ("name", "coach"), ("password", &password)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    let roster: serde_json::Value =
        http.get(format!("{base}/api/clients")).send().await.expect("api").json().await.expect("json");
    let demo = roster["clients"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "demo"))
        .unwrap_or_else(|| panic!("the strap wearer is on the roster: {roster}"));
    assert_eq!(demo["homework"], 1, "with homework the strap can satisfy: {demo}");
    // SAFETY: a plain signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_made_beside_a_daemon_reach_the_port_it_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    crate::coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
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
    let up = async {
        for _ in 0..200 {
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(up.await, "the daemon answers");
    let out = crate::coachd(&data).args(["connect", "strava", "alex"]).output().expect("connect");
    let link = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{link}{}", String::from_utf8_lossy(&out.stderr));
    let callback = format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Foauth%2Fstrava%2Fcallback");
    assert!(link.contains(&callback), "the callback is the daemon's port {port}: {link}");
    let share = crate::coachd(&data).args(["share", "alex"]).output().expect("share");
    assert!(String::from_utf8_lossy(&share.stdout).starts_with(&format!("http://127.0.0.1:{port}/c/")));
    assert!(String::from_utf8_lossy(&share.stderr).contains("set web.public_url"), "it says what to configure");
    // SAFETY: a plain signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_outlives_a_closed_log_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = crate::coachd_process(&data)
        .env("COACHD__BLE__ENABLED", "false")
        .env("RUST_LOG", "coachd=debug")
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the daemon answers");
    // The reader of its log goes away (`coachd run 2>&1 | head`): every log line now fails.
    drop(child.stderr.take());
    for path in ["/healthz", "/login", "/metrics", "/nope"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
    }
    // SAFETY: a plain signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success(), "a clean stop, not a panic");
}
