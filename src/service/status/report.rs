//! `ksql-msk status [--json]`: what the agent's state file says, whether the agent
//! that wrote it is still running, and what is on disk (the active release and the
//! kept ones).
//!
//! Everything under the state directory is untrusted input (the `ksql` user, or a
//! compromised ksqlDB, can plant anything there) and this command only reads: files
//! are opened relative to a handle on the state directory without following links,
//! FIFOs and devices are refused before a read could block, reads are bounded, and a
//! file that is none of what it should be shows as `unknown` with one line saying why.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use super::recorder::{jar_trust, signer_trust};
use super::{
    start_ticks, BackupInfo, ClusterInfo, Condition, Failure, HealthInfo, JarInfo, KafkaDiagnosis,
    KafkaInfo, ReleaseInfo, Span, StateDoc, Time, MAX_STATE_BYTES, SCHEMA_VERSION, STATE_FILE,
};
use crate::config::Settings;
use crate::exit::{fail, one_line, ExitCode};
use crate::host::layout;
use crate::host::{Dir, Kind};
use crate::release::manifest::Manifest;

/// Largest manifest read (they are under 1 KiB).
const MAX_MANIFEST_BYTES: u64 = 64 << 10;
/// At most this many kept releases are listed (prune keeps two).
const MAX_KEPT: usize = 32;

/// The document `status --json` prints (docs/STATUS.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: Time,
    pub service: Service,
    pub state_dir: String,
    pub state_file: StateFile,
    pub release: Option<ReleaseInfo>,
    pub kept_releases: Vec<Kept>,
    pub iam_jar: Option<JarInfo>,
    pub cluster: Option<ClusterInfo>,
    pub brokers: Option<Brokers>,
    pub ksqldb: Ksqldb,
    pub restarts: Restarts,
    pub last_failure: Option<Failure>,
    pub last_install: Option<Span>,
    pub download_bytes: u64,
    pub config_files: Vec<String>,
    /// Rollbacks: a failed upgrade rolled back by the agent, a rollback by hand
    /// (read from disk: the upgrade record and the drop-in).
    pub upgrade: Upgrade,
    /// The REST API's authentication, from the config.
    pub auth: Auth,
    /// The Kafka doctor while ksqlDB waits for Kafka (`diagnosis` null once it is
    /// healthy, and when the agent is not running).
    pub kafka: KafkaInfo,
    /// ksqlDB's command-topic backup, read from disk now (null: no directory).
    pub metastore_backup: Option<BackupInfo>,
    /// How ksqlDB's memory is planned on this host (null: its memory is unknown).
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub running: bool,
    pub agent_pid: Option<i32>,
    pub agent_version: Option<String>,
    pub agent_started_at: Option<Time>,
    /// One line: why it is (not) considered running.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateFile {
    pub path: String,
    pub written_at: Option<Time>,
    /// Why the file could not be used (missing, refused, garbage); null when it was.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub version: String,
    pub path: String,
    pub archive_sha256: String,
    pub verified_at: Option<Time>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Brokers {
    pub list: Vec<String>,
    pub count: usize,
    pub discovered_at: Option<Time>,
    pub discovery_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ksqldb {
    pub pid: Option<i32>,
    pub started_at: Option<Time>,
    pub uptime_seconds: Option<u64>,
    pub health: HealthInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restarts {
    pub in_window: usize,
    pub window_seconds: u64,
    pub limit: u32,
    pub total: u64,
}

/// `ksql-msk status`: print the report; exit 69 when nothing is installed and there is
/// no agent state at all (the report is printed all the same).
pub fn status(config_path: &Path, json: bool) -> Result<()> {
    let settings = crate::config::load(config_path).map_err(|e| refusal(e, "the config"))?;
    let report = gather(&settings, SystemTime::now())?;
    if json {
        let text = json_escape_c1(&serde_json::to_string_pretty(&report)?);
        crate::outln!("{text}")?;
    } else {
        crate::out!("{}", human(&report, SystemTime::now()))?;
    }
    if report.release.is_none() && report.state_file.written_at.is_none() {
        return Err(fail(
            ExitCode::Unavailable,
            format!(
                "nothing is installed in {} and the agent has written no state there yet \
                 (systemctl start ksql-msk, or ksql-msk install)",
                report.state_dir
            ),
        ));
    }
    Ok(())
}

/// A permission error as one clear line (exit 74); anything else as it is.
fn refusal(e: anyhow::Error, what: &str) -> anyhow::Error {
    // The config loader words the I/O error into its message (exit 78): EACCES is
    // recognised there too.
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    }) || one_line(&e).contains(&format!("(os error {})", libc::EACCES));
    if denied {
        fail(
            ExitCode::Io,
            format!(
                "permission denied reading {what} ({}): ksql-msk status is for root and members of group ksql",
                one_line(&e)
            ),
        )
    } else {
        e
    }
}

