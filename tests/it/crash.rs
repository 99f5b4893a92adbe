//! Crash consistency: the real binary killed with SIGKILL at random moments while it
//! imports a folder of FIT files (`coachd import`), syncs a fake intervals.icu
//! (`coachd sync`), takes Health Auto Export pushes, works through its inbox and records
//! a simulated strap (`coachd run --simulate-strap`), then restarted. After every round,
//! everything acknowledged (an "imported" line, an HTTP 200, a file moved to the archive,
//! a strap batch logged as committed) is stored exactly once and the database is whole; at the end, with every input delivered once
//! more, the verdicts equal those of a clean run over the same inputs.
//!
//! `cargo test` runs 10 rounds; `scripts/crash.sh` runs 200 (`COACHD_CRASH_ROUNDS`).

use crate::coachd;
use crate::fake_strava::{self, Fake};
use crate::fit_encoder::*;
use chrono::{Duration as Days, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const FILES_PER_ROUND: usize = 16;
const INBOX_PER_ROUND: usize = 4;
const PUSHES_PER_ROUND: usize = 40;
/// Activities the fake intervals.icu holds, with heart-rate streams.
const CLOUD_ACTIVITIES: i64 = 60;
const ICU_KEY: &str = "k3y";

/// The fake intervals.icu, its activities 12 h apart, ending two days ago.
async fn cloud() -> Fake {
    let fake = fake_strava::start(Utc::now()).await;
    fake.add_activities(CLOUD_ACTIVITIES, Utc::now() - Days::days(2));
    fake.lock().intervals_key = Some(ICU_KEY.into());
    fake
}

fn icu_base(fake: &Fake) -> String {
    format!("{}/intervals/api/v1", fake.base)
}

/// `coachd sync alex intervals` against the fake.
fn start_sync(data: &Path, fake: &Fake) -> Child {
    crate::coachd_process(data)
        .args(["sync", "alex", "intervals"])
        .env("COACHD__PROVIDERS__INTERVALS__API_BASE", icu_base(fake))
        .env_remove("COACHD_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coachd sync")
}

fn rounds() -> usize {
    std::env::var("COACHD_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10)
}

/// A small deterministic generator (no crate needed for a test's dice).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The first day of the inputs: 2026-06-01, a Monday. 200 rounds of inputs stay in the past.
fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).expect("date")
}

/// Where run number `i` starts: one every 40 minutes from day 0's midnight, Berlin time.
fn file_start(i: usize) -> i64 {
    let tz = chrono_tz::Europe::Berlin;
    let midnight = tz.from_local_datetime(&day0().and_hms_opt(0, 0, 0).expect("time")).single().expect("local");
    (midnight + Days::minutes(40 * i as i64)).timestamp()
}

/// Run number `i`: 25-35 minutes, per-second HR.
fn run_file(i: usize) -> Vec<u8> {
    let start = file_start(i);
    let secs = 1500 + 60 * (i as u32 % 11);
    let mut w = FitWriter::default();
    w.file_id(9000 + i as u32, start);
    for s in 0..secs {
        w.record(start + i64::from(s), 130 + ((s / 10 + i as u32) % 40) as u8, 84);
    }
    w.session(&SessionSpec {
        start,
        elapsed_s: secs,
        timer_s: secs,
        sport: SPORT_RUNNING,
        sub_sport: 0,
        avg_hr: 150,
        max_hr: 170,
    });
    w.activity(start + i64::from(secs), 3600);
    w.finish()
}

/// Push number `i`: a minute's steps (minute `i` from day 0's midnight), as Health Auto
/// Export sends them.
fn push_body(i: usize) -> Value {
    let at = chrono::DateTime::from_timestamp_millis(push_t_ms(i)).expect("time");
    let date = at
        .with_timezone(&chrono::FixedOffset::east_opt(7200).expect("offset"))
        .format("%Y-%m-%d %H:%M:%S %z")
        .to_string();
    json!({"data": {"metrics": [{"name": "step_count", "units": "count",
        "data": [{"date": date, "qty": 1000 + 37 * i}]}], "workouts": []}})
}

struct Daemon {
    child: Child,
    base: String,
    /// The simulated strap's batches logged as committed: (session start, newest
    /// sample, samples in the batch).
    strap: Arc<Mutex<Vec<(i64, i64, u64)>>>,
}

