//! `ksql-msk-standins [--kafka] DIR [STATE_DIR]`: the stand-ins of the systemd end-to-end
//! test (tests/systemd/run, e2e_run) on 127.0.0.1 until SIGTERM.
//!
//! Serves a fake MSK API with one ACTIVE cluster, a fake IMDSv2 (region; local-ipv4
//! 127.0.0.1, the advertised listener) and an artifact server publishing a signed
//! ksqlDB-shaped release whose `bin/ksql-server-start` is the `fake-ksqldb` binary built
//! beside this one, with a `jre/bin/java` script that answers `java -version` (the test
//! container has no Java) and a `bin/ksql-restore-command-topic` that runs that binary
//! as ksqlDB's restore tool. Once all listen, writes into DIR:
//!   sysconfig         environment for /etc/sysconfig/ksql-msk (IMDS endpoint and
//!                     static test credentials)
//!   50-standins.toml  a config drop-in pointing the agent at the stand-ins, pins included
//!   ready             empty, last
//! While a file `msk-deny` exists in DIR, every MSK operation is denied (403
//! AccessDeniedException), as before an operator attaches the instance role's policy;
//! each denied call is logged on stderr (`fake MSK: denied OPERATION at UNIX_TIME`).
//! STATE_DIR (default /var/lib/ksql-msk) is where the agent installs, so the drop-in's
//! `ksqldb.java_home` can name the script inside the release it will install.
//!
//! With `--kafka` (e2e_kafka): one real Apache Kafka broker that authenticates like MSK
//! with IAM (tests/kafka) is the cluster's IAM bootstrap broker; the release's server is
//! the Kafka-client-shaped ksqlDB stand-in (a JVM: `java_home` is this host's JDK, which
//! the test binds into the container at the same path); the credentials are the fake
//! IMDS's (the broker trusts those), so `sysconfig` sets no static keys; DIR also gets
//! `truststore.p12`, the test CA, which the drop-in's `[properties]` expect at
//! /etc/ksql-msk/kafka-test-ca.p12. While a file `kafka-stop` exists in DIR the broker is
//! stopped (`kafka-stopped` says when it is); removing it starts the broker again.

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::kafka::KafkaCluster;
use ksql_msk_testkit::kafka_standin;
use ksql_msk_testkit::standins::{self, Standins};

const REGION: &str = "eu-west-1";
const KSQLDB_VERSION: &str = "0.29.0";
/// Published too: what the e2e upgrades to before `ksql-msk rollback`.
const UPGRADE_VERSION: &str = "0.29.1";
const IAM_VERSION: &str = "2.3.0";
/// With `--kafka`: the newest aws-msk-iam-auth of the Maven sets (tests/kafka).
const KAFKA_IAM_VERSION: &str = "2.4.0";
/// Where the container's service finds the test CA (the test copies DIR/truststore.p12).
const TRUSTSTORE_IN_CONTAINER: &str = "/etc/ksql-msk/kafka-test-ca.p12";

/// Set by SIGTERM: the broker JVMs lead process groups of their own, so they are
/// stopped by dropping the cluster, not by the signal that ends this process.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

fn main() {
    if let Err(e) = serve() {
        eprintln!("ksql-msk-standins: {e:#}");
        std::process::exit(1);
    }
}

/// Write `text` to `dir/name` through a temporary file, so a reader never sees half.
fn publish(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("renaming {}", tmp.display()))
}