/// The report for `settings` at `now`.
pub fn gather(settings: &Settings, now: SystemTime) -> Result<Report> {
    let state_dir = &settings.agent.state_dir;
    let state_path = state_dir.join(STATE_FILE);
    let dir = match Dir::open(state_dir) {
        Ok(d) => Some(d),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(refusal(e, "the state directory")),
    };
    let (doc, problem) = state_doc(dir.as_ref(), state_dir);
    let (release, kept) = match &dir {
        Some(d) => on_disk(d, state_dir, settings),
        None => (None, Vec::new()),
    };
    let doc_ref = doc.as_ref();
    let (running, detail) = match doc_ref {
        None => (
            false,
            "no agent state: the agent has not run here".to_string(),
        ),
        Some(d) => agent_running(d),
    };
    let iam_jar = jar(doc_ref, release.as_ref(), settings, dir.as_ref());
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        generated_at: Time(now),
        service: Service {
            running,
            agent_pid: doc_ref.map(|d| d.agent.pid).filter(|_| running),
            agent_version: doc_ref.map(|d| d.agent.version.clone()),
            agent_started_at: doc_ref.and_then(|d| d.agent.started_at),
            detail,
        },
        state_dir: state_dir.display().to_string(),
        state_file: StateFile {
            path: state_path.display().to_string(),
            written_at: doc_ref.and_then(|d| d.written_at),
            problem,
        },
        release,
        kept_releases: kept,
        iam_jar,
        cluster: doc_ref.and_then(|d| d.cluster.clone()),
        brokers: doc_ref.and_then(|d| d.brokers.clone()).map(|b| Brokers {
            count: b.list.len(),
            list: b.list,
            discovered_at: b.discovered_at,
            discovery_seconds: b.discovery_seconds,
        }),
        ksqldb: ksqldb_now(doc_ref, running, now),
        restarts: restarts_now(doc_ref, running, settings, now),
        last_failure: doc_ref.and_then(|d| d.last_failure.clone()),
        last_install: doc_ref.and_then(|d| d.last_install),
        download_bytes: doc_ref.map(|d| d.download_bytes).unwrap_or(0),
        config_files: config_files_now(doc_ref, running, settings),
        upgrade: Upgrade::of(settings),
        auth: Auth::of(settings),
        kafka: kafka_now(doc_ref, running),
        memory: crate::ksqldb::java::settings_memory_plan(settings).map(|p| {
            let rocksdb = crate::ksqldb::java::host_rocksdb(settings, Some(&p));
            Memory::of(p, rocksdb)
        }),
        metastore_backup: crate::ksqldb::metastore::scan(
            state_dir,
            &crate::ksqldb::metastore::service_id(settings),
        )
        .map(Into::into),
    })
}

/// The doctor's runs; its finding only while the agent that made it runs.
fn kafka_now(doc: Option<&StateDoc>, running: bool) -> KafkaInfo {
    let mut k = doc.map(|d| d.kafka.clone()).unwrap_or_default();
    if !running {
        k.diagnosis = None;
    }
    k
}

/// The agent's state file, or why there is none to show.
fn state_doc(dir: Option<&Dir>, state_dir: &Path) -> (Option<StateDoc>, Option<String>) {
    let (doc, problem) = match dir {
        Some(d) => match read_state(d) {
            Ok(doc) => (doc, None),
            Err(why) => (None, Some(why)),
        },
        None => (
            None,
            Some(format!("{} does not exist", state_dir.display())),
        ),
    };
    let problem = problem.or_else(|| {
        doc.is_none()
            .then(|| "the agent has not written it yet".to_string())
    });
    (doc, problem)
}

