//! Memory that fits the host: ksqlDB's heap sized together with what RocksDB (Kafka
//! Streams' state stores, off-heap) and the JVM's own memory need, within a budget of
//! the instance's memory (75 %), instead of half of RAM for the heap and RocksDB
//! unbounded beside it (how ksqlDB hosts get OOM-killed).
//!
//! ksqlDB's capacity-planning page (docs/operate-and-deploy/capacity-planning.md, 0.27+):
//! "Reserving 25 percent of available memory for RocksDB is a good starting point".
//! ksqlDB's own bounded-memory setter (`io.confluent.ksql.rocksdb.
//! KsqlBoundedMemoryRocksDBConfigSetter`, module `ksqldb-rocksdb-config-setter`) is not in
//! the release tarballs (`ksqldb-package/pom.xml` does not depend on it, 0.23.1 and
//! 0.29.0; ksql#6838) nor on Maven Central. So the RPM ships a setter of ksql-msk's own
//! (packaging/rocksdb-setter/): the agent puts its jar on ksqlDB's classpath
//! (`KSQL_CLASSPATH`, which every release's `bin/ksql-run-class` appends) and names it in
//! `ksql.streams.rocksdb.config.setter` with RocksDB's share of the budget. ksqlDB hands
//! a `Configurable` setter all its properties once at start
//! (`RocksDBConfigSetterHandler`, ksql#3167, 2019): the setter builds one block cache
//! that every store's blocks and memtables are charged to.

use std::path::{Path, PathBuf};

/// The share of the instance's memory ksqlDB may use, heap, RocksDB and JVM together:
/// `ksqldb.memory_budget`'s default.
pub const BUDGET_PERCENT: u64 = 75;
/// ksql-msk's bounded-memory RocksDB config setter (packaging/rocksdb-setter/).
pub const SETTER_CLASS: &str = "ksqlmsk.rocksdb.BoundedMemoryConfigSetter";
/// The Kafka Streams key (through ksqlDB's `ksql.streams.` prefix) naming the setter.
pub const SETTER_KEY: &str = "ksql.streams.rocksdb.config.setter";
/// RocksDB's share in bytes, which the setter reads.
pub const CACHE_BYTES_KEY: &str = "ksql.msk.rocksdb.cache.bytes";
/// Where the RPM installs the setter's jar (`ksqldb.rocksdb_setter_jar`'s default).
pub const DEFAULT_SETTER_JAR: &str = "/usr/share/ksql-msk/java/ksql-msk-rocksdb.jar";
const MIB: u64 = 1024 * 1024;
/// The smallest automatic heap.
pub const HEAP_MIN: u64 = 512 * MIB;
/// The largest automatic heap: above 31g the JVM loses compressed object pointers.
pub const HEAP_MAX: u64 = 31 * 1024 * MIB;
/// The JVM's memory beside its heap (metaspace, code cache, thread stacks, direct
/// buffers): a tenth of the budget, at least this.
const OVERHEAD_MIN: u64 = 256 * MIB;

/// How the budget is split, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The instance's memory (MemTotal, lowered by a cgroup limit).
    pub total: u64,
    /// `ksqldb.memory_budget` (percent).
    pub percent: u64,
    /// That share of it.
    pub budget: u64,
    pub heap: u64,
    /// Left for RocksDB (a third of the budget: 25 % of the memory at the default).
    pub rocksdb: u64,
    /// Left for the JVM beside its heap.
    pub overhead: u64,
}

impl Plan {
    /// Heap, RocksDB and overhead together exceed the instance's memory.
    pub fn exceeds_memory(&self) -> bool {
        self.heap + self.rocksdb + self.overhead > self.total
    }
}

/// The plan for `total` bytes of memory and a budget of `percent` of it; `heap`: an
/// explicit heap, which wins (RocksDB and the overhead keep their shares:
/// [`Plan::exceeds_memory`] tells when that no longer fits).
pub fn plan(total: u64, percent: u64, heap: Option<u64>) -> Plan {
    let budget = total / 100 * percent + total % 100 * percent / 100;
    let rocksdb = budget / 3;
    let overhead = (budget / 10).max(OVERHEAD_MIN);
    let heap = heap.unwrap_or_else(|| {
        budget
            .saturating_sub(rocksdb + overhead)
            .clamp(HEAP_MIN, HEAP_MAX)
            / MIB
            * MIB
    });
    Plan {
        total,
        percent,
        budget,
        heap,
        rocksdb,
        overhead,
    }
}

