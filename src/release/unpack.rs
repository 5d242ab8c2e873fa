//! Verify and unpack the ksqlDB archive in one pass over its bytes.
//!
//! Two threads share the work (the host may have only two cores, and both halves are
//! CPU-bound): the *verifier* reads the archive in large chunks, feeds every chunk to
//! the OpenPGP signature hash (SHA-512 with GnuPG's defaults, the most expensive step)
//! and hands it over a small bounded channel to the *extractor*, which hashes it with
//! SHA-256 (for the manifest), gunzips and untars it into the staging directory. The
//! two hashes sit on different threads so that the threads carry similar loads. The
//! channel bound keeps memory flat whatever the archive size. The archive is read once,
//! and may be read while it is still downloading (`fetch::Follower`).
//!
//! The extractor also records the tree it writes ([`Tree`]: type, mode and size of every
//! entry, the SHA-256 of every file, hashed from the buffer it writes, so nothing is read
//! twice): the manifest binds it, and a warm start checks the release against it.
//!
//! Nothing here makes the staging directory live: the caller renames it into place only
//! when the signature verified.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tar::EntryType;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::exit::{fail, ExitCode};
use crate::host::{self, Dir};
use crate::release::manifest::{Entry, Kind, Tree};
use crate::release::verify::{SignatureCheck, Signer};

/// Chunk size read from the archive file; also the unit handed to the extractor.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the threads (bounds memory to about CHUNK × this).
const IN_FLIGHT: usize = 4;
/// Copy buffer for file contents.
const COPY_BUF: usize = 256 << 10;

/// What one pass over the archive established.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub archive_sha256: String,
    pub signer: Signer,
    /// The archive's top directory that was stripped, e.g. `confluent-ksqldb-0.29.0`.
    pub top_dir: String,
    /// What was written into staging, entry by entry.
    pub tree: Tree,
}

/// Reads the archive for the verifier, forwarding each chunk.
struct Tee<R> {
    source: R,
    tx: Option<SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        if n == 0 {
            // End of the archive: the extractor sees end of stream.
            self.tx = None;
        } else if let Some(tx) = &self.tx {
            // When the extractor has stopped (refused entry, too big), keep hashing
            // anyway: a bad signature is the better explanation when there is one.
            if tx.send(buf[..n].to_vec()).is_err() {
                self.tx = None;
            }
        }
        Ok(n)
    }
}

/// The extractor's view of the channel; hashes every chunk it receives.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    sha: Sha256,
}

