//! Typed [`Settings`]: the merged configuration validated once, with every error naming
//! the file, line and key at fault.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use toml_edit::Value;

use super::fragment::{config_error, Origin};
use super::merge::Merged;
use super::schema::{keys, Key};
use super::types::{ConfigUrl, Fingerprint, Sha256Digest};
use super::values::{
    check_no_control, expand_template, is_cluster_name, is_heap, is_region, is_version,
    major_minor, parse_size, redact_url, ClusterArn,
};

/// Which of the cluster's IAM bootstrap strings to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    Private,
    Public,
    Vpc,
}

impl Connectivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::Private => "private",
            Connectivity::Public => "public",
            Connectivity::Vpc => "vpc",
        }
    }
}

/// How the cluster is named in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    Arn(ClusterArn),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct MskSettings {
    pub cluster: ClusterRef,
    /// Explicit region, else the ARN's, else `None` (the AWS default chain).
    pub region: Option<String>,
    pub connectivity: Connectivity,
    pub ipv6: bool,
    pub endpoint_url: Option<ConfigUrl>,
    pub cluster_wait: Duration,
    pub api_max_attempts: u32,
}

/// `ksqldb.auth`: how ksqlDB's REST API authenticates clients (src/ksqldb/auth.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestAuth {
    /// Anyone who can reach a listener may use the API.
    None,
    /// HTTP basic authentication with the generated credential.
    Basic,
}

impl RestAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            RestAuth::None => "none",
            RestAuth::Basic => "basic",
        }
    }
}

/// JVM heap: sized from host memory, or a fixed -Xmx value such as "4g".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heap {
    Auto,
    Fixed(String),
}

/// Where the signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(ConfigUrl),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct KsqldbSettings {
    pub version: String,
    pub archive_url: ConfigUrl,
    pub signature_url: ConfigUrl,
    pub key: KeySource,
    /// Empty: trust on first use.
    pub trusted_fingerprints: Vec<Fingerprint>,
    pub listeners: String,
    /// `ksql.internal.listener`: one URL, or `None`.
    pub internal_listener: Option<String>,
    pub heap: Heap,
    /// `ksqldb.memory_budget`: percent of the instance's memory (src/ksqldb/memory.rs).
    pub memory_budget: u32,
    /// `ksqldb.rocksdb_setter_jar`: the bounded-memory RocksDB setter's jar; `None`: off.
    pub rocksdb_setter_jar: Option<PathBuf>,
    pub java_home: Option<PathBuf>,
    /// Appended to ksqlDB's `KSQL_OPTS`, split on whitespace by the launch scripts.
    pub jvm_opts: Option<String>,
    /// `[ksqldb.env]`: extra variables for ksqlDB, in the order first defined.
    pub env: EnvVars,
    /// `ksqldb.log_level`, upper case; `None`: the release's own root level.
    pub log_level: Option<String>,
    /// `[ksqldb.loggers]`: logger name → level (upper case), in the order first defined.
    pub loggers: Vec<(String, String)>,
    /// `ksqldb.auth`.
    pub auth: RestAuth,
}

/// Environment variables for ksqlDB. `Debug` hides the values of secret-looking names
/// (and URL passwords), so that a settings dump cannot leak them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVars(pub Vec<(String, String)>);

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, super::secrets::env_value_for_display(k, v))),
            )
            .finish()
    }
}

/// Variables the agent sets for ksqlDB itself, and the key to use instead.
pub const AGENT_ENV: &[(&str, &str)] = &[
    ("JAVA_HOME", "use ksqldb.java_home"),
    ("KSQL_HEAP_OPTS", "use ksqldb.heap"),
    (
        "KSQL_JVM_PERFORMANCE_OPTS",
        "the agent chooses GC options that the Java in use accepts; add JVM options with ksqldb.jvm_opts",
    ),
    ("KSQL_OPTS", "use ksqldb.jvm_opts"),
    (
        "KSQL_LOG4J_OPTS",
        "the agent points log4j at a console config generated from the release's so that ksqlDB's lines reach the journal; set levels with ksqldb.log_level and [ksqldb.loggers]",
    ),
    ("LOG_DIR", "use agent.log_dir"),
    (
        "PATH",
        "ksqlDB gets the agent's PATH; set it in the unit's environment (/etc/sysconfig/ksql-msk)",
    ),
];

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A control character in a value that may be secret, without showing the value.
fn control_char(text: &str) -> Option<String> {
    text.char_indices()
        .find(|(_, c)| c.is_control() && *c != '\t')
        .map(|(at, c)| {
            format!(
                "contains a control character (U+{:04X} at byte {at})",
                c as u32
            )
        })
}

