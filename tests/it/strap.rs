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

/// One session recorded the collector's way: Rower Data (or Heart Rate) notifications,
/// once a second from `start` for `minutes`, through the decoder and the recorder into
/// the store.
async fn record(
    t: &TestStore,
    client: i64,
    device: &str,
    characteristic: u16,
    start: chrono::DateTime<chrono::Utc>,
    minutes: i64,
) {
    use coachd::ble::reading::{self, Decoder, Reading};
    use coachd::ble::session::Recorder;
    let mut decoder = Decoder::default();
    let mut recorder = Recorder::new(device, client, 3600, SessionConfig::default());
    recorder.set_activity_type(reading::activity_type(&[characteristic]));
    for s in 0..minutes * 60 {
        let t_ms = start.timestamp_millis() + s * 1000;
        let payload: Vec<u8> = if characteristic == reading::ROWER_DATA {
            // 26 strokes a minute, the count, 4 m a second, 170 W.
            let strokes = (s * 26 / 60) as u16;
            let metres = (s * 4) as u32;
            let mut p = vec![0x24, 0x00, 52];
            p.extend(strokes.to_le_bytes());
            p.extend(&metres.to_le_bytes()[..3]);
            p.extend(170i16.to_le_bytes());
            p
        } else {
            vec![0x16, 145, 0x00, 0x02]
        };
        let batches = match decoder.decode(characteristic, &payload).expect("a valid notification") {
            Some(Reading::Machine(m)) => recorder.on_machine(t_ms, &m),
            Some(Reading::HeartRate(hr)) => recorder.on_heart_rate(t_ms, &hr),
            None => Vec::new(),
        };
        for b in batches {
            t.store.ingest(&b).await.expect("ingest");
        }
    }
    let last = recorder.flush().expect("an open session");
    t.store.ingest(&last).await.expect("ingest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rowing_recorded_as_the_collector_does_is_judged_against_20_minutes_of_rowing_twice_a_week() {
    use chrono::TimeZone;
    use coachd::ble::reading::{HEART_RATE_MEASUREMENT, ROWER_DATA};
    use coachd::engine::judge::Verdict;
    let t = TestStore::new().await;
    let ana = t.client("ana").await;
    let bo = t.client("bo").await;
    let monday = chrono::NaiveDate::from_ymd_opt(2026, 11, 9).expect("date");
    let rule = coachd::engine::phrase::parse("20 minutes of rowing twice a week").expect("phrase");
    for client in [ana, bo] {
        t.store.add_homework(client, &rule, monday, None).await.expect("homework");
    }
    let at = |d: u32, h: u32| {
        chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 11, d, h, 0, 0).single().expect("time").to_utc()
    };
    // Ana: Tuesday 21 minutes on the rower wearing her strap, Thursday 22 without it.
    record(&t, ana, "C0:FF:EE:00:00:A1", HEART_RATE_MEASUREMENT, at(10, 18), 21).await;
    record(&t, ana, "C0:FF:EE:00:00:A2", ROWER_DATA, at(10, 18), 21).await;
    record(&t, ana, "C0:FF:EE:00:00:A2", ROWER_DATA, at(12, 7), 22).await;
    // Bo: 21 minutes on Tuesday, and 12 (short of 20) on Saturday.
    record(&t, bo, "C0:FF:EE:00:00:B2", ROWER_DATA, at(10, 19), 21).await;
    record(&t, bo, "C0:FF:EE:00:00:B2", ROWER_DATA, at(14, 9), 12).await;

    let cfg = t.config.homework.judge_config();
    let clients = t.store.list_clients().await.expect("clients");
    let sunday = monday + chrono::Duration::days(6);
    let (report, _) =
        coachd::status::status(&t.store, &cfg, 0.2, &clients, monday, sunday, at(20, 12)).await.expect("status");
    let week = |client: &str| {
        report.occurrences.iter().find(|o| &*o.client == client && o.period == "week").cloned().expect("the week")
    };
    let ana_week = week("ana");
    assert_eq!((ana_week.verdict, ana_week.achieved, ana_week.target), (Verdict::Done, 2.0, 2.0), "{ana_week:?}");
    assert_eq!(ana_week.evidence.len(), 2, "the strap and the rower on Tuesday are one workout: {ana_week:?}");
    let bo_week = week("bo");
    assert_eq!((bo_week.verdict, bo_week.achieved), (Verdict::Partial, 1.0), "12 minutes is not 20: {bo_week:?}");

    // Tuesday's workout is a row with the strap's heart rate and the rower's series.
    let ev = t.store.evidence(ana, chrono_tz::Europe::Berlin, monday, sunday).await.expect("evidence");
    assert_eq!(ev.workouts.len(), 2, "{:?}", ev.workouts);
    let tuesday = &ev.workouts[0];
    assert_eq!((tuesday.activity_type.as_str(), tuesday.parts.len(), tuesday.hr_samples), ("row", 2, 21 * 60));
    let rower = tuesday.parts.iter().find(|p| p.activity_type == "row").expect("the rower's record");
    assert_eq!(rower.distance_m, Some(4.0 * (21.0 * 60.0 - 1.0)), "4 m a second");
    let strokes = t.store.series(rower.id, SeriesKind::Strokes).await.expect("strokes");
    assert_eq!(strokes.len(), 21 * 60);
}
