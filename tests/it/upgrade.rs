//! Schema upgrades kept safe: a database made by the first release's migration, with
//! rows in every table, upgrades to the current schema with every row kept; a database
//! from a newer coachd is refused, naming both versions, and left unchanged.

use crate::{coachd, fixture, TestStore};
use coachd::crypto::Cipher;
use coachd::store::{Store, StoreError, StoreOptions};
use predicates::str::contains;
use std::collections::BTreeMap;

/// A database file with only migrations/sqlite/0001_init.sql applied (through sqlx's own
/// migrator, so its history is what the first release recorded).
async fn first_release_database(dir: &std::path::Path) -> std::path::PathBuf {
    let migrations = dir.join("migrations-0001");
    std::fs::create_dir_all(&migrations).expect("mkdir");
    let first = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_init.sql");
    std::fs::copy(&first, migrations.join("0001_init.sql")).expect("copy the first migration");
    let path = dir.join("old.db");
    let pool = fixture::pool(&path).await;
    let migrator = sqlx::migrate::Migrator::new(migrations.as_path()).await.expect("migrator");
    assert_eq!(migrator.iter().count(), 1);
    migrator.run(&pool).await.expect("migration 0001");
    pool.close().await;
    path
}

async fn counts(pool: &sqlx::SqlitePool) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for t in fixture::tables(pool).await {
        if t != "_sqlx_migrations" {
            out.insert(t.clone(), fixture::count(pool, &t).await);
        }
    }
    out
}

#[tokio::test]
async fn a_first_release_database_upgrades_with_every_row_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = first_release_database(dir.path()).await;
    let pool = fixture::pool(&path).await;
    let alex = fixture::fill_v1(&pool, "alex", 1).await;
    fixture::fill_v1(&pool, "sam", 2).await;
    let before = counts(&pool).await;
    assert!(before.len() >= 16 && before.values().all(|n| *n > 0), "{before:?}");
    pool.close().await;

    let store = Store::open(&path, &StoreOptions::default(), Cipher::from_key(&[3; 32])).await.expect("upgrades");
    assert_eq!(store.schema_version().await.expect("version"), coachd::store::backup::known_schema_version());
    let clients = store.list_clients().await.expect("clients");
    assert_eq!(clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["alex", "sam"]);
    assert_eq!(
        (clients[0].tz, clients[0].hr_max, clients[0].trainer.as_deref()),
        (chrono_tz::Europe::Berlin, Some(185), Some("coach"))
    );
    let homework = store.list_homework(Some(alex.client)).await.expect("homework");
    assert_eq!(homework.len(), 1);
    assert_eq!(&*homework[0].homework.text, "10 push-ups");
    let samples = store.series(alex.activity, coachd::model::SeriesKind::Hr).await.expect("samples");
    assert_eq!(samples.iter().map(|s| s.value).collect::<Vec<_>>(), [120.0, 125.0, 130.0]);
    store.close().await;

    let pool = fixture::pool(&path).await;
    let after = counts(&pool).await;
    for (table, n) in &before {
        if table == "verdicts" {
            // A cache: migration 12 remade it a row per month; the next status judges again.
            assert_eq!(after[table], 0, "the old verdict cache is dropped");
            continue;
        }
        let kept = if table == "meta" { after[table] - 1 } else { after[table] }; // + the key's fingerprint
        assert_eq!(kept, *n, "rows of {table}");
    }
    for added in ["sessions", "share_links", "reflections", "oauth_states", "benchmarks", "answers"] {
        assert_eq!(after.get(added), Some(&0), "{added} is made by the upgrade");
    }
    // Migration 4 carried the last sync over as the last attempt.
    let attempt: Option<i64> = sqlx::query_scalar("SELECT last_attempt_ms FROM accounts WHERE id = ?")
        .bind(alex.account)
        .fetch_one(&pool)
        .await
        .expect("account");
    assert_eq!(attempt, Some(1_700_000_000_000));
    let (duration, steps): (f64, f64) = sqlx::query_as(
        "SELECT a.duration_s, m.value FROM activities a JOIN daily_metrics m ON m.client_id = a.client_id WHERE a.id = ?",
    )
    .bind(alex.activity)
    .fetch_one(&pool)
    .await
    .expect("values");
    assert_eq!((duration, steps), (3.0, 8001.0));
    // The upgraded database takes the tables later releases added.
    fixture::fill_later(&pool, &alex, 1).await;
    pool.close().await;
}

#[tokio::test]
async fn a_database_from_a_newer_coachd_is_refused_naming_both_versions() {
    if crate::sqlite_file_only("a future migration written into the file") {
        return; // migrate.rs has the PostgreSQL counterpart.
    }
    let ts = TestStore::new().await;
    let root = ts.dir.path().join("data");
    ts.store.close().await;
    let path = root.join("coachd.db");
    let pool = fixture::pool(&path).await;
    let future = coachd::store::backup::known_schema_version() + 1;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (?, 'from a newer coachd', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .bind(future)
    .execute(&pool)
    .await
    .expect("a future migration");
    let before = counts(&pool).await;
    pool.close().await;

    let err = Store::open(&path, &StoreOptions::default(), Cipher::from_key(&[3; 32])).await.expect_err("refused");
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == future), "{err}");
    let text = err.to_string();
    let known = future - 1;
    for needle in [
        format!("schema version {future}"),
        format!("knows versions up to {known}"),
        "a newer coachd".to_string(),
        "coachd restore".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing in: {text}");
    }
    coachd(&root).args(["client", "list"]).assert().code(1).stderr(contains(format!("schema version {future}")));
    let pool = fixture::pool(&path).await;
    assert_eq!(counts(&pool).await, before, "left unchanged");
    // The newest version is still the future one (counting rows would assume numbers
    // without gaps, which migrations written on parallel branches do not keep).
    let newest: i64 =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.expect("versions");
    assert_eq!(newest, future);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_first_release_database_upgrades_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = first_release_database(dir.path()).await;
    let pool = fixture::pool(&path).await;
    fixture::fill_v1(&pool, "alex", 1).await;
    pool.close().await;
    let data = coachd::paths::DataDir::new(dir.path().join("data"));
    let config = coachd::config::Config::default();
    let r = coachd::app::backup::restore(&data, &data.default_config(), &path, false, &config).await.expect("restore");
    assert_eq!((r.schema_before, r.schema_now), (1, coachd::store::backup::known_schema_version()));
    assert_eq!((r.counts.clients, r.counts.activities), (1, 1));
    // No key fingerprint in a first-release database: the tokens stay, sealed as they were.
    assert!(r.reconnect.is_empty());
}
