//! `ksql-msk rollback [--clear]`: go back to the previous kept release by hand, and
//! return to the configured version.
//!
//! The choice is a drop-in, `ksql-msk.d/90-rollback.toml` beside the config file,
//! setting `ksqldb.version` to the previous release: root writes it (the command runs
//! as root; `/etc/ksql-msk/ksql-msk.d` is 0750 root:ksql and the agent, running as
//! `ksql`, cannot write there), and the agent acts on it by reloading, as on any other
//! config change. So `config get ksqldb.version` shows it, it survives restarts, and
//! the configured version does not undo it at the next start. `--clear` removes the
//! drop-in and reloads.
//!
//! Exit codes: 0 done; 69 no previous release to go back to (only one is installed,
//! or the command already rolled back: `--clear` first); 65 the previous release fails
//! verification (its manifest, signer or files; nothing is written); 75 the drop-in was
//! written (or removed) but the service is not running, so the change takes effect at
//! its next start; other codes are the agent's reload outcome (e.g. 69: the restarted
//! ksqlDB failed; the agent keeps restarting it).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{self, is_version, Settings, DROPIN_DIR};
use crate::exit::{fail, one_line, ExitCode};
use crate::host;
use crate::host::layout;
use crate::host::lock;
use crate::release::integrity::{self, Depth};
use crate::release::verify::TrustStore;
use crate::service::control;
use crate::service::pipeline::{current_version, Plan};
use crate::service::upgrade;

/// The drop-in's name in `ksql-msk.d/`.
pub const DROPIN: &str = "90-rollback.toml";

/// `ksql-msk.d/90-rollback.toml` beside the config file `config_path`.
pub fn dropin_path(config_path: &Path) -> PathBuf {
    host::parent_dir(config_path).join(DROPIN_DIR).join(DROPIN)
}

/// Facts for `ksql-msk status`: what the rollback drop-in and the upgrade record say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The drop-in exists (its path).
    pub rolled_back_by_hand: Option<PathBuf>,
    /// An upgrade failed and was rolled back; the failed version is still configured
    /// when `ksqldb.version` (as [`config::load`] gives it) equals its `version`.
    pub failed_upgrade: Option<upgrade::Failed>,
    /// The last version that became ready.
    pub good: Option<String>,
    /// The release `ksql-msk rollback` would go back to.
    pub previous: Option<String>,
}

/// The rollback facts of this host, for `ksql-msk status` (reads only; never fails:
/// what cannot be read is left out). The drop-in is looked for beside
/// `settings.source`, the main config file.
pub fn facts(settings: &Settings) -> Facts {
    let record = upgrade::load(&settings.agent.state_dir).record();
    let dropin = dropin_path(&settings.source);
    let previous =
        current_version(settings).and_then(|current| previous_release(settings, &current, &record));
    Facts {
        rolled_back_by_hand: std::fs::symlink_metadata(&dropin).is_ok().then_some(dropin),
        failed_upgrade: record.failed.clone(),
        good: record.good.clone(),
        previous,
    }
}

/// The kept release before `current`: a real directory under `releases/` with the
/// agent's manifest, other than `current` and than a failed upgrade that was rolled
/// back from; the record's good version if it is one of them, else the most recently
/// installed.
pub fn previous_release(
    settings: &Settings,
    current: &str,
    record: &upgrade::Record,
) -> Option<String> {
    // Listed and opened through the handle of releases/ (beneath the held state
    // directory): a link at releases/ or at a release is not a kept release.
    let releases = crate::host::Dir::open(&settings.releases_dir()).ok()?;
    let failed = record
        .failed
        .as_ref()
        .filter(|f| f.back_to == current)
        .map(|f| f.version.as_str());
    let mut kept: Vec<(std::time::SystemTime, String)> = releases
        .entries()
        .ok()?
        .into_iter()
        .filter_map(|entry| {
            let name = entry.to_str()?.to_string();
            if !is_version(&name) || name == current || Some(name.as_str()) == failed {
                return None;
            }
            let dir = releases.open_dir(&entry).ok()?;
            let (manifest, _) = crate::host::open_state_file(
                &dir,
                layout::MANIFEST,
                crate::host::StateFile::Manifest,
            )
            .ok()??;
            let modified = manifest.metadata().ok()?.modified().ok();
            Some((modified.unwrap_or(std::time::UNIX_EPOCH), name))
        })
        .collect();
    if let Some(good) = record
        .good
        .as_ref()
        .filter(|g| kept.iter().any(|k| &k.1 == *g))
    {
        return Some(good.clone());
    }
    kept.sort();
    kept.pop().map(|(_, name)| name)
}

