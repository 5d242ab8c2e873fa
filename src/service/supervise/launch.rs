//! How ksqlDB is started: the command line, its environment and its Java.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::info;

use crate::config::secrets::env_value_for_display;
use crate::config::EnvVars;
use crate::exit::{fail, one_line, ExitCode};
use crate::ksqldb::java::Jvm;
use crate::service::pipeline::Prepared;

/// Variables ksqlDB gets from the agent's own environment (the unit's
/// `EnvironmentFile=/etc/sysconfig/ksql-msk`, systemd's `/etc/locale.conf`): locale and
/// time zone, the proxy, and what the IAM module's credential chain (AWS SDK v1's
/// default chain) and region lookup read. Nothing else: the agent's own variables
/// (`KSQL_MSK_*`, `NOTIFY_SOCKET`, `WATCHDOG_*`) and whatever else is about stay out.
pub const PASS_THROUGH: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

/// Prefixes of passed-through variables: `LC_ALL`, `LC_CTYPE`, ...;
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, ...; `AWS_EC2_METADATA_DISABLED`, ...
pub const PASS_THROUGH_PREFIXES: &[&str] = &["LC_", "AWS_CONTAINER_", "AWS_EC2_METADATA_"];

/// `LANG` when neither the agent's environment nor `[ksqldb.env]` names a locale
/// (`LANG`, `LC_ALL` or `LC_CTYPE`): a systemd service has none unless
/// /etc/locale.conf sets one, and Java then takes `file.encoding` and
/// `sun.jnu.encoding` to be ASCII. glibc 2.35+ (and Amazon Linux 2023's 2.34) has
/// C.UTF-8 built in; where it is missing Java falls back to what it did before.
pub const DEFAULT_LANG: &str = "C.UTF-8";

fn passes_through(name: &str) -> bool {
    PASS_THROUGH.contains(&name) || PASS_THROUGH_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// ksqlDB's environment, sorted by name: what passes through from `inherited` (the
/// agent's environment), then `[ksqldb.env]` (`extra`) over it, `LANG` defaulted, `KSQL_OPTS`
/// from `ksqldb.jvm_opts`, and last the agent's own variables (`own`), which
/// `[ksqldb.env]` cannot name (config validation refuses them).
pub fn child_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    extra: &EnvVars,
    jvm_opts: Option<&str>,
    own: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| passes_through(k))
        .collect();
    env.extend(extra.0.iter().cloned());
    default_lang(&mut env);
    if let Some(opts) = jvm_opts {
        env.insert("KSQL_OPTS".into(), opts.to_string());
    }
    env.extend(own);
    env.into_iter().collect()
}

/// `LANG=`[`DEFAULT_LANG`] unless `env` names a locale (`LANG`, `LC_ALL` or `LC_CTYPE`).
pub fn default_lang(env: &mut BTreeMap<String, String>) {
    if !["LANG", "LC_ALL", "LC_CTYPE"]
        .iter()
        .any(|k| env.get(*k).is_some_and(|v| !v.is_empty()))
    {
        env.insert("LANG".into(), DEFAULT_LANG.into());
    }
}

/// What every launch script of a release gets from the agent, the server's
/// (`ksql-server-start`) and the CLI's (`ksql`) alike: `PATH`, `JAVA_HOME` and, where the
/// release's own defaults would not start on that Java, `KSQL_JVM_PERFORMANCE_OPTS`
/// ([`Jvm::performance_opts`]).
pub fn java_env(java_home: &Path, performance_opts: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), child_path()),
        (
            "JAVA_HOME".to_string(),
            java_home.to_string_lossy().into_owned(),
        ),
    ];
    if let Some(opts) = performance_opts {
        env.push(("KSQL_JVM_PERFORMANCE_OPTS".to_string(), opts.to_string()));
    }
    env
}

/// The agent's environment as UTF-8 pairs; a variable that is not UTF-8 is skipped
/// (`std::env::vars` would panic on it).
pub fn agent_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// What differs between two environments, for the journal: `NAME=value` for a new
/// variable, `NAME=old → new` for a changed one, `NAME unset`; values of secret-looking
/// names hidden, JVM options and URLs redacted.
pub fn env_changes(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let old: BTreeMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new: BTreeMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let names: std::collections::BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    names
        .into_iter()
        .filter_map(|k| {
            let show = |v: &str| env_value_for_display(k, v);
            match (old.get(k), new.get(k)) {
                (Some(a), Some(b)) if a == b => None,
                (Some(a), Some(b)) => Some(format!("{k}={} → {}", show(a), show(b))),
                (None, Some(b)) => Some(format!("{k}={}", show(b))),
                (Some(_), None) => Some(format!("{k} unset")),
                (None, None) => None,
            }
        })
        .collect()
}

