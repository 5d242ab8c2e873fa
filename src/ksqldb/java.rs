//! The Java side of starting ksqlDB: which JVM, which Java version, how much heap, and
//! which GC options a given ksqlDB release can run with on that Java.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{Heap, Settings};
use crate::exit::{fail, ExitCode};

/// GC options for ksqlDB < 0.29 on Java ≥ 14, where the release's default CMS options
/// make the JVM refuse to start (`Unrecognized VM option 'UseConcMarkSweepGC'`). These
/// are the G1 settings Kafka and ksqlDB 0.29 ship.
pub const G1_OPTS: &str = "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
     -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
     -XX:MaxInlineLevel=15 -Djava.awt.headless=true";

/// Largest automatic heap: above 31g the JVM loses compressed object pointers.
const AUTO_HEAP_MAX_MIB: u64 = 31 * 1024;
const AUTO_HEAP_MIN_MIB: u64 = 512;

/// A Java runtime that was found and asked for its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Java {
    pub home: PathBuf,
    pub major: u32,
    /// The `version "..."` text, for messages.
    pub version: String,
}

/// The Java major version and version text from `java -version`'s output, for every
/// vendor's format: `openjdk version "17.0.15" 2025-04-15`, `java version "1.8.0_392"`,
/// `openjdk version "21" 2023-09-19`, `openjdk version "22-ea"`.
pub fn parse_java_version(output: &str) -> Option<(u32, String)> {
    for line in output.lines() {
        let Some(i) = line.find(" version \"") else {
            continue;
        };
        let rest = &line[i + " version \"".len()..];
        let Some(end) = rest.find('"') else { continue };
        let text = &rest[..end];
        let mut parts = text.split(|c: char| !c.is_ascii_digit());
        let first: u32 = parts.next()?.parse().ok()?;
        let major = if first == 1 {
            parts.next()?.parse().ok()?
        } else {
            first
        };
        return Some((major, text.to_string()));
    }
    None
}

/// `(major, minor, patch)` of a dotted version; missing parts are 0.
pub fn version_tuple(v: &str) -> (u32, u32, u32) {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let mut it = core.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// True when ksqlDB `ksql_version`'s default JVM options cannot run on Java `java_major`.
pub fn needs_g1_opts(ksql_version: &str, java_major: u32) -> bool {
    let (maj, min, _) = version_tuple(ksql_version);
    java_major >= 14 && (maj, min) < (0, 29)
}

/// The lowest Java version aws-msk-iam-auth `version` runs on: 2.3.5 and later are built
/// for Java 17 only.
pub fn iam_auth_min_java(version: &str) -> u32 {
    if version_tuple(version) >= (2, 3, 5) {
        17
    } else {
        8
    }
}

/// Whether ksqlDB and the IAM jar can run on `java`; the error names all versions.
pub fn check_compatible(java: &Java, ksql_version: &str, iam_version: &str) -> Result<(), String> {
    let need = iam_auth_min_java(iam_version);
    if java.major < need {
        return Err(format!(
            "aws-msk-iam-auth {iam_version} needs Java {need} or newer, but {} is Java {} ({}); \
             install Java 17 (e.g. java-17-amazon-corretto-headless) and set ksqldb.java_home, \
             or set iam_auth.version to 2.3.4 or older",
            java.home.display(),
            java.major,
            java.version
        ));
    }
    if java.major < 8 {
        return Err(format!(
            "ksqlDB {ksql_version} needs Java 8 or newer, but {} is Java {} ({})",
            java.home.display(),
            java.major,
            java.version
        ));
    }
    Ok(())
}

/// Where Java lives: `ksqldb.java_home`, else `$JAVA_HOME`, else the `java` on `PATH`
/// or `/etc/alternatives/java` with symlinks resolved (`readlink -f $(which java)`).
pub fn find_java_home(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(home) = configured {
        if is_executable(&home.join("bin/java")) {
            return Ok(home.to_path_buf());
        }
        return Err(fail(
            ExitCode::Config,
            format!("ksqldb.java_home: {} has no bin/java", home.display()),
        ));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        if is_executable(&home.join("bin/java")) {
            return Ok(home);
        }
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("java")).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from("/etc/alternatives/java"));
    for candidate in candidates {
        if !is_executable(&candidate) {
            continue;
        }
        let Ok(real) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        // <home>/bin/java
        if let Some(home) = real.parent().and_then(Path::parent) {
            if real.parent().and_then(Path::file_name) == Some("bin".as_ref()) {
                return Ok(home.to_path_buf());
            }
        }
    }
    Err(fail(
        ExitCode::Config,
        "no Java runtime found (not in ksqldb.java_home, $JAVA_HOME, PATH or /etc/alternatives/java); \
         install java-17-amazon-corretto-headless or set ksqldb.java_home",
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run `<home>/bin/java -version` and parse what it prints (on stderr), with a timeout.
pub fn probe(home: &Path) -> Result<Java> {
    let bin = home.join("bin/java");
    let mut child = Command::new(&bin)
        .arg("-version")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} -version", bin.display()))?;
    let stderr = child.stderr.take().context("java -version stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(64 * 1024).read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(text) => break text,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    ExitCode::Config,
                    format!("{} -version did not answer within 30s", bin.display()),
                ));
            }
        }
    };
    // The supervisor may have reaped it already (it reaps every child); the text is
    // what matters.
    let _ = child.wait();
    let (major, version) = parse_java_version(&text).ok_or_else(|| {
        fail(
            ExitCode::Config,
            format!(
                "cannot tell the Java version from `{} -version`: {:?}",
                bin.display(),
                text.lines().next().unwrap_or("")
            ),
        )
    })?;
    Ok(Java {
        home: home.to_path_buf(),
        major,
        version,
    })
}