#[derive(Debug, Clone)]
pub struct IamAuthSettings {
    pub version: String,
    pub jar_url: ConfigUrl,
    /// `None`: trust on first use of the published `.sha256`.
    pub sha256: Option<Sha256Digest>,
    pub role_arn: Option<String>,
    pub debug_creds: bool,
    pub policy_topics: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub health_url: ConfigUrl,
    pub rediscover_interval: Duration,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    /// A ksqlDB that answered before and then gives no answer at all for this long is
    /// hung: killed and restarted.
    pub hang_timeout: Duration,
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    pub restart_limit: u32,
    pub restart_window: Duration,
    pub download_timeout: Duration,
    pub stall_timeout: Duration,
    pub lock_timeout: Duration,
    pub max_release_size: u64,
    pub extra_ca: Option<PathBuf>,
}

/// `[metrics]`: the agent's metrics textfile, JMX and the Prometheus JMX exporter.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `metrics.textfile`: where to write the agent's own metrics; `None`: off.
    pub textfile: Option<PathBuf>,
    /// `None`: off.
    pub jmx_port: Option<u16>,
    /// `None`: off (and the exporter jar is not fetched).
    pub prometheus_port: Option<u16>,
    pub prometheus_bind: std::net::IpAddr,
    pub prometheus_rules: PathBuf,
    pub exporter_version: String,
    pub exporter_url: ConfigUrl,
    /// `None`: trust on first use of the published `.sha256`.
    pub exporter_sha256: Option<Sha256Digest>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The main config file.
    pub source: PathBuf,
    pub msk: MskSettings,
    pub ksqldb: KsqldbSettings,
    pub iam_auth: IamAuthSettings,
    /// `[properties]` overrides as strings, in the order first defined.
    pub properties: Vec<(String, String)>,
    pub agent: AgentSettings,
    pub metrics: MetricsSettings,
}

impl Settings {
    /// `ksql.service.id` from `[properties]`, else ksqlDB's default.
    pub fn service_id(&self) -> &str {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == "ksql.service.id")
            .map(|(_, v)| v.as_str())
            .unwrap_or("default_")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.agent.state_dir.join("cache")
    }
    pub fn releases_dir(&self) -> PathBuf {
        self.agent.state_dir.join("releases")
    }
    pub fn current_link(&self) -> PathBuf {
        self.agent.state_dir.join("current")
    }
    pub fn streams_dir(&self) -> PathBuf {
        self.agent.state_dir.join("streams")
    }
}

/// Reads typed values out of a [`Merged`] config, naming file and key in errors.
struct Reader<'a> {
    merged: &'a Merged,
}

