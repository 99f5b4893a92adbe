//! Files: `coachd import` reads FIT, TCX, GPX (plain or gzipped), account exports
//! ([`export`]: Strava, Garmin Connect, any zip of activity files), Apple Health exports
//! (`export.zip` or `export.xml`) and Gadgetbridge databases ([`gadgetbridge`]),
//! recognised by content, not extension.
//!
//! Each file is one batch, stored all or nothing. Its SHA-256 is recorded as a cursor
//! (source = format, stream = `sha256:…`) in the same transaction, so importing the same
//! file again is reported as a duplicate and changes nothing; the same workout in
//! another file (FIT and TCX of one run) is merged by the engine's cross-source dedup.
//!
//! [`import_file`] takes one file; [`import_files`] (`coachd import`) takes many, parses
//! them on every core and stores them in order, many per transaction with a savepoint
//! each, so a file is still all or nothing.

pub mod apple;
pub mod export;
pub mod fit;
pub mod gadgetbridge;
pub mod hae;
pub mod xml;

use crate::crypto::hex;
use crate::model::{Batch, Cursor, DailyMetric, NewActivity};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Activity files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum FileError {
    /// The content is not what its format requires.
    #[error("{0}")]
    Invalid(String),
    #[error("not a FIT, TCX, GPX or Apple Health file: {0}")]
    Unknown(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// What a file holds, normalized.
#[derive(Debug, Default)]
pub struct Parsed {
    pub activities: Vec<NewActivity>,
    pub daily: Vec<DailyMetric>,
    /// What a decoder said about the file without failing on it (logged at debug).
    pub diagnostics: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Fit,
    Tcx,
    Gpx,
    /// Apple Health `export.xml`, or (`zipped`) the `export.zip` holding it.
    Apple {
        zipped: bool,
    },
    /// A gzip-compressed file (`.fit.gz`): what it holds is read as that file.
    Gzip,
    /// A Strava or Garmin account export, or another zip of activity files.
    Export(export::ExportKind),
    /// Gadgetbridge's database export (`Gadgetbridge.db`).
    Gadgetbridge,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fit => "FIT",
            Self::Tcx => "TCX",
            Self::Gpx => "GPX",
            Self::Apple { zipped: true } => "Apple Health export.zip",
            Self::Apple { zipped: false } => "Apple Health export.xml",
            Self::Gzip => "gzip",
            Self::Gadgetbridge => "Gadgetbridge",
            Self::Export(kind) => return write!(f, "{kind}"),
        })
    }
}

impl Format {
    pub fn source(self) -> &'static str {
        match self {
            Self::Fit => "fit",
            Self::Tcx => "tcx",
            Self::Gpx => "gpx",
            Self::Apple { .. } => "apple",
            Self::Gzip => "gzip",
            Self::Export(_) => "export",
            Self::Gadgetbridge => "gadgetbridge",
        }
    }
}

/// Recognise a file by its first bytes.
pub fn sniff(bytes: &[u8]) -> Result<Format, FileError> {
    if fit::looks_like_fit(bytes) {
        return Ok(Format::Fit);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Ok(Format::Apple { zipped: true });
    }
    if bytes.starts_with(b"\x1f\x8b") {
        return Ok(Format::Gzip);
    }
    if bytes.starts_with(b"SQLite format 3\0") {
        return Ok(Format::Gadgetbridge);
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        return match xml::root(text) {
            xml::XmlKind::Tcx => Ok(Format::Tcx),
            xml::XmlKind::Gpx => Ok(Format::Gpx),
            xml::XmlKind::AppleHealth => Ok(Format::Apple { zipped: false }),
            xml::XmlKind::Other => Err(FileError::Unknown("XML, but neither TCX nor GPX".into())),
        };
    }
    let what = if bytes.starts_with(b"\x89PNG") {
        "a PNG image".to_string()
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        "a JPEG image".to_string()
    } else if bytes.is_empty() {
        "the file is empty".to_string()
    } else if bytes.len() >= 12 && &bytes[8..12] == b".FIT" {
        "a FIT header of unknown size".to_string()
    } else {
        format!("starts with bytes {}", hex(&bytes[..bytes.len().min(8)]))
    };
    Err(FileError::Unknown(what))
}

