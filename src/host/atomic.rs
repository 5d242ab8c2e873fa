//! Atomic writes: a temp file in the same directory, created exclusively without
//! following a link, fsync, rename over the target, fsync the directory. A write never
//! opens an existing name, so a symlink planted at the target is replaced, never
//! written through.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::dir::{check_name, not_found, Dir};
use super::held::parent_dir;

/// Tries at a fresh random temp name before giving up: a clash is already 1 in 2^64.
const TEMP_TRIES: usize = 8;

/// Write `contents` to `path` atomically: a temp file in the same directory, fsync,
/// rename over the target, fsync the directory. Readers see the old file or the new
/// one, never a partial one, even across a crash. `mode` applies to the new file. A
/// symlink at `path` is replaced, never written through; under the state directory the
/// directory holding `path` is resolved beneath its held handle ([`Dir::parent_of`]).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_atomic_at(path, contents, mode, "fsutil.mid_write")
}

/// [`write_atomic`] with the failure point (src/host/failpoint.rs) passed halfway through
/// writing the temp file named: a crash there must leave `path` as it was.
pub fn write_atomic_at(path: &Path, contents: &[u8], mode: u32, point: &str) -> Result<()> {
    let (dir, name) = Dir::parent_of(path)?;
    dir.write_atomic_at(&name, contents, mode, point)
}

/// fsync a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    Dir::open_trusted(dir)?.sync()
}

/// The directory `path`, created with exactly `mode` if missing (its parents as
/// `mkdir -p` would): its parents are the caller's to trust (beneath the held state
/// directory when under it), but the directory itself must be a real one, not a
/// symlink planted in its place (65).
pub fn ensure_dir(path: &Path, mode: u32) -> Result<Dir> {
    let parent = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    if Dir::open_trusted(parent).is_err() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let parent = Dir::open_trusted(parent)?;
    parent.create_dir(name, mode)?;
    parent.open_dir(name)
}

/// 64 unpredictable bits as hex, for temp names nobody can plant in advance. Should
/// the kernel have no randomness to give (it always has, since Linux 3.17), the name is
/// only unique, and `O_EXCL|O_NOFOLLOW` still refuses whatever was planted there.
pub(super) fn random_hex() -> String {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) if n > 0 => filled += n,
            Err(Errno::INTR) => {}
            _ => break,
        }
    }
    if filled < buf.len() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        buf = (nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40)).to_le_bytes();
    }
    hex::encode(buf)
}

fn process_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

impl Dir {
    /// [`write_atomic`] of `name` in this directory.
    pub fn write_atomic(&self, name: impl AsRef<OsStr>, contents: &[u8], mode: u32) -> Result<()> {
        self.write_atomic_at(name, contents, mode, "fsutil.mid_write")
    }

    /// [`write_atomic_at`] of `name` in this directory.
    pub fn write_atomic_at(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
        point: &str,
    ) -> Result<()> {
        self.replace(name.as_ref(), mode, |file, tmp| {
            let (head, tail) = contents.split_at(contents.len() / 2);
            file.write_all(head)
                .with_context(|| format!("writing {}", tmp.display()))?;
            crate::host::failpoint::hit(point)?;
            file.write_all(tail)
                .with_context(|| format!("writing {}", tmp.display()))
        })
    }

