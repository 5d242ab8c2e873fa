//! Render the live ksql-server.properties from the release's pristine copy plus the
//! managed keys (DESIGN.md phase 5). Starting from the pristine copy every time makes
//! the result a function of (release, config, discovery): an override removed from the
//! config disappears from the file, and an unchanged input rewrites nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::document::{java, Document, JavaString, MANAGED_MARKER};
use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::host::{self, Dir, Kind};
use crate::msk::discovery::Discovered;
use crate::{host::layout, msk::imds};

/// Keys someone added to the live file by hand are kept in a block of their own, so the
/// next render still tells them from the managed ones.
pub const HAND_MARKER: &str =
    "# --- added by hand, kept by ksql-msk: move into [properties] in ksql-msk.toml ---";

/// The live file is readable by the ksql group only.
pub const PROPERTIES_MODE: u32 = 0o640;

/// What [`render`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// The live properties file.
    pub path: PathBuf,
    /// Whether the file was (or, in a dry run, would be) rewritten.
    pub changed: bool,
    /// Unified diff old → new; empty when unchanged.
    pub diff: String,
    /// Keys found only in the live file (not in the release's file, not managed).
    pub hand_added: Vec<String>,
}

/// The managed keys (in order; later wins), the first of phase 5's two entry points:
/// computed once from the settings, the discovered brokers and this host's address, before
/// the install, so that a new release is rendered while it is still staging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    keys: Vec<(String, String)>,
    /// The config file, named where a message asks the operator to move a key into it.
    config_source: PathBuf,
}

impl Managed {
    pub fn keys(&self) -> &[(String, String)] {
        &self.keys
    }
}

/// The managed keys for these settings and brokers, asking IMDS as the environment
/// configures it for this host's address when the listeners bind a wildcard.
pub async fn managed(settings: &Settings, discovered: &Discovered) -> Result<Managed> {
    let endpoint = imds::endpoint();
    managed_with_imds(settings, discovered, endpoint.as_deref()).await
}

/// [`managed`] with the IMDS endpoint given (`None`: IMDS disabled), for tests.
pub async fn managed_with_imds(
    settings: &Settings,
    discovered: &Discovered,
    imds_endpoint: Option<&str>,
) -> Result<Managed> {
    check_role_arn(settings)?;
    let inter_node = super::managed::inter_node_listeners(settings);
    let host = match super::managed::wildcard_listener(inter_node) {
        Some(_) => {
            let ip = imds::local_ipv4(imds_endpoint).await;
            if ip.is_none() {
                warn!(
                    "ksql.advertised.listener left out: other ksqlDB servers cannot reach this one \
                     for pull queries (set it in [properties] if they need to)"
                );
            }
            ip.map(|ip| ip.to_string())
        }
        None => None,
    };
    let plan = crate::ksqldb::java::settings_memory_plan(settings);
    let rocksdb = crate::ksqldb::java::host_rocksdb(settings, plan.as_ref())?;
    Ok(Managed {
        keys: super::managed::managed_properties(settings, discovered, host.as_deref(), &rocksdb),
        config_source: settings.source.clone(),
    })
}

/// The JAAS value quotes the role ARN; refuse anything IAM would not allow in one.
fn check_role_arn(settings: &Settings) -> Result<()> {
    if let Some(arn) = &settings.iam_auth.role_arn {
        let ok = arn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/:".contains(&b));
        if !ok {
            return Err(fail(
                ExitCode::Config,
                format!("iam_auth.role_arn: {arn:?} has characters an IAM role ARN cannot have"),
            ));
        }
    }
    Ok(())
}

/// The directory of the release's properties files, opened without following a
/// symlink below the release (`etc -> /etc` planted by the ksql user is refused, 65).
fn etc_dir(release_dir: &Path) -> Result<Dir> {
    Dir::open_beneath(release_dir, host::parent_dir(Path::new(layout::PROPERTIES)))
}