fn serve() -> Result<()> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let with_kafka = args.first().is_some_and(|a| a == "--kafka");
    if with_kafka {
        args.remove(0);
    }
    let mut args = args.into_iter();
    let dir = PathBuf::from(
        args.next()
            .context("usage: ksql-msk-standins [--kafka] DIR [STATE_DIR]")?,
    );
    let state_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/ksql-msk"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // SAFETY: signal(2) with a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t) };

    let world = Standins::start("e2e", REGION);
    world.msk.deny_while_exists(dir.join("msk-deny"));
    let imds = FakeImds::start(REGION, "127.0.0.1");
    let mut cluster = None;
    let (sysconfig, drop_in) = if with_kafka {
        let (c, drop_in) = kafka_world(&world, &dir)?;
        cluster = Some(c);
        // No static keys: the agent and ksqlDB's IAM jar take the fake IMDS's role
        // credentials, the ones the broker trusts.
        (
            format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={}\n", imds.url()),
            drop_in,
        )
    } else {
        (
            format!(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT={}\n\
                 AWS_ACCESS_KEY_ID=AKIASTANDINEXAMPLE00\n\
                 AWS_SECRET_ACCESS_KEY=standin/secret/key/not/a/real/one/0000000\n",
                imds.url()
            ),
            fake_world(&world, &state_dir)?,
        )
    };
    publish(&dir, "sysconfig", &sysconfig)?;
    publish(&dir, "50-standins.toml", &drop_in)?;
    publish(&dir, "ready", "")?;
    println!(
        "stand-ins ready: MSK {} artifacts {} IMDS {}{} (files in {})",
        world.msk.url(),
        world.art.server.url(),
        imds.url(),
        cluster
            .as_ref()
            .map(|c| format!(" Kafka {}", c.bootstrap()))
            .unwrap_or_default(),
        dir.display()
    );
    while !TERMINATED.load(Ordering::SeqCst) {
        if let Some(cluster) = cluster.as_mut() {
            follow_kafka_stop(cluster, &dir)?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Dropping the cluster stops its brokers and removes their directories.
    drop(cluster);
    Ok(())
}

/// The release whose server is the `fake-ksqldb` binary (and a `java -version` script),
/// the IAM jar of the artifact server; the drop-in for them.
fn fake_world(world: &Standins, state_dir: &Path) -> Result<String> {
    let fake = std::env::current_exe()?.with_file_name("fake-ksqldb");
    let server_start = std::fs::read(&fake).with_context(|| {
        format!(
            "reading the ksqlDB stand-in {} (cargo build --workspace --bins)",
            fake.display()
        )
    })?;
    let java = standins::java_script("17.0.15");
    // ksqlDB's restore tool (e2e_metastore): the same binary in its restore mode.
    let restore =
        "#!/bin/sh\nexec \"$(dirname \"$0\")/ksql-server-start\" --restore-command-topic \"$@\"\n";
    let extra: [(&str, &[u8], u32); 2] = [
        ("jre/bin/java", java.as_bytes(), 0o755),
        ("bin/ksql-restore-command-topic", restore.as_bytes(), 0o755),
    ];
    world.publish_release(KSQLDB_VERSION, &server_start, &extra);
    // A newer version beside it, for the upgrade and `ksql-msk rollback` scenario.
    world.publish_release(UPGRADE_VERSION, &server_start, &extra);
    world.publish_jar(IAM_VERSION);
    let parts = world.config(KSQLDB_VERSION, IAM_VERSION);
    Ok(format!(
        "# Written by ksql-msk-standins: the agent's whole world on 127.0.0.1.\n\
         [msk]\n{}\n[ksqldb]\n{}java_home = \"{}\"\n\n[iam_auth]\n{}",
        parts.msk,
        parts.ksqldb,
        state_dir.join("current/jre").display(),
        parts.iam_auth
    ))
}

/// One real broker as the cluster's IAM bootstrap broker, the Kafka stand-in's release
/// and the merged IAM jar on the artifact server; the drop-in for them.
fn kafka_world(world: &Standins, dir: &Path) -> Result<(KafkaCluster, String)> {
    let (cluster, sha256) =
        kafka_standin::publish_kafka_world(world, KSQLDB_VERSION, KAFKA_IAM_VERSION)
            .map_err(|e| anyhow::anyhow!("--kafka: {e}"))?;
    let truststore = dir.join("truststore.p12");
    std::fs::copy(cluster.truststore(), &truststore)
        .with_context(|| format!("copying the test CA to {}", truststore.display()))?;
    let mut properties = String::from("\"ksql.service.id\" = \"e2e_kafka_\"\n");
    for (k, v) in cluster.ssl_properties() {
        let v = if k == "ssl.truststore.location" {
            TRUSTSTORE_IN_CONTAINER.to_string()
        } else {
            v
        };
        properties.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    let parts = world.config(KSQLDB_VERSION, KAFKA_IAM_VERSION);
    let drop_in = format!(
        "# Written by ksql-msk-standins --kafka: a real broker with IAM on 127.0.0.1.\n\
         [msk]\n{}\n[ksqldb]\n{}java_home = \"{}\"\nheap = \"256m\"\n\n\
         [iam_auth]\nversion = \"{KAFKA_IAM_VERSION}\"\njar_url = \"{}{}\"\nsha256 = \"{}\"\n\n\
         [properties]\n{properties}",
        parts.msk,
        parts.ksqldb,
        kafka_standin::host_java_home()
            .map_err(anyhow::Error::msg)?
            .display(),
        world.art.server.url(),
        standins::jar_path(KAFKA_IAM_VERSION),
        sha256,
    );
    Ok((cluster, drop_in))
}

/// `kafka-stop` in DIR stops the broker, its removal starts it again; `kafka-stopped`
/// exists while it is stopped.
fn follow_kafka_stop(cluster: &mut KafkaCluster, dir: &Path) -> Result<()> {
    let want_stopped = dir.join("kafka-stop").exists();
    let running = cluster.is_running(0);
    if want_stopped && running {
        cluster.stop_broker(0);
        publish(dir, "kafka-stopped", "")?;
        println!("broker stopped");
    } else if !want_stopped && !running {
        cluster.start_broker(0);
        let _ = std::fs::remove_file(dir.join("kafka-stopped"));
        println!("broker started again");
    }
    Ok(())
}
