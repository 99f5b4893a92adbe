//! Answers to a questions homework. Answering is a check-in (what the judge counts) and
//! one row per question, written together; one answer set per homework and occurrence,
//! so sending the form again replaces the set instead of adding a second one.

use super::ingest::mark_dirty;
use super::on;
use super::{Store, StoreError};
use crate::model::ClientId;
use chrono::{DateTime, NaiveDate, Utc};

/// One stored answer: free text (or `yes`/`no`) and/or a number (a scale, or 1/0).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAnswer {
    /// Index into the homework's questions, from 0.
    pub question: u8,
    pub text: Option<String>,
    pub number: Option<f64>,
}

/// A client's answers to one occurrence of a questions homework.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerSet {
    pub homework_id: i64,
    /// The occurrence's date: the day, or the week's Monday.
    pub occurrence: NaiveDate,
    /// The check-in that makes the occurrence answered.
    pub checkin_id: i64,
    /// The local day it was answered (the check-in's date).
    pub date: NaiveDate,
    pub at: DateTime<Utc>,
    pub answers: Vec<StoredAnswer>,
}

fn date(s: &str) -> Result<NaiveDate, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("stored date {s:?}")))
}

/// homework, occurrence, check-in, check-in date, created, question, text, number.
type AnswerSql = (i64, String, i64, String, i64, i64, Option<String>, Option<f64>);

impl Store {
    /// Store the answers to one occurrence as a check-in on `on`, replacing any earlier
    /// answers to the same occurrence, in one transaction; the check-in's id.
    pub async fn save_answers(
        &self,
        client: ClientId,
        homework: i64,
        occurrence: NaiveDate,
        on: NaiveDate,
        answers: &[StoredAnswer],
        origin: &str,
    ) -> Result<i64, StoreError> {
        if answers.is_empty() {
            return Err(StoreError::Invalid(vec!["no answers to store".into()]));
        }
        // IMMEDIATE: two submissions of the same form must not both find no earlier set.
        let mut tx = self.write().await?;
        let earlier: Vec<(i64, String)> = on!(&mut tx, |e, sql| sqlx::query_as(&sql(
            "SELECT DISTINCT c.id, c.date FROM answers a JOIN checkins c ON c.id = a.checkin_id
             WHERE a.homework_id = ? AND a.occurrence = ? AND c.client_id = ?",
        ))
        .bind(homework)
        .bind(occurrence.to_string())
        .bind(client)
        .fetch_all(&mut **e)
        .await)?;
        for (id, d) in &earlier {
            // The answers go with their check-in (ON DELETE CASCADE).
            on!(&mut tx, |e, sql| sqlx::query(&sql("DELETE FROM checkins WHERE id = ?"))
                .bind(id)
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()))?;
            mark_dirty(&mut tx, client, date(d)?).await?;
        }
        let now = Store::now_ms();
        let id: i64 = on!(&mut tx, |e, sql| sqlx::query_scalar(&sql(
            "INSERT INTO checkins (client_id, homework_id, date, value, note, origin, created_ms)
             VALUES (?, ?, ?, NULL, NULL, ?, ?) RETURNING id",
        ))
        .bind(client)
        .bind(homework)
        .bind(on.to_string())
        .bind(origin)
        .bind(now)
        .fetch_one(&mut **e)
        .await)?;
        for a in answers {
            on!(&mut tx, |e, sql| sqlx::query(&sql(
                "INSERT INTO answers (checkin_id, homework_id, occurrence, question, text, number, created_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(homework)
            .bind(occurrence.to_string())
            .bind(i64::from(a.question))
            .bind(a.text.as_deref())
            .bind(a.number)
            .bind(now)
            .execute(&mut **e)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| match e {
                e if super::is_unique_violation(&e) => {
                    StoreError::Invalid(vec![format!("question {} answered twice", u32::from(a.question) + 1)])
                }
                e => e.into(),
            })?;
        }
        mark_dirty(&mut tx, client, on).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A client's answer sets whose occurrence dates are in `[from, to]`, newest
    /// occurrence first, answers in question order.
    pub async fn answer_sets(
        &self,
        client: ClientId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<AnswerSet>, StoreError> {
        let rows: Vec<AnswerSql> = on!(&self.db, |e, sql| sqlx::query_as(&sql(
            "SELECT a.homework_id, a.occurrence, a.checkin_id, c.date, c.created_ms, a.question, a.text, a.number
             FROM answers a JOIN checkins c ON c.id = a.checkin_id
             WHERE c.client_id = ? AND a.occurrence BETWEEN ? AND ?
             ORDER BY a.occurrence DESC, a.homework_id, a.question",
        ))
        .bind(client)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(e)
        .await)?;
        let mut sets: Vec<AnswerSet> = Vec::new();
        for (homework_id, occurrence, checkin_id, on, created_ms, question, text, number) in rows {
            let question = u8::try_from(question)
                .map_err(|_| StoreError::Corrupt(format!("question index {question} of check-in #{checkin_id}")))?;
            let answer = StoredAnswer { question, text, number };
            match sets.last_mut() {
                Some(s) if s.checkin_id == checkin_id => s.answers.push(answer),
                _ => sets.push(AnswerSet {
                    homework_id,
                    occurrence: date(&occurrence)?,
                    checkin_id,
                    date: date(&on)?,
                    at: DateTime::from_timestamp_millis(created_ms).unwrap_or(DateTime::<Utc>::MIN_UTC),
                    answers: vec![answer],
                }),
            }
        }
        Ok(sets)
    }
}
