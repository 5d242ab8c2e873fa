//! Does a release directory still hold what install verified? The manifest binds the
//! tree unpack wrote ([`Tree`]); [`check`] compares the directory with it before the
//! release is started again (a warm start) or on request (`ksql-msk verify`).
//!
//! The `ksql` user, and so a compromised ksqlDB, can write under the state directory:
//! an edited start script or a release swapped for a symlink to a copy must never be
//! started as "already installed and verified". A warm start cannot re-hash 200 MB and
//! stay fast, so it hashes what runs or is read first and checks the shape of the rest.
//!
//! The Prometheus exporter's jar is not part of a release (it must stay off the
//! classpath these scripts build): [`crate::ksqldb::exporter`] checks it, at every start and for
//! `ksql-msk verify`, which reports the two results on separate lines.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::host::layout;
use crate::host::lock;
use crate::release::manifest::{Kind, Manifest, Tree};

/// Files the agent rewrites on every run (phase 5): neither recorded nor checked.
pub const UNRECORDED: [&str; 3] = [
    layout::PROPERTIES,
    layout::MANAGED_KEYS,
    layout::LOG4J_GENERATED,
];

/// How much a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// A warm start: every entry's type, mode and size (links: their target), nothing
    /// unrecorded in the release, and the SHA-256 of the files under `bin/` (what runs
    /// first) and `etc/` (what the scripts and the render read; small) and of the IAM jar.
    Quick,
    /// `ksql-msk verify`: all of Quick, and the SHA-256 of every file.
    Full,
}

/// What a passed check looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Regular files found as recorded.
    pub files: usize,
    /// Of them, the ones whose content was hashed.
    pub hashed: usize,
    pub bytes_hashed: u64,
}

/// Forget in `tree` what [`UNRECORDED`] names, before the manifest binds it.
pub fn unrecord(tree: &mut Tree) {
    for p in UNRECORDED {
        tree.remove(Path::new(p));
    }
}

/// Record in `tree` the file `rel` the agent just wrote into `release_dir` (the pristine
/// properties copy: small, so it is hashed from disk rather than trusted to equal its
/// source, which may have been a link).
pub fn record_written(tree: &mut Tree, release_dir: &Path, rel: &str) -> Result<()> {
    let path = release_dir.join(rel);
    let meta =
        fs::symlink_metadata(&path).with_context(|| format!("inspecting {}", path.display()))?;
    let sha = hash(&path, &mut vec![0u8; 64 << 10])?;
    tree.record_file(Path::new(rel), meta.len(), meta.mode() & 0o7777, sha);
    Ok(())
}

/// Check `release_dir` against the tree `manifest` binds. The first difference is an
/// error (65) naming the path and what differs; nothing is followed through a link.
pub fn check(release_dir: &Path, manifest: &Manifest, depth: Depth) -> Result<Checked> {
    let differs = |rel: &Path, what: String| {
        fail(
            ExitCode::Data,
            format!(
                "{}: {}: {what}; it is not what install verified",
                release_dir.display(),
                rel.display()
            ),
        )
    };
    real_dir(release_dir)?;
    let tree = Tree::load(release_dir, &manifest.tree_sha256)?;
    let jar = Path::new(layout::JAR_DIR).join(&manifest.jar_file);
    match tree.get(&jar).map(|e| &e.kind) {
        Some(Kind::File { sha256, .. }) if hex::encode(sha256) == manifest.jar_sha256 => {}
        _ => {
            return Err(differs(
                &jar,
                format!(
                    "the tree does not record the manifest's jar with SHA-256 {}",
                    manifest.jar_sha256
                ),
            ))
        }
    }
    unexpected(release_dir, Path::new(""), &tree).map_err(|(p, w)| differs(&p, w))?;
    let mut done = Checked {
        files: 0,
        hashed: 0,
        bytes_hashed: 0,
    };
    let mut buf = vec![0u8; 1 << 20];
    for (rel, want) in tree.iter() {
        let path = release_dir.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(differs(rel, "missing".into()))
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
        };
        let found = Found {
            path: &path,
            meta: &meta,
            mode: meta.mode() & 0o7777,
            differs: &|what| differs(rel, what),
        };
        match &want.kind {
            Kind::File { size, sha256 } => {
                let hash_it = depth == Depth::Full || quick_hashed(rel) || rel == jar;
                found.is_file(want.mode, *size, sha256, hash_it.then_some(&mut buf[..]))?;
                if hash_it {
                    done.hashed += 1;
                    done.bytes_hashed += size;
                }
                done.files += 1;
            }
            Kind::Dir => {
                found.is_dir(want.mode)?;
                unexpected(release_dir, rel, &tree).map_err(|(p, w)| differs(&p, w))?;
            }
            Kind::Symlink { target } => found.is_symlink(target)?,
        }
    }
    Ok(done)
}

