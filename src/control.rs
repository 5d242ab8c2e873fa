//! The running agent's control socket, and `ksql-msk reload`, its client: what the
//! unit's `ExecReload=` runs so that `systemctl reload` returns when the reload is done
//! and fails, with the agent's one-line reason, when it failed (systemd 252 has no
//! `Type=notify-reload`).
//!
//! The socket is `control.sock` in `$RUNTIME_DIRECTORY` (the unit's
//! `RuntimeDirectory=ksql-msk`: `/run/ksql-msk`, the service user's, gone when the
//! service stops). The protocol is one line each way: the client sends `reload`, the
//! agent answers `ok <message>` or `error <exit code> <message>` once the reload is
//! done (a reload that restarts ksqlDB is done when the new one is healthy).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::exit::{fail, ExitCode};

/// The socket's name in the runtime directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Where `ksql-msk reload` looks when `$RUNTIME_DIRECTORY` is not set (by hand).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/ksql-msk";
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of a reload, as the client reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    Failed { code: i32, message: String },
}

impl Outcome {
    fn line(&self) -> String {
        match self {
            Outcome::Done(m) => format!("ok {}\n", one_line(m)),
            Outcome::Failed { code, message } => format!("error {code} {}\n", one_line(message)),
        }
    }

    fn parse(line: &str) -> Option<Outcome> {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(m) = line.strip_prefix("ok ") {
            return Some(Outcome::Done(m.to_string()));
        }
        let rest = line.strip_prefix("error ")?;
        let (code, message) = rest.split_once(' ')?;
        Some(Outcome::Failed {
            code: code.parse().ok()?,
            message: message.to_string(),
        })
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Someone waiting for a reload's outcome.
pub type Responder = oneshot::Sender<Outcome>;

/// `$RUNTIME_DIRECTORY` (its first entry: systemd separates several with ':').
fn runtime_dir_from_env() -> Option<PathBuf> {
    let v = std::env::var_os("RUNTIME_DIRECTORY")?;
    let first = v.to_str()?.split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// Listen on `$RUNTIME_DIRECTORY/control.sock`, if the agent has a runtime directory;
/// reload requests arrive on the returned channel. Not having one (run by hand) only
/// means `ksql-msk reload` cannot report (the channel never delivers); SIGHUP still
/// reloads.
pub fn listen() -> Result<mpsc::Receiver<Responder>> {
    let (tx, rx) = mpsc::channel(8);
    let Some(dir) = runtime_dir_from_env() else {
        return Ok(rx);
    };
    let path = dir.join(SOCKET_NAME);
    // A socket left by an earlier run (RuntimeDirectoryPreserve=, or by hand): replace
    // it. Anything else there is not ours to remove.
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(&path);
        } else {
            return Err(fail(
                ExitCode::Unavailable,
                format!(
                    "{}: exists and is not a socket; remove it or the agent cannot report reloads",
                    path.display()
                ),
            ));
        }
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        fail(
            ExitCode::Unavailable,
            format!("cannot listen on {}: {e}", path.display()),
        )
    })?;
    tokio::spawn(serve(listener, tx));
    tracing::debug!("control socket {}", path.display());
    Ok(rx)
}

async fn serve(listener: UnixListener, tx: mpsc::Sender<Responder>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(answer(stream, tx.clone()));
    }
}

async fn answer(stream: UnixStream, tx: mpsc::Sender<Responder>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(256));
    let request = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let outcome = match request {
        Ok(Ok(_)) if line.trim() == "reload" => {
            let (reply, wait) = oneshot::channel();
            if tx.send(reply).await.is_err() {
                Outcome::Failed {
                    code: ExitCode::Unavailable.code(),
                    message: "the agent is stopping".into(),
                }
            } else {
                wait.await.unwrap_or(Outcome::Failed {
                    code: ExitCode::Unavailable.code(),
                    message: "the agent stopped before the reload finished".into(),
                })
            }
        }
        _ => Outcome::Failed {
            code: crate::exit::USAGE,
            message: format!("unknown request {:?} (expected \"reload\")", line.trim()),
        },
    };
    let _ = write.write_all(outcome.line().as_bytes()).await;
    let _ = write.shutdown().await;
}

