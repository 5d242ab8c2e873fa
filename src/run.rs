//! `ksql-msk run`: phases 1–5 behind [`prepare`], then phase 6, [`crate::supervise`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Settings};
use crate::discovery::{self, Discovered};
use crate::exit::{fail, ExitCode};
use crate::journal::Sink;
use crate::layout;
use crate::notify::Notifier;
use crate::progress::Progress;
use crate::properties;
use crate::supervise::{Signals, Supervisor};

/// Everything phases 1–5 produce and the supervisor needs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub settings: Settings,
    pub discovered: Discovered,
    /// The active release, symlinks resolved (`<state_dir>/releases/<version>`).
    pub release_dir: PathBuf,
    /// `<release_dir>/etc/ksqldb/ksql-server.properties`.
    pub properties_path: PathBuf,
    /// Whether this run rewrote the properties file.
    pub changed: bool,
}

impl Prepared {
    /// The ksqlDB version of the active release: the release directory's name when it
    /// is a version, else the configured one.
    pub fn version(&self) -> String {
        self.release_dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.split('.').count() >= 3 && n.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_string)
            .unwrap_or_else(|| self.settings.ksqldb.version.clone())
    }
}

/// Phases 1–5: load the config, discover the brokers, install the release and render
/// its properties. Runs at start and again on every reload.
pub async fn prepare(config_path: &Path, progress: &dyn Progress) -> Result<Prepared> {
    progress.phase("loading configuration");
    let settings = config::load(config_path)?;
    progress.phase("discovering the cluster's IAM brokers (waiting for the cluster if needed)");
    let discovered = discovery::discover(&settings, progress).await?;
    // phases 3–5: install_release + configure are called here once merged
    let current = settings.current_link();
    let release_dir = match std::fs::canonicalize(&current) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                ExitCode::Unavailable,
                format!(
                    "no release installed: {} does not exist (run `ksql-msk install`)",
                    current.display()
                ),
            ))
        }
        Err(e) => {
            return Err(fail(
                ExitCode::Unavailable,
                format!("no release installed: {}: {e}", current.display()),
            ))
        }
    };
    progress.phase(&format!(
        "rendering {} of ksqlDB {}",
        layout::PROPERTIES,
        settings.ksqldb.version
    ));
    let configured = properties::configure(&settings, &discovered, &release_dir, false).await?;
    Ok(Prepared {
        settings,
        discovered,
        release_dir,
        properties_path: configured.path,
        changed: configured.changed,
    })
}

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

/// Signal streams the agent handles, registered once.
pub(crate) fn sig(kind: SignalKind, name: &str) -> Result<tokio::signal::unix::Signal> {
    signal(kind).map_err(|e| fail(ExitCode::Software, format!("cannot handle {name}: {e}")))
}
