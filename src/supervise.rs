//! Phase 6: run ksqlDB and keep it running, as an explicit state machine.
//!
//! ```text
//!   Starting ──spawn──▶ WaitingHealthy ──healthy──▶ Running
//!      ▲                   │ exit / start_timeout      │ exit
//!      └──── BackingOff ◀──┴───────────────────────────┘
//!   any state ──SIGTERM/SIGINT──▶ Stopping ──▶ exit 0
//! ```
//!
//! ksqlDB runs in its own session and process group; stopping signals the whole group,
//! waits `agent.stop_timeout`, then SIGKILLs it. The agent is a child subreaper and reaps
//! every child (`waitpid(-1)`), so it is also safe as PID 1 of a container.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{error, info, warn};

use crate::discovery::{self, BrokerAddr, Discovered};
use crate::exit::{fail, one_line, ExitCode};
use crate::health::{self, Health};
use crate::java::{self, Jvm};
use crate::journal::{message_id, priority, Sink, AGENT_IDENTIFIER};
use crate::notify::Notifier;
use crate::pipeline::{prepare, Prepared};

/// Health probe period while waiting for ksqlDB to come up.
const PROBE_STARTING: Duration = Duration::from_millis(500);
/// Health probe period while running (shorter when the watchdog needs it).
const PROBE_RUNNING: Duration = Duration::from_secs(5);
/// Timeout of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// EXTEND_TIMEOUT_USEC at most this often while waiting for health.
const EXTEND_EVERY: Duration = Duration::from_secs(10);
/// How long a SIGKILLed group may take to disappear before we stop waiting for it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The supervisor's states (zincati-style: one enum, transitions in one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Start ksqlDB now.
    Starting,
    /// Started; waiting for the health check to pass (bounded by `agent.start_timeout`).
    WaitingHealthy { since: Instant },
    /// Healthy at least once since the start; `healthy` is the last probe's verdict.
    Running { since: Instant, healthy: bool },
    /// ksqlDB failed; start again at `until`.
    BackingOff { until: Instant },
    /// Stopping on request; the agent exits after this.
    Stopping,
}

/// The signals the agent handles.
pub struct Signals {
    pub term: tokio::signal::unix::Signal,
    pub int: tokio::signal::unix::Signal,
    pub hup: tokio::signal::unix::Signal,
    pub chld: tokio::signal::unix::Signal,
}

/// A signal stream the agent handles, registered once.
fn sig(kind: SignalKind, name: &str) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| fail(ExitCode::Software, format!("cannot handle {name}: {e}")))
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            term: sig(SignalKind::terminate(), "SIGTERM")?,
            int: sig(SignalKind::interrupt(), "SIGINT")?,
            hup: sig(SignalKind::hangup(), "SIGHUP")?,
            chld: sig(SignalKind::child(), "SIGCHLD")?,
        })
    }
}

/// Exactly how ksqlDB is started. Two equal specs run the same server; a reload restarts
/// ksqlDB only when the spec changes (or the brokers do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub release_dir: PathBuf,
    pub version: String,
    /// The properties file's bytes when the spec was made.
    pub properties: Vec<u8>,
}

/// `PATH` for ksqlDB: the agent's, else a standard one.
fn child_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Build the launch spec: `<release>/bin/ksql-server-start <properties>` with a clean,
/// explicit environment.
pub fn launch_spec(prepared: &Prepared, jvm: &Jvm) -> Result<Launch> {
    let settings = &prepared.settings;
    let release = prepared.release_dir();
    let program = release.join(crate::layout::SERVER_START);
    let properties = std::fs::read(prepared.properties_path())
        .with_context(|| format!("reading {}", prepared.properties_path().display()))
        .map_err(|e| fail(ExitCode::Unavailable, one_line(&e)))?;
    let log_dir = &settings.agent.log_dir;
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("creating agent.log_dir {}", log_dir.display()))?;
    let mut env = vec![
        ("PATH".to_string(), child_path()),
        (
            "JAVA_HOME".to_string(),
            jvm.java.home.to_string_lossy().into_owned(),
        ),
        (
            "LOG_DIR".to_string(),
            log_dir.to_string_lossy().into_owned(),
        ),
        ("KSQL_HEAP_OPTS".to_string(), jvm.heap_opts.clone()),
    ];
    if let Some(opts) = &jvm.performance_opts {
        env.push(("KSQL_JVM_PERFORMANCE_OPTS".to_string(), opts.clone()));
    }
    // ksqlDB's own console-only log4j config, named explicitly so that nothing in the
    // environment can swap it for a file appender: its lines must reach the journal.
    let log4j = release.join("etc/ksqldb/log4j.properties");
    if log4j.is_file() {
        env.push((
            "KSQL_LOG4J_OPTS".to_string(),
            format!("-Dlog4j.configuration=file:{}", log4j.display()),
        ));
    }
    Ok(Launch {
        program,
        args: vec![prepared.properties_path().as_os_str().to_owned()],
        env,
        release_dir: release.to_path_buf(),
        version: prepared.version(),
        properties,
    })
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal { signal: i32, core: bool },
}

