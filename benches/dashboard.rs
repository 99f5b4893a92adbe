//! Dashboard benchmark: the roster page for one trainer with 200 clients (3 homework
//! each, 90 days of steps, runs and push-ups), under 20 concurrent connections.
//!
//!     cargo bench --bench dashboard
//!     COACHD_BENCH_POSTGRES=postgres://USER@HOST/EMPTY_DB cargo bench --bench dashboard
//!         # also on PostgreSQL, with one and with two replicas (two web servers, each with
//!         # its own pool and caches, on the one database; the connections split between them)
//!
//! Prints the cold roster (judging every client, what the cache saves), then latency
//! p50/p99 measured two ways side by side: wrk (if installed: apt-get install wrk) and a
//! built-in load generator (20 tasks over reqwest, keep-alive), each for 10 seconds.

use chrono::{Duration, TimeZone, Utc};
use coachd::config::Config;
use coachd::model::{Batch, DailyMetric, Metric, NewActivity, SetType, StrengthSet};
use coachd::paths::DataDir;
use coachd::source::Health;
use coachd::store::NewClient;
use coachd::web::{router, WebState};
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: usize = 200;
const CONCURRENCY: usize = 20;
const SECONDS: u64 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    println!("== SQLite (the embedded default)");
    bench(Config::default(), 1).await?;
    if let Ok(url) = std::env::var("COACHD_BENCH_POSTGRES") {
        for replicas in [1, 2] {
            // An empty database each time: the schema dropped and made again.
            let mut config = Config::default();
            config.store.url = url.clone();
            empty_postgres(&url).await?;
            println!("\n== PostgreSQL, {replicas} replica(s)");
            bench(config, replicas).await?;
        }
    }
    Ok(())
}

/// Drop everything in the bench's PostgreSQL database.
async fn empty_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query("DROP SCHEMA public CASCADE").execute(&mut c).await?;
    sqlx::query("CREATE SCHEMA public").execute(&mut c).await?;
    c.close().await?;
    Ok(())
}

