//! ksqlDB's own state: the command-topic backup ksqlDB keeps when
//! `ksql.metastore.backup.location` is set (docs/METASTORE.md has the ksqlDB source
//! lines this relies on).
//!
//! ksqlDB (0.13 and later: the key alone turns it on) appends every command-topic
//! record it reads to `backup_<command topic>_<epoch ms>` in that directory, one line
//! per record (`<JSON key>:<JSON value>`), reopens the file with the largest timestamp
//! at each start and never deletes one. Since 0.23.1 (ksql PR #8257) a missing command
//! topic plus *any* file in that directory makes ksqlDB refuse to create the topic, so
//! the directory holds nothing but ksqlDB's files: the agent's copies go elsewhere.
//!
//! Everything here only reads the directory, through a handle opened beneath the state
//! directory without following links: the service user writes it.

use std::path::{Path, PathBuf};

use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::config::Settings;
use crate::host::failpoint;
use crate::host::{Dir, Kind};

/// The directory under the state directory (DESIGN.md, host layout).
pub const DIR: &str = "metastore";
/// The ksqlDB server property naming it.
pub const LOCATION_KEY: &str = "ksql.metastore.backup.location";
/// ksqlDB's own default `ksql.service.id`.
pub const DEFAULT_SERVICE_ID: &str = "default_";
/// ksqlDB creates the directory `rwx------` when it is missing; so does the agent.
const DIR_MODE: u32 = 0o700;
/// At most this many names are looked at (a directory the service user filled with
/// millions of files must not make `status` slow).
const MAX_ENTRIES: usize = 100_000;

/// Whether `version` sets backups on with the location alone: 0.13 and later (ksql
/// PR #6164 removed `ksql.enable.metastore.backup`, which 0.11 and 0.12 also needed).
pub fn supports_backup_location(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .ok()
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(0), Some(minor)) => minor >= 13,
        (Some(major), Some(_)) => major >= 1,
        _ => false,
    }
}

/// The directory ksqlDB writes its backup to (`<state_dir>/metastore`).
pub fn backup_dir(settings: &Settings) -> std::path::PathBuf {
    settings.agent.state_dir.join(DIR)
}

/// The `ksql.service.id` in effect (`[properties]` wins; else ksqlDB's default).
pub fn service_id(settings: &Settings) -> String {
    settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == "ksql.service.id")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| DEFAULT_SERVICE_ID.to_string())
}

/// The prefix of ksqlDB's backup files for `service_id`: `backup_` + the command topic
/// (`_confluent-ksql-<id>_command_topic`) + `_`.
pub fn file_prefix(service_id: &str) -> String {
    format!("backup__confluent-ksql-{service_id}_command_topic_")
}

/// A live backup file's timestamp: the name is the prefix and digits only (ksqlDB
/// 0.25+ also keeps `<file>.dirty` and, briefly, `<file>.tmp` beside it).
pub fn timestamp_of(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Create the backup directory (0700, as ksqlDB would) if it is missing. Under a state
/// directory that root adopted it becomes the state directory owner's, so ksqlDB (the
/// service user) can write it.
pub fn ensure_dir(settings: &Settings) -> Result<()> {
    let state = Dir::open(&settings.agent.state_dir)?;
    state.create_dir(DIR, DIR_MODE)?;
    state.open_dir(DIR)?;
    Ok(())
}

/// Before an install: the backup directory made if missing (one for every version, kept
/// across upgrades and rollbacks), and a note in the journal when the configured version
/// takes no backup location.
pub fn prepare(settings: &Settings) -> Result<()> {
    ensure_dir(settings)?;
    if !supports_backup_location(&settings.ksqldb.version) {
        tracing::info!(
            "ksqlDB {} keeps no command-topic backup with {LOCATION_KEY} alone (0.13 and later do): not set",
            settings.ksqldb.version
        );
    }
    Ok(())
}

/// The agent's copies of the backup, one directory per version switch, outside the
/// backup directory (which must hold only ksqlDB's files).
pub const UPGRADES_DIR: &str = "upgrades";
/// Upgrade records kept (the oldest go first).
pub const MAX_RECORDS: usize = 8;
/// Largest backup copied (command topics are KiB to a few MiB; a bigger file is
/// someone else's, or a sparse file planted to fill the disk).
pub const MAX_COPY_BYTES: u64 = 256 << 20;
/// The copies are ksqlDB's metadata: statements, not secrets, but not for everyone.
const RECORD_MODE: u32 = 0o640;

/// Before `current` switches from `from` to `to`: copy the newest backup of this
/// service id into `upgrades/<from>-to-<to>/` under its own name (so a re-run after a
/// crash copies to the same place, and a torn copy is never seen: the copy is atomic),
/// cut at its last complete line (ksqlDB may be appending meanwhile). Keeps at most
/// [`MAX_RECORDS`] records. Returns the copy, `None` when there is no backup.
pub fn keep_for_upgrade(settings: &Settings, from: &str, to: &str) -> Result<Option<PathBuf>> {
    use std::io::Read;
    let state = &settings.agent.state_dir;
    let Ok(dir) = Dir::open_beneath(state, Path::new(DIR)) else {
        return Ok(None);
    };
    let Some((name, _)) = latest(&dir, &service_id(settings))? else {
        return Ok(None);
    };
    let Some(file) = dir.open_file(&name)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_COPY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}/{name}", dir.path().display()))?;
    if bytes.len() as u64 > MAX_COPY_BYTES {
        tracing::warn!(
            "{}/{name} is larger than {} MiB: not copied into the upgrade record",
            dir.path().display(),
            MAX_COPY_BYTES >> 20
        );
        return Ok(None);
    }
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    failpoint::hit("upgrade.before_backup_copy")?;
    let record = format!("{from}-to-{to}");
    let upgrades = Dir::create_beneath(state, Path::new(UPGRADES_DIR), 0o750)?;
    upgrades.create_dir(&record, 0o750)?;
    let into = upgrades.open_dir(&record)?;
    into.write_atomic_at(&name, &bytes, RECORD_MODE, "upgrade.mid_backup_copy")?;
    prune_records(&upgrades, &record);
    let copy = into.path().join(&name);
    tracing::info!(
        "ksqlDB {from} -> {to}: its command-topic backup ({} bytes) is kept in {}",
        bytes.len(),
        copy.display()
    );
    Ok(Some(copy))
}

