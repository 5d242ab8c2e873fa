//! Phases 1–5 of DESIGN.md as one pipeline, readable top to bottom:
//! config → discover → managed keys → plan → stage → complete → activate → exporter →
//! render.
//!
//! `ksql-msk run` and every reload call [`prepare`]; `ksql-msk install` calls it and
//! exits; `install --dry-run` calls [`dry_run`], which takes the same steps up to the
//! plan and renders through the same code without writing.
//!
//! Host invariants: `current` always points at a complete, verified release (or does
//! not exist yet); a new release appears only by renaming a fully written and synced
//! staging directory; any failure removes staging and leaves `current` alone.

mod activate;
mod complete;
mod exporter;
mod jar;
mod plan;
mod stage;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{self, Settings};
use crate::exit::{exit_code_of, ExitCode};
use crate::host::layout;
use crate::host::lock;
use crate::ksqldb::log4j::{self, Levels, Log4jConfig};
use crate::ksqldb::properties::{self, Configured, Managed};
use crate::msk::discovery::{self, Discovered};
use crate::progress::{Progress, Quiet};
use crate::release::fetch::Fetcher;
use crate::release::manifest::Manifest;
use crate::release::verify::TrustStore;
use crate::service::status::{Span, Time};
use crate::service::upgrade;

pub use activate::current_version;
pub use plan::Plan;

/// Everything phases 1–5 produce and the supervisor needs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub settings: Settings,
    pub discovered: Discovered,
    pub installed: Installed,
    pub configured: Configured,
    /// The log4j configuration ksqlDB runs with; `None`: the release has none.
    pub log4j: Option<Log4jConfig>,
    /// The Prometheus JMX exporter ksqlDB loads (`metrics.prometheus_port`), its jar
    /// checked.
    pub exporter: Option<crate::ksqldb::exporter::Exporter>,
    /// When discovery and install (phases 3–5) ran and how long they took.
    pub timings: Timings,
    pub upgrade: Upgrade,
}

/// [`Prepared::timings`] (for `ksql-msk status` and the metrics textfile).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub discovery: Span,
    pub install: Span,
}

/// What the upgrade record (src/service/upgrade.rs) made of the configured version.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The record as it stands after this run of phases 1–5.
    pub record: upgrade::Record,
    /// `ksqldb.version` as configured (what was installed instead, if it is held back,
    /// is [`Installed::version`]).
    pub configured: String,
    /// The configured version failed its upgrade: the release it was rolled back to
    /// was installed instead.
    pub held_back: Option<upgrade::Failed>,
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

/// The active release after phases 3–4 and the jar half of 5.
#[derive(Debug, Clone)]
pub struct Installed {
    pub release_dir: PathBuf,
    pub version: String,
    /// The active release changed: `current` was switched, or the release's content
    /// (its jar) was replaced. A supervisor restarts ksqlDB when this is true.
    pub activated: bool,
    pub manifest: Manifest,
    /// The version `current` pointed to before, if this run switched it from another.
    pub replaced: Option<String>,
}

/// Phases 1–5: load the config, discover the brokers, install the release and render
/// its properties. Runs at start, on every reload and for `ksql-msk install`. Phases 3–5
/// hold the state directory's lock, so an `install` and a `run` never interleave.
pub async fn prepare(config_path: &Path, progress: &dyn Progress) -> Result<Prepared> {
    progress.phase("loading configuration");
    let (settings, upgrade) = choose_version(config_path, config::load(config_path)?)?;
    progress.phase("discovering the cluster's IAM brokers");
    let (at, started) = (Time::now(), std::time::Instant::now());
    let discovered = discovery::discover(&settings, progress).await?;
    let discovery = Span::since(at, started);
    prepare_with(settings, upgrade, discovered, discovery, progress).await
}

/// Phases 1 and 3–5 with brokers already discovered: what the supervisor's automatic
/// rollback runs after writing the upgrade record (no network: the release it goes
/// back to is installed, and the MSK API may be what is failing).
pub async fn prepare_local(
    config_path: &Path,
    discovered: Discovered,
    discovery: Span,
    progress: &dyn Progress,
) -> Result<Prepared> {
    progress.phase("loading configuration");
    let (settings, upgrade) = choose_version(config_path, config::load(config_path)?)?;
    prepare_with(settings, upgrade, discovered, discovery, progress).await
}

