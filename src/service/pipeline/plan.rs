//! What phases 3–4 must do for the configured release: one decision that both the real
//! install and `install --dry-run` act on.

use std::path::{Path, PathBuf};

use crate::config::{KeySource, Settings};
use crate::host::layout;
use crate::release::integrity::{self, Depth};
use crate::release::manifest::Manifest;
use crate::release::verify::{Signer, TrustStore};

/// The plan for the configured release.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Installed from the same inputs by a trusted signer, with the expected jar.
    Installed {
        release: PathBuf,
        manifest: Manifest,
    },
    /// Installed, but the IAM auth jar must be fetched again (another URL or pin).
    JarOnly {
        release: PathBuf,
        manifest: Manifest,
    },
    /// Nothing usable is installed: fetch, verify, unpack.
    Fresh { release: PathBuf },
}

impl Plan {
    /// Decide from the manifest of `releases/<version>` (no network) and a quick check
    /// of the release against the tree it binds: a release that fails it is logged and
    /// installed again, never started as it is.
    pub fn make(settings: &Settings, trust: &TrustStore) -> Plan {
        let release = settings.releases_dir().join(&settings.ksqldb.version);
        match Manifest::load(&release) {
            Some(manifest)
                if archive_matches(&manifest, settings, trust)
                    && quick_check(&release, &manifest) =>
            {
                if jar_matches(&manifest, settings, trust, &release) {
                    Plan::Installed { release, manifest }
                } else {
                    Plan::JarOnly { release, manifest }
                }
            }
            _ => Plan::Fresh { release },
        }
    }

    /// The release whose properties can be rendered now, if one is installed.
    pub fn installed_release(&self) -> Option<&Path> {
        match self {
            Plan::Installed { release, .. } | Plan::JarOnly { release, .. } => Some(release),
            Plan::Fresh { .. } => None,
        }
    }

    /// What acting on the plan would do, one line each (for `--dry-run`).
    pub fn describe(&self, settings: &Settings, trust: &TrustStore) -> Vec<String> {
        let jar_url = &settings.iam_auth.jar_url;
        let mut lines = Vec::new();
        match self {
            Plan::Installed { release, manifest } | Plan::JarOnly { release, manifest } => {
                lines.push(format!(
                    "ksqlDB {} is installed in {}",
                    manifest.version,
                    release.display()
                ));
                if matches!(self, Plan::JarOnly { .. }) {
                    lines.push(format!("would download {jar_url}"));
                }
            }
            Plan::Fresh { release } => {
                let k = &settings.ksqldb;
                lines.push(format!("would download {}", k.archive_url));
                lines.push(format!("would download {}", k.signature_url));
                if let KeySource::Url(u) = &k.key {
                    lines.push(format!("would download {u}"));
                }
                lines.push(format!("would download {jar_url}"));
                lines.push(format!("would install into {}", release.display()));
            }
        }
        if trust
            .expected_jar(settings.iam_auth.sha256.as_ref(), jar_url)
            .is_none()
        {
            lines.push(format!(
                "would download {} (trust on first use)",
                super::jar::published_hash_url(settings)
            ));
        }
        lines
    }
}

/// Does the release still hold what install verified? (The warm start's check.)
fn quick_check(release: &Path, manifest: &Manifest) -> bool {
    let started = std::time::Instant::now();
    match integrity::check(release, manifest, Depth::Quick) {
        Ok(c) => {
            tracing::debug!(
                "{}: {} files as recorded, {} hashed ({:.1} MB) in {:.1} ms",
                release.display(),
                c.files,
                c.hashed,
                c.bytes_hashed as f64 / 1e6,
                started.elapsed().as_secs_f64() * 1e3
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                "ksqlDB {} is not started as it is, it is installed again: {}",
                manifest.version,
                crate::exit::one_line(&e)
            );
            false
        }
    }
}

/// Does the installed release come from the configured inputs and a trusted signer?
fn archive_matches(m: &Manifest, settings: &Settings, trust: &TrustStore) -> bool {
    m.version == settings.ksqldb.version
        // The manifest holds redacted URLs: a changed password alone is the same input.
        && m.archive_url == settings.ksqldb.archive_url.redacted()
        && m.signature_url == settings.ksqldb.signature_url.redacted()
        && trust
            .signer_trust(&settings.ksqldb.trusted_fingerprints)
            .accepts(&Signer {
                primary: m.signer.clone(),
                key: m.signing_key.clone(),
            })
}

/// Is the jar in the release the configured one, with the expected hash?
fn jar_matches(m: &Manifest, settings: &Settings, trust: &TrustStore, release: &Path) -> bool {
    let url = &settings.iam_auth.jar_url;
    m.jar_url == url.redacted()
        && trust
            .expected_jar(settings.iam_auth.sha256.as_ref(), url)
            .is_none_or(|e| e.sha256.to_hex() == m.jar_sha256)
        && release.join(layout::JAR_DIR).join(&m.jar_file).is_file()
}
