//! The running agent's side: keep the [`StateDoc`] up to date as the supervisor's state
//! changes, and write it (and the metrics textfile) in the background.
//!
//! Writing never holds up supervision: the supervisor only replaces the latest
//! snapshot in a watch channel; a task writes the newest one (bursts of changes
//! coalesce), through `spawn_blocking` since it fsyncs. A failure to write is a
//! warning, at most every [`WARN_EVERY`], and the next change tries again.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use tokio::sync::watch;

use super::{
    metrics, AgentInfo, BrokersInfo, ClusterInfo, Condition, Failure, HealthInfo, JarInfo,
    KafkaDiagnosis, ReleaseInfo, Span, StateDoc, Time, SCHEMA_VERSION, STATE_FILE,
};
use crate::config::Settings;
use crate::host::failpoint::STATUS_POINT;
use crate::host::Dir;
use crate::msk::discovery::Discovered;
use crate::service::pipeline::Prepared;

/// A failure to write the state or metrics file is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(600);
/// The state file's mode: the service's group (ksql) may read it.
const STATE_MODE: u32 = 0o640;
/// The metrics textfile's mode: node_exporter runs as a user of its own.
const TEXTFILE_MODE: u32 = 0o644;
/// How long the last write at exit may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What one write puts where.
#[derive(Debug, Clone)]
struct Snapshot {
    /// Later snapshots have higher numbers: an older one is never written over a newer.
    seq: u64,
    doc: StateDoc,
    state_dir: PathBuf,
    textfile: Option<PathBuf>,
}

/// The agent's state document and its writer.
pub struct Recorder {
    doc: StateDoc,
    state_dir: PathBuf,
    textfile: Option<PathBuf>,
    /// The `ksql.service.id` in effect: names ksqlDB's backup files.
    service_id: String,
    seq: u64,
    tx: watch::Sender<Option<Snapshot>>,
}

/// The number of the last snapshot written, held while writing: the background writer
/// and [`Recorder::flush`] never interleave, and never go back in time.
static WRITTEN: Mutex<u64> = Mutex::new(0);

