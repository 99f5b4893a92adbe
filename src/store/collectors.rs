//! Remote Bluetooth collectors registered at this hub, and the batches they forward.
//!
//! A collector (`coachd collect` on a box by the equipment) records sessions the way the
//! daemon's own Bluetooth collector does, commits each batch to its outbox under a
//! sequence number, and forwards them in order. [`Store::ingest_forwarded`] applies a
//! request's batches through the normal ingest (`Store::ingest_in`) in one
//! transaction together with the collector's cursor (`last_seq`) and the replay log, so
//! a batch is applied exactly once: sent again (its answer was lost) it changes nothing;
//! the same sequence number with other content is refused, and so is a batch for a
//! device that is not paired at the hub with the client the batch names.
//!
//! A session the hub already holds for the same device and client, within the session
//! gap of a forwarded one (the strap walked from one collector to another, or a collector
//! restarted mid-workout), is extended rather than doubled: the forwarded activity takes
//! its id, and the stored one's span and heart-rate summary cover both. Two collectors
//! hearing the strap at the same time forward the same beats a few milliseconds apart:
//! a forwarded sample next to one that another collector stored is left out
//! ([`drop_heard_elsewhere`]), so the session holds each beat once.
//!
//! A collector's scope: one bound to a trainer (`collector add NAME --trainer LOGIN`)
//! gets only that trainer's clients' devices in its pairing list, and a batch of it for
//! any other client is refused; an unbound one is studio-wide. A collector also
//! forwards files dropped into its inbox folder: the app parses them (the same reader
//! as the hub's inbox) and hands each here as a [`FileImport`], applied in the same
//! transaction, in sequence with the sessions, its content hash as its cursor.

use super::devices::parse_address;
use super::{on, Tx};
use super::{Store, StoreError};
use crate::crypto::{random_token, same_secret, sha256, token_hash};
use crate::model::{Batch, NewActivity, SeriesKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Replay-log entries kept per collector (older ones are below the cursor and refused
/// as stale). A collector resends at most one request's worth of batches it applied.
const REPLAY_LOG: i64 = 20_000;

/// The largest file a collector forwards from its inbox folder, in bytes: 32 MiB (a FIT
/// of a day-long ride is a few MB, a long ride's TCX some 20). A bigger file stays in the
/// collector's quarantine (it refuses it before sending) and goes into the hub's own
/// inbox or `coachd import` instead; the hub refuses one all the same.
pub const FORWARDED_FILE_MAX: u64 = 32 * 1024 * 1024;

/// The source forwarded sessions are stored under: the same as the daemon's own strap
/// sessions (`ble::session::SOURCE`, as `last_session` reads them), so a device's
/// sessions are one series wherever they were recorded.
pub const FORWARDED_SOURCE: &str = "ble";

/// A collector as `coachd collector list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Collector {
    pub id: i64,
    pub name: String,
    /// The trainer it is bound to: it records and forwards only that trainer's clients.
    /// None: studio-wide.
    pub trainer_id: Option<i64>,
    /// That trainer's login.
    pub trainer: Option<String>,
    pub created_ms: i64,
    pub last_contact_ms: Option<i64>,
    /// The collector's cursor: the highest sequence number applied.
    pub last_seq: i64,
    /// When a request last went through (applied, or found already applied).
    pub applied_ms: Option<i64>,
    pub applied_batches: i64,
    pub applied_samples: i64,
    /// When the collector last reported its state (the fields below).
    pub report_ms: Option<i64>,
    pub backlog_batches: Option<i64>,
    pub backlog_bytes: Option<i64>,
    pub outbox_full: bool,
    /// Batches the collector could not commit because its outbox was full.
    pub not_stored: i64,
    pub adapter: Option<String>,
    /// JSON list of [`InRange`].
    pub in_range: Option<String>,
    /// The last batch refused and why.
    pub refused: Option<String>,
    pub refused_ms: Option<i64>,
    /// Files from its inbox imported, and quarantined at the hub (not readable).
    pub files_imported: i64,
    pub files_quarantined: i64,
    /// The last file quarantined: its name, client and why.
    pub quarantined: Option<String>,
}

/// The columns of [`Collector`].
const COLLECTOR: &str = "SELECT c.*, t.name AS trainer FROM collectors c LEFT JOIN trainers t ON t.id = c.trainer_id";

/// A sensor near a collector, as it reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InRange {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `connected`, `waiting` (with why), or `seen` (advertising, not paired or not connected).
    pub link: String,
    #[serde(default)]
    pub note: Option<String>,
    pub seen_ms: i64,
}

