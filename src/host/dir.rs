//! [`Dir`]: a directory handle whose every operation is relative to it and never
//! follows a link at the name it is given, and the walk that opens one beneath another
//! one component at a time (`openat2` with no link at all, or `O_NOFOLLOW` on a kernel
//! without it).
//!
//! Everything under the state directory is reached from the handle held for it: the
//! constructors that take a path ([`Dir::open`], [`Dir::open_trusted`],
//! [`Dir::parent_of`], ...) live with that handle in [`super::held`], which resolves a
//! path under the state directory beneath it, never by name from `/`. This file names
//! neither: it is the handle only.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::exit::{fail, ExitCode};

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
    pub(crate) fn of(st: &rustix::fs::Stat) -> Kind {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
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
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
    /// Whom what is made here is handed to (root under an adopted state directory):
    /// inherited from the handle this one was opened from, never decided by a path.
    pub(super) owner: Option<(u32, u32)>,
}

/// The resolution every walk beneath a handle uses: no link at any component, magic
/// links (`/proc/<pid>/root`, `/proc/self/fd/N`) included, never above the handle.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

impl Dir {
    /// `path` opened as a directory by its path, following a symlink at its last
    /// component only if not `nofollow` (refused with 65 then); the components before it
    /// are the caller's to trust. For [`Dir::open`] and [`Dir::open_trusted`] (in
    /// [`super::held`]), which resolve a path under the state directory beneath its held
    /// handle instead.
    pub(super) fn open_path(path: &Path, nofollow: bool) -> Result<Dir> {
        let fd = open_dir_fd(rustix::fs::CWD, path.as_os_str(), nofollow, false)
            .map_err(|e| dir_error(e, path))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
            owner: None,
        })
    }

    /// Another handle of the same directory (same owner to hand over to).
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self
            .fd
            .try_clone()
            .with_context(|| format!("duplicating {}", self.path.display()))?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
            owner: self.owner,
        })
    }

    /// The directory's own metadata (of what was opened, whatever the path names now).
    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.fd
            .try_clone()
            .map(File::from)
            .and_then(|f| f.metadata())
            .with_context(|| format!("reading {}", self.path.display()))
    }

    /// Device and inode of what was opened: its identity, whatever names it now.
    pub fn identity(&self) -> Result<(u64, u64)> {
        let st = rustix::fs::fstat(&self.fd)
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Where this directory was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The directory `name` in this one, opened beneath it; a symlink there is
    /// refused (65).
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<Dir> {
        let name = name.as_ref();
        check_name(name)?;
        let path = self.join(name);
        let fd = open_dir_fd(self.fd.as_fd(), name, true, true).map_err(|e| {
            match kind_at(&self.fd, name) {
                Some(kind) if kind != Kind::Dir => refuse_kind(&path, kind, "a directory"),
                _ => dir_error(e, &path),
            }
        })?;
        Ok(Dir {
            fd,
            path,
            owner: self.owner,
        })
    }

    /// What is at `name`, not following a symlink; `None` if nothing is.
    pub fn kind(&self, name: impl AsRef<OsStr>) -> Result<Option<Kind>> {
        Ok(kind_at(&self.fd, name.as_ref()))
    }

    /// Open `name` for reading; a symlink or anything but a regular file is refused
    /// (65). `Ok(None)` if nothing is there. Opened non-blocking, so a FIFO planted
    /// there is refused instead of waited on.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<Option<File>> {
        let name = name.as_ref();
        check_name(name)?;
        self.open_regular(name, OFlags::RDONLY | OFlags::NONBLOCK, 0)
    }

    /// The whole content of the regular file `name`, `None` if it does not exist; a
    /// symlink or special file there is refused (65). For files of this process's own
    /// making; state files another user can write go through [`super::read_state_file`].
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

    /// Open the regular file `name` (one plain name) with `flags`, never following a
    /// link; `Ok(None)` if it is missing and `flags` do not create it.
    pub(super) fn open_regular(
        &self,
        name: &OsStr,
        flags: OFlags,
        mode: u32,
    ) -> Result<Option<File>> {
        let path = self.join(name);
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !flags.contains(OFlags::CREATE) => return Ok(None),
            Err(Errno::LOOP) => return Err(refuse_kind(&path, Kind::Symlink, "a regular file")),
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("opening {}", path.display()))
            }
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(std::io::Error::from)
            .with_context(|| format!("reading {}", path.display()))?;
        let kind = Kind::of(&st);
        if kind != Kind::File {
            return Err(refuse_kind(&path, kind, "a regular file"));
        }
        if flags.contains(OFlags::NONBLOCK) {
            // Only there so that a planted FIFO cannot block the open: reads see a
            // plain blocking file.
            rustix::fs::fcntl_setfl(&fd, flags & OFlags::APPEND)
                .map_err(std::io::Error::from)
                .with_context(|| format!("opening {}", path.display()))?;
        }
        Ok(Some(File::from(fd)))
    }

    /// The target of the symlink `name`, if it is one.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Option<PathBuf> {
        let name = name.as_ref();
        check_name(name).ok()?;
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new()).ok()?;
        Some(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// The names in this directory (without `.` and `..`), read through the handle.
    pub fn entries(&self) -> Result<Vec<OsString>> {
        let context = || format!("listing {}", self.path.display());
        // `read_from` reads its own open file description of this directory, from the
        // top, whatever was read through `self.fd` before.
        let mut stream = rustix::fs::Dir::read_from(&self.fd)
            .map_err(std::io::Error::from)
            .with_context(context)?;
        let mut names = Vec::new();
        while let Some(entry) = stream.read() {
            let entry = entry.map_err(std::io::Error::from).with_context(context)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        Ok(names)
    }

    /// fsync this directory, so that renames and creations in it are durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd)
            .map_err(std::io::Error::from)
            .with_context(|| format!("syncing directory {}", self.path.display()))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Open the directory `name` relative to `at`. Beneath a handle (`beneath`), `name` is
/// one component resolved with `openat2` and no link at all (magic links included),
/// or, on a kernel without `openat2`, with `O_NOFOLLOW`.
fn open_dir_fd(
    at: impl AsFd,
    name: &OsStr,
    nofollow: bool,
    beneath: bool,
) -> rustix::io::Result<OwnedFd> {
    let flags = dir_flags()
        | if nofollow {
            OFlags::NOFOLLOW
        } else {
            OFlags::empty()
        };
    if beneath {
        match rustix::fs::openat2(&at, name, flags, Mode::empty(), BENEATH) {
            Err(Errno::NOSYS) => {}
            // EAGAIN: the kernel asks to retry a lookup raced by a rename; once more
            // through the plain open, which has no such case.
            Err(Errno::AGAIN) => {}
            other => return other,
        }
    }
    rustix::fs::openat(at, name, flags, Mode::empty())
}

fn dir_error(err: Errno, path: &Path) -> anyhow::Error {
    if matches!(err, Errno::LOOP | Errno::XDEV) {
        return refuse_kind(path, Kind::Symlink, "a directory");
    }
    if err == Errno::NOTDIR {
        return refuse_kind(path, Kind::Other, "a directory");
    }
    anyhow::Error::new(std::io::Error::from(err))
        .context(format!("opening directory {}", path.display()))
}

/// A plain name inside a directory: no `/`, not `.` or `..`, no NUL.
pub(super) fn check_name(name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        anyhow::bail!("{:?} is not a file name", Path::new(name));
    }
    Ok(())
}

pub(super) fn not_found(path: &Path) -> anyhow::Error {
    anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
        .context(format!("opening {}", path.display()))
}

pub(super) fn refuse_kind(path: &Path, kind: Kind, wanted: &str) -> anyhow::Error {
    fail(
        ExitCode::Data,
        format!(
            "{} is {}, not {wanted}: refusing to follow or replace it (something other than ksql-msk put it there)",
            path.display(),
            kind.describe()
        ),
    )
}

/// What `name` relative to `at` is, not following a symlink.
pub(super) fn kind_at(at: impl AsFd, name: &OsStr) -> Option<Kind> {
    rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| Kind::of(&st))
}