/// One entry of a release directory, to compare with what its tree records. A
/// difference is `differs(what)`.
struct Found<'a> {
    path: &'a Path,
    meta: &'a fs::Metadata,
    mode: u32,
    differs: &'a dyn Fn(String) -> anyhow::Error,
}

impl Found<'_> {
    /// A regular file of `size` bytes and `mode`; with `buf`, also its SHA-256.
    fn is_file(
        &self,
        mode: u32,
        size: u64,
        sha256: &[u8; 32],
        buf: Option<&mut [u8]>,
    ) -> Result<()> {
        let ft = self.meta.file_type();
        if !ft.is_file() {
            return Err((self.differs)(format!("{}, recorded a file", kind_of(&ft))));
        }
        if self.meta.len() != size {
            return Err((self.differs)(format!(
                "{} bytes, recorded {size}",
                self.meta.len()
            )));
        }
        self.has_mode(mode)?;
        if let Some(buf) = buf {
            let actual = hash(self.path, buf)?;
            if actual != *sha256 {
                return Err((self.differs)(format!(
                    "content changed (SHA-256 {}, recorded {})",
                    hex::encode(actual),
                    hex::encode(sha256)
                )));
            }
        }
        Ok(())
    }

    fn is_dir(&self, mode: u32) -> Result<()> {
        let ft = self.meta.file_type();
        if !ft.is_dir() {
            return Err((self.differs)(format!(
                "{}, recorded a directory",
                kind_of(&ft)
            )));
        }
        self.has_mode(mode)
    }

    fn has_mode(&self, mode: u32) -> Result<()> {
        if self.mode != mode {
            return Err((self.differs)(format!(
                "mode {:o}, recorded {mode:o}",
                self.mode
            )));
        }
        Ok(())
    }

    /// A symlink to `target`, never followed.
    fn is_symlink(&self, target: &[u8]) -> Result<()> {
        let ft = self.meta.file_type();
        if !ft.is_symlink() {
            return Err((self.differs)(format!(
                "{}, recorded a symlink",
                kind_of(&ft)
            )));
        }
        let actual = fs::read_link(self.path)
            .with_context(|| format!("reading the link {}", self.path.display()))?;
        if actual.as_os_str().as_bytes() != target {
            return Err((self.differs)(format!(
                "links to {}, recorded {}",
                actual.display(),
                String::from_utf8_lossy(target)
            )));
        }
        Ok(())
    }
}

/// The release `current` points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub version: String,
    /// `<state_dir>/releases/<version>`, a real directory (not reached through a link).
    pub dir: PathBuf,
}

/// The active release: what `<state_dir>/current` names, if it names `releases/<v>`
/// (relative, one level, as the agent writes it) and that is a real directory. `None`
/// when there is no `current` (nothing installed yet); 65 for anything else in its
/// place. A `current` this user may not read is an I/O error (`PermissionDenied` in
/// the chain), for the caller to explain.
pub fn active(settings: &Settings) -> Result<Option<Active>> {
    let link = settings.current_link();
    let target = match fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(e).with_context(|| format!("reading the link {}", link.display()))
        }
        Err(e) => {
            return Err(fail(
                ExitCode::Data,
                format!(
                    "{}: not the agent's link to a release ({e})",
                    link.display()
                ),
            ))
        }
    };
    let version = match (target.parent(), target.file_name()) {
        (Some(p), Some(v)) if p == Path::new("releases") => v.to_string_lossy().into_owned(),
        _ => {
            return Err(fail(
                ExitCode::Data,
                format!(
                    "{} points to {}, not into releases/",
                    link.display(),
                    target.display()
                ),
            ))
        }
    };
    let dir = settings.releases_dir().join(&version);
    real_dir(&dir)?;
    Ok(Some(Active { version, dir }))
}

