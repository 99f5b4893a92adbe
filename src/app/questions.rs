//! Questions as homework: the trainer sets a short list of questions (free text, a 1-10
//! scale, yes or no) for each week or each day; the client answers on their private
//! page; the occurrence is done when answered; the trainer reads the answers.
//!
//! The questions are written one per line, in the same form for `coachd assign
//! --questions FILE` and the dashboard's textarea ([`parse_questions`]). Answering is a
//! check-in for the day it is given plus the answers, in one transaction; one answer set
//! per occurrence, a later one in the same period replacing it.

use super::{App, AppError, AppResult};
use crate::engine::rule::{Measure, Question, QuestionKind, Rule, Schedule};
use crate::store::{AnswerSet, Client, HomeworkRow, StoredAnswer};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::fmt;

/// At most this many questions in one homework.
pub const MAX_QUESTIONS: usize = 10;
/// A question's length, in characters.
pub const QUESTION_CHARS: std::ops::RangeInclusive<usize> = 3..=300;
/// A free-text answer's longest length, in characters.
pub const ANSWER_CHARS: usize = 2000;

/// How often the questions are asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    /// Once per Monday-Sunday week, answered any day of it.
    Week,
    /// Every day (or on the given weekdays), answered that day.
    Day,
}

impl Every {
    pub fn parse(s: &str) -> AppResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "week" | "weekly" => Ok(Self::Week),
            "day" | "daily" => Ok(Self::Day),
            other => Err(AppError::input(format!("{other:?}: questions are asked every day or every week"))),
        }
    }
}

/// A questions homework as the trainer gives it.
#[derive(Clone, Debug)]
pub struct QuestionsAssignment {
    pub questions: Vec<Question>,
    /// [default: week; day when weekdays are given]
    pub every: Option<Every>,
    /// Only on these weekdays, e.g. "mon,thu" (asked per day).
    pub days: Option<String>,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

fn kind_of(tag: &str) -> Option<QuestionKind> {
    let tag: String = tag.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    match tag.as_str() {
        "1-10" | "1–10" | "1..10" | "scale" => Some(QuestionKind::Scale),
        "yes/no" | "yes-no" | "yesno" | "y/n" => Some(QuestionKind::YesNo),
        "text" => Some(QuestionKind::Text),
        _ => None,
    }
}

/// The prefix a question's line carries in the file form (none for free text).
pub fn kind_prefix(kind: QuestionKind) -> &'static str {
    match kind {
        QuestionKind::Text => "",
        QuestionKind::Scale => "[1-10] ",
        QuestionKind::YesNo => "[yes/no] ",
    }
}

/// Questions written one per line: `[1-10] ...` a scale, `[yes/no] ...` yes or no,
/// `[text] ...` or a plain line free text; blank lines and `#` comments are skipped.
/// Every problem is reported with its line number.
pub fn parse_questions(text: &str) -> AppResult<Vec<Question>> {
    let mut questions = Vec::new();
    let mut problems = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, question) = match line.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
            Some((tag, rest)) => match kind_of(tag) {
                Some(kind) => (kind, rest.trim()),
                None => {
                    problems.push(format!(
                        "line {n}: [{tag}] is not a kind of question; start the line with [1-10], [yes/no] or \
                         [text], or with nothing for free text"
                    ));
                    continue;
                }
            },
            None => (QuestionKind::Text, line),
        };
        let chars = question.chars().count();
        if !QUESTION_CHARS.contains(&chars) {
            problems.push(format!(
                "line {n}: a question has {} to {} characters; this one has {chars}",
                QUESTION_CHARS.start(),
                QUESTION_CHARS.end()
            ));
            continue;
        }
        if question.chars().any(char::is_control) {
            problems.push(format!("line {n}: the question holds a control character (a tab?); use plain text"));
            continue;
        }
        questions.push((n, Question { text: question.to_string(), kind }));
    }
    if let Some((n, _)) = questions.get(MAX_QUESTIONS) {
        problems.push(format!(
            "line {n}: question {} of {}; a homework asks at most {MAX_QUESTIONS}",
            MAX_QUESTIONS + 1,
            questions.len()
        ));
    }
    if questions.is_empty() && problems.is_empty() {
        problems.push(
            "no questions: write one per line, e.g. \"[1-10] How do you choose to make this week work for you?\""
                .into(),
        );
    }
    if problems.is_empty() {
        Ok(questions.into_iter().map(|(_, q)| q).collect())
    } else {
        Err(AppError::Input(problems.join("\n")))
    }
}