impl<'a> Reader<'a> {
    fn origin(&self, key: &Key) -> Option<&'a Origin> {
        self.merged.entry(key).map(|e| &e.origin)
    }
    /// Where a key is set, else the main file without a line (the default applies).
    fn origin_or_main(&self, key: &Key) -> Origin {
        self.origin(key).cloned().unwrap_or(Origin {
            file: self.merged.main.clone(),
            line: None,
        })
    }
    fn err(&self, key: &Key, problem: impl fmt::Display) -> anyhow::Error {
        config_error(Some(&self.origin_or_main(key)), &key.path(), problem)
    }
    /// The value as written, untrimmed: what a control-character check must see.
    fn raw(&self, key: &Key) -> String {
        self.merged
            .value(key)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn string(&self, key: &Key) -> String {
        self.raw(key).trim().to_string()
    }
    /// A URL (or URL template) value, refused if it holds control characters.
    fn url_text(&self, key: &Key) -> Result<String> {
        let raw = self.raw(key);
        check_no_control(&raw).map_err(|e| self.err(key, e))?;
        Ok(raw.trim().to_string())
    }
    fn opt_string(&self, key: &Key) -> Option<String> {
        Some(self.string(key)).filter(|s| !s.is_empty())
    }
    fn bool(&self, key: &Key) -> bool {
        self.merged.value(key).as_bool().unwrap_or(false)
    }
    fn int(&self, key: &Key) -> Result<u32> {
        let n = self.merged.value(key).as_integer().unwrap_or(0);
        u32::try_from(n).map_err(|_| self.err(key, format!("{n} is too large")))
    }
    fn duration(&self, key: &Key) -> Result<Duration> {
        let text = self.string(key);
        let d = humantime::parse_duration(&text).map_err(|e| {
            self.err(
                key,
                format!("{text:?} is not a duration ({e}); use e.g. \"90s\" or \"10m\""),
            )
        })?;
        if d.is_zero() {
            return Err(self.err(key, "must be longer than zero"));
        }
        Ok(d)
    }
    fn size(&self, key: &Key) -> Result<u64> {
        let text = self.string(key);
        parse_size(&text).ok_or_else(|| {
            self.err(
                key,
                format!("{text:?} is not a size; use e.g. \"512m\" or \"4g\""),
            )
        })
    }
    fn list(&self, key: &Key) -> Vec<String> {
        self.merged
            .value(key)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Settings {
    /// Validate a merged configuration into typed settings.
    pub fn from_merged(merged: &Merged) -> Result<Settings> {
        let r = Reader { merged };
        Ok(Settings {
            source: merged.main.clone(),
            msk: msk_settings(&r)?,
            ksqldb: ksqldb_settings(&r)?,
            iam_auth: iam_auth_settings(&r)?,
            properties: merged
                .properties
                .iter()
                .map(|(k, e)| (k.clone(), property_string(&e.value)))
                .collect(),
            agent: agent_settings(&r)?,
            metrics: metrics_settings(&r)?,
        })
    }
}

/// A `[properties]` value as the string written to the properties file.
pub fn property_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.value().clone(),
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        other => other.to_string().trim().to_string(),
    }
}

/// `msk.cluster_arn` or `msk.cluster_name`: exactly one, each valid.
fn cluster_ref(r: &Reader) -> Result<ClusterRef> {
    let arn_key = keys::MSK_CLUSTER_ARN;
    let name_key = keys::MSK_CLUSTER_NAME;
    // Each value is checked on its own first, so a bad ARN is named as such even when
    // the name is set too.
    let arn = r
        .opt_string(arn_key)
        .map(|arn| ClusterArn::parse(&arn).map_err(|e| r.err(arn_key, e)))
        .transpose()?;
    let name = r.opt_string(name_key);
    if let Some(name) = &name {
        if !is_cluster_name(name) {
            return Err(r.err(
                name_key,
                format!("{name:?} is not a valid MSK cluster name (letters, digits, hyphens; at most 64)"),
            ));
        }
    }
    Ok(match (arn, name) {
        (Some(_), Some(_)) => {
            return Err(r.err(
                name_key,
                format!(
                    "both msk.cluster_arn{} and msk.cluster_name are set; set exactly one",
                    r.origin(arn_key)
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default()
                ),
            ))
        }
        (None, None) => {
            // Named where an empty cluster_arn (or cluster_name) stands, else the main file.
            let key = match r.origin(arn_key) {
                None if r.origin(name_key).is_some() => name_key,
                _ => arn_key,
            };
            return Err(config_error(
                Some(&r.origin_or_main(key)),
                &arn_key.path(),
                "no cluster configured: set msk.cluster_arn (or msk.cluster_name)",
            ));
        }
        (Some(arn), None) => ClusterRef::Arn(arn),
        (None, Some(name)) => ClusterRef::Name(name),
    })
}

