//! Our bounded-memory RocksDB config setter (packaging/rocksdb-setter), built by its build
//! script and run against the real Kafka Streams and RocksDB of the pinned set `streams`
//! (no broker): tests/java/RocksDbSetterCheck.java does what ksqlDB does (the class by
//! name, `configure(all server properties)`), then runs a TopologyTestDriver topology with
//! three persistent RocksDB stores and reads Kafka Streams' own RocksDB metrics (KIP-607).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ksql_msk_testkit::kafka::{self, ToolOutput};

use crate::support::{repo_root, skip};

const CACHE_BYTES: u64 = 64 * 1024 * 1024;
const STORES: [&str; 3] = ["store-a", "store-b", "store-c"];
/// Kafka Streams' own block cache of each store (RocksDBStore's BLOCK_CACHE_SIZE).
const STREAMS_DEFAULT_CACHE: u64 = 50 * 1024 * 1024;

fn prerequisites() -> bool {
    if let Some(why) = kafka::unavailable() {
        skip(
            kafka::REQUIRE_SWITCH,
            &format!("the RocksDB setter test: {why}"),
        );
        return false;
    }
    // The build script packs with `jar`; the class file version is read with `javap`.
    for tool in ["jar", "javap"] {
        if Command::new(tool).arg("--version").output().is_err() {
            skip(
                kafka::REQUIRE_SWITCH,
                &format!("the RocksDB setter test needs {tool} (a JDK) on PATH"),
            );
            return false;
        }
    }
    true
}

/// packaging/rocksdb-setter/build into `out`; the jar's path.
fn build(out: &Path) -> std::path::PathBuf {
    let mut cmd = Command::new(repo_root().join("packaging/rocksdb-setter/build"));
    cmd.arg(out);
    let run = kafka::run_bounded(cmd, Duration::from_secs(300));
    assert_eq!(
        run.code, 0,
        "packaging/rocksdb-setter/build: {}",
        run.stderr
    );
    let jar = out.join("ksql-msk-rocksdb.jar");
    assert_eq!(run.stdout.trim(), jar.display().to_string());
    jar
}

fn harness(jar: &Path, mode: &str, state: &Path) -> ToolOutput {
    let cp = format!("{}:{}", kafka::classpath(kafka::STREAMS_SET), jar.display());
    let mut cmd = Command::new("java");
    cmd.args(["-Xmx256m", "-XX:+UseSerialGC", "-cp", &cp])
        .arg(repo_root().join("tests/java/RocksDbSetterCheck.java"))
        .arg(mode)
        .arg(state)
        .arg(CACHE_BYTES.to_string());
    let run = kafka::run_bounded(cmd, Duration::from_secs(300));
    eprintln!("== RocksDbSetterCheck {mode}\n{}{}", run.stdout, run.stderr);
    run
}

/// The harness's `<prefix> name k=v ...` lines, by store name.
fn by_store(out: &str, prefix: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .map(|rest| {
            let mut words = rest.split(' ');
            let name = words.next().expect("store name").to_string();
            let facts = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (name, facts)
        })
        .collect()
}

/// The `STORE` lines: Kafka Streams' RocksDB metrics (those with a number).
fn stores(out: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    by_store(out, "STORE")
        .into_iter()
        .map(|(name, facts)| {
            let numbers = facts
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect();
            (name, numbers)
        })
        .collect()
}

/// Every store's RocksDB opened its table with the one shared cache as the setter made it:
/// `capacity`, `strict_capacity_limit` and `high_pri_pool_ratio` as configured, index and
/// filter blocks in the cache with high priority.
fn assert_logged(run: &ToolOutput, mode: &str, strict: &str, high_pri_ratio: &str) {
    // What RocksDB itself logged it opened each store with (only where the harness turns
    // RocksDB's info log on: modes streams and strict).
    let logged = by_store(&run.stdout, "LOG");
    assert_eq!(
        logged.keys().map(String::as_str).collect::<Vec<_>>(),
        STORES,
        "{mode}"
    );
    let capacity = CACHE_BYTES.to_string();
    let want = [
        ("capacity", capacity.as_str()),
        ("strict_capacity_limit", strict),
        ("high_pri_pool_ratio", high_pri_ratio),
        ("cache_index_and_filter_blocks", "1"),
        ("cache_index_and_filter_blocks_with_high_priority", "1"),
    ];
    for (name, facts) in &logged {
        for (key, value) in want {
            assert_eq!(
                facts.get(key).map(String::as_str),
                Some(value),
                "{mode}: {name}'s RocksDB LOG says {key} = {:?}",
                facts.get(key)
            );
        }
    }
}

fn assert_bounded(run: &ToolOutput, mode: &str) {
    assert_eq!(run.code, 0, "{mode}: {}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.ends_with("RESULT ok\n"),
        "{mode}: {}",
        run.stdout
    );
    // The memtables are measured once no flush is pending (see the harness's settle()).
    assert!(run.stdout.contains("SETTLED true\n"), "{mode}");
    // The one INFO line of configure(): the budget and the memtables' half of it.
    let info = format!(
        "one shared block cache of {CACHE_BYTES} bytes, memtables up to {} bytes",
        CACHE_BYTES / 2
    );
    assert_eq!(
        run.stdout.matches(&info).count(),
        1,
        "{mode}: one INFO line '{info}' expected"
    );
    let stores = stores(&run.stdout);
    assert_eq!(
        stores.keys().map(String::as_str).collect::<Vec<_>>(),
        STORES,
        "{mode}"
    );
    let mut memtables = 0;
    for (name, m) in &stores {
        assert_eq!(
            m["block-cache-capacity"], CACHE_BYTES,
            "{mode}: {name} has its own cache"
        );
        let usage = m["block-cache-usage"];
        assert!(
            usage > 0 && usage <= CACHE_BYTES,
            "{mode}: {name} usage {usage}"
        );
        assert!(
            m["total-sst-files-size"] > 0,
            "{mode}: {name} never flushed"
        );
        memtables += m["size-all-mem-tables"];
    }
    assert!(memtables <= CACHE_BYTES, "{mode}: memtables {memtables}");
}

