//! The real binary, driven end to end.

use crate::coachd;
use predicates::str::contains;
use std::path::Path;

fn client_list(data: &Path) -> String {
    let out = coachd(data).args(["client", "list", "--json"]).output().expect("runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn init_twice_keeps_one_database_and_the_same_key() {
    if crate::sqlite_file_only("coachd.db created once") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("init").assert().success().stdout(contains("(created)"));
    let key = std::fs::read(data.join("coachd.key")).expect("key");
    let config = std::fs::read_to_string(data.join("coachd.toml")).expect("config");
    coachd(&data).arg("init").assert().success().stdout(contains("nothing changed"));
    assert_eq!(std::fs::read(data.join("coachd.key")).expect("key"), key);
    assert_eq!(std::fs::read_to_string(data.join("coachd.toml")).expect("config"), config);
    let dbs: Vec<_> = std::fs::read_dir(&data)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".db"))
        .collect();
    assert_eq!(dbs.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    for name in ["coachd.key", "coachd.db", "coachd.toml"] {
        let mode = std::fs::metadata(data.join(name)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}

#[test]
fn bad_client_input_exits_2_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "add", "alex", "--tz", "Europe/Berlin", "--hr-max", "190"]).assert().success();
    let before = client_list(&data);
    let cases: [(&[&str], &str); 4] = [
        (&["client", "add", "bo", "--tz", "Europe/Berlinn"], "Europe/Berlinn"),
        (&["client", "add", "ALEX", "--tz", "UTC"], "already exists"),
        (&["client", "add", "cy", "--tz", "UTC", "--hr-max", "0"], "HR max 0"),
        (&["client", "add", "dee", "--birth-year", "3000"], "birth year 3000"),
    ];
    for (args, message) in cases {
        coachd(&data).args(args).assert().code(2).stderr(contains(message));
    }
    assert_eq!(client_list(&data), before);
    assert!(before.contains("\"tz\": \"Europe/Berlin\"") && before.contains("\"hr_max\": 190"), "{before}");
}

#[test]
fn client_list_prints_a_table_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["client", "list"]).assert().success().stdout(contains("no clients yet"));
    coachd(&data)
        .args(["client", "add", "Alex", "--tz", "America/Los_Angeles", "--birth-year", "1990"])
        .assert()
        .success();
    coachd(&data).args(["client", "list"]).assert().success().stdout(contains("America/Los_Angeles"));
    let json: serde_json::Value = serde_json::from_str(&client_list(&data)).expect("json");
    assert_eq!(json[0]["name"], "Alex");
    assert_eq!(json[0]["birth_year"], 1990);
    assert!(json[0]["hr_max"].is_null());
}

#[test]
fn config_check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("init").assert().success();
    coachd(&data).args(["config", "check"]).assert().success().stdout(contains("configuration OK"));
    std::fs::write(
        data.join("coachd.toml"),
        "[web]\nlisten = \"everywhere\"\n[store]\nbusy_timeout_ms = 0\nspeed = 1\n",
    )
    .expect("write");
    coachd(&data)
        .args(["config", "check"])
        .env("COACHD__LOG__FORMAT", "xml")
        .assert()
        .code(2)
        .stderr(contains("4 configuration problem(s)"))
        .stderr(contains("[web] listen"))
        .stderr(contains("[store] busy_timeout_ms"))
        .stderr(contains("unknown key \"store.speed\""))
        .stderr(contains("COACHD__LOG__FORMAT"));
    // Other commands refuse to start on a bad config too, with the same report.
    coachd(&data).args(["client", "list"]).assert().code(2).stderr(contains("[web] listen"));
}

#[test]
fn a_swapped_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("init").assert().success();
    std::fs::remove_file(data.join("coachd.key")).expect("rm key");
    coachd(&data).args(["client", "list"]).assert().code(1).stderr(contains("restore the original coachd.key"));
}

#[test]
fn secrets_and_help_texts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("--help").assert().success().stdout(contains("--data-dir"));
    coachd(&data).args(["client", "add", "--help"]).assert().success().stdout(contains("--hr-max"));
    coachd(&data).args(["nonsense"]).assert().code(2);
    coachd(&data)
        .args(["config", "show"])
        .env("COACHD__WEB__LISTEN", "127.0.0.1:9999")
        .assert()
        .success()
        .stdout(contains("listen = \"127.0.0.1:9999\""));
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["demo", "--now", "2026-11-20T19:00:00Z"]).assert().success();
    // `coachd status --json | head -c 300`: the demo's half year of verdicts is about
    // 330 KB, five times what a pipe holds, so the writer is still writing when the
    // reader goes (a smaller output could fit in the pipe whole and end normally).
    let mut child = crate::coachd_process(&data)
        .args(["status", "--from", "2026-06-01", "--to", "2026-11-30", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut head = [0u8; 300];
    out.read_exact(&mut head).expect("the first 300 bytes");
    drop(out);
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "ended by SIGPIPE like any Unix tool: {status:?} {err}");
}