fn msk_settings(r: &Reader) -> Result<MskSettings> {
    let cluster = cluster_ref(r)?;
    let region_key = keys::MSK_REGION;
    let region = match r.opt_string(keys::MSK_REGION) {
        Some(region) if !is_region(&region) => {
            return Err(r.err(
                region_key,
                format!("{region:?} is not an AWS region such as \"us-east-1\""),
            ))
        }
        Some(region) => Some(region),
        None => match &cluster {
            ClusterRef::Arn(arn) => Some(arn.region.clone()),
            ClusterRef::Name(_) => None,
        },
    };
    let connectivity = match r.string(keys::MSK_CONNECTIVITY).as_str() {
        "public" => Connectivity::Public,
        "vpc" => Connectivity::Vpc,
        _ => Connectivity::Private,
    };
    let ipv6 = r.bool(keys::MSK_IPV6);
    if ipv6 && connectivity != Connectivity::Private {
        return Err(r.err(
            keys::MSK_IPV6,
            format!(
                "MSK offers IPv6 IAM bootstrap brokers only for private connectivity, not {:?}",
                connectivity.as_str()
            ),
        ));
    }
    let endpoint_url = Some(r.url_text(keys::MSK_ENDPOINT_URL)?)
        .filter(|u| !u.is_empty())
        .map(|u| ConfigUrl::parse(&u).map_err(|e| r.err(keys::MSK_ENDPOINT_URL, e)))
        .transpose()?;
    let api_max_attempts = r.int(keys::MSK_API_MAX_ATTEMPTS)?;
    if api_max_attempts == 0 {
        return Err(r.err(keys::MSK_API_MAX_ATTEMPTS, "must be at least 1"));
    }
    Ok(MskSettings {
        cluster,
        region,
        connectivity,
        ipv6,
        endpoint_url,
        cluster_wait: r.duration(keys::MSK_CLUSTER_WAIT)?,
        api_max_attempts,
    })
}

/// `ksqldb.key_url`: a URL, or an absolute path (plain or `file://`) to a key file.
fn key_source(r: &Reader, vars: &[(&str, &str)]) -> Result<KeySource> {
    let key_key = keys::KSQLDB_KEY_URL;
    let key_text =
        expand_template(&r.url_text(keys::KSQLDB_KEY_URL)?, vars).map_err(|e| r.err(key_key, e))?;
    Ok(if let Some(path) = key_text.strip_prefix("file://") {
        // file://etc/x would name host "etc" to a URL parser and a relative path to us.
        if !path.starts_with('/') {
            return Err(r.err(
                key_key,
                format!(
                    "{:?}: a file:// URL must hold an absolute path, e.g. file:///etc/ksql-msk/archive.key",
                    redact_url(&key_text)
                ),
            ));
        }
        KeySource::File(PathBuf::from(path))
    } else if key_text.starts_with('/') {
        KeySource::File(PathBuf::from(&key_text))
    } else {
        KeySource::Url(ConfigUrl::parse(&key_text).map_err(|e| {
            r.err(
                key_key,
                format!("{e} (a URL, or an absolute path to a key file)"),
            )
        })?)
    })
}

/// `ksqldb.listeners` (a list of URLs) and `ksqldb.internal_listener` (one, optional).
fn listener_settings(r: &Reader) -> Result<(String, Option<String>)> {
    let listeners = r.url_text(keys::KSQLDB_LISTENERS)?;
    for listener in listeners.split(',').map(str::trim) {
        ConfigUrl::parse(listener).map_err(|e| r.err(keys::KSQLDB_LISTENERS, e))?;
    }
    let internal_listener =
        Some(r.url_text(keys::KSQLDB_INTERNAL_LISTENER)?).filter(|l| !l.is_empty());
    if let Some(l) = &internal_listener {
        if l.contains(',') {
            return Err(r.err(
                keys::KSQLDB_INTERNAL_LISTENER,
                format!("{l:?}: ksqlDB takes one internal listener, not a list"),
            ));
        }
        ConfigUrl::parse(l).map_err(|e| r.err(keys::KSQLDB_INTERNAL_LISTENER, e))?;
    }
    Ok((listeners, internal_listener))
}

