//! The live view: the simulated strap, run by the supervisor as in `coachd run`, feeds
//! the server-sent events a logged-in trainer subscribes to; a stranger gets 401, and a
//! trainer sees only their own clients' devices.

use crate::dashboard::{browser, login, site, PASSWORD_A, PASSWORD_B};
use coachd::ble::session::SessionConfig;
use coachd::ble::simulated::{SimulatedStrap, DEVICE};
use coachd::source::{Source, Supervisor};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Serve the site the way the daemon does: the web state reads the supervisor's live feed.
async fn serve_with(ts: &crate::TestStore, live: coachd::live::Live) -> String {
    let app = coachd::app::App::new(ts.store.clone(), Arc::new(ts.config.clone())).expect("app");
    let state =
        coachd::web::WebState { live, ..coachd::web::WebState::for_app(app, coachd::source::Health::default()) };
    let app = coachd::web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The `live` events of one subscription over `listen`, with when each arrived.
async fn events(http: &reqwest::Client, url: &str, listen: Duration) -> Vec<(Duration, Value)> {
    let mut r = http.get(url).send().await.expect("subscribe");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    let (mut text, mut out) = (String::new(), Vec::new());
    while started.elapsed() < listen {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(listen.saturating_sub(started.elapsed()), r.chunk()).await
        else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let is_live = block.lines().any(|l| l == "event: live");
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if is_live {
                out.push((started.elapsed(), serde_json::from_str(&data).expect("JSON data")));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_watches_the_strap_live_and_a_stranger_gets_401() {
    let s = site().await;
    // alex (anna's) wears the simulated strap, ten simulated seconds per real second.
    let strap = Arc::new(SimulatedStrap::new("alex", Duration::from_millis(100), SessionConfig::default()));
    let token = CancellationToken::new();
    let sources: Vec<Arc<dyn Source>> = vec![strap];
    let sup = Supervisor::start(sources, s.ts.store.clone(), Arc::new(s.ts.config.clone()), token.clone());
    let live = sup.live();
    let base = serve_with(&s.ts, live.clone()).await;

    // A stranger: no events, no snapshot, and the page leads to the login.
    let stranger = browser();
    for path in ["/live/events", "/api/live"] {
        let r = stranger.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = stranger.get(format!("{base}/live")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");

    // bea (ben's) rows at the same time: a second device, reported the way the
    // collector reports a rower's notifications.
    let feeder = {
        let live = live.clone();
        let bea = s.b_client;
        tokio::spawn(async move {
            let start = chrono::Utc::now().timestamp_millis();
            loop {
                let now = chrono::Utc::now().timestamp_millis();
                let r = coachd::live::Reading {
                    bpm: Some(131),
                    power_w: Some(185),
                    cadence_rpm: Some(26.0),
                    speed_kmh: None,
                    battery_pct: Some(64),
                };
                live.record("C0:FF:EE:00:00:02", bea, "row", start, now, &r);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let site_a = crate::dashboard::Site { base: base.clone(), ..s };
    let anna = browser();
    login(&site_a, &anna, "anna", PASSWORD_A).await;
    let page = anna.get(format!("{base}/live")).send().await.expect("live page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text().await.expect("body");
    assert!(html.contains("<script src=\"/live.js\"></script>"));
    let roster = anna.get(format!("{base}/roster")).send().await.expect("roster");
    let csp = roster.headers()["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "other pages stay script-free: {csp}");
    let js = anna.get(format!("{base}/live.js")).send().await.expect("script");
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");

    let got = events(&anna, &format!("{base}/live/events"), Duration::from_millis(5_500)).await;
    assert!(got.len() >= 5, "about one update a second: {} in 5.5 s", got.len());
    for pair in got.windows(2) {
        assert!(pair[1].0 - pair[0].0 < Duration::from_millis(1_600), "a gap between updates: {:?}", pair);
    }
    let (_, last) = got.last().expect("an update");
    let clients = last["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "anna sees only alex: {last}");
    assert_eq!(clients[0]["name"], "alex");
    let device = &clients[0]["devices"][0];
    assert_eq!(device["device"], DEVICE);
    let bpm = device["bpm"].as_u64().expect("a heart rate");
    assert!((40..=220).contains(&bpm), "{bpm}");
    assert_eq!(device["pct_max"].as_u64(), Some((bpm as f64 / 190.0 * 100.0).round() as u64), "alex's HR max is 190");
    assert!(device["zone"].as_u64().is_some());
    assert!(device["battery_pct"].as_u64().is_some_and(|b| b <= 100));
    assert!(device["session_min"].as_f64().is_some_and(|m| m > 0.0));
    let homework = clients[0]["homework"].as_array().expect("homework");
    assert_eq!(homework[0]["target"], 15.0, "today's 15 minutes of cardio: {homework:?}");
    // The strap's values move: the heart rate of the first and last update differ or the
    // session grew.
    let first = &got[0].1["clients"][0]["devices"][0];
    assert!(first["session_min"].as_f64() < device["session_min"].as_f64(), "{first} then {device}");

    // ben sees bea's rower, and nothing of alex.
    let ben = browser();
    login(&site_a, &ben, "ben", PASSWORD_B).await;
    let snap: Value = ben.get(format!("{base}/api/live")).send().await.expect("snapshot").json().await.expect("JSON");
    let clients = snap["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{snap}");
    assert_eq!(clients[0]["name"], "bea");
    let rower = &clients[0]["devices"][0];
    assert_eq!((rower["activity_type"].as_str(), rower["power_w"].as_i64()), (Some("row"), Some(185)));
    assert_eq!(rower["battery_pct"], 64);

    feeder.abort();
    token.cancel();
    sup.join().await;
}
