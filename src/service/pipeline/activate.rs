//! Activate a completed release: rename staging into `releases/<version>`, swap the
//! `current` symlink atomically, prune old releases. Also the clean-up of what a
//! crashed run left behind.

use std::path::Path;

use anyhow::{Context, Result};

use super::stage::{Staged, STAGING_PREFIX};
use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::host::failpoint;
use crate::host::layout;
use crate::host::{self, Dir, Kind};

const CURRENT_TMP_PREFIX: &str = ".current.tmp-";

/// Create `releases/` and remove what a crashed run left: staging directories and
/// temporary `current` links.
pub fn prepare_releases_dir(settings: &Settings) -> Result<()> {
    // A real directory, not a symlink planted in its place; listed and cleaned
    // through its handle.
    let state = Dir::open(&settings.agent.state_dir)?;
    state.create_dir("releases", 0o755)?;
    let releases = state.open_dir("releases")?;
    for name in releases.entries()? {
        if name.to_string_lossy().starts_with(STAGING_PREFIX) {
            tracing::info!(
                "removing {} left by an interrupted install",
                releases.path().join(&name).display()
            );
            releases.remove_tree(&name)?;
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
    place(&staged.dir, release)?;
    host::sync_dir(&settings.releases_dir())?;
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
        crate::ksqldb::metastore::keep_for_upgrade(settings, &from, version)?;
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
    let state = Dir::open(&settings.agent.state_dir).ok()?;
    let version = host::current_target(&state).ok()?;
    Some(version.to_string_lossy().into_owned())
}

/// After a switch, keep the new release and the one it replaced (a running ksqlDB may
/// still use it until the restart, and it is the way back) and remove older ones, so
/// upgrades do not fill the disk. Failing to remove one is a warning: nothing is lost.
fn prune_releases(settings: &Settings, active: &str, previous: Option<&str>) {
    let Ok(releases) = Dir::open(&settings.releases_dir()) else {
        return;
    };
    for entry in releases.entries().unwrap_or_default() {
        let name = entry.to_string_lossy().into_owned();
        let keep = name == active || Some(name.as_str()) == previous;
        let path = releases.path().join(&entry);
        // Only real release directories, looked at through their own handle.
        let is_release = releases
            .open_dir(&entry)
            .is_ok_and(|d| d.kind(layout::MANIFEST).ok().flatten() == Some(Kind::File));
        if keep || name.starts_with('.') || !is_release {
            continue;
        }
        match releases.remove_tree(&entry) {
            Ok(()) => tracing::info!("removed the old release {}", path.display()),
            Err(e) => tracing::warn!(
                "could not remove the old release {}: {}",
                path.display(),
                crate::exit::one_line(&e)
            ),
        }
    }
}

/// Put the verified staging directory in place as `release`, both renamed through
/// the handle of `releases/`; the directory at the staging name must be the one this
/// run made (device and inode), before and after, or nothing goes live.
fn place(staging: &super::stage::StagingDir, release: &Path) -> Result<()> {
    let (releases, release_name) = Dir::parent_of(release)?;
    let staging_name = staging
        .path()
        .file_name()
        .with_context(|| format!("{} has no file name", staging.path().display()))?;
    let made = staging.identity();
    let swapped_in = |what: &Path| {
        fail(
            ExitCode::Data,
            format!(
                "{} is not the staging directory this install made (renamed or replaced meanwhile): refusing to make it live",
                what.display()
            ),
        )
    };
    if made.is_none() || releases.open_dir(staging_name)?.identity().ok() != made {
        return Err(swapped_in(staging.path()));
    }
    // lstat: a planted link (even a dangling one) is swapped out too, not followed.
    if releases.kind(&release_name)?.is_some() {
        // A release dir with a stale or foreign manifest, or a tree that no longer
        // matches it: swap, then drop the old one right away (it frees the space before
        // pruning; a link goes, not what it points to).
        rustix::fs::renameat_with(
            &releases,
            staging_name,
            &releases,
            &release_name,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(std::io::Error::from)
        .with_context(|| {
            format!(
                "exchanging {} and {}",
                staging.path().display(),
                release.display()
            )
        })?;
        let _ = releases.remove_tree(staging_name);
    } else {
        releases.rename(staging_name, &release_name)?;
    }
    if releases.open_dir(&release_name)?.identity().ok() != made {
        return Err(swapped_in(release));
    }
    Ok(())
}
