//! Rows in every table of the schema, written with plain SQL (as any version of coachd
//! could have written them), for the removal and schema-upgrade tests.

use sqlx::SqlitePool;

/// A pool on a database file, without coachd's migrations.
pub async fn pool(path: &std::path::Path) -> SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true).foreign_keys(true);
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open database")
}

async fn exec(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap_or_else(|e| panic!("{e}: {sql}"));
}

async fn id(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{e}: {sql}"))
}

/// What [`fill_v1`] made for one client.
#[derive(Clone, Debug)]
pub struct Made {
    pub client: i64,
    pub account: i64,
    pub activity: i64,
    pub homework: i64,
    pub checkin: i64,
    /// The activity's content hash, hex.
    pub hash: String,
}

/// A client `name` with rows in every table of migration 0001 (`n` keeps keys apart).
pub async fn fill_v1(pool: &SqlitePool, name: &str, n: i64) -> Made {
    let client = id(
        pool,
        &format!(
            "INSERT INTO clients (name, tz, hr_max, birth_year, created_ms) VALUES ('{name}', 'Europe/Berlin', 185, 1990, 1) RETURNING id"
        ),
    )
    .await;
    exec(pool, "INSERT OR IGNORE INTO trainers (name, created_ms) VALUES ('coach', 1)").await;
    exec(pool, "INSERT OR IGNORE INTO meta (key, value) VALUES ('fixture', 'first release')").await;
    exec(
        pool,
        &format!("UPDATE clients SET trainer_id = (SELECT id FROM trainers WHERE name = 'coach') WHERE id = {client}"),
    )
    .await;
    exec(
        pool,
        &format!("INSERT INTO devices (address, name, client_id, paired_ms) VALUES ('AA:BB:CC:DD:EE:0{n}', 'strap', {client}, 1)"),
    )
    .await;
    let account = id(
        pool,
        &format!(
            "INSERT INTO accounts (client_id, provider, external_user_id, state, access_token, last_sync_ms, created_ms, updated_ms)
             VALUES ({client}, 'strava', 'athlete-{n}', 'active', x'0011', 1700000000000, 1, 1) RETURNING id"
        ),
    )
    .await;
    let hash = format!("{:064x}", 0xabc0 + n);
    let mut data = Vec::new();
    let start = 1_763_650_000_000i64 + n * 86_400_000;
    coachd::store::codec::encode(&[(start, 120), (start + 1000, 125), (start + 2000, 130)], &mut data);
    let data_hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let activity = id(
        pool,
        &format!(
            "INSERT INTO activities (client_id, source, external_id, start_ms, end_ms, utc_offset_s, type, category,
                                     duration_s, distance_m, avg_hr, max_hr, content_hash, hr_samples, updated_ms)
             VALUES ({client}, 'fit', 'run-{n}', {start}, {start} + 3000, 3600, 'run', 'cardio', 3.0, 12.5, 125, 130,
                     x'{hash}', 3, 1) RETURNING id"
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO sample_chunks (activity_id, kind, chunk_ms, first_ms, last_ms, n, data)
             VALUES ({activity}, 1, {start}, {start}, {start} + 2000, 3, x'{data_hex}');
             INSERT INTO strength_sets (activity_id, seq, exercise, reps) VALUES ({activity}, 0, 'push_up', 12);
             INSERT INTO daily_metrics (client_id, date, metric, source, value, updated_ms)
                 VALUES ({client}, '2026-11-20', 'steps', 'apple', 8000 + {n}, 1);
             INSERT INTO metric_buckets (client_id, metric, source, t_ms, value) VALUES ({client}, 'steps', 'hae', {start}, 40);
             INSERT INTO push_tokens (token_hash, client_id, created_ms) VALUES (x'0{n}', {client}, 1);
             INSERT INTO dirty_dates (client_id, date) VALUES ({client}, '2026-11-03');
             INSERT INTO cursors (source, stream, value, updated_ms) VALUES
                 ('strava', 'account:{account}', 'x', 1), ('fit', 'sha256:{hash}', 'run.fit', 1);"
        ),
    )
    .await;
    let rule = coachd::engine::phrase::parse("10 push-ups every day").expect("phrase");
    let rule = serde_json::to_string(&rule).expect("json").replace('\'', "''");
    let homework = id(
        pool,
        &format!(
            "INSERT INTO homework (client_id, text, rule, from_date, created_ms)
             VALUES ({client}, '10 push-ups', '{rule}', '2026-11-01', 1) RETURNING id"
        ),
    )
    .await;
    let checkin = id(
        pool,
        &format!(
            "INSERT INTO checkins (client_id, homework_id, date, value, note, created_ms)
             VALUES ({client}, {homework}, '2026-11-04', 10, 'done it', 1) RETURNING id"
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO excuses (homework_id, date, reason, created_ms) VALUES ({homework}, '2026-11-05', 'ill', 1);"
        ),
    )
    .await;
    // The verdict cache as the first release kept it: a row per occurrence (migration 12
    // replaced it by a row per month, which `fill_later` writes).
    if has_column(pool, "verdicts", "occurrence").await {
        exec(
            pool,
            &format!(
                "INSERT INTO verdicts (homework_id, date, verdict, occurrence) VALUES ({homework}, '2026-11-02', 'done', '{{}}');"
            ),
        )
        .await;
    }
    Made { client, account, activity, homework, checkin, hash }
}

