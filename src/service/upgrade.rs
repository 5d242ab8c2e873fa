//! Upgrades that roll back by themselves (DESIGN.md phase 6): the record the agent keeps
//! in the state directory, `upgrade.toml`, and the decisions made from it.
//!
//! ```toml
//! good = "0.28.2"              # the last version that became ready
//! failed = "0.29.0"            # a configured version whose upgrade failed ...
//! reason = "never healthy in 5m"
//! back_to = "0.28.2"           # ... and the release it was rolled back to
//! ```
//!
//! The supervisor writes `good` when a ksqlDB becomes ready (healthy, or answering
//! `isHealthy: false`: waiting for Kafka is not a failed upgrade). A ksqlDB of another
//! version than `good` is on trial: if it does not become ready within
//! `agent.start_timeout`, or fails more than `agent.restart_limit` times within
//! `agent.restart_window`, the supervisor writes `failed`, `reason` and `back_to` and
//! only then points `current` back at `back_to` (so a crash in between leaves the record
//! saying what the next start must do). Every run of phases 1–5 ([`choose`]) honours the
//! record while the configured version is the failed one, and drops `failed` as soon as
//! the configured version is another.
//!
//! The record is untrusted input: the `ksql` user (and so a compromised ksqlDB) can
//! write the state directory, and root's `ksql-msk install` reads it. It is read without
//! following a link and never blocks (a FIFO, a socket, a directory or a symlink there is
//! garbage); more than [`MAX_RECORD`] bytes, text that is not UTF-8 or TOML, a version
//! that is not version-shaped (e.g. `../../etc`), a `failed` without `back_to` and
//! `reason`, or `back_to` equal to `failed` is garbage too. Garbage is warned about and
//! treated as no record (no trial, nothing held back); the next write replaces it. What
//! a planted record can do at most is switch to another installed release that verifies
//! against its manifest and a trusted signer: [`choose`]'s caller checks that, and
//! otherwise runs the configured version.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::is_version;
use crate::host::{Dir, StateFile};

/// The record's name in the state directory.
pub const RECORD: &str = "upgrade.toml";
/// A record larger than this is garbage.
pub const MAX_RECORD: usize = 4096;
/// Longest `reason` kept (longer ones are cut).
const MAX_REASON: usize = 200;

/// A configured version whose upgrade failed, and the release it was rolled back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub version: String,
    /// `never healthy in 5m`, `exited 4 times within 10m`.
    pub reason: String,
    pub back_to: String,
}

/// The upgrade record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The last version that became ready.
    pub good: Option<String>,
    pub failed: Option<Failed>,
}

/// What [`load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No record yet.
    Missing,
    Record(Record),
    /// Not a record (why): treated as none.
    Garbage(String),
}

impl Loaded {
    /// The record to act on: garbage and a missing one are an empty record.
    pub fn record(&self) -> Record {
        match self {
            Loaded::Record(r) => r.clone(),
            _ => Record::default(),
        }
    }
}

/// The record's path under `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(RECORD)
}

/// Read the record of `state_dir` (which must exist and be a real directory: a missing
/// one is [`Loaded::Missing`]). Never fails: anything wrong is [`Loaded::Garbage`].
pub fn load(state_dir: &Path) -> Loaded {
    let dir = match Dir::open(state_dir) {
        Ok(d) => d,
        Err(_) if !state_dir.exists() => return Loaded::Missing,
        Err(e) => return Loaded::Garbage(crate::exit::one_line(&e)),
    };
    // A state file: no link followed, no FIFO waited on, owner checked, bounded.
    let bytes = match crate::host::read_state_file(&dir, RECORD, StateFile::UpgradeRecord) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Loaded::Missing,
        Err(e) => return Loaded::Garbage(crate::exit::one_line(&e)),
    };
    parse(&bytes).map_or_else(Loaded::Garbage, Loaded::Record)
}

/// Parse a record's bytes; the error says why they are garbage.
pub fn parse(bytes: &[u8]) -> std::result::Result<Record, String> {
    if bytes.len() > MAX_RECORD {
        return Err(format!("larger than {MAX_RECORD} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("not TOML: {}", e.message()))?;
    let field = |name: &str| -> std::result::Result<Option<String>, String> {
        match doc.get(name) {
            None => Ok(None),
            Some(item) => item
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| format!("{name} is not a string")),
        }
    };
    let version = |name: &str| -> std::result::Result<Option<String>, String> {
        match field(name)? {
            Some(v) if !is_version(&v) => Err(format!("{name} = {v:?} is not a version")),
            v => Ok(v),
        }
    };
    let good = version("good")?;
    let failed = match (version("failed")?, version("back_to")?, field("reason")?) {
        (None, None, None) => None,
        (Some(version), Some(back_to), Some(reason)) if version != back_to => Some(Failed {
            version,
            reason: clean_reason(&reason),
            back_to,
        }),
        _ => return Err("failed, back_to and reason go together (back_to ≠ failed)".into()),
    };
    Ok(Record { good, failed })
}

/// The reason as STATUS shows it: one line of printable text, bounded.
fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect()
}

impl Record {
    pub fn to_toml(&self) -> String {
        let mut doc = toml_edit::DocumentMut::new();
        if let Some(g) = &self.good {
            doc["good"] = toml_edit::value(g.as_str());
        }
        if let Some(f) = &self.failed {
            doc["failed"] = toml_edit::value(f.version.as_str());
            doc["reason"] = toml_edit::value(clean_reason(&f.reason));
            doc["back_to"] = toml_edit::value(f.back_to.as_str());
        }
        format!(
            "# Written by ksql-msk run: the last version that became ready, and an upgrade\n\
             # that failed and was rolled back. Read as untrusted input.\n{doc}"
        )
    }
}

/// Write the record atomically (a reader or a crash sees the old one or the new one).
pub fn save(state_dir: &Path, record: &Record) -> Result<()> {
    Dir::open(state_dir)?.write_atomic(RECORD, record.to_toml().as_bytes(), 0o640)
}

/// What phases 1–5 install, given the record and the configured version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The configured version.
    Configured,
    /// The configured version failed its upgrade: `back_to` instead (if that release is
    /// still installed and verifies).
    HeldBack(Failed),
    /// The configured version changed since an upgrade failed: the record's `failed`
    /// is dropped (save the returned record), and the configured version installed.
    Cleared(Record),
}

