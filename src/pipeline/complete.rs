//! Complete a staged release: keep the pristine properties file, copy in the IAM jar,
//! render the live properties, write the manifest, make it all durable. After this the
//! staging directory is a release in all but name.

use std::fs;

use anyhow::{Context, Result};

use super::jar;
use super::stage::Staged;
use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::failpoint;
use crate::layout;
use crate::manifest::Manifest;
use crate::properties::{self, Managed};
use crate::unpack;

/// `managed`: the managed properties; a new release is rendered while it is still
/// staging, so `current` never points at a release with an unrendered properties file.
pub async fn complete(staged: &Staged, settings: &Settings, managed: &Managed) -> Result<Manifest> {
    let k = &settings.ksqldb;
    let staging = staged.dir.path().to_path_buf();
    let jar_path = staged.jar.download.path.clone();
    let jar_file = jar::file_name(settings);
    let manifest = Manifest {
        version: k.version.clone(),
        archive_url: k.archive_url.clone(),
        archive_sha256: staged.unpacked.archive_sha256.clone(),
        signature_url: k.signature_url.clone(),
        signer: staged.unpacked.signer.primary.clone(),
        signing_key: staged.unpacked.signer.key.clone(),
        jar_url: settings.iam_auth.jar_url.clone(),
        jar_sha256: staged.jar.sha256.clone(),
        jar_file,
    };
    let top_dir = staged.unpacked.top_dir.clone();
    let managed = managed.clone();
    tokio::task::spawn_blocking(move || -> Result<Manifest> {
        if !top_dir.starts_with("confluent-ksqldb") {
            tracing::warn!(
                "the archive's top directory is {top_dir:?}, not confluent-ksqldb-<version>"
            );
        }
        for required in [layout::SERVER_START, layout::PROPERTIES] {
            if !staging.join(required).is_file() {
                return Err(fail(
                    ExitCode::Data,
                    format!(
                        "{}: not a ksqlDB archive (no {required} in it)",
                        manifest.archive_url
                    ),
                ));
            }
        }
        let pristine = staging.join(layout::PRISTINE_PROPERTIES);
        fs::copy(staging.join(layout::PROPERTIES), &pristine).with_context(|| {
            format!("copying the pristine properties to {}", pristine.display())
        })?;
        jar::install(&staging, &jar_path, &manifest.jar_file)?;
        properties::render(&staging, &managed, false)?;
        failpoint::hit("install.before_manifest")?;
        manifest.save(&staging)?;
        unpack::sync_tree(&staging)?;
        Ok(manifest)
    })
    .await
    .context("the unpack task failed")?
}
