//! The watched inbox: `DATA/inbox/<client>/` is polled while `coachd run` runs.
//!
//! A file is imported once its size and modification time are the same on two scans in
//! a row (it has stopped growing), then moved to `DATA/archive/<client>/`; a file that
//! cannot be imported goes to `DATA/quarantine/<client>/` with a `.reason` file beside
//! it. Nothing is deleted. Import is idempotent by content hash, so a crash between the
//! commit and the move only makes the file a duplicate on the next scan, which is then
//! archived: nothing is lost or counted twice, and files that arrived while the daemon
//! was down are picked up on the first scans.
//!
//! [`CollectorInbox`] is the same watch in collector mode (`coachd collect --inbox DIR`):
//! it commits each stable file to the collector's outbox instead, and the hub imports it.

use crate::files::{import_file, Outcome};
use crate::source::{Source, SourceContext, SourceFuture};
use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

pub struct Inbox {
    root: PathBuf,
    archive: PathBuf,
    quarantine: PathBuf,
    poll: Duration,
}

impl Inbox {
    pub fn new(data_root: &Path, poll: Duration) -> Self {
        Self {
            root: data_root.join("inbox"),
            archive: data_root.join("archive"),
            quarantine: data_root.join("quarantine"),
            poll,
        }
    }
}

/// Files still being written by common sync tools.
fn in_progress(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('~')
        || [".part", ".partial", ".tmp", ".crdownload", ".download"].iter().any(|s| name.ends_with(s))
        || name.contains(".syncthing.")
}

fn move_into(file: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    crate::paths::move_into(file, dir, &name)
}

type Seen = HashMap<PathBuf, (u64, SystemTime)>;

impl Inbox {
    /// One pass over every client's folder; returns how many files were handled.
    async fn scan(&self, ctx: &SourceContext, seen: &mut Seen) -> anyhow::Result<usize> {
        let clients = ctx.store()?.list_clients().await?;
        let mut handled = 0;
        let mut still_there = Seen::new();
        for client in &clients {
            if ctx.shutdown.is_cancelled() {
                break;
            }
            let dir = self.root.join(&client.name);
            if !dir.exists() {
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                continue;
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| in_progress(&n.to_string_lossy())))
                .collect();
            entries.sort();
            let tz = client.tz;
            for path in entries {
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                if seen.get(&path) != Some(&stamp) {
                    still_there.insert(path, stamp); // new or still growing: look again next scan
                    continue;
                }
                let outcome = import_file(ctx.store()?, client, tz, &path, crate::files::quiet()).await?;
                let name = path.display().to_string();
                match outcome {
                    Outcome::Imported { format, activities, samples } => {
                        info!(file = %name, client = %client.name, %format, activities, samples, "imported");
                        move_into(&path, &self.archive.join(&client.name))?;
                    }
                    Outcome::Duplicate { format } => {
                        info!(file = %name, client = %client.name, %format, "already imported; archived");
                        move_into(&path, &self.archive.join(&client.name))?;
                    }
                    Outcome::Export(r) => {
                        for (member, why) in &r.rejected {
                            warn!(file = %name, client = %client.name, %member, reason = %why, "export member rejected");
                        }
                        info!(
                            file = %name, client = %client.name, imported = r.imported, duplicates = r.duplicates,
                            rejected = r.rejected.len(), activities = r.activities, "export imported"
                        );
                        move_into(&path, &self.archive.join(&client.name))?;
                    }
                    Outcome::Rejected(reason) => {
                        warn!(file = %name, client = %client.name, %reason, "rejected; quarantined");
                        let dir = self.quarantine.join(&client.name);
                        let target = move_into(&path, &dir)?;
                        let mut reason_file = target.clone().into_os_string();
                        reason_file.push(".reason");
                        std::fs::write(&reason_file, format!("{reason}\n"))?;
                    }
                }
                handled += 1;
            }
        }
        *seen = still_there;
        Ok(handled)
    }
}

impl Source for Inbox {
    fn name(&self) -> &str {
        "inbox"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            std::fs::create_dir_all(&self.root).with_context(|| format!("creating {}", self.root.display()))?;
            ctx.set_detail(format!("watching {}", self.root.display()));
            let mut seen = Seen::new();
            let mut total = 0;
            loop {
                total += self.scan(ctx, &mut seen).await?;
                if total > 0 {
                    ctx.set_detail(format!("watching {}; {total} files handled", self.root.display()));
                }
                if !ctx.sleep(self.poll).await {
                    return Ok(());
                }
            }
        })
    }
}