/// ksqlDB as the state file says, checked against the running system: its pid only
/// while that process is the one the agent started; stopped when the agent is not
/// running (unless it gave up).
fn ksqldb_now(doc: Option<&StateDoc>, running: bool, now: SystemTime) -> Ksqldb {
    let mut health = doc.map(|d| d.ksqldb.health.clone()).unwrap_or_default();
    let (mut pid, mut started_at) = (None, None);
    if running {
        if let Some(d) = doc {
            let k = &d.ksqldb;
            if let (Some(p), Some(ticks)) = (k.pid, k.start_ticks) {
                if start_ticks(p) == Some(ticks) {
                    pid = Some(p);
                    started_at = k.started_at;
                }
            }
        }
    } else if doc.is_some() && health.condition != Condition::GaveUp {
        health = HealthInfo {
            condition: Condition::Stopped,
            since: doc.and_then(|d| d.written_at),
            ..HealthInfo::default()
        };
    }
    Ksqldb {
        pid,
        started_at,
        uptime_seconds: started_at.map(|t| t.age(now).as_secs()),
        health,
    }
}

/// The restart counts: the state file's, with none in the window once the agent
/// stopped; the configured limits when there is no state file.
fn restarts_now(
    doc: Option<&StateDoc>,
    running: bool,
    settings: &Settings,
    now: SystemTime,
) -> Restarts {
    match doc {
        Some(d) => Restarts {
            in_window: if running {
                d.restarts.in_window(now)
            } else {
                0
            },
            window_seconds: d.restarts.window_seconds,
            limit: d.restarts.limit,
            total: d.restarts.total,
        },
        None => Restarts {
            in_window: 0,
            window_seconds: settings.agent.restart_window.as_secs(),
            limit: settings.agent.restart_limit,
            total: 0,
        },
    }
}

/// The files the running agent loaded, else the ones that make up the config now.
fn config_files_now(doc: Option<&StateDoc>, running: bool, settings: &Settings) -> Vec<String> {
    match doc {
        Some(d) if running && !d.config_files.is_empty() => d.config_files.clone(),
        _ => crate::config::config_files(&settings.source)
            .map(|f| f.iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_else(|_| vec![settings.source.display().to_string()]),
    }
}

/// [`Report::auth`].
#[derive(Debug, Clone, Serialize)]
pub struct Auth {
    /// `ksqldb.auth`: `none` or `basic`.
    pub mode: String,
    /// The password file (with `basic`); the password itself is never shown.
    pub password_file: Option<String>,
    /// Listeners that serve SQL to the network without authentication (`none` and not
    /// loopback): empty when there are none.
    pub open_listeners: Vec<String>,
}

impl Auth {
    fn of(settings: &Settings) -> Auth {
        let basic = settings.ksqldb.auth == crate::config::RestAuth::Basic;
        Auth {
            mode: crate::ksqldb::auth::mode(settings).to_string(),
            password_file: basic.then(|| {
                crate::ksqldb::auth::password_path(settings)
                    .display()
                    .to_string()
            }),
            open_listeners: crate::ksqldb::auth::open_listeners(settings),
        }
    }
}

/// [`Report::upgrade`].
#[derive(Debug, Clone, Serialize)]
pub struct Upgrade {
    /// `ksql-msk rollback` is in effect: the drop-in it wrote (else null).
    pub rolled_back_by_hand: Option<String>,
    /// An upgrade the agent rolled back; it is not tried again until ksqldb.version
    /// changes (else null).
    pub failed: Option<FailedUpgrade>,
    /// The last version that became ready.
    pub last_good: Option<String>,
    /// The release `ksql-msk rollback` would go back to.
    pub previous: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedUpgrade {
    pub version: String,
    /// e.g. `never healthy in 5m`.
    pub reason: String,
    pub rolled_back_to: String,
}

impl Upgrade {
    fn of(settings: &Settings) -> Upgrade {
        let f = crate::service::rollback::facts(settings);
        Upgrade {
            rolled_back_by_hand: f.rolled_back_by_hand.map(|p| p.display().to_string()),
            failed: f.failed_upgrade.map(|f| FailedUpgrade {
                version: f.version,
                reason: f.reason,
                rolled_back_to: f.back_to,
            }),
            last_good: f.good,
            previous: f.previous,
        }
    }
}

fn not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

/// Whether the agent that wrote `doc` is the process running now: its pid is alive
/// and started when the agent said it did (a reused pid started later).
fn agent_running(doc: &StateDoc) -> (bool, String) {
    let pid = doc.agent.pid;
    if pid <= 0 || doc.agent.start_ticks == 0 {
        return (false, "the state file names no agent process".into());
    }
    match start_ticks(pid) {
        None => (
            false,
            format!("the service is not running (agent pid {pid} is gone)"),
        ),
        Some(t) if t != doc.agent.start_ticks => (
            false,
            format!("the service is not running (pid {pid} is another process now)"),
        ),
        Some(_) if doc.ksqldb.health.condition == Condition::Stopped => (
            false,
            format!("the service is stopping (agent pid {pid} stopped ksqlDB)"),
        ),
        Some(_) => (true, format!("the agent runs as pid {pid}")),
    }
}

/// The state file, or why it cannot be used. `Ok(None)`: there is none.
fn read_state(dir: &Dir) -> std::result::Result<Option<StateDoc>, String> {
    let Some(bytes) = read_bounded(dir, STATE_FILE, MAX_STATE_BYTES)? else {
        return Ok(None);
    };
    let doc: StateDoc = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{}: not a ksql-msk state document ({e})",
            dir.path().join(STATE_FILE).display()
        )
    })?;
    if doc.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "{}: schema_version {}, this ksql-msk reads {SCHEMA_VERSION}",
            dir.path().join(STATE_FILE).display(),
            doc.schema_version
        ));
    }
    Ok(Some(doc))
}

