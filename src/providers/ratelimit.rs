//! A provider application's request budget: fixed windows aligned to the epoch where
//! the provider documents that (Strava's 15-minute windows reset at :00/:15/:30/:45 and
//! its daily one at midnight UTC), else starting at the first request and ending when
//! the provider's reset header says (Polar: `RateLimit-Reset`), shared by every account
//! of the provider. A request is only sent when every
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
    /// Windows reset on the epoch's multiples (Strava); false: `seconds` after the first
    /// request of the window, or when the provider's reset header says (Polar).
    #[serde(default = "aligned")]
    pub aligned: bool,
}

fn aligned() -> bool {
    true
}

#[derive(Clone, Debug)]
struct Slot {
    start: i64,
    used: u32,
    /// The provider's own figure, from its limit header.
    limit: Option<u32>,
    /// When a window that is not aligned ends (unix s); None before its first request.
    end: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Limiter {
    windows: Vec<(Window, Slot)>,
    users: u32,
    blocked_until: Option<DateTime<Utc>>,
}

/// What a provider says of one of its windows (WHOOP's `X-RateLimit-*` headers).
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    pub limit: u32,
    /// The window's length, where the limit header names it.
    pub window_s: Option<i64>,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_s: Option<u32>,
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
        let slots = windows.iter().map(|w| (w.clone(), Slot { start: 0, used: 0, limit: None, end: None })).collect();
        Self { windows: slots, users: 0, blocked_until: None }
    }

    pub fn set_users(&mut self, users: u32) {
        self.users = users;
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let t = now.timestamp();
        for (w, slot) in &mut self.windows {
            if !w.aligned {
                if slot.end.is_some_and(|e| t >= e) {
                    *slot = Slot { start: t, used: 0, limit: slot.limit, end: None };
                }
                continue;
            }
            let start = t - t.rem_euclid(w.seconds.max(1));
            if start != slot.start {
                *slot = Slot { start, used: 0, limit: slot.limit, end: None };
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
        self.windows.iter().filter(|(w, s)| s.used >= self.limit_of(w, s)).map(|(w, s)| end_of(w, s, now)).max()
    }

    /// Count one request now, or say until when to wait.
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        if let Some(until) = self.ready_at(now) {
            return Err(until);
        }
        let t = now.timestamp();
        for (w, s) in &mut self.windows {
            s.used += 1;
            if !w.aligned && s.end.is_none() {
                s.end = Some(t + w.seconds);
            }
        }
        Ok(())
    }

    /// The provider's usage figures, one per window in order (e.g. Strava's "15,300"),
    /// and, where it sends them, the seconds until each window resets.
    pub fn observe(&mut self, now: DateTime<Utc>, limits: &[u32], usage: &[u32], resets: &[u32]) {
        self.roll(now);
        let t = now.timestamp();
        for (i, (w, slot)) in self.windows.iter_mut().enumerate() {
            if let Some(u) = usage.get(i) {
                slot.used = slot.used.max(*u);
            }
            if let Some(l) = limits.get(i) {
                slot.limit = Some(*l);
            }
            if let Some(r) = resets.get(i).filter(|_| !w.aligned) {
                // The provider's word over our guess; never more than a window ahead.
                slot.end = Some(t + i64::from(*r).min(w.seconds));
            }
        }
    }

    /// One window's figures as the provider sent them ([`Quota`]): the window of that
    /// length (else of that limit, else the shortest) has used at least what its limit
    /// leaves, and (not aligned) ends when the provider says.
    pub fn observe_quota(&mut self, now: DateTime<Utc>, q: &Quota) {
        self.roll(now);
        let t = now.timestamp();
        let users = self.users;
        let by_length = q.window_s.and_then(|s| self.windows.iter().position(|(w, _)| w.seconds == s));
        let by_limit = || {
            self.windows.iter().position(|(w, _)| w.limit.saturating_add(w.per_user.saturating_mul(users)) == q.limit)
        };
        let shortest = || (0..self.windows.len()).min_by_key(|i| self.windows[*i].0.seconds);
        let Some(i) = by_length.or_else(by_limit).or_else(shortest) else { return };
        let (w, slot) = &mut self.windows[i];
        slot.limit = Some(q.limit);
        slot.used = slot.used.max(q.limit.saturating_sub(q.remaining));
        if let Some(r) = q.reset_s.filter(|_| !w.aligned) {
            slot.end = Some(t + i64::from(r).min(w.seconds));
        }
    }

    /// A 429: nothing more until `retry_after`, else until the shortest window ends.
    pub fn exhausted(&mut self, now: DateTime<Utc>, retry_after: Option<Duration>) {
        self.roll(now);
        let until = match retry_after {
            Some(d) => now + d,
            None => self.windows.iter().map(|(w, s)| end_of(w, s, now)).min().unwrap_or(now + Duration::seconds(60)),
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
                resets: end_of(w, s, now),
            })
            .collect()
    }

    /// Requests left in the shortest window.
    pub fn remaining_now(&mut self, now: DateTime<Utc>) -> u32 {
        self.headroom(now).iter().map(|h| h.limit.saturating_sub(h.used)).min().unwrap_or(0)
    }
}

