//! `coachd benchmark` (record a test done in a session) and `coachd benchmarks` (list
//! them, or remove one recorded by mistake).

use super::homework::day;
use super::Failure;
use crate::app::{App, BenchmarkInput};
use crate::store::benchmarks::number;
use crate::store::Benchmark;

/// Shown under `coachd benchmark --help`.
pub const BENCHMARK_HELP: &str = "\
Examples:
  coachd benchmark alex \"max push-ups\" 18 --for 2 --note \"chest to fist\"
  coachd benchmark alex plank 1:30                  (minutes:seconds; the unit is s)
  coachd benchmark alex \"squat form\" 4              (a 1-5 score, read from the name)
  coachd benchmark alex \"broad jump\" 180 --unit reps --date yesterday

Units: reps (whole numbers), s (seconds), kg, km/h, score (1 to 5). Without --unit, a
test's earlier results decide, else its name: push-ups, squats, pull-ups... are reps;
plank, hold, hang are s; form is a score; 1RM, deadlift are kg; speed is km/h.

`coachd chart progress CLIENT --out progress.svg` draws each test over time beside the
weekly adherence of the homework given with --for.";

pub struct RecordArgs {
    pub client: String,
    pub name: String,
    pub value: String,
    pub unit: Option<String>,
    pub note: Option<String>,
    pub for_homework: Option<i64>,
    pub date: Option<String>,
    pub trainer: Option<String>,
}

pub async fn record(app: &App, args: RecordArgs) -> Result<(), Failure> {
    let client = app.client(&args.client).await?;
    let trainer = match args.trainer.as_deref() {
        Some(name) => Some(app.trainer_named(name).await?),
        None => None,
    };
    let input = BenchmarkInput {
        name: args.name,
        value: args.value,
        unit: args.unit,
        note: args.note,
        for_homework: args.for_homework,
        date: day(args.date.as_deref(), &client, "the date")?,
    };
    let b = app.record_benchmark(&client, trainer.as_ref(), &input).await?;
    let homework = match (b.homework_id, &b.homework) {
        (Some(id), Some(text)) => format!(" (for #{id} {text})"),
        _ => String::new(),
    };
    println!("benchmark #{} {} {}: {} {}{homework}", b.id, client.name, b.date, b.name, b.unit.show(b.value));
    // The result before this one, so the trainer sees the change at once.
    let earlier = app.benchmarks(&client, Some(&b.name)).await?;
    if let Some(prev) = earlier.iter().rev().find(|p| p.id != b.id && (p.date, p.id) < (b.date, b.id)) {
        let delta = b.value - prev.value;
        let sign = if delta >= 0.0 { "+" } else { "-" };
        println!("  previous: {} on {} ({sign}{})", prev.unit.show(prev.value), prev.date, number(delta.abs()));
    }
    Ok(())
}

pub async fn list(app: &App, client: &str, test: Option<&str>, json: bool) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let rows = app.benchmarks(&client, test).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::new)?);
        return Ok(());
    }
    if rows.is_empty() {
        let what = test.map(|t| format!(" of {t:?}")).unwrap_or_default();
        println!(
            "no benchmarks{what} for {} yet; record one with `coachd benchmark {} \"max push-ups\" 18`",
            client.name, client.name
        );
        return Ok(());
    }
    // Rows come by test, then date: one block per test with its change.
    let mut start = 0;
    while start < rows.len() {
        let same = |b: &Benchmark| b.name.eq_ignore_ascii_case(&rows[start].name);
        let end = start + rows[start..].iter().take_while(|b| same(b)).count();
        print_test(&rows[start..end]);
        start = end;
    }
    Ok(())
}

fn print_test(rows: &[Benchmark]) {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let change = if rows.len() > 1 {
        let delta = last.value - first.value;
        format!(
            ": {} → {} ({}{})",
            number(first.value),
            number(last.value),
            if delta >= 0.0 { "+" } else { "-" },
            number(delta.abs())
        )
    } else {
        String::new()
    };
    println!("{} ({}){change}", first.name, first.unit);
    for b in rows {
        let homework = b.homework_id.map(|id| format!("for #{id}")).unwrap_or_default();
        let note = b.note.as_deref().unwrap_or_default();
        let line = format!("  #{:<5} {}  {:>8}  {homework:<9} {note}", b.id, b.date, number(b.value));
        println!("{}", line.trim_end());
    }
}

pub async fn remove(app: &App, client: &str, id: i64) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let b = app.remove_benchmark(&client, id).await?;
    println!("removed benchmark #{} {} {}: {} {}", b.id, client.name, b.date, b.name, b.unit.show(b.value));
    Ok(())
}
