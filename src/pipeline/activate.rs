//! Activate a completed release: rename staging into `releases/<version>`, swap the
//! `current` symlink atomically, prune old releases. Also the clean-up of what a
//! crashed run left behind.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::stage::Staged;
use crate::config::Settings;
use crate::failpoint;
use crate::fsutil::{self, Dir};
use crate::layout;

pub const STAGING_PREFIX: &str = ".staging-";
const CURRENT_TMP_PREFIX: &str = ".current.tmp-";

/// Create `releases/` and remove what a crashed run left: staging directories and
/// temporary `current` links.
pub fn prepare_releases_dir(settings: &Settings) -> Result<()> {
    let releases = settings.releases_dir();
    // A real directory, not a symlink planted in its place.
    let state = Dir::open(&settings.agent.state_dir)?;
    state.create_dir("releases", 0o755)?;
    state.open_dir("releases")?;
    let entries =
        fs::read_dir(&releases).with_context(|| format!("listing {}", releases.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", releases.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            tracing::info!(
                "removing {} left by an interrupted install",
                entry.path().display()
            );
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    for name in state.entries().unwrap_or_default() {
        if name.to_string_lossy().starts_with(CURRENT_TMP_PREFIX) {
            let _ = state.remove_file(&name);
        }
    }
    Ok(())
}

/// Make the staged release live as `release` (`releases/<version>`): rename it into
/// place, point `current` at it, and prune releases older than the one it replaced.
pub fn activate(settings: &Settings, staged: Staged, release: &Path) -> Result<()> {
    let version = &settings.ksqldb.version;
    failpoint::hit("install.before_staging_rename")?;
    place(staged.dir.path(), release)?;
    fsutil::sync_dir(&settings.releases_dir())?;
    failpoint::hit("install.after_staging_rename")?;
    let previous = current_version(settings);
    point_current(settings, version)?;
    failpoint::hit("install.after_current_swap")?;
    prune_releases(settings, version, previous.as_deref());
    Ok(())
}

/// Point `current` at `releases/<version>` atomically: a new link under a random
/// temporary name (`.current.tmp-<pid>-<hex>`) renamed over the old one, so whatever
/// was planted at either name is replaced, never followed. Returns whether it changed.
pub fn point_current(settings: &Settings, version: &str) -> Result<bool> {
    // The way back: ksqlDB's command-topic backup as it was before the switch.
    if let Some(from) = current_version(settings).filter(|v| v != version) {
        crate::metastore::keep_for_upgrade(settings, &from, version)?;
    }
    let link = settings.current_link();
    let target = Path::new("releases").join(version);
    let state = Dir::open(&settings.agent.state_dir)?;
    let name = link
        .file_name()
        .with_context(|| format!("{} has no file name", link.display()))?;
    let changed = state.symlink_atomic_at(name, &target, "install.before_current_swap")?;
    if changed {
        tracing::info!("{} now points to {}", link.display(), target.display());
    }
    Ok(changed)
}

/// The version `current` points to, if it points into `releases/`.
pub fn current_version(settings: &Settings) -> Option<String> {
    let target = fs::read_link(settings.current_link()).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    (target.parent() == Some(Path::new("releases"))).then_some(name)
}

/// After a switch, keep the new release and the one it replaced (a running ksqlDB may
/// still use it until the restart, and it is the way back) and remove older ones, so
/// upgrades do not fill the disk. Failing to remove one is a warning: nothing is lost.
fn prune_releases(settings: &Settings, active: &str, previous: Option<&str>) {
    let releases = settings.releases_dir();
    let Ok(entries) = fs::read_dir(&releases) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = name == active || Some(name.as_str()) == previous;
        if keep || name.starts_with('.') || !entry.path().join(layout::MANIFEST).exists() {
            continue;
        }
        match fs::remove_dir_all(entry.path()) {
            Ok(()) => tracing::info!("removed the old release {}", entry.path().display()),
            Err(e) => tracing::warn!(
                "could not remove the old release {}: {e}",
                entry.path().display()
            ),
        }
    }
}

/// Put the verified `staging` directory in place as `release`.
fn place(staging: &Path, release: &Path) -> Result<()> {
    // lstat: a planted link (even a dangling one) is swapped out too, not followed.
    if fs::symlink_metadata(release).is_ok() {
        // A release dir with a stale or foreign manifest, or a tree that no longer
        // matches it: swap, then drop the old one right away (it frees the space before
        // pruning; a link goes, not what it points to).
        exchange(staging, release).map(|()| remove_staging(staging))
    } else {
        fs::rename(staging, release)
            .with_context(|| format!("renaming {} to {}", staging.display(), release.display()))
    }
}

/// Swap two directory entries atomically (`renameat2(RENAME_EXCHANGE)`), so a
/// reinstalled version never has a moment where it does not exist.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).context("path with NUL")?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).context("path with NUL")?;
    // SAFETY: two valid C strings; AT_FDCWD with absolute or cwd-relative paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("exchanging {} and {}", a.display(), b.display()));
    }
    Ok(())
}

/// Remove a staging directory (a missing one is fine).
pub fn remove_staging(staging: &Path) {
    if let Err(e) = fs::remove_dir_all(staging) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", staging.display());
        }
    }
}
