//! Homework commands: assign, homework list/end, log, checkin, excuse, activities, status.

use super::Failure;
use crate::activity_types;
use crate::config::Config;
use crate::engine::evidence::MANUAL_SOURCE;
use crate::engine::judge::{Occurrence, Verdict};
use crate::engine::phrase;
use crate::engine::rule::{Bands, Schedule, Window};
use crate::model::{Batch, NewActivity, SetType, StrengthSet};
use crate::status::{self, client_tz};
use crate::store::{Client, Store};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// `YYYY-MM-DD`, `today` or `yesterday` (in the given time zone).
pub fn parse_date(s: &str, tz: Tz, what: &str) -> Result<NaiveDate, Failure> {
    let today = Utc::now().with_timezone(&tz).date_naive();
    match s.trim().to_ascii_lowercase().as_str() {
        "today" => Ok(today),
        "yesterday" => Ok(today - Duration::days(1)),
        other => NaiveDate::parse_from_str(other, "%Y-%m-%d")
            .map_err(|_| Failure::Input(format!("{what} {s:?} is not a date: use YYYY-MM-DD, today or yesterday"))),
    }
}

fn parse_days(s: &str) -> Result<Vec<Weekday>, Failure> {
    let mut days = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let day = part.parse::<Weekday>().map_err(|_| {
            Failure::Input(format!("--days: {part:?} is not a weekday; use mon,tue,wed,thu,fri,sat,sun"))
        })?;
        if !days.contains(&day) {
            days.push(day);
        }
    }
    if days.is_empty() {
        return Err(Failure::Input("--days is empty; for example --days mon,wed,fri".into()));
    }
    days.sort_by_key(Weekday::num_days_from_monday);
    Ok(days)
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
}

pub async fn assign(store: &Store, args: AssignArgs) -> Result<(), Failure> {
    let client = store.client_by_name(&args.client).await?;
    let row = assign_to(store, &client, &args).await?;
    let (from, until) = (row.homework.from, row.homework.until);
    let span = match until {
        Some(u) => format!("{from} to {u}"),
        None => format!("from {from}"),
    };
    println!("#{} {}: {} ({span})", row.homework.id, client.name, row.homework.text);
    Ok(())
}

