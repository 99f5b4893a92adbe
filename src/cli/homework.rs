//! Homework commands: assign, homework list/end, log, checkin, excuse, activities, status.
//! Each parses its flags, calls the application layer and prints the result.

use super::Failure;
use crate::app::{App, Assignment, ManualActivity};
use crate::engine::judge::{Occurrence, Verdict};
use crate::status;
use crate::store::Client;
use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

/// A day flag in the client's zone: `YYYY-MM-DD`, `today` or `yesterday`.
pub(super) fn day(s: Option<&str>, client: &Client, what: &str) -> Result<Option<NaiveDate>, Failure> {
    s.map(|s| crate::time::parse_day(s, client.tz, Utc::now(), what)).transpose().map_err(Failure::Input)
}

fn today(client: &Client) -> NaiveDate {
    crate::time::today(client.tz, Utc::now())
}

pub struct AssignArgs {
    pub client: String,
    pub phrase: String,
    pub days: Option<String>,
    pub window: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub done_at: Option<f64>,
    pub partial_at: Option<f64>,
    pub dry_run: bool,
}

pub async fn assign(app: &App, args: AssignArgs) -> Result<(), Failure> {
    let client = app.client(&args.client).await?;
    let assignment = Assignment {
        phrase: args.phrase,
        days: args.days,
        window: args.window,
        from: day(args.from.as_deref(), &client, "the first day")?,
        until: day(args.until.as_deref(), &client, "the last day")?,
        done_at: args.done_at,
        partial_at: args.partial_at,
    };
    let span = |from: NaiveDate, until: Option<NaiveDate>| match until {
        Some(u) => format!("{from} to {u}"),
        None => format!("from {from}"),
    };
    if args.dry_run {
        let plan = app.plan(&client, &assignment)?;
        println!("{}: {} ({}) — not saved", client.name, plan.rule, span(plan.from, plan.until));
        print_judged_by(&client, &plan.rule);
        let today = crate::time::today(client.tz, chrono::Utc::now());
        let unit = plan.rule.unit();
        let next = plan.next_occurrences(today, 5);
        if next.is_empty() {
            println!("no occurrence in the year ahead");
        }
        // A yes/no kind of target ("on time", "answered") needs no number.
        let counted = !matches!(unit, "nights" | "mornings" | "check-ins" | "answered");
        println!("next occurrences:");
        for (d, target) in next {
            let what =
                if plan.rule.schedule.weekly() { format!("week of {d}") } else { d.format("%a %Y-%m-%d").to_string() };
            if counted {
                println!("  {what}: {} {unit}", crate::engine::rule::number(target));
            } else {
                println!("  {what}");
            }
        }
        if plan.rule.progression.is_some() {
            let monday = crate::time::monday(today.max(plan.from));
            let weeks: Vec<String> = (0..6)
                .map(|w| {
                    let d = monday + Duration::days(7 * w);
                    format!(
                        "week of {d}: {} {unit}",
                        crate::engine::rule::number(plan.rule.day_target_on(plan.from, d))
                    )
                })
                .collect();
            println!("target by week:\n  {}", weeks.join("\n  "));
        }
        return Ok(());
    }
    let row = app.assign(&client, &assignment).await?;
    println!(
        "#{} {}: {} ({})",
        row.homework.id,
        client.name,
        row.homework.text,
        span(row.homework.from, row.homework.until)
    );
    print_judged_by(&client, &row.homework.rule);
    Ok(())
}

/// Say plainly when no device can judge a homework.
fn print_judged_by(client: &crate::store::Client, rule: &crate::engine::rule::Rule) {
    if rule.judged_by() == crate::engine::rule::JudgedBy::CheckIns {
        println!(
            "judged from the client's check-ins: {} ticks it on their private page (`coachd share {}`) or you run \
             `coachd checkin`",
            client.name, client.name
        );
    }
}

pub struct QuestionsArgs {
    pub client: String,
    pub file: std::path::PathBuf,
    pub every: Option<String>,
    pub days: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
}

