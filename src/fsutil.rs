//! Files on the host: atomic writes, directory fsync and free space, done so that
//! nothing planted under the state directory can redirect them (docs/RELIABILITY.md,
//! "Planted links and the state directory").
//!
//! The `ksql` user can write everything under the state directory, and root may run
//! `install` over it. So a write never opens an existing name: temp files are created
//! with `O_CREAT|O_EXCL|O_NOFOLLOW` under random names, and renamed over the target
//! (which replaces a planted symlink instead of writing through it). [`Dir`] goes
//! further: a directory handle opened `O_DIRECTORY|O_NOFOLLOW`, walked component by
//! component from a trusted root, so a directory swapped for a symlink
//! (`releases/<v>/etc -> /etc`) is refused instead of followed.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::{fail, ExitCode};

/// Tries at a fresh random temp name before giving up: a clash is already 1 in 2^64.
const TEMP_TRIES: usize = 8;

/// Write `contents` to `path` atomically: a temp file in the same directory, fsync,
/// rename over the target, fsync the directory. Readers see the old file or the new
/// one, never a partial one, even across a crash. `mode` applies to the new file. A
/// symlink at `path` is replaced, never written through; the directory holding `path`
/// is the caller's to trust (use [`Dir`] under the state directory).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_atomic_at(path, contents, mode, "fsutil.mid_write")
}

/// [`write_atomic`] with the failure point (src/failpoint.rs) passed halfway through
/// writing the temp file named: a crash there must leave `path` as it was.
pub fn write_atomic_at(path: &Path, contents: &[u8], mode: u32, point: &str) -> Result<()> {
    let (dir, name) = Dir::parent_of(path)?;
    dir.write_atomic_at(&name, contents, mode, point)
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

/// The directory `path`, created with exactly `mode` if missing (its parents as
/// `mkdir -p` would): its parents are the caller's to trust, but the directory itself
/// must be a real one, not a symlink planted in its place (65).
pub fn ensure_dir(path: &Path, mode: u32) -> Result<Dir> {
    let parent = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let parent = Dir::open_trusted(parent)?;
    parent.create_dir(name, mode)?;
    parent.open_dir(name)
}

/// 64 unpredictable bits as hex, for temp names nobody can plant in advance. Should
/// the kernel have no randomness to give (it always has, since Linux 3.17), the name is
/// only unique, and `O_EXCL|O_NOFOLLOW` still refuses whatever was planted there.
fn random_hex() -> String {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled part of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
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

fn cstring(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| anyhow::anyhow!("{} contains a NUL byte", Path::new(name).display()))
}

/// A plain name inside a directory: no `/`, not `.` or `..`.
fn check_name(name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        anyhow::bail!("{:?} is not a file name", Path::new(name));
    }
    Ok(())
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// What is at a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device node.
    Other,
}

impl Kind {
    fn of(st: &libc::stat) -> Kind {
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symlink",
            Kind::Other => "a special file",
        }
    }
}

/// An open directory: every operation is relative to it and never follows a symlink
/// at the name it is given, so a link planted at that name, or swapped in for one of
/// the directories walked to get here, cannot redirect it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

impl Dir {
    /// Open `path` as a directory; a symlink as its last component is refused (65).
    /// The components before it are the caller's to trust (the state directory's
    /// parents belong to root).
    pub fn open(path: &Path) -> Result<Dir> {
        Dir::open_raw(libc::AT_FDCWD, path.as_os_str(), path.to_path_buf(), true)
    }

    /// Open `path` as a directory following symlinks, as a path does: for directories
    /// outside anyone else's reach (the state directory's parents).
    pub fn open_trusted(path: &Path) -> Result<Dir> {
        Dir::open_raw(libc::AT_FDCWD, path.as_os_str(), path.to_path_buf(), false)
    }

    /// The directory of `path` (following symlinks on the way, as a path does) and the
    /// file name in it: what the path-based functions above work on.
    pub(crate) fn parent_of(path: &Path) -> Result<(Dir, OsString)> {
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?;
        let parent = parent_dir(path);
        let dir = Dir::open_raw(libc::AT_FDCWD, parent.as_os_str(), parent.into(), false)?;
        Ok((dir, name.to_os_string()))
    }

    /// `root/rel` with each component of `rel` opened relative to the one before it
    /// with `O_NOFOLLOW`: a symlink anywhere below `root` (or at `root` itself) is
    /// refused with 65, as is a `..` or an absolute `rel`.
    pub fn open_beneath(root: &Path, rel: &Path) -> Result<Dir> {
        let mut dir = Dir::open(root)?;
        for part in rel_parts(root, rel)? {
            dir = dir.open_dir(part)?;
        }
        Ok(dir)
    }

