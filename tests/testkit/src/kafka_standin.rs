//! The Kafka-client-shaped ksqlDB stand-in (`tests/kafka/standin/`, README there) as a
//! release the agent installs: its Java sources compiled against the verified
//! `kafka-clients` artifact set, packed with that set's jars into `share/java/ksqldb/` of a
//! ksqlDB-shaped archive whose `bin/` starts it the way ksqlDB's scripts start ksqlDB. The
//! agent then adds the aws-msk-iam-auth jar: [`iam_all_jar`] builds that `-all` jar from the
//! Maven artifacts, as the GitHub release asset bundles them.
//!
//! Everything comes from the Maven cache `tests/kafka/fetch` fills (setup-host runs it);
//! nothing is fetched here. A missing cache is an `Err` naming it, for tests to skip on.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::tarball::{server_properties, TarballBuilder};

/// The repository's `tests/kafka/standin/`.
pub fn standin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kafka/standin")
}

/// The verified jars of artifact set `set`, in classpath order.
pub fn classpath(set: &str) -> Result<Vec<PathBuf>, String> {
    let file = crate::kafka::classpath_file(set);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "the Maven artifact set '{set}' is not in the cache ({}: {e}; tests/kafka/fetch, run by tests/setup-host, fills it)",
            file.display()
        )
    })?;
    let jars: Vec<PathBuf> = text
        .trim()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if let Some(missing) = jars.iter().find(|j| !j.is_file()) {
        return Err(format!(
            "{} of the Maven artifact set '{set}' is missing (run tests/kafka/fetch)",
            missing.display()
        ));
    }
    Ok(jars)
}

fn hash_files(h: &mut Sha256, files: &[PathBuf]) -> Result<(), String> {
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?);
    }
    Ok(())
}

/// A directory under the system temp dir named after what it is built from: built once
/// by `build` (into a fresh sibling, then renamed: concurrent test processes may race,
/// the loser's copy is dropped), reused afterwards.
fn cached(
    kind: &str,
    key: &[u8],
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "ksql-msk-{kind}-{}",
        &hex::encode(Sha256::digest(key))[..16]
    ));
    if dir.join(".done").exists() {
        return Ok(dir);
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".ksql-msk-{kind}-"))
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| format!("temp dir: {e}"))?;
    build(tmp.path())?;
    std::fs::write(tmp.path().join(".done"), b"").map_err(|e| e.to_string())?;
    let built = tmp.keep();
    if std::fs::rename(&built, &dir).is_err() {
        // Another process got there first.
        let _ = std::fs::remove_dir_all(&built);
    }
    Ok(dir)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The stand-in's jar (`ksqlmsk.standin.Server` and `Cli`), compiled for Java 11 against
/// the `clients` set.
pub fn standin_jar() -> Result<PathBuf, String> {
    let clients = classpath("clients")?;
    let src = standin_dir().join("src/ksqlmsk/standin");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .collect();
    sources.sort();
    let mut key = Sha256::new();
    hash_files(&mut key, &sources)?;
    hash_files(&mut key, &clients)?;
    let dir = cached("kafka-standin", &key.finalize(), |dir| {
        let classes = dir.join("classes");
        let cp = std::env::join_paths(&clients).map_err(|e| e.to_string())?;
        run(Command::new("javac")
            .args(["-nowarn", "--release", "11", "-d"])
            .arg(&classes)
            .arg("-cp")
            .arg(cp)
            .args(&sources))?;
        run(Command::new("jar")
            .arg("cf")
            .arg(dir.join("ksql-msk-kafka-standin.jar"))
            .arg("-C")
            .arg(&classes)
            .arg("."))
    })?;
    Ok(dir.join("ksql-msk-kafka-standin.jar"))
}

/// A ksqlDB-shaped release `version` whose server is the Kafka stand-in: `bin/` from
/// `tests/kafka/standin/bin`, the shared `ksql-server.properties`, upstream's console
/// log4j configuration, and in `share/java/ksqldb/` the stand-in's jar and the `clients`
/// set (kafka-clients, its compression libraries, slf4j with the reload4j binding). No
/// IAM jar: the agent adds it.
pub fn kafka_release(version: &str) -> Result<Vec<u8>, String> {
    kafka_release_with(version, &[])
}

