//! Remote Bluetooth collectors, hub side: register one (its token shown once; bound to
//! a trainer or studio-wide), list what each last reported, remove one (its token stops
//! working); and what a collector may do with its token: read its pairing list, report
//! its state, forward batches: sessions, and files from its inbox folder, read here
//! with the file importer's reader ([`crate::files::read_bytes`]).

use super::{App, AppError, AppResult};
use crate::crypto::Secret;
use crate::store::collectors::{
    Applied, Collector, FileContent, FileImport, ForwardError, Forwarded, Heard, InRange, Report, ScanAsked, ScanState,
};
use crate::store::devices::Pairing;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Read;

pub use crate::store::collectors::FORWARDED_FILE_MAX;

/// A forwarded request may unpack to at most this much JSON (about a week of one strap).
pub const BATCHES_LIMIT: u64 = 256 * 1024 * 1024;
/// A collector that has not been heard from for this long is shown as silent.
const SILENT_AFTER_S: i64 = 120;
/// A scan's answer may name at most this many sensors (a busy gym has dozens).
const HEARD_LIMIT: usize = 1000;

/// "40 s", "5 min", "3 h", "2 days": how long ago, for messages and listings.
pub fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub struct CollectorAdded {
    pub name: String,
    /// The trainer it is bound to (None: studio-wide).
    pub trainer: Option<String>,
    /// Shown once; only its hash is stored.
    pub token: Secret<String>,
}

/// One collector as `coachd collector list` and `/metrics` show it.
#[derive(Clone, Debug, Serialize)]
pub struct CollectorLine {
    pub name: String,
    /// The trainer it is bound to (it records and forwards only their clients), or None:
    /// studio-wide.
    pub trainer: Option<String>,
    /// `ok`, `never` (no contact yet), `silent` (no contact for two minutes),
    /// `outbox_full`, or `refused` (a request was refused since the last that went through).
    pub state: &'static str,
    pub created: DateTime<Utc>,
    pub last_contact: Option<DateTime<Utc>>,
    pub last_contact_age_s: Option<i64>,
    /// The collector's cursor: the last sequence number the hub applied.
    pub last_seq: i64,
    pub applied_batches: i64,
    pub applied_samples: i64,
    pub backlog_batches: Option<i64>,
    pub backlog_bytes: Option<i64>,
    pub outbox_full: bool,
    pub not_stored: i64,
    pub adapter: Option<String>,
    pub in_range: Vec<InRange>,
    pub refused: Option<String>,
    pub refused_at: Option<DateTime<Utc>>,
    /// Files from its inbox folder imported, and quarantined at the hub (unreadable).
    pub files_imported: i64,
    pub files_quarantined: i64,
    /// The last one quarantined: where it is at the hub and why.
    pub quarantined: Option<String>,
}

/// Why a collector's request was refused, in the kinds the web answers differently.
#[derive(Debug, thiserror::Error)]
pub enum CollectorRefusal {
    /// 401: no token, an unknown one, or a removed collector's.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a device not paired at the hub with the client the batch names, or a client
    /// outside the collector's scope.
    #[error("{message}")]
    Forbidden { message: String, seq: i64 },
    /// 409: a sequence number already applied with other content.
    #[error("{message}")]
    Replayed { message: String, seq: i64 },
    /// 404: an answer to a scan request that is not open.
    #[error("{0}")]
    NotAsked(String),
    /// 400: not gzip, not JSON, not a session batch.
    #[error("{message}")]
    BadBody { message: String, seq: Option<i64> },
    #[error(transparent)]
    Failed(#[from] AppError),
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn line(c: Collector, now: DateTime<Utc>) -> CollectorLine {
    let age = c.last_contact_ms.map(|ms| (now - at(ms)).num_seconds());
    // Refused since the last request that went through: still stuck (the collector
    // keeps reporting, so its last contact says nothing of its batches).
    let refused_now = c.refused_ms.is_some_and(|r| c.applied_ms.is_none_or(|a| r > a));
    let state = match age {
        None => "never",
        Some(s) if s > SILENT_AFTER_S => "silent",
        _ if c.outbox_full => "outbox_full",
        _ if refused_now => "refused",
        _ => "ok",
    };
    CollectorLine {
        state,
        created: at(c.created_ms),
        last_contact: c.last_contact_ms.map(at),
        last_contact_age_s: age,
        last_seq: c.last_seq,
        applied_batches: c.applied_batches,
        applied_samples: c.applied_samples,
        backlog_batches: c.backlog_batches,
        backlog_bytes: c.backlog_bytes,
        outbox_full: c.outbox_full,
        not_stored: c.not_stored,
        adapter: c.adapter,
        in_range: c.in_range.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
        refused: c.refused,
        refused_at: c.refused_ms.map(at),
        files_imported: c.files_imported,
        files_quarantined: c.files_quarantined,
        quarantined: c.quarantined,
        trainer: c.trainer,
        name: c.name,
    }
}

/// A collector's name: what the admin calls the box ("studio", "garage-gym").
fn check_name(name: &str) -> AppResult<&str> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(AppError::input(format!(
            "{name:?} is not a collector name: use up to 64 letters, digits, '-', '_' or '.', e.g. studio-east"
        )))
    }
}