impl ChannelReader {
    /// Hash what tar did not need (end-of-archive padding, trailing bytes): the
    /// SHA-256 is of the whole file.
    fn drain(&mut self) {
        for chunk in self.rx.iter() {
            self.sha.update(&chunk);
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.sha.update(&chunk);
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Caps the decompressed stream: a small archive may inflate to fill the disk.
struct Limit<R> {
    inner: R,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Probe one byte: exactly at the limit is fine, past it is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.store(true, Ordering::Relaxed);
                    Err(io::Error::other("unpacked size limit exceeded"))
                }
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Most entries an archive may have: a ksqlDB release has about a thousand; each entry
/// costs an inode and a syscall or three, so a flood of tiny ones is refused early.
pub const MAX_ENTRIES: u64 = 20_000;
/// Most an archive may inflate, as a multiple of its size: the jars of a release are
/// already compressed (about 1.1), text compresses about 5 to 10; gzip's limit is
/// about 1000 (a bomb).
pub const MAX_INFLATE_RATIO: u64 = 50;
/// The inflation allowance of a small archive, whatever its ratio.
pub const MIN_INFLATE_ALLOWANCE: u64 = 64 << 20;

/// Verify `archive` with `check` while unpacking it into `staging` (which must exist and
/// be empty).
pub fn unpack_verified(
    archive: &Path,
    staging: &Dir,
    max_size: u64,
    check: &SignatureCheck,
) -> Result<Unpacked> {
    let (cache, name) = Dir::parent_of(archive)?;
    let file = cache
        .open_file(&name)?
        .with_context(|| format!("opening {}: missing", archive.display()))?;
    let archive_len = file
        .metadata()
        .with_context(|| format!("reading {}", archive.display()))?
        .len();
    unpack_verified_from(
        file,
        &archive.display().to_string(),
        Some(archive_len),
        staging,
        max_size,
        check,
    )
}

/// [`unpack_verified`] from any source of the archive's bytes (`name` says which in
/// messages), e.g. a download still in progress. `archive_len`, when known (the
/// download's announced length), bounds how far the archive may inflate.
pub fn unpack_verified_from<R: Read + Send + Sync>(
    source: R,
    name: &str,
    archive_len: Option<u64>,
    staging: &Dir,
    max_size: u64,
    check: &SignatureCheck,
) -> Result<Unpacked> {
    let limit = inflate_limit(archive_len, max_size);
    let started = Instant::now();
    let exceeded = Arc::new(AtomicBool::new(false));
    let (verified, extracted) = verify_and_extract(source, staging, limit, &exceeded, check);
    // The signature speaks first: a tampered archive usually also breaks gzip or tar,
    // and "bad signature" is the true story then.
    let signer = verified?;
    let (stats, sha) = extracted.map_err(|e| {
        if exceeded.load(Ordering::Relaxed) {
            too_big(name, archive_len, limit, max_size)
        } else {
            e
        }
    })?;
    check_links(staging, &stats.links)?;
    tracing::info!(
        "verified and unpacked {} files ({:.1} MB) in {:.1}s",
        stats.files,
        stats.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(Unpacked {
        archive_sha256: hex::encode(sha),
        signer,
        top_dir: stats.top_dir,
        tree: stats.tree,
    })
}

/// How far the archive may inflate: [`MAX_INFLATE_RATIO`] times its length when known
/// (at least [`MIN_INFLATE_ALLOWANCE`]), never more than `max_size`.
fn inflate_limit(archive_len: Option<u64>, max_size: u64) -> u64 {
    archive_len.map_or(max_size, |len| {
        len.saturating_mul(MAX_INFLATE_RATIO)
            .max(MIN_INFLATE_ALLOWANCE)
            .min(max_size)
    })
}

/// The streaming set-up: the verifier thread reads `source` and hashes it for the
/// signature, handing each chunk over the bounded channel to the extractor on this
/// thread, which hashes it with SHA-256 and unpacks it into `staging` (at most `limit`
/// bytes inflated; `exceeded` says whether that was the trouble). Both results, the
/// signature's first.
fn verify_and_extract<R: Read + Send + Sync>(
    source: R,
    staging: &Dir,
    limit: u64,
    exceeded: &Arc<AtomicBool>,
    check: &SignatureCheck,
) -> (
    Result<Signer>,
    Result<(Stats, sha2::digest::Output<Sha256>)>,
) {
    let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let verifier = scope.spawn(move || {
            let tee = Tee {
                source,
                tx: Some(tx),
            };
            check.verify_reader(io::BufReader::with_capacity(CHUNK, tee))
        });
        let mut reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            sha: Sha256::new(),
        };
        let extracted = match extract(&mut reader, staging, limit, exceeded.clone()) {
            Ok(stats) => {
                reader.drain();
                Ok((stats, reader.sha.finalize()))
            }
            Err(e) => {
                // The receiver goes now, so the verifier stops forwarding.
                drop(reader);
                Err(e)
            }
        };
        let verified = verifier
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the verifier thread panicked")));
        (verified, extracted)
    })
}

/// The refusal of an archive that inflated past `limit`: past the configured
/// `agent.max_release_size` when that is what bound it, else past its inflation ratio.
fn too_big(name: &str, archive_len: Option<u64>, limit: u64, max_size: u64) -> anyhow::Error {
    if limit == max_size {
        fail(
            ExitCode::Data,
            format!(
                "{name}: unpacks to more than agent.max_release_size ({} MB); refusing it",
                max_size / 1_000_000
            ),
        )
    } else {
        fail(
            ExitCode::Data,
            format!(
                "{name}: unpacks to more than {MAX_INFLATE_RATIO} times its size of {} bytes \
                 ({} MB); a ksqlDB release does not inflate like that (a gzip bomb?); refusing it",
                archive_len.unwrap_or_default(),
                limit / 1_000_000
            ),
        )
    }
}

struct Stats {
    top_dir: String,
    files: u64,
    bytes: u64,
    tree: Tree,
    /// The symlinks the archive made, to check for real once all are there.
    links: HashSet<PathBuf>,
}

fn refuse(entry: &Path, why: &str) -> anyhow::Error {
    fail(
        ExitCode::Data,
        format!(
            "archive entry {:?} refused: {why}",
            entry.display().to_string()
        ),
    )
}

/// A failure to create an entry. The disk's own trouble (full, read-only, failing,
/// permissions) stays a local I/O error (74), and the cache is kept; anything else
/// (a file where a directory must go, a name too long, too many links) is the archive's
/// content at fault: a data error (65), so that the cache is dropped with the archive.
fn entry_io(entry: &Path, doing: &str, e: io::Error) -> anyhow::Error {
    let local = matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EIO
                | libc::EROFS
                | libc::EACCES
                | libc::EPERM
                | libc::ENOMEM
                | libc::EMFILE
                | libc::ENFILE
        )
    );
    let what = format!(
        "archive entry {:?}: {doing}: {e}",
        entry.display().to_string()
    );
    if local {
        anyhow::Error::new(e).context(what)
    } else {
        fail(ExitCode::Data, format!("{what}; refusing the archive"))
    }
}

