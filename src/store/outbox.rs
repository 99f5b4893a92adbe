//! A collector's outbox (`coachd collect`): its own small SQLite file in the collector's
//! data dir, never the hub's database.
//!
//! Every batch the Bluetooth collector records, and every file its inbox folder takes
//! in (`kind` = `file`, [`Outbox::push_file`]), is committed here first, under the next
//! sequence number (`AUTOINCREMENT`: never reused, even after the batches before it were
//! forwarded and deleted), then forwarded in order and deleted once the hub has applied
//! it. A SIGKILL at any point loses nothing committed: what the hub applied but whose
//! answer was lost is sent again, and the hub recognises it.
//!
//! The outbox is bounded (`collector.outbox_max_mb`): when full, new batches are not
//! stored (counted, logged loudly, reported to the hub) and nothing already stored is
//! ever dropped. Beside the batches it keeps what the collector needs while the hub is
//! away: the pairing list the hub last gave, each device's latest session (so a restart
//! mid-workout goes on with it), and the sensors in range with their links.

use super::collectors::ForwardedFile;
use super::devices::{Link, Pairing, StoredSession};
use super::StoreError;
use crate::model::{Batch, SeriesKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS batches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        samples INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        kind TEXT NOT NULL DEFAULT 'batch')",
    "CREATE TABLE IF NOT EXISTS sessions (
        address TEXT PRIMARY KEY,
        client_id INTEGER NOT NULL,
        external_id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        hr_samples INTEGER NOT NULL,
        avg_hr REAL,
        max_hr INTEGER,
        distance_m REAL)",
    "CREATE TABLE IF NOT EXISTS pairings (address TEXT PRIMARY KEY, client_id INTEGER NOT NULL, tz TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nearby (
        address TEXT PRIMARY KEY,
        name TEXT,
        services TEXT NOT NULL DEFAULT '',
        seen_ms INTEGER,
        link TEXT,
        note TEXT)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];

/// The batch could not be stored: the outbox is at its size limit.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "the collector's outbox is full ({bytes} bytes of {max}): this batch was NOT stored; nothing stored \
         before is dropped. Bring the hub back (or raise collector.outbox_max_mb)"
    )]
    Full { bytes: i64, max: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored batch, ready to forward.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    /// The batch as JSON, exactly as committed: sessions ([`Batch`]), or for a file a
    /// [`ForwardedFile`].
    pub body: String,
    pub samples: i64,
    pub file: bool,
}

/// What the outbox holds, for the status report and `/healthz`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backlog {
    pub batches: i64,
    pub bytes: i64,
    pub samples: i64,
    pub full: bool,
    /// Batches not stored because the outbox was full, since it was created.
    pub not_stored: i64,
}