/// Which version phases 3–5 install: the configured one, or, while the upgrade record
/// says that it failed, the release it was rolled back to (if that is still installed
/// and verifies). Returns the settings to install with.
fn choose_version(config_path: &Path, settings: Settings) -> Result<(Settings, Upgrade)> {
    let state = settings.agent.state_dir.clone();
    let loaded = upgrade::load(&state);
    if let upgrade::Loaded::Garbage(why) = &loaded {
        tracing::warn!(
            "{}: not an upgrade record, ignored (it is replaced when the agent next writes it): {why}",
            upgrade::path(&state).display()
        );
    }
    let configured = settings.ksqldb.version.clone();
    let mut up = Upgrade {
        record: loaded.record(),
        configured: configured.clone(),
        held_back: None,
    };
    let forget = |up: &mut Upgrade, record: upgrade::Record| {
        if let Err(e) = upgrade::save(&state, &record) {
            tracing::warn!(
                "cannot update the upgrade record: {}",
                crate::exit::one_line(&e)
            );
        }
        up.record = record;
    };
    match upgrade::choose(&up.record, &configured) {
        upgrade::Choice::Configured => Ok((settings, up)),
        upgrade::Choice::Cleared(record) => {
            if let Some(f) = &up.record.failed {
                tracing::info!(
                    "ksqldb.version is now {configured}: the failed upgrade to {} is forgotten",
                    f.version
                );
            }
            forget(&mut up, record);
            Ok((settings, up))
        }
        upgrade::Choice::HeldBack(failed) => {
            let back =
                config::load_with_version(config_path, &failed.back_to, &upgrade::path(&state))?;
            let trust = TrustStore::load(&state)?;
            if Plan::make(&back, &trust).installed_release().is_some() {
                tracing::warn!(
                    "ksqlDB {configured} is configured, but its upgrade failed ({}) and was rolled back: \
                     running {} instead; set another ksqldb.version to try again",
                    failed.reason,
                    failed.back_to
                );
                up.held_back = Some(failed);
                return Ok((back, up));
            }
            tracing::warn!(
                "the upgrade to {configured} failed ({}), but {}, the release it was rolled back to, \
                 is no longer installed as verified: trying {configured} again",
                failed.reason,
                failed.back_to
            );
            let good = up.record.good.clone().filter(|g| *g != failed.back_to);
            forget(&mut up, upgrade::Record { good, failed: None });
            Ok((settings, up))
        }
    }
}

/// Phases 3–5 for `settings` (the version [`choose_version`] chose).
async fn prepare_with(
    settings: Settings,
    mut upgrade: Upgrade,
    discovered: Discovered,
    discovery: Span,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let managed = properties::managed(&settings, &discovered).await?;
    progress.phase("waiting for the state directory lock");
    let _lock = lock::acquire(&settings.agent.state_dir, settings.agent.lock_timeout).await?;
    progress.phase(&format!("installing ksqlDB {}", settings.ksqldb.version));
    let (at, started) = (Time::now(), std::time::Instant::now());
    let fetcher = Fetcher::new(&settings)?;
    let installed = install(&settings, &managed, &fetcher, progress).await?;
    let exporter = healing(&fetcher, &settings, || {
        exporter::ensure(&fetcher, &settings, progress)
    })
    .await?;
    progress.phase(&format!(
        "rendering {} of ksqlDB {}",
        layout::PROPERTIES,
        installed.version
    ));
    let configured = properties::render(&installed.release_dir, &managed, false)?;
    let log4j = log4j::render(
        &installed.release_dir,
        &Levels::of(&settings),
        &installed.version,
        false,
    )?;
    crate::ksqldb::auth::configure(&settings)?;
    if upgrade.record.good.is_none() {
        // No record yet (an agent from before it): the release this run replaced is
        // the way back.
        upgrade.record.good = installed.replaced.clone();
    }
    let install = Span::since(at, started);
    Ok(Prepared {
        settings,
        discovered,
        installed,
        configured,
        log4j,
        exporter,
        timings: Timings { discovery, install },
        upgrade,
    })
}

/// The version `current` points to, if it points into `releases/` (for `check`).
pub fn current_release_version(settings: &Settings) -> Option<String> {
    activate::current_version(settings)
}

/// `ksql-msk install --dry-run`: the same steps as [`prepare`] up to the plan, then the
/// same render without writing. Prints what phases 3–5 would do.
pub async fn dry_run(config_path: &Path) -> Result<()> {
    let settings = config::load(config_path)?;
    let discovered = discovery::discover(&settings, &Quiet).await?;
    crate::outln!("brokers: {}", discovered.brokers.raw)?;
    let managed = properties::managed(&settings, &discovered).await?;
    let trust = TrustStore::load(&settings.agent.state_dir)?;
    let plan = Plan::make(&settings, &trust);
    for line in plan.describe(&settings, &trust) {
        crate::outln!("{line}")?;
    }
    if let Some(note) = activate::current_version(&settings).and_then(|from| {
        crate::ksqldb::metastore::version_change_note(&settings, &from, &settings.ksqldb.version)
    }) {
        crate::outln!("warning: {note}")?;
    }
    if let Some(line) = exporter::describe(&settings, &trust) {
        crate::outln!("{line}")?;
    }
    match plan.installed_release() {
        Some(release) => {
            let configured = properties::render(release, &managed, true)?;
            if configured.changed {
                crate::out!("{}", configured.diff)?;
            } else {
                crate::outln!("{}: up to date", configured.path.display())?;
            }
            let levels = Levels::of(&settings);
            match log4j::render(release, &levels, &settings.ksqldb.version, true)? {
                Some(c) if c.changed => crate::out!("{}", c.diff)?,
                Some(c) if c.generated => crate::outln!("{}: up to date", c.path.display())?,
                Some(c) => crate::outln!("{}: used as it is", c.path.display())?,
                None => {}
            }
        }
        None => crate::outln!(
            "{} would be rendered once the release is installed",
            layout::PROPERTIES
        )?,
    }
    Ok(())
}