/// The entry's path inside the release: the single top directory stripped, no absolute
/// path, no `..`. `None` for the top directory itself.
fn release_path(raw: &Path, top: &mut Option<String>) -> Result<Option<PathBuf>> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(refuse(raw, "absolute path")),
            Component::ParentDir => return Err(refuse(raw, "\"..\" in path")),
        }
    }
    let Some((first, rest)) = parts.split_first() else {
        return Err(refuse(raw, "empty path"));
    };
    let first = first.to_string_lossy().into_owned();
    match top {
        None => *top = Some(first),
        Some(t) if *t == first => {}
        Some(t) => {
            return Err(refuse(
                raw,
                &format!("outside the archive's single top directory {t:?}"),
            ))
        }
    }
    Ok((!rest.is_empty()).then(|| rest.iter().collect()))
}

/// Resolve a symlink target lexically from the link's directory; `None` if it leaves
/// the release or is absolute.
fn resolve_link(link: &Path, target: &Path) -> Option<PathBuf> {
    let mut out: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

/// Remove whatever a duplicate entry would replace at `name` in `dir` (never following
/// a symlink). A directory removed also goes from the kept parents.
fn clear(dir: &Dir, name: &OsStr, keep_dir: bool, parents: &mut Parents) -> Result<()> {
    match dir.kind(name)? {
        Some(host::Kind::Dir) if keep_dir => Ok(()),
        Some(host::Kind::Dir) => {
            parents.forget();
            dir.remove_tree(name)
        }
        Some(_) => dir.remove_file(name).map(drop),
        None => Ok(()),
    }
}

/// Opens the directories entries go into, beneath the staging handle, creating the
/// missing ones; the last one is kept, as entries come directory by directory.
struct Parents<'a> {
    staging: &'a Dir,
    last: Option<(PathBuf, Dir)>,
}

impl Parents<'_> {
    /// The directory holding `rel` (made if missing, each one recorded in `tree` if it
    /// is not yet), and `rel`'s name in it.
    fn of<'r>(&mut self, rel: &'r Path, tree: &mut Tree) -> Result<(Dir, &'r OsStr)> {
        let name = rel
            .file_name()
            .with_context(|| format!("{}: no file name", rel.display()))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            let mut dir = self.staging.try_clone()?;
            let mut walked = PathBuf::new();
            for part in parent.components() {
                walked.push(part);
                dir.create_dir_plain(part.as_os_str(), 0o777)?;
                dir = dir.open_dir(part.as_os_str())?;
                if !tree.contains(&walked) {
                    record_dir(tree, &dir, &walked)?;
                }
            }
            self.last = Some((parent.to_path_buf(), dir));
        }
        let (_, dir) = self.last.as_ref().context("no parent directory")?;
        Ok((dir.try_clone()?, name))
    }

    /// Forget the kept directory (an entry may have replaced it).
    fn forget(&mut self) {
        self.last = None;
    }
}

fn extract(
    reader: &mut ChannelReader,
    staging: &Dir,
    max_size: u64,
    exceeded: Arc<AtomicBool>,
) -> Result<Stats> {
    let gz = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, reader));
    let limited = Limit {
        inner: gz,
        left: max_size,
        exceeded,
    };
    extract_entries(limited, staging)
}