/// Exactly how ksqlDB is started. Two equal specs run the same server; a reload restarts
/// ksqlDB only when the spec changes (or the brokers do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub release_dir: PathBuf,
    pub version: String,
    /// The properties file's bytes when the spec was made.
    pub properties: Vec<u8>,
    /// The log4j configuration's bytes when the spec was made (empty: none).
    pub log4j: Vec<u8>,
    /// The exporter java agent the JVM loads: its jar is hashed again before each start.
    pub exporter: Option<crate::ksqldb::exporter::Exporter>,
    /// The REST API credential ksqlDB was started with (`ksqldb.auth = "basic"`): the
    /// probe sends it, and a new one (`ksql-msk auth rotate`) restarts ksqlDB.
    pub auth: Option<crate::ksqldb::auth::Credential>,
}

/// `PATH` for ksqlDB: the agent's, else a standard one.
fn child_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Build the launch spec: `<release>/bin/ksql-server-start <properties>` with a clean,
/// explicit environment ([`child_env`]).
pub fn launch_spec(prepared: &Prepared, jvm: &Jvm) -> Result<Launch> {
    let settings = &prepared.settings;
    let release = prepared.release_dir();
    let program = release.join(crate::host::layout::SERVER_START);
    let properties = std::fs::read(prepared.properties_path())
        .with_context(|| format!("reading {}", prepared.properties_path().display()))
        .map_err(|e| fail(ExitCode::Unavailable, one_line(&e)))?;
    let log_dir = &settings.agent.log_dir;
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("creating agent.log_dir {}", log_dir.display()))?;
    let mut own = java_env(&jvm.java.home, jvm.performance_opts.as_deref());
    own.push((
        "LOG_DIR".to_string(),
        log_dir.to_string_lossy().into_owned(),
    ));
    own.push(("KSQL_HEAP_OPTS".to_string(), jvm.heap_opts.clone()));
    if let Some(classpath) = ksql_classpath(settings)? {
        own.push(("KSQL_CLASSPATH".to_string(), classpath));
    }
    // The console-only log4j config generated from the release's (crate::ksqldb::log4j), named
    // explicitly so that nothing in the environment can swap it for a file appender:
    // its lines must reach the journal.
    if let Some(log4j) = &prepared.log4j {
        own.push((
            "KSQL_LOG4J_OPTS".to_string(),
            format!("-Dlog4j.configuration=file:{}", log4j.path.display()),
        ));
    }
    // [metrics]: JMX on loopback (KSQL_JMX_OPTS), the exporter's java agent (KSQL_OPTS,
    // before `ksqldb.jvm_opts`).
    if let Some(port) = settings.metrics.jmx_port {
        own.push((
            "KSQL_JMX_OPTS".to_string(),
            crate::ksqldb::jmx::options(port),
        ));
    }
    let agent_opt = prepared
        .exporter
        .as_ref()
        .map(crate::ksqldb::exporter::Exporter::javaagent)
        .transpose()?;
    // ksqldb.auth = "basic": the JAAS file's -D option ahead of ksqldb.jvm_opts.
    let base = crate::ksqldb::auth::ksql_opts(settings, settings.ksqldb.jvm_opts.as_deref());
    let ksql_opts = match (agent_opt, base) {
        (Some(a), Some(j)) => Some(format!("{a} {j}")),
        (Some(a), None) => Some(a),
        (None, j) => j,
    };
    let env = child_env(agent_env(), &settings.ksqldb.env, ksql_opts.as_deref(), own);
    Ok(Launch {
        program,
        args: vec![prepared.properties_path().as_os_str().to_owned()],
        env,
        release_dir: release.to_path_buf(),
        version: prepared.version(),
        properties,
        log4j: prepared
            .log4j
            .as_ref()
            .map(|c| c.bytes.clone())
            .unwrap_or_default(),
        exporter: prepared.exporter.clone(),
        auth: crate::ksqldb::auth::credential(settings)?,
    })
}

/// `KSQL_CLASSPATH` with the bounded-memory RocksDB setter's jar (src/ksqldb/memory.rs):
/// `bin/ksql-run-class` appends it to the release's jars; one the operator set in
/// `[ksqldb.env]` comes first. `None`: no jar to add.
fn ksql_classpath(settings: &crate::config::Settings) -> Result<Option<String>> {
    let plan = crate::ksqldb::java::settings_memory_plan(settings);
    let Some(jar) = crate::ksqldb::java::host_rocksdb(settings, plan.as_ref())?
        .classpath_jar(settings.ksqldb.rocksdb_setter_jar.as_deref())
    else {
        return Ok(None);
    };
    let jar = jar.to_string_lossy().into_owned();
    let theirs = settings
        .ksqldb
        .env
        .0
        .iter()
        .rev()
        .find(|(k, _)| k == "KSQL_CLASSPATH")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    Ok(Some(match theirs {
        Some(theirs) => format!("{theirs}:{jar}"),
        None => jar,
    }))
}

