//! The merged view of the config files: each key's value and the file and line it came
//! from, defaults where no file sets it. Loading makes it (`load`); typed settings are
//! read out of it (`settings`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml_edit::Value;

use super::fragment::{Entry, Fragment};
use super::schema::Key;

/// The merged view of all config files: for each key its value and origin, defaults
/// where no file sets it.
#[derive(Debug, Clone)]
pub struct Merged {
    pub main: PathBuf,
    pub keys: BTreeMap<(String, String), Entry>,
    pub properties: Vec<(String, Entry)>,
    /// The entries of table keys (`ksqldb.env`), merged entry by entry: a drop-in adds
    /// to the main file's table or replaces single entries, it does not replace the
    /// table. `keys` holds the merged table as one inline-table value.
    pub tables: BTreeMap<(String, String), Vec<(String, Entry)>>,
}

impl Merged {
    pub fn from_fragments(main: &Path, fragments: Vec<Fragment>) -> Merged {
        let mut keys = BTreeMap::new();
        let mut properties: Vec<(String, Entry)> = Vec::new();
        let mut tables: BTreeMap<(String, String), Vec<(String, Entry)>> = BTreeMap::new();
        for fragment in fragments {
            keys.extend(fragment.keys);
            for (name, entry) in fragment.properties {
                set_entry(&mut properties, name, entry);
            }
            for (key, entries) in fragment.tables {
                let merged = tables.entry(key).or_default();
                for (name, entry) in entries {
                    set_entry(merged, name, entry);
                }
            }
        }
        for (key, entries) in &tables {
            if let Some(entry) = keys.get_mut(key) {
                entry.value = Value::InlineTable(
                    entries
                        .iter()
                        .map(|(n, e)| (n.as_str(), e.value.clone()))
                        .collect(),
                );
            }
        }
        Merged {
            main: main.to_path_buf(),
            keys,
            properties,
            tables,
        }
    }

    /// The merged entries of a table key (`ksqldb.env`), in the order first defined.
    pub fn table(&self, key: &Key) -> &[(String, Entry)] {
        self.tables
            .get(&(key.section.to_string(), key.name.to_string()))
            .map_or(&[], Vec::as_slice)
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

/// Set `name` to `entry` in `entries`: in place if it is there, else at the end.
fn set_entry(entries: &mut Vec<(String, Entry)>, name: String, entry: Entry) {
    match entries.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = entry,
        None => entries.push((name, entry)),
    }
}

/// A key's default, parsed from the schema literal.
pub fn default_value(key: &Key) -> Value {
    // The schema's literals are checked by a unit test, so this cannot fail at run time.
    key.default
        .parse::<Value>()
        .unwrap_or_else(|_| Value::from(""))
}