impl Exit {
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal {
                signal: libc::WTERMSIG(status),
                core: libc::WCOREDUMP(status),
            }
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// systemd's EXIT_CODE: `exited`, `killed` or `dumped`.
    pub fn code_kind(&self) -> &'static str {
        match self {
            Exit::Code(_) => "exited",
            Exit::Signal { core: true, .. } => "dumped",
            Exit::Signal { .. } => "killed",
        }
    }

    /// systemd's EXIT_STATUS: the exit code, or the signal's name without `SIG`.
    pub fn status(&self) -> String {
        match self {
            Exit::Code(c) => c.to_string(),
            Exit::Signal { signal, .. } => signal_name(*signal).to_string(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal { signal, core } => write!(
                f,
                "signal SIG{}{}",
                signal_name(*signal),
                if *core { " (core dumped)" } else { "" }
            ),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGABRT => "ABRT",
        libc::SIGBUS => "BUS",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGSEGV => "SEGV",
        libc::SIGPIPE => "PIPE",
        libc::SIGTERM => "TERM",
        _ => "UNKNOWN",
    }
}

/// A running ksqlDB.
struct Child {
    /// Also the process group id (the child called setsid).
    pid: i32,
    version: String,
    forwarders: Vec<JoinHandle<()>>,
}

/// Send `sig` to a process group; a group that is gone is fine.
fn kill_group(pgid: i32, sig: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
    let _ = unsafe { libc::kill(-pgid, sig) };
}

/// Reap every exited child; the exit of `watched`, if it was among them.
fn reap(watched: Option<i32>) -> Option<Exit> {
    let mut found = None;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        if Some(pid) == watched {
            found = Some(Exit::from_wait_status(status));
        } else {
            tracing::debug!(pid, "reaped orphaned process");
        }
    }
    found
}

/// Our direct children other than `except`: processes adopted because we are a
/// subreaper (or PID 1).
fn adopted_children(except: Option<i32>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| Some(*pid) != except)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(me)
        })
        .collect()
}

/// Start ksqlDB in its own session and process group, with exactly `launch.env`.
fn spawn(launch: &Launch, sink: &Arc<Sink>) -> Result<Child> {
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.release_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (setsid, prctl, getppid, _exit) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // If the agent dies without stopping ksqlDB (SIGKILL, OOM), ksqlDB dies too.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            ExitCode::Unavailable,
            format!("cannot start {}: {e}", launch.program.display()),
        )
    })?;
    let pid = child.id() as i32;
    let mut forwarders = Vec::new();
    if let Some(out) = child.stdout.take() {
        forwarders.push(forward(OwnedFd::from(out), "stdout", pid, sink)?);
    }
    if let Some(err) = child.stderr.take() {
        forwarders.push(forward(OwnedFd::from(err), "stderr", pid, sink)?);
    }
    // `child` is dropped without waiting: the supervisor reaps with waitpid(-1).
    Ok(Child {
        pid,
        version: launch.version.clone(),
        forwarders,
    })
}

