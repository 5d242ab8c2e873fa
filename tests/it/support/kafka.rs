//! The Kafka world of the `kafka_*` tests: a real KRaft broker (or three) that
//! authenticates and authorizes like MSK with IAM ([`KafkaCluster`], tests/kafka/README.md),
//! the fake MSK API naming its SASL/IAM bootstrap string, a fake IMDS whose instance-role
//! credentials the brokers trust, and an artifact server publishing a signed release whose
//! server is the Kafka-client-shaped ksqlDB stand-in (tests/kafka/standin) and a real
//! aws-msk-iam-auth `-all` jar built from the Maven artifacts, pinned by its SHA-256.
//! The agent installs and runs that release with a real Java: the stand-in's admin client
//! authenticates with the jar the agent placed, using the IMDS credentials.
//!
//! One Kafka world at a time per test process ([`KafkaFixture::start`] holds a lock): each
//! has several JVMs. Every JVM goes when the fixture drops (the agent stops ksqlDB, any
//! stand-in JVM left is killed, the cluster kills its brokers), also on failure.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::kafka::{self, KafkaCluster, KafkaOptions};
use ksql_msk_testkit::kafka_standin;
use ksql_msk_testkit::standins::{self, Standins};
use ksql_msk_testkit::sts::FakeSts;

use super::fixture::{free_port, Agent, Fixture, Recorder};
use super::{skip, Host, Output};

/// The ksqlDB version of the stand-in release.
pub const VERSION: &str = "0.29.0";
/// The cluster of [`KafkaOptions::default`] and the fake MSK API alike.
pub const CLUSTER: &str = "ksql-msk-test";
pub const REGION: &str = "eu-west-1";
pub const SERVICE_ID: &str = "ksql_msk_";

/// Whether the Kafka world can run here; a loud skip (or, under `KSQL_MSK_REQUIRE_KAFKA=1`,
/// a failure) when not.
pub fn available(what: &str) -> bool {
    match kafka::unavailable() {
        None => true,
        Some(why) => {
            skip(kafka::REQUIRE_SWITCH, &format!("{what}: {why}"));
            false
        }
    }
}

/// The real JDK's home: the `java` on PATH, links resolved (`<home>/bin/java`).
pub fn java_home() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let java = std::env::split_paths(&path)
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .expect("java on PATH");
    let real = std::fs::canonicalize(&java).expect("resolve java");
    real.parent()
        .and_then(Path::parent)
        .expect("<home>/bin/java")
        .to_path_buf()
}

static ONE_WORLD: Mutex<()> = Mutex::new(());

/// How a [`KafkaFixture`] is set up.
pub struct Setup {
    pub kafka: KafkaOptions,
    pub iam_version: String,
    /// Extra `[agent]` lines (each replaces the default of its key).
    pub agent: String,
    /// Extra `[properties]` lines.
    pub properties: String,
    /// Extra `[ksqldb]` lines.
    pub ksqldb: String,
    /// More artifact sets in the stand-in release's `share/java/ksqldb/`
    /// ([`kafka_standin::kafka_release_with`]).
    pub sets: Vec<&'static str>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            kafka: KafkaOptions::default(),
            iam_version: "2.4.0".into(),
            agent: String::new(),
            properties: String::new(),
            ksqldb: String::new(),
            sets: Vec::new(),
        }
    }
}

pub struct KafkaFixture {
    pub kafka: KafkaCluster,
    pub standins: Standins,
    pub imds: FakeImds,
    pub host: Host,
    /// The STS the agent's Kafka doctor asks when the brokers refuse authentication
    /// (never the real one).
    _sts: FakeSts,
    /// ksqlDB's listener port on 127.0.0.1.
    pub port: u16,
    _one: MutexGuard<'static, ()>,
}

