//! Whole account exports and compressed files, read as streams.
//!
//! - Strava's "Download your data" zip: `activities/` with `.fit.gz`, `.gpx.gz`,
//!   `.tcx.gz` and plain files, and `activities.csv`, whose "Activity Type" names the
//!   sport of a file that does not (most GPX files).
//! - Garmin Connect's data export: FIT originals inside nested
//!   `DI_CONNECT/DI-Connect-Fitness/UploadedFiles_*.zip` archives, read member by member
//!   from the outer archive's stream (nothing is unpacked to disk).
//! - Any other zip of activity files, and gzip-compressed single files.
//!
//! Members are decompressed one at a time into memory (each at most
//! [`super::MAX_FILE_BYTES`]), parsed, and handed on; a bad member is reported by its
//! path inside the archive and the walk goes on.

use super::{sniff, FileError, Format, Parsed, MAX_FILE_BYTES};
use crate::store::Client;
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// What kind of account export a zip is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Strava,
    Garmin,
    /// A zip of activity files from anywhere else.
    Archive,
}

impl std::fmt::Display for ExportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Strava => "Strava export",
            Self::Garmin => "Garmin Connect export",
            Self::Archive => "zip of activity files",
        })
    }
}

/// What a zip holds, from its member names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZipKind {
    Apple,
    Export(ExportKind),
}

fn activity_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.strip_suffix(".gz").unwrap_or(&n);
    n.ends_with(".fit") || n.ends_with(".gpx") || n.ends_with(".tcx")
}

fn hidden(name: &str) -> bool {
    name.contains("__MACOSX") || name.rsplit('/').next().is_some_and(|b| b.starts_with('.'))
}

/// Read a zip's directory and say what it is.
pub fn zip_kind(path: &Path) -> Result<ZipKind, FileError> {
    let archive = zip::ZipArchive::new(std::fs::File::open(path)?).map_err(zip_error)?;
    let names: Vec<String> =
        archive.file_names().filter_map(Result::ok).map(|n| n.into_owned()).filter(|n| !hidden(n)).collect();
    if names.iter().any(|n| n.ends_with("export.xml")) {
        return Ok(ZipKind::Apple);
    }
    if names.iter().any(|n| *n == "activities.csv" || n.starts_with("activities/")) {
        return Ok(ZipKind::Export(ExportKind::Strava));
    }
    if names.iter().any(|n| n.contains("UploadedFiles_") && n.ends_with(".zip")) {
        return Ok(ZipKind::Export(ExportKind::Garmin));
    }
    if names.iter().any(|n| activity_name(n)) {
        return Ok(ZipKind::Export(ExportKind::Archive));
    }
    Err(FileError::Unknown("a zip archive with no FIT, GPX, TCX or Apple Health file in it".into()))
}

fn zip_error(e: zip::result::ZipError) -> FileError {
    FileError::Invalid(format!("zip archive: {e}"))
}

/// Read at most [`MAX_FILE_BYTES`] from `r`; more is an error, not a silent cut.
pub fn read_member(r: &mut dyn Read, gzipped: bool) -> Result<Vec<u8>, FileError> {
    let mut out = Vec::new();
    let limit = MAX_FILE_BYTES + 1;
    let n = if gzipped {
        flate2::read::GzDecoder::new(r).take(limit).read_to_end(&mut out)
    } else {
        r.take(limit).read_to_end(&mut out)
    }
    .map_err(|e| {
        if gzipped {
            FileError::Invalid(format!("gzip: the compressed data is damaged or cut short ({e})"))
        } else {
            FileError::Io(e)
        }
    })?;
    if n as u64 >= limit {
        return Err(FileError::Unsupported(format!(
            "more than {} MB unpacked is not an activity file",
            MAX_FILE_BYTES / 1_000_000
        )));
    }
    Ok(out)
}

/// One member of an export, decoded and parsed (or why not).
pub struct Member {
    /// Its path inside the archive (`outer.zip/inner.zip/file.fit` for nested ones).
    pub path: String,
    pub result: Result<(Format, [u8; 32], Parsed), FileError>,
    /// Compressed bytes of the outer archive behind us, and in all, for progress.
    pub done: u64,
    pub all: u64,
}

