//! A real Apache Kafka (KRaft, combined broker and controller) of 1 or 3 brokers that
//! authenticates and authorizes like MSK with IAM access control: the test-only plugins
//! of tests/kafka/java/broker verify the real aws-msk-iam-auth client's SigV4 payload
//! against the credentials the test trusts (the fake IMDS's, [`crate::imds`]) and map
//! every Kafka operation to its `kafka-cluster:*` action, decided by an IAM-shaped policy
//! file that the brokers re-read when it changes. tests/kafka/README.md documents it.
//!
//! Jars come from the pinned Maven sets that `tests/setup-host` (tests/kafka/fetch)
//! verified into the cache: nothing is fetched here. [`unavailable`] says why the Kafka
//! world cannot run on this machine (tests skip, or fail under
//! `KSQL_MSK_REQUIRE_KAFKA=1`).
//!
//! Every JVM is killed and every directory removed when the [`KafkaCluster`] drops (also
//! while a failed test unwinds); a broker whose test process died (SIGKILL) removes the
//! cluster's directory and halts by itself within a second (BrokerMain watches the parent
//! pid). Every wait is bounded.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::hostile::TestCa;
use crate::imds;

/// The Kafka version of the broker and client sets (tests/kafka/maven/).
pub const KAFKA_VERSION: &str = "3.9.2";
/// Artifact sets: tests/kafka/maven/<set>/pom.xml, pinned by <set>.sha256.
pub const BROKER_SET: &str = "broker";
pub const CLIENTS_SET: &str = "clients";
pub const JMX_EXPORTER_SET: &str = "jmx-exporter";
/// Kafka Streams with RocksDB: packaging/rocksdb-setter's compile classpath and its test.
pub const STREAMS_SET: &str = "streams";
/// The aws-msk-iam-auth versions, each a set `iam-<version>` (the jar and its deps).
pub const IAM_VERSIONS: [&str; 2] = ["1.1.1", "2.4.0"];
/// Every artifact set.
pub const SETS: [&str; 6] = [
    BROKER_SET,
    CLIENTS_SET,
    "iam-1.1.1",
    "iam-2.4.0",
    JMX_EXPORTER_SET,
    STREAMS_SET,
];
/// The switch that turns a skip for want of the Kafka world into a failure.
pub const REQUIRE_SWITCH: &str = "KSQL_MSK_REQUIRE_KAFKA";

/// Every `kafka-cluster:*` action of AWS's MSK documentation ("Semantics of IAM
/// authorization policy actions and resources").
pub const ACTIONS: [&str; 19] = [
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeCluster",
    "kafka-cluster:AlterCluster",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
    "kafka-cluster:AlterClusterDynamicConfiguration",
    "kafka-cluster:WriteDataIdempotently",
    "kafka-cluster:CreateTopic",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:AlterTopic",
    "kafka-cluster:DeleteTopic",
    "kafka-cluster:DescribeTopicDynamicConfiguration",
    "kafka-cluster:AlterTopicDynamicConfiguration",
    "kafka-cluster:ReadData",
    "kafka-cluster:WriteData",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DeleteGroup",
    "kafka-cluster:DescribeTransactionalId",
    "kafka-cluster:AlterTransactionalId",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The verified Maven cache: `$KSQL_MSK_MAVEN_CACHE`, else /var/cache/ksql-msk-test/maven.
pub fn maven_cache() -> PathBuf {
    std::env::var_os("KSQL_MSK_MAVEN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ksql-msk-test/maven"))
}

/// The classpath file tests/kafka/fetch wrote for a set.
pub fn classpath_file(set: &str) -> PathBuf {
    maven_cache().join("classpath").join(format!("{set}.txt"))
}

/// The verified jars of a set, in classpath order.
pub fn jars(set: &str) -> Vec<PathBuf> {
    let file = classpath_file(set);
    let text = fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tests/setup-host, which runs tests/kafka/fetch)",
            file.display()
        )
    });
    text.trim()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The `-cp` value of a set.
pub fn classpath(set: &str) -> String {
    join_paths(&jars(set))
}

