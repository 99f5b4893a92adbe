//! `coachd run`: the supervisor, the web server, systemd notification and a clean stop.

use crate::app::App;
use crate::source::{Source, Supervisor};
use crate::store::Store;
use crate::web::{self, WebState};
use anyhow::Context;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Run until `shutdown` resolves, then drain: sources commit and stop, the web server
/// finishes its requests, the database is closed. Returns once everything is down.
/// `sources` come from [`crate::sources::build`] (or a test's own).
pub async fn run(
    app: App,
    listener: TcpListener,
    sources: Vec<Arc<dyn Source>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // One daemon per data dir, and none beside a restore: an flock the kernel drops
    // however this process ends. An app built from parts (tests) has no data dir.
    let _lock = match &app.files {
        Some(files) => {
            let path = files.data.lock_file();
            match crate::paths::try_lock(&path, "daemon").with_context(|| format!("locking {}", path.display()))? {
                Ok(lock) => Some(lock),
                Err(holder) => anyhow::bail!(
                    "{} is held by {holder}: another coachd daemon (or a restore) is using {}; stop it first",
                    path.display(),
                    files.data.root().display()
                ),
            }
        }
        None => None,
    };
    let token = CancellationToken::new();
    let (store, config): (Store, _) = (app.store.clone(), app.config.clone());
    let backups = (app.files.is_some() && config.backup.daily).then(|| app.clone());
    let supervisor = Supervisor::start(sources, store.clone(), config.clone(), token.clone());
    let health = supervisor.health();
    let state = WebState { live: supervisor.live(), ..WebState::for_app(app, health.clone()) };
    let router = web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let addr = listener.local_addr().context("reading the listening address")?;
    // Commands in other processes make their links from where this daemon serves.
    let served = if config.web.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.web.public_url.trim_end_matches('/').to_string()
    };
    if let Err(e) = store.set_served_url(&served).await {
        warn!(error = %e, "recording the served URL failed; links from commands use web.listen");
    }
    let mut server = tokio::spawn(
        axum::serve(listener, router).with_graceful_shutdown(token.clone().cancelled_owned()).into_future(),
    );
    info!(listen = %addr, "coachd is running");
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&health.summary())]);
    let watchdog = tokio::spawn(watchdog(store.clone(), health.clone(), token.clone()));
    let backups = backups.map(|app| tokio::spawn(daily_backups(app, token.clone())));

    let server_failure = tokio::select! {
        () = shutdown => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => anyhow::anyhow!("the web server stopped unexpectedly"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the web server failed"),
            Err(e) => anyhow::Error::new(e).context("the web server task failed"),
        }),
    };
    info!("stopping: draining sources and requests");
    notify(&[sd_notify::NotifyState::Stopping]);
    token.cancel();
    watchdog.abort();
    if let Some(b) = backups {
        // A backup cut short leaves only temporary files, which the next one removes.
        b.abort();
    }
    // Sources get their grace period inside the supervisor; requests get the same.
    let grace = Duration::from_millis(config.supervisor.shutdown_grace_ms);
    let drain_web = async {
        if server_failure.is_none() && tokio::time::timeout(grace, &mut server).await.is_err() {
            warn!("open HTTP connections did not finish in time; closing them");
            server.abort();
        }
    };
    tokio::join!(supervisor.join(), drain_web);
    store.close().await;
    info!("stopped");
    match server_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Resolves on SIGTERM (systemd's way to stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "received"),
        _ = int.recv() => info!(signal = "SIGINT", "received"),
    }
    Ok(())
}

/// Under systemd with `WatchdogSec=`, tell systemd we are alive, but only while the
/// database answers: a wedged daemon gets restarted. Also refreshes STATUS.
async fn watchdog(store: Store, health: crate::source::Health, token: CancellationToken) {
    let mut usec = 0u64;
    let period = if sd_notify::watchdog_enabled(false, &mut usec) {
        Duration::from_micros(usec / 2).max(Duration::from_millis(100))
    } else {
        Duration::from_secs(30)
    };
    let enabled = usec > 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = token.cancelled() => return,
        }
        trim_heap();
        let status = health.summary();
        match store.ping().await {
            Ok(()) if enabled => notify(&[sd_notify::NotifyState::Watchdog, sd_notify::NotifyState::Status(&status)]),
            Ok(()) => notify(&[sd_notify::NotifyState::Status(&status)]),
            Err(e) => warn!(error = %e, "database does not answer; withholding the watchdog ping"),
        }
    }
}

/// Give the heap's free memory back to the kernel. glibc keeps what a large status run or
/// a backup freed in its arenas, where it would stay in the daemon's RSS for as long as it
/// runs; the daemon calls this every watchdog round (30 s without systemd's watchdog) and
/// after a backup. It costs about a millisecond.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The daily backup: looked at shortly after start and then hourly; one is made when the
/// newest in `DATA/backups/` is a day old (see [`App::daily_backup_if_due`]).
async fn daily_backups(app: App, token: CancellationToken) {
    let mut wait = Duration::from_secs(3);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = token.cancelled() => return,
        }
        wait = Duration::from_secs(3600);
        match app.daily_backup_if_due(chrono::Utc::now()).await {
            Ok(Some(made)) => {
                trim_heap();
                info!(file = %made.path.display(), bytes = made.bytes, pruned = made.pruned.len(), "daily backup written")
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "the daily backup failed; trying again in an hour"),
        }
    }
}

/// sd_notify is a no-op without `NOTIFY_SOCKET`, so this is silent outside systemd.
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!(error = %e, "sd_notify failed");
    }
}

/// Tell systemd (Type=notify) that collector mode is up, with the sources' summary.
pub fn notify_ready(status: &str) {
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
}
