//! The roster, kept per trainer: judging every client's homework takes milliseconds per
//! client, too slow to repeat for every page view of a large roster. A roster is served
//! from memory for 30 s; an older one is still served while a fresh one is computed in
//! the background (one at a time per trainer), and the dashboard's own changes mark it
//! stale. So the roster page is at most one refresh behind the data.

use super::WebState;
use crate::charts::data::{roster_rows, sort_roster};
use crate::charts::RosterRow;
use crate::status;
use crate::store::web::TrainerId;
use crate::store::{Client, StoreError};
use chrono::{DateTime, Utc};
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

#[derive(Default)]
pub struct RosterCache {
    rosters: Mutex<HashMap<TrainerId, (Instant, Arc<Roster>)>>,
    refreshing: Mutex<HashSet<TrainerId>>,
}

impl RosterCache {
    pub async fn get(&self, state: &WebState, trainer: TrainerId) -> Result<Arc<Roster>, StoreError> {
        let cached = self.rosters.lock().unwrap_or_else(PoisonError::into_inner).get(&trainer).cloned();
        match cached {
            Some((at, roster)) if at.elapsed() < FRESH => Ok(roster),
            Some((_, roster)) => {
                let first = self.refreshing.lock().unwrap_or_else(PoisonError::into_inner).insert(trainer);
                if first {
                    let state = state.clone();
                    tokio::spawn(async move {
                        match compute(&state, trainer).await {
                            Ok(r) => drop(state.roster.put(trainer, r)),
                            Err(e) => tracing::warn!(error = %e, "refreshing the roster failed"),
                        }
                        state.roster.refreshing.lock().unwrap_or_else(PoisonError::into_inner).remove(&trainer);
                    });
                }
                Ok(roster)
            }
            None => {
                let roster = compute(state, trainer).await?;
                Ok(self.put(trainer, roster))
            }
        }
    }

    fn put(&self, trainer: TrainerId, roster: Roster) -> Arc<Roster> {
        let roster = Arc::new(roster);
        self.rosters.lock().unwrap_or_else(PoisonError::into_inner).insert(trainer, (Instant::now(), roster.clone()));
        roster
    }

    /// Mark a trainer's roster stale (their data changed).
    pub fn clear(&self, trainer: TrainerId) {
        let mut map = self.rosters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&trainer) {
            entry.0 = Instant::now().checked_sub(FRESH).unwrap_or(entry.0);
        }
    }
}

async fn compute(state: &WebState, trainer: TrainerId) -> Result<Roster, StoreError> {
    let now = Utc::now();
    let clients = state.store.clients_of(trainer).await?;
    let j = state.judging();
    let today = now.date_naive();
    let (report, _) = status::status(&state.store, &j.cfg, j.attention_drop, &clients, today, today, now).await?;
    let mut rows = roster_rows(&report, &clients);
    sort_roster(&mut rows);
    let homework = state.store.list_homework(None).await?;
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