/// A collector's inbox folder (`collector.inbox`, `coachd collect --inbox DIR`): the
/// same stable-size watch as the hub's, with a folder per client named as at the hub
/// (`DIR/<client>/`; the collector knows no client names, so it creates none, and the
/// hub resolves the name). A stable file is committed to the outbox as a file batch, in
/// line with the sessions, then moved to `DATA/archive/<client>/` of the collector's
/// data dir; the hub reads it. A file larger than [`crate::store::collectors::FORWARDED_FILE_MAX`]
/// goes to `DATA/quarantine/<client>/` here with a `.reason`. Nothing is deleted. While
/// the outbox is full a file waits where it is. A crash between the commit and the move
/// sends the file again on the next scan; the hub imports by content hash, so it counts
/// once.
pub struct CollectorInbox {
    root: PathBuf,
    archive: PathBuf,
    quarantine: PathBuf,
    poll: Duration,
    max_bytes: u64,
}

impl CollectorInbox {
    pub fn new(root: PathBuf, data_root: &Path, poll: Duration, max_bytes: u64) -> Self {
        Self { root, archive: data_root.join("archive"), quarantine: data_root.join("quarantine"), poll, max_bytes }
    }

    /// One pass over every client folder; returns how many files were committed.
    async fn scan(
        &self,
        ctx: &SourceContext,
        outbox: &crate::store::outbox::Outbox,
        seen: &mut Seen,
        waiting: &mut std::collections::HashSet<PathBuf>,
    ) -> anyhow::Result<usize> {
        let mut folders: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .with_context(|| format!("reading {}", self.root.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| in_progress(&n.to_string_lossy())))
            .collect();
        folders.sort();
        let mut committed = 0;
        let mut still_there = Seen::new();
        for dir in folders {
            let Some(client) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| in_progress(&n.to_string_lossy())))
                .collect();
            entries.sort();
            for path in entries {
                if ctx.shutdown.is_cancelled() {
                    break;
                }
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                if seen.get(&path) != Some(&stamp) {
                    still_there.insert(path, stamp);
                    continue;
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if meta.len() > self.max_bytes {
                    let reason = format!(
                        "{} bytes: a collector forwards files of at most {} bytes; copy it into the hub's inbox \
                         (DATA/inbox/{client}/) or use coachd import at the hub",
                        meta.len(),
                        self.max_bytes
                    );
                    let target = move_into(&path, &self.quarantine.join(&client))?;
                    let mut reason_file = target.clone().into_os_string();
                    reason_file.push(".reason");
                    std::fs::write(&reason_file, format!("{reason}\n"))?;
                    tracing::error!(file = %path.display(), client = %client, size = meta.len(), max = self.max_bytes,
                        kept = %target.display(), "too big to forward; quarantined on this collector");
                    continue;
                }
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let file = crate::store::collectors::ForwardedFile {
                    client: client.clone(),
                    name: name.clone(),
                    sha256: crate::crypto::hex(&crate::crypto::sha256(&bytes)),
                    size: bytes.len() as u64,
                    data: {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.encode(&bytes)
                    },
                };
                match outbox.push_file(&file).await {
                    Ok(seq) => {
                        waiting.remove(&path);
                        info!(file = %path.display(), client = %client, batch = seq, size = file.size,
                            "committed to the outbox; forwarded to the hub from there");
                        move_into(&path, &self.archive.join(&client))?;
                        ctx.note_batch();
                        committed += 1;
                    }
                    Err(crate::store::outbox::PushError::Full { .. }) => {
                        if waiting.insert(path.clone()) {
                            warn!(file = %path.display(), client = %client,
                                "the outbox is full: the file waits in the inbox folder until there is room");
                        }
                    }
                    Err(crate::store::outbox::PushError::Store(e)) => return Err(e.into()),
                }
            }
        }
        *seen = still_there;
        Ok(committed)
    }
}

impl Source for CollectorInbox {
    fn name(&self) -> &str {
        "inbox"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let crate::source::Sink::Outbox(outbox) = &ctx.sink else {
                anyhow::bail!("the collector's inbox folder runs in collector mode only (coachd collect)");
            };
            std::fs::create_dir_all(&self.root).with_context(|| format!("creating {}", self.root.display()))?;
            ctx.set_detail(format!("watching {} (a folder per client, named as at the hub)", self.root.display()));
            let mut seen = Seen::new();
            let mut waiting = std::collections::HashSet::new();
            let mut total = 0;
            loop {
                total += self.scan(ctx, outbox, &mut seen, &mut waiting).await?;
                if total > 0 {
                    ctx.set_detail(format!("watching {}; {total} files committed", self.root.display()));
                }
                if !ctx.sleep(self.poll).await {
                    return Ok(());
                }
            }
        })
    }
}
