//! DESIGN.md phases 3–4 and the jar half of 5: fetch, verify, unpack and activate a
//! ksqlDB release with the IAM auth jar. The caller holds the state lock.
//!
//! Host invariants: `current` always points at a complete, verified release (or does
//! not exist yet); a new release appears only by renaming a fully written and synced
//! staging directory; any failure removes staging and leaves `current` alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::config::{KeySource, Settings};
use crate::exit::{fail, ExitCode};
use crate::failpoint;
use crate::fetch::{self, Download, Fetcher};
use crate::fsutil;
use crate::layout;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::unpack;
use crate::verify::{self, SignatureCheck, Signer, SignerTrust, TrustStore};

/// Unpacked size estimate per archive byte, for the free-space check: the release is
/// mostly jars, which gzip barely shrinks.
const UNPACK_RATIO: f64 = 1.2;
pub const STAGING_PREFIX: &str = ".staging-";
const JAR_PREFIX: &str = "aws-msk-iam-auth-";

#[derive(Debug, Clone)]
pub struct Installed {
    pub release_dir: PathBuf,
    pub version: String,
    /// The active release changed: `current` was switched, or the release's content
    /// (its jar) was replaced. A supervisor restarts ksqlDB when this is true.
    pub activated: bool,
    pub manifest: Manifest,
}

/// The trust rule for the archive's signer: pinned, else what trust.toml recorded.
fn signer_trust(settings: &Settings, trust: &TrustStore) -> SignerTrust {
    if settings.ksqldb.trusted_fingerprints.is_empty() {
        SignerTrust::FirstUse(trust.signer())
    } else {
        SignerTrust::Pinned(settings.ksqldb.trusted_fingerprints.clone())
    }
}

/// The jar's expected hash and where that expectation comes from.
fn expected_jar(settings: &Settings, trust: &TrustStore) -> Option<(String, &'static str)> {
    match &settings.iam_auth.sha256 {
        Some(h) => Some((h.clone(), "iam_auth.sha256")),
        None => trust
            .jar_sha256(&settings.iam_auth.jar_url)
            .map(|h| (h, "recorded on first use in trust.toml")),
    }
}

pub fn jar_file_name(settings: &Settings) -> String {
    let url = &settings.iam_auth.jar_url;
    let base = url.split(['?', '#']).next().unwrap_or(url);
    match base.rsplit('/').next() {
        Some(n) if n.ends_with(".jar") && !n.contains("..") => n.to_string(),
        _ => format!("{JAR_PREFIX}{}-all.jar", settings.iam_auth.version),
    }
}

/// Does the installed release match the configured inputs? (No hashing: the manifest
/// says what was verified when it was written.)
fn archive_matches(m: &Manifest, settings: &Settings, trust: &SignerTrust) -> bool {
    m.version == settings.ksqldb.version
        && m.archive_url == settings.ksqldb.archive_url
        && m.signature_url == settings.ksqldb.signature_url
        && trust.accepts(&Signer {
            primary: m.signer.clone(),
            key: m.signing_key.clone(),
        })
}

fn jar_matches(
    m: &Manifest,
    settings: &Settings,
    expected: &Option<(String, &str)>,
    release: &Path,
) -> bool {
    m.jar_url == settings.iam_auth.jar_url
        && expected.as_ref().is_none_or(|(h, _)| *h == m.jar_sha256)
        && release.join(layout::JAR_DIR).join(&m.jar_file).is_file()
}

/// What `install` would do, for `--dry-run`: no network, no writes.
pub fn plan(settings: &Settings) -> Result<Vec<String>> {
    let trust = TrustStore::load(&settings.agent.state_dir)?;
    let release = settings.releases_dir().join(&settings.ksqldb.version);
    let expected = expected_jar(settings, &trust);
    let mut lines = Vec::new();
    match Manifest::load(&release) {
        Some(m) if archive_matches(&m, settings, &signer_trust(settings, &trust)) => {
            lines.push(format!(
                "ksqlDB {} is installed in {}",
                m.version,
                release.display()
            ));
            if !jar_matches(&m, settings, &expected, &release) {
                lines.push(format!("would download {}", settings.iam_auth.jar_url));
            }
        }
        _ => {
            lines.push(format!("would download {}", settings.ksqldb.archive_url));
            lines.push(format!("would download {}", settings.ksqldb.signature_url));
            if let KeySource::Url(u) = &settings.ksqldb.key {
                lines.push(format!("would download {u}"));
            }
            lines.push(format!("would download {}", settings.iam_auth.jar_url));
            lines.push(format!("would install into {}", release.display()));
        }
    }
    if expected.is_none() {
        lines.push(format!(
            "would download {}.sha256 (trust on first use)",
            settings.iam_auth.jar_url
        ));
    }
    Ok(lines)
}

