//! The agent's state, for `ksql-msk status` and the metrics textfile (docs/STATUS.md).
//!
//! The running agent keeps a [`StateDoc`] ([`recorder`]) and writes it atomically to
//! `<state_dir>/status.json` (0640, group ksql: the service's group) on every change;
//! with `metrics.textfile` set it writes the same facts as Prometheus text
//! ([`metrics`]). `ksql-msk status` ([`report`]) reads that file as untrusted input (the
//! `ksql` user can plant anything in the state directory), checks whether the agent
//! that wrote it is still the running process, and adds what is on disk: the active
//! release (`current` and its manifest) and the releases kept beside it.
//!
//! Extending the document: add an `Option<...>` field with `#[serde(default)]` to
//! [`StateDoc`] (an old file then still parses) and to [`report::Report`], document it
//! in docs/STATUS.md; the [`SCHEMA_VERSION`] only changes when a field changes meaning
//! or goes away. What `status` reads from disk or the config instead (the upgrade
//! record, the REST API's authentication) is only in the report.

pub mod metrics;
pub mod recorder;
pub mod report;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The state file, in the state directory.
pub const STATE_FILE: &str = "status.json";
/// Version of the state file and of `status --json`; bumped only on an incompatible
/// change (a field removed or changing meaning), never for an added field.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest state file read: what the agent writes is a few KiB.
pub const MAX_STATE_BYTES: u64 = crate::host::StateFile::Status.limit();

/// A wall-clock instant, written as RFC 3339 UTC (`2026-12-02T01:23:04.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub SystemTime);

impl Time {
    pub fn now() -> Time {
        Time(SystemTime::now())
    }

    /// Seconds since the Unix epoch (what Prometheus timestamps are).
    pub fn unix_seconds(self) -> f64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    /// How long ago, from `now` (zero for a time in the future).
    pub fn age(self, now: SystemTime) -> Duration {
        now.duration_since(self.0).unwrap_or(Duration::ZERO)
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .map(Time)
            .map_err(serde::de::Error::custom)
    }
}

/// When something began and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub at: Time,
    pub seconds: f64,
}

impl Span {
    /// A span that began at `at` (wall clock) and `started` (monotonic), ending now.
    pub fn since(at: Time, started: std::time::Instant) -> Span {
        Span {
            at,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// ksqlDB's health condition, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Started, not answering its health check yet (bounded by `agent.start_timeout`).
    Starting,
    Healthy,
    /// Answers `isHealthy: false` with the `kafka` check failing: waiting for Kafka
    /// (MSK maintenance, IAM, network). Never restarted for it.
    WaitingForKafka,
    /// Answers `isHealthy: false`, other checks failing. Never restarted for it.
    Unhealthy,
    /// Answers with `commandRunner` failing while `kafka` is healthy, and `/info` says
    /// `serverStatus: DEGRADED`: ksqlDB met command-topic entries it cannot process
    /// (after a downgrade, or a topic that no longer matches its backup). Sticky until
    /// a restore and a restart; never restarted for it.
    CommandRunnerDegraded,
    /// Answered before, gives no answer now; killed and restarted after
    /// `agent.hang_timeout`.
    Hung,
    /// Failed (exited, hung, never healthy); started again after a backoff.
    Restarting,
    /// The agent is stopping ksqlDB.
    Stopping,
    /// Not running: the agent stopped (or is not running at all).
    Stopped,
    /// Too many failures within `agent.restart_window`: the agent exited 75 and
    /// systemd's restart policy took over.
    GaveUp,
    /// Not known (no state file, or one that could not be read).
    #[default]
    #[serde(other)]
    Unknown,
}

impl Condition {
    /// Every condition, in the order the metrics list them.
    pub const ALL: [Condition; 11] = [
        Condition::Starting,
        Condition::Healthy,
        Condition::WaitingForKafka,
        Condition::Unhealthy,
        Condition::CommandRunnerDegraded,
        Condition::Hung,
        Condition::Restarting,
        Condition::Stopping,
        Condition::Stopped,
        Condition::GaveUp,
        Condition::Unknown,
    ];

    /// The name used in JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Starting => "starting",
            Condition::Healthy => "healthy",
            Condition::WaitingForKafka => "waiting_for_kafka",
            Condition::Unhealthy => "unhealthy",
            Condition::CommandRunnerDegraded => "command_runner_degraded",
            Condition::Hung => "hung",
            Condition::Restarting => "restarting",
            Condition::Stopping => "stopping",
            Condition::Stopped => "stopped",
            Condition::GaveUp => "gave_up",
            Condition::Unknown => "unknown",
        }
    }