    /// [`Dir::open_beneath`], creating the missing directories of `rel` with `mode`
    /// (exactly, whatever the umask; existing ones are left as they are).
    pub fn create_beneath(root: &Path, rel: &Path, mode: u32) -> Result<Dir> {
        let mut dir = Dir::open(root)?;
        for part in rel_parts(root, rel)? {
            dir.create_dir(part, mode)?;
            dir = dir.open_dir(part)?;
        }
        Ok(dir)
    }

    fn open_raw(at: RawFd, name: &OsStr, path: PathBuf, nofollow: bool) -> Result<Dir> {
        let c = cstring(name)?;
        let flags = DIR_FLAGS | if nofollow { libc::O_NOFOLLOW } else { 0 };
        // SAFETY: a valid C string; the returned descriptor is owned below.
        let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
        if fd < 0 {
            let err = last_error();
            if nofollow && matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
                if let Some(kind) = kind_at(at, &c) {
                    if kind != Kind::Dir {
                        return Err(refuse_kind(&path, kind, "a directory"));
                    }
                }
            }
            return Err(err).with_context(|| format!("opening directory {}", path.display()));
        }
        // SAFETY: `fd` is a descriptor we just opened and nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir { fd, path })
    }

    /// The directory's own metadata (of what was opened, whatever the path names now).
    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.fd
            .try_clone()
            .map(File::from)
            .and_then(|f| f.metadata())
            .with_context(|| format!("reading {}", self.path.display()))
    }

    /// Where this directory was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The directory `name` in this one; a symlink there is refused (65).
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<Dir> {
        let name = name.as_ref();
        check_name(name)?;
        Dir::open_raw(self.fd.as_raw_fd(), name, self.join(name), true)
    }

    /// What is at `name`, not following a symlink; `None` if nothing is.
    pub fn kind(&self, name: impl AsRef<OsStr>) -> Result<Option<Kind>> {
        let c = cstring(name.as_ref())?;
        Ok(kind_at(self.fd.as_raw_fd(), &c))
    }

    /// Create the directory `name` with exactly `mode`; `Ok(false)` if a directory is
    /// already there (left as it is), 65 if something else is.
    /// Under a state directory root adopted ([`adopt_state_dir`]) the new directory is
    /// its owner's.
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<bool> {
        self.make_dir(name.as_ref(), mode, true)
    }

    fn make_dir(&self, name: &OsStr, mode: u32, hand_over: bool) -> Result<bool> {
        check_name(name)?;
        let c = cstring(name)?;
        // SAFETY: a valid C string relative to a directory descriptor we own.
        if unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) } != 0 {
            let err = last_error();
            if err.raw_os_error() == Some(libc::EEXIST) {
                return match kind_at(self.fd.as_raw_fd(), &c) {
                    Some(Kind::Dir) => Ok(false),
                    Some(kind) => Err(refuse_kind(&self.join(name), kind, "a directory")),
                    None => {
                        Err(err).with_context(|| format!("creating {}", self.join(name).display()))
                    }
                };
            }
            return Err(err).with_context(|| format!("creating {}", self.join(name).display()));
        }
        // The umask narrowed the mode: set it on what we just made, through a handle
        // that cannot be another directory swapped in meanwhile.
        let made = self.open_dir(name)?;
        // SAFETY: fchmod on a descriptor we own.
        if unsafe { libc::fchmod(made.fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
            return Err(last_error()).with_context(|| format!("chmod {}", made.path.display()));
        }
        if hand_over {
            give(made.fd.as_raw_fd(), &self.path, &made.path)?;
        }
        Ok(true)
    }

    /// Create the directory `name` with exactly `mode`; it must not exist yet. It stays
    /// this process's own even under an adopted state directory ([`adopt_state_dir`]),
    /// so that nobody else can change what is made in it until [`Dir::hand_over_tree`]
    /// gives the finished tree away (a staging directory).
    pub fn create_dir_new_kept(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<()> {
        let name = name.as_ref();
        if !self.make_dir(name, mode, false)? {
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST))
                .with_context(|| format!("creating {}", self.join(name).display()));
        }
        Ok(())
    }

    /// Open `name` for reading; a symlink or anything but a regular file is refused
    /// (65). `Ok(None)` if nothing is there.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<Option<File>> {
        let name = name.as_ref();
        check_name(name)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        self.open_regular(name, flags, 0)
    }

    /// The whole content of the regular file `name`, `None` if it does not exist; a
    /// symlink or special file there is refused (65).
    pub fn read(&self, name: impl AsRef<OsStr>) -> Result<Option<Vec<u8>>> {
        let name = name.as_ref();
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .with_context(|| format!("reading {}", self.join(name).display()))?;
        Ok(Some(bytes))
    }

    /// Open `name` for reading and writing, creating it with `mode` if it is missing,
    /// never following a symlink there and never truncating (65 for anything but a
    /// regular file).
    pub fn open_or_create(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        check_name(name)?;
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // Made here (exclusively) or found: only a file made here is handed over, never
        // one found at the name (a hard link planted there could be anybody's).
        match self.open_regular(name, flags | libc::O_CREAT | libc::O_EXCL, mode) {
            Ok(Some(file)) => {
                give(file.as_raw_fd(), &self.path, &self.join(name))?;
                Ok(file)
            }
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .and_then(|e| e.raw_os_error())
                    == Some(libc::EEXIST) =>
            {
                self.open_regular(name, flags, mode)?
                    .ok_or_else(|| not_found(&self.join(name)))
            }
            Ok(None) => Err(not_found(&self.join(name))),
            Err(e) => Err(e),
        }
    }

    /// Create `name`, which must not exist (`O_CREAT|O_EXCL|O_NOFOLLOW`), for writing.
    pub fn create_new(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        check_name(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let file = self
            .open_regular(name, flags, mode)?
            .ok_or_else(|| not_found(&self.join(name)))?;
        give(file.as_raw_fd(), &self.path, &self.join(name))?;
        Ok(file)
    }

    /// Open the existing regular file `name` to append to it; a symlink is refused (65).
    pub fn open_append(&self, name: impl AsRef<OsStr>) -> Result<File> {
        let name = name.as_ref();
        check_name(name)?;
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.open_regular(name, flags, 0)?
            .ok_or_else(|| not_found(&self.join(name)))
    }

    fn open_regular(&self, name: &OsStr, flags: libc::c_int, mode: u32) -> Result<Option<File>> {
        let c = cstring(name)?;
        let path = self.join(name);
        // SAFETY: a valid C string relative to a directory descriptor we own.
        let fd =
            unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
        if fd < 0 {
            let err = last_error();
            return match err.raw_os_error() {
                Some(libc::ENOENT) if flags & libc::O_CREAT == 0 => Ok(None),
                Some(libc::ELOOP) => Err(refuse_kind(&path, Kind::Symlink, "a regular file")),
                _ => Err(err).with_context(|| format!("opening {}", path.display())),
            };
        }
        // SAFETY: `fd` is a descriptor we just opened and nobody else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let st = fstat(&file).with_context(|| format!("reading {}", path.display()))?;
        let kind = Kind::of(&st);
        if kind != Kind::File {
            return Err(refuse_kind(&path, kind, "a regular file"));
        }
        if flags & libc::O_NONBLOCK != 0 {
            // Only there so that a planted FIFO cannot block the open: reads see a
            // plain blocking file. (F_SETFL keeps only the status flags given.)
            // SAFETY: fcntl on a descriptor we own.
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & libc::O_APPEND) };
        }
        Ok(Some(file))
    }

    /// Rename `from` to `to`, both in this directory (a symlink at `to` is replaced).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        let (cf, ct) = (cstring(from)?, cstring(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: two valid C strings relative to a directory descriptor we own.
        if unsafe { libc::renameat(fd, cf.as_ptr(), fd, ct.as_ptr()) } != 0 {
            return Err(last_error()).with_context(|| {
                format!(
                    "renaming {} to {}",
                    self.join(from).display(),
                    self.join(to).display()
                )
            });
        }
        Ok(())
    }

    /// Remove the empty directory `name` here, through this handle.
    pub fn remove_empty_dir(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        let c = cstring(name)?;
        // SAFETY: a valid C string relative to a directory descriptor we own; rmdir
        // never follows a symlink at `name`.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            return Err(last_error())
                .with_context(|| format!("removing {}", self.join(name).display()));
        }
        Ok(())
    }

    /// Remove the file or symlink `name` (never what a symlink points to); `Ok(false)`
    /// if nothing was there.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        check_name(name)?;
        let c = cstring(name)?;
        // SAFETY: a valid C string relative to a directory descriptor we own.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let err = last_error();
            if err.raw_os_error() == Some(libc::ENOENT) {
                return Ok(false);
            }
            return Err(err).with_context(|| format!("removing {}", self.join(name).display()));
        }
        Ok(true)
    }

    /// The target of the symlink `name`, if it is one.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Option<PathBuf> {
        let c = cstring(name.as_ref()).ok()?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: `buf` is writable for its length; readlinkat does not NUL-terminate.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 || n as usize >= buf.len() {
            return None;
        }
        buf.truncate(n as usize);
        Some(PathBuf::from(OsString::from_vec(buf)))
    }

    /// The names in this directory (without `.` and `..`), read through the handle.
    pub fn entries(&self) -> Result<Vec<OsString>> {
        let context = || format!("listing {}", self.path.display());
        // SAFETY: duplicates a descriptor we own; the copy is handed to fdopendir.
        let dup = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(last_error()).with_context(context);
        }
        // SAFETY: `dup` is a directory descriptor only this stream owns from here on.
        let stream = unsafe { libc::fdopendir(dup) };
        if stream.is_null() {
            let err = last_error();
            // SAFETY: fdopendir failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(err).with_context(context);
        }
        // The copy shares its read position with `self.fd`: start from the top.
        // SAFETY: `stream` is a valid directory stream until closedir below.
        unsafe { libc::rewinddir(stream) };
        let mut names = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; cleared to tell the end from an error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: a valid stream; the entry is read before the next readdir call.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let err = last_error();
                break match err.raw_os_error() {
                    Some(0) | None => Ok(()),
                    _ => Err(err),
                };
            }
            // SAFETY: d_name is a NUL-terminated name inside the entry.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: closes the stream and `dup` with it, once.
        unsafe { libc::closedir(stream) };
        result.with_context(context)?;
        Ok(names)
    }

    /// fsync this directory, so that renames and creations in it are durable.
    pub fn sync(&self) -> Result<()> {
        // SAFETY: fsync on a descriptor we own.
        if unsafe { libc::fsync(self.fd.as_raw_fd()) } != 0 {
            return Err(last_error())
                .with_context(|| format!("syncing directory {}", self.path.display()));
        }
        Ok(())
    }

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
            crate::failpoint::hit(point)?;
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
            // SAFETY: fchmod on the temp file's descriptor, which we own.
            if unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) } != 0 {
                return Err(last_error()).with_context(|| format!("chmod {}", tmp.display()));
            }
            Ok(())
        })
    }

    /// [`copy_atomic`] of `src` (opened without following a symlink) to `name` here.
    pub fn copy_atomic(&self, name: impl AsRef<OsStr>, src: &Path, mode: u32) -> Result<()> {
        let (src_dir, src_name) = Dir::parent_of(src)?;
        let mut from = src_dir
            .open_file(&src_name)?
            .ok_or_else(|| not_found(src))?;
        self.copy_atomic_from(name, &mut from, src, mode)
    }

    /// [`copy_atomic`] from an open file (`src` names it in messages).
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
            // SAFETY: fchmod on the temp file's descriptor, which we own.
            if unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) } != 0 {
                return Err(last_error()).with_context(|| format!("chmod {}", tmp.display()));
            }
            Ok(())
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
        let ctarget = cstring(target.as_os_str())?;
        let tmp = self.create_temp(name, |c| {
            // SAFETY: two valid C strings relative to a directory descriptor we own.
            unsafe { libc::symlinkat(ctarget.as_ptr(), self.fd.as_raw_fd(), c.as_ptr()) == 0 }
        })?;
        let swapped = cstring(&tmp)
            .and_then(|c| self.give_link(&c))
            .and_then(|()| crate::failpoint::hit(point))
            .and_then(|()| self.rename(&tmp, name));
        if swapped.is_err() {
            let _ = self.remove_file(&tmp);
        }
        swapped.with_context(|| format!("replacing {}", self.join(name).display()))?;
        self.sync()?;
        Ok(true)
    }

    /// Make a new entry under a fresh random temp name for `name` (`.<name>.tmp-<pid>-<hex>`);
    /// `make` creates it exclusively and says whether it could. Names already taken
    /// (planted) are skipped, never reused.
    fn create_temp(&self, name: &OsStr, mut make: impl FnMut(&CStr) -> bool) -> Result<OsString> {
        let mut last = None;
        for _ in 0..TEMP_TRIES {
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".tmp-{}-{}", std::process::id(), random_hex()));
            let c = cstring(&tmp)?;
            if make(&c) {
                return Ok(tmp);
            }
            let err = last_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("creating {}", self.join(&tmp).display()));
            }
            last = Some(tmp);
        }
        let tmp = last.unwrap_or_default();
        Err(std::io::Error::from_raw_os_error(libc::EEXIST)).with_context(|| {
            format!(
                "creating a temp file like {}: {TEMP_TRIES} random names were all taken",
                self.join(&tmp).display()
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
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let mut fd = -1;
        let tmp = self.create_temp(name, |c| {
            // SAFETY: a valid C string relative to a directory descriptor we own.
            fd = unsafe {
                libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint)
            };
            fd >= 0
        })?;
        // SAFETY: `fd` was just opened by create_temp's successful try, and is ours.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let tmp_path = self.join(&tmp);
        let result = (|| -> Result<()> {
            // The owner first, on the temp file's own descriptor: `write` may set
            // another (write_atomic_owned) and set-id bits after it.
            give(file.as_raw_fd(), &self.path, &tmp_path)?;
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
                .and_then(|p| p.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            if pid != std::process::id() as libc::pid_t && !process_alive(pid) {
                let _ = self.remove_file(&entry);
            }
        }
    }
}

fn not_found(path: &Path) -> anyhow::Error {
    anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
        .context(format!("opening {}", path.display()))
}

/// The components of `rel` below `root`: plain names only.
fn rel_parts<'a>(root: &Path, rel: &'a Path) -> Result<Vec<&'a OsStr>> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            _ => {
                return Err(fail(
                    ExitCode::Data,
                    format!("{}: {} leaves it; refusing", root.display(), rel.display()),
                ))
            }
        }
    }
    Ok(parts)
}

