//! Making and removing entries in a [`Dir`]: directories (of an exact mode, handed
//! over or kept), files created exclusively, renames and removals, whole trees removed
//! through handles, never by path and never through a link.

use std::ffi::OsStr;
use std::fs::File;

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::dir::{check_name, kind_at, not_found, refuse_kind, Dir, Kind};

impl Dir {
    /// Create the directory `name` with exactly `mode`; `Ok(false)` if a directory is
    /// already there (left as it is), 65 if something else is.
    /// Under a state directory root adopted ([`super::adopt_state_dir`]) the new
    /// directory is its owner's.
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<bool> {
        self.make_dir(name.as_ref(), mode, true)
    }

    fn make_dir(&self, name: &OsStr, mode: u32, hand_over: bool) -> Result<bool> {
        check_name(name)?;
        let path = self.join(name);
        if let Err(err) = rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            if err == Errno::EXIST {
                return match kind_at(&self.fd, name) {
                    Some(Kind::Dir) => Ok(false),
                    Some(kind) => Err(refuse_kind(&path, kind, "a directory")),
                    None => Err(std::io::Error::from(err))
                        .with_context(|| format!("creating {}", path.display())),
                };
            }
            return Err(std::io::Error::from(err))
                .with_context(|| format!("creating {}", path.display()));
        }
        // The umask narrowed the mode: set it on what we just made, through a handle
        // that cannot be another directory swapped in meanwhile.
        let made = self.open_dir(name)?;
        rustix::fs::fchmod(&made.fd, Mode::from_raw_mode(mode))
            .map_err(std::io::Error::from)
            .with_context(|| format!("chmod {}", made.path.display()))?;
        if hand_over {
            self.give(&made.fd, &made.path)?;
        }
        Ok(true)
    }

    /// Create the directory `name` with exactly `mode`; it must not exist yet. It stays
    /// this process's own even under an adopted state directory, so that nobody else
    /// can change what is made in it until [`Dir::hand_over_tree`] gives the finished
    /// tree away (a staging directory). Returns its handle: what is made in it goes
    /// through that, never through its name.
    pub fn create_dir_new_kept(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<Dir> {
        let name = name.as_ref();
        if !self.make_dir(name, mode, false)? {
            return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
                .with_context(|| format!("creating {}", self.join(name).display()));
        }
        self.open_dir(name)
    }

    /// Create the directory `name` with `mode` less the umask, as `mkdir` does; an
    /// existing directory is fine, anything else there is refused (65). Nothing is
    /// handed over (what an unpacker makes in its own staging directory).
    pub fn create_dir_plain(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => match kind_at(&self.fd, name) {
                Some(Kind::Dir) => Ok(()),
                kind => Err(refuse_kind(
                    &self.join(name),
                    kind.unwrap_or(Kind::Other),
                    "a directory",
                )),
            },
            Err(e) => Err(std::io::Error::from(e))
                .with_context(|| format!("creating {}", self.join(name).display())),
        }
    }

    /// Remove the directory `name` and everything in it, through handles opened
    /// beneath this one: a link inside is removed, never followed. A missing one is
    /// fine.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        let dir = match kind_at(&self.fd, name) {
            None => return Ok(()),
            Some(Kind::Dir) => self.open_dir(name)?,
            Some(_) => return self.remove_file(name).map(drop),
        };
        for entry in dir.entries()? {
            match kind_at(&dir.fd, &entry) {
                Some(Kind::Dir) => dir.remove_tree(&entry)?,
                Some(_) => {
                    dir.remove_file(&entry)?;
                }
                None => {}
            }
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(std::io::Error::from(e))
                .with_context(|| format!("removing {}", self.join(name).display())),
        }
    }

    /// Open `name` for reading and writing, creating it with `mode` if it is missing,
    /// never following a symlink there and never truncating (65 for anything but a
    /// regular file).
    pub fn open_or_create(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        check_name(name)?;
        let flags = OFlags::RDWR | OFlags::NONBLOCK;
        // Made here (exclusively) or found: only a file made here is handed over, never
        // one found at the name (a hard link planted there could be anybody's).
        match self.open_regular(name, flags | OFlags::CREATE | OFlags::EXCL, mode) {
            Ok(Some(file)) => {
                self.give(&file, &self.join(name))?;
                Ok(file)
            }
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .and_then(|e| e.raw_os_error())
                    == Some(Errno::EXIST.raw_os_error()) =>
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
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        let file = self
            .open_regular(name, flags, mode)?
            .ok_or_else(|| not_found(&self.join(name)))?;
        self.give(&file, &self.join(name))?;
        Ok(file)
    }

    /// Open the existing regular file `name` to append to it; a symlink is refused (65).
    pub fn open_append(&self, name: impl AsRef<OsStr>) -> Result<File> {
        let name = name.as_ref();
        check_name(name)?;
        self.open_regular(name, OFlags::WRONLY | OFlags::APPEND, 0)?
            .ok_or_else(|| not_found(&self.join(name)))
    }

    /// Rename `from` to `to`, both in this directory (a symlink at `to` is replaced).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(std::io::Error::from)
            .with_context(|| {
                format!(
                    "renaming {} to {}",
                    self.join(from).display(),
                    self.join(to).display()
                )
            })
    }

    /// Remove the file or symlink `name` (never what a symlink points to); `Ok(false)`
    /// if nothing was there.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(std::io::Error::from(e))
                .with_context(|| format!("removing {}", self.join(name).display())),
        }
    }
}
