//! `ksql-msk run`: phases 1–5 ([`crate::pipeline::prepare`]), then phase 6
//! ([`crate::supervise`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::journal::Sink;
use crate::notify::Notifier;
use crate::pipeline::prepare;
use crate::supervise::{Signals, Supervisor};

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
    Supervisor::new(config_path, prepared, notifier, sink, signals)?
        .run()
        .await
}

fn stopped_early(notifier: &Notifier) -> Result<()> {
    notifier.stopping("stopped before ksqlDB was started");
    tracing::info!("stop requested before ksqlDB was started");
    Ok(())
}
