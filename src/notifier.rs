//! The daemon's notifier: a source that runs [`App::notify_round`] every
//! `notify.interval_s` (the schedule and the outbox live in the store, the decisions in
//! `engine::nudge`, the sends in `notify`); this task only keeps the beat. A failing
//! round is logged and tried again on the next beat, and a channel that hangs is cut
//! off by the send's own time limit, so nothing here holds up the daemon.

use crate::app::App;
use crate::source::{Source, SourceContext, SourceFuture};
use std::time::Duration;
use tracing::{info, warn};

pub struct Notifier {
    app: App,
}

impl Notifier {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl Source for Notifier {
    fn name(&self) -> &str {
        "notify"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let every = Duration::from_secs(self.app.config.notify.interval_s.max(1));
            loop {
                // Sends a stopped daemon (or replica) may or may not have finished are
                // never repeated.
                match self.app.interrupt_sending(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        warn!(rows = n, "outbox rows were being sent when coachd stopped; they are not sent again")
                    }
                    Err(e) => warn!(error = %e, "checking the outbox for interrupted sends failed"),
                }
                match self.app.notify_round(chrono::Utc::now()).await {
                    Ok(r) => {
                        if r.sent + r.failed + r.queued + r.suppressed > 0 {
                            info!(
                                queued = r.queued,
                                sent = r.sent,
                                failed = r.failed,
                                suppressed = r.suppressed,
                                "notify round"
                            );
                        }
                        ctx.set_detail(format!(
                            "last round: {} sent, {} failed, {} suppressed",
                            r.sent, r.failed, r.suppressed
                        ));
                    }
                    Err(e) => warn!(error = %e, "a notify round failed; trying again on the next one"),
                }
                if !ctx.sleep(every).await {
                    return Ok(());
                }
            }
        })
    }
}
