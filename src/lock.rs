//! One agent at a time per state directory: `install` and `run` take an exclusive
//! `flock` on `<state_dir>/.lock` and hold it while they change the state directory.
//!
//! flock, not a pid file: the kernel drops the lock when the process dies (even by
//! SIGKILL), so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::exit::{fail, ExitCode};

pub const LOCK_FILE: &str = ".lock";

/// Held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    pub path: PathBuf,
}

/// Try once; `Ok(false)` when another process holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        Some(libc::EINTR) => Ok(false),
        _ => Err(err),
    }
}

/// The state directory holds the rendered properties (credentials may be in them): mode
/// 0750, whatever the umask. One made world-accessible by hand is tightened.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("reading state directory {}", dir.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    // SAFETY: geteuid cannot fail.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    if mode & !STATE_DIR_MODE != 0 && ours {
        let tightened = mode & STATE_DIR_MODE;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(tightened))
            .with_context(|| format!("chmod {:o} {}", tightened, dir.display()))?;
        tracing::info!(
            "{}: mode {mode:o} let others in; changed to {tightened:o}",
            dir.display()
        );
    }
    Ok(())
}

pub const STATE_DIR_MODE: u32 = 0o750;

/// Take the state directory's lock, waiting up to `timeout` for another agent to
/// release it (logged once). Times out with EX_TEMPFAIL (75).
pub async fn acquire(state_dir: &Path, timeout: Duration) -> Result<StateLock> {
    create_private_dir(state_dir)?;
    let path = state_dir.join(LOCK_FILE);
    // The lock file's content is never written: it only carries the lock.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
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
            return Ok(StateLock { _file: file, path });
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
}
