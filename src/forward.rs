//! Collector mode's forwarder: the outbox to the hub, in order, over HTTPS with gzip JSON.
//!
//! A source like any other (supervised, restarted when it fails), run by
//! [`crate::collect`] beside the Bluetooth collector. Each round sends the oldest
//! batches of the outbox (`POST /collector/v1/batches`, at most a few hundred and about
//! a megabyte), and deletes them once the hub answers that it applied them. A hub that
//! is away, slow or restarting mid-request is retried with capped exponential backoff
//! and jitter; since the hub applies a sequence number once, a request whose answer was
//! lost is simply sent again. A batch the hub refuses (a device it has not paired, a
//! replayed number, a revoked token) is kept and retried at the longest backoff,
//! logged as an error, and the batches before it still go. A refused *file* (from the
//! inbox folder: a client outside this collector's scope, a folder naming no client)
//! does not hold the rest up: its bytes go to this box's quarantine
//! (`DATA/quarantine/<folder>/NAME`, the hub's reason beside it) and it leaves the outbox.
//!
//! Every `collector.report_s` it reads its pairing list from the hub (`GET
//! /collector/v1/pairings`, kept in the outbox so recording goes on while the hub is
//! away) and reports its state (`PUT /collector/v1/status`: backlog, a full outbox, the
//! adapter, the sensors in range), which `coachd collector list` and `/metrics` show.
//!
//! The pairing list's answer may carry a scan the hub asks of this collector
//! (`coachd devices scan --collector NAME`): it runs at once, beside the forwarding, on
//! this box's adapter (the [`Scanner`] that [`crate::collect`] hands in, the same scan
//! as the local `devices scan`), and its answer goes to `POST /collector/v1/scans/ID`.
//! The request waits at the hub until the next report, so it starts at most
//! `collector.report_s` after it was asked.

use crate::crypto::Secret;
use crate::source::{Source, SourceContext, SourceFuture};
use crate::store::collectors::{Applied, Heard, InRange, Report, ScanAsked};
use crate::store::devices::Pairing;
use crate::store::outbox::Outbox;
use std::io::Write;
use std::time::Duration;

/// A request carries at most this many batches, and about this many bytes of them.
const BATCHES_PER_REQUEST: i64 = 500;
const BYTES_PER_REQUEST: usize = 1 << 20;
/// How long a request may take before it counts as failed (and is sent again).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Sensors seen this recently count as in range.
const IN_RANGE_MS: i64 = 180_000;

/// Listens on this box's adapter for the given time: what it heard, as `devices scan` lists it.
pub type Scanner = std::sync::Arc<
    dyn Fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Vec<Heard>>> + Send>>
        + Send
        + Sync,
>;

pub struct Forwarder {
    hub: url::Url,
    token: Secret<String>,
    outbox: Outbox,
    retry_max: Duration,
    report_every: Duration,
    /// None: a build without Bluetooth, which answers a scan request with why not.
    scanner: Option<Scanner>,
    /// The last scan request started (the hub sends it until it is answered).
    scan_started: std::sync::Mutex<Option<i64>>,
    /// Where a file the hub refused is kept (`DATA/quarantine`).
    quarantine: std::path::PathBuf,
}

/// Why a send did not go through.
#[derive(Debug)]
enum Failed {
    /// The hub is away, slow, or failed: try again later.
    Away(String),
    /// The hub refused (4xx): the same request would be refused again. `seq`: the batch
    /// it named, if any.
    Refused { status: u16, message: String, seq: Option<i64> },
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Away(why) => write!(f, "{why}"),
            Failed::Refused { status, message, .. } => write!(f, "the hub refused ({status}): {message}"),
        }
    }
}

/// A random factor in [0.5, 1.0): retries of many collectors do not march in step.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { f64::from(u16::from_le_bytes(b)) / 65536.0 } else { 0.5 };
    d.mul_f64(0.5 + r / 2.0)
}

