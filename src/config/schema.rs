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
            Kind::OneOf(choices) => format!("one of {}", choices.join(", ")),
        }
    }
}

/// One config key.
#[derive(Debug, Clone, Copy)]
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

const fn key(section: &'static str, name: &'static str, kind: Kind, default: &'static str) -> Key {
    Key {
        section,
        name,
        kind,
        default,
    }
}

pub const CONNECTIVITY: &[&str] = &["private", "public", "vpc"];

pub const KEYS: &[Key] = &[
    key("msk", "cluster_arn", Kind::Str, r#""""#),
    key("msk", "cluster_name", Kind::Str, r#""""#),
    key("msk", "region", Kind::Str, r#""""#),
    key(
        "msk",
        "connectivity",
        Kind::OneOf(CONNECTIVITY),
        r#""private""#,
    ),
    key("msk", "ipv6", Kind::Bool, "false"),
    key("msk", "endpoint_url", Kind::Str, r#""""#),
    key("msk", "cluster_wait", Kind::Duration, r#""30m""#),
    key("msk", "api_max_attempts", Kind::Int, "6"),
    key("ksqldb", "version", Kind::Str, r#""0.23.1""#),
    key(
        "ksqldb",
        "archive_url",
        Kind::Str,
        r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/confluent-ksqldb-{version}.tar.gz""#,
    ),
    key(
        "ksqldb",
        "signature_url",
        Kind::Str,
        r#""{archive_url}.asc""#,
    ),
    key(
        "ksqldb",
        "key_url",
        Kind::Str,
        r#""https://ksqldb-packages.s3.amazonaws.com/archive/{major_minor}/archive.key""#,
    ),
    key("ksqldb", "trusted_fingerprints", Kind::StrList, "[]"),
    key("ksqldb", "listeners", Kind::Str, r#""http://0.0.0.0:8088""#),
    key("ksqldb", "heap", Kind::Str, r#""auto""#),
    key("ksqldb", "java_home", Kind::Str, r#""""#),
    key("iam_auth", "version", Kind::Str, r#""1.1.1""#),
    key(
        "iam_auth",
        "jar_url",
        Kind::Str,
        r#""https://github.com/aws/aws-msk-iam-auth/releases/download/v{version}/aws-msk-iam-auth-{version}-all.jar""#,
    ),
    key("iam_auth", "sha256", Kind::Str, r#""""#),
    key("iam_auth", "role_arn", Kind::Str, r#""""#),
    key("iam_auth", "debug_creds", Kind::Bool, "false"),
    key("iam_auth", "policy_topics", Kind::StrList, r#"["*"]"#),
    key("agent", "state_dir", Kind::Str, r#""/var/lib/ksql-msk""#),
    key("agent", "log_dir", Kind::Str, r#""""#),
    key(
        "agent",
        "health_url",
        Kind::Str,
        r#""http://127.0.0.1:8088/healthcheck""#,
    ),
    key("agent", "rediscover_interval", Kind::Duration, r#""10m""#),
    key("agent", "start_timeout", Kind::Duration, r#""15m""#),
    key("agent", "stop_timeout", Kind::Duration, r#""60s""#),
    key("agent", "restart_backoff", Kind::Duration, r#""2s""#),
    key("agent", "restart_backoff_max", Kind::Duration, r#""2m""#),
    key("agent", "restart_limit", Kind::Int, "5"),
    key("agent", "restart_window", Kind::Duration, r#""10m""#),
    key("agent", "download_timeout", Kind::Duration, r#""30m""#),
    key("agent", "stall_timeout", Kind::Duration, r#""60s""#),
    key("agent", "lock_timeout", Kind::Duration, r#""10m""#),
    key("agent", "max_release_size", Kind::Size, r#""4g""#),
    key("agent", "extra_ca", Kind::Str, r#""""#),
];

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
