//! `ksql-msk run`: phases 1–5 ([`crate::service::pipeline::prepare`]), then phase 6
//! ([`crate::service::supervise`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::host::journal::Sink;
use crate::service::notify::Notifier;
use crate::service::pipeline::prepare;
use crate::service::supervise::{Signals, Supervisor};

/// `ksql-msk run`. `journal`: the agent logs to the journal, so ksqlDB's lines go there
/// too, natively.
pub async fn run(config_path: &Path, journal: bool) -> Result<()> {
    let notifier = Arc::new(Notifier::from_env());
    // Signals first: a stop request during a long first download must be honoured.
    let mut signals = Signals::new()?;
    let sink = Arc::new(Sink::new(journal));
    let prepared = tokio::select! {
        p = prepare(config_path, notifier.as_ref()) => p?,
        _ = signals.term.recv() => return stopped_early(&notifier),
        _ = signals.int.recv() => return stopped_early(&notifier),
    };
    release_install_memory();
    Supervisor::new(config_path, prepared, notifier, sink, signals)?
        .run()
        .await
}

/// For the daemon, called by `main` before any thread is started: one malloc arena.
/// glibc gives each thread that allocates an arena of its own (tokio's workers, the
/// blocking threads that verify and unpack), and the freed download and unpack buffers
/// stay in them, fragmented, for as long as ksqlDB is supervised. A cold `run` of a
/// 20 MB release supervised with 8.0 MiB of anonymous RSS (21.2 in all) against 2.0 for
/// a warm one (14.4), still 5.5 (18.9) with `malloc_trim` alone; with one arena as well
/// it is 2.1 (15.1), and the install's peak is lower. bench/supervise measures it (200 MB:
/// bench/SUPERVISE.md). An operator's `MALLOC_ARENA_MAX` wins.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: a malloc setting, set before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

/// Hand the memory the install phase freed back to the kernel before supervising for
/// days: `malloc_trim` releases the free pages of the arena (the main heap keeps up to
/// 1 MiB of freed memory above its top otherwise); what is still in use stays.
fn release_install_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn stopped_early(notifier: &Notifier) -> Result<()> {
    notifier.stopping("stopped before ksqlDB was started");
    tracing::info!("stop requested before ksqlDB was started");
    Ok(())
}
