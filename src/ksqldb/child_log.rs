//! ksqlDB's stdout and stderr into the journal: one entry per log4j event, with the
//! event's level as the journal priority, and a Java stack trace kept in the entry of the
//! line that started it.
//!
//! The release's console pattern is `[%d] %p %m (%c:%L)%n`:
//! `[2024-01-01 12:00:00,123] INFO Server up (io.confluent.ksql.rest.server.KsqlRestApplication:123)`;
//! the configuration the agent generates from it ([`crate::ksqldb::log4j`]) drops the date, which
//! the journal adds: `INFO Server up (io.confluent.ksql.rest.server.KsqlRestApplication:123)`.
//! A line that starts neither with `[` nor with a log4j level and a space (`\tat ...`,
//! `Caused by: ...`, `\t... 12 more`, the rest of a multi-line message) continues the
//! current entry.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::host::journal::{priority, Sink, KSQLDB_IDENTIFIER};

/// A pending entry is written when no continuation line came for this long.
pub const FLUSH_AFTER: Duration = Duration::from_millis(150);
/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 * 1024;
/// Most lines gathered into one entry before it is written anyway.
const MAX_LINES: usize = 400;

/// The journal priority of a log4j level name.
pub fn level_priority(level: &str) -> Option<u8> {
    Some(match level {
        "FATAL" | "ERROR" | "SEVERE" => priority::ERR,
        "WARN" | "WARNING" => priority::WARNING,
        "INFO" => priority::INFO,
        "DEBUG" | "TRACE" | "FINE" | "FINER" | "FINEST" => priority::DEBUG,
        _ => return None,
    })
}

