//! `ksql-msk-standins DIR [STATE_DIR]`: the stand-ins of the systemd end-to-end test
//! (tests/systemd/run, e2e_run) on 127.0.0.1 until SIGTERM.
//!
//! Serves a fake MSK API with one ACTIVE cluster, a fake IMDSv2 (region; local-ipv4
//! 127.0.0.1, the advertised listener) and an artifact server publishing a signed
//! ksqlDB-shaped release whose `bin/ksql-server-start` is the `fake-ksqldb` binary built
//! beside this one, with a `jre/bin/java` script that answers `java -version` (the test
//! container has no Java). Once all listen, writes into DIR:
//!   sysconfig         environment for /etc/sysconfig/ksql-msk (IMDS endpoint and
//!                     static test credentials)
//!   50-standins.toml  a config drop-in pointing the agent at the stand-ins, pins included
//!   ready             empty, last
//! While a file `msk-deny` exists in DIR, every MSK operation is denied (403
//! AccessDeniedException), as before an operator attaches the instance role's policy;
//! each denied call is logged on stderr (`fake MSK: denied OPERATION at UNIX_TIME`).
//! STATE_DIR (default /var/lib/ksql-msk) is where the agent installs, so the drop-in's
//! `ksqldb.java_home` can name the script inside the release it will install.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::standins::{self, Standins};

const REGION: &str = "eu-west-1";
const KSQLDB_VERSION: &str = "0.29.0";
/// Published too: what the e2e upgrades to before `ksql-msk rollback`.
const UPGRADE_VERSION: &str = "0.29.1";
const IAM_VERSION: &str = "2.3.0";

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
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: ksql-msk-standins DIR [STATE_DIR]")?,
    );
    let state_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/ksql-msk"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let fake = std::env::current_exe()?.with_file_name("fake-ksqldb");
    let server_start = std::fs::read(&fake).with_context(|| {
        format!(
            "reading the ksqlDB stand-in {} (cargo build --workspace --bins)",
            fake.display()
        )
    })?;
    let world = Standins::start("e2e", REGION);
    world.msk.deny_while_exists(dir.join("msk-deny"));
    let java = standins::java_script("17.0.15");
    world.publish_release(
        KSQLDB_VERSION,
        &server_start,
        &[("jre/bin/java", java.as_bytes(), 0o755)],
    );
    // A newer version beside it, for the upgrade and `ksql-msk rollback` scenario.
    world.publish_release(
        UPGRADE_VERSION,
        &server_start,
        &[("jre/bin/java", java.as_bytes(), 0o755)],
    );
    world.publish_jar(IAM_VERSION);
    let imds = FakeImds::start(REGION, "127.0.0.1");

    publish(
        &dir,
        "sysconfig",
        &format!(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT={}\n\
             AWS_ACCESS_KEY_ID=AKIASTANDINEXAMPLE00\n\
             AWS_SECRET_ACCESS_KEY=standin/secret/key/not/a/real/one/0000000\n",
            imds.url()
        ),
    )?;
    let parts = world.config(KSQLDB_VERSION, IAM_VERSION);
    publish(
        &dir,
        "50-standins.toml",
        &format!(
            "# Written by ksql-msk-standins: the agent's whole world on 127.0.0.1.\n\
             [msk]\n{}\n[ksqldb]\n{}java_home = \"{}\"\n\n[iam_auth]\n{}",
            parts.msk,
            parts.ksqldb,
            state_dir.join("current/jre").display(),
            parts.iam_auth
        ),
    )?;
    publish(&dir, "ready", "")?;
    println!(
        "stand-ins ready: MSK {} artifacts {} IMDS {} (files in {})",
        world.msk.url(),
        world.art.server.url(),
        imds.url(),
        dir.display()
    );
    // SIGTERM's default action ends the process, and the servers with it.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