/// The jars of `iam-<version>` (aws-msk-iam-auth first, then its dependencies). The
/// shaded `-all` jar of a GitHub release is not on Maven Central: these are its parts.
pub fn iam_jars(version: &str) -> Vec<PathBuf> {
    jars(&format!("iam-{version}"))
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Why the Kafka world cannot run here (no java/javac/openssl/keytool, or an artifact set
/// missing from the cache), or None.
pub fn unavailable() -> Option<String> {
    for tool in ["java", "javac", "keytool"] {
        if !have(tool) {
            return Some(format!("the Kafka tests need {tool} on PATH"));
        }
    }
    if Command::new("openssl").arg("version").output().is_err() {
        return Some("the Kafka tests need openssl on PATH".into());
    }
    for set in SETS {
        let file = classpath_file(set);
        let Ok(text) = fs::read_to_string(&file) else {
            return Some(format!(
                "the Kafka artifact set '{set}' is not in the cache ({} missing; tests/setup-host fetches it)",
                file.display()
            ));
        };
        if let Some(jar) = text
            .trim()
            .split(':')
            .find(|j| !j.is_empty() && !Path::new(j).is_file())
        {
            return Some(format!(
                "the Kafka artifact set '{set}' names {jar}, which is missing (run tests/setup-host)"
            ));
        }
    }
    None
}

/// The test-only Java code, compiled once per source version into
/// `target/kafka-java/<hash>/`: `broker` (the broker plugins, against the broker set) and
/// `tools` (KafkaTool, against kafka-clients).
pub struct JavaClasses {
    pub broker: PathBuf,
    pub tools: PathBuf,
}

fn java_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            java_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Compile (once per process, and only when the sources changed) and return the classes.
pub fn java_classes() -> &'static JavaClasses {
    static CLASSES: OnceLock<JavaClasses> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let java = repo_root().join("tests/kafka/java");
        let mut broker_src = Vec::new();
        let mut tools_src = Vec::new();
        java_sources(&java.join("broker"), &mut broker_src);
        java_sources(&java.join("tools"), &mut tools_src);
        let mut h = DefaultHasher::new();
        for p in broker_src.iter().chain(&tools_src) {
            p.strip_prefix(&java).expect("under java").hash(&mut h);
            fs::read(p).expect("java source").hash(&mut h);
        }
        classpath(BROKER_SET).hash(&mut h);
        classpath(CLIENTS_SET).hash(&mut h);
        let base = target_dir().join("kafka-java");
        let dir = base.join(format!("{:016x}", h.finish()));
        if !dir.join("done").exists() {
            fs::create_dir_all(&base).expect("target/kafka-java");
            let tmp = tempfile::Builder::new()
                .prefix(".build-")
                .tempdir_in(&base)
                .expect("build dir");
            for (what, srcs, cp) in [
                ("broker", &broker_src, classpath(BROKER_SET)),
                ("tools", &tools_src, classpath(CLIENTS_SET)),
            ] {
                let out = Command::new("javac")
                    .args(["-nowarn", "-encoding", "UTF-8", "-d"])
                    .arg(tmp.path().join(what))
                    .arg("-cp")
                    .arg(cp)
                    .args(srcs.iter())
                    .output()
                    .expect("run javac");
                assert!(
                    out.status.success(),
                    "javac of tests/kafka/java/{what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            fs::write(tmp.path().join("done"), "").expect("done marker");
            let tmp = tmp.keep();
            // Another test process may have won the race: its classes are the same.
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        JavaClasses {
            broker: dir.join("broker"),
            tools: dir.join("tools"),
        }
    })
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// 1 or 3.
    pub brokers: usize,
    /// The MSK cluster ARN the policy's resources are derived from
    /// (`arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`); its region is the one a
    /// client's credential scope must name.
    pub cluster_arn: String,
    /// The host the SASL_SSL listeners advertise, and so the host the client signs (the
    /// SigV4 `host`): the broker refuses a payload signed for another host. It must
    /// resolve to 127.0.0.1 and be in the test certificate (localhost is).
    pub advertised_host: String,
    /// Each broker's `-Xmx`.
    pub heap: String,
    /// `connections.max.reauth.ms` (KIP-368); None: Kafka's default (no re-authentication).
    pub reauth_ms: Option<u64>,
    /// More server.properties lines, last wins.
    pub extra_properties: Vec<(String, String)>,
}

impl Default for KafkaOptions {
    fn default() -> KafkaOptions {
        KafkaOptions {
            brokers: 1,
            // The fake MSK API's cluster (crate::msk::Cluster::active("ksql-msk-test", "eu-west-1")).
            cluster_arn: "arn:aws:kafka:eu-west-1:123456789012:cluster/ksql-msk-test/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2".into(),
            advertised_host: "localhost".into(),
            heap: "256m".into(),
            reauth_ms: None,
            extra_properties: Vec::new(),
        }
    }
}

impl KafkaOptions {
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n;
        self
    }

    /// The region of the cluster ARN.
    pub fn region(&self) -> &str {
        self.cluster_arn.split(':').nth(3).unwrap_or("")
    }
}

struct Node {
    id: usize,
    sasl_port: u16,
    internal_port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }
}

