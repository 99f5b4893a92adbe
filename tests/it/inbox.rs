//! The watched inbox, run by the supervisor like any source.

use crate::files::{push_ups, run_with_pause};
use crate::TestStore;
use coachd::inbox::Inbox;
use coachd::source::{Source, Supervisor};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start(t: &TestStore, root: &Path) -> (Supervisor, CancellationToken) {
    let source: Arc<dyn Source> = Arc::new(Inbox::new(root, Duration::from_millis(50)));
    let token = CancellationToken::new();
    let sup = Supervisor::start(vec![source], t.store.clone(), Arc::new(t.config.clone()), token.clone());
    (sup, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_imported_archived_or_quarantined() {
    let t = TestStore::new().await;
    t.client("alex").await;
    let root = t.dir.path().join("data");
    let inbox = root.join("inbox/alex");
    let (sup, token) = start(&t, &root);
    wait_for("the client's inbox folder", || inbox.exists()).await;
    std::fs::write(inbox.join("run.fit"), run_with_pause(7001)).expect("write");
    std::fs::write(inbox.join("holiday.png"), b"\x89PNG\r\n\x1a\nnot a workout").expect("write");
    std::fs::write(inbox.join("upload.fit.part"), b"still syncing").expect("write");
    let archived = root.join("archive/alex/run.fit");
    let quarantined = root.join("quarantine/alex/holiday.png");
    wait_for("archive and quarantine", || archived.exists() && quarantined.exists()).await;
    let reason = std::fs::read_to_string(root.join("quarantine/alex/holiday.png.reason")).expect("reason");
    assert!(reason.contains("PNG"), "{reason}");
    assert!(inbox.join("upload.fit.part").exists(), "a partial download is left alone");
    assert_eq!(t.store.row_counts().await.expect("counts").activities, 1);

    // The same file again (a second sync of the folder): archived as a duplicate, beside the first.
    std::fs::write(inbox.join("run.fit"), run_with_pause(7001)).expect("write");
    wait_for("the duplicate archived", || root.join("archive/alex/run.fit.1").exists()).await;
    assert_eq!(t.store.row_counts().await.expect("counts").activities, 1, "nothing counted twice");
    token.cancel();
    sup.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_move_neither_loses_nor_doubles() {
    let t = TestStore::new().await;
    let alex = t.client("alex").await;
    let root = t.dir.path().join("data");
    let inbox = root.join("inbox/alex");
    std::fs::create_dir_all(&inbox).expect("mkdir");
    // Two files arrived while the daemon was down; one had been committed just before a
    // crash (the move to archive/ never happened).
    std::fs::write(inbox.join("a.fit"), run_with_pause(8001)).expect("write");
    std::fs::write(inbox.join("b.fit"), push_ups(8002)).expect("write");
    let client = t.store.client_by_id(alex).await.expect("client");
    let first = coachd::files::import_file(
        &t.store,
        &client,
        chrono_tz::Europe::Berlin,
        &inbox.join("a.fit"),
        coachd::files::quiet(),
    )
    .await
    .expect("import");
    assert!(matches!(first, coachd::files::Outcome::Imported { .. }));
    let (sup, token) = start(&t, &root);
    wait_for("both archived", || root.join("archive/alex/a.fit").exists() && root.join("archive/alex/b.fit").exists())
        .await;
    assert_eq!(t.store.row_counts().await.expect("counts").activities, 2);
    assert_eq!(std::fs::read_dir(&inbox).expect("inbox").count(), 0);
    token.cancel();
    sup.join().await;
}
