//! `coachd import`: files, folders and whole account exports. One line per file (an
//! export: a summary line and its refused members); a progress bar on a terminal for
//! large files; exit 2 if anything was rejected (the good ones are stored).

use super::Failure;
use crate::app::App;
use crate::files::{collect, ExportReport, Outcome, Progress, Tick};
use crate::paths::DataDir;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// More refused members than this go to a report file instead of the terminal.
const SHOWN_REJECTIONS: usize = 20;

/// A bar that appears once a file is large enough to wait for (or is an export).
fn progress_bar() -> (Progress, Arc<Mutex<Option<ProgressBar>>>) {
    let bar: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
    if !std::io::stderr().is_terminal() {
        return (crate::files::quiet(), bar);
    }
    let shared = bar.clone();
    let progress: Progress = Arc::new(move |t: Tick| {
        let mut slot = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() && (t.files > 0 || t.all > 64 << 20) {
            let style = ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes}  {msg}  ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            *slot = Some(ProgressBar::new(t.all).with_style(style));
        }
        if let Some(b) = slot.as_ref() {
            b.set_length(t.all);
            b.set_position(t.done.min(t.all));
            if t.files > 0 {
                b.set_message(format!("{} files, {} activities", t.files, t.activities));
            }
        }
    });
    (progress, bar)
}

pub async fn import(app: &App, data: &DataDir, client: &str, paths: &[PathBuf]) -> Result<(), Failure> {
    let client = app.client(client).await?;
    let files = collect(paths).map_err(|e| {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        Failure::Input(format!("cannot read {}: {e}", shown.join(", ")))
    })?;
    let mut rejected = 0;
    let mut members_rejected = 0;
    let mut failed = None;
    // One bar, shown while a large file or an export is read, cleared at its outcome.
    let (progress, bar) = progress_bar();
    let imported = app
        .import_files(&client, &files, progress, |i, outcome| {
            if let Some(b) = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                b.finish_and_clear();
            }
            let path = files[i].display();
            match outcome {
                Outcome::Imported { format, activities, samples } => {
                    println!("imported   {path} ({format}: {activities} activities, {samples} samples)")
                }
                Outcome::Duplicate { format } => println!("duplicate  {path} ({format}: already imported)"),
                Outcome::Rejected(reason) => {
                    rejected += 1;
                    println!("rejected   {path}: {reason}");
                }
                Outcome::Export(r) => {
                    members_rejected += r.rejected.len();
                    if let Err(e) = export_lines(data, &files[i], &r) {
                        failed.get_or_insert(e);
                    }
                }
            }
        })
        .await;
    if let Some(b) = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        b.finish_and_clear();
    }
    imported?;
    if let Some(e) = failed {
        return Err(e);
    }
    if rejected > 0 || members_rejected > 0 {
        let mut why = Vec::new();
        if rejected > 0 {
            why.push(format!("{rejected} of {} files rejected", files.len()));
        }
        if members_rejected > 0 {
            why.push(format!("{members_rejected} files inside exports rejected"));
        }
        return Err(Failure::Input(format!("{}; the others were stored", why.join(", "))));
    }
    Ok(())
}

/// An export's summary line and its refused members (on screen, or past
/// [`SHOWN_REJECTIONS`] in a report file under the data dir).
fn export_lines(data: &DataDir, path: &Path, r: &ExportReport) -> Result<(), Failure> {
    let kind = r.kind.map(|k| k.to_string()).unwrap_or_else(|| "export".into());
    println!(
        "imported   {} ({kind}: {} files imported, {} already there, {} rejected; {} activities, {} samples)",
        path.display(),
        r.imported,
        r.duplicates,
        r.rejected.len(),
        r.activities,
        r.samples
    );
    if r.rejected.len() <= SHOWN_REJECTIONS {
        for (member, why) in &r.rejected {
            println!("  rejected {member}: {why}");
        }
        return Ok(());
    }
    let dir = data.root().join("reports");
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    let report = dir.join(format!("import-{stem}-{}.txt", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    let text: String = r.rejected.iter().map(|(m, why)| format!("{m}\t{why}\n")).collect();
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&report, text))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", report.display())))?;
    for (member, why) in r.rejected.iter().take(5) {
        println!("  rejected {member}: {why}");
    }
    println!("  … and {} more; every refused file and why: {}", r.rejected.len() - 5, report.display());
    Ok(())
}