/// After a restore of the command topic: move every file of the backup directory into
/// `upgrades/<record>/` (kept, and bounded like the upgrade records). ksqlDB compares
/// its newest backup with the topic record by record at each start; the old files no
/// longer match the restored topic, and ksqlDB would call that corruption (facts:
/// CommandTopicBackupImpl, "Backup is out of sync with the current command topic").
/// Returns how many files were moved.
pub fn set_aside(settings: &Settings, record: &str) -> Result<usize> {
    let state = &settings.agent.state_dir;
    let Ok(dir) = Dir::open_beneath(state, Path::new(DIR)) else {
        return Ok(0);
    };
    let names = dir.entries()?;
    if names.is_empty() {
        return Ok(0);
    }
    let upgrades = Dir::create_beneath(state, Path::new(UPGRADES_DIR), 0o750)?;
    upgrades.create_dir(record, 0o750)?;
    let into = upgrades.open_dir(record)?;
    let mut moved = 0;
    for name in names.into_iter().take(MAX_ENTRIES) {
        // Through both handles: a name, never a path, and no link followed.
        rustix::fs::renameat(&dir, &name, &into, &name)
            .map_err(std::io::Error::from)
            .with_context(|| {
                format!(
                    "moving {} into {}",
                    dir.path().join(&name).display(),
                    into.path().display()
                )
            })?;
        moved += 1;
    }
    dir.sync()?;
    into.sync()?;
    prune_records(&upgrades, record);
    Ok(moved)
}

/// Remove the oldest records beyond [`MAX_RECORDS`] (never `keep`); best effort.
fn prune_records(upgrades: &Dir, keep: &str) {
    let Ok(names) = upgrades.entries() else {
        return;
    };
    let mut records: Vec<(std::time::SystemTime, String)> = names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| !n.starts_with('.') && n != keep)
        .filter_map(|n| {
            let meta = upgrades.open_dir(&n).ok()?.metadata().ok()?;
            Some((meta.modified().ok()?, n))
        })
        .collect();
    records.sort();
    let excess = (records.len() + 1).saturating_sub(MAX_RECORDS);
    for (_, name) in records.into_iter().take(excess) {
        // Beneath the held handle, never following a link.
        let path = upgrades.path().join(&name);
        match upgrades.remove_tree(&name) {
            Ok(()) => tracing::info!("removed the old upgrade record {}", path.display()),
            Err(e) => tracing::warn!(
                "could not remove the old upgrade record {}: {}",
                path.display(),
                crate::exit::one_line(&e)
            ),
        }
    }
}

/// (major, minor) of a version string.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

