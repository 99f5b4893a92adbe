use crate::{batch, hour_run, t0, TestStore};
use chrono::{Duration, NaiveDate};
use coachd::model::{Batch, DailyMetric, Metric, Sample, Series, SeriesKind, SetType, StrengthSet};
use coachd::store::{RowCounts, StoreError, Tokens};

#[tokio::test]
async fn same_batch_twice_leaves_the_same_rows() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let mut run = hour_run(alex, "a1", t0());
    run.sets = Some(vec![StrengthSet {
        start: Some(t0()),
        duration_s: Some(30.0),
        exercise: "push_up".into(),
        set_type: SetType::Active,
        reps: Some(10),
        weight_kg: None,
    }]);
    let mut b = batch("fit", vec![run, hour_run(alex, "a2", t0() + Duration::days(1))], Some("c1"));
    b.daily.push(DailyMetric {
        client_id: alex,
        date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("date"),
        metric: Metric::Steps,
        value: 8123.0,
    });
    let first = t.store.ingest(&b).await.expect("first ingest");
    assert_eq!(first.activities_inserted, 2);
    assert_eq!(first.samples_written, 7200);
    assert_eq!(first.daily_written, 1);
    let counts = t.store.row_counts().await.expect("counts");

    let second = t.store.ingest(&b).await.expect("second ingest");
    assert_eq!(second.activities_unchanged, 2);
    assert!(!second.changed_anything(), "{second:?}");
    assert_eq!(t.store.row_counts().await.expect("counts"), counts);

    let id = t.store.activity_id("fit", "a1").await.expect("lookup").expect("stored");
    let hr = t.store.series(id, SeriesKind::Hr).await.expect("series");
    assert_eq!(hr.len(), 3600);
    assert_eq!(hr, b.activities[0].series[0].samples);
    let sets = t.store.sets(id).await.expect("sets");
    assert_eq!(sets, b.activities[0].sets.clone().expect("sets"));
}

#[tokio::test]
async fn a_batch_that_fails_half_way_leaves_no_rows() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    // The second activity names a client that does not exist: a foreign-key failure
    // after the first activity and its samples were already written in the transaction.
    let b = batch("fit", vec![hour_run(alex, "ok", t0()), hour_run(9999, "bad", t0())], Some("c1"));
    let err = t.store.ingest(&b).await.expect_err("must fail");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("fit/bad"), "{err}");
    let counts = t.store.row_counts().await.expect("counts");
    assert_eq!(counts, RowCounts { clients: 1, ..RowCounts::default() });
    assert_eq!(t.store.cursor("fit", "main").await.expect("cursor"), None, "cursor moved ahead of data");
}

#[tokio::test]
async fn the_cursor_moves_only_with_its_data() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    t.store.ingest(&batch("strava", vec![hour_run(alex, "1", t0())], Some("100"))).await.expect("ingest");
    assert_eq!(t.store.cursor("strava", "main").await.expect("cursor").as_deref(), Some("100"));
    // An invalid batch (end before start) is refused whole: cursor stays at 100.
    let mut bad = hour_run(alex, "2", t0());
    bad.end = bad.start - Duration::seconds(1);
    let err = t.store.ingest(&batch("strava", vec![bad], Some("200"))).await.expect_err("invalid");
    assert!(err.to_string().contains("ends"), "{err}");
    assert_eq!(t.store.cursor("strava", "main").await.expect("cursor").as_deref(), Some("100"));
}

#[tokio::test]
async fn samples_arriving_in_pieces_merge_into_one_series() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let full = hour_run(alex, "strap-1", t0());
    let all = full.series[0].samples.clone();
    // Deliver in overlapping pieces of 5 s, as the BLE collector flushes, out of order.
    let mut pieces: Vec<Vec<Sample>> = all.chunks(5).map(<[Sample]>::to_vec).collect();
    pieces.reverse();
    for (i, piece) in pieces.iter().enumerate() {
        let mut a = full.clone();
        let mut samples = piece.clone();
        if i > 0 {
            samples.extend_from_slice(&pieces[i - 1][..1]); // overlap with the previous piece
        }
        a.series = vec![Series { kind: SeriesKind::Hr, samples }];
        t.store.ingest(&batch("ble", vec![a], None)).await.expect("piece");
    }
    let id = t.store.activity_id("ble", "strap-1").await.expect("lookup").expect("stored");
    assert_eq!(t.store.series(id, SeriesKind::Hr).await.expect("series"), all);
}

#[tokio::test]
async fn an_activity_cannot_change_client() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let bo = t.client("bo").await;
    t.store.ingest(&batch("fit", vec![hour_run(alex, "x", t0())], None)).await.expect("ingest");
    let err = t.store.ingest(&batch("fit", vec![hour_run(bo, "x", t0())], None)).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

#[tokio::test]
async fn updates_replace_fields_and_sets() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let mut a = hour_run(alex, "u", t0());
    t.store.ingest(&batch("strava", vec![a.clone()], None)).await.expect("ingest");
    a.activity_type = "trail_run".into();
    a.sets = Some(Vec::new());
    let r = t.store.ingest(&batch("strava", vec![a], None)).await.expect("update");
    assert_eq!(r.activities_updated, 1);
    assert_eq!(r.samples_written, 0);
}

#[tokio::test]
async fn invalid_samples_are_refused_by_name() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let mut a = hour_run(alex, "z", t0());
    a.series[0].samples[5].value = 0.0; // a settling strap's 0 bpm is not a sample
    let err = t.store.ingest(&Batch { source: "ble".into(), activities: vec![a], ..Batch::default() }).await;
    let err = err.expect_err("invalid");
    assert!(err.to_string().contains("hr sample 0"), "{err}");
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let tokens = Tokens {
        access: coachd::crypto::Secret::new("ACCESS-abcdef-123456".into()),
        refresh: Some(coachd::crypto::Secret::new("REFRESH-zyxwvu-987654".into())),
        expires: Some(t0()),
        scopes: "read,activity:read_all".into(),
    };
    t.store.save_tokens(alex, "strava", &tokens).await.expect("save");
    let back = t.store.tokens(alex, "strava").await.expect("load");
    assert_eq!(back.access.expose(), "ACCESS-abcdef-123456");
    assert_eq!(back.refresh.as_ref().map(|s| s.expose().as_str()), Some("REFRESH-zyxwvu-987654"));
    assert!(!format!("{back:?}").contains("ACCESS"), "tokens leak through Debug");
    // Neither the database nor its WAL holds the plaintext, while open or after close.
    let scan = || {
        for entry in std::fs::read_dir(t.dir.path().join("data")).expect("read dir") {
            let path = entry.expect("entry").path();
            let Ok(bytes) = std::fs::read(&path) else { continue }; // the WAL may vanish on close
            for needle in [&b"ACCESS-abcdef"[..], b"REFRESH-zyxwvu"] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "plaintext token in {}", path.display());
            }
        }
    };
    scan();
    t.store.close().await;
    scan();
}