/// log4j's own level names (not java.util.logging's), which start a line of the
/// generated pattern.
const LOG4J_LEVELS: [&str; 6] = ["FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The priority of a line that starts a log4j event: `[<date>] LEVEL ...` (the release's
/// pattern) or `LEVEL ...` (the agent's, without the date; `%-5p` pads it).
pub fn line_priority(line: &str) -> Option<u8> {
    if let Some(rest) = line.strip_prefix('[') {
        let close = rest.find("] ")?;
        let level = rest[close + 2..].split_whitespace().next()?;
        return level_priority(level);
    }
    let (level, _) = line.split_once(' ')?;
    LOG4J_LEVELS
        .contains(&level)
        .then(|| level_priority(level))
        .flatten()
}

/// True for lines that continue the previous entry: stack frames, `Caused by:`,
/// `... N more`, and anything not starting with `[`.
pub fn is_continuation(line: &str) -> bool {
    let trimmed = line.trim_start();
    if trimmed.len() != line.len() && (trimmed.starts_with("at ") || trimmed.starts_with("...")) {
        return true;
    }
    if line.starts_with("Caused by:") || line.starts_with("Suppressed:") {
        return true;
    }
    !line.starts_with('[')
}

/// Groups lines into entries.
#[derive(Debug)]
pub struct Assembler {
    default_priority: u8,
    pending: Option<(u8, String, usize)>,
}

impl Assembler {
    /// `default_priority` applies to entries whose first line carries no level.
    pub fn new(default_priority: u8) -> Assembler {
        Assembler {
            default_priority,
            pending: None,
        }
    }

    /// Feed one line (without its newline). Returns an entry that is now complete.
    pub fn push(&mut self, line: &str) -> Option<(u8, String)> {
        if let Some((_, text, count)) = self.pending.as_mut() {
            if is_continuation(line) && line_priority(line).is_none() && *count < MAX_LINES {
                text.push('\n');
                text.push_str(line);
                *count += 1;
                return None;
            }
        }
        let done = self.flush();
        let prio = line_priority(line).unwrap_or(self.default_priority);
        self.pending = Some((prio, line.to_string(), 1));
        done
    }

    /// The pending entry, if any.
    pub fn flush(&mut self) -> Option<(u8, String)> {
        self.pending.take().map(|(p, t, _)| (p, t))
    }
}

/// Forward one of the child's output streams until it closes.
pub async fn forward<R>(reader: R, stream: &'static str, pid: u32, sink: Arc<Sink>)
where
    R: AsyncRead + Unpin,
{
    let default = if stream == "stderr" {
        priority::WARNING
    } else {
        priority::INFO
    };
    let fields = [
        ("SYSLOG_PID", pid.to_string()),
        ("KSQLDB_STREAM", stream.to_string()),
    ];
    let mut asm = Assembler::new(default);
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    loop {
        let has_pending = asm.pending.is_some();
        let read = if has_pending {
            match tokio::time::timeout(FLUSH_AFTER, read_line(&mut reader, &mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    // Idle: the entry is complete. `buf` keeps any partial line.
                    if let Some((p, text)) = asm.flush() {
                        sink.send(KSQLDB_IDENTIFIER, p, &text, &fields).await;
                    }
                    continue;
                }
            }
        } else {
            read_line(&mut reader, &mut buf).await
        };
        match read {
            Ok(true) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some((p, text)) = asm.push(line) {
                    sink.send(KSQLDB_IDENTIFIER, p, &text, &fields).await;
                }
                buf.clear();
            }
            Ok(false) => break,
            Err(e) => {
                tracing::debug!("reading ksqlDB {stream}: {e}");
                break;
            }
        }
    }
    if !buf.is_empty() {
        let line = String::from_utf8_lossy(&buf).into_owned();
        if let Some((p, text)) = asm.push(line.trim_end()) {
            sink.send(KSQLDB_IDENTIFIER, p, &text, &fields).await;
        }
    }
    if let Some((p, text)) = asm.flush() {
        sink.send(KSQLDB_IDENTIFIER, p, &text, &fields).await;
    }
}

/// Read up to and including the next newline into `buf` (appending, so a cancelled
/// call loses nothing), keeping at most `MAX_LINE` bytes. Ok(false) at end of stream with
/// nothing read.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        reader.consume(n);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let p = |l| line_priority(l);
        assert_eq!(
            p("[2024-01-01 12:00:00,123] INFO Server up (a.B:12)"),
            Some(6)
        );
        assert_eq!(p("[2024-01-01 12:00:00,123] WARN x (a.B:1)"), Some(4));
        assert_eq!(p("[2024-01-01 12:00:00,123] ERROR x (a.B:1)"), Some(3));
        assert_eq!(p("[2024-01-01 12:00:00,123] FATAL x (a.B:1)"), Some(3));
        assert_eq!(p("[2024-01-01 12:00:00,123] DEBUG x (a.B:1)"), Some(7));
        assert_eq!(p("[2024-01-01 12:00:00,123] TRACE x (a.B:1)"), Some(7));
        assert_eq!(p("\tat a.b.C.d(C.java:1)"), None);
        assert_eq!(p("[weird] nolevel"), None);
    }

    #[test]
    fn levels_of_the_generated_pattern_without_the_date() {
        let p = |l| line_priority(l);
        // `%p %m (%c:%L)%n`, and `%-5p` padding.
        assert_eq!(p("INFO Server up (a.B:12)"), Some(6));
        assert_eq!(p("WARN  x (a.B:1)"), Some(4));
        assert_eq!(p("ERROR x (a.B:1)"), Some(3));
        assert_eq!(p("FATAL x (a.B:1)"), Some(3));
        assert_eq!(p("DEBUG x (a.B:1)"), Some(7));
        assert_eq!(p("TRACE x (a.B:1)"), Some(7));
        // Not levels: the JVM's own warnings, java.util.logging's names, a bare word.
        assert_eq!(p("WARNING: An illegal reflective access operation"), None);
        assert_eq!(p("SEVERE x"), None);
        assert_eq!(p("INFO"), None);
        assert_eq!(p("Information x"), None);
        assert_eq!(p("java.lang.IllegalStateException: boom"), None);
    }

    #[test]
    fn stack_trace_without_dates_is_one_entry() {
        let mut a = Assembler::new(6);
        assert!(a.push("ERROR Failed to start (io.X:1)").is_none());
        for l in [
            "java.lang.IllegalStateException: boom",
            "\tat io.confluent.ksql.A.b(A.java:10)",
            "Caused by: java.io.IOException: nope",
            "\t... 12 more",
        ] {
            assert!(a.push(l).is_none(), "{l}");
        }
        let (p, text) = a.push("INFO next (io.X:2)").unwrap();
        assert_eq!(p, 3);
        assert_eq!(text.lines().count(), 5);
        assert_eq!(a.flush().unwrap(), (6, "INFO next (io.X:2)".to_string()));
    }

    #[test]
    fn stack_trace_is_one_entry() {
        let mut a = Assembler::new(6);
        assert!(a
            .push("[2024-01-01 12:00:00,123] ERROR Failed to start (io.X:1)")
            .is_none());
        for l in [
            "java.lang.IllegalStateException: boom",
            "\tat io.confluent.ksql.A.b(A.java:10)",
            "Caused by: java.io.IOException: nope",
            "\t... 12 more",
        ] {
            assert!(a.push(l).is_none(), "{l}");
        }
        let (p, text) = a
            .push("[2024-01-01 12:00:01,000] INFO next (io.X:2)")
            .unwrap();
        assert_eq!(p, 3);
        assert_eq!(text.lines().count(), 5);
        assert!(text.ends_with("\t... 12 more"));
        assert_eq!(a.flush().unwrap().0, 6);
    }

    #[test]
    fn unlevelled_first_line_gets_default() {
        let mut a = Assembler::new(4);
        a.push("Unrecognized VM option 'UseConcMarkSweepGC'");
        a.push("Error: Could not create the Java Virtual Machine.");
        let (p, text) = a.flush().unwrap();
        assert_eq!(p, 4);
        assert_eq!(text.lines().count(), 2);
    }

    #[tokio::test]
    async fn reads_long_lines_bounded() {
        let data = format!("{}\nshort\n", "x".repeat(MAX_LINE * 2));
        let mut r = BufReader::new(data.as_bytes());
        let mut buf = Vec::new();
        assert!(read_line(&mut r, &mut buf).await.unwrap());
        assert_eq!(buf.len(), MAX_LINE);
        buf.clear();
        assert!(read_line(&mut r, &mut buf).await.unwrap());
        assert_eq!(buf, b"short\n");
        buf.clear();
        assert!(!read_line(&mut r, &mut buf).await.unwrap());
    }
}