/// For `check`: when the installed release (`current`) and `to` differ in their minor
/// version before ksqlDB 1.0, what that means for the command topic and which backup
/// the way back would use. ksqlDB's upgrade page: "Until version 1.0 of ksqlDB, each
/// minor release will potentially have breaking changes in it".
pub fn version_change_note(settings: &Settings, from: &str, to: &str) -> Option<String> {
    let (a, b) = (major_minor(from)?, major_minor(to)?);
    if a == b || (a.0 >= 1 && b.0 >= 1) {
        return None;
    }
    let kept = Dir::open_beneath(&settings.agent.state_dir, Path::new(DIR))
        .ok()
        .and_then(|d| latest(&d, &service_id(settings)).ok().flatten())
        .map(|(name, _)| {
            format!(
                "{}/{UPGRADES_DIR}/{from}-to-{to}/{name}",
                settings.agent.state_dir.display()
            )
        });
    Some(format!(
        "ksqlDB {from} -> {to} changes the minor version before 1.0: the new version may write \
         command-topic entries {from} cannot read (going back then needs a restore of the command \
         topic); {}",
        match kept {
            Some(k) => format!("the switch keeps the current backup as {k} for that"),
            None => "there is no command-topic backup yet to keep for that".to_string(),
        }
    ))
}

/// The records of a backup file: each line a JSON string (the CommandId), `:`, a JSON
/// object (the Command), as ksqlDB's BackupReplayFile writes and its restore tool reads
/// them. Names the first line that is not (1-based).
pub fn check_records(bytes: &[u8]) -> std::result::Result<usize, String> {
    let mut n = 0;
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let bad = || format!("line {} is not a command-topic record", i + 1);
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        let key = stream.next().and_then(|r| r.ok()).ok_or_else(bad)?;
        let rest = &text[stream.byte_offset()..];
        let value = rest.strip_prefix(':').ok_or_else(bad)?;
        let value: serde_json::Value = serde_json::from_str(value).map_err(|_| bad())?;
        if !key.is_string() || !value.is_object() {
            return Err(bad());
        }
        n += 1;
    }
    Ok(n)
}

/// `ksql-msk metastore backup [FILE]`: the newest backup, whole lines, checked, written
/// atomically to `file` (default: its own name in the current directory), 0640 and the
/// config file's group when run as root.
pub fn backup_to(settings: &Settings, file: Option<&Path>) -> Result<PathBuf> {
    use crate::exit::{fail, ExitCode};
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let state = &settings.agent.state_dir;
    let none = || {
        fail(
            ExitCode::Unavailable,
            format!(
                "no command-topic backup of service id {} in {} yet",
                service_id(settings),
                state.join(DIR).display()
            ),
        )
    };
    let dir = Dir::open_beneath(state, Path::new(DIR)).map_err(|_| none())?;
    let (name, _) = latest(&dir, &service_id(settings))?.ok_or_else(none)?;
    let src = dir.path().join(&name);
    let f = dir.open_file(&name)?.ok_or_else(none)?;
    let mut bytes = Vec::new();
    f.take(MAX_COPY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", src.display()))?;
    if bytes.len() as u64 > MAX_COPY_BYTES {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: larger than {} MiB, not a backup ksqlDB wrote",
                src.display(),
                MAX_COPY_BYTES >> 20
            ),
        ));
    }
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    check_records(&bytes)
        .map_err(|why| fail(ExitCode::Data, format!("{}: {why}", src.display())))?;
    let target = match file {
        Some(f) => f.to_path_buf(),
        None => PathBuf::from(&name),
    };
    let (out, out_name) = Dir::parent_of(&target)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let gid = std::fs::metadata(&settings.source)
            .with_context(|| format!("reading {}", settings.source.display()))?
            .gid();
        out.write_atomic_owned(&out_name, &bytes, RECORD_MODE, (0, gid))?;
    } else {
        out.write_atomic(&out_name, &bytes, RECORD_MODE)?;
    }
    Ok(target)
}

/// What is in the backup directory, for `status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// The directory.
    pub path: String,
    /// The newest live backup file of this service id (`backup_<topic>_<ms>`).
    pub latest_file: Option<String>,
    /// Its size in bytes.
    pub latest_bytes: u64,
    /// Its last write (ksqlDB appends each new command).
    pub last_write: Option<SystemTime>,
    /// Regular files in the directory and their total size.
    pub files: usize,
    pub total_bytes: u64,
    /// Names that are not ksqlDB's backup files of this service id (another service
    /// id's, or planted): with a missing command topic, ksqlDB 0.23.1+ would take any
    /// file as a backup and not create the topic.
    pub foreign_files: usize,
}

