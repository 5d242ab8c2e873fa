//! Memory that fits the host: ksqlDB's heap sized together with what RocksDB (Kafka
//! Streams' state stores, off-heap) and the JVM's own memory need, within a budget of
//! the instance's memory (75 %), instead of half of RAM for the heap and RocksDB
//! unbounded beside it (how ksqlDB hosts get OOM-killed).
//!
//! ksqlDB's capacity-planning page (docs/operate-and-deploy/capacity-planning.md, 0.27+):
//! "Reserving 25 percent of available memory for RocksDB is a good starting point".
//! ksqlDB's bounded-memory setter (`io.confluent.ksql.rocksdb.
//! KsqlBoundedMemoryRocksDBConfigSetter`, `ksql.plugins.rocksdb.cache.size` and
//! friends, module `ksqldb-rocksdb-config-setter`) is not in the release tarballs:
//! `ksqldb-package/pom.xml` does not depend on it (0.23.1 and 0.29.0; ksql#6838). So
//! RocksDB cannot be bounded from what a release ships; the plan keeps its share out of
//! the heap, and the agent says so in the journal ([`rocksdb_note`]).

/// The share of the instance's memory ksqlDB may use, heap, RocksDB and JVM together:
/// `ksqldb.memory_budget`'s default.
pub const BUDGET_PERCENT: u64 = 75;
/// ksqlDB's bounded-memory RocksDB config setter (not shipped in its tarballs).
pub const ROCKSDB_SETTER: &str = "io.confluent.ksql.rocksdb.KsqlBoundedMemoryRocksDBConfigSetter";
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

/// The journal's note on RocksDB and the budget.
pub fn rocksdb_note(p: &Plan) -> String {
    let mut note = format!(
        "memory budget {} MiB ({} % of {} MiB, ksqldb.memory_budget): heap {} MiB, RocksDB {} MiB, JVM overhead {} MiB; RocksDB is not bounded to its share: ksqlDB's {ROCKSDB_SETTER} is not in its release tarballs (confluentinc/ksql#6838), so the heap leaves room for it",
        p.budget / MIB,
        p.percent,
        p.total / MIB,
        p.heap / MIB,
        p.rocksdb / MIB,
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
        assert!(rocksdb_note(&p).contains("exceed the instance's memory"));
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
}
