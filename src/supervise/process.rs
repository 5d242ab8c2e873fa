//! ksqlDB as a process: spawn it in its own session and process group, reap it, signal
//! and kill its group, and adopt its orphans as a child subreaper.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{error, info, warn};

use super::launch::Launch;
use crate::exit::{fail, ExitCode};
use crate::journal::Sink;

/// How a SIGKILLed group may take to disappear before we stop waiting for it.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

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
#[derive(Debug)]
pub struct Child {
    /// Also the process group id (the child called setsid).
    pub pid: i32,
    pub version: String,
    /// The tasks that forward its stdout and stderr into the journal.
    pub forwarders: Vec<JoinHandle<()>>,
}

/// Send `sig` to a process group; a group that is gone is fine.
pub fn kill_group(pgid: i32, sig: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
    let _ = unsafe { libc::kill(-pgid, sig) };
}

/// Reap every exited child; the exit of `watched`, if it was among them.
pub fn reap(watched: Option<i32>) -> Option<Exit> {
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
pub fn adopted_children(except: Option<i32>) -> Vec<i32> {
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

/// After ksqlDB's main process ended: SIGKILL what is left of its group and the
/// descendants the agent adopted, then reap them.
pub fn kill_leftovers(child: &Child) {
    kill_group(child.pid, libc::SIGKILL);
    for pid in adopted_children(None) {
        // SAFETY: kill(2) on a process we adopted.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    reap(None);
}

/// Start ksqlDB in its own session and process group, with exactly `launch.env`.
pub fn spawn(launch: &Launch, sink: &Arc<Sink>) -> Result<Child> {
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

/// Wait until `pid` has exited (reaping everything else on the way) or `deadline`.
pub async fn wait_exit(
    pid: i32,
    deadline: Instant,
    chld: &mut tokio::signal::unix::Signal,
) -> Option<Exit> {
    loop {
        if let Some(exit) = reap(Some(pid)) {
            return Some(exit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::select! {
            _ = chld.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = sleep_until(deadline) => {}
        }
    }
}

/// SIGTERM the group, wait `stop_timeout`, SIGKILL the group; wait for the exit.
pub async fn stop(
    child: &Child,
    stop_timeout: Duration,
    chld: &mut tokio::signal::unix::Signal,
) -> Option<Exit> {
    info!(
        pid = child.pid,
        "stopping ksqlDB (SIGTERM to its process group)"
    );
    kill_group(child.pid, libc::SIGTERM);
    let mut exit = wait_exit(child.pid, Instant::now() + stop_timeout, chld).await;
    if exit.is_none() {
        warn!(
            pid = child.pid,
            "ksqlDB did not stop within {} (agent.stop_timeout); sending SIGKILL to its process group",
            humantime::format_duration(stop_timeout)
        );
        kill_group(child.pid, libc::SIGKILL);
        exit = wait_exit(child.pid, Instant::now() + KILL_WAIT, chld).await;
    }
    if exit.is_none() {
        error!(pid = child.pid, "ksqlDB did not exit even after SIGKILL");
    }
    exit
}

/// Adopt orphaned descendants of ksqlDB so they can be reaped and killed (PID 1 does
/// this anyway).
pub fn become_subreaper() {
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
