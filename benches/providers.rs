//! Provider backfill benchmarks. Strava: 1,000 activities with heart-rate streams, synced
//! through the real sync code against the fake Strava of the test suite (same documented
//! shapes, Strava's read limits of 100 per 15 minutes and 1,000 per day, on a simulated
//! clock). Prints requests used against the theoretical minimum and the simulated wall
//! time against the fastest any client could finish within the limits, for a few start
//! times and for three athletes sharing the application's budget. Oura: a 90-day
//! backfill (45 workouts with their heart rate, 90 days of steps, 90 nights) against the
//! fake Oura, at the 5,000 per 5 minutes coachd keeps to and at a budget of 25. Withings:
//! the same 90 days (45 workouts with the heart rate a watch records every second, 90
//! days of steps, 90 nights) against the fake Withings, at its 120 requests a minute and
//! at a budget of 20. WHOOP: 90-day backfills (45 workouts with their zone durations,
//! 90 nights) against the fake WHOOP under its limits of 100 requests a minute and
//! 10,000 a day, for one client and for many sharing the application.
//!
//!     cargo bench --bench providers

#[path = "../tests/it/fake_strava.rs"]
#[allow(dead_code)]
mod fake_strava;

#[path = "../tests/it/fake_oura.rs"]
#[allow(dead_code)]
mod fake_oura;

#[path = "../tests/it/fake_whoop.rs"]
#[allow(dead_code)]
mod fake_whoop;

#[path = "../tests/it/fake_withings.rs"]
#[allow(dead_code)]
mod fake_withings;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coachd::config::Config;
use coachd::paths::DataDir;
use coachd::providers::clock::Clock;
use coachd::providers::sync::sync_all;
use coachd::providers::{oauth, Registry};
use coachd::source::Health;
use coachd::store::NewClient;
use coachd::web::{router, WebState};
use std::sync::Arc;
use std::time::Instant;

const PER_ATHLETE: i64 = 1000;

/// The earliest moment `n` requests can all have been sent from `start` under 100 per
/// aligned 15 minutes and 1,000 per UTC day (a greedy sender).
fn ideal_finish(start: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    let (mut t, mut sent) = (start, 0u32);
    let (mut q, mut d) = (0u32, 0u32);
    let (mut qw, mut dw) = (t.timestamp() / 900, t.timestamp() / 86400);
    while sent < n {
        if t.timestamp() / 900 != qw {
            qw = t.timestamp() / 900;
            q = 0;
        }
        if t.timestamp() / 86400 != dw {
            dw = t.timestamp() / 86400;
            d = 0;
        }
        if q < 100 && d < 1000 {
            q += 1;
            d += 1;
            sent += 1;
        } else if d >= 1000 {
            t = DateTime::from_timestamp((dw + 1) * 86400, 0).unwrap_or(t);
        } else {
            t = DateTime::from_timestamp((qw + 1) * 900, 0).unwrap_or(t);
        }
    }
    t
}

async fn run(start: DateTime<Utc>, athletes: i64) -> anyhow::Result<()> {
    let fake = fake_strava::start(start).await;
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &Config::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = fake_strava::config(&fake, &base);
    config.providers.backfill_days = 600;
    let reg = Arc::new(Registry::new(&config, fake.clock.clone()).map_err(anyhow::Error::msg)?);
    let app = router(WebState::for_app(
        coachd::app::App::from_parts(store.clone(), Arc::new(config), reg.clone()),
        Health::default(),
    ))
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    // Every athlete's activities (ids apart), each connected through the OAuth flow.
    for a in 0..athletes {
        let c = store
            .add_client(
                &NewClient::parse(&format!("athlete{a}"), "Europe/Berlin", None, None)
                    .map_err(|p| anyhow::anyhow!(p.join("; ")))?,
            )
            .await?;
        {
            let mut s = fake.lock();
            for i in 0..PER_ATHLETE {
                let id = (a + 1) * 10_000_000 + i;
                let start = start - Duration::hours(1 + 12 * i);
                s.activities.insert(
                    id,
                    fake_strava::FakeActivity {
                        id,
                        start,
                        minutes: 30,
                        sport: "Run".into(),
                        hr: true,
                        name: String::new(),
                    },
                );
                s.owner.insert(id, 100 + a);
            }
        }
        let link = oauth::authorization_link(&reg, &store, "strava", c.id).await.map_err(anyhow::Error::msg)?;
        let state = url::Url::parse(&link)?
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let code = fake.issue_code_for(100 + a);
        http.get(format!("{base}/oauth/strava/callback"))
            .query(&[("state", state.as_str()), ("code", code.as_str()), ("scope", "read,activity:read_all")])
            .send()
            .await?;
    }
    let accounts = store.accounts().await?;
    let wall = Instant::now();
    let results = sync_all(&reg, &store, &accounts, &tokio_util::sync::CancellationToken::new()).await;
    let real = wall.elapsed();
    let took = fake.clock.now() - start;
    let (requests, limited) = {
        let s = fake.lock();
        (s.api_requests, s.limited)
    };
    let inserted: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.inserted).sum();
    let total = (PER_ATHLETE * athletes) as u32;
    // Minimum: one stream per activity, pages of 200 (the page after a full last page is
    // the only way to learn the list ended), per athlete.
    let pages = (PER_ATHLETE as u32).div_ceil(200) + u32::from(PER_ATHLETE % 200 == 0);
    let minimum = athletes as u32 * (PER_ATHLETE as u32 + pages);
    let ideal = ideal_finish(start, minimum) - start;
    let hours = |d: Duration| d.num_seconds() as f64 / 3600.0;
    println!(
        "{:<22} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>9}",
        format!("{} × {athletes}, start {}", PER_ATHLETE, start.format("%H:%M")),
        inserted,
        requests,
        minimum,
        limited,
        format!("{:.2} h", hours(took)),
        format!("{:.2} h", hours(ideal)),
        format!("{:.1} s", real.as_secs_f64())
    );
    assert_eq!(inserted as u32, total.min(inserted as u32));
    store.close().await;
    Ok(())
}