/// `ksql-msk reload`: ask the running agent to reload and wait for the outcome. With
/// no agent listening but `$MAINPID` set (systemd's ExecReload= environment; an agent
/// from before the control socket), fall back to SIGHUP, which cannot report.
pub fn reload() -> Result<String> {
    let dir = runtime_dir_from_env().unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR));
    let path = dir.join(SOCKET_NAME);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => request_reload(stream, &path),
        Err(e) => match main_pid() {
            Some(pid) => {
                // SAFETY: kill(2) on the pid systemd named as the service's main process.
                if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
                    return Err(fail(
                        ExitCode::Unavailable,
                        format!(
                            "{}: {e}; and SIGHUP to MAINPID {pid} failed: {}",
                            path.display(),
                            std::io::Error::last_os_error()
                        ),
                    ));
                }
                Ok(format!(
                    "sent SIGHUP to the agent (pid {pid}); it has no control socket at {}, so the outcome is in the journal only",
                    path.display()
                ))
            }
            None => Err(fail(
                ExitCode::Unavailable,
                format!(
                    "no ksql-msk agent is listening on {}: {e} (is the service running?)",
                    path.display()
                ),
            )),
        },
    }
}

/// [`reload`] for a command that changed the configuration first (`ksql-msk rollback`):
/// `Ok(None)` when no agent listens, i.e. the service is not running (no SIGHUP
/// fallback: such a command is run by hand, without `$MAINPID`).
pub fn reload_if_running() -> Result<Option<String>> {
    let dir = runtime_dir_from_env().unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR));
    let path = dir.join(SOCKET_NAME);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => request_reload(stream, &path).map(Some),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(fail(
            ExitCode::Unavailable,
            format!("cannot reach the agent on {}: {e}", path.display()),
        )),
    }
}

/// Where a client looks for the control socket.
pub fn socket_path() -> PathBuf {
    runtime_dir_from_env()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR))
        .join(SOCKET_NAME)
}

fn main_pid() -> Option<i32> {
    std::env::var("MAINPID")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
}

fn request_reload(mut stream: std::os::unix::net::UnixStream, path: &Path) -> Result<String> {
    let io = |e: std::io::Error| {
        fail(
            ExitCode::Unavailable,
            format!("talking to the agent on {}: {e}", path.display()),
        )
    };
    stream.write_all(b"reload\n").map_err(io)?;
    let mut line = String::new();
    BufReader::new(stream.try_clone().map_err(io)?.take(64 * 1024))
        .read_line(&mut line)
        .map_err(io)?;
    match Outcome::parse(&line) {
        Some(Outcome::Done(message)) => Ok(message),
        Some(Outcome::Failed { code, message }) => Err(fail(ExitCode::from_code(code), message)),
        None if line.is_empty() => Err(fail(
            ExitCode::Unavailable,
            "the agent closed the connection without an outcome (it may have exited; see journalctl -u ksql-msk)",
        )),
        None => Err(fail(
            ExitCode::Software,
            format!("the agent answered {:?}", line.trim()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lines_round_trip() {
        for o in [
            Outcome::Done("nothing changed; ksqlDB keeps running".into()),
            Outcome::Failed {
                code: 78,
                message: "reload failed: /etc/ksql-msk/ksql-msk.d/90.toml: msk.connectivity".into(),
            },
        ] {
            assert_eq!(Outcome::parse(&o.line()), Some(o.clone()));
        }
        let multi = Outcome::Done("a\nb".into());
        assert_eq!(multi.line(), "ok a b\n");
        assert_eq!(Outcome::parse("error x y"), None);
        assert_eq!(Outcome::parse("hello"), None);
    }
}