/// `KSQL_JVM_PERFORMANCE_OPTS` for ksqlDB `ksql_version` on `java`: the G1 options when
/// the release's default (CMS) options would not start, else none (the release's own).
pub fn performance_opts(ksql_version: &str, java: &Java) -> Option<String> {
    needs_g1_opts(ksql_version, java.major).then(|| G1_OPTS.to_string())
}

/// The Java major version and version text from a runtime's `release` file
/// (`JAVA_VERSION="17.0.15"`, `JAVA_VERSION="1.8.0_392"`).
pub fn parse_release_file(text: &str) -> Option<(u32, String)> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("JAVA_VERSION="))?
        .trim()
        .trim_matches('"');
    parse_java_version(&format!("java version \"{value}\""))
}

/// The Java at `home`: from its `release` file, which every JDK and JRE build since 8
/// has (Corretto's too), else by running `java -version` ([`probe`]). Reading the file
/// costs microseconds; starting a JVM to ask costs tens of milliseconds, which `ksql`
/// would add to every start of the CLI.
pub fn identify(home: &Path) -> Result<Java> {
    let parsed = std::fs::read_to_string(home.join("release"))
        .ok()
        .and_then(|t| parse_release_file(&t));
    match parsed {
        Some((major, version)) => Ok(Java {
            home: home.to_path_buf(),
            major,
            version,
        }),
        None => probe(home),
    }
}

/// Memory available to us in bytes: MemTotal, lowered by a cgroup v2 limit if any.
pub fn memory_limit(meminfo: &str, cgroup_max: Option<&str>) -> Option<u64> {
    let total_kib: u64 = meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })?;
    let mut bytes = total_kib * 1024;
    if let Some(limit) = cgroup_max.and_then(|c| c.trim().parse::<u64>().ok()) {
        bytes = bytes.min(limit);
    }
    Some(bytes)
}

