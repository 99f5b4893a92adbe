//! Channels (sealed URLs) of clients and trainers, the outbox, nudge opt-outs, and the
//! single use of a nudge's check-in link.
//!
//! The outbox is written so that nothing is ever sent twice: a row is committed before
//! its send (`pending`), claimed by one atomic update (`sending`), and settled after it
//! (`sent`, `retry`, `failed`). [`Store::interrupt_sending`] runs before every notifier
//! round: a row still `sending` long after its claim belongs to a send that may have gone
//! out before its daemon (or replica) stopped, so it becomes `interrupted` and is not
//! tried again.

use super::ingest::mark_dirty;
use super::on;
use super::{Store, StoreError};
use crate::crypto::Secret;
use crate::model::ClientId;
use crate::store::web::TrainerId;
use chrono::{DateTime, NaiveDate, Utc};

/// Whom a channel reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    Client(ClientId),
    Trainer(TrainerId),
}

impl Recipient {
    fn ids(self) -> (Option<ClientId>, Option<TrainerId>) {
        match self {
            Self::Client(c) => (Some(c), None),
            Self::Trainer(t) => (None, Some(t)),
        }
    }
}

/// A stored channel, with its URL opened.
#[derive(Clone, Debug)]
pub struct StoredChannel {
    pub id: i64,
    pub kind: String,
    pub url: Secret<String>,
    pub status: ChannelStatus,
}

/// What a list or a page shows of a channel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChannelStatus {
    /// The client's or trainer's name.
    pub owner: String,
    /// `client` or `trainer`.
    pub owner_kind: String,
    pub kind: String,
    pub shown: String,
    /// untested, ok, failing
    pub state: String,
    pub last_error: Option<String>,
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// A message to record in the outbox.
#[derive(Clone, Debug)]
pub struct NewOutbox {
    pub to: Recipient,
    /// `nudge` or `test` (digests and weekly messages: [`Store::record_week`]).
    pub kind: &'static str,
    /// A nudge's occurrence: (homework id, its date).
    pub occurrence: Option<(i64, NaiveDate)>,
    pub channel_kind: Option<String>,
    pub title: String,
    pub body: String,
    /// `pending` (to send) or `suppressed`.
    pub state: &'static str,
    pub reason: Option<String>,
    pub due: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub link_expires: Option<DateTime<Utc>>,
}

/// The messages that go out once per period, each with its unique index.
#[derive(Clone, Copy)]
enum Once {
    Digest,
    Attention,
    Weekly,
}

/// A once-a-week message to record ([`Store::record_week`]).
#[derive(Clone, Copy, Debug)]
pub struct WeekMessage<'a> {
    pub channel_kind: &'a str,
    pub title: &'a str,
    pub expires: DateTime<Utc>,
    pub link_expires: Option<DateTime<Utc>>,
}

/// A row of the outbox.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub client_id: Option<ClientId>,
    pub trainer_id: Option<TrainerId>,
    pub kind: String,
    pub homework_id: Option<i64>,
    pub occurrence: Option<NaiveDate>,
    pub channel_kind: Option<String>,
    pub title: String,
    pub body: String,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub due: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub link_expires: Option<DateTime<Utc>>,
    pub link_used: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct OutboxSql {
    id: i64,
    client_id: Option<i64>,
    trainer_id: Option<i64>,
    kind: String,
    homework_id: Option<i64>,
    occurrence: Option<String>,
    channel_kind: Option<String>,
    title: String,
    body: String,
    state: String,
    reason: Option<String>,
    attempts: i64,
    due_ms: i64,
    expires_ms: i64,
    link_expires_ms: Option<i64>,
    link_used_ms: Option<i64>,
    created_ms: i64,
    sent_ms: Option<i64>,
}

const OUTBOX_SELECT: &str =
    "SELECT id, client_id, trainer_id, kind, homework_id, occurrence, channel_kind, title, body,
        state, reason, attempts, due_ms, expires_ms, link_expires_ms, link_used_ms, created_ms, sent_ms FROM outbox";

fn ms(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or_default()
}

