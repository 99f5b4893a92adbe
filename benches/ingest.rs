//! Storage benchmark: one-hour activities with per-second heart rate.
//!
//! Prints, side by side in one run, coachd's chunked layout (src/store/codec.rs) against
//! the habitual layout of one SQLite row per sample, both through sqlx with the same
//! pragmas: ingest rate, bytes on disk per sample, and time to read one activity back.
//!
//!     cargo bench --bench ingest            # 200 activities (720,000 samples)
//!     COACHD_BENCH_ACTIVITIES=1000 cargo bench --bench ingest
//!     COACHD_BENCH_POSTGRES=postgres://USER@HOST/EMPTY_DB cargo bench --bench ingest
//!         # coachd's layout on PostgreSQL too (bytes per sample: the database's growth)

use chrono::{Duration, TimeZone, Utc};
use coachd::config::{Config, Synchronous};
use coachd::model::{Batch, Category, NewActivity, Sample, Series, SeriesKind};
use coachd::paths::DataDir;
use coachd::store::NewClient;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Instant;

const PER_ACTIVITY: i64 = 3600;

fn activity(client: i64, i: i64) -> NewActivity {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 6, 0, 0).single().expect("time") + Duration::hours(i * 5);
    let t0 = start.timestamp_millis();
    // A plausible heart-rate walk: warm-up, drift, noise; not a constant.
    let mut hr = 95.0f64;
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let samples = (0..PER_ACTIVITY)
        .map(|s| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let target = if s < 600 { 95.0 + s as f64 / 10.0 } else { 150.0 + ((s / 240) % 2) as f64 * 15.0 };
            hr += (target - hr) * 0.05 + ((x % 5) as f64 - 2.0);
            Sample { t_ms: t0 + s * 1000, value: hr.round().clamp(40.0, 220.0) }
        })
        .collect();
    NewActivity {
        client_id: client,
        external_id: format!("bench-{i}"),
        start,
        end: start + Duration::seconds(PER_ACTIVITY),
        utc_offset_s: 3600,
        activity_type: "run".into(),
        category: Category::Cardio,
        duration_s: PER_ACTIVITY as f64,
        distance_m: Some(10_000.0),
        avg_hr: Some(140.0),
        max_hr: Some(180),
        energy_kj: None,
        content_hash: None,
        series: vec![Series { kind: SeriesKind::Hr, samples }],
        sets: None,
        hr_zones: None,
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

struct Figures {
    samples_per_s: f64,
    bytes_per_sample: f64,
    read_p50_us: f64,
    read_p99_us: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The bench's PostgreSQL database emptied (schema dropped and made again); its size then.
async fn empty_postgres(url: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
    sqlx::query("DROP SCHEMA public CASCADE").execute(&mut c).await.expect("drop");
    sqlx::query("CREATE SCHEMA public").execute(&mut c).await.expect("create");
    let size = postgres_size(&mut c).await;
    c.close().await.expect("close");
    size
}

async fn postgres_size(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(c).await.expect("size")
}

async fn bench_coachd(acts: &[NewActivity], sync: Synchronous, per_batch: usize, pg: Option<&str>) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path().join("data"));
    let mut config = Config::default();
    config.store.synchronous = sync;
    let empty = match pg {
        Some(url) => {
            config.store.url = url.to_string();
            empty_postgres(url).await
        }
        None => 0,
    };
    let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("init");
    let client = store
        .add_client(&NewClient::parse("bench", "Europe/Berlin", Some(190), None).expect("client"))
        .await
        .expect("add")
        .id;
    let acts: Vec<NewActivity> = acts.iter().cloned().map(|mut a| (a.client_id = client, a).1).collect();
    let started = Instant::now();
    for group in acts.chunks(per_batch) {
        let batch = Batch { source: "bench".into(), activities: group.to_vec(), ..Batch::default() };
        store.ingest(&batch).await.expect("ingest");
    }
    let secs = started.elapsed().as_secs_f64();
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for a in &acts {
            ids.push(store.activity_id("bench", &a.external_id).await.expect("id").expect("stored"));
        }
        ids
    };
    let mut reads = Vec::new();
    for round in 0..5 {
        for (k, id) in ids.iter().enumerate() {
            let t = Instant::now();
            let s = store.series(*id, SeriesKind::Hr).await.expect("series");
            reads.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(s.len() as i64, PER_ACTIVITY, "round {round} activity {k}");
        }
    }
    store.close().await;
    reads.sort_by(f64::total_cmp);
    let total = (acts.len() as i64 * PER_ACTIVITY) as f64;
    let bytes = match pg {
        Some(url) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
            (postgres_size(&mut c).await - empty) as u64
        }
        None => dir_bytes(data.root()),
    };
    Figures {
        samples_per_s: total / secs,
        bytes_per_sample: bytes as f64 / total,
        read_p50_us: percentile(&reads, 0.5),
        read_p99_us: percentile(&reads, 0.99),
    }
}

