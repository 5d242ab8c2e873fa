//! One config file parsed into a [`Fragment`]: the keys it sets, each checked against the
//! schema for its type and tagged with the file and line it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml_edit::{Item, Value};

use super::schema::{self, Key, Kind};
use crate::exit::{fail, ExitCode};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// `None` when no line holds the value: a default, or a value from `config set`.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub origin: Origin,
}

/// The keys one file sets.
#[derive(Debug, Default, Clone)]
pub struct Fragment {
    pub keys: BTreeMap<(String, String), Entry>,
    /// `[properties]`, in file order.
    pub properties: Vec<(String, Entry)>,
    /// The entries of [`Kind::StrTable`] keys (`[ksqldb.env]`), each with its own line,
    /// in file order; `keys` holds the same table as one inline-table value.
    pub tables: BTreeMap<(String, String), Vec<(String, Entry)>>,
}

/// A config error: exit 78 with `file:line: key: problem`.
pub fn config_error(
    origin: Option<&Origin>,
    key: &str,
    problem: impl fmt::Display,
) -> anyhow::Error {
    let msg = match origin {
        Some(o) => format!("{o}: {key}: {problem}"),
        None => format!("{key}: {problem}"),
    };
    fail(ExitCode::Config, msg)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Check that `value` fits `key`'s kind (types only; meaning is checked in [`Settings`]).
pub fn check_kind(key: &Key, value: &Value) -> std::result::Result<(), String> {
    let wrong = || {
        format!(
            "expected {}, found {}",
            key.kind.describe(),
            type_name(value)
        )
    };
    match key.kind {
        Kind::Str | Kind::Duration | Kind::Size => value.as_str().map(|_| ()).ok_or_else(wrong),
        Kind::Bool => value.as_bool().map(|_| ()).ok_or_else(wrong),
        Kind::Int => match value.as_integer() {
            Some(n) if n >= 0 => Ok(()),
            Some(n) => Err(format!("expected a non-negative integer, found {n}")),
            None => Err(wrong()),
        },
        Kind::OneOf(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(()),
            Some(s) => Err(format!("{s:?} is not {}", key.kind.describe())),
            None => Err(wrong()),
        },
        Kind::StrTable => match value.as_inline_table() {
            Some(table) => match table.iter().find(|(_, v)| v.as_str().is_none()) {
                None => Ok(()),
                Some((name, v)) => Err(format!(
                    "expected a table of strings, found {} for {name}",
                    type_name(v)
                )),
            },
            None => Err(wrong()),
        },
        Kind::StrList => match value.as_array() {
            Some(arr) => match arr.iter().find(|v| v.as_str().is_none()) {
                None => Ok(()),
                Some(v) => Err(format!(
                    "expected a list of strings, found {} in it",
                    type_name(v)
                )),
            },
            None => Err(wrong()),
        },
    }
}

/// Parse one config file's text into a fragment, checking sections, keys and types.
pub fn parse_fragment(file: &Path, text: &str) -> Result<Fragment> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let origin = Origin {
            file: file.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
        };
        fail(
            ExitCode::Config,
            format!(
                "{origin}: invalid TOML: {}",
                e.message().trim().replace('\n', " ")
            ),
        )
    })?;
    let origin_at = |span: Option<std::ops::Range<usize>>| Origin {
        file: file.to_path_buf(),
        line: span.map(|s| line_of(text, s.start)),
    };
    let mut fragment = Fragment::default();
    let root = doc.as_table();
    for (section, item) in root.iter() {
        let section_span = root.key(section).and_then(|k| k.span());
        let Some(table) = item.as_table_like() else {
            return Err(config_error(
                Some(&origin_at(section_span)),
                section,
                "expected a [section] table",
            ));
        };
        if section != schema::PROPERTIES && !schema::SECTIONS.contains(&section) {
            return Err(config_error(
                Some(&origin_at(section_span)),
                section,
                format!(
                    "unknown section (known: {}, {})",
                    schema::SECTIONS.join(", "),
                    schema::PROPERTIES
                ),
            ));
        }
        for (name, item) in table.iter() {
            let origin = origin_at(table.key(name).and_then(|k| k.span()));
            fragment.add(section, name, item, origin, &origin_at)?;
        }
    }
    Ok(fragment)
}

