//! `GET /metrics` in the Prometheus text format: per source, batches, restarts, whether
//! it is failing and the age of its last batch; cloud accounts by state and the age of
//! each one's last sync (by account id); verdicts in the cache by state; messages sent,
//! failed and suppressed, and the outbox by state; clients and trainers; each remote
//! collector's last contact, backlog, full outbox and refusals. No names of people, so it needs no login (bind `web.listen` to an
//! address only the scraper reaches).

use super::WebState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn metrics(State(state): State<WebState>) -> Response {
    let mut out = String::new();
    let now = Utc::now();
    let sources = state.health.snapshot();
    let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for l in lines {
            let _ = writeln!(out, "{name}{l}");
        }
    };
    let per_source = |f: &dyn Fn(&crate::source::SourceHealth) -> Option<String>| {
        sources.iter().filter_map(|s| f(s).map(|v| format!("{{source=\"{}\"}} {v}", escape(&s.name)))).collect()
    };
    family("coachd_up", "gauge", "1 while the daemon serves requests.", vec![" 1".into()]);
    family(
        "coachd_source_batches_total",
        "counter",
        "Batches a source delivered since start.",
        per_source(&|s| Some(s.batches.to_string())),
    );
    family(
        "coachd_source_restarts_total",
        "counter",
        "Times a source failed and was restarted.",
        per_source(&|s| Some(s.restarts.to_string())),
    );
    family(
        "coachd_source_failing",
        "gauge",
        "1 while a source waits to restart after an error.",
        per_source(&|s| Some(u8::from(s.state == crate::source::SourceState::Backoff).to_string())),
    );
    family(
        "coachd_source_last_batch_age_seconds",
        "gauge",
        "Seconds since a source's last batch (absent before its first).",
        per_source(&|s| s.last_batch.map(|t| format!("{:.0}", (now - t).num_milliseconds() as f64 / 1000.0))),
    );
    let counts = match state.app.counts().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: reading counts failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response();
        }
    };
    family(
        "coachd_verdicts",
        "gauge",
        "Final verdicts in the cache, by state.",
        counts.verdicts.iter().map(|(v, n)| format!("{{verdict=\"{}\"}} {n}", escape(v))).collect(),
    );
    let mut by_state: std::collections::BTreeMap<(&str, &str), u32> = Default::default();
    let mut ages = Vec::new();
    let mut failing = Vec::new();
    for a in &counts.accounts {
        failing.push(format!(
            "{{provider=\"{}\",account=\"{}\"}} {}",
            escape(&a.provider),
            a.id,
            u8::from(a.failing())
        ));
        *by_state.entry((&a.provider, &a.state)).or_default() += 1;
        if let Some(t) = a.last_sync {
            ages.push(format!(
                "{{provider=\"{}\",account=\"{}\"}} {}",
                escape(&a.provider),
                a.id,
                (now - t).num_seconds()
            ));
        }
    }
    family(
        "coachd_accounts",
        "gauge",
        "Cloud accounts by provider and state (active, needs_reauth, insufficient_scope, revoked, disconnected).",
        by_state
            .iter()
            .map(|((p, s), n)| format!("{{provider=\"{}\",state=\"{}\"}} {n}", escape(p), escape(s)))
            .collect(),
    );
    family(
        "coachd_account_last_sync_age_seconds",
        "gauge",
        "Seconds since an account's last complete sync.",
        ages.clone(),
    );
    family(
        "coachd_account_last_success_age_seconds",
        "gauge",
        "Seconds since an account's last successful sync (failed attempts do not count).",
        ages,
    );
    family("coachd_account_failing", "gauge", "1 while an active account's last sync attempt failed.", failing);
    let backup = state.app.last_backup().await.ok().flatten();
    family(
        "coachd_backup_last_age_seconds",
        "gauge",
        "Seconds since the last backup (daily or `coachd backup`); absent before the first.",
        backup.map(|(at, _)| format!(" {}", (now - at).num_seconds())).into_iter().collect(),
    );
    // The outbox, as three counters a dashboard graphs (sent, failed, suppressed) and
    // every state by kind. Counted from the store, so they survive restarts.
    let outbox = state.app.outbox_counts().await.unwrap_or_default();
    let total = |states: &[&str]| -> i64 {
        outbox.iter().filter(|(_, s, _)| states.contains(&s.as_str())).map(|(_, _, n)| n).sum()
    };
    family(
        "coachd_notify_sent_total",
        "counter",
        "Messages delivered to a channel.",
        vec![format!(" {}", total(&["sent"]))],
    );
    family(
        "coachd_notify_failed_total",
        "counter",
        "Messages given up on (the window closed, the channel refused, or a send cut short by a stop).",
        vec![format!(" {}", total(&["failed", "interrupted"]))],
    );
    family(
        "coachd_notify_suppressed_total",
        "counter",
        "Nudges decided against: already done, excused, checked in, opted out, quiet hours, too late.",
        vec![format!(" {}", total(&["suppressed"]))],
    );
    family(
        "coachd_outbox",
        "gauge",
        "Outbox rows by kind (nudge, test) and state (pending, sending, retry, sent, failed, interrupted, suppressed).",
        outbox.iter().map(|(k, s, n)| format!("{{kind=\"{}\",state=\"{}\"}} {n}", escape(k), escape(s))).collect(),
    );
    family("coachd_clients", "gauge", "Clients.", vec![format!(" {}", counts.clients)]);
    family("coachd_trainers", "gauge", "Trainers with a dashboard login.", vec![format!(" {}", counts.trainers)]);
    // Remote collectors, by the name the admin gave the box (no person's name).
    let collectors = state.app.collectors().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: reading the collectors failed");
        Vec::new()
    });
    let per_collector = |f: &dyn Fn(&crate::app::collectors::CollectorLine) -> Option<String>| {
        collectors.iter().filter_map(|c| f(c).map(|v| format!("{{collector=\"{}\"}} {v}", escape(&c.name)))).collect()
    };
    family(
        "coachd_collector_last_contact_age_seconds",
        "gauge",
        "Seconds since a remote collector last reached the hub (absent before its first contact).",
        per_collector(&|c| c.last_contact_age_s.map(|s| s.to_string())),
    );
    family(
        "coachd_collector_backlog_batches",
        "gauge",
        "Batches waiting in a collector's outbox, as it last reported.",
        per_collector(&|c| c.backlog_batches.map(|b| b.to_string())),
    );
    family(
        "coachd_collector_backlog_bytes",
        "gauge",
        "Bytes waiting in a collector's outbox, as it last reported.",
        per_collector(&|c| c.backlog_bytes.map(|b| b.to_string())),
    );
    family(
        "coachd_collector_outbox_full",
        "gauge",
        "1 while a collector's outbox is full (new sessions are not stored there).",
        per_collector(&|c| Some(u8::from(c.outbox_full).to_string())),
    );
    family(
        "coachd_collector_not_stored_total",
        "counter",
        "Batches a collector could not store because its outbox was full.",
        per_collector(&|c| Some(c.not_stored.to_string())),
    );
    family(
        "coachd_collector_applied_samples_total",
        "counter",
        "Samples the hub applied from a collector's batches.",
        per_collector(&|c| Some(c.applied_samples.to_string())),
    );
    family(
        "coachd_collector_refused",
        "gauge",
        "1 while a collector's last request was refused (a device not paired at the hub, a replayed batch).",
        per_collector(&|c| Some(u8::from(c.state == "refused").to_string())),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
