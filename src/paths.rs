//! The data dir: everything coachd keeps lives under one folder.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A packaged (system) install's data dir and configuration file.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/coachd";
pub const SYSTEM_CONFIG: &str = "/etc/coachd/coachd.toml";

/// The owner (uid, gid) of a path, if it can be read.
fn owner(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `--data-dir` / `COACHD_DATA_DIR` when given (clap reads both), else
    /// `$STATE_DIRECTORY` under systemd, else a packaged install's `/var/lib/coachd` for
    /// root and its owner, else `$XDG_DATA_HOME/coachd`, else `~/.local/share/coachd`.
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
        // A packaged install (its configuration in /etc): `sudo coachd ...` and the
        // service user reach the service's data; anyone else keeps their own.
        let system = Path::new(SYSTEM_DATA_DIR);
        if Path::new(SYSTEM_CONFIG).exists() && owner(system).is_some_and(|(uid, _)| euid() == 0 || euid() == uid) {
            return Ok(Self::new(system));
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

    /// `DIR/coachd.toml`; for a packaged install's data dir, `/etc/coachd/coachd.toml`
    /// when it is there (the package's conffile).
    pub fn default_config(&self) -> PathBuf {
        if self.is_system() && Path::new(SYSTEM_CONFIG).exists() {
            return PathBuf::from(SYSTEM_CONFIG);
        }
        self.root.join("coachd.toml")
    }

    /// Whether this is a packaged install's data dir.
    pub fn is_system(&self) -> bool {
        self.root == Path::new(SYSTEM_DATA_DIR)
    }

    /// Run as the data dir's owner from here on, when run as root on a data dir someone
    /// else owns (`sudo coachd client add ...` on a packaged install): files made from now
    /// on (the database's journal, backups) belong to the service user, never to root.
    /// The user's name, if it switched.
    pub fn become_owner(&self) -> Result<Option<String>, String> {
        let Some((uid, gid)) = owner(&self.root) else { return Ok(None) };
        if euid() != 0 || uid == 0 {
            return Ok(None);
        }
        // SAFETY: getpwuid_r fills `pw` and points its strings into `buf`, which outlives
        // every use; the other calls take plain values or that name.
        unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
            let name =
                if rc == 0 && !found.is_null() { Some(std::ffi::CStr::from_ptr(pw.pw_name).to_owned()) } else { None };
            let groups_ok = match &name {
                Some(n) => libc::initgroups(n.as_ptr(), gid) == 0,
                None => libc::setgroups(0, std::ptr::null()) == 0,
            };
            if !groups_ok || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(format!(
                    "cannot switch to the owner (uid {uid}) of {}: {}",
                    self.root.display(),
                    std::io::Error::last_os_error()
                ));
            }
            Ok(Some(name.map_or_else(|| format!("uid {uid}"), |n| n.to_string_lossy().into_owned())))
        }
    }

    /// Held (flock) by a running daemon and by a restore, so neither runs beside the other.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("coachd.lock")
    }

    /// Where the daemon's daily backups (and `coachd backup` without a file) go.
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// A client's inbox, archive and quarantine folders.
    pub fn client_folders(&self, client: &str) -> [PathBuf; 3] {
        ["inbox", "archive", "quarantine"].map(|f| self.root.join(f).join(client))
    }
}

/// `dir/name`, or `dir/name.1`, `.2`, ... when taken: a move never overwrites.
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..).map(|i| dir.join(format!("{name}.{i}"))).find(|p| !p.exists()).unwrap_or(first)
}

/// Move `file` into `dir` (made if missing) as `name`, or `name.1`, ... when taken; where
/// it went.
/// Across file systems (a collector's inbox folder on a share) it is copied, synced,
/// and only then removed.
pub fn move_into(file: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = free_path(dir, name);
    match std::fs::rename(file, &target) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let bytes = std::fs::read(file)?;
            if !write_new_private(&target, &bytes)? {
                return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, target.display().to_string()));
            }
            std::fs::remove_file(file)?;
        }
        other => other?,
    }
    Ok(target)
}

/// Keep `bytes` in `dir` as `name` (or `name.1`, ... when another file has that name)
/// with a `NAME.reason` file beside it saying why, once: the same bytes already kept
/// under that name are not written again (a refused or unreadable file handled twice
/// after a crash). Where they are.
pub fn keep_with_reason(dir: &Path, name: &str, bytes: &[u8], reason: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut target = dir.join(name);
    for i in 1.. {
        match std::fs::read(&target) {
            Ok(there) if there == bytes => return Ok(target),
            Ok(_) => target = dir.join(format!("{name}.{i}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    let mut why = target.clone().into_os_string();
    why.push(".reason");
    std::fs::write(&why, format!("{reason}\n"))?;
    write_new_private(&target, bytes)?;
    Ok(target)
}

/// An exclusive lock on the data dir's lock file, released when dropped (or when the
/// process dies, however it dies: it is an `flock`, not a pid file).
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
}

/// Take the data dir's lock for `who` ("daemon", "restore") without waiting. `Ok(Err(text))`
/// when another process holds it: the text is what that process wrote there (its pid
/// and what it is).
pub fn try_lock(path: &Path, who: &str) -> std::io::Result<Result<DataLock, String>> {
    use std::io::{Read, Seek};
    use std::os::fd::AsRawFd;
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err);
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let text = text.trim();
        return Ok(Err(if text.is_empty() { "another coachd process".into() } else { text.to_string() }));
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{who} (pid {})", std::process::id())?;
    file.sync_all()?;
    Ok(Ok(DataLock { _file: file }))
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

/// A file name safe to keep: its last part only, letters, digits, `.`, `-`, `_`.
pub fn safe_name(given: &str) -> String {
    let base = given.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(100)
        .collect();
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        "upload".into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_lock_is_held_until_dropped_and_names_its_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coachd.lock");
        let first = try_lock(&path, "daemon").expect("io").expect("free");
        let refused = try_lock(&path, "restore").expect("io").expect_err("held");
        assert_eq!(refused, format!("daemon (pid {})", std::process::id()));
        drop(first);
        let again = try_lock(&path, "restore").expect("io");
        assert!(again.is_ok(), "free once the holder is gone");
    }

    #[test]
    fn a_file_is_kept_with_its_reason_once_and_another_of_the_same_name_beside_it() {
        let dir = tempfile::tempdir().expect("dir");
        let q = dir.path().join("quarantine/ana");
        let first = keep_with_reason(&q, "run.fit", b"one", "why one").expect("keep");
        assert_eq!(keep_with_reason(&q, "run.fit", b"one", "why one").expect("again"), first, "not twice");
        let second = keep_with_reason(&q, "run.fit", b"two", "why two").expect("keep");
        assert_eq!(second, q.join("run.fit.1"));
        assert_eq!(std::fs::read(&second).expect("read"), b"two");
        assert_eq!(std::fs::read_to_string(q.join("run.fit.1.reason")).expect("reason"), "why two\n");
        assert_eq!(std::fs::read_dir(&q).expect("dir").count(), 4);
    }
}
