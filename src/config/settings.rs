//! Typed [`Settings`]: the merged configuration validated once, with every error naming
//! the file, line and key at fault.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use toml_edit::Value;

use super::fragment::{config_error, Origin};
use super::load::Merged;
use super::schema::{self, Key};
use super::values::{
    check_http_url, expand_template, is_cluster_name, is_heap, is_region, is_version, major_minor,
    normalize_fingerprint, parse_size, ClusterArn,
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
    pub endpoint_url: Option<String>,
    pub cluster_wait: Duration,
    pub api_max_attempts: u32,
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
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct KsqldbSettings {
    pub version: String,
    pub archive_url: String,
    pub signature_url: String,
    pub key: KeySource,
    /// Upper-case hex, no spaces. Empty: trust on first use.
    pub trusted_fingerprints: Vec<String>,
    pub listeners: String,
    pub heap: Heap,
    pub java_home: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct IamAuthSettings {
    pub version: String,
    pub jar_url: String,
    /// Lower-case hex. `None`: trust on first use of the published `.sha256`.
    pub sha256: Option<String>,
    pub role_arn: Option<String>,
    pub debug_creds: bool,
    pub policy_topics: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub health_url: String,
    pub rediscover_interval: Duration,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
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
    fn key(&self, section: &str, name: &str) -> &'static Key {
        schema::find(section, name).unwrap_or_else(|| panic!("schema has no key {section}.{name}"))
    }
    fn origin(&self, key: &Key) -> Option<&'a Origin> {
        self.merged.entry(key).map(|e| &e.origin)
    }
    fn err(&self, key: &Key, problem: impl fmt::Display) -> anyhow::Error {
        let origin = self.origin(key).cloned().unwrap_or(Origin {
            file: self.merged.main.clone(),
            line: 1,
        });
        config_error(Some(&origin), &key.path(), problem)
    }
    fn string(&self, section: &str, name: &str) -> String {
        let key = self.key(section, name);
        self.merged
            .value(key)
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string()
    }
    fn opt_string(&self, section: &str, name: &str) -> Option<String> {
        Some(self.string(section, name)).filter(|s| !s.is_empty())
    }
    fn bool(&self, section: &str, name: &str) -> bool {
        self.merged
            .value(self.key(section, name))
            .as_bool()
            .unwrap_or(false)
    }
    fn int(&self, section: &str, name: &str) -> Result<u32> {
        let key = self.key(section, name);
        let n = self.merged.value(key).as_integer().unwrap_or(0);
        u32::try_from(n).map_err(|_| self.err(key, format!("{n} is too large")))
    }
    fn duration(&self, section: &str, name: &str) -> Result<Duration> {
        let key = self.key(section, name);
        let text = self.string(section, name);
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
    fn size(&self, section: &str, name: &str) -> Result<u64> {
        let key = self.key(section, name);
        let text = self.string(section, name);
        parse_size(&text).ok_or_else(|| {
            self.err(
                key,
                format!("{text:?} is not a size; use e.g. \"512m\" or \"4g\""),
            )
        })
    }
    fn list(&self, section: &str, name: &str) -> Vec<String> {
        self.merged
            .value(self.key(section, name))
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

fn msk_settings(r: &Reader) -> Result<MskSettings> {
    let arn_key = r.key("msk", "cluster_arn");
    let name_key = r.key("msk", "cluster_name");
    let cluster = match (
        r.opt_string("msk", "cluster_arn"),
        r.opt_string("msk", "cluster_name"),
    ) {
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
            return Err(config_error(
                Some(&Origin {
                    file: r.merged.main.clone(),
                    line: 1,
                }),
                "msk.cluster_arn",
                "no cluster configured: set msk.cluster_arn (or msk.cluster_name)",
            ))
        }
        (Some(arn), None) => {
            ClusterRef::Arn(ClusterArn::parse(&arn).map_err(|e| r.err(arn_key, e))?)
        }
        (None, Some(name)) => {
            if !is_cluster_name(&name) {
                return Err(r.err(
                    name_key,
                    format!("{name:?} is not a valid MSK cluster name (letters, digits, hyphens; at most 64)"),
                ));
            }
            ClusterRef::Name(name)
        }
    };
    let region_key = r.key("msk", "region");
    let region = match r.opt_string("msk", "region") {
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
    let connectivity = match r.string("msk", "connectivity").as_str() {
        "public" => Connectivity::Public,
        "vpc" => Connectivity::Vpc,
        _ => Connectivity::Private,
    };
    let ipv6 = r.bool("msk", "ipv6");
    if ipv6 && connectivity != Connectivity::Private {
        return Err(r.err(
            r.key("msk", "ipv6"),
            format!(
                "MSK offers IPv6 IAM bootstrap brokers only for private connectivity, not {:?}",
                connectivity.as_str()
            ),
        ));
    }
    let endpoint_url = r.opt_string("msk", "endpoint_url");
    if let Some(url) = &endpoint_url {
        check_http_url(url).map_err(|e| r.err(r.key("msk", "endpoint_url"), e))?;
    }
    let api_max_attempts = r.int("msk", "api_max_attempts")?;
    if api_max_attempts == 0 {
        return Err(r.err(r.key("msk", "api_max_attempts"), "must be at least 1"));
    }
    Ok(MskSettings {
        cluster,
        region,
        connectivity,
        ipv6,
        endpoint_url,
        cluster_wait: r.duration("msk", "cluster_wait")?,
        api_max_attempts,
    })
}

fn ksqldb_settings(r: &Reader) -> Result<KsqldbSettings> {
    let version = r.string("ksqldb", "version");
    if !is_version(&version) {
        return Err(r.err(
            r.key("ksqldb", "version"),
            format!("{version:?} is not a ksqlDB version such as \"0.29.0\""),
        ));
    }
    let mm = major_minor(&version).unwrap_or_default();
    let vars = [("version", version.as_str()), ("major_minor", mm.as_str())];
    let url = |name: &str, vars: &[(&str, &str)]| -> Result<String> {
        let key = r.key("ksqldb", name);
        let expanded =
            expand_template(&r.string("ksqldb", name), vars).map_err(|e| r.err(key, e))?;
        check_http_url(&expanded).map_err(|e| r.err(key, e))?;
        Ok(expanded)
    };
    let archive_url = url("archive_url", &vars)?;
    let with_archive = [vars[0], vars[1], ("archive_url", archive_url.as_str())];
    let signature_url = url("signature_url", &with_archive)?;
    let key_key = r.key("ksqldb", "key_url");
    let key_text = expand_template(&r.string("ksqldb", "key_url"), &with_archive)
        .map_err(|e| r.err(key_key, e))?;
    let key = if let Some(path) = key_text.strip_prefix("file://") {
        KeySource::File(PathBuf::from(path))
    } else if key_text.starts_with('/') {
        KeySource::File(PathBuf::from(&key_text))
    } else {
        check_http_url(&key_text).map_err(|e| {
            r.err(
                key_key,
                format!("{e} (a URL, or an absolute path to a key file)"),
            )
        })?;
        KeySource::Url(key_text)
    };
    let fp_key = r.key("ksqldb", "trusted_fingerprints");
    let mut trusted_fingerprints = Vec::new();
    for fp in r.list("ksqldb", "trusted_fingerprints") {
        let norm = normalize_fingerprint(&fp).ok_or_else(|| {
            r.err(
                fp_key,
                format!("{fp:?} is not an OpenPGP fingerprint (40 or 64 hex digits)"),
            )
        })?;
        trusted_fingerprints.push(norm);
    }
    let listeners = r.string("ksqldb", "listeners");
    for listener in listeners.split(',').map(str::trim) {
        check_http_url(listener).map_err(|e| r.err(r.key("ksqldb", "listeners"), e))?;
    }
    let heap_text = r.string("ksqldb", "heap");
    let heap = if heap_text == "auto" {
        Heap::Auto
    } else if is_heap(&heap_text) {
        Heap::Fixed(heap_text)
    } else {
        return Err(r.err(
            r.key("ksqldb", "heap"),
            format!("{heap_text:?} is neither \"auto\" nor a JVM size such as \"4g\""),
        ));
    };
    let java_home = r.opt_string("ksqldb", "java_home").map(PathBuf::from);
    if let Some(home) = &java_home {
        if !home.is_absolute() {
            return Err(r.err(
                r.key("ksqldb", "java_home"),
                format!("{} is not an absolute path", home.display()),
            ));
        }
    }
    Ok(KsqldbSettings {
        version,
        archive_url,
        signature_url,
        key,
        trusted_fingerprints,
        listeners,
        heap,
        java_home,
    })
}

fn iam_auth_settings(r: &Reader) -> Result<IamAuthSettings> {
    let version = r.string("iam_auth", "version");
    if !is_version(&version) {
        return Err(r.err(
            r.key("iam_auth", "version"),
            format!("{version:?} is not an aws-msk-iam-auth version such as \"2.3.0\""),
        ));
    }
    let jar_key = r.key("iam_auth", "jar_url");
    let jar_url = expand_template(
        &r.string("iam_auth", "jar_url"),
        &[("version", version.as_str())],
    )
    .map_err(|e| r.err(jar_key, e))?;
    check_http_url(&jar_url).map_err(|e| r.err(jar_key, e))?;
    let sha256 = match r.opt_string("iam_auth", "sha256") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(h.to_ascii_lowercase())
        }
        Some(h) => {
            return Err(r.err(
                r.key("iam_auth", "sha256"),
                format!("{h:?} is not a SHA-256 hash (64 hex digits)"),
            ))
        }
        None => None,
    };
    let role_arn = r.opt_string("iam_auth", "role_arn");
    if let Some(arn) = &role_arn {
        let ok = arn.starts_with("arn:aws")
            && arn.split(':').nth(2) == Some("iam")
            && arn.contains(":role/");
        if !ok {
            return Err(r.err(
                r.key("iam_auth", "role_arn"),
                format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            ));
        }
    }
    let policy_topics = r.list("iam_auth", "policy_topics");
    if let Some(bad) = policy_topics.iter().find(|t| t.is_empty()) {
        return Err(r.err(
            r.key("iam_auth", "policy_topics"),
            format!("{bad:?}: empty topic name"),
        ));
    }
    Ok(IamAuthSettings {
        version,
        jar_url,
        sha256,
        role_arn,
        debug_creds: r.bool("iam_auth", "debug_creds"),
        policy_topics,
    })
}

fn agent_settings(r: &Reader) -> Result<AgentSettings> {
    let abs_path = |name: &str| -> Result<Option<PathBuf>> {
        match r.opt_string("agent", name) {
            None => Ok(None),
            Some(p) if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
            Some(p) => Err(r.err(
                r.key("agent", name),
                format!("{p:?} is not an absolute path"),
            )),
        }
    };
    let state_dir = abs_path("state_dir")?
        .ok_or_else(|| r.err(r.key("agent", "state_dir"), "must not be empty"))?;
    let log_dir = abs_path("log_dir")?.unwrap_or_else(|| state_dir.join("logs"));
    let health_url = r.string("agent", "health_url");
    check_http_url(&health_url).map_err(|e| r.err(r.key("agent", "health_url"), e))?;
    let restart_limit = r.int("agent", "restart_limit")?;
    if restart_limit == 0 {
        return Err(r.err(r.key("agent", "restart_limit"), "must be at least 1"));
    }
    Ok(AgentSettings {
        state_dir,
        log_dir,
        health_url,
        rediscover_interval: r.duration("agent", "rediscover_interval")?,
        start_timeout: r.duration("agent", "start_timeout")?,
        stop_timeout: r.duration("agent", "stop_timeout")?,
        restart_backoff: r.duration("agent", "restart_backoff")?,
        restart_backoff_max: r.duration("agent", "restart_backoff_max")?,
        restart_limit,
        restart_window: r.duration("agent", "restart_window")?,
        download_timeout: r.duration("agent", "download_timeout")?,
        stall_timeout: r.duration("agent", "stall_timeout")?,
        lock_timeout: r.duration("agent", "lock_timeout")?,
        max_release_size: r.size("agent", "max_release_size")?,
        extra_ca: abs_path("extra_ca")?,
    })
}
