//! Phase 6: run ksqlDB and keep it running, as an explicit state machine.
//!
//! ```text
//!   Starting ──spawn──▶ WaitingHealthy ──answers──▶ Running ⟲ unhealthy / healthy again
//!                                      (healthy, or isHealthy:false: READY either way)
//!      ▲                   │ exit / start_timeout      │ exit / hung
//!      └──── BackingOff ◀──┴───────────────────────────┘
//!   any state ──SIGTERM/SIGINT──▶ Stopping ──▶ exit 0
//! ```
//!
//! The health model (DESIGN.md phase 6): an exit is restarted with backoff; a ksqlDB
//! that answered before and then gives no answer at all for `agent.hang_timeout` is
//! hung, killed and restarted; one that answers `isHealthy: false` (Kafka unreachable
//! during MSK maintenance) is never restarted for it: STATUS and the journal say which
//! checks fail and for how long. WATCHDOG=1 comes from a timer on this loop, so it
//! proves the agent is alive, not that ksqlDB is healthy.
//!
//! The states own what exists only in them (the child, its probe, the backoff
//! deadline); the decisions are pure functions in [`policy`]. The parts:
//! [`process`] (spawn, reap, kill, subreaper), [`launch`] (command line, environment,
//! Java), [`signals`], [`reconfigure`] (reload and rediscovery).
//!
//! ksqlDB runs in its own session and process group; stopping signals the whole group,
//! waits `agent.stop_timeout`, then SIGKILLs it. The agent is a child subreaper and reaps
//! every child (`waitpid(-1)`), so it is also safe as PID 1 of a container.

mod background;
mod doctor;
mod kafka_wait;
pub(crate) mod launch;
mod policy;
mod process;
mod reconfigure;
mod restore;
mod rollback;
mod signals;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

pub use signals::Signals;

use crate::exit::{fail, ExitCode};
use crate::host::journal::{message_id, priority, Sink};
use crate::ksqldb::health::{self, Health};
use crate::ksqldb::java;
use crate::msk::discovery::BrokerAddr;
use crate::service::notify::{Notifier, Watchdog};
use crate::service::pipeline::Prepared;
use crate::service::status::recorder::Recorder;
use crate::service::status::Condition;
use background::{Reconfig, Why};
use doctor::Doctor;
use launch::{launch_spec, log_jvm, Launch};
use policy::{AfterFailure, Limits, Phase, RestartPolicy, Verdict};
use process::{Child, Exit};

/// Health probe period while waiting for ksqlDB to come up.
const PROBE_STARTING: Duration = Duration::from_millis(500);
/// Health probe period while running.
const PROBE_RUNNING: Duration = Duration::from_secs(5);
/// Timeout of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// EXTEND_TIMEOUT_USEC at most this often while waiting for health.
const EXTEND_EVERY: Duration = Duration::from_secs(10);

/// A started ksqlDB and the probe of its health.
struct Watched {
    child: Child,
    /// When it last answered its health check at all (healthy or not).
    last_answer: Option<Instant>,
    /// When the next probe is sent.
    next_probe: Instant,
    /// The probe in flight, as a task so that other events never cancel a slow probe.
    probe: Option<JoinHandle<Health>>,
}

impl Watched {
    fn new(child: Child, first_probe: Instant) -> Watched {
        Watched {
            child,
            last_answer: None,
            next_probe: first_probe,
            probe: None,
        }
    }

    /// The child, without its probe: a probe of this ksqlDB must not vouch for another.
    fn into_child(self) -> Child {
        if let Some(probe) = self.probe {
            probe.abort();
        }
        self.child
    }
}

/// The supervisor's states (zincati-style: one enum, transitions in one place).
enum State {
    /// Start ksqlDB now.
    Starting,
    /// Started; waiting for the health check to pass (bounded by `agent.start_timeout`).
    WaitingHealthy { ksqldb: Watched, since: Instant },
    /// Healthy at least once since the start. `since`: when it last became healthy;
    /// `unhealthy_since`: when it began answering that it is not, while it does.
    Running {
        ksqldb: Watched,
        since: Instant,
        unhealthy_since: Option<Instant>,
    },
    /// ksqlDB failed; start again at `until`.
    BackingOff { until: Instant },
    /// Stopping on request; the agent exits after this.
    Stopping,
}

impl State {
    fn ksqldb(&self) -> Option<&Watched> {
        match self {
            State::WaitingHealthy { ksqldb, .. } | State::Running { ksqldb, .. } => Some(ksqldb),
            _ => None,
        }
    }

