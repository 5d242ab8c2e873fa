//! `ksql-msk config get KEY` and `ksql-msk config set KEY VALUE`.
//!
//! `set` edits the main config file in place with `toml_edit`: only the value's bytes
//! change; comments, order and formatting of everything else are kept. The new value is
//! checked against the schema before the file is written atomically.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Result;
use toml_edit::{DocumentMut, Item, Value};

use super::schema::{self, keys, Key, Kind};
use super::{
    check_kind, config_error, default_value, parse_fragment, property_string, Entry, Merged,
    Origin, Settings,
};
use crate::exit::{fail, ExitCode, ResultExt};

/// What a `KEY` argument names.
enum Target {
    Schema(&'static Key),
    Property(String),
    /// One entry of a table key: `ksqldb.env.NAME`.
    TableEntry(&'static Key, String),
}

fn target(path: &str) -> Result<Target> {
    let Some((section, name)) = path.split_once('.') else {
        return Err(fail(
            ExitCode::Config,
            format!("{path}: not a config key; use section.key, e.g. ksqldb.version"),
        ));
    };
    if section == schema::PROPERTIES {
        let name = name.trim_matches('"');
        if name.is_empty() {
            return Err(fail(
                ExitCode::Config,
                format!("{path}: empty property name"),
            ));
        }
        return Ok(Target::Property(name.to_string()));
    }
    if let Some((table, entry)) = name.split_once('.') {
        if let Some(key) = schema::find(section, table).filter(|k| k.kind == Kind::StrTable) {
            let entry = entry.trim_matches('"');
            if let Some(problem) = super::table_entry_problem(key, entry) {
                return Err(fail(ExitCode::Config, format!("{path}: {problem}")));
            }
            return Ok(Target::TableEntry(key, entry.to_string()));
        }
    }
    schema::find(section, name)
        .map(Target::Schema)
        .ok_or_else(|| {
            let known = if schema::SECTIONS.contains(&section) {
                format!(
                    "known in [{section}]: {}",
                    schema::names_in(section).join(", ")
                )
            } else {
                format!(
                    "known sections: {}, {}",
                    schema::SECTIONS.join(", "),
                    schema::PROPERTIES
                )
            };
            fail(
                ExitCode::Config,
                format!("{path}: unknown config key ({known})"),
            )
        })
}

/// Render a value for `config get`: strings bare (handy in scripts), the rest as TOML.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.value().clone(),
        other => {
            let mut v = other.clone();
            v.decor_mut().clear();
            v.to_string()
        }
    }
}

/// The effective value of `path` (files merged over defaults). An unset key prints as
/// its default, an unset `[properties]` key as an empty line: exit 0 for both.
pub fn get(merged: &Merged, path: &str) -> Result<String> {
    match target(path)? {
        Target::Schema(key) => Ok(show(&merged.value(key))),
        // Like a schema key left at an empty default: an unset property prints as an
        // empty line, exit 0, so that every section answers alike.
        Target::Property(name) => Ok(merged
            .properties
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| property_string(&e.value))
            .unwrap_or_default()),
        Target::TableEntry(key, name) => Ok(merged
            .table(key)
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| show(&e.value))
            .unwrap_or_default()),
    }
}

/// Turn the command-line text into a TOML value of the key's kind.
fn parse_value(key: &Key, raw: &str) -> std::result::Result<Value, String> {
    match key.kind {
        Kind::Str | Kind::Duration | Kind::Size | Kind::OneOf(_) => Ok(Value::from(raw)),
        Kind::Bool => match raw {
            "true" => Ok(Value::from(true)),
            "false" => Ok(Value::from(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        Kind::Int => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not an integer")),
        Kind::StrTable => Err(format!(
            "is a table; set one entry with `config set {}.NAME VALUE`",
            key.path()
        )),
        Kind::StrList => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                trimmed
                    .parse::<Value>()
                    .map_err(|e| format!("{raw:?} is not a TOML list: {}", e.to_string().trim()))
            } else {
                let items: toml_edit::Array = trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                Ok(Value::Array(items))
            }
        }
    }
}

/// Set `path` to `raw` in the config file at `file`, keeping everything else byte for byte.
/// Returns a warning to show when a drop-in overrides the key.
///
/// The whole resulting configuration (this file with the new value, and the drop-ins)
/// must load before anything is written; the one exception is a cluster not configured
/// yet, so that a fresh install can be set up key by key. A symlinked `file` has its
/// target edited (the link stays), and the file keeps its mode and owner.
pub fn set(file: &Path, path: &str, raw: &str) -> Result<Option<String>> {
    let target = target(path)?;
    let real = std::fs::canonicalize(file).map_err(|e| {
        fail(
            ExitCode::Config,
            format!("{}: cannot read config: {e}", file.display()),
        )
    })?;
    let text = std::fs::read_to_string(&real).or_exit_with(ExitCode::Config, || {
        format!("{}: cannot read config", file.display())
    })?;
    let (section, name, value) = match &target {
        Target::Schema(key) => {
            let value = parse_value(key, raw).map_err(|p| config_error(None, &key.path(), p))?;
            check_kind(key, &value).map_err(|p| config_error(None, &key.path(), p))?;
            (key.section, key.name.to_string(), value)
        }
        Target::Property(name) => (schema::PROPERTIES, name.clone(), Value::from(raw)),
        Target::TableEntry(key, name) => (key.section, name.clone(), Value::from(raw)),
    };
    check_result(file, &text, &target, &value)?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        fail(
            ExitCode::Config,
            format!("{}: invalid TOML: {}", file.display(), e.message().trim()),
        )
    })?;
    let not_a_table = |what: &str| {
        fail(
            ExitCode::Config,
            format!("{}: {what}: is not a table", file.display()),
        )
    };
    let mut table = doc
        .entry(section)
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(section))?;
    if let Target::TableEntry(key, _) = &target {
        // `[ksqldb.env]` (or `env = { ... }` in `[ksqldb]`), created as a table.
        table = table
            .entry(key.name)
            .or_insert_with(toml_edit::table)
            .as_table_like_mut()
            .ok_or_else(|| not_a_table(&key.path()))?;
    }
    match table.get_mut(&name) {
        Some(Item::Value(old)) => {
            // The decor holds the spacing and any trailing comment: keep it.
            let decor = old.decor().clone();
            let mut new = value;
            *new.decor_mut() = decor;
            *old = new;
        }
        Some(_) => {
            return Err(fail(
                ExitCode::Config,
                format!("{}: {path}: is a table, not a value", file.display()),
            ))
        }
        None => {
            table.insert(&name, Item::Value(value));
        }
    }
    let new_text = doc.to_string();
    // The whole file must still load as a fragment (types, known keys).
    parse_fragment(file, &new_text)?;
    if new_text != text {
        write_keeping_owner(&real, new_text.as_bytes())?;
    }
    let shown = match &target {
        Target::TableEntry(key, name) => format!("{}.{name}", key.path()),
        _ => format!("{section}.{name}"),
    };
    Ok(overridden_by_dropin(file, &target, &shown))
}

