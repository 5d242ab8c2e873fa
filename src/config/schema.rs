//! The config schema: every key, its type, its default. One table serves loading,
//! validation, `config get`/`config set` and the test that the shipped file documents
//! every key.

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    /// A non-negative integer.
    Int,
    /// A humantime duration string: "90s", "10m", "1h 30m".
    Duration,
    /// A byte size string: "512m", "4g", "4096".
    Size,
    StrList,
    /// A table of string values (`[ksqldb.env]`, `[ksqldb.loggers]`): drop-ins merge it
    /// entry by entry.
    StrTable,
    /// One of the listed strings.
    OneOf(&'static [&'static str]),
}

impl Kind {
    pub fn describe(self) -> String {
        match self {
            Kind::Str => "a string".into(),
            Kind::Bool => "true or false".into(),
            Kind::Int => "a non-negative integer".into(),
            Kind::Duration => "a duration string such as \"90s\" or \"10m\"".into(),
            Kind::Size => "a size string such as \"512m\" or \"4g\"".into(),
            Kind::StrList => "a list of strings".into(),
            Kind::StrTable => "a table of strings".into(),
            Kind::OneOf(choices) => format!("one of {}", choices.join(", ")),
        }
    }
}

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// The default as a TOML value literal.
    pub default: &'static str,
    /// What the key means: the `///` lines above it in the schema, each ending in a
    /// newline ([`Key::doc`] joins them into one paragraph).
    pub doc_lines: &'static str,
}

