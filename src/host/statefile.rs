//! The one way to read a file under the state directory, which the service user can
//! write: opened beneath the held handle without following a link and without
//! blocking, `fstat` says a regular file owned by its directory's owner, no larger than
//! its kind allows, and only then read. A FIFO never hangs the reader, `/dev/zero` or a
//! huge sparse file never eats memory or time, and a link (or a hard link to someone
//! else's file) is never read through.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::OFlags;

use super::dir::Dir;
use crate::exit::{fail, ExitCode};

/// The kinds of state file, each with the largest size a real one has (with room).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    /// A release's manifest (`.ksql-msk-manifest.toml`).
    Manifest,
    /// A release's recorded tree (one line per entry of a ~1000-entry release).
    Tree,
    /// The trust record (fingerprints and hashes first seen).
    Trust,
    /// The failed-upgrade record.
    UpgradeRecord,
    /// A log4j or ksqlDB properties file of a release (pristine or generated).
    Properties,
    /// status.json and the metrics textfile.
    Status,
    /// A cached validator (ETag, length) of a download.
    CacheMeta,
    /// A jar hashed before use (the IAM or exporter jar).
    Jar,
    /// A downloaded OpenPGP signature.
    Signature,
    /// A downloaded OpenPGP key.
    Key,
}

impl StateFile {
    /// The most bytes a file of this kind may hold.
    pub const fn limit(self) -> u64 {
        match self {
            StateFile::Manifest => 1 << 20,
            // 20 000 entries (`unpack::MAX_ENTRIES`) of long paths.
            StateFile::Tree => 64 << 20,
            StateFile::Trust => 1 << 20,
            StateFile::UpgradeRecord => 1 << 20,
            StateFile::Properties => 4 << 20,
            StateFile::Status => 1 << 20,
            StateFile::CacheMeta => 64 << 10,
            StateFile::Jar => 256 << 20,
            StateFile::Signature => 64 << 10,
            StateFile::Key => 1 << 20,
        }
    }
}

/// Open the state file `name` in `dir` for reading after the checks of the module
/// comment, with its size; `Ok(None)` if nothing is there. 65 for a link, a special
/// file, a file of another owner than the directory's, or one over `kind`'s limit.
pub fn open_state_file(
    dir: &Dir,
    name: impl AsRef<OsStr>,
    kind: StateFile,
) -> Result<Option<(File, u64)>> {
    let name = name.as_ref();
    super::dir::check_name(name)?;
    let path = dir.path().join(name);
    let Some(file) = dir.open_regular(name, OFlags::RDONLY | OFlags::NONBLOCK, 0)? else {
        return Ok(None);
    };
    let st = rustix::fs::fstat(&file)
        .map_err(std::io::Error::from)
        .with_context(|| format!("reading {}", path.display()))?;
    let dir_owner = rustix::fs::fstat(dir)
        .map_err(std::io::Error::from)
        .with_context(|| format!("reading {}", dir.path().display()))?
        .st_uid;
    if st.st_uid != dir_owner {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{} belongs to uid {}, not to its directory's owner (uid {dir_owner}): \
                 refusing to read it (something other than ksql-msk put it there)",
                path.display(),
                st.st_uid
            ),
        ));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > kind.limit() {
        return Err(too_big(&path, kind));
    }
    Ok(Some((file, size)))
}

/// The whole content of the state file `name` in `dir` ([`open_state_file`]); what is
/// read stops at the limit whatever the size said (a file growing meanwhile).
pub fn read_state_file(
    dir: &Dir,
    name: impl AsRef<OsStr>,
    kind: StateFile,
) -> Result<Option<Vec<u8>>> {
    let name = name.as_ref();
    let Some((file, size)) = open_state_file(dir, name, kind)? else {
        return Ok(None);
    };
    let path = dir.path().join(name);
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(kind.limit() + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > kind.limit() {
        return Err(too_big(&path, kind));
    }
    Ok(Some(bytes))
}

/// [`read_state_file`] by path: the directory is resolved beneath the held state
/// directory ([`Dir::parent_of`]).
pub fn read_state(path: &Path, kind: StateFile) -> Result<Option<Vec<u8>>> {
    let (dir, name) = match Dir::parent_of(path) {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    read_state_file(&dir, name, kind)
}

/// [`read_state`] as UTF-8 text (65 if it is not).
pub fn read_state_text(path: &Path, kind: StateFile) -> Result<Option<String>> {
    read_state(path, kind)?
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                fail(
                    ExitCode::Data,
                    format!("{} is not UTF-8 text", path.display()),
                )
            })
        })
        .transpose()
}

/// Whether `e` says something on the way was missing.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

fn too_big(path: &Path, kind: StateFile) -> anyhow::Error {
    fail(
        ExitCode::Data,
        format!(
            "{} is larger than {} bytes, more than any {kind:?} file ksql-msk writes: refusing to read it",
            path.display(),
            kind.limit()
        ),
    )
}