/// `ksql-msk verify`: a full check of the active release (`current`), under the state
/// lock so that an install cannot change it meanwhile. Returns the summary line; 69
/// when nothing is installed, 65 on any difference.
pub async fn verify_active(settings: &Settings) -> Result<String> {
    let Some(Active { version, .. }) = active(settings)? else {
        return Err(fail(
            ExitCode::Unavailable,
            format!(
                "nothing to verify: {} does not exist (nothing is installed)",
                settings.current_link().display()
            ),
        ));
    };
    let _lock = lock::acquire(&settings.agent.state_dir, settings.agent.lock_timeout).await?;
    let dir = settings.releases_dir().join(&version);
    real_dir(&dir)?;
    let manifest = Manifest::load(&dir).ok_or_else(|| {
        fail(
            ExitCode::Data,
            format!(
                "{}: no readable {} (or one an older ksql-msk wrote, without a tree record; \
                 the next install or start installs the release again)",
                dir.display(),
                layout::MANIFEST
            ),
        )
    })?;
    if manifest.version != version {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: the manifest is ksqlDB {}'s, not {version}'s",
                dir.display(),
                manifest.version
            ),
        ));
    }
    let started = std::time::Instant::now();
    let done = check(&dir, &manifest, Depth::Full)?;
    tracing::info!(
        "hashed {} files ({:.1} MB) in {:.1}s",
        done.hashed,
        done.bytes_hashed as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(format!(
        "ksqlDB {version} in {}: {} files verified",
        dir.display(),
        done.files
    ))
}

/// `releases/<v>` itself must be a directory, not a link to one: a link can be pointed
/// elsewhere after the check, and a copy with a copied manifest vouches for nothing.
fn real_dir(dir: &Path) -> Result<()> {
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(dir).unwrap_or_default();
        return Err(fail(
            ExitCode::Data,
            format!(
                "{} is a symlink (to {}), not a release directory; refusing it",
                dir.display(),
                target.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(fail(
            ExitCode::Data,
            format!("{} is not a directory; refusing it", dir.display()),
        ));
    }
    Ok(())
}

/// Is there anything in directory `rel` the tree does not record? The start scripts
/// put whatever they find on the classpath (`share/java/*/`, and the development
/// directories `ksql-run-class` also looks for at the top), so nothing may be added in
/// the release's directories, except the agent's own files, nor any directory or link
/// at the top. Plain files at the top are let be: the release is ksqlDB's working
/// directory (a JVM leaves its crash logs and heap dumps there, the manifest and tree
/// record are there) and no script reads a file from it. `Err` says which path and what.
fn unexpected(
    release_dir: &Path,
    rel: &Path,
    tree: &Tree,
) -> std::result::Result<(), (PathBuf, String)> {
    let dir = release_dir.join(rel);
    let cannot = |e: std::io::Error| (rel.to_path_buf(), format!("cannot list it ({e})"));
    for entry in fs::read_dir(&dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let name = entry.file_name();
        let child = rel.join(&name);
        if tree.contains(&child) {
            continue;
        }
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !(is_file && allowed(rel, &name.to_string_lossy())) {
            let what = format!("{} is not part of the release", kind_of_entry(&entry));
            return Err((child, what));
        }
    }
    Ok(())
}

/// Unrecorded files that may be in directory `rel` of a release (regular files only).
fn allowed(rel: &Path, name: &str) -> bool {
    let in_dir = |file: &str| Path::new(file).parent() == Some(rel);
    let names = |file: &'static str| Path::new(file).file_name().and_then(|n| n.to_str());
    // The files phase 5 rewrites, and the temp files of an interrupted atomic write.
    let unrecorded = UNRECORDED
        .iter()
        .filter(|f| in_dir(f))
        .filter_map(|f| names(f))
        .any(|f| name == f || agent_temp(name, |base| base == f));
    if unrecorded {
        return true;
    }
    if rel.as_os_str().is_empty() {
        return true;
    }
    // A jar copy interrupted in a later run (its name does not end in .jar, so the
    // classpath wildcard does not take it).
    rel == Path::new(layout::JAR_DIR) && agent_temp(name, |base| base.ends_with(".jar"))
}

/// `.<base>.tmp-<pid>` or `.<base>.tmp-<pid>-<hex>`, the temp file of `fsutil`'s atomic
/// writes, for a `base` it accepts.
fn agent_temp(name: &str, base: impl Fn(&str) -> bool) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.rsplit_once(".tmp-"))
        .is_some_and(|(b, tag)| {
            tag.bytes().next().is_some_and(|c| c.is_ascii_digit())
                && tag.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
                && base(b)
        })
}