/// A web server on `store` (a replica: its own app, sessions served from the store, its
/// own roster cache); its base URL.
async fn serve(store: coachd::store::Store, config: &Config) -> anyhow::Result<String> {
    let app = coachd::app::App::new(store, Arc::new(config.clone())).expect("providers");
    let state = WebState::for_app(app, Health::default());
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

async fn bench(config: Config, replicas: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await?;
    let (trainer, _) = store.upsert_trainer("coach", &coachd::crypto::hash_password("bench password")?).await?;
    let now = Utc::now();
    let t = Instant::now();
    for i in 0..CLIENTS {
        let c = store
            .add_client(
                &NewClient::parse(&format!("client{i:03}"), "Europe/Berlin", Some(185), None)
                    .map_err(|p| anyhow::anyhow!(p.join("; ")))?,
            )
            .await?;
        store.set_client_trainer(c.id, Some(trainer.id)).await?;
        let first = now.date_naive() - Duration::days(90);
        for phrase in ["15 minutes of cardio", "8000 steps a day", "10 push-ups every night"] {
            store
                .add_homework(c.id, &coachd::engine::phrase::parse(phrase).map_err(anyhow::Error::msg)?, first, None)
                .await?;
        }
        let mut batch = Batch::new("bench");
        for d in 0..90i64 {
            let day = first + Duration::days(d);
            let seed = (i as i64 * 31 + d * 7) % 10;
            batch.daily.push(DailyMetric {
                client_id: c.id,
                date: day,
                metric: Metric::Steps,
                value: 5000.0 + 700.0 * seed as f64,
            });
            let noon = chrono_tz::Europe::Berlin
                .from_local_datetime(&day.and_hms_opt(12, 0, 0).expect("time"))
                .earliest()
                .expect("time")
                .with_timezone(&Utc);
            if seed < 7 {
                batch.activities.push(activity(
                    c.id,
                    format!("run-{i}-{d}"),
                    "run",
                    noon,
                    10.0 + 3.0 * seed as f64,
                    None,
                ));
            }
            if seed < 8 {
                let night = noon + Duration::hours(9);
                batch.activities.push(activity(
                    c.id,
                    format!("pu-{i}-{d}"),
                    "strength",
                    night,
                    3.0,
                    Some(6 + seed as u32),
                ));
            }
        }
        store.ingest(&batch).await?;
    }
    println!("data: {CLIENTS} clients × 3 homework × 90 days written in {:.1} s", t.elapsed().as_secs_f64());

    let base = serve(store.clone(), &config).await?;
    // Further replicas: each opens the database for itself, as another coachd would.
    let mut bases = vec![base.clone()];
    let mut others = Vec::new();
    for _ in 1..replicas {
        let (other, _) = coachd::init::init(&data, &data.default_config(), &config).await?;
        bases.push(serve(other.clone(), &config).await?);
        others.push(other);
    }

    // Log in as a browser would.
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let page = http.get(format!("{base}/login")).send().await?.text().await?;
    let csrf = field(&page).ok_or_else(|| anyhow::anyhow!("no csrf on the login page"))?;
    let r = http
        .post(format!("{base}/login"))
        .form(&[("csrf", csrf.as_str()), ("name", "coach"), ("password", "bench password")])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("coachd_session="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_string();

    let t = Instant::now();
    let first = http.get(format!("{base}/roster")).send().await?;
    let body = first.text().await?;
    println!(
        "cold roster (judges all {CLIENTS} clients' 180 days, fills the verdict cache): {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    assert!(body.matches("<tr").count() > CLIENTS, "the roster lists every client");
    let mut warm = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        http.get(format!("{base}/api/clients")).send().await?.bytes().await?;
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("(for comparison, /api/clients from the same cache: {:.1} ms)", warm.iter().sum::<f64>() / 5.0);

    // The other replicas' first rosters (their caches are their own).
    for b in &bases[1..] {
        let r = http.get(format!("{b}/roster")).send().await?;
        anyhow::ensure!(r.status().is_success(), "the session of one replica is a session on the others");
        r.bytes().await?;
    }
    println!(
        "\nroster page, {CLIENTS} clients, {CONCURRENCY} connections over {replicas} replica(s), {SECONDS} s each:"
    );
    println!("{:<34} {:>10} {:>10} {:>10} {:>12}", "load generator", "requests/s", "p50 ms", "p99 ms", "max ms");
    match std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONCURRENCY}"),
            &format!("-d{SECONDS}s"),
            "--latency",
            "-H",
            &format!("Cookie: {cookie}"),
        ])
        .arg(format!("{base}/roster"))
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |label: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("?")
                    .to_string()
            };
            let max = text
                .lines()
                .find(|l| l.trim_start().starts_with("Latency"))
                .and_then(|l| l.split_whitespace().nth(3))
                .unwrap_or("?");
            let rps = text
                .lines()
                .find(|l| l.starts_with("Requests/sec"))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?");
            let non2xx = text.lines().find(|l| l.contains("Non-2xx")).unwrap_or("");
            println!(
                "{:<34} {:>10} {:>10} {:>10} {:>12} {non2xx}",
                "wrk -t2 (keep-alive)",
                rps,
                pick("50%"),
                pick("99%"),
                max
            );
        }
        Ok(out) => println!("wrk failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(_) => println!("{:<34} (not installed: apt-get install wrk)", "wrk"),
    }
    // The built-in generator.
    let deadline = Instant::now() + std::time::Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for k in 0..CONCURRENCY {
        let http = http.clone();
        let url = format!("{}/roster", bases[k % bases.len()]);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match http.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                assert!(ok, "a roster request failed");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{:<34} {:>10.0} {:>10.2} {:>10.2} {:>12.2}",
        format!("reqwest ×{CONCURRENCY} tasks (same process)"),
        all.len() as f64 / SECONDS as f64,
        q(0.5),
        q(0.99),
        all[all.len() - 1]
    );
    store.close().await;
    for o in others {
        o.close().await;
    }
    Ok(())
}

fn field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().map(str::to_string)
}

fn activity(
    client: i64,
    id: String,
    ty: &str,
    start: chrono::DateTime<Utc>,
    minutes: f64,
    reps: Option<u32>,
) -> NewActivity {
    NewActivity {
        client_id: client,
        external_id: id,
        start,
        end: start + Duration::seconds((minutes * 60.0) as i64),
        utc_offset_s: 3600,
        activity_type: ty.into(),
        category: coachd::activity_types::category(ty),
        duration_s: minutes * 60.0,
        distance_m: None,
        avg_hr: None,
        max_hr: None,
        energy_kj: None,
        content_hash: None,
        series: Vec::new(),
        sets: reps.map(|r| {
            vec![StrengthSet {
                start: Some(start),
                duration_s: Some(40.0),
                exercise: "push_up".into(),
                set_type: SetType::Active,
                reps: Some(r),
                weight_kg: None,
            }]
        }),
        hr_zones: None,
    }
}