/// Extract an uncompressed tar stream into `staging` with every entry sanitised, then
/// check the links it made. Returns the stripped top directory and the files written.
/// Public for the fuzz target (fuzz/fuzz_targets/tar_sanitizer.rs).
pub fn extract_tar<R: Read>(tar: R, staging: &Path) -> Result<(String, u64)> {
    let staging = Dir::open(staging)?;
    let stats = extract_entries(tar, &staging)?;
    check_links(&staging, &stats.links)?;
    Ok((stats.top_dir, stats.files))
}

fn extract_entries<R: Read>(tar: R, staging: &Dir) -> Result<Stats> {
    let mut archive = tar::Archive::new(tar);
    let mut extraction = Extraction {
        staging,
        // Everything is written beneath the staging handle, never by a path from `/`: a
        // `releases` or staging directory renamed or swapped for a link meanwhile cannot
        // steer a write elsewhere.
        parents: Parents {
            staging,
            last: None,
        },
        top: None,
        stats: Stats {
            top_dir: String::new(),
            files: 0,
            bytes: 0,
            tree: Tree::default(),
            links: HashSet::new(),
        },
        buf: vec![0u8; COPY_BUF],
        count: 0,
    };
    for entry in archive.entries().map_err(data_err)? {
        extraction.entry(entry.map_err(data_err)?)?;
    }
    let mut stats = extraction.stats;
    stats.top_dir = extraction
        .top
        .ok_or_else(|| fail(ExitCode::Data, "the archive is empty"))?;
    Ok(stats)
}

/// The tar stream itself is unreadable: a data error (65).
fn data_err(e: io::Error) -> anyhow::Error {
    fail(ExitCode::Data, format!("reading the archive: {e}"))
}

/// One pass of [`extract_entries`]: what it has written so far, and where.
struct Extraction<'a> {
    staging: &'a Dir,
    parents: Parents<'a>,
    /// The archive's single top directory, once the first entry named it.
    top: Option<String>,
    /// What was written; `links` are the symlinks the archive made, through which
    /// nothing may be written.
    stats: Stats,
    buf: Vec<u8>,
    count: u64,
}

/// Where an entry goes: its name in the archive (for messages), its path in the
/// release, and the directory (beneath the staging handle) and name it is made at.
struct Place<'p> {
    raw: &'p Path,
    rel: &'p Path,
    dir: Dir,
    name: &'p OsStr,
}

