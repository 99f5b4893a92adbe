//! A provider application's request budget: fixed windows aligned to the epoch (so
//! Strava's 15-minute windows reset at :00/:15/:30/:45 and its daily one at midnight
//! UTC), shared by every account of the provider. A request is only sent when every
//! window has room; the provider's usage headers correct the counts (other processes
//! and other installs of the same app use the same budget); a 429 blocks until the
//! window ends or the provider's Retry-After.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub name: String,
    pub seconds: i64,
    pub limit: u32,
    /// Added per connected user (Polar scales its limits with the users).
    #[serde(default)]
    pub per_user: u32,
}

#[derive(Clone, Debug)]
struct Slot {
    start: i64,
    used: u32,
    /// The provider's own figure, from its limit header.
    limit: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Limiter {
    windows: Vec<(Window, Slot)>,
    users: u32,
    blocked_until: Option<DateTime<Utc>>,
}

/// Remaining requests in one window.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Headroom {
    pub window: String,
    pub used: u32,
    pub limit: u32,
    pub resets: DateTime<Utc>,
}

impl Limiter {
    pub fn new(windows: &[Window]) -> Self {
        let slots = windows.iter().map(|w| (w.clone(), Slot { start: 0, used: 0, limit: None })).collect();
        Self { windows: slots, users: 0, blocked_until: None }
    }

    pub fn set_users(&mut self, users: u32) {
        self.users = users;
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let t = now.timestamp();
        for (w, slot) in &mut self.windows {
            let start = t - t.rem_euclid(w.seconds.max(1));
            if start != slot.start {
                *slot = Slot { start, used: 0, limit: slot.limit };
            }
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    fn limit_of(&self, w: &Window, slot: &Slot) -> u32 {
        let ours = w.limit.saturating_add(w.per_user.saturating_mul(self.users));
        slot.limit.map_or(ours, |theirs| theirs.min(ours))
    }

    /// When a request could be sent, if not now (nothing is counted).
    pub fn ready_at(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.roll(now);
        if let Some(b) = self.blocked_until {
            return Some(b);
        }
        self.windows
            .iter()
            .filter(|(w, s)| s.used >= self.limit_of(w, s))
            .map(|(w, s)| window_end(s.start, w.seconds))
            .max()
    }

    /// Count one request now, or say until when to wait.
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        if let Some(until) = self.ready_at(now) {
            return Err(until);
        }
        for (_, s) in &mut self.windows {
            s.used += 1;
        }
        Ok(())
    }

    /// The provider's usage figures, one per window in order (e.g. Strava's "15,300").
    pub fn observe(&mut self, now: DateTime<Utc>, limits: &[u32], usage: &[u32]) {
        self.roll(now);
        for (i, (_, slot)) in self.windows.iter_mut().enumerate() {
            if let Some(u) = usage.get(i) {
                slot.used = slot.used.max(*u);
            }
            if let Some(l) = limits.get(i) {
                slot.limit = Some(*l);
            }
        }
    }

    /// A 429: nothing more until `retry_after`, else until the shortest window ends.
    pub fn exhausted(&mut self, now: DateTime<Utc>, retry_after: Option<Duration>) {
        self.roll(now);
        let until = match retry_after {
            Some(d) => now + d,
            None => self
                .windows
                .iter()
                .map(|(w, s)| window_end(s.start, w.seconds))
                .min()
                .unwrap_or(now + Duration::seconds(60)),
        };
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    pub fn headroom(&mut self, now: DateTime<Utc>) -> Vec<Headroom> {
        self.roll(now);
        self.windows
            .iter()
            .map(|(w, s)| Headroom {
                window: w.name.clone(),
                used: s.used,
                limit: self.limit_of(w, s),
                resets: window_end(s.start, w.seconds),
            })
            .collect()
    }

    /// Requests left in the shortest window.
    pub fn remaining_now(&mut self, now: DateTime<Utc>) -> u32 {
        self.headroom(now).iter().map(|h| h.limit.saturating_sub(h.used)).min().unwrap_or(0)
    }
}

fn window_end(start: i64, seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(start + seconds, 0).unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn strava() -> Limiter {
        Limiter::new(&[
            Window { name: "15min".into(), seconds: 900, limit: 100, per_user: 0 },
            Window { name: "daily".into(), seconds: 86400, limit: 1000, per_user: 0 },
        ])
    }

    #[test]
    fn windows_are_aligned_and_never_exceeded() {
        let mut l = strava();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 30).single().expect("time");
        for _ in 0..100 {
            assert!(l.try_acquire(t0).is_ok());
        }
        let quarter = Utc.with_ymd_and_hms(2026, 11, 20, 10, 15, 0).single().expect("time");
        assert_eq!(l.try_acquire(t0), Err(quarter), "the 101st waits for :15");
        assert!(l.try_acquire(quarter).is_ok(), "a new window at :15");
    }

    #[test]
    fn the_daily_window_binds_and_usage_headers_correct_counts() {
        let mut l = strava();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 23, 1, 0).single().expect("time");
        l.observe(t0, &[100, 1000], &[10, 1000]);
        let midnight = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).single().expect("time");
        assert_eq!(l.try_acquire(t0), Err(midnight));
        assert!(l.try_acquire(midnight).is_ok());
    }

    #[test]
    fn a_429_blocks_until_the_window_or_retry_after() {
        let mut l = strava();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 30).single().expect("time");
        l.exhausted(t0, None);
        let quarter = Utc.with_ymd_and_hms(2026, 11, 20, 10, 15, 0).single().expect("time");
        assert_eq!(l.try_acquire(t0), Err(quarter));
        l.exhausted(quarter, Some(Duration::seconds(30)));
        assert_eq!(l.try_acquire(quarter), Err(quarter + Duration::seconds(30)));
        let mut p = Limiter::new(&[Window { name: "15min".into(), seconds: 900, limit: 500, per_user: 20 }]);
        p.set_users(3);
        assert_eq!(p.headroom(t0)[0].limit, 560, "Polar's limits grow with users");
    }
}