/// A sensor the collector saw or is recording.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Nearby {
    pub address: String,
    pub name: Option<String>,
    pub services: String,
    pub seen_ms: Option<i64>,
    pub link: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Outbox {
    pool: SqlitePool,
    max_bytes: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Outbox {
    /// Open (creating) the outbox file, holding at most `max_bytes` of batches.
    pub async fn open(path: &Path, max_bytes: i64) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A power cut must not lose a batch the recorder was told is stored.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        // An outbox from before files were forwarded: its batches are all sessions.
        let has_kind: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('batches') WHERE name = 'kind'")
            .fetch_one(&pool)
            .await?;
        if has_kind == 0 {
            sqlx::query("ALTER TABLE batches ADD COLUMN kind TEXT NOT NULL DEFAULT 'batch'").execute(&pool).await?;
        }
        Ok(Self { pool, max_bytes })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn counter(&self, name: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or(0))
    }

    /// Commit a batch under the next sequence number, and remember its session for a
    /// restart. Returns the sequence number.
    pub async fn push(&self, batch: &Batch) -> Result<i64, PushError> {
        let body = serde_json::to_string(batch).map_err(|e| StoreError::Corrupt(format!("a batch as JSON: {e}")))?;
        let samples: i64 = batch.activities.iter().flat_map(|a| &a.series).map(|s| s.samples.len() as i64).sum();
        self.commit("batch", &body, samples, Some(batch)).await
    }

    /// Commit a file from the inbox folder under the next sequence number, in line with
    /// the sessions. Returns the sequence number.
    pub async fn push_file(&self, file: &ForwardedFile) -> Result<i64, PushError> {
        let body = serde_json::to_string(file).map_err(|e| StoreError::Corrupt(format!("a file as JSON: {e}")))?;
        self.commit("file", &body, 0, None).await
    }

    async fn commit(&self, kind: &str, body: &str, samples: i64, batch: Option<&Batch>) -> Result<i64, PushError> {
        let id = crate::crypto::random_token().map_err(StoreError::from)?.chars().take(32).collect::<String>();
        let hr_of = |a: &crate::model::NewActivity| {
            a.series.iter().filter(|s| s.kind == SeriesKind::Hr).map(|s| s.samples.len() as i64).sum::<i64>()
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::from)?;
        let bytes: i64 = sqlx::query_scalar("SELECT COALESCE((SELECT value FROM counters WHERE name = 'bytes'), 0)")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let size = body.len() as i64;
        if bytes + size > self.max_bytes {
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('not_stored', 1)
                 ON CONFLICT(name) DO UPDATE SET value = value + 1",
            )
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            tx.commit().await.map_err(StoreError::from)?;
            return Err(PushError::Full { bytes, max: self.max_bytes });
        }
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO batches (id, body, samples, created_ms, kind) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(&id)
        .bind(body)
        .bind(samples)
        .bind(now_ms())
        .bind(kind)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        sqlx::query(
            "INSERT INTO counters (name, value) VALUES ('bytes', ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
        )
        .bind(size)
        .bind(size)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        for a in batch.iter().flat_map(|b| &b.activities) {
            let Some((address, _)) = a.external_id.split_once('@') else { continue };
            sqlx::query(
                "INSERT INTO sessions (address, client_id, external_id, start_ms, last_ms, hr_samples, avg_hr, max_hr,
                                       distance_m)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(address) DO UPDATE SET client_id = ?2, external_id = ?3, start_ms = ?4, last_ms = ?5,
                    hr_samples = CASE WHEN sessions.external_id = ?3 THEN sessions.hr_samples + ?6 ELSE ?6 END,
                    avg_hr = ?7, max_hr = ?8, distance_m = ?9",
            )
            .bind(address)
            .bind(a.client_id)
            .bind(&a.external_id)
            .bind(a.start.timestamp_millis())
            .bind(a.end.timestamp_millis())
            .bind(hr_of(a))
            .bind(a.avg_hr)
            .bind(a.max_hr.map(i64::from))
            .bind(a.distance_m)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(seq)
    }

    /// The oldest stored batches, in order: at most `max` of them and about `max_bytes`
    /// (always at least one).
    pub async fn pending(&self, max: i64, max_bytes: usize) -> Result<Vec<Pending>, StoreError> {
        let rows: Vec<(i64, String, String, i64, String)> =
            sqlx::query_as("SELECT seq, id, body, samples, kind FROM batches ORDER BY seq LIMIT ?")
                .bind(max)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::new();
        let mut size = 0;
        for (seq, id, body, samples, kind) in rows {
            size += body.len();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(Pending { seq, id, body, samples, file: kind == "file" });
        }
        Ok(out)
    }

    /// The file committed under `seq`, if that batch is a file.
    pub async fn file(&self, seq: i64) -> Result<Option<ForwardedFile>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM batches WHERE seq = ? AND kind = 'file'")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(format!("file batch {seq}: {e}"))))
            .transpose()
    }

    /// Take one batch out of the outbox without forwarding it (a file the hub refused,
    /// once its bytes are kept in the collector's quarantine).
    pub async fn set_aside(&self, seq: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let freed: Option<i64> = sqlx::query_scalar("SELECT length(body) FROM batches WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(freed) = freed else { return Ok(false) };
        sqlx::query("DELETE FROM batches WHERE seq = ?").bind(seq).execute(&mut *tx).await?;
        sqlx::query("UPDATE counters SET value = MAX(0, value - ?) WHERE name = 'bytes'")
            .bind(freed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The hub applied everything up to `seq`: forget it.
    pub async fn acked(&self, seq: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let freed: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(length(body)), 0) FROM batches WHERE seq <= ?")
            .bind(seq)
            .fetch_one(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM batches WHERE seq <= ?").bind(seq).execute(&mut *tx).await?;
        sqlx::query("UPDATE counters SET value = MAX(0, value - ?) WHERE name = 'bytes'")
            .bind(freed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let (batches, samples): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(samples), 0) FROM batches").fetch_one(&self.pool).await?;
        let bytes = self.counter("bytes").await?;
        // Full: the next flush of a few seconds of heart rate (well under 4 KB) would not fit.
        Ok(Backlog {
            batches,
            bytes,
            samples,
            full: bytes + 4096 > self.max_bytes,
            not_stored: self.counter("not_stored").await?,
        })
    }

    /// The newest sequence number ever given (0 before the first batch).
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'batches'), 0)")
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0))
    }

    /// Replace the pairing list with the hub's.
    pub async fn set_pairings(&self, pairings: &[Pairing]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM pairings").execute(&mut *tx).await?;
        for p in pairings {
            sqlx::query("INSERT INTO pairings (address, client_id, tz) VALUES (?, ?, ?)")
                .bind(&p.address)
                .bind(p.client_id)
                .bind(p.tz.name())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pairing list the hub last gave.
    pub async fn pairings(&self) -> Result<Vec<Pairing>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT address, client_id, tz FROM pairings ORDER BY address")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(address, client_id, tz)| {
                let tz = tz.parse().map_err(|_| StoreError::Corrupt(format!("pairing {address}: time zone {tz:?}")))?;
                Ok(Pairing { address, client_id, tz })
            })
            .collect()
    }

    /// The device's latest session this collector recorded for `client`.
    pub async fn last_session(&self, client: i64, address: &str) -> Result<Option<StoredSession>, StoreError> {
        type Row = (i64, i64, i64, Option<f64>, Option<i64>, Option<f64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT start_ms, last_ms, hr_samples, avg_hr, max_hr, distance_m FROM sessions
              WHERE address = ? AND client_id = ?",
        )
        .bind(address)
        .bind(client)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(start_ms, last_ms, n, avg_hr, max_hr, distance_m)| StoredSession {
            start_ms,
            last_ms,
            hr_samples: n.max(0) as u64,
            avg_hr,
            max_hr: max_hr.and_then(|m| u16::try_from(m).ok()),
            distance_m,
        }))
    }

    /// A sensor seen nearby (as `Store::device_seen` at the hub).
    pub async fn device_seen(&self, address: &str, name: Option<&str>, services: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nearby (address, name, services, seen_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT(address) DO UPDATE SET name = COALESCE(excluded.name, nearby.name),
                 services = CASE WHEN excluded.services = '' THEN nearby.services ELSE excluded.services END,
                 seen_ms = excluded.seen_ms",
        )
        .bind(address)
        .bind(name)
        .bind(services)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A recorded device's link (None: not recording it).
    pub async fn set_device_link(&self, address: &str, link: Option<&Link>) -> Result<(), StoreError> {
        let (state, note) = match link {
            Some(Link::Connected) => (Some("connected"), None),
            Some(Link::Waiting(why)) => (Some("waiting"), Some(why.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO nearby (address, link, note) VALUES (?1, ?2, ?3)
             ON CONFLICT(address) DO UPDATE SET link = ?2, note = ?3",
        )
        .bind(address)
        .bind(state)
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn clear_device_links(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE nearby SET link = NULL, note = NULL").execute(&self.pool).await?;
        Ok(())
    }

    /// Sensors recorded now, or seen since `since_ms`.
    pub async fn nearby(&self, since_ms: i64) -> Result<Vec<Nearby>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT address, name, services, seen_ms, link, note FROM nearby
              WHERE link IS NOT NULL OR seen_ms >= ? ORDER BY address",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewActivity, Sample, Series};

    fn session(start_ms: i64, samples: std::ops::Range<i64>) -> Batch {
        let at = |ms| chrono::DateTime::from_timestamp_millis(ms).expect("time");
        let a = NewActivity {
            client_id: 1,
            external_id: format!("C0:FF:EE:00:00:01@{start_ms}"),
            start: at(start_ms),
            end: at(samples.end * 1000),
            utc_offset_s: 0,
            activity_type: "workout".into(),
            category: crate::model::Category::Cardio,
            duration_s: 1.0,
            distance_m: None,
            avg_hr: Some(120.0),
            max_hr: Some(130),
            energy_kj: None,
            content_hash: None,
            series: vec![Series {
                kind: SeriesKind::Hr,
                samples: samples.map(|s| Sample { t_ms: s * 1000, value: 120.0 }).collect(),
            }],
            sets: None,
            hr_zones: None,
        };
        Batch { activities: vec![a], ..Batch::new("ble") }
    }

    #[tokio::test]
    async fn batches_keep_their_order_and_numbers_and_a_full_outbox_drops_nothing_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("outbox.db");
        let one = session(0, 0..5);
        let size = serde_json::to_string(&one).expect("json").len() as i64;
        // Room for three batches of this size.
        let outbox = Outbox::open(&path, size * 3 + size / 2).await.expect("open");
        for s in 0..3 {
            assert_eq!(outbox.push(&session(0, s * 5..s * 5 + 5)).await.expect("push"), s + 1);
        }
        let full = outbox.push(&session(0, 15..20)).await;
        assert!(matches!(full, Err(PushError::Full { .. })), "{full:?}");
        let backlog = outbox.backlog().await.expect("backlog");
        assert_eq!((backlog.batches, backlog.samples, backlog.not_stored), (3, 15, 1));
        let pending = outbox.pending(10, 1 << 20).await.expect("pending");
        assert_eq!(pending.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let back: Batch = serde_json::from_str(&pending[1].body).expect("json");
        assert_eq!(back, session(0, 5..10), "stored exactly as recorded");
        // The session goes on after a restart: every sample counted.
        let stored = outbox.last_session(1, "C0:FF:EE:00:00:01").await.expect("read").expect("a session");
        assert_eq!((stored.start_ms, stored.hr_samples), (0, 15));
        // Forwarded: forgotten, and the numbers are never given again, even reopened.
        assert_eq!(outbox.acked(2).await.expect("ack"), 2);
        outbox.close().await;
        let outbox = Outbox::open(&path, size * 3 + size / 2).await.expect("open again");
        assert_eq!(outbox.pending(10, 1 << 20).await.expect("pending")[0].seq, 3);
        assert_eq!(outbox.push(&session(0, 20..25)).await.expect("room again"), 4);
        assert_eq!(outbox.backlog().await.expect("backlog").batches, 2);
        outbox.acked(4).await.expect("ack");
        assert_eq!(outbox.push(&session(0, 25..30)).await.expect("push"), 5);
        assert_eq!(outbox.last_seq().await.expect("seq"), 5);
    }

    #[tokio::test]
    async fn files_take_their_turn_among_the_sessions_and_a_file_set_aside_frees_its_room() {
        let dir = tempfile::tempdir().expect("dir");
        let outbox = Outbox::open(&dir.path().join("outbox.db"), 1 << 20).await.expect("open");
        let file = ForwardedFile {
            client: "ana".into(),
            name: "run.fit".into(),
            sha256: "00".repeat(32),
            size: 3,
            data: "AAEC".into(),
        };
        assert_eq!(outbox.push(&session(0, 0..5)).await.expect("push"), 1);
        assert_eq!(outbox.push_file(&file).await.expect("push file"), 2);
        assert_eq!(outbox.push(&session(0, 5..10)).await.expect("push"), 3);
        let pending = outbox.pending(10, 1 << 20).await.expect("pending");
        let kinds: Vec<(i64, bool)> = pending.iter().map(|p| (p.seq, p.file)).collect();
        assert_eq!(kinds, [(1, false), (2, true), (3, false)], "one sequence, in order");
        assert_eq!(outbox.file(2).await.expect("read"), Some(file));
        assert_eq!(outbox.file(1).await.expect("read"), None, "a session is not a file");
        let before = outbox.backlog().await.expect("backlog").bytes;
        assert!(outbox.set_aside(2).await.expect("set aside"));
        let after = outbox.backlog().await.expect("backlog");
        assert_eq!((after.batches, after.bytes), (2, before - pending[1].body.len() as i64));
        let left: Vec<i64> = outbox.pending(10, 1 << 20).await.expect("pending").iter().map(|p| p.seq).collect();
        assert_eq!(left, [1, 3]);
        assert!(!outbox.set_aside(2).await.expect("again"), "gone already");
    }

    #[tokio::test]
    async fn an_outbox_from_before_files_keeps_its_batches_as_sessions() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("outbox.db");
        {
            let pool = SqlitePool::connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                    .expect("url")
                    .create_if_missing(true),
            )
            .await
            .expect("pool");
            sqlx::query(
                "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, body TEXT NOT NULL,
                                       samples INTEGER NOT NULL, created_ms INTEGER NOT NULL)",
            )
            .execute(&pool)
            .await
            .expect("old table");
            sqlx::query("INSERT INTO batches (id, body, samples, created_ms) VALUES ('a', '{}', 0, 1)")
                .execute(&pool)
                .await
                .expect("old row");
            pool.close().await;
        }
        let outbox = Outbox::open(&path, 1 << 20).await.expect("open");
        let pending = outbox.pending(10, 1 << 20).await.expect("pending");
        assert_eq!((pending[0].seq, pending[0].file), (1, false));
    }
}
