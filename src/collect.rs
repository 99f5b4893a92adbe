//! `coachd collect`: collector mode. The same binary on a small box by the equipment (a
//! Raspberry Pi with BlueZ) runs only the Bluetooth collector, with the same session
//! recorder as `coachd run`, if asked an inbox folder ([`crate::inbox::CollectorInbox`]),
//! and the [`crate::forward`] forwarder; no database, no dashboard, no homework engine.
//! Batches (sessions and files) go to the outbox in the data dir (`collector-outbox.db`,
//! [`crate::store::outbox`]) and from there to the hub.

use crate::config::Config;
use crate::crypto::Secret;
use crate::paths::DataDir;
use crate::source::{Sink, Source, Supervisor};
use crate::store::outbox::Outbox;
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use tracing::info;

/// The outbox's file in the collector's data dir.
pub fn outbox_path(data: &DataDir) -> std::path::PathBuf {
    data.root().join("collector-outbox.db")
}

/// The collector's inbox folder (`collector.inbox`; relative: inside the data dir), if any.
pub fn inbox_dir(config: &Config, data: &DataDir) -> Option<std::path::PathBuf> {
    let dir = config.collector.inbox.trim();
    (!dir.is_empty()).then(|| data.root().join(dir))
}

/// Read a collector token from its file (written by the admin from `collector add`).
pub fn read_token(path: &std::path::Path) -> Result<Secret<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the token file {}: {e}; write the token `coachd collector add NAME` printed at the hub into it", path.display())
    })?;
    let token = text.trim();
    if !crate::crypto::is_token(token) {
        return Err(format!(
            "{} does not hold a collector token (64 hex digits, as `coachd collector add NAME` printed it)",
            path.display()
        ));
    }
    Ok(Secret::new(token.to_string()))
}

/// Run collector mode until `shutdown`, then let the recorder flush its open sessions
/// into the outbox and stop.
pub async fn run(
    config: Config,
    data: &DataDir,
    hub: url::Url,
    token: Secret<String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data.root()).with_context(|| format!("creating {}", data.root().display()))?;
    let lock_path = data.lock_file();
    let _lock = match crate::paths::try_lock(&lock_path, "collector")
        .with_context(|| format!("locking {}", lock_path.display()))?
    {
        Ok(lock) => lock,
        Err(holder) => anyhow::bail!(
            "{} is held by {holder}: another coachd is using {}; stop it first",
            lock_path.display(),
            data.root().display()
        ),
    };
    let path = outbox_path(data);
    let max = i64::try_from(config.collector.outbox_max_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    let outbox = Outbox::open(&path, max).await.with_context(|| format!("opening the outbox {}", path.display()))?;
    let backlog = outbox.backlog().await?;
    info!(outbox = %path.display(), batches = backlog.batches, bytes = backlog.bytes, hub = %hub, "collector mode");
    #[cfg(feature = "ble")]
    let scanner: Option<crate::forward::Scanner> = {
        let adapter = config.ble.adapter.clone();
        Some(Arc::new(move |listen| {
            let adapter = adapter.clone();
            Box::pin(async move {
                let seen = crate::ble::collector::scan(&adapter, listen).await?;
                Ok(seen.into_iter().map(Into::into).collect())
            })
        }))
    };
    #[cfg(not(feature = "ble"))]
    let scanner = None;
    let forwarder: Arc<dyn Source> = Arc::new(crate::forward::Forwarder::new(
        hub,
        token,
        outbox.clone(),
        &config.collector,
        scanner,
        data.root().join("quarantine"),
    ));
    #[cfg(feature = "ble")]
    let mut sources: Vec<Arc<dyn Source>> =
        vec![Arc::new(crate::ble::collector::Collector::new(config.ble.clone())), forwarder];
    #[cfg(not(feature = "ble"))]
    let mut sources: Vec<Arc<dyn Source>> = {
        tracing::error!("this build has no Bluetooth support (cargo feature `ble`): only the outbox is forwarded");
        vec![forwarder]
    };
    if let Some(dir) = inbox_dir(&config, data) {
        info!(inbox = %dir.display(), "inbox folder: a folder per client, named as at the hub");
        sources.push(Arc::new(crate::inbox::CollectorInbox::new(
            dir,
            data.root(),
            std::time::Duration::from_millis(config.inbox.poll_ms),
            crate::store::collectors::FORWARDED_FILE_MAX,
        )));
    }
    let token = tokio_util::sync::CancellationToken::new();
    let supervisor = Supervisor::start_with(sources, Sink::Outbox(outbox.clone()), Arc::new(config), token.clone());
    let health = supervisor.health();
    crate::daemon::notify_ready(&health.summary());
    info!("coachd collector is running");
    shutdown.await;
    info!("stopping: the recorder commits its open sessions to the outbox");
    token.cancel();
    supervisor.join().await;
    outbox.close().await;
    info!("stopped");
    Ok(())
}
