//! The roster page (`/roster`, adding a client) and the roster cache behind it and the
//! API.
//!
//! The roster is kept per trainer: judging every client's homework takes milliseconds per
//! client, too slow to repeat for every page view of a large roster. A roster is served
//! from memory for 30 s; an older one is still served while a fresh one is computed in
//! the background (one at a time per trainer). The dashboard's own changes, on any
//! replica, move the trainer's roster version in the store on; every read checks it (one
//! small query) and computes a roster of an older version afresh before serving it. So
//! the roster page shows the dashboard's changes at once, and others (syncs, imports)
//! within one refresh.

use super::page::{back, html, Msg, Page, WebError};
use super::session::{CsrfForm, LoggedIn};
use super::view;
use super::WebState;
use crate::app::{App, AppResult, NewClientInput, Owner};
use crate::charts::data::{roster_rows, sort_roster};
use crate::charts::RosterRow;
use crate::store::web::TrainerId;
use crate::store::Client;
use askama::Template;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const FRESH: Duration = Duration::from_secs(30);

pub struct Entry {
    pub client: Client,
    /// None for a client without homework.
    pub row: Option<RosterRow>,
    pub homework: usize,
}

pub struct Roster {
    pub computed: DateTime<Utc>,
    /// Needs-attention first, then the weakest; clients without homework last.
    pub rows: Vec<Entry>,
}

/// A cached roster: when it was computed, the roster version it was computed at, the roster.
type Cached = (Instant, i64, Arc<Roster>);

#[derive(Default)]
pub struct RosterCache {
    rosters: Mutex<HashMap<TrainerId, Cached>>,
    refreshing: Mutex<HashSet<TrainerId>>,
}

/// A version no roster is stored at: the entry is recomputed whatever the store says.
const STALE: i64 = -1;

impl RosterCache {
    /// The trainer's roster. Its version in the store is read first (one small query):
    /// a roster cached at another version (a change on any replica) is computed afresh
    /// before it is served, like a missing one.
    pub async fn get(&self, state: &WebState, trainer: TrainerId) -> AppResult<Arc<Roster>> {
        let version = state.app.roster_version(trainer).await?;
        let cached = self.rosters.lock().unwrap_or_else(PoisonError::into_inner).get(&trainer).cloned();
        match cached {
            Some((at, v, roster)) if v == version && at.elapsed() < FRESH => Ok(roster),
            Some((_, v, roster)) if v == version => {
                let first = self.refreshing.lock().unwrap_or_else(PoisonError::into_inner).insert(trainer);
                if first {
                    let state = state.clone();
                    tokio::spawn(async move {
                        match compute(&state, trainer).await {
                            Ok(r) => drop(state.roster.put(trainer, version, r)),
                            Err(e) => tracing::warn!(error = %e, "refreshing the roster failed"),
                        }
                        state.roster.refreshing.lock().unwrap_or_else(PoisonError::into_inner).remove(&trainer);
                    });
                }
                Ok(roster)
            }
            _ => {
                let roster = compute(state, trainer).await?;
                Ok(self.put(trainer, version, roster))
            }
        }
    }

    /// Keep a roster computed after reading `version` (a change since then makes it
    /// stale at the next read).
    fn put(&self, trainer: TrainerId, version: i64, roster: Roster) -> Arc<Roster> {
        let roster = Arc::new(roster);
        self.rosters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trainer, (Instant::now(), version, roster.clone()));
        roster
    }

    /// A trainer's data changed: their roster is stale on every replica (its version in
    /// the store moves on). Should the store fail, the change is logged and this
    /// replica's copy is still dropped; others catch up within [`FRESH`].
    pub async fn clear(&self, app: &App, trainer: TrainerId) {
        if let Some(entry) = self.rosters.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&trainer) {
            entry.1 = STALE;
        }
        if let Err(e) = app.roster_changed(trainer).await {
            tracing::warn!(error = %e, trainer, "marking the roster changed for the other replicas failed");
        }
    }
}

