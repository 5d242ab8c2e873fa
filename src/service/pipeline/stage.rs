//! Stage a release: the signature and key, then the archive streamed through the
//! signature check and the unpacker into `releases/.staging-*` while it downloads, and
//! the IAM jar meanwhile. Nothing here makes the release live.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures_util::future::{abortable, join3, try_join, Aborted};

use super::jar::{self, CheckedJar};
use crate::config::{KeySource, Settings};
use crate::exit::{fail, ExitCode};
use crate::host;
use crate::host::failpoint;
use crate::release::fetch::{Download, Fetcher, Growth};

use crate::progress::Progress;
use crate::release::unpack::{self, Unpacked};
use crate::release::verify::{SignatureCheck, SignerTrust, TrustStore};

/// A staging directory under `releases/` starts with this (leftovers are removed).
pub const STAGING_PREFIX: &str = ".staging-";

/// Unpacked size estimate per archive byte, for the free-space check: the release is
/// mostly jars, which gzip barely shrinks.
const UNPACK_RATIO: f64 = 1.2;

/// A verified, unpacked release in its staging directory, and the checked jar. The
/// staging directory goes when this is dropped, unless it was renamed into place.
#[derive(Debug)]
pub struct Staged {
    pub dir: StagingDir,
    pub unpacked: Unpacked,
    pub jar: CheckedJar,
    /// The trust rule the signer was checked against.
    pub signer_trust: SignerTrust,
}

impl Staged {
    /// The signer was accepted on first use: trust.toml must record it.
    pub fn first_use_signer(&self) -> bool {
        matches!(self.signer_trust, SignerTrust::FirstUse(None))
    }
}

/// A staging directory under `releases/`, removed when dropped (on success it has been
/// renamed into place by then, so there is nothing left to remove).
#[derive(Debug)]
pub struct StagingDir(PathBuf, std::sync::Mutex<Option<(u64, u64)>>);

impl StagingDir {
    /// A fresh, unpredictable name for `version`'s staging directory (not created yet).
    fn new(releases: &Path, version: &str) -> StagingDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        StagingDir(
            releases.join(format!(
                "{STAGING_PREFIX}{version}-{}-{nanos:08x}",
                std::process::id()
            )),
            std::sync::Mutex::new(None),
        )
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Create it afresh and return its handle, which everything written into it goes
    /// through; its identity (device, inode) is kept to check before it goes live.
    fn create(&self) -> Result<host::Dir> {
        let dir = create_staging(&self.0)?;
        let identity = dir.identity()?;
        if let Ok(mut kept) = self.1.lock() {
            *kept = Some(identity);
        }
        Ok(dir)
    }

    /// The identity of the directory [`StagingDir::create`] made, if it made one.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.1.lock().ok().and_then(|kept| *kept)
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        remove_staging(&self.0);
    }
}

/// Fetch, verify and unpack the configured release into a new staging directory.
/// Whatever fails first stops the rest: a failed verify/unpack or jar aborts the
/// archive download, an abandoned download fails the unpacker that follows it.
pub async fn stage(
    fetcher: &Fetcher,
    settings: &Settings,
    trust: &TrustStore,
    progress: &dyn Progress,
) -> Result<Staged> {
    let k = &settings.ksqldb;
    let signer_trust = trust.signer_trust(&k.trusted_fingerprints);
    let staging = StagingDir::new(&settings.releases_dir(), &k.version);
    let growth = Growth::default();
    let (archive, abort) =
        abortable(fetcher.fetch_growing(&k.archive_url, "ksqlDB archive", progress, &growth));
    let streamed = async {
        let r = verify_and_unpack(
            fetcher,
            settings,
            &signer_trust,
            &staging,
            &growth,
            progress,
        )
        .await;
        // Stop the download unless the unpack must start over from the complete file.
        if !matches!(&r, Ok((_, Ok(_)))) && !growth.restarted_under_follower() {
            abort.abort();
        }
        r
    };
    let jar = async {
        let r = jar::fetch(fetcher, settings, trust, progress).await;
        if r.is_err() {
            abort.abort();
        }
        r
    };
    let (archive, streamed, jar) = join3(archive, streamed, jar).await;
    // The first cause wins: the download's own error, then the jar's, then verify/unpack.
    let archive: Option<Download> = match archive {
        Ok(downloaded) => Some(downloaded?),
        Err(Aborted) => None,
    };
    let jar = jar?;
    let (check, unpacked) = streamed?;
    failpoint::hit("install.after_download")?;
    let unpacked = if growth.restarted_under_follower() {
        // What was read may mix two versions of the file: start over from the
        // completed download, which the signature covers as a whole.
        let archive = archive.ok_or_else(|| {
            fail(
                ExitCode::Temporary,
                format!(
                    "{}: the download started over and then stopped",
                    k.archive_url
                ),
            )
        })?;
        tracing::info!("the archive download started over: unpacking the complete file again");
        unpack_again(
            &staging,
            &archive.path,
            settings.agent.max_release_size,
            check,
        )
        .await?
    } else {
        // An aborted download always comes with the error that aborted it.
        unpacked?
    };
    Ok(Staged {
        dir: staging,
        unpacked,
        jar,
        signer_trust,
    })
}