/// Who wears the simulated strap in the crash rounds, and how fast it runs (simulated
/// seconds per second: a batch every 5 simulated seconds is one every 25 ms). Each
/// restart comes back within the session gap, so every round goes on with one session.
const STRAP_CLIENT: &str = "sam";
const STRAP_SPEED: &str = "200";

/// `coachd run`, fast inbox scans, logs as JSON; waits for its listening line.
fn start_daemon(data: &Path) -> Daemon {
    start_daemon_with(data, false)
}

/// [`start_daemon`], with the simulated strap worn by [`STRAP_CLIENT`] if `strap`.
fn start_daemon_with(data: &Path, strap: bool) -> Daemon {
    let mut cmd = crate::coachd_process(data);
    cmd.args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    if strap {
        cmd.args(["--simulate-strap", STRAP_CLIENT, "--strap-speed", STRAP_SPEED]);
    }
    let mut child = cmd
        .env("COACHD_DATA_DIR", data)
        .env("COACHD__INBOX__POLL_MS", "100")
        .env("COACHD__BLE__ENABLED", "false")
        .env("COACHD__PROVIDERS__INTERVALS__ENABLED", "false")
        .env_remove("COACHD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info,coachd::ble::simulated=debug,bluez_async=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coachd run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let strap = acks.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("strap batch committed") {
                if let Ok(json) = serde_json::from_str::<Value>(&line) {
                    let (start, last, n) =
                        (json["session_start_ms"].as_i64(), json["last_ms"].as_i64(), json["samples"].as_u64());
                    if let (Some(start), Some(last), Some(n)) = (start, last, n) {
                        acks.lock().expect("acks").push((start, last, n));
                    }
                }
            }
            if tx.send(line).is_err() {
                // Keep draining so the daemon never blocks on a full pipe.
                continue;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            if let Ok(Some(status)) = child.try_wait() {
                kill(&mut child);
                panic!("the daemon exited ({status}) before it ran:\n{}", log.join("\n"));
            }
            continue;
        };
        if let Ok(json) = serde_json::from_str::<Value>(&line) {
            if json["message"] == "coachd is running" {
                if let Some(listen) = json["listen"].as_str() {
                    return Daemon { child, base: format!("http://{listen}"), strap };
                }
            }
        }
        log.push(line);
    }
    kill(&mut child);
    panic!("the daemon did not start in 60 s:\n{}", log.join("\n"));
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// `coachd import alex FILES...`, its stdout read line by line as it goes.
fn start_import(data: &Path, files: &[PathBuf]) -> (Child, mpsc::Receiver<String>) {
    let mut child = crate::coachd_process(data)
        .arg("import")
        .arg("alex")
        .args(files)
        .env_remove("COACHD_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coachd import");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

async fn pool(data: &Path) -> sqlx::AnyPool {
    crate::raw_db(data).await
}

/// The database is whole: integrity, foreign keys, and no raw record stored twice.
async fn assert_whole(data: &Path, round: usize) {
    let db = pool(data).await;
    // A PostgreSQL server keeps its own pages whole and enforces foreign keys itself.
    if crate::postgres_for(data).is_none() {
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&db).await.expect("integrity");
        assert_eq!(integrity, "ok", "round {round}");
        let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(&db).await.expect("fk check");
        assert!(broken.is_empty(), "round {round}: {} rows break a foreign key", broken.len());
    }
    // One file, one activity row: a FIT file's content hash is never stored twice, and
    // no two rows describe the same start of the same source.
    let doubled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT content_hash FROM activities WHERE content_hash IS NOT NULL
                               GROUP BY source, content_hash HAVING COUNT(*) > 1) AS d",
    )
    .fetch_one(&db)
    .await
    .expect("doubles");
    assert_eq!(doubled, 0, "round {round}: an activity stored twice");
    let doubled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM activities GROUP BY client_id, source, start_ms HAVING COUNT(*) > 1) AS d",
    )
    .fetch_one(&db)
    .await
    .expect("doubles");
    assert_eq!(doubled, 0, "round {round}: two rows of one activity");
    // Every activity's samples are there whole: the chunk counts add up to the recorded count.
    let short: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM activities a WHERE a.hr_samples <>
           (SELECT COALESCE(SUM(n), 0) FROM sample_chunks c WHERE c.activity_id = a.id AND c.kind = 1)",
    )
    .fetch_one(&db)
    .await
    .expect("samples");
    assert_eq!(short, 0, "round {round}: an activity with half its heart-rate samples");
    db.close().await;
}