/// What a collector reports of itself (`PUT /collector/v1/status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub backlog_batches: i64,
    pub backlog_bytes: i64,
    pub outbox_full: bool,
    pub not_stored: i64,
    /// The Bluetooth source's state and detail ("running: scanning on hci0; ...").
    pub adapter: String,
    pub in_range: Vec<InRange>,
}

/// One batch as a collector forwards it: sessions (`batch`) or a file from its inbox
/// (`file`), exactly one of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forwarded {
    /// Unique per collector, increasing by one per batch its outbox committed.
    pub seq: i64,
    /// A random id given when the batch was committed to the outbox.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ForwardedFile>,
}

/// A file dropped into a collector's inbox folder (`INBOX/<client>/NAME`), as it
/// forwards it: the folder's name (a client's name at the hub, as in the hub's own
/// inbox), the file's name, its bytes in standard base64 and their SHA-256 in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedFile {
    pub client: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub data: String,
}

/// What the hub made of a forwarded file before the transaction (the app reads it with
/// the file importer's reader), for the client its folder names.
#[derive(Clone, Debug, PartialEq)]
pub struct FileImport {
    pub client: i64,
    pub what: FileContent,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FileContent {
    /// Readable: the batch that stores it, its content hash as the cursor (so the same
    /// file imported before, here or through the hub's inbox, changes nothing).
    Batch(Batch),
    /// Not readable: its bytes are in the hub's quarantine (where, and why); the batch is
    /// applied (acknowledged) all the same, so the collector's outbox drains.
    Quarantined(String),
}

/// A sensor a collector heard during a scan the hub asked of it (as `devices scan`
/// lists one: address, name, the fitness services it advertises, signal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heard {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub rssi: Option<i16>,
}

/// A scan the hub asks of a collector, as the collector learns of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanAsked {
    pub id: i64,
    /// How long to listen.
    pub seconds: u64,
}

/// What became of a scan asked of a collector.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanState {
    /// No answer yet; `sent`: the collector has been told of it.
    Waiting {
        sent: bool,
    },
    Done(Vec<Heard>),
    /// The collector could not scan, and said why.
    Failed(String),
}

/// What a request of batches did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub applied: u64,
    /// Already applied (same id and content): nothing changed.
    pub repeated: u64,
    /// The collector's cursor after the request.
    pub through: i64,
    pub samples: u64,
}

