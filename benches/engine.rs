//! Homework engine benchmark: 200 clients × 4 homework × 364 days of realistic data.
//!
//! Prints: the pure engine judging everything from evidence in memory; the same from
//! scratch through the store (load evidence, judge, write the verdict cache); a warm
//! status run; and re-judging after one new activity arrives. Then a scaling table for
//! 200, 1,000 and 5,000 clients (each size in its own process, so its peak memory is its
//! own): from-scratch and warm status, the roster's status, peak RSS and database size.
//! The table's data is 50 clients made through ingest, copied in bulk to each size (new
//! ids and names, every row the engine reads; the per-second samples are not copied, as
//! the engine reads the histograms kept beside them).
//!
//!     cargo bench --bench engine            # COACHD_BENCH_CLIENTS=50 for a quicker run
//!     COACHD_BENCH_SCALE=200,1000 cargo bench --bench engine   # sizes of the table; 0 skips it
//!     COACHD_BENCH_BIN=target/dist/coachd cargo bench --bench engine   # startup of that binary
//!     COACHD_BENCH_DATA=/var/tmp/coachd-bench cargo bench --bench engine   # keep the made data
//!         # there, and use it again on the next run (of the same size) instead of making it
//!     COACHD_BENCH_POSTGRES=postgres://USER@HOST/EMPTY_DB cargo bench --bench engine
//!         # the same data copied into PostgreSQL (as `coachd migrate` does), and the same
//!         # status runs there, beside SQLite's

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

/// Copy the first `base` clients (and everything the engine reads of theirs) until there
/// are `n`, in bulk: a few statements per copy.
async fn replicate(db: &std::path::Path, base: i64, n: i64) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db).foreign_keys(true))
        .await
        .expect("open");
    let max = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
                .fetch_one(&pool)
                .await
                .expect("max")
        }
    };
    let (clients, activities, homework) = (max("clients").await, max("activities").await, max("homework").await);
    let copies = (n + base - 1) / base;
    for k in 1..copies {
        let last = base.min(n - k * base);
        let (c, a, h) = (k * clients, k * activities, k * homework);
        let statements = [
            format!(
                "INSERT INTO clients (id, name, tz, hr_max, birth_year, trainer_id, created_ms)
                 SELECT id + {c}, name || '.{k}', tz, hr_max, birth_year, trainer_id, created_ms FROM clients
                 WHERE id <= {last}"
            ),
            format!(
                "INSERT INTO homework (id, client_id, text, rule, from_date, until_date, created_ms)
                 SELECT id + {h}, client_id + {c}, text, rule, from_date, until_date, created_ms FROM homework
                 WHERE client_id <= {last}"
            ),
            format!(
                "INSERT INTO activities (id, client_id, source, external_id, start_ms, end_ms, utc_offset_s, type,
                    category, duration_s, distance_m, avg_hr, max_hr, energy_kj, content_hash, hr_hist, hr_samples,
                    updated_ms, hr_zones)
                 SELECT id + {a}, client_id + {c}, source, external_id || '.{k}', start_ms, end_ms, utc_offset_s, type,
                    category, duration_s, distance_m, avg_hr, max_hr, energy_kj, content_hash, hr_hist, hr_samples,
                    updated_ms, hr_zones
                 FROM activities WHERE client_id <= {last}"
            ),
            format!(
                "INSERT INTO strength_sets (activity_id, seq, start_ms, duration_s, exercise, set_type, reps, weight_kg)
                 SELECT s.activity_id + {a}, s.seq, s.start_ms, s.duration_s, s.exercise, s.set_type, s.reps,
                    s.weight_kg
                 FROM strength_sets s JOIN activities x ON x.id = s.activity_id WHERE x.client_id <= {last}"
            ),
            format!(
                "INSERT INTO daily_metrics (client_id, date, metric, source, value, updated_ms)
                 SELECT client_id + {c}, date, metric, source, value, updated_ms FROM daily_metrics
                 WHERE client_id <= {last}"
            ),
        ];
        let mut tx = pool.begin().await.expect("begin");
        for q in statements {
            sqlx::query(&q).execute(&mut *tx).await.expect("copy");
        }
        tx.commit().await.expect("commit");
    }
    pool.close().await;
}

