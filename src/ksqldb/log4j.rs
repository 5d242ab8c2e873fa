//! The log4j configuration ksqlDB runs with: generated on every run (phase 5, after
//! ksql-server.properties) from the release's own console-only
//! `etc/ksqldb/log4j.properties` into `etc/ksqldb/ksql-msk-log4j.properties`, and named
//! by `KSQL_LOG4J_OPTS=-Dlog4j.configuration=file:...`.
//!
//! The release's file is a log4j 1 `PropertyConfigurator` file, which log4j reads with
//! `java.util.Properties.load`: the same lossless editor as ksql-server.properties
//! ([`Document`]) keeps every other line. Three edits, nothing else:
//! - `log4j.rootLogger=<LEVEL>, <its appenders>` when `ksqldb.log_level` is set;
//! - `log4j.logger.<name>=<LEVEL>` for each `[ksqldb.loggers]` entry: a logger the file
//!   configures keeps its appenders (`org.apache.kafka.streams` has its own appender and
//!   no additivity: without it, it would print nothing), any other is appended under
//!   [`MARKER`];
//! - the pattern of every console appender without log4j's date (`%d`): journald stamps
//!   each entry. The level (`%p`) stays first, for the entry's priority
//!   ([`crate::ksqldb::child_log::line_priority`]).
//!
//! The file is generated whatever the keys say, so that the console pattern loses its
//! date; with both keys empty it holds the release's levels. Like the properties file,
//! it is written atomically by rename in a directory opened without following links (a
//! link the `ksql` user plants at its name is replaced, never written through), only
//! when its bytes change, and it is one of the files a release may hold unrecorded
//! ([`crate::release::integrity::UNRECORDED`]). The launch spec holds its bytes: a reload
//! restarts ksqlDB only when they changed.
//!
//! A release whose file is not of that shape (missing, no `log4j.rootLogger`: a log4j2
//! configuration) runs with what it has, as before; asking for levels then is refused
//! (78), since they could not take effect.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::config::schema::keys;
use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::host::layout;
use crate::host::{self, Dir};
use crate::ksqldb::properties::render::read_optional;
use crate::ksqldb::properties::Document;

/// The comment that opens the block of loggers the agent adds.
pub const MARKER: &str = "# --- loggers set by ksql-msk ([ksqldb.loggers] in ksql-msk.toml) ---";
/// The generated file holds no secret: readable by whoever runs ksqlDB, whoever wrote it.
pub const MODE: u32 = 0o644;
/// log4j 1's console appender, the one whose lines reach the journal.
const CONSOLE_APPENDER: &str = "org.apache.log4j.ConsoleAppender";
/// The keys log4j 1 reads the root logger from, in the order it tries them.
const ROOT_KEYS: [&str; 2] = ["log4j.rootLogger", "log4j.rootCategory"];

/// The levels to apply, as validated by the config (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels<'a> {
    /// `ksqldb.log_level`; `None`: the release's.
    pub root: Option<&'a str>,
    /// `[ksqldb.loggers]`, in order.
    pub loggers: &'a [(String, String)],
}

impl<'a> Levels<'a> {
    pub fn of(settings: &'a Settings) -> Levels<'a> {
        Levels {
            root: settings.ksqldb.log_level.as_deref(),
            loggers: &settings.ksqldb.loggers,
        }
    }

    fn asked(&self) -> bool {
        self.root.is_some() || !self.loggers.is_empty()
    }
}

/// The log4j configuration ksqlDB is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log4jConfig {
    /// What `-Dlog4j.configuration=file:` names.
    pub path: PathBuf,
    /// Its bytes, as phase 5 left them.
    pub bytes: Vec<u8>,
    /// Generated (else the release's own file, used as it is).
    pub generated: bool,
    /// The generated file was (or, in a dry run, would be) rewritten.
    pub changed: bool,
    /// Unified diff old → new of the generated file; empty when unchanged.
    pub diff: String,
}

/// The generated configuration: `source` (the release's file) with `levels` applied and
/// the date dropped from every console appender's pattern. `Err` says why `source` is
/// not a log4j 1 properties file the agent can edit.
pub fn generate(source: &[u8], levels: &Levels) -> std::result::Result<Vec<u8>, String> {
    let mut doc = Document::parse(source)
        .map_err(|e| format!("{e} (java.util.Properties would refuse it)"))?;
    let root_key = ROOT_KEYS
        .into_iter()
        .find(|k| doc.get(k).is_some())
        .ok_or_else(|| {
            "it sets no log4j.rootLogger: not a log4j 1 configuration (log4j2 reads another format)"
                .to_string()
        })?;
    if let Some(level) = levels.root {
        let value = with_level(&doc.get(root_key).unwrap_or_default(), level);
        doc.set_in(MARKER, root_key, &value);
    }
    for name in console_appenders(&doc) {
        let key = format!("log4j.appender.{name}.layout.ConversionPattern");
        if let Some(pattern) = doc.get(&key) {
            let undated = console_pattern(&pattern);
            if undated != pattern {
                doc.set_in(MARKER, &key, &undated);
            }
        }
    }
    for (name, level) in levels.loggers {
        let key = format!("log4j.logger.{name}");
        let value = match doc.get(&key) {
            Some(old) => with_level(&old, level),
            None => level.clone(),
        };
        doc.set_in(MARKER, &key, &value);
    }
    doc.render_checked().map_err(|e| e.to_string())
}

