//! Files: `coachd import` reads FIT, TCX and GPX, recognised by content, not extension.
//!
//! Each file is one batch, stored all or nothing. Its SHA-256 is recorded as a cursor
//! (source = format, stream = `sha256:…`) in the same transaction, so importing the same
//! file again is reported as a duplicate and changes nothing; the same workout in
//! another file (FIT and TCX of one run) is merged by the engine's cross-source dedup.

pub mod fit;
pub mod xml;

use crate::model::{Batch, Cursor, DailyMetric, NewActivity};
use crate::store::{Client, Store, StoreError};
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Activity files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum FileError {
    /// The content is not what its format requires.
    #[error("{0}")]
    Invalid(String),
    #[error("not a FIT, TCX or GPX file: {0}")]
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Fit,
    Tcx,
    Gpx,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fit => "FIT",
            Self::Tcx => "TCX",
            Self::Gpx => "GPX",
        })
    }
}

impl Format {
    pub fn source(self) -> &'static str {
        match self {
            Self::Fit => "fit",
            Self::Tcx => "tcx",
            Self::Gpx => "gpx",
        }
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Recognise a file by its first bytes.
pub fn sniff(bytes: &[u8]) -> Result<Format, FileError> {
    if fit::looks_like_fit(bytes) {
        return Ok(Format::Fit);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(FileError::Unsupported(
            "a zip archive: Apple Health export.zip import is not available yet; FIT, TCX and GPX are".into(),
        ));
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        return match xml::root(text) {
            xml::XmlKind::Tcx => Ok(Format::Tcx),
            xml::XmlKind::Gpx => Ok(Format::Gpx),
            xml::XmlKind::AppleHealth => Err(FileError::Unsupported(
                "an Apple Health export.xml: its import is not available yet; FIT, TCX and GPX are".into(),
            )),
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

/// Parse a file's bytes for a client.
pub fn parse(bytes: &[u8], format: Format, client: &Client, tz: Tz) -> Result<Parsed, FileError> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
    match format {
        Format::Fit => fit::parse(bytes, client.id, offset),
        Format::Tcx => xml::parse(bytes, xml::XmlKind::Tcx, client.id, &format!("c{}", client.id), offset),
        Format::Gpx => xml::parse(bytes, xml::XmlKind::Gpx, client.id, &format!("c{}", client.id), offset),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Imported { format: Format, activities: usize, samples: usize },
    Duplicate { format: Format },
    Rejected(String),
}

/// Import one file: parse, then store it and its content hash in one transaction.
pub async fn import_file(store: &Store, client: &Client, tz: Tz, path: &Path) -> Result<Outcome, StoreError> {
    let bytes = match read_limited(path) {
        Ok(b) => b,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let format = match sniff(&bytes) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let hash = sha256(&bytes);
    let stream = format!("sha256:{}", hex(&hash));
    if store.cursor(format.source(), &stream).await?.is_some() {
        return Ok(Outcome::Duplicate { format });
    }
    let parsed = match parse(&bytes, format, client, tz) {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let mut batch = Batch::new(format.source());
    batch.activities = parsed.activities;
    for a in &mut batch.activities {
        a.content_hash = Some(hash.to_vec());
    }
    batch.daily = parsed.daily;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    batch.cursor = Some(Cursor { stream, value: name });
    let samples = batch.activities.iter().flat_map(|a| &a.series).map(|s| s.samples.len()).sum();
    match store.ingest(&batch).await {
        Ok(_) => Ok(Outcome::Imported { format, activities: batch.activities.len(), samples }),
        Err(StoreError::Invalid(p)) => Ok(Outcome::Rejected(p.join("; "))),
        Err(StoreError::Conflict(c)) => Ok(Outcome::Rejected(c)),
        Err(e) => Err(e),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, FileError> {
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