/// The regular file `name` in `dir`, at most `max` bytes; a link, FIFO or device
/// there is refused without blocking, a larger file is refused.
fn read_bounded(dir: &Dir, name: &str, max: u64) -> std::result::Result<Option<Vec<u8>>, String> {
    debug_assert_eq!(max, crate::host::StateFile::Status.limit());
    crate::host::read_state_file(dir, name, crate::host::StateFile::Status)
        .map_err(|e| one_line(&e))
}

/// The active release (`current` and its manifest) and the others kept beside it.
fn on_disk(dir: &Dir, state_dir: &Path, settings: &Settings) -> (Option<ReleaseInfo>, Vec<Kept>) {
    let active = active_version(dir);
    let Ok(releases) = dir.open_dir("releases") else {
        return (None, Vec::new());
    };
    let releases_path = state_dir.join("releases");
    let release = active.as_deref().and_then(|v| {
        let (m, at) = manifest_of(&releases, v)?;
        Some(ReleaseInfo {
            version: m.version,
            path: releases_path.join(v).display().to_string(),
            archive_sha256: m.archive_sha256,
            signer: m.signer,
            signing_key: m.signing_key,
            trust: signer_trust(settings).into(),
            verified_at: at,
        })
    });
    let mut names: Vec<String> = releases
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.') && Some(n.as_str()) != active.as_deref())
        .collect();
    names.sort();
    let kept = names
        .iter()
        .take(MAX_KEPT)
        .filter_map(|v| {
            let (m, at) = manifest_of(&releases, v)?;
            Some(Kept {
                version: m.version,
                path: releases_path.join(v).display().to_string(),
                archive_sha256: m.archive_sha256,
                verified_at: at,
            })
        })
        .collect();
    (release, kept)
}

/// The version `current` points at, when it is `releases/<version>` (what install
/// writes); anything else is not an active release.
fn active_version(dir: &Dir) -> Option<String> {
    if dir.kind("current").ok()?? != Kind::Symlink {
        return None;
    }
    let target = dir.read_link("current")?;
    let mut parts = target.components();
    let first = parts.next()?;
    let name = parts.next()?;
    if first.as_os_str() != OsStr::new("releases") || parts.next().is_some() {
        return None;
    }
    let name = name.as_os_str();
    if name.as_bytes().starts_with(b".") {
        return None;
    }
    name.to_str().map(str::to_string)
}