/// A JVM size (`512m`, `4g`, `1048576k`) in bytes.
pub fn jvm_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "k" => 1024,
        "m" => MIB,
        "g" => 1024 * MIB,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// How RocksDB is held to its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RocksDb {
    /// ksql-msk's setter, from `jar`, holds it to `cache_bytes`.
    Bounded { jar: PathBuf, cache_bytes: u64 },
    /// `[properties]` names a setter of the operator's: its own keys decide.
    Operators(String),
    /// `ksqldb.rocksdb_setter_jar = ""`.
    Off,
    /// No jar at the default path (ksql-msk not installed from its RPM).
    NoJar(PathBuf),
    /// The instance's memory is unknown: nothing to size the cache from.
    UnknownMemory,
}

impl RocksDb {
    /// What to tell the operator, after "RocksDB N MiB".
    pub fn describe(&self) -> String {
        match self {
            RocksDb::Bounded { .. } => {
                format!("bounded by ksql-msk's setter, {CACHE_BYTES_KEY}")
            }
            RocksDb::Operators(class) => format!("the setter in [properties]: {class}"),
            RocksDb::Off => "not bounded: ksqldb.rocksdb_setter_jar is empty".into(),
            RocksDb::NoJar(jar) => format!(
                "not bounded: {} is missing (the RPM installs it; ksqldb.rocksdb_setter_jar)",
                jar.display()
            ),
            RocksDb::UnknownMemory => "not bounded: the instance's memory is unknown".into(),
        }
    }

    /// Whether ksql-msk's setter holds RocksDB to its share.
    pub fn is_bounded(&self) -> bool {
        matches!(self, RocksDb::Bounded { .. })
    }

    /// The jar to put on ksqlDB's classpath: the setter's whenever it is there, so that
    /// a `[properties]` setter may name ksql-msk's class with sizes of its own.
    pub fn classpath_jar(&self, settings_jar: Option<&Path>) -> Option<PathBuf> {
        match self {
            RocksDb::Bounded { jar, .. } => Some(jar.clone()),
            RocksDb::Operators(_) => settings_jar.filter(|j| j.is_file()).map(Path::to_path_buf),
            _ => None,
        }
    }

    /// The managed properties for it (none unless ksql-msk's setter bounds it).
    pub fn properties(&self) -> Vec<(String, String)> {
        match self {
            RocksDb::Bounded { cache_bytes, .. } => vec![
                (SETTER_KEY.to_string(), SETTER_CLASS.to_string()),
                (CACHE_BYTES_KEY.to_string(), cache_bytes.to_string()),
            ],
            _ => Vec::new(),
        }
    }
}

/// How RocksDB is held on a host with this memory plan: `jar` is
/// `ksqldb.rocksdb_setter_jar`, `operators` the setter `[properties]` names, if any. A
/// jar configured elsewhere than [`DEFAULT_SETTER_JAR`] that is not a file is a config
/// error (`Err`: the one-line reason, for the caller to put behind the key).
pub fn rocksdb(
    plan: Option<&Plan>,
    jar: Option<&Path>,
    operators: Option<&str>,
) -> Result<RocksDb, String> {
    if let Some(class) = operators {
        return Ok(RocksDb::Operators(class.to_string()));
    }
    let Some(jar) = jar else {
        return Ok(RocksDb::Off);
    };
    match std::fs::metadata(jar) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(format!("{} is not a file", jar.display())),
        Err(_) if jar == Path::new(DEFAULT_SETTER_JAR) => {
            return Ok(RocksDb::NoJar(jar.to_path_buf()))
        }
        Err(e) => return Err(format!("{}: {e}", jar.display())),
    }
    Ok(match plan {
        Some(p) => RocksDb::Bounded {
            jar: jar.to_path_buf(),
            cache_bytes: p.rocksdb,
        },
        None => RocksDb::UnknownMemory,
    })
}

