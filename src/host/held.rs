//! The state directory's handle, held for the whole process once it is opened and
//! checked (lock::open_state_dir), and the resolution of every path under it beneath
//! that handle.
//!
//! Callers name files under the state directory by path (`settings.releases_dir()`,
//! `release_dir.join(MANIFEST)`); none of those paths is ever opened from `/`. The part
//! below the state directory is walked from the held handle one component at a time,
//! no link followed at any of them, each a directory owned by root, this process's
//! user or the state directory's owner. `current`, a symlink by design, is the one
//! name read as a link: its target must be `releases/<version>` (one plain name), and
//! that is opened beneath the handle in its place.
//!
//! Here too are [`Dir`]'s constructors that take a path ([`Dir::open`],
//! [`Dir::open_trusted`], [`Dir::parent_of`], [`Dir::open_beneath`],
//! [`Dir::create_beneath`]): a path under the state directory is resolved beneath the
//! held handle, never by name from `/`, so a `releases` or release directory swapped
//! for a link (into `/etc`, or into `/proc/<pid>/root` of a process the service user
//! owns) is refused instead of followed. `dir.rs` names neither this file nor the
//! held handle: this file uses it, never the other way round.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};

use super::dir::{refuse_kind, Dir, Kind};
use crate::exit::{fail, ExitCode};

/// The link to the active release; see the module comment.
pub const CURRENT: &str = "current";
/// The directory `current` must point into.
pub const RELEASES: &str = "releases";

#[derive(Debug)]
struct Held {
    /// The state directory as configured and as normalised.
    paths: Vec<PathBuf>,
    dir: Dir,
    /// Owners a directory beneath may have: root, this process's user, the state
    /// directory's owner.
    owners: [u32; 3],
}

static HELD: OnceLock<Held> = OnceLock::new();

/// Hold `state` (just opened and checked) for the rest of the process: from here on
/// every path under `paths` is resolved beneath it. Once per process; later calls are
/// ignored.
pub(super) fn hold(state: &Dir, paths: &[&Path]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if HELD.get().is_some() {
        return Ok(());
    }
    let owner = state.metadata()?.uid();
    let held = Held {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        dir: state.try_clone()?,
        owners: [0, rustix::process::geteuid().as_raw(), owner],
    };
    let _ = HELD.set(held);
    Ok(())
}

/// Give the held handle the owner what is made beneath it is handed to.
pub(super) fn set_owner(owner: (u32, u32)) {
    let _ = OWNER.set(owner);
}

static OWNER: OnceLock<(u32, u32)> = OnceLock::new();

/// The owner what is made under the held state directory is handed to, if adopted.
pub(super) fn owner() -> Option<(u32, u32)> {
    OWNER.get().copied()
}

impl Dir {
    /// Open `path` as a directory; a symlink as its last component is refused (65).
    /// Under the state directory the whole path below it is resolved beneath its held
    /// handle; elsewhere the components before the last are the caller's to trust.
    pub fn open(path: &Path) -> Result<Dir> {
        if let Some(dir) = open(path)? {
            return Ok(dir);
        }
        Dir::open_path(path, true)
    }

    /// Open `path` as a directory following symlinks, as a path does: for directories
    /// outside anyone else's reach (the state directory's parents). Under the state
    /// directory it is [`Dir::open`]: nothing there is trusted.
    pub fn open_trusted(path: &Path) -> Result<Dir> {
        if let Some(dir) = open(path)? {
            return Ok(dir);
        }
        Dir::open_path(path, false)
    }

    /// The directory of `path` and the file name in it: what the path-based functions
    /// work on ([`Dir::open_trusted`] of the parent).
    pub(crate) fn parent_of(path: &Path) -> Result<(Dir, OsString)> {
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?;
        let dir = Dir::open_trusted(parent_dir(path))?;
        Ok((dir, name.to_os_string()))
    }

    /// `root/rel` with each component of `rel` opened beneath the one before it,
    /// following no link: a symlink anywhere below `root` (or at `root` itself) is
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
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The components of `rel` below `root`: plain names only.
fn rel_parts<'a>(root: &Path, rel: &'a Path) -> Result<Vec<&'a OsStr>> {
    plain_parts(rel).ok_or_else(|| {
        fail(
            ExitCode::Data,
            format!("{}: {} leaves it; refusing", root.display(), rel.display()),
        )
    })
}

/// The plain names of `rel` (`.` skipped); `None` when any component is not one.
fn plain_parts(rel: &Path) -> Option<Vec<&OsStr>> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts)
}

/// `path` opened beneath the held state directory, if it lies under it (`None`: it
/// does not, or nothing is held, and the caller opens it as before).
pub(super) fn open(path: &Path) -> Result<Option<Dir>> {
    let Some(held) = HELD.get() else {
        return Ok(None);
    };
    let Some((base, rel)) = held
        .paths
        .iter()
        .find_map(|p| path.strip_prefix(p).ok().map(|rel| (p, rel)))
    else {
        return Ok(None);
    };
    let mut dir = held.dir.try_clone()?;
    dir.owner = owner();
    let parts = plain_parts(rel).ok_or_else(|| {
        fail(
            ExitCode::Data,
            format!("{}: leaves {}; refusing", path.display(), base.display()),
        )
    })?;
    let mut parts = parts.into_iter().peekable();
    if parts.peek() == Some(&OsStr::new(CURRENT)) && dir.kind(CURRENT)? == Some(Kind::Symlink) {
        parts.next();
        let version = current_target(&dir)?;
        dir = dir.open_dir(RELEASES)?;
        check_owner(held, &dir)?;
        dir = dir.open_dir(version)?;
        check_owner(held, &dir)?;
    }
    for part in parts {
        dir = dir.open_dir(part)?;
        check_owner(held, &dir)?;
    }
    dir.path = path.to_path_buf();
    Ok(Some(dir))
}

/// The version `current` (in `state`) names: its target must be `releases/<version>`,
/// one plain name (65 otherwise).
pub fn current_target(state: &Dir) -> Result<std::ffi::OsString> {
    let link = state.path().join(CURRENT);
    let target = state
        .read_link(CURRENT)
        .ok_or_else(|| refuse_kind(&link, Kind::Other, "a symlink"))?;
    let mut parts = target.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(r)), Some(Component::Normal(v)), None) if r == RELEASES => {
            Ok(v.to_os_string())
        }
        _ => Err(fail(
            ExitCode::Data,
            format!(
                "{} points to {}, not releases/<version>: refusing to follow it \
                 (something other than ksql-msk put it there)",
                link.display(),
                target.display()
            ),
        )),
    }
}

fn check_owner(held: &Held, dir: &Dir) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let uid = dir.metadata()?.uid();
    if held.owners.contains(&uid) {
        return Ok(());
    }
    Err(fail(
        ExitCode::Data,
        format!(
            "{} belongs to uid {uid}, neither root, this user nor the state directory's owner: refusing it",
            dir.path().display()
        ),
    ))
}