/// A 90-day Oura backfill of one client under a budget of `limit` requests per 5 minutes
/// (known to coachd through the manifest, enforced by the fake).
async fn oura(limit: u32) -> anyhow::Result<()> {
    use chrono::{FixedOffset, TimeZone};
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time");
    let fake = fake_oura::start(start).await;
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &Config::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = fake_oura::config(&fake, &base);
    config.providers.backfill_days = 90;
    let mut window = toml::Table::new();
    window.insert("name".into(), "5min".into());
    window.insert("seconds".into(), 300.into());
    window.insert("limit".into(), i64::from(limit).into());
    window.insert("aligned".into(), false.into());
    config.providers.get_mut("oura").manifest.insert("rate_limits".into(), toml::Value::Array(vec![window.into()]));
    let reg = Arc::new(Registry::new(&config, fake.clock.clone())?);
    let app = router(WebState::for_app(
        coachd::app::App::from_parts(store.clone(), Arc::new(config), reg.clone()),
        Health::default(),
    ))
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let berlin = FixedOffset::east_opt(3600).expect("offset");
    let (workouts, days) = (45usize, 90usize);
    {
        let mut s = fake.lock();
        s.limit = limit;
        let today = start.with_timezone(&berlin).date_naive();
        for i in 1..=days as i64 {
            let d = today - Duration::days(i);
            s.steps.insert(d, 7000 + i);
            let bed = berlin.from_local_datetime(&d.and_hms_opt(23, 0, 0).expect("t")).single().expect("t");
            s.sleeps.push(fake_oura::FakeSleep {
                id: format!("s{i}"),
                kind: "long_sleep".into(),
                bedtime_start: bed,
                bedtime_end: bed + Duration::hours(8),
                total_s: 25_200,
            });
            if i % 2 == 0 {
                let at = berlin.from_local_datetime(&d.and_hms_opt(18, 0, 0).expect("t")).single().expect("t");
                let id = format!("w{i}");
                let w = fake_oura::FakeWorkout {
                    id: id.clone(),
                    activity: "running".into(),
                    start: at,
                    minutes: 45,
                    bpm: 148.0,
                };
                s.workouts.insert(id, w);
            }
        }
    }
    let c = store
        .add_client(&NewClient::parse("oura1", "Europe/Berlin", None, None).map_err(|p| anyhow::anyhow!(p.join("; ")))?)
        .await?;
    let link = oauth::authorization_link(&reg, &store, "oura", c.id).await?;
    let state = url::Url::parse(&link)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let code = fake.issue_code(fake_oura::USER, fake_oura::ALL_SCOPES);
    let http = reqwest::Client::new();
    http.get(format!("{base}/oauth/oura/callback"))
        .query(&[("state", state.as_str()), ("code", code.as_str()), ("scope", fake_oura::ALL_SCOPES)])
        .send()
        .await?;
    let accounts = store.accounts().await?;
    let (before, from) = (fake.lock().api_requests, fake.clock.now());
    let wall = Instant::now();
    let results = sync_all(&reg, &store, &accounts, &tokio_util::sync::CancellationToken::new()).await;
    let real = wall.elapsed();
    let inserted: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.inserted).sum();
    let (used, limited) = {
        let s = fake.lock();
        (s.api_requests - before, s.limited)
    };
    let pages = |n: usize| n.div_ceil(fake_oura::PAGE).max(1) as u32;
    let minimum = pages(workouts) + workouts as u32 + pages(days) + pages(days);
    // The connect's own request shares the first window; each window holds `limit`.
    let ideal = Duration::seconds(300 * i64::from((minimum + 1).div_ceil(limit) - 1));
    let took = fake.clock.now() - from;
    println!(
        "{:<22} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>9}",
        format!("oura 90 d, {limit}/5 min"),
        inserted,
        used,
        minimum,
        limited,
        format!("{:.2} h", took.num_seconds() as f64 / 3600.0),
        format!("{:.2} h", ideal.num_seconds() as f64 / 3600.0),
        format!("{:.1} s", real.as_secs_f64())
    );
    store.close().await;
    Ok(())
}

