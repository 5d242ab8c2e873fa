//! Complete a staged release: keep the pristine properties file, copy in the IAM jar,
//! render the live properties, write the manifest, make it all durable. After this the
//! staging directory is a release in all but name.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::jar;
use super::stage::Staged;
use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::host;
use crate::host::failpoint;
use crate::host::layout;
use crate::ksqldb::log4j::{self, Levels};
use crate::ksqldb::properties::{self, Managed};
use crate::release::integrity::{self, Depth};
use crate::release::manifest::Manifest;
use crate::release::unpack;

/// `managed`: the managed properties; a new release is rendered while it is still
/// staging (properties and log4j file), so `current` never points at a release with an
/// unrendered properties file.
pub async fn complete(staged: &Staged, settings: &Settings, managed: &Managed) -> Result<Manifest> {
    let k = &settings.ksqldb;
    let staging = staged.dir.path().to_path_buf();
    let jar_path = staged.jar.download.path.clone();
    let jar_file = jar::file_name(settings);
    let mut manifest = Manifest {
        version: k.version.clone(),
        // Redacted: the manifest must not hold a password (plan.rs compares likewise).
        archive_url: k.archive_url.redacted(),
        archive_sha256: staged.unpacked.archive_sha256.clone(),
        signature_url: k.signature_url.redacted(),
        signer: staged.unpacked.signer.primary.clone(),
        signing_key: staged.unpacked.signer.key.clone(),
        jar_url: settings.iam_auth.jar_url.redacted(),
        jar_sha256: staged.jar.sha256.to_hex(),
        jar_file,
        tree_sha256: String::new(),
    };
    let top_dir = staged.unpacked.top_dir.clone();
    let mut tree = staged.unpacked.tree.clone();
    let jar_sha = staged.jar.sha256;
    let managed = managed.clone();
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || -> Result<Manifest> {
        check_layout(&staging, &top_dir, &manifest)?;
        // Read without following a link and written by rename: a `.dist` link or a hard
        // link that came out of the archive cannot aim this write at another file.
        let upstream = read_nofollow(&staging.join(layout::PROPERTIES))?;
        host::write_atomic(&staging.join(layout::PRISTINE_PROPERTIES), &upstream, 0o644)?;
        integrity::record_written(&mut tree, &staging, layout::PRISTINE_PROPERTIES)?;
        jar::install(&staging, &jar_path, &manifest.jar_file, &jar_sha, &mut tree)?;
        properties::render(&staging, &managed, false)?;
        // Likewise the generated log4j file (not recorded, like the live properties): a
        // crash after the switch must not leave `current` without it.
        log4j::render(&staging, &Levels::of(&settings), &manifest.version, false)?;
        integrity::unrecord(&mut tree);
        failpoint::hit("install.before_manifest")?;
        manifest.save_with_tree(&staging, &tree)?;
        // The copies and the render came after the unpack: a link out of the archive can
        // aim one of them at another file. Only a release as recorded goes live.
        integrity::check(&staging, &manifest, Depth::Quick)?;
        // Under a state directory root adopted, the release is its owner's.
        host::Dir::open(&staging)?.hand_over_tree()?;
        unpack::sync_tree(&staging)?;
        Ok(manifest)
    })
    .await
    .context("the unpack task failed")?
}

/// The directories the agent writes into, from the top of the release down.
const WRITTEN_DIRS: &[&str] = &[
    "bin",
    "etc",
    "etc/ksqldb",
    "share",
    "share/java",
    layout::JAR_DIR,
];

/// The archive must be the release it claims to be, shaped as ksqlDB's: one top
/// directory `confluent-ksqldb-<version>`, and real directories and files (not links)
/// where the agent starts ksqlDB and writes its own files, so that no link of the
/// archive's can aim those writes elsewhere.
fn check_layout(staging: &Path, top_dir: &str, manifest: &Manifest) -> Result<()> {
    let url = &manifest.archive_url;
    let expected = format!("confluent-ksqldb-{}", manifest.version);
    if top_dir != expected {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{url}: the archive's top directory is {top_dir:?}, not {expected:?}; refusing it"
            ),
        ));
    }
    for dir in WRITTEN_DIRS {
        match fs::symlink_metadata(staging.join(dir)) {
            Ok(m) if m.is_dir() => {}
            // ksqlDB's archive has them all; a missing jar directory is made later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && *dir == layout::JAR_DIR => {}
            Ok(_) => {
                return Err(fail(
                    ExitCode::Data,
                    format!(
                        "{url}: {dir} in the archive is not a directory (a link?); refusing it"
                    ),
                ))
            }
            Err(_) => {
                return Err(fail(
                    ExitCode::Data,
                    format!("{url}: not a ksqlDB archive (no {dir}/ in it)"),
                ))
            }
        }
    }
    for required in [layout::SERVER_START, layout::PROPERTIES] {
        match fs::symlink_metadata(staging.join(required)) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(fail(
                    ExitCode::Data,
                    format!(
                    "{url}: {required} in the archive is not a regular file (a link?); refusing it"
                ),
                ))
            }
            Err(_) => {
                return Err(fail(
                    ExitCode::Data,
                    format!("{url}: not a ksqlDB archive (no {required} in it)"),
                ))
            }
        }
    }
    Ok(())
}

/// Read a file, refusing to follow a symlink in its last component.
fn read_nofollow(path: &Path) -> Result<Vec<u8>> {
    host::read_state(path, host::StateFile::Properties)?
        .ok_or_else(|| fail(ExitCode::Data, format!("{}: missing", path.display())))
}
