//! The Prometheus JMX exporter java agent (`[metrics] prometheus_port`): where its jar
//! lives, what it must hash to, and the `-javaagent:` option that loads it.
//!
//! The jar is kept in `<state_dir>/exporter/`, not in a release: it is not ksqlDB's
//! (it must not land on the classpath that the start scripts build from
//! `share/java/*`), and it outlives release switches. The `ksql` user can write the
//! state directory, so the jar is hashed against its pin (or the hash recorded on first
//! use) whenever phases 1–5 run, and again before every start of ksqlDB; `ksql-msk
//! verify` checks it too. Fetching it is [`crate::service::pipeline`]'s (phase 3).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{Settings, Sha256Digest};
use crate::exit::{fail, ExitCode};
use crate::host;
use crate::release::verify::{ExpectedHash, TrustStore};

/// The directory under the state directory that holds the exporter jar.
pub const DIR: &str = "exporter";
const JAR_PREFIX: &str = "jmx_prometheus_javaagent";

/// A checked exporter jar and how ksqlDB's JVM loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    /// `<state_dir>/exporter/<file>`.
    pub jar: PathBuf,
    /// What the jar hashed to when it was checked: what it must still hash to.
    pub sha256: Sha256Digest,
    pub bind: IpAddr,
    pub port: u16,
    pub rules: PathBuf,
}

impl Exporter {
    /// The exporter's settings and its jar as checked (`sha256`).
    pub fn new(settings: &Settings, port: u16, sha256: Sha256Digest) -> Exporter {
        let m = &settings.metrics;
        Exporter {
            jar: jar_path(settings),
            sha256,
            bind: m.prometheus_bind,
            port,
            rules: m.prometheus_rules.clone(),
        }
    }

    /// `-javaagent:<jar>=<host>:<port>:<rules>`, the exporter's `[host:]port:config`
    /// argument (an IPv6 host in brackets). The launch script splits `KSQL_OPTS` on
    /// whitespace, so neither path may hold any (78).
    pub fn javaagent(&self) -> Result<String> {
        let host = match self.bind {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let jar = self.jar.to_string_lossy();
        if jar.contains(char::is_whitespace) {
            return Err(fail(
                ExitCode::Config,
                format!(
                    "agent.state_dir: the exporter jar {jar} would be cut at its space by the launch script (KSQL_OPTS is split on whitespace)"
                ),
            ));
        }
        Ok(format!(
            "-javaagent:{jar}={host}:{}:{}",
            self.port,
            self.rules.display()
        ))
    }

    /// Before ksqlDB starts: the jar must still be the one checked (the `ksql` user can
    /// write the state directory), and the rules file must be there (the exporter, and
    /// with it the JVM, fails to start without it).
    pub fn recheck(&self) -> Result<()> {
        let actual = hash_regular(&self.jar)?;
        if actual != self.sha256 {
            return Err(fail(
                ExitCode::Data,
                format!(
                    "{}: SHA-256 is {actual}, expected {} (checked when ksqlDB was configured); refusing to start ksqlDB with a changed exporter jar",
                    self.jar.display(),
                    self.sha256
                ),
            ));
        }
        check_rules(&self.rules)
    }
}

/// `metrics.prometheus_rules` must be a readable regular file (78).
pub fn check_rules(rules: &Path) -> Result<()> {
    match std::fs::metadata(rules) {
        Ok(m) if m.is_file() => std::fs::File::open(rules).map(drop).map_err(|e| {
            fail(
                ExitCode::Config,
                format!(
                    "metrics.prometheus_rules: cannot read {}: {e}",
                    rules.display()
                ),
            )
        }),
        Ok(_) => Err(fail(
            ExitCode::Config,
            format!(
                "metrics.prometheus_rules: {} is not a file",
                rules.display()
            ),
        )),
        Err(e) => Err(fail(
            ExitCode::Config,
            format!("metrics.prometheus_rules: {}: {e}", rules.display()),
        )),
    }
}

/// `<state_dir>/exporter`.
pub fn dir(settings: &Settings) -> PathBuf {
    settings.agent.state_dir.join(DIR)
}

/// The jar's file name: the URL's, when it is a plain `.jar` name, else one made of the
/// version.
pub fn file_name(settings: &Settings) -> String {
    let url = settings.metrics.exporter_url.redacted();
    let base = url.split(['?', '#']).next().unwrap_or(&url);
    match base.rsplit('/').next() {
        Some(n)
            if n.ends_with(".jar")
                && !n.starts_with('.')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)) =>
        {
            n.to_string()
        }
        _ => format!("{JAR_PREFIX}-{}.jar", settings.metrics.exporter_version),
    }
}

/// `<state_dir>/exporter/<file_name>`.
pub fn jar_path(settings: &Settings) -> PathBuf {
    dir(settings).join(file_name(settings))
}

/// What the configured jar must hash to: the pin, else what was recorded on first use.
pub fn expected(settings: &Settings, trust: &TrustStore) -> Option<ExpectedHash> {
    let m = &settings.metrics;
    trust.expected_exporter(m.exporter_sha256.as_ref(), &m.exporter_url)
}