/// Parse and store a homework for `client` (the CLI's and the dashboard's assign).
pub async fn assign_to(
    store: &Store,
    client: &Client,
    args: &AssignArgs,
) -> Result<crate::store::HomeworkRow, Failure> {
    let tz = client_tz(client)?;
    let mut rule = phrase::parse(&args.phrase).map_err(Failure::Input)?;
    if let Some(days) = &args.days {
        if let Schedule::PerWeek(n) = rule.schedule {
            return Err(Failure::Input(format!(
                "{:?} is already {n} times a week; --days would contradict it",
                args.phrase
            )));
        }
        rule.schedule = Schedule::Days(parse_days(days)?);
    }
    if let Some(w) = &args.window {
        rule.window = Some(Window::parse(w).map_err(Failure::Input)?);
    }
    if args.done_at.is_some() || args.partial_at.is_some() {
        let done = args.done_at.unwrap_or(100.0);
        let partial = args.partial_at.unwrap_or(done / 2.0);
        if !(done > 0.0 && done <= 200.0 && partial > 0.0 && partial <= done) {
            return Err(Failure::Input(format!(
                "--done-at {done} / --partial-at {partial}: need 0 < partial <= done <= 200 (percent)"
            )));
        }
        rule.bands = Some(Bands { done: done / 100.0, partial: partial / 100.0 });
    }
    let from = match &args.from {
        Some(s) => parse_date(s, tz, "--from")?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let until = args.until.as_deref().map(|s| parse_date(s, tz, "--until")).transpose()?;
    if until.is_some_and(|u| u < from) {
        return Err(Failure::Input(format!("--until {} is before --from {from}", until.unwrap_or(from))));
    }
    Ok(store.add_homework(client.id, &rule, from, until).await?)
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

pub async fn list(store: &Store, client: Option<&str>, json: bool) -> Result<(), Failure> {
    let client = match client {
        Some(name) => Some(store.client_by_name(name).await?.id),
        None => None,
    };
    let rows = store.list_homework(client).await?;
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

pub async fn end(store: &Store, id: i64, from: Option<&str>) -> Result<(), Failure> {
    let row = store.homework(id).await?;
    let client = store.client_by_id(row.client_id).await?;
    let tz = client_tz(&client)?;
    let first_day_without = match from {
        Some(s) => parse_date(s, tz, "--from")?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let until = first_day_without - Duration::days(1);
    store.end_homework(id, until).await?;
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

pub async fn log(store: &Store, args: LogArgs) -> Result<(), Failure> {
    let client = store.client_by_name(&args.client).await?;
    let tz = client_tz(&client)?;
    let ty = args.activity_type.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    if !activity_types::is_known(&ty) {
        let known: Vec<&str> = activity_types::names().collect();
        return Err(Failure::Input(format!("--type {ty:?} is not known; use one of: {}", known.join(", "))));
    }
    let naive = NaiveDateTime::parse_from_str(args.start.trim(), "%Y-%m-%d %H:%M")
        .map_err(|_| Failure::Input(format!("--start {:?} is not \"YYYY-MM-DD HH:MM\"", args.start)))?;
    let start = tz.from_local_datetime(&naive).earliest().ok_or_else(|| {
        Failure::Input(format!("--start {naive} does not exist in {} (a daylight-saving gap)", client.tz))
    })?;
    if !(args.minutes.is_finite() && args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        return Err(Failure::Input(format!("--minutes {} must be between 0 and 1440", args.minutes)));
    }
    if let Some(hr) = args.avg_hr {
        if !(30..=250).contains(&hr) {
            return Err(Failure::Input(format!("--avg-hr {hr} is not plausible (30-250 bpm)")));
        }
    }
    let exercise = args.exercise.as_deref().map(|e| e.trim().to_ascii_lowercase().replace('-', "_"));
    let sets = match (&exercise, args.reps) {
        (Some(e), Some(reps)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
            Some(vec![StrengthSet {
                start: Some(start.with_timezone(&Utc)),
                duration_s: None,
                exercise: e.clone(),
                set_type: SetType::Active,
                reps: Some(reps),
                weight_kg: None,
            }])
        }
        (Some(e), Some(_)) => return Err(Failure::Input(format!("--exercise {e:?}: use a name like push_up"))),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Failure::Input("--exercise and --reps go together, e.g. --exercise push_up --reps 10".into()))
        }
        (None, None) => None,
    };
    let start_utc = start.with_timezone(&Utc);
    let end = start_utc + Duration::milliseconds((args.minutes * 60_000.0).round() as i64);
    // The same command twice is the same activity: the id is derived from what was typed.
    let mut h = Sha256::new();
    h.update(format!(
        "{}|{ty}|{}|{}|{:?}|{:?}|{:?}",
        client.id,
        start_utc.timestamp(),
        args.minutes,
        args.avg_hr,
        exercise,
        args.reps
    ));
    let external_id: String = h.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect();
    let activity = NewActivity {
        client_id: client.id,
        external_id: external_id.clone(),
        start: start_utc,
        end,
        utc_offset_s: start.offset().fix().local_minus_utc(),
        category: activity_types::category(&ty),
        activity_type: ty.clone(),
        duration_s: args.minutes * 60.0,
        distance_m: None,
        avg_hr: args.avg_hr.map(f64::from),
        max_hr: None,
        energy_kj: None,
        content_hash: None,
        series: Vec::new(),
        sets,
    };
    let report = store.ingest(&Batch { activities: vec![activity], ..Batch::new(MANUAL_SOURCE) }).await?;
    let id = store.activity_id(MANUAL_SOURCE, &external_id).await?.unwrap_or_default();
    let what = match (&exercise, args.reps) {
        (Some(e), Some(r)) => format!(", {r} × {e}"),
        _ => String::new(),
    };
    let note = if report.activities_inserted == 0 { " (already logged; nothing changed)" } else { "" };
    println!("#{id} {}: {ty} {} for {} min{what}{note}", client.name, start.format("%Y-%m-%d %H:%M %Z"), args.minutes);
    Ok(())
}

use chrono::Offset;

async fn homework_of(store: &Store, client: &Client, id: i64) -> Result<crate::store::HomeworkRow, Failure> {
    let row = store.homework(id).await?;
    if row.client_id != client.id {
        return Err(Failure::Input(format!("homework #{id} belongs to {}, not {}", row.homework.client, client.name)));
    }
    Ok(row)
}

pub async fn checkin(
    store: &Store,
    client: &str,
    homework: i64,
    date: Option<&str>,
    value: Option<f64>,
    note: Option<&str>,
) -> Result<(), Failure> {
    let client = store.client_by_name(client).await?;
    let tz = client_tz(&client)?;
    let row = homework_of(store, &client, homework).await?;
    let on = match date {
        Some(s) => parse_date(s, tz, "--date")?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
        return Err(Failure::Input("--value must be a number of at least 0".into()));
    }
    let id = store.add_checkin(client.id, homework, on, value, note, "cli").await?;
    let (_, unit) = row.homework.rule.day_target();
    let amount = value.map(|v| format!(" {v} {unit}")).unwrap_or_else(|| " done".into());
    println!("check-in #{id} (self-reported) {} {on}: {}{amount}", client.name, row.homework.text);
    Ok(())
}

pub async fn excuse(
    store: &Store,
    client: &str,
    homework: i64,
    date: &str,
    reason: Option<&str>,
) -> Result<(), Failure> {
    let client = store.client_by_name(client).await?;
    let tz = client_tz(&client)?;
    let row = homework_of(store, &client, homework).await?;
    let on = parse_date(date, tz, "--date")?;
    store.excuse(client.id, homework, on, reason).await?;
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
    store: &Store,
    client: &str,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let client = store.client_by_name(client).await?;
    let tz = client_tz(&client)?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let to = to.map(|s| parse_date(s, tz, "--to")).transpose()?.unwrap_or(today);
    let from = from.map(|s| parse_date(s, tz, "--from")).transpose()?.unwrap_or(to - Duration::days(29));
    let evidence = store.evidence(client.id, tz, from, to).await?;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz);
    let items: Vec<ActivityJson> = evidence
        .workouts
        .into_iter()
        .filter(|w| (from..=to).contains(&local(w.start).date_naive()))
        .map(|w| ActivityJson {
            id: w.id,
            client: client.name.clone(),
            start: local(w.start).to_rfc3339(),
            end: local(w.end).to_rfc3339(),
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
    store: &Store,
    config: &Config,
    client: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let clients = match client {
        Some(name) => vec![store.client_by_name(name).await?],
        None => store.list_clients().await?,
    };
    // Dates are read in the first client's zone (or UTC); each client is judged in its own.
    let tz = clients.first().map(client_tz).transpose()?.unwrap_or(chrono_tz::UTC);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let to = to.map(|s| parse_date(s, tz, "--to")).transpose()?.unwrap_or(today);
    let from = from.map(|s| parse_date(s, tz, "--from")).transpose()?.unwrap_or(to - Duration::days(6));
    if from > to {
        return Err(Failure::Input(format!("--from {from} is after --to {to}")));
    }
    let cfg = config.homework.judge_config();
    let drop = config.homework.attention_drop_points / 100.0;
    let (report, _) = status::status(store, &cfg, drop, &clients, from, to, Utc::now()).await?;
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
        }
        println!();
    }
    if !any {
        println!("no homework to judge; assign some with `coachd assign CLIENT \"15 minutes of cardio\"`");
        return;
    }
    println!("✓ done  ½ partial  ✗ missed  ? no data  … pending  E excused  * self-reported  · not scheduled");
}