/// Parse a small activity file's bytes for a client.
pub fn parse(bytes: &[u8], format: Format, client: &Client, tz: Tz) -> Result<Parsed, FileError> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
    let key = format!("c{}", client.id);
    match format {
        Format::Fit => fit::parse(bytes, client.id, offset),
        Format::Tcx => xml::parse(bytes, xml::XmlKind::Tcx, client.id, &key, offset),
        Format::Gpx => xml::parse(bytes, xml::XmlKind::Gpx, client.id, &key, offset),
        Format::Apple { .. } | Format::Export(_) | Format::Gzip | Format::Gadgetbridge => {
            Err(FileError::Unsupported(format!("a {format} file is streamed from its file")))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Imported {
        format: Format,
        activities: usize,
        samples: usize,
    },
    Duplicate {
        format: Format,
    },
    Rejected(String),
    /// An account export: each member imported on its own.
    Export(ExportReport),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub kind: Option<export::ExportKind>,
    /// Members imported, already there, and refused (path inside the archive, why).
    pub imported: usize,
    pub duplicates: usize,
    pub rejected: Vec<(String, String)>,
    pub activities: usize,
    pub samples: usize,
}

/// Import one file: parse, then store it and its content hash in one transaction.
/// `progress` hears (bytes done, bytes in all) while a large export is read.
pub async fn import_file(
    store: &Store,
    client: &Client,
    tz: Tz,
    path: &Path,
    progress: Progress,
) -> Result<Outcome, StoreError> {
    let (format, hash) = match identify(path) {
        Ok(x) => x,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let stream = format!("sha256:{}", hex(&hash));
    if store.cursor(format.source(), &stream).await?.is_some() {
        return Ok(Outcome::Duplicate { format });
    }
    if let Format::Export(kind) = format {
        return import_export(store, client, path, kind, stream, progress).await;
    }
    if format == Format::Gzip {
        return import_gzip(store, client, path).await;
    }
    if format == Format::Gadgetbridge {
        let outcome = gadgetbridge::import(store, client, path).await?;
        if matches!(outcome, Outcome::Imported { .. }) {
            // The same export again is one lookup; a newer one reads only what is new.
            record_whole(store, format, stream, path).await?;
        }
        return Ok(outcome);
    }
    // Parsing is CPU and file work: keep it off the async runtime's threads.
    let parsed = {
        let (path, client) = (path.to_path_buf(), client.clone());
        tokio::task::spawn_blocking(move || match format {
            Format::Apple { zipped } => {
                apple::parse(&path, zipped, client.id, tz, &|done, all| progress(Tick { done, all, ..Tick::default() }))
            }
            _ => parse(&read_limited(&path)?, format, &client, tz),
        })
        .await
        .unwrap_or_else(|e| Err(FileError::Invalid(format!("the parser failed: {e}"))))
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    for line in &parsed.diagnostics {
        tracing::debug!(file = %path.display(), "decoder: {line}");
    }
    let name = file_name(path);
    Ok(match store_parsed(store, format, hash, parsed, stream, &name).await? {
        Ok((activities, samples)) => Outcome::Imported { format, activities, samples },
        Err(why) => Outcome::Rejected(why),
    })
}

/// One small activity file's bytes (FIT, TCX or GPX, plain or gzipped), as a remote
/// collector forwards it from its inbox folder: the batch that stores it for `client`,
/// its content hash as the cursor, exactly as [`import_file`] would store the same file
/// (so a file imported both ways is one import). Err: why it cannot be imported.
/// Exports, Apple Health and Gadgetbridge files are read from a file of their own at
/// the hub (its inbox, `coachd import`), not forwarded.
pub fn read_bytes(bytes: &[u8], client: &Client, name: &str) -> Result<Batch, String> {
    let refuse = |e: FileError| e.to_string();
    let (format, plain) = match sniff(bytes).map_err(refuse)? {
        f @ (Format::Fit | Format::Tcx | Format::Gpx) => (f, std::borrow::Cow::Borrowed(bytes)),
        Format::Gzip => {
            let inner = export::read_member(&mut &bytes[..], true).map_err(refuse)?;
            match sniff(&inner).map_err(refuse)? {
                f @ (Format::Fit | Format::Tcx | Format::Gpx) => (f, std::borrow::Cow::Owned(inner)),
                other => return Err(format!("a compressed {other} is not read; unpack it first")),
            }
        }
        other => {
            return Err(format!(
                "a collector forwards FIT, TCX and GPX files; put a {other} file into the hub's own inbox \
                 (DATA/inbox/<client>/) or use coachd import"
            ))
        }
    };
    let hash = crate::crypto::sha256(&plain);
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&plain, format, client, client.tz)))
        .unwrap_or_else(|_| Err(FileError::Invalid("the parser failed".into())))
        .map_err(refuse)?;
    for line in &parsed.diagnostics {
        tracing::debug!(file = name, "decoder: {line}");
    }
    batch_of(format, hash, parsed, format!("sha256:{}", hex(&hash)), name).map(|(batch, _)| batch)
}