    /// [`Dir::write_atomic`] with the new file owned by `uid:gid` and of exactly `mode`
    /// (set-id bits included), whatever the umask: both are set on the temp file before
    /// the rename, so the file never exists with another owner or mode.
    pub fn write_atomic_owned(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<()> {
        self.replace(name.as_ref(), 0o600, |file, tmp| {
            file.write_all(contents)
                .with_context(|| format!("writing {}", tmp.display()))?;
            // Owner first: chown may clear set-id bits that the chmod then puts back.
            std::os::unix::fs::fchown(&*file, Some(uid), Some(gid))
                .with_context(|| format!("{}: cannot keep owner {uid}:{gid}", tmp.display()))?;
            rustix::fs::fchmod(&*file, Mode::from_raw_mode(mode))
                .map_err(std::io::Error::from)
                .with_context(|| format!("chmod {}", tmp.display()))
        })
    }

    /// Copy `src` (opened without following a symlink at its name) to `name` here,
    /// atomically, with exactly `mode`.
    pub fn copy_atomic(&self, name: impl AsRef<OsStr>, src: &Path, mode: u32) -> Result<()> {
        let (src_dir, src_name) = Dir::parent_of(src)?;
        let mut from = src_dir
            .open_file(&src_name)?
            .ok_or_else(|| not_found(src))?;
        self.copy_atomic_from(name, &mut from, src, mode)
    }

    /// [`Dir::copy_atomic`] from an open file (`src` names it in messages).
    pub fn copy_atomic_from(
        &self,
        name: impl AsRef<OsStr>,
        from: &mut File,
        src: &Path,
        mode: u32,
    ) -> Result<()> {
        self.replace(name.as_ref(), mode, |file, tmp| {
            std::io::copy(from, file)
                .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
            rustix::fs::fchmod(&*file, Mode::from_raw_mode(mode))
                .map_err(std::io::Error::from)
                .with_context(|| format!("chmod {}", tmp.display()))
        })
    }

    /// Point the symlink `name` at `target` atomically: a new link under a random temp
    /// name renamed over it (a planted link or file there is replaced, never followed).
    /// `point` is the failure point passed between the two. Returns whether it changed.
    pub fn symlink_atomic_at(
        &self,
        name: impl AsRef<OsStr>,
        target: &Path,
        point: &str,
    ) -> Result<bool> {
        let name = name.as_ref();
        check_name(name)?;
        if self.read_link(name).as_deref() == Some(target) {
            return Ok(false);
        }
        let tmp = self.create_temp(name, |tmp| rustix::fs::symlinkat(target, &self.fd, tmp))?;
        let swapped = self
            .give_link(&tmp)
            .and_then(|()| crate::host::failpoint::hit(point))
            .and_then(|()| self.rename(&tmp, name));
        if swapped.is_err() {
            let _ = self.remove_file(&tmp);
        }
        swapped.with_context(|| format!("replacing {}", self.join(name).display()))?;
        self.sync()?;
        Ok(true)
    }

    /// Make a new entry under a fresh random temp name for `name` (`.<name>.tmp-<pid>-<hex>`);
    /// `make` creates it exclusively. Names already taken (planted) are skipped, never
    /// reused.
    fn create_temp(
        &self,
        name: &OsStr,
        mut make: impl FnMut(&OsStr) -> rustix::io::Result<()>,
    ) -> Result<OsString> {
        let mut last = OsString::new();
        for _ in 0..TEMP_TRIES {
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".tmp-{}-{}", std::process::id(), random_hex()));
            match make(&tmp) {
                Ok(()) => return Ok(tmp),
                Err(Errno::EXIST) => last = tmp,
                Err(e) => {
                    return Err(std::io::Error::from(e))
                        .with_context(|| format!("creating {}", self.join(&tmp).display()))
                }
            }
        }
        Err(std::io::Error::from(Errno::EXIST)).with_context(|| {
            format!(
                "creating a temp file like {}: {TEMP_TRIES} random names were all taken",
                self.join(&last).display()
            )
        })
    }

    /// The atomic replacement itself: `write` fills the temp file (created with `mode`,
    /// less the umask); then fsync, rename over `name`, fsync the directory. On any
    /// error the temp file is removed and `name` is untouched.
    fn replace(
        &self,
        name: &OsStr,
        mode: u32,
        write: impl FnOnce(&mut File, &Path) -> Result<()>,
    ) -> Result<()> {
        check_name(name)?;
        self.remove_stale_temps(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut opened = None;
        let tmp = self.create_temp(name, |tmp| {
            opened = Some(rustix::fs::openat(
                &self.fd,
                tmp,
                flags,
                Mode::from_raw_mode(mode),
            )?);
            Ok(())
        })?;
        let mut file = File::from(opened.context("the temp file was not opened")?);
        let tmp_path = self.join(&tmp);
        let result = (|| -> Result<()> {
            // The owner first, on the temp file's own descriptor: `write` may set
            // another (write_atomic_owned) and set-id bits after it.
            self.give(&file, &tmp_path)?;
            write(&mut file, &tmp_path)?;
            file.sync_all()
                .with_context(|| format!("syncing {}", tmp_path.display()))?;
            self.rename(&tmp, name)
        })();
        if result.is_err() {
            let _ = self.remove_file(&tmp);
        }
        result?;
        self.sync()
    }

    /// Remove `.<name>.tmp-<pid>` and `.<name>.tmp-<pid>-<hex>` entries that a process
    /// no longer alive left behind (a crash between creating and renaming the temp
    /// file). Best effort: a leftover is only litter, never read; unlinking a planted
    /// symlink removes the link, not its target.
    fn remove_stale_temps(&self, name: &OsStr) {
        let mut prefix = b".".to_vec();
        prefix.extend_from_slice(name.as_bytes());
        prefix.extend_from_slice(b".tmp-");
        let Ok(entries) = self.entries() else {
            return;
        };
        for entry in entries {
            let Some(rest) = entry.as_bytes().strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let pid = match rest.iter().position(|&b| b == b'-') {
                Some(i) => &rest[..i],
                None => rest,
            };
            let Some(pid) = std::str::from_utf8(pid)
                .ok()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() as i32 && !process_alive(pid) {
                let _ = self.remove_file(&entry);
            }
        }
    }
}
