//! Reaching people: channels, nudges, the outbox and the links in nudges.
//!
//! - Channels: one URL per client or trainer ([`crate::notify::Channel`]), checked when
//!   set, sealed in the store, tested on demand.
//! - A round ([`App::notify_round`], every `notify.interval_s` in the daemon, on any
//!   clock in tests): for each client with a channel, each open occurrence of today or
//!   yesterday whose reminder is due gets its one outbox row, to send or suppressed
//!   with why ([`crate::engine::nudge`] decides); then every due row is claimed, sent
//!   and settled, a failure retried with backoff until its window closes.
//! - Links in a nudge (`/n/ID/ACTION/EXPIRY/SIGNATURE`): signed with the data dir's
//!   key over the outbox row, its client, homework, occurrence, the action and the
//!   expiry, so a link works only for the one occurrence it was made for; the check-in
//!   ones work once and until the window's grace period ends.

use super::{App, AppError, AppResult};
use crate::engine::judge::{EvidenceRef, Verdict};
use crate::engine::nudge::{self, Decision, Progress};
use crate::engine::rule::{number, Measure};
use crate::notify::{Action, Channel, Message};
use crate::store::notify::{ChannelStatus, NewOutbox, OutboxRow, Recipient, WeekMessage};
use crate::store::web::Trainer;
use crate::store::{Client, HomeworkRow};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Whom `coachd notify set/test` and the dashboard address.
#[derive(Clone, Debug)]
pub enum NotifyTarget {
    Client(Client),
    Trainer(Trainer),
}

impl NotifyTarget {
    fn recipient(&self) -> Recipient {
        match self {
            Self::Client(c) => Recipient::Client(c.id),
            Self::Trainer(t) => Recipient::Trainer(t.id),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Client(c) => &c.name,
            Self::Trainer(t) => &t.name,
        }
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Nudges newly put in the outbox to send.
    pub queued: u32,
    pub suppressed: u32,
    pub sent: u32,
    /// Sends that failed this round (retried later, or given up).
    pub failed: u32,
}

/// The longest lead a reminder may have before its window ends: 12 hours.
pub const MAX_LEAD_MIN: i64 = 720;

/// One occurrence's reminder in a week's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledNudge {
    pub date: NaiveDate,
    pub homework_id: i64,
    pub homework: String,
    pub due: Option<DateTime<Utc>>,
    pub closes: DateTime<Utc>,
}

/// A link's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    /// Record a check-in of the target.
    Done,
    /// Record a check-in of an amount the client gives.
    Did,
    /// Turn reminders off.
    Stop,
    /// The weekly reflection (1-10 and a note) of the week the message was about.
    Reflect,
}

impl LinkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Did => "did",
            Self::Stop => "stop",
            Self::Reflect => "reflect",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Done, Self::Did, Self::Stop, Self::Reflect].into_iter().find(|a| a.as_str() == s)
    }
}

/// A link from a nudge, checked: the occurrence it is for.
#[derive(Clone, Debug)]
pub struct NudgeLink {
    pub outbox: i64,
    pub action: LinkAction,
    pub client: Client,
    pub homework: String,
    pub occurrence: NaiveDate,
    pub unit: String,
    pub target: f64,
}

/// Why a link does nothing, in words for the page.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("this link is not valid: it may have been copied incompletely")]
    Invalid,
    #[error("this link has expired: the homework's window has closed")]
    Expired,
    #[error("this link was used already: the check-in is recorded")]
    Used,
}

/// How long the opt-out link keeps working after the check-in links stop.
const STOP_LINK_DAYS: i64 = 60;

fn pretty_exercise(e: &str, n: f64) -> String {
    let word = e.replace('_', "-");
    if n == 1.0 || word.ends_with('s') {
        word
    } else {
        format!("{word}s")
    }
}

/// "10 push-ups", "8000 steps", else the homework's own words without its days
/// ("15 minutes of cardio on Tue, Thu" is "15 minutes of cardio" on the day).
fn what(row: &HomeworkRow, target: f64) -> String {
    match &row.homework.rule.measure {
        Measure::Reps { exercise, .. } => format!("{} {}", number(target), pretty_exercise(exercise, target)),
        Measure::Sets { exercise, reps, .. } => {
            format!("{} sets of {reps} {}", number(target), pretty_exercise(exercise, f64::from(*reps)))
        }
        Measure::Steps { .. } => format!("{} steps", number(target)),
        _ if !row.homework.rule.schedule.weekly() => {
            let text = &row.homework.text;
            let cut = [" every ", " on "].iter().filter_map(|w| text.find(w)).min().unwrap_or(text.len());
            text[..cut].to_string()
        }
        _ => row.homework.text.to_string(),
    }
}