/// `ksqldb.heap` (`auto` or a JVM size) and `ksqldb.java_home` (an absolute path).
fn jvm_settings(r: &Reader) -> Result<(Heap, Option<PathBuf>)> {
    let heap_text = r.string(keys::KSQLDB_HEAP);
    let heap = if heap_text == "auto" {
        Heap::Auto
    } else if is_heap(&heap_text) {
        Heap::Fixed(heap_text)
    } else {
        return Err(r.err(
            keys::KSQLDB_HEAP,
            format!(
                "{heap_text:?} is neither \"auto\" nor a JVM size with a unit \
                 (k, m or g, e.g. \"4g\" or \"4096m\")"
            ),
        ));
    };
    let java_home = r.opt_string(keys::KSQLDB_JAVA_HOME).map(PathBuf::from);
    if let Some(home) = &java_home {
        if !home.is_absolute() {
            return Err(r.err(
                keys::KSQLDB_JAVA_HOME,
                format!("{} is not an absolute path", home.display()),
            ));
        }
    }
    Ok((heap, java_home))
}

fn ksqldb_settings(r: &Reader) -> Result<KsqldbSettings> {
    let version = r.string(keys::KSQLDB_VERSION);
    if !is_version(&version) {
        return Err(r.err(
            keys::KSQLDB_VERSION,
            format!("{version:?} is not a ksqlDB version such as \"0.29.0\""),
        ));
    }
    let mm = major_minor(&version).unwrap_or_default();
    let vars = [("version", version.as_str()), ("major_minor", mm.as_str())];
    let url = |key: &'static Key, vars: &[(&str, &str)]| -> Result<ConfigUrl> {
        let expanded = expand_template(&r.url_text(key)?, vars).map_err(|e| r.err(key, e))?;
        ConfigUrl::parse(&expanded).map_err(|e| r.err(key, e))
    };
    let archive_url = url(keys::KSQLDB_ARCHIVE_URL, &vars)?;
    let with_archive = [vars[0], vars[1], ("archive_url", archive_url.expose())];
    let signature_url = url(keys::KSQLDB_SIGNATURE_URL, &with_archive)?;
    let key = key_source(r, &with_archive)?;
    let fp_key = keys::KSQLDB_TRUSTED_FINGERPRINTS;
    let mut trusted_fingerprints = Vec::new();
    for fp in r.list(keys::KSQLDB_TRUSTED_FINGERPRINTS) {
        trusted_fingerprints.push(Fingerprint::parse(&fp).map_err(|e| r.err(fp_key, e))?);
    }
    let (listeners, internal_listener) = listener_settings(r)?;
    let (heap, java_home) = jvm_settings(r)?;
    let jvm_opts = r.raw(keys::KSQLDB_JVM_OPTS);
    if let Some(problem) = control_char(&jvm_opts) {
        return Err(r.err(keys::KSQLDB_JVM_OPTS, problem));
    }
    let jvm_opts = Some(jvm_opts.trim().to_string()).filter(|o| !o.is_empty());
    let memory_budget = r.int(keys::KSQLDB_MEMORY_BUDGET)?;
    if !(10..=95).contains(&memory_budget) {
        return Err(r.err(
            keys::KSQLDB_MEMORY_BUDGET,
            format!("{memory_budget} is not a percentage from 10 to 95"),
        ));
    }
    let rocksdb_setter_jar = rocksdb_setter_jar(r)?;
    Ok(KsqldbSettings {
        version,
        archive_url,
        signature_url,
        key,
        trusted_fingerprints,
        listeners,
        internal_listener,
        heap,
        memory_budget,
        rocksdb_setter_jar,
        java_home,
        jvm_opts,
        env: env_settings(r)?,
        log_level: log_level_setting(r)?,
        loggers: logger_settings(r)?,
        auth: match r.string(keys::KSQLDB_AUTH).as_str() {
            "basic" => RestAuth::Basic,
            _ => RestAuth::None,
        },
    })
}

/// The log4j levels `ksqldb.log_level` and `[ksqldb.loggers]` take.
pub const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"];

/// A log4j level in any case, as log4j spells it.
pub fn log_level(text: &str) -> Option<&'static str> {
    LOG_LEVELS
        .iter()
        .copied()
        .find(|l| l.eq_ignore_ascii_case(text.trim()))
}

/// A logger name as `[ksqldb.loggers]` takes it: a Java class or package name (letters,
/// digits, `.`, `_`, `$`, `-`). Whitespace, `=`, `:` or a line break would end the
/// key in the properties file log4j reads, or start another.
pub fn is_logger_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$' | '-'))
}