/// Start times (ms) of stored activities, and stored step buckets as (t_ms, value).
async fn stored(data: &Path) -> (BTreeSet<i64>, Vec<(i64, f64)>) {
    let db = pool(data).await;
    let starts = sqlx::query("SELECT start_ms FROM activities WHERE source = 'fit'")
        .fetch_all(&db)
        .await
        .expect("activities")
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
    let buckets = sqlx::query("SELECT t_ms, value FROM metric_buckets WHERE metric = 'steps' ORDER BY t_ms")
        .fetch_all(&db)
        .await
        .expect("buckets")
        .iter()
        .map(|r| (r.get::<i64, _>(0), r.get::<f64, _>(1)))
        .collect();
    db.close().await;
    (starts, buckets)
}

fn file_start_ms(i: usize) -> i64 {
    file_start(i) * 1000
}

fn push_t_ms(i: usize) -> i64 {
    let local = chrono::FixedOffset::east_opt(7200).expect("offset");
    let midnight = local.from_local_datetime(&day0().and_hms_opt(0, 0, 0).expect("time")).single().expect("t");
    (midnight + Days::minutes(i as i64)).timestamp_millis()
}

fn setup(data: &Path, fake: &Fake) -> String {
    coachd(data).args(["client", "add", "alex", "--tz", "Europe/Berlin"]).assert().success();
    coachd(data).args(["client", "add", STRAP_CLIENT, "--tz", "Europe/Berlin"]).assert().success();
    // The fake has no limits to be polite to: a whole backfill in a second, not a minute.
    let config = data.join("coachd.toml");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str(
        "\n[providers.intervals.manifest]\nrate_limits = [{ name = \"minute\", seconds = 60, limit = 100000 }]\n",
    );
    std::fs::write(&config, text).expect("config");
    coachd(data)
        .args(["connect", "intervals", "alex", "--api-key", ICU_KEY])
        .env("COACHD__PROVIDERS__INTERVALS__API_BASE", icu_base(fake))
        .assert()
        .success();
    for phrase in ["15 minutes of cardio", "8000 steps a day", "150 minutes of cardio a week"] {
        coachd(data).args(["assign", "alex", phrase, "--from", "2026-06-01"]).assert().success();
    }
    let out = coachd(data).args(["push-token", "alex"]).output().expect("push-token");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Header:  Authorization: Bearer "))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .trim()
        .to_string()
}

/// `coachd sync` until it brings nothing new (a run may stop early on its own budget).
async fn sync_to_the_end(data: &Path, fake: &Fake) {
    let mut before = -1;
    for _ in 0..8 {
        let started = Instant::now();
        let mut sync = start_sync(data, fake);
        assert!(sync.wait().expect("sync").success(), "coachd sync failed");
        if std::env::var("CRASH_DEBUG").is_ok() {
            eprintln!("sync took {:?}, {} rows", started.elapsed(), cloud_rows(data).await);
        }
        let now = cloud_rows(data).await;
        if now == before {
            return;
        }
        before = now;
    }
}

/// Activities stored from the cloud.
async fn cloud_rows(data: &Path) -> i64 {
    let db = pool(data).await;
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM activities WHERE source = 'intervals'")
        .fetch_one(&db)
        .await
        .expect("n");
    db.close().await;
    n
}

/// `status --json` occurrences as (homework, date, verdict, achieved): evidence ids differ
/// between two databases, the verdicts must not.
fn verdicts(data: &Path, files: usize) -> Vec<(String, String, String, String)> {
    let last = chrono::DateTime::from_timestamp(file_start(files), 0).expect("time").date_naive();
    let to = last.max(day0() + Days::days(7)) + Days::days(7);
    let out = coachd(data)
        .args(["status", "alex", "--from", "2026-06-01", "--to", &to.to_string(), "--json"])
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut rows: Vec<_> = v["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .map(|o| {
            (o["homework"].to_string(), o["date"].to_string(), o["verdict"].to_string(), o["achieved"].to_string())
        })
        .collect();
    rows.sort();
    rows
}

