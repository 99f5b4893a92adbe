//! Backups and restores.
//!
//! A backup is one zip file: `coachd.db` (a consistent copy made by SQLite's
//! `VACUUM INTO` while the daemon keeps writing), `coachd.toml` (the configuration file,
//! when there is one), `backup.json` (what it is: coachd version, schema version, time,
//! the key's fingerprint, counts) and, only with `--with-key`, `coachd.key`.
//!
//! The key is left out by default because it decrypts the cloud providers' tokens stored
//! in the database: a backup without it can be kept anywhere, and one with it must be
//! guarded like the key. A restore without the key that sealed the tokens keeps every
//! row but forgets those tokens (they cannot be opened), so each cloud account must be
//! connected again; the restore names them.
//!
//! A restore refuses while a daemon runs on the data dir (the daemon holds an `flock` on
//! `DATA/coachd.lock`; so does the restore, so the daemon cannot start half-way), checks
//! the file (SQLite's integrity check, coachd's tables, a schema version this build
//! knows), keeps the replaced database aside as `coachd.db.before-restore-<time>` and
//! opens the restored one, which migrates it if it is older.

use super::{App, AppError, AppResult};
use crate::crypto;
use crate::paths::{try_lock, write_new_private, DataDir};
use crate::store::backup::{known_schema_version, DatabaseFacts};
use crate::store::{RowCounts, Store, StoreOptions};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why the key is not in a backup unless asked, printed by `coachd backup`.
pub const KEY_NOTE: &str = "the key (coachd.key) is not in the backup: it decrypts the cloud providers' tokens in the \
database, so the backup alone opens no account. Restored without this key, every row comes back but each cloud \
account must be connected again (`coachd connect PROVIDER CLIENT`). Keep a copy of the key apart (a password \
manager), or use --with-key and guard the backup like the key.";

/// Printed beside a backup that holds the key.
pub const WITH_KEY_NOTE: &str = "this backup holds the key (coachd.key), which decrypts the cloud providers' tokens: \
keep it as private as the key itself.";

const DAILY_PREFIX: &str = "coachd-daily-";
const MANUAL_PREFIX: &str = "coachd-backup-";
const MANIFEST: &str = "backup.json";
const DB_MEMBER: &str = "coachd.db";
const CONFIG_MEMBER: &str = "coachd.toml";
const KEY_MEMBER: &str = "coachd.key";

/// What `backup.json` in a backup says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub coachd_version: String,
    pub schema_version: i64,
    pub created: DateTime<Utc>,
    pub key_fingerprint: String,
    pub with_key: bool,
    pub with_config: bool,
    pub counts: RowCounts,
}