impl Recorder {
    /// A recorder for the agent that prepared `prepared`; the writer task starts here
    /// (call inside the runtime). Nothing is written before [`Recorder::publish`].
    pub fn new(prepared: &Prepared) -> Recorder {
        let me = std::process::id() as i32;
        let doc = StateDoc {
            schema_version: SCHEMA_VERSION,
            agent: AgentInfo {
                pid: me,
                start_ticks: super::start_ticks(me).unwrap_or(0),
                started_at: Some(Time::now()),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            ..StateDoc::default()
        };
        let (tx, rx) = watch::channel(None);
        tokio::spawn(write_loop(rx));
        let mut r = Recorder {
            doc,
            state_dir: prepared.settings.agent.state_dir.clone(),
            textfile: prepared.settings.metrics.textfile.clone(),
            service_id: crate::ksqldb::metastore::service_id(&prepared.settings),
            seq: 0,
            tx,
        };
        r.prepared(prepared);
        r
    }

    /// What phases 1–5 produced (at start and after every reload): release, jar,
    /// cluster, brokers, config files, timings.
    pub fn prepared(&mut self, p: &Prepared) {
        let s = &p.settings;
        self.state_dir = s.agent.state_dir.clone();
        self.textfile = s.metrics.textfile.clone();
        self.service_id = crate::ksqldb::metastore::service_id(s);
        let m = &p.installed.manifest;
        self.doc.release = Some(ReleaseInfo {
            version: p.installed.version.clone(),
            path: p.release_dir().display().to_string(),
            archive_sha256: m.archive_sha256.clone(),
            signer: m.signer.clone(),
            signing_key: m.signing_key.clone(),
            trust: signer_trust(s).into(),
            verified_at: manifest_time(p.release_dir()),
        });
        self.doc.iam_jar = Some(JarInfo {
            version: s.iam_auth.version.clone(),
            file: m.jar_file.clone(),
            sha256: m.jar_sha256.clone(),
            trust: jar_trust(s).into(),
        });
        self.discovered(&p.discovered, p.timings.discovery);
        self.doc.last_install = Some(p.timings.install);
        self.doc.restarts.window_seconds = s.agent.restart_window.as_secs();
        self.doc.restarts.limit = s.agent.restart_limit;
        self.doc.config_files = crate::config::config_files(&s.source)
            .map(|files| files.iter().map(|f| f.display().to_string()).collect())
            .unwrap_or_else(|_| vec![s.source.display().to_string()]);
    }

    /// A successful discovery (the brokers may be the same as before).
    pub fn discovered(&mut self, d: &Discovered, span: Span) {
        self.doc.cluster = Some(ClusterInfo {
            arn: d.cluster_arn.clone(),
            name: d.cluster_name.clone(),
            state: d.state.clone(),
            serverless: d.serverless,
        });
        self.doc.brokers = Some(BrokersInfo {
            list: d.brokers.addrs.iter().map(|a| a.to_string()).collect(),
            discovered_at: Some(span.at),
            discovery_seconds: span.seconds,
        });
        self.doc.last_discovery = Some(span);
    }

    /// ksqlDB was started as `pid`.
    pub fn started(&mut self, pid: i32, start_ticks: Option<u64>) {
        self.doc.ksqldb.pid = Some(pid);
        self.doc.ksqldb.start_ticks = start_ticks;
        self.doc.ksqldb.started_at = Some(Time::now());
        self.set_health(Condition::Starting, &[], "");
    }

    /// The health condition now; `failing`: the checks ksqlDB reports failing.
    /// Unchanged condition and checks keep their `since`.
    pub fn set_health(&mut self, condition: Condition, failing: &[String], detail: &str) {
        let h = &mut self.doc.ksqldb.health;
        if h.condition != condition || h.failing_checks != failing {
            *h = HealthInfo {
                condition,
                failing_checks: failing.to_vec(),
                detail: detail.to_string(),
                since: Some(Time::now()),
            };
        } else {
            h.detail = detail.to_string();
        }
    }

    /// The Kafka doctor ran: its first failing finding (none: nothing found). The same
    /// finding again keeps its `first_seen`.
    pub fn doctor_ran(&mut self, failing: Option<&crate::kafka::Finding>) {
        let now = Time::now();
        let k = &mut self.doc.kafka;
        k.doctor_runs += 1;
        k.last_run = Some(now);
        let Some(f) = failing else {
            k.diagnosis = None;
            return;
        };
        let step = serde_json::to_value(f.step)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let same = k.diagnosis.as_ref().is_some_and(|d| {
            d.step == step
                && d.action == f.action
                && d.resource == f.resource
                && d.broker == f.broker
        });
        let first_seen = match &k.diagnosis {
            Some(d) if same => d.first_seen,
            _ => Some(now),
        };
        k.diagnosis = Some(KafkaDiagnosis {
            step,
            action: f.action.clone(),
            resource: f.resource.clone(),
            sid: f.sid.clone(),
            broker: f.broker.clone(),
            summary: f.summary(),
            text: f.text.clone(),
            first_seen,
            last_seen: Some(now),
        });
    }

    /// ksqlDB is healthy again (or gone): the doctor's finding no longer applies.
    pub fn clear_diagnosis(&mut self) -> bool {
        self.doc.kafka.diagnosis.take().is_some()
    }

    /// The doctor's current finding.
    pub fn diagnosis(&self) -> Option<&KafkaDiagnosis> {
        self.doc.kafka.diagnosis.as_ref()
    }

    /// The condition [`Recorder::set_health`] last set.
    pub fn condition(&self) -> Condition {
        self.doc.ksqldb.health.condition
    }

    /// ksqlDB failed (`reason`); `then`: restarting or giving up.
    pub fn failed(&mut self, reason: &str, then: Condition, settings: &Settings) {
        let now = Time::now();
        let r = &mut self.doc.restarts;
        r.total += 1;
        r.window_seconds = settings.agent.restart_window.as_secs();
        r.limit = settings.agent.restart_limit;
        r.failures_at.push(now);
        let window = settings.agent.restart_window;
        r.failures_at.retain(|t| t.age(now.0) <= window);
        self.doc.last_failure = Some(Failure {
            reason: reason.to_string(),
            at: Some(now),
        });
        self.no_ksqldb();
        self.set_health(then, &[], reason);
    }

    /// ksqlDB is not running (it failed, or the agent stopped it).
    pub fn no_ksqldb(&mut self) {
        self.doc.ksqldb.pid = None;
        self.doc.ksqldb.start_ticks = None;
        self.doc.ksqldb.started_at = None;
    }

    /// Hand the current state to the writer; returns at once.
    pub fn publish(&mut self) {
        let snapshot = self.snapshot();
        self.tx.send_replace(Some(snapshot));
    }

    /// Write the current state now and wait for it (bounded): for the last state
    /// before the agent exits, which a background write might not finish.
    pub async fn flush(&mut self) {
        let snapshot = self.snapshot();
        // The background writer must not overwrite this with an older snapshot.
        self.tx.send_replace(None);
        let write = tokio::task::spawn_blocking(move || write_snapshot(&snapshot));
        match tokio::time::timeout(FLUSH_TIMEOUT, write).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(
                "could not write the agent's state: {}",
                crate::exit::one_line(&e)
            ),
            Ok(Err(e)) => tracing::warn!("could not write the agent's state: {e}"),
            Err(_) => tracing::warn!(
                "writing the agent's state took longer than {}; not waiting for it",
                humantime::format_duration(FLUSH_TIMEOUT)
            ),
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        self.doc.written_at = Some(Time::now());
        self.doc.download_bytes = crate::release::fetch::downloaded_bytes();
        // A few directory entries, read beneath the state directory without following
        // links (src/ksqldb/metastore.rs).
        self.doc.metastore_backup =
            crate::ksqldb::metastore::scan(&self.state_dir, &self.service_id).map(Into::into);
        self.seq += 1;
        Snapshot {
            seq: self.seq,
            doc: self.doc.clone(),
            state_dir: self.state_dir.clone(),
            textfile: self.textfile.clone(),
        }
    }
}

/// `pinned` or `trust_on_first_use` for the archive's signer.
pub fn signer_trust(s: &Settings) -> &'static str {
    if s.ksqldb.trusted_fingerprints.is_empty() {
        "trust_on_first_use"
    } else {
        "pinned"
    }
}