/// Why `name` cannot be an entry of the table key `key`, if it cannot.
pub fn table_entry_problem(key: &Key, name: &str) -> Option<&'static str> {
    if *key == *keys::KSQLDB_LOGGERS {
        (!is_logger_name(name)).then_some(
            "not a logger name (letters, digits, '.', '_', '$' and '-', e.g. \"io.confluent.ksql.rest\")",
        )
    } else {
        (!is_env_name(name)).then_some(
            "not an environment variable name (letters, digits and _, not starting with a digit)",
        )
    }
}

fn level_problem(text: &str) -> String {
    format!(
        "{text:?} is not a log level; use one of {}",
        LOG_LEVELS.join(", ")
    )
}

/// `ksqldb.log_level`: empty, or a level.
fn log_level_setting(r: &Reader) -> Result<Option<String>> {
    let key = keys::KSQLDB_LOG_LEVEL;
    match r.opt_string(key) {
        None => Ok(None),
        Some(text) => log_level(&text)
            .map(|l| Some(l.to_string()))
            .ok_or_else(|| r.err(key, level_problem(&r.raw(key)))),
    }
}

/// `[ksqldb.loggers]`: logger names and levels.
fn logger_settings(r: &Reader) -> Result<Vec<(String, String)>> {
    let key = keys::KSQLDB_LOGGERS;
    let mut loggers = Vec::new();
    for (name, entry) in r.merged.table(key) {
        let path = format!("{}.{name}", key.path());
        if let Some(problem) = table_entry_problem(key, name) {
            return Err(config_error(Some(&entry.origin), &path, problem));
        }
        let value = entry.value.as_str().unwrap_or_default();
        let level = log_level(value)
            .ok_or_else(|| config_error(Some(&entry.origin), &path, level_problem(value)))?;
        loggers.push((name.clone(), level.to_string()));
    }
    Ok(loggers)
}

/// `[ksqldb.env]`: valid names, none that the agent sets itself, no control characters.
fn env_settings(r: &Reader) -> Result<EnvVars> {
    let key = keys::KSQLDB_ENV;
    let mut vars = Vec::new();
    for (name, entry) in r.merged.table(key) {
        let err = |problem: String| {
            config_error(
                Some(&entry.origin),
                &format!("{}.{name}", key.path()),
                problem,
            )
        };
        if let Some(problem) = table_entry_problem(key, name) {
            return Err(err(problem.into()));
        }
        if let Some((_, instead)) = AGENT_ENV.iter().find(|(n, _)| n == name) {
            return Err(err(format!("set by the agent; {instead}")));
        }
        let value = entry.value.as_str().unwrap_or_default();
        if let Some(problem) = control_char(value) {
            return Err(err(problem));
        }
        vars.push((name.clone(), value.to_string()));
    }
    Ok(EnvVars(vars))
}

fn iam_auth_settings(r: &Reader) -> Result<IamAuthSettings> {
    let version = r.string(keys::IAM_AUTH_VERSION);
    if !is_version(&version) {
        return Err(r.err(
            keys::IAM_AUTH_VERSION,
            format!("{version:?} is not an aws-msk-iam-auth version such as \"2.3.0\""),
        ));
    }
    let jar_key = keys::IAM_AUTH_JAR_URL;
    let jar_url = expand_template(
        &r.url_text(keys::IAM_AUTH_JAR_URL)?,
        &[("version", version.as_str())],
    )
    .map_err(|e| r.err(jar_key, e))?;
    let jar_url = ConfigUrl::parse(&jar_url).map_err(|e| r.err(jar_key, e))?;
    let sha256 = r
        .opt_string(keys::IAM_AUTH_SHA256)
        .map(|h| Sha256Digest::from_hex(&h).map_err(|e| r.err(keys::IAM_AUTH_SHA256, e)))
        .transpose()?;
    let role_arn = r.opt_string(keys::IAM_AUTH_ROLE_ARN);
    if let Some(arn) = &role_arn {
        let ok = arn.starts_with("arn:aws")
            && arn.split(':').nth(2) == Some("iam")
            && arn.contains(":role/");
        if !ok {
            return Err(r.err(
                keys::IAM_AUTH_ROLE_ARN,
                format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            ));
        }
    }
    let policy_topics = r.list(keys::IAM_AUTH_POLICY_TOPICS);
    if let Some(bad) = policy_topics.iter().find(|t| t.is_empty()) {
        return Err(r.err(
            keys::IAM_AUTH_POLICY_TOPICS,
            format!("{bad:?}: empty topic name"),
        ));
    }
    Ok(IamAuthSettings {
        version,
        jar_url,
        sha256,
        role_arn,
        debug_creds: r.bool(keys::IAM_AUTH_DEBUG_CREDS),
        policy_topics,
    })
}