/// Why forwarded batches were refused; nothing of the request was stored.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// The sequence number was applied before with other content (or is below the cursor).
    #[error("batch {seq}: {why}")]
    Replayed { seq: i64, why: String },
    /// A device the hub has not paired with the client the batch names.
    #[error("batch {seq}: device {address} is not paired with client #{client} at the hub; pair it there (coachd devices pair {address} CLIENT) and the collector sends it again")]
    Unpaired { seq: i64, address: String, client: i64 },
    /// A client outside the collector's scope (another trainer's).
    #[error("batch {seq}: {why}; refused, nothing stored")]
    OutOfScope { seq: i64, why: String },
    /// Not a session batch a collector may send.
    #[error("batch {seq}: {why}")]
    Invalid { seq: i64, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The device address of a strap session's external id (`ADDRESS@START_MS`).
fn device_of(a: &NewActivity) -> Option<String> {
    let (address, start) = a.external_id.split_once('@')?;
    start.parse::<i64>().ok()?;
    parse_address(address).ok()
}

impl Store {
    /// Register a collector; returns it and its token (shown once, stored hashed).
    /// `trainer`: bind it to that trainer's clients (None: studio-wide).
    pub async fn add_collector(&self, name: &str, trainer: Option<i64>) -> Result<(Collector, String), StoreError> {
        let token = random_token()?;
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "INSERT INTO collectors (name, token_hash, created_ms, trainer_id) VALUES (?, ?, ?, ?)"
        ))
        .bind(name)
        .bind(token_hash(&token))
        .bind(Store::now_ms())
        .bind(trainer)
        .execute(e)
        .await
        .map(|r| r.rows_affected()));
        match done {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(StoreError::Duplicate(format!("collector {name:?}")))
            }
            other => other?,
        };
        Ok((self.collector(name).await?, token))
    }

    pub async fn collectors(&self) -> Result<Vec<Collector>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{COLLECTOR} ORDER BY c.name"))).fetch_all(e).await)?)
    }

    pub async fn collector(&self, name: &str) -> Result<Collector, StoreError> {
        on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{COLLECTOR} WHERE c.name = ?")))
            .bind(name)
            .fetch_optional(e)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("collector {name:?}")))
    }

    /// Remove a collector: its token stops working at once. What it forwarded stays.
    pub async fn remove_collector(&self, name: &str) -> Result<(), StoreError> {
        let done = on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM collectors WHERE name = ?"))
            .bind(name)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("collector {name:?}")));
        }
        Ok(())
    }

    /// The pairing list a collector records by: every device paired at the hub, or for
    /// a collector bound to a trainer only those of that trainer's clients.
    pub async fn collector_pairings(&self, collector: &Collector) -> Result<Vec<super::devices::Pairing>, StoreError> {
        let all = self.pairings().await?;
        let Some(trainer) = collector.trainer_id else { return Ok(all) };
        let theirs: Vec<i64> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT id FROM clients WHERE trainer_id = ?"))
                .bind(trainer)
                .fetch_all(e)
                .await)?;
        Ok(all.into_iter().filter(|p| theirs.contains(&p.client_id)).collect())
    }

    /// The collector whose token this is (and note the contact), or None.
    pub async fn collector_by_token(&self, token: &str) -> Result<Option<Collector>, StoreError> {
        let hash = token_hash(token);
        let found: Option<(Vec<u8>, String)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT token_hash, name FROM collectors WHERE token_hash = ?"
        ))
        .bind(&hash)
        .fetch_optional(e)
        .await)?;
        // The lookup is by the hash (which says nothing of the token); compared again in
        // constant time so no early exit depends on the stored value.
        let Some((stored, name)) =
            found.filter(|(stored, _)| same_secret(&crate::crypto::hex(stored), &crate::crypto::hex(&hash)))
        else {
            return Ok(None);
        };
        debug_assert_eq!(stored, hash);
        on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE collectors SET last_contact_ms = ? WHERE name = ?"))
            .bind(Store::now_ms())
            .bind(&name)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(Some(self.collector(&name).await?))
    }

    pub async fn set_collector_report(&self, id: i64, report: &Report) -> Result<(), StoreError> {
        let in_range = serde_json::to_string(&report.in_range).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE collectors SET report_ms = ?, backlog_batches = ?, backlog_bytes = ?, outbox_full = ?,
                    not_stored = ?, adapter = ?, in_range = ? WHERE id = ?",
        ))
        .bind(Store::now_ms())
        .bind(report.backlog_batches)
        .bind(report.backlog_bytes)
        .bind(report.outbox_full)
        .bind(report.not_stored)
        .bind(&report.adapter)
        .bind(in_range)
        .bind(id)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Remember why a collector's batch was refused, for `collector list`.
    pub async fn note_collector_refusal(&self, id: i64, why: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE collectors SET refused = ?, refused_ms = ? WHERE id = ?"))
            .bind(why)
            .bind(Store::now_ms())
            .bind(id)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ask a collector to scan for `seconds`; the request's id.
    pub async fn ask_scan(&self, collector: i64, seconds: u64) -> Result<i64, StoreError> {
        let id = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO collector_scans (collector_id, seconds, asked_ms) VALUES (?, ?, ?) RETURNING id",
        ))
        .bind(collector)
        .bind(i64::try_from(seconds).unwrap_or(i64::MAX))
        .bind(Store::now_ms())
        .fetch_one(e)
        .await)?;
        Ok(id)
    }

    /// The oldest scan asked of this collector and not answered yet, marked as sent.
    pub async fn open_scan(&self, collector: i64) -> Result<Option<ScanAsked>, StoreError> {
        let row: Option<(i64, i64)> = on!(&self.db, |e, sql| {
            sqlx::query_as(&sql(
            "SELECT id, seconds FROM collector_scans WHERE collector_id = ? AND done_ms IS NULL ORDER BY id LIMIT 1",
        ))
        .bind(collector)
        .fetch_optional(e)
        .await
        })?;
        let Some((id, seconds)) = row else { return Ok(None) };
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE collector_scans SET sent_ms = coalesce(sent_ms, ?) WHERE id = ?"
        ))
        .bind(Store::now_ms())
        .bind(id)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(Some(ScanAsked { id, seconds: u64::try_from(seconds).unwrap_or_default() }))
    }

    /// A collector's answer to a scan asked of it: what it heard, or why it could not
    /// scan. False when no such open request of this collector exists (answered
    /// already, given up on, or another collector's).
    pub async fn finish_scan(
        &self,
        collector: i64,
        id: i64,
        answer: &Result<Vec<Heard>, String>,
    ) -> Result<bool, StoreError> {
        let (seen, error) = match answer {
            Ok(heard) => (Some(serde_json::to_string(heard).map_err(|e| StoreError::Corrupt(e.to_string()))?), None),
            Err(why) => (None, Some(why.as_str())),
        };
        let done =
            on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE collector_scans SET done_ms = ?, seen = ?, error = ?
              WHERE id = ? AND collector_id = ? AND done_ms IS NULL",))
            .bind(Store::now_ms())
            .bind(seen)
            .bind(error)
            .bind(id)
            .bind(collector)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub async fn scan_state(&self, id: i64) -> Result<ScanState, StoreError> {
        /// sent_ms, done_ms, seen, error
        type Row = (Option<i64>, Option<i64>, Option<String>, Option<String>);
        let row: Option<Row> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT sent_ms, done_ms, seen, error FROM collector_scans WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(e)
        .await)?;
        let Some((sent, done, seen, error)) = row else {
            return Err(StoreError::NotFound(format!("scan request #{id}")));
        };
        Ok(match (done, seen, error) {
            (None, ..) => ScanState::Waiting { sent: sent.is_some() },
            (Some(_), _, Some(why)) => ScanState::Failed(why),
            (Some(_), seen, None) => ScanState::Done(
                serde_json::from_str(seen.as_deref().unwrap_or("[]"))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
        })
    }

    /// Forget a scan request (answered and read, or given up on).
    pub async fn drop_scan(&self, id: i64) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("DELETE FROM collector_scans WHERE id = ?"))
            .bind(id)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Apply a collector's batches, in order, exactly once, with its cursor, in one
    /// transaction: all of them or (refused) none. `files`: what the app made of each
    /// file batch, by sequence number. `gap_ms`: the session gap within which a device's
    /// stored session is extended.
    pub async fn ingest_forwarded(
        &self,
        collector: &Collector,
        batches: &[Forwarded],
        files: &std::collections::HashMap<i64, FileImport>,
        gap_ms: i64,
    ) -> Result<Applied, ForwardError> {
        let mut tx = self.write().await?;
        let cursor: i64 =
            on!(&mut tx, |e, sql| sqlx::query_scalar(&sql("SELECT last_seq FROM collectors WHERE id = ?"))
                .bind(collector.id)
                .fetch_optional(&mut **e)
                .await)
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::NotFound(format!("collector #{}", collector.id)))?;
        let paired: std::collections::HashMap<String, i64> =
            self.pairings().await?.into_iter().map(|p| (p.address.to_ascii_uppercase(), p.client_id)).collect();
        let trainers: Vec<(i64, Option<i64>)> =
            on!(&mut tx, |e, sql| sqlx::query_as(&sql("SELECT id, trainer_id FROM clients")).fetch_all(&mut **e).await)
                .map_err(StoreError::from)?;
        let trainers: std::collections::HashMap<i64, Option<i64>> = trainers.into_iter().collect();
        let scope = Scope { collector, trainers: &trainers };
        let mut out = Applied { through: cursor, ..Applied::default() };
        let (mut imported, mut quarantined, mut last_quarantined) = (0i64, 0i64, None::<String>);
        let now = Store::now_ms();
        let mut last_seen = cursor;
        for f in batches {
            if f.seq <= last_seen && f.seq > cursor {
                return Err(ForwardError::Invalid {
                    seq: f.seq,
                    why: "batches out of order within the request".into(),
                });
            }
            let digest = digest_of(f)?;
            let logged: Option<(String, Vec<u8>)> = on!(&mut tx, |e, sql| sqlx::query_as(&sql(
                "SELECT batch_id, digest FROM collector_batches WHERE collector_id = ? AND seq = ?"
            ))
            .bind(collector.id)
            .bind(f.seq)
            .fetch_optional(&mut **e)
            .await)
            .map_err(StoreError::from)?;
            match logged {
                Some((id, d)) if id == f.id && d == digest => {
                    out.repeated += 1;
                    continue;
                }
                Some((id, _)) => {
                    let why = if id == f.id {
                        format!("applied before with other content (batch id {id}); refused, nothing stored")
                    } else {
                        format!(
                            "sequence number applied before as batch {id}, now sent as {}; refused, nothing stored",
                            f.id
                        )
                    };
                    return Err(ForwardError::Replayed { seq: f.seq, why });
                }
                None if f.seq <= cursor => {
                    return Err(ForwardError::Replayed {
                        seq: f.seq,
                        why: format!(
                            "at or below this collector's cursor ({cursor}) and not in the replay log; refused"
                        ),
                    })
                }
                None => {}
            }
            last_seen = f.seq;
            match (&f.batch, &f.file) {
                (Some(b), None) => {
                    let mut batch = check(f.seq, b, &paired, &scope)?;
                    let mut with_hr = Vec::new();
                    let mut newest = Vec::new();
                    for a in &mut batch.activities {
                        settle_session(&mut tx, a, gap_ms).await?;
                        // Every part, with samples or only its close: a part's own figures
                        // (one collector's average) must not stand for the whole session.
                        with_hr.push(a.external_id.clone());
                        newest.push((a.external_id.clone(), drop_heard_elsewhere(&mut tx, collector.id, a).await?));
                    }
                    let report = Store::ingest_in(&mut tx, &batch).await?;
                    for external in with_hr {
                        super::ingest::restate_hr(&mut tx, FORWARDED_SOURCE, &external).await?;
                    }
                    for (external, kinds) in newest {
                        note_forwarded(&mut tx, collector.id, &external, &kinds).await?;
                    }
                    out.samples += report.samples_written as u64;
                }
                (None, Some(file)) => {
                    let import = files.get(&f.seq).ok_or_else(|| ForwardError::Invalid {
                        seq: f.seq,
                        why: format!("file {:?} was not read", file.name),
                    })?;
                    scope.allows(f.seq, import.client)?;
                    match &import.what {
                        FileContent::Batch(b) => {
                            let Some(c) = b.cursor.as_ref().filter(|_| b.source != FORWARDED_SOURCE) else {
                                return Err(ForwardError::Invalid {
                                    seq: f.seq,
                                    why: format!("file {:?}: not a file's batch", file.name),
                                });
                            };
                            let known: Option<String> = on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(
                                "SELECT value FROM cursors WHERE source = ? AND stream = ?"
                            ))
                            .bind(&b.source)
                            .bind(&c.stream)
                            .fetch_optional(&mut **e)
                            .await)
                            .map_err(StoreError::from)?;
                            // Imported before (here or from the hub's own inbox): nothing changes.
                            if known.is_none() {
                                let report = Store::ingest_in(&mut tx, b).await?;
                                out.samples += report.samples_written as u64;
                            }
                            imported += 1;
                        }
                        FileContent::Quarantined(why) => {
                            quarantined += 1;
                            last_quarantined = Some(why.clone());
                        }
                    }
                }
                _ => {
                    return Err(ForwardError::Invalid {
                        seq: f.seq,
                        why: "a forwarded batch holds either sessions (\"batch\") or a file (\"file\")".into(),
                    })
                }
            }
            on!(&mut tx, |e, sql| sqlx::query(&sql(
                "INSERT INTO collector_batches (collector_id, seq, batch_id, digest, applied_ms) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(collector.id)
            .bind(f.seq)
            .bind(&f.id)
            .bind(digest.to_vec())
            .bind(now)
            .execute(&mut **e)
            .await.map(|r| r.rows_affected()))
            .map_err(StoreError::from)?;
            out.applied += 1;
            out.through = out.through.max(f.seq);
        }
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "UPDATE collectors SET last_seq = ?, applied_batches = applied_batches + ?,
                    applied_samples = applied_samples + ?, last_contact_ms = ?, applied_ms = ?,
                    files_imported = files_imported + ?, files_quarantined = files_quarantined + ?,
                    quarantined = coalesce(?, quarantined) WHERE id = ?",
        ))
        .bind(out.through)
        .bind(out.applied as i64)
        .bind(out.samples as i64)
        .bind(now)
        .bind(now)
        .bind(imported)
        .bind(quarantined)
        .bind(last_quarantined)
        .bind(collector.id)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from)?;
        on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM collector_batches WHERE collector_id = ? AND seq <= ?"))
            .bind(collector.id)
            .bind(out.through - REPLAY_LOG)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(out)
    }
}

