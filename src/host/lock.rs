//! One agent at a time per state directory: `install` and `run` take an exclusive
//! `flock` on `<state_dir>/.lock` and hold it while they change the state directory.
//!
//! flock, not a pid file: the kernel drops the lock when the process dies (even by
//! SIGKILL), so a crash never leaves a stale lock behind.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::exit::{fail, ExitCode};
use crate::host::{self, Dir, Kind};

pub const LOCK_FILE: &str = ".lock";

/// Held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Try once; `Ok(false)` when another process holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    use rustix::io::Errno;
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::WOULDBLOCK || e == Errno::INTR => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The state directory holds the rendered properties (credentials may be in them), and
/// the `ksql` user can write everything in it while root may run `install` over it
/// (DESIGN.md, threat model). So it must be the agent's own: a new one is made mode 0750
/// exactly, whatever the umask; an existing one is refused (78) when it is `/` or a
/// system directory, a symlink, sticky or world-writable, or not empty and owned by
/// someone else. An existing directory is never chmodded: only warned about when
/// others may read it. Owners accepted: the effective uid, and when running as root
/// also the service user (`ksql`, to whom systemd's `StateDirectory=` gives it).
#[cfg(test)]
pub fn create_private_dir(dir: &Path) -> Result<()> {
    open_state_dir(dir).map(drop)
}

pub const STATE_DIR_MODE: u32 = 0o750;

/// The user the packaged unit runs as (`User=ksql`, packaging/sysusers.conf).
pub const SERVICE_USER: &str = "ksql";

/// Directories that are never anyone's state directory: an agent that took one over
/// would chmod or fill a part of the system.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/tmp",
];

fn refuse(dir: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        ExitCode::Config,
        format!(
            "agent.state_dir: {} {why}; ksql-msk needs a directory of its own (such as /var/lib/ksql-msk)",
            dir.display()
        ),
    )
}

/// `/usr/lib`, `/lib64`, ...: the library directories, whatever their suffix.
fn is_system_dir(path: &Path) -> bool {
    let s = path.as_os_str().to_string_lossy();
    let s = s.trim_end_matches('/');
    let s = if s.is_empty() { "/" } else { s };
    SYSTEM_DIRS.contains(&s)
        || ["/lib", "/usr/lib"].iter().any(|p| {
            s.strip_prefix(p)
                .is_some_and(|rest| ["", "32", "64", "x32", "exec"].contains(&rest))
        })
}

/// `a/./b/../c` → `a/c`, without touching the file system (the path may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The user database (NSS) has no kept library here (rustix leaves it to libc), so this
/// one lookup stays a libc call.
fn uid_of(user: &str) -> Option<u32> {
    let name = std::ffi::CString::new(user).ok()?;
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r with a valid name, an out-struct and a buffer we own.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    // SAFETY: on success with a result, getpwnam_r filled `pwd`.
    (rc == 0 && !found.is_null()).then(|| unsafe { pwd.assume_init() }.pw_uid)
}

