//! Browser test: headless Chromium (Debian's chromium and chromium-driver, installed by
//! this test if missing) driven by tests/browser/walk.py through Selenium. A trainer logs
//! in, reads the roster, opens a client's page with its charts, assigns homework by
//! phrase, opens a workout; the client checks in through their private link. A screenshot
//! of each page is saved under target/tmp/screenshots/.

use crate::{apt_install, have, pip_install, TestStore};
use chrono::Utc;
use std::path::Path;
use std::process::Command;

fn prerequisites() -> String {
    if !(Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists()) {
        assert!(
            apt_install(&["chromium", "chromium-driver", "fonts-dejavu-core"]),
            "chromium is missing and could not be installed: apt-get install chromium chromium-driver"
        );
    }
    assert!(have(Command::new("/usr/bin/chromedriver").arg("--version")), "chromedriver does not run");
    pip_install("browser-python", "selenium==4.50.0", "selenium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_and_client_walk_through_the_dashboard() {
    let python_path = tokio::task::spawn_blocking(prerequisites).await.expect("prerequisites");
    let ts = TestStore::new().await;
    coachd::demo::create(&ts.store, Utc::now()).await.expect("demo");
    let password = coachd::demo::trainer(&ts.store).await.expect("trainer").expect("a new trainer");
    let alex = ts.store.client_by_name("alex").await.expect("alex");
    let token = ts.store.new_share_link(alex.id).await.expect("link");
    let base = ts.serve().await;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/walk.py");
    let link = format!("{base}/c/{token}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([base.as_str(), "coach", password.as_str(), link.as_str()])
            .arg(&shots)
            .env("PYTHONPATH", python_path)
            .env("SE_OFFLINE", "true")
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("walk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    // The step that failed first, so that a shortened log still shows it.
    let failed = stdout.lines().filter(|l| l.starts_with("FAILED")).collect::<Vec<_>>().join("\n");
    assert!(
        out.status.success(),
        "the browser walk failed: {failed}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("walk complete"));
    for name in [
        "login",
        "roster",
        "client",
        "assigned",
        "assign-error",
        "progress",
        "workout",
        "questions-phone",
        "client-link",
    ] {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("screenshots/{name}.png"));
        assert!(std::fs::metadata(&path).is_ok_and(|m| m.len() > 10_000), "screenshot {}", path.display());
    }
    // What the browser did is in the store.
    let hw = ts.store.list_homework(Some(alex.id)).await.expect("homework");
    assert!(hw.iter().any(|h| h.homework.text.contains("mobility")), "assigned through the page");
    assert_eq!(ts.store.reflections(alex.id, 1).await.expect("reflections")[0].rating, 8);
}