/// A backup that was written.
#[derive(Clone, Debug, Serialize)]
pub struct BackupMade {
    pub path: PathBuf,
    pub bytes: u64,
    pub manifest: Manifest,
    /// Older daily backups deleted by the retention setting.
    pub pruned: Vec<PathBuf>,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct Restored {
    pub from: PathBuf,
    pub database: PathBuf,
    /// Where the database it replaced was kept (None: there was none).
    pub kept_aside: Option<PathBuf>,
    pub schema_before: i64,
    pub schema_now: i64,
    pub counts: RowCounts,
    /// The backup's key was put in place (the one it replaced kept aside here, if any).
    pub key_restored: bool,
    pub key_aside: Option<PathBuf>,
    /// The backup's configuration was written (the file it replaced kept aside here).
    pub config_restored: bool,
    pub config_aside: Option<PathBuf>,
    /// (client, provider) of each cloud account whose tokens could not be kept.
    pub reconnect: Vec<(String, String)>,
}

/// A zip member's time (zip keeps DOS times without a zone; UTC here); 1980 if out of range.
pub(super) fn zip_time(t: DateTime<Utc>) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    let part = |v: u32| u8::try_from(v).unwrap_or(0);
    u16::try_from(t.year())
        .ok()
        .and_then(|y| {
            zip::DateTime::from_date_and_time(
                y,
                part(t.month()),
                part(t.day()),
                part(t.hour()),
                part(t.minute()),
                part(t.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn runtime(e: impl Into<anyhow::Error>) -> AppError {
    AppError::Runtime(e.into())
}

impl App {
    fn files_or_err(&self) -> AppResult<&super::Files> {
        self.files.as_ref().ok_or_else(|| AppError::input("this coachd was not opened on a data dir; backups need one"))
    }

    /// Write a backup to `out` (a file that must not exist yet; a directory gets a
    /// dated file in it), or `DATA/backups/coachd-backup-<time>.zip`.
    pub async fn backup(&self, out: Option<&Path>, with_key: bool) -> AppResult<BackupMade> {
        let files = self.files_or_err()?.clone();
        let now = Utc::now();
        let name = format!("{MANUAL_PREFIX}{}.zip", stamp(now));
        let path = match out {
            None => files.data.backups().join(name),
            Some(p) if p.is_dir() => p.join(name),
            Some(p) => p.to_path_buf(),
        };
        if path.exists() {
            return Err(AppError::input(format!(
                "{} exists already; name a new file, or remove that one first",
                path.display()
            )));
        }
        let made = self.write_backup(&files, &path, with_key, now).await?;
        Ok(BackupMade { pruned: Vec::new(), ..made })
    }

    async fn write_backup(
        &self,
        files: &super::Files,
        path: &Path,
        with_key: bool,
        now: DateTime<Utc>,
    ) -> AppResult<BackupMade> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let db_copy = dir.join(format!(".{file_name}.db.tmp-{}", std::process::id()));
        let zip_tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&db_copy);
        let _ = std::fs::remove_file(&zip_tmp);
        let result = async {
            self.store
                .backup_to(&db_copy)
                .await
                .with_context(|| format!("copying the database to {}", dir.display()))?;
            let counts = self.store.row_counts().await?;
            let facts = Store::inspect_file(&db_copy).await.context("checking the copy")?;
            let config = match std::fs::read(&files.config) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(runtime(anyhow::Error::new(e).context(format!("reading {}", files.config.display()))))
                }
            };
            let key = if with_key {
                Some(
                    std::fs::read(files.data.key())
                        .with_context(|| format!("reading {}", files.data.key().display()))?,
                )
            } else {
                None
            };
            let manifest = Manifest {
                format: 1,
                coachd_version: env!("CARGO_PKG_VERSION").into(),
                schema_version: facts.schema_version,
                created: now,
                key_fingerprint: facts.key_fingerprint.clone().unwrap_or_default(),
                with_key,
                with_config: config.is_some(),
                counts,
            };
            let (db_copy, zip_tmp2, manifest2) = (db_copy.clone(), zip_tmp.clone(), manifest.clone());
            tokio::task::spawn_blocking(move || write_zip(&zip_tmp2, &manifest2, &db_copy, config, key))
                .await
                .map_err(runtime)?
                .with_context(|| format!("writing {}", zip_tmp.display()))?;
            std::fs::rename(&zip_tmp, path).with_context(|| format!("moving the backup to {}", path.display()))?;
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if let Err(e) = self.store.set_last_backup(now.timestamp_millis(), &path.display().to_string()).await {
                tracing::warn!(error = %e, "recording the backup's time failed");
            }
            Ok(BackupMade { path: path.to_path_buf(), bytes, manifest, pruned: Vec::new() })
        }
        .await;
        let _ = std::fs::remove_file(&db_copy);
        let _ = std::fs::remove_file(&zip_tmp);
        result
    }

    /// The daemon's daily backup, when the newest in `DATA/backups/` is a day old or
    /// there is none: written, then the oldest beyond `backup.retention` deleted.
    pub async fn daily_backup_if_due(&self, now: DateTime<Utc>) -> AppResult<Option<BackupMade>> {
        let files = self.files_or_err()?.clone();
        let dir = files.data.backups();
        // What a daily backup cut short left (only the one daemon makes them).
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!(".{DAILY_PREFIX}")) && name.contains(".tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let dailies = daily_backups(&dir);
        let newest = dailies.last().and_then(|p| daily_time(p));
        if newest.is_some_and(|t| now - t < chrono::Duration::hours(24) && t <= now) {
            return Ok(None);
        }
        let path = dir.join(format!("{DAILY_PREFIX}{}.zip", stamp(now)));
        if path.exists() {
            return Ok(None);
        }
        let mut made = self.write_backup(&files, &path, false, now).await?;
        let dailies = daily_backups(&dir);
        let keep = self.config.backup.retention.max(1) as usize;
        if dailies.len() > keep {
            for old in &dailies[..dailies.len() - keep] {
                match std::fs::remove_file(old) {
                    Ok(()) => made.pruned.push(old.clone()),
                    Err(e) => tracing::warn!(file = %old.display(), error = %e, "deleting an old backup failed"),
                }
            }
        }
        Ok(Some(made))
    }

    /// When the last backup (daily or `coachd backup`) was made, and its file.
    pub async fn last_backup(&self) -> AppResult<Option<(DateTime<Utc>, String)>> {
        Ok(self.store.last_backup().await?.and_then(|(ms, path)| Some((DateTime::from_timestamp_millis(ms)?, path))))
    }
}

/// The daily backups in `dir`, oldest first (their names sort by time).
fn daily_backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(DAILY_PREFIX) && n.ends_with(".zip"))
        })
        .collect();
    found.sort();
    found
}