/// `ksql-msk rollback`.
pub async fn rollback(config_path: &Path) -> Result<String> {
    let settings = config::load(config_path)?;
    let dropin = dropin_path(config_path);
    if dropin.exists() {
        return Err(fail(
            ExitCode::Unavailable,
            format!(
                "already rolled back to ksqlDB {} by {}; `ksql-msk rollback --clear` returns to the configured version",
                settings.ksqldb.version,
                dropin.display()
            ),
        ));
    }
    let state = &settings.agent.state_dir;
    let current = current_version(&settings).ok_or_else(|| {
        fail(
            ExitCode::Unavailable,
            format!(
                "no previous release to roll back to: nothing is installed ({} does not point into releases/)",
                settings.current_link().display()
            ),
        )
    })?;
    let record = upgrade::load(state).record();
    let previous = previous_release(&settings, &current, &record).ok_or_else(|| {
        fail(
            ExitCode::Unavailable,
            format!(
                "no previous release to roll back to: {} holds only ksqlDB {current}, the active one",
                settings.releases_dir().display()
            ),
        )
    })?;
    check_release(config_path, &settings, &previous, &dropin).await?;
    let text = format!(
        "# Written by `ksql-msk rollback`: run ksqlDB {previous}, the release before {current},\n\
         # instead of the configured version. `ksql-msk rollback --clear` removes this file\n\
         # and returns to the configured version.\n\
         [ksqldb]\nversion = \"{previous}\"\n"
    );
    let dir = host::ensure_dir(host::parent_dir(&dropin), 0o750)?;
    // Like the config files: 0640, root and the main config file's group (ksql), so the
    // service reads it whatever umask this root-run command has (working on the state
    // directory, it takes the unit's 0027).
    let gid = std::fs::metadata(&settings.source)
        .with_context(|| format!("reading {}", settings.source.display()))?
        .gid();
    let uid = rustix::process::geteuid().as_raw();
    dir.write_atomic_owned(DROPIN, text.as_bytes(), 0o640, (uid, gid))?;
    match control::reload_if_running()? {
        Some(outcome) => Ok(format!(
            "rolled back from ksqlDB {current} to {previous} ({} written); {outcome}",
            dropin.display()
        )),
        None => Err(fail(
            ExitCode::Temporary,
            format!(
                "{} written: ksqlDB {previous} runs when the service next starts; the service is not running (no agent on {})",
                dropin.display(),
                control::socket_path().display()
            ),
        )),
    }
}

/// `ksql-msk rollback --clear`.
pub async fn clear(config_path: &Path) -> Result<String> {
    let dropin = dropin_path(config_path);
    match std::fs::symlink_metadata(&dropin) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!(
                "not rolled back by hand ({} does not exist): nothing to clear",
                dropin.display()
            ))
        }
        Err(e) => return Err(fail(ExitCode::Config, format!("{}: {e}", dropin.display()))),
        Ok(_) => {}
    }
    std::fs::remove_file(&dropin).map_err(|e| {
        fail(
            ExitCode::Config,
            format!("cannot remove {}: {e}", dropin.display()),
        )
    })?;
    host::sync_dir(host::parent_dir(&dropin))?;
    let version = config::load(config_path)?.ksqldb.version;
    match control::reload_if_running()? {
        Some(outcome) => Ok(format!(
            "back to the configured ksqlDB {version} ({} removed); {outcome}",
            dropin.display()
        )),
        None => Err(fail(
            ExitCode::Temporary,
            format!(
                "{} removed: the configured ksqlDB {version} runs when the service next starts; the service is not running (no agent on {})",
                dropin.display(),
                control::socket_path().display()
            ),
        )),
    }
}

