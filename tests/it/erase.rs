//! The client's data is the client's: an export holds all of it, and a removal leaves
//! no row of the client in any table (found by walking the schema, so a table added
//! later without its cleanup fails here), keeping every other client's rows.

use crate::fixture::{self, Made};
use crate::{coachd, hour_run, t0, TestStore};
use coachd::app::App;
use coachd::paths::DataDir;
use predicates::str::contains;
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::io::Read;

/// Tables that hold no client's rows: what they are, checked by hand.
const NOT_CLIENT_DATA: &[&str] = &[
    "_sqlx_migrations",  // the schema's history
    "trainers",          // dashboard users
    "sessions",          // trainers' logins
    "meta",              // settings of the store; a client's account keys are checked below
    "cursors",           // named by stream, no column names a client; checked below
    "collectors",        // remote collector boxes (equipment, like devices): name, token hash, status
    "collector_batches", // a collector's replay log: sequence numbers and digests of what it sent
    "collector_scans",   // scans asked of a collector: sensors heard (equipment), kept until read
    "login_failures",    // failed dashboard logins: trainer names and addresses
    "login_known",       // (trainer name, address) pairs that logged in
];

/// The client-owned things a table's columns may reference.
const OWNERS: &[&str] = &["clients", "activities", "homework", "checkins"];

/// (table, column, referenced table) of every foreign key to an owner.
async fn references(pool: &SqlitePool) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for table in fixture::tables(pool).await {
        let fks: Vec<(String, String)> = sqlx::query_as("SELECT \"table\", \"from\" FROM pragma_foreign_key_list(?)")
            .bind(&table)
            .fetch_all(pool)
            .await
            .expect("fks");
        for (target, column) in fks {
            if OWNERS.contains(&target.as_str()) {
                out.push((table.clone(), column, target));
            }
        }
    }
    out
}

/// Rows of each (table, column) that point at the client's own things.
async fn rows_of(pool: &SqlitePool, m: &Made) -> BTreeMap<String, i64> {
    let owned = |owner: &str| match owner {
        "clients" => format!("= {}", m.client),
        "activities" => {
            format!("IN (SELECT id FROM activities WHERE client_id = {0}) OR {{col}} = {1}", m.client, m.activity)
        }
        "homework" => {
            format!("IN (SELECT id FROM homework WHERE client_id = {0}) OR {{col}} = {1}", m.client, m.homework)
        }
        _ => format!("IN (SELECT id FROM checkins WHERE client_id = {0}) OR {{col}} = {1}", m.client, m.checkin),
    };
    let mut out = BTreeMap::new();
    for (table, column, owner) in references(pool).await {
        let cond = format!("\"{column}\" {}", owned(&owner)).replace("{col}", &format!("\"{column}\""));
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\" WHERE {cond}"))
            .fetch_one(pool)
            .await
            .expect("count");
        out.insert(format!("{table}.{column}"), n);
    }
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM clients WHERE id = ?")
        .bind(m.client)
        .fetch_one(pool)
        .await
        .expect("count");
    out.insert("clients.id".into(), own);
    let cursors: i64 = sqlx::query_scalar("SELECT count(*) FROM cursors WHERE stream IN (?, ?)")
        .bind(format!("account:{}", m.account))
        .bind(format!("sha256:{}", m.hash))
        .fetch_one(pool)
        .await
        .expect("count");
    out.insert("cursors.stream".into(), cursors);
    let meta: i64 = sqlx::query_scalar("SELECT count(*) FROM meta WHERE key = ?")
        .bind(format!("skipped:{}", m.account))
        .fetch_one(pool)
        .await
        .expect("count");
    out.insert("meta.key".into(), meta);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_client_leaves_no_row_of_theirs_in_any_table_and_keeps_the_others() {
    if crate::sqlite_file_only("the rows written into the file by hand") {
        return;
    }
    let ts = TestStore::new().await;
    let root = ts.dir.path().join("data");
    ts.store.close().await;
    let db = fixture::pool(&root.join("coachd.db")).await;
    let alex = fixture::fill_v1(&db, "alex", 1).await;
    let sam = fixture::fill_v1(&db, "sam", 2).await;
    fixture::fill_later(&db, &alex, 1).await;
    fixture::fill_later(&db, &sam, 2).await;

    // Every table either references a client's things, or is known to hold none.
    let referencing: Vec<String> = references(&db).await.into_iter().map(|r| r.0).collect();
    for table in fixture::tables(&db).await {
        assert!(
            table == "clients" || referencing.contains(&table) || NOT_CLIENT_DATA.contains(&table.as_str()),
            "table {table} neither references a client (clients, activities, homework, check-ins) nor is known to \
             hold no client data: add its cleanup to store::erase::CLIENT_ROWS, its rows to tests/it/fixture.rs, \
             and it here if it holds none"
        );
    }
    let before = rows_of(&db, &alex).await;
    for (place, n) in &before {
        assert!(*n > 0, "the fixture has no row of the client in {place}: add one to tests/it/fixture.rs");
    }
    let sam_before = rows_of(&db, &sam).await;

    let data = DataDir::new(&root);
    for folder in data.client_folders("alex").iter().chain(data.client_folders("sam").iter()) {
        std::fs::create_dir_all(folder).expect("mkdir");
        std::fs::write(folder.join("run.fit"), b"x").expect("write");
    }
    let app = App::open(&data, &data.default_config(), coachd::config::Config::default(), false).await.expect("open").0;
    let client = app.client("alex").await.expect("alex");
    let done = app.remove_client(&client).await.expect("removed");
    assert_eq!(done.folders.len(), 3);
    assert!(done.authorizations.iter().any(|a| a.starts_with("strava")), "{:?}", done.authorizations);
    app.close().await;

    let after = rows_of(&db, &alex).await;
    let left: Vec<_> = after.iter().filter(|(_, n)| **n > 0).collect();
    assert!(left.is_empty(), "rows of the removed client remain: {left:?}");
    assert_eq!(rows_of(&db, &sam).await, sam_before, "another client's rows changed");
    let device: (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT client_id, paired_ms FROM devices WHERE address = 'AA:BB:CC:DD:EE:01'")
            .fetch_one(&db)
            .await
            .expect("the sensor stays, unpaired");
    assert_eq!(device, (None, None));
    for folder in data.client_folders("alex") {
        assert!(!folder.exists(), "{} remains", folder.display());
    }
    for folder in data.client_folders("sam") {
        assert!(folder.join("run.fit").exists());
    }
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&db).await.expect("check");
    assert_eq!(integrity, "ok");
    let broken: Vec<(String, i64, String, i64)> =
        sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&db).await.expect("fk check");
    assert!(broken.is_empty(), "{broken:?}");
    db.close().await;
}

