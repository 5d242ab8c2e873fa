//! How ksqlDB is started: the command line, its environment and its Java.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tracing::info;

use crate::exit::{fail, one_line, ExitCode};
use crate::java::Jvm;
use crate::pipeline::Prepared;

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
}

/// `PATH` for ksqlDB: the agent's, else a standard one.
fn child_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Build the launch spec: `<release>/bin/ksql-server-start <properties>` with a clean,
/// explicit environment.
pub fn launch_spec(prepared: &Prepared, jvm: &Jvm) -> Result<Launch> {
    let settings = &prepared.settings;
    let release = prepared.release_dir();
    let program = release.join(crate::layout::SERVER_START);
    let properties = std::fs::read(prepared.properties_path())
        .with_context(|| format!("reading {}", prepared.properties_path().display()))
        .map_err(|e| fail(ExitCode::Unavailable, one_line(&e)))?;
    let log_dir = &settings.agent.log_dir;
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("creating agent.log_dir {}", log_dir.display()))?;
    let mut env = vec![
        ("PATH".to_string(), child_path()),
        (
            "JAVA_HOME".to_string(),
            jvm.java.home.to_string_lossy().into_owned(),
        ),
        (
            "LOG_DIR".to_string(),
            log_dir.to_string_lossy().into_owned(),
        ),
        ("KSQL_HEAP_OPTS".to_string(), jvm.heap_opts.clone()),
    ];
    if let Some(opts) = &jvm.performance_opts {
        env.push(("KSQL_JVM_PERFORMANCE_OPTS".to_string(), opts.clone()));
    }
    // ksqlDB's own console-only log4j config, named explicitly so that nothing in the
    // environment can swap it for a file appender: its lines must reach the journal.
    let log4j = release.join("etc/ksqldb/log4j.properties");
    if log4j.is_file() {
        env.push((
            "KSQL_LOG4J_OPTS".to_string(),
            format!("-Dlog4j.configuration=file:{}", log4j.display()),
        ));
    }
    Ok(Launch {
        program,
        args: vec![prepared.properties_path().as_os_str().to_owned()],
        env,
        release_dir: release.to_path_buf(),
        version: prepared.version(),
        properties,
    })
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