fn agent_settings(r: &Reader) -> Result<AgentSettings> {
    let abs_path = |key: &'static Key| -> Result<Option<PathBuf>> {
        match r.opt_string(key) {
            None => Ok(None),
            Some(p) if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
            Some(p) => Err(r.err(key, format!("{p:?} is not an absolute path"))),
        }
    };
    let state_dir = abs_path(keys::AGENT_STATE_DIR)?
        .ok_or_else(|| r.err(keys::AGENT_STATE_DIR, "must not be empty"))?;
    let log_dir = abs_path(keys::AGENT_LOG_DIR)?.unwrap_or_else(|| state_dir.join("logs"));
    let health_url = ConfigUrl::parse(&r.url_text(keys::AGENT_HEALTH_URL)?)
        .map_err(|e| r.err(keys::AGENT_HEALTH_URL, e))?;
    let restart_limit = r.int(keys::AGENT_RESTART_LIMIT)?;
    if restart_limit == 0 {
        return Err(r.err(keys::AGENT_RESTART_LIMIT, "must be at least 1"));
    }
    let hang_timeout = r.duration(keys::AGENT_HANG_TIMEOUT)?;
    if hang_timeout < Duration::from_secs(1) {
        return Err(r.err(keys::AGENT_HANG_TIMEOUT, "must be at least 1s"));
    }
    Ok(AgentSettings {
        state_dir,
        log_dir,
        health_url,
        rediscover_interval: r.duration(keys::AGENT_REDISCOVER_INTERVAL)?,
        start_timeout: r.duration(keys::AGENT_START_TIMEOUT)?,
        stop_timeout: r.duration(keys::AGENT_STOP_TIMEOUT)?,
        hang_timeout,
        restart_backoff: r.duration(keys::AGENT_RESTART_BACKOFF)?,
        restart_backoff_max: r.duration(keys::AGENT_RESTART_BACKOFF_MAX)?,
        restart_limit,
        restart_window: r.duration(keys::AGENT_RESTART_WINDOW)?,
        download_timeout: r.duration(keys::AGENT_DOWNLOAD_TIMEOUT)?,
        stall_timeout: r.duration(keys::AGENT_STALL_TIMEOUT)?,
        lock_timeout: r.duration(keys::AGENT_LOCK_TIMEOUT)?,
        max_release_size: r.size(keys::AGENT_MAX_RELEASE_SIZE)?,
        extra_ca: abs_path(keys::AGENT_EXTRA_CA)?,
    })
}

/// `metrics.jmx_port` and `metrics.prometheus_port` (0: off): two different ports, and
/// JMX not also set up through `[ksqldb.env]`.
fn metrics_ports(r: &Reader) -> Result<(Option<u16>, Option<u16>)> {
    let port = |key: &'static Key| -> Result<Option<u16>> {
        let n = r.int(key)?;
        let port = u16::try_from(n).map_err(|_| {
            r.err(
                key,
                format!("{n} is not a TCP port (1-65535, or 0 for off)"),
            )
        })?;
        Ok(Some(port).filter(|p| *p != 0))
    };
    let jmx_port = port(keys::METRICS_JMX_PORT)?;
    let prometheus_port = port(keys::METRICS_PROMETHEUS_PORT)?;
    if jmx_port.is_some() && jmx_port == prometheus_port {
        return Err(r.err(
            keys::METRICS_PROMETHEUS_PORT,
            format!(
                "{} is metrics.jmx_port too; the exporter and JMX need a port each",
                jmx_port.unwrap_or_default()
            ),
        ));
    }
    if let Some(port) = jmx_port {
        // The script appends JMX_PORT to KSQL_JMX_OPTS, and KSQL_JMX_OPTS is the agent's.
        let env = keys::KSQLDB_ENV;
        if let Some((name, entry)) = r
            .merged
            .table(env)
            .iter()
            .find(|(n, _)| n == "JMX_PORT" || n == "KSQL_JMX_OPTS")
        {
            return Err(config_error(
                Some(&entry.origin),
                &format!("{}.{name}", env.path()),
                format!(
                    "metrics.jmx_port = {port} sets JMX up (bound to 127.0.0.1); remove this entry"
                ),
            ));
        }
    }
    Ok((jmx_port, prometheus_port))
}