fn outbox_row(r: OutboxSql) -> Result<OutboxRow, StoreError> {
    let occurrence = r
        .occurrence
        .as_deref()
        .map(|d| d.parse::<NaiveDate>().map_err(|_| StoreError::Corrupt(format!("outbox #{} date {d:?}", r.id))))
        .transpose()?;
    Ok(OutboxRow {
        id: r.id,
        client_id: r.client_id,
        trainer_id: r.trainer_id,
        kind: r.kind,
        homework_id: r.homework_id,
        occurrence,
        channel_kind: r.channel_kind,
        title: r.title,
        body: r.body,
        state: r.state,
        reason: r.reason,
        attempts: r.attempts,
        due: ms(r.due_ms),
        expires: ms(r.expires_ms),
        link_expires: r.link_expires_ms.map(ms),
        link_used: r.link_used_ms.map(ms),
        created: ms(r.created_ms),
        sent: r.sent_ms.map(ms),
    })
}

/// id, kind, sealed url, shown, state, last error, last ok, last error at, owner, owner kind.
type ChannelSql = (i64, String, Vec<u8>, String, String, Option<String>, Option<i64>, Option<i64>, String, String);

const CHANNEL_SELECT: &str = "SELECT ch.id, ch.kind, ch.url, ch.shown, ch.state, ch.last_error, ch.last_ok_ms,
        ch.last_error_ms, COALESCE(c.name, t.name, '?'), CASE WHEN ch.client_id IS NULL THEN 'trainer' ELSE 'client' END
        FROM channels ch LEFT JOIN clients c ON c.id = ch.client_id LEFT JOIN trainers t ON t.id = ch.trainer_id";

impl Store {
    fn channel_of_row(&self, r: ChannelSql) -> Result<StoredChannel, StoreError> {
        let plain = self.cipher.open(&r.2).map_err(|e| StoreError::Corrupt(format!("channel #{}: {e}", r.0)))?;
        let url = String::from_utf8(plain).map_err(|_| StoreError::Corrupt(format!("channel #{}: not UTF-8", r.0)))?;
        Ok(StoredChannel {
            id: r.0,
            kind: r.1.clone(),
            url: Secret::new(url),
            status: ChannelStatus {
                owner: r.8,
                owner_kind: r.9,
                kind: r.1,
                shown: r.3,
                state: r.4,
                last_error: r.5,
                last_ok: r.6.map(ms),
                last_error_at: r.7.map(ms),
            },
        })
    }