fn daily_time(path: &Path) -> Option<DateTime<Utc>> {
    let name = path.file_name()?.to_str()?;
    let text = name.strip_prefix(DAILY_PREFIX)?.strip_suffix(".zip")?;
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}

fn write_zip(
    path: &Path,
    manifest: &Manifest,
    db: &Path,
    config: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use zip::write::SimpleFileOptions;
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600)
        .last_modified_time(zip_time(manifest.created));
    zip.start_file(MANIFEST, opts)?;
    zip.write_all(&serde_json::to_vec_pretty(manifest)?)?;
    zip.start_file(DB_MEMBER, opts.large_file(true))?;
    std::io::copy(&mut std::fs::File::open(db)?, &mut zip)?;
    if let Some(config) = config {
        zip.start_file(CONFIG_MEMBER, opts)?;
        zip.write_all(&config)?;
    }
    if let Some(key) = key {
        zip.start_file(KEY_MEMBER, opts)?;
        zip.write_all(&key)?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    inner.get_ref().sync_all()?;
    Ok(())
}

/// What was read from a backup file: the database (already written to a temporary
/// file), and the members beside it.
struct Unpacked {
    manifest: Option<Manifest>,
    config: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

/// Read `file` (a backup zip, or a bare SQLite database file) and write its database to `db`.
fn unpack(file: &Path, db: &Path) -> AppResult<Unpacked> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = file.display();
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(file).map_err(|e| AppError::input(format!("cannot read {shown}: {e}")))?;
    let n = f.read(&mut head).map_err(|e| AppError::input(format!("cannot read {shown}: {e}")))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
        .with_context(|| format!("creating {}", db.display()))?;
    if n == 16 && &head == b"SQLite format 3\0" {
        drop(f);
        let mut f = std::fs::File::open(file).with_context(|| format!("reading {shown}"))?;
        std::io::copy(&mut f, &mut out).with_context(|| format!("copying {shown}"))?;
        out.sync_all().context("syncing the copy")?;
        return Ok(Unpacked { manifest: None, config: None, key: None });
    }
    if n < 4 || &head[..4] != b"PK\x03\x04" {
        return Err(AppError::input(format!(
            "{shown} is neither a coachd backup (a zip made by `coachd backup`) nor an SQLite database file"
        )));
    }
    drop(f);
    let f = std::fs::File::open(file).with_context(|| format!("reading {shown}"))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| AppError::input(format!("{shown} is not a readable zip: {e}")))?;
    let mut small = |name: &str, limit: u64| -> AppResult<Option<Vec<u8>>> {
        match zip.by_name(name) {
            Ok(m) => {
                let mut bytes = Vec::new();
                m.take(limit).read_to_end(&mut bytes).map_err(|e| AppError::input(format!("{shown}: {name}: {e}")))?;
                Ok(Some(bytes))
            }
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(AppError::input(format!("{shown}: {name}: {e}"))),
        }
    };
    let manifest = match small(MANIFEST, 1 << 20)? {
        Some(bytes) => Some(
            serde_json::from_slice::<Manifest>(&bytes)
                .map_err(|e| AppError::input(format!("{shown}: {MANIFEST} is not a coachd backup manifest: {e}")))?,
        ),
        None => None,
    };
    let config = small(CONFIG_MEMBER, 1 << 20)?;
    let key = small(KEY_MEMBER, 1024)?;
    let mut member = zip.by_name(DB_MEMBER).map_err(|_| {
        AppError::input(format!("{shown} holds no {DB_MEMBER}: it is not a backup made by `coachd backup`"))
    })?;
    std::io::copy(&mut member, &mut out).map_err(|e| AppError::input(format!("{shown}: {DB_MEMBER}: {e}")))?;
    out.sync_all().context("syncing the copy")?;
    Ok(Unpacked { manifest, config, key })
}