/// Files reported together at most (those stored in one transaction, each in a savepoint
/// of its own), and samples stored in one.
/// Sized so one commit (one fsync with `synchronous = full`) serves many files while
/// what waits for it stays a few MB.
const GROUP_FILES: usize = 32;
const GROUP_SAMPLES: usize = 1 << 19;

/// Import many files, as [`import_file`] would one after the other, but faster: the
/// files are read, hashed and parsed on as many threads as there are cores, and one
/// writer stores them in order, several per transaction with a savepoint each, so each
/// file is still all or nothing. `done` hears each file's outcome (by its index in
/// `paths`) in order, once it is committed. Exports, Apple Health and Gadgetbridge files
/// stream themselves and go through [`import_file`] in their turn (with `progress`).
///
/// A crash loses nothing and doubles nothing: a file's hash is its cursor, committed
/// with its data, so a file whose transaction did not commit is imported again.
pub async fn import_files(
    store: &Store,
    client: &Client,
    tz: Tz,
    paths: &[PathBuf],
    progress: Progress,
    mut done: impl FnMut(usize, Outcome),
) -> Result<(), StoreError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::{OwnedSemaphorePermit, Semaphore};
    if paths.is_empty() {
        return Ok(());
    }
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(paths.len());
    // Files claimed and not yet committed. Above what one group holds plus what the
    // workers have in hand, so the file the writer waits for can always be claimed.
    let window = GROUP_FILES + 2 * workers;
    let permits = Arc::new(Semaphore::new(window));
    // However this ends, the workers stop at their next file.
    struct Close(Arc<Semaphore>);
    impl Drop for Close {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = Close(permits.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let shared: Arc<[PathBuf]> = paths.into();
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(usize, Result<Prepared, StoreError>, OwnedSemaphorePermit)>(window);
    let runtime = tokio::runtime::Handle::current();
    for _ in 0..workers {
        let (paths, next, permits, tx, runtime) =
            (shared.clone(), next.clone(), permits.clone(), tx.clone(), runtime.clone());
        let (store, client) = (store.clone(), client.clone());
        tokio::task::spawn_blocking(move || loop {
            let Ok(permit) = runtime.block_on(permits.clone().acquire_owned()) else { break };
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { break };
            let known =
                |source: &str, stream: &str| runtime.block_on(store.cursor(source, stream)).map(|c| c.is_some());
            let prepared = prepare(path, &client, tz, known);
            if tx.blocking_send((i, prepared, permit)).is_err() {
                break;
            }
        });
    }
    drop(tx);
    let mut arrived: BTreeMap<usize, (Result<Prepared, StoreError>, OwnedSemaphorePermit)> = BTreeMap::new();
    let mut group = Group::default();
    // The first file of each content (by its cursor) in this run, and what became of it.
    let mut firsts: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut outcomes: HashMap<usize, Outcome> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        let next = loop {
            if let Some(x) = arrived.remove(&i) {
                break Some(x);
            }
            match rx.recv().await {
                Some((j, p, permit)) => {
                    arrived.insert(j, (p, permit));
                }
                None => break None,
            }
        };
        let Some((prepared, permit)) = next else {
            // Only a worker that died leaves a file unanswered: it is imported here instead.
            group.flush(store, &mut outcomes, &mut done).await?;
            done(i, import_file(store, client, tz, path, progress.clone()).await?);
            continue;
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                group.flush(store, &mut outcomes, &mut done).await?;
                return Err(e);
            }
        };
        match prepared {
            Prepared::Known(outcome) => group.entries.push((i, Entry::Known(outcome), permit)),
            Prepared::Streamed => {
                group.flush(store, &mut outcomes, &mut done).await?;
                drop(permit);
                done(i, import_file(store, client, tz, path, progress.clone()).await?);
            }
            Prepared::Ready { format, hash, parsed } => {
                let stream = format!("sha256:{}", hex(&hash));
                let key = (format.source(), stream);
                if let Some(&first) = firsts.get(&key) {
                    group.entries.push((i, Entry::SameAs { first, format }, permit));
                } else {
                    let stream = key.1.clone();
                    firsts.insert(key, i);
                    match batch_of(format, hash, parsed, stream, &file_name(path)) {
                        Err(why) => group.entries.push((i, Entry::Known(Outcome::Rejected(why)), permit)),
                        Ok((batch, samples)) => {
                            group.samples += samples;
                            let activities = batch.activities.len();
                            group.batches.push(batch);
                            group.entries.push((i, Entry::Write { format, activities, samples }, permit));
                        }
                    }
                }
            }
        }
        if group.entries.len() >= GROUP_FILES || group.samples >= GROUP_SAMPLES {
            group.flush(store, &mut outcomes, &mut done).await?;
        }
    }
    group.flush(store, &mut outcomes, &mut done).await
}