    fn ksqldb_mut(&mut self) -> Option<&mut Watched> {
        match self {
            State::WaitingHealthy { ksqldb, .. } | State::Running { ksqldb, .. } => Some(ksqldb),
            _ => None,
        }
    }

    /// Leave the state, taking its ksqlDB with it (if it had one).
    fn take_ksqldb(&mut self, next: State) -> Option<Child> {
        match std::mem::replace(self, next) {
            State::WaitingHealthy { ksqldb, .. } | State::Running { ksqldb, .. } => {
                Some(ksqldb.into_child())
            }
            _ => None,
        }
    }
}

/// Where the agent stands with systemd's READY=1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// Not sent yet: the first healthy ksqlDB sends it.
    NotSent,
    Sent,
    /// A reload restarted ksqlDB: READY=1, which ends the reload for systemd, is sent
    /// again once the new server is healthy, not when the old one stopped.
    AfterRestart,
}

enum Event {
    Stop(&'static str),
    Reload,
    ReloadRequest(crate::service::control::Responder),
    RestoreRequest(bool, crate::service::control::Responder),
    ChildSignal,
    Probe(Health),
    Watchdog,
    BackoffOver,
    StartTimeout,
    Rediscover,
    Prepared(Why, Box<Result<Prepared>>),
    Discovered(Result<crate::msk::discovery::Discovered>),
    Diagnosed(Box<crate::kafka::Diagnosis>),
}

/// The supervisor.
pub struct Supervisor {
    config_path: PathBuf,
    prepared: Prepared,
    launch: Launch,
    /// The brokers the running ksqlDB was configured with.
    running_brokers: BTreeSet<BrokerAddr>,
    notifier: Arc<Notifier>,
    sink: Arc<Sink>,
    signals: Signals,
    http: reqwest::Client,
    state: State,
    restarts: RestartPolicy,
    readiness: Readiness,
    last_extend: Instant,
    watchdog: Watchdog,
    reconfig: Reconfig,
    /// `ksql-msk reload` requests from the control socket.
    control: tokio::sync::mpsc::Receiver<crate::service::control::Request>,
    /// The state `ksql-msk status` and the metrics textfile show.
    status: Recorder,
    /// The Kafka doctor, while ksqlDB waits for Kafka.
    doctor: Doctor,
    /// A stop signal taken while something else waited on it (a restore): the loop
    /// stops before it would start ksqlDB again.
    stop_requested: Option<&'static str>,
}

impl Supervisor {
    pub fn new(
        config_path: &Path,
        prepared: Prepared,
        notifier: Arc<Notifier>,
        sink: Arc<Sink>,
        signals: Signals,
    ) -> Result<Supervisor> {
        let jvm = java::jvm_for(&prepared.settings, &prepared.version())?;
        log_jvm(&jvm);
        if let Some(plan) = java::settings_memory_plan(&prepared.settings) {
            let rocksdb = java::host_rocksdb(&prepared.settings, Some(&plan))?;
            let note = crate::ksqldb::memory::rocksdb_note(&plan, &rocksdb);
            if plan.exceeds_memory() {
                warn!("{note}");
            } else {
                info!("{note}");
            }
        }
        let launch = launch_spec(&prepared, &jvm)?;
        let now = Instant::now();
        Ok(Supervisor {
            status: Recorder::new(&prepared),
            config_path: config_path.to_path_buf(),
            running_brokers: prepared.discovered.brokers.as_set(),
            restarts: RestartPolicy::new(Limits::of(&prepared.settings.agent)),
            reconfig: Reconfig::new(now + prepared.settings.agent.rediscover_interval),
            prepared,
            launch,
            sink,
            signals,
            http: health::client(PROBE_TIMEOUT)?,
            state: State::Starting,
            readiness: Readiness::NotSent,
            last_extend: now,
            watchdog: Watchdog::new(&notifier),
            notifier,
            control: crate::service::control::listen()?,
            doctor: Doctor::default(),
            stop_requested: None,
        })
    }

    async fn event(&self, id: &str, prio: u8, message: &str, fields: &[(&str, String)]) {
        self.sink.event(id, prio, message, fields).await;
    }