/// An answer, typed by its question's kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnswerValue {
    Text(String),
    Scale(u8),
    YesNo(bool),
}

impl AnswerValue {
    /// As a form field holds it: the text, `7`, `yes`.
    pub fn form_value(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Scale(n) => n.to_string(),
            Self::YesNo(b) => if *b { "yes" } else { "no" }.to_string(),
        }
    }

    fn stored(&self, question: u8) -> StoredAnswer {
        let (text, number) = match self {
            Self::Text(t) => (Some(t.clone()), None),
            Self::Scale(n) => (None, Some(f64::from(*n))),
            Self::YesNo(b) => (Some(if *b { "yes" } else { "no" }.to_string()), Some(if *b { 1.0 } else { 0.0 })),
        };
        StoredAnswer { question, text, number }
    }

    fn from_stored(kind: QuestionKind, a: &StoredAnswer) -> Self {
        match (kind, a.number) {
            (QuestionKind::Scale, Some(n)) if (1.0..=10.0).contains(&n) => Self::Scale(n.round() as u8),
            (QuestionKind::YesNo, Some(n)) => Self::YesNo(n >= 0.5),
            _ => Self::Text(a.text.clone().unwrap_or_default()),
        }
    }
}

impl fmt::Display for AnswerValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(t) => f.write_str(t),
            Self::Scale(n) => write!(f, "{n}/10"),
            Self::YesNo(b) => f.write_str(if *b { "yes" } else { "no" }),
        }
    }
}

/// One question and its answer.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerItem {
    pub question: String,
    pub kind: QuestionKind,
    pub answer: AnswerValue,
}

/// A client's answers to one occurrence of a questions homework.
#[derive(Clone, Debug, Serialize)]
pub struct Answered {
    pub homework_id: i64,
    pub homework: String,
    /// The occurrence's date: the day, or (`period` week) the week's Monday.
    pub occurrence: NaiveDate,
    /// `day` or `week`, as in `status --json`.
    pub period: &'static str,
    /// The local day it was answered on.
    pub answered_on: NaiveDate,
    pub answered_at: DateTime<Utc>,
    pub checkin_id: i64,
    pub answers: Vec<AnswerItem>,
}

/// A questions homework the client can answer now, and what they answered already.
#[derive(Clone, Debug)]
pub struct OpenQuestions {
    pub homework_id: i64,
    pub homework: String,
    pub occurrence: NaiveDate,
    pub period: &'static str,
    pub questions: Vec<Question>,
    pub answered: Option<Answered>,
}

/// The questions of a questions homework.
pub fn questions_of(row: &HomeworkRow) -> Option<&[Question]> {
    match &row.homework.rule.measure {
        Measure::Questions { questions } => Some(questions),
        _ => None,
    }
}

fn period(row: &HomeworkRow) -> &'static str {
    if row.homework.rule.schedule.weekly() {
        "week"
    } else {
        "day"
    }
}

/// The occurrence a questions homework has open on `today`: this week's (dated by its
/// Monday) or today's, if the homework applies today.
fn open_occurrence(row: &HomeworkRow, today: NaiveDate) -> Option<NaiveDate> {
    let h = &row.homework;
    if !h.active_on(today) {
        return None;
    }
    if h.rule.schedule.weekly() {
        Some(crate::time::monday(today))
    } else {
        h.rule.occurs_on(h.from, today).then_some(today)
    }
}

fn answered(row: &HomeworkRow, set: &AnswerSet) -> Answered {
    let questions = questions_of(row).unwrap_or_default();
    let answers = set
        .answers
        .iter()
        .filter_map(|a| {
            let q = questions.get(usize::from(a.question))?;
            Some(AnswerItem { question: q.text.clone(), kind: q.kind, answer: AnswerValue::from_stored(q.kind, a) })
        })
        .collect();
    Answered {
        homework_id: row.homework.id,
        homework: row.homework.text.to_string(),
        occurrence: set.occurrence,
        period: period(row),
        answered_on: set.date,
        answered_at: set.at,
        checkin_id: set.checkin_id,
        answers,
    }
}

