//! Remote collector benchmark: a backlog recorded while the hub was away, drained.
//!
//! Records four straps through the real session recorder (1 Hz heart rate with one RR
//! interval, flushed every 5 s as `coachd collect` does by default) into an outbox, for a
//! week of one hour a day each (`COACHD_BENCH_HOURS_PER_DAY`, default 1), then starts a
//! hub (the real web router on 127.0.0.1:0, on a fresh store) and the real forwarder, and
//! times the drain. Prints the outbox's bytes per heart-rate sample, the forwarding
//! throughput (samples per second applied at the hub) and the drain time.
//!
//!     cargo bench --bench collect
//!     COACHD_BENCH_HOURS_PER_DAY=24 cargo bench --bench collect    # straps worn around the clock

use coachd::ble::gatt::{Contact, HeartRate};
use coachd::ble::session::{Recorder, SessionConfig};
use coachd::config::Config;
use coachd::paths::DataDir;
use coachd::source::{Sink, Source, Supervisor};
use coachd::store::outbox::Outbox;
use coachd::store::NewClient;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STRAPS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = std::env::var("COACHD_BENCH_HOURS_PER_DAY").ok().and_then(|h| h.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path().join("hub"));
    let config = Config::default();
    let (store, _) = coachd::init::init(&data, &data.default_config(), &config).await.expect("hub store");
    let mut clients = Vec::new();
    for i in 0..STRAPS {
        let new = NewClient::parse(&format!("client{i}"), "Europe/Berlin", Some(190), None).expect("client");
        let c = store.add_client(&new).await.expect("add");
        let address = format!("C0:FF:EE:00:00:{:02X}", i + 1);
        store.pair_device(&address, c.id).await.expect("pair");
        clients.push((c.id, address));
    }
    let (_, token) = store.add_collector("bench", None).await.expect("collector");

    // The backlog: a week of sessions, recorded as the collector records them.
    let outbox_path = dir.path().join("collector-outbox.db");
    let outbox = Outbox::open(&outbox_path, i64::MAX).await.expect("outbox");
    let week_start = chrono::Utc::now().timestamp_millis() - 8 * 86_400_000;
    let recorded = Instant::now();
    let (mut samples, mut batches, mut body_bytes) = (0u64, 0u64, 0u64);
    for (n, (client, address)) in clients.iter().enumerate() {
        for day in 0..7 {
            let mut r = Recorder::new(address.clone(), *client, 3600, SessionConfig::default());
            let t0 = week_start + day * 86_400_000 + n as i64 * 600_000;
            let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut out = Vec::new();
            for s in 0..hours * 3600 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let bpm = 120 + (x % 40) as u16;
                let hr = HeartRate {
                    bpm,
                    contact: Contact::InContact,
                    energy_kj: None,
                    rr_1024: vec![512 + (x % 200) as u16],
                };
                out.extend(r.on_heart_rate(t0 + s * 1000, &hr));
                samples += 1;
            }
            out.extend(r.flush());
            for b in out {
                body_bytes += serde_json::to_string(&b).expect("json").len() as u64;
                outbox.push(&b).await.expect("push");
                batches += 1;
            }
        }
    }
    let record_s = recorded.elapsed().as_secs_f64();
    let backlog = outbox.backlog().await.expect("backlog");
    outbox.close().await;
    let file_bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", outbox_path.display())).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "backlog: {STRAPS} straps x 7 days x {hours} h: {samples} heart-rate samples (and as many RR), {batches} batches, \
         committed in {record_s:.1} s"
    );
    println!(
        "outbox: {} bytes of batch JSON ({:.1} bytes per HR sample, RR and the batch's activity included); \
         the file {} bytes ({:.1} per HR sample)",
        backlog.bytes,
        body_bytes as f64 / samples as f64,
        file_bytes,
        file_bytes as f64 / samples as f64
    );

    // The hub comes back: its web server, and the collector's forwarder.
    let app = coachd::app::App::new(store.clone(), Arc::new(config.clone())).expect("app");
    let state = coachd::web::WebState::for_app(app, coachd::source::Health::default());
    let router = coachd::web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hub = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let outbox = Outbox::open(&outbox_path, i64::MAX).await.expect("outbox");
    let forwarder: Arc<dyn Source> = Arc::new(coachd::forward::Forwarder::new(
        url::Url::parse(&hub).expect("url"),
        coachd::crypto::Secret::new(token),
        outbox.clone(),
        &config.collector,
        None,
        outbox_path.with_file_name("quarantine"),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let sup = Supervisor::start_with(vec![forwarder], Sink::Outbox(outbox.clone()), Arc::new(config), stop.clone());
    loop {
        if outbox.backlog().await.expect("backlog").batches == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_s = started.elapsed().as_secs_f64();
    stop.cancel();
    sup.join().await;
    let c = store.collector("bench").await.expect("collector");
    assert_eq!(c.last_seq as u64, batches, "every batch applied");
    let counts = store.row_counts().await.expect("counts");
    assert_eq!(counts.activities as usize, STRAPS * 7, "one activity per strap and day");
    println!(
        "drain: {batches} batches, {} samples applied at the hub in {drain_s:.1} s: {:.0} samples/s ({:.0} HR samples/s), {:.0} batches/s",
        c.applied_samples,
        c.applied_samples as f64 / drain_s,
        samples as f64 / drain_s,
        batches as f64 / drain_s
    );
}