/// The manifest of `releases/<name>` and when it was written, if it is a real
/// directory with a manifest that parses.
fn manifest_of(releases: &Dir, name: &str) -> Option<(Manifest, Option<Time>)> {
    let release = releases.open_dir(name).ok()?;
    let file = release.open_file(layout::MANIFEST).ok()??;
    let at = file
        .metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .map(Time);
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return None;
    }
    let m = Manifest::parse(std::str::from_utf8(&bytes).ok()?)?;
    Some((m, at))
}

/// The IAM jar of the active release: file and hash from its manifest, the version the
/// agent recorded for that jar (else the configured one).
fn jar(
    doc: Option<&StateDoc>,
    release: Option<&ReleaseInfo>,
    settings: &Settings,
    dir: Option<&Dir>,
) -> Option<JarInfo> {
    let release = release?;
    let releases = dir?.open_dir("releases").ok()?;
    let name = Path::new(&release.path).file_name()?.to_str()?.to_string();
    let (m, _) = manifest_of(&releases, &name)?;
    let recorded = doc
        .and_then(|d| d.iam_jar.as_ref())
        .filter(|j| j.sha256 == m.jar_sha256 && j.file == m.jar_file);
    Some(JarInfo {
        version: recorded
            .map(|j| j.version.clone())
            .unwrap_or_else(|| settings.iam_auth.version.clone()),
        file: m.jar_file,
        sha256: m.jar_sha256,
        trust: jar_trust(settings).into(),
    })
}

/// One screen for people. Text from the state directory is untrusted: control
/// characters are shown escaped, never sent to the terminal.
pub fn human(r: &Report, now: SystemTime) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("service:", service_text(&r.service, now)),
        ("ksqlDB:", ksqldb_text(&r.ksqldb, now)),
        ("restarts:", restarts_text(&r.restarts)),
        (
            "last failure:",
            last_failure_text(r.last_failure.as_ref(), now),
        ),
    ];
    lines.extend(release_lines(r.release.as_ref()));
    if let Some(d) = &r.kafka.diagnosis {
        lines.push(("Kafka:", kafka_text(d, now)));
    }
    lines.push(("REST API:", auth_text(&r.auth)));
    lines.extend(upgrade_lines(&r.upgrade));
    lines.push(("kept:", kept_text(&r.kept_releases)));
    lines.extend(cluster_lines(r, now));
    if let Some(m) = &r.memory {
        lines.push(("memory:", memory_text(m)));
    }
    lines.push((
        "metastore:",
        metastore_text(r.metastore_backup.as_ref(), now),
    ));
    lines.push(("config:", r.config_files.join(", ")));
    lines.push(("state:", state_file_text(&r.state_file)));
    lines
        .iter()
        .map(|(label, text)| format!("{label:<14}{}\n", clean(text)))
        .collect()
}

/// The agent: running since when, or why not.
fn service_text(svc: &Service, now: SystemTime) -> String {
    if !svc.running {
        return format!("not running: {}", svc.detail);
    }
    format!(
        "running (agent pid {}{}{})",
        svc.agent_pid.unwrap_or_default(),
        svc.agent_version
            .as_deref()
            .map(|v| format!(", ksql-msk {v}"))
            .unwrap_or_default(),
        svc.agent_started_at
            .map(|t| format!(", since {t}, {}", ago(t, now)))
            .unwrap_or_default()
    )
}

/// ksqlDB's health condition, for how long, its process and what fails.
fn ksqldb_text(k: &Ksqldb, now: SystemTime) -> String {
    let h = &k.health;
    let mut health = h.condition.describe().to_string();
    if !h.failing_checks.is_empty() {
        health.push_str(&format!(" (failing: {})", h.failing_checks.join(", ")));
    }
    if let Some(since) = h.since {
        health.push_str(&format!(" for {}", short(since.age(now))));
    }
    if let Some(pid) = k.pid {
        health.push_str(&format!(", pid {pid}"));
    }
    if let Some(up) = k.uptime_seconds {
        health.push_str(&format!(", up {}", short(Duration::from_secs(up))));
    }
    if !h.detail.is_empty() && h.condition != Condition::Healthy {
        health.push_str(&format!(": {}", h.detail));
    }
    health
}