/// `ksqldb.rocksdb_setter_jar`: empty (off) or an absolute path that can stand in a Java
/// classpath (`KSQL_CLASSPATH` is split on `:`).
fn rocksdb_setter_jar(r: &Reader) -> Result<Option<PathBuf>> {
    let key = keys::KSQLDB_ROCKSDB_SETTER_JAR;
    let jar = r.raw(key);
    if let Some(problem) = control_char(&jar) {
        return Err(r.err(key, problem));
    }
    let jar = jar.trim();
    if jar.is_empty() {
        return Ok(None);
    }
    if !jar.starts_with('/') || jar.contains(':') {
        return Err(r.err(
            key,
            format!("{jar:?} is not an absolute path without ':' (it goes into a Java classpath)"),
        ));
    }
    Ok(Some(PathBuf::from(jar)))
}

/// `metrics.prometheus_rules`: an absolute path the launch script passes whole.
fn prometheus_rules(r: &Reader) -> Result<PathBuf> {
    let rules_key = keys::METRICS_PROMETHEUS_RULES;
    let rules = r.raw(rules_key);
    if let Some(problem) = control_char(&rules) {
        return Err(r.err(rules_key, problem));
    }
    let rules = rules.trim();
    // The launch script splits KSQL_OPTS on whitespace: a space would cut the option.
    if !rules.starts_with('/') || rules.contains(char::is_whitespace) {
        return Err(r.err(
            rules_key,
            format!("{rules:?} is not an absolute path without spaces"),
        ));
    }
    Ok(PathBuf::from(rules))
}

fn metrics_settings(r: &Reader) -> Result<MetricsSettings> {
    let key = keys::METRICS_TEXTFILE;
    let textfile = match r.opt_string(key) {
        None => None,
        Some(p) if !p.starts_with('/') => {
            return Err(r.err(key, format!("{p:?} is not an absolute path")))
        }
        Some(p) if p.ends_with('/') => {
            return Err(r.err(key, format!("{p:?} names a directory, not a file")))
        }
        Some(p) => Some(PathBuf::from(p)),
    };
    let (jmx_port, prometheus_port) = metrics_ports(r)?;
    let bind_text = r.string(keys::METRICS_PROMETHEUS_BIND);
    let prometheus_bind = bind_text.parse::<std::net::IpAddr>().map_err(|_| {
        r.err(
            keys::METRICS_PROMETHEUS_BIND,
            format!("{bind_text:?} is not an IP address such as \"127.0.0.1\""),
        )
    })?;
    let prometheus_rules = prometheus_rules(r)?;
    let version = r.string(keys::METRICS_EXPORTER_VERSION);
    if !is_version(&version) {
        return Err(r.err(
            keys::METRICS_EXPORTER_VERSION,
            format!("{version:?} is not a jmx_exporter version such as \"1.6.0\""),
        ));
    }
    let url_key = keys::METRICS_EXPORTER_URL;
    let url = expand_template(&r.url_text(url_key)?, &[("version", version.as_str())])
        .map_err(|e| r.err(url_key, e))?;
    let exporter_url = ConfigUrl::parse(&url).map_err(|e| r.err(url_key, e))?;
    let exporter_sha256 = r
        .opt_string(keys::METRICS_EXPORTER_SHA256)
        .map(|h| Sha256Digest::from_hex(&h).map_err(|e| r.err(keys::METRICS_EXPORTER_SHA256, e)))
        .transpose()?;
    Ok(MetricsSettings {
        textfile,
        jmx_port,
        prometheus_port,
        prometheus_bind,
        prometheus_rules,
        exporter_version: version,
        exporter_url,
        exporter_sha256,
    })
}