/// `coachd run` on the data just made: the time to the first 200 on `/healthz`, then the
/// RSS once it is idle, and the size of the binary.
fn startup(data: &DataDir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    // COACHD_BENCH_BIN measures another build of the same version, e.g. the packaging
    // profile's (`cargo build --profile dist`, target/dist/coachd).
    let exe = std::env::var("COACHD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_coachd").to_string());
    let exe = exe.as_str();
    let t = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env("COACHD_DATA_DIR", data.root())
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent") // no Bluetooth here
        .env("MALLOC_ARENA_MAX", "2") // as the systemd unit runs it
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn coachd run");
    let mut ready = None;
    while t.elapsed() < std::time::Duration::from_secs(30) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.ends_with(b"200") {
                ready = Some(t.elapsed());
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Idle: at least 35 s after start (past the first watchdog round, which gives freed
    // heap back), and no CPU used for 3 s (the first daily backup, which a new data dir
    // makes at start, has finished), within 3 minutes.
    let cpu = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // utime and stime, the 14th and 15th fields, counted after the command's ")".
        let rest = stat.rsplit_once(')').map_or("", |r| r.1);
        rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum::<u64>()
    };
    let (mut last, mut quiet) = (cpu(child.id()), 0);
    while t.elapsed() < std::time::Duration::from_secs(180) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = cpu(child.id());
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
        if quiet >= 6 && t.elapsed() >= std::time::Duration::from_secs(35) {
            break;
        }
    }
    let idle_after = t.elapsed().as_secs_f64();
    // RssAnon is the daemon's own memory; RssFile is the code of the binary it has mapped
    // (clean pages the kernel can drop and read again), which a smaller binary shrinks.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
    };
    let rss = format!("{} (anon {}, file {})", field("VmRSS:"), field("RssAnon:"), field("RssFile:"));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let size = std::fs::metadata(exe).map(|m| m.len()).unwrap_or(0);
    match ready {
        Some(d) => {
            println!("{:<58} {:>7.0} ms", "coachd run on this data: first 200 on /healthz", d.as_secs_f64() * 1e3)
        }
        None => println!("coachd run on this data: no 200 on /healthz within 30 s"),
    }
    println!("{:<58} {rss}", format!("idle RSS ({idle_after:.0} s after start, 3 s without CPU)"));
    println!("{:<58} {:>7.1} MB  ({exe})", "binary size (this profile)", size as f64 / 1e6);
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        })
        .unwrap_or(0)
}

struct Setup {
    _dir: tempfile::TempDir,
    data: DataDir,
    config: Config,
    first: NaiveDate,
    today: NaiveDate,
    now: DateTime<Utc>,
    days: i64,
}

fn setup(keep: bool) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = match std::env::var_os("COACHD_BENCH_DATA").filter(|_| keep) {
        Some(kept) => DataDir::new(std::path::PathBuf::from(kept)),
        None => DataDir::new(dir.path().join("data")),
    };
    let mut config = Config::default();
    config.store.synchronous = Synchronous::Normal; // setup speed only; figures below are reads
    let days = 364;
    let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
    let first = today - Duration::days(days - 1);
    let now =
        chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 11, 22, 23, 0, 0).single().expect("now").with_timezone(&Utc);
    Setup { _dir: dir, data, config, first, today, now, days }
}

/// One row of the scaling table, in this process: prints `SCALE` and its figures.
async fn scale_row(n: usize) {
    let s = setup(false);
    let (store, _) = coachd::init::init(&s.data, &s.data.default_config(), &s.config).await.expect("init");
    let t = Instant::now();
    // Fifty clients made through ingest, copied in bulk to the size asked.
    let base = n.min(50);
    populate(&store, base, s.first, s.days).await;
    store.close().await;
    if n > base {
        replicate(&s.data.database(), base as i64, n as i64).await;
    }
    let setup_s = t.elapsed().as_secs_f64();
    let (store, _) = coachd::init::init(&s.data, &s.data.default_config(), &s.config).await.expect("init");
    // The peak from here on: what status costs, not what generating the data did.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cfg = s.config.homework.judge_config();
    let all = store.list_clients().await.expect("clients");
    assert_eq!(all.len(), n, "clients");
    let week = s.today - Duration::days(6);
    let timed = |from: NaiveDate, to: NaiveDate| {
        let (store, cfg, all) = (&store, &cfg, &all);
        async move {
            let t = Instant::now();
            let (report, stats) = status(store, cfg, 0.2, all, from, to, s.now).await.expect("status");
            std::hint::black_box(report);
            (t.elapsed().as_secs_f64() * 1e3, stats)
        }
    };
    let (cold, stats) = timed(week, s.today).await;
    let (warm, _) = timed(week, s.today).await;
    let (roster, _) = timed(s.today, s.today).await;
    let rss = peak_rss_kb();
    store.close().await;
    let db: u64 = ["", "-wal"]
        .iter()
        .filter_map(|x| std::fs::metadata(format!("{}{x}", s.data.database().display())).ok())
        .map(|m| m.len())
        .sum();
    println!("SCALE {n} {setup_s:.1} {cold:.0} {warm:.1} {roster:.1} {rss} {db} {}", stats.judged);
}