impl Forwarder {
    pub fn new(
        hub: url::Url,
        token: Secret<String>,
        outbox: Outbox,
        cfg: &crate::config::CollectorConfig,
        scanner: Option<Scanner>,
        quarantine: std::path::PathBuf,
    ) -> Self {
        Self {
            hub,
            token,
            outbox,
            retry_max: Duration::from_secs(cfg.retry_max_s),
            report_every: Duration::from_secs(cfg.report_s),
            scanner,
            scan_started: std::sync::Mutex::new(None),
            quarantine,
        }
    }

    /// A file batch the hub refused: keep its bytes in this box's quarantine with the
    /// hub's reason, then take it out of the outbox. False when `seq` is not a file.
    async fn set_file_aside(&self, seq: i64, status: u16, message: &str) -> anyhow::Result<bool> {
        use base64::Engine;
        let Some(file) = self.outbox.file(seq).await? else { return Ok(false) };
        let bytes = base64::engine::general_purpose::STANDARD.decode(file.data.as_bytes())?;
        let folder = crate::paths::safe_name(&file.client);
        let name = crate::paths::safe_name(&file.name);
        let reason = format!("the hub refused it ({status}): {message}");
        let dir = self.quarantine.join(&folder);
        let kept = tokio::task::spawn_blocking({
            let (dir, name, reason) = (dir.clone(), name.clone(), reason.clone());
            move || crate::paths::keep_with_reason(&dir, &name, &bytes, &reason)
        })
        .await??;
        self.outbox.set_aside(seq).await?;
        tracing::error!(
            batch = seq, client = %file.client, file = %file.name, kept = %kept.display(), status,
            "the hub refused a file from the inbox folder: {message}; kept in the quarantine, the outbox goes on"
        );
        Ok(true)
    }

    /// Run a scan the hub asked for, once, beside the forwarding; post its answer.
    fn start_scan(&self, http: &reqwest::Client, asked: ScanAsked, shutdown: tokio_util::sync::CancellationToken) {
        {
            let Ok(mut started) = self.scan_started.lock() else { return };
            if *started == Some(asked.id) {
                return;
            }
            *started = Some(asked.id);
        }
        let listen = Duration::from_secs(asked.seconds.clamp(1, 300));
        tracing::info!(scan = asked.id, seconds = listen.as_secs(), "the hub asks for a scan");
        let scan = self.scanner.as_ref().map(|scan| scan(listen));
        let (http, url, token) = (http.clone(), self.url(&format!("scans/{}", asked.id)), self.token.clone());
        tokio::spawn(async move {
            let answer = match scan {
                None => Err("this coachd was built without Bluetooth support (cargo feature `ble`)".to_string()),
                Some(scan) => tokio::select! {
                    done = scan => done.map_err(|e| format!("{e:#}")),
                    () = shutdown.cancelled() => Err("the collector was stopped mid-scan".to_string()),
                },
            };
            let body = match &answer {
                Ok(seen) => serde_json::json!({ "seen": seen }),
                Err(why) => serde_json::json!({ "error": why }),
            };
            let sent = http.post(url).bearer_auth(token.expose()).json(&body).send().await;
            match (sent.map(|r| r.status()), answer) {
                (Ok(status), Ok(seen)) if status.is_success() => {
                    tracing::info!(scan = asked.id, sensors = seen.len(), "scan answered")
                }
                (Ok(status), Err(why)) if status.is_success() => {
                    tracing::warn!(scan = asked.id, "scan failed, and the hub told: {why}")
                }
                (Ok(status), _) => tracing::warn!(scan = asked.id, %status, "the hub did not take the scan's answer"),
                (Err(e), _) => tracing::warn!(scan = asked.id, "cannot send the scan's answer to the hub: {e}"),
            }
        });
    }

    fn url(&self, path: &str) -> String {
        format!("{}/collector/v1/{path}", self.hub.as_str().trim_end_matches('/'))
    }