impl KafkaFixture {
    /// The broker(s), the fakes, the release and the jar published, the config written.
    pub fn start(setup: Setup) -> KafkaFixture {
        let one = ONE_WORLD.lock().unwrap_or_else(|e| e.into_inner());
        let release =
            kafka_standin::kafka_release_with(VERSION, &setup.sets).expect("the stand-in release");
        let iam_jar =
            kafka_standin::iam_all_jar(&setup.iam_version).expect("the aws-msk-iam-auth jar");
        let kafka = KafkaCluster::start(setup.kafka);
        let standins = Standins::start(CLUSTER, REGION);
        assert_eq!(standins.cluster.arn, kafka.cluster_arn());
        standins.msk.set_brokers(
            &standins.cluster.arn,
            "bootstrapBrokerStringSaslIam",
            Some(&kafka.bootstrap()),
        );
        standins.publish_tarball(VERSION, &release);
        let v = &setup.iam_version;
        standins.art.put(&standins::jar_path(v), iam_jar.clone());
        let imds = FakeImds::start(REGION, "127.0.0.1");
        let mut host = Host::new();
        // The IAM jar's credential chain must find the instance role (IMDS), as on EC2.
        host.unset_env("AWS_ACCESS_KEY_ID")
            .unset_env("AWS_SECRET_ACCESS_KEY")
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
        let sts = FakeSts::start();
        host.env("AWS_ENDPOINT_URL_STS", &sts.url());
        let port = free_port();
        let mut parts = standins.config(VERSION, v);
        parts.iam_auth = format!(
            "version = \"{v}\"\njar_url = \"{}\"\nsha256 = \"{}\"\n",
            standins.art.server.url() + &standins::jar_path(v),
            standins::sha256_hex(&iam_jar)
        );
        parts.msk.push_str("cluster_wait = \"3s\"\n");
        let mut agent: Vec<String> = [
            format!("health_url = \"http://127.0.0.1:{port}/healthcheck\""),
            "start_timeout = \"3m\"".into(),
            "stop_timeout = \"15s\"".into(),
            "restart_backoff = \"1s\"".into(),
            "restart_backoff_max = \"10s\"".into(),
            "restart_limit = 30".into(),
            "restart_window = \"10m\"".into(),
            "rediscover_interval = \"1h\"".into(),
        ]
        .into();
        for line in setup.agent.lines().filter(|l| !l.trim().is_empty()) {
            let key = line.split('=').next().unwrap_or("").trim();
            agent.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
            agent.push(line.to_string());
        }
        let mut properties = format!("\"ksql.service.id\" = \"{SERVICE_ID}\"\n");
        for (k, v) in kafka.ssl_properties() {
            properties.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
        properties.push_str(&setup.properties);
        let ksqldb_extra = format!(
            "listeners = \"http://127.0.0.1:{port}\"\njava_home = \"{}\"\nheap = \"128m\"\n{}",
            java_home().display(),
            setup.ksqldb
        );
        host.write_config(&format!(
            "{}\n[properties]\n{properties}",
            parts.toml(&ksqldb_extra, &agent.join("\n"))
        ));
        KafkaFixture {
            kafka,
            standins,
            imds,
            host,
            _sts: sts,
            port,
            _one: one,
        }
    }

    pub fn install(&self) -> Output {
        self.host.run(&["install"])
    }

    /// Install, then `ksql-msk run` with a notify socket (`WATCHDOG_USEC` = `watchdog`).
    pub fn run(&mut self, watchdog: Duration) -> (Agent, Recorder) {
        let out = self.install();
        assert_eq!(out.code, 0, "install: {out:?}");
        let notify = Recorder::bind(self.host.dir.path().join("notify.sock"));
        self.host
            .env("NOTIFY_SOCKET", &notify.path.display().to_string())
            .env("WATCHDOG_USEC", &watchdog.as_micros().to_string());
        let agent = Fixture::spawn_agent(self.host.command(&["run"]));
        (agent, notify)
    }

    pub fn properties_path(&self) -> PathBuf {
        self.host
            .state_dir()
            .join("current/etc/ksqldb/ksql-server.properties")
    }

    /// A key of the rendered ksql-server.properties.
    pub fn property(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.properties_path()).ok()?;
        text.lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
            .next_back()
    }

    pub fn command_topic(&self) -> String {
        format!("_confluent-ksql-{SERVICE_ID}_command_topic")
    }

    pub fn processing_log_topic(&self) -> String {
        format!("{SERVICE_ID}ksql_processing_log")
    }

    /// `GET /healthcheck` (40 s bound: ksqlDB's Kafka check may take 30 s): status and body.
    pub fn health(&self) -> Option<(u16, String)> {
        http(
            "GET",
            self.port,
            "/healthcheck",
            None,
            Duration::from_secs(40),
        )
    }

    /// `POST /ksql` with `statement`: status and body.
    pub fn ksql(&self, statement: &str) -> Option<(u16, String)> {
        let body = serde_json::json!({"ksql": statement, "streamsProperties": {}}).to_string();
        http(
            "POST",
            self.port,
            "/ksql",
            Some(&body),
            Duration::from_secs(60),
        )
    }

    /// Pids of the stand-in server JVMs of this host's releases.
    pub fn standin_pids(&self) -> Vec<i32> {
        let needle = self.host.state_dir().display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("ksqlmsk.standin.Server") && cmd.contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Wait up to `limit` for a healthy answer; how long it took.
    pub fn wait_healthy(&self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            match self.health() {
                Some((200, body)) if body.contains("\"isHealthy\":true") => {
                    return Ok(start.elapsed())
                }
                Some((s, body)) => last = format!("{s} {body}"),
                None => last = "no answer".into(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(format!("not healthy within {limit:?}; last: {last}"))
    }
}

impl Drop for KafkaFixture {
    fn drop(&mut self) {
        // The agent (dropped first by the test) stops ksqlDB; a JVM it left is killed.
        for pid in self.standin_pids() {
            // SAFETY: kill(2) on a stand-in JVM this fixture's agent started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, bounded by `limit`.
pub fn http(
    method: &str,
    port: u16,
    path: &str,
    body: Option<&str>,
    limit: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.ksql.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}