/// Load the configuration as it would be with `value` set, without writing anything.
/// Problems already in the files are named at their lines; the new value, which comes
/// from the command line, is named by the file alone.
fn check_result(file: &Path, text: &str, target: &Target, value: &Value) -> Result<()> {
    let mut fragments = super::load::fragments(file, Some(text))?;
    let entry = |value: Value| Entry {
        value,
        origin: Origin {
            file: file.to_path_buf(),
            line: None,
        },
    };
    // The main file's fragment comes first; config_files always lists it.
    if let Some(main) = fragments.first_mut() {
        match target {
            Target::Schema(key) => {
                main.keys
                    .insert((key.section.into(), key.name.into()), entry(value.clone()));
            }
            Target::Property(name) => match main.properties.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = entry(value.clone()),
                None => main.properties.push((name.clone(), entry(value.clone()))),
            },
            Target::TableEntry(key, name) => {
                let id = (key.section.to_string(), key.name.to_string());
                let entries = main.tables.entry(id.clone()).or_default();
                match entries.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = entry(value.clone()),
                    None => entries.push((name.clone(), entry(value.clone()))),
                }
                // Merging rebuilds the table's value from the entries.
                main.keys
                    .entry(id)
                    .or_insert_with(|| entry(Value::InlineTable(Default::default())));
            }
        }
    }
    let mut merged = Merged::from_fragments(file, fragments);
    let cluster_set = [keys::MSK_CLUSTER_ARN, keys::MSK_CLUSTER_NAME]
        .iter()
        .any(|k| {
            merged
                .value(k)
                .as_str()
                .is_some_and(|s| !s.trim().is_empty())
        });
    if !cluster_set {
        // Not configured yet: every command that needs it says so.
        let name = keys::MSK_CLUSTER_NAME;
        merged.keys.insert(
            (name.section.into(), name.name.into()),
            entry(Value::from("placeholder")),
        );
    }
    Settings::from_merged(&merged).map(|_| ())
}

/// Replace `path` atomically (fsutil's exclusive temp file, fsync, rename, fsync the
/// directory) keeping the old file's owner and exact mode, whatever the umask.
fn write_keeping_owner(path: &Path, contents: &[u8]) -> Result<()> {
    let meta = std::fs::metadata(path).or_exit_with(ExitCode::Config, || {
        format!("{}: cannot stat config", path.display())
    })?;
    let (dir, name) = crate::host::Dir::parent_of(path)?;
    dir.write_atomic_owned(
        &name,
        contents,
        meta.mode() & 0o7777,
        (meta.uid(), meta.gid()),
    )
}

/// A warning if a drop-in sets the same key and so overrides the main file.
fn overridden_by_dropin(file: &Path, target: &Target, shown: &str) -> Option<String> {
    let merged = super::load_merged(file).ok()?;
    let find = |entries: &[(String, Entry)], name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.origin.clone())
    };
    let origin = match target {
        Target::Property(name) => find(&merged.properties, name),
        Target::TableEntry(key, name) => find(merged.table(key), name),
        Target::Schema(key) => merged.entry(key).map(|e| e.origin.clone()),
    }?;
    (origin.file != file).then(|| {
        format!(
            "warning: {shown} is also set in {} (drop-in), which overrides {}",
            origin,
            file.display()
        )
    })
}

/// Every schema key's default, for docs and tests.
pub fn defaults() -> Vec<(String, Value)> {
    schema::KEYS
        .iter()
        .map(|k| (k.path(), default_value(k)))
        .collect()
}