/// `assign CLIENT --questions FILE`: questions the client answers on their private page.
pub async fn assign_questions(app: &App, args: QuestionsArgs) -> Result<(), Failure> {
    let client = app.client(&args.client).await?;
    let shown = args.file.display();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Input(format!("cannot read the questions file {shown}: {e}")))?;
    let questions = crate::app::parse_questions(&text).map_err(|e| match e {
        crate::app::AppError::Input(m) => {
            let lines: Vec<String> = m.lines().map(|l| format!("{shown}: {l}")).collect();
            Failure::Input(lines.join("\n"))
        }
        other => other.into(),
    })?;
    let every = args.every.as_deref().map(crate::app::Every::parse).transpose()?;
    let assignment = crate::app::QuestionsAssignment {
        questions,
        every,
        days: args.days,
        from: day(args.from.as_deref(), &client, "the first day")?,
        until: day(args.until.as_deref(), &client, "the last day")?,
    };
    let row = app.assign_questions(&client, &assignment).await?;
    let (from, until) = (row.homework.from, row.homework.until);
    let span = match until {
        Some(u) => format!("{from} to {u}"),
        None => format!("from {from}"),
    };
    println!("#{} {}: {} ({span})", row.homework.id, client.name, row.homework.text);
    for (i, q) in assignment.questions.iter().enumerate() {
        println!("  {}. {}{}", i + 1, crate::app::questions::kind_prefix(q.kind), q.text);
    }
    println!(
        "judged from {}'s answers on their private page (`coachd share {}` prints the link); done when answered",
        client.name, client.name
    );
    Ok(())
}

#[derive(Serialize)]
struct HomeworkJson<'a> {
    id: i64,
    client: &'a str,
    text: &'a str,
    rule: &'a crate::engine::rule::Rule,
    from: NaiveDate,
    until: Option<NaiveDate>,
}

pub async fn list(app: &App, client: Option<&str>, json: bool) -> Result<(), Failure> {
    let client = match client {
        Some(name) => Some(app.client(name).await?),
        None => None,
    };
    let rows = app.homework_list(client.as_ref()).await?;
    if json {
        let items: Vec<HomeworkJson> = rows
            .iter()
            .map(|r| {
                let h = &r.homework;
                HomeworkJson { id: h.id, client: &h.client, text: &h.text, rule: &h.rule, from: h.from, until: h.until }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).map_err(anyhow::Error::new)?);
    } else if rows.is_empty() {
        println!("no homework yet; assign some with `coachd assign CLIENT \"15 minutes of cardio\"`");
    } else {
        for r in rows {
            let h = &r.homework;
            let until = h.until.map(|u| format!(" until {u}")).unwrap_or_default();
            println!("#{:<4} {:<16} {} (from {}{until})", h.id, h.client, h.text, h.from);
        }
    }
    Ok(())
}

/// `homework end ID --from DATE`: DATE is the first day without it [default: today].
pub async fn end(app: &App, id: i64, from: Option<&str>) -> Result<(), Failure> {
    let (row, client) = app.homework(id).await?;
    let first_day_without = day(from, &client, "the first day without it")?.unwrap_or_else(|| today(&client));
    let until = first_day_without - Duration::days(1);
    app.end_homework(&row, until).await?;
    println!("#{id} {}: {} ends; last day {until}", client.name, row.homework.text);
    Ok(())
}

pub struct LogArgs {
    pub client: String,
    pub activity_type: String,
    pub start: String,
    pub minutes: f64,
    pub avg_hr: Option<u32>,
    pub exercise: Option<String>,
    pub reps: Option<u32>,
}

