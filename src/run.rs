//! `ksql-msk run`: phases 1–5 behind [`prepare`], then phase 6, [`crate::supervise`].

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Settings};
use crate::discovery::{self, Discovered};
use crate::exit::{fail, ExitCode};
use crate::install::{self, Installed};
use crate::journal::Sink;
use crate::layout;
use crate::lock;
use crate::notify::Notifier;
use crate::progress::{Progress, Quiet};
use crate::properties;
use crate::properties::Configured;
use crate::supervise::{Signals, Supervisor};

/// Everything phases 1–5 produce and the supervisor needs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub settings: Settings,
    pub discovered: Discovered,
    pub installed: Installed,
    pub configured: Configured,
}

impl Prepared {
    /// The ksqlDB version of the active release.
    pub fn version(&self) -> String {
        self.installed.version.clone()
    }

    /// The active release (`<state_dir>/releases/<version>`).
    pub fn release_dir(&self) -> &Path {
        &self.installed.release_dir
    }

    /// `<release_dir>/etc/ksqldb/ksql-server.properties`.
    pub fn properties_path(&self) -> &Path {
        &self.configured.path
    }
}

/// Phases 1–5: load the config, discover the brokers, install the release and render
/// its properties. Runs at start, on every reload and for `ksql-msk install`. Phases 3–5
/// hold the state directory's lock, so an `install` and a `run` never interleave.
pub async fn prepare(config_path: &Path, progress: &dyn Progress) -> Result<Prepared> {
    progress.phase("loading configuration");
    let settings = config::load(config_path)?;
    progress.phase("discovering the cluster's IAM brokers");
    let discovered = discovery::discover(&settings, progress).await?;
    let managed = properties::managed(&settings, &discovered).await?;
    progress.phase("waiting for the state directory lock");
    let _lock = lock::acquire(&settings.agent.state_dir, settings.agent.lock_timeout).await?;
    progress.phase(&format!("installing ksqlDB {}", settings.ksqldb.version));
    let installed = install::install_release(&settings, progress, &managed).await?;
    progress.phase(&format!(
        "rendering {} of ksqlDB {}",
        layout::PROPERTIES,
        installed.version
    ));
    let configured = properties::render_for(&settings, &installed.release_dir, &managed, false)?;
    Ok(Prepared {
        settings,
        discovered,
        installed,
        configured,
    })
}

/// `ksql-msk install --dry-run`: what phases 3–5 would do, writing nothing.
pub async fn dry_run(config_path: &Path) -> Result<()> {
    let settings = config::load(config_path)?;
    let discovered = discovery::discover(&settings, &Quiet).await?;
    println!("brokers: {}", discovered.brokers.raw);
    for line in install::plan(&settings)? {
        println!("{line}");
    }
    let release = settings.releases_dir().join(&settings.ksqldb.version);
    if release.join(layout::MANIFEST).exists() {
        let configured = properties::configure(&settings, &discovered, &release, true).await?;
        if configured.changed {
            print!("{}", configured.diff);
        } else {
            println!("{}: up to date", configured.path.display());
        }
    } else {
        println!(
            "{} would be rendered once the release is installed",
            layout::PROPERTIES
        );
    }
    Ok(())
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
