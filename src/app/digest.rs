//! The trainer's weekly digest: each client's adherence over the last 7 and 30 days with
//! the change against the week before, who slipped on which homework, and why data is
//! missing where it is (an account that needs connecting again, a sync that fails, a
//! source silent for days), with the roster chart inline (and, with
//! `notify.attention_daily`, a daily one of the clients who need attention only). E-mail gets a plain-text part,
//! an HTML part and the chart as an inline PNG (`cid:roster`); push channels the text.
//!
//! It is due on Mondays at `notify.digest_at` in [`App::default_tz`] (trainers have no
//! zone of their own), about the Monday-Sunday week that just ended; one outbox row per
//! trainer and week, so it goes out once, and only on that Monday.

use super::{App, AppResult};
use crate::charts::{Format, Kind};
use crate::engine::adherence::rate;
use crate::engine::judge::Verdict;
use crate::notify::Message;
use crate::store::web::Trainer;
use crate::store::Client;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use std::fmt::Write;

/// The content id of the roster chart in the HTML part.
pub const ROSTER_CID: &str = "roster";

/// One client's lines in the digest.
#[derive(Clone, Debug, PartialEq)]
pub struct DigestClient {
    pub name: String,
    pub days7: Option<f64>,
    pub days30: Option<f64>,
    /// Points against the week before (None when either week has nothing that counts).
    pub change: Option<f64>,
    /// "10 push-ups every night: missed Tue, Thu".
    pub slipped: Vec<String>,
    /// Why data is missing: "no data from Strava since Tue Nov 17: the account needs connecting again".
    pub missing: Vec<String>,
    /// Some homework of theirs needs attention (as on the roster).
    pub needs_attention: bool,
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

fn points(x: Option<f64>) -> String {
    match x {
        Some(v) if v.abs() < 0.005 => "±0".into(),
        Some(v) => format!("{:+.0}", v * 100.0),
        None => String::new(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A source's name as a trainer says it.
fn source_name(s: &str) -> String {
    match s {
        "ble" => "the Bluetooth strap".into(),
        "fit" | "tcx" | "gpx" => format!("{} files", s.to_uppercase()),
        "hae" | "health_auto_export" => "the iPhone (Health Auto Export)".into(),
        "intervals" => "intervals.icu".into(),
        other => {
            let mut c = other.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    }
}

impl App {
    /// The Monday a digest sent at `now` is for (the week that just ended), if a digest
    /// is due at `now`: a Monday, at or after `notify.digest_at`, in the default zone.
    pub fn digest_due(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        let at = chrono::NaiveTime::parse_from_str(self.config.notify.digest_at.trim(), "%H:%M").ok()?;
        let local = now.with_timezone(&self.default_tz());
        (local.weekday() == Weekday::Mon && local.time() >= at).then(|| local.date_naive() - Duration::days(7))
    }

    /// The day a needs-attention digest sent at `now` is for, if one is due: with
    /// `notify.attention_daily` on, any day but Monday (which has the weekly digest), at or
    /// after `notify.digest_at`, in the default zone.
    pub fn attention_due(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        if !self.config.notify.attention_daily {
            return None;
        }
        let at = chrono::NaiveTime::parse_from_str(self.config.notify.digest_at.trim(), "%H:%M").ok()?;
        let local = now.with_timezone(&self.default_tz());
        (local.weekday() != Weekday::Mon && local.time() >= at).then(|| local.date_naive())
    }

    /// The clients of the trainer who need attention on `day`, with the last seven days
    /// (up to yesterday) in the digest's lines.
    pub async fn attention_lines(
        &self,
        trainer: &Trainer,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<DigestClient>> {
        let lines = self.digest_lines(trainer, day - Duration::days(7), now).await?;
        Ok(lines.into_iter().filter(|c| c.needs_attention).collect())
    }

    /// The needs-attention digest of `day` as a message (text; the dashboard link).
    pub async fn attention_digest(&self, trainer: &Trainer, day: NaiveDate, now: DateTime<Utc>) -> AppResult<Message> {
        let lines = self.attention_lines(trainer, day, now).await?;
        let title = match lines.len() {
            1 => "coachd: 1 client needs attention".to_string(),
            n => format!("coachd: {n} clients need attention"),
        };
        let dashboard = format!("{}/roster", self.base_url().trim_end_matches('/'));
        let mut text = format!("{title} ({}; the last 7 days)\n\n", day.format("%a %b %-d"));
        if lines.is_empty() {
            text.push_str("Nobody needs attention any more.\n");
        }
        for c in &lines {
            let _ = writeln!(text, "{}: {} over 7 days ({} points)", c.name, pct(c.days7), points(c.change));
            for n in c.slipped.iter().chain(&c.missing) {
                let _ = writeln!(text, "  - {n}");
            }
        }
        let _ = write!(
            text,
            "\nThe dashboard: {dashboard}\nDaily digests: notify.attention_daily in the server's configuration\n"
        );
        Ok(Message { title, body: text, click: Some(dashboard), ..Message::default() })
    }

    /// The digest's lines for the trainer's clients, about the week starting `week`.
    pub async fn digest_lines(
        &self,
        trainer: &Trainer,
        week: NaiveDate,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<DigestClient>> {
        let clients = self.store.clients_of(trainer.id).await?;
        let accounts = self.accounts(None).await?;
        let end = week + Duration::days(6);
        let mut out = Vec::new();
        for client in clients {
            let report = self.status(std::slice::from_ref(&client), end - Duration::days(29), end, now).await?;
            let all: Vec<(NaiveDate, Verdict)> = report.occurrences.iter().map(|o| (o.date, o.verdict)).collect();
            let days7 = rate(&all, week, end);
            let prev = rate(&all, week - Duration::days(7), week - Duration::days(1));
            let days30 = rate(&all, end - Duration::days(29), end);
            let mut slipped = Vec::new();
            let mut homework: Vec<(i64, String)> =
                report.occurrences.iter().map(|o| (o.homework_id, o.homework.to_string())).collect();
            homework.dedup();
            homework.sort();
            homework.dedup();
            let mut no_data = false;
            for (id, text) in homework {
                let week_occs: Vec<_> = report
                    .occurrences
                    .iter()
                    .filter(|o| o.homework_id == id && o.date >= week && o.date <= end)
                    .collect();
                let missed: Vec<String> = week_occs
                    .iter()
                    .filter(|o| matches!(o.verdict, Verdict::Missed | Verdict::Partial))
                    .map(|o| if o.period == "week" { "the week".to_string() } else { o.date.format("%a").to_string() })
                    .collect();
                no_data |= week_occs.iter().any(|o| o.verdict == Verdict::NoData);
                if !missed.is_empty() {
                    slipped.push(format!("{text}: missed or partial {}", missed.join(", ")));
                }
            }
            let missing = self.why_missing(&client, &accounts, no_data, now).await?;
            out.push(DigestClient {
                name: client.name,
                days7,
                days30,
                change: days7.zip(prev).map(|(a, b)| a - b),
                slipped,
                missing,
                needs_attention: report.adherence.iter().any(|a| a.needs_attention),
            });
        }
        Ok(out)
    }

    /// Why a client's data is missing, source by source: accounts that need connecting
    /// again or fail to sync, sources silent for three days or more; if the week had days
    /// without data and no source explains it, that no device delivered.
    async fn why_missing(
        &self,
        client: &Client,
        accounts: &[super::AccountView],
        no_data: bool,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<String>> {
        let tz = client.tz;
        let day = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %b %-d").to_string();
        let fresh = self.data_freshness(client).await?;
        let newest = |s: &str| fresh.iter().find(|f| f.source == s).map(|f| f.newest);
        let mut out = Vec::new();
        for a in accounts.iter().filter(|a| a.client_id == client.id) {
            let since = newest(&a.provider).map(|t| format!(" since {}", day(t))).unwrap_or_default();
            let name = source_name(&a.provider);
            let why = match a.state.as_str() {
                "active" if a.failing => Some(format!(
                    "its sync is failing{}",
                    a.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                )),
                "active" => None,
                "needs_reauth" => Some("the account needs connecting again".into()),
                "insufficient_scope" => Some("the account was connected without a permission coachd needs".into()),
                "revoked" => Some("the client removed coachd's access at the provider".into()),
                other => Some(format!("the account is {}", other.replace('_', " "))),
            };
            if let Some(why) = why {
                out.push(format!("no data from {name}{since}: {why}"));
            }
        }
        for f in &fresh {
            let days = (now - f.newest).num_days();
            let explained =
                accounts.iter().any(|a| a.client_id == client.id && a.provider == f.source && a.state != "active");
            if days >= 3 && !explained {
                out.push(format!("{} was last seen {} ({days} days ago)", source_name(&f.source), day(f.newest)));
            }
        }
        if out.is_empty() && no_data {
            out.push(if fresh.is_empty() {
                "no device has delivered any data yet: connect an account or pair a sensor".into()
            } else {
                "days without data from any source this week".into()
            });
        }
        Ok(out)
    }

    /// The digest as a message: subject, text, HTML with the roster chart inline.
    pub async fn digest(&self, trainer: &Trainer, week: NaiveDate, now: DateTime<Utc>) -> AppResult<Message> {
        let lines = self.digest_lines(trainer, week, now).await?;
        let end = week + Duration::days(6);
        let title = format!("coachd: your clients' week of {}", week.format("%b %-d"));
        let base = self.base_url();
        let dashboard = format!("{}/roster", base.trim_end_matches('/'));
        let mut text = format!("{title} to {}\n\n", end.format("%b %-d"));
        let mut html = format!(
            "<!doctype html><html><body style=\"font-family:sans-serif;color:#222;max-width:680px\">\
             <h1 style=\"font-size:20px\">{}</h1><p>{} to {}, {} clients.</p>\
             <p><img src=\"cid:{ROSTER_CID}\" alt=\"Roster: adherence per client\" style=\"max-width:100%\"></p>\
             <table style=\"border-collapse:collapse;width:100%\"><tr><th align=left>Client</th><th>7 days</th><th>change</th><th>30 days</th><th align=left>Notes</th></tr>",
            escape(&title),
            week.format("%a %b %-d"),
            end.format("%a %b %-d"),
            lines.len()
        );
        if lines.is_empty() {
            text.push_str("No clients yet.\n");
        }
        for c in &lines {
            let _ = writeln!(
                text,
                "{}: {} over 7 days ({} points), {} over 30 days",
                c.name,
                pct(c.days7),
                points(c.change),
                pct(c.days30)
            );
            let notes: Vec<&String> = c.slipped.iter().chain(&c.missing).collect();
            for n in &notes {
                let _ = writeln!(text, "  - {n}");
            }
            let _ = write!(
                html,
                "<tr style=\"border-top:1px solid #ddd\"><td><b>{}</b></td><td align=center>{}</td><td align=center>{}</td><td align=center>{}</td><td>{}</td></tr>",
                escape(&c.name),
                pct(c.days7),
                points(c.change),
                pct(c.days30),
                notes.iter().map(|n| escape(n)).collect::<Vec<_>>().join("<br>")
            );
        }
        let _ = write!(
            text,
            "\nThe dashboard: {dashboard}\nTo stop these e-mails: coachd notify remove --trainer {}\n",
            trainer.name
        );
        let _ = write!(
            html,
            "</table><p><a href=\"{0}\">Open the dashboard</a></p><p style=\"color:#777;font-size:12px\">\
             To stop these e-mails, run <code>coachd notify remove --trainer {1}</code>.</p></body></html>",
            escape(&dashboard),
            escape(&trainer.name)
        );
        let clients = self.store.clients_of(trainer.id).await?;
        let chart = self.chart(Kind::Roster, None, &clients, (Some(end - Duration::days(83)), Some(end)), None).await?;
        let png = crate::charts::render::render(&chart, Format::Png).map_err(super::AppError::Runtime)?;
        Ok(Message {
            title,
            body: text,
            click: Some(dashboard),
            actions: Vec::new(),
            html: Some(html),
            images: vec![(ROSTER_CID.to_string(), png)],
        })
    }
}