/// The Java the next start uses, in the journal.
pub fn log_jvm(jvm: &Jvm) {
    info!(
        "Java {} ({}) at {}; KSQL_HEAP_OPTS={}{}",
        jvm.java.major,
        jvm.java.version,
        jvm.java.home.display(),
        jvm.heap_opts,
        jvm.performance_opts
            .as_ref()
            .map(|o| format!("; G1 options instead of the release's CMS defaults: {o}"))
            .unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn child_env_passes_locale_proxy_and_aws_through_and_nothing_else() {
        let inherited = pairs(&[
            ("LANG", "de_DE.UTF-8"),
            ("LC_TIME", "en_GB.UTF-8"),
            ("TZ", "Europe/Berlin"),
            ("https_proxy", "http://p:3128"),
            ("NO_PROXY", "169.254.169.254"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/c"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AWS_ENDPOINT_URL_KAFKA", "http://127.0.0.1:2"),
            ("KSQL_MSK_CONFIG", "/etc/x.toml"),
            ("NOTIFY_SOCKET", "/run/n"),
            ("KSQL_OPTS", "-Dfrom.sysconfig"),
            ("JAVA_HOME", "/usr/lib/jvm/other"),
            ("HOME", "/root"),
            ("FOO_BAR", "1"),
        ]);
        let extra = EnvVars(pairs(&[("TZ", "UTC"), ("JMX_PORT", "9010")]));
        let own = pairs(&[("JAVA_HOME", "/jdk"), ("PATH", "/usr/bin")]);
        let env = child_env(inherited, &extra, Some("-Xss2m"), own);
        assert_eq!(
            env,
            pairs(&[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/c"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_SESSION_TOKEN", "tok"),
                ("JAVA_HOME", "/jdk"),
                ("JMX_PORT", "9010"),
                ("KSQL_OPTS", "-Xss2m"),
                ("LANG", "de_DE.UTF-8"),
                ("LC_TIME", "en_GB.UTF-8"),
                ("NO_PROXY", "169.254.169.254"),
                ("PATH", "/usr/bin"),
                ("TZ", "UTC"),
                ("https_proxy", "http://p:3128"),
            ])
        );
    }

    #[test]
    fn lang_defaults_to_c_utf8_only_when_no_locale_is_named() {
        let lang = |inherited: &[(&str, &str)], extra: &[(&str, &str)]| {
            child_env(pairs(inherited), &EnvVars(pairs(extra)), None, vec![])
                .into_iter()
                .find(|(k, _)| k == "LANG")
                .map(|(_, v)| v)
        };
        assert_eq!(lang(&[], &[]).as_deref(), Some(DEFAULT_LANG));
        assert_eq!(lang(&[("LANG", "")], &[]).as_deref(), Some(DEFAULT_LANG));
        assert_eq!(
            lang(&[("LANG", "en_US.UTF-8")], &[]).as_deref(),
            Some("en_US.UTF-8")
        );
        assert_eq!(lang(&[("LC_ALL", "de_DE.UTF-8")], &[]), None);
        assert_eq!(lang(&[], &[("LC_CTYPE", "C.UTF-8")]), None);
        assert_eq!(
            lang(&[("LANG", "C")], &[("LANG", "fr_FR.UTF-8")]).as_deref(),
            Some("fr_FR.UTF-8")
        );
        // LC_TIME names no character set: the default still applies.
        assert_eq!(
            lang(&[("LC_TIME", "de_DE.UTF-8")], &[]).as_deref(),
            Some(DEFAULT_LANG)
        );
    }

    #[test]
    fn env_changes_name_what_changed_and_hide_secret_values() {
        let old = pairs(&[
            ("TZ", "UTC"),
            ("DB_PASSWORD", "old-hunter2"),
            ("KSQL_OPTS", "-Xss2m"),
            ("GONE", "x"),
            ("SAME", "y"),
        ]);
        let new = pairs(&[
            ("TZ", "Europe/Berlin"),
            ("DB_PASSWORD", "new-hunter2"),
            ("KSQL_OPTS", "-Xss2m -Dssl.keystore.password=hunter2"),
            ("HTTPS_PROXY", "http://u:hunter2@p:3128"),
            ("SAME", "y"),
        ]);
        let changes = env_changes(&old, &new);
        assert_eq!(
            changes,
            [
                "DB_PASSWORD=<redacted> → <redacted>",
                "GONE unset",
                "HTTPS_PROXY=http://***@p:3128",
                "KSQL_OPTS=-Xss2m → -Xss2m -Dssl.keystore.password=<redacted>",
                "TZ=UTC → Europe/Berlin",
            ]
        );
        assert!(!changes.concat().contains("hunter2"));
        assert!(env_changes(&old, &old).is_empty());
    }
}
