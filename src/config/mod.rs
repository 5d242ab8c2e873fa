//! Configuration: `/etc/ksql-msk/ksql-msk.toml` plus drop-ins in `ksql-msk.d/*.toml`.
//!
//! Each file is parsed into a [`Fragment`] (only the keys it sets, each with the file
//! and line it came from), fragments are merged in order over the schema defaults, and
//! the result is validated once into typed [`Settings`]. Every error names the file,
//! the line, the key and what is wrong, and exits 78.

pub mod edit;
pub mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use toml_edit::{Item, Value};

use crate::exit::{fail, ExitCode};
use schema::{Key, Kind};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ksql-msk/ksql-msk.toml";
pub const CONFIG_ENV: &str = "KSQL_MSK_CONFIG";
pub const DROPIN_DIR: &str = "ksql-msk.d";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub origin: Origin,
}

/// The keys one file sets.
#[derive(Debug, Default, Clone)]
pub struct Fragment {
    pub keys: BTreeMap<(String, String), Entry>,
    /// `[properties]`, in file order.
    pub properties: Vec<(String, Entry)>,
}

/// A config error: exit 78 with `file:line: key: problem`.
pub fn config_error(
    origin: Option<&Origin>,
    key: &str,
    problem: impl fmt::Display,
) -> anyhow::Error {
    let msg = match origin {
        Some(o) => format!("{o}: {key}: {problem}"),
        None => format!("{key}: {problem}"),
    };
    fail(ExitCode::Config, msg)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Check that `value` fits `key`'s kind (types only; meaning is checked in [`Settings`]).
pub fn check_kind(key: &Key, value: &Value) -> std::result::Result<(), String> {
    let wrong = || {
        format!(
            "expected {}, found {}",
            key.kind.describe(),
            type_name(value)
        )
    };
    match key.kind {
        Kind::Str | Kind::Duration | Kind::Size => value.as_str().map(|_| ()).ok_or_else(wrong),
        Kind::Bool => value.as_bool().map(|_| ()).ok_or_else(wrong),
        Kind::Int => match value.as_integer() {
            Some(n) if n >= 0 => Ok(()),
            Some(n) => Err(format!("expected a non-negative integer, found {n}")),
            None => Err(wrong()),
        },
        Kind::OneOf(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(()),
            Some(s) => Err(format!("{s:?} is not {}", key.kind.describe())),
            None => Err(wrong()),
        },
        Kind::StrList => match value.as_array() {
            Some(arr) => match arr.iter().find(|v| v.as_str().is_none()) {
                None => Ok(()),
                Some(v) => Err(format!(
                    "expected a list of strings, found {} in it",
                    type_name(v)
                )),
            },
            None => Err(wrong()),
        },
    }
}

/// Parse one config file's text into a fragment, checking sections, keys and types.
pub fn parse_fragment(file: &Path, text: &str) -> Result<Fragment> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        fail(
            ExitCode::Config,
            format!(
                "{}:{line}: invalid TOML: {}",
                file.display(),
                e.message().trim().replace('\n', " ")
            ),
        )
    })?;
    let origin_at = |span: Option<std::ops::Range<usize>>| Origin {
        file: file.to_path_buf(),
        line: span.map(|s| line_of(text, s.start)).unwrap_or(1),
    };
    let mut fragment = Fragment::default();
    let root = doc.as_table();
    for (section, item) in root.iter() {
        let section_span = root.key(section).and_then(|k| k.span());
        let Some(table) = item.as_table_like() else {
            return Err(config_error(
                Some(&origin_at(section_span)),
                section,
                "expected a [section] table",
            ));
        };
        let is_properties = section == schema::PROPERTIES;
        if !is_properties && !schema::SECTIONS.contains(&section) {
            return Err(config_error(
                Some(&origin_at(section_span)),
                section,
                format!(
                    "unknown section (known: {}, {})",
                    schema::SECTIONS.join(", "),
                    schema::PROPERTIES
                ),
            ));
        }
        for (name, item) in table.iter() {
            let key_span = table.key(name).and_then(|k| k.span());
            let origin = origin_at(key_span);
            let path = format!("{section}.{name}");
            let value = match item {
                Item::Value(v) => v.clone(),
                _ => {
                    return Err(config_error(
                        Some(&origin),
                        &path,
                        "expected a value, found a table",
                    ))
                }
            };
            if is_properties {
                match &value {
                    Value::String(_) | Value::Integer(_) | Value::Boolean(_) | Value::Float(_) => {}
                    other => {
                        return Err(config_error(
                            Some(&origin),
                            &path,
                            format!(
                                "expected a string, number or boolean, found {}",
                                type_name(other)
                            ),
                        ))
                    }
                }
                fragment
                    .properties
                    .push((name.to_string(), Entry { value, origin }));
                continue;
            }
            let Some(key) = schema::find(section, name) else {
                return Err(config_error(
                    Some(&origin),
                    &path,
                    format!(
                        "unknown key (known in [{section}]: {})",
                        schema::names_in(section).join(", ")
                    ),
                ));
            };
            check_kind(key, &value)
                .map_err(|problem| config_error(Some(&origin), &path, problem))?;
            fragment.keys.insert(
                (section.to_string(), name.to_string()),
                Entry { value, origin },
            );
        }
    }
    Ok(fragment)
}

/// The files that make up the configuration: the main file, then drop-ins in lexical order.
pub fn config_files(main: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![main.to_path_buf()];
    let dir = crate::fsutil::parent_dir(main).join(DROPIN_DIR);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut dropins = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| {
                    fail(
                        ExitCode::Config,
                        format!("{}: cannot list drop-ins: {e}", dir.display()),
                    )
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "toml") {
                    dropins.push(path);
                }
            }
            dropins.sort();
            files.extend(dropins);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(fail(
                ExitCode::Config,
                format!("{}: cannot list drop-ins: {e}", dir.display()),
            ))
        }
    }
    Ok(files)
}