pub async fn log(app: &App, args: LogArgs) -> Result<(), Failure> {
    let client = app.client(&args.client).await?;
    let start = NaiveDateTime::parse_from_str(args.start.trim(), "%Y-%m-%d %H:%M")
        .map_err(|_| Failure::Input(format!("--start {:?} is not \"YYYY-MM-DD HH:MM\"", args.start)))?;
    let m = ManualActivity {
        activity_type: args.activity_type,
        start,
        minutes: args.minutes,
        avg_hr: args.avg_hr,
        exercise: args.exercise,
        reps: args.reps,
    };
    let logged = app.log_activity(&client, &m).await?;
    let what = match (&m.exercise, m.reps) {
        (Some(e), Some(r)) => format!(", {r} × {}", e.trim().to_ascii_lowercase().replace('-', "_")),
        _ => String::new(),
    };
    let note = if logged.inserted { "" } else { " (already logged; nothing changed)" };
    println!(
        "#{} {}: {} {} for {} min{what}{note}",
        logged.id,
        client.name,
        logged.activity_type,
        logged.start.format("%Y-%m-%d %H:%M %Z"),
        args.minutes
    );
    Ok(())
}

pub async fn checkin(
    app: &App,
    client: &str,
    homework: i64,
    date: Option<&str>,
    value: Option<f64>,
    note: Option<&str>,
) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let row = app.homework_of(&client, homework).await?;
    let on = day(date, &client, "the date")?.unwrap_or_else(|| today(&client));
    let id = app.check_in(&client, &row, on, value, note, "cli").await?;
    let (_, unit) = row.homework.rule.day_target();
    let amount = value.map(|v| format!(" {v} {unit}")).unwrap_or_else(|| " done".into());
    println!("check-in #{id} (self-reported) {} {on}: {}{amount}", client.name, row.homework.text);
    Ok(())
}

pub async fn excuse(app: &App, client: &str, homework: i64, date: &str, reason: Option<&str>) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let row = app.homework_of(&client, homework).await?;
    let on = day(Some(date), &client, "the date")?.unwrap_or_else(|| today(&client));
    app.excuse(&client, &row, on, reason).await?;
    println!("excused {} {on}: {}", client.name, row.homework.text);
    Ok(())
}

#[derive(Serialize)]
struct SetJson {
    exercise: String,
    reps: u32,
}

#[derive(Serialize)]
struct ActivityJson {
    id: i64,
    client: String,
    start: String,
    end: String,
    #[serde(rename = "type")]
    activity_type: String,
    category: crate::model::Category,
    sources: Vec<String>,
    members: Vec<i64>,
    duration_s: f64,
    avg_hr: Option<f64>,
    max_hr: Option<u16>,
    hr_samples: u32,
    sets: Vec<SetJson>,
}

pub async fn activities(
    app: &App,
    client: &str,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let tz = client.tz;
    let to = day(to, &client, "the last day")?.unwrap_or_else(|| today(&client));
    let from = day(from, &client, "the first day")?.unwrap_or(to - Duration::days(29));
    let items: Vec<ActivityJson> = app
        .workouts(&client, from, to)
        .await?
        .into_iter()
        .map(|w| ActivityJson {
            id: w.id,
            client: client.name.clone(),
            start: w.start.with_timezone(&tz).to_rfc3339(),
            end: w.end.with_timezone(&tz).to_rfc3339(),
            members: w.member_ids(),
            activity_type: w.activity_type,
            category: w.category,
            sources: w.sources,
            duration_s: w.duration_s,
            avg_hr: w.avg_hr,
            max_hr: w.max_hr,
            hr_samples: w.hr_samples,
            sets: w.sets.into_iter().map(|s| SetJson { exercise: s.exercise, reps: s.reps }).collect(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&items).map_err(anyhow::Error::new)?);
        return Ok(());
    }
    if items.is_empty() {
        println!("no activities for {} from {from} to {to}", client.name);
    }
    for a in items {
        let hr = a.avg_hr.map(|h| format!(", avg HR {h:.0}")).unwrap_or_default();
        let reps: u32 = a.sets.iter().map(|s| s.reps).sum();
        let reps = if reps > 0 { format!(", {reps} reps") } else { String::new() };
        println!(
            "#{:<5} {} {:<14} {:>5.0} min{hr}{reps}  [{}]",
            a.id,
            &a.start[..16].replace('T', " "),
            a.activity_type,
            a.duration_s / 60.0,
            a.sources.join(", ")
        );
    }
    Ok(())
}