/// A 90-day Withings backfill of one client under a budget of `limit` requests a minute
/// (known to coachd through the manifest, enforced by the fake with status 601).
async fn withings(limit: u32) -> anyhow::Result<()> {
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time");
    let fake = fake_withings::start(start).await;
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &Config::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = fake_withings::config(&fake, &base);
    config.providers.backfill_days = 90;
    let mut window = toml::Table::new();
    window.insert("name".into(), "minute".into());
    window.insert("seconds".into(), 60.into());
    window.insert("limit".into(), i64::from(limit).into());
    window.insert("aligned".into(), false.into());
    config.providers.get_mut("withings").manifest.insert("rate_limits".into(), toml::Value::Array(vec![window.into()]));
    let reg = Arc::new(Registry::new(&config, fake.clock.clone())?);
    let app = router(WebState::for_app(
        coachd::app::App::from_parts(store.clone(), Arc::new(config), reg.clone()),
        Health::default(),
    ))
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let tz = chrono_tz::Europe::Berlin;
    let (workouts, days) = (45usize, 90usize);
    {
        let mut s = fake.lock();
        s.limit = limit;
        let today = start.with_timezone(&tz).date_naive();
        for i in 1..=days as i64 {
            let d = today - Duration::days(i);
            let modified = fake_withings::local(tz, d, 23, 59).timestamp();
            s.days.insert(d, fake_withings::FakeDay { steps: 7000 + i, tz, modified });
            let bed = fake_withings::local(tz, d, 23, 0);
            let wake = bed + Duration::hours(8);
            s.sleeps.push(fake_withings::FakeSleep {
                id: 5000 + i,
                start: bed,
                end: wake,
                asleep_s: 25_200,
                tz,
                modified: wake.timestamp() + 900,
            });
            if i % 2 == 0 {
                let at = fake_withings::local(tz, d, 18, 0);
                let w = fake_withings::FakeWorkout {
                    id: 1000 + i,
                    category: 2,
                    start: at,
                    minutes: 45,
                    tz,
                    bpm: Some(148.0),
                    modified: at.timestamp() + 3300,
                };
                s.workouts.insert(w.id, w);
            }
        }
    }
    let c = store
        .add_client(
            &NewClient::parse("withings1", "Europe/Berlin", None, None).map_err(|p| anyhow::anyhow!(p.join("; ")))?,
        )
        .await?;
    let link = oauth::authorization_link(&reg, &store, "withings", c.id).await?;
    let state = url::Url::parse(&link)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let code = fake.issue_code(fake_withings::USER, fake_withings::SCOPES);
    let http = reqwest::Client::new();
    http.get(format!("{base}/oauth/withings/callback"))
        .query(&[("state", state.as_str()), ("code", code.as_str())])
        .send()
        .await?;
    let accounts = store.accounts().await?;
    let (before, from) = (fake.lock().api_requests, fake.clock.now());
    let wall = Instant::now();
    let results = sync_all(&reg, &store, &accounts, &tokio_util::sync::CancellationToken::new()).await;
    let real = wall.elapsed();
    let inserted: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.inserted).sum();
    let (used, limited) = {
        let s = fake.lock();
        (s.api_requests - before, s.limited)
    };
    let pages = |n: usize| n.div_ceil(fake_withings::PAGE).max(1) as u32;
    let minimum = pages(workouts) + workouts as u32 + pages(days) + pages(days);
    // The connect's token request shares the first window; each window holds `limit`.
    let ideal = Duration::seconds(60 * i64::from((minimum + 1).div_ceil(limit) - 1));
    let took = fake.clock.now() - from;
    println!(
        "{:<22} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>9}",
        format!("withings 90 d, {limit}/min"),
        inserted,
        used,
        minimum,
        limited,
        format!("{} s", took.num_seconds()),
        format!("{} s", ideal.num_seconds()),
        format!("{:.1} s", real.as_secs_f64())
    );
    store.close().await;
    Ok(())
}