/// One answer from a form field, checked against its question's kind.
fn answer(n: usize, q: &Question, raw: Option<&str>) -> Result<AnswerValue, String> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty());
    let short: String = q.text.chars().take(60).collect();
    let named = if short.len() < q.text.len() { format!("{short}…") } else { short };
    let Some(raw) = raw else {
        return Err(format!("question {n} (\"{named}\") has no answer"));
    };
    match q.kind {
        QuestionKind::Text => {
            let text = raw.replace("\r\n", "\n");
            let chars = text.chars().count();
            if chars > ANSWER_CHARS {
                return Err(format!(
                    "the answer to question {n} (\"{named}\") has {chars} characters; at most {ANSWER_CHARS}"
                ));
            }
            Ok(AnswerValue::Text(text))
        }
        QuestionKind::Scale => raw
            .parse::<u8>()
            .ok()
            .filter(|v| (1..=10).contains(v))
            .map(AnswerValue::Scale)
            .ok_or_else(|| format!("question {n} (\"{named}\") takes a whole number from 1 to 10, not {raw:?}")),
        QuestionKind::YesNo => match raw.to_ascii_lowercase().as_str() {
            "yes" => Ok(AnswerValue::YesNo(true)),
            "no" => Ok(AnswerValue::YesNo(false)),
            _ => Err(format!("question {n} (\"{named}\") takes yes or no, not {raw:?}")),
        },
    }
}

impl App {
    /// Store a questions homework for `client`.
    pub async fn assign_questions(&self, client: &Client, a: &QuestionsAssignment) -> AppResult<HomeworkRow> {
        if a.questions.is_empty() || a.questions.len() > MAX_QUESTIONS {
            return Err(AppError::input(format!("a questions homework asks 1 to {MAX_QUESTIONS} questions")));
        }
        let days = a.days.as_deref().filter(|d| !d.trim().is_empty());
        let schedule = match (a.every, days) {
            (Some(Every::Week), Some(_)) => {
                return Err(AppError::input(
                    "weekly questions are answered once a week, any day of it; weekdays go with every day",
                ))
            }
            (_, Some(days)) => Schedule::Days(super::parse_weekdays(days)?),
            (Some(Every::Day), None) => Schedule::Daily,
            (Some(Every::Week) | None, None) => Schedule::WeekTotal,
        };
        let rule = Rule {
            measure: Measure::Questions { questions: a.questions.clone() },
            schedule,
            nightly: false,
            window: None,
            bands: None,
            progression: None,
        };
        let from = a.from.unwrap_or_else(|| crate::time::today(client.tz, Utc::now()));
        if let Some(until) = a.until.filter(|u| *u < from) {
            return Err(AppError::input(format!("the last day {until} is before the first day {from}")));
        }
        Ok(self.store.add_homework(client.id, &rule, from, a.until).await?)
    }

    /// The client's questions homework open to answer at `now` (this week's or today's
    /// occurrence), with the answers given so far.
    pub async fn open_questions(&self, client: &Client, now: DateTime<Utc>) -> AppResult<Vec<OpenQuestions>> {
        let today = crate::time::today(client.tz, now);
        let rows = self.store.list_homework(Some(client.id)).await?;
        let sets = self.store.answer_sets(client.id, crate::time::monday(today), today).await?;
        let mut open = Vec::new();
        for row in &rows {
            let (Some(questions), Some(occurrence)) = (questions_of(row), open_occurrence(row, today)) else {
                continue;
            };
            let set = sets.iter().find(|s| s.homework_id == row.homework.id && s.occurrence == occurrence);
            open.push(OpenQuestions {
                homework_id: row.homework.id,
                homework: row.homework.text.to_string(),
                occurrence,
                period: period(row),
                questions: questions.to_vec(),
                answered: set.map(|s| answered(row, s)),
            });
        }
        Ok(open)
    }