/// [`kafka_release`] with the jars of more artifact sets in `share/java/ksqldb/` (a jar
/// of the same file name once): `streams` gives it Kafka Streams and RocksDB, as ksqlDB's
/// own releases have them, for the RocksDB config setter.
pub fn kafka_release_with(version: &str, sets: &[&str]) -> Result<Vec<u8>, String> {
    let jar = standin_jar()?;
    let mut b = TarballBuilder::new(version);
    b.dir("");
    b.dir("bin");
    for script in ["ksql-server-start", "ksql-run-class", "ksql"] {
        let path = standin_dir().join("bin").join(script);
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        b.file(&format!("bin/{script}"), &text, 0o755);
    }
    b.dir("etc/ksqldb");
    b.file(
        "etc/ksqldb/ksql-server.properties",
        &server_properties(),
        0o644,
    );
    b.file(
        "etc/ksqldb/log4j.properties",
        include_bytes!("../../fixtures/log4j/upstream-console.properties"),
        0o644,
    );
    b.dir("share/java/ksqldb");
    let mut jars = vec![jar];
    jars.extend(classpath("clients")?);
    for set in sets {
        jars.extend(classpath(set)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for path in jars {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Test helpers are no part of a release.
        if name.contains("-test-utils-") || !seen.insert(name.clone()) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        b.file(&format!("share/java/ksqldb/{name}"), &bytes, 0o644);
    }
    b.dir("share/doc/ksqldb");
    b.file(
        "share/doc/ksqldb/README",
        b"ksql-msk's Kafka-client-shaped ksqlDB stand-in (tests/kafka/standin), not ksqlDB\n",
        0o644,
    );
    Ok(b.finish())
}

/// aws-msk-iam-auth `version` as one `-all` jar, like the GitHub release asset the agent
/// downloads: the `iam-<version>` set merged (first jar wins; `META-INF/services` files
/// concatenated, signatures dropped), without slf4j-api, which ksqlDB's classpath has.
pub fn iam_all_jar(version: &str) -> Result<Vec<u8>, String> {
    let set = format!("iam-{version}");
    let jars: Vec<PathBuf> = classpath(&set)?
        .into_iter()
        .filter(|j| {
            !j.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("slf4j-api-"))
        })
        .collect();
    let mut key = Sha256::new();
    hash_files(&mut key, &jars)?;
    let dir = cached(&format!("iam-all-{version}"), &key.finalize(), |dir| {
        let merged = dir.join("merged");
        std::fs::create_dir_all(&merged).map_err(|e| e.to_string())?;
        for (i, jar) in jars.iter().enumerate() {
            let part = dir.join(format!("part-{i}"));
            std::fs::create_dir_all(&part).map_err(|e| e.to_string())?;
            run(Command::new("jar").arg("xf").arg(jar).current_dir(&part))?;
            merge_into(&part, &part, &merged)?;
            let _ = std::fs::remove_dir_all(&part);
        }
        let manifest = merged.join("META-INF/MANIFEST.MF");
        let _ = std::fs::remove_file(&manifest);
        run(Command::new("jar")
            .arg("cf")
            .arg(dir.join("all.jar"))
            .arg("-C")
            .arg(&merged)
            .arg("."))
    })?;
    std::fs::read(dir.join("all.jar")).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Copy `dir` (under `root`) into `merged`: files already there are kept, except service
/// registrations, which are appended; jar signatures are dropped.
fn merge_into(root: &Path, dir: &Path, merged: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
        let target = merged.join(rel);
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            merge_into(root, &path, merged)?;
            continue;
        }
        let rel_s = rel.to_string_lossy();
        let upper = rel_s.to_ascii_uppercase();
        if upper.starts_with("META-INF/")
            && [".SF", ".DSA", ".RSA", ".EC"]
                .iter()
                .any(|s| upper.ends_with(s))
        {
            continue;
        }
        if rel_s.starts_with("META-INF/services/") && target.exists() {
            let mut text = std::fs::read(&target).map_err(|e| e.to_string())?;
            if !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            text.extend(std::fs::read(&path).map_err(|e| e.to_string())?);
            std::fs::write(&target, text).map_err(|e| e.to_string())?;
        } else if !target.exists() {
            std::fs::copy(&path, &target).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A Kafka world on `world`'s stand-ins: publishes the Kafka stand-in's release as ksqlDB
/// `ksqldb_version` and aws-msk-iam-auth `iam_version` as one `-all` jar, starts one real
/// broker for the stand-ins' cluster ARN and makes it the cluster's IAM bootstrap broker.
/// Returns the cluster and the jar's SHA-256 (the pin for `[iam_auth]`).
pub fn publish_kafka_world(
    world: &crate::standins::Standins,
    ksqldb_version: &str,
    iam_version: &str,
) -> Result<(crate::kafka::KafkaCluster, String), String> {
    if let Some(why) = crate::kafka::unavailable() {
        return Err(why);
    }
    // With Kafka Streams and RocksDB, as ksqlDB's releases have them: the agent installed
    // from its RPM names its RocksDB config setter, which the stand-in configures.
    world.publish_tarball(
        ksqldb_version,
        &kafka_release_with(ksqldb_version, &["streams"])?,
    );
    let jar = iam_all_jar(iam_version)?;
    world
        .art
        .put(&crate::standins::jar_path(iam_version), jar.clone());
    let cluster = crate::kafka::KafkaCluster::start(crate::kafka::KafkaOptions {
        cluster_arn: world.cluster.arn.clone(),
        ..crate::kafka::KafkaOptions::default()
    });
    world.msk.set_brokers(
        &world.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&cluster.bootstrap()),
    );
    Ok((cluster, crate::standins::sha256_hex(&jar)))
}

/// This host's JDK: `<home>/bin/java` of the `java` on PATH, links resolved.
pub fn host_java_home() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let java = std::env::split_paths(&path)
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .ok_or("java is not on PATH")?;
    let real = std::fs::canonicalize(&java).map_err(|e| format!("{}: {e}", java.display()))?;
    real.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not <home>/bin/java", real.display()))
}