fn write_all(dir: &Path, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    range
        .map(|i| {
            let path = dir.join(format!("run-{i:04}.fit"));
            std::fs::write(&path, run_file(i)).expect("write");
            path
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_it_loses_nothing_and_doubles_nothing() {
    let rounds = rounds();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let fake = cloud().await;
    let token = setup(&data, &fake);
    let inbox = data.join("inbox/alex");
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ rounds as u64);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http");
    // Acknowledged: file numbers (import or archive) and push numbers.
    let mut files_acked = BTreeSet::new();
    let mut pushes_acked = BTreeSet::new();
    let mut next_file = 0usize;
    let mut next_push = 0usize;
    let (mut kills_mid_import, mut kills_mid_push, mut kills_mid_inbox, mut unanswered) = (0, 0, 0, 0);
    let mut kills_mid_sync = 0;

    // Per strap session (its start): samples acknowledged and the newest one.
    let mut strap_acked: std::collections::BTreeMap<i64, (u64, i64)> = Default::default();
    let mut strap_batches = 0usize;
    for round in 0..rounds {
        let daemon = start_daemon_with(&data, true);
        let mut daemon_child = daemon.child;
        // This round's inputs: files to import, files dropped into the inbox, pushes.
        let import = write_all(&dir.path().join(format!("in/{round}")), next_file..next_file + FILES_PER_ROUND);
        let import_first = next_file;
        next_file += FILES_PER_ROUND;
        std::fs::create_dir_all(&inbox).expect("inbox");
        for i in next_file..next_file + INBOX_PER_ROUND {
            // Written beside, then renamed in: the inbox never sees half a file.
            let tmp = inbox.join(format!(".run-{i:04}.fit.part"));
            std::fs::write(&tmp, run_file(i)).expect("write");
            std::fs::rename(&tmp, inbox.join(format!("run-{i:04}.fit"))).expect("rename");
        }
        next_file += INBOX_PER_ROUND;
        let (mut importer, lines) = start_import(&data, &import);
        let mut sync = start_sync(&data, &fake);

        let deadline = Instant::now() + Duration::from_millis(20 + dice.below(700));
        let url = format!("{}/ingest/health-auto-export", daemon.base);
        let mut pushed_this_round = 0;
        // Pushes overlap, so the kill finds some of them in flight.
        let mut in_flight = Vec::new();
        while Instant::now() < deadline && pushed_this_round < PUSHES_PER_ROUND {
            let i = next_push;
            next_push += 1;
            pushed_this_round += 1;
            let request = http.post(&url).bearer_auth(&token).json(&push_body(i)).send();
            in_flight.push(tokio::spawn(async move { (i, matches!(request.await, Ok(r) if r.status() == 200)) }));
            tokio::time::sleep(Duration::from_millis(dice.below(25))).await;
        }
        tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
        let importer_running = matches!(importer.try_wait(), Ok(None));
        kills_mid_sync += usize::from(matches!(sync.try_wait(), Ok(None)));
        kill(&mut sync);
        let inbox_waiting = std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0) > 0;
        kill(&mut daemon_child);
        kill(&mut importer);
        for push in in_flight {
            match push.await.expect("push task") {
                (i, true) => {
                    pushes_acked.insert(i);
                }
                (_, false) => unanswered += 1,
            }
        }
        kills_mid_import += usize::from(importer_running);
        kills_mid_push += usize::from(pushed_this_round < PUSHES_PER_ROUND);
        kills_mid_inbox += usize::from(inbox_waiting);
        for line in lines.try_iter() {
            if let Some(rest) = line.strip_prefix("imported ") {
                let n = import.iter().position(|p| rest.contains(&*p.display().to_string()));
                files_acked.insert(import_first + n.unwrap_or_else(|| panic!("an imported line for no file: {line}")));
            }
        }
        // Files in the archive were committed before they were moved.
        if let Ok(archived) = std::fs::read_dir(data.join("archive/alex")) {
            for e in archived.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(n) = name.strip_prefix("run-").and_then(|n| n.get(..4)).and_then(|n| n.parse().ok()) {
                    files_acked.insert(n);
                }
            }
        }

        for (start, last, n) in daemon.strap.lock().expect("acks").drain(..) {
            let e = strap_acked.entry(start).or_insert((0, start));
            *e = (e.0 + n, e.1.max(last));
            strap_batches += 1;
        }

        assert_whole(&data, round).await;
        let sessions = strap_sessions(&data).await;
        for (start, (samples, last)) in &strap_acked {
            let (stored_samples, end) = sessions
                .get(start)
                .copied()
                .unwrap_or_else(|| panic!("round {round}: the acknowledged strap session of {start} is missing"));
            assert!(stored_samples >= *samples as i64, "round {round}: strap session {start} lost samples");
            assert!(end >= *last, "round {round}: strap session {start} ends before its acknowledged samples");
        }
        let (starts, buckets) = stored(&data).await;
        for i in &files_acked {
            assert!(starts.contains(&file_start_ms(*i)), "round {round}: acknowledged file {i} is missing");
        }
        for i in &pushes_acked {
            let want = (push_t_ms(*i), 1000.0 + 37.0 * *i as f64);
            assert!(buckets.contains(&want), "round {round}: acknowledged push {i} is missing");
        }
        let times: BTreeSet<i64> = buckets.iter().map(|b| b.0).collect();
        assert_eq!(times.len(), buckets.len(), "round {round}: a step bucket stored twice");
        assert!(cloud_rows(&data).await <= CLOUD_ACTIVITIES, "round {round}: a cloud activity stored twice");
    }

    // Everything once more, as clients and sync tools re-deliver what was not acknowledged;
    // then the daemon finishes its inbox and stops cleanly.
    let all = write_all(&dir.path().join("in/all"), 0..next_file);
    coachd(&data).arg("import").arg("alex").args(&all).assert().success();
    sync_to_the_end(&data, &fake).await;
    let daemon = start_daemon(&data);
    let mut daemon_child = daemon.child;
    for i in 0..next_push {
        let r = http
            .post(format!("{}/ingest/health-auto-export", daemon.base))
            .bearer_auth(&token)
            .json(&push_body(i))
            .send()
            .await
            .expect("push");
        assert_eq!(r.status(), 200);
    }
    let drained = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0) > 0 && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &daemon_child.id().to_string()]).status();
    let _ = daemon_child.wait();
    assert_whole(&data, rounds).await;

    // A clean run over the same inputs, delivered once each.
    let clean = dir.path().join("clean");
    let clean_token = setup(&clean, &fake);
    coachd(&clean).arg("import").arg("alex").args(&all).assert().success();
    sync_to_the_end(&clean, &fake).await;
    let daemon = start_daemon(&clean);
    let mut clean_child = daemon.child;
    for i in 0..next_push {
        let r = http
            .post(format!("{}/ingest/health-auto-export", daemon.base))
            .bearer_auth(&clean_token)
            .json(&push_body(i))
            .send()
            .await
            .expect("push");
        assert_eq!(r.status(), 200);
    }
    kill(&mut clean_child);
    let (crashed, reference) = (verdicts(&data, next_file), verdicts(&clean, next_file));
    assert!(!reference.is_empty());
    assert_eq!(crashed, reference, "the verdicts after {rounds} crashes equal a clean run's");
    let (starts, buckets) = stored(&data).await;
    assert_eq!(starts.len(), next_file, "every file is stored once");
    let stored_pushes = buckets.len();
    assert_eq!(stored_pushes, next_push, "every push is stored once");
    // The clean run stores what the backfill window holds; the crashed one the same, once each.
    let (cloud_crashed, cloud_clean) = (cloud_rows(&data).await, cloud_rows(&clean).await);
    assert!(cloud_clean > CLOUD_ACTIVITIES / 2, "the clean run synced {cloud_clean}");
    assert_eq!(cloud_crashed, cloud_clean, "every cloud activity is stored once");
    println!(
        "{rounds} rounds: {} files and {} pushes acknowledged before a kill, {} of {} files and {} of {} \
         pushes in all; killed mid-import {kills_mid_import} times, mid-push {kills_mid_push}, with files in the \
         inbox {kills_mid_inbox}, mid-sync {kills_mid_sync}; {unanswered} pushes unanswered at a kill; \
         {cloud_crashed} cloud activities stored once; {} verdicts equal",
        files_acked.len(),
        pushes_acked.len(),
        starts.len(),
        next_file,
        stored_pushes,
        next_push,
        reference.len()
    );
    assert!(strap_batches >= rounds, "the strap committed {strap_batches} batches in {rounds} rounds");
    assert_eq!(strap_acked.len(), 1, "restarts within the gap go on with one session: {:?}", strap_acked.keys());
    let sessions = strap_sessions(&data).await;
    println!(
        "strap: {strap_batches} batches in {} sessions acknowledged, {} sessions stored with {} heart-rate samples",
        strap_acked.len(),
        sessions.len(),
        sessions.values().map(|s| s.0).sum::<i64>()
    );
    let _ = Utc::now();
}

