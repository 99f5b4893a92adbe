//! Reading a Gadgetbridge database (the Android app's `Gadgetbridge.db` export): the
//! one place coachd runs SQL against a database it does not own. It lives here because
//! SQL lives in `store/`; it reads only, and only from a private copy of the file, so a
//! database that Syncthing or the app is rewriting is never read half-way.
//!
//! Tables and columns are those Gadgetbridge's schema generator (greenDAO) creates:
//! `DEVICE` (`_id`, `NAME`, `IDENTIFIER`), the per-device sample tables below with
//! `TIMESTAMP` (unix seconds) and `DEVICE_ID`, sleep-stage tables with millisecond
//! timestamps, and `BASE_ACTIVITY_SUMMARY` (workouts, `START_TIME`/`END_TIME` in ms).

use super::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::{Path, PathBuf};

/// The device families coachd reads, by their activity-sample table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Mi Band, Amazfit, Zepp (4-byte samples).
    Huami,
    /// Newer Huami/Zepp devices (8-byte samples).
    HuamiExtended,
    Xiaomi,
    Garmin,
    Pebble,
    BangleJs,
}

impl Family {
    pub const ALL: [Family; 6] =
        [Self::Huami, Self::HuamiExtended, Self::Xiaomi, Self::Garmin, Self::Pebble, Self::BangleJs];

    pub fn table(self) -> &'static str {
        match self {
            Self::Huami => "MI_BAND_ACTIVITY_SAMPLE",
            Self::HuamiExtended => "HUAMI_EXTENDED_ACTIVITY_SAMPLE",
            Self::Xiaomi => "XIAOMI_ACTIVITY_SAMPLE",
            Self::Garmin => "GARMIN_ACTIVITY_SAMPLE",
            Self::Pebble => "PEBBLE_HEALTH_ACTIVITY_SAMPLE",
            Self::BangleJs => "BANGLE_JSACTIVITY_SAMPLE",
        }
    }

    /// Pebble keeps its kinds in an overlay table, not on the samples.
    fn has_kind(self) -> bool {
        self != Self::Pebble
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GbDevice {
    pub id: i64,
    pub name: String,
    /// The Bluetooth address, stable across database exports.
    pub identifier: String,
}

/// One activity sample (usually a minute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GbSample {
    pub t_s: i64,
    pub steps: i64,
    pub kind: Option<i64>,
    pub hr: i64,
}

/// (TIMESTAMP, STEPS, RAW_KIND, HEART_RATE) as stored.
type SampleRow = (i64, Option<i64>, Option<i64>, Option<i64>);

/// A workout the device recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GbWorkout {
    pub start_ms: i64,
    pub end_ms: i64,
    pub kind: i64,
    pub name: Option<String>,
}

/// A Gadgetbridge database, opened read-only from a private copy that is removed when
/// this is dropped.
pub struct GadgetbridgeDb {
    pool: SqlitePool,
    copy: PathBuf,
    tables: Vec<String>,
}

impl Drop for GadgetbridgeDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.copy);
    }
}

fn stamp(path: &Path) -> std::io::Result<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.modified()?))
}

