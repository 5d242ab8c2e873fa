//! The agent's half of `ksql-msk metastore restore` (src/service/restore.rs is the
//! command's): ksqlDB stopped, the release's own `bin/ksql-restore-command-topic` run
//! with the rendered properties and ksqlDB's own environment (the service user, the IAM
//! jar and AWS credentials as ksqlDB has them), its output a transcript in the journal,
//! the live backup files set aside, ksqlDB started again.
//!
//! The tool's arguments are ksqlDB's `RestoreOptions` (0.23.1 and 0.29.0 alike):
//! `--config-file <properties>` (required), `-s`/`--skip-incompatible-commands`,
//! `-y`/`--yes` (always: without a TTY its prompt dies on a null console) and the backup
//! file as the one positional argument. It exits 0 when restored, 1 when the file or
//! the restore failed, 2 when a file is missing or unreadable.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;
use tracing::info;

use crate::exit::ExitCode;
use crate::host::journal::{message_id, priority};
use crate::service::control::{Outcome, Responder};

/// The longest a restore may take (the tool deletes, recreates and fills the command
/// topic: seconds for a usual topic; a JVM start besides).
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);
/// Output read from the tool, per stream.
const MAX_OUTPUT: u64 = 1 << 20;
/// The tool's heap (its script would default to -Xmx3g).
const TOOL_HEAP_OPTS: &str = "-Xms64m -Xmx1g";
/// SYSLOG_IDENTIFIER of the tool's lines in the journal.
pub const TOOL_IDENTIFIER: &str = "ksql-restore-command-topic";
/// Lines of the transcript repeated in a failure's one-line reason.
const LAST_LINES: usize = 3;
/// How long the tool may take to exit after SIGTERM when the service stops, well inside
/// the unit's TimeoutStopSec (90 s), before it is killed.
const TOOL_STOP_GRACE: Duration = Duration::from_secs(20);

/// How the tool's run ended.
enum ToolEnd {
    Exited(std::io::Result<std::process::ExitStatus>),
    /// Killed after [`TOOL_TIMEOUT`].
    TimedOut,
    /// Stopped because the service is stopping (the signal's name).
    Stopped(&'static str),
}

impl super::Supervisor {
    /// A restore from the control socket: done inline (nothing else can happen to
    /// ksqlDB meanwhile), the watchdog kept fed.
    pub(super) async fn restore_requested(&mut self, skip_incompatible: bool, reply: Responder) {
        let outcome = self.restore(skip_incompatible).await;
        let _ = reply.send(outcome);
    }

    async fn restore(&mut self, skip_incompatible: bool) -> Outcome {
        let state_dir = self.prepared.settings.agent.state_dir.clone();
        let file = state_dir
            .join(crate::service::restore::DIR)
            .join(crate::service::restore::FILE);
        let version = self.launch.version.clone();
        self.event(
            message_id::METASTORE_RESTORE,
            priority::NOTICE,
            &format!(
                "restoring ksqlDB's command topic from {} with ksqlDB {version}'s {}: stopping ksqlDB",
                file.display(),
                crate::host::layout::RESTORE_TOOL
            ),
            &[("VERSION", version.clone()), ("PHASE", "restore".into())],
        )
        .await;
        self.notifier.status("restoring ksqlDB's command topic");
        if let Some(child) = self.state.take_ksqldb(super::State::Starting) {
            self.stop_child(&child).await;
        }
        // Whatever happens next, ksqlDB starts again (the loop starts it).
        self.state = super::State::Starting;
        match self.run_tool(&file, skip_incompatible).await {
            Ok(()) => self.restored(&version).await,
            Err((code, why)) => {
                let then = match self.stop_requested {
                    Some(_) => "the service stops; the command topic may be partly restored: run the restore again once it runs".to_string(),
                    None => format!("starting ksqlDB {version} again"),
                };
                self.event(
                    message_id::METASTORE_RESTORE_FAILED,
                    priority::ERR,
                    &format!("restoring ksqlDB's command topic failed: {why}; {then}"),
                    &[("VERSION", version.clone()), ("PHASE", "restore".into())],
                )
                .await;
                Outcome::Failed {
                    code: code.code(),
                    message: format!("restoring the command topic failed: {why}"),
                }
            }
        }
    }

