//! How fresh a client's data is, per source: the "last data age" Home Assistant shows.

use super::{App, AppResult};
use crate::engine::judge::{Occurrence, Verdict};
use crate::engine::rule::Measure;
use crate::model::Metric;
use crate::store::providers::Account;
use crate::store::Client;
use chrono::{DateTime, Utc};

/// Sources other than the cloud providers that never give daily steps (activity files,
/// a heart-rate strap), with what a trainer calls them.
const NO_STEPS: [(&str, &str); 4] =
    [("fit", "FIT files"), ("tcx", "TCX files"), ("gpx", "GPX files"), ("ble", "the Bluetooth sensors")];

/// One passive source of a client's data and the newest instant it covers.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFreshness {
    /// The source's name as activities list it: `ble`, `fit`, `strava`, ...
    pub source: String,
    pub newest: DateTime<Utc>,
}

impl SourceFreshness {
    /// Hours from the newest data to `now` (never negative).
    pub fn age_hours(&self, now: DateTime<Utc>) -> f64 {
        ((now - self.newest).num_seconds().max(0) as f64) / 3600.0
    }
}

impl App {
    /// Every passive source that delivered data for this client, by name.
    pub async fn data_freshness(&self, client: &Client) -> AppResult<Vec<SourceFreshness>> {
        Ok(self
            .store
            .newest_data(client.id)
            .await?
            .into_iter()
            .filter_map(|(source, ms)| Some(SourceFreshness { source, newest: DateTime::from_timestamp_millis(ms)? }))
            .collect())
    }

    /// Why a step homework of this client cannot be judged, when that is so: among the
    /// client's sources (connected accounts, and whatever delivered data) is a provider
    /// that never gives steps (WHOOP), and every other one is known not to give them
    /// either (activity files, the Bluetooth sensors). None when any source may give
    /// steps, or none is known not to (then `no_data` says as much as is known).
    pub async fn why_no_steps(&self, client: &Client) -> AppResult<Option<String>> {
        self.why_no_steps_with(client, &self.store.accounts().await?).await
    }

    /// [`App::why_no_steps`] with every account already read.
    async fn why_no_steps_with(&self, client: &Client, accounts: &[Account]) -> AppResult<Option<String>> {
        let mut sources: Vec<String> =
            accounts.iter().filter(|a| a.client_id == client.id).map(|a| a.provider.clone()).collect();
        sources.extend(self.store.newest_data(client.id).await?.into_iter().map(|(s, _)| s));
        sources.sort();
        sources.dedup();
        let mut names = Vec::new();
        for s in &sources {
            let name = match crate::providers::provider(s) {
                Ok(p) if p.cannot_give().contains(&Metric::Steps) => {
                    self.providers.api(s).map_or_else(|_| s.clone(), |api| api.manifest.display.clone())
                }
                Ok(_) => return Ok(None),
                Err(_) => match NO_STEPS.iter().find(|(n, _)| n == s) {
                    Some((_, name)) => (*name).to_string(),
                    None => return Ok(None),
                },
            };
            names.push(name);
        }
        let blind = |s: &String| crate::providers::provider(s).is_ok_and(|p| p.cannot_give().contains(&Metric::Steps));
        if !sources.iter().any(blind) {
            return Ok(None);
        }
        let (them, verb) = match names.as_slice() {
            [one] => (one.clone(), "does"),
            [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "do"),
            [] => return Ok(None),
        };
        Ok(Some(format!(
            "{them} {verb} not give steps, so this cannot be judged: connect a step source (Apple Health or Health \
             Auto Export from a phone, Gadgetbridge, Oura, Polar)"
        )))
    }

    /// Say on each step occurrence without data why it cannot be judged, where
    /// [`App::why_no_steps`] knows.
    pub(super) async fn note_unjudgeable(&self, clients: &[Client], occurrences: &mut [Occurrence]) -> AppResult<()> {
        let open = |o: &Occurrence| matches!(o.verdict, Verdict::NoData | Verdict::Pending);
        if !occurrences.iter().any(open) {
            return Ok(());
        }
        // Only a client with an account of a provider that never gives steps can be told
        // so: the others cost nothing more.
        let accounts = self.store.accounts().await?;
        let blind = |a: &Account| {
            crate::providers::provider(&a.provider).is_ok_and(|p| p.cannot_give().contains(&Metric::Steps))
        };
        for c in clients {
            if !accounts.iter().any(|a| a.client_id == c.id && blind(a)) {
                continue;
            }
            if !occurrences.iter().any(|o| *o.client == *c.name && open(o)) {
                continue;
            }
            let steps: Vec<i64> = self
                .store
                .list_homework(Some(c.id))
                .await?
                .into_iter()
                .filter(|r| matches!(r.homework.rule.measure, Measure::Steps { .. }))
                .map(|r| r.homework.id)
                .collect();
            let mine = |o: &Occurrence| *o.client == *c.name && open(o) && steps.contains(&o.homework_id);
            if !occurrences.iter().any(mine) {
                continue;
            }
            let Some(why) = self.why_no_steps_with(c, &accounts).await? else { continue };
            for o in occurrences.iter_mut().filter(|o| mine(o)) {
                o.note = Some(why.clone());
            }
        }
        Ok(())
    }
}
