//! `ksql-msk metastore restore FILE`: restore ksqlDB's command topic from a backup,
//! through the running agent (src/service/supervise/restore.rs does the work: ksqlDB
//! stopped, the release's own `bin/ksql-restore-command-topic` run as the service user
//! with the rendered properties, the live backup files set aside, ksqlDB started again).
//!
//! This side runs as root: it checks FILE (every line a command-topic record, as
//! `metastore backup` writes and ksqlDB's restore tool reads), takes the restore lock,
//! puts the checked copy where the agent reads it (`<state_dir>/restore/backup`, the
//! state directory owner's, 0640) and asks the agent over the control socket.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config;
use crate::exit::{fail, ExitCode};
use crate::host::Dir;
use crate::ksqldb::metastore;
use crate::service::control;

/// The directory under the state directory the agent takes the backup from.
pub const DIR: &str = "restore";
/// The checked copy of FILE in it.
pub const FILE: &str = "backup";
/// Held (flock) by the one restore that runs.
pub const LOCK: &str = "restore.lock";

/// `ksql-msk metastore restore FILE [--skip-incompatible-commands]`.
pub fn restore(config_path: &Path, file: &Path, skip_incompatible: bool) -> Result<String> {
    if !rustix::process::geteuid().is_root() {
        return Err(fail(
            ExitCode::NoPerm,
            "ksql-msk metastore restore must run as root: it stops ksqlDB and replaces its command topic",
        ));
    }
    let settings = config::load(config_path)?;
    let bytes = read_backup(file)?;
    // Adopted: what root makes under the service user's directory is that user's.
    let state_dir = settings.agent.state_dir.as_path();
    let state = crate::host::adopt_state_dir(Dir::open(state_dir)?, &[state_dir])?;
    let _lock = lock(&state)?;
    let (uid, gid) = {
        use std::os::unix::fs::MetadataExt;
        let meta = state.metadata()?;
        (meta.uid(), meta.gid())
    };
    state.create_dir(DIR, 0o750)?;
    let dir = state.open_dir(DIR)?;
    // The service user runs the restore tool: it must be able to enter restore/, also
    // one an earlier version left as root's own (what is in it is root's making).
    dir.hand_over_tree()?;
    // The service user (the state directory's owner) runs the restore tool on it.
    dir.write_atomic_owned(FILE, &bytes, 0o640, (uid, gid))?;
    match control::restore_if_running(skip_incompatible)? {
        Some(outcome) => Ok(outcome),
        None => Err(fail(
            ExitCode::Unavailable,
            format!(
                "the service is not running (no agent on {}): a restore goes through it; start it (systemctl start ksql-msk) and run this again",
                control::socket_path().display()
            ),
        )),
    }
}

/// FILE, checked to be a command-topic backup: a regular file (opened without following
/// a link at its name, non-blocking), at most [`metastore::MAX_COPY_BYTES`], at least
/// one record, every line a record (65 otherwise, naming the line).
pub fn read_backup(file: &Path) -> Result<Vec<u8>> {
    let not_backup = |why: String| fail(ExitCode::Data, format!("{}: {why}", file.display()));
    let (dir, name) = Dir::parent_of(file)?;
    let f = dir
        .open_file(&name)?
        .ok_or_else(|| fail(ExitCode::Data, format!("{}: no such file", file.display())))?;
    let mut bytes = Vec::new();
    f.take(metastore::MAX_COPY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    if bytes.len() as u64 > metastore::MAX_COPY_BYTES {
        return Err(not_backup(format!(
            "larger than {} MiB: not a command-topic backup",
            metastore::MAX_COPY_BYTES >> 20
        )));
    }
    match metastore::check_records(&bytes) {
        Ok(0) => Err(not_backup("empty: not a command-topic backup".into())),
        Ok(_) if !bytes.ends_with(b"\n") => Err(not_backup(
            "its last line is cut short: not a whole command-topic backup".into(),
        )),
        Ok(_) => Ok(bytes),
        Err(why) => Err(not_backup(format!("{why}: not a command-topic backup"))),
    }
}

/// The restore lock, held until dropped; 75 while another restore holds it.
fn lock(state: &Dir) -> Result<std::fs::File> {
    use rustix::fs::{flock, FlockOperation};
    let file = state.open_or_create(LOCK, 0o600)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(fail(
            ExitCode::Temporary,
            format!(
                "another ksql-msk metastore restore is running (it holds {}); wait for it to finish",
                state.path().join(LOCK).display()
            ),
        )),
        Err(e) => Err(std::io::Error::from(e))
            .with_context(|| format!("locking {}", state.path().join(LOCK).display())),
    }
}