/// Check (or create) the state directory and open it as a handle that later opens
/// go through (the lock file, and whatever the caller adopts).
pub fn open_state_dir(dir: &Path) -> Result<Dir> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let lexical = normalize(dir);
    if is_system_dir(&lexical) {
        return Err(refuse(dir, "is a system directory"));
    }
    match std::fs::symlink_metadata(&lexical) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = host::parent_dir(&lexical);
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating state directory {}", dir.display()))?;
            let name = lexical
                .file_name()
                .with_context(|| format!("agent.state_dir: {} has no name", dir.display()))?;
            // Exactly 0750 on the directory this call made, and on nothing else.
            if Dir::open_trusted(parent)?.create_dir(name, STATE_DIR_MODE)? {
                return host::adopt_state_dir(Dir::open(&lexical)?, &[dir, &lexical]);
            }
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading state directory {}", dir.display()))
        }
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(&lexical)
        .with_context(|| format!("reading state directory {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(dir, "is a symlink"));
    }
    if !meta.is_dir() {
        return Err(refuse(dir, "is not a directory"));
    }
    let canonical = std::fs::canonicalize(&lexical)
        .with_context(|| format!("reading state directory {}", dir.display()))?;
    if is_system_dir(&canonical) {
        return Err(refuse(
            dir,
            format!("is the system directory {}", canonical.display()),
        ));
    }
    let handle = Dir::open(&lexical).map_err(|e| refuse(dir, crate::exit::one_line(&e)))?;
    // From here on, what the handle is, not what the path now names.
    let meta = handle.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & rustix::fs::Mode::SVTX.bits() != 0 {
        return Err(refuse(
            dir,
            format!("has the sticky bit (mode {mode:04o}): a shared directory like /tmp"),
        ));
    }
    if mode & 0o002 != 0 {
        return Err(refuse(dir, format!("is world-writable (mode {mode:04o})")));
    }
    let euid = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    let service_user = (euid == 0).then(|| uid_of(SERVICE_USER)).flatten();
    if owner != euid && Some(owner) != service_user && !handle.entries()?.is_empty() {
        return Err(refuse(
            dir,
            format!("is owned by uid {owner} and not empty (running as uid {euid})"),
        ));
    }
    if mode & 0o007 != 0 {
        tracing::warn!(
            "{}: mode {mode:04o} lets others in; ksql-msk does not change a directory it did not create: \
             chmod o-rwx {} to keep the releases and properties private",
            dir.display(),
            dir.display()
        );
    }
    // Root over the service user's directory (image baking): what it makes is theirs.
    host::adopt_state_dir(handle, &[dir, &lexical])
}

/// Open (or create) the lock file through the state directory's handle, never
/// following a link: a symlink (or FIFO, socket, hard link) planted at `.lock` is
/// removed and replaced by a new, empty file, so root never creates or opens a file
/// elsewhere.
fn open_lock_file(dir: &Dir) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.path().join(LOCK_FILE);
    for _ in 0..3 {
        match dir.kind(LOCK_FILE)? {
            None | Some(Kind::File) => {}
            Some(Kind::Dir) => {
                return Err(fail(
                    ExitCode::Config,
                    format!(
                        "{} is a directory, not ksql-msk's lock file: remove it",
                        path.display()
                    ),
                ))
            }
            Some(kind) => {
                tracing::warn!(
                    "{} was {}, not ksql-msk's lock file: replaced it with a new one",
                    path.display(),
                    if kind == Kind::Symlink {
                        "a symlink"
                    } else {
                        "a special file"
                    }
                );
                dir.remove_file(LOCK_FILE)?;
                continue;
            }
        }
        // The lock file's content is never written: it only carries the lock.
        let file = match dir.open_or_create(LOCK_FILE, 0o600) {
            Ok(f) => f,
            // Swapped for something else since we looked: look again.
            Err(_) if dir.kind(LOCK_FILE)? != Some(Kind::File) => continue,
            Err(e) => return Err(e),
        };
        let links = file
            .metadata()
            .with_context(|| format!("reading lock file {}", path.display()))?
            .nlink();
        if links > 1 {
            tracing::warn!(
                "{} was a hard link to another file, not ksql-msk's lock file: replaced it with a new one",
                path.display()
            );
            dir.remove_file(LOCK_FILE)?;
            continue;
        }
        return Ok(file);
    }
    Err(fail(
        ExitCode::Temporary,
        format!(
            "{} keeps being replaced while ksql-msk opens it",
            path.display()
        ),
    ))
}

