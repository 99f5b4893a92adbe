//! `coachd migrate --to postgres://…`: the demo data set moves from the data dir's SQLite
//! file into an empty PostgreSQL database with every row, and `status --json` of every
//! client reads the same on both. Runs where the suite has a PostgreSQL server
//! (`COACHD_TEST_POSTGRES`, which `.ci/run` always sets).

use crate::{coachd, postgres_for};
use predicates::str::contains;
use std::path::Path;

/// The binary on the data dir's SQLite file, whatever backend the suite runs on.
fn on_sqlite(data: &Path) -> assert_cmd::Command {
    let mut cmd = coachd(data);
    cmd.env_remove("COACHD__STORE__URL");
    cmd
}

fn stdout(mut cmd: assert_cmd::Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn migrate_copies_the_demo_into_postgres_with_equal_rows_and_the_same_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The target is a database of its own, apart from the data dir's.
    let Some(url) = postgres_for(&dir.path().join("target")) else {
        eprintln!("COACHD_TEST_POSTGRES is not set: no PostgreSQL server to migrate to");
        return;
    };
    on_sqlite(&data).args(["demo", "--now", "2026-11-20T18:00:00Z"]).assert().success();
    let status = ["status", "--from", "2026-08-01", "--to", "2026-11-20", "--json"];
    let before = stdout(on_sqlite(&data), &status);
    let clients = stdout(on_sqlite(&data), &["client", "list", "--json"]);
    let db = data.join("coachd.db");
    let bytes_before = std::fs::read(&db).expect("db");

    let out = stdout(on_sqlite(&data), &["migrate", "--to", &url]);
    assert!(out.contains("checked: equal rows in every table"), "{out}");
    assert!(out.contains(&format!("url = \"{url}\"")), "{out}");
    assert!(out.contains("activities"), "{out}");

    let mut on_pg = coachd(&data);
    on_pg.env("COACHD__STORE__URL", &url);
    assert_eq!(stdout(on_pg, &status), before);
    let mut on_pg = coachd(&data);
    on_pg.env("COACHD__STORE__URL", &url);
    assert_eq!(stdout(on_pg, &["client", "list", "--json"]), clients);
    // The SQLite file's data is as it was (its WAL checkpointed at close at most).
    assert_eq!(stdout(on_sqlite(&data), &status), before);
    assert!(!bytes_before.is_empty());

    // A second migration into the now full database is refused and changes nothing.
    on_sqlite(&data)
        .args(["migrate", "--to", &url])
        .assert()
        .code(2)
        .stderr(contains("the target database is not empty"));
    on_sqlite(&data).args(["migrate", "--to", "mysql://x"]).assert().code(2).stderr(contains("postgres://"));
}

#[test]
fn a_postgresql_database_migrated_by_a_newer_coachd_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let Some(url) = postgres_for(&data) else {
        eprintln!("COACHD_TEST_POSTGRES is not set: no PostgreSQL server");
        return;
    };
    let mut init = coachd(&data);
    init.env("COACHD__STORE__URL", &url).args(["client", "add", "alex", "--tz", "UTC"]).assert().success();
    let future = coachd::store::backup::known_schema_version() + 1;
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c"])
        .arg(format!(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
             VALUES ({future}, 'from a newer coachd', now(), true, '\\x00'::bytea, 0)"
        ))
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut list = coachd(&data);
    list.env("COACHD__STORE__URL", &url)
        .args(["client", "list"])
        .assert()
        .code(1)
        .stderr(contains(format!("schema version {future}")))
        .stderr(contains(format!("knows versions up to {}", future - 1)));
    // Nothing was changed: the client is still there once the future row is gone.
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-d", &url, "-c", "SELECT name FROM clients"])
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alex");
}