    /// The tool succeeded: the old backup files set aside, then ksqlDB starts.
    async fn restored(&mut self, version: &str) -> Outcome {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let record = format!("restore-{millis}");
        let aside = match crate::ksqldb::metastore::set_aside(&self.prepared.settings, &record) {
            Ok(0) => String::new(),
            Ok(n) => format!(
                "; the {n} earlier backup file(s) are kept in {}",
                self.prepared
                    .settings
                    .agent
                    .state_dir
                    .join(crate::ksqldb::metastore::UPGRADES_DIR)
                    .join(&record)
                    .display()
            ),
            Err(e) => format!(
                "; the earlier backup files could not be set aside ({}): ksqlDB may report its command topic out of sync with them",
                crate::exit::one_line(&e)
            ),
        };
        let message =
            format!("ksqlDB's command topic restored{aside}; starting ksqlDB {version} again");
        self.event(
            message_id::METASTORE_RESTORE,
            priority::NOTICE,
            &message,
            &[
                ("VERSION", version.to_string()),
                ("PHASE", "restore".into()),
            ],
        )
        .await;
        Outcome::Done(message)
    }

    /// Run the release's restore tool on `file`; its output goes to the journal line by
    /// line. The error: the exit code for the client and a one-line reason.
    async fn run_tool(&mut self, file: &Path, skip: bool) -> Result<(), (ExitCode, String)> {
        let launch = &self.launch;
        let tool = launch.release_dir.join(crate::host::layout::RESTORE_TOOL);
        let mut cmd = tokio::process::Command::new(&tool);
        cmd.arg("--config-file").args(launch.args.first());
        if skip {
            cmd.arg("--skip-incompatible-commands");
        }
        // ksqlDB's environment, less its JMX port (the tool needs none) and its heap:
        // the tool holds the backup (at most 256 MiB, checked) and little else.
        let env = launch
            .env
            .iter()
            .filter(|(k, _)| k != "KSQL_JMX_OPTS" && k != "KSQL_HEAP_OPTS")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("KSQL_HEAP_OPTS", TOOL_HEAP_OPTS)]);
        cmd.arg("--yes")
            .arg(file)
            .env_clear()
            .envs(env)
            .current_dir(&launch.release_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        info!("running {} on {}", tool.display(), file.display());
        let mut child = cmd.spawn().map_err(|e| {
            (
                ExitCode::Unavailable,
                format!("cannot run {}: {e}", tool.display()),
            )
        })?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(bool, String)>(64);
        let readers = [
            child
                .stdout
                .take()
                .map(|o| tokio::spawn(lines(o, false, tx.clone()))),
            child
                .stderr
                .take()
                .map(|e| tokio::spawn(lines(e, true, tx.clone()))),
        ];
        drop(tx);
        let mut last = Last::default();
        let end = self.wait_tool(&mut child, &mut rx, &mut last).await;
        for r in readers.into_iter().flatten() {
            let _ = r.await;
        }
        while let Ok((err, line)) = rx.try_recv() {
            self.transcript(err, line, &mut last).await;
        }
        judge_tool(end, &last)
    }

    /// One line of the tool's output: into the journal (as the tool's own entry, like
    /// ksqlDB's lines; on stderr when the agent logs there), and kept among the last few.
    async fn transcript(&self, err: bool, line: String, last: &mut Last) {
        self.sink
            .send(
                TOOL_IDENTIFIER,
                priority::INFO,
                &line,
                &[("PHASE", "restore".into())],
            )
            .await;
        let kept = if err { &mut last.err } else { &mut last.out };
        kept.push(line);
        if kept.len() > LAST_LINES {
            kept.remove(0);
        }
    }