/// The journal's note on RocksDB and the budget.
pub fn rocksdb_note(p: &Plan, rocksdb: &RocksDb) -> String {
    let mut note = format!(
        "memory budget {} MiB ({} % of {} MiB, ksqldb.memory_budget): heap {} MiB, RocksDB {} MiB ({}), JVM overhead {} MiB",
        p.budget / MIB,
        p.percent,
        p.total / MIB,
        p.heap / MIB,
        p.rocksdb / MIB,
        rocksdb.describe(),
        p.overhead / MIB
    );
    if p.exceeds_memory() {
        note.push_str("; heap, RocksDB and JVM overhead together exceed the instance's memory");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn heap_rocksdb_and_overhead_fit_the_budget_on_2_8_and_64_gib() {
        for (total, heap_mib) in [(2 * GIB, 768), (8 * GIB, 3481), (64 * GIB, 27852)] {
            let p = plan(total, BUDGET_PERCENT, None);
            assert_eq!(p.heap / MIB, heap_mib, "{p:?}");
            assert!(p.heap + p.rocksdb + p.overhead <= p.budget, "{p:?}");
            assert!(p.budget <= total * 3 / 4, "{p:?}");
            // RocksDB gets ksqlDB's recommended quarter of the memory.
            assert!(p.rocksdb >= total / 4 - MIB, "{p:?}");
            assert!(!p.exceeds_memory());
        }
        // Tiny and huge hosts: the heap's bounds hold.
        assert_eq!(plan(GIB, BUDGET_PERCENT, None).heap, HEAP_MIN);
        assert_eq!(plan(256 * GIB, BUDGET_PERCENT, None).heap, HEAP_MAX);
        // A smaller budget: a smaller heap, RocksDB still a third of it.
        let p = plan(8 * GIB, 50, None);
        assert_eq!(
            (p.budget, p.rocksdb / MIB, p.heap / MIB),
            (4 * GIB, 1365, 2321)
        );
    }

    #[test]
    fn an_explicit_heap_wins_and_is_flagged_when_it_does_not_fit() {
        let p = plan(8 * GIB, BUDGET_PERCENT, Some(4 * GIB));
        assert_eq!(p.heap, 4 * GIB);
        assert!(!p.exceeds_memory());
        let p = plan(8 * GIB, BUDGET_PERCENT, Some(7 * GIB));
        assert!(p.exceeds_memory());
        assert!(rocksdb_note(&p, &RocksDb::Off).contains("exceed the instance's memory"));
    }

    #[test]
    fn jvm_sizes() {
        assert_eq!(jvm_size("512m"), Some(512 * MIB));
        assert_eq!(jvm_size("4G"), Some(4 * GIB));
        assert_eq!(jvm_size("1048576k"), Some(GIB));
        for bad in ["4096", "g", "4t", ""] {
            assert_eq!(jvm_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn rocksdb_is_bounded_only_by_a_setter_jar_that_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("setter.jar");
        std::fs::write(&jar, b"PK").unwrap();
        let p = plan(8 * GIB, BUDGET_PERCENT, None);
        let r = rocksdb(Some(&p), Some(&jar), None).unwrap();
        assert_eq!(
            r,
            RocksDb::Bounded {
                jar: jar.clone(),
                cache_bytes: p.rocksdb
            }
        );
        assert_eq!(r.classpath_jar(Some(&jar)), Some(jar.clone()));
        assert!(rocksdb_note(&p, &r).contains("RocksDB 2048 MiB (bounded by ksql-msk's setter"));
        // Memory unknown: nothing to size from.
        assert_eq!(
            rocksdb(None, Some(&jar), None).unwrap(),
            RocksDb::UnknownMemory
        );
        // The operator's setter: ours stays on the classpath for it to name.
        let r = rocksdb(Some(&p), Some(&jar), Some("com.example.Setter")).unwrap();
        assert_eq!(r, RocksDb::Operators("com.example.Setter".into()));
        assert!(r.properties().is_empty());
        assert_eq!(r.classpath_jar(Some(&jar)), Some(jar.clone()));
        // Off.
        assert_eq!(rocksdb(Some(&p), None, None).unwrap(), RocksDb::Off);
        // Missing at the default path (not installed from the RPM): a warning, not an error.
        let default = Path::new(DEFAULT_SETTER_JAR);
        if !default.exists() {
            let r = rocksdb(Some(&p), Some(default), None).unwrap();
            assert_eq!(r, RocksDb::NoJar(default.to_path_buf()));
            assert_eq!(r.classpath_jar(Some(default)), None);
        }
        // Missing or not a file anywhere else: the operator named it, so an error.
        let err = rocksdb(Some(&p), Some(&dir.path().join("gone.jar")), None).unwrap_err();
        assert!(
            err.contains("gone.jar") && err.contains("No such file"),
            "{err}"
        );
        let err = rocksdb(Some(&p), Some(dir.path()), None).unwrap_err();
        assert!(err.ends_with("is not a file"), "{err}");
    }
}
