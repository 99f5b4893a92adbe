//! `coachd doctor [--json]`: the checks of [`crate::app::doctor`], one line each.

use super::Failure;
use crate::app::doctor::{Report, Status};
use crate::paths::DataDir;
use std::path::Path;

pub const DOCTOR_HELP: &str = "\
Each check is ok, warn (works, but will bite: no backup yet, the daemon not running, the
clock unknown), fail (broken: do what its fix says) or skip (not in use, or not checked
because an earlier check failed). Exit 0 when nothing failed (warnings allowed), 1 when
anything did. Nothing is changed; every probe (D-Bus, timedatectl, /healthz) gives up
after a few seconds. Run it as the service user: sudo -u coachd coachd doctor";

pub async fn doctor(
    data: &DataDir,
    config_path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    json: bool,
) -> Result<(), Failure> {
    let config = crate::app::load_config(config_path, env);
    let report = crate::app::doctor::doctor(data, config_path, config).await;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(anyhow::Error::new)?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    if report.failures > 0 {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{} check(s) failed; each line marked fail says what to do",
            report.failures
        )));
    }
    Ok(())
}

fn print_report(report: &Report) {
    for c in &report.checks {
        let what = match &c.subject {
            Some(s) => format!("{} {s}", c.check),
            None => c.check.to_string(),
        };
        let fix = match (&c.fix, c.status) {
            (Some(f), Status::Warn | Status::Fail) => format!(" -> fix: {f}"),
            _ => String::new(),
        };
        println!("{:<4}  {what}: {}{fix}", c.status.as_str(), c.message);
    }
    println!(
        "{}: {} check(s), {} failed, {} warning(s)",
        report.status.as_str(),
        report.checks.len(),
        report.failures,
        report.warnings
    );
}