impl Extraction<'_> {
    /// Sanitise one entry, then make it as its kind says. The refusals come in this
    /// order: too many entries, a path that leaves the top directory, a parent that is a
    /// symlink the archive made, a set-id mode, a directory that cannot be made, then
    /// the kind's own (a device node, a FIFO, a link that leaves the release, ...).
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.count += 1;
        if self.count > MAX_ENTRIES {
            return Err(fail(
                ExitCode::Data,
                format!(
                    "the archive has more than {MAX_ENTRIES} entries (a ksqlDB release has \
                     about a thousand); refusing it"
                ),
            ));
        }
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        let raw = entry.path().map_err(data_err)?.into_owned();
        let Some(rel) = release_path(&raw, &mut self.top)? else {
            if kind.is_dir() {
                return Ok(());
            }
            return Err(refuse(&raw, "the top directory is not a directory"));
        };
        // Nothing may be written through a symlink the archive made.
        if rel
            .ancestors()
            .skip(1)
            .any(|a| self.stats.links.contains(a))
        {
            return Err(refuse(&raw, "its parent directory is a symlink"));
        }
        let mode = entry.header().mode().map_err(data_err)?;
        if mode & 0o6000 != 0 {
            return Err(refuse(&raw, &format!("setuid/setgid mode {mode:o}")));
        }
        let (dir, name) = self.parents.of(&rel, &mut self.stats.tree).map_err(|e| {
            refuse(
                &raw,
                &format!("its directory: {}", crate::exit::one_line(&e)),
            )
        })?;
        let at = Place {
            raw: &raw,
            rel: &rel,
            dir,
            name,
        };
        match kind {
            EntryType::Directory => self.directory(&at),
            EntryType::Regular | EntryType::Continuous => self.regular_file(&mut entry, &at, mode),
            EntryType::Symlink => self.symlink(&entry, &at),
            EntryType::Link => self.hard_link(&entry, &at),
            EntryType::Char | EntryType::Block => Err(refuse(&raw, "device node")),
            EntryType::Fifo => Err(refuse(&raw, "fifo")),
            other => Err(refuse(&raw, &format!("unsupported entry type {other:?}"))),
        }
    }

    /// A directory: made if missing (an existing one is kept as it is) and recorded.
    fn directory(&mut self, at: &Place) -> Result<()> {
        clear(&at.dir, at.name, true, &mut self.parents)?;
        at.dir.create_dir_plain(at.name, 0o777)?;
        record_dir(&mut self.stats.tree, &at.dir.open_dir(at.name)?, at.rel)
    }

    /// A regular file: created exclusively (whatever was at its name removed first),
    /// written from the archive and hashed from the same buffer, then recorded.
    fn regular_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: &Place,
        mode: u32,
    ) -> Result<()> {
        clear(&at.dir, at.name, false, &mut self.parents)?;
        // Release files are never group- or world-writable, whatever the archive says.
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut file = rustix::fs::openat(
            &at.dir,
            at.name,
            flags,
            Mode::from_raw_mode(mode & 0o755 | 0o600),
        )
        .map(File::from)
        .map_err(|e| entry_io(at.raw, "creating it", e.into()))?;
        let mut sha = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut self.buf).map_err(data_err)?;
            if n == 0 {
                break;
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| entry_io(at.raw, "writing it", e))?;
            sha.update(&self.buf[..n]);
            size += n as u64;
        }
        start_writeback(&file);
        // The mode as the umask left it: what a later check will find.
        let dst = self.staging.path().join(at.rel);
        let meta = rustix::fs::fstat(&file)
            .map_err(io::Error::from)
            .with_context(|| format!("inspecting {}", dst.display()))?;
        self.stats
            .tree
            .record_file(at.rel, size, meta.st_mode & 0o7777, sha.finalize().into());
        self.stats.bytes += size;
        self.stats.files += 1;
        crate::host::failpoint::hit("unpack.mid_archive")
    }

    /// A symlink: its target must stay inside the release as written (the links are
    /// checked for real once all are made, [`check_links`]).
    fn symlink<R: Read>(&mut self, entry: &tar::Entry<'_, R>, at: &Place) -> Result<()> {
        let target = entry
            .link_name()
            .map_err(data_err)?
            .ok_or_else(|| refuse(at.raw, "symlink without a target"))?
            .into_owned();
        if resolve_link(at.rel, &target).is_none() {
            return Err(refuse(
                at.raw,
                &format!("symlink to {} points outside the release", target.display()),
            ));
        }
        clear(&at.dir, at.name, false, &mut self.parents)?;
        rustix::fs::symlinkat(&target, &at.dir, at.name)
            .map_err(|e| entry_io(at.raw, "creating the symlink", e.into()))?;
        let target = target.into_os_string().into_vec();
        let kind = Kind::Symlink { target };
        self.stats.tree.record(at.rel, Entry { kind, mode: 0 });
        self.stats.links.insert(at.rel.to_path_buf());
        Ok(())
    }

    /// A hard link: only to a file of this release written earlier, not through a
    /// symlink; recorded as the file it links to (the same inode).
    fn hard_link<R: Read>(&mut self, entry: &tar::Entry<'_, R>, at: &Place) -> Result<()> {
        let raw = at.raw;
        let target = entry
            .link_name()
            .map_err(data_err)?
            .ok_or_else(|| refuse(raw, "hard link without a target"))?
            .into_owned();
        let inside = release_path(&target, &mut self.top).map_err(|_| {
            refuse(
                raw,
                &format!(
                    "hard link to {} points outside the release",
                    target.display()
                ),
            )
        })?;
        let Some(target_rel) = inside else {
            return Err(refuse(raw, "hard link to the top directory"));
        };
        if target_rel.ancestors().any(|a| self.stats.links.contains(a)) {
            return Err(refuse(raw, "hard link through a symlink"));
        }
        // The same inode: it is recorded as the file it links to.
        let linked = match self.stats.tree.get(&target_rel) {
            Some(e) if matches!(e.kind, Kind::File { .. }) => e.clone(),
            _ => {
                return Err(refuse(
                    raw,
                    &format!(
                        "hard link to {}, which is not an earlier file",
                        target.display()
                    ),
                ))
            }
        };
        clear(&at.dir, at.name, false, &mut self.parents)?;
        let (src_dir, src_name) = self.parents.of(&target_rel, &mut self.stats.tree)?;
        rustix::fs::linkat(&src_dir, src_name, &at.dir, at.name, AtFlags::empty())
            .map_err(|e| entry_io(raw, "linking it", e.into()))?;
        self.stats.tree.record(at.rel, linked);
        self.stats.files += 1;
        Ok(())
    }
}

