//! Finding the config files (the main file, then `ksql-msk.d/*.toml` in lexical order),
//! reading them and merging their fragments over the schema defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml_edit::Value;

use super::fragment::{parse_fragment, Entry, Fragment};
use super::schema::Key;
use super::settings::Settings;
use crate::exit::{fail, ExitCode};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ksql-msk/ksql-msk.toml";
pub const CONFIG_ENV: &str = "KSQL_MSK_CONFIG";
pub const DROPIN_DIR: &str = "ksql-msk.d";

/// The files that make up the configuration: the main file, then drop-ins in lexical order.
pub fn config_files(main: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![main.to_path_buf()];
    let dir = crate::fsutil::parent_dir(main).join(DROPIN_DIR);
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
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "toml") {
                    dropins.push(path);
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

/// The merged view of all config files: for each key its value and origin, defaults
/// where no file sets it.
#[derive(Debug, Clone)]
pub struct Merged {
    pub main: PathBuf,
    pub keys: BTreeMap<(String, String), Entry>,
    pub properties: Vec<(String, Entry)>,
}

impl Merged {
    pub fn from_fragments(main: &Path, fragments: Vec<Fragment>) -> Merged {
        let mut keys = BTreeMap::new();
        let mut properties: Vec<(String, Entry)> = Vec::new();
        for fragment in fragments {
            keys.extend(fragment.keys);
            for (name, entry) in fragment.properties {
                match properties.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = entry,
                    None => properties.push((name, entry)),
                }
            }
        }
        Merged {
            main: main.to_path_buf(),
            keys,
            properties,
        }
    }

    /// The entry set by a file, if any.
    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.keys
            .get(&(key.section.to_string(), key.name.to_string()))
    }

    /// The effective value of a key: set by a file, else the default.
    pub fn value(&self, key: &Key) -> Value {
        match self.entry(key) {
            Some(e) => e.value.clone(),
            None => default_value(key),
        }
    }
}

/// A key's default, parsed from the schema literal.
pub fn default_value(key: &Key) -> Value {
    // The schema's literals are checked by a unit test, so this cannot fail at run time.
    key.default
        .parse::<Value>()
        .unwrap_or_else(|_| Value::from(""))
}

/// Read and merge the main config file and its drop-ins.
pub fn load_merged(main: &Path) -> Result<Merged> {
    let mut fragments = Vec::new();
    for file in config_files(main)? {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == main => {
                return Err(fail(
                    ExitCode::Config,
                    format!(
                        "{}: config file not found (write the cluster ARN into it, or pass --config PATH)",
                        file.display()
                    ),
                ))
            }
            Err(e) => {
                return Err(fail(
                    ExitCode::Config,
                    format!("{}: cannot read config: {e}", file.display()),
                ))
            }
        };
        fragments.push(parse_fragment(&file, &text)?);
    }
    Ok(Merged::from_fragments(main, fragments))
}

/// Load, merge and validate the configuration at `main`.
pub fn load(main: &Path) -> Result<Settings> {
    Settings::from_merged(&load_merged(main)?)
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