/// The release `version` must be installed from the configured inputs, by a trusted
/// signer, with every file as its manifest records (`ksql-msk verify`'s check), or
/// the rollback is refused with 65.
async fn check_release(
    config_path: &Path,
    settings: &Settings,
    version: &str,
    dropin: &Path,
) -> Result<()> {
    let with = config::load_with_version(config_path, version, dropin)?;
    let trust = TrustStore::load(&settings.agent.state_dir)?;
    let refused = |why: String| {
        fail(
            ExitCode::Data,
            format!("the previous release, ksqlDB {version}, fails verification, so it is not rolled back to: {why}"),
        )
    };
    let (release, manifest) = match Plan::make(&with, &trust) {
        Plan::Installed { release, manifest } | Plan::JarOnly { release, manifest } => {
            (release, manifest)
        }
        Plan::Fresh { release } => {
            return Err(refused(format!(
                "{} is not installed from the configured inputs by a trusted signer, or its files differ from its manifest",
                release.display()
            )))
        }
    };
    let _lock = lock::acquire(&settings.agent.state_dir, settings.agent.lock_timeout).await?;
    integrity::check(&release, &manifest, Depth::Full).map_err(|e| refused(one_line(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abcd1234-5678-90ab-cdef-1234567890ab-3";

    /// A host: config (state dir inside), `releases/<v>` with a manifest file each,
    /// `current` at `active`.
    fn host(releases: &[&str], active: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("releases")).unwrap();
        for v in releases {
            let r = state.join("releases").join(v);
            std::fs::create_dir_all(&r).unwrap();
            std::fs::write(r.join(layout::MANIFEST), "").unwrap();
        }
        std::os::unix::fs::symlink(format!("releases/{active}"), state.join("current")).unwrap();
        let config = dir.path().join("ksql-msk.toml");
        std::fs::write(
            &config,
            format!(
                "[msk]\ncluster_arn = \"{ARN}\"\n[agent]\nstate_dir = \"{}\"\n",
                state.display()
            ),
        )
        .unwrap();
        let settings = config::load(&config).unwrap();
        (dir, settings)
    }

    #[test]
    fn the_previous_release_and_the_facts_for_status() {
        let (dir, s) = host(&["0.28.2", "0.29.0"], "0.29.0");
        let none = upgrade::Record::default();
        assert_eq!(
            previous_release(&s, "0.29.0", &none).as_deref(),
            Some("0.28.2")
        );
        // Only the active one (and litter: a staging dir, a dir without a manifest).
        let (_d2, only) = host(&["0.29.0"], "0.29.0");
        std::fs::create_dir_all(only.releases_dir().join(".staging-x")).unwrap();
        std::fs::create_dir_all(only.releases_dir().join("0.27.0")).unwrap();
        assert_eq!(previous_release(&only, "0.29.0", &none), None);
        // After an automatic rollback to 0.28.2, the failed 0.29.0 is no way back.
        let rolled = upgrade::Record {
            good: Some("0.28.2".into()),
            failed: Some(upgrade::Failed {
                version: "0.29.0".into(),
                reason: "never healthy in 5m".into(),
                back_to: "0.28.2".into(),
            }),
        };
        assert_eq!(previous_release(&s, "0.28.2", &rolled), None);
        upgrade::save(&s.agent.state_dir, &rolled).unwrap();
        std::fs::remove_file(s.current_link()).unwrap();
        std::os::unix::fs::symlink("releases/0.28.2", s.current_link()).unwrap();
        let dropin = dir.path().join(DROPIN_DIR).join(DROPIN);
        assert_eq!(
            facts(&s),
            Facts {
                rolled_back_by_hand: None,
                failed_upgrade: rolled.failed.clone(),
                good: Some("0.28.2".into()),
                previous: None,
            }
        );
        std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
        std::fs::write(&dropin, "[ksqldb]\nversion = \"0.28.2\"\n").unwrap();
        assert_eq!(facts(&s).rolled_back_by_hand, Some(dropin));
    }
}