/// Record the directory `dir` (opened at `rel`) as it is now.
fn record_dir(tree: &mut Tree, dir: &Dir, rel: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mode = dir.metadata()?.mode() & 0o7777;
    tree.record(
        rel,
        Entry {
            kind: Kind::Dir,
            mode,
        },
    );
    Ok(())
}

/// After extraction, check every symlink for real: a chain of links that each look
/// harmless (`a -> b/..` where `b -> ..`) can still leave the release. Each is resolved
/// by the kernel beneath the staging handle (`RESOLVE_BENEATH`): one that would leave
/// it is refused.
fn check_links(staging: &Dir, links: &HashSet<PathBuf>) -> Result<()> {
    for rel in links {
        if staging_kind(staging, rel) != Some(host::Kind::Symlink) {
            continue; // replaced by a later entry
        }
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        let escapes = match rustix::fs::openat2(staging, rel, flags, Mode::empty(), how) {
            Ok(_) => false,
            // Dangling: only harmless if it cannot climb through another link.
            Err(Errno::NOENT) => {
                Dir::open_beneath(staging.path(), rel.parent().unwrap_or(Path::new("")))
                    .ok()
                    .and_then(|d| d.read_link(rel.file_name().unwrap_or_default()))
                    .is_none_or(|t| t.components().any(|c| c == Component::ParentDir))
            }
            // No openat2 here (an old kernel, or a seccomp filter such as
            // systemd-nspawn 252's that answers ENOSYS): the same walk in user space.
            Err(Errno::NOSYS) => escapes_walking(staging, rel),
            Err(_) => true,
        };
        if escapes {
            return Err(refuse(rel, "symlink resolves outside the release"));
        }
    }
    Ok(())
}

/// Most links followed while resolving one path (the kernel's ELOOP limit).
const MAX_LINK_HOPS: usize = 40;

/// Whether the symlink at `rel` resolves outside `staging`, walked in user space the way
/// `RESOLVE_BENEATH` resolves it: every link met on the way (its own target included) is
/// read beneath the staging handle and followed; an absolute target, a `..` above the
/// top or more than [`MAX_LINK_HOPS`] links escape. A component that does not exist (a
/// dangling end) is taken as a plain name, so only what climbs decides.
fn escapes_walking(staging: &Dir, rel: &Path) -> bool {
    let mut at: Vec<std::ffi::OsString> = match rel.parent() {
        Some(p) => p.components().map(|c| c.as_os_str().to_owned()).collect(),
        None => Vec::new(),
    };
    let Some(first) = staging_read_link(staging, rel) else {
        return true;
    };
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = Default::default();
    let mut hops = 1;
    if push_target(&mut pending, &first).is_err() {
        return true;
    }
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if at.pop().is_none() {
                return true;
            }
            continue;
        }
        let here: PathBuf = at.iter().chain(std::iter::once(&part)).collect();
        if staging_kind(staging, &here) == Some(host::Kind::Symlink) {
            hops += 1;
            let target = staging_read_link(staging, &here);
            match target {
                Some(t) if hops <= MAX_LINK_HOPS && push_target(&mut pending, &t).is_ok() => {}
                _ => return true,
            }
        } else {
            at.push(part);
        }
    }
    false
}

/// Puts a link target's components in front of `pending`; an absolute target is an error
/// (it leaves the release).
fn push_target(
    pending: &mut std::collections::VecDeque<std::ffi::OsString>,
    target: &Path,
) -> std::result::Result<(), ()> {
    let mut parts = Vec::new();
    for c in target.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_owned()),
            Component::ParentDir => parts.push("..".into()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(()),
        }
    }
    for p in parts.into_iter().rev() {
        pending.push_front(p);
    }
    Ok(())
}