/// A reminder's title: "10 push-ups tonight?", "a run, twice a week: this week?".
fn title(row: &HomeworkRow, target: f64, cfg: &crate::engine::judge::JudgeConfig) -> String {
    let what = what(row, target);
    if row.homework.rule.schedule.weekly() {
        format!("{what}: this week?")
    } else {
        format!("{what} {}?", when(row, cfg))
    }
}

fn when(row: &HomeworkRow, cfg: &crate::engine::judge::JudgeConfig) -> String {
    let rule = &row.homework.rule;
    match rule.window.or(rule.nightly.then_some(cfg.nightly)) {
        Some(w) if rule.nightly || w.crosses_midnight() => "tonight".into(),
        Some(w) => format!("by {}", w.end.format("%H:%M")),
        None => "today".into(),
    }
}

impl App {
    async fn http(&self) -> AppResult<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(crate::notify::SEND_LIMIT)
            .build()
            .map_err(|e| AppError::Runtime(anyhow::anyhow!("building the HTTP client: {e}")))
    }

    /// Check and store a channel; what it will show as.
    pub async fn set_channel(&self, to: &NotifyTarget, url: &str) -> AppResult<String> {
        let channel = Channel::parse(url).map_err(AppError::Input)?;
        let shown = channel.shown();
        self.store.set_channel(to.recipient(), channel.kind(), url.trim(), &shown).await?;
        Ok(shown)
    }

    /// Remove a channel; whether there was one.
    pub async fn remove_channel(&self, to: &NotifyTarget) -> AppResult<bool> {
        Ok(self.store.remove_channel(to.recipient()).await?)
    }

    pub async fn channel_statuses(&self) -> AppResult<Vec<ChannelStatus>> {
        Ok(self.store.channel_statuses().await?)
    }

    pub async fn channel_status(&self, to: &NotifyTarget) -> AppResult<Option<ChannelStatus>> {
        Ok(self.store.channel(to.recipient()).await?.map(|c| c.status))
    }

    /// Send a test message now; the channel's state records the result. Err(what
    /// failed) when the send failed.
    pub async fn test_channel(&self, to: &NotifyTarget, now: DateTime<Utc>) -> AppResult<Result<String, String>> {
        let stored = self.store.channel(to.recipient()).await?.ok_or_else(|| {
            AppError::NotFound(format!("{} has no channel; set one with `coachd notify set`", to.name()))
        })?;
        let channel = Channel::parse(stored.url.expose()).map_err(|e| AppError::Runtime(anyhow::anyhow!(e)))?;
        let message = Message {
            title: "coachd: test message".into(),
            body: format!("This is how coachd reaches {}. Nothing to do.", to.name()),
            click: Some(self.base_url()),
            ..Message::default()
        };
        let result = channel.send(&self.http().await?, &message).await.map_err(|e| e.0);
        let err = result.as_ref().err().map(String::as_str);
        self.store.channel_result(stored.id, err, now).await?;
        let row = NewOutbox {
            to: to.recipient(),
            kind: "test",
            occurrence: None,
            channel_kind: Some(channel.kind().into()),
            title: message.title,
            body: message.body,
            state: "pending",
            reason: None,
            due: now,
            expires: now,
            link_expires: None,
        };
        if let Some(id) = self.store.record_outbox(&row, now).await? {
            let state = if result.is_ok() { "sent" } else { "failed" };
            self.store.settle_outbox(id, state, err, None, now).await?;
        }
        Ok(result.map(|()| channel.shown()))
    }

    /// The reminder settings for a client: the `[notify]` defaults, with the client's own
    /// times (`coachd notify times`) over them.
    pub async fn nudge_settings_for(&self, client: &Client) -> AppResult<nudge::NudgeSettings> {
        let mut settings = self.config.notify.nudge_settings();
        let (daily_at, lead_min) = self.store.nudge_times(client.id).await?;
        if let Some(at) = daily_at.as_deref().and_then(|t| chrono::NaiveTime::parse_from_str(t, "%H:%M").ok()) {
            settings.daily_at = at;
        }
        if let Some(lead) = lead_min.filter(|m| (0..=MAX_LEAD_MIN).contains(m)) {
            settings.lead = Duration::minutes(lead);
        }
        Ok(settings)
    }

    /// Set the client's own reminder times: `daily_at` ("HH:MM", local) for whole-day
    /// and weekly homework, `lead` (minutes, 0-720) before a window ends for windowed
    /// ones; a value not given is kept, `reset` returns both to the defaults. The times
    /// now in force.
    pub async fn set_nudge_times(
        &self,
        client: &Client,
        daily_at: Option<&str>,
        lead: Option<&str>,
        reset: bool,
    ) -> AppResult<nudge::NudgeSettings> {
        let (mut at, mut lead_min) = if reset { (None, None) } else { self.store.nudge_times(client.id).await? };
        if let Some(t) = daily_at {
            let parsed = chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| AppError::input(format!("{t:?} is not a time of day: give HH:MM, e.g. 19:30")))?;
            at = Some(parsed.format("%H:%M").to_string());
        }
        if let Some(l) = lead {
            let minutes = l.trim().parse::<i64>().ok().filter(|m| (0..=MAX_LEAD_MIN).contains(m)).ok_or_else(|| {
                AppError::input(format!("{l:?} is not a lead: give whole minutes from 0 to {MAX_LEAD_MIN}"))
            })?;
            lead_min = Some(minutes);
        }
        self.store.set_nudge_times(client.id, at.as_deref(), lead_min).await?;
        self.nudge_settings_for(client).await
    }

    /// Whether the client turned reminders off through a nudge's link.
    pub async fn nudges_off(&self, client: &Client) -> AppResult<bool> {
        Ok(self.store.nudges_off(client.id).await?)
    }

    /// When each occurrence of the week starting `monday` is due a reminder (the plan
    /// alone: whether one is sent depends on the day's data).
    pub async fn nudge_schedule(&self, client: &Client, monday: NaiveDate) -> AppResult<Vec<ScheduledNudge>> {
        let settings = self.nudge_settings_for(client).await?;
        let j = self.judging();
        let mut out = Vec::new();
        for row in self.store.list_homework(Some(client.id)).await? {
            let hw = &row.homework;
            if matches!(hw.rule.measure, Measure::Questions { .. }) {
                continue;
            }
            for date in hw.occurrence_dates(monday, monday + Duration::days(6)) {
                let p = nudge::plan(hw, &j.cfg, &settings, client.tz, date);
                out.push(ScheduledNudge {
                    date,
                    homework_id: hw.id,
                    homework: hw.text.to_string(),
                    due: p.due,
                    closes: p.closes,
                });
            }
        }
        out.sort_by_key(|n| (n.due.unwrap_or(n.closes), n.homework_id));
        Ok(out)
    }

    /// Put the trainer's digest of the week starting `week` in the outbox and send what is
    /// due now (it included); the round's counts.
    pub async fn send_digest(&self, trainer: &Trainer, week: NaiveDate, now: DateTime<Utc>) -> AppResult<Round> {
        let channel = self.store.channel(Recipient::Trainer(trainer.id)).await?.ok_or_else(|| {
            AppError::NotFound(format!("{} has no channel; set one with `coachd notify set --trainer`", trainer.name))
        })?;
        let title = format!("coachd: your clients' week of {}", week.format("%b %-d"));
        let mut round = Round::default();
        let m = WeekMessage {
            channel_kind: &channel.kind,
            title: &title,
            expires: now + Duration::hours(24),
            link_expires: None,
        };
        if self.store.record_week(Recipient::Trainer(trainer.id), week, m, now).await?.is_none() {
            return Err(AppError::input(format!(
                "the digest of the week of {week} was sent to {} already",
                trainer.name
            )));
        }
        round.queued = 1;
        self.deliver(now, &mut round).await?;
        Ok(round)
    }

    /// A client's (or a trainer's) latest outbox rows, newest first.
    pub async fn outbox(&self, to: &NotifyTarget, limit: i64) -> AppResult<Vec<OutboxRow>> {
        Ok(self.store.outbox_of(to.recipient(), limit.clamp(1, 500)).await?)
    }

    /// Outbox rows by (kind, state), for /metrics.
    pub async fn outbox_counts(&self) -> AppResult<Vec<(String, String, i64)>> {
        Ok(self.store.outbox_counts().await?)
    }

    /// Sends cut short by a stop are not repeated: a row claimed longer ago than twice a
    /// send's time limit is no send in progress (in this process or another replica).
    pub async fn interrupt_sending(&self, now: DateTime<Utc>) -> AppResult<u64> {
        let limit = chrono::Duration::from_std(crate::notify::SEND_LIMIT * 2).unwrap_or(chrono::Duration::minutes(1));
        Ok(self.store.interrupt_sending(now, now - limit).await?)
    }

    /// One round of the schedule and the outbox at `now`.
    pub async fn notify_round(&self, now: DateTime<Utc>) -> AppResult<Round> {
        let mut round = Round::default();
        for client in self.store.list_clients().await? {
            let Some(channel) = self.store.channel(Recipient::Client(client.id)).await? else { continue };
            self.plan_client(&client, &channel.kind, now, &mut round).await?;
            self.plan_week_message(&client, &channel.kind, now, &mut round).await?;
        }
        if let Some(week) = self.digest_due(now) {
            // Only on that Monday: a daemon down all day sends no stale digest on Tuesday.
            let tz = self.default_tz();
            let tomorrow = crate::time::today(tz, now) + Duration::days(1);
            let expires = crate::time::local(tz, tomorrow, chrono::NaiveTime::MIN);
            for trainer in self.store.trainers().await? {
                let Some(channel) = self.store.channel(Recipient::Trainer(trainer.id)).await? else { continue };
                let title = format!("coachd: your clients' week of {}", week.format("%b %-d"));
                let m = WeekMessage { channel_kind: &channel.kind, title: &title, expires, link_expires: None };
                if self.store.record_week(Recipient::Trainer(trainer.id), week, m, now).await?.is_some() {
                    round.queued += 1;
                }
            }
        }
        if let Some(day) = self.attention_due(now) {
            // Once a day: the lines are computed while that day's row is not there yet, and
            // a day on which nobody needs attention is recorded as suppressed, so the next
            // rounds of that day (every minute) do not compute them again.
            for trainer in self.store.trainers().await? {
                let Some(channel) = self.store.channel(Recipient::Trainer(trainer.id)).await? else { continue };
                if self.store.attention_recorded(trainer.id, day).await? {
                    continue;
                }
                let nobody = self.attention_lines(&trainer, day, now).await?.is_empty();
                let tz = self.default_tz();
                let expires = crate::time::local(tz, day + Duration::days(1), chrono::NaiveTime::MIN);
                let title = "coachd: clients who need attention";
                let m = WeekMessage { channel_kind: &channel.kind, title, expires, link_expires: None };
                match self.store.record_attention(trainer.id, day, m, now).await? {
                    Some(id) if nobody => {
                        self.store.settle_outbox(id, "suppressed", Some("nobody needs attention"), None, now).await?;
                        round.suppressed += 1;
                    }
                    Some(_) => round.queued += 1,
                    None => {}
                }
            }
        }
        self.deliver(now, &mut round).await?;
        Ok(round)
    }

    /// Put the client's due nudges in the outbox (to send, or suppressed with why).
    async fn plan_client(&self, client: &Client, kind: &str, now: DateTime<Utc>, round: &mut Round) -> AppResult<()> {
        let settings = self.nudge_settings_for(client).await?;
        let j = self.judging();
        let today = crate::time::today(client.tz, now);
        let opted_out = self.store.nudges_off(client.id).await?;
        for row in self.store.list_homework(Some(client.id)).await? {
            let hw = &row.homework;
            if matches!(hw.rule.measure, Measure::Questions { .. }) {
                continue; // answered in their own form on the private page, not checked in
            }
            let mut dates: Vec<NaiveDate> = if hw.rule.schedule.weekly() {
                hw.occurrence_dates(today - Duration::days(7), today)
            } else {
                hw.occurrence_dates(today - Duration::days(1), today)
            };
            dates.dedup();
            for date in dates {
                let p = nudge::plan(hw, &j.cfg, &settings, client.tz, date);
                // Nothing to decide yet (the common case): no verdict is computed.
                let early = match p.due {
                    Some(due) => now < due,
                    None => now < p.closes,
                };
                if early || now < p.opens || self.store.nudge_recorded(hw.id, date).await? {
                    continue;
                }
                let progress = self.progress(client, &row, date, now).await?;
                let target = hw.rule.target_on(hw.from, date);
                let title = title(&row, target, &j.cfg);
                let (state, reason) = match nudge::decide(&p, &settings, client.tz, now, progress, opted_out) {
                    Decision::Wait => continue,
                    Decision::Send => ("pending", None),
                    Decision::Suppress(why) => ("suppressed", Some(why.to_string())),
                };
                let new = NewOutbox {
                    to: Recipient::Client(client.id),
                    kind: "nudge",
                    occurrence: Some((hw.id, date)),
                    channel_kind: Some(kind.to_string()),
                    title: title.clone(),
                    body: "Tap when done.".into(),
                    state,
                    reason,
                    due: p.due.unwrap_or(p.closes),
                    expires: p.closes,
                    link_expires: Some(p.links_until),
                };
                let Some(id) = self.store.record_outbox(&new, now).await? else { continue };
                if state == "suppressed" {
                    round.suppressed += 1;
                    continue;
                }
                let body = self.nudge_body(id, client, &row, date, p.links_until);
                self.store.set_outbox_text(id, &title, &body).await?;
                round.queued += 1;
            }
        }
        Ok(())
    }

    async fn progress(
        &self,
        client: &Client,
        row: &HomeworkRow,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> AppResult<Progress> {
        let report = self.status(std::slice::from_ref(client), date, date, now).await?;
        let occ = report.occurrences.iter().find(|o| o.homework_id == row.homework.id && o.date == date);
        Ok(match occ {
            Some(o) if o.verdict == Verdict::Excused => Progress::Excused,
            Some(o) if o.verdict == Verdict::Done => Progress::Done,
            Some(o) if o.evidence.iter().any(|e| matches!(e, EvidenceRef::Checkin { .. })) => Progress::CheckedIn,
            _ => Progress::Open,
        })
    }

    fn link_parts(row_id: i64, client: i64, homework: i64, date: NaiveDate, action: LinkAction, exp: i64) -> String {
        format!("coachd nudge link v1\0{row_id}\0{client}\0{homework}\0{date}\0{}\0{exp}", action.as_str())
    }

    /// The link of one action of an outbox row.
    fn nudge_link_url(
        &self,
        row_id: i64,
        client: &Client,
        homework: i64,
        date: NaiveDate,
        action: LinkAction,
        exp: i64,
    ) -> String {
        let parts = Self::link_parts(row_id, client.id, homework, date, action, exp);
        let mac = self.store.cipher().sign(&[parts.as_bytes()]);
        format!("{}/n/{row_id}/{}/{exp}/{mac}", self.base_url().trim_end_matches('/'), action.as_str())
    }

    fn link_expiry(action: LinkAction, links_until: DateTime<Utc>) -> i64 {
        match action {
            LinkAction::Stop => (links_until + Duration::days(STOP_LINK_DAYS)).timestamp(),
            _ => links_until.timestamp(),
        }
    }

    /// The three links of a nudge, as (action, URL).
    pub fn nudge_links(
        &self,
        row_id: i64,
        client: &Client,
        homework: i64,
        date: NaiveDate,
        links_until: DateTime<Utc>,
    ) -> Vec<(LinkAction, String)> {
        [LinkAction::Done, LinkAction::Did, LinkAction::Stop]
            .into_iter()
            .map(|a| (a, self.nudge_link_url(row_id, client, homework, date, a, Self::link_expiry(a, links_until))))
            .collect()
    }

    fn nudge_body(&self, id: i64, client: &Client, row: &HomeworkRow, date: NaiveDate, until: DateTime<Utc>) -> String {
        let links = self.nudge_links(id, client, row.homework.id, date, until);
        let link = |a: LinkAction| links.iter().find(|(x, _)| *x == a).map(|(_, u)| u.clone()).unwrap_or_default();
        format!(
            "Tap when done: {}\nDid some, not all? Say how many: {}\n\n({})\nNo more reminders: {}",
            link(LinkAction::Done),
            link(LinkAction::Did),
            row.homework.text,
            link(LinkAction::Stop),
        )
    }

    /// The message a row carries: its text, and for a nudge its buttons.
    async fn message_of(&self, row: &OutboxRow, kind: &str, now: DateTime<Utc>) -> AppResult<Message> {
        if let (true, Some(tid), Some(week)) = (row.kind == "digest", row.trainer_id, row.occurrence) {
            let trainer = self.store.trainers().await?.into_iter().find(|t| t.id == tid);
            let trainer = trainer.ok_or_else(|| AppError::NotFound(format!("trainer #{tid}")))?;
            return self.digest(&trainer, week, now).await;
        }
        if let (true, Some(tid), Some(day)) = (row.kind == "attention", row.trainer_id, row.occurrence) {
            let trainer = self.store.trainers().await?.into_iter().find(|t| t.id == tid);
            let trainer = trainer.ok_or_else(|| AppError::NotFound(format!("trainer #{tid}")))?;
            return self.attention_digest(&trainer, day, now).await;
        }
        if let (true, Some(cid), Some(week), Some(until)) =
            (row.kind == "weekly", row.client_id, row.occurrence, row.link_expires)
        {
            let client = self.store.client_by_id(cid).await?;
            return self.week_message(&client, row.id, week, until, now).await;
        }
        let mut m = Message { title: row.title.clone(), body: row.body.clone(), ..Message::default() };
        if let (Some(cid), Some(hw), Some(date), Some(until)) =
            (row.client_id, row.homework_id, row.occurrence, row.link_expires)
        {
            let client = self.store.client_by_id(cid).await?;
            let links = self.nudge_links(row.id, &client, hw, date, until);
            let link = |a: LinkAction| links.iter().find(|(x, _)| *x == a).map(|(_, u)| u.clone()).unwrap_or_default();
            if kind == "ntfy" {
                // Buttons carry the links; the text stays short on a lock screen.
                let hw = self.store.homework(hw).await?;
                m.body = format!("Tap Done when done. ({})", hw.homework.text);
            }
            m.click = Some(link(LinkAction::Done));
            m.actions = vec![
                Action { label: "Done".into(), url: link(LinkAction::Done), post: true },
                Action { label: "I did N".into(), url: link(LinkAction::Did), post: false },
                Action { label: "Stop reminders".into(), url: link(LinkAction::Stop), post: false },
            ];
        }
        Ok(m)
    }

    /// Send every due outbox row: claimed first, settled after, retried with backoff.
    async fn deliver(&self, now: DateTime<Utc>, round: &mut Round) -> AppResult<()> {
        round.failed += u32::try_from(self.store.expire_outbox(now).await?).unwrap_or(u32::MAX);
        let due = self.store.outbox_due(now).await?;
        if due.is_empty() {
            return Ok(());
        }
        let http = self.http().await?;
        for row in due {
            let to = match (row.client_id, row.trainer_id) {
                (Some(c), _) => Recipient::Client(c),
                (None, Some(t)) => Recipient::Trainer(t),
                (None, None) => continue,
            };
            let Some(stored) = self.store.channel(to).await? else {
                self.store.settle_outbox(row.id, "failed", Some("the channel was removed"), None, now).await?;
                round.failed += 1;
                continue;
            };
            if !self.store.claim_outbox(row.id, now).await? {
                continue;
            }
            // A claimed row is always settled: a message that cannot be made is a failure
            // of its own, not a row left `sending`.
            let result = match (self.message_of(&row, &stored.kind, now).await, Channel::parse(stored.url.expose())) {
                (Ok(message), Ok(ch)) => ch.send(&http, &message).await.map_err(|e| e.0),
                (Err(e), _) => Err(format!("the message could not be made: {e}")),
                (_, Err(e)) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.store.settle_outbox(row.id, "sent", None, None, now).await?;
                    self.store.channel_result(stored.id, None, now).await?;
                    round.sent += 1;
                }
                Err(e) => {
                    tracing::warn!(outbox = row.id, channel = %stored.status.shown, error = %e, "a send failed");
                    self.store.channel_result(stored.id, Some(&e), now).await?;
                    let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                    let wait = retry_wait(attempts, self.config.notify.retry_max_s);
                    let next = now + wait;
                    let (state, next) = if next < row.expires { ("retry", Some(next)) } else { ("failed", None) };
                    self.store.settle_outbox(row.id, state, Some(&e), next, now).await?;
                    round.failed += 1;
                }
            }
        }
        Ok(())
    }

    /// On the client's Sunday at `notify.weekly_at`: their week's message, once, while
    /// that Sunday lasts.
    async fn plan_week_message(
        &self,
        client: &Client,
        kind: &str,
        now: DateTime<Utc>,
        round: &mut Round,
    ) -> AppResult<()> {
        let Ok(at) = chrono::NaiveTime::parse_from_str(self.config.notify.weekly_at.trim(), "%H:%M") else {
            return Ok(());
        };
        let local = now.with_timezone(&client.tz);
        if chrono::Datelike::weekday(&local) != chrono::Weekday::Sun || local.time() < at {
            return Ok(());
        }
        if self.store.nudges_off(client.id).await? {
            return Ok(());
        }
        let week = crate::time::monday(local.date_naive());
        let expires = crate::time::local(client.tz, week + Duration::days(7), chrono::NaiveTime::MIN);
        let title = format!("Your week of {}", week.format("%b %-d"));
        // A week to reflect on it: until the next week's message.
        let m =
            WeekMessage { channel_kind: kind, title: &title, expires, link_expires: Some(expires + Duration::days(7)) };
        if self.store.record_week(Recipient::Client(client.id), week, m, now).await?.is_some() {
            round.queued += 1;
        }
        Ok(())
    }

    /// A client's week: how each homework went (done of due so far), the week as one
    /// small chart (inline in e-mail), and links to reflect on it and to stop messages.
    async fn week_message(
        &self,
        client: &Client,
        row_id: i64,
        week: NaiveDate,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> AppResult<Message> {
        let end = week + Duration::days(6);
        let report = self.status(std::slice::from_ref(client), week, end, now).await?;
        let link = |a: LinkAction, exp: i64| self.nudge_link_url(row_id, client, 0, week, a, exp);
        let reflect = link(LinkAction::Reflect, until.timestamp());
        let stop = link(LinkAction::Stop, (until + Duration::days(STOP_LINK_DAYS)).timestamp());
        let mut lines = Vec::new();
        let mut ids: Vec<(i64, String)> =
            report.occurrences.iter().map(|o| (o.homework_id, o.homework.to_string())).collect();
        ids.sort();
        ids.dedup();
        let (mut done_all, mut due_all) = (0usize, 0usize);
        for (id, text) in ids {
            let occs: Vec<_> = report.occurrences.iter().filter(|o| o.homework_id == id).collect();
            let done = occs.iter().filter(|o| o.verdict == Verdict::Done).count();
            let due = occs.iter().filter(|o| !matches!(o.verdict, Verdict::Excused)).count();
            done_all += done;
            due_all += due;
            lines.push(format!("{text}: {done} of {due} done"));
        }
        let title = format!("Your week of {}: {done_all} of {due_all} done", week.format("%b %-d"));
        let body = format!(
            "{}\n\nHow did your week go? Rate it 1-10 and say why: {reflect}\n\nNo more messages: {stop}",
            lines.join("\n")
        );
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let html = format!(
            "<!doctype html><html><body style=\"font-family:sans-serif;color:#222;max-width:560px\"><h1 style=\"font-size:20px\">{}</h1>\
             <p><img src=\"cid:week\" alt=\"Your week\" style=\"max-width:100%\"></p><ul>{}</ul>\
             <p><a href=\"{}\">How did your week go? Rate it 1-10</a></p>\
             <p style=\"color:#777;font-size:12px\"><a href=\"{}\">No more messages</a></p></body></html>",
            esc(&title),
            lines.iter().map(|l| format!("<li>{}</li>", esc(l))).collect::<String>(),
            esc(&reflect),
            esc(&stop)
        );
        let chart =
            self.chart(crate::charts::Kind::Adherence, Some(client), &[], (Some(week), Some(end)), None).await?;
        let png = crate::charts::render::render(&chart, crate::charts::Format::Png).map_err(AppError::Runtime)?;
        Ok(Message {
            title,
            body,
            click: Some(reflect.clone()),
            actions: vec![
                Action { label: "Rate my week".into(), url: reflect, post: false },
                Action { label: "Stop messages".into(), url: stop, post: false },
            ],
            html: Some(html),
            images: vec![("week".into(), png)],
        })
    }

    /// The reflection sent through a weekly message's link: that week's, 1-10 and a note.
    pub async fn reflect_by_link(&self, link: &NudgeLink, rating: &str, note: &str) -> AppResult<u8> {
        if link.action != LinkAction::Reflect {
            return Err(AppError::input("this link is not for a reflection"));
        }
        self.reflect(&link.client, link.occurrence, rating, note).await
    }

    /// Check a link from a nudge: it must be one coachd signed for that row, unexpired.
    pub async fn nudge_link(
        &self,
        id: i64,
        action: &str,
        exp: i64,
        mac: &str,
        now: DateTime<Utc>,
    ) -> Result<NudgeLink, LinkRefusal> {
        let action = LinkAction::parse(action).ok_or(LinkRefusal::Invalid)?;
        let row = self.store.outbox_row(id).await.ok().flatten().ok_or(LinkRefusal::Invalid)?;
        let (Some(cid), Some(date)) = (row.client_id, row.occurrence) else {
            return Err(LinkRefusal::Invalid);
        };
        let hw = row.homework_id.unwrap_or(0);
        let fits = match action {
            LinkAction::Done | LinkAction::Did => row.kind == "nudge",
            LinkAction::Reflect => row.kind == "weekly",
            LinkAction::Stop => row.kind == "nudge" || row.kind == "weekly",
        };
        let parts = Self::link_parts(id, cid, hw, date, action, exp);
        if !fits || !self.store.cipher().signed(&[parts.as_bytes()], mac) {
            return Err(LinkRefusal::Invalid);
        }
        if now.timestamp() > exp {
            return Err(LinkRefusal::Expired);
        }
        if matches!(action, LinkAction::Done | LinkAction::Did) && row.link_used.is_some() {
            return Err(LinkRefusal::Used);
        }
        let client = self.store.client_by_id(cid).await.map_err(|_| LinkRefusal::Invalid)?;
        let (homework, unit, target) = match row.homework_id {
            Some(h) => {
                let hw = self.store.homework(h).await.map_err(|_| LinkRefusal::Invalid)?.homework;
                let target = hw.rule.target_on(hw.from, date);
                (hw.text.to_string(), hw.rule.unit().to_string(), target)
            }
            None => (String::new(), String::new(), 0.0),
        };
        Ok(NudgeLink { outbox: id, action, homework, occurrence: date, unit, target, client })
    }

    /// Follow a checked link: a check-in (of the target, or of `value`), or reminders
    /// off. A check-in link works once.
    pub async fn use_nudge_link(
        &self,
        link: &NudgeLink,
        value: Option<f64>,
        now: DateTime<Utc>,
    ) -> AppResult<Result<(), LinkRefusal>> {
        match link.action {
            LinkAction::Stop => {
                self.store.set_nudges_off(link.client.id, now).await?;
                Ok(Ok(()))
            }
            LinkAction::Reflect => Err(AppError::input("a reflection is sent with its rating and note")),
            LinkAction::Done | LinkAction::Did => {
                let value = if link.action == LinkAction::Done { None } else { value };
                if value.is_some_and(|v| !(v.is_finite() && (0.0..=100_000.0).contains(&v))) {
                    return Err(AppError::input("give a number from 0 to 100000"));
                }
                if link.action == LinkAction::Did && value.is_none() {
                    return Err(AppError::input("say how many you did"));
                }
                Ok(match self.store.use_nudge_link(link.outbox, value, now).await? {
                    Some(_) => Ok(()),
                    None => Err(LinkRefusal::Used),
                })
            }
        }
    }
}

/// The wait before attempt `n + 1`: a minute, doubling, at most `max_s`.
pub fn retry_wait(attempts: u32, max_s: u64) -> Duration {
    let secs = 60u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(20)).min(max_s.max(60));
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_a_minute_then_double_up_to_the_cap() {
        let waits: Vec<i64> = (1..=7).map(|n| retry_wait(n, 1800).num_seconds()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1800, 1800]);
    }
}
