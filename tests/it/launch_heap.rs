//! The heap the agent plans, on the JVM's command line (issue 25): the release's start
//! script is the Kafka stand-in's `bin/ksql-server-start`, which execs its
//! `bin/ksql-run-class`, which composes the JVM's options from the environment as
//! ksqlDB's does (tests/kafka/standin/README.md) and execs `$JAVA_HOME/bin/java`. That
//! `java` here writes its arguments, one per line, and then becomes the ksqlDB stand-in,
//! so the agent sees a healthy ksqlDB with the command line a real JVM would have got.
//!
//! Not Confluent's own scripts: the repository holds none (only their documented
//! behaviour, /work/shared/FACTS.md), and the memory the plan reads (/proc/meminfo, a
//! cgroup v2 `memory.max`) cannot be injected into the agent, so the auto heap is checked
//! at this host's memory; the 2 and 8 GiB plans are the unit tests' (ksqldb::memory).

use std::path::{Path, PathBuf};

use crate::run::{fake_ksqldb, wait_for, write_exec, Fixture};
use crate::support::repo_root;

/// `java -version` answers as the fixture's Java 17; any other call appends its
/// arguments (one per line, then a `--` line) to `record` and execs the stand-in with
/// the properties file (ksql-run-class's last argument).
fn recording_java(record: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         if [ \"$1\" = -version ]; then\n\
         echo 'openjdk version \"17.0.15\" 2025-04-15 LTS' >&2\n\
         echo 'OpenJDK Runtime Environment Corretto-17.0.15.6.1 (build 17.0.15+6-LTS)' >&2\n\
         exit 0\n\
         fi\n\
         for a in \"$@\"; do printf '%s\\n' \"$a\"; done >> '{record}'\n\
         echo -- >> '{record}'\n\
         for last in \"$@\"; do :; done\n\
         exec '{fake}' \"$last\"\n",
        record = record.display(),
        fake = fake_ksqldb().display(),
    )
}

struct Launch {
    fx: Fixture,
    record: PathBuf,
}

impl Launch {
    fn new() -> Launch {
        let start = repo_root().join("tests/kafka/standin/bin/ksql-server-start");
        assert!(start.exists(), "{} missing", start.display());
        let fx = Fixture::with_start_prefix("", &format!("exec '{}' \"$@\"\n", start.display()));
        let record = fx.host.dir.path().join("java.argv");
        write_exec(
            &fx.host.dir.path().join("jdk/bin/java"),
            &recording_java(&record),
        );
        fx.mode("healthy_after_ms=100\n");
        Launch { fx, record }
    }

    /// The arguments of each JVM start so far.
    fn starts(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for line in text.lines() {
            if line == "--" {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(line.to_string());
            }
        }
        out
    }

    fn planned_heap_mib(&self) -> u64 {
        let out = self.fx.host.run(&["status", "--json"]);
        assert_eq!(out.code, 0, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["memory"]["heap_mib"]
            .as_u64()
            .unwrap_or_else(|| panic!("memory.heap_mib: {v:#}"))
    }
}

/// The -Xms/-Xmx options of one start, in order.
fn heap_args(argv: &[String]) -> Vec<&str> {
    argv.iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("-Xms") || a.starts_with("-Xmx"))
        .collect()
}