/// The replay log's digest of a forwarded batch: of its sessions as JSON (as before
/// files were forwarded), or of the file as sent (its bytes, name and client).
fn digest_of(f: &Forwarded) -> Result<[u8; 32], StoreError> {
    let json = match (&f.batch, &f.file) {
        (Some(b), _) => serde_json::to_vec(b),
        (None, Some(file)) => serde_json::to_vec(file),
        (None, None) => Ok(Vec::new()),
    };
    Ok(sha256(&json.map_err(|e| StoreError::Corrupt(e.to_string()))?))
}

/// Which clients a collector may submit for: all, or those of the trainer it is bound to.
struct Scope<'a> {
    collector: &'a Collector,
    /// Each client's trainer.
    trainers: &'a std::collections::HashMap<i64, Option<i64>>,
}

impl Scope<'_> {
    fn allows(&self, seq: i64, client: i64) -> Result<(), ForwardError> {
        let Some(trainer) = self.collector.trainer_id else { return Ok(()) };
        let login = self.collector.trainer.as_deref().unwrap_or("?");
        match self.trainers.get(&client) {
            Some(Some(t)) if *t == trainer => Ok(()),
            Some(_) => Err(ForwardError::OutOfScope {
                seq,
                why: format!(
                    "client #{client} is not a client of trainer {login}, the only trainer collector {} \
                     submits for",
                    self.collector.name
                ),
            }),
            None => Err(ForwardError::OutOfScope { seq, why: format!("no client #{client} at the hub") }),
        }
    }
}

