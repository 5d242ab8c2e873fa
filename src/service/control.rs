//! The running agent's control socket, and `ksql-msk reload`, its client: what the
//! unit's `ExecReload=` runs so that `systemctl reload` returns when the reload is done
//! and fails, with the agent's one-line reason, when it failed (systemd 252 has no
//! `Type=notify-reload`).
//!
//! The socket is `control.sock` in `$RUNTIME_DIRECTORY` (the unit's
//! `RuntimeDirectory=ksql-msk`: `/run/ksql-msk`, the service user's, gone when the
//! service stops). The protocol is lines: the client sends `reload`, the agent answers
//! `accepted` at once, `working` every [`KEEPALIVE`] while the reload runs, and last
//! `ok <message>` or `error <exit code> <message>` once the reload is done (a reload
//! that restarts ksqlDB is done when the new one is healthy).
//!
//! The directory is the service user's, so whatever listens there may be a process of
//! the service user's (a compromised ksqlDB) and not the agent; root runs these clients
//! (`reload`, `auth rotate`, `rollback`). So a client proves the peer before it sends
//! anything ([`verify_peer`], `SO_PEERCRED`): its uid must be the service's, the owner
//! of the runtime directory (systemd makes it for the unit's `User=`; only root can
//! change its owner, and its parent `/run` is root's); its pid must be the agent's:
//! `$MAINPID` where systemd passes it (`ExecReload=`), else a process running this very
//! executable (`/proc/PID/exe` is the same file as `/proc/self/exe`), which ksqlDB or
//! any other code the service user started is not. Connecting, writing and every line
//! read are time-limited (one line and 75 when the agent does not answer), and what the
//! peer sends is shown with control characters escaped.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
/// How often the agent says `working` while a reload runs (a reload may download a
/// release: minutes).
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// How long a client waits to connect, to send its request, and for each line.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// `s` with every control character (C0, DEL and C1: U+0000–U+001F, U+007F–U+009F)
/// escaped as `\u{1b}`: what the peer sent, safe for a terminal.
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Someone waiting for a reload's outcome.
pub type Responder = oneshot::Sender<Outcome>;

/// What a client asks the agent for.
#[derive(Debug)]
pub enum Request {
    /// `reload`.
    Reload(Responder),
    /// `restore` / `restore skip-incompatible`: restore ksqlDB's command topic from the
    /// backup `ksql-msk metastore restore` put in the state directory
    /// (src/service/restore.rs).
    Restore {
        skip_incompatible: bool,
        reply: Responder,
    },
}

/// The request a line names; `None` for anything else.
fn parse_request(line: &str, reply: Responder) -> std::result::Result<Request, Responder> {
    match line.trim() {
        "reload" => Ok(Request::Reload(reply)),
        "restore" => Ok(Request::Restore {
            skip_incompatible: false,
            reply,
        }),
        "restore skip-incompatible" => Ok(Request::Restore {
            skip_incompatible: true,
            reply,
        }),
        _ => Err(reply),
    }
}

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
pub fn listen() -> Result<mpsc::Receiver<Request>> {
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

async fn serve(listener: UnixListener, tx: mpsc::Sender<Request>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(answer(stream, tx.clone()));
    }
}

