//! Writing journal entries ourselves: the native protocol
//! (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>) over the journal's datagram socket, so
//! that ksqlDB's lines get their own `SYSLOG_IDENTIFIER` and a `PRIORITY` from their
//! log4j level, and the agent's key events a stable `MESSAGE_ID`.
//!
//! When the agent does not log to the journal, the same entries go to stderr: with an
//! sd-daemon(3) `<N>` prefix when stderr is a journal stream, else as plain lines.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tokio::net::UnixDatagram;

/// The journal's native socket; `KSQL_MSK_JOURNAL_SOCKET` overrides it (tests).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
pub const JOURNAL_SOCKET_ENV: &str = "KSQL_MSK_JOURNAL_SOCKET";

/// The agent's identifier in the journal.
pub const AGENT_IDENTIFIER: &str = "ksql-msk";
/// ksqlDB's identifier in the journal (its lines are forwarded by the agent).
pub const KSQLDB_IDENTIFIER: &str = "ksqldb";

/// Largest MESSAGE we send in one datagram; longer messages are cut (a stack trace of
/// this size has long stopped being useful).
pub const MAX_MESSAGE: usize = 48 * 1024;

/// Stable ids of the agent's key events (`journalctl MESSAGE_ID=...`).
pub mod message_id {
    /// Phases 1–5 done: configuration, brokers and release ready (PHASE, VERSION, BROKERS,
    /// REST_AUTH).
    pub const PREPARED: &str = "0e1b7c5a8f2d4c6b9a3e5d7f1c2b4a60";
    /// ksqlDB was started (PID, VERSION).
    pub const STARTED: &str = "5f3a9c1e7b2d4e8fa6c0b1d2e3f40512";
    /// ksqlDB answers its health check (PID).
    pub const HEALTHY: &str = "a7c4e2f0b9d84c1e8f3a5b6c7d8e9f01";
    /// ksqlDB exited or was killed (PID, EXIT_CODE, EXIT_STATUS).
    pub const EXITED: &str = "c2d9e6a1f4b3480d9e7c6b5a4f3e2d10";
    /// ksqlDB answers its health check but is not healthy, e.g. Kafka is unreachable
    /// (PID, VERSION, CHECKS: the failing checks, comma-separated). It is not restarted.
    pub const UNHEALTHY: &str = "3d5f7b9a1c2e4d6f8a0b2c4e6d8f0a13";
    /// ksqlDB is healthy again after UNHEALTHY (PID, VERSION, UNHEALTHY_SECONDS).
    pub const HEALTHY_AGAIN: &str = "4e6a8c0d2f1b4a3c9e5d7b1f3a5c7e24";
    /// ksqlDB gave no answer at all for agent.hang_timeout: killed and restarted (PID).
    pub const HUNG: &str = "5b7d9f1a3c4e4b6d8f0a2c4e6b8d0f35";
    /// ksqlDB did not become healthy within agent.start_timeout (PID).
    pub const START_TIMEOUT: &str = "d8b1f3e5a7c94b2d8e0f1a2b3c4d5e6f";
    /// Too many failures within agent.restart_window: the agent gives up (exit 75).
    pub const GAVE_UP: &str = "e4f6a8c0b2d14e3f9a5b7c9d1e3f5a72";
    /// The cluster's bootstrap brokers changed (BROKERS).
    pub const BROKERS_CHANGED: &str = "1b3d5f7a9c0e4b2d8f6a4c2e0b9d7f53";
    /// A reload finished (PHASE=reload; RESTART=yes|no).
    pub const RELOADED: &str = "7a9c1e3f5b7d4f0a8c2e4b6d8f0a1c34";
    /// The agent stopped ksqlDB on request and exits (PID).
    pub const STOPPED: &str = "9c1e3a5b7d9f4a1c8e0b2d4f6a8c0e25";
    /// An upgrade failed (never ready within agent.start_timeout, or too many failures
    /// within agent.restart_window) and was rolled back (VERSION: the failed one,
    /// BACK_TO, REASON).
    pub const UPGRADE_FAILED: &str = "95899accd7cd4517aad44858abde5d0f";
    /// Started with the release an earlier failed upgrade was rolled back to, because
    /// the failed version is still configured (VERSION: the configured one, BACK_TO,
    /// REASON).
    pub const UPGRADE_HELD_BACK: &str = "1a23bdd11eb54e579f26f97c116ee830";
    /// At start: ksqlDB's REST API has no authentication on a listener that is not
    /// loopback (LISTENERS).
    pub const REST_API_OPEN: &str = "2aceeb103d17454f857cd6caabba41e1";
    /// While ksqlDB waits for Kafka, the agent's Kafka doctor found why: its first
    /// failing finding (STEP, ACTION, RESOURCE, SID, BROKER when known).
    pub const KAFKA_DIAGNOSIS: &str = "32dafb062518454daaa9ad6fa6938e0f";
    /// ksqlDB's command runner is DEGRADED (/healthcheck commandRunner false while
    /// kafka is healthy, /info serverStatus DEGRADED): it met command-topic entries it
    /// cannot process (PID, VERSION, BACKUP: the backup a restore would use). Not
    /// restarted for: only a restore of the command topic heals it.
    pub const COMMAND_RUNNER_DEGRADED: &str = "f4dc9a51a9574146adc01feab0615b3f";
    /// `ksql-msk metastore restore`: ksqlDB stopped for a restore of its command topic,
    /// and restored (VERSION, PHASE=restore); the tool's lines come between.
    pub const METASTORE_RESTORE: &str = "4cddff92dd2145deb4c2fb67fb6cd2af";
    /// A restore of the command topic failed (VERSION, PHASE=restore); ksqlDB starts
    /// again all the same.
    pub const METASTORE_RESTORE_FAILED: &str = "e1f3e54e64444d709957a4555068dbbf";

