//! The aws-msk-iam-auth jar: fetched, checked against its pin (or, on first use, the
//! hash published beside it) and copied into the release's classpath directory.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{ConfigUrl, Settings, Sha256Digest};
use crate::exit::{fail, ExitCode};
use crate::host;
use crate::host::layout;
use crate::progress::Progress;
use crate::release::fetch::{Download, Fetcher};
use crate::release::manifest::{Manifest, Tree};
use crate::release::verify::{self, ExpectedHash, TrustStore};

const JAR_PREFIX: &str = "aws-msk-iam-auth-";

/// A fetched jar whose hash checked out.
#[derive(Debug)]
pub struct CheckedJar {
    pub download: Download,
    pub sha256: Sha256Digest,
    /// Accepted on first use of the published hash: trust.toml must record it.
    pub first_use: bool,
}

/// Where the jar's published hash lives (aws-msk-iam-auth releases publish `<jar>.sha256`).
pub fn published_hash_url(settings: &Settings) -> ConfigUrl {
    settings.iam_auth.jar_url.with_suffix(".sha256")
}

/// The jar's file name in `share/java/ksqldb/`: the URL's, when it is a plain `.jar`.
pub fn file_name(settings: &Settings) -> String {
    let url = settings.iam_auth.jar_url.redacted();
    let base = url.split(['?', '#']).next().unwrap_or(&url);
    match base.rsplit('/').next() {
        Some(n) if n.ends_with(".jar") && !n.contains("..") => n.to_string(),
        _ => format!("{JAR_PREFIX}{}-all.jar", settings.iam_auth.version),
    }
}

/// A jar pinned by SHA-256 (the IAM auth jar, the exporter's): where it comes from and
/// what it must hash to.
pub struct PinnedJar<'a> {
    pub url: &'a ConfigUrl,
    /// What progress lines and errors call it.
    pub what: &'a str,
    /// The config key that pins it, named when no hash is published.
    pub pin_key: &'a str,
    /// `None`: trust on first use of the hash published in `<url>.sha256`.
    pub expected: Option<ExpectedHash>,
}

/// Fetch the IAM auth jar (and, with nothing expected, its published hash) and check it.
pub async fn fetch(
    fetcher: &Fetcher,
    settings: &Settings,
    trust: &TrustStore,
    progress: &dyn Progress,
) -> Result<CheckedJar> {
    let url = &settings.iam_auth.jar_url;
    let jar = PinnedJar {
        url,
        what: "aws-msk-iam-auth jar",
        pin_key: "iam_auth.sha256",
        expected: trust.expected_jar(settings.iam_auth.sha256.as_ref(), url),
    };
    fetch_pinned(fetcher, &jar, progress).await
}

/// Fetch a pinned jar (and, with nothing expected, its published hash) and check it. A
/// jar that fails the check is dropped from the cache.
pub async fn fetch_pinned(
    fetcher: &Fetcher,
    jar: &PinnedJar<'_>,
    progress: &dyn Progress,
) -> Result<CheckedJar> {
    let url = jar.url;
    let (download, expected, first_use) = match &jar.expected {
        Some(expected) => {
            let download = fetcher.fetch(url, jar.what, progress).await?;
            (download, expected.clone(), false)
        }
        None => {
            let sha_url = url.with_suffix(".sha256");
            let hash_name = format!("{} hash", jar.what);
            let (download, published) = futures_util::future::try_join(
                fetcher.fetch(url, jar.what, progress),
                fetcher.fetch(&sha_url, &hash_name, progress),
            )
            .await?;
            let text = fs::read_to_string(&published.path).unwrap_or_default();
            fetcher.forget(std::slice::from_ref(&sha_url));
            let Some(sha256) = verify::parse_sha256_file(&text) else {
                fetcher.forget(std::slice::from_ref(url));
                return Err(fail(
                    ExitCode::Data,
                    format!(
                        "{sha_url} does not hold a SHA-256 hash; set {} to the jar's hash",
                        jar.pin_key
                    ),
                ));
            };
            let expected = ExpectedHash {
                sha256,
                origin: format!("published in {sha_url}"),
            };
            (download, expected, true)
        }
    };
    let path = download.path.clone();
    let actual = tokio::task::spawn_blocking(move || verify::sha256_file(&path))
        .await
        .context("hashing the jar")??;
    if let Err(e) = verify::check_jar(
        &download.path,
        url,
        &actual,
        &expected.sha256,
        &expected.origin,
    ) {
        fetcher.forget(std::slice::from_ref(url));
        return Err(e);
    }
    Ok(CheckedJar {
        download,
        sha256: actual,
        first_use,
    })
}

/// Copy the jar (checked, SHA-256 `sha`) into `release/share/java/ksqldb/` atomically
/// and remove older aws-msk-iam-auth jars there (two versions on one classpath is a
/// lottery); `tree` records the change.
pub fn install(
    release: &Path,
    jar: &Path,
    file_name: &str,
    sha: &Sha256Digest,
    tree: &mut Tree,
) -> Result<()> {
    // Through handles that refuse a symlink below the release (`share -> /usr/share`).
    let rel = Path::new(layout::JAR_DIR);
    let dir = host::Dir::create_beneath(release, rel, 0o755)?;
    dir.copy_atomic(file_name, jar, 0o644)?;
    // Size and mode as they are on disk; the content is the checked jar's.
    let copied = dir
        .open_file(file_name)?
        .with_context(|| format!("{} vanished", dir.path().join(file_name).display()))?
        .metadata()
        .with_context(|| format!("inspecting {}", dir.path().join(file_name).display()))?;
    let mode = copied.mode() & 0o7777;
    tree.record_file(&rel.join(file_name), copied.len(), mode, sha.0);
    for entry in dir.entries()? {
        let name = entry.to_string_lossy().into_owned();
        if name.starts_with(JAR_PREFIX) && name.ends_with(".jar") && name != file_name {
            tracing::info!("removing older {name} from {}", dir.path().display());
            dir.remove_file(&entry)?;
            tree.remove(&rel.join(&entry));
        }
    }
    dir.sync()
}

/// [`crate::service::pipeline::Plan::JarOnly`]: put the checked jar into an installed release
/// and record it in its manifest.
pub fn replace(
    settings: &Settings,
    trust: &mut TrustStore,
    release: &Path,
    mut manifest: Manifest,
    jar: CheckedJar,
) -> Result<Manifest> {
    let file = file_name(settings);
    let mut tree = Tree::load(release, &manifest.tree_sha256)?;
    install(release, &jar.download.path, &file, &jar.sha256, &mut tree)?;
    manifest.jar_url = settings.iam_auth.jar_url.redacted();
    manifest.jar_sha256 = jar.sha256.to_hex();
    manifest.jar_file = file;
    manifest.save_with_tree(release, &tree)?;
    if jar.first_use {
        trust.record_first_use(None, Some((&manifest.jar_url, &manifest.jar_sha256)))?;
    }
    Ok(manifest)
}