impl Fragment {
    /// The key `section.name` set to `item` at `origin`: a table key's entries, a
    /// `[properties]` entry, or a schema key's value of the right kind.
    fn add(
        &mut self,
        section: &str,
        name: &str,
        item: &Item,
        origin: Origin,
        origin_at: &dyn Fn(Option<std::ops::Range<usize>>) -> Origin,
    ) -> Result<()> {
        let path = format!("{section}.{name}");
        let table_key = schema::find(section, name).filter(|k| k.kind == Kind::StrTable);
        if let Some(key) = table_key {
            let entries = table_entries(item, &path, &origin, origin_at)?;
            let inline: toml_edit::InlineTable = entries
                .iter()
                .map(|(n, e)| (n.as_str(), e.value.clone()))
                .collect();
            self.keys.insert(
                (section.to_string(), name.to_string()),
                Entry {
                    value: Value::InlineTable(inline),
                    origin,
                },
            );
            self.tables
                .insert((key.section.into(), key.name.into()), entries);
            return Ok(());
        }
        let value = match item {
            Item::Value(v) => v.clone(),
            _ => {
                return Err(config_error(
                    Some(&origin),
                    &path,
                    "expected a value, found a table",
                ))
            }
        };
        if section == schema::PROPERTIES {
            match &value {
                Value::String(_) | Value::Integer(_) | Value::Boolean(_) | Value::Float(_) => {}
                other => {
                    return Err(config_error(
                        Some(&origin),
                        &path,
                        format!(
                            "expected a string, number or boolean, found {}",
                            type_name(other)
                        ),
                    ))
                }
            }
            self.properties
                .push((name.to_string(), Entry { value, origin }));
            return Ok(());
        }
        let Some(key) = schema::find(section, name) else {
            return Err(config_error(
                Some(&origin),
                &path,
                format!(
                    "unknown key (known in [{section}]: {})",
                    schema::names_in(section).join(", ")
                ),
            ));
        };
        check_kind(key, &value).map_err(|problem| config_error(Some(&origin), &path, problem))?;
        self.keys.insert(
            (section.to_string(), name.to_string()),
            Entry { value, origin },
        );
        Ok(())
    }
}

/// The entries of a table of strings (`[ksqldb.env]`, `env = { A = "1" }` or
/// `env.A = "1"`), each with the line it is on; anything but a string is refused.
fn table_entries(
    item: &Item,
    path: &str,
    origin: &Origin,
    origin_at: &dyn Fn(Option<std::ops::Range<usize>>) -> Origin,
) -> Result<Vec<(String, Entry)>> {
    let Some(table) = item.as_table_like() else {
        let found = item.as_value().map_or("an array of tables", type_name);
        return Err(config_error(
            Some(origin),
            path,
            format!("expected a table of strings, found {found}"),
        ));
    };
    let mut entries = Vec::new();
    for (name, item) in table.iter() {
        let origin = origin_at(table.key(name).and_then(|k| k.span()));
        match item.as_value() {
            Some(value @ Value::String(_)) => {
                let mut value = value.clone();
                value.decor_mut().clear();
                entries.push((name.to_string(), Entry { value, origin }));
            }
            other => {
                // `io.confluent.ksql = "DEBUG"` is a dotted key: tables io, confluent.
                let found = other.map_or(
                    "a table (a name with dots must be quoted: \"a.b\" = \"...\")",
                    type_name,
                );
                return Err(config_error(
                    Some(&origin),
                    &format!("{path}.{name}"),
                    format!("expected a string, found {found}"),
                ));
            }
        }
    }
    Ok(entries)
}