/// A logger's value (`LEVEL, appender, ...`) with another level, its appenders kept as
/// written.
fn with_level(value: &str, level: &str) -> String {
    match value.find(',') {
        Some(at) => format!("{level}{}", &value[at..]),
        None => level.to_string(),
    }
}

/// The names of the appenders that `doc` makes console appenders.
fn console_appenders(doc: &Document) -> Vec<String> {
    doc.keys()
        .into_iter()
        .filter_map(|k| k.strip_prefix("log4j.appender.").map(str::to_string))
        .filter(|name| !name.contains('.'))
        .filter(|name| {
            doc.get(&format!("log4j.appender.{name}"))
                .is_some_and(|class| class.trim() == CONSOLE_APPENDER)
        })
        .collect()
}

/// A PatternLayout pattern without its date conversions (`%d`, `%-23d`, `%d{ISO8601}`),
/// and the brackets and space they leave; with the level (`%p`) first if it had none.
/// `[%d] %p %m (%c:%L)%n` becomes `%p %m (%c:%L)%n`.
pub fn console_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut dropped = false;
    let mut has_level = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push_str("%%");
            continue;
        }
        let mut spec = String::from('%');
        while let Some(&m) = chars.peek() {
            if m == '-' || m == '.' || m.is_ascii_digit() {
                spec.push(m);
                chars.next();
            } else {
                break;
            }
        }
        let Some(conversion) = chars.next() else {
            out.push_str(&spec);
            break;
        };
        if conversion == 'd' {
            // `%d{ISO8601}`, and EnhancedPatternLayout's `%d{...}{UTC}`.
            while chars.peek() == Some(&'{') {
                for x in chars.by_ref() {
                    if x == '}' {
                        break;
                    }
                }
            }
            dropped = true;
            continue;
        }
        has_level |= conversion == 'p';
        spec.push(conversion);
        out.push_str(&spec);
    }
    if dropped {
        for empty in ["[]", "()"] {
            if !pattern.contains(empty) {
                out = out.replace(empty, "");
            }
        }
        if !pattern.starts_with(char::is_whitespace) {
            out = out.trim_start().to_string();
        }
        if !pattern.contains("  ") {
            while out.contains("  ") {
                out = out.replace("  ", " ");
            }
        }
    }
    if !has_level {
        out.insert_str(0, "%p ");
    }
    out
}

/// Why the levels asked for cannot be applied: 78, naming the key.
fn cannot_apply(levels: &Levels, version: &str, why: &str) -> anyhow::Error {
    let key = if levels.root.is_some() {
        keys::KSQLDB_LOG_LEVEL
    } else {
        keys::KSQLDB_LOGGERS
    };
    fail(
        ExitCode::Config,
        format!(
            "{}: cannot be applied to ksqlDB {version}: {why}; leave {} and {} empty to run \
             it with its own log4j configuration",
            key.path(),
            keys::KSQLDB_LOG_LEVEL.path(),
            keys::KSQLDB_LOGGERS.path()
        ),
    )
}

/// Phase 5 for log4j: generate `<release_dir>/etc/ksqldb/ksql-msk-log4j.properties`
/// from the release's file and write it if its bytes changed. `None`: the release has
/// no log4j file (ksqlDB's scripts then pick their own). `dry_run`: write nothing.
/// `version` names the release in errors.
pub fn render(
    release_dir: &Path,
    levels: &Levels,
    version: &str,
    dry_run: bool,
) -> Result<Option<Log4jConfig>> {
    let etc = Dir::open_beneath(release_dir, host::parent_dir(Path::new(layout::LOG4J)))?;
    let source_path = release_dir.join(layout::LOG4J);
    let Some(source) =
        host::read_state_file(&etc, file_name(&source_path)?, host::StateFile::Properties)?
    else {
        if levels.asked() {
            let why = format!("it has no {}", layout::LOG4J);
            return Err(cannot_apply(levels, version, &why));
        }
        return Ok(None);
    };
    let bytes = match generate(&source, levels) {
        Ok(bytes) => bytes,
        Err(why) if levels.asked() => {
            let why = format!("{}: {why}", source_path.display());
            return Err(cannot_apply(levels, version, &why));
        }
        Err(why) => {
            warn!(
                "{}: {why}; ksqlDB runs with it as it is (log levels cannot be set)",
                source_path.display()
            );
            return Ok(Some(Log4jConfig {
                path: source_path,
                bytes: source,
                generated: false,
                changed: false,
                diff: String::new(),
            }));
        }
    };
    let path = release_dir.join(layout::LOG4J_GENERATED);
    let old = read_optional(&etc, &path, true)?;
    let changed = old.as_deref() != Some(bytes.as_slice());
    let diff = if changed {
        let old = String::from_utf8_lossy(old.as_deref().unwrap_or_default());
        let new = String::from_utf8_lossy(&bytes);
        similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("a/{}", layout::LOG4J_GENERATED),
                &format!("b/{}", layout::LOG4J_GENERATED),
            )
            .to_string()
    } else {
        String::new()
    };
    if changed && !dry_run {
        etc.write_atomic(file_name(&path)?, &bytes, MODE)?;
        info!("{}: written", path.display());
    }
    Ok(Some(Log4jConfig {
        path,
        bytes,
        generated: true,
        changed,
        diff,
    }))
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name()
        .with_context(|| format!("{} has no file name", path.display()))
}

#[cfg(test)]
mod tests;