/// `KSQL_HEAP_OPTS` for a heap setting. `auto`: what is left of the memory budget after
/// RocksDB's share and the JVM's overhead ([`crate::ksqldb::memory::plan`]), at least
/// 512m and at most 31g; -Xms equal to -Xmx so the heap is committed at start.
pub fn heap_opts(heap: &Heap, memory: Option<u64>, percent: u64) -> String {
    match heap {
        Heap::Fixed(size) => format!("-Xms{size} -Xmx{size}"),
        Heap::Auto => {
            let mib = memory
                .map(|b| crate::ksqldb::memory::plan(b, percent, None).heap / (1024 * 1024))
                .unwrap_or(AUTO_HEAP_MIN_MIB)
                .clamp(AUTO_HEAP_MIN_MIB, AUTO_HEAP_MAX_MIB);
            format!("-Xms{mib}m -Xmx{mib}m")
        }
    }
}

/// The memory plan for this host and heap setting (`None` when the memory is unknown).
pub fn host_memory_plan(heap: &Heap, percent: u64) -> Option<crate::ksqldb::memory::Plan> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cgroup = cgroup_memory_max();
    let total = memory_limit(&meminfo, cgroup.as_deref())?;
    let fixed = match heap {
        Heap::Fixed(size) => crate::ksqldb::memory::jvm_size(size),
        Heap::Auto => None,
    };
    Some(crate::ksqldb::memory::plan(total, percent, fixed))
}

/// How RocksDB is held on this host with its memory plan (`None`: memory unknown;
/// [`crate::ksqldb::memory::rocksdb`]): 78 naming `ksqldb.rocksdb_setter_jar` when a jar
/// configured away from the default is missing.
pub fn host_rocksdb(
    settings: &Settings,
    plan: Option<&crate::ksqldb::memory::Plan>,
) -> Result<crate::ksqldb::memory::RocksDb> {
    use crate::ksqldb::memory;
    let operators = settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == memory::SETTER_KEY)
        .map(|(_, v)| v.as_str());
    memory::rocksdb(
        plan,
        settings.ksqldb.rocksdb_setter_jar.as_deref(),
        operators,
    )
    .map_err(|e| fail(ExitCode::Config, format!("ksqldb.rocksdb_setter_jar: {e}")))
}

/// [`host_memory_plan`] for the settings' heap and budget.
pub fn settings_memory_plan(settings: &Settings) -> Option<crate::ksqldb::memory::Plan> {
    host_memory_plan(&settings.ksqldb.heap, settings.ksqldb.memory_budget.into())
}

/// Heap options for this host.
pub fn host_heap_opts(heap: &Heap, percent: u64) -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cgroup = cgroup_memory_max();
    heap_opts(heap, memory_limit(&meminfo, cgroup.as_deref()), percent)
}

fn cgroup_memory_max() -> Option<String> {
    // cgroup v2: our own cgroup's memory.max ("max" when unlimited).
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.max", path.trim())).ok()
}

/// Everything JVM-related the start of ksqlDB needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jvm {
    pub java: Java,
    pub heap_opts: String,
    /// `KSQL_JVM_PERFORMANCE_OPTS`, when the release's default would not start.
    pub performance_opts: Option<String>,
}