impl Key {
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// What the key means, as one paragraph (for the man page and anything else that
    /// documents the keys). Code, names and values are in backticks.
    pub fn doc(&self) -> String {
        self.doc_lines
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Sections that hold schema keys. `[properties]` is free-form and handled apart.
pub const SECTIONS: &[&str] = &["msk", "ksqldb", "iam_auth", "agent", "metrics"];
pub const PROPERTIES: &str = "properties";

/// Declares each key once: a constant in [`keys`] (so that a misspelt key is a compile
/// error) and its entry in [`KEYS`], in the order the shipped config documents them.
/// The `///` lines above a key are its documentation ([`Key::doc`]), from which
/// ksql-msk.toml(5) is generated: a key without them does not compile.
macro_rules! schema {
    ($($(#[doc = $doc:literal])+ $ident:ident = $section:ident . $name:ident : $kind:expr, $default:expr;)*) => {
        /// Every schema key as a constant: `keys::MSK_CLUSTER_ARN` is `msk.cluster_arn`.
        pub mod keys {
            use super::*;
            $(
                #[doc = concat!("`", stringify!($section), ".", stringify!($name), "`")]
                #[doc = ""]
                $(#[doc = $doc])+
                pub const $ident: &Key = &Key {
                    section: stringify!($section),
                    name: stringify!($name),
                    kind: $kind,
                    default: $default,
                    doc_lines: concat!($($doc, "\n"),+),
                };
            )*
        }

        pub const KEYS: &[Key] = &[$(*keys::$ident),*];
    };
}

pub const CONNECTIVITY: &[&str] = &["private", "public", "vpc"];
/// `ksqldb.auth`: how ksqlDB's REST API authenticates clients.
pub const REST_AUTH: &[&str] = &["none", "basic"];

schema! {
    /// The MSK cluster by ARN (preferred). Set exactly one of `cluster_arn` and
    /// `cluster_name`.
    MSK_CLUSTER_ARN = msk.cluster_arn: Kind::Str, r#""""#;
    /// The MSK cluster by its exact name, looked up through the MSK API. Set exactly
    /// one of `cluster_arn` and `cluster_name`.
    MSK_CLUSTER_NAME = msk.cluster_name: Kind::Str, r#""""#;
    /// The cluster's AWS region. Empty: the ARN's region, else the AWS default chain
    /// (`AWS_REGION`, the profile, instance metadata).
    MSK_REGION = msk.region: Kind::Str, r#""""#;
    /// Which IAM bootstrap brokers to use: `private` (port 9098, same VPC), `public`
    /// (port 9198, public access enabled) or `vpc` (multi-VPC private connectivity).
    MSK_CONNECTIVITY = msk.connectivity: Kind::OneOf(CONNECTIVITY), r#""private""#;
    /// Use the cluster's IPv6 IAM bootstrap brokers (private connectivity only).
    MSK_IPV6 = msk.ipv6: Kind::Bool, "false";
    /// MSK API endpoint override, e.g. a VPC interface endpoint. Empty: the regional
    /// endpoint (`AWS_ENDPOINT_URL_KAFKA` also overrides it).
    MSK_ENDPOINT_URL = msk.endpoint_url: Kind::Str, r#""""#;
    /// How long to wait for a cluster that is CREATING, or that is changing (UPDATING,
    /// MAINTENANCE, HEALING, REBOOTING_BROKER) and has no IAM broker string for
    /// `connectivity` yet, before giving up with exit 75 (systemd retries). A changing
    /// cluster that has it is used at once: MSK clusters serve clients in those states.
    MSK_CLUSTER_WAIT = msk.cluster_wait: Kind::Duration, r#""30m""#;
    /// Attempts per MSK API call; throttling and 5xx errors are retried with capped
    /// exponential backoff.
    MSK_API_MAX_ATTEMPTS = msk.api_max_attempts: Kind::Int, "6";
    /// The ksqlDB release to install. Changing it installs the new release beside the
    /// old one and switches to it atomically.
    KSQLDB_VERSION = ksqldb.version: Kind::Str, r#""0.23.1""#;
    /// Where to fetch the release archive; `{version}` and `{major_minor}` (e.g.
    /// 0.29) are expanded. A mirror works as well: integrity comes from the signature.
    KSQLDB_ARCHIVE_URL = ksqldb.archive_url: Kind::Str, r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/confluent-ksqldb-{version}.tar.gz""#;
    /// The archive's detached OpenPGP signature; `{archive_url}` is the expanded
    /// `archive_url`.
    KSQLDB_SIGNATURE_URL = ksqldb.signature_url: Kind::Str, r#""{archive_url}.asc""#;
    /// The signing key: a URL, or an absolute path to a key file on this host.
    KSQLDB_KEY_URL = ksqldb.key_url: Kind::Str, r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/archive.key""#;
    /// OpenPGP fingerprints (primary key or signing subkey) allowed to sign the
    /// archive. Empty: trust on first use: the agent records the key it first sees in
    /// `<state_dir>/trust.toml`, logs the line to pin it here, and refuses any other key
    /// later.
    KSQLDB_TRUSTED_FINGERPRINTS = ksqldb.trusted_fingerprints: Kind::StrList, "[]";
    /// ksqlDB's listeners, written to ksql-server.properties. With a wildcard address
    /// the agent also sets `ksql.advertised.listener` to this host's address (to the
    /// internal listener's port instead when `internal_listener` is set).
    KSQLDB_LISTENERS = ksqldb.listeners: Kind::Str, r#""http://0.0.0.0:8088""#;
    /// A second listener for ksqlDB's inter-node traffic (pull queries, heartbeats),
    /// written as `ksql.internal.listener`, e.g. `http://0.0.0.0:8099`: its port can
    /// then be opened to the other hosts only. With a wildcard address the agent points
    /// `ksql.advertised.listener` at this listener on this host's address. Empty: none,
    /// the nodes talk on `listeners`.
    KSQLDB_INTERNAL_LISTENER = ksqldb.internal_listener: Kind::Str, r#""""#;
    // --- REST API access (issue 15 item 3) ---
    /// Who may use ksqlDB's REST API (SQL, including `DROP ... DELETE TOPIC` and
    /// `TERMINATE`): `none` (anyone who can reach a listener) or `basic` (HTTP basic
    /// authentication with a generated credential in `ksqldb.password` beside this file,
    /// 0640 root:ksql, rotated by `ksql-msk auth rotate`). With `none` and a listener
    /// that is not loopback the agent warns at start and `ksql-msk check` fails.
    KSQLDB_AUTH = ksqldb.auth: Kind::OneOf(REST_AUTH), r#""none""#;
    // --- end REST API access ---
    /// The JVM heap: `auto` (sized from the instance's memory) or a size such as
    /// `4g`.
    KSQLDB_HEAP = ksqldb.heap: Kind::Str, r#""auto""#;
    /// The share of the instance's memory (percent, 10 to 95) ksqlDB may use: heap,
    /// RocksDB's state stores (a third of it) and the JVM's own memory (a tenth)
    /// together. `ksqldb.heap = "auto"` is what is left for the heap.
    KSQLDB_MEMORY_BUDGET = ksqldb.memory_budget: Kind::Int, "75";
    /// ksql-msk's bounded-memory RocksDB config setter (a jar the RPM installs): put on
    /// ksqlDB's classpath and named by `ksql.streams.rocksdb.config.setter`, it holds
    /// every state store's block cache and memtables to RocksDB's share of the memory
    /// budget. Empty: RocksDB unbounded. A missing jar at the default path leaves RocksDB
    /// unbounded with a warning; elsewhere it is an error.
    KSQLDB_ROCKSDB_SETTER_JAR = ksqldb.rocksdb_setter_jar: Kind::Str, r#""/usr/share/ksql-msk/java/ksql-msk-rocksdb.jar""#;
    /// The Java installation that runs ksqlDB. Empty: `JAVA_HOME`, else `java` on
    /// PATH or /etc/alternatives/java.
    KSQLDB_JAVA_HOME = ksqldb.java_home: Kind::Str, r#""""#;
    /// Extra JVM options for ksqlDB, appended to its KSQL_OPTS after the heap, GC, JMX
    /// and log4j options (a `-D` here wins). The launch script splits them on whitespace
    /// without quoting: one option cannot hold a space.
    KSQLDB_JVM_OPTS = ksqldb.jvm_opts: Kind::Str, r#""""#;
    /// Extra environment variables for ksqlDB, as `env = { TZ = "UTC" }` or a
    /// `[ksqldb.env]` table; drop-ins add to it entry by entry, and its entries win over
    /// the variables passed on from the agent's environment. The agent's own (JAVA_HOME,
    /// KSQL_HEAP_OPTS, KSQL_OPTS, LOG_DIR, ...) are refused, naming the key to use.
    KSQLDB_ENV = ksqldb.env: Kind::StrTable, "{}";
    // Log levels (issue 14, item 4).
    /// ksqlDB's root log level: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL` or
    /// `OFF`, any case; empty: the release's (INFO). ksqlDB runs with
    /// etc/ksqldb/ksql-msk-log4j.properties, generated from the release's
    /// log4j.properties with these levels and without the date in the console pattern
    /// (the journal stamps each entry). A reload restarts ksqlDB only if that file
    /// changed.
    KSQLDB_LOG_LEVEL = ksqldb.log_level: Kind::Str, r#""""#;
    /// Levels of single loggers, a `[ksqldb.loggers]` table of quoted logger names
    /// (`"io.confluent.ksql.rest" = "DEBUG"`) that drop-ins add to entry by entry. A
    /// logger the release's file sets keeps its appenders. A release whose file is not
    /// log4j 1 properties runs with it as it is; either log key then exits 78.
    KSQLDB_LOGGERS = ksqldb.loggers: Kind::StrTable, "{}";
    /// The aws-msk-iam-auth release; its -all.jar goes into share/java/ksqldb/ of the
    /// ksqlDB release. 2.3.5 and later need Java 17.
    IAM_AUTH_VERSION = iam_auth.version: Kind::Str, r#""1.1.1""#;
    /// Where to fetch the jar; `{version}` is expanded.
    IAM_AUTH_JAR_URL = iam_auth.jar_url: Kind::Str, r#""https://github.com/aws/aws-msk-iam-auth/releases/download/v{version}/aws-msk-iam-auth-{version}-all.jar""#;
    /// The jar's SHA-256. Empty: trust on first use of the release's published
    /// .sha256, recorded in `<state_dir>/trust.toml`.
    IAM_AUTH_SHA256 = iam_auth.sha256: Kind::Str, r#""""#;
    /// A role for ksqlDB to assume towards the brokers (awsRoleArn in
    /// sasl.jaas.config). Empty: the instance role.
    IAM_AUTH_ROLE_ARN = iam_auth.role_arn: Kind::Str, r#""""#;
    /// Log which AWS identity the IAM module uses (awsDebugCreds=true).
    IAM_AUTH_DEBUG_CREDS = iam_auth.debug_creds: Kind::Bool, "false";
    /// Topic names (a trailing `*` is a prefix match) that `ksql-msk iam-policy`
    /// grants ksqlDB read and write on, besides its own internal topics.
    IAM_AUTH_POLICY_TOPICS = iam_auth.policy_topics: Kind::StrList, r#"["*"]"#;
    /// Where downloads (cache/), releases (releases/), the active release link
    /// (current) and ksqlDB's state store live.
    AGENT_STATE_DIR = agent.state_dir: Kind::Str, r#""/var/lib/ksql-msk""#;
    /// ksqlDB's LOG_DIR (GC logs and the like). Empty: `<state_dir>/logs`.
    AGENT_LOG_DIR = agent.log_dir: Kind::Str, r#""""#;
    /// ksqlDB's health check; READY is sent to systemd only once it reports
    /// healthy.
    AGENT_HEALTH_URL = agent.health_url: Kind::Str, r#""http://127.0.0.1:8088/healthcheck""#;
    /// How often to re-read the bootstrap brokers; ksqlDB restarts if they
    /// changed.
    AGENT_REDISCOVER_INTERVAL = agent.rediscover_interval: Kind::Duration, r#""10m""#;
    /// How long ksqlDB may take to become healthy before it counts as a failed
    /// start.
    AGENT_START_TIMEOUT = agent.start_timeout: Kind::Duration, r#""15m""#;
    /// After SIGTERM, how long ksqlDB may take to stop before it is killed. Keep it
    /// below the unit's TimeoutStopSec.
    AGENT_STOP_TIMEOUT = agent.stop_timeout: Kind::Duration, r#""60s""#;
    /// A ksqlDB that answered its health check before and then gives no answer at
    /// all (refused, timed out) for this long is hung: it is killed and restarted, counted
    /// as a failure. An answer of `{"isHealthy": false}` (Kafka unreachable during MSK
    /// maintenance) is not a hang: ksqlDB is never restarted for it.
    AGENT_HANG_TIMEOUT = agent.hang_timeout: Kind::Duration, r#""2m""#;
    /// The first delay between restarts of ksqlDB; it doubles with each failure up
    /// to `restart_backoff_max`.
    AGENT_RESTART_BACKOFF = agent.restart_backoff: Kind::Duration, r#""2s""#;
    /// The longest delay between restarts of ksqlDB. Once ksqlDB has been healthy
    /// this long, the delay starts from `restart_backoff` again.
    AGENT_RESTART_BACKOFF_MAX = agent.restart_backoff_max: Kind::Duration, r#""2m""#;
    /// More than this many failures of ksqlDB within `restart_window`: the agent
    /// gives up (exit 75) and systemd's restart policy takes over.
    AGENT_RESTART_LIMIT = agent.restart_limit: Kind::Int, "5";
    /// The window in which `restart_limit` counts failures.
    AGENT_RESTART_WINDOW = agent.restart_window: Kind::Duration, r#""10m""#;
    /// The overall deadline of a download.
    AGENT_DOWNLOAD_TIMEOUT = agent.download_timeout: Kind::Duration, r#""30m""#;
    /// How long a download may make no progress before it is given up (an
    /// interrupted download resumes on the next try).
    AGENT_STALL_TIMEOUT = agent.stall_timeout: Kind::Duration, r#""60s""#;
    /// How long to wait for another ksql-msk process holding the state directory's
    /// lock.
    AGENT_LOCK_TIMEOUT = agent.lock_timeout: Kind::Duration, r#""10m""#;
    /// Refuse archives that unpack to more than this (gzip bombs).
    AGENT_MAX_RELEASE_SIZE = agent.max_release_size: Kind::Size, r#""4g""#;
    /// Extra CA certificates (a PEM file) to trust for downloads, e.g. behind a TLS
    /// proxy. Empty: the host's trust store alone.
    AGENT_EXTRA_CA = agent.extra_ca: Kind::Str, r#""""#;
    // [metrics]: JMX and the Prometheus JMX exporter (the textfile key comes with status).
    /// JMX on this port, bound to 127.0.0.1 only and without authentication (reach it
    /// through an SSM port forward, or from the CloudWatch agent on the host); the RMI
    /// connector uses the same port, so one port is all there is to forward. 0: off
    /// (the launch script's default: no JMX port). Changing it restarts ksqlDB.
    METRICS_JMX_PORT = metrics.jmx_port: Kind::Int, "0";
    /// ksqlDB's JMX metrics in the Prometheus text format at
    /// `http://<prometheus_bind>:<port>/metrics`, served by the Prometheus JMX exporter
    /// java agent inside ksqlDB's JVM. 0: off. Changing it restarts ksqlDB.
    METRICS_PROMETHEUS_PORT = metrics.prometheus_port: Kind::Int, "0";
    /// The address the exporter listens on: an IP address. The default keeps it on
    /// this host (for a local Prometheus agent or an SSM port forward); `0.0.0.0` serves
    /// the network, unauthenticated.
    METRICS_PROMETHEUS_BIND = metrics.prometheus_bind: Kind::Str, r#""127.0.0.1""#;
    /// The exporter's rules file (YAML). The default, shipped with the package, maps
    /// ksqlDB's query, Kafka Streams, consumer and producer MBeans.
    METRICS_PROMETHEUS_RULES = metrics.prometheus_rules: Kind::Str, r#""/usr/share/ksql-msk/jmx-exporter/ksqldb.yml""#;
    /// The Prometheus JMX exporter release (`jmx_prometheus_javaagent`); its jar is kept
    /// in `<state_dir>/exporter/`, never on ksqlDB's classpath.
    METRICS_EXPORTER_VERSION = metrics.exporter_version: Kind::Str, r#""1.6.0""#;
    /// Where to fetch the exporter jar; `{version}` is expanded. Releases after 1.0.1
    /// are published on GitHub only, not on Maven Central.
    METRICS_EXPORTER_URL = metrics.exporter_url: Kind::Str, r#""https://github.com/prometheus/jmx_exporter/releases/download/{version}/jmx_prometheus_javaagent-{version}.jar""#;
    /// The exporter jar's SHA-256. Empty: trust on first use of the release's published
    /// .sha256, recorded in `<state_dir>/trust.toml`. The jar is hashed again before
    /// every start of ksqlDB.
    METRICS_EXPORTER_SHA256 = metrics.exporter_sha256: Kind::Str, r#""""#;
    // The agent's own state as Prometheus text (src/service/status/metrics.rs).
    /// Where the agent writes its own state as Prometheus text metrics, atomically on
    /// every change (node_exporter's textfile collector reads `*.prom` files: name it
    /// so). The service needs write access to its directory: add `ReadWritePaths=` with
    /// `systemctl edit ksql-msk`. Empty: off.
    METRICS_TEXTFILE = metrics.textfile: Kind::Str, r#""""#;
}

/// The schema entry for `section.name`.
pub fn find(section: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.section == section && k.name == name)
}

/// The known key names of a section, for error messages.
pub fn names_in(section: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| k.section == section)
        .map(|k| k.name)
        .collect()
}