/// The doctor's finding while ksqlDB waits for Kafka, since when.
fn kafka_text(d: &KafkaDiagnosis, now: SystemTime) -> String {
    let since = d
        .first_seen
        .map(|t| format!(" (found {})", ago(t, now)))
        .unwrap_or_default();
    let sid = d
        .sid
        .as_deref()
        .map(|s| format!("; `ksql-msk iam-policy` statement {s} grants it"))
        .unwrap_or_default();
    format!("{}{sid}{since}", d.summary)
}

fn restarts_text(r: &Restarts) -> String {
    format!(
        "{} in the last {} (limit {}), {} since the agent started",
        r.in_window,
        short(Duration::from_secs(r.window_seconds)),
        r.limit,
        r.total
    )
}

fn last_failure_text(failure: Option<&Failure>, now: SystemTime) -> String {
    match failure {
        Some(f) => match f.at {
            Some(at) => format!("{} at {at} ({})", f.reason, ago(at, now)),
            None => f.reason.clone(),
        },
        None => "none".into(),
    }
}

/// The active release: version and place, archive hash, signer.
fn release_lines(release: Option<&ReleaseInfo>) -> Vec<(&'static str, String)> {
    let Some(rel) = release else {
        return vec![("release:", "none installed".into())];
    };
    vec![
        (
            "release:",
            format!("ksqlDB {} in {}", rel.version, rel.path),
        ),
        ("", format!("archive sha256 {}", rel.archive_sha256)),
        (
            "",
            format!(
                "signed by {} ({}){}",
                rel.signer,
                rel.trust.replace('_', " "),
                rel.verified_at
                    .map(|t| format!(", verified {t}"))
                    .unwrap_or_default()
            ),
        ),
    ]
}

/// Who may use the REST API.
fn auth_text(auth: &Auth) -> String {
    match (&auth.password_file, auth.open_listeners.is_empty()) {
        (Some(p), _) => format!("basic authentication (credential in {p})"),
        (None, true) => "no authentication, loopback only".into(),
        (None, false) => format!(
            "no authentication on {}: anyone who reaches it runs SQL (set ksqldb.auth = \"basic\")",
            auth.open_listeners.join(", ")
        ),
    }
}

/// A failed upgrade and a rollback by hand, when there are.
fn upgrade_lines(upgrade: &Upgrade) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if let Some(f) = &upgrade.failed {
        lines.push((
            "upgrade:",
            format!(
                "to {} failed: {}, rolled back to {} (not tried again until ksqldb.version changes)",
                f.version, f.reason, f.rolled_back_to
            ),
        ));
    }
    if let Some(p) = &upgrade.rolled_back_by_hand {
        lines.push((
            "rollback:",
            format!("by hand ({p}); ksql-msk rollback --clear returns to the configured version"),
        ));
    }
    lines
}

fn kept_text(kept: &[Kept]) -> String {
    if kept.is_empty() {
        return "no other release".into();
    }
    kept.iter()
        .map(|k| k.version.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The IAM jar, the cluster and its brokers, when known.
fn cluster_lines(r: &Report, now: SystemTime) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if let Some(j) = &r.iam_jar {
        lines.push((
            "iam jar:",
            format!(
                "{} {} sha256 {} ({})",
                j.version,
                j.file,
                j.sha256,
                j.trust.replace('_', " ")
            ),
        ));
    }
    if let Some(c) = &r.cluster {
        lines.push(("cluster:", format!("{} {} ({})", c.name, c.arn, c.state)));
    }
    if let Some(b) = &r.brokers {
        let when = b
            .discovered_at
            .map(|t| {
                format!(
                    ", discovered {t} ({}, took {:.1}s)",
                    ago(t, now),
                    b.discovery_seconds
                )
            })
            .unwrap_or_default();
        lines.push((
            "brokers:",
            format!("{}: {}{when}", b.count, b.list.join(",")),
        ));
    }
    lines
}

/// The memory budget (src/ksqldb/memory.rs), in MiB.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub total_mib: u64,
    pub budget_percent: u64,
    pub budget_mib: u64,
    pub heap_mib: u64,
    pub rocksdb_mib: u64,
    pub overhead_mib: u64,
    /// RocksDB held to its share by ksql-msk's setter.
    pub rocksdb_bounded: bool,
    /// How RocksDB is held, in words (src/ksqldb/memory.rs).
    pub rocksdb_setter: String,
    /// Heap, RocksDB and overhead together exceed the instance's memory.
    pub exceeds_memory: bool,
}