    async fn answer(response: reqwest::Response) -> Result<serde_json::Value, Failed> {
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().unwrap_or("no reason given").to_string();
        // 408 and 429 are "later"; every other 4xx would be refused again as it is.
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(Failed::Refused { status: status.as_u16(), message, seq: body["seq"].as_i64() })
        } else {
            Err(Failed::Away(format!("the hub answered {status}: {message}")))
        }
    }

    /// Send batches; the hub's cursor for this collector after applying them.
    async fn send(&self, http: &reqwest::Client, pending: &[crate::store::outbox::Pending]) -> Result<Applied, Failed> {
        let mut json = String::with_capacity(pending.iter().map(|p| p.body.len() + 64).sum());
        json.push_str("{\"batches\":[");
        for (i, p) in pending.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            // The id is hex and the body the JSON committed: no escaping needed.
            let key = if p.file { "file" } else { "batch" };
            json.push_str(&format!("{{\"seq\":{},\"id\":\"{}\",\"{key}\":{}}}", p.seq, p.id, p.body));
        }
        json.push_str("]}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json.as_bytes()).map_err(|e| Failed::Away(format!("compressing: {e}")))?;
        let body = gz.finish().map_err(|e| Failed::Away(format!("compressing: {e}")))?;
        let response = http
            .post(self.url("batches"))
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::Away(format!("cannot reach the hub at {}: {e}", self.hub)))?;
        let body = Self::answer(response).await?;
        serde_json::from_value::<Applied>(body).map_err(|e| Failed::Away(format!("the hub's answer: {e}")))
    }

    /// Read the pairing list (kept in the outbox) and report this collector's state.
    async fn report(&self, http: &reqwest::Client, ctx: &SourceContext) -> Result<usize, Failed> {
        let response = http
            .get(self.url("pairings"))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| Failed::Away(format!("cannot reach the hub at {}: {e}", self.hub)))?;
        let body = Self::answer(response).await?;
        let pairings: Vec<Pairing> = serde_json::from_value(body["pairings"].clone())
            .map_err(|e| Failed::Away(format!("the hub's pairing list: {e}")))?;
        self.outbox.set_pairings(&pairings).await.map_err(|e| Failed::Away(format!("saving the pairing list: {e}")))?;
        match serde_json::from_value::<Option<ScanAsked>>(body["scan"].clone()) {
            Ok(Some(asked)) => self.start_scan(http, asked, ctx.shutdown.clone()),
            Ok(None) => {}
            Err(e) => tracing::warn!("the hub's scan request: {e}"),
        }
        let backlog = self.outbox.backlog().await.map_err(|e| Failed::Away(e.to_string()))?;
        let since = chrono::Utc::now().timestamp_millis() - IN_RANGE_MS;
        let in_range = self
            .outbox
            .nearby(since)
            .await
            .map_err(|e| Failed::Away(e.to_string()))?
            .into_iter()
            .map(|n| InRange {
                address: n.address,
                name: n.name,
                link: n.link.unwrap_or_else(|| "seen".into()),
                note: n.note,
                seen_ms: n.seen_ms.unwrap_or_default(),
            })
            .collect();
        let adapter = ctx
            .sources()
            .into_iter()
            .find(|s| s.name == "ble")
            .map(|s| {
                let state = serde_json::to_value(s.state).ok().and_then(|v| v.as_str().map(String::from));
                let mut line = state.unwrap_or_default();
                if let Some(d) = s.detail {
                    line.push_str(&format!(": {d}"));
                }
                if let Some(e) = s.last_error.filter(|_| s.state == crate::source::SourceState::Backoff) {
                    line.push_str(&format!(" (failing: {e})"));
                }
                line
            })
            .unwrap_or_else(|| "no Bluetooth collector in this build".into());
        let report = Report {
            backlog_batches: backlog.batches,
            backlog_bytes: backlog.bytes,
            outbox_full: backlog.full,
            not_stored: backlog.not_stored,
            adapter,
            in_range,
        };
        let response = http
            .put(self.url("status"))
            .bearer_auth(self.token.expose())
            .json(&report)
            .send()
            .await
            .map_err(|e| Failed::Away(format!("cannot reach the hub at {}: {e}", self.hub)))?;
        Self::answer(response).await?;
        Ok(pairings.len())
    }
}