impl GadgetbridgeDb {
    /// Copy `path` beside itself (a hidden file, which the inbox passes over; else into
    /// the system's temporary folder) and open the copy. Refused when the file changed
    /// while it was copied (it is being written), or when the copy is not a sound SQLite
    /// database, or has no Gadgetbridge `DEVICE` table.
    pub async fn open_copy(path: &Path) -> Result<Self, StoreError> {
        let bad = |m: String| StoreError::Invalid(vec![m]);
        let name = format!(".coachd-copy-{}.db", &crate::crypto::random_token()?[..16]);
        let before = stamp(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let beside = path.parent().map(|d| d.join(&name));
        let copy = match beside.filter(|c| std::fs::copy(path, c).is_ok()) {
            Some(c) => c,
            None => {
                let c = std::env::temp_dir().join(&name);
                std::fs::copy(path, &c).map_err(|e| bad(format!("cannot copy {}: {e}", path.display())))?;
                c
            }
        };
        let after = stamp(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if before != after {
            let _ = std::fs::remove_file(&copy);
            return Err(bad("the database changed while it was read: it is still being written; import it once \
                            the export or sync has finished"
                .into()));
        }
        let options = SqliteConnectOptions::new().filename(&copy).read_only(true).immutable(true);
        let pool = match SqlitePoolOptions::new().max_connections(1).connect_with(options).await {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&copy);
                return Err(bad(format!("not a readable SQLite database: {e}")));
            }
        };
        let mut db = Self { pool, copy, tables: Vec::new() };
        let check: String =
            sqlx::query_scalar("PRAGMA quick_check").fetch_one(&db.pool).await.unwrap_or_else(|e| e.to_string());
        if check != "ok" {
            return Err(bad(format!("the database is damaged or incomplete ({check}); export it again")));
        }
        db.tables =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&db.pool).await?;
        if !db.has("DEVICE") {
            return Err(bad("an SQLite database, but not a Gadgetbridge export (it has no DEVICE table)".into()));
        }
        Ok(db)
    }

    fn has(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    pub fn families(&self) -> Vec<Family> {
        Family::ALL.into_iter().filter(|f| self.has(f.table())).collect()
    }

    pub async fn devices(&self) -> Result<Vec<GbDevice>, StoreError> {
        let rows: Vec<(i64, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT _id, NAME, IDENTIFIER FROM DEVICE ORDER BY _id").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, identifier)| GbDevice {
                id,
                name: name.unwrap_or_default(),
                identifier: identifier.filter(|i| !i.is_empty()).unwrap_or_else(|| format!("device-{id}")),
            })
            .collect())
    }

    /// A device's samples in `family`'s table from `since_s` on, in time order.
    pub async fn samples(&self, family: Family, device: i64, since_s: i64) -> Result<Vec<GbSample>, StoreError> {
        if !self.has(family.table()) {
            return Ok(Vec::new());
        }
        let kind = if family.has_kind() { "RAW_KIND" } else { "NULL" };
        // The table name comes from the fixed list above, never from the file.
        let sql = format!(
            "SELECT TIMESTAMP, STEPS, {kind}, HEART_RATE FROM {} WHERE DEVICE_ID = ? AND TIMESTAMP >= ?
             ORDER BY TIMESTAMP",
            family.table()
        );
        let rows: Vec<SampleRow> = sqlx::query_as(&sql).bind(device).bind(since_s).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(t_s, steps, kind, hr)| GbSample { t_s, steps: steps.unwrap_or(-1), kind, hr: hr.unwrap_or(-1) })
            .collect())
    }

    /// Pebble's sleep overlays: (from s, to s, raw kind).
    pub async fn pebble_overlays(&self, device: i64, since_s: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        if !self.has("PEBBLE_HEALTH_ACTIVITY_OVERLAY") {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT TIMESTAMP_FROM, TIMESTAMP_TO, RAW_KIND FROM PEBBLE_HEALTH_ACTIVITY_OVERLAY
             WHERE DEVICE_ID = ? AND TIMESTAMP_TO >= ? ORDER BY TIMESTAMP_FROM",
        )
        .bind(device)
        .bind(since_s)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sleep-stage rows (ms, stage) of a device: Garmin's mark each stage's end, Xiaomi's
    /// its start.
    pub async fn sleep_stages(
        &self,
        family: Family,
        device: i64,
        since_ms: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let table = match family {
            Family::Garmin => "GARMIN_SLEEP_STAGE_SAMPLE",
            Family::Xiaomi => "XIAOMI_SLEEP_STAGE_SAMPLE",
            _ => return Ok(Vec::new()),
        };
        if !self.has(table) {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT TIMESTAMP, STAGE FROM {table} WHERE DEVICE_ID = ? AND TIMESTAMP >= ? ORDER BY TIMESTAMP");
        Ok(sqlx::query_as(&sql).bind(device).bind(since_ms).fetch_all(&self.pool).await?)
    }

    /// Xiaomi's nights: (bedtime ms, wake-up ms).
    pub async fn xiaomi_nights(&self, device: i64, since_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        if !self.has("XIAOMI_SLEEP_TIME_SAMPLE") {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT TIMESTAMP, WAKEUP_TIME FROM XIAOMI_SLEEP_TIME_SAMPLE
             WHERE DEVICE_ID = ? AND WAKEUP_TIME >= ? ORDER BY TIMESTAMP",
        )
        .bind(device)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Workouts of a device that ended at `since_ms` or later.
    pub async fn workouts(&self, device: i64, since_ms: i64) -> Result<Vec<GbWorkout>, StoreError> {
        if !self.has("BASE_ACTIVITY_SUMMARY") {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT START_TIME, END_TIME, ACTIVITY_KIND, NAME FROM BASE_ACTIVITY_SUMMARY
             WHERE DEVICE_ID = ? AND END_TIME >= ? ORDER BY START_TIME",
        )
        .bind(device)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(start_ms, end_ms, kind, name)| GbWorkout { start_ms, end_ms, kind, name }).collect())
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}
