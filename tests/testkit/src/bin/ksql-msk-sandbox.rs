//! The sandbox: the agent's job end to end on this machine against local stand-ins
//! (fake MSK API, IMDSv2, artifact server with a signed ksqlDB-shaped release whose
//! server is `fake-ksqldb`), in a temporary directory: discovery, the IAM policy,
//! install (dry run, real, again: idempotent), the patched properties, then `run`
//! until Ctrl-C (with `--once`: until ksqlDB is healthy, then a clean stop).
//! With `--kafka` the brokers are a real Apache Kafka that authenticates like MSK with IAM
//! (tests/kafka/README.md), the release's server is the Kafka-client-shaped ksqlDB
//! stand-in (tests/kafka/standin, a real JVM with the agent's aws-msk-iam-auth jar), and
//! the run ends with `ksql-msk ksql -e "SHOW TOPICS;"` listing the broker's topics.
//! Run it with `tests/sandbox`, which builds everything first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::kafka_standin;
use ksql_msk_testkit::msk::Cluster;
use ksql_msk_testkit::standins::{self, Standins};

const REGION: &str = "eu-west-1";
const KSQLDB_VERSION: &str = "0.29.0";
const IAM_VERSION: &str = "2.3.0";
/// With `--kafka`: the newest aws-msk-iam-auth of the Maven sets.
const KAFKA_IAM_VERSION: &str = "2.4.0";

fn main() {
    if let Err(e) = sandbox() {
        eprintln!("sandbox: {e:#}");
        std::process::exit(1);
    }
}

/// The agent binary: beside this one in target/<profile>/.
fn agent_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let agent = me.with_file_name("ksql-msk");
    anyhow::ensure!(
        agent.exists(),
        "{} not found: run `cargo build --workspace --bins` first",
        agent.display()
    );
    Ok(agent)
}

fn banner(text: &str) {
    println!("\n==> {text}");
}

/// The sandbox's own (empty) AWS profile files, next to its config.
const AWS_CONFIG: &str = "aws-config";
const AWS_CREDENTIALS: &str = "aws-credentials";

struct Agent {
    bin: PathBuf,
    config: PathBuf,
    imds: String,
    /// With --kafka: the fake STS and the test CA (`SSL_CERT_FILE`) for check's Kafka lines.
    extra_env: Vec<(String, String)>,
}

impl Agent {
    /// The agent as a host would run it, with credentials and region from the fake IMDS.
    fn command(&self, args: &[&str]) -> Command {
        println!("$ ksql-msk {}", args.join(" "));
        let home = self.config.parent().unwrap_or(Path::new("/"));
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("KSQL_MSK_CONFIG", &self.config)
            .env("KSQL_MSK_LOG_FORMAT", "stderr")
            .env("AWS_CONFIG_FILE", home.join(AWS_CONFIG))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join(AWS_CREDENTIALS))
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.imds)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let out = self.command(args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            println!("  [log] {line}");
        }
        print!("{stdout}");
        let code = out.status.code().unwrap_or(-1);
        println!("  (exit {code})");
        Ok((code, stdout))
    }
}