/// A forwarded batch as the hub stores it, or why it may not be: strap sessions only,
/// each of a device paired at the hub with the client the session names, a client in
/// the collector's scope; the hub keeps the cursor itself.
fn check(
    seq: i64,
    b: &Batch,
    paired: &std::collections::HashMap<String, i64>,
    scope: &Scope<'_>,
) -> Result<Batch, ForwardError> {
    let invalid = |why: String| ForwardError::Invalid { seq, why };
    if b.source != FORWARDED_SOURCE {
        return Err(invalid(format!("source {:?}: a collector forwards Bluetooth sessions only", b.source)));
    }
    if !b.daily.is_empty() || !b.buckets.is_empty() || b.cursor.is_some() {
        return Err(invalid("a collector forwards sessions only (no daily metrics, buckets or cursor)".into()));
    }
    let problems = b.problems();
    if !problems.is_empty() {
        return Err(invalid(problems.join("; ")));
    }
    for a in &b.activities {
        let Some(address) = device_of(a) else {
            return Err(invalid(format!("activity {:?} is not a device session (ADDRESS@START)", a.external_id)));
        };
        if paired.get(&address) != Some(&a.client_id) {
            return Err(ForwardError::Unpaired { seq, address, client: a.client_id });
        }
        scope.allows(seq, a.client_id).map_err(|e| match e {
            ForwardError::OutOfScope { seq, why } => {
                ForwardError::OutOfScope { seq, why: format!("device {address}: {why}") }
            }
            other => other,
        })?;
    }
    Ok(b.clone())
}