    /// The client answers the open occurrence of a questions homework: `raw[i]` is the
    /// answer to question i as typed or chosen. Every answer is checked first; with any
    /// problem nothing is stored. A second answer set for the same occurrence replaces
    /// the first. `via` names the front end, as for check-ins.
    pub async fn answer_questions(
        &self,
        client: &Client,
        row: &HomeworkRow,
        raw: &[Option<String>],
        now: DateTime<Utc>,
        via: &str,
    ) -> AppResult<Answered> {
        let questions = questions_of(row).ok_or_else(|| {
            AppError::input(format!(
                "#{} {} asks no questions; check in for it instead",
                row.homework.id, row.homework.text
            ))
        })?;
        let today = crate::time::today(client.tz, now);
        let occurrence = open_occurrence(row, today).ok_or_else(|| {
            AppError::input(format!(
                "#{} {} is not open for answers today ({today})",
                row.homework.id, row.homework.text
            ))
        })?;
        let mut values = Vec::new();
        let mut problems = Vec::new();
        for (i, q) in questions.iter().enumerate() {
            match answer(i + 1, q, raw.get(i).and_then(Option::as_deref)) {
                Ok(v) => values.push(v),
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(AppError::Input(format!("Nothing was saved: {}.", problems.join("; "))));
        }
        let stored: Vec<StoredAnswer> =
            values.iter().enumerate().map(|(i, v)| v.stored(u8::try_from(i).unwrap_or(u8::MAX))).collect();
        self.store.save_answers(client.id, row.homework.id, occurrence, today, &stored, via).await?;
        let set = self
            .store
            .answer_sets(client.id, occurrence, occurrence)
            .await?
            .into_iter()
            .find(|s| s.homework_id == row.homework.id)
            .ok_or_else(|| AppError::Runtime(anyhow::anyhow!("the answers just saved were not found")))?;
        Ok(answered(row, &set))
    }

    /// The client's answers to occurrences dated in `[from, to]`, newest first: what the
    /// trainer reads.
    pub async fn answers(&self, client: &Client, from: NaiveDate, to: NaiveDate) -> AppResult<Vec<Answered>> {
        if from > to {
            return Err(AppError::input(format!("the first day {from} is after the last day {to}")));
        }
        let rows = self.store.list_homework(Some(client.id)).await?;
        let sets = self.store.answer_sets(client.id, from, to).await?;
        Ok(sets
            .iter()
            .filter_map(|s| rows.iter().find(|r| r.homework.id == s.homework_id).map(|r| answered(r, s)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_read_one_per_line_with_their_kind() {
        let text = "\u{feff}# the weekly sheet\n\n[1-10] On a scale of 1-10, how do you choose to make this week work for you?\r\nWhat will you do to make that happen?\n[yes/no] Did you sleep 7 hours most nights?\n[ Scale ] How hard was it?\n";
        let qs = parse_questions(text).expect("valid");
        let kinds: Vec<QuestionKind> = qs.iter().map(|q| q.kind).collect();
        assert_eq!(kinds, [QuestionKind::Scale, QuestionKind::Text, QuestionKind::YesNo, QuestionKind::Scale]);
        assert_eq!(qs[1].text, "What will you do to make that happen?");
        assert_eq!(qs[0].text, "On a scale of 1-10, how do you choose to make this week work for you?");
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let text = format!("ok question?\n[maybe] Perhaps?\n\nno\n[yes/no] {}\n", "x".repeat(301));
        let AppError::Input(msg) = parse_questions(&text).expect_err("invalid") else { panic!("input error") };
        assert!(msg.contains("line 2: [maybe]"), "{msg}");
        assert!(msg.contains("line 4: a question has 3 to 300 characters; this one has 2"), "{msg}");
        assert!(msg.contains("line 5:"), "{msg}");
        assert!(!msg.contains("line 1"), "{msg}");
        let eleven: String = (1..=11).map(|i| format!("Question number {i}?\n")).collect();
        let AppError::Input(msg) = parse_questions(&eleven).expect_err("too many") else { panic!("input error") };
        assert!(msg.contains("line 11: question 11 of 11"), "{msg}");
        assert!(parse_questions("# only a comment\n\n").is_err());
    }

    #[test]
    fn answers_are_checked_by_kind() {
        let scale = Question { text: "How much?".into(), kind: QuestionKind::Scale };
        let yes_no = Question { text: "Did you?".into(), kind: QuestionKind::YesNo };
        let text = Question { text: "Why?".into(), kind: QuestionKind::Text };
        assert_eq!(answer(1, &scale, Some(" 7 ")), Ok(AnswerValue::Scale(7)));
        for bad in ["0", "11", "7.5", "seven"] {
            assert!(answer(1, &scale, Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(answer(2, &yes_no, Some("No")), Ok(AnswerValue::YesNo(false)));
        assert!(answer(2, &yes_no, Some("maybe")).is_err());
        assert!(answer(3, &text, Some("  ")).expect_err("empty").contains("question 3 (\"Why?\") has no answer"));
        assert!(answer(3, &text, None).is_err());
        assert!(answer(3, &text, Some(&"a".repeat(2001))).is_err());
        assert_eq!(answer(3, &text, Some(&"a".repeat(2000))), Ok(AnswerValue::Text("a".repeat(2000))));
        for v in [AnswerValue::Scale(4), AnswerValue::YesNo(true), AnswerValue::Text("t".into())] {
            let kind = match v {
                AnswerValue::Scale(_) => QuestionKind::Scale,
                AnswerValue::YesNo(_) => QuestionKind::YesNo,
                AnswerValue::Text(_) => QuestionKind::Text,
            };
            assert_eq!(AnswerValue::from_stored(kind, &v.stored(0)), v);
        }
    }
}
