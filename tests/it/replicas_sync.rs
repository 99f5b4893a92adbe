//! Two `coachd run` replicas on one PostgreSQL database, syncing ten accounts at the fake
//! Strava: each account synced by one replica at a time (the fake counts overlapping
//! requests per athlete), and the accounts of a replica killed with SIGKILL taken over by
//! the other within a minute. Replicas share a database server, so this runs only when
//! the suite runs on PostgreSQL.

use crate::fake_strava::{self, FakeActivity};
use chrono::{Duration as Days, Utc};
use coachd::providers::{oauth, Registry};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACCOUNTS: i64 = 10;
const FIRST_ATHLETE: i64 = 9101;

fn name(i: i64) -> String {
    format!("client{i:02}")
}

/// The configuration a replica reads: the fake Strava (by the name `host`), a sync every
/// minute.
fn config_file(fake: &fake_strava::Fake, host: &str) -> String {
    let base = fake.base.replace("127.0.0.1", host);
    format!(
        "[web]\npublic_url = \"http://127.0.0.1:9\"\n[ble]\nenabled = false\n[providers]\nsync_interval_min = 1\n\
         [providers.strava]\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthorize_url = \"{f}/oauth/authorize\"\n\
         token_url = \"{f}/oauth/token\"\napi_base = \"{f}/api/v3\"\n",
        fake_strava::CLIENT_ID,
        fake_strava::CLIENT_SECRET,
        f = base
    )
}

/// A replica: the daemon, and the clients it logged as synced.
struct Replica {
    child: Child,
    synced: Arc<Mutex<Vec<String>>>,
}