/// Read `path` (a file in `etc`) without following a symlink. A symlink, special file
/// or hard link planted at a file this module replaces (`replaceable`) reads as missing,
/// so that the write replaces it without its target ever being read into the rendered
/// file; anywhere else a symlink or special file is refused (65).
pub(crate) fn read_optional(etc: &Dir, path: &Path, replaceable: bool) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let name = file_name(path)?;
    if !replaceable {
        return etc.read(name);
    }
    let planted = |what: &str| {
        warn!(
            "{}: {what} where ksql-msk's file should be: replacing it, unread",
            path.display()
        );
        Ok(None)
    };
    match etc.kind(name)? {
        None => return Ok(None),
        Some(Kind::File) => {}
        Some(_) => return planted("a symlink or special file"),
    }
    let Some(mut file) = etc.open_file(name)? else {
        return Ok(None);
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if meta.nlink() > 1 {
        return planted("a hard link to another file");
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(bytes))
}

/// An unchanged live file gets [`PROPERTIES_MODE`] back all the same: it may hold
/// secrets, and a file made world-readable (by hand, an old version) must not stay so
/// until its content changes. Through the descriptor, never following a link.
fn keep_mode(etc: &Dir, path: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(file) = etc.open_file(file_name(path)?)? else {
        return Ok(());
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    // A hard link swapped in since it was read is another file's: not ours to chmod.
    if meta.nlink() == 1 && meta.mode() & 0o7777 != PROPERTIES_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(PROPERTIES_MODE))
            .with_context(|| format!("setting mode {PROPERTIES_MODE:o} on {}", path.display()))?;
        info!(
            "{}: mode {:o} set back to {PROPERTIES_MODE:o}",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Document> {
    Document::parse(bytes).map_err(|e| {
        fail(
            ExitCode::Data,
            format!(
                "{}: {e} (java.util.Properties would refuse this file)",
                path.display()
            ),
        )
    })
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name()
        .with_context(|| format!("{} has no file name", path.display()))
}

fn lossy(s: &[u16]) -> String {
    String::from_utf16_lossy(s)
}

/// The pristine copy, created from the live file if the unpacker did not leave one.
fn pristine(release_dir: &Path, etc: &Dir, live: Option<&[u8]>, dry_run: bool) -> Result<Vec<u8>> {
    let path = release_dir.join(layout::PRISTINE_PROPERTIES);
    if let Some(bytes) = read_optional(etc, &path, false)? {
        return Ok(bytes);
    }
    let live_path = release_dir.join(layout::PROPERTIES);
    let Some(live) = live else {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: missing, and so is {}: the release is incomplete",
                live_path.display(),
                path.display()
            ),
        ));
    };
    // If ksql-msk rendered the live file before, its managed block is not upstream's.
    let doc = parse(&live_path, live)?;
    let bytes = match doc.truncate_at(MANAGED_MARKER) {
        Some(cut) => {
            warn!(
                "{} was missing and {} was rendered before: rebuilt it without the managed block",
                path.display(),
                live_path.display()
            );
            cut
        }
        None => live.to_vec(),
    };
    if !dry_run {
        etc.write_atomic(file_name(&path)?, &bytes, 0o644)?;
        info!("{}: saved the release's original file", path.display());
    }
    Ok(bytes)
}

/// Phase 5's second entry point: render `<release_dir>/etc/ksqldb/ksql-server.properties`
/// from the release's pristine file plus the managed keys. Keys in the live file that
/// are neither upstream's nor managed are kept and reported in `hand_added`. `dry_run`:
/// compute the diff, write nothing; otherwise exactly the same steps.
pub fn render(release_dir: &Path, managed: &Managed, dry_run: bool) -> Result<Configured> {
    let configured = render_keys(release_dir, managed.keys(), dry_run)?;
    if !configured.hand_added.is_empty() {
        warn!(
            "{}: keys added by hand: {}; kept for now, but lost when another ksqlDB release \
             is installed: move them into [properties] in {}",
            configured.path.display(),
            configured.hand_added.join(", "),
            managed.config_source.display()
        );
    }
    Ok(configured)
}