/// A forwarded sample this close to one another collector stored is the same reading
/// heard by both (BLE notifications of one strap reach two collectors a few ms apart).
/// Never more than half the series' own spacing, so two readings are never taken for one.
const SAME_READING_MS: i64 = 500;

/// Half the median spacing of sorted times, capped at [`SAME_READING_MS`]; None for fewer
/// than two.
fn half_spacing(times: &[i64]) -> Option<i64> {
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some((gaps[gaps.len() / 2] / 2).min(SAME_READING_MS))
}

/// Leave out of a forwarded session the samples another collector already stored:
/// those within the tolerance of a stored sample newer than this collector's own newest
/// of the session (what it stored itself is never newer). Returns the newest time of
/// each series as forwarded, to remember as this collector's own.
async fn drop_heard_elsewhere(
    tx: &mut Tx<'_>,
    collector: i64,
    a: &mut NewActivity,
) -> Result<Vec<(SeriesKind, i64)>, StoreError> {
    let mut newest = Vec::new();
    let id: Option<i64> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
        "SELECT id FROM activities WHERE source = ? AND external_id = ?"
    ))
    .bind(FORWARDED_SOURCE)
    .bind(&a.external_id)
    .fetch_optional(&mut **e)
    .await)?;
    for s in &mut a.series {
        let mut times: Vec<i64> = s.samples.iter().map(|p| p.t_ms).collect();
        times.sort_unstable();
        let (Some(&lo), Some(&hi)) = (times.first(), times.last()) else { continue };
        newest.push((s.kind, hi));
        let Some(id) = id else { continue };
        let own: Option<i64> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
            "SELECT last_ms FROM collector_sessions WHERE collector_id = ? AND activity_id = ? AND kind = ?"
        ))
        .bind(collector)
        .bind(id)
        .bind(s.kind.id())
        .fetch_optional(&mut **e)
        .await)?;
        let stored = super::ingest::stored_times(tx, id, s.kind, lo - SAME_READING_MS, hi + SAME_READING_MS).await?;
        let others: Vec<i64> = stored.into_iter().filter(|t| own.is_none_or(|own| *t > own)).collect();
        if others.is_empty() {
            continue;
        }
        let tolerance = half_spacing(&times).or_else(|| half_spacing(&others)).unwrap_or(SAME_READING_MS);
        let before = s.samples.len();
        s.samples.retain(|p| {
            let i = others.partition_point(|t| *t < p.t_ms);
            let near = |j: usize| others.get(j).is_some_and(|t| (t - p.t_ms).abs() <= tolerance);
            !(near(i) || (i > 0 && near(i - 1)))
        });
        if s.samples.len() < before {
            tracing::debug!(
                session = %a.external_id, kind = s.kind.as_str(), left_out = before - s.samples.len(),
                "samples another collector had already forwarded"
            );
        }
    }
    a.series.retain(|s| !s.samples.is_empty());
    Ok(newest)
}