async fn answer(stream: UnixStream, tx: mpsc::Sender<Request>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(256));
    let request = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let (reply, wait) = oneshot::channel();
    let parsed = match request {
        Ok(Ok(_)) => parse_request(&line, reply).ok(),
        _ => None,
    };
    let outcome = match parsed {
        Some(request) => {
            if tx.send(request).await.is_err() {
                Outcome::Failed {
                    code: ExitCode::Unavailable.code(),
                    message: "the agent is stopping".into(),
                }
            } else {
                let _ = write.write_all(b"accepted\n").await;
                keep_alive(&mut write, wait).await
            }
        }
        None => Outcome::Failed {
            code: crate::exit::USAGE,
            message: format!(
                "unknown request {:?} (expected \"reload\" or \"restore\")",
                line.trim()
            ),
        },
    };
    let _ = write.write_all(outcome.line().as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Wait for `wait` (the reload's outcome), saying `working` to the client every
/// [`KEEPALIVE`] so that it can tell a long reload from an agent that does not answer.
async fn keep_alive<W: AsyncWriteExt + Unpin>(
    write: &mut W,
    wait: oneshot::Receiver<Outcome>,
) -> Outcome {
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    loop {
        tokio::select! {
            outcome = &mut wait => {
                return outcome.unwrap_or(Outcome::Failed {
                    code: ExitCode::Unavailable.code(),
                    message: "the agent stopped before the request finished".into(),
                })
            }
            _ = tick.tick() => {
                // A client that went away: the reload goes on all the same.
                let _ = write.write_all(b"working\n").await;
            }
        }
    }
}

/// `ksql-msk reload`: ask the running agent to reload and wait for the outcome. With
/// no agent listening but `$MAINPID` set (systemd's ExecReload= environment; an agent
/// from before the control socket), fall back to SIGHUP, which cannot report.
pub fn reload() -> Result<String> {
    let path = socket_path();
    match connect(&path) {
        Ok(stream) => request_reload(stream, &path),
        Err(Connect::Timeout) => Err(not_answering(&path, "to take the connection")),
        Err(Connect::Failed(e)) => match main_pid() {
            Some(pid) => {
                let sighup = rustix::process::Pid::from_raw(pid)
                    .ok_or(rustix::io::Errno::SRCH)
                    .and_then(|p| rustix::process::kill_process(p, rustix::process::Signal::HUP));
                if let Err(err) = sighup {
                    return Err(fail(
                        ExitCode::Unavailable,
                        format!(
                            "{}: {e}; and SIGHUP to MAINPID {pid} failed: {}",
                            path.display(),
                            std::io::Error::from(err)
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
    request_if_running(b"reload\n")
}

/// Send `line` to the agent on the control socket: `Ok(None)` when no agent listens
/// (no socket, or nothing accepting on it: the service is not running).
fn request_if_running(line: &[u8]) -> Result<Option<String>> {
    let path = socket_path();
    match connect(&path) {
        Ok(stream) => request(stream, &path, line).map(Some),
        Err(Connect::Failed(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(Connect::Timeout) => Err(not_answering(&path, "to take the connection")),
        Err(Connect::Failed(e)) => Err(fail(
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

enum Connect {
    Failed(std::io::Error),
    Timeout,
}

/// Connect to `path` within [`CLIENT_TIMEOUT`] (a plain `connect` blocks for as long as
/// the listener's backlog is full, i.e. for ever with a listener that never accepts).
fn connect(path: &Path) -> std::result::Result<std::os::unix::net::UnixStream, Connect> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let io = |e: rustix::io::Errno| Connect::Failed(e.into());
    let addr = SocketAddrUnix::new(path).map_err(io)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(io)?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                if Instant::now() >= deadline {
                    return Err(Connect::Timeout);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(io(e)),
        }
    }
    let stream = std::os::unix::net::UnixStream::from(fd);
    let timeouts = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(CLIENT_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)));
    timeouts.map_err(Connect::Failed)?;
    Ok(stream)
}

/// One line and 75: the peer (proven the agent) did not answer in time.
fn not_answering(path: &Path, what: &str) -> anyhow::Error {
    fail(
        ExitCode::Temporary,
        format!(
            "the agent on {} did not answer within {}s {what}; it may be stuck (see journalctl -u ksql-msk), try again later",
            path.display(),
            CLIENT_TIMEOUT.as_secs()
        ),
    )
}

/// Who the agent must be, as this client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The service user: the owner of the runtime directory.
    pub uid: u32,
    /// `$MAINPID` when systemd passed it; `None`: the peer must run this executable.
    pub pid: Option<i32>,
}

/// [`Expected`] for the socket at `path`: the owner of its directory (which must be a
/// real directory, not a link), and `$MAINPID`.
fn expected(path: &Path) -> Result<Expected> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| fail(ExitCode::Unavailable, format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: not a directory (a link?): not the agent's runtime directory; nothing sent",
                dir.display()
            ),
        ));
    }
    Ok(Expected {
        uid: meta.uid(),
        pid: main_pid(),
    })
}

/// Refuse a peer that is not the agent (65), before anything is sent to it: its uid
/// must be `expected.uid`, its pid `expected.pid`, or without one, its executable the
/// same file as this process's.
pub fn verify_peer(
    stream: &std::os::unix::net::UnixStream,
    path: &Path,
    expected: Expected,
) -> Result<()> {
    let refuse = |why: String| {
        fail(
            ExitCode::Data,
            format!(
                "{}: the listener is not the ksql-msk agent ({why}); nothing was sent to it. Another process of the service user may have taken the socket: restart the service (systemctl restart ksql-msk)",
                path.display()
            ),
        )
    };
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| refuse(format!("its credentials cannot be read: {e}")))?;
    let (pid, uid) = (cred.pid.as_raw_nonzero().get(), cred.uid.as_raw());
    if uid != expected.uid {
        return Err(refuse(format!(
            "it runs as uid {uid}, the service as uid {}, the owner of {}",
            expected.uid,
            path.parent().unwrap_or(path).display()
        )));
    }
    match expected.pid {
        Some(main) if main != pid => Err(refuse(format!(
            "its pid is {pid}, the service's main process (MAINPID) is {main}"
        ))),
        Some(_) => Ok(()),
        None => {
            let theirs = std::fs::metadata(format!("/proc/{pid}/exe"));
            let ours = std::fs::metadata("/proc/self/exe");
            match (theirs, ours) {
                (Ok(t), Ok(o)) if (t.dev(), t.ino()) == (o.dev(), o.ino()) => Ok(()),
                (Ok(_), Ok(_)) => Err(refuse(format!(
                    "pid {pid} does not run this ksql-msk executable"
                ))),
                (Err(e), _) | (_, Err(e)) => {
                    Err(refuse(format!("cannot tell what pid {pid} runs: {e}")))
                }
            }
        }
    }
}

/// Lines from the agent, each within [`CLIENT_TIMEOUT`] of asking for it (a peer that
/// sends a byte now and then does not stretch the wait) and at most 64 KiB long.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// The next line with its `\n`; what is left at the end of the stream (maybe
    /// nothing) without.
    fn next(&mut self, stream: &mut std::os::unix::net::UnixStream) -> std::io::Result<Vec<u8>> {
        const LIMIT: usize = 64 * 1024;
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                return Ok(self.pending.drain(..=i).collect());
            }
            if self.pending.len() > LIMIT {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a line longer than 64 KiB",
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            stream.set_read_timeout(Some(left))?;
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => return Ok(std::mem::take(&mut self.pending)),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn request_reload(stream: std::os::unix::net::UnixStream, path: &Path) -> Result<String> {
    request(stream, path, b"reload\n")
}

/// `ksql-msk metastore restore`'s request to the running agent: `Ok(None)` when no
/// agent listens (the service is not running).
pub fn restore_if_running(skip_incompatible: bool) -> Result<Option<String>> {
    request_if_running(if skip_incompatible {
        b"restore skip-incompatible\n"
    } else {
        b"restore\n"
    })
}

/// Send `line` to the verified agent on `stream` and wait for its outcome.
fn request(mut stream: std::os::unix::net::UnixStream, path: &Path, line: &[u8]) -> Result<String> {
    verify_peer(&stream, path, expected(path)?)?;
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            not_answering(path, "")
        } else {
            fail(
                ExitCode::Unavailable,
                format!("talking to the agent on {}: {e}", path.display()),
            )
        }
    };
    stream.write_all(line).map_err(io)?;
    let mut lines = Lines::default();
    loop {
        let raw = lines.next(&mut stream).map_err(io)?;
        let line = String::from_utf8_lossy(&raw);
        match line.trim_end_matches(['\r', '\n']) {
            // The agent took the request / is still at it: wait for the next line.
            "accepted" | "working" => continue,
            _ => {}
        }
        return match Outcome::parse(&line) {
            Some(Outcome::Done(message)) => Ok(escape_controls(&message)),
            Some(Outcome::Failed { code, message }) => Err(fail(
                ExitCode::from_code(code),
                escape_controls(&message),
            )),
            None if line.is_empty() => Err(fail(
                ExitCode::Unavailable,
                "the agent closed the connection without an outcome (it may have exited; see journalctl -u ksql-msk)",
            )),
            None => Err(fail(
                ExitCode::Software,
                format!("the agent answered \"{}\"", escape_controls(line.trim_end())),
            )),
        };
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

    #[test]
    fn control_characters_c0_del_and_c1_are_escaped() {
        assert_eq!(escape_controls("plain ü"), "plain ü");
        assert_eq!(
            escape_controls("a\u{1b}]0;x\u{7}b\u{7f}\u{9b}31m\u{85}"),
            "a\\u{1b}]0;x\\u{7}b\\u{7f}\\u{9b}31m\\u{85}"
        );
    }
}