/// The target of the symlink at `rel` beneath `staging`, no link followed on the way.
fn staging_read_link(staging: &Dir, rel: &Path) -> Option<PathBuf> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let mut dir = staging.try_clone().ok()?;
    for part in parent.components() {
        dir = dir.open_dir(part.as_os_str()).ok()?;
    }
    dir.read_link(rel.file_name()?)
}

/// What is at `rel` beneath `staging`, not following a link at its end.
fn staging_kind(staging: &Dir, rel: &Path) -> Option<host::Kind> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let mut dir = staging.try_clone().ok()?;
    for part in parent.components() {
        dir = dir.open_dir(part.as_os_str()).ok()?;
    }
    dir.kind(rel.file_name()?).ok()?
}

/// Ask the kernel to start writing `file` back now, without waiting (dpkg does the same
/// per unpacked file). Not an fsync: nothing is made durable here and no journal commit
/// is forced; it only moves the disk writes into the extraction, which is CPU-bound, so
/// that the single `sync_tree` before the rename finds little left to write. A failure
/// is harmless (the data is still written by `sync_tree`), so it is ignored.
fn start_writeback(file: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own; no memory is passed. Kept raw:
    // neither rustix nor std offers sync_file_range.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Make the whole unpacked tree durable before it is renamed into place.
///
/// Without this, a crash shortly after the rename could leave `releases/<version>` with
/// a valid manifest but empty or partial files (delayed allocation). One fsync per file
/// would cost a journal commit each for thousands of files; `syncfs` flushes the file
/// system once, which is what a tree written in one go needs. It also flushes other
/// writers' dirty data on the same file system — acceptable once per install.
pub fn sync_tree(dir: &Path) -> Result<()> {
    let d = Dir::open(dir)?;
    rustix::fs::syncfs(&d)
        .map_err(io::Error::from)
        .with_context(|| format!("syncfs {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// The user-space walk (for kernels or seccomp filters without openat2) agrees with
    /// RESOLVE_BENEATH on links that stay, links that climb out directly or through other
    /// links, absolute targets, dangling ends and loops.
    #[test]
    fn the_user_space_walk_finds_the_links_that_leave() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("staging");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/file"), b"x").unwrap();
        let link = |at: &str, to: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link("a/ok", "file");
        link("a/b/up_ok", "../file");
        link("a/out", "../../x");
        link("a/abs", "/etc/passwd");
        link("a/b/hop", "..");
        link("a/chain_out", "b/hop/../../x");
        link("a/chain_ok", "b/hop/file");
        link("a/dangling", "nothing/here");
        link("a/loop1", "loop2");
        link("a/loop2", "loop1");
        let staging = Dir::open(&root).unwrap();
        let kernel = |rel: &str| {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(
                &staging,
                rel,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            ) {
                Ok(_) | Err(Errno::NOENT) => Some(false),
                Err(Errno::NOSYS) => None, // a build root under seccomp: nothing to compare with
                Err(_) => Some(true),
            }
        };
        for (rel, leaves) in [
            ("a/ok", false),
            ("a/b/up_ok", false),
            ("a/out", true),
            ("a/abs", true),
            ("a/chain_out", true),
            ("a/chain_ok", false),
            ("a/dangling", false),
            ("a/loop1", true),
        ] {
            assert_eq!(escapes_walking(&staging, Path::new(rel)), leaves, "{rel}");
            if let Some(kernel) = kernel(rel) {
                assert_eq!(kernel, leaves, "the kernel on {rel}");
            }
        }
    }

    #[test]
    fn release_paths_strip_top_and_refuse_escapes() {
        let mut top = None;
        assert_eq!(
            release_path(Path::new("confluent-ksqldb-0.29.0/"), &mut top).unwrap(),
            None
        );
        assert_eq!(
            release_path(Path::new("confluent-ksqldb-0.29.0/bin/ksql"), &mut top).unwrap(),
            Some(PathBuf::from("bin/ksql"))
        );
        assert_eq!(
            release_path(Path::new("./confluent-ksqldb-0.29.0/./etc"), &mut top).unwrap(),
            Some(PathBuf::from("etc"))
        );
        for bad in ["/etc/passwd", "confluent-ksqldb-0.29.0/../x", "other/bin"] {
            let err = release_path(Path::new(bad), &mut top).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn link_targets_resolve_lexically() {
        let l = Path::new("share/java/ksqldb/a.jar");
        assert_eq!(
            resolve_link(l, Path::new("../b/c.jar")),
            Some(PathBuf::from("share/java/b/c.jar"))
        );
        assert_eq!(
            resolve_link(l, Path::new("../../../x")),
            Some(PathBuf::from("x"))
        );
        assert_eq!(resolve_link(l, Path::new("../../../../x")), None);
        assert_eq!(resolve_link(l, Path::new("/etc/passwd")), None);
    }

    /// A tar stream with `(path, type, mode, data or link target)` entries.
    fn tar_of(entries: &[(&str, EntryType, u32, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            if matches!(kind, EntryType::Symlink | EntryType::Link) {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// What is on disk under `root`, as the tree would record it.
    fn on_disk(root: &Path, dir: &Path, out: &mut Tree) {
        for e in fs::read_dir(root.join(dir)).unwrap() {
            let rel = dir.join(e.unwrap().file_name());
            let p = root.join(&rel);
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o7777;
            let entry = if m.is_dir() {
                on_disk(root, &rel, out);
                Entry {
                    kind: Kind::Dir,
                    mode,
                }
            } else if m.file_type().is_symlink() {
                let target = fs::read_link(&p).unwrap().into_os_string().into_vec();
                Entry {
                    kind: Kind::Symlink { target },
                    mode: 0,
                }
            } else {
                let bytes = fs::read(&p).unwrap();
                let kind = Kind::File {
                    size: bytes.len() as u64,
                    sha256: Sha256::digest(&bytes).into(),
                };
                Entry { kind, mode }
            };
            out.record(&rel, entry);
        }
    }

    #[test]
    fn the_recorded_tree_is_what_was_written() {
        use EntryType::*;
        let tar = tar_of(&[
            ("top/", Directory, 0o755, b""),
            ("top/bin/", Directory, 0o700, b""),
            ("top/bin/ksql-server-start", Regular, 0o777, b"#!/bin/sh\n"),
            // No directory entries: made on the way, recorded too.
            (
                "top/share/java/ksqldb/a.jar",
                Regular,
                0o644,
                &[1u8; 300_000],
            ),
            (
                "top/share/java/ksqldb/b.jar",
                Link,
                0,
                b"top/share/java/ksqldb/a.jar",
            ),
            ("top/bin/ksql", Symlink, 0o777, b"ksql-server-start"),
            // A later entry replaces an earlier one, a directory with its contents.
            ("top/etc/x/y", Regular, 0o644, b"gone"),
            ("top/etc/x", Regular, 0o600, b"replaced"),
            (
                "top/bin/ksql-server-start",
                Regular,
                0o755,
                b"#!/bin/sh\nexec java\n",
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let stats = extract_entries(&tar[..], &Dir::open(dir.path()).unwrap()).unwrap();
        let mut disk = Tree::default();
        on_disk(dir.path(), Path::new(""), &mut disk);
        assert_eq!(stats.tree.to_text(), disk.to_text());
        let start = stats.tree.get(Path::new("bin/ksql-server-start")).unwrap();
        let want: [u8; 32] = Sha256::digest(b"#!/bin/sh\nexec java\n").into();
        assert!(matches!(start.kind, Kind::File { size: 20, sha256 } if sha256 == want));
        // Never group- or world-writable, whatever the archive says.
        assert_eq!(start.mode & 0o022, 0);
        assert_eq!(
            stats.tree.get(Path::new("share/java/ksqldb/b.jar")),
            stats.tree.get(Path::new("share/java/ksqldb/a.jar"))
        );
        assert!(!stats.tree.contains(Path::new("etc/x/y")));
        assert_eq!(stats.tree.len(), 10, "{}", stats.tree.to_text());
    }

    #[test]
    fn limit_allows_exact_and_stops_past() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ok = Limit {
            inner: &b"abcd"[..],
            left: 4,
            exceeded: flag.clone(),
        };
        let mut v = Vec::new();
        ok.read_to_end(&mut v).unwrap();
        assert_eq!(v, b"abcd");
        let mut bad = Limit {
            inner: &b"abcde"[..],
            left: 4,
            exceeded: flag.clone(),
        };
        assert!(bad.read_to_end(&mut Vec::new()).is_err());
        assert!(flag.load(Ordering::Relaxed));
    }
}