/// Rename `path` (and its `-wal` and `-shm` beside it) to `aside` (and the same
/// suffixes), so an SQLite database kept aside stays whole and openable.
fn move_database(path: &Path, aside: &Path) -> std::io::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    for suffix in ["-wal", "-shm", ""] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        if Path::new(&from).exists() {
            std::fs::rename(&from, &to)?;
        }
    }
    Ok(true)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Put a backup back into the data dir (see the module doc). `keep_config`: leave the
/// configuration file as it is. Runs without an open store: the daemon must be stopped.
pub async fn restore(
    data: &DataDir,
    config_path: &Path,
    file: &Path,
    keep_config: bool,
    config: &crate::config::Config,
) -> AppResult<Restored> {
    let opts = &config.store.options();
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data.root())
            .with_context(|| format!("creating data dir {}", data.root().display()))?;
    }
    let _lock = match try_lock(&data.lock_file(), "restore")
        .with_context(|| format!("locking {}", data.lock_file().display()))?
    {
        Ok(lock) => lock,
        Err(holder) => {
            return Err(AppError::input(format!(
                "a coachd daemon is running on {} ({holder}): stop it first (`systemctl stop coachd`, or Ctrl-C), \
                 then restore; nothing was changed",
                data.root().display()
            )))
        }
    };
    let database = data.database();
    let incoming = with_suffix(&database, &format!(".restoring-{}", std::process::id()));
    let _ = std::fs::remove_file(&incoming);
    let pg = if config.store.is_postgres() { Some(config.store.postgres().map_err(AppError::input)?) } else { None };
    let result = restore_locked(data, config_path, file, keep_config, opts, pg.as_ref(), &incoming).await;
    let _ = std::fs::remove_file(&incoming);
    result
}