    /// Wait for the tool (bounded by [`TOOL_TIMEOUT`]), logging its lines and feeding
    /// the watchdog. A stop signal meanwhile stops the tool (SIGTERM to its process
    /// group, SIGKILL after [`TOOL_STOP_GRACE`]) rather than leave it to the unit's stop
    /// timeout, and is kept for the loop ([`super::Supervisor::stop_requested`]).
    async fn wait_tool(
        &mut self,
        child: &mut tokio::process::Child,
        rx: &mut tokio::sync::mpsc::Receiver<(bool, String)>,
        last: &mut Last,
    ) -> ToolEnd {
        let deadline = Instant::now() + TOOL_TIMEOUT;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let super::Signals { term, int, .. } = &mut self.signals;
            let signal = tokio::select! {
                status = child.wait() => return ToolEnd::Exited(status),
                Some((err, line)) = rx.recv() => {
                    self.transcript(err, line, last).await;
                    continue;
                }
                _ = tick.tick() => {
                    self.watchdog.tick(&self.notifier);
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    signal_group(child, rustix::process::Signal::KILL);
                    let _ = child.wait().await;
                    return ToolEnd::TimedOut;
                }
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            self.stop_requested = Some(signal);
            info!(
                "{signal} during the restore: stopping {TOOL_IDENTIFIER} (SIGTERM, SIGKILL after {}s)",
                TOOL_STOP_GRACE.as_secs()
            );
            self.notifier.status("stopping: the restore is interrupted");
            signal_group(child, rustix::process::Signal::TERM);
            if tokio::time::timeout(TOOL_STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(child, rustix::process::Signal::KILL);
                let _ = child.wait().await;
            }
            return ToolEnd::Stopped(signal);
        }
    }
}

/// Send `signal` to the tool's process group (it leads its own).
fn signal_group(child: &tokio::process::Child, signal: rustix::process::Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// The last lines the tool printed, per stream.
#[derive(Default)]
struct Last {
    out: Vec<String>,
    err: Vec<String>,
}

/// The tool's exit, as the client's outcome.
fn judge_tool(end: ToolEnd, last: &Last) -> Result<(), (ExitCode, String)> {
    // What it said on stderr (why it failed), else its last lines on stdout: the two
    // streams are read apart, so their order is not kept.
    let lines = if last.err.is_empty() {
        &last.out
    } else {
        &last.err
    };
    let said = if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join(" | "))
    };
    match end {
        ToolEnd::TimedOut => Err((
            ExitCode::Temporary,
            format!(
                "the restore tool did not finish within {}s and was killed",
                TOOL_TIMEOUT.as_secs()
            ),
        )),
        ToolEnd::Stopped(signal) => Err((
            ExitCode::Temporary,
            format!("the service got {signal} and the restore tool was stopped{said}"),
        )),
        ToolEnd::Exited(Err(e)) => Err((
            ExitCode::Software,
            format!("waiting for the restore tool: {e}"),
        )),
        ToolEnd::Exited(Ok(s)) if s.success() => Ok(()),
        ToolEnd::Exited(Ok(s)) => Err((
            match s.code() {
                Some(1 | 2) => ExitCode::Data,
                _ => ExitCode::Software,
            },
            format!("the restore tool exited with {s}{said}"),
        )),
    }
}

/// Send each line read from `from` (`err`: its stderr) (at most [`MAX_OUTPUT`] bytes) to `tx`.
async fn lines(
    from: impl tokio::io::AsyncRead + Unpin,
    err: bool,
    tx: tokio::sync::mpsc::Sender<(bool, String)>,
) {
    use tokio::io::AsyncReadExt;
    let mut reader = tokio::io::BufReader::new(from.take(MAX_OUTPUT));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = crate::service::control::escape_controls(line.trim_end());
                if tx.send((err, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}