/// Find Java, check it fits ksqlDB `ksql_version` and the IAM jar, and choose options.
/// Incompatible versions are a configuration error (exit 78).
pub fn jvm_for(settings: &Settings, ksql_version: &str) -> Result<Jvm> {
    let home = find_java_home(settings.ksqldb.java_home.as_deref())?;
    let java = identify(&home)?;
    check_compatible(&java, ksql_version, &settings.iam_auth.version)
        .map_err(|e| fail(ExitCode::Config, e))?;
    let performance_opts = performance_opts(ksql_version, &java);
    Ok(Jvm {
        heap_opts: host_heap_opts(&settings.ksqldb.heap, settings.ksqldb.memory_budget.into()),
        java,
        performance_opts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_of_all_vendors() {
        let cases = [
            (
                "openjdk version \"17.0.15\" 2025-04-15 LTS\nOpenJDK Runtime Environment Corretto-17.0.15.6.1 (build 17.0.15+6-LTS)\n",
                17,
            ),
            (
                "java version \"1.8.0_392\"\nJava(TM) SE Runtime Environment (build 1.8.0_392-b08)\n",
                8,
            ),
            ("openjdk version \"21\" 2023-09-19\n", 21),
            ("openjdk version \"11.0.21\" 2023-10-17 LTS\n", 11),
            ("openjdk version \"22-ea\" 2024-03-19\n", 22),
            (
                "Picked up JAVA_TOOL_OPTIONS: -Dfoo\nopenjdk version \"25\" 2025-09-16\n",
                25,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_java_version(text).map(|v| v.0), Some(want), "{text}");
        }
        assert_eq!(parse_java_version("bash: java: not found"), None);
    }

    #[test]
    fn release_files_of_java_8_to_21() {
        let corretto = "IMPLEMENTOR=\"Amazon.com Inc.\"\nJAVA_VERSION=\"17.0.15\"\nJAVA_VERSION_DATE=\"2025-04-15\"\n";
        assert_eq!(parse_release_file(corretto), Some((17, "17.0.15".into())));
        assert_eq!(
            parse_release_file("JAVA_VERSION=\"1.8.0_392\"\nOS_NAME=\"Linux\"\n"),
            Some((8, "1.8.0_392".into()))
        );
        assert_eq!(
            parse_release_file("JAVA_VERSION=\"21\""),
            Some((21, "21".into()))
        );
        assert_eq!(parse_release_file("IMPLEMENTOR=\"x\"\n"), None);
        assert_eq!(parse_release_file("JAVA_VERSION=\"\""), None);
    }

    #[test]
    fn identify_reads_the_release_file_without_running_java() {
        let dir = tempfile::tempdir().unwrap();
        // No bin/java at all: had it been run, identify would fail.
        std::fs::write(dir.path().join("release"), "JAVA_VERSION=\"11.0.21\"\n").unwrap();
        let java = identify(dir.path()).unwrap();
        assert_eq!((java.major, java.version.as_str()), (11, "11.0.21"));
        assert!(identify(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn gc_options_by_version() {
        assert!(needs_g1_opts("0.23.1", 17));
        assert!(needs_g1_opts("0.28.2", 14));
        assert!(!needs_g1_opts("0.28.2", 11));
        assert!(!needs_g1_opts("0.29.0", 17));
        assert!(!needs_g1_opts("0.23.1", 8));
    }

    #[test]
    fn iam_jar_java() {
        assert_eq!(iam_auth_min_java("1.1.1"), 8);
        assert_eq!(iam_auth_min_java("2.3.4"), 8);
        assert_eq!(iam_auth_min_java("2.3.5"), 17);
        assert_eq!(iam_auth_min_java("2.10.0"), 17);
        let java11 = Java {
            home: "/usr/lib/jvm/java-11".into(),
            major: 11,
            version: "11.0.21".into(),
        };
        let err = check_compatible(&java11, "0.29.0", "2.3.5").unwrap_err();
        assert!(err.contains("2.3.5") && err.contains("Java 11"), "{err}");
        assert!(check_compatible(&java11, "0.29.0", "2.2.0").is_ok());
    }

    #[test]
    fn heap_sizes() {
        let gib = 1024 * 1024 * 1024;
        // 75 % of 8 GiB less RocksDB's third and the JVM's tenth (src/ksqldb/memory.rs).
        assert_eq!(
            heap_opts(&Heap::Auto, Some(8 * gib), 75),
            "-Xms3481m -Xmx3481m"
        );
        assert_eq!(
            heap_opts(&Heap::Auto, Some(gib / 2), 75),
            "-Xms512m -Xmx512m"
        );
        assert_eq!(
            heap_opts(&Heap::Auto, Some(256 * gib), 75),
            "-Xms31744m -Xmx31744m"
        );
        assert_eq!(
            heap_opts(&Heap::Fixed("4g".into()), None, 75),
            "-Xms4g -Xmx4g"
        );
        let mi = "MemTotal:       16384000 kB\nMemFree: 1 kB\n";
        assert_eq!(memory_limit(mi, None), Some(16384000 * 1024));
        assert_eq!(memory_limit(mi, Some("max\n")), Some(16384000 * 1024));
        assert_eq!(memory_limit(mi, Some("1073741824\n")), Some(gib));
    }
}
