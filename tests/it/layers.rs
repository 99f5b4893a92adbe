//! The structure holds: the front ends sit on the application layer and never on
//! each other, and the command line and the dashboard answer the same bad input with the
//! same message.

use crate::coachd;
use crate::dashboard::{browser, login, site, PASSWORD_A};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        // A front end that is one file (`homeassistant.rs`).
        out.push(dir.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of the files under `src/FROM` that name module `to` of the crate.
fn imports(from: &str, to: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root.join(from), &mut files);
    assert!(!files.is_empty(), "no files under src/{from}");
    let needles =
        [format!("crate::{to}::"), format!("crate::{to}}}"), format!("crate::{to};"), format!("crate::{{{to}")];
    let mut hits = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let relative = code.contains("super::super::") && code.contains(&format!("::{to}"));
            if needles.iter().any(|x| code.contains(x.as_str())) || relative {
                hits.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn the_web_never_imports_the_command_line_nor_the_reverse() {
    let web_to_cli = imports("web", "cli");
    assert!(web_to_cli.is_empty(), "src/web imports src/cli:\n{}", web_to_cli.join("\n"));
    let cli_to_web = imports("cli", "web");
    assert!(cli_to_web.is_empty(), "src/cli imports src/web:\n{}", cli_to_web.join("\n"));
    for to in ["web", "cli"] {
        let hits = imports("homeassistant.rs", to);
        assert!(hits.is_empty(), "src/homeassistant.rs imports src/{to}:\n{}", hits.join("\n"));
    }
}

#[test]
fn the_front_ends_reach_the_store_only_through_the_application_layer() {
    // Domain types that live in the store (Client, Session) may be named; its handle may not be used.
    for front in ["web", "cli", "homeassistant.rs"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(front);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            for (n, line) in text.lines().enumerate() {
                let handle =
                    line.contains("store::Store;") || line.contains("store::{Store") || line.contains(" Store,");
                assert!(
                    !line.contains(".store.") && !handle,
                    "{}:{} uses the store directly: {}",
                    f.display(),
                    n + 1,
                    line.trim()
                );
            }
        }
    }
}

/// What a dashboard error page says, as text.
fn page_text(html: &str) -> String {
    html.replace("&#34;", "\"").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_command_line_give_the_same_message_for_the_same_bad_input() {
    let s = site().await;
    let data = s.ts.dir.path().join("data");
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let cli_error = |args: &[&str]| {
        let out = coachd(&data).args(args).assert().code(2).get_output().stderr.clone();
        let text = String::from_utf8_lossy(&out).to_string();
        text.trim().strip_prefix("error: ").unwrap_or_else(|| panic!("an error line: {text}")).to_string()
    };
    let cases: [(&str, &str, &str); 2] = [("days", "--days", "mon,funday"), ("window", "--window", "25:00-26:00")];
    for (field, flag, bad) in cases {
        let cli = cli_error(&["assign", "alex", "10 squats", flag, bad]);
        assert!(!cli.contains("--"), "the message is written for a person, not for a flag: {cli}");
        let r = http
            .post(format!("{}/clients/{}/homework", s.base, s.a_client))
            .form(&[("csrf", csrf.as_str()), ("phrase", "10 squats"), (field, bad)])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = page_text(&r.text().await.expect("body"));
        assert!(body.contains(&cli), "the dashboard says the same as the CLI ({cli:?}):\n{body}");
    }
    let cli = cli_error(&["client", "add", "cy", "--tz", "Mars/Olympus"]);
    assert!(cli.contains("Mars/Olympus"), "{cli}");
    let r = http
        .post(format!("{}/clients", s.base))
        .form(&[("csrf", csrf.as_str()), ("name", "cy"), ("tz", "Mars/Olympus")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = page_text(&r.text().await.expect("body"));
    assert!(body.contains(&cli), "the dashboard says the same as the CLI ({cli:?}):\n{body}");
    assert_eq!(s.ts.store.list_homework(Some(s.a_client)).await.expect("hw").len(), 1, "nothing was assigned");
    assert!(s.ts.store.client_by_name("cy").await.is_err(), "nothing was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_gets_the_same_default_zone_from_both_front_ends() {
    let s = site().await;
    let data = s.ts.dir.path().join("data");
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    coachd(&data)
        .env("COACHD__CLIENTS__DEFAULT_TZ", "Asia/Tokyo")
        .args(["client", "add", "cli-made"])
        .assert()
        .success();
    // The dashboard's form offers the same default (the running server's config has none
    // set, so both fall back to the server's zone, else UTC).
    let roster = http.get(format!("{}/roster", s.base)).send().await.expect("roster").text().await.expect("body");
    let server_default =
        coachd::app::App::new(s.ts.store.clone(), std::sync::Arc::new(s.ts.config.clone())).expect("app").default_tz();
    assert!(roster.contains(&format!("value=\"{}\"", server_default.name())), "{roster}");
    let r = http
        .post(format!("{}/clients", s.base))
        .form(&[("csrf", csrf.as_str()), ("name", "web-made"), ("tz", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let web_made = s.ts.store.client_by_name("web-made").await.expect("added");
    assert_eq!(web_made.tz, server_default, "an empty zone is the default, not UTC");
    assert_eq!(s.ts.store.client_by_name("cli-made").await.expect("added").tz, chrono_tz::Asia::Tokyo);
}