    /// Set (or replace) the channel of a client or trainer; the URL is sealed. Setting a
    /// client's channel turns their reminders back on.
    pub async fn set_channel(&self, to: Recipient, kind: &str, url: &str, shown: &str) -> Result<(), StoreError> {
        let sealed = self.cipher.seal(url.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = Store::now_ms();
        let (client, trainer) = to.ids();
        let mut tx = self.write().await?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "DELETE FROM channels WHERE client_id IS NOT DISTINCT FROM ? AND trainer_id IS NOT DISTINCT FROM ?"
        ))
        .bind(client)
        .bind(trainer)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        on!(&mut tx, |e, sql| sqlx::query(&sql(
            "INSERT INTO channels (client_id, trainer_id, kind, url, shown, state, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, 'untested', ?, ?)",
        ))
        .bind(client)
        .bind(trainer)
        .bind(kind)
        .bind(sealed)
        .bind(shown)
        .bind(now)
        .bind(now)
        .execute(&mut **e)
        .await
        .map(|r| r.rows_affected()))?;
        if let Some(c) = client {
            on!(&mut tx, |e, sql| sqlx::query(&sql("UPDATE clients SET nudges_off_ms = NULL WHERE id = ?"))
                .bind(c)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remove a channel; whether there was one.
    pub async fn remove_channel(&self, to: Recipient) -> Result<bool, StoreError> {
        let (client, trainer) = to.ids();
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "DELETE FROM channels WHERE client_id IS NOT DISTINCT FROM ? AND trainer_id IS NOT DISTINCT FROM ?"
        ))
        .bind(client)
        .bind(trainer)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    pub async fn channel(&self, to: Recipient) -> Result<Option<StoredChannel>, StoreError> {
        let (client, trainer) = to.ids();
        let row: Option<ChannelSql> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{CHANNEL_SELECT} WHERE ch.client_id IS NOT DISTINCT FROM ? AND ch.trainer_id IS NOT DISTINCT FROM ?"
        )))
        .bind(client)
        .bind(trainer)
        .fetch_optional(e)
        .await)?;
        row.map(|r| self.channel_of_row(r)).transpose()
    }

    /// Every channel's status (no secrets), clients first, by name.
    pub async fn channel_statuses(&self) -> Result<Vec<ChannelStatus>, StoreError> {
        let rows: Vec<ChannelSql> = on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!(
            "{CHANNEL_SELECT} ORDER BY ch.client_id IS NULL, COALESCE(c.name, t.name, '?') COLLATE NOCASE"
        )))
        .fetch_all(e)
        .await)?;
        rows.into_iter().map(|r| self.channel_of_row(r).map(|c| c.status)).collect()
    }

    /// Record how a send through a channel went: `ok`, or `failing` with the error.
    pub async fn channel_result(&self, id: i64, error: Option<&str>, at: DateTime<Utc>) -> Result<(), StoreError> {
        let t = at.timestamp_millis();
        match error {
            None => on!(&self.db, |e, sql| sqlx::query(&sql(
                "UPDATE channels SET state = 'ok', last_error = NULL, last_ok_ms = ?, updated_ms = ? WHERE id = ?",
            ))
            .bind(t)
            .bind(t)
            .bind(id)
            .execute(e)
            .await
            .map(|_| ()))?,
            Some(error) => on!(&self.db, |e, sql| {
                sqlx::query(&sql(
                "UPDATE channels SET state = 'failing', last_error = ?, last_error_ms = ?, updated_ms = ? WHERE id = ?",
            ))
            .bind(error)
            .bind(t)
            .bind(t)
            .bind(id)
            .execute(e)
            .await
            .map(|_| ())
            })?,
        };
        Ok(())
    }

    /// Whether a client turned reminders off (the link in every nudge).
    pub async fn nudges_off(&self, client: ClientId) -> Result<bool, StoreError> {
        let off: Option<Option<i64>> =
            on!(&self.db, |e, sql| sqlx::query_scalar(&sql("SELECT nudges_off_ms FROM clients WHERE id = ?"))
                .bind(client)
                .fetch_optional(e)
                .await)?;
        Ok(off.flatten().is_some())
    }

    /// The client's own reminder times: (daily time "HH:MM", minutes before a window ends).
    pub async fn nudge_times(&self, client: ClientId) -> Result<(Option<String>, Option<i64>), StoreError> {
        let row: Option<(Option<String>, Option<i64>)> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT nudge_daily_at, nudge_lead_min FROM clients WHERE id = ?"
        ))
        .bind(client)
        .fetch_optional(e)
        .await)?;
        Ok(row.unwrap_or((None, None)))
    }

    /// Set (or, with None, return to the default) the client's own reminder times.
    pub async fn set_nudge_times(
        &self,
        client: ClientId,
        daily_at: Option<&str>,
        lead_min: Option<i64>,
    ) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE clients SET nudge_daily_at = ?, nudge_lead_min = ? WHERE id = ?"
        ))
        .bind(daily_at)
        .bind(lead_min)
        .bind(client)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_nudges_off(&self, client: ClientId, at: DateTime<Utc>) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE clients SET nudges_off_ms = COALESCE(nudges_off_ms, ?) WHERE id = ?"
        ))
        .bind(at.timestamp_millis())
        .bind(client)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Whether the occurrence already has its nudge (sent, due or suppressed).
    pub async fn nudge_recorded(&self, homework: i64, occurrence: NaiveDate) -> Result<bool, StoreError> {
        let n: i64 = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT count(*) FROM outbox WHERE kind = 'nudge' AND homework_id = ? AND occurrence = ?",
        ))
        .bind(homework)
        .bind(occurrence.to_string())
        .fetch_one(e)
        .await)?;
        Ok(n > 0)
    }

    /// Record a message; for a nudge, only if its occurrence has none yet. The new row's
    /// id, or None when the occurrence already had its nudge.
    pub async fn record_outbox(&self, m: &NewOutbox, now: DateTime<Utc>) -> Result<Option<i64>, StoreError> {
        let (client, trainer) = m.to.ids();
        let t = now.timestamp_millis();
        let id: Option<i64> = on!(&self.db, |e, sql| {
            sqlx::query_scalar(&sql(
            "INSERT INTO outbox (client_id, trainer_id, kind, homework_id, occurrence, channel_kind, title, body, state,
                                 reason, due_ms, next_try_ms, expires_ms, link_expires_ms, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (homework_id, occurrence) WHERE kind = 'nudge' DO NOTHING RETURNING id",
        ))
        .bind(client)
        .bind(trainer)
        .bind(m.kind)
        .bind(m.occurrence.map(|o| o.0))
        .bind(m.occurrence.map(|o| o.1.to_string()))
        .bind(&m.channel_kind)
        .bind(&m.title)
        .bind(&m.body)
        .bind(m.state)
        .bind(&m.reason)
        .bind(m.due.timestamp_millis())
        .bind(t)
        .bind(m.expires.timestamp_millis())
        .bind(m.link_expires.map(|x| x.timestamp_millis()))
        .bind(t)
        .bind(t)
        .fetch_optional(e)
        .await
        })?;
        Ok(id)
    }

    /// Record a once-a-week message for the week starting `week`, once: a trainer's
    /// `digest` or a client's `weekly`. The new row's id, or None when that week's exists.
    pub async fn record_week(
        &self,
        to: Recipient,
        week: NaiveDate,
        m: WeekMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let kind = match to {
            Recipient::Trainer(_) => Once::Digest,
            Recipient::Client(_) => Once::Weekly,
        };
        self.record_once(to, kind, week, m, now).await
    }

    /// Record a trainer's needs-attention digest of `day`, once. None when that day's exists.
    pub async fn record_attention(
        &self,
        trainer: TrainerId,
        day: NaiveDate,
        m: WeekMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        self.record_once(Recipient::Trainer(trainer), Once::Attention, day, m, now).await
    }

    /// Whether the trainer's needs-attention digest of `day` is in the outbox already.
    pub async fn attention_recorded(&self, trainer: TrainerId, day: NaiveDate) -> Result<bool, StoreError> {
        let found: Option<i64> = on!(&self.db, |e, sql| sqlx::query_scalar(&sql(
            "SELECT id FROM outbox WHERE kind = 'attention' AND trainer_id = ? AND occurrence = ? LIMIT 1",
        ))
        .bind(trainer)
        .bind(day.to_string())
        .fetch_optional(e)
        .await)?;
        Ok(found.is_some())
    }

    async fn record_once(
        &self,
        to: Recipient,
        once: Once,
        occurrence: NaiveDate,
        m: WeekMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let (client, trainer) = to.ids();
        // The conflict target is one of three fixed clauses, matching the partial unique indexes.
        let (kind, target) = match once {
            Once::Digest => ("digest", "(trainer_id, occurrence) WHERE kind = 'digest'"),
            Once::Attention => ("attention", "(trainer_id, occurrence) WHERE kind = 'attention'"),
            Once::Weekly => ("weekly", "(client_id, occurrence) WHERE kind = 'weekly'"),
        };
        let week = occurrence;
        let t = now.timestamp_millis();
        Ok(on!(&self.db, |e, sql| sqlx::query_scalar(&sql(&format!(
            "INSERT INTO outbox (client_id, trainer_id, kind, occurrence, channel_kind, title, body, state, due_ms,
                                 next_try_ms, expires_ms, link_expires_ms, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, '', 'pending', ?, ?, ?, ?, ?, ?)
             ON CONFLICT {target} DO NOTHING RETURNING id"
        )))
        .bind(client)
        .bind(trainer)
        .bind(kind)
        .bind(week.to_string())
        .bind(m.channel_kind)
        .bind(m.title)
        .bind(t)
        .bind(t)
        .bind(m.expires.timestamp_millis())
        .bind(m.link_expires.map(|x| x.timestamp_millis()))
        .bind(t)
        .bind(t)
        .fetch_optional(e)
        .await)?)
    }

    /// Replace a pending row's text (the links in it need the row's id first).
    pub async fn set_outbox_text(&self, id: i64, title: &str, body: &str) -> Result<(), StoreError> {
        on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE outbox SET title = ?, body = ? WHERE id = ?"))
            .bind(title)
            .bind(body)
            .bind(id)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let row: Option<OutboxSql> =
            on!(&self.db, |e, sql| sqlx::query_as(&sql(&format!("{OUTBOX_SELECT} WHERE id = ?")))
                .bind(id)
                .fetch_optional(e)
                .await)?;
        row.map(outbox_row).transpose()
    }

    /// Rows waiting to be sent (pending, or a retry whose time has come), oldest first.
    pub async fn outbox_due(&self, now: DateTime<Utc>) -> Result<Vec<OutboxRow>, StoreError> {
        let rows: Vec<OutboxSql> = on!(&self.db, |e, sql| {
            sqlx::query_as(&sql(&format!(
            "{OUTBOX_SELECT} WHERE state IN ('pending', 'retry') AND next_try_ms <= ? ORDER BY next_try_ms, id LIMIT 100"
        )))
        .bind(now.timestamp_millis())
        .fetch_all(e)
        .await
        })?;
        rows.into_iter().map(outbox_row).collect()
    }

    /// A client's (or a trainer's) latest messages, newest first.
    pub async fn outbox_of(&self, to: Recipient, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let (client, trainer) = to.ids();
        let rows: Vec<OutboxSql> = on!(&self.db, |e, sql| {
            sqlx::query_as(&sql(&format!(
            "{OUTBOX_SELECT} WHERE client_id IS NOT DISTINCT FROM ? AND trainer_id IS NOT DISTINCT FROM ? ORDER BY created_ms DESC, id DESC LIMIT ?"
        )))
        .bind(client)
        .bind(trainer)
        .bind(limit)
        .fetch_all(e)
        .await
        })?;
        rows.into_iter().map(outbox_row).collect()
    }

    /// Claim a row for sending; false when another round (or replica) has it.
    pub async fn claim_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_ms = ?
             WHERE id = ? AND state IN ('pending', 'retry')",
        ))
        .bind(now.timestamp_millis())
        .bind(id)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Settle a claimed row: `sent`, `retry` (at `next_try`) or `failed`, with why.
    pub async fn settle_outbox(
        &self,
        id: i64,
        state: &str,
        reason: Option<&str>,
        next_try: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let t = now.timestamp_millis();
        on!(&self.db, |e, sql| sqlx::query(&sql(
            "UPDATE outbox SET state = ?, reason = ?, next_try_ms = COALESCE(?, next_try_ms),
                 sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END, updated_ms = ? WHERE id = ?",
        ))
        .bind(state)
        .bind(reason)
        .bind(next_try.map(|x| x.timestamp_millis()))
        .bind(state)
        .bind(t)
        .bind(t)
        .bind(id)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Give up on rows that were never sent and whose time has passed.
    pub async fn expire_outbox(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let t = now.timestamp_millis();
        let done = on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE outbox SET state = 'failed',
                 reason = COALESCE(reason || '; ', '') || 'not sent before its window closed', updated_ms = ?
             WHERE state IN ('pending', 'retry') AND expires_ms <= ?",))
        .bind(t)
        .bind(t)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Rows left `sending` by a stopped daemon (claimed before `claimed_before`, longer
    /// ago than any send lasts, so not a send another replica is doing now) are not sent
    /// again.
    pub async fn interrupt_sending(
        &self,
        now: DateTime<Utc>,
        claimed_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = on!(&self.db, |e, sql| sqlx::query(&sql("UPDATE outbox SET state = 'interrupted',
                 reason = 'coachd stopped while sending it; not sent again, so it never arrives twice', updated_ms = ?
             WHERE state = 'sending' AND updated_ms < ?",))
        .bind(now.timestamp_millis())
        .bind(claimed_before.timestamp_millis())
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Rows by (kind, state), for /metrics.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state ORDER BY kind, state"
        ))
        .fetch_all(e)
        .await)?)
    }

    /// Use a nudge's check-in link once: in one transaction, mark the link used and
    /// record the client's self-reported check-in. None when it was used already.
    pub async fn use_nudge_link(
        &self,
        outbox: i64,
        value: Option<f64>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let t = now.timestamp_millis();
        let mut tx = self.write().await?;
        let row: Option<(i64, i64, String)> =
            on!(&mut tx, |e, sql| sqlx::query_as(&sql("UPDATE outbox SET link_used_ms = ?, updated_ms = ?
             WHERE id = ? AND kind = 'nudge' AND link_used_ms IS NULL AND client_id IS NOT NULL
             RETURNING client_id, homework_id, occurrence",))
            .bind(t)
            .bind(t)
            .bind(outbox)
            .fetch_optional(&mut **e)
            .await)?;
        let Some((client, homework, date)) = row else { return Ok(None) };
        let on: NaiveDate = date.parse().map_err(|_| StoreError::Corrupt(format!("outbox #{outbox} date {date:?}")))?;
        let id: i64 = on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO checkins (client_id, homework_id, date, value, note, origin, created_ms)
             VALUES (?, ?, ?, ?, NULL, 'nudge', ?) RETURNING id",
        ))
        .bind(client)
        .bind(homework)
        .bind(on.to_string())
        .bind(value)
        .bind(t)
        .fetch_one(&mut **e)
        .await)?;
        mark_dirty(&mut tx, client, on).await?;
        tx.commit().await?;
        Ok(Some(id))
    }
}