/// The merged view of all config files: for each key its value and origin, defaults
/// where no file sets it.
#[derive(Debug, Clone)]
pub struct Merged {
    pub main: PathBuf,
    pub keys: BTreeMap<(String, String), Entry>,
    pub properties: Vec<(String, Entry)>,
}

impl Merged {
    pub fn from_fragments(main: &Path, fragments: Vec<Fragment>) -> Merged {
        let mut keys = BTreeMap::new();
        let mut properties: Vec<(String, Entry)> = Vec::new();
        for fragment in fragments {
            keys.extend(fragment.keys);
            for (name, entry) in fragment.properties {
                match properties.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = entry,
                    None => properties.push((name, entry)),
                }
            }
        }
        Merged {
            main: main.to_path_buf(),
            keys,
            properties,
        }
    }

    /// The entry set by a file, if any.
    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.keys
            .get(&(key.section.to_string(), key.name.to_string()))
    }

    /// The effective value of a key: set by a file, else the default.
    pub fn value(&self, key: &Key) -> Value {
        match self.entry(key) {
            Some(e) => e.value.clone(),
            None => default_value(key),
        }
    }
}

/// A key's default, parsed from the schema literal.
pub fn default_value(key: &Key) -> Value {
    // The schema's literals are checked by a unit test, so this cannot fail at run time.
    key.default
        .parse::<Value>()
        .unwrap_or_else(|_| Value::from(""))
}

/// Read and merge the main config file and its drop-ins.
pub fn load_merged(main: &Path) -> Result<Merged> {
    let mut fragments = Vec::new();
    for file in config_files(main)? {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == main => {
                return Err(fail(
                    ExitCode::Config,
                    format!(
                        "{}: config file not found (write the cluster ARN into it, or pass --config PATH)",
                        file.display()
                    ),
                ))
            }
            Err(e) => {
                return Err(fail(
                    ExitCode::Config,
                    format!("{}: cannot read config: {e}", file.display()),
                ))
            }
        };
        fragments.push(parse_fragment(&file, &text)?);
    }
    Ok(Merged::from_fragments(main, fragments))
}

/// Load, merge and validate the configuration at `main`.
pub fn load(main: &Path) -> Result<Settings> {
    Settings::from_merged(&load_merged(main)?)
}

/// The config path: `--config`, else `$KSQL_MSK_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

// ---------------------------------------------------------------------------
// Typed settings

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

/// A parsed MSK cluster ARN: `arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterArn {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub uuid: String,
}

impl ClusterArn {
    pub fn parse(arn: &str) -> std::result::Result<ClusterArn, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(format!(
                "{arn:?} is not an ARN (expected arn:aws:kafka:<region>:<account>:cluster/<name>/<id>)"
            ));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !partition.starts_with("aws") {
            return Err(format!(
                "{arn:?}: partition {partition:?} is not an AWS partition"
            ));
        }
        if service != "kafka" {
            return Err(format!(
                "{arn:?}: service is {service:?}, expected \"kafka\""
            ));
        }
        if !is_region(region) {
            return Err(format!("{arn:?}: {region:?} is not an AWS region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{arn:?}: account {account:?} is not 12 digits"));
        }
        let res: Vec<&str> = resource.split('/').collect();
        if res.len() != 3 || res[0] != "cluster" {
            return Err(format!(
                "{arn:?}: resource {resource:?} is not cluster/<name>/<id> (is this a cluster ARN?)"
            ));
        }
        if !is_cluster_name(res[1]) {
            return Err(format!("{arn:?}: {:?} is not a valid cluster name", res[1]));
        }
        if res[2].is_empty()
            || !res[2]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("{arn:?}: cluster id {:?} is not valid", res[2]));
        }
        Ok(ClusterArn {
            arn: arn.to_string(),
            partition: partition.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            name: res[1].to_string(),
            uuid: res[2].to_string(),
        })
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, ...
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// MSK cluster names: 1–64 of letters, digits and hyphens, starting with a letter or digit.
pub fn is_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
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

/// `"4096"`, `"512k"`, `"512m"`, `"4g"` (binary units) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// Expand `{version}`, `{major_minor}` and `{archive_url}` in a URL template.
pub fn expand_template(
    template: &str,
    vars: &[(&str, &str)],
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed '{{' in {template:?}"));
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                let known: Vec<String> = vars.iter().map(|(k, _)| format!("{{{k}}}")).collect();
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    known.join(", ")
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `0.29.0` → `0.29`.
pub fn major_minor(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    Some(format!("{major}.{minor}"))
}

fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+_".contains(&b))
}

fn check_http_url(url: &str) -> std::result::Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(())
        }
        Ok(u) => Err(format!(
            "{url:?}: scheme {:?} is not http or https",
            u.scheme()
        )),
        Err(e) => Err(format!("{url:?} is not a URL ({e})")),
    }
}

/// An OpenPGP fingerprint, normalised: spaces dropped, upper case; v4 (40) or v6 (64) hex digits.
pub fn normalize_fingerprint(fp: &str) -> Option<String> {
    let hex: String = fp
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_start_matches("0x")
        .to_ascii_uppercase();
    ((hex.len() == 40 || hex.len() == 64) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hex)
}

fn is_heap(s: &str) -> bool {
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    !digits.is_empty() && digits.len() + 1 >= s.len() && digits.bytes().all(|b| b.is_ascii_digit())
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

#[cfg(test)]
mod tests;