fn symbol(o: &Occurrence) -> String {
    let s = match o.verdict {
        Verdict::Done => "✓",
        Verdict::Partial => "½",
        Verdict::Missed => "✗",
        Verdict::NoData => "?",
        Verdict::Pending => "…",
        Verdict::Excused => "E",
    };
    if o.self_reported {
        format!("{s}*")
    } else {
        s.to_string()
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.0}%", v * 100.0))
}

pub async fn status_cmd(
    app: &App,
    client: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let clients = app.clients_named(client).await?;
    // Dates are read in the first client's zone (or UTC); each client is judged in its own.
    let tz = clients.first().map_or(chrono_tz::UTC, |c| c.tz);
    let now = Utc::now();
    let parse = |s: Option<&str>, what: &str| {
        s.map(|s| crate::time::parse_day(s, tz, now, what)).transpose().map_err(Failure::Input)
    };
    let to = parse(to, "the last day")?.unwrap_or_else(|| crate::time::today(tz, now));
    let from = parse(from, "the first day")?.unwrap_or(to - Duration::days(6));
    let report = app.status(&clients, from, to, now).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(anyhow::Error::new)?);
        return Ok(());
    }
    print_table(&clients, &report, from, to);
    Ok(())
}

fn print_table(clients: &[Client], report: &status::StatusReport, from: NaiveDate, to: NaiveDate) {
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    // Wide ranges show the last 14 days in the table; JSON has them all.
    let days = &days[days.len().saturating_sub(14)..];
    let mut any = false;
    for c in clients {
        let adh: Vec<_> = report.adherence.iter().filter(|a| a.client == c.name).collect();
        if adh.is_empty() {
            continue;
        }
        any = true;
        let attention = if adh.iter().any(|a| a.needs_attention) { "   ⚠ needs attention" } else { "" };
        println!("{} ({}){attention}", c.name, c.tz);
        let head: String = days.iter().map(|d| format!(" {:>5}", d.format("%a%d").to_string())).collect();
        println!("  {:<44}{head}  {:>5} {:>5} {:>5} {:>6}", "homework", "7d", "30d", "90d", "streak");
        for a in adh {
            let occs: Vec<&Occurrence> = report.occurrences.iter().filter(|o| o.homework_id == a.homework_id).collect();
            let text = occs.first().map(|o| o.homework.clone()).unwrap_or_default();
            let label = format!("#{} {}", a.homework_id, text);
            let label: String =
                if label.chars().count() > 44 { label.chars().take(43).collect::<String>() + "…" } else { label };
            let cells: String = days
                .iter()
                .map(|d| {
                    let cell = occs.iter().find(|o| {
                        if o.period == "week" {
                            // A week's verdict shows in its first visible day.
                            *d == o.date.max(days[0]) && *d <= o.date + Duration::days(6)
                        } else {
                            o.date == *d
                        }
                    });
                    let text = cell.map_or_else(
                        || "·".to_string(),
                        |o| {
                            if o.period == "week" {
                                format!("{}/{}{}", o.achieved, o.target, symbol(o))
                            } else {
                                symbol(o)
                            }
                        },
                    );
                    format!(" {text:>5}")
                })
                .collect();
            println!(
                "  {label:<44}{cells}  {:>5} {:>5} {:>5} {:>6}",
                percent(a.days7),
                percent(a.days30),
                percent(a.days90),
                a.streak
            );
            // Why it cannot be judged, once, where the sources say.
            if let Some(note) = occs.iter().rev().find_map(|o| o.note.as_deref()) {
                println!("    ? {note}");
            }
        }
        println!();
    }
    if !any {
        println!("no homework to judge; assign some with `coachd assign CLIENT \"15 minutes of cardio\"`");
        return;
    }
    println!("✓ done  ½ partial  ✗ missed  ? no data  … pending  E excused  * self-reported  · not scheduled");
}