/// Hashed by a quick check too: the scripts, and the small files they and the render read.
fn quick_hashed(rel: &Path) -> bool {
    matches!(
        rel.components().next(),
        Some(Component::Normal(top)) if top == "bin" || top == "etc"
    )
}

fn kind_of_entry(entry: &fs::DirEntry) -> &'static str {
    match entry.file_type() {
        Ok(ft) => kind_of(&ft),
        Err(_) => "an entry",
    }
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a file"
    } else {
        "a special file"
    }
}

/// SHA-256 of the regular file at `path`, opened without following a link.
fn hash(path: &Path, buf: &mut [u8]) -> Result<[u8; 32]> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(fail(
            ExitCode::Data,
            format!("{}: no longer a regular file", path.display()),
        ));
    }
    let mut sha = Sha256::new();
    loop {
        let n = file
            .read(buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(sha.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::manifest::{Entry, TREE_FILE};
    use std::os::unix::fs::PermissionsExt;

    const JAR: &str = "aws-msk-iam-auth-2.2.0-all.jar";

    /// A small release written to disk, its tree recorded from what is there (as
    /// unpack and install record it), and a manifest binding it.
    struct Fixture {
        dir: tempfile::TempDir,
        manifest: Manifest,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("0.29.0");
            let jar = format!("share/java/ksqldb/{JAR}");
            let big = [7u8; 300_000];
            let files: [(&str, &[u8], u32); 6] = [
                (
                    "bin/ksql-server-start",
                    b"#!/bin/sh\nexec run-class\n",
                    0o755,
                ),
                ("bin/ksql-run-class", b"#!/bin/sh\njava\n", 0o755),
                ("etc/ksqldb/ksql-server.properties.dist", b"a=1\n", 0o644),
                ("share/java/ksqldb/ksqldb-engine-0.jar", b"PK engine", 0o644),
                ("share/java/ksqldb/big.jar", &big, 0o644),
                (&jar, b"PK iam", 0o644),
            ];
            let mut tree = Tree::default();
            for (rel, data, mode) in files {
                let p = root.join(rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                let sha = Sha256::digest(data).into();
                tree.record_file(Path::new(rel), data.len() as u64, mode, sha);
            }
            std::os::unix::fs::symlink("ksql-run-class", root.join("bin/ksql")).unwrap();
            tree.record(
                Path::new("bin/ksql"),
                Entry {
                    kind: Kind::Symlink {
                        target: b"ksql-run-class".to_vec(),
                    },
                    mode: 0,
                },
            );
            for d in [
                "bin",
                "etc",
                "etc/ksqldb",
                "share",
                "share/java",
                "share/java/ksqldb",
            ] {
                let mode = fs::metadata(root.join(d)).unwrap().mode() & 0o7777;
                tree.record(
                    Path::new(d),
                    Entry {
                        kind: Kind::Dir,
                        mode,
                    },
                );
            }
            // Rendered on every run: present, not recorded.
            fs::write(
                root.join(layout::PROPERTIES),
                "a=1\nbootstrap.servers=b:9098\n",
            )
            .unwrap();
            fs::write(root.join(layout::MANAGED_KEYS), "bootstrap.servers\n").unwrap();
            let mut manifest = Manifest {
                version: "0.29.0".into(),
                archive_url: "http://h/a.tar.gz".into(),
                archive_sha256: "00".into(),
                signature_url: "http://h/a.tar.gz.asc".into(),
                signer: "AB".into(),
                signing_key: "CD".into(),
                jar_url: "http://h/j.jar".into(),
                jar_sha256: hex::encode(Sha256::digest(b"PK iam")),
                jar_file: JAR.into(),
                tree_sha256: String::new(),
            };
            manifest.save_with_tree(&root, &tree).unwrap();
            Fixture { dir, manifest }
        }

        fn root(&self) -> std::path::PathBuf {
            self.dir.path().join("0.29.0")
        }

        fn check(&self, depth: Depth) -> Result<Checked> {
            check(&self.root(), &self.manifest, depth)
        }

        /// Both depths refuse, with exit 65, naming `needle`.
        fn refused(&self, needle: &str) {
            for depth in [Depth::Quick, Depth::Full] {
                let err = self.check(depth).unwrap_err();
                assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Data, "{err:#}");
                assert!(err.to_string().contains(needle), "{depth:?}: {err:#}");
            }
        }
    }

    /// Overwrite a file in place, keeping its size.
    fn flip_last_byte(path: &Path) {
        let mut bytes = fs::read(path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let mode = fs::metadata(path).unwrap().permissions();
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, mode).unwrap();
    }

    #[test]
    fn an_untouched_release_passes_both_depths() {
        let f = Fixture::new();
        let quick = f.check(Depth::Quick).unwrap();
        assert_eq!(quick.files, 6);
        // bin/ (2), etc/ (1) and the IAM jar.
        assert_eq!(quick.hashed, 4);
        let full = f.check(Depth::Full).unwrap();
        assert_eq!((full.files, full.hashed), (6, 6));
        // What phase 5 rewrites, the agent's temp files and a JVM crash log are fine.
        fs::write(f.root().join(layout::PROPERTIES), "changed=1\n").unwrap();
        fs::write(
            f.root().join("etc/ksqldb/.ksql-server.properties.tmp-42"),
            "x",
        )
        .unwrap();
        fs::write(
            f.root().join(format!("share/java/ksqldb/.{JAR}.tmp-42")),
            "x",
        )
        .unwrap();
        fs::write(f.root().join("hs_err_pid1234.log"), "SIGSEGV").unwrap();
        f.check(Depth::Full).unwrap();
    }

    #[test]
    fn an_edited_script_is_refused_even_at_the_same_size() {
        let f = Fixture::new();
        flip_last_byte(&f.root().join("bin/ksql-server-start"));
        f.refused("bin/ksql-server-start: content changed");
    }

    #[test]
    fn an_edited_iam_jar_is_refused_quickly() {
        let f = Fixture::new();
        flip_last_byte(&f.root().join(format!("share/java/ksqldb/{JAR}")));
        f.refused(&format!("{JAR}: content changed"));
    }

    #[test]
    fn a_same_size_edit_of_another_jar_takes_a_full_check() {
        let f = Fixture::new();
        flip_last_byte(&f.root().join("share/java/ksqldb/big.jar"));
        f.check(Depth::Quick).unwrap();
        let err = f.check(Depth::Full).unwrap_err();
        assert!(
            err.to_string().contains("big.jar: content changed"),
            "{err}"
        );
    }

    #[test]
    fn size_mode_type_and_link_changes_are_refused_quickly() {
        let f = Fixture::new();
        let jar = f.root().join("share/java/ksqldb/big.jar");
        fs::write(&jar, b"short").unwrap();
        f.refused("big.jar: 5 bytes, recorded 300000");

        let f = Fixture::new();
        let start = f.root().join("bin/ksql-run-class");
        fs::set_permissions(&start, fs::Permissions::from_mode(0o777)).unwrap();
        f.refused("bin/ksql-run-class: mode 777, recorded 755");

        let f = Fixture::new();
        let start = f.root().join("bin/ksql-server-start");
        fs::remove_file(&start).unwrap();
        std::os::unix::fs::symlink("/tmp/evil", &start).unwrap();
        f.refused("bin/ksql-server-start: a symlink, recorded a file");

        let f = Fixture::new();
        let link = f.root().join("bin/ksql");
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("ksql-server-start", &link).unwrap();
        f.refused("bin/ksql: links to ksql-server-start, recorded ksql-run-class");

        let f = Fixture::new();
        fs::remove_file(f.root().join("share/java/ksqldb/ksqldb-engine-0.jar")).unwrap();
        f.refused("ksqldb-engine-0.jar: missing");
    }

    #[test]
    fn anything_added_to_the_release_is_refused() {
        for added in [
            "bin/ksql-helper",
            "share/java/ksqldb/evil.jar",
            "share/java/ksqldb/.hidden.jar",
            "etc/ksqldb/log4j.properties",
        ] {
            let f = Fixture::new();
            fs::write(f.root().join(added), "x").unwrap();
            f.refused(&format!("{added}: a file is not part of the release"));
        }
        // ksql-run-class also puts <release>/ksqldb-engine/target/*-package/share/java/*
        // on the classpath, and reads <release>/config/log4j.properties.
        for added in ["ksqldb-engine", "config"] {
            let f = Fixture::new();
            fs::create_dir(f.root().join(added)).unwrap();
            f.refused(&format!("{added}: a directory is not part of the release"));
        }
        let f = Fixture::new();
        std::os::unix::fs::symlink("share", f.root().join("lib")).unwrap();
        f.refused("lib: a symlink is not part of the release");
    }

    #[test]
    fn a_symlinked_release_is_refused_before_anything_is_read() {
        let f = Fixture::new();
        let copy = f.dir.path().join("copy");
        fs::rename(f.root(), &copy).unwrap();
        std::os::unix::fs::symlink(&copy, f.root()).unwrap();
        f.refused("is a symlink");
    }

    #[test]
    fn a_tree_record_that_does_not_match_the_manifest_is_refused() {
        let f = Fixture::new();
        let mut m = f.manifest.clone();
        m.tree_sha256 = hex::encode([0u8; 32]);
        let err = check(&f.root(), &m, Depth::Quick).unwrap_err();
        assert!(err.to_string().contains(TREE_FILE), "{err}");
        // A manifest whose jar the tree does not record with that hash.
        let mut m = f.manifest.clone();
        m.jar_sha256 = hex::encode([1u8; 32]);
        let err = check(&f.root(), &m, Depth::Quick).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not record the manifest's jar"),
            "{err}"
        );
    }

    #[test]
    fn allowed_names_are_narrow() {
        let tree = |b: &str| b == TREE_FILE;
        assert!(agent_temp(&format!(".{TREE_FILE}.tmp-12"), tree));
        assert!(agent_temp(&format!(".{TREE_FILE}.tmp-12-9f3a0c"), tree));
        assert!(!agent_temp(&format!(".{TREE_FILE}.tmp-x"), tree));
        assert!(!agent_temp(&format!(".{TREE_FILE}.tmp-"), tree));
        assert!(!agent_temp(&format!(".{TREE_FILE}.tmp-1x"), tree));
        assert!(!agent_temp(&format!("{TREE_FILE}.tmp-12"), tree));
        assert!(allowed(
            Path::new(""),
            &format!(".{}.tmp-9", layout::MANIFEST)
        ));
        assert!(!allowed(Path::new("bin"), "ksql-server.properties"));
        assert!(!allowed(Path::new("etc"), "ksql-server.properties"));
        assert!(allowed(Path::new("etc/ksqldb"), "ksql-server.properties"));
        assert!(!allowed(Path::new("share/java/ksqldb"), ".x.jar"));
    }
}
