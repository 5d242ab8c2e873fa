//! Finding the config files (the main file, then `ksql-msk.d/*.toml` in lexical order),
//! reading them and merging their fragments over the schema defaults.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml_edit::Value;

use super::fragment::{parse_fragment, Entry, Fragment};
use super::merge::Merged;
use super::settings::Settings;
use crate::exit::{fail, ExitCode};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ksql-msk/ksql-msk.toml";
pub const CONFIG_ENV: &str = "KSQL_MSK_CONFIG";
pub const DROPIN_DIR: &str = "ksql-msk.d";

/// The files that make up the configuration: the main file, then drop-ins in lexical order.
pub fn config_files(main: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![main.to_path_buf()];
    let dir = crate::host::parent_dir(main).join(DROPIN_DIR);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut dropins = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| {
                    fail(
                        ExitCode::Config,
                        format!("{}: cannot list drop-ins: {e}", dir.display()),
                    )
                })?;
                if is_dropin_name(&entry.file_name()) {
                    dropins.push(entry.path());
                }
            }
            dropins.sort();
            files.extend(dropins);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(fail(
                ExitCode::Config,
                format!("{}: cannot list drop-ins: {e}", dir.display()),
            ))
        }
    }
    Ok(files)
}

/// A drop-in is `*.toml` and not hidden: editors' lock files (`.#x.toml`), swap files
/// (`.x.toml.swp`) and backups (`x.toml~`) sit beside the real ones and are ignored.
fn is_dropin_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.ends_with(b".toml") && !name.starts_with(b".")
}

/// Read and merge the main config file and its drop-ins.
pub fn load_merged(main: &Path) -> Result<Merged> {
    Ok(Merged::from_fragments(main, fragments(main, None)?))
}

/// The fragments of the main file (parsed from `main_text` when given: `config set`
/// checks its edit before writing it) and of each drop-in, in order.
pub(super) fn fragments(main: &Path, main_text: Option<&str>) -> Result<Vec<Fragment>> {
    let euid = current_euid();
    let main_dir = crate::host::parent_dir(main);
    check_owner_and_mode(main_dir, true, euid)?;
    let dropin_dir = main_dir.join(DROPIN_DIR);
    if let Ok(meta) = std::fs::metadata(&dropin_dir) {
        // Whoever can write here can add a drop-in, sticky bit or not.
        report(writable_by_others(&dropin_dir, &meta, false, euid), euid)?;
    }
    let mut fragments = Vec::new();
    for file in config_files(main)? {
        let text = match main_text {
            Some(text) if file == main => {
                check_owner_and_mode(main, false, euid)?;
                text.to_string()
            }
            _ => read_config_file(&file, file == main, euid)?,
        };
        fragments.push(parse_fragment(&file, &text)?);
    }
    Ok(fragments)
}

fn read_config_file(file: &Path, is_main: bool, euid: u32) -> Result<String> {
    let cannot_read = |e: std::io::Error| {
        fail(
            ExitCode::Config,
            format!("{}: cannot read config: {e}", file.display()),
        )
    };
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_main => {
            return Err(fail(
                ExitCode::Config,
                format!(
                "{}: config file not found (write the cluster ARN into it, or pass --config PATH)",
                file.display()
            ),
            ))
        }
        Err(e) => return Err(cannot_read(e)),
    };
    // The file opened is the file checked: no window for a swap in between.
    let meta = f.metadata().map_err(cannot_read)?;
    report(writable_by_others(file, &meta, false, euid), euid)?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(cannot_read)?;
    Ok(text)
}

fn current_euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn check_owner_and_mode(path: &Path, sticky_ok: bool, euid: u32) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => report(writable_by_others(path, &meta, sticky_ok, euid), euid),
        // Reading the file will say what is wrong.
        Err(_) => Ok(()),
    }
}

/// Config that others can change is refused when running as root (exit 78: root acts on
/// it, e.g. installs what it names) and warned about otherwise (the service itself runs
/// as `ksql` and only reads it).
fn report(problem: Option<String>, euid: u32) -> Result<()> {
    match problem {
        None => Ok(()),
        Some(problem) if euid == 0 => Err(fail(
            ExitCode::Config,
            format!("{problem}; refused when running as root (chmod go-w, chown root)"),
        )),
        Some(problem) => {
            crate::errln!("ksql-msk: warning: {problem}: others can change this configuration");
            Ok(())
        }
    }
}

/// Why `path` (a config file or directory, with metadata `meta`) is not safe for a
/// process with effective uid `euid` to trust, if it is not: writable by its group or
/// by others, or owned by someone other than root and `euid`. `sticky_ok`: a sticky
/// directory (such as /tmp) lets others add files but not replace ours.
pub fn writable_by_others(
    path: &Path,
    meta: &Metadata,
    sticky_ok: bool,
    euid: u32,
) -> Option<String> {
    let mode = meta.mode();
    let sticky = meta.is_dir() && mode & 0o1000 != 0;
    let who: Vec<&str> = [(0o020, "its group"), (0o002, "others")]
        .into_iter()
        .filter(|(bit, _)| mode & bit != 0 && !(sticky && sticky_ok))
        .map(|(_, who)| who)
        .collect();
    if !who.is_empty() {
        return Some(format!(
            "{}: can be written by {} (mode {:04o})",
            path.display(),
            who.join(" and "),
            mode & 0o7777
        ));
    }
    let owner = meta.uid();
    (owner != 0 && owner != euid).then(|| format!("{}: owned by uid {owner}", path.display()))
}

/// Load, merge and validate the configuration at `main`.
pub fn load(main: &Path) -> Result<Settings> {
    Settings::from_merged(&load_merged(main)?)
}

/// [`load`] with `ksqldb.version` set to `version` over every file, as a last drop-in at
/// `origin` would set it: how the automatic rollback (the state directory's upgrade
/// record, src/service/upgrade.rs) and `ksql-msk rollback`'s check look at another kept release
/// with everything else configured as it is.
pub fn load_with_version(main: &Path, version: &str, origin: &Path) -> Result<Settings> {
    let mut merged = load_merged(main)?;
    let key = &super::schema::keys::KSQLDB_VERSION;
    merged.keys.insert(
        (key.section.to_string(), key.name.to_string()),
        Entry {
            value: Value::from(version),
            origin: super::Origin {
                file: origin.to_path_buf(),
                line: None,
            },
        },
    );
    Settings::from_merged(&merged)
}

/// The config path: `--config`, else `$KSQL_MSK_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}
