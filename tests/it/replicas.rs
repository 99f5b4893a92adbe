//! Two `coachd run` replicas on one database behave as one dashboard: a session started
//! on one is a session on the other, failed logins on both count together, a logout on
//! one ends the session everywhere, and a change made on one shows on the other's roster
//! at once. On PostgreSQL (`COACHD_TEST_POSTGRES`) both data dirs name one database; on
//! SQLite the second data dir's database is the first's file (one daemon per data dir).

use crate::dashboard::{browser, csrf_of, names};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ANNA: &str = "anna's long password";
const BEN: &str = "ben's long password";

/// A running `coachd run`, stopped (SIGTERM) when dropped.
struct Daemon {
    child: Child,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: a plain signal to the child we spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

async fn start(mut cmd: Command, log: &Path) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = cmd
        .env("COACHD__BLE__ENABLED", "false")
        .env("RUST_LOG", "coachd=info")
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).expect("log file")))
        .spawn()
        .expect("spawn coachd run");
    let daemon = Daemon { child, base: format!("http://127.0.0.1:{port}") };
    for _ in 0..400 {
        if reqwest::get(format!("{}/healthz", daemon.base)).await.is_ok() {
            return daemon;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon does not answer: {}", std::fs::read_to_string(log).unwrap_or_default());
}

struct Replicas {
    _dir: tempfile::TempDir,
    a: Daemon,
    b: Daemon,
}

/// Trainers anna and ben, and two daemons on their one database.
async fn replicas() -> Replicas {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));
    for (name, password) in [("anna", ANNA), ("ben", BEN)] {
        crate::coachd(&a)
            .args(["trainer", "add", name, "--password-stdin"])
            .write_stdin(format!("{password}\n"))
            .assert()
            .success();
    }
    // The second replica shares the first's key (the database is sealed with it) and
    // its database.
    std::fs::create_dir_all(&b).expect("mkdir");
    std::fs::copy(a.join("coachd.key"), b.join("coachd.key")).expect("copy the key");
    let url = crate::postgres_for(&a);
    if url.is_none() {
        std::os::unix::fs::symlink(a.join("coachd.db"), b.join("coachd.db")).expect("symlink the database");
    }
    let first = start(crate::coachd_process(&a), &dir.path().join("a.log")).await;
    let mut cmd = crate::coachd_process(&b);
    if let Some(url) = url {
        cmd.env("COACHD__STORE__URL", url);
    }
    let second = start(cmd, &dir.path().join("b.log")).await;
    Replicas { _dir: dir, a: first, b: second }
}

/// One login as a browser makes it (the form, then the post) on one replica: the
/// response.
async fn attempt(on: &Daemon, name: &str, password: &str) -> reqwest::Response {
    let http = browser();
    let url = format!("{}/login", on.base);
    let page = http.get(&url).send().await.expect("get").text().await.expect("body");
    http.post(&url)
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", name), ("password", password)])
        .send()
        .await
        .expect("post")
}

/// Log in on a replica; the session cookie's value.
async fn login(on: &Daemon, name: &str, password: &str) -> String {
    let r = attempt(on, name, password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {name}");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("coachd_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// A client that sends exactly this session cookie (to whichever replica it asks).
fn with_session(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", format!("coachd_session={token}").parse().expect("header"));
    reqwest::Client::builder().default_headers(headers).redirect(Policy::none()).build().expect("client")
}

async fn get(http: &reqwest::Client, on: &Daemon, path: &str) -> (StatusCode, String) {
    let r = http.get(format!("{}{path}", on.base)).send().await.expect("get");
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_replica_is_a_session_on_the_other() {
    let r = replicas().await;
    let token = login(&r.a, "anna", ANNA).await;
    let anna = with_session(&token);
    let (status, page) = get(&anna, &r.b, "/roster").await;
    assert_eq!(status, StatusCode::OK, "A's session opens B's roster");
    assert!(names(&page, "anna") && !names(&page, "ben"), "as the same trainer: {page}");

    // Five wrong passwords for ben, alternating between the replicas: they count together.
    for i in 0..5 {
        let on = if i % 2 == 0 { &r.a } else { &r.b };
        assert_eq!(attempt(on, "ben", "a wrong guess").await.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    for on in [&r.a, &r.b] {
        let res = attempt(on, "ben", BEN).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits on {}", on.base);
        assert!(res.headers().contains_key("retry-after"));
        assert!(res.text().await.expect("body").contains("Too many failed attempts"));
    }
    // The wait (1 s after the fifth) is the same on both: then the right password works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(attempt(&r.b, "ben", BEN).await.status(), StatusCode::SEE_OTHER);

    // A logout on B ends the session on A.
    let (_, page) = get(&anna, &r.b, "/roster").await;
    let out = anna
        .post(format!("{}/logout", r.b.base))
        .form(&[("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    for on in [&r.a, &r.b] {
        let res = anna.get(format!("{}/roster", on.base)).send().await.expect("get");
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "no session on {}", on.base);
        assert_eq!(res.headers()["location"], "/login");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_added_on_one_replica_is_on_the_others_roster_at_once() {
    let r = replicas().await;
    let anna = with_session(&login(&r.a, "anna", ANNA).await);
    // B computes (and caches) anna's roster before the change.
    let (status, before) = get(&anna, &r.b, "/roster").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!names(&before, "newbie"));
    let (_, page) = get(&anna, &r.a, "/roster").await;
    let added = anna
        .post(format!("{}/clients", r.a.base))
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", "newbie"), ("tz", "Europe/Berlin")])
        .send()
        .await
        .expect("add a client");
    assert_eq!(added.status(), StatusCode::SEE_OTHER, "{}", added.text().await.unwrap_or_default());
    // Well within the roster cache's 30 s, B's roster has the new client.
    let (status, after) = get(&anna, &r.b, "/roster").await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&after, "newbie"), "B's roster shows the client added on A: {after}");
    let (_, on_a) = get(&anna, &r.a, "/roster").await;
    assert!(names(&on_a, "newbie"));
    // And ben's roster, on either, does not.
    let ben = with_session(&login(&r.b, "ben", BEN).await);
    assert!(!names(&get(&ben, &r.a, "/roster").await.1, "newbie"));
}