fn render_keys(
    release_dir: &Path,
    managed: &[(String, String)],
    dry_run: bool,
) -> Result<Configured> {
    let path = release_dir.join(layout::PROPERTIES);
    let etc = etc_dir(release_dir)?;
    let live = read_optional(&etc, &path, true)?;
    let pristine_bytes = pristine(release_dir, &etc, live.as_deref(), dry_run)?;
    let pristine_path = release_dir.join(layout::PRISTINE_PROPERTIES);
    let mut doc = parse(&pristine_path, &pristine_bytes)?;
    let keys_path = release_dir.join(layout::MANAGED_KEYS);
    let hand_added = match &live {
        Some(live_bytes) => hand_added_keys(&etc, &path, live_bytes, &keys_path, &doc, managed)?,
        None => Vec::new(),
    };
    for (k, v) in &hand_added {
        doc.set_in_block(super::render::HAND_MARKER, k, v);
    }
    for (k, v) in managed {
        doc.set(k, v);
    }
    let rendered = doc.render_checked().map_err(|e| {
        fail(
            ExitCode::Software,
            format!("rendering {}: {e}", path.display()),
        )
    })?;

    let changed = live.as_deref() != Some(rendered.as_slice());
    let diff = if changed {
        redacted_diff(live.as_deref().unwrap_or_default(), &rendered)
    } else {
        String::new()
    };
    if changed && !dry_run {
        crate::host::failpoint::hit("properties.before_write")?;
        etc.write_atomic_at(
            file_name(&path)?,
            &rendered,
            PROPERTIES_MODE,
            "properties.mid_write",
        )?;
        crate::host::failpoint::hit("properties.after_write")?;
        info!("{}: written", path.display());
    } else if !changed {
        info!("{}: up to date", path.display());
        if !dry_run {
            keep_mode(&etc, &path)?;
        }
    }
    if !dry_run {
        write_managed_keys(&etc, &keys_path, managed)?;
    }
    Ok(Configured {
        path,
        changed,
        diff,
        hand_added: hand_added.iter().map(|(k, _)| lossy(k)).collect(),
    })
}

/// Keys in the live file (`live`, at `path`) that neither upstream's file (`pristine`)
/// nor we wrote: added by hand, kept in their own block.
fn hand_added_keys(
    etc: &Dir,
    path: &Path,
    live: &[u8],
    keys_path: &Path,
    pristine: &Document,
    managed: &[(String, String)],
) -> Result<Vec<(JavaString, JavaString)>> {
    let live_doc = match Document::parse(live) {
        Ok(doc) => doc,
        // It is about to be replaced; only the hand-added keys cannot be saved.
        Err(e) => {
            warn!(
                "{}: {e}; replacing it without looking for keys added by hand",
                path.display()
            );
            return Ok(Vec::new());
        }
    };
    let upstream = pristine.java_map();
    let managed_keys: Vec<JavaString> = managed.iter().map(|(k, _)| java(k)).collect();
    // Keys we wrote last time: an override since removed from the config is ours to
    // drop, not a hand edit. Without the record (older renders), every key in our
    // block counts as ours.
    let written_before: Vec<JavaString> = match read_optional(etc, keys_path, true)? {
        Some(list) => String::from_utf8_lossy(&list)
            .lines()
            .filter(|l| !l.is_empty())
            .map(java)
            .collect(),
        None => {
            let before: Vec<JavaString> = live_doc
                .java_map_before(MANAGED_MARKER)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            live_doc
                .java_map()
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| !before.contains(k))
                .collect()
        }
    };
    // Anywhere in the file, also after our block (`echo k=v >> file`). A changed value
    // of an upstream key is not reported: it may be an override since removed from the
    // config, rewritten in place.
    Ok(live_doc
        .java_map()
        .into_iter()
        .filter(|(k, _)| {
            let upstream_key = upstream.iter().any(|(uk, _)| uk == k);
            !upstream_key && !managed_keys.contains(k) && !written_before.contains(k)
        })
        .collect())
}

/// The unified diff from `old` to `new`, secrets redacted: it is printed and logged,
/// the file itself keeps them.
fn redacted_diff(old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{}", layout::PROPERTIES),
            &format!("b/{}", layout::PROPERTIES),
        )
        .to_string();
    super::redact::redact_diff(&diff, &old, &new)
}

/// The list of managed keys beside the live file, rewritten only when it changes.
fn write_managed_keys(etc: &Dir, keys_path: &Path, managed: &[(String, String)]) -> Result<()> {
    let mut list: Vec<String> = managed.iter().map(|(k, _)| k.clone()).collect();
    list.sort();
    list.dedup();
    let text = list.join("\n") + "\n";
    if read_optional(etc, keys_path, true)?.as_deref() != Some(text.as_bytes()) {
        etc.write_atomic(file_name(keys_path)?, text.as_bytes(), PROPERTIES_MODE)?;
    }
    Ok(())
}
