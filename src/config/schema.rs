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
    /// A table of string values (`[ksqldb.env]`): drop-ins merge it entry by entry.
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
}

impl Key {
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }
}

/// Sections that hold schema keys. `[properties]` is free-form and handled apart.
pub const SECTIONS: &[&str] = &["msk", "ksqldb", "iam_auth", "agent"];
pub const PROPERTIES: &str = "properties";

/// Declares each key once: a constant in [`keys`] (so that a misspelt key is a compile
/// error) and its entry in [`KEYS`], in the order the shipped config documents them.
macro_rules! schema {
    ($($ident:ident = $section:ident . $name:ident : $kind:expr, $default:expr;)*) => {
        /// Every schema key as a constant: `keys::MSK_CLUSTER_ARN` is `msk.cluster_arn`.
        pub mod keys {
            use super::*;
            $(
                #[doc = concat!("`", stringify!($section), ".", stringify!($name), "`")]
                pub const $ident: &Key = &Key {
                    section: stringify!($section),
                    name: stringify!($name),
                    kind: $kind,
                    default: $default,
                };
            )*
        }

        pub const KEYS: &[Key] = &[$(*keys::$ident),*];
    };
}

pub const CONNECTIVITY: &[&str] = &["private", "public", "vpc"];

schema! {
    MSK_CLUSTER_ARN = msk.cluster_arn: Kind::Str, r#""""#;
    MSK_CLUSTER_NAME = msk.cluster_name: Kind::Str, r#""""#;
    MSK_REGION = msk.region: Kind::Str, r#""""#;
    MSK_CONNECTIVITY = msk.connectivity: Kind::OneOf(CONNECTIVITY), r#""private""#;
    MSK_IPV6 = msk.ipv6: Kind::Bool, "false";
    MSK_ENDPOINT_URL = msk.endpoint_url: Kind::Str, r#""""#;
    MSK_CLUSTER_WAIT = msk.cluster_wait: Kind::Duration, r#""30m""#;
    MSK_API_MAX_ATTEMPTS = msk.api_max_attempts: Kind::Int, "6";
    KSQLDB_VERSION = ksqldb.version: Kind::Str, r#""0.23.1""#;
    KSQLDB_ARCHIVE_URL = ksqldb.archive_url: Kind::Str, r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/confluent-ksqldb-{version}.tar.gz""#;
    KSQLDB_SIGNATURE_URL = ksqldb.signature_url: Kind::Str, r#""{archive_url}.asc""#;
    KSQLDB_KEY_URL = ksqldb.key_url: Kind::Str, r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/archive.key""#;
    KSQLDB_TRUSTED_FINGERPRINTS = ksqldb.trusted_fingerprints: Kind::StrList, "[]";
    KSQLDB_LISTENERS = ksqldb.listeners: Kind::Str, r#""http://0.0.0.0:8088""#;
    KSQLDB_HEAP = ksqldb.heap: Kind::Str, r#""auto""#;
    KSQLDB_JAVA_HOME = ksqldb.java_home: Kind::Str, r#""""#;
    KSQLDB_JVM_OPTS = ksqldb.jvm_opts: Kind::Str, r#""""#;
    KSQLDB_ENV = ksqldb.env: Kind::StrTable, "{}";
    IAM_AUTH_VERSION = iam_auth.version: Kind::Str, r#""1.1.1""#;
    IAM_AUTH_JAR_URL = iam_auth.jar_url: Kind::Str, r#""https://github.com/aws/aws-msk-iam-auth/releases/download/v{version}/aws-msk-iam-auth-{version}-all.jar""#;
    IAM_AUTH_SHA256 = iam_auth.sha256: Kind::Str, r#""""#;
    IAM_AUTH_ROLE_ARN = iam_auth.role_arn: Kind::Str, r#""""#;
    IAM_AUTH_DEBUG_CREDS = iam_auth.debug_creds: Kind::Bool, "false";
    IAM_AUTH_POLICY_TOPICS = iam_auth.policy_topics: Kind::StrList, r#"["*"]"#;
    AGENT_STATE_DIR = agent.state_dir: Kind::Str, r#""/var/lib/ksql-msk""#;
    AGENT_LOG_DIR = agent.log_dir: Kind::Str, r#""""#;
    AGENT_HEALTH_URL = agent.health_url: Kind::Str, r#""http://127.0.0.1:8088/healthcheck""#;
    AGENT_REDISCOVER_INTERVAL = agent.rediscover_interval: Kind::Duration, r#""10m""#;
    AGENT_START_TIMEOUT = agent.start_timeout: Kind::Duration, r#""15m""#;
    AGENT_STOP_TIMEOUT = agent.stop_timeout: Kind::Duration, r#""60s""#;
    AGENT_HANG_TIMEOUT = agent.hang_timeout: Kind::Duration, r#""2m""#;
    AGENT_RESTART_BACKOFF = agent.restart_backoff: Kind::Duration, r#""2s""#;
    AGENT_RESTART_BACKOFF_MAX = agent.restart_backoff_max: Kind::Duration, r#""2m""#;
    AGENT_RESTART_LIMIT = agent.restart_limit: Kind::Int, "5";
    AGENT_RESTART_WINDOW = agent.restart_window: Kind::Duration, r#""10m""#;
    AGENT_DOWNLOAD_TIMEOUT = agent.download_timeout: Kind::Duration, r#""30m""#;
    AGENT_STALL_TIMEOUT = agent.stall_timeout: Kind::Duration, r#""60s""#;
    AGENT_LOCK_TIMEOUT = agent.lock_timeout: Kind::Duration, r#""10m""#;
    AGENT_MAX_RELEASE_SIZE = agent.max_release_size: Kind::Size, r#""4g""#;
    AGENT_EXTRA_CA = agent.extra_ca: Kind::Str, r#""""#;
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