fn start(data: &Path, url: &str) -> Replica {
    let mut child = crate::coachd_process(data)
        .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("COACHD__STORE__URL", url)
        .env_remove("COACHD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let stderr = child.stderr.take().expect("stderr");
    let synced = Arc::new(Mutex::new(Vec::new()));
    let log = synced.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<Value>(&line) {
                if json["message"] == "synced" {
                    log.lock().expect("log").push(json["client"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    });
    Replica { child, synced }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each account's last complete sync, by client name, read from the database both
/// replicas use (the one of data dir `a`).
async fn last_syncs(a: &Path) -> BTreeMap<String, Option<chrono::DateTime<Utc>>> {
    let store = crate::open_store(a).await;
    let accounts = store.accounts().await.expect("accounts");
    store.close().await;
    assert_eq!(accounts.len() as i64, ACCOUNTS, "the replicas' database");
    accounts.into_iter().map(|a| (a.client, a.last_sync)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sync_every_account_one_at_a_time_and_take_over_a_killed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let Some(url) = crate::postgres_for(&a) else {
        println!("skipped: replicas share a PostgreSQL database; set COACHD_TEST_POSTGRES to run this");
        return;
    };
    std::fs::create_dir_all(&b).expect("b");
    let fake = fake_strava::start(Utc::now()).await;
    {
        let mut s = fake.lock();
        for i in 0..ACCOUNTS {
            for k in 0..3 {
                let id = 2_000_000 + i * 100 + k;
                let start = Utc::now() - Days::days(1 + k);
                let sport = "Run".to_string();
                s.activities
                    .insert(id, FakeActivity { id, start, minutes: 30, sport, hr: false, name: format!("run {k}") });
                s.owner.insert(id, FIRST_ATHLETE + i);
            }
        }
        // Every request takes a while, so two replicas on one account would overlap.
        s.api_delay_ms = 1200;
    }
    for i in 0..ACCOUNTS {
        crate::coachd(&a).args(["client", "add", &name(i), "--tz", "Europe/Berlin"]).assert().success();
    }
    std::fs::write(a.join("coachd.toml"), config_file(&fake, "127.0.0.1")).expect("config a");
    // Connect each client's Strava account, as the connect flow's callback does.
    {
        let store = crate::open_store(&a).await;
        let mut config = fake_strava::config(&fake, "http://127.0.0.1:9");
        config.store.url = url.clone();
        let reg = Registry::new(&config, fake.clock.clone()).expect("registry");
        for (i, c) in store.list_clients().await.expect("clients").into_iter().enumerate() {
            let link = oauth::authorization_link(&reg, &store, "strava", c.id).await.expect("link");
            let state = url::Url::parse(&link)
                .expect("link")
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .expect("state");
            let q = oauth::Callback {
                state: Some(state),
                code: Some(fake.issue_code_for(FIRST_ATHLETE + i as i64)),
                scope: Some("read,activity:read_all".into()),
                error: None,
                error_description: None,
            };
            oauth::finish(&reg, &store, "strava", &q).await.expect("connected");
        }
        store.close().await;
    }
    // The second replica: its own data dir, the same database, the same secret key; it
    // reaches the fake as `localhost`, so the fake tells the two apart.
    std::fs::write(b.join("coachd.toml"), config_file(&fake, "localhost")).expect("config b");
    std::fs::copy(a.join("coachd.key"), b.join("coachd.key")).expect("the key");

    let began = Instant::now();
    let mut one = start(&a, &url);
    let two = start(&b, &url);
    let everyone: BTreeSet<String> = (0..ACCOUNTS).map(name).collect();

    // Both replicas run for a minute: every account synced, and synced again when due.
    let deadline = began + Duration::from_secs(45);
    loop {
        let syncs = last_syncs(&a).await;
        if syncs.values().all(Option::is_some) {
            break;
        }
        assert!(Instant::now() < deadline, "not every account was synced in 45 s: {syncs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the logs lag the store a little
    let (by_one, by_two) = (one.synced.lock().expect("log").clone(), two.synced.lock().expect("log").clone());
    println!("first round: replica one synced {by_one:?}, replica two {by_two:?}");
    let mut both: Vec<String> = by_one.iter().chain(&by_two).cloned().collect();
    both.sort();
    assert_eq!(both, everyone.iter().cloned().collect::<Vec<_>>(), "each account synced once, by one replica");
    assert!(!by_one.is_empty() && !by_two.is_empty(), "both replicas took accounts: {by_one:?} / {by_two:?}");

    // The second round (a minute after the first): replica one's requests now hang, so
    // it is stuck in the middle of an account, holding its lease, when it is killed.
    let round_two = Utc::now();
    let port = fake.base.rsplit(':').next().expect("port").to_string();
    fake.lock().hang_host = Some(format!("127.0.0.1:{port}"));
    let mid = began + Duration::from_secs(120);
    while fake.lock().hung == 0 {
        assert!(Instant::now() < mid, "replica one sent nothing in a second round within two minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replica two goes on meanwhile, around the account replica one holds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let two_before = two.synced.lock().expect("log").len();
    let held: Vec<String> =
        last_syncs(&a).await.into_iter().filter(|(_, t)| t.is_none_or(|t| t < round_two)).map(|(c, _)| c).collect();
    let _ = one.child.kill(); // SIGKILL
    let _ = one.child.wait();
    let killed = Instant::now();
    println!(
        "replica one killed {:?} after the start, hanging in the middle of a sync; not yet synced again: {held:?}",
        killed.duration_since(began)
    );
    assert!(!held.is_empty(), "replica one held an account");

    // Replica two syncs whatever replica one held or had not reached, within a minute.
    loop {
        let syncs = last_syncs(&a).await;
        let behind: Vec<&String> =
            syncs.iter().filter(|(_, t)| t.is_none_or(|t| t < round_two)).map(|(c, _)| c).collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "within a minute of the kill, still not synced again: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the logs lag the store a little
    let taken: Vec<String> = two.synced.lock().expect("log")[two_before..].to_vec();
    println!("every account synced again {:?} after the kill; replica two synced since: {taken:?}", killed.elapsed());
    for c in &held {
        assert!(taken.contains(c), "{c}, held by the killed replica, was taken over by the other: {taken:?}");
    }

    let s = fake.lock();
    let athletes: BTreeSet<i64> = s.seen.iter().map(|(w, _)| *w).collect();
    assert_eq!(athletes.len() as i64, ACCOUNTS, "every athlete asked for");
    let overlapping: Vec<(&i64, &u32)> = s.most_at_once.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        overlapping.is_empty(),
        "accounts synced by both replicas at once (athlete, requests at once): {overlapping:?}"
    );
    assert_eq!(s.limited, 0, "no request refused for the rate limit");
}