#[test]
fn the_planned_heap_is_on_the_launch_scripts_command_line_and_an_explicit_heap_wins() {
    let l = Launch::new();
    let mut agent = l.fx.start();
    wait_for("ksqlDB healthy", || agent.stderr().contains("is healthy"));
    let starts = l.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let argv = &starts[0];
    // The JVM the scripts started: the stand-in's main class and our properties file.
    let props = l.fx.release.join("etc/ksqldb/ksql-server.properties");
    assert_eq!(argv.last().map(String::as_str), props.to_str(), "{argv:?}");
    assert!(
        argv.iter().any(|a| a == "ksqlmsk.standin.Server"),
        "{argv:?}"
    );
    // Exactly the plan's heap, once each, and not the script's -Xmx3g default.
    let heap = l.planned_heap_mib();
    assert!(heap >= 512, "{heap}");
    assert_eq!(
        heap_args(argv),
        [format!("-Xms{heap}m"), format!("-Xmx{heap}m")],
        "{argv:?}"
    );
    assert_eq!(agent.stop(), 0);

    // An explicit heap wins over the plan, on the command line and in the plan shown.
    l.fx.host
        .write_dropin("50-heap.toml", "[ksqldb]\nheap = \"700m\"\n");
    let mut agent = l.fx.start();
    wait_for("ksqlDB healthy again", || {
        agent.stderr().contains("is healthy")
    });
    let starts = l.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(
        heap_args(&starts[1]),
        ["-Xms700m", "-Xmx700m"],
        "{starts:?}"
    );
    assert_eq!(l.planned_heap_mib(), 700);
    assert_eq!(agent.stop(), 0);
}

/// The `-cp` value of one start.
fn classpath(argv: &[String]) -> &str {
    let i = argv.iter().position(|a| a == "-cp").expect("-cp");
    &argv[i + 1]
}

#[test]
fn the_rocksdb_setter_jar_is_on_the_classpath_and_named_with_rocksdbs_share() {
    let l = Launch::new();
    // Any file stands for the jar here: the agent checks it is there, the JVM loads it
    // (the setter itself is tested against Kafka Streams in rocksdb_setter.rs).
    let jar = l.fx.host.dir.path().join("ksql-msk-rocksdb.jar");
    std::fs::write(&jar, b"PK\x05\x06").unwrap();
    l.fx.host.write_dropin(
        "50-rocksdb.toml",
        &format!(
            "[ksqldb]\nrocksdb_setter_jar = \"{}\"\nenv = {{ KSQL_CLASSPATH = \"/opt/udfs/*\" }}\n",
            jar.display()
        ),
    );
    let mut agent = l.fx.start();
    wait_for("ksqlDB healthy", || agent.stderr().contains("is healthy"));
    let starts = l.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    // The release's jars, then the operator's KSQL_CLASSPATH, then the setter.
    let cp = classpath(&starts[0]);
    assert!(
        cp.ends_with(&format!(":/opt/udfs/*:{}", jar.display())),
        "{cp}"
    );
    // The properties name the setter with RocksDB's share of the plan in bytes.
    let out = l.fx.host.run(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["memory"]["rocksdb_bounded"], true, "{v:#}");
    let share_mib = v["memory"]["rocksdb_mib"].as_u64().unwrap();
    let props =
        std::fs::read_to_string(l.fx.release.join("etc/ksqldb/ksql-server.properties")).unwrap();
    let get = |key: &str| {
        props
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    assert_eq!(
        get("ksql.streams.rocksdb.config.setter").as_deref(),
        Some("ksqlmsk.rocksdb.BoundedMemoryConfigSetter"),
        "{props}"
    );
    let bytes: u64 = get("ksql.msk.rocksdb.cache.bytes")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(bytes / (1024 * 1024), share_mib);
    assert!(
        agent.stderr().contains("(bounded by ksql-msk's setter"),
        "{}",
        agent.stderr()
    );
    assert_eq!(agent.stop(), 0);

    // A setter jar configured elsewhere that is gone: 78 naming the key, ksqlDB not
    // started with a classpath the properties would fail on.
    std::fs::remove_file(&jar).unwrap();
    let mut agent = l.fx.start();
    assert_eq!(agent.wait(), 78, "{}", agent.stderr());
    assert!(
        agent.stderr().contains("ksqldb.rocksdb_setter_jar: ")
            && agent.stderr().contains("ksql-msk-rocksdb.jar"),
        "{}",
        agent.stderr()
    );
    assert_eq!(l.starts().len(), 1);
}