async fn restore_locked(
    data: &DataDir,
    config_path: &Path,
    file: &Path,
    keep_config: bool,
    opts: &StoreOptions,
    pg: Option<&crate::store::PgOptions>,
    incoming: &Path,
) -> AppResult<Restored> {
    let database = data.database();
    let (src, dst) = (file.to_path_buf(), incoming.to_path_buf());
    let unpacked = tokio::task::spawn_blocking(move || unpack(&src, &dst)).await.map_err(runtime)??;
    let facts: DatabaseFacts = match Store::inspect_file(incoming).await {
        Ok(f) => f,
        Err(e @ crate::store::StoreError::TooNew { .. }) => return Err(AppError::input(e.to_string())),
        Err(crate::store::StoreError::Invalid(p)) => {
            return Err(AppError::input(format!("{}; nothing was changed", p.join("; "))))
        }
        Err(e) => return Err(runtime(anyhow::Error::new(e).context(format!("checking {}", file.display())))),
    };
    if let Some(m) = &unpacked.manifest {
        if m.schema_version != facts.schema_version {
            return Err(AppError::input(format!(
                "{}: its manifest says schema version {} but its database has {}; the file is damaged, nothing was changed",
                file.display(),
                m.schema_version,
                facts.schema_version
            )));
        }
    }
    let now = Utc::now();
    let tag = format!(".before-restore-{}", stamp(now));
    // The key: the backup's if it has one, else this data dir's (made if missing).
    let key_path = data.key();
    let (mut key_restored, mut key_aside) = (false, None);
    let cipher = match &unpacked.key {
        Some(bytes) => {
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                AppError::input(format!("{}: its coachd.key holds {} bytes, not 32", file.display(), bytes.len()))
            })?;
            let cipher = crypto::Cipher::from_key(&key);
            let current = std::fs::read(&key_path).ok();
            if current.as_deref() != Some(bytes.as_slice()) {
                if current.is_some() {
                    let aside = with_suffix(&key_path, &tag);
                    std::fs::rename(&key_path, &aside)
                        .with_context(|| format!("keeping {} aside", key_path.display()))?;
                    key_aside = Some(aside);
                }
                write_new_private(&key_path, bytes).with_context(|| format!("writing {}", key_path.display()))?;
                key_restored = true;
            }
            cipher
        }
        None => crypto::load_or_create_key(&key_path).map_err(|e| AppError::input(e.to_string()))?.0,
    };
    let mut reconnect = Vec::new();
    if facts.key_fingerprint.as_deref().is_some_and(|fp| fp != cipher.fingerprint()) {
        reconnect = Store::forget_sealed_at(incoming, cipher.fingerprint())
            .await
            .context("forgetting tokens sealed with another key")?;
    }
    // The configuration, then the database: each replaced file is kept aside first.
    let (mut config_restored, mut config_aside) = (false, None);
    if let (Some(bytes), false) = (&unpacked.config, keep_config) {
        let current = std::fs::read(config_path).ok();
        if current.as_deref() != Some(bytes.as_slice()) {
            if current.is_some() {
                let aside = with_suffix(config_path, &tag);
                std::fs::rename(config_path, &aside)
                    .with_context(|| format!("keeping {} aside", config_path.display()))?;
                config_aside = Some(aside);
            }
            write_new_private(config_path, bytes).with_context(|| format!("writing {}", config_path.display()))?;
            config_restored = true;
        }
    }
    let aside = with_suffix(&database, &tag);
    // The store the backup's rows now live in: where it is, what it replaced (kept aside).
    let (database, kept_aside, store) = if let Some(pg) = pg {
        // A PostgreSQL store: what it holds is kept aside as a SQLite file (a backup of
        // it), then the backup's rows replace it in one transaction.
        let target = Store::open_postgres(pg, opts, cipher.clone())
            .await
            .with_context(|| format!("opening the PostgreSQL database {}", pg.shown()))?;
        let held: i64 = target.table_counts().await?.iter().filter(|(t, _)| *t != "meta").map(|(_, n)| n).sum();
        let kept_aside = if held > 0 {
            target.backup_to(&aside).await.with_context(|| format!("keeping a copy aside in {}", aside.display()))?;
            Some(aside)
        } else {
            None
        };
        let backup = Store::open(incoming, opts, cipher).await.context("opening the backup's database")?;
        let copied = backup.copy_into(&target, true, |_, _| {}).await;
        backup.close().await;
        copied.with_context(|| format!("copying the backup into {}", pg.shown()))?;
        (PathBuf::from(pg.shown()), kept_aside, target)
    } else {
        let moved =
            move_database(&database, &aside).with_context(|| format!("keeping {} aside", database.display()))?;
        std::fs::rename(incoming, &database)
            .with_context(|| format!("moving the restored database to {}", database.display()))?;
        if let Ok(dir) = std::fs::File::open(data.root()) {
            let _ = dir.sync_all();
        }
        let kept_aside = moved.then_some(aside);
        let store = Store::open(&database, opts, cipher).await.map_err(|e| {
            let back = kept_aside.as_ref().map_or(String::new(), |a| {
                format!("; the database it replaced is {}: move it back to {} to undo", a.display(), database.display())
            });
            runtime(anyhow::Error::new(e).context(format!("opening the restored database{back}")))
        })?;
        (database, kept_aside, store)
    };
    let counts = store.row_counts().await;
    let schema_now = store.schema_version().await;
    store.close().await;
    tracing::info!(from = %file.display(), aside = ?kept_aside, reconnect = reconnect.len(), "restored");
    Ok(Restored {
        from: file.to_path_buf(),
        database,
        kept_aside,
        schema_before: facts.schema_version,
        schema_now: schema_now.unwrap_or_else(|_| known_schema_version()),
        counts: counts?,
        key_restored,
        key_aside,
        config_restored,
        config_aside,
        reconnect,
    })
}