    /// For people: `waiting for Kafka`.
    pub fn describe(self) -> &'static str {
        match self {
            Condition::WaitingForKafka => "waiting for Kafka",
            Condition::CommandRunnerDegraded => {
                "command runner degraded (restore the command topic from its backup)"
            }
            Condition::GaveUp => "gave up (too many failures)",
            other => other.name(),
        }
    }
}

/// ksqlDB's command-topic backup directory as `status` and the metrics show it (what
/// [`crate::ksqldb::metastore::scan`] found).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupInfo {
    /// The directory.
    pub path: String,
    /// The newest live backup file of this service id (`backup_<topic>_<ms>`).
    pub latest_file: Option<String>,
    /// Its size in bytes.
    pub latest_bytes: u64,
    /// Its last write (ksqlDB appends each new command).
    pub last_write: Option<Time>,
    /// Regular files in the directory and their total size.
    pub files: usize,
    pub total_bytes: u64,
    /// Names that are not ksqlDB's backup files of this service id (another service
    /// id's, or planted): with a missing command topic, ksqlDB 0.23.1+ would take any
    /// file as a backup and not create the topic.
    pub foreign_files: usize,
}

impl From<crate::ksqldb::metastore::Scan> for BackupInfo {
    fn from(s: crate::ksqldb::metastore::Scan) -> BackupInfo {
        BackupInfo {
            path: s.path,
            latest_file: s.latest_file,
            latest_bytes: s.latest_bytes,
            last_write: s.last_write.map(Time),
            files: s.files,
            total_bytes: s.total_bytes,
            foreign_files: s.foreign_files,
        }
    }
}

/// What the agent writes to [`STATE_FILE`]. Every field has a default, so a file
/// written by an older agent (fewer fields) still parses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StateDoc {
    pub schema_version: u32,
    pub written_at: Option<Time>,
    pub agent: AgentInfo,
    /// The release the agent runs (the same as `current`, unless an install by hand
    /// switched it since).
    pub release: Option<ReleaseInfo>,
    pub iam_jar: Option<JarInfo>,
    pub cluster: Option<ClusterInfo>,
    pub brokers: Option<BrokersInfo>,
    pub ksqldb: KsqldbInfo,
    pub restarts: Restarts,
    pub last_failure: Option<Failure>,
    /// Phases 3–5 of the last prepare (start or reload).
    pub last_install: Option<Span>,
    /// The last successful discovery (start, reload or rediscovery).
    pub last_discovery: Option<Span>,
    /// Bytes this agent process downloaded.
    pub download_bytes: u64,
    /// The config files in effect: the main file, then drop-ins in order.
    pub config_files: Vec<String>,
    /// ksqlDB's command-topic backup (`<state_dir>/metastore`), as of this write.
    pub metastore_backup: Option<BackupInfo>,
    /// The Kafka doctor's runs and its finding while ksqlDB waits for Kafka.
    pub kafka: KafkaInfo,
}

/// The agent's Kafka doctor (DESIGN.md phase 6): it runs only while ksqlDB says Kafka
/// is unhealthy (or exits before it was ever healthy), at most once a minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaInfo {
    /// Runs since the agent started.
    pub doctor_runs: u64,
    pub last_run: Option<Time>,
    /// Its first failing finding; null when ksqlDB is healthy or the doctor found none.
    pub diagnosis: Option<KafkaDiagnosis>,
}