fn forward(
    fd: OwnedFd,
    stream: &'static str,
    pid: i32,
    sink: &Arc<Sink>,
) -> Result<JoinHandle<()>> {
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
        .with_context(|| format!("reading ksqlDB's {stream}"))?;
    Ok(tokio::spawn(crate::child_log::forward(
        rx,
        stream,
        pid as u32,
        sink.clone(),
    )))
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

/// Why phases 1–5 run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Reload,
    BrokersChanged,
}

enum Event {
    Stop(&'static str),
    Reload,
    ChildSignal,
    Probe(Health),
    BackoffOver,
    StartTimeout,
    Rediscover,
    Prepared(Why, Box<Result<Prepared>>),
    Discovered(Result<Discovered>),
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
    child: Option<Child>,
    failures: VecDeque<Instant>,
    backoff: Duration,
    readiness: Readiness,
    next_probe: Instant,
    /// The probe in flight, as a task so that other events never cancel a slow probe.
    probe_task: Option<JoinHandle<Health>>,
    last_extend: Instant,
    /// When WATCHDOG=1 was last sent for a restart the agent itself is driving.
    last_restart_ping: Instant,
    next_rediscover: Instant,
    prepare_tx: mpsc::Sender<(Why, Box<Result<Prepared>>)>,
    prepare_rx: mpsc::Receiver<(Why, Box<Result<Prepared>>)>,
    preparing: Option<Why>,
    /// A reload asked for while another prepare ran.
    reload_again: bool,
    discover_tx: mpsc::Sender<Result<Discovered>>,
    discover_rx: mpsc::Receiver<Result<Discovered>>,
    discovering: bool,
    kafka: Option<aws_sdk_kafka::Client>,
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
        let launch = launch_spec(&prepared, &jvm)?;
        let (prepare_tx, prepare_rx) = mpsc::channel(2);
        let (discover_tx, discover_rx) = mpsc::channel(2);
        let now = Instant::now();
        Ok(Supervisor {
            config_path: config_path.to_path_buf(),
            running_brokers: prepared.discovered.brokers.as_set(),
            backoff: prepared.settings.agent.restart_backoff,
            next_rediscover: now + prepared.settings.agent.rediscover_interval,
            prepared,
            launch,
            notifier,
            sink,
            signals,
            http: health::client(PROBE_TIMEOUT)?,
            state: State::Starting,
            child: None,
            failures: VecDeque::new(),
            readiness: Readiness::NotSent,
            next_probe: now,
            probe_task: None,
            last_extend: now,
            last_restart_ping: now,
            prepare_tx,
            prepare_rx,
            preparing: None,
            reload_again: false,
            discover_tx,
            discover_rx,
            discovering: false,
            kafka: None,
        })
    }

    /// A key agent event: into the journal with its MESSAGE_ID, or the log.
    async fn event(&self, id: &str, prio: u8, message: &str, fields: &[(&str, String)]) {
        if self.sink.is_journal() {
            let mut all: Vec<(&str, String)> = vec![("MESSAGE_ID", id.to_string())];
            all.extend(fields.iter().cloned());
            self.sink.send(AGENT_IDENTIFIER, prio, message, &all).await;
        } else {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let fields = fields.join(" ");
            match prio {
                0..=3 => error!(message_id = id, "{message} [{fields}]"),
                4 => warn!(message_id = id, "{message} [{fields}]"),
                _ => info!(message_id = id, "{message} [{fields}]"),
            }
        }
    }