/// The jar in place, if it hashes to `expected`; `Ok(None)` if it is missing or differs
/// (said in the journal: it is fetched again).
pub fn installed(settings: &Settings, expected: &ExpectedHash) -> Result<Option<Sha256Digest>> {
    let path = jar_path(settings);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    match hash_regular(&path) {
        Ok(actual) if actual == expected.sha256 => Ok(Some(actual)),
        Ok(actual) => {
            tracing::warn!(
                "{}: SHA-256 is {actual}, expected {} ({}): not used, fetching it again",
                path.display(),
                expected.sha256,
                expected.origin
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(
                "{}: not used, fetching it again: {}",
                path.display(),
                crate::exit::one_line(&e)
            );
            Ok(None)
        }
    }
}

/// Put the checked jar `src` in place atomically (through a handle that refuses a
/// symlinked `exporter/`) and remove other exporter jars there.
pub fn install(settings: &Settings, src: &Path) -> Result<PathBuf> {
    host::ensure_dir(&settings.agent.state_dir, 0o755)?;
    let dir = host::Dir::create_beneath(&settings.agent.state_dir, Path::new(DIR), 0o755)?;
    let name = file_name(settings);
    dir.copy_atomic(&name, src, 0o644)?;
    for entry in dir.entries()? {
        let other = entry.to_string_lossy();
        if other.starts_with(JAR_PREFIX) && other.ends_with(".jar") && other != name {
            tracing::info!("removing older {other} from {}", dir.path().display());
            dir.remove_file(&entry)?;
        }
    }
    dir.sync()?;
    Ok(dir.path().join(name))
}

/// `ksql-msk verify`: the configured exporter jar against its pin or first-use record.
/// `None` when the exporter is off.
pub fn verify(settings: &Settings) -> Result<Option<String>> {
    if settings.metrics.prometheus_port.is_none() {
        return Ok(None);
    }
    let path = jar_path(settings);
    let trust = TrustStore::load(&settings.agent.state_dir)?;
    let Some(expected) = expected(settings, &trust) else {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: no hash to check it against (metrics.exporter_sha256 is empty and trust.toml records none: not installed yet?)",
                path.display()
            ),
        ));
    };
    let actual = hash_regular(&path)?;
    if actual != expected.sha256 {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{}: SHA-256 is {actual}, expected {} ({}); it is not what was verified",
                path.display(),
                expected.sha256,
                expected.origin
            ),
        ));
    }
    Ok(Some(format!(
        "exporter jar {}: SHA-256 {actual} as expected ({})",
        path.display(),
        expected.origin
    )))
}

/// SHA-256 of the regular file at `path` in a real `exporter/` directory, opened
/// without following a link (65 for a link or anything but a file).
fn hash_regular(path: &Path) -> Result<Sha256Digest> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(fail(
            ExitCode::Data,
            format!("{}: not a file path", path.display()),
        ));
    };
    // `exporter` itself must not be a link to elsewhere, nor the jar in it.
    let dir = host::Dir::open(parent)?;
    // Size checked before hashing: a huge sparse file there must not cost hours.
    let (file, _) = host::open_state_file(&dir, name, host::StateFile::Jar)?
        .ok_or_else(|| fail(ExitCode::Data, format!("{}: missing", path.display())))?;
    crate::release::verify::sha256_of(
        std::io::Read::take(file, host::StateFile::Jar.limit()),
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn exporter(bind: &str) -> Exporter {
        Exporter {
            jar: PathBuf::from("/var/lib/ksql-msk/exporter/jmx_prometheus_javaagent-1.6.0.jar"),
            sha256: Sha256Digest([0; 32]),
            bind: bind.parse().unwrap(),
            port: 9404,
            rules: PathBuf::from("/usr/share/ksql-msk/jmx-exporter/ksqldb.yml"),
        }
    }

    #[test]
    fn javaagent_option_is_host_port_config() {
        assert_eq!(
            exporter("127.0.0.1").javaagent().unwrap(),
            "-javaagent:/var/lib/ksql-msk/exporter/jmx_prometheus_javaagent-1.6.0.jar=127.0.0.1:9404:/usr/share/ksql-msk/jmx-exporter/ksqldb.yml"
        );
        assert!(exporter("::1")
            .javaagent()
            .unwrap()
            .contains(".jar=[::1]:9404:/usr/share/"));
        let mut spaced = exporter("127.0.0.1");
        spaced.jar = PathBuf::from("/var/lib/my state/exporter/j.jar");
        let e = spaced.javaagent().unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&e), ExitCode::Config);
    }

    #[test]
    fn recheck_refuses_a_changed_jar_naming_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("exporter/j.jar");
        std::fs::create_dir_all(jar.parent().unwrap()).unwrap();
        std::fs::write(&jar, b"PK agent").unwrap();
        let rules = dir.path().join("rules.yml");
        std::fs::write(&rules, "rules: []\n").unwrap();
        let good = Sha256Digest(Sha256::digest(b"PK agent").into());
        let mut e = exporter("127.0.0.1");
        e.jar = jar.clone();
        e.rules = rules.clone();
        e.sha256 = good;
        e.recheck().unwrap();
        std::fs::write(&jar, b"PK evil").unwrap();
        let err = e.recheck().unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Data);
        let line = crate::exit::one_line(&err);
        let evil = Sha256Digest(Sha256::digest(b"PK evil").into());
        assert!(
            line.contains(&good.to_hex()) && line.contains(&evil.to_hex()),
            "{line}"
        );
        // A link in place of the jar is refused, not followed.
        std::fs::remove_file(&jar).unwrap();
        std::fs::write(dir.path().join("elsewhere.jar"), b"PK agent").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.jar"), &jar).unwrap();
        let err = e.recheck().unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Data, "{err:#}");
        // Without its rules file the exporter would stop the JVM: 78.
        std::fs::remove_file(&jar).unwrap();
        std::fs::write(&jar, b"PK agent").unwrap();
        std::fs::remove_file(&rules).unwrap();
        let err = e.recheck().unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Config, "{err:#}");
    }
}