/// `pinned` or `trust_on_first_use` for the IAM jar.
pub fn jar_trust(s: &Settings) -> &'static str {
    if s.iam_auth.sha256.is_some() {
        "pinned"
    } else {
        "trust_on_first_use"
    }
}

/// When the manifest of `release_dir` was written: when install verified the release.
fn manifest_time(release_dir: &std::path::Path) -> Option<Time> {
    let dir = Dir::open(release_dir).ok()?;
    let file = dir.open_file(crate::host::layout::MANIFEST).ok()??;
    file.metadata().ok()?.modified().ok().map(Time)
}

async fn write_loop(mut rx: watch::Receiver<Option<Snapshot>>) {
    let mut last_warned: Option<Instant> = None;
    let mut failing = false;
    while rx.changed().await.is_ok() {
        let Some(snapshot) = rx.borrow_and_update().clone() else {
            continue;
        };
        let result = tokio::task::spawn_blocking(move || write_snapshot(&snapshot))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        match result {
            Ok(()) => {
                if failing {
                    tracing::info!("the agent's state file is written again");
                }
                failing = false;
            }
            Err(e) => {
                failing = true;
                if last_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(
                        "could not write the agent's state (ksql-msk status may be out of date; \
                         supervision goes on; said at most every {}): {}",
                        humantime::format_duration(WARN_EVERY),
                        crate::exit::one_line(&e)
                    );
                }
            }
        }
    }
}

/// Write the state file, then the metrics textfile; both atomically. The state file is
/// written through a handle on the state directory opened without following a link.
fn write_snapshot(s: &Snapshot) -> Result<()> {
    let mut written = WRITTEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *written >= s.seq {
        return Ok(());
    }
    let mut json = serde_json::to_vec_pretty(&s.doc)?;
    json.push(b'\n');
    let state = Dir::open(&s.state_dir)?;
    // Its own failure point: the recorder writes in the background at any moment, so
    // it must not take the hits meant for an install's or a rollback's writes.
    let state_result = state.write_atomic_at(STATE_FILE, &json, STATE_MODE, STATUS_POINT);
    let metrics_result = match &s.textfile {
        Some(path) => {
            let text = metrics::render(&s.doc, SystemTime::now());
            // Exactly 0644 whatever the umask (the unit's UMask=0027 would make it 0640,
            // unreadable by node_exporter's own user): the mode is set on the temp file.
            let own = (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            Dir::parent_of(path).and_then(|(dir, name)| {
                dir.write_atomic_owned(&name, text.as_bytes(), TEXTFILE_MODE, own)
            })
        }
        None => Ok(()),
    };
    *written = s.seq;
    state_result.and(metrics_result)
}