    /// Run until stopped (Ok) or until ksqlDB failed too often (exit 75).
    pub async fn run(mut self) -> Result<()> {
        become_subreaper();
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
            ],
        )
        .await;
        loop {
            if self.state == State::Starting {
                self.start().await?;
            }
            let event = self.next_event().await;
            match event {
                Event::Stop(why) => return self.shutdown(why).await,
                Event::Reload => self.begin_prepare(Why::Reload),
                Event::ChildSignal => self.on_child_signal().await?,
                Event::Probe(h) => self.on_probe(h).await,
                Event::BackoffOver => self.state = State::Starting,
                Event::StartTimeout => self.on_start_timeout().await?,
                Event::Rediscover => self.begin_rediscover(),
                Event::Prepared(why, result) => self.on_prepared(why, *result).await,
                Event::Discovered(result) => self.on_discovered(result).await,
            }
            self.ping_while_restarting();
        }
    }

    /// After READY, a restart the agent drives (backing off, or waiting for a new ksqlDB
    /// to become healthy) is progress that the agent itself bounds (`restart_limit`,
    /// `start_timeout`): keep systemd's watchdog fed so it does not kill the agent in the
    /// middle of it. Only a ksqlDB that stops answering while Running goes unpinged.
    fn ping_while_restarting(&mut self) {
        let Some(interval) = self.notifier.watchdog_interval() else {
            return;
        };
        let restarting = matches!(
            self.state,
            State::Starting | State::BackingOff { .. } | State::WaitingHealthy { .. }
        );
        if self.readiness != Readiness::NotSent
            && restarting
            && self.last_restart_ping.elapsed() >= interval
        {
            self.notifier.watchdog();
            self.last_restart_ping = Instant::now();
        }
    }

    async fn next_event(&mut self) -> Event {
        let agent = &self.prepared.settings.agent;
        let start_deadline = match self.state {
            State::WaitingHealthy { since } => Some(since + agent.start_timeout),
            _ => None,
        };
        let backoff_until = match self.state {
            State::BackingOff { until } => Some(until),
            _ => None,
        };
        if self.child.is_some() && self.probe_task.is_none() {
            let at = self.next_probe;
            let http = self.http.clone();
            let url = agent.health_url.clone();
            self.probe_task = Some(tokio::spawn(async move {
                sleep_until(at).await;
                health::probe(&http, &url).await
            }));
        }
        let probe_task = &mut self.probe_task;
        let probing = probe_task.is_some();
        let rediscover_at = self.next_rediscover;
        let can_rediscover = !self.discovering && self.preparing.is_none();
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
                match probe_task.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if probing => {
                *probe_task = None;
                Event::Probe(h.unwrap_or_else(|e| Health::NotReady(format!("health probe failed: {e}"))))
            }
            _ = sleep_opt(backoff_until), if backoff_until.is_some() => Event::BackoffOver,
            _ = sleep_opt(start_deadline), if start_deadline.is_some() => Event::StartTimeout,
            _ = sleep_until(rediscover_at), if can_rediscover => Event::Rediscover,
            Some((why, r)) = self.prepare_rx.recv() => Event::Prepared(why, r),
            Some(r) = self.discover_rx.recv() => Event::Discovered(r),
        }
    }

    fn probe_period(&self) -> Duration {
        match self.state {
            State::Running { .. } => match self.notifier.watchdog_interval() {
                Some(w) => PROBE_RUNNING.min(w),
                None => PROBE_RUNNING,
            },
            _ => PROBE_STARTING,
        }
    }

    async fn start(&mut self) -> Result<()> {
        // A probe of a previous ksqlDB must not vouch for this one.
        if let Some(task) = self.probe_task.take() {
            task.abort();
        }
        let what = format!("starting ksqlDB {}", self.launch.version);
        self.notifier.status(&what);
        info!("{what}: {}", self.launch.program.display());
        let child = spawn(&self.launch, &self.sink)?;
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
        let now = Instant::now();
        self.running_brokers = self.prepared.discovered.brokers.as_set();
        self.child = Some(child);
        self.state = State::WaitingHealthy { since: now };
        self.next_probe = now + PROBE_STARTING;
        self.notifier.status(&format!(
            "waiting for ksqlDB {} to become healthy",
            self.launch.version
        ));
        Ok(())
    }

    async fn on_probe(&mut self, health: Health) {
        let now = Instant::now();
        let version = self.launch.version.clone();
        let pid = self.child.as_ref().map(|c| c.pid).unwrap_or_default();
        match (self.state, &health) {
            (State::WaitingHealthy { .. }, Health::Healthy) => {
                self.state = State::Running {
                    since: now,
                    healthy: true,
                };
                let line = format!("ksqlDB {version} is running (pid {pid})");
                self.event(
                    message_id::HEALTHY,
                    priority::NOTICE,
                    &format!("ksqlDB {version} is healthy (pid {pid})"),
                    &[("PID", pid.to_string()), ("VERSION", version.clone())],
                )
                .await;
                if self.readiness == Readiness::Sent {
                    self.notifier.status(&line);
                } else {
                    self.notifier.ready(&line);
                    self.readiness = Readiness::Sent;
                }
                if self.notifier.watchdog_interval().is_some() {
                    self.notifier.watchdog();
                }
            }
            (State::WaitingHealthy { since }, Health::NotReady(why)) => {
                self.notifier.status(&format!(
                    "waiting for ksqlDB {version} to become healthy: {why} ({}s)",
                    now.duration_since(since).as_secs()
                ));
                if now.duration_since(self.last_extend) >= EXTEND_EVERY {
                    self.notifier.extend();
                    self.last_extend = now;
                }
            }
            (State::Running { since, healthy }, Health::Healthy) => {
                let since = if healthy { since } else { now };
                if !healthy {
                    info!("ksqlDB {version} is healthy again");
                    self.notifier
                        .status(&format!("ksqlDB {version} is running (pid {pid})"));
                }
                self.state = State::Running {
                    since,
                    healthy: true,
                };
                if self.notifier.watchdog_interval().is_some() {
                    self.notifier.watchdog();
                }
                let reset_after = self.prepared.settings.agent.restart_backoff_max;
                if now.duration_since(since) >= reset_after {
                    self.backoff = self.prepared.settings.agent.restart_backoff;
                }
            }
            (State::Running { since, healthy }, Health::NotReady(why)) => {
                if healthy {
                    warn!("ksqlDB {version} is not healthy: {why}");
                }
                self.notifier
                    .status(&format!("ksqlDB {version} is not healthy: {why}"));
                self.state = State::Running {
                    since: if healthy { now } else { since },
                    healthy: false,
                };
            }
            // No ksqlDB to vouch for (it exited while the probe ran).
            _ => return,
        }
        self.next_probe = Instant::now() + self.probe_period();
    }

    async fn on_child_signal(&mut self) -> Result<()> {
        let pid = self.child.as_ref().map(|c| c.pid);
        let Some(exit) = reap(pid) else {
            return Ok(());
        };
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        self.after_exit(&child, exit, false).await;
        self.failed(&format!("ksqlDB exited with {exit}")).await
    }

    /// Clean up after ksqlDB's main process ended: leftovers of its group, adopted
    /// descendants, and the event.
    async fn after_exit(&mut self, child: &Child, exit: Exit, requested: bool) {
        kill_group(child.pid, libc::SIGKILL);
        for pid in adopted_children(None) {
            // SAFETY: kill(2) on a process we adopted.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        reap(None);
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

    /// Count a failure; back off, or give up with exit 75 when there were too many.
    async fn failed(&mut self, what: &str) -> Result<()> {
        let agent = &self.prepared.settings.agent;
        let now = Instant::now();
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > agent.restart_window)
        {
            self.failures.pop_front();
        }
        let count = self.failures.len();
        if count > agent.restart_limit as usize {
            let msg = format!(
                "{what}; {count} failures within {} (agent.restart_limit = {}): giving up so that systemd's restart policy takes over",
                humantime::format_duration(agent.restart_window),
                agent.restart_limit
            );
            self.event(
                message_id::GAVE_UP,
                priority::ERR,
                &msg,
                &[("PHASE", "supervise".into())],
            )
            .await;
            self.notifier.status(&msg);
            return Err(fail(ExitCode::Temporary, msg));
        }
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(agent.restart_backoff_max);
        warn!(
            "{what}; restarting in {} (failure {count} of at most {} within {})",
            humantime::format_duration(delay),
            agent.restart_limit,
            humantime::format_duration(agent.restart_window)
        );
        self.notifier.status(&format!(
            "{what}; restarting in {}",
            humantime::format_duration(delay)
        ));
        self.state = State::BackingOff { until: now + delay };
        Ok(())
    }

    async fn on_start_timeout(&mut self) -> Result<()> {
        let timeout = self.prepared.settings.agent.start_timeout;
        let Some(child) = self.child.take() else {
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
        self.stop_child(child).await;
        self.failed("ksqlDB never became healthy").await
    }

    /// SIGTERM the group, wait `stop_timeout`, SIGKILL the group; wait for the exit.
    async fn stop_child(&mut self, child: Child) -> Option<Exit> {
        let stop_timeout = self.prepared.settings.agent.stop_timeout;
        self.notifier.extend_by(stop_timeout + KILL_WAIT);
        info!(
            pid = child.pid,
            "stopping ksqlDB (SIGTERM to its process group)"
        );
        kill_group(child.pid, libc::SIGTERM);
        let mut exit = self
            .wait_exit(child.pid, Instant::now() + stop_timeout)
            .await;
        if exit.is_none() {
            warn!(
                pid = child.pid,
                "ksqlDB did not stop within {} (agent.stop_timeout); sending SIGKILL to its process group",
                humantime::format_duration(stop_timeout)
            );
            kill_group(child.pid, libc::SIGKILL);
            exit = self.wait_exit(child.pid, Instant::now() + KILL_WAIT).await;
        }
        match exit {
            Some(e) => self.after_exit(&child, e, true).await,
            None => error!(pid = child.pid, "ksqlDB did not exit even after SIGKILL"),
        }
        exit
    }

    async fn wait_exit(&mut self, pid: i32, deadline: Instant) -> Option<Exit> {
        loop {
            if let Some(exit) = reap(Some(pid)) {
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                _ = self.signals.chld.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = sleep_until(deadline) => {}
            }
        }
    }

    async fn shutdown(&mut self, why: &str) -> Result<()> {
        self.state = State::Stopping;
        info!("{why}: stopping");
        self.notifier.stopping("stopping ksqlDB");
        let pid = self.child.as_ref().map(|c| c.pid);
        if let Some(mut child) = self.child.take() {
            let forwarders = std::mem::take(&mut child.forwarders);
            self.stop_child(child).await;
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
        Ok(())
    }

    fn begin_prepare(&mut self, why: Why) {
        if why == Why::Reload {
            self.notifier.reloading();
            info!("reload requested: running phases 1–5 again");
        }
        if self.preparing.is_some() {
            self.reload_again = true;
            return;
        }
        self.preparing = Some(why);
        let path = self.config_path.clone();
        let notifier = self.notifier.clone();
        let tx = self.prepare_tx.clone();
        tokio::spawn(async move {
            let result = prepare(&path, notifier.as_ref()).await;
            let _ = tx.send((why, Box::new(result))).await;
        });
    }

    async fn on_prepared(&mut self, why: Why, result: Result<Prepared>) {
        self.preparing = None;
        let outcome = match result.and_then(|p| {
            let jvm = java::jvm_for(&p.settings, &p.version())?;
            let launch = launch_spec(&p, &jvm)?;
            Ok((p, jvm, launch))
        }) {
            Ok(x) => x,
            Err(e) => {
                let msg = format!(
                    "{} failed, ksqlDB keeps running as it was: {}",
                    if why == Why::Reload {
                        "reload"
                    } else {
                        "reconfiguring for new brokers"
                    },
                    one_line(&e)
                );
                error!("{msg}");
                self.finish_reload(why, &msg);
                return;
            }
        };
        let (prepared, jvm, launch) = outcome;
        let mut changes = Vec::new();
        if launch.release_dir != self.launch.release_dir {
            changes.push(format!(
                "release {} → {}",
                self.launch.version, launch.version
            ));
        }
        if launch.properties != self.launch.properties {
            changes.push(format!("{} changed", prepared.properties_path().display()));
        }
        if launch.env != self.launch.env || launch.args != self.launch.args {
            changes.push("JVM environment changed".to_string());
            log_jvm(&jvm);
        }
        let brokers = prepared.discovered.brokers.as_set();
        if brokers != self.running_brokers {
            changes.push(format!("brokers now {}", prepared.discovered.brokers.raw));
        }
        let restart = !changes.is_empty();
        let interval_changed = prepared.settings.agent.rediscover_interval
            != self.prepared.settings.agent.rediscover_interval;
        if interval_changed
            || prepared.settings.msk.endpoint_url != self.prepared.settings.msk.endpoint_url
            || prepared.settings.msk.region != self.prepared.settings.msk.region
        {
            self.kafka = None;
        }
        self.prepared = prepared;
        self.launch = launch;
        if interval_changed {
            self.next_rediscover =
                Instant::now() + self.prepared.settings.agent.rediscover_interval;
        }
        let message = if restart {
            format!("restarting ksqlDB: {}", changes.join("; "))
        } else {
            "nothing changed; ksqlDB keeps running".to_string()
        };
        info!("{message}");
        self.event(
            message_id::RELOADED,
            priority::INFO,
            &message,
            &[
                (
                    "PHASE",
                    if why == Why::Reload {
                        "reload"
                    } else {
                        "rediscover"
                    }
                    .into(),
                ),
                ("RESTART", if restart { "yes" } else { "no" }.into()),
                ("VERSION", self.launch.version.clone()),
                ("BROKERS", self.prepared.discovered.brokers.raw.clone()),
            ],
        )
        .await;
        if restart {
            if let Some(child) = self.child.take() {
                self.stop_child(child).await;
                self.state = State::Starting;
            }
            // Backing off: the next start uses the new spec.
            if why == Why::Reload && self.readiness == Readiness::Sent {
                self.readiness = Readiness::AfterRestart;
            }
        }
        self.finish_reload(why, &message);
    }

    fn finish_reload(&mut self, why: Why, status: &str) {
        if self.reload_again {
            self.reload_again = false;
            self.begin_prepare(Why::Reload);
            return;
        }
        if why == Why::Reload {
            if self.readiness == Readiness::Sent {
                self.notifier.ready(status);
            } else {
                // Before the first READY, or until the restarted ksqlDB is healthy.
                self.notifier.status(status);
            }
        }
    }

    fn begin_rediscover(&mut self) {
        let settings = self.prepared.settings.clone();
        let kafka = self.kafka.clone();
        let tx = self.discover_tx.clone();
        self.discovering = true;
        tokio::spawn(async move {
            let result = async {
                let client = match kafka {
                    Some(c) => c,
                    None => discovery::kafka_client(&settings.msk).await?,
                };
                discovery::discover_with(&client, &settings, &crate::progress::Quiet).await
            }
            .await;
            let _ = tx.send(result).await;
        });
    }

    async fn on_discovered(&mut self, result: Result<Discovered>) {
        self.discovering = false;
        self.next_rediscover = Instant::now() + self.prepared.settings.agent.rediscover_interval;
        match result {
            Err(e) => warn!(
                "rediscovering brokers failed, keeping the current ones; retrying in {}: {}",
                humantime::format_duration(self.prepared.settings.agent.rediscover_interval),
                one_line(&e)
            ),
            Ok(found) => {
                if found.brokers.as_set() == self.running_brokers {
                    tracing::debug!("brokers unchanged");
                    return;
                }
                self.event(
                    message_id::BROKERS_CHANGED,
                    priority::NOTICE,
                    &format!(
                        "the cluster's bootstrap brokers changed: {} → {}",
                        self.prepared.discovered.brokers.raw, found.brokers.raw
                    ),
                    &[("BROKERS", found.brokers.raw.clone())],
                )
                .await;
                self.begin_prepare(Why::BrokersChanged);
            }
        }
    }
}

fn log_jvm(jvm: &Jvm) {
    info!(
        "Java {} ({}) at {}; KSQL_HEAP_OPTS={}{}",
        jvm.java.major,
        jvm.java.version,
        jvm.java.home.display(),
        jvm.heap_opts,
        jvm.performance_opts
            .as_ref()
            .map(|o| format!("; G1 options instead of the release's CMS defaults: {o}"))
            .unwrap_or_default()
    );
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Adopt orphaned descendants of ksqlDB so they can be reaped and killed (PID 1 does
/// this anyway).
fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r != 0 {
        warn!(
            "cannot become a child subreaper: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        assert_eq!(Exit::Code(1).to_string(), "exit code 1");
        let s = Exit::Signal {
            signal: libc::SIGKILL,
            core: false,
        };
        assert_eq!(s.to_string(), "signal SIGKILL");
        assert_eq!(s.code_kind(), "killed");
        assert_eq!(s.status(), "KILL");
    }
}