/// Remember the newest sample of each series this collector forwarded for a session.
async fn note_forwarded(
    tx: &mut Tx<'_>,
    collector: i64,
    external_id: &str,
    kinds: &[(SeriesKind, i64)],
) -> Result<(), StoreError> {
    let id: Option<i64> = on!(&mut *tx, |e, sql| sqlx::query_scalar(&sql(
        "SELECT id FROM activities WHERE source = ? AND external_id = ?"
    ))
    .bind(FORWARDED_SOURCE)
    .bind(external_id)
    .fetch_optional(&mut **e)
    .await)?;
    let Some(id) = id else { return Ok(()) };
    for (kind, last) in kinds {
        on!(&mut *tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO collector_sessions (collector_id, activity_id, kind, last_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (collector_id, activity_id, kind) DO UPDATE SET last_ms = CASE
                 WHEN excluded.last_ms > collector_sessions.last_ms THEN excluded.last_ms
                 ELSE collector_sessions.last_ms END"
        ))
        .bind(collector)
        .bind(id)
        .bind(kind.id())
        .bind(last)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Give a forwarded session the id of the device's stored session it goes on with, and
/// widen it to cover the stored span (a batch from the collector that saw less of it
/// must not shorten it).
async fn settle_session(tx: &mut Tx<'_>, a: &mut NewActivity, gap_ms: i64) -> Result<(), StoreError> {
    let Some(address) = device_of(a) else { return Ok(()) };
    let (start, end) = (a.start.timestamp_millis(), a.end.timestamp_millis());
    let mut stored: Option<(i64, i64)> = on!(&mut *tx, |e, sql| sqlx::query_as(&sql(
        "SELECT start_ms, end_ms FROM activities WHERE source = ? AND external_id = ?"
    ))
    .bind(FORWARDED_SOURCE)
    .bind(&a.external_id)
    .fetch_optional(&mut **e)
    .await)?;
    if stored.is_none() {
        let prefix = format!("{address}@");
        let other: Option<(String, i64, i64)> = on!(&mut *tx, |e, sql| {
            sqlx::query_as(&sql("SELECT external_id, start_ms, end_ms FROM activities
              WHERE source = ? AND client_id = ? AND substr(external_id, 1, CAST(? AS INTEGER)) = ? AND start_ms <= ? AND end_ms >= ?
              ORDER BY end_ms DESC LIMIT 1",))
            .bind(FORWARDED_SOURCE)
            .bind(a.client_id)
            .bind(prefix.len() as i64)
            .bind(&prefix)
            .bind(end + gap_ms)
            .bind(start - gap_ms)
            .fetch_optional(&mut **e)
            .await
        })?;
        if let Some((external, s, e)) = other {
            tracing::debug!(from = %a.external_id, into = %external, "a forwarded session goes on with the stored one");
            a.external_id = external;
            stored = Some((s, e));
        }
    }
    if let Some((s, e)) = stored {
        let (lo, hi) = (start.min(s), end.max(e));
        a.start = chrono::DateTime::from_timestamp_millis(lo).unwrap_or(a.start);
        a.end = chrono::DateTime::from_timestamp_millis(hi).unwrap_or(a.end);
        a.duration_s = (hi - lo) as f64 / 1000.0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{half_spacing, SAME_READING_MS};

    #[test]
    fn the_same_reading_is_within_half_a_series_spacing_and_never_over_the_cap() {
        assert_eq!(half_spacing(&[0, 1000, 2000, 3000]), Some(500));
        assert_eq!(half_spacing(&[0, 250, 500, 750, 5000]), Some(125), "the median, not a dropout");
        assert_eq!(half_spacing(&[0, 3000, 6000]), Some(SAME_READING_MS));
        assert_eq!(half_spacing(&[7]), None);
        assert_eq!(half_spacing(&[7, 7]), None);
    }
}
