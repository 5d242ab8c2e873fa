//! ksqlDB as a process: spawn it in its own session and process group, reap it, signal
//! and kill its group, and adopt its orphans as a child subreaper.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{error, info, warn};

use super::launch::Launch;
use crate::exit::{fail, ExitCode};
use crate::host::journal::Sink;

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
    /// Also its process group and session id (the child called setsid).
    pub pid: i32,
    /// Its start time (clock ticks after boot): descendants started no earlier.
    pub start_ticks: Option<u64>,
    pub version: String,
    /// The tasks that forward its stdout and stderr into the journal.
    pub forwarders: Vec<JoinHandle<()>>,
}

/// Send `sig` to a process group; a group that is gone is fine.
pub fn kill_group(pgid: i32, sig: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Some(pgid) = Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, sig);
    }
}

/// Reap every exited child; the exit of `watched`, if it was among them.
pub fn reap(watched: Option<i32>) -> Option<Exit> {
    let mut found = None;
    // Any child (wait(2)'s -1: rustix's `waitpid(None, ..)` means pid 0, this process
    // group only, which ksqlDB, in a session of its own, is not in). No child left
    // (ECHILD) or none exited yet: done.
    while let Ok(Some((pid, status))) = rustix::process::wait(rustix::process::WaitOptions::NOHANG)
    {
        let pid = pid.as_raw_nonzero().get();
        if Some(pid) == watched {
            found = Some(Exit::from_wait_status(status.as_raw()));
        } else {
            tracing::debug!(pid, "reaped orphaned process");
        }
    }
    found
}

/// What /proc/PID/stat says of a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: i32,
    session: i32,
    start_ticks: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the `(comm)`, which may itself hold spaces and parentheses: state (3),
/// ppid (4), pgrp (5), session (6), ..., starttime (22).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// The processes the agent adopted from `ksqldb` (as subreaper or PID 1): its direct
/// children that are still in ksqlDB's session, or that left it with a session of their
/// own after ksqlDB started. Never anything else the agent has as a child: a process
/// its parent left behind before exec'ing the agent (a container entrypoint's `tee`),
/// or the agent's own `java -version`.
fn adopted_from(ksqldb: &Child) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != ksqldb.pid)
        .filter(|pid| stat(*pid).is_some_and(|st| st.ppid == me && descends_from(*pid, st, ksqldb)))
        .collect()
}

fn descends_from(pid: i32, st: Stat, ksqldb: &Child) -> bool {
    st.session == ksqldb.pid
        || (st.session == pid && ksqldb.start_ticks.is_some_and(|t| st.start_ticks >= t))
}

/// After ksqlDB's main process ended: SIGKILL what is left of its group and the
/// descendants the agent adopted from it, then reap them.
pub fn kill_leftovers(child: &Child) {
    kill_group(child.pid, Signal::KILL);
    for pid in adopted_from(child).into_iter().filter_map(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
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
    let parent = rustix::process::getpid();
    // SAFETY: `pre_exec` is unsafe because the closure runs between fork and exec, where
    // only async-signal-safe work is allowed: here three system calls (setsid, prctl,
    // getppid) through rustix, no allocation, no lock. std has no safe way to run them
    // in the child, and no kept library wraps spawning with them.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            // If the agent dies without stopping ksqlDB (SIGKILL, OOM), ksqlDB dies too.
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The agent died before the prctl: do not start an orphan.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
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
    let start_ticks = stat(pid).map(|st| st.start_ticks);
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
        start_ticks,
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
    Ok(tokio::spawn(crate::ksqldb::child_log::forward(
        rx,
        stream,
        pid as u32,
        sink.clone(),
    )))
}

/// Wait until `pid` has exited (reaping everything else on the way) or `deadline`.
/// `keepalive` runs every few milliseconds meanwhile (the watchdog).
pub async fn wait_exit(
    pid: i32,
    deadline: Instant,
    chld: &mut tokio::signal::unix::Signal,
    keepalive: &mut dyn FnMut(),
) -> Option<Exit> {
    loop {
        keepalive();
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
    keepalive: &mut dyn FnMut(),
) -> Option<Exit> {
    info!(
        pid = child.pid,
        "stopping ksqlDB (SIGTERM to its process group)"
    );
    kill_group(child.pid, Signal::TERM);
    // A stopped (SIGSTOP, hung-looking) group handles the SIGTERM only once resumed.
    kill_group(child.pid, Signal::CONT);
    let mut exit = wait_exit(child.pid, Instant::now() + stop_timeout, chld, keepalive).await;
    if exit.is_none() {
        warn!(
            pid = child.pid,
            "ksqlDB did not stop within {} (agent.stop_timeout); sending SIGKILL to its process group",
            humantime::format_duration(stop_timeout)
        );
        kill_group(child.pid, Signal::KILL);
        exit = wait_exit(child.pid, Instant::now() + KILL_WAIT, chld, keepalive).await;
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
    // Any non-zero argument sets the attribute; rustix passes the pid given.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        warn!(
            "cannot become a child subreaper: {}",
            std::io::Error::from(e)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let line = "4242 (java (ksql) x) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                session: 4242,
                start_ticks: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        let me = stat(std::process::id() as i32).expect("own stat");
        assert!(me.start_ticks > 0);
    }

    #[test]
    fn who_was_adopted_from_ksqldb() {
        let ksqldb = Child {
            pid: 100,
            start_ticks: Some(5000),
            version: "0.29.0".into(),
            forwarders: Vec::new(),
        };
        let st = |session, start_ticks| Stat {
            ppid: 1,
            session,
            start_ticks,
        };
        // Still in ksqlDB's session (a daemon it forked that was orphaned).
        assert!(descends_from(200, st(100, 6000), &ksqldb));
        // Left it for a session of its own after ksqlDB started (the escapee).
        assert!(descends_from(201, st(201, 6000), &ksqldb));
        // A session leader from before ksqlDB: the entrypoint's helper.
        assert!(!descends_from(202, st(202, 4000), &ksqldb));
        // In the agent's own session: left behind by the agent's parent, or its own.
        assert!(!descends_from(203, st(50, 6000), &ksqldb));
    }

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