/// The signature and key first (small), then verify + unpack the archive as it grows.
/// Returns the check (an unpack that must start over needs it again) and the outcome.
async fn verify_and_unpack(
    fetcher: &Fetcher,
    settings: &Settings,
    signer_trust: &SignerTrust,
    staging: &StagingDir,
    growth: &Growth,
    progress: &dyn Progress,
) -> Result<(SignatureCheck, Result<Unpacked>)> {
    let k = &settings.ksqldb;
    let (signature, (key, key_origin)) = try_join(
        fetcher.fetch(&k.signature_url, "ksqlDB signature", progress),
        signing_key(fetcher, &k.key, progress),
    )
    .await?;
    let sig_bytes = host::read_state(&signature.path, host::StateFile::Signature)?
        .with_context(|| format!("reading {}: missing", signature.path.display()))?;
    let check = SignatureCheck::new(
        &key,
        &key_origin,
        sig_bytes,
        &k.signature_url,
        signer_trust.clone(),
    )?;
    let staging_dir = staging.create()?;
    progress.phase(&format!("verifying and unpacking ksqlDB {}", k.version));
    let (growth, dir, releases, url, max) = (
        growth.clone(),
        staging_dir,
        settings.releases_dir(),
        k.archive_url.redacted(),
        settings.agent.max_release_size,
    );
    tokio::task::spawn_blocking(move || {
        let total = growth.wait_total();
        let r = total
            .map_or(Ok(()), |t| {
                crate::host::check_space(&releases, (t as f64 * UNPACK_RATIO) as u64)
            })
            .and_then(|()| {
                unpack::unpack_verified_from(growth.follower(), &url, total, &dir, max, &check)
            });
        (check, r)
    })
    .await
    .context("the unpack task failed")
}

/// The archive's signing key: downloaded, or read from the configured file.
async fn signing_key(
    fetcher: &Fetcher,
    key: &KeySource,
    progress: &dyn Progress,
) -> Result<(Vec<u8>, String)> {
    match key {
        KeySource::Url(u) => {
            let d = fetcher.fetch(u, "signing key", progress).await?;
            let bytes = host::read_state(&d.path, host::StateFile::Key)?
                .with_context(|| format!("reading {}: missing", d.path.display()))?;
            Ok((bytes, u.redacted()))
        }
        KeySource::File(p) => {
            let bytes = fs::read(p).map_err(|e| {
                fail(
                    ExitCode::Config,
                    format!("ksqldb.key_url: cannot read key file {}: {e}", p.display()),
                )
            })?;
            Ok((bytes, p.display().to_string()))
        }
    }
}

/// Unpack the completed archive file into a fresh staging directory.
async fn unpack_again(
    staging: &StagingDir,
    archive: &Path,
    max: u64,
    check: SignatureCheck,
) -> Result<Unpacked> {
    remove_staging(staging.path());
    let dir = staging.create()?;
    let path = archive.to_path_buf();
    tokio::task::spawn_blocking(move || unpack::unpack_verified(&path, &dir, max, &check))
        .await
        .context("the unpack task failed")?
}

/// Create a staging directory afresh in `releases/`, which must be a real directory
/// (a symlink planted there is refused, so nothing is unpacked elsewhere).
fn create_staging(path: &Path) -> Result<host::Dir> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    // Root's until complete hands the finished tree over (host::adopt_state_dir):
    // nobody else may change what the extractor writes by path into it.
    host::Dir::open(host::parent_dir(path))?.create_dir_new_kept(name, 0o755)
}

/// Remove a staging directory (a missing one is fine).
pub fn remove_staging(staging: &Path) {
    let removed = crate::host::Dir::parent_of(staging)
        .and_then(|(releases, name)| releases.remove_tree(name));
    if let Err(e) = removed {
        tracing::warn!(
            "cannot remove {}: {}",
            staging.display(),
            crate::exit::one_line(&e)
        );
    }
}