/// The output of one run of KafkaTool.
#[derive(Debug)]
pub struct ToolOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// The tool's one `KafkaTool ERROR <class>: <message>` line, if it failed.
    pub fn error_line(&self) -> Option<&str> {
        self.stderr
            .lines()
            .find(|l| l.starts_with("KafkaTool ERROR "))
    }
}

/// A running cluster; dropping it kills every broker and removes its directories.
pub struct KafkaCluster {
    pub options: KafkaOptions,
    dir: tempfile::TempDir,
    cluster_id: String,
    nodes: Vec<Node>,
    ca: TestCa,
    truststore: PathBuf,
}

pub const TRUSTSTORE_PASSWORD: &str = "ksql-msk-test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Write `bytes` to `path` atomically (temp in the same directory, then rename), so a
/// broker never reads half a policy or credentials file.
fn write_atomic(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp file");
    tmp.write_all(bytes).expect("write temp");
    tmp.as_file().sync_all().expect("fsync");
    tmp.persist(path).expect("rename into place");
}

/// Wait for `cond`, polling every 100 ms, at most `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return String::new();
    }
    let mut s = Vec::new();
    let _ = f.read_to_end(&mut s);
    String::from_utf8_lossy(&s).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run `cmd` with a bound; killed (its whole process group) when it takes longer.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> ToolOutput {
    let dir = tempfile::tempdir().expect("tool output dir");
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn java");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) on the process group this child leads.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let mut stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let code = match status {
        Some(s) => s.code().unwrap_or(-1),
        None => {
            stderr.push_str(&format!("\n(killed after {limit:?})\n"));
            -1
        }
    };
    ToolOutput {
        code,
        stdout,
        stderr,
    }
}