/// Strava's `activities.csv`: the activity type of each file, by its path.
fn strava_types(archive: &mut zip::ZipArchive<std::fs::File>) -> HashMap<String, String> {
    let Ok(entry) = archive.by_name("activities.csv") else { return HashMap::new() };
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(entry.take(64 << 20));
    let Ok(headers) = csv.headers().cloned() else { return HashMap::new() };
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(file), Some(ty)) = (col("Filename"), col("Activity Type")) else { return HashMap::new() };
    let manifest = crate::providers::Manifest::load("strava", &Default::default()).ok();
    csv.records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            let (path, theirs) = (r.get(file)?.trim(), r.get(ty)?.trim());
            // The CSV spells Strava's sport types for people: "Weight Training", "E-Bike Ride".
            let api_name: String = theirs.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let ours = manifest.as_ref()?.activity_type(&api_name);
            (!path.is_empty() && ours != crate::activity_types::GENERIC).then(|| (path.to_string(), ours))
        })
        .collect()
}

/// Walk every activity member of the export at `path`, in archive order; `each` gets
/// each one and returns false to stop (the receiver went away).
pub fn walk(
    path: &Path,
    kind: ExportKind,
    client: &Client,
    mut each: impl FnMut(Member) -> bool,
) -> Result<(), FileError> {
    let file = std::fs::File::open(path)?;
    let all = file.metadata()?.len();
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    let types = if kind == ExportKind::Strava { strava_types(&mut archive) } else { HashMap::new() };
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                let member = Member { path: format!("member #{i}"), result: Err(zip_error(e)), done: 0, all };
                if !each(member) {
                    return Ok(());
                }
                continue;
            }
        };
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("member #{i}"));
        let done = entry.data_start().unwrap_or_default() + entry.compressed_size();
        if entry.is_dir() || hidden(&name) {
            continue;
        }
        if name.to_ascii_lowercase().ends_with(".zip") {
            // A nested archive (Garmin's UploadedFiles_*.zip): read from the stream.
            let mut inner = BufReader::with_capacity(1 << 16, &mut entry);
            loop {
                match zip::read::read_zipfile_from_stream(&mut inner) {
                    Ok(Some(mut f)) => {
                        let inner_name = format!("{name}/{}", f.name().map(|n| n.into_owned()).unwrap_or_default());
                        if f.is_dir() || hidden(&inner_name) || !activity_name(&inner_name) {
                            continue;
                        }
                        let result = member(&mut f, &inner_name, client, &types);
                        if !each(Member { path: inner_name, result, done, all }) {
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let m = Member { path: name.clone(), result: Err(zip_error(e)), done, all };
                        if !each(m) {
                            return Ok(());
                        }
                        break;
                    }
                }
            }
            continue;
        }
        if !activity_name(&name) {
            continue;
        }
        let result = member(&mut entry, &name, client, &types);
        if !each(Member { path: name, result, done, all }) {
            return Ok(());
        }
    }
    Ok(())
}

/// Decode, identify and parse one member.
fn member(
    r: &mut dyn Read,
    name: &str,
    client: &Client,
    types: &HashMap<String, String>,
) -> Result<(Format, [u8; 32], Parsed), FileError> {
    let bytes = read_member(r, name.to_ascii_lowercase().ends_with(".gz"))?;
    let format = sniff(&bytes)?;
    if !matches!(format, Format::Fit | Format::Tcx | Format::Gpx) {
        return Err(FileError::Unsupported(format!("{format} inside an export is not read; import it on its own")));
    }
    let hash = crate::crypto::sha256(&bytes);
    let mut parsed = super::parse(&bytes, format, client, client.tz)?;
    if let Some(ty) = types.get(name) {
        for a in parsed.activities.iter_mut().filter(|a| a.activity_type == crate::activity_types::GENERIC) {
            a.activity_type = ty.clone();
            a.category = crate::activity_types::category(ty);
        }
    }
    Ok((format, hash, parsed))
}