/// The finding of the doctor's last run (`kafka::Diagnosis::cause`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaDiagnosis {
    /// `dns`, `tcp`, `tls`, `sasl`, `authentication` or `authorization`.
    pub step: String,
    /// The IAM action denied (`kafka-cluster:Connect`), when it is one.
    pub action: Option<String>,
    /// The resource ARN it was asked for.
    pub resource: Option<String>,
    /// The `ksql-msk iam-policy` statement that grants it.
    pub sid: Option<String>,
    /// The broker (`host:port`) of a connection step.
    pub broker: Option<String>,
    /// The one line STATUS shows.
    pub summary: String,
    /// The finding in full, as `ksql-msk check` prints it.
    pub text: String,
    /// When the doctor first found this (same step, action, resource and broker).
    pub first_seen: Option<Time>,
    pub last_seen: Option<Time>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat: tells this process from a later one with its pid.
    pub start_ticks: u64,
    pub started_at: Option<Time>,
    /// ksql-msk's own version.
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseInfo {
    pub version: String,
    pub path: String,
    pub archive_sha256: String,
    /// Primary fingerprint of the certificate that signed the archive.
    pub signer: String,
    /// The (sub)key that made the signature.
    pub signing_key: String,
    /// `pinned` (ksqldb.trusted_fingerprints) or `trust_on_first_use`.
    pub trust: String,
    /// When install verified it (its manifest was written).
    pub verified_at: Option<Time>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JarInfo {
    pub version: String,
    pub file: String,
    pub sha256: String,
    /// `pinned` (iam_auth.sha256) or `trust_on_first_use`.
    pub trust: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    pub arn: String,
    pub name: String,
    pub state: String,
    pub serverless: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokersInfo {
    pub list: Vec<String>,
    pub discovered_at: Option<Time>,
    pub discovery_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KsqldbInfo {
    pub pid: Option<i32>,
    pub start_ticks: Option<u64>,
    pub started_at: Option<Time>,
    pub health: HealthInfo,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthInfo {
    pub condition: Condition,
    /// The health checks ksqlDB reports failing (`kafka`, `commandRunner`).
    pub failing_checks: Vec<String>,
    /// The last reason given (probe error, unhealthy answer); empty when healthy.
    pub detail: String,
    /// Since when this condition holds.
    pub since: Option<Time>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Restarts {
    /// Failures (each followed by a restart, or by giving up) since the agent started.
    pub total: u64,
    /// `agent.restart_window` and `agent.restart_limit`.
    pub window_seconds: u64,
    pub limit: u32,
    /// When the failures within the window happened (older ones are dropped).
    pub failures_at: Vec<Time>,
}

impl Restarts {
    /// Failures within the window ending at `now`.
    pub fn in_window(&self, now: SystemTime) -> usize {
        let window = Duration::from_secs(self.window_seconds);
        self.failures_at
            .iter()
            .filter(|t| t.age(now) <= window)
            .count()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Failure {
    pub reason: String,
    pub at: Option<Time>,
}

/// Field 22 (start time, in clock ticks after boot) of /proc/<pid>/stat, if `pid`
/// is a live process. A pid reused by another process has another start time.
pub fn start_ticks(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may itself hold spaces and parentheses.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_as_rfc3339() {
        let t = Time(UNIX_EPOCH + Duration::from_millis(1_796_000_000_123));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-30T00:53:20.123Z\"");
        assert_eq!(serde_json::from_str::<Time>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }

    #[test]
    fn an_unknown_condition_reads_as_unknown() {
        let c: Condition = serde_json::from_str("\"waiting_for_kafka\"").unwrap();
        assert_eq!(c, Condition::WaitingForKafka);
        let c: Condition = serde_json::from_str("\"on_fire\"").unwrap();
        assert_eq!(c, Condition::Unknown);
        for c in Condition::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
    }

    #[test]
    fn an_older_or_partial_document_parses() {
        let doc: StateDoc = serde_json::from_str(r#"{"schema_version":1}"#).unwrap();
        assert_eq!(doc.schema_version, 1);
        assert!(doc.release.is_none());
        assert_eq!(doc.ksqldb.health.condition, Condition::Unknown);
    }

    #[test]
    fn restarts_in_window_counts_recent_failures_only() {
        let now = SystemTime::now();
        let r = Restarts {
            total: 3,
            window_seconds: 60,
            limit: 5,
            failures_at: vec![
                Time(now - Duration::from_secs(120)),
                Time(now - Duration::from_secs(30)),
                Time(now),
            ],
        };
        assert_eq!(r.in_window(now), 2);
    }

    #[test]
    fn own_start_ticks() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some());
        assert_eq!(start_ticks(0), None);
        assert_eq!(start_ticks(-5), None);
    }
}
