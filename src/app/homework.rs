//! Homework and what a client did about it: assign, end, log by hand, check in,
//! excuse, and the merged workouts.

use super::{App, AppError, AppResult};
use crate::activity_types;
use crate::engine::evidence::{Workout, MANUAL_SOURCE};
use crate::engine::phrase;
use crate::engine::rule::{Bands, Schedule, Window};
use crate::model::{Batch, NewActivity, SetType, StrengthSet};
use crate::store::{Client, HomeworkRow};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc, Weekday};

/// A homework as the trainer gave it.
#[derive(Clone, Debug, Default)]
pub struct Assignment {
    /// In the trainer's words, e.g. "15 minutes of cardio on off-days".
    pub phrase: String,
    /// Only on these weekdays, e.g. "mon,wed,sat".
    pub days: Option<String>,
    /// A daily window in local time, e.g. "19:00-03:00".
    pub window: Option<String>,
    /// First day it applies [default: today in the client's zone].
    pub from: Option<NaiveDate>,
    /// Last day it applies [default: open-ended].
    pub until: Option<NaiveDate>,
    /// Done at this percent of the target.
    pub done_at: Option<f64>,
    /// Partial at this percent of the target.
    pub partial_at: Option<f64>,
}

/// A homework read but not stored (`assign --dry-run`, and the first step of `assign`).
#[derive(Clone, Debug)]
pub struct Plan {
    pub rule: crate::engine::rule::Rule,
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

impl Plan {
    /// The first `n` occurrences from `today` on (or from the first day, if later), with
    /// each one's target: a progression shows in them.
    pub fn next_occurrences(&self, today: NaiveDate, n: usize) -> Vec<(NaiveDate, f64)> {
        let hw = crate::engine::judge::Homework {
            id: 0,
            client: "".into(),
            text: self.rule.to_string().into(),
            rule: self.rule.clone(),
            from: self.from,
            until: self.until,
        };
        let mut out = Vec::new();
        let mut start = today.max(self.from);
        if self.rule.schedule.weekly() {
            start = crate::time::monday(start);
        }
        // A year ahead is far enough to find five of any schedule.
        let end = start + Duration::days(366);
        for d in hw.occurrence_dates(start, end).into_iter().take(n) {
            out.push((d, self.rule.target_on(self.from, d)));
        }
        out
    }
}

/// An activity the client tells of (no device recorded it).
#[derive(Clone, Debug)]
pub struct ManualActivity {
    /// run, ride, strength, yoga, ... ([`activity_types::names`]).
    pub activity_type: String,
    /// Local start time in the client's zone.
    pub start: NaiveDateTime,
    pub minutes: f64,
    pub avg_hr: Option<u32>,
    /// A strength set: exercise and reps go together.
    pub exercise: Option<String>,
    pub reps: Option<u32>,
}

/// What [`App::log_activity`] stored.
pub struct Logged {
    pub id: i64,
    pub activity_type: String,
    pub start: DateTime<chrono_tz::Tz>,
    /// False when the same activity was logged before (nothing changed).
    pub inserted: bool,
}

/// Weekdays as a trainer writes them: "mon,wed,sat" (any case, full names too).
pub fn parse_weekdays(s: &str) -> AppResult<Vec<Weekday>> {
    let mut days = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let day = part.parse::<Weekday>().map_err(|_| {
            AppError::input(format!("{part:?} is not a weekday; name days as mon, tue, wed, thu, fri, sat, sun"))
        })?;
        if !days.contains(&day) {
            days.push(day);
        }
    }
    if days.is_empty() {
        return Err(AppError::input("no weekdays given; name them like mon,wed,fri"));
    }
    days.sort_by_key(Weekday::num_days_from_monday);
    Ok(days)
}

impl App {
    /// Read a homework for `client` without storing it: the rule and the days it covers.
    pub fn plan(&self, client: &Client, a: &Assignment) -> AppResult<Plan> {
        let (mut rule, timing) = phrase::parse_with_timing(&a.phrase).map_err(AppError::Input)?;
        if let Some(days) = a.days.as_deref().filter(|d| !d.trim().is_empty()) {
            if rule.schedule.weekly() || matches!(rule.schedule, Schedule::EveryNDays(_)) {
                return Err(AppError::input(format!(
                    "{:?} already says how often ({rule}); naming weekdays would contradict it",
                    a.phrase
                )));
            }
            rule.schedule = Schedule::Days(parse_weekdays(days)?);
        }
        if let Some(w) = a.window.as_deref().filter(|w| !w.trim().is_empty()) {
            rule.window = Some(Window::parse(w.trim()).map_err(AppError::Input)?);
        }
        if a.done_at.is_some() || a.partial_at.is_some() {
            let done = a.done_at.unwrap_or(100.0);
            let partial = a.partial_at.unwrap_or(done / 2.0);
            if !(done > 0.0 && done <= 200.0 && partial > 0.0 && partial <= done) {
                return Err(AppError::input(format!(
                    "done at {done} % / partial at {partial} %: need 0 < partial <= done <= 200"
                )));
            }
            rule.bands = Some(Bands { done: done / 100.0, partial: partial / 100.0 });
        }
        let today = crate::time::today(client.tz, Utc::now());
        let from = match (a.from, timing.from) {
            (Some(flag), Some(words)) if flag != words.resolve(today) => {
                return Err(AppError::input(format!(
                    "the phrase starts on {} but --from says {flag}; give one of them",
                    words.resolve(today)
                )))
            }
            (Some(flag), _) => flag,
            (None, Some(words)) => words.resolve(today),
            (None, None) => today,
        };
        let until = match (a.until, timing.weeks) {
            (Some(_), Some(weeks)) => {
                return Err(AppError::input(format!(
                    "the phrase runs for {weeks} weeks and --until names a last day; give one of them"
                )))
            }
            (Some(u), None) => Some(u),
            (None, Some(weeks)) => Some(from + Duration::days(7 * i64::from(weeks) - 1)),
            (None, None) => None,
        };
        if let Some(until) = until.filter(|u| *u < from) {
            return Err(AppError::input(format!("the last day {until} is before the first day {from}")));
        }
        Ok(Plan { rule, from, until })
    }