#[test]
fn jar_is_reproducible_and_java_8() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = build(&dir.path().join("a"));
    let b = build(&dir.path().join("b"));
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap(), "two builds differ");
    let mode = std::fs::metadata(&a).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o7777, 0o644);
    let javap = Command::new("javap")
        .args(["-v", "-cp"])
        .arg(&a)
        .arg("ksqlmsk.rocksdb.BoundedMemoryConfigSetter")
        .output()
        .expect("run javap");
    let text = String::from_utf8_lossy(&javap.stdout);
    assert!(
        javap.status.success(),
        "javap: {}",
        String::from_utf8_lossy(&javap.stderr)
    );
    assert!(
        text.contains("major version: 52"),
        "not Java 8 bytecode:\n{text}"
    );
    for iface in [
        "org.apache.kafka.streams.state.RocksDBConfigSetter",
        "org.apache.kafka.common.Configurable",
    ] {
        assert!(text.contains(iface), "does not implement {iface}");
    }
}

#[test]
fn bounds_every_store_by_one_shared_cache() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jar = build(&dir.path().join("jar"));

    // As ksqlDB: configure() with the server properties, the bad values first.
    let run = harness(&jar, "ksqldb", &dir.path().join("ksqldb"));
    assert_bounded(&run, "ksqldb");
    let bad: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("BAD "))
        .collect();
    assert!(bad.len() >= 20, "too few bad values tried: {bad:?}");
    for line in &bad {
        let (key, _) = line["BAD ".len()..].split_once('=').unwrap();
        assert!(
            line.contains(&format!("for configuration {key}: ")),
            "a ConfigException that does not name {key}: {line}"
        );
    }
    assert!(run.stdout.contains("CONFIGURE-AGAIN same ok\n"));
    let different = run
        .stdout
        .lines()
        .find(|l| l.starts_with("CONFIGURE-AGAIN different -> "))
        .expect("the reconfiguration was refused");
    assert!(
        different.contains(&format!("cache.bytes={CACHE_BYTES}"))
            && different.contains(&format!("cache.bytes={}", CACHE_BYTES / 2)),
        "{different}"
    );

    // A plain Kafka Streams application: the keys are streams configs. RocksDB's own LOG
    // shows each store opened with the shared cache: not strict, 10 % high priority.
    let streams = harness(&jar, "streams", &dir.path().join("streams"));
    assert_bounded(&streams, "streams");
    assert_logged(&streams, "streams", "0", "0.100");

    // strict = true and another index/filter share reach RocksDB's cache, and the budget
    // holds with them.
    let strict = harness(&jar, "strict", &dir.path().join("strict"));
    assert_bounded(&strict, "strict");
    assert_logged(&strict, "strict", "1", "0.250");

    // Without the setter every store has Kafka Streams' own 50 MiB cache: what the checks
    // above tell apart.
    let none = harness(&jar, "none", &dir.path().join("none"));
    assert_eq!(none.code, 0, "{}{}", none.stdout, none.stderr);
    let stores = stores(&none.stdout);
    assert_eq!(stores.len(), 3);
    for (name, m) in &stores {
        assert_eq!(m["block-cache-capacity"], STREAMS_DEFAULT_CACHE, "{name}");
    }
    assert!(!none.stdout.contains("RocksDB memory bounded"));
}

/// The whole way: the agent renders the setter with RocksDB's share of its memory plan
/// and puts the built jar on ksqlDB's classpath; the Kafka stand-in, with Kafka Streams
/// and RocksDB in its release as ksqlDB has them, configures it as ksqlDB does
/// (RocksDBConfigSetterHandler) before it becomes ready against the real broker.
#[test]
fn the_agent_bounds_ksqldbs_rocksdb_with_the_setter_it_renders() {
    use crate::kafka_run::wait_ready;
    use crate::support::kafka::{KafkaFixture, Setup};
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jar = build(&dir.path().join("jar"));
    let mut fx = KafkaFixture::start(Setup {
        sets: vec![kafka::STREAMS_SET],
        ksqldb: format!("rocksdb_setter_jar = \"{}\"\n", jar.display()),
        ..Setup::default()
    });
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    assert_eq!(
        fx.property("ksql.streams.rocksdb.config.setter").as_deref(),
        Some("ksqlmsk.rocksdb.BoundedMemoryConfigSetter")
    );
    let bytes: u64 = fx
        .property("ksql.msk.rocksdb.cache.bytes")
        .expect("rendered cache bytes")
        .parse()
        .unwrap();
    // RocksDB's share: a third of 75 % of this host's memory.
    let total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024;
    assert!(
        bytes > total / 5 && bytes <= total / 4,
        "{bytes} of {total}"
    );
    // ksqlDB's JVM loaded the jar the agent named and configured it with that share.
    let log = agent.stderr();
    assert!(
        log.contains("Configured RocksDB config setter ksqlmsk.rocksdb.BoundedMemoryConfigSetter"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "RocksDB memory bounded: one shared block cache of {bytes} bytes, memtables up to {} bytes",
            bytes / 2
        )),
        "{log}"
    );
    let pids = fx.standin_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains(&format!(":{} ", jar.display())),
        "{cmdline}"
    );
    assert_eq!(agent.stop(), 0);
}