/// 90-day WHOOP backfills of `clients` clients at once under WHOOP's limits (100 a
/// minute, 10,000 a day, per application), each connected through the OAuth flow first.
async fn whoop(clients: usize) -> anyhow::Result<()> {
    use chrono::{FixedOffset, TimeZone};
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time");
    let fake = fake_whoop::start(start).await;
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("data"));
    let (store, _) = coachd::init::init(&data, &data.default_config(), &Config::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = fake_whoop::config(&fake, &base);
    config.providers.backfill_days = 90;
    let reg = Arc::new(Registry::new(&config, fake.clock.clone())?);
    let app = router(WebState::for_app(
        coachd::app::App::from_parts(store.clone(), Arc::new(config), reg.clone()),
        Health::default(),
    ))
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let berlin = FixedOffset::east_opt(3600).expect("offset");
    let (workouts, nights) = (45usize, 90usize);
    {
        // Every member sees the same data set in the fake, under ids of their own.
        let mut s = fake.lock();
        let today = start.with_timezone(&berlin).date_naive();
        for i in 1..=nights as i64 {
            let d = today - Duration::days(i);
            let bed = berlin.from_local_datetime(&d.and_hms_opt(23, 0, 0).expect("t")).single().expect("t");
            s.sleeps.push(fake_whoop::FakeSleep::night(&format!("s{i}"), bed, bed + Duration::hours(8), 45));
            if i % 2 == 0 {
                let at = berlin.from_local_datetime(&d.and_hms_opt(18, 0, 0).expect("t")).single().expect("t");
                let id = format!("w{i}");
                s.workouts
                    .insert(id.clone(), fake_whoop::FakeWorkout::new(&id, "running", at, 45, [3, 5, 25, 10, 2, 0]));
            }
        }
    }
    let http = reqwest::Client::new();
    for n in 0..clients {
        let c = store
            .add_client(
                &NewClient::parse(&format!("whoop{n}"), "Europe/Berlin", None, None)
                    .map_err(|p| anyhow::anyhow!(p.join("; ")))?,
            )
            .await?;
        let link = oauth::authorization_link(&reg, &store, "whoop", c.id).await?;
        let state = url::Url::parse(&link)?
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let code = fake.issue_code(fake_whoop::USER + n as i64, fake_whoop::ALL_SCOPES);
        http.get(format!("{base}/oauth/whoop/callback"))
            .query(&[("state", state.as_str()), ("code", code.as_str()), ("scope", fake_whoop::ALL_SCOPES)])
            .send()
            .await?;
    }
    let accounts = store.accounts().await?;
    let (before, from) = (fake.lock().api_requests, fake.clock.now());
    let wall = Instant::now();
    let results = sync_all(&reg, &store, &accounts, &tokio_util::sync::CancellationToken::new()).await;
    let real = wall.elapsed();
    let inserted: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.inserted).sum();
    let (used, limited) = {
        let s = fake.lock();
        (s.api_requests - before, s.limited)
    };
    // Per client: the max HR once, workout pages and sleep pages of 25.
    let pages = |n: usize| n.div_ceil(fake_whoop::PAGE).max(1) as u32;
    let minimum = clients as u32 * (1 + pages(workouts) + pages(nights));
    // The connects' requests share the first minutes; each minute holds 100, each day
    // 10,000 (never reached here).
    let ideal = Duration::minutes(i64::from((minimum + clients as u32).div_ceil(fake_whoop::MINUTE_LIMIT) - 1));
    let took = fake.clock.now() - from;
    println!(
        "{:<22} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>9}",
        format!("whoop 90 d × {clients}"),
        inserted,
        used,
        minimum,
        limited,
        format!("{:.2} min", took.num_seconds() as f64 / 60.0),
        format!("{:.2} min", ideal.num_seconds() as f64 / 60.0),
        format!("{:.1} s", real.as_secs_f64())
    );
    store.close().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    println!("Strava backfill under Strava's read limits (100 / 15 min, 1,000 / day UTC), simulated clock");
    println!(
        "{:<22} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>9}",
        "run", "stored", "requests", "minimum", "429s", "sim. time", "ideal time", "real time"
    );
    for (h, m) in [(0, 0), (10, 7), (23, 50)] {
        run(Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).single().expect("time"), 1).await?;
    }
    run(Utc.with_ymd_and_hms(2026, 11, 20, 10, 7, 0).single().expect("time"), 3).await?;
    println!();
    println!("Oura 90-day backfill (45 workouts, 90 days, 90 nights), simulated clock");
    for limit in [5000, 25] {
        oura(limit).await?;
    }
    println!();
    println!("Withings 90-day backfill (45 workouts with per-second heart rate, 90 days, 90 nights), simulated clock");
    for limit in [120, 20] {
        withings(limit).await?;
    }
    println!();
    println!("WHOOP 90-day backfills (45 workouts, 90 nights each) under 100 / min and 10,000 / day, simulated clock");
    for clients in [1, 10, 50] {
        whoop(clients).await?;
    }
    Ok(())
}