impl Source for Forwarder {
    fn name(&self) -> &str {
        "forward"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let http =
                reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(10)).build()?;
            let mut backoff = FIRST_RETRY;
            let mut next_report = tokio::time::Instant::now();
            // The batch the hub last refused: the ones before it still go.
            let mut refused_at: Option<i64> = None;
            let mut away_since: Option<std::time::Instant> = None;
            loop {
                if ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= next_report {
                    next_report = tokio::time::Instant::now() + self.report_every;
                    match self.report(&http, ctx).await {
                        Ok(n) => tracing::debug!(pairings = n, "reported to the hub; pairing list read"),
                        Err(e) => tracing::debug!("report to the hub: {e}"),
                    }
                }
                let mut pending = self.outbox.pending(BATCHES_PER_REQUEST, BYTES_PER_REQUEST).await?;
                if let Some(stop) = refused_at {
                    if pending.first().is_some_and(|p| p.seq < stop) {
                        pending.retain(|p| p.seq < stop);
                    }
                }
                let Some(head) = pending.first().map(|p| p.seq) else {
                    if !ctx.sleep(Duration::from_millis(250)).await {
                        return Ok(());
                    }
                    continue;
                };
                match self.send(&http, &pending).await {
                    Ok(applied) => {
                        if away_since.take().is_some() {
                            tracing::info!("the hub answers again; forwarding the backlog");
                        }
                        if refused_at.is_some_and(|stop| applied.through >= stop) {
                            refused_at = None;
                        }
                        let sent = pending.last().map_or(head, |p| p.seq);
                        // The hub's cursor covers what it applied; never more than was sent.
                        self.outbox.acked(applied.through.min(sent)).await?;
                        backoff = FIRST_RETRY;
                        ctx.note_batch();
                        let left = self.outbox.backlog().await?;
                        ctx.set_detail(format!(
                            "forwarding to {}: through batch {}; {} batch(es) ({} bytes) waiting",
                            self.hub, applied.through, left.batches, left.bytes
                        ));
                        continue;
                    }
                    Err(Failed::Away(why)) => {
                        if away_since.is_none() {
                            tracing::warn!(
                                "{why}; the outbox keeps every batch and forwarding is retried with backoff"
                            );
                            away_since = Some(std::time::Instant::now());
                        } else {
                            tracing::debug!("{why}");
                        }
                        let left = self.outbox.backlog().await?;
                        ctx.set_detail(format!(
                            "hub unreachable: {why}; {} batch(es) ({} bytes) waiting",
                            left.batches, left.bytes
                        ));
                    }
                    Err(Failed::Refused { status, message, seq }) => {
                        if let Some(s) = seq {
                            if self.set_file_aside(s, status, &message).await? {
                                ctx.set_detail(format!("the hub refused file batch {s}: {message}; quarantined here"));
                                continue;
                            }
                        }
                        tracing::error!(
                            status,
                            batch = seq.unwrap_or(head),
                            "the hub refused a batch: {message}; it stays in the outbox and is sent again later"
                        );
                        ctx.set_detail(format!("the hub refused batch {}: {message}", seq.unwrap_or(head)));
                        refused_at = Some(seq.unwrap_or(head));
                        if seq.is_some_and(|s| s > head) {
                            continue; // the ones before it go now
                        }
                        backoff = self.retry_max;
                    }
                }
                if !ctx.sleep(jitter(backoff)).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(self.retry_max);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::jitter;
    use std::time::Duration;

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        for _ in 0..200 {
            let d = jitter(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d < Duration::from_secs(10), "{d:?}");
        }
    }
}
