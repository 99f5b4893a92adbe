//! `coachd setup`, the first run: driven by flags (a scripted install) and by a person at
//! a pseudo-terminal (`coachd` alone), each ending in a configuration `coachd config
//! check` accepts, with the admin's comments kept, a trainer and a client; run again,
//! it changes nothing; a wrong answer changes nothing.

use crate::coachd;
use std::path::Path;

fn config_of(data: &Path) -> (String, toml::Table) {
    let text = std::fs::read_to_string(data.join("coachd.toml")).expect("config");
    let table = text.parse().expect("toml");
    (text, table)
}

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn setup_from_flags_writes_a_checked_config_and_is_safe_to_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).arg("init").assert().success();
    let flags = [
        "setup",
        "--yes",
        "--public-url",
        "https://coach.example.org/",
        "--trainer",
        "anna",
        "--password-stdin",
        "--client",
        "alex",
        "--tz",
        "Asia/Tokyo",
        "--sources",
        "inbox,strava,oura,intervals",
    ];
    let out = stdout(coachd(&data).args(flags).write_stdin("a long enough password\n"));
    assert!(out.contains("setup done") && out.contains("coachd run") && out.contains("coachd share alex"), "{out}");
    assert!(out.contains("providers.strava.client_id"), "what Strava still needs: {out}");

    let (text, table) = config_of(&data);
    assert!(text.starts_with("# coachd configuration"), "the default file's comments are kept:\n{text}");
    assert!(text.contains("# listen = \"127.0.0.1:7878\""), "{text}");
    assert_eq!(table["web"]["public_url"].as_str(), Some("https://coach.example.org"));
    assert_eq!(table["ble"]["enabled"].as_bool(), Some(false));
    assert_eq!(table["providers"]["polar"]["enabled"].as_bool(), Some(false));
    assert!(table["providers"].get("strava").and_then(|s| s.get("enabled")).is_none(), "left on, as it was");
    let check = stdout(coachd(&data).args(["config", "check"]));
    assert!(check.contains("configuration OK"), "{check}");
    assert!(stdout(coachd(&data).args(["trainer", "list"])).contains("anna"));
    let clients = stdout(coachd(&data).args(["client", "list"]));
    assert!(clients.contains("alex") && clients.contains("Asia/Tokyo"), "{clients}");

    // Again, the same: nothing changes.
    let before = std::fs::read_to_string(data.join("coachd.toml")).expect("config");
    let out = stdout(coachd(&data).args(flags).write_stdin("a long enough password\n"));
    assert!(out.contains("setup done"), "{out}");
    assert_eq!(std::fs::read_to_string(data.join("coachd.toml")).expect("config"), before);
    let out = coachd(&data).args(flags).write_stdin("x\n").output().expect("run");
    assert!(out.status.success(), "trainers exist: the password is not asked for");

    // A wrong answer is refused with what to do, and changes nothing.
    for (flag, value, says) in [
        ("--sources", "inbox,garmin", "no source \"garmin\""),
        ("--public-url", "coach.example.org", "starts with https://"),
    ] {
        let out = coachd(&data).args(["setup", "--yes", flag, value]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert_eq!(std::fs::read_to_string(data.join("coachd.toml")).expect("config"), before);
    }
    // A value the loader refuses never reaches the file.
    let out = coachd(&data)
        .args(["setup", "--yes", "--public-url", "https://coach.example.org", "--sources", "inbox"])
        .env("COACHD__WEB__LISTEN", "not an address")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(data.join("coachd.toml")).expect("config"), before);
}

#[test]
fn coachd_alone_at_a_terminal_walks_the_admin_through_it() {
    use rexpect::session::spawn_command;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut cmd = crate::coachd_process(&data);
    cmd.env_remove("COACHD_CONFIG").env_remove("RUST_LOG");
    let mut p = spawn_command(cmd, Some(30_000)).expect("coachd in a pseudo-terminal");
    p.exp_string("public URL").expect("step 1");
    p.exp_string(": ").expect("prompt");
    p.send_line("https://coach.example.org").expect("answer");
    let mut asked = Vec::new();
    loop {
        let (_, prompt) =
            p.exp_regex(r"(enable [a-z]+\? \(y/n\) \[[yn]\]: |client id: |client secret \(not shown\): |MQTT broker host.*: |login name[^:]*: )")
                .expect("a question");
        if let Some(name) = prompt.strip_prefix("enable ").and_then(|r| r.split('?').next()) {
            asked.push(name.to_string());
            let yes = ["inbox", "strava", "mqtt"].contains(&name);
            p.send_line(if yes { "y" } else { "n" }).expect("answer");
        } else if prompt.starts_with("client id") {
            p.send_line("52312").expect("id");
        } else if prompt.starts_with("client secret") {
            p.send_line("hidden-strava-secret").expect("secret");
        } else if prompt.starts_with("MQTT") {
            p.send_line("broker.lan").expect("host");
        } else {
            break;
        }
    }
    for name in ["inbox", "ble", "strava", "polar", "intervals", "oura", "mqtt"] {
        assert!(asked.iter().any(|a| a == name), "asked about {name}: {asked:?}");
    }
    p.send_line("anna").expect("trainer");
    p.exp_string("not shown): ").expect("password");
    p.send_line("short").expect("too short");
    p.exp_string("use at least 10").expect("refused");
    p.exp_string("not shown): ").expect("password again");
    p.send_line("correct horse battery").expect("password");
    p.exp_string("again: ").expect("confirm");
    p.send_line("correct horse battery").expect("password");
    p.exp_string("added trainer anna").expect("trainer added");
    p.exp_string("client's name").expect("step 4");
    p.exp_string(": ").expect("prompt");
    p.send_line("alex").expect("client");
    p.exp_string("time zone").expect("tz");
    p.exp_string(": ").expect("prompt");
    p.send_line("America/New_York").expect("tz");
    let rest = p.exp_string("coachd doctor").expect("the next commands");
    assert!(rest.contains("setup done") && rest.contains("coachd share alex"), "{rest}");
    let all = p.exp_eof().unwrap_or_default();
    assert!(
        !all.contains("hidden-strava-secret") && !rest.contains("hidden-strava-secret"),
        "the secret is not echoed"
    );

    let (text, table) = config_of(&data);
    assert!(text.contains("# coachd configuration"), "{text}");
    assert_eq!(table["web"]["public_url"].as_str(), Some("https://coach.example.org"));
    assert_eq!(table["providers"]["strava"]["client_id"].as_str(), Some("52312"));
    assert_eq!(table["providers"]["strava"]["client_secret"].as_str(), Some("hidden-strava-secret"));
    assert_eq!(table["mqtt"]["enabled"].as_bool(), Some(true));
    assert_eq!(table["mqtt"]["host"].as_str(), Some("broker.lan"));
    assert_eq!(table["providers"]["oura"]["enabled"].as_bool(), Some(false));
    assert!(stdout(coachd(&data).args(["config", "check"])).contains("configuration OK"));
    assert!(stdout(coachd(&data).args(["trainer", "list"])).contains("anna"));
    assert!(stdout(coachd(&data).args(["client", "list"])).contains("America/New_York"));
}
