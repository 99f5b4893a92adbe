//! The data dir: everything coachd keeps lives under one folder.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `--data-dir` / `COACHD_DATA_DIR` when given (clap reads both), else
    /// `$STATE_DIRECTORY` under systemd, else `$XDG_DATA_HOME/coachd`, else
    /// `~/.local/share/coachd`.
    pub fn resolve(given: Option<PathBuf>) -> Result<Self, String> {
        if let Some(dir) = given {
            return Ok(Self::new(dir));
        }
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(state) = var("STATE_DIRECTORY") {
            // systemd passes a colon-separated list when the unit names several.
            let first = state.to_string_lossy().split(':').next().unwrap_or_default().to_string();
            return Ok(Self::new(first));
        }
        if let Some(xdg) = var("XDG_DATA_HOME") {
            return Ok(Self::new(PathBuf::from(xdg).join("coachd")));
        }
        if let Some(home) = var("HOME") {
            return Ok(Self::new(PathBuf::from(home).join(".local/share/coachd")));
        }
        Err("no data dir: pass --data-dir DIR or set COACHD_DATA_DIR".into())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("coachd.db")
    }

    pub fn key(&self) -> PathBuf {
        self.root.join("coachd.key")
    }

    pub fn default_config(&self) -> PathBuf {
        self.root.join("coachd.toml")
    }
}

/// Create `path` (mode 0600) holding `bytes`, unless it exists; returns whether it was
/// written. A temp file is filled and synced, then hard-linked into place, so a crash
/// never leaves a half-written file and a concurrent creator's file is never replaced.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}
