//! What `coachd doctor` asks the operating system: file owners and modes, whether a
//! folder takes a new file, free space, the clock's synchronisation, group membership.
//! Every call that could wait on something outside runs under a time limit.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Owner and permission bits of a path.
pub struct Owned {
    pub uid: u32,
    pub mode: u32,
    pub is_dir: bool,
}

pub fn owned(path: &Path) -> std::io::Result<Owned> {
    let m = std::fs::metadata(path)?;
    Ok(Owned { uid: m.uid(), mode: m.mode() & 0o7777, is_dir: m.is_dir() })
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A user's name from the password database, else the number.
pub fn user_name(uid: u32) -> String {
    passwd_field(uid).unwrap_or_else(|| format!("uid {uid}"))
}

fn passwd_field(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// Whether a new file can be made in `dir` (mode bits, read-only mounts, a sandbox's
/// `ProtectSystem` all count): one is made and removed.
pub fn writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes free for this user on the file system of `path`, and its size.
pub fn disk_space(path: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statvfs only writes the struct we pass, which is zeroed and ours.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // The fields are 32 bits wide on some platforms, 64 on others.
    #[allow(clippy::unnecessary_cast)]
    let (block, free, total) = (s.f_frsize as u64, s.f_bavail as u64, s.f_blocks as u64);
    Ok((free.saturating_mul(block.max(1)), total.saturating_mul(block.max(1))))
}

/// The groups this process is in, by gid.
#[cfg(feature = "ble")]
pub fn groups() -> Vec<u32> {
    // SAFETY: a first call with size 0 only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut gids = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(0)];
    // SAFETY: the buffer holds `n` gids.
    let got = unsafe { libc::getgroups(n, gids.as_mut_ptr()) };
    gids.truncate(usize::try_from(got).unwrap_or(0));
    // SAFETY: getegid has no preconditions.
    gids.push(unsafe { libc::getegid() });
    gids
}

/// A group's gid by name, from the group database.
#[cfg(feature = "ble")]
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// What a command printed, if it ran, succeeded and finished within `limit`; a command
/// that does not finish is killed.
pub fn command_output(program: &str, args: &[&str], limit: Duration) -> Result<String, String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer within {} s", limit.as_secs().max(1)));
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{program}: {}", err.trim().lines().collect::<Vec<_>>().join(" ")))
    }
}

/// Whether the system clock is synchronised (systemd's view), or why that is unknown.
pub fn clock_synchronised(limit: Duration) -> Result<bool, String> {
    let out = command_output("timedatectl", &["show", "-p", "NTPSynchronized", "--value"], limit)?;
    match out.as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("timedatectl answered {other:?}")),
    }
}