/// Decide from the record (pure).
pub fn choose(record: &Record, configured: &str) -> Choice {
    match &record.failed {
        None => Choice::Configured,
        Some(f) if f.version == configured => Choice::HeldBack(f.clone()),
        Some(_) => Choice::Cleared(Record {
            good: record.good.clone(),
            failed: None,
        }),
    }
}

/// The version a ksqlDB of `running` is on trial against: the last good one, if it is
/// another. `None`: not an upgrade (the first install, or the good version itself).
pub fn trial_against(record: &Record, running: &str) -> Option<String> {
    record.good.clone().filter(|g| g != running)
}

/// STATUS for a held-back version: `ksqlDB 0.28.2 running; upgrade to 0.29.0 failed:
/// never healthy in 5m, rolled back`.
pub fn held_back_status(running: &str, failed: &Failed) -> String {
    format!(
        "ksqlDB {running} running; upgrade to {} failed: {}, rolled back",
        failed.version, failed.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(v: &str, back: &str) -> Failed {
        Failed {
            version: v.into(),
            reason: "never healthy in 5m".into(),
            back_to: back.into(),
        }
    }

    #[test]
    fn records_round_trip() {
        for r in [
            Record::default(),
            Record {
                good: Some("0.28.2".into()),
                failed: None,
            },
            Record {
                good: Some("0.28.2".into()),
                failed: Some(failed("0.29.0", "0.28.2")),
            },
        ] {
            assert_eq!(parse(r.to_toml().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason_never_a_panic() {
        let big = format!("good = \"0.28.2\"\n#{}\n", "x".repeat(MAX_RECORD));
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "not UTF-8"),
            (b"good = ", "not TOML"),
            (b"good = 3", "not a string"),
            (b"good = \"../../etc\"", "not a version"),
            (b"good = \"0.28.2/x\"", "not a version"),
            (b"failed = \"0.29.0\"", "go together"),
            (
                b"failed = \"0.29.0\"\nback_to = \"0.29.0\"\nreason = \"x\"",
                "go together",
            ),
            (big.as_bytes(), "larger than"),
        ];
        for (bytes, why) in cases {
            let err = parse(bytes).expect_err(&String::from_utf8_lossy(bytes));
            assert!(err.contains(why), "{err} for {bytes:?}");
        }
        // Unknown keys are ignored (a newer agent may add some); control characters in
        // the reason do not reach STATUS.
        let r =
            parse(b"x = 1\nfailed = \"0.29.0\"\nback_to = \"0.28.2\"\nreason = \"a\\nb\"").unwrap();
        assert_eq!(r.failed.unwrap().reason, "a b");
    }

    #[test]
    fn the_failed_version_is_held_back_until_the_configured_version_changes() {
        let r = Record {
            good: Some("0.28.2".into()),
            failed: Some(failed("0.29.0", "0.28.2")),
        };
        assert_eq!(
            choose(&r, "0.29.0"),
            Choice::HeldBack(failed("0.29.0", "0.28.2"))
        );
        assert_eq!(
            choose(&r, "0.29.1"),
            Choice::Cleared(Record {
                good: Some("0.28.2".into()),
                failed: None
            })
        );
        assert_eq!(choose(&Record::default(), "0.29.0"), Choice::Configured);
        assert_eq!(trial_against(&r, "0.29.1").as_deref(), Some("0.28.2"));
        assert_eq!(trial_against(&r, "0.28.2"), None);
        assert_eq!(trial_against(&Record::default(), "0.28.2"), None);
        assert_eq!(
            held_back_status("0.28.2", &failed("0.29.0", "0.28.2")),
            "ksqlDB 0.28.2 running; upgrade to 0.29.0 failed: never healthy in 5m, rolled back"
        );
    }

    #[test]
    fn load_never_follows_or_blocks_on_what_is_planted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        assert_eq!(load(state), Loaded::Missing);
        let r = Record {
            good: Some("0.28.2".into()),
            failed: None,
        };
        save(state, &r).unwrap();
        assert_eq!(load(state), Loaded::Record(r.clone()));
        // A symlink to a valid record elsewhere: garbage, not followed.
        let elsewhere = dir.path().join("elsewhere.toml");
        std::fs::write(&elsewhere, r.to_toml()).unwrap();
        std::fs::remove_file(path(state)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, path(state)).unwrap();
        assert!(matches!(load(state), Loaded::Garbage(_)));
        // Saving replaces the link, never writes through it.
        save(state, &Record::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), r.to_toml());
        assert_eq!(load(state), Loaded::Record(Record::default()));
        // A FIFO: garbage at once (opening it for reading would block).
        std::fs::remove_file(path(state)).unwrap();
        crate::host::tests::mkfifo(&path(state));
        assert!(matches!(load(state), Loaded::Garbage(_)));
        std::fs::remove_file(path(state)).unwrap();
        // A directory: garbage; saving over it fails with an error, not a panic.
        std::fs::create_dir(path(state)).unwrap();
        assert!(matches!(load(state), Loaded::Garbage(_)));
        assert!(save(state, &r).is_err());
    }
}