/// Rows of the client in every table later migrations added or remade (0002 to 0014).
pub async fn fill_later(pool: &SqlitePool, m: &Made, n: i64) {
    let (client, homework, checkin, account, activity) = (m.client, m.homework, m.checkin, m.account, m.activity);
    exec(
        pool,
        &format!(
            "INSERT INTO sessions (token_hash, trainer_id, csrf, created_ms, expires_ms)
                 SELECT x'5{n}', id, 'csrf', 1, 2 FROM trainers WHERE name = 'coach';
             INSERT INTO share_links (token_hash, client_id, created_ms) VALUES (x'6{n}', {client}, 1);
             INSERT INTO reflections (client_id, week, rating, note, created_ms) VALUES ({client}, '2026-11-16', 7, 'ok', 1);
             INSERT INTO oauth_states (state, provider, client_id, redirect, expires_ms)
                 VALUES ('state-{n}', 'polar', {client}, 'http://x/cb', 1);
             INSERT INTO benchmarks (client_id, name, unit, value, homework_id, date, created_ms)
                 VALUES ({client}, 'max push-ups', 'reps', 18, {homework}, '2026-11-10', 1);
             INSERT INTO answers (checkin_id, homework_id, occurrence, question, number, created_ms)
                 VALUES ({checkin}, {homework}, '2026-11-04', 0, 8, 1);
             INSERT INTO meta (key, value) VALUES ('skipped:{account}', '[]');
             INSERT INTO channels (client_id, kind, url, shown, created_ms, updated_ms)
                 VALUES ({client}, 'ntfy', x'0{n}0{n}', 'ntfy https://ntfy.example.org/t{n}', 1, 1);
             INSERT OR IGNORE INTO collectors (id, name, token_hash, created_ms) VALUES (1, 'fixture', x'01', 1);
             INSERT INTO collector_sessions (collector_id, activity_id, kind, last_ms) VALUES (1, {activity}, 1, 1);
             INSERT INTO outbox (client_id, kind, homework_id, occurrence, title, body, state, due_ms, next_try_ms,
                                 expires_ms, created_ms, updated_ms)
                 VALUES ({client}, 'nudge', {homework}, '2026-11-04', '10 push-ups today?', 'Tap when done.', 'sent',
                         1, 1, 2, 1, 1);"
        ),
    )
    .await;
    if has_column(pool, "verdicts", "codes").await {
        let codes = format!("x'01{}'", "00".repeat(30));
        // Migration 16 made the detail binary (postcard): one entry, day 1, 10.0 of 10.0,
        // not self-reported, no evidence.
        let binary: bool =
            sqlx::query_scalar("SELECT type = 'BLOB' FROM pragma_table_info('verdicts') WHERE name = 'detail'")
                .fetch_one(pool)
                .await
                .expect("detail type");
        let detail = if binary { "x'0101000000000000244000000000000024400000'" } else { "'[[1,10.0,10.0,false,[]]]'" };
        exec(
            pool,
            &format!(
                "INSERT INTO verdicts (homework_id, month, codes, detail)
                 VALUES ({homework}, 24322, {codes}, {detail});"
            ),
        )
        .await;
    }
}

async fn has_column(pool: &SqlitePool, table: &str, column: &str) -> bool {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
        .bind(table)
        .bind(column)
        .fetch_one(pool)
        .await
        .expect("table info");
    n > 0
}

/// Every table in the database, but SQLite's own.
pub async fn tables(pool: &SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .fetch_all(pool)
        .await
        .expect("tables")
}

pub async fn count(pool: &SqlitePool, table: &str) -> i64 {
    id(pool, &format!("SELECT count(*) FROM \"{table}\"")).await
}