/// The SQLite store's data copied into an empty PostgreSQL database, and the status runs
/// of the SQLite section there.
async fn on_postgres(
    sqlite: &Store,
    url: &str,
    config: &Config,
    all: &[coachd::store::Client],
    (first, week, today, now): (NaiveDate, NaiveDate, NaiveDate, DateTime<Utc>),
) {
    let pg =
        coachd::store::PgOptions { url: url.to_string(), password: None, statement_timeout: std::time::Duration::ZERO };
    let target = Store::open_postgres(&pg, &config.store.options(), sqlite.cipher().clone()).await.expect("PostgreSQL");
    let t = Instant::now();
    let copied = sqlite.copy_into(&target, false, |_, _| {}).await.expect("copy into PostgreSQL (an empty database?)");
    let rows: u64 = copied.iter().map(|(_, n)| n).sum();
    let copy_s = t.elapsed().as_secs_f64();
    println!("\nPostgreSQL ({}), the same data:", pg.shown());
    println!(
        "{:<58} {:>7.0} ms {:>9.0} rows/s",
        format!("copy {rows} rows into it (coachd migrate)"),
        copy_s * 1e3,
        rows as f64 / copy_s
    );
    // Cold: the copied verdict cache dropped (as a settings change drops it).
    target.check_verdict_settings("bench: cold").await.expect("drop the cache");
    let cfg = config.homework.judge_config();
    let t = Instant::now();
    let (_, stats) = status(&target, &cfg, 0.2, all, first, today, now).await.expect("status");
    let cold = t.elapsed().as_secs_f64();
    println!(
        "{:<58} {:>7.0} ms {:>9.2} µs",
        format!("status from scratch: load, judge {}, cache", stats.judged),
        cold * 1e3,
        cold * 1e6 / stats.judged.max(1) as f64
    );
    for (label, from) in [("a year shown", first), ("a week shown", week)] {
        let t = Instant::now();
        let (_, stats) = status(&target, &cfg, 0.2, all, from, today, now).await.expect("status");
        println!(
            "{:<58} {:>7.0} ms",
            format!("status, cache warm, {label} ({} judged, {} cached)", stats.judged, stats.cached),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let one = &all[all.len() / 2];
    let mut rng = Rng(8);
    let late = workout(one.id, "late-pg".into(), "run", now - Duration::days(3), 40, &mut rng, true);
    let t = Instant::now();
    target.ingest(&Batch { activities: vec![late], ..Batch::new("strava") }).await.expect("ingest");
    println!(
        "{:<58} {:>7.1} ms",
        "ingest one new 40-minute activity with per-second HR",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let (_, stats) = status(&target, &cfg, 0.2, std::slice::from_ref(one), week, today, now).await.expect("status");
    println!(
        "{:<58} {:>7.1} ms",
        format!("re-judge that client, a week shown ({} invalidated, {} judged)", stats.invalidated, stats.judged),
        t.elapsed().as_secs_f64() * 1e3
    );
    target.close().await;
}

fn main() {
    // COACHD_BENCH_TRACE=debug prints each status chunk's phases (cache read, evidence,
    // judging, cache write) to stderr.
    if let Ok(level) = std::env::var("COACHD_BENCH_TRACE") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!("coachd::status={level}")))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Some(n) = std::env::var("COACHD_BENCH_SCALE_ROW").ok().and_then(|v| v.parse().ok()) {
        rt.block_on(scale_row(n));
        return;
    }
    let clients: usize = std::env::var("COACHD_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    rt.block_on(async {
        let Setup { _dir, data, config, first, today, now, days } = setup(true);
        let kept = data.database().exists();
        let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("init");
        let t = Instant::now();
        let samples = if kept { 0 } else { populate(&store, clients, first, days).await };
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
        let ids: Vec<_> = all.iter().map(|c| c.id).collect();
        let mut homework = store.homework_of(&ids).await.expect("homework");
        // As status reads it: a chunk of clients at a time, five statements per chunk.
        for chunk in all.chunks(250) {
            let wanted: Vec<_> = chunk.iter().map(|c| (c.id, c.tz, first, today + Duration::days(7))).collect();
            let mut evidence = store.evidence_of(&wanted).await.expect("evidence");
            for c in chunk {
                let hw = homework.remove(&c.id).unwrap_or_default();
                loaded.push((c, c.tz, hw, evidence.remove(&c.id).unwrap_or_default()));
            }
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

        // 2. From scratch through the store, verdict cache cold (dropped, as a settings
        // change drops it, when the data was kept from an earlier run).
        store.check_verdict_settings("bench: cold").await.expect("drop the cache");
        let t = Instant::now();
        let (_, stats) = status(&store, &cfg, 0.2, &all, first, today, now).await.expect("status");
        let cold = t.elapsed().as_secs_f64();
        println!("{:<58} {:>7.0} ms {:>9.2} µs", format!("status from scratch: load, judge {}, cache", stats.judged), cold * 1e3, cold * 1e6 / stats.judged.max(1) as f64);
        let week = today - Duration::days(6);
        // Warm runs vary by a third from one to the next on a small machine: five of each,
        // the median with the fastest and slowest.
        for (label, from) in [("a year shown", first), ("a week shown", week)] {
            let mut times = Vec::new();
            let mut stats = Default::default();
            for _ in 0..5 {
                let t = Instant::now();
                stats = status(&store, &cfg, 0.2, &all, from, today, now).await.expect("status").1;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{:<58} {:>7.0} ms  (5 runs: {:.0}–{:.0})",
                format!("status, cache warm, {label} ({} judged, {} cached)", stats.judged, stats.cached),
                times[2],
                times[0],
                times[4]
            );
        }

        // For a profiler: one of the runs above again and again, COACHD_BENCH_AGAIN=KIND:N
        // with KIND cold, year or week.
        if let Some((kind, n)) = std::env::var("COACHD_BENCH_AGAIN").ok().as_deref().and_then(|v| v.split_once(':')) {
            for i in 0..n.parse::<usize>().unwrap_or(0) {
                if kind == "cold" {
                    store.check_verdict_settings(&format!("bench: again {i}")).await.expect("drop the cache");
                }
                let from = if kind == "week" { week } else { first };
                std::hint::black_box(status(&store, &cfg, 0.2, &all, from, today, now).await.expect("status"));
            }
        }

        // 3. One new activity for one client, then that client's status.
        let one = &all[all.len() / 2];
        let mut rng = Rng(7);
        let late_id = format!("late-{}", Utc::now().timestamp_millis()); // new on kept data too
        let late = workout(one.id, late_id, "run", now - Duration::days(3), 40, &mut rng, true);
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
        if let Ok(url) = std::env::var("COACHD_BENCH_POSTGRES") {
            on_postgres(&store, &url, &config, &all, (first, week, today, now)).await;
        }
        store.close().await;
        startup(&data);
    });

    let sizes = std::env::var("COACHD_BENCH_SCALE").unwrap_or_else(|_| "200,1000,5000".into());
    let sizes: Vec<usize> = sizes.split(',').filter_map(|v| v.trim().parse().ok()).filter(|n| *n > 0).collect();
    if sizes.is_empty() {
        return;
    }
    println!("\nscaling: N clients × 4 homework × 1 year; status with a week shown (cold: cache empty, judges the");
    println!("180 days adherence needs; warm: cached), the roster's status (today only), peak RSS of that process");
    println!("from after the setup, database size\n");
    println!(
        "{:>7} {:>9} {:>11} {:>9} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "clients", "setup", "cold", "judged", "µs/verdict", "warm", "roster", "peak RSS", "database"
    );
    let exe = std::env::current_exe().expect("exe");
    for n in sizes {
        let out = std::process::Command::new(&exe).env("COACHD_BENCH_SCALE_ROW", n.to_string()).output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("SCALE ")) else {
            println!("{n:>7} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
            continue;
        };
        let f: Vec<f64> = line.split(' ').filter_map(|v| v.parse().ok()).collect();
        if let [_, setup, cold, warm, roster, rss, db, judged] = f[..] {
            println!(
                "{n:>7} {setup:>7.1} s {cold:>8.0} ms {judged:>9.0} {:>10.2} {warm:>7.1} ms {roster:>6.1} ms {:>6.0} MB {:>7.0} MB",
                cold * 1e3 / judged.max(1.0),
                rss / 1024.0,
                db / 1e6
            );
        }
    }
}