    /// Run until stopped (Ok) or until ksqlDB failed too often (exit 75).
    pub async fn run(mut self) -> Result<()> {
        process::become_subreaper();
        self.status.publish();
        let p = &self.prepared;
        self.event(
            message_id::PREPARED,
            priority::INFO,
            &format!(
                "ksqlDB {} prepared for cluster {} ({} brokers)",
                self.launch.version,
                p.discovered.cluster_name,
                p.discovered.brokers.addrs.len()
            ),
            &[
                ("PHASE", "prepare".into()),
                ("VERSION", self.launch.version.clone()),
                ("BROKERS", p.discovered.brokers.raw.clone()),
                ("REST_AUTH", crate::ksqldb::auth::mode(&p.settings).into()),
            ],
        )
        .await;
        if let Some(f) = self.prepared.upgrade.held_back.clone() {
            self.event(
                message_id::UPGRADE_HELD_BACK,
                priority::WARNING,
                &format!(
                    "ksqlDB {} is configured, but its upgrade failed ({}) and was rolled back: starting {}, the release before it, instead (set another ksqldb.version to upgrade again)",
                    f.version, f.reason, f.back_to
                ),
                &[
                    ("VERSION", f.version.clone()),
                    ("BACK_TO", f.back_to.clone()),
                    ("REASON", f.reason.clone()),
                ],
            )
            .await;
        }
        // Once per agent start, not per reload (issue 15: "warns once at start").
        if let Some(problem) = crate::ksqldb::auth::open_api_problem(&p.settings) {
            let listeners = crate::ksqldb::auth::open_listeners(&p.settings).join(",");
            self.event(
                message_id::REST_API_OPEN,
                priority::WARNING,
                &problem,
                &[("LISTENERS", listeners)],
            )
            .await;
        }
        loop {
            if let Some(why) = self.stop_requested.take() {
                return self.shutdown(why).await;
            }
            if matches!(self.state, State::Starting) {
                self.start().await?;
            }
            match self.next_event().await {
                Event::Stop(why) => return self.shutdown(why).await,
                Event::Reload => self.begin_prepare(Why::Reload),
                Event::ReloadRequest(reply) => self.reload_requested(reply),
                Event::RestoreRequest(skip, reply) => self.restore_requested(skip, reply).await,
                Event::ChildSignal => self.on_child_signal().await?,
                Event::Probe(h) => self.on_probe(h).await?,
                Event::Watchdog => self.watchdog.tick(&self.notifier),
                Event::BackoffOver => self.state = State::Starting,
                Event::StartTimeout => self.on_start_timeout().await?,
                Event::Rediscover => self.begin_rediscover(),
                Event::Prepared(why, result) => self.on_prepared(why, *result).await,
                Event::Discovered(result) => self.on_discovered(result).await,
                Event::Diagnosed(d) => self.on_diagnosed(*d).await,
            }
        }
    }

