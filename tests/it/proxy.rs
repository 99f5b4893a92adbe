//! Behind a reverse proxy: forwarded addresses believed only from `web.trusted_proxies`,
//! and the login throttle per (name, address) with a global ceiling, over real HTTP.

use crate::dashboard::{browser, csrf_of};
use crate::TestStore;
use coachd::web::session::{Limits, Throttle};
use reqwest::StatusCode;
use std::sync::Arc;

const ANNA: &str = "anna's long password";
const BEN: &str = "ben's long password";

struct Site {
    _ts: TestStore,
    base: String,
}

/// Two trainers, served with these trusted proxies and throttle limits.
async fn site(trusted: &[&str], limits: Limits) -> Site {
    let mut ts = TestStore::new().await;
    for (name, password) in [("anna", ANNA), ("ben", BEN)] {
        ts.store.upsert_trainer(name, &coachd::crypto::hash_password(password).expect("hash")).await.expect("trainer");
    }
    ts.config.web.trusted_proxies = trusted.iter().map(|t| t.parse().expect("proxy")).collect();
    let app = coachd::app::App::new(ts.store.clone(), Arc::new(ts.config.clone())).expect("app");
    let mut state = coachd::web::WebState::for_app(app, coachd::source::Health::default());
    state.throttle = Arc::new(Throttle::new(limits));
    let app = coachd::web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Site { _ts: ts, base }
}

/// One login as a browser makes it (the form, then the post), claiming to come from
/// `forwarded` through a proxy; the status.
async fn login(site: &Site, name: &str, password: &str, forwarded: &str) -> StatusCode {
    let http = browser();
    let url = format!("{}/login", site.base);
    let page = http.get(&url).send().await.expect("get").text().await.expect("body");
    http.post(&url)
        .header("x-forwarded-for", forwarded)
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", name), ("password", password)])
        .send()
        .await
        .expect("post")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_trusted_proxy_each_forwarded_address_is_throttled_on_its_own() {
    let s = site(&["127.0.0.1"], Limits::default()).await;
    // Someone at 198.51.100.1 guesses anna's password (and claims a fake hop before it).
    for _ in 0..5 {
        assert_eq!(login(&s, "anna", "guess", "6.6.6.6, 198.51.100.1").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&s, "anna", ANNA, "198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS, "that pair waits");
    // Anna at her own address, and ben, are not locked out.
    assert_eq!(login(&s, "anna", ANNA, "203.0.113.5").await, StatusCode::SEE_OTHER);
    assert_eq!(login(&s, "ben", BEN, "203.0.113.6").await, StatusCode::SEE_OTHER);
    // The hammering address may still log in as someone else (it only slowed that pair).
    assert_eq!(login(&s, "ben", BEN, "198.51.100.1").await, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_an_untrusted_peer_the_forwarded_header_is_ignored() {
    let s = site(&["10.0.0.0/8"], Limits::default()).await;
    for i in 0..5 {
        let claimed = format!("198.51.100.{i}");
        assert_eq!(login(&s, "anna", "guess", &claimed).await, StatusCode::UNAUTHORIZED);
    }
    // Every attempt counted against the real peer, 127.0.0.1, whatever it claimed.
    assert_eq!(login(&s, "anna", ANNA, "203.0.113.9").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_clears_its_pair() {
    let s = site(&["127.0.0.1"], Limits::default()).await;
    let at = "192.0.2.44";
    for _ in 0..4 {
        assert_eq!(login(&s, "anna", "typo", at).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&s, "anna", ANNA, at).await, StatusCode::SEE_OTHER);
    // Five more wrong ones are free again: the count started afresh.
    for _ in 0..5 {
        assert_eq!(login(&s, "anna", "typo", at).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&s, "anna", "typo", at).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_addresses_failing_together_meet_the_global_ceiling() {
    let limits = Limits { global: 6, ..Limits::default() };
    let s = site(&["127.0.0.1"], limits).await;
    // Ben logs in once from his usual address: a known pair.
    assert_eq!(login(&s, "ben", BEN, "203.0.113.7").await, StatusCode::SEE_OTHER);
    // Six addresses, one guess each: no pair or address reaches its own limit.
    for i in 0..6 {
        assert_eq!(login(&s, "anna", "guess", &format!("198.51.100.{i}")).await, StatusCode::UNAUTHORIZED);
    }
    // Now everyone new waits for the minute to end, right password or not.
    assert_eq!(login(&s, "anna", ANNA, "203.0.113.8").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&s, "ben", BEN, "203.0.113.9").await, StatusCode::TOO_MANY_REQUESTS);
    // Except a pair that logged in before.
    assert_eq!(login(&s, "ben", BEN, "203.0.113.7").await, StatusCode::SEE_OTHER);
}
