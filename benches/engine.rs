//! Homework engine benchmark: 200 clients × 4 homework × 365 days of realistic data.
//!
//! Prints: the pure engine judging everything from evidence in memory; the same from
//! scratch through the store (load evidence, judge, write the verdict cache); a warm
//! status run; and re-judging after one new activity arrives.
//!
//!     cargo bench --bench engine            # COACHD_BENCH_CLIENTS=50 for a quicker run

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use coachd::config::{Config, Synchronous};
use coachd::engine::judge::judge;
use coachd::model::{Batch, DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind, SetType, StrengthSet};
use coachd::paths::DataDir;
use coachd::status::{hr_max, status};
use coachd::store::{NewClient, Store};
use std::time::Instant;

const PHRASES: [&str; 4] =
    ["15 minutes of cardio", "10 push-ups every night", "8000 steps a day", "30 min zone 2 twice a week"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn workout(
    client: i64,
    id: String,
    ty: &str,
    start: DateTime<Utc>,
    minutes: i64,
    rng: &mut Rng,
    samples: bool,
) -> NewActivity {
    let t0 = start.timestamp_millis();
    let mut hr = 100.0f64;
    let series = if samples {
        let pts = (0..minutes * 60)
            .map(|s| {
                let target = if s < 300 { 110.0 } else { 125.0 + (rng.below(40)) as f64 };
                hr += (target - hr) * 0.05;
                Sample { t_ms: t0 + s * 1000, value: hr.round() }
            })
            .collect();
        vec![Series { kind: SeriesKind::Hr, samples: pts }]
    } else {
        Vec::new()
    };
    NewActivity {
        client_id: client,
        external_id: id,
        start,
        end: start + Duration::minutes(minutes),
        utc_offset_s: 3600,
        activity_type: ty.into(),
        category: coachd::activity_types::category(ty),
        duration_s: (minutes * 60) as f64,
        distance_m: None,
        avg_hr: Some(130.0),
        max_hr: Some(165),
        energy_kj: None,
        content_hash: None,
        series,
        sets: None,
        hr_zones: None,
    }
}

async fn populate(store: &Store, clients: usize, first: NaiveDate, days: i64) -> usize {
    let tz = chrono_tz::Europe::Berlin;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut samples = 0;
    for c in 0..clients {
        let client = store
            .add_client(&NewClient::parse(&format!("client{c:03}"), "Europe/Berlin", Some(185), None).expect("client"))
            .await
            .expect("add")
            .id;
        for p in PHRASES {
            let rule = coachd::engine::phrase::parse(p).expect("phrase");
            store.add_homework(client, &rule, first, None).await.expect("homework");
        }
        for week in 0..(days / 7) {
            let mut watch = Batch::new("fit");
            let mut strava = Batch::new("strava");
            let mut daily = Batch::new("oura");
            for day in 0..7 {
                let d = first + Duration::days(week * 7 + day);
                let at = |h, m| {
                    tz.from_local_datetime(&d.and_hms_opt(h, m, 0).expect("time"))
                        .earliest()
                        .expect("local")
                        .with_timezone(&Utc)
                };
                if rng.below(7) < 4 {
                    let minutes = 25 + rng.below(35) as i64;
                    let ty = if rng.below(2) == 0 { "run" } else { "ride" };
                    let w = workout(
                        client,
                        format!("w{c}-{week}-{day}"),
                        ty,
                        at(7 + rng.below(12) as u32, 0),
                        minutes,
                        &mut rng,
                        true,
                    );
                    samples += w.series[0].samples.len();
                    if rng.below(3) == 0 {
                        // The same workout again from Strava, without samples: dedup must merge it.
                        let mut dup = w.clone();
                        dup.series.clear();
                        dup.external_id = format!("s{c}-{week}-{day}");
                        strava.activities.push(dup);
                    }
                    watch.activities.push(w);
                }
                if rng.below(7) < 5 {
                    let start = at(21, rng.below(60) as u32);
                    let mut s = workout(client, format!("p{c}-{week}-{day}"), "strength", start, 5, &mut rng, false);
                    s.sets = Some(vec![StrengthSet {
                        start: Some(start),
                        duration_s: Some(60.0),
                        exercise: "push_up".into(),
                        set_type: SetType::Active,
                        reps: Some(6 + rng.below(8) as u32),
                        weight_kg: None,
                    }]);
                    watch.activities.push(s);
                }
                daily.daily.push(DailyMetric {
                    client_id: client,
                    date: d,
                    metric: Metric::Steps,
                    value: (4000 + rng.below(8000)) as f64,
                });
                daily.daily.push(DailyMetric {
                    client_id: client,
                    date: d,
                    metric: Metric::SleepS,
                    value: (20_000 + rng.below(10_000)) as f64,
                });
            }
            for b in [watch, strava, daily] {
                store.ingest(&b).await.expect("ingest");
            }
        }
    }
    samples
}

fn main() {
    let clients: usize = std::env::var("COACHD_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::new(dir.path().join("data"));
        let mut config = Config::default();
        config.store.synchronous = Synchronous::Normal; // setup speed only; figures below are reads
        let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("init");
        let days = 364;
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        let first = today - Duration::days(days - 1);
        let now = chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 11, 22, 23, 0, 0).single().expect("now").with_timezone(&Utc);
        let t = Instant::now();
        let samples = populate(&store, clients, first, days).await;
        let counts = store.row_counts().await.expect("counts");
        println!(
            "data: {clients} clients × {} homework × {days} days; {} activities, {samples} HR samples, {} daily metrics (setup {:.1} s)\n",
            PHRASES.len(),
            counts.activities,
            counts.daily_metrics,
            t.elapsed().as_secs_f64()
        );
        let cfg = config.homework.judge_config();
        let all = store.list_clients().await.expect("clients");

        // 1. Pure engine: evidence already in memory.
        let mut loaded = Vec::new();
        let t = Instant::now();
        for c in &all {
            let tz = c.tz;
            let hw: Vec<_> = store.list_homework(Some(c.id)).await.expect("hw").into_iter().map(|r| r.homework).collect();
            loaded.push((c, tz, hw, store.evidence(c.id, tz, first, today + Duration::days(7)).await.expect("evidence")));
        }
        let load_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut n = 0;
        for (c, tz, hw, ev) in &loaded {
            for h in hw {
                for d in h.occurrence_dates(first, today) {
                    std::hint::black_box(judge(h, &cfg, *tz, hr_max(c, today), d, ev, now));
                    n += 1;
                }
            }
        }
        let judge_s = t.elapsed().as_secs_f64();
        println!("{:<58} {:>9} {:>12}", "", "time", "per verdict");
        println!("{:<58} {:>7.0} ms", "load evidence of every client from SQLite", load_s * 1e3);
        println!("{:<58} {:>7.0} ms {:>9.2} µs", format!("judge {n} occurrences in memory (pure engine)"), judge_s * 1e3, judge_s * 1e6 / n as f64);

        // 2. From scratch through the store, verdict cache cold.
        let t = Instant::now();
        let (_, stats) = status(&store, &cfg, 0.2, &all, first, today, now).await.expect("status");
        let cold = t.elapsed().as_secs_f64();
        println!("{:<58} {:>7.0} ms {:>9.2} µs", format!("status from scratch: load, judge {}, cache", stats.judged), cold * 1e3, cold * 1e6 / stats.judged.max(1) as f64);
        let week = today - Duration::days(6);
        for (label, from) in [("a year shown", first), ("a week shown", week)] {
            let t = Instant::now();
            let (_, stats) = status(&store, &cfg, 0.2, &all, from, today, now).await.expect("status");
            println!(
                "{:<58} {:>7.0} ms",
                format!("status, cache warm, {label} ({} judged, {} cached)", stats.judged, stats.cached),
                t.elapsed().as_secs_f64() * 1e3
            );
        }

        // 3. One new activity for one client, then that client's status.
        let one = &all[all.len() / 2];
        let mut rng = Rng(7);
        let late = workout(one.id, "late".into(), "run", now - Duration::days(3), 40, &mut rng, true);
        let t = Instant::now();
        store.ingest(&Batch { activities: vec![late], ..Batch::new("strava") }).await.expect("ingest");
        let ingest_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let (_, stats) = status(&store, &cfg, 0.2, std::slice::from_ref(one), week, today, now).await.expect("status");
        println!("{:<58} {:>7.1} ms", "ingest one new 40-minute activity with per-second HR", ingest_ms);
        println!(
            "{:<58} {:>7.1} ms",
            format!("re-judge that client, a week shown ({} invalidated, {} judged)", stats.invalidated, stats.judged),
            t.elapsed().as_secs_f64() * 1e3
        );
        store.close().await;
    });
}
