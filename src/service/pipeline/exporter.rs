//! Phase 3 for the Prometheus JMX exporter jar: when `metrics.prometheus_port` is set,
//! the jar in `<state_dir>/exporter/` is used if it hashes to its pin (or to what was
//! recorded on first use); otherwise it is fetched, checked as the IAM auth jar is, and
//! put in place. Where it lives and how it is loaded is [`crate::ksqldb::exporter`]'s.

use anyhow::Result;

use super::jar::{self, PinnedJar};
use crate::config::Settings;
use crate::ksqldb::exporter::{self, Exporter};
use crate::progress::Progress;
use crate::release::fetch::Fetcher;
use crate::release::verify::TrustStore;

/// The exporter ready to load, or `None` when `metrics.prometheus_port` is 0. The
/// caller holds the state directory's lock.
pub async fn ensure(
    fetcher: &Fetcher,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Option<Exporter>> {
    let Some(port) = settings.metrics.prometheus_port else {
        return Ok(None);
    };
    exporter::check_rules(&settings.metrics.prometheus_rules)?;
    let mut trust = TrustStore::load(&settings.agent.state_dir)?;
    let expected = exporter::expected(settings, &trust);
    if let Some(e) = &expected {
        if let Some(sha) = exporter::installed(settings, e)? {
            return Ok(Some(Exporter::new(settings, port, sha)));
        }
    }
    let url = &settings.metrics.exporter_url;
    progress.phase(&format!(
        "fetching the Prometheus JMX exporter {}",
        settings.metrics.exporter_version
    ));
    let pinned = PinnedJar {
        url,
        what: "Prometheus JMX exporter jar",
        pin_key: "metrics.exporter_sha256",
        expected,
    };
    let checked = jar::fetch_pinned(fetcher, &pinned, progress).await?;
    let path = exporter::install(settings, &checked.download.path)?;
    tracing::info!(
        "Prometheus JMX exporter {} in {} (SHA-256 {})",
        settings.metrics.exporter_version,
        path.display(),
        checked.sha256
    );
    if checked.first_use {
        trust.record_exporter_first_use(&url.redacted(), &checked.sha256.to_hex())?;
    }
    fetcher.forget(std::slice::from_ref(url));
    Ok(Some(Exporter::new(settings, port, checked.sha256)))
}

/// What fetching the exporter downloads (for the pipeline's cache bookkeeping).
pub fn downloads(settings: &Settings) -> Vec<crate::config::ConfigUrl> {
    match settings.metrics.prometheus_port {
        Some(_) => {
            let url = &settings.metrics.exporter_url;
            vec![url.clone(), url.with_suffix(".sha256")]
        }
        None => Vec::new(),
    }
}

/// What [`ensure`] would do, for `install --dry-run`; `None` when the exporter is off.
pub fn describe(settings: &Settings, trust: &TrustStore) -> Option<String> {
    settings.metrics.prometheus_port?;
    let path = exporter::jar_path(settings);
    let url = &settings.metrics.exporter_url;
    Some(match exporter::expected(settings, trust) {
        Some(e) if matches!(exporter::installed(settings, &e), Ok(Some(_))) => format!(
            "Prometheus JMX exporter {} is installed in {}",
            settings.metrics.exporter_version,
            path.display()
        ),
        Some(_) => format!("would download {url} into {}", path.display()),
        None => format!(
            "would download {url} and {url}.sha256 (trust on first use) into {}",
            path.display()
        ),
    })
}
