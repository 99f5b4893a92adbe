//! Chart rendering benchmark: every kind drawn from the demo data set (SVG and PNG),
//! side by side with matplotlib drawing the same adherence heatmap and HR curve from the
//! same data (exported as JSON to benches/charts_matplotlib.py).
//!
//!     cargo bench --bench charts
//!
//! matplotlib is looked up with `python3`; PYTHONPATH may point at a `pip install
//! --target` folder. Without it the Rust figures are printed alone.

use chrono::{TimeZone, Utc};
use coachd::charts::data::{build, Judging, Request};
use coachd::charts::{render, Body, Format, Kind};
use coachd::config::Config;
use coachd::paths::DataDir;
use std::collections::BTreeMap;
use std::time::Instant;

const RUNS: usize = 30;

fn median_ms(mut f: impl FnMut()) -> f64 {
    f(); // warm-up: fonts registered, caches filled
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let config = Config::default();
    let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await?;
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 19, 0, 0).single().expect("valid time");
    coachd::demo::create(&store, now).await?;
    let judging =
        Judging { cfg: config.homework.judge_config(), attention_drop: config.homework.attention_drop_points / 100.0 };
    let clients = store.list_clients().await?;
    let alex = clients.iter().find(|c| c.name == "alex").expect("demo client").clone();
    let sam = clients.iter().find(|c| c.name == "sam").expect("demo client").clone();

    println!("chart render time, demo data set, median of {RUNS} (ms)");
    println!(
        "{:<10} {:>12} {:>9} {:>9} {:>14} {:>14} {:>9} {:>9}",
        "kind", "data (store)", "svg", "png", "matplotlib svg", "matplotlib png", "× svg", "× png"
    );
    let mut rust: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    let mut export = serde_json::Map::new();
    for kind in Kind::ALL {
        let client = if kind == Kind::Session { &sam } else { &alex };
        let req = Request { kind, client: Some(client), clients: &clients, from: None, to: None, activity: None, now };
        // Gathering includes status (verdicts from the cache after the first run).
        let mut times = Vec::new();
        let mut chart = build(&store, &judging, &req).await?;
        for _ in 0..RUNS {
            let t = Instant::now();
            chart = build(&store, &judging, &req).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let gather = times[RUNS / 2];
        let svg = median_ms(|| drop(render(&chart, Format::Svg).expect("svg")));
        let png = median_ms(|| drop(render(&chart, Format::Png).expect("png")));
        rust.insert(kind.as_str(), (gather, svg, png));
        match &chart.body {
            Body::Adherence(d) => {
                let rows: Vec<_> = d
                    .rows
                    .iter()
                    .map(|r| {
                        let cells: Vec<_> = r.cells.iter().map(|c| c.map(|c| c.verdict.as_str())).collect();
                        serde_json::json!({"label": r.label, "cells": cells})
                    })
                    .collect();
                let days: Vec<String> = d.days.iter().map(|d| d.to_string()).collect();
                export
                    .insert("adherence".into(), serde_json::json!({"title": chart.title, "days": days, "rows": rows}));
            }
            Body::Session(d) => {
                export.insert(
                    "session".into(),
                    serde_json::json!({"title": chart.title, "samples": d.samples, "hr_max": d.hr_max.unwrap_or(180.0)}),
                );
            }
            _ => {}
        }
    }
    let json_path = dir.path().join("charts.json");
    std::fs::write(&json_path, serde_json::Value::Object(export).to_string())?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/charts_matplotlib.py");
    let mpl: BTreeMap<(String, String), f64> =
        match std::process::Command::new("python3").arg(script).arg(&json_path).arg(RUNS.to_string()).output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some(((it.next()?.to_string(), it.next()?.to_string()), it.next()?.parse().ok()?))
                })
                .collect(),
            Ok(out) => {
                eprintln!(
                    "matplotlib side skipped: {}",
                    String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                );
                BTreeMap::new()
            }
            Err(e) => {
                eprintln!("matplotlib side skipped: python3: {e}");
                BTreeMap::new()
            }
        };
    for kind in Kind::ALL {
        let (gather, svg, png) = rust[kind.as_str()];
        let m = |f: &str| mpl.get(&(kind.as_str().to_string(), f.to_string())).copied();
        let cell = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
        let ratio = |v: Option<f64>, r: f64| v.map(|v| format!("{:.1}×", v / r)).unwrap_or_else(|| "–".into());
        println!(
            "{:<10} {:>12.2} {:>9.2} {:>9.2} {:>14} {:>14} {:>9} {:>9}",
            kind.as_str(),
            gather,
            svg,
            png,
            cell(m("svg")),
            cell(m("png")),
            ratio(m("svg"), svg),
            ratio(m("png"), png)
        );
    }
    store.close().await;
    Ok(())
}