/// The newest live backup file in `dir` for `service_id`, as (name, timestamp).
pub fn latest(dir: &Dir, service_id: &str) -> Result<Option<(String, u64)>> {
    let prefix = file_prefix(service_id);
    let mut best: Option<(String, u64)> = None;
    for name in dir.entries()?.into_iter().take(MAX_ENTRIES) {
        let Some(name) = name.to_str() else { continue };
        let Some(ts) = timestamp_of(name, &prefix) else {
            continue;
        };
        if dir.kind(name)? != Some(Kind::File) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| ts > *b) {
            best = Some((name.to_string(), ts));
        }
    }
    Ok(best)
}

/// Look at the backup directory under `state_dir`; `None` when it does not exist (or
/// is not a real directory).
pub fn scan(state_dir: &Path, service_id: &str) -> Option<Scan> {
    let dir = Dir::open_beneath(state_dir, Path::new(DIR)).ok()?;
    let prefix = file_prefix(service_id);
    let mut info = Scan {
        path: dir.path().display().to_string(),
        ..Scan::default()
    };
    let mut best: Option<u64> = None;
    for name in dir.entries().ok()?.into_iter().take(MAX_ENTRIES) {
        if dir.kind(&name).ok().flatten() != Some(Kind::File) {
            info.foreign_files += 1;
            continue;
        }
        // Opened without following a link, non-blocking, regular files only.
        let Some(meta) = dir
            .open_file(&name)
            .ok()
            .flatten()
            .and_then(|f| f.metadata().ok())
        else {
            continue;
        };
        info.files += 1;
        info.total_bytes = info.total_bytes.saturating_add(meta.len());
        let text = name.to_string_lossy();
        let live = timestamp_of(&text, &prefix);
        let companion = [".dirty", ".tmp"].iter().any(|s| {
            text.strip_suffix(s)
                .is_some_and(|b| timestamp_of(b, &prefix).is_some())
        });
        match live {
            Some(ts) if best.is_none_or(|b| ts > b) => {
                best = Some(ts);
                info.latest_file = Some(text.into_owned());
                info.latest_bytes = meta.len();
                info.last_write = meta.modified().ok();
            }
            Some(_) => {}
            None if companion => {}
            None => info.foreign_files += 1,
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn versions_that_take_the_location_alone() {
        for v in ["0.13.0", "0.23.1", "0.29.0", "1.0.0", "0.29.0-rc1"] {
            assert!(supports_backup_location(v), "{v}");
        }
        for v in ["0.12.0", "0.11.0", "0.10.2", "garbage", ""] {
            assert!(!supports_backup_location(v), "{v}");
        }
    }

    #[test]
    fn live_files_are_the_prefix_and_digits() {
        let p = file_prefix("default_");
        assert_eq!(p, "backup__confluent-ksql-default__command_topic_");
        assert_eq!(
            timestamp_of(
                "backup__confluent-ksql-default__command_topic_1639500000000",
                &p
            ),
            Some(1639500000000)
        );
        for bad in [
            "backup__confluent-ksql-default__command_topic_1639500000000.dirty",
            "backup__confluent-ksql-default__command_topic_",
            "backup__confluent-ksql-other__command_topic_1",
        ] {
            assert_eq!(timestamp_of(bad, &p), None, "{bad}");
        }
    }

    #[test]
    fn scan_finds_the_newest_and_counts_what_is_not_ksqldbs() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join(DIR);
        std::fs::create_dir(&dir).unwrap();
        let p = file_prefix("svc_");
        std::fs::write(dir.join(format!("{p}100")), "a:b\n").unwrap();
        std::fs::write(dir.join(format!("{p}200")), "a:b\nc:d\n").unwrap();
        std::fs::write(dir.join(format!("{p}200.dirty")), "").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        symlink("/etc/shadow", dir.join(format!("{p}300"))).unwrap();
        let info = scan(state.path(), "svc_").unwrap();
        assert_eq!(info.latest_file.as_deref(), Some(&*format!("{p}200")));
        assert_eq!(info.latest_bytes, 8);
        assert!(info.last_write.is_some());
        assert_eq!(info.files, 4);
        assert_eq!(info.total_bytes, 4 + 8 + 1);
        // notes.txt and the planted link.
        assert_eq!(info.foreign_files, 2);
        let d = Dir::open(&dir).unwrap();
        assert_eq!(latest(&d, "svc_").unwrap(), Some((format!("{p}200"), 200)));
    }

    fn settings_in(state: &Path) -> Settings {
        let path = state.join("ksql-msk.toml");
        std::fs::write(
            &path,
            format!(
                "[msk]\ncluster_name = \"demo\"\n[agent]\nstate_dir = \"{}\"\n",
                state.display()
            ),
        )
        .unwrap();
        crate::config::load(&path).unwrap()
    }

    #[test]
    fn the_newest_backup_is_copied_whole_lines_only_and_records_are_bounded() {
        let state = tempfile::tempdir().unwrap();
        let s = settings_in(state.path());
        assert_eq!(keep_for_upgrade(&s, "0.23.1", "0.29.0").unwrap(), None);
        ensure_dir(&s).unwrap();
        assert_eq!(keep_for_upgrade(&s, "0.23.1", "0.29.0").unwrap(), None);
        let dir = state.path().join(DIR);
        let p = file_prefix(DEFAULT_SERVICE_ID);
        std::fs::write(dir.join(format!("{p}1")), "old:1\n").unwrap();
        // ksqlDB in the middle of appending a line.
        std::fs::write(dir.join(format!("{p}2")), "a:1\nb:2\nc:").unwrap();
        let copy = keep_for_upgrade(&s, "0.23.1", "0.29.0").unwrap().unwrap();
        assert_eq!(
            copy,
            state.path().join(format!("upgrades/0.23.1-to-0.29.0/{p}2"))
        );
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "a:1\nb:2\n");
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        // Again (a re-run after a crash): the same place, nothing beside it.
        keep_for_upgrade(&s, "0.23.1", "0.29.0").unwrap();
        let names: Vec<_> = std::fs::read_dir(copy.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        for i in 0..(MAX_RECORDS + 3) {
            keep_for_upgrade(&s, &format!("0.{i}.0"), "0.29.0").unwrap();
        }
        let records = std::fs::read_dir(state.path().join(UPGRADES_DIR))
            .unwrap()
            .count();
        assert_eq!(records, MAX_RECORDS);
    }

    #[test]
    fn a_planted_link_as_the_backup_is_not_copied() {
        let state = tempfile::tempdir().unwrap();
        let s = settings_in(state.path());
        ensure_dir(&s).unwrap();
        let secret = state.path().join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        symlink(
            &secret,
            state
                .path()
                .join(DIR)
                .join(format!("{}5", file_prefix(DEFAULT_SERVICE_ID))),
        )
        .unwrap();
        assert_eq!(keep_for_upgrade(&s, "a", "b").unwrap(), None);
        assert!(!state.path().join(UPGRADES_DIR).exists());
    }

    #[test]
    fn a_planted_link_instead_of_the_directory_is_not_followed() {
        let state = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join(format!("{}1", file_prefix("s"))), "x").unwrap();
        symlink(elsewhere.path(), state.path().join(DIR)).unwrap();
        assert_eq!(scan(state.path(), "s"), None);
    }

    #[test]
    fn a_minor_change_before_1_0_is_pointed_out_with_the_backup_it_keeps() {
        let state = tempfile::tempdir().unwrap();
        let s = settings_in(state.path());
        assert_eq!(version_change_note(&s, "0.29.0", "0.29.1"), None);
        assert_eq!(version_change_note(&s, "1.0.0", "1.2.0"), None);
        let note = version_change_note(&s, "0.23.1", "0.29.0").unwrap();
        assert!(note.contains("no command-topic backup yet"), "{note}");
        ensure_dir(&s).unwrap();
        let p = file_prefix(DEFAULT_SERVICE_ID);
        std::fs::write(state.path().join(DIR).join(format!("{p}7")), "a:1\n").unwrap();
        let note = version_change_note(&s, "0.29.0", "0.28.2").unwrap();
        assert!(
            note.contains(&format!("upgrades/0.29.0-to-0.28.2/{p}7")),
            "{note}"
        );
    }

    #[test]
    fn records_are_a_json_string_a_colon_and_a_json_object() {
        let good = b"\"stream/S/create\":{\"statement\":\"CREATE STREAM S (a INT) WITH (x='1:2');\"}\n\"t\":{}\n";
        assert_eq!(check_records(good), Ok(2));
        assert_eq!(check_records(b""), Ok(0));
        for (bad, line) in [
            (&b"\"a\":{}\nnot json\n"[..], 2),
            (b"{}:{}\n", 1),
            (b"\"a\":[1]\n", 1),
            (b"\"a\"{}\n", 1),
            (b"\"a\":{}x\n", 1),
            (b"\xff\n", 1),
        ] {
            assert_eq!(
                check_records(bad),
                Err(format!("line {line} is not a command-topic record")),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