fn unzip(path: &std::path::Path) -> BTreeMap<String, String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("open")).expect("a zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("member");
            let mut text = String::new();
            f.read_to_string(&mut text).expect("text");
            (f.name().expect("name").to_string(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_the_clients_data_in_documented_files_and_tcx_that_reads_back() {
    let ts = TestStore::new().await;
    let alex = ts.client("alex").await;
    let other = ts.client("sam").await;
    let mut run = hour_run(alex, "run-1", t0());
    run.content_hash = Some(vec![7; 32]);
    ts.store.ingest(&crate::batch("fit", vec![run], None)).await.expect("ingest");
    ts.store.ingest(&crate::batch("fit", vec![hour_run(other, "run-2", t0())], None)).await.expect("ingest");
    let root = ts.dir.path().join("data");
    ts.store.close().await;
    coachd(&root).args(["assign", "alex", "10 push-ups every day", "--from", "2026-11-15"]).assert().success();
    coachd(&root).args(["checkin", "alex", "1", "--date", "2026-11-16", "--note", "done"]).assert().success();
    let out = ts.dir.path().join("alex.zip");
    coachd(&root)
        .args(["client", "export", "alex", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("1 activities as TCX"));
    let files = unzip(&out);
    for name in [
        "README.txt",
        "client.json",
        "activities.json",
        "daily_metrics.json",
        "homework.json",
        "checkins.json",
        "reflections.json",
        "answers.json",
        "benchmarks.json",
        "status.json",
    ] {
        assert!(files.contains_key(name), "{name} missing: {:?}", files.keys().collect::<Vec<_>>());
    }
    let activities: Vec<serde_json::Value> = serde_json::from_str(&files["activities.json"]).expect("json");
    assert_eq!(activities.len(), 1, "only alex's");
    assert_eq!(activities[0]["external_id"], "run-1");
    assert!(activities[0]["start"].as_str().is_some_and(|s| s.starts_with("2026-11-20T17:00:00")));
    assert!(activities[0].get("content_hash").is_none(), "no BLOB columns");
    assert!(files["checkins.json"].contains("\"note\": \"done\""));
    assert!(files["status.json"].contains("\"occurrences\""));
    let verdicts: Vec<serde_json::Value> = serde_json::from_str(&files["verdicts.json"]).expect("json");
    assert!(!verdicts.is_empty(), "the verdicts judged for status.json are listed");
    let homework: Vec<serde_json::Value> = serde_json::from_str(&files["homework.json"]).expect("json");
    assert!(homework[0]["rule"].is_object(), "the rule is JSON, not a string");
    let id = activities[0]["id"].as_i64().expect("id");
    let tcx = &files[&format!("activities/{id}.tcx")];
    assert_eq!(tcx.matches("<Trackpoint>").count(), 3600);
    // coachd's own TCX reader accepts it, with every heart-rate sample.
    let tcx_path = ts.dir.path().join("back.tcx");
    std::fs::write(&tcx_path, tcx).expect("write");
    coachd(&root).args(["client", "add", "copy", "--tz", "UTC"]).assert().success();
    coachd(&root).args(["import", "copy"]).arg(&tcx_path).assert().success();
    let out_json = coachd(&root)
        .args(["activities", "copy", "--from", "2026-11-19", "--to", "2026-11-21", "--json"])
        .output()
        .expect("runs");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out_json.stdout).expect("json");
    assert_eq!(listed[0]["hr_samples"], 3600, "{listed:?}");

    coachd(&root).args(["client", "export", "alex", "--out"]).arg(&out).assert().code(2).stderr(contains("exists"));
    coachd(&root).args(["client", "export", "nobody"]).assert().code(2).stderr(contains("not found"));
}

#[test]
fn client_remove_asks_for_yes_without_a_terminal_and_then_erases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "UTC"]).assert().success();
    coachd(&data).args(["client", "remove", "alex"]).assert().code(2).stderr(contains("--yes"));
    coachd(&data).args(["client", "list"]).assert().success().stdout(contains("alex"));
    coachd(&data)
        .args(["client", "remove", "alex", "--yes"])
        .assert()
        .success()
        .stdout(contains("removed client alex"));
    coachd(&data).args(["client", "list"]).assert().success().stdout(contains("no clients yet"));
    coachd(&data).args(["client", "remove", "alex", "--yes"]).assert().code(2).stderr(contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_exports_and_removes_only_the_trainers_own_clients_behind_csrf_and_the_typed_name() {
    use crate::dashboard::{browser, login, site, PASSWORD_A};
    use reqwest::StatusCode;
    let s = site().await;
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let (a, b) = (s.a_client, s.b_client);
    let page = http.get(format!("{}/clients/{a}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains(&format!("/clients/{a}/export")) && page.contains(&format!("/clients/{a}/remove")));
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}{path}", s.base);
        async move { http.post(url).form(&form).send().await.expect("post") }
    };

    // The export: a zip of Anna's client; Ben's client is not found; a stale form is refused.
    let r = post(format!("/clients/{a}/export"), vec![("csrf", csrf.clone())]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert!(r.headers()["content-disposition"].to_str().expect("ascii").contains("alex-export-"));
    let bytes = r.bytes().await.expect("body");
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    let names: Vec<String> = zip.file_names().map(|n| n.expect("name").to_string()).collect();
    assert!(names.iter().any(|n| n == "activities.json"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("activities/") && n.ends_with(".tcx")), "{names:?}");
    let r = post(format!("/clients/{b}/export"), vec![("csrf", csrf.clone())]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(format!("/clients/{a}/export"), vec![("csrf", "stale".into())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The removal: not Ben's client, not without the token, not without the typed name.
    let r = post(format!("/clients/{b}/remove"), vec![("csrf", csrf.clone()), ("confirm", "bea".into())]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(format!("/clients/{a}/remove"), vec![("csrf", "stale".into()), ("confirm", "alex".into())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(format!("/clients/{a}/remove"), vec![("csrf", csrf.clone()), ("confirm", "alx".into())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().expect("ascii").contains("Nothing+removed"));
    assert!(s.ts.store.client_by_id(a).await.is_ok(), "still there");
    let r = post(format!("/clients/{a}/remove"), vec![("csrf", csrf.clone()), ("confirm", "Alex ".into())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().expect("ascii").starts_with("/roster"));
    assert!(s.ts.store.client_by_id(a).await.is_err(), "removed");
    assert!(s.ts.store.client_by_id(b).await.is_ok(), "Ben's client stays");
    assert_eq!(s.ts.store.row_counts().await.expect("counts").activities, 1, "only Ben's client's run is left");
}