/// `SHOW TOPICS;` as `POST /ksql` to ksqlDB at `url` (host:port), the way its CLI sends it.
fn show_topics_over_rest(url: &str) -> anyhow::Result<(i32, String)> {
    println!(
        "$ curl -X POST http://{url}/ksql -d '{{\"ksql\":\"SHOW TOPICS;\"}}'   (ksql refuses root)"
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-X", "POST"])
        .args(["-H", "Content-Type: application/vnd.ksql.v1+json"])
        .args(["-d", r#"{"ksql":"SHOW TOPICS;","streamsProperties":{}}"#])
        .arg(format!("http://{url}/ksql"))
        .output()
        .context("running curl")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    let code = out.status.code().unwrap_or(-1);
    println!("  (exit {code})");
    Ok((code, stdout))
}

fn sandbox() -> anyhow::Result<()> {
    let serve = !std::env::args().any(|a| a == "--once");
    let with_kafka = std::env::args().any(|a| a == "--kafka");
    let bin = agent_binary()?;
    let dir = tempfile_dir()?;
    banner("starting stand-ins on loopback");
    let world = Standins::start("sandbox", REGION);
    world.msk.add(Cluster::active("sandbox-2", REGION));
    let mut kafka = None;
    let iam_version = if with_kafka {
        let (cluster, sha256) =
            kafka_standin::publish_kafka_world(&world, KSQLDB_VERSION, KAFKA_IAM_VERSION)
                .map_err(|e| anyhow::anyhow!("--kafka: {e}"))?;
        println!(
            "  Apache Kafka     {} (KRaft, SASL_SSL with AWS_MSK_IAM, test CA)",
            cluster.bootstrap()
        );
        kafka = Some((cluster, sha256));
        KAFKA_IAM_VERSION
    } else {
        let fake = bin.with_file_name("fake-ksqldb");
        let server_start = std::fs::read(&fake).with_context(|| {
            format!(
                "{}: run `cargo build --workspace --bins` first",
                fake.display()
            )
        })?;
        world.publish_release(KSQLDB_VERSION, &server_start, &[]);
        world.publish_jar(IAM_VERSION);
        IAM_VERSION
    };
    let imds = FakeImds::start(REGION, "10.0.42.7");
    println!("  fake MSK API     {}", world.msk.url());
    println!("  fake IMDSv2      {}", imds.url());
    println!(
        "  artifact server  {} (confluent-ksqldb-{KSQLDB_VERSION}.tar.gz signed by {}, aws-msk-iam-auth {iam_version})",
        world.art.server.url(),
        world.key.fingerprint()
    );

    let jdk = if with_kafka {
        kafka_standin::host_java_home().map_err(|e| anyhow::anyhow!("--kafka needs a JDK: {e}"))?
    } else {
        let jdk = dir.join("jdk");
        std::fs::create_dir_all(jdk.join("bin"))?;
        std::fs::write(jdk.join("bin/java"), standins::java_script("17.0.15"))?;
        std::fs::set_permissions(jdk.join("bin/java"), std::fs::Permissions::from_mode(0o755))?;
        jdk
    };
    let port = free_port()?;
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let config = etc.join("ksql-msk.toml");
    let mut parts = world.config(KSQLDB_VERSION, iam_version);
    // --kafka: the jar built from the Maven artifacts, pinned; the test CA's truststore;
    // a small heap for the stand-in's JVM.
    let mut extra_properties = String::new();
    let mut heap = String::new();
    if let Some((cluster, sha256)) = &kafka {
        parts.iam_auth = format!(
            "version = \"{iam_version}\"\njar_url = \"{}{}\"\nsha256 = \"{sha256}\"\n",
            world.art.server.url(),
            standins::jar_path(iam_version)
        );
        for (k, v) in cluster.ssl_properties() {
            extra_properties.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
        heap = "heap = \"256m\"\n".into();
        // RocksDB bounded as the RPM does it: the setter built from packaging/, which the
        // stand-in (with Kafka Streams in its release) configures as ksqlDB does.
        let built = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/rocksdb-setter/build"),
        )
        .arg(dir.join("rocksdb-setter"))
        .stderr(Stdio::inherit())
        .output()
        .context("running packaging/rocksdb-setter/build")?;
        anyhow::ensure!(
            built.status.success(),
            "packaging/rocksdb-setter/build failed ({})",
            built.status
        );
        let jar = String::from_utf8_lossy(&built.stdout).trim().to_string();
        heap.push_str(&format!("rocksdb_setter_jar = \"{jar}\"\n"));
        println!("  RocksDB setter   {jar} (packaging/rocksdb-setter)");
    }
    // By name, as most operators start: the ARN is found with ListClustersV2.
    let msk = parts
        .msk
        .lines()
        .filter(|l| !l.starts_with("cluster_arn") && !l.starts_with("region"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        &config,
        format!(
            "[msk]\ncluster_name = \"sandbox\"\n{msk}\n\n[ksqldb]\n{}listeners = \"http://127.0.0.1:{port}\"\njava_home = \"{}\"\n{heap}\n\
             [iam_auth]\n{}\n[properties]\n\"ksql.service.id\" = \"sandbox_\"\n{extra_properties}\n\
             [agent]\nstate_dir = \"{}\"\nhealth_url = \"http://127.0.0.1:{port}/healthcheck\"\n",
            parts.ksqldb,
            jdk.display(),
            parts.iam_auth,
            dir.join("state").display()
        ),
    )?;
    // Empty profile files, named on purpose: the host's ~/.aws stays out of the sandbox,
    // and the SDK does not warn (as it rightly does for a named file that is missing).
    std::fs::write(etc.join(AWS_CONFIG), "")?;
    std::fs::write(etc.join(AWS_CREDENTIALS), "")?;
    banner(&format!("config {}", config.display()));
    print!("{}", std::fs::read_to_string(&config)?);

    // check asks STS who the credentials are: a fake one on loopback; the brokers'
    // certificates come from the test CA.
    let sts = ksql_msk_testkit::sts::FakeSts::start();
    let mut extra_env = vec![("AWS_ENDPOINT_URL_STS".to_string(), sts.url())];
    if let Some((cluster, _)) = &kafka {
        extra_env.push((
            "SSL_CERT_FILE".into(),
            cluster.ca_pem().display().to_string(),
        ));
    }
    let agent = Agent {
        bin,
        config,
        imds: imds.url(),
        extra_env,
    };
    banner("phase 1-2: discover the IAM bootstrap brokers (name lookup, region and credentials from IMDS)");
    let (code, brokers) = agent.run(&["brokers"])?;
    anyhow::ensure!(code == 0, "brokers failed");
    let expected = match &kafka {
        Some((cluster, _)) => Some(cluster.bootstrap()),
        None => world
            .cluster
            .brokers_field("bootstrapBrokerStringSaslIam")
            .map(str::to_string),
    };
    anyhow::ensure!(
        Some(brokers.trim()) == expected.as_deref(),
        "unexpected broker string"
    );
    for connectivity in ["public", "vpc"] {
        agent.run(&["config", "set", "msk.connectivity", connectivity])?;
        agent.run(&["brokers"])?;
    }
    agent.run(&["config", "set", "msk.connectivity", "private"])?;

    banner("the IAM policy the instance role needs");
    agent.run(&["iam-policy"])?;

    banner("phase 3-5 planned: install --dry-run");
    agent.run(&["install", "--dry-run"])?;
    banner(
        "phase 3-5: download, verify the signature, unpack, add the IAM jar, patch the properties",
    );
    let (code, _) = agent.run(&["install"])?;
    anyhow::ensure!(code == 0, "install failed");
    let release = dir.join("state/current");
    let props = std::fs::read_to_string(release.join("etc/ksqldb/ksql-server.properties"))?;
    banner("etc/ksqldb/ksql-server.properties: keys set in place, then the managed block");
    for line in props.lines() {
        if line.starts_with("bootstrap.servers") || line.starts_with("listeners") {
            println!("{line}");
        }
    }
    if let Some(i) = props.find("# --- managed by ksql-msk") {
        print!("{}", &props[i..]);
    }
    banner("share/java/ksqldb/aws-msk-iam-auth*");
    for entry in std::fs::read_dir(release.join("share/java/ksqldb"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("aws-msk-iam-auth") {
            println!("  {name}");
        }
    }
    banner("install again: nothing to download, nothing to write");
    let (code, _) = agent.run(&["install"])?;
    anyhow::ensure!(code == 0, "second install failed");

    // Only with a real broker: the stand-ins' broker names are MSK-shaped and would be
    // looked up in DNS.
    if kafka.is_some() {
        banner("preflight: check (the Kafka doctor asks the real broker)");
        let check_started = Instant::now();
        let (code, _) = agent.run(&["check"])?;
        println!("  (check took {} ms)", check_started.elapsed().as_millis());
        anyhow::ensure!(code == 0, "check failed against the real broker");
    }

    banner("phase 6: run (supervise ksqlDB; READY once /healthcheck answers)");
    let mut child = agent
        .command(&["run"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()?;
    let url = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let body = loop {
        if let Some(body) = healthcheck(&url) {
            if body.contains("\"isHealthy\":true") {
                break body;
            }
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("ksql-msk run exited early: {status}");
        }
        // A real JVM that authenticates to a real broker takes longer than the fake.
        let limit = Duration::from_secs(if with_kafka { 180 } else { 60 });
        anyhow::ensure!(
            started.elapsed() < limit,
            "ksqlDB not healthy after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("  GET http://{url}/healthcheck -> {body}");
    // What an operator sees: `status` reads the state file the agent writes in the
    // background; wait (briefly) until it has recorded the healthy ksqlDB.
    let state_file = dir.join("state/status.json");
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(5)
        && !std::fs::read_to_string(&state_file).is_ok_and(|t| t.contains("\"healthy\""))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    banner("what the agent reports");
    agent.run(&["status"])?;
    if let Some((cluster, _)) = &kafka {
        banner("a topic made with Kafka's own admin client, then SHOW TOPICS; through ksql");
        let out = cluster.admin(&["create-topic", "pageviews", "1", "1"]);
        anyhow::ensure!(out.code == 0, "creating the topic pageviews: {out:?}");
        println!(
            "  created pageviews (1 partition, RF 1) on {}",
            cluster.internal_bootstrap()
        );
        // A new topic reaches the broker's metadata cache a moment later.
        let asked = Instant::now();
        loop {
            // `ksql` refuses root (the release's CLI is the service user's: issue 21);
            // as root the same statement goes to ksqlDB's REST API, as the CLI sends it.
            let (code, stdout) = if std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
                .unwrap_or(false)
            {
                show_topics_over_rest(&url)?
            } else {
                agent.run(&["ksql", "-e", "SHOW TOPICS;"])?
            };
            anyhow::ensure!(code == 0, "SHOW TOPICS; failed");
            if stdout.contains("pageviews") {
                break;
            }
            anyhow::ensure!(
                asked.elapsed() < Duration::from_secs(30),
                "SHOW TOPICS; does not list pageviews"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    if serve {
        let release = dir.join("state/current");
        println!(
            "\n  ksqlDB stand-in supervised by `ksql-msk run` until Ctrl-C. Query it:\n\
             \n    curl -s http://{url}/healthcheck\n    curl -s http://{url}/info\n\
             \n    cat {}\n    ls {}\n\
             \n    KSQL_MSK_CONFIG={} AWS_EC2_METADATA_SERVICE_ENDPOINT={} {} brokers\n",
            release.join("etc/ksqldb/ksql-server.properties").display(),
            release.join("share/java/ksqldb").display(),
            agent.config.display(),
            agent.imds,
            agent.bin.display(),
        );
        // Ctrl-C reaches the agent too (same process group) and stops it cleanly; this
        // process waits for that, then cleans up. Set after the spawn: SIG_IGN would be
        // inherited.
        // SAFETY: signal(2) with SIG_IGN, no handler.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    } else {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let status = child.wait()?;
    println!("  ksql-msk run: {status}");

    banner("what the fake MSK API was asked");
    for req in world.msk.server.requests() {
        println!("  {} {}", req.method, req.target);
    }
    banner("what the artifact server served");
    for req in world.art.server.requests() {
        println!("  {} {}", req.method, req.target);
    }
    banner("done; stand-ins stopped, scratch dir removed");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The body of `GET /healthcheck`, or None while nothing answers.
fn healthcheck(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /healthcheck HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ksql-msk-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