/// What a worker made of one file.
enum Prepared {
    /// Parsed, to be stored.
    Ready { format: Format, hash: [u8; 32], parsed: Parsed },
    /// Settled without storing anything: a duplicate, or rejected.
    Known(Outcome),
    /// A file that streams itself ([`import_file`]).
    Streamed,
}

/// Read, recognise, hash and parse one file, in one read and without copying it:
/// `known(source, stream)` says whether a file of that hash was imported before.
fn prepare(
    path: &Path,
    client: &Client,
    tz: Tz,
    known: impl Fn(&str, &str) -> Result<bool, StoreError>,
) -> Result<Prepared, StoreError> {
    let read = || -> Result<Option<(Format, Vec<u8>)>, FileError> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut bytes = Vec::with_capacity(usize::try_from(len.min(MAX_FILE_BYTES)).unwrap_or(0) + 1);
        (&mut file).take(64 * 1024).read_to_end(&mut bytes)?;
        let format = sniff(&bytes)?;
        if !matches!(format, Format::Fit | Format::Tcx | Format::Gpx | Format::Gzip) {
            return Ok(None);
        }
        if len > MAX_FILE_BYTES {
            return Err(FileError::Unsupported(format!(
                "more than {} MB is not an activity file",
                MAX_FILE_BYTES / 1_000_000
            )));
        }
        if format == Format::Gzip {
            drop(bytes);
            let inner = export::read_member(&mut std::fs::File::open(path)?, true)?;
            return match sniff(&inner)? {
                f @ (Format::Fit | Format::Tcx | Format::Gpx) => Ok(Some((f, inner))),
                other => Err(FileError::Unsupported(format!("a compressed {other} is not read; unpack it first"))),
            };
        }
        file.read_to_end(&mut bytes)?;
        Ok(Some((format, bytes)))
    };
    let (format, bytes) = match read() {
        Ok(Some(x)) => x,
        Ok(None) => return Ok(Prepared::Streamed),
        Err(e) => return Ok(Prepared::Known(Outcome::Rejected(e.to_string()))),
    };
    let hash = crate::crypto::sha256(&bytes);
    if known(format.source(), &format!("sha256:{}", hex(&hash)))? {
        return Ok(Prepared::Known(Outcome::Duplicate { format }));
    }
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&bytes, format, client, tz)))
        .unwrap_or_else(|_| Err(FileError::Invalid("the parser failed".into())));
    Ok(match parsed {
        Ok(parsed) => {
            for line in &parsed.diagnostics {
                tracing::debug!(file = %path.display(), "decoder: {line}");
            }
            Prepared::Ready { format, hash, parsed }
        }
        Err(e) => Prepared::Known(Outcome::Rejected(e.to_string())),
    })
}