    async fn next_event(&mut self) -> Event {
        let agent = &self.prepared.settings.agent;
        let (start_deadline, backoff_until) = match &self.state {
            State::WaitingHealthy { since, .. } => (Some(*since + agent.start_timeout), None),
            State::BackingOff { until } => (None, Some(*until)),
            _ => (None, None),
        };
        self.start_doctor();
        let agent = &self.prepared.settings.agent;
        let http = self.http.clone();
        let url = agent.health_url.clone();
        let auth = self.launch.auth.clone();
        let probe = self.state.ksqldb_mut().map(|w| {
            let at = w.next_probe;
            w.probe.get_or_insert_with(|| {
                tokio::spawn(async move {
                    sleep_until(at).await;
                    health::probe_alive(&http, &url, auth.as_ref()).await
                })
            })
        });
        let probing = probe.is_some();
        let doctor = self.doctor.task.as_mut();
        let doctoring = doctor.is_some();
        let watchdog_at = self.watchdog.due();
        let rediscover_at = self.reconfig.next_rediscover;
        let can_rediscover = self.reconfig.can_rediscover();
        let Signals {
            term,
            int,
            hup,
            chld,
        } = &mut self.signals;
        tokio::select! {
            _ = term.recv() => Event::Stop("SIGTERM"),
            _ = int.recv() => Event::Stop("SIGINT"),
            _ = hup.recv() => Event::Reload,
            _ = chld.recv() => Event::ChildSignal,
            // Fallback reaping, should a SIGCHLD be missed.
            _ = tokio::time::sleep(Duration::from_secs(1)) => Event::ChildSignal,
            h = async {
                match probe {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if probing => {
                Event::Probe(h.unwrap_or_else(|e| Health::NotReady(format!("health probe failed: {e}"))))
            }
            d = async {
                match doctor {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if doctoring => Event::Diagnosed(Box::new(d.unwrap_or_default())),
            _ = sleep_opt(watchdog_at), if watchdog_at.is_some() => Event::Watchdog,
            _ = sleep_opt(backoff_until), if backoff_until.is_some() => Event::BackoffOver,
            _ = sleep_opt(start_deadline), if start_deadline.is_some() => Event::StartTimeout,
            _ = sleep_until(rediscover_at), if can_rediscover => Event::Rediscover,
            Some((why, r)) = self.reconfig.prepare_rx.recv() => Event::Prepared(why, r),
            Some(r) = self.reconfig.discover_rx.recv() => Event::Discovered(r),
            Some(request) = self.control.recv() => match request {
                crate::service::control::Request::Reload(reply) => Event::ReloadRequest(reply),
                crate::service::control::Request::Restore { skip_incompatible, reply } => {
                    Event::RestoreRequest(skip_incompatible, reply)
                }
            },
        }
    }

    fn probe_period(&self) -> Duration {
        match self.state {
            State::Running { .. } => PROBE_RUNNING,
            _ => PROBE_STARTING,
        }
    }

    /// Starting → WaitingHealthy.
    async fn start(&mut self) -> Result<()> {
        let what = format!("starting ksqlDB {}", self.launch.version);
        self.notifier.status(&what);
        info!("{what}: {}", self.launch.program.display());
        if let Some(exporter) = &self.launch.exporter {
            exporter.recheck()?;
        }
        let child = process::spawn(&self.launch, &self.sink)?;
        self.event(
            message_id::STARTED,
            priority::INFO,
            &format!("started ksqlDB {} (pid {})", child.version, child.pid),
            &[
                ("PID", child.pid.to_string()),
                ("VERSION", child.version.clone()),
                ("PHASE", "supervise".into()),
            ],
        )
        .await;
        self.status.started(child.pid, child.start_ticks);
        self.status.publish();
        let now = Instant::now();
        self.running_brokers = self.prepared.discovered.brokers.as_set();
        self.state = State::WaitingHealthy {
            ksqldb: Watched::new(child, now + PROBE_STARTING),
            since: now,
        };
        self.notifier.status(&format!(
            "waiting for ksqlDB {} to become healthy",
            self.launch.version
        ));
        Ok(())
    }

    /// A probe's answer, judged by [`policy::judge`].
    async fn on_probe(&mut self, health: Health) -> Result<()> {
        let now = Instant::now();
        let version = self.launch.version.clone();
        let Some((seen, pid)) = self.probe_done(now) else {
            // No ksqlDB to vouch for (it exited while the probe ran).
            return Ok(());
        };
        let verdict = policy::judge(seen, &health);
        if !matches!(health, Health::NoAnswer(_)) {
            if let Some(w) = self.state.ksqldb_mut() {
                w.last_answer = Some(now);
            }
        }
        match verdict {
            Verdict::Ready => self.became_ready(now, pid, &version, None).await,
            Verdict::ReadyButUnhealthy { failing, why } => {
                self.became_ready(now, pid, &version, Some((&failing, &why)))
                    .await
            }
            Verdict::StillStarting { why } => self.still_starting(now, &version, &why),
            Verdict::StillHealthy => {
                if self.status.condition() != Condition::Healthy {
                    // Answering again after a silence shorter than hang_timeout.
                    self.status.set_health(Condition::Healthy, &[], "");
                    self.status.publish();
                }
                if let State::Running { since, .. } = self.state {
                    let limits = Limits::of(&self.prepared.settings.agent);
                    self.restarts.healthy_since(limits, since, now);
                }
            }
            Verdict::Recovered { after } => self.healthy_again(now, pid, &version, after).await,
            Verdict::BecameUnhealthy { failing, why } => {
                self.became_unhealthy(now, pid, &version, &failing, &why)
                    .await
            }
            Verdict::StillUnhealthy {
                failing,
                why,
                lasted,
            } => {
                self.still_unhealthy(pid, &version, &failing, &why, lasted)
                    .await
            }
            Verdict::NotAnswering { why, silent } => {
                if matches!(self.state, State::Running { .. }) {
                    if self.status.condition() != Condition::Hung {
                        self.status.set_health(Condition::Hung, &[], &why);
                        self.status.publish();
                    }
                    self.notifier.status(&format!(
                        "ksqlDB {version} is not answering its health check ({}): {why}; restarted if this lasts {} (agent.hang_timeout)",
                        policy::short(silent),
                        humantime::format_duration(seen.hang_timeout)
                    ));
                }
            }
            Verdict::Hung { why, silent } => return self.on_hung(&why, silent).await,
        }
        self.doctor_after_probe();
        let period = self.probe_period();
        if let Some(w) = self.state.ksqldb_mut() {
            w.next_probe = Instant::now() + period;
        }
        Ok(())
    }

    /// Still unhealthy: a stuck command runner that turned out DEGRADED, or an answer
    /// after a silence, changes the condition; STATUS says how long it lasts.
    async fn still_unhealthy(
        &mut self,
        pid: i32,
        version: &str,
        failing: &[String],
        why: &str,
        lasted: Duration,
    ) {
        let condition = unhealthy_condition(failing);
        if condition == Condition::CommandRunnerDegraded && self.status.condition() != condition {
            // A stuck command runner (ERROR) that turned out DEGRADED.
            self.status.set_health(condition, failing, why);
            self.status.publish();
            self.command_runner_degraded(pid, version).await;
        } else if self.status.condition() == Condition::Hung {
            // Answering (unhealthy) again after a silence.
            self.status.set_health(condition, failing, why);
            self.status.publish();
        }
        let line = self
            .waiting_line(version)
            .unwrap_or_else(|| unhealthy_status(version, failing, why, lasted));
        self.notifier.status(&line)
    }

    /// The probe in flight is done: what the health decision needs to know, and the
    /// pid it was about.
    fn probe_done(&mut self, now: Instant) -> Option<(policy::Seen, i32)> {
        let hang_timeout = self.prepared.settings.agent.hang_timeout;
        let (phase, pid, last_answer) = match &mut self.state {
            State::WaitingHealthy { ksqldb, .. } => {
                ksqldb.probe = None;
                (Phase::Waiting, ksqldb.child.pid, ksqldb.last_answer)
            }
            State::Running {
                ksqldb,
                unhealthy_since,
                ..
            } => {
                ksqldb.probe = None;
                let phase = Phase::Running {
                    unhealthy_since: *unhealthy_since,
                };
                (phase, ksqldb.child.pid, ksqldb.last_answer)
            }
            _ => return None,
        };
        let seen = policy::Seen {
            phase,
            last_answer,
            now,
            hang_timeout,
        };
        Some((seen, pid))
    }

    /// WaitingHealthy, not healthy yet: STATUS, and EXTEND_TIMEOUT_USEC while it lasts.
    fn still_starting(&mut self, now: Instant, version: &str, why: &str) {
        if let State::WaitingHealthy { since, .. } = self.state {
            let line = format!(
                "waiting for ksqlDB {version} to become healthy: {why} ({}s)",
                now.duration_since(since).as_secs()
            );
            self.notifier.status(&self.with_diagnosis(line));
        }
        if now.duration_since(self.last_extend) >= EXTEND_EVERY {
            self.notifier.extend();
            self.last_extend = now;
        }
    }

    /// Running → Running, unhealthy: reported, never restarted for.
    async fn became_unhealthy(
        &mut self,
        now: Instant,
        pid: i32,
        version: &str,
        failing: &[String],
        why: &str,
    ) {
        if let State::Running {
            unhealthy_since, ..
        } = &mut self.state
        {
            *unhealthy_since = Some(now);
        }
        self.status
            .set_health(unhealthy_condition(failing), failing, why);
        self.status.publish();
        if unhealthy_condition(failing) == Condition::CommandRunnerDegraded {
            self.command_runner_degraded(pid, version).await;
            self.notifier
                .status(&unhealthy_status(version, failing, why, Duration::ZERO));
            return;
        }
        self.event(
            message_id::UNHEALTHY,
            priority::WARNING,
            &format!(
                "ksqlDB {version} (pid {pid}) answers but is not healthy: {why}; it keeps running (no restart: this heals when its dependencies do)"
            ),
            &[
                ("PID", pid.to_string()),
                ("VERSION", version.to_string()),
                ("CHECKS", failing.join(",")),
            ],
        )
        .await;
        self.notifier
            .status(&unhealthy_status(version, failing, why, Duration::ZERO));
    }

    /// ksqlDB reports its command runner DEGRADED: one event naming the way out. It is
    /// never restarted for it (DEGRADED is sticky in ksqlDB until a restore).
    async fn command_runner_degraded(&mut self, pid: i32, version: &str) {
        let settings = &self.prepared.settings;
        let backup = crate::ksqldb::metastore::scan(
            &settings.agent.state_dir,
            &crate::ksqldb::metastore::service_id(settings),
        )
        .and_then(|b| b.latest_file.map(|f| format!("{}/{f}", b.path)));
        let after_rollback = self
            .prepared
            .upgrade
            .held_back
            .as_ref()
            .map(|f| {
                format!(
                    " after the rollback from {} (the newer version wrote entries {version} cannot read)",
                    f.version
                )
            })
            .unwrap_or_default();
        // The release's own tool, with the rendered properties (IAM auth applies) and
        // --yes (without a terminal it would die at its prompt), as the service user.
        let restore = format!(
            "sudo -u ksql {} --config-file {} --yes {}",
            self.prepared
                .release_dir()
                .join("bin/ksql-restore-command-topic")
                .display(),
            self.prepared.properties_path().display(),
            backup.as_deref().unwrap_or("BACKUP_FILE")
        );
        self.event(
            message_id::COMMAND_RUNNER_DEGRADED,
            priority::ERR,
            &format!(
                "ksqlDB {version} (pid {pid}) reports its command runner DEGRADED{after_rollback}: \
                 it met command-topic entries it cannot process and runs no DDL until the command \
                 topic is restored; not restarted for it (a restart cannot fix it). \
                 Stop ksqlDB on every host of this service id, then: {restore}"
            ),
            &[
                ("PID", pid.to_string()),
                ("VERSION", version.to_string()),
                ("BACKUP", backup.unwrap_or_default()),
            ],
        )
        .await;
    }

    /// Running, unhealthy → Running, healthy.
    async fn healthy_again(&mut self, now: Instant, pid: i32, version: &str, after: Duration) {
        if let State::Running {
            since,
            unhealthy_since,
            ..
        } = &mut self.state
        {
            *since = now;
            *unhealthy_since = None;
        }
        self.status.set_health(Condition::Healthy, &[], "");
        self.status.publish();
        self.event(
            message_id::HEALTHY_AGAIN,
            priority::NOTICE,
            &format!(
                "ksqlDB {version} (pid {pid}) is healthy again after {}",
                policy::short(after)
            ),
            &[
                ("PID", pid.to_string()),
                ("VERSION", version.to_string()),
                ("UNHEALTHY_SECONDS", format!("{:.1}", after.as_secs_f64())),
            ],
        )
        .await;
        let line = self.running_line(version, pid);
        self.notifier.status(&line);
    }

    /// STATUS while ksqlDB is healthy: `ksqlDB 0.28.2 is running (pid 4242)`, or, when
    /// the configured version is held back after a failed upgrade, `ksqlDB 0.28.2
    /// running; upgrade to 0.29.0 failed: never healthy in 5m, rolled back`.
    fn running_line(&self, version: &str, pid: i32) -> String {
        match &self.prepared.upgrade.held_back {
            Some(f) => crate::service::upgrade::held_back_status(version, f),
            None => format!("ksqlDB {version} is running (pid {pid})"),
        }
    }

    /// No answer at all for `agent.hang_timeout`: stop it, count a failure.
    async fn on_hung(&mut self, why: &str, silent: Duration) -> Result<()> {
        let Some(child) = self.state.take_ksqldb(State::Starting) else {
            return Ok(());
        };
        let msg = format!(
            "ksqlDB {} (pid {}) did not answer its health check for {} ({why}; agent.hang_timeout = {}); killing and restarting it",
            child.version,
            child.pid,
            policy::short(silent),
            humantime::format_duration(self.prepared.settings.agent.hang_timeout)
        );
        self.event(
            message_id::HUNG,
            priority::ERR,
            &msg,
            &[
                ("PID", child.pid.to_string()),
                ("VERSION", child.version.clone()),
            ],
        )
        .await;
        self.stop_child(&child).await;
        self.failed("ksqlDB stopped answering its health check")
            .await
    }

    /// WaitingHealthy → Running: READY=1 (or, after a restart, STATUS). `unhealthy`:
    /// it answered that it is not healthy (failing checks, reason), so it enters
    /// Running in the unhealthy condition.
    async fn became_ready(
        &mut self,
        now: Instant,
        pid: i32,
        version: &str,
        unhealthy: Option<(&[String], &str)>,
    ) {
        self.state = match std::mem::replace(&mut self.state, State::Stopping) {
            State::WaitingHealthy { ksqldb, .. } => State::Running {
                ksqldb,
                since: now,
                unhealthy_since: None,
            },
            other => other,
        };
        let line = match unhealthy {
            None => {
                self.status.set_health(Condition::Healthy, &[], "");
                self.status.publish();
                self.event(
                    message_id::HEALTHY,
                    priority::NOTICE,
                    &format!("ksqlDB {version} is healthy (pid {pid})"),
                    &[("PID", pid.to_string()), ("VERSION", version.to_string())],
                )
                .await;
                self.running_line(version, pid)
            }
            Some((failing, why)) => {
                self.became_unhealthy(now, pid, version, failing, why).await;
                unhealthy_status(version, failing, why, Duration::ZERO)
            }
        };
        self.note_good(version);
        if self.readiness == Readiness::Sent {
            self.notifier.status(&line);
        } else {
            self.notifier.ready(&line);
            self.readiness = Readiness::Sent;
        }
        self.reconfig
            .restart_outcome(crate::service::control::Outcome::Done(format!(
                "reloaded: {line}"
            )));
    }

    /// SIGCHLD: reap; if it was ksqlDB, WaitingHealthy/Running → BackingOff (or exit 75).
    async fn on_child_signal(&mut self) -> Result<()> {
        let pid = self.state.ksqldb().map(|w| w.child.pid);
        let Some(exit) = process::reap(pid) else {
            return Ok(());
        };
        if matches!(self.state, State::WaitingHealthy { .. }) {
            self.doctor_after_early_exit();
        }
        let Some(child) = self.state.take_ksqldb(State::Starting) else {
            return Ok(());
        };
        self.after_exit(&child, exit, false).await;
        self.failed(&format!("ksqlDB exited with {exit}")).await
    }

    /// Clean up after ksqlDB's main process ended: leftovers of its group, adopted
    /// descendants, and the event.
    async fn after_exit(&mut self, child: &Child, exit: Exit, requested: bool) {
        process::kill_leftovers(child);
        let prio = if requested {
            priority::INFO
        } else {
            priority::ERR
        };
        let how = if requested { "stopped" } else { "exited" };
        self.event(
            message_id::EXITED,
            prio,
            &format!("ksqlDB {} (pid {}) {how}: {exit}", child.version, child.pid),
            &[
                ("PID", child.pid.to_string()),
                ("VERSION", child.version.clone()),
                ("EXIT_CODE", exit.code_kind().into()),
                ("EXIT_STATUS", exit.status()),
            ],
        )
        .await;
    }

    /// Count a failure: → BackingOff, or give up with exit 75 when there were too many.
    async fn failed(&mut self, what: &str) -> Result<()> {
        self.reconfig.restart_outcome(crate::service::control::Outcome::Failed {
            code: ExitCode::Unavailable.code(),
            message: format!(
                "the reload restarted ksqlDB {} and it failed: {what}; the agent keeps restarting it (journalctl -u ksql-msk)",
                self.launch.version
            ),
        });
        let agent = &self.prepared.settings.agent;
        let now = Instant::now();
        match self.restarts.failed(Limits::of(agent), now) {
            AfterFailure::GiveUp { count } => {
                if let Some(back_to) = self.trial() {
                    let window = humantime::format_duration(agent.restart_window).to_string();
                    let reason = format!("failed {count} times within {window} ({what})");
                    return self.roll_back(back_to, reason).await;
                }
                let msg = format!(
                    "{what}; {count} failures within {} (agent.restart_limit = {}): giving up so that systemd's restart policy takes over",
                    humantime::format_duration(agent.restart_window),
                    agent.restart_limit
                );
                self.give_up(what, msg).await
            }
            AfterFailure::Restart { delay, count } => {
                self.status
                    .failed(what, Condition::Restarting, &self.prepared.settings);
                self.status.publish();
                warn!(
                    "{what}; restarting in {} (failure {count} of at most {} within {})",
                    humantime::format_duration(delay),
                    agent.restart_limit,
                    humantime::format_duration(agent.restart_window)
                );
                let line = format!(
                    "{what}; restarting in {}",
                    humantime::format_duration(delay)
                );
                self.notifier.status(&self.with_diagnosis(line));
                self.state = State::BackingOff { until: now + delay };
                Ok(())
            }
        }
    }

    /// Give up for good: the state file says so (flushed: the process exits next), the
    /// journal gets GAVE_UP and STATUS the reason; exit 75 hands over to systemd's
    /// restart policy.
    async fn give_up(&mut self, what: &str, msg: String) -> Result<()> {
        self.status
            .failed(what, Condition::GaveUp, &self.prepared.settings);
        self.status.flush().await;
        self.event(
            message_id::GAVE_UP,
            priority::ERR,
            &msg,
            &[("PHASE", "supervise".into())],
        )
        .await;
        self.notifier.status(&msg);
        Err(fail(ExitCode::Temporary, msg))
    }

    /// WaitingHealthy past `agent.start_timeout`: stop it, count a failure.
    async fn on_start_timeout(&mut self) -> Result<()> {
        let timeout = self.prepared.settings.agent.start_timeout;
        let Some(child) = self.state.take_ksqldb(State::Starting) else {
            return Ok(());
        };
        let msg = format!(
            "ksqlDB {} (pid {}) did not become healthy within {} (agent.start_timeout); stopping it",
            child.version,
            child.pid,
            humantime::format_duration(timeout)
        );
        self.event(
            message_id::START_TIMEOUT,
            priority::ERR,
            &msg,
            &[("PID", child.pid.to_string())],
        )
        .await;
        self.stop_child(&child).await;
        if let Some(back_to) = self.trial() {
            let reason = format!("never healthy in {}", humantime::format_duration(timeout));
            return self.roll_back(back_to, reason).await;
        }
        self.failed("ksqlDB never became healthy").await
    }

    /// Stop a ksqlDB the agent decided to stop (SIGTERM, grace, SIGKILL).
    async fn stop_child(&mut self, child: &Child) -> Option<Exit> {
        let stop_timeout = self.prepared.settings.agent.stop_timeout;
        self.notifier.extend_by(stop_timeout + process::KILL_WAIT);
        let Supervisor {
            signals,
            watchdog,
            notifier,
            ..
        } = self;
        let mut keepalive = || watchdog.tick(notifier);
        let exit = process::stop(child, stop_timeout, &mut signals.chld, &mut keepalive).await;
        if let Some(e) = exit {
            self.after_exit(child, e, true).await;
        }
        exit
    }

    /// Any state → Stopping: stop ksqlDB, forward its last lines, exit 0.
    async fn shutdown(&mut self, why: &str) -> Result<()> {
        info!("{why}: stopping");
        self.doctor_stop();
        self.notifier.stopping("stopping ksqlDB");
        self.status.set_health(Condition::Stopping, &[], why);
        self.status.publish();
        self.reconfig
            .answer_all(crate::service::control::Outcome::Failed {
                code: ExitCode::Unavailable.code(),
                message: format!("the agent is stopping ({why})"),
            });
        let child = self.state.take_ksqldb(State::Stopping);
        let pid = child.as_ref().map(|c| c.pid);
        if let Some(mut child) = child {
            let forwarders = std::mem::take(&mut child.forwarders);
            self.stop_child(&child).await;
            // ksqlDB's last lines are still in the pipes: forward them before exiting.
            for f in forwarders {
                let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
            }
        }
        self.event(
            message_id::STOPPED,
            priority::INFO,
            &format!("stopped on {why}"),
            &[
                ("PID", pid.map(|p| p.to_string()).unwrap_or_default()),
                ("PHASE", "stop".into()),
            ],
        )
        .await;
        self.status.no_ksqldb();
        self.status.set_health(Condition::Stopped, &[], why);
        self.status.flush().await;
        Ok(())
    }
}

/// STATUS while ksqlDB answers but is unhealthy:
/// `ksqlDB 0.29.0 running, waiting for Kafka: kafka, commandRunner unhealthy for 4m12s`.
fn unhealthy_status(version: &str, failing: &[String], why: &str, lasted: Duration) -> String {
    let lasted = policy::short(lasted);
    if unhealthy_condition(failing) == Condition::CommandRunnerDegraded {
        format!(
            "ksqlDB {version} running, command runner DEGRADED for {lasted}: it processes no DDL; \
             restore the command topic (journalctl -u ksql-msk MESSAGE_ID={} has the command)",
            crate::host::journal::message_id::COMMAND_RUNNER_DEGRADED
        )
    } else if failing.is_empty() {
        format!("ksqlDB {version} running, not healthy for {lasted}: {why}")
    } else if failing.iter().any(|c| c == "kafka") {
        format!(
            "ksqlDB {version} running, waiting for Kafka: {} unhealthy for {lasted}",
            failing.join(", ")
        )
    } else {
        format!(
            "ksqlDB {version} running, {} unhealthy for {lasted}",
            failing.join(", ")
        )
    }
}

/// The condition of a ksqlDB answering `isHealthy: false` with `failing` checks.
fn unhealthy_condition(failing: &[String]) -> Condition {
    if failing
        .iter()
        .any(|c| c == crate::ksqldb::health::COMMAND_RUNNER_DEGRADED)
    {
        Condition::CommandRunnerDegraded
    } else if failing.iter().any(|c| c == "kafka") {
        Condition::WaitingForKafka
    } else {
        Condition::Unhealthy
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