fn refuse_kind(path: &Path, kind: Kind, wanted: &str) -> anyhow::Error {
    fail(
        ExitCode::Data,
        format!(
            "{} is {}, not {wanted}: refusing to follow or replace it (something other than ksql-msk put it there)",
            path.display(),
            kind.describe()
        ),
    )
}

fn fstat(file: &File) -> std::io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat on a descriptor we own, into a properly sized out-parameter.
    if unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(last_error());
    }
    // SAFETY: fstat returned 0, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// What `name` relative to `at` is, not following a symlink.
fn kind_at(at: RawFd, name: &CStr) -> Option<Kind> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid C string and a properly sized out-parameter.
    let rc = unsafe {
        libc::fstatat(
            at,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: fstatat returned 0, so it filled `st`.
    (rc == 0).then(|| Kind::of(&unsafe { st.assume_init() }))
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
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

/// The service user's umask (systemd/ksql-msk.service `UMask=0027`): what root uses
/// once it adopts a state directory that belongs to that user, so that what root makes
/// there has the modes the service itself would have given it, whatever root's umask.
pub const SERVICE_UMASK: libc::mode_t = 0o027;

/// The state directory root adopted, and its owner and group.
#[derive(Debug)]
struct Adopted {
    dirs: Vec<PathBuf>,
    owner: (u32, u32),
}

static ADOPTED: std::sync::OnceLock<Adopted> = std::sync::OnceLock::new();

/// Root (euid 0) running over a state directory that belongs to someone else (the
/// service user, image baking): from here on, everything this process creates under
/// `paths` (the state directory as configured and as normalised) through this module
/// is handed to the directory's owner and group, by `fchown` on the new file's own
/// descriptor before it is renamed into place (never by a path, never through a link),
/// and the process umask becomes [`SERVICE_UMASK`]. Nothing changes for any other
/// caller, or for a state directory of root's own. Once per process; later calls are
/// ignored.
pub fn adopt_state_dir(state: &Dir, paths: &[&Path]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || ADOPTED.get().is_some() {
        return Ok(());
    }
    let meta = state.metadata()?;
    if meta.uid() == 0 {
        return Ok(());
    }
    let adopted = Adopted {
        dirs: paths.iter().map(|p| p.to_path_buf()).collect(),
        owner: (meta.uid(), meta.gid()),
    };
    if ADOPTED.set(adopted).is_ok() {
        // Not in the library's unit tests: they share one process, and a lock test
        // adopting its directory must not change the modes every other test checks
        // (tests/it/owner.rs checks the umask on the real binary).
        #[cfg(not(test))]
        // SAFETY: umask cannot fail.
        unsafe {
            libc::umask(SERVICE_UMASK)
        };
        tracing::debug!(
            "{} belongs to uid {} gid {}: what root makes there is theirs",
            state.path().display(),
            meta.uid(),
            meta.gid()
        );
    }
    Ok(())
}

/// The owner new entries in `dir` are handed to: `Some` only for root under an adopted
/// state directory.
fn owner_for(dir: &Path) -> Option<(u32, u32)> {
    let adopted = ADOPTED.get()?;
    adopted
        .dirs
        .iter()
        .any(|d| dir.starts_with(d))
        .then_some(adopted.owner)
}

/// `fchown` of a file or directory this process just made (its own descriptor).
fn give(fd: RawFd, dir: &Path, path: &Path) -> Result<()> {
    let Some((uid, gid)) = owner_for(dir) else {
        return Ok(());
    };
    // SAFETY: fchown on a descriptor the caller owns.
    if unsafe { libc::fchown(fd, uid, gid) } != 0 {
        return Err(last_error())
            .with_context(|| format!("giving {} to {uid}:{gid}", path.display()));
    }
    Ok(())
}

impl Dir {
    /// Hand the symlink `name` (just made here) to the adopted owner: through an
    /// `O_PATH|O_NOFOLLOW` descriptor of the link itself, checked to be a link, so
    /// whatever was swapped in at the name is never what gets chowned.
    fn give_link(&self, name: &CStr) -> Result<()> {
        match owner_for(&self.path) {
            Some(owner) => self.give_link_to(name, owner),
            None => Ok(()),
        }
    }

    fn give_link_to(&self, name: &CStr, (uid, gid): (u32, u32)) -> Result<()> {
        let path = self.join(OsStr::from_bytes(name.to_bytes()));
        let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid C string relative to a directory descriptor we own.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            return Err(last_error()).with_context(|| format!("opening {}", path.display()));
        }
        // SAFETY: `fd` is a descriptor we just opened and nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = c"";
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstatat of the descriptor itself (AT_EMPTY_PATH) into a sized buffer.
        let rc = unsafe {
            libc::fstatat(
                fd.as_raw_fd(),
                empty.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(last_error()).with_context(|| format!("reading {}", path.display()));
        }
        // SAFETY: fstatat returned 0, so it filled `st`.
        let kind = Kind::of(&unsafe { st.assume_init() });
        if kind != Kind::Symlink {
            return Err(refuse_kind(&path, kind, "the symlink just made"));
        }
        // SAFETY: fchownat of the descriptor itself, which refers to the link.
        let rc = unsafe {
            libc::fchownat(
                fd.as_raw_fd(),
                empty.as_ptr(),
                uid,
                gid,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(last_error())
                .with_context(|| format!("giving {} to {uid}:{gid}", path.display()));
        }
        Ok(())
    }

    /// Hand a tree this process made under an adopted state directory (a release
    /// unpacked into staging, before the rename into `releases/`) to its owner, this
    /// directory last. Only directories still root's are entered: their entries are
    /// root's own making, which the service user cannot have swapped; a directory
    /// already handed over (its entries the service user's to change) is left as it is.
    /// Each entry is chowned by name relative to its directory's handle, never
    /// following a link (`AT_SYMLINK_NOFOLLOW`).
    pub fn hand_over_tree(&self) -> Result<()> {
        match owner_for(&self.path) {
            Some(owner) => self.hand_over_tree_to(owner),
            None => Ok(()),
        }
    }

    fn hand_over_tree_to(&self, (uid, gid): (u32, u32)) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        if self.metadata()?.uid() == uid {
            return Ok(());
        }
        for name in self.entries()? {
            let c = cstring(&name)?;
            match kind_at(self.fd.as_raw_fd(), &c) {
                Some(Kind::Dir) => self.open_dir(&name)?.hand_over_tree_to((uid, gid))?,
                Some(_) => {
                    // SAFETY: a valid C string relative to a directory descriptor we own.
                    let rc = unsafe {
                        libc::fchownat(
                            self.fd.as_raw_fd(),
                            c.as_ptr(),
                            uid,
                            gid,
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    };
                    if rc != 0 {
                        return Err(last_error()).with_context(|| {
                            format!("giving {} to {uid}:{gid}", self.join(&name).display())
                        });
                    }
                }
                None => {}
            }
        }
        // SAFETY: fchown on a descriptor we own.
        if unsafe { libc::fchown(self.fd.as_raw_fd(), uid, gid) } != 0 {
            return Err(last_error())
                .with_context(|| format!("giving {} to {uid}:{gid}", self.path.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> bool {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("SKIPPED: chown needs root");
        }
        root
    }

    fn owner(p: &Path) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    }

    const THEIRS: (u32, u32) = (54_322, 54_323);

    #[test]
    fn the_umask_root_takes_is_the_units() {
        let unit = include_str!("../systemd/ksql-msk.service");
        assert!(
            unit.lines()
                .any(|l| l == format!("UMask={SERVICE_UMASK:04o}")),
            "systemd/ksql-msk.service has another UMask= than {SERVICE_UMASK:04o}"
        );
    }

    #[test]
    fn handing_a_tree_over_never_follows_a_link_or_enters_what_is_theirs() {
        if !root() {
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        let precious = outside.path().join("precious");
        fs::write(&precious, "root's").unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("staging");
        fs::create_dir_all(tree.join("bin/deep")).unwrap();
        fs::write(tree.join("bin/deep/run"), "x").unwrap();
        std::os::unix::fs::symlink(&precious, tree.join("bin/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("dirlink")).unwrap();
        // A directory already theirs: its entries are theirs to plant, so not entered.
        fs::create_dir(tree.join("theirs")).unwrap();
        fs::hard_link(&precious, tree.join("theirs/planted")).unwrap();
        std::os::unix::fs::lchown(tree.join("theirs"), Some(THEIRS.0), Some(THEIRS.1)).unwrap();

        Dir::open(&tree).unwrap().hand_over_tree_to(THEIRS).unwrap();
        for p in [
            "",
            "bin",
            "bin/deep",
            "bin/deep/run",
            "bin/link",
            "dirlink",
            "theirs",
        ] {
            assert_eq!(owner(&tree.join(p)), THEIRS, "{p}");
        }
        assert_eq!(owner(&precious), (0, 0), "chowned through a link");
        assert_eq!(owner(outside.path()), (0, 0), "chowned through a link");
    }

    #[test]
    fn a_link_swapped_for_something_else_is_refused_not_given() {
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = Dir::open(t.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("l")).unwrap();
        dir.give_link_to(c"l", THEIRS).unwrap();
        assert_eq!(owner(&t.path().join("l")), THEIRS);
        assert_eq!(owner(Path::new("/etc/passwd")), (0, 0));
        // A file (a hard link planted in its place) is not the link just made.
        fs::write(t.path().join("f"), "").unwrap();
        let err = dir.give_link_to(c"f", THEIRS).unwrap_err();
        assert!(
            format!("{err:#}").contains("the symlink just made"),
            "{err:#}"
        );
        assert_eq!(owner(&t.path().join("f")), (0, 0));
    }

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

    fn code(e: &anyhow::Error) -> ExitCode {
        crate::exit::exit_code_of(e)
    }

    #[test]
    fn links_planted_at_temp_names_redirect_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        // The old predictable name for this very process, and new-style names.
        let pid = std::process::id();
        let planted = [
            format!(".a.conf.tmp-{pid}"),
            format!(".a.conf.tmp-{pid}-0000000000000000"),
        ];
        for (i, name) in planted.iter().enumerate() {
            std::os::unix::fs::symlink(
                outside.path().join(format!("leak{i}")),
                dir.path().join(name),
            )
            .unwrap();
        }
        write_atomic(&path, b"secret", 0o640).unwrap();
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "written outside"
        );
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("a.conf");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"new", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        // The same through copy_atomic, which also sets the mode exactly.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let src = dir.path().join("src");
        fs::write(&src, "copied").unwrap();
        let (d, name) = Dir::parent_of(&path).unwrap();
        d.copy_atomic(&name, &src, 0o644).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "copied");
    }

    #[test]
    fn copy_atomic_does_not_read_through_a_symlinked_source() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("shadow");
        fs::write(&secret, "root:hash").unwrap();
        let src = dir.path().join("cached.jar");
        std::os::unix::fs::symlink(&secret, &src).unwrap();
        let dst = dir.path().join("installed.jar");
        let (d, name) = Dir::parent_of(&dst).unwrap();
        let err = d.copy_atomic(&name, &src, 0o644).unwrap_err();
        assert_eq!(code(&err), ExitCode::Data, "{err:#}");
        assert!(err.to_string().contains("symlink"), "{err:#}");
        assert!(!dst.exists());
    }

    #[test]
    fn stale_temps_of_either_name_scheme_go_and_a_planted_link_there_is_only_unlinked() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let dead_new = dir.path().join(".a.conf.tmp-99999999-0123456789abcdef");
        fs::write(&dead_new, "partial").unwrap();
        let dead_link = dir.path().join(".a.conf.tmp-99999998-0123456789abcdef");
        std::os::unix::fs::symlink(&victim, &dead_link).unwrap();
        let alive = dir.path().join(format!(
            ".a.conf.tmp-{}-0123456789abcdef",
            std::os::unix::process::parent_id()
        ));
        fs::write(&alive, "partial").unwrap();
        write_atomic(&dir.path().join("a.conf"), b"new", 0o640).unwrap();
        assert!(fs::symlink_metadata(&dead_new).is_err(), "dead temp stayed");
        assert!(
            fs::symlink_metadata(&dead_link).is_err(),
            "dead link stayed"
        );
        assert!(alive.exists(), "a live process's temp file was removed");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn open_beneath_refuses_a_symlinked_component_and_dot_dot() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("releases/1")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("releases/1/etc")).unwrap();
        let err = Dir::open_beneath(root.path(), Path::new("releases/1/etc")).unwrap_err();
        assert_eq!(code(&err), ExitCode::Data, "{err:#}");
        assert!(err.to_string().contains("is a symlink"), "{err:#}");
        let err = Dir::create_beneath(root.path(), Path::new("releases/1/etc/ksqldb"), 0o755)
            .unwrap_err();
        assert_eq!(code(&err), ExitCode::Data, "{err:#}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let err = Dir::open_beneath(root.path(), Path::new("releases/../..")).unwrap_err();
        assert_eq!(code(&err), ExitCode::Data, "{err:#}");
        // The root itself must not be a symlink either.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        assert!(Dir::open(&link).is_err());
    }

    #[test]
    fn create_beneath_sets_the_mode_of_what_it_creates_only() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("old")).unwrap();
        fs::set_permissions(root.path().join("old"), fs::Permissions::from_mode(0o711)).unwrap();
        // 0770: group-writable, which the usual umask (022) takes away at mkdir.
        let made = Dir::create_beneath(root.path(), Path::new("old/new/deeper"), 0o770).unwrap();
        let mode = |p: &str| {
            fs::metadata(root.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("old"), 0o711);
        assert_eq!(mode("old/new"), 0o770);
        assert_eq!(mode("old/new/deeper"), 0o770);
        made.write_atomic("f", b"x", 0o644).unwrap();
        assert_eq!(made.entries().unwrap(), vec![OsString::from("f")]);
        assert!(
            made.create_dir("f", 0o755).is_err(),
            "a file taken for a directory"
        );
    }

    #[test]
    fn read_and_append_refuse_links_and_special_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = Dir::open(root.path()).unwrap();
        assert_eq!(dir.read("missing").unwrap(), None);
        fs::write(root.path().join("f"), "data").unwrap();
        assert_eq!(dir.read("f").unwrap().unwrap(), b"data");
        std::os::unix::fs::symlink(root.path().join("f"), root.path().join("l")).unwrap();
        let err = dir.read("l").unwrap_err();
        assert_eq!(code(&err), ExitCode::Data, "{err:#}");
        assert_eq!(dir.kind("l").unwrap(), Some(Kind::Symlink));
        assert!(dir.open_append("l").is_err());
        let fifo = CString::new(root.path().join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = dir.read("fifo").unwrap_err();
        assert!(err.to_string().contains("special file"), "{err:#}");
        let mut f = dir.open_append("f").unwrap();
        f.write_all(b"+more").unwrap();
        assert_eq!(fs::read(root.path().join("f")).unwrap(), b"data+more");
        let mut f = dir.create_new("g", 0o600).unwrap();
        f.write_all(b"new").unwrap();
        assert!(
            dir.create_new("g", 0o600).is_err(),
            "create_new opened an existing file"
        );
        assert!(
            dir.create_new("l", 0o600).is_err(),
            "create_new followed a link"
        );
    }

    #[test]
    fn symlink_atomic_replaces_what_was_planted() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = Dir::open(root.path()).unwrap();
        let target = Path::new("releases/1");
        assert!(dir.symlink_atomic_at("current", target, "x").unwrap());
        assert!(!dir.symlink_atomic_at("current", target, "x").unwrap());
        // A link to outside, or a plain file, at `current`: replaced by the link.
        std::fs::remove_file(root.path().join("current")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("current")).unwrap();
        assert!(dir.symlink_atomic_at("current", target, "x").unwrap());
        assert_eq!(fs::read_link(root.path().join("current")).unwrap(), target);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert_eq!(dir.entries().unwrap(), vec![OsString::from("current")]);
    }
}