    /// Why a phrase is not understood (what was not, what was expected, a suggestion), or
    /// None when it is.
    pub fn explain_phrase(&self, phrase: &str) -> Option<phrase::Refusal> {
        phrase::refusal(phrase)
    }

    /// Parse and store a homework for `client`.
    pub async fn assign(&self, client: &Client, a: &Assignment) -> AppResult<HomeworkRow> {
        let plan = self.plan(client, a)?;
        Ok(self.store.add_homework(client.id, &plan.rule, plan.from, plan.until).await?)
    }

    /// A homework by id, with its client. For a front end that names no client.
    pub async fn homework(&self, id: i64) -> AppResult<(HomeworkRow, Client)> {
        let row = self.store.homework(id).await?;
        let client = self.store.client_by_id(row.client_id).await?;
        Ok((row, client))
    }

    /// A homework of this client; another client's is "not found", like a missing one.
    pub async fn homework_of(&self, client: &Client, id: i64) -> AppResult<HomeworkRow> {
        match self.store.homework(id).await {
            Ok(row) if row.client_id == client.id => Ok(row),
            Ok(_) | Err(crate::store::StoreError::NotFound(_)) => Err(AppError::NotFound(format!(
                "homework #{id} of {} not found; see `coachd homework list {}`",
                client.name, client.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn homework_list(&self, client: Option<&Client>) -> AppResult<Vec<HomeworkRow>> {
        Ok(self.store.list_homework(client.map(|c| c.id)).await?)
    }

    /// End a homework: `last_day` is the last day it applies.
    pub async fn end_homework(&self, row: &HomeworkRow, last_day: NaiveDate) -> AppResult<()> {
        Ok(self.store.end_homework(row.homework.id, last_day).await?)
    }

    /// Store an activity the client tells of. The same input twice is the same activity.
    pub async fn log_activity(&self, client: &Client, m: &ManualActivity) -> AppResult<Logged> {
        let tz = client.tz;
        let ty = m.activity_type.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        if !activity_types::is_known(&ty) {
            let known: Vec<&str> = activity_types::names().collect();
            return Err(AppError::input(format!(
                "activity type {ty:?} is not known; use one of: {}",
                known.join(", ")
            )));
        }
        let start = tz.from_local_datetime(&m.start).earliest().ok_or_else(|| {
            AppError::input(format!("{} does not exist in {} (a daylight-saving gap)", m.start, tz.name()))
        })?;
        if !(m.minutes.is_finite() && m.minutes > 0.0 && m.minutes <= 24.0 * 60.0) {
            return Err(AppError::input(format!("{} minutes: give between 0 and 1440", m.minutes)));
        }
        if let Some(hr) = m.avg_hr.filter(|hr| !(30..=250).contains(hr)) {
            return Err(AppError::input(format!("average heart rate {hr} is not plausible (30-250 bpm)")));
        }
        let exercise = m.exercise.as_deref().map(|e| e.trim().to_ascii_lowercase().replace('-', "_"));
        let start_utc = start.with_timezone(&Utc);
        let sets = match (&exercise, m.reps) {
            (Some(e), Some(reps)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                Some(vec![StrengthSet {
                    start: Some(start_utc),
                    duration_s: None,
                    exercise: e.clone(),
                    set_type: SetType::Active,
                    reps: Some(reps),
                    weight_kg: None,
                }])
            }
            (Some(e), Some(_)) => return Err(AppError::input(format!("exercise {e:?}: use a name like push_up"))),
            (Some(_), None) | (None, Some(_)) => {
                return Err(AppError::input("an exercise and its reps go together, e.g. push_up and 10"))
            }
            (None, None) => None,
        };
        let end = start_utc + Duration::milliseconds((m.minutes * 60_000.0).round() as i64);
        // The id is derived from what was typed, so logging it twice changes nothing.
        let typed = format!(
            "{}|{ty}|{}|{}|{:?}|{:?}|{:?}",
            client.id,
            start_utc.timestamp(),
            m.minutes,
            m.avg_hr,
            exercise,
            m.reps
        );
        let external_id = crate::crypto::hex(&crate::crypto::sha256(typed.as_bytes())[..12]);
        let activity = NewActivity {
            client_id: client.id,
            external_id: external_id.clone(),
            start: start_utc,
            end,
            utc_offset_s: start.offset().fix().local_minus_utc(),
            category: activity_types::category(&ty),
            activity_type: ty.clone(),
            duration_s: m.minutes * 60.0,
            distance_m: None,
            avg_hr: m.avg_hr.map(f64::from),
            max_hr: None,
            energy_kj: None,
            content_hash: None,
            series: Vec::new(),
            sets,
            hr_zones: None,
        };
        let activity = activity.clamped().map_err(AppError::Input)?;
        let report = self.store.ingest(&Batch { activities: vec![activity], ..Batch::new(MANUAL_SOURCE) }).await?;
        let id = self.store.activity_id(MANUAL_SOURCE, &external_id).await?.unwrap_or_default();
        Ok(Logged { id, activity_type: ty, start, inserted: report.activities_inserted > 0 })
    }

    /// A client's self-report for a day; `via` names the front end ("cli", "client_page").
    pub async fn check_in(
        &self,
        client: &Client,
        row: &HomeworkRow,
        on: NaiveDate,
        value: Option<f64>,
        note: Option<&str>,
        via: &str,
    ) -> AppResult<i64> {
        if value.is_some_and(|v| !(v.is_finite() && (0.0..=100_000.0).contains(&v))) {
            return Err(AppError::input(format!(
                "{} is not an amount: give a number from 0 to 100000 in the homework's unit",
                value.unwrap_or_default()
            )));
        }
        let note = note.map(|n| n.trim().chars().take(500).collect::<String>()).filter(|n| !n.is_empty());
        Ok(self.store.add_checkin(client.id, row.homework.id, on, value, note.as_deref(), via).await?)
    }

    /// The trainer excuses a day: it no longer counts against adherence.
    pub async fn excuse(
        &self,
        client: &Client,
        row: &HomeworkRow,
        on: NaiveDate,
        reason: Option<&str>,
    ) -> AppResult<()> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        Ok(self.store.excuse(client.id, row.homework.id, on, reason).await?)
    }

    /// Workouts merged across sources whose local start date is in `[from, to]`.
    pub async fn workouts(&self, client: &Client, from: NaiveDate, to: NaiveDate) -> AppResult<Vec<Workout>> {
        if from > to {
            return Err(AppError::input(format!("the first day {from} is after the last day {to}")));
        }
        let tz = client.tz;
        let evidence = self.store.evidence(client.id, tz, from, to).await?;
        Ok(evidence
            .workouts
            .into_iter()
            .filter(|w| (from..=to).contains(&w.start.with_timezone(&tz).date_naive()))
            .collect())
    }

    /// A workout of the client within the last year, by its id or any of its parts' ids.
    pub async fn workout(&self, client: &Client, id: i64) -> AppResult<Workout> {
        let today = crate::time::today(client.tz, Utc::now());
        let ev = self.store.evidence(client.id, client.tz, today - Duration::days(365), today).await?;
        ev.workouts
            .into_iter()
            .find(|w| w.id == id || w.parts.iter().any(|p| p.id == id))
            .ok_or_else(|| AppError::NotFound(format!("workout #{id} of {} not found", client.name)))
    }
}

impl App {
    /// Import one activity file or export for the client (recognised by content). A
    /// rejected file is an outcome, not an error: the others of a folder go on.
    pub async fn import_file(
        &self,
        client: &Client,
        path: &std::path::Path,
        progress: crate::files::Progress,
    ) -> AppResult<crate::files::Outcome> {
        Ok(crate::files::import_file(&self.store, client, client.tz, path, progress).await?)
    }

    /// Import many files or exports for the client, as [`App::import_file`] would one by
    /// one (parsed on every core, stored in order, each all or nothing); `done` hears each
    /// file's outcome, by its index, in order once it is committed.
    pub async fn import_files(
        &self,
        client: &Client,
        paths: &[std::path::PathBuf],
        progress: crate::files::Progress,
        done: impl FnMut(usize, crate::files::Outcome),
    ) -> AppResult<()> {
        Ok(crate::files::import_files(&self.store, client, client.tz, paths, progress, done).await?)
    }

    /// The client's weekly reflections, newest first.
    pub async fn reflections(&self, client: &Client, weeks: i64) -> AppResult<Vec<crate::store::web::Reflection>> {
        Ok(self.store.reflections(client.id, weeks).await?)
    }

    /// The client rates their week (1-10), with an optional note.
    pub async fn reflect(&self, client: &Client, week: NaiveDate, rating: &str, note: &str) -> AppResult<u8> {
        let rating = rating
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|r| (1..=10).contains(r))
            .ok_or_else(|| AppError::input("the rating is a whole number from 1 to 10"))?;
        let note: String = note.trim().chars().take(2000).collect();
        let r = crate::store::web::Reflection { week, rating, note: (!note.is_empty()).then_some(note) };
        self.store.save_reflection(client.id, &r).await?;
        Ok(rating)
    }
}