/// Files waiting for one transaction, in order.
#[derive(Default)]
struct Group {
    batches: Vec<Batch>,
    samples: usize,
    /// Each file's index, what to report, and its place in the window (freed once reported).
    entries: Vec<(usize, Entry, tokio::sync::OwnedSemaphorePermit)>,
}

enum Entry {
    /// The next of `batches`.
    Write {
        format: Format,
        activities: usize,
        samples: usize,
    },
    Known(Outcome),
    /// The same content as an earlier file of this run: what became of that one.
    SameAs {
        first: usize,
        format: Format,
    },
}

impl Group {
    /// Store the group's batches in one transaction and report every file of it in order.
    async fn flush(
        &mut self,
        store: &Store,
        outcomes: &mut HashMap<usize, Outcome>,
        done: &mut impl FnMut(usize, Outcome),
    ) -> Result<(), StoreError> {
        let results = if self.batches.is_empty() { Vec::new() } else { store.ingest_many(&self.batches).await? };
        let mut results = results.into_iter();
        for (i, entry, permit) in self.entries.drain(..) {
            let outcome = match entry {
                Entry::Write { format, activities, samples } => match results.next() {
                    Some(Ok(_)) => Outcome::Imported { format, activities, samples },
                    Some(Err(e)) => Outcome::Rejected(refusal(e)?),
                    None => Outcome::Rejected("not stored".into()),
                },
                Entry::Known(outcome) => outcome,
                Entry::SameAs { first, format } => match outcomes.get(&first) {
                    Some(Outcome::Rejected(why)) => Outcome::Rejected(why.clone()),
                    _ => Outcome::Duplicate { format },
                },
            };
            outcomes.insert(i, outcome.clone());
            done(i, outcome);
            drop(permit);
        }
        self.batches.clear();
        self.samples = 0;
        Ok(())
    }
}

/// How far an import is: bytes of the file read and in all; for an export, also the
/// members handled and activities found so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick {
    pub done: u64,
    pub all: u64,
    pub files: u64,
    pub activities: u64,
}

/// Hears [`Tick`]s while a large export is read.
pub type Progress = std::sync::Arc<dyn Fn(Tick) + Send + Sync>;

/// No progress reports.
pub fn quiet() -> Progress {
    std::sync::Arc::new(|_| {})
}

/// Import every member of an account export, each as its own file: a member already
/// imported (here or as a file of its own) is a duplicate, a bad one is named and the
/// rest go on. The export's own hash is recorded last, so importing it again is one
/// lookup; after a crash half-way, the members already stored are duplicates.
async fn import_export(
    store: &Store,
    client: &Client,
    path: &Path,
    kind: export::ExportKind,
    stream: String,
    progress: Progress,
) -> Result<Outcome, StoreError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<export::Member>(4);
    let walker = {
        let (path, client) = (path.to_path_buf(), client.clone());
        tokio::task::spawn_blocking(move || export::walk(&path, kind, &client, |m| tx.blocking_send(m).is_ok()))
    };
    let mut report = ExportReport { kind: Some(kind), ..Default::default() };
    let mut files = 0;
    while let Some(m) = rx.recv().await {
        files += 1;
        match m.result {
            Err(e) => report.rejected.push((m.path, e.to_string())),
            Ok((format, hash, parsed)) => {
                let member_stream = format!("sha256:{}", hex(&hash));
                for line in &parsed.diagnostics {
                    tracing::debug!(file = %path.display(), member = %m.path, "decoder: {line}");
                }
                if store.cursor(format.source(), &member_stream).await?.is_some() {
                    report.duplicates += 1;
                } else {
                    match store_parsed(store, format, hash, parsed, member_stream, &m.path).await? {
                        Ok((activities, samples)) => {
                            report.imported += 1;
                            report.activities += activities;
                            report.samples += samples;
                        }
                        Err(why) => report.rejected.push((m.path, why)),
                    }
                }
            }
        }
        progress(Tick { done: m.done, all: m.all, files, activities: report.activities as u64 });
    }
    match walker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if files == 0 => return Ok(Outcome::Rejected(e.to_string())),
        Ok(Err(e)) => report.rejected.push(("(the archive)".into(), e.to_string())),
        Err(e) => report.rejected.push(("(the archive)".into(), format!("reading it failed: {e}"))),
    }
    record_whole(store, Format::Export(kind), stream, path).await?;
    Ok(Outcome::Export(report))
}