async fn compute(state: &WebState, trainer: TrainerId) -> AppResult<Roster> {
    let now = Utc::now();
    let clients = state.app.clients_of(trainer).await?;
    let today = now.date_naive();
    let report = state.app.status(&clients, today, today, now).await?;
    let mut rows = roster_rows(&report, &clients);
    sort_roster(&mut rows);
    let homework = state.app.homework_list(None).await?;
    let count = |c: &Client| homework.iter().filter(|h| h.client_id == c.id).count();
    let mut entries: Vec<Entry> = rows
        .into_iter()
        .filter_map(|row| {
            let client = clients.iter().find(|c| c.name == row.client)?.clone();
            let homework = count(&client);
            Some(Entry { client, row: Some(row), homework })
        })
        .collect();
    for c in &clients {
        if !entries.iter().any(|e| e.client.id == c.id) {
            entries.push(Entry { client: c.clone(), row: None, homework: count(c) });
        }
    }
    Ok(Roster { computed: now, rows: entries })
}

// ---- the page ------------------------------------------------------------------------

struct RosterLine {
    id: i64,
    name: String,
    needs_attention: bool,
    days7: String,
    days30: String,
    days90: String,
    homework: usize,
}

#[derive(Template)]
#[template(path = "roster.html")]
struct RosterPage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    rows: Vec<RosterLine>,
    as_of: String,
    default_tz: String,
    /// The trainer's own channel (digests), shown without secrets; empty: none.
    channel: String,
    channel_state: String,
}

pub async fn page(State(state): State<WebState>, me: LoggedIn, Query(q): Query<Msg>) -> Page {
    let session = me.session;
    let roster = state.roster.get(&state, session.trainer.id).await?;
    let own = state.app.channel_status(&crate::app::NotifyTarget::Trainer(session.trainer.clone())).await?;
    let rows = roster
        .rows
        .iter()
        .map(|r| RosterLine {
            id: r.client.id,
            name: r.client.name.clone(),
            needs_attention: r.row.as_ref().is_some_and(|x| x.needs_attention),
            days7: view::pct(r.row.as_ref().and_then(|x| x.days7)),
            days30: view::pct(r.row.as_ref().and_then(|x| x.days30)),
            days90: view::pct(r.row.as_ref().and_then(|x| x.days90)),
            homework: r.homework,
        })
        .collect();
    Ok(html(RosterPage {
        message: q.msg,
        error: String::new(),
        trainer: session.trainer.name,
        csrf: session.csrf,
        rows,
        as_of: format!("As of {} UTC.", roster.computed.format("%Y-%m-%d %H:%M")),
        default_tz: state.app.default_tz().name().to_string(),
        channel: own.as_ref().map(|c| c.shown.clone()).unwrap_or_default(),
        channel_state: own.as_ref().map(super::view::channel_state).unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
pub struct AddClientForm {
    name: String,
    #[serde(default)]
    tz: String,
    #[serde(default)]
    hr_max: String,
    #[serde(default)]
    birth_year: String,
}

fn optional_number<T: std::str::FromStr>(s: &str, what: &str) -> Result<Option<T>, WebError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| WebError::input(format!("{what} {s:?} is not a whole number")))
}

pub async fn add_client(State(state): State<WebState>, f: CsrfForm<AddClientForm>) -> Page {
    let trainer = f.session.trainer;
    let input = NewClientInput {
        name: f.form.name,
        tz: Some(f.form.tz),
        hr_max: optional_number(&f.form.hr_max, "HR max")?,
        birth_year: optional_number(&f.form.birth_year, "year of birth")?,
    };
    let client = state.app.add_client(&input, Owner::Trainer(trainer.id)).await?;
    state.roster.clear(&state.app, trainer.id).await;
    tracing::info!(trainer = %trainer.name, client = %client.name, "client added");
    Ok(back(&format!("/clients/{}", client.id), &format!("Added {}.", client.name)))
}