    /// Every id above: each has an entry in packaging/ksql-msk.catalog (checked by a
    /// test).
    #[cfg(test)]
    pub const ALL: [&str; 19] = [
        PREPARED,
        STARTED,
        HEALTHY,
        EXITED,
        UNHEALTHY,
        HEALTHY_AGAIN,
        HUNG,
        START_TIMEOUT,
        GAVE_UP,
        BROKERS_CHANGED,
        RELOADED,
        STOPPED,
        UPGRADE_FAILED,
        UPGRADE_HELD_BACK,
        REST_API_OPEN,
        KAFKA_DIAGNOSIS,
        COMMAND_RUNNER_DEGRADED,
        METASTORE_RESTORE,
        METASTORE_RESTORE_FAILED,
    ];
}

/// Syslog priorities used here.
pub mod priority {
    pub const ERR: u8 = 3;
    pub const WARNING: u8 = 4;
    pub const NOTICE: u8 = 5;
    pub const INFO: u8 = 6;
    pub const DEBUG: u8 = 7;
}

/// Append one field in the native protocol: `KEY=value\n`, or, when the value holds a
/// newline, the binary-safe form `KEY\n<u64 LE length><value>\n`.
pub fn put_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// A journal field name: upper-case letters, digits and `_`, not starting with `_` or a
/// digit (journald drops anything else).
pub fn field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with(|c: char| c == '_' || c.is_ascii_digit()) {
        out.remove(0);
    }
    out.truncate(64);
    out
}