/// A file's name, for its cursor.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Record that a whole file was read (its hash as the cursor, nothing else), so the same
/// file again is one lookup; its parts were stored with cursors of their own.
async fn record_whole(store: &Store, format: Format, stream: String, path: &Path) -> Result<(), StoreError> {
    let mut done = Batch::new(format.source());
    done.cursor = Some(Cursor { stream, value: file_name(path) });
    store.ingest(&done).await.map(drop)
}

/// A gzip-compressed activity file, read as the file it holds: its hash, source and
/// cursor are those of the plain file, so `run.fit.gz` and `run.fit` are one import.
async fn import_gzip(store: &Store, client: &Client, path: &Path) -> Result<Outcome, StoreError> {
    let read = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<(Format, [u8; 32], Vec<u8>), FileError> {
            let inner = export::read_member(&mut std::fs::File::open(&path)?, true)?;
            match sniff(&inner)? {
                f @ (Format::Fit | Format::Tcx | Format::Gpx) => Ok((f, crate::crypto::sha256(&inner), inner)),
                other => Err(FileError::Unsupported(format!("a compressed {other} is not read; unpack it first"))),
            }
        })
        .await
        .unwrap_or_else(|e| Err(FileError::Invalid(format!("reading failed: {e}"))))
    };
    let (format, hash, bytes) = match read {
        Ok(x) => x,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let stream = format!("sha256:{}", hex(&hash));
    if store.cursor(format.source(), &stream).await?.is_some() {
        return Ok(Outcome::Duplicate { format });
    }
    let parsed = {
        let client = client.clone();
        tokio::task::spawn_blocking(move || parse(&bytes, format, &client, client.tz))
            .await
            .unwrap_or_else(|e| Err(FileError::Invalid(format!("the parser failed: {e}"))))
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let name = file_name(path);
    Ok(match store_parsed(store, format, hash, parsed, stream, &name).await? {
        Ok((activities, samples)) => Outcome::Imported { format, activities, samples },
        Err(why) => Outcome::Rejected(why),
    })
}

/// Store one parsed file and its hash in one transaction: (activities, samples), or why
/// the store refused it.
async fn store_parsed(
    store: &Store,
    format: Format,
    hash: [u8; 32],
    parsed: Parsed,
    stream: String,
    name: &str,
) -> Result<Result<(usize, usize), String>, StoreError> {
    let (batch, samples) = match batch_of(format, hash, parsed, stream, name) {
        Ok(x) => x,
        Err(why) => return Ok(Err(why)),
    };
    match store.ingest(&batch).await {
        Ok(_) => Ok(Ok((batch.activities.len(), samples))),
        Err(e) => refusal(e).map(Err),
    }
}

/// Why the store refused a file's batch, or the failure that is not the file's.
fn refusal(e: StoreError) -> Result<String, StoreError> {
    match e {
        StoreError::Invalid(p) => Ok(p.join("; ")),
        StoreError::Conflict(c) => Ok(c),
        e => Err(e),
    }
}

/// A parsed file as the batch that stores it, with its hash as the cursor, and its
/// sample count; or why nothing of it can be stored.
fn batch_of(
    format: Format,
    hash: [u8; 32],
    parsed: Parsed,
    stream: String,
    name: &str,
) -> Result<(Batch, usize), String> {
    let mut batch = Batch::new(format.source());
    // The model's clamp, as for every source: what cannot be true is left out, with why.
    let mut refused = Vec::new();
    for a in parsed.activities {
        let id = a.external_id.clone();
        match a.clamped() {
            Ok(mut a) => {
                a.content_hash = Some(hash.to_vec());
                batch.activities.push(a);
            }
            Err(why) => refused.push(format!("activity {id}: {why}")),
        }
    }
    if batch.activities.is_empty() && !refused.is_empty() {
        return Err(refused.join("; "));
    }
    for why in &refused {
        tracing::warn!(file = name, %why, "activity left out");
    }
    batch.daily = parsed.daily;
    batch.cursor = Some(Cursor { stream, value: name.to_string() });
    let samples = batch.activities.iter().flat_map(|a| &a.series).map(|s| s.samples.len()).sum();
    Ok((batch, samples))
}

pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, FileError> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::Unsupported(format!(
            "{} MB is more than an activity file can be ({} MB)",
            meta.len() / 1_000_000,
            MAX_FILE_BYTES / 1_000_000
        )));
    }
    Ok(std::fs::read(path)?)
}