impl Memory {
    fn of(
        p: crate::ksqldb::memory::Plan,
        rocksdb: anyhow::Result<crate::ksqldb::memory::RocksDb>,
    ) -> Memory {
        const MIB: u64 = 1024 * 1024;
        Memory {
            total_mib: p.total / MIB,
            budget_percent: p.percent,
            budget_mib: p.budget / MIB,
            heap_mib: p.heap / MIB,
            rocksdb_mib: p.rocksdb / MIB,
            overhead_mib: p.overhead / MIB,
            rocksdb_bounded: rocksdb.as_ref().is_ok_and(|r| r.is_bounded()),
            rocksdb_setter: match rocksdb {
                Ok(r) => r.describe(),
                Err(e) => format!("not bounded: {}", crate::exit::one_line(&e)),
            },
            exceeds_memory: p.exceeds_memory(),
        }
    }
}

fn memory_text(m: &Memory) -> String {
    format!(
        "budget {} MiB ({} % of {} MiB): heap {} MiB, RocksDB {} MiB ({}), JVM overhead {} MiB{}",
        m.budget_mib,
        m.budget_percent,
        m.total_mib,
        m.heap_mib,
        m.rocksdb_mib,
        m.rocksdb_setter,
        m.overhead_mib,
        if m.exceeds_memory {
            "; together over the instance's memory"
        } else {
            ""
        }
    )
}

/// ksqlDB's command-topic backup: its newest file, size and last write, and files there
/// that are not ksqlDB's.
fn metastore_text(backup: Option<&BackupInfo>, now: SystemTime) -> String {
    let Some(b) = backup else {
        return "no backup directory yet".into();
    };
    let mut text = match (&b.latest_file, b.last_write) {
        (Some(f), Some(t)) => format!(
            "backup {} bytes, last written {t} ({}), in {}/{f}",
            b.latest_bytes,
            ago(t, now),
            b.path
        ),
        (Some(f), None) => format!("backup {} bytes in {}/{f}", b.latest_bytes, b.path),
        (None, _) => format!("no backup yet in {}", b.path),
    };
    if b.foreign_files > 0 {
        text.push_str(&format!(
            "; {} other file(s) there (ksqlDB takes any file for a backup when its command topic is missing)",
            b.foreign_files
        ));
    }
    text
}

fn state_file_text(f: &StateFile) -> String {
    match (&f.problem, f.written_at) {
        (Some(p), _) => format!("unknown: {p}"),
        (None, Some(t)) => format!("{} written {t}", f.path),
        (None, None) => f.path.clone(),
    }
}

fn ago(t: Time, now: SystemTime) -> String {
    format!("{} ago", short(t.age(now)))
}

/// A duration to the second: `4m 12s`.
fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// JSON text with DEL and the C1 controls (U+007F–U+009F) escaped as `\u00XX` too:
/// serde_json escapes only C0, and a terminal acts on C1 (U+009B is CSI). Outside
/// strings JSON text is ASCII, so every such character is in a string.
fn json_escape_c1(json: &str) -> String {
    json.chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Control characters escaped (`\u{1b}`), everything else as it is.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_has_c1_escaped_and_still_parses() {
        let raw = serde_json::json!({"r": "a\u{1b}[2J\u{9b}31m\u{85}\u{7f}é"}).to_string();
        let text = json_escape_c1(&raw);
        assert_eq!(text, r#"{"r":"a\u001b[2J\u009b31m\u0085\u007fé"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["r"], "a\u{1b}[2J\u{9b}31m\u{85}\u{7f}é");
    }

    #[test]
    fn control_characters_are_not_sent_to_the_terminal() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }

    #[test]
    fn a_stale_pid_is_not_running() {
        let mut doc = StateDoc::default();
        assert!(!agent_running(&doc).0);
        let me = std::process::id() as i32;
        doc.agent.pid = me;
        doc.agent.start_ticks = start_ticks(me).unwrap();
        assert!(agent_running(&doc).0);
        doc.agent.start_ticks += 1;
        let (running, why) = agent_running(&doc);
        assert!(!running);
        assert!(why.contains("another process"), "{why}");
        doc.agent.pid = i32::MAX;
        assert!(agent_running(&doc).1.contains("is gone"));
    }
}
