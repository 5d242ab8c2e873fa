//! Files on the host: atomic writes, directory fsync and free space.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::{fail, ExitCode};

/// Write `contents` to `path` atomically: a temp file in the same directory, fsync,
/// rename over the target, fsync the directory. Readers see the old file or the new
/// one, never a partial one, even across a crash. `mode` applies to the new file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_atomic_at(path, contents, mode, "fsutil.mid_write")
}

/// [`write_atomic`] with the failure point (src/failpoint.rs) passed halfway through
/// writing the temp file named: a crash there must leave `path` as it was.
pub fn write_atomic_at(path: &Path, contents: &[u8], mode: u32, point: &str) -> Result<()> {
    replace_atomic(path, mode, |file, tmp| {
        let (head, tail) = contents.split_at(contents.len() / 2);
        file.write_all(head)
            .with_context(|| format!("writing {}", tmp.display()))?;
        crate::failpoint::hit(point)?;
        file.write_all(tail)
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Copy `src` to `dst` atomically, as [`write_atomic`] does, streaming (the IAM -all
/// jar is tens of MB and need not sit in memory). `dst` gets exactly `mode`, whatever
/// the umask.
pub fn copy_atomic(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    replace_atomic(dst, mode, |file, tmp| {
        let mut from = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        std::io::copy(&mut from, file)
            .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", tmp.display()))
    })
}

/// The atomic replacement itself: `write` fills the temp file (created with `mode`,
/// less the umask); then fsync, rename over `path`, fsync the directory. On any error
/// the temp file is removed and `path` is untouched.
fn replace_atomic(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    remove_stale_temps(dir, &name.to_string_lossy());
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        write(&mut file, &tmp)?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Remove `.<name>.tmp-<pid>` files that a process no longer alive left behind (a
/// crash between creating and renaming the temp file). Best effort: a leftover is only
/// litter, never read.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else {
            continue;
        };
        if pid != std::process::id() as libc::pid_t && !process_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// fsync a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Bytes free to an unprivileged writer in the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", dir.display()))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` is a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", dir.display()));
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// [`free_space`] for a path that may not exist yet (`check` runs before the first
/// install): measured on its nearest existing ancestor, which is returned too.
pub fn free_space_near(path: &Path) -> Result<(u64, PathBuf)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    Ok((free_space(p)?, p.to_path_buf()))
}

/// Fail with EX_IOERR before writing `need` bytes into `dir` when they do not fit.
pub fn check_space(dir: &Path, need: u64) -> Result<()> {
    let free = free_space(dir)?;
    if need > free {
        return Err(fail(
            ExitCode::Io,
            format!(
                "not enough disk space in {}: need {} MB, {} MB free",
                dir.display(),
                need.div_ceil(1_000_000),
                free / 1_000_000
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", 0o640).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // No temp file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temps_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        // pid_max is at most 2^22: this pid cannot be alive.
        let dead = dir.path().join(".a.conf.tmp-99999999");
        let ours_alive = dir.path().join(format!(
            ".a.conf.tmp-{}",
            std::os::unix::process::parent_id()
        ));
        let other = dir.path().join(".b.conf.tmp-99999999");
        for p in [&dead, &ours_alive, &other] {
            fs::write(p, "partial").unwrap();
        }
        write_atomic(&path, b"new", 0o640).unwrap();
        assert!(!dead.exists(), "the dead process's temp file stayed");
        assert!(
            ours_alive.exists(),
            "a live process's temp file was removed"
        );
        assert!(other.exists(), "another file's temp file was removed");
    }

    #[test]
    fn failure_leaves_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("a.conf");
        assert!(write_atomic(&path, b"x", 0o644).is_err());
    }

    #[test]
    fn space_check_names_dir_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), 1).unwrap();
        let err = check_space(dir.path(), u64::MAX / 2).unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Io);
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().display().to_string()) && msg.contains("MB free"),
            "{msg}"
        );
    }

    #[test]
    fn free_space_of_missing_dir_uses_ancestor() {
        let (free, on) = free_space_near(Path::new("/tmp/does/not/exist/yet")).unwrap();
        assert!(free > 0);
        assert!(Path::new("/tmp").starts_with(&on) || on == Path::new("/"));
    }
}