/// Take the state directory's lock, waiting up to `timeout` for another agent to
/// release it (logged once). Times out with EX_TEMPFAIL (75).
pub async fn acquire(state_dir: &Path, timeout: Duration) -> Result<StateLock> {
    let dir = open_state_dir(state_dir)?;
    let path = state_dir.join(LOCK_FILE);
    let file = open_lock_file(&dir)?;
    let start = Instant::now();
    let mut logged = false;
    loop {
        if try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
            if logged {
                tracing::info!(
                    "got the lock on {} after {:.1}s",
                    path.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            return Ok(StateLock { _file: file });
        }
        if !logged {
            tracing::info!(
                "another ksql-msk holds {}; waiting up to {} for it to finish",
                path.display(),
                humantime::format_duration(timeout)
            );
            logged = true;
        }
        if start.elapsed() >= timeout {
            return Err(fail(
                ExitCode::Temporary,
                format!(
                    "another ksql-msk still holds {} after {} (agent.lock_timeout)",
                    path.display(),
                    humantime::format_duration(timeout)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_times_out_then_gets_it_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), Duration::from_secs(1)).await.unwrap();
        let err = acquire(dir.path(), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Temporary);
        assert!(err.to_string().contains(".lock"), "{err}");
        drop(first);
        acquire(dir.path(), Duration::from_millis(300))
            .await
            .unwrap();
    }

    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn refused(dir: &Path, why: &str) {
        let err = create_private_dir(dir).unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Config, "{err:#}");
        let msg = crate::exit::one_line(&err);
        assert!(
            msg.starts_with("agent.state_dir: ") && msg.contains(why),
            "{msg}"
        );
    }

    #[test]
    fn system_directories_are_known() {
        for d in [
            "/",
            "/usr",
            "/usr/",
            "/etc",
            "/var/lib",
            "/tmp",
            "/lib",
            "/lib64",
            "/usr/lib64",
            "/opt",
        ] {
            // Only classified here: tests/it/planted.rs runs `/` for real, guarded.
            assert!(is_system_dir(Path::new(d)), "{d}");
        }
        for d in [
            "/var/lib/ksql-msk",
            "/library",
            "/usr/lib/ksql",
            "/opt/ksql",
            "/srv/ksql",
        ] {
            assert!(!is_system_dir(Path::new(d)), "{d}");
        }
        assert!(is_system_dir(&normalize(Path::new("/var/lib/ksql-msk/.."))));
    }

    #[test]
    fn shared_or_linked_state_dirs_are_refused_and_left_as_they_were() {
        let root = tempfile::tempdir().unwrap();
        for (name, m, why) in [
            ("sticky", 0o1777, "sticky"),
            ("open", 0o777, "world-writable"),
        ] {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
            refused(&dir, why);
            assert_eq!(mode(&dir), m);
        }
        let link = root.path().join("link");
        symlink(root.path().join("open"), &link).unwrap();
        refused(&link, "is a symlink");
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        refused(&file, "not a directory");
    }

    #[test]
    fn an_existing_dir_is_never_chmodded_and_a_new_one_is_0750() {
        let root = tempfile::tempdir().unwrap();
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o755);
        let new = root.path().join("a/b/state");
        create_private_dir(&new).unwrap();
        assert_eq!(mode(&new), STATE_DIR_MODE);
        create_private_dir(&new).unwrap();
    }

    #[test]
    fn a_non_empty_dir_of_another_uid_is_refused_an_empty_one_taken() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: chown needs root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(54_321), None).unwrap();
        create_private_dir(&dir).unwrap();
        std::fs::write(dir.join("x"), "").unwrap();
        refused(&dir, "owned by uid 54321 and not empty");
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 54_321);
    }

    #[tokio::test]
    async fn links_and_special_files_at_the_lock_are_replaced_never_followed() {
        let state = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let lock = state.path().join(LOCK_FILE);
        let missing = outside.path().join("created");
        symlink(&missing, &lock).unwrap();
        drop(acquire(state.path(), Duration::from_secs(1)).await.unwrap());
        assert!(!missing.exists(), "the lock's symlink was followed");
        assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
        // A hard link to a file elsewhere, and a FIFO (which would block an open).
        let precious = outside.path().join("precious");
        std::fs::write(&precious, "keep").unwrap();
        std::fs::remove_file(&lock).unwrap();
        std::fs::hard_link(&precious, &lock).unwrap();
        drop(acquire(state.path(), Duration::from_secs(1)).await.unwrap());
        assert_eq!(std::fs::metadata(&precious).unwrap().nlink(), 1);
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        std::fs::remove_file(&lock).unwrap();
        let c = std::ffi::CString::new(lock.as_os_str().to_string_lossy().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        drop(acquire(state.path(), Duration::from_secs(1)).await.unwrap());
        assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
    }
}
