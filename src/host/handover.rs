//! Handing what root makes under the service user's state directory over to that user:
//! by `fchown` on descriptors root opened itself, decided by which handle a file was
//! made through (inherited from the held state directory's handle), never by a path.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};

use super::dir::{kind_at, refuse_kind, Dir, Kind};

/// The service user's umask (systemd/ksql-msk.service `UMask=0027`): what root uses
/// once it adopts a state directory that belongs to that user, so that what root makes
/// there has the modes the service itself would have given it, whatever root's umask.
pub const SERVICE_UMASK: u32 = 0o027;

/// Hold the checked state directory for the process ([`super::held`]), and for root
/// (euid 0) over a state directory that belongs to someone else (the service user,
/// image baking): from here on, everything this process creates through handles
/// opened beneath it is handed to the directory's owner and group, by `fchown` on the
/// new file's own descriptor before it is renamed into place (never by a path, never
/// through a link), and the process umask becomes [`SERVICE_UMASK`]. Nothing changes
/// hands for any other caller, or for a state directory of root's own. Once per
/// process; later calls are ignored. Returns `state`, now handing over.
pub fn adopt_state_dir(mut state: Dir, paths: &[&Path]) -> Result<Dir> {
    use std::os::unix::fs::MetadataExt;
    super::held::hold(&state, paths)?;
    if !rustix::process::geteuid().is_root() || super::held::owner().is_some() {
        state.owner = super::held::owner();
        return Ok(state);
    }
    let meta = state.metadata()?;
    if meta.uid() == 0 {
        return Ok(state);
    }
    super::held::set_owner((meta.uid(), meta.gid()));
    state.owner = super::held::owner();
    // Not in the library's unit tests: they share one process, and a lock test
    // adopting its directory must not change the modes every other test checks
    // (tests/it/owner.rs checks the umask on the real binary).
    #[cfg(not(test))]
    rustix::process::umask(Mode::from_raw_mode(SERVICE_UMASK));
    tracing::debug!(
        "{} belongs to uid {} gid {}: what root makes there is theirs",
        state.path().display(),
        meta.uid(),
        meta.gid()
    );
    Ok(state)
}

fn ids((uid, gid): (u32, u32)) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

impl Dir {
    /// `fchown` of a file or directory this process just made through this handle
    /// (its own descriptor), when this handle hands over.
    /// Only in a directory already theirs: in one still root's own (a staging
    /// directory, [`Dir::create_dir_new_kept`]) what is made stays root's until
    /// [`Dir::hand_over_tree`] gives the finished tree away.
    pub(super) fn give(&self, fd: impl AsFd, path: &Path) -> Result<()> {
        let Some(owner) = self.owner else {
            return Ok(());
        };
        let dir = rustix::fs::fstat(&self.fd)
            .map_err(std::io::Error::from)
            .with_context(|| format!("reading {}", self.path.display()))?;
        if dir.st_uid != owner.0 {
            return Ok(());
        }
        let (uid, gid) = ids(owner);
        rustix::fs::fchown(fd, uid, gid)
            .map_err(std::io::Error::from)
            .with_context(|| format!("giving {} to {}:{}", path.display(), owner.0, owner.1))
    }

    /// Hand the symlink `name` (just made here) to the adopted owner: through an
    /// `O_PATH|O_NOFOLLOW` descriptor of the link itself, checked to be a link, so
    /// whatever was swapped in at the name is never what gets chowned.
    pub(super) fn give_link(&self, name: &OsStr) -> Result<()> {
        match self.owner {
            Some(owner) => self.give_link_to(name, owner),
            None => Ok(()),
        }
    }

    pub(super) fn give_link_to(&self, name: &OsStr, owner: (u32, u32)) -> Result<()> {
        let path = self.join(name);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            .map_err(std::io::Error::from)
            .with_context(|| format!("opening {}", path.display()))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(std::io::Error::from)
            .with_context(|| format!("reading {}", path.display()))?;
        let kind = Kind::of(&st);
        if kind != Kind::Symlink {
            return Err(refuse_kind(&path, kind, "the symlink just made"));
        }
        let (uid, gid) = ids(owner);
        rustix::fs::chownat(
            &fd,
            "",
            uid,
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("giving {} to {}:{}", path.display(), owner.0, owner.1))
    }

    /// Hand a tree this process made through this handle (a release unpacked into
    /// staging, before the rename into `releases/`) to the adopted owner, this
    /// directory last. Only directories still root's are entered: their entries are
    /// root's own making, which the service user cannot have swapped; a directory
    /// already handed over (its entries the service user's to change) is left as it is.
    /// Directories are entered and chowned through their own descriptors; other
    /// entries by name relative to their directory's handle, never following a link.
    pub fn hand_over_tree(&self) -> Result<()> {
        match self.owner {
            Some(owner) => self.hand_over_tree_to(owner),
            None => Ok(()),
        }
    }

    pub(super) fn hand_over_tree_to(&self, owner: (u32, u32)) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        if self.metadata()?.uid() == owner.0 {
            return Ok(());
        }
        let (uid, gid) = ids(owner);
        let giving = |p: &Path| format!("giving {} to {}:{}", p.display(), owner.0, owner.1);
        for name in self.entries()? {
            match kind_at(&self.fd, &name) {
                Some(Kind::Dir) => self.open_dir(&name)?.hand_over_tree_to(owner)?,
                Some(_) => {
                    rustix::fs::chownat(&self.fd, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(std::io::Error::from)
                        .with_context(|| giving(&self.join(&name)))?
                }
                None => {}
            }
        }
        rustix::fs::fchown(&self.fd, uid, gid)
            .map_err(std::io::Error::from)
            .with_context(|| giving(&self.path))
    }
}