impl App {
    /// Register a collector; its token is returned once. `trainer`: the login of the
    /// trainer it is bound to (it gets only their clients' devices and may submit only
    /// for their clients); None: studio-wide.
    pub async fn add_collector(&self, name: &str, trainer: Option<&str>) -> AppResult<CollectorAdded> {
        let name = check_name(name)?;
        let trainer = match trainer.map(str::trim) {
            None => None,
            Some(login) => Some(
                self.store
                    .trainer_login(login)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound(format!(
                            "no trainer {login:?}: coachd trainer list shows them (coachd trainer add NAME adds one)"
                        ))
                    })?
                    .0
                    .id,
            ),
        };
        let (c, token) = self.store.add_collector(name, trainer).await.map_err(|e| match e {
            StoreError::Duplicate(_) => {
                AppError::input(format!("a collector named {name:?} exists; remove it first or choose another name"))
            }
            other => other.into(),
        })?;
        Ok(CollectorAdded { name: c.name, trainer: c.trainer, token: Secret::new(token) })
    }

    pub async fn collectors(&self) -> AppResult<Vec<CollectorLine>> {
        let now = Utc::now();
        Ok(self.store.collectors().await?.into_iter().map(|c| line(c, now)).collect())
    }

    /// Remove a collector: its token is refused from now on; what it forwarded stays.
    pub async fn remove_collector(&self, name: &str) -> AppResult<()> {
        self.store.remove_collector(name.trim()).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                AppError::NotFound(format!("no collector named {:?} (coachd collector list shows them)", name.trim()))
            }
            other => other.into(),
        })
    }

    /// The collector a bearer token belongs to.
    pub async fn collector_by_token(&self, token: Option<&str>) -> Result<Collector, CollectorRefusal> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(CollectorRefusal::Unauthorized(
                "missing header Authorization: Bearer TOKEN (coachd collector add NAME at the hub prints it)".into(),
            ));
        };
        let found = if crate::crypto::is_token(token) {
            self.store.collector_by_token(token).await.map_err(AppError::from)?
        } else {
            None
        };
        found.ok_or_else(|| {
            CollectorRefusal::Unauthorized(
                "unknown or revoked collector token: register the collector again with coachd collector add NAME"
                    .into(),
            )
        })
    }

    /// The pairing list a collector records by: every device paired at the hub (for a
    /// collector bound to a trainer, those of the trainer's clients), with its client's
    /// id and time zone (nothing else of the client).
    pub async fn collector_pairings(&self, collector: &Collector) -> AppResult<Vec<Pairing>> {
        Ok(self.store.collector_pairings(collector).await?)
    }

    /// The scan the hub asks of this collector, if any (sent with its pairing list).
    pub async fn collector_open_scan(&self, collector: &Collector) -> AppResult<Option<ScanAsked>> {
        Ok(self.store.open_scan(collector.id).await?)
    }

    /// A collector's answer to scan `id`: the sensors it heard, or why it could not scan.
    pub async fn collector_scan_answer(
        &self,
        collector: &Collector,
        id: i64,
        answer: Result<Vec<Heard>, String>,
    ) -> Result<(), CollectorRefusal> {
        let bad = |message: String| CollectorRefusal::BadBody { message, seq: None };
        let answer = match answer {
            Ok(heard) if heard.len() > HEARD_LIMIT => {
                return Err(bad(format!("{} sensors in one scan answer; at most {HEARD_LIMIT}", heard.len())))
            }
            Ok(heard) => {
                let mut clean = Vec::with_capacity(heard.len());
                for mut h in heard {
                    h.address = crate::store::devices::parse_address(&h.address)
                        .map_err(|e| bad(format!("scan answer: {e}")))?;
                    h.name = h.name.map(|n| n.chars().take(64).collect());
                    h.services.retain(|s| s.len() <= 32);
                    clean.push(h);
                }
                Ok(clean)
            }
            Err(why) => Err(why.chars().take(500).collect()),
        };
        if self.store.finish_scan(collector.id, id, &answer).await.map_err(AppError::from)? {
            Ok(())
        } else {
            Err(CollectorRefusal::NotAsked(format!(
                "no open scan request #{id} for collector {:?}: answered already, or the hub gave up waiting",
                collector.name
            )))
        }
    }

    /// `devices scan --collector NAME`: ask that collector to listen for `listen` and
    /// wait up to `wait` for what it heard. The collector learns of the request when it
    /// next reads its pairing list (every `collector.report_s` there, 10 s by default).
    pub async fn scan_at_collector(
        &self,
        name: &str,
        listen: std::time::Duration,
        wait: std::time::Duration,
    ) -> AppResult<Vec<super::devices::SeenDevice>> {
        let name = name.trim();
        let collector = self.store.collector(name).await.map_err(|e| match e {
            StoreError::NotFound(_) => AppError::NotFound(format!(
                "no collector named {name:?}: coachd collector list shows the registered ones \
                 (a removed collector's token is revoked; register it again with coachd collector add {name})"
            )),
            other => other.into(),
        })?;
        let id = self.store.ask_scan(collector.id, listen.as_secs()).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.store.scan_state(id).await? {
                ScanState::Done(heard) => {
                    self.store.drop_scan(id).await?;
                    return self.remember_heard(heard, Some(&collector.name)).await;
                }
                ScanState::Failed(why) => {
                    self.store.drop_scan(id).await?;
                    return Err(AppError::Runtime(anyhow::anyhow!(
                        "collector {} could not scan: {why}",
                        collector.name
                    )));
                }
                ScanState::Waiting { sent } => {
                    if tokio::time::Instant::now() >= deadline {
                        self.store.drop_scan(id).await?;
                        let now = self.store.collector(name).await?;
                        let age = now.last_contact_ms.map(|ms| (Utc::now() - at(ms)).num_seconds());
                        let seen = match age {
                            None => format!(
                                "collector {} has never contacted this hub; is coachd collect running there with its token?",
                                now.name
                            ),
                            Some(s) if sent && s < i64::try_from(wait.as_secs()).unwrap_or(i64::MAX) => format!(
                                "collector {} is in contact (last seen {} ago): its log says why the scan did not finish",
                                now.name,
                                ago(s)
                            ),
                            Some(s) => format!("collector {} last seen {} ago; is it running?", now.name, ago(s)),
                        };
                        let what = if sent {
                            "took the scan request but sent no answer"
                        } else {
                            "did not pick up the scan request"
                        };
                        return Err(AppError::Runtime(anyhow::anyhow!(
                            "no scan from collector {} within {} s: it {what}. {seen}",
                            now.name,
                            wait.as_secs()
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }

    pub async fn collector_report(&self, collector: &Collector, report: &Report) -> AppResult<()> {
        if report.outbox_full && !collector.outbox_full {
            tracing::error!(collector = %collector.name, "the collector's outbox is full: new sessions are not stored there");
        }
        Ok(self.store.set_collector_report(collector.id, report).await?)
    }

    /// Apply a request of forwarded batches (`gzip`: the body is gzip-compressed JSON),
    /// all or none, each exactly once.
    pub async fn collector_batches(
        &self,
        collector: &Collector,
        body: &[u8],
        gzip: bool,
    ) -> Result<Applied, CollectorRefusal> {
        let bad = |message: String| CollectorRefusal::BadBody { message, seq: None };
        let mut json = Vec::new();
        if gzip {
            let read = flate2::read::GzDecoder::new(body).take(BATCHES_LIMIT + 1).read_to_end(&mut json);
            read.map_err(|e| bad(format!("the body is not gzip: {e}")))?;
            if json.len() as u64 > BATCHES_LIMIT {
                return Err(bad(format!("the body unpacks to over {BATCHES_LIMIT} bytes; send fewer batches at once")));
            }
        } else {
            json.extend_from_slice(body);
        }
        #[derive(serde::Deserialize)]
        struct Request {
            batches: Vec<Forwarded>,
        }
        let request: Request = serde_json::from_slice(&json)
            .map_err(|e| bad(format!("the body is not a list of forwarded batches: {e}")))?;
        let gap_ms = i64::try_from(self.config.ble.session_silence_s * 1000).unwrap_or(i64::MAX);
        let files = match self.forwarded_files(collector, &request.batches).await {
            Ok(files) => files,
            Err(refusal) => return Err(self.refused(collector, refusal).await),
        };
        match self.store.ingest_forwarded(collector, &request.batches, &files, gap_ms).await {
            Ok(applied) => {
                if applied.applied > 0 {
                    tracing::info!(
                        collector = %collector.name, applied = applied.applied, repeated = applied.repeated,
                        through = applied.through, samples = applied.samples, "forwarded batches applied"
                    );
                }
                Ok(applied)
            }
            Err(refused) => {
                let message = refused.to_string();
                let refusal = match refused {
                    ForwardError::Store(e) => return Err(CollectorRefusal::Failed(e.into())),
                    ForwardError::Unpaired { seq, .. } | ForwardError::OutOfScope { seq, .. } => {
                        CollectorRefusal::Forbidden { message: message.clone(), seq }
                    }
                    ForwardError::Replayed { seq, .. } => CollectorRefusal::Replayed { message: message.clone(), seq },
                    ForwardError::Invalid { seq, .. } => {
                        CollectorRefusal::BadBody { message: message.clone(), seq: Some(seq) }
                    }
                };
                Err(self.refused(collector, refusal).await)
            }
        }
    }

    /// Log a refusal and keep it for `collector list`.
    async fn refused(&self, collector: &Collector, refusal: CollectorRefusal) -> CollectorRefusal {
        if matches!(refusal, CollectorRefusal::Failed(_)) {
            return refusal;
        }
        let message = refusal.to_string();
        tracing::warn!(collector = %collector.name, "forwarded batches refused: {message}");
        if let Err(e) = self.store.note_collector_refusal(collector.id, &message).await {
            tracing::warn!("recording the refusal: {e}");
        }
        refusal
    }

    /// Read the files of a request (each for the client its folder names, in the
    /// collector's scope): the batch that imports it, or, unreadable, its bytes kept in
    /// the hub's quarantine with the reason. Nothing is kept of a file refused here.
    async fn forwarded_files(
        &self,
        collector: &Collector,
        batches: &[Forwarded],
    ) -> Result<std::collections::HashMap<i64, FileImport>, CollectorRefusal> {
        use base64::Engine;
        let mut out = std::collections::HashMap::new();
        for f in batches {
            let Some(file) = &f.file else { continue };
            let seq = f.seq;
            let bad = |why: String| CollectorRefusal::BadBody {
                message: format!("batch {seq}: file {:?}: {why}; refused, nothing stored", file.name),
                seq: Some(seq),
            };
            let forbidden = |why: String| CollectorRefusal::Forbidden {
                message: format!(
                    "batch {seq}: file {:?} of folder {:?}: {why}; refused, nothing stored",
                    file.name, file.client
                ),
                seq,
            };
            let client = match self.store.client_by_name(file.client.trim()).await {
                Ok(c) => c,
                Err(StoreError::NotFound(_)) => {
                    return Err(forbidden(
                        "no client of that name at the hub (a collector's inbox folders are named like the hub's:                          INBOX/<client name>/)"
                            .into(),
                    ))
                }
                Err(e) => return Err(CollectorRefusal::Failed(e.into())),
            };
            if let Some(trainer) = collector.trainer_id {
                if client.trainer_id != Some(trainer) {
                    return Err(forbidden(format!(
                        "not a client of trainer {}, the only trainer collector {} submits for",
                        collector.trainer.as_deref().unwrap_or("?"),
                        collector.name
                    )));
                }
            }
            if file.size > FORWARDED_FILE_MAX {
                return Err(bad(format!("{} bytes; a collector forwards at most {FORWARDED_FILE_MAX}", file.size)));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(file.data.as_bytes())
                .map_err(|e| bad(format!("the data is not base64: {e}")))?;
            let hash = crate::crypto::hex(&crate::crypto::sha256(&bytes));
            if bytes.len() as u64 != file.size || !hash.eq_ignore_ascii_case(file.sha256.trim()) {
                return Err(bad(format!(
                    "{} bytes with SHA-256 {hash}, sent as {} bytes with {}: damaged on the way",
                    bytes.len(),
                    file.size,
                    file.sha256
                )));
            }
            let name = crate::paths::safe_name(&file.name);
            let read = {
                let (bytes, client, name) = (bytes.clone(), client.clone(), name.clone());
                tokio::task::spawn_blocking(move || crate::files::read_bytes(&bytes, &client, &name))
                    .await
                    .unwrap_or_else(|e| Err(format!("the reader failed: {e}")))
            };
            let what = match read {
                Ok(batch) => FileContent::Batch(batch),
                Err(why) => {
                    let kept = self.quarantine_forwarded(&client.name, &name, &bytes, &why, &collector.name)?;
                    tracing::warn!(
                        collector = %collector.name, client = %client.name, file = %name, reason = %why, kept = %kept,
                        "a forwarded file could not be read; quarantined"
                    );
                    FileContent::Quarantined(format!("{name} of {}: {why} ({kept})", client.name))
                }
            };
            out.insert(seq, FileImport { client: client.id, what });
        }
        Ok(out)
    }

    /// Keep an unreadable forwarded file in the hub's quarantine (`DATA/quarantine/<client>/`)
    /// with a `.reason` beside it, once (the same batch sent again finds it there); where.
    /// A failure to write fails the request, which the collector sends again.
    fn quarantine_forwarded(
        &self,
        client: &str,
        name: &str,
        bytes: &[u8],
        why: &str,
        collector: &str,
    ) -> Result<String, CollectorRefusal> {
        // An app built from parts (no data dir) has nowhere to keep it; the collector's
        // archive still holds the file.
        let Some(files) = &self.files else { return Ok("not kept at the hub: no data dir".into()) };
        let [_, _, dir] = files.data.client_folders(client);
        let reason = format!("{why} (forwarded by collector {collector})");
        match crate::paths::keep_with_reason(&dir, name, bytes, &reason) {
            Ok(path) => Ok(format!("kept in {}", path.display())),
            Err(e) => Err(CollectorRefusal::Failed(AppError::Runtime(anyhow::anyhow!(
                "keeping an unreadable forwarded file in {}: {e}",
                dir.display()
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ago, check_name};

    #[test]
    fn ages_read_in_the_unit_that_fits() {
        assert_eq!(ago(40), "40 s");
        assert_eq!(ago(300), "5 min");
        assert_eq!(ago(3 * 3600), "3 h");
        assert_eq!(ago(3 * 86_400), "3 days");
    }

    #[test]
    fn collector_names_are_short_and_plain() {
        assert_eq!(check_name(" studio-east ").ok(), Some("studio-east"));
        for bad in ["", "two words", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