/// Phases 3–4 and the jar half of 5, acting on the [`Plan`]. The caller holds the lock.
async fn install(
    settings: &Settings,
    managed: &Managed,
    fetcher: &Fetcher,
    progress: &dyn Progress,
) -> Result<Installed> {
    activate::prepare_releases_dir(settings)?;
    // Kept across upgrades and rollbacks: one directory for every version.
    crate::ksqldb::metastore::prepare(settings)?;
    let mut trust = TrustStore::load(&settings.agent.state_dir)?;
    let version = settings.ksqldb.version.clone();
    let replaced = activate::current_version(settings).filter(|v| *v != version);
    let installed = match Plan::make(settings, &trust) {
        Plan::Installed { release, manifest } => {
            tracing::info!(
                "ksqlDB {version} is already installed and verified in {}",
                release.display()
            );
            let switched = activate::point_current(settings, &version)?;
            Installed {
                release_dir: release,
                version,
                activated: switched,
                manifest,
                replaced,
            }
        }
        Plan::JarOnly { release, manifest } => {
            progress.phase(&format!("updating the IAM auth jar of ksqlDB {version}"));
            let checked = healing(fetcher, settings, || {
                jar::fetch(fetcher, settings, &trust, progress)
            })
            .await?;
            let manifest = jar::replace(settings, &mut trust, &release, manifest, checked)?;
            activate::point_current(settings, &version)?;
            Installed {
                release_dir: release,
                version,
                activated: true,
                manifest,
                replaced,
            }
        }
        Plan::Fresh { release } => {
            progress.phase(&format!("fetching ksqlDB {version}"));
            let staged = healing(fetcher, settings, || {
                stage::stage(fetcher, settings, &trust, progress)
            })
            .await?;
            let manifest = complete::complete(&staged, settings, managed)
                .await
                .map_err(|e| forget_if_data_error(fetcher, settings, e))?;
            trust.record_first_use(
                staged
                    .first_use_signer()
                    .then_some(manifest.signer.as_str()),
                staged
                    .jar
                    .first_use
                    .then_some((manifest.jar_url.as_str(), manifest.jar_sha256.as_str())),
            )?;
            progress.phase(&format!("activating ksqlDB {version}"));
            activate::activate(settings, staged, &release)?;
            Installed {
                release_dir: release,
                version,
                activated: true,
                manifest,
                replaced,
            }
        }
    };
    // Installed: the downloads have served (a run killed before this drops them next time).
    fetcher.forget(&downloads(settings));
    Ok(installed)
}

/// Every URL the configured release downloads: what an install leaves in the cache, and
/// drops once the release is in place or when what came in failed verification.
fn downloads(settings: &Settings) -> Vec<config::ConfigUrl> {
    let k = &settings.ksqldb;
    let mut urls = vec![
        k.archive_url.clone(),
        k.signature_url.clone(),
        settings.iam_auth.jar_url.clone(),
        jar::published_hash_url(settings),
    ];
    if let config::KeySource::Url(u) = &k.key {
        urls.push(u.clone());
    }
    urls.extend(exporter::downloads(settings));
    urls
}

/// A verification failure means a download is bad: drop them all so that the next run
/// fetches afresh instead of refusing the same bytes for ever.
fn forget_if_data_error(fetcher: &Fetcher, settings: &Settings, e: anyhow::Error) -> anyhow::Error {
    if exit_code_of(&e) == ExitCode::Data {
        fetcher.forget(&downloads(settings));
    }
    e
}

/// Run `step` (which fetches and verifies); when verification refuses bytes that came,
/// whole or in part, from an earlier run's cache (a power cut tears what it was writing),
/// fetch everything whole once more before calling it a data error.
async fn healing<T, F, Fut>(fetcher: &Fetcher, settings: &Settings, step: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match step().await {
        Err(e) if exit_code_of(&e) == ExitCode::Data && fetcher.used_cache() => {
            tracing::warn!(
                "{}; what was verified came partly from the cache, which may be torn: \
                 fetching everything whole once more",
                crate::exit::one_line(&e)
            );
            fetcher.start_over(&downloads(settings));
            step()
                .await
                .map_err(|e| forget_if_data_error(fetcher, settings, e))
        }
        r => r.map_err(|e| forget_if_data_error(fetcher, settings, e)),
    }
}