/// The strap's sessions: start (ms) → (heart-rate samples, end ms).
async fn strap_sessions(data: &Path) -> std::collections::BTreeMap<i64, (i64, i64)> {
    let db = pool(data).await;
    let rows = sqlx::query("SELECT start_ms, hr_samples, end_ms FROM activities WHERE source = 'ble'")
        .fetch_all(&db)
        .await
        .expect("strap sessions");
    db.close().await;
    rows.iter().map(|r| (r.get::<i64, _>(0), (r.get::<i64, _>(1), r.get::<i64, _>(2)))).collect()
}

/// A tmpfs of `mb` megabytes at `at`, unmounted when dropped; None where this machine
/// cannot mount one (not root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u32) -> Option<Self> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "coachd-test"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the disk under `dir` to the last byte; the file to delete to free it again.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_named_stores_nothing_half_and_resumes_when_space_returns() {
    if crate::sqlite_file_only("a full disk under the database file") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), 6) else {
        println!("skipped: this machine cannot mount a tmpfs (needs root)");
        return;
    };
    let data = disk.0.join("data");
    let fake = cloud().await;
    let token = setup(&data, &fake);
    let daemon = start_daemon(&data);
    let mut child = daemon.child;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http");
    let url = format!("{}/ingest/health-auto-export", daemon.base);
    // Something stored before the disk filled up.
    assert_eq!(http.post(&url).bearer_auth(&token).json(&push_body(0)).send().await.expect("push").status(), 200);
    let inbox = data.join("inbox/alex");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::create_dir_all(disk.0.join("more")).expect("mkdir");
    let filler = fill(&disk.0);

    // A push: refused with 507, the disk named; the phone sends it again later.
    let mut refused = 0;
    for i in 1..=3 {
        let r = http.post(&url).bearer_auth(&token).json(&push_body(i)).send().await.expect("push");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status == 507 {
            assert!(
                body.contains("disk") && body.contains("full") && body.contains("nothing of this was stored"),
                "{body}"
            );
            refused += 1;
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(refused > 0, "no push was refused on a full disk");
    // An import: exit 1, one clear line naming the disk, nothing stored.
    let file = dir.path().join("run.fit");
    std::fs::write(&file, run_file(3)).expect("write");
    let out = coachd(&data).arg("import").arg("alex").arg(&file).output().expect("import");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the disk holding coachd's data is full") && stderr.matches("full").count() == 1,
        "{stderr}"
    );
    // A file in the inbox waits: it is never quarantined for a full disk. (It can only
    // be copied in by deleting some of the filler.)
    let filler_file = std::fs::OpenOptions::new().write(true).open(&filler).expect("filler");
    let len = filler_file.metadata().expect("len").len();
    filler_file.set_len(len - 256 * 1024).expect("shrink");
    std::fs::write(inbox.join("run-0007.fit"), run_file(7)).expect("inbox file");
    drop(filler_file);
    fill(&disk.0.join("more"));
    // Reads still work: the dashboard's health page and status.
    let health = http.get(format!("{}/healthz", daemon.base)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(inbox.join("run-0007.fit").exists(), "the inbox file waits while the disk is full");
    // The inbox says why and backs off: a few restarts, not one per scan.
    let health: Value =
        http.get(format!("{}/healthz", daemon.base)).send().await.expect("healthz").json().await.expect("json");
    let source =
        health["sources"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "inbox")).cloned().expect("inbox");
    assert!(source["last_error"].as_str().is_some_and(|e| e.contains("disk") && e.contains("full")), "{source}");
    assert!(source["restarts"].as_u64().is_some_and(|r| r <= 4), "backs off instead of spinning: {source}");
    assert!(!data.join("quarantine/alex/run-0007.fit").exists(), "never quarantined for a full disk");
    assert_whole(&data, 0).await;

    // Space returns: everything carries on by itself, with no restart.
    std::fs::remove_file(&filler).expect("free the disk");
    let _ = std::fs::remove_file(disk.0.join("more/filler"));
    let r = http.post(&url).bearer_auth(&token).json(&push_body(1)).send().await.expect("push");
    assert_eq!(r.status(), 200, "the first push after space returns: {:?}", r.text().await);
    let waited = Instant::now();
    while inbox.join("run-0007.fit").exists() && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(data.join("archive/alex/run-0007.fit").exists(), "the inbox file imported once space returned");
    coachd(&data).arg("import").arg("alex").arg(&file).assert().success();
    kill(&mut child);
    assert_whole(&data, 1).await;
    let (starts, buckets) = stored(&data).await;
    assert!(starts.contains(&file_start_ms(3)) && starts.contains(&file_start_ms(7)));
    assert!(buckets.contains(&(push_t_ms(1), 1037.0)));
    drop(disk);
}