/// The habitual layout: a row per sample, keyed by (activity, time).
async fn bench_rows(acts: &[NewActivity], sync: Synchronous, per_batch: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("rows.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if sync == Synchronous::Full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal });
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    sqlx::query(
        "CREATE TABLE samples (activity_id INTEGER NOT NULL, kind INTEGER NOT NULL, t_ms INTEGER NOT NULL,
         value REAL NOT NULL, PRIMARY KEY (activity_id, kind, t_ms)) WITHOUT ROWID",
    )
    .execute(&pool)
    .await
    .expect("schema");
    let started = Instant::now();
    for (g, group) in acts.chunks(per_batch).enumerate() {
        let mut tx = pool.begin().await.expect("begin");
        for (k, a) in group.iter().enumerate() {
            let id = (g * per_batch + k) as i64;
            for s in &a.series[0].samples {
                sqlx::query("INSERT OR REPLACE INTO samples (activity_id, kind, t_ms, value) VALUES (?, 1, ?, ?)")
                    .bind(id)
                    .bind(s.t_ms)
                    .bind(s.value)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
            }
        }
        tx.commit().await.expect("commit");
    }
    let secs = started.elapsed().as_secs_f64();
    let mut reads = Vec::new();
    for _ in 0..5 {
        for id in 0..acts.len() as i64 {
            let t = Instant::now();
            let rows: Vec<(i64, f64)> =
                sqlx::query_as("SELECT t_ms, value FROM samples WHERE activity_id = ? AND kind = 1 ORDER BY t_ms")
                    .bind(id)
                    .fetch_all(&pool)
                    .await
                    .expect("read");
            reads.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(rows.len() as i64, PER_ACTIVITY);
        }
    }
    pool.close().await;
    reads.sort_by(f64::total_cmp);
    let total = (acts.len() as i64 * PER_ACTIVITY) as f64;
    Figures {
        samples_per_s: total / secs,
        bytes_per_sample: dir_bytes(dir.path()) as f64 / total,
        read_p50_us: percentile(&reads, 0.5),
        read_p99_us: percentile(&reads, 0.99),
    }
}

fn main() {
    let n: i64 = std::env::var("COACHD_BENCH_ACTIVITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let acts: Vec<NewActivity> = (0..n).map(|i| activity(0, i)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    println!("{n} one-hour activities, per-second HR: {} samples per run\n", n * PER_ACTIVITY);
    println!(
        "{:<44} {:>14} {:>12} {:>12} {:>12}",
        "layout / durability / activities per batch", "samples/s", "bytes/sample", "read p50", "read p99"
    );
    let pg = std::env::var("COACHD_BENCH_POSTGRES").ok();
    for (sync, name) in [(Synchronous::Full, "full"), (Synchronous::Normal, "normal")] {
        for per_batch in [1usize, 10] {
            let c = rt.block_on(bench_coachd(&acts, sync, per_batch, None));
            let r = rt.block_on(bench_rows(&acts, sync, per_batch));
            let mut rows = vec![("coachd chunks", c), ("row per sample", r)];
            // PostgreSQL commits as its server is set (synchronous_commit), so once.
            if let (Some(url), Synchronous::Full) = (pg.as_deref(), sync) {
                rows.push((
                    "coachd chunks on PostgreSQL",
                    rt.block_on(bench_coachd(&acts, sync, per_batch, Some(url))),
                ));
            }
            for (label, f) in rows {
                println!(
                    "{:<44} {:>14.0} {:>12.2} {:>9.0} µs {:>9.0} µs",
                    format!("{label} / {name} / {per_batch}"),
                    f.samples_per_s,
                    f.bytes_per_sample,
                    f.read_p50_us,
                    f.read_p99_us
                );
            }
        }
    }
}