/// Remove what a crashed run left: staging directories and temporary links.
pub fn clean_stale(settings: &Settings) -> Result<()> {
    let releases = settings.releases_dir();
    let entries = match fs::read_dir(&releases) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", releases.display())),
    };
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
    let state = &settings.agent.state_dir;
    if let Ok(entries) = fs::read_dir(state) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".current.tmp-")
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Point `current` at `releases/<version>` atomically: a new link under a temporary
/// name renamed over the old one. Returns whether it changed.
pub fn point_current(settings: &Settings, version: &str) -> Result<bool> {
    let link = settings.current_link();
    let target = Path::new("releases").join(version);
    if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
        return Ok(false);
    }
    let state = &settings.agent.state_dir;
    let tmp = state.join(format!(".current.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    if let Err(e) = failpoint::hit("install.before_current_swap")
        .and_then(|()| fs::rename(&tmp, &link).map_err(anyhow::Error::from))
    {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("replacing {}", link.display()));
    }
    fsutil::sync_dir(state)?;
    tracing::info!("{} now points to {}", link.display(), target.display());
    Ok(true)
}

/// The version `current` points to, if it points into `releases/`.
fn current_version(settings: &Settings) -> Option<String> {
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

/// Copy the jar into `release/share/java/ksqldb/` atomically and remove older
/// aws-msk-iam-auth jars there (two versions on one classpath is a lottery).
fn install_jar(release: &Path, jar: &Path, file_name: &str) -> Result<()> {
    let dir = release.join(layout::JAR_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fsutil::copy_atomic(jar, &dir.join(file_name), 0o644)?;
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(JAR_PREFIX) && name.ends_with(".jar") && name != file_name {
            tracing::info!("removing older {name} from {}", dir.display());
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    fsutil::sync_dir(&dir)
}

/// Fetch the jar (and, on first use, its published hash) and check it.
/// Returns the download, its hash, and whether the hash is new to trust.toml.
async fn fetch_jar(
    fetcher: &Fetcher,
    settings: &Settings,
    expected: &Option<(String, &'static str)>,
    progress: &dyn Progress,
) -> Result<(Download, String, bool)> {
    let url = &settings.iam_auth.jar_url;
    let sha_url = format!("{url}.sha256");
    let (jar, published) = match expected {
        Some(_) => (
            fetcher.fetch(url, "aws-msk-iam-auth jar", progress).await?,
            None,
        ),
        None => {
            let (jar, sha) = futures_util::future::try_join(
                fetcher.fetch(url, "aws-msk-iam-auth jar", progress),
                fetcher.fetch(&sha_url, "aws-msk-iam-auth jar hash", progress),
            )
            .await?;
            (jar, Some(sha))
        }
    };
    let path = jar.path.clone();
    let actual = tokio::task::spawn_blocking(move || verify::sha256_file(&path))
        .await
        .context("hashing the jar")??;
    let result = match (expected, &published) {
        (Some((h, origin)), _) => {
            verify::check_jar(&jar.path, url, &actual, h, origin).map(|()| false)
        }
        (None, Some(sha)) => {
            let text = fs::read_to_string(&sha.path).unwrap_or_default();
            fetch::discard(&sha.path);
            match verify::parse_sha256_file(&text) {
                Some(h) => verify::check_jar(&jar.path, url, &actual, &h, &format!("published in {sha_url}"))
                    .map(|()| true),
                None => Err(fail(
                    ExitCode::Data,
                    format!("{sha_url} does not hold a SHA-256 hash; set iam_auth.sha256 to the jar's hash"),
                )),
            }
        }
        (None, None) => unreachable!("the published hash is fetched when nothing is expected"),
    };
    match result {
        Ok(new) => Ok((jar, actual, new)),
        Err(e) => {
            fetch::discard(&jar.path);
            Err(e)
        }
    }
}

fn warn_tofu_jar(url: &str, sha: &str) {
    tracing::warn!(
        "TRUST ON FIRST USE: accepted the aws-msk-iam-auth jar {url} with SHA-256 {sha} because iam_auth.sha256 is empty. \
         Pin it in the config to make it strict: [iam_auth] sha256 = \"{sha}\""
    );
}

/// `managed`: the managed properties ([`crate::properties::managed`]); a new release is
/// rendered with them while it is still staging, so `current` never points at a release
/// with an unrendered properties file.
pub async fn install_release(
    settings: &Settings,
    progress: &dyn Progress,
    managed: &[(String, String)],
) -> Result<Installed> {
    let version = settings.ksqldb.version.clone();
    let releases = settings.releases_dir();
    fs::create_dir_all(&releases).with_context(|| format!("creating {}", releases.display()))?;
    clean_stale(settings)?;
    let mut trust = TrustStore::load(&settings.agent.state_dir)?;
    let signer_trust = signer_trust(settings, &trust);
    let expected = expected_jar(settings, &trust);
    let release = releases.join(&version);
    let fetcher = Fetcher::new(settings)?;

    // Already installed and verified?
    if let Some(mut m) = Manifest::load(&release) {
        if archive_matches(&m, settings, &signer_trust) {
            let mut changed = false;
            if !jar_matches(&m, settings, &expected, &release) {
                progress.phase(&format!("updating the IAM auth jar of ksqlDB {version}"));
                let (jar, sha, new) = fetch_jar(&fetcher, settings, &expected, progress).await?;
                let file = jar_file_name(settings);
                install_jar(&release, &jar.path, &file)?;
                m.jar_url = settings.iam_auth.jar_url.clone();
                m.jar_sha256 = sha.clone();
                m.jar_file = file;
                m.save(&release)?;
                if new {
                    trust.set_jar_sha256(&settings.iam_auth.jar_url, &sha);
                    trust.save()?;
                    warn_tofu_jar(&settings.iam_auth.jar_url, &sha);
                }
                fetch::discard(&jar.path);
                changed = true;
            } else {
                tracing::info!(
                    "ksqlDB {version} is already installed and verified in {}",
                    release.display()
                );
            }
            let switched = point_current(settings, &version)?;
            cache_files(settings, fetcher.cache_dir())
                .iter()
                .for_each(|p| fetch::discard(p));
            return Ok(Installed {
                release_dir: release,
                version,
                activated: changed || switched,
                manifest: m,
            });
        }
    }

    progress.phase(&format!("fetching ksqlDB {version}"));
    let k = &settings.ksqldb;
    // Every cache file this install may leave: dropped once installed, and after a
    // verification failure so that the next run fetches afresh.
    let cached = cache_files(settings, fetcher.cache_dir());
    let fail_with = |e: anyhow::Error| {
        if crate::exit::exit_code_of(&e) == ExitCode::Data {
            cached.iter().for_each(|p| fetch::discard(p));
        }
        e
    };
    let key_fetch = async {
        match &k.key {
            KeySource::Url(u) => {
                let d = fetcher.fetch(u, "signing key", progress).await?;
                let bytes =
                    fs::read(&d.path).with_context(|| format!("reading {}", d.path.display()))?;
                Ok::<_, anyhow::Error>((bytes, u.clone()))
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
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let staging = releases.join(format!(
        "{STAGING_PREFIX}{version}-{}-{nanos:08x}",
        std::process::id()
    ));
    // Whatever way this function leaves, the staging directory goes with it: on success
    // it has been renamed into place by then, so there is nothing left to remove.
    let _staging_guard = StagingGuard(&staging);
    let max = settings.agent.max_release_size;

    // One pass over the archive's bytes: verify + unpack start as soon as the small
    // signature and key are in, and read the archive while it downloads (the jar comes
    // in meanwhile). Whatever fails first stops the others: a failed verify/unpack or
    // jar aborts the archive download, an abandoned download fails the follower.
    let growth = fetch::Growth::default();
    let (archive_fut, abort) = futures_util::future::abortable(fetcher.fetch_growing(
        &k.archive_url,
        "ksqlDB archive",
        progress,
        &growth,
    ));
    let streamed = async {
        let r = async {
            let (signature, (key, key_origin)) = futures_util::future::try_join(
                fetcher.fetch(&k.signature_url, "ksqlDB signature", progress),
                key_fetch,
            )
            .await?;
            let sig_bytes = fs::read(&signature.path)
                .with_context(|| format!("reading {}", signature.path.display()))?;
            let check = SignatureCheck::new(
                &key,
                &key_origin,
                sig_bytes,
                &k.signature_url,
                signer_trust.clone(),
            )?;
            fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
            progress.phase(&format!("verifying and unpacking ksqlDB {version}"));
            let (growth, staging, releases, url) = (
                growth.clone(),
                staging.clone(),
                releases.clone(),
                k.archive_url.clone(),
            );
            tokio::task::spawn_blocking(move || {
                let total = growth.wait_total();
                let r = total
                    .map_or(Ok(()), |t| {
                        fetch::check_space(&releases, (t as f64 * UNPACK_RATIO) as u64)
                    })
                    .and_then(|()| {
                        unpack::unpack_verified_from(
                            growth.follower(),
                            &url,
                            total,
                            &staging,
                            max,
                            &check,
                        )
                    });
                (check, r)
            })
            .await
            .context("the unpack task failed")
        }
        .await;
        // Stop the download unless the unpack must start over from the complete file.
        if !matches!(&r, Ok((_, Ok(_)))) && !growth.restarted_under_follower() {
            abort.abort();
        }
        r
    };
    let jar_fut = async {
        let r = fetch_jar(&fetcher, settings, &expected, progress).await;
        if r.is_err() {
            abort.abort();
        }
        r
    };
    let (archive, streamed, jar) =
        futures_util::future::join3(archive_fut, streamed, jar_fut).await;
    let outcome = (|| -> Result<_> {
        // The first cause wins: the download's own error, then the jar's, then verify/unpack.
        let archive = match archive {
            Ok(r) => Some(r?),
            Err(futures_util::future::Aborted) => None,
        };
        let jar = jar?;
        let (check, unpacked) = streamed?;
        Ok((archive, jar, check, unpacked))
    })();
    let (archive, (jar, jar_sha, jar_new), check, unpacked) = match outcome {
        Ok((Some(archive), jar, check, unpacked)) => (archive, jar, check, unpacked),
        Ok((None, _, _, _)) => unreachable!("the download is aborted only after a failure"),
        Err(e) => return Err(fail_with(e)),
    };
    failpoint::hit("install.after_download")?;
    let unpacked = if growth.restarted_under_follower() {
        // What was read may mix two versions of the file: start over from the
        // completed download, which the signature covers as a whole.
        tracing::info!("the archive download started over: unpacking the complete file again");
        remove_staging(&staging);
        let (staging, path) = (staging.clone(), archive.path.clone());
        tokio::task::spawn_blocking(move || {
            fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
            unpack::unpack_verified(&path, &staging, max, &check)
        })
        .await
        .context("the unpack task failed")
        .and_then(|r| r)
    } else {
        unpacked
    };

    let staged = match unpacked {
        Err(e) => Err(e),
        Ok(unpacked) => {
            let staging = staging.clone();
            let jar_path = jar.path.clone();
            let jar_file = jar_file_name(settings);
            let (archive_url, signature_url, jar_url, version) = (
                k.archive_url.clone(),
                k.signature_url.clone(),
                settings.iam_auth.jar_url.clone(),
                version.clone(),
            );
            let jar_sha = jar_sha.clone();
            let managed = managed.to_vec();
            tokio::task::spawn_blocking(move || -> Result<Manifest> {
                if !unpacked.top_dir.starts_with("confluent-ksqldb") {
                    tracing::warn!(
                        "the archive's top directory is {:?}, not confluent-ksqldb-<version>",
                        unpacked.top_dir
                    );
                }
                for required in [layout::SERVER_START, layout::PROPERTIES] {
                    if !staging.join(required).is_file() {
                        return Err(fail(
                            ExitCode::Data,
                            format!("{archive_url}: not a ksqlDB archive (no {required} in it)"),
                        ));
                    }
                }
                let pristine = staging.join(layout::PRISTINE_PROPERTIES);
                fs::copy(staging.join(layout::PROPERTIES), &pristine).with_context(|| {
                    format!("copying the pristine properties to {}", pristine.display())
                })?;
                install_jar(&staging, &jar_path, &jar_file)?;
                crate::properties::render::render_release(&staging, &managed, false)?;
                failpoint::hit("install.before_manifest")?;
                let manifest = Manifest {
                    version,
                    archive_url,
                    archive_sha256: unpacked.archive_sha256,
                    signature_url,
                    signer: unpacked.signer.primary,
                    signing_key: unpacked.signer.key,
                    jar_url,
                    jar_sha256: jar_sha,
                    jar_file,
                };
                manifest.save(&staging)?;
                unpack::sync_tree(&staging)?;
                Ok(manifest)
            })
            .await
            .context("the unpack task failed")
            .and_then(|r| r)
        }
    };
    let manifest = staged.map_err(fail_with)?;
    record_first_use(settings, &mut trust, &signer_trust, &manifest, jar_new)?;

    progress.phase(&format!("activating ksqlDB {version}"));
    failpoint::hit("install.before_staging_rename")?;
    place(&staging, &release)?;
    fsutil::sync_dir(&releases)?;
    failpoint::hit("install.after_staging_rename")?;
    let previous = current_version(settings);
    point_current(settings, &version)?;
    failpoint::hit("install.after_current_swap")?;
    cached.iter().for_each(|p| fetch::discard(p));
    prune_releases(settings, &version, previous.as_deref());
    Ok(Installed {
        release_dir: release,
        version,
        activated: true,
        manifest,
    })
}

/// Put the verified `staging` directory in place as `release`.
fn place(staging: &Path, release: &Path) -> Result<()> {
    if release.exists() {
        // A release dir with a stale or foreign manifest: swap, then drop the old one.
        exchange(staging, release).map(|()| {
            remove_staging(staging);
        })
    } else {
        fs::rename(staging, release)
            .with_context(|| format!("renaming {} to {}", staging.display(), release.display()))
    }
}

fn record_first_use(
    settings: &Settings,
    trust: &mut TrustStore,
    signer_trust: &SignerTrust,
    m: &Manifest,
    jar_new: bool,
) -> Result<()> {
    let new_signer = matches!(signer_trust, SignerTrust::FirstUse(None));
    if new_signer {
        trust.set_signer(&m.signer);
    }
    if jar_new {
        trust.set_jar_sha256(&settings.iam_auth.jar_url, &m.jar_sha256);
    }
    if new_signer || jar_new {
        trust.save()?;
    }
    if new_signer {
        tracing::warn!(
            "TRUST ON FIRST USE: accepted ksqlDB archive signing key {} because ksqldb.trusted_fingerprints is empty; \
             recorded in {} and a different key will be refused. Pin it in the config to make it strict: \
             [ksqldb] trusted_fingerprints = [\"{}\"]",
            m.signer,
            trust.path().display(),
            m.signer
        );
    }
    if jar_new {
        warn_tofu_jar(&m.jar_url, &m.jar_sha256);
    }
    Ok(())
}

/// The cache files of the configured release's downloads. An install drops them once
/// the release is in place; one killed before that leaves them, and a later run that
/// finds the release installed drops them then.
fn cache_files(settings: &Settings, cache: &Path) -> Vec<PathBuf> {
    let k = &settings.ksqldb;
    let jar_sha = format!("{}.sha256", settings.iam_auth.jar_url);
    let mut urls = vec![
        k.archive_url.as_str(),
        k.signature_url.as_str(),
        settings.iam_auth.jar_url.as_str(),
        jar_sha.as_str(),
    ];
    if let KeySource::Url(u) = &k.key {
        urls.push(u);
    }
    urls.into_iter()
        .map(|url| fetch::cache_path(cache, url))
        .collect()
}

/// Removes a staging directory when dropped (see `install_release`).
struct StagingGuard<'a>(&'a Path);

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        remove_staging(self.0);
    }
}

fn remove_staging(staging: &Path) {
    if let Err(e) = fs::remove_dir_all(staging) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", staging.display());
        }
    }
}