/// The file's format (from its first bytes) and SHA-256 (streamed: exports can be GBs).
fn identify(path: &Path) -> Result<(Format, [u8; 32]), FileError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = vec![0u8; 64 * 1024];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    let format = match sniff(&head)? {
        Format::Apple { zipped: true } => match export::zip_kind(path)? {
            export::ZipKind::Apple => Format::Apple { zipped: true },
            export::ZipKind::Export(kind) => Format::Export(kind),
        },
        other => other,
    };
    if !matches!(format, Format::Apple { .. } | Format::Export(_) | Format::Gadgetbridge)
        && std::fs::metadata(path)?.len() > MAX_FILE_BYTES
    {
        return Err(FileError::Unsupported(format!(
            "more than {} MB is not an activity file",
            MAX_FILE_BYTES / 1_000_000
        )));
    }
    let mut hasher = Sha256::new();
    hasher.update(&head);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((format, hasher.finalize().into()))
}

/// Files under the given paths (folders recursively, hidden files skipped), in order.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            entries.retain(|e| !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
            out.extend(collect(&entries)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TCX: &str = r#"<?xml version="1.0"?><TrainingCenterDatabase><Activities><Activity Sport="Running">
<Id>2026-11-20T17:00:00Z</Id><Lap><TotalTimeSeconds>60</TotalTimeSeconds><Track>
<Trackpoint><Time>2026-11-20T17:00:00Z</Time><HeartRateBpm><Value>140</Value></HeartRateBpm></Trackpoint>
<Trackpoint><Time>2026-11-20T17:01:00Z</Time><HeartRateBpm><Value>150</Value></HeartRateBpm></Trackpoint>
</Track></Lap></Activity></Activities></TrainingCenterDatabase>"#;

    fn every_parser(bytes: &[u8]) {
        let _ = sniff(bytes);
        let _ = fit::parse(bytes, 1, |_| 0);
        let _ = xml::parse(bytes, xml::XmlKind::Tcx, 1, "c1", |_| 0);
        let _ = xml::parse(bytes, xml::XmlKind::Gpx, 1, "c1", |_| 0);
        let _ = hae::parse(bytes, 1, chrono_tz::UTC);
    }

    #[test]
    fn the_fixture_parses() {
        let parsed = xml::parse(TCX.as_bytes(), xml::XmlKind::Tcx, 1, "c1", |_| 3600).expect("parses");
        assert_eq!(parsed.activities.len(), 1);
        assert_eq!(parsed.activities[0].series[0].samples.len(), 2);
    }

    proptest! {
        #[test]
        fn no_bytes_panic_a_parser(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            every_parser(&bytes);
        }

        #[test]
        fn no_mutation_of_a_good_file_panics_a_parser(flips in proptest::collection::vec((0usize..2000, any::<u8>()), 1..8), cut in 0usize..2000) {
            let mut bytes = TCX.as_bytes().to_vec();
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            bytes.truncate(cut.max(1));
            every_parser(&bytes);
        }
    }
}