impl KafkaCluster {
    /// Start a cluster and wait (bounded) until every broker serves. Panics with the
    /// broker log's tail when one does not come up.
    pub fn start(options: KafkaOptions) -> KafkaCluster {
        assert!(
            options.brokers == 1 || options.brokers == 3,
            "1 or 3 brokers"
        );
        // Compile the plugins before anything else can fail for want of them.
        java_classes();
        let dir = tempfile::Builder::new()
            .prefix("ksql-msk-kafka-")
            .tempdir()
            .expect("cluster dir");
        let ca = TestCa::generate(&dir.path().join("ca"));
        // The broker's PEM keystore: PKCS#8 key, then the certificate.
        let mut keystore = fs::read(&ca.key_pem).expect("key");
        keystore.extend(fs::read(&ca.cert_pem).expect("cert"));
        fs::write(dir.path().join("ca/keystore.pem"), keystore).expect("keystore");
        let truststore = dir.path().join("ca/truststore.p12");
        let out = Command::new("keytool")
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "ksql-msk-test-ca",
                "-file",
            ])
            .arg(&ca.ca_pem)
            .arg("-keystore")
            .arg(&truststore)
            .args(["-storetype", "PKCS12", "-storepass", TRUSTSTORE_PASSWORD])
            .output()
            .expect("run keytool");
        assert!(
            out.status.success(),
            "keytool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A KRaft cluster id: 16 random bytes, base64url without padding (Uuid.toString).
        // Like Kafka's Uuid.randomUuid, never one starting with '-': the storage tool's
        // argument parser would take it for an option (1 start in 64 failed so).
        let cluster_id = loop {
            let mut id = [0u8; 16];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut id))
                .expect("random");
            let id = base64url(&id);
            if !id.starts_with('-') {
                break id;
            }
        };
        let nodes = (1..=options.brokers)
            .map(|id| {
                let node_dir = dir.path().join(format!("broker-{id}"));
                fs::create_dir_all(node_dir.join("data")).expect("node dir");
                Node {
                    id,
                    sasl_port: free_port(),
                    internal_port: free_port(),
                    controller_port: free_port(),
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        let mut cluster = KafkaCluster {
            options,
            dir,
            cluster_id,
            nodes,
            ca,
            truststore,
        };
        cluster.trust_credentials(&[imds::Credentials::default()]);
        cluster.set_policy(&cluster.allow_all_policy());
        fs::write(
            cluster.dir.path().join("log4j.properties"),
            "log4j.rootLogger=INFO, stdout\n\
             log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
             log4j.logger.org.apache.kafka.clients=WARN\n",
        )
        .expect("log4j.properties");
        for i in 0..cluster.nodes.len() {
            cluster.write_properties(i);
        }
        let offsets: Vec<u64> = (0..cluster.nodes.len()).map(|i| cluster.spawn(i)).collect();
        for (i, offset) in offsets.into_iter().enumerate() {
            cluster.wait_started(i, offset);
        }
        cluster
    }

    fn write_properties(&self, i: usize) {
        let n = self.nodes.len();
        let node = &self.nodes[i];
        let voters = self
            .nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let ca_dir = self.dir.path().join("ca");
        let o = &self.options;
        let jaas = format!(
            "ksqlmsk.kafka.IamLoginModule required host=\"{}\" region=\"{}\" clusterArn=\"{}\" credentialsFile=\"{}\" policyFile=\"{}\";",
            o.advertised_host,
            o.region(),
            o.cluster_arn,
            self.credentials_path().display(),
            self.policy_path().display()
        );
        let mut props: Vec<(String, String)> = vec![
            ("process.roles", "broker,controller".to_string()),
            ("node.id", node.id.to_string()),
            ("controller.quorum.voters", voters),
            (
                "listeners",
                format!(
                    "SASL_SSL://127.0.0.1:{},INTERNAL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    node.sasl_port, node.internal_port, node.controller_port
                ),
            ),
            (
                "advertised.listeners",
                format!(
                    "SASL_SSL://{}:{},INTERNAL://127.0.0.1:{}",
                    o.advertised_host, node.sasl_port, node.internal_port
                ),
            ),
            (
                "listener.security.protocol.map",
                "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            ("inter.broker.listener.name", "INTERNAL".into()),
            ("controller.listener.names", "CONTROLLER".into()),
            ("log.dirs", node.dir.join("data").display().to_string()),
            ("sasl.enabled.mechanisms", "AWS_MSK_IAM".into()),
            ("listener.name.sasl_ssl.aws_msk_iam.sasl.jaas.config", jaas),
            (
                "listener.name.sasl_ssl.aws_msk_iam.sasl.server.callback.handler.class",
                "ksqlmsk.kafka.IamServerCallbackHandler".into(),
            ),
            ("ssl.keystore.type", "PEM".into()),
            (
                "ssl.keystore.location",
                ca_dir.join("keystore.pem").display().to_string(),
            ),
            (
                "authorizer.class.name",
                "ksqlmsk.kafka.MskIamAuthorizer".into(),
            ),
            (
                "msk.iam.policy.file",
                self.policy_path().display().to_string(),
            ),
            ("msk.iam.cluster.arn", o.cluster_arn.clone()),
            // The PLAINTEXT inter-broker and controller listeners (loopback only).
            ("super.users", "User:ANONYMOUS".into()),
            // MSK's defaults (a 3-AZ cluster: RF 3, min ISR 2), within the broker count.
            ("default.replication.factor", n.min(3).to_string()),
            ("min.insync.replicas", n.min(2).to_string()),
            ("auto.create.topics.enable", "false".into()),
            ("offsets.topic.replication.factor", n.min(3).to_string()),
            ("offsets.topic.num.partitions", "5".into()),
            (
                "transaction.state.log.replication.factor",
                n.min(3).to_string(),
            ),
            ("transaction.state.log.min.isr", n.min(2).to_string()),
            ("transaction.state.log.num.partitions", "5".into()),
            ("num.partitions", "1".into()),
            ("group.initial.rebalance.delay.ms", "0".into()),
            ("log.segment.bytes", (8 * 1024 * 1024).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(ms) = o.reauth_ms {
            props.push(("connections.max.reauth.ms".into(), ms.to_string()));
        }
        props.extend(o.extra_properties.iter().cloned());
        let text: String = props
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
            .collect();
        fs::write(node.dir.join("server.properties"), text).expect("server.properties");
    }

    /// Start broker `i`'s JVM; the log offset its start begins at.
    fn spawn(&mut self, i: usize) -> u64 {
        let classes = java_classes();
        let log4j = self.dir.path().join("log4j.properties");
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "broker {} already runs", node.id);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log())
            .expect("broker log");
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new("java")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .arg(format!("-Xmx{}", self.options.heap))
            .args([
                "-Xms64m",
                "-XX:+UseSerialGC",
                "-XX:MaxMetaspaceSize=128m",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
            ])
            .arg(format!("-Dlog4j.configuration=file:{}", log4j.display()))
            .arg(format!("-Dksqlmsk.parent.pid={}", std::process::id()))
            .arg(format!(
                "-Dksqlmsk.cleanup.dir={}",
                self.dir.path().display()
            ))
            .arg("-cp")
            .arg(format!(
                "{}:{}",
                classes.broker.display(),
                classpath(BROKER_SET)
            ))
            .arg("ksqlmsk.kafka.BrokerMain")
            .arg(node.dir.join("server.properties"))
            .arg(&self.cluster_id)
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn the broker JVM");
        node.child = Some(child);
        offset
    }

    fn wait_started(&mut self, i: usize, offset: u64) {
        let limit = Duration::from_secs(90);
        let log = self.nodes[i].log();
        let mut exited = None;
        let ok = wait_until(limit, || {
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                exited = Some(status);
                return true;
            }
            read_from(&log, offset).contains("Kafka Server started")
        });
        let text = read_from(&log, offset);
        if let Some(status) = exited {
            self.nodes[i].child = None;
            panic!(
                "broker {} exited ({status}) while starting; log {}:\n{}",
                self.nodes[i].id,
                log.display(),
                tail(&text, 40)
            );
        }
        assert!(
            ok,
            "broker {} did not start within {limit:?}; log {}:\n{}",
            self.nodes[i].id,
            log.display(),
            tail(&text, 40)
        );
    }

    /// Number of brokers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The SASL_SSL (IAM) bootstrap string: `HOST:PORT,...`, like MSK's
    /// `BootstrapBrokerStringSaslIam`.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}:{}", self.options.advertised_host, n.sasl_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The PLAINTEXT loopback listener whose principal is a super user: Kafka's view
    /// without IAM, for checks independent of what is under test.
    pub fn internal_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.internal_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The test CA's certificate (PEM), which the brokers' certificate chains to.
    pub fn ca_pem(&self) -> &Path {
        &self.ca.ca_pem
    }

    /// The CA in a PKCS12 truststore (password [`TRUSTSTORE_PASSWORD`]).
    pub fn truststore(&self) -> &Path {
        &self.truststore
    }

    /// The client's TLS properties for the test CA (real MSK needs none: its
    /// certificates chain to public roots).
    pub fn ssl_properties(&self) -> Vec<(String, String)> {
        vec![
            (
                "ssl.truststore.location".into(),
                self.truststore.display().to_string(),
            ),
            ("ssl.truststore.password".into(), TRUSTSTORE_PASSWORD.into()),
            ("ssl.truststore.type".into(), "PKCS12".into()),
        ]
    }

    /// A client.properties for the real IAM client, as AWS documents it, plus the test
    /// CA's truststore.
    pub fn iam_client_properties(&self) -> String {
        let mut s = format!(
            "bootstrap.servers={}\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanism=AWS_MSK_IAM\n\
             sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required;\n\
             sasl.client.callback.handler.class=software.amazon.msk.auth.iam.IAMClientCallbackHandler\n",
            self.bootstrap()
        );
        for (k, v) in self.ssl_properties() {
            s.push_str(&format!("{k}={v}\n"));
        }
        s
    }

    pub fn cluster_arn(&self) -> &str {
        &self.options.cluster_arn
    }

    fn child_arn(&self, kind: &str, name: &str) -> String {
        let arn = &self.options.cluster_arn;
        let i = arn.find(":cluster/").expect("a cluster ARN");
        format!(
            "{}:{kind}/{}/{name}",
            &arn[..i],
            &arn[i + ":cluster/".len()..]
        )
    }

    /// `arn:aws:kafka:REGION:ACCOUNT:topic/NAME/UUID/<topic>` (`*` and `?` allowed).
    pub fn topic_arn(&self, topic: &str) -> String {
        self.child_arn("topic", topic)
    }

    pub fn group_arn(&self, group: &str) -> String {
        self.child_arn("group", group)
    }

    pub fn transactional_id_arn(&self, id: &str) -> String {
        self.child_arn("transactional-id", id)
    }

    /// The policy file the brokers read (IAM's JSON shape). Replace it with
    /// [`KafkaCluster::set_policy`]; the brokers see a change at their next check.
    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.json")
    }

    /// Replace the policy (atomically).
    pub fn set_policy(&self, policy: &Value) {
        write_atomic(
            &self.policy_path(),
            serde_json::to_string_pretty(policy)
                .expect("policy json")
                .as_bytes(),
        );
    }

    /// Every action on this cluster's cluster, topic, group and transactional-id ARNs.
    pub fn allow_all_policy(&self) -> Value {
        self.policy_allowing(&["kafka-cluster:*"])
    }

    /// Allow only `actions`, on every resource of this cluster.
    pub fn policy_allowing(&self, actions: &[&str]) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": actions,
                "Resource": [
                    self.cluster_arn(),
                    self.topic_arn("*"),
                    self.group_arn("*"),
                    self.transactional_id_arn("*"),
                ],
            }],
        })
    }

    /// Every action but `action` (IAM has no "all but": the other 18 listed).
    pub fn policy_without(&self, action: &str) -> Value {
        let rest: Vec<&str> = ACTIONS.iter().copied().filter(|a| *a != action).collect();
        assert!(rest.len() < ACTIONS.len(), "unknown action {action}");
        self.policy_allowing(&rest)
    }

    /// Allow everything, with an explicit Deny of `action` on `resource` (which wins).
    pub fn policy_denying(&self, action: &str, resource: &str) -> Value {
        let mut p = self.allow_all_policy();
        p["Statement"]
            .as_array_mut()
            .expect("statements")
            .push(json!({"Effect": "Deny", "Action": action, "Resource": resource}));
        p
    }

    /// The credentials file the brokers check signatures against.
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.path().join("credentials.json")
    }

    /// The credentials the brokers accept from now on (read at every authentication):
    /// those the fake IMDS hands out, e.g. both the old and the new during a rotation.
    /// Each is named after the instance role's session ([`crate::sts::ARN`]).
    pub fn trust_credentials(&self, credentials: &[imds::Credentials]) {
        let list: Vec<Value> = credentials
            .iter()
            .map(|c| {
                json!({
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "Token": c.token,
                    "Expiration": c.expiration,
                    "Principal": crate::sts::ARN,
                })
            })
            .collect();
        write_atomic(
            &self.credentials_path(),
            serde_json::to_string_pretty(&json!({ "Credentials": list }))
                .expect("credentials json")
                .as_bytes(),
        );
    }

    /// The log of broker `i` (0-based) so far.
    pub fn log(&self, i: usize) -> String {
        read_from(&self.nodes[i].log(), 0)
    }

    /// Every `MSK-IAM ...` line of every broker: `AUTH-OK`, `AUTH-FAIL reason=...`,
    /// `DENY principal=... action=... resource=...`, `FILTER ...` (denials Kafka asks
    /// about quietly), `POLICY loaded|invalid ...`.
    pub fn iam_log(&self) -> Vec<String> {
        (0..self.nodes.len())
            .flat_map(|i| {
                self.log(i)
                    .lines()
                    .filter(|l| l.contains("MSK-IAM "))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `MSK-IAM DENY` lines (each names the action and the resource ARN).
    pub fn denials(&self) -> Vec<String> {
        self.iam_log()
            .into_iter()
            .filter(|l| l.contains("MSK-IAM DENY "))
            .collect()
    }

    /// Wait (bounded) until some broker's IAM log has a line containing `needle`.
    pub fn wait_for_iam_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let mut found = None;
        wait_until(limit, || {
            found = self.iam_log().into_iter().find(|l| l.contains(needle));
            found.is_some()
        });
        found
    }

    /// Stop broker `i` (0-based) gracefully (SIGTERM, then SIGKILL after 30 s).
    pub fn stop_broker(&mut self, i: usize) {
        let Some(mut child) = self.nodes[i].child.take() else {
            return;
        };
        // SAFETY: kill(2) on the process group this child leads.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
        let stopped = wait_until(Duration::from_secs(30), || {
            child.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            // SAFETY: as above.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Kill broker `i` at once (SIGKILL), as a crash.
    pub fn kill_broker(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            // SAFETY: kill(2) on the process group this child leads.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Start broker `i` again (same ports, data and id) and wait until it serves.
    pub fn start_broker(&mut self, i: usize) {
        let offset = self.spawn(i);
        self.wait_started(i, offset);
    }

    /// Whether broker `i`'s JVM runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Run KafkaTool with `props` (client properties) and the jars of `sets` besides
    /// kafka-clients, in a clean environment plus `env`; bounded to 120 s.
    pub fn kafka_tool(
        &self,
        sets: &[&str],
        props: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ToolOutput {
        let classes = java_classes();
        let work = tempfile::tempdir_in(self.dir.path()).expect("tool dir");
        let props_path = work.path().join("client.properties");
        fs::write(&props_path, props).expect("client.properties");
        let log4j = work.path().join("log4j.properties");
        fs::write(
            &log4j,
            "log4j.rootLogger=WARN, stderr\n\
             log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.stderr.Target=System.err\n\
             log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.stderr.layout.ConversionPattern=%p %m (%c)%n\n",
        )
        .expect("tool log4j");
        let mut cp = vec![classes.tools.display().to_string(), classpath(CLIENTS_SET)];
        cp.extend(sets.iter().map(|s| classpath(s)));
        let mut cmd = Command::new("java");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            // No ~/.aws of the machine: the IAM jar's chain must find the fake IMDS.
            .env("HOME", work.path())
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(format!("-Dlog4j.configuration=file:{}", log4j.display()))
            .arg("-cp")
            .arg(cp.join(":"))
            .arg("ksqlmsk.kafka.KafkaTool")
            .arg(&props_path)
            .args(args)
            .current_dir(work.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_bounded(cmd, Duration::from_secs(120))
    }

    /// KafkaTool over the internal listener (super user, no IAM): Kafka's own view.
    pub fn admin(&self, args: &[&str]) -> ToolOutput {
        self.kafka_tool(
            &[],
            &format!("bootstrap.servers={}\n", self.internal_bootstrap()),
            args,
            &[],
        )
    }

    /// KafkaTool as the real IAM client `iam-<version>` with credentials from the fake
    /// IMDS at `imds_url` (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, which both SDK v1 and v2
    /// read; no other AWS setting).
    pub fn iam_client(&self, version: &str, imds_url: &str, args: &[&str]) -> ToolOutput {
        self.kafka_tool(
            &[&format!("iam-{version}")],
            &self.iam_client_properties(),
            args,
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_url)],
        )
    }

    /// The topic as Kafka's admin client sees it over the internal listener:
    /// `{"name","partitions","replication_factor","min_insync_replicas",
    /// "min_insync_replicas_source","replicas":[[ids]...],"isr":[[ids]...]}`; None when
    /// it does not exist.
    pub fn describe_topic(&self, topic: &str) -> Option<Value> {
        let out = self.admin(&["describe-topic", topic]);
        if out.code != 0 {
            assert!(
                out.stderr.contains("UnknownTopicOrPartitionException"),
                "describe-topic {topic}: {out:?}"
            );
            return None;
        }
        Some(serde_json::from_str(out.stdout.trim()).expect("describe-topic JSON"))
    }

    /// Every topic name, internal ones included, as the broker lists them.
    pub fn list_topics(&self) -> Vec<String> {
        let out = self.admin(&["list-topics"]);
        assert_eq!(out.code, 0, "list-topics: {out:?}");
        serde_json::from_str(out.stdout.trim()).expect("list-topics JSON")
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SAFETY: kill(2) on the process group this child leads.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            // Leave a trace of what the brokers said for the failed test's output.
            for (i, node) in self.nodes.iter().enumerate() {
                let text = self.log(i);
                eprintln!(
                    "--- broker {} log {} (last 30 lines)\n{}",
                    node.id,
                    node.log().display(),
                    tail(&text, 30)
                );
            }
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for k in 0..chars {
            out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}