/// When a window ends: its aligned end, or (not aligned) the end the first request or
/// the provider's reset header set, else a whole window from now.
fn end_of(w: &Window, s: &Slot, now: DateTime<Utc>) -> DateTime<Utc> {
    let end = if w.aligned { s.start + w.seconds } else { s.end.unwrap_or(now.timestamp() + w.seconds) };
    DateTime::from_timestamp(end, 0).unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn strava() -> Limiter {
        Limiter::new(&[
            Window { name: "15min".into(), seconds: 900, limit: 100, per_user: 0, aligned: true },
            Window { name: "daily".into(), seconds: 86400, limit: 1000, per_user: 0, aligned: true },
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
        l.observe(t0, &[100, 1000], &[10, 1000], &[]);
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
        let mut p =
            Limiter::new(&[Window { name: "15min".into(), seconds: 900, limit: 500, per_user: 20, aligned: true }]);
        p.set_users(3);
        assert_eq!(p.headroom(t0)[0].limit, 560, "Polar's limits grow with users");
    }

    #[test]
    fn whoop_names_the_window_its_remaining_and_reset_are_of() {
        let mut l = Limiter::new(&[
            Window { name: "minute".into(), seconds: 60, limit: 100, per_user: 0, aligned: false },
            Window { name: "daily".into(), seconds: 86400, limit: 10_000, per_user: 0, aligned: false },
        ]);
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 11, 20, h, m, s).single().expect("time");
        assert_eq!(l.try_acquire(at(10, 0, 0)), Ok(()));
        // Other installs of the app used the minute: 3 left, reset in 20 s.
        l.observe_quota(at(10, 0, 1), &Quota { limit: 100, window_s: Some(60), remaining: 3, reset_s: Some(20) });
        for _ in 0..3 {
            assert_eq!(l.try_acquire(at(10, 0, 2)), Ok(()));
        }
        assert_eq!(l.try_acquire(at(10, 0, 2)), Err(at(10, 0, 21)));
        // The day is nearly used up: the limit header names the daily window.
        l.observe_quota(at(10, 0, 30), &Quota { limit: 10_000, window_s: None, remaining: 0, reset_s: Some(3600) });
        assert_eq!(l.try_acquire(at(10, 1, 0)), Err(at(11, 0, 30)));
    }

    #[test]
    fn polar_windows_start_at_the_first_request_and_end_when_the_header_says() {
        let mut l = Limiter::new(&[
            Window { name: "15min".into(), seconds: 900, limit: 2, per_user: 0, aligned: false },
            Window { name: "daily".into(), seconds: 86400, limit: 100, per_user: 0, aligned: false },
        ]);
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 11, 20, h, m, s).single().expect("time");
        // First request at 10:07: the 15-minute window runs to 10:22, not to 10:15.
        assert_eq!(l.try_acquire(at(10, 7, 0)), Ok(()));
        assert_eq!(l.try_acquire(at(10, 8, 0)), Ok(()));
        assert_eq!(l.try_acquire(at(10, 15, 30)), Err(at(10, 22, 0)), "still the window that began at 10:07");
        // The provider says the window resets in 60 s.
        l.observe(at(10, 16, 0), &[2, 100], &[2, 2], &[60, 80_000]);
        assert_eq!(l.try_acquire(at(10, 16, 30)), Err(at(10, 17, 0)));
        assert_eq!(l.try_acquire(at(10, 17, 0)), Ok(()), "a new window from its reset");
        assert_eq!(l.headroom(at(10, 17, 1))[0].resets, at(10, 32, 0));
    }
}
