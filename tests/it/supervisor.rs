//! A failing or panicking source is restarted with backoff; the others keep running.

use crate::{batch, hour_run, t0, TestStore};
use chrono::Duration as Days;
use coachd::config::Config;
use coachd::source::{Source, SourceContext, SourceFuture, SourceState, Supervisor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Fails (or panics) right away, recording when each start happened.
struct Broken {
    name: &'static str,
    panics: bool,
    starts: Arc<Mutex<Vec<Instant>>>,
}

impl Source for Broken {
    fn name(&self) -> &str {
        self.name
    }

    fn run<'a>(&'a self, _ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            self.starts.lock().expect("lock").push(Instant::now());
            if self.panics {
                panic!("sensor exploded");
            }
            anyhow::bail!("provider said 500")
        })
    }
}

struct Good {
    client: i64,
    done: Arc<AtomicU64>,
}

impl Source for Good {
    fn name(&self) -> &str {
        "good"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            loop {
                let i = self.done.load(Ordering::SeqCst) as i64;
                let b = batch("good", vec![hour_run(self.client, &format!("g{i}"), t0() + Days::hours(i))], None);
                ctx.ingest(&b).await?;
                self.done.fetch_add(1, Ordering::SeqCst);
                if !ctx.sleep(Duration::from_millis(10)).await {
                    return Ok(());
                }
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sources_restart_with_capped_backoff_while_others_run() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let mut config = Config::default();
    config.supervisor.backoff_initial_ms = 100;
    config.supervisor.backoff_max_ms = 200;
    let (err_starts, panic_starts) = (Arc::default(), Arc::default());
    let done = Arc::new(AtomicU64::new(0));
    let sources: Vec<Arc<dyn Source>> = vec![
        Arc::new(Broken { name: "erroring", panics: false, starts: Arc::clone(&err_starts) }),
        Arc::new(Broken { name: "panicking", panics: true, starts: Arc::clone(&panic_starts) }),
        Arc::new(Good { client: alex, done: done.clone() }),
    ];
    let token = CancellationToken::new();
    let supervisor = Supervisor::start(sources, t.store.clone(), Arc::new(config), token.clone());
    let health = supervisor.health();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    for (name, starts) in [("erroring", &err_starts), ("panicking", &panic_starts)] {
        let starts: Vec<Instant> = starts.lock().expect("lock").clone();
        // Backoff 100, 200, 200, ... ms: about 13 starts in 2.5 s, far fewer than a hot loop.
        // Lower bounds are exact (the supervisor never restarts early); the upper bound
        // leaves room for a loaded machine's late timers yet catches uncapped doubling
        // (400, 800, ...).
        assert!((5..=14).contains(&starts.len()), "{name}: {} starts", starts.len());
        let gaps: Vec<u128> = starts.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert!(gaps[0] >= 100 && gaps[1] >= 200, "{name}: backoff not doubling: {gaps:?}");
        assert!(gaps[2..].iter().all(|&g| (200..390).contains(&g)), "{name}: backoff not capped at 200 ms: {gaps:?}");
    }
    let snapshot = health.snapshot();
    let by_name = |n: &str| snapshot.iter().find(|h| h.name == n).expect("listed").clone();
    assert_eq!(by_name("good").state, SourceState::Running);
    assert!(by_name("panicking").last_error.as_deref().unwrap_or("").contains("sensor exploded"));
    assert!(by_name("erroring").last_error.as_deref().unwrap_or("").contains("provider said 500"));
    assert!(by_name("erroring").restarts >= 3);
    assert!(health.summary().contains("failing"), "{}", health.summary());
    // The good source kept ingesting the whole time (a batch every ~10 ms).
    assert!(done.load(Ordering::SeqCst) > 50, "good source stalled: {}", done.load(Ordering::SeqCst));

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), supervisor.join()).await.expect("supervisor stops");
    let snapshot = health.snapshot();
    assert!(snapshot.iter().all(|h| h.state == SourceState::Stopped), "{snapshot:?}");
    assert_eq!(t.store.row_counts().await.expect("counts").activities as u64, done.load(Ordering::SeqCst));
}
