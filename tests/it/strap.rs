//! The simulated strap, run by the supervisor: notifications become one stored session.

use crate::TestStore;
use coachd::ble::session::SessionConfig;
use coachd::ble::simulated::SimulatedStrap;
use coachd::model::SeriesKind;
use coachd::source::{Source, Supervisor};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_notifications_become_a_committed_session() {
    let t = TestStore::new().await;
    t.client("demo").await;
    // One simulated second per real millisecond: ~15 simulated minutes of warm-up and intervals.
    let strap = Arc::new(SimulatedStrap::new("demo", Duration::from_millis(1), SessionConfig::default()));
    let sent = strap.sent.clone();
    let source: Arc<dyn Source> = strap;
    let token = CancellationToken::new();
    let sup = Supervisor::start(vec![source], t.store.clone(), Arc::new(t.config.clone()), token.clone());
    while sent.load(Ordering::Relaxed) < 900 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    sup.join().await;

    let counts = t.store.row_counts().await.expect("counts");
    assert_eq!(counts.activities, 1, "dropouts of a few seconds are bridged: one session");
    let day = chrono::Utc::now().date_naive();
    let ev = t
        .store
        .evidence(1, chrono_tz::Europe::Berlin, day - chrono::Duration::days(1), day + chrono::Duration::days(1))
        .await
        .expect("evidence");
    let w = &ev.workouts[0];
    assert_eq!(w.sources, ["ble"]);
    // Everything sent before the stop was committed by the final flush.
    assert_eq!(u64::from(w.hr_samples), sent.load(Ordering::Relaxed), "samples lost on shutdown");
    let hr = t.store.series(w.id, SeriesKind::Hr).await.expect("hr");
    let rr = t.store.series(w.id, SeriesKind::Rr).await.expect("rr");
    assert_eq!(hr.len() as u64, sent.load(Ordering::Relaxed));
    assert_eq!(rr.len(), hr.len(), "one RR interval per notification");
    let avg = w.avg_hr.unwrap_or(0.0);
    assert!((110.0..170.0).contains(&avg), "average HR {avg}");
    assert!(w.max_hr.unwrap_or(0) >= 150, "the intervals reach ~165 bpm: {:?}", w.max_hr);
    assert!(rr.iter().all(|s| (300.0..1500.0).contains(&s.value)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strap_started_again_within_the_gap_goes_on_with_the_same_session() {
    let t = TestStore::new().await;
    t.client("demo").await;
    let mut sent_in_all = 0;
    for run in 0..3 {
        let strap = Arc::new(SimulatedStrap::new("demo", Duration::from_millis(1), SessionConfig::default()));
        let sent = strap.sent.clone();
        let source: Arc<dyn Source> = strap;
        let token = CancellationToken::new();
        let sup = Supervisor::start(vec![source], t.store.clone(), Arc::new(t.config.clone()), token.clone());
        while sent.load(Ordering::Relaxed) < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        token.cancel();
        sup.join().await;
        sent_in_all += sent.load(Ordering::Relaxed);
        let counts = t.store.row_counts().await.expect("counts");
        assert_eq!(counts.activities, 1, "run {run}: one session across restarts");
    }
    let stored = t.store.last_session(1, coachd::ble::simulated::DEVICE).await.expect("read").expect("a session");
    assert_eq!(stored.hr_samples, sent_in_all, "every sample of the three runs, once");
}