/// One entry in the native protocol.
pub fn encode(identifier: &str, priority: u8, message: &str, fields: &[(&str, String)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(message.len() + 128);
    let message = truncate(message, MAX_MESSAGE);
    put_field(&mut buf, "MESSAGE", message.as_bytes());
    put_field(&mut buf, "PRIORITY", priority.to_string().as_bytes());
    put_field(&mut buf, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    for (k, v) in fields {
        let name = field_name(k);
        if !name.is_empty() {
            put_field(&mut buf, &name, v.as_bytes());
        }
    }
    buf
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where entries go.
#[derive(Debug)]
pub enum Sink {
    /// The journal's native socket.
    Journal { socket: UnixDatagram, path: PathBuf },
    /// stderr; `prefix` adds sd-daemon(3) `<N>` priority prefixes.
    Stderr { prefix: bool },
}

impl Sink {
    /// The journal when `journal` (and a socket can be made), else stderr.
    pub fn new(journal: bool) -> Sink {
        if journal {
            let path = std::env::var_os(JOURNAL_SOCKET_ENV)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(JOURNAL_SOCKET));
            match UnixDatagram::unbound() {
                Ok(socket) => return Sink::Journal { socket, path },
                Err(e) => tracing::warn!("cannot open a datagram socket for the journal: {e}"),
            }
        }
        Sink::Stderr {
            prefix: stderr_is_journal(),
        }
    }

    pub fn is_journal(&self) -> bool {
        matches!(self, Sink::Journal { .. })
    }

    /// Write one entry. Journal failures fall back to stderr for that entry.
    pub async fn send(
        &self,
        identifier: &str,
        priority: u8,
        message: &str,
        fields: &[(&str, String)],
    ) {
        match self {
            Sink::Journal { socket, path } => {
                let buf = encode(identifier, priority, message, fields);
                if let Err(e) = socket.send_to(&buf, path).await {
                    tracing::debug!("journal socket {}: {e}", path.display());
                    write_stderr(false, priority, message);
                }
            }
            Sink::Stderr { prefix } => write_stderr(*prefix, priority, message),
        }
    }
}

impl Sink {
    /// One of the agent's key events ([`message_id`]): into the journal with its
    /// MESSAGE_ID and fields, or, when the agent logs to stderr, into its log with the
    /// fields appended.
    pub async fn event(&self, id: &str, prio: u8, message: &str, fields: &[(&str, String)]) {
        if self.is_journal() {
            let mut all: Vec<(&str, String)> = vec![("MESSAGE_ID", id.to_string())];
            all.extend(fields.iter().cloned());
            self.send(AGENT_IDENTIFIER, prio, message, &all).await;
        } else {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let fields = fields.join(" ");
            match prio {
                0..=3 => tracing::error!(message_id = id, "{message} [{fields}]"),
                4 => tracing::warn!(message_id = id, "{message} [{fields}]"),
                _ => tracing::info!(message_id = id, "{message} [{fields}]"),
            }
        }
    }
}

fn write_stderr(prefix: bool, priority: u8, message: &str) {
    use std::io::Write;
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.lines() {
        if prefix {
            out.push_str(&format!("<{priority}>"));
        }
        out.push_str(line);
        out.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// True when `$JOURNAL_STREAM` names the device and inode of our stderr: systemd's
/// documented way to tell that stderr goes to the journal.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message catalog the package installs explains every MESSAGE_ID, and only
    /// those: `-- <id>` then Subject: and Defined-By: ksql-msk.
    #[test]
    fn catalog_has_an_entry_for_every_message_id() {
        let catalog = include_str!("../../packaging/ksql-msk.catalog");
        let mut ids = Vec::new();
        let mut lines = catalog.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(id) = line.strip_prefix("-- ") else {
                continue;
            };
            assert!(
                id.len() == 32
                    && id
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "catalog id {id:?}"
            );
            let subject = lines.next().unwrap_or_default();
            assert!(subject.starts_with("Subject: "), "{id}: {subject:?}");
            assert_eq!(lines.next(), Some("Defined-By: ksql-msk"), "{id}");
            ids.push(id);
        }
        let mut want = message_id::ALL.to_vec();
        want.sort_unstable();
        let mut got = ids.clone();
        got.sort_unstable();
        assert_eq!(got, want, "catalog ids vs message_id::ALL");
        let mut unique = message_id::ALL.to_vec();
        unique.dedup();
        assert_eq!(unique.len(), message_id::ALL.len(), "duplicate MESSAGE_IDs");
    }

    #[test]
    fn native_protocol_fields() {
        let mut buf = Vec::new();
        put_field(&mut buf, "MESSAGE", b"one line");
        assert_eq!(buf, b"MESSAGE=one line\n");
        buf.clear();
        put_field(&mut buf, "MESSAGE", b"a\nb");
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(buf, want);
    }

    #[test]
    fn field_names_sanitized() {
        assert_eq!(field_name("exit_status"), "EXIT_STATUS");
        assert_eq!(field_name("_PID"), "PID");
        assert_eq!(field_name("a.b-c"), "A_B_C");
    }

    #[test]
    fn entry_has_identifier_and_priority() {
        let e = encode("ksqldb", 3, "boom", &[("pid", "42".into())]);
        let text = String::from_utf8(e).unwrap();
        assert!(text.contains("PRIORITY=3\n"));
        assert!(text.contains("SYSLOG_IDENTIFIER=ksqldb\n"));
        assert!(text.contains("PID=42\n"));
    }
}
